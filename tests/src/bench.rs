//! What the benchmark programs share: closed-loop load over gRPC with
//! latency histograms, and aligned tables.

use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tenantry_testkit::Sandbox;
use tonic::transport::Channel;

/// The outcome of a closed-loop measurement.
pub struct Run {
    /// Calls made.
    pub requests: u64,
    /// How long the measurement took.
    pub elapsed: Duration,
    /// Latency of each request, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Run {
    /// Calls per second.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// A latency quantile, in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }

    /// A table row: `name`, the rate of `items` per call (calls/s for one),
    /// p50 and p99 in microseconds.
    pub fn row(&self, name: impl Into<String>, items: usize) -> Vec<String> {
        vec![
            name.into(),
            rate(self.per_second() * items as f64),
            self.quantile_us(0.5).to_string(),
            self.quantile_us(0.99).to_string(),
        ]
    }
}

/// A histogram of 1 to 10^11 units, three significant digits.
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs (or ns) to 100 s, three significant digits.
    Ok(Histogram::new_with_bounds(1, 100_000_000_000, 3)?)
}

/// Runs a closed loop: `clients.len()` tasks, each issuing a call, awaiting
/// it, recording its latency and repeating until `duration` has passed
/// (every task makes at least one call). `call` gets a clone of its task's
/// client, the task number and the call number within the task.
pub async fn closed_loop<C, F, Fut>(
    clients: Vec<C>,
    duration: Duration,
    call: F,
) -> anyhow::Result<Run>
where
    C: Clone + Send + 'static,
    F: Fn(C, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (task, client) in clients.into_iter().enumerate() {
        let call = call.clone();
        tasks.spawn(async move {
            let mut latency = histogram()?;
            for n in 0.. {
                let sent = Instant::now();
                call(client.clone(), task, n).await?;
                let done = Instant::now();
                latency.saturating_record((done - sent).as_micros() as u64);
                if done >= deadline {
                    break;
                }
            }
            anyhow::Ok(latency)
        });
    }
    let mut latency_us = histogram()?;
    while let Some(joined) = tasks.join_next().await {
        latency_us.add(joined??)?;
    }
    Ok(Run {
        requests: latency_us.len(),
        elapsed: start.elapsed(),
        latency_us,
    })
}

/// A warm-up (discarded), then the measurement.
pub async fn warm_then_measure<C, F, Fut>(
    warmup: Duration,
    measure: Duration,
    clients: Vec<C>,
    call: F,
) -> anyhow::Result<Run>
where
    C: Clone + Send + 'static,
    F: Fn(C, usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    closed_loop(clients.clone(), warmup, call.clone()).await?;
    closed_loop(clients, measure, call).await
}

/// One channel (one HTTP/2 connection) per simulated client.
pub async fn channels(sandbox: &Sandbox, n: usize) -> anyhow::Result<Vec<Channel>> {
    connect(&format!("http://{}", sandbox.server.grpc_addr), n).await
}

/// One channel (one HTTP/2 connection) per simulated client, to `url`.
pub async fn connect(url: &str, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n {
        channels.push(
            tonic::transport::Endpoint::from_shared(url.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// Prints an aligned table: the first column left-aligned, the rest right.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("  {cell:<width$}"));
            } else {
                out.push_str(&format!("  {cell:>width$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut headers.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut rule.iter().map(String::as_str));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Microseconds as milliseconds with two decimals.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// A rate, with a decimal when it is small.
pub fn rate(per_second: f64) -> String {
    if per_second >= 100.0 {
        format!("{per_second:.0}")
    } else {
        format!("{per_second:.1}")
    }
}

/// The measurement and warm-up of a benchmark: `--duration-secs` or 5 s
/// (0.25 s with `--smoke`), after a warm-up of a quarter of it (at most
/// 2 s; 50 ms with `--smoke`).
pub fn timing(smoke: bool, duration_secs: Option<f64>) -> anyhow::Result<(Duration, Duration)> {
    let secs = duration_secs.unwrap_or(if smoke { 0.25 } else { 5.0 });
    if !(secs.is_finite() && secs > 0.0) {
        anyhow::bail!("--duration-secs must be a positive number of seconds, got {secs}");
    }
    let measure = Duration::from_secs_f64(secs);
    let warmup = if smoke {
        Duration::from_millis(50)
    } else {
        (measure / 4).min(Duration::from_secs(2))
    };
    Ok((measure, warmup))
}

/// A schema of its own in the Postgres database at `url`.
pub async fn fresh_schema(url: &str) -> anyhow::Result<String> {
    let db = tenantry_kit::db::Database::connect(url, &Default::default()).await?;
    let schema = format!("bench_{}", tenantry_kit::id::new_id().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(db.writer())
        .await?;
    db.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// A plan catalog whose limits never refuse a benchmark's writes (the
/// quota is still checked and held, and usage still counted).
pub const UNLIMITED_PLANS: &str = r#"
[plans.free]
display_name = "Bench"
currency_code = "USD"
included_seats = 1000000
[plans.free.limits]
projects = 1000000
members = 1000000
teams = 1000000
sub_organizations = 1000000
api_keys = 1000000
"#;
