//! The rbac service: memberships, roles, team members and project grants,
//! and the authorization engine behind `CheckPermission`.
//!
//! - [`engine`]: the in-memory index (pure, no IO) and its schema.
//! - [`live`]: a replica's index, loaded from the store and following its
//!   change log; consistency tokens.
//! - [`store`] and [`schema`]: the tables and the change log.
//! - [`directory`]: what rbac learns from the organization and identity
//!   services' events (the tree, owners, users' emails).
//! - [`memberships`], [`roles`], [`teams`], [`grants`]: the management
//!   APIs; [`authz`]: `AuthorizationService`; [`index_api`]: the internal
//!   `IndexService` through which other services hand over their writes.
//!
//! Every write goes through [`Core::write`]: state rows, the change log
//! entry and the domain event in one transaction, then this replica's index
//! catches up before the answer carries the new revision as its token.

pub mod authz;
mod convert;
pub mod directory;
pub mod engine;
mod error;
pub mod grants;
pub mod index_api;
pub mod invitations;
pub mod live;
pub mod memberships;
pub mod peers;
mod records;
pub mod roles;
pub mod schema;
pub mod store;
pub mod teams;
pub mod types;
pub mod watch;

use std::sync::Arc;
use tenantry_kit::permission::Permission;
use tenantry_kit::tenancy;

use serde::{Deserialize, Serialize};
use tenantry_kit::auth::{Principal, PrincipalKind};
use tenantry_kit::configure_server;
use tenantry_kit::consistency::Token;
use tenantry_kit::db::Migration;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::outbox::{NewEvent, Outbox};
use tenantry_kit::page_token::PageTokens;
use tenantry_kit::service::{GrpcRoutes, ServiceContext};
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as rbac_pb;

use crate::engine::{Change, ORGANIZATION};
use crate::live::LiveIndex;
use crate::store::{Store, Tx};

/// The service's name: the source of its events and the key of its
/// migrations.
pub const NAME: &str = "rbac";

/// The service's tables, in both SQL dialects.
pub const MIGRATIONS: &[Migration] = schema::MIGRATIONS;

/// Options of the rbac service (the `[rbac]` table of the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// How many revisions of the change log are kept for replicas that fall
    /// behind and for `Watch` cursors (older ones are compacted away; a
    /// replica further behind reloads its index). Default: 100000.
    pub retain_revisions: u32,
    /// The least time between two sends of one invitation, in seconds.
    /// Default: 60.
    pub resend_interval_secs: u32,
    /// How many times one invitation may be sent, the first included.
    /// Default: 5.
    pub max_sends: u32,
    /// Outgoing mail (invitation tokens).
    pub mailer: tenantry_mail::MailerOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retain_revisions: 100_000,
            resend_interval_secs: 60,
            max_sends: 5,
            mailer: tenantry_mail::MailerOptions::default(),
        }
    }
}

impl Options {
    /// Checks the values, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.retain_revisions >= 100,
            "invalid configuration: `rbac.retain_revisions` must be at least 100"
        );
        anyhow::ensure!(
            (1..=100).contains(&self.max_sends),
            "invalid configuration: `rbac.max_sends` must be from 1 to 100"
        );
        self.mailer.validate("rbac.mailer")
    }
}

/// The methods that take no access token: what an invitation token is for
/// (the token is the credential).
pub const PUBLIC_METHODS: &[&str] = &["/tenantry.rbac.v1.InvitationService/LookupInvitation"];

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct Core {
    store: Store,
    index: Arc<LiveIndex>,
    outbox: Outbox,
    page_tokens: PageTokens,
    peers: peers::Peers,
    mailer: Arc<dyn tenantry_mail::Mailer>,
    options: Arc<Options>,
    /// Cancelled when the process shuts down: long-lived streams end.
    shutdown: tokio_util::sync::CancellationToken,
}

/// The running rbac service.
#[derive(Debug, Clone)]
pub struct Service {
    core: Core,
}

/// Builds the service: loads the index, follows the change log, consumes
/// the organization and identity events, relays the outbox.
pub async fn build(ctx: &ServiceContext, options: &Options) -> anyhow::Result<Service> {
    options.validate()?;
    let outbox = ctx.outbox(NAME)?;
    let store = Store::new(ctx.db.clone());
    let index = LiveIndex::load(store.clone()).await?;
    index.spawn_follower(ctx.shutdown.clone(), &ctx.tasks);
    index.spawn_replica_tasks(ctx.shutdown.clone(), &ctx.tasks);
    live::spawn_compactor(
        store.clone(),
        options.retain_revisions,
        ctx.shutdown.clone(),
        &ctx.tasks,
    );
    let core = Core {
        store,
        index,
        outbox,
        page_tokens: ctx.page_tokens.clone(),
        peers: peers::Peers::new(&ctx.peers)?,
        mailer: tenantry_mail::build(&options.mailer, "rbac.mailer", ctx.data_dir.clone())?,
        options: Arc::new(options.clone()),
        shutdown: ctx.stopping.clone(),
    };
    directory::spawn(ctx, core.clone());
    Ok(Service { core })
}

impl Service {
    /// Mounts the service's gRPC servers.
    pub fn register(&self, routes: &mut GrpcRoutes) {
        let core = self.core.clone();
        routes.add(configure_server!(
            rbac_pb::membership_service_server::MembershipServiceServer::new(
                memberships::MembershipApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            rbac_pb::role_service_server::RoleServiceServer::new(roles::RoleApi(core.clone()))
        ));
        routes.add(configure_server!(
            rbac_pb::team_member_service_server::TeamMemberServiceServer::new(
                teams::TeamMemberApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            rbac_pb::project_grant_service_server::ProjectGrantServiceServer::new(
                grants::ProjectGrantApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            rbac_pb::invitation_service_server::InvitationServiceServer::new(
                invitations::InvitationApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            authz_pb::authorization_service_server::AuthorizationServiceServer::new(
                authz::AuthorizationApi(core.clone())
            )
        ));
        routes.add(configure_server!(
            authz_pb::schema_service_server::SchemaServiceServer::new(types::SchemaApi(
                core.clone()
            ))
        ));
        routes.add(configure_server!(
            authz_pb::index_service_server::IndexServiceServer::new(index_api::IndexApi(
                core.clone()
            ))
        ));
        routes.add(configure_server!(
            tenantry_proto::tenantry::bulk::v1::membership_records_service_server::MembershipRecordsServiceServer::new(
                records::RecordsApi(core.clone())
            )
        ));
    }

    /// The service's outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.core.outbox
    }

    /// This replica's index (for tests and benchmarks).
    pub fn index(&self) -> &Arc<LiveIndex> {
        &self.core.index
    }
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The caller's own verified token, for calls made on their behalf.
    pub bearer: Option<tenantry_kit::auth::BearerToken>,
    pub request: events::RequestContext,
}

impl Caller {
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller> {
        Ok(Caller {
            principal: Principal::from_request(request)?.clone(),
            bearer: tenantry_kit::auth::BearerToken::from_request(request).cloned(),
            request: tenantry_kit::request::request_context(request),
        })
    }

    /// Whether another Tenantry service is calling.
    pub fn is_internal(&self) -> bool {
        self.principal.internal_service().is_some()
    }

    /// The calling user's id, when a user is calling.
    pub fn user(&self) -> Option<&str> {
        (self.principal.kind == PrincipalKind::User).then_some(self.principal.id.as_str())
    }

    pub fn actor(&self) -> events::Actor {
        tenantry_kit::request::actor(&self.principal)
    }
}

impl Core {
    /// The caller of a request, once this replica's index reflects what the
    /// caller must see (their own writes, a token they sent): every handler
    /// starts here, so no answer is older than the caller's last write.
    pub(crate) async fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller> {
        let caller = Caller::from_request(request)?;
        self.index.at(None).await?;
        Ok(caller)
    }

    /// Whether the caller holds `permission` on an object, by this
    /// replica's index (which has applied every write this replica made).
    /// Internal services may do anything here; API keys only what they
    /// carry.
    pub(crate) fn allows(
        &self,
        caller: &Caller,
        object_type: &str,
        id: &str,
        permission: Permission,
    ) -> Result<bool> {
        let index = self.index.read();
        // The object's tree joins the request's tenant scope: what the
        // request reads next is held to it.
        if let Some(organization) = index.organization_of(object_type, id) {
            enter_tree(&index, organization);
        }
        if caller.is_internal() {
            return Ok(true);
        }
        let permission = permission.as_str();
        if !authz::session_live(&index, &caller.principal) {
            return Ok(false);
        }
        match caller.principal.kind {
            PrincipalKind::ApiKey => {
                index.check_key(&caller.principal.id, object_type, id, permission)
            }
            _ => index.check_by_id(&caller.principal.id, object_type, id, permission),
        }
        .map_err(|e| Error::internal(anyhow::anyhow!(e)))
    }

    /// Puts the tree of `organization` into the request's tenant scope (see
    /// `tenantry_kit::tenancy`), from the index: on Postgres each query the
    /// request makes from now on sees that tree's rows and no other's.
    pub(crate) fn enter_tenant_of(&self, organization: &str) {
        enter_tree(&self.index.read(), organization);
    }

    /// Whether the caller is a service account whose token is for
    /// `organization` (or an organization above it).
    /// The organization's tree joins the request's tenant scope, as in
    /// [`Core::allows`].
    pub(crate) fn serves(&self, caller: &Caller, organization: &str) -> bool {
        self.enter_tenant_of(organization);
        caller.principal.kind == PrincipalKind::ServiceAccount
            && caller
                .principal
                .organization
                .as_deref()
                .is_some_and(|scope| {
                    self.index
                        .read()
                        .within("organization", organization, scope)
                })
    }

    /// Fails unless the caller holds `permission`: NOT_FOUND when they may
    /// not even `read` the object, PERMISSION_DENIED otherwise.
    /// A refusal to someone who may read the object is recorded in its
    /// organization's audit log; a NOT_FOUND is not (strangers must not be
    /// able to fill another tenant's log).
    pub(crate) async fn authorize(
        &self,
        caller: &Caller,
        object: (&str, &str),
        permission: Permission,
        read: Permission,
        kind: &str,
    ) -> Result<()> {
        if self.allows(caller, object.0, object.1, permission)? {
            Ok(())
        } else if permission != read && self.allows(caller, object.0, object.1, read)? {
            let error = Error::permission_denied(permission).with_domain(NAME);
            let organization = self
                .index
                .read()
                .organization_of(object.0, object.1)
                .map(str::to_string);
            if let Some(organization) = organization {
                self.record_denied(caller, &organization, permission, &error)
                    .await;
            }
            Err(error)
        } else {
            Err(Error::not_found(kind).with_domain(NAME))
        }
    }

    /// The root of an organization's tree, for events (the organization
    /// itself when the index does not know it). Read from the index: a
    /// database read here could wait on the caller's own open transaction.
    pub(crate) fn root_of(&self, organization_id: &str) -> String {
        self.index
            .read()
            .root_of(organization_id)
            .unwrap_or(organization_id)
            .to_string()
    }

    /// Logs `changes` as the next revision and appends `events`, in `tx`;
    /// commits; brings this replica's index up to the new revision; returns
    /// it.
    pub(crate) async fn write(
        &self,
        mut tx: Tx,
        changes: &[Change],
        events: Vec<NewEvent>,
    ) -> Result<i64> {
        // A write that changes nothing the index knows (an invitation, say)
        // takes no revision: it must not queue behind the revision lock.
        let revision = if changes.is_empty() {
            None
        } else {
            Some(self.store.log(&mut tx, changes).await?)
        };
        let written = if events.is_empty() {
            Vec::new()
        } else {
            self.outbox.append_all(&mut tx, events).await?
        };
        tx.commit().await?;
        // Billing counts memberships and the audit log shows them: both
        // take the events now, for the caller's next read.
        self.outbox.committed(&written).await;
        // The write is done: if this replica cannot catch up right now, its
        // follower will, and a check with this token waits for that. Failing
        // here would invite a retry of a write that already happened.
        if let Err(error) = self.index.catch_up().await {
            tracing::warn!(error = %error, "catching the index up after a write failed");
        }
        let revision = revision.unwrap_or_else(|| self.index.applied());
        // Every replica shows the write before it returns, so the caller's
        // next call answers from it wherever it lands.
        if let Err(error) = self.index.await_replicas(revision).await {
            tracing::warn!(error = %error, "waiting for the other replicas failed");
        }
        tenantry_kit::consistency::record_write(&Token::at(revision));
        Ok(revision)
    }

    /// A new event from the caller about an organization.
    pub(crate) async fn event<M: tenantry_proto::EventType>(
        &self,
        caller: &Caller,
        aggregate: (&'static str, &str),
        organization_id: &str,
        payload: &M,
    ) -> NewEvent {
        self.event_as(caller.actor(), aggregate, organization_id, payload)
            .with_request(caller.request.clone())
    }

    /// A new event from `actor` about an organization.
    pub(crate) fn event_as<M: tenantry_proto::EventType>(
        &self,
        actor: events::Actor,
        aggregate: (&'static str, &str),
        organization_id: &str,
        payload: &M,
    ) -> NewEvent {
        let mut event = NewEvent::new(aggregate.0, aggregate.1, actor, payload)
            .in_organization(organization_id, self.root_of(organization_id));
        // What audit searches by: the changed object, and for a membership
        // (`<organization>/<user>`) the member too.
        event.targets = vec![target(aggregate.0, aggregate.1)];
        if aggregate.0 == "membership"
            && let Some((_, user)) = aggregate.1.split_once('/')
        {
            event.targets.push(target("user", user));
        }
        event
    }

    /// Records in the organization's audit log that the caller was refused
    /// `action` there (for lack of a permission, or over a plan limit), as
    /// the organization service does. Best effort: the refusal stands
    /// whether or not it is recorded.
    pub(crate) async fn record_denied(
        &self,
        caller: &Caller,
        organization_id: &str,
        action: Permission,
        error: &Error,
    ) {
        let Some(payload) = tenantry_kit::outbox::refusal(action.as_str(), error) else {
            return;
        };
        let request = tenantry_kit::id::new_id().to_string();
        let mut event = self
            .event(caller, ("request", &request), organization_id, &payload)
            .await;
        event.targets = vec![target("organization", organization_id)];
        let recorded = async {
            let mut tx = self.store.begin().await?;
            let written = self.outbox.append(&mut tx, event).await?;
            tx.commit().await?;
            self.outbox.committed(&[written]).await;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = recorded {
            tracing::warn!(error = %error, "a refusal could not be recorded in the audit log");
        }
    }

    /// The organizations whose relationships the caller reads and writes by
    /// filter: the one its token is for and those below it; `None` (all)
    /// for Tenantry's own services. Another tenant's relationships never
    /// match a filter, so no filter can count or probe them.
    pub(crate) fn relationship_scope(&self, caller: &Caller) -> Option<Vec<String>> {
        if caller.is_internal() {
            return None;
        }
        let index = self.index.read();
        let organization = caller.principal.organization.as_deref();
        // Those organizations' tree joins the request's tenant scope.
        if let Some(organization) = organization {
            enter_tree(&index, organization);
        }
        Some(
            organization
                .map(|org| {
                    index
                        .organizations_under(org)
                        .into_iter()
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// One page of a short list computed whole (roles, resource types): the
    /// page token holds the offset, bound to `query` so it serves no other
    /// list.
    pub(crate) fn page_of<T>(
        &self,
        mut items: Vec<T>,
        query: &str,
        page_size: i32,
        page_token: &str,
        default: u32,
    ) -> Result<(Vec<T>, String)> {
        let size = tenantry_kit::page_token::page_size(page_size, default, 1000)? as usize;
        let offset: usize = self
            .page_tokens
            .decode(query.as_bytes(), page_token)?
            .unwrap_or(0);
        let rest = items.split_off(offset.min(items.len()));
        let more = rest.len() > size;
        let page: Vec<T> = rest.into_iter().take(size).collect();
        let next = if more {
            self.page_tokens
                .encode(query.as_bytes(), &(offset + page.len()))
        } else {
            String::new()
        };
        Ok((page, next))
    }

    /// Where a page of a list ordered by one key starts: after the key its
    /// token holds (the token is bound to `query`); the first page starts
    /// at the empty key.
    pub(crate) fn page_start(&self, query: &str, page_token: &str) -> Result<String> {
        Ok(self
            .page_tokens
            .decode::<After>(query.as_bytes(), page_token)?
            .map(|a| a.0)
            .unwrap_or_default())
    }

    /// Cuts `rows` (read one past the page when there is more) to a page of
    /// `size`; returns the token of the next page, which starts after the
    /// `key` of this page's last row, or nothing when this page is the last.
    pub(crate) fn page_end<T>(
        &self,
        rows: &mut Vec<T>,
        size: usize,
        query: &str,
        key: impl Fn(&T) -> &String,
    ) -> String {
        let more = rows.len() > size;
        rows.truncate(size);
        match (more, rows.last()) {
            (true, Some(last)) => self
                .page_tokens
                .encode(query.as_bytes(), &After(key(last).clone())),
            _ => String::new(),
        }
    }

    /// Whether an organization exists (as the tree mirror knows it).
    pub(crate) fn organization_known(&self, id: &str) -> bool {
        self.index.read().node(ORGANIZATION, id).is_some()
    }
}

/// The cursor of a list ordered by one key: the last key a page returned.
#[derive(Serialize, Deserialize)]
pub(crate) struct After(pub(crate) String);

fn target(kind: &str, id: &str) -> events::Target {
    events::Target {
        r#type: kind.to_string(),
        id: id.to_string(),
        name: String::new(),
    }
}

/// Puts the tree of `organization` into the request's tenant scope,
/// when the index knows its root.
fn enter_tree(index: &engine::Index, organization: &str) {
    if let Some(root) = index.root_of(organization) {
        tenancy::enter(root);
    }
}

pub(crate) use tenantry_kit::db::timestamp;
