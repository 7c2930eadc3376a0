//! The long-running side of deskprobe: `run` (daemon) and `tick` (one pass for cron).
//!
//! Wiring only: the pure `schedule` decides what is due, `send` sends it with the slot recorded
//! in the probe's own transaction (so no slot is ever sent twice, even across crashes),
//! `collect` watches folders (IDLE) or walks them once, and the store closes probes whose
//! observation window ended. Shutdown (SIGTERM/SIGINT → `stop`) lets an in-flight send finish
//! for a short grace period and otherwise abandons it safely: the probe stays `sending` and is
//! recovered as `sent_unconfirmed`, never re-sent. This module must not decide schedules,
//! parse mail or speak SQL.

pub mod lock;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::collect::{WatchOptions, collect_all, watch_folder};
use crate::config::Config;
use crate::model::{Millis, ProbeStatus, now_millis};
use crate::schedule::{self, History, Planned};
use crate::send::{SendRequest, error_chain, recover_interrupted, send_probe};
use crate::store::{SlotRef, StoreError, StoreHandle};

/// Errors of the daemon's own bookkeeping (sends and collects report theirs per probe/folder).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot use the evidence store")]
    Store(#[from] StoreError),
}

/// Timings of the daemon.
#[derive(Debug, Clone, Copy)]
pub struct DaemonOptions {
    pub watch: WatchOptions,
    /// Longest sleep between two scheduler passes.
    pub max_sleep: Duration,
    /// How long an in-flight send may finish after a stop request before it is abandoned.
    pub shutdown_grace: Duration,
    /// A slot this far behind `now` when first seen was missed (daemon down): the config's
    /// `missed` policy applies instead of sending.
    pub grace: Duration,
    /// How often the daemon looks for chats to follow (new ones are opened by sends).
    pub session_scan: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            watch: WatchOptions::default(),
            max_sleep: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(3),
            grace: schedule::DEFAULT_GRACE,
            session_scan: Duration::from_secs(1),
        }
    }
}

/// What one scheduler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub sent: Vec<String>,
    pub failed: Vec<String>,
    pub skipped: usize,
    /// The earliest future planned send, for the daemon's sleep and `status`.
    pub next_due: Option<Millis>,
    /// True when the pass stopped early because of a stop request.
    pub interrupted: bool,
}

const SEED_KEY: &str = "schedule_seed";
const PLANNED_KEY: &str = "last_planned_at";

/// The schedule's seed: random once per database, then kept, so jitter and stratification
/// stay the same across restarts.
async fn seed(store: &StoreHandle) -> Result<u64, StoreError> {
    store
        .call(|s| match s.state(SEED_KEY)? {
            Some(v) => Ok(v as u64),
            None => {
                let v = rand::random::<i64>() & i64::MAX;
                s.set_state(SEED_KEY, v)?;
                Ok(v as u64)
            }
        })
        .await
}

/// The scheduler's view of the past: handled slots and probe times of the last weeks.
async fn history(config: &Config, store: &StoreHandle, now: Millis) -> Result<History, StoreError> {
    let lookback = schedule::lookback(config).as_millis() as i64;
    let since = now - lookback;
    let (slots, times) = store
        .call(move |s| Ok((s.handled_slots(since)?, s.probe_times(since)?)))
        .await?;
    Ok(History::from_parts(slots, times))
}

/// Sends what is due at `now` (and retries slots whose send reached nobody), records skipped
/// slots, and returns what happened. Stops between sends when `stop` is cancelled.
pub async fn send_due(
    config: &Config,
    store: &StoreHandle,
    stop: &CancellationToken,
    opts: &DaemonOptions,
) -> Result<PassReport, DaemonError> {
    let now = now_millis();
    let seed = seed(store).await?;
    let history = history(config, store, now).await?;
    let since = store.call(|s| s.state(PLANNED_KEY)).await?;
    let plan = schedule::plan(config, &history, since, now, seed, opts.grace);
    let mut report = PassReport::default();
    for skipped in &plan.skipped {
        let slot = slot_ref(&skipped.planned, 0);
        let reason = skipped.reason.to_string();
        tracing::info!(schedule = %slot.schedule, target = %slot.target, channel = %slot.channel, %reason, "slot skipped");
        store
            .call(move |s| s.skip_slot(&slot, &reason, now_millis()))
            .await?;
        report.skipped += 1;
    }
    let retry_before = now - config.settings.retry_after.as_millis() as i64;
    let max_attempts = config.settings.send_attempts;
    let retries = store
        .call(move |s| s.retryable_slots(retry_before, max_attempts))
        .await?;
    let work: Vec<(SlotRef, Option<&Planned>)> = plan
        .due
        .iter()
        .map(|p| (slot_ref(p, 0), Some(p)))
        .chain(retries.into_iter().map(|r| (r, None)))
        .collect();
    for (slot, planned) in work {
        if stop.is_cancelled() {
            report.interrupted = true;
            break;
        }
        let Some(req) = request(config, &slot, planned) else {
            continue;
        };
        let send = send_probe(config, store, &req);
        tokio::pin!(send);
        let result = tokio::select! {
            r = &mut send => Some(r),
            () = stop.cancelled() => tokio::time::timeout(opts.shutdown_grace, &mut send).await.ok(),
        };
        match result {
            None => {
                tracing::warn!(schedule = %slot.schedule, target = %slot.target, "stop requested: in-flight send abandoned; its probe will be sent_unconfirmed, never re-sent");
                report.interrupted = true;
                break;
            }
            Some(Ok(outcome)) if outcome.status == ProbeStatus::Sent => {
                report.sent.push(outcome.probe_id)
            }
            Some(Ok(outcome)) => report.failed.push(outcome.probe_id),
            Some(Err(e)) => {
                // Nothing was committed (bad config for this combination, missing secret):
                // the slot stays open and is logged every pass until fixed.
                tracing::error!(schedule = %slot.schedule, target = %slot.target, error = %error_chain(&e), "cannot send a scheduled probe");
            }
        }
    }
    store.call(move |s| s.set_state(PLANNED_KEY, now)).await?;
    report.next_due = schedule::next_due(config, &history, now, seed);
    Ok(report)
}

fn slot_ref(p: &Planned, attempt: u32) -> SlotRef {
    SlotRef {
        schedule: p.schedule.clone(),
        slot: p.slot,
        target: p.target.clone(),
        channel: p.channel,
        send_at: p.send_at,
        attempt,
    }
}

/// The send request of a slot: from its plan, or (for a retry) by choosing again the same way.
fn request(config: &Config, slot: &SlotRef, planned: Option<&Planned>) -> Option<SendRequest> {
    let (script, persona) = match planned {
        Some(p) => (p.script.clone(), p.persona.clone()),
        None => {
            let schedule = config.schedule(&slot.schedule)?;
            let (script, persona) = schedule::choose(config, schedule, slot.slot)?;
            (script, persona)
        }
    };
    Some(SendRequest {
        target: slot.target.clone(),
        channel: slot.channel,
        script,
        persona: Some(persona),
        language: None,
        slot: Some(slot.clone()),
    })
}

/// Closes probes whose observation window has ended.
async fn close_expired(config: &Config, store: &StoreHandle) -> Result<(), StoreError> {
    let w = &config.settings.observation_window;
    let windows: Vec<_> = crate::model::ChannelKind::ALL
        .iter()
        .map(|c| (*c, w.get(*c).as_millis() as i64))
        .collect();
    let closed = store
        .call(move |s| s.close_expired(now_millis(), &windows))
        .await?;
    if closed > 0 {
        tracing::info!(closed, "observation windows ended");
    }
    Ok(())
}

/// What `tick` did.
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    pub pass: PassReport,
    /// Folders collected / failed.
    pub collected: usize,
    pub collect_errors: Vec<String>,
}

/// One pass for cron: send what is due, follow open chats once, collect every folder once,
/// close ended windows.
/// Idempotent: a second tick right after sends nothing twice.
pub async fn tick(
    config: &Config,
    store: &StoreHandle,
    opts: &DaemonOptions,
) -> Result<TickReport, DaemonError> {
    recover_interrupted(config, store).await?;
    let pass = send_due(config, store, &CancellationToken::new(), opts).await?;
    let mut report = TickReport {
        pass,
        ..TickReport::default()
    };
    for r in crate::follow::follow_once(config, store).await {
        if let Some(e) = r.error {
            report
                .collect_errors
                .push(format!("probe {}: {e}", r.probe_id));
        }
    }
    for (_, result) in collect_all(config, store).await {
        match result {
            Ok(r) => {
                report.collected += r.folders.len();
                report
                    .collect_errors
                    .extend(r.errors.iter().map(|e| error_chain(e)));
            }
            Err(e) => report.collect_errors.push(error_chain(&e)),
        }
    }
    close_expired(config, store).await?;
    Ok(report)
}

/// The daemon: one IDLE watcher per mailbox folder, and the scheduler loop, until `stop`.
pub async fn run(
    config: Arc<Config>,
    store: StoreHandle,
    stop: CancellationToken,
    opts: DaemonOptions,
) -> Result<(), DaemonError> {
    recover_interrupted(&config, &store).await?;
    let mut watchers = tokio::task::JoinSet::new();
    for mailbox in &config.mailboxes {
        for folder in &mailbox.folders {
            watchers.spawn(watch_folder(
                Arc::clone(&config),
                mailbox.id.clone(),
                folder.clone(),
                store.clone(),
                stop.clone(),
                None,
                opts.watch,
            ));
        }
    }
    // Open chats (and followed tickets): one task each, woken by the vendor's websocket or
    // polling.
    watchers.spawn(crate::follow::watch_sessions(
        Arc::clone(&config),
        store.clone(),
        stop.clone(),
        opts.session_scan,
    ));
    tracing::info!(
        watchers = watchers.len(),
        schedules = config.schedules.len(),
        "daemon running"
    );
    while !stop.is_cancelled() {
        let pass = send_due(&config, &store, &stop, &opts).await?;
        close_expired(&config, &store).await?;
        let now = now_millis();
        let wait = pass
            .next_due
            .map(|t| Duration::from_millis((t - now).max(0) as u64))
            .unwrap_or(opts.max_sleep)
            .min(opts.max_sleep);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
        }
    }
    tracing::info!("stopping: waiting for watchers to persist their cursors");
    let drained = tokio::time::timeout(opts.shutdown_grace, async {
        while watchers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("watchers did not stop in time; their cursors are as last stored");
        watchers.abort_all();
    }
    Ok(())
}

/// The next planned sends (for `status`): up to `n` of the earliest future send times, as
/// the scheduler would choose them now.
pub async fn upcoming(
    config: &Config,
    store: &StoreHandle,
    n: usize,
) -> Result<Vec<Millis>, DaemonError> {
    let seed = seed(store).await?;
    let mut now = now_millis();
    let history = history(config, store, now).await?;
    let mut out = Vec::new();
    while out.len() < n {
        let Some(next) = schedule::next_due(config, &history, now, seed) else {
            break;
        };
        out.push(next);
        now = next;
    }
    Ok(out)
}
