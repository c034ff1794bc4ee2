//! Watching the pipeline: after a known load the Prometheus metrics equal
//! the table counts; `/healthz` and `/readyz` say what they should while
//! the database is there and while it is not; the endpoint can be moved or
//! switched off, and a taken port is a clear error. JSON logs parse. The
//! direct-path, fallback, disposal and last-commit metrics have exact values,
//! and every answer of the endpoint is `Cache-Control: no-store`.

mod common;

use std::time::Duration;

use common::{
    count, counts_by, generate, http_get, metric, shopstream, test_db, try_count, wait_for, Loader,
};

#[tokio::test]
async fn after_a_known_load_the_metrics_equal_the_table_counts() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    generate(
        &input,
        5,
        300,
        3,
        &["--invalid-share", "0.1", "--duplicate-share", "0.1"],
    );
    let mut loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .args(["--batch-max-files", "2", "--input"])
            .arg(&input),
    );
    wait_for(Duration::from_secs(60), "five files", || async {
        try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(5)
    })
    .await;
    let url = loader.http_url().expect("the endpoint's URL in the log");
    // The counters are bumped right after the commit: give them a moment.
    let mut text = String::new();
    wait_for(
        Duration::from_secs(10),
        "the last batch in /metrics",
        || {
            let (status, body) = http_get(&url, "/metrics");
            assert_eq!(status, 200);
            text = body;
            let files = metric(&text, "shopstream_files_total{outcome=\"loaded\"}");
            async move { files == Some(5.0) }
        },
    )
    .await;

    let rows = |outcome: &str| {
        metric(
            &text,
            &format!("shopstream_rows_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let sum = |col: &str| format!("SELECT sum({col})::int8 FROM ingested_files");
    assert_eq!(
        rows("read"),
        Some(count(&db, &sum("rows_read")).await as f64)
    );
    assert_eq!(
        rows("loaded"),
        Some(count(&db, "SELECT count(*) FROM ecommerce_events").await as f64)
    );
    assert_eq!(
        rows("duplicate"),
        Some(count(&db, &sum("rows_duplicate")).await as f64)
    );
    assert_eq!(
        rows("rejected"),
        Some(count(&db, "SELECT count(*) FROM dead_letter_events").await as f64)
    );
    let by_code = counts_by(
        &db,
        "SELECT code, count(*) FROM dead_letter_events, unnest(error_codes) AS code GROUP BY 1",
    )
    .await;
    assert!(!by_code.is_empty());
    for (code, n) in by_code {
        assert_eq!(
            metric(
                &text,
                &format!("shopstream_rows_rejected_total{{code=\"{code}\"}}")
            ),
            Some(n as f64),
            "{code}"
        );
    }
    let batches = count(&db, "SELECT count(*) FROM data_quality_metrics").await as f64;
    assert_eq!(metric(&text, "shopstream_batches_total"), Some(batches));
    assert_eq!(
        metric(&text, "shopstream_batch_duration_seconds_count"),
        Some(batches)
    );
    assert_eq!(metric(&text, "shopstream_batch_rows_count"), Some(batches));
    assert_eq!(
        metric(&text, "shopstream_file_latency_seconds_count"),
        Some(5.0)
    );
    assert_eq!(metric(&text, "shopstream_ingest_lag_files"), Some(0.0));
    assert_eq!(
        metric(&text, "shopstream_circuit_breaker_state{state=\"closed\"}"),
        Some(1.0)
    );
    assert!(text.contains("# HELP shopstream_file_latency_seconds"));

    assert_eq!(http_get(&url, "/healthz"), (200, "ok\n".to_string()));
    let (status, body) = http_get(&url, "/readyz");
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["breaker"], "closed");
    loader.assert_alive();
    loader.stop();
}

#[tokio::test]
async fn readyz_fails_while_the_database_is_unreachable_and_healthz_does_not() {
    let tmp = tempfile::tempdir().expect("tmp");
    // A port that refuses (held, not listening), not an assumed-closed one.
    let refusing = common::HeldPort::new();
    let mut loader = Loader::spawn(
        shopstream()
            .args([
                "run",
                "--database-url",
                &format!("postgresql://x@{}/none", refusing.addr()),
            ])
            .args(["--breaker-failures", "2", "--retry-initial-secs", "0.1"])
            .args(["--log-format", "json", "--input"])
            .arg(tmp.path()),
    );
    wait_for(Duration::from_secs(30), "the circuit to open", || async {
        loader.logged("circuit open")
    })
    .await;
    let url = loader.http_url().expect("the endpoint's URL in the log");
    let (status, body) = http_get(&url, "/readyz");
    assert_eq!(status, 503, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(h["ready"], false);
    assert_eq!(h["breaker"], "open");
    assert!(h["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("could not connect")));
    assert_eq!(http_get(&url, "/healthz").0, 200);
    let (_, text) = http_get(&url, "/metrics");
    assert_eq!(
        metric(&text, "shopstream_circuit_breaker_state{state=\"open\"}"),
        Some(1.0)
    );
    assert!(metric(&text, "shopstream_db_retries_total{class=\"transient\"}") >= Some(2.0));
    // --log-format json: every line is one JSON object.
    for line in loader.log().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    loader.assert_alive();
    loader.stop();
}

#[tokio::test]
async fn the_endpoint_can_be_switched_off_and_a_taken_port_is_a_clear_error() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let out = shopstream()
        .args([
            "run",
            "--once",
            "--http-addr",
            "off",
            "--database-url",
            &db.url,
            "--input",
        ])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("serving /metrics"));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = shopstream()
        .args([
            "run",
            "--once",
            "--http-addr",
            &addr,
            "--database-url",
            &db.url,
            "--input",
        ])
        .arg(tmp.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("--http-addr"), "{stderr}");
}

#[tokio::test]
async fn run_raises_alerts_on_the_log_file_and_webhook_channels() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    // 200 rows, half with an unknown event type: validity 50%, and one code
    // is 50% of the batch.
    let mut text = String::from("event_id,user_id,event_type,product_id,price,event_time\n");
    for n in 0..200u32 {
        let kind = if n % 2 == 0 { "view" } else { "click" };
        text.push_str(&format!(
            "00000000-0000-4000-8000-{n:012},u1,{kind},p1,,2026-01-01 00:00:00\n"
        ));
    }
    std::fs::write(input.join("half.csv"), text).expect("write");
    std::fs::write(input.join("bad.csv"), "who,what\n1,2\n").expect("write");
    let (base, bodies) = common::webhook_receiver();
    let hook = format!("{base}/hook");
    let alerts = tmp.path().join("alerts/alerts.jsonl");
    common::load_once(
        &db,
        &input,
        &[
            "--alert-webhook",
            &hook,
            "--alert-file",
            alerts.to_str().expect("utf-8"),
        ],
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .expect("alert file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let fired = |rule: &str| {
        lines
            .iter()
            .find(|a| a["rule"] == rule && a["state"] == "firing")
            .unwrap_or_else(|| panic!("{rule} fired: {lines:?}"))
            .clone()
    };
    assert_eq!(fired("low_validity")["severity"], "WARNING");
    assert_eq!(fired("error_concentration")["key"], "invalid_event_type");
    assert!(fired("file_quarantined")["message"]
        .as_str()
        .is_some_and(|m| m.contains("bad.csv")));
    let posted = bodies.lock().expect("bodies").clone();
    assert_eq!(posted.len(), lines.len(), "every alert reached the webhook");
    for body in posted {
        let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
        assert!(
            v["text"].as_str().is_some_and(|t| t.starts_with('[')),
            "{v}"
        );
        assert!(v["alert"]["rule"].is_string());
    }
}

/// A v1 row with event id `n`.
fn v1_row(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012},u{n},view,p{n},1.00,2026-01-01 00:00:00")
}

#[tokio::test]
async fn row_disposal_and_commit_time_metrics_and_no_store_everywhere() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let header = "event_id,user_id,event_type,product_id,price,event_time";
    // Event 12 is in the table before the loader starts: b.csv's copy of
    // it counts as a duplicate.
    common::run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(&format!(
            "INSERT INTO ecommerce_events (event_id, event_type, product_id, quantity, event_time,
                 source_file, source_line, batch_id, source_layout)
             VALUES ('00000000-0000-4000-8000-{:012}', 'view', 'p', 1, now(), 'before', 2, 0, 'v1')",
            12
        ))
        .await
        .expect("an event loaded before");
    let write = |name: &str, ids: &[u32]| {
        let rows: Vec<String> = ids.iter().map(|&n| v1_row(n)).collect();
        std::fs::write(input.join(name), format!("{header}\n{}\n", rows.join("\n")))
            .expect("write");
    };
    write("a.csv", &[1, 2, 3]);
    write("b.csv", &[11, 12, 13]);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &db.url, "--relist-secs", "0.3"])
            .args(["--batch-max-files", "1"])
            .args(["--after-load", "archive", "--input"])
            .arg(&input),
    );
    wait_for(Duration::from_secs(60), "both files archived", || async {
        try_count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE disposition = 'archived'",
        )
        .await
            == Some(2)
    })
    .await;
    let url = loader.http_url().expect("the endpoint's URL in the log");
    // Counters are bumped right after the commit and the move.
    let mut text = String::new();
    wait_for(Duration::from_secs(10), "both files in /metrics", || {
        text = http_get(&url, "/metrics").1;
        let done = metric(
            &text,
            "shopstream_files_disposed_total{disposition=\"archived\"}",
        );
        async move { done == Some(2.0) }
    })
    .await;
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert_eq!(
        metric(&text, "shopstream_rows_total{outcome=\"loaded\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "shopstream_rows_total{outcome=\"duplicate\"}"),
        Some(1.0),
        "{text}"
    );
    let last = metric(&text, "shopstream_last_commit_timestamp_seconds").expect("last commit");
    assert!(
        last >= started && last <= ended,
        "last commit {last} outside [{started}, {ended}]"
    );
    let last_in_db = count(
        &db,
        "SELECT (extract(epoch FROM max(committed_at)) * 1000)::int8 FROM ingested_files",
    )
    .await as f64
        / 1000.0;
    assert!(
        (last - last_in_db).abs() < 5.0,
        "last commit {last}, the ledger says {last_in_db}"
    );

    // Every answer of the endpoint says not to cache it: each route, an
    // unknown path and a refused method.
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/"),
        ("GET", "/api/dashboard"),
        ("HEAD", "/metrics"),
        ("GET", "/no-such-page"),
        ("POST", "/metrics"),
    ] {
        let (status, head, _) = common::http_request(&url, method, path, &[]);
        let cache = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("cache-control")
                .then(|| v.trim().to_string())
        });
        assert_eq!(
            cache.as_deref(),
            Some("no-store"),
            "{method} {path} ({status}):\n{head}"
        );
    }
    loader.assert_alive();
    let summary = loader.stop();
    assert_eq!(summary["rows_loaded"], 5, "{summary}");
    assert_eq!(summary["rows_duplicate"], 1, "{summary}");
}
