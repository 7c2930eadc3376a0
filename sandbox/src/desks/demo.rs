//! The demo: deskprobe's whole job on one machine, against simulated desks on loopback.
//!
//! 1. Start the real mail servers (Dovecot + SMTP relay) in a temp dir, with a mailbox for
//!    the mystery shopper and one per simulated desk.
//! 2. Start the simulated desks, one per channel of each exchange: an email desk, a
//!    Zendesk-like ticket API and a LiveChat-like chat API (a bot, then a human).
//!    "Simulated Exchange A" answers around the clock within seconds; "Simulated Exchange B"
//!    works in short shifts and answers more slowly (off shift its chat has only the bot), so
//!    its 24/7 promise fails.
//! 3. Write `probes.toml` (fast schedule: a probe to each channel of each exchange every few
//!    seconds, `min-gap = "0s"` so the probes of one slot are not skipped for each other; both
//!    targets `verified = true`, named and noted as simulated) and the 0600 password file in
//!    the output dir.
//! 4. Run the real `deskprobe check`, then `deskprobe run` for the chosen time, stop it with
//!    SIGTERM, give the desks a moment for their last replies, `deskprobe collect`.
//! 5. Write `report.html`, `report.md`, `report.csv` and `report.json` with the real
//!    `deskprobe report`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::DeskHours;
use super::email::{EmailDesk, EmailDeskSpec};
use super::helpdesk::{ChatDesk, ChatDeskSpec, TicketDesk, TicketDeskSpec};
use crate::MailServers;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `deskprobe` binary to run.
    pub deskprobe: PathBuf,
    /// Where the config, database and reports go (created; an old database there is
    /// replaced).
    pub out_dir: PathBuf,
    /// How long `deskprobe run` runs.
    pub run_for: Duration,
    /// Seconds between probes to each desk (the schedule's cron step).
    pub every_s: u32,
    /// Print progress on stderr.
    pub verbose: bool,
}

/// What the demo produced.
#[derive(Debug, Clone)]
pub struct DemoOutcome {
    /// The HTML report.
    pub html: PathBuf,
    /// The Markdown report.
    pub markdown: PathBuf,
    /// The CSV report.
    pub csv: PathBuf,
    /// The JSON report.
    pub json: PathBuf,
    /// The config the run used.
    pub config: PathBuf,
    /// Per desk: ("exchange (channel)", probes read, acks sent, human replies sent, errors).
    pub desks: Vec<(String, u64, u64, u64, Vec<String>)>,
}

/// One simulated exchange of the demo.
struct Exchange {
    id: &'static str,
    name: &'static str,
    user: &'static str,
    agent: &'static str,
    hours: DeskHours,
    /// Email reply delay.
    delay: (Duration, Duration),
    /// Ticket answer delay.
    ticket_delay: (Duration, Duration),
    /// When the human joins a chat.
    chat_delay: (Duration, Duration),
    /// Claimed first response for email and ticket.
    claim: &'static str,
    /// Claimed first response for chat.
    chat_claim: &'static str,
    /// Channels the demo probes on this exchange.
    channels: &'static [&'static str],
}

impl Exchange {
    fn slowest(&self) -> Duration {
        self.delay.1.max(self.ticket_delay.1).max(self.chat_delay.1)
    }
}

fn exchanges() -> Vec<Exchange> {
    vec![
        Exchange {
            id: "sim-a",
            name: "Simulated Exchange A",
            user: "desk-a",
            agent: "Alice Chen",
            hours: DeskHours::Always,
            delay: (Duration::from_secs(1), Duration::from_secs(5)),
            ticket_delay: (Duration::from_secs(1), Duration::from_secs(4)),
            chat_delay: (Duration::from_secs(1), Duration::from_secs(3)),
            claim: "15s",
            chat_claim: "10s",
            channels: &["email", "ticket", "chat"],
        },
        Exchange {
            id: "sim-b",
            name: "Simulated Exchange B",
            user: "desk-b",
            agent: "Bao Nguyen",
            hours: DeskHours::Cycle {
                open: Duration::from_secs(20),
                closed: Duration::from_secs(25),
            },
            delay: (Duration::from_secs(3), Duration::from_secs(12)),
            ticket_delay: (Duration::from_secs(4), Duration::from_secs(10)),
            chat_delay: (Duration::from_secs(4), Duration::from_secs(9)),
            claim: "15s",
            chat_claim: "10s",
            channels: &["email", "ticket", "chat"],
        },
    ]
}

fn say(opts: &DemoOptions, msg: &str) {
    if opts.verbose {
        eprintln!("demo: {msg}");
    }
}

fn today() -> String {
    // The claims' capture date: today (UTC), as the demo reads them "now".
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let d = super::rfc5322::date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    // "Mon, 02 Nov 2026 03:00:00 +0000" → 2026-11-02
    let parts: Vec<&str> = d.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])
    .map_or(1, |i| i + 1);
    format!("{}-{month:02}-{}", parts[3], parts[1])
}

/// The base URLs of one exchange's ticket and chat desks.
struct Urls {
    ticket: String,
    chat: String,
}

fn config(servers: &MailServers, exchanges: &[Exchange], urls: &[Urls], every_s: u32) -> String {
    let mut c = format!(
        r#"# deskprobe demo config, written by `scripts/demo` (deskprobe-sandbox).
# Every target below is a SIMULATED desk run by the sandbox on 127.0.0.1: nothing here
# contacts a real exchange. The schedule is fast (a probe every {every_s} s) only because the
# desks are simulated; real probing uses hours, not seconds (see probes.toml).

[settings]
database = "deskprobe.db"
vantage = "demo"
observation-window = {{ email = "2m", ticket = "2m", chat = "2m" }}
compliance-target = 0.9
send-timeout = "10s"

[[mailbox]]
id = "shopper"
smtp = "smtp://127.0.0.1:{smtp}"
imap = "imap://127.0.0.1:{imap}"
tls = "none"
username = "{user}"
password-file = "mail.pw"
folders = ["INBOX"]
plus-addressing = true

[[persona]]
id = "demo-shopper"
name = "Demo Shopper"
email = "{user}@localhost"
mailbox = "shopper"
languages = ["en"]

[[script]]
id = "withdrawal-pending"
urgency = "normal"
expect = ['(?i)txid']
[script.text.en]
subject = "Withdrawal still pending"
body = """Hello, my USDT withdrawal has been pending for 36 hours.
Could you confirm its status and the TXID? Case {{{{ token }}}}.
{{{{ persona.name }}}}
"""
"#,
        smtp = servers.smtp_port(),
        imap = servers.imap_port(),
        user = MailServers::USER,
    );
    let captured = today();
    for (x, u) in exchanges.iter().zip(urls) {
        c.push_str(&format!(
            r#"
[[target]]
id = "{id}"
name = "{name}"
timezone = "UTC"
verified = true
[target.claims]
source = "http://127.0.0.1/simulated/{id}/support-promise"
captured = "{captured}"
availability = "24/7"
languages = ["en"]
first-response = {{ email = "{claim}", ticket = "{claim}", chat = "{chat_claim}" }}
note = "Simulated desks (email, Zendesk-like tickets, LiveChat-like chat) run by deskprobe-sandbox on loopback ({hours}); not a real exchange."
[[target.channel]]
kind = "email"
address = "{user}@localhost"
[[target.channel]]
kind = "ticket"
driver = "zendesk"
base-url = "{ticket}"
poll-interval = "2s"
[[target.channel]]
kind = "chat"
driver = "livechat"
base-url = "{chat}"
organization-id = "{id}-org"
poll-interval = "500ms"
[target.rules]
auto-ack-subject = ['^\[Request received\]']
bot = ['(?i)assistant']
"#,
            id = x.id,
            name = x.name,
            claim = x.claim,
            chat_claim = x.chat_claim,
            ticket = u.ticket,
            chat = u.chat,
            user = x.user,
            hours = x.hours.describe(),
        ));
    }
    let targets: Vec<String> = exchanges.iter().map(|x| format!("\"{}\"", x.id)).collect();
    let mut channels: Vec<&str> = exchanges
        .iter()
        .flat_map(|x| x.channels.iter().copied())
        .collect();
    channels.sort_unstable();
    channels.dedup();
    let channels: Vec<String> = channels.iter().map(|c| format!("\"{c}\"")).collect();
    c.push_str(&format!(
        r#"
[[schedule]]
id = "demo-fast"
cron = "*/{every_s} * * * * *"
targets = [{targets}]
channels = [{channels}]
scripts = ["withdrawal-pending"]
personas = ["demo-shopper"]

# All channels of a slot go to a target at once: no min-gap, or all but one would be skipped.
[limits]
per-target-per-day = 100000
min-gap = "0s"
"#,
        targets = targets.join(", "),
        channels = channels.join(", "),
    ));
    c
}

async fn deskprobe(opts: &DemoOptions, config: &Path, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(&opts.deskprobe)
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(&opts.out_dir)
        .env("RUST_LOG", "deskprobe=warn")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", opts.deskprobe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "deskprobe {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the demo; returns where the reports are.
pub async fn run(opts: &DemoOptions) -> Result<DemoOutcome, String> {
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.out_dir.display()))?;
    let out_dir = opts
        .out_dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    for stale in [
        "deskprobe.db",
        "deskprobe.db-wal",
        "deskprobe.db-shm",
        "deskprobe.lock",
    ] {
        let _ = std::fs::remove_file(out_dir.join(stale));
    }
    // deskprobe runs in the output dir: a relative path to it must not break.
    let mut opts = opts.clone();
    if let Ok(abs) = opts.deskprobe.canonicalize() {
        opts.deskprobe = abs;
    }
    let opts = &opts;
    let xs = exchanges();
    let users: Vec<&str> = xs.iter().map(|x| x.user).collect();
    say(opts, "starting Dovecot and the SMTP relay on 127.0.0.1");
    let servers = MailServers::start_with_users(&users).await;
    let desks: Vec<EmailDesk> = xs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            EmailDesk::spawn(
                EmailDeskSpec {
                    exchange: x.name.into(),
                    user: x.user.into(),
                    password: MailServers::PASSWORD.into(),
                    agent: x.agent.into(),
                    reply_delay: x.delay,
                    hours: x.hours.clone(),
                    auto_ack: true,
                    poll: Duration::from_millis(250),
                    seed: 0x5eed + i as u64,
                },
                servers.imap_port(),
                servers.smtp_port(),
            )
        })
        .collect();
    let mut tickets = Vec::new();
    let mut chats = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        tickets.push(
            TicketDesk::start(
                TicketDeskSpec {
                    exchange: x.name.into(),
                    agent: x.agent.into(),
                    reply_delay: x.ticket_delay,
                    hours: x.hours.clone(),
                    first_request: 10_000 * (i as u64 + 1),
                    seed: 0x71c4 + i as u64,
                },
                servers.smtp_port(),
            )
            .await,
        );
        chats.push(
            ChatDesk::start(ChatDeskSpec {
                exchange: x.name.into(),
                organization: format!("{}-org", x.id),
                first_id: 10_000_000 * (i as u64 + 1),
                bot: format!("{} Assistant", x.name),
                agent: x.agent.into(),
                human_after: x.chat_delay,
                hours: x.hours.clone(),
                seed: 0xc4a7 + i as u64,
            })
            .await,
        );
    }
    for (t, c) in tickets.iter().zip(&chats) {
        say(
            opts,
            &format!(
                "simulated {} ticket API at {} (answers after {}–{} s), chat API at {} (bot, then a human after {}–{} s while open)",
                t.spec().exchange,
                t.base_url(),
                t.spec().reply_delay.0.as_secs(),
                t.spec().reply_delay.1.as_secs(),
                c.base_url(),
                c.spec().human_after.0.as_secs(),
                c.spec().human_after.1.as_secs(),
            ),
        );
    }
    let urls: Vec<Urls> = tickets
        .iter()
        .zip(&chats)
        .map(|(t, c)| Urls {
            ticket: t.base_url(),
            chat: c.base_url(),
        })
        .collect();
    for d in &desks {
        say(
            opts,
            &format!(
                "simulated desk {} at {} ({}, replies after {}–{} s)",
                d.spec().exchange,
                d.address(),
                d.spec().hours.describe(),
                d.spec().reply_delay.0.as_secs(),
                d.spec().reply_delay.1.as_secs()
            ),
        );
    }

    let config_path = out_dir.join("probes.toml");
    std::fs::write(
        &config_path,
        config(&servers, &xs, &urls, opts.every_s.max(1)),
    )
    .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let pw = out_dir.join("mail.pw");
    std::fs::write(&pw, format!("{}\n", MailServers::PASSWORD))
        .map_err(|e| format!("cannot write {}: {e}", pw.display()))?;
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", pw.display()))?;

    deskprobe(opts, &config_path, &["check"]).await?;
    say(
        opts,
        &format!(
            "running `deskprobe run` for {} s (a probe to each desk every {} s)",
            opts.run_for.as_secs(),
            opts.every_s
        ),
    );
    let mut child = tokio::process::Command::new(&opts.deskprobe)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .current_dir(&out_dir)
        .env("RUST_LOG", "deskprobe=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", opts.deskprobe.display()))?;
    let started = Instant::now();
    while started.elapsed() < opts.run_for {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("`deskprobe run` exited early: {status}"));
        }
    }
    // A graceful stop (SIGTERM), as systemd would.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(15), child.wait()).await {
        Ok(_) => {}
        Err(_) => {
            let _ = child.start_kill();
        }
    }
    // The desks answer the last probes within their delay (open desks) — wait for that,
    // then collect once more.
    let grace = xs.iter().map(Exchange::slowest).max().unwrap_or_default() + Duration::from_secs(1);
    say(
        opts,
        &format!("waiting {} s for the last replies", grace.as_secs()),
    );
    tokio::time::sleep(grace).await;
    deskprobe(opts, &config_path, &["collect"]).await?;

    let paths = [
        ("html", "report.html"),
        ("md", "report.md"),
        ("csv", "report.csv"),
        ("json", "report.json"),
    ];
    for (format, file) in paths {
        let out = out_dir.join(file);
        deskprobe(
            opts,
            &config_path,
            &[
                "report",
                "--format",
                format,
                "--out",
                &out.display().to_string(),
            ],
        )
        .await?;
    }
    let mut desks_done = Vec::new();
    for ((d, t), c) in desks.iter().zip(&tickets).zip(&chats) {
        for (channel, s) in [
            ("email", d.stats()),
            ("ticket", t.stats()),
            ("chat", c.stats()),
        ] {
            desks_done.push((
                format!("{} ({channel})", d.spec().exchange),
                s.received,
                s.acked,
                s.replied,
                s.errors,
            ));
        }
    }
    drop(chats);
    drop(tickets);
    drop(desks);
    drop(servers);
    Ok(DemoOutcome {
        html: out_dir.join("report.html"),
        markdown: out_dir.join("report.md"),
        csv: out_dir.join("report.csv"),
        json: out_dir.join("report.json"),
        config: config_path,
        desks: desks_done,
    })
}
