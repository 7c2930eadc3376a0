//! Benchmark 3, report generation on a large archive: P probes and 5·P events, synthetic,
//! written as evidence bundles (DESIGN.md's JSONL) in chunks and loaded with
//! `deskprobe import` (as several vantage points would merge theirs), then
//! `deskprobe report --format json`: time and peak RSS. `--format html` (which embeds the
//! evidence of every probe) is measured at a checkpoint of HTML_AT probes on the way (it
//! needs about 15 GB at a million).
//!
//! The data: 10 targets (24/7, 24 h email claim), probes spread over the past year, 2 % send
//! failures, 20 % urgent; five events per probe: accepted, auto_ack, a human reply (15 % a bot
//! instead, 5 % in another language, half with the expected facts) within 10 min–48 h,
//! follow_up and resolved.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use deskprobe::model::rfc3339;
use deskprobe_sandbox::MailServers;

use crate::util::{self, Table, mb, secs};

const TARGETS: usize = 10;
/// The archive size at which the HTML report is measured.
const HTML_AT: usize = 200_000;
const EVENTS_PER_PROBE: usize = 5;

/// A small, fast, deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the generated archive should score to.
#[derive(Default)]
struct Expected {
    sent: u64,
    send_failed: u64,
}

/// Writes probes `from..to` and their events as one bundle file.
fn write_chunk(path: &Path, from: usize, to: usize, total: usize, now: i64, exp: &mut Expected) {
    let file = std::fs::File::create(path).expect("create bundle chunk");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let year = 365 * 86_400_000i64;
    let mut rng = Rng(from as u64 ^ 0x5eed);
    let mut line = String::with_capacity(512);
    let mut events = String::with_capacity(4096);
    for i in from..to {
        // The newest probe is two days old, so every window has closed.
        let t0 = now - 2 * 86_400_000 - year + (i as i64 * year / total as i64);
        let failed = rng.below(50) == 0;
        let urgent = rng.below(5) == 0;
        let id = format!("P{i:09}");
        line.clear();
        let _ = write!(
            line,
            r#"{{"type":"probe","id":"{id}","target":"{target}","channel":"email","script":"withdrawal","persona":"lin","language":"en","urgency":"{urgency}","status":"{status}","sent_at":{sent_at},"vantage":"bench","created_at":"{created}"}}"#,
            target = util::target_id(i % TARGETS),
            urgency = if urgent { "urgent" } else { "normal" },
            status = if failed { "send_failed" } else { "sent" },
            sent_at = if failed {
                "null".to_owned()
            } else {
                format!("\"{}\"", rfc3339(t0 + 400))
            },
            created = rfc3339(t0),
        );
        out.write_all(line.as_bytes()).expect("write");
        out.write_all(b"\n").expect("write");
        if failed {
            exp.send_failed += 1;
        } else {
            exp.sent += 1;
        }
        let human_at = t0 + 600_000 + rng.below(48 * 3_600_000) as i64;
        let steps = [
            ("accepted", t0 + 400),
            ("auto_ack", t0 + 30_000 + rng.below(60_000) as i64),
            (if rng.below(100) < 15 { "bot" } else { "human" }, human_at),
            ("follow_up", human_at + 3_600_000),
            ("resolved", human_at + 7_200_000),
        ];
        events.clear();
        for (k, (kind, at)) in steps.iter().enumerate() {
            let n = i * EVENTS_PER_PROBE + k;
            let language = if rng.below(100) < 5 { "zh" } else { "en" };
            let facts = rng.below(2) == 0;
            let _ = writeln!(
                events,
                r#"{{"type":"event","id":"E{n:010}","probe":"{id}","kind":"{kind}","occurred_at":"{occurred}","observed_at":"{observed}","source":"imap:bench/INBOX/1/{n}","match":"thread","language":"{language}","facts_matched":{facts},"raw_sha256":null}}"#,
                occurred = rfc3339(*at),
                observed = rfc3339(*at + 500 + rng.below(1000) as i64),
            );
        }
        out.write_all(events.as_bytes()).expect("write");
    }
    out.flush().expect("flush bundle chunk");
}

pub async fn run(table: &mut Table, probes: usize) {
    let events = probes * EVENTS_PER_PROBE;
    eprintln!("report: {probes} probes and {events} events via `deskprobe import`, then `report`");
    // Only the temp dir and the config of the servers are used (no mail).
    let servers = MailServers::start().await;
    let text = util::config_text(&servers, TARGETS, &["INBOX"], "");
    let config_path = util::write_config(servers.dir(), &text);
    let db = servers.dir().join("report.db");
    let now = deskprobe::model::now_millis();

    let chunk = 50_000.min(probes);
    let mut expected = Expected::default();
    let (mut gen_time, mut import_time, mut import_rss, mut bytes) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0u64);
    let mut from = 0;
    let path = servers.dir().join("bundle.jsonl");
    let mut html = None;
    while from < probes {
        let to = (from + chunk).min(probes);
        let started = std::time::Instant::now();
        write_chunk(&path, from, to, probes, now, &mut expected);
        gen_time += started.elapsed();
        bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let path_arg = path.display().to_string();
        let m = util::measure(util::deskprobe(&config_path, &db, &["import", &path_arg]))
            .await
            .ok("deskprobe import");
        assert!(
            m.stdout.starts_with(&format!(
                "imported {} probe(s), {} event(s)",
                to - from,
                (to - from) * EVENTS_PER_PROBE
            )),
            "{}",
            m.stdout
        );
        import_time += m.wall;
        import_rss = import_rss.max(m.peak_rss);
        from = to;
        if html.is_none() && (from >= HTML_AT || from == probes) {
            html = Some((from, render(&config_path, &db, servers.dir(), "html").await));
        }
    }
    let _ = std::fs::remove_file(&path);
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);

    // Three runs: the median time (the machine is shared), the largest peak RSS.
    let out = servers.dir().join("report.json");
    let out_arg = out.display().to_string();
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(
            util::measure(util::deskprobe(
                &config_path,
                &db,
                &["report", "--format", "json", "--out", &out_arg],
            ))
            .await
            .ok("deskprobe report --format json"),
        );
    }
    runs.sort_by_key(|m| m.wall);
    let json_rss = runs.iter().map(|m| m.peak_rss).max().unwrap_or(0);
    let json = &runs[1];
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("read report")).expect("report JSON");
    let sum = |field: &str| -> u64 {
        report["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .flat_map(|t| t["channels"].as_array().cloned().unwrap_or_default())
            .map(|c| c[field].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(sum("sent"), expected.sent, "sent probes in the report");
    assert_eq!(
        sum("send_failed"),
        expected.send_failed,
        "send failures in the report"
    );

    let bench = "3 report";
    table.row(
        bench,
        &format!(
            "generate + `deskprobe import` {probes} probes, {events} events ({:.0} MB JSONL in {} files): time / peak RSS",
            bytes as f64 / 1e6,
            probes.div_ceil(chunk)
        ),
        format!(
            "{} + {} / {}",
            secs(gen_time.as_secs_f64()),
            secs(import_time.as_secs_f64()),
            mb(import_rss)
        ),
        "",
    );
    table.row(bench, "database size", mb(db_size), "");
    table.row(
        bench,
        "`report --format json`: time (median of 3)",
        secs(json.wall.as_secs_f64()),
        "< 2 s",
    );
    table.row(
        bench,
        "`report --format json`: peak RSS",
        mb(json_rss),
        "< 300 MB",
    );
    let (at, (html, size)) = html.expect("HTML measured");
    if html.code == 0 {
        table.row(
            bench,
            &format!(
                "`report --format html` at {at} probes, {} events: time / peak RSS / size",
                at * EVENTS_PER_PROBE
            ),
            format!(
                "{} / {} / {}",
                secs(html.wall.as_secs_f64()),
                mb(html.peak_rss),
                mb(size)
            ),
            "",
        );
    } else {
        table.row(
            bench,
            "`report --format html`",
            format!("failed or not available (exit {})", html.code),
            "",
        );
    }
}

/// Runs `report --format FORMAT --out FILE`; returns the measurement and the file's size.
async fn render(config: &Path, db: &Path, dir: &Path, format: &str) -> (util::Measured, u64) {
    let out = dir.join(format!("report.{format}"));
    let out_arg = out.display().to_string();
    let m = util::measure(util::deskprobe(
        config,
        db,
        &["report", "--format", format, "--out", &out_arg],
    ))
    .await;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&out);
    (m, size)
}
