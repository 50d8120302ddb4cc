//! Access evaluation and evaluations.

use super::*;

pub(super) async fn one_evaluation_answers_a_decision(f: &Fixture) {
    let Fixture {
        ada, eve, fresh, ..
    } = f;
    // The specification's example, with Tenantry's ids; its context is
    // kept, and the consistency token makes Ada's own write visible.
    let answer = f
        .ok(
            "evaluation",
            json!({
                "subject": user(ada),
                "resource": project(&ada.projects[0]),
                "action": {"name": "project.read", "properties": {"method": "GET"}},
                "context": {"time": "1985-10-26T01:22-07:00", "consistency": {"at_least_as_fresh": fresh}},
            }),
        )
        .await;
    assert_eq!(answer["decision"], true, "{answer}");
    assert!(answer["context"]["checked_at"].is_string());
    // Another tenant's project does not exist for Ada: a plain denial.
    let answer = f
        .ok(
            "evaluation",
            json!({"subject": user(ada), "resource": project(&eve.projects[0]), "action": {"name": "project.read"}}),
        )
        .await;
    assert_eq!(answer["decision"], false, "{answer}");
    // The request id comes back.
    let reply = f
        .rest
        .send(
            f.rest
                .request("POST", "/access/v1/evaluation", Some(&ada.token))
                .header("content-type", "application/json")
                .header("x-request-id", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
                .header(tenantry_kit::consistency::HEADER, fresh.as_str())
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    json!({"subject": user(ada), "resource": project(&ada.projects[1]), "action": {"name": "project.delete"}}).to_string(),
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["decision"], true, "the owner may delete");
    assert_eq!(
        reply.header("x-request-id"),
        Some("bfe9eb29-ab87-4ca3-be83-a1d5d8305716")
    );
}

/// The specification's three-document example: allowed, denied, allowed.
fn three(f: &Fixture, semantic: Option<&str>) -> Value {
    let Fixture { ada, eve, .. } = f;
    let mut body = json!({
        "subject": user(ada),
        "action": {"name": "project.read"},
        "context": {"consistency": "fully_consistent"},
        "evaluations": [
            {"resource": project(&ada.projects[0])},
            {"resource": project(&eve.projects[0])},
            {"resource": project(&ada.projects[1])},
        ],
    });
    if let Some(semantic) = semantic {
        body["options"] = json!({"evaluations_semantic": semantic});
    }
    body
}

fn decisions(answer: &Value) -> Vec<Value> {
    answer["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].clone())
        .collect()
}

pub(super) async fn batches_answer_by_their_semantic(f: &Fixture) {
    for semantic in [None, Some("execute_all")] {
        let answer = f.ok("evaluations", three(f, semantic)).await;
        assert_eq!(decisions(&answer), [true, false, true], "{answer}");
    }
    let answer = f
        .ok("evaluations", three(f, Some("deny_on_first_deny")))
        .await;
    assert_eq!(decisions(&answer), [true, false], "{answer}");
    assert_eq!(
        answer["evaluations"][1]["context"]["reason"],
        "deny_on_first_deny"
    );
    let answer = f
        .ok("evaluations", three(f, Some("permit_on_first_permit")))
        .await;
    assert_eq!(decisions(&answer), [true], "{answer}");
    // An item that cannot be checked is a denial carrying its error; an
    // item's own action overrides the default.
    let mut body = three(f, None);
    body["evaluations"][0]["action"] = json!({"name": "project.fly"});
    body["evaluations"][2]["action"] = json!({"name": "project.manage"});
    let answer = f.ok("evaluations", body).await;
    assert_eq!(decisions(&answer), [false, false, true], "{answer}");
    assert_eq!(answer["evaluations"][0]["context"]["error"]["status"], 400);
    // Without items, the request is one evaluation.
    let mut body = three(f, None);
    body["evaluations"] = json!([]);
    body["resource"] = project(&f.ada.projects[0]);
    let answer = f.ok("evaluations", body).await;
    assert_eq!(answer["decision"], true, "{answer}");
}
