//! `shopstream check`, the dry run, with the real binary on real files:
//! its exit codes (0 clean, 1 dead letters, 2 a file rejected), the per-file
//! counts, failing lines and rejections it prints as a table or JSON, that
//! it agrees with what `run --once` records in the ledger for the same
//! folder (CSV, gzip and JSON Lines), and that it never connects to a
//! database.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Output;

use common::{generate, load_once, shopstream, test_db};
use serde_json::Value;

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn row(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x},U{i},purchase,P{i},12.50,2026-01-10T11:00:00Z")
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A folder of three clean files: CSV, gzipped CSV and JSON Lines.
fn clean_folder(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let csv: String = (1..=5).map(|i| row(i) + "\n").collect();
    std::fs::write(dir.join("a.csv"), format!("{V1}\n{csv}")).expect("write");
    let csv: String = (6..=8).map(|i| row(i) + "\n").collect();
    std::fs::write(dir.join("b.csv.gz"), gz(format!("{V1}\n{csv}").as_bytes())).expect("write");
    let json: String = (9..=10)
        .map(|i| {
            format!(
                r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","user_id":"U","event_type":"view","product_id":"P","price":null,"event_time":"2026-01-10T11:00:00Z"}}"#
            ) + "\n"
        })
        .collect();
    std::fs::write(dir.join("c.jsonl"), json).expect("write");
}

/// `shopstream check` with `args`.
fn check(args: &[&str]) -> Output {
    shopstream()
        .arg("check")
        .args(args)
        .output()
        .expect("spawn shopstream")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `check --format json` of `args`: its exit code and report.
fn check_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--format", "json"];
    all.extend(args);
    let out = check(&all);
    let text = stdout(&out);
    let report = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// The report's file whose path ends with `name`.
fn file<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(name)))
        .unwrap_or_else(|| panic!("{name} in {report:#}"))
}

#[test]
fn a_clean_folder_exits_0_with_each_files_format_layout_and_counts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    clean_folder(&dir);
    // Names run leaves alone are left out here too.
    std::fs::write(dir.join("d.csv.part"), "not yet").expect("write");
    std::fs::create_dir(dir.join("_quarantine")).expect("mkdir");
    std::fs::write(dir.join("_quarantine/old.csv"), "x,y\n").expect("write");
    let out = check(&[dir.to_str().expect("utf-8")]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for (name, format, layout, rows) in [
        ("a.csv", "csv", "v1", 5),
        ("b.csv.gz", "csv.gz", "v1", 3),
        ("c.jsonl", "jsonl", "v1", 2),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells[1..],
            [
                format,
                layout,
                &rows.to_string(),
                &rows.to_string(),
                "0",
                "0",
                "clean"
            ],
            "{line}"
        );
    }
    assert!(
        !text.contains("part") && !text.contains("old.csv"),
        "{text}"
    );
    assert!(text.contains("result: clean (exit 0)"), "{text}");
}

#[test]
fn invalid_rows_exit_1_with_file_line_and_column_of_the_first_failures() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    clean_folder(&dir);
    let mut body = format!("{V1}\n{}\n", row(20));
    body.push_str("00000000-0000-4000-8000-000000000021,U,view,P,20000.00,2026-01-10T11:00:00Z\n");
    body.push_str(&format!("{}\n", row(20)));
    for _ in 0..6 {
        body.push_str(",U,view,P,-1,2026-01-10T11:00:00Z\n");
    }
    std::fs::write(dir.join("mixed.csv"), body).expect("write");
    let path = dir.join("mixed.csv").display().to_string();

    let out = check(&[dir.to_str().expect("utf-8"), "--show", "3"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for needle in [
        format!("{path}:3  price  extreme_price: "),
        format!("{path}:5  event_id  null_event_id: "),
        format!("{path}:5  price  negative_price: "),
        format!("{path}:6  event_id  null_event_id: "),
        "and 4 more failing row(s)".to_string(),
        format!("{path}: 7 invalid row(s): extreme_price 1, negative_price 6, null_event_id 6"),
        "result: dead letters (exit 1)".to_string(),
        "not an error".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} in\n{text}");
    }
    assert!(!text.contains(&format!("{path}:7 ")), "--show 3: {text}");

    let (code, report) = check_json(&[dir.to_str().expect("utf-8")]);
    assert_eq!((code, report["exit_code"].as_i64()), (1, Some(1)));
    assert_eq!(report["verdict"], "dead_letters");
    let mixed = file(&report, "mixed.csv");
    for (key, want) in [
        ("format", Value::from("csv")),
        ("layout", Value::from("v1")),
        ("verdict", Value::from("dead_letters")),
        ("rows_read", Value::from(9)),
        ("rows_valid", Value::from(2)),
        ("rows_invalid", Value::from(7)),
        ("duplicate_ids", Value::from(1)),
        ("rejected", Value::Null),
    ] {
        assert_eq!(mixed[key], want, "{key}: {mixed:#}");
    }
    assert_eq!(mixed["reasons"]["negative_price"], 6);
    let failures = mixed["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 5, "--show defaults to 5");
    assert_eq!(failures[0]["line"], 3);
    assert_eq!(failures[0]["errors"][0]["column"], "price");
    assert_eq!(failures[0]["errors"][0]["code"], "extreme_price");
    assert!(failures[0]["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("--max-price")));
    assert_eq!(report["totals"]["files"], 4);
    assert_eq!(report["totals"]["rows_invalid"], 7);
    assert_eq!(file(&report, "b.csv.gz")["verdict"], "clean");
}

#[test]
fn a_second_copy_of_a_file_is_a_duplicate_file_not_more_dead_letters() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).expect("mkdir");
    let body = format!("{V1}\n{}\n,U,view,P,1,2026-01-10T11:00:00Z\n", row(1));
    std::fs::write(dir.join("a.csv"), &body).expect("write");
    std::fs::write(dir.join("zz-copy.csv"), &body).expect("write");
    let (code, report) = check_json(&[dir.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(file(&report, "a.csv")["verdict"], "dead_letters");
    let copy = file(&report, "zz-copy.csv");
    assert_eq!(copy["verdict"], "clean", "{copy:#}");
    let note = format!(
        "same content as {}: run counts the whole file a duplicate (no row loaded, no dead \
         letter)",
        dir.join("a.csv").display()
    );
    assert_eq!(copy["note"], Value::from(note));
}

#[test]
fn a_bad_header_or_a_decompression_bomb_exits_2_with_the_reason_and_code() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    clean_folder(&dir);
    std::fs::write(dir.join("header.csv"), "when,who,what\n1,2,3\n").expect("write");
    let (code, report) = check_json(&[dir.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{report:#}");
    let bad = file(&report, "header.csv");
    assert_eq!(bad["verdict"], "rejected");
    assert_eq!(bad["rejected"]["code"], "unknown_layout");
    assert!(bad["rejected"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("matches no known layout")));
    assert_eq!(file(&report, "a.csv")["verdict"], "clean");

    // 16 MiB of rows behind a 1 MiB limit: reading stops at the limit.
    let bombs = tmp.path().join("bombs");
    std::fs::create_dir(&bombs).expect("mkdir");
    let mib: Vec<u8> = b"0,0,0,0,0,0\n".repeat(87_382);
    let mut bomb = gz(format!("{V1}\n").as_bytes());
    bomb.extend(gz(&mib).repeat(16));
    std::fs::write(bombs.join("bomb.csv.gz"), &bomb).expect("write");
    let out = check(&[bombs.to_str().expect("utf-8"), "--max-file-bytes", "1MiB"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("rejected (too_large): bomb.csv.gz decompresses to more than "),
        "{text}"
    );
    assert!(text.contains("result: rejected (exit 2)"), "{text}");
}

#[test]
fn a_missing_path_or_an_empty_folder_is_no_clean_check() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("nope.csv");
    let (code, report) = check_json(&[missing.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert_eq!(file(&report, "nope.csv")["rejected"]["code"], "unreadable");
    let out = check(&[tmp.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to check"),
        "{out:?}"
    );
}

#[test]
fn check_never_connects_to_a_database() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    clean_folder(&dir);
    // A port that listens but must never see a connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("postgresql://shop:secret@127.0.0.1:{port}/shop");
    let out = shopstream()
        .current_dir(tmp.path())
        .env("DATABASE_URL", &url)
        .env("POSTGRES_HOST", "127.0.0.1")
        .env("POSTGRES_PORT", port.to_string())
        .args(["check", "in"])
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "check connected to the database port"
    );
    assert!(
        !tmp.path().join(".shopstream").exists(),
        "no embedded server either"
    );
    // It takes no database option at all.
    let out = check(&["--database-url", &url, "in"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Per file: (rows read, valid, invalid, duplicate ids, rejected).
type Counts = BTreeMap<String, (i64, i64, i64, i64, bool)>;

#[tokio::test(flavor = "multi_thread")]
async fn check_agrees_with_what_run_once_records_for_the_same_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let end = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
    let opts = [
        "--invalid-share",
        "0.08",
        "--duplicate-share",
        "0.05",
        "--end-time",
        &end,
    ];
    // The same events in three formats: the later copies are duplicates.
    for (i, (format, compress)) in [("csv", "none"), ("csv", "gz"), ("jsonl", "none")]
        .into_iter()
        .enumerate()
    {
        let mut o = opts.to_vec();
        o.extend(["--format", format, "--compress", compress]);
        let out = tmp.path().join(format!("gen{i}"));
        generate(&out, 2, 400, 17, &o);
        for f in std::fs::read_dir(&out).expect("generated") {
            let f = f.expect("entry").path();
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            std::fs::create_dir_all(&input).expect("mkdir");
            std::fs::rename(&f, input.join(name)).expect("move");
        }
        // Listed oldest first: one format after the other.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::write(input.join("header.csv"), "a,b\n1,2\n").expect("write");
    let ratio = ["--max-reject-ratio", "0.9"];

    let mut args = vec![input.to_str().expect("utf-8")];
    args.extend(ratio);
    let (code, report) = check_json(&args);
    assert_eq!(code, 2, "the bad header");
    let mut checked = Counts::new();
    for f in report["files"].as_array().expect("files") {
        let n = |k: &str| f[k].as_i64().expect(k);
        checked.insert(
            f["path"].as_str().expect("path").to_string(),
            (
                n("rows_read"),
                n("rows_valid"),
                n("rows_invalid"),
                n("duplicate_ids"),
                f["verdict"] == "rejected",
            ),
        );
    }
    assert_eq!(checked.len(), 7, "{report:#}");
    assert!(checked.values().any(|c| c.2 > 0) && checked.values().any(|c| c.3 > 0));

    let db = test_db().await;
    load_once(&db, &input, &ratio);
    let mut loaded = Counts::new();
    for r in db
        .client()
        .await
        .query(
            "SELECT path, rows_read, rows_loaded + rows_duplicate, rows_rejected,
                    rows_duplicate, status = 'rejected'
             FROM ingested_files",
            &[],
        )
        .await
        .expect("ledger")
    {
        // The ledger's paths are as listed, like check's.
        loaded.insert(r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)));
    }
    // A rejected file has no row counts in the ledger.
    for (path, c) in checked.iter_mut() {
        if c.4 {
            *c = (0, 0, 0, 0, true);
            assert!(path.ends_with("header.csv"), "{path}");
        }
    }
    assert_eq!(checked, loaded);
}
