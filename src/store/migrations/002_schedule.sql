-- deskprobe schema v2: what the scheduler decided, so that no slot is ever sent twice.

-- One row per attempt at a (schedule, cron slot, target, channel) once it has been handled: a
-- probe was committed for it (sent, failed or unconfirmed), or it was skipped (missed, cap,
-- min-gap). A send that failed before the server accepted anything may be attempted again.
CREATE TABLE schedule_slots (
    schedule    TEXT NOT NULL,
    slot        INTEGER NOT NULL,          -- the cron fire time
    target      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,          -- 0 first, then retries
    send_at     INTEGER NOT NULL,          -- the planned send time (slot + jitter/stratification)
    outcome     TEXT NOT NULL,             -- probe | skipped
    reason      TEXT,                      -- why it was skipped
    probe_id    TEXT REFERENCES probes(id),
    decided_at  INTEGER NOT NULL,
    PRIMARY KEY (schedule, slot, target, channel, attempt)
) STRICT;

-- Small named values the daemon keeps between runs (e.g. when it last planned).
CREATE TABLE daemon_state (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT;

-- Whether a failed send may be tried again: the server surely did not take the message
-- (connection refused, a 4xx answer), as opposed to a timeout after DATA or a 5xx refusal.
ALTER TABLE probes ADD COLUMN send_retryable INTEGER;

-- Which process is sending a probe (`pid:start-time`), so that after a crash a probe left
-- `sending` by a dead process is known at once to be interrupted.
ALTER TABLE probes ADD COLUMN sending_owner TEXT;
