//! The server as a whole: every service of the contracts comes up, reports
//! SERVING over gRPC health, and is listed by server reflection (v1 and
//! v1alpha); a subset serves only its own; shutdown is graceful.

use std::collections::BTreeSet;

use prost::Message;
use tenantry::services::ServiceKind;
use tenantry_testkit::{Sandbox, Storage, http_get, storages};
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Every gRPC service declared in proto/tenantry, read from the descriptor
/// set itself so a new service cannot be forgotten here.
fn contract_services() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(tenantry_proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .filter(|file| file.package().starts_with("tenantry."))
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |s| format!("{}.{}", file.package(), s.name()))
        })
        .collect()
}

async fn health_status(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> Result<ServingStatus, tonic::Code> {
    client
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|status| status.code())
}

async fn reflection_v1_services(channel: tonic::transport::Channel) -> BTreeSet<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

async fn reflection_v1alpha_services(channel: tonic::transport::Channel) -> BTreeSet<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer: {other:?}"),
    }
}

#[tokio::test]
async fn every_service_is_serving_and_listed_by_reflection() {
    for storage in storages() {
        let sandbox = Sandbox::builder().storage(storage).start().await.unwrap();
        let channel = sandbox.channel().await.unwrap();
        let expected = contract_services();
        assert!(
            expected.len() >= 20,
            "contracts declare {} services",
            expected.len()
        );

        let mut health = HealthClient::new(channel.clone());
        assert_eq!(
            health_status(&mut health, "").await,
            Ok(ServingStatus::Serving)
        );
        for service in &expected {
            assert_eq!(
                health_status(&mut health, service).await,
                Ok(ServingStatus::Serving),
                "{service} on {storage:?}"
            );
        }
        let mounted: BTreeSet<String> = sandbox
            .server
            .grpc_services
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(mounted, expected);

        for listed in [
            reflection_v1_services(channel.clone()).await,
            reflection_v1alpha_services(channel.clone()).await,
        ] {
            for service in &expected {
                assert!(listed.contains(service), "reflection misses {service}");
            }
            assert!(listed.contains("grpc.health.v1.Health"));
        }
        sandbox.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_subset_serves_only_its_own_services() {
    let sandbox = Sandbox::builder()
        .services(&[ServiceKind::Rbac, ServiceKind::Audit])
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    // No identity answers anywhere, so this process has no keys to verify
    // a token with: it is honest about it. Not SERVING, and a call with a
    // well-formed token is UNAVAILABLE (retry), never UNAUTHENTICATED.
    assert_eq!(
        health_status(&mut health, "tenantry.authz.v1.AuthorizationService").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(
        health_status(&mut health, "tenantry.audit.v1.AuditService").await,
        Ok(ServingStatus::NotServing)
    );
    let now = chrono::Utc::now().timestamp();
    let token = tenantry_kit::auth::SigningKey::from_seed("k1", [5; 32]).sign(
        &tenantry_kit::auth::Claims {
            iss: "tenantry".into(),
            aud: "tenantry".into(),
            sub: "someone".into(),
            sid: None,
            org: None,
            iat: now,
            exp: now + 60,
            nbf: None,
            jti: "j".into(),
            amr: vec!["pwd".into()],
            kind: tenantry_kit::auth::PrincipalKind::User,
            perms: None,
            team: None,
            mfa_pending: false,
            name: None,
        },
    );
    let refused = tenantry_proto::tenantry::rbac::v1::membership_service_client::MembershipServiceClient::new(
        channel.clone(),
    )
    .list_user_memberships(tenantry_testkit::authed(
        tenantry_proto::tenantry::rbac::v1::ListUserMembershipsRequest {
            parent: "users/someone".into(),
            ..Default::default()
        },
        &token,
    ))
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    // Health answers NOT_FOUND for a service this process does not run.
    assert_eq!(
        health_status(&mut health, "tenantry.identity.v1.IdentityService").await,
        Err(tonic::Code::NotFound)
    );
    let listed = reflection_v1_services(channel.clone()).await;
    assert!(listed.contains("tenantry.rbac.v1.MembershipService"));
    assert!(!listed.contains("tenantry.identity.v1.IdentityService"));
    assert!(!listed.contains("tenantry.organization.v1.OrganizationService"));

    // Without credentials every non-public RPC is refused before routing,
    // whether or not this process serves it.
    use tenantry_proto::tenantry::organization::v1::GetOrganizationRequest;
    use tenantry_proto::tenantry::organization::v1::organization_service_client::OrganizationServiceClient;
    let status = OrganizationServiceClient::new(channel)
        .get_organization(GetOrganizationRequest {
            name: "organizations/x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn operational_endpoints_answer_and_count_calls() {
    let sandbox = Sandbox::builder()
        .storage(Storage::Sqlite)
        .start()
        .await
        .unwrap();
    let channel = sandbox.channel().await.unwrap();
    let mut health = HealthClient::new(channel);
    health_status(&mut health, "").await.unwrap();

    let addr = sandbox.server.http_addr;
    assert_eq!(http_get(addr, "/healthz").await.unwrap().0, 200);
    assert_eq!(http_get(addr, "/readyz").await.unwrap().0, 200);
    let (status, metrics) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tenantry_grpc_requests_total")
            && metrics.contains("/grpc.health.v1.Health/Check"),
        "{metrics}"
    );
    // The database pool's state, sampled at start and every 10 s.
    assert!(
        metrics.contains("tenantry_db_pool_connections{state=\"max\"}"),
        "{metrics}"
    );
    every_metric_is_described_and_in_the_catalog(&metrics);
    // What the process runs, and the process and its runtime themselves.
    let build = metrics
        .lines()
        .find(|line| line.starts_with("tenantry_build_info{"))
        .unwrap_or_else(|| panic!("no build info in\n{metrics}"));
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        build.contains(&version) && build.contains("commit=\"") && build.ends_with(" 1"),
        "{build}"
    );
    // (CPU time counts whole seconds, and the global queue may be empty.)
    for (family, positive) in [
        ("process_resident_memory_bytes", true),
        ("process_open_fds", true),
        ("process_start_time_seconds", true),
        ("process_cpu_seconds_total", false),
        ("tenantry_tokio_workers", true),
        ("tenantry_tokio_alive_tasks", true),
        ("tenantry_tokio_global_queue_depth", false),
    ] {
        let sample = metrics
            .lines()
            .find(|line| line.starts_with(&format!("{family} ")))
            .unwrap_or_else(|| panic!("{family} missing from\n{metrics}"));
        let value: f64 = sample.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(value > 0.0 || (!positive && value == 0.0), "{sample}");
    }
    sandbox.shutdown().await.unwrap();
}

/// Every family in the exposition has its `# HELP` and `# TYPE`, both as
/// the metrics catalog says, and no sample belongs to a family the catalog
/// does not know.
fn every_metric_is_described_and_in_the_catalog(metrics: &str) {
    use tenantry_kit::telemetry::catalog;
    let mut described = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            described.insert(name.to_string(), help.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let doc = catalog::find(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
            assert_eq!(kind, doc.kind.as_str(), "{name}'s type");
            assert_eq!(
                described.get(name),
                Some(&catalog::help_text(doc)),
                "{name} has its HELP before its TYPE"
            );
        } else if !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|f| catalog::find(f).is_some())
                })
                .unwrap_or(name);
            assert!(
                catalog::find(family).is_some(),
                "{name} is not in the catalog"
            );
        }
    }
    assert!(described.len() > 10, "{metrics}");
}

#[tokio::test]
async fn shutdown_stops_accepting_calls() {
    let sandbox = Sandbox::builder().start().await.unwrap();
    let addr = sandbox.server.grpc_addr;
    sandbox.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
