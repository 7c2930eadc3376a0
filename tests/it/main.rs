//! deskprobe's integration tests: one binary, real servers on loopback (see `support`).

mod config;
mod daemon;
mod deskprobe;
mod email;
mod harness;
mod hostile;
mod scoring;
mod support;
mod watch;
