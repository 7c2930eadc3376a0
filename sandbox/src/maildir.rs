//! Bulk mail for benchmarks: messages written straight into a user's Maildir, far faster than
//! APPENDing them one by one (100,000 messages in a few seconds). Dovecot picks the files up at
//! the next SELECT and assigns their UIDs in file-name order.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where `folder` of the user whose home is `home` lives (`mail_location = maildir:~/Maildir`,
/// Maildir++ layout: INBOX is the root, other folders are `.Name`).
fn folder_dir(home: &Path, folder: &str) -> PathBuf {
    let root = home.join("Maildir");
    if folder.eq_ignore_ascii_case("INBOX") {
        root
    } else {
        root.join(format!(".{folder}"))
    }
}

/// Writes every `(raw, received)` message into `folder` under `home`, owned by the home dir's
/// owner (the mail user), with the file's mtime = `received` (Dovecot's INTERNALDATE for
/// Maildir). Returns how many were written.
pub fn write(
    home: &Path,
    folder: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, SystemTime)>,
) -> usize {
    let meta = std::fs::metadata(home)
        .unwrap_or_else(|e| panic!("home dir {} missing: {e}", home.display()));
    let (uid, gid) = (meta.uid(), meta.gid());
    let chown = |p: &Path| {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()))
    };
    let root = home.join("Maildir");
    let dir = folder_dir(home, folder);
    for d in [
        root.clone(),
        root.join("cur"),
        root.join("new"),
        root.join("tmp"),
        dir.clone(),
        dir.join("cur"),
        dir.join("new"),
        dir.join("tmp"),
    ] {
        if !d.exists() {
            std::fs::create_dir(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            chown(&d);
        }
    }
    if dir != root {
        let marker = dir.join("maildirfolder");
        if !marker.exists() {
            std::fs::write(&marker, b"").expect("write maildirfolder");
            chown(&marker);
        }
    }
    let cur = dir.join("cur");
    let pid = std::process::id();
    let mut n = 0;
    for (raw, received) in messages {
        let secs = received
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Unique, and sorting like the order given: Dovecot assigns UIDs in readdir order
        // after sorting by name, so a zero-padded sequence number keeps the order.
        let name = format!("{secs}.M{n:09}P{pid}.deskprobe-bench,S={}:2,", raw.len());
        let path = cur.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        f.write_all(&raw).expect("write message file");
        f.set_modified(received).expect("set message mtime");
        drop(f);
        chown(&path);
        n += 1;
    }
    n
}
