//! The scored model: probes + events + reviewer overrides + claims → per target × channel
//! figures and verdicts, exactly as DESIGN.md "Scoring definitions" defines them
//! (docs/scoring.md explains each figure to an auditor).
//!
//! - [`calendar`]: the claim clock (24/7 or business hours with holidays and DST).
//! - [`stats`]: Wilson, Kaplan–Meier, Fisher, quantiles.
//! - [`probe`]: one probe reduced to t0, window end, first ack, first human response.
//! - this module: counts, SLA eligible/met/rate and verdict, Kaplan–Meier and responder
//!   quantiles, the 24/7 verdict (business vs off-hours in the target's zone), language and
//!   facts rates, urgent vs normal, the hour-of-week grid, and which figures reviewer
//!   overrides changed (everything is computed twice: as reviewed and as classified).
//!
//! Everything here is pure: no SQL, no I/O, and no clock — `now` is a parameter, so an archive
//! re-scored with the same `now` gives the same figures. Renderers (`crate::report`) consume
//! [`ScoredModel`] and must not recompute anything.

pub mod calendar;
pub mod probe;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::tz::TimeZone;

use crate::config::{Availability, Config, WeeklyHours};
use crate::model::{ChannelKind, Event, Millis, Probe, Urgency};

pub use calendar::ClaimClock;
use probe::{EventRow, ProbeOutcome, ProbeRow, Sending, View};
use stats::KmQuantile;

/// Fewer eligible probes than this give `insufficient_evidence` (SLA and 24/7 off-hours).
pub const MIN_ELIGIBLE: u64 = 10;
/// Fewer distinct off-hours hour-of-week buckets than this give `insufficient_evidence`.
pub const MIN_OFF_HOURS_BUCKETS: usize = 4;
/// Significance level of the business vs off-hours Fisher test.
pub const FISHER_ALPHA: f64 = 0.05;

/// The scored outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The evidence meets the claim.
    Supported,
    /// The evidence shows the claim is not met.
    Contradicted,
    /// Enough evidence, but it neither clearly meets nor clearly breaks the claim.
    Inconclusive,
    /// Too few probes (or, for 24/7, too few off-hours slots) to judge.
    InsufficientEvidence,
}

impl Verdict {
    /// The report's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::InsufficientEvidence => "insufficient_evidence",
        }
    }
}

/// The SLA verdict of DESIGN.md: `insufficient_evidence` if eligible < 10; `contradicted` if
/// the Wilson upper bound < q; `supported` if rate ≥ q; else `inconclusive`.
pub fn sla_verdict(eligible: u64, met: u64, q: f64) -> Verdict {
    if eligible < MIN_ELIGIBLE {
        return Verdict::InsufficientEvidence;
    }
    let Some((_, hi)) = stats::wilson(met, eligible) else {
        return Verdict::InsufficientEvidence;
    };
    if hi < q {
        Verdict::Contradicted
    } else if reaches(met, eligible, q) {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    }
}

/// met / eligible ≥ q, without a rounding error deciding 19/20 against 0.95.
fn reaches(met: u64, eligible: u64, q: f64) -> bool {
    eligible > 0 && met as f64 + 1e-9 >= q * eligible as f64
}

/// The 24/7 verdict of DESIGN.md from the business and off-hours splits.
pub fn always_on_verdict(
    business: &Split,
    off_hours: &Split,
    buckets: usize,
    fisher_p: Option<f64>,
    q: f64,
) -> Verdict {
    if off_hours.eligible < MIN_ELIGIBLE || buckets < MIN_OFF_HOURS_BUCKETS {
        return Verdict::InsufficientEvidence;
    }
    let off_ok = reaches(off_hours.met, off_hours.eligible, q);
    let upper = stats::wilson(off_hours.met, off_hours.eligible).map_or(1.0, |(_, hi)| hi);
    let significantly_worse = fisher_p.is_some_and(|p| p < FISHER_ALPHA)
        && business.eligible > 0
        && (off_hours.met as u128 * business.eligible as u128)
            < (business.met as u128 * off_hours.eligible as u128);
    if upper < q || (significantly_worse && !off_ok) {
        Verdict::Contradicted
    } else if off_ok && !significantly_worse {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    }
}

/// The claim one channel of a target is measured against.
#[derive(Debug, Clone)]
pub struct SlaSpec {
    /// The promised first-response time, in ms on the claim clock.
    pub target_ms: i64,
    /// 24/7 (calendar time) or a business calendar.
    pub clock: ClaimClock,
    /// Compliance target q.
    pub compliance: f64,
}

/// Everything needed to score one target × channel.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// Which channel.
    pub channel: ChannelKind,
    /// Observation window W in ms.
    pub window_ms: i64,
    /// The first-response claim; `None` when the target claims no availability or no
    /// first-response time for this channel.
    pub sla: Option<SlaSpec>,
    /// The target's zone (business/off-hours split, hour-of-week grid).
    pub tz: TimeZone,
    /// Reference business hours for the 24/7 split.
    pub business_hours: WeeklyHours,
}

/// Where one sent probe stands against its SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaState {
    /// Answered by a human within T on the claim clock.
    Met,
    /// Answered late, or T on the claim clock passed without a human response.
    Missed,
    /// Not answered, and T has not passed yet: not eligible.
    Pending,
    /// Not answered, and the observation window closed before T passed on the claim clock
    /// (possible with calendar claims): nobody watched until the deadline, so not eligible.
    Unobserved,
}

impl SlaState {
    /// Whether the probe counts in `eligible`.
    pub fn eligible(self) -> bool {
        matches!(self, SlaState::Met | SlaState::Missed)
    }
}

/// A probe's SLA state at `now`. Eligible = the deadline has passed (the claim clock counted
/// more than T by min(now, t0 + W)) or a human answered; met = the human answer came within T
/// on the claim clock (inclusive).
pub fn sla_state(o: &ProbeOutcome, sla: &SlaSpec, now: Millis) -> SlaState {
    if let Some(h) = o.human_at {
        return if sla.clock.elapsed(o.t0, h) <= sla.target_ms {
            SlaState::Met
        } else {
            SlaState::Missed
        };
    }
    let watched_until = now.min(o.horizon);
    if sla.clock.elapsed(o.t0, watched_until) > sla.target_ms {
        SlaState::Missed
    } else if now >= o.horizon {
        SlaState::Unobserved
    } else {
        SlaState::Pending
    }
}

/// Time to first human response.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstHuman {
    /// Kaplan–Meier median over all sent probes, censored ones included (seconds).
    pub km_median: KmQuantile,
    /// Kaplan–Meier 90th percentile (seconds).
    pub km_p90: KmQuantile,
    /// How many probes got a human response (the responders).
    pub responders: u64,
    /// Median among responders only (seconds).
    pub responders_p50: Option<f64>,
    /// 90th percentile among responders only (seconds).
    pub responders_p90: Option<f64>,
}

/// Time to first acknowledgement (auto-ack or bot), among acknowledged probes.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    /// How many probes were acknowledged.
    pub responders: u64,
    /// Median among them (seconds).
    pub responders_p50: Option<f64>,
}

/// Eligible and met probes of one group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// Probes whose deadline passed or that a human answered.
    pub eligible: u64,
    /// Of those, answered within T on the claim clock.
    pub met: u64,
}

impl Split {
    /// met / eligible; `None` when nothing is eligible.
    pub fn rate(&self) -> Option<f64> {
        (self.eligible > 0).then(|| self.met as f64 / self.eligible as f64)
    }

    /// 95 % Wilson interval of the rate.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        stats::wilson(self.met, self.eligible)
    }
}

/// The first-response claim of one channel, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    /// T in seconds.
    pub target_s: f64,
    /// `calendar` (24/7) or the calendar id.
    pub clock: String,
    /// Compliance target q.
    pub compliance_target: f64,
    /// Eligible and met probes.
    pub split: Split,
    /// Sent probes not eligible yet (T not passed, window open).
    pub pending: u64,
    /// Sent probes whose window closed before T passed on the claim clock.
    pub unobserved: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// The 24/7 claim of one channel, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct AlwaysOn {
    /// Probes sent inside the reference business hours (target's zone).
    pub business: Split,
    /// Probes sent outside them.
    pub off_hours: Split,
    /// Distinct hour-of-week buckets (0–167, target's zone) of eligible off-hours probes.
    pub buckets: usize,
    /// Two-sided Fisher exact p of business vs off-hours met/missed; `None` when either
    /// group has no eligible probe.
    pub fisher_p: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A rate over the probes where it is defined.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rate {
    /// Probes that matched.
    pub hits: u64,
    /// Probes where the question applies.
    pub checked: u64,
}

impl Rate {
    /// hits / checked; `None` when nothing was checked.
    pub fn value(&self) -> Option<f64> {
        (self.checked > 0).then(|| self.hits as f64 / self.checked as f64)
    }
}

/// Time to first human response of one urgency.
#[derive(Debug, Clone, PartialEq)]
pub struct UrgencyFigures {
    /// Sent probes of this urgency.
    pub sent: u64,
    /// Kaplan–Meier median (seconds).
    pub km_median: KmQuantile,
    /// Median among responders (seconds).
    pub responders_p50: Option<f64>,
}

/// Probes per hour of the week (row 0 = Monday, column = local hour), in the target's zone.
#[derive(Debug, Clone, PartialEq)]
pub struct HourOfWeekGrid {
    /// Probes sent in each hour.
    pub sent: [[u64; 24]; 7],
    /// Of those, answered by a human within T on the claim clock; `None` without an SLA.
    pub met: Option<[[u64; 24]; 7]>,
}

/// Which figures reviewer overrides changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OverrideMarker {
    /// Events of this channel's probes whose kind a reviewer overrode.
    pub events: u64,
    /// Report field paths whose value differs from the classifier-only scoring, e.g.
    /// `human_replied`, `sla.met`.
    pub changed: Vec<String>,
}

/// Measurement latency: observed_at − occurred_at of responses (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// One sent probe as scored: the inputs of every figure and verdict it contributes to, so a
/// report can show (and a reader can recount) each probe behind a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeScore {
    /// The probe's id.
    pub probe_id: String,
    /// Send time t0.
    pub t0: Millis,
    /// End of its observation window, t0 + W.
    pub horizon: Millis,
    /// First acknowledgement (auto-ack or bot) within the window.
    pub ack_at: Option<Millis>,
    /// First human response within the window.
    pub human_at: Option<Millis>,
    /// Seconds from t0 to the first acknowledgement.
    pub ack_s: Option<f64>,
    /// Seconds from t0 to the first human response.
    pub first_human_s: Option<f64>,
    /// Without a human response: seconds from t0 to where the Kaplan–Meier observation is
    /// censored, min(now, t0 + W) − t0.
    pub censored_s: Option<f64>,
    /// Whether a bounce came back.
    pub bounced: bool,
    /// Where the probe stands against the SLA; `None` without an SLA.
    pub sla: Option<SlaState>,
    /// Hour of the week (0 = Monday 00:00–00:59) of t0 in the target's zone.
    pub hour_of_week: Option<usize>,
    /// Whether t0 lies outside the reference business hours in the target's zone.
    pub off_hours: Option<bool>,
    /// Whether the first human response is in the probe's language (when detected).
    pub language_match: Option<bool>,
    /// Whether the first human response stated the expected facts (when checked).
    pub facts: Option<bool>,
}

/// One target × channel, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelScore {
    /// Which channel.
    pub channel: ChannelKind,
    /// Probes accepted (or possibly accepted) by the remote.
    pub sent: u64,
    /// Probes the remote refused; not in `sent`, never "no reply".
    pub send_failed: u64,
    /// Sent probes that bounced.
    pub bounced: u64,
    /// Sent probes with an auto-ack or bot response in the window.
    pub acked: u64,
    /// Sent probes with a human response in the window.
    pub human_replied: u64,
    /// Sent probes whose window closed without a human response.
    pub never_replied: u64,
    /// Sent probes still in their window without a human response.
    pub awaiting: u64,
    /// Time to first human response.
    pub first_human: FirstHuman,
    /// Time to first acknowledgement.
    pub ack: Ack,
    /// The first-response claim, when there is one.
    pub sla: Option<Sla>,
    /// The 24/7 verdict, when the target claims 24/7 and a first-response time here.
    pub availability_24_7: Option<AlwaysOn>,
    /// Responders whose first human reply is in the probe's language.
    pub language_match: Rate,
    /// Responders whose first human reply states the script's expected facts.
    pub facts: Rate,
    /// Normal-urgency probes.
    pub normal: UrgencyFigures,
    /// Urgent probes.
    pub urgent: UrgencyFigures,
    /// Sent and met per hour of the week.
    pub hour_of_week: HourOfWeekGrid,
    /// Measurement latency of responses.
    pub latency: Latency,
    /// Which figures overrides changed.
    pub overrides: OverrideMarker,
    /// The Kaplan–Meier curve of time to first human response (seconds) behind
    /// `first_human.km_*`, for plotting.
    pub km_curve: stats::KaplanMeier,
    /// The claimed first-response time in seconds, as written in the claim (also when there is
    /// no availability claim and hence no SLA); `None` when the target claims none.
    pub claimed_first_response_s: Option<f64>,
    /// Every sent probe with its verdict inputs, in send order.
    pub probes: Vec<ProbeScore>,
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn km_quantiles(outcomes: &[&ProbeOutcome], now: Millis) -> stats::KaplanMeier {
    let obs: Vec<(f64, bool)> = outcomes
        .iter()
        .map(|o| {
            let (ms, event) = o.km_observation(now);
            (seconds(ms), event)
        })
        .collect();
    stats::kaplan_meier(&obs)
}

/// Scores one target × channel from its sent probes and its count of send failures.
pub fn score_channel(
    spec: &ChannelSpec,
    sent: &[ProbeOutcome],
    send_failed: u64,
    latencies_ms: &[i64],
    now: Millis,
) -> ChannelScore {
    let all: Vec<&ProbeOutcome> = sent.iter().collect();
    let km = km_quantiles(&all, now);
    let human: Vec<f64> = sent
        .iter()
        .filter_map(ProbeOutcome::human_delay_ms)
        .map(seconds)
        .collect();
    let acks: Vec<f64> = sent
        .iter()
        .filter_map(ProbeOutcome::ack_delay_ms)
        .map(seconds)
        .collect();
    let latencies: Vec<f64> = latencies_ms.iter().copied().map(seconds).collect();

    let states: Vec<Option<SlaState>> = sent
        .iter()
        .map(|o| spec.sla.as_ref().map(|s| sla_state(o, s, now)))
        .collect();
    let local: Vec<Option<(usize, u16)>> = sent
        .iter()
        .map(|o| calendar::hour_of_week(&spec.tz, o.t0))
        .collect();

    let sla = spec.sla.as_ref().map(|s| {
        let mut split = Split::default();
        let (mut pending, mut unobserved) = (0, 0);
        for st in states.iter().flatten() {
            match st {
                SlaState::Met => {
                    split.eligible += 1;
                    split.met += 1;
                }
                SlaState::Missed => split.eligible += 1,
                SlaState::Pending => pending += 1,
                SlaState::Unobserved => unobserved += 1,
            }
        }
        Sla {
            target_s: seconds(s.target_ms),
            clock: s.clock.label().to_owned(),
            compliance_target: s.compliance,
            verdict: sla_verdict(split.eligible, split.met, s.compliance),
            split,
            pending,
            unobserved,
        }
    });

    let availability_24_7 = spec
        .sla
        .as_ref()
        .filter(|s| matches!(s.clock, ClaimClock::Continuous))
        .map(|s| {
            let (mut business, mut off_hours) = (Split::default(), Split::default());
            let mut buckets = BTreeSet::new();
            for (st, at) in states.iter().zip(&local) {
                let (Some(st), Some((how, minute))) = (st, at) else {
                    continue;
                };
                if !st.eligible() {
                    continue;
                }
                let inside = spec.business_hours.contains(how / 24, *minute);
                let group = if inside {
                    &mut business
                } else {
                    buckets.insert(*how);
                    &mut off_hours
                };
                group.eligible += 1;
                if *st == SlaState::Met {
                    group.met += 1;
                }
            }
            let fisher_p = (business.eligible > 0 && off_hours.eligible > 0).then(|| {
                stats::fisher_two_sided(
                    business.met,
                    business.eligible - business.met,
                    off_hours.met,
                    off_hours.eligible - off_hours.met,
                )
            });
            AlwaysOn {
                verdict: always_on_verdict(
                    &business,
                    &off_hours,
                    buckets.len(),
                    fisher_p,
                    s.compliance,
                ),
                business,
                off_hours,
                buckets: buckets.len(),
                fisher_p,
            }
        });

    let mut grid = HourOfWeekGrid {
        sent: [[0; 24]; 7],
        met: spec.sla.as_ref().map(|_| [[0; 24]; 7]),
    };
    for (st, at) in states.iter().zip(&local) {
        let Some((how, _)) = at else { continue };
        let (d, h) = (how / 24, how % 24);
        grid.sent[d][h] += 1;
        if let (Some(met), Some(SlaState::Met)) = (grid.met.as_mut(), st) {
            met[d][h] += 1;
        }
    }

    let mut language_match = Rate::default();
    let mut facts = Rate::default();
    for o in sent.iter().filter(|o| o.human_at.is_some()) {
        if let Some(same) = o.human_language_match {
            language_match.checked += 1;
            if same {
                language_match.hits += 1;
            }
        }
        if let Some(f) = o.human_facts {
            facts.checked += 1;
            if f {
                facts.hits += 1;
            }
        }
    }

    let by_urgency = |u: Urgency| {
        let group: Vec<&ProbeOutcome> = sent.iter().filter(|o| o.urgency == u).collect();
        let responders: Vec<f64> = group
            .iter()
            .filter_map(|o| o.human_delay_ms())
            .map(seconds)
            .collect();
        UrgencyFigures {
            sent: group.len() as u64,
            km_median: km_quantiles(&group, now).quantile(0.5),
            responders_p50: stats::quantile(&responders, 0.5),
        }
    };

    let count = |f: &dyn Fn(&ProbeOutcome) -> bool| sent.iter().filter(|o| f(o)).count() as u64;
    ChannelScore {
        channel: spec.channel,
        sent: sent.len() as u64,
        send_failed,
        bounced: count(&|o| o.bounced),
        acked: count(&|o| o.ack_at.is_some()),
        human_replied: count(&|o| o.human_at.is_some()),
        never_replied: count(&|o| o.human_at.is_none() && now >= o.horizon),
        awaiting: count(&|o| o.human_at.is_none() && now < o.horizon),
        first_human: FirstHuman {
            km_median: km.quantile(0.5),
            km_p90: km.quantile(0.9),
            responders: human.len() as u64,
            responders_p50: stats::quantile(&human, 0.5),
            responders_p90: stats::quantile(&human, 0.9),
        },
        ack: Ack {
            responders: acks.len() as u64,
            responders_p50: stats::quantile(&acks, 0.5),
        },
        sla,
        availability_24_7,
        language_match,
        facts,
        normal: by_urgency(Urgency::Normal),
        urgent: by_urgency(Urgency::Urgent),
        hour_of_week: grid,
        latency: Latency {
            p50: stats::quantile(&latencies, 0.5),
            max: latencies.iter().copied().reduce(f64::max),
        },
        overrides: OverrideMarker::default(),
        claimed_first_response_s: spec.sla.as_ref().map(|s| seconds(s.target_ms)),
        km_curve: km,
        probes: Vec::new(),
    }
}

/// Every sent probe of one target × channel with its verdict inputs, in the order given
/// (the per-probe listing behind the figures of [`score_channel`]).
pub fn probe_scores(spec: &ChannelSpec, sent: &[ProbeOutcome], now: Millis) -> Vec<ProbeScore> {
    let states: Vec<Option<SlaState>> = sent
        .iter()
        .map(|o| spec.sla.as_ref().map(|s| sla_state(o, s, now)))
        .collect();
    let local: Vec<Option<(usize, u16)>> = sent
        .iter()
        .map(|o| calendar::hour_of_week(&spec.tz, o.t0))
        .collect();
    sent.iter()
        .zip(states.iter().zip(&local))
        .map(|(o, (st, at))| {
            let human_s = o.human_delay_ms().map(seconds);
            ProbeScore {
                probe_id: o.probe_id.clone(),
                t0: o.t0,
                horizon: o.horizon,
                ack_at: o.ack_at,
                human_at: o.human_at,
                ack_s: o.ack_delay_ms().map(seconds),
                first_human_s: human_s,
                censored_s: human_s.is_none().then(|| seconds(o.km_observation(now).0)),
                bounced: o.bounced,
                sla: *st,
                hour_of_week: at.map(|(how, _)| how),
                off_hours: at.map(|(how, minute)| !spec.business_hours.contains(how / 24, minute)),
                language_match: o.human_at.and(o.human_language_match),
                facts: o.human_at.and(o.human_facts),
            }
        })
        .collect()
}

/// Language codes compare on their primary subtag, case-insensitively (`en-GB` = `en`).
fn same_language(a: &str, b: &str) -> bool {
    fn primary(s: &str) -> &str {
        s.split(['-', '_']).next().unwrap_or("")
    }
    primary(a).eq_ignore_ascii_case(primary(b))
}

impl ChannelScore {
    /// Every figure by its report field path, as comparable text: used to tell which ones
    /// reviewer overrides changed.
    pub fn figures(&self) -> Vec<(&'static str, String)> {
        let mut f: Vec<(&'static str, String)> = vec![
            ("sent", self.sent.to_string()),
            ("send_failed", self.send_failed.to_string()),
            ("bounced", self.bounced.to_string()),
            ("acked", self.acked.to_string()),
            ("human_replied", self.human_replied.to_string()),
            ("never_replied", self.never_replied.to_string()),
            ("awaiting", self.awaiting.to_string()),
            (
                "first_human_s.km_median",
                format!("{:?}", self.first_human.km_median),
            ),
            (
                "first_human_s.km_p90",
                format!("{:?}", self.first_human.km_p90),
            ),
            (
                "first_human_s.responders",
                self.first_human.responders.to_string(),
            ),
            (
                "first_human_s.responders_p50",
                format!("{:?}", self.first_human.responders_p50),
            ),
            (
                "first_human_s.responders_p90",
                format!("{:?}", self.first_human.responders_p90),
            ),
            ("ack_s.responders", self.ack.responders.to_string()),
            (
                "ack_s.responders_p50",
                format!("{:?}", self.ack.responders_p50),
            ),
            (
                "language_match_rate",
                format!("{:?}", self.language_match.value()),
            ),
            ("facts_accuracy", format!("{:?}", self.facts.value())),
            (
                "by_urgency.normal",
                format!(
                    "{} {:?} {:?}",
                    self.normal.sent, self.normal.km_median, self.normal.responders_p50
                ),
            ),
            (
                "by_urgency.urgent",
                format!(
                    "{} {:?} {:?}",
                    self.urgent.sent, self.urgent.km_median, self.urgent.responders_p50
                ),
            ),
            ("hour_of_week.met", format!("{:?}", self.hour_of_week.met)),
        ];
        if let Some(s) = &self.sla {
            f.push(("sla.eligible", s.split.eligible.to_string()));
            f.push(("sla.met", s.split.met.to_string()));
            f.push(("sla.rate", format!("{:?}", s.split.rate())));
            f.push(("sla.pending", s.pending.to_string()));
            f.push(("sla.unobserved", s.unobserved.to_string()));
            f.push(("sla.verdict", s.verdict.as_str().to_owned()));
        }
        if let Some(a) = &self.availability_24_7 {
            let split = |s: &Split| format!("{} {}", s.eligible, s.met);
            f.push(("availability_24_7.business", split(&a.business)));
            f.push(("availability_24_7.off_hours", split(&a.off_hours)));
            f.push(("availability_24_7.off_hours.buckets", a.buckets.to_string()));
            f.push(("availability_24_7.fisher_p", format!("{:?}", a.fisher_p)));
            f.push(("availability_24_7.verdict", a.verdict.as_str().to_owned()));
        }
        f
    }
}

/// One target, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScore {
    /// Target id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA zone name.
    pub timezone: String,
    /// `24/7`, the calendar id, or `None` without an availability claim.
    pub availability: Option<String>,
    /// Channels configured on the target or probed, in the order email, ticket, chat.
    pub channels: Vec<ChannelScore>,
    /// Where the claims were read and when, for the methodology.
    pub claims: ClaimSummary,
}

/// A target's claims as the report cites them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimSummary {
    /// Where the claims were read (URL).
    pub source: String,
    /// When they were read (`YYYY-MM-DD`).
    pub captured: String,
    /// Claimed support languages.
    pub languages: Vec<String>,
    /// The researcher's note on the claims.
    pub note: Option<String>,
    /// Whether a researcher marked the target's addresses and claims as checked.
    pub verified: bool,
}

/// The settings every figure depends on, for the methodology section.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    /// Compliance target q.
    pub compliance_target: f64,
    /// Observation window W per channel, in seconds (email, ticket, chat).
    pub observation_window_s: Vec<(ChannelKind, f64)>,
    /// Reference business hours of the 24/7 split (in each target's zone).
    pub business_hours: WeeklyHours,
    /// Calendars that availability claims name.
    pub calendars: Vec<CalendarSummary>,
}

impl Default for Method {
    fn default() -> Method {
        Method {
            compliance_target: 0.95,
            observation_window_s: Vec::new(),
            business_hours: WeeklyHours::office_default(),
            calendars: Vec::new(),
        }
    }
}

/// A business calendar a claim is measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSummary {
    /// Calendar id.
    pub id: String,
    /// IANA zone name.
    pub timezone: String,
    /// Opening hours.
    pub hours: WeeklyHours,
    /// Holidays (`YYYY-MM-DD`).
    pub holidays: Vec<String>,
}

/// Probes of a target the config does not know (e.g. imported from another vantage point).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTarget {
    /// The target id on the probes.
    pub id: String,
    /// How many probes.
    pub probes: u64,
}

/// The scored model every report renders.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredModel {
    /// `now` of the scoring.
    pub generated_at: Millis,
    /// Probes sent from (the `--since`, else the earliest probe; `None` with no probe).
    pub window_from: Option<Millis>,
    /// Probes sent before (the `--until`, else `now`).
    pub window_to: Millis,
    /// SHA-256 of the config the claims came from.
    pub config_sha256: String,
    /// Configured targets (filtered), in config order.
    pub targets: Vec<TargetScore>,
    /// Probes that were not scored because their target is not in the config.
    pub unknown_targets: Vec<UnknownTarget>,
    /// The settings the figures were computed with.
    pub method: Method,
}

/// What to score.
#[derive(Debug, Clone, Copy)]
pub struct ScoreInput<'a> {
    /// Targets, claims, calendars, windows and q.
    pub config: &'a Config,
    /// Probes (any order; those outside the window or targets are skipped).
    pub probes: &'a [Probe],
    /// Their events, with reviewer overrides in `kind` and the classifier's in
    /// `overridden_from`.
    pub events: &'a [Event],
    /// The instant the scoring is done at.
    pub now: Millis,
    /// Only probes sent at or after this.
    pub since: Option<Millis>,
    /// Only probes sent before this.
    pub until: Option<Millis>,
    /// Only these targets; empty = all.
    pub targets: &'a [String],
}

/// The send time used to select probes for a window: `sent_at`, else `created_at`.
pub fn probe_time(p: &Probe) -> Millis {
    p.sent_at.unwrap_or(p.created_at)
}

/// The channel spec of a target's channel under `config`.
pub fn channel_spec(
    config: &Config,
    target: &crate::config::Target,
    channel: ChannelKind,
) -> ChannelSpec {
    let window_ms = duration_ms(*config.settings.observation_window.get(channel));
    let sla = match (
        target.claims.availability.as_ref(),
        target.claims.first_response.get(channel),
    ) {
        (Some(av), Some(t)) => ClaimClock::for_availability(config, av).map(|clock| SlaSpec {
            target_ms: duration_ms(*t),
            clock,
            compliance: config.settings.compliance_target,
        }),
        _ => None,
    };
    ChannelSpec {
        channel,
        window_ms,
        sla,
        tz: target.timezone.clone(),
        business_hours: config.settings.business_hours.clone(),
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Scores every selected probe against the config's claims (with the per-probe listing of
/// each channel). The whole evidence is in memory here; [`Scorer`] is the streaming form.
pub fn score(input: ScoreInput<'_>) -> ScoredModel {
    let mut scorer = Scorer::new(
        input.config,
        input.now,
        input.since,
        input.until,
        input.targets,
        ScoreOptions { per_probe: true },
    );
    let mut events_of: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in input.events {
        events_of.entry(e.probe_id.as_str()).or_default().push(e);
    }
    for p in input.probes {
        let mut evs: Vec<&Event> = events_of.get(p.id.as_str()).cloned().unwrap_or_default();
        evs.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
        let rows: Vec<EventRow<'_>> = evs.into_iter().map(EventRow::from).collect();
        scorer.add(&ProbeRow::from(p), &rows);
    }
    scorer.finish()
}

/// Options of a scoring run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreOptions {
    /// Fill [`ChannelScore::probes`] (every probe with its verdict inputs): the HTML report
    /// lists them; the JSON report does not, and a large archive scores in far less memory
    /// without them.
    pub per_probe: bool,
}

/// One target × channel being accumulated.
struct Group {
    spec: ChannelSpec,
    /// As reviewed (overrides applied), in the order added.
    reviewed: Vec<ProbeOutcome>,
    /// Measurement latencies of the responses, ms.
    latencies: Vec<i64>,
    failed: u64,
    /// Events of this channel's probes whose kind a reviewer overrode.
    overridden: u64,
    /// The classifier's view of the probes an override touches: (index in `reviewed`, outcome).
    classified: Vec<(usize, ProbeOutcome)>,
}

/// The streaming form of [`score`]: probes are added one at a time with their events, then
/// [`Scorer::finish`] scores them. Holds one small [`ProbeOutcome`] per sent probe and the
/// response latencies, never the probes or events themselves, so a store scan can feed it an
/// archive of millions. Gives the same model as [`score`] on the same evidence.
pub struct Scorer<'c> {
    config: &'c Config,
    now: Millis,
    since: Option<Millis>,
    until: Option<Millis>,
    targets: Vec<String>,
    options: ScoreOptions,
    /// Config target id → its position in `config.targets`.
    index: HashMap<&'c str, usize>,
    /// Per config target, per channel (in `ChannelKind::ALL` order).
    groups: Vec<[Option<Group>; 3]>,
    unknown: BTreeMap<String, u64>,
    window_from: Option<Millis>,
    scratch: Vec<i64>,
}

impl<'c> Scorer<'c> {
    /// A scorer of probes sent in `[since, until)` (either bound optional) of `targets`
    /// (empty = all), at `now`.
    pub fn new(
        config: &'c Config,
        now: Millis,
        since: Option<Millis>,
        until: Option<Millis>,
        targets: &[String],
        options: ScoreOptions,
    ) -> Scorer<'c> {
        Scorer {
            config,
            now,
            since,
            until,
            targets: targets.to_vec(),
            options,
            index: config
                .targets
                .iter()
                .enumerate()
                .map(|(i, t)| (t.id.as_str(), i))
                .collect(),
            groups: config.targets.iter().map(|_| [None, None, None]).collect(),
            unknown: BTreeMap::new(),
            window_from: None,
            scratch: Vec::new(),
        }
    }

    /// Adds one probe with its events, ordered by (occurred_at, id). Probes outside the
    /// window or the targets are skipped.
    pub fn add(&mut self, probe: &ProbeRow<'_>, events: &[EventRow<'_>]) {
        let t = probe.sent_at.unwrap_or(probe.created_at);
        if self.since.is_some_and(|s| t < s)
            || self.until.is_some_and(|u| t >= u)
            || (!self.targets.is_empty() && !self.targets.iter().any(|x| x == probe.target))
        {
            return;
        }
        self.window_from = Some(self.window_from.map_or(t, |w| w.min(t)));
        let Some(&ti) = self.index.get(probe.target) else {
            match self.unknown.get_mut(probe.target) {
                Some(n) => *n += 1,
                None => {
                    self.unknown.insert(probe.target.to_owned(), 1);
                }
            }
            return;
        };
        let ci = ChannelKind::ALL
            .iter()
            .position(|c| *c == probe.channel)
            .unwrap_or(0);
        let config = self.config;
        let group = self.groups[ti][ci].get_or_insert_with(|| Group {
            spec: channel_spec(config, &config.targets[ti], probe.channel),
            reviewed: Vec::new(),
            latencies: Vec::new(),
            failed: 0,
            overridden: 0,
            classified: Vec::new(),
        });
        let overridden = events.iter().filter(|e| e.kind != e.classified).count() as u64;
        group.overridden += overridden;
        let keep_id = self.options.per_probe;
        let window = group.spec.window_ms;
        match probe::reduce_rows(
            probe,
            events,
            window,
            View::Reviewed,
            keep_id,
            &mut group.latencies,
        ) {
            Sending::Sent(o) => {
                if overridden > 0 {
                    self.scratch.clear();
                    if let Sending::Sent(c) = probe::reduce_rows(
                        probe,
                        events,
                        window,
                        View::Classifier,
                        keep_id,
                        &mut self.scratch,
                    ) {
                        group.classified.push((group.reviewed.len(), c));
                    }
                }
                group.reviewed.push(o);
            }
            Sending::SendFailed => group.failed += 1,
            Sending::InFlight => {}
        }
    }

    /// Scores what was added. The target × channel groups are scored on all cores (they are
    /// independent; a large archive has a million outcomes to sort through).
    pub fn finish(mut self) -> ScoredModel {
        let config = self.config;
        let now = self.now;
        let per_probe = self.options.per_probe;
        let mut jobs: Vec<(usize, ChannelKind, Group)> = Vec::new();
        for (ti, t) in config.targets.iter().enumerate() {
            if !self.targets.is_empty() && !self.targets.contains(&t.id) {
                continue;
            }
            for (ci, &kind) in ChannelKind::ALL.iter().enumerate() {
                let group = self.groups[ti][ci].take();
                if t.channel(kind).is_none() && group.is_none() {
                    continue;
                }
                let g = group.unwrap_or_else(|| Group {
                    spec: channel_spec(config, t, kind),
                    reviewed: Vec::new(),
                    latencies: Vec::new(),
                    failed: 0,
                    overridden: 0,
                    classified: Vec::new(),
                });
                jobs.push((ti, kind, g));
            }
        }
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(jobs.len());
        let mut scored: Vec<(usize, usize, ChannelScore)> = if workers <= 1 {
            jobs.into_iter()
                .enumerate()
                .map(|(i, (ti, kind, g))| {
                    let t = &config.targets[ti];
                    (i, ti, score_group(t, kind, g, now, per_probe))
                })
                .collect()
        } else {
            let mut shares: Vec<Vec<(usize, usize, ChannelKind, Group)>> =
                (0..workers).map(|_| Vec::new()).collect();
            for (i, (ti, kind, g)) in jobs.into_iter().enumerate() {
                shares[i % workers].push((i, ti, kind, g));
            }
            std::thread::scope(|scope| {
                let handles: Vec<_> = shares
                    .into_iter()
                    .map(|share| {
                        scope.spawn(move || {
                            share
                                .into_iter()
                                .map(|(i, ti, kind, g)| {
                                    let t = &config.targets[ti];
                                    (i, ti, score_group(t, kind, g, now, per_probe))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().expect("scoring thread panicked"))
                    .collect()
            })
        };
        scored.sort_by_key(|(i, ..)| *i);
        let mut scored = scored.into_iter().peekable();
        let mut targets = Vec::new();
        for (ti, t) in config.targets.iter().enumerate() {
            if !self.targets.is_empty() && !self.targets.contains(&t.id) {
                continue;
            }
            let mut channels = Vec::new();
            while let Some((_, _, c)) = scored.next_if(|(_, of, _)| *of == ti) {
                channels.push(c);
            }
            targets.push(TargetScore {
                id: t.id.clone(),
                name: t.name.clone(),
                timezone: t.timezone_name.clone(),
                availability: t.claims.availability.as_ref().map(|a| match a {
                    Availability::AlwaysOn => "24/7".to_owned(),
                    Availability::Calendar(id) => id.clone(),
                }),
                channels,
                claims: ClaimSummary {
                    source: t.claims.source.clone(),
                    captured: t.claims.captured.to_string(),
                    languages: t.claims.languages.clone(),
                    note: t.claims.note.clone(),
                    verified: t.verified,
                },
            });
        }
        ScoredModel {
            generated_at: now,
            window_from: self.since.or(self.window_from),
            window_to: self.until.unwrap_or(now),
            config_sha256: config.sha256.clone(),
            targets,
            unknown_targets: std::mem::take(&mut self.unknown)
                .into_iter()
                .map(|(id, probes)| UnknownTarget { id, probes })
                .collect(),
            method: method(config),
        }
    }
}

/// Scores one target × channel group of a [`Scorer`].
fn score_group(
    t: &crate::config::Target,
    kind: ChannelKind,
    mut g: Group,
    now: Millis,
    per_probe: bool,
) -> ChannelScore {
    let mut reviewed = score_channel(&g.spec, &g.reviewed, g.failed, &g.latencies, now);
    if g.overridden > 0 {
        let mut outcomes = g.reviewed.clone();
        for (i, o) in std::mem::take(&mut g.classified) {
            outcomes[i] = o;
        }
        let classified = score_channel(&g.spec, &outcomes, g.failed, &[], now);
        let before: HashMap<_, _> = classified.figures().into_iter().collect();
        reviewed.overrides.changed = reviewed
            .figures()
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|(k, _)| k.to_owned())
            .collect();
    }
    reviewed.overrides.events = g.overridden;
    reviewed.claimed_first_response_s = t
        .claims
        .first_response
        .get(kind)
        .map(|d| seconds(duration_ms(d)));
    if per_probe {
        // In send order, as the evidence is listed.
        g.reviewed
            .sort_by(|a, b| (a.t0, &a.probe_id).cmp(&(b.t0, &b.probe_id)));
        reviewed.probes = probe_scores(&g.spec, &g.reviewed, now);
    }
    reviewed
}

fn method(config: &Config) -> Method {
    Method {
        compliance_target: config.settings.compliance_target,
        observation_window_s: ChannelKind::ALL
            .iter()
            .map(|&c| {
                (
                    c,
                    seconds(duration_ms(*config.settings.observation_window.get(c))),
                )
            })
            .collect(),
        business_hours: config.settings.business_hours.clone(),
        calendars: config
            .calendars
            .iter()
            .map(|c| CalendarSummary {
                id: c.id.clone(),
                timezone: c.timezone_name.clone(),
                hours: c.hours.clone(),
                holidays: c.holidays.iter().map(ToString::to_string).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
