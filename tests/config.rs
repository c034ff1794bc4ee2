//! Settings read as the user meant them, against the real server and binary:
//! connection strings as libpq reads them, configuration errors that end
//! the run at once with exit code 2, event times in --source-timezone, and
//! --max-event-age.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{count, shopstream, test_db};
use tokio_postgres::config::Host;

const HEADER: &str = "event_id,user_id,event_type,product_id,price,quantity,event_time";

fn write_csv(dir: &Path, name: &str, rows: &[String]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut body = format!("{HEADER}\n");
    for r in rows {
        body.push_str(r);
        body.push('\n');
    }
    std::fs::write(dir.join(name), body).expect("write");
}

fn row(i: u32, time: &str) -> String {
    format!("{i:08x}-0000-4000-8000-000000000000,U{i},view,P{i},1.00,1,{time}")
}

/// The test server's socket folder, port and user, or `None` (said as a
/// skipped case, which fails under CI) when it is not reached by a socket.
fn socket_of(db: &common::TestDb) -> Option<(std::path::PathBuf, u16, String)> {
    let config = db.config();
    let (Some(Host::Unix(socket)), Some(port)) =
        (config.get_hosts().first(), config.get_ports().first())
    else {
        common::skip(
            "a socket given in the URL's query",
            "the test server is not reached through a Unix socket",
        );
        return None;
    };
    Some((
        socket.clone(),
        *port,
        config.get_user().expect("user").to_string(),
    ))
}

#[tokio::test]
async fn a_host_query_parameter_replaces_the_url_host() {
    let db = test_db().await;
    let Some((socket, port, user)) = socket_of(&db) else {
        return;
    };
    // libpq reads this as the socket only; `localhost` is overridden.
    let url = format!(
        "postgresql://{user}@localhost/{}?host={}&port={port}",
        db.name,
        socket.display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write_csv(&input, "a.csv", &[row(1, "2024-07-01 12:00:00")]);
    let out = shopstream()
        .args(["run", "--once", "--database-url", &url, "--input"])
        .arg(&input)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // One host, the socket: not localhost:5432 first.
    assert!(stderr.contains("Unix socket, no TLS"), "{stderr}");
    assert!(!stderr.contains("localhost"), "{stderr}");
    assert_eq!(count(&db, "SELECT count(*) FROM ecommerce_events").await, 1);
}

/// Runs `run --once` with `url`; returns (exit code, stderr, seconds).
fn run_with_url(url: &str) -> (Option<i32>, String, f64) {
    let tmp = tempfile::tempdir().expect("tmp");
    let start = Instant::now();
    let out = shopstream()
        .args(["run", "--once", "--database-url", url, "--input"])
        .arg(tmp.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, start.elapsed().as_secs_f64())
}

#[test]
fn an_invalid_connection_string_ends_the_run_at_once_with_code_2() {
    // Default retries would wait 1 + 2 + 4 + 8 s before giving up.
    for (url, reason) in [
        (
            "postgresql://u:pw@h:notaport/db",
            "port number 1 of the port list",
        ),
        (
            "postgresql://h1,h2/db?port=1,2,3&connect_timeout=1",
            "could not match 3 port numbers to 2 hosts",
        ),
    ] {
        let (code, stderr, secs) = run_with_url(url);
        assert_eq!(code, Some(2), "{url}: {stderr}");
        assert!(secs < 5.0, "{url}: took {secs:.1}s");
        assert_eq!(
            stderr
                .matches("is not a valid PostgreSQL connection string")
                .count(),
            1,
            "{url}: {stderr}"
        );
        assert!(stderr.contains(reason), "{url}: {stderr}");
        assert!(!stderr.contains("retrying"), "{url}: {stderr}");
    }
}

#[tokio::test]
async fn an_unknown_database_ends_a_once_run_at_once_with_code_2() {
    let db = test_db().await;
    let mut config = db.config();
    config.dbname("no_such_database_here");
    let url = shopstream::db::connect::config_to_url(&config);
    let (code, stderr, secs) = run_with_url(&url);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(secs < 5.0, "took {secs:.1}s: {stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
}

/// `run --once` over `dir` into `db` with `extra`; returns stderr.
fn load(db: &common::TestDb, dir: &Path, extra: &[&str]) -> String {
    let out = shopstream()
        .args(["run", "--once", "--database-url", &db.url, "--input"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// The stored event_time of event `i`, in UTC, or the dead letter's codes.
async fn fate(db: &common::TestDb, i: u32) -> String {
    let c = db.client().await;
    let id = format!("{i:08x}-0000-4000-8000-000000000000");
    let loaded = c
        .query_opt(
            "SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
               FROM ecommerce_events WHERE event_id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("select");
    if let Some(r) = loaded {
        return r.get(0);
    }
    let dead = c
        .query_one(
            "SELECT array_to_string(error_codes, ',') FROM dead_letter_events
              WHERE raw_line LIKE $1 || '%'",
            &[&id],
        )
        .await
        .expect("neither loaded nor a dead letter");
    dead.get(0)
}

#[tokio::test]
async fn naive_times_are_read_in_the_source_timezone() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    write_csv(
        &input,
        "berlin.csv",
        &[
            row(1, "2024-07-01 12:00:00"),
            row(2, "2024-01-15 12:00:00"),
            row(3, "2024-07-01 12:00:00+00:00"),
            row(4, "2024-03-31 02:30:00"),
            row(5, "2024-10-27T02:30:00"),
        ],
    );
    load(&db, &input, &["--source-timezone", "Europe/Berlin"]);
    assert_eq!(fate(&db, 1).await, "2024-07-01 10:00:00");
    assert_eq!(fate(&db, 2).await, "2024-01-15 11:00:00");
    assert_eq!(fate(&db, 3).await, "2024-07-01 12:00:00");
    assert_eq!(fate(&db, 4).await, "invalid_event_time");
    // Twice on the clock: the earlier instant (still summer time).
    assert_eq!(fate(&db, 5).await, "2024-10-27 00:30:00");
}

#[test]
fn invalid_option_values_are_refused_at_start_with_code_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (option, value, reason) in [
        ("--source-timezone", "Mars/Olympus", "unknown time zone"),
        ("--max-event-age", "soon", "not a duration"),
        ("--max-price", "free", "--max-price"),
    ] {
        let start = Instant::now();
        let out = shopstream()
            .args(["run", "--once", option, value])
            // Never reached: nothing may connect before the options are checked.
            .args([
                "--database-url",
                "postgresql://u@127.0.0.1:9/none?connect_timeout=1",
            ])
            .arg("--input")
            .arg(tmp.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{option}: {stderr}");
        assert!(stderr.contains(option), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert!(!stderr.contains("retrying"), "{stderr}");
        assert!(start.elapsed().as_secs_f64() < 5.0, "{option}");
    }
}

#[tokio::test]
async fn max_event_age_rejects_old_events_only_when_asked() {
    let recent = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let rows = [row(1, "1970-01-01 00:00:01"), row(2, &recent)];
    let tmp = tempfile::tempdir().expect("tmp");

    let bounded = test_db().await;
    let input = tmp.path().join("bounded");
    write_csv(&input, "a.csv", &rows);
    load(&bounded, &input, &["--max-event-age", "30d"]);
    assert_eq!(fate(&bounded, 1).await, "too_old_event_time");
    assert_eq!(fate(&bounded, 2).await, recent);

    let unbounded = test_db().await;
    let input = tmp.path().join("unbounded");
    write_csv(&input, "a.csv", &rows);
    load(&unbounded, &input, &[]);
    assert_eq!(fate(&unbounded, 1).await, "1970-01-01 00:00:01");
    assert_eq!(fate(&unbounded, 2).await, recent);
}

#[tokio::test]
async fn bench_keeps_one_host_when_the_url_names_its_socket_in_the_query() {
    let db = test_db().await;
    let Some((socket, port, user)) = socket_of(&db) else {
        return;
    };
    // The form: the query's host replaces localhost. The bench's
    // own databases must be reached the same way (one host, not three).
    let url = format!(
        "postgresql://{user}@localhost:{port}/{}?host={}",
        db.name,
        socket.display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("results.json");
    let out = shopstream()
        .args(["bench", "--database-url", &url, "--dir"])
        .arg(tmp.path().join("bench"))
        .arg("--json")
        .arg(&json)
        .args(["--events", "400", "--files", "2", "--repeat", "1"])
        .args(["--shapes", "plain,before-5", "--history-events", "200"])
        .args(["--latency-files", "2", "--latency-file-events", "50"])
        .args(["--latency-rate", "2000", "--big-file-mib", "1"])
        .output()
        .expect("run bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("invalid number of ports"), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
    for shape in r["shapes"].as_array().expect("shapes") {
        assert_eq!(shape["run"][0]["rows_read"], 400, "{shape}");
    }
}
