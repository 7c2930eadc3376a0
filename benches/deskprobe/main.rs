//! deskprobe's benchmarks (issue 7): the real binary against real Dovecot and SMTP on
//! loopback (the `deskprobe-sandbox` crate starts them), printed as one table.
//!
//! `scripts/bench` runs the full set (release build); `scripts/bench --quick` runs a small
//! version in seconds for CI, which checks the counts of what it measured (every reply stored
//! and matched, every message synced, every probe in the report) and never the timings.
//!
//! 1. detect: reply detection latency of `deskprobe run` (IDLE) vs `check_imap_receive`
//! 2. sync:   first `collect` of a 100,000-message folder, then one with 10 new messages
//! 3. report: `report` on 1,000,000 probes and 5,000,000 events imported from bundles
//! 4. idle:   the daemon's RSS and CPU with 50 targets and its IDLE watchers up
//! 5. send:   probes per second through SMTP with the store's bookkeeping
//!
//! Options (after `--` with cargo): `--quick`, `--only detect,sync,report,idle,send`,
//! `--replies N`, `--history N` (probes already stored when detection starts), `--sync-messages N`, `--report-probes N`, `--idle-seconds N`,
//! `--out FILE` (the table as Markdown).

mod detect;
mod idle;
mod report;
mod send;
mod sync;
mod util;

use std::time::{Duration, Instant};

struct Options {
    quick: bool,
    only: Vec<String>,
    replies: usize,
    history: usize,
    sync_messages: usize,
    report_probes: usize,
    idle: Duration,
    out: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        quick,
        only: Vec::new(),
        replies: if quick { 4 } else { 200 },
        history: if quick { 1_000 } else { 100_000 },
        sync_messages: if quick { 2_000 } else { 100_000 },
        report_probes: if quick { 2_000 } else { 1_000_000 },
        idle: Duration::from_secs(if quick { 2 } else { 60 }),
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{a} needs a value"))
                .clone()
        };
        let number = |v: String| -> usize {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            // `cargo bench` passes --bench; the rest are ours.
            "--bench" | "--quick" => {}
            "--only" => o.only = value().split(',').map(str::to_owned).collect(),
            "--replies" => o.replies = number(value()),
            "--history" => o.history = number(value()),
            "--sync-messages" => o.sync_messages = number(value()),
            "--report-probes" => o.report_probes = number(value()),
            "--idle-seconds" => o.idle = Duration::from_secs(number(value()) as u64),
            "--out" => o.out = Some(value().into()),
            other => panic!(
                "unknown option {other} (--quick, --only LIST, --replies N, --history N, --sync-messages N, \
                 --report-probes N, --idle-seconds N, --out FILE)"
            ),
        }
    }
    o
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: the small run is
    // `scripts/bench --quick` (scripts/test), so there is nothing to do here.
    if !std::env::args().any(|a| a == "--bench") {
        println!("deskprobe benchmarks: run them with scripts/bench (or scripts/bench --quick)");
        return;
    }
    let o = options();
    let wanted = |name: &str| o.only.is_empty() || o.only.iter().any(|w| w == name);
    if wanted("detect") {
        assert!(
            detect::peer_installed(),
            "{} is missing: scripts/bench installs Debian's monitoring-plugins-contrib",
            detect::CHECK_IMAP_RECEIVE
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut table = util::Table::default();
    runtime.block_on(async {
        if wanted("detect") {
            detect::run(&mut table, o.quick, o.replies, o.history).await;
        }
        if wanted("sync") {
            sync::run(&mut table, o.sync_messages).await;
        }
        if wanted("report") {
            report::run(&mut table, o.report_probes).await;
        }
        if wanted("idle") {
            idle::run(&mut table, o.idle).await;
        }
        if wanted("send") {
            send::run(&mut table, o.quick).await;
        }
    });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let header = format!(
        "deskprobe benchmarks{} — {cores} cores, {:.0} s\n\n",
        if o.quick {
            " (--quick: counts checked, timings not meaningful)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    );
    let text = format!("{header}{}", table.markdown());
    println!("\n{text}");
    if let Some(out) = &o.out {
        std::fs::write(out, &text).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    }
}
