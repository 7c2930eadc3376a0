//! The declarative step language of `driver = "http"`, as plain data: what `config` validates
//! into and what [`super::steps`] runs. Pure: parsing pointers and conditions, and looking
//! values up in JSON, nothing else.
//!
//! Pointers are RFC 6901 JSON pointers (`/ticket/number`, `~1` for `/`, `~0` for `~`) with two
//! additions: a segment `[FIELD=VALUE]` selects the first element of an array whose `FIELD`
//! equals `VALUE` (compared as text, so `[id=42]` matches the number 42), and `-1` selects an
//! array's last element. A condition is a pointer that must lead to a present value (not null,
//! not `false`, not an empty string), or `POINTER == VALUE` / `POINTER != VALUE`.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// The steps of one channel, by phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps {
    /// Run once when the probe is sent; the step marked `accepted` is the acceptance.
    pub send: Vec<Step>,
    /// Run on every collect pass while the probe is open; their `events` become events.
    pub collect: Vec<Step>,
    /// Run once when a chat is closed (after the human answer or when its window ends).
    pub close: Vec<Step>,
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Name used in logs, errors and evidence (default `step N`).
    pub name: String,
    /// What it does.
    pub action: Action,
    /// Status codes that count as success; empty means any 2xx.
    pub expect: Vec<u16>,
    /// Values to keep: name → pointer into the JSON answer.
    pub capture: Vec<(String, Pointer)>,
    /// Repeat the request until a condition holds.
    pub poll: Option<Poll>,
    /// This step's success is the probe's acceptance by the remote (`sent_at`).
    pub accepted: bool,
    /// A helpdesk reference learnt for the probe (template), e.g. `request:{{ id }}`.
    pub reference: Option<String>,
    /// Turns an array in the answer into events.
    pub events: Option<EventSpec>,
    /// Longest wait for this step (a websocket receive), default the send timeout.
    pub timeout: Option<Duration>,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An HTTP request.
    Http {
        method: String,
        /// Template.
        url: String,
        /// Name → template.
        headers: Vec<(String, String)>,
        body: Body,
    },
    /// Opens the channel's websocket (one per run).
    WsConnect {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// Sends a text frame: JSON with templated strings.
    WsSend { message: Value },
    /// Waits for a text frame (JSON) that satisfies `until` (or any frame).
    WsReceive { until: Option<Cond> },
}

/// A request body; every string in it is a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Multipart(Vec<(String, String)>),
    Text(String),
}

/// `poll = { until, interval, timeout }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    pub until: Cond,
    pub interval: Duration,
    pub timeout: Duration,
}

/// How to read events out of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// The array of items.
    pub list: Pointer,
    /// Item → a stable id (makes each event stored once).
    pub id: Pointer,
    /// Item → the vendor's time (RFC 3339 or epoch seconds/milliseconds).
    pub at: Pointer,
    /// Item → the message text.
    pub text: Pointer,
    /// Item → the author's name (for bot rules), if any.
    pub author: Option<Pointer>,
    /// Item → who wrote it.
    pub from: Pointer,
    /// The `from` value of agent messages (human unless a bot rule fires).
    pub agent: String,
    /// The `from` value of bot messages, if the vendor says.
    pub bot: Option<String>,
}

/// One pointer segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// An object key or an array index.
    Key(String),
    /// The first array element whose field equals the value.
    Where { field: String, value: String },
}

/// A parsed pointer; `Display` gives it back as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segs: Vec<Seg>,
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pointer {
    /// Parses a pointer; the error is a user-facing reason.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                segs: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "`{text}` is not a JSON pointer (it must start with `/`, e.g. \"/ticket/id\")"
            ));
        };
        let mut segs = Vec::new();
        for raw in rest.split('/') {
            if let Some(inner) = raw.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| format!("`{text}`: `{raw}` lacks its closing `]`"))?;
                let (field, value) = inner
                    .split_once('=')
                    .ok_or_else(|| format!("`{text}`: `[{inner}]` must be `[FIELD=VALUE]`"))?;
                let field = field.trim();
                if field.is_empty() {
                    return Err(format!("`{text}`: `[{inner}]` has no field name"));
                }
                segs.push(Seg::Where {
                    field: field.to_owned(),
                    value: value.trim().to_owned(),
                });
                continue;
            }
            let mut key = String::new();
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => key.push('~'),
                        Some('1') => key.push('/'),
                        _ => return Err(format!("`{text}`: `~` must be followed by 0 or 1")),
                    }
                } else {
                    key.push(c);
                }
            }
            segs.push(Seg::Key(key));
        }
        Ok(Pointer {
            text: text.to_owned(),
            segs,
        })
    }

    /// The value the pointer leads to in `doc`, if any.
    pub fn get<'v>(&self, doc: &'v Value) -> Option<&'v Value> {
        let mut node = doc;
        for seg in &self.segs {
            node = match (seg, node) {
                (Seg::Key(k), Value::Object(map)) => map.get(k)?,
                (Seg::Key(k), Value::Array(items)) => {
                    if k == "-1" {
                        items.last()?
                    } else {
                        let i: usize =
                            k.parse().ok().filter(|_| k == "0" || !k.starts_with('0'))?;
                        items.get(i)?
                    }
                }
                (Seg::Where { field, value }, Value::Array(items)) => items
                    .iter()
                    .find(|item| item.get(field).is_some_and(|v| text_of(v) == *value))?,
                _ => return None,
            };
        }
        Some(node)
    }
}

/// A value as text: strings as they are, everything else as JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A condition on a JSON answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub pointer: Pointer,
    /// `Some((true, v))` for `== v`, `Some((false, v))` for `!= v`.
    pub compare: Option<(bool, String)>,
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.compare {
            None => write!(f, "{}", self.pointer),
            Some((true, v)) => write!(f, "{} == {v}", self.pointer),
            Some((false, v)) => write!(f, "{} != {v}", self.pointer),
        }
    }
}

impl Cond {
    /// Parses `POINTER`, `POINTER == VALUE` or `POINTER != VALUE`.
    pub fn parse(text: &str) -> Result<Cond, String> {
        let (pointer, compare) = if let Some((p, v)) = text.split_once("==") {
            (p, Some((true, v)))
        } else if let Some((p, v)) = text.split_once("!=") {
            (p, Some((false, v)))
        } else {
            (text, None)
        };
        let value = |v: &str| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned()
        };
        Ok(Cond {
            pointer: Pointer::parse(pointer.trim())?,
            compare: compare.map(|(eq, v)| (eq, value(v))),
        })
    }

    /// Whether `doc` satisfies the condition.
    pub fn holds(&self, doc: &Value) -> bool {
        let found = self.pointer.get(doc);
        match &self.compare {
            None => found.is_some_and(|v| {
                !(v.is_null() || *v == Value::Bool(false) || v.as_str() == Some(""))
            }),
            Some((true, want)) => found.is_some_and(|v| text_of(v) == *want),
            Some((false, want)) => found.is_none_or(|v| text_of(v) != *want),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_with_filters_and_last() {
        let doc = json!({
            "users": [{"id": "c1", "type": "customer"}, {"id": 7, "type": "agent", "name": "Ann"}],
            "a/b": {"~x": 1},
            "list": [1, 2, 3],
        });
        let get = |p: &str| Pointer::parse(p).unwrap().get(&doc).cloned();
        assert_eq!(get("/users/[type=agent]/name"), Some(json!("Ann")));
        assert_eq!(get("/users/[id=7]/type"), Some(json!("agent")));
        assert_eq!(get("/users/[type=bot]"), None);
        assert_eq!(get("/a~1b/~0x"), Some(json!(1)));
        assert_eq!(get("/list/-1"), Some(json!(3)));
        assert_eq!(get("/list/01"), None);
        assert_eq!(get("/list/9"), None);
        assert_eq!(get(""), Some(doc.clone()));
        for bad in ["users", "/x/[a]", "/x/[=1]", "/x/[a=1", "/a~2"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions() {
        let doc = json!({"enabled": true, "off": false, "status": "open", "n": 3});
        let holds = |c: &str| Cond::parse(c).unwrap().holds(&doc);
        assert!(holds("/enabled"));
        assert!(!holds("/off"));
        assert!(!holds("/missing"));
        assert!(holds("/status == open"));
        assert!(holds("/status == \"open\""));
        assert!(holds("/n == 3"));
        assert!(holds("/status != closed"));
        assert!(holds("/missing != x"));
        assert!(!holds("/status != open"));
    }
}
