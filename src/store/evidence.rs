//! Store access for scoring, evidence bundles and reviews: probes and events of a window in
//! bulk (with reviewer overrides applied and the classifier's kind kept), recording an
//! override, and importing bundle records in one transaction.
//!
//! A second `impl Store` block beside `store/mod.rs`; like it, this module only speaks SQL and
//! must not decide anything (scoring is `crate::score`, bundle validation `crate::bundle`).
//! Imported raw evidence that did not travel with a bundle keeps its hash in `event_raw_refs`
//! (migration 003), because `events.raw_sha256` must reference a stored raw message.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{
    CachedExecute, EVENT_COLUMNS, PROBE_COLUMNS, RawEvent, RawProbe, Store, StoreError, event_row,
    json, parse_name, put_raw, q, raw_probe,
};
use crate::model::{Event, EventKind, Millis, Probe};

/// Errors of the evidence operations.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event to override does not exist.
    #[error("no event with id `{0}`")]
    NoSuchEvent(String),
    /// An imported record clashes with a different stored one.
    #[error("line {line}: {detail}")]
    Conflict {
        /// The bundle line.
        line: usize,
        /// What clashes.
        detail: String,
    },
}

type Result<T> = std::result::Result<T, EvidenceError>;

fn sq(what: &'static str) -> impl FnOnce(rusqlite::Error) -> EvidenceError {
    move |source| EvidenceError::Store(q(what)(source))
}

/// A reviewer's correction of an event's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// ULID.
    pub id: String,
    /// The event corrected.
    pub event_id: String,
    /// The kind the reviewer says it is.
    pub kind: EventKind,
    /// Why.
    pub reason: String,
    /// Who.
    pub reviewer: String,
    /// When (UTC ms).
    pub at: Millis,
}

/// An event to import, with its raw message when the bundle carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedEvent {
    /// The event, with the classifier's kind and no override.
    pub event: Event,
    /// Raw bytes (their SHA-256 is `event.raw_sha256`).
    pub raw: Option<Vec<u8>>,
}

/// Validated bundle records, each with its 1-based line in the file.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    /// Probes.
    pub probes: Vec<(usize, Probe)>,
    /// Events.
    pub events: Vec<(usize, ImportedEvent)>,
    /// Overrides.
    pub overrides: Vec<(usize, Override)>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Probes new to the store.
    pub probes_new: usize,
    /// Probes already there (same id).
    pub probes_known: usize,
    /// Events new to the store.
    pub events_new: usize,
    /// Events already there.
    pub events_known: usize,
    /// Overrides new to the store.
    pub overrides_new: usize,
    /// Overrides already there.
    pub overrides_known: usize,
    /// Raw messages stored (new or already present).
    pub raw_messages: usize,
}

/// Probes and events selected for a window.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Probes whose `COALESCE(sent_at, created_at)` lies in the window, oldest first.
    pub probes: Vec<Probe>,
    /// Their events in time order, `kind` with the newest override applied and
    /// `overridden_from` the classifier's kind; `mail` is not loaded.
    pub events: Vec<Event>,
}

impl Store {
    /// Probes sent in `[since, until)` (by `sent_at`, else `created_at`; either bound
    /// optional), restricted to `targets` unless empty, with their events.
    #[tracing::instrument(skip_all)]
    pub fn evidence_window(
        &self,
        since: Option<Millis>,
        until: Option<Millis>,
        targets: &[String],
    ) -> Result<Evidence> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PROBE_COLUMNS} FROM probes \
                 WHERE (?1 IS NULL OR COALESCE(sent_at, created_at) >= ?1) \
                 AND (?2 IS NULL OR COALESCE(sent_at, created_at) < ?2) \
                 ORDER BY COALESCE(sent_at, created_at), id"
            ))
            .map_err(sq("list window probes"))?;
        let rows = stmt
            .query_map(params![since, until], raw_probe)
            .map_err(sq("list window probes"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sq("list window probes"))?;
        let probes = rows
            .into_iter()
            .map(RawProbe::into_probe)
            .filter(|p| {
                p.as_ref()
                    .map_or(true, |p| targets.is_empty() || targets.contains(&p.target))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let ids: HashSet<&str> = probes.iter().map(|p| p.id.as_str()).collect();

        // Window queries carry no message details (the report decodes raw evidence itself).
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS}, NULL, NULL, NULL, NULL, NULL \
                 FROM events e JOIN probes p ON p.id = e.probe_id \
                 WHERE (?1 IS NULL OR COALESCE(p.sent_at, p.created_at) >= ?1) \
                 AND (?2 IS NULL OR COALESCE(p.sent_at, p.created_at) < ?2) \
                 ORDER BY e.occurred_at, e.id"
            ))
            .map_err(sq("list window events"))?;
        let rows = stmt
            .query_map(params![since, until], event_row)
            .map_err(sq("list window events"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sq("list window events"))?;
        let events = rows
            .into_iter()
            .filter(|r| ids.contains(r.probe_id()))
            .map(RawEvent::into_event)
            .collect::<std::result::Result<Vec<_>, StoreError>>()?;
        Ok(Evidence { probes, events })
    }

    /// Every override of the given events, oldest first.
    pub fn overrides_of(&self, event_ids: &[String]) -> Result<Vec<Override>> {
        let wanted: HashSet<&str> = event_ids.iter().map(String::as_str).collect();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, event_id, kind, reason, reviewer, at FROM overrides \
                 ORDER BY at, id",
            )
            .map_err(sq("list overrides"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(sq("list overrides"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(sq("list overrides"))?;
        rows.into_iter()
            .filter(|(_, event_id, ..)| wanted.contains(event_id.as_str()))
            .map(|(id, event_id, kind, reason, reviewer, at)| {
                Ok(Override {
                    id,
                    event_id,
                    kind: parse_name("overrides.kind", kind)?,
                    reason,
                    reviewer,
                    at,
                })
            })
            .collect()
    }

    /// Records a reviewer's override of an event's kind; returns the override's id.
    #[tracing::instrument(skip(self, reason))]
    pub fn add_override(
        &mut self,
        event_id: &str,
        kind: EventKind,
        reason: &str,
        reviewer: &str,
        at: Millis,
    ) -> Result<String> {
        if !self.event_exists(event_id)? {
            return Err(EvidenceError::NoSuchEvent(event_id.to_owned()));
        }
        let id = ulid::Ulid::new().to_string();
        self.conn
            .execute(
                "INSERT INTO overrides (id, event_id, kind, reason, reviewer, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, event_id, kind.as_str(), reason, reviewer, at],
            )
            .map_err(sq("insert override"))?;
        Ok(id)
    }

    /// Whether a probe with this id is stored.
    pub fn probe_exists(&self, id: &str) -> Result<bool> {
        exists(
            &self.conn,
            "SELECT 1 FROM probes WHERE id = ?1",
            id,
            "find probe",
        )
    }

    /// Whether an event with this id is stored.
    pub fn event_exists(&self, id: &str) -> Result<bool> {
        exists(
            &self.conn,
            "SELECT 1 FROM events WHERE id = ?1",
            id,
            "find event",
        )
    }

    /// Imports bundle records in one transaction: each probe, event and override is inserted
    /// unless its id is already stored (so importing the same bundle twice changes nothing).
    /// An event whose `source` already belongs to a different event is a conflict, and then
    /// nothing of the batch is written.
    #[tracing::instrument(skip_all, fields(probes = batch.probes.len(), events = batch.events.len()))]
    pub fn import_batch(&mut self, batch: &ImportBatch) -> Result<ImportOutcome> {
        let tx = self.conn.transaction().map_err(sq("begin"))?;
        let mut out = ImportOutcome::default();
        for (line, p) in &batch.probes {
            let n = tx
                .execute_cached(
                    "INSERT OR IGNORE INTO probes (id, target, channel, script, persona, \
                     language, urgency, status, token, message_id, sender, recipient, subject, \
                     raw_sha256, created_at, sent_at, send_error, closed_at, vantage) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
                     ?16, ?17, ?18, ?19)",
                    params![
                        p.id,
                        p.target,
                        p.channel.as_str(),
                        p.script,
                        p.persona,
                        p.language,
                        p.urgency.as_str(),
                        p.status.as_str(),
                        p.token,
                        p.message_id,
                        p.sender,
                        p.recipient,
                        p.subject,
                        p.raw_sha256,
                        p.created_at,
                        p.sent_at,
                        p.send_error,
                        p.closed_at,
                        p.vantage,
                    ],
                )
                .map_err(sq("import probe"))?;
            if n == 1 {
                out.probes_new += 1;
            } else if exists(
                &tx,
                "SELECT 1 FROM probes WHERE id = ?1",
                &p.id,
                "find probe",
            )? {
                out.probes_known += 1;
            } else {
                return Err(EvidenceError::Conflict {
                    line: *line,
                    detail: format!("probe `{}` clashes with a stored probe", p.id),
                });
            }
        }
        for (line, ie) in &batch.events {
            let e = &ie.event;
            if let Some(raw) = &ie.raw {
                put_raw(&tx, raw)?;
                out.raw_messages += 1;
            }
            let raw_stored = match &e.raw_sha256 {
                Some(sha) => exists(
                    &tx,
                    "SELECT 1 FROM raw_messages WHERE sha256 = ?1",
                    sha,
                    "find raw message",
                )?,
                None => false,
            };
            let n = tx
                .execute_cached(
                    "INSERT OR IGNORE INTO events (id, probe_id, kind, occurred_at, observed_at, \
                     source, match_method, language, facts_matched, reasons, raw_sha256) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        e.id,
                        e.probe_id,
                        e.kind.as_str(),
                        e.occurred_at,
                        e.observed_at,
                        e.source,
                        e.match_method.map(|m| m.as_str()),
                        e.language,
                        e.facts_matched,
                        json(&e.reasons),
                        e.raw_sha256.as_ref().filter(|_| raw_stored),
                    ],
                )
                .map_err(sq("import event"))?;
            if n == 1 {
                out.events_new += 1;
                if let (Some(sha), false) = (&e.raw_sha256, raw_stored) {
                    tx.execute_cached(
                        "INSERT OR IGNORE INTO event_raw_refs (event_id, raw_sha256) \
                         VALUES (?1, ?2)",
                        params![e.id, sha],
                    )
                    .map_err(sq("import raw reference"))?;
                }
            } else if exists(
                &tx,
                "SELECT 1 FROM events WHERE id = ?1",
                &e.id,
                "find event",
            )? {
                out.events_known += 1;
                if let (Some(sha), true) = (&e.raw_sha256, raw_stored) {
                    // The raw message arrived with a later bundle: attach it.
                    tx.execute_cached(
                        "UPDATE events SET raw_sha256 = ?2 WHERE id = ?1 AND raw_sha256 IS NULL",
                        params![e.id, sha],
                    )
                    .map_err(sq("attach raw message"))?;
                }
            } else {
                let other: Option<String> = tx
                    .query_row(
                        "SELECT id FROM events WHERE source = ?1",
                        [&e.source],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sq("find event by source"))?;
                return Err(EvidenceError::Conflict {
                    line: *line,
                    detail: format!(
                        "event `{}` has source `{}`, which the stored event `{}` already has",
                        e.id,
                        e.source,
                        other.unwrap_or_default()
                    ),
                });
            }
        }
        for (line, o) in &batch.overrides {
            let n = tx
                .execute_cached(
                    "INSERT OR IGNORE INTO overrides (id, event_id, kind, reason, reviewer, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        o.id,
                        o.event_id,
                        o.kind.as_str(),
                        o.reason,
                        o.reviewer,
                        o.at
                    ],
                )
                .map_err(sq("import override"))?;
            if n == 1 {
                out.overrides_new += 1;
            } else if exists(
                &tx,
                "SELECT 1 FROM overrides WHERE id = ?1",
                &o.id,
                "find override",
            )? {
                out.overrides_known += 1;
            } else {
                return Err(EvidenceError::Conflict {
                    line: *line,
                    detail: format!("override `{}` clashes with a stored override", o.id),
                });
            }
        }
        tx.commit().map_err(sq("commit import"))?;
        Ok(out)
    }
}

fn exists(conn: &rusqlite::Connection, sql: &str, id: &str, what: &'static str) -> Result<bool> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row([id], |_| Ok(())))
        .optional()
        .map(|o| o.is_some())
        .map_err(sq(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChannelKind, MatchMethod, ProbeStatus, Urgency};

    fn probe(id: &str, sent_at: Option<Millis>) -> Probe {
        Probe {
            id: id.into(),
            target: "kucoin".into(),
            channel: ChannelKind::Email,
            script: "s".into(),
            persona: "lin".into(),
            language: "en".into(),
            urgency: Urgency::Normal,
            status: ProbeStatus::Sent,
            token: format!("imported:{id}"),
            message_id: None,
            sender: None,
            recipient: None,
            subject: None,
            raw_sha256: None,
            created_at: sent_at.unwrap_or(1000),
            sent_at,
            send_error: None,
            closed_at: None,
            vantage: "v".into(),
        }
    }

    fn event(id: &str, probe: &str, at: Millis, raw: Option<&[u8]>) -> ImportedEvent {
        ImportedEvent {
            event: Event {
                id: id.into(),
                probe_id: probe.into(),
                kind: EventKind::AutoAck,
                overridden_from: None,
                occurred_at: at,
                observed_at: at + 5,
                source: format!("imap:m/INBOX/1/{id}"),
                match_method: Some(MatchMethod::Thread),
                language: Some("en".into()),
                facts_matched: None,
                reasons: vec!["because".into()],
                raw_sha256: Some(super::super::sha256_hex(raw.unwrap_or(b"elsewhere"))),
                mail: None,
            },
            raw: raw.map(<[u8]>::to_vec),
        }
    }

    fn batch() -> ImportBatch {
        ImportBatch {
            probes: vec![(1, probe("P1", Some(1000))), (2, probe("P2", Some(5000)))],
            events: vec![
                (3, event("E1", "P1", 2000, Some(b"raw one"))),
                (4, event("E2", "P2", 6000, None)),
            ],
            overrides: vec![(
                5,
                Override {
                    id: "O1".into(),
                    event_id: "E1".into(),
                    kind: EventKind::Human,
                    reason: "a person wrote it".into(),
                    reviewer: "ana".into(),
                    at: 9000,
                },
            )],
        }
    }

    #[test]
    fn import_is_idempotent_and_keeps_hashes_without_raw() {
        let mut s = Store::open_in_memory().unwrap();
        let first = s.import_batch(&batch()).unwrap();
        assert_eq!(
            (first.probes_new, first.events_new, first.overrides_new),
            (2, 2, 1)
        );
        let again = s.import_batch(&batch()).unwrap();
        assert_eq!(
            (again.probes_new, again.events_new, again.overrides_new),
            (0, 0, 0)
        );
        assert_eq!(
            (
                again.probes_known,
                again.events_known,
                again.overrides_known
            ),
            (2, 2, 1)
        );

        let ev = s.evidence_window(None, None, &[]).unwrap();
        assert_eq!(ev.probes.len(), 2);
        assert_eq!(ev.events.len(), 2);
        let e1 = &ev.events[0];
        assert_eq!(
            (e1.kind, e1.overridden_from),
            (EventKind::Human, Some(EventKind::AutoAck))
        );
        assert_eq!(e1.reasons, vec!["because".to_owned()]);
        let e2 = &ev.events[1];
        assert_eq!(e2.raw_sha256, Some(super::super::sha256_hex(b"elsewhere")));
        // The per-probe listing (`evidence`) sees the referenced hash as well.
        let listed = s.events(&e2.probe_id).unwrap();
        let listed = listed.iter().find(|e| e.id == e2.id).unwrap();
        assert_eq!(listed.raw_sha256, e2.raw_sha256);
        assert_eq!(
            s.raw(e1.raw_sha256.as_deref().unwrap()).unwrap().unwrap(),
            b"raw one"
        );

        let window = s.evidence_window(Some(2000), None, &[]).unwrap();
        assert_eq!(window.probes.len(), 1);
        assert_eq!(window.events.len(), 1);
        assert_eq!(window.events[0].id, "E2");
        let none = s.evidence_window(None, None, &["okx".into()]).unwrap();
        assert!(none.probes.is_empty() && none.events.is_empty());
        assert_eq!(s.overrides_of(&["E1".into()]).unwrap().len(), 1);
    }

    #[test]
    fn a_clashing_event_source_writes_nothing() {
        let mut s = Store::open_in_memory().unwrap();
        s.import_batch(&batch()).unwrap();
        let mut b = ImportBatch {
            probes: vec![(1, probe("P3", Some(7000)))],
            ..ImportBatch::default()
        };
        let mut clash = event("E9", "P3", 8000, None);
        clash.event.source = "imap:m/INBOX/1/E1".into();
        b.events.push((2, clash));
        let err = s.import_batch(&b).unwrap_err();
        assert!(
            err.to_string().starts_with("line 2: event `E9` has source"),
            "{err}"
        );
        assert!(!s.probe_exists("P3").unwrap());
    }

    #[test]
    fn overrides_need_an_existing_event_and_the_newest_wins() {
        let mut s = Store::open_in_memory().unwrap();
        s.import_batch(&batch()).unwrap();
        let err = s
            .add_override("nope", EventKind::Human, "r", "me", 1)
            .unwrap_err();
        assert_eq!(err.to_string(), "no event with id `nope`");
        s.add_override("E1", EventKind::Bot, "it was a bot after all", "bo", 10_000)
            .unwrap();
        let ev = s.evidence_window(None, None, &[]).unwrap();
        assert_eq!(ev.events[0].kind, EventKind::Bot);
        assert_eq!(ev.events[0].overridden_from, Some(EventKind::AutoAck));
        // The store's own per-probe listing agrees.
        assert_eq!(s.events("P1").unwrap()[0].kind, EventKind::Bot);
    }
}
