//! Declarative `driver = "http"` steps (issue 4): a Zammad form flow reproduced entirely
//! from probes.toml (captures by JSON pointer, multipart body, the acceptance step, the
//! reference learnt for email matching), and `deskprobe check` catching bad steps with
//! file:line.

use deskprobe::model::{EventKind, MatchMethod, ProbeStatus};
use deskprobe::store::Store;

use crate::deskprobe::{
    Transport, api_target, db_path, extend_config, run, run_ok, send_api_probe, write_config,
};
use crate::support::MailServers;
use crate::support::vendors::Fault;
use crate::support::vendors::zammad::{self, Zammad};

fn zammad_steps(base: &str) -> String {
    format!(
        r#"[[target.channel]]
kind = "ticket"
driver = "http"
base-url = "{base}"
[[target.channel.step]]
name = "form config"
method = "POST"
url = "{{{{ base_url }}}}/api/v1/form_config"
json = {{ fingerprint = "{{{{ token }}}}" }}
expect = [200]
capture = {{ endpoint = "/endpoint", form_token = "/token" }}
[[target.channel.step]]
name = "submit"
method = "POST"
url = "{{{{ endpoint }}}}"
multipart = {{ name = "{{{{ persona.name }}}}", email = "{{{{ persona.email }}}}", title = "{{{{ subject }}}}", body = "{{{{ body }}}}", fingerprint = "{{{{ token }}}}", token = "{{{{ form_token }}}}" }}
capture = {{ number = "/ticket/number" }}
accepted = true
reference = "ticket:{{{{ number }}}}"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_zammad_flow_from_probes_toml_alone() {
    let servers = MailServers::start().await;
    servers.create_folder(MailServers::USER, "Junk").await;
    let zammad = Zammad::start(None).await;
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(&config, &api_target(&zammad_steps(&zammad.base_url()), ""));
    let db = db_path(&servers);
    run_ok(&config, &db, &["check"], 0).await;

    // The first form_config answers 429 once: honoured, then the flow goes on.
    zammad.fail_next(zammad::CONFIG, Fault::RateLimit { retry_after: 1 });
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(0), "{stderr}");
    let tickets = zammad.tickets();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].name, "Lin Wei");
    assert_eq!(tickets[0].title, "Withdrawal still pending");
    let store = Store::open(&db).unwrap();
    let probe = store.probe(&probe_id).unwrap();
    assert_eq!(probe.status, ProbeStatus::Sent);
    assert_eq!(tickets[0].fingerprint, probe.token);
    assert_eq!(
        store.probe_refs(&probe_id).unwrap(),
        vec![format!("ticket:{}", tickets[0].number)]
    );
    let steps: Vec<_> = store
        .exchanges(&probe_id)
        .unwrap()
        .into_iter()
        .map(|e| (e.step, e.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("form config".to_owned(), Some(429)),
            ("form config".to_owned(), Some(200)),
            ("submit".to_owned(), Some(200)),
        ]
    );

    let mail = zammad.notification(&tickets[0].number, "probe@localhost", "Bo", "Done.");
    servers
        .append(
            MailServers::USER,
            "INBOX",
            &mail,
            "02-Nov-2026 05:20:31 +0000",
        )
        .await;
    run_ok(&config, &db, &["collect"], 0).await;
    let events = store.events(&probe_id).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Human && e.match_method == Some(MatchMethod::TicketRef)),
        "{events:#?}"
    );

    // A failing step before the acceptance: send_failed naming the step, nothing submitted.
    zammad.set_enabled(false);
    let (failed, code, stderr) = send_api_probe(&config, &db, "ticket").await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("form config") && stderr.contains("403") && stderr.contains(&failed),
        "{stderr}"
    );
    assert_eq!(zammad.hits(zammad::SUBMIT), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_bad_steps_with_their_lines() {
    let servers = MailServers::start().await;
    let config = write_config(&servers, Transport::Plaintext);
    let bad = r#"[[target.channel]]
kind = "ticket"
driver = "http"
base-url = "https://help.example"
[[target.channel.step]]
name = "first"
url = "{{ base_url }}/x"
capture = { id = "ticket/id" }
[[target.channel.step]]
name = "second"
method = "POST"
url = "{{ base_url }}/y/{{ ticket_idd }}"
json = { a = "{{ persona.phone }}" }
expect = [900]
[[target.channel.step]]
url = "http://help.example/plain"
poll = { until = "/status == solved", interval = "1s", timeout = "nope" }
"#;
    extend_config(&config, &api_target(bad, ""));
    let out = run(&config, &db_path(&servers), &["check"]).await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&config).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, message) in [
        ("capture = { id", "`ticket/id` is not a JSON pointer"),
        ("/y/{{ ticket_idd }}", "undefined value"),
        ("persona.phone", "undefined value"),
        ("expect = [900]", "`900` is not an HTTP status code"),
        (
            "http://help.example/plain",
            "plaintext http:// is only allowed to a loopback host",
        ),
        ("timeout = \"nope\"", "invalid duration `nope`"),
    ] {
        let line = line_of(needle);
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!(":{line}:")) && l.contains(message)),
            "no `{message}` on line {line}:\n{stderr}"
        );
    }
}

fn livechat_steps(base: &str, org: &str) -> String {
    let action = |name: &str| {
        format!("{{{{ base_url }}}}/v3.5/customer/action/{name}?organization_id={org}")
    };
    format!(
        r#"[[target.channel]]
kind = "chat"
driver = "http"
base-url = "{base}"
poll-interval = "200ms"
closing-message = "Bye from steps"
[[target.channel.step]]
name = "token"
method = "POST"
url = "{{{{ base_url }}}}/v2/customer/token"
json = {{ grant_type = "cookie", response_type = "token", organization_id = "{org}" }}
capture = {{ access_token = "/access_token" }}
[[target.channel.step]]
name = "rtm"
ws-connect = "{{{{ base_url | replace('http', 'ws') }}}}/v3.5/customer/rtm/ws?organization_id={org}"
[[target.channel.step]]
name = "login"
ws-send = {{ action = "login", request_id = "l1", payload = {{ token = "Bearer {{{{ access_token }}}}" }} }}
[[target.channel.step]]
name = "login answer"
ws-receive = {{ until = "/request_id == l1" }}
timeout = "5s"
capture = {{ logged_in = "/success" }}
[[target.channel.step]]
name = "start"
method = "POST"
url = "{start}"
headers = {{ Authorization = "Bearer {{{{ access_token }}}}" }}
json = {{ chat = {{ thread = {{ events = [ {{ type = "message", text = "{{{{ subject }}}}: {{{{ body }}}}" }} ] }} }} }}
capture = {{ chat_id = "/chat_id" }}
accepted = true
[[target.channel.collect-step]]
name = "read"
method = "POST"
url = "{get}"
headers = {{ Authorization = "Bearer {{{{ access_token }}}}" }}
json = {{ chat_id = "{{{{ chat_id }}}}" }}
events = {{ list = "/thread/events", id = "/id", at = "/created_at", text = "/text", from = "/author_id", agent = "ann.lee@livechat.localhost", bot = "bot@livechat.localhost" }}
[[target.channel.close-step]]
name = "goodbye"
method = "POST"
url = "{send}"
headers = {{ Authorization = "Bearer {{{{ access_token }}}}" }}
json = {{ chat_id = "{{{{ chat_id }}}}", event = {{ type = "message", text = "{{{{ closing_message }}}}" }} }}
[[target.channel.close-step]]
name = "deactivate"
method = "POST"
url = "{deactivate}"
headers = {{ Authorization = "Bearer {{{{ access_token }}}}" }}
json = {{ id = "{{{{ chat_id }}}}" }}
"#,
        start = action("start_chat"),
        get = action("get_chat"),
        send = action("send_event"),
        deactivate = action("deactivate_chat"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_livechat_flow_with_websocket_steps_from_probes_toml_alone() {
    use crate::support::vendors::livechat::{ChatPlan, LiveChat, PlanStep};
    use std::time::Duration;
    let servers = MailServers::start().await;
    servers.create_folder(MailServers::USER, "Junk").await;
    let chat = LiveChat::start("org-steps", None).await;
    chat.set_plan(ChatPlan {
        queue: None,
        steps: vec![
            PlanStep::bot(Duration::from_millis(100), "Helper", "Hi, I am a bot."),
            PlanStep::agent(Duration::from_millis(300), "Ann Lee", "Hello, TXID 0x9."),
        ],
    });
    let config = write_config(&servers, Transport::Plaintext);
    extend_config(
        &config,
        &api_target(&livechat_steps(&chat.base_url(), "org-steps"), ""),
    );
    let db = db_path(&servers);
    run_ok(&config, &db, &["check"], 0).await;
    let (probe_id, code, stderr) = send_api_probe(&config, &db, "chat").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(chat.rtm_logins(), 1);
    let chats = chat.chats();
    assert!(chats[0].customer_messages()[0].starts_with("Withdrawal still pending: Hello"));

    tokio::time::sleep(Duration::from_millis(700)).await;
    run_ok(&config, &db, &["collect"], 0).await;
    let store = Store::open(&db).unwrap();
    let session = store.session(&probe_id).unwrap().unwrap();
    assert_eq!(session.close_reason.as_deref(), Some("answered"));
    let kinds: Vec<_> = store
        .events(&probe_id)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Accepted, EventKind::Bot, EventKind::Human]
    );
    let c = &chat.chats()[0];
    assert!(!c.active);
    assert_eq!(
        c.customer_messages().last().map(String::as_str),
        Some("Bye from steps")
    );
    let mut saw_login = false;
    for ex in store.exchanges(&probe_id).unwrap() {
        let t = String::from_utf8(store.raw(&ex.raw_sha256).unwrap().unwrap()).unwrap();
        assert!(!t.contains("dal:tok-"), "token in evidence: {t}");
        saw_login |= ex.method == "WS-SEND" && t.contains("Bearer ***");
    }
    assert!(saw_login, "the websocket login frame is evidence, redacted");
}
