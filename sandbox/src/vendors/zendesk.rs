//! A Zendesk-like requests API: `POST /api/v2/requests.json` creates an anonymous request
//! (`{"request": {"requester": {"name", "email"}, "subject", "comment": {"body"}}}` → 201
//! `{"request": {"id", …}}`), and [`Zendesk::notification`] writes the email Zendesk would
//! send the requester when an agent answers (`[Request #ID]` in the subject), for the test
//! to deliver into the mailbox.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fault, Faults, Server};

/// One request as the fake stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedRequest {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub subject: String,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    faults: Faults,
    requests: Mutex<Vec<CreatedRequest>>,
    anonymous_disabled: Mutex<bool>,
    first_id: Mutex<Option<u64>>,
}

/// The fake; dropping it stops the server.
pub struct Zendesk {
    inner: Arc<Inner>,
    server: Server,
}

/// The route name faults are queued under.
pub const CREATE: &str = "POST /api/v2/requests.json";

impl Zendesk {
    /// Starts the fake on 127.0.0.1 (TLS when `tls` gives cert and key PEM paths).
    pub async fn start(tls: Option<(&std::path::Path, &std::path::Path)>) -> Zendesk {
        let inner = Arc::new(Inner::default());
        let router = Router::new()
            .route("/api/v2/requests.json", post(create))
            .with_state(Arc::clone(&inner));
        Zendesk {
            inner,
            server: Server::start(router, tls).await,
        }
    }

    /// The base URL (`base-url` of the channel).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Queues a fault for the next request creation.
    pub fn fail_next(&self, fault: Fault) {
        self.inner.faults.push(CREATE, fault);
    }

    /// How many creation requests arrived (faulty ones included).
    pub fn hits(&self) -> usize {
        self.inner.faults.hits(CREATE)
    }

    /// The requests created so far.
    pub fn requests(&self) -> Vec<CreatedRequest> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Makes the account refuse anonymous requests (403), as Zendesk does when the setting
    /// is off.
    pub fn disable_anonymous_requests(&self, off: bool) {
        *self.inner.anonymous_disabled.lock().unwrap() = off;
    }

    /// Numbers requests from `first` on (default 12345), so two fakes in one mailbox (the
    /// demo's two exchanges) never hand out the same `[Request #ID]`.
    pub fn number_requests_from(&self, first: u64) {
        *self.inner.first_id.lock().unwrap() = Some(first);
    }

    /// The notification email an agent's public reply to request `id` produces.
    pub fn notification(&self, id: u64, to: &str, agent: &str, text: &str) -> Vec<u8> {
        format!(
            "From: {agent} <support@zendesk.localhost>\r\nTo: {to}\r\n\
             Subject: [Request #{id}] Re: your request\r\n\
             Message-ID: <zd-{id}-{n}@zendesk.localhost>\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n\
             ##- Please type your reply above this line -##\r\n\r\n{agent} (Support)\r\n\r\n{text}\r\n",
            n = self.inner.faults.hits(CREATE)
        )
        .into_bytes()
    }
}

async fn create(State(inner): State<Arc<Inner>>, body: String) -> Response {
    if let Some(fault) = inner.faults.take(CREATE)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    if *inner.anonymous_disabled.lock().unwrap() {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "Forbidden", "description": "You do not have access to this page."})),
        )
            .into_response();
    }
    let Ok(doc) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "Unprocessable Entity"})),
        )
            .into_response();
    };
    let text = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_owned);
    let (Some(name), Some(email), Some(subject), Some(body)) = (
        text("/request/requester/name"),
        text("/request/requester/email"),
        text("/request/subject"),
        text("/request/comment/body"),
    ) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(
                json!({"error": "RecordInvalid", "description": "Record validation errors"}),
            ),
        )
            .into_response();
    };
    let mut requests = inner.requests.lock().unwrap();
    let first = inner.first_id.lock().unwrap().unwrap_or(12_345);
    let id = first + requests.len() as u64;
    requests.push(CreatedRequest {
        id,
        name,
        email,
        subject: subject.clone(),
        body: body.clone(),
    });
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "request": {
                "id": id,
                "url": format!("/api/v2/requests/{id}.json"),
                "subject": subject,
                "description": body,
                "status": "new",
                "created_at": super::now_rfc3339(),
            }
        })),
    )
        .into_response()
}
