//! `deskprobe status`: what is in flight, when each mailbox was last collected, counts.

use std::process::ExitCode;

use crate::collect::folder_source;
use crate::daemon::{self, lock};
use crate::model::{ProbeStatus, rfc3339};

pub async fn run(ctx: &super::Context_) -> anyhow::Result<ExitCode> {
    let (in_flight, runs, counts, unmatched) = ctx
        .store
        .call(|s| {
            Ok((
                s.probes_with_status(&[
                    ProbeStatus::Sending,
                    ProbeStatus::SentUnconfirmed,
                    ProbeStatus::Sent,
                ])?,
                s.collector_runs()?,
                s.status_counts()?,
                s.unmatched()?.len(),
            ))
        })
        .await?;
    match lock::holder(&ctx.db) {
        Some(holder) => println!("lock: held by {holder}"),
        None => println!("lock: free (no daemon or tick running on this database)"),
    }
    let upcoming = daemon::upcoming(&ctx.config, &ctx.store, 5).await?;
    if upcoming.is_empty() {
        println!(
            "next due sends: none (no schedule, or every scheduled target is `verified = false`)"
        );
    } else {
        let list: Vec<String> = upcoming.into_iter().map(rfc3339).collect();
        println!("next due sends: {}", list.join(", "));
    }
    println!("in-flight probes: {}", in_flight.len());
    for p in &in_flight {
        println!(
            "  {}  {:<10} {:<7} {:<16} {}  sent {}",
            p.id,
            p.target,
            p.channel,
            p.status,
            p.script,
            p.sent_at.map(rfc3339).unwrap_or_else(|| "-".into())
        );
    }
    println!("reply sources:");
    for source in ctx
        .config
        .mailboxes
        .iter()
        .flat_map(|m| m.folders.iter().map(|f| folder_source(&m.id, f)))
    {
        match runs.iter().find(|r| r.source == source) {
            Some(r) => println!(
                "  {source}: last ok {}{}",
                r.last_ok_at.map(rfc3339).unwrap_or_else(|| "never".into()),
                match (&r.last_error, r.last_error_at) {
                    (Some(e), Some(at)) if r.last_ok_at.is_none_or(|ok| at > ok) =>
                        format!("; last error {} {e}", rfc3339(at)),
                    _ => String::new(),
                }
            ),
            None => println!("  {source}: never collected"),
        }
    }
    println!("unmatched messages: {unmatched}");
    println!("probes per target:");
    if counts.is_empty() {
        println!("  none yet");
    }
    for c in &counts {
        println!(
            "  {:<10} {:<7} {:<16} {}",
            c.target, c.channel, c.status, c.count
        );
    }
    Ok(ExitCode::SUCCESS)
}
