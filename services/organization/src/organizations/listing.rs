//! Listing organizations: a tree's organizations with filters, and the
//! caller's own organizations across trees (`ListMyOrganizations`).

use super::*;
use crate::convert::organization_to_proto;
use tenantry_kit::names::{OrganizationName, WorkspaceName};

impl Core {
    pub(super) async fn list_organizations(
        &self,
        caller: &Caller,
        request: &pb::ListOrganizationsRequest,
    ) -> Result<(Vec<OrganizationRow>, String)> {
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!(
            "organizations|{}|{}|{}|{}|{}|{}",
            request.parent,
            request.kind,
            request.name_prefix,
            request.show_deleted,
            request.workspace,
            request.state
        );
        let after: String = self
            .page_tokens
            .decode::<After>(query.as_bytes(), &request.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let mut filter = OrganizationFilter {
            kind: match request.kind() {
                pb::OrganizationKind::Organization => Some("organization"),
                pb::OrganizationKind::Department => Some("department"),
                pb::OrganizationKind::Unspecified => None,
            },
            state: match request.state() {
                pb::OrganizationState::Active => Some("active"),
                pb::OrganizationState::Deactivated => Some("deactivated"),
                pb::OrganizationState::Unspecified => None,
            },
            name_prefix: request.name_prefix.clone(),
            show_deleted: request.show_deleted,
            ..OrganizationFilter::default()
        };
        if !request.workspace.is_empty() {
            filter.workspace_id = Some(WorkspaceName::parse("workspace", &request.workspace)?.id);
        }
        if !request.parent.is_empty() {
            let parent = OrganizationName::parse("parent", &request.parent)?.id;
            self.readable_organization(caller, &parent).await?;
            filter.parent_id = Some(parent);
        } else if !caller.is_internal() {
            // Only the trees the caller belongs to can hold what they may
            // read; scanning every tree of the deployment would not scale.
            filter.roots = Some(self.member_roots(caller).await?);
        }

        let mut found = Vec::new();
        let mut cursor = after;
        // Bounded work per call: a page may come back short, with a token
        // to continue, rather than scan without end.
        for _ in 0..10 {
            let batch = self
                .store
                .organizations(&filter, &cursor, (size + 1).max(100) as i64);
            // A service reads every tree (its own callers decided which);
            // anyone else, the trees entered above.
            let batch = match caller.is_internal() && filter.parent_id.is_none() {
                true => tenancy::system(batch).await?,
                false => batch.await?,
            };
            let exhausted = batch.len() < (size + 1).max(100);
            let readable = if caller.is_internal() {
                vec![true; batch.len()]
            } else {
                let checks: Vec<(Object<'_>, Permission)> = batch
                    .iter()
                    .map(|o| (Object::Organization(&o.id), Permission::ORGANIZATION_READ))
                    .collect();
                self.access.check_all(caller, &checks).await?
            };
            for (org, ok) in batch.into_iter().zip(readable) {
                if found.len() == size {
                    let next = self.page_tokens.encode(query.as_bytes(), &After(cursor));
                    return Ok((found, next));
                }
                cursor = org.id.clone();
                if ok {
                    found.push(org);
                }
            }
            if exhausted {
                return Ok((found, String::new()));
            }
        }
        let next = self.page_tokens.encode(query.as_bytes(), &After(cursor));
        Ok((found, next))
    }

    /// The roots of the trees the caller is a member in (for an API key or
    /// service account token: the tree of its organization).
    pub(super) async fn member_roots(&self, caller: &Caller) -> Result<Vec<String>> {
        let ids: Vec<String> = if caller.is_user() {
            self.access
                .my_memberships(caller)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        } else {
            caller.principal.organization.iter().cloned().collect()
        };
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.enter_tenants_of(&refs).await?;
        let rows = self.store.organizations_by_id(&refs).await?;
        let roots: BTreeSet<String> = rows.into_iter().map(|r| r.root_id).collect();
        Ok(roots.into_iter().collect())
    }

    pub(super) async fn my_organizations(
        &self,
        caller: &Caller,
        request: &pb::ListMyOrganizationsRequest,
    ) -> Result<(Vec<pb::MyOrganization>, String)> {
        if !caller.is_user() {
            return Err(Refusal::UserRequired.into());
        }
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!("my|{}|{}", caller.id(), request.name_prefix);
        let after = self
            .page_tokens
            .decode::<AfterName>(query.as_bytes(), &request.page_token)?;
        let memberships = self.access.my_memberships(caller).await?;
        let ids: Vec<&str> = memberships.iter().map(|(id, _)| id.as_str()).collect();
        self.enter_tenants_of(&ids).await?;
        let roles: HashMap<&str, &Vec<String>> =
            memberships.iter().map(|(id, r)| (id.as_str(), r)).collect();
        let prefix = request.name_prefix.to_lowercase();
        let mut rows: Vec<(String, OrganizationRow)> = self
            .store
            .organizations_by_id(&ids)
            .await?
            .into_iter()
            .filter(|o| !o.is_deleted())
            .filter(|o| {
                prefix.is_empty()
                    || o.display_name.to_lowercase().starts_with(&prefix)
                    || o.slug.starts_with(&prefix)
            })
            .map(|o| (o.display_name.to_lowercase(), o))
            .collect();
        rows.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
        let start = match &after {
            Some(AfterName(key, id)) => rows
                .iter()
                .position(|(k, o)| (k, &o.id) > (key, id))
                .unwrap_or(rows.len()),
            None => 0,
        };
        let page: Vec<&(String, OrganizationRow)> = rows[start..].iter().take(size).collect();
        let next = if start + page.len() < rows.len() {
            let (key, last) = page.last().expect("a non-empty page");
            self.page_tokens
                .encode(query.as_bytes(), &AfterName(key.clone(), last.id.clone()))
        } else {
            String::new()
        };
        let organizations = page
            .into_iter()
            .map(|(_, o)| pb::MyOrganization {
                organization: Some(organization_to_proto(o)),
                roles: roles
                    .get(o.id.as_str())
                    .map(|r| (*r).clone())
                    .unwrap_or_default(),
                owner: o.owner_id == caller.id(),
            })
            .collect();
        Ok((organizations, next))
    }
}
