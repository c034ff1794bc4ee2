//! A database outage during a continuous run: the loader starts before its
//! database is up and waits for it, keeps running while the server is
//! stopped for longer than the circuit breaker's threshold (files keep
//! arriving and stay where they are, although `--after-load archive` or
//! `delete` moves every file once committed), and drains the backlog by
//! itself when the server is back. The final tables equal those of an
//! uninterrupted load of the same files.
//!
//! This test runs its own private PostgreSQL server (so that it can stop
//! it) and stops it at the end.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fingerprint, generate, load_once, shopstream, test_db, wait_for, Loader};
use shopstream::db::embedded::{EmbeddedOptions, EmbeddedServer};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Option<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

async fn files_in_ledger(url: &str) -> i64 {
    match connect(url).await {
        Some(c) => c
            .query_one("SELECT count(*) FROM ingested_files", &[])
            .await
            .map_or(-1, |r| r.get(0)),
        None => -1,
    }
}

/// Moves the given generated files into the watched folder (a rename, the
/// way well-behaved producers publish files).
fn publish(files: &[PathBuf], input: &Path) {
    for f in files {
        std::fs::rename(f, input.join(f.file_name().expect("name"))).expect("publish");
    }
}

async fn scenario(opts: &EmbeddedOptions, tmp: &Path, after_load: &str) {
    let staged = tmp.join("staged");
    generate(
        &staged,
        12,
        200,
        5,
        &["--invalid-share", "0.05", "--duplicate-share", "0.05"],
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&staged)
        .expect("staged")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);

    // The reference: copies of the same files (same mtimes, so the same
    // order) loaded in one go with the same --after-load.
    let copies = tmp.join("reference");
    std::fs::create_dir_all(&copies).expect("mkdir");
    for f in &files {
        let to = copies.join(f.file_name().expect("name"));
        std::fs::copy(f, &to).expect("copy");
        let mtime = std::fs::metadata(f)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::fs::File::options()
            .write(true)
            .open(&to)
            .and_then(|t| t.set_modified(mtime))
            .expect("set mtime");
    }
    let reference = test_db().await;
    load_once(&reference, &copies, &["--after-load", after_load]);
    let want = fingerprint(&reference.client().await, &copies).await;

    // Start the server once to learn its URL, then stop it: the loader
    // starts with no database.
    let server = EmbeddedServer::start(opts).await.expect("start the server");
    let url = server.url("shopstream");
    server.stop_now().await.expect("stop the server");

    let input = tmp.join("in");
    std::fs::create_dir_all(&input).expect("mkdir");
    let mut loader = Loader::spawn(
        shopstream()
            .args(["run", "--database-url", &url, "--relist-secs", "0.3"])
            .args(["--retry-initial-secs", "0.2", "--retry-max-secs", "1"])
            .args(["--breaker-failures", "3", "--breaker-open-secs", "2"])
            .args(["--breaker-successes", "2", "--after-load", after_load])
            .arg("--input")
            .arg(&input),
    );
    publish(&files[0..3], &input);
    wait_for(
        Duration::from_secs(30),
        "the loader to wait for the database",
        || async { loader.logged("circuit open") },
    )
    .await;
    loader.assert_alive();

    // The database comes up: the files waiting are loaded.
    let server = EmbeddedServer::start(opts).await.expect("start the server");
    assert_eq!(server.url("shopstream"), url);
    wait_for(Duration::from_secs(60), "the first files", || async {
        files_in_ledger(&url).await == 3
    })
    .await;
    publish(&files[3..6], &input);
    wait_for(Duration::from_secs(60), "six files", || async {
        files_in_ledger(&url).await == 6
    })
    .await;

    // Outage: longer than the breaker threshold, files keep arriving.
    server.stop_now().await.expect("stop the server");
    publish(&files[6..9], &input);
    let opened_before = loader.log().matches("circuit open").count();
    wait_for(
        Duration::from_secs(60),
        "the circuit to open and a probe to fail",
        || async {
            let log = loader.log();
            log.matches("circuit open").count() > opened_before
                && log
                    .rsplit("circuit open")
                    .next()
                    .is_some_and(|after| after.contains("probe failed"))
        },
    )
    .await;
    loader.assert_alive();
    for f in &files[6..9] {
        let here = input.join(f.file_name().expect("name"));
        assert!(
            here.is_file(),
            "files stay where they are while the circuit is open ({after_load})"
        );
    }

    // Recovery: the backlog drains by itself.
    let server = EmbeddedServer::start(opts)
        .await
        .expect("restart the server");
    publish(&files[9..12], &input);
    wait_for(Duration::from_secs(90), "all twelve files", || async {
        files_in_ledger(&url).await == 12
    })
    .await;
    assert!(loader.logged("circuit closed"), "{}", loader.log());
    // Once committed, every file is moved (so staying put above was the
    // open circuit's doing).
    let archive = input.join("_archive");
    wait_for(Duration::from_secs(30), "every file moved", || async {
        files.iter().all(|f| {
            let name = f.file_name().expect("name");
            !input.join(name).exists() && (after_load == "delete") != archive.join(name).is_file()
        })
    })
    .await;
    loader.assert_alive();
    loader.stop();

    let client = connect(&url).await.expect("connect");
    // The reference was loaded from `staged`, the loader read `in`: paths
    // are compared relative to each.
    assert_eq!(fingerprint(&client, &input).await, want);
    drop(client);
    server.stop_now().await.expect("stop the server");
}

#[tokio::test]
async fn a_database_outage_pauses_intake_and_the_backlog_drains_by_itself_archive() {
    outage("archive").await;
}

#[tokio::test]
async fn a_database_outage_pauses_intake_and_the_backlog_drains_by_itself_delete() {
    outage("delete").await;
}

async fn outage(after_load: &str) {
    common::with_private_server("ss-outage-", |opts, tmp| async move {
        scenario(&opts, &tmp, after_load).await
    })
    .await;
}
