//! Chat probes against a LiveChat-like server on loopback (issue 4): a bot greeting then a
//! human over the RTM websocket under the daemon, a websocket that drops mid-chat, polling
//! from `tick` with the chat window ending unanswered, and hostile answers (garbage JSON,
//! 500s) that end in recorded errors naming the probe, never a panic, a lost probe or a chat
//! left open.

use std::time::Duration;

use deskprobe::model::{EventKind, MatchMethod, ProbeStatus};
use deskprobe::store::Store;

use crate::deskprobe::{
    Transport, add_settings, api_target, db_path, eventually, extend_config, run, run_ok,
    send_api_probe, spawn, write_config,
};
use crate::support::MailServers;
use crate::support::vendors::Fault;
use crate::support::vendors::livechat::{self, ChatPlan, LiveChat, PlanStep};

const ORG: &str = "5e1c0d4a-org";
const BOT_RULE: &str = "bot = ['(?i)assistant']";
const GOODBYE: &str = "Thanks, that helps. Bye!";

fn livechat_channel(base: &str, events: &str) -> String {
    format!(
        "[[target.channel]]\nkind = \"chat\"\ndriver = \"livechat\"\nbase-url = \"{base}\"\n\
         organization-id = \"{ORG}\"\npoll-interval = \"200ms\"\nevents = \"{events}\"\n\
         closing-message = \"{GOODBYE}\"\n"
    )
}

fn bot_then_human(human_after: Duration) -> ChatPlan {
    ChatPlan {
        queue: Some((3, 120)),
        steps: vec![
            PlanStep::bot(
                Duration::from_millis(300),
                "Bybit Assistant",
                "Hi! I'm the virtual assistant. An agent will join shortly.",
            ),
            PlanStep::agent(
                human_after,
                "Ann Lee",
                "Hello, your withdrawal is done: TXID 0x51.",
            ),
        ],
    }
}

async fn setup(
    events: &str,
) -> (
    MailServers,
    LiveChat,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let servers = MailServers::start().await;
    servers.create_folder(MailServers::USER, "Junk").await;
    let chat = LiveChat::start(ORG, None).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(&livechat_channel(&chat.base_url(), events), BOT_RULE),
    );
    let db = db_path(&servers);
    (servers, chat, config, db)
}

fn session_closed(db: &std::path::Path, probe: &str) -> Option<String> {
    Store::open(db)
        .unwrap()
        .session(probe)
        .unwrap()?
        .close_reason
}

#[tokio::test(flavor = "multi_thread")]
async fn bot_greeting_then_human_over_rtm_is_recorded_and_the_chat_closed_politely() {
    let (_servers, chat, config, db) = setup("websocket").await;
    chat.set_plan(bot_then_human(Duration::from_millis(1500)));
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(0), "{stderr}");
    let mut daemon = spawn(&config, &db, &["run"]);
    let reason = eventually(20, "the chat to be closed", || {
        session_closed(&db, &probe_id)
    })
    .await;
    daemon.start_kill().unwrap();
    let out = daemon.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(reason, "answered");

    let store = Store::open(&db).unwrap();
    let probe = store.probe(&probe_id).unwrap();
    assert_eq!(probe.status, ProbeStatus::Sent);
    let sent_at = probe.sent_at.unwrap();
    let events = store.events(&probe_id).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Accepted, EventKind::Bot, EventKind::Human],
        "{events:#?}"
    );
    let (bot, human) = (&events[1], &events[2]);
    assert_eq!(human.match_method, Some(MatchMethod::Api));
    assert!(
        bot.reasons.iter().any(|r| r.contains("assistant")),
        "{:?}",
        bot.reasons
    );
    assert_eq!(human.facts_matched, Some(true), "the script expects a TXID");
    // occurred_at is the vendor's created_at: 0.3 s and 1.5 s after the start.
    let (b, h) = (bot.occurred_at - sent_at, human.occurred_at - sent_at);
    assert!((100..1300).contains(&b), "bot after {b} ms");
    assert!((1300..3000).contains(&h), "human after {h} ms");
    let session = store.session(&probe_id).unwrap().unwrap();
    assert_eq!(session.queue_position, Some(3));
    assert_eq!(session.queue_wait_s, Some(120));
    assert_eq!(session.human_at, Some(human.occurred_at));

    let chats = chat.chats();
    assert_eq!(chats.len(), 1);
    assert!(!chats[0].active, "the chat was left open");
    let said = chats[0].customer_messages();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].starts_with("Withdrawal still pending"), "{said:?}");
    assert_eq!(said[1], GOODBYE);
    assert!(chat.rtm_logins() >= 1);
    // The customer token is redacted from every transcript.
    for ex in store.exchanges(&probe_id).unwrap() {
        let t = String::from_utf8(store.raw(&ex.raw_sha256).unwrap().unwrap()).unwrap();
        assert!(!t.contains("dal:tok-"), "token in evidence: {t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_that_drops_mid_chat_loses_nothing() {
    let (_servers, chat, config, db) = setup("websocket").await;
    chat.set_plan(bot_then_human(Duration::from_millis(2500)));
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(0), "{stderr}");
    let mut daemon = spawn(&config, &db, &["run"]);
    eventually(10, "an RTM login", || {
        (chat.rtm_logins() >= 1).then_some(())
    })
    .await;
    // The socket drops, and the next connection attempt is refused: polling covers.
    chat.fail_next(livechat::RTM, Fault::Status(502));
    chat.drop_websockets();
    let reason = eventually(20, "the chat to be closed", || {
        session_closed(&db, &probe_id)
    })
    .await;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    assert_eq!(reason, "answered");
    let events = Store::open(&db).unwrap().events(&probe_id).unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Accepted, EventKind::Bot, EventKind::Human]
    );
    assert!(!chat.chats()[0].active);
}

#[tokio::test(flavor = "multi_thread")]
async fn polling_from_tick_closes_an_unanswered_chat_when_its_window_ends() {
    let (_servers, chat, config, db) = setup("poll").await;
    add_settings(&config, "observation-window = { chat = \"2s\" }");
    chat.set_plan(ChatPlan {
        queue: None,
        steps: vec![PlanStep::bot(
            Duration::from_millis(100),
            "Bybit Assistant",
            "Hi! All agents are busy.",
        )],
    });
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(0), "{stderr}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    run_ok(&config, &db, &["tick"], 0).await;
    assert_eq!(session_closed(&db, &probe_id), None);
    assert!(chat.chats()[0].active);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    run_ok(&config, &db, &["tick"], 0).await;
    assert_eq!(
        session_closed(&db, &probe_id).as_deref(),
        Some("window ended")
    );
    let c = &chat.chats()[0];
    assert!(!c.active);
    assert_eq!(
        c.customer_messages().last().map(String::as_str),
        Some(GOODBYE)
    );
    let store = Store::open(&db).unwrap();
    let events = store.events(&probe_id).unwrap();
    assert!(events.iter().any(|e| e.kind == EventKind::Bot));
    assert!(!events.iter().any(|e| e.kind == EventKind::Human));
    // Another tick does nothing more to the closed chat.
    let actions = chat.hits("get_chat");
    run_ok(&config, &db, &["tick"], 0).await;
    assert_eq!(chat.hits("get_chat"), actions);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_chat_answers_are_recorded_errors_and_the_chat_is_still_closed_once() {
    let (_servers, chat, config, db) = setup("poll").await;
    chat.set_plan(ChatPlan {
        queue: None,
        steps: vec![PlanStep::agent(
            Duration::from_millis(100),
            "Ann Lee",
            "Hello!",
        )],
    });
    // The token endpoint fails: nothing reached anybody.
    chat.fail_next(livechat::TOKEN, Fault::Status(500));
    let (id_token, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&id_token), "{stderr}");
    // start_chat answers garbage: maybe started, never re-sent, no session to follow.
    chat.fail_next("start_chat", Fault::Garbage);
    let (id_garbage, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("chat_id") || stderr.contains("not JSON"),
        "{stderr}"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(
        store.probe(&id_token).unwrap().status,
        ProbeStatus::SendFailed
    );
    assert_eq!(
        store.probe(&id_garbage).unwrap().status,
        ProbeStatus::SentUnconfirmed
    );
    assert!(store.session(&id_garbage).unwrap().is_none());

    // A good chat whose reads fail twice and whose close fails once.
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(0), "{stderr}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    chat.fail_next("get_chat", Fault::Status(500));
    let out = run(&config, &db, &["collect"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&probe_id) && err.contains("HTTP 500"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    chat.fail_next("list_threads", Fault::Garbage);
    let out = run(&config, &db, &["collect"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not JSON"), "{err}");
    let session = store.session(&probe_id).unwrap().unwrap();
    assert!(session.last_error.is_some());
    chat.fail_next("deactivate_chat", Fault::Status(503));
    let out = run(&config, &db, &["collect"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot close the chat"), "{err}");
    assert_eq!(session_closed(&db, &probe_id), None);
    run_ok(&config, &db, &["collect"], 0).await;
    assert_eq!(session_closed(&db, &probe_id).as_deref(), Some("answered"));
    let c = chat
        .chats()
        .into_iter()
        .find(|c| c.events.len() > 1)
        .unwrap();
    assert!(!c.active);
    let goodbyes = c
        .customer_messages()
        .iter()
        .filter(|m| *m == GOODBYE)
        .count();
    assert_eq!(
        goodbyes, 1,
        "the goodbye was said once, though closing was tried twice"
    );
    let events = store.events(&probe_id).unwrap();
    assert_eq!(
        events.iter().filter(|e| e.kind == EventKind::Human).count(),
        1
    );
}
