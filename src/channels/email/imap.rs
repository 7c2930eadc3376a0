//! Reading responses over IMAP with async-imap: connect (implicit TLS, STARTTLS required, or
//! plaintext to loopback only), EXAMINE folders read-only, list UIDs past a cursor and fetch
//! them with `BODY.PEEK[]`, so nothing is ever marked seen, moved or deleted.
//!
//! This module returns raw bytes with the server's INTERNALDATE; it must not parse, match,
//! classify or store them, and it never advances a cursor (the store does, with the messages).

use std::fmt;

use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::channels::tls::{TlsError, client_config};
use crate::config::{Mailbox, Secret, Security};
use crate::model::{Millis, now_millis};

/// Errors talking to an IMAP server.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// TCP connection failed.
    #[error("cannot connect to IMAP server `{server}`")]
    Connect {
        server: String,
        #[source]
        source: std::io::Error,
    },
    /// TLS setup or handshake failed.
    #[error("TLS with IMAP server `{server}` failed: {detail}")]
    Tls { server: String, detail: String },
    /// The server did not accept the login.
    #[error("IMAP server `{server}` refused the login of `{user}`: {detail}")]
    Login {
        server: String,
        user: String,
        detail: String,
    },
    /// A command failed.
    #[error("IMAP {command} on `{server}` failed")]
    Command {
        server: String,
        command: String,
        #[source]
        source: async_imap::error::Error,
    },
    /// The server's answer lacks something IMAP requires.
    #[error("IMAP server `{server}` sent an unusable answer: {detail}")]
    Protocol { server: String, detail: String },
}

impl From<TlsError> for ImapError {
    fn from(e: TlsError) -> Self {
        ImapError::Tls {
            server: String::new(),
            detail: e.to_string(),
        }
    }
}

/// Any byte stream async-imap can run over (plain TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}

type Session = async_imap::Session<Box<dyn Io>>;

/// A folder opened read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uidvalidity: u32,
    pub exists: u32,
}

/// One message as the server holds it.
#[derive(Debug, Clone)]
pub struct FetchedMessage {
    pub uid: u32,
    /// INTERNALDATE, the server's receive time.
    pub internal_date: Millis,
    /// When deskprobe had the bytes.
    pub observed_at: Millis,
    pub raw: Vec<u8>,
}

/// Why [`ImapConnection::idle`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server reported a change (new message, expunge, flags).
    Changed,
    /// Nothing happened within the timeout; IDLE should be re-issued.
    Timeout,
    /// The caller asked to stop.
    Stopped,
}

/// A logged-in IMAP connection of one mailbox.
pub struct ImapConnection {
    session: Session,
    server: String,
    idle: bool,
}

impl ImapConnection {
    /// Connects and logs in.
    #[tracing::instrument(skip_all, fields(mailbox = %mailbox.id))]
    pub async fn connect(mailbox: &Mailbox, password: &Secret) -> Result<Self, ImapError> {
        let ep = &mailbox.imap;
        let server = format!("{}:{}", ep.host, ep.port);
        let tcp = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|source| ImapError::Connect {
                server: server.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let tls_err = |detail: String| ImapError::Tls {
            server: server.clone(),
            detail,
        };
        let stream: Box<dyn Io> = match ep.security {
            Security::Plaintext => Box::new(tcp),
            Security::ImplicitTls => {
                Box::new(tls_connect(tcp, &ep.host, mailbox).await.map_err(tls_err)?)
            }
            Security::StartTls => {
                let mut client = async_imap::Client::new(tcp);
                read_greeting(&mut client, &server).await?;
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|source| ImapError::Command {
                        server: server.clone(),
                        command: "STARTTLS".into(),
                        source,
                    })?;
                let tcp = client.into_inner();
                let tls = tls_connect(tcp, &ep.host, mailbox).await.map_err(tls_err)?;
                let client = async_imap::Client::new(Box::new(tls) as Box<dyn Io>);
                return ImapConnection::login(client, mailbox, password, server).await;
            }
        };
        let mut client = async_imap::Client::new(stream);
        read_greeting(&mut client, &server).await?;
        ImapConnection::login(client, mailbox, password, server).await
    }

    async fn login(
        client: async_imap::Client<Box<dyn Io>>,
        mailbox: &Mailbox,
        password: &Secret,
        server: String,
    ) -> Result<Self, ImapError> {
        let session = client
            .login(&mailbox.username, password.expose())
            .await
            .map_err(|(e, _)| ImapError::Login {
                server: server.clone(),
                user: mailbox.username.clone(),
                detail: e.to_string(),
            })?;
        let mut conn = ImapConnection {
            session,
            server,
            idle: false,
        };
        let on_error = conn.command_error("CAPABILITY");
        let caps = conn.session.capabilities().await.map_err(on_error)?;
        conn.idle = caps.has_str("IDLE");
        conn.drain_unsolicited();
        Ok(conn)
    }

    /// Whether the server supports IDLE (RFC 2177); without it the caller polls.
    pub fn supports_idle(&self) -> bool {
        self.idle
    }

    /// Waits in IDLE on the examined folder until the server reports a change, `timeout`
    /// passes (re-issue IDLE before the server's own limit, 29 min at most) or `stop`
    /// completes, then leaves IDLE cleanly so the connection can be used again.
    pub async fn idle(
        self,
        timeout: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(ImapConnection, Wake), ImapError> {
        let ImapConnection {
            session,
            server,
            idle,
        } = self;
        let err = |command: &str| {
            let server = server.clone();
            let command = command.to_owned();
            move |source| ImapError::Command {
                server,
                command,
                source,
            }
        };
        let mut handle = session.idle();
        handle.init().await.map_err(err("IDLE"))?;
        let response = {
            let (wait, interrupt) = handle.wait_with_timeout(timeout);
            tokio::pin!(wait);
            tokio::pin!(stop);
            tokio::select! {
                r = &mut wait => r,
                () = &mut stop => {
                    // Interrupting lets the wait finish cleanly instead of dropping it mid-read.
                    drop(interrupt);
                    wait.await.map(|_| IdleResponse::ManualInterrupt)
                }
            }
            .map_err(err("IDLE"))?
        };
        let session = handle.done().await.map_err(err("DONE"))?;
        let mut conn = ImapConnection {
            session,
            server,
            idle,
        };
        conn.drain_unsolicited();
        let wake = match response {
            IdleResponse::NewData(_) => Wake::Changed,
            IdleResponse::Timeout => Wake::Timeout,
            IdleResponse::ManualInterrupt => Wake::Stopped,
        };
        Ok((conn, wake))
    }

    /// Asks the server for news on the examined folder (used when polling without IDLE).
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        let on_error = self.command_error("NOOP");
        self.session.noop().await.map_err(on_error)?;
        self.drain_unsolicited();
        Ok(())
    }

    /// `host:port` of the server.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn command_error(
        &self,
        command: &str,
    ) -> impl FnOnce(async_imap::error::Error) -> ImapError + use<> {
        let server = self.server.clone();
        let command = command.to_owned();
        move |source| ImapError::Command {
            server,
            command,
            source,
        }
    }

    /// Opens `folder` read-only (EXAMINE), so no flag can change.
    pub async fn examine(&mut self, folder: &str) -> Result<FolderState, ImapError> {
        let mb = self
            .session
            .examine(folder)
            .await
            .map_err(self.command_error(&format!("EXAMINE {folder}")))?;
        self.drain_unsolicited();
        let uidvalidity = mb.uid_validity.ok_or_else(|| ImapError::Protocol {
            server: self.server.clone(),
            detail: format!("no UIDVALIDITY for folder `{folder}`"),
        })?;
        Ok(FolderState {
            uidvalidity,
            exists: mb.exists,
        })
    }

    /// UIDs greater than `after` in the examined folder, ascending.
    pub async fn uids_after(&mut self, after: u32) -> Result<Vec<u32>, ImapError> {
        let query = format!("UID {}:*", after.saturating_add(1));
        let set = self
            .session
            .uid_search(&query)
            .await
            .map_err(self.command_error(&format!("UID SEARCH {query}")))?;
        self.drain_unsolicited();
        // `n:*` always includes the highest UID even when it is below n: filter.
        let mut uids: Vec<u32> = set.into_iter().filter(|u| *u > after).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// Fetches the given UIDs with `BODY.PEEK[]` and INTERNALDATE, ascending by UID.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<FetchedMessage>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        let server = self.server.clone();
        let on_error = self.command_error("UID FETCH");
        let stream = self
            .session
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await
            .map_err(on_error)?;
        let fetches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|source| ImapError::Command {
                server: server.clone(),
                command: "UID FETCH".into(),
                source,
            })?;
        self.drain_unsolicited();
        let observed_at = now_millis();
        let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let mut out = Vec::with_capacity(fetches.len());
        for f in &fetches {
            // Flag updates and other unsolicited FETCHes carry no UID or no body: skip them.
            let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                continue;
            };
            if !wanted.contains(&uid) {
                continue;
            }
            let internal_date = f.internal_date().ok_or_else(|| ImapError::Protocol {
                server: server.clone(),
                detail: format!("no INTERNALDATE for UID {uid}"),
            })?;
            out.push(FetchedMessage {
                uid,
                internal_date: internal_date.timestamp_millis(),
                observed_at,
                raw: body.to_vec(),
            });
        }
        out.sort_by_key(|m| m.uid);
        out.dedup_by_key(|m| m.uid);
        Ok(out)
    }

    /// Logs out politely; errors are irrelevant at this point.
    pub async fn logout(mut self) {
        let _ = self.session.logout().await;
    }

    /// async-imap buffers unsolicited responses in a bounded channel and drops the rest;
    /// empty it so it never fills up on a long-lived connection.
    fn drain_unsolicited(&mut self) {
        while self.session.unsolicited_responses.try_recv().is_ok() {}
    }
}

async fn read_greeting<T: Io>(
    client: &mut async_imap::Client<T>,
    server: &str,
) -> Result<(), ImapError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Protocol {
            server: server.to_owned(),
            detail: "connection closed before the greeting".into(),
        }),
        Err(source) => Err(ImapError::Connect {
            server: server.to_owned(),
            source,
        }),
    }
}

async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    mailbox: &Mailbox,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let config = client_config(mailbox.ca_file.as_deref()).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid server name `{host}`: {e}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// A compact IMAP sequence set for ascending UIDs: `1:5,9,12:13`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(super::uid_set(&[1, 2, 3, 5, 9, 10]), "1:3,5,9:10");
        assert_eq!(super::uid_set(&[7]), "7");
    }
}
