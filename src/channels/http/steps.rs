//! Runs declarative steps (`driver = "http"`): HTTP requests and websocket frames whose every
//! string is a template over the probe (persona, target, token, subject, body …), the channel
//! (`base_url`, `secrets.NAME`) and the values captured by earlier steps.
//!
//! The same template names are known to `deskprobe check` ([`check_template`]), which renders
//! each template with sample values, so a step that refers to a capture that no earlier step
//! makes is a config error, not a failed probe.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use super::spec::{Action, Body, Step, text_of};
use super::ws::{self, WsConn};
use super::{HttpClient, HttpError, ReqBody, Request};
use crate::channels::{AgentMessage, ProbeText};
use crate::config::TargetChannel;
use crate::model::Millis;

/// Template names deskprobe provides to every step; captures may not reuse them.
pub const BASE_NAMES: &[&str] = &[
    "persona",
    "target",
    "token",
    "probe_id",
    "subject",
    "body",
    "language",
    "base_url",
    "organization_id",
    "secrets",
    "closing_message",
];

/// The value every name has when `check` renders a template.
pub const SAMPLE: &str = "SAMPLE";

fn sample_vars(known: &BTreeSet<String>, secrets: &BTreeSet<String>) -> Value {
    let mut map = serde_json::Map::new();
    for name in known {
        let v = match name.as_str() {
            "persona" => json!({"id": SAMPLE, "name": SAMPLE, "email": "sample@example.org"}),
            "target" => json!({"id": SAMPLE, "name": SAMPLE}),
            "secrets" => Value::Object(
                secrets
                    .iter()
                    .map(|s| (s.clone(), Value::from(SAMPLE)))
                    .collect(),
            ),
            _ => Value::from(SAMPLE),
        };
        map.insert(name.clone(), v);
    }
    Value::Object(map)
}

fn render_with(source: &str, vars: &Value) -> Result<String, minijinja::Error> {
    let env = crate::config::template_env();
    env.render_str(source, to_minijinja(vars))
}

/// A JSON value as a template value.
fn to_minijinja(v: &Value) -> minijinja::Value {
    use minijinja::Value as M;
    match v {
        Value::Null => M::from(()),
        Value::Bool(b) => M::from(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => M::from(i),
            (None, Some(f)) => M::from(f),
            _ => M::from(n.to_string()),
        },
        Value::String(s) => M::from(s.as_str()),
        Value::Array(a) => M::from(a.iter().map(to_minijinja).collect::<Vec<_>>()),
        Value::Object(m) => M::from_object(
            m.iter()
                .map(|(k, v)| (k.clone(), to_minijinja(v)))
                .collect::<BTreeMap<String, M>>(),
        ),
    }
}

fn template_message(e: &minijinja::Error) -> String {
    let mut message = format!("template error: {}", e.kind());
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    message
}

/// Renders `source` with sample values for the `known` names; the error says what is wrong
/// (an undefined name is "undefined value").
pub fn check_template(
    source: &str,
    known: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
) -> Result<(), String> {
    render_sample(source, known, secrets).map(|_| ())
}

/// `source` rendered with sample values.
pub fn render_sample(
    source: &str,
    known: &BTreeSet<String>,
    secrets: &BTreeSet<String>,
) -> Result<String, String> {
    render_with(source, &sample_vars(known, secrets)).map_err(|e| template_message(&e))
}

/// The values templates see while steps run.
#[derive(Debug, Clone)]
pub struct Vars {
    values: serde_json::Map<String, Value>,
}

impl Vars {
    /// The names every step sees, for one probe on one channel. `secrets` are the resolved
    /// values of the channel's secrets.
    pub fn new(
        probe: &ProbeText,
        channel: &TargetChannel,
        secrets: &BTreeMap<String, String>,
    ) -> Vars {
        let mut values = serde_json::Map::new();
        values.insert(
            "persona".into(),
            json!({"id": probe.persona_id, "name": probe.persona_name, "email": probe.persona_email}),
        );
        values.insert(
            "target".into(),
            json!({"id": probe.target_id, "name": probe.target_name}),
        );
        values.insert("token".into(), Value::from(probe.token.clone()));
        values.insert("probe_id".into(), Value::from(probe.probe_id.clone()));
        values.insert("subject".into(), Value::from(probe.subject.clone()));
        values.insert("body".into(), Value::from(probe.body.clone()));
        values.insert("language".into(), Value::from(probe.language.clone()));
        let base = channel.base_url.clone().unwrap_or_default();
        values.insert(
            "base_url".into(),
            Value::from(base.trim_end_matches('/').to_owned()),
        );
        values.insert(
            "organization_id".into(),
            Value::from(channel.organization_id.clone().unwrap_or_default()),
        );
        values.insert(
            "secrets".into(),
            Value::Object(
                secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                    .collect(),
            ),
        );
        values.insert(
            "closing_message".into(),
            Value::from(channel.closing_message.clone()),
        );
        Vars { values }
    }

    /// The captured values (everything but the base names), to keep between runs.
    pub fn captures(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .filter(|(k, _)| !BASE_NAMES.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    /// Restores captures kept by [`Vars::captures`].
    pub fn restore(&mut self, captures: &Value) {
        if let Value::Object(map) = captures {
            for (k, v) in map {
                if !BASE_NAMES.contains(&k.as_str()) {
                    self.values.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_owned(), value);
    }

    fn render(&self, step: &str, source: &str) -> Result<String, HttpError> {
        render_with(source, &Value::Object(self.values.clone()))
            .map_err(|e| HttpError::Other(format!("{step}: {}", template_message(&e))))
    }

    fn render_json(&self, step: &str, v: &Value) -> Result<Value, HttpError> {
        Ok(match v {
            Value::String(s) => Value::String(self.render(step, s)?),
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.render_json(step, x))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    out.insert(self.render(step, k)?, self.render_json(step, x)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }
}

/// What running a list of steps did.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// When the step marked `accepted` (or, if none is, the last HTTP step) succeeded.
    pub accepted_at: Option<Millis>,
    /// References learnt (`reference` templates).
    pub refs: Vec<String>,
    /// Agent messages read by `events`, with `source` = `http:TARGET/ID`.
    pub messages: Vec<AgentMessage>,
    /// The error that stopped the run, if one did.
    pub error: Option<HttpError>,
    /// Whether the failing step's remote surely created nothing.
    pub reached_nobody: bool,
}

/// Runs `steps` in order; stops at the first failure. `target` prefixes event sources.
pub async fn run(
    steps: &[Step],
    http: &HttpClient,
    vars: &mut Vars,
    target: &str,
    default_timeout: Duration,
) -> RunOutcome {
    let mut out = RunOutcome::default();
    let mut socket: Option<WsConn> = None;
    let acceptance = steps.iter().position(|s| s.accepted).or_else(|| {
        steps
            .iter()
            .rposition(|s| matches!(s.action, Action::Http { .. }))
    });
    for (i, step) in steps.iter().enumerate() {
        let result = run_step(step, http, vars, &mut socket, default_timeout).await;
        match result {
            Ok((answer, at)) => {
                if let Some(doc) = &answer {
                    if let Err(e) = capture(step, doc, vars, http) {
                        out.error = Some(e);
                        break;
                    }
                    if let Some(spec) = &step.events {
                        out.messages.extend(read_events(spec, doc, target));
                    }
                }
                if let Some(r) = &step.reference {
                    match vars.render(&step.name, r) {
                        Ok(r) if !r.trim().is_empty() => out.refs.push(r.trim().to_owned()),
                        Ok(_) => {}
                        Err(e) => {
                            out.error = Some(e);
                            break;
                        }
                    }
                }
                if Some(i) == acceptance {
                    out.accepted_at = Some(at);
                }
            }
            Err(e) => {
                out.reached_nobody = out.accepted_at.is_none() && e.reached_nobody();
                out.error = Some(e);
                break;
            }
        }
    }
    if let Some(s) = socket {
        s.close().await;
    }
    out
}

/// Runs one step; returns its JSON answer (if it has one) and when it completed.
async fn run_step(
    step: &Step,
    http: &HttpClient,
    vars: &Vars,
    socket: &mut Option<WsConn>,
    default_timeout: Duration,
) -> Result<(Option<Value>, Millis), HttpError> {
    let name = &step.name;
    match &step.action {
        Action::Http {
            method,
            url,
            headers,
            body,
        } => {
            let req = Request {
                what: name.clone(),
                method: method.clone(),
                url: vars.render(name, url)?,
                headers: headers
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), vars.render(name, v)?)))
                    .collect::<Result<_, HttpError>>()?,
                body: match body {
                    Body::None => ReqBody::None,
                    Body::Json(v) => ReqBody::Json(vars.render_json(name, v)?),
                    Body::Form(p) => ReqBody::Form(render_pairs(vars, name, p)?),
                    Body::Multipart(p) => ReqBody::Multipart(render_pairs(vars, name, p)?),
                    Body::Text(t) => ReqBody::Text(vars.render(name, t)?),
                },
            };
            let needs_json =
                !step.capture.is_empty() || step.events.is_some() || step.poll.is_some();
            let started = tokio::time::Instant::now();
            loop {
                let resp = http.send_expect(&req, &step.expect).await?;
                let doc = if needs_json {
                    Some(resp.json()?)
                } else {
                    resp.json().ok()
                };
                let Some(poll) = &step.poll else {
                    return Ok((doc, resp.at));
                };
                if doc.as_ref().is_some_and(|d| poll.until.holds(d)) {
                    return Ok((doc, resp.at));
                }
                if started.elapsed() + poll.interval > poll.timeout {
                    return Err(HttpError::Other(format!(
                        "{name}: `{}` did not hold within {} s of polling `{}`",
                        poll.until,
                        poll.timeout.as_secs(),
                        resp.url
                    )));
                }
                tokio::time::sleep(poll.interval).await;
            }
        }
        Action::WsConnect { url, headers } => {
            let url = vars.render(name, url)?;
            let headers = headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), vars.render(name, v)?)))
                .collect::<Result<Vec<_>, HttpError>>()?;
            if let Some(old) = socket.take() {
                old.close().await;
            }
            *socket = Some(ws::connect(http, name, &url, &headers).await?);
            Ok((None, crate::model::now_millis()))
        }
        Action::WsSend { message } => {
            let conn = socket
                .as_mut()
                .ok_or_else(|| HttpError::Other(format!("{name}: no websocket is open")))?;
            conn.send_json(&vars.render_json(name, message)?).await?;
            Ok((None, crate::model::now_millis()))
        }
        Action::WsReceive { until } => {
            let conn = socket
                .as_mut()
                .ok_or_else(|| HttpError::Other(format!("{name}: no websocket is open")))?;
            let timeout = step.timeout.unwrap_or(default_timeout);
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let frame = conn.recv_json(left).await?;
                let Some(doc) = frame else {
                    return Err(HttpError::Other(format!(
                        "{name}: the websocket closed before the expected message"
                    )));
                };
                if until.as_ref().is_none_or(|c| c.holds(&doc)) {
                    return Ok((Some(doc), crate::model::now_millis()));
                }
            }
        }
    }
}

fn render_pairs(
    vars: &Vars,
    step: &str,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>, HttpError> {
    pairs
        .iter()
        .map(|(k, v)| Ok((k.clone(), vars.render(step, v)?)))
        .collect()
}

/// Whether a capture holds a credential, by its name (`access_token`, `api_key`,
/// `session_secret`, `password`): such values are redacted from evidence and logs.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "secret", "password", "key"]
        .iter()
        .any(|s| n.ends_with(s))
}

fn capture(step: &Step, doc: &Value, vars: &mut Vars, http: &HttpClient) -> Result<(), HttpError> {
    for (name, pointer) in &step.capture {
        let value = pointer.get(doc).filter(|v| !v.is_null()).ok_or_else(|| {
            HttpError::Other(format!(
                "{}: capture `{name}`: `{pointer}` is not in the answer: {}",
                step.name,
                super::snippet(&doc.to_string())
            ))
        })?;
        if is_secret_name(name) {
            http.add_secret(&text_of(value));
        }
        vars.set(name, value.clone());
    }
    Ok(())
}

/// Agent and bot messages in `doc` as `spec` describes them; items without an id or a
/// readable time are skipped (and logged).
fn read_events(spec: &super::spec::EventSpec, doc: &Value, target: &str) -> Vec<AgentMessage> {
    let Some(Value::Array(items)) = spec.list.get(doc) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let from = spec.from.get(item).map(text_of).unwrap_or_default();
        let vendor_bot = spec.bot.as_deref() == Some(from.as_str());
        if from != spec.agent && !vendor_bot {
            continue;
        }
        let id = spec.id.get(item).map(text_of).filter(|s| !s.is_empty());
        let at = spec.at.get(item).and_then(super::vendor_time);
        let (Some(id), Some(at)) = (id, at) else {
            tracing::warn!(target, item = %super::snippet(&item.to_string()), "an event without a readable id or time is skipped");
            continue;
        };
        out.push(AgentMessage {
            source: format!("http:{target}/{id}"),
            occurred_at: at,
            text: spec.text.get(item).map(text_of).unwrap_or_default(),
            author: spec.author.as_ref().and_then(|p| p.get(item)).map(text_of),
            vendor_bot,
            raw: item.to_string().into_bytes(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_template_knows_captures_and_secrets() {
        let known: BTreeSet<String> = BASE_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["ticket_id".to_owned()])
            .collect();
        let secrets: BTreeSet<String> = ["api_key".to_owned()].into();
        assert!(check_template("{{ base_url }}/t/{{ ticket_id }}", &known, &secrets).is_ok());
        assert!(
            check_template(
                "{{ secrets.api_key }} {{ persona.email }}",
                &known,
                &secrets
            )
            .is_ok()
        );
        let e = check_template("{{ ticket_idd }}", &known, &secrets).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(check_template("{{ secrets.other }}", &known, &secrets).is_err());
        assert!(check_template("{{ persona.phone }}", &known, &secrets).is_err());
        assert!(check_template("{% if %}", &known, &secrets).is_err());
    }
}
