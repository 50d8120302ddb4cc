//! The organization service: workspaces, organization trees (organizations
//! and departments), teams, projects and their environments, ownership.
//!
//! - [`organizations`]: the tree: create, read, list, update, move, soft
//!   delete and undelete, deactivate; workspaces.
//! - [`ownership`]: handing an organization to another member, confirmed by
//!   a mailed single-use token.
//! - [`teams`] and [`projects`]: what organizations contain, sharing the
//!   life cycle in [`children`].
//! - `records`: the internal `OrganizationRecordsService`, the service's
//!   part of a bulk import or export.
//! - [`access`]: every permission question, asked of the rbac service;
//!   [`quota`]: every quota question, asked of the billing service.
//! - [`store`]: the rows and their SQL; [`schema`]: the migrations;
//!   [`validate`]: input rules that need no storage; `error`: the reasons
//!   it refuses a request.
//!
//! Every change writes its domain event to the outbox in the same
//! transaction (`organization.created`, `team.created`, …).

pub mod access;
pub mod children;
mod convert;
mod error;
pub mod organizations;
pub mod ownership;
pub mod projects;
pub mod purger;
pub mod quota;
mod records;
pub mod schema;
pub mod store;
pub mod teams;
pub mod validate;

use std::sync::Arc;
use tenantry_kit::permission::Permission;

use serde::{Deserialize, Serialize};
use tenantry_kit::configure_server;
use tenantry_kit::db::{Migration, Savepoint};
use tenantry_kit::error::{Code, Error, Result};
use tenantry_kit::index::IndexSink;
use tenantry_kit::outbox::{NewEvent, Outbox};
use tenantry_kit::page_token::PageTokens;
use tenantry_kit::peer::Peer;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_kit::tenancy;
use tenantry_kit::write::Write;
use tenantry_mail::{Mailer, MailerOptions};
use tenantry_proto::tenantry::bulk::v1 as bulk_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::organization::v1 as organization_pb;

use crate::access::{Access, Caller, Object};
use crate::quota::Quotas;
use crate::store::Store;

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "organization";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = schema::MIGRATIONS;

/// Options of the organization service (the `[organization]` table of the
/// config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// How many days a soft-deleted organization, team or project can be
    /// restored (its `purge_time`), from 1 to 365. Default: 30.
    pub purge_after_days: u32,
    /// How often soft-deleted objects past their purge time are deleted
    /// for good, in seconds (at least 1). Default: 3600.
    pub purge_interval_secs: u64,
    /// Whether creating an organization, team or project asks the billing
    /// service for quota first. Default: true.
    pub check_quotas: bool,
    /// The display name of the project a new organization starts with when
    /// its creation asks for one (`with_default_project`; a user's first
    /// organization, made at sign-up or by `Me`, always does). Empty: none.
    /// Default: `main`.
    pub default_project: String,
    /// Which projects the members of a new root organization see, unless
    /// its creation says otherwise (children take their parent's setting):
    /// `granted` (only the projects granted to them, by user, team or
    /// role) or `all_members` (every project). Default: `granted`.
    pub project_visibility: ProjectVisibility,
    /// Outgoing mail (ownership transfer tokens).
    pub mailer: MailerOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            purge_after_days: 30,
            purge_interval_secs: 3600,
            check_quotas: true,
            default_project: "main".into(),
            project_visibility: ProjectVisibility::Granted,
            mailer: MailerOptions::default(),
        }
    }
}

impl Options {
    /// Checks the values, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=365).contains(&self.purge_after_days),
            "invalid configuration: `organization.purge_after_days` must be from 1 to 365"
        );
        anyhow::ensure!(
            self.purge_interval_secs >= 1,
            "invalid configuration: `organization.purge_interval_secs` must be at least 1"
        );
        anyhow::ensure!(
            self.default_project.trim().chars().count() <= 200,
            "invalid configuration: `organization.default_project` must be at most 200 characters"
        );
        self.mailer.validate("organization.mailer")
    }
}

/// Which projects an organization's members see (the built-in member
/// role's project permissions).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProjectVisibility {
    /// Every project of the organization.
    AllMembers,
    /// Only the projects granted to them: as users, through a team or
    /// through a role.
    Granted,
}

/// What every handler of the service shares.
#[derive(Debug, Clone)]
pub struct Core {
    store: Store,
    access: Access,
    quotas: Quotas,
    outbox: Outbox,
    /// Where writes hand the authorization index their events.
    index: Arc<IndexSink>,
    page_tokens: PageTokens,
    mailer: Arc<dyn Mailer>,
    options: Arc<Options>,
}

/// The running organization service.
#[derive(Debug, Clone)]
pub struct Service {
    core: Core,
}

/// Builds the service and starts its background work (the outbox relay).
pub async fn build(ctx: &ServiceContext, options: &Options) -> anyhow::Result<Service> {
    options.validate()?;
    let outbox = ctx.outbox(NAME)?;
    let core = Core {
        store: Store::new(ctx.db.clone()),
        access: Access::new(ctx.channel(Peer::Rbac)?),
        quotas: Quotas::new(ctx.channel(Peer::Billing)?, options.check_quotas),
        outbox,
        index: ctx.index_sink(NAME)?,
        page_tokens: ctx.page_tokens.clone(),
        mailer: tenantry_mail::build(&options.mailer, "organization.mailer", ctx.data_dir.clone())?,
        options: Arc::new(options.clone()),
    };
    purger::spawn(
        ctx,
        core.clone(),
        std::time::Duration::from_secs(options.purge_interval_secs),
    );
    Ok(Service { core })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        let core = self.core.clone();
        routes.add(configure_server!(
            organization_pb::workspace_service_server::WorkspaceServiceServer::new(
                organizations::WorkspaceApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            organization_pb::organization_service_server::OrganizationServiceServer::new(
                organizations::OrganizationApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            organization_pb::team_service_server::TeamServiceServer::new(teams::TeamApi(
                core.clone()
            ))
        ));
        routes.add(configure_server!(
            organization_pb::project_service_server::ProjectServiceServer::new(
                projects::ProjectApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            bulk_pb::organization_records_service_server::OrganizationRecordsServiceServer::new(
                records::OrganizationRecordsApi(core)
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.core.outbox
    }
}

impl Core {
    /// Fails unless the caller holds `permission` on `object`: NOT_FOUND
    /// when the caller may not even `read` it (so nothing about it leaks),
    /// PERMISSION_DENIED when they may read it but not do this.
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        object: Object<'_>,
        permission: Permission,
        read: Permission,
        kind: &str,
    ) -> Result<()> {
        if caller.is_internal() && permission == read {
            return Ok(());
        }
        let answers = self
            .access
            .check_all(caller, &[(object, permission), (object, read)])
            .await?;
        match (answers[0], answers[1]) {
            (true, _) => Ok(()),
            (false, true) => Err(Error::permission_denied(permission).with_domain(NAME)),
            (false, false) => Err(not_found(kind)),
        }
    }

    /// Puts the trees of these organizations in the request's tenant scope
    /// (`tenantry_kit::tenancy`), before anything of theirs is read: on
    /// Postgres, each query of the request sees those trees' rows and no
    /// other's, whatever its own filter says. Names of no organization add
    /// nothing, so what they name stays unseen.
    pub(crate) async fn enter_tenants_of(&self, organization_ids: &[&str]) -> Result<()> {
        if !self.store.has_row_security() {
            return Ok(());
        }
        for root in tenancy::system(self.store.roots_of(organization_ids)).await? {
            tenancy::enter(&root);
        }
        Ok(())
    }

    /// Begins a write: its events go to the outbox and to the index.
    pub(crate) async fn begin(&self) -> Result<Write> {
        Ok(Write::new(
            self.store.begin().await?,
            &self.outbox,
            Some(&self.index),
        ))
    }

    /// Commits a write: the relay wakes, the index has its events (so the
    /// caller's next check sees them), the answer carries its token.
    pub(crate) async fn commit(&self, tx: Write) -> Result<()> {
        tx.commit().await?;
        Ok(())
    }

    /// Appends an event about `organization` (and its tree's root), caused
    /// by `caller`, with the objects it is about.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn emit<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        caller: &Caller,
        aggregate: (&'static str, &str),
        organization: (&str, &str),
        payload: &M,
        changes: Vec<events::FieldChange>,
        targets: Vec<events::Target>,
    ) -> Result<()> {
        let mut event = NewEvent::new(aggregate.0, aggregate.1, caller.actor(), payload)
            .in_organization(organization.0, organization.1)
            .with_request(caller.request.clone())
            .with_changes(changes);
        event.targets = targets;
        tx.emit(event).await?;
        Ok(())
    }

    /// Records in `org`'s audit log that the caller was refused `action`
    /// there, for lack of a permission or over a plan limit: refusals are
    /// activity too. Best effort: the refusal stands whether or not it is
    /// recorded. Only refusals to someone who may read the organization
    /// come here (NOT_FOUND is not recorded: a stranger cannot fill another
    /// tenant's log).
    pub(crate) async fn record_denied(
        &self,
        caller: &Caller,
        org: &store::OrganizationRow,
        action: Permission,
        error: &Error,
    ) {
        let Some(payload) = tenantry_kit::outbox::refusal(action.as_str(), error) else {
            return;
        };
        let recorded = async {
            // The authorization index has nothing to learn from a refusal.
            let mut tx = Write::new(self.store.begin().await?, &self.outbox, None);
            self.emit(
                &mut tx,
                caller,
                ("request", &tenantry_kit::id::new_id().to_string()),
                (&org.id, &org.root_id),
                &payload,
                Vec::new(),
                vec![target("organization", &org.id, &org.display_name)],
            )
            .await?;
            self.commit(tx).await
        }
        .await;
        if let Err(error) = recorded {
            tracing::warn!(error = %error, "a refusal could not be recorded in the audit log");
        }
    }

    /// When a soft-deleted object is purged, counted from `now_us`.
    pub(crate) fn purge_at(&self, now_us: i64) -> i64 {
        now_us + i64::from(self.options.purge_after_days) * 86_400 * 1_000_000
    }
}

/// The NOT_FOUND of a missing (or hidden) object of `kind`.
pub(crate) fn not_found(kind: &str) -> Error {
    Error::not_found(kind).with_domain(NAME)
}

/// One field's change, for events.
pub(crate) fn change(
    field: &str,
    before: impl ToString,
    after: impl ToString,
) -> events::FieldChange {
    events::FieldChange {
        field: field.to_string(),
        before: before.to_string(),
        after: after.to_string(),
    }
}

/// The field changes that changed a value, for events.
pub(crate) fn changed(
    changes: impl IntoIterator<Item = events::FieldChange>,
) -> Vec<events::FieldChange> {
    changes
        .into_iter()
        .filter(|c| c.before != c.after)
        .collect()
}

/// A target of an event.
pub(crate) fn target(kind: &str, id: &str, name: &str) -> events::Target {
    events::Target {
        r#type: kind.to_string(),
        id: id.to_string(),
        name: name.to_string(),
    }
}

pub(crate) use tenantry_kit::db::timestamp;

/// A random suffix for a derived slug that collided.
pub(crate) fn slug_suffix() -> String {
    tenantry_kit::id::new_id().simple().to_string()[26..].to_string()
}

/// A new row with a slug that must be free among the live rows of its kind.
pub(crate) enum NewRow<'a> {
    Organization(&'a mut store::OrganizationRow),
    Child(store::Children, &'a mut store::ChildRow),
}

impl NewRow<'_> {
    fn slug(&mut self) -> &mut String {
        match self {
            NewRow::Organization(row) => &mut row.slug,
            NewRow::Child(_, row) => &mut row.slug,
        }
    }
}

impl Core {
    /// Inserts a new row. Two creates with one name at once both find the
    /// slug free: the loser of the unique index takes a suffix instead of
    /// failing (up to three times), unless the caller chose the slug.
    /// `Ok(false)` when the slug stays taken.
    pub(crate) async fn insert_with_free_slug(
        &self,
        tx: &mut store::Tx,
        mut row: NewRow<'_>,
        explicit_slug: bool,
    ) -> Result<bool> {
        let base = row.slug().clone();
        let mut attempt = 0;
        loop {
            let savepoint = Savepoint::set(tx).await?;
            let inserted = match &row {
                NewRow::Organization(org) => self.store.insert_organization(tx, org).await,
                NewRow::Child(kind, child) => self.store.insert_child(tx, *kind, child).await,
            };
            match inserted {
                Ok(()) => {
                    savepoint.release(tx).await?;
                    return Ok(true);
                }
                Err(e) if e.code() == Code::AlreadyExists && !explicit_slug && attempt < 3 => {
                    savepoint.undo(tx).await?;
                    *row.slug() = format!("{base}-{}", slug_suffix());
                }
                Err(e) if e.code() == Code::AlreadyExists => return Ok(false),
                Err(e) => return Err(e),
            }
            attempt += 1;
        }
    }
}
