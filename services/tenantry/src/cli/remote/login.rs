//! `tenantry login` and `tenantry logout`: a user's session (email and
//! password, with a TOTP or recovery code when the account asks for one),
//! an API key, or a service account's client credentials, stored in the
//! context.

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::Args;
use tenantry_client::{Login, SecondFactor, Session};

use super::context::{Context, Contexts, Credential};
use super::exit::invalid;
use super::{Globals, build, resolve};

/// How to sign in.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user's email (prompted when absent and a terminal is attached).
    #[arg(long, env = "TENANTRY_EMAIL")]
    email: Option<String>,
    /// Read the password from the first line of stdin instead of prompting
    /// (or set TENANTRY_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
    /// A TOTP code, when the account has MFA (prompted when needed).
    #[arg(long, value_name = "CODE", env = "TENANTRY_TOTP")]
    totp: Option<String>,
    /// A recovery code instead of a TOTP code.
    #[arg(long, value_name = "CODE", conflicts_with = "totp")]
    recovery_code: Option<String>,
    /// The organization to sign in to (`organizations/{id}`, or the id).
    #[arg(long)]
    organization: Option<String>,
    /// A service account's client id (with --client-secret).
    #[arg(long, requires = "client_secret", env = "TENANTRY_CLIENT_ID")]
    client_id: Option<String>,
    /// A service account's client secret.
    #[arg(long, env = "TENANTRY_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
}

/// Signs in, checks the credential with one call, and stores it in the
/// context (one named `default` is made from `--endpoint` when there is
/// none).
pub async fn login(globals: &Globals, args: LoginArgs) -> anyhow::Result<()> {
    let (name, mut context) = resolve(globals)?;
    let name = name
        .or_else(|| globals.context.clone())
        .unwrap_or_else(|| "default".into());
    let client = build(&context, Default::default())?;
    let organization = args
        .organization
        .as_deref()
        .map(organization_name)
        .unwrap_or_default();
    // `tenantry login --api-key KEY` stores the key (checked first).
    let credential = if let Some(secret) = globals.api_key.clone() {
        let credential = Credential::ApiKey { secret };
        verify(&context, &credential).await?;
        credential
    } else if let (Some(client_id), Some(client_secret)) = (args.client_id, args.client_secret) {
        let credential = Credential::ClientCredentials {
            client_id,
            client_secret,
            organization,
        };
        verify(&context, &credential).await?;
        credential
    } else {
        let email = match args.email {
            Some(email) => email,
            None => prompt_line("email: ")?,
        };
        let password = password(args.password_stdin)?;
        let session = match client.login(&email, &password, &organization).await? {
            Login::SignedIn(tokens) => Session::from_tokens(&tokens),
            Login::MfaRequired(challenge) => {
                let factor = match (args.totp, args.recovery_code) {
                    (Some(code), _) => SecondFactor::Totp(code),
                    (None, Some(code)) => SecondFactor::RecoveryCode(code),
                    (None, None) => SecondFactor::Totp(prompt_line("TOTP code: ")?),
                };
                Session::from_tokens(&client.complete_mfa_login(&challenge, factor).await?)
            }
        };
        stored_session(email, &session)
    };
    eprintln!("signed in to `{name}` as {}", credential.describe());
    context.credential = Some(credential);
    let mut contexts = Contexts::load()?;
    contexts.contexts.insert(name.clone(), context);
    contexts.current = Some(name);
    contexts.save()
}

/// Ends the stored session at the server and forgets the credential.
pub async fn logout(globals: &Globals) -> anyhow::Result<()> {
    let (name, mut context) = resolve(globals)?;
    let name = name.context("logout needs a context")?;
    if matches!(context.credential, Some(Credential::Session { .. })) {
        build(&context, Default::default())?.logout().await?;
    }
    context.credential = None;
    let mut contexts = Contexts::load()?;
    contexts.contexts.insert(name.clone(), context);
    contexts.save()?;
    eprintln!("signed out of `{name}`");
    Ok(())
}

/// A session as the context stores it.
pub fn stored_session(email: String, session: &Session) -> Credential {
    Credential::Session {
        email,
        access_token: session.access_token.clone(),
        refresh_token: session.refresh_token.clone(),
        expire_time: session
            .expire_time
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    }
}

/// Exchanges the credential once, so that a wrong one fails here and not
/// at the next command.
async fn verify(context: &Context, credential: &Credential) -> anyhow::Result<()> {
    let mut trial = context.clone();
    trial.credential = Some(credential.clone());
    let client = build(&trial, Default::default())?;
    client
        .identity()
        .get_jwks(tenantry_client::pb::identity::v1::GetJwksRequest::default())
        .await
        .map_err(tenantry_client::Error::from)?;
    Ok(())
}

fn organization_name(organization: &str) -> String {
    if organization.starts_with("organizations/") {
        organization.to_string()
    } else {
        format!("organizations/{organization}")
    }
}

fn password(from_stdin: bool) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("TENANTRY_PASSWORD") {
        return Ok(password);
    }
    if from_stdin || !std::io::stdin().is_terminal() {
        if !from_stdin {
            return Err(invalid(
                "no terminal to ask for the password: use --password-stdin or TENANTRY_PASSWORD",
            ));
        }
        return read_stdin_line();
    }
    rpassword::prompt_password("password: ").context("cannot read the password")
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        return Err(invalid(format!(
            "no terminal to ask for `{}`: pass it as a flag",
            prompt.trim_end_matches([':', ' '])
        )));
    }
    eprint!("{prompt}");
    read_stdin_line()
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
