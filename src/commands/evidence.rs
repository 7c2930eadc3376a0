//! `deskprobe evidence PROBE_ID`: the timeline an auditor reads (text), or `{"probe",
//! "events"}` (JSON, DESIGN.md "Evidence bundles").
//!
//! The text shows, in order: what was sent (to whom, when, by whom, in which language), the
//! claim the probe is measured against and its deadline, then every event with its server
//! time, the delay since sending, how it was matched, where it came from, the classifier's
//! reasons and any reviewer override (who, when, why), the sender and subject, the first lines
//! of the message, and the sha256 of the stored raw bytes; and finally how the probe scores
//! (first ack, first human reply, within the claim or not). Everything comes from the store
//! unredacted: this is for an auditor with the database, not for publication. Control
//! characters of outside text are dropped so a message cannot drive the terminal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use crate::bundle::{EventRecord, ProbeRecord};
use crate::cli::EvidenceFormat;
use crate::model::{Event, Probe, now_millis, rfc3339};
use crate::report::{MessageSummary, fmt};
use crate::score::{self, SlaState, probe::Sending, probe::View};
use crate::store::evidence::Override;

/// How many lines of a message's own text the timeline shows.
const EXCERPT_LINES: usize = 8;

pub async fn run(
    ctx: &super::Context_,
    probe_id: &str,
    format: EvidenceFormat,
) -> anyhow::Result<ExitCode> {
    let id = probe_id.to_owned();
    let (probe, events, overrides, messages) = ctx
        .store
        .call(move |s| Ok(load(s, &id)))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|r| r)
        .with_context(|| format!("cannot load the evidence of probe `{probe_id}`"))?;
    match format {
        EvidenceFormat::Json => {
            let doc = serde_json::json!({
                "probe": ProbeRecord::from(&probe),
                "events": events.iter().map(EventRecord::from).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        EvidenceFormat::Text => {
            let overrides: HashMap<&str, &Override> =
                overrides.iter().map(|o| (o.event_id.as_str(), o)).collect();
            print!(
                "{}",
                timeline(ctx, &probe, &events, &overrides, &messages, now_millis())
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Loaded = (
    Probe,
    Vec<Event>,
    Vec<Override>,
    HashMap<String, MessageSummary>,
);

fn load(s: &mut crate::store::Store, id: &str) -> anyhow::Result<Loaded> {
    let probe = s.probe(id)?;
    let events = s.events(id)?;
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let overrides = s.overrides_of(&ids)?;
    let mut messages = HashMap::new();
    for e in &events {
        if let Some(sha) = &e.raw_sha256
            && let Some(raw) = s.raw(sha)?
        {
            messages.insert(e.id.clone(), MessageSummary::from_raw(&raw));
        }
    }
    Ok((probe, events, overrides, messages))
}

/// Outside text on one line, without control characters.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

fn timeline(
    ctx: &super::Context_,
    probe: &Probe,
    events: &[Event],
    overrides: &HashMap<&str, &Override>,
    messages: &HashMap<String, MessageSummary>,
    now: i64,
) -> String {
    let mut o = String::new();
    let target = ctx.config.target(&probe.target);
    let _ = writeln!(o, "probe {}", probe.id);
    let _ = writeln!(
        o,
        "  target    {} ({}) via {}",
        target.map_or("(not in the config)", |t| t.name.as_str()),
        probe.target,
        probe.channel
    );
    let _ = writeln!(
        o,
        "  script    {} · language {} · urgency {} · persona {} · vantage {}",
        probe.script, probe.language, probe.urgency, probe.persona, probe.vantage
    );
    let _ = writeln!(
        o,
        "  sent      from {} to {}",
        clean(probe.sender.as_deref().unwrap_or("-")),
        clean(probe.recipient.as_deref().unwrap_or("-"))
    );
    if let Some(s) = &probe.subject {
        let _ = writeln!(o, "  subject   {:?}", clean(s));
    }
    if let Some(m) = &probe.message_id {
        let _ = writeln!(o, "  message-id <{}>  token {}", clean(m), probe.token);
    }
    if let Some(sha) = &probe.raw_sha256 {
        let _ = writeln!(o, "  raw sha256 {sha}");
    }
    let _ = writeln!(o, "  status    {}", probe.status);

    let spec = target.map(|t| score::channel_spec(&ctx.config, t, probe.channel));
    let _ = writeln!(
        o,
        "\ntimeline (UTC; + = since the remote accepted the probe)"
    );
    let _ = writeln!(
        o,
        "  {}  committed  (probe row, token and Message-ID stored before the send)",
        rfc3339(probe.created_at)
    );
    let t0 = probe.sent_at;
    if let Some(t) = t0 {
        let _ = writeln!(o, "  {}  sent       +0s  (remote accepted: t0)", rfc3339(t));
    }
    if let Some(e) = &probe.send_error {
        let _ = writeln!(o, "  send error: {}", clean(e));
    }
    let base = t0.unwrap_or(probe.created_at);
    for e in events {
        let d = (e.occurred_at - base) as f64 / 1000.0;
        let delay = if d < 0.0 {
            format!("-{}", fmt::duration(-d))
        } else {
            format!("+{}", fmt::duration(d))
        };
        let _ = writeln!(
            o,
            "  {}  {:<10} {:>8}  matched by {}  source {}",
            rfc3339(e.occurred_at),
            e.kind.as_str(),
            delay,
            e.match_method.map_or("-", |m| m.as_str()),
            clean(&e.source)
        );
        let _ = writeln!(
            o,
            "      event {} · seen {} later{}{}",
            e.id,
            fmt::duration((e.observed_at - e.occurred_at).max(0) as f64 / 1000.0),
            e.language
                .as_deref()
                .map(|l| format!(" · language {l}"))
                .unwrap_or_default(),
            e.facts_matched
                .map(|f| format!(" · expected facts {}", if f { "stated" } else { "missing" }))
                .unwrap_or_default()
        );
        if let Some(from) = e.overridden_from {
            match overrides.get(e.id.as_str()) {
                Some(r) => {
                    let _ = writeln!(
                        o,
                        "      reviewed: classified {from}, {} says {} ({}): {}",
                        clean(&r.reviewer),
                        e.kind,
                        rfc3339(r.at),
                        clean(&r.reason)
                    );
                }
                None => {
                    let _ = writeln!(o, "      reviewed: classified {from}, now {}", e.kind);
                }
            }
        }
        if !e.reasons.is_empty() {
            let _ = writeln!(o, "      why: {}", clean(&e.reasons.join("; ")));
        }
        if let Some(m) = &e.mail {
            let _ = writeln!(
                o,
                "      from {}  subject {:?}",
                clean(m.from.as_deref().unwrap_or("-")),
                clean(m.subject.as_deref().unwrap_or(""))
            );
            if let Some(d) = m.date_header {
                let _ = writeln!(o, "      Date: header {}", rfc3339(d));
            }
            for r in m.received.iter().take(3) {
                let _ = writeln!(o, "      Received: {}", clean(r));
            }
        }
        if let Some(msg) = messages.get(&e.id) {
            for line in msg
                .excerpt
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(EXCERPT_LINES)
            {
                let line: String = clean(line).chars().take(160).collect();
                let _ = writeln!(o, "      | {line}");
            }
        }
        if let Some(sha) = &e.raw_sha256 {
            let _ = writeln!(o, "      raw sha256 {sha}");
        }
    }

    let _ = writeln!(o, "\nscore (as of {})", rfc3339(now));
    let Some(spec) = spec else {
        let _ = writeln!(o, "  the target is not in the config: not scored");
        return o;
    };
    let refs: Vec<&Event> = events.iter().collect();
    match score::probe::reduce(probe, &refs, spec.window_ms, View::Reviewed) {
        Sending::InFlight => {
            let _ = writeln!(o, "  in flight: not scored yet");
        }
        Sending::SendFailed => {
            let _ = writeln!(o, "  send failure: counted apart, never as \"no reply\"");
        }
        Sending::Sent(out) => {
            let _ = writeln!(
                o,
                "  observation window {} → ends {}",
                fmt::duration(spec.window_ms as f64 / 1000.0),
                rfc3339(out.horizon)
            );
            let _ = writeln!(
                o,
                "  first acknowledgement {}",
                out.ack_delay_ms().map_or("none".into(), |d| format!(
                    "+{}",
                    fmt::duration(d as f64 / 1000.0)
                ))
            );
            match out.human_delay_ms() {
                Some(d) => {
                    let _ = writeln!(
                        o,
                        "  first human reply     +{}",
                        fmt::duration(d as f64 / 1000.0)
                    );
                }
                None => {
                    let (c, _) = out.km_observation(now);
                    let _ = writeln!(
                        o,
                        "  first human reply     none (censored at +{})",
                        fmt::duration(c as f64 / 1000.0)
                    );
                }
            }
            if out.bounced {
                let _ = writeln!(o, "  bounced (a bounce is not a response)");
            }
            match &spec.sla {
                Some(sla) => {
                    let state = match score::sla_state(&out, sla, now) {
                        SlaState::Met => "met",
                        SlaState::Missed => "missed",
                        SlaState::Pending => "pending (deadline not passed, window open)",
                        SlaState::Unobserved => "unobserved (window closed before the deadline)",
                    };
                    let _ = writeln!(
                        o,
                        "  claim {} on the {} clock: {}",
                        fmt::duration(sla.target_ms as f64 / 1000.0),
                        sla.clock.label(),
                        state
                    );
                }
                None => {
                    let _ = writeln!(o, "  no first-response claim for this channel");
                }
            }
        }
    }
    o
}
