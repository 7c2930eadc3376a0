//! A LiveChat-like Customer Chat API v3.5: `POST /v2/customer/token` (cookie grant) gives a
//! customer token; `POST /v3.5/customer/action/{start_chat, get_chat, list_threads,
//! send_event, deactivate_chat}?organization_id=ORG` with `Authorization: Bearer TOKEN`; and
//! the RTM websocket `GET /v3.5/customer/rtm/ws?organization_id=ORG` (`login`, `ping`, then
//! pushes `incoming_event`, `chat_deactivated`, `queue_positions_updated`).
//!
//! What the support side does in each new chat is a [`ChatPlan`]: an announced queue, then
//! messages after delays, by a bot (listed as an `agent`, as LiveChat lists bots, unless told
//! to say `bot`) or a human agent. Every event carries `created_at` in LiveChat's format.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{Fault, Faults, Server, now_rfc3339};

/// One support-side message of a plan.
#[derive(Debug, Clone)]
pub struct PlanStep {
    /// Delay after the chat started.
    pub after: Duration,
    pub user_id: String,
    pub name: String,
    /// `agent` (LiveChat's type for humans and bots alike) or `bot`.
    pub user_type: String,
    pub text: String,
}

impl PlanStep {
    /// A bot message; LiveChat lists the bot as an `agent`, so only its name tells.
    pub fn bot(after: Duration, name: &str, text: &str) -> PlanStep {
        PlanStep {
            after,
            user_id: "bot@livechat.localhost".into(),
            name: name.into(),
            user_type: "agent".into(),
            text: text.into(),
        }
    }

    /// A human agent's message.
    pub fn agent(after: Duration, name: &str, text: &str) -> PlanStep {
        PlanStep {
            after,
            user_id: format!(
                "{}@livechat.localhost",
                name.to_lowercase().replace(' ', ".")
            ),
            name: name.into(),
            user_type: "agent".into(),
            text: text.into(),
        }
    }
}

/// What the support side does in every new chat.
#[derive(Debug, Clone, Default)]
pub struct ChatPlan {
    /// Queue position and announced wait (seconds), until the first agent message.
    pub queue: Option<(i64, i64)>,
    pub steps: Vec<PlanStep>,
}

/// A chat as the fake holds it.
#[derive(Debug, Clone)]
pub struct ChatRecord {
    pub id: String,
    pub thread_id: String,
    pub customer_id: String,
    pub active: bool,
    pub events: Vec<Value>,
    pub users: Vec<Value>,
    pub queue: Option<Value>,
}

impl ChatRecord {
    /// Texts the customer wrote, in order.
    pub fn customer_messages(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["author_id"] == self.customer_id.as_str())
            .filter_map(|e| e["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn thread(&self) -> Value {
        let mut t = json!({
            "id": self.thread_id,
            "active": self.active,
            "events": self.events,
            "created_at": self.events.first().map(|e| e["created_at"].clone()).unwrap_or(Value::Null),
        });
        if let Some(q) = &self.queue {
            t["queue"] = q.clone();
        }
        t
    }
}

struct Inner {
    org: String,
    faults: Faults,
    plan: Mutex<ChatPlan>,
    tokens: Mutex<HashMap<String, String>>,
    chats: Mutex<HashMap<String, ChatRecord>>,
    counter: Mutex<u64>,
    pushes: broadcast::Sender<(String, Value)>,
    drops: broadcast::Sender<()>,
    logins: Mutex<usize>,
}

/// The fake; dropping it stops the server.
pub struct LiveChat {
    inner: Arc<Inner>,
    server: Server,
}

/// Route names for faults: `token`, `rtm`, and each action name (`start_chat`, …).
pub const TOKEN: &str = "token";
pub const RTM: &str = "rtm";

impl LiveChat {
    /// Starts the fake for organization `org` (TLS when `tls` gives cert and key PEM paths).
    pub async fn start(org: &str, tls: Option<(&std::path::Path, &std::path::Path)>) -> LiveChat {
        let inner = Arc::new(Inner {
            org: org.to_owned(),
            faults: Faults::default(),
            plan: Mutex::default(),
            tokens: Mutex::default(),
            chats: Mutex::default(),
            counter: Mutex::new(0),
            pushes: broadcast::channel(256).0,
            drops: broadcast::channel(16).0,
            logins: Mutex::new(0),
        });
        let router = Router::new()
            .route("/v2/customer/token", post(token))
            .route("/v3.5/customer/action/{action}", post(action))
            .route("/v3.5/customer/rtm/ws", any(rtm))
            .with_state(Arc::clone(&inner));
        LiveChat {
            inner,
            server: Server::start(router, tls).await,
        }
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// What the support side does in chats started from now on.
    pub fn set_plan(&self, plan: ChatPlan) {
        *self.inner.plan.lock().unwrap() = plan;
    }

    /// Numbers tokens, customers, chats and threads from `n` on, so two fakes serving one
    /// client (the demo's two exchanges) never hand out the same ids, as LiveChat never does.
    pub fn number_ids_from(&self, n: u64) {
        *self.inner.counter.lock().unwrap() = n;
    }

    /// Queues a fault for `route` ([`TOKEN`], [`RTM`] or an action name).
    pub fn fail_next(&self, route: &str, fault: Fault) {
        self.inner.faults.push(route, fault);
    }

    pub fn hits(&self, route: &str) -> usize {
        self.inner.faults.hits(route)
    }

    /// Every chat, oldest first.
    pub fn chats(&self) -> Vec<ChatRecord> {
        let mut all: Vec<ChatRecord> = self.inner.chats.lock().unwrap().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Closes every open RTM websocket now (a connection drop mid-chat).
    pub fn drop_websockets(&self) {
        let _ = self.inner.drops.send(());
    }

    /// How many RTM logins succeeded.
    pub fn rtm_logins(&self) -> usize {
        *self.inner.logins.lock().unwrap()
    }
}

fn err(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn next_id(inner: &Inner, prefix: &str) -> String {
    let mut n = inner.counter.lock().unwrap();
    *n += 1;
    format!("{prefix}{:08}", *n)
}

async fn token(State(inner): State<Arc<Inner>>, body: String) -> Response {
    if let Some(fault) = inner.faults.take(TOKEN)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if doc["grant_type"] != "cookie" || doc["organization_id"] != inner.org.as_str() {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown organization or grant",
        );
    }
    let token = next_id(&inner, "dal:tok-");
    let customer = next_id(&inner, "cust-");
    inner
        .tokens
        .lock()
        .unwrap()
        .insert(token.clone(), customer.clone());
    axum::Json(json!({
        "access_token": token,
        "entity_id": customer,
        "expires_in": 28800,
        "token_type": "Bearer",
        "organization_id": inner.org,
    }))
    .into_response()
}

fn customer_of(inner: &Inner, headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ")?;
    inner.tokens.lock().unwrap().get(token).cloned()
}

async fn action(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(fault) = inner.faults.take(&name)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    if q.get("organization_id") != Some(&inner.org) {
        return err(
            StatusCode::BAD_REQUEST,
            "validation",
            "organization_id is invalid",
        );
    }
    let Some(customer) = customer_of(&inner, &headers) else {
        return err(
            StatusCode::UNAUTHORIZED,
            "authentication",
            "Invalid access token",
        );
    };
    let Ok(doc) = serde_json::from_str::<Value>(&body) else {
        return err(StatusCode::BAD_REQUEST, "validation", "Invalid JSON");
    };
    match name.as_str() {
        "start_chat" => start_chat(&inner, &customer, &doc),
        "get_chat" | "list_threads" | "send_event" | "deactivate_chat" => {
            let id = doc
                .get(if name == "deactivate_chat" {
                    "id"
                } else {
                    "chat_id"
                })
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut chats = inner.chats.lock().unwrap();
            let Some(chat) = chats.get_mut(&id).filter(|c| c.customer_id == customer) else {
                return err(StatusCode::NOT_FOUND, "not_found", "Chat not found");
            };
            match name.as_str() {
                "get_chat" => axum::Json(json!({
                    "id": chat.id,
                    "thread": chat.thread(),
                    "users": chat.users,
                    "access": {},
                    "properties": {},
                }))
                .into_response(),
                "list_threads" => axum::Json(json!({
                    "threads": [chat.thread()],
                    "found_threads": 1,
                }))
                .into_response(),
                "send_event" => {
                    if !chat.active {
                        return err(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "chat_inactive",
                            "Chat is inactive",
                        );
                    }
                    let eid = format!("{}_{}", chat.thread_id, chat.events.len() + 1);
                    let text = doc
                        .pointer("/event/text")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    chat.events.push(json!({
                        "id": eid, "type": "message", "text": text, "author_id": customer,
                        "created_at": now_rfc3339(), "visibility": "all",
                    }));
                    axum::Json(json!({ "event_id": eid })).into_response()
                }
                _ => {
                    if !chat.active {
                        return err(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "chat_inactive",
                            "Chat is inactive",
                        );
                    }
                    chat.active = false;
                    let _ = inner.pushes.send((
                        customer.clone(),
                        json!({"action": "chat_deactivated", "type": "push", "payload": {"chat_id": chat.id, "thread_id": chat.thread_id}}),
                    ));
                    axum::Json(json!({})).into_response()
                }
            }
        }
        _ => err(StatusCode::NOT_FOUND, "not_found", "Unknown action"),
    }
}

fn start_chat(inner: &Arc<Inner>, customer: &str, doc: &Value) -> Response {
    let Some(text) = doc
        .pointer("/chat/thread/events/0/text")
        .and_then(Value::as_str)
    else {
        return err(
            StatusCode::BAD_REQUEST,
            "validation",
            "chat.thread.events is required",
        );
    };
    let chat_id = next_id(inner, "PJ");
    let thread_id = next_id(inner, "QT");
    let plan = inner.plan.lock().unwrap().clone();
    let first = format!("{thread_id}_1");
    let record = ChatRecord {
        id: chat_id.clone(),
        thread_id: thread_id.clone(),
        customer_id: customer.to_owned(),
        active: true,
        events: vec![json!({
            "id": first, "type": "message", "text": text, "author_id": customer,
            "created_at": now_rfc3339(), "visibility": "all",
        })],
        users: vec![json!({"id": customer, "type": "customer", "present": true})],
        queue: plan
            .queue
            .map(|(position, wait)| json!({"position": position, "wait_time": wait, "queued_at": now_rfc3339()})),
    };
    inner.chats.lock().unwrap().insert(chat_id.clone(), record);
    let task_inner = Arc::clone(inner);
    let (cid, tid, cust) = (chat_id.clone(), thread_id.clone(), customer.to_owned());
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for step in plan.steps {
            tokio::time::sleep_until(started + step.after).await;
            let push = {
                let mut chats = task_inner.chats.lock().unwrap();
                let Some(chat) = chats.get_mut(&cid) else {
                    return;
                };
                if !chat.active {
                    return;
                }
                if !chat.users.iter().any(|u| u["id"] == step.user_id.as_str()) {
                    chat.users.push(json!({"id": step.user_id, "type": step.user_type, "name": step.name, "present": true}));
                }
                chat.queue = None;
                let event = json!({
                    "id": format!("{tid}_{}", chat.events.len() + 1),
                    "type": "message", "text": step.text, "author_id": step.user_id,
                    "created_at": now_rfc3339(), "visibility": "all",
                });
                chat.events.push(event.clone());
                json!({"action": "incoming_event", "type": "push", "payload": {"chat_id": cid, "thread_id": tid, "event": event}})
            };
            let _ = task_inner.pushes.send((cust.clone(), push));
        }
    });
    axum::Json(json!({"chat_id": chat_id, "thread_id": thread_id, "event_ids": [first]}))
        .into_response()
}

async fn rtm(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(fault) = inner.faults.take(RTM)
        && let Some(r) = Faults::answer(fault).await
    {
        return r;
    }
    if q.get("organization_id") != Some(&inner.org) {
        return err(
            StatusCode::BAD_REQUEST,
            "validation",
            "organization_id is invalid",
        );
    }
    ws.on_upgrade(move |socket| rtm_session(inner, socket))
}

async fn rtm_session(inner: Arc<Inner>, mut socket: WebSocket) {
    let mut pushes = inner.pushes.subscribe();
    let mut drops = inner.drops.subscribe();
    let mut customer: Option<String> = None;
    loop {
        tokio::select! {
            _ = drops.recv() => return,
            push = pushes.recv() => {
                let Ok((to, push)) = push else { continue };
                if customer.as_deref() == Some(to.as_str())
                    && socket.send(Message::text(push.to_string())).await.is_err()
                {
                    return;
                }
            }
            frame = socket.recv() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    match frame {
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                        _ => return,
                    }
                };
                let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let request_id = doc["request_id"].clone();
                let reply = match doc["action"].as_str() {
                    Some("login") => {
                        let token = doc.pointer("/payload/token").and_then(Value::as_str).unwrap_or("");
                        let token = token.strip_prefix("Bearer ").unwrap_or(token);
                        match inner.tokens.lock().unwrap().get(token).cloned() {
                            Some(c) => {
                                customer = Some(c);
                                *inner.logins.lock().unwrap() += 1;
                                json!({"request_id": request_id, "action": "login", "type": "response", "success": true, "payload": {}})
                            }
                            None => json!({"request_id": request_id, "action": "login", "type": "response", "success": false, "payload": {"error": {"type": "authentication", "message": "Invalid access token"}}}),
                        }
                    }
                    Some("ping") => json!({"request_id": request_id, "action": "ping", "type": "response", "success": true, "payload": {}}),
                    _ => json!({"request_id": request_id, "type": "response", "success": false, "payload": {"error": {"type": "not_found"}}}),
                };
                if socket.send(Message::text(reply.to_string())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A fault that makes the next `route` answer garbage.
pub fn garbage() -> Fault {
    Fault::Garbage
}
