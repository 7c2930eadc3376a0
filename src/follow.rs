//! Following open chats (and tickets of the declarative `http` driver with collect steps)
//! after their send: read what the support side wrote, record each message once as an event
//! (bot, first human, follow-up) with the vendor's `created_at` as `occurred_at`, keep the
//! announced queue, and close the chat politely after the human answer or when the chat
//! window (`observation-window.chat`) ends. A chat deskprobe opened is never left open: a
//! close that fails is tried again on every pass.
//!
//! `tick` and `collect` make one pass ([`follow_once`]); the daemon runs one task per open
//! session ([`watch_sessions`]), woken by LiveChat's RTM websocket pushes when the channel
//! says `events = "websocket"` and polling otherwise or while the socket is down. A push only
//! wakes the task, which then reads the chat over the web API, so a websocket that drops
//! mid-chat loses nothing.
//!
//! Wiring only, like `collect`: channels do the I/O, the store the SQL; the bot/human
//! decision ([`chat_kind`]) is pure.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channels::chat::{self, livechat};
use crate::channels::http::HttpClient;
use crate::channels::{AgentMessage, ProbeText};
use crate::classify;
use crate::config::{Config, EventSource, Target, TargetChannel};
use crate::model::{ChannelKind, EventKind, Millis, Rules, now_millis};
use crate::send::error_chain;
use crate::store::StoreHandle;
use crate::store::channels::{ApiSession, NewApiEvent, SessionUpdate};

/// What one pass over a session did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    pub probe_id: String,
    /// Events stored for the first time.
    pub new_events: usize,
    /// Why the session was closed in this pass, if it was.
    pub closed: Option<String>,
    /// What went wrong, if something did (recorded with the session).
    pub error: Option<String>,
}

/// Whether a support-side chat message is a bot or a human, and why: the vendor's word
/// first, then the target's `rules.bot` regexes on the author's name and on the text.
pub fn chat_kind(msg: &AgentMessage, rules: &Rules) -> (bool, Vec<String>) {
    if msg.vendor_bot {
        return (true, vec!["the vendor marks the author as a bot".into()]);
    }
    let mut reasons = Vec::new();
    for re in &rules.bot {
        if let Some(author) = &msg.author
            && re.is_match(author)
        {
            reasons.push(format!(
                "rule bot '{}' on the author `{author}`",
                re.as_str()
            ));
        }
        if re.is_match(&msg.text) {
            reasons.push(format!("rule bot '{}' on the text", re.as_str()));
        }
    }
    (!reasons.is_empty(), reasons)
}

/// Events for the messages of one look at a session, oldest first: bots as `bot`, the first
/// human message (unless one was seen before) as `human`, later ones as `follow_up`.
fn events_for(
    messages: &[AgentMessage],
    rules: &Rules,
    expect: &[regex::Regex],
    mut human_seen: bool,
    observed_at: Millis,
) -> (Vec<NewApiEvent>, Option<Millis>) {
    let mut sorted: Vec<&AgentMessage> = messages.iter().collect();
    sorted.sort_by(|a, b| (a.occurred_at, &a.source).cmp(&(b.occurred_at, &b.source)));
    let mut first_human = None;
    let mut out = Vec::new();
    for m in sorted {
        let (bot, mut reasons) = chat_kind(m, rules);
        let kind = if bot {
            EventKind::Bot
        } else if !human_seen {
            human_seen = true;
            first_human = Some(m.occurred_at);
            reasons.push("first message by a human agent".into());
            EventKind::Human
        } else {
            reasons.push("a later message by a human agent".into());
            EventKind::FollowUp
        };
        out.push(NewApiEvent {
            kind,
            occurred_at: m.occurred_at,
            observed_at,
            source: m.source.clone(),
            language: classify::detect_language(&m.text),
            facts_matched: if bot {
                None
            } else {
                classify::facts_matched(expect, &m.text)
            },
            reasons,
            raw: m.raw.clone(),
        });
    }
    (out, first_human)
}

fn probe_text(config: &Config, s: &ApiSession) -> ProbeText {
    let persona = config.persona(&s.probe.persona);
    let target = config.target(&s.probe.target);
    ProbeText {
        probe_id: s.probe.id.clone(),
        token: s.probe.token.clone(),
        target_id: s.probe.target.clone(),
        target_name: target.map(|t| t.name.clone()).unwrap_or_default(),
        persona_id: s.probe.persona.clone(),
        persona_name: persona.map(|p| p.name.clone()).unwrap_or_default(),
        persona_email: persona.map(|p| p.email.clone()).unwrap_or_default(),
        language: s.probe.language.clone(),
        subject: s.probe.subject.clone().unwrap_or_default(),
        // The body is not kept apart from the outbound evidence; collect and close steps
        // see it empty.
        body: String::new(),
    }
}

/// One look at one session: poll, store new events, close when due.
#[tracing::instrument(skip_all, fields(probe = %probe_id))]
pub async fn pass(config: &Config, store: &StoreHandle, probe_id: &str) -> SessionReport {
    let mut report = SessionReport {
        probe_id: probe_id.to_owned(),
        ..SessionReport::default()
    };
    let id = probe_id.to_owned();
    let session = match store.call(move |s| s.session(&id)).await {
        Ok(Some(s)) if s.closed_at.is_none() => s,
        Ok(_) => return report,
        Err(e) => {
            report.error = Some(error_chain(&e));
            return report;
        }
    };
    let now = now_millis();
    let kind = session.probe.channel;
    let window = config.settings.observation_window.get(kind).as_millis() as i64;
    let window_ended = now >= session.opened_at + window;
    let found = config
        .target(&session.probe.target)
        .and_then(|t| t.channel(kind).map(|c| (t, c)));
    let Some((target, channel)) = found else {
        let reason = format!(
            "the {kind} channel of target `{}` is no longer in the config",
            session.probe.target
        );
        close_local(store, &mut report, probe_id, &reason).await;
        return report;
    };
    let outcome = look(config, store, &session, target, channel, window_ended).await;
    match outcome {
        Ok(r) => {
            report.new_events = r.new_events;
            report.closed = r.closed;
            report.error = r.error;
        }
        Err(e) => report.error = Some(e),
    }
    if let Some(e) = &report.error {
        tracing::warn!(error = %e, "cannot follow the probe's {kind}");
        let (id, e2) = (probe_id.to_owned(), e.clone());
        let _ = store
            .call(move |s| s.session_error(&id, &e2, now_millis()))
            .await;
        // A chat that cannot be reached or closed for twice its window is given up on, so it
        // is not retried forever; the reason says so.
        if report.closed.is_none() && now >= session.opened_at + 2 * window {
            let reason = format!("given up after twice the window: {e}");
            close_local(store, &mut report, probe_id, &reason).await;
        }
    }
    report
}

async fn close_local(
    store: &StoreHandle,
    report: &mut SessionReport,
    probe_id: &str,
    reason: &str,
) {
    let (id, r) = (probe_id.to_owned(), reason.to_owned());
    match store
        .call(move |s| s.close_session(&id, now_millis(), &r))
        .await
    {
        Ok(_) => report.closed = Some(reason.to_owned()),
        Err(e) => report.error = Some(error_chain(&e)),
    }
}

struct Looked {
    new_events: usize,
    closed: Option<String>,
    error: Option<String>,
}

async fn look(
    config: &Config,
    store: &StoreHandle,
    session: &ApiSession,
    target: &Target,
    channel: &TargetChannel,
    window_ended: bool,
) -> Result<Looked, String> {
    let probe_id = session.probe.id.clone();
    let secrets = crate::send::channel_secrets(target, channel).map_err(|e| error_chain(&e))?;
    let timeout = config.settings.send_timeout;
    let http = HttpClient::new(channel.ca_file.as_deref(), &session.probe.persona, timeout)
        .map_err(|e| error_chain(&e))?;
    for v in secrets.values() {
        http.add_secret(v);
    }
    let text = probe_text(config, session);
    let polled = chat::poll(channel, &text, &session.state, &http, &secrets, timeout).await;
    let mut looked = Looked {
        new_events: 0,
        closed: None,
        error: None,
    };
    let mut human_at = session.human_at;
    let mut active = true;
    match polled {
        Ok(state) => {
            let expect = config
                .script(&session.probe.script)
                .map(|s| s.expect.clone())
                .unwrap_or_default();
            let (events, first_human) = events_for(
                &state.messages,
                &target.rules,
                &expect,
                session.human_at.is_some(),
                now_millis(),
            );
            human_at = human_at.or(first_human);
            active = state.active;
            let update = SessionUpdate {
                state: None,
                queue_position: state.queue.and_then(|q| q.position),
                queue_wait_s: state.queue.and_then(|q| q.wait_s),
                human_at: first_human,
            };
            let id = probe_id.clone();
            looked.new_events = store
                .call(move |s| s.store_api_events(&id, &events, &update, now_millis()))
                .await
                .map_err(|e| error_chain(&e))?;
            if looked.new_events > 0 {
                tracing::info!(probe = %probe_id, new = looked.new_events, "chat events recorded");
            }
        }
        Err(e) => looked.error = Some(error_chain(&e)),
    }

    // Decide whether to close.
    let close = if session.probe.channel != ChannelKind::Chat {
        window_ended.then(|| ("window ended".to_owned(), false))
    } else if !active {
        Some(("closed by the desk".to_owned(), false))
    } else if human_at.is_some() {
        Some(("answered".to_owned(), true))
    } else if window_ended {
        Some(("window ended".to_owned(), true))
    } else {
        None
    };
    if let Some((reason, remote)) = close {
        let goodbye_sent =
            session.state.get("goodbye_sent") == Some(&serde_json::Value::Bool(true));
        let message = (!goodbye_sent).then_some(channel.closing_message.as_str());
        let closed = if remote && session.probe.channel == ChannelKind::Chat {
            chat::close(
                channel,
                &text,
                &session.state,
                &http,
                message,
                &secrets,
                timeout,
            )
            .await
        } else {
            Ok(())
        };
        match closed {
            Ok(()) => {
                let (id, r) = (probe_id.clone(), reason.clone());
                store
                    .call(move |s| s.close_session(&id, now_millis(), &r))
                    .await
                    .map_err(|e| error_chain(&e))?;
                tracing::info!(probe = %probe_id, reason = %reason, "chat closed");
                looked.closed = Some(reason);
            }
            Err(e) => {
                if e.goodbye_sent {
                    let mut state = session.state.clone();
                    state["goodbye_sent"] = serde_json::Value::Bool(true);
                    let update = SessionUpdate {
                        state: Some(state),
                        ..SessionUpdate::default()
                    };
                    let id = probe_id.clone();
                    store
                        .call(move |s| s.store_api_events(&id, &[], &update, now_millis()))
                        .await
                        .map_err(|e| error_chain(&e))?;
                }
                let msg = format!(
                    "cannot close the chat ({reason}): {}",
                    error_chain(&e.error)
                );
                looked.error = Some(match looked.error {
                    Some(prev) => format!("{prev}; {msg}"),
                    None => msg,
                });
            }
        }
    }
    let exchanges = http.take_exchanges();
    let id = probe_id.clone();
    store
        .call(move |s| s.record_exchanges(&id, &exchanges))
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(looked)
}

/// One pass over every open session (for `tick` and `collect`).
pub async fn follow_once(config: &Config, store: &StoreHandle) -> Vec<SessionReport> {
    let sessions = match store.call(|s| s.open_sessions()).await {
        Ok(s) => s,
        Err(e) => {
            return vec![SessionReport {
                error: Some(error_chain(&e)),
                ..SessionReport::default()
            }];
        }
    };
    let mut out = Vec::new();
    for s in sessions {
        out.push(pass(config, store, &s.probe.id).await);
    }
    out
}

/// The daemon's follower: one task per open session until `stop`. New sessions (chats the
/// scheduler just opened) are picked up within `scan`.
pub async fn watch_sessions(
    config: Arc<Config>,
    store: StoreHandle,
    stop: CancellationToken,
    scan: Duration,
) {
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    while !stop.is_cancelled() {
        match store.call(|s| s.open_sessions()).await {
            Ok(sessions) => {
                for s in sessions {
                    let id = s.probe.id.clone();
                    let fresh = running
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone());
                    if fresh {
                        let (config, store, stop, running) = (
                            Arc::clone(&config),
                            store.clone(),
                            stop.clone(),
                            Arc::clone(&running),
                        );
                        tasks.spawn(async move {
                            follow_task(&config, &store, &id, &stop).await;
                            running
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                        });
                    }
                }
            }
            Err(e) => tracing::warn!(error = %error_chain(&e), "cannot list open chats"),
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            () = tokio::time::sleep(scan) => {}
            () = stop.cancelled() => {}
        }
    }
    tasks.abort_all();
}

/// Follows one session until it is closed or `stop`.
async fn follow_task(
    config: &Config,
    store: &StoreHandle,
    probe_id: &str,
    stop: &CancellationToken,
) {
    let mut rtm: Option<livechat::Rtm> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let report = pass(config, store, probe_id).await;
        if report.closed.is_some() || stop.is_cancelled() {
            break;
        }
        let id = probe_id.to_owned();
        let Ok(Some(session)) = store.call(move |s| s.session(&id)).await else {
            break;
        };
        if session.closed_at.is_some() {
            break;
        }
        let Some(channel) = config
            .target(&session.probe.target)
            .and_then(|t| t.channel(session.probe.channel))
        else {
            break;
        };
        let interval = channel.poll_interval;
        let websocket = channel.driver.as_deref() == Some("livechat")
            && channel.events == EventSource::Websocket;
        if websocket && rtm.is_none() {
            match rtm_connect(channel, &session, config.settings.send_timeout).await {
                Ok(r) => {
                    tracing::info!(probe = %probe_id, "listening on the chat's RTM websocket");
                    rtm = Some(r);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(probe = %probe_id, error = %e, retry_in = ?backoff, "RTM websocket unavailable: polling meanwhile");
                }
            }
        }
        if let Some(r) = rtm.as_mut() {
            // Silence is answered with a ping and a look at the chat (window end, missed
            // pushes); a push is answered with a look at once.
            let wait = interval.clamp(Duration::from_millis(100), Duration::from_secs(10));
            tokio::select! {
                res = r.next(wait) => {
                    if let Err(e) = res {
                        tracing::warn!(probe = %probe_id, error = %error_chain(&e), "RTM websocket dropped: catching up by polling");
                        if let Some(r) = rtm.take() {
                            r.close().await;
                        }
                        tokio::select! {
                            () = tokio::time::sleep(backoff.min(interval.max(Duration::from_millis(100)))) => {}
                            () = stop.cancelled() => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
                () = stop.cancelled() => break,
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => break,
        }
    }
    if let Some(r) = rtm {
        r.close().await;
    }
}

async fn rtm_connect(
    channel: &TargetChannel,
    session: &ApiSession,
    timeout: Duration,
) -> Result<livechat::Rtm, String> {
    let http = HttpClient::new(channel.ca_file.as_deref(), &session.probe.persona, timeout)
        .map_err(|e| error_chain(&e))?;
    livechat::rtm(channel, &session.state, &http)
        .await
        .map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(source: &str, at: Millis, author: &str, text: &str) -> AgentMessage {
        AgentMessage {
            source: source.into(),
            occurred_at: at,
            text: text.into(),
            author: Some(author.into()),
            vendor_bot: false,
            raw: Vec::new(),
        }
    }

    #[test]
    fn bots_then_first_human_then_follow_ups() {
        let rules = Rules {
            bot: vec![regex::Regex::new("(?i)assistant|bot$").unwrap()],
            ..Rules::default()
        };
        let msgs = vec![
            msg("c/3", 3_000, "Ann", "Let me check your withdrawal."),
            msg("c/1", 1_000, "Kucoin Assistant", "Hi! How can I help?"),
            msg("c/4", 4_000, "Ann", "Done, TXID 0x1."),
        ];
        let (events, first) = events_for(&msgs, &rules, &[], false, 9_000);
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Bot, EventKind::Human, EventKind::FollowUp]
        );
        assert_eq!(first, Some(3_000));
        assert!(
            events[0].reasons[0].contains("on the author"),
            "{:?}",
            events[0].reasons
        );
        // Once a human was seen, no message is the first human again.
        let (events, first) = events_for(&msgs[..1], &rules, &[], true, 9_000);
        assert_eq!(events[0].kind, EventKind::FollowUp);
        assert_eq!(first, None);
        let mut vendor = msg("c/9", 1, "Ann", "hi");
        vendor.vendor_bot = true;
        assert!(chat_kind(&vendor, &Rules::default()).0);
    }
}
