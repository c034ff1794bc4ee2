//! The input changing under the loader, end to end, and its memory on a
//! large file. A file listed under `--max-file-bytes` that has grown past
//! it by the time it is read, and a listed regular file replaced by a
//! symlink that leads out of the input folder before it is opened: neither
//! loads a row. The races are made deterministic by order, not by timing:
//! a large first file in the same batch keeps the loader busy; the change
//! is made once the batch's COPY is seen running (so the batch, with its
//! listed sizes, is fixed), before the second file is opened. A large file
//! from a folder loads in bounded memory (the child's VmHWM).

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{count, shopstream, test_db, TestDb};

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time\n";

/// Writes `rows` valid rows with ids from `first` on (about 70 bytes each).
fn write_rows(out: &mut impl Write, first: u64, rows: u64) {
    for n in first..first + rows {
        writeln!(
            out,
            "00000000-0000-4000-8000-{n:012},u{},view,p{},,2026-01-01 00:00:00",
            n % 1000,
            n % 500
        )
        .expect("write");
    }
}

fn csv_file(path: &Path, first: u64, rows: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    f.write_all(HEADER.as_bytes()).expect("write");
    write_rows(&mut f, first, rows);
    f.flush().expect("flush");
}

/// Sets a file's mtime `secs_ago` seconds back: files are listed and
/// batched oldest first.
fn age(path: &Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

/// Waits until a COPY of the loader runs in `db`: its batch is formed.
async fn wait_for_copy(db: &TestDb, loader: &mut std::process::Child) {
    let c = db.client().await;
    let start = Instant::now();
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND query ILIKE 'COPY%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            loader.try_wait().expect("try_wait").is_none(),
            "the loader ended before its COPY was seen"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no COPY seen");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn run(db: &TestDb, input: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = shopstream();
    cmd.args(["run", "--once", "--database-url", &db.url])
        .args(["--batch-max-files", "2", "--input"])
        .arg(input)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

fn finish(child: std::process::Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("summary: {e}\n{stderr}"))
}

/// (status, reason, disposition) of the ledger row of `path`.
async fn ledger(db: &TestDb, path: &Path) -> (String, String, Option<String>) {
    let r = db
        .client()
        .await
        .query_one(
            "SELECT status, coalesce(reason, ''), disposition FROM ingested_files WHERE path = $1",
            &[&path.display().to_string()],
        )
        .await
        .unwrap_or_else(|e| panic!("a ledger row for {}: {e}", path.display()));
    (r.get(0), r.get(1), r.get(2))
}

#[tokio::test]
async fn a_file_that_grows_past_max_file_bytes_after_listing_loads_nothing() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // 32 MiB limit: the first file (about 26 MB) is under it; the second
    // is listed with 3 rows and then grows to about 35 MB.
    let first = input.join("a-first.csv");
    csv_file(&first, 1, 380_000);
    let grows = input.join("b-grows.csv");
    csv_file(&grows, 10_000_000, 3);
    age(&first, 20);
    age(&grows, 10);
    let limit = 32u64 << 20;
    assert!(std::fs::metadata(&first).expect("size").len() < limit);

    let mut child = run(&db, &input, &["--max-file-bytes", "32MiB"])
        .spawn()
        .expect("spawn");
    wait_for_copy(&db, &mut child).await;
    let mut f = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&grows)
            .expect("open for append"),
    );
    write_rows(&mut f, 10_000_003, 500_000);
    f.flush().expect("flush");
    drop(f);
    assert!(std::fs::metadata(&grows).expect("size").len() > limit);
    let summary = finish(child);

    // The version that was read is rejected for growing past the limit and
    // left in place (its size changed since the listing); the next listing
    // sees the new version, over the limit, and quarantines it unread.
    let rows: Vec<(String, String, Option<String>)> = db
        .client()
        .await
        .query(
            "SELECT status, coalesce(reason, ''), disposition FROM ingested_files
              WHERE path = $1 ORDER BY id",
            &[&grows.display().to_string()],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?} {summary}");
    let (status, reason, disposition) = &rows[0];
    assert_eq!(status, "rejected", "{reason}");
    assert!(
        reason.contains("grew past --max-file-bytes 32 MiB while being read"),
        "{reason}"
    );
    assert_eq!(disposition.as_deref(), Some("changed"));
    let (status, reason, disposition) = &rows[1];
    assert_eq!(status, "rejected", "{reason}");
    assert!(
        reason.contains("over --max-file-bytes 32 MiB: not read"),
        "{reason}"
    );
    assert_eq!(disposition.as_deref(), Some("quarantined"));
    assert!(input.join("_quarantine/b-grows.csv").exists());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE source_file LIKE '%b-grows.csv'"
        )
        .await,
        0,
        "no row of the grown file loaded"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM dead_letter_events WHERE source_file LIKE '%b-grows.csv'"
        )
        .await,
        0
    );
    assert_eq!(ledger(&db, &first).await.0, "loaded");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        380_000
    );
}

#[tokio::test]
async fn a_file_swapped_for_a_symlink_out_of_the_folder_after_listing_is_not_followed() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let first = input.join("a-first.csv");
    csv_file(&first, 1, 300_000);
    let swapped = input.join("b-swapped.csv");
    csv_file(&swapped, 10_000_000, 3);
    age(&first, 20);
    age(&swapped, 10);
    // Outside the input: valid rows that must never load.
    let outside = tmp.path().join("outside.csv");
    csv_file(&outside, 20_000_000, 3);
    // Same size and mtime as the listed file, so that only the check of
    // what was really opened can tell them apart.
    let listed = std::fs::metadata(&swapped).expect("listed");
    assert_eq!(
        std::fs::metadata(&outside).expect("outside").len(),
        listed.len()
    );
    std::fs::File::options()
        .write(true)
        .open(&outside)
        .and_then(|f| f.set_modified(listed.modified()?))
        .expect("set mtime");
    let outside_bytes = std::fs::read(&outside).expect("read");

    let mut child = run(&db, &input, &[]).spawn().expect("spawn");
    wait_for_copy(&db, &mut child).await;
    // Atomically: the listed regular file becomes a symlink to outside.
    let link = input.join(".swap");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    std::fs::rename(&link, &swapped).expect("swap");
    let summary = finish(child);

    let (status, reason, disposition) = ledger(&db, &swapped).await;
    assert_eq!(status, "rejected", "{reason}");
    assert!(
        reason.contains("leads outside the input folder"),
        "{reason}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events
              WHERE event_id >= '00000000-0000-4000-8000-000010000000'"
        )
        .await,
        0,
        "neither the listed nor the outside rows loaded: {summary}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        300_000
    );
    // Not followed when disposed of either: the target is untouched.
    assert_eq!(std::fs::read(&outside).expect("outside"), outside_bytes);
    // Not moved either: what sits at that path now is not the file that was
    // listed (another inode), so its fate is "changed" and the symlink stays
    // where it is (later listings ignore a link leading out of the folder).
    assert_eq!(disposition.as_deref(), Some("changed"));
    assert_eq!(std::fs::read_link(&swapped).expect("still a link"), outside);
    assert!(std::fs::symlink_metadata(input.join("_quarantine/b-swapped.csv")).is_err());
    assert_eq!(
        count(&db, "SELECT count(*) FROM ingested_files").await,
        2,
        "one ledger row each, none for the symlink's target"
    );
}

#[tokio::test]
async fn a_large_file_from_a_folder_loads_in_bounded_memory() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    csv_file(&input.join("a-small.csv"), 1, 100);
    let small = common::peak_rss(
        shopstream()
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input),
        &tmp.path().join("small.log"),
    );
    // About 100 MB; its first 100 rows repeat the small file's.
    let big = input.join("b-big.csv");
    csv_file(&big, 1, 1_400_000);
    let size = std::fs::metadata(&big).expect("size").len();
    let peak = common::peak_rss(
        shopstream()
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input),
        &tmp.path().join("big.log"),
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        1_400_000
    );
    eprintln!("peak RSS: {small} bytes for 100 rows, {peak} for a {size}-byte file");
    // At most two runs of rows are held (one being loaded, one being
    // collected), whatever the file size; held whole, this file's encoded
    // rows alone would take more than its size.
    let runs = 2 * (shopstream::pipeline::read::RUN_BYTES as u64 + (1 << 20));
    assert!(
        peak < small + runs + (16 << 20) && peak < small + size * 3 / 5,
        "reading a {size}-byte file took {peak} bytes at peak, {small} for a tiny one: \
         the file must be streamed, not held"
    );
}
