//! The email channel: probes go out over SMTP (lettre), responses are read over IMAP
//! (async-imap) with BODY.PEEK only.
//!
//! This module owns the conversation with mail servers. It must not parse message meaning,
//! match or classify, and must not touch SQLite.

pub mod imap;
pub mod smtp;
