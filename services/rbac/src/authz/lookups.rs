//! `LookupResources` and `LookupSubjects`: a subject's objects, an object's
//! users, a page at a time.

use tenantry_kit::names::OrganizationName;
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;

use super::*;

impl AuthorizationApi {
    pub(super) async fn lookup_resources_page(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (subject_type, subject_id) = subject(r.subject.as_ref())?;
        // A lookup names no object: a service account's is its own
        // organization, the `organization` filter or, when that is unset,
        // the organization of its token.
        let scope = match r.organization.as_str() {
            "" if caller.principal.kind == PrincipalKind::ServiceAccount => {
                caller.principal.organization.clone()
            }
            "" => None,
            name => Some(OrganizationName::parse("organization", name)?.id),
        };
        may_ask(
            &caller.principal,
            &self.0.index.read(),
            subject_type,
            subject_id,
            scope.as_deref().map(|org| ("organization", org)),
        )?;
        if subject_type != "user" && subject_type != "api_key" {
            return Err(Error::invalid_field(
                "subject.object.object_type",
                "lookups are for users and API keys",
            )
            .into());
        }
        let size = page_size(r.page_size, 1000, 10_000)? as usize;
        let query = format!(
            "lookup|{}|{}|{subject_id}|{}",
            r.resource_type, r.permission, r.organization
        );
        let after = self.0.page_start(&query, &r.page_token)?;
        let organization = scope;
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let mut ids = match subject_type {
            "api_key" => index.lookup_key(subject_id, &r.resource_type, &r.permission),
            _ => index.lookup(subject_id, &r.resource_type, &r.permission),
        }
        .map_err(index_error)?;
        if !session_live(&index, &caller.principal) {
            ids.clear();
        }
        let start = ids.partition_point(|id| *id <= after.as_str());
        let mut page = Vec::with_capacity(size.min(ids.len()));
        let mut last = None;
        for id in &ids[start..] {
            if page.len() == size {
                break;
            }
            last = Some(*id);
            if organization
                .as_deref()
                .is_none_or(|org| index.within(&r.resource_type, id, org))
            {
                page.push(id.to_string());
            }
        }
        let more = last.is_some_and(|l| ids.last().is_some_and(|end| *end != l));
        let next_page_token = match (more, last) {
            (true, Some(last)) => self
                .0
                .page_tokens
                .encode(query.as_bytes(), &After(last.to_string())),
            _ => String::new(),
        };
        drop(index);
        Ok(Response::new(pb::LookupResourcesResponse {
            looked_up_at: Some(token(revision)),
            resource_ids: page,
            next_page_token,
        }))
    }

    pub(super) async fn lookup_subjects_page(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<pb::LookupSubjectsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let (object_type, id) = object(r.resource.as_ref(), "resource")?;
        let (object_type, id) = (object_type.to_string(), id.to_string());
        if r.subject_type != "user" {
            return Err(Error::invalid_field("subject_type", "must be `user`").into());
        }
        // Who may do what on an object is for those who manage its members.
        self.0
            .index
            .read()
            .permission_bit(&object_type, &r.permission)
            .map_err(index_error)?;
        let organization = self
            .0
            .index
            .read()
            .organization_of(&object_type, &id)
            .map(str::to_string);
        let allowed = caller.is_internal()
            || organization.as_deref().is_some_and(|org| {
                self.0
                    .allows(
                        &caller,
                        "organization",
                        org,
                        Permission::ORGANIZATION_MEMBERS_READ,
                    )
                    .unwrap_or(false)
            });
        if !allowed {
            return Err(
                Error::permission_denied(Permission::ORGANIZATION_MEMBERS_READ)
                    .with_domain(NAME)
                    .into(),
            );
        }
        let size = page_size(r.page_size, 1000, 10_000)? as usize;
        let query = format!("subjects|{object_type}|{id}|{}", r.permission);
        let after = self.0.page_start(&query, &r.page_token)?;
        let revision = self.0.index.at(r.consistency.as_ref()).await?;
        let index = self.0.index.read();
        let users = index
            .subjects_with(&object_type, &id, &r.permission)
            .map_err(index_error)?;
        let start = users.partition_point(|u| *u <= after.as_str());
        let page: Vec<&str> = users[start..].iter().take(size).copied().collect();
        let next_page_token = if start + page.len() < users.len() {
            self.0.page_tokens.encode(
                query.as_bytes(),
                &After(page.last().map(|s| s.to_string()).unwrap_or_default()),
            )
        } else {
            String::new()
        };
        let subjects = page
            .iter()
            .map(|user| pb::ResolvedSubject {
                subject_id: user.to_string(),
                external: organization
                    .as_deref()
                    .is_some_and(|org| index.roles_of(user, org).is_empty()),
            })
            .collect();
        drop(index);
        Ok(Response::new(pb::LookupSubjectsResponse {
            looked_up_at: Some(token(revision)),
            subjects,
            next_page_token,
        }))
    }
}
