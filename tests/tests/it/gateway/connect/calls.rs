//! Calls that succeed: unary JSON and protobuf, server streams.

use super::*;
use base64::Engine as _;
use prost::Message as _;
use tenantry_gateway::connect::wire::envelope;
use tenantry_proto::tenantry::authz::v1 as authz_pb;

/// Ada creates a project in JSON and checks her permission on it with the
/// consistency token the write answered; returns that token.
pub(super) async fn unary_json_creates_and_checks(f: &Fixture) -> String {
    let Fixture { ada, .. } = f;
    let created = f
        .json(
            CREATE_PROJECT,
            Some(&ada.token),
            json!({"parent": ada.organization, "project": {"displayName": "Rocket"}}),
        )
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let project = created.json()["project"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(project.starts_with(&format!("{}/projects/", ada.organization)));
    assert!(created.header("x-request-id").is_some());
    let token = created
        .header(tenantry_kit::consistency::HEADER)
        .expect("a write answers its consistency token")
        .to_string();
    let headers = [
        ("content-type", "application/json"),
        (tenantry_kit::consistency::HEADER, token.as_str()),
    ];
    let check = json!({
        "resource": {"objectType": "project", "objectId": id(&project)},
        "permission": "project.read",
        "subject": {"object": {"objectType": "user", "objectId": ada.id}},
    });
    let answer = f
        .call(
            CHECK,
            Some(&ada.token),
            &headers,
            check.to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.json()["permissionship"], "PERMISSIONSHIP_ALLOWED");
    assert!(answer.header("ratelimit-limit").is_some());
    token
}

/// The same check in protobuf, gzipped both ways.
pub(super) async fn unary_proto_with_gzip_both_ways(f: &Fixture) {
    let Fixture { ada, .. } = f;
    let request = authz_pb::CheckPermissionRequest {
        resource: Some(authz_pb::ObjectReference {
            object_type: "organization".into(),
            object_id: id(&ada.organization),
        }),
        permission: "project.create".into(),
        subject: Some(authz_pb::SubjectReference {
            object: Some(authz_pb::ObjectReference {
                object_type: "user".into(),
                object_id: ada.id.clone(),
            }),
            optional_relation: String::new(),
        }),
        ..Default::default()
    };
    let body = Compression::Gzip.compress(request.encode_to_vec());
    let headers = [
        ("content-type", "application/proto"),
        ("content-encoding", "gzip"),
        ("accept-encoding", "gzip"),
        ("connect-timeout-ms", "10000"),
    ];
    let answer = f.call(CHECK, Some(&ada.token), &headers, body).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/proto"));
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    let bytes = Compression::Gzip.decompress(answer.body, 1 << 20).unwrap();
    let response = authz_pb::CheckPermissionResponse::decode(bytes).unwrap();
    assert_eq!(response.permissionship(), authz_pb::Permissionship::Allowed);
}

/// Percent-encodes every byte but the unreserved ones, as a query value.
fn percent_encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads marked free of side effects take GET: Ada's check in JSON with
/// her write's token, and her projects in gzipped, base64 protobuf; the
/// answers are the POST ones and no cache may keep them. Eve's GET of
/// Ada's organization is the same NOT_FOUND as her POST.
pub(super) async fn reads_also_take_get_with_the_message_in_the_query(f: &Fixture, token: &str) {
    let Fixture { ada, eve, .. } = f;
    let check = json!({
        "resource": {"objectType": "organization", "objectId": id(&ada.organization)},
        "permission": "project.create",
        "subject": {"object": {"objectType": "user", "objectId": ada.id}},
    });
    let query = format!(
        "connect=v1&encoding=json&message={}",
        percent_encoded(check.to_string().as_bytes())
    );
    let headers = [(tenantry_kit::consistency::HEADER, token)];
    let answer = f.get(CHECK, &query, Some(&ada.token), &headers).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.json()["permissionship"], "PERMISSIONSHIP_ALLOWED");
    assert_eq!(answer.header("cache-control"), Some("private, no-store"));
    assert!(answer.header("ratelimit-limit").is_some());

    let list = tenantry_proto::tenantry::organization::v1::ListProjectsRequest {
        parent: ada.organization.clone(),
        ..Default::default()
    };
    let packed = Compression::Gzip.compress(list.encode_to_vec());
    let message = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(packed);
    let query = format!("encoding=proto&base64=1&compression=gzip&message={message}");
    let answer = f
        .get(LIST_PROJECTS, &query, Some(&ada.token), &headers)
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/proto"));
    let listed =
        tenantry_proto::tenantry::organization::v1::ListProjectsResponse::decode(answer.body)
            .unwrap();
    assert!(listed.projects.iter().any(|p| p.display_name == "Rocket"));

    let name = json!({"name": ada.organization}).to_string();
    let query = format!("encoding=json&message={}", percent_encoded(name.as_bytes()));
    let hidden = f.get(GET_ORGANIZATION, &query, Some(&eve.token), &[]).await;
    assert_eq!(hidden.status, 404, "{:?}", hidden.body);
    assert_eq!(hidden.json()["code"], "not_found");
}

/// Ada exports her audit log as a Connect stream, in JSON and in gzipped
/// protobuf: messages, the last one marked, then an end without error.
pub(super) async fn a_server_stream_ends_with_its_end_of_stream_message(f: &Fixture, token: &str) {
    let Fixture { ada, .. } = f;
    let request = json!({"parent": ada.organization}).to_string();
    let headers = [
        ("content-type", "application/connect+json"),
        (tenantry_kit::consistency::HEADER, token),
    ];
    let body = envelope(0, request.as_bytes()).to_vec();
    let answer = f.call(EXPORT, Some(&ada.token), &headers, body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/connect+json")
    );
    let envelopes = answer.envelopes();
    let (end, messages) = envelopes.split_last().unwrap();
    assert_eq!(
        end.0, 0b10,
        "the stream ends with its end-of-stream message"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&end.1)
            .unwrap()
            .get("error"),
        None
    );
    assert!(!messages.is_empty());
    assert!(messages.iter().all(|(flags, _)| *flags == 0));
    let last: Value = serde_json::from_slice(&messages.last().unwrap().1).unwrap();
    assert_eq!(last["last"], true, "{last}");

    let request = tenantry_proto::tenantry::audit::v1::ExportAuditEventsRequest {
        parent: ada.organization.clone(),
        ..Default::default()
    };
    let packed = Compression::Gzip.compress(request.encode_to_vec());
    let headers = [
        ("content-type", "application/connect+proto"),
        ("connect-content-encoding", "gzip"),
        ("connect-accept-encoding", "gzip"),
    ];
    let body = envelope(0b01, &packed).to_vec();
    let answer = f.call(EXPORT, Some(&ada.token), &headers, body).await;
    assert_eq!(answer.header("connect-content-encoding"), Some("gzip"));
    let envelopes = answer.envelopes();
    let (end, messages) = envelopes.split_last().unwrap();
    assert_eq!(end.0, 0b10);
    let decoded: Vec<_> = messages
        .iter()
        .map(|(flags, payload)| {
            assert_eq!(*flags, 0b01, "messages are compressed as asked");
            let bytes = Compression::Gzip
                .decompress(payload.clone(), 1 << 24)
                .unwrap();
            tenantry_proto::tenantry::audit::v1::ExportAuditEventsResponse::decode(bytes).unwrap()
        })
        .collect();
    assert!(decoded.last().unwrap().last);
}

/// How many projects `who` sees in their organization, over Connect.
pub(super) async fn projects_of(f: &Fixture, who: &SignedUp) -> usize {
    let listed = f
        .json(
            LIST_PROJECTS,
            Some(&who.token),
            json!({"parent": who.organization}),
        )
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    listed.json()["projects"].as_array().map_or(0, Vec::len)
}
