//! Raw serde structs → validated [`Config`], collecting every problem as a [`Diagnostic`].
//!
//! Each check that fails records a diagnostic and leaves its value out; the result is built only
//! when nothing failed. References between sections are checked against the ids *declared* in the
//! file (even where the referenced item has errors of its own), so one mistake is reported once,
//! not again at every place that mentions it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::model::{ChannelKind, Rules, Urgency};

use super::locate::{Anchor, KeyPath, Seg, Tree, line_col};
use super::raw::{self, Any, RawConfig, RawPerChannel};
use super::secret::{self, SecretSource};
use super::{
    Availability, Calendar, Claims, Config, Diagnostic, Endpoint, Limits, Mailbox, MissedPolicy,
    PerChannel, Persona, Schedule, Script, ScriptText, Security, Settings, Stratify, Target,
    TargetChannel, TemplateContext, WeeklyHours,
};
use crate::channels::http::spec::{self as steps_spec, Steps};

/// Parses and validates `text`; on failure returns every diagnostic found (unsorted).
pub(super) fn parse(text: &str, file: &Path, sha256: String) -> Result<Config, Vec<Diagnostic>> {
    let tree = match Tree::parse(text) {
        Ok(tree) => tree,
        Err(e) => return Err(vec![toml_error(text, file, None, &e)]),
    };
    let mut v = Validator {
        text,
        file,
        dir: file.parent().unwrap_or(Path::new("")).to_owned(),
        tree,
        diags: Vec::new(),
    };

    let mut unknown = Vec::new();
    let raw: Result<RawConfig, toml::de::Error> = toml::Deserializer::parse(text)
        .and_then(|de| serde_ignored::deserialize(de, |path| unknown.push(key_path(&path))));
    let raw = match raw {
        Ok(raw) => raw,
        Err(e) => return Err(vec![toml_error(text, file, Some(&v.tree), &e)]),
    };
    for path in &unknown {
        let name = match path.0.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        v.push(path, Anchor::Key, format!("unknown key `{name}`"));
    }

    let config = v.config(raw, sha256);
    match config {
        Some(config) if v.diags.is_empty() => Ok(config),
        _ => Err(v.diags),
    }
}

/// A TOML syntax or type error: one diagnostic, at the error's span when it has one.
fn toml_error(text: &str, file: &Path, tree: Option<&Tree<'_>>, e: &toml::de::Error) -> Diagnostic {
    let offset = e.span().map_or(0, |s| s.start);
    let (line, col) = line_col(text, offset);
    let key_path = match (tree, e.span()) {
        (Some(tree), Some(_)) => tree.path_at(offset).to_string(),
        _ => String::new(),
    };
    Diagnostic {
        file: file.to_owned(),
        line,
        col,
        key_path,
        message: e.message().trim().to_owned(),
    }
}

/// A serde_ignored path as a key path; `Some`/newtype wrappers are not part of the document.
fn key_path(path: &serde_ignored::Path<'_>) -> KeyPath {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Seg>) {
        use serde_ignored::Path as P;
        match path {
            P::Root => {}
            P::Seq { parent, index } => {
                walk(parent, out);
                out.push(Seg::Index(*index));
            }
            P::Map { parent, key } => {
                walk(parent, out);
                out.push(Seg::Key(key.clone()));
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut segs = Vec::new();
    walk(path, &mut segs);
    KeyPath(segs)
}

struct Validator<'i> {
    text: &'i str,
    file: &'i Path,
    dir: PathBuf,
    tree: Tree<'i>,
    diags: Vec<Diagnostic>,
}

/// Ids declared in the file, per kind, for reference checks.
#[derive(Default)]
struct Declared {
    mailboxes: BTreeSet<String>,
    calendars: BTreeSet<String>,
    /// Persona id → languages.
    personas: BTreeMap<String, Vec<String>>,
    /// Script id → text languages.
    scripts: BTreeMap<String, Vec<String>>,
    /// Target id → channel kinds it has.
    targets: BTreeMap<String, Vec<ChannelKind>>,
}

fn declared(raw: &RawConfig) -> Declared {
    let ids = |id: &Option<String>| id.clone().filter(|s| !s.is_empty());
    // On a duplicate id the first item wins, as everywhere else; `id` reports the duplicate.
    fn first<V>(pairs: impl Iterator<Item = (String, V)>) -> BTreeMap<String, V> {
        let mut map = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        map
    }
    let kinds = |t: &raw::RawTarget| -> Vec<ChannelKind> {
        let kind = |c: &raw::RawChannel| c.kind.as_deref()?.parse().ok();
        t.channel.iter().filter_map(kind).collect()
    };
    Declared {
        mailboxes: raw.mailbox.iter().filter_map(|m| ids(&m.id)).collect(),
        calendars: raw.calendar.iter().filter_map(|c| ids(&c.id)).collect(),
        personas: first(
            raw.persona
                .iter()
                .filter_map(|p| Some((ids(&p.id)?, p.languages.clone().unwrap_or_default()))),
        ),
        scripts: first(
            raw.script
                .iter()
                .filter_map(|s| Some((ids(&s.id)?, s.text.keys().cloned().collect()))),
        ),
        targets: first(
            raw.target
                .iter()
                .filter_map(|t| Some((ids(&t.id)?, kinds(t)))),
        ),
    }
}

impl<'i> Validator<'i> {
    fn push(&mut self, path: &KeyPath, anchor: Anchor, message: String) {
        let span = self.tree.span(path, anchor);
        let (line, col) = line_col(self.text, span.start);
        self.push_at(line, col, path, message);
    }

    fn push_at(&mut self, line: usize, col: usize, path: &KeyPath, message: String) {
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            key_path: path.to_string(),
            message,
        });
    }

    /// A problem with the value at `path` (or, when it is missing, with its table).
    fn err(&mut self, path: &KeyPath, message: impl Into<String>) {
        self.push(path, Anchor::Value, message.into());
    }

    fn line_of(&self, path: &KeyPath) -> usize {
        line_col(self.text, self.tree.span(path, Anchor::Key).start).0
    }

    fn config(&mut self, raw: RawConfig, sha256: String) -> Option<Config> {
        let root = KeyPath::root();
        let decl = declared(&raw);
        let settings = self.settings(&root.key("settings"), raw.settings.unwrap_or_default());
        let limits = self.limits(&root.key("limits"), raw.limits.unwrap_or_default());

        let mut mailboxes = Vec::new();
        let mut seen = HashMap::new();
        for (i, m) in raw.mailbox.into_iter().enumerate() {
            let path = root.key("mailbox").index(i);
            let id = self.id(&path, m.id.as_deref(), "mailbox", &mut seen);
            mailboxes.push(self.mailbox(&path, id, m));
        }

        let mut personas = Vec::new();
        let mut seen = HashMap::new();
        for (i, p) in raw.persona.into_iter().enumerate() {
            let path = root.key("persona").index(i);
            let id = self.id(&path, p.id.as_deref(), "persona", &mut seen);
            personas.push(self.persona(&path, id, p, &decl));
        }

        let mut scripts = Vec::new();
        let mut seen = HashMap::new();
        for (i, s) in raw.script.into_iter().enumerate() {
            let path = root.key("script").index(i);
            let id = self.id(&path, s.id.as_deref(), "script", &mut seen);
            scripts.push(self.script(&path, id, s));
        }

        let mut calendars = Vec::new();
        let mut seen = HashMap::new();
        for (i, c) in raw.calendar.into_iter().enumerate() {
            let path = root.key("calendar").index(i);
            let id = self.id(&path, c.id.as_deref(), "calendar", &mut seen);
            calendars.push(self.calendar(&path, id, c));
        }

        let mut targets = Vec::new();
        let mut seen = HashMap::new();
        for (i, t) in raw.target.into_iter().enumerate() {
            let path = root.key("target").index(i);
            let id = self.id(&path, t.id.as_deref(), "target", &mut seen);
            targets.push(self.target(&path, id, t, &decl));
        }

        let mut schedules = Vec::new();
        let mut seen = HashMap::new();
        for (i, s) in raw.schedule.into_iter().enumerate() {
            let path = root.key("schedule").index(i);
            let id = self.id(&path, s.id.as_deref(), "schedule", &mut seen);
            schedules.push(self.schedule(&path, id, s, &decl));
        }

        Some(Config {
            file: self.file.to_owned(),
            sha256,
            settings: settings?,
            mailboxes: mailboxes.into_iter().collect::<Option<_>>()?,
            personas: personas.into_iter().collect::<Option<_>>()?,
            scripts: scripts.into_iter().collect::<Option<_>>()?,
            calendars: calendars.into_iter().collect::<Option<_>>()?,
            targets: targets.into_iter().collect::<Option<_>>()?,
            schedules: schedules.into_iter().collect::<Option<_>>()?,
            limits: limits?,
        })
    }

    // ----- sections -----

    fn settings(&mut self, path: &KeyPath, s: raw::RawSettings) -> Option<Settings> {
        let database = s.database.unwrap_or_else(|| "data/deskprobe.db".into());
        if database.is_empty() {
            self.err(&path.key("database"), "must not be empty");
        }
        let vantage = s.vantage.unwrap_or_else(|| "default".into());
        if vantage.trim().is_empty() || vantage.chars().any(char::is_control) {
            self.err(
                &path.key("vantage"),
                "must be a non-empty name without control characters",
            );
        }
        let window = s.observation_window.unwrap_or_default();
        let wpath = path.key("observation-window");
        let observation_window = self.per_channel_duration(&wpath, window, ["7d", "7d", "1h"]);
        let compliance_target = s.compliance_target.unwrap_or(0.95);
        let q_ok = compliance_target > 0.0 && compliance_target <= 1.0;
        if !q_ok {
            self.err(
                &path.key("compliance-target"),
                format!("must be greater than 0 and at most 1, not {compliance_target}"),
            );
        }
        let business_hours = match &s.business_hours {
            Some(hours) => self.weekly_hours(&path.key("business-hours"), hours),
            None => Some(WeeklyHours::office_default()),
        };
        let send_timeout =
            self.positive_duration(&path.key("send-timeout"), s.send_timeout.as_deref(), "60s");
        let send_attempts = s.send_attempts.unwrap_or(3);
        if !(1..=10).contains(&send_attempts) {
            self.err(
                &path.key("send-attempts"),
                format!("must be between 1 and 10, not {send_attempts}"),
            );
        }
        let retry_after = self.duration(
            &path.key("retry-after"),
            s.retry_after.as_deref().unwrap_or("10m"),
        );
        Some(Settings {
            database: PathBuf::from(database),
            vantage,
            observation_window: observation_window?,
            compliance_target,
            business_hours: business_hours?,
            send_timeout: send_timeout?,
            send_attempts,
            retry_after: retry_after?,
        })
    }

    fn per_channel_duration(
        &mut self,
        path: &KeyPath,
        raw: RawPerChannel<String>,
        defaults: [&str; 3],
    ) -> Option<PerChannel<Duration>> {
        let email = self.positive_duration(&path.key("email"), raw.email.as_deref(), defaults[0]);
        let ticket =
            self.positive_duration(&path.key("ticket"), raw.ticket.as_deref(), defaults[1]);
        let chat = self.positive_duration(&path.key("chat"), raw.chat.as_deref(), defaults[2]);
        Some(PerChannel {
            email: email?,
            ticket: ticket?,
            chat: chat?,
        })
    }

    fn limits(&mut self, path: &KeyPath, l: raw::RawLimits) -> Option<Limits> {
        let per_target_per_day = self.count(
            &path.key("per-target-per-day"),
            l.per_target_per_day.unwrap_or(6),
        );
        let min_gap = self.duration(&path.key("min-gap"), l.min_gap.as_deref().unwrap_or("2h"));
        let pc = l.per_channel_per_day.unwrap_or_default();
        let pcp = path.key("per-channel-per-day");
        let email = pc.email.map(|n| self.count(&pcp.key("email"), n));
        let ticket = pc.ticket.map(|n| self.count(&pcp.key("ticket"), n));
        let chat = pc.chat.map(|n| self.count(&pcp.key("chat"), n));
        Some(Limits {
            per_target_per_day: per_target_per_day?,
            min_gap: min_gap?,
            per_channel_per_day: PerChannel {
                email: email.map_or(Some(None), |n| n.map(Some))?,
                ticket: ticket.map_or(Some(None), |n| n.map(Some))?,
                chat: chat.map_or(Some(None), |n| n.map(Some))?,
            },
        })
    }

    fn mailbox(
        &mut self,
        path: &KeyPath,
        id: Option<String>,
        m: raw::RawMailbox,
    ) -> Option<Mailbox> {
        let plaintext = match m.tls.as_deref() {
            None | Some("required") => Some(false),
            Some("none") => Some(true),
            Some(other) => {
                self.err(
                    &path.key("tls"),
                    format!("unknown tls mode `{other}` (expected \"required\" or \"none\")"),
                );
                None
            }
        };
        let smtp = self
            .required(path, "smtp", m.smtp.as_deref())
            .and_then(|url| {
                self.endpoint(
                    &path.key("smtp"),
                    url,
                    Proto::Smtp,
                    plaintext.unwrap_or(false),
                )
            });
        let imap = self
            .required(path, "imap", m.imap.as_deref())
            .and_then(|url| {
                self.endpoint(
                    &path.key("imap"),
                    url,
                    Proto::Imap,
                    plaintext.unwrap_or(false),
                )
            });
        let ca_file = m.ca_file.as_deref().and_then(|f| {
            if f.is_empty() {
                self.err(&path.key("ca-file"), "must not be empty");
                None
            } else {
                Some(self.dir.join(f))
            }
        });
        let username = self.required_text(path, "username", m.username.as_deref());
        let password = match (m.password_env, m.password_file) {
            (Some(name), None) => {
                if is_identifier(&name) {
                    Some(SecretSource::Env(name))
                } else {
                    let msg = format!("`{name}` is not an environment variable name");
                    self.err(&path.key("password-env"), msg);
                    None
                }
            }
            (None, Some(file)) if file.is_empty() => {
                self.err(&path.key("password-file"), "must not be empty");
                None
            }
            (None, Some(file)) => {
                let full = self.dir.join(&file);
                match secret::check_file_mode(&full) {
                    Ok(()) => Some(SecretSource::File(full)),
                    Err(e) => {
                        self.err(&path.key("password-file"), error_chain(&e));
                        None
                    }
                }
            }
            (Some(_), Some(_)) => {
                self.err(
                    &path.key("password-file"),
                    "give only one of `password-env` and `password-file`",
                );
                None
            }
            (None, None) => {
                self.err(path, "missing `password-env` or `password-file`");
                None
            }
        };
        let folders = m.folders.unwrap_or_else(|| vec!["INBOX".into()]);
        if folders.is_empty() {
            self.err(&path.key("folders"), "must list at least one folder");
        }
        for (i, f) in folders.iter().enumerate() {
            if f.trim().is_empty() {
                self.err(
                    &path.key("folders").index(i),
                    "folder name must not be empty",
                );
            }
        }
        Some(Mailbox {
            id: id?,
            smtp: smtp?,
            imap: imap?,
            ca_file,
            username: username?,
            password: password?,
            folders,
            plus_addressing: m.plus_addressing.unwrap_or(false),
        })
    }

    fn persona(
        &mut self,
        path: &KeyPath,
        id: Option<String>,
        p: raw::RawPersona,
        decl: &Declared,
    ) -> Option<Persona> {
        let name = self.required_text(path, "name", p.name.as_deref());
        let email = self
            .required(path, "email", p.email.as_deref())
            .and_then(|e| {
                if is_email(e) {
                    Some(e.to_owned())
                } else {
                    self.err(&path.key("email"), format!("`{e}` is not an email address"));
                    None
                }
            });
        let mailbox = self
            .required(path, "mailbox", p.mailbox.as_deref())
            .and_then(|m| {
                if decl.mailboxes.contains(m) {
                    Some(m.to_owned())
                } else {
                    self.err(&path.key("mailbox"), format!("no mailbox has id `{m}`"));
                    None
                }
            });
        let languages = match p.languages {
            Some(l) => self.languages(&path.key("languages"), l, true),
            None => {
                self.err(&path.key("languages"), "missing required key `languages`");
                None
            }
        };
        Some(Persona {
            id: id?,
            name: name?,
            email: email?,
            mailbox: mailbox?,
            languages: languages?,
        })
    }

    fn script(&mut self, path: &KeyPath, id: Option<String>, s: raw::RawScript) -> Option<Script> {
        let urgency = match s.urgency.as_deref() {
            None => Some(Urgency::Normal),
            Some(u) => self.one_of(&path.key("urgency"), "urgency", u, Urgency::ALL),
        };
        let expect = self.regexes(&path.key("expect"), &s.expect);

        let mut vars = BTreeMap::new();
        let mut vars_ok = true;
        for (name, value) in s.vars {
            let vpath = path.key("vars").key(&name);
            let ident = is_identifier(&name);
            if !ident {
                self.push(
                    &vpath,
                    Anchor::Key,
                    format!("`{name}` is not a template variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                );
                vars_ok = false;
            } else if super::RESERVED_VARS.contains(&name.as_str()) {
                self.push(
                    &vpath,
                    Anchor::Key,
                    format!("`{name}` is provided by deskprobe and cannot be a script var"),
                );
                vars_ok = false;
            }
            match value {
                Any::String(v) => {
                    vars.insert(name, v);
                }
                other => {
                    self.err(
                        &vpath,
                        format!("must be a string, not {}", other.type_str()),
                    );
                    vars_ok = false;
                }
            }
        }

        let tpath = path.key("text");
        let mut texts = BTreeMap::new();
        let mut texts_ok = true;
        if s.text.is_empty() {
            self.err(
                &tpath,
                "needs text in at least one language, e.g. [script.text.en]",
            );
            texts_ok = false;
        }
        for (lang, t) in s.text {
            let lpath = tpath.key(&lang);
            if !is_language(&lang) {
                self.push(
                    &lpath,
                    Anchor::Key,
                    format!("`{lang}` is not an ISO 639-1 language code"),
                );
                texts_ok = false;
            }
            let subject = self.required_text(&lpath, "subject", t.subject.as_deref());
            let body = self.required_text(&lpath, "body", t.body.as_deref());
            if let Some(subject) = &subject {
                texts_ok &= self.template(&lpath.key("subject"), subject, &vars);
            }
            if let Some(body) = &body {
                texts_ok &= self.template(&lpath.key("body"), body, &vars);
            }
            match (subject, body) {
                (Some(subject), Some(body)) => {
                    texts.insert(lang, ScriptText { subject, body });
                }
                _ => texts_ok = false,
            }
        }
        (vars_ok && texts_ok).then_some(())?;
        Some(Script {
            id: id?,
            urgency: urgency?,
            expect: expect?,
            vars,
            texts,
        })
    }

    /// Compiles a template and renders it once with sample values, so that a typo in a variable
    /// name is a config error, not a failed probe. Reports at the template's own line.
    fn template(&mut self, path: &KeyPath, source: &str, vars: &BTreeMap<String, String>) -> bool {
        let env = super::template_env();
        let sample = TemplateContext {
            persona_name: "Sample Persona".into(),
            persona_email: "sample@example.org".into(),
            target_id: "sample-target".into(),
            target_name: "Sample Target".into(),
            token: "DP-SAMPLE".into(),
            probe_id: "01SAMPLEPROBE".into(),
        };
        let result = env
            .template_from_str(source)
            .and_then(|t| t.render(super::template_value(vars, &sample)));
        let Err(e) = result else { return true };

        let span = self.tree.span(path, Anchor::Value);
        let (mut line, mut col) = line_col(self.text, span.start);
        if let Some(n) = e.line().filter(|&n| n > 1) {
            let raw = &self.text[span.start..span.end.min(self.text.len())];
            // A newline right after `"""` is not part of the string.
            let skipped = ["\"\"\"\n", "\"\"\"\r\n", "'''\n", "'''\r\n"]
                .iter()
                .any(|p| raw.starts_with(p));
            line += n - 1 + usize::from(skipped);
            col = 1;
        }
        let mut message = format!("template error: {}", e.kind());
        if let Some(detail) = e.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        self.push_at(line, col, path, message);
        false
    }

    fn calendar(
        &mut self,
        path: &KeyPath,
        id: Option<String>,
        c: raw::RawCalendar,
    ) -> Option<Calendar> {
        let timezone = self
            .required(path, "timezone", c.timezone.as_deref())
            .and_then(|tz| {
                self.timezone(&path.key("timezone"), tz)
                    .map(|z| (z, tz.to_owned()))
            });
        let hours = match &c.hours {
            Some(h) => self.weekly_hours(&path.key("hours"), h),
            None => {
                self.err(&path.key("hours"), "missing required key `hours`");
                None
            }
        };
        let mut holidays = Vec::new();
        let mut holidays_ok = true;
        for (i, h) in c.holidays.iter().enumerate() {
            match self.date(&path.key("holidays").index(i), h) {
                Some(d) => holidays.push(d),
                None => holidays_ok = false,
            }
        }
        holidays.sort();
        holidays.dedup();
        holidays_ok.then_some(())?;
        let (timezone, timezone_name) = timezone?;
        Some(Calendar {
            id: id?,
            timezone,
            timezone_name,
            hours: hours?,
            holidays,
        })
    }

    fn target(
        &mut self,
        path: &KeyPath,
        id: Option<String>,
        t: raw::RawTarget,
        decl: &Declared,
    ) -> Option<Target> {
        let name = self.required_text(path, "name", t.name.as_deref());
        let timezone = self
            .required(path, "timezone", t.timezone.as_deref())
            .and_then(|tz| {
                self.timezone(&path.key("timezone"), tz)
                    .map(|z| (z, tz.to_owned()))
            });
        let claims = match t.claims {
            Some(c) => self.claims(&path.key("claims"), c, decl),
            None => {
                self.err(&path.key("claims"), "missing required table `claims`");
                None
            }
        };

        let mut channels = Vec::new();
        let mut channels_ok = true;
        let mut kinds: HashMap<ChannelKind, usize> = HashMap::new();
        for (i, c) in t.channel.into_iter().enumerate() {
            let cpath = path.key("channel").index(i);
            match self.channel(&cpath, c) {
                Some(ch) => {
                    if let Some(first) = kinds.insert(ch.kind, i) {
                        let line = self.line_of(&path.key("channel").index(first));
                        self.err(
                            &cpath.key("kind"),
                            format!("a second `{}` channel (first on line {line})", ch.kind),
                        );
                        channels_ok = false;
                    }
                    channels.push(ch);
                }
                None => channels_ok = false,
            }
        }

        let r = t.rules.unwrap_or_default();
        let rpath = path.key("rules");
        let auto_ack_subject = self.regexes(&rpath.key("auto-ack-subject"), &r.auto_ack_subject);
        let auto_ack_body = self.regexes(&rpath.key("auto-ack-body"), &r.auto_ack_body);
        let auto_ack_from = self.regexes(&rpath.key("auto-ack-from"), &r.auto_ack_from);
        let bot = self.regexes(&rpath.key("bot"), &r.bot);
        let ticket_ref = self.regexes(&rpath.key("ticket-ref"), &r.ticket_ref);
        let rules = Rules {
            auto_ack_subject: auto_ack_subject?,
            auto_ack_body: auto_ack_body?,
            auto_ack_from: auto_ack_from?,
            bot: bot?,
            ticket_ref: ticket_ref?,
        };
        channels_ok.then_some(())?;
        let (timezone, timezone_name) = timezone?;
        Some(Target {
            id: id?,
            name: name?,
            timezone,
            timezone_name,
            verified: t.verified.unwrap_or(false),
            claims: claims?,
            channels,
            rules,
        })
    }

    fn claims(&mut self, path: &KeyPath, c: raw::RawClaims, decl: &Declared) -> Option<Claims> {
        let source = self
            .required(path, "source", c.source.as_deref())
            .and_then(|s| self.http_url(&path.key("source"), s).then(|| s.to_owned()));
        let captured = match &c.captured {
            Some(d) => self.date(&path.key("captured"), d),
            None => {
                self.err(&path.key("captured"), "missing required key `captured`");
                None
            }
        };
        let availability = match c.availability.as_deref() {
            None => Some(None),
            Some("24/7") => Some(Some(Availability::AlwaysOn)),
            Some(a) if decl.calendars.contains(a) => Some(Some(Availability::Calendar(a.into()))),
            Some(a) => {
                let msg =
                    format!("expected \"24/7\" or a calendar id, but no calendar has id `{a}`");
                self.err(&path.key("availability"), msg);
                None
            }
        };
        let languages = self.languages(&path.key("languages"), c.languages, false);
        let fr = c.first_response.unwrap_or_default();
        let fpath = path.key("first-response");
        let mut opt = |key: &str, v: Option<String>| match v {
            None => Some(None),
            Some(d) => self
                .positive_duration(&fpath.key(key), Some(&d), "")
                .map(Some),
        };
        let email = opt("email", fr.email);
        let ticket = opt("ticket", fr.ticket);
        let chat = opt("chat", fr.chat);
        Some(Claims {
            source: source?,
            captured: captured?,
            availability: availability?,
            languages: languages?,
            first_response: PerChannel {
                email: email?,
                ticket: ticket?,
                chat: chat?,
            },
            note: c.note,
        })
    }

    fn channel(&mut self, path: &KeyPath, c: raw::RawChannel) -> Option<TargetChannel> {
        let kind = self
            .required(path, "kind", c.kind.as_deref())
            .and_then(|k| self.one_of(&path.key("kind"), "channel kind", k, ChannelKind::ALL))?;
        let mut ok = true;
        let mut not_for = |v: &mut Self, key: &str, given: bool| {
            if given {
                v.err(
                    &path.key(key),
                    format!("`{key}` does not apply to {kind} channels"),
                );
                ok = false;
            }
        };
        let driver = c.driver.as_deref();
        let http = driver == Some("http");
        let livechat = driver == Some("livechat");
        match kind {
            ChannelKind::Email => {
                not_for(self, "driver", c.driver.is_some());
                not_for(self, "base-url", c.base_url.is_some());
                not_for(self, "organization-id", c.organization_id.is_some());
                not_for(self, "ca-file", c.ca_file.is_some());
                not_for(self, "poll-interval", c.poll_interval.is_some());
                not_for(self, "secrets", !c.secrets.is_empty());
            }
            ChannelKind::Ticket => {
                not_for(self, "address", c.address.is_some());
                not_for(self, "organization-id", c.organization_id.is_some());
            }
            ChannelKind::Chat => not_for(self, "address", c.address.is_some()),
        }
        if kind != ChannelKind::Chat {
            not_for(self, "events", c.events.is_some());
            not_for(self, "closing-message", c.closing_message.is_some());
        }
        let mut driver_only = |v: &mut Self, key: &str, given: bool, which: &str| {
            if given {
                v.err(
                    &path.key(key),
                    format!("`{key}` applies only to `driver = \"{which}\"`"),
                );
                ok = false;
            }
        };
        if !livechat {
            driver_only(self, "client-id", c.client_id.is_some(), "livechat");
            driver_only(self, "token-url", c.token_url.is_some(), "livechat");
        }
        if !http {
            driver_only(self, "step", !c.step.is_empty(), "http");
            driver_only(self, "collect-step", !c.collect_step.is_empty(), "http");
            driver_only(self, "close-step", !c.close_step.is_empty(), "http");
        }
        match kind {
            ChannelKind::Email => match c.address.as_deref() {
                None => {
                    self.err(&path.key("address"), "email channels need an `address`");
                    ok = false;
                }
                Some(a) if !is_email(a) => {
                    self.err(
                        &path.key("address"),
                        format!("`{a}` is not an email address"),
                    );
                    ok = false;
                }
                Some(_) => {}
            },
            ChannelKind::Ticket | ChannelKind::Chat => {
                let drivers: &[&str] = if kind == ChannelKind::Ticket {
                    &["zendesk", "zammad", "http"]
                } else {
                    &["livechat", "http"]
                };
                match c.driver.as_deref() {
                    None => {
                        let msg =
                            format!("{kind} channels need a `driver` ({})", drivers.join(", "));
                        self.err(&path.key("driver"), msg);
                        ok = false;
                    }
                    Some(d) if !drivers.contains(&d) => {
                        let msg = format!(
                            "unknown {kind} driver `{d}` (expected one of: {})",
                            drivers.join(", ")
                        );
                        self.err(&path.key("driver"), msg);
                        ok = false;
                    }
                    Some(_) => {}
                }
                if kind == ChannelKind::Ticket && c.base_url.is_none() {
                    self.err(&path.key("base-url"), "ticket channels need a `base-url`");
                    ok = false;
                }
                if kind == ChannelKind::Chat
                    && livechat
                    && c.organization_id.as_deref().is_none_or(str::is_empty)
                {
                    self.err(
                        &path.key("organization-id"),
                        "livechat channels need an `organization-id`",
                    );
                    ok = false;
                }
            }
        }
        if let Some(url) = c.base_url.as_deref() {
            ok &= self.vendor_url(&path.key("base-url"), url);
        }
        if let Some(url) = c.token_url.as_deref() {
            ok &= self.vendor_url(&path.key("token-url"), url);
        }
        let ca_file = c.ca_file.as_deref().and_then(|f| {
            if f.is_empty() {
                self.err(&path.key("ca-file"), "must not be empty");
                None
            } else {
                Some(self.dir.join(f))
            }
        });
        if c.ca_file.as_deref() == Some("") {
            ok = false;
        }
        let events = match c.events.as_deref() {
            None if http => Some(super::EventSource::Poll),
            None | Some("websocket") => Some(super::EventSource::Websocket),
            Some("poll") => Some(super::EventSource::Poll),
            Some(other) => {
                let msg =
                    format!("unknown events source `{other}` (expected \"websocket\" or \"poll\")");
                self.err(&path.key("events"), msg);
                None
            }
        };
        let default_interval = if kind == ChannelKind::Chat {
            "5s"
        } else {
            "5m"
        };
        let poll_interval = self.positive_duration(
            &path.key("poll-interval"),
            c.poll_interval.as_deref(),
            default_interval,
        );
        let closing_message = c
            .closing_message
            .unwrap_or_else(|| "Thank you, that answers my question. Goodbye!".to_owned());
        if closing_message.trim().is_empty() {
            self.err(&path.key("closing-message"), "must not be empty");
            ok = false;
        }
        let mut secrets = BTreeMap::new();
        for (name, r) in c.secrets {
            let spath = path.key("secrets").key(&name);
            if !is_identifier(&name) {
                let msg = format!("`{name}` is not a secret name ([A-Za-z_][A-Za-z0-9_]*)");
                self.push(&spath, Anchor::Key, msg);
                ok = false;
                continue;
            }
            match (r.env, r.file) {
                (Some(env), None) if is_identifier(&env) => {
                    secrets.insert(name, SecretSource::Env(env));
                }
                (Some(env), None) => {
                    let msg = format!("`{env}` is not an environment variable name");
                    self.err(&spath.key("env"), msg);
                    ok = false;
                }
                (None, Some(file)) if !file.is_empty() => {
                    let full = self.dir.join(&file);
                    match secret::check_file_mode(&full) {
                        Ok(()) => {
                            secrets.insert(name, SecretSource::File(full));
                        }
                        Err(e) => {
                            self.err(&spath.key("file"), error_chain(&e));
                            ok = false;
                        }
                    }
                }
                _ => {
                    self.err(
                        &spath,
                        "give exactly one of `env = \"NAME\"` and `file = \"path\"`",
                    );
                    ok = false;
                }
            }
        }
        let steps = if http {
            let names: BTreeSet<String> = secrets.keys().cloned().collect();
            self.all_steps(path, &c.step, &c.collect_step, &c.close_step, &names)
        } else {
            Some(Steps::default())
        };
        ok.then_some(())?;
        Some(TargetChannel {
            kind,
            address: c.address,
            driver: c.driver,
            base_url: c.base_url,
            organization_id: c.organization_id,
            enabled: c.enabled.unwrap_or(true),
            ca_file,
            events: events?,
            poll_interval: poll_interval?,
            closing_message,
            client_id: c.client_id,
            token_url: c.token_url,
            secrets,
            steps: steps?,
        })
    }

    /// An http(s) URL of a vendor endpoint: plaintext `http://` only to a loopback host.
    fn vendor_url(&mut self, path: &KeyPath, url: &str) -> bool {
        if !self.http_url(path, url) {
            return false;
        }
        match plaintext_to_remote(url) {
            Some(host) => {
                self.err(
                    path,
                    format!(
                        "plaintext http:// is only allowed to a loopback host, not `{host}`; use https://"
                    ),
                );
                false
            }
            None => true,
        }
    }

    fn all_steps(
        &mut self,
        path: &KeyPath,
        send: &[raw::RawStep],
        collect: &[raw::RawStep],
        close: &[raw::RawStep],
        secrets: &BTreeSet<String>,
    ) -> Option<Steps> {
        if send.is_empty() {
            self.err(
                &path.key("step"),
                "`driver = \"http\"` needs at least one [[target.channel.step]]",
            );
            return None;
        }
        let mut known: BTreeSet<String> = crate::channels::http::steps::BASE_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let send = self.steps(&path.key("step"), send, &mut known, secrets, true);
        let collect = self.steps(
            &path.key("collect-step"),
            collect,
            &mut known,
            secrets,
            false,
        );
        let close = self.steps(&path.key("close-step"), close, &mut known, secrets, false);
        Some(Steps {
            send: send?,
            collect: collect?,
            close: close?,
        })
    }

    /// Validates one phase of steps. `known` holds the template names defined so far and
    /// grows with each step's captures.
    fn steps(
        &mut self,
        path: &KeyPath,
        list: &[raw::RawStep],
        known: &mut BTreeSet<String>,
        secrets: &BTreeSet<String>,
        send_phase: bool,
    ) -> Option<Vec<steps_spec::Step>> {
        use steps_spec::{Action, Body, Cond, EventSpec, Pointer, Poll};
        let mut out = Vec::new();
        let mut ok = true;
        let mut ws_open = false;
        let mut accepted_at: Option<usize> = None;
        for (i, r) in list.iter().enumerate() {
            let spath = path.index(i);
            let name = r.name.clone().unwrap_or_else(|| format!("step {}", i + 1));
            let mut step_ok = true;
            let tmpl = |v: &mut Self, p: &KeyPath, src: &str, known: &BTreeSet<String>| -> bool {
                match crate::channels::http::steps::check_template(src, known, secrets) {
                    Ok(()) => true,
                    Err(msg) => {
                        v.err(p, msg);
                        false
                    }
                }
            };
            let kinds = [
                r.url.is_some() || r.method.is_some(),
                r.ws_connect.is_some(),
                r.ws_send.is_some(),
                r.ws_receive.is_some(),
            ];
            let action = match kinds.iter().filter(|k| **k).count() {
                1 => {
                    if r.url.is_some() || r.method.is_some() {
                        let method = r.method.clone().unwrap_or_else(|| "GET".into());
                        let upper = method.to_ascii_uppercase();
                        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
                            .contains(&upper.as_str())
                        {
                            self.err(
                                &spath.key("method"),
                                format!("unknown HTTP method `{method}`"),
                            );
                            step_ok = false;
                        }
                        let url = match &r.url {
                            Some(u) => {
                                step_ok &= tmpl(self, &spath.key("url"), u, known);
                                self.step_url(&spath.key("url"), u, known, secrets, false);
                                u.clone()
                            }
                            None => {
                                self.err(&spath.key("url"), "missing required key `url`");
                                step_ok = false;
                                String::new()
                            }
                        };
                        let bodies = [
                            r.json.is_some(),
                            r.form.is_some(),
                            r.multipart.is_some(),
                            r.body.is_some(),
                        ];
                        let body = if bodies.iter().filter(|b| **b).count() > 1 {
                            self.err(
                                &spath,
                                "give at most one of `json`, `form`, `multipart` and `body`",
                            );
                            step_ok = false;
                            Body::None
                        } else if let Some(j) = &r.json {
                            let value = toml_to_json(j);
                            for (p, s) in json_strings(&value) {
                                let _ = p;
                                step_ok &= tmpl(self, &spath.key("json"), &s, known);
                            }
                            Body::Json(value)
                        } else if let Some(f) = &r.form {
                            for (k, v) in f {
                                step_ok &= tmpl(self, &spath.key("form").key(k), v, known);
                            }
                            Body::Form(f.clone().into_iter().collect())
                        } else if let Some(f) = &r.multipart {
                            for (k, v) in f {
                                step_ok &= tmpl(self, &spath.key("multipart").key(k), v, known);
                            }
                            Body::Multipart(f.clone().into_iter().collect())
                        } else if let Some(b) = &r.body {
                            step_ok &= tmpl(self, &spath.key("body"), b, known);
                            Body::Text(b.clone())
                        } else {
                            Body::None
                        };
                        for (k, v) in &r.headers {
                            step_ok &= tmpl(self, &spath.key("headers").key(k), v, known);
                        }
                        Action::Http {
                            method: upper,
                            url,
                            headers: r.headers.clone().into_iter().collect(),
                            body,
                        }
                    } else if let Some(u) = &r.ws_connect {
                        step_ok &= tmpl(self, &spath.key("ws-connect"), u, known);
                        self.step_url(&spath.key("ws-connect"), u, known, secrets, true);
                        for (k, v) in &r.headers {
                            step_ok &= tmpl(self, &spath.key("headers").key(k), v, known);
                        }
                        ws_open = true;
                        Action::WsConnect {
                            url: u.clone(),
                            headers: r.headers.clone().into_iter().collect(),
                        }
                    } else if let Some(m) = &r.ws_send {
                        if !ws_open {
                            self.err(
                                &spath.key("ws-send"),
                                "no earlier `ws-connect` step in this list",
                            );
                            step_ok = false;
                        }
                        let value = toml_to_json(m);
                        for (_, s) in json_strings(&value) {
                            step_ok &= tmpl(self, &spath.key("ws-send"), &s, known);
                        }
                        Action::WsSend { message: value }
                    } else {
                        let w = r.ws_receive.as_ref().expect("counted above");
                        if !ws_open {
                            self.err(
                                &spath.key("ws-receive"),
                                "no earlier `ws-connect` step in this list",
                            );
                            step_ok = false;
                        }
                        let until = match w.until.as_deref().map(Cond::parse) {
                            None => None,
                            Some(Ok(c)) => Some(c),
                            Some(Err(msg)) => {
                                self.err(&spath.key("ws-receive").key("until"), msg);
                                step_ok = false;
                                None
                            }
                        };
                        if w.timeout.is_some() {
                            self.err(
                                &spath.key("ws-receive").key("timeout"),
                                "give the timeout as the step's own `timeout` key",
                            );
                            step_ok = false;
                        }
                        Action::WsReceive { until }
                    }
                }
                0 => {
                    self.err(
                        &spath,
                        "a step needs one of `url` (HTTP), `ws-connect`, `ws-send` or `ws-receive`",
                    );
                    ok = false;
                    continue;
                }
                _ => {
                    self.err(&spath, "a step does only one of `url` (HTTP), `ws-connect`, `ws-send` and `ws-receive`");
                    ok = false;
                    continue;
                }
            };
            let is_http = matches!(action, Action::Http { .. });
            let mut expect = Vec::new();
            for (j, code) in r.expect.iter().flatten().enumerate() {
                match u16::try_from(*code)
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                {
                    Some(c) => expect.push(c),
                    None => {
                        self.err(
                            &spath.key("expect").index(j),
                            format!("`{code}` is not an HTTP status code (100-599)"),
                        );
                        step_ok = false;
                    }
                }
            }
            if !is_http && r.expect.is_some() {
                self.err(&spath.key("expect"), "`expect` applies only to HTTP steps");
                step_ok = false;
            }
            let poll = match &r.poll {
                None => None,
                Some(_) if !is_http => {
                    self.err(&spath.key("poll"), "`poll` applies only to HTTP steps");
                    step_ok = false;
                    None
                }
                Some(p) => {
                    let ppath = spath.key("poll");
                    let until = match p.until.as_deref() {
                        None => {
                            self.err(&ppath.key("until"), "missing required key `until`");
                            None
                        }
                        Some(u) => match Cond::parse(u) {
                            Ok(c) => Some(c),
                            Err(msg) => {
                                self.err(&ppath.key("until"), msg);
                                None
                            }
                        },
                    };
                    let interval =
                        self.positive_duration(&ppath.key("interval"), p.interval.as_deref(), "2s");
                    let timeout =
                        self.positive_duration(&ppath.key("timeout"), p.timeout.as_deref(), "60s");
                    match (until, interval, timeout) {
                        (Some(until), Some(interval), Some(timeout)) => Some(Poll {
                            until,
                            interval,
                            timeout,
                        }),
                        _ => {
                            step_ok = false;
                            None
                        }
                    }
                }
            };
            let timeout = match r.timeout.as_deref() {
                None => None,
                Some(t) => {
                    let d = self.positive_duration(&spath.key("timeout"), Some(t), "");
                    if d.is_none() {
                        step_ok = false;
                    }
                    d
                }
            };
            let mut capture = Vec::new();
            let mut new_names = Vec::new();
            for (cname, ptr) in &r.capture {
                let cpath = spath.key("capture").key(cname);
                if !is_identifier(cname) {
                    self.push(
                        &cpath,
                        Anchor::Key,
                        format!("`{cname}` is not a capture name ([A-Za-z_][A-Za-z0-9_]*)"),
                    );
                    step_ok = false;
                    continue;
                }
                if crate::channels::http::steps::BASE_NAMES.contains(&cname.as_str()) {
                    self.push(
                        &cpath,
                        Anchor::Key,
                        format!("`{cname}` is provided by deskprobe and cannot be a capture name"),
                    );
                    step_ok = false;
                    continue;
                }
                match Pointer::parse(ptr) {
                    Ok(p) => {
                        capture.push((cname.clone(), p));
                        new_names.push(cname.clone());
                    }
                    Err(msg) => {
                        self.err(&cpath, msg);
                        step_ok = false;
                    }
                }
            }
            if !capture.is_empty()
                && matches!(action, Action::WsConnect { .. } | Action::WsSend { .. })
            {
                self.err(
                    &spath.key("capture"),
                    "only HTTP and `ws-receive` steps have an answer to capture from",
                );
                step_ok = false;
            }
            // Captures are defined for the later templates of this step (its reference) and
            // for every later step.
            known.extend(new_names);
            let reference = match &r.reference {
                None => None,
                Some(t) => {
                    step_ok &= tmpl(self, &spath.key("reference"), t, known);
                    Some(t.clone())
                }
            };
            let accepted = r.accepted.unwrap_or(false);
            if accepted {
                if !send_phase {
                    self.err(
                        &spath.key("accepted"),
                        "`accepted` applies only to [[target.channel.step]]",
                    );
                    step_ok = false;
                } else if !is_http {
                    self.err(
                        &spath.key("accepted"),
                        "only an HTTP step can be the acceptance",
                    );
                    step_ok = false;
                } else if let Some(first) = accepted_at {
                    self.err(
                        &spath.key("accepted"),
                        format!("step {} is already marked `accepted`", first + 1),
                    );
                    step_ok = false;
                } else {
                    accepted_at = Some(i);
                }
            }
            let events = match &r.events {
                None => None,
                Some(e) => {
                    let epath = spath.key("events");
                    let ptr = |v: &mut Self,
                               key: &str,
                               given: Option<&String>,
                               required: bool|
                     -> Option<Option<Pointer>> {
                        match given {
                            None if required => {
                                v.err(&epath.key(key), format!("missing required key `{key}`"));
                                None
                            }
                            None => Some(None),
                            Some(p) => match Pointer::parse(p) {
                                Ok(p) => Some(Some(p)),
                                Err(msg) => {
                                    v.err(&epath.key(key), msg);
                                    None
                                }
                            },
                        }
                    };
                    let list = ptr(self, "list", e.list.as_ref(), true);
                    let id = ptr(self, "id", e.id.as_ref(), true);
                    let at = ptr(self, "at", e.at.as_ref(), true);
                    let text = ptr(self, "text", e.text.as_ref(), true);
                    let from = ptr(self, "from", e.from.as_ref(), true);
                    let author = ptr(self, "author", e.author.as_ref(), false);
                    if e.agent.is_none() {
                        self.err(
                            &epath.key("agent"),
                            "missing required key `agent` (the `from` value of agent messages)",
                        );
                    }
                    match (list, id, at, text, from, author, e.agent.clone()) {
                        (
                            Some(Some(list)),
                            Some(Some(id)),
                            Some(Some(at)),
                            Some(Some(text)),
                            Some(Some(from)),
                            Some(author),
                            Some(agent),
                        ) => Some(EventSpec {
                            list,
                            id,
                            at,
                            text,
                            author,
                            from,
                            agent,
                            bot: e.bot.clone(),
                        }),
                        _ => {
                            step_ok = false;
                            None
                        }
                    }
                }
            };
            if events.is_some() && !is_http && !matches!(action, Action::WsReceive { .. }) {
                self.err(
                    &spath.key("events"),
                    "only HTTP and `ws-receive` steps have an answer to read events from",
                );
                step_ok = false;
            }
            if step_ok {
                out.push(steps_spec::Step {
                    name,
                    action,
                    expect,
                    capture,
                    poll,
                    accepted,
                    reference,
                    events,
                    timeout,
                });
            } else {
                ok = false;
            }
        }
        ok.then_some(out)
    }

    /// Checks a step URL after rendering it with sample values: http(s) (or ws(s) for
    /// websockets), and plaintext only to a loopback host.
    fn step_url(
        &mut self,
        path: &KeyPath,
        url: &str,
        known: &BTreeSet<String>,
        secrets: &BTreeSet<String>,
        websocket: bool,
    ) {
        // A URL that is all template (`{{ endpoint }}`) is checked when it is used.
        let Ok(rendered) = crate::channels::http::steps::render_sample(url, known, secrets) else {
            return;
        };
        if rendered.starts_with(crate::channels::http::steps::SAMPLE) {
            return;
        }
        let (secure, plain) = if websocket {
            ("wss", "ws")
        } else {
            ("https", "http")
        };
        let rest = strip_scheme(&rendered, secure).or_else(|| strip_scheme(&rendered, plain));
        if rest.is_none() {
            self.err(
                path,
                format!("`{url}` must start with {secure}:// or {plain}://"),
            );
            return;
        }
        if let Some(host) = plaintext_to_remote(&rendered) {
            self.err(
                path,
                format!("plaintext {plain}:// is only allowed to a loopback host, not `{host}`; use {secure}://"),
            );
        }
    }

    fn schedule(
        &mut self,
        path: &KeyPath,
        id: Option<String>,
        s: raw::RawSchedule,
        decl: &Declared,
    ) -> Option<Schedule> {
        let cron = self
            .required(path, "cron", s.cron.as_deref())
            .and_then(|text| match cron::Schedule::from_str(text) {
                Ok(c) => Some((c, text.to_owned())),
                Err(e) => {
                    let reason = cron_reason(text, &e);
                    let msg = format!("invalid cron expression `{text}`: {reason}");
                    self.err(&path.key("cron"), msg);
                    None
                }
            });
        let jitter = self.duration(&path.key("jitter"), s.jitter.as_deref().unwrap_or("0s"));

        let targets = self.refs(path, "targets", s.targets, "target", |id| {
            decl.targets.contains_key(id)
        });
        let scripts = self.refs(path, "scripts", s.scripts, "script", |id| {
            decl.scripts.contains_key(id)
        });
        let personas = self.refs(path, "personas", s.personas, "persona", |id| {
            decl.personas.contains_key(id)
        });

        let channels = match s.channels {
            None => {
                self.err(&path.key("channels"), "missing required key `channels`");
                None
            }
            Some(list) if list.is_empty() => {
                self.err(&path.key("channels"), "must list at least one channel");
                None
            }
            Some(list) => {
                let mut kinds = Vec::new();
                let mut ok = true;
                for (i, name) in list.iter().enumerate() {
                    let cpath = path.key("channels").index(i);
                    let Some(kind) = self.one_of(&cpath, "channel kind", name, ChannelKind::ALL)
                    else {
                        ok = false;
                        continue;
                    };
                    for t in targets.iter().flatten() {
                        if decl.targets.get(t).is_some_and(|k| !k.contains(&kind)) {
                            self.err(&cpath, format!("target `{t}` has no {kind} channel"));
                            ok = false;
                        }
                    }
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                ok.then_some(kinds)
            }
        };

        // Every persona must be able to send every script in a language they write.
        if let (Some(ps), Some(ss)) = (&personas, &scripts) {
            for (j, p) in ps.iter().enumerate() {
                let Some(plangs) = decl.personas.get(p) else {
                    continue;
                };
                for sid in ss {
                    let Some(slangs) = decl.scripts.get(sid) else {
                        continue;
                    };
                    if !slangs.is_empty() && !slangs.iter().any(|l| plangs.contains(l)) {
                        let msg = format!(
                            "persona `{p}` writes none of the languages script `{sid}` has text in ({})",
                            slangs.join(", ")
                        );
                        self.err(&path.key("personas").index(j), msg);
                    }
                }
            }
        }

        let stratify = match s.stratify.as_deref() {
            None => Some(None),
            Some("hour-of-week") => Some(Some(Stratify::HourOfWeek)),
            Some(other) => {
                let msg = format!("unknown stratify `{other}` (expected \"hour-of-week\")");
                self.err(&path.key("stratify"), msg);
                None
            }
        };
        let missed = match s.missed.as_deref() {
            None | Some("skip") => Some(MissedPolicy::Skip),
            Some("latest") => Some(MissedPolicy::Latest),
            Some(other) => {
                let msg =
                    format!("unknown missed policy `{other}` (expected \"skip\" or \"latest\")");
                self.err(&path.key("missed"), msg);
                None
            }
        };
        let (cron, cron_text) = cron?;
        Some(Schedule {
            id: id?,
            cron,
            cron_text,
            jitter: jitter?,
            targets: targets?,
            channels: channels?,
            scripts: scripts?,
            personas: personas?,
            stratify: stratify?,
            missed: missed?,
        })
    }

    // ----- values -----

    /// Checks an item's id: present, well-formed, and not used before by the same kind.
    fn id(
        &mut self,
        path: &KeyPath,
        id: Option<&str>,
        kind: &str,
        seen: &mut HashMap<String, usize>,
    ) -> Option<String> {
        let id = self.required(path, "id", id)?;
        let ipath = path.key("id");
        let mut chars = id.chars();
        let well_formed = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !well_formed {
            let msg = format!("{kind} id `{id}` must match [a-z0-9][a-z0-9_-]*");
            self.err(&ipath, msg);
            return None;
        }
        let line = self.line_of(&ipath);
        if let Some(first) = seen.insert(id.to_owned(), line) {
            seen.insert(id.to_owned(), first);
            self.err(
                &ipath,
                format!("duplicate {kind} id `{id}` (first on line {first})"),
            );
            return None;
        }
        Some(id.to_owned())
    }

    fn required<'a>(
        &mut self,
        path: &KeyPath,
        key: &str,
        value: Option<&'a str>,
    ) -> Option<&'a str> {
        if value.is_none() {
            self.err(&path.key(key), format!("missing required key `{key}`"));
        }
        value
    }

    fn required_text(&mut self, path: &KeyPath, key: &str, value: Option<&str>) -> Option<String> {
        let value = self.required(path, key, value)?;
        if value.trim().is_empty() {
            self.err(&path.key(key), "must not be empty");
            return None;
        }
        Some(value.to_owned())
    }

    /// A list of ids that must be non-empty and each declared.
    fn refs(
        &mut self,
        path: &KeyPath,
        key: &str,
        list: Option<Vec<String>>,
        kind: &str,
        exists: impl Fn(&str) -> bool,
    ) -> Option<Vec<String>> {
        let kpath = path.key(key);
        let Some(list) = list else {
            self.err(&kpath, format!("missing required key `{key}`"));
            return None;
        };
        if list.is_empty() {
            self.err(&kpath, format!("must list at least one {kind}"));
            return None;
        }
        let mut ok = true;
        for (i, id) in list.iter().enumerate() {
            if !exists(id) {
                self.err(&kpath.index(i), format!("no {kind} has id `{id}`"));
                ok = false;
            }
        }
        ok.then_some(list)
    }

    fn one_of<T: Copy + std::fmt::Display>(
        &mut self,
        path: &KeyPath,
        what: &str,
        given: &str,
        all: &[T],
    ) -> Option<T> {
        let found = all.iter().copied().find(|v| v.to_string() == given);
        if found.is_none() {
            let names: Vec<String> = all.iter().map(ToString::to_string).collect();
            let msg = format!(
                "unknown {what} `{given}` (expected one of: {})",
                names.join(", ")
            );
            self.err(path, msg);
        }
        found
    }

    fn duration(&mut self, path: &KeyPath, text: &str) -> Option<Duration> {
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                let msg = format!(
                    "invalid duration `{text}`: {e} (write e.g. \"90s\", \"5m\", \"1h 30m\", \"7d\")"
                );
                self.err(path, msg);
                None
            }
        }
    }

    fn positive_duration(
        &mut self,
        path: &KeyPath,
        text: Option<&str>,
        default: &str,
    ) -> Option<Duration> {
        let d = self.duration(path, text.unwrap_or(default))?;
        if d.is_zero() {
            self.err(path, "must be longer than zero");
            return None;
        }
        Some(d)
    }

    fn count(&mut self, path: &KeyPath, n: i64) -> Option<u32> {
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.err(
                    path,
                    format!("must be a whole number from 0 to {}, not {n}", u32::MAX),
                );
                None
            }
        }
    }

    fn regexes(&mut self, path: &KeyPath, list: &[String]) -> Option<Vec<regex::Regex>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, re) in list.iter().enumerate() {
            match regex::Regex::new(re) {
                Ok(r) => out.push(r),
                Err(e) => {
                    // The regex crate's message spans several lines; keep the last, the reason.
                    let reason = e.to_string();
                    let reason = reason
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    let reason = reason.trim().trim_start_matches("error: ");
                    self.err(&path.index(i), format!("invalid regex `{re}`: {reason}"));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn timezone(&mut self, path: &KeyPath, name: &str) -> Option<jiff::tz::TimeZone> {
        match jiff::tz::TimeZone::get(name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.err(path, format!("unknown time zone `{name}`"));
                None
            }
        }
    }

    fn date(&mut self, path: &KeyPath, value: &Any) -> Option<jiff::civil::Date> {
        let parsed = match value {
            Any::String(s) => s
                .parse::<jiff::civil::Date>()
                .ok()
                .filter(|_| s.len() == 10),
            Any::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                dt.date.and_then(|d| {
                    jiff::civil::Date::new(d.year as i16, d.month as i8, d.day as i8).ok()
                })
            }
            _ => None,
        };
        if parsed.is_none() {
            self.err(
                path,
                format!("expected a date like \"2026-12-25\", not {value}"),
            );
        }
        parsed
    }

    fn languages(
        &mut self,
        path: &KeyPath,
        list: Vec<String>,
        non_empty: bool,
    ) -> Option<Vec<String>> {
        if non_empty && list.is_empty() {
            self.err(path, "must list at least one language");
            return None;
        }
        let mut ok = true;
        for (i, l) in list.iter().enumerate() {
            if !is_language(l) {
                self.err(
                    &path.index(i),
                    format!("`{l}` is not an ISO 639-1 language code"),
                );
                ok = false;
            } else if list[..i].contains(l) {
                self.err(&path.index(i), format!("language `{l}` is listed twice"));
                ok = false;
            }
        }
        ok.then_some(list)
    }

    fn http_url(&mut self, path: &KeyPath, url: &str) -> bool {
        let rest = strip_scheme(url, "https").or_else(|| strip_scheme(url, "http"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        let ok = host.is_some_and(|h| !h.is_empty() && !h.contains('@'))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            self.err(path, format!("`{url}` is not an http(s) URL"));
        }
        ok
    }

    fn endpoint(
        &mut self,
        path: &KeyPath,
        url: &str,
        proto: Proto,
        plaintext: bool,
    ) -> Option<Endpoint> {
        match parse_endpoint(url, proto, plaintext) {
            Ok(e) => Some(e),
            Err(msg) => {
                self.err(path, msg);
                None
            }
        }
    }

    /// Parses `mon-fri = "09:00-18:00"`-style tables.
    fn weekly_hours(
        &mut self,
        path: &KeyPath,
        table: &BTreeMap<String, Any>,
    ) -> Option<WeeklyHours> {
        const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut hours = WeeklyHours::default();
        let mut given_by: [Option<&str>; 7] = [None; 7];
        let mut ok = true;
        if table.is_empty() {
            self.err(
                path,
                "must give hours for at least one day, e.g. { mon-fri = \"09:00-18:00\" }",
            );
            return None;
        }
        // In file order, so that a day given twice is reported at its second mention.
        let mut entries: Vec<(&String, &Any)> = table.iter().collect();
        entries.sort_by_key(|(key, _)| self.tree.span(&path.key(key), Anchor::Key).start);
        for (key, value) in entries {
            let kpath = path.key(key);
            let day = |d: &str| DAYS.iter().position(|x| *x == d);
            let range = match key.split_once('-') {
                None => day(key).map(|d| (d, d)),
                Some((a, b)) => day(a).zip(day(b)).filter(|(a, b)| a < b),
            };
            let Some((first, last)) = range else {
                let msg =
                    format!("`{key}` is not a day (mon … sun) or a forward range like mon-fri");
                self.push(&kpath, Anchor::Key, msg);
                ok = false;
                continue;
            };
            let mut intervals = Vec::new();
            match value {
                Any::String(s) => match parse_interval(s) {
                    Ok(iv) => intervals.push(iv),
                    Err(msg) => {
                        self.err(&kpath, msg);
                        ok = false;
                    }
                },
                Any::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        match item
                            .as_str()
                            .ok_or_else(|| "expected \"HH:MM-HH:MM\"".to_owned())
                            .and_then(parse_interval)
                        {
                            Ok(iv) => intervals.push(iv),
                            Err(msg) => {
                                self.err(&kpath.index(i), msg);
                                ok = false;
                            }
                        }
                    }
                }
                _ => {
                    self.err(&kpath, "expected \"HH:MM-HH:MM\" or an array of them");
                    ok = false;
                }
            }
            intervals.sort_unstable();
            if intervals.windows(2).any(|w| w[1].0 < w[0].1) {
                self.err(&kpath, "intervals overlap");
                ok = false;
            }
            for d in first..=last {
                if let Some(other) = given_by[d] {
                    let msg = format!("{} is already given by `{other}`", DAYS[d]);
                    self.push(&kpath, Anchor::Key, msg);
                    ok = false;
                } else {
                    given_by[d] = Some(key);
                    hours.days[d] = intervals.clone();
                }
            }
        }
        ok.then_some(hours)
    }
}

/// One line saying why the cron crate refused `text`. Its own message is the expression, a caret
/// line, then (sometimes) a reason.
fn cron_reason(text: &str, e: &cron::error::Error) -> String {
    let fields = text.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return format!(
            "expected 6 or 7 fields (sec min hour day-of-month month day-of-week [year]), found {fields}"
        );
    }
    let shown = e.to_string();
    let mut lines = shown.lines().skip(1);
    let at = lines.next().and_then(|l| l.find('^')).map(|i| i + 1);
    let reason: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
    match (reason.is_empty(), at) {
        (false, _) => reason.join(" "),
        (true, Some(at)) => format!("syntax error at character {at}"),
        (true, None) => "syntax error".to_owned(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Smtp,
    Imap,
}

fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = url.split_once("://")?;
    s.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// `smtps://host[:port]` etc. into an [`Endpoint`]; the error message is user-facing.
fn parse_endpoint(url: &str, proto: Proto, plaintext: bool) -> Result<Endpoint, String> {
    let (tls, plain, tls_port, plain_port) = match proto {
        Proto::Smtp => ("smtps", "smtp", 465, 587),
        Proto::Imap => ("imaps", "imap", 993, 143),
    };
    let (rest, implicit, default_port) = if let Some(r) = strip_scheme(url, tls) {
        (r, true, tls_port)
    } else if let Some(r) = strip_scheme(url, plain) {
        (r, false, plain_port)
    } else {
        return Err(format!(
            "`{url}` must start with {tls}:// (TLS) or {plain}:// (STARTTLS)"
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(format!("`{url}` must not have a path"));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{url}` must not contain credentials; use `username` and `password-env` or `password-file`"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed `[`"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{h}` is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("`{url}`: expected `:port` after `]`"))?,
            ),
        };
        (h, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.contains(':')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if !host_ok {
        return Err(format!("`{url}` has no valid host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("`{p}` is not a port number (1-65535)")),
        },
    };
    let host = host.to_ascii_lowercase();
    let security = if plaintext {
        if implicit {
            return Err(format!(
                "tls = \"none\" cannot be used with {tls}://; use {plain}://"
            ));
        }
        if !is_loopback(&host) {
            return Err(format!(
                "tls = \"none\" (plaintext) is only allowed to a loopback host, not `{host}`"
            ));
        }
        Security::Plaintext
    } else if implicit {
        Security::ImplicitTls
    } else {
        Security::StartTls
    };
    Ok(Endpoint {
        host,
        port,
        security,
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `"HH:MM-HH:MM"` into minutes from midnight; the end may be `24:00` and must be after the start.
fn parse_interval(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not \"HH:MM-HH:MM\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let time = |t: &str, end: bool| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        let ok = (h < 24 && m < 60) || (end && h == 24 && m == 0);
        ok.then_some(h * 60 + m)
    };
    let start = time(a, false).ok_or_else(bad)?;
    let end = time(b, true).ok_or_else(bad)?;
    if end <= start {
        return Err(format!("`{s}`: the end must be after the start"));
    }
    Ok((start, end))
}

/// `[A-Za-z_][A-Za-z0-9_]*`: environment variable and template variable names.
fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn is_email(s: &str) -> bool {
    // The same parser that builds the probe's envelope later, so check and send agree
    // (`probe@localhost` is a valid address for a loopback test server).
    s.parse::<lettre::Address>().is_ok()
}

/// Whether `code` is an ISO 639-1 two-letter language code.
fn is_language(code: &str) -> bool {
    const ISO_639_1: &str = "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce \
        ch co cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu \
        gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn \
        ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne \
        ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk \
        sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve \
        vi vo wa wo xh yi yo za zh zu";
    code.len() == 2 && ISO_639_1.split_whitespace().any(|c| c == code)
}

/// The host of a plaintext (`http://` or `ws://`) URL whose host is not loopback.
pub(crate) fn plaintext_to_remote(url: &str) -> Option<String> {
    let rest = strip_scheme(url, "http").or_else(|| strip_scheme(url, "ws"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    (!is_loopback(host)).then(|| host.to_owned())
}

/// A TOML value as JSON (dates become their TOML text).
fn toml_to_json(v: &Any) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Any::String(s) => J::String(s.clone()),
        Any::Integer(i) => J::from(*i),
        Any::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Any::Boolean(b) => J::Bool(*b),
        Any::Datetime(d) => J::String(d.to_string()),
        Any::Array(a) => J::Array(a.iter().map(toml_to_json).collect()),
        Any::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Every string in a JSON value (keys and values), with a path for messages.
fn json_strings(v: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, at: String, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::String(s) => out.push((at, s.clone())),
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}[{i}]"), out);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    out.push((format!("{at}.{k}"), k.clone()));
                    walk(x, format!("{at}.{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}
