//! The evidence record shapes of DESIGN.md ("Evidence bundles"): one JSON object per probe and
//! per event, used by `evidence --format json` and by export/import; and the import-side
//! validation of a bundle file.
//!
//! A bundle is JSON Lines: `probe`, `event` and `override` records (reviewer overrides travel
//! as their own records, so an event line always carries the classifier's kind and a merged
//! archive keeps who changed what, when and why). Optional fields beside DESIGN.md's shapes:
//! `created_at` on probes (t0 of a `sent_unconfirmed` probe, which has no `sent_at`),
//! `reasons` and — with `export --with-raw` — `raw` (base64 of the raw message) on events.
//!
//! Pure conversions and checks: this module must not read the store or the network.
//! Validation that needs the store (does a referenced probe exist?) takes a lookup function.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::model::{ChannelKind, EventKind, MatchMethod, Millis, ProbeStatus, Urgency, rfc3339};
use crate::store::evidence::{ImportBatch, ImportedEvent, Override};
use crate::store::{Event, Probe, sha256_hex};

/// A probe as it appears in bundles and evidence documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub target: String,
    pub channel: ChannelKind,
    pub script: String,
    pub persona: String,
    pub language: String,
    pub urgency: Urgency,
    pub status: ProbeStatus,
    /// RFC 3339 UTC with milliseconds; null when the probe was never accepted.
    pub sent_at: Option<String>,
    pub vantage: String,
    /// When the probe row was committed, just before the send (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// An event as it appears in bundles and evidence documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub probe: String,
    pub kind: EventKind,
    pub occurred_at: String,
    pub observed_at: String,
    pub source: String,
    #[serde(rename = "match")]
    pub match_method: Option<MatchMethod>,
    pub language: Option<String>,
    pub facts_matched: Option<bool>,
    pub raw_sha256: Option<String>,
    /// Why the classifier chose `kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The raw message, base64 (standard alphabet, padded); only with `export --with-raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// A reviewer's override of an event's kind, as it appears in bundles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub event: String,
    pub kind: EventKind,
    pub reason: String,
    pub reviewer: String,
    pub at: String,
}

impl From<&Probe> for ProbeRecord {
    fn from(p: &Probe) -> Self {
        ProbeRecord {
            record_type: "probe".into(),
            id: p.id.clone(),
            target: p.target.clone(),
            channel: p.channel,
            script: p.script.clone(),
            persona: p.persona.clone(),
            language: p.language.clone(),
            urgency: p.urgency,
            status: p.status,
            sent_at: p.sent_at.map(rfc3339),
            vantage: p.vantage.clone(),
            created_at: Some(rfc3339(p.created_at)),
        }
    }
}

impl From<&Event> for EventRecord {
    /// The event with its effective kind (the reviewer's, when overridden), as `evidence`
    /// shows it.
    fn from(e: &Event) -> Self {
        EventRecord {
            record_type: "event".into(),
            id: e.id.clone(),
            probe: e.probe_id.clone(),
            kind: e.kind,
            occurred_at: rfc3339(e.occurred_at),
            observed_at: rfc3339(e.observed_at),
            source: e.source.clone(),
            match_method: e.match_method,
            language: e.language.clone(),
            facts_matched: e.facts_matched,
            raw_sha256: e.raw_sha256.clone(),
            reasons: Vec::new(),
            raw: None,
        }
    }
}

impl EventRecord {
    /// The event as a bundle line: the classifier's kind (overrides travel as their own
    /// records), its reasons, and the raw message when given.
    pub fn for_bundle(e: &Event, raw: Option<&[u8]>) -> EventRecord {
        EventRecord {
            kind: e.overridden_from.unwrap_or(e.kind),
            reasons: e.reasons.clone(),
            raw: raw.map(|r| base64::engine::general_purpose::STANDARD.encode(r)),
            ..EventRecord::from(e)
        }
    }
}

impl From<&Override> for OverrideRecord {
    fn from(o: &Override) -> Self {
        OverrideRecord {
            record_type: "override".into(),
            id: o.id.clone(),
            event: o.event_id.clone(),
            kind: o.kind,
            reason: o.reason.clone(),
            reviewer: o.reviewer.clone(),
            at: rfc3339(o.at),
        }
    }
}

/// One problem of a bundle file, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// A parsed bundle: records ready to import, each with its line.
#[derive(Debug, Clone, Default)]
pub struct ParsedBundle {
    /// What the store imports.
    pub batch: ImportBatch,
}

fn time(field: &str, value: &str) -> Result<Millis, String> {
    value
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("`{field}` is not an RFC 3339 time (`{value}`): {e}"))
}

fn non_empty(field: &str, value: &str, errors: &mut Vec<String>) {
    if value.trim().is_empty() {
        errors.push(format!("`{field}` must not be empty"));
    }
}

fn is_hex_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses and validates every line of a bundle. Blank lines are skipped. Returns the records
/// or, when any line is wrong, every problem found (all lines are checked, not the first).
/// References between records are checked by [`check_references`].
pub fn parse(text: &str) -> Result<ParsedBundle, Vec<LineError>> {
    let mut errors = Vec::new();
    let mut batch = ImportBatch::default();
    // id → (line, SHA-256 of the line's value) per record type, to tell repeats from
    // conflicts without keeping every line (raw messages can be large).
    let mut seen: HashMap<(&'static str, String), (usize, String)> = HashMap::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw_line.trim();
        if l.is_empty() {
            continue;
        }
        let mut problems = Vec::new();
        let value: serde_json::Value = match serde_json::from_str(l) {
            Ok(v) => v,
            Err(e) => {
                errors.push(LineError {
                    line,
                    message: format!("not JSON: {e}"),
                });
                continue;
            }
        };
        let Some(kind) = value
            .as_object()
            .and_then(|o| o.get("type"))
            .and_then(|t| t.as_str())
        else {
            errors.push(LineError {
                line,
                message: "expected a JSON object with a string `type`".into(),
            });
            continue;
        };
        let (tag, id) = match kind {
            "probe" => match serde_json::from_str::<ProbeRecord>(l) {
                Ok(r) => {
                    let id = r.id.clone();
                    match probe_from_record(r, &mut problems) {
                        Some(p) if problems.is_empty() => batch.probes.push((line, p)),
                        _ => {}
                    }
                    ("probe", id)
                }
                Err(e) => {
                    problems.push(format!("invalid probe record: {e}"));
                    ("probe", String::new())
                }
            },
            "event" => match serde_json::from_str::<EventRecord>(l) {
                Ok(r) => {
                    let id = r.id.clone();
                    match event_from_record(r, &mut problems) {
                        Some(e) if problems.is_empty() => batch.events.push((line, e)),
                        _ => {}
                    }
                    ("event", id)
                }
                Err(e) => {
                    problems.push(format!("invalid event record: {e}"));
                    ("event", String::new())
                }
            },
            "override" => match serde_json::from_str::<OverrideRecord>(l) {
                Ok(r) => {
                    let id = r.id.clone();
                    match override_from_record(r, &mut problems) {
                        Some(o) if problems.is_empty() => batch.overrides.push((line, o)),
                        _ => {}
                    }
                    ("override", id)
                }
                Err(e) => {
                    problems.push(format!("invalid override record: {e}"));
                    ("override", String::new())
                }
            },
            other => {
                problems.push(format!(
                    "unknown record type `{other}` (expected probe, event or override)"
                ));
                ("", String::new())
            }
        };
        if !tag.is_empty() && !id.is_empty() {
            let value = sha256_hex(value.to_string().as_bytes());
            match seen.get(&(tag, id.clone())) {
                Some((first, v)) if *v != value => problems.push(format!(
                    "{tag} `{id}` appears on line {first} with different content"
                )),
                Some(_) => {}
                None => {
                    seen.insert((tag, id), (line, value));
                }
            }
        }
        errors.extend(
            problems
                .into_iter()
                .map(|message| LineError { line, message }),
        );
    }
    if errors.is_empty() {
        Ok(ParsedBundle { batch })
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

fn probe_from_record(r: ProbeRecord, problems: &mut Vec<String>) -> Option<Probe> {
    for (field, v) in [
        ("id", &r.id),
        ("target", &r.target),
        ("script", &r.script),
        ("persona", &r.persona),
        ("language", &r.language),
        ("vantage", &r.vantage),
    ] {
        non_empty(field, v, problems);
    }
    let sent_at = match r.sent_at.as_deref().map(|s| time("sent_at", s)).transpose() {
        Ok(t) => t,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let created_at = match r
        .created_at
        .as_deref()
        .map(|s| time("created_at", s))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if r.status == ProbeStatus::Sent && r.sent_at.is_none() {
        problems.push("a probe with status `sent` needs `sent_at`".into());
    }
    let Some(created_at) = created_at.or(sent_at) else {
        if r.sent_at.is_none() && r.created_at.is_none() {
            problems.push("a probe needs `sent_at` or `created_at`".into());
        }
        return None;
    };
    Some(Probe {
        // An imported probe is never matched against local mail: its token is not
        // token-shaped and it has no Message-ID here.
        token: format!("imported:{}", r.id),
        id: r.id,
        target: r.target,
        channel: r.channel,
        script: r.script,
        persona: r.persona,
        language: r.language,
        urgency: r.urgency,
        status: r.status,
        message_id: None,
        sender: None,
        recipient: None,
        subject: None,
        raw_sha256: None,
        created_at,
        sent_at,
        send_error: None,
        closed_at: None,
        vantage: r.vantage,
    })
}

fn event_from_record(r: EventRecord, problems: &mut Vec<String>) -> Option<ImportedEvent> {
    for (field, v) in [("id", &r.id), ("probe", &r.probe), ("source", &r.source)] {
        non_empty(field, v, problems);
    }
    let occurred = time("occurred_at", &r.occurred_at).map_err(|e| problems.push(e));
    let observed = time("observed_at", &r.observed_at).map_err(|e| problems.push(e));
    if let Some(sha) = &r.raw_sha256
        && !is_hex_sha256(sha)
    {
        problems.push(format!("`raw_sha256` is not a hex SHA-256 (`{sha}`)"));
    }
    let raw = match r.raw.as_deref().map(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("`raw` is not base64: {e}"))
    }) {
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(e)) => {
            problems.push(e);
            None
        }
        None => None,
    };
    let mut raw_sha256 = r.raw_sha256.map(|s| s.to_ascii_lowercase());
    if let Some(bytes) = &raw {
        let actual = sha256_hex(bytes);
        match &raw_sha256 {
            Some(claimed) if *claimed != actual => problems.push(format!(
                "`raw` does not match `raw_sha256` (its SHA-256 is {actual})"
            )),
            _ => raw_sha256 = Some(actual),
        }
    }
    let (Ok(occurred_at), Ok(observed_at)) = (occurred, observed) else {
        return None;
    };
    Some(ImportedEvent {
        event: Event {
            id: r.id,
            probe_id: r.probe,
            kind: r.kind,
            overridden_from: None,
            occurred_at,
            observed_at,
            source: r.source,
            match_method: r.match_method,
            language: r.language,
            facts_matched: r.facts_matched,
            reasons: r.reasons,
            raw_sha256,
            mail: None,
        },
        raw,
    })
}

fn override_from_record(r: OverrideRecord, problems: &mut Vec<String>) -> Option<Override> {
    for (field, v) in [
        ("id", &r.id),
        ("event", &r.event),
        ("reason", &r.reason),
        ("reviewer", &r.reviewer),
    ] {
        non_empty(field, v, problems);
    }
    let at = time("at", &r.at).map_err(|e| problems.push(e)).ok()?;
    Some(Override {
        id: r.id,
        event_id: r.event,
        kind: r.kind,
        reason: r.reason,
        reviewer: r.reviewer,
        at,
    })
}

/// Checks that every event's probe and every override's event is in the bundle or, per the
/// lookups, already in the store.
pub fn check_references(
    bundle: &ParsedBundle,
    probe_known: impl Fn(&str) -> bool,
    event_known: impl Fn(&str) -> bool,
) -> Vec<LineError> {
    let b = &bundle.batch;
    let probes: std::collections::HashSet<&str> =
        b.probes.iter().map(|(_, p)| p.id.as_str()).collect();
    let events: std::collections::HashSet<&str> =
        b.events.iter().map(|(_, e)| e.event.id.as_str()).collect();
    let mut errors = Vec::new();
    for (line, e) in &b.events {
        let p = e.event.probe_id.as_str();
        if !probes.contains(p) && !probe_known(p) {
            errors.push(LineError {
                line: *line,
                message: format!(
                    "event `{}` refers to probe `{p}`, which is neither in the file nor in the store",
                    e.event.id
                ),
            });
        }
    }
    for (line, o) in &b.overrides {
        let ev = o.event_id.as_str();
        if !events.contains(ev) && !event_known(ev) {
            errors.push(LineError {
                line: *line,
                message: format!(
                    "override `{}` refers to event `{ev}`, which is neither in the file nor in the store",
                    o.id
                ),
            });
        }
    }
    errors.sort_by_key(|e| e.line);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = r#"{"type":"probe","id":"P1","target":"kucoin","channel":"email","script":"s","persona":"lin","language":"en","urgency":"normal","status":"sent","sent_at":"2026-11-02T03:00:00.000Z","vantage":"sg-1"}"#;
    const EVENT: &str = r#"{"type":"event","id":"E1","probe":"P1","kind":"human","occurred_at":"2026-11-02T03:14:07.000Z","observed_at":"2026-11-02T03:14:07.512Z","source":"imap:x/INBOX/1/43","match":"thread","language":"en","facts_matched":true,"raw_sha256":null}"#;

    #[test]
    fn the_design_shapes_parse() {
        let text = format!("{PROBE}\n\n{EVENT}\n");
        let b = parse(&text).unwrap();
        assert_eq!(b.batch.probes.len(), 1);
        assert_eq!(b.batch.probes[0].1.sent_at, Some(1_793_588_400_000));
        assert_eq!(b.batch.events[0].0, 3);
        assert_eq!(b.batch.events[0].1.event.kind, EventKind::Human);
        assert!(check_references(&b, |_| false, |_| false).is_empty());
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = [
            PROBE.to_owned(),
            "{not json".into(),
            PROBE.replace("\"email\"", "\"fax\""),
            EVENT.replace("2026-11-02T03:14:07.000Z", "yesterday"),
            r#"{"type":"comment"}"#.into(),
            PROBE.replace("sg-1", "sg-2"),
            EVENT.replace("\"raw_sha256\":null", "\"raw_sha256\":null,\"raw\":\"!!\""),
            r#"[1,2]"#.into(),
            PROBE.replace("\"vantage\"", "\"extra\":1,\"vantage\""),
        ]
        .join("\n");
        let errors = parse(&text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        // Line 7 has two problems: bad base64, and event `E1` differs from line 4.
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 7, 8, 9], "{errors:#?}");
        let all = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("line 3: invalid probe record: unknown variant `fax`"),
            "{all}"
        );
        assert!(
            all.contains("`occurred_at` is not an RFC 3339 time"),
            "{all}"
        );
        assert!(all.contains("unknown record type `comment`"), "{all}");
        assert!(
            all.contains("appears on line 1 with different content"),
            "{all}"
        );
        assert!(all.contains("`raw` is not base64"), "{all}");
        assert!(all.contains("unknown field `extra`"), "{all}");
    }

    #[test]
    fn raw_must_match_its_hash_and_references_must_resolve() {
        let raw = base64::engine::general_purpose::STANDARD.encode(b"hello");
        let good = EVENT.replace(
            "\"raw_sha256\":null",
            &format!("\"raw_sha256\":null,\"raw\":\"{raw}\""),
        );
        let b = parse(&good).unwrap();
        assert_eq!(
            b.batch.events[0].1.event.raw_sha256.as_deref(),
            Some(sha256_hex(b"hello").as_str())
        );
        let errors = check_references(&b, |_| false, |_| false);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("probe `P1`"));
        assert!(check_references(&b, |p| p == "P1", |_| false).is_empty());

        let bad = EVENT.replace(
            "\"raw_sha256\":null",
            &format!("\"raw_sha256\":\"{}\",\"raw\":\"{raw}\"", "a".repeat(64)),
        );
        let errors = parse(&bad).unwrap_err();
        assert!(errors[0].message.contains("does not match"), "{errors:?}");
    }
}
