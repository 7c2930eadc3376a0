-- deskprobe schema v5: scoring reads every event of a window in (probe, time) order. This
-- index holds every column scoring needs, so the scan reads the index alone (a fraction of the
-- table's bytes, no sort, no lookup per row) and meets each probe's events in one run. It
-- replaces events_probe, whose columns are its prefix.
DROP INDEX IF EXISTS events_probe;
CREATE INDEX events_score ON events(probe_id, occurred_at, id, kind, observed_at, language,
                                    facts_matched);
