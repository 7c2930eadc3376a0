//! Benchmark 1, reply detection latency, side by side with Debian's `check_imap_receive`
//! (monitoring-plugins-contrib), against the same Dovecot in the same run:
//!
//! - the exchange's replies (answers to real probes, In-Reply-To their Message-ID) are
//!   APPENDed to the shopper's INBOX at random moments (gaps uniform in 0.6–1.4 s, so that
//!   Dovecot's 500 ms push of one reply is not shared with the next);
//! - `deskprobe run` (the real daemon, IDLE watcher) stores them; a read-only poller on the
//!   SQLite file (every 1 ms) timestamps when each reply's row appears;
//! - an observer IMAP connection of the bench, in IDLE on the same INBOX, timestamps Dovecot's
//!   push (`* N EXISTS`), so the latency splits into Dovecot's push delay and deskprobe's part
//!   after the push;
//! - for every reply, one `check_imap_receive` per interval (5 s, its default, and 1 s) is
//!   started 1 s + U(0, interval) before the APPEND (after its Perl start-up, at a random
//!   polling phase), searching the reply's unique subject marker; its detection time is its
//!   exit.
//!
//! Latency is measured from the APPEND's tagged OK (the message is stored then). The
//! recorded reply time is compared with the INTERNALDATE Dovecot reports for each message:
//! deskprobe stores INTERNALDATE as `occurred_at`; `check_imap_receive` records no reply time,
//! only that it found the message, so its best reply time is its detection time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;
use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use deskprobe_sandbox::MailServers;

use crate::send::send_pooled;
use crate::util::{self, Table, p50_90_99, percentile, secs};

/// Where Debian installs the peer.
pub const CHECK_IMAP_RECEIVE: &str = "/usr/lib/nagios/plugins/check_imap_receive";

/// Wall-clock milliseconds of an instant, anchored once.
struct Clock {
    instant: Instant,
    wall_ms: i64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            instant: Instant::now(),
            wall_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis() as i64,
        }
    }

    fn wall(&self, at: Instant) -> i64 {
        let ms = |d: Duration| d.as_millis() as i64;
        if at >= self.instant {
            self.wall_ms + ms(at - self.instant)
        } else {
            self.wall_ms - ms(self.instant - at)
        }
    }
}

/// One reply's timeline.
#[derive(Debug, Default, Clone)]
struct Reply {
    appended: Option<Instant>,
    pushed: Option<Instant>,
    stored: Option<Instant>,
    /// Exit of check_imap_receive, per interval.
    peer: HashMap<u64, Instant>,
}

fn marker(run: &str, i: usize) -> String {
    format!("bench{run}r{i}")
}

/// Parses `benchRUNrN` out of a subject.
fn reply_index(run: &str, subject: &str) -> Option<usize> {
    let prefix = format!("bench{run}r");
    let at = subject.find(&prefix)? + prefix.len();
    let digits: String = subject[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The observer: a plain IMAP connection in IDLE on INBOX that timestamps every `* N EXISTS`.
async fn observe(port: u16, pushes: Arc<Mutex<Vec<(u32, Instant)>>>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("observer connect");
    tcp.set_nodelay(true).ok();
    let (r, mut w) = tcp.into_split();
    let mut lines = BufReader::new(r).lines();
    let expect = |tag: &'static str| {
        let tag = tag.to_owned();
        move |line: &str| line.starts_with(&tag)
    };
    lines.next_line().await.expect("greeting");
    for (cmd, done) in [
        (
            format!(
                "a1 LOGIN {} {}\r\n",
                MailServers::USER,
                MailServers::PASSWORD
            ),
            expect("a1 "),
        ),
        ("a2 EXAMINE INBOX\r\n".to_owned(), expect("a2 ")),
    ] {
        w.write_all(cmd.as_bytes()).await.expect("observer write");
        loop {
            let line = lines
                .next_line()
                .await
                .expect("observer read")
                .expect("open");
            if done(&line) {
                assert!(line.contains(" OK"), "observer: {line}");
                break;
            }
        }
    }
    w.write_all(b"a3 IDLE\r\n").await.expect("observer IDLE");
    while let Ok(Some(line)) = lines.next_line().await {
        let now = Instant::now();
        if let Some(n) = line
            .strip_prefix("* ")
            .and_then(|l| l.strip_suffix(" EXISTS"))
            .and_then(|n| n.parse::<u32>().ok())
        {
            pushes.lock().unwrap().push((n, now));
        }
    }
}

/// Polls the database every millisecond for new message rows: (subject, seen at, matched).
fn poll_rows(
    db: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<(String, Instant, bool)> {
    let conn = util::read_db(&db);
    let mut stmt = conn
        .prepare(
            "SELECT m.id, COALESCE(m.subject, ''), \
             EXISTS (SELECT 1 FROM events e WHERE e.message = m.id) \
             FROM messages m WHERE m.id > ?1 ORDER BY m.id",
        )
        .expect("prepare poll");
    let mut last = 0i64;
    let mut out = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let rows: Vec<(i64, String, bool)> = stmt
            .query_map([last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .unwrap_or_default();
        let now = Instant::now();
        for (id, subject, matched) in rows {
            last = last.max(id);
            out.push((subject, now, matched));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    out
}

/// Starts one check_imap_receive for `marker` at `at`; returns its exit instant.
async fn peer(port: u16, marker: String, interval: u64, at: tokio::time::Instant) -> Instant {
    tokio::time::sleep_until(at).await;
    let mut cmd = std::process::Command::new(CHECK_IMAP_RECEIVE);
    util::die_with_parent(&mut cmd);
    let out = tokio::process::Command::from(cmd)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-U",
            MailServers::USER,
            "-P",
            MailServers::PASSWORD,
            "-m",
            "INBOX",
        ])
        .args(["-s", "SUBJECT", "-s", &marker])
        .args(["--imap-check-interval", &interval.to_string()])
        .args(["--imap-retries", "1000", "--nodelete", "--peek"])
        .args(["-w", "600", "-c", "1200", "-t", "600"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run check_imap_receive (install monitoring-plugins-contrib)");
    let exited = Instant::now();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("IMAP RECEIVE OK") && stdout.contains("1 found"),
        "check_imap_receive for {marker}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exited
}

/// The reply an exchange agent writes to a probe.
fn reply_text(i: usize, marker: &str, probe_message_id: &str) -> Vec<u8> {
    format!(
        "From: Support Agent <agent@exchange.example>\r\n\
         To: Lin Wei <probe@localhost>\r\n\
         Subject: Re: Withdrawal still pending [{marker}]\r\n\
         Message-ID: <reply-{i}-{marker}@exchange.example>\r\n\
         In-Reply-To: <{probe_message_id}>\r\n\
         References: <{probe_message_id}>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello Lin,\r\n\r\nyour withdrawal was sent, TXID 0x{i:064x}.\r\n\r\nKind regards,\r\nSupport\r\n"
    )
    .into_bytes()
}

pub async fn run(table: &mut Table, quick: bool, replies: usize, history: usize) {
    let intervals: &[u64] = if quick { &[1] } else { &[5, 1] };
    let run_id: String = {
        let mut rng = rand::rng();
        (0..4)
            .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
            .collect()
    };
    eprintln!(
        "detect: {replies} replies; deskprobe run (IDLE) vs check_imap_receive at {intervals:?} s"
    );
    let servers = MailServers::start().await;
    let text = util::config_text(&servers, 1, &["INBOX"], "");
    let config_path = util::write_config(servers.dir(), &text);
    let config = deskprobe::config::load(&config_path).expect("bench config");
    let db = servers.dir().join("detect.db");
    let n_probes = replies.clamp(1, 20);
    let (probes, _) = send_pooled(&config, &db, &util::target_id(0), n_probes).await;
    // A store with history: the daemon's matcher knows every probe, and must not pay for
    // them on each reply.
    let started = Instant::now();
    crate::sync::create_probes(&db, &util::target_id(0), history);
    eprintln!(
        "  {history} earlier probes stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let daemon = util::Daemon::start(&config_path, &db);
    let sources = vec!["imap:shopper/INBOX".to_owned()];
    util::eventually(30, "the daemon's watcher", || {
        util::watchers_up(&db, &sources).then_some(())
    })
    .await;

    let pushes = Arc::new(Mutex::new(Vec::new()));
    let observer = tokio::spawn(observe(servers.imap_port(), Arc::clone(&pushes)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || poll_rows(db, stop))
    };
    // Let the observer reach IDLE.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The timeline: APPEND times, and each peer's start before its reply.
    let lead = Duration::from_millis(1000);
    let max_interval = intervals.iter().copied().max().unwrap_or(1);
    let start = tokio::time::Instant::now() + lead + Duration::from_secs(max_interval);
    let mut at = start;
    let mut schedule = Vec::with_capacity(replies);
    let mut peers = tokio::task::JoinSet::new();
    {
        let mut rng = rand::rng();
        for i in 0..replies {
            schedule.push(at);
            for &interval in intervals {
                let before = lead + Duration::from_secs_f64(rng.random_range(0.0..interval as f64));
                let port = servers.imap_port();
                let m = marker(&run_id, i);
                peers.spawn(
                    async move { (i, interval, peer(port, m, interval, at - before).await) },
                );
            }
            at += Duration::from_secs_f64(rng.random_range(0.6..1.4));
        }
    }

    let mut timeline = vec![Reply::default(); replies];
    let mut agent = servers.imap(MailServers::USER).await;
    for (i, at) in schedule.iter().enumerate() {
        tokio::time::sleep_until(*at).await;
        let probe = &probes[i % probes.len()];
        let raw = reply_text(i, &marker(&run_id, i), &probe.message_id);
        agent
            .append("INBOX", None, None, &raw)
            .await
            .expect("APPEND reply");
        timeline[i].appended = Some(Instant::now());
    }
    agent.logout().await.ok();

    while let Some(r) = peers.join_next().await {
        let (i, interval, exited) = r.expect("peer task");
        timeline[i].peer.insert(interval, exited);
    }
    util::eventually(30, "every reply stored by deskprobe", || {
        let conn = util::read_db(&db);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap_or(0);
        (n as usize >= replies).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rows = poller.join().expect("poller");
    observer.abort();
    // SIGTERM: the daemon persists its cursors and exits.
    daemon.stop().await;

    let mut matched = 0;
    for (subject, seen, m) in &rows {
        if let Some(i) = reply_index(&run_id, subject) {
            timeline[i].stored.get_or_insert(*seen);
            matched += usize::from(*m);
        }
    }
    for (n, at) in pushes.lock().unwrap().iter() {
        if let Some(r) = (*n as usize)
            .checked_sub(1)
            .and_then(|i| timeline.get_mut(i))
        {
            r.pushed.get_or_insert(*at);
        }
    }

    // Recorded reply time vs INTERNALDATE, per message (by UID).
    let internal = internal_dates(&servers).await;
    let conn = util::read_db(&db);
    let recorded: Vec<(String, i64, i64, Option<i64>)> = conn
        .prepare(
            "SELECT COALESCE(m.subject, ''), m.uid, m.internal_date, e.occurred_at \
             FROM messages m LEFT JOIN events e ON e.message = m.id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("read recorded times");
    let clock = Clock::new();

    // Every reply must have been stored exactly once, matched, and seen by every peer.
    assert_eq!(rows.len(), replies, "one message row per reply");
    assert_eq!(matched, replies, "every reply matched its probe");
    let mut ours = Vec::new();
    let mut push_delay = Vec::new();
    let mut after_push = Vec::new();
    let mut peer_lat: HashMap<u64, Vec<f64>> = HashMap::new();
    let mut peer_err: HashMap<u64, Vec<f64>> = HashMap::new();
    let mut internaldate_of: HashMap<usize, i64> = HashMap::new();
    for (subject, uid, _, _) in &recorded {
        if let (Some(i), Some(ms)) = (reply_index(&run_id, subject), internal.get(&(*uid as u32))) {
            internaldate_of.insert(i, *ms);
        }
    }
    for (i, r) in timeline.iter().enumerate() {
        let appended = r.appended.expect("appended");
        let stored = r.stored.unwrap_or_else(|| panic!("reply {i} never stored"));
        ours.push(stored.duration_since(appended).as_secs_f64());
        if let Some(p) = r.pushed {
            push_delay.push(p.duration_since(appended).as_secs_f64());
            after_push.push(stored.saturating_duration_since(p).as_secs_f64());
        }
        for &interval in intervals {
            let exited = r.peer[&interval];
            peer_lat
                .entry(interval)
                .or_default()
                .push(exited.saturating_duration_since(appended).as_secs_f64());
            let id = internaldate_of[&i];
            peer_err
                .entry(interval)
                .or_default()
                .push((clock.wall(exited) - id) as f64 / 1000.0);
        }
    }
    let our_err: Vec<f64> = recorded
        .iter()
        .map(|(_, uid, internal_date, occurred)| {
            let truth = internal[&(*uid as u32)];
            assert_eq!(
                *internal_date, truth,
                "messages.internal_date = INTERNALDATE"
            );
            (occurred.expect("an event per reply") - truth) as f64 / 1000.0
        })
        .collect();

    let bench = "1 detect";
    let ours_p50 = percentile(&ours, 0.5);
    table.row(
        bench,
        &format!(
            "deskprobe run (IDLE), {} probes stored: APPEND → row in SQLite, p50 / p90 / p99 ({replies} replies)",
            history + n_probes
        ),
        p50_90_99(&ours),
        "p50 ≤ push delay + 0.1 s",
    );
    table.row(
        bench,
        "of which Dovecot's push delay (APPEND → `* EXISTS` at an IDLE observer)",
        p50_90_99(&push_delay),
        "0.5 s (Dovecot's constant)",
    );
    if push_delay.len() < replies {
        eprintln!(
            "  note: {} of {replies} replies shared a push with the previous one",
            replies - push_delay.len()
        );
    }
    table.row(
        bench,
        "of which deskprobe after the push (EXISTS → row in SQLite)",
        p50_90_99(&after_push),
        "≤ 0.1 s",
    );
    for &interval in intervals {
        let lat = &peer_lat[&interval];
        table.row(
            bench,
            &format!("check_imap_receive --imap-check-interval {interval}: APPEND → exit, p50 / p90 / p99"),
            p50_90_99(lat),
            "",
        );
        table.row(
            bench,
            &format!("ratio check_imap_receive ({interval} s) p50 / deskprobe p50"),
            format!("{:.1}×", percentile(lat, 0.5) / ours_p50),
            if interval == 5 { "≥ 4×" } else { "" },
        );
    }
    let max_abs = |v: &[f64]| v.iter().map(|x| x.abs()).fold(0.0, f64::max);
    table.row(
        bench,
        "deskprobe recorded reply time − INTERNALDATE (max |error|)",
        secs(max_abs(&our_err)),
        "0 s",
    );
    for &interval in intervals {
        let err = &peer_err[&interval];
        table.row(
            bench,
            &format!("check_imap_receive ({interval} s) detection time − INTERNALDATE, p50 / max"),
            format!("{} / {}", secs(percentile(err, 0.5)), secs(max_abs(err))),
            "",
        );
    }
}

/// UID → INTERNALDATE (ms) of every message in the shopper's INBOX.
async fn internal_dates(servers: &MailServers) -> HashMap<u32, i64> {
    let mut session = servers.imap(MailServers::USER).await;
    session.examine("INBOX").await.expect("EXAMINE INBOX");
    let fetched: Vec<_> = session
        .uid_fetch("1:*", "(UID INTERNALDATE)")
        .await
        .expect("UID FETCH")
        .try_collect()
        .await
        .expect("UID FETCH responses");
    session.logout().await.ok();
    fetched
        .iter()
        .filter_map(|f| Some((f.uid?, f.internal_date()?.timestamp_millis())))
        .collect()
}

/// Installed? (The bench script installs it; a run without it fails loudly.)
pub fn peer_installed() -> bool {
    Path::new(CHECK_IMAP_RECEIVE).exists()
}
