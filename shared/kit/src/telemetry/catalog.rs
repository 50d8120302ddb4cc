//! Every metric a Tenantry process exports, in one table: its name, type,
//! labels and meaning. The exporter's `# HELP` lines come from it, the
//! metrics table of the deployment guide is checked against it (it is
//! [`markdown_table`]), and a test checks that every metric the code
//! records is in it with the same type and labels — so the dashboard, the
//! alerts and the documentation speak of the same metrics.

/// A metric's type, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The type's name in the exposition format.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric.
#[derive(Debug)]
pub struct MetricDoc {
    /// The metric's name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its labels: (name, what the values are; empty when the name says it).
    pub labels: &'static [(&'static str, &'static str)],
    /// What it measures, who records it and when: the `# HELP` text.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [(&'static str, &'static str)],
    help: &'static str,
) -> MetricDoc {
    MetricDoc {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric, grouped by what records it.
pub const METRICS: &[MetricDoc] = &[
    // Every process.
    metric(
        "tenantry_build_info",
        Gauge,
        &[
            ("version", "the release"),
            (
                "commit",
                "the source revision, `unknown` when built outside git",
            ),
        ],
        "Always 1: the version and commit this process runs.",
    ),
    metric(
        "tenantry_grpc_requests_total",
        Counter,
        &[
            ("method", "`/package.Service/Method`, or `unknown`"),
            ("code", "gRPC status number, or `transport`"),
        ],
        "Every gRPC server: calls answered.",
    ),
    metric(
        "tenantry_grpc_request_duration_seconds",
        Histogram,
        &[("method", "")],
        "Every gRPC server: time to answer a call.",
    ),
    metric(
        "tenantry_db_pool_connections",
        Gauge,
        &[("state", "`idle`, `in_use`, `max`")],
        "Every process with a database: its pool's connections, sampled every 10 s.",
    ),
    metric(
        "tenantry_jwks_refreshes_total",
        Counter,
        &[("result", "`ok`, `error`, `rate_limited`")],
        "Every process: refreshes of identity's token key set.",
    ),
    metric(
        "tenantry_cache_entries",
        Gauge,
        &[(
            "cache",
            "`verified_tokens`, `api_key_exchanges`, `gateway_api_keys`, `gateway_plan_limits`, `gateway_rate_limit_buckets`, `billing_workspace_modes`",
        )],
        "Every process with such a cache: its entries, set on each change. Every cache on a request path has a capacity and drops each entry at its deadline.",
    ),
    metric(
        "tenantry_tokio_workers",
        Gauge,
        &[],
        "Every process: the async runtime's worker threads, read at each scrape.",
    ),
    metric(
        "tenantry_tokio_alive_tasks",
        Gauge,
        &[],
        "Every process: tasks alive in the async runtime, read at each scrape.",
    ),
    metric(
        "tenantry_tokio_global_queue_depth",
        Gauge,
        &[],
        "Every process: tasks waiting in the runtime's global queue for a worker, read at each scrape.",
    ),
    metric(
        "process_cpu_seconds_total",
        Counter,
        &[],
        "Every process: user and system CPU time, in seconds, read at each scrape.",
    ),
    metric(
        "process_resident_memory_bytes",
        Gauge,
        &[],
        "Every process: resident memory, read at each scrape.",
    ),
    metric(
        "process_virtual_memory_bytes",
        Gauge,
        &[],
        "Every process: virtual memory, read at each scrape.",
    ),
    metric(
        "process_virtual_memory_max_bytes",
        Gauge,
        &[],
        "Every process: the most virtual memory it may use, read at each scrape.",
    ),
    metric(
        "process_open_fds",
        Gauge,
        &[],
        "Every process: open file descriptors, read at each scrape.",
    ),
    metric(
        "process_max_fds",
        Gauge,
        &[],
        "Every process: the most file descriptors it may open, read at each scrape.",
    ),
    metric(
        "process_threads",
        Gauge,
        &[],
        "Every process: its operating-system threads, read at each scrape.",
    ),
    metric(
        "process_start_time_seconds",
        Gauge,
        &[],
        "Every process: when it started, in seconds since the Unix epoch.",
    ),
    // Events: outbox, bus, consumers, hand-overs.
    metric(
        "tenantry_outbox_published_total",
        Counter,
        &[("service", "")],
        "Each service's outbox relay: events published to the bus.",
    ),
    metric(
        "tenantry_outbox_oldest_pending_seconds",
        Gauge,
        &[("service", "")],
        "The outbox lag: age of the oldest unpublished event (0 when none), set by the leading relay each round.",
    ),
    metric(
        "tenantry_consumer_lag_seconds",
        Gauge,
        &[("consumer", "")],
        "Every event consumer: time from an event's change to its handling, set per event.",
    ),
    metric(
        "tenantry_consumer_pending",
        Gauge,
        &[("consumer", "")],
        "Every NATS consumer, every 5 s: events not yet acknowledged by any replica of it.",
    ),
    metric(
        "tenantry_consumer_stalled_seconds",
        Gauge,
        &[("consumer", "")],
        "Every NATS consumer, every 5 s: time since its last acknowledgement while events are pending (0 when none are).",
    ),
    metric(
        "tenantry_index_deliveries_failed_total",
        Counter,
        &[("service", "")],
        "Organization, identity: writes whose events could not be handed to the authorization index at once (they follow by the bus; checks with the write's token wait for them).",
    ),
    metric(
        "tenantry_follower_deliveries_failed_total",
        Counter,
        &[("service", ""), ("follower", "`billing`, `audit`")],
        "Every service: writes whose events could not be handed to billing or audit at once (they follow by the bus and the writer's retry; usage or the log shows them late).",
    ),
    // Services.
    metric(
        "tenantry_api_key_cache_total",
        Counter,
        &[("result", "`hit`, `miss`")],
        "Identity (`AuthenticateApiKey`): lookups of verified API keys.",
    ),
    metric(
        "tenantry_rbac_replicas_fenced_total",
        Counter,
        &[],
        "Rbac: replicas a write fenced because they had not applied it within a second.",
    ),
    metric(
        "tenantry_billing_quota_checks_total",
        Counter,
        &[("metric", ""), ("allowed", "`true`, `false`")],
        "Billing (`CheckQuota`): quota decisions.",
    ),
    metric(
        "tenantry_audit_events_ingested_total",
        Counter,
        &[("source", "the emitting service")],
        "Audit: events appended to the log.",
    ),
    metric(
        "tenantry_audit_edge_reports_skipped_total",
        Counter,
        &[],
        "Audit: rate-limit reports from the gateway for an organization the log does not know, skipped.",
    ),
    // The gateway.
    metric(
        "tenantry_gateway_requests_total",
        Counter,
        &[
            ("route", "REST template or gRPC method, `unmatched`"),
            ("status", "HTTP"),
        ],
        "Gateway: requests answered.",
    ),
    metric(
        "tenantry_gateway_request_duration_seconds",
        Histogram,
        &[("route", "")],
        "Gateway: time to answer a request.",
    ),
    metric(
        "tenantry_gateway_rate_limited_total",
        Counter,
        &[
            ("class", "`read`, `write`, `auth`, `expensive`"),
            ("scope", ""),
        ],
        "Gateway: requests refused over a rate limit.",
    ),
    metric(
        "tenantry_gateway_api_key_exchanges_total",
        Counter,
        &[("result", "`cached`, `exchanged`, `refused`")],
        "Gateway: API keys exchanged for tokens.",
    ),
    metric(
        "tenantry_gateway_rate_limit_store_errors_total",
        Counter,
        &[],
        "Gateway: failures of the shared rate-limit store (Redis).",
    ),
    metric(
        "tenantry_gateway_rate_limit_reports_open",
        Gauge,
        &[],
        "Gateway: windows of refused requests being counted, not yet reported to audit.",
    ),
    metric(
        "tenantry_gateway_rate_limit_reports_sent_total",
        Counter,
        &[],
        "Gateway: windows of refused requests reported to audit.",
    ),
    metric(
        "tenantry_gateway_rate_limit_reports_dropped_total",
        Counter,
        &[],
        "Gateway: windows of refused requests not reported (too many open, or audit unreachable for too long).",
    ),
];

/// The metric named `name`.
pub fn find(name: &str) -> Option<&'static MetricDoc> {
    METRICS.iter().find(|m| m.name == name)
}

/// The `# HELP` text of a metric: its meaning without the Markdown.
pub fn help_text(doc: &MetricDoc) -> String {
    doc.help.replace('`', "")
}

/// Describes every metric to the installed recorder, so that the exporter
/// writes its `# HELP` and `# TYPE` lines.
pub fn describe_all() {
    for doc in METRICS {
        let help = help_text(doc);
        match doc.kind {
            Kind::Counter => metrics::describe_counter!(doc.name, help),
            Kind::Gauge => metrics::describe_gauge!(doc.name, help),
            Kind::Histogram => metrics::describe_histogram!(doc.name, help),
        }
    }
}

/// The table of the deployment guide: metric, type, labels, meaning.
pub fn markdown_table() -> String {
    let mut table = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for doc in METRICS {
        let labels = if doc.labels.is_empty() {
            "—".to_string()
        } else {
            doc.labels
                .iter()
                .map(|(name, values)| match values {
                    &"" => format!("`{name}`"),
                    values => format!("`{name}` ({values})"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            doc.name,
            doc.kind.as_str(),
            labels,
            doc.help
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    use super::*;

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// {name: (kind, labels)} of every `metrics::counter!`, `gauge!` and
    /// `histogram!` with a literal name under `shared/` and `services/`.
    fn recorded() -> BTreeMap<String, (String, BTreeSet<String>)> {
        let mut files = Vec::new();
        for dir in ["shared", "services"] {
            rust_files(&repository().join(dir), &mut files);
        }
        let mut found: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for kind in ["counter", "gauge", "histogram"] {
                let call = format!("metrics::{kind}!(");
                for (at, _) in text.match_indices(&call) {
                    let rest = &text[at + call.len()..];
                    let Some(rest) = rest.trim_start().strip_prefix('"') else {
                        continue;
                    };
                    let name = rest.split('"').next().unwrap().to_string();
                    // The call's arguments, up to its closing parenthesis.
                    let mut depth = 1;
                    let end = rest
                        .char_indices()
                        .find(|(_, c)| {
                            depth += match c {
                                '(' => 1,
                                ')' => -1,
                                _ => 0,
                            };
                            depth == 0
                        })
                        .map_or(rest.len(), |(i, _)| i);
                    // A label is the string just before each `=>`.
                    let parts: Vec<&str> = rest[..end].split("=>").collect();
                    let labels: BTreeSet<String> = parts[..parts.len() - 1]
                        .iter()
                        .filter_map(|before| before.trim_end().strip_suffix('"'))
                        .filter_map(|before| before.rsplit('"').next())
                        .map(str::to_string)
                        .collect();
                    let entry = found
                        .entry(name)
                        .or_insert_with(|| (kind.to_string(), BTreeSet::new()));
                    entry.1.extend(labels);
                }
            }
        }
        found
    }

    #[test]
    fn every_metric_the_code_records_is_in_the_catalog_with_its_type_and_labels() {
        let recorded = recorded();
        assert!(
            recorded.len() > 20,
            "the scan found the metrics: {recorded:?}"
        );
        for (name, (kind, labels)) in &recorded {
            let doc = find(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
            assert_eq!(doc.kind.as_str(), kind, "{name}'s type");
            let documented: BTreeSet<String> =
                doc.labels.iter().map(|(l, _)| l.to_string()).collect();
            assert_eq!(&documented, labels, "{name}'s labels");
        }
        // Nothing in the catalog that nothing records (process metrics come
        // from their collector, not from a macro).
        for doc in METRICS {
            assert!(
                recorded.contains_key(doc.name) || doc.name.starts_with("process_"),
                "{} is in the catalog but nothing records it",
                doc.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_helps_are_sentences() {
        let names: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), METRICS.len());
        for doc in METRICS {
            assert!(doc.help.ends_with('.'), "{}", doc.name);
            assert!(!help_text(doc).contains('\n'), "{}", doc.name);
        }
    }

    #[test]
    fn the_deployment_guide_shows_this_table() {
        let guide = std::fs::read_to_string(repository().join("deploy/README.md")).unwrap();
        let table = markdown_table();
        assert!(
            guide.contains(&table),
            "deploy/README.md's metrics table differs from the catalog; it should read:\n\n{table}"
        );
    }
}
