//! Every route refuses another tenant's names.

use super::*;

/// What tenant B's owner sees of B through the REST API: compared before
/// and after tenant A tried every route with B's names.
async fn tenant_view(rest: &Rest, token: &str, organization: &str, project: &str) -> Vec<String> {
    let mut view = Vec::new();
    for path in [
        format!("/v1/organizations/{organization}"),
        format!("/v1/organizations/{organization}/projects"),
        format!("/v1/organizations/{organization}/projects/{project}"),
        format!("/v1/organizations/{organization}/projects/{project}/grants"),
        format!("/v1/organizations/{organization}/teams"),
        format!("/v1/organizations/{organization}/memberships"),
        format!("/v1/organizations/{organization}/invitations"),
        format!("/v1/organizations/{organization}/apiKeys"),
        format!("/v1/organizations/{organization}/roles"),
        format!("/v1/organizations/{organization}/subscription"),
        "/v1/me".to_string(),
    ] {
        let reply = rest.call("GET", &path, Some(token), None).await;
        view.push(format!("GET {path}: {} {}", reply.status, reply.text));
    }
    view
}

/// Tenant B (Bob's, with a project, the Secret team, a key, an invitation
/// and a workspace) and tenant A (Ada's); B's id for each path parameter
/// the OpenAPI document names, and what B's owner saw before.
struct Tenants {
    w: World,
    rest: Rest,
    ada: User,
    bob: User,
    bobs: String,
    project: String,
    key: Key,
    ids: [(&'static str, String); 9],
    shared: [(&'static str, String); 1],
    before: Vec<String>,
}

impl Tenants {
    async fn start(storage: Storage) -> Tenants {
        let w = World::with(
            storage,
            &[
                ServiceKind::Identity,
                ServiceKind::Organization,
                ServiceKind::Rbac,
                ServiceKind::Billing,
                ServiceKind::Audit,
                ServiceKind::Gateway,
            ],
        )
        .await;
        let rest = Rest::new(w.sandbox.http_url());
        let (ada, _) = w.sign_up("ada@example.com").await;
        let (bob, bobs) = w.sign_up("bob.secret@example.com").await;
        let project = w.project(&bob.token, &bobs).await.unwrap();
        let team = Teams::new(w.channel.clone())
            .create_team(authed(
                org::CreateTeamRequest {
                    parent: format!("organizations/{bobs}"),
                    team: Some(org::Team {
                        display_name: "Secret team".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &bob.token,
            ))
            .await
            .unwrap()
            .into_inner()
            .team
            .unwrap();
        let key = w
            .key(&bob, &bobs, ("", ""), &["project.read"])
            .await
            .unwrap();
        let invitation = rest
            .ok(
                "POST",
                &format!("/v1/organizations/{bobs}/invitations"),
                Some(&bob.token),
                Some(serde_json::json!({"email": "carol@example.com"})),
            )
            .await;
        let workspace = rest
            .ok(
                "GET",
                &format!("/v1/organizations/{bobs}"),
                Some(&bob.token),
                None,
            )
            .await["organization"]["workspace"]
            .as_str()
            .unwrap()
            .to_string();
        // B's id for each path parameter the OpenAPI document names.
        let ids = [
            ("organizationId", bobs.clone()),
            ("projectId", project.clone()),
            ("teamId", id(&team.name)),
            ("apiKeyId", key.id.clone()),
            (
                "invitationId",
                id(invitation["invitation"]["name"].as_str().unwrap()),
            ),
            ("membershipId", bob.id.clone()),
            ("memberId", bob.id.clone()),
            ("userId", bob.id.clone()),
            ("workspaceId", id(&workspace)),
        ];
        // Filled in, but not B's: built-in roles are everyone's.
        let shared = [("roleId", "admin".to_string())];
        let before = tenant_view(&rest, &bob.token, &bobs, &project).await;
        Tenants {
            w,
            rest,
            ada,
            bob,
            bobs,
            project,
            key,
            ids,
            shared,
            before,
        }
    }
}

/// Every REST route of the contracts (one per RPC, read from the gateway's
/// OpenAPI document, which is generated from the descriptor set), called by
/// tenant A with tenant B's names in its path: never a success, never a
/// server error, never a word of B's data, and B's state unchanged.
#[tokio::test]
async fn every_route_refuses_another_tenants_names() {
    for storage in storages() {
        let t = Tenants::start(storage).await;
        every_route_naming_b_is_refused_without_a_word_of_b(&t).await;
        tenant_b_is_unchanged(&t).await;
        t.w.sandbox.shutdown().await.unwrap();
    }
}

/// `template` with every parameter filled: B's id where `ids` names it, a
/// shared value or a fresh id otherwise; None when none of B's names is in
/// it (the route is not about B).
fn fill(template: &str, ids: &[(&str, String)], shared: &[(&str, String)]) -> Option<String> {
    let mut path = template.to_string();
    let mut names_b = false;
    while let Some(start) = path.find('{') {
        let end = start + path[start..].find('}').unwrap();
        let parameter = path[start + 1..end].trim_end_matches(|c: char| c.is_ascii_digit());
        let value = match ids.iter().find(|(name, _)| *name == parameter) {
            Some((_, value)) => {
                names_b = true;
                value.clone()
            }
            None => match shared.iter().find(|(name, _)| *name == parameter) {
                Some((_, value)) => value.clone(),
                None => uuid::Uuid::now_v7().to_string(),
            },
        };
        path.replace_range(start..=end, &value);
    }
    names_b.then_some(path)
}

async fn every_route_naming_b_is_refused_without_a_word_of_b(t: &Tenants) {
    let Tenants {
        rest,
        ada,
        key,
        ids,
        shared,
        ..
    } = t;
    let document = rest.ok("GET", "/openapi.json", None, None).await;
    let mut tried = 0;
    for (template, operations) in document["paths"].as_object().unwrap() {
        // Fill every parameter; a route with none of B's names in it is
        // not about B.
        let Some(path) = fill(template, ids, shared) else {
            continue;
        };
        for (method, operation) in operations.as_object().unwrap() {
            let method = method.to_uppercase();
            let body = operation.get("requestBody").map(|_| serde_json::json!({}));
            let reply = rest.call(&method, &path, Some(&ada.token), body).await;
            tried += 1;
            assert!(
                matches!(reply.status, 400 | 403 | 404 | 409 | 412),
                "{method} {path} ({}) answered tenant A {}: {}",
                operation["x-grpc-method"],
                reply.status,
                reply.text
            );
            for secret in ["bob.secret", "Secret team", &key.id] {
                assert!(
                    !reply.text.contains(secret),
                    "{method} {path} told tenant A {secret:?}: {}",
                    reply.text
                );
            }
        }
    }
    assert!(tried > 80, "only {tried} routes name tenant B");
}

async fn tenant_b_is_unchanged(t: &Tenants) {
    let Tenants {
        rest,
        bob,
        bobs,
        project,
        before,
        ..
    } = t;
    assert_eq!(
        tenant_view(rest, &bob.token, bobs, project).await,
        *before,
        "tenant A changed tenant B"
    );
}
