//! What the binary creates, starts and leaves behind (issue 20, points 2, 3
//! and 6): readers create nothing, `run` checks before it acts, the embedded
//! server stops when its owner exits (broken pipes and panics included),
//! `run --once` serves no HTTP unless asked, and an older binary keeps
//! loading after an additive migration but stops with a clear message after
//! one it cannot follow. Real binary, real embedded servers, real pipes.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::shopstream;

/// A temporary directory the `postgres` account can traverse (tempdirs are
/// 0700, which would make a root run relocate the cluster).
fn reachable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ss-life-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Pids of the processes whose command line mentions `needle` (a server
/// started with `-D <data dir>/pg` does), zombies excluded.
fn processes_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(entries) = fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// Stops (SIGQUIT, immediate) whatever server a test left on its data dir,
/// even when the test fails, so a failure leaves no process behind.
struct KillLeftovers(std::path::PathBuf);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        for pid in processes_mentioning(&self.0) {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: a signal to a pid whose command line names our dir.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
            }
        }
    }
}

/// Creates the embedded cluster in `data_dir` (migrated; the server is
/// stopped again when `migrate` exits).
fn create_cluster(data_dir: &Path) {
    common::run_ok(shopstream().arg("migrate").arg("--data-dir").arg(data_dir));
    assert!(data_dir.join("pg").join("PG_VERSION").is_file());
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    common::wait_exit(child, Duration::from_secs(120))
}

#[test]
fn report_without_a_database_creates_nothing_and_says_where_it_looked() {
    let cwd = tempfile::tempdir().expect("tempdir");
    // The default data dir, relative to the working directory.
    let out = shopstream()
        .args(["report", "--view", "funnel"])
        .current_dir(cwd.path())
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !cwd.path().join(".shopstream").exists(),
        "report created ./.shopstream: {stderr}"
    );
    assert!(
        stderr.contains(".shopstream") && stderr.contains("holds no embedded cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(out.stdout.is_empty(), "no empty report is printed");

    // A mistyped --data-dir is not created either, and is named.
    let typo = cwd.path().join("shopstrem-data");
    let out = shopstream()
        .args(["report", "--data-dir"])
        .arg(&typo)
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!typo.exists(), "report created {}", typo.display());
    assert!(stderr.contains(&*typo.to_string_lossy()), "{stderr}");
}

#[test]
fn report_into_closed_pipes_ends_quietly_and_stops_its_server() {
    let dir = reachable_tempdir();
    let data_dir = dir.path().join("data");
    let _cleanup = KillLeftovers(data_dir.clone());
    create_cluster(&data_dir);
    assert!(
        processes_mentioning(&data_dir).is_empty(),
        "migrate stopped it"
    );

    // `report 2>&1 | head -0`: both streams go to a reader that is gone
    // before the first line; debug logs write to stderr while the server
    // runs.
    let mut child = shopstream()
        .args(["report", "--log-level", "debug", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0), "a panic exits 101: {status:?}");
    let left = processes_mentioning(&data_dir);
    assert!(left.is_empty(), "postgres still running: pids {left:?}");

    // `report | head -1` with stderr kept: read a little, close, and no
    // panic message follows.
    let log = dir.path().join("stderr.log");
    let mut child = shopstream()
        .args([
            "report",
            "--log-level",
            "debug",
            "--limit",
            "0",
            "--data-dir",
        ])
        .arg(&data_dir)
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    // The report is written at the end; a read of a few bytes (or end of
    // output) is "head -1".
    let _ = stdout.read(&mut first);
    drop(stdout);
    let status = wait_exit(&mut child);
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
    let left = processes_mentioning(&data_dir);
    assert!(left.is_empty(), "postgres still running: pids {left:?}");
}

#[test]
fn a_panic_stops_the_embedded_server_it_started() {
    let dir = reachable_tempdir();
    let data_dir = dir.path().join("data");
    let input = dir.path().join("in");
    fs::create_dir(&input).expect("input");
    let _cleanup = KillLeftovers(data_dir.clone());
    // The debug panic fires once the database (here: a new embedded
    // server) is open.
    let out = shopstream()
        .env("SHOPSTREAM_DEBUG_PANIC", "1")
        .args(["run", "--once", "--data-dir"])
        .arg(&data_dir)
        .arg("--input")
        .arg(&input)
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(stderr.contains("panicked"), "{stderr}");
    assert!(data_dir.join("pg").join("PG_VERSION").is_file(), "{stderr}");
    let left = processes_mentioning(&data_dir);
    assert!(
        left.is_empty(),
        "postgres still running: pids {left:?}\n{stderr}"
    );
}

/// A second signal exits at once (130), rolling back the batch in flight,
/// and still stops the embedded server the process started.
#[test]
fn a_second_signal_stops_the_embedded_server_it_started() {
    let dir = reachable_tempdir();
    let data_dir = dir.path().join("data");
    let input = dir.path().join("in");
    fs::create_dir(&input).expect("input");
    fs::write(
        input.join("a.csv"),
        "event_id,user_id,event_type,product_id,price,event_time\n\
         00000000-0000-4000-8000-000000000001,u1,view,p1,1.50,2026-01-01 00:00:00\n",
    )
    .expect("write");
    let _cleanup = KillLeftovers(data_dir.clone());
    // The batch waits before its COMMIT: the signals come while it is open.
    let mut loader = common::Loader::spawn(
        shopstream()
            .env("SHOPSTREAM_DEBUG_PAUSE_BEFORE_COMMIT_MS", "120000")
            .args(["run", "--http-addr", "off", "--data-dir"])
            .arg(&data_dir)
            .arg("--input")
            .arg(&input),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !loader.logged("pausing") {
        assert!(Instant::now() < deadline, "the batch never paused");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!processes_mentioning(&data_dir).is_empty(), "a server runs");
    common::signal(&loader.child, "-TERM");
    while !loader.logged("received") {
        assert!(Instant::now() < deadline, "the first signal was not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    common::signal(&loader.child, "-TERM");
    let status = common::wait_exit(&mut loader.child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    let left = processes_mentioning(&data_dir);
    assert!(left.is_empty(), "postgres still running: pids {left:?}");
}

#[test]
fn run_with_a_missing_input_creates_nothing_and_prints_the_cause_once() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let out = shopstream()
        .args(["run", "--once"])
        .current_dir(cwd.path())
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !cwd.path().join(".shopstream").exists(),
        "run created ./.shopstream before checking its input: {stderr}"
    );
    assert!(stderr.contains("./incoming"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause once: {stderr}"
    );
}

#[test]
fn an_error_that_quotes_its_cause_prints_it_once() {
    // The generator's error names the OS error in its message and carries
    // it as its source too.
    let out = shopstream()
        .args([
            "generate",
            "--files",
            "1",
            "--output",
            "/proc/self/no-such/out",
        ])
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("/proc/self/no-such/out"), "{stderr}");
    assert_eq!(
        stderr.matches("(os error").count(),
        1,
        "the cause once: {stderr}"
    );
}

#[tokio::test]
async fn once_serves_no_http_unless_asked() {
    let db = common::test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    common::generate(&input, 1, 20, 7, &[]);
    // Port 9898 is taken (by us, or by whatever already listens there, such
    // as a watcher on the default address).
    let _held = std::net::TcpListener::bind("127.0.0.1:9898");
    assert!(
        std::net::TcpStream::connect("127.0.0.1:9898").is_ok(),
        "something listens on 9898"
    );
    let out = shopstream()
        .env_remove("SHOPSTREAM_HTTP_ADDR")
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(&input)
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("9898"), "{stderr}");
    assert!(common::count(&db, "SELECT count(*) FROM ecommerce_events").await > 0);

    // Asked for, it serves: the taken port is refused before any work,
    // its cause printed once.
    let out = shopstream()
        .env_remove("SHOPSTREAM_HTTP_ADDR")
        .args(["run", "--once", "--http-addr", "127.0.0.1:9898"])
        .args(["--database-url", &db.url, "--input"])
        .arg(&input)
        .output()
        .expect("spawn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:9898"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("(os error").count(),
        1,
        "the cause once: {stderr}"
    );
}

/// Adds a generated file (seed `seed`) to `input` under a name of its own.
fn add_file(input: &Path, seed: u64) {
    let staging = input.with_extension(format!("staging{seed}"));
    common::generate(&staging, 1, 10, seed, &[]);
    fs::create_dir_all(input).expect("input");
    for entry in fs::read_dir(&staging).expect("staging") {
        let entry = entry.expect("entry");
        let name = format!("s{seed}_{}", entry.file_name().to_string_lossy());
        fs::rename(entry.path(), input.join(name)).expect("move");
    }
}

/// One `run --once` over `input`: (exit code, stderr).
fn load(db: &common::TestDb, input: &Path) -> (Option<i32>, String) {
    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(input)
        .output()
        .expect("spawn");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_older_binary_keeps_loading_after_an_additive_migration_only() {
    let db = common::test_db().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    add_file(&input, 1);
    let (code, log) = load(&db, &input);
    assert_eq!(code, Some(0), "{log}");
    let ours = shopstream::db::migrate::known_version();
    let count = || common::count(&db, "SELECT count(*) FROM ecommerce_events");
    let first = count().await;
    assert!(first > 0);

    // A newer binary applied v(N+1), additive: a column older binaries do
    // not write.
    let newer = ours + 1;
    let c = db.client().await;
    c.batch_execute(&format!(
        "ALTER TABLE ecommerce_events ADD COLUMN future_note text;
         INSERT INTO schema_migrations (version, name, checksum, additive)
         VALUES ({newer}, 'future_note', 'from-a-newer-binary', true)"
    ))
    .await
    .expect("simulate a newer migration");
    add_file(&input, 2);
    let (code, log) = load(&db, &input);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(&format!("schema v{newer}")), "{log}");
    assert!(log.contains("keeps loading"), "{log}");
    let second = count().await;
    assert!(
        second > first,
        "the older binary loaded the new file: {log}"
    );

    // Then one it cannot follow: it stops before loading, saying which
    // version to upgrade to.
    let breaking = ours + 2;
    c.batch_execute(&format!(
        "INSERT INTO schema_migrations (version, name, checksum, additive)
         VALUES ({breaking}, 'breaking', 'from-a-newer-binary', false)"
    ))
    .await
    .expect("simulate a breaking migration");
    add_file(&input, 3);
    let started = Instant::now();
    let (code, log) = load(&db, &input);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains(&format!(
            "the database is at schema v{breaking}; this shopstream ({}) knows up to v{ours}: \
             upgrade to a version that knows v{breaking}",
            env!("CARGO_PKG_VERSION")
        )),
        "{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "stops, does not retry"
    );
    assert_eq!(count().await, second, "nothing loaded: {log}");
}
