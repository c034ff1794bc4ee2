//! `shopstream status` against a real PostgreSQL server, real files and a
//! real running loader: exit 0 on a healthy loaded database, 1 with a
//! backlog (a file waiting longer than --max-wait-secs), 2 with the
//! database stopped or a loader's endpoint gone, and what each output says.
//!
//! One test runs its own private PostgreSQL server (so that it can stop it)
//! and stops it at the end.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use common::{load_once, shopstream, test_db, wait_for, HeldPort, Loader};
use serde_json::Value;
use shopstream::db::embedded::EmbeddedServer;

const HEADER: &str = "event_id,user_id,event_type,product_id,price,quantity,event_time";

/// `n` valid views from `from` on, and one purchase without a user.
fn body(from: u32, n: u32) -> String {
    let mut out = format!("{HEADER}\n");
    for i in from..from + n {
        out.push_str(&format!(
            "{i:08x}-0000-4000-8000-000000000000,U{i},view,P{i},1.00,0,2026-01-01 00:00:00\n"
        ));
    }
    out.push_str(&format!(
        "{:08x}-0000-4000-8000-00000000ffff,,purchase,P1,2.00,1,2026-01-01 00:00:00\n",
        from
    ));
    out
}

/// Publishes a file with a rename, its modification time `age` ago.
fn publish(dir: &Path, name: &str, text: &str, age: Duration) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .expect("set mtime");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

fn status(args: &[&str]) -> Output {
    shopstream()
        .arg("status")
        .args(args)
        .output()
        .expect("spawn shopstream")
}

/// `status --format json`: its exit code and its JSON.
fn status_json(args: &[&str]) -> (i32, Value) {
    let out = status(&[args, &["--format", "json"]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    let j = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), j)
}

#[tokio::test]
async fn healthy_is_0_and_a_backlog_older_than_the_threshold_is_1() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    std::fs::create_dir_all(&dir).expect("mkdir");
    publish(&dir, "a.csv", &body(1, 4), Duration::ZERO);
    load_once(&db, &dir, &[]);
    let input = dir.to_str().expect("utf-8 path");
    let base = ["--database-url", &db.url, "--input", input];

    // Loaded, nothing waiting: healthy, with what was loaded just now.
    let (code, j) = status_json(&base);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["state"], "healthy");
    assert_eq!(j["problems"], serde_json::json!([]));
    let d = &j["database"];
    assert_eq!(d["reachable"], true);
    assert_eq!(
        (
            &d["events_last_minute"],
            &d["events_last_hour"],
            &d["events_last_day"]
        ),
        (&Value::from(4), &Value::from(4), &Value::from(4)),
        "{d}"
    );
    assert_eq!(d["validity_last_hour"], 0.8, "4 valid of 5: {d}");
    assert_eq!(
        d["dead_letters_today"],
        serde_json::json!({"missing_user": 1})
    );
    assert!(
        d["last_commit"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{d}"
    );
    assert!(
        d["last_commit_age_secs"]
            .as_f64()
            .is_some_and(|a| a < 600.0),
        "{d}"
    );
    assert_eq!(j["input"]["waiting_files"], 0, "{j}");

    // The same in text: the verdict first, then a line per part.
    let out = status(&base);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "status: healthy (exit 0)", "{text}");
    assert!(
        lines[1].starts_with("database: ") && lines[1].contains("last commit"),
        "{text}"
    );
    assert!(
        lines[2].starts_with(
            "events loaded: 4 last minute, 4 last hour, 4 last day; validity 80.00% last hour"
        ),
        "{text}"
    );
    assert_eq!(
        lines[3], "dead letters today (UTC): missing_user 1",
        "{text}"
    );
    assert_eq!(
        lines[4],
        format!("input {input}: no file waiting"),
        "{text}"
    );
    assert!(lines.len() <= 6, "a few lines:\n{text}");

    // A file just arrived: waiting, but not for long. Still healthy.
    publish(&dir, "b.csv", &body(100, 2), Duration::from_secs(5));
    let (code, j) = status_json(&base);
    assert_eq!(
        (code, &j["input"]["waiting_files"]),
        (0, &Value::from(1)),
        "{j}"
    );

    // A file waiting for ten minutes: more than the default threshold of
    // five, so a backlog (degraded, 1); not with a threshold of fifteen.
    publish(&dir, "c.csv", &body(200, 2), Duration::from_secs(600));
    let (code, j) = status_json(&base);
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["state"], "degraded");
    assert_eq!(j["input"]["waiting_files"], 2, "{j}");
    assert!(
        j["input"]["oldest_waiting_secs"]
            .as_f64()
            .is_some_and(|a| a >= 600.0),
        "{j}"
    );
    let problem = j["problems"][0].as_str().expect("a problem");
    assert!(
        problem.starts_with("backlog: 2 files waiting in ")
            && problem.contains("--max-wait-secs 300"),
        "{problem}"
    );
    let out = status(&base);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("status: degraded (exit 1)\nproblem: backlog: 2 files"),
        "{text}"
    );
    let (code, _) = status_json(&[&base[..], &["--max-wait-secs", "900"]].concat());
    assert_eq!(code, 0);

    // Loaded: the backlog is gone.
    load_once(&db, &dir, &[]);
    let (code, j) = status_json(&base);
    assert_eq!(
        (code, &j["input"]["waiting_files"]),
        (0, &Value::from(0)),
        "{j}"
    );
    assert_eq!(j["database"]["events_last_hour"], 8, "{j}");
}

#[tokio::test]
async fn a_stopped_database_is_2_and_a_loaders_breaker_and_last_error_are_shown() {
    common::with_private_server("ss-status-", |opts, tmp| async move {
        let server = EmbeddedServer::start(&opts)
            .await
            .expect("start the server");
        let url = server.url("shopstream");
        let input = tmp.join("in");
        std::fs::create_dir_all(&input).expect("mkdir");
        let mut loader = Loader::spawn(
            shopstream()
                .args(["run", "--database-url", &url, "--relist-secs", "0.3"])
                .args(["--retry-initial-secs", "0.2", "--retry-max-secs", "1"])
                .args(["--breaker-failures", "2", "--breaker-open-secs", "60"])
                .arg("--input")
                .arg(&input),
        );
        wait_for(Duration::from_secs(30), "the loader's endpoint", || async {
            loader.http_url().is_some()
        })
        .await;
        let endpoint = loader.http_url().expect("endpoint");
        publish(&input, "a.csv", &body(1, 3), Duration::ZERO);
        let input_arg = input.to_str().expect("utf-8 path").to_string();
        let args = [
            "--database-url",
            &url,
            "--input",
            &input_arg,
            "--endpoint",
            &endpoint,
        ];
        wait_for(Duration::from_secs(30), "the file loaded", || async {
            status_json(&args).1["database"]["events_last_minute"] == 3
        })
        .await;
        let (code, j) = status_json(&args);
        assert_eq!(code, 0, "{j}");
        let l = &j["loaders"][0];
        assert_eq!(
            (&l["up"], &l["ready"], &l["breaker"], &l["last_error"]),
            (
                &Value::from(true),
                &Value::from(true),
                &Value::from("closed"),
                &Value::Null
            ),
            "{j}"
        );

        // The database stops: down (2), and the loader says why it waits.
        server.stop_now().await.expect("stop the server");
        wait_for(Duration::from_secs(60), "the circuit to open", || async {
            loader.logged("circuit open")
        })
        .await;
        loader.assert_alive();
        let (code, j) = status_json(&args);
        assert_eq!(code, 2, "{j}");
        assert_eq!(j["state"], "down");
        assert_eq!(j["database"]["reachable"], false, "{j}");
        let l = &j["loaders"][0];
        assert_eq!(
            (&l["up"], &l["ready"], &l["breaker"]),
            (
                &Value::from(true),
                &Value::from(false),
                &Value::from("open")
            ),
            "{j}"
        );
        assert!(
            l["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{j}"
        );
        let problems = j["problems"].to_string();
        assert!(
            problems.contains("database: ") && problems.contains("is not ready: breaker open"),
            "{problems}"
        );
        let out = status(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            text.starts_with("status: down (exit 2)\nproblem: database: "),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("loader {endpoint}: not ready, breaker open"))),
            "{text}"
        );

        // The loader gone too: its endpoint is down.
        drop(loader);
        let (code, j) = status_json(&["--database-url", &url, "--endpoint", &endpoint]);
        assert_eq!(code, 2, "{j}");
        assert_eq!(j["loaders"][0]["up"], false, "{j}");
    })
    .await;
}

#[tokio::test]
async fn a_loader_endpoint_that_does_not_answer_is_down_even_with_the_database_up() {
    let db = test_db().await;
    run_migrate(&db.url);
    let held = HeldPort::new();
    let endpoint = format!("http://{}", held.addr());
    let (code, j) = status_json(&["--database-url", &db.url]);
    assert_eq!(code, 0, "a migrated, empty database is healthy: {j}");
    assert_eq!(j["database"]["last_commit"], Value::Null);
    let (code, j) = status_json(&["--database-url", &db.url, "--endpoint", &endpoint]);
    assert_eq!(code, 2, "{j}");
    assert!(
        j["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("loader {endpoint} is down"))),
        "{j}"
    );
    // An input folder that cannot be listed: degraded.
    let gone = tempfile::tempdir().expect("tmp").path().join("gone");
    let gone = gone.to_str().expect("utf-8 path");
    let (code, j) = status_json(&["--database-url", &db.url, "--input", gone]);
    assert_eq!(code, 1, "{j}");
    assert!(
        j["problems"][0]
            .as_str()
            .is_some_and(|p| p.starts_with(&format!("input {gone}: cannot list it"))),
        "{j}"
    );
    // A database without the schema is down too (nothing ever loaded it).
    let empty = test_db().await;
    let (code, j) = status_json(&["--database-url", &empty.url]);
    assert_eq!(code, 2, "{j}");
    assert!(
        j["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("no shopstream schema")),
        "{j}"
    );
}

fn run_migrate(url: &str) {
    common::run_ok(shopstream().args(["migrate", "--database-url", url]));
}

#[test]
fn help_names_the_exit_codes_and_the_threshold() {
    let help = common::run_ok(shopstream().args(["status", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "0 healthy, 1 degraded, 2 down",
        "--max-wait-secs",
        "--endpoint",
        "SHOPSTREAM_STATUS_FORMAT",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
}
