//! `report --format html`: one self-contained page an auditor can open offline, archive and
//! print: the comparison of all targets, a section per target with charts, the methodology,
//! and an evidence appendix with every probe's timeline.
//!
//! Safety, by construction:
//! - The page is a minijinja template (`templates/report.html`) with auto-escaping on; every
//!   string from outside (replies, subjects, ids, the config) is escaped. Only our own SVG
//!   charts and CSS are inserted unescaped.
//! - No script, no external resource: a Content-Security-Policy of `default-src 'none'`
//!   (inline styles and `data:` images only) makes anything that slipped through inert.
//! - Replies are shown redacted ([`super::redact`]) and cut to an excerpt; long lines wrap.
//!
//! Pure: input in, string out.

use std::collections::HashMap;

use minijinja::{Environment, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{ChannelKind, Event, Probe, rfc3339};
use crate::score::{
    ChannelScore, MIN_ELIGIBLE, MIN_OFF_HOURS_BUCKETS, ProbeScore, SlaState, TargetScore, Verdict,
};

use super::redact::Redactor;
use super::{ReportInput, charts, fmt, markdown};

const TEMPLATE: &str = include_str!("templates/report.html");
const CSS: &str = include_str!("templates/report.css");

/// How many probe links a channel section lists before pointing to the appendix.
const PROBE_LINKS: usize = 60;

#[derive(Serialize)]
struct Page {
    version: &'static str,
    css: Value,
    generated_at: String,
    window_from: String,
    window_to: String,
    config_sha256: String,
    compliance: String,
    min_eligible: u64,
    min_buckets: usize,
    probe_count: usize,
    event_count: usize,
    simulated: Vec<String>,
    comparison: Vec<CompRow>,
    targets: Vec<TargetView>,
    unknown_targets: Vec<UnknownView>,
    windows: String,
    business_hours: String,
    calendars: Vec<CalendarView>,
    appendix: Vec<ProbeView>,
}

#[derive(Serialize)]
struct UnknownView {
    id: String,
    probes: u64,
}

#[derive(Serialize)]
struct CalendarView {
    id: String,
    timezone: String,
    hours: String,
    holidays: String,
}

#[derive(Serialize)]
struct CompRow {
    target_anchor: String,
    target_name: String,
    simulated: bool,
    channel: &'static str,
    color: String,
    claim: String,
    sent: u64,
    human_replied: u64,
    km_median: String,
    responders_p50: String,
    sla_rate: String,
    sla_class: &'static str,
    sla_symbol: &'static str,
    sla_word: &'static str,
    always_class: &'static str,
    always_symbol: &'static str,
    always_word: &'static str,
    always_detail: String,
}

#[derive(Serialize)]
struct TargetView {
    anchor: String,
    id: String,
    name: String,
    simulated: bool,
    timezone: String,
    availability: String,
    languages: String,
    source: String,
    captured: String,
    verified: bool,
    note: Option<String>,
    claims_first_response: String,
    km_svg: Value,
    ack_svg: Value,
    channels: Vec<ChannelView>,
}

#[derive(Serialize)]
struct ProbeLink {
    anchor: String,
    label: String,
}

#[derive(Serialize)]
struct ChannelView {
    channel: &'static str,
    color: String,
    claim: String,
    sent: u64,
    send_failed: u64,
    bounced: u64,
    acked: u64,
    acked_n: u64,
    human_replied: u64,
    never_replied: u64,
    awaiting: u64,
    km_median: String,
    km_p90: String,
    responders: u64,
    responders_p50: String,
    responders_p90: String,
    ack_p50: String,
    has_sla: bool,
    sla_text: String,
    sla_class: &'static str,
    sla_symbol: &'static str,
    sla_word: &'static str,
    always_text: String,
    always_class: &'static str,
    always_symbol: &'static str,
    always_word: &'static str,
    language: String,
    facts: String,
    urgency: String,
    latency: String,
    overrides: String,
    heatmap_svg: Value,
    probe_links: Vec<ProbeLink>,
    more_probes: usize,
}

#[derive(Serialize)]
struct ProbeView {
    anchor: String,
    id: String,
    target_anchor: String,
    target_name: String,
    channel: &'static str,
    script: String,
    persona: String,
    language: String,
    urgency: &'static str,
    status: &'static str,
    created_at: String,
    sent_at: Option<String>,
    subject: Option<String>,
    send_error: Option<String>,
    outcome: String,
    events: Vec<EventView>,
}

#[derive(Serialize)]
struct EventView {
    anchor: String,
    occurred_at: String,
    delay: String,
    kind: &'static str,
    overridden: Option<String>,
    match_method: &'static str,
    source: String,
    latency: String,
    language: Option<String>,
    facts: Option<&'static str>,
    from: Option<String>,
    subject: Option<String>,
    excerpt: Option<String>,
    truncated: bool,
    reasons: String,
    raw_sha256: Option<String>,
}

/// A fragment id for `prefix` + an id from outside: safe characters kept, anything else
/// replaced, with a hash suffix so two ids never share an anchor.
fn anchor(prefix: &str, id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if clean == id {
        format!("{prefix}-{clean}")
    } else {
        let h = hex::encode(&Sha256::digest(id.as_bytes())[..4]);
        format!("{prefix}-{clean}-{h}")
    }
}

fn verdict_parts(v: Option<Verdict>) -> (&'static str, &'static str, &'static str) {
    match v {
        None => ("none", "–", "no claim"),
        Some(v) => (
            v.as_str(),
            match v {
                Verdict::Supported => "✓",
                Verdict::Contradicted => "✗",
                Verdict::Inconclusive => "?",
                Verdict::InsufficientEvidence => "…",
            },
            fmt::verdict(v),
        ),
    }
}

fn rate_of(hits: u64, checked: u64) -> String {
    if checked == 0 {
        "— (none checked)".into()
    } else {
        format!(
            "{hits}/{checked} = {}",
            fmt::pct(Some(hits as f64 / checked as f64))
        )
    }
}

fn channel_view(
    t: &TargetScore,
    c: &ChannelScore,
    business: &crate::config::WeeklyHours,
) -> ChannelView {
    let (sla_class, sla_symbol, sla_word) = verdict_parts(c.sla.as_ref().map(|s| s.verdict));
    let sla_text = match &c.sla {
        Some(s) => format!(
            "{} on the {} clock · {} not yet due · {} unobserved (window closed before the deadline)",
            fmt::split(&s.split),
            if s.clock == "calendar" {
                "calendar (24/7)".to_owned()
            } else {
                format!("“{}” business-hours", s.clock)
            },
            s.pending,
            s.unobserved
        ),
        None => "no first-response claim to test (figures only)".into(),
    };
    let (always_class, always_symbol, always_word, always_text) = match &c.availability_24_7 {
        Some(a) => {
            let (cl, sy, wo) = verdict_parts(Some(a.verdict));
            (
                cl,
                sy,
                wo,
                format!(
                    "business hours {} · off-hours {} over {} hour-of-week bucket(s) · Fisher exact p = {}",
                    fmt::split(&a.business),
                    fmt::split(&a.off_hours),
                    a.buckets,
                    fmt::p_value(a.fisher_p)
                ),
            )
        }
        None => ("none", "", "", String::new()),
    };
    let probe_links = c
        .probes
        .iter()
        .take(PROBE_LINKS)
        .map(|p| ProbeLink {
            anchor: anchor("probe", &p.probe_id),
            label: p.probe_id.chars().take(12).collect(),
        })
        .collect();
    ChannelView {
        channel: c.channel.as_str(),
        color: charts::channel_hex(c.channel),
        claim: markdown::claim(t, c),
        sent: c.sent,
        send_failed: c.send_failed,
        bounced: c.bounced,
        acked: c.acked,
        acked_n: c.ack.responders,
        human_replied: c.human_replied,
        never_replied: c.never_replied,
        awaiting: c.awaiting,
        km_median: fmt::km(c.first_human.km_median),
        km_p90: fmt::km(c.first_human.km_p90),
        responders: c.first_human.responders,
        responders_p50: fmt::opt_duration(c.first_human.responders_p50),
        responders_p90: fmt::opt_duration(c.first_human.responders_p90),
        ack_p50: fmt::opt_duration(c.ack.responders_p50),
        has_sla: c.sla.is_some(),
        sla_text,
        sla_class,
        sla_symbol,
        sla_word: if c.sla.is_some() { sla_word } else { "" },
        always_text,
        always_class,
        always_symbol,
        always_word,
        language: rate_of(c.language_match.hits, c.language_match.checked),
        facts: rate_of(c.facts.hits, c.facts.checked),
        urgency: format!(
            "urgent: {} sent, KM median {} · normal: {} sent, KM median {}",
            c.urgent.sent,
            fmt::km(c.urgent.km_median),
            c.normal.sent,
            fmt::km(c.normal.km_median)
        ),
        latency: format!(
            "median {}, max {} between the server's timestamp and deskprobe seeing a response",
            fmt::opt_duration(c.latency.p50),
            fmt::opt_duration(c.latency.max)
        ),
        overrides: if c.overrides.events == 0 {
            String::new()
        } else {
            format!(
                "{} event(s) reclassified by a reviewer; figures that differ from the classifier's: {}",
                c.overrides.events,
                if c.overrides.changed.is_empty() {
                    "none".into()
                } else {
                    c.overrides.changed.join(", ")
                }
            )
        },
        heatmap_svg: Value::from_safe_string(charts::heatmap(
            &c.hour_of_week.sent,
            c.hour_of_week.met.as_ref(),
            business,
        )),
        probe_links,
        more_probes: c.probes.len().saturating_sub(PROBE_LINKS),
    }
}

fn end_of(c: &ChannelScore) -> f64 {
    c.probes
        .iter()
        .filter_map(|p| p.first_human_s.or(p.censored_s))
        .fold(1.0, f64::max)
}

fn target_view(t: &TargetScore, business: &crate::config::WeeklyHours) -> TargetView {
    let km_series: Vec<charts::KmSeries<'_>> = t
        .channels
        .iter()
        .map(|c| charts::KmSeries {
            channel: c.channel,
            curve: &c.km_curve,
            claim_s: c.claimed_first_response_s,
            end_s: end_of(c),
        })
        .collect();
    let ack_rows: Vec<charts::AckHuman> = t
        .channels
        .iter()
        .map(|c| charts::AckHuman {
            channel: c.channel,
            ack_p50: c.ack.responders_p50,
            human_p50: c.first_human.responders_p50,
            claim_s: c.claimed_first_response_s,
        })
        .collect();
    let claims_first_response = t
        .channels
        .iter()
        .filter_map(|c| {
            c.claimed_first_response_s
                .map(|s| format!("{} {}", c.channel, fmt::duration(s)))
        })
        .collect::<Vec<_>>()
        .join(", ");
    TargetView {
        anchor: anchor("target", &t.id),
        id: t.id.clone(),
        name: t.name.clone(),
        simulated: super::is_simulated(t),
        timezone: t.timezone.clone(),
        availability: t.availability.clone().unwrap_or_else(|| "none".into()),
        languages: if t.claims.languages.is_empty() {
            "none claimed".into()
        } else {
            t.claims.languages.join(", ")
        },
        source: t.claims.source.clone(),
        captured: t.claims.captured.clone(),
        verified: t.claims.verified,
        note: t.claims.note.clone(),
        claims_first_response: if claims_first_response.is_empty() {
            "none".into()
        } else {
            claims_first_response
        },
        km_svg: Value::from_safe_string(if t.channels.is_empty() {
            String::new()
        } else {
            charts::km(&km_series)
        }),
        ack_svg: Value::from_safe_string(if t.channels.is_empty() {
            String::new()
        } else {
            charts::ack_vs_human(&ack_rows)
        }),
        channels: t
            .channels
            .iter()
            .map(|c| channel_view(t, c, business))
            .collect(),
    }
}

fn comparison_row(t: &TargetScore, c: &ChannelScore) -> CompRow {
    let (sla_class, sla_symbol, sla_word) = verdict_parts(c.sla.as_ref().map(|s| s.verdict));
    let (always_class, always_symbol, always_word) =
        match c.availability_24_7.as_ref().map(|a| a.verdict) {
            Some(v) => verdict_parts(Some(v)),
            None => ("none", "–", "no 24/7 claim"),
        };
    CompRow {
        target_anchor: anchor("target", &t.id),
        target_name: t.name.clone(),
        simulated: super::is_simulated(t),
        channel: c.channel.as_str(),
        color: charts::channel_hex(c.channel),
        claim: markdown::claim(t, c),
        sent: c.sent,
        human_replied: c.human_replied,
        km_median: fmt::km(c.first_human.km_median),
        responders_p50: fmt::opt_duration(c.first_human.responders_p50),
        sla_rate: c
            .sla
            .as_ref()
            .map_or_else(|| "—".into(), |s| fmt::split(&s.split)),
        sla_class,
        sla_symbol,
        sla_word,
        always_class,
        always_symbol,
        always_word,
        always_detail: c
            .availability_24_7
            .as_ref()
            .map(|a| format!("off-hours {}", fmt::split(&a.off_hours)))
            .unwrap_or_default(),
    }
}

fn outcome(p: &Probe, s: Option<&ProbeScore>) -> String {
    let Some(s) = s else {
        return match p.status {
            crate::model::ProbeStatus::SendFailed => {
                "send failure (not counted as unanswered)".into()
            }
            crate::model::ProbeStatus::Planned | crate::model::ProbeStatus::Sending => {
                "in flight (not scored)".into()
            }
            _ if p.send_error.is_some() => "send failure (not counted as unanswered)".into(),
            _ => "not scored".into(),
        };
    };
    let human = match s.first_human_s {
        Some(h) => format!("first human reply after {}", fmt::duration(h)),
        None => format!(
            "no human reply (censored at {})",
            fmt::opt_duration(s.censored_s)
        ),
    };
    let sla = match s.sla {
        Some(SlaState::Met) => " · within claim",
        Some(SlaState::Missed) => " · claim missed",
        Some(SlaState::Pending) => " · not yet due",
        Some(SlaState::Unobserved) => " · unobserved",
        None => "",
    };
    format!("{human}{sla}")
}

fn event_view(
    e: &Event,
    t0: Option<i64>,
    input: &ReportInput<'_>,
    redactor: &Redactor,
) -> EventView {
    let msg = input.messages.get(&e.id);
    let sender = msg.and_then(|m| m.from_name.as_deref());
    let overridden = e
        .overridden_from
        .map(|from| match input.overrides.get(&e.id) {
            Some(o) => format!(
                "classified {from}, reviewed as {} by {} on {}: {}",
                e.kind,
                o.reviewer,
                rfc3339(o.at),
                o.reason
            ),
            None => format!("classified {from}, reviewed as {}", e.kind),
        });
    EventView {
        anchor: anchor("event", &e.id),
        occurred_at: rfc3339(e.occurred_at),
        delay: t0.map_or_else(String::new, |t0| {
            let d = (e.occurred_at - t0) as f64 / 1000.0;
            if d < 0.0 {
                format!("−{}", fmt::duration(-d))
            } else {
                format!("+{}", fmt::duration(d))
            }
        }),
        kind: e.kind.as_str(),
        overridden,
        match_method: e.match_method.map_or("-", |m| m.as_str()),
        source: e.source.clone(),
        latency: fmt::duration((e.observed_at - e.occurred_at).max(0) as f64 / 1000.0),
        language: e.language.clone(),
        facts: e
            .facts_matched
            .map(|f| if f { "stated" } else { "missing" }),
        from: msg.map(|m| redactor.from(m.from.as_deref(), m.from_name.as_deref())),
        subject: msg
            .filter(|m| !m.subject.is_empty())
            .map(|m| redactor.text(&m.subject, sender)),
        excerpt: msg
            .filter(|m| !m.excerpt.is_empty())
            .map(|m| redactor.text(&m.excerpt, sender)),
        truncated: msg.is_some_and(|m| m.truncated),
        reasons: redactor.text(&e.reasons.join("; "), sender),
        raw_sha256: e.raw_sha256.clone(),
    }
}

fn appendix(input: &ReportInput<'_>) -> Vec<ProbeView> {
    let mut scored: HashMap<&str, &ProbeScore> = HashMap::new();
    for t in &input.model.targets {
        for c in &t.channels {
            for p in &c.probes {
                scored.insert(p.probe_id.as_str(), p);
            }
        }
    }
    let targets: HashMap<&str, &TargetScore> = input
        .model
        .targets
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    let mut events_of: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in input.events {
        events_of.entry(e.probe_id.as_str()).or_default().push(e);
    }
    let mut redactors: HashMap<&str, Redactor> = HashMap::new();
    input
        .probes
        .iter()
        .map(|p| {
            let t = targets.get(p.target.as_str());
            let redactor = redactors.entry(p.target.as_str()).or_insert_with(|| {
                Redactor::for_target(&p.target, t.map_or("", |t| t.name.as_str()))
            });
            let s = scored.get(p.id.as_str()).copied();
            let t0 = s.map(|s| s.t0).or(p.sent_at);
            ProbeView {
                anchor: anchor("probe", &p.id),
                id: p.id.clone(),
                target_anchor: anchor("target", &p.target),
                target_name: t.map_or_else(|| p.target.clone(), |t| t.name.clone()),
                channel: p.channel.as_str(),
                script: p.script.clone(),
                persona: p.persona.clone(),
                language: p.language.clone(),
                urgency: p.urgency.as_str(),
                status: p.status.as_str(),
                created_at: rfc3339(p.created_at),
                sent_at: p.sent_at.map(rfc3339),
                subject: p.subject.clone(),
                send_error: p.send_error.clone(),
                outcome: outcome(p, s),
                events: events_of
                    .get(p.id.as_str())
                    .into_iter()
                    .flatten()
                    .map(|e| event_view(e, t0, input, redactor))
                    .collect(),
            }
        })
        .collect()
}

/// The report as one HTML page. An error is a bug in the template.
pub fn render(input: &ReportInput<'_>) -> Result<String, minijinja::Error> {
    let model = input.model;
    let business = &model.method.business_hours;
    let page = Page {
        version: env!("CARGO_PKG_VERSION"),
        css: Value::from_safe_string(CSS.to_owned()),
        generated_at: rfc3339(model.generated_at),
        window_from: model.window_from.map_or_else(|| "—".into(), rfc3339),
        window_to: rfc3339(model.window_to),
        config_sha256: model.config_sha256.clone(),
        compliance: fmt::pct(Some(model.method.compliance_target)),
        min_eligible: MIN_ELIGIBLE,
        min_buckets: MIN_OFF_HOURS_BUCKETS,
        probe_count: input.probes.len(),
        event_count: input.events.len(),
        simulated: model
            .targets
            .iter()
            .filter(|t| super::is_simulated(t))
            .map(|t| t.name.clone())
            .collect(),
        comparison: model
            .targets
            .iter()
            .flat_map(|t| t.channels.iter().map(move |c| comparison_row(t, c)))
            .collect(),
        targets: model
            .targets
            .iter()
            .map(|t| target_view(t, business))
            .collect(),
        unknown_targets: model
            .unknown_targets
            .iter()
            .map(|u| UnknownView {
                id: u.id.clone(),
                probes: u.probes,
            })
            .collect(),
        windows: model
            .method
            .observation_window_s
            .iter()
            .map(|(c, s): &(ChannelKind, f64)| format!("{c} {}", fmt::duration(*s)))
            .collect::<Vec<_>>()
            .join(", "),
        business_hours: fmt::weekly_hours(business),
        calendars: model
            .method
            .calendars
            .iter()
            .map(|c| CalendarView {
                id: c.id.clone(),
                timezone: c.timezone.clone(),
                hours: fmt::weekly_hours(&c.hours),
                holidays: if c.holidays.is_empty() {
                    "none".into()
                } else {
                    c.holidays.join(", ")
                },
            })
            .collect(),
        appendix: appendix(input),
    };
    let mut env = Environment::new();
    // Every `{{ }}` is HTML-escaped; only values made with `Value::from_safe_string` (our SVG
    // and CSS) are not.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("report.html", TEMPLATE)?;
    let mut html = env
        .get_template("report.html")?
        .render(minijinja::value::Serde(&page))?;
    if !html.ends_with('\n') {
        html.push('\n');
    }
    Ok(html)
}
