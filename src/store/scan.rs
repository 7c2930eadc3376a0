//! The scoring scan: every probe of a window with its events, one probe at a time, without
//! holding the archive in memory (a report on a million probes and five million events reads
//! them in well under two seconds and keeps only what scoring accumulates).
//!
//! Two ordered cursors are merged: probes by id (the primary key's index) and events by
//! (probe id, occurred_at, id) from the covering index `events_score` (migration 005), which
//! holds every column scoring reads, so SQLite neither sorts nor visits the events table.
//! For a database file the events are read by a second thread on its own read-only
//! connection and handed over in batches, so reading events and reading probes + scoring run
//! on two cores. Each side reads one consistent snapshot; a write that lands between the two
//! snapshots shows up as if the report had run a moment earlier or later for those probes.
//! Reviewer overrides (few) are loaded first and applied by event id. Like the rest of the
//! store, this speaks SQL only; what the rows mean is `crate::score`'s business.

use std::collections::HashMap;
use std::sync::mpsc;

use rusqlite::params;
use rusqlite::types::ValueRef;

use super::{Result, Store, StoreError, parse_name, q};
use crate::model::{EventKind, Millis};
use crate::score::probe::{EventRow, ProbeRow};

/// Events per batch handed from the reader to the merger.
const BATCH_EVENTS: usize = 8192;

const EVENTS_SQL: &str = "SELECT probe_id, occurred_at, id, kind, observed_at, language, \
     facts_matched FROM events ORDER BY probe_id, occurred_at, id";

/// Parses a stored name without allocating (the scan reads millions).
fn name<T: std::str::FromStr>(what: &'static str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// A column's bytes (text or blob; empty otherwise), without UTF-8 validation.
fn bytes<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8]> {
    match r.get_ref(i).map_err(q("scan events"))? {
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(b),
        _ => Ok(&[]),
    }
}

/// An event kind from its stored bytes.
fn kind(b: &[u8]) -> Result<EventKind> {
    EventKind::ALL
        .iter()
        .copied()
        .find(|k| k.as_str().as_bytes() == b)
        .ok_or_else(|| StoreError::Corrupt {
            what: "events.kind",
            detail: String::from_utf8_lossy(b).into_owned(),
        })
}

/// Whether scoring reads more than an event's kind and time: the observation latency of
/// acknowledgements and replies, and the language and facts of human replies.
fn is_response(k: EventKind) -> bool {
    matches!(k, EventKind::AutoAck | EventKind::Bot | EventKind::Human)
}

/// One event as read, with its probe id and language as ranges into its batch's buffers.
#[derive(Debug, Clone, Copy)]
struct Ev {
    probe: (u32, u32),
    occurred_at: Millis,
    observed_at: Millis,
    kind: EventKind,
    classified: EventKind,
    language: Option<(u32, u32)>,
    facts_matched: Option<bool>,
}

/// A run of events in index order.
#[derive(Default)]
struct Batch {
    ids: Vec<u8>,
    text: String,
    events: Vec<Ev>,
}

impl Batch {
    fn probe(&self, e: &Ev) -> &[u8] {
        &self.ids[e.probe.0 as usize..e.probe.1 as usize]
    }

    fn language(&self, e: &Ev) -> Option<&str> {
        e.language.map(|(a, b)| &self.text[a as usize..b as usize])
    }
}

/// Reads up to [`BATCH_EVENTS`] events into `batch` (emptied first; its buffers are reused);
/// an empty batch means the end. Events after `as_of` are left out. Columns scoring does not
/// need for an event's kind are not read.
fn read_batch(
    rows: &mut rusqlite::Rows<'_>,
    overrides: &HashMap<Vec<u8>, EventKind>,
    as_of: Option<Millis>,
    mut batch: Batch,
) -> Result<Batch> {
    batch.ids.clear();
    batch.text.clear();
    batch.events.clear();
    while batch.events.len() < BATCH_EVENTS {
        let Some(r) = rows.next().map_err(q("scan events"))? else {
            break;
        };
        let occurred_at: Millis = r.get(1).map_err(q("scan events"))?;
        if as_of.is_some_and(|t| occurred_at > t) {
            continue;
        }
        let classified = kind(bytes(r, 3)?)?;
        let reviewed = if overrides.is_empty() {
            classified
        } else {
            overrides.get(bytes(r, 2)?).copied().unwrap_or(classified)
        };
        let start = batch.ids.len() as u32;
        batch.ids.extend_from_slice(bytes(r, 0)?);
        let mut ev = Ev {
            probe: (start, batch.ids.len() as u32),
            occurred_at,
            observed_at: occurred_at,
            kind: reviewed,
            classified,
            language: None,
            facts_matched: None,
        };
        if is_response(classified) || is_response(reviewed) {
            ev.observed_at = r.get(4).map_err(q("scan events"))?;
        }
        if classified == EventKind::Human || reviewed == EventKind::Human {
            if let ValueRef::Text(b) = r.get_ref(5).map_err(q("scan events"))? {
                let s = std::str::from_utf8(b).map_err(|e| StoreError::Corrupt {
                    what: "events.language",
                    detail: e.to_string(),
                })?;
                let a = batch.text.len() as u32;
                batch.text.push_str(s);
                ev.language = Some((a, batch.text.len() as u32));
            }
            ev.facts_matched = r.get(6).map_err(q("scan events"))?;
        }
        batch.events.push(ev);
    }
    Ok(batch)
}

/// Where the merger gets its batches: the same connection, or a reader thread (to which
/// used batches go back, so their buffers are reused rather than allocated and faulted in
/// again for every batch).
enum Source<'s> {
    Inline(rusqlite::Rows<'s>),
    Thread {
        batches: mpsc::Receiver<Result<Batch>>,
        used: mpsc::Sender<Batch>,
    },
}

impl Source<'_> {
    fn next(
        &mut self,
        overrides: &HashMap<Vec<u8>, EventKind>,
        as_of: Option<Millis>,
        used: Batch,
    ) -> Result<Batch> {
        match self {
            Source::Inline(rows) => read_batch(rows, overrides, as_of, used),
            Source::Thread {
                batches,
                used: back,
            } => {
                let _ = back.send(used);
                // A reader that stopped early sent its error first; a closed channel is the
                // end.
                batches.recv().unwrap_or_else(|_| Ok(Batch::default()))
            }
        }
    }
}

/// The read-ahead cursor over the event stream.
struct Events<'s> {
    source: Source<'s>,
    batch: Batch,
    pos: usize,
    done: bool,
}

impl Events<'_> {
    /// The next event (from the current batch), fetching a new batch when needed.
    fn peek(
        &mut self,
        overrides: &HashMap<Vec<u8>, EventKind>,
        as_of: Option<Millis>,
    ) -> Result<Option<Ev>> {
        while self.pos >= self.batch.events.len() {
            if self.done {
                return Ok(None);
            }
            let used = std::mem::take(&mut self.batch);
            self.batch = self.source.next(overrides, as_of, used)?;
            self.pos = 0;
            self.done = self.batch.events.is_empty();
        }
        Ok(Some(self.batch.events[self.pos]))
    }
}

impl Store {
    /// Calls `f` once per probe whose `COALESCE(sent_at, created_at)` lies in `[since, until)`
    /// (either bound optional), in id order, with its events ordered by (occurred_at, id),
    /// their kind as reviewed (newest override) and as classified. With `as_of`, events that
    /// occurred later and overrides made later are left out (the evidence as it stood then).
    /// Returns how many probes were visited.
    #[tracing::instrument(skip_all)]
    pub fn scan_for_scoring(
        &self,
        since: Option<Millis>,
        until: Option<Millis>,
        as_of: Option<Millis>,
        mut f: impl FnMut(&ProbeRow<'_>, &[EventRow<'_>]),
    ) -> Result<u64> {
        let mut overrides: HashMap<Vec<u8>, EventKind> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT event_id, kind FROM overrides WHERE ?1 IS NULL OR at <= ?1 \
                     ORDER BY at, id",
                )
                .map_err(q("scan overrides"))?;
            let mut rows = stmt.query([as_of]).map_err(q("scan overrides"))?;
            while let Some(r) = rows.next().map_err(q("scan overrides"))? {
                let kind: String = r.get(1).map_err(q("scan overrides"))?;
                let event: String = r.get(0).map_err(q("scan overrides"))?;
                overrides.insert(event.into_bytes(), parse_name("overrides.kind", kind)?);
            }
        }
        let file = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        match file {
            // An in-memory database has no second connection: read inline.
            None => {
                let mut stmt = self.conn.prepare(EVENTS_SQL).map_err(q("scan events"))?;
                let rows = stmt.query([]).map_err(q("scan events"))?;
                self.merge(
                    since,
                    until,
                    as_of,
                    &overrides,
                    Source::Inline(rows),
                    &mut f,
                )
            }
            Some(path) => std::thread::scope(|scope| {
                let (tx, rx) = mpsc::sync_channel::<Result<Batch>>(4);
                let (used_tx, used_rx) = mpsc::channel::<Batch>();
                let overrides_ref = &overrides;
                scope.spawn(move || {
                    let read = || -> Result<()> {
                        let conn = rusqlite::Connection::open_with_flags(
                            &path,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .map_err(|source| StoreError::Open {
                            path: path.clone(),
                            source,
                        })?;
                        conn.busy_timeout(std::time::Duration::from_secs(10))
                            .map_err(q("set busy timeout"))?;
                        let mut stmt = conn.prepare(EVENTS_SQL).map_err(q("scan events"))?;
                        let mut rows = stmt.query([]).map_err(q("scan events"))?;
                        loop {
                            let spare = used_rx.try_recv().unwrap_or_default();
                            let batch = read_batch(&mut rows, overrides_ref, as_of, spare)?;
                            let end = batch.events.is_empty();
                            // The merger stopped (it failed): nothing more to do.
                            if tx.send(Ok(batch)).is_err() || end {
                                return Ok(());
                            }
                        }
                    };
                    if let Err(e) = read() {
                        let _ = tx.send(Err(e));
                    }
                });
                self.merge(
                    since,
                    until,
                    as_of,
                    &overrides,
                    Source::Thread {
                        batches: rx,
                        used: used_tx,
                    },
                    &mut f,
                )
            }),
        }
    }

    /// Walks the probes of the window in id order and hands each its run of events.
    fn merge(
        &self,
        since: Option<Millis>,
        until: Option<Millis>,
        as_of: Option<Millis>,
        overrides: &HashMap<Vec<u8>, EventKind>,
        source: Source<'_>,
        f: &mut impl FnMut(&ProbeRow<'_>, &[EventRow<'_>]),
    ) -> Result<u64> {
        let mut probes = self
            .conn
            .prepare(
                "SELECT id, target, channel, status, sent_at, created_at, urgency, language, \
                 send_error IS NOT NULL FROM probes \
                 WHERE (?1 IS NULL OR COALESCE(sent_at, created_at) >= ?1) \
                 AND (?2 IS NULL OR COALESCE(sent_at, created_at) < ?2) \
                 ORDER BY id",
            )
            .map_err(q("scan probes"))?;
        let mut probe_rows = probes
            .query(params![since, until])
            .map_err(q("scan probes"))?;
        let mut events = Events {
            source,
            batch: Batch::default(),
            pos: 0,
            done: false,
        };
        // The current probe's events, copied out of the batches (a run may span two).
        let mut mine: Vec<Ev> = Vec::new();
        let mut languages = String::new();
        let mut visited = 0;
        while let Some(p) = probe_rows.next().map_err(q("scan probes"))? {
            let text = |i: usize| -> Result<&str> {
                p.get_ref(i)
                    .and_then(|v| v.as_str().map_err(Into::into))
                    .map_err(q("scan probes"))
            };
            let id = text(0)?;
            mine.clear();
            languages.clear();
            while let Some(e) = events.peek(overrides, as_of)? {
                let of = events.batch.probe(&e);
                if of > id.as_bytes() {
                    break;
                }
                events.pos += 1;
                if of < id.as_bytes() {
                    // An event of a probe outside the window (or of none).
                    continue;
                }
                let mut e = e;
                e.language = events.batch.language(&e).map(|l| {
                    let a = languages.len() as u32;
                    languages.push_str(l);
                    (a, languages.len() as u32)
                });
                mine.push(e);
            }
            let rows: Vec<EventRow<'_>> = mine
                .iter()
                .map(|e| EventRow {
                    kind: e.kind,
                    classified: e.classified,
                    occurred_at: e.occurred_at,
                    observed_at: e.observed_at,
                    language: e.language.map(|(a, b)| &languages[a as usize..b as usize]),
                    facts_matched: e.facts_matched,
                })
                .collect();
            let probe = ProbeRow {
                id,
                target: text(1)?,
                channel: name("probes.channel", text(2)?)?,
                status: name("probes.status", text(3)?)?,
                sent_at: p.get(4).map_err(q("scan probes"))?,
                created_at: p.get(5).map_err(q("scan probes"))?,
                urgency: name("probes.urgency", text(6)?)?,
                language: text(7)?,
                send_error: p.get(8).map_err(q("scan probes"))?,
            };
            f(&probe, &rows);
            visited += 1;
        }
        Ok(visited)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::model::{ChannelKind, Event, MatchMethod, Probe, ProbeStatus, Urgency};
    use crate::score::{ScoreInput, ScoreOptions, Scorer, score};
    use crate::store::Store;
    use crate::store::evidence::{ImportBatch, ImportedEvent, Override};

    use super::*;

    const CONFIG: &str = r#"
[[mailbox]]
id = "m"
smtp = "smtps://mail.example.org:465"
imap = "imaps://mail.example.org:993"
username = "u"
password-env = "X"
folders = ["INBOX"]

[[persona]]
id = "lin"
name = "Lin"
email = "lin@example.org"
mailbox = "m"
languages = ["en"]

[[script]]
id = "s"
[script.text.en]
subject = "s"
body = "b"

[[target]]
id = "kucoin"
name = "KuCoin"
timezone = "Asia/Singapore"
[target.claims]
source = "https://example.org"
captured = "2026-11-01"
availability = "24/7"
first-response = { email = "1h" }
[[target.channel]]
kind = "email"
address = "support@kucoin.example"

[[target]]
id = "htx"
name = "HTX"
timezone = "Europe/Paris"
[target.claims]
source = "https://example.org"
captured = "2026-11-01"
availability = "24/7"
first-response = { email = "4h" }
[[target.channel]]
kind = "email"
address = "support@htx.example"
"#;

    /// A varied archive: every status, unknown targets, several events per probe (with ties
    /// in time), languages, facts, overrides, and probes without events.
    fn archive() -> ImportBatch {
        let mut b = ImportBatch::default();
        let base = 1_790_000_000_000i64;
        let statuses = [
            ProbeStatus::Sent,
            ProbeStatus::Sent,
            ProbeStatus::SendFailed,
            ProbeStatus::SentUnconfirmed,
            ProbeStatus::Closed,
            ProbeStatus::Sending,
        ];
        let kinds = [
            EventKind::Accepted,
            EventKind::AutoAck,
            EventKind::Human,
            EventKind::Bot,
            EventKind::Bounce,
            EventKind::Human,
            EventKind::FollowUp,
        ];
        let mut line = 0;
        for i in 0..300usize {
            let status = statuses[i % statuses.len()];
            let t0 = base + (i as i64 * 7_919_000) % 900_000_000;
            let sent_at = matches!(status, ProbeStatus::Sent | ProbeStatus::Closed)
                .then_some(t0 + 300)
                .filter(|_| i % 11 != 0);
            // Ids out of time order, so id order and send order differ.
            let id = format!("P{:05}", (i * 7919) % 1000);
            line += 1;
            b.probes.push((
                line,
                Probe {
                    id: id.clone(),
                    target: ["kucoin", "htx", "gone"][i % 3].into(),
                    channel: ChannelKind::Email,
                    script: "s".into(),
                    persona: "lin".into(),
                    language: if i % 4 == 0 { "zh".into() } else { "en".into() },
                    urgency: if i % 5 == 0 {
                        Urgency::Urgent
                    } else {
                        Urgency::Normal
                    },
                    status,
                    token: format!("imported:{id}"),
                    message_id: None,
                    sender: None,
                    recipient: None,
                    subject: None,
                    raw_sha256: None,
                    created_at: t0,
                    sent_at,
                    send_error: (status == ProbeStatus::SendFailed || i % 13 == 0)
                        .then(|| "refused".into()),
                    closed_at: None,
                    vantage: "v".into(),
                },
            ));
            for k in 0..(i % 5) {
                let kind = kinds[(i + k) % kinds.len()];
                // Two events at the same instant now and then: ties break by id.
                let at = t0 + (k as i64 / 2) * 1_800_000 + (i as i64 % 3) * 3_600_000;
                line += 1;
                b.events.push((
                    line,
                    ImportedEvent {
                        event: Event {
                            id: format!("E{:05}{k}", (i * 31) % 1000),
                            probe_id: id.clone(),
                            kind,
                            overridden_from: None,
                            occurred_at: at,
                            observed_at: at + 250 + k as i64,
                            source: format!("imap:m/INBOX/1/{i}/{k}"),
                            match_method: Some(MatchMethod::Thread),
                            language: match (i + k) % 4 {
                                0 => None,
                                1 => Some("zh-Hans".into()),
                                _ => Some("EN".into()),
                            },
                            facts_matched: [None, Some(true), Some(false)][(i + k) % 3],
                            reasons: vec![],
                            raw_sha256: None,
                            mail: None,
                        },
                        raw: None,
                    },
                ));
                if (i + k) % 9 == 0 {
                    line += 1;
                    b.overrides.push((
                        line,
                        Override {
                            id: format!("O{i}-{k}"),
                            event_id: format!("E{:05}{k}", (i * 31) % 1000),
                            kind: if kind == EventKind::Human {
                                EventKind::AutoAck
                            } else {
                                EventKind::Human
                            },
                            reason: "r".into(),
                            reviewer: "me".into(),
                            at: at + 86_400_000,
                        },
                    ));
                }
            }
        }
        b
    }

    fn check(store: &Store) {
        let config = crate::config::parse(CONFIG, Path::new("probes.toml")).unwrap();
        let now = 1_790_600_000_000;
        let windows = [
            (None, None),
            (Some(1_790_200_000_000), None),
            (None, Some(1_790_500_000_000)),
        ];
        for (since, until) in windows {
            for targets in [vec![], vec!["htx".to_owned()], vec!["gone".to_owned()]] {
                let ev = store.evidence_window(since, until, &targets).unwrap();
                let whole = score(ScoreInput {
                    config: &config,
                    probes: &ev.probes,
                    events: &ev.events,
                    now,
                    since,
                    until,
                    targets: &targets,
                });
                for per_probe in [true, false] {
                    let mut scorer = Scorer::new(
                        &config,
                        now,
                        since,
                        until,
                        &targets,
                        ScoreOptions { per_probe },
                    );
                    let visited = store
                        .scan_for_scoring(since, until, None, |p, e| scorer.add(p, e))
                        .unwrap();
                    assert!(visited > 0);
                    let streamed = scorer.finish();
                    if per_probe {
                        assert_eq!(streamed, whole, "window {since:?}..{until:?} {targets:?}");
                    } else {
                        let mut expected = whole.clone();
                        for t in &mut expected.targets {
                            for c in &mut t.channels {
                                c.probes.clear();
                            }
                        }
                        assert_eq!(streamed, expected);
                    }
                }
            }
        }
        // The overrides did change figures, so the comparison above covered them.
        let ev = store.evidence_window(None, None, &[]).unwrap();
        assert!(ev.events.iter().any(|e| e.overridden_from.is_some()));
        // As of an instant: later events and overrides are left out.
        let as_of = 1_790_300_000_000;
        let mut seen = Vec::new();
        store
            .scan_for_scoring(None, None, Some(as_of), |_, e| {
                seen.extend(e.iter().map(|e| e.occurred_at))
            })
            .unwrap();
        assert!(!seen.is_empty() && seen.iter().all(|t| *t <= as_of));
    }

    #[test]
    fn the_streaming_scan_scores_like_the_whole_evidence_in_memory() {
        let mut memory = Store::open_in_memory().unwrap();
        memory.import_batch(&archive()).unwrap();
        check(&memory);
        // A file: events are read by a second thread on its own connection.
        let dir = tempfile::tempdir().unwrap();
        let mut file = Store::open(&dir.path().join("scan.db")).unwrap();
        file.import_batch(&archive()).unwrap();
        check(&file);
    }
}
