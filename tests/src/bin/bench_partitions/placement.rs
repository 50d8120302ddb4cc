//! Placing trees onto partitions (rendezvous hashing, greedy maps, maps
//! grown by one partition) and what a placement gives: balance, calls on
//! more than one partition, data moved.

use crate::workload::{NONE, Object, Op, Workload};

/// The workload as the placement sees it: trees (by their root), their
/// relationships, each user's trees, and the trees each call touches.
pub(crate) struct Model {
    /// The root organization's id of each tree.
    pub(crate) root_ids: Vec<u32>,
    /// Relationships per tree: parent links, projects, memberships.
    pub(crate) relationships: Vec<u64>,
    /// Calls per tree (a call touching k trees counts in each).
    pub(crate) load: Vec<u64>,
    /// Each user's trees, sorted.
    pub(crate) user_trees: Vec<Vec<u32>>,
    /// The trees each call touches, flattened: `touched[offsets[i]..offsets[i + 1]]`.
    pub(crate) touched: Vec<u32>,
    pub(crate) offsets: Vec<usize>,
    pub(crate) kinds: Vec<u8>,
}

pub(crate) fn model(workload: &Workload) -> anyhow::Result<Model> {
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
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Rendezvous (highest random weight) hashing: the partition whose hash
/// with the root scores highest.
pub(crate) fn rendezvous(root: u32, partitions: usize) -> u32 {
    (0..partitions as u64)
        .max_by_key(|&p| mix(((root as u64) << 32) | p))
        .expect("at least one partition") as u32
}

pub(crate) fn modulo(root: u32, partitions: usize) -> u32 {
    (mix(root as u64) % partitions as u64) as u32
}

/// Largest first onto the lightest partition (LPT), by `weight`.
pub(crate) fn greedy(weight: &[f64], partitions: usize) -> Vec<u32> {
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
pub(crate) fn heaviest(weight: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weight.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then(a.cmp(&b)));
    order
}

/// How many trees the map of the `share` heaviest holds.
pub(crate) fn overridden(trees: usize, share: f64) -> usize {
    ((trees as f64 * share).ceil() as usize).min(trees)
}

/// Hashing for most trees, a map for the largest: the top `share` of trees
/// by `weight` are placed, largest first, onto the lightest partition once
/// the hashed trees are in.
pub(crate) fn hash_with_overrides(
    model: &Model,
    weight: &[f64],
    partitions: usize,
    share: f64,
) -> Vec<u32> {
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
pub(crate) fn grow(placement: &[u32], weight: &[f64], partitions: usize) -> Vec<u32> {
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

pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// A placement strategy: the partition of each tree, given N.
pub(crate) type Placement<'a> = Box<dyn Fn(usize) -> Vec<u32> + 'a>;

/// What one placement gives.
pub(crate) struct Outcome {
    pub(crate) relationships_max_mean: f64,
    pub(crate) relationships_p99_p50: f64,
    pub(crate) load_max_mean: f64,
    pub(crate) multi: f64,
    pub(crate) fan_out: f64,
    pub(crate) fan_out_max: usize,
    pub(crate) token_mean: f64,
    pub(crate) token_max: usize,
    /// Per kind of call: (calls, calls touching more than one partition,
    /// partitions touched).
    pub(crate) by_kind: [(u64, u64, u64); 6],
}

pub(crate) fn evaluate(model: &Model, placement: &[u32], partitions: usize) -> Outcome {
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
pub(crate) fn moved(model: &Model, before: &[u32], after: &[u32]) -> f64 {
    let total: u64 = model.relationships.iter().sum();
    let moved: u64 = (0..before.len())
        .filter(|&t| before[t] != after[t])
        .map(|t| model.relationships[t])
        .sum();
    moved as f64 / total.max(1) as f64
}
