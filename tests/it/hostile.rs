//! Malformed and hostile mail is stored and classified without a panic, and a large folder is
//! collected completely.

use deskprobe::model::EventKind;
use deskprobe::store::Store;

use crate::deskprobe::{Transport, db_path, run_ok, send_probe, write_config};
use crate::support::MailServers;

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_hostile_mail_is_kept_without_panics() {
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    servers.create_folder(MailServers::USER, "Junk").await;
    let db = db_path(&servers);
    let probe_id = send_probe(&config, &db).await;
    let token = Store::open(&db).unwrap().probe(&probe_id).unwrap().token;

    let mut big = format!("From: a@localhost\r\nSubject: big {token}\r\n\r\n").into_bytes();
    big.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    big.extend(b"\r\n");
    let hostile: Vec<Vec<u8>> = vec![
        // Broken MIME: a multipart whose boundary never appears, and an unterminated part.
        format!(
            "From: a@localhost\r\nSubject: broken {token}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n--other\r\n\
             Content-Type: text/plain\r\n\r\nhalf a part"
        )
        .into_bytes(),
        // A 5 MB body.
        big,
        // NUL bytes in headers and body.
        format!("From: a@localhost\r\nSubject: nul\0 {token}\r\n\r\nbody\0with\0nuls\r\n").into_bytes(),
        // A charset nobody knows (with bytes that are not UTF-8), and one that lies.
        [
            format!(
                "From: a@localhost\r\nSubject: =?x-unknown?B?////?= {token}\r\n\
                 Content-Type: text/plain; charset=x-does-not-exist\r\n\r\n"
            )
            .into_bytes(),
            b"\xff\xfe\xfd\r\n".to_vec(),
        ]
        .concat(),
        format!(
            "From: a@localhost\r\nSubject: liar {token}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
        )
        .into_bytes(),
        // No header/body separator at all, no From.
        format!("Subject: {token}").into_bytes(),
    ];
    let u = MailServers::USER;
    for raw in &hostile {
        servers
            .append(u, "INBOX", raw, "02-Nov-2026 05:20:31 +0000")
            .await;
    }
    // Raw bytes that are not UTF-8 in the headers as well.
    let mut latin1 = b"From: a@localhost\r\nSubject: caf\xe9 ".to_vec();
    latin1.extend(token.as_bytes());
    latin1.extend(b"\r\n\r\n\xe9t\xe9\r\n");
    servers
        .append(u, "INBOX", &latin1, "02-Nov-2026 05:20:32 +0000")
        .await;

    let out = run_ok(&config, &db, &["collect"], 0).await;
    assert!(
        out.contains("shopper/INBOX: fetched 7 stored 7 matched 7"),
        "{out}"
    );
    // Dovecot may normalise what it was given (NUL bytes, a missing final CRLF): the evidence
    // must be exactly what the server holds.
    let held = servers.wait_for_messages(u, "INBOX", 7).await;
    let store = Store::open(&db).unwrap();
    let events = store.events(&probe_id).unwrap();
    let replies: Vec<_> = events
        .iter()
        .filter(|e| e.kind != EventKind::Accepted)
        .collect();
    assert_eq!(replies.len(), 7);
    for e in &replies {
        assert_eq!(e.kind, EventKind::Human, "{e:?}");
        let raw = store
            .raw(e.raw_sha256.as_deref().unwrap())
            .unwrap()
            .unwrap();
        assert!(
            held.contains(&raw),
            "raw evidence differs from what the server holds"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_messages_are_collected_completely() {
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    servers.create_folder(MailServers::USER, "Junk").await;
    let db = db_path(&servers);
    let probe_id = send_probe(&config, &db).await;
    let token = Store::open(&db).unwrap().probe(&probe_id).unwrap().token;
    let mut session = servers.imap(MailServers::USER).await;
    for i in 0..1000 {
        // Every tenth message is an answer carrying the probe token.
        let subject = if i % 10 == 0 {
            format!("Re: case {token} ({i})")
        } else {
            format!("newsletter {i}")
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
    let started = std::time::Instant::now();
    let out = run_ok(&config, &db, &["collect"], 0).await;
    // A measurement for the issue notes, not an assertion.
    eprintln!(
        "collect of 1000 messages took {:?} (whole process)",
        started.elapsed()
    );
    assert!(
        out.contains("shopper/INBOX: fetched 1000 stored 1000 matched 100"),
        "{out}"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.count_messages().unwrap(), 1000);
    assert_eq!(store.unmatched().unwrap().len(), 900);
}
