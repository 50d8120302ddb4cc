//! Subject, resource and action searches, and the metadata.

use super::*;

fn ids(answer: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

pub(super) async fn subjects_resources_and_actions_are_found(f: &Fixture) {
    let Fixture { ada, fresh, .. } = f;
    let context = json!({"consistency": {"at_least_as_fresh": fresh}});
    // Resources: Ada's projects, not Eve's, a page at a time.
    let body = json!({
        "subject": user(ada), "action": {"name": "project.read"},
        "resource": {"type": "project"}, "context": context,
    });
    let all = f.ok("search/resource", body.clone()).await;
    let found = ids(&all, "id");
    // Her organization came with a first project of its own.
    assert!(ada.projects.iter().all(|p| found.contains(p)), "{all}");
    assert!(!found.contains(&f.eve.projects[0]), "{all}");
    assert_eq!(all["page"]["count"], found.len());
    assert_eq!(all["page"]["next_token"], "");
    // The `organization` property narrows the search to that subtree: all
    // of Ada's projects are in hers.
    let mut scoped = body.clone();
    scoped["resource"]["properties"] = json!({"organization": ada.organization});
    let within = f.ok("search/resource", scoped).await;
    assert_eq!(ids(&within, "id"), found, "{within}");
    let mut paged = body.clone();
    paged["page"] = json!({"limit": 1});
    let first = f.ok("search/resource", paged.clone()).await;
    assert_eq!(first["results"].as_array().unwrap().len(), 1, "{first}");
    let token = first["page"]["next_token"].as_str().unwrap().to_string();
    assert!(!token.is_empty(), "{first}");
    paged["page"] = json!({"limit": 1, "token": token});
    let second = f.ok("search/resource", paged).await;
    assert_eq!(second["results"].as_array().unwrap().len(), 1, "{second}");
    assert_ne!(first["results"][0], second["results"][0]);
    // Subjects: who may read Ada's first project (its id, if sent, is
    // ignored).
    let found = f
        .ok(
            "search/subject",
            json!({
                "subject": {"type": "user", "id": "ignored"}, "action": {"name": "project.read"},
                "resource": project(&ada.projects[0]), "context": context,
            }),
        )
        .await;
    assert_eq!(ids(&found, "id"), std::slice::from_ref(&ada.id), "{found}");
    assert_eq!(found["results"][0]["type"], "user");
    // Actions: what Ada may do to it, the owner's whole set.
    let found = f
        .ok(
            "search/action",
            json!({"subject": user(ada), "resource": project(&ada.projects[0]), "context": context}),
        )
        .await;
    let actions = ids(&found, "name");
    for action in ["project.read", "project.manage", "project.delete"] {
        assert!(actions.contains(&action.to_string()), "{action} in {found}");
    }
    // An unknown type is a bad request.
    let unknown = f
        .post(
            "search/action",
            Some(&ada.token),
            json!({"subject": user(ada), "resource": {"type": "spaceship", "id": "1"}}),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
}

pub(super) async fn the_metadata_names_every_endpoint(f: &Fixture) {
    let reply = f
        .rest
        .call("GET", "/.well-known/authzen-configuration", None, None)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let base = f.sandbox.http_url();
    assert_eq!(reply.body["policy_decision_point"], base.as_str());
    for (parameter, path) in [
        ("access_evaluation_endpoint", "evaluation"),
        ("access_evaluations_endpoint", "evaluations"),
        ("search_subject_endpoint", "search/subject"),
        ("search_resource_endpoint", "search/resource"),
        ("search_action_endpoint", "search/action"),
    ] {
        assert_eq!(reply.body[parameter], format!("{base}/access/v1/{path}"));
    }
}
