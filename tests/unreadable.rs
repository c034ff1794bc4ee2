//! A file the loader cannot read is quarantined with its reason while the
//! other files load. The loader runs as an unprivileged account when the
//! tests run as root (as CI does): root reads any file whatever its mode,
//! so a case run as root would prove nothing, and skipping it would leave
//! "cannot be read" untested where it matters.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{shopstream, test_db};

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time\n";

fn rows(first: u32, n: u32) -> String {
    let mut text = V1.to_string();
    for i in first..first + n {
        text.push_str(&format!(
            "00000000-0000-4000-8000-{i:012},u{i},view,p{i},1.00,2026-01-01 00:00:00\n"
        ));
    }
    text
}

fn chown_all(path: &Path, owner: (u32, u32)) {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).expect("chown");
    if path.is_dir() {
        for e in std::fs::read_dir(path).expect("read_dir") {
            chown_all(&e.expect("entry").path(), owner);
        }
    }
}

#[tokio::test]
async fn a_file_that_cannot_be_read_is_quarantined_while_the_others_load() {
    let db = test_db().await;
    let owner = common::unprivileged();
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("good.csv"), rows(1, 3)).expect("write");
    // Valid rows: read by anyone who can, it would load.
    let unreadable = input.join("unreadable.csv");
    std::fs::write(&unreadable, rows(100, 2)).expect("write");
    if let Some(owner) = owner {
        chown_all(&input, owner);
    }
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000))
        .expect("chmod 000");

    let mut cmd = shopstream();
    cmd.args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .current_dir("/");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().expect("spawn shopstream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("summary");
    assert_eq!(summary["files_loaded"], 1, "{summary}");
    assert_eq!(summary["files_quarantined"], 1, "{summary}");

    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT status, reason, disposition, moved_to, rows_read FROM ingested_files
             WHERE path = $1",
            &[&unreadable.display().to_string()],
        )
        .await
        .expect("a ledger row for the unreadable file");
    let reason: String = row.get(1);
    assert_eq!(row.get::<_, String>(0), "rejected", "{reason}");
    assert!(reason.contains("cannot open the file"), "{reason}");
    assert!(reason.contains("ermission denied"), "{reason}");
    assert_eq!(row.get::<_, i64>(4), 0);
    let moved = input.join("_quarantine/unreadable.csv");
    assert_eq!(
        row.get::<_, Option<String>>(2).as_deref(),
        Some("quarantined")
    );
    assert_eq!(
        row.get::<_, Option<String>>(3),
        Some(moved.display().to_string())
    );
    assert!(
        std::fs::symlink_metadata(&unreadable).is_err(),
        "left the input"
    );
    assert!(std::fs::symlink_metadata(&moved).is_ok(), "in quarantine");
    let sidecar = std::fs::read_to_string(input.join("_quarantine/unreadable.csv.reason.txt"))
        .expect("reason file");
    assert!(sidecar.contains("cannot open the file"), "{sidecar}");
    // None of its rows loaded; the readable file's did.
    let events: Vec<String> = c
        .query("SELECT source_file FROM ecommerce_events", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().all(|f| f.ends_with("/good.csv")),
        "{events:?}"
    );
}
