//! deskprobe's integration tests: one binary, real servers on loopback (see `support`).

mod deskprobe;
mod email;
mod harness;
mod support;
