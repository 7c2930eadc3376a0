//! LiveChat's Customer Chat API v3.5, as a customer:
//! - token: `POST {token-url}` `{"grant_type": "cookie", "response_type": "token",
//!   "organization_id", "client_id"}` → `{"access_token", "entity_id", …}`;
//! - web API: `POST {base}/v3.5/customer/action/{action}?organization_id=ORG` with
//!   `Authorization: Bearer TOKEN`: `start_chat` (with the first message) → `{"chat_id",
//!   "thread_id", "event_ids"}`, `get_chat` → `{"id", "thread": {"id", "active", "events",
//!   "queue"}, "users": [{"id", "type": "customer" | "agent", "name"}]}`, `list_threads` →
//!   `{"threads": [...]}`, `send_event`, `deactivate_chat`;
//! - RTM: `wss://{base}/v3.5/customer/rtm/ws?organization_id=ORG`, `login` with the token,
//!   then pushes (`incoming_event`, `incoming_chat`, `chat_deactivated`,
//!   `queue_positions_updated`); `ping` keeps it open.
//!
//! LiveChat does not mark bots in the customer API (bots are agents), so the target's
//! `rules.bot` decides; a user whose `type` is `bot` is taken at its word.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::{ChatState, CloseError, Queue};
use crate::channels::http::ws::{self, WsConn};
use crate::channels::http::{HttpClient, HttpError, Request, vendor_time};
use crate::channels::{AgentMessage, ApiOutcome, ProbeText};
use crate::config::TargetChannel;

/// LiveChat's API when `base-url` is not given.
pub const DEFAULT_API: &str = "https://api.livechatinc.com";
/// LiveChat's token endpoint when neither `token-url` nor `base-url` is given.
pub const DEFAULT_TOKEN_URL: &str = "https://accounts.livechat.com/v2/customer/token";

fn api(channel: &TargetChannel) -> String {
    channel
        .base_url
        .as_deref()
        .unwrap_or(DEFAULT_API)
        .trim_end_matches('/')
        .to_owned()
}

fn org(channel: &TargetChannel) -> String {
    channel.organization_id.clone().unwrap_or_default()
}

fn action_url(channel: &TargetChannel, action: &str) -> String {
    let org: String = url::form_urlencoded::byte_serialize(org(channel).as_bytes()).collect();
    format!(
        "{}/v3.5/customer/action/{action}?organization_id={org}",
        api(channel)
    )
}

fn failed(e: &HttpError) -> ApiOutcome {
    ApiOutcome::Failed {
        retryable: e.reached_nobody(),
        error: crate::send::error_chain(e),
    }
}

fn token_of(session: &Value) -> Result<String, HttpError> {
    session
        .get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HttpError::Other("the chat session has no access token".into()))
}

fn chat_id_of(session: &Value) -> Result<String, HttpError> {
    session
        .get("chat_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| HttpError::Other("the chat session has no chat id".into()))
}

/// Gets a customer token, then starts the chat with the probe's text as its first message.
pub async fn start_chat(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
) -> ApiOutcome {
    let token_url = channel
        .token_url
        .clone()
        .unwrap_or_else(|| match &channel.base_url {
            Some(b) => format!("{}/v2/customer/token", b.trim_end_matches('/')),
            None => DEFAULT_TOKEN_URL.to_owned(),
        });
    let mut body = json!({
        "grant_type": "cookie",
        "response_type": "token",
        "organization_id": org(channel),
    });
    if let Some(c) = &channel.client_id {
        body["client_id"] = Value::from(c.clone());
    }
    let req = Request::new("livechat customer token", "POST", token_url).json(body);
    let resp = match http.send_expect(&req, &[]).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let doc = match resp.json() {
        Ok(d) => d,
        // No chat exists yet: nothing reached a human.
        Err(e) => {
            return ApiOutcome::Failed {
                error: crate::send::error_chain(&e),
                retryable: true,
            };
        }
    };
    let (Some(token), customer) = (
        doc.get("access_token").and_then(Value::as_str),
        doc.get("entity_id").and_then(Value::as_str).unwrap_or(""),
    ) else {
        return ApiOutcome::Failed {
            error: crate::send::error_chain(&resp.shape("no `access_token` in the token answer")),
            retryable: true,
        };
    };
    http.add_secret(token);
    let text = if probe.subject.trim().is_empty() {
        probe.body.clone()
    } else {
        format!("{}\n\n{}", probe.subject, probe.body)
    };
    let req = Request::new(
        "livechat start_chat",
        "POST",
        action_url(channel, "start_chat"),
    )
    .header("Authorization", format!("Bearer {token}"))
    .json(json!({
        "chat": {
            "thread": {
                "events": [{"type": "message", "text": text, "visibility": "all"}]
            }
        }
    }));
    let resp = match http.send_expect(&req, &[]).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let mut session = json!({
        "access_token": token,
        "customer_id": customer,
    });
    let ids = resp.json().ok().and_then(|d| {
        Some((
            d.get("chat_id")?.as_str()?.to_owned(),
            d.get("thread_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ))
    });
    match ids {
        Some((chat_id, thread_id)) if !chat_id.is_empty() => {
            session["chat_id"] = Value::from(chat_id.clone());
            session["thread_id"] = thread_id.map_or(Value::Null, Value::from);
            ApiOutcome::Accepted {
                sent_at: resp.at,
                source: format!("livechat:{}/{chat_id}", org(channel)),
                refs: vec![format!("chat:{chat_id}")],
                session: Some(session),
                warning: None,
            }
        }
        _ => ApiOutcome::Unconfirmed {
            error: format!(
                "livechat start_chat answered HTTP {} without a readable `chat_id`: {}",
                resp.status,
                crate::channels::http::snippet(&http.redact(&resp.text()))
            ),
            refs: Vec::new(),
            session: None,
        },
    }
}

async fn action(
    channel: &TargetChannel,
    session: &Value,
    http: &HttpClient,
    name: &str,
    body: Value,
) -> Result<Value, HttpError> {
    let token = token_of(session)?;
    http.add_secret(&token);
    let req = Request::new(
        format!("livechat {name}"),
        "POST",
        action_url(channel, name),
    )
    .header("Authorization", format!("Bearer {token}"))
    .json(body);
    let resp = http.send_expect(&req, &[]).await?;
    resp.json()
}

/// Reads the chat: `get_chat` for the users and the current thread, `list_threads` for every
/// thread's events.
pub async fn poll(
    channel: &TargetChannel,
    session: &Value,
    http: &HttpClient,
) -> Result<ChatState, HttpError> {
    let chat_id = chat_id_of(session)?;
    let chat = action(
        channel,
        session,
        http,
        "get_chat",
        json!({ "chat_id": chat_id }),
    )
    .await?;
    let threads = action(
        channel,
        session,
        http,
        "list_threads",
        json!({ "chat_id": chat_id }),
    )
    .await?;
    let customer = session
        .get("customer_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut users: HashMap<String, (String, Option<String>)> = HashMap::new();
    if let Some(list) = chat.get("users").and_then(Value::as_array) {
        for u in list {
            if let Some(id) = u.get("id").and_then(Value::as_str) {
                let kind = u
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let name = u.get("name").and_then(Value::as_str).map(str::to_owned);
                users.insert(id.to_owned(), (kind, name));
            }
        }
    }
    let current = chat.get("thread").cloned().unwrap_or(Value::Null);
    let mut all_threads: Vec<Value> = threads
        .get("threads")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if all_threads.is_empty() && current.is_object() {
        all_threads.push(current.clone());
    }
    if !chat.is_object() || (!current.is_object() && all_threads.is_empty()) {
        return Err(HttpError::Shape {
            what: "livechat get_chat".into(),
            url: action_url(channel, "get_chat"),
            detail: format!(
                "no chat thread in the answer: {}",
                crate::channels::http::snippet(&chat.to_string())
            ),
        });
    }
    let mut messages = Vec::new();
    for thread in &all_threads {
        let Some(events) = thread.get("events").and_then(Value::as_array) else {
            continue;
        };
        for ev in events {
            if let Some(m) = agent_message(&chat_id, ev, customer, &users) {
                messages.push(m);
            }
        }
    }
    let queue_of = |t: &Value| {
        t.get("queue").filter(|q| q.is_object()).map(|q| Queue {
            position: q.get("position").and_then(Value::as_i64),
            wait_s: q.get("wait_time").and_then(Value::as_i64),
        })
    };
    let queue = queue_of(&current).or_else(|| all_threads.iter().rev().find_map(queue_of));
    let active = current
        .get("active")
        .and_then(Value::as_bool)
        .or_else(|| {
            all_threads
                .last()
                .and_then(|t| t.get("active"))
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    Ok(ChatState {
        messages,
        queue,
        active,
    })
}

/// One chat event as an agent message, when it is a message by someone other than us.
fn agent_message(
    chat_id: &str,
    ev: &Value,
    customer: &str,
    users: &HashMap<String, (String, Option<String>)>,
) -> Option<AgentMessage> {
    let kind = ev.get("type").and_then(Value::as_str)?;
    if !matches!(kind, "message" | "rich_message" | "file") {
        return None;
    }
    let author = ev.get("author_id").and_then(Value::as_str).unwrap_or("");
    let (utype, name) = users
        .get(author)
        .cloned()
        .unwrap_or_else(|| (String::new(), None));
    if author == customer || utype == "customer" {
        return None;
    }
    let id = ev.get("id").and_then(Value::as_str)?;
    let Some(at) = ev.get("created_at").and_then(vendor_time) else {
        tracing::warn!(
            chat = chat_id,
            event = id,
            "a chat event without a readable created_at is skipped"
        );
        return None;
    };
    let text = ev
        .get("text")
        .or_else(|| ev.get("title"))
        .or_else(|| ev.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Some(AgentMessage {
        source: format!("livechat:{chat_id}/{id}"),
        occurred_at: at,
        text,
        author: name,
        vendor_bot: utype == "bot",
        raw: ev.to_string().into_bytes(),
    })
}

/// Says goodbye (when `message` is given) and deactivates the chat. On failure, says whether
/// the goodbye went out already (so a retry does not say it twice).
pub async fn close(
    channel: &TargetChannel,
    session: &Value,
    http: &HttpClient,
    message: Option<&str>,
) -> Result<(), CloseError> {
    let chat_id = chat_id_of(session).map_err(|error| CloseError {
        goodbye_sent: false,
        error,
    })?;
    if let Some(text) = message {
        action(
            channel,
            session,
            http,
            "send_event",
            json!({"chat_id": chat_id, "event": {"type": "message", "text": text, "visibility": "all"}}),
        )
        .await
        .map_err(|error| CloseError {
            goodbye_sent: false,
            error,
        })?;
    }
    action(
        channel,
        session,
        http,
        "deactivate_chat",
        json!({ "id": chat_id }),
    )
    .await
    .map_err(|error| CloseError {
        goodbye_sent: message.is_some(),
        error,
    })?;
    Ok(())
}

/// A logged-in RTM websocket.
pub struct Rtm {
    conn: WsConn,
}

/// Opens the RTM websocket and logs in with the session's token.
pub async fn rtm(
    channel: &TargetChannel,
    session: &Value,
    http: &HttpClient,
) -> Result<Rtm, HttpError> {
    let token = token_of(session)?;
    http.add_secret(&token);
    let base = api(channel);
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base
    };
    let org: String = url::form_urlencoded::byte_serialize(org(channel).as_bytes()).collect();
    let url = format!("{ws_base}/v3.5/customer/rtm/ws?organization_id={org}");
    let mut conn = ws::connect(http, "livechat rtm", &url, &[]).await?;
    conn.send_json(&json!({
        "action": "login",
        "request_id": "deskprobe-login",
        "payload": {"token": format!("Bearer {token}")}
    }))
    .await?;
    let deadline = tokio::time::Instant::now() + http.timeout();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = conn.recv_json(left).await? else {
            return Err(HttpError::Websocket {
                what: "livechat rtm".into(),
                url,
                detail: "closed before the login answer".into(),
            });
        };
        if frame.get("request_id").and_then(Value::as_str) == Some("deskprobe-login") {
            if frame.get("success").and_then(Value::as_bool) == Some(true) {
                return Ok(Rtm { conn });
            }
            return Err(HttpError::Websocket {
                what: "livechat rtm".into(),
                url,
                detail: format!(
                    "login refused: {}",
                    crate::channels::http::snippet(&http.redact(&frame.to_string()))
                ),
            });
        }
    }
}

impl Rtm {
    /// The next push (`{"action": …, "payload": …}`) within `timeout`; `Ok(None)` when nothing
    /// came (a ping was sent to keep the socket open). An error when the socket dropped.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Value>, HttpError> {
        match self.conn.recv_json(timeout).await {
            Ok(Some(frame)) => Ok(Some(frame)),
            Ok(None) => Err(HttpError::Other(
                "livechat rtm: the server closed the socket".into(),
            )),
            Err(HttpError::Websocket { detail, .. }) if detail.starts_with("no message within") => {
                self.conn
                    .send_json(&json!({"action": "ping", "request_id": "deskprobe-ping"}))
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Closes the socket.
    pub async fn close(self) {
        self.conn.close().await;
    }
}
