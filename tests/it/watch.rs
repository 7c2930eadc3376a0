//! Folder watchers (IMAP IDLE) in-process against the real Dovecot: a reply APPENDed while the
//! watcher idles is stored without any explicit collect, and a stop request ends the watcher
//! cleanly with its cursor persisted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskprobe::collect::{FolderReport, WatchOptions, watch_folder};
use deskprobe::model::EventKind;
use deskprobe::store::{Store, StoreHandle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::deskprobe::{Transport, db_path, header, send_probe, write_config};
use crate::support::MailServers;

/// The next report of the watcher, or a panic after 15 s (the server pushes within 0.5 s).
async fn next(rx: &mut mpsc::UnboundedReceiver<FolderReport>) -> FolderReport {
    tokio::time::timeout(Duration::from_secs(15), rx.recv())
        .await
        .expect("watcher reported nothing within 15 s")
        .expect("watcher ended")
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_watcher_stores_replies_as_they_arrive_and_stops_cleanly() {
    let servers = MailServers::start().await;
    let config_path = write_config(&servers, Transport::Plaintext);
    let db = db_path(&servers);
    let probe_id = send_probe(&config_path, &db).await;
    let delivered = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;
    let mid = header(&delivered[0], "Message-ID").unwrap();

    let config = Arc::new(deskprobe::config::load(&config_path).unwrap());
    let store = StoreHandle::new(Store::open(&db).unwrap());
    let stop = CancellationToken::new();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(watch_folder(
        Arc::clone(&config),
        "shopper".into(),
        "INBOX".into(),
        store.clone(),
        stop.clone(),
        Some(tx),
        WatchOptions::default(),
    ));
    let first = next(&mut rx).await;
    assert_eq!(first.fetched, 0);

    let mut latencies = Vec::new();
    for i in 0..3 {
        let reply = format!(
            "From: agent@localhost\r\nTo: probe@localhost\r\nSubject: Re: {i}\r\n\
             In-Reply-To: {mid}\r\n\r\nAnswer {i}: TXID 0x{i}.\r\n"
        );
        let appended = Instant::now();
        servers
            .append(
                MailServers::USER,
                "INBOX",
                reply.as_bytes(),
                "02-Nov-2026 05:20:31 +0000",
            )
            .await;
        let report = next(&mut rx).await;
        latencies.push(appended.elapsed());
        assert_eq!(
            (report.fetched, report.outcome.matched),
            (1, 1),
            "{report:?}"
        );
    }
    eprintln!("append → stored via IDLE: {latencies:?} (Dovecot delays pushes by 0.5 s)");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("watcher did not stop within 5 s")
        .unwrap();
    let store = Store::open(&db).unwrap();
    let humans = store
        .events(&probe_id)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Human)
        .count();
    assert_eq!(humans, 3);
    let cursor = store.cursor("shopper", "INBOX").unwrap().unwrap();
    assert_eq!(cursor.last_uid, 3);
}
