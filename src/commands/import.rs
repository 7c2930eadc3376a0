//! `deskprobe import FILE`: load an evidence bundle (JSON Lines, DESIGN.md "Evidence bundles").
//!
//! Every line is validated first — JSON shape, record type, enum values, RFC 3339 times, raw
//! bytes against their hash, and that each event's probe and each override's event is in the
//! file or the store. On any error every problem is printed with its line number, nothing is
//! written and the exit code is 1. Otherwise the records go in one transaction; ids already
//! stored are skipped, so importing the same bundle twice changes nothing.

use std::cell::RefCell;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::bundle;
use crate::cli::Global;
use crate::store::evidence::EvidenceError;
use crate::store::{Store, StoreHandle};

/// Opens the store of `--db` (no config needed), else of the config's `settings.database`.
/// `None` when the config had to be read and is invalid (diagnostics already printed).
pub(super) fn open_store(g: &Global) -> anyhow::Result<Option<StoreHandle>> {
    let db = match &g.db {
        Some(db) => db.clone(),
        None => match super::load_config(g)? {
            Some(config) => config.settings.database.clone(),
            None => return Ok(None),
        },
    };
    let store = Store::open(&db)
        .with_context(|| format!("cannot open the evidence store `{}`", db.display()))?;
    Ok(Some(StoreHandle::new(store)))
}

pub async fn run(g: &Global, file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read bundle `{}`", file.display()))?;
    let parsed = match bundle::parse(&text) {
        Ok(p) => p,
        Err(errors) => return Ok(reject(file, &errors)),
    };
    let Some(store) = open_store(g)? else {
        return Ok(ExitCode::from(super::EXIT_INVALID_CONFIG));
    };
    let outcome = store
        .call(move |s| {
            let failure: RefCell<Option<EvidenceError>> = RefCell::new(None);
            let lookup = |found: Result<bool, EvidenceError>| {
                found.unwrap_or_else(|e| {
                    failure.borrow_mut().get_or_insert(e);
                    false
                })
            };
            let errors = bundle::check_references(
                &parsed,
                |p| lookup(s.probe_exists(p)),
                |e| lookup(s.event_exists(e)),
            );
            if let Some(e) = failure.into_inner() {
                return Ok(Err(Failure::Store(e)));
            }
            if !errors.is_empty() {
                return Ok(Err(Failure::Lines(errors)));
            }
            Ok(match s.import_batch(&parsed.batch) {
                Ok(o) => Ok(o),
                Err(EvidenceError::Conflict { line, detail }) => {
                    Err(Failure::Lines(vec![bundle::LineError {
                        line,
                        message: detail,
                    }]))
                }
                Err(e) => Err(Failure::Store(e)),
            })
        })
        .await
        .context("cannot import the bundle")?;
    match outcome {
        Ok(o) => {
            println!(
                "imported {} probe(s), {} event(s), {} override(s); already present: {} probe(s), \
                 {} event(s), {} override(s); {} raw message(s)",
                o.probes_new,
                o.events_new,
                o.overrides_new,
                o.probes_known,
                o.events_known,
                o.overrides_known,
                o.raw_messages
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Lines(errors)) => Ok(reject(file, &errors)),
        Err(Failure::Store(e)) => Err(anyhow::Error::new(e).context("cannot import the bundle")),
    }
}

enum Failure {
    Lines(Vec<bundle::LineError>),
    Store(EvidenceError),
}

fn reject(file: &Path, errors: &[bundle::LineError]) -> ExitCode {
    for e in errors {
        eprintln!("{}:{}: {}", file.display(), e.line, e.message);
    }
    eprintln!(
        "error: `{}` rejected ({} error{}); nothing was imported",
        file.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    ExitCode::from(1)
}
