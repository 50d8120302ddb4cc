//! Outgoing email of any service: verification links, password resets,
//! invitations, ownership transfers.
//!
//! Two sinks behind one trait:
//! - `log` (the default): nothing leaves the machine. Each message is written
//!   to `<data_dir>/mail/`, where a developer on the embedded default opens
//!   it, and a log line says that it was sent (kind and file, never the body:
//!   it holds single-use tokens).
//! - `smtp`: delivery through an SMTP relay (lettre), with STARTTLS or
//!   implicit TLS; plaintext only to a relay on the loopback interface.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// Mailer settings (the `mailer` table of a service, such as
/// `[identity.mailer]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailerOptions {
    /// `log` (files in `<data_dir>/mail/`) or `smtp`. Default: `log`.
    pub kind: MailerKind,
    /// The sender address. Default: `Tenantry <no-reply@tenantry.local>`.
    pub from: String,
    /// Base URL of the web console; links in messages point there
    /// (`<base>/verify-email?token=…`, `/reset-password`,
    /// `/invitations/accept`: pages of the console). Default:
    /// `http://127.0.0.1:8080/console`, the console of a local server.
    pub link_base_url: String,
    /// SMTP relay settings, used when `kind = "smtp"`.
    pub smtp: SmtpOptions,
}

impl Default for MailerOptions {
    fn default() -> Self {
        MailerOptions {
            kind: MailerKind::Log,
            from: "Tenantry <no-reply@tenantry.local>".into(),
            link_base_url: "http://127.0.0.1:8080/console".into(),
            smtp: SmtpOptions::default(),
        }
    }
}

/// Where mail goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailerKind {
    /// Files in the data directory, plus a log line without the body.
    Log,
    /// An SMTP relay.
    Smtp,
}

/// SMTP relay settings (`[<service>.mailer.smtp]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpOptions {
    /// The relay's host name. Default: empty (must be set for `smtp`).
    pub host: String,
    /// The relay's port. Default: 587.
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, usually port 465) or `none`
    /// (only allowed for a relay on the loopback interface).
    pub tls: SmtpTls,
    /// Login name, if the relay wants one. Default: none.
    pub username: Option<String>,
    /// Password; prefer the environment (such as
    /// `TENANTRY_IDENTITY__MAILER__SMTP__PASSWORD`) over the file. Default: none.
    pub password: Option<String>,
    /// Seconds before a delivery attempt gives up. Default: 10.
    pub timeout_secs: u64,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            timeout_secs: 10,
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Upgrade a plain connection with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte.
    Tls,
    /// No encryption: only for a relay on 127.0.0.1 / localhost / ::1.
    None,
}

impl MailerOptions {
    /// Checks the values, naming the key; `key` is where the table sits in
    /// the configuration, such as `identity.mailer`.
    pub fn validate(&self, key: &str) -> anyhow::Result<()> {
        self.from.parse::<Mailbox>().map_err(|_| {
            anyhow::anyhow!("invalid configuration: `{key}.from` is not an email address")
        })?;
        if self.kind == MailerKind::Smtp {
            anyhow::ensure!(
                !self.smtp.host.is_empty(),
                "invalid configuration: `{key}.smtp.host` must be set when `{key}.kind` is `smtp`"
            );
            let loopback = matches!(self.smtp.host.as_str(), "127.0.0.1" | "localhost" | "::1");
            anyhow::ensure!(
                self.smtp.tls != SmtpTls::None || loopback,
                "invalid configuration: `{key}.smtp.tls = \"none\"` is only allowed for a relay on the loopback interface"
            );
            anyhow::ensure!(
                self.smtp.username.is_some() == self.smtp.password.is_some(),
                "invalid configuration: set both `{key}.smtp.username` and `{key}.smtp.password`, or neither"
            );
        }
        Ok(())
    }
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// What the message is for, such as `verify_email`; part of the file name.
    pub kind: &'static str,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Sends mail.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends one message.
    async fn send(&self, mail: Mail) -> anyhow::Result<()>;
}

/// Builds the configured mailer.
pub fn build(
    options: &MailerOptions,
    key: &str,
    data_dir: PathBuf,
) -> anyhow::Result<std::sync::Arc<dyn Mailer>> {
    options.validate(key)?;
    Ok(match options.kind {
        MailerKind::Log => {
            std::sync::Arc::new(LogMailer::new(data_dir.join("mail"), options.from.clone()))
        }
        MailerKind::Smtp => std::sync::Arc::new(SmtpMailer::new(options)?),
    })
}

/// The default sink: files in a directory.
#[derive(Debug, Clone)]
pub struct LogMailer {
    dir: PathBuf,
    from: String,
}

impl LogMailer {
    /// A sink writing into `dir` (created when needed).
    pub fn new(dir: PathBuf, from: String) -> Self {
        LogMailer { dir, from }
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let file = self.dir.join(format!(
            "{}-{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f"),
            mail.kind,
            uuid::Uuid::now_v7().simple()
        ));
        let message = format!(
            "From: {}\nTo: {}\nSubject: {}\n\n{}\n",
            self.from, mail.to, mail.subject, mail.body
        );
        tokio::fs::write(&file, message).await?;
        tracing::info!(kind = mail.kind, file = %file.display(), "email written to the mail directory");
        Ok(())
    }
}

/// Delivery through an SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for the configured relay (connections are made per send,
    /// pooled by lettre).
    pub fn new(options: &MailerOptions) -> anyhow::Result<Self> {
        let smtp = &options.smtp;
        let builder = match smtp.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        };
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(smtp.timeout_secs.max(1))));
        if let (Some(username), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            from: options.from.parse()?,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse()?)
            .subject(mail.subject)
            .body(mail.body)?;
        self.transport.send(message).await?;
        tracing::info!(kind = mail.kind, "email handed to the smtp relay");
        Ok(())
    }
}
