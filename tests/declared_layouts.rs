//! Declared layouts (`--layouts`): a shop's own export — other column
//! names, `;` between fields, decimal commas, `dd.mm.yyyy HH:MM` times in
//! Europe/Berlin — loaded end to end with a TOML layout, against a real
//! PostgreSQL server and the real binary; wrong layouts refused at start;
//! `schema list|show|init`; derived ids; `dead-letters replay`.

mod common;

use std::path::{Path, PathBuf};

use common::{count, load_once, run_ok, shopstream, test_db, TestDb};
use serde_json::Value;

/// Shop X's export layout: every key a declared layout has.
const SHOPX: &str = r#"name = "shopx"
description = "Shop X nightly export"
delimiter = ";"
quote = '"'
decimal = ","
time_format = "%d.%m.%Y %H:%M"
time_zone = "Europe/Berlin"

[defaults]
user_segment = "b2b"

[[column]]
name = "Bestellnr"
to = "event_id"

[[column]]
name = "Kunde"
aliases = ["Kundennummer"]
to = "user_id"

[[column]]
name = "Aktion"
to = "event_type"

[[column]]
name = "Artikel"
to = "product_id"

[[column]]
name = "Preis"
to = "price"

[[column]]
name = "Menge"
to = "quantity"
optional = true

[[column]]
name = "Zeit"
to = "event_time"

[[column]]
name = "Filiale"
to = "extra"

[[column]]
name = "Exportlauf"
to = "drop"
"#;

/// Four rows: two load, one has a price with a thousands dot (not a
/// decimal), one an ISO time (not the layout's format).
const EXPORT: &str = "Bestellnr;Kundennummer;Aktion;Artikel;Preis;Menge;Zeit;Filiale;Exportlauf
5e6f7081-0000-4000-8000-000000000001;K-17;purchase;A-100;12,50;2;03.01.2026 14:30;Berlin;run 7
5e6f7081-0000-4000-8000-000000000002;K-18;view;A-101;;;01.07.2025 09:05;\"Köln; Nord\";run 7
5e6f7081-0000-4000-8000-000000000003;K-19;add_to_cart;A-102;1.234,50;1;03.01.2026 14:31;Berlin;run 7
5e6f7081-0000-4000-8000-000000000004;K-20;view;A-103;1,00;;2026-01-03 14:32:00;Berlin;run 7
";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write fixture");
    p
}

/// (status, layout, rows_read, rows_loaded, rows_rejected, reason) of
/// every ledger row, by file name.
async fn ledger(
    db: &TestDb,
) -> Vec<(
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
)> {
    db.client()
        .await
        .query(
            "SELECT regexp_replace(path, '^.*/', ''), status, layout, rows_read, rows_loaded,
                    rows_rejected, reason
             FROM ingested_files ORDER BY path",
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_shop_export_with_its_own_names_semicolons_decimal_commas_and_berlin_times_loads() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let layouts = tmp.path().join("layouts");
    write(&layouts, "shopx.toml", SHOPX);
    let input = tmp.path().join("in");
    write(&input, "export.csv", EXPORT);
    // A folder of layouts; a v1 file in the same input still loads.
    write(
        &input,
        "v1.csv",
        "event_id,user_id,event_type,product_id,price,event_time\n\
         5e6f7081-0000-4000-8000-0000000000a1,U1,purchase,P1,3.00,2026-01-03T00:00:00Z\n",
    );
    load_once(
        &db,
        &input,
        &["--layouts", layouts.to_str().expect("utf-8")],
    );

    let files = ledger(&db).await;
    assert_eq!(files.len(), 2);
    let (_, status, layout, read, loaded, rejected, _) = &files[0];
    assert_eq!(
        (
            status.as_str(),
            layout.as_deref(),
            *read,
            *loaded,
            *rejected
        ),
        ("loaded", Some("shopx"), 4, 2, 2)
    );
    assert_eq!((files[1].2.as_deref(), files[1].4), (Some("v1"), 1));

    let c = db.client().await;
    let r = c
        .query_one(
            "SELECT source_layout, user_id, event_type, product_id, price::float8, quantity,
                    total_amount::text, user_segment,
                    to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), extra::text
             FROM ecommerce_events WHERE event_id = '5e6f7081-0000-4000-8000-000000000001'",
            &[],
        )
        .await
        .expect("the purchase");
    assert_eq!(r.get::<_, String>(0), "shopx");
    assert_eq!(
        r.get::<_, Option<String>>(1).as_deref(),
        Some("K-17"),
        "an alias"
    );
    assert_eq!(r.get::<_, String>(2), "purchase");
    assert_eq!(r.get::<_, String>(3), "A-100");
    assert_eq!(r.get::<_, f64>(4), 12.5, "12,50 with a decimal comma");
    assert_eq!(r.get::<_, i32>(5), 2);
    assert_eq!(r.get::<_, String>(6), "25.00");
    assert_eq!(
        r.get::<_, Option<String>>(7).as_deref(),
        Some("b2b"),
        "a default"
    );
    assert_eq!(
        r.get::<_, String>(8),
        "2026-01-03 13:30:00",
        "14:30 in Berlin in winter (+01:00)"
    );
    assert_eq!(
        r.get::<_, Option<String>>(9).as_deref(),
        Some(r#"{"Filiale": "Berlin"}"#),
        "Filiale kept, Exportlauf dropped"
    );
    let r = c
        .query_one(
            "SELECT price::text, quantity, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                    extra->>'Filiale'
             FROM ecommerce_events WHERE event_id = '5e6f7081-0000-4000-8000-000000000002'",
            &[],
        )
        .await
        .expect("the view");
    assert_eq!(r.get::<_, Option<String>>(0), None);
    assert_eq!(r.get::<_, i32>(1), 0);
    assert_eq!(r.get::<_, String>(2), "2025-07-01 07:05", "summer (+02:00)");
    assert_eq!(
        r.get::<_, Option<String>>(3).as_deref(),
        Some("Köln; Nord"),
        "quoted ;"
    );

    let dead = c
        .query(
            "SELECT source_line, error_codes::text[], source_layout, raw_line
             FROM dead_letter_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("dead letters");
    let got: Vec<(i64, Vec<String>, Option<String>)> = dead
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let shopx = Some("shopx".to_string());
    assert_eq!(
        got,
        [
            (4, vec!["invalid_price".to_string()], shopx.clone()),
            (5, vec!["invalid_event_time".to_string()], shopx),
        ]
    );
    let raw: String = dead[0].get(3);
    assert!(
        raw.starts_with("5e6f7081-0000-4000-8000-000000000003;K-19;"),
        "{raw}"
    );
    let header: Vec<String> = c
        .query_one(
            "SELECT header FROM ingested_files WHERE layout = 'shopx'",
            &[],
        )
        .await
        .expect("header")
        .get(0);
    assert_eq!(header[0], "Bestellnr");
    assert_eq!(header.len(), 9, "recorded as split by ;");
}

#[tokio::test]
async fn without_its_layout_the_export_is_rejected_as_no_layout_matches() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    write(tmp.path(), "export.csv", EXPORT);
    load_once(&db, tmp.path(), &[]);
    let files = ledger(&db).await;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].1, "rejected");
    let reason = files[0].6.clone().unwrap_or_default();
    assert!(reason.contains("matches no known layout"), "{reason}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 0);
}

/// `shopstream ARGS` that must fail with exit code 2: its stderr.
fn refused(args: &[&str]) -> String {
    let out = shopstream().args(args).output().expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[tokio::test]
async fn a_wrong_declared_layout_stops_shopstream_at_start_with_file_line_and_key() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write(&input, "export.csv", EXPORT);
    let v1 = "name = \"mine\"\n".to_string()
        + &[
            "event_id",
            "user_id",
            "event_type",
            "product_id",
            "price",
            "event_time",
        ]
        .map(|c| format!("[[column]]\nname = \"{c}\"\nto = \"{c}\"\n"))
        .concat();
    for (name, text, expect) in [
        (
            "unknown_column.toml",
            SHOPX.replace("to = \"price\"", "to = \"preis\""),
            "unknown_column.toml:31: to: \"preis\" is not a canonical column",
        ),
        (
            "bad_format.toml",
            SHOPX.replace("%d.%m.%Y %H:%M", "%d.%m.%Y"),
            "bad_format.toml:6: time_format: \"%d.%m.%Y\" cannot be read back",
        ),
        (
            "bad_zone.toml",
            SHOPX.replace("Europe/Berlin", "Europe/Bonn"),
            "bad_zone.toml:7: time_zone: unknown time zone \"Europe/Bonn\"",
        ),
        (
            "ambiguous.toml",
            v1,
            "ambiguous.toml:1: name: layout mine is ambiguous with v1 (built in)",
        ),
    ] {
        let path = write(tmp.path(), name, &text);
        let path = path.to_str().expect("utf-8");
        let stderr = refused(&[
            "run",
            "--once",
            "--database-url",
            &db.url,
            "--input",
            input.to_str().expect("utf-8"),
            "--layouts",
            path,
        ]);
        assert!(
            stderr.contains(&format!("{}/{expect}", tmp.path().display())),
            "{stderr}"
        );
        let stderr = refused(&["schema", "list", "--layouts", path]);
        assert!(stderr.contains(expect), "{stderr}");
    }
    let tables = count(
        &db,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ingested_files'",
    )
    .await;
    assert_eq!(tables, 0, "refused before the database was touched");
}

#[test]
fn schema_list_and_show_include_declared_layouts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let toml = write(tmp.path(), "shopx.toml", SHOPX);
    let toml = toml.to_str().expect("utf-8");
    let list = run_ok(shopstream().args(["schema", "list", "--layouts", toml]));
    let line = list
        .lines()
        .find(|l| l.starts_with("shopx "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        line.contains("declared") && line.contains(toml) && line.contains("Shop X"),
        "{line}"
    );
    assert!(list.contains("v3 (current)"), "{list}");
    let json: Value = serde_json::from_str(&run_ok(
        shopstream()
            .env("SHOPSTREAM_LAYOUTS", toml)
            .args(["schema", "list", "--format", "json"]),
    ))
    .expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(9));
    assert_eq!(json[8]["kind"], "declared");
    assert_eq!(json[8]["read"]["delimiter"], ";");
    assert_eq!(json[8]["read"]["time_zone"], "Europe/Berlin");

    let show = run_ok(shopstream().args(["schema", "show", "SHOPX", "--layouts", toml]));
    for expect in [
        "shopx — Shop X nightly export",
        "fields separated by ';', quoted with '\"'",
        "prices with a decimal comma",
        "times written %d.%m.%Y %H:%M",
        "times without an offset are in Europe/Berlin",
        "user_segment is \"b2b\" where empty or missing",
        "Kunde | Kundennummer",
        "Menge (optional)",
        "(dropped)",
    ] {
        assert!(show.contains(expect), "{expect}: {show}");
    }
    let stderr = refused(&["schema", "show", "shopx"]);
    assert!(stderr.contains("no layout is named \"shopx\""), "{stderr}");
}

#[tokio::test]
async fn schema_init_writes_a_layout_that_parses_back_and_loads_its_sample() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let sample = "order;customer;event;product;amount;when;store
5e6f7081-0000-4000-8000-0000000000b1;C1;purchase;P-1;12,50;03.01.2026 14:30;north
5e6f7081-0000-4000-8000-0000000000b2;C2;View;P-2;0,00;04.01.2026 09:00;south
5e6f7081-0000-4000-8000-0000000000b3;C3;add_to_cart;P-3;3,99;05.01.2026 23:59;north
";
    let input = tmp.path().join("in");
    let csv = write(&input, "sample.csv", sample);
    let toml = run_ok(shopstream().arg("schema").arg("init").arg(&csv));
    for expect in [
        "name = \"sample\"",
        "delimiter = \";\"",
        "decimal = \",\"",
        "time_format = \"%d.%m.%Y %H:%M\"",
        "name = \"order\"\nto = \"event_id\"",
        "name = \"event\"\nto = \"event_type\"",
        "name = \"product\"\nto = \"product_id\"",
        "name = \"amount\"\nto = \"price\"",
        "name = \"when\"\nto = \"event_time\"",
        "name = \"store\"\nto = \"extra\"",
        "name = \"customer\"\nto = \"user_id\"",
    ] {
        assert!(toml.contains(expect), "{expect}: {toml}");
    }
    let path = write(tmp.path(), "sample.toml", &toml);
    let path = path.to_str().expect("utf-8");
    run_ok(shopstream().args(["schema", "show", "sample", "--layouts", path]));
    load_once(&db, &input, &["--layouts", path]);
    let files = ledger(&db).await;
    assert_eq!(
        (
            files[0].1.as_str(),
            files[0].2.as_deref(),
            files[0].3,
            files[0].4
        ),
        ("loaded", Some("sample"), 3, 3)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events WHERE price = 3.99 AND extra->>'store' = 'north' AND event_time = '2026-01-05 23:59:00+00'").await,
        1
    );
}

/// A layout without an event id column.
const NO_IDS: &str = r#"name = "noids"
[[column]]
name = "customer"
to = "user_id"
[[column]]
name = "action"
to = "event_type"
[[column]]
name = "item"
to = "product_id"
[[column]]
name = "at"
to = "event_time"
[[column]]
name = "note"
to = "drop"
"#;

const NO_IDS_ROWS: &str = "customer,action,item,at,note
c1,view,i1,2026-01-03 10:00:00,x
c2,purchase,i2,2026-01-03 10:00:01,y
c2,purchase,i2,2026-01-03 10:00:01,z
";

#[tokio::test]
async fn derived_ids_of_a_declared_layout_are_stable_across_re_reads() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let toml = write(tmp.path(), "noids.toml", NO_IDS);
    let toml = toml.to_str().expect("utf-8");
    let input = tmp.path().join("in");
    write(&input, "a.csv", NO_IDS_ROWS);
    load_once(&db, &input, &["--layouts", toml]);
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
    let ids_before: Vec<String> = db
        .client()
        .await
        .query(
            "SELECT event_id::text FROM ecommerce_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        ids_before.iter().all(|id| id.as_bytes()[14] == b'5'),
        "UUIDv5: {ids_before:?}"
    );
    assert_ne!(
        ids_before[1], ids_before[2],
        "identical rows (but the dropped note) differ by occurrence"
    );

    // The same file under another name: a duplicate file. The same rows in
    // another file, other notes, plus one new row: only the new one loads.
    write(&input, "b.csv", NO_IDS_ROWS);
    let mut lines: Vec<&str> = NO_IDS_ROWS.lines().collect();
    lines[1] = "c1,view,i1,2026-01-03 10:00:00,changed note";
    lines.push("c3,view,i3,2026-01-03 10:00:02,new");
    write(&input, "c.csv", &(lines.join("\n") + "\n"));
    load_once(&db, &input, &["--layouts", toml]);
    let got: Vec<(String, String, i64, i64)> = db
        .client()
        .await
        .query(
            "SELECT regexp_replace(path, '^.*/', ''), status, rows_loaded, rows_duplicate
             FROM ingested_files ORDER BY path",
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        [
            ("a.csv".into(), "loaded".into(), 3, 0),
            ("b.csv".into(), "duplicate".into(), 0, 3),
            ("c.csv".into(), "loaded".into(), 1, 3),
        ]
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);

    // JSON Lines objects with the layout's keys are read in it too, and
    // derive the same ids as the CSV rows.
    write(
        &input,
        "d.jsonl",
        "{\"customer\": \"c1\", \"action\": \"view\", \"item\": \"i1\", \"at\": \"2026-01-03 10:00:00\", \"note\": \"j\"}\n\
         {\"customer\": \"c4\", \"action\": \"view\", \"item\": \"i4\", \"at\": \"2026-01-03 10:00:03\"}\n",
    );
    load_once(&db, &input, &["--layouts", toml]);
    assert_eq!(
        count(&db, "SELECT count(*) FROM ingested_files WHERE path LIKE '%d.jsonl' AND layout = 'noids' AND rows_loaded = 1 AND rows_duplicate = 1").await,
        1
    );
}

#[tokio::test]
async fn dead_letters_of_a_declared_layout_replay_with_its_layout() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let toml = write(tmp.path(), "shopx.toml", SHOPX);
    let toml = toml.to_str().expect("utf-8");
    let input = tmp.path().join("in");
    write(
        &input,
        "export.csv",
        "Bestellnr;Kunde;Aktion;Artikel;Preis;Zeit;Filiale;Exportlauf
5e6f7081-0000-4000-8000-0000000000c1;K1;purchase;A-1;20000,00;03.01.2026 14:30;Berlin;r
",
    );
    load_once(&db, &input, &["--layouts", toml]);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM dead_letter_events WHERE error_codes = '{extreme_price}'"
        )
        .await,
        1
    );
    let replay = |extra: &[&str]| -> Value {
        let out = run_ok(
            shopstream()
                .args([
                    "dead-letters",
                    "replay",
                    "--database-url",
                    &db.url,
                    "--format",
                    "json",
                ])
                .args(["--max-price", "50000"])
                .args(extra),
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    // Without its layout the recorded header maps to no layout.
    let j = replay(&[]);
    assert_eq!(j["loaded"], 0, "{j}");
    assert_eq!(j["still_invalid"], 1, "{j}");
    let j = replay(&["--layouts", toml]);
    assert_eq!(j["loaded"], 1, "{j}");
    let r = db
        .client()
        .await
        .query_one(
            "SELECT price::text, to_char(event_time AT TIME ZONE 'UTC', 'HH24:MI'), source_layout
             FROM ecommerce_events",
            &[],
        )
        .await
        .expect("replayed");
    assert_eq!(
        (
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, Option<String>>(2)
        ),
        ("20000.00".into(), "13:30".into(), Some("shopx".into()))
    );
}
