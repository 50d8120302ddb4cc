//! A minimal SMTP server for tests: accepts every message and keeps it, so
//! a test can read what identity sent through a real SMTP conversation.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// A received message: the envelope recipients and the raw DATA.
#[derive(Debug, Clone)]
pub struct Received {
    /// `RCPT TO` addresses.
    pub recipients: Vec<String>,
    /// The message as sent, headers and body.
    pub data: String,
}

/// The sink; messages arrive in `messages`.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Messages received so far.
    pub messages: Arc<Mutex<Vec<Received>>>,
}

impl SmtpSink {
    /// Starts listening on a free port.
    pub async fn start() -> anyhow::Result<SmtpSink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, store).await;
                });
            }
        });
        Ok(SmtpSink { port, messages })
    }

    /// The raw text of the newest message to `to`, if any.
    pub fn last_to(&self, to: &str) -> Option<String> {
        self.messages
            .lock()
            .expect("sink lock")
            .iter()
            .rev()
            .find(|m| m.recipients.iter().any(|r| r.eq_ignore_ascii_case(to)))
            .map(|m| m.data.clone())
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("HELO")
            || upper.starts_with("MAIL FROM")
            || upper.starts_with("RSET")
        {
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO") {
            let address = line[8..]
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string();
            recipients.push(address);
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(line) = lines.next_line().await? {
                if line == "." {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                data.push('\n');
            }
            store.lock().expect("sink lock").push(Received {
                recipients: std::mem::take(&mut recipients),
                data,
            });
            write.write_all(b"250 queued\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 ok\r\n").await?;
        }
    }
    Ok(())
}
