//! deskprobe's sandbox: the outside world on loopback, for the integration tests, the
//! benchmarks and the demo. Real mail servers: Dovecot (IMAP, IMAPS, LMTP) and an aiosmtpd
//! SMTP relay that delivers through Dovecot's LMTP, all on 127.0.0.1 in a temp dir.
//!
//! This crate plays the exchanges and their mail providers; it must never talk to anything
//! but 127.0.0.1, and it does not depend on deskprobe itself (it is what deskprobe measures).
//!
//! `MailServers::start()` takes well under a second; every test starts its own servers, so
//! tests never share a mailbox. `scripts/install-test-deps` installs the servers (Debian's
//! dovecot-imapd, dovecot-lmtpd, python3-aiosmtpd). Set `DESKPROBE_KEEP_TEST_DIRS=1` to keep
//! each test's dir (configs, `dovecot.log`, `smtp.log`, Maildirs) for debugging.

pub mod desks;
mod dovecot;
mod maildir;
mod process;
mod smtp;
pub mod tls;
pub mod vendors;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use dovecot::Dovecot;
use smtp::Smtp;
use tls::Pki;

/// A logged-in IMAP session over plaintext loopback TCP.
pub type ImapSession = async_imap::Session<tokio::net::TcpStream>;

/// A logged-in IMAP session over implicit TLS.
pub type ImapsSession = async_imap::Session<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// How long [`MailServers::wait_for_messages`] waits for mail to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Dovecot + SMTP relay in a temp dir. Dropping it kills both and removes the dir.
pub struct MailServers {
    // Field order matters: the servers are killed (by `Drop`) before the dir is removed.
    dovecot: Dovecot,
    smtp: Smtp,
    pki: Pki,
    dir: tempfile::TempDir,
}

impl MailServers {
    /// The mystery shopper's mailbox: `probe@localhost` (and `probe+TAG@localhost`).
    pub const USER: &str = "probe";
    /// The exchange's support desk: `support@localhost`.
    pub const SUPPORT: &str = "support";
    /// Password of both users, for IMAP and SMTP AUTH.
    pub const PASSWORD: &str = "secret";

    /// Starts Dovecot and the SMTP relay on free ports. Panics with the server's name and log
    /// tail if either cannot start: a missing server is a failure, never a skipped test.
    pub async fn start() -> MailServers {
        Self::start_with_users(&[]).await
    }

    /// Like [`Self::start`], with more mailboxes beside [`Self::USER`] and [`Self::SUPPORT`]
    /// (e.g. one per simulated desk), all with [`Self::PASSWORD`].
    pub async fn start_with_users(extra: &[&str]) -> MailServers {
        tls::install_crypto_provider();
        // DESKPROBE_KEEP_TEST_DIRS=1 keeps the dirs (configs, logs, mail) for debugging.
        let keep = std::env::var_os("DESKPROBE_KEEP_TEST_DIRS").is_some();
        let dir = tempfile::Builder::new()
            .prefix("deskprobe-it-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("create temp dir");
        if keep {
            eprintln!("mail servers in {}", dir.path().display());
        }
        // Dovecot's mail and login users (not us when we are root) must reach the files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod temp dir");
        let tls_dir = dir.path().join("tls");
        std::fs::create_dir(&tls_dir).expect("create tls dir");
        let pki = Pki::write(&tls_dir);
        let mut users = vec![Self::USER, Self::SUPPORT];
        for u in extra {
            if !users.contains(u) {
                users.push(u);
            }
        }
        // Both start at once; the relay needs Dovecot only when a message arrives.
        let (dovecot, smtp) = tokio::join!(
            Dovecot::start(dir.path(), &pki, &users, Self::PASSWORD),
            Smtp::start(dir.path(), &pki, &users, Self::PASSWORD),
        );
        MailServers {
            dovecot,
            smtp,
            pki,
            dir,
        }
    }

    /// Plaintext IMAP (STARTTLS offered) on 127.0.0.1.
    pub fn imap_port(&self) -> u16 {
        self.dovecot.imap_port
    }

    /// Implicit-TLS IMAP on 127.0.0.1.
    pub fn imaps_port(&self) -> u16 {
        self.dovecot.imaps_port
    }

    /// Plaintext SMTP on 127.0.0.1: STARTTLS offered, AUTH PLAIN/LOGIN allowed without TLS.
    pub fn smtp_port(&self) -> u16 {
        self.smtp.port
    }

    /// Implicit-TLS SMTP on 127.0.0.1.
    pub fn smtps_port(&self) -> u16 {
        self.smtp.tls_port
    }

    /// PEM of the throw-away CA that signed the servers' certificate (valid for `localhost`
    /// and `127.0.0.1`).
    pub fn ca_pem(&self) -> &Path {
        &self.pki.ca_pem
    }

    /// A TLS connector trusting only [`Self::ca_pem`].
    pub fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        self.pki.connector()
    }

    /// Root of the temp dir; tests put their probes.toml and database here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Dovecot's log (for assertion messages).
    pub fn imap_log(&self) -> std::path::PathBuf {
        self.dovecot.log_path()
    }

    /// The SMTP relay's log: one line per message with the LMTP answer.
    pub fn smtp_log(&self) -> std::path::PathBuf {
        self.smtp.log_path()
    }

    /// A logged-in IMAP session for `user` over plaintext loopback TCP.
    pub async fn imap(&self, user: &str) -> ImapSession {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port()))
            .await
            .unwrap_or_else(|e| panic!("connect to IMAP port {}: {e}", self.imap_port()));
        tcp.set_nodelay(true).ok();
        self.login(tcp, user).await
    }

    /// A logged-in IMAP session for `user` over implicit TLS, trusting only the test CA.
    pub async fn imaps(&self, user: &str) -> ImapsSession {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.imaps_port()))
            .await
            .unwrap_or_else(|e| panic!("connect to IMAPS port {}: {e}", self.imaps_port()));
        tcp.set_nodelay(true).ok();
        let stream = self
            .tls_connector()
            .connect(tls::localhost(), tcp)
            .await
            .expect("TLS handshake with IMAPS");
        self.login(stream, user).await
    }

    async fn login<T>(&self, stream: T, user: &str) -> async_imap::Session<T>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let mut client = async_imap::Client::new(stream);
        // The greeting must be consumed before LOGIN, or LOGIN reads it as its answer.
        client
            .read_response()
            .await
            .expect("read IMAP greeting")
            .expect("IMAP server closed the connection before its greeting");
        client
            .login(user, Self::PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("IMAP LOGIN as {user}: {e}"))
    }

    /// Appends `raw` to `user`'s `folder` (created if missing) with the given INTERNALDATE,
    /// e.g. `"15-Jan-2026 09:31:07 +0800"`.
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8], internaldate: &str) {
        let mut session = self.imap(user).await;
        ensure_folder(&mut session, folder).await;
        // async-imap inserts the date unquoted; IMAP needs it quoted.
        let date = format!("\"{internaldate}\"");
        session
            .append(folder, None, Some(&date), raw)
            .await
            .unwrap_or_else(|e| panic!("APPEND to {user}/{folder}: {e}"));
        session.logout().await.ok();
    }

    /// Raw bytes of every message in `user`'s `folder` once at least `n` exist. Panics after
    /// 10 s, with both servers' log tails.
    pub async fn wait_for_messages(&self, user: &str, folder: &str, n: usize) -> Vec<Vec<u8>> {
        let mut session = self.imap(user).await;
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        // The folder may not exist yet (e.g. mail not delivered); keep trying SELECT then.
        let mut exists = loop {
            match session.select(folder).await {
                Ok(mailbox) => break mailbox.exists as usize,
                Err(e) if Instant::now() > deadline => {
                    panic!("SELECT {user}/{folder} for 10 s: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        while exists < n {
            if Instant::now() > deadline {
                panic!(
                    "{user}/{folder} has {exists} messages after 10 s, expected {n}\n\
                     SMTP log:\n{}\nDovecot log:\n{}",
                    process::log_tail(&self.smtp_log(), 20),
                    process::log_tail(&self.imap_log(), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            session.noop().await.expect("IMAP NOOP");
            // EXISTS arrives as an unsolicited response; the channel holds only 100.
            while let Ok(response) = session.unsolicited_responses.try_recv() {
                if let async_imap::types::UnsolicitedResponse::Exists(count) = response {
                    exists = count as usize;
                }
            }
        }
        if exists == 0 {
            session.logout().await.ok();
            return Vec::new();
        }
        let messages = fetch_all(&mut session, "BODY.PEEK[]").await;
        session.logout().await.ok();
        messages
            .iter()
            .map(|m| m.body().expect("fetched message has a body").to_vec())
            .collect()
    }

    /// Creates `user`'s `folder` if it does not exist. A fresh mailbox has only INBOX: tests
    /// whose config also reads e.g. `Junk` create it here.
    pub async fn create_folder(&self, user: &str, folder: &str) {
        let mut session = self.imap(user).await;
        ensure_folder(&mut session, folder).await;
        session.logout().await.ok();
    }

    /// Deletes and re-creates `user`'s `folder`, which gives it a new UIDVALIDITY (UIDs
    /// restart at 1). Not for INBOX, which IMAP cannot delete.
    pub async fn recreate_folder(&self, user: &str, folder: &str) {
        let mut session = self.imap(user).await;
        if folder_exists(&mut session, folder).await {
            session
                .delete(folder)
                .await
                .unwrap_or_else(|e| panic!("DELETE {user}/{folder}: {e}"));
        }
        session
            .create(folder)
            .await
            .unwrap_or_else(|e| panic!("CREATE {user}/{folder}: {e}"));
        session.logout().await.ok();
    }

    /// Writes `(raw, received)` messages straight into `user`'s Maildir `folder` (created if
    /// missing), owned by the mail user, INTERNALDATE = `received` (seconds). For benchmarks
    /// that need a large folder fast: Dovecot indexes the files at the next SELECT. Returns
    /// how many were written.
    pub fn write_maildir(
        &self,
        user: &str,
        folder: &str,
        messages: impl IntoIterator<Item = (Vec<u8>, std::time::SystemTime)>,
    ) -> usize {
        maildir::write(&self.dir.path().join("home").join(user), folder, messages)
    }

    /// Kills Dovecot; its ports refuse connections when this returns. Mail stays on disk.
    pub fn stop_imap(&mut self) {
        self.dovecot.stop();
    }

    /// Starts Dovecot again on the same ports and mail dir.
    pub async fn start_imap(&mut self) {
        self.dovecot.restart(&self.pki).await;
    }

    /// While on, the relay delivers each message but holds back its 250 after DATA: the
    /// client cannot know the message was taken (the window a crash-safety test needs).
    pub fn hold_smtp_replies(&self, on: bool) {
        let path = self.dir.path().join("smtp-hold");
        if on {
            std::fs::write(&path, b"hold").expect("create smtp hold file");
        } else if path.exists() {
            std::fs::remove_file(&path).expect("remove smtp hold file");
        }
    }

    /// Kills the SMTP relay; its ports refuse connections when this returns.
    pub fn stop_smtp(&mut self) {
        self.smtp.stop();
    }

    /// Starts the SMTP relay again on the same ports.
    pub async fn start_smtp(&mut self) {
        self.smtp.restart(&self.pki).await;
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        self.smtp.kill();
        self.dovecot.kill();
    }
}

async fn folder_exists<T>(session: &mut async_imap::Session<T>, folder: &str) -> bool
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let names: Vec<_> = session
        .list(None, Some(folder))
        .await
        .expect("IMAP LIST")
        .try_collect()
        .await
        .expect("IMAP LIST responses");
    !names.is_empty()
}

async fn ensure_folder<T>(session: &mut async_imap::Session<T>, folder: &str)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    if !folder.eq_ignore_ascii_case("INBOX") && !folder_exists(session, folder).await {
        session
            .create(folder)
            .await
            .unwrap_or_else(|e| panic!("CREATE {folder}: {e}"));
    }
}

/// `FETCH 1:* (items)` on the selected folder, in sequence order.
pub async fn fetch_all<T>(
    session: &mut async_imap::Session<T>,
    items: &str,
) -> Vec<async_imap::types::Fetch>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let mut messages: Vec<_> = session
        .fetch("1:*", items)
        .await
        .unwrap_or_else(|e| panic!("FETCH 1:* {items}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("FETCH 1:* {items} responses: {e}"));
    messages.sort_by_key(|m| m.message);
    messages
}
