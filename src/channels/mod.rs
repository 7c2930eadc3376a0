//! The only network I/O of deskprobe: one module per way of reaching a target's support or of
//! reading its responses. Backends turn the outside world into plain values (`Accepted`,
//! fetched messages, [`AgentMessage`]s) that the wiring code hands to `matching`, `classify`
//! and `store`.
//!
//! Channels must not decide anything (what is due, what a message means) and must not touch
//! SQLite.

pub mod chat;
pub mod email;
pub mod http;
pub mod ticket;
pub mod tls;

use crate::model::Millis;

/// A message written by the support side of a ticket or chat, as the vendor reported it.
/// Whether it is a bot or a human is decided later (the vendor's word, then the target's
/// `rules.bot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMessage {
    /// Stable, unique name of the message (`livechat:CHAT/EVENT`): each is stored once.
    pub source: String,
    /// The vendor's `created_at`.
    pub occurred_at: Millis,
    /// The message text.
    pub text: String,
    /// The author's display name, when the vendor gives one.
    pub author: Option<String>,
    /// The vendor itself says the author is a bot.
    pub vendor_bot: bool,
    /// The vendor's JSON for the message, kept as evidence.
    pub raw: Vec<u8>,
}

/// What sending a ticket or chat probe did.
#[derive(Debug)]
pub enum ApiOutcome {
    /// The remote accepted it at `sent_at` (HTTP 2xx on creation, chat message acknowledged).
    Accepted {
        sent_at: Millis,
        /// Where it went, for the `accepted` event's source.
        source: String,
        /// Helpdesk references learnt for the probe (`request:12345`).
        refs: Vec<String>,
        /// State to follow the ticket or chat with, when there is something to follow.
        session: Option<serde_json::Value>,
        /// A problem after the acceptance (e.g. a later step failed), recorded with the probe.
        warning: Option<String>,
    },
    /// The remote answered 2xx but the answer cannot be read: maybe created, never re-sent.
    Unconfirmed {
        error: String,
        refs: Vec<String>,
        session: Option<serde_json::Value>,
    },
    /// Nothing was accepted.
    Failed {
        error: String,
        /// The remote surely created nothing (a later attempt cannot duplicate).
        retryable: bool,
    },
}

/// Everything a ticket or chat driver needs to know about one probe.
#[derive(Debug, Clone)]
pub struct ProbeText {
    pub probe_id: String,
    pub token: String,
    pub target_id: String,
    pub target_name: String,
    pub persona_id: String,
    pub persona_name: String,
    pub persona_email: String,
    pub language: String,
    pub subject: String,
    pub body: String,
}
