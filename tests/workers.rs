//! Many workers on one input: several `shopstream run` processes share a
//! folder and a database, coordinated only through PostgreSQL (per-file
//! claims with transaction-scoped advisory locks). Every file is loaded
//! exactly once, the work spreads, and when a worker dies (kill -9) the
//! others take over its files.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    fingerprint_with, generate, load_once, shopstream, test_db, wait_exit, Copies, TestDb,
};

const FILES: u32 = 300;

fn worker(db: &TestDb, dir: &Path) -> Command {
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
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    c
}

fn summary(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "a surviving worker failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary {last:?}: {e}"))
}

fn files_settled(s: &serde_json::Value) -> u64 {
    ["files_loaded", "files_duplicate", "files_rejected"]
        .iter()
        .map(|k| s[k].as_u64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn three_workers_share_a_folder_and_the_survivors_finish_a_killed_workers_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    let report = generate(&dir, FILES, 200, 31, &["--duplicate-share", "0.05"]);

    // What one process loading alone produces.
    let reference = test_db().await;
    load_once(&reference, &dir, &[]);
    // Several workers load in any order: which copy of a repeated event is
    // kept may differ (README: "Duplicates are counted").
    let want = fingerprint_with(&reference.client().await, &dir, Copies::Any).await;

    let shared = test_db().await;
    common::run_ok(shopstream().args(["migrate", "--database-url", &shared.url]));
    let mut workers: Vec<Child> = (0..3)
        .map(|_| worker(&shared, &dir).spawn().expect("spawn worker"))
        .collect();

    // Kill one worker with SIGKILL once about a third of the files are in.
    let start = Instant::now();
    let c = shared.client().await;
    let ledgered = || async {
        c.query_one("SELECT count(*) FROM ingested_files", &[])
            .await
            .map_or(0, |r| r.get::<_, i64>(0))
    };
    while ledgered().await < i64::from(FILES) / 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the workers made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut victim = workers.remove(0);
    assert!(
        victim.try_wait().expect("try_wait").is_none(),
        "the victim must die mid-load"
    );
    victim.kill().expect("kill -9");
    victim.wait().expect("reap");
    let at_kill = ledgered().await;
    assert!(
        at_kill < i64::from(FILES),
        "the kill must land before the end ({at_kill} files)"
    );

    // The survivors take over what the victim held and finish.
    let killed_at = Instant::now();
    for w in &mut workers {
        wait_exit(w, Duration::from_secs(180));
    }
    let took_over = killed_at.elapsed();
    let summaries: Vec<serde_json::Value> = workers.into_iter().map(summary).collect();
    eprintln!("kill at {at_kill} files; survivors done {took_over:?} later: {summaries:?}");

    // Exactly once: the same tables as one process alone, one ledger row
    // per file, every expected event once.
    assert_eq!(fingerprint_with(&c, &dir, Copies::Any).await, want);
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT path) FROM ingested_files",
            &[],
        )
        .await
        .expect("ledger");
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (i64::from(FILES), i64::from(FILES))
    );
    let events = common::count(&shared, "SELECT count(*) FROM ecommerce_events").await;
    assert_eq!(events, report["loaded"].as_i64().expect("loaded"));

    // The work spread: each survivor settled files of its own, and
    // together they settled everything the victim did not commit.
    for s in &summaries {
        assert!(files_settled(s) > 0, "a survivor did no work: {s}");
    }
    let by_survivors: u64 = summaries.iter().map(files_settled).sum();
    assert!(
        by_survivors >= u64::from(FILES) - at_kill as u64,
        "survivors settled {by_survivors}, {} were left at the kill",
        i64::from(FILES) - at_kill
    );
}

#[tokio::test]
async fn a_file_held_by_another_loader_is_left_to_it_and_taken_over_when_it_lets_go() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    generate(&dir, 2, 50, 32, &[]);
    let db = test_db().await;
    common::run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    let files = shopstream::source::discover::list(&dir).expect("list");
    assert_eq!(files.len(), 2);

    // Another "loader" holds the claim on the first file: an open
    // transaction with the advisory lock a claim takes.
    let mut holder = db.client().await;
    let tx = holder.transaction().await.expect("begin");
    let key = shopstream::sink::transaction::claim_key(&files[0].path);
    let got: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])
        .await
        .expect("lock")
        .get(0);
    assert!(got);

    let mut run = worker(&db, &dir)
        .args(["--log-level", "debug"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let log = common::collect_lines(run.stderr.take().expect("stderr"));
    let looked = || {
        log.lock()
            .expect("log")
            .iter()
            .filter(|l| l.contains("files held by another loader"))
            .count()
    };
    // The free file loads; the held one waits for its holder.
    let c = db.client().await;
    let start = Instant::now();
    loop {
        let n: i64 = c
            .query_one("SELECT count(*) FROM ingested_files", &[])
            .await
            .expect("count")
            .get(0);
        if n == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no file loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It looks at the held file again and again instead of finishing.
    let start = Instant::now();
    while looked() < 3 {
        assert!(
            run.try_wait().expect("try_wait").is_none(),
            "--once waits for a file another loader holds"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not look again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        run.try_wait().expect("try_wait").is_none(),
        "--once waits for a file another loader holds"
    );
    let loaded: String = c
        .query_one("SELECT path FROM ingested_files", &[])
        .await
        .expect("path")
        .get(0);
    assert_eq!(loaded, files[1].path.display().to_string());

    // The holder goes away without committing (as a killed worker's
    // connection does): the claim is released and the file is taken over.
    tx.rollback().await.expect("rollback");
    let status = wait_exit(&mut run, Duration::from_secs(60));
    assert!(status.success());
    let n: i64 = c
        .query_one("SELECT count(*) FROM ingested_files", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
}

/// A watching loader that lists a file another process loaded meanwhile
/// (after its first pass, so no ledger check before its batch): the
/// batch's claim finds it in the ledger and leaves it out, and the next
/// pass asks the ledger first and carries out its fate (here: deleted),
/// instead of leaving it out again at every pass. Its rows stay loaded
/// once. The watcher is held with SIGSTOP while the other process loads.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_another_loader_committed_meanwhile_is_finished_not_tried_again_and_again() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut watcher = common::Loader::spawn(
        shopstream()
            .args(["run", "--after-load", "delete", "--database-url", &db.url])
            .arg("--input")
            .arg(&dir),
    );
    let started = Instant::now();
    while !watcher.logged("loader started") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            watcher.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let src = tmp.path().join("src");
    generate(&src, 2, 50, 5, &[]);
    let mut names: Vec<_> = std::fs::read_dir(&src)
        .expect("src")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().ends_with(".csv"))
        .collect();
    names.sort();
    let (first, name) = (names[0].clone(), names[1].clone());
    // Its first file: the pass that loads it is the one that asks the
    // ledger first; the passes after it leave that to the claim.
    std::fs::rename(src.join(&first), dir.join(&first)).expect("move in");
    let until = Instant::now() + Duration::from_secs(15);
    while dir.join(&first).exists() {
        assert!(Instant::now() < until, "{}", watcher.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = watcher.child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let before = common::count(&db, "SELECT count(*) FROM ecommerce_events").await;
    std::fs::rename(src.join(&name), dir.join(&name)).expect("move in");
    load_once(&db, &dir, &["--after-load", "keep"]);
    let loaded = common::count(&db, "SELECT count(*) FROM ecommerce_events").await;
    assert!(loaded > before);
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);

    let file = dir.join(&name);
    let until = Instant::now() + Duration::from_secs(15);
    while file.exists() {
        assert!(
            Instant::now() < until,
            "the watcher never finished the file the ledger has: {}",
            watcher.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watcher.assert_alive();
    watcher.stop();
    assert_eq!(
        common::count(&db, "SELECT count(*) FROM ecommerce_events").await,
        loaded
    );
    assert_eq!(
        common::count(&db, "SELECT count(*) FROM ingested_files").await,
        2,
        "a ledger row a file: the watcher did not load the second again"
    );
}
