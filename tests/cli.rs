//! The binary as a person uses it: the demo, and stopping long-running
//! commands with real signals.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{shopstream, signal, test_db, wait_exit};

fn csv_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn demo_prints_batches_and_proves_exactly_once() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let out = shopstream()
        .args([
            "demo",
            "--duration-secs",
            "3",
            "--rate",
            "400",
            "--database-url",
            &db.url,
        ])
        .arg("--input")
        .arg(tmp.path().join("demo"))
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("loaded  batch"), "{stdout}");
    assert!(
        stdout.contains("dashboard: http://127.0.0.1:"),
        "the demo prints its dashboard URL: {stdout}"
    );
    assert!(
        stdout.contains("exactly once: every generated row is in exactly one place"),
        "{stdout}"
    );
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    let events: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM ecommerce_events", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        events > 500,
        "3 s at 400 events/s loads more than 500 rows, got {events}"
    );
}

#[tokio::test]
async fn continuous_generator_stops_cleanly_on_sigint_with_an_exact_report() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("out");
    let report = tmp.path().join("report.json");
    let mut child = shopstream()
        .args([
            "generate",
            "--rate",
            "2000",
            "--events-per-file",
            "100",
            "--output",
        ])
        .arg(&dir)
        .arg("--report-json")
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Stop it once it has written a few files (not after a fixed time).
    let written = |dir: &Path| {
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".csv"))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
    };
    let start = Instant::now();
    while written(&dir) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no 5 files written"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-INT");
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());

    let files = csv_files(&dir);
    assert!(
        files.len() >= 5,
        "stopped after at least 5 files, got {}",
        files.len()
    );
    assert!(
        files.iter().all(|f| !f
            .file_name()
            .expect("name")
            .to_string_lossy()
            .starts_with('.')),
        "no temp file left behind: {files:?}"
    );
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(rep["files"].as_array().expect("files").len(), files.len());
    let rows: usize = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read").lines().count() - 1)
        .sum();
    assert_eq!(rep["rows"].as_u64(), Some(rows as u64));
}

#[tokio::test]
async fn sigterm_during_a_load_exits_zero_and_leaves_whole_files_only() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    let gen = shopstream()
        .args([
            "generate",
            "--files",
            "60",
            "--events-per-file",
            "500",
            "--output",
        ])
        .arg(&dir)
        .output()
        .expect("generate");
    assert!(gen.status.success());

    let mut child = shopstream()
        .args([
            "run",
            "--once",
            "--batch-max-files",
            "1",
            "--database-url",
            &db.url,
            "--input",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait until loading is under way, then ask it to stop.
    let c = db.client().await;
    let start = Instant::now();
    loop {
        let n: i64 = match c
            .query_one("SELECT count(*) FROM ingested_files", &[])
            .await
        {
            Ok(r) => r.get(0),
            Err(_) => 0,
        };
        if n > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "loading never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());

    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM ingested_files),
                    (SELECT coalesce(sum(rows_loaded), 0)::int8 FROM ingested_files),
                    (SELECT count(*) FROM ecommerce_events),
                    (SELECT coalesce(sum(rows_rejected), 0)::int8 FROM ingested_files),
                    (SELECT count(*) FROM dead_letter_events)",
            &[],
        )
        .await
        .expect("state");
    let files: i64 = row.get(0);
    assert!(files < 60, "stopped before the end ({files} files)");
    // Only whole files are visible: the events and dead letters present are
    // exactly those of the files the ledger records.
    assert_eq!(row.get::<_, i64>(1), row.get::<_, i64>(2));
    assert_eq!(row.get::<_, i64>(3), row.get::<_, i64>(4));

    // A restart finishes the job.
    let again = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&dir)
        .output()
        .expect("rerun");
    assert!(again.status.success());
    let n: i64 = c
        .query_one("SELECT count(*) FROM ingested_files", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 60);
}

#[test]
fn schema_list_and_show_print_the_registry_without_a_database() {
    let list = common::run_ok(shopstream().args(["schema", "list"]));
    for layout in [
        "v1",
        "v2",
        "v3 (current)",
        "seed000",
        "seed001",
        "seed002",
        "seed003",
        "seed004",
    ] {
        assert!(list.contains(layout), "{layout} missing from:\n{list}");
    }
    let show = common::run_ok(shopstream().args(["schema", "show", "seed003", "--format", "json"]));
    let j: serde_json::Value = serde_json::from_str(&show).expect("json");
    assert_eq!(j["name"], "seed003");
    assert_eq!(j["columns"].as_array().map(Vec::len), Some(12));
    assert_eq!(j["columns"][11]["name"], "source_system");
    assert_eq!(j["columns"][11]["maps_to"][0], "extra");
    let text = common::run_ok(shopstream().args(["schema", "show", "v1"]));
    assert!(text.contains("Canonical columns v1 lacks"), "{text}");
    let bad = shopstream()
        .args(["schema", "show", "v9"])
        .output()
        .expect("spawn");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("seed004"),
        "lists the valid layouts"
    );
}

/// Runs a shopstream command line under `script`, so that it has a
/// terminal; returns everything it drew.
fn on_a_terminal(args: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_shopstream");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &format!("{bin} {args}"), "/dev/null"])
        .env("SHOPSTREAM_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .expect("script(1) from util-linux");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn bounded_work_shows_a_progress_bar_on_a_terminal_and_plain_lines_otherwise() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    let gen = format!(
        "generate --output {} --files 20 --events-per-file 500 --seed 2",
        dir.display()
    );
    let drawn = on_a_terminal(&gen);
    assert!(
        drawn.contains("generate [") && drawn.contains("events") && drawn.contains("ETA"),
        "{drawn}"
    );
    let drawn = on_a_terminal(&format!(
        "run --once --database-url '{}' --input {}",
        db.url,
        dir.display()
    ));
    assert!(
        drawn.contains("load [") && drawn.contains("ETA") && drawn.contains("rows loaded"),
        "{drawn}"
    );

    // Off a terminal: no bar, no escape codes, just log lines.
    let out = shopstream()
        .args([
            "generate",
            "--files",
            "2",
            "--events-per-file",
            "10",
            "--output",
        ])
        .arg(tmp.path().join("plain"))
        .output()
        .expect("generate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        !stderr.contains("ETA") && !stderr.contains('\x1b'),
        "{stderr}"
    );
}
