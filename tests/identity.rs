//! The ledger's file identity and its rows, against the real binary and a
//! real PostgreSQL: a file rewritten in place with the same size and mtime
//! (what `cp -p`, `rsync -t`, `tar -x` and `touch -r` leave) is a new
//! delivery and is loaded; an unchanged file is not read again; rows from
//! before the identity columns still match; every delivery of a rejected
//! file has a ledger row pointing at its own quarantined copy.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{count, load_once, shopstream, test_db, wait_for, Loader, TestDb};

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";

/// Three rows with ids `first..first+3`; the same length for any first < 7.
fn rows(first: u32) -> String {
    let mut s = format!("{HEADER}\n");
    for n in first..first + 3 {
        s.push_str(&format!(
            "00000000-0000-4000-8000-{n:012},u{n},view,p{n},1.50,2026-01-01 00:00:00\n"
        ));
    }
    s
}

fn summary(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).expect("summary JSON")
}

fn ctime_ns(path: &Path) -> i64 {
    let md = std::fs::metadata(path).expect("metadata");
    md.ctime() * 1_000_000_000 + md.ctime_nsec()
}

/// Waits (with a deadline) until the filesystem's clock is past the ctime
/// of `path`: the kernel stamps ctimes from a coarse clock (a few ms per
/// tick), and the rewrite must get another ctime, as it does in real life.
fn tick_past(path: &Path, probe: &Path) {
    let before = ctime_ns(path);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::fs::write(probe, b"tick").expect("probe");
        if ctime_ns(probe) > before {
            break;
        }
        assert!(Instant::now() < deadline, "the ctime clock never moved");
    }
    std::fs::remove_file(probe).expect("remove probe");
}

/// Rewrites `path` in place (same inode) with `body`, then sets its mtime
/// back, as `touch -r` does. Checks that size and mtime are unchanged.
fn rewrite_in_place(path: &Path, body: &str) {
    let before = std::fs::metadata(path).expect("metadata");
    let probe = path
        .parent()
        .and_then(Path::parent)
        .expect("a parent")
        .join("probe");
    tick_past(path, &probe);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open for rewrite");
    f.write_all(body.as_bytes()).expect("rewrite");
    f.set_modified(before.modified().expect("mtime"))
        .expect("restore the mtime");
    drop(f);
    let after = std::fs::metadata(path).expect("metadata");
    assert_eq!(after.len(), before.len(), "same size");
    assert_eq!(after.modified().ok(), before.modified().ok(), "same mtime");
    assert_eq!(after.ino(), before.ino(), "rewritten in place");
    assert_ne!(
        ctime_ns(path),
        before.ctime() * 1_000_000_000 + before.ctime_nsec()
    );
}

async fn ledger_rows(db: &TestDb, path: &Path) -> Vec<(String, i64, i64, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT status, rows_read, rows_loaded, duplicate_of FROM ingested_files
             WHERE path = $1 ORDER BY id",
            &[&path.display().to_string()],
        )
        .await
        .expect("ledger rows")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn input(tmp: &tempfile::TempDir) -> PathBuf {
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    input
}

#[tokio::test]
async fn a_file_rewritten_with_the_same_size_and_mtime_is_loaded_and_an_unchanged_one_is_not_read()
{
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = input(&tmp);
    let file = input.join("a.csv");
    std::fs::write(&file, rows(1)).expect("write");
    let keep = ["--after-load", "keep"];
    let first = summary(&load_once(&db, &input, &keep));
    assert_eq!(first["rows_loaded"], 3, "{first}");

    // New content, same size and mtime: loaded, with a ledger row.
    rewrite_in_place(&file, &rows(4));
    let second = summary(&load_once(&db, &input, &keep));
    assert_eq!(
        (second["rows_read"].as_u64(), second["rows_loaded"].as_u64()),
        (Some(3), Some(3)),
        "{second}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
    let want = vec![
        ("loaded".to_string(), 3, 3, None),
        ("loaded".to_string(), 3, 3, None),
    ];
    assert_eq!(ledger_rows(&db, &file).await, want);

    // Unchanged: not read again, no ledger row added.
    let third = summary(&load_once(&db, &input, &keep));
    assert_eq!(third["rows_read"], 0, "{third}");
    assert_eq!(ledger_rows(&db, &file).await, want);

    // The same bytes written in place again (a new ctime, same inode): the
    // ledger's delivery, not a new one; no row, nothing loaded.
    rewrite_in_place(&file, &rows(4));
    let fourth = summary(&load_once(&db, &input, &keep));
    assert_eq!(fourth["rows_loaded"], 0, "{fourth}");
    assert_eq!(ledger_rows(&db, &file).await, want);

    // The same bytes restored as another file (`cp -p` to a temporary name,
    // renamed over it: a new inode, same size and mtime): a duplicate
    // delivery with a row of its own; nothing new is loaded.
    let mtime = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("mtime");
    let temp = input.join(".a.csv.part");
    std::fs::write(&temp, rows(4)).expect("write the copy");
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .and_then(|f| f.set_modified(mtime))
        .expect("cp -p keeps the mtime");
    std::fs::rename(&temp, &file).expect("rename over");
    let fifth = summary(&load_once(&db, &input, &keep));
    assert_eq!(
        (fifth["rows_read"].as_u64(), fifth["rows_loaded"].as_u64()),
        (Some(3), Some(0)),
        "{fifth}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
    let rows_now = ledger_rows(&db, &file).await;
    assert_eq!(rows_now.len(), 3, "{rows_now:?}");
    assert_eq!(
        rows_now[2],
        (
            "duplicate".to_string(),
            3,
            0,
            Some(file.display().to_string())
        )
    );
    let sixth = summary(&load_once(&db, &input, &keep));
    assert_eq!(sixth["rows_read"], 0, "{sixth}");
}

#[tokio::test]
async fn a_running_loader_loads_a_file_rewritten_with_the_same_size_and_mtime() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = input(&tmp);
    let file = input.join("a.csv");
    std::fs::write(&file, rows(1)).expect("write");
    let mut loader = Loader::spawn(
        shopstream()
            .args([
                "run",
                "--database-url",
                &db.url,
                "--relist-secs",
                "0.3",
                "--input",
            ])
            .arg(&input),
    );
    wait_for(
        Duration::from_secs(60),
        "the first version loaded",
        || async { common::try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(1) },
    )
    .await;
    rewrite_in_place(&file, &rows(4));
    wait_for(
        Duration::from_secs(60),
        "the second version loaded",
        || async {
            common::try_count(&db, "SELECT count(*) FROM ecommerce_events").await == Some(6)
        },
    )
    .await;
    loader.assert_alive();
    let s = loader.stop();
    assert_eq!(s["rows_loaded"], 6, "{s}");
    assert_eq!(ledger_rows(&db, &file).await.len(), 2);
}

#[tokio::test]
async fn rows_from_before_the_identity_columns_still_match_unchanged_files() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = input(&tmp);
    let file = input.join("a.csv");
    std::fs::write(&file, rows(1)).expect("write");
    load_once(&db, &input, &[]);
    // What a row written before schema v6 looks like.
    db.client()
        .await
        .batch_execute("UPDATE ingested_files SET device = NULL, inode = NULL, ctime_ns = NULL")
        .await
        .expect("an old row");
    // A new ctime (chmod), same path, size and mtime: not read again.
    let probe = tmp.path().join("probe");
    tick_past(&file, &probe);
    let before = ctime_ns(&file);
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .expect("chmod");
    assert_ne!(ctime_ns(&file), before, "chmod gives a new ctime");
    let again = summary(&load_once(&db, &input, &[]));
    assert_eq!(again["rows_read"], 0, "{again}");
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 1);
}

#[tokio::test]
async fn every_delivery_of_a_rejected_file_points_at_its_own_quarantined_copy() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = input(&tmp);
    let file = input.join("bad.csv");
    let body = format!("{HEADER}\n");
    let first_mtime = std::time::SystemTime::now() - Duration::from_secs(3600);
    // Delivered three times under the same path with the same content: the
    // second time with another mtime, the third with the first one's.
    let later = first_mtime + Duration::from_secs(60);
    for mtime in [first_mtime, later, first_mtime] {
        std::fs::write(&file, &body).expect("write");
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        load_once(&db, &input, &[]);
        assert!(!file.exists(), "quarantined");
    }

    let c = db.client().await;
    let ledger: Vec<(String, Option<String>, Option<String>)> = c
        .query(
            "SELECT status, disposition, moved_to FROM ingested_files WHERE path = $1 ORDER BY id",
            &[&file.display().to_string()],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(ledger.len(), 3, "a row per delivery: {ledger:?}");
    let mut pointed_at = std::collections::BTreeSet::new();
    for (status, disposition, to) in &ledger {
        assert_eq!(
            (status.as_str(), disposition.as_deref()),
            ("rejected", Some("quarantined"))
        );
        let to = to.as_deref().expect("moved_to");
        assert_eq!(std::fs::read_to_string(to).expect("the copy exists"), body);
        pointed_at.insert(PathBuf::from(to));
    }
    // Every quarantined copy has a ledger row pointing at it: the first
    // two deliveries differ (bad.csv, bad.1.csv); the third one has the
    // first one's bytes and mtime, so its copy is the first one's.
    let quarantine = input.join("_quarantine");
    let copies: std::collections::BTreeSet<PathBuf> = std::fs::read_dir(&quarantine)
        .expect("quarantine")
        .map(|e| e.expect("entry").path())
        .filter(|p| !p.to_string_lossy().ends_with(".reason.txt"))
        .collect();
    assert_eq!(
        copies,
        [quarantine.join("bad.csv"), quarantine.join("bad.1.csv")].into()
    );
    assert_eq!(pointed_at, copies);
}

/// A file rejected under one setting loads once the setting allows it, when
/// delivered again as a new file (a copy, under its old name or another):
/// content that was only ever rejected is never a "duplicate".
#[tokio::test]
async fn a_file_rejected_under_an_earlier_setting_loads_when_delivered_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let body = rows(1)
        .replacen(HEADER, &format!("{HEADER},coupon"), 1)
        .replace("2026-01-01 00:00:00\n", "2026-01-01 00:00:00,SAVE10\n");
    for again in ["bad.csv", "again.csv"] {
        let db = test_db().await;
        let input = tmp.path().join(again).with_extension("");
        std::fs::create_dir_all(&input).expect("mkdir");
        let file = input.join("bad.csv");
        std::fs::write(&file, &body).expect("write");
        load_once(&db, &input, &["--unknown-columns", "reject"]);
        let quarantined = input.join("_quarantine/bad.csv");
        assert!(quarantined.exists(), "rejected and quarantined");
        assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 0);

        // Delivered again, as a new file, under today's setting.
        std::fs::copy(&quarantined, input.join(again)).expect("copy back");
        let s = summary(&load_once(&db, &input, &["--unknown-columns", "keep"]));
        assert_eq!(s["rows_loaded"], 3, "{again}: {s}");
        assert_eq!(s["files_duplicate"], 0, "{again}: {s}");
        assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
        let statuses: Vec<String> = ledger_rows(&db, &input.join(again))
            .await
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(
            statuses.last().map(String::as_str),
            Some("loaded"),
            "{again}"
        );
    }
}
