//! The sign-up-to-project journey over REST and over gRPC-Web.

use super::*;

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

/// The gRPC clients generated from the contracts, over gRPC-Web (HTTP/1.1)
/// through the gateway, and over plain gRPC through its port.
#[tokio::test]
async fn the_journey_runs_over_grpc_web() {
    use tenantry_proto::tenantry::authz::v1 as authz;
    use tenantry_proto::tenantry::identity::v1 as identity;
    use tenantry_proto::tenantry::organization::v1 as org_pb;
    use tenantry_proto::tenantry::rbac::v1 as rbac;

    let sandbox = start(tenantry_testkit::Storage::Sqlite, |_| {}).await;
    let http = Client::builder(TokioExecutor::new()).build_http();
    let web = tower::ServiceBuilder::new()
        .layer(tonic_web::GrpcWebClientLayer::new())
        .service(http);
    let origin: http::Uri = sandbox.http_url().parse().unwrap();

    let mut accounts = identity::identity_service_client::IdentityServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    let signed = accounts
        .sign_up(identity::SignUpRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Ada".into(),
            ..Default::default()
        })
        .await
        .expect("sign-up over gRPC-Web")
        .into_inner();
    let ada = signed.tokens.unwrap().access_token;
    let ada_id = id(&signed.user.unwrap().name);
    let org = signed.organization;

    let mut projects = org_pb::project_service_client::ProjectServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    let mut project = None;
    for _ in 0..400 {
        match projects
            .create_project(authed(
                org_pb::CreateProjectRequest {
                    parent: org.clone(),
                    project: Some(org_pb::Project {
                        display_name: "Rocket".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &ada,
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

    let mut invitations = rbac::invitation_service_client::InvitationServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    invitations
        .create_invitation(authed(
            rbac::CreateInvitationRequest {
                parent: org.clone(),
                invitation: Some(rbac::Invitation {
                    email: "bob@example.com".into(),
                    roles: vec!["roles/member".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            &ada,
        ))
        .await
        .unwrap();
    let token = sandbox.mail_token("bob@example.com", "invitation").unwrap();
    let bob = accounts
        .sign_up(identity::SignUpRequest {
            email: "bob@example.com".into(),
            password: PASSWORD.into(),
            display_name: "Bob".into(),
            invitation_token: token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let bob_token = bob.tokens.unwrap().access_token;
    let bob_id = id(&bob.user.unwrap().name);

    // Plain gRPC through the gateway's port (HTTP/2 without TLS).
    let channel = tonic::transport::Endpoint::from_shared(sandbox.http_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut members = rbac::membership_service_client::MembershipServiceClient::new(channel);
    let set_roles = |roles: Vec<&str>| rbac::UpdateMembershipRequest {
        membership: Some(rbac::Membership {
            name: format!("{org}/memberships/{bob_id}"),
            roles: roles.into_iter().map(str::to_string).collect(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["roles".into()],
        }),
    };
    let mut checks = authz::authorization_service_client::AuthorizationServiceClient::with_origin(
        web.clone(),
        origin.clone(),
    );
    for (roles, expected) in [
        (
            vec!["roles/member", "roles/admin"],
            authz::Permissionship::Allowed,
        ),
        (vec!["roles/member"], authz::Permissionship::Denied),
    ] {
        let written = members
            .update_membership(authed(set_roles(roles), &ada))
            .await
            .unwrap()
            .into_inner()
            .written_at;
        let answer = checks
            .check_permission(authed(
                authz::CheckPermissionRequest {
                    consistency: Some(authz::Consistency {
                        requirement: written.map(authz::consistency::Requirement::AtLeastAsFresh),
                    }),
                    resource: Some(authz::ObjectReference {
                        object_type: "organization".into(),
                        object_id: id(&org),
                    }),
                    permission: "project.create".into(),
                    subject: Some(authz::SubjectReference {
                        object: Some(authz::ObjectReference {
                            object_type: "user".into(),
                            object_id: bob_id.clone(),
                        }),
                        ..Default::default()
                    }),
                    with_tracing: false,
                },
                &bob_token,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.permissionship(), expected);
    }
    // Unauthenticated calls stop at the edge, with a gRPC status.
    let refused = checks
        .check_permission(authz::CheckPermissionRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let _ = ada_id;
    sandbox.shutdown().await.unwrap();
}
