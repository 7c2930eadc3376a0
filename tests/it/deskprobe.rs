//! Helpers to drive the real `deskprobe` binary against the loopback servers: a config for
//! the servers, running commands, reading the store.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::MailServers;

/// The file holding the test mailbox password (mode 0600, next to the config; never in it).
pub const PASSWORD_FILE: &str = "mail.pw";

/// How the test config reaches the servers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `smtp://` + `imap://` with `tls = "none"` (loopback only).
    Plaintext,
    /// `smtps://` + `imaps://`, trusting the test CA.
    ImplicitTls,
    /// `smtp://` + `imap://` with STARTTLS required, trusting the test CA.
    StartTls,
}

/// A probes.toml for the servers: one target `kucoin` whose support desk is
/// `support@localhost`, one persona `lin` (`probe@localhost`, plus-addressing on).
pub fn config_text(servers: &MailServers, transport: Transport) -> String {
    let (smtp, imap, tls) = match transport {
        Transport::Plaintext => (
            format!("smtp://127.0.0.1:{}", servers.smtp_port()),
            format!("imap://127.0.0.1:{}", servers.imap_port()),
            r#"tls = "none""#.to_owned(),
        ),
        Transport::ImplicitTls => (
            format!("smtps://localhost:{}", servers.smtps_port()),
            format!("imaps://localhost:{}", servers.imaps_port()),
            format!("ca-file = {:?}", servers.ca_pem().display().to_string()),
        ),
        Transport::StartTls => (
            format!("smtp://localhost:{}", servers.smtp_port()),
            format!("imap://localhost:{}", servers.imap_port()),
            format!("ca-file = {:?}", servers.ca_pem().display().to_string()),
        ),
    };
    format!(
        r#"
[settings]
vantage = "it"
send-timeout = "10s"

[[mailbox]]
id = "shopper"
smtp = "{smtp}"
imap = "{imap}"
{tls}
username = "probe"
password-file = "{PASSWORD_FILE}"
folders = ["INBOX", "Junk"]
plus-addressing = true

[[persona]]
id = "lin"
name = "Lin Wei"
email = "probe@localhost"
mailbox = "shopper"
languages = ["en", "zh"]

[[script]]
id = "withdrawal"
urgency = "urgent"
expect = ['(?i)txid']
vars = {{ hours = "36" }}
[script.text.en]
subject = "Withdrawal still pending"
body = """Hello, my USDT withdrawal has been pending for {{{{ hours }}}} hours.
Could you check it? Case {{{{ token }}}}.
{{{{ persona.name }}}}
"""
[script.text.zh]
subject = "提币一直未到账"
body = "你好，我的USDT提币已经{{{{ hours }}}}小时没有到账。编号 {{{{ token }}}}"

[[target]]
id = "kucoin"
name = "KuCoin"
timezone = "Asia/Singapore"
verified = true
[target.claims]
source = "https://claims.example/kucoin"
captured = "2026-11-01"
availability = "24/7"
languages = ["en", "zh"]
first-response = {{ email = "24h" }}
[[target.channel]]
kind = "email"
address = "support@localhost"
[target.rules]
auto-ack-subject = ['^\[Request received\]']

[[target]]
id = "okx"
name = "OKX"
timezone = "Asia/Dubai"
[target.claims]
source = "https://claims.example/okx"
captured = "2026-11-01"
availability = "24/7"
[[target.channel]]
kind = "email"
address = "support@localhost"
"#
    )
}

/// A schedule that fires every two seconds for `kucoin` over email, with caps that allow one
/// probe a day: later slots are skipped by the cap, so a re-send would stand out.
pub const EVERY_2S_ONE_PER_DAY: &str = r#"
[[schedule]]
id = "fast"
cron = "*/2 * * * * *"
targets = ["kucoin"]
channels = ["email"]
scripts = ["withdrawal"]
personas = ["lin"]

[limits]
per-target-per-day = 1
min-gap = "1h"
"#;

/// Appends `extra` (schedules, limits, settings overrides) to the test config at `path`.
pub fn extend_config(path: &Path, extra: &str) {
    let mut text = std::fs::read_to_string(path).expect("read test config");
    text.push_str(extra);
    std::fs::write(path, text).expect("write test config");
}

/// Writes the config and its 0600 password file into the servers' temp dir; returns the
/// config's path.
pub fn write_config(servers: &MailServers, transport: Transport) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = servers.dir().join(PASSWORD_FILE);
    std::fs::write(&pw, format!("{}\n", MailServers::PASSWORD)).expect("write password file");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    let path = servers.dir().join("probes.toml");
    std::fs::write(&path, config_text(servers, transport)).expect("write test config");
    path
}

/// The database path the tests use.
pub fn db_path(servers: &MailServers) -> PathBuf {
    servers.dir().join("deskprobe.db")
}

/// Runs `deskprobe ARGS --config CONFIG --db DB` and returns its output.
pub async fn run(config: &Path, db: &Path, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskprobe"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "deskprobe=debug")
        .kill_on_drop(true);
    cmd.output().await.expect("run deskprobe")
}

/// Starts `deskprobe ARGS` in the background (killed when dropped).
pub fn spawn(config: &Path, db: &Path, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_deskprobe"))
        .args(args)
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "deskprobe=debug")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn deskprobe")
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `secs` seconds: waiting
/// for something another process does (a row appearing), never a fixed sleep.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Like [`run`], but panics with stdout/stderr unless the exit code is `code`.
pub async fn run_ok(config: &Path, db: &Path, args: &[&str], code: i32) -> String {
    let out = run(config, db, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "deskprobe {args:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Sends one probe with the CLI and returns its id.
pub async fn send_probe(config: &Path, db: &Path) -> String {
    let out = run_ok(
        config,
        db,
        &[
            "send",
            "--target",
            "kucoin",
            "--channel",
            "email",
            "--script",
            "withdrawal",
        ],
        0,
    )
    .await;
    out.trim().to_owned()
}

/// A header's value in raw RFC 5322 bytes (first occurrence, unfolded).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// Adds `lines` to the `[settings]` table of the test config at `path`.
pub fn add_settings(path: &Path, lines: &str) {
    let text = std::fs::read_to_string(path).expect("read test config");
    let text = text.replacen("[settings]\n", &format!("[settings]\n{lines}\n"), 1);
    std::fs::write(path, text).expect("write test config");
}

/// A verified target `bybit` (UTC, 24/7) with the given `[[target.channel]]` tables and
/// `[target.rules]` lines, to append with [`extend_config`].
pub fn api_target(channels: &str, rules: &str) -> String {
    format!(
        r#"
[[target]]
id = "bybit"
name = "Bybit"
timezone = "UTC"
verified = true
[target.claims]
source = "https://claims.example/bybit"
captured = "2026-11-01"
availability = "24/7"
first-response = {{ ticket = "24h", chat = "5m" }}
{channels}
[target.rules]
{rules}
"#
    )
}

/// Sends one probe of `channel` to target `bybit` with the CLI; returns its id and the exit
/// code.
pub async fn send_api_probe(
    config: &Path,
    db: &Path,
    channel: &str,
) -> (String, Option<i32>, String) {
    let out = run(
        config,
        db,
        &[
            "send",
            "--target",
            "bybit",
            "--channel",
            channel,
            "--script",
            "withdrawal",
            "--persona",
            "lin",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "deskprobe panicked:\n{stderr}"
    );
    (
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        out.status.code(),
        stderr,
    )
}
