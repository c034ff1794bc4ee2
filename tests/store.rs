//! Object storage input end to end: a real S3-compatible server (moto's
//! server mode, started per test on a free local port), the real binary and
//! a real database. Loads match the generator's report and a folder load of
//! the same files; objects are archived, deleted or quarantined only after
//! the commit; a kill -9 in the middle loses and doubles nothing; a restart
//! lists only the keys after the last one loaded and reads no processed
//! object again.
//!
//! moto is installed by `scripts/ensure-moto.sh` (`./dev test` and CI run
//! it); without it these tests fail and say so.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    count, fingerprint, fingerprint_with, generate, http_get, load_once, metric, run_ok,
    shopstream, test_db, try_count, wait_for, Copies, Loader, TestDb,
};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::ObjectStore;

const BUCKET: &str = "shop-test";

/// A moto S3 server of this test's own; killed when dropped.
struct Moto {
    child: Child,
    port: u16,
    /// Its request log (one line per request, from stderr).
    log: Arc<Mutex<Vec<String>>>,
}

impl Moto {
    fn start() -> Moto {
        let python = std::env::var("SHOPSTREAM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let installed = Command::new(&python)
            .args(["-c", "import moto.server, flask, flask_cors"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "moto's S3 server is not installed for {python}: run scripts/ensure-moto.sh \
             (./dev test does), or set SHOPSTREAM_TEST_PYTHON to a python that has moto[server]"
        );
        // Held until moto listens on it (it binds with SO_REUSEADDR).
        let held = common::HeldPort::new();
        let port = held.port;
        let mut child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start moto");
        let log = common::collect_lines(child.stderr.take().expect("stderr"));
        let mut moto = Moto { child, port, log };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(s) = moto.child.try_wait().expect("try_wait") {
                panic!("moto exited ({s}):\n{}", moto.log().join("\n"));
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(held);
        moto.create_bucket();
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn create_bucket(&self) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "create bucket: {answer}"
        );
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// The request lines (`GET /bucket/key?...`) logged from line `from` on.
    fn requests_since(&self, from: usize) -> Vec<String> {
        self.log()
            .into_iter()
            .skip(from)
            .filter_map(|l| {
                let start = l.find('"')? + 1;
                let end = start + l[start..].find(" HTTP/")?;
                Some(l[start..end].to_string())
            })
            .collect()
    }

    /// A client for the test's own uploads and checks.
    fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("client")
    }

    /// `shopstream` with this server's endpoint and test credentials, and
    /// no AWS setting inherited from the environment.
    fn shopstream(&self) -> Command {
        let mut cmd = shopstream();
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(|k| k.starts_with("AWS_")) {
                cmd.env_remove(key);
            }
        }
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_ALLOW_HTTP", "true");
        cmd
    }

    /// `shopstream run` over `url` into `db`.
    fn run(&self, db: &TestDb, url: &str) -> Command {
        let mut cmd = self.shopstream();
        cmd.args(["run", "--database-url", &db.url, "--input", url]);
        cmd
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file below `dir`, relative, sorted.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("below").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Uploads every file below `dir` to `prefix/<relative path>`; returns the
/// keys in order.
async fn upload(s3: &AmazonS3, dir: &Path, prefix: &str) -> Vec<String> {
    let mut keys = vec![];
    for rel in files_below(dir) {
        let key = format!("{prefix}/{}", rel.display());
        let bytes = std::fs::read(dir.join(&rel)).expect("read");
        s3.put(&Key::from(key.as_str()), bytes.into())
            .await
            .expect("upload");
        keys.push(key);
    }
    keys
}

/// The keys below `prefix`, sorted.
async fn keys(s3: &AmazonS3, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = s3
        .list(Some(&Key::from(prefix)))
        .map(|m| m.expect("list").location.to_string())
        .collect()
        .await;
    out.sort();
    out
}

async fn object(s3: &AmazonS3, key: &str) -> Vec<u8> {
    s3.get(&Key::from(key))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body")
        .to_vec()
}

async fn strings(db: &TestDb, sql: &str) -> Vec<String> {
    db.client()
        .await
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn s3_input_loads_exactly_once_like_a_folder_and_archives_after_the_commit() {
    let moto = Moto::start();
    let s3 = moto.client();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    let rep = generate(
        &dir,
        6,
        400,
        11,
        &["--invalid-share", "0.06", "--duplicate-share", "0.05"],
    );
    let uploaded = upload(&s3, &dir, "in").await;
    // Not candidates: a marker, a temp name, a hidden folder.
    for k in ["in/_SUCCESS", "in/late.csv.tmp", "in/.staging/x.csv"] {
        s3.put(&Key::from(k), "x".into()).await.expect("upload");
    }

    let reference = test_db().await;
    load_once(&reference, &dir, &["--after-load", "archive"]);
    // Batches load in parallel: which copy of a repeated event is kept may
    // differ (README: "Duplicates are counted").
    let want = fingerprint_with(&reference.client().await, &dir, Copies::Any).await;

    let db = test_db().await;
    let url = format!("s3://{BUCKET}/in");
    let out = run_ok(moto.run(&db, &url).args([
        "--once",
        "--batch-max-files",
        "4",
        "--after-load",
        "archive",
    ]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("summary");
    assert_eq!(summary["files_loaded"], 6);
    assert_eq!(summary["files_archived"], 6);

    // Exact against the generator's report, and equal to a folder load.
    let n = |k: &str| rep[k].as_u64().expect(k) as i64;
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        n("loaded")
    );
    assert_eq!(
        count(&db, "SELECT sum(rows_read)::int8 FROM ingested_files").await,
        n("rows")
    );
    assert_eq!(
        count(&db, "SELECT sum(rows_duplicate)::int8 FROM ingested_files").await,
        n("duplicates")
    );
    assert_eq!(
        fingerprint_with(&db.client().await, Path::new(&url), Copies::Any).await,
        want,
        "the same tables as loading the same files from a folder"
    );

    // Ledger paths are the objects' URLs; each was archived after its commit.
    let ledger = strings(
        &db,
        "SELECT path || ' ' || disposition || ' ' || moved_to FROM ingested_files ORDER BY path",
    )
    .await;
    let expected: Vec<String> = uploaded
        .iter()
        .map(|k| {
            let name = k.trim_start_matches("in/");
            format!("s3://{BUCKET}/{k} archived s3://{BUCKET}/in/_archive/{name}")
        })
        .collect();
    assert_eq!(ledger, expected);
    let archived: Vec<String> = uploaded
        .iter()
        .map(|k| format!("in/_archive/{}", k.trim_start_matches("in/")))
        .collect();
    let mut left = archived.clone();
    left.extend(["in/.staging/x.csv", "in/_SUCCESS", "in/late.csv.tmp"].map(String::from));
    left.sort();
    assert_eq!(
        keys(&s3, "in").await,
        left,
        "loaded objects moved, others untouched"
    );
    let first = files_below(&dir).remove(0);
    assert_eq!(
        object(&s3, &archived[0]).await,
        std::fs::read(dir.join(first)).expect("read"),
        "archived byte for byte"
    );

    // Run again: nothing is listed as new, nothing read, nothing added.
    let out = run_ok(
        moto.run(&db, &url)
            .args(["--once", "--after-load", "archive"]),
    );
    let again: serde_json::Value = serde_json::from_str(out.trim()).expect("summary");
    assert_eq!(
        (again["batches"].as_u64(), again["rows_read"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 6);
}

#[tokio::test]
async fn s3_kill_9_between_commit_and_delete_then_restart_loads_exactly_once() {
    let moto = Moto::start();
    let s3 = moto.client();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("in");
    generate(
        &dir,
        10,
        300,
        23,
        &["--invalid-share", "0.05", "--duplicate-share", "0.05"],
    );
    let uploaded = upload(&s3, &dir, "in").await;
    let reference = test_db().await;
    load_once(&reference, &dir, &["--after-load", "delete"]);
    let want = fingerprint(&reference.client().await, &dir).await;

    let db = test_db().await;
    let url = format!("s3://{BUCKET}/in");
    let cmd = |pause: bool| {
        let mut c = moto.run(&db, &url);
        // Batches commit one at a time: exactly one before the pause.
        c.args(["--once", "--batch-max-files", "2", "--after-load", "delete"]);
        if pause {
            c.env("SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS", "120000");
        }
        c
    };
    let ledgered = || async {
        try_count(&db, "SELECT count(*) FROM ingested_files")
            .await
            .unwrap_or(0)
    };

    // Round 1: killed right after its first commit, before deleting.
    let mut loader = Loader::spawn(&mut cmd(true));
    wait_for(Duration::from_secs(60), "the first commit", || async {
        loader.logged("pausing")
    })
    .await;
    loader.child.kill().expect("kill -9");
    loader.child.wait().expect("reap");
    assert_eq!(ledgered().await, 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM ingested_files WHERE disposition IS NULL"
        )
        .await,
        2,
        "committed, not yet deleted"
    );
    assert_eq!(
        keys(&s3, "in").await,
        uploaded,
        "nothing deleted before the kill"
    );

    // Round 2: the restart resumes after the ledgered keys, first finishes
    // the two committed objects' deletion, then is killed after its commit.
    let mut loader = Loader::spawn(&mut cmd(true));
    wait_for(Duration::from_secs(60), "the second commit", || async {
        loader.logged("pausing")
    })
    .await;
    loader.child.kill().expect("kill -9");
    loader.child.wait().expect("reap");
    assert!(loader.logged("resumes after"), "{}", loader.log());
    assert_eq!(ledgered().await, 4);
    assert_eq!(
        keys(&s3, "in").await,
        uploaded[2..].to_vec(),
        "the first two deleted by the restart, the next two not yet"
    );

    // Round 3: to the end.
    let out = run_ok(&mut cmd(false));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("summary");
    assert_eq!(summary["files_deleted"], 10 - 2);
    assert_eq!(
        fingerprint(&db.client().await, Path::new(&url)).await,
        want,
        "no row lost or doubled"
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT path) FROM ingested_files").await,
        10
    );
    assert_eq!(ledgered().await, 10, "one ledger row per object");
    assert_eq!(
        strings(&db, "SELECT DISTINCT disposition FROM ingested_files").await,
        ["deleted"]
    );
    assert!(keys(&s3, "in").await.is_empty(), "every object deleted");
}

#[tokio::test]
async fn s3_restart_lists_only_new_keys_and_reads_no_processed_object() {
    let moto = Moto::start();
    let s3 = moto.client();
    let tmp = tempfile::tempdir().expect("tmp");
    let first_dir = tmp.path().join("first");
    let second_dir = tmp.path().join("second");
    generate(&first_dir, 5, 100, 31, &[]);
    generate(&second_dir, 2, 100, 32, &[]);
    // Keys sort in arrival order: the later upload sorts after.
    let old = upload(&s3, &first_dir, "in/2026-11-01").await;
    let db = test_db().await;
    let url = format!("s3://{BUCKET}/in");
    run_ok(moto.run(&db, &url).arg("--once"));
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 5);
    let new = upload(&s3, &second_dir, "in/2026-11-02").await;

    let from = moto.log().len();
    let mut loader = Loader::spawn(moto.run(&db, &url).args([
        "--relist-secs",
        "0.3",
        "--full-relist-secs",
        "3600",
    ]));
    wait_for(Duration::from_secs(60), "the new objects", || async {
        try_count(&db, "SELECT count(*) FROM ingested_files").await == Some(7)
    })
    .await;
    // A few more listings with nothing new (waited for in the server's log).
    let loaded_at = moto.log().len();
    wait_for(Duration::from_secs(60), "3 more listings", || async {
        moto.requests_since(loaded_at)
            .iter()
            .filter(|r| r.contains("list-type=2"))
            .count()
            >= 3
    })
    .await;
    let base = loader.http_url().expect("the HTTP endpoint's URL");
    let (_, text) = http_get(&base, "/metrics");
    assert_eq!(
        metric(&text, "shopstream_objects_listed_total"),
        Some(2.0),
        "only the two new keys were listed:\n{text}"
    );
    assert_eq!(metric(&text, "shopstream_objects_read_total"), Some(2.0));
    loader.assert_alive();
    loader.stop();

    // The server's own log agrees: every listing started after the last
    // loaded key, and no processed object was fetched again.
    let requests = moto.requests_since(from);
    let listings: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("list-type=2"))
        .collect();
    assert!(listings.len() >= 3, "{requests:?}");
    assert!(
        listings.iter().all(|r| r.contains("start-after=")),
        "{listings:?}"
    );
    for key in &old {
        let get = format!("GET /{BUCKET}/{key}");
        assert!(
            !requests.iter().any(|r| r.starts_with(&get)),
            "{key} was read again: {requests:?}"
        );
    }
    for key in &new {
        let get = format!("GET /{BUCKET}/{key}");
        assert_eq!(
            requests.iter().filter(|r| r.starts_with(&get)).count(),
            1,
            "{key}"
        );
    }

    // A key that sorts before the mark is found by a full listing only.
    s3.put(
        &Key::from("in/2026-10-31/late.csv"),
        "event_id,user_id,event_type,product_id,price,event_time\n\
         00000000-0000-4000-8000-00000000abcd,u1,view,p1,,2026-01-01 00:00:00\n"
            .into(),
    )
    .await
    .expect("upload");
    run_ok(moto.run(&db, &url).arg("--once"));
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 7);
    run_ok(
        moto.run(&db, &url)
            .args(["--once", "--full-relist-secs", "0"]),
    );
    assert_eq!(count(&db, "SELECT count(*) FROM ingested_files").await, 8);
}

#[tokio::test]
async fn s3_poison_object_is_quarantined_with_its_reason_and_refused_rows_keep_their_raw_line() {
    let moto = Moto::start();
    let s3 = moto.client();
    let db = test_db().await;
    run_ok(shopstream().args(["migrate", "--database-url", &db.url]));
    db.client()
        .await
        .batch_execute(
            "ALTER TABLE ecommerce_events ADD CONSTRAINT quantity_below_9 CHECK (quantity < 9)",
        )
        .await
        .expect("a constraint the validator does not know");
    let header = "event_id,user_id,session_id,event_type,product_id,price,quantity,event_time";
    let row = |n: u32, qty: u32| {
        format!("00000000-0000-4000-8000-{n:012},u{n},s{n},add_to_cart,p{n},1.50,{qty},2026-01-01 00:00:00")
    };
    let good = format!("{header}\n{}\n{}\n{}\n", row(1, 1), row(2, 9), row(3, 2));
    let poison: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0";
    s3.put(&Key::from("in/sub/good.csv"), good.clone().into())
        .await
        .expect("upload");
    s3.put(&Key::from("in/sub/bad.csv"), poison.to_vec().into())
        .await
        .expect("upload");

    let url = format!("s3://{BUCKET}/in");
    let out = run_ok(moto.run(&db, &url).arg("--once"));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("summary");
    assert_eq!(summary["files_quarantined"], 1);
    assert_eq!(
        (
            summary["rows_loaded"].as_u64(),
            summary["rows_rejected"].as_u64()
        ),
        (Some(2), Some(1))
    );

    let c = db.client().await;
    let bad = c
        .query_one(
            "SELECT status, reason, disposition, moved_to FROM ingested_files WHERE path = $1",
            &[&format!("s3://{BUCKET}/in/sub/bad.csv")],
        )
        .await
        .expect("ledger row");
    assert_eq!(bad.get::<_, String>(0), "rejected");
    let reason: String = bad.get(1);
    assert!(reason.contains("binary"), "{reason}");
    assert_eq!(
        bad.get::<_, Option<String>>(2).as_deref(),
        Some("quarantined")
    );
    assert_eq!(
        bad.get::<_, Option<String>>(3),
        Some(format!("s3://{BUCKET}/in/_quarantine/sub/bad.csv"))
    );
    assert_eq!(
        keys(&s3, "in").await,
        [
            "in/_quarantine/sub/bad.csv",
            "in/_quarantine/sub/bad.csv.reason.txt",
            "in/sub/good.csv"
        ],
        "the poison object moved, the good one kept"
    );
    assert_eq!(object(&s3, "in/_quarantine/sub/bad.csv").await, poison);
    let why = String::from_utf8(object(&s3, "in/_quarantine/sub/bad.csv.reason.txt").await)
        .expect("text");
    assert!(
        why.starts_with(&format!(
            "file: s3://{BUCKET}/in/sub/bad.csv\nquarantined: "
        )),
        "{why}"
    );
    assert!(why.contains(&format!("reason: {reason}")), "{why}");

    // The row the server refused was read back from the object.
    let dead = c
        .query_one(
            "SELECT source_file, source_line, raw_line, error_codes FROM dead_letter_events",
            &[],
        )
        .await
        .expect("one dead letter");
    assert_eq!(
        dead.get::<_, String>(0),
        format!("s3://{BUCKET}/in/sub/good.csv")
    );
    assert_eq!(dead.get::<_, i64>(1), 3);
    assert_eq!(dead.get::<_, String>(2), row(2, 9));
    assert_eq!(dead.get::<_, Vec<String>>(3), ["rejected_by_database"]);
}

#[tokio::test]
async fn s3_a_large_object_is_streamed_in_bounded_memory() {
    let moto = Moto::start();
    let s3 = moto.client();
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = |rows: u32| {
        let mut text = String::from("event_id,user_id,event_type,product_id,price,event_time\n");
        for n in 0..rows {
            text.push_str(&format!(
                "00000000-0000-4000-8000-{n:012},u{},view,p{},,2026-01-01 00:00:00\n",
                n % 1000,
                n % 500
            ));
        }
        text
    };
    let url = format!("s3://{BUCKET}/in");
    s3.put(&Key::from("in/a-small.csv"), csv(100).into())
        .await
        .expect("upload");
    let small = common::peak_rss(
        moto.run(&db, &url).arg("--once"),
        &tmp.path().join("small.log"),
    );
    // Held whole, its encoded rows would take about twice its size, more
    // than the two runs of rows a load holds at most.
    let big = csv(1_000_000);
    let size = big.len() as u64;
    s3.put(&Key::from("in/b-big.csv"), big.into())
        .await
        .expect("upload");
    let peak = common::peak_rss(
        moto.run(&db, &url).arg("--once"),
        &tmp.path().join("big.log"),
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM ecommerce_events").await,
        1_000_000,
        "the small file's rows are duplicates of the big one's first 100"
    );
    eprintln!("peak RSS: {small} bytes for 100 rows, {peak} for a {size}-byte object");
    let runs = 2 * (shopstream::pipeline::read::RUN_BYTES as u64 + (1 << 20));
    assert!(
        peak < small + runs + (16 << 20) && peak < small + size,
        "reading a {size}-byte object took {peak} bytes at peak, {small} for a tiny one: \
         the object must be streamed, not held"
    );
}
