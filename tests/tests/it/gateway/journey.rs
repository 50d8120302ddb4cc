//! The sign-up-to-project journey over REST and over gRPC-Web.

use super::*;
use tenantry_proto::tenantry::authz::v1 as authz;
use tenantry_proto::tenantry::identity::v1 as identity;
use tenantry_proto::tenantry::organization::v1 as org_pb;
use tenantry_proto::tenantry::rbac::v1 as rbac;

/// Ada's organization and her Rocket project, made over REST; the
/// creator's next call sees them.
struct Journey {
    sandbox: Sandbox,
    rest: Rest,
    ada: SignedUp,
    org: String,
    org_id: String,
}

impl Journey {
    async fn start(storage: tenantry_testkit::Storage) -> Journey {
        let sandbox = start(storage, |_| {}).await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@example.com", json!({})).await;

        // An organization and a project.
        let org = rest
            .ok(
                "POST",
                "/v1/organizations",
                Some(&ada.token),
                Some(json!({"displayName": "Acme"})),
            )
            .await["organization"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        let org_id = id(&org);
        // The request id the client picks reaches the audit log; an
        // X-Forwarded-For from a peer that is no trusted proxy does not.
        let create_project = || {
            rest.request("POST", &format!("/v1/{org}/projects"), Some(&ada.token))
                .header("content-type", "application/json")
                .header("x-request-id", "journey-project-1")
                .header("x-forwarded-for", "203.0.113.66")
                .body(Full::new(Bytes::from(
                    json!({"displayName": "Rocket"}).to_string(),
                )))
                .unwrap()
        };
        // The creator's next call sees the organization: no retry.
        let created = rest.send(create_project()).await;
        assert_eq!(created.status, 200, "{}", created.text);
        assert_eq!(created.header("x-request-id"), Some("journey-project-1"));
        let project = created.body["project"]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(project.starts_with(&format!("{org}/projects/")));

        Journey {
            sandbox,
            rest,
            ada,
            org,
            org_id,
        }
    }
}

#[tokio::test]
async fn the_journey_runs_over_rest() {
    for storage in storages() {
        let j = Journey::start(storage).await;
        let (bob, membership) = bob_signs_up_with_the_invitation(&j).await;
        a_role_lets_bob_create_projects_until_it_is_removed(&j, &bob, &membership).await;
        let project_created = the_audit_log_tells_the_story(&j).await;
        membership_changes_are_found_by_the_member(&j, &bob, &project_created).await;
        a_server_stream_arrives_as_json_lines(&j).await;
        identitys_keys_are_at_the_well_known_places(&j).await;
        j.sandbox.shutdown().await.unwrap();
    }
}

async fn bob_signs_up_with_the_invitation(j: &Journey) -> (SignedUp, String) {
    let Journey {
        sandbox,
        rest,
        ada,
        org,
        ..
    } = j;
    // Invite Bob, who signs up with the invitation.
    let invitation = rest
        .ok(
            "POST",
            &format!("/v1/{org}/invitations"),
            Some(&ada.token),
            Some(json!({"email": "bob@example.com", "roles": ["roles/member"]})),
        )
        .await;
    assert_eq!(invitation["invitation"]["state"], "STATE_PENDING");
    assert_eq!(
        invitation["invitation"]["inviterDisplayName"],
        "ada@example.com"
    );
    let token = sandbox
        .mail_token("bob@example.com", "invitation")
        .expect("the invitation was mailed");
    let bob = sign_up(rest, "bob@example.com", json!({"invitationToken": token})).await;
    assert_eq!(bob.organization, *org);
    let membership = format!("{org}/memberships/{}", bob.id);

    (bob, membership)
}

async fn a_role_lets_bob_create_projects_until_it_is_removed(
    j: &Journey,
    bob: &SignedUp,
    membership: &str,
) {
    let Journey {
        rest, ada, org_id, ..
    } = j;
    // A role makes Bob able to create projects; removing it stops him.
    let written = rest
        .ok(
            "PATCH",
            &format!("/v1/{membership}?updateMask=roles"),
            Some(&ada.token),
            Some(json!({"roles": ["roles/member", "roles/admin"]})),
        )
        .await["writtenAt"]
        .clone();
    let answer = rest
        .ok(
            "POST",
            "/v1/authz:check",
            Some(&bob.token),
            Some(check_body(&bob.id, org_id, "project.create", &written)),
        )
        .await;
    assert_eq!(
        answer["permissionship"], "PERMISSIONSHIP_ALLOWED",
        "{answer}"
    );
    let written = rest
        .ok(
            "PATCH",
            &format!("/v1/{membership}?updateMask=roles"),
            Some(&ada.token),
            Some(json!({"roles": ["roles/member"]})),
        )
        .await["writtenAt"]
        .clone();
    let answer = rest
        .ok(
            "POST",
            "/v1/authz:check",
            Some(&bob.token),
            Some(check_body(&bob.id, org_id, "project.create", &written)),
        )
        .await;
    assert_eq!(
        answer["permissionship"], "PERMISSIONSHIP_DENIED",
        "{answer}"
    );
}

async fn the_audit_log_tells_the_story(j: &Journey) -> Value {
    let Journey { rest, ada, org, .. } = j;
    // The audit log tells the story, with the client's request id.
    let mut events = Vec::new();
    for _ in 0..400 {
        let page = rest
            .ok(
                "GET",
                &format!("/v1/{org}/auditEvents?pageSize=100"),
                Some(&ada.token),
                None,
            )
            .await;
        events = page["auditEvents"].as_array().cloned().unwrap_or_default();
        let updates = events
            .iter()
            .filter(|e| e["action"] == "organization.member.updated")
            .count();
        if updates >= 2 && events.iter().any(|e| e["action"] == "project.created") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let project_created = events
        .iter()
        .find(|e| e["action"] == "project.created")
        .expect("project.created is audited");
    assert_eq!(
        project_created["requestId"], "journey-project-1",
        "{project_created}"
    );
    assert_eq!(
        project_created["clientAddress"], "127.0.0.1",
        "{project_created}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "organization.member.invitation_accepted")
    );
    project_created.clone()
}

async fn membership_changes_are_found_by_the_member(
    j: &Journey,
    bob: &SignedUp,
    project_created: &Value,
) {
    let Journey { rest, ada, org, .. } = j;
    // Membership changes are found by the member (a nested filter in
    // the query string).
    let about_bob = rest
        .ok(
            "GET",
            &format!(
                "/v1/{org}/auditEvents?filter.targetType=user&filter.targetId={}",
                bob.id
            ),
            Some(&ada.token),
            None,
        )
        .await;
    let actions: Vec<&str> = about_bob["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"organization.member.added")
            && actions.contains(&"organization.member.updated"),
        "{actions:?}"
    );
    // 64-bit integers travel as strings in proto3 JSON.
    assert!(project_created["sequence"].is_string(), "{project_created}");
}

async fn a_server_stream_arrives_as_json_lines(j: &Journey) {
    let Journey { rest, ada, org, .. } = j;
    // A server stream arrives as newline-delimited JSON.
    let export = rest
        .call(
            "POST",
            &format!("/v1/{org}/auditEvents:export"),
            Some(&ada.token),
            Some(json!({"format": "EXPORT_FORMAT_JSONL"})),
        )
        .await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.get("error").is_none()),
        "{}",
        export.text
    );
}

async fn identitys_keys_are_at_the_well_known_places(j: &Journey) {
    let Journey { rest, .. } = j;
    // Identity's keys, at the well-known places.
    let jwks = rest.ok("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    let discovery = rest
        .ok("GET", "/.well-known/openid-configuration", None, None)
        .await;
    assert!(
        discovery["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/.well-known/jwks.json")
    );
    // The token endpoint is where tokens are refreshed.
    assert!(
        discovery["token_endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/v1/auth/refresh"),
        "{discovery}"
    );
}

/// The gRPC-Web client service: generated clients over HTTP/1.1 through
/// the gateway.
type Web = tonic_web::GrpcWebClientService<
    Client<
        hyper_util::client::legacy::connect::HttpConnector,
        tonic_web::GrpcWebCall<tonic::body::Body>,
    >,
>;

/// A server on SQLite reached over gRPC-Web, and Ada signed up through it.
struct GrpcWeb {
    sandbox: Sandbox,
    web: Web,
    origin: http::Uri,
    ada: String,
    org: String,
}

impl GrpcWeb {
    async fn start(storage: tenantry_testkit::Storage) -> GrpcWeb {
        let sandbox = start(storage, |_| {}).await;
        let http = Client::builder(TokioExecutor::new()).build_http();
        let web = tower::ServiceBuilder::new()
            .layer(tonic_web::GrpcWebClientLayer::new())
            .service(http);
        let origin: http::Uri = sandbox.http_url().parse().unwrap();
        let mut g = GrpcWeb {
            sandbox,
            web,
            origin,
            ada: String::new(),
            org: String::new(),
        };
        let signed = g.sign_up("ada@example.com", "Ada", String::new()).await;
        g.ada = signed.tokens.unwrap().access_token;
        let _ada_id = id(&signed.user.unwrap().name);
        g.org = signed.organization;
        g
    }

    /// A generated client over gRPC-Web, e.g.
    /// `g.client(ProjectServiceClient::with_origin)`.
    fn client<C>(&self, with_origin: fn(Web, http::Uri) -> C) -> C {
        with_origin(self.web.clone(), self.origin.clone())
    }

    async fn sign_up(
        &self,
        email: &str,
        display_name: &str,
        invitation_token: String,
    ) -> identity::SignUpResponse {
        self.client(identity::identity_service_client::IdentityServiceClient::with_origin)
            .sign_up(identity::SignUpRequest {
                email: email.into(),
                password: PASSWORD.into(),
                display_name: display_name.into(),
                invitation_token,
                ..Default::default()
            })
            .await
            .expect("sign-up over gRPC-Web")
            .into_inner()
    }

    fn checks(&self) -> authz::authorization_service_client::AuthorizationServiceClient<Web> {
        self.client(authz::authorization_service_client::AuthorizationServiceClient::with_origin)
    }
}

/// The gRPC clients generated from the contracts, over gRPC-Web (HTTP/1.1)
/// through the gateway, and over plain gRPC through its port.
#[tokio::test]
async fn the_journey_runs_over_grpc_web() {
    let g = GrpcWeb::start(tenantry_testkit::Storage::Sqlite).await;
    ada_creates_a_project_over_grpc_web(&g).await;
    let (bob_id, bob_token) = bob_signs_up_with_an_invitation_over_grpc_web(&g).await;
    a_role_set_over_plain_grpc_lets_bob_create_projects(&g, &bob_id, &bob_token).await;
    unauthenticated_calls_stop_at_the_edge_with_a_grpc_status(&g).await;
    g.sandbox.shutdown().await.unwrap();
}

async fn ada_creates_a_project_over_grpc_web(g: &GrpcWeb) {
    let mut projects = g.client(org_pb::project_service_client::ProjectServiceClient::with_origin);
    let mut project = None;
    for _ in 0..400 {
        match projects
            .create_project(authed(
                org_pb::CreateProjectRequest {
                    parent: g.org.clone(),
                    project: Some(org_pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &g.ada,
            ))
            .await
        {
            Ok(created) => {
                project = created.into_inner().project;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert!(project.is_some(), "CreateProject over gRPC-Web");
}

/// Bob's id and access token.
async fn bob_signs_up_with_an_invitation_over_grpc_web(g: &GrpcWeb) -> (String, String) {
    g.client(rbac::invitation_service_client::InvitationServiceClient::with_origin)
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: g.org.clone(),
                invitation: Some(rbac::Invitation {
                    email: "bob@example.com".into(),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &g.ada,
        ))
        .await
        .unwrap();
    let token = g.sandbox.mail_token("bob@example.com", "invitation");
    let bob = g.sign_up("bob@example.com", "Bob", token.unwrap()).await;
    let bob_token = bob.tokens.unwrap().access_token;
    (id(&bob.user.unwrap().name), bob_token)
}

async fn a_role_set_over_plain_grpc_lets_bob_create_projects(
    g: &GrpcWeb,
    bob_id: &str,
    bob_token: &str,
) {
    // Plain gRPC through the gateway's port (HTTP/2 without TLS).
    let channel = tonic::transport::Endpoint::from_shared(g.sandbox.http_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut members = rbac::membership_service_client::MembershipServiceClient::new(channel);
    let set_roles = |roles: Vec<&str>| rbac::UpdateMembershipRequest {
        membership: Some(rbac::Membership {
            name: format!("{}/memberships/{bob_id}", g.org),
            roles: roles.into_iter().map(str::to_string).collect(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["roles".into()],
        }),
    };
    let mut checks = g.checks();
    for (roles, expected) in [
        (
            vec!["roles/member", "roles/admin"],
            authz::Permissionship::Allowed,
        ),
        (vec!["roles/member"], authz::Permissionship::Denied),
    ] {
        let written = members
            .update_membership(authed(set_roles(roles), &g.ada))
            .await
            .unwrap()
            .into_inner()
            .written_at;
        let check = can_create_projects(&g.org, bob_id, written);
        let answer = checks.check_permission(authed(check, bob_token));
        let answer = answer.await.unwrap().into_inner();
        assert_eq!(answer.permissionship(), expected);
    }
}

/// May `user` create projects in `org`, as fresh as `written`?
fn can_create_projects(
    org: &str,
    user: &str,
    written: Option<authz::ZedToken>,
) -> authz::CheckPermissionRequest {
    authz::CheckPermissionRequest {
        consistency: Some(authz::Consistency {
            requirement: written.map(authz::consistency::Requirement::AtLeastAsFresh),
        }),
        resource: Some(authz::ObjectReference {
            object_type: "organization".into(),
            object_id: id(org),
        }),
        permission: "project.create".into(),
        subject: Some(authz::SubjectReference {
            object: Some(authz::ObjectReference {
                object_type: "user".into(),
                object_id: user.to_string(),
            }),
            ..Default::default()
        }),
        with_tracing: false,
    }
}

async fn unauthenticated_calls_stop_at_the_edge_with_a_grpc_status(g: &GrpcWeb) {
    // Unauthenticated calls stop at the edge, with a gRPC status.
    let refused = g
        .checks()
        .check_permission(authz::CheckPermissionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
