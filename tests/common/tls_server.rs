//! A PostgreSQL server of one test's own that listens on TCP (127.0.0.1)
//! with TLS and password (SCRAM) authentication, for the TLS and secrets
//! tests: the shared test server only has a trusted Unix socket.
//!
//! The test generates a CA, a second (wrong) CA, a server certificate for
//! `localhost` and a client certificate with the `openssl` command-line
//! tool (scripts/ensure-openssl.sh installs it). `pg_hba.conf` accepts TCP
//! only as `hostssl`, so a plain-text connection is refused. Local (Unix
//! socket) connections are trusted, for the test's own admin work. The
//! server is stopped when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use shopstream::db::connect::error_chain;
use shopstream::db::embedded::find_binaries;
use tokio_postgres::{Client, Config, NoTls};

/// The certificates a test made.
pub struct Certs {
    pub ca: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate for the role `certuser`, signed by `ca`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (install it: scripts/ensure-openssl.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=shopstream test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

fn make_leaf(dir: &Path, name: &str, cn: &str, ext: &str) {
    new_key_and_request(dir, name, cn);
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// Generates the certificates into `dir`.
pub fn make_certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).expect("mkdir certs");
    make_ca(dir, "ca");
    make_ca(dir, "other_ca");
    make_leaf(
        dir,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    make_leaf(
        dir,
        "client",
        "certuser",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    );
    Certs {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other_ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    }
}

/// A self-signed X.509 **version 1** certificate for `localhost` and its key
/// (what `CREATE EXTENSION citus` makes: `openssl x509 -req -signkey` with no
/// extensions), as (certificate, key).
pub fn make_v1_self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    new_key_and_request(dir, "v1", "localhost");
    openssl(
        dir,
        &[
            "x509", "-req", "-in", "v1.csr", "-signkey", "v1.key", "-out", "v1.crt", "-days", "2",
        ],
    );
    (dir.join("v1.crt"), dir.join("v1.key"))
}

/// A version 3 server certificate for `localhost` signed by the CA in
/// `dir`, that expired a day ago, as (certificate, key).
pub fn make_expired_leaf(dir: &Path) -> (PathBuf, PathBuf) {
    new_key_and_request(dir, "expired", "localhost");
    std::fs::write(
        dir.join("expired.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "expired.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "expired.crt",
            "-days",
            "-1",
            "-extfile",
            "expired.ext",
        ],
    );
    (dir.join("expired.crt"), dir.join("expired.key"))
}

fn new_key_and_request(dir: &Path, name: &str, cn: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
}

/// The `postgres` account's uid and gid when the tests run as root (the
/// server refuses to run as root).
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a 'postgres' account (installed with the postgresql package)")
    };
    Some((id("-u"), id("-g")))
}

/// A running TLS server; stopped on drop.
pub struct TlsServer {
    pub port: u16,
    pub socket_dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pg_ctl: PathBuf,
    run_as: Option<(u32, u32)>,
    _tmp: tempfile::TempDir,
}

fn chown(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

fn command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.current_dir("/");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

impl TlsServer {
    /// initdb, TLS with `certs`' server certificate, `hostssl` only on
    /// 127.0.0.1 (SCRAM passwords; client certificates for `certuser`),
    /// `log_connections` on, then start.
    pub fn start(certs: &Certs) -> TlsServer {
        TlsServer::start_with(certs, "")
    }

    /// [`TlsServer::start`] with more `postgresql.conf` lines.
    pub fn start_with(certs: &Certs, extra_conf: &str) -> TlsServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let owner = run_as();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let srv = tmp.path().join("srv");
        std::fs::create_dir(&srv).expect("mkdir");
        chown(&srv, owner);
        let bins = find_binaries(None).expect("PostgreSQL server binaries");
        let data = srv.join("data");
        let socket_dir = srv.join("run");
        std::fs::create_dir(&socket_dir).expect("mkdir run");
        chown(&socket_dir, owner);
        for (from, to) in [
            (&certs.server_cert, "server.crt"),
            (&certs.server_key, "server.key"),
            (&certs.ca, "ca.crt"),
        ] {
            let to = srv.join(to);
            std::fs::copy(from, &to).expect("copy cert");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            chown(&to, owner);
        }
        let out = command(&bins.initdb, owner)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Held until the server listens on it (it binds with SO_REUSEADDR).
        let held = super::HeldPort::new();
        let port = held.port;
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\n\
             ssl_key_file = '{}'\nssl_ca_file = '{}'\npassword_encryption = 'scram-sha-256'\n\
             log_connections = on\nfsync = off\nmax_connections = 40\n",
            socket_dir.display(),
            srv.join("server.crt").display(),
            srv.join("server.key").display(),
            srv.join("ca.crt").display(),
        );
        let mut text = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        text.push_str(&conf);
        text.push_str(extra_conf);
        std::fs::write(data.join("postgresql.conf"), text).expect("write conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certuser 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write hba");
        let log = srv.join("postgres.log");
        let out = command(&bins.pg_ctl, owner)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        drop(held);
        TlsServer {
            port,
            socket_dir,
            data,
            log,
            pg_ctl: bins.pg_ctl,
            run_as: owner,
            _tmp: tmp,
        }
    }

    /// A superuser connection over the trusted Unix socket.
    pub async fn admin(&self, dbname: &str) -> Client {
        let mut config = Config::new();
        config
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname(dbname);
        let (client, connection) = config
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("admin connection: {}", error_chain(&e)));
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// `postgresql://user:password@host:port/db?query` (the password
    /// percent-encoded).
    pub fn url(&self, user: &str, password: &str, host: &str, db: &str, query: &str) -> String {
        let enc: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!("postgresql://{user}:{enc}@{host}:{}/{db}{q}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A libpq-style config for tests that connect themselves.
    pub fn socket_config(&self, dbname: &str) -> Config {
        Config::from_str(&format!(
            "host={} port={} user=postgres dbname={dbname}",
            self.socket_dir.display(),
            self.port
        ))
        .expect("config")
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = command(&self.pg_ctl, self.run_as)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
