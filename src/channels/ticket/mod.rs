//! Helpdesk ticket drivers: open a ticket as the persona and report what the helpdesk
//! answered. Replies to anonymous tickets arrive by email, so the drivers return the
//! helpdesk's reference (`request:12345`, `ticket:4711`) for the email matcher to find them.
//!
//! One file per vendor (`zendesk`, `zammad`); `driver = "http"` runs declarative steps.

pub mod zammad;
pub mod zendesk;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::channels::http::HttpClient;
use crate::channels::http::steps::{self, Vars};
use crate::channels::{ApiOutcome, ProbeText};
use crate::config::TargetChannel;

/// Opens a ticket for `probe` over `channel`.
pub async fn send(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> ApiOutcome {
    match channel.driver.as_deref() {
        Some("zendesk") => zendesk::create_request(channel, probe, http).await,
        Some("zammad") => zammad::submit_form(channel, probe, http).await,
        Some("http") => run_steps(channel, probe, http, secrets, timeout).await,
        other => ApiOutcome::Failed {
            error: format!("unknown ticket driver {other:?}"),
            retryable: false,
        },
    }
}

/// Runs a channel's send steps: the shared engine of `driver = "http"` for tickets and chats.
pub async fn run_steps(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
    secrets: &BTreeMap<String, String>,
    timeout: Duration,
) -> ApiOutcome {
    let mut vars = Vars::new(probe, channel, secrets);
    let out = steps::run(
        &channel.steps.send,
        http,
        &mut vars,
        &probe.target_id,
        timeout,
    )
    .await;
    let session = Some(serde_json::json!({ "captures": vars.captures() }));
    let source = format!(
        "http:{}",
        http.redact(channel.base_url.as_deref().unwrap_or(&probe.target_id))
    );
    match (out.accepted_at, out.error) {
        (Some(sent_at), error) => ApiOutcome::Accepted {
            sent_at,
            source,
            refs: out.refs,
            session,
            warning: error.map(|e| crate::send::error_chain(&e)),
        },
        (None, Some(e)) => {
            let error = crate::send::error_chain(&e);
            // A step before the acceptance that failed with a 2xx-but-unreadable answer may
            // have created something only if it was the acceptance itself.
            ApiOutcome::Failed {
                error,
                retryable: out.reached_nobody,
            }
        }
        (None, None) => ApiOutcome::Failed {
            error: "no step was the acceptance".into(),
            retryable: false,
        },
    }
}
