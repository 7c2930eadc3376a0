//! deskprobe's integration tests: one binary, real servers on loopback (see `support`).

mod chat;
mod config;
mod daemon;
mod deskprobe;
mod email;
mod harness;
mod hostile;
mod report;
mod scoring;
mod steps;
mod ticket;
/// The loopback servers (the `deskprobe-sandbox` crate).
use deskprobe_sandbox as support;
mod watch;
