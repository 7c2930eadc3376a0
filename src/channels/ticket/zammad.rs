//! Zammad's web form: `POST {base}/api/v1/form_config {"fingerprint"}` answers
//! `{"enabled", "endpoint", "token"}` (or 403 when the form is off); then the form is posted
//! to `endpoint` with `name, email, title, body, fingerprint, token` and Zammad answers
//! `{"ticket": {"id", "number"}}`. Replies arrive by email with `[Ticket#NUMBER]` in the
//! subject.

use serde_json::{Value, json};

use crate::channels::http::{HttpClient, ReqBody, Request};
use crate::channels::{ApiOutcome, ProbeText};
use crate::config::TargetChannel;

/// Fetches the form config and submits the form.
pub async fn submit_form(
    channel: &TargetChannel,
    probe: &ProbeText,
    http: &HttpClient,
) -> ApiOutcome {
    let failed = |e: &crate::channels::http::HttpError| ApiOutcome::Failed {
        retryable: e.reached_nobody(),
        error: crate::send::error_chain(e),
    };
    let base = channel
        .base_url
        .as_deref()
        .unwrap_or("")
        .trim_end_matches('/');
    // The fingerprint identifies the browser to Zammad's form throttling; the probe token is
    // unique per probe and carries no personal data.
    let fingerprint = probe.token.clone();
    let req = Request::new(
        "zammad form_config",
        "POST",
        format!("{base}/api/v1/form_config"),
    )
    .json(json!({ "fingerprint": fingerprint }));
    let resp = match http.send_expect(&req, &[]).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let config = match resp.json() {
        Ok(v) => v,
        Err(e) => return failed(&e),
    };
    if config.get("enabled") != Some(&Value::Bool(true)) {
        return ApiOutcome::Failed {
            error: format!(
                "zammad form_config: the form of `{base}` is disabled (enabled = {})",
                config.get("enabled").unwrap_or(&Value::Null)
            ),
            retryable: true,
        };
    }
    let (Some(endpoint), Some(form_token)) = (
        config.get("endpoint").and_then(Value::as_str),
        config.get("token").and_then(Value::as_str),
    ) else {
        return failed(&resp.shape("`endpoint` and `token` must be strings"));
    };
    http.add_secret(form_token);
    let endpoint = match resolve(base, endpoint) {
        Ok(u) => u,
        Err(error) => {
            return ApiOutcome::Failed {
                error: format!("zammad form_config: {error}"),
                retryable: true,
            };
        }
    };
    let mut submit = Request::new("zammad form_submit", "POST", endpoint);
    submit.body = ReqBody::Multipart(vec![
        ("name".into(), probe.persona_name.clone()),
        ("email".into(), probe.persona_email.clone()),
        ("title".into(), probe.subject.clone()),
        ("body".into(), probe.body.clone()),
        ("fingerprint".into(), fingerprint),
        ("token".into(), form_token.to_owned()),
    ]);
    let resp = match http.send_expect(&submit, &[]).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    let number = resp.json().ok().and_then(|doc| {
        let n = doc.pointer("/ticket/number")?;
        let n = match n {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(n)
    });
    match number {
        Some(n) => ApiOutcome::Accepted {
            sent_at: resp.at,
            source: format!("zammad:{base}/ticket/{n}"),
            refs: vec![format!("ticket:{n}")],
            session: None,
            warning: None,
        },
        None => ApiOutcome::Unconfirmed {
            error: format!(
                "zammad form_submit answered HTTP {} without a readable `ticket.number`: {}",
                resp.status,
                crate::channels::http::snippet(&resp.text())
            ),
            refs: Vec::new(),
            session: None,
        },
    }
}

/// The form endpoint as an absolute URL; plaintext only to loopback hosts.
fn resolve(base: &str, endpoint: &str) -> Result<String, String> {
    let base_url = url::Url::parse(&format!("{base}/")).map_err(|e| e.to_string())?;
    let url = base_url
        .join(endpoint)
        .map_err(|e| format!("endpoint `{endpoint}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(url.to_string())
            } else {
                Err(format!(
                    "endpoint `{url}` is plaintext http to a host that is not loopback; refused"
                ))
            }
        }
        other => Err(format!("endpoint `{url}` has scheme `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoints_resolve_and_plaintext_stays_local() {
        assert_eq!(
            super::resolve("https://help.example", "/api/v1/form_submit").unwrap(),
            "https://help.example/api/v1/form_submit"
        );
        assert!(super::resolve("http://127.0.0.1:80", "/x").is_ok());
        assert!(super::resolve("https://help.example", "http://evil.example/x").is_err());
    }
}
