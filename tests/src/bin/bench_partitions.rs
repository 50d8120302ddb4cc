//! Partitioning the authorization index by organization tree, simulated:
//! how evenly N partitions would share the relationships and the load, how
//! many calls would have to touch more than one partition, and how much
//! data moves when a partition is added. No server runs; this replays a
//! workload against a model of the placement (see `docs/scaling.md`).
//!
//! The workload is a world and a stream of calls:
//! - organization trees of skewed (Pareto) size, each node below a random
//!   earlier one of its tree, at most ten levels deep; about three projects
//!   per organization;
//! - memberships: each tree's share grows faster than its size (as
//!   size^1.5), its users hold up to sixteen memberships in it, and a
//!   fraction of users also belong to one to four other trees
//!   (consultants, agencies, parent companies);
//! - calls, the tree chosen with a per-tenant activity skew: checks of a
//!   project or organization, bulk checks of ten (some of them the
//!   console's navigation, one item per tree of the user), LookupResources
//!   (in one organization, or across all of the user's), the user's own
//!   organizations (`ListMyOrganizations`, `Me`), writes in one tree and
//!   rare user-wide writes (a user disabled).
//!
//! A partition holds whole trees: every relationship lives inside one tree,
//! so a call about an object touches the one partition of the object's
//! root. Calls about a user (what may I see, my organizations, disable me)
//! touch the partitions of the user's roots, found in a user → roots
//! directory. Placements compared: rendezvous hashing of the root id, and a
//! partition map filled greedily (largest tree first onto the emptiest
//! partition) by relationships, or by relationships and recorded load
//! together.
//!
//! ```text
//! cargo run --release -p tenantry-tests --bin bench-partitions
//! cargo run --release -p tenantry-tests --bin bench-partitions -- --record workload.csv
//! cargo run --release -p tenantry-tests --bin bench-partitions -- --workload workload.csv
//! cargo run -p tenantry-tests --bin bench-partitions -- --smoke   # CI: just keep it working
//! ```
//!
//! The recorded format is CSV, one record a line, `#` starting a comment;
//! ids are numbers, objects `o<n>` (organization) or `p<n>` (project), a
//! parent always before its children:
//!
//! ```text
//! org,<id>,<parent id or empty for a root>
//! project,<id>,<organization id>
//! member,<user>,<organization id>
//! check,<user>,<object>
//! bulk,<user>,<object>;<object>;…
//! lookup,<user>,<organization id, or empty for all of the user's>
//! mine,<user>
//! write,<organization id>
//! disable,<user>
//! ```

use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tenantry_tests::bench::print_table;

/// Simulates the authorization index split into partitions by
/// organization tree.
#[derive(Debug, Parser)]
#[command(name = "bench-partitions")]
struct Args {
    /// A tiny workload, to check the program still works (CI runs this).
    #[arg(long)]
    smoke: bool,
    /// The seed of the generated workload.
    #[arg(long, default_value_t = 21)]
    seed: u64,
    /// Partition counts to simulate, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    partitions: Vec<usize>,
    /// Organizations to generate. Default: 10,000 (300 with --smoke).
    #[arg(long)]
    organizations: Option<usize>,
    /// Memberships to generate (about). Default: 950,000 (28,500 with
    /// --smoke).
    #[arg(long)]
    memberships: Option<usize>,
    /// Calls to generate. Default: 1,000,000 (20,000 with --smoke).
    #[arg(long)]
    operations: Option<usize>,
    /// The share of users who also belong to other trees than their own.
    #[arg(long, default_value_t = 0.08)]
    multi_root_users: f64,
    /// Replay this recorded workload instead of generating one.
    #[arg(long, value_name = "FILE", conflicts_with = "record")]
    workload: Option<PathBuf>,
    /// Write the generated workload to this file (then replay it).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

/// An object a call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Organization(u32),
    Project(u32),
}

/// One call of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Check {
        user: u32,
        object: Object,
    },
    Bulk {
        user: u32,
        objects: Vec<Object>,
    },
    Lookup {
        user: u32,
        organization: Option<u32>,
    },
    Mine {
        user: u32,
    },
    Write {
        organization: u32,
    },
    Disable {
        user: u32,
    },
}

impl Op {
    fn kind(&self) -> usize {
        match self {
            Op::Check { .. } => 0,
            Op::Bulk { .. } => 1,
            Op::Lookup { .. } => 2,
            Op::Mine { .. } => 3,
            Op::Write { .. } => 4,
            Op::Disable { .. } => 5,
        }
    }
}

const KINDS: [&str; 6] = [
    "CheckPermission",
    "CheckBulkPermissions (10)",
    "LookupResources",
    "ListMyOrganizations / Me",
    "write in one tree",
    "user-wide write (disable)",
];

const NONE: u32 = u32::MAX;

/// A world and the calls made against it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Workload {
    /// Each organization's parent (`NONE` for a root), by id.
    org_parent: Vec<u32>,
    /// Each project's organization, by id.
    project_org: Vec<u32>,
    /// (user, organization).
    members: Vec<(u32, u32)>,
    ops: Vec<Op>,
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Picks an index with probability proportional to its weight, from
/// cumulative weights.
fn pick(cumulative: &[f64], rng: &mut StdRng) -> usize {
    let total = *cumulative.last().expect("weights");
    let x = rng.random_range(0.0..total);
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

fn cumulate(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut sum = 0.0;
    weights
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

/// Generates a world and its calls.
fn generate(
    organizations: usize,
    memberships: usize,
    operations: usize,
    multi_root: f64,
    seed: u64,
) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed);
    // Tree sizes: a discrete Pareto (alpha 1.2), the largest tree at most
    // 1/80 of all organizations.
    let cap = (organizations / 80).max(1);
    let mut trees: Vec<Vec<u32>> = Vec::new();
    let mut org_parent = Vec::with_capacity(organizations);
    let mut org_depth: Vec<u8> = Vec::with_capacity(organizations);
    let mut org_tree: Vec<u32> = Vec::with_capacity(organizations);
    while org_parent.len() < organizations {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        let size = (u.powf(-1.0 / 1.2) as usize)
            .clamp(1, cap)
            .min(organizations - org_parent.len());
        let tree = trees.len() as u32;
        let mut nodes = Vec::with_capacity(size);
        for i in 0..size {
            let id = org_parent.len() as u32;
            let (parent, depth) = if i == 0 {
                (NONE, 1)
            } else {
                let mut p = nodes[rng.random_range(0..i)];
                while org_depth[p as usize] >= 10 {
                    p = nodes[rng.random_range(0..i)];
                }
                (p, org_depth[p as usize] + 1)
            };
            org_parent.push(parent);
            org_depth.push(depth);
            org_tree.push(tree);
            nodes.push(id);
        }
        trees.push(nodes);
    }
    // One to five projects per organization.
    let mut project_org = Vec::new();
    let mut org_projects: Vec<Vec<u32>> = vec![Vec::new(); organizations];
    for (org, projects) in org_projects.iter_mut().enumerate() {
        for _ in 0..rng.random_range(1..=5) {
            projects.push(project_org.len() as u32);
            project_org.push(org as u32);
        }
    }
    // Memberships per tree: growing faster than the tree (as size^1.5:
    // large customers put more people in each organization), with
    // lognormal noise.
    let weights: Vec<f64> = trees
        .iter()
        .map(|t| (t.len() as f64).powf(1.5) * (0.5 * normal(&mut rng)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let home_share = 1.0 - multi_root * 1.7 / 10.0;
    let mut members: Vec<(u32, u32)> = Vec::with_capacity(memberships + memberships / 10);
    let mut user_orgs: Vec<Vec<u32>> = Vec::new();
    let mut tree_members: Vec<Vec<usize>> = vec![Vec::new(); trees.len()];
    let mut user_trees: Vec<Vec<u32>> = Vec::new();
    for (t, nodes) in trees.iter().enumerate() {
        let count =
            ((memberships as f64 * home_share * weights[t] / total).round() as usize).max(1);
        // Users of this tree hold up to sixteen memberships in it.
        let per_user = nodes.len().min(16);
        let users = count.div_ceil(per_user);
        let mut left = count;
        for j in 0..users {
            let user = user_orgs.len() as u32;
            let mine = (left / (users - j)).clamp(1, per_user);
            left -= mine.min(left);
            let mut orgs: Vec<u32> = Vec::with_capacity(mine);
            while orgs.len() < mine {
                let o = nodes[rng.random_range(0..nodes.len())];
                if !orgs.contains(&o) {
                    orgs.push(o);
                }
            }
            for &o in &orgs {
                tree_members[t].push(members.len());
                members.push((user, o));
            }
            user_orgs.push(orgs);
            user_trees.push(vec![t as u32]);
        }
    }
    // Users in several trees: one to four others, chosen by size.
    let by_members = cumulate(tree_members.iter().map(|m| m.len() as f64));
    let users = user_orgs.len();
    for user in 0..users {
        if !rng.random_bool(multi_root.clamp(0.0, 1.0)) {
            continue;
        }
        let extra = match rng.random_range(0..20) {
            0..=11 => 1,
            12..=16 => 2,
            17..=18 => 3,
            _ => 4,
        };
        for _ in 0..extra {
            let t = pick(&by_members, &mut rng);
            if user_trees[user].contains(&(t as u32)) {
                continue;
            }
            let o = trees[t][rng.random_range(0..trees[t].len())];
            user_trees[user].push(t as u32);
            user_orgs[user].push(o);
            tree_members[t].push(members.len());
            members.push((user as u32, o));
        }
    }
    // Calls: a tree by its members times a per-tenant activity factor (a
    // lognormal: a few tenants call far more than their size says), then
    // one of its memberships as the caller.
    let activity = cumulate(
        tree_members
            .iter()
            .map(|m| m.len() as f64 * normal(&mut rng).exp()),
    );
    let project_in = |t: usize, rng: &mut StdRng| {
        let o = trees[t][rng.random_range(0..trees[t].len())] as usize;
        Object::Project(org_projects[o][rng.random_range(0..org_projects[o].len())])
    };
    let mut ops = Vec::with_capacity(operations);
    for _ in 0..operations {
        let t = pick(&activity, &mut rng);
        let (user, org) = members[tree_members[t][rng.random_range(0..tree_members[t].len())]];
        let op = match rng.random_range(0..1000) {
            0..=549 => Op::Check {
                user,
                object: if rng.random_bool(0.1) {
                    Object::Organization(org)
                } else {
                    project_in(t, &mut rng)
                },
            },
            550..=749 => {
                // A page's bulk check, or the console's navigation: one
                // organization of each of the user's trees first.
                let mut objects = Vec::with_capacity(10);
                if rng.random_bool(0.3) {
                    for &o in user_orgs[user as usize].iter() {
                        if objects.len() < 10 && !objects.contains(&Object::Organization(o)) {
                            objects.push(Object::Organization(o));
                        }
                    }
                }
                while objects.len() < 10 {
                    objects.push(project_in(t, &mut rng));
                }
                Op::Bulk { user, objects }
            }
            750..=829 => Op::Lookup {
                user,
                organization: rng.random_bool(0.5).then_some(org),
            },
            830..=879 => Op::Mine { user },
            880..=998 => Op::Write { organization: org },
            _ => Op::Disable { user },
        };
        ops.push(op);
    }
    Workload {
        org_parent,
        project_org,
        members,
        ops,
    }
}

fn object_text(object: Object) -> String {
    match object {
        Object::Organization(o) => format!("o{o}"),
        Object::Project(p) => format!("p{p}"),
    }
}

/// Writes a workload in the recorded format.
fn record(workload: &Workload, path: &Path) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "# tenantry workload v1: see bench-partitions")?;
    for (id, &parent) in workload.org_parent.iter().enumerate() {
        if parent == NONE {
            writeln!(out, "org,{id},")?;
        } else {
            writeln!(out, "org,{id},{parent}")?;
        }
    }
    for (id, org) in workload.project_org.iter().enumerate() {
        writeln!(out, "project,{id},{org}")?;
    }
    for (user, org) in &workload.members {
        writeln!(out, "member,{user},{org}")?;
    }
    let mut line = String::new();
    for op in &workload.ops {
        line.clear();
        match op {
            Op::Check { user, object } => write!(line, "check,{user},{}", object_text(*object))?,
            Op::Bulk { user, objects } => {
                let list: Vec<String> = objects.iter().map(|o| object_text(*o)).collect();
                write!(line, "bulk,{user},{}", list.join(";"))?
            }
            Op::Lookup { user, organization } => match organization {
                Some(o) => write!(line, "lookup,{user},{o}")?,
                None => write!(line, "lookup,{user},")?,
            },
            Op::Mine { user } => write!(line, "mine,{user}")?,
            Op::Write { organization } => write!(line, "write,{organization}")?,
            Op::Disable { user } => write!(line, "disable,{user}")?,
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a workload in the recorded format. Ids must be dense: an
/// organization's or project's id is its position among its kind.
fn load(path: &Path) -> anyhow::Result<Workload> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut workload = Workload::default();
    let number = |text: &str, line: usize| -> anyhow::Result<u32> {
        text.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("line {line}: `{text}` is not a number"))
    };
    let object = |text: &str, line: usize| -> anyhow::Result<Object> {
        match text.split_at_checked(1) {
            Some(("o", id)) => Ok(Object::Organization(number(id, line)?)),
            Some(("p", id)) => Ok(Object::Project(number(id, line)?)),
            _ => anyhow::bail!("line {line}: `{text}` is not o<id> or p<id>"),
        }
    };
    for (n, text) in file.lines().enumerate() {
        let text = text?;
        let line = n + 1;
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = text.split(',').collect();
        let field = |i: usize| -> anyhow::Result<&str> {
            fields
                .get(i)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("line {line}: too few fields"))
        };
        match fields[0] {
            "org" => {
                anyhow::ensure!(
                    number(field(1)?, line)? as usize == workload.org_parent.len(),
                    "line {line}: organization ids must count up from 0"
                );
                let parent = match field(2)? {
                    "" => NONE,
                    p => {
                        let p = number(p, line)?;
                        anyhow::ensure!(
                            (p as usize) < workload.org_parent.len(),
                            "line {line}: the parent must come first"
                        );
                        p
                    }
                };
                workload.org_parent.push(parent);
            }
            "project" => {
                anyhow::ensure!(
                    number(field(1)?, line)? as usize == workload.project_org.len(),
                    "line {line}: project ids must count up from 0"
                );
                workload.project_org.push(number(field(2)?, line)?);
            }
            "member" => workload
                .members
                .push((number(field(1)?, line)?, number(field(2)?, line)?)),
            "check" => workload.ops.push(Op::Check {
                user: number(field(1)?, line)?,
                object: object(field(2)?, line)?,
            }),
            "bulk" => workload.ops.push(Op::Bulk {
                user: number(field(1)?, line)?,
                objects: field(2)?
                    .split(';')
                    .map(|o| object(o, line))
                    .collect::<anyhow::Result<_>>()?,
            }),
            "lookup" => workload.ops.push(Op::Lookup {
                user: number(field(1)?, line)?,
                organization: match field(2)? {
                    "" => None,
                    o => Some(number(o, line)?),
                },
            }),
            "mine" => workload.ops.push(Op::Mine {
                user: number(field(1)?, line)?,
            }),
            "write" => workload.ops.push(Op::Write {
                organization: number(field(1)?, line)?,
            }),
            "disable" => workload.ops.push(Op::Disable {
                user: number(field(1)?, line)?,
            }),
            other => anyhow::bail!("line {line}: unknown record `{other}`"),
        }
    }
    Ok(workload)
}

/// The workload as the placement sees it: trees (by their root), their
/// relationships, each user's trees, and the trees each call touches.
struct Model {
    /// The root organization's id of each tree.
    root_ids: Vec<u32>,
    /// Relationships per tree: parent links, projects, memberships.
    relationships: Vec<u64>,
    /// Calls per tree (a call touching k trees counts in each).
    load: Vec<u64>,
    /// Each user's trees, sorted.
    user_trees: Vec<Vec<u32>>,
    /// The trees each call touches, flattened: `touched[offsets[i]..offsets[i + 1]]`.
    touched: Vec<u32>,
    offsets: Vec<usize>,
    kinds: Vec<u8>,
}

fn model(workload: &Workload) -> anyhow::Result<Model> {
    let mut org_tree = Vec::with_capacity(workload.org_parent.len());
    let mut root_ids = Vec::new();
    for (id, &parent) in workload.org_parent.iter().enumerate() {
        if parent == NONE {
            org_tree.push(root_ids.len() as u32);
            root_ids.push(id as u32);
        } else {
            org_tree.push(org_tree[parent as usize]);
        }
    }
    let trees = root_ids.len();
    let tree_of = |object: Object| -> anyhow::Result<u32> {
        let org = match object {
            Object::Organization(o) => o,
            Object::Project(p) => *workload
                .project_org
                .get(p as usize)
                .ok_or_else(|| anyhow::anyhow!("unknown project p{p}"))?,
        };
        org_tree
            .get(org as usize)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("unknown organization o{org}"))
    };
    let mut relationships = vec![0u64; trees];
    for (id, &parent) in workload.org_parent.iter().enumerate() {
        if parent != NONE {
            relationships[org_tree[id] as usize] += 1;
        }
    }
    for &org in &workload.project_org {
        relationships[tree_of(Object::Organization(org))? as usize] += 1;
    }
    let users = workload
        .members
        .iter()
        .map(|&(u, _)| u as usize + 1)
        .max()
        .unwrap_or(0);
    let mut user_trees: Vec<Vec<u32>> = vec![Vec::new(); users];
    for &(user, org) in &workload.members {
        let t = tree_of(Object::Organization(org))?;
        relationships[t as usize] += 1;
        user_trees[user as usize].push(t);
    }
    for trees in &mut user_trees {
        trees.sort_unstable();
        trees.dedup();
    }
    let user = |u: u32| -> anyhow::Result<&Vec<u32>> {
        user_trees
            .get(u as usize)
            .ok_or_else(|| anyhow::anyhow!("unknown user {u}"))
    };
    let mut touched = Vec::new();
    let mut offsets = Vec::with_capacity(workload.ops.len() + 1);
    let mut kinds = Vec::with_capacity(workload.ops.len());
    let mut load = vec![0u64; trees];
    offsets.push(0);
    for op in &workload.ops {
        let start = touched.len();
        match op {
            Op::Check { object, .. } => touched.push(tree_of(*object)?),
            Op::Bulk { objects, .. } => {
                for &object in objects {
                    touched.push(tree_of(object)?);
                }
            }
            Op::Lookup {
                organization: Some(o),
                ..
            } => touched.push(tree_of(Object::Organization(*o))?),
            Op::Lookup {
                user: u,
                organization: None,
            }
            | Op::Mine { user: u }
            | Op::Disable { user: u } => touched.extend_from_slice(user(*u)?),
            Op::Write { organization } => {
                touched.push(tree_of(Object::Organization(*organization))?)
            }
        }
        let mut mine = touched.split_off(start);
        mine.sort_unstable();
        mine.dedup();
        touched.extend_from_slice(&mine);
        for &t in &touched[start..] {
            load[t as usize] += 1;
        }
        offsets.push(touched.len());
        kinds.push(op.kind() as u8);
    }
    Ok(Model {
        root_ids,
        relationships,
        load,
        user_trees,
        touched,
        offsets,
        kinds,
    })
}

/// A 64-bit mix (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Rendezvous (highest random weight) hashing: the partition whose hash
/// with the root scores highest.
fn rendezvous(root: u32, partitions: usize) -> u32 {
    (0..partitions as u64)
        .max_by_key(|&p| mix(((root as u64) << 32) | p))
        .expect("at least one partition") as u32
}

fn modulo(root: u32, partitions: usize) -> u32 {
    (mix(root as u64) % partitions as u64) as u32
}

/// Largest first onto the lightest partition (LPT), by `weight`.
fn greedy(weight: &[f64], partitions: usize) -> Vec<u32> {
    let mut order: Vec<usize> = (0..weight.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
    let mut filled = vec![0.0f64; partitions];
    let mut placement = vec![0u32; weight.len()];
    for t in order {
        let p = (0..partitions)
            .min_by(|&a, &b| filled[a].total_cmp(&filled[b]))
            .expect("at least one partition");
        filled[p] += weight[t];
        placement[t] = p as u32;
    }
    placement
}

/// Tree indexes, heaviest first.
fn heaviest(weight: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weight.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
    order
}

/// How many trees the map of the `share` heaviest holds.
fn overridden(trees: usize, share: f64) -> usize {
    ((trees as f64 * share).ceil() as usize).min(trees)
}

/// Hashing for most trees, a map for the largest: the top `share` of trees
/// by `weight` are placed, largest first, onto the lightest partition once
/// the hashed trees are in.
fn hash_with_overrides(model: &Model, weight: &[f64], partitions: usize, share: f64) -> Vec<u32> {
    let order = heaviest(weight);
    let overrides = overridden(weight.len(), share);
    let mut placement: Vec<u32> = model
        .root_ids
        .iter()
        .map(|&r| rendezvous(r, partitions))
        .collect();
    let mut filled = vec![0.0f64; partitions];
    for &t in &order[overrides..] {
        filled[placement[t] as usize] += weight[t];
    }
    for &t in &order[..overrides] {
        let p = (0..partitions)
            .min_by(|&a, &b| filled[a].total_cmp(&filled[b]))
            .expect("at least one partition");
        filled[p] += weight[t];
        placement[t] = p as u32;
    }
    placement
}

/// Adds one partition to a map: moves trees to the new one, largest that
/// fits first, until it holds its share. Returns the new map.
fn grow(placement: &[u32], weight: &[f64], partitions: usize) -> Vec<u32> {
    let mut placement = placement.to_vec();
    let new = partitions as u32;
    let mut filled = vec![0.0f64; partitions + 1];
    for (t, &p) in placement.iter().enumerate() {
        filled[p as usize] += weight[t];
    }
    let share = filled.iter().sum::<f64>() / (partitions + 1) as f64;
    loop {
        let room = share - filled[new as usize];
        // From the fullest partition that has one, the largest tree that
        // fits in the room left and leaves its partition at least as full
        // as the new one.
        let mut sources: Vec<usize> = (0..partitions).collect();
        sources.sort_by(|&a, &b| filled[b].total_cmp(&filled[a]).then(a.cmp(&b)));
        let candidate = sources.into_iter().find_map(|from| {
            placement
                .iter()
                .enumerate()
                .filter(|&(t, &p)| {
                    p as usize == from
                        && weight[t] <= room
                        && filled[from] - weight[t] >= filled[new as usize] + weight[t]
                })
                .max_by(|a, b| weight[a.0].total_cmp(&weight[b.0]).then(b.0.cmp(&a.0)))
                .map(|(t, _)| (t, from))
        });
        let Some((t, from)) = candidate else { break };
        filled[from] -= weight[t];
        filled[new as usize] += weight[t];
        placement[t] = new;
    }
    placement
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A placement strategy: the partition of each tree, given N.
type Placement<'a> = Box<dyn Fn(usize) -> Vec<u32> + 'a>;

/// What one placement gives.
struct Outcome {
    relationships_max_mean: f64,
    relationships_p99_p50: f64,
    load_max_mean: f64,
    multi: f64,
    fan_out: f64,
    fan_out_max: usize,
    token_mean: f64,
    token_max: usize,
    /// Per kind of call: (calls, calls touching more than one partition,
    /// partitions touched).
    by_kind: [(u64, u64, u64); 6],
}

fn evaluate(model: &Model, placement: &[u32], partitions: usize) -> Outcome {
    let mut relationships = vec![0u64; partitions];
    for (t, &p) in placement.iter().enumerate() {
        relationships[p as usize] += model.relationships[t];
    }
    let mut load = vec![0u64; partitions];
    let mut by_kind = [(0u64, 0u64, 0u64); 6];
    let mut multi = 0u64;
    let mut touched_total = 0u64;
    let mut fan_out_max = 0;
    let mut seen: Vec<u32> = Vec::with_capacity(partitions);
    let ops = model.kinds.len();
    for i in 0..ops {
        seen.clear();
        for &t in &model.touched[model.offsets[i]..model.offsets[i + 1]] {
            let p = placement[t as usize];
            if !seen.contains(&p) {
                seen.push(p);
                load[p as usize] += 1;
            }
        }
        let k = &mut by_kind[model.kinds[i] as usize];
        k.0 += 1;
        k.2 += seen.len() as u64;
        if seen.len() > 1 {
            k.1 += 1;
            multi += 1;
        }
        touched_total += seen.len() as u64;
        fan_out_max = fan_out_max.max(seen.len());
    }
    let mut token_total = 0u64;
    let mut token_max = 0;
    let mut users = 0u64;
    for trees in &model.user_trees {
        if trees.is_empty() {
            continue;
        }
        seen.clear();
        for &t in trees {
            let p = placement[t as usize];
            if !seen.contains(&p) {
                seen.push(p);
            }
        }
        users += 1;
        token_total += seen.len() as u64;
        token_max = token_max.max(seen.len());
    }
    let max_mean = |v: &[u64]| {
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        *v.iter().max().expect("partitions") as f64 / mean.max(f64::MIN_POSITIVE)
    };
    let mut sorted = relationships.clone();
    sorted.sort_unstable();
    Outcome {
        relationships_max_mean: max_mean(&relationships),
        relationships_p99_p50: quantile(&sorted, 0.99) as f64
            / quantile(&sorted, 0.5).max(1) as f64,
        load_max_mean: max_mean(&load),
        multi: multi as f64 / ops.max(1) as f64,
        fan_out: touched_total as f64 / ops.max(1) as f64,
        fan_out_max,
        token_mean: token_total as f64 / users.max(1) as f64,
        token_max,
        by_kind,
    }
}

/// The share of relationships on another partition after the change.
fn moved(model: &Model, before: &[u32], after: &[u32]) -> f64 {
    let total: u64 = model.relationships.iter().sum();
    let moved: u64 = (0..before.len())
        .filter(|&t| before[t] != after[t])
        .map(|t| model.relationships[t])
        .sum();
    moved as f64 / total.max(1) as f64
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn thousands(n: u64) -> String {
    let text = n.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    anyhow::ensure!(
        !args.partitions.is_empty() && args.partitions.iter().all(|&n| (1..=4096).contains(&n)),
        "--partitions takes counts from 1 to 4096"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.multi_root_users),
        "--multi-root-users takes a share from 0 to 1"
    );
    let workload = match &args.workload {
        Some(path) => load(path)?,
        None => {
            let smoke = args.smoke;
            let workload = generate(
                args.organizations
                    .unwrap_or(if smoke { 300 } else { 10_000 }),
                args.memberships
                    .unwrap_or(if smoke { 28_500 } else { 950_000 }),
                args.operations
                    .unwrap_or(if smoke { 20_000 } else { 1_000_000 }),
                args.multi_root_users,
                args.seed,
            );
            if let Some(path) = &args.record {
                record(&workload, path)?;
                println!("recorded to {}", path.display());
            }
            workload
        }
    };
    let built = started.elapsed();
    let model = model(&workload)?;

    // The world.
    let trees = model.root_ids.len();
    let total: u64 = model.relationships.iter().sum();
    let mut sizes = model.relationships.clone();
    sizes.sort_unstable();
    let users = model.user_trees.iter().filter(|t| !t.is_empty()).count();
    let multi_root = model.user_trees.iter().filter(|t| t.len() > 1).count();
    let roots_per_user =
        model.user_trees.iter().map(|t| t.len() as u64).sum::<u64>() as f64 / users.max(1) as f64;
    let largest_load = *model.load.iter().max().unwrap_or(&0) as f64
        / model.load.iter().sum::<u64>().max(1) as f64;
    println!(
        "\nThe workload ({})",
        match &args.workload {
            Some(path) => format!("read from {}", path.display()),
            None => format!("generated, seed {}", args.seed),
        }
    );
    print_table(
        &["", "value"],
        &[
            vec![
                "organizations".into(),
                thousands(workload.org_parent.len() as u64),
            ],
            vec!["trees (root organizations)".into(), thousands(trees as u64)],
            vec![
                "projects".into(),
                thousands(workload.project_org.len() as u64),
            ],
            vec!["users".into(), thousands(users as u64)],
            vec![
                "memberships".into(),
                thousands(workload.members.len() as u64),
            ],
            vec![
                "relationships (parent links, projects, memberships)".into(),
                thousands(total),
            ],
            vec![
                "users in more than one tree".into(),
                percent(multi_root as f64 / users.max(1) as f64),
            ],
            vec![
                "trees per user (mean / max)".into(),
                format!(
                    "{roots_per_user:.2} / {}",
                    model.user_trees.iter().map(Vec::len).max().unwrap_or(0)
                ),
            ],
            vec![
                "relationships per tree (p50 / p99 / max)".into(),
                format!(
                    "{} / {} / {}",
                    quantile(&sizes, 0.5),
                    quantile(&sizes, 0.99),
                    sizes.last().copied().unwrap_or(0)
                ),
            ],
            vec![
                "largest tree's share of relationships".into(),
                percent(*sizes.last().unwrap_or(&0) as f64 / total.max(1) as f64),
            ],
            vec![
                "busiest tree's share of calls".into(),
                percent(largest_load),
            ],
            vec!["calls".into(), thousands(workload.ops.len() as u64)],
        ],
    );

    // Placements.
    let rels: Vec<f64> = model.relationships.iter().map(|&r| r as f64).collect();
    let load_total = model.load.iter().sum::<u64>().max(1) as f64;
    let both: Vec<f64> = (0..trees)
        .map(|t| rels[t] / total.max(1) as f64 + model.load[t] as f64 / load_total)
        .collect();
    let strategies: [(&str, Placement<'_>); 4] = [
        (
            "hash",
            Box::new(|n| model.root_ids.iter().map(|&r| rendezvous(r, n)).collect()),
        ),
        (
            "hash + map of top 1%",
            Box::new(|n| hash_with_overrides(&model, &both, n, 0.01)),
        ),
        ("map by size", Box::new(|n| greedy(&rels, n))),
        ("map by size+load", Box::new(|n| greedy(&both, n))),
    ];
    let mut rows = Vec::new();
    let mut kind_rows = Vec::new();
    for &n in &args.partitions {
        for (name, place) in &strategies {
            let placement = place(n);
            let outcome = evaluate(&model, &placement, n);
            let next = if *name == "hash" {
                model
                    .root_ids
                    .iter()
                    .map(|&r| rendezvous(r, n + 1))
                    .collect()
            } else if name.starts_with("hash") {
                // The hashed trees follow rendezvous, the mapped ones stay.
                let mut next: Vec<u32> = model
                    .root_ids
                    .iter()
                    .map(|&r| rendezvous(r, n + 1))
                    .collect();
                for &t in &heaviest(&both)[..overridden(trees, 0.01)] {
                    next[t] = placement[t];
                }
                next
            } else {
                grow(
                    &placement,
                    if *name == "map by size" { &rels } else { &both },
                    n,
                )
            };
            rows.push(vec![
                n.to_string(),
                name.to_string(),
                format!("{:.2}", outcome.relationships_max_mean),
                format!("{:.2}", outcome.relationships_p99_p50),
                format!("{:.2}", outcome.load_max_mean),
                percent(outcome.multi),
                format!("{:.3}", outcome.fan_out),
                outcome.fan_out_max.to_string(),
                format!("{:.2} / {}", outcome.token_mean, outcome.token_max),
                percent(moved(&model, &placement, &next)),
            ]);
            if *name == "hash" && n == *args.partitions.iter().max().expect("counts") {
                for (k, (calls, multi, touched)) in outcome.by_kind.iter().enumerate() {
                    kind_rows.push(vec![
                        KINDS[k].to_string(),
                        percent(*calls as f64 / workload.ops.len().max(1) as f64),
                        percent(*multi as f64 / (*calls).max(1) as f64),
                        format!("{:.2}", *touched as f64 / (*calls).max(1) as f64),
                    ]);
                }
            }
        }
    }
    println!(
        "\nPartitions by organization tree: balance, cross-partition calls, token size, data moved"
    );
    print_table(
        &[
            "N",
            "placement",
            "rels max/mean",
            "rels p99/p50",
            "calls max/mean",
            "calls on >1 partition",
            "fan-out mean",
            "max",
            "token entries mean / max",
            "moved to N+1",
        ],
        &rows,
    );
    let largest = *args.partitions.iter().max().expect("counts");
    println!(
        "\nCalls by kind at N = {largest}, hashed (the user's trees from a user → roots directory)"
    );
    print_table(
        &["call", "share", "on >1 partition", "partitions touched"],
        &kind_rows,
    );

    // Adding a partition: hashing schemes compared.
    let mut moves = Vec::new();
    for &n in &args.partitions {
        let rendezvous_before: Vec<u32> =
            model.root_ids.iter().map(|&r| rendezvous(r, n)).collect();
        let rendezvous_after: Vec<u32> = model
            .root_ids
            .iter()
            .map(|&r| rendezvous(r, n + 1))
            .collect();
        let modulo_before: Vec<u32> = model.root_ids.iter().map(|&r| modulo(r, n)).collect();
        let modulo_after: Vec<u32> = model.root_ids.iter().map(|&r| modulo(r, n + 1)).collect();
        let map = greedy(&rels, n);
        let grown = grow(&map, &rels, n);
        let replanned = greedy(&rels, n + 1);
        moves.push(vec![
            format!("{n} → {}", n + 1),
            percent(1.0 / (n + 1) as f64),
            percent(moved(&model, &rendezvous_before, &rendezvous_after)),
            percent(moved(&model, &modulo_before, &modulo_after)),
            percent(moved(&model, &map, &grown)),
            format!(
                "{:.2}",
                evaluate(&model, &grown, n + 1).relationships_max_mean
            ),
            percent(moved(&model, &map, &replanned)),
        ]);
    }
    println!("\nAdding a partition: the share of relationships that move");
    print_table(
        &[
            "N",
            "ideal 1/(N+1)",
            "rendezvous hash",
            "hash mod N",
            "map, grown",
            "grown rels max/mean",
            "map, re-planned",
        ],
        &moves,
    );
    println!(
        "\nworkload {:.1} s, total {:.1} s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_workload_reads_back_the_same() {
        let workload = generate(60, 2_000, 500, 0.2, 7);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("workload.csv");
        record(&workload, &path).expect("record");
        assert_eq!(load(&path).expect("load"), workload);
    }

    #[test]
    fn rendezvous_moves_only_to_the_new_partition() {
        for root in 0..1_000 {
            let before = rendezvous(root, 7);
            let after = rendezvous(root, 8);
            assert!(after == before || after == 7);
        }
    }

    #[test]
    fn a_grown_map_moves_only_to_the_new_partition() {
        let weights: Vec<f64> = (1..200).map(|i| (1000 / i) as f64).collect();
        let map = greedy(&weights, 4);
        let grown = grow(&map, &weights, 4);
        for (before, after) in map.iter().zip(&grown) {
            assert!(after == before || *after == 4);
        }
        assert!(grown.contains(&4));
    }
}
