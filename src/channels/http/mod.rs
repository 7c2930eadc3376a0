//! HTTP and websocket plumbing shared by the ticket and chat drivers and the declarative steps:
//! a reqwest client per probe (rustls, the channel's `ca-file` or the platform roots, a cookie
//! jar per persona), 429 answers honoured with their `Retry-After`, and every request and
//! response kept as an [`Exchange`] with secrets redacted, for the evidence store.
//!
//! Errors say whether the remote surely took nothing ([`HttpError::reached_nobody`]): a
//! connection that failed, a 4xx answer, or a 429 whose wait is too long. A timeout, a 5xx or
//! an unreadable 2xx may have created something and is never retried. This module must not
//! touch SQLite or decide what an answer means.

pub mod spec;
pub mod steps;
pub mod ws;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::model::{Millis, now_millis, rfc3339};

/// Longest `Retry-After` wait honoured inside one send; a longer one fails the step.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How often one request is retried after 429 answers.
pub const MAX_429_RETRIES: u32 = 3;
/// Most bytes of a body kept in evidence and quoted in errors.
const MAX_BODY_EVIDENCE: usize = 256 * 1024;

/// Errors of one HTTP or websocket exchange. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{what}: cannot connect to `{url}`: {detail}")]
    Connect {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{what}: `{url}` did not answer within {secs} s")]
    Timeout {
        what: String,
        url: String,
        secs: u64,
    },
    #[error("{what}: `{url}` failed: {detail}")]
    Transport {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{what}: `{url}` answered HTTP {status}{}", snippet_suffix(body))]
    Status {
        what: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{what}: `{url}` kept answering 429 Too Many Requests (Retry-After {retry_after:?})")]
    RateLimited {
        what: String,
        url: String,
        retry_after: Option<Duration>,
    },
    #[error(
        "{what}: `{url}` answered HTTP {status} with a body that is not JSON ({detail}){}",
        snippet_suffix(body)
    )]
    NotJson {
        what: String,
        url: String,
        status: u16,
        detail: String,
        body: String,
    },
    #[error("{what}: unexpected answer from `{url}`: {detail}")]
    Shape {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{what}: websocket `{url}`: {detail}")]
    Websocket {
        what: String,
        url: String,
        detail: String,
    },
    #[error("{0}")]
    Other(String),
}

fn snippet_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", snippet(body))
    }
}

/// The start of a body, on one line, for error messages.
pub fn snippet(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if body.chars().count() > 200 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

impl HttpError {
    /// Whether the remote surely created nothing, so a later attempt cannot duplicate a probe.
    pub fn reached_nobody(&self) -> bool {
        match self {
            HttpError::Tls(_) | HttpError::Client(_) | HttpError::Connect { .. } => true,
            HttpError::RateLimited { .. } => true,
            HttpError::Status { status, .. } => (400..500).contains(status),
            _ => false,
        }
    }
}

/// One request and its answer (or failure), as kept in evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// When the request started.
    pub at: Millis,
    /// The step or API action (`start_chat`, `create request`, a step name).
    pub step: String,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub elapsed_ms: u64,
    /// The exchange as text (request line, headers, body, then the answer), redacted.
    pub transcript: String,
}

/// Redacts secrets from text: each known secret value, and the values of credential headers.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Adds a value that must never appear in evidence or logs.
    pub fn add(&mut self, secret: &str) {
        // Very short values would redact ordinary text; no real token is that short.
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by `***`.
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// Header names whose values are credentials.
fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || n.contains("token")
        || n.contains("secret")
}

/// A request body.
#[derive(Debug, Clone)]
pub enum ReqBody {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Multipart(Vec<(String, String)>),
    Text(String),
}

/// A request about to be sent.
#[derive(Debug, Clone)]
pub struct Request {
    /// What it is for, in messages (`zendesk create request`).
    pub what: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: ReqBody,
}

impl Request {
    /// A request without headers or body.
    pub fn new(what: impl Into<String>, method: &str, url: impl Into<String>) -> Request {
        Request {
            what: what.into(),
            method: method.to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: ReqBody::None,
        }
    }

    /// With a JSON body.
    pub fn json(mut self, body: Value) -> Request {
        self.body = ReqBody::Json(body);
        self
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub what: String,
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the answer's head arrived.
    pub at: Millis,
}

impl Response {
    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; an error that names the request and quotes the body otherwise.
    pub fn json(&self) -> Result<Value, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| HttpError::NotJson {
            what: self.what.clone(),
            url: self.url.clone(),
            status: self.status,
            detail: e.to_string(),
            body: self.text(),
        })
    }

    /// A shape error about this answer.
    pub fn shape(&self, detail: impl Into<String>) -> HttpError {
        HttpError::Shape {
            what: self.what.clone(),
            url: self.url.clone(),
            detail: detail.into(),
        }
    }
}

/// Cookie jars by persona id, for the life of the process.
static JARS: LazyLock<Mutex<HashMap<String, Arc<reqwest::cookie::Jar>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn jar(persona: &str) -> Arc<reqwest::cookie::Jar> {
    let mut jars = JARS.lock().unwrap_or_else(|p| p.into_inner());
    Arc::clone(jars.entry(persona.to_owned()).or_default())
}

/// An HTTP client for one probe: its TLS roots, its persona's cookie jar, its timeout, its
/// redactor and its evidence log.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    pub redactor: Arc<Mutex<Redactor>>,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl HttpClient {
    /// A client trusting `ca_file` (or the platform roots), with `persona`'s cookie jar;
    /// each request may take up to `timeout`.
    pub fn new(
        ca_file: Option<&Path>,
        persona: &str,
        timeout: Duration,
    ) -> Result<HttpClient, HttpError> {
        let tls = crate::channels::tls::client_config(ca_file)
            .map_err(|e| HttpError::Tls(e.to_string()))?;
        let mut http_tls = (*tls).clone();
        http_tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(http_tls)
            .cookie_provider(jar(persona))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(30)))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("deskprobe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Client(crate::send::error_chain(&e)))?;
        Ok(HttpClient {
            client,
            tls,
            timeout,
            redactor: Arc::new(Mutex::new(Redactor::default())),
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The TLS configuration (for websockets).
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.tls)
    }

    /// Registers a secret value to redact.
    pub fn add_secret(&self, secret: &str) {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(secret);
    }

    /// Redacts `text`.
    pub fn redact(&self, text: &str) -> String {
        self.redactor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(text)
    }

    /// Takes the exchanges logged so far, redacted with every secret known by now (a token
    /// learnt from an answer is redacted from that answer too).
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        let taken = std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()));
        taken
            .into_iter()
            .map(|mut ex| {
                ex.url = self.redact(&ex.url);
                ex.transcript = self.redact(&ex.transcript);
                ex
            })
            .collect()
    }

    /// Logs an exchange that is not an HTTP request (a websocket frame).
    pub fn log_exchange(&self, step: &str, method: &str, url: &str, transcript: &str) {
        let ex = Exchange {
            at: now_millis(),
            step: step.to_owned(),
            method: method.to_owned(),
            url: self.redact(url),
            status: None,
            elapsed_ms: 0,
            transcript: self.redact(transcript),
        };
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(ex);
    }

    /// Sends `req`, waiting out 429 answers whose `Retry-After` is at most
    /// [`MAX_RETRY_AFTER`] (up to [`MAX_429_RETRIES`] times). Any status is returned as a
    /// response except a final 429; the caller checks the status.
    pub async fn send(&self, req: &Request) -> Result<Response, HttpError> {
        let mut attempt = 0;
        loop {
            let resp = self.send_once(req).await?;
            if resp.status != 429 {
                return Ok(resp);
            }
            let wait = retry_after(&resp.headers);
            attempt += 1;
            match wait {
                Some(w) if w <= MAX_RETRY_AFTER && attempt <= MAX_429_RETRIES => {
                    tracing::info!(what = %req.what, wait = ?w, "429 Too Many Requests: waiting as told by Retry-After");
                    tokio::time::sleep(w).await;
                }
                None if attempt <= MAX_429_RETRIES => {
                    // No Retry-After: back off a little, 1 s then 2 s then 4 s.
                    tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
                }
                _ => {
                    return Err(HttpError::RateLimited {
                        what: req.what.clone(),
                        url: self.redact(&req.url),
                        retry_after: wait,
                    });
                }
            }
        }
    }

    /// Sends `req` and checks that the status is 2xx (or one of `expect` when given).
    pub async fn send_expect(&self, req: &Request, expect: &[u16]) -> Result<Response, HttpError> {
        let resp = self.send(req).await?;
        let ok = if expect.is_empty() {
            (200..300).contains(&resp.status)
        } else {
            expect.contains(&resp.status)
        };
        if ok {
            Ok(resp)
        } else {
            Err(HttpError::Status {
                what: req.what.clone(),
                url: self.redact(&req.url),
                status: resp.status,
                body: self.redact(&resp.text()),
            })
        }
    }

    async fn send_once(&self, req: &Request) -> Result<Response, HttpError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| HttpError::Other(format!("invalid HTTP method `{}`", req.method)))?;
        let mut builder = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let body_text = match &req.body {
            ReqBody::None => String::new(),
            ReqBody::Json(v) => {
                builder = builder.json(v);
                serde_json::to_string_pretty(v).unwrap_or_default()
            }
            ReqBody::Form(pairs) => {
                builder = builder.form(pairs);
                serde_urlencoded_pairs(pairs)
            }
            ReqBody::Multipart(pairs) => {
                let mut form = reqwest::multipart::Form::new();
                for (k, v) in pairs {
                    form = form.text(k.clone(), v.clone());
                }
                builder = builder.multipart(form);
                pairs
                    .iter()
                    .map(|(k, v)| format!("--part {k}\n{v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            ReqBody::Text(t) => {
                builder = builder.body(t.clone());
                t.clone()
            }
        };
        let at = now_millis();
        let started = Instant::now();
        let mut transcript = format!("{} {}\n", req.method, req.url);
        for (k, v) in &req.headers {
            let v = if is_credential_header(k) { "***" } else { v };
            transcript.push_str(&format!("{k}: {v}\n"));
        }
        transcript.push('\n');
        transcript.push_str(&truncate(&body_text));
        transcript.push_str("\n\n");
        let result = builder.send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let err = self.classify(req, &e);
                transcript.push_str(&format!(
                    "-- no answer ({}): {err}\n",
                    rfc3339(now_millis())
                ));
                self.push(req, at, None, started, transcript);
                return Err(err);
            }
        };
        let head_at = now_millis();
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match resp.bytes().await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                let err = self.classify(req, &e);
                transcript.push_str(&format!("-- HTTP {status}, body lost: {err}\n"));
                self.push(req, at, Some(status), started, transcript);
                return Err(err);
            }
        };
        transcript.push_str(&format!("-- HTTP {status} at {}\n", rfc3339(head_at)));
        for (k, v) in &headers {
            let v = if is_credential_header(k) { "***" } else { v };
            transcript.push_str(&format!("{k}: {v}\n"));
        }
        transcript.push('\n');
        transcript.push_str(&truncate(&String::from_utf8_lossy(&body)));
        transcript.push('\n');
        self.push(req, at, Some(status), started, transcript);
        Ok(Response {
            what: req.what.clone(),
            url: self.redact(&req.url),
            status,
            headers,
            body,
            at: head_at,
        })
    }

    fn push(
        &self,
        req: &Request,
        at: Millis,
        status: Option<u16>,
        started: Instant,
        transcript: String,
    ) {
        let ex = Exchange {
            at,
            step: req.what.clone(),
            method: req.method.clone(),
            url: self.redact(&req.url),
            status,
            elapsed_ms: started.elapsed().as_millis() as u64,
            transcript: self.redact(&transcript),
        };
        self.log.lock().unwrap_or_else(|p| p.into_inner()).push(ex);
    }

    fn classify(&self, req: &Request, e: &reqwest::Error) -> HttpError {
        let what = req.what.clone();
        let url = self.redact(&req.url);
        let detail = self.redact(&crate::send::error_chain(e));
        if e.is_timeout() {
            HttpError::Timeout {
                what,
                url,
                secs: self.timeout.as_secs(),
            }
        } else if e.is_connect() {
            HttpError::Connect { what, url, detail }
        } else {
            HttpError::Transport { what, url, detail }
        }
    }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_BODY_EVIDENCE {
        return text.to_owned();
    }
    let mut end = MAX_BODY_EVIDENCE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… {} more bytes not kept]",
        &text[..end],
        text.len() - end
    )
}

fn serde_urlencoded_pairs(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `Retry-After` as a duration: delay-seconds, or an HTTP date (then the time until it).
pub fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim())?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at.as_millisecond() - now_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// Parses a vendor timestamp: RFC 3339, or epoch seconds / milliseconds as a number.
pub fn vendor_time(v: &Value) -> Option<Millis> {
    match v {
        Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond())
            .or_else(|| s.parse::<f64>().ok().and_then(epoch)),
        Value::Number(n) => n.as_f64().and_then(epoch),
        _ => None,
    }
}

fn epoch(n: f64) -> Option<Millis> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    // Below 1e11 it is seconds (until the year 5138), else milliseconds.
    Some(if n < 1e11 {
        (n * 1000.0) as i64
    } else {
        n as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_replaces_longest_first() {
        let mut r = Redactor::default();
        r.add("abc");
        r.add("secret-token");
        r.add("secret-token-long");
        assert_eq!(
            r.apply("a secret-token-long and secret-token, abc"),
            "a *** and ***, abc"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(retry_after(&h("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h("soon")), None);
        assert_eq!(retry_after(&[]), None);
    }

    #[test]
    fn vendor_times() {
        use serde_json::json;
        assert_eq!(
            vendor_time(&json!("2026-11-02T03:00:00.512000Z")),
            Some(1_793_588_400_512)
        );
        assert_eq!(vendor_time(&json!(1_793_588_400)), Some(1_793_588_400_000));
        assert_eq!(
            vendor_time(&json!(1_793_588_400_512_i64)),
            Some(1_793_588_400_512)
        );
        assert_eq!(vendor_time(&json!("yesterday")), None);
        assert_eq!(vendor_time(&json!(null)), None);
    }

    #[test]
    fn errors_say_whether_anything_was_reached() {
        let status = |s| HttpError::Status {
            what: "x".into(),
            url: "u".into(),
            status: s,
            body: String::new(),
        };
        assert!(status(403).reached_nobody());
        assert!(!status(500).reached_nobody());
        assert!(
            !HttpError::Timeout {
                what: "x".into(),
                url: "u".into(),
                secs: 1
            }
            .reached_nobody()
        );
    }
}
