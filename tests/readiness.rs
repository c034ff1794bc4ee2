//! Readiness tells the truth, and recovery is fast: when the database dies,
//! `/readyz` turns 503 within a couple of seconds (the first failed round
//! trip), its body says `"ready": false` whenever the status is 503 (also
//! while the circuit is open), and after the database restarts intake
//! resumes within seconds, with the default `--breaker-open-secs` (30).
//!
//! This test runs its own private PostgreSQL server (so that it can stop
//! it) and stops it at the end.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{generate, http_get, shopstream, wait_for, Loader};
use shopstream::db::embedded::{EmbeddedOptions, EmbeddedServer};
use tokio_postgres::NoTls;

async fn files_in_ledger(url: &str) -> i64 {
    let Ok((client, connection)) = tokio_postgres::connect(url, NoTls).await else {
        return -1;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .query_one("SELECT count(*) FROM ingested_files", &[])
        .await
        .map_or(-1, |r| r.get(0))
}

/// `/readyz` as (status, ready, breaker); fails the test when the body
/// disagrees with the status.
fn readyz(base: &str) -> (u16, bool, String) {
    let (status, body) = http_get(base, "/readyz");
    let h: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    let ready = h["ready"].as_bool().expect("ready");
    assert_eq!(
        status == 200,
        ready,
        "the body must agree with the status {status}: {body}"
    );
    let breaker = h["breaker"].as_str().unwrap_or_default().to_string();
    (status, ready, breaker)
}

fn publish(file: &Path, input: &Path) {
    std::fs::rename(file, input.join(file.file_name().expect("name"))).expect("publish");
}

async fn scenario(opts: &EmbeddedOptions, tmp: &Path) {
    let staged = tmp.join("staged");
    generate(&staged, 2, 50, 21, &[]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&staged)
        .expect("staged")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let input = tmp.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");

    let server = EmbeddedServer::start(opts).await.expect("start the server");
    let url = server.url("shopstream");
    // Every pacing option at its default.
    let mut loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &url, "--input"])
            .arg(&input),
    );
    publish(&files[0], &input);
    wait_for(Duration::from_secs(60), "the first file", || async {
        files_in_ledger(&url).await == 1
    })
    .await;
    let base = loader.http_url().expect("the endpoint's URL");
    wait_for(Duration::from_secs(30), "ready", || async {
        readyz(&base).1
    })
    .await;

    // The database dies: not ready at the first failed round trip.
    server.stop_now().await.expect("stop the server");
    let died = Instant::now();
    wait_for(Duration::from_secs(60), "/readyz to say 503", || async {
        readyz(&base).0 == 503
    })
    .await;
    let noticed = died.elapsed();
    assert!(
        noticed < Duration::from_secs(5),
        "/readyz said 200 for {noticed:?} after the database died"
    );
    publish(&files[1], &input);
    // Not ready all along, also (and agreeing) while the circuit is open.
    wait_for(Duration::from_secs(60), "the circuit to open", || async {
        let (status, _, breaker) = readyz(&base);
        assert_eq!(status, 503);
        breaker == "open"
    })
    .await;
    loader.assert_alive();

    // The database returns: the file waiting is loaded within seconds.
    let server = EmbeddedServer::start(opts)
        .await
        .expect("restart the server");
    let back = Instant::now();
    wait_for(Duration::from_secs(90), "the second file", || async {
        files_in_ledger(&url).await == 2
    })
    .await;
    let resumed = back.elapsed();
    // Typically about 3 s (a probe about a second after the circuit opened,
    // then two more good ones a second apart); 30 s and more before.
    assert!(
        resumed < Duration::from_secs(8),
        "intake resumed {resumed:?} after the database came back:\n{}",
        loader.log()
    );
    wait_for(Duration::from_secs(10), "ready again", || async {
        readyz(&base).1
    })
    .await;
    loader.stop();
    server.stop_now().await.expect("stop the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_drops_at_once_agrees_with_its_status_and_recovery_takes_seconds() {
    common::with_private_server("ss-ready-", |opts, tmp| async move {
        scenario(&opts, &tmp).await
    })
    .await;
}
