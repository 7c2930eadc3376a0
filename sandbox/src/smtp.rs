//! The SMTP side: `smtp_lmtp.py` (aiosmtpd) relaying every message to Dovecot's LMTP socket.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::process::{self, Greeting, NotReady, Proc};
use super::tls::Pki;

const SCRIPT: &str = include_str!("smtp_lmtp.py");

/// Debian's python with python3-aiosmtpd (the `python3` on PATH may be another build).
const PYTHON: &str = "/usr/bin/python3";

pub struct Smtp {
    dir: PathBuf,
    pub port: u16,
    pub tls_port: u16,
    users: Vec<String>,
    proc: Option<Proc>,
}

impl Smtp {
    /// Starts the relay on fresh ports and waits for its greetings.
    pub async fn start(dir: &Path, pki: &Pki, users: &[&str], password: &str) -> Smtp {
        std::fs::write(dir.join("smtp_lmtp.py"), SCRIPT).expect("write smtp_lmtp.py");
        let users: Vec<String> = users.iter().map(|u| format!("{u}:{password}")).collect();
        let mut last = String::new();
        for _attempt in 0..5 {
            let mut smtp = Smtp {
                dir: dir.to_path_buf(),
                port: process::free_port(),
                tls_port: process::free_port(),
                users: users.clone(),
                proc: None,
            };
            match smtp.spawn_and_wait(pki).await {
                Ok(()) => return smtp,
                Err(msg) => last = msg,
            }
        }
        panic!("SMTP relay could not start after 5 attempts with fresh ports: {last}");
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("smtp.log")
    }

    async fn spawn_and_wait(&mut self, pki: &Pki) -> Result<(), String> {
        let log = self.log_path();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open smtp.log");
        let log_start = out.metadata().map(|m| m.len()).unwrap_or(0);
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-u")
            .arg(self.dir.join("smtp_lmtp.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--tls-port")
            .arg(self.tls_port.to_string())
            .arg("--cert")
            .arg(&pki.cert_pem)
            .arg("--key")
            .arg(&pki.key_pem)
            .arg("--lmtp")
            .arg(super::dovecot::Dovecot::lmtp_socket(&self.dir))
            .arg("--exit-on-stdin-eof")
            .arg("--hold-file")
            .arg(self.dir.join("smtp-hold"));
        for user in &self.users {
            cmd.arg("--user").arg(user);
        }
        // stdin stays a pipe we never write to: the script exits when it closes, i.e. when
        // this test process ends, even if it never ran Drop.
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON} (run scripts/install-test-deps): {e}"));
        let mut proc = Proc::new("SMTP relay (smtp_lmtp.py)", log, log_start, child);
        let connector = pki.connector();
        let ready = process::wait_ready(
            &mut proc,
            &[
                (self.port, Greeting::Plain("220")),
                (self.tls_port, Greeting::Tls(&connector, "220")),
            ],
        )
        .await;
        match ready {
            Ok(()) => {
                self.proc = Some(proc);
                Ok(())
            }
            Err(NotReady::Exited { addr_in_use: true }) => {
                Err(format!("port {} or {} in use", self.port, self.tls_port))
            }
            Err(NotReady::Exited { .. }) => proc.fail("exited during start"),
            Err(NotReady::TimedOut(e)) => proc.fail(&format!("did not become ready: {e}")),
        }
    }

    /// Kills the relay and waits until its ports are free.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
            process::wait_port_closed(self.port);
            process::wait_port_closed(self.tls_port);
        }
    }

    /// Kills the relay without waiting (for `Drop`).
    pub fn kill(&mut self) {
        self.proc.take();
    }

    /// Starts the relay again on the same ports.
    pub async fn restart(&mut self, pki: &Pki) {
        assert!(self.proc.is_none(), "SMTP relay is already running");
        let mut last = String::new();
        for _ in 0..50 {
            match self.spawn_and_wait(pki).await {
                Ok(()) => return,
                Err(msg) => last = msg,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("SMTP relay could not restart on its ports: {last}");
    }
}
