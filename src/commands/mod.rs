//! One file per subcommand. Each loads what it needs (config, store), calls the library and
//! prints data on stdout. `anyhow` with context lives here and only here.

mod check;
mod collect;
mod evidence;
mod export;
mod import;
mod report;
mod review;
mod run;
mod send;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, Global};
use crate::config::{self, Config, ConfigError};
use crate::store::{Store, StoreHandle};

/// Exit code of an invalid config.
pub const EXIT_INVALID_CONFIG: u8 = 3;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Check => check::run(g),
        Command::Send {
            target,
            channel,
            script,
            persona,
            language,
        } => {
            let Some(ctx) = Context_::load(g)? else {
                return Ok(ExitCode::from(EXIT_INVALID_CONFIG));
            };
            let req = crate::send::SendRequest {
                target,
                channel,
                script,
                persona,
                language,
                slot: None,
            };
            send::run(&ctx, &req).await
        }
        Command::Collect => match Context_::load(g)? {
            Some(ctx) => collect::run(&ctx).await,
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Tick => match Context_::load(g)? {
            Some(ctx) => run::tick(&ctx).await,
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Run => match Context_::load(g)? {
            Some(ctx) => run::run(ctx).await,
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Status => match Context_::load(g)? {
            Some(ctx) => status::run(&ctx).await,
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Evidence { probe_id, format } => match Context_::load(g)? {
            Some(ctx) => evidence::run(&ctx, &probe_id, format).await,
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Report {
            format,
            out,
            since,
            until,
            targets,
            as_of,
        } => match Context_::load(g)? {
            Some(ctx) => {
                let req = report::Request {
                    format,
                    out,
                    since,
                    until,
                    targets,
                    as_of,
                };
                report::run(&ctx, req).await
            }
            None => Ok(ExitCode::from(EXIT_INVALID_CONFIG)),
        },
        Command::Review {
            event_id,
            kind,
            reason,
            reviewer,
        } => review::run(g, &event_id, kind, &reason, reviewer).await,
        Command::Export {
            since,
            until,
            with_raw,
        } => export::run(g, since, until, with_raw).await,
        Command::Import { file } => import::run(g, &file).await,
    }
}

/// The loaded config and the open store of a command.
struct Context_ {
    config: Config,
    store: StoreHandle,
    db: PathBuf,
}

impl Context_ {
    /// Loads the config (printing every diagnostic and returning `None` when it is invalid)
    /// and opens the database.
    fn load(g: &Global) -> anyhow::Result<Option<Context_>> {
        let Some(config) = load_config(g)? else {
            return Ok(None);
        };
        let db = database_path(g, &config);
        let store = Store::open(&db)
            .with_context(|| format!("cannot open the evidence store `{}`", db.display()))?;
        Ok(Some(Context_ {
            config,
            store: StoreHandle::new(store),
            db,
        }))
    }
}

/// `--db`, else `settings.database`.
fn database_path(g: &Global, config: &Config) -> PathBuf {
    g.db.clone()
        .unwrap_or_else(|| config.settings.database.clone())
}

/// Loads the config; prints diagnostics on stderr and returns `None` when it is invalid.
fn load_config(g: &Global) -> anyhow::Result<Option<Config>> {
    match config::load(&g.config) {
        Ok(c) => Ok(Some(c)),
        Err(ConfigError::Invalid { diagnostics }) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "error: `{}` is invalid ({} error{})",
                g.config.display(),
                diagnostics.len(),
                if diagnostics.len() == 1 { "" } else { "s" }
            );
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e)),
    }
}
