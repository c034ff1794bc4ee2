//! Retention on the real server: the event table partitioned by month
//! (schema v9), `shopstream prune --older-than` and `run --retention`
//! dropping whole old months and leaving the new ones untouched, dedup by
//! event id staying exact across partitions on both routes, rows of a month
//! without a partition loading into the default partition and moving out
//! when their partition is made, and a v8 table migrated without losing a
//! row.

mod common;

use std::path::Path;

use chrono::{Datelike, Duration, TimeZone, Utc};
use common::{count, load_once, run_ok, shopstream, test_db, TestDb};

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn id(month: u32, n: u32) -> String {
    format!("00000000-0000-4000-8000-{month:04}{n:08}")
}

fn row(id: &str, at: &str) -> String {
    format!("{id},u1,view,p1,1.50,{at}")
}

fn write(dir: &Path, name: &str, lines: &[String]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let text = std::iter::once(HEADER.to_string())
        .chain(lines.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join(name), text + "\n").expect("write");
}

fn summary(out: &str) -> serde_json::Value {
    serde_json::from_str(out.trim().lines().last().unwrap_or_default()).expect("summary JSON")
}

/// The first instant (UTC) of the month `back` months before now's.
fn month_start(back: u32) -> chrono::DateTime<Utc> {
    let now = Utc::now();
    let total = now.year() * 12 + now.month0() as i32 - back as i32;
    Utc.with_ymd_and_hms(
        total.div_euclid(12),
        total.rem_euclid(12) as u32 + 1,
        1,
        0,
        0,
        0,
    )
    .single()
    .expect("a month start")
}

fn partition(at: chrono::DateTime<Utc>) -> String {
    format!("ecommerce_events_p{}", at.format("%Y%m"))
}

/// Months 0 (this one) to 5 back, month k holding 10 + k rows (month 0's
/// a minute old, the others mid-month); one file per month.
fn six_months(input: &Path) -> Vec<(chrono::DateTime<Utc>, u32)> {
    (0..6)
        .map(|k| {
            let at = if k == 0 {
                Utc::now() - Duration::minutes(1)
            } else {
                month_start(k) + Duration::days(14)
            };
            let rows = 10 + k;
            let lines: Vec<String> = (0..rows)
                .map(|n| row(&id(k, n), &at.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
                .collect();
            write(input, &format!("m{k}.csv"), &lines);
            (at, rows)
        })
        .collect()
}

async fn partitions(db: &TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'ecommerce_events'::regclass ORDER BY 1",
            &[],
        )
        .await
        .expect("partitions")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn rows_in(db: &TestDb, month: chrono::DateTime<Utc>) -> i64 {
    count(
        db,
        &format!(
            "SELECT count(*) FROM ecommerce_events
              WHERE date_trunc('month', event_time AT TIME ZONE 'UTC') = '{}'",
            month.format("%Y-%m-01")
        ),
    )
    .await
}

/// Whether the month of `at` ends at or before now − `days` days (as the
/// server's clock says): the rule for dropping its partition.
async fn wholly_older(db: &TestDb, at: chrono::DateTime<Utc>, days: u32) -> bool {
    let sql = format!(
        "SELECT ((date_trunc('month', '{}'::timestamptz AT TIME ZONE 'UTC') + interval '1 month')
                 AT TIME ZONE 'UTC' <= now() - interval '{days} days')::int4::int8",
        at.to_rfc3339()
    );
    count(db, &sql).await == 1
}

fn prune(db: &TestDb, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        shopstream()
            .args(["prune", "--database-url", &db.url, "--format", "json"])
            .args(extra),
    );
    serde_json::from_str(&out).expect("prune JSON")
}

/// Six months loaded, then the old data: dead letters and quality rows
/// dated back 200 days, to be pruned with them.
async fn loaded_six_months(db: &TestDb, input: &Path) -> Vec<(chrono::DateTime<Utc>, u32)> {
    let months = six_months(input);
    write(
        input,
        "bad.csv",
        &[
            row(&id(99, 1), "not a time"),
            row(
                &id(99, 2),
                &(Utc::now() - Duration::minutes(1)).to_rfc3339(),
            ),
        ],
    );
    let s = summary(&load_once(db, input, &[]));
    let total: u32 = months.iter().map(|m| m.1).sum();
    assert_eq!(s["rows_loaded"], total + 1, "{s}");
    assert_eq!(s["rows_rejected"], 1, "{s}");
    db.client()
        .await
        .batch_execute(
            "UPDATE dead_letter_events SET rejected_at = now() - interval '200 days';
             INSERT INTO data_quality_metrics (batch_id, started_at, committed_at, files, rows_read,
               rows_valid, rows_loaded, rows_duplicate, rows_rejected, late_arrivals, rejects_by_code)
             VALUES (-1, now() - interval '200 days', now() - interval '200 days', 0, 0, 0, 0, 0, 0, 0, '{}')",
        )
        .await
        .expect("backdate");
    months
}

#[tokio::test]
async fn prune_drops_the_old_months_keeps_the_new_and_dedup_stays_exact() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let months = loaded_six_months(&db, &input).await;
    let ledger = count(&db, "SELECT count(*) FROM ingested_files").await;
    let events = count(&db, "SELECT count(*) FROM ecommerce_events").await;

    // A dry run says what would go and changes nothing.
    let dry = prune(&db, &["--older-than", "100d", "--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        events
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        1
    );

    let done = prune(&db, &["--older-than", "100d"]);
    let mut gone = 0;
    let kept_partitions = partitions(&db).await;
    for (k, (at, rows)) in months.iter().enumerate() {
        let old = wholly_older(&db, *at, 100).await;
        // This month also holds the valid row of bad.csv.
        let left = rows_in(&db, *at).await - i64::from(k == 0);
        if old {
            gone += *rows as u64;
            assert_eq!(left, 0, "month {at} is gone: {done}");
            assert!(
                !kept_partitions.contains(&partition(*at)),
                "{kept_partitions:?}"
            );
        } else {
            assert_eq!(left, *rows as i64, "month {at} is untouched: {done}");
            assert!(
                kept_partitions.contains(&partition(*at)),
                "{kept_partitions:?}"
            );
        }
    }
    // Month 5 back always ends more than 100 days ago; months 0 and 1
    // never do.
    assert!(gone >= 15, "{done}");
    assert!(gone <= 15 + 14 + 13, "{done}");
    assert_eq!(
        done["dropped_partitions"].as_array().map(Vec::len),
        dry["dropped_partitions"].as_array().map(Vec::len)
    );
    let dropped: u64 = done["dropped_partitions"]
        .as_array()
        .expect("dropped")
        .iter()
        .map(|d| d["rows"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        dropped + done["default_rows"].as_u64().unwrap_or(0),
        gone,
        "{done}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        events - gone as i64
    );
    assert_eq!(done["dead_letters"], 1, "{done}");
    assert_eq!(done["quality_rows"], 1, "{done}");
    old_dead_letters_and_quality_rows_gone(&db).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM ingested_files").await,
        ledger,
        "the ledger is kept"
    );
    // The partitions of this month and the next three exist.
    for k in 0..4 {
        let ahead = month_start(0) + Duration::days(31 * k + 1);
        assert!(
            kept_partitions.contains(&partition(ahead)),
            "{kept_partitions:?}"
        );
    }

    // Dedup afterwards: a repeat of a kept id with another event time (a
    // month earlier) is a duplicate; a repeat of a pruned id loads again.
    let kept = id(0, 3);
    let pruned = id(5, 3);
    let earlier = (month_start(1) + Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    write(
        &input,
        "again.csv",
        &[
            row(&kept, &earlier),
            row(&pruned, &earlier),
            row(&id(0, 900), &earlier),
        ],
    );
    let s = summary(&load_once(&db, &input, &[]));
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM ecommerce_events WHERE event_id = '{kept}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files
                     WHERE rows_read <> rows_loaded + rows_duplicate + rows_rejected"
        )
        .await,
        0
    );
    let read: i64 = count(&db, "SELECT sum(rows_read)::int8 FROM ingested_files").await;
    let (l, d, r) = (
        count(&db, "SELECT sum(rows_loaded)::int8 FROM ingested_files").await,
        count(&db, "SELECT sum(rows_duplicate)::int8 FROM ingested_files").await,
        count(&db, "SELECT sum(rows_rejected)::int8 FROM ingested_files").await,
    );
    assert_eq!(read, l + d + r);
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        events - gone as i64 + 2,
        "the ledger's loaded rows minus the pruned ones"
    );
}

#[tokio::test]
async fn run_with_retention_prunes_at_start() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let months = loaded_six_months(&db, &input).await;
    let events = count(&db, "SELECT count(*) FROM ecommerce_events").await;
    let mut gone = 0;
    for (at, rows) in &months {
        if wholly_older(&db, *at, 100).await {
            gone += *rows as i64;
        }
    }
    write(
        &input,
        "new.csv",
        &[row(
            &id(0, 500),
            &(Utc::now() - Duration::minutes(1)).to_rfc3339(),
        )],
    );
    let out = shopstream()
        .args([
            "run",
            "--once",
            "--retention",
            "100d",
            "--database-url",
            &db.url,
            "--input",
        ])
        .arg(&input)
        .output()
        .expect("run");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("retention: removed"), "{log}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        events - gone + 1
    );
    for (at, rows) in &months[1..] {
        let expect = if wholly_older(&db, *at, 100).await {
            0
        } else {
            *rows as i64
        };
        assert_eq!(rows_in(&db, *at).await, expect, "month {at}");
    }
    old_dead_letters_and_quality_rows_gone(&db).await;
}

/// The table takes the staged route when it checks something shopstream
/// does not know.
async fn staged_only(db: &TestDb) {
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE ecommerce_events ADD CONSTRAINT refuses_nothing CHECK (quantity > -1)",
        )
        .await
        .expect("constraint");
}

#[tokio::test]
async fn a_repeat_of_an_id_with_another_event_time_is_a_duplicate_on_both_routes() {
    for staged in [false, true] {
        let db = test_db().await;
        if staged {
            staged_only(&db).await;
        }
        let tmp = tempfile::tempdir().expect("tmp");
        let input = tmp.path().join("in");
        let now = (Utc::now() - Duration::minutes(1)).to_rfc3339();
        let before = (month_start(2) + Duration::days(5)).to_rfc3339();
        let long_ago = "2019-03-10T10:00:00Z";
        write(
            &input,
            "a.csv",
            &[row(&id(1, 1), &before), row(&id(1, 2), &now)],
        );
        let s = summary(&load_once(&db, &input, &[]));
        assert_eq!(s["rows_loaded"], 2, "staged {staged}: {s}");
        // The same ids at other times, in another batch and within one
        // file (the first copy by line counts).
        write(
            &input,
            "b.csv",
            &[
                row(&id(1, 1), &now),
                row(&id(1, 2), long_ago),
                row(&id(1, 3), long_ago),
                row(&id(1, 3), &now),
            ],
        );
        let s = summary(&load_once(&db, &input, &[]));
        assert_eq!(
            (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
            (Some(1), Some(3)),
            "staged {staged}: {s}"
        );
        assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
        assert_eq!(
            count(&db, "SELECT count(DISTINCT event_id) FROM ecommerce_events").await,
            3
        );
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT count(*) FROM ecommerce_events WHERE event_id = '{}'
                       AND event_time = '{long_ago}'",
                    id(1, 3)
                )
            )
            .await,
            1,
            "staged {staged}: the first copy by line stays"
        );
    }
}

#[tokio::test]
async fn a_row_of_a_month_without_a_partition_loads_and_moves_when_its_partition_is_made() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, "old.csv", &[row(&id(7, 1), "2019-03-10T10:00:00Z")]);
    let s = summary(&load_once(&db, &input, &[]));
    assert_eq!(s["rows_loaded"], 1, "{s}");
    let home = "SELECT tableoid::regclass::text FROM ecommerce_events";
    let c = db.client().await;
    let at: String = c.query_one(home, &[]).await.expect("row").get(0);
    assert_eq!(at, "ecommerce_events_default");

    // The next maintenance (here a prune that removes nothing) makes its
    // month's partition and moves the row into it.
    let done = prune(&db, &["--older-than", "100000d"]);
    assert_eq!(
        done["ensured"]["created"],
        serde_json::json!(["ecommerce_events_p201903"]),
        "{done}"
    );
    assert_eq!(done["ensured"]["moved_from_default"], 1, "{done}");
    let at: String = c.query_one(home, &[]).await.expect("row").get(0);
    assert_eq!(at, "ecommerce_events_p201903");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events_default").await,
        0
    );

    // The same month loads straight into it now; its id is still unique.
    write(
        &input,
        "old2.csv",
        &[
            row(&id(7, 2), "2019-03-11T10:00:00Z"),
            row(&id(7, 1), "2019-03-12T10:00:00Z"),
        ],
    );
    let s = summary(&load_once(&db, &input, &[]));
    assert_eq!(
        (s["rows_loaded"].as_u64(), s["rows_duplicate"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events_p201903").await,
        2
    );
}

/// Applies migrations 1–8 as shopstream would have (with their history
/// rows), so the database is at schema v8.
async fn at_v8(db: &TestDb) {
    let mut c = db.client().await;
    c.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
           checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
           additive boolean NOT NULL DEFAULT false)",
    )
    .await
    .expect("history");
    for m in shopstream::db::migrate::MIGRATIONS
        .iter()
        .filter(|m| m.version <= 8)
    {
        let tx = c.transaction().await.expect("tx");
        tx.batch_execute(m.sql).await.expect(m.name);
        let sum = blake3::hash(m.sql.as_bytes()).to_hex()[..16].to_string();
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, additive) VALUES ($1, $2, $3, $4)",
            &[&m.version, &m.name, &sum, &m.additive],
        )
        .await
        .expect("history row");
        tx.commit().await.expect("commit");
    }
}

#[tokio::test]
async fn a_v8_table_migrates_to_partitions_without_losing_a_row() {
    let db = test_db().await;
    at_v8(&db).await;
    let c = db.client().await;
    let role = format!("{}_reader", db.name);
    // 20,000 rows over 14 months, with NULLs, extra JSON and every column.
    c.batch_execute(&format!(
        "INSERT INTO ecommerce_events (event_id, user_id, session_id, event_type, product_id,
           product_name, category, price, quantity, user_segment, search_query, event_time,
           device_type, browser, geo_country, geo_city, referrer, campaign_id, total_amount,
           is_late_arrival, source_file, source_line, batch_id, source_layout, extra)
         SELECT gen_random_uuid(), 'u' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 's' || g END,
                'purchase', 'p' || (g % 97), 'name ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' END,
                g % 100 + 0.5, g % 4, 'vip', NULL, now() - (g % 420) * interval '1 day',
                'mobile', 'firefox', 'DE', 'Berlin', NULL, 'camp', (g % 100 + 0.5) * (g % 4),
                g % 2 = 0, 'f' || (g / 1000) || '.csv', g, g / 1000, 'v3',
                CASE WHEN g % 7 = 0 THEN jsonb_build_object('k', g) END
           FROM generate_series(1, 20000) AS g;
         CREATE ROLE \"{role}\";
         GRANT SELECT ON ecommerce_events, v_top_products TO \"{role}\"",
    ))
    .await
    .expect("seeding the v8 table");
    let checksum =
        "SELECT count(*)::text || ':' || md5(string_agg(md5(t::text), '' ORDER BY event_id))
                      FROM ecommerce_events t";
    let before: String = c.query_one(checksum, &[]).await.expect("checksum").get(0);
    let months = count(
        &db,
        "SELECT count(DISTINCT date_trunc('month', event_time AT TIME ZONE 'UTC')) FROM ecommerce_events",
    )
    .await;

    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));

    let after: String = c.query_one(checksum, &[]).await.expect("checksum").get(0);
    assert_eq!(after, before, "every row, every column");
    assert!(before.starts_with("20000:"), "{before}");
    assert_eq!(
        count(&db, "SELECT max(version)::int8 FROM schema_migrations").await,
        i64::from(shopstream::db::migrate::known_version())
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'ecommerce_events'::regclass").await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events_default").await,
        0
    );
    assert!(
        partitions(&db).await.len() as i64 > months,
        "a partition per month with rows, and the default"
    );
    // The views work over the new table and keep their grants.
    assert_eq!(
        count(&db, "SELECT sum(events)::int8 FROM v_hourly_event_summary").await,
        20000
    );
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT (has_table_privilege('{role}', 'ecommerce_events', 'SELECT')
                         AND has_table_privilege('{role}', 'v_top_products', 'SELECT'))::int4::int8"
            )
        )
        .await,
        1
    );
    c.batch_execute(&format!(
        "REVOKE ALL ON ecommerce_events, v_top_products FROM \"{role}\";
         DROP ROLE \"{role}\""
    ))
    .await
    .expect("drop the role");
    run_ok(shopstream().args(["report", "--database-url", &db.url]));
}

#[tokio::test]
async fn prune_waits_for_the_writer_lock() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let mut c = db.client().await;
    let tx = c.transaction().await.expect("tx");
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&shopstream::sink::transaction::WRITER_KEY],
    )
    .await
    .expect("the writer lock");
    let mut child = shopstream()
        .args(["prune", "--older-than", "30d", "--database-url", &db.url])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "prune went ahead while a batch held the writer lock"
    );
    tx.commit().await.expect("commit");
    let out = child.wait_with_output().expect("prune");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("removed everything older than"), "{text}");
}

/// The old dead letter and the old quality row (batch -1) the tests plant
/// are gone.
async fn old_dead_letters_and_quality_rows_gone(db: &TestDb) {
    assert_eq!(
        count(db, "SELECT count(*) FROM dead_letter_events").await,
        0
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM data_quality_metrics WHERE batch_id = -1"
        )
        .await,
        0
    );
}
