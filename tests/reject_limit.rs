//! `--max-reject-ratio` against a real PostgreSQL server and the real
//! binary: a file where more than the ratio of rows fail is quarantined
//! whole with reason code `too_many_rejects` and its counts, leaving no row
//! in ecommerce_events nor in dead_letter_events (also when it is larger
//! than a run, whose rows go under a savepoint), one under the ratio loads
//! with its dead letters, `requeue --code too_many_rejects` finds it, and
//! `check` says the same; a ratio outside (0, 1] is refused at start.

mod common;

use std::path::Path;

use common::{count, load_once, run_ok, shopstream, test_db, TestDb};

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn valid(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x},U{i},purchase,P{i},12.50,2026-01-10T11:00:00Z")
}

const INVALID: &str = ",U,view,P,-1,2026-01-10T11:00:00Z";

/// A v1 file of `good` valid rows (ids from `first`) then `bad` invalid.
fn write(path: &Path, first: u32, good: u32, bad: u32) {
    let mut s = format!("{V1}\n");
    for i in first..first + good {
        s.push_str(&valid(i));
        s.push('\n');
    }
    for _ in 0..bad {
        s.push_str(INVALID);
        s.push('\n');
    }
    std::fs::write(path, s).expect("write");
}

/// The ledger row of the file whose path ends with `name`: status, reason.
async fn ledger(db: &TestDb, name: &str) -> (String, Option<String>) {
    let rows = db
        .client()
        .await
        .query("SELECT path, status, reason FROM ingested_files", &[])
        .await
        .expect("ledger");
    let r = rows
        .iter()
        .find(|r| r.get::<_, String>(0).ends_with(name))
        .unwrap_or_else(|| panic!("{name} in the ledger"));
    (r.get(1), r.get(2))
}

async fn rows_of(db: &TestDb, table: &str, name: &str) -> i64 {
    count(
        db,
        &format!("SELECT count(*) FROM {table} WHERE source_file LIKE '%/{name}'"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_over_the_ratio_is_quarantined_whole_and_one_under_it_loads_with_dead_letters() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    write(&input.join("sixty.csv"), 1, 4, 6);
    write(&input.join("forty.csv"), 100, 6, 4);

    // check says it first, without a database.
    let out = shopstream()
        .args(["check", "--max-reject-ratio", "0.5"])
        .arg(&input)
        .output()
        .expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sixty.csv: rejected (too_many_rejects): 6 of 10 rows (60.0%) failed validation, more than --max-reject-ratio 0.5"),
        "{text}"
    );

    let summary = load_once(&db, &input, &["--max-reject-ratio", "0.5"]);
    let (status, reason) = ledger(&db, "sixty.csv").await;
    assert_eq!(status, "rejected", "{summary}");
    assert_eq!(
        reason.as_deref(),
        Some("6 of 10 rows (60.0%) failed validation, more than --max-reject-ratio 0.5")
    );
    assert_eq!(rows_of(&db, "ecommerce_events", "sixty.csv").await, 0);
    assert_eq!(rows_of(&db, "dead_letter_events", "sixty.csv").await, 0);
    let quarantined = input.join("_quarantine/sixty.csv");
    assert!(quarantined.exists(), "quarantined");
    let why = std::fs::read_to_string(input.join("_quarantine/sixty.csv.reason.txt"))
        .expect("the reason beside it");
    assert!(why.contains("--max-reject-ratio 0.5"), "{why}");

    assert_eq!(ledger(&db, "forty.csv").await.0, "loaded");
    assert_eq!(rows_of(&db, "ecommerce_events", "forty.csv").await, 6);
    assert_eq!(rows_of(&db, "dead_letter_events", "forty.csv").await, 4);

    // requeue finds it by its code and moves it back.
    let out = run_ok(
        shopstream()
            .args([
                "requeue",
                "--code",
                "too_many_rejects",
                "--database-url",
                &db.url,
            ])
            .args(["--format", "json", "--input"])
            .arg(&input),
    );
    let moved: serde_json::Value = serde_json::from_str(&out).expect("json");
    let files = moved["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{moved:#}");
    assert_eq!(files[0]["code"], "too_many_rejects");
    assert!(input.join("sixty.csv").exists() && !quarantined.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_a_run_over_the_ratio_leaves_nothing_behind() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // 20 000 valid rows with 1 KiB kept in `extra` each: more than one run
    // of encoded rows (pipeline::read::RUN_BYTES, 16 MiB), so they go to
    // the table under a savepoint before the file's end; then 25 000
    // failing rows (55.6%).
    let note = "n".repeat(1024);
    let mut s = format!("{V1},note\n");
    for i in 0..20_000 {
        s.push_str(&format!("{},{note}\n", valid(1_000 + i)));
    }
    for _ in 0..25_000 {
        s.push_str(&format!("{INVALID},\n"));
    }
    const { assert!(20_000 * 1024 > shopstream::pipeline::read::RUN_BYTES) };
    std::fs::write(input.join("big.csv"), s).expect("write");
    write(&input.join("small.csv"), 1, 3, 1);

    load_once(&db, &input, &["--max-reject-ratio", "0.5"]);
    let (status, reason) = ledger(&db, "big.csv").await;
    assert_eq!(status, "rejected");
    assert_eq!(
        reason.as_deref(),
        Some("25000 of 45000 rows (55.6%) failed validation, more than --max-reject-ratio 0.5")
    );
    assert_eq!(rows_of(&db, "ecommerce_events", "big.csv").await, 0);
    assert_eq!(rows_of(&db, "dead_letter_events", "big.csv").await, 0);
    // The other file of the batch loads as usual.
    assert_eq!(ledger(&db, "small.csv").await.0, "loaded");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        1
    );
}

#[test]
fn a_ratio_outside_zero_to_one_is_refused_at_start() {
    for bad in ["0", "1.5", "-0.1", "half", "NaN"] {
        let out = shopstream()
            .args(["run", "--once", "--input", "/nonexistent/in"])
            .arg(format!("--max-reject-ratio={bad}"))
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--max-reject-ratio"), "{err}");
    }
    let out = shopstream()
        .env("SHOPSTREAM_MAX_REJECT_RATIO", "2")
        .args(["check", "."])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(2));
}
