//! Every layout shopstream reads — its own versions v1–v3 and the five seed
//! systems' — loaded end to end from files written the way those systems
//! write them, against a real PostgreSQL server and the real binary.

mod common;

use std::path::Path;

use common::{count, generate, load_once, test_db, TestDb};
use futures_util::SinkExt;
use shopstream::event::Field;
use shopstream::schema::{LayoutId, Target};
use tokio_postgres::Row;

const SEED000: &str = "event_id,user_id,product_id,product_name,product_category,event_type,price,event_timestamp
6c2a1b0e-33a5-4f7e-8d1a-0b9e5c4d3a21,USER_000001,PROD_000012,Garden Hose,Home & Garden,view,,2026-01-02 03:04:05
7d3b2c1f-44b6-4a8f-9e2b-1caf6d5e4b32,USER_000002,PROD_000003,Wireless Headphones,Electronics,purchase,89.90,2026-01-02 03:04:06
";

const SEED001: &str = "event_id,user_id,event_type,product_id,product_name,price,event_timestamp
0a1b2c3d-0000-4000-8000-000000000001,17,view,42,lamp,37,2024-05-06T07:08:09
0a1b2c3d-0000-4000-8000-000000000002,18,purchase,43,chair,12,1999-12-31T23:59:59
";

// Two genuinely identical purchases in one file: both must load.
const SEED002: &str = "user_id,action,product,timestamp
1001,view,laptop,2026-01-03 10:00:00
1002,purchase,mouse,2026-01-03 10:00:01
1002,purchase,mouse,2026-01-03 10:00:01
";

// pandas wrote user_id as floats because one event is anonymous.
const SEED003: &str = "event_id,user_id,session_id,event_type,product_id,category,price,quantity,user_segment,search_query,event_time,source_system
1b2c3d4e-0000-4000-8000-000000000001,512.0,512-984000,add_to_cart,233,home_garden,49.5,2,returning,,2026-01-04T05:06:07.123456+00:00,web
1b2c3d4e-0000-4000-8000-000000000002,,guest-984000-48213,search,17,electronics,0.0,0,anonymous,laptop,2026-01-04T05:06:08.000001+00:00,web
1b2c3d4e-0000-4000-8000-000000000003,77.0,77-984000,view,401,books,0.0,0,new,,2026-01-04T07:06:09.5+02:00,web
";

const SEED004: &str = "event_id,event_time,event_type,product_id,price,user_id,session_id
2c3d4e5f-0000-4000-8000-000000000001,2026-01-05 11:12:13,view,150,123.45,4321,9a8b7c6d-0000-4000-8000-00000000aaaa
2c3d4e5f-0000-4000-8000-000000000002,2026-01-05 11:12:14,purchase,151,10.00,4322,9a8b7c6d-0000-4000-8000-00000000bbbb
";

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time
3d4e5f60-0000-4000-8000-000000000001,U000001,purchase,P00001,5.00,2026-01-06T00:00:00Z
";

const V2: &str = "event_id,user_id,session_id,event_type,product_id,product_name,category,price,quantity,user_segment,search_query,event_time
3d4e5f60-0000-4000-8000-000000000002,U000002,s-1,add_to_cart,P00002,Desk,Home & Garden,7.25,3,Premium,,2026-01-06T00:00:01Z
";

const V3: &str = "event_id,user_id,session_id,event_type,product_id,product_name,category,price,quantity,user_segment,search_query,event_time,device_type,browser,geo_country,geo_city,referrer,campaign_id
3d4e5f60-0000-4000-8000-000000000003,,s-2,search,P00003,,,,,,blue shoes,2026-01-06T00:00:02Z,Mobile,firefox,DE,Berlin,google,
";

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("write fixture");
}

async fn event(db: &TestDb, id: &str) -> Row {
    db.client()
        .await
        .query_one(
            "SELECT source_layout, user_id, session_id, event_type, product_id, product_name,
                    category, price::text, quantity, user_segment, search_query,
                    to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
                    device_type, extra::text, total_amount::text
             FROM ecommerce_events WHERE event_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap_or_else(|e| panic!("event {id}: {e}"))
}

fn opt(r: &Row, i: usize) -> Option<String> {
    r.get(i)
}

#[tokio::test]
async fn one_folder_of_every_layout_loads_in_one_run_with_canonical_values() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    for (name, body) in [
        ("seed000.csv", SEED000),
        ("seed001.csv", SEED001),
        ("seed002.csv", SEED002),
        ("seed003.csv", SEED003),
        ("seed004.csv", SEED004),
        ("v1.csv", V1),
        ("v2.csv", V2),
        ("v3.csv", V3),
    ] {
        write(dir, name, body);
    }
    write(
        dir,
        "seed004_bad.csv",
        "event_id,event_time,event_type,product_id,price,user_id,session_id\n\
         2c3d4e5f-0000-4000-8000-000000000009,2026-01-05 11:12:15,click,150,1.00,4321,s\n",
    );
    write(
        dir,
        "unknown.csv",
        "event_id,user,event_type,product_id,price,event_time,colour\n1,2,3,4,5,6,7\n",
    );
    load_once(&db, dir, &[]);

    // Every file is in the ledger with its detected layout; rows all loaded.
    let c = db.client().await;
    let ledger = c
        .query(
            "SELECT regexp_replace(path, '^.*/', ''), status, layout, rows_read, rows_loaded, reason
             FROM ingested_files ORDER BY path",
            &[],
        )
        .await
        .expect("ledger");
    let by_name: Vec<(String, String, Option<String>, i64, i64)> = ledger
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let expect = |name: &str, layout: &str, rows: i64| {
        (
            name.to_string(),
            "loaded".to_string(),
            Some(layout.to_string()),
            rows,
            rows,
        )
    };
    assert_eq!(
        by_name,
        [
            expect("seed000.csv", "seed000", 2),
            expect("seed001.csv", "seed001", 2),
            expect("seed002.csv", "seed002", 3),
            expect("seed003.csv", "seed003", 3),
            expect("seed004.csv", "seed004", 2),
            (
                "seed004_bad.csv".into(),
                "loaded".into(),
                Some("seed004".into()),
                1,
                0
            ),
            ("unknown.csv".into(), "rejected".into(), None, 0, 0),
            expect("v1.csv", "v1", 1),
            expect("v2.csv", "v2", 1),
            expect("v3.csv", "v3", 1),
        ]
    );
    let reason: String = ledger[6].get(5);
    assert_eq!(
        reason,
        "the header matches no known layout; the closest is v1 (shopstream v1: the six core columns of an event), which lacks user_id; columns it does not know: user, colour (see `shopstream schema show v1`)"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        15
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events WHERE source_layout = 'seed004' AND error_codes = '{invalid_event_type}'").await,
        1,
        "a dead letter names its layout"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events e JOIN ingested_files f ON f.path = e.source_file WHERE e.source_layout IS DISTINCT FROM f.layout").await,
        0,
        "every row carries its file's layout"
    );

    // seed 000: USER_ ids kept, empty view price is NULL, Title Case category.
    let r = event(&db, "6c2a1b0e-33a5-4f7e-8d1a-0b9e5c4d3a21").await;
    assert_eq!(r.get::<_, String>(0), "seed000");
    assert_eq!(opt(&r, 1).as_deref(), Some("USER_000001"));
    assert_eq!(opt(&r, 6).as_deref(), Some("home_garden"));
    assert_eq!(opt(&r, 7), None, "empty price on a view is NULL");
    assert_eq!(r.get::<_, i32>(8), 0);
    assert_eq!(r.get::<_, String>(11), "2026-01-02 03:04:05.000000");
    let r = event(&db, "7d3b2c1f-44b6-4a8f-9e2b-1caf6d5e4b32").await;
    assert_eq!(opt(&r, 7).as_deref(), Some("89.90"));
    assert_eq!(
        r.get::<_, i32>(8),
        1,
        "no quantity column: a purchase counts 1"
    );
    assert_eq!(r.get::<_, String>(14), "89.90");
    assert_eq!(opt(&r, 5).as_deref(), Some("Wireless Headphones"));

    // seed 001: ISO time with T and no zone is UTC; a view keeps its price.
    let r = event(&db, "0a1b2c3d-0000-4000-8000-000000000001").await;
    assert_eq!(r.get::<_, String>(11), "2024-05-06 07:08:09.000000");
    assert_eq!(opt(&r, 7).as_deref(), Some("37.00"));
    assert_eq!(opt(&r, 4).as_deref(), Some("42"));
    assert_eq!(opt(&r, 5).as_deref(), Some("lamp"));
    assert_eq!(opt(&r, 6), None);

    // seed 002: derived ids, product is id and name, NULL price purchases,
    // both identical purchases loaded.
    let rows = c
        .query(
            "SELECT event_id::text, user_id, event_type, product_id, product_name, price::text,
                    quantity, total_amount::text
             FROM ecommerce_events WHERE source_layout = 'seed002' ORDER BY source_line",
            &[],
        )
        .await
        .expect("seed002");
    assert_eq!(rows.len(), 3);
    let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert!(
        ids.iter().all(|id| id.as_bytes()[14] == b'5'),
        "UUIDv5: {ids:?}"
    );
    assert_ne!(ids[1], ids[2], "identical rows get distinct ids");
    assert_eq!(rows[1].get::<_, String>(2), "purchase");
    assert_eq!(rows[1].get::<_, String>(3), "mouse");
    assert_eq!(
        rows[1].get::<_, Option<String>>(4).as_deref(),
        Some("mouse")
    );
    assert_eq!(
        rows[1].get::<_, Option<String>>(5),
        None,
        "no price column: NULL"
    );
    assert_eq!(rows[1].get::<_, i32>(6), 1);
    assert_eq!(rows[1].get::<_, String>(7), "0.00");
    assert_eq!(rows[0].get::<_, Option<String>>(1).as_deref(), Some("1001"));

    // seed 003: 512.0 → 512, anonymous search, 0.0 prices, +00:00 micros,
    // empty search_query NULL, source_system kept in extra.
    let r = event(&db, "1b2c3d4e-0000-4000-8000-000000000001").await;
    assert_eq!(opt(&r, 1).as_deref(), Some("512"));
    assert_eq!(opt(&r, 7).as_deref(), Some("49.50"));
    assert_eq!(r.get::<_, i32>(8), 2);
    assert_eq!(r.get::<_, String>(14), "99.00");
    assert_eq!(opt(&r, 10), None, "empty search_query is NULL, not ''");
    assert_eq!(r.get::<_, String>(11), "2026-01-04 05:06:07.123456");
    assert_eq!(opt(&r, 13).as_deref(), Some(r#"{"source_system": "web"}"#));
    let r = event(&db, "1b2c3d4e-0000-4000-8000-000000000002").await;
    assert_eq!(opt(&r, 1), None, "anonymous");
    assert_eq!(opt(&r, 2).as_deref(), Some("guest-984000-48213"));
    assert_eq!(opt(&r, 9).as_deref(), Some("anonymous"));
    assert_eq!(opt(&r, 10).as_deref(), Some("laptop"));
    assert_eq!(opt(&r, 7).as_deref(), Some("0.00"));
    let r = event(&db, "1b2c3d4e-0000-4000-8000-000000000003").await;
    assert_eq!(opt(&r, 1).as_deref(), Some("77"));
    assert_eq!(
        r.get::<_, String>(11),
        "2026-01-04 05:06:09.500000",
        "+02:00 applied"
    );

    // seed 004: naive time read as UTC, price on a view, session per event.
    let r = event(&db, "2c3d4e5f-0000-4000-8000-000000000001").await;
    assert_eq!(r.get::<_, String>(11), "2026-01-05 11:12:13.000000");
    assert_eq!(opt(&r, 7).as_deref(), Some("123.45"));
    assert_eq!(
        opt(&r, 2).as_deref(),
        Some("9a8b7c6d-0000-4000-8000-00000000aaaa")
    );
    assert_eq!(opt(&r, 1).as_deref(), Some("4321"));

    // Own versions: v1 fills quantity, v2 normalises category and segment,
    // v3 lower-cases the device and leaves empty optionals NULL.
    let r = event(&db, "3d4e5f60-0000-4000-8000-000000000001").await;
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, i32>(8)),
        ("v1".into(), 1)
    );
    let r = event(&db, "3d4e5f60-0000-4000-8000-000000000002").await;
    assert_eq!(opt(&r, 6).as_deref(), Some("home_garden"));
    assert_eq!(opt(&r, 9).as_deref(), Some("premium"));
    assert_eq!(r.get::<_, String>(14), "21.75");
    let r = event(&db, "3d4e5f60-0000-4000-8000-000000000003").await;
    assert_eq!(opt(&r, 12).as_deref(), Some("mobile"));
    assert_eq!(
        (opt(&r, 1), opt(&r, 5), opt(&r, 6), opt(&r, 7)),
        (None, None, None, None)
    );
    assert_eq!(opt(&r, 13), None, "no extra columns, no extra");
}

#[tokio::test]
async fn resending_a_seed002_file_adds_nothing_even_reordered() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    write(dir, "a.csv", SEED002);
    load_once(&db, dir, &[]);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);

    // The same file again under another name: a duplicate file.
    write(dir, "b.csv", SEED002);
    // The same rows in another order with CRLF endings, plus one new row:
    // only the new row loads, the rest count as duplicate rows.
    let mut lines: Vec<&str> = SEED002.lines().collect();
    lines[1..].reverse();
    lines.push("1003,view,keyboard,2026-01-03 10:00:02");
    write(dir, "c.csv", &(lines.join("\r\n") + "\r\n"));
    load_once(&db, dir, &[]);

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT regexp_replace(path, '^.*/', ''), status, rows_read, rows_loaded, rows_duplicate
             FROM ingested_files ORDER BY path",
            &[],
        )
        .await
        .expect("ledger");
    let got: Vec<(String, String, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        got,
        [
            ("a.csv".into(), "loaded".into(), 3, 3, 0),
            ("b.csv".into(), "duplicate".into(), 3, 0, 3),
            ("c.csv".into(), "loaded".into(), 4, 1, 3),
        ]
    );
}

#[tokio::test]
async fn unknown_columns_are_kept_dropped_or_reject_the_file() {
    let body = "event_id,user_id,event_type,product_id,price,event_time,Colour,quantity\n\
        4e5f6071-0000-4000-8000-000000000001,U1,purchase,P1,2.50,2026-01-07T00:00:00Z,red,4\n";
    for (policy, extra, status) in [
        ("keep", Some(r#"{"Colour": "red"}"#), "loaded"),
        ("drop", None, "loaded"),
        ("reject", None, "rejected"),
    ] {
        let db = test_db().await;
        let tmp = tempfile::tempdir().expect("tmp");
        write(tmp.path(), "x.csv", body);
        load_once(&db, tmp.path(), &["--unknown-columns", policy]);
        let c = db.client().await;
        let f = c
            .query_one(
                "SELECT status, layout, unknown_columns, reason FROM ingested_files",
                &[],
            )
            .await
            .expect("ledger");
        assert_eq!(f.get::<_, String>(0), status, "{policy}");
        if status == "rejected" {
            assert_eq!(
                f.get::<_, Option<String>>(3).as_deref(),
                Some("the header has column(s) layout v1 does not know: Colour (--unknown-columns reject)")
            );
            continue;
        }
        assert_eq!(f.get::<_, Option<String>>(1).as_deref(), Some("v1"));
        assert_eq!(
            f.get::<_, Option<Vec<String>>>(2),
            Some(vec!["Colour".to_string()])
        );
        let e = c
            .query_one(
                "SELECT extra::text, quantity, total_amount::text FROM ecommerce_events",
                &[],
            )
            .await
            .expect("event");
        assert_eq!(e.get::<_, Option<String>>(0).as_deref(), extra, "{policy}");
        assert_eq!(
            e.get::<_, i32>(1),
            4,
            "a canonical column next to v1 is read"
        );
        assert_eq!(e.get::<_, String>(2), "10.00");
    }
}

/// The SQL, over a joined `csv` row `c` and its `ecommerce_events` row `e`,
/// that is true when the stored canonical value is what the registry says
/// the file's value becomes. PostgreSQL's own CSV reader and casts are the
/// oracle here, independent of shopstream's parsers.
fn expected_sql(layout: LayoutId) -> String {
    let spec = layout.spec();
    let id = |x: &str| format!("NULLIF(regexp_replace(trim({x}), '^(-?[0-9]+)\\.0+$', '\\1'), '')");
    let txt = |x: &str| format!("NULLIF(trim({x}), '')");
    let mut checks = vec![];
    for f in Field::ALL {
        let e = format!("e.{}", f.name());
        let Some(col) = spec.column_for(f) else {
            checks.push(match f {
                Field::EventId => "true".to_string(),
                Field::Quantity => "e.quantity = CASE WHEN e.event_type IN ('purchase','add_to_cart','remove_from_cart') THEN 1 ELSE 0 END".to_string(),
                _ => format!("{e} IS NULL"),
            });
            continue;
        };
        let c = format!("c.\"{}\"", col.name);
        checks.push(match f {
            Field::EventId => format!("{e}::text = lower(trim({c}))"),
            Field::UserId | Field::ProductId => format!("{e} IS NOT DISTINCT FROM {}", id(&c)),
            Field::EventType => format!("{e} = lower(trim({c}))"),
            Field::Category => format!(
                "{e} IS NOT DISTINCT FROM NULLIF(lower(trim(both '_' from regexp_replace({c}, '[^[:alnum:]]+', '_', 'g'))), '')"
            ),
            Field::Price => format!("{e} IS NOT DISTINCT FROM {}::numeric", txt(&c)),
            Field::Quantity => format!(
                "{e} = COALESCE({}::int, CASE WHEN e.event_type IN ('purchase','add_to_cart','remove_from_cart') THEN 1 ELSE 0 END)",
                txt(&c)
            ),
            Field::EventTime => format!("{e} = trim({c})::timestamptz"),
            Field::UserSegment | Field::DeviceType => {
                format!("{e} IS NOT DISTINCT FROM lower({})", txt(&c))
            }
            _ => format!("{e} IS NOT DISTINCT FROM {}", txt(&c)),
        });
    }
    for col in spec.columns {
        if col.target == Target::Extra {
            checks.push(format!(
                "e.extra ->> '{}' IS NOT DISTINCT FROM {}",
                col.name,
                txt(&format!("c.\"{}\"", col.name))
            ));
        }
    }
    checks.push(format!("e.source_layout = '{layout}'"));
    checks.join("\n AND ")
}

/// How a `csv` row finds its event: by event_id, or for layouts without
/// one by all of its values.
fn join_sql(layout: LayoutId) -> String {
    if layout.spec().column_for(Field::EventId).is_some() {
        return "e.event_id::text = lower(trim(c.event_id))".to_string();
    }
    "e.source_layout = 'seed002' AND e.user_id IS NOT DISTINCT FROM NULLIF(trim(c.user_id), '')
     AND e.event_type = lower(trim(c.action)) AND e.product_id = trim(c.product)
     AND to_char(e.event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') = trim(c.timestamp)"
        .to_string()
}

/// Copies every CSV file of `dir` into a temporary table `csv` whose text
/// columns are named like the layout's header.
async fn import_csv(c: &tokio_postgres::Client, dir: &Path, layout: LayoutId) {
    let cols: Vec<String> = layout
        .spec()
        .columns
        .iter()
        .map(|col| format!("\"{}\" text", col.name))
        .collect();
    c.batch_execute(&format!(
        "SET TimeZone = 'UTC'; CREATE TEMP TABLE csv ({})",
        cols.join(", ")
    ))
    .await
    .expect("csv table");
    let names: Vec<String> = layout
        .spec()
        .columns
        .iter()
        .map(|col| format!("\"{}\"", col.name))
        .collect();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("csv") {
            continue;
        }
        let body = std::fs::read(&path).expect("read csv");
        let sink = c
            .copy_in(&format!(
                "COPY csv ({}) FROM STDIN (FORMAT csv, HEADER match)",
                names.join(", ")
            ))
            .await
            .expect("copy");
        let mut sink = std::pin::pin!(sink);
        sink.send(bytes::Bytes::from(body)).await.expect("send");
        sink.as_mut().finish().await.expect("finish");
    }
}

#[tokio::test]
async fn every_generated_layout_loads_exactly_with_canonical_values() {
    for layout in LayoutId::ALL {
        let db = test_db().await;
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join(layout.as_str());
        let rep = generate(
            &dir,
            4,
            300,
            11,
            &["--layout", layout.as_str(), "--duplicate-share", "0.03"],
        );
        load_once(&db, &dir, &[]);

        // Exactly the generator's report.
        let n = |k: &str| rep[k].as_u64().unwrap_or_else(|| panic!("{k}")) as i64;
        assert_eq!(
            count(&db, "SELECT count(*) FROM ecommerce_events").await,
            n("loaded"),
            "{layout}"
        );
        assert_eq!(
            count(&db, "SELECT sum(rows_duplicate)::int8 FROM ingested_files").await,
            n("duplicates"),
            "{layout}"
        );
        assert_eq!(
            count(&db, "SELECT sum(rows_read)::int8 FROM ingested_files").await,
            n("rows"),
            "{layout}"
        );
        assert_eq!(
            count(&db, &format!("SELECT count(*) FROM ingested_files WHERE layout = '{layout}' AND status = 'loaded'")).await,
            4,
            "{layout}"
        );

        // Every stored event equals what its CSV row says, canonicalised.
        let c = db.client().await;
        import_csv(&c, &dir, layout).await;
        let sql = format!(
            "SELECT count(DISTINCT e.event_id),
                    count(DISTINCT e.event_id) FILTER (WHERE {expected})
             FROM ecommerce_events e JOIN csv c ON {join}",
            expected = expected_sql(layout),
            join = join_sql(layout)
        );
        let row = c
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{layout}: {e}\n{sql}"));
        let (matched, equal): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            matched,
            n("loaded"),
            "{layout}: every event has its CSV row"
        );
        assert_eq!(equal, matched, "{layout}: canonical values differ\n{sql}");

        // The layout's quirks really were in the files.
        let quirk = match layout {
            LayoutId::Seed000 => Some("SELECT count(*) FROM csv WHERE user_id LIKE 'USER\\_%' AND event_type = 'view' AND price IS NULL"),
            LayoutId::Seed001 => Some("SELECT count(*) FROM csv WHERE event_timestamp LIKE '%T%' AND event_type = 'view' AND price <> ''"),
            LayoutId::Seed003 => Some("SELECT count(*) FROM csv WHERE user_id LIKE '%.0' AND event_time LIKE '%+00:00'"),
            LayoutId::Seed004 => Some("SELECT count(*) FROM csv WHERE event_type = 'view' AND price <> ''"),
            _ => None,
        };
        if let Some(q) = quirk {
            let n: i64 = c.query_one(q, &[]).await.expect(q).get(0);
            assert!(n > 0, "{layout}: {q}");
        }
        if layout == LayoutId::Seed003 {
            assert!(
                count(&db, "SELECT count(*) FROM ecommerce_events WHERE user_id IS NULL AND session_id LIKE 'guest-%' AND user_segment = 'anonymous'").await > 0,
                "anonymous users"
            );
        }
    }
}
