//! `deskprobe report`: score the evidence in the store against the config's claims and render
//! it as JSON (DESIGN.md "Report JSON"), Markdown, CSV or a self-contained HTML page
//! (docs/reports.md).
//!
//! This command loads (probes, events, overrides and — for HTML — the raw messages behind
//! events, decoded into excerpts), scores, renders and writes. Rendering is pure
//! (`crate::report`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ReportFormat;
use crate::model::{Millis, now_millis};
use crate::report::{self, MessageSummary, ReportInput};
use crate::score::{self, ScoreInput};
use crate::store::evidence::{Evidence, Override};

/// Exit code of a usage error (as clap's).
const EXIT_USAGE: u8 = 2;

/// The options of one `report` run.
pub struct Request {
    pub format: ReportFormat,
    pub out: Option<PathBuf>,
    pub since: Option<Millis>,
    pub until: Option<Millis>,
    pub targets: Vec<String>,
    /// Score as of this instant instead of now (events after it are ignored).
    pub as_of: Option<Millis>,
}

/// What the renderers need beside the model.
struct Loaded {
    evidence: Evidence,
    overrides: HashMap<String, Override>,
    messages: HashMap<String, MessageSummary>,
}

pub async fn run(ctx: &super::Context_, req: Request) -> anyhow::Result<ExitCode> {
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
    let now = req.as_of.unwrap_or_else(now_millis);
    let started = std::time::Instant::now();
    if matches!(req.format, ReportFormat::Json | ReportFormat::Md) {
        // These render the model alone: score while the store streams the window (one probe
        // and its events at a time), so a report on millions of probes holds only the
        // per-probe outcomes, never the evidence (docs/benchmarks.md).
        let mut scorer = score::Scorer::new(
            &ctx.config,
            now,
            req.since,
            req.until,
            &req.targets,
            score::ScoreOptions { per_probe: false },
        );
        ctx.store
            .blocking(|s| {
                s.scan_for_scoring(req.since, req.until, req.as_of, |p, e| scorer.add(p, e))
            })
            .context("cannot load the evidence")?;
        let model = scorer.finish();
        warn_unknown_targets(&model);
        let text = match req.format {
            ReportFormat::Md => report::markdown::render(&model),
            _ => report::json::render(&model),
        };
        report::write_output(req.out.as_deref(), &text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (since, until, targets) = (req.since, req.until, req.targets.clone());
    let with_messages = req.format == ReportFormat::Html;
    let mut loaded = ctx
        .store
        .call(move |s| Ok(load(s, since, until, &targets, with_messages)))
        .await
        .context("cannot load the evidence")?
        .context("cannot load the evidence")?;
    if req.as_of.is_some() {
        // As of `now`: what had not happened yet is not evidence.
        loaded.evidence.events.retain(|e| e.occurred_at <= now);
        loaded.overrides.retain(|_, o| o.at <= now);
    }
    let model = score::score(ScoreInput {
        config: &ctx.config,
        probes: &loaded.evidence.probes,
        events: &loaded.evidence.events,
        now,
        since: req.since,
        until: req.until,
        targets: &req.targets,
    });
    warn_unknown_targets(&model);
    let probes: Vec<_> = loaded
        .evidence
        .probes
        .iter()
        .filter(|p| score::probe_time(p) < model.window_to)
        .cloned()
        .collect();
    let input = ReportInput {
        model: &model,
        probes: &probes,
        events: &loaded.evidence.events,
        messages: &loaded.messages,
        overrides: &loaded.overrides,
    };
    let text = match req.format {
        ReportFormat::Json => report::json::render(&model),
        ReportFormat::Md => report::markdown::render(&model),
        ReportFormat::Csv => report::csv::render(&input),
        ReportFormat::Html => {
            report::html::render(&input).context("cannot render the HTML report")?
        }
    };
    report::write_output(req.out.as_deref(), &text)?;
    tracing::debug!(
        probes = probes.len(),
        events = loaded.evidence.events.len(),
        bytes = text.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "report written"
    );
    Ok(ExitCode::SUCCESS)
}

/// Probes and events of the window, the newest override of each overridden event, and (for
/// HTML) the decoded messages behind events.
fn load(
    s: &mut crate::store::Store,
    since: Option<Millis>,
    until: Option<Millis>,
    targets: &[String],
    with_messages: bool,
) -> anyhow::Result<Loaded> {
    let evidence = s.evidence_window(since, until, targets)?;
    let overridden: Vec<String> = evidence
        .events
        .iter()
        .filter(|e| e.overridden_from.is_some())
        .map(|e| e.id.clone())
        .collect();
    let mut overrides = HashMap::new();
    if !overridden.is_empty() {
        // Oldest first: the last one inserted per event is the newest, the one in force.
        for o in s.overrides_of(&overridden)? {
            overrides.insert(o.event_id.clone(), o);
        }
    }
    let mut messages = HashMap::new();
    if with_messages {
        let mut decoded: HashMap<String, MessageSummary> = HashMap::new();
        for e in &evidence.events {
            let Some(sha) = &e.raw_sha256 else { continue };
            if let Some(m) = decoded.get(sha) {
                messages.insert(e.id.clone(), m.clone());
                continue;
            }
            if let Some(raw) = s.raw(sha)? {
                let m = MessageSummary::from_raw(&raw);
                decoded.insert(sha.clone(), m.clone());
                messages.insert(e.id.clone(), m);
            }
        }
    }
    Ok(Loaded {
        evidence,
        overrides,
        messages,
    })
}

fn warn_unknown_targets(model: &score::ScoredModel) {
    for u in &model.unknown_targets {
        tracing::warn!(
            target_id = %u.id,
            probes = u.probes,
            "probes of a target the config does not have are not scored"
        );
    }
}
