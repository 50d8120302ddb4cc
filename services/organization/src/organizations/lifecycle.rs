//! An organization's life after creation: updates (names, settings,
//! metadata), soft delete and undelete with their subtree, deactivation and
//! reactivation.

use super::*;
use tenantry_kit::names::OrganizationName;

impl Core {
    /// Writes `next`, an organization's new state, with the event `payload`
    /// about it (and the fields it changed), and commits.
    async fn commit_organization<M: tenantry_proto::EventType>(
        &self,
        mut tx: Write,
        caller: &Caller,
        next: &OrganizationRow,
        payload: &M,
        changes: Vec<events::FieldChange>,
    ) -> Result<()> {
        self.store.update_organization(&mut tx, next).await?;
        let id = &next.id;
        let targets = vec![target(KIND, id, &next.display_name)];
        self.emit(
            &mut tx,
            caller,
            (KIND, id),
            (id, &next.root_id),
            payload,
            changes,
            targets,
        )
        .await?;
        self.commit(tx).await
    }

    pub(super) async fn update_organization(
        &self,
        caller: &Caller,
        input: pb::Organization,
        mask: Option<prost_types::FieldMask>,
    ) -> Result<OrganizationRow> {
        let id = OrganizationName::parse("organization.name", &input.name)?.id;
        let paths = validate::update_mask(
            mask.as_ref(),
            &[
                "display_name",
                "slug",
                "inherit_access",
                "metadata",
                "settings",
                "settings.departments_enabled",
                "settings.require_mfa",
                "settings.allowed_email_domains",
                "settings.project_visibility",
            ],
        )?;
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_SETTINGS_MANAGE)
            .await?;
        check_etag(&input.etag, current.version)?;
        let mut next = current.clone();
        let settings = input.settings.clone().unwrap_or_default();
        let mut changes = Vec::new();
        let mut changed_fields = Vec::new();
        for path in paths {
            let expanded: &[&str] = if path == "settings" {
                &[
                    "settings.departments_enabled",
                    "settings.require_mfa",
                    "settings.allowed_email_domains",
                    "settings.project_visibility",
                ]
            } else {
                std::slice::from_ref(&path)
            };
            for &field in expanded {
                match field {
                    "display_name" => {
                        validate::display_name("organization.display_name", &input.display_name)?;
                        next.display_name = input.display_name.clone();
                    }
                    "slug" => {
                        validate::organization_slug("organization.slug", &input.slug)?;
                        next.slug = input.slug.clone();
                    }
                    "inherit_access" => {
                        let inherit = input.inherit_access.unwrap_or(true);
                        if current.parent_id.is_none() && !inherit {
                            return Err(Error::invalid_field(
                                "organization.inherit_access",
                                "a root has no ancestors to inherit from",
                            ));
                        }
                        next.inherit_access = inherit;
                    }
                    "metadata" => {
                        let metadata: BTreeMap<String, String> =
                            input.metadata.clone().into_iter().collect();
                        validate::metadata("organization.metadata", &metadata)?;
                        next.metadata = metadata;
                    }
                    "settings.departments_enabled" => {
                        next.departments_enabled = settings.departments_enabled.unwrap_or(true);
                    }
                    "settings.require_mfa" => next.require_mfa = settings.require_mfa,
                    "settings.project_visibility" => {
                        next.projects_granted_only =
                            match projects_granted_only("organization", &settings)? {
                                Some(granted_only) => granted_only,
                                // Unset is reset to the default: the parent's
                                // setting, or the installation's for a root.
                                None => {
                                    self.default_granted_only(current.parent_id.as_deref())
                                        .await?
                                }
                            };
                    }
                    _ => {
                        next.allowed_email_domains = validate::email_domains(
                            "organization.settings.allowed_email_domains",
                            &settings.allowed_email_domains,
                        )?;
                    }
                }
                if let Some(c) = field_change(field, &current, &next) {
                    changed_fields.push(field.to_string());
                    changes.push(c);
                }
            }
        }
        next.updated_at_us = now_micros();
        next.version = current.version + 1;

        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        if next.slug != current.slug
            && self
                .store
                .organization_slug_taken(&mut tx, &next.slug, &id)
                .await?
        {
            return Err(Refusal::SlugTaken {
                slug: next.slug.clone(),
            }
            .into());
        }
        let event = events::OrganizationUpdated {
            organization_id: id.clone(),
            slug: next.slug.clone(),
            display_name: next.display_name.clone(),
            inherit_access: next.inherit_access,
            require_mfa: next.require_mfa,
            departments_enabled: next.departments_enabled,
            allowed_email_domains: next.allowed_email_domains.clone(),
            changed_fields,
            projects_granted_only: next.projects_granted_only,
        };
        self.commit_organization(tx, caller, &next, &event, changes)
            .await?;
        Ok(next)
    }

    pub(super) async fn delete_organization(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
        force: bool,
    ) -> Result<OrganizationRow> {
        let id = OrganizationName::parse("name", name)?.id;
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_DELETE)
            .await?;
        check_etag(given_etag, current.version)?;
        let now = now_micros();
        let purge_at = self.purge_at(now);
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        let mut cascaded = Vec::new();
        if self.store.live_children(&mut tx, &id).await? > 0 {
            if !force {
                return Err(Refusal::OrganizationNotEmpty.into());
            }
            for mut child in self.store.descendants(&mut tx, &current).await? {
                if child.is_deleted() {
                    continue;
                }
                child.deleted_at_us = Some(now);
                child.purge_at_us = Some(purge_at);
                child.deleted_with = Some(id.clone());
                child.version += 1;
                child.updated_at_us = now;
                self.store.update_organization(&mut tx, &child).await?;
                cascaded.push(child.id);
            }
        }
        let mut scope = cascaded.clone();
        scope.push(id.clone());
        self.store
            .cascade_delete_children(&mut tx, &scope, &id, now, purge_at)
            .await?;
        let mut next = current.clone();
        next.deleted_at_us = Some(now);
        next.purge_at_us = Some(purge_at);
        next.deleted_with = None;
        next.updated_at_us = now;
        next.version += 1;
        let event = events::OrganizationDeleted {
            organization_id: id.clone(),
            parent_id: next.parent_id.clone().unwrap_or_default(),
            kind: event_kind(&next.kind),
            display_name: next.display_name.clone(),
            cascaded_organization_ids: cascaded,
            purge_time: Some(timestamp(purge_at)),
        };
        self.commit_organization(tx, caller, &next, &event, Vec::new())
            .await?;
        Ok(next)
    }

    pub(super) async fn undelete_organization(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
    ) -> Result<OrganizationRow> {
        let id = OrganizationName::parse("name", name)?.id;
        let current = self.organization(&id).await?;
        self.authorize_organization(caller, &current, Permission::ORGANIZATION_DELETE)
            .await?;
        check_etag(given_etag, current.version)?;
        if !current.is_deleted() {
            return Err(Refusal::OrganizationNotDeleted.into());
        }
        if current.deleted_with.is_some() {
            return Err(Refusal::DeletedWithAncestor.into());
        }
        if let Some(parent) = &current.parent_id
            && self.organization(parent).await?.is_deleted()
        {
            return Err(Refusal::ParentDeleted.into());
        }
        let now = now_micros();
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        if self
            .store
            .organization_slug_taken(&mut tx, &current.slug, &id)
            .await?
        {
            return Err(Refusal::SlugTaken {
                slug: current.slug.clone(),
            }
            .into());
        }
        let mut restored = Vec::new();
        for mut child in self.store.descendants(&mut tx, &current).await? {
            if child.deleted_with.as_deref() != Some(id.as_str()) {
                continue;
            }
            if self
                .store
                .organization_slug_taken(&mut tx, &child.slug, &child.id)
                .await?
            {
                return Err(Refusal::SlugTaken {
                    slug: child.slug.clone(),
                }
                .into());
            }
            child.deleted_at_us = None;
            child.purge_at_us = None;
            child.deleted_with = None;
            child.version += 1;
            child.updated_at_us = now;
            self.store.update_organization(&mut tx, &child).await?;
            restored.push(child.id);
        }
        let mut scope = restored.clone();
        scope.push(id.clone());
        self.store
            .cascade_restore_children(&mut tx, &scope, &id)
            .await?;
        let mut next = current.clone();
        next.deleted_at_us = None;
        next.purge_at_us = None;
        next.updated_at_us = now;
        next.version += 1;
        let event = events::OrganizationUndeleted {
            organization_id: id.clone(),
            parent_id: next.parent_id.clone().unwrap_or_default(),
            cascaded_organization_ids: restored,
        };
        self.commit_organization(tx, caller, &next, &event, Vec::new())
            .await?;
        Ok(next)
    }

    pub(super) async fn set_state(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
        deactivate: Option<&str>,
    ) -> Result<OrganizationRow> {
        let id = OrganizationName::parse("name", name)?.id;
        if let Some(reason) = deactivate
            && reason.chars().count() > 1000
        {
            return Err(Error::invalid_field(
                "reason",
                "must be at most 1000 characters",
            ));
        }
        let current = self
            .live_organization(caller, &id, Permission::ORGANIZATION_DEACTIVATE)
            .await?;
        check_etag(given_etag, current.version)?;
        let state = if deactivate.is_some() {
            "deactivated"
        } else {
            "active"
        };
        if current.state == state {
            return Ok(current);
        }
        let mut next = current.clone();
        next.state = state.into();
        next.updated_at_us = now_micros();
        next.version += 1;
        let mut tx = self.begin().await?;
        self.ensure_unchanged(&mut tx, &current).await?;
        self.store.update_organization(&mut tx, &next).await?;
        let changes = vec![change("state", &current.state, state)];
        let targets = vec![target(KIND, &id, &next.display_name)];
        match deactivate {
            Some(reason) => {
                self.emit(
                    &mut tx,
                    caller,
                    (KIND, &id),
                    (&id, &next.root_id),
                    &events::OrganizationDeactivated {
                        organization_id: id.clone(),
                        reason: reason.to_string(),
                    },
                    changes,
                    targets,
                )
                .await?
            }
            None => {
                self.emit(
                    &mut tx,
                    caller,
                    (KIND, &id),
                    (&id, &next.root_id),
                    &events::OrganizationReactivated {
                        organization_id: id.clone(),
                    },
                    changes,
                    targets,
                )
                .await?
            }
        }
        self.commit(tx).await?;
        Ok(next)
    }
}
