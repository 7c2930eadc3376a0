//! deskprobe's integration tests: one binary, real servers on loopback (see `support`).

mod config;
mod daemon;
mod deskprobe;
mod email;
mod harness;
mod hostile;
mod scoring;
/// The loopback servers (the `deskprobe-sandbox` crate).
use deskprobe_sandbox as support;
mod watch;
