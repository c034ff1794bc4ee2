//! `shopstream requeue` against a real PostgreSQL server and the real
//! binary: quarantined files picked by reason code or by path go back into
//! the input (a dry run moves nothing), the next `run --once` loads them,
//! and the ledger keeps both the rejection and the load.

mod common;

use std::path::Path;

use common::{count, counts_by, load_once, run_ok, shopstream, test_db, TestDb};
use serde_json::Value;

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn row(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012},u{n},view,p{n},1.50,2026-01-01 00:00:00")
}

fn write(path: &Path, header: &str, rows: impl Iterator<Item = String>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let text: Vec<String> = std::iter::once(header.to_string()).chain(rows).collect();
    std::fs::write(path, text.join("\n") + "\n").expect("write");
}

fn requeue(db: &TestDb, input: &Path, args: &[&str]) -> Value {
    let out = run_ok(
        shopstream()
            .args([
                "requeue",
                "--database-url",
                &db.url,
                "--format",
                "json",
                "--input",
            ])
            .arg(input)
            .args(args),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Each ledger row of `path` (oldest first): its status and whether it was
/// requeued.
async fn ledger(db: &TestDb, path: &Path) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT status || CASE WHEN requeued_at IS NULL THEN '' ELSE ' requeued' END
             FROM ingested_files WHERE path = $1 ORDER BY id",
            &[&path.display().to_string()],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_requeued_file_is_loaded_by_the_next_run_and_the_ledger_keeps_its_rejection() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let quarantine = input.join("_quarantine");
    // a.csv has a column v1 does not know; sub/b.csv is over 1000 bytes.
    write(
        &input.join("a.csv"),
        &format!("{HEADER},color"),
        (1..=3).map(|n| format!("{},red", row(n))),
    );
    write(&input.join("sub/b.csv"), HEADER, (10..40).map(row));
    let strict = ["--unknown-columns", "reject", "--max-file-bytes", "1000"];
    load_once(&db, &input, &strict);
    assert!(quarantine.join("a.csv.reason.txt").exists());
    assert!(quarantine.join("sub/b.csv.reason.txt").exists());

    // A dry run lists what would move, and moves nothing.
    let dry = requeue(&db, &input, &["--code", "unknown_columns", "--dry-run"]);
    let files = dry["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{dry}");
    assert_eq!(files[0]["code"], "unknown_columns");
    assert_eq!(files[0]["to"], input.join("a.csv").display().to_string());
    assert!(quarantine.join("a.csv").exists() && !input.join("a.csv").exists());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE requeued_at IS NOT NULL"
        )
        .await,
        0
    );

    // Requeued, but still refused by the settings: rejected again, and
    // quarantined again.
    requeue(&db, &input, &["--code", "unknown_columns"]);
    assert!(input.join("a.csv").exists());
    assert!(!quarantine.join("a.csv").exists());
    assert!(
        !quarantine.join("a.csv.reason.txt").exists(),
        "sidecar removed"
    );
    load_once(&db, &input, &strict);
    assert!(quarantine.join("a.csv.reason.txt").exists());
    assert_eq!(
        ledger(&db, &input.join("a.csv")).await,
        ["rejected requeued", "rejected"]
    );

    // Requeued again (by path), and a new sub/b.csv arrived meanwhile: the
    // quarantined one goes back beside it.
    requeue(&db, &input, &["--code", "unknown_columns"]);
    write(&input.join("sub/b.csv"), HEADER, (100..103).map(row));
    let moved = requeue(
        &db,
        &input,
        &[quarantine.join("sub/b.csv").to_str().expect("utf-8")],
    );
    assert_eq!(
        moved["files"][0]["to"],
        input.join("sub/b.1.csv").display().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(input.join("sub/b.csv")).expect("new b.csv"),
        format!("{HEADER}\n{}\n{}\n{}\n", row(100), row(101), row(102))
    );

    load_once(&db, &input, &[]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        3 + 30 + 3
    );
    assert_eq!(
        ledger(&db, &input.join("a.csv")).await,
        ["rejected requeued", "rejected requeued", "loaded"]
    );
    assert_eq!(
        ledger(&db, &input.join("sub/b.csv")).await,
        ["rejected requeued", "loaded"]
    );
    assert_eq!(ledger(&db, &input.join("sub/b.1.csv")).await, ["loaded"]);
    let to = counts_by(
        &db,
        "SELECT requeued_to, count(*) FROM ingested_files WHERE requeued_to IS NOT NULL
         GROUP BY 1",
    )
    .await;
    assert_eq!(
        to.keys().cloned().collect::<Vec<_>>(),
        [
            input.join("a.csv").display().to_string(),
            input.join("sub/b.1.csv").display().to_string()
        ]
    );
    // Loaded now, the files stay loaded.
    load_once(&db, &input, &[]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        36
    );
}

#[tokio::test]
async fn requeue_refuses_what_it_cannot_do() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let stray = tmp.path().join("in/_quarantine/stray.csv");
    write(&stray, HEADER, (1..2).map(row));
    let out = shopstream()
        .args(["requeue", "--database-url", &db.url, "--input"])
        .arg(tmp.path().join("in"))
        .arg(&stray)
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a file the ledger knows as quarantined"),
        "{err}"
    );
    assert!(stray.exists());
    let out = shopstream()
        .args(["requeue", "--code", "other", "--input", "s3://bucket/in/"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("folder input only"),
        "{out:?}"
    );
}

/// A file no layout matched is quarantined; once its layout is declared
/// (`--layouts`), `requeue --code unknown_layout` and the next run load it
/// with the declared layout's delimiter, decimal comma, time format and zone.
#[tokio::test]
async fn a_file_no_layout_matched_loads_once_its_layout_is_declared_and_it_is_requeued() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let quarantine = input.join("_quarantine");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(
        input.join("shop.csv"),
        "Nr;Kunde;Aktion;Artikel;Preis;Zeit\n\
         00000000-0000-4000-8000-000000000001;K1;purchase;A1;12,50;03/01/2026 14:30\n\
         00000000-0000-4000-8000-000000000002;K2;purchase;A2;7,25;04/07/2025 09:05\n",
    )
    .expect("write");
    load_once(&db, &input, &[]);
    assert!(quarantine.join("shop.csv.reason.txt").exists());
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 0);

    let layouts = tmp.path().join("shop.toml");
    let columns = [
        ("Nr", "event_id"),
        ("Kunde", "user_id"),
        ("Aktion", "event_type"),
        ("Artikel", "product_id"),
        ("Preis", "price"),
        ("Zeit", "event_time"),
    ]
    .map(|(name, to)| format!("[[column]]\nname = \"{name}\"\nto = \"{to}\"\n"))
    .join("\n");
    std::fs::write(
        &layouts,
        format!(
            "name = \"shop\"\ndelimiter = \";\"\ndecimal = \",\"\n\
             time_format = \"%d/%m/%Y %H:%M\"\ntime_zone = \"Europe/Berlin\"\n\n{columns}"
        ),
    )
    .expect("write layouts");
    let moved = requeue(&db, &input, &["--code", "unknown_layout"]);
    assert_eq!(moved["files"].as_array().map(Vec::len), Some(1), "{moved}");
    let layouts = layouts.to_str().expect("utf-8");
    load_once(&db, &input, &["--layouts", layouts]);

    let rows = db
        .client()
        .await
        .query(
            "SELECT price::float8, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    source_layout
             FROM ecommerce_events ORDER BY user_id",
            &[],
        )
        .await
        .expect("events");
    let got: Vec<(f64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (12.5, "2026-01-03 13:30".to_string(), "shop".to_string()),
            (7.25, "2025-07-04 07:05".to_string(), "shop".to_string()),
        ]
    );
    assert_eq!(
        ledger(&db, &input.join("shop.csv")).await,
        ["rejected requeued", "loaded"]
    );
}
