//! Renderers of the scored model ([`crate::score::ScoredModel`]): each format is a pure
//! function from the model (and, for the formats that list probes, the evidence behind it) to
//! a `String`; [`write_output`] is the one function that writes a rendered report to a file or
//! stdout.
//!
//! - [`json`]: the stable `deskprobe.report/1` contract of DESIGN.md.
//! - [`markdown`]: the comparison and verdicts, for a terminal or a GitHub issue.
//! - [`csv`]: one row per probe and one summary row per target × channel, for pandas/R.
//! - [`html`]: one self-contained page (inline CSS and SVG, no script, no fetch) with charts,
//!   methodology and an evidence appendix, personal data redacted ([`redact`]).
//!
//! Renderers must not compute figures (that is `score`'s job), read the store or the config.
//! They may format, sort and join what they are given. docs/reports.md describes each format.

mod charts;
pub mod csv;
pub mod fmt;
pub mod html;
pub mod json;
pub mod markdown;
pub mod redact;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::{Event, Probe};
use crate::score::ScoredModel;
use crate::store::evidence::Override;

/// Everything a renderer may show: the scored model and the evidence behind it.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The figures and verdicts.
    pub model: &'a ScoredModel,
    /// The probes of the window (every status), oldest first.
    pub probes: &'a [Probe],
    /// Their events in time order, reviewer overrides applied (`overridden_from` = the
    /// classifier's kind).
    pub events: &'a [Event],
    /// What the message behind an event says, by event id (events without raw evidence have
    /// none).
    pub messages: &'a HashMap<String, MessageSummary>,
    /// The newest reviewer override of an event, by event id.
    pub overrides: &'a HashMap<String, Override>,
}

/// The readable parts of an inbound message, as a report may show them (unredacted here; the
/// HTML redacts when it renders).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageSummary {
    /// The `From` address.
    pub from: Option<String>,
    /// The `From` display name.
    pub from_name: Option<String>,
    /// The decoded subject.
    pub subject: String,
    /// The sender's own text (quotes removed), cut to [`EXCERPT_CHARS`] characters.
    pub excerpt: String,
    /// Whether the excerpt was cut.
    pub truncated: bool,
}

/// How many characters of a reply's own text a report keeps.
pub const EXCERPT_CHARS: usize = 1200;

impl MessageSummary {
    /// Decodes raw message bytes (pure; never fails).
    pub fn from_raw(raw: &[u8]) -> MessageSummary {
        let mail = crate::mail::parse(raw);
        let own = crate::classify::strip_quoted(&mail.text);
        let mut excerpt: String = own.chars().take(EXCERPT_CHARS).collect();
        let truncated = excerpt.len() < own.len();
        // Control characters (terminal escapes, NULs) never reach a report.
        excerpt.retain(|c| !c.is_control() || c == '\n' || c == '\t');
        MessageSummary {
            from: mail.from,
            from_name: mail.from_name,
            subject: mail.subject.chars().filter(|c| !c.is_control()).collect(),
            excerpt,
            truncated,
        }
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The output file could not be written.
    #[error("cannot write report to `{}`", path.display())]
    Write {
        /// The file asked for.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not be written.
    #[error("cannot write report to stdout")]
    Stdout(#[source] std::io::Error),
}

/// Writes `text` to `out`, or to stdout when `out` is `None`. A file is written to a
/// temporary sibling first and renamed, so a reader never sees half a report.
pub fn write_output(out: Option<&Path>, text: &str) -> Result<(), ReportError> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(ReportError::Stdout)
        }
        Some(path) => {
            let err = |source| ReportError::Write {
                path: path.to_owned(),
                source,
            };
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, text).map_err(err)?;
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                err(e)
            })
        }
    }
}

/// Whether a target is a simulated desk (the sandbox's demo exchanges): its name or its claims
/// note says "simulated". Reports flag such targets everywhere they appear.
pub fn is_simulated(t: &crate::score::TargetScore) -> bool {
    let says = |s: &str| s.to_lowercase().contains("simulated");
    says(&t.name) || t.claims.note.as_deref().is_some_and(says)
}
