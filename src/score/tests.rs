//! Scoring tests: every verdict rule of DESIGN.md, the per-probe definitions (censoring, send
//! failures, bounces, sent_unconfirmed), calendar claims, overrides, and property tests.

use std::path::Path;

use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::calendar::BusinessCalendar;
use super::probe::ProbeOutcome;
use super::*;
use crate::model::{EventKind, MatchMethod, ProbeStatus};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Monday 2026-11-16 00:00 in Singapore (UTC+8, no DST).
fn monday() -> Millis {
    "2026-11-16T00:00:00+08:00"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond()
}

/// `day` days and `hour` hours after Monday 00:00 Singapore.
fn sgt(day: i64, hour: i64) -> Millis {
    monday() + day * DAY + hour * HOUR
}

fn spec(clock: ClaimClock, target_ms: i64) -> ChannelSpec {
    ChannelSpec {
        channel: ChannelKind::Email,
        window_ms: 7 * DAY,
        sla: Some(SlaSpec {
            target_ms,
            clock,
            compliance: 0.95,
        }),
        tz: TimeZone::get("Asia/Singapore").unwrap(),
        business_hours: WeeklyHours::office_default(),
    }
}

fn answered(id: &str, t0: Millis, after: Option<i64>) -> ProbeOutcome {
    let mut o = ProbeOutcome::sent(id, t0, 7 * DAY);
    o.human_at = after.map(|a| t0 + a);
    o
}

/// Long after every window closed.
fn later() -> Millis {
    sgt(60, 0)
}

// ---- SLA verdict rules -------------------------------------------------------------------

#[test]
fn sla_insufficient_evidence_below_ten_eligible() {
    assert_eq!(sla_verdict(9, 9, 0.95), Verdict::InsufficientEvidence);
    assert_eq!(sla_verdict(0, 0, 0.95), Verdict::InsufficientEvidence);
}

#[test]
fn sla_contradicted_when_wilson_upper_bound_is_below_q() {
    // 5/10: Wilson upper 0.7634 < 0.95.
    assert_eq!(sla_verdict(10, 5, 0.95), Verdict::Contradicted);
    // 17/20: upper 0.9476 < 0.95 although 0.85 is not far off.
    assert_eq!(sla_verdict(20, 17, 0.95), Verdict::Contradicted);
}

#[test]
fn sla_supported_when_rate_reaches_q() {
    assert_eq!(sla_verdict(10, 10, 0.95), Verdict::Supported);
    // Exactly q: 19/20 = 0.95.
    assert_eq!(sla_verdict(20, 19, 0.95), Verdict::Supported);
}

#[test]
fn sla_inconclusive_in_between() {
    // 18/20 = 0.90 < q, Wilson upper 0.9721 ≥ q.
    assert_eq!(sla_verdict(20, 18, 0.95), Verdict::Inconclusive);
}

// ---- 24/7 verdict rules ------------------------------------------------------------------

fn split(eligible: u64, met: u64) -> Split {
    Split { eligible, met }
}

#[test]
fn always_on_insufficient_with_few_off_hours_probes_or_buckets() {
    let business = split(20, 20);
    assert_eq!(
        always_on_verdict(&business, &split(9, 9), 9, Some(1.0), 0.95),
        Verdict::InsufficientEvidence
    );
    assert_eq!(
        always_on_verdict(&business, &split(30, 30), 3, Some(1.0), 0.95),
        Verdict::InsufficientEvidence
    );
}

#[test]
fn always_on_contradicted_by_the_off_hours_upper_bound() {
    assert_eq!(
        always_on_verdict(&split(0, 0), &split(10, 5), 6, None, 0.95),
        Verdict::Contradicted
    );
}

#[test]
fn always_on_contradicted_by_fisher() {
    // Off-hours 18/20 (upper 0.972 ≥ q) vs business 100/100: Fisher p = 0.0266 < 0.05
    // (R: fisher.test(matrix(c(100, 18, 0, 2), 2))$p.value).
    let p = stats::fisher_two_sided(100, 0, 18, 2);
    assert!((p - 0.026_610_644).abs() < 1e-8, "{p}");
    assert_eq!(
        always_on_verdict(&split(100, 100), &split(20, 18), 8, Some(p), 0.95),
        Verdict::Contradicted
    );
    // The same off-hours rate against 60/60 business: p = 0.0601, not significant.
    let p = stats::fisher_two_sided(60, 0, 18, 2);
    assert_eq!(
        always_on_verdict(&split(60, 60), &split(20, 18), 8, Some(p), 0.95),
        Verdict::Inconclusive
    );
}

#[test]
fn always_on_supported_and_inconclusive() {
    assert_eq!(
        always_on_verdict(&split(20, 20), &split(20, 20), 8, Some(1.0), 0.95),
        Verdict::Supported
    );
    assert_eq!(
        always_on_verdict(&split(20, 18), &split(20, 18), 8, Some(1.0), 0.95),
        Verdict::Inconclusive
    );
    // Off-hours meets q but is significantly worse than a perfect business: not supported.
    let p = stats::fisher_two_sided(2000, 0, 95, 5);
    assert!(p < 0.05);
    assert_eq!(
        always_on_verdict(&split(2000, 2000), &split(100, 95), 24, Some(p), 0.95),
        Verdict::Inconclusive
    );
}

/// The 24/7 rules end to end: probes placed at known Singapore times.
#[test]
fn always_on_from_probes_split_by_local_send_time() {
    let mut probes = Vec::new();
    // 12 business-hours probes (Mon–Fri 10:00–15:00 SGT), all answered in 1 h.
    for i in 0..12 {
        probes.push(answered(
            &format!("b{i}"),
            sgt(i % 5, 10 + i % 5),
            Some(HOUR),
        ));
    }
    // 12 off-hours probes at 6 distinct hours of the week (Sat/Sun 02:00/12:00/20:00),
    // answered in 2 h.
    for i in 0..12 {
        let (d, h) = [(5, 2), (5, 12), (5, 20), (6, 2), (6, 12), (6, 20)][i % 6];
        probes.push(answered(&format!("o{i}"), sgt(d, h), Some(2 * HOUR)));
    }
    let s = score_channel(
        &spec(ClaimClock::Continuous, 24 * HOUR),
        &probes,
        0,
        &[],
        later(),
    );
    let a = s.availability_24_7.clone().unwrap();
    assert_eq!((a.business.eligible, a.business.met), (12, 12));
    assert_eq!((a.off_hours.eligible, a.off_hours.met), (12, 12));
    assert_eq!(a.buckets, 6);
    assert_eq!(a.fisher_p, Some(1.0));
    assert_eq!(a.verdict, Verdict::Supported);
    assert_eq!(s.sla.as_ref().unwrap().verdict, Verdict::Supported);

    // Off-hours replies take 30 h: every off-hours probe misses 24 h.
    for p in probes.iter_mut().filter(|p| p.probe_id.starts_with('o')) {
        p.human_at = Some(p.t0 + 30 * HOUR);
    }
    let s = score_channel(
        &spec(ClaimClock::Continuous, 24 * HOUR),
        &probes,
        0,
        &[],
        later(),
    );
    let a = s.availability_24_7.unwrap();
    assert_eq!((a.off_hours.eligible, a.off_hours.met), (12, 0));
    assert_eq!(a.verdict, Verdict::Contradicted);
    // Overall 12/24 met.
    assert_eq!(s.sla.unwrap().verdict, Verdict::Contradicted);
    // Grid: Saturday 02:00 got 2 probes, none met.
    assert_eq!(s.hour_of_week.sent[5][2], 2);
    assert_eq!(s.hour_of_week.met.unwrap()[5][2], 0);
    assert_eq!(s.hour_of_week.met.unwrap()[0][10], 3);
}

#[test]
fn calendar_claims_get_no_24_7_verdict() {
    let cal = ClaimClock::Business(Box::new(BusinessCalendar {
        id: "sg-office".into(),
        tz: TimeZone::get("Asia/Singapore").unwrap(),
        hours: WeeklyHours::office_default(),
        holidays: Default::default(),
    }));
    // Sent Friday 17:30 SGT, answered Monday 09:45: 75 business minutes.
    let p = answered("p", sgt(4, 17) + 30 * MIN, Some(64 * HOUR + 15 * MIN));
    let s = score_channel(
        &spec(cal.clone(), 75 * MIN),
        std::slice::from_ref(&p),
        0,
        &[],
        later(),
    );
    assert!(s.availability_24_7.is_none());
    let sla = s.sla.unwrap();
    assert_eq!(sla.clock, "sg-office");
    assert_eq!((sla.split.eligible, sla.split.met), (1, 1));
    // One minute less promised: missed.
    let s = score_channel(&spec(cal, 74 * MIN), &[p], 0, &[], later());
    assert_eq!(s.sla.unwrap().split.met, 0);
}

// ---- Per-probe definitions ---------------------------------------------------------------

fn stored_probe(id: &str, status: ProbeStatus, sent_at: Option<Millis>) -> Probe {
    Probe {
        id: id.into(),
        target: "kucoin".into(),
        channel: ChannelKind::Email,
        script: "s".into(),
        persona: "lin".into(),
        language: "en".into(),
        urgency: Urgency::Normal,
        status,
        token: format!("tok-{id}"),
        message_id: None,
        sender: None,
        recipient: None,
        subject: None,
        raw_sha256: None,
        created_at: sent_at.unwrap_or(sgt(0, 10)) - 1000,
        sent_at,
        send_error: None,
        closed_at: None,
        vantage: "v".into(),
    }
}

fn stored_event(id: &str, probe: &str, kind: EventKind, at: Millis) -> Event {
    Event {
        id: id.into(),
        probe_id: probe.into(),
        kind,
        overridden_from: None,
        occurred_at: at,
        observed_at: at + 2000,
        source: format!("src-{id}"),
        match_method: Some(MatchMethod::Thread),
        language: Some("en".into()),
        facts_matched: Some(true),
        reasons: vec![],
        raw_sha256: None,
        mail: None,
    }
}

#[test]
fn reduce_applies_the_definitions() {
    let t0 = sgt(0, 10);
    let p = stored_probe("p", ProbeStatus::Sent, Some(t0));
    let evs = [
        stored_event("a", "p", EventKind::Accepted, t0),
        stored_event("b", "p", EventKind::Bounce, t0 + MIN),
        stored_event("c", "p", EventKind::AutoAck, t0 + 2 * MIN),
        stored_event("d", "p", EventKind::FollowUp, t0 + 3 * MIN),
        stored_event("e", "p", EventKind::Human, t0 + HOUR),
        stored_event("f", "p", EventKind::Human, t0 + 2 * HOUR),
        stored_event("x", "other", EventKind::Human, t0 + 5 * MIN),
    ];
    let refs: Vec<&Event> = evs.iter().collect();
    let Sending::Sent(o) = probe::reduce(&p, &refs, 7 * DAY, View::Reviewed) else {
        panic!("a sent probe");
    };
    assert!(o.bounced);
    assert_eq!(o.ack_at, Some(t0 + 2 * MIN));
    assert_eq!(o.human_at, Some(t0 + HOUR));
    let mut mine: Vec<&Event> = refs.iter().copied().filter(|e| e.probe_id == "p").collect();
    mine.sort_by_key(|e| e.occurred_at);
    let rows: Vec<probe::EventRow<'_>> = mine.into_iter().map(probe::EventRow::from).collect();
    let mut latencies = Vec::new();
    let Sending::Sent(same) = probe::reduce_rows(
        &probe::ProbeRow::from(&p),
        &rows,
        7 * DAY,
        View::Reviewed,
        true,
        &mut latencies,
    ) else {
        panic!("a sent probe");
    };
    assert_eq!(same, o);
    assert_eq!(latencies, vec![2000, 2000, 2000]);

    // sent_unconfirmed without sent_at: t0 = created_at.
    let u = stored_probe("u", ProbeStatus::SentUnconfirmed, None);
    let Sending::Sent(o) = probe::reduce(&u, &[], 7 * DAY, View::Reviewed) else {
        panic!("sent_unconfirmed counts as sent");
    };
    assert_eq!(o.t0, u.created_at);

    let f = stored_probe("f", ProbeStatus::SendFailed, None);
    assert_eq!(
        probe::reduce(&f, &[], DAY, View::Reviewed),
        Sending::SendFailed
    );
    let s = stored_probe("s", ProbeStatus::Sending, None);
    assert_eq!(
        probe::reduce(&s, &[], DAY, View::Reviewed),
        Sending::InFlight
    );

    // A reply after the observation window is outside the study.
    let late = [stored_event("l", "p", EventKind::Human, t0 + 8 * DAY)];
    let refs: Vec<&Event> = late.iter().collect();
    let Sending::Sent(o) = probe::reduce(&p, &refs, 7 * DAY, View::Reviewed) else {
        panic!()
    };
    assert_eq!(o.human_at, None);
    assert_eq!(o.km_observation(later()), (7 * DAY, false));
}

#[test]
fn counts_censoring_and_sla_states() {
    let sp = spec(ClaimClock::Continuous, 24 * HOUR);
    let now = sgt(3, 0);
    let mut bounced = answered("bounced", sgt(0, 1), None);
    bounced.bounced = true;
    let mut acked = answered("acked", sgt(0, 2), Some(5 * HOUR));
    acked.ack_at = Some(acked.t0 + MIN);
    let probes = vec![
        bounced,                                      // missed (deadline passed), never answered
        acked,                                        // met
        answered("late", sgt(0, 3), Some(30 * HOUR)), // missed
        answered("pending", sgt(2, 12), None),        // 12 h in: pending
    ];
    let s = score_channel(&sp, &probes, 2, &[], now);
    assert_eq!(s.sent, 4);
    assert_eq!(s.send_failed, 2);
    assert_eq!(s.bounced, 1);
    assert_eq!(s.acked, 1);
    assert_eq!(s.human_replied, 2);
    // No window has closed yet (7 days): unanswered probes are awaiting, not never-replied.
    assert_eq!((s.never_replied, s.awaiting), (0, 2));
    let sla = s.sla.unwrap();
    assert_eq!((sla.split.eligible, sla.split.met, sla.pending), (3, 1, 1));
    assert_eq!(s.ack.responders_p50, Some(60.0));
    assert_eq!(s.first_human.responders_p50, Some(17.5 * 3600.0));
    // KM: events at 5 h and 30 h; the bounced probe is censored at now − t0 = 71 h, the
    // pending one at 12 h. S(5h) = 3/4, S(30h) = 3/4 · 1/2 = 3/8 → median 30 h.
    assert_eq!(
        s.first_human.km_median,
        stats::KmQuantile::Reached(30.0 * 3600.0)
    );
    assert_eq!(s.first_human.km_p90, stats::KmQuantile::NotReached);
}

#[test]
fn unobserved_when_the_window_closes_before_a_calendar_deadline() {
    // Chat: 1 h window, 5 min on office hours; sent Friday 20:00 SGT, never answered.
    let cal = ClaimClock::Business(Box::new(BusinessCalendar {
        id: "office".into(),
        tz: TimeZone::get("Asia/Singapore").unwrap(),
        hours: WeeklyHours::office_default(),
        holidays: Default::default(),
    }));
    let mut sp = spec(cal, 5 * MIN);
    sp.window_ms = HOUR;
    let p = ProbeOutcome::sent("chat", sgt(4, 20), HOUR);
    let s = score_channel(&sp, &[p], 0, &[], later());
    let sla = s.sla.unwrap();
    assert_eq!((sla.split.eligible, sla.unobserved), (0, 1));
    assert_eq!(s.never_replied, 1);
}

#[test]
fn no_claim_means_no_sla() {
    let mut sp = spec(ClaimClock::Continuous, HOUR);
    sp.sla = None;
    let s = score_channel(&sp, &[answered("a", sgt(0, 1), Some(MIN))], 0, &[], later());
    assert!(s.sla.is_none() && s.availability_24_7.is_none());
    assert!(s.hour_of_week.met.is_none());
    assert_eq!(s.human_replied, 1);
}

#[test]
fn language_facts_and_urgency() {
    let mut a = answered("a", sgt(0, 1), Some(HOUR));
    a.human_language_match = Some(true);
    a.human_facts = Some(true);
    // A zh probe answered in en.
    let mut b = answered("b", sgt(0, 2), Some(3 * HOUR));
    b.human_language_match = Some(false);
    b.human_facts = Some(false);
    b.urgency = Urgency::Urgent;
    let mut c = answered("c", sgt(0, 3), Some(2 * HOUR));
    c.human_language_match = None;
    let s = score_channel(
        &spec(ClaimClock::Continuous, DAY),
        &[a, b, c, answered("d", sgt(0, 4), None)],
        0,
        &[],
        later(),
    );
    assert_eq!((s.language_match.hits, s.language_match.checked), (1, 2));
    assert_eq!(s.facts.value(), Some(0.5));
    assert_eq!(s.urgent.sent, 1);
    assert_eq!(s.urgent.responders_p50, Some(3.0 * 3600.0));
    assert_eq!(s.normal.sent, 3);
    assert_eq!(s.normal.responders_p50, Some(1.5 * 3600.0));
    assert_eq!(s.normal.km_median, stats::KmQuantile::Reached(2.0 * 3600.0));
}

// ---- Whole model, with a config and overrides ----------------------------------------------

const CONFIG: &str = r#"
[[mailbox]]
id = "m"
smtp = "smtps://mail.example.org"
imap = "imaps://mail.example.org"
username = "u"
password-env = "X"

[[persona]]
id = "lin"
name = "Lin"
email = "lin@example.org"
mailbox = "m"
languages = ["en"]

[[script]]
id = "s"
[script.text.en]
subject = "s"
body = "b"

[[target]]
id = "kucoin"
name = "KuCoin"
timezone = "Asia/Singapore"
[target.claims]
source = "https://example.org"
captured = "2026-11-01"
availability = "24/7"
first-response = { email = "1h" }
[[target.channel]]
kind = "email"
address = "support@kucoin.example"

[[target]]
id = "htx"
name = "HTX"
timezone = "Asia/Singapore"
[target.claims]
source = "https://example.org"
captured = "2026-11-01"
[[target.channel]]
kind = "email"
address = "support@htx.example"
"#;

fn config() -> Config {
    crate::config::parse(CONFIG, Path::new("probes.toml")).unwrap()
}

#[test]
fn score_marks_figures_changed_by_overrides() {
    let config = config();
    let t0 = sgt(0, 10);
    let probes = vec![
        stored_probe("p1", ProbeStatus::Sent, Some(t0)),
        stored_probe("p2", ProbeStatus::SendFailed, None),
        Probe {
            target: "elsewhere".into(),
            ..stored_probe("p3", ProbeStatus::Sent, Some(t0))
        },
    ];
    // The classifier called the reply an auto-ack; a reviewer says a human wrote it.
    let mut e = stored_event("e1", "p1", EventKind::Human, t0 + 10 * MIN);
    e.overridden_from = Some(EventKind::AutoAck);
    let model = score(ScoreInput {
        config: &config,
        probes: &probes,
        events: &[e],
        now: later(),
        since: None,
        until: None,
        targets: &[],
    });
    assert_eq!(model.window_from, Some(t0 - 1000));
    assert_eq!(
        model.unknown_targets,
        vec![UnknownTarget {
            id: "elsewhere".into(),
            probes: 1
        }]
    );
    let kucoin = &model.targets[0];
    assert_eq!(kucoin.availability.as_deref(), Some("24/7"));
    let c = &kucoin.channels[0];
    assert_eq!(
        (c.sent, c.send_failed, c.human_replied, c.acked),
        (1, 1, 1, 0)
    );
    assert_eq!(c.overrides.events, 1);
    for field in [
        "human_replied",
        "acked",
        "sla.met",
        "first_human_s.km_median",
    ] {
        assert!(
            c.overrides.changed.iter().any(|f| f == field),
            "{field} not in {:?}",
            c.overrides.changed
        );
    }
    assert!(!c.overrides.changed.iter().any(|f| f == "sent"));
    // HTX claims nothing: null SLA and 24/7, figures still there.
    let htx = &model.targets[1];
    assert_eq!(htx.availability, None);
    assert!(htx.channels[0].sla.is_none());
    assert_eq!(htx.channels[0].sent, 0);

    // --target and --since filter.
    let only = score(ScoreInput {
        config: &config,
        probes: &probes,
        events: &[],
        now: later(),
        since: Some(t0 + 1),
        until: None,
        targets: &["kucoin".into()],
    });
    assert_eq!(only.targets.len(), 1);
    assert_eq!(only.targets[0].channels[0].sent, 0);
    assert!(only.unknown_targets.is_empty());

    let json: serde_json::Value =
        serde_json::from_str(&crate::report::json::render(&model)).unwrap();
    assert_eq!(json["schema"], "deskprobe.report/1");
    let ch = &json["targets"][0]["channels"][0];
    assert_eq!(ch["sla"]["verdict"], "insufficient_evidence");
    assert_eq!(ch["sla"]["clock"], "calendar");
    assert_eq!(ch["first_human_s"]["km_median"], 600.0);
    assert!(json["targets"][1]["channels"][0]["sla"].is_null());
    assert!(json["targets"][1]["channels"][0]["availability_24_7"].is_null());
}

// ---- Properties ------------------------------------------------------------------------

/// (send hour offset from Monday 00:00 SGT, reply delay in minutes if any, bounced).
fn probe_strategy() -> impl Strategy<Value = (i64, Option<i64>, bool)> {
    (
        0i64..24 * 21,
        proptest::option::of(0i64..4 * 24 * 60),
        any::<bool>(),
    )
}

fn build(raw: &[(i64, Option<i64>, bool)], now: Millis) -> Vec<ProbeOutcome> {
    raw.iter()
        .enumerate()
        .map(|(i, &(h, reply, bounced))| {
            let t0 = monday() + h * HOUR;
            let mut o = ProbeOutcome::sent(&format!("p{i}"), t0, 7 * DAY);
            o.bounced = bounced;
            o.human_at = reply
                .map(|m| t0 + m * MIN)
                .filter(|&at| at <= now && at <= o.horizon);
            o
        })
        .collect()
}

fn rank(v: Verdict) -> Option<u8> {
    match v {
        Verdict::Contradicted => Some(0),
        Verdict::Inconclusive => Some(1),
        Verdict::Supported => Some(2),
        Verdict::InsufficientEvidence => None,
    }
}

fn not_worse(before: Verdict, after: Verdict) -> bool {
    match (rank(before), rank(after)) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(b), Some(a)) => a >= b,
    }
}

fn office_clock() -> ClaimClock {
    ClaimClock::Business(Box::new(BusinessCalendar {
        id: "office".into(),
        tz: TimeZone::get("Asia/Singapore").unwrap(),
        hours: WeeklyHours::office_default(),
        holidays: ["2026-11-18".parse().unwrap()].into_iter().collect(),
    }))
}

fn in_unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn wilson_contains_the_rate(n in 1u64..500, x in 0u64..500) {
        let x = x.min(n);
        let (lo, hi) = stats::wilson(x, n).unwrap();
        let rate = x as f64 / n as f64;
        prop_assert!(in_unit(lo) && in_unit(hi));
        prop_assert!(lo <= rate + 1e-12 && rate <= hi + 1e-12, "{lo} {rate} {hi}");
    }

    #[test]
    fn km_survival_is_non_increasing(obs in proptest::collection::vec((0u32..1000, any::<bool>()), 0..60)) {
        let obs: Vec<(f64, bool)> = obs.into_iter().map(|(t, e)| (t as f64, e)).collect();
        let km = stats::kaplan_meier(&obs);
        let mut last = 1.0;
        for &(_, s) in &km.steps {
            prop_assert!(in_unit(s));
            prop_assert!(s <= last + 1e-12);
            last = s;
        }
        if let (Some(m), Some(p)) = (km.quantile(0.5).value(), km.quantile(0.9).value()) {
            prop_assert!(m <= p);
        }
    }

    #[test]
    fn fisher_p_is_a_probability(a in 0u64..40, b in 0u64..40, c in 0u64..40, d in 0u64..40) {
        let p = stats::fisher_two_sided(a, b, c, d);
        prop_assert!(in_unit(p));
        prop_assert!((p - stats::fisher_two_sided(c, d, a, b)).abs() < 1e-9);
    }

    #[test]
    fn rates_and_counts_are_consistent(
        raw in proptest::collection::vec(probe_strategy(), 0..40),
        now_h in 0i64..24 * 40,
        calendar in any::<bool>(),
    ) {
        let now = monday() + now_h * HOUR;
        let clock = if calendar { office_clock() } else { ClaimClock::Continuous };
        let s = score_channel(&spec(clock, 8 * HOUR), &build(&raw, now), 0, &[], now);
        let sla = s.sla.as_ref().unwrap();
        prop_assert!(sla.split.met <= sla.split.eligible);
        prop_assert!(sla.split.eligible <= s.sent);
        prop_assert_eq!(sla.split.eligible + sla.pending + sla.unobserved, s.sent);
        prop_assert_eq!(s.human_replied + s.never_replied + s.awaiting, s.sent);
        for r in [sla.split.rate(), s.language_match.value(), s.facts.value()].into_iter().flatten() {
            prop_assert!(in_unit(r));
        }
        if let (Some(rate), Some((lo, hi))) = (sla.split.rate(), sla.split.ci95()) {
            prop_assert!(lo <= rate + 1e-12 && rate <= hi + 1e-12);
        }
        if let Some(a) = &s.availability_24_7 {
            prop_assert_eq!(a.business.eligible + a.off_hours.eligible, sla.split.eligible);
            for r in [a.business.rate(), a.off_hours.rate(), a.fisher_p].into_iter().flatten() {
                prop_assert!(in_unit(r));
            }
        }
        let grid_sent: u64 = s.hour_of_week.sent.iter().flatten().sum();
        prop_assert_eq!(grid_sent, s.sent);
    }

    /// A faster human reply to one probe never makes the SLA verdict worse (a verdict may
    /// leave `insufficient_evidence`, never enter it), on either clock; and a faster reply to
    /// an off-hours probe never makes the 24/7 verdict worse. (A faster *business-hours*
    /// reply can: it sharpens the business vs off-hours contrast the Fisher rule tests.)
    #[test]
    fn a_faster_reply_never_worsens_a_verdict(
        raw in proptest::collection::vec(probe_strategy(), 1..40),
        pick in any::<proptest::sample::Index>(),
        fraction in 0.0f64..1.0,
        now_h in 0i64..24 * 40,
        calendar in any::<bool>(),
    ) {
        let now = monday() + now_h * HOUR;
        let clock = if calendar { office_clock() } else { ClaimClock::Continuous };
        let sp = spec(clock, 8 * HOUR);
        let before_probes = build(&raw, now);
        let i = pick.index(before_probes.len());
        let mut after_probes = before_probes.clone();
        let p = &mut after_probes[i];
        if p.t0 > now {
            return Ok(());
        }
        let latest = p.human_at.unwrap_or(now.min(p.horizon));
        let faster = p.t0 + ((latest - p.t0) as f64 * fraction) as i64;
        p.human_at = Some(faster.min(latest));
        let off_hours = calendar::hour_of_week(&sp.tz, p.t0)
            .is_some_and(|(how, minute)| !sp.business_hours.contains(how / 24, minute));

        let before = score_channel(&sp, &before_probes, 0, &[], now);
        let after = score_channel(&sp, &after_probes, 0, &[], now);
        let (b, a) = (before.sla.unwrap(), after.sla.unwrap());
        prop_assert!(a.split.met >= b.split.met);
        prop_assert!(not_worse(b.verdict, a.verdict), "{:?} → {:?}", b.verdict, a.verdict);
        if let (Some(b), Some(a), true) = (before.availability_24_7, after.availability_24_7, off_hours) {
            prop_assert!(not_worse(b.verdict, a.verdict), "24/7 {:?} → {:?}", b, a);
        }
    }
}
