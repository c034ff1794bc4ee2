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
        serde_json::from_str(load_once(&db, &input, &["--direct-min-batch-bytes", "0"]).trim())
            .expect("summary");
    assert_eq!(summary["rows_read"], 2600);
    assert_eq!(summary["rows_loaded"], 2595);
    assert_eq!(summary["rows_rejected"], 5);
    // The refused rows were first COPYed on the direct path: the server's
    // refusal sent the batch through staging, where they were isolated.
    assert_eq!(summary["batches_fell_back"], 1);

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
    // One loading connection, so that exactly one batch has committed
    // when the loader pauses after its first commit.
    let args = [
        "--after-load",
        mode,
        "--batch-max-files",
        "2",
        "--connections",
        "1",
    ];
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
    let out = shopstream()
        .args(["run", "--once", "--database-url", url, "--input"])
        .arg(&input)
        .args(quick)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
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

/// Commits one batch of `files` straight through the library, as the
/// loader does.
async fn commit(
    client: &mut tokio_postgres::Client,
    files: Vec<shopstream::source::discover::Candidate>,
) -> shopstream::sink::batch::BatchReport {
    use shopstream::pipeline::parse::{parse_batch, ParseConfig};
    use shopstream::sink::batch::{commit_batch, prepare, Producer, RawLines};
    prepare(client).await.expect("prepare");
    let produce = |files: Vec<_>, _plan| -> Producer {
        Box::new(move |tx| {
            parse_batch(&files, &ParseConfig::default(), &tx).map_err(|_| "aborted".to_string())
        })
    };
    let raw: RawLines = std::sync::Arc::new(|_, _| Default::default());
    commit_batch(client, files, produce, &raw, None, false)
        .await
        .expect("commit")
}

#[tokio::test]
async fn a_file_gone_before_it_is_read_is_rejected_unless_the_ledger_has_it() {
    use shopstream::sink::batch::FileStatus;
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

#[tokio::test]
async fn the_health_state_follows_the_breaker_and_recovers_with_the_database() {
    use clap::Parser;
    use shopstream::db::connect::{Database, DbArgs};
    use shopstream::pipeline::breaker::BreakerState;
    use shopstream::pipeline::health::Health;
    use shopstream::pipeline::run::{run, RunArgs};
    use shopstream::shutdown::Shutdown;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let cli = Cli::try_parse_from([
        "x",
        "--input",
        tmp.path().to_str().expect("utf-8"),
        "--breaker-failures",
        "2",
        "--breaker-open-secs",
        "0.5",
        "--retry-initial-secs",
        "0.1",
    ])
    .expect("args");
    let health = Health::default();
    let shutdown = Shutdown::new();

    // A database that refuses connections: the circuit opens.
    let refusing = common::HeldPort::new();
    let down = Database::open(&DbArgs {
        database_url: Some(format!("postgresql://x@{}/none", refusing.addr())),
        ..DbArgs::default()
    })
    .await
    .expect("open");
    let loader = {
        let (health, shutdown, args) = (health.clone(), shutdown.clone(), cli.run.clone());
        tokio::spawn(async move { run(&args, &down, &shutdown, &health, |_| {}).await })
    };
    wait_for(Duration::from_secs(30), "the circuit to open", || async {
        health.snapshot().breaker == BreakerState::Open
    })
    .await;
    let h = health.snapshot();
    assert!(!h.ready);
    assert!(h.consecutive_failures >= 2);
    assert!(h
        .last_error
        .is_some_and(|e| e.contains("could not connect")));
    shutdown.trigger();
    loader.await.expect("join").expect("a clean stop");

    // A reachable database: ready, closed, no error.
    let db = test_db().await;
    let up = Database::open(&DbArgs {
        database_url: Some(db.url.clone()),
        ..DbArgs::default()
    })
    .await
    .expect("open");
    let shutdown = Shutdown::new();
    let health = Health::default();
    let loader = {
        let (health, shutdown, args) = (health.clone(), shutdown.clone(), cli.run.clone());
        tokio::spawn(async move { run(&args, &up, &shutdown, &health, |_| {}).await })
    };
    wait_for(Duration::from_secs(30), "ready", || async {
        health.snapshot().ready
    })
    .await;
    let h = health.snapshot();
    assert_eq!(h.breaker, BreakerState::Closed);
    assert_eq!(h.last_error, None);
    shutdown.trigger();
    loader.await.expect("join").expect("a clean stop");
}
