//! `shopstream dead-letters list|replay` against a real PostgreSQL server
//! and the real binary: a raised `--max-price` loads exactly the dead
//! letters that now pass (duplicates counted as such), a dry run changes
//! nothing, a second replay finds nothing more, a replay killed before its
//! commit leaves nothing and the next one is exact, and a watching loader
//! reads the ids a replay loaded before it decides on them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{count, counts_by, fingerprint, load_once, run_ok, shopstream, test_db, TestDb};
use serde_json::Value;

/// Columns in another order than the registry's v1: only the header the
/// ledger records tells where each one is.
const HEADER: &str = "price,event_time,event_id,user_id,event_type,product_id";

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A purchase of id `n` at `price`.
fn row(n: u32, price: &str) -> String {
    format!("{price},2026-01-01 00:00:00,{},u{n},purchase,p{n}", id(n))
}

fn write(dir: &Path, name: &str, rows: &[String]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let text = std::iter::once(HEADER.to_string())
        .chain(rows.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join(name), text + "\n").expect("write");
}

/// `dead-letters replay … --format json` on `db`.
fn replay(db: &TestDb, args: &[&str]) -> Value {
    let out = run_ok(
        shopstream()
            .args(["dead-letters", "replay", "--database-url", &db.url])
            .args(["--format", "json"])
            .args(args),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn totals(j: &Value) -> [u64; 4] {
    ["considered", "loaded", "duplicate", "still_invalid"].map(|k| j[k].as_u64().unwrap_or(99))
}

/// The dead letters' replay outcome by line (`-` while still one).
async fn outcomes(db: &TestDb) -> BTreeMap<String, u64> {
    counts_by(
        db,
        "SELECT source_line::text || ':' || coalesce(replay_outcome, '-'), count(*)
         FROM dead_letter_events GROUP BY 1",
    )
    .await
}

#[tokio::test]
async fn replay_after_raising_max_price_loads_exactly_the_rows_that_now_pass() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    // Lines 2-4 valid; 5 and 6 over the default 10000 but under 50000; 7
    // over both; 8 a bad type; 9 over 10000 with id 1 (loaded already);
    // 10 and 11 the same new id over 10000 (one copy loads).
    let mut rows: Vec<String> = (1..=3).map(|n| row(n, "1.50")).collect();
    rows.push(row(4, "20000"));
    rows.push(row(5, "30000.50"));
    rows.push(row(6, "60000"));
    rows.push(row(7, "1.50").replace("purchase", "buy"));
    rows.push(row(1, "20000"));
    rows.push(row(8, "20000"));
    rows.push(row(8, "25000"));
    write(&dir, "a.csv", &rows);
    load_once(&db, &dir, &[]);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        7
    );

    // A dry run says what would happen and changes nothing.
    let before = fingerprint(&db.client().await, tmp.path()).await;
    let batches = count(&db, "SELECT count(*) FROM data_quality_metrics").await;
    let dry = replay(&db, &["--max-price", "50000", "--dry-run"]);
    assert_eq!(totals(&dry), [7, 3, 2, 2], "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["replay_id"].is_null(), "{dry}");
    assert_eq!(fingerprint(&db.client().await, tmp.path()).await, before);
    assert_eq!(
        count(&db, "SELECT count(*) FROM data_quality_metrics").await,
        batches
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_replays").await,
        0
    );

    let done = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&done), [7, 3, 2, 2], "{done}");
    assert_eq!(done["by_code"], dry["by_code"]);
    let code = &done["by_code"]["extreme_price"];
    assert_eq!(
        [
            &code["considered"],
            &code["loaded"],
            &code["duplicate"],
            &code["still_invalid"]
        ],
        [6, 3, 2, 1],
        "{done}"
    );
    assert_eq!(
        done["still_invalid_by_code"],
        serde_json::json!({"extreme_price": 1, "invalid_event_type": 1})
    );
    let replay_id = done["replay_id"].as_i64().expect("replay id");
    // Exactly the rows that pass now, each id once, with their values
    // mapped by the file's header.
    let loaded = counts_by(
        &db,
        &format!(
            "SELECT event_id::text || ' ' || price::text || ' line ' || source_line::text, count(*)
             FROM ecommerce_events WHERE batch_id = {replay_id} GROUP BY 1"
        ),
    )
    .await;
    let want: BTreeMap<String, u64> = [
        format!("{} 20000.00 line 5", id(4)),
        format!("{} 30000.50 line 6", id(5)),
        format!("{} 20000.00 line 10", id(8)),
    ]
    .into_iter()
    .map(|k| (k, 1))
    .collect();
    assert_eq!(loaded, want);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
    let want: BTreeMap<String, u64> = [
        "5:loaded",
        "6:loaded",
        "7:-",
        "8:-",
        "9:duplicate",
        "10:loaded",
        "11:duplicate",
    ]
    .into_iter()
    .map(|k| (k.to_string(), 1))
    .collect();
    assert_eq!(outcomes(&db).await, want);
    // The replay's history and its own quality row.
    let c = db.client().await;
    let h = c
        .query_one(
            "SELECT considered, loaded, duplicate, still_invalid, settings->>'max_price'
             FROM dead_letter_replays WHERE replay_id = $1",
            &[&replay_id],
        )
        .await
        .expect("history row");
    assert_eq!(
        (
            h.get::<_, i64>(0),
            h.get::<_, i64>(1),
            h.get::<_, i64>(2),
            h.get::<_, i64>(3)
        ),
        (7, 3, 2, 2)
    );
    assert_eq!(h.get::<_, String>(4), "50000");
    let q = c
        .query_one(
            "SELECT files, rows_loaded, rows_duplicate, rows_rejected FROM data_quality_metrics
             WHERE batch_id = $1",
            &[&replay_id],
        )
        .await
        .expect("quality row");
    assert_eq!(
        (
            q.get::<_, i32>(0),
            q.get::<_, i64>(1),
            q.get::<_, i64>(2),
            q.get::<_, i64>(3)
        ),
        (0, 3, 2, 0)
    );

    // Run again: nothing left that passes.
    let again = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&again), [2, 0, 0, 2], "{again}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
    assert_eq!(outcomes(&db).await, want);

    // `list` shows the dead letters left; --all every one.
    let list = |extra: &[&str]| -> Value {
        let out = run_ok(
            shopstream()
                .args(["dead-letters", "list", "--database-url", &db.url])
                .args(["--format", "json"])
                .args(extra),
        );
        serde_json::from_str(&out).expect("list JSON")
    };
    assert_eq!(list(&[])["total"], 2);
    assert_eq!(list(&["--all"])["total"], 7);
    assert_eq!(list(&["--code", "invalid_event_type"])["total"], 1);
    assert_eq!(
        list(&["--all", "--file", "a.csv", "--since", "1h"])["total"],
        7
    );
    assert_eq!(list(&["--all", "--file", "b.csv"])["total"], 0);
    let table =
        run_ok(shopstream().args(["dead-letters", "list", "--all", "--database-url", &db.url]));
    assert!(
        table.contains("loaded (") && table.contains("7 of 7 dead letter(s)"),
        "{table}"
    );
}

#[tokio::test]
async fn a_replay_killed_before_its_commit_leaves_nothing_and_the_next_one_is_exact() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    // 4,000 dead letters over the default --max-price, and 10 valid rows.
    let rows: Vec<String> = (1..=4010)
        .map(|n| row(n, if n <= 10 { "2.00" } else { "12000" }))
        .collect();
    write(&dir, "big.csv", &rows);
    load_once(&db, &dir, &[]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        4000
    );
    let before = fingerprint(&db.client().await, tmp.path()).await;

    // Held inside its transaction, every row moved and marked, then -9.
    let mut killed = common::Loader::spawn(
        shopstream()
            .args(["dead-letters", "replay", "--database-url", &db.url])
            .args(["--max-price", "50000"])
            .env(
                shopstream::sink::transaction::PAUSE_BEFORE_COMMIT_ENV,
                "600000",
            ),
    );
    common::wait_for(Duration::from_secs(120), "the replay at its COMMIT", || {
        let up = killed.logged("before COMMIT");
        async move { up }
    })
    .await;
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("wait");
    drop(killed);
    // Its backend goes with its connection; its work goes with it.
    common::wait_for(
        Duration::from_secs(60),
        "the killed replay's backend gone",
        || {
            let db = &db;
            async move {
                let others = "SELECT count(*) FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()";
                common::try_count(db, others).await == Some(0)
            }
        },
    )
    .await;
    assert_eq!(fingerprint(&db.client().await, tmp.path()).await, before);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_replays").await,
        0
    );

    let done = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&done), [4000, 4000, 0, 0], "{done}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        4010
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT event_id) FROM ecommerce_events").await,
        4010
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM dead_letter_events WHERE replay_outcome = 'loaded'"
        )
        .await,
        4000
    );
    let again = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&again), [0, 0, 0, 0], "{again}");
}

#[tokio::test]
async fn a_watching_loader_reads_the_ids_a_replay_loaded_before_deciding_on_them() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    write(
        &dir,
        "a.csv",
        &[row(1, "1.00"), row(2, "1.00"), row(7, "20000")],
    );
    let mut loader = common::Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .arg("--input")
            .arg(&dir),
    );
    let loaded = |n: i64| {
        let db = &db;
        async move { common::try_count(db, "SELECT count(*) FROM ecommerce_events").await == Some(n) }
    };
    common::wait_for(Duration::from_secs(60), "a.csv loaded", || loaded(2)).await;
    // The replay loads id 7 while the loader runs (its filter of the
    // table's ids was read before).
    let done = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&done), [1, 1, 0, 0], "{done}");
    write(&dir, "c.csv", &[row(7, "3.00"), row(8, "3.00")]);
    common::wait_for(Duration::from_secs(60), "c.csv loaded", || loaded(4)).await;
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
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM ecommerce_events WHERE event_id = '{}'",
                id(7)
            )
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_dead_letter_from_before_schema_v8_is_read_with_its_files_header_on_disk() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    write(&dir, "a.csv", &[row(1, "1.00"), row(2, "20000")]);
    write(&dir, "b.csv", &[row(3, "1.00"), row(4, "20000")]);
    load_once(&db, &dir, &[]);
    // As a loader before schema v8 left them: no header in the ledger.
    db.client()
        .await
        .batch_execute("UPDATE ingested_files SET header = NULL")
        .await
        .expect("forget the headers");
    // b.csv is gone: its columns are assumed in v1's own order, which is
    // not this file's, so its line stays (a price is not an event id).
    std::fs::remove_file(dir.join("b.csv")).expect("rm");
    let done = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&done), [2, 1, 0, 1], "{done}");
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM ecommerce_events WHERE event_id = '{}' AND price = 20000",
                id(2)
            )
        )
        .await,
        1
    );
}

#[test]
fn a_wrong_limit_is_refused_before_anything_is_opened() {
    let out = shopstream()
        .args(["dead-letters", "replay", "--max-price", "lots"])
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = shopstream()
        .args(["dead-letters", "list", "--code", "too_expensive"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn a_changed_time_zone_replays_rows_of_a_layout_without_ids_under_their_derived_ids() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // 02:30 on 2026-03-29 does not exist in Berlin (clocks skip it); two
    // identical rows get two ids (their occurrence in the file counts).
    let rows = "user_id,action,product,timestamp
1001,view,laptop,2026-03-29 01:30:00
1001,view,laptop,2026-03-29 02:30:00
1001,view,laptop,2026-03-29 02:30:00
";
    std::fs::write(dir.join("a.csv"), rows).expect("write");
    load_once(&db, &dir, &["--source-timezone", "Europe/Berlin"]);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT event_id::uuid) FROM dead_letter_events
             WHERE error_codes = '{invalid_event_time}'"
        )
        .await,
        2,
        "each dead letter keeps its derived id"
    );
    let done = replay(&db, &["--source-timezone", "UTC"]);
    assert_eq!(totals(&done), [2, 2, 0, 0], "{done}");
    // Read afresh under UTC, the same rows have the same ids: duplicates.
    std::fs::write(
        dir.join("b.csv"),
        format!("{rows}1002,view,mouse,2026-03-29 03:00:00\n"),
    )
    .expect("write");
    let s: Value = serde_json::from_str(load_once(&db, &dir, &[]).trim()).expect("summary");
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
        (Some(1), Some(3)),
        "{s}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);
}

/// Dead letters of a JSON Lines file are not replayed (their raw lines are
/// JSON objects, not CSV records): they stay dead letters, the file is
/// named as not replayable, and nothing is loaded from them.
#[tokio::test]
async fn dead_letters_of_json_lines_files_stay_and_are_named_not_replayable() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let line = |n: u32, price: &str| {
        format!(
            r#"{{"event_id":"{}","user_id":"u{n}","event_type":"purchase","product_id":"p{n}","price":{price},"event_time":"2026-01-01 00:00:00"}}"#,
            id(n)
        )
    };
    let text = [line(1, "1.5"), line(2, "20000")].join("\n") + "\n";
    std::fs::write(dir.join("a.jsonl"), text).expect("write");
    load_once(&db, &dir, &[]);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);

    let done = replay(&db, &["--max-price", "50000"]);
    assert_eq!(totals(&done), [1, 0, 0, 1], "{done}");
    let named = done["not_replayable"].to_string();
    assert!(
        named.contains("a.jsonl") && named.contains("JSON Lines"),
        "{done}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM dead_letter_events WHERE replay_outcome IS NULL"
        )
        .await,
        1
    );
}
