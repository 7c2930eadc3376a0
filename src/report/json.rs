//! `report --format json`: the stable `deskprobe.report/1` contract of DESIGN.md ("Report
//! JSON"), rendered from the scored model.
//!
//! Every field of the contract is present with its exact name. Durations are seconds (numbers,
//! null when not defined), counts are integers, rates are numbers in [0, 1] or null. A few
//! fields are added beside the contract's (documented in docs/scoring.md): `availability` on
//! targets; `awaiting`, `by_urgency`, `hour_of_week`, `measurement_latency_s` and `overrides`
//! on channels; `responders` and `not_reached` in `first_human_s`; `responders` in `ack_s`;
//! `compliance_target`, `pending` and `unobserved` in `sla`; `ci95` in the 24/7 splits; and
//! `unknown_targets` at the top. `sla` is null when the target claims no availability or no
//! first-response time for the channel.
//!
//! Pure: model in, string out.

use serde::Serialize;

use crate::model::rfc3339;
use crate::score::stats::KmQuantile;
use crate::score::{AlwaysOn, ChannelScore, ScoredModel, Sla, Split, TargetScore};

/// The schema name of this contract.
pub const SCHEMA: &str = "deskprobe.report/1";

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    generated_at: String,
    window: Window,
    config_sha256: &'a str,
    targets: Vec<Target<'a>>,
    unknown_targets: Vec<UnknownTarget<'a>>,
}

#[derive(Serialize)]
struct Window {
    from: Option<String>,
    to: String,
}

#[derive(Serialize)]
struct UnknownTarget<'a> {
    id: &'a str,
    probes: u64,
}

#[derive(Serialize)]
struct Target<'a> {
    id: &'a str,
    name: &'a str,
    timezone: &'a str,
    availability: Option<&'a str>,
    channels: Vec<Channel<'a>>,
}

#[derive(Serialize)]
struct Channel<'a> {
    channel: &'static str,
    sent: u64,
    send_failed: u64,
    bounced: u64,
    acked: u64,
    human_replied: u64,
    never_replied: u64,
    awaiting: u64,
    first_human_s: FirstHuman,
    ack_s: Ack,
    sla: Option<SlaJson<'a>>,
    availability_24_7: Option<AlwaysOnJson>,
    language_match_rate: Option<f64>,
    facts_accuracy: Option<f64>,
    by_urgency: ByUrgency,
    hour_of_week: Grid,
    measurement_latency_s: Latency,
    overrides: Overrides<'a>,
}

#[derive(Serialize)]
struct FirstHuman {
    km_median: Option<f64>,
    km_p90: Option<f64>,
    responders_p50: Option<f64>,
    responders_p90: Option<f64>,
    responders: u64,
    not_reached: Vec<&'static str>,
}

#[derive(Serialize)]
struct Ack {
    responders_p50: Option<f64>,
    responders: u64,
}

#[derive(Serialize)]
struct SlaJson<'a> {
    target_s: f64,
    clock: &'a str,
    eligible: u64,
    met: u64,
    rate: Option<f64>,
    ci95: Option<[f64; 2]>,
    verdict: &'static str,
    compliance_target: f64,
    pending: u64,
    unobserved: u64,
}

#[derive(Serialize)]
struct SplitJson {
    eligible: u64,
    met: u64,
    rate: Option<f64>,
    ci95: Option<[f64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<usize>,
}

#[derive(Serialize)]
struct AlwaysOnJson {
    business: SplitJson,
    off_hours: SplitJson,
    fisher_p: Option<f64>,
    verdict: &'static str,
}

#[derive(Serialize)]
struct ByUrgency {
    normal: UrgencyJson,
    urgent: UrgencyJson,
}

#[derive(Serialize)]
struct UrgencyJson {
    sent: u64,
    km_median: Option<f64>,
    responders_p50: Option<f64>,
}

/// Rows Monday … Sunday, columns local hour 0 … 23, in the target's time zone.
#[derive(Serialize)]
struct Grid {
    sent: [[u64; 24]; 7],
    met: Option<[[u64; 24]; 7]>,
}

#[derive(Serialize)]
struct Latency {
    p50: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct Overrides<'a> {
    events: u64,
    changed: &'a [String],
}

fn pair(ci: Option<(f64, f64)>) -> Option<[f64; 2]> {
    ci.map(|(lo, hi)| [lo, hi])
}

fn split(s: &Split, buckets: Option<usize>) -> SplitJson {
    SplitJson {
        eligible: s.eligible,
        met: s.met,
        rate: s.rate(),
        ci95: pair(s.ci95()),
        buckets,
    }
}

fn sla(s: &Sla) -> SlaJson<'_> {
    SlaJson {
        target_s: s.target_s,
        clock: &s.clock,
        eligible: s.split.eligible,
        met: s.split.met,
        rate: s.split.rate(),
        ci95: pair(s.split.ci95()),
        verdict: s.verdict.as_str(),
        compliance_target: s.compliance_target,
        pending: s.pending,
        unobserved: s.unobserved,
    }
}

fn always_on(a: &AlwaysOn) -> AlwaysOnJson {
    AlwaysOnJson {
        business: split(&a.business, None),
        off_hours: split(&a.off_hours, Some(a.buckets)),
        fisher_p: a.fisher_p,
        verdict: a.verdict.as_str(),
    }
}

fn channel(c: &ChannelScore) -> Channel<'_> {
    let mut not_reached = Vec::new();
    if c.first_human.km_median == KmQuantile::NotReached {
        not_reached.push("km_median");
    }
    if c.first_human.km_p90 == KmQuantile::NotReached {
        not_reached.push("km_p90");
    }
    Channel {
        channel: c.channel.as_str(),
        sent: c.sent,
        send_failed: c.send_failed,
        bounced: c.bounced,
        acked: c.acked,
        human_replied: c.human_replied,
        never_replied: c.never_replied,
        awaiting: c.awaiting,
        first_human_s: FirstHuman {
            km_median: c.first_human.km_median.value(),
            km_p90: c.first_human.km_p90.value(),
            responders_p50: c.first_human.responders_p50,
            responders_p90: c.first_human.responders_p90,
            responders: c.first_human.responders,
            not_reached,
        },
        ack_s: Ack {
            responders_p50: c.ack.responders_p50,
            responders: c.ack.responders,
        },
        sla: c.sla.as_ref().map(sla),
        availability_24_7: c.availability_24_7.as_ref().map(always_on),
        language_match_rate: c.language_match.value(),
        facts_accuracy: c.facts.value(),
        by_urgency: ByUrgency {
            normal: UrgencyJson {
                sent: c.normal.sent,
                km_median: c.normal.km_median.value(),
                responders_p50: c.normal.responders_p50,
            },
            urgent: UrgencyJson {
                sent: c.urgent.sent,
                km_median: c.urgent.km_median.value(),
                responders_p50: c.urgent.responders_p50,
            },
        },
        hour_of_week: Grid {
            sent: c.hour_of_week.sent,
            met: c.hour_of_week.met,
        },
        measurement_latency_s: Latency {
            p50: c.latency.p50,
            max: c.latency.max,
        },
        overrides: Overrides {
            events: c.overrides.events,
            changed: &c.overrides.changed,
        },
    }
}

fn target(t: &TargetScore) -> Target<'_> {
    Target {
        id: &t.id,
        name: &t.name,
        timezone: &t.timezone,
        availability: t.availability.as_deref(),
        channels: t.channels.iter().map(channel).collect(),
    }
}

/// The report as pretty-printed JSON with a trailing newline.
pub fn render(model: &ScoredModel) -> String {
    let report = Report {
        schema: SCHEMA,
        generated_at: rfc3339(model.generated_at),
        window: Window {
            from: model.window_from.map(rfc3339),
            to: rfc3339(model.window_to),
        },
        config_sha256: &model.config_sha256,
        targets: model.targets.iter().map(target).collect(),
        unknown_targets: model
            .unknown_targets
            .iter()
            .map(|u| UnknownTarget {
                id: &u.id,
                probes: u.probes,
            })
            .collect(),
    };
    // Serializing plain structs of numbers and strings cannot fail; non-finite floats never
    // reach here (every figure is a finite ratio or duration), and serde_json writes them as
    // null anyway.
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_else(|e| {
        format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"cannot serialize report: {e}\"}}")
    });
    text.push('\n');
    text
}
