//! Scoring end to end through the CLI: import a bundle with known timestamps
//! (tests/fixtures/bundles/known.jsonl), print `report --format json` and check it field by
//! field against values worked out by hand below; import idempotency; export → import round
//! trip; a bad bundle rejected with line numbers and nothing written; `review` overrides.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// The config of the known bundle (also used by `report`).
pub(crate) const CONFIG: &str = r#"
[settings]
vantage = "it"

[[mailbox]]
id = "shopper"
smtp = "smtps://mail.example.org"
imap = "imaps://mail.example.org"
username = "probe"
password-env = "DESKPROBE_TEST_PASSWORD"

[[persona]]
id = "lin"
name = "Lin Wei"
email = "probe@example.org"
mailbox = "shopper"
languages = ["en"]

[[script]]
id = "withdrawal"
[script.text.en]
subject = "Withdrawal still pending"
body = "Ref {{ token }}"

[[calendar]]
id = "sg-office"
timezone = "Asia/Singapore"
hours = { mon-fri = "09:00-18:00" }

[[target]]
id = "kucoin"
name = "KuCoin"
timezone = "Asia/Singapore"
[target.claims]
source = "https://claims.example/kucoin"
captured = "2026-10-01"
availability = "24/7"
first-response = { email = "1h" }
[[target.channel]]
kind = "email"
address = "support@kucoin.example"

[[target]]
id = "okx"
name = "OKX"
timezone = "Asia/Singapore"
[target.claims]
source = "https://claims.example/okx"
captured = "2026-10-01"
availability = "sg-office"
first-response = { email = "2h" }
[[target.channel]]
kind = "email"
address = "support@okx.example"

[[target]]
id = "htx"
name = "HTX"
timezone = "Asia/Singapore"
[target.claims]
source = "https://claims.example/htx"
captured = "2026-10-01"
[[target.channel]]
kind = "email"
address = "support@htx.example"
"#;

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

    fn run_db(&self, db: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_deskprobe"))
            .args(args)
            .arg("--config")
            .arg(self.path("probes.toml"))
            .arg("--db")
            .arg(self.path(db))
            .env("RUST_LOG", "deskprobe=warn")
            .output()
            .expect("run deskprobe")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_db("deskprobe.db", args)
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

    fn report(&self) -> Value {
        serde_json::from_str(&self.ok(&["report", "--format", "json"])).expect("report is JSON")
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bundles")
        .join(name)
}

fn known() -> String {
    fixture("known.jsonl").display().to_string()
}

fn close(v: &Value, expected: f64) {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!((x - expected).abs() < 1e-6, "{x} != {expected}");
}

fn channel<'a>(report: &'a Value, target: &str) -> &'a Value {
    let t = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    assert_eq!(t["channels"].as_array().unwrap().len(), 1);
    &t["channels"][0]
}

/// The bundle (all times UTC; SGT = UTC+8; every window closed long before the test runs):
///
/// kucoin — 24/7, email first response 1 h, q = 0.95
///   K1 sent Mon 05 Oct 10:00 SGT: auto-ack +1 min, human +30 min (en, facts ✓)   → met
///   K2 sent Sat 10 Oct 22:00 SGT: "bot" +50 min (zh, facts ✗), human +2 h (en, ✓);
///      a reviewer overrode the bot event to human                               → met at 50 min
///   K3 sent Tue 06 Oct 03:00 SGT: bounce +1 min, nothing else → censored at 7 d → missed
///   K4 send_failed                                                              → apart
///   K5 sent_unconfirmed (no sent_at; t0 = created_at Thu 08 Oct 10:00 SGT), urgent,
///      human +45 min (en, facts n/a)                                            → met
/// okx — calendar sg-office (Mon–Fri 09–18 SGT), email 2 h
///   Q1 sent Fri 09 Oct 17:30 SGT, human Mon 12 Oct 09:45 SGT: 64 h 15 min real,
///      75 min on the claim clock                                                → met
///   Q2 sent Sat 10 Oct 12:00 SGT, no reply: 45 business hours by the window end  → missed
/// htx — no claims; H1 sent Tue 06 Oct 11:00 SGT, human +3 h.
#[test]
fn report_of_a_known_bundle_field_by_field() {
    let env = Env::new();
    let out = env.ok(&["import", &known()]);
    assert!(
        out.contains("imported 8 probe(s), 9 event(s), 1 override(s)"),
        "{out}"
    );
    let r = env.report();

    assert_eq!(r["schema"], "deskprobe.report/1");
    let generated = r["generated_at"].as_str().unwrap();
    assert!(generated.parse::<jiff::Timestamp>().is_ok(), "{generated}");
    assert!(generated.ends_with('Z'));
    assert_eq!(r["window"]["from"], "2026-10-05T02:00:00.000Z");
    assert_eq!(r["window"]["to"], r["generated_at"]);
    let sha = r["config_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert_eq!(r["targets"].as_array().unwrap().len(), 3);
    assert_eq!(r["targets"][0]["id"], "kucoin");
    assert_eq!(r["targets"][0]["name"], "KuCoin");
    assert_eq!(r["targets"][0]["timezone"], "Asia/Singapore");

    // ---- kucoin ----
    let k = channel(&r, "kucoin");
    assert_eq!(k["channel"], "email");
    assert_eq!(k["sent"], 4); // K1 K2 K3 K5
    assert_eq!(k["send_failed"], 1); // K4
    assert_eq!(k["bounced"], 1); // K3
    assert_eq!(k["acked"], 1); // K1 (K2's "bot" is a human after review)
    assert_eq!(k["human_replied"], 3);
    assert_eq!(k["never_replied"], 1); // K3: a bounce is not a response
    // First human responses: K1 1800 s, K2 3000 s, K5 2700 s; K3 censored at 604800 s.
    // KM: S(1800) = 3/4, S(2700) = 2/4 → median 2700; S never ≤ 0.1 → p90 not reached.
    let fh = &k["first_human_s"];
    close(&fh["km_median"], 2700.0);
    assert!(fh["km_p90"].is_null());
    assert_eq!(fh["not_reached"], json!(["km_p90"]));
    // Responders only (type 7): p50 = 2700, p90 = 2700 + 0.8 × (3000 − 2700) = 2940.
    close(&fh["responders_p50"], 2700.0);
    close(&fh["responders_p90"], 2940.0);
    assert_eq!(fh["responders"], 3);
    close(&k["ack_s"]["responders_p50"], 60.0);
    // SLA: eligible 4 (three answered, K3's deadline passed), met 3.
    let sla = &k["sla"];
    close(&sla["target_s"], 3600.0);
    assert_eq!(sla["clock"], "calendar");
    assert_eq!(sla["eligible"], 4);
    assert_eq!(sla["met"], 3);
    close(&sla["rate"], 0.75);
    // Wilson 3/4 (R binom.wilson): [0.3006418, 0.9544127].
    close(&sla["ci95"][0], 0.300_641_842_6);
    close(&sla["ci95"][1], 0.954_412_739_2);
    assert_eq!(sla["verdict"], "insufficient_evidence");
    // 24/7: business = K1 (Mon 10:00), K5 (Thu 10:00): 2/2; off-hours = K2 (Sat 22:00) met,
    // K3 (Tue 03:00) missed: 1/2 in 2 buckets; Fisher [[2,0],[1,1]] p = 1.
    let a = &k["availability_24_7"];
    assert_eq!(a["business"]["eligible"], 2);
    assert_eq!(a["business"]["met"], 2);
    close(&a["business"]["rate"], 1.0);
    assert_eq!(a["off_hours"]["eligible"], 2);
    assert_eq!(a["off_hours"]["met"], 1);
    close(&a["off_hours"]["rate"], 0.5);
    assert_eq!(a["off_hours"]["buckets"], 2);
    close(&a["fisher_p"], 1.0);
    assert_eq!(a["verdict"], "insufficient_evidence");
    // Languages of first human responses: K1 en ✓, K2 zh ✗ (probe en), K5 en ✓ → 2/3.
    close(&k["language_match_rate"], 2.0 / 3.0);
    // Facts: K1 ✓, K2 ✗, K5 n/a → 1/2.
    close(&k["facts_accuracy"], 0.5);
    // Urgent vs normal.
    assert_eq!(k["by_urgency"]["urgent"]["sent"], 1);
    close(&k["by_urgency"]["urgent"]["responders_p50"], 2700.0);
    assert_eq!(k["by_urgency"]["normal"]["sent"], 3);
    close(&k["by_urgency"]["normal"]["responders_p50"], 2400.0);
    // Hour-of-week grid in SGT: Mon 10, Tue 03, Thu 10, Sat 22.
    let grid = &k["hour_of_week"];
    assert_eq!(grid["sent"][0][10], 1);
    assert_eq!(grid["sent"][1][3], 1);
    assert_eq!(grid["sent"][3][10], 1);
    assert_eq!(grid["sent"][5][22], 1);
    assert_eq!(grid["met"][5][22], 1);
    assert_eq!(grid["met"][1][3], 0);
    let total: u64 = grid["sent"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 4);
    close(&k["measurement_latency_s"]["p50"], 2.0);
    // The override changed these figures (and not the number sent).
    assert_eq!(k["overrides"]["events"], 1);
    let changed: Vec<&str> = k["overrides"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "acked",
        "sla.met",
        "sla.rate",
        "ack_s.responders_p50",
        "first_human_s.responders_p90",
        "language_match_rate",
        "facts_accuracy",
        "availability_24_7.off_hours",
    ] {
        assert!(changed.contains(&f), "{f} not in {changed:?}");
    }
    for f in ["sent", "bounced", "first_human_s.km_median", "sla.verdict"] {
        assert!(!changed.contains(&f), "{f} in {changed:?}");
    }

    // ---- okx: a calendar claim ----
    let o = channel(&r, "okx");
    assert_eq!(o["sent"], 2);
    assert_eq!(o["human_replied"], 1);
    assert_eq!(o["never_replied"], 1);
    // KM in real seconds: 231300 (event), 604800 (censored) → median 231300.
    close(&o["first_human_s"]["km_median"], 231_300.0);
    assert!(o["first_human_s"]["km_p90"].is_null());
    let sla = &o["sla"];
    close(&sla["target_s"], 7200.0);
    assert_eq!(sla["clock"], "sg-office");
    assert_eq!(sla["eligible"], 2);
    assert_eq!(sla["met"], 1);
    close(&sla["rate"], 0.5);
    assert_eq!(sla["verdict"], "insufficient_evidence");
    assert!(o["availability_24_7"].is_null());
    assert!(o["ack_s"]["responders_p50"].is_null());
    assert_eq!(o["overrides"]["events"], 0);

    // ---- htx: no claims, figures only ----
    let h = channel(&r, "htx");
    assert_eq!(h["sent"], 1);
    close(&h["first_human_s"]["km_median"], 10_800.0);
    assert!(h["sla"].is_null());
    assert!(h["availability_24_7"].is_null());
    assert!(h["facts_accuracy"].is_null());
    close(&h["language_match_rate"], 1.0);

    // --target, --since and --out.
    let out_file = env.path("report.json");
    env.ok(&[
        "report",
        "--format",
        "json",
        "--target",
        "okx",
        "--since",
        "2026-10-10",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let only: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    assert_eq!(only["targets"].as_array().unwrap().len(), 1);
    assert_eq!(only["window"]["from"], "2026-10-10T00:00:00.000Z");
    assert_eq!(channel(&only, "okx")["sent"], 1); // Q2 only
}

#[test]
fn import_is_idempotent_and_export_round_trips() {
    let env = Env::new();
    env.ok(&["import", &known()]);
    let before = env.report();
    let again = env.ok(&["import", &known()]);
    assert!(
        again.contains("imported 0 probe(s), 0 event(s), 0 override(s); already present: 8 probe(s), 9 event(s), 1 override(s)"),
        "{again}"
    );
    let after = env.report();
    assert_eq!(before["targets"], after["targets"]);

    // Export, import into a fresh database: the same report.
    let bundle = env.ok(&["export"]);
    assert_eq!(bundle.lines().count(), 18);
    assert!(bundle.lines().any(|l| l.contains(r#""type":"override""#)));
    // The event line keeps the classifier's kind; the override travels separately.
    assert!(
        bundle
            .lines()
            .any(|l| l.contains(r#""id":"K2-bot""#) && l.contains(r#""kind":"bot""#))
    );
    let path = env.path("exported.jsonl");
    std::fs::write(&path, &bundle).unwrap();
    let out = env.run_db("copy.db", &["import", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run_db("copy.db", &["report", "--format", "json"]);
    let copy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(copy["targets"], before["targets"]);

    // --since/--until select by send time.
    let part = env.ok(&[
        "export",
        "--since",
        "2026-10-09",
        "--until",
        "2026-10-10T12:00:00Z",
    ]);
    let ids: Vec<String> = part
        .lines()
        .filter(|l| l.contains(r#""type":"probe""#))
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Q1 (09 Oct 09:30Z), Q2 (10 Oct 04:00Z); K2 is at 10 Oct 14:00Z.
    assert_eq!(ids, vec!["Q1", "Q2"]);
}

#[test]
fn a_bad_bundle_is_rejected_with_line_numbers_and_nothing_is_written() {
    let env = Env::new();
    let good = std::fs::read_to_string(fixture("known.jsonl")).unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replace(r#""kind":"auto_ack""#, r#""kind":"autoack""#);
    lines[5] = lines[5].replace("2026-10-10T14:50:00.000Z", "10/10/2026 14:50");
    lines.push(r#"{"type":"event","id":"X1","probe":"NOPE","kind":"human","occurred_at":"2026-10-05T02:00:00Z","observed_at":"2026-10-05T02:00:00Z","source":"s","match":null,"language":null,"facts_matched":null,"raw_sha256":null}"#.into());
    let path = env.path("bad.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();

    let out = env.run(&["import", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:3: invalid event record: unknown variant `autoack`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.jsonl:6: `occurred_at` is not an RFC 3339 time"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    // Nothing written: the export is empty.
    assert_eq!(env.ok(&["export"]), "");

    // With the shape errors fixed, the dangling reference is still caught (line 19).
    lines[2] = good.lines().nth(2).unwrap().to_owned();
    lines[5] = good.lines().nth(5).unwrap().to_owned();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = env.run(&["import", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.jsonl:19: event `X1` refers to probe `NOPE`"),
        "{stderr}"
    );
    assert_eq!(env.ok(&["export"]), "");
}

#[test]
fn review_overrides_a_classification_and_the_report_says_so() {
    let env = Env::new();
    env.ok(&["import", &known()]);
    // K3's "bounce" was in fact a human reply 1 minute after sending.
    let out = env.ok(&[
        "review",
        "K3-bnc",
        "--as",
        "human",
        "--reason",
        "a human answer misread as a DSN",
        "--reviewer",
        "ana",
    ]);
    assert!(out.contains("event K3-bnc is human (by ana at "), "{out}");
    let k = channel(&env.report(), "kucoin").clone();
    assert_eq!(k["bounced"], 0);
    assert_eq!(k["never_replied"], 0);
    assert_eq!(k["sla"]["met"], 4);
    assert_eq!(k["overrides"]["events"], 2);
    assert!(
        k["overrides"]["changed"]
            .as_array()
            .unwrap()
            .contains(&json!("bounced"))
    );
    // The override travels in the export.
    let bundle = env.ok(&["export"]);
    assert!(bundle.contains(r#""reviewer":"ana""#), "{bundle}");

    let out = env.run(&[
        "review",
        "nope",
        "--as",
        "human",
        "--reason",
        "x",
        "--reviewer",
        "ana",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event with id `nope`"));
    let out = env.run(&["review", "K1-hum", "--as", "person", "--reason", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_report_format_is_available_and_unknown_targets_are_refused() {
    let env = Env::new();
    for format in ["html", "md", "csv", "json"] {
        let out = env.run(&["report", "--format", format]);
        assert_eq!(out.status.code(), Some(0), "{format}");
    }
    let out = env.run(&["report", "--target", "binance"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no target `binance`"));
}
