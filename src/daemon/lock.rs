//! The single-instance lock of a database: `run` and `tick` hold an exclusive OS file lock on
//! `<database>.lock` for as long as they live, with a note saying who holds it.
//!
//! The OS releases the lock when the process ends, even by `kill -9`, so a crash never leaves a
//! stale lock behind. This module must not touch the database itself.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors taking the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("database is in use by another deskprobe ({holder}); lock file `{path}`")]
    Held { path: PathBuf, holder: String },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file that guards `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `db` for `command` (`run`, `tick`), or says who holds it.
pub fn acquire(db: &Path, command: &str) -> Result<InstanceLock, LockError> {
    let path = lock_path(db);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                path: path.clone(),
                holder: if holder.is_empty() {
                    "holder unknown".into()
                } else {
                    holder.to_owned()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    let note = format!(
        "pid {} running `deskprobe {command}` since {}",
        std::process::id(),
        crate::model::rfc3339(crate::model::now_millis())
    );
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(note.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(InstanceLock { _file: file, path })
}

/// Who holds the lock of `db`, if anyone (for `status`).
pub fn holder(db: &Path) -> Option<String> {
    let path = lock_path(db);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => std::fs::read_to_string(&path)
            .ok()
            .map(|s| s.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("deskprobe.db");
        let first = acquire(&db, "run").unwrap();
        assert!(holder(&db).unwrap().contains("deskprobe run"));
        let err = acquire(&db, "tick").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("deskprobe run"), "{text}");
        drop(first);
        assert!(holder(&db).is_none());
        acquire(&db, "tick").unwrap();
    }
}
