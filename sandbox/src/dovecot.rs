//! Dovecot (IMAP, IMAPS, LMTP) in the temp dir, run in the foreground as our child.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::process::{self, Greeting, NotReady, Proc};
use super::tls::Pki;

/// Who owns the mailboxes. Dovecot refuses to deliver as uid 0, so as root the mail user is
/// `nobody:nogroup`; as a normal user it is the user itself.
struct MailOwner {
    uid: u32,
    gid: u32,
    /// Names of the current user and group when not root (for `default_internal_user` …),
    /// `None` as root.
    unprivileged: Option<(String, String)>,
}

pub struct Dovecot {
    dir: PathBuf,
    pub imap_port: u16,
    pub imaps_port: u16,
    proc: Option<Proc>,
}

impl Dovecot {
    /// Writes the configuration, users and home dirs under `dir/dovecot`, starts Dovecot on
    /// fresh ports and waits until it greets on IMAP, IMAPS and LMTP.
    pub async fn start(dir: &Path, pki: &Pki, users: &[&str], password: &str) -> Dovecot {
        let owner = mail_owner(dir);
        let root = dir.join("dovecot");
        std::fs::create_dir_all(root.join("state")).expect("create dovecot state dir");
        let mut passwd = String::new();
        for user in users {
            passwd.push_str(&format!("{user}:{{PLAIN}}{password}::::::\n"));
            let home = dir.join("home").join(user);
            std::fs::create_dir_all(&home).expect("create home dir");
            std::os::unix::fs::chown(&home, Some(owner.uid), Some(owner.gid))
                .expect("chown home dir to the mail user");
        }
        std::fs::write(root.join("users"), passwd).expect("write dovecot users");
        // Readable by the auth worker whichever user it runs as.
        std::fs::set_permissions(root.join("users"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod dovecot users");

        let mut last = String::new();
        for _attempt in 0..5 {
            let mut dovecot = Dovecot {
                dir: dir.to_path_buf(),
                imap_port: process::free_port(),
                imaps_port: process::free_port(),
                proc: None,
            };
            std::fs::write(dovecot.conf_path(), dovecot.config(dir, pki, &owner))
                .expect("write dovecot.conf");
            match dovecot.spawn_and_wait(pki).await {
                Ok(()) => return dovecot,
                Err(msg) => last = msg,
            }
        }
        panic!("dovecot could not start after 5 attempts with fresh ports: {last}");
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("dovecot").join("dovecot.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dovecot.log")
    }

    /// LMTP socket (Dovecot's default listener name inside `base_dir`).
    pub fn lmtp_socket(dir: &Path) -> PathBuf {
        dir.join("dovecot").join("run").join("lmtp")
    }

    fn config(&self, dir: &Path, pki: &Pki, owner: &MailOwner) -> String {
        let d = dir.display();
        let unprivileged = match &owner.unprivileged {
            // Without root, every service runs as us, sockets belong to our group and nothing
            // may chroot.
            Some((user, group)) => format!(
                "default_internal_user = {user}\n\
                 default_internal_group = {group}\n\
                 default_login_user = {user}\n\
                 service anvil {{\n  chroot =\n}}\n\
                 service imap-login {{\n  chroot =\n}}\n"
            ),
            None => String::new(),
        };
        format!(
            r#"# Written by the deskprobe test harness; everything lives under {d}.
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {d}/dovecot/run
state_dir = {d}/dovecot/state
log_path = {d}/dovecot.log
auth_verbose = yes
hostname = localhost
postmaster_address = postmaster@localhost
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
first_valid_gid = 1
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no
# The benchmark watches the mailbox with a dozen check_imap_receive processes beside
# deskprobe, all as the same user from 127.0.0.1 (Dovecot allows 10 by default).
protocol imap {{
  mail_max_userip_connections = 100
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {d}/dovecot/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
{unprivileged}"#,
            cert = pki.cert_pem.display(),
            key = pki.key_pem.display(),
            uid = owner.uid,
            gid = owner.gid,
            imap = self.imap_port,
            imaps = self.imaps_port,
        )
    }

    /// Spawns `dovecot -F` and waits for its greetings. `Err` when the ports were taken
    /// (the caller picks new ones); panics on any other failure.
    async fn spawn_and_wait(&mut self, pki: &Pki) -> Result<(), String> {
        // After a SIGKILL the pid file stays and Dovecot would refuse to start.
        let _ = std::fs::remove_file(self.dir.join("dovecot/run/master.pid"));
        let log = self.log_path();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open dovecot.log");
        let log_start = out.metadata().map(|m| m.len()).unwrap_or(0);
        let err = out.try_clone().expect("clone log handle");
        // stdio goes to the log: Dovecot keeps the caller's stderr open otherwise.
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(self.conf_path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dovecot (run scripts/install-test-deps): {e}"));
        let mut proc = Proc::new("dovecot", log, log_start, child);
        let connector = pki.connector();
        let ready = process::wait_ready(
            &mut proc,
            &[
                (self.imap_port, Greeting::Plain("* OK")),
                (self.imaps_port, Greeting::Tls(&connector, "* OK")),
            ],
        )
        .await;
        match ready {
            Ok(()) => {}
            Err(NotReady::Exited { addr_in_use: true }) => {
                return Err(format!(
                    "port {} or {} in use",
                    self.imap_port, self.imaps_port
                ));
            }
            Err(NotReady::Exited { .. }) => proc.fail("exited during start"),
            Err(NotReady::TimedOut(e)) => proc.fail(&format!("did not become ready: {e}")),
        }
        wait_lmtp(&mut proc, &Self::lmtp_socket(&self.dir)).await;
        self.proc = Some(proc);
        Ok(())
    }

    /// Kills Dovecot (all its processes) and waits until its ports are free.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
            process::wait_port_closed(self.imap_port);
            process::wait_port_closed(self.imaps_port);
        }
    }

    /// Kills Dovecot without waiting for its ports (for `Drop`).
    pub fn kill(&mut self) {
        self.proc.take();
    }

    /// Starts Dovecot again on the same ports and mail dir. Retries while the old listeners
    /// linger.
    pub async fn restart(&mut self, pki: &Pki) {
        assert!(self.proc.is_none(), "dovecot is already running");
        let mut last = String::new();
        for _ in 0..50 {
            match self.spawn_and_wait(pki).await {
                Ok(()) => return,
                Err(msg) => last = msg,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("dovecot could not restart on its ports: {last}");
    }
}

/// The LMTP socket exists once Dovecot listens, but wait for its greeting to be sure.
async fn wait_lmtp(proc: &mut Proc, socket: &Path) {
    use tokio::io::AsyncBufReadExt;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last_err;
    loop {
        if proc.exited().is_some() {
            proc.fail("exited during start");
        }
        match tokio::net::UnixStream::connect(socket).await {
            Ok(s) => {
                let mut line = String::new();
                let mut r = tokio::io::BufReader::new(s);
                match r.read_line(&mut line).await {
                    Ok(_) if line.starts_with("220") => return,
                    Ok(_) => last_err = format!("LMTP greeting {line:?}"),
                    Err(e) => last_err = e.to_string(),
                }
            }
            Err(e) => last_err = format!("connect {}: {e}", socket.display()),
        }
        if std::time::Instant::now() > deadline {
            proc.fail(&format!("LMTP not ready: {last_err}"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn mail_owner(dir: &Path) -> MailOwner {
    // The temp dir was just created by us: its owner is our effective uid/gid (std has no
    // getuid and the tests take no libc dependency).
    let meta = std::fs::metadata(dir).expect("stat temp dir");
    if meta.uid() == 0 {
        MailOwner {
            uid: lookup_id("/etc/passwd", "nobody").unwrap_or(65534),
            gid: lookup_id("/etc/group", "nogroup")
                .or_else(|| lookup_id("/etc/group", "nobody"))
                .unwrap_or(65534),
            unprivileged: None,
        }
    } else {
        let user = name_of_id("/etc/passwd", meta.uid())
            .or_else(|| std::env::var("USER").ok())
            .expect("cannot find the current user's name in /etc/passwd or $USER");
        let group = name_of_id("/etc/group", meta.gid())
            .unwrap_or_else(|| panic!("cannot find group {} in /etc/group", meta.gid()));
        MailOwner {
            uid: meta.uid(),
            gid: meta.gid(),
            unprivileged: Some((user, group)),
        }
    }
}

/// Numeric id (third field) of `name` in a passwd- or group-style file.
fn lookup_id(file: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// Name (first field) of the entry with numeric id `id` in a passwd- or group-style file.
fn name_of_id(file: &str, id: u32) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() > 2 && fields[2].parse() == Ok(id)).then(|| fields[0].to_string())
    })
}
