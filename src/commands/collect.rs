//! `deskprobe collect`: one pass over every open chat and every mailbox; prints a line per
//! chat and per folder.

use std::process::ExitCode;

use anyhow::Context;

use crate::collect::collect_all;
use crate::send::{error_chain, recover_interrupted};

pub async fn run(ctx: &super::Context_) -> anyhow::Result<ExitCode> {
    recover_interrupted(&ctx.config, &ctx.store)
        .await
        .context("cannot recover interrupted sends")?;
    let mut failed = false;
    for r in crate::follow::follow_once(&ctx.config, &ctx.store).await {
        match (&r.error, &r.closed) {
            (Some(e), _) => {
                failed = true;
                eprintln!("error: probe {}: {e}", r.probe_id);
            }
            (None, closed) => println!(
                "probe {}: new events {}{}",
                r.probe_id,
                r.new_events,
                closed
                    .as_ref()
                    .map(|c| format!(" (closed: {c})"))
                    .unwrap_or_default()
            ),
        }
    }
    for (mailbox, result) in collect_all(&ctx.config, &ctx.store).await {
        match result {
            Ok(report) => {
                for e in &report.errors {
                    failed = true;
                    eprintln!("error: {}", error_chain(e));
                }
                for f in report.folders {
                    println!(
                        "{mailbox}/{}: fetched {} stored {} matched {} duplicates {}{}",
                        f.folder,
                        f.fetched,
                        f.outcome.stored,
                        f.outcome.matched,
                        f.outcome.duplicates,
                        if f.resynced {
                            " (resynced after UIDVALIDITY change)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {}", error_chain(&e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
