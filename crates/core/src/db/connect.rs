//! Where the database is: resolves `--database-url` / `DATABASE_URL`, then the
//! seeds' `POSTGRES_*` variables, and otherwise falls back to the private
//! [`embedded`](super::embedded) server in `--data-dir`.
//!
//! It owns the command-line flags for the database (TLS included: see
//! [`super::tls`]), the connection settings and the redacted description
//! used in logs and errors. It must never print, log or put into an error
//! message a password, never start an embedded server when a database was
//! given, and never connect over TCP with weaker TLS than the `sslmode`
//! asks for.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{AsyncMessage, Client, Config};
use tracing::{debug, warn};

use super::conninfo;
use super::embedded::{self, EmbeddedError, EmbeddedOptions, EmbeddedServer};
// A refused login (SQLSTATE class 28) and an unknown database (3D000) are
// `Class::Fatal`; no SQLSTATE (refused, timed out, TLS) is transient.
use super::retry::{classify, Class};
use super::tls::{
    split_conn_params, written_passwords, MakeRustls, RootCert, SslMode, TlsError, TlsSettings,
};

/// The default `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = ".shopstream";

/// Where the database is. Flattened into every subcommand that needs one.
#[derive(clap::Args, Clone)]
pub struct DbArgs {
    /// PostgreSQL to use, as a URL (postgresql://user:password@host:5432/dbname)
    /// or a key=value string ("host=db.example port=5432 dbname=shop user=app").
    /// Read as libpq (psql) reads it: query parameters such as
    /// ?host=/var/run/postgresql replace the host. When set, shopstream
    /// uses that database and starts no server of its own; takes
    /// precedence over the POSTGRES_* settings.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Host name, IP address or Unix socket directory of an existing
    /// PostgreSQL server (used when --database-url is not given). Without it
    /// and without --database-url, shopstream runs its own private server.
    #[arg(long, env = "POSTGRES_HOST", value_name = "HOST")]
    pub postgres_host: Option<String>,

    /// Port of the server given by --postgres-host [default: 5432].
    #[arg(long, env = "POSTGRES_PORT", value_name = "PORT")]
    pub postgres_port: Option<u16>,

    /// Database on the server given by --postgres-host [default: postgres].
    #[arg(long, env = "POSTGRES_DB", value_name = "NAME")]
    pub postgres_db: Option<String>,

    /// User for the server given by --postgres-host [default: postgres].
    #[arg(long, env = "POSTGRES_USER", value_name = "USER")]
    pub postgres_user: Option<String>,

    /// Password for the server given by --postgres-host. Prefer the
    /// environment variable: command-line arguments are visible to other
    /// users of the machine.
    #[arg(
        long,
        env = "POSTGRES_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub postgres_password: Option<String>,

    /// Directory where shopstream keeps its private PostgreSQL server (the
    /// cluster in <DIR>/pg, its log in <DIR>/postgres.log) when no database
    /// is given. Created if missing, except by `report`, which only reads
    /// an existing one.
    #[arg(
        long,
        env = "SHOPSTREAM_DATA_DIR",
        value_name = "DIR",
        default_value = DEFAULT_DATA_DIR
    )]
    pub data_dir: PathBuf,

    /// Directory holding the PostgreSQL server programs (initdb, pg_ctl,
    /// postgres) for the private server [default: found on PATH, else the
    /// newest /usr/lib/postgresql/<version>/bin].
    #[arg(long, env = "SHOPSTREAM_POSTGRES_BIN_DIR", value_name = "DIR")]
    pub postgres_bin_dir: Option<PathBuf>,

    /// TLS to the server: disable, prefer, require, verify-ca or
    /// verify-full.
    ///
    /// As in libpq: disable; prefer (TLS when the server
    /// offers it, certificate unchecked); require (TLS or fail, certificate
    /// unchecked unless --sslrootcert is given); verify-ca (the chain must
    /// lead to --sslrootcert); verify-full (verify-ca and the certificate
    /// must name the host). sslmode= in --database-url takes precedence.
    /// Unix sockets and the embedded server never use TLS [default: prefer].
    #[arg(
        long,
        env = "PGSSLMODE",
        value_enum,
        value_name = "MODE",
        help_heading = "TLS"
    )]
    pub sslmode: Option<SslMode>,

    /// PEM file with the CA certificate(s) that signed the server's
    /// certificate, for verify-ca and verify-full, or `system` for the
    /// bundled Mozilla roots (public CAs) [default: ~/.postgresql/root.crt].
    /// sslrootcert= in --database-url takes precedence.
    #[arg(
        long,
        env = "PGSSLROOTCERT",
        value_name = "FILE|system",
        help_heading = "TLS"
    )]
    pub sslrootcert: Option<String>,

    /// PEM client certificate, for servers that authenticate clients by
    /// certificate (needs --sslkey).
    #[arg(long, env = "PGSSLCERT", value_name = "FILE", help_heading = "TLS")]
    pub sslcert: Option<PathBuf>,

    /// PEM private key (unencrypted) of --sslcert.
    #[arg(long, env = "PGSSLKEY", value_name = "FILE", help_heading = "TLS")]
    pub sslkey: Option<PathBuf>,
}

impl Default for DbArgs {
    fn default() -> Self {
        DbArgs {
            database_url: None,
            postgres_host: None,
            postgres_port: None,
            postgres_db: None,
            postgres_user: None,
            postgres_password: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            postgres_bin_dir: None,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
        }
    }
}

/// Debug output never shows the URL or the password.
impl fmt::Debug for DbArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |o: &Option<String>| o.as_ref().map(|_| "***");
        f.debug_struct("DbArgs")
            .field("database_url", &secret(&self.database_url))
            .field("postgres_host", &self.postgres_host)
            .field("postgres_port", &self.postgres_port)
            .field("postgres_db", &self.postgres_db)
            .field("postgres_user", &self.postgres_user)
            .field("postgres_password", &secret(&self.postgres_password))
            .field("data_dir", &self.data_dir)
            .field("postgres_bin_dir", &self.postgres_bin_dir)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .finish()
    }
}

/// Why the database could not be opened or reached. Messages name the
/// (redacted) target and say what to do; they never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "--database-url / DATABASE_URL is not a valid PostgreSQL connection string: {reason}. \
         Expected postgresql://user:password@host:5432/dbname or \"host=... port=... dbname=... user=...\""
    )]
    InvalidUrl { reason: String },

    #[error(transparent)]
    Embedded(#[from] EmbeddedError),

    #[error(
        "no database to read: none was given (--database-url / DATABASE_URL, --postgres-host / \
         POSTGRES_HOST), and the data dir {data_dir} holds no embedded cluster (looked for \
         {data_dir}/pg); this command creates none. Point it at the database with \
         --database-url, or at the --data-dir `shopstream run` used"
    )]
    NoCluster { data_dir: String },

    #[error(transparent)]
    Tls(#[from] TlsError),

    #[error("could not connect to {target}: {detail}; hint: {hint}")]
    Connect {
        target: String,
        detail: String,
        hint: String,
        /// What the failure means ([`Class::Fatal`] when the server
        /// refused the login or does not have the database).
        class: Class,
    },
}

impl DbError {
    /// Whether the settings are wrong (a person must change them) rather
    /// than the database being unreachable for now: an invalid connection
    /// string or TLS setup, a login the server refused (SQLSTATE class 28)
    /// or a database it does not have (3D000).
    pub fn is_config(&self) -> bool {
        match self {
            DbError::InvalidUrl { .. } | DbError::Tls(_) | DbError::NoCluster { .. } => true,
            DbError::Connect { class, .. } => *class == Class::Fatal,
            DbError::Embedded(_) => false,
        }
    }
}

impl DbArgs {
    /// Every password these settings hold (from --database-url or
    /// --postgres-password), for the output scrubber
    /// ([`crate::observe::redact`]). Found even in an invalid URL.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = vec![];
        if let Some(url) = non_empty(&self.database_url) {
            out.extend(written_passwords(url));
            if let Ok(kw) = conninfo::keywords(url) {
                out.extend(kw.get("password").filter(|p| !p.is_empty()).cloned());
            }
            if let Ok(c) = Config::from_str(&split_conn_params(url).0) {
                if let Some(p) = c.get_password() {
                    out.push(String::from_utf8_lossy(p).into_owned());
                }
            }
        }
        if let Some(p) = self.postgres_password.as_deref().filter(|p| !p.is_empty()) {
            out.push(p.to_string());
        }
        out
    }
}

/// Which database [`DbArgs`] point at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Url(String),
    Host,
    Embedded(PathBuf),
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn resolve(args: &DbArgs) -> Target {
    if let Some(url) = non_empty(&args.database_url) {
        return Target::Url(url.to_string());
    }
    if non_empty(&args.postgres_host).is_some() {
        return Target::Host;
    }
    let ignored: Vec<&str> = [
        ("POSTGRES_PORT", args.postgres_port.is_some()),
        ("POSTGRES_DB", non_empty(&args.postgres_db).is_some()),
        ("POSTGRES_USER", non_empty(&args.postgres_user).is_some()),
        (
            "POSTGRES_PASSWORD",
            non_empty(&args.postgres_password).is_some(),
        ),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if !ignored.is_empty() {
        warn!(
            "{} set but POSTGRES_HOST (--postgres-host) is not: ignored; using the embedded server",
            ignored.join(", ")
        );
    }
    let dir = if args.data_dir.as_os_str().is_empty() {
        PathBuf::from(DEFAULT_DATA_DIR)
    } else {
        args.data_dir.clone()
    };
    Target::Embedded(dir)
}

/// Fills in what libpq would: the OS user name, and its default socket
/// directory when no host is given.
fn apply_libpq_defaults(config: &mut Config) {
    if config.get_user().is_none() {
        let user = embedded::os_user_name().unwrap_or_else(|| "postgres".to_string());
        config.user(user);
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        config.host_path(default_socket_dir());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(15));
    }
}

/// libpq's default Unix socket directory (Debian's, else the upstream one).
fn default_socket_dir() -> &'static str {
    if std::path::Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql"
    } else {
        "/tmp"
    }
}

fn config_from_host_args(args: &DbArgs) -> Config {
    let mut config = Config::new();
    config
        .host(non_empty(&args.postgres_host).unwrap_or("localhost"))
        .port(args.postgres_port.unwrap_or(5432))
        .dbname(non_empty(&args.postgres_db).unwrap_or("postgres"))
        .user(non_empty(&args.postgres_user).unwrap_or("postgres"))
        .connect_timeout(Duration::from_secs(15));
    if let Some(password) = args.postgres_password.as_deref().filter(|p| !p.is_empty()) {
        config.password(password);
    }
    config
}

fn url_from_config(config: &Config, password: Option<&str>) -> String {
    let mut url = String::from("postgresql://");
    let enc = |s: &str| embedded::percent_encode(s.as_bytes());
    if let Some(user) = config.get_user() {
        url.push_str(&enc(user));
        if let Some(p) = password {
            url.push(':');
            url.push_str(p);
        }
        url.push('@');
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(h) if h.contains(':') => format!("[{h}]"),
                Host::Tcp(h) => enc(h),
                Host::Unix(p) => {
                    use std::os::unix::ffi::OsStrExt;
                    embedded::percent_encode(p.as_os_str().as_bytes())
                }
            };
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    url.push_str(&hosts.join(","));
    url.push('/');
    if let Some(db) = config.get_dbname() {
        url.push_str(&enc(db));
    }
    url
}

/// A URL with every connection setting of `config` that shopstream uses
/// (hosts, ports, user, database) and the password. **Secret** when the
/// config has a password: never log it.
/// A read-only transaction whose queries all see one snapshot (the
/// readers' way in: `report`, `status`).
pub async fn snapshot(
    client: &mut tokio_postgres::Client,
) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .read_only(true)
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
}

pub fn config_to_url(config: &Config) -> String {
    let password = config.get_password().map(embedded::percent_encode);
    url_from_config(config, password.as_deref())
}

/// Like [`config_to_url`] with the password replaced by `***`: safe for logs.
pub fn redacted_url(config: &Config) -> String {
    let password = config.get_password().map(|_| "***");
    url_from_config(config, password)
}

/// An error and its causes on one line (shared with the private server's crate).
pub use shopstream_pgserver::error_chain;

/// The TLS settings from the flags (before a connection string's `ssl*`
/// parameters are laid over them).
fn tls_settings(args: &DbArgs) -> TlsSettings {
    TlsSettings {
        mode: args.sslmode.unwrap_or_default(),
        root_cert: non_empty(&args.sslrootcert).map(RootCert::parse),
        client_cert: args.sslcert.clone().filter(|p| !p.as_os_str().is_empty()),
        client_key: args.sslkey.clone().filter(|p| !p.as_os_str().is_empty()),
    }
}

/// Applies `settings` to `config`: libpq ignores sslmode on Unix sockets,
/// and so does this (PostgreSQL has no TLS there).
/// Returns the connector and how the connection is protected, for logs.
fn apply_tls(config: &mut Config, settings: &TlsSettings) -> Result<(MakeRustls, String), DbError> {
    let tls = MakeRustls::new(settings)?;
    let all_unix = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| matches!(h, Host::Unix(_)))
        && config.get_hostaddrs().is_empty();
    if all_unix {
        config.ssl_mode(SslMode::Disable.postgres_mode());
        return Ok((tls, "Unix socket, no TLS".to_string()));
    }
    config.ssl_mode(tls.mode().postgres_mode());
    Ok((tls, settings.describe()))
}

/// How to open connections to one database: settings, TLS and the redacted
/// description for messages. Cheap to clone (the dashboard keeps one).
#[derive(Clone)]
pub struct Connector {
    config: Config,
    tls: MakeRustls,
    description: String,
    embedded: bool,
    /// The target came from --database-url / DATABASE_URL (hints then do
    /// not suggest giving one).
    from_url: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.description)
            .finish()
    }
}

impl Connector {
    /// Opens a new connection (TLS as the sslmode says); its I/O runs as a
    /// task on the current tokio runtime and ends when the client is
    /// dropped.
    pub async fn connect(&self) -> Result<Client, DbError> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.refused(e))?;
        let target = self.description.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!("connection to {target} ended: {}", error_chain(&e));
            }
        });
        Ok(client)
    }

    /// [`Connector::connect`], with the payloads of the notifications the
    /// connection receives (after a `LISTEN`) sent into the returned
    /// channel as they arrive.
    pub async fn connect_listening(
        &self,
    ) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<String>), DbError> {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| self.refused(e))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let target = self.description.clone();
        tokio::spawn(async move {
            let messages = std::future::poll_fn(|cx| loop {
                match connection.poll_message(cx) {
                    std::task::Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                        let _ = tx.send(n.payload().to_string());
                    }
                    std::task::Poll::Ready(Some(Ok(_))) => {}
                    std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e)),
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            });
            if let Err(e) = messages.await {
                warn!("connection to {target} ended: {}", error_chain(&e));
            }
        });
        Ok((client, rx))
    }

    /// The error of a connection the server (or the way to it) refused.
    fn refused(&self, e: tokio_postgres::Error) -> DbError {
        let detail = error_chain(&e);
        DbError::Connect {
            target: self.description.clone(),
            hint: self.hint(&detail, e.code().map(|c| c.code())),
            detail,
            class: classify(&e),
        }
    }

    fn hint(&self, detail: &str, sqlstate: Option<&str>) -> String {
        if self.embedded {
            return "the private server may have been stopped meanwhile: run the command again to \
                    restart it, or use --database-url / DATABASE_URL to use another PostgreSQL \
                    server"
                .into();
        }
        if detail.contains("pg_hba.conf") && detail.contains("no encryption") {
            "the server only accepts TLS connections from here: use --sslmode require, or \
             verify-ca / verify-full with --sslrootcert (or sslmode= in the URL)"
                .into()
        } else if detail.contains("client certificate") {
            "the server wants a client certificate: pass --sslcert and --sslkey (PGSSLCERT, \
             PGSSLKEY, or sslcert= / sslkey= in the URL)"
                .into()
        } else if detail.contains("server does not support TLS") {
            "the server does not offer TLS: turn on ssl on the server, or use --sslmode prefer \
             or disable if plain text is acceptable on this network"
                .into()
        } else if sqlstate == Some("3D000") {
            "the server has no database of that name: create it (as its owner: createdb NAME) \
             or correct the database name in --database-url / POSTGRES_DB"
                .into()
        } else if sqlstate.is_some_and(|c| c.starts_with("28")) {
            "the server refused this login: check the user name and password, and the \
             server's pg_hba.conf for this client, user and database"
                .into()
        } else if detail.contains("TLS handshake") {
            "check --sslmode, --sslrootcert (PGSSLMODE, PGSSLROOTCERT, or sslmode= / \
             sslrootcert= in the URL) and the host name the server's certificate is for"
                .into()
        } else if self.from_url {
            "check that the server in --database-url / DATABASE_URL is running and reachable \
             from here and the credentials are right"
                .into()
        } else {
            "check that the server is running and reachable and the credentials are right, or \
             use --database-url / DATABASE_URL to point shopstream at another PostgreSQL server"
                .into()
        }
    }

    /// For logs: where the database is, never the password.
    pub fn describe(&self) -> String {
        self.description.clone()
    }
}

/// An opened database: where it is, and the embedded server if shopstream
/// runs its own.
pub struct Database {
    connector: Connector,
    url: String,
    embedded: Option<EmbeddedServer>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.connector.description)
            .finish()
    }
}

impl Database {
    /// Resolves where the database is (`--database-url`, else
    /// `--postgres-host`, else embedded) and, for the embedded server, starts or reuses it. Does not
    /// connect to a given URL yet; [`Database::connect`] does. Certificate
    /// files are read here, so a missing one fails at once.
    pub async fn open(args: &DbArgs) -> Result<Database, DbError> {
        Self::open_with(args, true).await
    }

    /// Like [`Database::open`] for commands that only read: an embedded
    /// cluster that does not exist yet is [`DbError::NoCluster`] (nothing
    /// is created, not even the data dir); an existing one is started or
    /// reused as usual (and [`Database::close`] stops it again).
    pub async fn open_existing(args: &DbArgs) -> Result<Database, DbError> {
        Self::open_with(args, false).await
    }

    async fn open_with(args: &DbArgs, create: bool) -> Result<Database, DbError> {
        let db = match resolve(args) {
            Target::Url(url) => {
                let (rest, params) = split_conn_params(&url);
                let mut config = conninfo::parse(&rest, default_socket_dir()).map_err(|e| {
                    DbError::InvalidUrl {
                        reason: e.to_string(),
                    }
                })?;
                apply_libpq_defaults(&mut config);
                let settings = tls_settings(args).overridden_by(&params)?;
                if let (Some(flag), Some(_)) = (args.sslmode, &params.sslmode) {
                    if flag != settings.mode {
                        warn!(
                            "sslmode={} in the database URL overrides --sslmode / PGSSLMODE {flag}",
                            settings.mode
                        );
                    }
                }
                let (tls, protection) = apply_tls(&mut config, &settings)?;
                Database {
                    connector: Connector {
                        description: format!("{} ({protection})", redacted_url(&config)),
                        config,
                        tls,
                        embedded: false,
                        from_url: true,
                    },
                    url,
                    embedded: None,
                }
            }
            Target::Host => {
                let mut config = config_from_host_args(args);
                let settings = tls_settings(args);
                let (tls, protection) = apply_tls(&mut config, &settings)?;
                let mut url = config_to_url(&config);
                if settings != TlsSettings::default() {
                    url.push_str(&tls_query(&settings));
                }
                Database {
                    connector: Connector {
                        description: format!("{} ({protection})", redacted_url(&config)),
                        config,
                        tls,
                        embedded: false,
                        from_url: false,
                    },
                    url,
                    embedded: None,
                }
            }
            Target::Embedded(data_dir) => {
                if !create && !embedded::has_cluster(&data_dir) {
                    return Err(DbError::NoCluster {
                        data_dir: data_dir.display().to_string(),
                    });
                }
                let opts = EmbeddedOptions {
                    data_dir,
                    bin_dir: args.postgres_bin_dir.clone(),
                };
                let server = EmbeddedServer::start(&opts).await?;
                let settings = TlsSettings {
                    mode: SslMode::Disable,
                    ..TlsSettings::default()
                };
                let mut config = server.config(embedded::DATABASE);
                let (tls, _) = apply_tls(&mut config, &settings)?;
                Database {
                    connector: Connector {
                        config,
                        tls,
                        description: format!(
                            "embedded server in {} (socket {}, database {})",
                            server.cluster_dir().display(),
                            server.socket_dir().display(),
                            embedded::DATABASE
                        ),
                        embedded: true,
                        from_url: false,
                    },
                    url: server.url(embedded::DATABASE),
                    embedded: Some(server),
                }
            }
        };
        debug!("database: {}", db.connector.description);
        Ok(db)
    }

    /// Another database on the same server, with the same credentials and
    /// TLS settings (the benchmark loads each measurement into a fresh
    /// one). The handle does not own the embedded server: closing it stops
    /// nothing.
    pub fn sibling(&self, dbname: &str) -> Database {
        let mut connector = self.connector.clone();
        connector.config.dbname(dbname);
        connector.description = redacted_url(&connector.config);
        Database {
            connector,
            // A later dbname replaces an earlier one (libpq, conninfo), so
            // everything else the string says (hosts, TLS) stays as it was.
            url: conninfo::with_keyword(&self.url, "dbname", dbname),
            embedded: None,
        }
    }

    /// The connection settings (may hold the password: do not log them).
    pub fn config(&self) -> &Config {
        &self.connector.config
    }

    /// How to open more connections (for the dashboard's own).
    pub fn connector(&self) -> Connector {
        self.connector.clone()
    }

    /// Whether this is shopstream's own private server.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The embedded server, when shopstream runs its own.
    pub fn embedded(&self) -> Option<&EmbeddedServer> {
        self.embedded.as_ref()
    }

    /// Opens a new connection (TLS as the sslmode says); its I/O runs as a
    /// task on the current tokio runtime and ends when the client is
    /// dropped.
    pub async fn connect(&self) -> Result<Client, DbError> {
        self.connector.connect().await
    }

    /// For logs: where the database is, never the password.
    pub fn describe(&self) -> String {
        self.connector.describe()
    }

    /// A connection string another process (psql, a child shopstream) can
    /// use. **Secret**: it contains the password when there is one; pass it
    /// through the environment, never log it.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Whether [`Self::url`] holds a password (and so must not be shown).
    pub fn url_has_password(&self) -> bool {
        self.connector.config.get_password().is_some()
    }

    /// Stops the embedded server if this process started it and nothing
    /// else uses it; otherwise a no-op.
    pub async fn close(self) -> Result<(), DbError> {
        if let Some(server) = self.embedded {
            server.stop().await?;
        }
        Ok(())
    }
}

/// The TLS settings as URL query parameters libpq and shopstream read.
fn tls_query(settings: &TlsSettings) -> String {
    let enc = |s: &str| embedded::percent_encode(s.as_bytes());
    let mut q = vec![format!("sslmode={}", settings.mode)];
    if let Some(root) = &settings.root_cert {
        let root = match root {
            RootCert::System => "system".to_string(),
            RootCert::File(p) => p.display().to_string(),
        };
        q.push(format!("sslrootcert={}", enc(&root)));
    }
    if let Some(c) = &settings.client_cert {
        q.push(format!("sslcert={}", enc(&c.display().to_string())));
    }
    if let Some(k) = &settings.client_key {
        q.push(format!("sslkey={}", enc(&k.display().to_string())));
    }
    format!("?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        db: DbArgs,
    }

    fn args_for(url: &str) -> DbArgs {
        DbArgs {
            database_url: Some(url.into()),
            ..DbArgs::default()
        }
    }

    #[test]
    fn precedence() {
        let mut a = DbArgs {
            postgres_host: Some("db".into()),
            ..DbArgs::default()
        };
        assert_eq!(resolve(&a), Target::Host);
        a.database_url = Some("postgresql://x@h/d".into());
        assert_eq!(resolve(&a), Target::Url("postgresql://x@h/d".into()));
        a.database_url = Some("  ".into());
        a.postgres_host = Some(String::new());
        assert_eq!(resolve(&a), Target::Embedded(PathBuf::from(".shopstream")));
    }

    #[test]
    fn host_args_defaults() {
        let a = DbArgs {
            postgres_host: Some("db.local".into()),
            postgres_password: Some("pa:ss".into()),
            ..DbArgs::default()
        };
        let c = config_from_host_args(&a);
        assert_eq!(c.get_ports(), &[5432]);
        assert_eq!(c.get_dbname(), Some("postgres"));
        assert_eq!(c.get_user(), Some("postgres"));
        assert_eq!(
            redacted_url(&c),
            "postgresql://postgres:***@db.local:5432/postgres"
        );
        let url = config_to_url(&c);
        assert_eq!(url, "postgresql://postgres:pa%3Ass@db.local:5432/postgres");
        let back = Config::from_str(&url).expect("round trip");
        assert_eq!(back.get_password(), Some(&b"pa:ss"[..]));
    }

    #[test]
    fn urls_round_trip_with_socket_paths() {
        let mut c = Config::new();
        c.host_path("/tmp/a b")
            .port(5433)
            .user("postgres")
            .dbname("shop");
        let url = config_to_url(&c);
        assert_eq!(url, "postgresql://postgres@%2Ftmp%2Fa%20b:5433/shop");
        let back = Config::from_str(&url).expect("parses");
        assert_eq!(back.get_hosts(), c.get_hosts());
        assert_eq!(back.get_ports(), &[5433]);
        // Several hosts, a socket among them, IPv6, a password with URL
        // syntax in it: read back as libpq reads it, nothing more.
        let mut c = Config::new();
        c.host_path("/var/run/postgresql")
            .host("db.example")
            .host("::1")
            .port(5433)
            .port(5434)
            .port(5435)
            .user("a@b")
            .password("p:w/?@&")
            .dbname("d b");
        let back = conninfo::parse(&config_to_url(&c), "/DEFAULT").expect("parses");
        assert_eq!(back.get_hosts(), c.get_hosts());
        assert_eq!(back.get_ports(), c.get_ports());
        assert_eq!(back.get_user(), c.get_user());
        assert_eq!(back.get_password(), c.get_password());
        assert_eq!(back.get_dbname(), c.get_dbname());
    }

    #[tokio::test]
    async fn siblings_keep_everything_but_the_database() {
        for conn in [
            "postgresql://root@localhost/db?host=/var/run/postgresql&sslmode=disable",
            "host=/var/run/postgresql user=root dbname=db sslmode=disable",
        ] {
            let db = Database::open(&args_for(conn)).await.expect("opens");
            let sib = db.sibling("bench_1");
            let (rest, params) = split_conn_params(&sib.url());
            assert_eq!(params.sslmode.as_deref(), Some("disable"), "{conn}");
            for config in [
                &conninfo::parse(&rest, "/DEFAULT").expect("parses"),
                sib.config(),
            ] {
                assert_eq!(
                    config.get_hosts(),
                    &[Host::Unix("/var/run/postgresql".into())],
                    "{conn}"
                );
                assert_eq!(config.get_user(), Some("root"), "{conn}");
                assert_eq!(config.get_dbname(), Some("bench_1"), "{conn}");
            }
        }
    }

    #[tokio::test]
    async fn redaction_of_given_urls() {
        for url in [
            "postgresql://alice:s3cr3t@127.0.0.1:1/db",
            "host=127.0.0.1 port=1 user=alice password=s3cr3t dbname=db",
        ] {
            let db = Database::open(&args_for(url)).await.expect("opens");
            let d = db.describe();
            assert!(!d.contains("s3cr3t"), "{d}");
            assert!(d.contains("alice") && d.contains("127.0.0.1:1"), "{d}");
            assert!(!format!("{db:?}").contains("s3cr3t"));
            assert_eq!(db.url(), url);
        }
        let dbg = format!("{:?}", args_for("postgresql://a:s3cr3t@h/d"));
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }

    #[tokio::test]
    async fn invalid_url_is_reported_without_echoing_it() {
        let err = Database::open(&args_for("postgresql://u:s3cr3t@h:notaport/d"))
            .await
            .expect_err("invalid");
        let msg = err.to_string();
        assert!(
            msg.contains("DATABASE_URL") && !msg.contains("s3cr3t"),
            "{msg}"
        );
    }

    #[test]
    fn secrets_are_hidden_in_help() {
        let cmd = Cli::command();
        for id in ["database_url", "postgres_password"] {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .expect("argument exists");
            assert!(arg.is_hide_env_values_set(), "{id}");
        }
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--database-url",
            "--postgres-host",
            "--postgres-port",
            "--postgres-db",
            "--postgres-user",
            "--postgres-password",
            "--data-dir",
            "DATABASE_URL",
            "SHOPSTREAM_DATA_DIR",
        ] {
            assert!(help.contains(flag), "{flag} in {help}");
        }
    }
}
