//! Shutdown with a batch in flight, held open right before its COMMIT by
//! the fault-injection hook `SHOPSTREAM_DEBUG_PAUSE_BEFORE_COMMIT_MS`: a
//! first SIGTERM lets that batch commit and exits 0; a second signal exits
//! at once (status 130) and the open transaction rolls back, so the next
//! run loads the file as if nothing had happened.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{count, load_once, shopstream, signal, test_db, wait_exit, wait_for, Loader, TestDb};

const HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";

fn write_file(dir: &Path) {
    let rows: Vec<String> = (1..=3)
        .map(|n| format!("00000000-0000-4000-8000-{n:012},u{n},view,p{n},1.50,2026-01-01 00:00:00"))
        .collect();
    std::fs::write(
        dir.join("a.csv"),
        format!("{HEADER}\n{}\n", rows.join("\n")),
    )
    .expect("write");
}

/// A continuous loader whose batches wait `pause_ms` before their COMMIT.
fn paused_loader(db: &TestDb, input: &Path, pause_ms: u64) -> Loader {
    Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .arg("--input")
            .arg(input)
            .env(
                "SHOPSTREAM_DEBUG_PAUSE_BEFORE_COMMIT_MS",
                pause_ms.to_string(),
            ),
    )
}

async fn wait_logged(loader: &Loader, needle: &str) {
    wait_for(Duration::from_secs(60), needle, || async {
        loader.logged(needle)
    })
    .await;
}

/// Rows and ledger rows, as a pair; (-1, -1) before the tables exist.
async fn committed(db: &TestDb) -> (i64, i64) {
    let rows = common::try_count(db, "SELECT count(*) FROM ecommerce_events").await;
    let files = common::try_count(db, "SELECT count(*) FROM ingested_files").await;
    (rows.unwrap_or(-1), files.unwrap_or(-1))
}

#[tokio::test]
async fn sigterm_lets_the_batch_in_flight_commit_then_exits_0() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    write_file(tmp.path());
    let mut loader = paused_loader(&db, tmp.path(), 8000);
    wait_logged(&loader, "before COMMIT").await;
    // The batch is inside its transaction: nothing is visible yet.
    assert_eq!(committed(&db).await, (0, 0), "{}", loader.log());

    signal(&loader.child, "-TERM");
    let status = wait_exit(&mut loader.child, Duration::from_secs(60));
    let log = loader.log();
    // The batch committed after the signal, inside the same process.
    assert_eq!(committed(&db).await, (3, 1), "{log}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE status = 'loaded' AND rows_loaded = 3"
        )
        .await,
        1
    );
    assert!(status.success(), "exit {status:?}:\n{log}");
    let signalled = log.find("SIGTERM received").expect("the signal is logged");
    let booked = log.find("1 file(s), 3 rows").expect("the batch is logged");
    assert!(
        signalled < booked,
        "the signal came while the batch was open:\n{log}"
    );
    let mut out = String::new();
    if let Some(mut o) = loader.child.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out).expect("stdout");
    }
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("summary JSON");
    assert_eq!(summary["rows_loaded"], 3, "{summary}");
}

#[tokio::test]
async fn a_second_signal_exits_at_once_and_the_open_batch_rolls_back() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    write_file(tmp.path());
    // Held far longer than the test waits for the exit.
    let mut loader = paused_loader(&db, tmp.path(), 120_000);
    wait_logged(&loader, "before COMMIT").await;
    signal(&loader.child, "-TERM");
    wait_logged(&loader, "SIGTERM received").await;
    loader.assert_alive();

    let second = Instant::now();
    signal(&loader.child, "-INT");
    let status = wait_exit(&mut loader.child, Duration::from_secs(10));
    let log = loader.log();
    assert!(second.elapsed() < Duration::from_secs(10), "exited at once");
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("second signal"), "{log}");
    // Rolled back: no row, no ledger row; the file is still there.
    assert_eq!(committed(&db).await, (0, 0), "{log}");
    assert!(tmp.path().join("a.csv").is_file());

    // Nothing half done: the next run loads the file whole.
    load_once(&db, tmp.path(), &[]);
    assert_eq!(committed(&db).await, (3, 1));
}
