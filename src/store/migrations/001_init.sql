-- deskprobe schema v1. All times are INTEGER UTC milliseconds since the Unix epoch.

-- Raw evidence, content-addressed: outbound probes and every inbound message, byte for byte.
CREATE TABLE raw_messages (
    sha256 TEXT PRIMARY KEY,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL
) STRICT;

-- One probe: one script sent once over one channel to one target by one persona.
-- The row (with id, token and Message-ID) is committed before any network send.
CREATE TABLE probes (
    id          TEXT PRIMARY KEY,          -- ULID
    target      TEXT NOT NULL,
    channel     TEXT NOT NULL,             -- email | ticket | chat
    script      TEXT NOT NULL,
    persona     TEXT NOT NULL,
    language    TEXT NOT NULL,
    urgency     TEXT NOT NULL,             -- normal | urgent
    status      TEXT NOT NULL,             -- planned | sending | sent | send_failed | sent_unconfirmed | closed
    token       TEXT NOT NULL UNIQUE,
    message_id  TEXT UNIQUE,               -- pre-generated RFC 5322 Message-ID, without <>
    sender      TEXT,                      -- the address the probe was sent from
    recipient   TEXT,                      -- the target's address or endpoint
    subject     TEXT,
    raw_sha256  TEXT REFERENCES raw_messages(sha256),
    created_at  INTEGER NOT NULL,          -- row committed, before the send
    sent_at     INTEGER,                   -- remote accepted (SMTP 250 after DATA)
    send_error  TEXT,
    closed_at   INTEGER,
    vantage     TEXT NOT NULL
) STRICT;
CREATE INDEX probes_target_channel ON probes(target, channel, created_at);
CREATE INDEX probes_status ON probes(status);

-- Helpdesk references learnt from a probe's events ("request:12345", "ticket:4711").
CREATE TABLE probe_refs (
    probe_id   TEXT NOT NULL REFERENCES probes(id),
    reference  TEXT NOT NULL,
    learnt_at  INTEGER NOT NULL,
    PRIMARY KEY (probe_id, reference)
) STRICT;
CREATE INDEX probe_refs_reference ON probe_refs(reference);

-- Every message a collector saw, matched or not. Unmatched ones are kept for review.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL UNIQUE,    -- imap:MAILBOX/FOLDER/UIDVALIDITY/UID
    mailbox       TEXT NOT NULL,
    folder        TEXT NOT NULL,
    uidvalidity   INTEGER NOT NULL,
    uid           INTEGER NOT NULL,
    raw_sha256    TEXT NOT NULL REFERENCES raw_messages(sha256),
    internal_date INTEGER NOT NULL,        -- IMAP INTERNALDATE: the server's time
    observed_at   INTEGER NOT NULL,        -- when deskprobe fetched it
    date_header   INTEGER,                 -- the Date: header
    received      TEXT NOT NULL,           -- JSON array of Received: headers, top first
    from_addr     TEXT,
    subject       TEXT,
    header_message_id TEXT,
    problems      TEXT NOT NULL            -- JSON array of parse problems
) STRICT;
-- The same bytes in the same folder are one message, even after a UIDVALIDITY change.
CREATE UNIQUE INDEX messages_content ON messages(mailbox, folder, raw_sha256);

-- One observed step of a probe. `source` makes every event idempotent.
CREATE TABLE events (
    id            TEXT PRIMARY KEY,        -- ULID
    probe_id      TEXT NOT NULL REFERENCES probes(id),
    kind          TEXT NOT NULL,           -- accepted | bounce | auto_ack | bot | human | follow_up | resolved
    occurred_at   INTEGER NOT NULL,        -- the server's time
    observed_at   INTEGER NOT NULL,        -- when deskprobe saw it
    source        TEXT NOT NULL UNIQUE,
    match_method  TEXT,                    -- thread | subaddress | ticket-ref | token | api
    language      TEXT,
    facts_matched INTEGER,                 -- NULL when the script expects nothing
    reasons       TEXT NOT NULL,           -- JSON array: why this kind
    raw_sha256    TEXT REFERENCES raw_messages(sha256),
    message       INTEGER REFERENCES messages(id)
) STRICT;
CREATE INDEX events_probe ON events(probe_id, occurred_at);

-- Where each IMAP folder was read up to. Advanced in the same transaction as the messages.
CREATE TABLE imap_cursors (
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (mailbox, folder)
) STRICT;

-- Outcome of the last collect per reply source, for `status`.
CREATE TABLE collector_runs (
    source        TEXT PRIMARY KEY,        -- imap:MAILBOX
    last_ok_at    INTEGER,
    last_error    TEXT,
    last_error_at INTEGER
) STRICT;

-- A reviewer's correction of an event's kind; scores use the newest one.
CREATE TABLE overrides (
    id        TEXT PRIMARY KEY,
    event_id  TEXT NOT NULL REFERENCES events(id),
    kind      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    reviewer  TEXT NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
