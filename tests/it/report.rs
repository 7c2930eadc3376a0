//! Reports end to end through the CLI (issue 6): Markdown and CSV snapshots of the known
//! bundle (tests/fixtures/bundles/known.jsonl, scored `--as-of` a fixed instant), the JSON
//! checked against the DESIGN.md contract, hostile reply content rendered inert and redacted,
//! the HTML opened in headless Chromium (screenshot kept at
//! `target/test-artifacts/report.png`), `evidence` text, and the demo in a short form.
//!
//! Snapshots live in tests/fixtures/reports/; `UPDATE_SNAPSHOTS=1 cargo test report` rewrites
//! them (review the diff before committing).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::scoring::CONFIG;

/// The fixed scoring instant of the snapshots.
const AS_OF: &str = "2026-11-20T00:00:00Z";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("probes.toml"), CONFIG).expect("write config");
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deskprobe"))
            .args(args)
            .arg("--config")
            .arg(self.path("probes.toml"))
            .arg("--db")
            .arg(self.path("deskprobe.db"))
            .env("RUST_LOG", "deskprobe=warn")
            .output()
            .expect("run deskprobe")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "deskprobe {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    fn known() -> Env {
        let env = Env::new();
        let bundle =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundles/known.jsonl");
        env.ok(&["import", bundle.to_str().unwrap()]);
        env
    }

    fn report(&self, format: &str) -> String {
        self.ok(&["report", "--format", format, "--as-of", AS_OF])
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
    dir
}

/// Compares `actual` with the committed snapshot `name` (or rewrites it with
/// UPDATE_SNAPSHOTS=1).
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    if expected != actual {
        let got = artifacts().join(name);
        std::fs::write(&got, actual).unwrap();
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from the snapshot at line {} (actual written to {}):\n- {}\n+ {}",
            first + 1,
            got.display(),
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>")
        );
    }
}

#[test]
fn markdown_and_csv_of_the_known_bundle_match_their_snapshots() {
    let env = Env::known();
    let md = env.report("md");
    snapshot("known.md", &md);
    let csv = env.report("csv");
    snapshot("known.csv", &csv);

    // The CSV is one tidy table: every row has the header's width; one probe row per probe
    // (8, the send failure K4 included) and one summary row per target × channel (3).
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<::csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let kind = |r: &::csv::StringRecord| r[col("row_type")].to_owned();
    assert_eq!(rows.iter().filter(|r| kind(r) == "probe").count(), 8);
    assert_eq!(rows.iter().filter(|r| kind(r) == "summary").count(), 3);
    let k2 = rows.iter().find(|r| &r[col("probe_id")] == "K2").unwrap();
    // K2's "bot" event was reviewed as human: first human at +50 min, within 1 h.
    assert_eq!(&k2[col("first_human_s")], "3000");
    assert_eq!(&k2[col("sla_state")], "met");
    assert_eq!(&k2[col("overridden_events")], "1");
    assert_eq!(&k2[col("off_hours")], "true");
    let k4 = rows.iter().find(|r| &r[col("probe_id")] == "K4").unwrap();
    assert_eq!(&k4[col("status")], "send_failed");
    assert_eq!(&k4[col("sla_state")], "");
    let kucoin = rows
        .iter()
        .find(|r| kind(r) == "summary" && &r[col("target")] == "kucoin")
        .unwrap();
    assert_eq!(&kucoin[col("eligible")], "4");
    assert_eq!(&kucoin[col("met")], "3");
    assert_eq!(&kucoin[col("sla_verdict")], "insufficient_evidence");

    // Markdown says the same figures as the JSON.
    assert!(md.contains("| KuCoin | email | 1h (24/7) | 4 | 3 | 45m | 3/4 = 75% (95% CI 30–95%) | insufficient evidence | insufficient evidence |"), "{md}");
}

/// Checks a report document against DESIGN.md "Report JSON": every contract field present
/// with its type.
pub fn check_contract(r: &Value) {
    let num_or_null = |v: &Value, what: &str| {
        assert!(
            v.is_number() || v.is_null(),
            "{what} = {v} is not a number or null"
        );
    };
    let count = |v: &Value, what: &str| {
        assert!(v.is_u64(), "{what} = {v} is not a count");
    };
    let rate = |v: &Value, what: &str| {
        if let Some(x) = v.as_f64() {
            assert!((0.0..=1.0).contains(&x), "{what} = {x} is not in [0, 1]");
        } else {
            assert!(v.is_null(), "{what} = {v} is not a rate or null");
        }
    };
    assert_eq!(r["schema"], "deskprobe.report/1");
    let time = |v: &Value, what: &str| {
        let s = v
            .as_str()
            .unwrap_or_else(|| panic!("{what} is not a string"));
        assert!(
            s.parse::<jiff::Timestamp>().is_ok(),
            "{what} = {s} is not RFC 3339"
        );
    };
    time(&r["generated_at"], "generated_at");
    assert!(r["window"].is_object());
    if !r["window"]["from"].is_null() {
        time(&r["window"]["from"], "window.from");
    }
    time(&r["window"]["to"], "window.to");
    let sha = r["config_sha256"].as_str().unwrap();
    assert!(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()));
    for t in r["targets"].as_array().unwrap() {
        for k in ["id", "name", "timezone"] {
            assert!(t[k].is_string(), "target.{k}");
        }
        for c in t["channels"].as_array().unwrap() {
            assert!(
                ["email", "ticket", "chat"].contains(&c["channel"].as_str().unwrap()),
                "{}",
                c["channel"]
            );
            for k in [
                "sent",
                "send_failed",
                "bounced",
                "acked",
                "human_replied",
                "never_replied",
            ] {
                count(&c[k], k);
            }
            for k in ["km_median", "km_p90", "responders_p50", "responders_p90"] {
                num_or_null(&c["first_human_s"][k], k);
            }
            num_or_null(&c["ack_s"]["responders_p50"], "ack_s.responders_p50");
            let sla = &c["sla"];
            if !sla.is_null() {
                num_or_null(&sla["target_s"], "sla.target_s");
                let clock = sla["clock"].as_str().unwrap();
                assert!(!clock.is_empty());
                count(&sla["eligible"], "sla.eligible");
                count(&sla["met"], "sla.met");
                rate(&sla["rate"], "sla.rate");
                if !sla["ci95"].is_null() {
                    let ci = sla["ci95"].as_array().unwrap();
                    assert_eq!(ci.len(), 2);
                    rate(&ci[0], "ci95[0]");
                    rate(&ci[1], "ci95[1]");
                }
                assert!(
                    [
                        "supported",
                        "contradicted",
                        "inconclusive",
                        "insufficient_evidence"
                    ]
                    .contains(&sla["verdict"].as_str().unwrap())
                );
            }
            let a = &c["availability_24_7"];
            if !a.is_null() {
                for side in ["business", "off_hours"] {
                    count(&a[side]["eligible"], "eligible");
                    count(&a[side]["met"], "met");
                    rate(&a[side]["rate"], "rate");
                }
                count(&a["off_hours"]["buckets"], "buckets");
                num_or_null(&a["fisher_p"], "fisher_p");
                assert!(a["verdict"].is_string());
            }
            rate(&c["language_match_rate"], "language_match_rate");
            rate(&c["facts_accuracy"], "facts_accuracy");
        }
    }
}

#[test]
fn json_of_the_known_bundle_follows_the_contract() {
    let env = Env::known();
    let r: Value = serde_json::from_str(&env.report("json")).unwrap();
    check_contract(&r);
    assert_eq!(r["generated_at"], "2026-11-20T00:00:00.000Z");
    // Other formats do not change the JSON: the same figures as without --as-of.
    let now: Value = serde_json::from_str(&env.ok(&["report", "--format", "json"])).unwrap();
    assert_eq!(now["targets"], r["targets"]);
}

/// A bundle with one probe to kucoin and one human reply full of hostile content and
/// personal data, raw message included.
fn hostile_bundle() -> String {
    let long = "A".repeat(10_000);
    let raw = format!(
        "From: \"Mallory Quinlan via KuCoin Support\" <mallory.quinlan@kucoin.example>\r\n\
         To: probe@example.org\r\nSubject: Re: withdrawal <script>alert('subject')</script>\r\n\
         Message-ID: <h1@kucoin.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello, I am Mallory.\r\n<script>alert(document.cookie)</script>\r\n\
         <img src=x onerror=\"alert(1)\">\r\n<a href=\"javascript:alert(2)\">check your wallet</a>\r\n\
         <style>body {{ display: none }}</style>\r\n\
         Call +1 555 0100 9999 or mallory.q@gmail.example.\r\n{long}\r\nMallory\r\n"
    );
    let sha = deskprobe::store::sha256_hex(raw.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
    [
        r#"{"type":"probe","id":"X1","target":"kucoin","channel":"email","script":"withdrawal","persona":"lin","language":"en","urgency":"normal","status":"sent","sent_at":"2026-10-05T02:00:00.000Z","vantage":"sg-1"}"#.to_owned(),
        format!(
            r#"{{"type":"event","id":"X1-hum","probe":"X1","kind":"human","occurred_at":"2026-10-05T02:30:00.000Z","observed_at":"2026-10-05T02:30:02.000Z","source":"imap:shopper/INBOX/7/1","match":"thread","language":"en","facts_matched":false,"raw_sha256":"{sha}","raw":"{b64}"}}"#
        ),
    ]
    .join("\n")
}

#[test]
fn hostile_reply_content_is_inert_escaped_and_redacted_in_the_html() {
    let env = Env::new();
    let bundle = env.path("hostile.jsonl");
    std::fs::write(&bundle, hostile_bundle()).unwrap();
    env.ok(&["import", bundle.to_str().unwrap()]);
    let out = env.path("hostile.html");
    env.ok(&[
        "report",
        "--format",
        "html",
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&out).unwrap();

    // The reply is shown, escaped: no element or attribute from it exists.
    assert!(
        html.contains("&lt;script&gt;alert(document.cookie)&lt;&#x2f;script&gt;")
            || html.contains("&lt;script&gt;alert(document.cookie)&lt;/script&gt;"),
        "excerpt not escaped"
    );
    assert!(
        !html.to_lowercase().contains("<script"),
        "a script element reached the page"
    );
    assert!(!html.contains("<img"), "an img element reached the page");
    assert!(
        !html.contains("onerror=\""),
        "an event handler attribute reached the page"
    );
    assert!(
        !html.contains("href=\"javascript"),
        "a javascript: link reached the page"
    );
    assert!(!html.contains("<a href=\"javascript"));
    assert_eq!(
        html.matches("<style>").count(),
        1,
        "only the report's own style element"
    );
    // The page forbids scripts and fetches even if something slipped through.
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
    // The 10k-character line is cut to an excerpt, and wraps.
    assert!(html.contains(&"A".repeat(500)));
    assert!(!html.contains(&"A".repeat(1300)));
    // Personal data redacted: the agent's name, address, phone and email.
    for secret in [
        "Mallory",
        "mallory",
        "Quinlan",
        "555 0100 9999",
        "gmail.example",
    ] {
        assert!(!html.contains(secret), "`{secret}` is not redacted");
    }
    assert!(html.contains("[agent] via KuCoin Support &lt;[agent]@kucoin.example&gt;"));
    assert!(html.contains("[phone]") && html.contains("[email]"));

    // In a real browser: no script ran, no console error, no element from the reply.
    let page = open_in_chromium(&out, "hostile.png");
    assert!(!page.dom.contains("<script"), "script element in the DOM");
    assert!(!page.dom.contains("<img"), "img element in the DOM");
    assert!(page.dom.contains("id=\"evidence\""));
}

struct Page {
    dom: String,
    screenshot: PathBuf,
}

/// Opens `html` in headless Chromium: dumps the DOM and takes a screenshot into
/// target/test-artifacts/`png`; fails on any console error or blocked resource.
fn open_in_chromium(html: &Path, png: &str) -> Page {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "Debian's chromium is missing: run scripts/install-test-deps"
    );
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.display());
    let common = |cmd: &mut Command| {
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
    };
    let check_console = |what: &str, out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let bad: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                // Chromium logs every console message (errors, CSP violations, uncaught
                // exceptions) as `…:CONSOLE(…)`/`…:CONSOLE:…`; the report has no script, so
                // any console line is a failure.
                l.contains(":CONSOLE")
                    || l.contains("Uncaught")
                    || l.contains("Refused to")
                    || l.contains("Content Security Policy")
                    || l.contains("ERR_FILE_NOT_FOUND")
            })
            .collect();
        assert!(
            out.status.success() && bad.is_empty(),
            "chromium {what}: {}\nconsole errors:\n{}\nstderr tail:\n{}",
            out.status,
            bad.join("\n"),
            stderr.lines().rev().take(15).collect::<Vec<_>>().join("\n")
        );
    };
    let mut dump = Command::new(chromium);
    common(&mut dump);
    let out = dump
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .expect("run chromium --dump-dom");
    check_console("--dump-dom", &out);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();

    let screenshot = artifacts().join(png);
    let _ = std::fs::remove_file(&screenshot);
    let mut shot = Command::new(chromium);
    common(&mut shot);
    let out = shot
        .arg("--window-size=1280,2200")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("run chromium --screenshot");
    check_console("--screenshot", &out);
    let bytes = std::fs::read(&screenshot).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot of {} bytes looks blank",
        bytes.len()
    );
    Page { dom, screenshot }
}

#[test]
fn html_report_opens_in_chromium_with_its_table_and_charts() {
    let env = Env::known();
    let out = env.path("report.html");
    env.ok(&[
        "report",
        "--format",
        "html",
        "--as-of",
        AS_OF,
        "--out",
        out.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&out).unwrap();
    // Self-contained: nothing is fetched.
    for external in ["src=\"http", "href=\"http", "url(", "@import", "<link"] {
        assert!(!html.contains(external), "external resource: {external}");
    }
    let page = open_in_chromium(&out, "report.png");
    let dom = &page.dom;
    assert!(
        dom.contains("<table id=\"comparison-table\">"),
        "no comparison table"
    );
    assert!(dom.matches("<svg").count() >= 3, "no chart");
    assert!(dom.contains("id=\"methodology\"") && dom.contains("id=\"evidence\""));
    for probe in ["K1", "K2", "K3", "K4", "K5", "Q1", "Q2", "H1"] {
        assert!(
            dom.contains(&format!("id=\"probe-{probe}\"")),
            "no appendix entry for {probe}"
        );
    }
    // Verdicts in words beside their colour; n and CI shown.
    assert!(dom.contains("insufficient evidence"));
    assert!(dom.contains("3/4 = 75% (95% CI 30–95%)"));
    // The reviewer override is explained in the appendix.
    assert!(
        dom.contains("classified bot, reviewed as human by auditor"),
        "override not shown"
    );
    eprintln!("report screenshot: {}", page.screenshot.display());
}

#[test]
fn evidence_text_reads_as_a_timeline() {
    let env = Env::known();
    let text = env.ok(&["evidence", "K2"]);
    for line in [
        "probe K2",
        "target    KuCoin (kucoin) via email",
        "2026-10-10T14:00:00.000Z  sent       +0s",
        "2026-10-10T14:50:00.000Z  human          +50m  matched by thread",
        "reviewed: classified bot, auditor says human",
        "first human reply     +50m",
        "claim 1h on the calendar clock: met",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let text = env.ok(&["evidence", "K4"]);
    assert!(text.contains("send failure: counted apart"), "{text}");
}

/// The demo, shortened: real servers, simulated email, ticket and chat desks, the real
/// `deskprobe run`, reports with data (sends and a human reply) on every channel.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_and_reports_every_channel() {
    use deskprobe_sandbox::desks::demo::{DemoOptions, run};
    let dir = tempfile::tempdir().unwrap();
    let out = run(&DemoOptions {
        deskprobe: PathBuf::from(env!("CARGO_BIN_EXE_deskprobe")),
        out_dir: dir.path().to_owned(),
        run_for: Duration::from_secs(14),
        every_s: 2,
        verbose: false,
    })
    .await
    .expect("demo");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out.json).unwrap()).unwrap();
    check_contract(&r);
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    let every_channel = ["chat", "email", "ticket"];
    let mut human_by_channel = std::collections::BTreeMap::<String, u64>::new();
    for t in targets {
        assert!(
            t["name"]
                .as_str()
                .unwrap()
                .starts_with("Simulated Exchange")
        );
        let channels = t["channels"].as_array().unwrap();
        let mut names: Vec<&str> = channels
            .iter()
            .map(|c| c["channel"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, every_channel, "channels of {}", t["id"]);
        for c in channels {
            let name = c["channel"].as_str().unwrap();
            assert!(
                c["sent"].as_u64().unwrap() >= 3,
                "{name} of {}: {c}",
                t["id"]
            );
            assert!(
                c["acked"].as_u64().unwrap() >= 1,
                "{name} of {}: {c}",
                t["id"]
            );
            *human_by_channel.entry(name.to_owned()).or_default() +=
                c["human_replied"].as_u64().unwrap();
        }
    }
    // Every channel has data: probes sent (above) and at least one human reply.
    assert_eq!(
        human_by_channel
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        every_channel
    );
    for (channel, n) in &human_by_channel {
        assert!(*n > 0, "no human reply on {channel}: {human_by_channel:?}");
    }
    let html = std::fs::read_to_string(&out.html).unwrap();
    assert!(
        html.contains("id=\"simulated-banner\""),
        "the report must say the desks are simulated"
    );
    assert!(!html.contains("Alice Chen"), "agent name not redacted");
    let page = open_in_chromium(&out.html, "demo-report.png");
    assert!(page.dom.contains("comparison-table"));
}
