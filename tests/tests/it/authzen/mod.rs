//! The OpenID AuthZEN Authorization API 1.0 through the gateway's HTTP
//! port, with a plain HTTP client: the specification's examples with
//! Tenantry's ids (users, projects, `project.read`), every batch semantic,
//! the three searches, the metadata, and bad requests answered with the
//! specification's errors.

mod bad_requests;
mod decisions;
mod searches;

use serde_json::{Value, json};
use tenantry::services::ServiceKind;
use tenantry_testkit::{Sandbox, last_id as id, storages};
use tenantry_tests::rest::{Reply, Rest};

/// Ada (two projects) and Eve (one), each in the organization they signed
/// up with; `fresh` is the consistency token of Ada's last write.
struct Fixture {
    sandbox: Sandbox,
    rest: Rest,
    ada: Person,
    eve: Person,
    fresh: String,
}

struct Person {
    id: String,
    token: String,
    organization: String,
    projects: Vec<String>,
}

impl Fixture {
    async fn start(storage: tenantry_testkit::Storage) -> Fixture {
        let sandbox = Sandbox::builder()
            .services(&ServiceKind::ALL)
            .storage(storage)
            .configure(|config| config.gateway.auth_per_address_per_minute = 10_000)
            .start()
            .await
            .unwrap();
        let rest = Rest::new(sandbox.http_url());
        let (ada, fresh) = person(&rest, "ada@authzen.example", &["Rocket", "Probe"]).await;
        let (eve, _) = person(&rest, "eve@authzen.example", &["Secret"]).await;
        Fixture {
            sandbox,
            rest,
            ada,
            eve,
            fresh,
        }
    }

    /// `POST /access/v1/{endpoint}` as `token`.
    async fn post(&self, endpoint: &str, token: Option<&str>, body: Value) -> Reply {
        self.rest
            .call("POST", &format!("/access/v1/{endpoint}"), token, Some(body))
            .await
    }

    /// As [`post`](Self::post), asserting a 200 JSON answer.
    async fn ok(&self, endpoint: &str, body: Value) -> Value {
        let reply = self.post(endpoint, Some(&self.ada.token), body).await;
        assert_eq!(reply.status, 200, "{endpoint}: {}", reply.text);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        reply.body
    }
}

/// Signs someone up and creates their projects; returns the consistency
/// token of the last write.
async fn person(rest: &Rest, email: &str, projects: &[&str]) -> (Person, String) {
    let body =
        json!({"email": email, "password": "correct horse battery staple", "displayName": email});
    let reply = rest.ok("POST", "/v1/auth/signup", None, Some(body)).await;
    let token = reply["tokens"]["accessToken"].as_str().unwrap().to_string();
    let organization = reply["organization"].as_str().unwrap().to_string();
    let mut fresh = String::new();
    let mut ids = Vec::new();
    for name in projects {
        let body = json!({"displayName": name});
        let path = format!("/v1/{organization}/projects");
        let created = rest.call("POST", &path, Some(&token), Some(body)).await;
        assert_eq!(created.status, 200, "{}", created.text);
        ids.push(id(created.body["project"]["name"].as_str().unwrap()));
        fresh = created
            .header(tenantry_kit::consistency::HEADER)
            .unwrap()
            .to_string();
    }
    let person = Person {
        id: id(reply["user"]["name"].as_str().unwrap()),
        token,
        organization,
        projects: ids,
    };
    (person, fresh)
}

fn user(person: &Person) -> Value {
    json!({"type": "user", "id": person.id})
}

fn project(id: &str) -> Value {
    json!({"type": "project", "id": id})
}

#[tokio::test]
async fn authzen_answers_decisions_and_searches_through_the_gateway() {
    for storage in storages() {
        let f = Fixture::start(storage).await;
        decisions::one_evaluation_answers_a_decision(&f).await;
        decisions::batches_answer_by_their_semantic(&f).await;
        searches::subjects_resources_and_actions_are_found(&f).await;
        searches::the_metadata_names_every_endpoint(&f).await;
        bad_requests::bad_requests_get_the_specifications_errors(&f).await;
        f.sandbox.shutdown().await.unwrap();
    }
}
