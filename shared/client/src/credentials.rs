//! Who the client calls as, and how it keeps an access token fresh.
//!
//! Tenantry's services read one credential: `authorization: Bearer <JWT>`.
//! Every other credential is exchanged for one at the identity service,
//! exactly as the gateway does for REST callers:
//! - a user session: the access token until shortly before it expires, then
//!   `IdentityService.Refresh` with the (single-use, rotating) refresh token;
//! - an API key: `ApiKeyService.AuthenticateApiKey` (the gateway reads the
//!   key from `x-api-key` or `authorization: Bearer tnt_…` and does the same);
//! - a service account's client credentials:
//!   `ServiceAccountService.IssueServiceAccountToken` (OAuth 2.0 client
//!   credentials).
//!
//! Exchanged tokens are cached until 30 s before they expire; one exchange
//! runs at a time however many calls wait for it.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tenantry_proto::tenantry::identity::v1 as identity;

use crate::error::{CREDENTIALS_REJECTED, Error};
use crate::transport::Transport;

/// How long before its expiry an access token is replaced.
const EARLY: Duration = Duration::from_secs(30);

/// A user's session: the tokens `Login`, `CompleteMfaLogin`, `VerifyEmail`
/// or `Refresh` answered.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The access token (a JWT).
    pub access_token: String,
    /// The refresh token; empty when the session cannot be refreshed.
    pub refresh_token: String,
    /// When the access token expires, if known.
    pub expire_time: Option<SystemTime>,
}

impl Session {
    /// The session of a sign-in's tokens.
    pub fn from_tokens(tokens: &identity::AuthTokens) -> Session {
        Session {
            access_token: tokens.access_token.clone(),
            refresh_token: tokens.refresh_token.clone(),
            expire_time: tokens.expire_time.as_ref().and_then(to_system_time),
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expire_time", &self.expire_time)
            .finish()
    }
}

/// What the client presents. Secrets never appear in its `Debug`.
#[derive(Clone, Default)]
pub enum Credentials {
    /// None: only the public RPCs (sign-up, login, JWKS…) answer.
    #[default]
    None,
    /// A fixed access token, used as it is until it expires.
    AccessToken(String),
    /// A user's session, refreshed with its refresh token.
    Session(Session),
    /// An API key's secret (`tnt_…`), exchanged for short-lived tokens.
    ApiKey(String),
    /// A service account's client credentials.
    ClientCredentials {
        /// The credential's client id.
        client_id: String,
        /// The credential's client secret.
        client_secret: String,
        /// The organization to act in (`organizations/{id}`); empty for an
        /// instance-level token.
        organization: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Credentials::None => "None",
            Credentials::AccessToken(_) => "AccessToken(<redacted>)",
            Credentials::Session(_) => "Session(<redacted>)",
            Credentials::ApiKey(_) => "ApiKey(<redacted>)",
            Credentials::ClientCredentials { .. } => "ClientCredentials(<redacted>)",
        };
        f.write_str(kind)
    }
}

/// Called with the new tokens whenever a session is refreshed: a refresh
/// token is single-use, so whoever stores the session must store these.
pub type SessionListener = Arc<dyn Fn(&Session) + Send + Sync>;

/// An access token and when it stops working.
#[derive(Clone)]
struct Bearer {
    token: String,
    expire_time: Option<SystemTime>,
}

impl Bearer {
    fn is_fresh(&self) -> bool {
        self.expire_time
            .is_none_or(|at| at > SystemTime::now() + EARLY)
    }
}

/// The credential state every clone of a client shares.
pub(crate) struct Auth {
    identity: Transport,
    current: RwLock<Option<Bearer>>,
    source: tokio::sync::Mutex<Credentials>,
    listener: Option<SessionListener>,
}

impl Auth {
    pub(crate) fn new(
        identity: Transport,
        credentials: Credentials,
        listener: Option<SessionListener>,
    ) -> Auth {
        let current = match &credentials {
            Credentials::AccessToken(token) => Some(Bearer {
                token: token.clone(),
                expire_time: None,
            }),
            Credentials::Session(session) => Some(Bearer {
                token: session.access_token.clone(),
                expire_time: session.expire_time,
            }),
            _ => None,
        };
        Auth {
            identity,
            current: RwLock::new(current),
            source: tokio::sync::Mutex::new(credentials),
            listener,
        }
    }

    /// Replaces the credentials (after a sign-in).
    pub(crate) async fn set(&self, credentials: Credentials) {
        let mut source = self.source.lock().await;
        let fresh = Auth::new(self.identity.clone(), credentials.clone(), None);
        *self.write() = fresh
            .current
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        *source = credentials;
    }

    /// The current session, when the credentials are one.
    pub(crate) async fn session(&self) -> Option<Session> {
        match &*self.source.lock().await {
            Credentials::Session(session) => Some(session.clone()),
            _ => None,
        }
    }

    /// The access token to send now, renewed first when it is about to
    /// expire; `None` for a client without credentials.
    pub(crate) async fn bearer(&self) -> Result<Option<String>, Error> {
        if let Some(bearer) = self.read().as_ref().filter(|b| b.is_fresh()) {
            return Ok(Some(bearer.token.clone()));
        }
        let mut source = self.source.lock().await;
        // Another call may have renewed it while this one waited.
        if let Some(bearer) = self.read().as_ref().filter(|b| b.is_fresh()) {
            return Ok(Some(bearer.token.clone()));
        }
        let renewed = self.renew(&mut source).await?;
        *self.write() = renewed.clone();
        Ok(renewed.map(|b| b.token))
    }

    /// After the server refused `sent`: renews it once if it can be renewed
    /// and nobody did so meanwhile. Whether a new token is there to retry.
    pub(crate) async fn renew_after_refusal(&self, sent: &str) -> Result<bool, Error> {
        let mut source = self.source.lock().await;
        if self.read().as_ref().is_some_and(|b| b.token != sent) {
            return Ok(true);
        }
        if matches!(&*source, Credentials::None | Credentials::AccessToken(_)) {
            return Ok(false);
        }
        if let Credentials::Session(session) = &*source
            && session.refresh_token.is_empty()
        {
            return Ok(false);
        }
        let renewed = self.renew(&mut source).await?;
        *self.write() = renewed;
        Ok(true)
    }

    async fn renew(&self, source: &mut Credentials) -> Result<Option<Bearer>, Error> {
        match source {
            Credentials::None => Ok(None),
            // The server decides whether a fixed token still works.
            Credentials::AccessToken(token) => Ok(Some(Bearer {
                token: token.clone(),
                expire_time: None,
            })),
            Credentials::Session(session) if session.refresh_token.is_empty() => Ok(Some(Bearer {
                token: session.access_token.clone(),
                expire_time: None,
            })),
            Credentials::Session(session) => {
                let response = self
                    .identity()
                    .refresh(identity::RefreshRequest {
                        refresh_token: session.refresh_token.clone(),
                    })
                    .await
                    .map_err(|s| rejected("the session could not be refreshed", s))?
                    .into_inner();
                let tokens = response.tokens.unwrap_or_default();
                *session = Session::from_tokens(&tokens);
                if let Some(listener) = &self.listener {
                    listener(session);
                }
                Ok(Some(Bearer {
                    token: session.access_token.clone(),
                    expire_time: session.expire_time,
                }))
            }
            Credentials::ApiKey(secret) => {
                let response = identity::api_key_service_client::ApiKeyServiceClient::new(
                    self.identity.clone(),
                )
                .authenticate_api_key(identity::AuthenticateApiKeyRequest {
                    secret: secret.clone(),
                })
                .await
                .map_err(|s| rejected("the API key was refused", s))?
                .into_inner();
                Ok(Some(Bearer {
                    token: response.access_token,
                    expire_time: response.expire_time.as_ref().and_then(to_system_time),
                }))
            }
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                organization,
            } => {
                let response =
                    identity::service_account_service_client::ServiceAccountServiceClient::new(
                        self.identity.clone(),
                    )
                    .issue_service_account_token(identity::IssueServiceAccountTokenRequest {
                        client_id: client_id.clone(),
                        client_secret: client_secret.clone(),
                        organization: organization.clone(),
                    })
                    .await
                    .map_err(|s| rejected("the client credentials were refused", s))?
                    .into_inner();
                Ok(Some(Bearer {
                    token: response.access_token,
                    expire_time: response.expire_time.as_ref().and_then(to_system_time),
                }))
            }
        }
    }

    fn identity(&self) -> identity::identity_service_client::IdentityServiceClient<Transport> {
        identity::identity_service_client::IdentityServiceClient::new(self.identity.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Bearer>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Bearer>> {
        self.current.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// An exchange the server refused keeps the server's code and details when
/// it is not about the credential (the endpoint down, throttling); a refused
/// credential becomes [`CREDENTIALS_REJECTED`].
fn rejected(what: &str, status: tonic::Status) -> Error {
    let error = Error::from(status);
    if error.code() == tonic::Code::Unauthenticated || error.code() == tonic::Code::InvalidArgument
    {
        Error::local(
            tonic::Code::Unauthenticated,
            CREDENTIALS_REJECTED,
            format!("{what}: {}", error.message()),
        )
    } else {
        error
    }
}

pub(crate) fn to_system_time(timestamp: &prost_types::Timestamp) -> Option<SystemTime> {
    let seconds = u64::try_from(timestamp.seconds).ok()?;
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos))
}
