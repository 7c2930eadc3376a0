//! Domain vocabulary shared by every layer: channels, probe statuses, event kinds, match methods
//! and urgency, with their stable string forms (used in SQLite, bundles and reports).
//!
//! This module owns plain data only. It must not do I/O, parse configs or know about SQL.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a closed set of names with one stable string form each, used in the store, the
/// evidence bundles, the report JSON and the config.
macro_rules! names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable string form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: stringify!($name),
                        given: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A string that is not one of the names of a closed set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {})", expected.join(", "))]
pub struct UnknownName {
    /// Which set was asked for.
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

names! {
    /// A way to reach a target's support.
    ChannelKind { Email = "email", Ticket = "ticket", Chat = "chat" }
}

names! {
    /// Where a probe is in its lifecycle (DESIGN.md "Probe lifecycle").
    ProbeStatus {
        /// Row written, nothing sent yet.
        Planned = "planned",
        /// Row committed, the network send is in flight.
        Sending = "sending",
        /// The remote accepted the probe; `sent_at` is its acceptance time.
        Sent = "sent",
        /// The remote refused, or the send timed out; never counted as "no reply".
        SendFailed = "send_failed",
        /// The process died while sending: maybe accepted, never re-sent automatically.
        SentUnconfirmed = "sent_unconfirmed",
        /// The observation window ended.
        Closed = "closed",
    }
}

names! {
    /// One observed step after sending.
    EventKind {
        Accepted = "accepted",
        Bounce = "bounce",
        AutoAck = "auto_ack",
        Bot = "bot",
        Human = "human",
        FollowUp = "follow_up",
        Resolved = "resolved",
    }
}

names! {
    /// How a response was tied to its probe, in the order the matcher tries them.
    MatchMethod {
        Thread = "thread",
        Subaddress = "subaddress",
        TicketRef = "ticket-ref",
        Token = "token",
        Api = "api",
    }
}

names! {
    /// How pressing a script's question is.
    Urgency { Normal = "normal", Urgent = "urgent" }
}

/// Integer UTC milliseconds since the Unix epoch: the only time representation in the store.
pub type Millis = i64;

/// Milliseconds since the epoch for a `jiff` timestamp.
pub fn millis(ts: jiff::Timestamp) -> Millis {
    ts.as_millisecond()
}

/// The current time in UTC milliseconds.
pub fn now_millis() -> Millis {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 with milliseconds in UTC (`2026-11-02T03:00:00.000Z`), as in bundles and reports.
pub fn rfc3339(ms: Millis) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => format!("invalid-time({ms})"),
    }
}

/// A probe as stored: one script sent once over one channel to one target by one persona.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub id: String,
    pub target: String,
    pub channel: ChannelKind,
    pub script: String,
    pub persona: String,
    pub language: String,
    pub urgency: Urgency,
    pub status: ProbeStatus,
    pub token: String,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub subject: Option<String>,
    pub raw_sha256: Option<String>,
    pub created_at: Millis,
    pub sent_at: Option<Millis>,
    pub send_error: Option<String>,
    pub closed_at: Option<Millis>,
    pub vantage: String,
}

/// A stored event. `kind` is the reviewer's override when there is one; the classifier's own
/// kind is then kept in `overridden_from`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub probe_id: String,
    pub kind: EventKind,
    /// The classifier's kind, when a reviewer overrode it.
    pub overridden_from: Option<EventKind>,
    pub occurred_at: Millis,
    pub observed_at: Millis,
    pub source: String,
    pub match_method: Option<MatchMethod>,
    pub language: Option<String>,
    pub facts_matched: Option<bool>,
    pub reasons: Vec<String>,
    pub raw_sha256: Option<String>,
    /// Details of the IMAP message behind the event, when it came by mail.
    pub mail: Option<MailMeta>,
}

/// What the store keeps about an inbound message beside its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMeta {
    pub date_header: Option<Millis>,
    pub received: Vec<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
}

/// Per-target rules that help classify responses (`[target.rules]`), already compiled.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// A subject matching any of these is an auto-acknowledgement.
    pub auto_ack_subject: Vec<regex::Regex>,
    /// A body matching any of these is an auto-acknowledgement.
    pub auto_ack_body: Vec<regex::Regex>,
    /// A sender address matching any of these is an auto-acknowledgement.
    pub auto_ack_from: Vec<regex::Regex>,
    /// A chat author name or message matching any of these is a bot (when the vendor does not say).
    pub bot: Vec<regex::Regex>,
    /// Extra patterns that capture a helpdesk ticket reference from a subject (group 1, or the
    /// whole match when there is no group), beside the built-in ones.
    pub ticket_ref: Vec<regex::Regex>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_unknown() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
        }
        let err = "reply".parse::<EventKind>().unwrap_err();
        assert!(
            err.to_string().contains("unknown EventKind `reply`"),
            "{err}"
        );
        assert_eq!(MatchMethod::TicketRef.to_string(), "ticket-ref");
        assert_eq!(
            serde_json::to_string(&ProbeStatus::SentUnconfirmed).unwrap(),
            "\"sent_unconfirmed\""
        );
    }

    #[test]
    fn rfc3339_has_milliseconds() {
        assert_eq!(rfc3339(1_793_588_400_000), "2026-11-02T03:00:00.000Z");
    }
}
