-- deskprobe schema v3: evidence imported from bundles.

-- The SHA-256 of an imported event's raw message when the bundle did not carry the bytes
-- (export without --with-raw): events.raw_sha256 must reference a stored raw message, so the
-- hash of evidence held elsewhere is kept here. `IF NOT EXISTS` keeps a development database
-- that ran this file under another number openable.
CREATE TABLE IF NOT EXISTS event_raw_refs (
    event_id   TEXT PRIMARY KEY REFERENCES events(id),
    raw_sha256 TEXT NOT NULL
) STRICT;
