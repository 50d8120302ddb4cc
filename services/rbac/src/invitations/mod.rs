//! `InvitationService`: inviting people by email, with roles and teams
//! given on acceptance.
//!
//! The token is 32 random bytes, mailed and never stored (only its SHA-256);
//! one pending invitation per (organization, email); it expires (7 days by
//! default, at most 30); resending is rate-limited and replaces the token;
//! pending invitations take a seat; the organization's allowed email
//! domains are enforced. Acceptance needs a signed-in user whose verified
//! email is the invited one (identity's sign-up through an invitation
//! creates such a user first).
//!
//! This file holds the rows, their SQL and the lookups; `create` and
//! `accept` the two flows; `api` the handlers.

use serde::{Deserialize, Serialize};
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{InvitationName, OrganizationName, ProjectName, TeamName};
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;
use tenantry_kit::row::{Bit, JsonText, json};
use tenantry_kit::secret::{hash_token, new_token};
use tenantry_kit::tenancy;
use tenantry_mail::Mail;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::engine::{AccessLevel, Change, GrantSubject};
use crate::error::Error as Refusal;
use crate::live::token;
use crate::memberships::check_etag;
use crate::store::{GrantRow, MembershipRow, TeamMemberRow, Tx};
use crate::{Caller, Core, NAME, timestamp};

const DEFAULT_LIFETIME_SECS: i64 = 7 * 86_400;
const MAX_LIFETIME_SECS: i64 = 30 * 86_400;
/// The shortest an invitation may live: long enough to read its mail.
const MIN_LIFETIME_SECS: i64 = 3_600;

/// What accepting an invitation did.
#[derive(Debug)]
struct Accepted {
    /// The membership, unless the invitation was external.
    membership: Option<MembershipRow>,
    /// The projects granted, by name.
    granted: Vec<String>,
    revision: i64,
}

/// The `InvitationService` handler.
#[derive(Debug, Clone)]
pub struct InvitationApi(pub Core);

/// An invitation row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub organization_id: String,
    pub organization_name: String,
    pub email: String,
    #[sqlx(try_from = "JsonText")]
    pub roles: Vec<String>,
    #[sqlx(try_from = "JsonText")]
    pub teams: InvitedTeams,
    #[sqlx(try_from = "JsonText")]
    pub projects: InvitedProjects,
    /// Whether the invitee joins as an external user (grants only).
    #[sqlx(try_from = "Bit")]
    pub external: bool,
    /// `pending`, `accepted` or `revoked` (`expired` once noticed).
    pub state: String,
    pub token_hash: String,
    pub inviter_id: String,
    /// The inviter's display name when the invitation was made.
    pub inviter_name: String,
    pub expires_at_us: i64,
    pub lifetime_us: i64,
    pub send_count: i64,
    pub last_sent_at_us: i64,
    pub accepted_by: Option<String>,
    pub closed_at_us: Option<i64>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub version: i64,
}

/// The teams an invitation adds its invitee to: (team id, lead?).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvitedTeams(pub Vec<(String, bool)>);

/// The projects an invitation grants on acceptance: (project id, access
/// level).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvitedProjects(pub Vec<(String, AccessLevel)>);

/// Both lists read as the plain list they wrap.
macro_rules! invited_list {
    ($($list:ident => $item:ty),*) => {$(
        impl std::ops::Deref for $list {
            type Target = Vec<$item>;

            fn deref(&self) -> &Vec<$item> {
                &self.0
            }
        }

        impl TryFrom<JsonText> for $list {
            type Error = sqlx::Error;

            fn try_from(text: JsonText) -> std::result::Result<$list, sqlx::Error> {
                text.parse()
            }
        }
    )*};
}

invited_list!(InvitedTeams => (String, bool), InvitedProjects => (String, AccessLevel));

/// The columns of an invitation row.
macro_rules! invitation_columns {
    () => {
        "id, organization_id, organization_name, email, roles, teams, state, token_hash, \
         inviter_id, expires_at_us, lifetime_us, send_count, last_sent_at_us, accepted_by, \
         closed_at_us, created_at_us, updated_at_us, version, inviter_name, projects, external"
    };
}

async fn insert(tx: &mut Tx, i: &InvitationRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO rbac_invitations (id, organization_id, organization_name, email, roles, teams, state,
            token_hash, inviter_id, expires_at_us, lifetime_us, send_count, last_sent_at_us,
            created_at_us, updated_at_us, version, inviter_name, projects, external)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&i.id)
    .bind(&i.organization_id)
    .bind(&i.organization_name)
    .bind(&i.email)
    .bind(json(&i.roles))
    .bind(json(&i.teams))
    .bind(&i.state)
    .bind(&i.token_hash)
    .bind(&i.inviter_id)
    .bind(i.expires_at_us)
    .bind(i.lifetime_us)
    .bind(i.send_count)
    .bind(i.last_sent_at_us)
    .bind(i.created_at_us)
    .bind(i.updated_at_us)
    .bind(i.version)
    .bind(&i.inviter_name)
    .bind(json(&i.projects))
    .bind(i64::from(i.external))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the mutable fields; `false` when the row changed since `expected`.
async fn update(tx: &mut Tx, i: &InvitationRow, expected: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE rbac_invitations SET state = $3, token_hash = $4, expires_at_us = $5, send_count = $6,
            last_sent_at_us = $7, accepted_by = $8, closed_at_us = $9, updated_at_us = $10, version = $11
         WHERE id = $1 AND version = $2",
    )
    .bind(&i.id)
    .bind(expected)
    .bind(&i.state)
    .bind(&i.token_hash)
    .bind(i.expires_at_us)
    .bind(i.send_count)
    .bind(i.last_sent_at_us)
    .bind(&i.accepted_by)
    .bind(i.closed_at_us)
    .bind(i.updated_at_us)
    .bind(i.version)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid_field(
            "invitation.email",
            "must be an email address",
        ))
    }
}

const MEMBERS_READ: Permission = Permission::ORGANIZATION_MEMBERS_READ;
const MEMBERS_INVITE: Permission = Permission::ORGANIZATION_MEMBERS_INVITE;

mod accept;
mod api;
mod create;

impl Core {
    async fn invitation(&self, organization_id: &str, id: &str) -> Result<Option<InvitationRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM rbac_invitations WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(self.store.db().pool())
        .await?)
    }

    /// A page of an organization's invitations after `after`, by id.
    async fn invitations(
        &self,
        organization_id: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<InvitationRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM rbac_invitations WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(organization_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.store.db().pool())
        .await?)
    }

    /// The invitation a token opens. The token (256 random bits) is what
    /// names the tenant here, so it is looked for in every tenant and the
    /// invitation's tree then joins the request's scope.
    async fn invitation_by_token(&self, token: &str) -> Result<Option<InvitationRow>> {
        let found: Option<InvitationRow> = tenancy::system(
            sqlx::query_as(concat!(
                "SELECT ",
                invitation_columns!(),
                " FROM rbac_invitations WHERE token_hash = $1"
            ))
            .bind(hash_token(token))
            .fetch_optional(self.store.db().pool()),
        )
        .await?;
        if let Some(invitation) = &found {
            self.enter_tenant_of(&invitation.organization_id);
        }
        Ok(found)
    }

    async fn send_invitation(&self, invitation: &InvitationRow, token: &str) {
        // The link opens the console's page that shows what the invitation
        // gives (LookupInvitation) and accepts it, signed in or by signing
        // up; the token stays out of the path.
        let link = format!(
            "{}/invitations/accept?token={token}",
            self.options.mailer.link_base_url.trim_end_matches('/')
        );
        let inviter = match invitation.inviter_name.as_str() {
            "" => "Someone".to_string(),
            name => name.to_string(),
        };
        let mail = Mail {
            to: invitation.email.clone(),
            kind: "invitation",
            subject: format!("{inviter} invited you to {}", invitation.organization_name),
            body: format!(
                "{inviter} invited you to join {} on Tenantry.\n\nAccept the invitation:\n{link}\n\ntoken: {token}\n\nIt expires on {}. If you did not expect it, ignore this message.\n",
                invitation.organization_name,
                chrono::DateTime::from_timestamp_micros(invitation.expires_at_us)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            ),
        };
        if let Err(error) = self.mailer.send(mail).await {
            tracing::warn!(error = %error, invitation_id = %invitation.id, "invitation email was not sent");
        }
    }

    /// Invitations are read by whoever may read the members, or invite
    /// them (an inviter sees what they sent).
    async fn authorize_invitation_read(
        &self,
        caller: &Caller,
        organization_id: &str,
        kind: &str,
    ) -> Result<()> {
        if self.allows(caller, "organization", organization_id, MEMBERS_INVITE)? {
            return Ok(());
        }
        self.authorize(
            caller,
            ("organization", organization_id),
            MEMBERS_READ,
            MEMBERS_READ,
            kind,
        )
        .await
    }

    /// An invitation of an organization the caller may act on with
    /// `permission`.
    async fn managed_invitation(
        &self,
        caller: &Caller,
        name: &str,
        permission: Permission,
    ) -> Result<InvitationRow> {
        let InvitationName {
            organization: organization_id,
            id,
        } = InvitationName::parse("name", name)?;
        if permission == MEMBERS_READ {
            self.authorize_invitation_read(caller, &organization_id, "invitation")
                .await?;
        } else {
            self.authorize(
                caller,
                ("organization", &organization_id),
                permission,
                MEMBERS_READ,
                "invitation",
            )
            .await?;
        }
        self.invitation(&organization_id, &id)
            .await?
            .ok_or_else(|| Error::not_found("invitation").with_domain(NAME))
    }

    /// A pending invitation the caller may invite with, at the etag they
    /// sent, to be `action` (`resent`, `revoked`); and the time it was
    /// found pending.
    async fn pending_invitation(
        &self,
        caller: &Caller,
        name: &str,
        given_etag: &str,
        action: &'static str,
    ) -> Result<(InvitationRow, i64)> {
        let current = self
            .managed_invitation(caller, name, MEMBERS_INVITE)
            .await?;
        check_etag(given_etag, current.version)?;
        let now = now_micros();
        if current.effective_state(now) != pb::invitation::State::Pending {
            return Err(Refusal::InvitationNotPending { action }.into());
        }
        Ok((current, now))
    }
}

/// FAILED_PRECONDITION `EMAIL_DOMAIN_NOT_ALLOWED` unless `email` is in one
/// of the organization's allowed domains (none listed: every domain).
pub(crate) fn email_domain_allowed(allowed: &[String], email: &str) -> Result<()> {
    let domain = email.rsplit('@').next().unwrap_or_default();
    if allowed.is_empty() || allowed.iter().any(|d| d == domain) {
        return Ok(());
    }
    Err(Refusal::EmailDomainNotAllowed {
        domain: domain.to_string(),
    }
    .into())
}
