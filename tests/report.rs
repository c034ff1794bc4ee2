//! `shopstream report` and the analytics views of migration 4, against a
//! real PostgreSQL server and the real binary: a small hand-written dataset
//! whose every number is counted by hand below, then the report in each
//! format.

mod common;

use std::path::Path;

use common::{count, load_once, run_ok, shopstream, test_db, TestDb};
use serde_json::{json, Value};

const HEADER: &str = "event_id,user_id,session_id,event_type,product_id,product_name,category,price,quantity,user_segment,search_query,event_time";

/// Hour 10: user U1 (premium, session S1) views, carts and buys a laptop
/// (1 × 1000.00) and buys two mice (2 × 25.00); U2 (new, S2) views a novel
/// and carts three. The laptop purchase appears twice (one duplicate) and a
/// purchase without a user is rejected (missing_user).
const A: &str = "\
e0000000-0000-4000-8000-000000000001,U1,S1,view,P1,Laptop,electronics,1000.00,,premium,,2026-01-10 10:00:00
e0000000-0000-4000-8000-000000000002,U1,S1,add_to_cart,P1,Laptop,electronics,1000.00,1,premium,,2026-01-10 10:05:00
e0000000-0000-4000-8000-000000000003,U1,S1,purchase,P1,Laptop,electronics,1000.00,1,premium,,2026-01-10 10:10:00
e0000000-0000-4000-8000-000000000003,U1,S1,purchase,P1,Laptop,electronics,1000.00,1,premium,,2026-01-10 10:10:00
e0000000-0000-4000-8000-000000000004,U1,S1,view,P2,Mouse,electronics,25.00,,premium,,2026-01-10 10:12:00
e0000000-0000-4000-8000-000000000005,U1,S1,purchase,P2,Mouse,electronics,25.00,2,premium,,2026-01-10 10:15:00
e0000000-0000-4000-8000-000000000006,U2,S2,view,P3,Novel,books,15.50,,new,,2026-01-10 10:20:00
e0000000-0000-4000-8000-000000000007,U2,S2,add_to_cart,P3,Novel,books,15.50,3,new,,2026-01-10 10:25:00
e0000000-0000-4000-8000-000000000008,,S9,purchase,P3,Novel,books,15.50,1,new,,2026-01-10 10:30:00
";

/// Hour 11: U2 buys the three novels; U3 (new, S3) views the laptop and the
/// novel and searches; an anonymous visitor without session, segment or
/// category views a sticker; a view with a negative price is rejected.
const B: &str = "\
e0000000-0000-4000-8000-000000000009,U2,S2,purchase,P3,Novel,books,15.50,3,new,,2026-01-10 11:00:00
e0000000-0000-4000-8000-000000000010,U3,S3,view,P1,Laptop,electronics,1000.00,,new,,2026-01-10 11:05:00
e0000000-0000-4000-8000-000000000011,U3,S3,view,P3,Novel,books,15.50,,new,,2026-01-10 11:06:00
e0000000-0000-4000-8000-000000000012,U3,S3,search,P3,Novel,books,,,new,novel,2026-01-10 11:07:00
e0000000-0000-4000-8000-000000000013,,,view,P9,Sticker,,2.00,,,,2026-01-10 11:30:00
e0000000-0000-4000-8000-000000000015,U3,S3,view,P2,Mouse,electronics,-5,,new,,2026-01-10 11:40:00
";

/// Hour 11: U3 carts and buys one mouse.
const C: &str = "\
e0000000-0000-4000-8000-000000000016,U3,S3,add_to_cart,P2,Mouse,electronics,25.00,1,new,,2026-01-10 11:10:00
e0000000-0000-4000-8000-000000000017,U3,S3,purchase,P2,Mouse,electronics,25.00,1,new,,2026-01-10 11:12:00
";

/// Writes the three files and loads them, one file per batch.
async fn load_dataset(db: &TestDb, root: &Path) {
    let dir = root.join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (name, body) in [("a.csv", A), ("b.csv", B), ("c.csv", C)] {
        std::fs::write(dir.join(name), format!("{HEADER}\n{body}")).expect("write");
    }
    load_once(db, &dir, &["--batch-max-files", "1"]);
    assert_eq!(count(db, "SELECT count(*) FROM ecommerce_events").await, 14);
}

fn report(db: &TestDb, args: &[&str]) -> String {
    run_ok(
        shopstream()
            .args(["report", "--database-url", &db.url])
            .args(args),
    )
}

fn report_json(db: &TestDb, args: &[&str]) -> Value {
    let out = report(db, &[&["--format", "json"], args].concat());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The row of `section` whose `key` column is `value`.
fn row<'a>(j: &'a Value, section: &str, key: &str, value: &str) -> &'a Value {
    j[section]
        .as_array()
        .unwrap_or_else(|| panic!("no section {section} in {j}"))
        .iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {section}: {}", j[section]))
}

/// Picks `cols` out of a row, for compact comparisons.
fn pick(r: &Value, cols: &[&str]) -> Value {
    Value::Object(cols.iter().map(|c| (c.to_string(), r[c].clone())).collect())
}

#[tokio::test]
async fn json_report_has_the_hand_counted_numbers() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    load_dataset(&db, tmp.path()).await;
    let j = report_json(&db, &["--limit", "0"]);

    let keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 10, "{keys:?}");

    // The funnel per category: event counts and step rates.
    let funnel = ["views", "add_to_carts", "purchases"];
    let rates = [
        "view_to_cart_rate",
        "cart_to_purchase_rate",
        "view_to_purchase_rate",
    ];
    let cols: Vec<&str> = funnel.iter().chain(&rates).copied().collect();
    let by_cat = |c| pick(row(&j, "funnel_by_category", "category", c), &cols);
    assert_eq!(
        by_cat("electronics"),
        json!({"views": 3, "add_to_carts": 2, "purchases": 3,
               "view_to_cart_rate": 0.6667, "cart_to_purchase_rate": 1.5, "view_to_purchase_rate": 1.0})
    );
    assert_eq!(
        by_cat("books"),
        json!({"views": 2, "add_to_carts": 1, "purchases": 1,
               "view_to_cart_rate": 0.5, "cart_to_purchase_rate": 1.0, "view_to_purchase_rate": 0.5})
    );
    assert_eq!(
        by_cat("unknown"),
        json!({"views": 1, "add_to_carts": 0, "purchases": 0,
               "view_to_cart_rate": 0.0, "cart_to_purchase_rate": null, "view_to_purchase_rate": 0.0})
    );
    assert_eq!(j["funnel_by_category"][0]["category"], "electronics");

    // The funnel per hour, newest first.
    assert_eq!(
        pick(
            &j["funnel"][0],
            &["event_hour", "views", "add_to_carts", "purchases"]
        ),
        json!({"event_hour": "2026-01-10T11:00:00Z", "views": 3, "add_to_carts": 1, "purchases": 2})
    );
    assert_eq!(j["funnel"][0]["cart_to_purchase_rate"], 2.0);
    assert_eq!(j["funnel"][1]["event_hour"], "2026-01-10T10:00:00Z");
    assert_eq!(j["funnel"][1]["view_to_purchase_rate"], 0.6667);

    // Categories: revenue is the purchases' total_amount only (the carts'
    // amounts and the duplicate purchase do not count).
    let cats: Vec<(&str, f64)> = j["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|r| {
            (
                r["category"].as_str().expect("category"),
                r["revenue"].as_f64().expect("revenue"),
            )
        })
        .collect();
    assert_eq!(
        cats,
        [("electronics", 1075.0), ("books", 46.5), ("unknown", 0.0)]
    );
    assert_eq!(
        pick(
            row(&j, "categories", "category", "electronics"),
            &["events", "avg_price", "view_to_purchase_rate"]
        ),
        json!({"events": 8, "avg_price": 415.0, "view_to_purchase_rate": 1.0})
    );
    // avg_price is over the purchases and add-to-carts only (their prices:
    // 1000 + 25 + 1000 + 25 + 25 over 5); views and the search are left out.
    assert_eq!(
        row(&j, "categories", "category", "books")["avg_price"],
        15.5
    );

    // Top products.
    assert_eq!(
        j["top_products"][0],
        json!({"revenue_rank": 1, "product_id": "P1", "product_name": "Laptop",
               "category": "electronics", "views": 2, "add_to_carts": 1, "purchases": 1,
               "units_sold": 1, "revenue": 1000.0})
    );
    assert_eq!(
        pick(
            &j["top_products"][1],
            &["revenue_rank", "product_id", "units_sold", "revenue"]
        ),
        json!({"revenue_rank": 2, "product_id": "P2", "units_sold": 3, "revenue": 75.0})
    );
    assert_eq!(j["top_products"].as_array().map(Vec::len), Some(4));

    // Segments: distinct users, per-user figures, NULL without users.
    let seg_cols = [
        "users",
        "sessions",
        "events",
        "purchases",
        "revenue",
        "revenue_per_user",
        "purchases_per_user",
    ];
    assert_eq!(
        pick(row(&j, "segments", "user_segment", "premium"), &seg_cols),
        json!({"users": 1, "sessions": 1, "events": 5, "purchases": 2, "revenue": 1050.0,
               "revenue_per_user": 1050.0, "purchases_per_user": 2.0})
    );
    assert_eq!(
        pick(row(&j, "segments", "user_segment", "new"), &seg_cols),
        json!({"users": 2, "sessions": 2, "events": 8, "purchases": 2, "revenue": 71.5,
               "revenue_per_user": 35.75, "purchases_per_user": 1.0})
    );
    assert_eq!(
        pick(row(&j, "segments", "user_segment", "unknown"), &seg_cols),
        json!({"users": 0, "sessions": 0, "events": 1, "purchases": 0, "revenue": 0.0,
               "revenue_per_user": null, "purchases_per_user": null})
    );

    // Sessions: only events with a session, most recent first.
    let sessions = j["sessions"].as_array().expect("sessions");
    let ids: Vec<&str> = sessions
        .iter()
        .map(|s| s["session_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["S3", "S2", "S1"]);
    assert_eq!(
        pick(
            &sessions[2],
            &[
                "user_id",
                "user_segment",
                "events",
                "purchases",
                "revenue",
                "first_event",
                "last_event",
                "duration_seconds"
            ]
        ),
        json!({"user_id": "U1", "user_segment": "premium", "events": 5, "purchases": 2,
               "revenue": 1050.0, "first_event": "2026-01-10T10:00:00Z",
               "last_event": "2026-01-10T10:15:00Z", "duration_seconds": 900.0})
    );

    // Hourly summary per (hour, type).
    let hourly: Vec<Value> = j["hourly"]
        .as_array()
        .expect("hourly")
        .iter()
        .map(|r| {
            pick(
                r,
                &[
                    "event_hour",
                    "event_type",
                    "events",
                    "users",
                    "sessions",
                    "revenue",
                ],
            )
        })
        .collect();
    let h = |hour: u8, t: &str, events: u8, users: u8, sessions: u8, revenue: f64| {
        json!({"event_hour": format!("2026-01-10T{hour}:00:00Z"), "event_type": t,
               "events": events, "users": users, "sessions": sessions, "revenue": revenue})
    };
    assert_eq!(
        hourly,
        [
            h(11, "add_to_cart", 1, 1, 1, 0.0),
            h(11, "purchase", 2, 2, 2, 71.5),
            h(11, "search", 1, 1, 1, 0.0),
            h(11, "view", 3, 1, 1, 0.0),
            h(10, "add_to_cart", 2, 2, 2, 0.0),
            h(10, "purchase", 2, 1, 1, 1050.0),
            h(10, "view", 3, 2, 2, 0.0),
        ]
    );

    // Data quality: one batch per file.
    let mut batches: Vec<Value> = j["quality"]
        .as_array()
        .expect("quality")
        .iter()
        .map(|r| {
            pick(
                r,
                &[
                    "files",
                    "rows_read",
                    "rows_loaded",
                    "rows_duplicate",
                    "rows_rejected",
                    "validity_rate",
                    "rejects_by_code",
                ],
            )
        })
        .collect();
    batches.sort_by_key(|b| std::cmp::Reverse(b["rows_read"].as_i64()));
    assert_eq!(
        batches,
        [
            json!({"files": 1, "rows_read": 9, "rows_loaded": 7, "rows_duplicate": 1,
                   "rows_rejected": 1, "validity_rate": 0.8889, "rejects_by_code": {"missing_user": 1}}),
            json!({"files": 1, "rows_read": 6, "rows_loaded": 5, "rows_duplicate": 0,
                   "rows_rejected": 1, "validity_rate": 0.8333, "rejects_by_code": {"negative_price": 1}}),
            json!({"files": 1, "rows_read": 2, "rows_loaded": 2, "rows_duplicate": 0,
                   "rows_rejected": 0, "validity_rate": 1.0, "rejects_by_code": {}}),
        ]
    );
    let ids: Vec<i64> = j["quality"]
        .as_array()
        .expect("quality")
        .iter()
        .map(|r| r["batch_id"].as_i64().expect("batch_id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    // Committed just now, so all three are in the last-24-hours rollup.
    let qh = &j["quality_hourly"];
    assert_eq!(
        qh[0]["batches"].as_i64().unwrap_or(0) + qh[1]["batches"].as_i64().unwrap_or(0),
        3
    );
    let read: i64 = qh
        .as_array()
        .expect("quality_hourly")
        .iter()
        .map(|r| r["rows_read"].as_i64().expect("rows_read"))
        .sum();
    assert_eq!(read, 17);

    // Dead letters by code.
    let dl: Vec<Value> = j["dead_letters"]
        .as_array()
        .expect("dead_letters")
        .iter()
        .map(|r| pick(r, &["error_code", "dead_letters", "files"]))
        .collect();
    assert_eq!(
        dl,
        [
            json!({"error_code": "missing_user", "dead_letters": 1, "files": 1}),
            json!({"error_code": "negative_price", "dead_letters": 1, "files": 1}),
        ]
    );
}

/// Seed 003's export writes 0.0 as the price of every view and search;
/// seed 004 gives views a real price.
const SEED003: &str = "\
event_id,user_id,session_id,event_type,product_id,category,price,quantity,user_segment,search_query,event_time,source_system
f0000000-0000-4000-8000-000000000001,7.0,7-1,view,1,electronics,0.0,0,new,,2026-01-10T10:00:00.000000+00:00,web
f0000000-0000-4000-8000-000000000002,7.0,7-1,view,1,electronics,0.0,0,new,,2026-01-10T10:01:00.000000+00:00,web
f0000000-0000-4000-8000-000000000003,,guest-1-1,search,1,electronics,0.0,0,anonymous,laptop,2026-01-10T10:02:00.000000+00:00,web
f0000000-0000-4000-8000-000000000004,7.0,7-1,add_to_cart,1,electronics,1000.0,1,new,,2026-01-10T10:03:00.000000+00:00,web
f0000000-0000-4000-8000-000000000005,7.0,7-1,purchase,2,electronics,1024.5,2,new,,2026-01-10T10:04:00.000000+00:00,web
f0000000-0000-4000-8000-000000000006,8.0,8-1,view,3,books,0.0,0,new,,2026-01-10T10:05:00.000000+00:00,web
f0000000-0000-4000-8000-000000000007,8.0,8-1,wishlist,3,books,0.0,0,new,,2026-01-10T10:06:00.000000+00:00,web
";
const SEED004: &str = "\
event_id,event_time,event_type,product_id,price,user_id,session_id
f0000000-0000-4000-8000-000000000008,2026-01-10 10:07:00,view,150,123.45,4321,s-8
";

#[tokio::test]
async fn avg_price_is_over_the_events_that_carry_a_price() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("seed003.csv"), SEED003).expect("write");
    std::fs::write(dir.join("seed004.csv"), SEED004).expect("write");
    load_once(&db, &dir, &[]);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 8);
    let j = report_json(&db, &["--view", "categories"]);
    // (1000.00 + 1024.50) / 2: the 0.0 of the views and the search do not
    // count, nor would a view's real price (seed 004's, category unknown).
    let cols = ["events", "purchases", "avg_price"];
    assert_eq!(
        pick(row(&j, "categories", "category", "electronics"), &cols),
        json!({"events": 5, "purchases": 1, "avg_price": 1012.25})
    );
    // Views and a wishlist only: no price to average.
    assert_eq!(
        pick(row(&j, "categories", "category", "books"), &cols),
        json!({"events": 2, "purchases": 0, "avg_price": null})
    );
    assert_eq!(
        pick(row(&j, "categories", "category", "unknown"), &cols),
        json!({"events": 1, "purchases": 0, "avg_price": null})
    );
    let table = report(&db, &["--view", "categories"]);
    let books = table
        .lines()
        .find(|l| l.starts_with("books"))
        .unwrap_or_else(|| panic!("no books line:\n{table}"));
    assert!(books.contains(" - "), "a NULL average shows as -: {books}");
}

#[tokio::test]
async fn table_csv_and_a_single_section() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    load_dataset(&db, tmp.path()).await;

    // Table: every title, the funnel headings, hand-counted numbers.
    let text = report(&db, &[]);
    for title in [
        "Events by hour and type",
        "Conversion funnel (view → add_to_cart → purchase), by hour",
        "Category performance",
        "Conversion funnel (view → add_to_cart → purchase), by category",
        "Top products by revenue",
        "User segments",
        "Sessions",
        "Data quality per batch",
        "Data quality by hour",
        "Dead letters by rule code",
    ] {
        assert!(text.contains(title), "{title} missing:\n{text}");
    }
    let electronics = text
        .lines()
        .find(|l| l.starts_with("electronics") && l.contains("1075.00"))
        .unwrap_or_else(|| panic!("no electronics revenue line:\n{text}"));
    assert!(electronics.contains("415.00"), "{electronics}");
    let funnel_electronics = text
        .lines()
        .find(|l| l.starts_with("electronics") && l.contains("66.67%"))
        .unwrap_or_else(|| panic!("no electronics funnel line:\n{text}"));
    assert!(
        funnel_electronics.contains("150.00%"),
        "{funnel_electronics}"
    );
    assert!(!text.contains("(no rows)"), "{text}");

    // CSV: sections marked by "# <section>" lines, each parses as CSV.
    let out = report(&db, &["--format", "csv"]);
    let mut sections: Vec<(String, Vec<csv::StringRecord>)> = vec![];
    let mut body = String::new();
    let mut name = None;
    for line in out.lines().chain(std::iter::once("# end")) {
        if let Some(next) = line.strip_prefix("# ") {
            if let Some(n) = name.take() {
                let mut r = csv::Reader::from_reader(body.as_bytes());
                let header = r.headers().expect("header").clone();
                let mut rows = vec![header];
                rows.extend(r.records().map(|rec| rec.expect("record")));
                sections.push((n, rows));
                body.clear();
            }
            name = Some(next.to_string());
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "hourly",
            "funnel",
            "categories",
            "funnel_by_category",
            "top_products",
            "segments",
            "sessions",
            "quality",
            "quality_hourly",
            "dead_letters"
        ]
    );
    let cats = &sections[2].1;
    assert_eq!(&cats[0][0], "category");
    assert_eq!(&cats[0][5], "revenue");
    assert_eq!((&cats[1][0], &cats[1][5]), ("electronics", "1075"));
    assert_eq!((&cats[3][0], &cats[3][7]), ("unknown", "0"));
    let fbc = &sections[3].1;
    assert_eq!(&fbc[3][0], "unknown");
    assert_eq!(&fbc[3][5], "", "a NULL rate is an empty field");

    // A session's duration: seconds in CSV (as in JSON), h:mm:ss in the
    // table, each under a header that says which.
    let sessions = &sections[6].1;
    assert_eq!(&sessions[0][10], "duration_seconds");
    assert_eq!((&sessions[3][1], &sessions[3][10]), ("S1", "900"));
    let header = text
        .lines()
        .find(|l| l.starts_with("user_id") && l.contains("session_id"))
        .unwrap_or_else(|| panic!("no sessions header:\n{text}"));
    assert!(header.ends_with("duration (h:mm:ss)"), "{header}");
    assert!(!text.contains("duration_seconds"), "{text}");
    let s1 = text
        .lines()
        .find(|l| l.starts_with("U1 ") && l.contains(" S1 "))
        .unwrap_or_else(|| panic!("no S1 line:\n{text}"));
    assert!(s1.ends_with(" 0:15:00"), "{s1}");

    // One section, one row.
    let one = report(&db, &["--view", "funnel", "--limit", "1"]);
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 4, "title, header, dashes, one row:\n{one}");
    assert!(lines[0].starts_with("Conversion funnel"), "{one}");
    assert!(lines[0].contains("by hour"), "{one}");
    let cells: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "2026-01-10T11:00:00Z",
            "3",
            "1",
            "2",
            "33.33%",
            "200.00%",
            "66.67%"
        ],
        "{one}"
    );
}

#[tokio::test]
async fn views_exist_after_migrate_and_an_empty_report_says_no_rows() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let views = common::counts_by(
        &db,
        "SELECT viewname::text, count(*) FROM pg_views
          WHERE schemaname = 'public' AND viewname LIKE 'v\\_%' GROUP BY 1",
    )
    .await;
    let names: Vec<&str> = views.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "v_category_performance",
            "v_conversion_funnel_by_category",
            "v_conversion_funnel_hourly",
            "v_data_quality_dashboard",
            "v_data_quality_summary",
            "v_dead_letters_by_code",
            "v_hourly_event_summary",
            "v_top_products",
            "v_user_segment_analysis",
            "v_user_sessions",
        ]
    );
    // Every view is documented.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_views WHERE schemaname = 'public' AND viewname LIKE 'v\\_%'
                AND obj_description(format('%I', viewname)::regclass, 'pg_class') IS NOT NULL"
        )
        .await,
        10
    );

    let text = report(&db, &[]);
    assert_eq!(text.matches("(no rows)").count(), 10, "{text}");

    // The options also come from the environment.
    let out = run_ok(
        shopstream()
            .args(["report", "--database-url", &db.url])
            .env("SHOPSTREAM_REPORT_FORMAT", "json")
            .env("SHOPSTREAM_REPORT_VIEW", "quality,dead-letters"),
    );
    let j: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j, json!({"quality": [], "dead_letters": []}));
    let csv = report(&db, &["--format", "csv", "--view", "segments"]);
    assert_eq!(
        csv,
        "# segments\nuser_segment,users,sessions,events,purchases,revenue,revenue_per_user,purchases_per_user\n"
    );
}

#[test]
fn help_lists_the_view_names() {
    let help = run_ok(shopstream().args(["report", "--help"]));
    for name in [
        "hourly",
        "funnel",
        "categories",
        "funnel-by-category",
        "top-products",
        "segments",
        "sessions",
        "quality",
        "quality-hourly",
        "dead-letters",
        "SHOPSTREAM_REPORT_FORMAT",
        "SHOPSTREAM_REPORT_VIEW",
        "SHOPSTREAM_REPORT_LIMIT",
        "DATABASE_URL",
    ] {
        assert!(help.contains(name), "{name} missing:\n{help}");
    }
}

/// Every relation of the public schema with a checksum of its rows (views:
/// of their definition), and the schema version history.
async fn everything(db: &TestDb) -> Vec<String> {
    let c = db.client().await;
    let rels = c
        .query(
            "SELECT c.relname::text, c.relkind::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("relations");
    let mut out = vec![];
    for r in rels {
        let (name, kind): (String, String) = (r.get(0), r.get(1));
        let sum: String = match kind.as_str() {
            "r" => c
                .query_one(
                    &format!(
                        "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, ',' \
                         ORDER BY t::text)), '') FROM \"{name}\" t"
                    ),
                    &[],
                )
                .await
                .expect("checksum")
                .get(0),
            "v" => c
                .query_one("SELECT md5(pg_get_viewdef($1::text::regclass))", &[&name])
                .await
                .expect("view")
                .get(0),
            _ => String::new(),
        };
        out.push(format!("{name} {kind} {sum}"));
    }
    out
}

#[tokio::test]
async fn report_never_writes_and_refuses_a_database_without_the_schema() {
    // An empty database: refused with exit 2, naming the database; nothing
    // created (no tables, no migration history).
    let empty = test_db().await;
    assert_eq!(everything(&empty).await, Vec::<String>::new());
    let out = shopstream()
        .args(["report", "--database-url", &empty.url])
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&empty.name), "{stderr}");
    assert!(stderr.contains("no shopstream schema"), "{stderr}");
    assert!(stderr.contains("shopstream migrate"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        everything(&empty).await,
        Vec::<String>::new(),
        "the report created something"
    );

    // A loaded database: every table and view as it was, after the report
    // in each format.
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    load_dataset(&db, tmp.path()).await;
    let before = everything(&db).await;
    // The partitioned table (schema v9) holds its rows in its partitions,
    // each checked as a table of its own.
    assert!(before.iter().any(|r| r.starts_with("ecommerce_events p ")));
    let events: u64 = before
        .iter()
        .filter(|r| r.starts_with("ecommerce_events_"))
        .filter_map(|r| r.split(' ').nth(2)?.parse::<u64>().ok())
        .sum();
    assert_eq!(events, 14, "{before:?}");
    for format in ["table", "json", "csv"] {
        report(&db, &["--format", format, "--limit", "0"]);
    }
    assert_eq!(everything(&db).await, before);
}
