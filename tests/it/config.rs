//! `deskprobe check` from the command line: the shipped config is valid; a broken one reports
//! every error with file:line:col and exits 3; plaintext to a non-loopback host is refused.

use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn check(config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_deskprobe"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run deskprobe check")
}

#[test]
fn the_shipped_probes_toml_passes_check() {
    let out = check(&repo("probes.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok — 4 target(s)"), "{stdout}");
    // Nothing in the shipped file is verified: sending stays refused until a researcher checks.
    assert!(stdout.contains("not verified yet"), "{stdout}");
}

#[test]
fn every_error_is_reported_with_its_line_and_exit_code_3() {
    let path = repo("tests/fixtures/config/bad.toml");
    let out = check(&path);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("bad.toml:")).collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    let expect = [
        (":26:", "target[0].timezone"),
        (":30:", "target[0].claims.availabilty"),
        (":38:", "schedule[0].cron"),
        (":42:", "schedule[0].personas"),
    ];
    for (line, key) in expect {
        assert!(
            lines.iter().any(|l| l.contains(line) && l.contains(key)),
            "no error at {line} for {key} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("`bob`"), "{stderr}");
}

#[test]
fn plaintext_to_a_remote_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("probes.toml");
    let text = std::fs::read_to_string(repo("tests/fixtures/config/valid.toml"))
        .unwrap()
        .replace("smtps://", "smtp://")
        .replace("imaps://", "imap://");
    assert!(
        text.contains("smtp://"),
        "fixture changed: update this test"
    );
    let text = text.replacen("[[mailbox]]", "[[mailbox]]\ntls = \"none\"", 1);
    std::fs::write(&path, text).unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
}
