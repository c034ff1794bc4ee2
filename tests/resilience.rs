//! The loader keeps its promises while the world misbehaves: rows the server
//! refuses become dead letters while the rest of the batch commits, poison
//! files are quarantined while good files flow, processed files are
//! archived or deleted only after the commit (even across a kill -9 in
//! between), two loaders on one folder never load a file twice, and an
//! unreachable database is waited for, never a reason to spin or lose data.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    count, fingerprint, fingerprint_with, generate, load_once, run_ok, shopstream, test_db,
    try_count, wait_for, Copies, Loader, TestDb,
};

fn run_cmd(db: &TestDb, input: &Path) -> std::process::Command {
    let mut c = shopstream();
    c.args([
        "run",
        "--database-url",
        &db.url,
        "--relist-secs",
        "0.3",
        "--input",
    ])
    .arg(input);
    c
}

const V1_SESSION_QTY: &str =
    "event_id,user_id,session_id,event_type,product_id,price,quantity,event_time";

#[tokio::test]
async fn rows_the_server_refuses_become_dead_letters_and_the_rest_commits() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE ecommerce_events ADD CONSTRAINT quantity_below_9 CHECK (quantity < 9);
             ALTER TABLE ecommerce_events ALTER COLUMN session_id SET NOT NULL",
        )
        .await
        .expect("constraints the validator does not know");

    // 2,600 rows (more than one isolation chunk); line 1 is the header.
    let mut lines = vec![V1_SESSION_QTY.to_string()];
    for line in 2..=2601u32 {
        let session = if line == 2000 || line == 2601 {
            String::new()
        } else {
            format!("s{line}")
        };
        let qty = if [10, 1500, 2000].contains(&line) {
            9
        } else {
            1
        };
        let product = if line == 1500 {
            "\"p,\"\"1500\"\"\"".to_string()
        } else {
            format!("p{line}")
        };
        let kind = if line == 700 { "bogus" } else { "add_to_cart" };
        lines.push(format!(
            "00000000-0000-4000-8000-{line:012},u{line},{session},{kind},{product},1.50,{qty},2026-01-01 00:00:00"
        ));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("rows.csv"), lines.join("\n") + "\n").expect("write");

    let summary: serde_json::Value =
        serde_json::from_str(load_once(&db, &input, &[]).trim()).expect("summary");
    assert_eq!(summary["rows_read"], 2600);
    assert_eq!(summary["rows_loaded"], 2595);
    assert_eq!(summary["rows_rejected"], 5);
    // The table's constraints put the loader on the staged route from the
    // start, where the refused rows were isolated.

    let c = db.client().await;
    let rows = c
        .query(
            "SELECT source_line, raw_line, error_codes, errors->0->>'constraint',
                    errors->0->>'column', errors->0->>'message', errors->0->>'sqlstate'
             FROM dead_letter_events ORDER BY source_line",
            &[],
        )
        .await
        .expect("dead letters");
    let got: Vec<(i64, Vec<String>)> = rows.iter().map(|r| (r.get(0), r.get(2))).collect();
    let refused = vec!["rejected_by_database".to_string()];
    assert_eq!(
        got,
        vec![
            (10, refused.clone()),
            (700, vec!["invalid_event_type".to_string()]),
            (1500, refused.clone()),
            (2000, refused.clone()),
            (2601, refused.clone()),
        ]
    );
    for r in &rows {
        let line: i64 = r.get(0);
        let raw: String = r.get(1);
        assert_eq!(
            raw,
            lines[line as usize - 1],
            "raw line {line} exactly as in the file"
        );
    }
    let by_line = |l: i64| rows.iter().find(|r| r.get::<_, i64>(0) == l).expect("row");
    for l in [10, 1500] {
        let r = by_line(l);
        assert_eq!(
            r.get::<_, Option<String>>(3).as_deref(),
            Some("quantity_below_9")
        );
        assert_eq!(r.get::<_, Option<String>>(6).as_deref(), Some("23514"));
        let msg: String = r.get(5);
        assert!(msg.contains("violates check constraint"), "{msg}");
    }
    for l in [2000, 2601] {
        let r = by_line(l);
        assert_eq!(r.get::<_, Option<String>>(4).as_deref(), Some("session_id"));
        assert_eq!(r.get::<_, Option<String>>(6).as_deref(), Some("23502"));
    }
    let ledger = c
        .query_one(
            "SELECT rows_read, rows_loaded, rows_duplicate, rows_rejected FROM ingested_files",
            &[],
        )
        .await
        .expect("ledger");
    let ledger: (i64, i64, i64, i64) = (ledger.get(0), ledger.get(1), ledger.get(2), ledger.get(3));
    assert_eq!(ledger, (2600, 2595, 0, 5));
    assert_eq!(
        count(
            &db,
            "SELECT (rejects_by_code->>'rejected_by_database')::int8 FROM data_quality_metrics"
        )
        .await,
        4
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        2595
    );
}

/// Isolating the rows the table's own constraints refuse costs about one
/// insert of the batch, however many rows are refused (bisection cost a
/// dozen inserts per refused row, minutes on distributed PostgreSQL). The
/// server's own count of inserted tuples (aborted ones included) shows it.
#[tokio::test]
async fn rows_refused_by_the_tables_constraints_are_found_without_bisection() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let c = db.client().await;
    c.batch_execute(
        "ALTER TABLE ecommerce_events ADD CONSTRAINT quantity_below_9 CHECK (quantity < 9);
         ALTER TABLE ecommerce_events ALTER COLUMN session_id SET NOT NULL;
         CREATE TABLE products (sku text PRIMARY KEY);
         INSERT INTO products SELECT 'p' || n FROM generate_series(1, 5000) n WHERE n % 23 <> 0;
         ALTER TABLE ecommerce_events ADD CONSTRAINT known_product
           FOREIGN KEY (product_id) REFERENCES products (sku);",
    )
    .await
    .expect("constraints the validator does not know");
    // 5,000 rows; every 17th breaks the check, every 101st has no session,
    // every 23rd names a product the products table does not have.
    let mut lines = vec![V1_SESSION_QTY.to_string()];
    let (mut refused, mut unknown_product, rows) = (0, 0, 5000u32);
    for n in 1..=rows {
        let qty = if n % 17 == 0 { 9 } else { 1 };
        let session = if n % 101 == 0 {
            String::new()
        } else {
            format!("s{n}")
        };
        let earlier = qty == 9 || session.is_empty();
        unknown_product += u32::from(!earlier && n % 23 == 0);
        refused += u32::from(earlier || n % 23 == 0);
        lines.push(format!(
            "00000000-0000-4000-8000-{n:012},u{n},{session},add_to_cart,p{n},1.50,{qty},2026-01-01 00:00:00"
        ));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("rows.csv"), lines.join("\n") + "\n").expect("write");
    let summary: serde_json::Value =
        serde_json::from_str(load_once(&db, &input, &[]).trim()).expect("summary");
    assert_eq!(summary["rows_rejected"], refused, "{summary}");
    assert_eq!(summary["rows_loaded"], rows - refused, "{summary}");
    let by_kind = |sql: &str| {
        let sql = sql.to_string();
        let c = &c;
        async move {
            c.query_one(&sql, &[])
                .await
                .expect("query")
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        by_kind("SELECT count(*) FROM dead_letter_events WHERE errors->0->>'constraint' = 'quantity_below_9'").await,
        i64::from(rows / 17 - rows / (17 * 101)),
        "a row breaking both is reported for NOT NULL, as the server would"
    );
    assert_eq!(
        by_kind(
            "SELECT count(*) FROM dead_letter_events WHERE errors->0->>'column' = 'session_id'"
        )
        .await,
        i64::from(rows / 101)
    );
    assert_eq!(
        by_kind("SELECT count(*) FROM dead_letter_events WHERE errors->0->>'constraint' = 'known_product' AND errors->0->>'sqlstate' = '23503'").await,
        i64::from(unknown_product)
    );
    // Every backend of the loader has reported its statistics once it left.
    let inserted = {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let others = by_kind(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                db.name
            ))
            .await;
            if others == 0 {
                c.batch_execute("SELECT pg_stat_clear_snapshot()")
                    .await
                    .expect("clear");
                break by_kind(
                    "SELECT coalesce(sum(n_tup_ins), 0)::int8 FROM pg_stat_user_tables
                     WHERE relid IN (SELECT inhrelid FROM pg_inherits
                                     WHERE inhparent = 'ecommerce_events'::regclass)",
                )
                .await;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the loader's backends never left"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(
        inserted >= i64::from(rows - refused),
        "{inserted} tuples counted: the statistics missed the partitions"
    );
    assert!(
        inserted <= 2 * i64::from(rows),
        "{inserted} tuples inserted (aborted ones included) for {rows} rows"
    );
}

/// The bad files of every kind, with a phrase of the reason each must get.
fn write_bad_files(dir: &Path) -> Vec<(&'static str, &'static str)> {
    let v1 = "event_id,user_id,event_type,product_id,price,event_time\n";
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    w("empty.csv", b"");
    w("header_only.csv", v1.as_bytes());
    w("unknown_header.csv", b"when,who,what\n1,2,3\n");
    w("binary.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0");
    let utf16: Vec<u8> = std::iter::once(0xFEFFu16)
        .chain(v1.encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    w("utf16.csv", &utf16);
    w(
        "latin1.csv",
        b"event_id,user_id,event_type,product_id,price,event_time,cat\xe9gorie\n",
    );
    let long = format!("{v1}{}\n", "x".repeat(5000));
    w("too_long.csv", long.as_bytes());
    // A file that cannot be read: tests/unreadable.rs, which runs the
    // loader as an unprivileged account when the tests run as root.
    vec![
        ("empty.csv", "the file is empty"),
        ("header_only.csv", "a header but no data rows"),
        ("unknown_header.csv", "matches no known layout"),
        ("binary.csv", "binary"),
        ("utf16.csv", "UTF-16"),
        ("latin1.csv", "not UTF-8"),
        ("too_long.csv", "longer than 2048 bytes"),
    ]
}

/// Valid CSV in its less common forms: (name, bytes, rows).
fn write_good_files(dir: &Path) -> Vec<(&'static str, u64)> {
    let v2 = "event_id,user_id,event_type,product_id,product_name,price,event_time";
    let row = |n: u32, name: &str| {
        format!("00000000-0000-4000-8000-{n:012},u{n},view,p{n},{name},,2026-01-01 00:00:00")
    };
    let w = |name: &str, text: String| std::fs::write(dir.join(name), text).expect("write");
    w(
        "crlf.csv",
        format!("{v2}\r\n{}\r\n{}\r\n", row(1, "a"), row(2, "b")),
    );
    w(
        "quoted.csv",
        format!(
            "{v2}\n{}\n{}\n",
            row(3, "\"Mug, \"\"large\"\"\nblue\""),
            row(4, "\"plain\"")
        ),
    );
    w(
        "no_final_newline.csv",
        format!("{v2}\n{}\n{}", row(5, "c"), row(6, "d")),
    );
    w("bom.csv", format!("\u{feff}{v2}\n{}\n", row(7, "e")));
    vec![
        ("crlf.csv", 2),
        ("quoted.csv", 2),
        ("no_final_newline.csv", 2),
        ("bom.csv", 1),
    ]
}

#[tokio::test]
async fn poison_files_are_quarantined_with_their_reason_while_good_files_load() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let bad = write_bad_files(&input);
    let good = write_good_files(&input);

    let mut loader = Loader::spawn(run_cmd(&db, &input).args(["--max-line-bytes", "2048"]));
    let total = (bad.len() + good.len()) as i64;
    wait_for(
        Duration::from_secs(60),
        "every file in the ledger",
        || async { try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(total) },
    )
    .await;
    loader.assert_alive();
    let summary = loader.stop();
    assert_eq!(summary["files_quarantined"], bad.len());
    assert_eq!(summary["files_loaded"], good.len());

    let c = db.client().await;
    let quarantine = input.join("_quarantine");
    for (name, phrase) in &bad {
        let path = input.join(name).display().to_string();
        let row = c
            .query_one(
                "SELECT status, reason, disposition, moved_to FROM ingested_files WHERE path = $1",
                &[&path],
            )
            .await
            .unwrap_or_else(|e| panic!("{name} in the ledger: {e}"));
        let (status, reason): (String, String) = (row.get(0), row.get(1));
        assert_eq!(status, "rejected", "{name}");
        assert!(reason.contains(phrase), "{name}: {reason}");
        assert_eq!(
            row.get::<_, Option<String>>(2).as_deref(),
            Some("quarantined"),
            "{name}"
        );
        let moved = quarantine.join(name);
        assert_eq!(
            row.get::<_, Option<String>>(3),
            Some(moved.display().to_string())
        );
        assert!(
            std::fs::symlink_metadata(input.join(name)).is_err(),
            "{name} left the input"
        );
        assert!(
            std::fs::symlink_metadata(&moved).is_ok(),
            "{name} is in quarantine"
        );
        let sidecar = std::fs::read_to_string(quarantine.join(format!("{name}.reason.txt")))
            .expect("reason file");
        assert!(sidecar.contains(phrase), "{name}: {sidecar}");
    }
    for (name, rows) in &good {
        let path = input.join(name).display().to_string();
        let row = c
            .query_one(
                "SELECT status, rows_loaded, disposition FROM ingested_files WHERE path = $1",
                &[&path],
            )
            .await
            .expect("ledger row");
        assert_eq!(row.get::<_, String>(0), "loaded", "{name}");
        assert_eq!(row.get::<_, i64>(1) as u64, *rows, "{name}");
        assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("kept"));
        assert!(
            input.join(name).exists(),
            "processed files are kept by default"
        );
    }
    let name: String = c
        .query_one(
            "SELECT product_name FROM ecommerce_events
             WHERE event_id = '00000000-0000-4000-8000-000000000003'",
            &[],
        )
        .await
        .expect("quoted row")
        .get(0);
    assert_eq!(name, "Mug, \"large\"\nblue");
    assert_eq!(
        count(&db, "SELECT count(*) FROM dead_letter_events").await,
        0
    );
}

/// Every file below `dir` (relative paths, sorted), leaving out `skip`.
fn files_below(dir: &Path, skip: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.map_while(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                if e.file_name() != skip {
                    stack.push(p);
                }
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Generates files, some in sub-folders, and a reference copy loaded with
/// `args`. Returns (input, fingerprint of the reference).
async fn folder_and_reference(tmp: &Path, seed: u64, args: &[&str]) -> (PathBuf, Vec<String>) {
    let input = tmp.join("in");
    generate(
        &input,
        6,
        150,
        seed,
        &["--invalid-share", "0.05", "--duplicate-share", "0.05"],
    );
    let nested = input.join("2026/11");
    std::fs::create_dir_all(&nested).expect("mkdir");
    for (i, rel) in files_below(&input, "").into_iter().enumerate() {
        if i % 2 == 1 {
            std::fs::rename(
                input.join(&rel),
                nested.join(rel.file_name().expect("name")),
            )
            .expect("nest");
        }
    }
    let reference = tmp.join("ref");
    for rel in files_below(&input, "") {
        let to = reference.join(&rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(input.join(&rel), &to).expect("copy");
        // The same mtime, so that files are listed (oldest first) and
        // loaded in the same order, and the same copy of a repeated event
        // is kept.
        let mtime = std::fs::metadata(input.join(&rel))
            .and_then(|m| m.modified())
            .expect("mtime");
        std::fs::File::options()
            .write(true)
            .open(&to)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
    }
    let db = test_db().await;
    load_once(&db, &reference, args);
    let want = fingerprint(&db.client().await, &reference).await;
    (input, want)
}

async fn after_load_survives_a_kill_between_commit_and_move(mode: &str) {
    let tmp = tempfile::tempdir().expect("tmp");
    // Batches commit one at a time: exactly one has committed when the
    // loader pauses after its first commit.
    let args = ["--after-load", mode, "--batch-max-files", "2"];
    let (input, want) = folder_and_reference(tmp.path(), 7, &args).await;
    let originals: Vec<(PathBuf, Vec<u8>)> = files_below(&input, "")
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(input.join(&rel)).expect("read");
            (rel, bytes)
        })
        .collect();
    let db = test_db().await;

    // 1. kill -9 after the first commit, before any file is moved.
    let mut loader = Loader::spawn(
        run_cmd(&db, &input)
            .args(args)
            .env("SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS", "60000"),
    );
    wait_for(Duration::from_secs(60), "the first commit", || async {
        loader.logged("pausing")
    })
    .await;
    loader.child.kill().expect("kill -9");
    loader.child.wait().expect("reap");
    let committed = count(&db, "SELECT count(*) FROM ingested_files").await;
    assert_eq!(committed, 2, "the first batch committed");
    assert_eq!(
        files_below(&input, "").len(),
        originals.len(),
        "nothing was moved before the kill"
    );

    // 2. A restart finishes the moves and loads the rest, once.
    load_once(&db, &input, &args);
    assert_eq!(
        files_below(&input, "_archive"),
        Vec::<PathBuf>::new(),
        "the input is empty"
    );
    let archive = input.join("_archive");
    let c = db.client().await;
    for (rel, bytes) in &originals {
        let path = input.join(rel).display().to_string();
        let row = c
            .query_one(
                "SELECT status, disposition, moved_to FROM ingested_files WHERE path = $1",
                &[&path],
            )
            .await
            .expect("one ledger row per file");
        assert_ne!(row.get::<_, String>(0), "rejected");
        let moved_to: Option<String> = row.get(2);
        if mode == "archive" {
            assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("archived"));
            assert_eq!(moved_to, Some(archive.join(rel).display().to_string()));
            assert_eq!(&std::fs::read(archive.join(rel)).expect("archived"), bytes);
        } else {
            assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("deleted"));
            assert_eq!(moved_to, None);
        }
    }
    if mode == "delete" {
        assert!(!archive.exists());
    }
    assert_eq!(fingerprint(&c, &input).await, want);

    // 3. Another run changes nothing.
    load_once(&db, &input, &args);
    assert_eq!(fingerprint(&c, &input).await, want);
}

#[tokio::test]
async fn archive_after_commit_survives_kill_9_between_commit_and_move() {
    after_load_survives_a_kill_between_commit_and_move("archive").await;
}

#[tokio::test]
async fn delete_after_commit_survives_kill_9_between_commit_and_move() {
    after_load_survives_a_kill_between_commit_and_move("delete").await;
}

#[tokio::test]
async fn two_loaders_on_one_folder_never_load_a_file_twice() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    generate(&input, 30, 100, 11, &["--duplicate-share", "0.1"]);
    let reference_dir = tmp.path().join("ref");
    std::fs::create_dir_all(&reference_dir).expect("mkdir");
    for rel in files_below(&input, "") {
        std::fs::copy(input.join(&rel), reference_dir.join(&rel)).expect("copy");
    }
    let args = ["--after-load", "archive", "--batch-max-files", "2"];
    let reference = test_db().await;
    load_once(&reference, &reference_dir, &args);
    // Two loaders commit in any order: which copy of a repeated event is
    // kept may differ (README: "Duplicates are counted").
    let want = fingerprint_with(&reference.client().await, &reference_dir, Copies::Any).await;

    let db = test_db().await;
    let a = Loader::spawn(run_cmd(&db, &input).args(args));
    let b = Loader::spawn(run_cmd(&db, &input).args(args));
    wait_for(
        Duration::from_secs(120),
        "all files loaded and archived",
        || async {
            try_count(&db, "SELECT count(*) FROM ingested_files").await >= Some(30)
                && files_below(&input, "_archive").is_empty()
        },
    )
    .await;
    let (sa, sb) = (a.stop(), b.stop());
    let loaded =
        sa["files_loaded"].as_u64().unwrap_or(0) + sb["files_loaded"].as_u64().unwrap_or(0);
    let dup =
        sa["files_duplicate"].as_u64().unwrap_or(0) + sb["files_duplicate"].as_u64().unwrap_or(0);
    assert_eq!(loaded + dup, 30, "{sa} {sb}");
    assert_eq!(
        sa["files_rejected"].as_u64().unwrap_or(0) + sb["files_rejected"].as_u64().unwrap_or(0),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT path) FROM ingested_files").await,
        30
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 30);
    assert_eq!(
        fingerprint_with(&db.client().await, &input, Copies::Any).await,
        want
    );
}

/// `run --once` over `input` with `args`, which must give up (exit 1);
/// returns its stderr.
fn once_gives_up(url: &str, input: &Path, args: &[&str]) -> String {
    let out = shopstream()
        .args(["run", "--once", "--database-url", url, "--input"])
        .arg(input)
        .args(args)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

#[tokio::test]
async fn once_gives_up_when_the_circuit_opens_and_continuous_mode_keeps_waiting() {
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    // A port that refuses (held, not listening), not an assumed-closed one.
    let refusing = common::HeldPort::new();
    let url = &format!(
        "postgresql://shopstream@{}/none?connect_timeout=2",
        refusing.addr()
    );
    let quick = [
        "--breaker-failures",
        "2",
        "--retry-initial-secs",
        "0.1",
        "--retry-max-secs",
        "0.2",
        "--breaker-open-secs",
        "0.5",
    ];
    let stderr = once_gives_up(url, &input, &quick);
    assert!(
        stderr.contains("giving up after 2 failed attempts"),
        "{stderr}"
    );

    let mut loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", url, "--input"])
            .arg(&input)
            .args(quick),
    );
    wait_for(
        Duration::from_secs(30),
        "the circuit to open and probe",
        || async { loader.logged("circuit open") && loader.logged("probe failed") },
    )
    .await;
    loader.assert_alive();
    loader.stop();
}

/// A trigger that fails every batch holding a `POISON` product with an
/// error that is no row's fault (out of shared memory, SQLSTATE 53200), as
/// Citus does when isolating many refused rows exhausts its lock table.
const POISON_TRIGGER: &str = "
    CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.product_id = 'POISON' THEN
        RAISE EXCEPTION 'out of shared memory (test)' USING ERRCODE = '53200';
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER poison BEFORE INSERT ON ecommerce_events
      FOR EACH ROW EXECUTE FUNCTION poison();";

#[tokio::test]
async fn a_file_whose_batch_keeps_failing_does_not_hold_back_the_others() {
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(POISON_TRIGGER)
        .await
        .expect("trigger");
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    // The poison file is the oldest: listed first, in one batch with the rest.
    std::fs::write(
        input.join("a-poison.csv"),
        format!(
            "{V1_SESSION_QTY}\n\
             6f1c1d52-6a43-4e0b-9a4e-0d3c2b1a0f01,u1,s1,view,POISON,1.00,1,2026-01-01T00:00:00Z\n"
        ),
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(20));
    let report = generate(&input.join("gen"), 4, 300, 71, &[]);
    let quick = [
        "--batch-max-files",
        "10",
        "--breaker-failures",
        "4",
        "--retry-initial-secs",
        "0.05",
        "--retry-max-secs",
        "0.2",
    ];
    // The poison file fails alone until `--once` gives up on it ...
    let stderr = once_gives_up(&db.url, &input, &quick);
    assert!(stderr.contains("out of shared memory (test)"), "{stderr}");
    assert!(stderr.contains("a-poison.csv"), "{stderr}");
    // ... while the four good files, in its first batch, committed.
    let loaded = "SELECT count(*) FROM ingested_files WHERE status = 'loaded'";
    assert_eq!(count(&db, loaded).await, 4, "{stderr}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE path LIKE '%poison%'"
        )
        .await,
        0
    );
    let valid = report["loaded"].as_i64().expect("loaded");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        valid
    );

    // Once what failed it is gone, the file loads.
    db.client()
        .await
        .batch_execute("DROP TRIGGER poison ON ecommerce_events")
        .await
        .expect("drop");
    load_once(&db, &input, &quick);
    assert_eq!(count(&db, loaded).await, 5);
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        valid + 1
    );
}

/// The settle sends the ledger, quality and dead-letter rows and the
/// COMMIT in one round trip: when one of those statements fails, the COMMIT
/// behind it must roll back, so nothing of the batch is committed, the error
/// comes back, and the connection goes on with the next batch.
#[tokio::test]
async fn a_batch_whose_records_fail_commits_nothing() {
    use shopstream::batch::FileStatus;
    use shopstream::pipeline::batch::{load, Reading};
    use shopstream::pipeline::read::ParseConfig;
    use shopstream::sink::dedup::TableIds;
    use shopstream::source::discover::list;
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let mut client = db.client().await;
    client
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'quality refused (test)'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON data_quality_metrics
               FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .expect("trigger");
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("a.csv"),
        "event_id,user_id,event_type,product_id,price,event_time\n\
         00000000-0000-4000-8000-000000000001,u,view,p,,2026-01-01 00:00:00\n\
         not-an-id,u,view,p,,2026-01-01 00:00:00\n",
    )
    .expect("write");
    let files = list(tmp.path()).expect("list");
    shopstream::sink::transaction::prepare(&client)
        .await
        .expect("prepare");
    let reading = Reading::folder(ParseConfig::default());
    let failed = load(
        &mut client,
        &mut TableIds::default(),
        files.clone(),
        &reading,
        false,
    )
    .await;
    let err = failed.expect_err("the quality row was refused").to_string();
    assert!(err.contains("quality refused (test)"), "{err}");
    for table in ["ecommerce_events", "ingested_files", "dead_letter_events"] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 0, "{table} holds a row of the failed batch");
    }
    // No transaction is left open on the connection: the next batch, the
    // trigger gone, commits the file.
    client
        .batch_execute("DROP TRIGGER refuse ON data_quality_metrics")
        .await
        .expect("drop");
    let report = commit(&mut client, files).await;
    assert_eq!(report.files[0].status, FileStatus::Loaded);
    assert_eq!((report.rows_loaded, report.rows_rejected), (1, 1));
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);
}

/// Commits one batch of `files` straight through the library, as the
/// loader does.
async fn commit(
    client: &mut tokio_postgres::Client,
    files: Vec<shopstream::source::discover::Candidate>,
) -> shopstream::batch::BatchReport {
    use shopstream::pipeline::batch::{load, Reading};
    use shopstream::pipeline::read::ParseConfig;
    use shopstream::sink::dedup::TableIds;
    use shopstream::sink::transaction::prepare;
    prepare(client).await.expect("prepare");
    let reading = Reading::folder(ParseConfig::default());
    load(client, &mut TableIds::default(), files, &reading, false)
        .await
        .expect("commit")
}

#[tokio::test]
async fn a_file_gone_before_it_is_read_is_rejected_unless_the_ledger_has_it() {
    use shopstream::batch::FileStatus;
    use shopstream::source::discover::list;
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let mut client = db.client().await;
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("a.csv"),
        "event_id,user_id,event_type,product_id,price,event_time\n\
         00000000-0000-4000-8000-000000000001,u,view,p,,2026-01-01 00:00:00\n",
    )
    .expect("write");
    std::fs::write(tmp.path().join("b.csv"), "whatever\n").expect("write");
    let listed = list(tmp.path()).expect("list");
    let (a, b) = (listed[0].clone(), listed[1].clone());

    // b was listed, then removed before it could be read.
    std::fs::remove_file(&b.path).expect("rm");
    let report = commit(&mut client, vec![a.clone(), b.clone()]).await;
    assert_eq!(report.files[0].status, FileStatus::Loaded);
    assert_eq!(
        report.files[1].status,
        FileStatus::Rejected {
            reason: "the file disappeared before it could be read".into()
        }
    );

    // Another loader had listed a too; a was loaded and moved away before
    // that loader could read it: the claim finds both in the ledger, so
    // neither is read, rejected or recorded again (the next listing
    // finishes them).
    std::fs::remove_file(&a.path).expect("rm");
    let report = commit(&mut client, vec![a.clone(), b.clone()]).await;
    assert!(report.files.is_empty(), "{:?}", report.files);
    assert_eq!(report.elsewhere, [a, b]);
    assert_eq!(report.batch_id, None);
    let statuses = common::counts_by(
        &db,
        "SELECT status, count(*) FROM ingested_files GROUP BY 1",
    )
    .await;
    assert_eq!(
        statuses,
        [("loaded".to_string(), 1), ("rejected".to_string(), 1)].into()
    );
}

/// Lines of a child's stderr with the instant each arrived (stderr is
/// unbuffered, so that is when it was logged, to a millisecond or so).
type Timed = std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>;

fn timed_lines(out: impl std::io::Read + Send + 'static) -> Timed {
    use std::io::BufRead;
    let lines: Timed = Default::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock()
                .expect("lines")
                .push((std::time::Instant::now(), line));
        }
    });
    lines
}

/// The breaker state the metric shows (the label whose gauge is 1).
fn breaker_metric(url: &str) -> Option<String> {
    // `None` when the request fails (the process is being killed).
    let (_, body) = common::try_http_get(url, "/metrics")?;
    ["closed", "open", "half_open"]
        .into_iter()
        .find(|s| {
            common::metric(
                &body,
                &format!("shopstream_circuit_breaker_state{{state=\"{s}\"}}"),
            ) == Some(1.0)
        })
        .map(str::to_string)
}

/// Polls the breaker metric every 20 ms until `stop`; records each change.
fn watch_breaker(
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(std::time::Instant, String)>> {
    std::thread::spawn(move || {
        let mut seen: Vec<(std::time::Instant, String)> = vec![];
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(s) = breaker_metric(&url) {
                if seen.last().is_none_or(|(_, last)| *last != s) {
                    seen.push((std::time::Instant::now(), s));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    })
}

/// The first line from `from` on that contains `needle`: (index, instant).
fn find_line(lines: &Timed, from: usize, needle: &str) -> Option<(usize, std::time::Instant)> {
    let lines = lines.lock().expect("lines");
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, (_, l))| l.contains(needle))
        .map(|(i, (t, _))| (i, *t))
}

async fn wait_line(lines: &Timed, from: usize, needle: &str) -> (usize, std::time::Instant) {
    let mut found = None;
    wait_for(Duration::from_secs(60), needle, || {
        found = find_line(lines, from, needle);
        std::future::ready(found.is_some())
    })
    .await;
    found.expect("found")
}

/// One loader process goes closed → open → half open → closed while its
/// private server is stopped and started, with the breaker's settings
/// visible end to end: it opens after exactly --breaker-failures failures
/// in a row, takes no work while open, probes no sooner than about a
/// second after opening (and by --breaker-open-secs, plus slack), and
/// closes only after --breaker-successes good probes, spaced by
/// --retry-initial-secs. Observed through its log, its breaker metric and
/// /readyz.
#[tokio::test(flavor = "multi_thread")]
async fn one_loader_goes_closed_open_half_open_closed_with_the_configured_timings() {
    common::with_private_server("ss-breaker-", |opts, tmp| async move {
        breaker_scenario(&opts, &tmp).await
    })
    .await;
}

async fn breaker_scenario(opts: &shopstream::db::embedded::EmbeddedOptions, tmp: &Path) {
    use shopstream::db::embedded::EmbeddedServer;
    use std::sync::atomic::{AtomicBool, Ordering};
    const FAILURES: usize = 3;
    const OPEN_SECS: f64 = 2.0;
    const SUCCESSES: u32 = 3;
    const PROBE_GAP: f64 = 0.4;
    let input = tmp.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let file = |name: &str, n: u32| {
        std::fs::write(
            input.join(name),
            format!(
                "event_id,user_id,event_type,product_id,price,event_time\n\
                 00000000-0000-4000-8000-{n:012},u,view,p,,2026-01-01 00:00:00\n"
            ),
        )
        .expect("write");
    };
    file("a.csv", 1);
    let server = EmbeddedServer::start(opts).await.expect("start the server");
    let url = server.url("shopstream");
    let mut child = shopstream()
        .args(["--log-format", "json", "run", "--database-url", &url])
        .args(["--relist-secs", "0.3", "--retry-max-secs", "0.4"])
        .args(["--retry-initial-secs", &PROBE_GAP.to_string()])
        .args(["--breaker-failures", &FAILURES.to_string()])
        .args(["--breaker-open-secs", &OPEN_SECS.to_string()])
        .args(["--breaker-successes", &SUCCESSES.to_string(), "--input"])
        .arg(&input)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let lines = timed_lines(child.stderr.take().expect("stderr"));
    let mut child = Kill(child);
    let log = || {
        lines
            .lock()
            .expect("lines")
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (_, _) = wait_line(&lines, 0, "serving /metrics").await;
    let http = {
        let all = log();
        let at = all.find("http://127.0.0.1:").expect("the endpoint's URL");
        let port: String = all[at + 17..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        format!("http://127.0.0.1:{port}")
    };
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = watch_breaker(http.clone(), stop.clone());

    // Closed: the loader works.
    wait_line(&lines, 0, "1 file(s), 1 rows").await;
    assert_eq!(common::http_get(&http, "/readyz").0, 200);

    // The database goes away: FAILURES - 1 retries, then the circuit opens.
    let from = lines.lock().expect("lines").len();
    server.stop_now().await.expect("stop the server");
    let (opened_at, t_open) = wait_line(&lines, from, "circuit open").await;
    let attempts: Vec<(u64, String)> = lines.lock().expect("lines")[from..opened_at]
        .iter()
        .filter_map(|(_, l)| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("retrying"))
        })
        .map(|v| {
            let attempt = v["attempt"].as_u64().unwrap_or(0);
            (attempt, v["message"].to_string())
        })
        .collect();
    let numbers: Vec<u64> = attempts.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        numbers,
        (1..FAILURES as u64).collect::<Vec<_>>(),
        "{attempts:?}\n{}",
        log()
    );
    let open_line = lines.lock().expect("lines")[opened_at].1.clone();
    assert!(
        open_line.contains(&format!("{FAILURES} failures in a row")),
        "{open_line}"
    );
    let (status, body) = common::http_get(&http, "/readyz");
    assert_eq!(status, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).expect("health JSON");
    assert_eq!(health["breaker"], "open", "{health}");
    assert!(health["last_error"].is_string(), "{health}");

    // Open: nothing is tried until the probe, which comes after the probe
    // backoff's first step (--retry-initial-secs, ±20% jitter), and never
    // much later than --breaker-open-secs.
    let (probed_at, t_probe) = wait_line(&lines, opened_at, "probe failed").await;
    let waited = t_probe.duration_since(t_open).as_secs_f64();
    assert!(
        (PROBE_GAP * 0.75..=OPEN_SECS + 1.5).contains(&waited),
        "first probe {waited:.2} s after opening\n{}",
        log()
    );
    assert!(
        !lines.lock().expect("lines")[opened_at..probed_at]
            .iter()
            .any(|(_, l)| l.contains("retrying")),
        "no work while open\n{}",
        log()
    );

    // The database is back: half open, SUCCESSES probes, closed.
    let server = EmbeddedServer::start(opts)
        .await
        .expect("restart the server");
    let (closed_at, t_closed) = wait_line(&lines, probed_at, "circuit closed").await;
    // Intake resumes in the same process.
    file("b.csv", 2);
    wait_line(&lines, closed_at, "1 file(s), 1 rows").await;
    assert_eq!(common::http_get(&http, "/readyz").0, 200);
    stop.store(true, Ordering::Relaxed);
    let states = watcher.join().expect("watcher");
    let names: Vec<&str> = states.iter().map(|(_, s)| s.as_str()).collect();
    // Closed, open, then (a failed probe may be seen half open too)
    // half open and closed: never closed in between.
    let n = names.len();
    assert!(
        n >= 4
            && names[..2] == ["closed", "open"]
            && names[n - 2..] == ["half_open", "closed"]
            && !names[1..n - 1].contains(&"closed"),
        "states seen on /metrics: {names:?}"
    );
    // Half open from its last opening after the restart until the close.
    let t_half = states
        .iter()
        .rev()
        .find(|(_, s)| s == "half_open")
        .map(|(t, _)| *t)
        .expect("half open seen");
    assert!(t_half > t_probe, "half open again after the failed probe");
    let half_open = t_closed.duration_since(t_half).as_secs_f64();
    let least = PROBE_GAP * f64::from(SUCCESSES - 1);
    assert!(
        half_open >= least - 0.15 && half_open < least + 5.0,
        "half open for {half_open:.2} s; {SUCCESSES} probes {PROBE_GAP} s apart need {least:.2} s\n{}",
        log()
    );
    common::signal(&child.0, "-TERM");
    let status = common::wait_exit(&mut child.0, Duration::from_secs(30));
    assert!(status.success(), "{status:?}\n{}", log());
    server.stop_now().await.expect("stop the server");
}
