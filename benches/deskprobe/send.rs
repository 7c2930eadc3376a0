//! Benchmark 5, send throughput: probes per second through SMTP to the loopback relay (which
//! delivers each into Dovecot over LMTP before it answers 250) with the store's bookkeeping
//! of every probe (row committed as `sending` with its raw bytes before the send, then
//! `sent` + `accepted` event), over one pooled SMTP connection; and, for comparison, the
//! `deskprobe send` command (a process and a connection per probe).

use std::path::Path;
use std::time::{Duration, Instant};

use deskprobe::channels::email::smtp::{OutboundEmail, SmtpSender};
use deskprobe::config::Config;
use deskprobe::model::{ChannelKind, Urgency, now_millis};
use deskprobe::store::{NewProbe, Store};
use deskprobe_sandbox::MailServers;

use crate::util::{self, Table, per_s};

/// A probe sent by [`send_pooled`]: its Message-ID (what a reply refers to).
pub struct SentProbe {
    pub message_id: String,
}

/// Sends `n` probes to `target` with one SMTP sender (lettre's pool keeps the connection) and
/// does the store's bookkeeping of each, as `send::send_probe` does. Returns the probes and
/// the time taken.
pub async fn send_pooled(
    config: &Config,
    db: &Path,
    target: &str,
    n: usize,
) -> (Vec<SentProbe>, Duration) {
    let mailbox = &config.mailboxes[0];
    let persona = &config.personas[0];
    let password = mailbox.password.resolve().expect("bench password");
    let sender = SmtpSender::new(mailbox, &password, Duration::from_secs(10)).expect("SMTP sender");
    let mut store = Store::open(db).expect("open bench store");
    let mut out = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = ulid::Ulid::new().to_string();
        let token = deskprobe::matching::new_token();
        let message_id = deskprobe::send::message_id(&id, &token, &persona.email);
        let from = deskprobe::send::subaddress(&persona.email, &token);
        let to = "support@localhost".to_owned();
        let subject = format!("Withdrawal still pending ({i})");
        let raw = OutboundEmail {
            from_name: persona.name.clone(),
            from: from.clone(),
            to: to.clone(),
            subject: subject.clone(),
            body: format!("Hello, my USDT withdrawal has been pending. Case {token}.\n"),
            message_id: message_id.clone(),
        }
        .format()
        .expect("format probe");
        let row = NewProbe {
            id: id.clone(),
            target: target.to_owned(),
            channel: ChannelKind::Email,
            script: "withdrawal".into(),
            persona: persona.id.clone(),
            language: "en".into(),
            urgency: Urgency::Normal,
            token,
            message_id: Some(message_id.clone()),
            sender: Some(from.clone()),
            recipient: Some(to.clone()),
            subject: Some(subject),
            created_at: now_millis(),
            vantage: config.settings.vantage.clone(),
            slot: None,
            sending_owner: None,
        };
        // The same order as a real send: the row is committed before the network send.
        store
            .insert_sending_probe(&row, Some(&raw))
            .expect("commit probe");
        let sent_at = sender.send(&from, &to, &raw).await.expect("SMTP send");
        store
            .mark_sent(&id, sent_at, &format!("smtp:{}", sender.server()))
            .expect("mark sent");
        out.push(SentProbe { message_id });
    }
    (out, started.elapsed())
}

pub async fn run(table: &mut Table, quick: bool) {
    let n = if quick { 5 } else { 300 };
    let cli_n = if quick { 2 } else { 20 };
    eprintln!("send: {n} probes over a pooled connection, {cli_n} with `deskprobe send`");
    let servers = MailServers::start().await;
    let text = util::config_text(&servers, 1, &["INBOX"], "");
    let config_path = util::write_config(servers.dir(), &text);
    let config = deskprobe::config::load(&config_path).expect("bench config");
    let db = servers.dir().join("send.db");

    let (sent, took) = send_pooled(&config, &db, &util::target_id(0), n).await;
    let delivered = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", n)
        .await;
    assert_eq!(sent.len(), n);
    assert_eq!(delivered.len(), n, "every probe delivered");
    table.row(
        "5 send",
        &format!("pooled SMTP + store bookkeeping ({n} probes)"),
        format!(
            "{} ({:.1} ms/probe)",
            per_s(n as f64, took),
            took.as_secs_f64() * 1000.0 / n as f64
        ),
        "",
    );

    let started = Instant::now();
    for _ in 0..cli_n {
        let m = util::measure(util::deskprobe(
            &config_path,
            &db,
            &[
                "send",
                "--target",
                &util::target_id(0),
                "--channel",
                "email",
                "--script",
                "withdrawal",
            ],
        ))
        .await
        .ok("deskprobe send");
        assert_eq!(m.stdout.trim().len(), 26, "a probe id: {}", m.stdout);
    }
    let took = started.elapsed();
    let delivered = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", n + cli_n)
        .await;
    assert_eq!(delivered.len(), n + cli_n);
    table.row(
        "5 send",
        &format!("`deskprobe send` CLI, process + connection per probe ({cli_n} probes)"),
        format!(
            "{} ({:.1} ms/probe)",
            per_s(cli_n as f64, took),
            took.as_secs_f64() * 1000.0 / cli_n as f64
        ),
        "",
    );
}
