//! End-to-end loading against a real PostgreSQL server and the real binary:
//! exact counts against the generator's report, idempotence, dead letters,
//! header handling, continuous mode and shutdown.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{count, counts_by, generate, load_once, shopstream, test_db, TestDb};

/// Everything that must not change when nothing new is loaded.
async fn snapshot(db: &TestDb) -> (i64, i64, i64, String) {
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM ecommerce_events),
                    (SELECT count(*) FROM dead_letter_events),
                    (SELECT count(*) FROM ingested_files),
                    (SELECT coalesce(md5(string_agg(event_id::text, ',' ORDER BY event_id)), '')
                       FROM ecommerce_events)",
            &[],
        )
        .await
        .expect("snapshot");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn once_load_matches_the_generator_report_exactly() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    let rep = generate(
        &dir,
        6,
        500,
        7,
        &["--invalid-share", "0.06", "--duplicate-share", "0.04"],
    );
    load_once(&db, &dir, &[]);

    let loaded = rep["loaded"].as_u64().expect("loaded") as i64;
    let dups = rep["duplicates"].as_u64().expect("duplicates") as i64;
    let rows = rep["rows"].as_u64().expect("rows") as i64;
    assert!(
        dups > 0,
        "the dataset must contain duplicates to test anything"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        loaded
    );
    assert_eq!(
        count(&db, "SELECT sum(rows_duplicate)::int8 FROM ingested_files").await,
        dups
    );
    assert_eq!(
        count(&db, "SELECT sum(rows_read)::int8 FROM ingested_files").await,
        rows
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE status = 'loaded'"
        )
        .await,
        6
    );
    // Dead letters per rule code equal the generator's injected anomalies.
    let got = counts_by(
        &db,
        "SELECT code, count(*) FROM dead_letter_events, unnest(error_codes) code GROUP BY code",
    )
    .await;
    let want: BTreeMap<String, u64> = rep["rejected"]
        .as_object()
        .expect("rejected map")
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
        .collect();
    assert!(
        want.len() >= 5,
        "several anomaly kinds expected, got {want:?}"
    );
    assert_eq!(got, want);
    // Every row and dead letter carries its file's batch (the reader
    // encodes them before the batch id is known; the transaction stamps it).
    for table in ["ecommerce_events", "dead_letter_events"] {
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT count(*) FROM {table} r WHERE NOT EXISTS (
                       SELECT 1 FROM ingested_files f
                       WHERE f.path = r.source_file AND f.batch_id = r.batch_id AND f.batch_id > 0)"
                )
            )
            .await,
            0,
            "{table}: rows whose batch is not their file's"
        );
    }
    // Per file and per batch, rows read = loaded + duplicate + rejected.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files
             WHERE rows_read <> rows_loaded + rows_duplicate + rows_rejected"
        )
        .await,
        0
    );
    assert_eq!(
        count(&db, "SELECT sum(rows_read)::int8 FROM data_quality_metrics").await,
        rows
    );
    assert_eq!(
        count(
            &db,
            "SELECT sum(rows_rejected)::int8 FROM data_quality_metrics"
        )
        .await,
        want.values().sum::<u64>() as i64
    );
}

#[tokio::test]
async fn version_layouts_load_exactly_as_reported_per_file_and_type() {
    for layout in ["v1", "v2", "v3"] {
        let db = test_db().await;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("in");
        let rep = generate(
            &dir,
            4,
            400,
            21,
            &[
                "--layout",
                layout,
                "--invalid-share",
                "0.06",
                "--duplicate-share",
                "0.05",
            ],
        );
        assert_eq!(rep["layout"], layout);
        let header = std::fs::read_to_string(dir.join(rep["files"][0].as_str().expect("file")))
            .expect("read");
        let columns = header.lines().next().expect("header").split(',').count();
        assert_eq!(
            columns,
            match layout {
                "v1" => 6,
                "v2" => 12,
                _ => 18,
            }
        );
        // Batches commit in file order, so the first copy of a repeated
        // event is credited to the earlier file, as the generator's
        // per-file report counts it.
        load_once(&db, &dir, &[]);

        let by_type = counts_by(
            &db,
            "SELECT event_type, count(*) FROM ecommerce_events GROUP BY 1",
        )
        .await;
        let want: BTreeMap<String, u64> = rep["by_type"]
            .as_object()
            .expect("by_type")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
            .collect();
        assert_eq!(by_type, want, "{layout}");

        let c = db.client().await;
        let files: BTreeMap<String, (u64, u64, u64)> = c
            .query(
                "SELECT path, rows_loaded, rows_duplicate, rows_rejected FROM ingested_files",
                &[],
            )
            .await
            .expect("files")
            .iter()
            .map(|r| {
                let path: String = r.get(0);
                let name = Path::new(&path)
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                let n = |i: usize| r.get::<_, i64>(i) as u64;
                (name, (n(1), n(2), n(3)))
            })
            .collect();
        let per_file: BTreeMap<String, (u64, u64, u64)> = rep["per_file"]
            .as_array()
            .expect("per_file")
            .iter()
            .map(|f| {
                let rejected: u64 = f["rejected"]
                    .as_object()
                    .expect("rejected")
                    .values()
                    .map(|v| v.as_u64().expect("n"))
                    .sum();
                (
                    f["file"].as_str().expect("file").to_string(),
                    (
                        f["loaded"].as_u64().expect("loaded"),
                        f["duplicates"].as_u64().expect("duplicates"),
                        rejected,
                    ),
                )
            })
            .collect();
        assert_eq!(files, per_file, "{layout}");
        assert!(per_file.values().skip(1).any(|(_, d, _)| *d > 0));
    }
}

#[tokio::test]
async fn running_again_touching_a_file_or_copying_it_under_a_new_name_adds_nothing() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    generate(&dir, 3, 200, 11, &[]);
    load_once(&db, &dir, &[]);
    let before = snapshot(&db).await;
    assert!(before.0 > 0);

    load_once(&db, &dir, &[]);
    assert_eq!(
        snapshot(&db).await,
        before,
        "a second run over the same folder"
    );

    // Touching a file (same path, same content, new mtime) loads nothing
    // again: the new version is read (the ledger knows path, size and
    // mtime), its content is found loaded, and this delivery gets a ledger
    // row of its own saying it duplicates the first (every delivery of a
    // file is findable in the ledger).
    let first = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .expect("a csv");
    let old_mtime = std::fs::metadata(&first)
        .and_then(|m| m.modified())
        .expect("mtime");
    let new_mtime = old_mtime + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&first)
        .and_then(|f| f.set_modified(new_mtime))
        .expect("touch");
    let c = db.client().await;
    let ledgered: i64 = c
        .query_one(
            "SELECT count(*) FROM ingested_files WHERE path = $1
               AND modified_at = timestamptz 'epoch' + $2::int8 * interval '1 microsecond'",
            &[
                &first.display().to_string(),
                &(new_mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("after 1970")
                    .as_micros() as i64),
            ],
        )
        .await
        .expect("ledger lookup")
        .get(0);
    assert_eq!(ledgered, 0, "the touched version is new to the ledger");
    let touched: serde_json::Value =
        serde_json::from_str(load_once(&db, &dir, &[]).trim()).expect("summary");
    let now = snapshot(&db).await;
    assert_eq!(
        (now.0, now.1, now.2, &now.3),
        (before.0, before.1, before.2 + 1, &before.3),
        "a touched file adds one ledger row and nothing else: {touched}"
    );
    assert_eq!(touched["files_loaded"], 0, "{touched}");
    assert_eq!(touched["rows_loaded"], 0, "{touched}");
    assert_eq!(touched["files_duplicate"], 1, "{touched}");
    assert_eq!(touched["rows_duplicate"], touched["rows_read"], "{touched}");
    let row = c
        .query_one(
            "SELECT status, duplicate_of FROM ingested_files WHERE path = $1 ORDER BY id DESC LIMIT 1",
            &[&first.display().to_string()],
        )
        .await
        .expect("the touched delivery's row");
    assert_eq!(row.get::<_, String>(0), "duplicate");
    assert_eq!(row.get::<_, String>(1), first.display().to_string());
    let again: serde_json::Value =
        serde_json::from_str(load_once(&db, &dir, &[]).trim()).expect("summary");
    assert_eq!(
        snapshot(&db).await,
        now,
        "the touched version is then known"
    );
    assert_eq!(again["rows_read"], 0, "{again}");

    // A copy under a new name adds no rows; its ledger row says which
    // file it duplicates.
    let copy = dir.join("copy_of_first.csv");
    std::fs::copy(&first, &copy).expect("copy");
    load_once(&db, &dir, &[]);
    let after = snapshot(&db).await;
    assert_eq!(
        (after.0, after.1, &after.3),
        (before.0, before.1, &before.3)
    );
    let row = c
        .query_one(
            "SELECT status, duplicate_of, rows_read, rows_duplicate, rows_loaded
             FROM ingested_files WHERE path = $1",
            &[&copy.display().to_string()],
        )
        .await
        .expect("ledger row for the copy");
    assert_eq!(row.get::<_, String>(0), "duplicate");
    assert_eq!(row.get::<_, String>(1), first.display().to_string());
    assert_eq!(row.get::<_, i64>(2), row.get::<_, i64>(3));
    assert_eq!(row.get::<_, i64>(4), 0);
}

const HEADER: &str = "event_id,user_id,event_type,product_id,price,quantity,event_time";

#[tokio::test]
async fn dead_letters_keep_the_raw_line_its_number_and_every_failed_rule() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let csv = format!(
        "{HEADER}\r\n\
         6f1c2e0b-5d3a-4f8e-9a1b-2c3d4e5f6a7b,U1, VIEW ,P1,,,2026-01-01 10:00:00\r\n\
         not-a-uuid,,purchase,P2,-3,x,2099-01-01T00:00:00Z\r\n\
         \"7f1c2e0b-5d3a-4f8e-9a1b-2c3d4e5f6a7b\",\"Doe, Jane\",purchase,P3,19.99,2,2026-01-01T10:00:00+02:00\r\n\
         8f1c2e0b-5d3a-4f8e-9a1b-2c3d4e5f6a7b,U1,view\r\n"
    );
    std::fs::write(dir.join("hand.csv"), csv).expect("write");
    load_once(&db, dir, &[]);

    let c = db.client().await;
    let dl = c
        .query(
            "SELECT source_line, raw_line, event_id, error_codes, errors::text
             FROM dead_letter_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("dead letters");
    assert_eq!(dl.len(), 2);
    assert_eq!(dl[0].get::<_, i64>(0), 3);
    assert_eq!(
        dl[0].get::<_, String>(1),
        "not-a-uuid,,purchase,P2,-3,x,2099-01-01T00:00:00Z"
    );
    assert_eq!(
        dl[0].get::<_, Option<String>>(2).as_deref(),
        Some("not-a-uuid")
    );
    assert_eq!(
        dl[0].get::<_, Vec<String>>(3),
        [
            "invalid_event_id",
            "missing_user",
            "negative_price",
            "invalid_quantity",
            "future_event_time"
        ]
    );
    let errors: serde_json::Value = serde_json::from_str(&dl[0].get::<_, String>(4)).expect("json");
    assert_eq!(errors[3]["column"], "quantity");
    assert_eq!(errors[3]["value"], "x");
    assert!(errors[3]["message"]
        .as_str()
        .expect("msg")
        .contains("whole number"));
    assert_eq!(dl[1].get::<_, i64>(0), 5);
    assert_eq!(dl[1].get::<_, Vec<String>>(3), ["malformed_row"]);

    let ev = c
        .query(
            "SELECT event_type, user_id, quantity, total_amount::text, event_time = '2026-01-01T08:00:00Z', source_line
             FROM ecommerce_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("events");
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].get::<_, String>(0), "view", "trimmed and lower-cased");
    assert_eq!(ev[0].get::<_, i32>(2), 0);
    assert_eq!(ev[1].get::<_, String>(1), "Doe, Jane", "quoted comma");
    assert_eq!(ev[1].get::<_, String>(3), "39.98");
    assert!(ev[1].get::<_, bool>(4), "the +02:00 offset is applied");
    assert_eq!(ev[1].get::<_, i64>(5), 4);
}

#[tokio::test]
async fn header_driven_parsing_and_rejected_files_do_not_stop_the_run() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // Layout v1 in an unusual order, upper case, no final newline.
    std::fs::write(
        dir.join("minimal.csv"),
        "EVENT_TIME,Price,Product_ID,user_id,event_type,event_id\n2026-01-01 00:00:00,,P9,,search,9f1c2e0b-5d3a-4f8e-9a1b-2c3d4e5f6a7b",
    )
    .expect("write");
    std::fs::write(dir.join("wrong.csv"), "id,when,what\n1,2,3\n").expect("write");
    std::fs::write(dir.join("empty.csv"), "").expect("write");
    load_once(&db, dir, &[]);

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);
    let c = db.client().await;
    let rejected = c
        .query(
            "SELECT path, reason FROM ingested_files WHERE status = 'rejected' ORDER BY path",
            &[],
        )
        .await
        .expect("rejected");
    assert_eq!(rejected.len(), 2);
    assert!(rejected[0].get::<_, String>(0).ends_with("empty.csv"));
    assert!(rejected[0].get::<_, String>(1).contains("empty"));
    let reason: String = rejected[1].get(1);
    assert!(
        reason.contains("matches no known layout")
            && reason.contains("does not know: id, when, what"),
        "{reason}"
    );
    // And a second run does not record the rejected files again.
    load_once(&db, dir, &[]);
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 3);
}

fn write_atomically(dir: &Path, name: &str, body: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).expect("write temp");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

fn row(i: u32) -> String {
    format!(
        "{:08x}-0000-4000-8000-000000000000,U{i},view,P{i},1.00,0,2026-01-01 00:00:00\n",
        i
    )
}

async fn wait_for(db: &TestDb, sql: &str, want: i64, limit: Duration) {
    let start = Instant::now();
    let c = db.client().await;
    loop {
        // The table appears once the child has migrated the database.
        let got = match c.query_one(sql, &[]).await {
            Ok(r) => r.get::<_, i64>(0),
            Err(_) => -1,
        };
        if got == want {
            return;
        }
        assert!(start.elapsed() < limit, "{sql}: still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `cond` holds, failing after `limit` with `what`.
async fn wait_until(limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn continuous_run_loads_renamed_files_leaves_temp_names_untouched_and_stops_on_sigterm() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let mut child = shopstream()
        .args([
            "run",
            "--relist-secs",
            "30",
            "--after-load",
            "archive",
            "--database-url",
            &db.url,
            "--input",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");

    // A file still being written under a temp name is not loaded...
    let part = dir.join("later.csv.part");
    let part_body = format!("{HEADER}\n{}", row(1));
    std::fs::write(&part, &part_body).expect("write");
    let part_mtime = std::fs::metadata(&part)
        .and_then(|m| m.modified())
        .expect("mtime");
    write_atomically(&dir, "a.csv", &format!("{HEADER}\n{}{}", row(2), row(3)));
    // Relisting is every 30 s, so only the OS file event can make this fast.
    wait_for(
        &db,
        "SELECT count(*) FROM ecommerce_events",
        2,
        Duration::from_secs(20),
    )
    .await;
    // ...nor moved: a.csv, listed with it, is archived; the temp file
    // stays where it was, untouched, and the ledger never saw it.
    wait_until(Duration::from_secs(20), "a.csv archived", || {
        dir.join("_archive/a.csv").is_file() && !dir.join("a.csv").exists()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&part).expect("the .part file is still there"),
        part_body
    );
    assert_eq!(
        std::fs::metadata(&part).and_then(|m| m.modified()).ok(),
        Some(part_mtime)
    );
    assert!(!dir.join("_archive/later.csv.part").exists());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE path LIKE '%.part'"
        )
        .await,
        0
    );
    // ...until it is renamed in.
    std::fs::rename(&part, dir.join("later.csv")).expect("rename");
    wait_for(
        &db,
        "SELECT count(*) FROM ecommerce_events",
        3,
        Duration::from_secs(20),
    )
    .await;
    wait_until(Duration::from_secs(20), "later.csv archived", || {
        dir.join("_archive/later.csv").is_file()
    })
    .await;

    common::signal(&child, "-TERM");
    let exit = common::wait_exit(&mut child, Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn undecodable_bytes_become_invalid_encoding_dead_letters() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let mut body = format!("{HEADER}\n{}", row(1)).into_bytes();
    // A Latin-1 "é" in user_id, then a NUL byte in product_id.
    body.extend_from_slice(
        b"a1000000-0000-4000-8000-000000000000,caf\xe9,view,P1,1.00,0,2026-01-01 00:00:00\n",
    );
    body.extend_from_slice(
        b"a2000000-0000-4000-8000-000000000000,U2,view,P\x001,1.00,0,2026-01-01 00:00:00\n",
    );
    std::fs::write(tmp.path().join("bytes.csv"), body).expect("write");
    load_once(&db, tmp.path(), &[]);

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);
    let c = db.client().await;
    let dl = c
        .query(
            "SELECT source_line, error_codes, raw_line FROM dead_letter_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("dead letters");
    assert_eq!(dl.len(), 2);
    assert_eq!(dl[0].get::<_, i64>(0), 3);
    assert_eq!(dl[0].get::<_, Vec<String>>(1), ["invalid_encoding"]);
    assert!(dl[0].get::<_, String>(2).contains("caf\u{FFFD}"));
    assert_eq!(dl[1].get::<_, Vec<String>>(1), ["invalid_encoding"]);
}

#[tokio::test]
async fn a_file_of_only_duplicate_rows_is_not_counted_as_loaded_silently() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    write_atomically(&dir, "a.csv", &format!("{HEADER}\n{}{}", row(1), row(2)));
    let first: serde_json::Value =
        serde_json::from_str(load_once(&db, &dir, &[]).trim()).expect("summary");
    assert_eq!(first["files_loaded"], 1, "{first}");
    assert_eq!(first["files_loaded_only_duplicates"], 0, "{first}");

    // The same events in another order: new content, nothing new in it.
    write_atomically(&dir, "b.csv", &format!("{HEADER}\n{}{}", row(2), row(1)));
    let out = shopstream()
        .args([
            "run",
            "--once",
            "--color",
            "never",
            "--database-url",
            &db.url,
        ])
        .arg("--input")
        .arg(&dir)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("summary");
    assert_eq!(
        (
            &summary["files_loaded"],
            &summary["files_loaded_only_duplicates"],
            &summary["rows_loaded"],
            &summary["rows_duplicate"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(2)
        ),
        "{summary}"
    );
    let line = err
        .lines()
        .find(|l| l.contains("loader stopped"))
        .unwrap_or_else(|| panic!("no summary line:\n{err}"));
    assert!(
        line.contains("1 files loaded (1 of them only duplicate rows: nothing added)"),
        "{line}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 2);
}
