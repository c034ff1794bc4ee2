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
        .args(["--events", "4000", "--files", "4", "--repeat", "2"])
        .args(["--history-events", "3000"])
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
        "COPY baseline (min)",
        "run --once (min)",
        "latency at 4000 events/s",
        "start to first commit",
        "one big file",
    ] {
        assert!(stdout.contains(row), "the table lacks {row:?}:\n{stdout}");
    }

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parses");
    let shapes = r["shapes"].as_array().expect("shapes");
    let names: Vec<&str> = shapes
        .iter()
        .map(|s| s["dataset"]["shape"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["plain", "near-1", "near-5", "far-1", "far-5", "before-1", "before-5", "resent"],
        "the default matrix"
    );
    for s in shapes {
        let d = &s["dataset"];
        let name = d["shape"].as_str().unwrap_or_default();
        assert!(stdout.contains(name), "{name} in the table:\n{stdout}");
        let run = &s["run"][0];
        // The bench itself checks the run against the dataset's account.
        assert_eq!(run["rows_read"], d["rows"], "{name}");
        assert_eq!(run["rows_loaded"], d["expected_loaded"], "{name}");
        let dups = d["duplicate_rows"].as_u64().expect("dups");
        let valid = d["valid_rows"].as_u64().expect("valid");
        assert!(d["invalid_rows"].as_u64().expect("invalid") > 0, "{name}");
        match name {
            "plain" => assert_eq!(dups, 0),
            "resent" => assert_eq!(d["resent_files"], 1),
            _ => assert!(dups > 0 && dups < valid / 10, "{name}: {dups} of {valid}"),
        }
        let history = s["history_events"].as_u64().expect("history");
        assert_eq!(history > 0, name.starts_with("before"), "{name}");
        // Both sides of the ratio: the baseline copies exactly what run loaded.
        let copies = s["copy"].as_array().expect("copies");
        assert!(
            copies.iter().any(|c| c["method"] == "client binary"),
            "{name}"
        );
        assert!(
            copies.iter().any(|c| c["method"] == "server csv"),
            "{name}: the test server's admin is a superuser"
        );
        for c in copies {
            assert_eq!(c["rows"], d["expected_loaded"], "{name}");
        }
        // Every repeat measures both sides.
        assert_eq!(s["run"].as_array().expect("runs").len(), 2, "{name}");
        assert_eq!(copies.len(), 4, "{name}: two ways, two repeats");
        let (run_min, base_min) = (
            s["run_min"].as_f64().expect("run min"),
            s["baseline_min"].as_f64().expect("baseline min"),
        );
        let ratio = s["speed_ratio"].as_f64().expect("ratio");
        assert!((ratio - base_min / run_min).abs() < 1e-9, "{name}");
        assert!(run["peak_rss_mib"].as_f64().expect("rss") > 0.0);
        assert!(run["cpu_seconds"].as_f64().expect("cpu") > 0.0);
    }
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
