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

mod placement;
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use tenantry_tests::bench::print_table;

use placement::*;
use workload::*;

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
