//! Bounded inputs: --max-columns, --max-file-bytes and --max-line-bytes
//! reject a file with a reason naming the limit; awkward file names (spaces,
//! unicode, newlines) load, are ledgered and archived under their exact
//! names and are quoted in logs; symlinks leading out of the input folder
//! are never followed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{count, load_once, shopstream, test_db, wait_for, Loader, TestDb};

const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";

/// A valid v1 file of `n` purchases whose ids start at `first`.
fn v1_file(first: u32, n: u32) -> String {
    let mut s = format!("{V1}\n");
    for i in first..first + n {
        s.push_str(&format!(
            "00000000-0000-4000-8000-{i:012x},U{i},purchase,P{i},12.50,2026-01-10T11:00:00Z\n"
        ));
    }
    s
}

async fn ledger(db: &TestDb) -> Vec<(String, String, Option<String>, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT path, status, reason, disposition FROM ingested_files ORDER BY path",
            &[],
        )
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn reason_of(
    rows: &[(String, String, Option<String>, Option<String>)],
    name: &str,
) -> (String, String) {
    let r = rows
        .iter()
        .find(|r| r.0.ends_with(name))
        .unwrap_or_else(|| panic!("{name} in the ledger: {rows:?}"));
    (r.1.clone(), r.2.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_on_columns_file_size_and_line_length_reject_with_a_reason() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::write(input.join("ok.csv"), v1_file(1, 5)).expect("write");
    // Many fields on one row (a CSV that is not what it claims to be).
    let mut wide = v1_file(100, 2);
    wide.push_str(&format!("{}\n", vec!["x"; 40].join(",")));
    std::fs::write(input.join("wide.csv"), wide).expect("write");
    // A header with too many columns.
    let header: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    std::fs::write(
        input.join("wide_header.csv"),
        format!("{}\n1\n", header.join(",")),
    )
    .expect("write");
    // A file over the size limit (30 KiB).
    std::fs::write(input.join("big.csv"), v1_file(200, 500)).expect("write");
    // A record over the line limit.
    std::fs::write(
        input.join("long.csv"),
        format!("{V1}\n{}\n", "y".repeat(5000)),
    )
    .expect("write");

    let out = shopstream()
        .env("SHOPSTREAM_MAX_COLUMNS", "20")
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .args(["--max-file-bytes", "30K", "--max-line-bytes", "4KiB"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("summary JSON on stdout");
    assert_eq!(summary["files_loaded"], 1, "{summary}");
    assert_eq!(summary["files_quarantined"], 4, "{summary}");

    let rows = ledger(&db).await;
    let (status, reason) = reason_of(&rows, "/wide.csv");
    assert_eq!(status, "rejected");
    assert_eq!(
        reason,
        "the record starting on line 4 has more than 20 fields (--max-columns)"
    );
    let (_, reason) = reason_of(&rows, "/wide_header.csv");
    assert!(
        reason.contains("line 1 has more than 20 fields (--max-columns)"),
        "{reason}"
    );
    let (_, reason) = reason_of(&rows, "/big.csv");
    assert!(
        reason.starts_with("the file is ")
            && reason.ends_with("over --max-file-bytes 30 KiB: not read"),
        "{reason}"
    );
    let (_, reason) = reason_of(&rows, "/long.csv");
    assert!(
        reason.contains("longer than 4096 bytes (--max-line-bytes)"),
        "{reason}"
    );
    let sidecar = std::fs::read_to_string(input.join("_quarantine/big.csv.reason.txt"))
        .expect("the quarantined file's reason");
    assert!(sidecar.contains("--max-file-bytes"), "{sidecar}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 5);

    // A limit that is not a size is refused up front.
    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .args(["--max-file-bytes", "lots"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a size"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_file_names_load_ledger_and_archive_under_their_names() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("sub dir")).expect("mkdir");
    let names = [
        "with space.csv",
        "ünïcødé-事件.csv",
        "new\nline.csv",
        "sub dir/tab\tand 'quote\".csv",
    ];
    for (i, name) in names.iter().enumerate() {
        std::fs::write(input.join(name), v1_file(i as u32 * 10 + 1, 3)).expect("write");
    }
    std::fs::write(input.join("bad\nname.csv"), "what,is,this\n1,2,3\n").expect("write");

    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .args(["--after-load", "archive", "--log-level", "debug"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        12
    );
    let rows = ledger(&db).await;
    let prefix = format!("{}/", input.display());
    for name in names {
        let row = rows
            .iter()
            .find(|r| r.0 == format!("{prefix}{name}"))
            .unwrap_or_else(|| panic!("{name:?} ledgered under its exact name: {rows:?}"));
        assert_eq!(
            (row.1.as_str(), row.3.as_deref()),
            ("loaded", Some("archived"))
        );
        assert!(
            input.join("_archive").join(name).is_file(),
            "{name:?} archived under its name"
        );
        assert!(!input.join(name).exists());
    }
    let (status, _) = reason_of(&rows, "/bad\nname.csv");
    assert_eq!(status, "rejected");
    assert!(input.join("_quarantine/bad\nname.csv").is_file());
    assert!(input.join("_quarantine/bad\nname.csv.reason.txt").is_file());
    // Logs quote names: a newline in a name never starts a log line.
    assert!(
        stderr.contains("bad\\nname.csv"),
        "the name is escaped in the log:\n{stderr}"
    );
    for line in stderr.lines() {
        assert!(
            !line.starts_with("name.csv") && !line.starts_with("line.csv"),
            "a file name broke a log line: {line:?}\n{stderr}"
        );
    }
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_out_of_the_input_folder_are_never_followed() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::create_dir_all(outside.join("deeper")).expect("mkdir");
    std::fs::write(outside.join("secret.csv"), v1_file(900, 2)).expect("write");
    std::fs::write(outside.join("deeper/more.csv"), v1_file(950, 2)).expect("write");
    std::fs::write(input.join("real.csv"), v1_file(1, 4)).expect("write");
    // Out of the folder: a file, a folder, a relative escape.
    symlink(&outside.join("secret.csv"), &input.join("leak.csv"));
    symlink(&outside, &input.join("linked_dir"));
    symlink(
        Path::new("../outside/secret.csv"),
        &input.join("relative.csv"),
    );
    // Inside the folder: loaded under the link's name (same content as its
    // target, so a duplicate file). Dangling: skipped.
    symlink(&input.join("real.csv"), &input.join("alias.csv"));
    symlink(&input.join("nothing.csv"), &input.join("dangling.csv"));

    let loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(&input)
            .args(["--relist-secs", "0.2"]),
    );
    wait_for(Duration::from_secs(60), "two files ledgered", || async {
        common::try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(2)
    })
    .await;
    // Several listings later (counted by the loader's own metric), still
    // nothing from outside, warned once each.
    let url = loader.http_url().expect("the endpoint's URL in the log");
    let listings = || {
        let (status, body) = common::http_get(&url, "/metrics");
        assert_eq!(status, 200, "{body}");
        common::metric(&body, "shopstream_listings_total").unwrap_or(0.0)
    };
    let first = listings();
    assert!(first >= 1.0, "the listings are counted");
    wait_for(Duration::from_secs(60), "three more listings", || async {
        listings() >= first + 3.0
    })
    .await;
    let log = loader.log();
    let summary = loader.stop();
    assert_eq!(summary["files_loaded"], 1, "{summary}");
    assert_eq!(summary["files_duplicate"], 1, "{summary}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 4);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE path LIKE '%leak%' OR path LIKE '%relative%'
                OR path LIKE '%linked_dir%' OR path LIKE '%outside%'"
        )
        .await,
        0
    );
    for link in ["leak.csv", "relative.csv"] {
        let warnings = log
            .lines()
            .filter(|l| l.contains(link) && l.contains("leads outside the input folder"))
            .count();
        assert_eq!(warnings, 1, "{link} warned about once:\n{log}");
    }
    assert!(log.contains("dangling"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("linked_dir") && l.contains("leads outside")),
        "{log}"
    );
    // The outside files are untouched.
    assert!(outside.join("secret.csv").is_file());
    assert!(outside.join("deeper/more.csv").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_limits_keep_ordinary_files_loading() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    common::generate(&input, 2, 300, 3, &[]);
    let out = load_once(&db, &input, &[]);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("summary");
    assert_eq!(summary["files_loaded"], 2, "{summary}");
}
