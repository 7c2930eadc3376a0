//! The email path end to end against real servers: `deskprobe send` over SMTP, the exchange's
//! answers APPENDed to the shopper's IMAP folders with chosen INTERNALDATEs, `deskprobe
//! collect`, then the store is read back.

use deskprobe::model::{EventKind, MatchMethod, ProbeStatus};
use deskprobe::store::Store;

use crate::deskprobe::{Transport, db_path, header, run_ok, send_probe, write_config};
use crate::support::MailServers;

/// UTC milliseconds of an RFC 3339 instant.
fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// "你好，交易哈希（TXID）已发送" in GBK, as a support agent's mail client would send it.
fn gbk_reply(mid: &str) -> Vec<u8> {
    let (body, _, bad) = encoding_rs::GBK
        .encode("你好，您的提币已完成，交易哈希（TXID）已发送到您的邮箱。请查收。\r\n");
    assert!(!bad);
    let mut raw = format!(
        "From: =?GBK?B?v827p7f+zvE=?= <agent@localhost>\r\nTo: probe@localhost\r\n\
         Subject: =?GBK?B?u9i4tA==?=\r\nDate: Mon, 2 Nov 2026 12:00:00 +0800\r\n\
         Message-ID: <gbk-1@localhost>\r\nReferences: <{mid}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=gbk\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    use base64::Engine;
    raw.extend(
        base64::engine::general_purpose::STANDARD
            .encode(&body)
            .into_bytes(),
    );
    raw.extend(b"\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_replies_are_matched_classified_and_stored_once() {
    let mut servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    let db = db_path(&servers);
    run_ok(&config, &db, &["check"], 0).await;

    let probe_id = send_probe(&config, &db).await;
    let delivered = servers
        .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
        .await;
    let mid = header(&delivered[0], "Message-ID").unwrap();
    let mid = mid.trim_matches(|c| c == '<' || c == '>').to_owned();
    let probe = Store::open(&db).unwrap().probe(&probe_id).unwrap();
    assert_eq!(probe.status, ProbeStatus::Sent);
    assert_eq!(probe.message_id.as_deref(), Some(mid.as_str()));
    let token = probe.token.clone();
    // The sender carries the token as a subaddress; the body carries it too.
    assert_eq!(
        header(&delivered[0], "From").unwrap(),
        format!("\"Lin Wei\" <probe+{token}@localhost>")
    );
    assert!(String::from_utf8_lossy(&delivered[0]).contains(&token));

    // The exchange answers. Each message gets its own INTERNALDATE.
    let u = MailServers::USER;
    let auto_ack = format!(
        "From: KuCoin Support <support@localhost>\r\nTo: probe+{token}@localhost\r\n\
         Subject: [Request #4711] Re: Withdrawal still pending\r\nAuto-Submitted: auto-replied\r\n\
         Message-ID: <ack-1@localhost>\r\nIn-Reply-To: <{mid}>\r\n\r\n\
         We received your request and will answer soon.\r\n"
    );
    servers
        .append(
            u,
            "INBOX",
            auto_ack.as_bytes(),
            "02-Nov-2026 11:14:07 +0800",
        )
        .await;
    let human = format!(
        "From: Amy <amy@localhost>\r\nTo: probe@localhost\r\nSubject: Re: Withdrawal still pending\r\n\
         Message-ID: <human-1@localhost>\r\nIn-Reply-To: <{mid}>\r\nReferences: <{mid}>\r\n\
         Date: Mon, 2 Nov 2026 05:20:00 +0000\r\n\r\n\
         Hello, the withdrawal is complete. TXID 0xabc123 confirms it.\r\n\r\n\
         > Hello, my USDT withdrawal has been pending for 36 hours.\r\n"
    );
    servers
        .append(u, "INBOX", human.as_bytes(), "02-Nov-2026 05:20:31 +0000")
        .await;
    servers
        .append(u, "Junk", &gbk_reply(&mid), "02-Nov-2026 12:00:05 +0800")
        .await;
    let token_only = format!(
        "From: desk@localhost\r\nTo: someone@localhost\r\nSubject: About case {token}\r\n\r\n\
         Please send a screenshot.\r\n"
    );
    servers
        .append(
            u,
            "INBOX",
            token_only.as_bytes(),
            "03-Nov-2026 01:00:00 +0000",
        )
        .await;
    let subaddress = format!(
        "From: desk@localhost\r\nTo: probe+{token}@localhost\r\nSubject: Follow-up\r\n\r\n\
         Is everything fine now?\r\n"
    );
    servers
        .append(
            u,
            "INBOX",
            subaddress.as_bytes(),
            "03-Nov-2026 02:00:00 +0000",
        )
        .await;
    let ticket_ref = "From: desk@localhost\r\nTo: probe@localhost\r\n\
         Subject: [Request #4711] Your request was solved\r\n\r\nClosing this request.\r\n";
    servers
        .append(
            u,
            "INBOX",
            ticket_ref.as_bytes(),
            "03-Nov-2026 03:00:00 +0000",
        )
        .await;
    let dsn = format!(
        "From: MAILER-DAEMON@localhost\r\nTo: probe+{token}@localhost\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; localhost\r\n\r\n\
         Final-Recipient: rfc822; support@nowhere.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B--\r\n"
    );
    servers
        .append(u, "INBOX", dsn.as_bytes(), "02-Nov-2026 03:00:09 +0000")
        .await;
    let unrelated = "From: news@localhost\r\nTo: probe@localhost\r\nSubject: Weekly digest\r\n\r\n\
         Nothing to see.\r\n";
    servers
        .append(
            u,
            "INBOX",
            unrelated.as_bytes(),
            "04-Nov-2026 00:00:00 +0000",
        )
        .await;

    let out = run_ok(&config, &db, &["collect"], 0).await;
    assert!(
        out.contains("shopper/INBOX: fetched 7 stored 7 matched 6"),
        "{out}"
    );
    assert!(
        out.contains("shopper/Junk: fetched 1 stored 1 matched 1"),
        "{out}"
    );

    let store = Store::open(&db).unwrap();
    let events = store.events(&probe_id).unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.match_method, e.occurred_at))
        .collect();
    let expected = vec![
        (
            EventKind::Bounce,
            Some(MatchMethod::Subaddress),
            ms("2026-11-02T03:00:09Z"),
        ),
        (
            EventKind::AutoAck,
            Some(MatchMethod::Thread),
            ms("2026-11-02T03:14:07Z"),
        ),
        (
            EventKind::Human,
            Some(MatchMethod::Thread),
            ms("2026-11-02T04:00:05Z"),
        ),
        (
            EventKind::Human,
            Some(MatchMethod::Thread),
            ms("2026-11-02T05:20:31Z"),
        ),
        (
            EventKind::Human,
            Some(MatchMethod::Token),
            ms("2026-11-03T01:00:00Z"),
        ),
        (
            EventKind::Human,
            Some(MatchMethod::Subaddress),
            ms("2026-11-03T02:00:00Z"),
        ),
        (
            EventKind::Human,
            Some(MatchMethod::TicketRef),
            ms("2026-11-03T03:00:00Z"),
        ),
    ];
    // The `accepted` event of the send comes first (sent in real time, before the others are
    // dated in the past it sorts last here: find it separately).
    let accepted: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Accepted)
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(Some(accepted[0].occurred_at), probe.sent_at);
    let replies: Vec<_> = seen
        .into_iter()
        .filter(|(k, ..)| *k != EventKind::Accepted)
        .collect();
    assert_eq!(replies, expected);

    let ack = events
        .iter()
        .find(|e| e.kind == EventKind::AutoAck)
        .unwrap();
    assert!(
        ack.reasons.iter().any(|r| r.contains("Auto-Submitted")),
        "{:?}",
        ack.reasons
    );
    let human_en = events
        .iter()
        .find(|e| e.occurred_at == ms("2026-11-02T05:20:31Z"))
        .unwrap();
    assert_eq!(human_en.language.as_deref(), Some("en"));
    assert_eq!(human_en.facts_matched, Some(true));
    let mail = human_en.mail.as_ref().unwrap();
    assert_eq!(mail.date_header, Some(ms("2026-11-02T05:20:00Z")));
    assert_eq!(mail.from.as_deref(), Some("amy@localhost"));
    let human_zh = events
        .iter()
        .find(|e| e.occurred_at == ms("2026-11-02T04:00:05Z"))
        .unwrap();
    assert_eq!(human_zh.language.as_deref(), Some("zh"));
    assert_eq!(human_zh.facts_matched, Some(true));
    assert!(human_zh.source.starts_with("imap:shopper/Junk/"));
    let raw = store
        .raw(human_zh.raw_sha256.as_deref().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(raw, gbk_reply(&mid), "raw evidence is kept byte for byte");

    let unmatched = store.unmatched().unwrap();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].subject.as_deref(), Some("Weekly digest"));
    assert_eq!(unmatched[0].internal_date, ms("2026-11-04T00:00:00Z"));

    // Nothing was marked seen: BODY.PEEK and EXAMINE only.
    let mut session = servers.imap(u).await;
    session.examine("INBOX").await.unwrap();
    let seen_flags = session.uid_search("SEEN").await.unwrap();
    assert!(
        seen_flags.is_empty(),
        "messages were marked seen: {seen_flags:?}"
    );
    session.logout().await.ok();

    // A second collect stores nothing twice.
    let again = run_ok(&config, &db, &["collect"], 0).await;
    assert!(
        again.contains("shopper/INBOX: fetched 0 stored 0"),
        "{again}"
    );
    assert_eq!(Store::open(&db).unwrap().count_messages().unwrap(), 8);

    // UIDVALIDITY change: Junk is recreated, the old reply comes back with a new UID next to a
    // new one. Only the new one is stored.
    servers.recreate_folder(u, "Junk").await;
    servers
        .append(u, "Junk", &gbk_reply(&mid), "02-Nov-2026 12:00:05 +0800")
        .await;
    let late = format!(
        "From: desk@localhost\r\nTo: probe@localhost\r\nSubject: Re: Withdrawal still pending\r\n\
         In-Reply-To: <{mid}>\r\n\r\nAny news?\r\n"
    );
    servers
        .append(u, "Junk", late.as_bytes(), "05-Nov-2026 00:00:00 +0000")
        .await;
    let resync = run_ok(&config, &db, &["collect"], 0).await;
    assert!(
        resync.contains("shopper/Junk: fetched 2 stored 1 matched 1 duplicates 1 (resynced"),
        "{resync}"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.count_messages().unwrap(), 9);
    assert_eq!(store.events(&probe_id).unwrap().len(), 9);

    // Evidence as JSON: the probe and its events in the bundle shape.
    let json = run_ok(
        &config,
        &db,
        &["evidence", &probe_id, "--format", "json"],
        0,
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["probe"]["id"], probe_id.as_str());
    assert_eq!(doc["probe"]["status"], "sent");
    assert_eq!(doc["probe"]["urgency"], "urgent");
    assert_eq!(doc["events"].as_array().unwrap().len(), 9);
    let ack_json = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "auto_ack")
        .unwrap();
    assert_eq!(ack_json["occurred_at"], "2026-11-02T03:14:07.000Z");
    assert_eq!(ack_json["match"], "thread");
    let text = run_ok(&config, &db, &["evidence", &probe_id], 0).await;
    assert!(text.contains("auto_ack"), "{text}");
    servers.stop_smtp();
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_transports_send_and_collect() {
    for transport in [Transport::ImplicitTls, Transport::StartTls] {
        let servers = MailServers::start().await;
        let config = write_config(&servers, transport);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace(r#""Junk""#, r#""Missing""#)).unwrap();
        let db = db_path(&servers);
        let probe_id = send_probe(&config, &db).await;
        let delivered = servers
            .wait_for_messages(MailServers::SUPPORT, "INBOX", 1)
            .await;
        let mid = header(&delivered[0], "Message-ID").unwrap();
        let reply = format!(
            "From: agent@localhost\r\nTo: probe@localhost\r\nSubject: Re: x\r\nIn-Reply-To: {mid}\r\n\r\nTXID sent.\r\n"
        );
        servers
            .append(
                MailServers::USER,
                "INBOX",
                reply.as_bytes(),
                "02-Nov-2026 05:20:31 +0000",
            )
            .await;
        // Folder "Missing" does not exist: that folder is reported, INBOX is still read.
        let out = crate::deskprobe::run(&config, &db, &["collect"]).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("EXAMINE Missing"), "{stderr}");
        let status = run_ok(&config, &db, &["status"], 0).await;
        assert!(status.contains("last error"), "{status}");
        let events = Store::open(&db).unwrap().events(&probe_id).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == EventKind::Human && e.occurred_at == ms("2026-11-02T05:20:31Z")),
            "{events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_an_untrusted_certificate_is_refused() {
    let servers = MailServers::start().await;
    // No ca-file: the platform's roots do not know the test CA, so TLS must fail.
    let config = write_config(&servers, Transport::ImplicitTls);
    let text = std::fs::read_to_string(&config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("ca-file"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).unwrap();
    let db = db_path(&servers);
    let out = crate::deskprobe::run(&config, &db, &["collect"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS with IMAP server `localhost:"),
        "{stderr}"
    );
    // Sending fails too and is recorded as send_failed, not as a probe without reply.
    let out = crate::deskprobe::run(
        &config,
        &db,
        &[
            "send",
            "--target",
            "kucoin",
            "--channel",
            "email",
            "--script",
            "withdrawal",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let probe = Store::open(&db).unwrap().probe(&id).unwrap();
    assert_eq!(probe.status, ProbeStatus::SendFailed);
    assert!(probe.send_error.is_some());
}
