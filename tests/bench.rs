//! `shopstream bench` end to end on a small dataset against the test
//! server: every step runs the real binary against a real database, the
//! JSON holds every figure, the numbers add up, and the bench cleans up
//! its databases. (The figures themselves are not asserted: speed targets
//! are measured by the bench, not by timed tests.)

mod common;

use common::{shopstream, test_db};

#[tokio::test]
async fn bench_measures_every_step_on_a_small_dataset_and_drops_its_databases() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("results.json");
    let out = shopstream()
        .args(["bench", "--database-url", &db.url, "--dir"])
        .arg(tmp.path().join("bench"))
        .arg("--json")
        .arg(&json)
        .args(["--events", "4000", "--files", "4", "--repeat", "1"])
        .args(["--latency-files", "6", "--latency-file-events", "200"])
        .args(["--latency-rate", "4000", "--big-file-mib", "1"])
        .output()
        .expect("run bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "(a) COPY of the clean rows",
        "(b) shopstream run --once",
        "speed ratio (a)/(b)",
        "(c) latency at 4000 events/s",
        "start to first commit",
        "(d) one big file",
    ] {
        assert!(stdout.contains(row), "the table lacks {row:?}:\n{stdout}");
    }

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
    let dataset = &r["dataset"];
    assert_eq!(dataset["events"], 4000);
    assert_eq!(dataset["files"], 4);
    let run = &r["run"][0];
    assert_eq!(run["rows_read"], 4000);
    // What run loaded is exactly what the baseline copies.
    assert_eq!(run["rows_loaded"], dataset["expected_loaded"]);
    assert_eq!(r["copy"][0]["rows"], dataset["expected_loaded"]);
    assert!(run["peak_rss_mib"].as_f64().expect("rss") > 0.0);
    assert!(run["cpu_seconds"].as_f64().expect("cpu") > 0.0);
    assert!(r["speed_ratio"].as_f64().expect("ratio") > 0.0);
    assert_eq!(r["startup_ms"].as_array().expect("startup").len(), 3);
    let latency = &r["latency"];
    assert_eq!(latency["files"], 6, "every fed file was seen committed");
    let (p50, p99) = (
        latency["p50_ms"].as_f64().expect("p50"),
        latency["p99_ms"].as_f64().expect("p99"),
    );
    assert!(0.0 < p50 && p50 <= p99, "{latency}");
    let big = &r["big_file"];
    assert!(big["rows_read"].as_u64().expect("rows") > 1000);
    assert!(big["bytes"].as_u64().expect("bytes") > 900_000);
    assert_eq!(r["machine"]["cores"].as_u64().map(|c| c > 0), Some(true));

    // The bench's databases are gone; with --keep they stay.
    let sql = format!(
        "SELECT count(*) FROM pg_database WHERE datname LIKE '{}\\_bench\\_%'",
        db.name
    );
    assert_eq!(common::count(&db, &sql).await, 0);
    let kept = shopstream()
        .args(["bench", "--database-url", &db.url, "--dir"])
        .arg(tmp.path().join("bench"))
        .args(["--steps", "startup", "--keep"])
        .output()
        .expect("run bench");
    assert!(kept.status.success());
    assert_eq!(common::count(&db, &sql).await, 1);
    db.client()
        .await
        .batch_execute(&format!(
            "DROP DATABASE \"{}_bench_startup\" WITH (FORCE)",
            db.name
        ))
        .await
        .expect("drop the kept database");
}

#[test]
fn bench_refuses_the_copy_step_without_the_run_step() {
    let refusing = common::HeldPort::new();
    let out = shopstream()
        .args([
            "bench",
            "--steps",
            "copy",
            "--database-url",
            &format!("postgresql://{}/x", refusing.addr()),
        ])
        .output()
        .expect("run bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add run to --steps"), "{err}");
}
