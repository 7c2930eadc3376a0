//! deskprobe's integration tests: one binary, real servers on loopback (see `support`).

mod config;
mod deskprobe;
mod email;
mod harness;
mod hostile;
mod support;
mod watch;
