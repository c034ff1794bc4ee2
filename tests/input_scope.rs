//! Nothing in the input can hang the loader, and only input is touched:
//! a FIFO swapped in after the listing is neither read nor moved, a read
//! that stalls is given up while the other files load, `--include` keeps
//! other files out, system folders are refused at start, a non-CSV file's
//! content is never repeated in its reason, and limits of zero are refused.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{count, shopstream, test_db, wait_exit, wait_for, Loader, TestDb};

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";

/// A valid v1 file of `n` views whose ids start at `first`.
fn v1_file(first: u32, n: u32) -> String {
    let mut s = format!("{V1}\n");
    for i in first..first + n {
        s.push_str(&format!(
            "00000000-0000-4000-8000-{i:012x},U{i},view,P{i},2.50,2026-01-10T11:00:00Z\n"
        ));
    }
    s
}

/// Writes `text` to `path` with a modification time `age_secs` ago (the
/// listing loads the oldest first).
fn write_aged(path: &Path, text: &str, age_secs: u64) {
    std::fs::write(path, text).expect("write");
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(age_secs))
        .expect("set mtime");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

async fn ledgered(db: &TestDb, name: &str) -> Option<String> {
    let c = db.client().await;
    let rows = c
        .query(
            "SELECT status FROM ingested_files WHERE path LIKE '%/' || $1",
            &[&name],
        )
        .await
        .ok()?;
    rows.first().map(|r| r.get(0))
}

async fn ledger_count(db: &TestDb) -> i64 {
    common::try_count(db, "SELECT count(*) FROM ingested_files")
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_swapped_in_after_the_listing_is_neither_read_nor_moved() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    write_aged(&input.join("a.csv"), &v1_file(1, 3), 300);
    write_aged(&input.join("x.csv"), &v1_file(10, 3), 200);
    write_aged(&input.join("c.csv"), &v1_file(20, 3), 100);
    // One file per batch, one batch at a time, and a pause after each
    // commit: x.csv is listed, then swapped for a FIFO before it is opened.
    let mut loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS", "3000")
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--batch-max-files", "1"])
            .args(["--after-load", "archive"])
            // Only the non-blocking open can pass this test, not the bound.
            .args(["--read-timeout-secs", "100000"]),
    );
    wait_for(Duration::from_secs(60), "a.csv committed", || async {
        ledger_count(&db).await >= 1
    })
    .await;
    assert_eq!(ledgered(&db, "a.csv").await.as_deref(), Some("loaded"));
    std::fs::remove_file(input.join("x.csv")).expect("rm");
    mkfifo(&input.join("x.csv"));

    // Before: opening the FIFO blocked the reading thread forever.
    let status = wait_exit(&mut loader.child, Duration::from_secs(60));
    let log = loader.log();
    assert!(status.success(), "{log}");
    assert_eq!(
        ledgered(&db, "c.csv").await.as_deref(),
        Some("loaded"),
        "{log}"
    );
    assert_eq!(ledgered(&db, "x.csv").await, None, "{log}");
    assert!(is_fifo(&input.join("x.csv")), "the FIFO stays where it is");
    assert!(!input.join("_archive/x.csv").exists());
    assert!(!input.join("_quarantine").exists());
    assert!(input.join("_archive/c.csv").is_file());
    assert!(log.contains("replaced by a FIFO"), "{log}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
}

/// Files a.csv, stall.csv (whose reads block while `.stall.csv.stall`
/// exists) and b.csv.
fn stalling_input(root: &Path) -> std::path::PathBuf {
    let input = root.join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("a.csv"), v1_file(1, 2)).expect("write");
    std::fs::write(input.join("stall.csv"), v1_file(10, 2)).expect("write");
    std::fs::write(input.join("b.csv"), v1_file(20, 2)).expect("write");
    std::fs::write(input.join(".stall.csv.stall"), "").expect("marker");
    input
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_read_is_given_up_while_the_other_files_load_and_retried_later() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = stalling_input(tmp.path());
    let mut loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_STALL_READ", "stall.csv")
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--read-timeout-secs", "1", "--relist-secs", "0.2"])
            .args(["--after-load", "archive"]),
    );
    // Same batch as the stalled file, and still loaded.
    wait_for(
        Duration::from_secs(60),
        "a.csv and b.csv loaded",
        || async { ledger_count(&db).await >= 2 },
    )
    .await;
    assert_eq!(ledgered(&db, "a.csv").await.as_deref(), Some("loaded"));
    assert_eq!(ledgered(&db, "b.csv").await.as_deref(), Some("loaded"));
    assert_eq!(ledgered(&db, "stall.csv").await, None);
    assert!(input.join("stall.csv").is_file(), "not moved");
    assert!(!input.join("_quarantine").exists());
    let log = loader.log();
    assert!(log.contains("stalled"), "{log}");
    loader.assert_alive();
    // The mount recovers: the abandoned read ends and the file loads.
    std::fs::remove_file(input.join(".stall.csv.stall")).expect("unstall");
    wait_for(Duration::from_secs(60), "stall.csv loaded", || async {
        ledgered(&db, "stall.csv").await.as_deref() == Some("loaded")
    })
    .await;
    let summary = loader.stop();
    assert_eq!(summary["files_loaded"], 3, "{summary}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn once_returns_and_a_stop_is_honoured_while_a_read_stalls() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = stalling_input(tmp.path());
    let mut once = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_STALL_READ", "stall.csv")
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--read-timeout-secs", "1", "--after-load", "archive"]),
    );
    let status = wait_exit(&mut once.child, Duration::from_secs(60));
    assert!(status.success(), "{}", once.log());
    let mut stdout = String::new();
    if let Some(mut o) = once.child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut stdout).expect("stdout");
    }
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).expect("summary");
    assert_eq!(summary["files_loaded"], 2, "{summary}");
    assert!(input.join("stall.csv").is_file(), "not moved");
    assert_eq!(ledgered(&db, "stall.csv").await, None);

    // A running loader stuck on the file stops at the first SIGTERM.
    let mut loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_STALL_READ", "stall.csv")
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--read-timeout-secs", "100000", "--relist-secs", "0.2"]),
    );
    wait_for(Duration::from_secs(60), "the read blocked", || async {
        loader.logged("fault injection")
    })
    .await;
    common::signal(&loader.child, "-TERM");
    let status = wait_exit(&mut loader.child, Duration::from_secs(30));
    assert!(status.success(), "{}", loader.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_listing_does_not_freeze_the_loader() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = stalling_input(tmp.path());
    let loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_STALL_LIST", "stall.csv")
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--read-timeout-secs", "1", "--relist-secs", "0.2"])
            .args(["--retry-initial-secs", "0.2", "--retry-max-secs", "0.5"]),
    );
    // Before: the listing blocked the loader (and its stop) for good.
    wait_for(
        Duration::from_secs(60),
        "the stalled listing logged",
        || async { loader.logged("made no progress") },
    )
    .await;
    // The mount recovers: the same listing finishes and its files load.
    std::fs::remove_file(input.join(".stall.csv.stall")).expect("unstall");
    wait_for(
        Duration::from_secs(60),
        "all three files loaded",
        || async { ledger_count(&db).await == 3 },
    )
    .await;
    let summary = loader.stop();
    assert_eq!(summary["files_loaded"], 3, "{summary}");

    // A stop is honoured while the listing is stuck.
    std::fs::write(input.join(".stall.csv.stall"), "").expect("marker");
    std::fs::write(input.join("stall.csv"), v1_file(30, 2)).expect("rewrite");
    let mut loader = Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_STALL_LIST", "stall.csv")
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--read-timeout-secs", "1", "--relist-secs", "0.2"]),
    );
    wait_for(
        Duration::from_secs(60),
        "the stalled listing logged",
        || async { loader.logged("made no progress") },
    )
    .await;
    common::signal(&loader.child, "-TERM");
    let status = wait_exit(&mut loader.child, Duration::from_secs(30));
    assert!(status.success(), "{}", loader.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_included_files_are_read_or_moved() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub")).expect("mkdir");
    std::fs::write(input.join("a.csv"), v1_file(1, 2)).expect("write");
    std::fs::write(input.join("sub/b.CSV"), v1_file(10, 2)).expect("write");
    let others = [
        ("notes.txt", "remember the milk\n"),
        ("secrets.env", "DB_PASSWORD=hunter2\n"),
        ("sub/readme.md", "# hello\n"),
    ];
    for (name, text) in others {
        std::fs::write(input.join(name), text).expect("write");
    }
    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .args(["--after-load", "archive"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["files_loaded"], 2, "{summary}");
    assert_eq!(summary["files_rejected"], 0, "{summary}");
    for (name, text) in others {
        assert_eq!(
            std::fs::read_to_string(input.join(name)).ok().as_deref(),
            Some(text),
            "{name} untouched"
        );
    }
    assert!(!input.join("_quarantine").exists());
    assert!(input.join("_archive/sub/b.CSV").is_file());
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 2);

    // A pattern with a folder matches the path below the input.
    let db = test_db().await;
    let input = tmp.path().join("in2");
    std::fs::create_dir_all(input.join("2026/12")).expect("mkdir");
    std::fs::write(input.join("2026/12/a.csv"), v1_file(1, 2)).expect("write");
    std::fs::write(input.join("top.csv"), v1_file(10, 2)).expect("write");
    let out = shopstream()
        .env("SHOPSTREAM_INCLUDE", "2026/**/*.csv,*.tsv")
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .output()
        .expect("run");
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    assert_eq!(summary["files_loaded"], 1, "{summary}");
    assert_eq!(ledgered(&db, "top.csv").await, None);
}

/// `run --once` that cannot commit anything (no database answers), so that
/// even if a refusal regressed nothing could be moved.
fn run_refused(tmp: &Path, args: &[&std::ffi::OsStr], env: Option<(&str, &str)>) -> (i32, String) {
    let mut cmd = shopstream();
    cmd.args([
        "run",
        "--once",
        "--database-url",
        "postgresql://127.0.0.1:1/none",
    ])
    .args(["--breaker-failures", "1", "--retry-initial-secs", "0.05"])
    .arg("--data-dir")
    .arg(tmp.join("data"))
    .args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn system_folders_are_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let link = tmp.path().join("usr-link");
    std::os::unix::fs::symlink("/usr", &link).expect("symlink");
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let cases: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec![os("--input"), os("/")],
        vec![os("--input"), os("/etc")],
        vec![os("--input"), os("/usr/share/..")],
        vec![os("--input"), link.as_os_str()],
        vec![
            os("--input"),
            input.as_os_str(),
            os("--archive-dir"),
            os("/"),
        ],
        vec![
            os("--input"),
            input.as_os_str(),
            os("--quarantine-dir"),
            os("/var"),
        ],
    ];
    for args in &cases {
        let (code, stderr) = run_refused(tmp.path(), args, None);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("a system folder"), "{args:?}: {stderr}");
    }
    let (code, stderr) = run_refused(tmp.path(), &[], Some(("SHOPSTREAM_INPUT", "/")));
    assert_eq!(code, 2, "{stderr}");
    assert!(!tmp.path().join("data").exists(), "nothing created");
    assert!(!input.join("_quarantine").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_csv_file_is_rejected_without_repeating_its_content() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("ok.csv"), v1_file(1, 2)).expect("write");
    std::fs::write(
        input.join("settings.csv"),
        "db_password=hunter2\nretries=3\n",
    )
    .expect("write");
    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .args(["--log-level", "debug"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    let reason: String = db
        .client()
        .await
        .query_one(
            "SELECT reason FROM ingested_files WHERE path LIKE '%/settings.csv'",
            &[],
        )
        .await
        .expect("ledgered")
        .get(0);
    assert!(
        reason.contains("does not look like a CSV header"),
        "{reason}"
    );
    let sidecar = std::fs::read_to_string(input.join("_quarantine/settings.csv.reason.txt"))
        .expect("reason file");
    for (what, text) in [
        ("ledger", reason.as_str()),
        ("reason file", sidecar.as_str()),
        ("stderr", &stderr),
        ("stdout", &stdout),
    ] {
        assert!(!text.contains("hunter2"), "{what}: {text}");
    }
    assert!(
        stderr.contains("settings.csv"),
        "the file is still named: {stderr}"
    );
}

#[test]
fn limits_of_zero_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    for option in [
        "--max-line-bytes",
        "--max-file-bytes",
        "--batch-max-bytes",
        "--read-timeout-secs",
    ] {
        let (code, stderr) = run_refused(
            tmp.path(),
            &[
                "--input".as_ref(),
                input.as_os_str(),
                option.as_ref(),
                "0".as_ref(),
            ],
            None,
        );
        assert_eq!(code, 2, "{option} 0: {stderr}");
        assert!(stderr.contains(option), "{option}: {stderr}");
    }
    assert!(!tmp.path().join("data").exists(), "nothing created");
}
