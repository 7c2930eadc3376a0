//! The daemon and `tick` against real servers: crash safety (kill -9 mid-send and
//! mid-collect), outages (IMAP restarted while idling, SMTP down), the single-instance lock,
//! and a clean SIGTERM.

use std::time::Duration;

use deskprobe::model::{EventKind, ProbeStatus};
use deskprobe::store::Store;

use crate::deskprobe::{
    EVERY_2S_ONE_PER_DAY, Transport, db_path, eventually, extend_config, header, run, run_ok,
    send_probe, spawn, write_config,
};
use crate::support::MailServers;

fn store(db: &std::path::Path) -> Store {
    Store::open(db).unwrap()
}

/// Sends SIGTERM to a child process.
fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("child still running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// The stderr of a finished child, for failure messages.
async fn finish(child: tokio::process::Child, secs: u64) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(secs), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("deskprobe did not exit within {secs} s"))
        .expect("wait for deskprobe")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_after_the_server_took_the_probe_never_resends_and_replies_still_match() {
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(&config, EVERY_2S_ONE_PER_DAY);
    let db = db_path(&servers);

    // The relay delivers the probe but holds back its 250: the daemon cannot know.
    servers.hold_smtp_replies(true);
    let mut daemon = spawn(&config, &db, &["run"]);
    let delivered = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    servers.hold_smtp_replies(false);
    let probes = store(&db)
        .probes_with_status(&[ProbeStatus::Sending])
        .unwrap();
    assert_eq!(
        probes.len(),
        1,
        "the probe row was committed before the send"
    );
    let probe_id = probes[0].id.clone();

    // Restart: the probe becomes sent_unconfirmed and is never sent again.
    let daemon = spawn(&config, &db, &["run"]);
    eventually(10, "the probe to become sent_unconfirmed", || {
        (store(&db).probe(&probe_id).unwrap().status == ProbeStatus::SentUnconfirmed).then_some(())
    })
    .await;

    // A second instance on the same database is refused and told who holds it.
    let out = run(&config, &db, &["tick"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another deskprobe"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", daemon.id().unwrap())),
        "{stderr}"
    );
    assert!(stderr.contains("deskprobe run"), "{stderr}");

    // Its reply still matches by the stored Message-ID, seen by the IDLE watcher.
    let mid = header(&delivered[0], "Message-ID").unwrap();
    let reply = format!(
        "From: agent@localhost\r\nTo: probe@localhost\r\nSubject: Re: pending\r\n\
         In-Reply-To: {mid}\r\n\r\nDone, TXID 0x1.\r\n"
    );
    servers
        .append(
            MailServers::USER,
            "INBOX",
            reply.as_bytes(),
            "02-Nov-2026 05:20:31 +0000",
        )
        .await;
    eventually(15, "the reply to be stored", || {
        store(&db)
            .events(&probe_id)
            .unwrap()
            .iter()
            .any(|e| e.kind == EventKind::Human)
            .then_some(())
    })
    .await;

    // Several more slots pass after the restart: each is skipped (cap), none is sent.
    eventually(15, "three more handled slots", || {
        (store(&db).handled_slots(0).unwrap().len() >= 4).then_some(())
    })
    .await;
    let at_support = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;
    assert_eq!(at_support.len(), 1, "the probe was sent twice");
    assert_eq!(store(&db).probe_times(0).unwrap().len(), 1);

    // SIGTERM: a clean exit within a few seconds, the cursor persisted.
    sigterm(&daemon);
    let out = finish(daemon, 8).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cursor = store(&db).cursor("shopper", "INBOX").unwrap().unwrap();
    assert_eq!(cursor.last_uid, 1);
    // The lock went with the process.
    assert!(deskprobe::daemon::lock::holder(&db).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_collect_then_restart_stores_every_reply_exactly_once() {
    const TOTAL: usize = 5000;
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    servers.create_folder(MailServers::USER, "Junk").await;
    let db = db_path(&servers);
    let probe_id = send_probe(&config, &db).await;
    let token = store(&db).probe(&probe_id).unwrap().token;
    let mut session = servers.imap(MailServers::USER).await;
    for i in 0..TOTAL {
        let subject = if i % 10 == 0 {
            format!("Re: case {token} #{i}")
        } else {
            format!("other mail #{i}")
        };
        let raw = format!("From: n@localhost\r\nSubject: {subject}\r\n\r\nmessage {i}\r\n");
        session
            .append(
                "INBOX",
                None,
                Some("\"02-Nov-2026 05:20:31 +0000\""),
                raw.as_bytes(),
            )
            .await
            .unwrap();
    }
    session.logout().await.ok();

    let mut collect = spawn(&config, &db, &["collect"]);
    // Kill as soon as the first batch is committed, with most of the folder still to go.
    let stored_before_kill = eventually(30, "a first stored batch", || {
        let n = store(&db).count_messages().unwrap();
        (n > 0).then_some(n)
    })
    .await;
    collect.start_kill().unwrap();
    collect.wait().await.unwrap();
    let after_kill = store(&db).count_messages().unwrap() as usize;
    assert!(
        after_kill < TOTAL,
        "collect finished before the kill ({stored_before_kill} then {after_kill}); nothing was tested"
    );

    let out = run_ok(&config, &db, &["collect"], 0).await;
    assert!(out.contains("duplicates 0"), "{out}");
    let s = store(&db);
    assert_eq!(s.count_messages().unwrap() as usize, TOTAL);
    let replies = s
        .events(&probe_id)
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::Human)
        .count();
    assert_eq!(replies, TOTAL / 10);
    assert_eq!(s.unmatched().unwrap().len(), TOTAL - TOTAL / 10);
    assert_eq!(
        s.cursor("shopper", "INBOX").unwrap().unwrap().last_uid as usize,
        TOTAL
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_restarted_while_idling_the_daemon_reconnects_and_stores_what_arrived() {
    let mut servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    servers.create_folder(MailServers::USER, "Junk").await;
    let db = db_path(&servers);
    let probe_id = send_probe(&config, &db).await;
    let token = store(&db).probe(&probe_id).unwrap().token;
    let daemon = spawn(&config, &db, &["run"]);
    let folders_ok = |db: &std::path::Path| {
        store(db)
            .collector_runs()
            .unwrap()
            .iter()
            .filter_map(|r| r.last_ok_at)
            .collect::<Vec<_>>()
    };
    eventually(10, "both watchers' first pass", || {
        (folders_ok(&db).len() == 2).then_some(())
    })
    .await;

    servers.stop_imap();
    // Mail arrives while IMAP is down: the delivery agent drops it into the Maildir.
    let maildir = servers.dir().join("home/probe/Maildir/new");
    let owner = std::fs::metadata(servers.dir().join("home/probe")).unwrap();
    for i in 0..2 {
        let path = maildir.join(format!("1800000000.outage{i}.localhost"));
        std::fs::write(
            &path,
            format!(
                "From: agent@localhost\r\nSubject: Re: {token} outage {i}\r\n\r\nAnswer {i}\r\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    servers.start_imap().await;

    eventually(30, "the outage's replies", || {
        let n = store(&db)
            .events(&probe_id)
            .unwrap()
            .iter()
            .filter(|e| e.kind == EventKind::Human)
            .count();
        (n == 2).then_some(())
    })
    .await;
    sigterm(&daemon);
    let out = finish(daemon, 8).await;
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("watcher lost its connection"), "{stderr}");
    assert_eq!(store(&db).count_messages().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_down_is_send_failed_then_retried_per_policy_and_ticks_are_idempotent() {
    let mut servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    servers.create_folder(MailServers::USER, "Junk").await;
    extend_config(&config, EVERY_2S_ONE_PER_DAY);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "send-timeout = \"10s\"",
        "send-timeout = \"10s\"\nretry-after = \"0s\"\nsend-attempts = 2",
    );
    std::fs::write(&config, text).unwrap();
    let db = db_path(&servers);
    // Let a first slot pass so the first tick has something due (an empty DB plans from now).
    run_ok(&config, &db, &["tick"], 0).await;
    eventually(5, "a slot to fall due", || {
        let next = store(&db).state("last_planned_at").unwrap()?;
        (deskprobe::model::now_millis() > next + 2_100).then_some(())
    })
    .await;

    servers.stop_smtp();
    let out = run(&config, &db, &["tick"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = store(&db)
        .probes_with_status(&[ProbeStatus::SendFailed])
        .unwrap();
    assert_eq!(failed.len(), 1);
    let error = failed[0].send_error.as_deref().unwrap();
    assert!(error.contains("127.0.0.1"), "{error}");

    servers.start_smtp().await;
    let out = run_ok(&config, &db, &["tick"], 0).await;
    assert!(out.contains("sent 1 failed 0"), "{out}");
    let s = store(&db);
    assert_eq!(s.probes_with_status(&[ProbeStatus::Sent]).unwrap().len(), 1);
    assert_eq!(
        s.probes_with_status(&[ProbeStatus::SendFailed])
            .unwrap()
            .len(),
        1
    );
    servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;

    // Idempotent: ticks right after send nothing (the day cap is reached, the retry is done).
    let out = run_ok(&config, &db, &["tick"], 0).await;
    assert!(out.contains("sent 0 failed 0"), "{out}");
    let at_support = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;
    assert_eq!(at_support.len(), 1);
}
