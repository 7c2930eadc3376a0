//! A websocket client (tokio-tungstenite over our own TCP/rustls stream, so it trusts exactly
//! what the HTTP client trusts) that speaks JSON text frames and logs every frame as evidence.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{HttpClient, HttpError};

/// Any byte stream the websocket can run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open websocket.
pub struct WsConn {
    stream: WebSocketStream<Box<dyn Io>>,
    url: String,
    what: String,
    http: HttpClient,
}

/// Opens `url` (`ws://` only to loopback, which the config checks; `wss://` with the client's
/// TLS roots), with extra request headers.
pub async fn connect(
    http: &HttpClient,
    what: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<WsConn, HttpError> {
    let shown = http.redact(url);
    let err = |detail: String| HttpError::Websocket {
        what: what.to_owned(),
        url: shown.clone(),
        detail,
    };
    let parsed = url::Url::parse(url).map_err(|e| err(format!("invalid URL: {e}")))?;
    let secure = match parsed.scheme() {
        "wss" => true,
        "ws" => false,
        other => return Err(err(format!("scheme `{other}` is not ws or wss"))),
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| err("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    let timeout = http.timeout();
    let tcp = tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| HttpError::Connect {
        what: what.to_owned(),
        url: shown.clone(),
        detail: "connect timed out".into(),
    })?
    .map_err(|e| HttpError::Connect {
        what: what.to_owned(),
        url: shown.clone(),
        detail: e.to_string(),
    })?;
    tcp.set_nodelay(true).ok();
    let io: Box<dyn Io> = if secure {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| err(format!("invalid server name: {e}")))?;
        let mut cfg = (*http.tls()).clone();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| HttpError::Connect {
                what: what.to_owned(),
                url: shown.clone(),
                detail: format!("TLS: {e}"),
            })?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let mut request = url.into_client_request().map_err(|e| err(e.to_string()))?;
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| err(format!("header `{k}`: {e}")))?;
        let value =
            http::HeaderValue::from_str(v).map_err(|e| err(format!("header `{k}`: {e}")))?;
        request.headers_mut().insert(name, value);
    }
    let (stream, resp) =
        tokio::time::timeout(timeout, tokio_tungstenite::client_async(request, io))
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| err(format!("handshake failed: {e}")))?;
    http.log_exchange(
        what,
        "WS-CONNECT",
        url,
        &format!(
            "GET {url} (websocket)\n-- HTTP {}\n",
            resp.status().as_u16()
        ),
    );
    Ok(WsConn {
        stream,
        url: url.to_owned(),
        what: what.to_owned(),
        http: http.clone(),
    })
}

impl WsConn {
    fn err(&self, detail: String) -> HttpError {
        HttpError::Websocket {
            what: self.what.clone(),
            url: self.http.redact(&self.url),
            detail,
        }
    }

    /// Sends one JSON text frame.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), HttpError> {
        let text = value.to_string();
        self.http
            .log_exchange(&self.what, "WS-SEND", &self.url, &text);
        self.stream
            .send(Message::text(text))
            .await
            .map_err(|e| self.err(format!("send failed: {e}")))
    }

    /// The next JSON text frame within `timeout`: `Ok(None)` when the server closed the
    /// socket, an error on a timeout, a broken connection or a frame that is not JSON.
    pub async fn recv_json(&mut self, timeout: Duration) -> Result<Option<Value>, HttpError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| self.err(format!("no message within {} s", timeout.as_secs())))?;
            let msg = match next {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.err(format!("connection lost: {e}"))),
                Some(Ok(m)) => m,
            };
            let text = match msg {
                Message::Text(t) => t.to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => return Ok(None),
                _ => continue,
            };
            self.http
                .log_exchange(&self.what, "WS-RECV", &self.url, &text);
            return serde_json::from_str(&text).map(Some).map_err(|e| {
                self.err(format!(
                    "a frame is not JSON ({e}): {}",
                    super::snippet(&self.http.redact(&text))
                ))
            });
        }
    }

    /// Closes the socket politely (errors ignored: it may be gone already).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.close(None)).await;
    }
}
