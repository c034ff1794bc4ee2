//! Compressed and JSON Lines input against a real PostgreSQL server and
//! the real binary: every format `generate` writes loads exactly like the
//! plain CSV of the same events, duplicates across formats are caught,
//! decompression bombs and broken streams are rejected whole with a reason
//! and a ledger row (hashed as stored), dead letters keep the line number
//! inside the decompressed content, and JSON Lines map keys like a header.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use common::{
    count, counts_by, fingerprint_with, generate, load_once, peak_rss, shopstream, test_db, Copies,
    TestDb,
};

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zst(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).expect("read"))
        .to_hex()
        .to_string()
}

/// A v1 purchase row with id number `i`.
fn v1_row(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x},U{i},purchase,P{i},12.50,2026-01-10T11:00:00Z")
}

/// The ledger row of the file whose path ends with `name`: status, reason,
/// content hash.
async fn ledger_row(db: &TestDb, name: &str) -> (String, Option<String>, Option<String>) {
    let rows = db
        .client()
        .await
        .query(
            "SELECT path, status, reason, content_hash FROM ingested_files ORDER BY id",
            &[],
        )
        .await
        .expect("ledger");
    let r = rows
        .iter()
        .find(|r| r.get::<_, String>(0).ends_with(name))
        .unwrap_or_else(|| panic!("{name} in the ledger"));
    (r.get(1), r.get(2), r.get(3))
}

/// (file sequence number, format suffix) of a generated file's path.
fn seq_and_suffix(path: &str) -> (String, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let (stem, suffix) = name.split_once('.').expect("an extension");
    (stem[stem.len() - 6..].to_string(), suffix.to_string())
}

/// Dead letters by format suffix: (file sequence, line, codes).
async fn dead_letters_by_suffix(db: &TestDb) -> BTreeMap<String, BTreeSet<(String, i64, String)>> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT source_file, source_line, array_to_string(error_codes, ',')
             FROM dead_letter_events",
            &[],
        )
        .await
        .expect("dead letters");
    let mut out: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
    for r in rows {
        let (seq, suffix) = seq_and_suffix(&r.get::<_, String>(0));
        out.entry(suffix)
            .or_default()
            .insert((seq, r.get(1), r.get(2)));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_loads_like_plain_csv_and_duplicates_across_formats_are_caught() {
    let tmp = tempfile::tempdir().expect("tmp");
    let end = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
    let opts = [
        "--invalid-share",
        "0.05",
        "--duplicate-share",
        "0.03",
        "--end-time",
        &end,
    ];
    let plain = tmp.path().join("plain");
    let rep = generate(&plain, 3, 300, 41, &opts);
    let formats = [
        ("csv", "none"),
        ("csv", "gz"),
        ("csv", "zst"),
        ("jsonl", "none"),
        ("jsonl", "gz"),
        ("jsonl", "zst"),
    ];
    let mixed = tmp.path().join("mixed");
    for (format, compress) in formats {
        let mut o = opts.to_vec();
        o.extend(["--format", format, "--compress", compress]);
        let r = generate(&mixed, 3, 300, 41, &o);
        assert_eq!(r["rows"], rep["rows"], "{format} {compress}");
    }
    let reference = test_db().await;
    load_once(&reference, &plain, &[]);
    let db = test_db().await;
    load_once(&db, &mixed, &[]);

    // The same events loaded, whichever copy came first.
    assert_eq!(events(&db, &mixed).await, events(&reference, &plain).await);
    let loaded = rep["loaded"].as_i64().expect("loaded");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        loaded
    );

    // Every file loaded; every other copy of an event a duplicate.
    let n = formats.len() as i64;
    let rows = rep["rows"].as_i64().expect("rows");
    let rejected = count(&reference, "SELECT count(*) FROM dead_letter_events").await;
    assert!(rejected > 0, "the data must hold broken rows");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE status = 'loaded'"
        )
        .await,
        3 * n
    );
    for (sql, want) in [
        ("SELECT sum(rows_read)::int8 FROM ingested_files", n * rows),
        (
            "SELECT sum(rows_rejected)::int8 FROM ingested_files",
            n * rejected,
        ),
        (
            "SELECT sum(rows_duplicate)::int8 FROM ingested_files",
            n * rows - n * rejected - loaded,
        ),
        ("SELECT sum(rows_loaded)::int8 FROM ingested_files", loaded),
    ] {
        assert_eq!(count(&db, sql).await, want, "{sql}");
    }

    // Dead letters: the same rows with the same codes in every format, at
    // the line of the decompressed content (JSON Lines have no header).
    let want = dead_letters_by_suffix(&reference).await["csv"].clone();
    let got = dead_letters_by_suffix(&db).await;
    for (format, compress) in formats {
        let suffix = match compress {
            "none" => format.to_string(),
            c => format!("{format}.{c}"),
        };
        let shift = i64::from(format == "jsonl");
        let lines: BTreeSet<_> = got[&suffix]
            .iter()
            .map(|(seq, line, codes)| (seq.clone(), line + shift, codes.clone()))
            .collect();
        assert_eq!(lines, want, "{suffix}");
    }

    // The ledger's hash is of the bytes as stored, compressed or not.
    let c = db.client().await;
    for r in c
        .query("SELECT path, content_hash FROM ingested_files", &[])
        .await
        .expect("ledger")
    {
        let path: String = r.get(0);
        assert_eq!(r.get::<_, String>(1), blake3_of(Path::new(&path)), "{path}");
    }
    let layouts = counts_by(
        &db,
        "SELECT layout, count(*) FROM ingested_files GROUP BY 1",
    )
    .await;
    assert_eq!(layouts.get("v3"), Some(&(3 * n as u64)), "{layouts:?}");
}

/// Every column of every event, except where and in which batch it was
/// loaded.
async fn events(db: &TestDb, root: &Path) -> String {
    fingerprint_with(&db.client().await, root, Copies::Any).await[0].clone()
}

/// zstd with a checksum per frame, as the `zstd` tool writes.
fn zst_checked(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    e.include_checksum(true).expect("checksum");
    e.write_all(data).expect("zstd");
    e.finish().expect("zstd")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decompression_bomb_is_rejected_at_the_limit_and_nothing_of_it_loads() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    // 16 MiB of rows that each fail validation in a few KB: a header, then
    // 16 gzip members of 1 MiB of rows.
    let mib: Vec<u8> = b"0,0,0,0,0,0\n".repeat(87_382);
    let mut bomb = gz(format!("{V1}\n").as_bytes());
    bomb.extend(gz(&mib).repeat(16));
    std::fs::write(input.join("bomb.csv.gz"), &bomb).expect("write");
    // 1 GiB of JSON lines: 1024 zstd frames of 1 MiB each.
    let mut line = br#"{"event_id":"0","user_id":"0","event_type":"0","product_id":"0","price":0,"event_time":"0"}"#.to_vec();
    line.push(b'\n');
    let mib: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let frames = zst(&mib).repeat(1024);
    std::fs::write(input.join("bomb.jsonl.zst"), &frames).expect("write");
    let ok: String = (1..=5).map(|i| v1_row(i) + "\n").collect();
    std::fs::write(input.join("ok.csv"), format!("{V1}\n{ok}")).expect("write");

    let peak = peak_rss(
        shopstream()
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--max-file-bytes", "4MiB"]),
        &tmp.path().join("log"),
    );
    assert!(peak < 512 << 20, "peak RSS {peak} bytes");

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 5);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        0
    );
    for name in ["bomb.csv.gz", "bomb.jsonl.zst"] {
        let (status, reason, hash) = ledger_row(&db, name).await;
        let reason = reason.unwrap_or_default();
        assert_eq!(status, "rejected", "{reason}");
        assert!(
            reason.starts_with(&format!(
                "{name} decompresses to more than 4 MiB (--max-file-bytes) from "
            )) && reason.contains(" stored: reading stopped there"),
            "{reason}"
        );
        let stored = input.join("_quarantine").join(name);
        assert_eq!(hash, Some(blake3_of(&stored)), "hashed as stored");
        let sidecar = std::fs::read_to_string(input.join(format!("_quarantine/{name}.reason.txt")))
            .expect("the reason beside the quarantined file");
        assert!(sidecar.contains("--max-file-bytes"), "{sidecar}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_or_corrupt_stream_rejects_the_whole_file_with_a_ledger_row() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let rows: String = (1..=3000).map(|i| v1_row(i) + "\n").collect();
    let whole = gz(format!("{V1}\n{rows}").as_bytes());
    std::fs::write(input.join("cut.csv.gz"), &whole[..whole.len() / 2]).expect("write");
    let json: String = (5001..=8000)
        .map(|i| {
            format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","user_id":"U","event_type":"view","product_id":"P","price":null,"event_time":"2026-01-10T11:00:00Z"}}"#
            ) + "\n"
        })
        .collect();
    let mut bad = zst_checked(json.as_bytes());
    let mid = bad.len() / 2;
    bad[mid..mid + 64].fill(0x5A);
    std::fs::write(input.join("corrupt.jsonl.zst"), &bad).expect("write");
    // JSON Lines without an object: empty, or not JSON at all.
    std::fs::write(input.join("blank.jsonl"), "\n \n\n").expect("write");
    std::fs::write(input.join("csv.jsonl"), format!("{V1}\n{}\n", v1_row(1))).expect("write");
    load_once(&db, &input, &[]);
    let (status, reason, _) = ledger_row(&db, "blank.jsonl").await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        (
            "rejected",
            Some("the file holds no JSON object (only blank lines)")
        )
    );
    let (status, reason, _) = ledger_row(&db, "csv.jsonl").await;
    let reason = reason.unwrap_or_default();
    assert_eq!(status, "rejected");
    assert!(
        reason.starts_with(
            "no line of the file is a JSON object (2 line(s) read; line 1, column 1: "
        ) && reason.ends_with("is it JSON Lines?"),
        "{reason}"
    );

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        0
    );
    for (name, format) in [("cut.csv.gz", "gzip"), ("corrupt.jsonl.zst", "zstd")] {
        let (status, reason, hash) = ledger_row(&db, name).await;
        let reason = reason.unwrap_or_default();
        assert_eq!(status, "rejected", "{reason}");
        assert!(
            reason.starts_with(&format!(
                "{name}: the {format} stream is corrupt or cut short at stored byte "
            )) && reason.contains("(in line ")
                && reason.ends_with("none of its rows are loaded"),
            "{reason}"
        );
        let stored = input.join("_quarantine").join(name);
        assert_eq!(hash, Some(blake3_of(&stored)), "hashed as stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_in_a_compressed_file_carry_the_decompressed_line() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let body = format!(
        "{V1}\n{}\n\"{}\",\"multi\nline\",view,P2,,2026-01-10T11:00:00Z\n{}\nnot-a-uuid,U,view,P,,2026-01-10T11:00:00Z\n\n{}\n,U,purchase,P,-1,2026-01-10T11:00:00Z\n",
        v1_row(1),
        "00000000-0000-4000-8000-000000000002",
        v1_row(3),
        v1_row(4),
    );
    std::fs::write(tmp.path().join("a.csv.gz"), gz(body.as_bytes())).expect("write");
    load_once(&db, tmp.path(), &[]);

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);
    let lines = db
        .client()
        .await
        .query(
            "SELECT source_line, raw_line, error_codes FROM dead_letter_events ORDER BY 1",
            &[],
        )
        .await
        .expect("dead letters");
    let got: Vec<(i64, String, Vec<String>)> = lines
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (
                6,
                "not-a-uuid,U,view,P,,2026-01-10T11:00:00Z".to_string(),
                vec!["invalid_event_id".to_string()]
            ),
            (
                9,
                ",U,purchase,P,-1,2026-01-10T11:00:00Z".to_string(),
                vec!["null_event_id".to_string(), "negative_price".to_string()]
            ),
        ]
    );
    let event_lines = count(&db, "SELECT sum(source_line)::int8 FROM ecommerce_events").await;
    assert_eq!(event_lines, 2 + 3 + 5 + 8, "events keep their lines too");
}

/// source_line, user_id, price, quantity, product_id, extra.
type EventRow = (
    i64,
    Option<String>,
    Option<String>,
    i32,
    String,
    Option<String>,
);

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_map_keys_like_a_header_and_bad_lines_become_dead_letters() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let id = |i: u32| format!("00000000-0000-4000-8000-{i:012x}");
    let lines = [
        format!(
            r#"{{"event_id":"{}","user_id":"U1","event_type":"view","product_id":"P1","price":null,"event_time":"2026-01-10T11:00:00Z","Colour":"red"}}"#,
            id(1)
        ),
        String::new(),
        "this is not json".to_string(),
        "[1,2,3]".to_string(),
        format!(
            r#"{{"EVENT_ID":"{}","user_id":"U2","event_type":"purchase","product_id":"P2","price":12.5,"quantity":2,"event_time":"2026-01-10T11:00:00Z","meta":{{"ab":[1,"x"]}},"vip":true}}"#,
            id(2)
        ),
        format!(
            r#"{{"event_id":"{}","user_id":"U3","event_type":"purchase","product_id":"P3","price":"abc","event_time":"2026-01-10T11:00:00Z"}}"#,
            id(3)
        ),
        format!(
            r#"{{"event_id":"{}","user_id":"U4","event_type":"add_to_cart","product_id":"P4","price":{{"amount":5}},"event_time":"2026-01-10T11:00:00Z"}}"#,
            id(4)
        ),
        format!(
            r#"{{"event_id":"{}","user_id":null,"event_type":"search","product_id":7,"event_time":"2026-01-10T11:00:00Z"}}"#,
            id(5)
        ),
    ];
    let body = lines.join("\r\n");
    std::fs::write(tmp.path().join("events.ndjson"), &body).expect("write");
    // An explicit --include keeps meaning what it says.
    std::fs::write(tmp.path().join("other.jsonl"), &body).expect("write");
    let out = load_once(&db, tmp.path(), &["--include", "*.ndjson"]);

    let c = db.client().await;
    let ev = c
        .query(
            "SELECT source_line, user_id, price::text, quantity, product_id, extra::text
             FROM ecommerce_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("events");
    let got: Vec<EventRow> = ev
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    assert_eq!(
        got,
        [
            (
                1,
                Some("U1".into()),
                None,
                0,
                "P1".into(),
                Some(r#"{"Colour": "red"}"#.into())
            ),
            (
                5,
                Some("U2".into()),
                Some("12.50".into()),
                2,
                "P2".into(),
                Some(r#"{"vip": true, "meta": {"ab": [1, "x"]}}"#.into())
            ),
            (8, None, None, 0, "7".into(), None),
        ]
    );
    let dl = c
        .query(
            "SELECT source_line, raw_line, error_codes, errors->0->>'message'
             FROM dead_letter_events ORDER BY 1",
            &[],
        )
        .await
        .expect("dead letters");
    let got: Vec<(i64, String, Vec<String>, String)> = dl
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!((got[0].0, got[0].1.as_str()), (3, "this is not json"));
    assert_eq!(got[0].2, ["malformed_json"]);
    assert!(
        got[0].3.starts_with("line 3, column 2: expected"),
        "{}",
        got[0].3
    );
    assert_eq!((got[1].0, got[1].1.as_str()), (4, "[1,2,3]"));
    assert_eq!(got[1].2, ["malformed_json"]);
    assert!(
        got[1].3.contains("expected one JSON object per line"),
        "{}",
        got[1].3
    );
    assert_eq!((got[2].0, got[2].1.as_str()), (6, lines[5].as_str()));
    assert_eq!(got[2].2, ["invalid_price"]);
    // An object is no price: the column is empty (and the object kept).
    assert_eq!(
        (got[3].0, got[3].2.clone()),
        (7, vec!["missing_price".to_string()])
    );

    let f = c
        .query_one(
            "SELECT path, layout, unknown_columns, rows_read, rows_loaded, rows_rejected
             FROM ingested_files",
            &[],
        )
        .await
        .expect("one ledger row: other.jsonl is not input");
    assert!(f.get::<_, String>(0).ends_with("events.ndjson"));
    assert_eq!(f.get::<_, Option<String>>(1).as_deref(), Some("v1"));
    assert_eq!(
        f.get::<_, Option<Vec<String>>>(2),
        Some(vec![
            "Colour".to_string(),
            "meta".to_string(),
            "vip".to_string()
        ])
    );
    assert_eq!(
        (f.get::<_, i64>(3), f.get::<_, i64>(4), f.get::<_, i64>(5)),
        (7, 3, 4)
    );
    let summary: serde_json::Value = serde_json::from_str(&out).expect("summary JSON");
    assert_eq!(summary["rows_rejected"], 4, "{summary}");
    assert_eq!(
        count(
            &db,
            "SELECT sum((rejects_by_code->>'malformed_json')::int8)::int8 FROM data_quality_metrics"
        )
        .await,
        2
    );
    assert!(tmp.path().join("other.jsonl").is_file(), "left alone");

    // With --unknown-columns reject, a key outside the layout rejects the file.
    let strict = test_db().await;
    load_once(
        &strict,
        tmp.path(),
        &["--include", "*.ndjson", "--unknown-columns", "reject"],
    );
    let (status, reason, _) = ledger_row(&strict, "events.ndjson").await;
    assert_eq!(status, "rejected");
    assert_eq!(
        reason.as_deref(),
        Some(
            "line 1 is the first JSON object, whose keys choose the layout: the header has \
              column(s) layout v1 does not know: Colour (--unknown-columns reject)"
        )
    );
    assert_eq!(
        count(&strict, "SELECT count(*) FROM ecommerce_events").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_the_server_refuses_keep_their_raw_line_from_compressed_and_json_files() {
    let db = test_db().await;
    common::run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE ecommerce_events ADD CONSTRAINT quantity_below_9 CHECK (quantity < 9)",
        )
        .await
        .expect("a constraint the validator does not know");
    let tmp = tempfile::tempdir().expect("tmp");
    let row = |i: u32, qty: u32| {
        format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","user_id":"U","event_type":"purchase","product_id":"P","price":2.5,"quantity":{qty},"event_time":"2026-01-10T11:00:00Z"}}"#
        )
    };
    let json = [row(1, 1), row(2, 9), String::new(), row(3, 9), row(4, 2)];
    std::fs::write(
        tmp.path().join("a.jsonl.gz"),
        gz(json.join("\n").as_bytes()),
    )
    .expect("write");
    let csv = "event_id,user_id,event_type,product_id,price,quantity,event_time\n\
         00000000-0000-4000-8000-00000000000a,U,purchase,\"P,\n10\",2.5,9,2026-01-10T11:00:00Z\n\
         00000000-0000-4000-8000-00000000000b,U,purchase,P,2.5,1,2026-01-10T11:00:00Z\n";
    std::fs::write(tmp.path().join("b.csv.zst"), zst(csv.as_bytes())).expect("write");
    load_once(&db, tmp.path(), &[]);

    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 3);
    let rows = db
        .client()
        .await
        .query(
            "SELECT source_file, source_line, raw_line, error_codes FROM dead_letter_events
             ORDER BY 1, 2",
            &[],
        )
        .await
        .expect("dead letters");
    let got: Vec<(String, i64, String, Vec<String>)> = rows
        .iter()
        .map(|r| {
            let file: String = r.get(0);
            let name = file.rsplit('/').next().unwrap_or_default().to_string();
            (name, r.get(1), r.get(2), r.get(3))
        })
        .collect();
    let refused = vec!["rejected_by_database".to_string()];
    assert_eq!(
        got,
        [
            ("a.jsonl.gz".to_string(), 2, json[1].clone(), refused.clone()),
            ("a.jsonl.gz".to_string(), 4, json[3].clone(), refused.clone()),
            (
                "b.csv.zst".to_string(),
                2,
                "00000000-0000-4000-8000-00000000000a,U,purchase,\"P,\n10\",2.5,9,2026-01-10T11:00:00Z"
                    .to_string(),
                refused
            ),
        ]
    );
}
