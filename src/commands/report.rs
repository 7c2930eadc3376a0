//! `deskprobe report`: score the evidence in the store against the config's claims and render
//! it (only `--format json` so far: DESIGN.md "Report JSON").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ReportFormat;
use crate::model::{Millis, now_millis};
use crate::report;
use crate::score::{self, ScoreInput};

/// Exit code of a usage error (as clap's).
const EXIT_USAGE: u8 = 2;

/// The options of one `report` run.
pub struct Request {
    pub format: ReportFormat,
    pub out: Option<PathBuf>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub targets: Vec<String>,
}

pub async fn run(ctx: &super::Context_, req: Request) -> anyhow::Result<ExitCode> {
    if req.format != ReportFormat::Json {
        let name = match req.format {
            ReportFormat::Html => "html",
            ReportFormat::Md => "md",
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
        };
        eprintln!("error: report format `{name}` is not available yet; use --format json");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let unknown: Vec<&str> = req
        .targets
        .iter()
        .filter(|t| ctx.config.target(t).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "error: no target {} in `{}`",
            unknown
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", "),
            ctx.config.file.display()
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    if let (Some(s), Some(u)) = (req.since, req.until)
        && s >= u
    {
        eprintln!("error: --since must be before --until");
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let (since, until, targets) = (req.since, req.until, req.targets.clone());
    let evidence = ctx
        .store
        .call(move |s| Ok(s.evidence_window(since, until, &targets)))
        .await
        .context("cannot load the evidence")?
        .context("cannot load the evidence")?;
    let now = now_millis();
    let model = score::score(ScoreInput {
        config: &ctx.config,
        probes: &evidence.probes,
        events: &evidence.events,
        now,
        since: req.since,
        until: req.until,
        targets: &req.targets,
    });
    for u in &model.unknown_targets {
        tracing::warn!(
            target_id = %u.id,
            probes = u.probes,
            "probes of a target the config does not have are not scored"
        );
    }
    let text = report::json::render(&model);
    report::write_output(req.out.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
