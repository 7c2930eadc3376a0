//! Reads `probes.toml` into a validated [`Config`]: the only way the rest of deskprobe learns what
//! to probe, from where, and under which limits.
//!
//! Loading has two phases, like ripgrep's arguments: [`raw`] deserializes the file into plain
//! serde structs (kebab-case keys, nearly every field optional), then [`validate`] turns them into
//! the types below, checking values (cron, time zones, durations, regexes, templates, URLs) and
//! references between sections. Every problem becomes a [`Diagnostic`] with `file:line:col` and the
//! full key path (`target[0].claims.availabilty`), and **all** of them are reported together; only
//! a TOML syntax error or a wrong value type stops early, as a single diagnostic.
//!
//! Departure from DESIGN.md: the raw structs do not use `#[serde(deny_unknown_fields)]`, which
//! stops at the first unknown key. Instead `serde_ignored` collects every key serde skipped, and
//! each is reported as an error at its own position. Locations are found by walking the spanned
//! TOML tree (`toml::de::DeTable`) along a diagnostic's key path, so raw fields need no
//! `Spanned<T>` wrappers.
//!
//! This module owns parsing and validation only. It must not open network connections or touch
//! SQL. Its only I/O is reading the config file, and `stat`ing password files so that a
//! world-readable secret is refused at load time.

mod locate;
mod raw;
mod secret;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::{ChannelKind, Rules, Urgency};

pub use locate::line_col;
pub use secret::{Secret, SecretError, SecretSource};

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config `{}`", path.display())]
    Read {
        /// The path that was asked for.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems; every one found is listed.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// Every problem, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One problem in a config file, at a 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config file, as it was named to [`load`] or [`parse`].
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Where in the document, e.g. `target[1].timezone`; empty for syntax errors.
    pub key_path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config `text`, read from `file` (used in diagnostics and to resolve relative
/// `ca-file` and `password-file` paths against its directory).
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    validate::parse(text, file, sha256).map_err(|mut diagnostics| {
        diagnostics.sort_by_key(|d| (d.line, d.col));
        ConfigError::Invalid { diagnostics }
    })
}

/// A validated `probes.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Lowercase hex SHA-256 of the file's bytes, stored with each probe.
    pub sha256: String,
    /// `[settings]`.
    pub settings: Settings,
    /// `[[mailbox]]`, in file order.
    pub mailboxes: Vec<Mailbox>,
    /// `[[persona]]`, in file order.
    pub personas: Vec<Persona>,
    /// `[[script]]`, in file order.
    pub scripts: Vec<Script>,
    /// `[[calendar]]`, in file order.
    pub calendars: Vec<Calendar>,
    /// `[[target]]`, in file order.
    pub targets: Vec<Target>,
    /// `[[schedule]]`, in file order.
    pub schedules: Vec<Schedule>,
    /// `[limits]`.
    pub limits: Limits,
}

impl Config {
    /// The mailbox with this id.
    pub fn mailbox(&self, id: &str) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.id == id)
    }

    /// The persona with this id.
    pub fn persona(&self, id: &str) -> Option<&Persona> {
        self.personas.iter().find(|p| p.id == id)
    }

    /// The script with this id.
    pub fn script(&self, id: &str) -> Option<&Script> {
        self.scripts.iter().find(|s| s.id == id)
    }

    /// The target with this id.
    pub fn target(&self, id: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.id == id)
    }

    /// The calendar with this id.
    pub fn calendar(&self, id: &str) -> Option<&Calendar> {
        self.calendars.iter().find(|c| c.id == id)
    }

    /// The schedule with this id.
    pub fn schedule(&self, id: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.id == id)
    }
}

/// One value per channel kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerChannel<T> {
    /// For email probes.
    pub email: T,
    /// For helpdesk ticket probes.
    pub ticket: T,
    /// For live-chat probes.
    pub chat: T,
}

impl<T> PerChannel<T> {
    /// The value for `kind`.
    pub fn get(&self, kind: ChannelKind) -> &T {
        match kind {
            ChannelKind::Email => &self.email,
            ChannelKind::Ticket => &self.ticket,
            ChannelKind::Chat => &self.chat,
        }
    }
}

/// `[settings]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SQLite file; a relative path is kept as written (relative to the working directory).
    pub database: PathBuf,
    /// Name of this vantage point, stored on each probe.
    pub vantage: String,
    /// How long replies are watched for after sending, per channel.
    pub observation_window: PerChannel<Duration>,
    /// Share of probes that must meet a first-response claim, in (0, 1].
    pub compliance_target: f64,
    /// Reference business hours for the 24/7 split.
    pub business_hours: WeeklyHours,
    /// How long one send may take before it is recorded as failed.
    pub send_timeout: Duration,
    /// Attempts per schedule slot when a send fails without reaching anybody (connection
    /// refused, 4xx); a timeout or a 5xx refusal is never retried.
    pub send_attempts: u32,
    /// Wait before such a retry.
    pub retry_after: Duration,
}

/// `[[mailbox]]`: where personas send from and where replies arrive.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Unique id.
    pub id: String,
    /// Submission server.
    pub smtp: Endpoint,
    /// Server replies are read from.
    pub imap: Endpoint,
    /// Extra trusted root CA (PEM), resolved against the config file's directory.
    pub ca_file: Option<PathBuf>,
    /// Login for both servers.
    pub username: String,
    /// Where the password comes from; resolved only when needed.
    pub password: SecretSource,
    /// IMAP folders watched for replies.
    pub folders: Vec<String>,
    /// Whether `user+tag@domain` reaches this mailbox.
    pub plus_addressing: bool,
}

/// A mail server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
}

/// How a mail connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`smtps://`, `imaps://`).
    ImplicitTls,
    /// Plain connect, then STARTTLS, which must succeed (`smtp://`, `imap://`).
    StartTls,
    /// No TLS at all; only ever to a loopback host (`tls = "none"`).
    Plaintext,
}

/// `[[persona]]`: who a probe claims to be.
#[derive(Debug, Clone)]
pub struct Persona {
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Sender address.
    pub email: String,
    /// Id of the mailbox this persona sends from.
    pub mailbox: String,
    /// ISO 639-1 codes this persona writes in.
    pub languages: Vec<String>,
}

/// `[[script]]`: what a probe asks.
#[derive(Debug, Clone)]
pub struct Script {
    /// Unique id.
    pub id: String,
    /// How pressing the question is.
    pub urgency: Urgency,
    /// Facts a correct answer mentions.
    pub expect: Vec<regex::Regex>,
    /// Extra template variables.
    pub vars: BTreeMap<String, String>,
    /// Template sources by ISO 639-1 language code.
    pub texts: BTreeMap<String, ScriptText>,
}

/// The template sources of one language of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptText {
    /// Subject template.
    pub subject: String,
    /// Body template.
    pub body: String,
}

/// The values a script's templates can use.
#[derive(Debug, Clone, Default)]
pub struct TemplateContext {
    /// `{{ persona.name }}`.
    pub persona_name: String,
    /// `{{ persona.email }}`.
    pub persona_email: String,
    /// `{{ target.id }}`.
    pub target_id: String,
    /// `{{ target.name }}`.
    pub target_name: String,
    /// `{{ token }}`: the probe's matching token.
    pub token: String,
    /// `{{ probe_id }}`.
    pub probe_id: String,
}

/// Why a script could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The script has no text in the asked language.
    #[error("script `{script}` has no text in language `{lang}`")]
    NoText {
        /// Script id.
        script: String,
        /// Language asked for.
        lang: String,
    },
    /// The template engine failed.
    #[error("cannot render the {part} of script `{script}`")]
    Render {
        /// Script id.
        script: String,
        /// `subject` or `body`.
        part: &'static str,
        /// The engine's error.
        #[source]
        source: minijinja::Error,
    },
}

/// Template variable names the renderer provides; script vars may not reuse them.
pub(crate) const RESERVED_VARS: &[&str] = &["persona", "target", "token", "probe_id"];

/// A template environment for plain-text mail: strict about undefined names, no escaping, and
/// the text's own trailing newline kept.
pub(crate) fn template_env() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env
}

pub(crate) fn template_value(
    vars: &BTreeMap<String, String>,
    ctx: &TemplateContext,
) -> minijinja::Value {
    use minijinja::Value;
    let mut map: BTreeMap<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let persona: BTreeMap<String, Value> = [
        ("name".to_owned(), Value::from(ctx.persona_name.as_str())),
        ("email".to_owned(), Value::from(ctx.persona_email.as_str())),
    ]
    .into();
    let target: BTreeMap<String, Value> = [
        ("id".to_owned(), Value::from(ctx.target_id.as_str())),
        ("name".to_owned(), Value::from(ctx.target_name.as_str())),
    ]
    .into();
    map.insert("persona".into(), Value::from_object(persona));
    map.insert("target".into(), Value::from_object(target));
    map.insert("token".into(), Value::from(ctx.token.as_str()));
    map.insert("probe_id".into(), Value::from(ctx.probe_id.as_str()));
    Value::from_object(map)
}

impl Script {
    /// Renders the subject and body in `lang` for one probe.
    pub fn render(
        &self,
        lang: &str,
        ctx: &TemplateContext,
    ) -> Result<(String, String), TemplateError> {
        let text = self.texts.get(lang).ok_or_else(|| TemplateError::NoText {
            script: self.id.clone(),
            lang: lang.to_owned(),
        })?;
        let env = template_env();
        let value = template_value(&self.vars, ctx);
        let render = |part: &'static str, source: &str| {
            env.render_str(source, value.clone())
                .map_err(|source| TemplateError::Render {
                    script: self.id.clone(),
                    part,
                    source,
                })
        };
        Ok((
            render("subject", &text.subject)?,
            render("body", &text.body)?,
        ))
    }

    /// The languages this script has text in.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.texts.keys().map(String::as_str)
    }
}

/// Opening hours per weekday, as minutes from local midnight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WeeklyHours {
    /// Index 0 is Monday. Each day's `(start, end)` intervals are sorted and do not overlap;
    /// `end` is at most 1440 (24:00) and greater than `start`.
    pub days: [Vec<(u16, u16)>; 7],
}

impl WeeklyHours {
    /// Monday to Friday, 09:00–18:00.
    pub fn office_default() -> WeeklyHours {
        let mut hours = WeeklyHours::default();
        for day in &mut hours.days[..5] {
            day.push((9 * 60, 18 * 60));
        }
        hours
    }

    /// Whether `weekday` (0 = Monday) at `minute` from midnight is inside the hours.
    pub fn contains(&self, weekday: usize, minute: u16) -> bool {
        self.days
            .get(weekday)
            .is_some_and(|d| d.iter().any(|&(s, e)| s <= minute && minute < e))
    }
}

/// `[[calendar]]`: a support team's business hours.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Unique id.
    pub id: String,
    /// The zone the hours are in.
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name as written.
    pub timezone_name: String,
    /// Opening hours.
    pub hours: WeeklyHours,
    /// Days closed all day.
    pub holidays: Vec<jiff::civil::Date>,
}

/// `[[target]]`: one support desk under observation.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The target's home zone.
    pub timezone: jiff::tz::TimeZone,
    /// The IANA name as written.
    pub timezone_name: String,
    /// Whether a researcher checked the addresses and claims; sending is refused until then.
    pub verified: bool,
    /// What the target promises.
    pub claims: Claims,
    /// Ways to reach it, at most one per kind.
    pub channels: Vec<TargetChannel>,
    /// Classification rules.
    pub rules: Rules,
}

impl Target {
    /// The channel of this kind, if the target has one.
    pub fn channel(&self, kind: ChannelKind) -> Option<&TargetChannel> {
        self.channels.iter().find(|c| c.kind == kind)
    }
}

/// `[target.claims]`: the promises being measured.
#[derive(Debug, Clone)]
pub struct Claims {
    /// http(s) URL where the claims were read.
    pub source: String,
    /// When they were read.
    pub captured: jiff::civil::Date,
    /// When support is said to be staffed; `None` when no such claim was found (then no
    /// 24/7 or calendar verdict is computed).
    pub availability: Option<Availability>,
    /// Languages support is said to answer in.
    pub languages: Vec<String>,
    /// Promised first-response time per channel, where one is promised.
    pub first_response: PerChannel<Option<Duration>>,
    /// Free text.
    pub note: Option<String>,
}

/// When a target claims to be staffed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// `"24/7"`.
    AlwaysOn,
    /// The id of a `[[calendar]]`.
    Calendar(String),
}

/// `[[target.channel]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetChannel {
    /// Which kind.
    pub kind: ChannelKind,
    /// Email address (email channels).
    pub address: Option<String>,
    /// Vendor driver (ticket: zendesk, zammad, http; chat: livechat, http).
    pub driver: Option<String>,
    /// http(s) base URL of the helpdesk or chat.
    pub base_url: Option<String>,
    /// Vendor organization id (livechat).
    pub organization_id: Option<String>,
    /// Disabled channels are kept but never probed.
    pub enabled: bool,
    /// Extra trusted root CA (PEM) for the vendor's https endpoints, resolved against the
    /// config file's directory. Default: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// How chat events arrive (livechat): the RTM websocket (default) or polling.
    pub events: EventSource,
    /// How often open tickets and chats are polled. Default: 5 s for chats, 5 min for tickets.
    pub poll_interval: Duration,
    /// The polite closing message sent before a chat is closed.
    pub closing_message: String,
    /// LiveChat `client_id` for the customer token, if the account requires one.
    pub client_id: Option<String>,
    /// LiveChat customer token endpoint; default `{base-url}/v2/customer/token`, or
    /// LiveChat's accounts server when `base-url` is not given.
    pub token_url: Option<String>,
    /// Named secrets for declarative steps (`{{ secrets.NAME }}`), read only when used and
    /// redacted from evidence and logs.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Declarative steps (`driver = "http"`).
    pub steps: crate::channels::http::spec::Steps,
}

/// How a chat driver learns about new chat events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// A websocket the vendor pushes events on (LiveChat RTM), with polling to catch up after
    /// a drop.
    Websocket,
    /// Polling only.
    Poll,
}

/// `[[schedule]]`: when to probe what.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique id.
    pub id: String,
    /// Parsed cron expression.
    pub cron: cron::Schedule,
    /// The cron expression as written.
    pub cron_text: String,
    /// Random delay added to each firing, up to this much.
    pub jitter: Duration,
    /// Target ids.
    pub targets: Vec<String>,
    /// Channel kinds, each present on every target.
    pub channels: Vec<ChannelKind>,
    /// Script ids.
    pub scripts: Vec<String>,
    /// Persona ids.
    pub personas: Vec<String>,
    /// How firings are spread, if at all.
    pub stratify: Option<Stratify>,
    /// What to do about firings missed while the daemon was down.
    pub missed: MissedPolicy,
}

/// How a schedule spreads its probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stratify {
    /// Balance probes over the 168 hours of the week.
    HourOfWeek,
}

/// What to do with firings missed while the daemon was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedPolicy {
    /// Drop them.
    Skip,
    /// Run the most recent one once.
    Latest,
}

/// `[limits]`: ethics guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most probes sent to one target per day, over all channels.
    pub per_target_per_day: u32,
    /// Least time between two probes to the same target.
    pub min_gap: Duration,
    /// Optional further cap per channel kind, per target per day.
    pub per_channel_per_day: PerChannel<Option<u32>>,
}

#[cfg(test)]
mod tests;
