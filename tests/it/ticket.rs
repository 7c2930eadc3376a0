//! Ticket probes against vendor-like servers on loopback (issue 4): Zendesk anonymous
//! requests whose answer arrives as a notification email in the real Dovecot mailbox, the
//! Zammad form (and its disabled state), and hostile answers: 429 with Retry-After, 500s,
//! garbage JSON. Each failure is a recorded error naming the probe; nothing is sent twice.

use std::time::{Duration, Instant};

use deskprobe::model::{EventKind, MatchMethod, ProbeStatus};
use deskprobe::store::Store;

use crate::deskprobe::{
    Transport, add_settings, api_target, db_path, extend_config, run_ok, send_api_probe,
    write_config,
};
use crate::support::MailServers;
use crate::support::tls::Pki;
use crate::support::vendors::Fault;
use crate::support::vendors::zammad::{self, Zammad};
use crate::support::vendors::zendesk::Zendesk;

fn zendesk_channel(base: &str, ca: Option<&std::path::Path>) -> String {
    let ca = ca
        .map(|p| format!("ca-file = {:?}", p.display().to_string()))
        .unwrap_or_default();
    format!(
        "[[target.channel]]\nkind = \"ticket\"\ndriver = \"zendesk\"\nbase-url = \"{base}\"\n{ca}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn zendesk_request_over_tls_is_answered_by_a_notification_email_matched_by_reference() {
    let servers = MailServers::start().await;
    let pki_dir = servers.dir().join("vendor-tls");
    std::fs::create_dir(&pki_dir).unwrap();
    let pki = Pki::write(&pki_dir);
    let zendesk = Zendesk::start(Some((&pki.cert_pem, &pki.key_pem))).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(&zendesk_channel(&zendesk.base_url(), Some(&pki.ca_pem)), ""),
    );
    let db = db_path(&servers);

    let (probe_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(0), "{stderr}");
    let store = Store::open(&db).unwrap();
    let probe = store.probe(&probe_id).unwrap();
    assert_eq!(probe.status, ProbeStatus::Sent);
    assert_eq!(probe.channel, deskprobe::model::ChannelKind::Ticket);
    let created = zendesk.requests();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].email, "probe@localhost");
    assert_eq!(created[0].subject, "Withdrawal still pending");
    assert!(
        created[0].body.contains(&probe.token),
        "the body carries the token"
    );
    assert_eq!(
        store.probe_refs(&probe_id).unwrap(),
        vec![format!("request:{}", created[0].id)]
    );
    // Every request and answer is evidence.
    let exchanges = store.exchanges(&probe_id).unwrap();
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0].status, Some(201));
    let transcript =
        String::from_utf8(store.raw(&exchanges[0].raw_sha256).unwrap().unwrap()).unwrap();
    assert!(
        transcript.contains("POST https://localhost:"),
        "{transcript}"
    );
    assert!(transcript.contains("-- HTTP 201"), "{transcript}");

    // The agent answers; Zendesk emails the anonymous requester.
    let mail = zendesk.notification(
        created[0].id,
        "probe@localhost",
        "Ann",
        "Your withdrawal was sent.",
    );
    servers
        .append(
            MailServers::USER,
            "INBOX",
            &mail,
            "02-Nov-2026 05:20:31 +0000",
        )
        .await;
    servers.create_folder(MailServers::USER, "Junk").await;
    run_ok(&config, &db, &["collect"], 0).await;
    let events = store.events(&probe_id).unwrap();
    let human: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Human)
        .collect();
    assert_eq!(human.len(), 1, "{events:#?}");
    assert_eq!(human[0].match_method, Some(MatchMethod::TicketRef));
}

#[tokio::test(flavor = "multi_thread")]
async fn zendesk_custom_subject_pattern_routes_the_notification() {
    let servers = MailServers::start().await;
    let zendesk = Zendesk::start(None).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(
            &zendesk_channel(&zendesk.base_url(), None),
            r"ticket-ref = ['\(Case (\d+)\)']",
        ),
    );
    let db = db_path(&servers);
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(0), "{stderr}");
    let id = zendesk.requests()[0].id;
    let mail = format!(
        "From: Support <help@zendesk.localhost>\r\nTo: probe@localhost\r\n\
         Subject: Update on your question (Case {id})\r\n\r\nWe looked into it.\r\n"
    );
    servers
        .append(
            MailServers::USER,
            "INBOX",
            mail.as_bytes(),
            "02-Nov-2026 05:20:31 +0000",
        )
        .await;
    servers.create_folder(MailServers::USER, "Junk").await;
    run_ok(&config, &db, &["collect"], 0).await;
    let events = Store::open(&db).unwrap().events(&probe_id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Human && e.match_method == Some(MatchMethod::TicketRef)),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn zendesk_429_is_waited_out_and_the_request_is_created_once() {
    let servers = MailServers::start().await;
    let zendesk = Zendesk::start(None).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(&zendesk_channel(&zendesk.base_url(), None), ""),
    );
    let db = db_path(&servers);
    zendesk.fail_next(Fault::RateLimit { retry_after: 1 });
    let started = Instant::now();
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(zendesk.hits(), 2);
    assert_eq!(zendesk.requests().len(), 1);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.probe(&probe_id).unwrap().status, ProbeStatus::Sent);
    let statuses: Vec<_> = store
        .exchanges(&probe_id)
        .unwrap()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(statuses, [Some(429), Some(201)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn zendesk_500_garbage_and_refusals_are_recorded_errors_never_resent() {
    let servers = MailServers::start().await;
    let zendesk = Zendesk::start(None).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(&zendesk_channel(&zendesk.base_url(), None), ""),
    );
    let db = db_path(&servers);

    // A 500 may have created the request: send_failed, never retried.
    zendesk.fail_next(Fault::Status(500));
    let (id_500, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&id_500) && stderr.contains("HTTP 500"),
        "{stderr}"
    );
    // 2xx with garbage: maybe created, so sent_unconfirmed (never re-sent).
    zendesk.fail_next(Fault::Garbage);
    let (id_garbage, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not JSON"), "{stderr}");
    zendesk.fail_next(Fault::WrongShape);
    let (id_shape, _, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert!(stderr.contains("request.id"), "{stderr}");
    // Anonymous requests turned off: 403, nothing created.
    zendesk.disable_anonymous_requests(true);
    let (id_403, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("HTTP 403"), "{stderr}");

    let store = Store::open(&db).unwrap();
    let status = |id: &str| store.probe(id).unwrap().status;
    assert_eq!(status(&id_500), ProbeStatus::SendFailed);
    assert_eq!(status(&id_garbage), ProbeStatus::SentUnconfirmed);
    assert_eq!(status(&id_shape), ProbeStatus::SentUnconfirmed);
    assert_eq!(status(&id_403), ProbeStatus::SendFailed);
    let error = store.probe(&id_500).unwrap().send_error.unwrap();
    assert!(
        error.contains(&id_500) && error.contains("bybit"),
        "{error}"
    );
    // One request each, no retry of any of them.
    assert_eq!(zendesk.hits(), 4);
    // A tick sends nothing again: none of them belongs to a schedule.
    servers.create_folder(MailServers::USER, "Junk").await;
    run_ok(&config, &db, &["tick"], 0).await;
    assert_eq!(zendesk.hits(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn zammad_form_ticket_is_answered_by_email_and_a_disabled_form_is_a_clear_error() {
    let servers = MailServers::start().await;
    let zammad = Zammad::start(None).await;
    let config = write_config(&servers, Transport::Plaintext);
    let channel = format!(
        "[[target.channel]]\nkind = \"ticket\"\ndriver = \"zammad\"\nbase-url = \"{}\"\n",
        zammad.base_url()
    );
    extend_config(&config, &api_target(&channel, ""));
    let db = db_path(&servers);

    let (probe_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(0), "{stderr}");
    let tickets = zammad.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].title, "Withdrawal still pending");
    assert_eq!(tickets[0].email, "probe@localhost");
    let store = Store::open(&db).unwrap();
    assert_eq!(
        store.probe_refs(&probe_id).unwrap(),
        vec![format!("ticket:{}", tickets[0].number)]
    );
    // The form token is redacted from the evidence.
    for ex in store.exchanges(&probe_id).unwrap() {
        let t = String::from_utf8(store.raw(&ex.raw_sha256).unwrap().unwrap()).unwrap();
        assert!(!t.contains("zammad-form-token"), "{t}");
    }
    let mail = zammad.notification(
        &tickets[0].number,
        "probe@localhost",
        "Bo",
        "Checked: TXID 0xabc.",
    );
    servers
        .append(
            MailServers::USER,
            "INBOX",
            &mail,
            "02-Nov-2026 05:20:31 +0000",
        )
        .await;
    servers.create_folder(MailServers::USER, "Junk").await;
    run_ok(&config, &db, &["collect"], 0).await;
    let events = store.events(&probe_id).unwrap();
    let human = events
        .iter()
        .find(|e| e.kind == EventKind::Human)
        .expect("a human reply");
    assert_eq!(human.match_method, Some(MatchMethod::TicketRef));
    assert_eq!(human.facts_matched, Some(true));

    zammad.set_enabled(false);
    let (off_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("HTTP 403") && stderr.contains(&off_id),
        "{stderr}"
    );
    assert_eq!(
        store.probe(&off_id).unwrap().status,
        ProbeStatus::SendFailed
    );
    assert_eq!(
        zammad.hits(zammad::SUBMIT),
        1,
        "nothing was submitted to a disabled form"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_http_to_a_remote_helpdesk_is_a_config_error() {
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    add_settings(&config, "");
    extend_config(
        &config,
        &api_target(&zendesk_channel("http://help.example.com", None), ""),
    );
    let out = crate::deskprobe::run(&config, &db_path(&servers), &["check"]).await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "base-url: plaintext http:// is only allowed to a loopback host, not `help.example.com`"
        ),
        "{stderr}"
    );
}
