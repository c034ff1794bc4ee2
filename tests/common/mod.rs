//! The shared integration-test harness: every test gets its own database on
//! one shared test server, so tests run in parallel without seeing each other.
//!
//! The server is `SHOPSTREAM_TEST_DATABASE_URL` when set (an admin connection
//! that may create databases), otherwise a private embedded server in
//! `<tmp>/shopstream-test-<uid>`, shared by all test binaries and never
//! stopped (the next run reuses it). This harness never shares a `Client`
//! between tests (each `#[tokio::test]` has its own runtime) and never touches
//! any other server.
#![allow(dead_code)]

pub mod tls_server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shopstream::db::connect::{config_to_url, error_chain};
use shopstream::db::embedded::{EmbeddedOptions, EmbeddedServer};
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls};

/// A database of its own for one test.
pub struct TestDb {
    pub name: String,
    /// A URL for this database, for `--database-url` (may hold a password).
    pub url: String,
}

impl TestDb {
    /// A new connection to this database; its I/O task runs on the calling
    /// test's runtime.
    pub async fn client(&self) -> Client {
        let config = Config::from_str(&self.url).expect("test database URL parses");
        connect(&config).await
    }

    pub fn config(&self) -> Config {
        Config::from_str(&self.url).expect("test database URL parses")
    }
}

/// The admin connection settings of the shared test server.
struct Admin {
    config: Config,
    embedded: bool,
}

static ADMIN: OnceCell<Admin> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn connect(config: &Config) -> Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test server: {}", error_chain(&e)));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The data dir of the shared embedded test server.
pub fn shared_data_dir() -> std::path::PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("shopstream-test-{uid}"))
}

async fn admin() -> &'static Admin {
    ADMIN
        .get_or_init(|| async {
            if let Some(url) = std::env::var("SHOPSTREAM_TEST_DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
            {
                let config = Config::from_str(&url)
                    .expect("SHOPSTREAM_TEST_DATABASE_URL is a valid connection string");
                return Admin {
                    config,
                    embedded: false,
                };
            }
            let server = EmbeddedServer::start(&EmbeddedOptions::new(shared_data_dir()))
                .await
                .unwrap_or_else(|e| panic!("starting the shared test server: {e}"));
            let admin = Admin {
                config: server.config("postgres"),
                embedded: true,
            };
            // Dropping the handle leaves the server running for everyone.
            drop(server);
            drop_leftover_databases(&admin.config).await;
            admin
        })
        .await
}

/// Drops test databases of earlier runs (their process is gone). Only on the
/// embedded server, where the pid in the name is from this machine.
async fn drop_leftover_databases(config: &Config) {
    let client = connect(config).await;
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%\\_%\\_%'",
            &[],
        )
        .await
        .unwrap_or_default();
    for row in rows {
        let name: String = row.get(0);
        let Some(pid) = name.split('_').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = pid > 0
            && (unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM));
        if !alive {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Creates a fresh, uniquely named database (`t_<pid>_<counter>_<random>`) on
/// the shared test server.
pub async fn test_db() -> TestDb {
    let admin = admin().await;
    let name = format!(
        "t_{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let client = connect(&admin.config).await;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("creating test database {name}: {}", error_chain(&e)));
    let mut config = admin.config.clone();
    config.dbname(&name);
    TestDb {
        url: config_to_url(&config),
        name,
    }
}

/// Whether the shared server is the embedded one (not
/// `SHOPSTREAM_TEST_DATABASE_URL`).
pub async fn shared_server_is_embedded() -> bool {
    admin().await.embedded
}

/// The shopstream binary with no database settings, log level or other
/// shopstream configuration inherited from the environment: only explicit
/// flags apply, except that the HTTP endpoint of `run` and `demo` listens
/// on a free port (tests run in parallel; the log names the port).
pub fn shopstream() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shopstream"));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key == "DATABASE_URL"
            || key == "RUST_LOG"
            || key.starts_with("POSTGRES_")
            || key.starts_with("SHOPSTREAM_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("SHOPSTREAM_HTTP_ADDR", "127.0.0.1:0");
    cmd
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(base: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(base, "GET", path, &[]);
    (status, body)
}

/// One HTTP/1.1 request with extra headers: (status, head, body).
pub fn http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    try_http_request(base, method, path, headers)
        .unwrap_or_else(|e| panic!("HTTP {method} {path}: {e}"))
}

/// [`http_get`], or `None` when the connection failed (refused, reset: a
/// server at its connection limit closes at once).
pub fn try_http_get(base: &str, path: &str) -> Option<(u16, String)> {
    try_http_request(base, "GET", path, &[])
        .ok()
        .map(|(status, _, body)| (status, body))
}

/// [`http_request`], with I/O failures returned instead of failing the test.
pub fn try_http_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&host)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    Ok((status, head.to_string(), body.to_string()))
}

/// The value of one sample line (`name{labels} value`) of a Prometheus
/// text exposition; `None` when absent.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sends a signal (e.g. `-TERM`) to a child through kill(1).
#[allow(dead_code)]
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

/// Waits for a child to exit, failing the test after `limit`.
#[allow(dead_code)]
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        assert!(start.elapsed() < limit, "did not exit within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

/// Runs a shopstream command, failing the test with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn shopstream");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `shopstream generate` with a fixed seed; returns its JSON report.
pub fn generate(
    dir: &Path,
    files: u32,
    per_file: u32,
    seed: u64,
    extra: &[&str],
) -> serde_json::Value {
    let report = dir.with_extension("report.json");
    run_ok(
        shopstream()
            .args(["generate", "--output"])
            .arg(dir)
            .args([
                "--files",
                &files.to_string(),
                "--events-per-file",
                &per_file.to_string(),
            ])
            .args(["--seed", &seed.to_string(), "--report-json"])
            .arg(&report)
            .args(extra),
    );
    serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json")
}

/// `shopstream run --once` over `dir` into `db`; returns stdout.
pub fn load_once(db: &TestDb, dir: &Path, extra: &[&str]) -> String {
    run_ok(
        shopstream()
            .args(["run", "--once", "--database-url", &db.url, "--input"])
            .arg(dir)
            .args(extra),
    )
}

/// The single value of a `SELECT count(*) …`.
pub async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

/// Like [`count`], but `None` while the query fails (e.g. before the
/// loader has created the tables).
pub async fn try_count(db: &TestDb, sql: &str) -> Option<i64> {
    let config = db.config();
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.query_one(sql, &[]).await.ok().map(|r| r.get(0))
}

/// A `SELECT key, count(*) … GROUP BY key` as a map.
pub async fn counts_by(db: &TestDb, sql: &str) -> std::collections::BTreeMap<String, u64> {
    db.client()
        .await
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

/// A fingerprint of everything a load produces that does not depend on
/// timing or on where the input folder was: every column of every row of
/// the events, dead letters and ledger (NULLs included, as JSON), except
/// generated ids, batch ids and timestamps of the load itself (and a
/// file's mtime, device, inode and ctime, which differ between copies of
/// the input); file paths
/// are taken relative to `root`. Per-batch quality rows depend on how files
/// were batched, so only their sums count.
pub async fn fingerprint(c: &Client, root: &Path) -> Vec<String> {
    fingerprint_with(c, root, Copies::Same).await
}

/// Which copy of a repeated event (or file) a load keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copies {
    /// The same copy: one connection, files in order.
    Same,
    /// Any copy: parallel batches commit in any order, so which copy of a
    /// repeated event is loaded (its `source_file`/`source_line`) and which
    /// copy of a file is `loaded` rather than `duplicate` may differ; every
    /// other column must not.
    Any,
}

/// [`fingerprint`], with a choice of how strict to be about copies.
pub async fn fingerprint_with(c: &Client, root: &Path, copies: Copies) -> Vec<String> {
    let root = format!("{}/", root.display());
    // One md5 over the rows as JSON text (every column, NULLs as null),
    // sorted, with the root cut out of paths.
    let agg = |rows: &str| {
        format!(
            "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(j, ',' ORDER BY j)), '')
             FROM (SELECT replace(({rows})::text, $1, '') AS j FROM {{table}} t) s"
        )
    };
    let (events, ledger) = match copies {
        Copies::Same => (
            agg("to_jsonb(t) - 'batch_id' - 'ingested_at'"),
            agg(
                "to_jsonb(t) - 'id' - 'batch_id' - 'committed_at' - 'modified_at' - 'device'
                 - 'inode' - 'ctime_ns'",
            ),
        ),
        Copies::Any => (
            agg("to_jsonb(t) - 'batch_id' - 'ingested_at' - 'source_file' - 'source_line'"),
            agg(
                "to_jsonb(t) - 'id' - 'batch_id' - 'committed_at' - 'modified_at' - 'device'
                 - 'inode' - 'ctime_ns' - 'status'
                 - 'duplicate_of' - 'rows_loaded' - 'rows_duplicate'
                 || jsonb_build_object('rows_kept', rows_loaded + rows_duplicate,
                                       'rejected', status = 'rejected')",
            ),
        ),
    };
    // Messages are left out of a dead letter's errors: a future time's
    // message says how far ahead it was when processed.
    let dead = agg("to_jsonb(t) - 'id' - 'batch_id' - 'rejected_at' - 'errors'
         || jsonb_build_object('errors', (SELECT jsonb_agg(e - 'message' ORDER BY n)
                FROM jsonb_array_elements(t.errors) WITH ORDINALITY AS x(e, n)))");
    let mut v = vec![];
    for (table, sql) in [
        ("ecommerce_events", events),
        ("dead_letter_events", dead),
        ("ingested_files", ledger),
    ] {
        let sql = sql.replace("{table}", table);
        v.push(
            c.query_one(&sql, &[&root])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get::<_, String>(0),
        );
    }
    let sums = "SELECT sum(rows_read)::text || ' ' || sum(rows_loaded)::text || ' '
        || sum(rows_duplicate)::text || ' ' || sum(rows_rejected)::text FROM data_quality_metrics";
    v.push(
        c.query_one(sums, &[])
            .await
            .expect(sums)
            .get::<_, Option<String>>(0)
            .unwrap_or_default(),
    );
    v
}

/// Collects the lines of a child's output on a thread of its own.
pub fn collect_lines(out: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(vec![]));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

/// A running `shopstream run` whose stderr lines are collected; killed if
/// the test fails.
pub struct Loader {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Loader {
    pub fn spawn(cmd: &mut std::process::Command) -> Loader {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shopstream");
        let lines = collect_lines(child.stderr.take().expect("stderr"));
        Loader { child, lines }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .any(|l| l.contains(needle))
    }

    /// The base URL of its HTTP endpoint, once it has logged it.
    pub fn http_url(&self) -> Option<String> {
        self.lines.lock().expect("lines").iter().find_map(|l| {
            let at = l.find("http://")?;
            let hostport: String = l[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                .collect();
            Some(format!("http://{hostport}"))
        })
    }

    pub fn log(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "the loader exited:\n{}",
            self.log()
        );
    }

    /// SIGTERM, exit 0, and the summary line it printed.
    pub fn stop(mut self) -> serde_json::Value {
        signal(&self.child, "-TERM");
        let status = wait_exit(&mut self.child, Duration::from_secs(60));
        assert!(status.success(), "exit {status:?}:\n{}", self.log());
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            std::io::Read::read_to_string(&mut o, &mut out).expect("stdout");
        }
        serde_json::from_str(out.trim()).expect("summary JSON")
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `cond` holds, failing after `limit` with `what`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP port on 127.0.0.1 held for as long as this value lives, by a
/// socket that is bound (with `SO_REUSEADDR`) but never listens. While held:
/// * nothing else gets the port from the kernel, and a connection to it is
///   refused (no listener: the kernel answers with a reset). Use it where a
///   test needs "a port that refuses"; never assume a fixed port is closed.
/// * a server that binds with `SO_REUSEADDR` itself (PostgreSQL, Python's
///   HTTP servers) can still bind and listen on it: reserve a port for a
///   child server this way, instead of binding, closing and hoping no one
///   took it in between.
pub struct HeldPort {
    fd: libc::c_int,
    pub port: u16,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        // SAFETY: plain socket calls on a descriptor this value owns; every
        // result is checked, and the struct is fully initialised before use.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let one: libc::c_int = 1;
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "SO_REUSEADDR: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            addr.sin_port = 0;
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let rc = libc::bind(fd, (&addr as *const libc::sockaddr_in).cast(), len);
            assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
            let rc = libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len);
            assert_eq!(rc, 0, "getsockname: {}", std::io::Error::last_os_error());
            HeldPort {
                fd,
                port: u16::from_be(addr.sin_port),
            }
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Default for HeldPort {
    fn default() -> Self {
        HeldPort::new()
    }
}

impl Drop for HeldPort {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// Says on stderr that a case was skipped and why (`SKIPPED: <case>
/// because <why>`), so a skip never passes silently. Under CI (`CI` set,
/// as `.ci/run` runs), where every case must run, it fails instead.
pub fn skip(case: &str, because: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "{case} would be skipped because {because}, and CI must skip nothing"
    );
    eprintln!("SKIPPED: {case} because {because}");
}

/// When the tests run as root: the uid and gid of the unprivileged
/// `postgres` account (the embedded server's, so it may also use the
/// shared test server's socket) for child processes that must not read
/// what root reads. `None` when not root (the tests then are unprivileged).
pub fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam_r writes into `pw` and `buf`, both owned here and
    // large enough as passed; `found` is NULL or points at `pw`.
    let (uid, gid) = unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        assert!(
            rc == 0 && !found.is_null(),
            "a 'postgres' account (installed with the postgresql package)"
        );
        (pw.pw_uid, pw.pw_gid)
    };
    Some((uid, gid))
}

/// A local webhook receiver: records each POST body, answers 200. Returns
/// its base URL (`http://127.0.0.1:PORT`, no path) and the bodies.
pub fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(vec![]));
    let sink = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                sink.lock()
                    .expect("bodies")
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, bodies)
}

/// Runs `cmd` to its end; returns its peak resident memory in bytes (its
/// own `VmHWM`, read until it exits: the high-water mark only grows).
pub fn peak_rss(cmd: &mut Command, log: &Path) -> u64 {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn shopstream");
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    // A zombie has no memory left to report: polling stops there.
    while let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    }) {
        peak = peak.max(kb * 1024);
        std::thread::sleep(Duration::from_millis(5));
    }
    let exit = child.wait().expect("wait");
    assert!(
        exit.success(),
        "shopstream failed:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert!(peak > 0, "no memory figure was read");
    peak
}

/// Runs `scenario` against a PostgreSQL server of its own that it may stop
/// and start (an outage): its data folder is in a fresh folder under /tmp
/// (`prefix…`) that the `postgres` account can reach when the tests run as
/// root. If the scenario panics, the server is stopped before the panic
/// goes on, so no server is left running.
pub async fn with_private_server<F, Fut>(prefix: &str, scenario: F)
where
    F: FnOnce(EmbeddedOptions, std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("tmp");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let opts = EmbeddedOptions::new(tmp.path().join("db"));
    let run = scenario(opts.clone(), tmp.path().to_path_buf());
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await;
    if let Err(panic) = result {
        if let Ok(server) = EmbeddedServer::start(&opts).await {
            let _ = server.stop_now().await;
        }
        std::panic::resume_unwind(panic);
    }
}
