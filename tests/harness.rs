//! The test harness's own promises: the fingerprint that the exactly-once
//! tests compare sees every column that a load decides (NULLs included),
//! so two loads that differ anywhere never compare equal.

mod common;

use std::path::Path;

use common::{fingerprint, fingerprint_with, run_ok, shopstream, test_db, Copies};

const ROOT: &str = "/input";

/// One loaded event, one dead letter and one ledger row, as a load
/// into `ROOT` writes them.
const SEED: &str = "
INSERT INTO ecommerce_events (event_id, user_id, event_type, product_id, product_name, category,
    price, quantity, event_time, source_file, source_line, batch_id, source_layout)
VALUES ('00000000-0000-4000-8000-000000000001', 'u1', 'view', 'p1', 'Mug', NULL, 1.5, 1,
    '2026-01-01 00:00:00+00', '/input/a.csv', 2, 1, 'v1');
INSERT INTO dead_letter_events (batch_id, source_file, source_line, raw_line, event_id,
    error_codes, errors)
VALUES (1, '/input/a.csv', 3, 'x,y', NULL, '{invalid_price}',
    '[{\"code\": \"invalid_price\", \"column\": \"price\", \"value\": \"y\", \"message\": \"m\"}]');
INSERT INTO ingested_files (path, size_bytes, modified_at, content_hash, status, reason,
    duplicate_of, rows_read, rows_loaded, rows_duplicate, rows_rejected, batch_id, disposition)
VALUES ('/input/a.csv', 10, now(), 'h1', 'loaded', NULL, NULL, 2, 1, 0, 1, 1, 'kept');
INSERT INTO data_quality_metrics (batch_id, started_at, files, rows_read, rows_valid,
    rows_loaded, rows_duplicate, rows_rejected, late_arrivals, rejects_by_code)
VALUES (1, now(), 1, 2, 1, 1, 0, 1, 0, '{}');
";

#[tokio::test]
async fn the_fingerprint_sees_every_column_a_load_decides() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let c = db.client().await;
    let root = Path::new(ROOT);
    // Each change is one a wrong load could make; each must show.
    let changes = [
        // A value moved into the neighbouring empty column.
        "UPDATE ecommerce_events SET product_name = NULL, category = 'Mug'",
        "UPDATE ecommerce_events SET source_line = 3",
        "UPDATE ecommerce_events SET source_file = '/input/b.csv'",
        "UPDATE dead_letter_events SET event_id = ''",
        "UPDATE dead_letter_events SET source_line = 4",
        "UPDATE ingested_files SET disposition = 'archived'",
        "UPDATE ingested_files SET reason = 'why'",
        "UPDATE ingested_files SET duplicate_of = '/input/b.csv'",
        "UPDATE ingested_files SET rows_loaded = 0, rows_duplicate = 1",
    ];
    let mut unseen = vec![];
    for change in changes {
        c.batch_execute(
            "TRUNCATE ecommerce_events, dead_letter_events, ingested_files, data_quality_metrics",
        )
        .await
        .expect("truncate");
        c.batch_execute(SEED).await.expect("seed");
        let before = fingerprint(&c, root).await;
        // What legitimately differs between loads does not show.
        c.batch_execute(
            "UPDATE ecommerce_events SET batch_id = 7, ingested_at = now() + interval '1 hour';
             UPDATE dead_letter_events SET batch_id = 7, id = id + 100;
             UPDATE ingested_files SET batch_id = 7, id = id + 100,
                 modified_at = now() - interval '1 day';",
        )
        .await
        .expect("volatile columns");
        assert_eq!(fingerprint(&c, root).await, before, "volatile columns");
        c.batch_execute(change).await.expect(change);
        if fingerprint(&c, root).await == before {
            unseen.push(change);
        }
    }
    assert!(
        unseen.is_empty(),
        "changes the fingerprint misses: {unseen:#?}"
    );

    // Parallel loads may keep another copy of a repeated event, and count a
    // file's rows as duplicate that another load counted as loaded; every
    // other change still shows.
    for (change, shows) in [
        ("UPDATE ecommerce_events SET source_line = 3", false),
        (
            "UPDATE ingested_files SET rows_loaded = 0, rows_duplicate = 1",
            false,
        ),
        (
            "UPDATE ecommerce_events SET product_name = NULL, category = 'Mug'",
            true,
        ),
        ("UPDATE ingested_files SET disposition = 'archived'", true),
        (
            "UPDATE ingested_files SET rows_rejected = 0, rows_loaded = 2",
            true,
        ),
    ] {
        c.batch_execute(
            "TRUNCATE ecommerce_events, dead_letter_events, ingested_files, data_quality_metrics",
        )
        .await
        .expect("truncate");
        c.batch_execute(SEED).await.expect("seed");
        let before = fingerprint_with(&c, root, Copies::Any).await;
        c.batch_execute(change).await.expect(change);
        let after = fingerprint_with(&c, root, Copies::Any).await;
        assert_eq!(after != before, shows, "{change}");
    }
}

#[test]
fn a_held_port_refuses_connections_yet_a_server_can_take_it() {
    let held = common::HeldPort::new();
    let err = std::net::TcpStream::connect(held.addr()).expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // A child server binding with SO_REUSEADDR (as std, PostgreSQL and
    // Python's HTTP servers do) gets the port while it is held.
    let server = std::net::TcpListener::bind(held.addr()).expect("a server binds the held port");
    std::net::TcpStream::connect(held.addr()).expect("and is reached there");
    drop(server);
}
