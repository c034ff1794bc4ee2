//! The direct path: valid rows whose event id the loader has not seen
//! recently are COPYed straight into `ecommerce_events`, and whatever the
//! server or the ledger says against that sends the batch through staging,
//! so the result is always what loading everything through staging gives.

mod common;

use std::path::Path;

use common::{count, fingerprint, fingerprint_with, generate, load_once, test_db, Copies};

fn summary(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim()).expect("summary JSON")
}

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn row(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012},u{n},view,p{n},1.50,2026-01-01 00:00:00")
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let text = std::iter::once(HEADER.to_string())
        .chain(lines.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join(name), text + "\n").expect("write");
}

/// Where each event came from, with paths relative to `root`.
async fn origins(db: &common::TestDb, root: &Path) -> String {
    let root = format!("{}/", root.display());
    db.client()
        .await
        .query_one(
            "SELECT md5(string_agg(concat_ws('|', event_id, replace(source_file, $1, ''), source_line),
                        ',' ORDER BY event_id))
             FROM ecommerce_events",
            &[&root],
        )
        .await
        .expect("origins")
        .get(0)
}

#[tokio::test]
async fn most_rows_take_the_direct_path_and_the_result_equals_loading_all_through_staging() {
    let tmp = tempfile::tempdir().expect("tmp");
    let extra = ["--invalid-share", "0.1", "--duplicate-share", "0.1"];
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    // One dataset (its times follow the clock), copied for each load.
    generate(&a, 6, 500, 11, &extra);
    for dir in [&b, &c] {
        std::fs::create_dir_all(dir).expect("mkdir");
        for f in std::fs::read_dir(&a).expect("read_dir") {
            let f = f.expect("entry");
            let to = dir.join(f.file_name());
            std::fs::copy(f.path(), &to).expect("copy");
            // Files load in arrival (modification time) order: keep it.
            let mtime = f.metadata().and_then(|m| m.modified()).expect("mtime");
            std::fs::File::options()
                .write(true)
                .open(&to)
                .and_then(|t| t.set_modified(mtime))
                .expect("set mtime");
        }
    }
    let (direct, staged, parallel) = (test_db().await, test_db().await, test_db().await);

    let one = ["--connections", "1"];
    let d = summary(&load_once(&direct, &a, &one));
    let s = summary(&load_once(
        &staged,
        &b,
        &["--connections", "1", "--recent-ids", "0"],
    ));
    let loaded = d["rows_loaded"].as_u64().expect("rows_loaded");
    assert!(d["rows_duplicate"].as_u64() > Some(100), "{d}");
    assert!(d["rows_rejected"].as_u64() > Some(100), "{d}");
    // Every loaded row went direct: a duplicate's first copy is the one
    // loaded, later copies go through staging and are skipped there.
    assert_eq!(d["rows_direct"].as_u64(), Some(loaded), "{d}");
    assert_eq!(d["batches_fell_back"], 0, "{d}");
    assert_eq!(s["rows_direct"], 0, "{s}");
    for k in [
        "rows_read",
        "rows_loaded",
        "rows_duplicate",
        "rows_rejected",
    ] {
        assert_eq!(d[k], s[k], "{k}");
    }
    let (dc, sc) = (direct.client().await, staged.client().await);
    assert_eq!(fingerprint(&dc, &a).await, fingerprint(&sc, &b).await);
    // On one connection, the same copy of each event wins either way.
    assert_eq!(origins(&direct, &a).await, origins(&staged, &b).await);

    // Several connections, a batch per file: batches load at the same time
    // and share event ids; the totals and the table are the same.
    let p = summary(&load_once(
        &parallel,
        &c,
        &["--connections", "3", "--batch-max-files", "1"],
    ));
    for k in [
        "rows_read",
        "rows_loaded",
        "rows_duplicate",
        "rows_rejected",
    ] {
        assert_eq!(p[k], s[k], "{k}");
    }
    let pc = parallel.client().await;
    assert_eq!(
        fingerprint_with(&pc, &c, Copies::Any).await,
        fingerprint_with(&sc, &b, Copies::Any).await
    );
}

#[tokio::test]
async fn an_id_loaded_before_the_process_started_sends_its_batch_through_staging() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, "a.csv", &[row(1), row(2), row(3)]);
    let first = summary(&load_once(&db, &input, &[]));
    assert_eq!(first["rows_direct"], 3, "{first}");

    // A new process remembers nothing: row 2 goes direct, and the server
    // refuses it (unique violation). The batch is loaded again through
    // staging, where row 2 is counted as a duplicate.
    write(&input, "b.csv", &[row(2), row(4), row(5)]);
    let second = summary(&load_once(&db, &input, &[]));
    assert_eq!(second["batches_fell_back"], 1, "{second}");
    assert_eq!(second["rows_loaded"], 2, "{second}");
    assert_eq!(second["rows_duplicate"], 1, "{second}");
    assert_eq!(second["rows_direct"], 0, "{second}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 5);
    assert_eq!(
        count(
            &db,
            "SELECT rows_loaded * 10 + rows_duplicate FROM ingested_files WHERE path LIKE '%b.csv'"
        )
        .await,
        21
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE event_id = '00000000-0000-4000-8000-000000000002'
               AND source_file LIKE '%a.csv'"
        )
        .await,
        1,
        "the first copy stays"
    );

    // New ids again take the direct path (each process starts trying it).
    write(&input, "c.csv", &[row(6), row(7)]);
    let third = summary(&load_once(&db, &input, &[]));
    assert_eq!(third["rows_direct"], 2, "{third}");
    assert_eq!(third["batches_fell_back"], 0, "{third}");
}

#[tokio::test]
async fn a_file_rejected_after_some_of_its_rows_went_direct_leaves_none_of_them() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    // Three good rows, then a record over --max-line-bytes: the whole file
    // is rejected, but only once its first rows were on their way.
    let long = format!("{},{}", row(13), "x".repeat(3000));
    write(&input, "a.csv", &[row(10), row(11), row(12), long]);
    write(&input, "b.csv", &[row(20), row(21)]);
    let s = summary(&load_once(&db, &input, &["--max-line-bytes", "2K"]));
    assert_eq!(s["files_rejected"], 1, "{s}");
    assert_eq!(s["batches_fell_back"], 1, "{s}");
    assert_eq!(s["rows_loaded"], 2, "{s}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE source_file LIKE '%a.csv'"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE path LIKE '%a.csv' AND status = 'rejected'"
        )
        .await,
        1
    );
}

/// Waits until every backend of the loader has left `db` (a backend
/// reports its statistics as it exits, before it leaves
/// `pg_stat_activity`) and `ready` holds on the database's statistics row
/// (`xact_commit`, `xact_rollback`, `deadlocks`); returns that row.
async fn flushed_stats(db: &common::TestDb, ready: impl Fn(&[i64; 3]) -> bool) -> [i64; 3] {
    let c = db.client().await;
    let start = std::time::Instant::now();
    loop {
        c.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .expect("clear the statistics snapshot");
        let others: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        let row = c
            .query_one(
                "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database
                 WHERE datname = current_database()",
                &[],
            )
            .await
            .expect("pg_stat_database");
        let stats = [row.get(0), row.get(1), row.get(2)];
        if others == 0 && ready(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the loader's statistics never arrived: {others} backend(s) left, {stats:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn batches_sharing_ids_both_ways_never_leave_a_deadlock_to_the_server() {
    // Two files, each loading as its own batch at the same time, with the
    // same ids in opposite orders: each batch COPYs its first half direct,
    // then finds the other's first half again and must wait for it. Each
    // try proves whether that happened (a batch fell back because the
    // waits formed a cycle, or a lock wait ran out); the timing is the
    // machine's, so the scenario is tried again (a few times at most)
    // until it was seen.
    let half = 20_000;
    for attempt in 1..=5 {
        let tmp = tempfile::tempdir().expect("tmp");
        let input = tmp.path().join("in");
        let (xs, ys): (Vec<String>, Vec<String>) = (
            (1..=half).map(row).collect(),
            (half + 1..=2 * half).map(row).collect(),
        );
        write(&input, "a.csv", &[xs.clone(), ys.clone()].concat());
        write(&input, "b.csv", &[ys, xs].concat());
        let db = test_db().await;
        let out = common::shopstream()
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--connections", "2", "--batch-max-files", "1"])
            .output()
            .expect("run");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        let s = summary(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(s["batches"], 2, "{s}");
        assert_eq!(s["rows_loaded"], 2 * half, "{s}");
        assert_eq!(s["rows_duplicate"], 2 * half, "{s}");
        let contended = s["batches_fell_back"].as_u64() >= Some(1);
        // A fallback rolled a transaction back: its count arrives with
        // the rest of the loader's statistics.
        let [commits, rollbacks, deadlocks] =
            flushed_stats(&db, |st| st[0] >= 2 && (!contended || st[1] >= 1)).await;
        // Any wait cycle was ended by the loader (a cycle seen on its side,
        // or its lock timeout, then a fallback), never by the server's
        // deadlock detector.
        assert_eq!(
            deadlocks, 0,
            "{s} commits {commits} rollbacks {rollbacks}\n{log}"
        );
        if contended {
            assert!(
                log.contains("waits for it") || log.contains("SQLSTATE 55P03"),
                "the batches waited for each other:\n{log}"
            );
            return;
        }
        eprintln!("try {attempt}: the batches did not overlap ({s}); again");
    }
    panic!("the two batches never loaded at the same time in five tries");
}

#[tokio::test]
async fn batches_under_the_minimum_go_through_staging() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, "a.csv", &[row(1), row(2)]);
    let s = summary(&load_once(&db, &input, &["--direct-min-batch-bytes", "1K"]));
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_direct"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    write(&input, "b.csv", &[row(3), row(4)]);
    let s = summary(&load_once(
        &db,
        &input,
        &["--direct-min-batch-bytes", "100"],
    ));
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_direct"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
}
