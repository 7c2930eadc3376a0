//! A Zammad-like web form: `POST /api/v1/form_config {"fingerprint"}` answers
//! `{"enabled": true, "endpoint", "token"}` (403 when the form is disabled), and
//! `POST /api/v1/form_submit` (multipart: name, email, title, body, fingerprint, token)
//! creates a ticket and answers `{"ticket": {"id", "number"}}`. Replies go out by email with
//! `[Ticket#NUMBER]` in the subject ([`Zammad::notification`]).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fault, Faults, Server};

/// A ticket the form created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormTicket {
    pub id: u64,
    pub number: String,
    pub name: String,
    pub email: String,
    pub title: String,
    pub body: String,
    pub fingerprint: String,
}

struct Inner {
    faults: Faults,
    tickets: Mutex<Vec<FormTicket>>,
    enabled: Mutex<bool>,
    base: Mutex<String>,
}

/// The fake; dropping it stops the server.
pub struct Zammad {
    inner: Arc<Inner>,
    server: Server,
}

/// Route names for faults.
pub const CONFIG: &str = "POST /api/v1/form_config";
pub const SUBMIT: &str = "POST /api/v1/form_submit";
const TOKEN: &str = "zammad-form-token-7f3a";

impl Zammad {
    /// Starts the fake (TLS when `tls` gives cert and key PEM paths).
    pub async fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> Zammad {
        let inner = Arc::new(Inner {
            faults: Faults::default(),
            tickets: Mutex::default(),
            enabled: Mutex::new(true),
            base: Mutex::default(),
        });
        let router = Router::new()
            .route("/api/v1/form_config", post(config))
            .route("/api/v1/form_submit", post(submit))
            .with_state(Arc::clone(&inner));
        let server = Server::start(router, tls).await;
        *inner.base.lock().unwrap() = server.base_url();
        Zammad { inner, server }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Turns the form on or off (off: form_config answers 403).
    pub fn set_enabled(&self, on: bool) {
        *self.inner.enabled.lock().unwrap() = on;
    }

    /// Queues a fault for `route` ([`CONFIG`] or [`SUBMIT`]).
    pub fn fail_next(&self, route: &str, fault: Fault) {
        self.inner.faults.push(route, fault);
    }

    pub fn hits(&self, route: &str) -> usize {
        self.inner.faults.hits(route)
    }

    pub fn tickets(&self) -> Vec<FormTicket> {
        self.inner.tickets.lock().unwrap().clone()
    }

    /// The email an agent's reply to ticket `number` produces.
    pub fn notification(&self, number: &str, to: &str, agent: &str, text: &str) -> Vec<u8> {
        format!(
            "From: {agent} via Support <support@zammad.localhost>\r\nTo: {to}\r\n\
             Subject: Re: your question [Ticket#{number}]\r\n\
             Message-ID: <zammad-{number}-reply@zammad.localhost>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        )
        .into_bytes()
    }
}

async fn config(State(inner): State<Arc<Inner>>, body: String) -> Response {
    if let Some(fault) = inner.faults.take(CONFIG)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    if !*inner.enabled.lock().unwrap() {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "Not authorized"})),
        )
            .into_response();
    }
    let fingerprint = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        v.get("fingerprint")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if fingerprint.is_none_or(|f| f.len() < 8) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "Need fingerprint param in url"})),
        )
            .into_response();
    }
    let base = inner.base.lock().unwrap().clone();
    axum::Json(json!({
        "enabled": true,
        "endpoint": format!("{base}/api/v1/form_submit"),
        "token": TOKEN,
    }))
    .into_response()
}

async fn submit(State(inner): State<Arc<Inner>>, mut form: Multipart) -> Response {
    if let Some(fault) = inner.faults.take(SUBMIT)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    let mut fields = std::collections::HashMap::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or("").to_owned();
        let value = field.text().await.unwrap_or_default();
        fields.insert(name, value);
    }
    if fields.get("token").map(String::as_str) != Some(TOKEN) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "Authorization failed"})),
        )
            .into_response();
    }
    let mut errors = serde_json::Map::new();
    for key in ["name", "email", "title", "body"] {
        if fields.get(key).is_none_or(|v| v.trim().is_empty()) {
            errors.insert(key.into(), Value::from("required"));
        }
    }
    if !errors.is_empty() {
        return axum::Json(json!({ "errors": errors })).into_response();
    }
    let mut tickets = inner.tickets.lock().unwrap();
    let id = 40 + tickets.len() as u64;
    let number = format!("{}", 31_001 + tickets.len() as u64);
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    tickets.push(FormTicket {
        id,
        number: number.clone(),
        name: get("name"),
        email: get("email"),
        title: get("title"),
        body: get("body"),
        fingerprint: get("fingerprint"),
    });
    axum::Json(json!({"ticket": {"id": id, "number": number}})).into_response()
}
