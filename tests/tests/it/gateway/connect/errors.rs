//! Errors in Connect's form, and bad calls that write nothing.

use super::*;
use base64::Engine as _;
use prost::Message as _;
use tenantry_gateway::connect::wire::envelope;

/// The Connect error of an answer: (HTTP status, code, ErrorInfo reason
/// decoded from the detail's bytes).
fn error_of(answer: &Raw) -> (u16, String, Option<String>) {
    let body = answer.json();
    let info = body["details"]
        .as_array()
        .and_then(|details| details.iter().find(|d| d["type"] == "google.rpc.ErrorInfo"));
    let reason = info.map(|info| {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(info["value"].as_str().unwrap())
            .unwrap();
        let decoded = tonic_types::pb::ErrorInfo::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            info["debug"]["reason"], decoded.reason,
            "debug is the same detail"
        );
        decoded.reason
    });
    (
        answer.status,
        body["code"].as_str().unwrap_or_default().to_string(),
        reason,
    )
}

/// The error of a stream's end-of-stream message.
fn stream_error(answer: &Raw) -> Value {
    assert_eq!(
        answer.status, 200,
        "streams answer errors in their last message"
    );
    let envelopes = answer.envelopes();
    let (flags, payload) = envelopes.last().unwrap();
    assert_eq!(*flags, 0b10);
    serde_json::from_slice::<Value>(payload).unwrap()["error"].clone()
}

pub(super) async fn errors_carry_connect_codes_and_reasons(f: &Fixture) {
    let Fixture { ada, eve, .. } = f;
    // Another tenant's organization does not exist for Eve.
    let name = json!({"name": ada.organization});
    let hidden = f
        .json(GET_ORGANIZATION, Some(&eve.token), name.clone())
        .await;
    let (status, code, reason) = error_of(&hidden);
    assert_eq!(
        (status, code.as_str()),
        (404, "not_found"),
        "{:?}",
        hidden.json()
    );
    assert!(reason.is_some_and(|r| !r.is_empty()));
    assert_eq!(hidden.header("content-type"), Some("application/json"));
    // No credentials.
    let anonymous = f.json(GET_ORGANIZATION, None, name).await;
    assert_eq!(error_of(&anonymous).1, "unauthenticated");
    assert_eq!(anonymous.status, 401);
    // A field the message does not have is named in BadRequest.
    let body =
        json!({"parent": ada.organization, "project": {"displayName": "X", "colour": "red"}});
    let unknown = f.json(CREATE_PROJECT, Some(&ada.token), body).await;
    assert_eq!(error_of(&unknown).1, "invalid_argument");
    let details = unknown.json()["details"].clone();
    let violations = details
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "google.rpc.BadRequest")
        .unwrap()["debug"]["fieldViolations"]
        .clone();
    assert_eq!(violations[0]["field"], "project.colour", "{details}");
    // A stream's error comes in its end-of-stream message.
    let request = json!({"parent": ada.organization}).to_string();
    let headers = [("content-type", "application/connect+json")];
    let body = envelope(0, request.as_bytes()).to_vec();
    let export = f.call(EXPORT, Some(&eve.token), &headers, body).await;
    let error = stream_error(&export);
    assert!(
        ["not_found", "permission_denied"].contains(&error["code"].as_str().unwrap()),
        "{error}"
    );
    assert!(error["details"][0]["type"].is_string(), "{error}");
}

pub(super) async fn bad_calls_are_refused_and_write_nothing(f: &Fixture, before: usize) {
    let Fixture { ada, .. } = f;
    let create =
        json!({"parent": ada.organization, "project": {"displayName": "Nope"}}).to_string();
    let call = |headers: Vec<(&'static str, &'static str)>, body: Vec<u8>| async move {
        f.call(CREATE_PROJECT, Some(&ada.token), &headers, body)
            .await
    };
    let json_type = ("content-type", "application/json");
    let answer = call(
        vec![json_type, ("content-encoding", "br")],
        create.clone().into_bytes(),
    )
    .await;
    assert_eq!(error_of(&answer).1, "unimplemented");
    assert_eq!(answer.status, 501);
    assert_eq!(answer.header("accept-encoding"), Some("gzip, identity"));
    let answer = call(
        vec![json_type, ("connect-timeout-ms", "soon")],
        create.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        (answer.status, error_of(&answer).1.as_str()),
        (400, "invalid_argument")
    );
    let answer = call(
        vec![json_type, ("connect-protocol-version", "2")],
        create.clone().into_bytes(),
    )
    .await;
    assert_eq!(answer.status, 400);
    let answer = call(
        vec![("content-type", "text/plain")],
        create.clone().into_bytes(),
    )
    .await;
    assert_eq!(answer.status, 415);
    assert_eq!(
        answer.header("accept-post"),
        Some("application/json, application/proto")
    );
    let answer = call(
        vec![("content-type", "application/connect+json")],
        create.clone().into_bytes(),
    )
    .await;
    assert_eq!(answer.status, 415, "a unary method takes no stream");
    let answer = call(vec![json_type], b"{\"parent\": ".to_vec()).await;
    assert_eq!(error_of(&answer).1, "invalid_argument");
    let answer = call(
        vec![("content-type", "application/proto")],
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(error_of(&answer).1, "invalid_argument");
    // A small gzip body may not inflate past the body limit.
    let bomb = Compression::Gzip.compress(vec![b' '; 2 * 1024 * 1024]);
    let answer = call(vec![json_type, ("content-encoding", "gzip")], bomb).await;
    assert_eq!(error_of(&answer).2.as_deref(), Some("BODY_TOO_LARGE"));
    // A stream request holds exactly one message.
    let mut two = envelope(0, b"{}").to_vec();
    two.extend_from_slice(&envelope(0, b"{}"));
    let headers = [("content-type", "application/connect+json")];
    let export = f.call(EXPORT, Some(&ada.token), &headers, two).await;
    assert_eq!(stream_error(&export)["code"], "invalid_argument");
    // GET only for reads: not for a write, nor a stream.
    let get = f
        .rest
        .call("GET", &format!("/{CREATE_PROJECT}"), Some(&ada.token), None)
        .await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    let query = "encoding=json&message=%7B%7D";
    let get = f.get(CREATE_PROJECT, query, Some(&ada.token), &[]).await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    let get = f.get(EXPORT, query, Some(&ada.token), &[]).await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
    let put = f
        .send("PUT", &format!("/{CHECK}"), Some(&ada.token), &[], vec![])
        .await;
    assert_eq!((put.status, put.header("allow")), (405, Some("GET, POST")));
    // A GET read says what its query lacks or gets wrong.
    for (query, code, said) in [
        ("message=%7B%7D", "invalid_argument", "`encoding`"),
        ("encoding=json&message=%7B", "invalid_argument", "JSON"),
        (
            "encoding=json&compression=br&message=",
            "unimplemented",
            "compression",
        ),
    ] {
        let answer = f.get(LIST_PROJECTS, query, Some(&ada.token), &[]).await;
        assert_eq!(error_of(&answer).1, code, "{query}");
        let message = answer.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(said), "{query}: {message}");
    }
    // And one without credentials is unauthenticated.
    let parent = json!({"parent": ada.organization}).to_string();
    let query = format!(
        "encoding=json&message={}",
        base64::engine::general_purpose::URL_SAFE.encode(parent)
    );
    let anonymous = f
        .get(LIST_PROJECTS, &format!("{query}&base64=1"), None, &[])
        .await;
    assert_eq!(error_of(&anonymous).1, "unauthenticated");
    assert_eq!(
        calls::projects_of(f, ada).await,
        before,
        "nothing was written"
    );
}
