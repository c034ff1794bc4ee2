//! Crash safety: kill -9 the loader at random moments during a multi-file
//! load, several rounds, restart, and the final tables equal those of an
//! uninterrupted load of the same files.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{fingerprint, shopstream, test_db, TestDb};

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

#[tokio::test]
async fn kill_9_at_random_moments_then_restart_equals_an_uninterrupted_load() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    gen(&dir);

    let reference = test_db().await;
    let t = std::time::Instant::now();
    assert!(run_cmd(&reference, &dir).status().expect("run").success());
    // Kill points are spread over the first third of what is left of an
    // uninterrupted load, whatever the machine speed.
    let full = t.elapsed().as_millis() as u64;
    let want = fingerprint(&reference.client().await, &dir).await;

    let crashed = test_db().await;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash test seed {seed}, uninterrupted load {full} ms");
    let mut killed_mid_load = 0;
    let mut partial = 0;
    for round in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Spread over the first third of what is left to load, so that
        // later rounds still land mid-load.
        let committed: i64 = crashed
            .client()
            .await
            .query_one("SELECT count(*) FROM ingested_files", &[])
            .await
            .map_or(0, |r| r.get(0));
        let left = full * (40 - committed.clamp(0, 40) as u64) / 40;
        let delay = Duration::from_millis(left / 20 + seed % (left / 3).max(1));
        let mut child = run_cmd(&crashed, &dir).spawn().expect("spawn");
        std::thread::sleep(delay);
        match child.try_wait().expect("try_wait") {
            Some(_) => eprintln!("round {round}: finished before the kill"),
            None => {
                child.kill().expect("kill -9");
                child.wait().expect("reap");
                killed_mid_load += 1;
                let files: i64 = crashed
                    .client()
                    .await
                    .query_one("SELECT count(*) FROM ingested_files", &[])
                    .await
                    .map_or(0, |r| r.get(0));
                if files > 0 && files < 40 {
                    partial += 1;
                }
                eprintln!("round {round}: killed after {delay:?} with {files}/40 files committed");
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
    assert_eq!(fingerprint(&crashed.client().await, &dir).await, want);
}
