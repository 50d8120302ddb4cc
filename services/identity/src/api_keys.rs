//! API keys: long-lived credentials of an organization (optionally one
//! team) carrying a subset of their creator's permissions.
//!
//! The secret is shown once at creation, formatted `tnt_<id>_<secret><crc>`
//! so secret scanners recognize leaked keys and a typo fails offline, and is
//! stored only as a hash. `AuthenticateApiKey` exchanges a key for a
//! short-lived access token; a verified key is cached for a minute, so a hot
//! key costs no database read. A key stops working when it is revoked or
//! expires, and when its creator leaves its organization (or team).

use std::sync::Arc;
use std::time::Duration;
use tenantry_kit::permission::Permission;
use tenantry_kit::tenancy;

use tenantry_kit::auth::{Claims, Principal, PrincipalKind};
use tenantry_kit::cache::Cache;
use tenantry_kit::db::now_micros;
use tenantry_kit::error::{Error, Result};
use tenantry_kit::id::new_id;
use tenantry_kit::names::{ApiKeyName, OrganizationName, ProjectName, TeamName};
use tenantry_kit::outbox::NewEvent;
use tenantry_kit::page_token::{PageTokens, page_size};
use tenantry_kit::write::Write;
use tenantry_proto::tenantry::billing::v1 as billing_pb;
use tenantry_proto::tenantry::events::v1 as events;
use tenantry_proto::tenantry::identity::v1 as pb;
use tonic::{Request, Response, Status};

use crate::accounts::{Accounts, ClientInfo, timestamp, user_actor};
use crate::api::{client_info, principal};
use crate::convert::{key_to_proto, team_name};
use crate::directory::Holds;
use crate::error::Error as Refusal;
use crate::secrets::{
    hash_api_key_secret, hash_token, invalid_api_key, new_api_key, parse_api_key, tokens_equal,
};
use crate::store::ApiKeyRow;

/// The permission that lets a member create and manage API keys.
const MANAGE_PERMISSION: Permission = Permission::ORGANIZATION_API_KEYS_CREATE;
/// What a member of the organization may do: read it.
const READ_PERMISSION: Permission = Permission::ORGANIZATION_READ;
/// How long a verified key is trusted without a database read.
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Most exchanged keys remembered.
const CACHE_CAPACITY: u64 = 100_000;
/// Lifetime of the access tokens keys are exchanged for.
const TOKEN_TTL: Duration = Duration::from_secs(900);
/// Most permissions one key may carry.
const MAX_PERMISSIONS: usize = 64;

/// An exchanged key, as cached.
#[derive(Debug, Clone)]
struct Exchanged {
    token: String,
    token_expires_at_us: i64,
    key: ApiKeyRow,
}

/// The `ApiKeyService` handler and its cache.
#[derive(Debug, Clone)]
pub struct ApiKeyApi {
    pub accounts: Accounts,
    pub page_tokens: PageTokens,
    cache: Arc<Cache<String, Exchanged>>,
}

/// Where a key may act: its organization, one team of it, or one project.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Organization,
    Team(String),
    Project(String),
}

impl Scope {
    /// The scope a request asks for; the team or project must be named
    /// under the parent organization.
    fn parse(organization: &str, spec: &pb::ApiKey) -> Result<Scope> {
        let (field, parent, id, scope): (_, _, _, fn(String) -> Scope) =
            match (spec.team.is_empty(), spec.project.is_empty()) {
                (true, true) => return Ok(Scope::Organization),
                (false, true) => {
                    let team = TeamName::parse("api_key.team", &spec.team)?;
                    ("api_key.team", team.organization, team.id, Scope::Team)
                }
                (true, false) => {
                    let project = ProjectName::parse("api_key.project", &spec.project)?;
                    (
                        "api_key.project",
                        project.organization,
                        project.id,
                        Scope::Project,
                    )
                }
                (false, false) => {
                    return Err(Error::invalid_field(
                        "api_key.project",
                        "give a team or a project, not both",
                    ));
                }
            };
        if parent != organization {
            return Err(Error::invalid_field(
                field,
                "must belong to the parent organization",
            ));
        }
        Ok(scope(id))
    }

    /// The object the scope is, as (type, id).
    fn object<'a>(&'a self, organization: &'a str) -> (&'static str, &'a str) {
        match self {
            Scope::Organization => ("organization", organization),
            Scope::Team(team) => ("team", team),
            Scope::Project(project) => ("project", project),
        }
    }
}

fn validate_permission(field: &str, permission: &str) -> Result<()> {
    let valid = !permission.is_empty()
        && permission.len() <= 128
        && permission.contains('.')
        && permission
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(
            Error::invalid_field(field, "must be a permission name like `project.read`")
                .with_domain("identity"),
        )
    }
}

impl ApiKeyApi {
    pub fn new(accounts: Accounts, page_tokens: PageTokens) -> Self {
        ApiKeyApi {
            accounts,
            page_tokens,
            cache: Arc::new(Cache::new("api_key_exchanges", CACHE_CAPACITY)),
        }
    }

    /// The caller must be a signed-in user allowed to manage the
    /// organization's keys. As everywhere: someone who may not even read the
    /// organization sees NOT_FOUND; a reader who may not do this,
    /// PERMISSION_DENIED.
    async fn manager(
        &self,
        caller: &Principal,
        organization_id: &str,
    ) -> Result<crate::store::UserRow> {
        let user = self.accounts.user_principal(caller).await?;
        let directory = &self.accounts.inner.directory;
        let check = |permission| {
            directory.check_permission(&user.id, "organization", organization_id, permission)
        };
        if check(MANAGE_PERMISSION).await? {
            // The organization's keys join the request's tenant scope (see
            // `tenantry_kit::tenancy`): on Postgres they are all it sees.
            tenancy::enter(organization_id);
            Ok(user)
        } else if check(READ_PERMISSION).await? {
            Err(Error::permission_denied(MANAGE_PERMISSION).with_domain("identity"))
        } else {
            Err(Error::not_found("organization").with_domain("identity"))
        }
    }

    /// Whether a permission of a type other than the scope's can lie
    /// inside the scope: it must not be a permission of the levels above or
    /// beside it (the organization for a team; the organization and teams
    /// for a project). An organization holds every other type.
    async fn below(
        &self,
        scope: &Scope,
        organization: &str,
        user: &str,
        permission: &str,
    ) -> Result<bool> {
        // Any id tells the type apart: the permission is checked against
        // the type before the object is looked up.
        let nil = uuid::Uuid::nil().to_string();
        let outside: &[(&str, &str)] = match scope {
            Scope::Organization => &[],
            Scope::Team(_) => &[("organization", organization)],
            Scope::Project(_) => &[("organization", organization), ("team", &nil)],
        };
        let directory = &self.accounts.inner.directory;
        for (object_type, id) in outside {
            if matches!(
                directory.holds(user, object_type, id, permission).await?,
                Holds::Yes | Holds::No
            ) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn forget(&self, key_id: &str) {
        let key_id = key_id.to_string();
        self.cache.remove_if(move |_, entry| entry.key.id == key_id);
    }

    /// The key with this public id. A presented key names its tenant, so it
    /// is looked for in every tenant, and its organization then joins the
    /// request's scope.
    async fn key_by_key_id(&self, key_id: &str) -> Result<Option<ApiKeyRow>> {
        let store = self.accounts.store();
        let key = tenancy::system(store.api_key_by_key_id(key_id)).await?;
        if let Some(key) = &key {
            tenancy::enter(&key.organization_id);
        }
        Ok(key)
    }

    /// Verifies a key from scratch: format, hash, then [`live`](Self::live).
    async fn verify(&self, secret: &str) -> Result<ApiKeyRow> {
        let parts = parse_api_key(secret)?;
        let key = self
            .key_by_key_id(&parts.id)
            .await?
            .ok_or_else(invalid_api_key)?;
        if !tokens_equal(&hash_api_key_secret(&parts.secret), &key.secret_hash) {
            return Err(invalid_api_key());
        }
        let key = self.live(key).await?;
        // Last use is recorded when the key is verified afresh: about once
        // a minute for a hot key (the cache's lifetime).
        self.accounts
            .store()
            .touch_api_key(&key.id, now_micros())
            .await?;
        Ok(key)
    }

    /// A key's state as it is now, read afresh on every exchange (a key
    /// revoked through another replica is refused here at once): not
    /// revoked, not expired, and its creator still in its organization
    /// (and team).
    async fn live(&self, key: ApiKeyRow) -> Result<ApiKeyRow> {
        let key = self
            .key_by_key_id(&key.key_id)
            .await?
            .filter(|fresh| fresh.id == key.id)
            .ok_or_else(invalid_api_key)?;
        let now = now_micros();
        if key.revoked_at_us.is_some() || key.expires_at_us.is_some_and(|e| e <= now) {
            return Err(invalid_api_key());
        }
        let directory = &self.accounts.inner.directory;
        let member = self
            .accounts
            .member_of(&key.created_by, &key.organization_id)
            .await?;
        let in_team = match &key.team_id {
            Some(team) if member => {
                directory
                    .is_team_member(&key.organization_id, team, &key.created_by)
                    .await?
            }
            _ => member,
        };
        if !in_team {
            tracing::info!(api_key = %key.id, "api key refused: its creator lost access");
            return Err(invalid_api_key());
        }
        Ok(key)
    }

    fn sign(&self, key: &ApiKeyRow) -> (String, i64) {
        let auth = &self.accounts.inner.auth;
        let now = now_micros();
        // A token never outlives its key.
        let until = (now + TOKEN_TTL.as_micros() as i64).min(key.expires_at_us.unwrap_or(i64::MAX));
        let exp = until / 1_000_000;
        let claims = Claims {
            iss: auth.issuer.clone(),
            aud: auth.audience.clone(),
            sub: key.id.clone(),
            sid: None,
            org: Some(key.organization_id.clone()),
            iat: now / 1_000_000,
            exp,
            nbf: None,
            jti: new_id().to_string(),
            amr: vec!["api_key".into()],
            kind: PrincipalKind::ApiKey,
            perms: Some(key.permissions.clone()),
            team: key.team_id.clone(),
            mfa_pending: false,
            name: Some(key.display_name.clone()),
        };
        (
            self.accounts.inner.keys.signing_key().sign(&claims),
            exp * 1_000_000,
        )
    }

    /// Exchanges a key for an access token. A recent exchange's token is
    /// handed out again (no new signature, no hash), but only once the key
    /// is found [`live`](Self::live) again: the cache saves work, never a
    /// revocation.
    pub async fn authenticate(&self, secret: &str) -> Result<(String, i64, ApiKeyRow)> {
        // The cache is keyed by the hash of the whole key, never the key.
        let cache_key = hash_token(secret);
        if let Some(hit) = self.cache.get(&cache_key)
            && hit.token_expires_at_us - now_micros() > (TOKEN_TTL.as_micros() as i64) / 2
        {
            metrics::counter!("tenantry_api_key_cache_total", "result" => "hit").increment(1);
            let key = match self.live(hit.key.clone()).await {
                Ok(key) => key,
                Err(error) => {
                    self.cache.remove(&cache_key);
                    return Err(error);
                }
            };
            return Ok((hit.token.clone(), hit.token_expires_at_us, key));
        }
        metrics::counter!("tenantry_api_key_cache_total", "result" => "miss").increment(1);
        let key = self.verify(secret).await?;
        let (token, expires) = self.sign(&key);
        self.cache.insert(
            cache_key,
            Exchanged {
                token: token.clone(),
                token_expires_at_us: expires,
                key: key.clone(),
            },
            CACHE_TTL,
        );
        Ok((token, expires, key))
    }

    /// Emits a key's event through the write, so the authorization index
    /// has it before the call returns (the key works, or stops, at once).
    async fn emit_key_event<M: tenantry_proto::EventType>(
        &self,
        tx: &mut Write,
        key: &ApiKeyRow,
        actor: events::Actor,
        client: &ClientInfo,
        payload: &M,
    ) -> Result<()> {
        let event = NewEvent::new("api_key", key.id.clone(), actor, payload)
            .in_organization(key.organization_id.clone(), String::new());
        self.accounts.append(tx, event, client).await
    }
}

#[tonic::async_trait]
impl pb::api_key_service_server::ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let request = request.into_inner();
        let organization = OrganizationName::parse("parent", &request.parent)?.id;
        let spec = request
            .api_key
            .ok_or_else(|| Error::invalid_field("api_key", "is required"))?;
        let display_name = spec.display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(Error::invalid_field(
                "api_key.display_name",
                "must be 1 to 200 characters",
            )
            .into());
        }
        if spec.permissions.is_empty() || spec.permissions.len() > MAX_PERMISSIONS {
            return Err(Error::invalid_field(
                "api_key.permissions",
                format!("give 1 to {MAX_PERMISSIONS} permissions"),
            )
            .into());
        }
        let scope = Scope::parse(&organization, &spec)?;
        for (index, permission) in spec.permissions.iter().enumerate() {
            let field = format!("api_key.permissions[{index}]");
            validate_permission(&field, permission)?;
        }
        let now = now_micros();
        let expires = spec
            .expire_time
            .map(|t| t.seconds.saturating_mul(1_000_000) + i64::from(t.nanos) / 1000);
        if expires.is_some_and(|e| e <= now) {
            return Err(
                Error::invalid_field("api_key.expire_time", "must be in the future").into(),
            );
        }
        if request.request_id.len() > 128 {
            return Err(
                Error::invalid_field("request_id", "must be at most 128 characters").into(),
            );
        }

        let creator = self.manager(&caller, &organization).await?;
        let directory = &self.accounts.inner.directory;
        // The creator must reach the scope: a team they belong to, a
        // project they can read (anything else is not found, as for any
        // other caller).
        match &scope {
            Scope::Organization => {}
            Scope::Team(team) => {
                if !directory
                    .is_team_member(&organization, team, &creator.id)
                    .await?
                {
                    return Err(Error::not_found("team").with_domain("identity").into());
                }
            }
            Scope::Project(project) => {
                if !directory
                    .check_permission(&creator.id, "project", project, Permission::PROJECT_READ)
                    .await?
                {
                    return Err(Error::not_found("project").with_domain("identity").into());
                }
            }
        }
        // A key carries at most what its creator holds on the scope itself;
        // permissions of the types below it are intersected, at each check,
        // with what the creator holds there at that moment.
        let (scope_type, scope_id) = scope.object(&organization);
        for (index, permission) in spec.permissions.iter().enumerate() {
            let field = format!("api_key.permissions[{index}]");
            match directory
                .holds(&creator.id, scope_type, scope_id, permission)
                .await?
            {
                Holds::Yes => {}
                Holds::No => {
                    return Err(Refusal::PermissionNotHeld { field }.into());
                }
                Holds::Unknown => {
                    return Err(Error::invalid_field(field, "is not a known permission")
                        .with_domain("identity")
                        .into());
                }
                Holds::OtherType => {
                    if !self
                        .below(&scope, &organization, &creator.id, permission)
                        .await?
                    {
                        return Err(Error::invalid_field(
                            field,
                            "is not a permission of a type inside the key's scope",
                        )
                        .with_domain("identity")
                        .into());
                    }
                }
            }
        }
        // The plan's API key limit, asked of billing.
        let key_row_id = new_id().to_string();
        directory
            .ensure_quota(&organization, billing_pb::Metric::ApiKeys, &key_row_id)
            .await?;
        // A replay of the same request returns the key, without its secret
        // (which is never stored).
        if !request.request_id.is_empty()
            && let Some(existing) = self
                .accounts
                .store()
                .api_key_by_request_id(&organization, &request.request_id)
                .await?
        {
            return Ok(Response::new(pb::CreateApiKeyResponse {
                api_key: Some(key_to_proto(&existing, now)),
                secret: String::new(),
            }));
        }

        let (parts, secret) = new_api_key();
        let key = ApiKeyRow {
            id: key_row_id,
            key_id: parts.id.clone(),
            organization_id: organization,
            team_id: match &scope {
                Scope::Team(team) => Some(team.clone()),
                _ => None,
            },
            project_id: match &scope {
                Scope::Project(project) => Some(project.clone()),
                _ => None,
            },
            display_name,
            permissions: spec.permissions,
            secret_hash: hash_api_key_secret(&parts.secret),
            created_by: creator.id.clone(),
            expires_at_us: expires,
            last_used_at_us: None,
            revoked_at_us: None,
            created_at_us: now,
            request_id: (!request.request_id.is_empty()).then_some(request.request_id),
        };
        let mut tx = self.accounts.begin().await?;
        self.accounts.store().insert_api_key(&mut tx, &key).await?;
        self.emit_key_event(
            &mut tx,
            &key,
            user_actor(&creator),
            &client,
            &events::ApiKeyCreated {
                api_key_id: key.id.clone(),
                organization_id: key.organization_id.clone(),
                team_id: key.team_id.clone().unwrap_or_default(),
                display_name: key.display_name.clone(),
                permissions: key.permissions.clone(),
                expire_time: key.expires_at_us.map(timestamp),
                created_by: key.created_by.clone(),
                project_id: key.project_id.clone().unwrap_or_default(),
            },
        )
        .await?;
        self.accounts.commit(tx).await?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(key_to_proto(&key, now)),
            secret,
        }))
    }

    async fn get_api_key(
        &self,
        request: Request<pb::GetApiKeyRequest>,
    ) -> Result<Response<pb::GetApiKeyResponse>, Status> {
        let caller = principal(&request)?;
        let ApiKeyName { organization, id } = ApiKeyName::parse("name", &request.get_ref().name)?;
        self.manager(&caller, &organization).await?;
        let key = self
            .accounts
            .store()
            .api_key(&organization, &id)
            .await?
            .ok_or_else(|| Error::not_found("api key"))?;
        Ok(Response::new(pb::GetApiKeyResponse {
            api_key: Some(key_to_proto(&key, now_micros())),
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let organization = OrganizationName::parse("parent", &request.parent)?.id;
        self.manager(&caller, &organization).await?;
        let size = page_size(request.page_size, 50, 1000)? as usize;
        let query = format!(
            "api_keys:{organization}:{}:{}",
            request.team, request.show_inactive
        );
        let after: String = self
            .page_tokens
            .decode(query.as_bytes(), &request.page_token)?
            .unwrap_or_default();
        let now = now_micros();
        let team = if request.team.is_empty() {
            None
        } else {
            Some(TeamName::parse("team", &request.team)?.id)
        };
        // Filters apply after the read; read ahead until a page is full.
        let mut keys = Vec::new();
        let mut cursor = after;
        loop {
            let batch = self
                .accounts
                .store()
                .api_keys(&organization, &cursor, 500)
                .await?;
            let exhausted = batch.len() < 500;
            for key in batch {
                cursor = key.id.clone();
                let active =
                    key.revoked_at_us.is_none() && key.expires_at_us.is_none_or(|e| e > now);
                if (request.show_inactive || active) && (team.is_none() || key.team_id == team) {
                    keys.push(key);
                }
            }
            if exhausted || keys.len() > size {
                break;
            }
        }
        let more = keys.len() > size;
        keys.truncate(size);
        let next_page_token = match (more, keys.last()) {
            (true, Some(last)) => self.page_tokens.encode(query.as_bytes(), &last.id),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(|k| key_to_proto(k, now)).collect(),
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let client = client_info(&request);
        let caller = principal(&request)?;
        let ApiKeyName { organization, id } = ApiKeyName::parse("name", &request.get_ref().name)?;
        let manager = self.manager(&caller, &organization).await?;
        let key = self
            .accounts
            .store()
            .api_key(&organization, &id)
            .await?
            .ok_or_else(|| Error::not_found("api key"))?;
        let now = now_micros();
        let mut tx = self.accounts.begin().await?;
        if self
            .accounts
            .store()
            .revoke_api_key(&mut tx, &key.id, now)
            .await?
        {
            self.emit_key_event(
                &mut tx,
                &key,
                user_actor(&manager),
                &client,
                &events::ApiKeyRevoked {
                    api_key_id: key.id.clone(),
                    organization_id: key.organization_id.clone(),
                    team_id: key.team_id.clone().unwrap_or_default(),
                    reason: events::api_key_revoked::Reason::Revoked as i32,
                },
            )
            .await?;
        }
        self.accounts.commit(tx).await?;
        // This replica forgets it at once; others within the cache TTL.
        self.forget(&key.id);
        let key = self
            .accounts
            .store()
            .api_key(&organization, &key.id)
            .await?
            .ok_or_else(|| Error::not_found("api key"))?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(key_to_proto(&key, now)),
        }))
    }

    async fn authenticate_api_key(
        &self,
        request: Request<pb::AuthenticateApiKeyRequest>,
    ) -> Result<Response<pb::AuthenticateApiKeyResponse>, Status> {
        let (access_token, expires, key) = self.authenticate(&request.into_inner().secret).await?;
        let remaining = (expires - now_micros()).max(0);
        Ok(Response::new(pb::AuthenticateApiKeyResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: Some(prost_types::Duration {
                seconds: remaining / 1_000_000,
                nanos: 0,
            }),
            expire_time: Some(timestamp(expires)),
            api_key: ApiKeyName::new(&key.organization_id, &key.id).to_string(),
            organization: OrganizationName::new(&key.organization_id).to_string(),
            team: team_name(&key),
            permissions: key.permissions,
        }))
    }
}
