//! Benchmark 4, the idle daemon: `deskprobe run` with 50 targets configured, one schedule
//! that is not due (once a year), and its IDLE watchers up on the shopper's INBOX and Junk;
//! resident memory (sampled every second) and CPU over the measuring window.

use std::time::{Duration, Instant};

use deskprobe_sandbox::MailServers;

use crate::util::{self, Table, mb};

pub const TARGETS: usize = 50;

/// A schedule for every target that fires on 1 January only.
fn yearly_schedule() -> String {
    let targets = (0..TARGETS)
        .map(|i| format!("{:?}", util::target_id(i)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[[schedule]]
id = "yearly"
cron = "0 0 3 1 1 *"
targets = [{targets}]
channels = ["email"]
scripts = ["withdrawal"]
personas = ["lin"]
"#
    )
}

pub async fn run(table: &mut Table, window: Duration) {
    eprintln!("idle: deskprobe run with {TARGETS} targets for {window:?}");
    let servers = MailServers::start().await;
    servers.create_folder(MailServers::USER, "Junk").await;
    let text = util::config_text(&servers, TARGETS, &["INBOX", "Junk"], &yearly_schedule());
    let config_path = util::write_config(servers.dir(), &text);
    let db = servers.dir().join("idle.db");

    let daemon = util::Daemon::start(&config_path, &db);
    let pid = daemon.id();
    let sources = vec![
        "imap:shopper/INBOX".to_owned(),
        "imap:shopper/Junk".to_owned(),
    ];
    util::eventually(30, "the daemon's watchers", || {
        util::watchers_up(&db, &sources).then_some(())
    })
    .await;
    // Past start-up (config, migrations, first pass): measure the steady state.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cpu_start = util::proc_cpu(pid).expect("daemon alive");
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut threads = 0;
    while started.elapsed() < window {
        let (r, _, t) = util::proc_status(pid).expect("daemon alive");
        rss.push(r);
        threads = t;
        tokio::time::sleep(Duration::from_secs(1).min(window)).await;
    }
    let elapsed = started.elapsed();
    let cpu = util::proc_cpu(pid).expect("daemon alive") - cpu_start;
    let (last, hwm, _) = util::proc_status(pid).expect("daemon alive");
    rss.push(last);

    daemon.stop().await;
    let conn = util::read_db(&db);
    let probes: i64 = conn
        .query_row("SELECT COUNT(*) FROM probes", [], |r| r.get(0))
        .expect("count probes");
    assert_eq!(probes, 0, "nothing was due, nothing was sent");

    let bench = "4 idle";
    let max = rss.iter().copied().max().unwrap_or(0);
    let avg = rss.iter().sum::<u64>() / rss.len() as u64;
    table.row(
        bench,
        &format!(
            "`deskprobe run`, {TARGETS} targets, 2 IDLE watchers: RSS avg / max over {:.0} s",
            elapsed.as_secs_f64()
        ),
        format!("{} / {}", mb(avg), mb(max)),
        "< 25 MB",
    );
    table.row(bench, "peak RSS since start (VmHWM)", mb(hwm), "");
    table.row(
        bench,
        "CPU over the window (user + sys)",
        format!(
            "{:.0} ms = {:.3} % of one core",
            cpu.as_secs_f64() * 1000.0,
            cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0
        ),
        "≈ 0",
    );
    table.row(bench, "threads", threads.to_string(), "");
}
