//! The soak itself: rounds of load against the server, their summary, and
//! the server's resident memory.

use super::*;

pub(crate) async fn soak(args: Args) -> anyhow::Result<()> {
    let rounds = args
        .minutes
        .unwrap_or(if args.smoke { 3 } else { 10 })
        .max(1);
    let round =
        Duration::from_secs_f64(
            args.round_secs
                .unwrap_or(if args.smoke { 2.0 } else { 60.0 }),
        );
    let users = args.users.unwrap_or(if args.smoke { 20 } else { 1_000 });
    let members = args
        .members
        .unwrap_or(if args.smoke { 5 } else { 100 })
        .clamp(1, users);
    let concurrency = args
        .concurrency
        .unwrap_or(if args.smoke { 8 } else { 64 })
        .max(2);

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("tenantry.toml");
    std::fs::write(
        &config,
        "[identity]\nplatform_admins = [\"soak-admin@example.com\"]\n",
    )?;
    let mut envs = vec![("TENANTRY_CONFIG", config.display().to_string())];
    if let Some(url) = &args.database_url {
        envs.push(("DATABASE_URL", url.clone()));
    }
    if let Some(url) = &args.nats_url {
        envs.push(("NATS_URL", url.clone()));
    }
    if let Some(file) = &args.profile {
        envs.push((
            PROFILE_ENV,
            std::path::absolute(file)?.display().to_string(),
        ));
    }
    let exe = std::env::current_exe()?;
    let server = ServerProcess::start(&exe.display().to_string(), &args.services, &envs).await?;
    let url = server.url();
    println!(
        "soak: `{} serve --services {}` (pid {}), {} rounds of {:.0} s, concurrency {concurrency}",
        exe.file_name().unwrap_or_default().to_string_lossy(),
        args.services,
        server.id(),
        rounds,
        round.as_secs_f64(),
    );

    let started = Instant::now();
    let channel = connect(&url, 1).await?.remove(0);
    let world = load(&server, &channel, users, members).await?;
    println!(
        "loaded {} users and organizations, {} memberships by invitation through the API in {:.1} s ({} calls retried after UNAVAILABLE); server RSS {:.0} MiB",
        world.users.len(),
        world.roles.len(),
        started.elapsed().as_secs_f64(),
        RETRIED.load(Ordering::Relaxed),
        mib(rss_bytes(server.id())?),
    );

    let settled = settle(server.id(), Duration::from_secs(900)).await?;
    println!(
        "the server was idle again {:.0} s later (audit ingesting the load's events); RSS {:.0} MiB\n",
        settled.as_secs_f64(),
        mib(rss_bytes(server.id())?),
    );

    let scraper = args.scrape_secs.map(|secs| {
        let addr = server.http_addr;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs_f64(secs.max(0.1))).await;
                let _ = http_get(addr, "/metrics").await;
            }
        })
    });

    let world = Arc::new(world);
    let channels = connect(&url, concurrency.div_ceil(8)).await?;
    // A row per round as it ends: a long soak shows its trend as it goes.
    let row = |cells: [String; 9]| {
        println!(
            "  {:>5}  {:>14}  {:>12}  {:>9}  {:>13}  {:>11}  {:>7}  {:>8}  {:>5}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8]
        )
    };
    row([
        "round",
        "single calls/s",
        "bulk calls/s",
        "checks/s",
        "single p99 µs",
        "bulk p99 µs",
        "RSS MiB",
        "heap MiB",
        "wrong",
    ]
    .map(String::from));
    let mut results: Vec<Round> = Vec::new();
    for n in 1..=rounds {
        let tokens = Arc::new(issue_tokens(&channel, &world).await?);
        let result = load_round(&channels, concurrency, round, &world, &tokens, n).await?;
        let rss = rss_bytes(server.id())?;
        row([
            n.to_string(),
            rate(result.single.per_second()),
            rate(result.bulk.per_second()),
            rate(result.checks_per_second()),
            result.single.quantile_us(0.99).to_string(),
            result.bulk.quantile_us(0.99).to_string(),
            format!("{:.0}", mib(rss)),
            live_heap(args.profile.as_deref()).map_or("-".into(), |b| format!("{:.1}", mib(b))),
            result.wrong.to_string(),
        ]);
        anyhow::ensure!(
            result.wrong == 0,
            "round {n}: the server gave wrong answers"
        );
        results.push(Round { rss, ..result });
    }
    if let Some(scraper) = scraper {
        scraper.abort();
    }
    summarize(&results);

    if args.profile.is_some() {
        let status = server.terminate()?;
        anyhow::ensure!(status.success(), "the server exited with {status}");
        println!(
            "heap profile written to {}",
            args.profile.unwrap_or_default().display()
        );
    }
    Ok(())
}

/// What one round measured.
pub(crate) struct Round {
    pub(crate) single: tenantry_tests::bench::Run,
    pub(crate) bulk: tenantry_tests::bench::Run,
    pub(crate) wrong: u64,
    pub(crate) rss: u64,
}

impl Round {
    fn checks_per_second(&self) -> f64 {
        self.single.per_second() + 10.0 * self.bulk.per_second()
    }
}

/// RSS from round 2 to the last, and throughput from the first to the last.
pub(crate) fn summarize(results: &[Round]) {
    let (Some(first), Some(last)) = (results.first(), results.last()) else {
        return;
    };
    let baseline = results.get(1).unwrap_or(first);
    println!(
        "\nRSS round 2 → last: {:.0} → {:.0} MiB ({:+.1}%); checks/s round 1 → last: {} → {} ({:+.1}%)",
        mib(baseline.rss),
        mib(last.rss),
        percent(baseline.rss as f64, last.rss as f64),
        rate(first.checks_per_second()),
        rate(last.checks_per_second()),
        percent(first.checks_per_second(), last.checks_per_second()),
    );
}

pub(crate) fn percent(from: f64, to: f64) -> f64 {
    (to / from.max(f64::MIN_POSITIVE) - 1.0) * 100.0
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The resident memory of a process, from `/proc`.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for process {pid}"))?;
    Ok(kib * 1024)
}
