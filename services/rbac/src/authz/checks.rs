//! `CheckPermission` and `CheckBulkPermissions`: one decision, or many under
//! one read of the index, with an optional trace of the walk.

use std::time::Instant;

use super::*;

impl AuthorizationApi {
    pub(super) async fn check_one(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        // The hot path: no copy of the principal, no request context (it
        // only matters for events, and a check writes none).
        let principal = Principal::from_request(&request)?;
        let r = request.get_ref();
        let subject = subject(r.subject.as_ref())?;
        let resource = r
            .resource
            .as_ref()
            .ok_or_else(|| Error::invalid_field("resource", "is required"))?;
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let started = Instant::now();
        let index = self.0.index.read();
        may_ask(
            principal,
            &index,
            subject.0,
            subject.1,
            Some((&resource.object_type, &resource.object_id)),
        )?;
        let allowed = self.0.decide(
            &index,
            principal,
            subject,
            (&resource.object_type, &resource.object_id),
            &r.permission,
        )?;
        let debug_trace = if r.with_tracing && subject.0 == "user" {
            let (_, trace) = index
                .explain(
                    subject.1,
                    &resource.object_type,
                    &resource.object_id,
                    &r.permission,
                )
                .map_err(index_error)?;
            let explanation = trace
                .steps
                .iter()
                .map(|(t, id, held)| format!("{t}:{id} holds [{}]", held.join(", ")))
                .collect::<Vec<_>>()
                .join(" -> ");
            Some(pb::PermissionTrace {
                resource: Some(resource.clone()),
                permission: r.permission.clone(),
                subject: r.subject.clone(),
                source: pb::permission_trace::Source::Parent as i32,
                permissionship: permissionship(allowed) as i32,
                explanation: match trace.stopped {
                    Some(stop) => format!("{explanation}; stopped: {stop}"),
                    None => explanation,
                },
                sub_traces: Vec::new(),
                duration: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: started.elapsed().as_nanos().min(999_999_999) as i32,
                }),
            })
        } else {
            None
        };
        drop(index);
        Ok(Response::new(pb::CheckPermissionResponse {
            checked_at: Some(token(revision)),
            permissionship: permissionship(allowed) as i32,
            debug_trace,
        }))
    }

    pub(super) async fn check_bulk(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        let principal = Principal::from_request(&request)?.clone();
        let r = request.into_inner();
        if r.items.is_empty() || r.items.len() > MAX_BULK {
            return Err(
                Error::invalid_field("items", format!("must hold 1 to {MAX_BULK} checks"))
                    .with_metadata("max_items", MAX_BULK)
                    .into(),
            );
        }
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let pairs = r
            .items
            .into_iter()
            .map(|item| {
                let answer = subject(item.subject.as_ref()).and_then(|s| {
                    let resource = object(item.resource.as_ref(), "resource")?;
                    may_ask(&principal, &index, s.0, s.1, Some(resource))?;
                    self.0
                        .decide(&index, &principal, s, resource, &item.permission)
                });
                let response = match answer {
                    Ok(allowed) => pb::check_bulk_permissions_pair::Response::Item(
                        pb::CheckBulkPermissionsResponseItem {
                            permissionship: permissionship(allowed) as i32,
                        },
                    ),
                    Err(error) => {
                        let status = error.into_status();
                        pb::check_bulk_permissions_pair::Response::Error(
                            tenantry_proto::google::rpc::Status {
                                code: status.code() as i32,
                                message: status.message().to_string(),
                                details: Vec::new(),
                            },
                        )
                    }
                };
                pb::CheckBulkPermissionsPair {
                    request: Some(item),
                    response: Some(response),
                }
            })
            .collect();
        drop(index);
        Ok(Response::new(pb::CheckBulkPermissionsResponse {
            checked_at: Some(token(revision)),
            pairs,
        }))
    }
}
