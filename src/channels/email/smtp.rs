//! Sending a probe over SMTP with lettre: implicit TLS, STARTTLS required, or plaintext to a
//! loopback host only when the mailbox says `tls = "none"` (the config refuses anything else).
//!
//! The message is built and formatted once; those exact bytes are stored as evidence before
//! the send and are what goes over the wire. `sent_at` is the moment the server answered 250
//! after DATA. This module must not retry on its own: the caller decides (ethics guards).

use std::time::Duration;

use lettre::message::{Mailbox as Address, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Mailbox, Secret, Security};
use crate::model::{Millis, now_millis};

/// Errors building or sending a probe email.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// An address in the probe is not a valid mailbox.
    #[error("invalid email address `{address}`: {detail}")]
    Address { address: String, detail: String },
    /// lettre refused to build the message.
    #[error("cannot build the probe message: {0}")]
    Build(String),
    /// The CA file or TLS parameters are unusable.
    #[error("cannot set up TLS for SMTP server `{server}`: {detail}")]
    Tls { server: String, detail: String },
    /// The server refused the message, or the connection failed or timed out.
    #[error("SMTP server `{server}` did not accept the probe: {source}")]
    Send {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

impl SmtpError {
    /// Whether the server surely took nothing and trying again later could succeed: a
    /// connection that failed, or a 4xx answer. Not a timeout (the message may have been
    /// taken after DATA) and not a 5xx refusal: those are never retried.
    pub fn reached_nobody(&self) -> bool {
        match self {
            SmtpError::Send { source, .. } => !source.is_permanent() && !source.is_timeout(),
            _ => false,
        }
    }
}

/// A probe email, ready to format.
#[derive(Debug, Clone)]
pub struct OutboundEmail {
    pub from_name: String,
    /// The sender address; with plus-addressing it carries the probe token.
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// The pre-generated Message-ID, without angle brackets.
    pub message_id: String,
}

impl OutboundEmail {
    /// The RFC 5322 bytes of the message (UTF-8 text, Date set to now).
    pub fn format(&self) -> Result<Vec<u8>, SmtpError> {
        let from = Address::new(Some(self.from_name.clone()), parse_address(&self.from)?);
        let to = Address::new(None, parse_address(&self.to)?);
        let message = lettre::Message::builder()
            .from(from)
            .to(to)
            .subject(self.subject.clone())
            .message_id(Some(format!("<{}>", self.message_id)))
            .date_now()
            .header(ContentType::TEXT_PLAIN)
            .body(self.body.clone())
            .map_err(|e| SmtpError::Build(e.to_string()))?;
        Ok(message.formatted())
    }
}

fn parse_address(address: &str) -> Result<lettre::Address, SmtpError> {
    address
        .parse()
        .map_err(|e: lettre::address::AddressError| SmtpError::Address {
            address: address.to_owned(),
            detail: e.to_string(),
        })
}

/// An SMTP client for one mailbox.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl SmtpSender {
    /// Prepares a client for `mailbox` (no connection is made yet).
    pub fn new(mailbox: &Mailbox, password: &Secret, timeout: Duration) -> Result<Self, SmtpError> {
        let ep = &mailbox.smtp;
        let server = format!("{}:{}", ep.host, ep.port);
        let tls_err = |detail: String| SmtpError::Tls {
            server: server.clone(),
            detail,
        };
        let tls = match ep.security {
            Security::Plaintext => Tls::None,
            Security::ImplicitTls | Security::StartTls => {
                let mut params = TlsParameters::builder(ep.host.clone());
                if let Some(ca) = &mailbox.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| tls_err(format!("cannot read `{}`: {e}", ca.display())))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| tls_err(format!("bad CA file `{}`: {e}", ca.display())))?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let params = params.build_rustls().map_err(|e| tls_err(e.to_string()))?;
                if ep.security == Security::ImplicitTls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ep.host.as_str())
            .port(ep.port)
            .tls(tls)
            .credentials(Credentials::new(
                mailbox.username.clone(),
                password.expose().to_owned(),
            ))
            .timeout(Some(timeout))
            .build();
        Ok(SmtpSender { transport, server })
    }

    /// Sends the formatted message; returns when the server answered 250 after DATA, with the
    /// time of that answer.
    #[tracing::instrument(skip_all, fields(server = %self.server))]
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<Millis, SmtpError> {
        let envelope =
            lettre::address::Envelope::new(Some(parse_address(from)?), vec![parse_address(to)?])
                .map_err(|e| SmtpError::Build(e.to_string()))?;
        self.transport
            .send_raw(&envelope, raw)
            .await
            .map_err(|source| SmtpError::Send {
                server: self.server.clone(),
                source,
            })?;
        Ok(now_millis())
    }

    /// The `host:port` this sender talks to.
    pub fn server(&self) -> &str {
        &self.server
    }
}
