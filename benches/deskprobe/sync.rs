//! Benchmark 2, first sync of a large folder: N messages written straight into the shopper's
//! Maildir (1 in 100 answers a probe by In-Reply-To, 1 in 100 quotes a probe token in its
//! subject, the rest is unrelated mail), Dovecot indexes them (timed apart), then the first
//! `deskprobe collect` (time, messages/s, peak RSS) and the next one after 10 new messages
//! (it must cost in proportion to the new messages, not the folder).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;

use deskprobe::model::{ChannelKind, Urgency, now_millis};
use deskprobe::store::{NewProbe, Store};
use deskprobe_sandbox::MailServers;

use crate::util::{self, Table, mb, per_s, secs};

/// Probes committed straight into the store (no SMTP: the sync benchmark is about reading).
pub fn create_probes(db: &Path, target: &str, n: usize) -> Vec<(String, String)> {
    let mut store = Store::open(db).expect("open bench store");
    (0..n)
        .map(|i| {
            let id = ulid::Ulid::new().to_string();
            let token = deskprobe::matching::new_token();
            let message_id = deskprobe::send::message_id(&id, &token, "probe@localhost");
            let row = NewProbe {
                id: id.clone(),
                target: target.to_owned(),
                channel: ChannelKind::Email,
                script: "withdrawal".into(),
                persona: "lin".into(),
                language: "en".into(),
                urgency: Urgency::Normal,
                token: token.clone(),
                message_id: Some(message_id.clone()),
                sender: Some(deskprobe::send::subaddress("probe@localhost", &token)),
                recipient: Some("support@localhost".into()),
                subject: Some(format!("Withdrawal still pending ({i})")),
                created_at: now_millis() - 40 * 86_400_000,
                vantage: "bench".into(),
                slot: None,
                sending_owner: None,
            };
            store.insert_sending_probe(&row, None).expect("probe");
            store
                .mark_sent(&id, row.created_at + 500, "smtp:bench")
                .expect("sent");
            (message_id, token)
        })
        .collect()
}

/// Message `i` of the folder and whether it answers a probe.
fn message(i: usize, probes: &[(String, String)]) -> (Vec<u8>, bool) {
    let (reply_to, token_in_subject) = match i % 100 {
        7 => (Some(&probes[i / 100 % probes.len()].0), None),
        57 => (None, Some(&probes[i / 100 % probes.len()].1)),
        _ => (None, None),
    };
    let subject = match (reply_to, token_in_subject) {
        (Some(_), _) => format!("Re: Withdrawal still pending (message {i})"),
        (_, Some(token)) => format!("[Case {token}] We are looking into it (message {i})"),
        _ => format!("Weekly market digest #{i}: BTC, ETH and what moved"),
    };
    let threading = reply_to
        .map(|mid| format!("In-Reply-To: <{mid}>\r\nReferences: <{mid}>\r\n"))
        .unwrap_or_default();
    let mut body = String::with_capacity(1200);
    for line in 0..12 {
        body.push_str(&format!(
            "Line {line} of message {i}: prices, volumes and a few words of filler text.\r\n"
        ));
    }
    let raw = format!(
        "Return-Path: <news@exchange.example>\r\n\
         From: Exchange News <news@exchange.example>\r\n\
         To: Lin Wei <probe@localhost>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 02 Nov 2026 03:14:07 +0000\r\n\
         Message-ID: <bench-{i}@exchange.example>\r\n\
         {threading}MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}"
    );
    (
        raw.into_bytes(),
        reply_to.is_some() || token_in_subject.is_some(),
    )
}

/// Parses `shopper/INBOX: fetched F stored S matched M duplicates D`.
fn counts(stdout: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("shopper/INBOX:"))
        .unwrap_or_else(|| panic!("no INBOX line in collect output:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> usize {
        let i = words.iter().position(|x| *x == w).expect("field") + 1;
        words[i].parse().expect("number")
    };
    (after("fetched"), after("stored"), after("matched"))
}

pub async fn run(table: &mut Table, n: usize) {
    eprintln!("sync: first collect of a {n}-message folder, then 10 new messages");
    let servers = MailServers::start().await;
    let text = util::config_text(&servers, 1, &["INBOX"], "");
    let config_path = util::write_config(servers.dir(), &text);
    let db = servers.dir().join("sync.db");
    let probes = create_probes(&db, &util::target_id(0), (n / 100).max(1));

    let started = Instant::now();
    let mut expected = 0;
    let base = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let written = servers.write_maildir(
        MailServers::USER,
        "INBOX",
        (0..n).map(|i| {
            let (raw, matches) = message(i, &probes);
            expected += usize::from(matches);
            (raw, base + Duration::from_secs(i as u64 * 20))
        }),
    );
    let generated = started.elapsed();
    assert_eq!(written, n);

    // Dovecot indexes the new files at the first SELECT; warm its index and cache so that the
    // collect below measures deskprobe rather than Dovecot's one-off indexing.
    let started = Instant::now();
    let mut session = servers.imap(MailServers::USER).await;
    let mailbox = session.examine("INBOX").await.expect("EXAMINE");
    assert_eq!(mailbox.exists as usize, n, "Dovecot sees every message");
    let _: Vec<_> = session
        .fetch("1:*", "(UID INTERNALDATE RFC822.SIZE)")
        .await
        .expect("FETCH")
        .try_collect()
        .await
        .expect("FETCH responses");
    session.logout().await.ok();
    let indexed = started.elapsed();

    let first = util::measure(util::deskprobe(&config_path, &db, &["collect"]))
        .await
        .ok("deskprobe collect");
    let (fetched, stored, matched) = counts(&first.stdout);
    assert_eq!((fetched, stored), (n, n), "{}", first.stdout);
    assert_eq!(matched, expected, "matched replies: {}", first.stdout);

    for i in 0..10 {
        let (raw, _) = message(n + i, &probes);
        servers
            .append(
                MailServers::USER,
                "INBOX",
                &raw,
                "02-Nov-2026 05:20:31 +0000",
            )
            .await;
    }
    // Dovecot rescans the Maildir (every file name) when it changed: let the bench's own
    // session pay that, so the collect below measures deskprobe.
    let started = Instant::now();
    // (SELECT, not EXAMINE: a read-only session does not save the rescan in the index.)
    let mut session = servers.imap(MailServers::USER).await;
    session.select("INBOX").await.expect("SELECT");
    session.logout().await.ok();
    let rescan = started.elapsed();
    let next = util::measure(util::deskprobe(&config_path, &db, &["collect"]))
        .await
        .ok("deskprobe collect (10 new)");
    let (fetched, stored, _) = counts(&next.stdout);
    assert_eq!((fetched, stored), (10, 10), "{}", next.stdout);

    let bench = "2 sync";
    table.row(
        bench,
        &format!("generate {n} Maildir files / Dovecot indexes them (not deskprobe)"),
        format!(
            "{} / {}",
            secs(generated.as_secs_f64()),
            secs(indexed.as_secs_f64())
        ),
        "",
    );
    table.row(
        bench,
        &format!("first `deskprobe collect` of {n} messages ({expected} match probes): time"),
        secs(first.wall.as_secs_f64()),
        "",
    );
    table.row(
        bench,
        "first collect: messages/s",
        per_s(n as f64, first.wall),
        "≥ 5,000/s",
    );
    table.row(
        bench,
        "first collect: peak RSS",
        mb(first.peak_rss),
        "< 150 MB",
    );
    table.row(
        bench,
        "first collect: CPU (user + sys)",
        secs(first.cpu.as_secs_f64()),
        "",
    );
    table.row(
        bench,
        "next `deskprobe collect` with 10 new messages: time / CPU / peak RSS (Dovecot's Maildir rescan before it, not deskprobe)",
        format!(
            "{} / {} / {} ({})",
            secs(next.wall.as_secs_f64()),
            secs(next.cpu.as_secs_f64()),
            mb(next.peak_rss),
            secs(rescan.as_secs_f64())
        ),
        "∝ new messages",
    );
}
