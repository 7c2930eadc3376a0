//! deskprobe: a mystery-shopper probing daemon.
//!
//! Data flows one way: `config` → `schedule` → `channels` → `store` → `score` → `report`.
//! Network I/O lives only in `channels`, SQL only in `store`; the deciding modules (`mail`,
//! `matching`, `classify`) are pure. `send` and `collect` wire them together; `cli` and
//! `commands` are the thin top.

pub mod bundle;
pub mod channels;
pub mod classify;
pub mod cli;
pub mod collect;
mod commands;
pub mod config;
pub mod daemon;
pub mod follow;
pub mod mail;
pub mod matching;
pub mod model;
pub mod report;
pub mod schedule;
pub mod score;
pub mod send;
pub mod store;
