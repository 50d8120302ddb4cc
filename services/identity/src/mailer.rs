//! Outgoing email: verification links, password resets, sign-in alerts.
//!
//! The default sink never sends anything: it logs that a message went out
//! (recipient and subject, never the body, which holds single-use tokens) and
//! writes the whole message to `<data_dir>/mail/`, where a developer on the
//! embedded default opens it. SMTP delivery is a later addition behind the
//! same trait.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Mailer settings (`[identity.mailer]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailerOptions {
    /// `log`: write messages to `<data_dir>/mail/` and log that they were
    /// sent. Default: `log`.
    pub kind: MailerKind,
    /// The sender address. Default: `Tenantry <no-reply@tenantry.local>`.
    pub from: String,
    /// Base URL of the web console; links in messages point there.
    /// Default: `http://127.0.0.1:8080`.
    pub link_base_url: String,
}

impl Default for MailerOptions {
    fn default() -> Self {
        MailerOptions {
            kind: MailerKind::Log,
            from: "Tenantry <no-reply@tenantry.local>".into(),
            link_base_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// Where mail goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailerKind {
    /// Files in the data directory, plus a log line without the body.
    Log,
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
            tenantry_kit::id::new_id().simple()
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
