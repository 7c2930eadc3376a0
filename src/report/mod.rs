//! Renderers of the scored model ([`crate::score::ScoredModel`]): each format is a pure
//! function from the model to a `String`; [`write_output`] is the one function that writes a
//! rendered report to a file or stdout.
//!
//! Renderers must not compute figures (that is `score`'s job), read the store or the config.

pub mod json;

use std::io::Write;
use std::path::{Path, PathBuf};

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
