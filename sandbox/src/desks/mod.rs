//! Simulated exchange support desks: they answer deskprobe's probes the way real desks do, on
//! loopback only, and say in every message they send that they are simulated
//! (`X-Simulated-Desk` header, "(simulated desk)" in the signature).
//!
//! - [`email::EmailDesk`]: reads its support mailbox over IMAP, sends an automatic
//!   acknowledgement at once, then a human-looking reply after a configurable delay and only
//!   while its own business hours ([`DeskHours`]) are open, threaded with
//!   `In-Reply-To`/`References`, through the loopback SMTP relay.
//! - [`demo`]: the whole job on one machine: mail servers, desks, a demo probes.toml, the
//!   real `deskprobe run`, and the reports.
//!
//! - [`helpdesk::TicketDesk`] and [`helpdesk::ChatDesk`]: the Zendesk- and LiveChat-like
//!   fakes of `crate::vendors` with the support side played (ticket answers emailed as
//!   Zendesk notifications; a chat bot, then a human while the desk is open).

pub mod demo;
pub mod email;
pub mod helpdesk;
mod rfc5322;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When a simulated desk works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskHours {
    /// Always open (a desk that keeps its 24/7 promise).
    Always,
    /// Weekly hours at a fixed UTC offset: open on `days` (Monday first) from `open` to
    /// `close` minutes after local midnight.
    Weekly {
        /// Offset from UTC in minutes (e.g. 480 for UTC+8).
        utc_offset_minutes: i32,
        /// Working days, Monday first.
        days: [bool; 7],
        /// Opening, minutes after local midnight.
        open: u32,
        /// Closing, minutes after local midnight.
        close: u32,
    },
    /// Shifts for a demo that runs minutes, not weeks: open for `open`, closed for `closed`,
    /// repeating, in phase with the Unix epoch.
    Cycle {
        /// How long a shift is open.
        open: Duration,
        /// How long the desk is closed between shifts.
        closed: Duration,
    },
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl DeskHours {
    /// Whether the desk works at `t`.
    pub fn is_open(&self, t: SystemTime) -> bool {
        match self {
            DeskHours::Always => true,
            DeskHours::Weekly {
                utc_offset_minutes,
                days,
                open,
                close,
            } => {
                let local = secs(t) as i64 + i64::from(*utc_offset_minutes) * 60;
                let day = local.div_euclid(86_400);
                // 1970-01-01 was a Thursday (Monday-first index 3).
                let weekday = (day + 3).rem_euclid(7) as usize;
                let minute = (local.rem_euclid(86_400) / 60) as u32;
                days[weekday] && *open <= minute && minute < *close
            }
            DeskHours::Cycle { open, closed } => {
                let period = (open.as_millis() + closed.as_millis()).max(1);
                let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                ms % period < open.as_millis()
            }
        }
    }

    /// The first instant at or after `t` when the desk is open (searched minute by minute for
    /// weekly hours, exactly for shifts); `t` itself when open.
    pub fn next_open(&self, t: SystemTime) -> SystemTime {
        if self.is_open(t) {
            return t;
        }
        match self {
            DeskHours::Always => t,
            DeskHours::Cycle { open, closed } => {
                let period = open.as_millis() + closed.as_millis();
                let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                let next = (ms / period + 1) * period;
                UNIX_EPOCH + Duration::from_millis(next as u64)
            }
            DeskHours::Weekly { .. } => {
                let mut at = t;
                for _ in 0..(8 * 24 * 60) {
                    at += Duration::from_secs(60);
                    if self.is_open(at) {
                        // Back to the minute's start, when the desk opened.
                        let s = secs(at);
                        return UNIX_EPOCH + Duration::from_secs(s - s % 60);
                    }
                }
                at
            }
        }
    }

    /// A short description for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            DeskHours::Always => "always open".into(),
            DeskHours::Weekly {
                utc_offset_minutes,
                open,
                close,
                ..
            } => format!(
                "weekly {:02}:{:02}–{:02}:{:02} at UTC{:+}h",
                open / 60,
                open % 60,
                close / 60,
                close % 60,
                utc_offset_minutes / 60
            ),
            DeskHours::Cycle { open, closed } => format!(
                "shifts: open {} s, closed {} s",
                open.as_secs(),
                closed.as_secs()
            ),
        }
    }
}

/// A small deterministic pseudo-random source (xorshift), so a desk's delays are reproducible
/// from its seed without another dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi]`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_millis() as u64;
        lo + Duration::from_millis(self.next_u64() % (span + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours() {
        // 2026-11-02 was a Monday; 03:00 UTC = 11:00 at UTC+8.
        let monday_3utc = UNIX_EPOCH + Duration::from_secs(1_793_588_400);
        let office = DeskHours::Weekly {
            utc_offset_minutes: 480,
            days: [true, true, true, true, true, false, false],
            open: 9 * 60,
            close: 18 * 60,
        };
        assert!(office.is_open(monday_3utc));
        let evening = monday_3utc + Duration::from_secs(8 * 3600); // 19:00 local
        assert!(!office.is_open(evening));
        let next = office.next_open(evening);
        assert_eq!(secs(next) - secs(monday_3utc), 22 * 3600); // Tue 09:00 local
        let cycle = DeskHours::Cycle {
            open: Duration::from_secs(10),
            closed: Duration::from_secs(20),
        };
        let t = UNIX_EPOCH + Duration::from_secs(3000 + 15);
        assert!(!cycle.is_open(t));
        assert_eq!(secs(cycle.next_open(t)), 3030);
        assert!(cycle.is_open(UNIX_EPOCH + Duration::from_secs(3005)));
    }
}
