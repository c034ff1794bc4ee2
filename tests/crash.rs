//! Crash safety: kill -9 the loader at random moments during a multi-file
//! load, several rounds, restart, and the final tables equal those of an
//! uninterrupted load of the same files.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{fingerprint_with, shopstream, test_db, Copies, TestDb};

fn gen(dir: &Path) {
    let out = shopstream()
        .args(["generate", "--output"])
        .arg(dir)
        .args(["--files", "40", "--events-per-file", "300", "--seed", "99"])
        .args(["--invalid-share", "0.05", "--duplicate-share", "0.05"])
        .output()
        .expect("generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_cmd(db: &TestDb, dir: &Path) -> Command {
    let mut c = shopstream();
    c.args([
        "run",
        "--once",
        "--batch-max-files",
        "3",
        "--database-url",
        &db.url,
        "--input",
    ])
    .arg(dir)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// Files committed so far (0 before the loader has created the ledger).
async fn committed(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM ingested_files", &[])
        .await
        .map_or(0, |r| r.get(0))
}

#[tokio::test]
async fn kill_9_at_random_moments_then_restart_equals_an_uninterrupted_load() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    gen(&dir);

    let reference = test_db().await;
    assert!(run_cmd(&reference, &dir).status().expect("run").success());
    // Several connections load batches in any order, so which copy of a
    // repeated event is kept may differ (README: "Duplicates are counted").
    let want = fingerprint_with(&reference.client().await, &dir, Copies::Any).await;

    let crashed = test_db().await;
    let watch = crashed.client().await;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash test seed {seed}");
    let mut killed_mid_load = 0;
    let mut partial = 0;
    for round in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // The kill point is progress, not wall time: once the ledger holds
        // `target` files (0 to 5 more than at the start of the round; 0:
        // before the first commit), then a little later (up to 50 ms, to
        // land inside a batch as well as between batches). Machine speed
        // does not matter; a target of 40 would let the load finish.
        let before = committed(&watch).await;
        if before >= 39 {
            break;
        }
        let target = (before + (seed % 6) as i64).min(39);
        let jitter = Duration::from_millis((seed >> 8) % 50);
        let mut child = run_cmd(&crashed, &dir).spawn().expect("spawn");
        let start = Instant::now();
        while committed(&watch).await < target {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no progress to {target} files"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(jitter).await;
        match child.try_wait().expect("try_wait") {
            Some(_) => eprintln!("round {round}: finished before the kill"),
            None => {
                child.kill().expect("kill -9");
                child.wait().expect("reap");
                killed_mid_load += 1;
                let files = committed(&watch).await;
                if files > 0 && files < 40 {
                    partial += 1;
                }
                eprintln!(
                    "round {round}: killed at {target}+{jitter:?} with {files}/40 files committed"
                );
            }
        }
    }
    assert!(killed_mid_load >= 3, "the kills must land during the load");
    assert!(
        partial >= 2,
        "at least two kills must leave a partly loaded folder"
    );
    assert!(run_cmd(&crashed, &dir)
        .status()
        .expect("final run")
        .success());
    assert_eq!(
        fingerprint_with(&crashed.client().await, &dir, Copies::Any).await,
        want
    );
}
