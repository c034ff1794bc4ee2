//! The HTTP endpoint cannot starve the loader: under a low file descriptor
//! limit, hundreds of idle connections neither stop the loading nor open
//! the circuit breaker (at most --http-max-connections are served, the rest
//! are told 503 and closed); idle clients, clients that send their headers
//! byte by byte and clients that never let go are disconnected after
//! --http-timeout-secs (or six of them); a listing that fails for want of
//! file descriptors is no database failure (with --once, failed listings
//! give up); an answer slower than the timeout is a 503; and the soft
//! RLIMIT_NOFILE is raised to the hard one at start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{generate, http_get, metric, shopstream, test_db, try_count, wait_for, Loader};

/// Lowers the child's open files limit to `soft`/`hard` before it starts.
fn with_nofile(cmd: &mut Command, soft: u64, hard: u64) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setrlimit, which is async-signal-safe, on a struct on its stack.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// `n` connections to the endpoint that send nothing.
fn idle_connections(base: &str, n: usize) -> Vec<TcpStream> {
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    (0..n)
        .map(|_| TcpStream::connect(host).expect("connect to the endpoint"))
        .collect()
}

/// Reads until the server closes the connection; `Err` when it does not
/// within `limit`. A reset counts as closed.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = vec![];
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} (read {:?})",
                String::from_utf8_lossy(&got)
            ));
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Generated files, published into `input` by renaming.
fn publish(staged: &Path, input: &Path) -> usize {
    let files: Vec<PathBuf> = std::fs::read_dir(staged)
        .expect("staged")
        .map(|e| e.expect("entry").path())
        .collect();
    for f in &files {
        std::fs::rename(f, input.join(f.file_name().expect("name"))).expect("publish");
    }
    files.len()
}

async fn endpoint(loader: &Loader) -> String {
    wait_for(Duration::from_secs(60), "the endpoint", || async {
        loader.http_url().is_some()
    })
    .await;
    loader.http_url().expect("url")
}

#[tokio::test(flavor = "multi_thread")]
async fn four_hundred_idle_connections_do_not_stop_the_loading() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (staged, input) = (tmp.path().join("staged"), tmp.path().join("in"));
    std::fs::create_dir(&input).expect("mkdir");
    generate(&staged, 5, 100, 11, &[]);
    // 256 descriptors, soft and hard (raising the soft limit cannot help);
    // idle connections are kept for a minute.
    let mut loader = Loader::spawn(with_nofile(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .args(["--http-timeout-secs", "60", "--input"])
            .arg(&input),
        256,
        256,
    ));
    let base = endpoint(&loader).await;
    wait_for(Duration::from_secs(60), "ready", || async {
        let (status, body) = http_get(&base, "/readyz");
        status == 200 && body.contains("\"ready\":true")
    })
    .await;

    let mut idle = idle_connections(&base, 400);
    let published = publish(&staged, &input);
    wait_for(
        Duration::from_secs(30),
        "the files, while 400 connections are open",
        || async {
            try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(published as i64)
        },
    )
    .await;
    loader.assert_alive();
    let log = loader.log();
    assert!(!log.contains("circuit open"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("--http-max-connections"), "{log}");

    // Beyond the 64 served, every connection was told 503 and closed.
    let mut refused = 0;
    for s in idle.iter_mut().rev().take(300) {
        let got = closed_within(s, Duration::from_secs(10)).expect("a refused connection");
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 503"));
        refused += 1;
    }
    assert_eq!(refused, 300);
    // The served ones are let go, and the endpoint answers again: ready.
    drop(idle);
    // (Until the server has closed them, a request may still meet the
    // limit: closed at once, a failed request here.)
    wait_for(Duration::from_secs(30), "/readyz again", || async {
        common::try_http_get(&base, "/readyz")
            .is_some_and(|(status, body)| status == 200 && body.contains("\"ready\":true"))
    })
    .await;
    loader.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_slow_and_endless_clients_are_disconnected() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--http-timeout-secs", "2"])
            .arg("--input")
            .arg(tmp.path()),
    );
    let base = endpoint(&loader).await;
    let host = base.trim_start_matches("http://").to_string();

    // Idle connections: closed after the 2 s header timeout.
    let started = Instant::now();
    for mut s in idle_connections(&base, 5) {
        closed_within(&mut s, Duration::from_secs(8)).expect("an idle connection is closed");
    }
    assert!(started.elapsed() >= Duration::from_millis(1500));

    // Headers sent one byte every 200 ms, never finished: cut after the
    // header timeout, although bytes keep coming.
    let mut slow = TcpStream::connect(&host).expect("connect");
    let started = Instant::now();
    let request = format!(
        "GET /readyz HTTP/1.1\r\nHost: {host}\r\nX-Slow: {}",
        "a".repeat(200)
    );
    let mut cut = None;
    for b in request.as_bytes() {
        if slow.write_all(&[*b]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cut = match cut {
        Some(at) => at,
        None => {
            closed_within(&mut slow, Duration::from_secs(5)).expect("cut");
            started.elapsed()
        }
    };
    assert!(cut < Duration::from_secs(6), "cut after {cut:?}");

    // A client that keeps asking on one connection: closed after six
    // timeouts (12 s), after a complete response.
    let mut busy = TcpStream::connect(&host).expect("connect");
    busy.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let started = Instant::now();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut answered = 0;
    let closed_at = loop {
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "a busy connection is never closed"
        );
        if busy.write_all(request.as_bytes()).is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 1024];
        match busy.read(&mut buf) {
            Ok(0) | Err(_) => break started.elapsed(),
            Ok(n) => {
                assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
                answered += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(answered > 10, "{answered}");
    assert!(
        closed_at >= Duration::from_secs(10) && closed_at < Duration::from_secs(20),
        "closed after {closed_at:?}"
    );
    loader.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_out_of_file_descriptors_does_not_open_the_breaker() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (staged, input) = (tmp.path().join("staged"), tmp.path().join("in"));
    std::fs::create_dir(&input).expect("mkdir");
    generate(&staged, 2, 50, 12, &[]);
    // No connection limit to speak of: the idle connections take every
    // descriptor, so listing the folder fails with EMFILE.
    let mut loader = Loader::spawn(with_nofile(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .args([
                "--http-max-connections",
                "5000",
                "--http-timeout-secs",
                "60",
            ])
            .args(["--breaker-failures", "2", "--retry-initial-secs", "0.2"])
            .args(["--retry-max-secs", "0.4", "--input"])
            .arg(&input),
        256,
        256,
    ));
    let base = endpoint(&loader).await;
    wait_for(Duration::from_secs(60), "ready", || async {
        let (status, body) = http_get(&base, "/readyz");
        status == 200 && body.contains("\"ready\":true")
    })
    .await;
    // 300: enough to take every descriptor, few enough for the rest to wait
    // in the listen backlog (a full backlog would stall the connects).
    let idle = idle_connections(&base, 300);
    let unlisted = |log: &str| {
        log.lines()
            .filter(|l| l.contains("cannot list") && l.contains("Too many open files"))
            .count()
    };
    wait_for(
        Duration::from_secs(30),
        "listings failing for want of descriptors",
        || async { unlisted(&loader.log()) >= 4 },
    )
    .await;
    let log = loader.log();
    assert!(!log.contains("circuit open"), "{log}");

    // Descriptors free again: the files load, and the loader is ready.
    drop(idle);
    let published = publish(&staged, &input);
    wait_for(Duration::from_secs(30), "the files", || async {
        try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(published as i64)
    })
    .await;
    wait_for(Duration::from_secs(30), "/readyz", || async {
        let (status, body) = http_get(&base, "/readyz");
        status == 200 && body.contains("\"ready\":true")
    })
    .await;
    // No failed listing was counted as a database retry.
    let (_, metrics) = http_get(&base, "/metrics");
    let retries = metric(&metrics, "shopstream_db_retries_total{class=\"transient\"}");
    assert_eq!(retries.unwrap_or(0.0), 0.0, "{}", loader.log());
    loader.assert_alive();
    let log = loader.log();
    assert!(!log.contains("circuit open"), "{log}");
    assert!(log.contains("not a database failure"), "{log}");
    loader.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let loader = Loader::spawn(with_nofile(
        shopstream()
            .args(["run", "--database-url", &db.url, "--input"])
            .arg(tmp.path()),
        256,
        4096,
    ));
    endpoint(&loader).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", loader.child.id()))
        .expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["4096", "4096"], "{line}");
    loader.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_slower_than_the_timeout_is_a_503() {
    // A "database" that accepts connections and never says a word: the
    // dashboard's data never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = vec![];
        for s in silent.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let url = format!("postgresql://nobody@127.0.0.1:{port}/none?sslmode=disable");
    let loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &url, "--http-timeout-secs", "1"])
            .arg("--input")
            .arg(tmp.path()),
    );
    let base = endpoint(&loader).await;
    let started = Instant::now();
    let (status, _, body) = common::http_request(&base, "GET", "/api/dashboard", &[]);
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--http-timeout-secs"), "{body}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // The endpoint still answers what needs no database.
    assert_eq!(http_get(&base, "/healthz"), (200, "ok\n".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_once_failed_listings_give_up() {
    // An object store that refuses every request: no listing ever works.
    let store = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = store.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in store.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let db = test_db().await;
    let mut cmd = shopstream();
    cmd.args(["run", "--once", "--database-url", &db.url])
        .args(["--input", "s3://bucket/prefix", "--breaker-failures", "2"])
        .args(["--retry-initial-secs", "0.1"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true");
    let mut loader = Loader::spawn(&mut cmd);
    let status = common::wait_exit(&mut loader.child, Duration::from_secs(60));
    assert!(!status.success(), "{}", loader.log());
    wait_for(Duration::from_secs(10), "the reason", || async {
        loader.logged("giving up after 2 failed listings")
    })
    .await;
    assert!(!loader.log().contains("circuit open"), "{}", loader.log());
}
