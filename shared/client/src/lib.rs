//! A Rust client for Tenantry's services.
//!
//! The generated tonic clients (`tenantry-proto`) speak the contracts; this
//! crate adds what every caller would otherwise write around them:
//!
//! - **Credentials** ([`Credentials`]): a user's session (sign-in with
//!   [`Client::login`] / [`Client::verify_email`], refreshed before it
//!   expires and once more if the server refuses it), an API key or a
//!   service account's client credentials (exchanged at the identity
//!   service for short-lived tokens, as the gateway does), or a fixed token.
//! - **Session consistency** ([`consistency`]): the newest
//!   `x-tenantry-consistency-token` a response carried goes out with every
//!   later call, so a check right after a write sees the write, on any
//!   replica.
//! - **Retries** ([`retry`]): UNAVAILABLE is retried with exponential
//!   back-off for reads, and for writes only when nothing was done.
//! - **Pagination** ([`paginate`]): any `List…` as a `futures::Stream`.
//! - **Typed errors** ([`Error`]): code, message, and the `google.rpc`
//!   `ErrorInfo` reason and metadata, field violations and retry delay.
//!
//! Every service's client shares one connection:
//!
//! ```no_run
//! # async fn run() -> Result<(), tenantry_client::Error> {
//! use tenantry_client::{Client, Credentials, pb};
//! let client = Client::builder("http://127.0.0.1:50051")
//!     .credentials(Credentials::ApiKey(std::env::var("TENANTRY_API_KEY").unwrap()))
//!     .build()?;
//! let answer = client
//!     .authorization()
//!     .check_permission(pb::authz::v1::CheckPermissionRequest {
//!         resource: Some(pb::authz::v1::ObjectReference {
//!             object_type: "project".into(),
//!             object_id: "0190…".into(),
//!         }),
//!         permission: "project.read".into(),
//!         subject: Some(pb::authz::v1::SubjectReference {
//!             object: Some(pb::authz::v1::ObjectReference {
//!                 object_type: "user".into(),
//!                 object_id: "0190…".into(),
//!             }),
//!             optional_relation: String::new(),
//!         }),
//!         ..Default::default()
//!     })
//!     .await?
//!     .into_inner();
//! # Ok(()) }
//! ```

pub mod consistency;
mod credentials;
mod error;
mod paginate;
pub mod retry;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tenantry_proto::tenantry::{audit, authz, billing, bulk, identity, organization, rbac};

pub use consistency::ConsistencyToken;
pub use credentials::{Credentials, Session, SessionListener};
pub use error::{CLIENT_DOMAIN, CREDENTIALS_REJECTED, Error, FieldViolation, Result, UNREACHABLE};
pub use paginate::{PageRequest, paginate};
pub use retry::RetryPolicy;
pub use transport::Transport;

/// The generated messages and clients of every contract.
pub use tenantry_proto::tenantry as pb;

use credentials::Auth;

/// Builds a [`Client`].
pub struct ClientBuilder {
    endpoint: String,
    credentials: Credentials,
    retry: RetryPolicy,
    listener: Option<SessionListener>,
    consistency_token: Option<String>,
    connect_timeout: Duration,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl ClientBuilder {
    /// Calls as `credentials`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Retries as `policy` says (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Calls `listener` with the new tokens after each refresh of a session
    /// (refresh tokens are single-use: store the new one).
    pub fn on_session_refresh(
        mut self,
        listener: impl Fn(&Session) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Starts from a consistency token of an earlier session (another
    /// process's write that this client's reads must see).
    pub fn consistency_token(mut self, token: impl Into<String>) -> Self {
        self.consistency_token = Some(token.into());
        self
    }

    /// How long to wait for a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A deadline for each call until its response starts (default none;
    /// the server's own bounds apply).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The client. It connects on its first call, so an endpoint that is
    /// down shows up as that call's [`Error::is_unreachable`].
    pub fn build(self) -> Result<Client> {
        let bad = |why: String| Error::local(tonic::Code::InvalidArgument, "BAD_ENDPOINT", why);
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| bad(format!("{} is not a valid endpoint: {e}", self.endpoint)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some(timeout) = self.timeout {
            endpoint = endpoint.timeout(timeout);
        }
        if self.endpoint.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                .map_err(|e| bad(format!("cannot set up TLS: {e}")))?;
        }
        let channel = endpoint.connect_lazy();
        let consistency = ConsistencyToken::default();
        if let Some(token) = &self.consistency_token {
            consistency.observe(token);
        }
        let anonymous = Transport::new(
            channel.clone(),
            self.endpoint.clone(),
            None,
            consistency.clone(),
            self.retry.clone(),
        );
        let auth = Arc::new(Auth::new(
            anonymous.clone(),
            self.credentials,
            self.listener,
        ));
        let transport = Transport::new(
            channel,
            self.endpoint,
            Some(auth.clone()),
            consistency.clone(),
            self.retry,
        );
        Ok(Client {
            transport,
            anonymous,
            auth,
            consistency,
        })
    }
}

/// A connection to a Tenantry deployment (the gRPC port of the services, or
/// of the gateway), with the accessors of every service's client.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    anonymous: Transport,
    auth: Arc<Auth>,
    consistency: ConsistencyToken,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport)
            .finish()
    }
}

/// The outcome of [`Client::login`].
#[derive(Debug, Clone)]
pub enum Login {
    /// Signed in: the client now calls as this session.
    SignedIn(Box<identity::v1::AuthTokens>),
    /// The password was right and a second factor is needed: finish with
    /// [`Client::complete_mfa_login`].
    MfaRequired(identity::v1::MfaChallenge),
}

/// A second factor for [`Client::complete_mfa_login`].
#[derive(Debug, Clone)]
pub enum SecondFactor {
    /// A six-digit code from an authenticator app.
    Totp(String),
    /// One of the user's recovery codes.
    RecoveryCode(String),
}

macro_rules! accessors {
    ($($(#[$doc:meta])* $name:ident => $client:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> $client {
            <$client>::new(self.transport.clone())
        }
    )*};
}

impl Client {
    /// A builder for a client of `endpoint` (`http://host:port`, or
    /// `https://…` with the platform's trusted roots).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            credentials: Credentials::None,
            retry: RetryPolicy::default(),
            listener: None,
            consistency_token: None,
            connect_timeout: Duration::from_secs(5),
            timeout: None,
        }
    }

    /// The channel every accessor uses, for generated clients built by hand.
    pub fn transport(&self) -> Transport {
        self.transport.clone()
    }

    /// The newest consistency token this client was answered: pass it to
    /// another client or process whose reads must see this one's writes.
    pub fn consistency_token(&self) -> Option<String> {
        self.consistency.get()
    }

    /// The current session, when the client calls as a signed-in user (its
    /// tokens change with each refresh).
    pub async fn session(&self) -> Option<Session> {
        self.auth.session().await
    }

    /// Calls as `credentials` from now on (every clone does).
    pub async fn set_credentials(&self, credentials: Credentials) {
        self.auth.set(credentials).await;
    }

    /// Signs up. When the deployment proves addresses first (the default),
    /// nothing exists until [`verify_email`](Self::verify_email) with the
    /// mailed token; otherwise the client calls as the new user at once.
    pub async fn sign_up(
        &self,
        request: identity::v1::SignUpRequest,
    ) -> Result<identity::v1::SignUpResponse> {
        let response = self.public_identity().sign_up(request).await?.into_inner();
        if let Some(tokens) = &response.tokens {
            self.signed_in(tokens).await;
        }
        Ok(response)
    }

    /// Uses a mailed verification token; a token that completes a sign-up
    /// signs the new user in.
    pub async fn verify_email(&self, token: &str) -> Result<identity::v1::VerifyEmailResponse> {
        let response = self
            .public_identity()
            .verify_email(identity::v1::VerifyEmailRequest {
                token: token.to_string(),
            })
            .await?
            .into_inner();
        if let Some(tokens) = &response.tokens {
            self.signed_in(tokens).await;
        }
        Ok(response)
    }

    /// Signs in with email and password, in `organization`
    /// (`organizations/{id}`, or empty for the last one used).
    pub async fn login(&self, email: &str, password: &str, organization: &str) -> Result<Login> {
        let response = self
            .public_identity()
            .login(identity::v1::LoginRequest {
                email: email.to_string(),
                password: password.to_string(),
                organization: organization.to_string(),
            })
            .await?
            .into_inner();
        match response.result {
            Some(identity::v1::login_response::Result::Tokens(tokens)) => {
                self.signed_in(&tokens).await;
                Ok(Login::SignedIn(Box::new(tokens)))
            }
            Some(identity::v1::login_response::Result::MfaChallenge(challenge)) => {
                Ok(Login::MfaRequired(challenge))
            }
            None => Err(Error::local(
                tonic::Code::Internal,
                "EMPTY_LOGIN",
                "the server answered the login with neither tokens nor a challenge",
            )),
        }
    }

    /// Finishes a sign-in that asked for a second factor.
    pub async fn complete_mfa_login(
        &self,
        challenge: &identity::v1::MfaChallenge,
        factor: SecondFactor,
    ) -> Result<identity::v1::AuthTokens> {
        use identity::v1::complete_mfa_login_request::Factor;
        let factor = match factor {
            SecondFactor::Totp(code) => Factor::TotpCode(code),
            SecondFactor::RecoveryCode(code) => Factor::RecoveryCode(code),
        };
        let response = self
            .public_identity()
            .complete_mfa_login(identity::v1::CompleteMfaLoginRequest {
                mfa_token: challenge.mfa_token.clone(),
                factor: Some(factor),
            })
            .await?
            .into_inner();
        let tokens = response.tokens.unwrap_or_default();
        self.signed_in(&tokens).await;
        Ok(tokens)
    }

    /// Ends the current session (its refresh token stops working) and
    /// forgets the credentials.
    pub async fn logout(&self) -> Result<()> {
        if let Some(session) = self.session().await {
            self.public_identity()
                .logout(identity::v1::LogoutRequest {
                    refresh_token: session.refresh_token,
                })
                .await?;
        }
        self.auth.set(Credentials::None).await;
        Ok(())
    }

    async fn signed_in(&self, tokens: &identity::v1::AuthTokens) {
        self.auth
            .set(Credentials::Session(Session::from_tokens(tokens)))
            .await;
    }

    /// The identity service without the client's credentials: sign-in
    /// calls are public, and a stale token must not get in their way.
    fn public_identity(
        &self,
    ) -> identity::v1::identity_service_client::IdentityServiceClient<Transport> {
        identity::v1::identity_service_client::IdentityServiceClient::new(self.anonymous.clone())
    }

    accessors! {
        /// Accounts, sign-in, sessions, MFA and the caller (`Me`).
        identity => identity::v1::identity_service_client::IdentityServiceClient<Transport>;
        /// API keys of organizations.
        api_keys => identity::v1::api_key_service_client::ApiKeyServiceClient<Transport>;
        /// Service accounts and their client credentials.
        service_accounts => identity::v1::service_account_service_client::ServiceAccountServiceClient<Transport>;
        /// Organizations and their trees.
        organizations => organization::v1::organization_service_client::OrganizationServiceClient<Transport>;
        /// Projects and their environments.
        projects => organization::v1::project_service_client::ProjectServiceClient<Transport>;
        /// Teams.
        teams => organization::v1::team_service_client::TeamServiceClient<Transport>;
        /// Workspaces, which hold root organizations.
        workspaces => organization::v1::workspace_service_client::WorkspaceServiceClient<Transport>;
        /// Memberships of users in organizations.
        memberships => rbac::v1::membership_service_client::MembershipServiceClient<Transport>;
        /// Built-in and custom roles, and the permission catalog.
        roles => rbac::v1::role_service_client::RoleServiceClient<Transport>;
        /// Members of teams.
        team_members => rbac::v1::team_member_service_client::TeamMemberServiceClient<Transport>;
        /// Access grants on projects.
        project_grants => rbac::v1::project_grant_service_client::ProjectGrantServiceClient<Transport>;
        /// Invitations into organizations.
        invitations => rbac::v1::invitation_service_client::InvitationServiceClient<Transport>;
        /// Checks, lookups, relationships and their change stream.
        authorization => authz::v1::authorization_service_client::AuthorizationServiceClient<Transport>;
        /// The resource types internal services register.
        schema => authz::v1::schema_service_client::SchemaServiceClient<Transport>;
        /// The plan catalog.
        plans => billing::v1::plan_service_client::PlanServiceClient<Transport>;
        /// Subscriptions to plans.
        subscriptions => billing::v1::subscription_service_client::SubscriptionServiceClient<Transport>;
        /// Billing accounts.
        billing_accounts => billing::v1::billing_account_service_client::BillingAccountServiceClient<Transport>;
        /// Limits, quotas and features.
        entitlements => billing::v1::entitlement_service_client::EntitlementServiceClient<Transport>;
        /// Metered usage.
        usage => billing::v1::usage_service_client::UsageServiceClient<Transport>;
        /// Invoice previews.
        invoices => billing::v1::invoice_service_client::InvoiceServiceClient<Transport>;
        /// The audit log.
        audit => audit::v1::audit_service_client::AuditServiceClient<Transport>;
        /// Bulk import and export (platform administrators).
        bulk => bulk::v1::bulk_service_client::BulkServiceClient<Transport>;
    }
}

macro_rules! listings {
    ($($(#[$doc:meta])* $name:ident($request:ty) via $accessor:ident.$method:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(
            &self,
            request: $request,
        ) -> BoxStream<'static, Result<<$request as PageRequest>::Item>> {
            let client = self.$accessor();
            paginate(request, move |request| {
                let mut client = client.clone();
                async move { client.$method(request).await }
            })
        }
    )*};
}

/// Every page of the most used listings, as one stream each.
impl Client {
    listings! {
        /// Every organization the request selects.
        list_organizations(organization::v1::ListOrganizationsRequest) via organizations.list_organizations;
        /// Every organization the caller belongs to.
        list_my_organizations(organization::v1::ListMyOrganizationsRequest) via organizations.list_my_organizations;
        /// Every project of an organization.
        list_projects(organization::v1::ListProjectsRequest) via projects.list_projects;
        /// Every environment of a project.
        list_environments(organization::v1::ListEnvironmentsRequest) via projects.list_environments;
        /// Every team of an organization.
        list_teams(organization::v1::ListTeamsRequest) via teams.list_teams;
        /// Every membership of an organization.
        list_memberships(rbac::v1::ListMembershipsRequest) via memberships.list_memberships;
        /// Every role of an organization.
        list_roles(rbac::v1::ListRolesRequest) via roles.list_roles;
        /// Every member of a team.
        list_team_members(rbac::v1::ListTeamMembersRequest) via team_members.list_team_members;
        /// Every invitation of an organization.
        list_invitations(rbac::v1::ListInvitationsRequest) via invitations.list_invitations;
        /// Every API key of an organization.
        list_api_keys(identity::v1::ListApiKeysRequest) via api_keys.list_api_keys;
        /// Every service account.
        list_service_accounts(identity::v1::ListServiceAccountsRequest) via service_accounts.list_service_accounts;
        /// Every plan of the catalog.
        list_plans(billing::v1::ListPlansRequest) via plans.list_plans;
        /// Every audit event the filter selects, newest first.
        list_audit_events(audit::v1::ListAuditEventsRequest) via audit.list_audit_events;
        /// Every resource id the subject holds the permission on.
        lookup_resources(authz::v1::LookupResourcesRequest) via authorization.lookup_resources;
        /// Every subject holding the permission on the resource.
        lookup_subjects(authz::v1::LookupSubjectsRequest) via authorization.lookup_subjects;
        /// Every relationship the filter selects.
        read_relationships(authz::v1::ReadRelationshipsRequest) via authorization.read_relationships;
    }
}
