//! Integration tests for the private PostgreSQL server (`db::embedded`) and
//! for choosing the database (`db::connect`): real binaries, real processes,
//! real servers, no mocks. Each test uses its own temporary data dir (or its
//! own database on the shared test server) and stops what it starts.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shopstream::db::connect::{Database, DbArgs};
use shopstream::db::embedded::{EmbeddedOptions, EmbeddedServer, RELOCATED_ROOT};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temporary directory the `postgres` account can traverse (tempdirs are
/// 0700, which would make a root run relocate the cluster).
fn reachable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ss-emb-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

async fn connect(config: &Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connects");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn postmaster_pid(cluster: &Path) -> Option<i32> {
    fs::read_to_string(cluster.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn cwd_of(pid: &str) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

fn ppid_of(pid: &str) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1).map(str::to_string)
}

/// Number of postmasters on `cluster`: processes working in it whose parent
/// does not.
fn postmasters_on(cluster: &Path) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| name.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| cwd_of(pid).as_deref() == Some(cluster))
        .filter(|pid| {
            ppid_of(pid)
                .and_then(|pp| cwd_of(&pp))
                .map(|cwd| cwd != cluster)
                .unwrap_or(true)
        })
        .count()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills (SIGQUIT: immediate shutdown) whatever server still runs on a test
/// cluster when the test ends, even by panic, and removes extra directories.
struct Cleanup {
    cluster: PathBuf,
    remove: Vec<PathBuf>,
}

impl Cleanup {
    fn new(cluster: &Path) -> Self {
        Cleanup {
            cluster: cluster.to_path_buf(),
            remove: Vec::new(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = postmaster_pid(&self.cluster) {
            if alive(pid) && cwd_of(&pid.to_string()).as_deref() == Some(self.cluster.as_path()) {
                // SAFETY: sending a signal to a known pid.
                unsafe { libc::kill(pid, libc::SIGQUIT) };
                let deadline = Instant::now() + Duration::from_secs(10);
                while alive(pid) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        for dir in &self.remove {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

async fn select_one(config: &Config) {
    let client = connect(config).await;
    let row = client.query_one("SELECT 1", &[]).await.expect("SELECT 1");
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reuse_stop_restart_and_survive_kill_9() {
    let tmp = reachable_tempdir();
    let opts = EmbeddedOptions::new(tmp.path().join("data"));

    // Fresh data dir: initdb + start.
    let s1 = EmbeddedServer::start(&opts).await.expect("first start");
    let _cleanup = Cleanup::new(s1.cluster_dir());
    let cluster = s1.cluster_dir().to_path_buf();
    assert!(s1.started_here());
    assert_eq!(
        cluster,
        fs::canonicalize(tmp.path()).unwrap().join("data/pg")
    );
    assert!(s1
        .log_file()
        .starts_with(fs::canonicalize(tmp.path()).unwrap()));
    select_one(&s1.config("shopstream")).await;
    let client = connect(&s1.config("shopstream")).await;
    client
        .batch_execute("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('kept')")
        .await
        .expect("marker table");
    drop(client);
    let pg_version_mtime = fs::metadata(cluster.join("PG_VERSION"))
        .and_then(|m| m.modified())
        .expect("PG_VERSION");
    let pid1 = postmaster_pid(&cluster).expect("postmaster.pid");
    assert_eq!(postmasters_on(&cluster), 1);

    // The URL works with tokio-postgres and with psql.
    let url = s1.url("shopstream");
    select_one(&url.parse().expect("URL parses")).await;
    match std::process::Command::new("psql")
        .arg(&url)
        .args(["-XtAc", "SELECT v FROM marker"])
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "psql: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kept");
        }
        Err(e) => common::skip(
            "the embedded server's URL with psql",
            &format!("psql cannot be run ({e}; scripts/ensure-postgres.sh installs it)"),
        ),
    }

    // A second start on the same dir reuses the running server.
    let s2 = EmbeddedServer::start(&opts).await.expect("second start");
    assert!(!s2.started_here());
    assert_eq!(s2.socket_dir(), s1.socket_dir());
    assert_eq!(s2.port(), s1.port());
    assert_eq!(postmaster_pid(&cluster), Some(pid1));
    assert_eq!(postmasters_on(&cluster), 1);
    select_one(&s2.config("shopstream")).await;

    // stop() by a process that did not start it leaves it running.
    s2.stop().await.expect("stop s2");
    assert!(alive(pid1));

    // stop() by the starter leaves it running while another client (here:
    // one that uses the URL, as another process would) is connected...
    let other = connect(&s1.url("postgres").parse().expect("URL")).await;
    // ...but not for its own connections (made with its config).
    let own = connect(&s1.config("postgres")).await;
    s1.stop().await.expect("stop s1");
    assert!(alive(pid1), "stopped although a client was connected");
    other
        .query_one("SELECT 1", &[])
        .await
        .expect("still served");
    drop(other);
    drop(own);

    // stop_now() always stops.
    let s3 = EmbeddedServer::start(&opts).await.expect("third start");
    assert!(!s3.started_here());
    s3.stop_now().await.expect("stop_now");
    assert!(!alive(pid1));
    assert!(postmaster_pid(&cluster).is_none());

    // Start again: the cluster is reused, not re-created.
    let s4 = EmbeddedServer::start(&opts)
        .await
        .expect("start after stop");
    assert!(s4.started_here());
    let mtime = fs::metadata(cluster.join("PG_VERSION"))
        .and_then(|m| m.modified())
        .expect("PG_VERSION");
    assert_eq!(mtime, pg_version_mtime, "initdb ran again");
    let client = connect(&s4.config("shopstream")).await;
    let v: String = client
        .query_one("SELECT v FROM marker", &[])
        .await
        .expect("marker survives")
        .get(0);
    assert_eq!(v, "kept");
    drop(client);

    // kill -9 the postmaster: the next start recovers.
    let pid4 = postmaster_pid(&cluster).expect("postmaster.pid");
    // SAFETY: sending a signal to the postmaster this test started.
    assert_eq!(unsafe { libc::kill(pid4, libc::SIGKILL) }, 0);
    wait_until("the postmaster is dead", || !alive(pid4));
    drop(s4);
    assert!(
        cluster.join("postmaster.pid").exists(),
        "stale pid file left"
    );
    let s5 = EmbeddedServer::start(&opts)
        .await
        .expect("start after kill -9");
    assert!(s5.started_here());
    let pid5 = postmaster_pid(&cluster).expect("postmaster.pid");
    assert_ne!(pid5, pid4);
    assert_eq!(postmasters_on(&cluster), 1);
    let client = connect(&s5.config("shopstream")).await;
    let v: String = client
        .query_one("SELECT v FROM marker", &[])
        .await
        .expect("marker survives a crash")
        .get(0);
    assert_eq!(v, "kept");
    // The starter's stop() with no other clients stops; its own open
    // connections (made with its config) do not hold the server up.
    s5.stop().await.expect("stop s5");
    assert!(!alive(pid5), "not stopped");
    assert!(client.query_one("SELECT 1", &[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_share_one_server() {
    let tmp = reachable_tempdir();
    let opts = EmbeddedOptions::new(tmp.path().join("data"));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let opts = opts.clone();
            tokio::spawn(async move { EmbeddedServer::start(&opts).await })
        })
        .collect();
    let mut servers = Vec::new();
    for t in tasks {
        servers.push(t.await.expect("task").expect("start"));
    }
    let _cleanup = Cleanup::new(servers[0].cluster_dir());
    let cluster = servers[0].cluster_dir().to_path_buf();
    assert_eq!(servers.iter().filter(|s| s.started_here()).count(), 1);
    assert!(servers
        .iter()
        .all(|s| s.socket_dir() == servers[0].socket_dir()));
    assert_eq!(postmasters_on(&cluster), 1);
    let pid = postmaster_pid(&cluster).expect("pid");

    // The starter stops last, when nobody else is connected.
    servers.sort_by_key(|s| s.started_here());
    let starter = servers.pop().expect("starter");
    for s in servers {
        select_one(&s.config("shopstream")).await;
        s.stop().await.expect("stop");
    }
    assert!(alive(pid));
    starter.stop().await.expect("stop starter");
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_data_dir_gets_a_short_socket_dir() {
    let tmp = reachable_tempdir();
    let mut data_dir = tmp.path().to_path_buf();
    for _ in 0..4 {
        data_dir.push("a-rather-long-directory-name-for-sockets");
    }
    for dir in data_dir.ancestors().take(4) {
        fs::create_dir_all(dir).expect("mkdir");
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let server = EmbeddedServer::start(&EmbeddedOptions::new(&data_dir))
        .await
        .expect("start");
    let _cleanup = Cleanup::new(server.cluster_dir());
    assert!(
        server
            .socket_dir()
            .to_string_lossy()
            .starts_with("/tmp/shopstream-"),
        "{}",
        server.socket_dir().display()
    );
    select_one(&server.config("shopstream")).await;
    select_one(&server.url("shopstream").parse().expect("URL")).await;
    let socket_dir = server.socket_dir().to_path_buf();
    server.stop_now().await.expect("stop");
    assert!(!socket_dir.exists(), "the /tmp socket dir is tidied up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_relocates_a_cluster_postgres_cannot_reach() {
    if !is_root() {
        common::skip(
            "root_relocates_a_cluster_postgres_cannot_reach",
            "it needs root (a non-root user's cluster dir is its own)",
        );
        return;
    }
    // tempdirs are 0700 root: the postgres account cannot get in.
    let tmp = tempfile::tempdir_in("/tmp").expect("tempdir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let server = EmbeddedServer::start(&EmbeddedOptions::new(tmp.path().join("data")))
        .await
        .expect("start");
    let mut cleanup = Cleanup::new(server.cluster_dir());
    let base = server
        .cluster_dir()
        .parent()
        .expect("has a parent")
        .to_path_buf();
    cleanup.remove.push(base.clone());
    assert!(
        server.cluster_dir().starts_with(RELOCATED_ROOT),
        "{}",
        server.cluster_dir().display()
    );
    select_one(&server.config("shopstream")).await;
    // The same data dir maps to the same relocated cluster.
    let again = EmbeddedServer::start(&EmbeddedOptions::new(tmp.path().join("data")))
        .await
        .expect("start again");
    assert_eq!(again.cluster_dir(), server.cluster_dir());
    assert!(!again.started_here());
    drop(again);
    server.stop_now().await.expect("stop");
}

#[tokio::test]
async fn missing_binaries_say_what_to_install_and_the_alternative() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty-bin");
    fs::create_dir(&empty).expect("mkdir");
    let opts = EmbeddedOptions {
        data_dir: tmp.path().join("data"),
        bin_dir: Some(empty.clone()),
    };
    let err = EmbeddedServer::start(&opts).await.expect_err("no binaries");
    let msg = err.to_string();
    assert!(msg.contains("sudo apt-get install postgresql"), "{msg}");
    assert!(msg.contains("--database-url"), "{msg}");
    assert!(msg.contains(&empty.display().to_string()), "{msg}");

    let args = DbArgs {
        data_dir: tmp.path().join("data2"),
        postgres_bin_dir: Some(empty),
        ..DbArgs::default()
    };
    let msg = Database::open(&args)
        .await
        .expect_err("no binaries")
        .to_string();
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
    assert!(msg.contains("--database-url"), "{msg}");
}

#[tokio::test]
async fn database_url_starts_no_embedded_server() {
    let db = common::test_db().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("never-created");
    let args = DbArgs {
        database_url: Some(db.url.clone()),
        data_dir: data_dir.clone(),
        ..DbArgs::default()
    };
    let opened = Database::open(&args).await.expect("opens");
    assert!(!opened.is_embedded());
    assert!(!opened.describe().contains("embedded"));
    assert_eq!(opened.url(), db.url);
    let client = opened.connect().await.expect("connects");
    let name: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(name, db.name);
    drop(client);
    opened.close().await.expect("close");
    assert!(!data_dir.exists(), "an embedded server was set up");
}

#[tokio::test]
async fn postgres_host_settings_reach_the_server() {
    let db = common::test_db().await;
    let config = db.config();
    let host = match &config.get_hosts()[0] {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => p.display().to_string(),
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = DbArgs {
        postgres_host: Some(host),
        postgres_port: config.get_ports().first().copied(),
        postgres_db: Some(db.name.clone()),
        postgres_user: config.get_user().map(str::to_string),
        postgres_password: config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        data_dir: tmp.path().join("never-created"),
        ..DbArgs::default()
    };
    let opened = Database::open(&args).await.expect("opens");
    assert!(!opened.is_embedded());
    let client = opened.connect().await.expect("connects");
    let name: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(name, db.name);
    // The URL handed to other processes leads to the same place.
    let again = connect(&opened.url().parse().expect("URL parses")).await;
    let name: String = again
        .query_one("SELECT current_database()", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(name, db.name);
    assert!(!tmp.path().join("never-created").exists());
}

#[tokio::test]
async fn passwords_never_show_in_descriptions_or_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // A port that refuses (held, not listening), not an assumed-closed one.
    let refusing = common::HeldPort::new();
    let port = refusing.port;
    for args in [
        DbArgs {
            database_url: Some(format!(
                "postgresql://alice:s3cr3t-pw@127.0.0.1:{port}/shop"
            )),
            data_dir: tmp.path().join("d"),
            ..DbArgs::default()
        },
        DbArgs {
            database_url: Some(format!(
                "host=127.0.0.1 port={port} user=alice password=s3cr3t-pw dbname=shop"
            )),
            data_dir: tmp.path().join("d"),
            ..DbArgs::default()
        },
        DbArgs {
            postgres_host: Some("127.0.0.1".into()),
            postgres_port: Some(port),
            postgres_user: Some("alice".into()),
            postgres_password: Some("s3cr3t-pw".into()),
            postgres_db: Some("shop".into()),
            data_dir: tmp.path().join("d"),
            ..DbArgs::default()
        },
    ] {
        assert!(!format!("{args:?}").contains("s3cr3t"));
        let db = Database::open(&args)
            .await
            .expect("opens without connecting");
        let described = db.describe();
        assert!(!described.contains("s3cr3t"), "{described}");
        assert!(
            described.contains("alice") && described.contains(&refusing.addr()),
            "{described}"
        );
        assert!(described.contains("***"), "{described}");
        let msg = db.connect().await.expect_err("nothing listens").to_string();
        assert!(!msg.contains("s3cr3t"), "{msg}");
        assert!(msg.contains(&refusing.addr()), "{msg}");
        assert!(msg.contains("--database-url"), "{msg}");
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }
    assert!(!tmp.path().join("d").exists());
}

#[tokio::test]
async fn test_db_gives_separate_usable_databases() {
    let a = common::test_db().await;
    let b = common::test_db().await;
    assert_ne!(a.name, b.name);
    let ca = a.client().await;
    let cb = b.client().await;
    for (c, db) in [(&ca, &a), (&cb, &b)] {
        let name: String = c
            .query_one("SELECT current_database()", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(name, db.name);
    }
    ca.batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .expect("create");
    let seen: i64 = cb
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(seen, 0);
    if common::shared_server_is_embedded().await {
        assert!(common::shared_data_dir().join("pg.lock").exists());
    }
}
