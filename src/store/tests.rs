use super::*;

fn probe(id: &str, token: &str, created_at: Millis) -> NewProbe {
    NewProbe {
        id: id.into(),
        target: "kucoin".into(),
        channel: ChannelKind::Email,
        script: "withdrawal-pending".into(),
        persona: "lin".into(),
        language: "en".into(),
        urgency: Urgency::Normal,
        token: token.into(),
        message_id: Some(format!("{id}.{token}@example.org")),
        sender: Some("shopper@example.org".into()),
        recipient: Some("support@kucoin.example".into()),
        subject: Some("Withdrawal still pending".into()),
        created_at,
        vantage: "test".into(),
        slot: None,
        sending_owner: Some(format!("owner-{id}")),
    }
}

fn inbound(uid: u32, body: &str, event: Option<NewEvent>) -> InboundMessage {
    InboundMessage {
        uid,
        raw: format!("Subject: s{uid}\r\n\r\n{body}").into_bytes(),
        internal_date: 1_000 + uid as i64,
        observed_at: 2_000 + uid as i64,
        date_header: None,
        received: vec!["from a by b".into()],
        from: Some("agent@kucoin.example".into()),
        subject: format!("s{uid}"),
        header_message_id: None,
        problems: vec![],
        event,
    }
}

fn human(probe_id: &str) -> NewEvent {
    NewEvent {
        probe_id: probe_id.into(),
        kind: EventKind::Human,
        match_method: MatchMethod::Thread,
        language: Some("en".into()),
        facts_matched: Some(true),
        reasons: vec!["no automation signal".into()],
        refs: vec!["request:12345".into()],
    }
}

#[test]
fn probe_lifecycle_sent_and_failed() {
    let mut s = Store::open_in_memory().unwrap();
    s.insert_sending_probe(&probe("p1", "dp0000000001", 10), Some(b"raw"))
        .unwrap();
    s.insert_sending_probe(&probe("p2", "dp0000000002", 10), None)
        .unwrap();
    assert_eq!(s.probe("p1").unwrap().status, ProbeStatus::Sending);
    s.mark_sent("p1", 50, "smtp:250").unwrap();
    s.mark_send_failed("p2", "550 no such user", false).unwrap();
    let p1 = s.probe("p1").unwrap();
    assert_eq!((p1.status, p1.sent_at), (ProbeStatus::Sent, Some(50)));
    assert_eq!(
        s.raw(p1.raw_sha256.as_deref().unwrap()).unwrap().unwrap(),
        b"raw"
    );
    let p2 = s.probe("p2").unwrap();
    assert_eq!(p2.status, ProbeStatus::SendFailed);
    assert_eq!(p2.send_error.as_deref(), Some("550 no such user"));
    let ev = s.events("p1").unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].occurred_at), (EventKind::Accepted, 50));
    // A failed probe cannot later be marked sent, and unknown ids are errors.
    assert!(s.mark_sent("p2", 60, "x").is_err());
    assert!(matches!(s.probe("nope"), Err(StoreError::NoSuchProbe(_))));
}

#[test]
fn interrupted_sends_become_unconfirmed_only_when_old() {
    let mut s = Store::open_in_memory().unwrap();
    s.insert_sending_probe(&probe("old", "dp0000000001", 10), None)
        .unwrap();
    s.insert_sending_probe(&probe("new", "dp0000000002", 1_000), None)
        .unwrap();
    s.insert_sending_probe(&probe("orphan", "dp0000000003", 1_000), None)
        .unwrap();
    let dead = |owner: &str| owner == "owner-orphan";
    let mut ids = s.recover_interrupted_sends(500, dead).unwrap();
    ids.sort();
    assert_eq!(ids, vec!["old", "orphan"]);
    assert_eq!(s.probe("old").unwrap().status, ProbeStatus::SentUnconfirmed);
    assert_eq!(
        s.probe("orphan").unwrap().status,
        ProbeStatus::SentUnconfirmed
    );
    assert_eq!(s.probe("new").unwrap().status, ProbeStatus::Sending);
}

#[test]
fn batches_are_idempotent_and_survive_uidvalidity_change() {
    let mut s = Store::open_in_memory().unwrap();
    s.insert_sending_probe(&probe("p1", "dp0000000001", 10), None)
        .unwrap();
    let batch = vec![
        inbound(1, "hello", Some(human("p1"))),
        inbound(2, "spam", None),
    ];
    let c = Cursor {
        uidvalidity: 7,
        last_uid: 2,
    };
    let first = s.store_imap_batch("mb", "INBOX", c, &batch).unwrap();
    assert_eq!((first.stored, first.matched, first.duplicates), (2, 1, 0));
    let again = s.store_imap_batch("mb", "INBOX", c, &batch).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 2));
    // Same bytes under a new UIDVALIDITY and new UIDs: still duplicates.
    let renumbered: Vec<_> = batch
        .iter()
        .cloned()
        .map(|mut m| {
            m.uid += 100;
            m
        })
        .collect();
    let c2 = Cursor {
        uidvalidity: 8,
        last_uid: 102,
    };
    let resync = s.store_imap_batch("mb", "INBOX", c2, &renumbered).unwrap();
    assert_eq!((resync.stored, resync.duplicates), (0, 2));
    assert_eq!(s.cursor("mb", "INBOX").unwrap(), Some(c2));
    assert_eq!(s.count_messages().unwrap(), 2);
    assert_eq!(s.count_events(EventKind::Human).unwrap(), 1);
    let un = s.unmatched().unwrap();
    assert_eq!(un.len(), 1);
    assert_eq!(un[0].source, "imap:mb/INBOX/7/2");
    let ev = &s.events("p1").unwrap()[0];
    assert_eq!(ev.occurred_at, 1_001);
    assert_eq!(ev.match_method, Some(MatchMethod::Thread));
    assert_eq!(ev.mail.as_ref().unwrap().received, vec!["from a by b"]);
    // The learnt reference is in the index for later messages.
    let idx = s.probe_index().unwrap();
    let mail = crate::mail::parse(b"Subject: Re: [Request #12345] update\r\n\r\nhi");
    let m = idx.match_probe(&mail, &[]).unwrap();
    assert_eq!(
        (m.probe_id.as_str(), m.method),
        ("p1", MatchMethod::TicketRef)
    );
}

#[test]
fn migrations_are_valid_and_reopen_keeps_data() {
    migrations().validate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/deskprobe.db");
    Store::open(&path)
        .unwrap()
        .insert_sending_probe(&probe("p1", "dp0000000001", 10), None)
        .unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.probe("p1").unwrap().token, "dp0000000001");
}

#[test]
fn api_events_with_the_same_vendor_id_stay_apart_per_probe() {
    // Two vendor accounts (targets) can hand out the same chat/event ids.
    let mut s = Store::open_in_memory().unwrap();
    s.insert_sending_probe(&probe("p1", "dp0000000001", 10), None)
        .unwrap();
    s.insert_sending_probe(&probe("p2", "dp0000000002", 10), None)
        .unwrap();
    let ev = channels::NewApiEvent {
        kind: EventKind::Human,
        occurred_at: 100,
        observed_at: 101,
        source: "livechat:CHAT1/EV1".into(),
        language: None,
        facts_matched: None,
        reasons: vec![],
        raw: b"{}".to_vec(),
    };
    let update = channels::SessionUpdate {
        state: None,
        queue_position: None,
        queue_wait_s: None,
        human_at: Some(100),
    };
    for p in ["p1", "p2"] {
        assert_eq!(
            s.store_api_events(p, std::slice::from_ref(&ev), &update, 101)
                .unwrap(),
            1
        );
        // Seen again on the next poll: stored once.
        assert_eq!(
            s.store_api_events(p, std::slice::from_ref(&ev), &update, 102)
                .unwrap(),
            0
        );
    }
    assert_eq!(s.count_events(EventKind::Human).unwrap(), 2);
}
