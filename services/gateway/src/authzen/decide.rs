//! AuthZEN decisions and searches answered by the authorization service,
//! called with the caller's own (edge-exchanged) credential, so that its
//! rules hold unchanged: who may ask about whom, and tenancy (objects of
//! other tenants do not exist, so a check on them is a plain denial).
//!
//! | AuthZEN | authorization service |
//! |---|---|
//! | evaluation | `CheckPermission` |
//! | evaluations | `CheckBulkPermissions` (one revision for the batch) |
//! | subject search | `LookupSubjects` |
//! | resource search | `LookupResources` |
//! | action search | `GetResourceType` (the type's permissions) + `CheckBulkPermissions` |

use std::time::Duration;

use crate::upstream::Upstream;
use http::HeaderMap;
use serde_json::{Map, Value, json};
use tenantry_proto::tenantry::authz::v1 as pb;

use super::model::{Batch, Evaluation, Search, Semantic};
use crate::errors::http_status;

/// A policy decision point over the authorization service, for one call.
pub struct Pdp {
    authz: pb::authorization_service_client::AuthorizationServiceClient<Upstream>,
    schema: pb::schema_service_client::SchemaServiceClient<Upstream>,
    headers: HeaderMap,
    deadline: Duration,
}

impl Pdp {
    /// Calls the service on `channel` with the forwarded `headers`.
    pub fn new(channel: Upstream, headers: HeaderMap, deadline: Duration) -> Pdp {
        Pdp {
            authz: pb::authorization_service_client::AuthorizationServiceClient::new(
                channel.clone(),
            ),
            schema: pb::schema_service_client::SchemaServiceClient::new(channel),
            headers,
            deadline,
        }
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(self.headers.clone());
        request.set_timeout(self.deadline);
        request
    }

    /// One evaluation: `{decision, context: {checked_at}}`.
    pub async fn evaluate(
        &mut self,
        evaluation: &Evaluation,
        consistency: Option<pb::Consistency>,
    ) -> Result<Value, tonic::Status> {
        let request = self.request(pb::CheckPermissionRequest {
            consistency,
            resource: Some(evaluation.resource.object()),
            permission: evaluation.action.clone(),
            subject: Some(evaluation.subject.subject()),
            with_tracing: false,
        });
        let answer = self.authz.check_permission(request).await?.into_inner();
        let mut decision = json!({
            "decision": answer.permissionship() == pb::Permissionship::Allowed,
        });
        if let Some(token) = answer.checked_at {
            decision["context"] = json!({ "checked_at": token.token });
        }
        Ok(decision)
    }

    /// A batch, answered at one revision and cut by its semantic.
    pub async fn evaluate_batch(&mut self, batch: &Batch) -> Result<Value, tonic::Status> {
        if batch.single {
            return self
                .evaluate(&batch.items[0], batch.consistency.clone())
                .await;
        }
        let items = batch.items.iter().map(item).collect();
        let (decisions, checked_at) = self.bulk(items, batch.consistency.clone()).await?;
        let mut answer = json!({ "evaluations": cut(decisions, batch.semantic) });
        if let Some(token) = checked_at {
            answer["context"] = json!({ "checked_at": token });
        }
        Ok(answer)
    }

    /// Decisions of bulk items, in order: `(decision, object)`.
    async fn bulk(
        &mut self,
        items: Vec<pb::CheckBulkPermissionsRequestItem>,
        consistency: Option<pb::Consistency>,
    ) -> Result<(Vec<(bool, Value)>, Option<String>), tonic::Status> {
        let request = self.request(pb::CheckBulkPermissionsRequest { consistency, items });
        let answer = self
            .authz
            .check_bulk_permissions(request)
            .await?
            .into_inner();
        let decisions = answer.pairs.iter().map(pair_decision).collect();
        Ok((decisions, answer.checked_at.map(|t| t.token)))
    }

    /// The subjects of a type with the action on the resource.
    pub async fn search_subjects(&mut self, search: &Search) -> Result<Value, tonic::Status> {
        let request = self.request(pb::LookupSubjectsRequest {
            consistency: search.consistency.clone(),
            resource: Some(search.resource.object()),
            permission: search.action.clone(),
            subject_type: search.subject.kind.clone(),
            page_size: search.page.limit,
            page_token: search.page.token.clone(),
        });
        let answer = self.authz.lookup_subjects(request).await?.into_inner();
        let results = answer
            .subjects
            .iter()
            .map(|s| {
                let mut subject = json!({ "type": search.subject.kind, "id": s.subject_id });
                if s.external {
                    subject["properties"] = json!({ "external": true });
                }
                subject
            })
            .collect();
        Ok(found(results, answer.next_page_token, answer.looked_up_at))
    }

    /// The resources of a type on which the subject has the action.
    pub async fn search_resources(&mut self, search: &Search) -> Result<Value, tonic::Status> {
        let request = self.request(pb::LookupResourcesRequest {
            consistency: search.consistency.clone(),
            resource_type: search.resource.kind.clone(),
            permission: search.action.clone(),
            subject: Some(search.subject.subject()),
            organization: search
                .resource
                .property("organization")
                .unwrap_or_default()
                .to_string(),
            page_size: search.page.limit,
            page_token: search.page.token.clone(),
        });
        let answer = self.authz.lookup_resources(request).await?.into_inner();
        let results = answer
            .resource_ids
            .iter()
            .map(|id| json!({ "type": search.resource.kind, "id": id }))
            .collect();
        Ok(found(results, answer.next_page_token, answer.looked_up_at))
    }

    /// The permissions of the resource's type that the subject has on it,
    /// in the type's order; pages are offsets into that list.
    pub async fn search_actions(&mut self, search: &Search) -> Result<Value, tonic::Status> {
        let offset = match search.page.token.as_str() {
            "" => 0,
            token => token.parse::<usize>().map_err(|_| {
                tonic::Status::invalid_argument("`page.token` is not a token of this search")
            })?,
        };
        let request = self.request(pb::GetResourceTypeRequest {
            name: format!("resourceTypes/{}", search.resource.kind),
        });
        let resource_type = match self.schema.get_resource_type(request).await {
            Ok(answer) => answer.into_inner().resource_type.unwrap_or_default(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                return Err(tonic::Status::invalid_argument(format!(
                    "unknown resource type `{}`",
                    search.resource.kind
                )));
            }
            Err(status) => return Err(status),
        };
        let items: Vec<_> = resource_type
            .permissions
            .iter()
            .map(|permission| pb::CheckBulkPermissionsRequestItem {
                resource: Some(search.resource.object()),
                permission: permission.name.clone(),
                subject: Some(search.subject.subject()),
            })
            .collect();
        let names: Vec<String> = items.iter().map(|i| i.permission.clone()).collect();
        let (decisions, checked_at) = self.bulk(items, search.consistency.clone()).await?;
        let allowed: Vec<Value> = names
            .into_iter()
            .zip(decisions)
            .filter(|(_, (allowed, _))| *allowed)
            .map(|(name, _)| json!({ "name": name }))
            .collect();
        let limit = match search.page.limit {
            0 => allowed.len(),
            n => n as usize,
        };
        let end = offset.saturating_add(limit).min(allowed.len());
        let next = if end < allowed.len() {
            end.to_string()
        } else {
            String::new()
        };
        let page = allowed
            .get(offset.min(end)..end)
            .unwrap_or_default()
            .to_vec();
        Ok(found(
            page,
            next,
            checked_at.map(|token| pb::ZedToken { token }),
        ))
    }
}

fn item(evaluation: &Evaluation) -> pb::CheckBulkPermissionsRequestItem {
    pb::CheckBulkPermissionsRequestItem {
        resource: Some(evaluation.resource.object()),
        permission: evaluation.action.clone(),
        subject: Some(evaluation.subject.subject()),
    }
}

/// A bulk pair as a decision; an item that could not be checked is a
/// denial whose context carries the error (the specification's closed
/// default).
fn pair_decision(pair: &pb::CheckBulkPermissionsPair) -> (bool, Value) {
    use pb::check_bulk_permissions_pair::Response;
    match &pair.response {
        Some(Response::Item(item)) => {
            let allowed = item.permissionship() == pb::Permissionship::Allowed;
            (allowed, json!({ "decision": allowed }))
        }
        Some(Response::Error(status)) => {
            let code = tonic::Code::from_i32(status.code);
            let error = json!({
                "status": http_status(code).as_u16(),
                "message": status.message,
            });
            (
                false,
                json!({ "decision": false, "context": { "error": error } }),
            )
        }
        None => (false, json!({ "decision": false })),
    }
}

/// The decisions a semantic answers: all, up to the first denial, or up
/// to the first permit; the one that stopped a batch says why.
fn cut(decisions: Vec<(bool, Value)>, semantic: Semantic) -> Vec<Value> {
    let stop = match semantic {
        Semantic::ExecuteAll => None,
        Semantic::DenyOnFirstDeny => decisions.iter().position(|(allowed, _)| !allowed),
        Semantic::PermitOnFirstPermit => decisions.iter().position(|(allowed, _)| *allowed),
    };
    let total = decisions.len();
    let mut out: Vec<Value> = decisions
        .into_iter()
        .map(|(_, decision)| decision)
        .collect();
    if let Some(stop) = stop {
        out.truncate(stop + 1);
        if stop + 1 < total {
            let context = out[stop].as_object_mut().map(|d| {
                d.entry("context")
                    .or_insert_with(|| Value::Object(Map::new()))
            });
            if let Some(Value::Object(context)) = context {
                context.insert("reason".into(), semantic.as_str().into());
            }
        }
    }
    out
}

/// A search response: the page first, then the context, then the results.
fn found(results: Vec<Value>, next_token: String, at: Option<pb::ZedToken>) -> Value {
    let mut answer = Map::new();
    answer.insert(
        "page".into(),
        json!({ "next_token": next_token, "count": results.len() }),
    );
    if let Some(token) = at {
        answer.insert("context".into(), json!({ "checked_at": token.token }));
    }
    answer.insert("results".into(), Value::Array(results));
    Value::Object(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(pattern: &[bool]) -> Vec<(bool, Value)> {
        pattern
            .iter()
            .map(|&d| (d, json!({ "decision": d })))
            .collect()
    }

    #[test]
    fn semantics_cut_the_batch_where_the_specification_says() {
        let all = cut(decisions(&[true, false, true]), Semantic::ExecuteAll);
        assert_eq!(all.len(), 3);
        let deny = cut(decisions(&[true, false, true]), Semantic::DenyOnFirstDeny);
        assert_eq!(
            deny,
            vec![
                json!({"decision": true}),
                json!({"decision": false, "context": {"reason": "deny_on_first_deny"}}),
            ]
        );
        let permit = cut(
            decisions(&[true, false, true]),
            Semantic::PermitOnFirstPermit,
        );
        assert_eq!(
            permit,
            vec![json!({"decision": true, "context": {"reason": "permit_on_first_permit"}})]
        );
        // Nothing to cut: every decision, none marked.
        let none = cut(decisions(&[false, false]), Semantic::PermitOnFirstPermit);
        assert_eq!(
            none,
            vec![json!({"decision": false}), json!({"decision": false})]
        );
    }
}
