-- deskprobe schema v4: ticket and chat channels.

-- A ticket or chat that is followed after its send (a chat until it is closed; a ticket of
-- the declarative `http` driver while its observation window lasts). `state` is the driver's
-- JSON state (chat id, customer token, captured values).
CREATE TABLE IF NOT EXISTS api_sessions (
    probe_id       TEXT PRIMARY KEY REFERENCES probes(id),
    state          TEXT NOT NULL,
    opened_at      INTEGER NOT NULL,      -- the probe's sent_at
    polled_at      INTEGER,               -- last successful look
    queue_position INTEGER,               -- first queue position announced
    queue_wait_s   INTEGER,               -- first queue wait announced, seconds
    human_at       INTEGER,               -- occurred_at of the first human message
    closed_at      INTEGER,               -- when deskprobe closed (or saw closed) the chat
    close_reason   TEXT,                  -- answered | window ended | closed by the desk | …
    last_error     TEXT,
    last_error_at  INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS api_sessions_open ON api_sessions(closed_at);

-- Every HTTP request/response and websocket frame of a ticket or chat probe, secrets
-- redacted; the transcript is raw evidence.
CREATE TABLE IF NOT EXISTS http_exchanges (
    id          INTEGER PRIMARY KEY,
    probe_id    TEXT NOT NULL REFERENCES probes(id),
    at          INTEGER NOT NULL,
    step        TEXT NOT NULL,
    method      TEXT NOT NULL,
    url         TEXT NOT NULL,
    status      INTEGER,
    elapsed_ms  INTEGER NOT NULL,
    raw_sha256  TEXT NOT NULL REFERENCES raw_messages(sha256)
) STRICT;
CREATE INDEX IF NOT EXISTS http_exchanges_probe ON http_exchanges(probe_id, at);
