//! Password sources. A config names where a password lives (an environment variable or a file),
//! never the password itself; it is read only when a connection needs it, and never printed.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The named environment variable.
    Env(String),
    /// A file readable by its owner only; one trailing newline is ignored.
    File(PathBuf),
}

/// A resolved password. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for handing to a login call.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a password could not be read. Messages name the variable or file, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set, or is empty.
    #[error("cannot read password: environment variable `{name}` is not set or empty")]
    EnvMissing {
        /// Variable name.
        name: String,
    },
    /// The variable is not valid UTF-8.
    #[error("cannot read password: environment variable `{name}` is not valid UTF-8")]
    EnvNotUnicode {
        /// Variable name.
        name: String,
    },
    /// Group or others may read the file.
    #[error(
        "cannot use password file `{}`: its mode is {mode:04o}, but group and others must have \
         no access (chmod 600)",
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read.
    #[error("cannot read password file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing but a newline.
    #[error("cannot use password file `{}`: it is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
}

impl SecretSource {
    /// Reads the password now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_with(|name| std::env::var_os(name))
    }

    /// [`SecretSource::resolve`] with the environment given as a lookup function.
    pub(crate) fn resolve_with(
        &self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env(name) => {
                let value =
                    env(name).ok_or_else(|| SecretError::EnvMissing { name: name.clone() })?;
                let value = value
                    .into_string()
                    .map_err(|_| SecretError::EnvNotUnicode { name: name.clone() })?;
                if value.is_empty() {
                    return Err(SecretError::EnvMissing { name: name.clone() });
                }
                Ok(Secret(value))
            }
            SecretSource::File(path) => {
                check_file_mode(path)?;
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
                    path: path.clone(),
                    source,
                })?;
                let text = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text);
                if text.is_empty() {
                    return Err(SecretError::EmptyFile { path: path.clone() });
                }
                Ok(Secret(text.to_owned()))
            }
        }
    }
}

/// Refuses a file that group or others can access. A file that does not exist passes: it may be
/// provisioned after the config is checked, and [`SecretSource::resolve`] reports it then.
pub(crate) fn check_file_mode(path: &Path) -> Result<(), SecretError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o7777;
                if mode & 0o077 != 0 {
                    return Err(SecretError::Permissions {
                        path: path.to_owned(),
                        mode,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SecretError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
