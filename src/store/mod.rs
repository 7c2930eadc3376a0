//! The only place that speaks SQL: probes, events, raw evidence, IMAP cursors, unmatched
//! messages and reviewer overrides in one SQLite file (rusqlite, bundled).
//!
//! Migrations are numbered SQL files embedded in the binary and applied when the database opens;
//! the journal is WAL; every time is INTEGER UTC milliseconds. The store is synchronous: async
//! callers reach it through [`StoreHandle`], which runs each call on the blocking pool so the
//! runtime never waits on SQLite. It must not do network I/O or decide anything (matching,
//! classifying and scoring happen before or after it).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};
use sha2::{Digest, Sha256};

use crate::matching::ProbeIndex;
use crate::model::{ChannelKind, EventKind, MatchMethod, Millis, ProbeStatus, Urgency};
pub use crate::model::{Event, MailMeta, Probe};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open database `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database directory could not be created.
    #[error("cannot create database directory `{path}`")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Migrations failed (for example a database written by a newer deskprobe).
    #[error("cannot migrate database `{path}`")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    /// A query failed.
    #[error("database query failed: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A stored value is not one deskprobe writes (the file was edited by hand or is corrupt).
    #[error("database holds an invalid value in {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// No probe has this id.
    #[error("no probe with id `{0}`")]
    NoSuchProbe(String),
    /// The blocking task running a store call died.
    #[error("store task failed: {0}")]
    Task(String),
}

type Result<T> = std::result::Result<T, StoreError>;

fn q(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

fn parse_name<T: std::str::FromStr>(what: &'static str, s: String) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_init.sql")),
        M::up(include_str!("migrations/002_schedule.sql")),
        M::up(include_str!("migrations/003_evidence.sql")),
        M::up(include_str!("migrations/004_channels.sql")),
        M::up(include_str!("migrations/005_score_index.sql")),
    ])
}

/// `execute` through the connection's statement cache: the hot loops (storing a fetched batch,
/// importing a bundle) run the same few statements hundreds of thousands of times, and
/// preparing one costs more than running it.
pub(crate) trait CachedExecute {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedExecute for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// Hex SHA-256 of raw bytes: the key of raw evidence.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A probe row about to be committed before its send.
#[derive(Debug, Clone)]
pub struct NewProbe {
    pub id: String,
    pub target: String,
    pub channel: ChannelKind,
    pub script: String,
    pub persona: String,
    pub language: String,
    pub urgency: Urgency,
    pub token: String,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub created_at: Millis,
    pub vantage: String,
    /// The schedule slot this probe fulfils; recorded in the same transaction, so a slot can
    /// never get two probes.
    pub slot: Option<SlotRef>,
    /// The sending process (`pid:start-time`), to tell a crashed send from one in flight.
    pub sending_owner: Option<String>,
}

/// One schedule slot for one target and channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotRef {
    pub schedule: String,
    pub slot: Millis,
    pub target: String,
    pub channel: ChannelKind,
    pub send_at: Millis,
    /// 0 for the first attempt, then 1, 2 … for retries after failures that reached nobody.
    pub attempt: u32,
}

impl From<SlotRef> for crate::schedule::ProbeKey {
    fn from(s: SlotRef) -> crate::schedule::ProbeKey {
        crate::schedule::ProbeKey {
            schedule: s.schedule,
            slot: s.slot,
            target: s.target,
            channel: s.channel,
        }
    }
}

/// The classification of an inbound message that matched a probe.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub probe_id: String,
    pub kind: EventKind,
    pub match_method: MatchMethod,
    pub language: Option<String>,
    pub facts_matched: Option<bool>,
    pub reasons: Vec<String>,
    /// Helpdesk references found in the message, learnt for the probe.
    pub refs: Vec<String>,
}

/// One message fetched from an IMAP folder, ready to store.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub uid: u32,
    pub raw: Vec<u8>,
    pub internal_date: Millis,
    pub observed_at: Millis,
    pub date_header: Option<Millis>,
    pub received: Vec<String>,
    pub from: Option<String>,
    pub subject: String,
    pub header_message_id: Option<String>,
    pub problems: Vec<String>,
    /// `None` keeps the message as unmatched.
    pub event: Option<NewEvent>,
}

/// What matching and classifying need to know about a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeBrief {
    pub target: String,
    pub script: String,
    pub language: String,
}

/// How far a probe index was loaded: the last `probes` and `probe_refs` rowids seen
/// ([`Store::extend_probe_index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCursor {
    pub probes: i64,
    pub refs: i64,
}

/// Where an IMAP folder was read up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Messages new to the store.
    pub stored: usize,
    /// Of those, how many became events of a probe.
    pub matched: usize,
    /// Messages already stored (same source, or same bytes in the same folder).
    pub duplicates: usize,
}

/// An unmatched inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub source: String,
    pub internal_date: Millis,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub raw_sha256: String,
}

/// Per target × channel × status counts, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub target: String,
    pub channel: ChannelKind,
    pub status: ProbeStatus,
    pub count: u64,
}

/// The last collect outcome of one reply source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorRun {
    pub source: String,
    pub last_ok_at: Option<Millis>,
    pub last_error: Option<String>,
    pub last_error_at: Option<Millis>,
}

/// An open SQLite database with deskprobe's schema.
pub struct Store {
    conn: Connection,
}

const PROBE_COLUMNS: &str = "id, target, channel, script, persona, language, urgency, status, \
     token, message_id, sender, recipient, subject, raw_sha256, created_at, sent_at, send_error, \
     closed_at, vantage";

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::init(conn, path)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: ":memory:".into(),
            source,
        })?;
        Self::init(conn, Path::new(":memory:"))
    }

    fn init(mut conn: Connection, path: &Path) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(q("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(q("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(q("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(q("enable foreign keys"))?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        Ok(Store { conn })
    }

    /// Commits a probe as `sending` together with its outbound raw message, before the send.
    #[tracing::instrument(skip_all, fields(probe = %p.id))]
    pub fn insert_sending_probe(&mut self, p: &NewProbe, raw: Option<&[u8]>) -> Result<()> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let sha = raw.map(|r| put_raw(&tx, r)).transpose()?;
        tx.execute(
            "INSERT INTO probes (id, target, channel, script, persona, language, urgency, status, \
             token, message_id, sender, recipient, subject, raw_sha256, created_at, vantage, \
             sending_owner) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                p.id,
                p.target,
                p.channel.as_str(),
                p.script,
                p.persona,
                p.language,
                p.urgency.as_str(),
                ProbeStatus::Sending.as_str(),
                p.token,
                p.message_id,
                p.sender,
                p.recipient,
                p.subject,
                sha,
                p.created_at,
                p.vantage,
                p.sending_owner,
            ],
        )
        .map_err(q("insert probe"))?;
        if let Some(slot) = &p.slot {
            insert_slot(&tx, slot, "probe", None, Some(&p.id), p.created_at)?;
        }
        tx.commit().map_err(q("commit probe"))
    }

    /// Records that a slot was skipped (and why), so it is never planned again.
    pub fn skip_slot(&mut self, slot: &SlotRef, reason: &str, at: Millis) -> Result<()> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        insert_slot(&tx, slot, "skipped", Some(reason), None, at)?;
        tx.commit().map_err(q("commit skipped slot"))
    }

    /// Slots handled (a probe committed or a skip recorded) whose cron time is at or after
    /// `since`.
    pub fn handled_slots(&self, since: Millis) -> Result<Vec<SlotRef>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT schedule, slot, target, channel, send_at, MAX(attempt) FROM schedule_slots \
                 WHERE slot >= ?1 GROUP BY schedule, slot, target, channel ORDER BY slot",
            )
            .map_err(q("list handled slots"))?;
        let rows = stmt
            .query_map([since], slot_row)
            .map_err(q("list handled slots"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list handled slots"))?;
        rows.into_iter().map(RawSlot::into_slot).collect()
    }

    /// Slots whose latest attempt failed in a way that reached nobody, with fewer than
    /// `max_attempts` attempts so far and the last one decided before `before`: candidates
    /// for another attempt. The returned refs carry the next attempt number.
    pub fn retryable_slots(&self, before: Millis, max_attempts: u32) -> Result<Vec<SlotRef>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.schedule, s.slot, s.target, s.channel, s.send_at, s.attempt \
                 FROM schedule_slots s JOIN probes p ON p.id = s.probe_id \
                 WHERE p.status = 'send_failed' AND p.send_retryable = 1 \
                 AND s.decided_at <= ?1 AND s.attempt + 1 < ?2 \
                 AND s.attempt = (SELECT MAX(attempt) FROM schedule_slots t \
                     WHERE t.schedule = s.schedule AND t.slot = s.slot \
                     AND t.target = s.target AND t.channel = s.channel) \
                 ORDER BY s.slot",
            )
            .map_err(q("list retryable slots"))?;
        let rows = stmt
            .query_map(params![before, max_attempts], slot_row)
            .map_err(q("list retryable slots"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list retryable slots"))?;
        rows.into_iter()
            .map(|raw| {
                let mut slot = raw.into_slot()?;
                slot.attempt += 1;
                Ok(slot)
            })
            .collect()
    }

    /// When each probe committed since `since` was made, per target and channel (for the
    /// ethics caps). Failed sends reached nobody and are left out.
    pub fn probe_times(&self, since: Millis) -> Result<Vec<(String, ChannelKind, Millis)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT target, channel, COALESCE(sent_at, created_at) FROM probes \
                 WHERE created_at >= ?1 AND status != 'send_failed' ORDER BY created_at",
            )
            .map_err(q("list probe times"))?;
        let rows = stmt
            .query_map([since], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(q("list probe times"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list probe times"))?;
        rows.into_iter()
            .map(|(t, c, at)| Ok((t, parse_name("probes.channel", c)?, at)))
            .collect()
    }

    /// A value the daemon keeps between runs.
    pub fn state(&self, key: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT value FROM daemon_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(q("load daemon state"))
    }

    /// Sets a value the daemon keeps between runs.
    pub fn set_state(&mut self, key: &str, value: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO daemon_state (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(q("save daemon state"))?;
        Ok(())
    }

    /// Closes the probes whose observation window (per channel) has ended by `now`: they get
    /// `closed_at`; their status (sent / sent_unconfirmed) is kept because scores need it.
    /// Returns how many were closed.
    pub fn close_expired(
        &mut self,
        now: Millis,
        windows: &[(ChannelKind, Millis)],
    ) -> Result<usize> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let mut closed = 0;
        for (channel, window) in windows {
            closed += tx
                .execute(
                    "UPDATE probes SET closed_at = ?1 WHERE closed_at IS NULL \
                     AND channel = ?2 AND status IN ('sent', 'sent_unconfirmed') \
                     AND COALESCE(sent_at, created_at) + ?3 <= ?1",
                    params![now, channel.as_str(), window],
                )
                .map_err(q("close expired probes"))?;
        }
        tx.commit().map_err(q("commit closing"))?;
        Ok(closed)
    }

    /// Records that the remote accepted the probe at `sent_at`, with an `accepted` event.
    pub fn mark_sent(&mut self, probe_id: &str, sent_at: Millis, source: &str) -> Result<()> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let n = tx
            .execute(
                "UPDATE probes SET status = 'sent', sent_at = ?2, send_error = NULL \
                 WHERE id = ?1 AND status IN ('sending', 'sent_unconfirmed')",
                params![probe_id, sent_at],
            )
            .map_err(q("mark probe sent"))?;
        if n == 0 {
            return Err(StoreError::NoSuchProbe(probe_id.to_owned()));
        }
        insert_accepted_event(&tx, probe_id, sent_at, source)?;
        tx.commit().map_err(q("commit sent"))
    }

    /// Records that the send failed; the probe is never counted as "no reply". `retryable`
    /// says the server surely took nothing, so its slot may be attempted again.
    pub fn mark_send_failed(&mut self, probe_id: &str, error: &str, retryable: bool) -> Result<()> {
        let n = self
            .conn
            .execute(
                "UPDATE probes SET status = 'send_failed', send_error = ?2, send_retryable = ?3 \
                 WHERE id = ?1 AND status = 'sending'",
                params![probe_id, error, retryable],
            )
            .map_err(q("mark probe send_failed"))?;
        if n == 0 {
            return Err(StoreError::NoSuchProbe(probe_id.to_owned()));
        }
        Ok(())
    }

    /// Probes left `sending` by a process that is gone: their owner is in `dead`'s judgement
    /// not alive, or they were committed before `older_than` (no send can take that long).
    /// They become `sent_unconfirmed`: never re-sent, still matched. Returns their ids.
    pub fn recover_interrupted_sends(
        &mut self,
        older_than: Millis,
        dead: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let candidates = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, created_at, sending_owner FROM probes WHERE status = 'sending'",
                )
                .map_err(q("list interrupted sends"))?;
            stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(q("list interrupted sends"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list interrupted sends"))?
        };
        let mut ids = Vec::new();
        for (id, created_at, owner) in candidates {
            if created_at < older_than || owner.as_deref().is_some_and(&dead) {
                tx.execute(
                    "UPDATE probes SET status = 'sent_unconfirmed', \
                     send_error = 'process stopped while sending; the remote may have accepted it' \
                     WHERE id = ?1 AND status = 'sending'",
                    [&id],
                )
                .map_err(q("recover interrupted send"))?;
                ids.push(id);
            }
        }
        tx.commit().map_err(q("commit recovery"))?;
        Ok(ids)
    }

    /// One probe by id.
    pub fn probe(&self, id: &str) -> Result<Probe> {
        self.conn
            .query_row(
                &format!("SELECT {PROBE_COLUMNS} FROM probes WHERE id = ?1"),
                [id],
                raw_probe,
            )
            .optional()
            .map_err(q("load probe"))?
            .ok_or_else(|| StoreError::NoSuchProbe(id.to_owned()))
            .and_then(RawProbe::into_probe)
    }

    /// Probes in the given statuses, oldest first.
    pub fn probes_with_status(&self, statuses: &[ProbeStatus]) -> Result<Vec<Probe>> {
        let list = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PROBE_COLUMNS} FROM probes WHERE status IN ({list}) ORDER BY created_at, id"
            ))
            .map_err(q("list probes"))?;
        let rows = stmt
            .query_map([], raw_probe)
            .map_err(q("list probes"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list probes"))?;
        rows.into_iter().map(RawProbe::into_probe).collect()
    }

    /// The events of a probe in time order, with reviewer overrides applied to `kind`.
    pub fn events(&self, probe_id: &str) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {EVENT_COLUMNS}, m.id, m.date_header, m.received, m.from_addr, m.subject \
                 FROM events e LEFT JOIN messages m ON m.id = e.message \
                 WHERE e.probe_id = ?1 ORDER BY e.occurred_at, e.id"
            ))
            .map_err(q("list events"))?;
        let rows = stmt
            .query_map([probe_id], event_row)
            .map_err(q("list events"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("list events"))?;
        rows.into_iter().map(RawEvent::into_event).collect()
    }

    /// Raw evidence by its SHA-256.
    pub fn raw(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT data FROM raw_messages WHERE sha256 = ?1",
                [sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(q("load raw message"))
    }

    /// An in-memory index of every probe's Message-ID, token and learnt helpdesk references,
    /// for matching replies.
    pub fn probe_index(&self) -> Result<ProbeIndex> {
        let mut idx = ProbeIndex::default();
        let mut stmt = self
            .conn
            .prepare("SELECT id, token, message_id FROM probes ORDER BY created_at, id")
            .map_err(q("index probes"))?;
        let mut rows = stmt.query([]).map_err(q("index probes"))?;
        while let Some(r) = rows.next().map_err(q("index probes"))? {
            let id: String = r.get(0).map_err(q("index probes"))?;
            let token: String = r.get(1).map_err(q("index probes"))?;
            idx.insert_token(&token, &id);
            if let Some(mid) = r.get::<_, Option<String>>(2).map_err(q("index probes"))? {
                idx.insert_message_id(&mid, &id);
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT probe_id, reference FROM probe_refs ORDER BY learnt_at, probe_id")
            .map_err(q("index probe references"))?;
        let mut rows = stmt.query([]).map_err(q("index probe references"))?;
        while let Some(r) = rows.next().map_err(q("index probe references"))? {
            let id: String = r.get(0).map_err(q("index probe references"))?;
            let reference: String = r.get(1).map_err(q("index probe references"))?;
            idx.insert_ticket_ref(&reference, &id);
        }
        Ok(idx)
    }

    /// Target, script and language of every probe, by id.
    pub fn probe_briefs(&self) -> Result<std::collections::HashMap<String, ProbeBrief>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, target, script, language FROM probes")
            .map_err(q("list probe briefs"))?;
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                ProbeBrief {
                    target: r.get(1)?,
                    script: r.get(2)?,
                    language: r.get(3)?,
                },
            ))
        })
        .map_err(q("list probe briefs"))?
        .collect::<std::result::Result<_, _>>()
        .map_err(q("list probe briefs"))
    }

    /// Adds to `index` and `briefs` the probes and learnt helpdesk references stored after
    /// `since`, in the order they were stored, and returns where it got to: a long-lived
    /// matcher (an IDLE watcher wakes on every new message) stays current without reloading
    /// every probe on every wake. Probes and references are never deleted or changed, so
    /// what was loaded stays valid.
    pub fn extend_probe_index(
        &self,
        index: &mut ProbeIndex,
        briefs: &mut std::collections::HashMap<String, ProbeBrief>,
        since: IndexCursor,
    ) -> Result<IndexCursor> {
        let mut next = since;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, id, token, message_id, target, script, language FROM probes \
                 WHERE rowid > ?1 ORDER BY rowid",
            )
            .map_err(q("index probes"))?;
        let mut rows = stmt.query([since.probes]).map_err(q("index probes"))?;
        while let Some(r) = rows.next().map_err(q("index probes"))? {
            next.probes = r.get(0).map_err(q("index probes"))?;
            let id: String = r.get(1).map_err(q("index probes"))?;
            let token: String = r.get(2).map_err(q("index probes"))?;
            index.insert_token(&token, &id);
            if let Some(mid) = r.get::<_, Option<String>>(3).map_err(q("index probes"))? {
                index.insert_message_id(&mid, &id);
            }
            let brief = ProbeBrief {
                target: r.get(4).map_err(q("index probes"))?,
                script: r.get(5).map_err(q("index probes"))?,
                language: r.get(6).map_err(q("index probes"))?,
            };
            briefs.insert(id, brief);
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, probe_id, reference FROM probe_refs WHERE rowid > ?1 \
                 ORDER BY rowid",
            )
            .map_err(q("index probe references"))?;
        let mut rows = stmt
            .query([since.refs])
            .map_err(q("index probe references"))?;
        while let Some(r) = rows.next().map_err(q("index probe references"))? {
            next.refs = r.get(0).map_err(q("index probe references"))?;
            let id: String = r.get(1).map_err(q("index probe references"))?;
            let reference: String = r.get(2).map_err(q("index probe references"))?;
            index.insert_ticket_ref(&reference, &id);
        }
        Ok(next)
    }

    /// The cursor of one IMAP folder.
    pub fn cursor(&self, mailbox: &str, folder: &str) -> Result<Option<Cursor>> {
        self.conn
            .query_row(
                "SELECT uidvalidity, last_uid FROM imap_cursors WHERE mailbox = ?1 AND folder = ?2",
                params![mailbox, folder],
                |r| {
                    Ok(Cursor {
                        uidvalidity: r.get(0)?,
                        last_uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(q("load cursor"))
    }

    /// Stores a batch of fetched messages (raw evidence, message rows, events, learnt references)
    /// and advances the folder's cursor to `cursor`, all in one transaction: either everything of
    /// the batch is stored and the cursor moves, or nothing is and the batch is fetched again.
    /// Messages already stored are skipped, so a repeated batch changes nothing.
    #[tracing::instrument(skip_all, fields(mailbox, folder, n = msgs.len()))]
    pub fn store_imap_batch(
        &mut self,
        mailbox: &str,
        folder: &str,
        cursor: Cursor,
        msgs: &[InboundMessage],
    ) -> Result<BatchOutcome> {
        let tx = self.conn.transaction().map_err(q("begin"))?;
        let mut out = BatchOutcome::default();
        for m in msgs {
            let source = imap_source(mailbox, folder, cursor.uidvalidity, m.uid);
            let sha = put_raw(&tx, &m.raw)?;
            let inserted = tx
                .execute_cached(
                    "INSERT OR IGNORE INTO messages (source, mailbox, folder, uidvalidity, uid, \
                     raw_sha256, internal_date, observed_at, date_header, received, from_addr, \
                     subject, header_message_id, problems) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![
                        source,
                        mailbox,
                        folder,
                        cursor.uidvalidity,
                        m.uid,
                        sha,
                        m.internal_date,
                        m.observed_at,
                        m.date_header,
                        json(&m.received),
                        m.from,
                        m.subject,
                        m.header_message_id,
                        json(&m.problems),
                    ],
                )
                .map_err(q("insert message"))?;
            if inserted == 0 {
                out.duplicates += 1;
                continue;
            }
            out.stored += 1;
            let Some(ev) = &m.event else { continue };
            let message_row = tx.last_insert_rowid();
            tx.execute_cached(
                "INSERT INTO events (id, probe_id, kind, occurred_at, observed_at, source, \
                 match_method, language, facts_matched, reasons, raw_sha256, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    ulid::Ulid::new().to_string(),
                    ev.probe_id,
                    ev.kind.as_str(),
                    m.internal_date,
                    m.observed_at,
                    source,
                    ev.match_method.as_str(),
                    ev.language,
                    ev.facts_matched,
                    json(&ev.reasons),
                    sha,
                    message_row,
                ],
            )
            .map_err(q("insert event"))?;
            for reference in &ev.refs {
                tx.execute_cached(
                    "INSERT OR IGNORE INTO probe_refs (probe_id, reference, learnt_at) \
                     VALUES (?1, ?2, ?3)",
                    params![ev.probe_id, reference, m.observed_at],
                )
                .map_err(q("insert probe reference"))?;
            }
            out.matched += 1;
        }
        tx.execute_cached(
            "INSERT INTO imap_cursors (mailbox, folder, uidvalidity, last_uid, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (mailbox, folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, \
             last_uid = excluded.last_uid, updated_at = excluded.updated_at",
            params![
                mailbox,
                folder,
                cursor.uidvalidity,
                cursor.last_uid,
                crate::model::now_millis()
            ],
        )
        .map_err(q("advance cursor"))?;
        tx.commit().map_err(q("commit batch"))?;
        Ok(out)
    }

    /// Inbound messages that matched no probe, newest first.
    pub fn unmatched(&self) -> Result<Vec<Unmatched>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT m.source, m.internal_date, m.from_addr, m.subject, m.raw_sha256 \
                 FROM messages m WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.message = m.id) \
                 ORDER BY m.internal_date DESC, m.id DESC",
            )
            .map_err(q("list unmatched"))?;
        stmt.query_map([], |r| {
            Ok(Unmatched {
                source: r.get(0)?,
                internal_date: r.get(1)?,
                from: r.get(2)?,
                subject: r.get(3)?,
                raw_sha256: r.get(4)?,
            })
        })
        .map_err(q("list unmatched"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q("list unmatched"))
    }

    /// Records the outcome of a collect pass over one reply source.
    pub fn record_collect(&mut self, source: &str, at: Millis, error: Option<&str>) -> Result<()> {
        let sql = match error {
            None => {
                "INSERT INTO collector_runs (source, last_ok_at) VALUES (?1, ?2) \
                 ON CONFLICT (source) DO UPDATE SET last_ok_at = excluded.last_ok_at"
            }
            Some(_) => {
                "INSERT INTO collector_runs (source, last_error, last_error_at) VALUES (?1, ?3, ?2) \
                 ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error, \
                 last_error_at = excluded.last_error_at"
            }
        };
        let mut stmt = self.conn.prepare(sql).map_err(q("record collect"))?;
        match error {
            None => stmt.execute(params![source, at]),
            Some(e) => stmt.execute(params![source, at, e]),
        }
        .map_err(q("record collect"))?;
        Ok(())
    }

    /// The last collect outcome of every reply source.
    pub fn collector_runs(&self) -> Result<Vec<CollectorRun>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source, last_ok_at, last_error, last_error_at FROM collector_runs \
                 ORDER BY source",
            )
            .map_err(q("list collector runs"))?;
        stmt.query_map([], |r| {
            Ok(CollectorRun {
                source: r.get(0)?,
                last_ok_at: r.get(1)?,
                last_error: r.get(2)?,
                last_error_at: r.get(3)?,
            })
        })
        .map_err(q("list collector runs"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(q("list collector runs"))
    }

    /// Probe counts per target, channel and status.
    pub fn status_counts(&self) -> Result<Vec<StatusCount>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT target, channel, status, COUNT(*) FROM probes \
                 GROUP BY target, channel, status ORDER BY target, channel, status",
            )
            .map_err(q("count probes"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(q("count probes"))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(q("count probes"))?;
        rows.into_iter()
            .map(|(target, channel, status, count)| {
                Ok(StatusCount {
                    target,
                    channel: parse_name("probes.channel", channel)?,
                    status: parse_name("probes.status", status)?,
                    count: count.max(0) as u64,
                })
            })
            .collect()
    }

    /// Number of events per kind for a probe set; used by tests and `status`.
    pub fn count_events(&self, kind: EventKind) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE kind = ?1",
                [kind.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(q("count events"))
    }

    /// Number of stored inbound messages.
    pub fn count_messages(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(q("count messages"))
    }
}

/// The `accepted` event of a probe the remote took at `sent_at` (idempotent by `source`).
pub(crate) fn insert_accepted_event(
    tx: &Transaction<'_>,
    probe_id: &str,
    sent_at: Millis,
    source: &str,
) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO events (id, probe_id, kind, occurred_at, observed_at, source, \
         reasons) VALUES (?1, ?2, 'accepted', ?3, ?3, ?4, ?5)",
        params![
            ulid::Ulid::new().to_string(),
            probe_id,
            sent_at,
            source,
            r#"["remote accepted the probe"]"#
        ],
    )
    .map_err(q("insert accepted event"))?;
    Ok(())
}

/// The event columns every event query selects, in [`event_row`]'s order: the effective kind
/// (newest override, else the classifier's), the classifier's kind, and the raw evidence hash
/// (stored with the event, or only referenced when an import carried no bytes). Queries add
/// five message columns (id, date header, received, from, subject), or NULLs.
pub(crate) const EVENT_COLUMNS: &str = "e.id, e.probe_id, \
     COALESCE((SELECT o.kind FROM overrides o WHERE o.event_id = e.id \
               ORDER BY o.at DESC, o.id DESC LIMIT 1), e.kind), e.kind, \
     e.occurred_at, e.observed_at, e.source, e.match_method, e.language, e.facts_matched, \
     e.reasons, COALESCE(e.raw_sha256, \
     (SELECT r.raw_sha256 FROM event_raw_refs r WHERE r.event_id = e.id))";

/// An event row as read (see [`EVENT_COLUMNS`]).
pub(crate) struct RawEvent {
    id: String,
    probe_id: String,
    kind: String,
    classified: String,
    occurred_at: Millis,
    observed_at: Millis,
    source: String,
    method: Option<String>,
    language: Option<String>,
    facts: Option<bool>,
    reasons: String,
    raw_sha256: Option<String>,
    message: Option<i64>,
    date_header: Option<Millis>,
    received: Option<String>,
    from: Option<String>,
    subject: Option<String>,
}

pub(crate) fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawEvent> {
    Ok(RawEvent {
        id: r.get(0)?,
        probe_id: r.get(1)?,
        kind: r.get(2)?,
        classified: r.get(3)?,
        occurred_at: r.get(4)?,
        observed_at: r.get(5)?,
        source: r.get(6)?,
        method: r.get(7)?,
        language: r.get(8)?,
        facts: r.get(9)?,
        reasons: r.get(10)?,
        raw_sha256: r.get(11)?,
        message: r.get(12)?,
        date_header: r.get(13)?,
        received: r.get(14)?,
        from: r.get(15)?,
        subject: r.get(16)?,
    })
}

impl RawEvent {
    /// The probe the event belongs to.
    pub(crate) fn probe_id(&self) -> &str {
        &self.probe_id
    }

    pub(crate) fn into_event(self) -> Result<Event> {
        let kind: EventKind = parse_name("events.kind", self.kind)?;
        let classified: EventKind = parse_name("events.kind", self.classified)?;
        let mail = match self.message {
            None => None,
            Some(_) => Some(MailMeta {
                date_header: self.date_header,
                received: json_list(
                    "messages.received",
                    self.received.as_deref().unwrap_or("[]"),
                )?,
                from: self.from,
                subject: self.subject,
            }),
        };
        Ok(Event {
            id: self.id,
            probe_id: self.probe_id,
            kind,
            overridden_from: (kind != classified).then_some(classified),
            occurred_at: self.occurred_at,
            observed_at: self.observed_at,
            source: self.source,
            match_method: self
                .method
                .map(|m| parse_name("events.match_method", m))
                .transpose()?,
            language: self.language,
            facts_matched: self.facts,
            reasons: json_list("events.reasons", &self.reasons)?,
            raw_sha256: self.raw_sha256,
            mail,
        })
    }
}

/// A `schedule_slots` row as read: (schedule, slot, target, channel, send_at, attempt).
struct RawSlot(String, Millis, String, String, Millis, u32);

fn slot_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawSlot> {
    Ok(RawSlot(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

impl RawSlot {
    fn into_slot(self) -> Result<SlotRef> {
        let RawSlot(schedule, slot, target, channel, send_at, attempt) = self;
        Ok(SlotRef {
            schedule,
            slot,
            target,
            channel: parse_name("schedule_slots.channel", channel)?,
            send_at,
            attempt,
        })
    }
}

fn insert_slot(
    tx: &Transaction<'_>,
    slot: &SlotRef,
    outcome: &str,
    reason: Option<&str>,
    probe_id: Option<&str>,
    at: Millis,
) -> Result<()> {
    tx.execute(
        "INSERT INTO schedule_slots (schedule, slot, target, channel, attempt, send_at, outcome, \
         reason, probe_id, decided_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            slot.schedule,
            slot.slot,
            slot.target,
            slot.channel.as_str(),
            slot.attempt,
            slot.send_at,
            outcome,
            reason,
            probe_id,
            at
        ],
    )
    .map_err(q("record schedule slot"))?;
    Ok(())
}

/// The stable source name of an IMAP message.
pub fn imap_source(mailbox: &str, folder: &str, uidvalidity: u32, uid: u32) -> String {
    format!("imap:{mailbox}/{folder}/{uidvalidity}/{uid}")
}

fn put_raw(tx: &Transaction<'_>, raw: &[u8]) -> Result<String> {
    let sha = sha256_hex(raw);
    tx.execute_cached(
        "INSERT OR IGNORE INTO raw_messages (sha256, size, data) VALUES (?1, ?2, ?3)",
        params![sha, raw.len() as i64, raw],
    )
    .map_err(q("insert raw message"))?;
    Ok(sha)
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn json_list(what: &'static str, s: &str) -> Result<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

struct RawProbe {
    id: String,
    target: String,
    channel: String,
    script: String,
    persona: String,
    language: String,
    urgency: String,
    status: String,
    token: String,
    message_id: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    subject: Option<String>,
    raw_sha256: Option<String>,
    created_at: Millis,
    sent_at: Option<Millis>,
    send_error: Option<String>,
    closed_at: Option<Millis>,
    vantage: String,
}

fn raw_probe(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawProbe> {
    Ok(RawProbe {
        id: r.get(0)?,
        target: r.get(1)?,
        channel: r.get(2)?,
        script: r.get(3)?,
        persona: r.get(4)?,
        language: r.get(5)?,
        urgency: r.get(6)?,
        status: r.get(7)?,
        token: r.get(8)?,
        message_id: r.get(9)?,
        sender: r.get(10)?,
        recipient: r.get(11)?,
        subject: r.get(12)?,
        raw_sha256: r.get(13)?,
        created_at: r.get(14)?,
        sent_at: r.get(15)?,
        send_error: r.get(16)?,
        closed_at: r.get(17)?,
        vantage: r.get(18)?,
    })
}

impl RawProbe {
    fn into_probe(self) -> Result<Probe> {
        Ok(Probe {
            channel: parse_name("probes.channel", self.channel)?,
            urgency: parse_name("probes.urgency", self.urgency)?,
            status: parse_name("probes.status", self.status)?,
            id: self.id,
            target: self.target,
            script: self.script,
            persona: self.persona,
            language: self.language,
            token: self.token,
            message_id: self.message_id,
            sender: self.sender,
            recipient: self.recipient,
            subject: self.subject,
            raw_sha256: self.raw_sha256,
            created_at: self.created_at,
            sent_at: self.sent_at,
            send_error: self.send_error,
            closed_at: self.closed_at,
            vantage: self.vantage,
        })
    }
}

/// A [`Store`] shared by async tasks: every call runs on tokio's blocking pool.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Mutex<Store>>,
}

impl StoreHandle {
    /// Wraps an open store.
    pub fn new(store: Store) -> StoreHandle {
        StoreHandle {
            inner: Arc::new(Mutex::new(store)),
        }
    }

    /// Runs `f` with exclusive access to the store on the blocking pool.
    pub async fn call<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut Store) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic in another store call poisons the lock; the connection itself is still
            // consistent (SQLite rolled back the open transaction), so keep using it.
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` with exclusive access to the store on the current worker thread, which tokio
    /// is told may block (multi-threaded runtime only). Unlike [`Self::call`], `f` may borrow:
    /// for long read-only passes such as scoring a window, whose closure borrows the config.
    pub fn blocking<R>(&self, f: impl FnOnce(&mut Store) -> Result<R>) -> Result<R> {
        tokio::task::block_in_place(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
    }
}

pub mod channels;
pub mod evidence;
mod scan;

#[cfg(test)]
mod tests;
