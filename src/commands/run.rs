//! `deskprobe run` and `deskprobe tick`: both take the database's single-instance lock first.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::daemon::{self, DaemonOptions, lock};
use crate::model::rfc3339;

pub async fn tick(ctx: &super::Context_) -> anyhow::Result<ExitCode> {
    let _lock = lock::acquire(&ctx.db, "tick")?;
    let report = daemon::tick(&ctx.config, &ctx.store, &DaemonOptions::default())
        .await
        .context("tick failed")?;
    for id in &report.pass.sent {
        println!("sent {id}");
    }
    for id in &report.pass.failed {
        println!("send_failed {id}");
    }
    println!(
        "sent {} failed {} skipped {} collected {} folder(s){}",
        report.pass.sent.len(),
        report.pass.failed.len(),
        report.pass.skipped,
        report.collected,
        report
            .pass
            .next_due
            .map(|t| format!("; next due {}", rfc3339(t)))
            .unwrap_or_default()
    );
    for e in &report.collect_errors {
        eprintln!("error: {e}");
    }
    let ok = report.collect_errors.is_empty() && report.pass.failed.is_empty();
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn run(ctx: super::Context_) -> anyhow::Result<ExitCode> {
    let _lock = lock::acquire(&ctx.db, "run")?;
    let stop = CancellationToken::new();
    let signals = stop_on_signals(stop.clone())?;
    let result = daemon::run(
        Arc::new(ctx.config),
        ctx.store,
        stop,
        DaemonOptions::default(),
    )
    .await;
    signals.abort();
    result.context("daemon failed")?;
    tracing::info!("daemon stopped");
    Ok(ExitCode::SUCCESS)
}

/// Cancels `stop` on SIGTERM or SIGINT.
fn stop_on_signals(stop: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        stop.cancel();
    }))
}
