//! Command-line definitions (clap) and dispatch to one module per subcommand.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 usage (clap), 3 invalid config. Data goes to stdout,
//! logs to stderr. This module must not contain the work of a command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::model::{ChannelKind, EventKind, Millis};

/// deskprobe: measure how fast exchanges' support really answers.
#[derive(Debug, Parser)]
#[command(name = "deskprobe", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The probes.toml to use.
    #[arg(
        long,
        global = true,
        env = "DESKPROBE_CONFIG",
        default_value = "probes.toml"
    )]
    pub config: PathBuf,
    /// The SQLite database (default: `settings.database` of the config, else data/deskprobe.db).
    #[arg(long, global = true, env = "DESKPROBE_DB")]
    pub db: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Output format of `evidence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvidenceFormat {
    Text,
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config; print every error with file:line:col; exit 3 if invalid.
    Check,
    /// Send one probe now and print its id.
    Send {
        #[arg(long)]
        target: String,
        #[arg(long, value_parser = parse_channel)]
        channel: ChannelKind,
        #[arg(long)]
        script: String,
        #[arg(long)]
        persona: Option<String>,
        /// Language of the script text (default: the persona's first one the script has).
        #[arg(long)]
        language: Option<String>,
    },
    /// One pass over every reply source; then exit.
    Collect,
    /// For cron: send what is due, collect once, close ended windows; exit. Idempotent.
    Tick,
    /// The daemon: schedules, IDLE watchers, until SIGTERM/SIGINT.
    Run,
    /// In-flight probes, last collect per mailbox, per-target counts.
    Status,
    /// A probe's timeline with its evidence.
    Evidence {
        probe_id: String,
        #[arg(long, value_enum, default_value_t = EvidenceFormat::Text)]
        format: EvidenceFormat,
    },
    /// Score the evidence against the claims and print the report.
    Report {
        /// Output format: html (one self-contained page), md, csv or json.
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only probes sent at or after this instant (RFC 3339, or a date = 00:00 UTC).
        #[arg(long, value_parser = parse_instant)]
        since: Option<Millis>,
        /// Only probes sent before this instant (RFC 3339, or a date = 00:00 UTC).
        #[arg(long, value_parser = parse_instant)]
        until: Option<Millis>,
        /// Only this target (repeatable).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Score as of this instant instead of now (RFC 3339 or a date): events after it are
        /// ignored, so an archive re-scored with the same --as-of gives the same report.
        #[arg(long, value_parser = parse_instant)]
        as_of: Option<Millis>,
    },
    /// Override the classification of an event; kept with who, when and why.
    Review {
        event_id: String,
        /// The event's kind according to the reviewer.
        #[arg(long = "as", value_parser = parse_event_kind)]
        kind: EventKind,
        /// Why (kept with the override and shown in reports).
        #[arg(long)]
        reason: String,
        /// Who reviews (default: $USER).
        #[arg(long)]
        reviewer: Option<String>,
    },
    /// Write an evidence bundle (JSON Lines) to stdout.
    Export {
        /// Only probes sent at or after this instant (RFC 3339, or a date = 00:00 UTC).
        #[arg(long, value_parser = parse_instant)]
        since: Option<Millis>,
        /// Only probes sent before this instant (RFC 3339, or a date = 00:00 UTC).
        #[arg(long, value_parser = parse_instant)]
        until: Option<Millis>,
        /// Include raw messages (base64 field `raw`).
        #[arg(long)]
        with_raw: bool,
    },
    /// Load an evidence bundle; every line is checked first, and any error writes nothing.
    Import { file: PathBuf },
}

/// Output format of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
    Csv,
    Json,
}

fn parse_event_kind(s: &str) -> Result<EventKind, String> {
    s.parse()
        .map_err(|e: crate::model::UnknownName| e.to_string())
}

/// An instant on the command line: RFC 3339 (`2026-11-02T03:00:00Z`) or a date (`2026-11-02`,
/// midnight UTC).
pub fn parse_instant(s: &str) -> Result<Millis, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    match s.parse::<jiff::civil::Date>() {
        Ok(d) => d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|e| format!("`{s}` is out of range: {e}")),
        Err(_) => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-11-02T03:00:00Z) nor a date (2026-11-02)"
        )),
    }
}

fn parse_channel(s: &str) -> Result<ChannelKind, String> {
    s.parse()
        .map_err(|e: crate::model::UnknownName| e.to_string())
}

/// Parses the command line, runs the command and maps errors to exit codes.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    crate::channels::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(global: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = match global.verbose {
        0 => "deskprobe=info",
        1 => "deskprobe=debug",
        _ => "deskprobe=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
