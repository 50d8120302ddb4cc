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

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Code, Error, Result, db_error};
use tenantry_kit::id::{new_id, parse_name};
use tenantry_kit::page_token::page_size;
use tenantry_kit::permission::Permission;
use tenantry_kit::secret::{hash_token, new_token};
use tenantry_kit::tenancy;
use tenantry_mail::Mail;
use tenantry_proto::tenantry::authz::v1 as authz_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::rbac::v1 as pb;
use tonic::{Request, Response, Status};

use crate::engine::{AccessLevel, Change, GrantSubject};
use crate::live::token;
use crate::memberships::{check_etag, etag};
use crate::store::{GrantRow, MembershipRow, TeamMemberRow, Tx};
use crate::{Caller, Core, NAME, precondition, timestamp};

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
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationRow {
    pub id: String,
    pub organization_id: String,
    pub organization_name: String,
    pub email: String,
    pub roles: Vec<String>,
    /// (team id, lead?)
    pub teams: Vec<(String, bool)>,
    /// (project id, access level) granted on acceptance.
    pub projects: Vec<(String, AccessLevel)>,
    /// Whether the invitee joins as an external user (grants only).
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

const COLUMNS: &str = "id, organization_id, organization_name, email, roles, teams, state, token_hash, \
    inviter_id, expires_at_us, lifetime_us, send_count, last_sent_at_us, accepted_by, closed_at_us, \
    created_at_us, updated_at_us, version, inviter_name, projects, external";

fn from_row(row: &AnyRow) -> std::result::Result<InvitationRow, sqlx::Error> {
    let json = |i: usize| -> std::result::Result<String, sqlx::Error> { row.try_get(i) };
    let decode = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    Ok(InvitationRow {
        id: row.try_get(0)?,
        organization_id: row.try_get(1)?,
        organization_name: row.try_get(2)?,
        email: row.try_get(3)?,
        roles: serde_json::from_str(&json(4)?).map_err(decode)?,
        teams: serde_json::from_str(&json(5)?).map_err(decode)?,
        state: row.try_get(6)?,
        token_hash: row.try_get(7)?,
        inviter_id: row.try_get(8)?,
        expires_at_us: row.try_get(9)?,
        lifetime_us: row.try_get(10)?,
        send_count: row.try_get(11)?,
        last_sent_at_us: row.try_get(12)?,
        accepted_by: row.try_get(13)?,
        closed_at_us: row.try_get(14)?,
        created_at_us: row.try_get(15)?,
        updated_at_us: row.try_get(16)?,
        version: row.try_get(17)?,
        inviter_name: row.try_get(18)?,
        projects: serde_json::from_str(&json(19)?).map_err(decode)?,
        external: row.try_get::<i64, _>(20)? != 0,
    })
}

impl InvitationRow {
    fn effective_state(&self, now_us: i64) -> pb::invitation::State {
        match self.state.as_str() {
            "pending" if self.expires_at_us <= now_us => pb::invitation::State::Expired,
            "pending" => pb::invitation::State::Pending,
            "accepted" => pb::invitation::State::Accepted,
            "revoked" => pb::invitation::State::Revoked,
            _ => pb::invitation::State::Expired,
        }
    }

    fn to_proto(&self, now_us: i64) -> pb::Invitation {
        pb::Invitation {
            name: format!(
                "organizations/{}/invitations/{}",
                self.organization_id, self.id
            ),
            email: self.email.clone(),
            roles: self.roles.clone(),
            teams: self
                .teams
                .iter()
                .map(|(team, lead)| pb::InvitationTeam {
                    team: format!("organizations/{}/teams/{team}", self.organization_id),
                    role: if *lead {
                        authz_pb::TeamRole::Lead
                    } else {
                        authz_pb::TeamRole::Member
                    } as i32,
                })
                .collect(),
            projects: self
                .projects
                .iter()
                .map(|(project, level)| pb::InvitationProject {
                    project: format!("organizations/{}/projects/{project}", self.organization_id),
                    access_level: crate::grants::level_to(*level) as i32,
                })
                .collect(),
            external: self.external,
            state: self.effective_state(now_us) as i32,
            inviter: format!("users/{}", self.inviter_id),
            inviter_display_name: self.inviter_name.clone(),
            expire_time: Some(timestamp(self.expires_at_us)),
            send_count: self.send_count as i32,
            last_send_time: Some(timestamp(self.last_sent_at_us)),
            accepted_by: self
                .accepted_by
                .as_ref()
                .map(|u| format!("users/{u}"))
                .unwrap_or_default(),
            close_time: self.closed_at_us.map(timestamp),
            create_time: Some(timestamp(self.created_at_us)),
            update_time: Some(timestamp(self.updated_at_us)),
            etag: etag(self.version),
        }
    }
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
    .bind(serde_json::to_string(&i.roles).expect("serializes"))
    .bind(serde_json::to_string(&i.teams).expect("serializes"))
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
    .bind(serde_json::to_string(&i.projects).expect("serializes"))
    .bind(i.external as i64)
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

fn ids(field: &str, name: &str) -> Result<(String, String)> {
    let ids = parse_name(field, "organizations/{}/invitations/{}", name)?;
    Ok((ids[0].to_string(), ids[1].to_string()))
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

fn invalid_token() -> Error {
    Error::new(
        Code::NotFound,
        "INVITATION_NOT_FOUND",
        "no pending invitation has this token",
    )
    .with_domain(NAME)
}

#[derive(Serialize, Deserialize)]
struct After(String);

const MEMBERS_READ: Permission = Permission::ORGANIZATION_MEMBERS_READ;
const MEMBERS_INVITE: Permission = Permission::ORGANIZATION_MEMBERS_INVITE;

impl Core {
    async fn invitation(&self, organization_id: &str, id: &str) -> Result<Option<InvitationRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rbac_invitations WHERE organization_id = $1 AND id = $2"
        )))
        .bind(organization_id)
        .bind(id)
        .try_map(|row: AnyRow| from_row(&row))
        .fetch_optional(self.store.db().pool())
        .await
        .map_err(db_error)
    }

    /// The invitation a token opens. The token (256 random bits) is what
    /// names the tenant here, so it is looked for in every tenant and the
    /// invitation's tree then joins the request's scope.
    async fn invitation_by_token(&self, token: &str) -> Result<Option<InvitationRow>> {
        let found = tenancy::system(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM rbac_invitations WHERE token_hash = $1"
            )))
            .bind(hash_token(token))
            .try_map(|row: AnyRow| from_row(&row))
            .fetch_optional(self.store.db().pool()),
        )
        .await
        .map_err(db_error)?;
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

    async fn create_invitation(
        &self,
        caller: &Caller,
        r: pb::CreateInvitationRequest,
    ) -> Result<InvitationRow> {
        let organization_id = parse_name("parent", "organizations/{}", &r.parent)?[0].to_string();
        let input = r
            .invitation
            .ok_or_else(|| Error::invalid_field("invitation", "is required"))?;
        self.authorize(
            caller,
            ("organization", &organization_id),
            Permission::ORGANIZATION_MEMBERS_INVITE,
            Permission::ORGANIZATION_READ,
            "organization",
        )
        .await?;
        let inviter = caller.principal.id.clone();
        if let Some(id) = self
            .store
            .replayed(&inviter, "CreateInvitation", &r.request_id)
            .await?
            && let Some(existing) = self.invitation(&organization_id, &id).await?
        {
            return Ok(existing);
        }
        let email = normalize_email(&input.email)?;
        let roles = if input.external {
            // An external user holds grants, never roles or teams.
            if !input.roles.is_empty() || !input.teams.is_empty() {
                return Err(Error::invalid_field(
                    "invitation.external",
                    "an external invitation gives projects only, no roles or teams",
                ));
            }
            if input.projects.is_empty() {
                return Err(Error::invalid_field(
                    "invitation.projects",
                    "an external invitation needs at least one project",
                ));
            }
            Vec::new()
        } else if input.roles.is_empty() {
            vec!["roles/member".to_string()]
        } else {
            input.roles.clone()
        };
        if !input.external {
            self.valid_roles(&organization_id, &roles, "invitation.roles")
                .await?;
        }
        let mut projects = Vec::new();
        for (i, project) in input.projects.iter().enumerate() {
            let field = format!("invitation.projects[{i}].project");
            let project_ids = parse_name(&field, "organizations/{}/projects/{}", &project.project)?;
            let project_id = project_ids[1].to_string();
            if project_ids[0].to_string() != organization_id
                || !self
                    .index
                    .read()
                    .within("project", &project_id, &organization_id)
            {
                return Err(Error::invalid_field(
                    field,
                    "must be a project of the organization",
                ));
            }
            let level = crate::grants::level_from(project.access_level()).map_err(|_| {
                Error::invalid_field(
                    format!("invitation.projects[{i}].access_level"),
                    "must be VIEWER, CONTRIBUTOR or ADMIN",
                )
            })?;
            if projects.iter().any(|(p, _)| *p == project_id) {
                return Err(Error::invalid_field(field, "is given twice"));
            }
            projects.push((project_id, level));
        }
        let mut teams = Vec::new();
        for (i, team) in input.teams.iter().enumerate() {
            let team_ids = parse_name(
                &format!("invitation.teams[{i}].team"),
                "organizations/{}/teams/{}",
                &team.team,
            )?;
            let team_id = team_ids[1].to_string();
            if team_ids[0].to_string() != organization_id
                || !self.index.read().within("team", &team_id, &organization_id)
            {
                return Err(Error::invalid_field(
                    format!("invitation.teams[{i}].team"),
                    "must be a team of the organization",
                ));
            }
            teams.push((team_id, team.role() == authz_pb::TeamRole::Lead));
        }
        let lifetime_secs = match &r.expire_after {
            None => DEFAULT_LIFETIME_SECS,
            Some(d) if d.seconds >= MIN_LIFETIME_SECS && d.seconds <= MAX_LIFETIME_SECS => {
                d.seconds
            }
            Some(_) => {
                return Err(Error::invalid_field(
                    "expire_after",
                    "must be from one hour to 30 days",
                ));
            }
        };
        let organization = self
            .peers
            .organization(caller, &organization_id)
            .await?
            .ok_or_else(|| Error::not_found("organization").with_domain(NAME))?;
        email_domain_allowed(&organization.allowed_email_domains, &email)?;
        // Members change roles through their membership, not an invitation.
        if self
            .store
            .member_with_email(&organization_id, &email)
            .await?
        {
            return Err(Error::new(
                Code::AlreadyExists,
                "ALREADY_A_MEMBER",
                "this email belongs to a member of the organization",
            )
            .with_domain(NAME));
        }
        let id = new_id().to_string();
        // A pending member takes a seat; an external user never does.
        if !input.external
            && let Err(error) = self
                .peers
                .ensure_seat(caller, &organization_id, &format!("invitation:{id}"))
                .await
        {
            self.record_denied(
                caller,
                &organization_id,
                Permission::ORGANIZATION_MEMBERS_INVITE,
                &error,
            )
            .await;
            return Err(error);
        }
        let inviter_name = self.peers.display_name(caller).await?;
        let now = now_micros();
        let token = new_token();
        let row = InvitationRow {
            id,
            organization_id: organization_id.clone(),
            organization_name: organization.display_name,
            email: email.clone(),
            roles,
            teams,
            projects,
            external: input.external,
            state: "pending".into(),
            token_hash: hash_token(&token),
            inviter_id: inviter.clone(),
            inviter_name,
            expires_at_us: now + lifetime_secs * 1_000_000,
            lifetime_us: lifetime_secs * 1_000_000,
            send_count: 1,
            last_sent_at_us: now,
            accepted_by: None,
            closed_at_us: None,
            created_at_us: now,
            updated_at_us: now,
            version: 1,
        };
        let mut tx = self.store.begin().await?;
        // A pending invitation that expired gives its place to the new one.
        sqlx::query(
            "UPDATE rbac_invitations SET state = 'expired', closed_at_us = $3, version = version + 1
             WHERE organization_id = $1 AND email = $2 AND state = 'pending' AND expires_at_us <= $3",
        )
        .bind(&organization_id)
        .bind(&email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert(&mut tx, &row).await.map_err(|e| {
            if e.code() == Code::AlreadyExists {
                Error::new(
                    Code::AlreadyExists,
                    "INVITATION_PENDING",
                    "this email already has a pending invitation to the organization",
                )
                .with_domain(NAME)
            } else {
                e
            }
        })?;
        self.store
            .remember(
                &mut tx,
                &inviter,
                "CreateInvitation",
                &r.request_id,
                &row.id,
            )
            .await?;
        let event = self
            .event(
                caller,
                ("invitation", &row.id),
                &organization_id,
                &events::InvitationCreated {
                    invitation_id: row.id.clone(),
                    organization_id: organization_id.clone(),
                    email: email.clone(),
                    roles: row
                        .roles
                        .iter()
                        .map(|r| events::Role {
                            role_id: r.rsplit('/').next().unwrap_or(r).into(),
                            name: r.clone(),
                        })
                        .collect(),
                    team_ids: row.teams.iter().map(|(t, _)| t.clone()).collect(),
                    invited_by: inviter,
                    expire_time: Some(timestamp(row.expires_at_us)),
                    external: row.external,
                    project_ids: row.projects.iter().map(|(p, _)| p.clone()).collect(),
                },
            )
            .await;
        self.write(tx, &[], vec![event]).await?;
        self.send_invitation(&row, &token).await;
        Ok(row)
    }

    async fn accept_invitation(&self, caller: &Caller, token_text: &str) -> Result<Accepted> {
        let Some(user_id) = caller.user().map(str::to_string) else {
            return Err(Error::permission_denied("invitation.accept").with_domain(NAME));
        };
        if token_text.is_empty() {
            return Err(Error::invalid_field("token", "is required"));
        }
        let now = now_micros();
        let invitation = self
            .invitation_by_token(token_text)
            .await?
            .filter(|i| i.effective_state(now) == pb::invitation::State::Pending)
            .ok_or_else(invalid_token)?;
        let email = self.peers.verified_email(caller).await?;
        if email.as_deref() != Some(invitation.email.as_str()) {
            return Err(Error::new(
                Code::PermissionDenied,
                "EMAIL_MISMATCH",
                "the invitation is for another email address, or yours is not verified yet",
            )
            .with_domain(NAME));
        }
        let organization_id = invitation.organization_id.clone();
        let mut tx = self.store.begin().await?;
        let mut accepted = invitation.clone();
        accepted.state = "accepted".into();
        accepted.accepted_by = Some(user_id.clone());
        accepted.closed_at_us = Some(now);
        accepted.updated_at_us = now;
        accepted.version += 1;
        if !update(&mut tx, &accepted, invitation.version).await? {
            return Err(invalid_token());
        }
        let membership_id = format!("{organization_id}/{user_id}");
        let mut changes = Vec::new();
        let mut events_out = vec![
            self.event(
                caller,
                ("invitation", &invitation.id),
                &organization_id,
                &events::InvitationAccepted {
                    invitation_id: invitation.id.clone(),
                    organization_id: organization_id.clone(),
                    user_id: user_id.clone(),
                    membership_id: if invitation.external {
                        String::new()
                    } else {
                        membership_id.clone()
                    },
                    via_sign_up: false,
                },
            )
            .await,
        ];
        let membership = if invitation.external {
            None
        } else {
            Some(
                self.join(
                    &mut tx,
                    caller,
                    &invitation,
                    &user_id,
                    (&mut changes, &mut events_out),
                )
                .await?,
            )
        };
        let granted = self
            .grant_invited(
                &mut tx,
                caller,
                &invitation,
                &user_id,
                (&mut changes, &mut events_out),
            )
            .await?;
        let revision = self.write(tx, &changes, events_out).await?;
        Ok(Accepted {
            membership,
            granted,
            revision,
        })
    }

    /// Makes the invitee a member with the invited roles and teams (adding
    /// the roles when they are one already).
    async fn join(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        invitation: &InvitationRow,
        user_id: &str,
        (changes, events_out): (&mut Vec<Change>, &mut Vec<tenantry_kit::outbox::NewEvent>),
    ) -> Result<MembershipRow> {
        let organization_id = invitation.organization_id.clone();
        let now = now_micros();
        let membership = match self
            .store
            .membership_in(tx, &organization_id, user_id)
            .await?
        {
            // Already a member: the invited roles are added.
            Some(mut existing) => {
                for role in &invitation.roles {
                    if !existing.roles.contains(role) {
                        existing.roles.push(role.clone());
                    }
                }
                existing.updated_at_us = now;
                existing.version += 1;
                existing
            }
            None => MembershipRow {
                organization_id: organization_id.clone(),
                user_id: user_id.to_string(),
                roles: invitation.roles.clone(),
                invitation_id: Some(invitation.id.clone()),
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            },
        };
        self.store.upsert_membership(tx, &membership).await?;
        changes.push(Change::Membership {
            organization: organization_id.clone(),
            user: user_id.to_string(),
            roles: membership.roles.clone(),
        });
        for (team, lead) in &invitation.teams {
            // A team deleted since the invitation is skipped.
            if !self.index.read().within("team", team, &organization_id) {
                continue;
            }
            self.store
                .upsert_team_member(
                    tx,
                    &TeamMemberRow {
                        team_id: team.clone(),
                        organization_id: organization_id.clone(),
                        user_id: user_id.to_string(),
                        lead: *lead,
                        created_at_us: now,
                        updated_at_us: now,
                        version: 1,
                    },
                )
                .await?;
            changes.push(Change::TeamMember {
                team: team.clone(),
                user: user_id.to_string(),
                lead: Some(*lead),
            });
        }
        let membership_id = format!("{organization_id}/{user_id}");
        if membership.version == 1 {
            events_out.push(
                self.event(
                    caller,
                    ("membership", &membership_id),
                    &organization_id,
                    &events::MembershipCreated {
                        membership_id: membership_id.clone(),
                        organization_id: organization_id.clone(),
                        user_id: user_id.to_string(),
                        user_display_name: String::new(),
                        roles: membership
                            .roles
                            .iter()
                            .map(|r| events::Role {
                                role_id: r.rsplit('/').next().unwrap_or(r).into(),
                                name: r.clone(),
                            })
                            .collect(),
                        invitation_id: invitation.id.clone(),
                    },
                )
                .await,
            );
        }
        Ok(membership)
    }

    /// Grants the invitee the invited projects still there, as an external
    /// user when they are not a member. A grant they hold already stays as
    /// it is. Returns the projects granted.
    async fn grant_invited(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        invitation: &InvitationRow,
        user_id: &str,
        (changes, events_out): (&mut Vec<Change>, &mut Vec<tenantry_kit::outbox::NewEvent>),
    ) -> Result<Vec<String>> {
        let organization_id = &invitation.organization_id;
        let subject = GrantSubject::User(user_id.to_string());
        let held: Vec<String> = self
            .store
            .grants_to(tx, &subject)
            .await?
            .into_iter()
            .map(|g| g.project_id)
            .collect();
        // External unless a member (already, or by this very acceptance).
        let external = self
            .store
            .membership_in(tx, organization_id, user_id)
            .await?
            .is_none();
        let now = now_micros();
        let mut granted = Vec::new();
        for (project, level) in &invitation.projects {
            // A project deleted since the invitation is skipped.
            if held.contains(project)
                || !self
                    .index
                    .read()
                    .within("project", project, organization_id)
            {
                continue;
            }
            let grant = GrantRow {
                id: new_id().to_string(),
                organization_id: organization_id.clone(),
                project_id: project.clone(),
                subject: subject.clone(),
                level: *level,
                created_at_us: now,
                updated_at_us: now,
                version: 1,
            };
            self.store.insert_grant(tx, &grant).await?;
            changes.push(Change::ProjectGrant {
                project: project.clone(),
                subject: subject.clone(),
                level: Some(*level),
            });
            events_out.push(
                self.event(
                    caller,
                    ("project", project),
                    organization_id,
                    &events::ProjectAccessGranted {
                        grant_id: grant.id.clone(),
                        project_id: project.clone(),
                        organization_id: organization_id.clone(),
                        subject: Some(crate::grants::event_subject(&subject)),
                        access_level: crate::grants::level_to(*level) as i32,
                        external,
                    },
                )
                .await,
            );
            granted.push(format!(
                "organizations/{organization_id}/projects/{project}"
            ));
        }
        Ok(granted)
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
        let (organization_id, id) = ids("name", name)?;
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
}

#[tonic::async_trait]
impl pb::invitation_service_server::InvitationService for InvitationApi {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let row = self
            .0
            .create_invitation(&caller, request.into_inner())
            .await?;
        Ok(Response::new(pb::CreateInvitationResponse {
            invitation: Some(row.to_proto(now_micros())),
        }))
    }

    async fn get_invitation(
        &self,
        request: Request<pb::GetInvitationRequest>,
    ) -> Result<Response<pb::GetInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let row = self
            .0
            .managed_invitation(
                &caller,
                &request.get_ref().name,
                Permission::ORGANIZATION_MEMBERS_READ,
            )
            .await?;
        Ok(Response::new(pb::GetInvitationResponse {
            invitation: Some(row.to_proto(now_micros())),
        }))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let organization_id = parse_name("parent", "organizations/{}", &r.parent)?[0].to_string();
        self.0
            .authorize_invitation_read(&caller, &organization_id, "organization")
            .await?;
        let size = page_size(r.page_size, 50, 1000)? as usize;
        let query = format!("invitations|{organization_id}|{}", r.state);
        let mut after = self
            .0
            .page_tokens
            .decode::<After>(query.as_bytes(), &r.page_token)?
            .map(|a| a.0)
            .unwrap_or_default();
        let now = now_micros();
        let mut found = Vec::new();
        loop {
            let batch: Vec<InvitationRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM rbac_invitations WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT 500"
            )))
            .bind(&organization_id)
            .bind(&after)
            .try_map(|row: AnyRow| from_row(&row))
            .fetch_all(self.0.store.db().pool())
            .await
            .map_err(db_error)?;
            let exhausted = batch.len() < 500;
            for row in batch {
                after = row.id.clone();
                if r.state == 0 || row.effective_state(now) as i32 == r.state {
                    found.push(row);
                }
            }
            if exhausted || found.len() > size {
                break;
            }
        }
        let more = found.len() > size;
        found.truncate(size);
        let next_page_token = match (more, found.last()) {
            (true, Some(last)) => self
                .0
                .page_tokens
                .encode(query.as_bytes(), &After(last.id.clone())),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: found.iter().map(|i| i.to_proto(now)).collect(),
            next_page_token,
        }))
    }

    async fn resend_invitation(
        &self,
        request: Request<pb::ResendInvitationRequest>,
    ) -> Result<Response<pb::ResendInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let current = self
            .0
            .managed_invitation(&caller, &r.name, Permission::ORGANIZATION_MEMBERS_INVITE)
            .await?;
        check_etag(&r.etag, current.version)?;
        let now = now_micros();
        if current.effective_state(now) != pb::invitation::State::Pending {
            return Err(precondition(
                "INVITATION_NOT_PENDING",
                "only a pending invitation can be resent",
            )
            .into());
        }
        let interval = self.0.options.resend_interval_secs as i64 * 1_000_000;
        let wait = current.last_sent_at_us + interval - now;
        if wait > 0 || current.send_count >= i64::from(self.0.options.max_sends) {
            let mut error = Error::new(
                Code::ResourceExhausted,
                "RESEND_RATE_LIMITED",
                "the invitation was sent too recently or too often",
            )
            .with_domain(NAME)
            .with_metadata("max_sends", self.0.options.max_sends);
            if wait > 0 {
                error = error.with_retry_after(std::time::Duration::from_micros(wait as u64));
            }
            return Err(error.into());
        }
        let token = new_token();
        let mut next = current.clone();
        next.token_hash = hash_token(&token);
        next.expires_at_us = now + current.lifetime_us;
        next.send_count += 1;
        next.last_sent_at_us = now;
        next.updated_at_us = now;
        next.version += 1;
        let mut tx = self.0.store.begin().await?;
        if !update(&mut tx, &next, current.version).await? {
            return Err(Error::new(
                Code::Aborted,
                "CONCURRENT_UPDATE",
                "the invitation changed; retry",
            )
            .with_domain(NAME)
            .into());
        }
        let event = self
            .0
            .event(
                &caller,
                ("invitation", &next.id),
                &next.organization_id,
                &events::InvitationResent {
                    invitation_id: next.id.clone(),
                    organization_id: next.organization_id.clone(),
                    email: next.email.clone(),
                    expire_time: Some(timestamp(next.expires_at_us)),
                },
            )
            .await;
        self.0.write(tx, &[], vec![event]).await?;
        self.0.send_invitation(&next, &token).await;
        Ok(Response::new(pb::ResendInvitationResponse {
            invitation: Some(next.to_proto(now)),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let r = request.get_ref();
        let current = self
            .0
            .managed_invitation(&caller, &r.name, Permission::ORGANIZATION_MEMBERS_INVITE)
            .await?;
        check_etag(&r.etag, current.version)?;
        let now = now_micros();
        if current.effective_state(now) != pb::invitation::State::Pending {
            return Err(precondition(
                "INVITATION_NOT_PENDING",
                "only a pending invitation can be revoked",
            )
            .into());
        }
        let mut next = current.clone();
        next.state = "revoked".into();
        next.closed_at_us = Some(now);
        next.updated_at_us = now;
        next.version += 1;
        let mut tx = self.0.store.begin().await?;
        if !update(&mut tx, &next, current.version).await? {
            return Err(Error::new(
                Code::Aborted,
                "CONCURRENT_UPDATE",
                "the invitation changed; retry",
            )
            .with_domain(NAME)
            .into());
        }
        let event = self
            .0
            .event(
                &caller,
                ("invitation", &next.id),
                &next.organization_id,
                &events::InvitationRevoked {
                    invitation_id: next.id.clone(),
                    organization_id: next.organization_id.clone(),
                    email: next.email.clone(),
                },
            )
            .await;
        self.0.write(tx, &[], vec![event]).await?;
        Ok(Response::new(pb::RevokeInvitationResponse {
            invitation: Some(next.to_proto(now)),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let accepted = self
            .0
            .accept_invitation(&caller, &request.get_ref().token)
            .await?;
        let membership = match &accepted.membership {
            Some(row) => Some(self.0.membership_to_proto(row).await?),
            None => None,
        };
        Ok(Response::new(pb::AcceptInvitationResponse {
            membership,
            granted_projects: accepted.granted,
            written_at: Some(token(accepted.revision)),
        }))
    }

    async fn lookup_invitation(
        &self,
        request: Request<pb::LookupInvitationRequest>,
    ) -> Result<Response<pb::LookupInvitationResponse>, Status> {
        // Public: whoever holds the token may see what it is for (the token
        // is the secret, 256 random bits; the edge limits guesses per client
        // address), so that a sign-up page can greet the invitee.
        let now = now_micros();
        let invitation = self
            .0
            .invitation_by_token(&request.get_ref().token)
            .await?
            .filter(|i| i.effective_state(now) == pb::invitation::State::Pending)
            .ok_or_else(invalid_token)?;
        Ok(Response::new(pb::LookupInvitationResponse {
            preview: Some(pb::InvitationPreview {
                organization: format!("organizations/{}", invitation.organization_id),
                organization_display_name: invitation.organization_name.clone(),
                email: invitation.email.clone(),
                inviter_display_name: invitation.inviter_name.clone(),
                expire_time: Some(timestamp(invitation.expires_at_us)),
                roles: invitation.roles.clone(),
                external: invitation.external,
                projects: invitation
                    .projects
                    .iter()
                    .map(|(project, _)| {
                        format!(
                            "organizations/{}/projects/{project}",
                            invitation.organization_id
                        )
                    })
                    .collect(),
            }),
        }))
    }
}

/// FAILED_PRECONDITION `EMAIL_DOMAIN_NOT_ALLOWED` unless `email` is in one
/// of the organization's allowed domains (none listed: every domain).
pub(crate) fn email_domain_allowed(allowed: &[String], email: &str) -> Result<()> {
    let domain = email.rsplit('@').next().unwrap_or_default();
    if allowed.is_empty() || allowed.iter().any(|d| d == domain) {
        return Ok(());
    }
    Err(precondition(
        "EMAIL_DOMAIN_NOT_ALLOWED",
        "the organization does not allow members from this email domain",
    )
    .with_metadata("domain", domain))
}
