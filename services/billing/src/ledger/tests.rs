//! The counters against a reference that recounts everything from scratch,
//! on random histories: organizations created under random parents, items
//! (projects) added, removed and purged, soft deletes and undeletes of any
//! node, moves within the tree, and metered usage.
//!
//! The reference's rule, in words: an item at Y counts in X's subtree when
//! X is Y or an ancestor of Y and no node from Y up to (not including) X is
//! soft-deleted; it counts in the pool when no node from Y up to the root
//! is. A child organization is one sub-organization of its parent while it
//! is not deleted itself. Metered usage counts in every ancestor's subtree
//! (it happened; deletes do not undo it).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_kit::config::DatabaseConfig;
use tenantry_kit::db::Database;

use super::*;
use crate::directory::{moved, set_deleted};

const WORKSPACE: &str = "w";
const PERIOD: i64 = 1_000;

#[derive(Debug, Default)]
struct Reference {
    /// Node → (parent, deleted).
    nodes: Vec<(Option<usize>, bool)>,
    /// Project items: (node, live).
    items: Vec<(usize, bool)>,
    /// Metered records: (node, quantity).
    records: Vec<(usize, i64)>,
}

impl Reference {
    fn upward(&self, mut node: usize) -> Vec<usize> {
        let mut path = vec![node];
        while let Some(parent) = self.nodes[node].0 {
            path.push(parent);
            node = parent;
        }
        path
    }

    fn live_path(&self, node: usize) -> bool {
        self.upward(node).iter().all(|n| !self.nodes[*n].1)
    }

    /// Whether a count made at `at` reaches `scope` (None: the pool).
    fn reaches(&self, at: usize, scope: Option<usize>) -> bool {
        for node in self.upward(at) {
            if Some(node) == scope {
                return true;
            }
            if self.nodes[node].1 {
                return false;
            }
        }
        scope.is_none()
    }

    /// (own, subtree) of `metric` at `scope`.
    fn expected(&self, metric: Metric, scope: Option<usize>) -> (i64, i64) {
        let units: Vec<(usize, i64)> = match metric {
            Metric::Projects => self
                .items
                .iter()
                .filter(|i| i.1)
                .map(|i| (i.0, 1))
                .collect(),
            Metric::SubOrganizations => self
                .nodes
                .iter()
                .filter(|n| !n.1)
                .filter_map(|n| n.0.map(|p| (p, 1)))
                .collect(),
            _ => self.records.clone(),
        };
        let metered = metric == Metric::Deployments;
        let own = units
            .iter()
            .filter(|u| Some(u.0) == scope)
            .map(|u| u.1)
            .sum();
        let subtree = units
            .iter()
            .filter(|u| {
                if metered {
                    scope.is_none_or(|s| self.upward(u.0).contains(&s))
                } else {
                    self.reaches(u.0, scope)
                }
            })
            .map(|u| u.1)
            .sum();
        (own, subtree)
    }
}

fn name(node: usize) -> String {
    format!("n{node}")
}

async fn database() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(
        &tenantry_kit::config::sqlite_url(dir.path()),
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    db.migrate(crate::NAME, crate::MIGRATIONS).await.unwrap();
    (dir, db)
}

async fn create(tx: &mut Tx, r: &mut Reference, parent: Option<usize>) {
    let id = r.nodes.len();
    let path = match parent {
        Some(p) => {
            store::node(&mut **tx, &name(p))
                .await
                .unwrap()
                .unwrap()
                .path
                + &format!("{}/", name(id))
        }
        None => format!("/{}/", name(id)),
    };
    let root = parent.map_or(id, |p| *r.upward(p).last().expect("a path"));
    let node = NodeRow {
        id: name(id),
        parent_id: parent.map(name),
        root_id: name(root),
        workspace_id: WORKSPACE.into(),
        path,
        deleted: false,
    };
    r.nodes.push((parent, false));
    // As the directory applies `organization.created`.
    add_node(tx, &node).await.unwrap();
    if let Some(p) = parent {
        set_item(tx, Metric::SubOrganizations, &node.id, &name(p), true)
            .await
            .unwrap();
    }
}

async fn check(db: &Database, r: &Reference, seed: u64, step: usize, what: &str) {
    for metric in [
        Metric::Projects,
        Metric::SubOrganizations,
        Metric::Deployments,
    ] {
        let period = if metric == Metric::Deployments {
            PERIOD
        } else {
            0
        };
        let mut scopes: Vec<(Option<usize>, String)> =
            (0..r.nodes.len()).map(|n| (Some(n), name(n))).collect();
        scopes.push((None, pool_scope(WORKSPACE)));
        let ids: Vec<&str> = scopes.iter().map(|s| s.1.as_str()).collect();
        let counters = store::counters(db.pool(), &ids, metric.as_str_name(), period)
            .await
            .unwrap();
        for (scope, id) in &scopes {
            let actual = counters.get(id).copied().unwrap_or((0, 0));
            let mut expected = r.expected(metric, *scope);
            if scope.is_none() {
                expected.0 = 0;
            }
            assert_eq!(
                actual,
                expected,
                "seed {seed}, step {step} ({what}): {} at {id}; world {r:?}",
                metric.as_str_name()
            );
        }
    }
}

#[tokio::test]
async fn counters_match_a_recount_on_random_histories() {
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (_dir, db) = database().await;
        let mut r = Reference::default();
        let mut tx = db.begin().await.unwrap();
        create(&mut tx, &mut r, None).await;
        tx.commit().await.unwrap();
        for step in 0..40 {
            let mut tx = db.begin().await.unwrap();
            let n = r.nodes.len();
            let what = match rng.random_range(0..8) {
                0 | 1 if n < 12 => {
                    let parent = rng.random_range(0..n);
                    if r.upward(parent).len() >= 10 {
                        continue;
                    }
                    create(&mut tx, &mut r, Some(parent)).await;
                    "create"
                }
                2 => {
                    let at = rng.random_range(0..n);
                    let item = r.items.len();
                    r.items.push((at, true));
                    set_item(
                        &mut tx,
                        Metric::Projects,
                        &format!("p{item}"),
                        &name(at),
                        true,
                    )
                    .await
                    .unwrap();
                    "add item"
                }
                3 if !r.items.is_empty() => {
                    let item = rng.random_range(0..r.items.len());
                    if r.items[item].0 == usize::MAX {
                        continue;
                    }
                    let live = rng.random_bool(0.5);
                    r.items[item].1 = live;
                    if rng.random_bool(0.3) && !live {
                        drop_item(&mut tx, Metric::Projects, &format!("p{item}"))
                            .await
                            .unwrap();
                        // A purged item is gone for good: never revive it.
                        r.items[item].0 = usize::MAX;
                        r.items[item].1 = false;
                        "purge item"
                    } else {
                        set_item(
                            &mut tx,
                            Metric::Projects,
                            &format!("p{item}"),
                            &name(r.items[item].0),
                            live,
                        )
                        .await
                        .unwrap();
                        "toggle item"
                    }
                }
                4 => {
                    let node = rng.random_range(0..n);
                    let deleted = !r.nodes[node].1;
                    r.nodes[node].1 = deleted;
                    set_deleted(&mut tx, &name(node), deleted).await.unwrap();
                    if deleted { "delete" } else { "undelete" }
                }
                5 => {
                    let node = rng.random_range(0..n);
                    let target = rng.random_range(0..n);
                    let same_root = r.upward(node).last() == r.upward(target).last();
                    let movable = r.nodes[node].0.is_some()
                        && r.nodes[node].0 != Some(target)
                        && same_root
                        && !r.upward(target).contains(&node)
                        && r.live_path(node)
                        && r.live_path(target)
                        && r.upward(target).len() < 10;
                    if !movable {
                        continue;
                    }
                    r.nodes[node].0 = Some(target);
                    moved(&mut tx, &name(node), &name(target)).await.unwrap();
                    "move"
                }
                6 => {
                    let at = rng.random_range(0..n);
                    if !r.live_path(at) {
                        continue;
                    }
                    let quantity = rng.random_range(1..100);
                    r.records.push((at, quantity));
                    let node = store::node(&mut *tx, &name(at)).await.unwrap().unwrap();
                    count(&mut tx, &node, Metric::Deployments, PERIOD, quantity)
                        .await
                        .unwrap();
                    "record"
                }
                _ => {
                    if rng.random_bool(0.2) {
                        create(&mut tx, &mut r, None).await;
                        "create root"
                    } else {
                        continue;
                    }
                }
            };
            tx.commit().await.unwrap();
            check(&db, &r, seed, step, what).await;
        }
        db.close().await;
    }
}

/// An item and its organization arriving at once, in two transactions (the
/// rbac event and a quota check learning the organization): counted exactly
/// once whichever commits first. Only Postgres runs them truly at once
/// (`TENANTRY_TEST_DATABASE_URL`); SQLite serializes its writers.
#[tokio::test]
async fn an_item_and_its_organization_arriving_at_once_count_once() {
    let Some(base) = std::env::var("TENANTRY_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    let schema = format!("ledger_{}", uuid::Uuid::now_v7().simple());
    let admin = Database::connect(&base, &DatabaseConfig::default())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let db = Database::connect(
        &format!("{base}{separator}options=-c%20search_path%3D{schema}"),
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    db.migrate(crate::NAME, crate::MIGRATIONS).await.unwrap();
    for round in 0..60 {
        let node = NodeRow {
            id: format!("o{round}"),
            parent_id: None,
            root_id: format!("o{round}"),
            workspace_id: WORKSPACE.into(),
            path: format!("/o{round}/"),
            deleted: false,
        };
        let item = format!("membership:o{round}/u");
        let learn = async {
            let mut tx = db.begin().await.unwrap();
            add_node(&mut tx, &node).await.unwrap();
            tx.commit().await.unwrap();
        };
        let arrive = async {
            let mut tx = db.begin().await.unwrap();
            set_item(&mut tx, Metric::Members, &item, &node.id, true)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        };
        tokio::join!(learn, arrive);
        let counters = store::counters(
            db.pool(),
            &[node.id.as_str()],
            Metric::Members.as_str_name(),
            0,
        )
        .await
        .unwrap();
        assert_eq!(counters.get(&node.id), Some(&(1, 1)), "round {round}");
    }
    db.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(admin.pool())
        .await
        .unwrap();
}

/// An item's events can arrive out of order (two writers hand them over
/// independently, and the bus brings them again): an older one than what
/// was applied changes nothing, a newer one applies, and changes that are
/// not the item's own events leave its position alone.
#[tokio::test]
async fn an_items_older_event_arriving_late_changes_nothing() {
    let (_dir, db) = database().await;
    let node = NodeRow {
        id: "o1".into(),
        parent_id: None,
        root_id: "o1".into(),
        workspace_id: WORKSPACE.into(),
        path: "/o1/".into(),
        deleted: false,
    };
    let projects = |db: &Database| {
        let db = db.clone();
        async move {
            let counters = store::counters(db.pool(), &["o1"], Metric::Projects.as_str_name(), 0)
                .await
                .unwrap();
            counters.get("o1").map_or(0, |c| c.0)
        }
    };
    let apply = |live: bool, version: Option<i64>| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            set_item_at(&mut tx, Metric::Projects, "p1", "o1", live, version)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    let mut tx = db.begin().await.unwrap();
    add_node(&mut tx, &node).await.unwrap();
    tx.commit().await.unwrap();
    // Deleted (2) arrives before created (1): the project never counts.
    apply(false, Some(2)).await;
    apply(true, Some(1)).await;
    assert_eq!(projects(&db).await, 0, "a late creation after the deletion");
    // Undeleted (3) counts it again; its deletion's copy (2) does not undo
    // that, a change from elsewhere does not move its position.
    apply(true, Some(3)).await;
    apply(false, Some(2)).await;
    assert_eq!(projects(&db).await, 1, "undeleted");
    apply(false, None).await;
    apply(true, Some(3)).await;
    assert_eq!(projects(&db).await, 0, "the same event again");
    apply(true, Some(4)).await;
    assert_eq!(projects(&db).await, 1, "a newer event");
}
