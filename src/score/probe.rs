//! What happened to one probe, reduced to the instants scoring needs: when it was sent (t0),
//! when its observation window closes, its first acknowledgement and first human response,
//! whether it bounced, and what the first human response said (language, facts).
//!
//! Decisions (DESIGN.md "Scoring definitions", "Timestamps"):
//! - Sent probes are `sent`, `closed` and `sent_unconfirmed` ones. t0 is `sent_at`; a probe
//!   without one (`sent_unconfirmed`: the process died before recording the acceptance) uses
//!   `created_at`, the moment its row was committed just before the send.
//! - `send_failed` probes (and `closed` ones that carry a send error but no `sent_at`) are send
//!   failures, never non-replies. `planned` and `sending` probes are in flight and not scored.
//! - Scores use `occurred_at`. A response stamped before t0 (server clocks drift) counts as 0 s.
//! - Only `auto_ack`/`bot` events acknowledge and only `human` events answer; bounces,
//!   `accepted`, `follow_up` and `resolved` are not responses.
//! - Responses after the observation window (t0 + W) are outside the study and ignored, so a
//!   probe never answered within its window is censored at min(now, t0 + W).
//!
//! Pure: no SQL, no I/O, no clock.

use crate::model::{ChannelKind, Event, EventKind, Millis, Probe, ProbeStatus, Urgency};

/// Which event kinds scoring reads: as reviewed (overrides applied) or as first classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Reviewer overrides applied (what reports show).
    Reviewed,
    /// The classifier's own kinds, to tell which figures overrides changed.
    Classifier,
}

/// A probe as scoring reads it: only the fields scoring needs, borrowed, so a scan over a
/// large store allocates nothing per probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRow<'a> {
    /// The probe's id.
    pub id: &'a str,
    /// Its target.
    pub target: &'a str,
    /// Its channel.
    pub channel: ChannelKind,
    /// Its lifecycle status.
    pub status: ProbeStatus,
    /// When the remote accepted it.
    pub sent_at: Option<Millis>,
    /// When its row was committed, just before the send.
    pub created_at: Millis,
    /// The script's urgency.
    pub urgency: Urgency,
    /// The language the probe was written in.
    pub language: &'a str,
    /// Whether a send error was recorded.
    pub send_error: bool,
}

impl<'a> From<&'a Probe> for ProbeRow<'a> {
    fn from(p: &'a Probe) -> Self {
        ProbeRow {
            id: &p.id,
            target: &p.target,
            channel: p.channel,
            status: p.status,
            sent_at: p.sent_at,
            created_at: p.created_at,
            urgency: p.urgency,
            language: &p.language,
            send_error: p.send_error.is_some(),
        }
    }
}

/// An event as scoring reads it (borrowed, see [`ProbeRow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRow<'a> {
    /// The kind as reviewed (the newest override, else the classifier's).
    pub kind: EventKind,
    /// The classifier's own kind.
    pub classified: EventKind,
    /// The server's time.
    pub occurred_at: Millis,
    /// When deskprobe saw it.
    pub observed_at: Millis,
    /// Detected language.
    pub language: Option<&'a str>,
    /// Whether the script's expected facts were stated.
    pub facts_matched: Option<bool>,
}

impl<'a> From<&'a Event> for EventRow<'a> {
    fn from(e: &'a Event) -> Self {
        EventRow {
            kind: e.kind,
            classified: e.overridden_from.unwrap_or(e.kind),
            occurred_at: e.occurred_at,
            observed_at: e.observed_at,
            language: e.language.as_deref(),
            facts_matched: e.facts_matched,
        }
    }
}

/// A sent probe, as scoring sees it. Kept small (no text, no list): a report holds one per
/// probe of the window, a million of them on a large archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// The probe's id (empty when the scorer was asked not to keep ids).
    pub probe_id: String,
    /// The script's urgency.
    pub urgency: Urgency,
    /// Send time: `sent_at`, else `created_at`.
    pub t0: Millis,
    /// End of the observation window, t0 + W.
    pub horizon: Millis,
    /// Whether any bounce came back.
    pub bounced: bool,
    /// First auto-ack or bot event within the window.
    pub ack_at: Option<Millis>,
    /// First human event within the window.
    pub human_at: Option<Millis>,
    /// Whether the first human response is in the probe's language (same primary subtag);
    /// `None` when its language was not detected.
    pub human_language_match: Option<bool>,
    /// Whether the first human response stated the script's expected facts.
    pub human_facts: Option<bool>,
}

impl ProbeOutcome {
    /// A probe sent at `t0` with nothing observed yet (for tests and tools).
    pub fn sent(id: &str, t0: Millis, window_ms: i64) -> ProbeOutcome {
        ProbeOutcome {
            probe_id: id.to_owned(),
            urgency: Urgency::Normal,
            t0,
            horizon: t0.saturating_add(window_ms),
            bounced: false,
            ack_at: None,
            human_at: None,
            human_language_match: None,
            human_facts: None,
        }
    }

    /// Milliseconds from t0 to the first human response (0 when stamped before t0).
    pub fn human_delay_ms(&self) -> Option<i64> {
        self.human_at.map(|h| (h - self.t0).max(0))
    }

    /// Milliseconds from t0 to the first acknowledgement (0 when stamped before t0).
    pub fn ack_delay_ms(&self) -> Option<i64> {
        self.ack_at.map(|a| (a - self.t0).max(0))
    }

    /// The Kaplan–Meier observation: (ms, answered); unanswered probes are censored at
    /// min(now, t0 + W).
    pub fn km_observation(&self, now: Millis) -> (i64, bool) {
        match self.human_delay_ms() {
            Some(d) => (d, true),
            None => ((now.min(self.horizon) - self.t0).max(0), false),
        }
    }
}

/// How a probe counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Sending {
    /// Accepted (or possibly accepted) by the remote.
    Sent(ProbeOutcome),
    /// The remote refused or the send timed out.
    SendFailed,
    /// Not sent yet; not scored.
    InFlight,
}

/// Reduces a probe and its events (any order; others' events are skipped) to what scoring
/// needs, with the observation window `window_ms`. The measurement latencies of its responses
/// are left out (see [`reduce_rows`]).
pub fn reduce(probe: &Probe, events: &[&Event], window_ms: i64, view: View) -> Sending {
    let mut mine: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| e.probe_id == probe.id)
        .collect();
    mine.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    let rows: Vec<EventRow<'_>> = mine.into_iter().map(EventRow::from).collect();
    reduce_rows(
        &ProbeRow::from(probe),
        &rows,
        window_ms,
        view,
        true,
        &mut Vec::new(),
    )
}

/// Reduces a probe and its events, ordered by (occurred_at, id), to what scoring needs, with
/// the observation window `window_ms`; pushes observed_at − occurred_at (ms) of each response
/// within the window onto `latencies`. `keep_id` keeps the probe's id in the outcome.
pub fn reduce_rows(
    probe: &ProbeRow<'_>,
    events: &[EventRow<'_>],
    window_ms: i64,
    view: View,
    keep_id: bool,
    latencies: &mut Vec<i64>,
) -> Sending {
    let t0 = match probe.status {
        ProbeStatus::Planned | ProbeStatus::Sending => return Sending::InFlight,
        ProbeStatus::SendFailed => return Sending::SendFailed,
        ProbeStatus::Closed if probe.sent_at.is_none() && probe.send_error => {
            return Sending::SendFailed;
        }
        ProbeStatus::Sent | ProbeStatus::SentUnconfirmed | ProbeStatus::Closed => {
            probe.sent_at.unwrap_or(probe.created_at)
        }
    };
    let mut out = ProbeOutcome::sent(if keep_id { probe.id } else { "" }, t0, window_ms);
    out.urgency = probe.urgency;
    for e in events {
        let k = match view {
            View::Reviewed => e.kind,
            View::Classifier => e.classified,
        };
        if k == EventKind::Bounce {
            out.bounced = true;
        }
        if e.occurred_at > out.horizon {
            continue;
        }
        match k {
            EventKind::AutoAck | EventKind::Bot => {
                latencies.push(e.observed_at - e.occurred_at);
                if out.ack_at.is_none() {
                    out.ack_at = Some(e.occurred_at);
                }
            }
            EventKind::Human => {
                latencies.push(e.observed_at - e.occurred_at);
                if out.human_at.is_none() {
                    out.human_at = Some(e.occurred_at);
                    out.human_language_match =
                        e.language.map(|l| super::same_language(l, probe.language));
                    out.human_facts = e.facts_matched;
                }
            }
            EventKind::Accepted | EventKind::Bounce | EventKind::FollowUp | EventKind::Resolved => {
            }
        }
    }
    Sending::Sent(out)
}
