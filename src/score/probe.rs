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

use crate::model::{Event, EventKind, Millis, Probe, ProbeStatus, Urgency};

/// Which event kinds scoring reads: as reviewed (overrides applied) or as first classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Reviewer overrides applied (what reports show).
    Reviewed,
    /// The classifier's own kinds, to tell which figures overrides changed.
    Classifier,
}

fn kind(e: &Event, view: View) -> EventKind {
    match view {
        View::Reviewed => e.kind,
        View::Classifier => e.overridden_from.unwrap_or(e.kind),
    }
}

/// A sent probe, as scoring sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// The probe's id.
    pub probe_id: String,
    /// The script's urgency.
    pub urgency: Urgency,
    /// The language the probe was written in.
    pub language: String,
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
    /// Detected language of the first human response.
    pub human_language: Option<String>,
    /// Whether the first human response stated the script's expected facts.
    pub human_facts: Option<bool>,
    /// observed_at − occurred_at of each response within the window, in ms.
    pub latencies: Vec<i64>,
}

impl ProbeOutcome {
    /// A probe sent at `t0` with nothing observed yet (for tests and tools).
    pub fn sent(id: &str, t0: Millis, window_ms: i64) -> ProbeOutcome {
        ProbeOutcome {
            probe_id: id.to_owned(),
            urgency: Urgency::Normal,
            language: "en".into(),
            t0,
            horizon: t0.saturating_add(window_ms),
            bounced: false,
            ack_at: None,
            human_at: None,
            human_language: None,
            human_facts: None,
            latencies: Vec::new(),
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
/// needs, with the observation window `window_ms`.
pub fn reduce(probe: &Probe, events: &[&Event], window_ms: i64, view: View) -> Sending {
    let t0 = match probe.status {
        ProbeStatus::Planned | ProbeStatus::Sending => return Sending::InFlight,
        ProbeStatus::SendFailed => return Sending::SendFailed,
        ProbeStatus::Closed if probe.sent_at.is_none() && probe.send_error.is_some() => {
            return Sending::SendFailed;
        }
        ProbeStatus::Sent | ProbeStatus::SentUnconfirmed | ProbeStatus::Closed => {
            probe.sent_at.unwrap_or(probe.created_at)
        }
    };
    let mut out = ProbeOutcome::sent(&probe.id, t0, window_ms);
    out.urgency = probe.urgency;
    out.language = probe.language.clone();
    let mut mine: Vec<&Event> = events
        .iter()
        .copied()
        .filter(|e| e.probe_id == probe.id)
        .collect();
    mine.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    for e in mine {
        let k = kind(e, view);
        if k == EventKind::Bounce {
            out.bounced = true;
        }
        if e.occurred_at > out.horizon {
            continue;
        }
        match k {
            EventKind::AutoAck | EventKind::Bot => {
                out.latencies.push(e.observed_at - e.occurred_at);
                if out.ack_at.is_none() {
                    out.ack_at = Some(e.occurred_at);
                }
            }
            EventKind::Human => {
                out.latencies.push(e.observed_at - e.occurred_at);
                if out.human_at.is_none() {
                    out.human_at = Some(e.occurred_at);
                    out.human_language = e.language.clone();
                    out.human_facts = e.facts_matched;
                }
            }
            EventKind::Accepted | EventKind::Bounce | EventKind::FollowUp | EventKind::Resolved => {
            }
        }
    }
    Sending::Sent(out)
}
