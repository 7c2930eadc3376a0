//! Zendesk anonymous requests: `POST {base}/api/v2/requests.json` with
//! `{"request": {"requester": {"name", "email"}, "subject", "comment": {"body"}}}`, no
//! authentication (the account must allow anonymous requests). Zendesk answers 201 with
//! `request.id`; agents' replies reach the requester as notification emails whose subject
//! carries `[Request #ID]` (or a form the target's `rules.ticket-ref` describes).

use serde_json::json;

use crate::channels::http::{HttpClient, Request};
use crate::channels::{ApiOutcome, ProbeText};
use crate::config::TargetChannel;

/// Creates the anonymous request.
pub async fn create_request(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
) -> ApiOutcome {
    let base = channel
        .base_url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    let url = format!("{base}/api/v2/requests.json");
    let req = Request::new("zendesk create request", "POST", &url).json(json!({
        "request": {
            "requester": {"name": probe.persona_name, "email": probe.persona_email},
            "subject": probe.subject,
            "comment": {"body": probe.body},
        }
    }));
    let resp = match http.send_expect(&req, &[]).await {
        Ok(r) => r,
        Err(e) => {
            return ApiOutcome::Failed {
                retryable: e.reached_nobody(),
                error: crate::send::error_chain(&e),
            };
        }
    };
    let id = resp
        .json()
        .map_err(|e| crate::send::error_chain(&e))
        .and_then(|doc| {
            let id = doc.pointer("/request/id").cloned().unwrap_or_default();
            match id {
                serde_json::Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                serde_json::Value::String(s)
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Ok(s)
                }
                other => Err(crate::send::error_chain(
                    &resp.shape(format!("`request.id` is {other}, not a request number")),
                )),
            }
        });
    match id {
        Ok(id) => ApiOutcome::Accepted {
            sent_at: resp.at,
            source: format!("zendesk:{base}/requests/{id}"),
            refs: vec![format!("request:{id}")],
            session: None,
            warning: None,
        },
        Err(error) => ApiOutcome::Unconfirmed {
            error: format!("Zendesk answered HTTP {} but {error}", resp.status),
            refs: Vec::new(),
            session: None,
        },
    }
}
