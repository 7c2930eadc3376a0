//! `deskprobe review EVENT_ID --as KIND --reason R`: record a reviewer's override of an event's
//! classification, with who (`--reviewer`, else $USER), when and why. Scores use the newest
//! override and reports mark the figures it changed.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Global;
use crate::model::{EventKind, now_millis, rfc3339};
use crate::store::evidence::EvidenceError;

pub async fn run(
    g: &Global,
    event_id: &str,
    kind: EventKind,
    reason: &str,
    reviewer: Option<String>,
) -> anyhow::Result<ExitCode> {
    let reviewer = reviewer
        .or_else(|| std::env::var("USER").ok())
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let Some(reviewer) = reviewer else {
        eprintln!("error: who is reviewing? pass --reviewer NAME or set $USER");
        return Ok(ExitCode::from(2));
    };
    if reason.trim().is_empty() {
        eprintln!("error: --reason must say why the classification is wrong");
        return Ok(ExitCode::from(2));
    }
    let Some(store) = super::import::open_store(g)? else {
        return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
    };
    let at = now_millis();
    let (id, ev, reason_owned, reviewer_owned) = (
        event_id.to_owned(),
        kind,
        reason.trim().to_owned(),
        reviewer.clone(),
    );
    let result = store
        .call(move |s| Ok(s.add_override(&id, ev, &reason_owned, &reviewer_owned, at)))
        .await
        .context("cannot record the override")?;
    match result {
        Ok(override_id) => {
            println!(
                "override {override_id}: event {event_id} is {kind} (by {reviewer} at {})",
                rfc3339(at)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ EvidenceError::NoSuchEvent(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(anyhow::Error::new(e).context("cannot record the override")),
    }
}
