//! The Kubernetes shape, on one machine: every service in a process of its
//! own, started with the arguments and environment the manifests under
//! deploy/ give each Deployment (production mode, Postgres, NATS, secrets
//! from the environment, peers by address, migrations run first by the
//! migration Job's command), and the main journey through the gateway
//! process. Runs when TENANTRY_TEST_DATABASE_URL and TENANTRY_TEST_NATS_URL
//! are set (CI sets both).

use std::time::Duration;

use serde_json::json;
use tenantry_testkit::{ServerProcess, Storage, TestDatabase, free_addr, nats_url, unique_name};
use tenantry_tests::rest::Rest;

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
    let database = TestDatabase::new(Storage::Postgres).await.unwrap();
    let mut addrs = Vec::new();
    for _ in SERVICES {
        addrs.push((free_addr().unwrap(), free_addr().unwrap()));
    }
    let grpc = |name: &str| {
        let i = SERVICES.iter().position(|s| *s == name).unwrap();
        format!("http://{}", addrs[i].0)
    };
    let gateway_http = addrs[5].1;
    // What the ConfigMap and Secret give every Deployment.
    let env: Vec<(&str, String)> = vec![
        ("TENANTRY_MODE", "production".into()),
        ("DATABASE_URL", database.url.clone()),
        ("NATS_URL", nats),
        ("TENANTRY_NATS_NAMESPACE", unique_name("deploy")),
        ("TENANTRY_AUTO_MIGRATE", "false".into()),
        ("TENANTRY_PAGE_TOKEN_KEY", "11".repeat(32)),
        ("TENANTRY_INTERNAL_KEY", "33".repeat(32)),
        ("TENANTRY_AUDIT__CHECKPOINT_KEY", "22".repeat(32)),
        (
            "TENANTRY_IDENTITY__PUBLIC_BASE_URL",
            format!("http://{gateway_http}"),
        ),
        ("TENANTRY_PEERS__IDENTITY", grpc("identity")),
        ("TENANTRY_PEERS__ORGANIZATION", grpc("organization")),
        ("TENANTRY_PEERS__RBAC", grpc("rbac")),
        ("TENANTRY_PEERS__BILLING", grpc("billing")),
        ("TENANTRY_PEERS__AUDIT", grpc("audit")),
    ];

    // The migration Job: `tenantry migrate`, before any Deployment.
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

    // One process per Deployment: `serve --services <name>`. The gateway's
    // gets no database, bus or key secrets: the edge holds none.
    let secrets = [
        "DATABASE_URL",
        "NATS_URL",
        "TENANTRY_PAGE_TOKEN_KEY",
        "TENANTRY_INTERNAL_KEY",
        "TENANTRY_AUDIT__CHECKPOINT_KEY",
    ];
    let edge_env: Vec<(&str, String)> = env
        .iter()
        .filter(|(key, _)| !secrets.contains(key))
        .cloned()
        .collect();
    let mut processes = Vec::new();
    for (name, (grpc_addr, http_addr)) in SERVICES.iter().zip(&addrs) {
        let env = if *name == "gateway" { &edge_env } else { &env };
        processes.push(
            ServerProcess::start_on(BINARY, name, *grpc_addr, *http_addr, env)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:#}")),
        );
    }

    // The journey, through the gateway process.
    let rest = Rest::new(format!("http://{gateway_http}"));
    let signed = rest
        .ok(
            "POST",
            "/v1/auth/signup",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse battery staple", "displayName": "Ada"})),
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
    // Events crossed NATS: billing subscribed the organization, audit
    // recorded the project.
    rest.until_ok(
        "GET",
        &format!("/v1/{org}/subscription"),
        Some(&token),
        None,
    )
    .await;
    let mut audited = false;
    for _ in 0..200 {
        let page = rest
            .ok("GET", &format!("/v1/{org}/auditEvents"), Some(&token), None)
            .await;
        if page["auditEvents"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["action"] == "project.created"))
        {
            audited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(audited, "project.created reached the audit process");
    drop(processes);
}
