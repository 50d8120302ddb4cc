//! The simulated workload: a world of organization trees, projects and
//! memberships, and the calls made against it; generated, recorded to a
//! file, or read back from one.

use std::fmt::Write as _;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An object a call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Organization(u32),
    Project(u32),
}

/// One call of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
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
    pub(crate) fn kind(&self) -> usize {
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

pub(crate) const KINDS: [&str; 6] = [
    "CheckPermission",
    "CheckBulkPermissions (10)",
    "LookupResources",
    "ListMyOrganizations / Me",
    "write in one tree",
    "user-wide write (disable)",
];

pub(crate) const NONE: u32 = u32::MAX;

/// A world and the calls made against it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Workload {
    /// Each organization's parent (`NONE` for a root), by id.
    pub(crate) org_parent: Vec<u32>,
    /// Each project's organization, by id.
    pub(crate) project_org: Vec<u32>,
    /// (user, organization).
    pub(crate) members: Vec<(u32, u32)>,
    pub(crate) ops: Vec<Op>,
}

/// A standard normal sample (Box–Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Picks an index with probability proportional to its weight, from
/// cumulative weights.
pub(crate) fn pick(cumulative: &[f64], rng: &mut StdRng) -> usize {
    let total = *cumulative.last().expect("weights");
    let x = rng.random_range(0.0..total);
    cumulative
        .partition_point(|&c| c <= x)
        .min(cumulative.len() - 1)
}

pub(crate) fn cumulate(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut sum = 0.0;
    weights
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

/// Generates a world and its calls.
pub(crate) fn generate(
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

pub(crate) fn object_text(object: Object) -> String {
    match object {
        Object::Organization(o) => format!("o{o}"),
        Object::Project(p) => format!("p{p}"),
    }
}

/// Writes a workload in the recorded format.
pub(crate) fn record(workload: &Workload, path: &Path) -> anyhow::Result<()> {
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
pub(crate) fn load(path: &Path) -> anyhow::Result<Workload> {
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
