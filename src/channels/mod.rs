//! The only network I/O of deskprobe: one module per way of reaching a target's support or of
//! reading its responses. Backends turn the outside world into plain values (`Accepted`,
//! fetched messages) that the wiring code hands to `matching`, `classify` and `store`.
//!
//! Channels must not decide anything (what is due, what a message means) and must not touch
//! SQLite.

pub mod email;
pub mod tls;
