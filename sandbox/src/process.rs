//! Child processes, free ports and readiness checks shared by the server helpers.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

/// How long a server may take to answer its first greeting.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports handed out in this process: the kernel may give a just-closed ephemeral port to the
/// next `bind(0)`, and tests start servers in parallel, so never hand out the same port twice.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP port on 127.0.0.1 (bind port 0, read it, close). Another process may still take
/// it before the server binds; the callers retry with new ports when that happens.
pub fn free_port() -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// The last `lines` lines of a log file, for panic messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// One running server process, killed with its process group when dropped.
pub struct Proc {
    pub name: &'static str,
    pub log: PathBuf,
    /// Length of the log when this process was spawned: earlier runs wrote the rest.
    log_start: u64,
    child: Child,
    /// `sh` that kills the server's process group when its stdin (a pipe from us) closes:
    /// if the test process dies without unwinding (Ctrl-C, SIGKILL, timeout), the server
    /// does not linger on its ports.
    watchdog: Option<Child>,
}

impl Proc {
    /// Takes over a spawned child. It must have been spawned with `process_group(0)` so that
    /// killing the group also ends the processes it forked (Dovecot's login, imap, lmtp …).
    pub fn new(name: &'static str, log: PathBuf, log_start: u64, child: Child) -> Proc {
        let pgid = child.id().to_string();
        let watchdog = std::process::Command::new("sh")
            .args(["-c", r#"read -r _; kill -9 -"$1" 2>/dev/null"#, "sh", &pgid])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // Its own group, so Ctrl-C does not kill it before it kills the server.
            .process_group(0)
            .spawn()
            .ok();
        Proc {
            name,
            log,
            log_start,
            child,
            watchdog,
        }
    }

    /// What this process (not earlier runs) wrote to its log.
    pub fn own_log(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(self.log_start)
            .unwrap_or(0)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Why the (exited) process did not start: a taken port is worth a retry on other ports.
    fn exit_reason(&self) -> NotReady {
        let log = self.own_log().to_ascii_lowercase();
        NotReady::Exited {
            addr_in_use: log.contains("address already in use"),
        }
    }

    /// SIGKILL to the whole process group, then reap the leader.
    pub fn kill(&mut self) {
        // The watchdog goes first: once the server is reaped its pid may be reused.
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let pgid = self.child.id().to_string();
        // The group id is the leader's pid (process_group(0) at spawn). The shell's `kill`
        // rather than libc, so the tests need no extra dependency.
        let _ = std::process::Command::new("sh")
            .args(["-c", r#"kill -9 -"$1""#, "sh", &pgid])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics with the server's name and the tail of its log.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{} {what}; log {}:\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 40)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a server did not become ready.
pub enum NotReady {
    /// The process exited; `addr_in_use` if its log says a port was taken.
    Exited {
        addr_in_use: bool,
    },
    TimedOut(String),
}

/// How to recognise a ready listener.
pub enum Greeting<'a> {
    /// Plain TCP; the first line starts with the prefix.
    Plain(&'static str),
    /// Implicit TLS with this connector, then the first line starts with the prefix.
    Tls(&'a tokio_rustls::TlsConnector, &'static str),
}

/// Waits until every listed port accepts a connection and sends its greeting, or the process
/// exits, or [`READY_TIMEOUT`] passes. Polls every 10 ms: there is no event to wait on.
pub async fn wait_ready(proc: &mut Proc, ports: &[(u16, Greeting<'_>)]) -> Result<(), NotReady> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for (port, greeting) in ports {
        let mut last_err;
        loop {
            if proc.exited().is_some() {
                return Err(proc.exit_reason());
            }
            match tokio::time::timeout(Duration::from_secs(2), greet(*port, greeting)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => last_err = e,
                Err(_) => last_err = format!("no greeting on port {port} within 2 s"),
            }
            if Instant::now() > deadline {
                return Err(NotReady::TimedOut(last_err));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Someone else may have answered on a port this server failed to bind.
    if proc.exited().is_some() {
        return Err(proc.exit_reason());
    }
    Ok(())
}

async fn greet(port: u16, greeting: &Greeting<'_>) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).ok();
    match greeting {
        Greeting::Plain(prefix) => first_line(tcp, prefix).await,
        Greeting::Tls(connector, prefix) => {
            let tls = connector
                .connect(super::tls::localhost(), tcp)
                .await
                .map_err(|e| format!("TLS handshake on {addr}: {e}"))?;
            first_line(tls, prefix).await
        }
    }
}

async fn first_line<S: AsyncRead + AsyncWrite + Unpin>(s: S, prefix: &str) -> Result<(), String> {
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read greeting: {e}"))?;
    if line.starts_with(prefix) {
        Ok(())
    } else {
        Err(format!("greeting {line:?} does not start with {prefix:?}"))
    }
}

/// Waits until nothing listens on `port` any more (connection refused), so a test sees the
/// outage at once and a restarted server can bind the port again. Blocking: used by the
/// synchronous `stop_*` methods, and it takes a few milliseconds.
pub fn wait_port_closed(port: u16) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "port {port} still accepts connections 10 s after its server was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
