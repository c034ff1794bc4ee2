//! The duplicate decision of the copy route (sorted runs, a filter of the
//! table's ids, one probe for the rest, then COPY) gives exactly what
//! loading every row through staging with `INSERT … ON CONFLICT DO
//! NOTHING` gives, on every shape of the bench's matrix, and never tries
//! anything twice.

mod common;

use std::path::{Path, PathBuf};

use common::{count, fingerprint, generate, load_once, test_db, TestDb};
use shopstream::bench::shapes::{compose, Pools, Shape};

fn summary(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim().lines().last().unwrap_or_default()).expect("summary JSON")
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

/// A constraint that refuses nothing but that shopstream does not know:
/// the loader takes the staged route on this table.
async fn staged_only(db: &TestDb) {
    common::run_ok(common::shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE ecommerce_events ADD CONSTRAINT refuses_nothing CHECK (quantity > -1)",
        )
        .await
        .expect("constraint");
}

/// A migrated database whose event table holds ids `1..=n`, as another
/// tool left them.
async fn earlier_events(db: &TestDb, n: i32) {
    common::run_ok(common::shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .execute(
            "INSERT INTO ecommerce_events (event_id, event_type, product_id, quantity, event_time,
                                           source_file, source_line, batch_id, source_layout)
             SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'view',
                    'p' || n, 1, '2026-01-01', 'earlier.csv', n, 0, 'v3'
             FROM generate_series(1, $1) n",
            &[&n],
        )
        .await
        .expect("earlier events");
}

/// The run's summary counts (loaded, duplicate) and the rows the event
/// table then holds.
async fn loaded_and_held(db: &TestDb, s: &serde_json::Value, rows: (u64, u64), held: i64) {
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
        (Some(rows.0), Some(rows.1)),
        "{s}"
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM ecommerce_events").await,
        held
    );
}

/// The database's committed and rolled back transactions, once every
/// backend of the loader has left (they report their statistics as they
/// exit).
async fn transactions(db: &TestDb) -> (i64, i64) {
    let c = db.client().await;
    let start = std::time::Instant::now();
    loop {
        c.batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .expect("clear the statistics snapshot");
        let row = c
            .query_one(
                "SELECT (SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND pid <> pg_backend_pid()),
                        xact_commit, xact_rollback FROM pg_stat_database
                 WHERE datname = current_database()",
                &[],
            )
            .await
            .expect("statistics");
        if row.get::<_, i64>(0) == 0 {
            return (row.get(1), row.get(2));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The bench's pools at a small scale: 12 files of valid events, one file
/// of broken rows, and for the `before` shapes a history already loaded.
fn pools(root: &Path) -> (Pools, PathBuf) {
    let valid = root.join("valid");
    let extra = ["--invalid-share", "0", "--duplicate-share", "0"];
    generate(&valid, 12, 400, 5, &extra);
    let invalid = root.join("invalid");
    generate(
        &invalid,
        1,
        300,
        6,
        &["--invalid-share", "1", "--duplicate-share", "0"],
    );
    let history = root.join("history");
    generate(&history, 3, 500, 7, &extra);
    let listed = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        files.sort();
        files
    };
    let history_ids: Vec<String> = listed(&history)
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read history");
            text.lines()
                .skip(1)
                .filter_map(|l| l.split(',').next().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let pools = Pools {
        valid: listed(&valid),
        invalid: listed(&invalid).remove(0),
        invalid_per_file: 8,
        history_ids,
    };
    (pools, history)
}

#[tokio::test]
async fn the_copy_route_equals_a_staged_load_on_every_bench_shape() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (pools, history) = pools(tmp.path());
    for name in ["plain", "near-5", "far-5", "before-5", "resent"] {
        let shape: Shape = name.parse().expect("shape");
        let dir = tmp.path().join(name);
        let want = compose(shape, &pools, &dir, 3).expect("compose");
        let (copy, staged) = (test_db().await, test_db().await);
        staged_only(&staged).await;
        if shape.needs_history() {
            load_once(&copy, &history, &[]);
            load_once(&staged, &history, &[]);
        }
        let c = summary(&load_once(&copy, &dir, &[]));
        let s = summary(&load_once(&staged, &dir, &[]));
        for k in [
            "rows_read",
            "rows_loaded",
            "rows_duplicate",
            "rows_rejected",
            "files_duplicate",
        ] {
            assert_eq!(c[k], s[k], "{name}: {k}");
        }
        assert_eq!(
            c["rows_loaded"].as_u64(),
            Some(want.expected_loaded),
            "{name}"
        );
        // The same rows, the same copy of each event, the same ledger.
        {
            let (cc, sc) = (copy.client().await, staged.client().await);
            assert_eq!(
                fingerprint(&cc, &dir).await,
                fingerprint(&sc, &dir).await,
                "{name}"
            );
        }
        // Nothing was tried twice: no transaction of the load rolled back.
        let (_, rollbacks) = transactions(&copy).await;
        assert_eq!(rollbacks, 0, "{name}: a rolled back transaction");
    }
}

#[tokio::test]
async fn an_id_already_in_the_table_is_a_duplicate_found_before_the_copy() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, "a.csv", &[row(1), row(2), row(3)]);
    let first = summary(&load_once(&db, &input, &[]));
    assert_eq!(first["rows_loaded"], 3, "{first}");

    // A new process reads the table's ids: row 2 is found before any COPY.
    write(&input, "b.csv", &[row(2), row(4), row(5), row(4)]);
    let second = summary(&load_once(&db, &input, &[]));
    assert_eq!(second["rows_loaded"], 2, "{second}");
    assert_eq!(second["rows_duplicate"], 2, "{second}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 5);
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
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE event_id = '00000000-0000-4000-8000-000000000004'
               AND source_line = 3"
        )
        .await,
        1,
        "within a file, the earliest line"
    );
    let (_, rollbacks) = transactions(&db).await;
    assert_eq!(rollbacks, 0, "no COPY failed and was tried again");
}

#[tokio::test]
async fn a_file_rejected_after_its_first_rows_were_read_leaves_none_of_them() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    // Three good rows, then a record over --max-line-bytes: the whole file
    // is rejected once its first rows were read.
    let long = format!("{},{}", row(13), "x".repeat(3000));
    write(&input, "a.csv", &[row(10), row(11), row(12), long]);
    write(&input, "b.csv", &[row(20), row(21), row(10)]);
    let s = summary(&load_once(&db, &input, &["--max-line-bytes", "2K"]));
    assert_eq!(s["files_rejected"], 1, "{s}");
    assert_eq!(s["rows_loaded"], 3, "{s}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE source_file LIKE '%a.csv'"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
}

#[tokio::test]
async fn a_file_larger_than_a_run_that_turns_out_rejected_is_undone_alone() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    // About 200,000 rows (more than one run of rows in memory), then a
    // record over --max-line-bytes at the very end.
    let mut big: Vec<String> = (100_000..300_000).map(row).collect();
    big.push(format!("{},{}", row(1), "x".repeat(3000)));
    write(&input, "a.csv", &[row(1), row(2)]);
    write(&input, "b.csv", &big);
    write(&input, "c.csv", &[row(3), row(100_000)]);
    let s = summary(&load_once(&db, &input, &["--max-line-bytes", "2K"]));
    assert_eq!(s["files_rejected"], 1, "{s}");
    assert_eq!(s["rows_loaded"], 4, "{s}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ecommerce_events WHERE source_file LIKE '%b.csv'"
        )
        .await,
        0,
        "none of the rejected file's rows"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);
    let (_, rollbacks) = transactions(&db).await;
    assert_eq!(
        rollbacks, 0,
        "undone by its savepoint, not a second attempt"
    );
}

#[tokio::test]
async fn a_row_the_server_refuses_on_the_copy_route_sends_the_loader_through_staging() {
    let db = test_db().await;
    common::run_ok(common::shopstream().args(["migrate", "--database-url", &db.url]));
    // A narrower column: the catalogue shows no extra constraint, but the
    // server refuses a longer referrer (SQLSTATE 22001).
    db.client()
        .await
        .batch_execute("ALTER TABLE ecommerce_events ALTER COLUMN referrer TYPE varchar(10)")
        .await
        .expect("narrower referrer");
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let v3 = "event_id,user_id,session_id,event_type,product_id,product_name,category,price,\
              quantity,user_segment,search_query,event_time,device_type,browser,geo_country,\
              geo_city,referrer,campaign_id";
    let line = |n: u32, referrer: &str| {
        format!(
            "00000000-0000-4000-8000-{n:012},U{n},s{n},add_to_cart,P{n},Desk,Home,19.99,2,\
             Premium,,2026-01-02T03:04:05+02:00,Mobile,Firefox,DE,Berlin,{referrer},c1"
        )
    };
    let text = [
        v3.to_string(),
        line(1, "short"),
        line(2, "https://a-long-referrer.example/"),
        line(3, ""),
    ]
    .join("\n");
    std::fs::write(input.join("a.csv"), text + "\n").expect("write");
    let out = common::shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .output()
        .expect("run");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("goes through staging"), "{log}");
    let s = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_rejected"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM dead_letter_events WHERE 'rejected_by_database' = ANY(error_codes)
               AND source_line = 3"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn batches_go_on_while_the_tables_ids_are_read_beside_them() {
    let db = test_db().await;
    // The table holds ids 1..=1000 (as another tool left them).
    earlier_events(&db, 1_000).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    // a.csv repeats 900..=1000 of the table; b.csv repeats 1050..=1100 of a.csv.
    write(&input, "a.csv", &(900..=1100).map(row).collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&input, "b.csv", &(1050..=1200).map(row).collect::<Vec<_>>());
    // One file per batch; the read of the table's ids arrives only when
    // the first batch is about to commit, so its rows are all probed, and
    // the second batch's filter must hold both the table and the first
    // batch.
    let out = common::run_ok(
        common::shopstream()
            .env(shopstream::sink::dedup::SLOW_ID_READ_ENV, "1500")
            .args([
                "run",
                "--once",
                "--batch-max-files",
                "1",
                "--database-url",
                &db.url,
            ])
            .arg("--input")
            .arg(&input),
    );
    loaded_and_held(&db, &summary(&out), (200, 152), 1_200).await;
    let (_, rollbacks) = transactions(&db).await;
    assert_eq!(rollbacks, 0, "no COPY failed and was tried again");
}

/// Ids the open batch has seen are asked on its own connection (the only
/// one that sees what it loaded); the other "maybe" ids are asked beside
/// it, on a connection that sees what is committed. Sending an id the
/// batch loaded beside it would miss it: the COPY would then meet a
/// duplicate, fail, and the batch be tried again.
#[tokio::test]
async fn ids_the_batch_loaded_are_asked_on_its_own_connection_the_rest_beside_it() {
    let db = test_db().await;
    // The table holds ids 1..=2000 (as another tool left them).
    earlier_events(&db, 2_000).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    // One batch, two runs: a.csv (3,000 new ids) is a run of its own; b.csv
    // repeats 1,000 ids of the table and 1,000 of a.csv, and has 1,000 new.
    write(
        &input,
        "a.csv",
        &(10_001..=13_000).map(row).collect::<Vec<_>>(),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b: Vec<String> = (1_001..=2_000)
        .chain(10_001..=11_000)
        .chain(20_001..=21_000)
        .map(row)
        .collect();
    write(&input, "b.csv", &b);
    // The table's ids arrive late: until then every id may be in the table.
    let out = common::shopstream()
        .env(shopstream::sink::dedup::SLOW_ID_READ_ENV, "3000")
        .args(["--log-level", "debug", "--log-format", "json"])
        .args(["run", "--once", "--database-url", &db.url])
        .arg("--input")
        .arg(&input)
        .output()
        .expect("run");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    loaded_and_held(&db, &summary(&stdout), (4_000, 2_000), 6_000).await;
    // b.csv's run: its ids a.csv loaded were asked on the batch's own
    // connection, the other 2,000 beside it.
    let runs: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "run loaded")
        .collect();
    assert_eq!(runs.len(), 2, "{stderr}");
    assert_eq!(
        (runs[1]["beside"].as_u64(), runs[1]["probed"].as_u64()),
        (Some(2_000), Some(1_000)),
        "{:?}",
        runs
    );
    let (_, rollbacks) = transactions(&db).await;
    assert_eq!(rollbacks, 0, "no COPY failed and was tried again");
}

#[tokio::test]
async fn a_loader_reads_the_tables_ids_again_after_another_loader_wrote() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (mine, theirs) = (tmp.path().join("mine"), tmp.path().join("theirs"));
    write(&mine, "a.csv", &[row(1), row(2)]);
    write(&theirs, "b.csv", &[row(7)]);
    let mut loader = common::Loader::spawn(
        common::shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .arg("--input")
            .arg(&mine),
    );
    let loaded = |n: i64| {
        let db = &db;
        async move { common::try_count(db, "SELECT count(*) FROM ecommerce_events").await == Some(n) }
    };
    common::wait_for(std::time::Duration::from_secs(60), "a.csv loaded", || {
        loaded(2)
    })
    .await;
    // Another loader commits id 7 while the first one runs (its filter
    // was read before).
    load_once(&db, &theirs, &[]);
    write(&mine, "c.csv", &[row(7), row(8)]);
    common::wait_for(std::time::Duration::from_secs(60), "c.csv loaded", || {
        loaded(4)
    })
    .await;
    loader.assert_alive();
    assert!(
        loader.logged("another loader wrote to ecommerce_events: reading its ids again"),
        "{}",
        loader.log()
    );
    // Id 7 was known before its COPY: no refusal, no switch to staging.
    assert!(!loader.logged("goes through staging"), "{}", loader.log());
    let s = loader.stop();
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
        (Some(3), Some(1)),
        "{s}"
    );
}
