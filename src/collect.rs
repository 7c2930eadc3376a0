//! One collect pass over every mailbox and folder: fetch what is new past each folder's cursor,
//! turn each message into an `InboundMessage` (parse → match → classify), and store each batch
//! together with the advanced cursor. A crash at any point loses nothing and stores nothing
//! twice: the cursor moves only in the transaction that stores its messages, and the store
//! skips messages it already holds.
//!
//! A UIDVALIDITY change (folder recreated or restored) resyncs the whole folder; messages already
//! stored are recognised by their bytes and skipped. DESIGN.md says "resync by date"; we resync
//! everything because an INTERNALDATE can be chosen by whoever APPENDs a message, so a date
//! window can miss messages; content deduplication keeps the full pass exact.
//!
//! This module wires channels and store; the deciding step (`ingest`) is pure.

use std::collections::HashMap;

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::channels::email::imap::{FetchedMessage, ImapConnection, ImapError, Wake};
use crate::classify;
use crate::config::{Config, Mailbox, SecretError};
use crate::mail::{self, ParsedMail};
use crate::matching::{self, ProbeIndex};
use crate::model::now_millis;
use crate::send::error_chain;
use crate::store::{
    BatchOutcome, Cursor, InboundMessage, IndexCursor, NewEvent, ProbeBrief, StoreError,
    StoreHandle,
};

/// How many messages are fetched and stored per transaction.
pub const BATCH: usize = 200;

/// How many fetched batches may wait while one is being stored.
const FETCH_AHEAD: usize = 2;

/// Errors of a collect pass over one mailbox.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot get the password of mailbox `{mailbox}`")]
    Secret {
        mailbox: String,
        #[source]
        source: SecretError,
    },
    #[error("cannot collect mailbox `{mailbox}`{}", folder.as_ref().map(|f| format!(" folder `{f}`")).unwrap_or_default())]
    Imap {
        mailbox: String,
        /// The folder, when the error concerns one.
        folder: Option<String>,
        #[source]
        source: ImapError,
    },
    #[error("cannot store messages of mailbox `{mailbox}`")]
    Store {
        mailbox: String,
        #[source]
        source: StoreError,
    },
}

impl CollectError {
    /// The folder the error concerns, if it concerns one.
    pub fn folder(&self) -> Option<&str> {
        match self {
            CollectError::Imap { folder, .. } => folder.as_deref(),
            _ => None,
        }
    }
}

/// What a pass over one folder did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderReport {
    pub mailbox: String,
    pub folder: String,
    pub uidvalidity: u32,
    /// True when the folder's UIDVALIDITY changed and it was read again from the start.
    pub resynced: bool,
    pub fetched: usize,
    pub outcome: BatchOutcome,
}

/// What a pass over one mailbox did: the folders read, and the folders that failed (a missing
/// or unreadable folder does not stop the others).
#[derive(Debug, Default)]
pub struct MailboxReport {
    pub folders: Vec<FolderReport>,
    pub errors: Vec<CollectError>,
}

/// Everything `ingest` needs to decide about a message. Built once, then kept current with
/// [`Matcher::refresh`], which loads only the probes and references stored since the last
/// load (a watcher refreshes on every wake; reloading a year of probes each time would put
/// their count into every reply's detection latency).
pub struct Matcher<'c> {
    config: &'c Config,
    index: ProbeIndex,
    probes: HashMap<String, ProbeBrief>,
    ticket_patterns: Vec<Regex>,
    loaded: IndexCursor,
}

impl<'c> Matcher<'c> {
    /// A matcher over the stored probes.
    pub fn new(config: &'c Config, index: ProbeIndex, probes: HashMap<String, ProbeBrief>) -> Self {
        let ticket_patterns = config
            .targets
            .iter()
            .flat_map(|t| t.rules.ticket_ref.iter().cloned())
            .collect();
        Matcher {
            config,
            index,
            probes,
            ticket_patterns,
            loaded: IndexCursor::default(),
        }
    }

    /// Loads the probes and helpdesk references stored since the last refresh.
    pub async fn refresh(&mut self, store: &StoreHandle) -> Result<(), StoreError> {
        let mut index = std::mem::take(&mut self.index);
        let mut probes = std::mem::take(&mut self.probes);
        let since = self.loaded;
        let (index, probes, loaded) = store
            .call(move |s| {
                let loaded = s.extend_probe_index(&mut index, &mut probes, since);
                Ok((index, probes, loaded))
            })
            .await?;
        // On failure the cursor does not move: the next refresh loads the same rows again,
        // and inserting a probe or reference twice changes nothing.
        self.index = index;
        self.probes = probes;
        self.loaded = loaded?;
        Ok(())
    }

    /// Parses, matches and classifies one fetched message. Pure: the same inputs give the same
    /// result. Helpdesk references found in a matched message are learnt at once, so a later
    /// message of the same pass can match by them.
    pub fn ingest(&mut self, fetched: FetchedMessage) -> InboundMessage {
        let parsed = mail::parse(&fetched.raw);
        let event = self.event_for(&parsed);
        if let Some(ev) = &event {
            for reference in &ev.refs {
                self.index.insert_ticket_ref(reference, &ev.probe_id);
            }
        }
        InboundMessage {
            uid: fetched.uid,
            internal_date: fetched.internal_date,
            observed_at: fetched.observed_at,
            date_header: parsed.date,
            received: parsed.received.clone(),
            from: parsed.from.clone(),
            subject: parsed.subject.clone(),
            header_message_id: parsed.message_id.clone(),
            problems: parsed.problems.clone(),
            raw: fetched.raw,
            event,
        }
    }

    fn event_for(&self, parsed: &ParsedMail) -> Option<NewEvent> {
        // A copy of one of our own probes (a Sent folder, a BCC) is evidence, not a response.
        if parsed
            .message_id
            .as_deref()
            .is_some_and(|id| self.index.is_probe_message_id(id))
        {
            return None;
        }
        let m = self.index.match_probe(parsed, &self.ticket_patterns)?;
        let brief = self.probes.get(&m.probe_id);
        let target = brief.and_then(|b| self.config.target(&b.target));
        let rules = target.map(|t| t.rules.clone()).unwrap_or_default();
        let c = classify::classify_email(parsed, &rules);
        let expect = brief
            .and_then(|b| self.config.script(&b.script))
            .map(|s| s.expect.as_slice())
            .unwrap_or(&[]);
        Some(NewEvent {
            kind: c.kind,
            match_method: m.method,
            language: classify::detect_language(&parsed.text),
            facts_matched: classify::facts_matched(expect, &parsed.text),
            reasons: c.reasons,
            refs: matching::ticket_refs(&parsed.subject, &rules.ticket_ref),
            probe_id: m.probe_id,
        })
    }
}

async fn matcher<'c>(
    config: &'c Config,
    mailbox: &Mailbox,
    store: &StoreHandle,
) -> Result<Matcher<'c>, CollectError> {
    let mut matcher = Matcher::new(config, ProbeIndex::default(), HashMap::new());
    matcher
        .refresh(store)
        .await
        .map_err(|source| CollectError::Store {
            mailbox: mailbox.id.clone(),
            source,
        })?;
    Ok(matcher)
}

/// One pass over every folder of `mailbox`. Connection and login failures are errors; a
/// folder that fails is reported in [`MailboxReport::errors`] and the others are still read.
#[tracing::instrument(skip_all, fields(mailbox = %mailbox.id))]
pub async fn collect_mailbox(
    config: &Config,
    mailbox: &Mailbox,
    store: &StoreHandle,
) -> Result<MailboxReport, CollectError> {
    let imap_err = |source| CollectError::Imap {
        mailbox: mailbox.id.clone(),
        folder: None,
        source,
    };
    let password = mailbox
        .password
        .resolve()
        .map_err(|source| CollectError::Secret {
            mailbox: mailbox.id.clone(),
            source,
        })?;
    let mut matcher = matcher(config, mailbox, store).await?;
    let mut conn = ImapConnection::connect(mailbox, &password)
        .await
        .map_err(imap_err)?;
    let mut report = MailboxReport::default();
    for folder in &mailbox.folders {
        match collect_folder(&mut conn, &mut matcher, mailbox, folder, store).await {
            Ok(f) => report.folders.push(f),
            Err(e) => {
                tracing::warn!(folder, error = %crate::send::error_chain(&e), "folder not collected");
                report.errors.push(e);
            }
        }
    }
    conn.logout().await;
    Ok(report)
}

async fn collect_folder(
    conn: &mut ImapConnection,
    matcher: &mut Matcher<'_>,
    mailbox: &Mailbox,
    folder: &str,
    store: &StoreHandle,
) -> Result<FolderReport, CollectError> {
    let imap_err = |source| CollectError::Imap {
        mailbox: mailbox.id.clone(),
        folder: Some(folder.to_owned()),
        source,
    };
    let state = conn.examine(folder).await.map_err(imap_err)?;
    let (mb, f) = (mailbox.id.clone(), folder.to_owned());
    let cursor = store
        .call(move |s| s.cursor(&mb, &f))
        .await
        .map_err(|source| CollectError::Store {
            mailbox: mailbox.id.clone(),
            source,
        })?;
    let resynced = cursor.is_some_and(|c| c.uidvalidity != state.uidvalidity);
    let after = match cursor {
        Some(c) if !resynced => c.last_uid,
        _ => 0,
    };
    if resynced {
        tracing::warn!(folder, old = ?cursor, new = state.uidvalidity, "UIDVALIDITY changed: resyncing the folder");
    }
    let uids = conn.uids_after(after).await.map_err(imap_err)?;
    let mut report = FolderReport {
        mailbox: mailbox.id.clone(),
        folder: folder.to_owned(),
        uidvalidity: state.uidvalidity,
        resynced,
        ..FolderReport::default()
    };
    let total = uids.len();
    let started = std::time::Instant::now();
    // Pipelined: the next batches are fetched while this one is parsed, matched and stored,
    // so the server's work and ours overlap (a first sync of a large folder is bound by
    // whichever is slower, not by their sum). At most FETCH_AHEAD batches wait; the cursor
    // still moves only with stored messages, so a failure anywhere loses nothing.
    let (tx, mut rx) = mpsc::channel::<(u32, Vec<FetchedMessage>)>(FETCH_AHEAD);
    let producer = async move {
        for chunk in uids.chunks(BATCH) {
            let fetched = conn.fetch(chunk).await.map_err(imap_err)?;
            let last = chunk.last().copied().unwrap_or(after);
            if tx.send((last, fetched)).await.is_err() {
                break;
            }
        }
        Ok::<(), CollectError>(())
    };
    let consumer = async {
        while let Some((last_uid, fetched)) = rx.recv().await {
            report.fetched += fetched.len();
            let msgs: Vec<InboundMessage> =
                fetched.into_iter().map(|m| matcher.ingest(m)).collect();
            let next = Cursor {
                uidvalidity: state.uidvalidity,
                last_uid,
            };
            let (mb, f) = (mailbox.id.clone(), folder.to_owned());
            let outcome = store
                .call(move |s| s.store_imap_batch(&mb, &f, next, &msgs))
                .await
                .map_err(|source| CollectError::Store {
                    mailbox: mailbox.id.clone(),
                    source,
                })?;
            report.outcome.stored += outcome.stored;
            report.outcome.matched += outcome.matched;
            report.outcome.duplicates += outcome.duplicates;
            if total > BATCH {
                tracing::info!(
                    folder,
                    done = report.fetched,
                    total,
                    per_s =
                        (report.fetched as f64 / started.elapsed().as_secs_f64().max(1e-3)) as u64,
                    "collect progress"
                );
            }
        }
        Ok::<(), CollectError>(())
    };
    tokio::try_join!(producer, consumer)?;
    if total == 0 && cursor.is_none_or(|c| c.uidvalidity != state.uidvalidity) {
        // Remember the (empty) folder's UIDVALIDITY so a later change is noticed.
        let (mb, f) = (mailbox.id.clone(), folder.to_owned());
        let next = Cursor {
            uidvalidity: state.uidvalidity,
            last_uid: 0,
        };
        store
            .call(move |s| s.store_imap_batch(&mb, &f, next, &[]))
            .await
            .map_err(|source| CollectError::Store {
                mailbox: mailbox.id.clone(),
                source,
            })?;
    }
    tracing::info!(
        folder,
        fetched = report.fetched,
        stored = report.outcome.stored,
        matched = report.outcome.matched,
        "folder collected"
    );
    Ok(report)
}

/// The reply-source name of one IMAP folder, as recorded for `status`.
pub fn folder_source(mailbox: &str, folder: &str) -> String {
    format!("imap:{mailbox}/{folder}")
}

async fn record(store: &StoreHandle, source: String, error: Option<String>) {
    let recorded = store
        .call(move |s| s.record_collect(&source, now_millis(), error.as_deref()))
        .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "cannot record the collect outcome");
    }
}

/// One pass over every mailbox; a failing mailbox does not stop the others. Each folder's
/// outcome is recorded for `status`.
pub async fn collect_all(
    config: &Config,
    store: &StoreHandle,
) -> Vec<(String, Result<MailboxReport, CollectError>)> {
    let mut out = Vec::new();
    for mailbox in &config.mailboxes {
        let result = collect_mailbox(config, mailbox, store).await;
        for folder in &mailbox.folders {
            let error = match &result {
                Err(e) => Some(error_chain(e)),
                Ok(r) => r
                    .errors
                    .iter()
                    .find(|e| e.folder() == Some(folder.as_str()))
                    .map(|e| error_chain(e)),
            };
            record(store, folder_source(&mailbox.id, folder), error).await;
        }
        out.push((mailbox.id.clone(), result));
    }
    out
}

/// How a folder watcher waits and retries.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// IDLE is re-issued after this long without news (servers drop IDLE after 30 min).
    pub idle_timeout: Duration,
    /// Polling interval when the server has no IDLE.
    pub poll_interval: Duration,
    /// First wait before reconnecting after an error; doubles up to `backoff_max`.
    pub backoff_start: Duration,
    pub backoff_max: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            idle_timeout: Duration::from_secs(10 * 60),
            poll_interval: Duration::from_secs(60),
            backoff_start: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
        }
    }
}

/// Watches one folder until `stop` is cancelled: collect what is new, then wait in IDLE (or
/// poll) and collect again on every change. Connection errors are logged, recorded for
/// `status` and retried with exponential backoff; nothing is lost meanwhile because the
/// cursor only moves with stored messages. Each pass's report is sent to `reports` if given.
#[tracing::instrument(skip_all, fields(mailbox = %mailbox_id, folder = %folder))]
pub async fn watch_folder(
    config: Arc<Config>,
    mailbox_id: String,
    folder: String,
    store: StoreHandle,
    stop: CancellationToken,
    reports: Option<mpsc::UnboundedSender<FolderReport>>,
    opts: WatchOptions,
) {
    let Some(mailbox) = config.mailbox(&mailbox_id) else {
        tracing::error!("no such mailbox in the config");
        return;
    };
    let mut backoff = opts.backoff_start;
    while !stop.is_cancelled() {
        let result = watch_session(
            &config,
            mailbox,
            &folder,
            &store,
            &stop,
            reports.as_ref(),
            opts,
            &mut backoff,
        )
        .await;
        let Err(e) = result else { break };
        let message = error_chain(&e);
        tracing::warn!(error = %message, retry_in = ?backoff, "watcher lost its connection");
        record(&store, folder_source(&mailbox.id, &folder), Some(message)).await;
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(opts.backoff_max);
    }
    tracing::info!("watcher stopped");
}

#[allow(clippy::too_many_arguments)]
async fn watch_session(
    config: &Config,
    mailbox: &Mailbox,
    folder: &str,
    store: &StoreHandle,
    stop: &CancellationToken,
    reports: Option<&mpsc::UnboundedSender<FolderReport>>,
    opts: WatchOptions,
    backoff: &mut Duration,
) -> Result<(), CollectError> {
    let imap_err = |source| CollectError::Imap {
        mailbox: mailbox.id.clone(),
        folder: Some(folder.to_owned()),
        source,
    };
    let password = mailbox
        .password
        .resolve()
        .map_err(|source| CollectError::Secret {
            mailbox: mailbox.id.clone(),
            source,
        })?;
    let mut conn = ImapConnection::connect(mailbox, &password)
        .await
        .map_err(imap_err)?;
    let mut matcher = matcher(config, mailbox, store).await?;
    loop {
        // Probes are sent while we watch: load the ones stored since the last pass.
        matcher
            .refresh(store)
            .await
            .map_err(|source| CollectError::Store {
                mailbox: mailbox.id.clone(),
                source,
            })?;
        let report = collect_folder(&mut conn, &mut matcher, mailbox, folder, store).await?;
        *backoff = opts.backoff_start;
        record(store, folder_source(&mailbox.id, folder), None).await;
        if let Some(tx) = reports {
            let _ = tx.send(report);
        }
        if stop.is_cancelled() {
            break;
        }
        if conn.supports_idle() {
            let (c, wake) = conn
                .idle(opts.idle_timeout, stop.cancelled())
                .await
                .map_err(imap_err)?;
            conn = c;
            if wake == Wake::Stopped {
                break;
            }
        } else {
            tokio::select! {
                () = tokio::time::sleep(opts.poll_interval) => {}
                () = stop.cancelled() => break,
            }
        }
    }
    conn.logout().await;
    Ok(())
}
