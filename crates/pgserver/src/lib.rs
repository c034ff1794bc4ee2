//! The private PostgreSQL server: with no database URL, shopstream runs its
//! own server from the PostgreSQL binaries installed on the machine, the way
//! SQLite is simply there.
//!
//! This crate owns the cluster directory (`<data_dir>/pg`, or a relocated
//! one under `/var/lib/shopstream/clusters` when running as root and the
//! `postgres` account cannot reach the data dir), its log file, its private
//! Unix socket directory and the lock file that serialises starts and stops
//! between processes. It finds the binaries, runs `initdb` once, starts the
//! server with `pg_ctl` (or reuses the one already running on the cluster),
//! and makes sure the `shopstream` database exists.
//!
//! It must never listen on TCP, never turn off durability (`fsync`,
//! `synchronous_commit`), never touch a cluster it did not create, never run
//! the server as root, and never stop a server that another process is using.

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use tracing::{debug, info, warn};

/// The port the private server listens on. Only the Unix socket in a private
/// directory is used, so it cannot clash with another server.
pub const PORT: u16 = 5432;
/// The database shopstream keeps its tables in.
pub const DATABASE: &str = "shopstream";
/// The superuser `initdb` creates; clients connect as it over the socket.
pub const SUPERUSER: &str = "postgres";
/// Where clusters go when running as root and the `postgres` account cannot
/// reach the requested data dir.
pub const RELOCATED_ROOT: &str = "/var/lib/shopstream/clusters";
/// Where PostgreSQL server binaries live on Debian/Ubuntu.
const DEBIAN_LIB_DIR: &str = "/usr/lib/postgresql";
/// The system account the server runs as when shopstream runs as root.
const SERVICE_ACCOUNT: &str = "postgres";
/// Longest socket *file* path we accept (sockaddr_un.sun_path is 108 bytes
/// including the NUL; keep a margin).
const MAX_SOCKET_PATH: usize = 100;
/// Seconds `pg_ctl` waits for a start or stop.
const PG_CTL_TIMEOUT_SECS: u32 = 120;
/// How long to wait for a server another process is starting or stopping.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(120);
/// Lines of log / command output quoted in errors.
const TAIL_LINES: usize = 25;
/// The line appended to `postgresql.conf` so that the per-start settings
/// file is read last.
const INCLUDE_LINE: &str = "include_if_exists = 'shopstream.conf'";

/// What [`EmbeddedServer::start`] needs to know.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// shopstream's own directory; the cluster lives in `<data_dir>/pg`.
    pub data_dir: PathBuf,
    /// Look for `initdb`, `pg_ctl` and `postgres` only in this directory
    /// instead of on `PATH` and under `/usr/lib/postgresql/*/bin`.
    pub bin_dir: Option<PathBuf>,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            bin_dir: None,
        }
    }
}

/// Why the private server could not be provided. Every message says what to
/// do about it.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found {searched}.\n  \
         shopstream runs its own private PostgreSQL server when no database is given; install the \
         server binaries with: sudo apt-get install postgresql (Debian/Ubuntu; the system \
         server need not be running)\n  \
         or use an existing server: --database-url postgres://user:pass@host/db (or set DATABASE_URL)"
    )]
    BinariesNotFound { searched: String },

    #[error(
        "running as root, but there is no 'postgres' system account to run the embedded \
         PostgreSQL server as (PostgreSQL refuses to run as root).\n  \
         Create it (installing the server with 'sudo apt-get install postgresql' does), \
         run shopstream as a regular user, or use an existing server with \
         --database-url postgres://user:pass@host/db (or DATABASE_URL)"
    )]
    NoServiceAccount,

    #[error(
        "the 'postgres' account cannot reach the existing cluster {cluster}: a parent \
         directory does not let it through. Make the parents traversable (chmod o+x), \
         or use another --data-dir"
    )]
    ClusterUnreachable { cluster: PathBuf },

    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },

    #[error(
        "the path {path} contains a character pg_ctl cannot pass through its shell \
         (one of \" $ ` \\); use a --data-dir without it"
    )]
    UnsafePath { path: PathBuf },

    #[error(
        "the socket directory {path} exists but belongs to another user; remove it \
         (it only holds the server's socket) and try again"
    )]
    ForeignSocketDir { path: PathBuf },

    #[error("{program} failed ({status}) for {cluster}:\n{output}")]
    Command {
        program: String,
        status: String,
        cluster: PathBuf,
        output: String,
    },

    #[error(
        "the PostgreSQL server for {cluster} did not start: {detail}\n\
         --- last lines of {log} ---\n{tail}"
    )]
    Start {
        cluster: PathBuf,
        detail: String,
        log: PathBuf,
        tail: String,
    },

    #[error(
        "a PostgreSQL server is running on {cluster} (pid {pid}) but {detail}. Stop it with \
         'pg_ctl stop -D {cluster}' and run shopstream again"
    )]
    Unusable {
        cluster: PathBuf,
        pid: i32,
        detail: String,
    },

    #[error(
        "could not connect to the embedded server for {cluster} (socket directory {socket_dir}): \
         {detail}\n--- last lines of {log} ---\n{tail}"
    )]
    Connect {
        cluster: PathBuf,
        socket_dir: PathBuf,
        detail: String,
        log: PathBuf,
        tail: String,
    },

    #[error("could not create the database {name} on the embedded server: {detail}")]
    CreateDatabase { name: String, detail: String },

    #[error("the embedded server task failed: {0}")]
    Task(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |error| EmbeddedError::Io {
        action,
        path,
        error,
    }
}

/// Where the three server programs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub dir: PathBuf,
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    pub postgres: PathBuf,
}

impl PgBinaries {
    fn in_dir(dir: &Path) -> Option<PgBinaries> {
        let bins = PgBinaries {
            dir: dir.to_path_buf(),
            initdb: dir.join("initdb"),
            pg_ctl: dir.join("pg_ctl"),
            postgres: dir.join("postgres"),
        };
        [&bins.initdb, &bins.pg_ctl, &bins.postgres]
            .iter()
            .all(|p| is_executable(p))
            .then_some(bins)
    }

    /// The major version `postgres --version` reports ("15", "9.6").
    fn major_version(&self) -> Option<String> {
        let out = Command::new(&self.postgres)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
        let version = text.split(')').nth(1)?.split_whitespace().next()?;
        major_of(version)
    }
}

/// "15.14" → "15", "9.6.24" → "9.6", "16beta1" → "16".
fn major_of(version: &str) -> Option<String> {
    let parts: Vec<&str> = version.split('.').collect();
    let first: String = parts
        .first()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let n: u32 = first.parse().ok()?;
    if n >= 10 {
        Some(first)
    } else {
        let second: String = parts
            .get(1)?
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        Some(format!("{n}.{second}"))
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds `initdb`, `pg_ctl` and `postgres`: only in `bin_dir` when given;
/// otherwise the first `PATH` directory holding all three, else the highest
/// version under `/usr/lib/postgresql/*/bin`.
pub fn find_binaries(bin_dir: Option<&Path>) -> Result<PgBinaries, EmbeddedError> {
    find_binaries_for(bin_dir, None)
}

/// Like [`find_binaries`], but prefers binaries of `cluster_version` (the
/// cluster's `PG_VERSION`) so an existing cluster keeps starting after a newer
/// major version is installed next to the old one.
fn find_binaries_for(
    bin_dir: Option<&Path>,
    cluster_version: Option<&str>,
) -> Result<PgBinaries, EmbeddedError> {
    if let Some(dir) = bin_dir {
        return PgBinaries::in_dir(dir).ok_or_else(|| EmbeddedError::BinariesNotFound {
            searched: format!("in {}", dir.display()),
        });
    }
    // (binaries, major version if known without running them)
    let mut candidates: Vec<(PgBinaries, Option<String>)> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(bins) = std::env::split_paths(&path).find_map(|d| PgBinaries::in_dir(&d)) {
            candidates.push((bins, None));
        }
    }
    let mut versions: Vec<(Vec<u32>, String)> = fs::read_dir(DEBIAN_LIB_DIR)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    let key: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
                    Some((key?, name))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    for (_, name) in versions {
        let dir = Path::new(DEBIAN_LIB_DIR).join(&name).join("bin");
        if let Some(bins) = PgBinaries::in_dir(&dir) {
            candidates.push((bins, Some(name)));
        }
    }
    if let Some(wanted) = cluster_version {
        for (bins, known) in &candidates {
            let version = match known {
                Some(v) => Some(v.clone()),
                None => bins.major_version(),
            };
            if version.as_deref() == Some(wanted) {
                return Ok(bins.clone());
            }
        }
        if !candidates.is_empty() {
            warn!(
                "the cluster was created by PostgreSQL {wanted}, but no binaries of that version \
                 were found; trying {}",
                candidates[0].0.dir.display()
            );
        }
    }
    candidates
        .into_iter()
        .next()
        .map(|(b, _)| b)
        .ok_or_else(|| EmbeddedError::BinariesNotFound {
            searched: format!("on PATH or in {DEBIAN_LIB_DIR}/*/bin"),
        })
}

/// A system account the server programs run as (when shopstream is root).
#[derive(Debug, Clone)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// Looks up a user in the password database (thread-safe `getpwnam_r`).
fn lookup_account(name: &str) -> io::Result<Option<Account>> {
    let cname = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    passwd_entry(|pwd, buf, len, result| unsafe {
        // SAFETY: all pointers are valid for the duration of the call and
        // `buf` has `len` bytes.
        libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result)
    })
}

/// The name of the user this process runs as (effective uid), if known.
pub fn os_user_name() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    passwd_entry(|pwd, buf, len, result| unsafe {
        // SAFETY: as in lookup_account.
        libc::getpwuid_r(uid, pwd, buf, len, result)
    })
    .ok()
    .flatten()
    .map(|a| a.name)
}

fn passwd_entry(
    mut call: impl FnMut(
        *mut libc::passwd,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
) -> io::Result<Option<Account>> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: passwd is plain old data; zeroed is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() || pwd.pw_name.is_null() {
            return Ok(None);
        }
        // SAFETY: on success the strings point into `buf`, NUL-terminated.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        let home = if pwd.pw_dir.is_null() {
            PathBuf::from("/")
        } else {
            // SAFETY: as above.
            PathBuf::from(OsStr::from_bytes(
                unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes(),
            ))
        };
        return Ok(Some(Account {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

/// Whether `account` may search (traverse) every directory from `/` down to
/// and including `dir` (canonical). Judged from mode bits with the primary
/// group only, so a "no" may be overly cautious, which only relocates.
fn account_can_reach(dir: &Path, account: &Account) -> bool {
    let mut cur = PathBuf::new();
    for comp in dir.components() {
        cur.push(comp);
        let Ok(md) = fs::metadata(&cur) else {
            return false;
        };
        let bit = if md.uid() == account.uid {
            0o100
        } else if md.gid() == account.gid {
            0o010
        } else {
            0o001
        };
        if md.mode() & bit == 0 {
            return false;
        }
    }
    true
}

/// A short, stable name for a path.
fn short_hash(path: &Path) -> String {
    let hex = blake3::hash(path.as_os_str().as_bytes()).to_hex();
    hex.as_str()[..16].to_string()
}

/// Everything about one cluster that the blocking helpers need.
#[derive(Debug, Clone)]
struct Cluster {
    /// The requested data dir (absolute, canonical).
    data_dir: PathBuf,
    /// The lock file serialising starts and stops: `<data_dir>/pg.lock`.
    lock_path: PathBuf,
    /// The cluster (PGDATA).
    dir: PathBuf,
    log_file: PathBuf,
    /// The socket directory this process configures when it starts the server.
    socket_dir: PathBuf,
    bins: PgBinaries,
    /// Run the server programs as this account (shopstream is root).
    run_as: Option<Account>,
}

/// What `postmaster.pid` says.
#[derive(Debug, Clone)]
struct PidFile {
    pid: i32,
    port: Option<u16>,
    socket_dir: Option<PathBuf>,
    status: String,
}

fn read_pid_file(cluster: &Path) -> Option<PidFile> {
    let text = fs::read_to_string(cluster.join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid: i32 = lines.first()?.trim().parse().ok()?;
    let port = lines.get(3).and_then(|l| l.trim().parse().ok());
    let socket_dir = lines
        .get(4)
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from);
    let status = lines
        .get(7)
        .map(|l| l.trim().to_string())
        .unwrap_or_default();
    Some(PidFile {
        pid,
        port,
        socket_dir,
        status,
    })
}

/// What is known about a process id.
#[derive(Debug, PartialEq, Eq)]
enum ProcState {
    Gone,
    /// Dead but not reaped (containers whose pid 1 does not reap orphans).
    /// `kill(pid, 0)` still succeeds, so PostgreSQL takes it for alive.
    Zombie,
    Running,
}

fn proc_state(pid: i32) -> ProcState {
    if pid <= 0 {
        return ProcState::Gone;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return ProcState::Gone;
    }
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.trim_start()) {
            if rest.starts_with('Z') || rest.starts_with('X') {
                return ProcState::Zombie;
            }
        }
    }
    ProcState::Running
}

/// Live processes whose working directory is `cluster`: a postmaster and
/// its children all work in their data directory. Empty where /proc is not
/// readable.
fn processes_in(cluster: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == cluster)
                && proc_state(*pid) == ProcState::Running
        })
        .collect()
}

/// The state of the postmaster `postmaster.pid` names.
#[derive(Debug)]
enum Liveness {
    /// It is our cluster's postmaster.
    Ours,
    /// No such process: the pid file is stale and PostgreSQL cleans it up
    /// itself (after checking no old backend still holds shared memory).
    Dead,
    /// The pid is a zombie or now belongs to an unrelated process (pid reuse,
    /// e.g. after a container restart): PostgreSQL would refuse to start.
    Stale,
}

fn postmaster_liveness(pid: i32, cluster: &Path) -> Liveness {
    match proc_state(pid) {
        ProcState::Gone => return Liveness::Dead,
        ProcState::Zombie => return Liveness::Stale,
        ProcState::Running => {}
    }
    if Path::new("/proc/self/cwd").exists() {
        // A postmaster's working directory is its data directory.
        return match fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(cwd) if cwd == cluster => Liveness::Ours,
            Ok(_) => Liveness::Stale,
            // Another user's process: our cluster's postmaster runs as us
            // (or as the account whose processes root can inspect).
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Liveness::Stale,
            Err(_) => Liveness::Dead,
        };
    }
    Liveness::Ours
}

/// A running server found on the cluster.
#[derive(Debug)]
struct Running {
    pid: i32,
    port: u16,
    socket_dir: PathBuf,
}

/// Waits until the server on `cluster` is ready (→ Some) or not running
/// (→ None). Lock files naming a zombie or a reused pid are removed once no
/// process of the old server is left in the cluster (PostgreSQL would take
/// them for a live server and refuse to start).
fn running_server(cluster: &Path) -> Result<Option<Running>, EmbeddedError> {
    let deadline = Instant::now() + WAIT_FOR_OTHER;
    loop {
        let Some(pf) = read_pid_file(cluster) else {
            return Ok(None);
        };
        match postmaster_liveness(pf.pid, cluster) {
            Liveness::Dead => return Ok(None),
            Liveness::Stale => {
                let leftovers = processes_in(cluster);
                if leftovers.is_empty() {
                    warn!(
                        "{} names pid {}, which is no longer its server (killed, or the pid was \
                         reused); removing the stale lock files",
                        cluster.join("postmaster.pid").display(),
                        pf.pid
                    );
                    remove_stale_lock_files(cluster, &pf);
                    return Ok(None);
                }
                if Instant::now() > deadline {
                    return Err(EmbeddedError::Unusable {
                        cluster: cluster.to_path_buf(),
                        pid: pf.pid,
                        detail: format!(
                            "its postmaster is gone while processes {leftovers:?} of it still run; \
                             end them"
                        ),
                    });
                }
                debug!("waiting for processes {leftovers:?} of a dead server to exit");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Liveness::Ours => {}
        }
        if pf.status == "ready" || pf.status == "standby" {
            let Some(socket_dir) = pf.socket_dir else {
                return Err(EmbeddedError::Unusable {
                    cluster: cluster.to_path_buf(),
                    pid: pf.pid,
                    detail: "it does not listen on a Unix socket".into(),
                });
            };
            return Ok(Some(Running {
                pid: pf.pid,
                port: pf.port.unwrap_or(PORT),
                socket_dir,
            }));
        }
        if Instant::now() > deadline {
            return Err(EmbeddedError::Unusable {
                cluster: cluster.to_path_buf(),
                pid: pf.pid,
                detail: format!(
                    "it stayed in state '{}' for {} seconds",
                    pf.status,
                    WAIT_FOR_OTHER.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn remove_stale_lock_files(cluster: &Path, pf: &PidFile) {
    if let (Some(dir), Some(port)) = (&pf.socket_dir, pf.port) {
        let lock = dir.join(format!(".s.PGSQL.{port}.lock"));
        let same_pid = fs::read_to_string(&lock)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            == Some(pf.pid);
        if same_pid {
            let _ = fs::remove_file(&lock);
        }
    }
    let _ = fs::remove_file(cluster.join("postmaster.pid"));
}

/// Creates `dir` and its parents; new directories get `mode` less the umask.
fn create_dir(dir: &Path, mode: u32) -> Result<(), EmbeddedError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(io_err("could not create directory", dir))
}

fn chown_to(path: &Path, account: Option<&Account>) -> Result<(), EmbeddedError> {
    if let Some(a) = account {
        std::os::unix::fs::chown(path, Some(a.uid), Some(a.gid))
            .map_err(io_err("could not hand over to the postgres account", path))?;
    }
    Ok(())
}

/// Last `n` lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// The last lines of a log file from byte `from` on (whole-file tail if the
/// file shrank).
fn log_tail(path: &Path, from: u64) -> String {
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let from = if from > len { 0 } else { from };
        let start = from.max(len.saturating_sub(64 * 1024));
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) if text.trim().is_empty() => "(the log is empty)".into(),
        Ok(text) => tail_lines(&text, TAIL_LINES),
        Err(e) => format!("(could not read the log: {e})"),
    }
}

fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    if !err.trim().is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&err);
    }
    tail_lines(&text, TAIL_LINES)
}

/// Quotes a value for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// Where a cluster's files go.
struct Layout {
    dir: PathBuf,
    log_file: PathBuf,
    socket_dir: PathBuf,
}

/// Works out where the cluster, its log and its socket go for `data_dir`
/// (absolute, canonical), relocating when root's service account cannot
/// reach it. Call under the lock: it may create the relocated base directory.
fn locate(data_dir: &Path, run_as: Option<&Account>) -> Result<Layout, EmbeddedError> {
    let requested = data_dir.join("pg");
    let base = match run_as {
        None => data_dir.to_path_buf(),
        Some(account) => {
            let relocated = Path::new(RELOCATED_ROOT).join(short_hash(&requested));
            if requested.is_dir() {
                if !account_can_reach(data_dir, account) {
                    return Err(EmbeddedError::ClusterUnreachable { cluster: requested });
                }
                data_dir.to_path_buf()
            } else if relocated.join("pg").is_dir() || !account_can_reach(data_dir, account) {
                info!(
                    "the postgres account cannot reach {}; the embedded cluster for it lives in {}",
                    data_dir.display(),
                    relocated.join("pg").display()
                );
                // Traversable by the postgres account whatever the umask.
                for dir in [
                    Path::new("/var/lib/shopstream"),
                    Path::new(RELOCATED_ROOT),
                    &relocated,
                ] {
                    create_dir(dir, 0o755)?;
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                        .map_err(io_err("could not set permissions on", dir))?;
                }
                relocated
            } else {
                data_dir.to_path_buf()
            }
        }
    };
    let dir = base.join("pg");
    let log_file = base.join("postgres.log");
    let mut socket_dir = base.join("run");
    if socket_dir.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len() > MAX_SOCKET_PATH {
        socket_dir = PathBuf::from(format!("/tmp/shopstream-{}", short_hash(&dir)));
    }
    for p in [&dir, &log_file] {
        let bytes = p.as_os_str().as_bytes();
        if bytes
            .iter()
            .any(|b| matches!(b, b'"' | b'$' | b'`' | b'\\'))
        {
            return Err(EmbeddedError::UnsafePath { path: p.clone() });
        }
    }
    Ok(Layout {
        dir,
        log_file,
        socket_dir,
    })
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: the descriptor is open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Takes the exclusive lock on `path` (blocking), logging when it waits. The
/// lock goes with the returned file.
fn lock_file(path: &Path, what: &Path) -> Result<File, EmbeddedError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("could not open the lock file", path))?;
    // flock(2), as std's File::lock does; called directly because the crate's
    // MSRV (1.85) predates File::lock (1.89).
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => return Ok(file),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => info!(
            "waiting for another shopstream process to finish starting or stopping the server for {}",
            what.display()
        ),
        Err(e) => return Err(io_err("could not lock", path)(e)),
    }
    flock(&file, libc::LOCK_EX).map_err(io_err("could not lock", path))?;
    Ok(file)
}

impl Cluster {
    /// A command for a server program: run as the service account when
    /// root, from `/`, without the caller's `PG*` variables.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir("/").stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.as_bytes().starts_with(b"PG") {
                cmd.env_remove(key);
            }
        }
        if let Some(a) = &self.run_as {
            cmd.uid(a.uid)
                .gid(a.gid)
                .env("HOME", &a.home)
                .env("USER", &a.name)
                .env("LOGNAME", &a.name);
        }
        cmd
    }

    fn run(&self, program: &Path, args: &[&OsStr]) -> Result<Output, EmbeddedError> {
        debug!("running {} {:?}", program.display(), args);
        self.command(program)
            .args(args)
            .output()
            .map_err(io_err("could not run", program))
    }

    fn is_initialised(&self) -> bool {
        self.dir.join("PG_VERSION").is_file() && self.dir.join("postgresql.conf").is_file()
    }

    /// Runs initdb into a scratch directory and renames it into place, so a
    /// killed initdb never leaves a half-made cluster behind.
    fn initdb(&self) -> Result<(), EmbeddedError> {
        let scratch = self.dir.with_file_name("pg.initdb");
        if scratch.exists() {
            fs::remove_dir_all(&scratch)
                .map_err(io_err("could not remove the leftover", &scratch))?;
        }
        create_dir(&scratch, 0o700)?;
        chown_to(&scratch, self.run_as.as_ref())?;
        info!("creating a PostgreSQL cluster in {}", self.dir.display());
        let out = self.run(
            &self.bins.initdb,
            &[
                OsStr::new("-D"),
                scratch.as_os_str(),
                OsStr::new("-U"),
                OsStr::new(SUPERUSER),
                OsStr::new("--auth=trust"),
                OsStr::new("-E"),
                OsStr::new("UTF8"),
                OsStr::new("--locale=C"),
            ],
        )?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&scratch);
            return Err(EmbeddedError::Command {
                program: self.bins.initdb.display().to_string(),
                status: out.status.to_string(),
                cluster: self.dir.clone(),
                output: output_text(&out),
            });
        }
        let conf = scratch.join("postgresql.conf");
        let settings = format!(
            "\n# Added by shopstream when it created this cluster.\n\
             max_connections = 100\n\
             shared_buffers = 128MB\n\
             # Durability is a product promise: keep these on.\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             # Where the server listens; rewritten by shopstream before every start.\n\
             {INCLUDE_LINE}\n"
        );
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(io_err("could not write", &conf))?;
        fs::rename(&scratch, &self.dir)
            .map_err(io_err("could not move the new cluster to", &self.dir))
    }

    /// Writes `shopstream.conf` (where to listen) and makes sure
    /// `postgresql.conf` includes it.
    fn write_listen_settings(&self) -> Result<(), EmbeddedError> {
        let conf = self.dir.join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(io_err("could not read", &conf))?;
        if !text.lines().any(|l| l.trim() == INCLUDE_LINE) {
            OpenOptions::new()
                .append(true)
                .open(&conf)
                .and_then(|mut f| {
                    f.write_all(
                        format!(
                            "\n# Where the server listens; rewritten by shopstream before every start.\n{INCLUDE_LINE}\n"
                        )
                        .as_bytes(),
                    )
                })
                .map_err(io_err("could not write", &conf))?;
        }
        let socket_list = format!(
            "\"{}\"",
            self.socket_dir.to_string_lossy().replace('"', "\"\"")
        );
        let settings = format!(
            "# Written by shopstream before every start of this server; edits are overwritten.\n\
             # Only a Unix socket in a private directory: no TCP.\n\
             listen_addresses = ''\n\
             unix_socket_directories = {}\n\
             unix_socket_permissions = 0700\n\
             port = {PORT}\n",
            conf_quote(&socket_list)
        );
        let path = self.dir.join("shopstream.conf");
        fs::write(&path, settings).map_err(io_err("could not write", &path))?;
        chown_to(&path, self.run_as.as_ref())
    }

    /// Creates the private socket directory (0700, owned by the server's
    /// account) or checks that an existing one is ours.
    fn prepare_socket_dir(&self) -> Result<(), EmbeddedError> {
        let dir = &self.socket_dir;
        let owner = match &self.run_as {
            Some(a) => a.uid,
            // SAFETY: geteuid cannot fail.
            None => unsafe { libc::geteuid() },
        };
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => chown_to(dir, self.run_as.as_ref())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let md = fs::symlink_metadata(dir).map_err(io_err("could not inspect", dir))?;
                let ours = md.uid() == owner || md.uid() == unsafe { libc::geteuid() };
                if !md.is_dir() || !ours {
                    return Err(EmbeddedError::ForeignSocketDir { path: dir.clone() });
                }
                if md.uid() != owner {
                    chown_to(dir, self.run_as.as_ref())?;
                }
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("could not set permissions on", dir))?;
            }
            Err(e) => return Err(io_err("could not create directory", dir)(e)),
        }
        Ok(())
    }

    /// Starts the server with `pg_ctl start -w`, retrying while the shared
    /// memory of a killed postmaster is still held by its dying children.
    fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        self.prepare_socket_dir()?;
        self.write_listen_settings()?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_file)
            .map_err(io_err("could not create the log file", &self.log_file))?;
        chown_to(&self.log_file, self.run_as.as_ref())?;
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        for attempt in 1.. {
            let log_start = fs::metadata(&self.log_file).map(|m| m.len()).unwrap_or(0);
            info!("starting the PostgreSQL server for {}", self.dir.display());
            let out = self.run(
                &self.bins.pg_ctl,
                &[
                    OsStr::new("start"),
                    OsStr::new("-w"),
                    OsStr::new("-t"),
                    OsStr::new(&timeout),
                    OsStr::new("-D"),
                    self.dir.as_os_str(),
                    OsStr::new("-l"),
                    self.log_file.as_os_str(),
                ],
            )?;
            if out.status.success() {
                return Ok(());
            }
            let tail = log_tail(&self.log_file, log_start);
            let shmem_busy = tail.contains("pre-existing shared memory block");
            if shmem_busy && attempt < 40 {
                debug!("old server processes still hold shared memory; retrying");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            return Err(EmbeddedError::Start {
                cluster: self.dir.clone(),
                detail: format!(
                    "pg_ctl start failed ({}): {}",
                    out.status,
                    output_text(&out).trim()
                ),
                log: self.log_file.clone(),
                tail,
            });
        }
        Ok(())
    }

    fn pg_ctl_stop(&self) -> Result<(), EmbeddedError> {
        let Some(running) = running_server(&self.dir)? else {
            return Ok(());
        };
        info!("stopping the PostgreSQL server for {}", self.dir.display());
        let timeout = PG_CTL_TIMEOUT_SECS.to_string();
        let out = self.run(
            &self.bins.pg_ctl,
            &[
                OsStr::new("stop"),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new(&timeout),
                OsStr::new("-m"),
                OsStr::new("fast"),
                OsStr::new("-D"),
                self.dir.as_os_str(),
            ],
        )?;
        if !out.status.success() && running_server(&self.dir)?.is_some() {
            return Err(EmbeddedError::Command {
                program: self.bins.pg_ctl.display().to_string(),
                status: out.status.to_string(),
                cluster: self.dir.clone(),
                output: output_text(&out),
            });
        }
        // pg_ctl is done once the pid file is gone; the process itself may
        // take a moment longer to exit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_link(format!("/proc/{}/cwd", running.pid)).is_ok_and(|c| c == self.dir)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A fallback socket directory in /tmp only held the socket: tidy it
        // up (remove_dir fails, harmlessly, unless it is empty).
        if running
            .socket_dir
            .to_string_lossy()
            .starts_with("/tmp/shopstream-")
        {
            let _ = fs::remove_dir(&running.socket_dir);
        }
        Ok(())
    }

    /// Takes the exclusive lock on `<data_dir>/pg.lock` (blocking).
    fn lock(&self) -> Result<File, EmbeddedError> {
        lock_file(&self.lock_path, &self.data_dir)
    }
}

/// The result of the blocking part of a start.
struct Started {
    cluster: Cluster,
    port: u16,
    socket_dir: PathBuf,
    started_here: bool,
    lock: File,
}

fn start_blocking(opts: &EmbeddedOptions) -> Result<Started, EmbeddedError> {
    let mut data_dir = opts.data_dir.clone();
    if data_dir.is_relative() {
        let cwd = std::env::current_dir().map_err(io_err(
            "could not find the working directory for",
            &data_dir,
        ))?;
        data_dir = cwd.join(data_dir);
    }
    create_dir(&data_dir, 0o755)?;
    let data_dir = fs::canonicalize(&data_dir).map_err(io_err("could not resolve", &data_dir))?;

    // SAFETY: geteuid cannot fail.
    let run_as = if unsafe { libc::geteuid() } == 0 {
        match lookup_account(SERVICE_ACCOUNT) {
            Ok(Some(a)) if a.uid != 0 => Some(a),
            Ok(_) => return Err(EmbeddedError::NoServiceAccount),
            Err(e) => {
                return Err(EmbeddedError::Io {
                    action: "could not look up the postgres account in",
                    path: PathBuf::from("/etc/passwd"),
                    error: e,
                })
            }
        }
    } else {
        None
    };

    // The lock path only depends on the data dir, so take it first.
    let lock_path = data_dir.join("pg.lock");
    let lock = lock_file(&lock_path, &data_dir)?;

    let layout = locate(&data_dir, run_as.as_ref())?;
    let cluster_version = fs::read_to_string(layout.dir.join("PG_VERSION"))
        .ok()
        .map(|v| v.trim().to_string());
    let bins = find_binaries_for(opts.bin_dir.as_deref(), cluster_version.as_deref())?;
    let mut cluster = Cluster {
        data_dir,
        lock_path,
        dir: layout.dir,
        log_file: layout.log_file,
        socket_dir: layout.socket_dir,
        bins,
        run_as,
    };
    debug!("PostgreSQL binaries in {}", cluster.bins.dir.display());

    if cluster.dir.is_dir() {
        let canonical =
            fs::canonicalize(&cluster.dir).map_err(io_err("could not resolve", &cluster.dir))?;
        cluster.dir = canonical;
        if let Some(running) = running_server(&cluster.dir)? {
            debug!(
                "reusing the PostgreSQL server (pid {}) running on {}",
                running.pid,
                cluster.dir.display()
            );
            return Ok(Started {
                port: running.port,
                socket_dir: running.socket_dir,
                cluster,
                started_here: false,
                lock,
            });
        }
    }
    if !cluster.is_initialised() {
        if cluster.dir.exists() {
            return Err(EmbeddedError::Start {
                cluster: cluster.dir.clone(),
                detail: "the directory exists but holds no PostgreSQL cluster (no PG_VERSION or \
                         postgresql.conf); move it away and run shopstream again to create a new one"
                    .into(),
                log: cluster.log_file.clone(),
                tail: log_tail(&cluster.log_file, 0),
            });
        }
        cluster.initdb()?;
        cluster.dir =
            fs::canonicalize(&cluster.dir).map_err(io_err("could not resolve", &cluster.dir))?;
    }
    cluster.pg_ctl_start()?;
    Ok(Started {
        port: PORT,
        socket_dir: cluster.socket_dir.clone(),
        cluster,
        started_here: true,
        lock,
    })
}

/// Numbers the [`EmbeddedServer`] values of this process.
static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A private PostgreSQL server this process started or reuses.
///
/// Dropping it leaves the server running (the next start reuses it); call
/// [`EmbeddedServer::stop`] to stop it when nothing else uses it. A server
/// this value started and dropped unstopped (an early return, a panic
/// unwinding through its owner) is remembered: [`stop_dropped`] stops it
/// then, as `stop` would; the binary calls it on its way out.
pub struct EmbeddedServer {
    cluster: Cluster,
    port: u16,
    socket_dir: PathBuf,
    started_here: bool,
    /// The `application_name` of every connection made with [`Self::config`]:
    /// tells this value's own connections apart in `pg_stat_activity`.
    app_name: String,
    /// Held for the lifetime of this value, so other processes deciding
    /// whether to stop the server see that this one uses it.
    keepalive: Option<Client>,
    /// Set by `stop`/`stop_now`: nothing is left for [`stop_dropped`].
    stopped: bool,
}

/// A server an [`EmbeddedServer`] of this process started.
struct RunningServer {
    cluster: Cluster,
    port: u16,
    socket_dir: PathBuf,
    app_name: String,
}

/// The servers this process started whose handles were dropped unstopped.
static DROPPED: std::sync::Mutex<Vec<RunningServer>> = std::sync::Mutex::new(Vec::new());

/// The servers this process started and has not stopped (nor dropped).
static RUNNING: std::sync::Mutex<Vec<RunningServer>> = std::sync::Mutex::new(Vec::new());

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    }
}

/// The server of `app_name` is stopped or dropped: no longer running here.
fn forget_running(app_name: &str) {
    locked(&RUNNING).retain(|s| s.app_name != app_name);
}

/// Stops every server this process started and still runs, as
/// [`stop_dropped`] does (a server other clients use keeps running): for a
/// process about to end at once (a second signal). Blocking, and safe to
/// call from inside an async runtime: the work runs on a thread of its own.
pub fn stop_running() {
    let running = std::mem::take(&mut *locked(&RUNNING));
    if running.is_empty() {
        return;
    }
    locked(&DROPPED).extend(running);
    let _ = std::thread::spawn(stop_dropped).join();
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if !self.started_here || self.stopped {
            return;
        }
        forget_running(&self.app_name);
        locked(&DROPPED).push(RunningServer {
            cluster: self.cluster.clone(),
            port: self.port,
            socket_dir: self.socket_dir.clone(),
            app_name: self.app_name.clone(),
        });
    }
}

/// Stops every server this process started whose [`EmbeddedServer`] was
/// dropped without [`EmbeddedServer::stop`] (after a panic, say), with the
/// same care as `stop`: a server other clients use keeps running. Blocking
/// (it runs its own small runtime); call it outside any async runtime, as
/// the process ends. Returns how many servers it looked at.
pub fn stop_dropped() -> usize {
    let list: Vec<RunningServer> = match DROPPED.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    if list.is_empty() {
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!("cannot stop the embedded server: no runtime: {e}");
            return list.len();
        }
    };
    let n = list.len();
    for d in list {
        let dir = d.cluster.dir.clone();
        let server = EmbeddedServer {
            cluster: d.cluster,
            port: d.port,
            socket_dir: d.socket_dir,
            started_here: true,
            app_name: d.app_name,
            keepalive: None,
            stopped: false,
        };
        if let Err(e) = runtime.block_on(server.stop()) {
            warn!(
                "could not stop the embedded server for {}: {e}",
                dir.display()
            );
        }
    }
    n
}

/// Whether `data_dir` (as given to `--data-dir`) holds an embedded cluster
/// (a `PG_VERSION` file), where [`EmbeddedServer::start`] would find it:
/// `<data_dir>/pg`, or its relocated place when running as root. Creates
/// nothing; for commands that only read.
pub fn has_cluster(data_dir: &Path) -> bool {
    let Ok(data_dir) = fs::canonicalize(data_dir) else {
        return false;
    };
    let requested = data_dir.join("pg");
    let relocated = Path::new(RELOCATED_ROOT)
        .join(short_hash(&requested))
        .join("pg");
    requested.join("PG_VERSION").is_file() || relocated.join("PG_VERSION").is_file()
}

impl fmt::Debug for EmbeddedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedServer")
            .field("cluster_dir", &self.cluster.dir)
            .field("socket_dir", &self.socket_dir)
            .field("port", &self.port)
            .field("started_here", &self.started_here)
            .finish()
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EmbeddedError> + Send + 'static,
) -> Result<T, EmbeddedError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmbeddedError::Task(e.to_string()))?
}

impl EmbeddedServer {
    /// Starts the private server for `opts.data_dir`, or reuses the one
    /// already running on it; creates the cluster on first use and the
    /// `shopstream` database if missing. Safe to call from several processes
    /// at once.
    pub async fn start(opts: &EmbeddedOptions) -> Result<EmbeddedServer, EmbeddedError> {
        let opts = opts.clone();
        let started = spawn_blocking(move || start_blocking(&opts)).await?;
        let mut server = EmbeddedServer {
            cluster: started.cluster,
            port: started.port,
            socket_dir: started.socket_dir,
            started_here: started.started_here,
            app_name: format!(
                "shopstream/{}/{}",
                std::process::id(),
                INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            keepalive: None,
            stopped: false,
        };
        // Still under the lock: connect before letting a concurrent stop look.
        let client = server.connect_admin().await?;
        ensure_database(&client, DATABASE).await?;
        server.keepalive = Some(client);
        drop(started.lock);
        if server.started_here {
            locked(&RUNNING).push(RunningServer {
                cluster: server.cluster.clone(),
                port: server.port,
                socket_dir: server.socket_dir.clone(),
                app_name: server.app_name.clone(),
            });
        }
        Ok(server)
    }

    /// Connects to the `postgres` database, waiting out "starting up".
    async fn connect_admin(&self) -> Result<Client, EmbeddedError> {
        let config = self.config("postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            debug!("embedded server connection ended: {}", error_chain(&e));
                        }
                    });
                    return Ok(client);
                }
                Err(e)
                    if e.code() == Some(&SqlState::CANNOT_CONNECT_NOW)
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(EmbeddedError::Connect {
                        cluster: self.cluster.dir.clone(),
                        socket_dir: self.socket_dir.clone(),
                        detail: error_chain(&e),
                        log: self.cluster.log_file.clone(),
                        tail: log_tail(&self.cluster.log_file, 0),
                    })
                }
            }
        }
    }

    /// Connection settings for `dbname` on this server (Unix socket, user
    /// `postgres`, no password).
    pub fn config(&self, dbname: &str) -> Config {
        let mut config = Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname(dbname)
            .application_name(&self.app_name)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A URL for `dbname` that tokio-postgres and psql accept, e.g.
    /// `postgresql://postgres@%2Ftmp%2Fshopstream-0123abcd:5432/shopstream`.
    /// Holds no secret (trust authentication over a private socket).
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://{SUPERUSER}@{}:{}/{}",
            percent_encode(self.socket_dir.as_os_str().as_bytes()),
            self.port,
            percent_encode(dbname.as_bytes())
        )
    }

    /// The cluster directory (PGDATA).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster.dir
    }

    /// The data dir this server was requested for (canonical).
    pub fn data_dir(&self) -> &Path {
        &self.cluster.data_dir
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        &self.cluster.log_file
    }

    /// The binaries used to create/start/stop the server.
    pub fn binaries(&self) -> &PgBinaries {
        &self.cluster.bins
    }

    /// Whether this value started the server (rather than reusing it).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    /// Stops the server if this value started it and no other client is
    /// connected; otherwise leaves it running for the next user. Connections
    /// made with [`Self::config`] (and so through `Database::connect`) are
    /// this value's own: they do not keep the server running, and a fast
    /// shutdown closes any still open. Connections made with [`Self::url`],
    /// by other processes or by other `EmbeddedServer` values do.
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        self.stopped = true;
        forget_running(&self.app_name);
        if !self.started_here {
            debug!(
                "leaving the server for {} running: another process started it",
                self.cluster.dir.display()
            );
            return Ok(());
        }
        let cluster = self.cluster.clone();
        let lock = spawn_blocking(move || cluster.lock()).await?;
        let admin = match self.keepalive.take() {
            Some(c) if !c.is_closed() => Some(c),
            _ => self.connect_admin().await.ok(),
        };
        let verdict = match &admin {
            Some(client) => other_clients(client, &self.app_name).await,
            None => Err("cannot connect".to_string()),
        };
        drop(admin);
        match verdict {
            Ok(0) => {
                let cluster = self.cluster.clone();
                spawn_blocking(move || cluster.pg_ctl_stop()).await?;
            }
            Ok(n) => info!(
                "leaving the server for {} running: {n} other client connection(s)",
                self.cluster.dir.display()
            ),
            Err(e) => debug!(
                "leaving the server for {} as it is: {e}",
                self.cluster.dir.display()
            ),
        }
        drop(lock);
        Ok(())
    }

    /// Stops the server whoever started it and whoever is connected (clients
    /// are disconnected). For tests and explicit shutdowns.
    pub async fn stop_now(mut self) -> Result<(), EmbeddedError> {
        self.stopped = true;
        forget_running(&self.app_name);
        drop(self.keepalive.take());
        let cluster = self.cluster.clone();
        spawn_blocking(move || {
            let lock = cluster.lock()?;
            cluster.pg_ctl_stop()?;
            drop(lock);
            Ok(())
        })
        .await
    }
}

/// How long a stop waits for clients that are disconnecting (a dropped
/// client's backend takes a moment to leave `pg_stat_activity`).
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

/// The number of client connections other than `client` and those named
/// `own_app_name`, after giving disconnecting ones [`DISCONNECT_GRACE`] to go
/// away.
async fn other_clients(client: &Client, own_app_name: &str) -> Result<i64, String> {
    let deadline = Instant::now() + DISCONNECT_GRACE;
    loop {
        let n = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() \
                 AND application_name IS DISTINCT FROM $1",
                &[&own_app_name],
            )
            .await
            .and_then(|row| row.try_get::<_, i64>(0))
            .map_err(|e| error_chain(&e))?;
        if n == 0 || Instant::now() >= deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Quotes an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn ensure_database(client: &Client, name: &str) -> Result<(), EmbeddedError> {
    let fail = |e: tokio_postgres::Error| EmbeddedError::CreateDatabase {
        name: name.to_string(),
        detail: error_chain(&e),
    };
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(fail)?
        .is_some();
    if exists {
        return Ok(());
    }
    match client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
    {
        Ok(()) => {
            info!("created the database {name}");
            Ok(())
        }
        Err(e)
            if e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                || e.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(e) => Err(fail(e)),
    }
}

/// An error's message followed by its whole `source()` chain (tokio-postgres
/// errors alone say little more than "error connecting to server").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions() {
        assert_eq!(major_of("15.14").as_deref(), Some("15"));
        assert_eq!(major_of("9.6.24").as_deref(), Some("9.6"));
        assert_eq!(major_of("16beta1").as_deref(), Some("16"));
        assert_eq!(major_of("x"), None);
    }

    #[test]
    fn percent_encoding_of_socket_paths() {
        assert_eq!(percent_encode(b"/tmp/a b"), "%2Ftmp%2Fa%20b");
        assert_eq!(percent_encode(b"shop_stream-1.x~"), "shop_stream-1.x~");
    }

    #[test]
    fn conf_values_are_quoted() {
        assert_eq!(conf_quote("it's"), "'it''s'");
        assert_eq!(conf_quote("a\\b"), "'a\\\\b'");
    }

    #[test]
    fn pid_file_parsing() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("postmaster.pid"),
            "1234\n/data/pg\n1700000000\n5432\n/tmp/sock\n\n  12345     67890\nready   \n",
        )
        .expect("write");
        let pf = read_pid_file(dir.path()).expect("parsed");
        assert_eq!(pf.pid, 1234);
        assert_eq!(pf.port, Some(5432));
        assert_eq!(pf.socket_dir.as_deref(), Some(Path::new("/tmp/sock")));
        assert_eq!(pf.status, "ready");
    }

    #[test]
    fn empty_bin_dir_is_a_helpful_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = find_binaries(Some(dir.path())).expect_err("no binaries");
        let msg = err.to_string();
        assert!(msg.contains("sudo apt-get install postgresql"), "{msg}");
        assert!(msg.contains("--database-url"), "{msg}");
        assert!(msg.contains("DATABASE_URL"), "{msg}");
    }

    #[test]
    fn tails() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
    }
}
