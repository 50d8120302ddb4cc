//! Users as tests make them: signed up through the identity service with
//! one password, known by id and access token.

use tenantry_proto::tenantry::identity::v1 as identity;
use tonic::transport::Channel;

use crate::clients::Identity;
use crate::{authed, last_id};

/// The password every test user signs up with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-up user: their id and an access token.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's id (the last segment of `users/{id}`).
    pub id: String,
    /// An access token of theirs.
    pub token: String,
}

/// Signs `email` up with [`PASSWORD`] under `display_name`: the whole
/// response, for tests that read more of it than the user.
pub async fn sign_up_response(
    channel: &Channel,
    email: &str,
    display_name: &str,
) -> identity::SignUpResponse {
    Identity::new(channel.clone())
        .sign_up(identity::SignUpRequest {
            email: email.into(),
            password: PASSWORD.into(),
            display_name: display_name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Signs `email` up under `display_name`: the user and the id of the
/// first organization they got (empty when they got none).
pub async fn sign_up(channel: &Channel, email: &str, display_name: &str) -> (User, String) {
    let response = sign_up_response(channel, email, display_name).await;
    let user = User {
        id: last_id(&response.user.unwrap().name),
        token: response.tokens.unwrap().access_token,
    };
    (user, last_id(&response.organization))
}

/// Logs `email` in with `password`.
pub async fn login(
    channel: &Channel,
    email: &str,
    password: &str,
) -> Result<identity::LoginResponse, tonic::Status> {
    Identity::new(channel.clone())
        .login(identity::LoginRequest {
            email: email.into(),
            password: password.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// The tokens of a login that needed no second factor; panics otherwise.
pub fn tokens(response: identity::LoginResponse) -> identity::AuthTokens {
    match response.result {
        Some(identity::login_response::Result::Tokens(tokens)) => tokens,
        other => panic!("expected tokens, got {other:?}"),
    }
}

/// Logs `email` in with [`PASSWORD`] and asks who they are: the user again,
/// with a new token.
pub async fn log_in(channel: &Channel, email: &str) -> User {
    let tokens = tokens(login(channel, email, PASSWORD).await.unwrap());
    let me = Identity::new(channel.clone())
        .me(authed(identity::MeRequest::default(), &tokens.access_token))
        .await
        .unwrap()
        .into_inner();
    User {
        id: last_id(&me.user.unwrap().name),
        token: tokens.access_token,
    }
}
