//! `report --format md`: the comparison of all targets and their verdicts as GitHub-flavoured
//! Markdown, readable as plain text in a terminal and rendered in a GitHub issue.
//!
//! Every rate is shown with its n and 95 % interval; every verdict in words. Text from the
//! config is escaped so a `|` or `*` in a name cannot break the table. Pure: model in, string
//! out.

use std::fmt::Write as _;

use crate::model::rfc3339;
use crate::score::{ChannelScore, ScoredModel, TargetScore};

use super::fmt;

/// Escapes Markdown's inline syntax and keeps a value on one table line.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The claim of one channel: `1h (24/7)`, `2h (sg-office hours)`, `none`.
pub(crate) fn claim(t: &TargetScore, c: &ChannelScore) -> String {
    let Some(s) = c.claimed_first_response_s else {
        return "none".into();
    };
    match t.availability.as_deref() {
        Some("24/7") => format!("{} (24/7)", fmt::duration(s)),
        Some(cal) => format!("{} ({cal} hours)", fmt::duration(s)),
        None => format!("{} (no availability claim)", fmt::duration(s)),
    }
}

fn sla_cells(c: &ChannelScore) -> (String, String) {
    match &c.sla {
        Some(s) => (fmt::split(&s.split), fmt::verdict(s.verdict).to_owned()),
        None => ("—".into(), "no claim".into()),
    }
}

fn always_on_cell(c: &ChannelScore) -> String {
    c.availability_24_7
        .as_ref()
        .map_or_else(|| "—".into(), |a| fmt::verdict(a.verdict).to_owned())
}

/// The report as Markdown, ending with a newline.
pub fn render(model: &ScoredModel) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# deskprobe report\n");
    let window_from = model
        .window_from
        .map_or_else(|| "—".into(), crate::model::rfc3339);
    let _ = writeln!(
        o,
        "Generated {} · probes sent from {} to {} · compliance target {} · config sha256 `{}`\n",
        rfc3339(model.generated_at),
        window_from,
        rfc3339(model.window_to),
        fmt::pct(Some(model.method.compliance_target)),
        model.config_sha256
    );
    let simulated: Vec<&str> = model
        .targets
        .iter()
        .filter(|t| super::is_simulated(t))
        .map(|t| t.name.as_str())
        .collect();
    if !simulated.is_empty() {
        let _ = writeln!(
            o,
            "> **Simulated desks:** {} are simulated support desks (deskprobe's sandbox), \
             not real exchanges.\n",
            simulated
                .iter()
                .map(|n| md(n))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let _ = writeln!(o, "## Comparison\n");
    let _ = writeln!(
        o,
        "| Target | Channel | Claimed first response | Sent | Human replied | First human reply, KM median | Answered within claim (met/eligible) | SLA verdict | 24/7 verdict |"
    );
    let _ = writeln!(o, "|---|---|---|--:|--:|--:|---|---|---|");
    for t in &model.targets {
        if t.channels.is_empty() {
            let _ = writeln!(
                o,
                "| {} | — | — | 0 | 0 | — | — | no probes | — |",
                md(&t.name)
            );
        }
        for c in &t.channels {
            let (rate, verdict) = sla_cells(c);
            let _ = writeln!(
                o,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md(&t.name),
                if super::is_simulated(t) {
                    " (simulated)"
                } else {
                    ""
                },
                c.channel,
                md(&claim(t, c)),
                c.sent,
                c.human_replied,
                fmt::km(c.first_human.km_median),
                rate,
                verdict,
                always_on_cell(c)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nVerdicts: **supported** = the rate reaches the compliance target; **contradicted** = \
         even the upper 95% bound misses it; **inconclusive** = neither; **insufficient \
         evidence** = fewer than 10 eligible probes (24/7: or fewer than 4 off-hours \
         hour-of-week buckets). KM median = Kaplan–Meier median over all sent probes, \
         unanswered ones included.\n"
    );

    for t in &model.targets {
        target(&mut o, t);
    }
    if !model.unknown_targets.is_empty() {
        let _ = writeln!(o, "## Probes of targets not in the config\n");
        for u in &model.unknown_targets {
            let _ = writeln!(o, "- `{}`: {} probe(s), not scored", md(&u.id), u.probes);
        }
        o.push('\n');
    }
    let windows: Vec<String> = model
        .method
        .observation_window_s
        .iter()
        .map(|(c, s)| format!("{c} {}", fmt::duration(*s)))
        .collect();
    let _ = writeln!(
        o,
        "## Method\n\nObservation windows: {}. Reference business hours for the 24/7 split: {} \
         (each target's time zone). Definitions: docs/scoring.md.",
        windows.join(", "),
        fmt::weekly_hours(&model.method.business_hours)
    );
    o
}

fn target(o: &mut String, t: &TargetScore) {
    let _ = writeln!(
        o,
        "## {} (`{}`){}\n",
        md(&t.name),
        md(&t.id),
        if super::is_simulated(t) {
            " — simulated desk"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "Time zone {} · availability claim {} · claims read from <{}> on {}{}{}\n",
        md(&t.timezone),
        md(t.availability.as_deref().unwrap_or("none")),
        t.claims.source.replace(['<', '>', ' '], ""),
        md(&t.claims.captured),
        if t.claims.verified {
            ""
        } else {
            " · not verified"
        },
        t.claims
            .note
            .as_deref()
            .map(|n| format!(" · note: {}", md(n)))
            .unwrap_or_default()
    );
    for c in &t.channels {
        let _ = writeln!(o, "### {} — {}\n", md(&t.name), c.channel);
        let _ = writeln!(
            o,
            "- Sent {} · send failures {} · bounced {} · acknowledged {} · human replied {} · \
             never replied {} · awaiting {}",
            c.sent, c.send_failed, c.bounced, c.acked, c.human_replied, c.never_replied, c.awaiting
        );
        let _ = writeln!(
            o,
            "- First human reply: KM median {}, KM p90 {}; among the {} responders p50 {}, p90 {}",
            fmt::km(c.first_human.km_median),
            fmt::km(c.first_human.km_p90),
            c.first_human.responders,
            fmt::opt_duration(c.first_human.responders_p50),
            fmt::opt_duration(c.first_human.responders_p90)
        );
        let _ = writeln!(
            o,
            "- First acknowledgement (auto-ack or bot): median {} among {} acknowledged",
            fmt::opt_duration(c.ack.responders_p50),
            c.ack.responders
        );
        match &c.sla {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "- Claim {} on the `{}` clock: {} → **{}** (pending {}, unobserved {})",
                    fmt::duration(s.target_s),
                    md(&s.clock),
                    fmt::split(&s.split),
                    fmt::verdict(s.verdict),
                    s.pending,
                    s.unobserved
                );
            }
            None => {
                let _ = writeln!(o, "- No first-response claim to test: figures only");
            }
        }
        if let Some(a) = &c.availability_24_7 {
            let _ = writeln!(
                o,
                "- 24/7: business hours {}; off-hours {} over {} hour-of-week bucket(s); \
                 Fisher p {} → **{}**",
                fmt::split(&a.business),
                fmt::split(&a.off_hours),
                a.buckets,
                fmt::p_value(a.fisher_p),
                fmt::verdict(a.verdict)
            );
        }
        let _ = writeln!(
            o,
            "- Reply language matches the question: {} ({}/{}) · expected facts stated: {} ({}/{})",
            fmt::pct(c.language_match.value()),
            c.language_match.hits,
            c.language_match.checked,
            fmt::pct(c.facts.value()),
            c.facts.hits,
            c.facts.checked
        );
        let _ = writeln!(
            o,
            "- Urgent: {} sent, KM median {} · normal: {} sent, KM median {}",
            c.urgent.sent,
            fmt::km(c.urgent.km_median),
            c.normal.sent,
            fmt::km(c.normal.km_median)
        );
        if c.overrides.events > 0 {
            let _ = writeln!(
                o,
                "- Reviewer overrides: {} event(s); figures changed by them: {}",
                c.overrides.events,
                if c.overrides.changed.is_empty() {
                    "none".into()
                } else {
                    c.overrides.changed.join(", ")
                }
            );
        }
        o.push('\n');
    }
}
