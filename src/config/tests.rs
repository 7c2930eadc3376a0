use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match parse(text, Path::new("probes.toml")) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigError::Invalid { diagnostics }) => diagnostics,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn ok(text: &str) -> Config {
    match parse(text, Path::new("probes.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// The smallest valid config; tests append to it or replace parts of it.
const BASE: &str = r#"
[[mailbox]]
id = "mb"
smtp = "smtps://mail.example.org"
imap = "imaps://mail.example.org"
username = "u@example.org"
password-env = "PW"

[[persona]]
id = "p"
name = "P"
email = "u@example.org"
mailbox = "mb"
languages = ["en"]

[[script]]
id = "s"
[script.text.en]
subject = "Hi"
body = "Hello"

[[target]]
id = "t"
name = "T"
timezone = "UTC"
[target.claims]
source = "https://t.example/help"
captured = "2026-11-01"
availability = "24/7"
[[target.channel]]
kind = "email"
address = "help@t.example"

[[schedule]]
id = "sch"
cron = "0 0 * * * *"
targets = ["t"]
channels = ["email"]
scripts = ["s"]
personas = ["p"]
"#;

#[test]
fn base_is_valid() {
    ok(BASE);
}

#[test]
fn bad_fixture_reports_exactly_the_four_problems() {
    let path = fixture("bad.toml");
    let Err(ConfigError::Invalid { diagnostics }) = load(&path) else {
        panic!("bad.toml must not load");
    };
    let got: Vec<(usize, &str)> = diagnostics
        .iter()
        .map(|d| (d.line, d.key_path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (26, "target[0].timezone"),
            (30, "target[0].claims.availabilty"),
            (38, "schedule[0].cron"),
            (42, "schedule[0].personas[1]"),
        ],
        "{diagnostics:#?}"
    );
    assert!(
        diagnostics[0]
            .message
            .contains("unknown time zone `Mars/Base`")
    );
    assert_eq!(diagnostics[0].col, 12);
    assert_eq!(diagnostics[1].message, "unknown key `availabilty`");
    assert_eq!(diagnostics[1].col, 1);
    assert_eq!(
        diagnostics[2].message,
        "invalid cron expression `0 0 */4 * *`: expected 6 or 7 fields \
         (sec min hour day-of-month month day-of-week [year]), found 5"
    );
    assert!(diagnostics[3].message.contains("no persona has id `bob`"));
    // One line per diagnostic, `file:line:col: key: message`.
    let shown = ConfigError::Invalid {
        diagnostics: diagnostics.clone(),
    }
    .to_string();
    assert_eq!(shown.lines().count(), 4);
    let first = shown.lines().next().unwrap();
    assert!(
        first.ends_with("bad.toml:26:12: target[0].timezone: unknown time zone `Mars/Base`"),
        "{first}"
    );
}

#[test]
fn valid_fixture_loads_with_defaults_and_derived_values() {
    let c = load(&fixture("valid.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.sha256.len(), 64);

    let s = &c.settings;
    assert_eq!(s.database, PathBuf::from("data/deskprobe.db"));
    assert_eq!(s.vantage, "test-vantage");
    assert_eq!(s.observation_window.email, Duration::from_secs(7 * 86_400));
    assert_eq!(
        *s.observation_window.get(ChannelKind::Chat),
        Duration::from_secs(7200)
    );
    assert_eq!(s.compliance_target, 0.95);
    assert_eq!(s.business_hours, WeeklyHours::office_default());
    assert_eq!(s.send_timeout, Duration::from_secs(60));

    let mb = c.mailbox("shopper-mail").unwrap();
    assert_eq!(
        mb.smtp,
        Endpoint {
            host: "mail.example.org".into(),
            port: 465,
            security: Security::ImplicitTls
        }
    );
    assert_eq!((mb.imap.port, mb.imap.security), (143, Security::StartTls));
    assert_eq!(mb.folders, ["INBOX"]);
    assert!(!mb.plus_addressing);
    assert_eq!(
        mb.password,
        SecretSource::Env("DESKPROBE_MAIL_PASSWORD".into())
    );

    let cal = c.calendar("sg-office").unwrap();
    assert_eq!(cal.timezone_name, "Asia/Singapore");
    for day in 0..5 {
        assert_eq!(cal.hours.days[day], [(540, 1080)], "day {day}");
    }
    assert_eq!(cal.hours.days[5], [(600, 720), (780, 1440)]);
    assert!(cal.hours.days[6].is_empty());
    assert!(cal.hours.contains(5, 1439) && !cal.hours.contains(5, 750));
    assert_eq!(
        cal.holidays,
        [
            jiff::civil::date(2026, 1, 1),
            jiff::civil::date(2026, 12, 25)
        ]
    );

    let t = c.target("kucoin").unwrap();
    assert!(!t.verified);
    assert_eq!(
        t.claims.availability,
        Some(Availability::Calendar("sg-office".into()))
    );
    assert_eq!(t.claims.captured, jiff::civil::date(2026, 11, 1));
    assert_eq!(t.claims.first_response.chat, Some(Duration::from_secs(300)));
    assert_eq!(t.claims.first_response.ticket, None);
    assert!(!t.channel(ChannelKind::Chat).unwrap().enabled);
    assert!(t.channel(ChannelKind::Email).unwrap().enabled);
    assert!(t.channel(ChannelKind::Ticket).is_none());
    assert!(t.rules.auto_ack_subject[0].is_match("[Request received] #1"));

    let sch = &c.schedules[0];
    assert_eq!(sch.cron_text, "0 0 */4 * * *");
    assert_eq!(sch.jitter, Duration::from_secs(5400));
    assert_eq!(sch.channels, [ChannelKind::Email, ChannelKind::Chat]);
    assert_eq!(sch.stratify, Some(Stratify::HourOfWeek));
    assert_eq!(sch.missed, MissedPolicy::Latest);

    assert_eq!(c.limits.per_target_per_day, 6);
    assert_eq!(c.limits.min_gap, Duration::from_secs(7200));
    assert_eq!(c.limits.per_channel_per_day.email, Some(4));
    assert_eq!(c.limits.per_channel_per_day.chat, None);

    let script = c.script("withdrawal-pending").unwrap();
    assert_eq!(script.urgency, Urgency::Normal);
    let ctx = TemplateContext {
        persona_name: "Lin Wei".into(),
        target_name: "KuCoin".into(),
        token: "DP-7Q".into(),
        ..TemplateContext::default()
    };
    let (subject, body) = script.render("en", &ctx).unwrap();
    assert_eq!(subject, "Withdrawal still pending (DP-7Q)");
    assert_eq!(
        body,
        "Hello KuCoin,\nmy withdrawal has been pending for 36 hours.\nLin Wei\n"
    );
    assert!(matches!(
        script.render("fr", &ctx),
        Err(TemplateError::NoText { .. })
    ));
}

#[test]
fn plaintext_only_to_loopback() {
    let remote = BASE.replace(
        "smtp = \"smtps://mail.example.org\"",
        "smtp = \"smtp://mail.example.org\"\ntls = \"none\"",
    );
    let d = diagnostics(&remote);
    // Both endpoints are refused, each naming the host.
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!(d[0].key_path, "mailbox[0].smtp");
    assert!(d[0].message.contains("`mail.example.org`"), "{}", d[0]);
    assert!(d[1].message.contains("imaps://"), "{}", d[1]);

    let local = BASE
        .replace(
            "smtp = \"smtps://mail.example.org\"",
            "smtp = \"smtp://127.0.0.1:2525\"\ntls = \"none\"",
        )
        .replace("imaps://mail.example.org", "imap://[::1]");
    let c = ok(&local);
    let mb = &c.mailboxes[0];
    assert_eq!(
        mb.smtp,
        Endpoint {
            host: "127.0.0.1".into(),
            port: 2525,
            security: Security::Plaintext
        }
    );
    assert_eq!(
        mb.imap,
        Endpoint {
            host: "::1".into(),
            port: 143,
            security: Security::Plaintext
        }
    );
}

#[cfg(unix)]
#[test]
fn password_file_must_be_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("mail.pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let text = BASE.replace("password-env = \"PW\"", "password-file = \"mail.pw\"");
    let file = dir.path().join("probes.toml");

    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let Err(ConfigError::Invalid { diagnostics }) = parse(&text, &file) else {
        panic!("a 0644 password file must be refused");
    };
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].key_path, "mailbox[0].password-file");
    assert!(
        diagnostics[0].message.contains("0644"),
        "{}",
        diagnostics[0]
    );
    assert!(diagnostics[0].message.contains("mail.pw"));

    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = parse(&text, &file).unwrap();
    let source = &c.mailboxes[0].password;
    assert_eq!(source, &SecretSource::File(pw.clone()));
    assert_eq!(source.resolve().unwrap().expose(), "s3cret");

    // Checked again on use: loosened after loading is still refused.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = source.resolve().unwrap_err();
    assert!(
        matches!(err, SecretError::Permissions { mode: 0o640, .. }),
        "{err}"
    );
}

#[test]
fn env_secret_never_shows_its_value() {
    let source = SecretSource::Env("DP_TEST_PW".into());
    let secret = source
        .resolve_with(|name| (name == "DP_TEST_PW").then(|| "hunter2".into()))
        .unwrap();
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(secret.to_string(), "***");
    assert_eq!(secret.expose(), "hunter2");

    let err = source.resolve_with(|_| None).unwrap_err();
    assert!(err.to_string().contains("`DP_TEST_PW`"), "{err}");
    let err = source.resolve_with(|_| Some("".into())).unwrap_err();
    assert!(matches!(err, SecretError::EnvMissing { .. }));
}

#[test]
fn undefined_template_variable_is_reported_at_its_line() {
    let text = BASE
        .replace("subject = \"Hi\"", "subject = \"Hi {{ persona.nmae }}\"")
        .replace(
            "body = \"Hello\"",
            "body = \"\"\"\nHello {{ target.name }},\nwaiting {{ hours }} hours\n\"\"\"",
        );
    let d = diagnostics(&text);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(d.len(), 2, "{d:#?}");
    assert_eq!(d[0].key_path, "script[0].text.en.subject");
    assert_eq!(d[0].line, line_of("subject ="));
    assert!(d[0].message.contains("undefined"), "{}", d[0]);
    assert_eq!(d[1].key_path, "script[0].text.en.body");
    assert_eq!(d[1].line, line_of("{{ hours }}"));
}

#[test]
fn script_vars_feed_templates_and_reserved_names_are_refused() {
    let text = BASE.replace(
        "[script.text.en]",
        "vars = { hours = \"36\", token = \"x\" }\n[script.text.en]",
    );
    let d = diagnostics(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].key_path, "script[0].vars.token");
}

#[test]
fn toml_syntax_error_has_a_line() {
    let d = diagnostics("[settings]\nvantage = \"a\"\ndatabase = \n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].line, 3, "{}", d[0]);
    assert!(d[0].key_path.is_empty());
}

#[test]
fn wrong_type_names_the_key() {
    let d = diagnostics(&format!("{BASE}\n[limits]\nmin-gap = 5\n"));
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].key_path, "limits.min-gap");
    assert_eq!(d[0].line, BASE.lines().count() + 3);
}

#[test]
fn every_unknown_key_is_reported_with_its_own_line() {
    let text = BASE
        .replace("username =", "usrname = 1\nusername =")
        .replace("[[target.channel]]", "[[target.channel]]\nkinds = \"x\"")
        + "\n[setings]\nvantage = \"x\"\n";
    let d = diagnostics(&text);
    let got: Vec<_> = d.iter().map(|d| (d.key_path.as_str(), d.line)).collect();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(
        got,
        [
            ("mailbox[0].usrname", line_of("usrname")),
            ("target[0].channel[0].kinds", line_of("kinds")),
            ("setings", line_of("[setings]")),
        ]
    );
}

#[test]
fn semantic_errors_are_all_collected() {
    let text = format!(
        "{BASE}
[[calendar]]
id = \"c\"
timezone = \"UTC\"
hours = {{ mon-fri = \"09:00-18:00\", fri = \"10:00-11:00\", sat = \"12:00-11:00\" }}

[[target]]
id = \"t\"
name = \"Dup\"
timezone = \"UTC\"
[target.claims]
source = \"ftp://x\"
captured = \"2026-13-01\"
availability = \"nowhere\"
languages = [\"cn\"]
first-response = {{ email = \"soon\" }}
[target.rules]
bot = ['(']

[[schedule]]
id = \"Bad Id\"
cron = \"0 0 * * * *\"
targets = [\"t\"]
channels = [\"chat\", \"fax\"]
scripts = [\"nope\"]
personas = [\"p\"]
jitter = \"1 fortnight\"
"
    );
    let d = diagnostics(&text);
    let paths: Vec<&str> = d.iter().map(|d| d.key_path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "calendar[0].hours.fri",
            "calendar[0].hours.sat",
            "target[1].id",
            "target[1].claims.source",
            "target[1].claims.captured",
            "target[1].claims.availability",
            "target[1].claims.languages[0]",
            "target[1].claims.first-response.email",
            "target[1].rules.bot[0]",
            "schedule[1].id",
            "schedule[1].channels[0]",
            "schedule[1].channels[1]",
            "schedule[1].scripts[0]",
            "schedule[1].jitter",
        ],
        "{d:#?}"
    );
    assert!(d[2].message.contains("duplicate target id `t`"), "{}", d[2]);
}

#[test]
fn persona_and_script_must_share_a_language() {
    let text = BASE.replace("languages = [\"en\"]", "languages = [\"zh\"]");
    let d = diagnostics(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].key_path, "schedule[0].personas[0]");
    assert!(d[0].message.contains("(en)"), "{}", d[0]);
}

#[test]
fn dangling_references_are_reported() {
    let text = BASE
        .replace("mailbox = \"mb\"", "mailbox = \"other\"")
        .replace("targets = [\"t\"]", "targets = [\"t\", \"u\"]");
    let d = diagnostics(&text);
    let paths: Vec<&str> = d.iter().map(|d| d.key_path.as_str()).collect();
    assert_eq!(paths, ["persona[0].mailbox", "schedule[0].targets[1]"]);
}

#[test]
fn missing_required_key_points_at_its_table() {
    let text = BASE.replace("name = \"T\"\n", "");
    let d = diagnostics(&text);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].key_path, "target[0].name");
    assert_eq!(
        d[0].line,
        text.lines().position(|l| l == "[[target]]").unwrap() + 1
    );
}

#[test]
fn line_col_counts_characters() {
    let text = "a = 1\nb = \"提币\" x";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 6), (2, 1));
    let x = text.find('x').unwrap();
    assert_eq!(line_col(text, x), (2, 10));
    assert_eq!(line_col(text, 10_000), (2, 11));
}

#[test]
fn shipped_example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes.toml");
    if !path.exists() {
        return;
    }
    let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.targets.iter().all(|t| !t.verified));
}

#[test]
fn read_error_names_the_file() {
    let err = load(Path::new("/nonexistent/probes.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read config `/nonexistent/probes.toml`"
    );
}
