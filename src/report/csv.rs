//! `report --format csv`: one tidy table for pandas/R. One header; `row_type` says what a row
//! is:
//!
//! - `probe`: one per probe of the window (every status): its timestamps, first ack and first
//!   human response with their kinds and match methods, every event kind in order, and the
//!   inputs of the verdicts it counts in (SLA state, eligible, met, off-hours, hour of week).
//! - `summary`: one per target × channel: the figures and verdicts of the report JSON.
//!
//! Columns that do not apply to a row type are empty. Times are RFC 3339 UTC with
//! milliseconds, durations seconds, rates in [0, 1], booleans `true`/`false`; empty = not
//! defined. docs/reports.md lists every column. Pure: input in, string out.

use std::collections::HashMap;

use crate::model::{Event, EventKind, Probe, rfc3339};
use crate::score::{ChannelScore, ProbeScore, SlaState, TargetScore};

use super::ReportInput;

/// The columns, in order.
pub const COLUMNS: &[&str] = &[
    "row_type",
    "target",
    "target_name",
    "channel",
    // probe rows
    "probe_id",
    "script",
    "persona",
    "language",
    "urgency",
    "status",
    "vantage",
    "created_at",
    "sent_at",
    "t0",
    "window_end",
    "first_ack_at",
    "first_ack_kind",
    "first_ack_match",
    "first_human_at",
    "first_human_match",
    "bounce_at",
    "events",
    "event_kinds",
    "match_methods",
    "overridden_events",
    "ack_s",
    "first_human_s",
    "censored_s",
    "human_language",
    "language_match",
    "facts_matched",
    "hour_of_week",
    "off_hours",
    "sla_state",
    "sla_eligible",
    "sla_met",
    "send_error",
    // both
    "claimed_first_response_s",
    // summary rows
    "sent",
    "send_failed",
    "bounced",
    "acked",
    "human_replied",
    "never_replied",
    "awaiting",
    "km_median_s",
    "km_p90_s",
    "responders",
    "responders_p50_s",
    "responders_p90_s",
    "ack_responders",
    "ack_p50_s",
    "sla_target_s",
    "sla_clock",
    "compliance_target",
    "eligible",
    "met",
    "rate",
    "ci95_lo",
    "ci95_hi",
    "pending",
    "unobserved",
    "sla_verdict",
    "business_eligible",
    "business_met",
    "off_hours_eligible",
    "off_hours_met",
    "off_hours_buckets",
    "fisher_p",
    "availability_24_7_verdict",
    "language_match_rate",
    "facts_accuracy",
];

struct Row {
    cells: Vec<String>,
}

impl Row {
    fn new(kind: &str) -> Row {
        let mut cells = vec![String::new(); COLUMNS.len()];
        cells[0] = kind.to_owned();
        Row { cells }
    }

    fn set(&mut self, col: &str, value: impl ToString) {
        let i = column(col);
        self.cells[i] = value.to_string();
    }

    fn opt<T: ToString>(&mut self, col: &str, value: Option<T>) {
        if let Some(v) = value {
            self.set(col, v);
        }
    }
}

fn column(name: &str) -> usize {
    // Every call site names a column of COLUMNS; a typo is a bug the tests catch.
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no CSV column `{name}`"))
}

fn sla_state(s: SlaState) -> &'static str {
    match s {
        SlaState::Met => "met",
        SlaState::Missed => "missed",
        SlaState::Pending => "pending",
        SlaState::Unobserved => "unobserved",
    }
}

fn probe_row(
    p: &Probe,
    target_name: Option<&str>,
    events: &[&Event],
    scored: Option<(&TargetScore, &ChannelScore, &ProbeScore)>,
) -> Row {
    let mut r = Row::new("probe");
    r.set("target", &p.target);
    r.opt("target_name", target_name);
    r.set("channel", p.channel);
    r.set("probe_id", &p.id);
    r.set("script", &p.script);
    r.set("persona", &p.persona);
    r.set("language", &p.language);
    r.set("urgency", p.urgency);
    r.set("status", p.status);
    r.set("vantage", &p.vantage);
    r.set("created_at", rfc3339(p.created_at));
    r.opt("sent_at", p.sent_at.map(rfc3339));
    r.opt("send_error", p.send_error.as_deref());
    r.set("events", events.len());
    r.set(
        "event_kinds",
        events
            .iter()
            .map(|e| e.kind.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    );
    r.set(
        "match_methods",
        events
            .iter()
            .map(|e| e.match_method.map_or("-", |m| m.as_str()))
            .collect::<Vec<_>>()
            .join(";"),
    );
    r.set(
        "overridden_events",
        events
            .iter()
            .filter(|e| e.overridden_from.is_some())
            .count(),
    );
    r.opt(
        "bounce_at",
        events
            .iter()
            .find(|e| e.kind == EventKind::Bounce)
            .map(|e| rfc3339(e.occurred_at)),
    );
    let Some((_, c, s)) = scored else {
        return r;
    };
    r.opt("claimed_first_response_s", c.claimed_first_response_s);
    r.set("t0", rfc3339(s.t0));
    r.set("window_end", rfc3339(s.horizon));
    let at = |when: Option<i64>, kinds: &[EventKind]| {
        when.and_then(|w| {
            events
                .iter()
                .find(|e| e.occurred_at == w && kinds.contains(&e.kind))
        })
    };
    if let Some(e) = at(s.ack_at, &[EventKind::AutoAck, EventKind::Bot]) {
        r.set("first_ack_at", rfc3339(e.occurred_at));
        r.set("first_ack_kind", e.kind);
        r.opt("first_ack_match", e.match_method);
    }
    if let Some(e) = at(s.human_at, &[EventKind::Human]) {
        r.set("first_human_at", rfc3339(e.occurred_at));
        r.opt("first_human_match", e.match_method);
        r.opt("human_language", e.language.as_deref());
    }
    r.opt("ack_s", s.ack_s);
    r.opt("first_human_s", s.first_human_s);
    r.opt("censored_s", s.censored_s);
    r.opt("language_match", s.language_match);
    r.opt("facts_matched", s.facts);
    r.opt("hour_of_week", s.hour_of_week);
    r.opt("off_hours", s.off_hours);
    if let Some(st) = s.sla {
        r.set("sla_state", sla_state(st));
        r.set("sla_eligible", st.eligible());
        r.set("sla_met", st == SlaState::Met);
    }
    r
}

fn summary_row(t: &TargetScore, c: &ChannelScore) -> Row {
    let mut r = Row::new("summary");
    r.set("target", &t.id);
    r.set("target_name", &t.name);
    r.set("channel", c.channel);
    r.opt("claimed_first_response_s", c.claimed_first_response_s);
    r.set("sent", c.sent);
    r.set("send_failed", c.send_failed);
    r.set("bounced", c.bounced);
    r.set("acked", c.acked);
    r.set("human_replied", c.human_replied);
    r.set("never_replied", c.never_replied);
    r.set("awaiting", c.awaiting);
    r.opt("km_median_s", c.first_human.km_median.value());
    r.opt("km_p90_s", c.first_human.km_p90.value());
    r.set("responders", c.first_human.responders);
    r.opt("responders_p50_s", c.first_human.responders_p50);
    r.opt("responders_p90_s", c.first_human.responders_p90);
    r.set("ack_responders", c.ack.responders);
    r.opt("ack_p50_s", c.ack.responders_p50);
    if let Some(s) = &c.sla {
        r.set("sla_target_s", s.target_s);
        r.set("sla_clock", &s.clock);
        r.set("compliance_target", s.compliance_target);
        r.set("eligible", s.split.eligible);
        r.set("met", s.split.met);
        r.opt("rate", s.split.rate());
        if let Some((lo, hi)) = s.split.ci95() {
            r.set("ci95_lo", lo);
            r.set("ci95_hi", hi);
        }
        r.set("pending", s.pending);
        r.set("unobserved", s.unobserved);
        r.set("sla_verdict", s.verdict.as_str());
    }
    if let Some(a) = &c.availability_24_7 {
        r.set("business_eligible", a.business.eligible);
        r.set("business_met", a.business.met);
        r.set("off_hours_eligible", a.off_hours.eligible);
        r.set("off_hours_met", a.off_hours.met);
        r.set("off_hours_buckets", a.buckets);
        r.opt("fisher_p", a.fisher_p);
        r.set("availability_24_7_verdict", a.verdict.as_str());
    }
    r.opt("language_match_rate", c.language_match.value());
    r.opt("facts_accuracy", c.facts.value());
    r
}

/// The report as CSV (RFC 4180, `\n` line ends), header first.
pub fn render(input: &ReportInput<'_>) -> String {
    let mut scored: HashMap<&str, (&TargetScore, &ChannelScore, &ProbeScore)> = HashMap::new();
    for t in &input.model.targets {
        for c in &t.channels {
            for p in &c.probes {
                scored.insert(p.probe_id.as_str(), (t, c, p));
            }
        }
    }
    let mut events_of: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in input.events {
        events_of.entry(e.probe_id.as_str()).or_default().push(e);
    }
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let mut rows = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>()];
    let names: HashMap<&str, &str> = input
        .model
        .targets
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    for p in input.probes {
        let evs = events_of.get(p.id.as_str()).map_or(&[][..], Vec::as_slice);
        let name = names.get(p.target.as_str()).copied();
        rows.push(probe_row(p, name, evs, scored.get(p.id.as_str()).copied()).cells);
    }
    for t in &input.model.targets {
        for c in &t.channels {
            rows.push(summary_row(t, c).cells);
        }
    }
    for row in rows {
        // Writing to a Vec cannot fail.
        let _ = w.write_record(&row);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}
