//! The Kubernetes shape, on one machine: every service in a process of its
//! own, started with the arguments and environment the manifests under
//! deploy/ give each Deployment (production mode, Postgres, NATS, secrets
//! from the environment, peers by address, migrations run first by the
//! migration Job's command), and the main journey through the gateway
//! process. Runs when TENANTRY_TEST_DATABASE_URL and TENANTRY_TEST_NATS_URL
//! are set (CI sets both).

use std::net::SocketAddr;

use serde_json::json;
use tenantry_proto::tenantry::audit::v1 as audit;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::billing::v1 as billing;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as org;
use tenantry_testkit::clients::{Audit, Authz, Identity, Orgs, Subscriptions};
use tenantry_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use tenantry_testkit::{
    NatsServer, PostgresServer, ServerProcess, Storage, TestDatabase, authed, free_addr, nats_url,
    unique_name,
};
use tenantry_testkit::{check, people};
use tenantry_tests::rest::Rest;
use tonic::Code;
use tonic::transport::Channel;

const BINARY: &str = env!("CARGO_BIN_EXE_tenantry-process");
const SERVICES: [&str; 6] = [
    "identity",
    "organization",
    "rbac",
    "billing",
    "audit",
    "gateway",
];

#[tokio::test]
async fn each_service_in_its_own_process_serves_the_journey() {
    let (Ok(_), Some(nats)) = (std::env::var("TENANTRY_TEST_DATABASE_URL"), nats_url()) else {
        eprintln!("TENANTRY_TEST_DATABASE_URL or TENANTRY_TEST_NATS_URL is not set; skipping");
        return;
    };
    let (_database, addrs, env) = split_deployment(&nats).await;
    let traces = OtlpReceiver::start().await.unwrap();
    let processes = one_process_per_deployment(&addrs, &env, Some(&traces)).await;

    // The journey, through the gateway process.
    let rest = Rest::new(format!("http://{}", addrs[position("gateway")].1));
    let (token, org) = a_user_signs_up_and_creates_a_project(&rest).await;
    events_cross_nats_to_billing_and_audit(&rest, &token, &org).await;
    // Stopped as Kubernetes stops them: each flushes its spans on the way.
    for process in processes {
        assert!(process.terminate().unwrap().success());
    }
    one_trace_runs_from_the_gateway_through_the_services(&traces.spans());
}

/// One process per Deployment: `serve --services <name>`, each ready, each
/// exporting its spans to `traces` when given.
async fn one_process_per_deployment(
    addrs: &[(SocketAddr, SocketAddr)],
    env: &[(&'static str, String)],
    traces: Option<&OtlpReceiver>,
) -> Vec<ServerProcess> {
    let edge_env = edge_env(env);
    let mut processes = Vec::new();
    for (name, (grpc_addr, http_addr)) in SERVICES.iter().zip(addrs) {
        let mut env = if *name == "gateway" {
            edge_env.clone()
        } else {
            env.to_vec()
        };
        if let Some(traces) = traces {
            env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", traces.endpoint.clone()));
            env.push(("OTEL_SERVICE_NAME", format!("tenantry-{name}")));
        }
        processes.push(
            ServerProcess::spawn_on(BINARY, name, *grpc_addr, *http_addr, &env)
                .unwrap_or_else(|e| panic!("{name}: {e:#}")),
        );
    }
    for (name, process) in SERVICES.iter().zip(&mut processes) {
        process
            .wait_ready()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
    processes
}

/// Ada signs up, creates a project in her organization and may create
/// more: her token and her organization.
async fn a_user_signs_up_and_creates_a_project(rest: &Rest) -> (String, String) {
    let signed = rest
        .ok(
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({"email": "ada@example.com", "password": people::PASSWORD, "displayName": "Ada"})),
        )
        .await;
    let token = signed["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let user = signed["user"]["name"]
        .as_str()
        .unwrap()
        .replace("users/", "");
    let org = signed["organization"].as_str().unwrap().to_string();
    let project = rest
        .until_ok(
            "POST",
            &format!("/v1/{org}/projects"),
            Some(&token),
            Some(json!({"displayName": "Rocket"})),
        )
        .await;
    assert!(
        project["project"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&org)
    );
    let answer = rest
        .ok(
            "POST",
            "/v1/authz:check",
            Some(&token),
            Some(json!({
                "resource": {"objectType": "organization", "objectId": org.replace("organizations/", "")},
                "permission": "project.create",
                "subject": {"object": {"objectType": "user", "objectId": user}},
            })),
        )
        .await;
    assert_eq!(answer["permissionship"], "PERMISSIONSHIP_ALLOWED");
    (token, org)
}

/// The other processes know what the write did when it answered: billing
/// subscribed the organization, audit recorded the project (each write
/// hands its events to them; NATS carries them too).
async fn events_cross_nats_to_billing_and_audit(rest: &Rest, token: &str, org: &str) {
    rest.ok("GET", &format!("/v1/{org}/subscription"), Some(token), None)
        .await;
    let page = rest
        .ok("GET", &format!("/v1/{org}/auditEvents"), Some(token), None)
        .await;
    let audited = page["auditEvents"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["action"] == "project.created"));
    assert!(audited, "project.created reached the audit process: {page}");
}

/// The spans of the project's creation, as a tracing backend would show
/// them: the gateway's HTTP span named by its route, its client span, the
/// organization process's server span under it, that process's call to
/// rbac and rbac's span under it, and the statements, each with the
/// attributes of the OpenTelemetry conventions.
fn one_trace_runs_from_the_gateway_through_the_services(spans: &[ReceivedSpan]) {
    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    let find =
        |what: &str, pick: &dyn Fn(&ReceivedSpan) -> bool| -> ReceivedSpan {
            spans.iter().find(|s| pick(s)).cloned().unwrap_or_else(|| {
                panic!("no {what} among {} spans: {:#?}", spans.len(), names(spans))
            })
        };
    let http = find("gateway HTTP span", &|s| {
        s.service == "tenantry-gateway"
            && s.kind == SERVER
            && s.name == "POST /v1/{parent=organizations/*}/projects"
            && s.attribute("http.response.status_code") == "200"
    });
    assert_eq!(
        http.attribute("http.route"),
        "/v1/{parent=organizations/*}/projects"
    );
    assert_eq!(http.attribute("http.request.method"), "POST");
    assert_eq!(http.attribute("http.response.status_code"), "200");
    const CREATE: &str = "tenantry.organization.v1.ProjectService/CreateProject";
    let to_organization = find("gateway client span", &|s| {
        s.service == "tenantry-gateway"
            && s.kind == CLIENT
            && s.name == CREATE
            && s.trace_id == http.trace_id
    });
    assert_eq!(to_organization.parent_span_id, http.span_id);
    let served = find("organization server span", &|s| {
        s.service == "tenantry-organization" && s.kind == SERVER && s.name == CREATE
    });
    assert_eq!(served.trace_id, http.trace_id, "one trace across processes");
    assert_eq!(served.parent_span_id, to_organization.span_id);
    assert_eq!(served.attribute("rpc.system"), "grpc");
    assert_eq!(
        served.attribute("rpc.service"),
        "tenantry.organization.v1.ProjectService"
    );
    assert_eq!(served.attribute("rpc.method"), "CreateProject");
    assert_eq!(served.attribute("rpc.grpc.status_code"), "0");
    assert_ne!(served.status, 2, "an OK call is no error");
    // The organization process asks rbac (another process) on the way.
    let to_rbac = find("organization → rbac client span", &|s| {
        s.service == "tenantry-organization"
            && s.kind == CLIENT
            && s.parent_span_id == served.span_id
            && s.attribute("rpc.service").starts_with("tenantry.authz.v1.")
    });
    assert!(!to_rbac.attribute("server.address").is_empty());
    let in_rbac = find("rbac server span", &|s| {
        s.service == "tenantry-rbac" && s.kind == SERVER && s.parent_span_id == to_rbac.span_id
    });
    assert_eq!(in_rbac.trace_id, http.trace_id);
    assert_eq!(in_rbac.name, to_rbac.name);
    // Its statements, named by operation and table, values never shown.
    let statement = find("a statement of the creation", &|s| {
        s.service == "tenantry-organization"
            && s.trace_id == http.trace_id
            && s.attribute("db.operation.name") == "INSERT"
    });
    assert_eq!(statement.kind, CLIENT);
    assert_eq!(statement.attribute("db.system.name"), "postgresql");
    assert!(statement.name.starts_with("INSERT "), "{}", statement.name);
    assert!(
        spans
            .iter()
            .all(|s| !s.attributes.contains_key("db.statement")
                && !s.attributes.contains_key("db.query.text"))
    );
    // No span is named after a raw path.
    assert!(
        spans.iter().all(|s| !s.name.contains("organizations/0")),
        "{:#?}",
        names(spans)
    );
}

fn names(spans: &[ReceivedSpan]) -> Vec<String> {
    spans
        .iter()
        .map(|s| format!("{} {} {}", s.service, s.kind, s.name))
        .collect()
}

/// A fresh Postgres database, addresses for every service (gRPC, HTTP, in
/// the order of [`SERVICES`]) and the environment the manifests give them,
/// with the migration Job already run.
async fn split_deployment(
    nats: &str,
) -> (
    TestDatabase,
    Vec<(SocketAddr, SocketAddr)>,
    Vec<(&'static str, String)>,
) {
    let database = TestDatabase::new(Storage::Postgres).await.unwrap();
    let addrs: Vec<_> = SERVICES
        .iter()
        .map(|_| (free_addr().unwrap(), free_addr().unwrap()))
        .collect();
    let env = deployment_env(&database.url, nats, &addrs);
    migrate(&env);
    (database, addrs, env)
}

/// What the ConfigMap and Secret give every Deployment, for processes on
/// `addrs` (gRPC, HTTP per service, in the order of [`SERVICES`]).
fn deployment_env(
    database_url: &str,
    nats: &str,
    addrs: &[(SocketAddr, SocketAddr)],
) -> Vec<(&'static str, String)> {
    let grpc = |name: &str| {
        let i = SERVICES.iter().position(|s| *s == name).unwrap();
        format!("http://{}", addrs[i].0)
    };
    vec![
        ("TENANTRY_MODE", "production".into()),
        ("DATABASE_URL", database_url.into()),
        ("NATS_URL", nats.into()),
        ("TENANTRY_NATS_NAMESPACE", unique_name("deploy")),
        ("TENANTRY_AUTO_MIGRATE", "false".into()),
        ("TENANTRY_PAGE_TOKEN_KEY", "11".repeat(32)),
        ("TENANTRY_INTERNAL_KEY", "33".repeat(32)),
        ("TENANTRY_EDGE_KEY", "55".repeat(32)),
        ("TENANTRY_SEALING_KEYS__PRIMARY", "44".repeat(32)),
        ("TENANTRY_AUDIT__CHECKPOINT_KEY", "22".repeat(32)),
        (
            "TENANTRY_IDENTITY__PUBLIC_BASE_URL",
            format!("http://{}", addrs[5].1),
        ),
        ("TENANTRY_PEERS__IDENTITY", grpc("identity")),
        ("TENANTRY_PEERS__ORGANIZATION", grpc("organization")),
        ("TENANTRY_PEERS__RBAC", grpc("rbac")),
        ("TENANTRY_PEERS__BILLING", grpc("billing")),
        ("TENANTRY_PEERS__AUDIT", grpc("audit")),
    ]
}

/// The migration Job: `tenantry migrate`, before any Deployment.
fn migrate(env: &[(&str, String)]) {
    let migrated = std::process::Command::new(BINARY)
        .arg("migrate")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env(
            "TENANTRY_DATA_DIR",
            std::env::temp_dir().join(unique_name("migrate")),
        )
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
}

/// The gateway's Deployment gets no database, bus or key secrets: the edge
/// holds none but its own edge key (which only the audit service accepts).
fn edge_env(env: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let secrets = [
        "DATABASE_URL",
        "NATS_URL",
        "TENANTRY_PAGE_TOKEN_KEY",
        "TENANTRY_INTERNAL_KEY",
        "TENANTRY_SEALING_KEYS__PRIMARY",
        "TENANTRY_AUDIT__CHECKPOINT_KEY",
    ];
    env.iter()
        .filter(|(key, _)| !secrets.contains(key))
        .cloned()
        .collect()
}

/// What a process needs before it may report SERVING: identity (whose keys
/// verify every token) and every service it calls.
fn needs(service: &str) -> &'static [&'static str] {
    match service {
        "identity" => &["organization", "rbac", "billing"],
        "organization" => &["identity", "rbac", "billing"],
        "rbac" => &["identity", "organization", "billing"],
        "billing" => &["identity", "organization", "rbac"],
        "audit" => &["identity", "rbac"],
        _ => &["identity", "organization", "rbac", "billing", "audit"],
    }
}

fn position(service: &str) -> usize {
    SERVICES.iter().position(|s| *s == service).unwrap()
}

async fn channel(process: &ServerProcess) -> Channel {
    Channel::from_shared(process.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn sign_up(
    process: &ServerProcess,
    email: &str,
) -> Result<identity::SignUpResponse, tonic::Status> {
    Identity::new(channel(process).await)
        .sign_up(identity::SignUpRequest {
            email: email.into(),
            password: people::PASSWORD.into(),
            display_name: "Cold".into(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The code of one authenticated call to `service` (any method will do: the
/// token is checked before the request is read).
async fn authenticated_call(process: &ServerProcess, service: &str, token: &str) -> Code {
    if service == "gateway" {
        let reply = Rest::new(format!("http://{}", process.http_addr))
            .call("GET", "/v1/me", Some(token), None)
            .await;
        return match reply.status {
            401 => Code::Unauthenticated,
            200 => Code::Ok,
            _ => Code::Unknown,
        };
    }
    let channel = channel(process).await;
    let result = match service {
        "identity" => Identity::new(channel)
            .me(authed(identity::MeRequest::default(), token))
            .await
            .map(drop),
        "organization" => Orgs::new(channel)
            .get_organization(authed(org::GetOrganizationRequest::default(), token))
            .await
            .map(drop),
        "rbac" => Authz::new(channel)
            .check_permission(authed(authz::CheckPermissionRequest::default(), token))
            .await
            .map(drop),
        "billing" => Subscriptions::new(channel)
            .get_subscription(authed(billing::GetSubscriptionRequest::default(), token))
            .await
            .map(drop),
        _ => Audit::new(channel)
            .list_audit_events(authed(audit::ListAuditEventsRequest::default(), token))
            .await
            .map(drop),
    };
    result.map_or_else(|status| status.code(), |()| Code::Ok)
}

/// Cold starts of the split services in six orders (each service first
/// once and last once), one process at a time: a process is ready exactly
/// when identity and the services it calls answer; a sign-up returns its
/// organization or UNAVAILABLE and leaves nothing behind; a valid token is
/// never refused as UNAUTHENTICATED by a process that is still starting.
#[tokio::test]
async fn cold_starts_in_any_order_keep_their_promises() {
    let (Ok(_), Some(nats)) = (std::env::var("TENANTRY_TEST_DATABASE_URL"), nats_url()) else {
        eprintln!("TENANTRY_TEST_DATABASE_URL or TENANTRY_TEST_NATS_URL is not set; skipping");
        return;
    };
    let database = TestDatabase::new(Storage::Postgres).await.unwrap();
    for rotation in 0..SERVICES.len() {
        let mut cold = ColdStart::new(&database.url, &nats, rotation);
        for (step, name) in cold.order.clone().into_iter().enumerate() {
            cold.start(name).await;
            cold.ready_exactly_when_what_it_needs_is_up().await;
            cold.a_sign_up_gets_its_organization_or_unavailable(step)
                .await;
            cold.no_process_refuses_a_valid_token(name).await;
        }
        cold.a_refused_sign_up_left_nothing_behind().await;
    }
}

/// One cold start of the split services, one process at a time in `order`:
/// what runs, and the sign-ups so far (their tokens, and the addresses of
/// those refused).
struct ColdStart {
    order: Vec<&'static str>,
    addrs: Vec<(SocketAddr, SocketAddr)>,
    env: Vec<(&'static str, String)>,
    edge: Vec<(&'static str, String)>,
    running: Vec<Option<ServerProcess>>,
    tokens: Vec<String>,
    refused: Vec<String>,
}

impl ColdStart {
    /// The `rotation`th order (each service first once and last once); the
    /// first rotation runs the migration Job.
    fn new(database_url: &str, nats: &str, rotation: usize) -> ColdStart {
        let order: Vec<&str> = (0..SERVICES.len())
            .map(|step| SERVICES[(rotation + step) % SERVICES.len()])
            .collect();
        let addrs: Vec<_> = SERVICES
            .iter()
            .map(|_| (free_addr().unwrap(), free_addr().unwrap()))
            .collect();
        let env = deployment_env(database_url, nats, &addrs);
        if rotation == 0 {
            migrate(&env);
        }
        let edge = edge_env(&env);
        ColdStart {
            order,
            addrs,
            env,
            edge,
            running: SERVICES.iter().map(|_| None).collect(),
            tokens: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Starts `name` and waits until it answers at all.
    async fn start(&mut self, name: &str) {
        let index = position(name);
        let process_env = if name == "gateway" {
            &self.edge
        } else {
            &self.env
        };
        let (grpc_addr, http_addr) = self.addrs[index];
        let mut process =
            ServerProcess::spawn_on(BINARY, name, grpc_addr, http_addr, process_env).unwrap();
        process.wait_up().await.unwrap();
        self.running[index] = Some(process);
    }

    async fn ready_exactly_when_what_it_needs_is_up(&mut self) {
        let order = &self.order;
        let up: Vec<bool> = self.running.iter().map(Option::is_some).collect();
        for (service, process) in SERVICES.iter().zip(&mut self.running) {
            let Some(process) = process else { continue };
            if needs(service).iter().all(|peer| up[position(peer)]) {
                process
                    .wait_ready()
                    .await
                    .unwrap_or_else(|e| panic!("{service} in {order:?}: {e:#}"));
            } else {
                assert!(
                    !process.is_ready().await,
                    "{service} ready before what it needs, in {order:?}"
                );
            }
        }
    }

    async fn a_sign_up_gets_its_organization_or_unavailable(&mut self, step: usize) {
        let Some(identity) = &self.running[position("identity")] else {
            return;
        };
        let order = &self.order;
        let email = format!("{}@example.com", unique_name(&format!("cold{step}")));
        match sign_up(identity, &email).await {
            Ok(signed) => {
                assert!(
                    signed.organization.starts_with("organizations/"),
                    "a sign-up without its organization, in {order:?}"
                );
                self.tokens.push(signed.tokens.unwrap().access_token);
            }
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::Unavailable,
                    "{status:?} in {order:?}\n{}",
                    self.logs()
                );
                self.refused.push(email);
            }
        }
    }

    /// No process refuses a valid token as UNAUTHENTICATED, even while it
    /// is starting; `name` is the one started last.
    async fn no_process_refuses_a_valid_token(&self, name: &str) {
        let order = &self.order;
        for token in &self.tokens {
            for (service, process) in SERVICES.iter().zip(&self.running) {
                let Some(process) = process else { continue };
                assert_ne!(
                    authenticated_call(process, service, token).await,
                    Code::Unauthenticated,
                    "{service} refused a valid token, in {order:?} after {name}"
                );
            }
        }
    }

    /// What every running process logged, for a failure's message.
    fn logs(&self) -> String {
        SERVICES
            .iter()
            .zip(&self.running)
            .filter_map(|(service, process)| Some((service, process.as_ref()?.log())))
            .map(|(service, log)| format!("--- {service} ---\n{log}"))
            .collect()
    }

    /// Everything runs: a refused sign-up left nothing behind.
    async fn a_refused_sign_up_left_nothing_behind(&self) {
        let identity = self.running[position("identity")].as_ref().unwrap();
        for email in &self.refused {
            let signed = sign_up(identity, email).await.unwrap_or_else(|status| {
                panic!(
                    "{email} was left behind by a refused sign-up: {status:?}\n{}",
                    self.logs()
                )
            });
            assert!(signed.organization.starts_with("organizations/"));
        }
        assert!(!self.tokens.is_empty() || !self.refused.is_empty());
    }
}

/// A process started while its database and the bus are down stays up,
/// NOT_SERVING, answers UNAVAILABLE, and serves once both are back, with no
/// restart.
#[tokio::test]
async fn a_process_started_during_an_outage_serves_once_its_storage_is_back() {
    if nats_url().is_none() || !PostgresServer::available() {
        eprintln!("no NATS or PostgreSQL installation; skipping");
        return;
    }
    let postgres = PostgresServer::start().await.unwrap();
    postgres.stop().unwrap();
    let mut nats = NatsServer::start().await.unwrap();
    nats.stop();
    let env = [
        ("DATABASE_URL", postgres.url()),
        ("NATS_URL", nats.url()),
        ("TENANTRY_NATS_NAMESPACE", unique_name("outage")),
        ("TENANTRY_DATABASE__ACQUIRE_TIMEOUT_SECS", "1".to_string()),
    ];
    let mut process = ServerProcess::spawn_on(
        BINARY,
        "identity,organization,rbac,billing,audit",
        free_addr().unwrap(),
        free_addr().unwrap(),
        &env,
    )
    .unwrap();
    process.wait_up().await.unwrap();

    let health = |channel: Channel| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status()
    };
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing;
    assert_eq!(health(channel(&process).await).await, not_serving);
    assert!(!process.is_ready().await);
    let refused = sign_up(&process, "early@example.com").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // The database is back, the bus is not: still waiting, still running.
    postgres.resume().await.unwrap();
    assert!(!process.is_ready().await);
    assert!(
        process.is_running(),
        "the process gave up instead of retrying"
    );

    nats.resume().await.unwrap();
    process.wait_ready().await.unwrap();
    assert_eq!(
        health(channel(&process).await).await,
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let signed = sign_up(&process, "early@example.com").await.unwrap();
    assert!(signed.organization.starts_with("organizations/"));
}

/// A write that removes access while the authorization service cannot be
/// reached fails with UNAVAILABLE and changes nothing: a logout is refused
/// rather than acknowledged while checks could still honour the session.
/// Once rbac is back, the session still works, and the logout takes effect
/// on the very next check.
#[tokio::test]
async fn a_removal_the_index_cannot_learn_fails_and_changes_nothing() {
    let (Ok(_), Some(nats)) = (std::env::var("TENANTRY_TEST_DATABASE_URL"), nats_url()) else {
        eprintln!("TENANTRY_TEST_DATABASE_URL or TENANTRY_TEST_NATS_URL is not set; skipping");
        return;
    };
    let (_database, addrs, env) = split_deployment(&nats).await;
    let start = |name: &str| {
        let (grpc_addr, http_addr) = addrs[position(name)];
        ServerProcess::spawn_on(BINARY, name, grpc_addr, http_addr, &env)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
    };
    let mut identity = start("identity");
    let mut others: Vec<ServerProcess> = ["organization", "billing"].map(start).into();
    let mut rbac = start("rbac");
    identity.wait_ready().await.unwrap();
    rbac.wait_ready().await.unwrap();
    for process in &mut others {
        process.wait_ready().await.unwrap();
    }

    let session = Session::sign_up(&identity).await;
    assert!(session.reads(&rbac).await);

    rbac.kill();
    let refused = session.logout(&identity).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    let mut rbac = start("rbac");
    rbac.wait_ready().await.unwrap();
    // Nothing changed: the session lives on.
    assert!(
        session.reads(&rbac).await,
        "the refused logout ended the session"
    );
    Identity::new(channel(&identity).await)
        .me(authed(
            identity::MeRequest::default(),
            &session.token.access_token,
        ))
        .await
        .unwrap();

    session.logout(&identity).await.unwrap();
    assert!(
        !session.reads(&rbac).await,
        "the session outlived its logout"
    );
}

/// Ada's session: her tokens, her id and her organization's.
struct Session {
    token: identity::AuthTokens,
    user: String,
    organization: String,
}

impl Session {
    async fn sign_up(identity: &ServerProcess) -> Session {
        let signed = sign_up(identity, "ada@example.com").await.unwrap();
        Session {
            token: signed.tokens.unwrap(),
            user: signed.user.unwrap().name.replace("users/", ""),
            organization: signed.organization.replace("organizations/", ""),
        }
    }

    /// Whether `rbac` answers that Ada may read her organization; an error
    /// (her session ended) answers no.
    async fn reads(&self, rbac: &ServerProcess) -> bool {
        let answer = Authz::new(channel(rbac).await)
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    resource: check::object("organization", &self.organization),
                    permission: "organization.read".into(),
                    subject: check::user(&self.user),
                    ..Default::default()
                },
                &self.token.access_token,
            ))
            .await;
        matches!(answer, Ok(r) if r.get_ref().permissionship() == authz::Permissionship::Allowed)
    }

    async fn logout(&self, identity: &ServerProcess) -> Result<(), tonic::Status> {
        let refresh_token = self.token.refresh_token.clone();
        Identity::new(channel(identity).await)
            .logout(identity::LogoutRequest { refresh_token })
            .await
            .map(drop)
    }
}
