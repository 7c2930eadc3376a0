//! The evidence record shapes of DESIGN.md ("Evidence bundles"): one JSON object per probe and
//! per event, used by `evidence --format json` and by export/import.
//!
//! Pure conversions from stored rows; this module must not read the store or the network.

use serde::{Deserialize, Serialize};

use crate::model::{ChannelKind, EventKind, MatchMethod, ProbeStatus, Urgency, rfc3339};
use crate::store::{Event, Probe};

/// A probe as it appears in bundles and evidence documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub target: String,
    pub channel: ChannelKind,
    pub script: String,
    pub persona: String,
    pub language: String,
    pub urgency: Urgency,
    pub status: ProbeStatus,
    /// RFC 3339 UTC with milliseconds; null when the probe was never accepted.
    pub sent_at: Option<String>,
    pub vantage: String,
}

/// An event as it appears in bundles and evidence documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub probe: String,
    pub kind: EventKind,
    pub occurred_at: String,
    pub observed_at: String,
    pub source: String,
    #[serde(rename = "match")]
    pub match_method: Option<MatchMethod>,
    pub language: Option<String>,
    pub facts_matched: Option<bool>,
    pub raw_sha256: Option<String>,
}

impl From<&Probe> for ProbeRecord {
    fn from(p: &Probe) -> Self {
        ProbeRecord {
            record_type: "probe".into(),
            id: p.id.clone(),
            target: p.target.clone(),
            channel: p.channel,
            script: p.script.clone(),
            persona: p.persona.clone(),
            language: p.language.clone(),
            urgency: p.urgency,
            status: p.status,
            sent_at: p.sent_at.map(rfc3339),
            vantage: p.vantage.clone(),
        }
    }
}

impl From<&Event> for EventRecord {
    fn from(e: &Event) -> Self {
        EventRecord {
            record_type: "event".into(),
            id: e.id.clone(),
            probe: e.probe_id.clone(),
            kind: e.kind,
            occurred_at: rfc3339(e.occurred_at),
            observed_at: rfc3339(e.observed_at),
            source: e.source.clone(),
            match_method: e.match_method,
            language: e.language.clone(),
            facts_matched: e.facts_matched,
            raw_sha256: e.raw_sha256.clone(),
        }
    }
}
