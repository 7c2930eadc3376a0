//! What every benchmark needs: the real `deskprobe` binary run as a measured child (wall time,
//! peak RSS and CPU from `wait4`'s rusage), a config for the loopback servers, percentiles and
//! the result table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deskprobe_sandbox::MailServers;

/// The binary under test (built by cargo for this bench target).
pub const DESKPROBE: &str = env!("CARGO_BIN_EXE_deskprobe");

/// The mailbox password file, next to the config (mode 0600).
pub const PASSWORD_FILE: &str = "mail.pw";

/// A finished child process, measured.
#[derive(Debug)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size (ru_maxrss), bytes.
    pub peak_rss: u64,
    /// User + system CPU time.
    pub cpu: Duration,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Measured {
    /// Panics with the output unless the exit code is 0.
    pub fn ok(self, what: &str) -> Measured {
        assert_eq!(
            self.code, 0,
            "{what} exited {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `cmd` to completion under GNU time (`/usr/bin/time -f "%M %U %S"`), which reports the
/// peak RSS of that process alone. (`wait4`'s own `ru_maxrss` is no good here: Linux carries
/// the forking parent's high-water mark across `exec` into the child's.) Blocking: call it
/// from `spawn_blocking` inside the runtime.
pub fn run_measured(cmd: &mut Command) -> Measured {
    let out = tempfile::NamedTempFile::new().expect("stdout file");
    let err = tempfile::NamedTempFile::new().expect("stderr file");
    let stats = tempfile::NamedTempFile::new().expect("time stats file");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(stats.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let started = Instant::now();
    let status = timed
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen stdout file"))
        .stderr(err.reopen().expect("reopen stderr file"))
        .status()
        .unwrap_or_else(|e| panic!("run /usr/bin/time {cmd:?} (install GNU time): {e}"));
    let wall = started.elapsed();
    let text = std::fs::read_to_string(stats.path()).unwrap_or_default();
    // The last line holds the figures (a line before it says if a signal ended the command).
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [max_kb, user, sys] = fields[..] else {
        panic!("unexpected GNU time output for {cmd:?}: {text:?}");
    };
    Measured {
        wall,
        peak_rss: max_kb as u64 * 1024,
        cpu: Duration::from_secs_f64(user + sys),
        code: status.code().unwrap_or(128),
        stdout: std::fs::read_to_string(out.path()).unwrap_or_default(),
        stderr: std::fs::read_to_string(err.path()).unwrap_or_default(),
    }
}

/// `deskprobe ARGS --config CONFIG --db DB` with warnings-only logs.
pub fn deskprobe(config: &Path, db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(DESKPROBE);
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "deskprobe=warn");
    cmd
}

/// Runs a measured `deskprobe` command on the blocking pool.
pub async fn measure(mut cmd: Command) -> Measured {
    tokio::task::spawn_blocking(move || run_measured(&mut cmd))
        .await
        .expect("measured child")
}

/// A probes.toml for the loopback servers with `targets` targets (`t00`, `t01` …, all email
/// to `support@localhost`, 24/7 with a 24 h first-response claim), one persona `lin`
/// (`probe@localhost`) reading `folders`, and `schedule` appended verbatim.
pub fn config_text(
    servers: &MailServers,
    targets: usize,
    folders: &[&str],
    schedule: &str,
) -> String {
    let folders = folders
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = format!(
        r#"
[settings]
vantage = "bench"
send-timeout = "10s"

[[mailbox]]
id = "shopper"
smtp = "smtp://127.0.0.1:{smtp}"
imap = "imap://127.0.0.1:{imap}"
tls = "none"
username = "probe"
password-file = "{PASSWORD_FILE}"
folders = [{folders}]
plus-addressing = true

[[persona]]
id = "lin"
name = "Lin Wei"
email = "probe@localhost"
mailbox = "shopper"
languages = ["en"]

[[script]]
id = "withdrawal"
urgency = "normal"
expect = ['(?i)txid']
[script.text.en]
subject = "Withdrawal still pending"
body = """Hello, my USDT withdrawal has been pending for 36 hours.
Could you check it? Case {{{{ token }}}}.
{{{{ persona.name }}}}
"""
"#,
        smtp = servers.smtp_port(),
        imap = servers.imap_port(),
    );
    for i in 0..targets {
        let _ = write!(
            text,
            r#"
[[target]]
id = "{id}"
name = "Exchange {i}"
timezone = "Asia/Singapore"
verified = true
[target.claims]
source = "https://claims.example/{id}"
captured = "2026-11-01"
availability = "24/7"
languages = ["en"]
first-response = {{ email = "24h" }}
[[target.channel]]
kind = "email"
address = "support@localhost"
"#,
            id = target_id(i)
        );
    }
    text.push_str(schedule);
    text
}

/// The id of the i-th benchmark target.
pub fn target_id(i: usize) -> String {
    format!("t{i:02}")
}

/// Writes the config and its 0600 password file into `dir`; returns the config's path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = dir.join(PASSWORD_FILE);
    std::fs::write(&pw, format!("{}\n", MailServers::PASSWORD)).expect("write password file");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    let path = dir.join("probes.toml");
    std::fs::write(&path, text).expect("write bench config");
    path
}

/// Nearest-rank percentile of unsorted values (`q` in 0..=1).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    assert!(!values.is_empty(), "percentile of nothing");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// p50 / p90 / p99 in seconds, formatted.
pub fn p50_90_99(values: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        secs(percentile(values, 0.5)),
        secs(percentile(values, 0.9)),
        secs(percentile(values, 0.99))
    )
}

/// Seconds with a precision that suits the magnitude.
pub fn secs(s: f64) -> String {
    if s.abs() < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Bytes as MB (10^6).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A rate per second.
pub fn per_s(n: f64, d: Duration) -> String {
    format!("{:.0}/s", n / d.as_secs_f64().max(1e-9))
}

/// The result table: (benchmark, measure, value, goal).
#[derive(Default)]
pub struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    pub fn row(&mut self, bench: &str, measure: &str, value: String, goal: &str) {
        eprintln!(
            "  {bench} | {measure}: {value}{}",
            if goal.is_empty() {
                String::new()
            } else {
                format!("  (goal: {goal})")
            }
        );
        self.rows
            .push([bench.into(), measure.into(), value, goal.into()]);
    }

    /// A Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| benchmark | measure | value | goal |\n|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(out, "| {} | {} | {} | {} |", r[0], r[1], r[2], r[3]);
        }
        out
    }
}

/// Reads `VmRSS`, `VmHWM` (bytes) and `Threads` of a live process.
pub fn proc_status(pid: u32) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((
        field("VmRSS:")? * 1024,
        field("VmHWM:")? * 1024,
        field("Threads:")?,
    ))
}

/// User + system CPU time of a live process (from /proc/PID/stat, clock ticks).
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// Waits until `check` returns `Some`, polling every 20 ms, for at most `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens the database read-only (for checks while deskprobe writes it).
pub fn read_db(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", db.display()));
    conn.busy_timeout(Duration::from_secs(10)).ok();
    conn
}

/// Whether the daemon's watchers have finished their first pass over every folder in
/// `sources` (`imap:shopper/INBOX` …).
pub fn watchers_up(db: &Path, sources: &[String]) -> bool {
    if !db.exists() {
        return false;
    }
    let conn = read_db(db);
    sources.iter().all(|s| {
        conn.query_row(
            "SELECT last_ok_at FROM collector_runs WHERE source = ?1",
            [s],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten()
        .is_some()
    })
}

/// A `deskprobe run` child: stopped with SIGTERM by [`Daemon::stop`], killed if the bench
/// panics first (so no daemon outlives its benchmark).
pub struct Daemon(Option<std::process::Child>);

impl Daemon {
    /// Starts `deskprobe run` for `config` and `db`; its logs go to our stderr.
    pub fn start(config: &Path, db: &Path) -> Daemon {
        let mut cmd = deskprobe(config, db, &["run"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        Daemon(Some(cmd.spawn().expect("spawn deskprobe run")))
    }

    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    /// SIGTERM, then waits for the exit; panics unless it exits 0.
    pub async fn stop(mut self) {
        let mut child = self.0.take().expect("daemon running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("wait daemon")
            .expect("daemon status");
        assert!(status.success(), "deskprobe run exited {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Makes the child get SIGTERM when the bench dies (even by a signal, when no `Drop` runs),
/// so no daemon or checker outlives it.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}
