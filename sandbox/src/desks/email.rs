//! A simulated email support desk: an IMAP reader and an SMTP writer on loopback.
//!
//! Every `poll` it fetches new messages of its mailbox's INBOX (`BODY.PEEK[HEADER]`, so
//! nothing is marked seen). For each probe (anything not automatic and not its own) it sends
//! at once an automatic acknowledgement (`Auto-Submitted: auto-replied`, subject
//! `[Request received] …`), and schedules a reply "by an agent" after a random delay in
//! `reply_delay`; a reply that would fall outside the desk's [`DeskHours`] waits for the next
//! opening. Both are threaded (`In-Reply-To`, `References`) and carry
//! `X-Simulated-Desk: deskprobe-sandbox`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;

use super::rfc5322::{self, address, header};
use super::{DeskHours, Rng};

/// How a simulated email desk behaves.
#[derive(Debug, Clone)]
pub struct EmailDeskSpec {
    /// The exchange it plays, e.g. "Simulated Exchange A".
    pub exchange: String,
    /// Its mailbox login (= the local part of its address at `localhost`).
    pub user: String,
    /// The mailbox password.
    pub password: String,
    /// The agent who signs replies (the report must redact this name).
    pub agent: String,
    /// Delay of the agent's reply after the probe arrived, uniform in this range.
    pub reply_delay: (Duration, Duration),
    /// When the agent works.
    pub hours: DeskHours,
    /// Whether an automatic acknowledgement goes out at once.
    pub auto_ack: bool,
    /// How often the mailbox is read.
    pub poll: Duration,
    /// Seed of the delays.
    pub seed: u64,
}

/// What a desk did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeskStats {
    /// Probes read.
    pub received: u64,
    /// Acknowledgements sent.
    pub acked: u64,
    /// Agent replies sent.
    pub replied: u64,
    /// Replies waiting for their time.
    pub waiting: u64,
    /// Errors (IMAP or SMTP), most recent last (at most 20 kept).
    pub errors: Vec<String>,
}

/// A running desk; dropping it stops it.
pub struct EmailDesk {
    stats: Arc<Mutex<DeskStats>>,
    task: tokio::task::JoinHandle<()>,
    spec: EmailDeskSpec,
}

impl Drop for EmailDesk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Pending {
    due: SystemTime,
    to: String,
    subject: String,
    message_id: String,
    references: String,
}

impl EmailDesk {
    /// Starts the desk against the sandbox's IMAP (`imap_port`) and SMTP (`smtp_port`) on
    /// 127.0.0.1.
    pub fn spawn(spec: EmailDeskSpec, imap_port: u16, smtp_port: u16) -> EmailDesk {
        let stats = Arc::new(Mutex::new(DeskStats::default()));
        let task = tokio::spawn(run(spec.clone(), imap_port, smtp_port, Arc::clone(&stats)));
        EmailDesk { stats, task, spec }
    }

    /// Its address.
    pub fn address(&self) -> String {
        format!("{}@localhost", self.spec.user)
    }

    /// What it did so far.
    pub fn stats(&self) -> DeskStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Its behaviour.
    pub fn spec(&self) -> &EmailDeskSpec {
        &self.spec
    }
}

fn note(stats: &Mutex<DeskStats>, f: impl FnOnce(&mut DeskStats)) {
    f(&mut stats.lock().unwrap_or_else(|p| p.into_inner()));
}

fn error(stats: &Mutex<DeskStats>, e: String) {
    note(stats, |s| {
        s.errors.push(e);
        if s.errors.len() > 20 {
            s.errors.remove(0);
        }
    });
}

async fn run(spec: EmailDeskSpec, imap_port: u16, smtp_port: u16, stats: Arc<Mutex<DeskStats>>) {
    let mut rng = Rng::new(spec.seed);
    let mut last_uid = 0u32;
    let mut pending: Vec<Pending> = Vec::new();
    let mut counter = 0u64;
    let mut session = None;
    loop {
        if session.is_none() {
            match login(&spec, imap_port).await {
                Ok(s) => session = Some(s),
                Err(e) => error(&stats, format!("IMAP login: {e}")),
            }
        }
        if let Some(s) = session.as_mut() {
            match fetch_new(s, last_uid).await {
                Ok(new) => {
                    for (uid, raw) in new {
                        last_uid = last_uid.max(uid);
                        if let Some(p) = accept(&spec, &raw, &mut rng) {
                            note(&stats, |s| s.received += 1);
                            if spec.auto_ack {
                                counter += 1;
                                let msg = ack_message(&spec, &p, counter);
                                match rfc5322::send(smtp_port, &from_addr(&spec), &p.to, &msg).await
                                {
                                    Ok(()) => note(&stats, |s| s.acked += 1),
                                    Err(e) => error(&stats, format!("SMTP ack: {e}")),
                                }
                            }
                            pending.push(p);
                        }
                    }
                }
                Err(e) => {
                    error(&stats, format!("IMAP fetch: {e}"));
                    session = None;
                }
            }
        }
        let now = SystemTime::now();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].due <= now && spec.hours.is_open(now) {
                let p = pending.remove(i);
                counter += 1;
                let msg = reply_message(&spec, &p, counter);
                match rfc5322::send(smtp_port, &from_addr(&spec), &p.to, &msg).await {
                    Ok(()) => note(&stats, |s| s.replied += 1),
                    Err(e) => error(&stats, format!("SMTP reply: {e}")),
                }
            } else {
                i += 1;
            }
        }
        let waiting = pending.len() as u64;
        note(&stats, |s| s.waiting = waiting);
        tokio::time::sleep(spec.poll).await;
    }
}

type Session = async_imap::Session<tokio::net::TcpStream>;

async fn login(spec: &EmailDeskSpec, port: u16) -> Result<Session, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).ok();
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no IMAP greeting")?;
    let mut s = client
        .login(&spec.user, &spec.password)
        .await
        .map_err(|(e, _)| e.to_string())?;
    s.select("INBOX").await.map_err(|e| e.to_string())?;
    Ok(s)
}

async fn fetch_new(s: &mut Session, last_uid: u32) -> Result<Vec<(u32, Vec<u8>)>, String> {
    // NOOP lets the server report new mail in the selected folder.
    s.noop().await.map_err(|e| e.to_string())?;
    while s.unsolicited_responses.try_recv().is_ok() {}
    let fetches: Vec<_> = s
        .uid_fetch(format!("{}:*", last_uid + 1), "(UID BODY.PEEK[HEADER])")
        .await
        .map_err(|e| e.to_string())?
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut out: Vec<(u32, Vec<u8>)> = fetches
        .iter()
        .filter_map(|f| {
            let uid = f.uid?;
            // `UID FETCH n:*` returns the highest message even when its UID < n.
            (uid > last_uid).then(|| (uid, f.header().unwrap_or_default().to_vec()))
        })
        .collect();
    out.sort_by_key(|(u, _)| *u);
    Ok(out)
}

fn from_addr(spec: &EmailDeskSpec) -> String {
    format!("{}@localhost", spec.user)
}

/// A probe to answer, or `None` for mail the desk must not answer (automatic mail, its own).
fn accept(spec: &EmailDeskSpec, raw: &[u8], rng: &mut Rng) -> Option<Pending> {
    let h = rfc5322::headers(raw);
    if header(&h, "auto-submitted").is_some_and(|v| !v.eq_ignore_ascii_case("no"))
        || header(&h, "x-simulated-desk").is_some()
    {
        return None;
    }
    let reply_to = header(&h, "reply-to").or_else(|| header(&h, "from"))?;
    let to = address(reply_to);
    if to.is_empty() || to.eq_ignore_ascii_case(&from_addr(spec)) {
        return None;
    }
    let message_id = header(&h, "message-id").unwrap_or("").to_owned();
    let references = header(&h, "references").unwrap_or("").to_owned();
    let arrived = SystemTime::now();
    let due = spec
        .hours
        .next_open(arrived + rng.between(spec.reply_delay.0, spec.reply_delay.1));
    Some(Pending {
        due,
        to,
        subject: header(&h, "subject").unwrap_or("your request").to_owned(),
        message_id,
        references,
    })
}

fn threading(p: &Pending) -> String {
    if p.message_id.is_empty() {
        return String::new();
    }
    let refs = if p.references.is_empty() {
        p.message_id.clone()
    } else {
        format!("{} {}", p.references, p.message_id)
    };
    format!("In-Reply-To: {}\r\nReferences: {}\r\n", p.message_id, refs)
}

fn message(
    spec: &EmailDeskSpec,
    p: &Pending,
    n: u64,
    extra: &str,
    subject: &str,
    body: &str,
) -> String {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let body = body.replace('\n', "\r\n");
    format!(
        "{extra}Date: {date}\r\nMessage-ID: <{user}.{n}.{nanos}@simulated-desk.localhost>\r\n\
         To: <{to}>\r\nSubject: {subject}\r\n{threading}X-Simulated-Desk: deskprobe-sandbox ({exchange})\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        date = rfc5322::date(now),
        user = spec.user,
        to = p.to,
        threading = threading(p),
        exchange = spec.exchange,
    )
}

fn re(subject: &str) -> String {
    if subject.to_ascii_lowercase().starts_with("re:") {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    }
}

fn ack_message(spec: &EmailDeskSpec, p: &Pending, n: u64) -> String {
    let from = format!(
        "From: \"{} Support\" <{}>\r\nAuto-Submitted: auto-replied\r\n",
        spec.exchange,
        from_addr(spec)
    );
    let body = format!(
        "Thank you for contacting {ex} Support. This is an automatic acknowledgement:\n\
         your request has been received and an agent will answer it.\n\n\
         {ex} Support (simulated desk, deskprobe sandbox)",
        ex = spec.exchange
    );
    message(
        spec,
        p,
        n,
        &from,
        &format!("[Request received] {}", re(&p.subject)),
        &body,
    )
}

fn reply_message(spec: &EmailDeskSpec, p: &Pending, n: u64) -> String {
    let from = format!(
        "From: \"{} via {} Support\" <{}>\r\n",
        spec.agent,
        spec.exchange,
        from_addr(spec)
    );
    let first = spec.agent.split_whitespace().next().unwrap_or("the agent");
    let local = spec.agent.to_lowercase().replace(' ', ".");
    let body = format!(
        "Hello,\n\n\
         my name is {first} and I looked into your withdrawal. It was confirmed on chain;\n\
         the TXID is 0x5f2c9a1e7b. Please allow a few minutes for your wallet to show it.\n\n\
         If anything is still unclear, call me at +1 555 0100 4321 or write to\n\
         {local}@{user}.example.\n\n\
         Best regards,\n{agent}\n{ex} Support (simulated desk, deskprobe sandbox)",
        user = spec.user,
        agent = spec.agent,
        ex = spec.exchange
    );
    message(spec, p, n, &from, &re(&p.subject), &body)
}
