//! Row-level security on Postgres: a query that forgets its tenant finds
//! nothing of another, and production refuses a role that bypasses it.

use super::*;

/// Where a query runs: outside any scope, in one tenant's, or in the
/// system scope.
#[derive(Clone, Copy)]
enum In<'a> {
    Nowhere,
    Tenant(&'a str),
    Everyone,
}

/// The first column (text) of what `sql`, which has no tenant filter of
/// its own, finds on `db` in `scope`, sorted: row-level security decides
/// alone.
async fn unfiltered(db: &tenantry_kit::db::Database, scope: In<'_>, sql: &str) -> Vec<String> {
    use tenantry_kit::tenancy;
    let query =
        sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(db.pool());
    let rows = match scope {
        In::Nowhere => query.await,
        In::Tenant(tenant) => {
            tenancy::request(async {
                tenancy::enter(tenant);
                query.await
            })
            .await
        }
        In::Everyone => tenancy::system(query).await,
    };
    let mut values: Vec<String> = rows.unwrap().into_iter().map(|(v,)| v).collect();
    values.sort();
    values
}

/// Ada's and Bob's organizations, a project each, on Postgres with every
/// service that keeps tenant rows, and a pool of the services' own role
/// (neither superuser nor BYPASSRLS, like a deployment's).
struct TwoTenants {
    w: World,
    ada: User,
    ada_org: String,
    bob: User,
    bob_org: String,
    db: tenantry_kit::db::Database,
}

impl TwoTenants {
    async fn start() -> Option<TwoTenants> {
        if !storages().contains(&Storage::Postgres) {
            return None;
        }
        let services = [
            ServiceKind::Identity,
            ServiceKind::Organization,
            ServiceKind::Rbac,
            ServiceKind::Audit,
            ServiceKind::Billing,
        ];
        let w = World::with(Storage::Postgres, &services).await;
        let (ada, ada_org) = w.sign_up("ada@example.com").await;
        let (bob, bob_org) = w.sign_up("bob@example.com").await;
        w.project(&ada.token, &ada_org).await.unwrap();
        w.project(&bob.token, &bob_org).await.unwrap();
        let db = w.sandbox.database.connect().await.unwrap();
        assert!(!db.role_bypasses_row_security().await.unwrap());
        Some(TwoTenants {
            w,
            ada,
            ada_org,
            bob,
            bob_org,
            db,
        })
    }

    async fn stop(self) {
        self.db.close().await;
        self.w.sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn on_postgres_a_query_that_forgets_its_tenant_filter_finds_nothing_of_another_tenant() {
    let Some(t) = TwoTenants::start().await else {
        return;
    };
    let (db, ada_org, bob_org) = (&t.db, t.ada_org.as_str(), t.bob_org.as_str());
    let adas = t.w.projects(&t.ada.token, ada_org).await.unwrap();
    let bobs = t.w.projects(&t.bob.token, bob_org).await.unwrap();
    assert_eq!(
        (adas.len(), bobs.len()),
        (2, 2),
        "the default project and Rocket each"
    );
    let projects = "SELECT id FROM org_projects";
    // Outside any scope nothing shows; in a request that named Ada's
    // organization (signed-up organizations are roots), only her tree;
    // environments follow their projects, organizations their tree.
    assert!(unfiltered(db, In::Nowhere, projects).await.is_empty());
    assert_eq!(unfiltered(db, In::Tenant(ada_org), projects).await, adas);
    let organizations = "SELECT id FROM org_organizations";
    assert_eq!(
        unfiltered(db, In::Tenant(ada_org), organizations).await,
        [ada_org]
    );
    assert_eq!(unfiltered(db, In::Everyone, organizations).await.len(), 2);
    let environments = "SELECT id FROM org_environments";
    let ada_envs = unfiltered(db, In::Tenant(ada_org), environments)
        .await
        .len();
    assert!(ada_envs > 0);
    assert_eq!(
        unfiltered(db, In::Everyone, environments).await.len(),
        ada_envs * 2
    );

    // Writes into Bob's tree from a request scoped to Ada's: an update
    // finds nothing to change, an insert is refused by the policy.
    use tenantry_kit::tenancy;
    let (updated, inserted) = tenancy::request(async {
        tenancy::enter(ada_org);
        let updated =
            sqlx::query("UPDATE org_projects SET display_name = 'mine' WHERE organization_id = $1")
                .bind(bob_org)
                .execute(db.pool())
                .await
                .unwrap()
                .rows_affected();
        let inserted = sqlx::query(
            "INSERT INTO org_teams (id, organization_id, slug, display_name, description, \
             created_by, created_at_us, updated_at_us, version) \
             VALUES ('t', $1, 'x', 'X', '', 'users/x', 0, 0, 1)",
        )
        .bind(bob_org)
        .execute(db.pool())
        .await;
        (updated, inserted)
    })
    .await;
    assert_eq!(updated, 0, "Bob's projects are invisible to Ada's scope");
    let error = inserted.unwrap_err().to_string();
    assert!(error.contains("row-level security"), "{error}");
    assert_eq!(unfiltered(db, In::Tenant(bob_org), projects).await, bobs);
    assert_eq!(t.w.projects(&t.bob.token, bob_org).await.unwrap(), bobs);
    let refused_team = "SELECT id FROM org_teams WHERE id = 't'";
    assert!(unfiltered(db, In::Everyone, refused_team).await.is_empty());
    t.stop().await;
}

#[tokio::test]
async fn on_postgres_every_service_shows_a_tenant_only_its_own_rows() {
    let Some(t) = TwoTenants::start().await else {
        return;
    };
    let (db, ada_org, bob_org) = (&t.db, t.ada_org.as_str(), t.bob_org.as_str());
    // rbac: Ada's tree shows her membership, never Bob's.
    let members = "SELECT organization_id || '/' || user_id FROM rbac_memberships";
    let ada_member = format!("{ada_org}/{}", t.ada.id);
    assert_eq!(
        unfiltered(db, In::Tenant(ada_org), members).await,
        [ada_member]
    );
    // identity: a key shows in its organization's scope only.
    t.w.key(&t.ada, ada_org, ("", ""), &["project.read"])
        .await
        .unwrap();
    let keys = "SELECT organization_id FROM identity_api_keys";
    assert_eq!(unfiltered(db, In::Tenant(ada_org), keys).await, [ada_org]);
    assert!(unfiltered(db, In::Tenant(bob_org), keys).await.is_empty());
    // audit: a read of Ada's chain sees no line of Bob's (the log takes
    // each creation in before it answers).
    let chains = "SELECT DISTINCT scope FROM audit_events";
    let every = unfiltered(db, In::Everyone, chains).await;
    assert!(every.iter().any(|c| c == ada_org) && every.iter().any(|c| c == bob_org));
    assert_eq!(unfiltered(db, In::Tenant(ada_org), chains).await, [ada_org]);
    // billing: its tenant is a workspace; Ada's shows her tree only.
    let nodes = "SELECT id || ' ' || workspace_id FROM billing_nodes";
    let every = unfiltered(db, In::Everyone, nodes).await;
    assert_eq!(every.len(), 2, "both trees in billing");
    let ada_node = every.iter().find(|n| n.starts_with(ada_org)).unwrap();
    let ada_workspace = ada_node.split(' ').nth(1).unwrap();
    assert_eq!(
        unfiltered(db, In::Tenant(ada_workspace), nodes).await,
        std::slice::from_ref(ada_node)
    );
    t.stop().await;
}

#[tokio::test]
async fn production_refuses_a_database_role_that_bypasses_row_security() {
    if !storages().contains(&Storage::Postgres) {
        return;
    }
    let database = tenantry_testkit::TestDatabase::new(Storage::Postgres)
        .await
        .unwrap();
    let operator = database.connect_as_operator().await.unwrap();
    assert!(operator.role_bypasses_row_security().await.unwrap());
    operator.close().await;
    let superuser = database.operator_url().to_string();
    let Err(refused) = Sandbox::builder()
        .services(&[ServiceKind::Organization])
        .storage(Storage::Postgres)
        .configure(move |config| {
            config.mode = tenantry::config::Mode::Production;
            config.database_url = Some(superuser);
        })
        .start()
        .await
    else {
        panic!("a production start as a superuser is refused");
    };
    assert!(refused.to_string().contains("BYPASSRLS"), "{refused}");
}
