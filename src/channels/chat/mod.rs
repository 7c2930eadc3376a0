//! Live-chat drivers: open a chat as the persona with the script's first message, read what
//! the support side writes (bot and human messages, the announced queue), and close the chat
//! politely. `livechat` speaks LiveChat's Customer Chat API (v3.5); `driver = "http"` runs
//! declarative steps (send steps open the chat, collect steps read it, close steps end it).

pub mod livechat;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::channels::http::steps::{self, Vars};
use crate::channels::http::{HttpClient, HttpError};
use crate::channels::{AgentMessage, ApiOutcome, ProbeText};
use crate::config::TargetChannel;

/// The queue a chat waits in, as the vendor announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queue {
    /// Position in the queue (1 = next).
    pub position: Option<i64>,
    /// Announced wait in seconds.
    pub wait_s: Option<i64>,
}

/// What one look at an open chat found.
#[derive(Debug, Clone, Default)]
pub struct ChatState {
    /// Support-side messages, old and new (the store keeps each once).
    pub messages: Vec<AgentMessage>,
    /// The announced queue, if the chat is queued.
    pub queue: Option<Queue>,
    /// False once the chat was closed (by either side).
    pub active: bool,
}

/// Opens a chat for `probe` and sends its first message.
pub async fn start(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> ApiOutcome {
    match channel.driver.as_deref() {
        Some("livechat") => livechat::start_chat(channel, probe, http).await,
        Some("http") => {
            crate::channels::ticket::run_steps(channel, probe, http, secrets, timeout).await
        }
        other => ApiOutcome::Failed {
            error: format!("unknown chat driver {other:?}"),
            retryable: false,
        },
    }
}

/// Reads an open chat.
pub async fn poll(
    channel: &TargetChannel,
    probe: &ProbeText,
    session: &Value,
    http: &HttpClient,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<ChatState, HttpError> {
    match channel.driver.as_deref() {
        Some("livechat") => livechat::poll(channel, session, http).await,
        _ => {
            let (out, _) = run_phase(
                &channel.steps.collect,
                channel,
                probe,
                session,
                http,
                secrets,
                timeout,
            )
            .await;
            if let Some(e) = out.error {
                return Err(e);
            }
            Ok(ChatState {
                messages: out.messages,
                queue: None,
                active: true,
            })
        }
    }
}

/// A chat that could not be closed.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CloseError {
    /// The goodbye message went out before the failure.
    pub goodbye_sent: bool,
    #[source]
    pub error: HttpError,
}

/// Sends `message` (if given) and closes the chat.
pub async fn close(
    channel: &TargetChannel,
    probe: &ProbeText,
    session: &Value,
    http: &HttpClient,
    message: Option<&str>,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<(), CloseError> {
    match channel.driver.as_deref() {
        Some("livechat") => livechat::close(channel, session, http, message).await,
        _ => {
            let (out, _) = run_phase(
                &channel.steps.close,
                channel,
                probe,
                session,
                http,
                secrets,
                timeout,
            )
            .await;
            out.error.map_or(Ok(()), |error| {
                Err(CloseError {
                    goodbye_sent: false,
                    error,
                })
            })
        }
    }
}

/// Runs collect or close steps with the captures kept from the send.
pub async fn run_phase(
    list: &[crate::channels::http::spec::Step],
    channel: &TargetChannel,
    probe: &ProbeText,
    session: &Value,
    http: &HttpClient,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> (steps::RunOutcome, Value) {
    let mut vars = Vars::new(probe, channel, secrets);
    if let Some(c) = session.get("captures") {
        vars.restore(c);
        if let Some(map) = c.as_object() {
            for (name, v) in map {
                if steps::is_secret_name(name) {
                    http.add_secret(&crate::channels::http::spec::text_of(v));
                }
            }
        }
    }
    let out = steps::run(list, http, &mut vars, &probe.target_id, timeout).await;
    (out, vars.captures())
}
