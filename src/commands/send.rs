//! `deskprobe send`: one probe now; prints its id on stdout.

use std::process::ExitCode;

use anyhow::Context;

use crate::model::ProbeStatus;
use crate::send::{SendRequest, recover_interrupted, send_probe};

pub async fn run(ctx: &super::Context_, req: &SendRequest) -> anyhow::Result<ExitCode> {
    recover_interrupted(&ctx.config, &ctx.store)
        .await
        .context("cannot recover interrupted sends")?;
    let outcome = send_probe(&ctx.config, &ctx.store, req)
        .await
        .with_context(|| format!("cannot send a probe to `{}`", req.target))?;
    println!("{}", outcome.probe_id);
    match outcome.status {
        ProbeStatus::Sent => Ok(ExitCode::SUCCESS),
        _ => {
            eprintln!(
                "error: probe {} recorded as {}: {}",
                outcome.probe_id,
                outcome.status,
                outcome.error.as_deref().unwrap_or("unknown error")
            );
            Ok(ExitCode::from(1))
        }
    }
}
