//! Vendor-like support desks on 127.0.0.1: HTTP (and websocket) servers that answer like the
//! customer-side APIs deskprobe drives (Zendesk requests, Zammad's web form, LiveChat's
//! Customer Chat API v3.5), scriptable from tests and the demo: agent replies after a delay,
//! a bot greeting then a human, 429 with Retry-After, 500s, garbage JSON, a websocket that
//! drops, a disabled form.
//!
//! Each server runs on its own port, plaintext (`http://127.0.0.1:PORT`) or TLS with the
//! sandbox's throw-away CA (`https://localhost:PORT`). Faults are queued per route and used
//! once each, in order, so a test says exactly which request fails.

pub mod livechat;
pub mod zammad;
pub mod zendesk;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// A fault a route answers with once, instead of its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with a small JSON error body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimit { retry_after: u64 },
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with JSON of an unexpected shape.
    WrongShape,
    /// Wait this long before the normal answer.
    Delay(Duration),
}

/// Faults queued per route (`"POST /api/v2/requests.json"`, `"start_chat"`).
#[derive(Debug, Default)]
pub struct Faults {
    queued: Mutex<HashMap<String, VecDeque<Fault>>>,
    hits: Mutex<HashMap<String, usize>>,
}

impl Faults {
    /// Queues `fault` for the next request to `route`.
    pub fn push(&self, route: &str, fault: Fault) {
        self.queued
            .lock()
            .unwrap()
            .entry(route.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Counts a request to `route` and takes its next fault, if any.
    pub fn take(&self, route: &str) -> Option<Fault> {
        *self
            .hits
            .lock()
            .unwrap()
            .entry(route.to_owned())
            .or_default() += 1;
        self.queued.lock().unwrap().get_mut(route)?.pop_front()
    }

    /// How many requests `route` got.
    pub fn hits(&self, route: &str) -> usize {
        self.hits.lock().unwrap().get(route).copied().unwrap_or(0)
    }

    /// The answer of a fault (a delay answers nothing: `None`, after waiting).
    pub async fn answer(fault: Fault) -> Option<Response> {
        Some(match fault {
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (
                    status,
                    [("content-type", "application/json")],
                    format!(r#"{{"error":"injected {code}"}}"#),
                )
                    .into_response()
            }
            Fault::RateLimit { retry_after } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("content-type", "application/json")],
                    r#"{"error":"TooManyRequests"}"#,
                )
                    .into_response();
                r.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from_str(&retry_after.to_string()).unwrap(),
                );
                r
            }
            Fault::Garbage => (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"request\": {\"id\": 12\u{0}<html>oops",
            )
                .into_response(),
            Fault::WrongShape => (
                StatusCode::OK,
                [("content-type", "application/json")],
                r#"{"unexpected": [1, 2, 3], "id": {"nested": true}}"#,
            )
                .into_response(),
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                return None;
            }
        })
    }
}

/// A running HTTP server; dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

impl Server {
    /// Serves `router` on a free port of 127.0.0.1, with TLS when `tls` gives the server's
    /// certificate and key (PEM files, e.g. [`crate::tls::Pki`]'s).
    pub async fn start(router: Router, tls: Option<(&Path, &Path)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind vendor server");
        let addr = listener.local_addr().expect("vendor server address");
        let handle = match tls {
            None => tokio::spawn(async move {
                axum::serve(listener, router).await.ok();
            }),
            Some((cert, key)) => {
                let acceptor = acceptor(cert, key);
                let listener = TlsListener { listener, acceptor };
                tokio::spawn(async move {
                    axum::serve(listener, router).await.ok();
                })
            }
        };
        Server {
            addr,
            tls: tls.is_some(),
            handle,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}", self.addr.port())
        }
    }
}

fn acceptor(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    crate::tls::install_crypto_provider();
    let certs = CertificateDer::pem_file_iter(cert)
        .expect("read server cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse server cert");
    let key = PrivateKeyDer::from_pem_file(key).expect("read server key");
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server TLS config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

struct TlsListener {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            // A client that fails the handshake (e.g. one that does not trust the CA) is
            // dropped; the next one is served.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An RFC 3339 UTC timestamp with microseconds, as LiveChat writes them.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_micros() as i64)
}

/// Microseconds since the epoch as `2026-11-02T03:00:00.123456Z`.
pub fn rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{frac:06}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_micros() {
        assert_eq!(
            super::rfc3339(1_793_588_400_512_000),
            "2026-11-02T03:00:00.512000Z"
        );
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000000Z");
    }
}
