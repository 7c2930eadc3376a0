//! Store access for the ticket and chat channels: recording an API send's outcome (with the
//! helpdesk references and the session to follow, in the same transaction), the HTTP
//! exchanges kept as evidence, the sessions still open, and the events a poll found.
//!
//! A third `impl Store` block beside `store/mod.rs` (migration 004); like it, this module only
//! speaks SQL and must not decide anything: which message is a bot, a human or a follow-up is
//! decided by the caller.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{
    PROBE_COLUMNS, RawProbe, Result, Store, StoreError, insert_accepted_event, json, put_raw, q,
    raw_probe,
};
use crate::channels::http::Exchange;
use crate::model::{EventKind, MatchMethod, Millis, Probe};

/// An event a ticket or chat poll found.
#[derive(Debug, Clone)]
pub struct NewApiEvent {
    pub kind: EventKind,
    pub occurred_at: Millis,
    pub observed_at: Millis,
    /// Unique: the same message is stored once however often it is seen.
    pub source: String,
    pub language: Option<String>,
    pub facts_matched: Option<bool>,
    pub reasons: Vec<String>,
    /// The vendor's JSON for it.
    pub raw: Vec<u8>,
}

/// A followed ticket or chat.
#[derive(Debug, Clone)]
pub struct ApiSession {
    pub probe: Probe,
    /// The driver's state.
    pub state: Value,
    pub opened_at: Millis,
    pub polled_at: Option<Millis>,
    pub queue_position: Option<i64>,
    pub queue_wait_s: Option<i64>,
    pub human_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    pub close_reason: Option<String>,
    pub last_error: Option<String>,
}

/// What a poll learnt about a session besides its events.
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    /// New driver state (captures), if it changed.
    pub state: Option<Value>,
    pub queue_position: Option<i64>,
    pub queue_wait_s: Option<i64>,
    /// occurred_at of the first human message, if this poll found one.
    pub human_at: Option<Millis>,
}

/// One stored HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExchange {
    pub at: Millis,
    pub step: String,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub raw_sha256: String,
}

impl Store {
    /// Records that the remote accepted an API probe at `sent_at` (with an `accepted` event),
    /// the references learnt for it and the session to follow, in one transaction.
    pub fn mark_api_sent(
        &mut self,
        probe_id: &str,
        sent_at: Millis,
        source: &str,
        refs: &[String],
        session: Option<&Value>,
        warning: Option<&str>,
    ) -> Result<()> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let n = tx
            .execute(
                "UPDATE probes SET status = 'sent', sent_at = ?2, send_error = ?3 \
                 WHERE id = ?1 AND status = 'sending'",
                params![probe_id, sent_at, warning],
            )
            .map_err(q("mark probe sent"))?;
        if n == 0 {
            return Err(StoreError::NoSuchProbe(probe_id.to_owned()));
        }
        insert_accepted_event(&tx, probe_id, sent_at, source)?;
        insert_refs(&tx, probe_id, refs, sent_at)?;
        if let Some(state) = session {
            insert_session(&tx, probe_id, state, sent_at)?;
        }
        tx.commit().map_err(q("commit sent"))
    }

    /// Records a send whose 2xx answer could not be read: `sent_unconfirmed`, never re-sent.
    pub fn mark_api_unconfirmed(
        &mut self,
        probe_id: &str,
        error: &str,
        refs: &[String],
        session: Option<&Value>,
        at: Millis,
    ) -> Result<()> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let n = tx
            .execute(
                "UPDATE probes SET status = 'sent_unconfirmed', send_error = ?2 \
                 WHERE id = ?1 AND status = 'sending'",
                params![probe_id, error],
            )
            .map_err(q("mark probe sent_unconfirmed"))?;
        if n == 0 {
            return Err(StoreError::NoSuchProbe(probe_id.to_owned()));
        }
        insert_refs(&tx, probe_id, refs, at)?;
        if let Some(state) = session {
            insert_session(&tx, probe_id, state, at)?;
        }
        tx.commit().map_err(q("commit sent_unconfirmed"))
    }

    /// Keeps HTTP exchanges of a probe as evidence (the transcripts as raw messages).
    pub fn record_exchanges(&mut self, probe_id: &str, exchanges: &[Exchange]) -> Result<()> {
        if exchanges.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(q("begin"))?;
        for ex in exchanges {
            let sha = put_raw(&tx, ex.transcript.as_bytes())?;
            tx.execute(
                "INSERT INTO http_exchanges (probe_id, at, step, method, url, status, \
                 elapsed_ms, raw_sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    probe_id,
                    ex.at,
                    ex.step,
                    ex.method,
                    ex.url,
                    ex.status,
                    ex.elapsed_ms as i64,
                    sha
                ],
            )
            .map_err(q("insert http exchange"))?;
        }
        tx.commit().map_err(q("commit http exchanges"))
    }

    /// The HTTP exchanges of a probe, oldest first.
    pub fn exchanges(&self, probe_id: &str) -> Result<Vec<StoredExchange>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT at, step, method, url, status, raw_sha256 FROM http_exchanges \
                 WHERE probe_id = ?1 ORDER BY at, id",
            )
            .map_err(q("list http exchanges"))?;
        stmt.query_map([probe_id], |r| {
            Ok(StoredExchange {
                at: r.get(0)?,
                step: r.get(1)?,
                method: r.get(2)?,
                url: r.get(3)?,
                status: r.get(4)?,
                raw_sha256: r.get(5)?,
            })
        })
        .map_err(q("list http exchanges"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q("list http exchanges"))
    }

    /// Sessions not closed yet, oldest first.
    pub fn open_sessions(&self) -> Result<Vec<ApiSession>> {
        self.sessions_where("s.closed_at IS NULL")
    }

    /// The session of one probe, open or closed.
    pub fn session(&self, probe_id: &str) -> Result<Option<ApiSession>> {
        let id = probe_id.replace('\'', "''");
        Ok(self
            .sessions_where(&format!("s.probe_id = '{id}'"))?
            .into_iter()
            .next())
    }

    fn sessions_where(&self, cond: &str) -> Result<Vec<ApiSession>> {
        let cols: String = PROBE_COLUMNS
            .split(',')
            .map(|c| format!("p.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {cols}, s.state, s.opened_at, s.polled_at, s.queue_position, \
                 s.queue_wait_s, s.human_at, s.closed_at, s.close_reason, s.last_error \
                 FROM api_sessions s JOIN probes p ON p.id = s.probe_id \
                 WHERE {cond} ORDER BY s.opened_at, s.probe_id"
            ))
            .map_err(q("list sessions"))?;
        let rows = stmt
            .query_map([], |r| {
                let probe = raw_probe(r)?;
                Ok((
                    probe,
                    r.get::<_, String>(19)?,
                    r.get::<_, i64>(20)?,
                    r.get::<_, Option<i64>>(21)?,
                    r.get::<_, Option<i64>>(22)?,
                    r.get::<_, Option<i64>>(23)?,
                    r.get::<_, Option<i64>>(24)?,
                    r.get::<_, Option<i64>>(25)?,
                    r.get::<_, Option<String>>(26)?,
                    r.get::<_, Option<String>>(27)?,
                ))
            })
            .map_err(q("list sessions"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list sessions"))?;
        rows.into_iter()
            .map(
                |(p, state, opened_at, polled_at, qp, qw, human_at, closed_at, reason, err)| {
                    Ok(ApiSession {
                        probe: RawProbe::into_probe(p)?,
                        state: serde_json::from_str(&state).map_err(|e| StoreError::Corrupt {
                            what: "api_sessions.state",
                            detail: e.to_string(),
                        })?,
                        opened_at,
                        polled_at,
                        queue_position: qp,
                        queue_wait_s: qw,
                        human_at,
                        closed_at,
                        close_reason: reason,
                        last_error: err,
                    })
                },
            )
            .collect()
    }

    /// Stores what a poll found: new events (each source once) and the session's update, in
    /// one transaction. Returns how many events were new.
    pub fn store_api_events(
        &mut self,
        probe_id: &str,
        events: &[NewApiEvent],
        update: &SessionUpdate,
        at: Millis,
    ) -> Result<usize> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let mut new = 0;
        for ev in events {
            let sha = put_raw(&tx, &ev.raw)?;
            // Vendor event ids are unique within a vendor account at best: scope them to the
            // probe so two targets (or two chats) can never share an event.
            let source = format!("{}@{probe_id}", ev.source);
            new += tx
                .execute(
                    "INSERT OR IGNORE INTO events (id, probe_id, kind, occurred_at, observed_at, \
                     source, match_method, language, facts_matched, reasons, raw_sha256) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        ulid::Ulid::new().to_string(),
                        probe_id,
                        ev.kind.as_str(),
                        ev.occurred_at,
                        ev.observed_at,
                        source,
                        MatchMethod::Api.as_str(),
                        ev.language,
                        ev.facts_matched,
                        json(&ev.reasons),
                        sha
                    ],
                )
                .map_err(q("insert api event"))?;
        }
        tx.execute(
            "UPDATE api_sessions SET polled_at = ?2, last_error = NULL, \
             state = COALESCE(?3, state), \
             queue_position = COALESCE(queue_position, ?4), \
             queue_wait_s = COALESCE(queue_wait_s, ?5), \
             human_at = COALESCE(human_at, ?6) WHERE probe_id = ?1",
            params![
                probe_id,
                at,
                update.state.as_ref().map(Value::to_string),
                update.queue_position,
                update.queue_wait_s,
                update.human_at
            ],
        )
        .map_err(q("update session"))?;
        tx.commit().map_err(q("commit api events"))?;
        Ok(new)
    }

    /// Records a failed look at a session (kept for `status`, cleared by the next success).
    pub fn session_error(&mut self, probe_id: &str, error: &str, at: Millis) -> Result<()> {
        self.conn
            .execute(
                "UPDATE api_sessions SET last_error = ?2, last_error_at = ?3 WHERE probe_id = ?1",
                params![probe_id, error, at],
            )
            .map_err(q("record session error"))?;
        Ok(())
    }

    /// Closes a session. Returns false when it was closed already.
    pub fn close_session(&mut self, probe_id: &str, at: Millis, reason: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE api_sessions SET closed_at = ?2, close_reason = ?3 \
                 WHERE probe_id = ?1 AND closed_at IS NULL",
                params![probe_id, at, reason],
            )
            .map_err(q("close session"))?;
        Ok(n > 0)
    }

    /// The references learnt for a probe.
    pub fn probe_refs(&self, probe_id: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT reference FROM probe_refs WHERE probe_id = ?1 ORDER BY learnt_at, reference")
            .map_err(q("list probe references"))?;
        stmt.query_map([probe_id], |r| r.get(0))
            .map_err(q("list probe references"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list probe references"))
    }

    /// Whether a probe has an event of this kind.
    pub fn has_event(&self, probe_id: &str, kind: EventKind) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM events WHERE probe_id = ?1 AND kind = ?2 LIMIT 1",
                params![probe_id, kind.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(q("look for event"))
    }
}

fn insert_refs(
    tx: &rusqlite::Transaction<'_>,
    probe_id: &str,
    refs: &[String],
    at: Millis,
) -> Result<()> {
    for reference in refs {
        tx.execute(
            "INSERT OR IGNORE INTO probe_refs (probe_id, reference, learnt_at) VALUES (?1, ?2, ?3)",
            params![probe_id, reference, at],
        )
        .map_err(q("insert probe reference"))?;
    }
    Ok(())
}

fn insert_session(
    tx: &rusqlite::Transaction<'_>,
    probe_id: &str,
    state: &Value,
    at: Millis,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO api_sessions (probe_id, state, opened_at) VALUES (?1, ?2, ?3)",
        params![probe_id, state.to_string(), at],
    )
    .map_err(q("insert session"))?;
    Ok(())
}
