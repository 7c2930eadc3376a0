//! `deskprobe evidence PROBE_ID`: the probe's timeline (text) or `{"probe", "events"}` (JSON).

use std::process::ExitCode;

use anyhow::Context;

use crate::bundle::{EventRecord, ProbeRecord};
use crate::cli::EvidenceFormat;
use crate::model::rfc3339;

pub async fn run(
    ctx: &super::Context_,
    probe_id: &str,
    format: EvidenceFormat,
) -> anyhow::Result<ExitCode> {
    let id = probe_id.to_owned();
    let (probe, events) = ctx
        .store
        .call(move |s| Ok((s.probe(&id)?, s.events(&id)?)))
        .await
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
            println!(
                "probe {}  {} via {}  script {} ({}, {})  persona {}  vantage {}",
                probe.id,
                probe.target,
                probe.channel,
                probe.script,
                probe.language,
                probe.urgency,
                probe.persona,
                probe.vantage
            );
            println!(
                "  status {}  to {}  subject {:?}",
                probe.status,
                probe.recipient.as_deref().unwrap_or("-"),
                probe.subject.as_deref().unwrap_or("")
            );
            println!("  committed  {}", rfc3339(probe.created_at));
            if let Some(e) = &probe.send_error {
                println!("  send error {e}");
            }
            for e in &events {
                let delay = probe
                    .sent_at
                    .map(|t0| format!("+{:.0}s", (e.occurred_at - t0) as f64 / 1000.0))
                    .unwrap_or_default();
                println!(
                    "  {}  {:<9} {:>8}  via {:<10} {}",
                    rfc3339(e.occurred_at),
                    e.kind.as_str(),
                    delay,
                    e.match_method.map(|m| m.as_str()).unwrap_or("-"),
                    e.source
                );
                if let Some(m) = &e.mail {
                    println!(
                        "      from {}  subject {:?}",
                        m.from.as_deref().unwrap_or("-"),
                        m.subject.as_deref().unwrap_or("")
                    );
                }
                println!("      why: {}", e.reasons.join("; "));
                if let Some(sha) = &e.raw_sha256 {
                    println!("      raw sha256 {sha}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
