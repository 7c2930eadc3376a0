//! `deskprobe export [--since D] [--until D] [--with-raw]`: write the evidence of probes sent in
//! the window as an evidence bundle (JSON Lines) on stdout: probe records, then event records
//! (with the classifier's kind), then reviewer overrides. `--with-raw` adds each event's raw
//! message as base64.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::bundle::{EventRecord, OverrideRecord, ProbeRecord};
use crate::cli::Global;
use crate::model::Millis;

pub async fn run(
    g: &Global,
    since: Option<Millis>,
    until: Option<Millis>,
    with_raw: bool,
) -> anyhow::Result<ExitCode> {
    let Some(store) = super::import::open_store(g)? else {
        return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
    };
    let lines = store
        .call(move |s| {
            Ok((|| {
                let ev = s.evidence_window(since, until, &[])?;
                let mut lines = Vec::with_capacity(ev.probes.len() + ev.events.len());
                for p in &ev.probes {
                    lines.push(serde_json::to_string(&ProbeRecord::from(p)));
                }
                for e in &ev.events {
                    let raw = match (&e.raw_sha256, with_raw) {
                        (Some(sha), true) => s.raw(sha)?,
                        _ => None,
                    };
                    lines.push(serde_json::to_string(&EventRecord::for_bundle(
                        e,
                        raw.as_deref(),
                    )));
                }
                let ids: Vec<String> = ev.events.iter().map(|e| e.id.clone()).collect();
                for o in s.overrides_of(&ids)? {
                    lines.push(serde_json::to_string(&OverrideRecord::from(&o)));
                }
                Ok::<_, crate::store::evidence::EvidenceError>(lines)
            })())
        })
        .await
        .context("cannot export the evidence")?
        .context("cannot export the evidence")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        let line = line.context("cannot serialize a bundle record")?;
        writeln!(out, "{line}").context("cannot write the bundle to stdout")?;
    }
    out.flush().context("cannot write the bundle to stdout")?;
    Ok(ExitCode::SUCCESS)
}
