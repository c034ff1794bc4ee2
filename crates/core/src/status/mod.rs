//! `shopstream status`: what a person on call asks first, in a few lines,
//! and an exit code for scripts and cron: 0 healthy, 1 degraded, 2 down.
//!
//! It gathers, each part on its own so that one failing never hides the
//! others: from the database (one read-only transaction, rolled back) the
//! last commit, the events loaded in the last minute, hour and day, the
//! validity rate and the dead letters by rule code since 00:00 UTC; from the
//! input folder (`--input`) the files the ledger does not have yet and the
//! age of the oldest; from each loader's HTTP endpoint (`--endpoint`) its
//! readiness, breaker state, last error and its own count of waiting files.
//! [`assess`] turns that into the verdict, with one line per problem.
//!
//! It must never write: not to the database (no migration, no ledger row,
//! every query is fixed text on the tables of schema v1), not to the input
//! folder (it only lists it, never opens a file) and not to a loader (GET
//! only). It never waits longer than `--timeout-secs` for any part.

mod probe;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Client;

use crate::db::connect::{Database, DbArgs};
use crate::observe::http::{HttpArgs, DEFAULT_MAX_CONNECTIONS};
use crate::source::scope::{parse_include, DEFAULT_INCLUDE};

pub use probe::{probe_endpoint, LoaderStatus};
pub use render::render;

/// The default `--max-wait-secs`.
pub const DEFAULT_MAX_WAIT_SECS: u64 = 300;

/// Output format of `shopstream status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A few lines for people: the verdict and its problems first.
    #[default]
    Text,
    /// One JSON object (see docs/operations.md), for scripts.
    Json,
}

/// The options of `shopstream status`.
#[derive(clap::Args, Debug, Clone)]
pub struct StatusArgs {
    /// The loader's input folder, to count the files waiting in it: those
    /// the ledger (ingested_files) does not have yet. Give it as the loader
    /// was given it (the ledger holds paths as the loader listed them; the
    /// same SHOPSTREAM_INPUT does). Without it (or for an s3:// input)
    /// only the loaders' endpoints tell the waiting files.
    #[arg(long, short, env = "SHOPSTREAM_INPUT", value_name = "DIR")]
    pub input: Option<PathBuf>,

    /// Which files of --input count, as for `run` (repeatable, or
    /// comma-separated).
    #[arg(long, env = "SHOPSTREAM_INCLUDE", default_value = DEFAULT_INCLUDE, value_delimiter = ',', value_name = "GLOB", value_parser = parse_include)]
    pub include: Vec<String>,

    /// A running loader's HTTP endpoint (its --http-addr), e.g.
    /// http://127.0.0.1:9898; repeatable, one per worker. Its breaker
    /// state, last error and waiting files are shown; one that does not
    /// answer /healthz makes the status down.
    #[arg(
        long = "endpoint",
        env = "SHOPSTREAM_STATUS_ENDPOINT",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,

    /// The backlog threshold: a file waiting longer than this many seconds
    /// (by its modification time, as the loader's lag is measured) makes
    /// the status degraded. A running loader lists its input every
    /// --relist-secs (2) and loads at once, so minutes of waiting mean it
    /// is stopped, stuck or behind.
    #[arg(long, env = "SHOPSTREAM_STATUS_MAX_WAIT_SECS", default_value_t = DEFAULT_MAX_WAIT_SECS, value_name = "S")]
    pub max_wait_secs: u64,

    /// Longest wait, in seconds, for the database and for each endpoint;
    /// one that takes longer counts as down.
    #[arg(
        long,
        env = "SHOPSTREAM_STATUS_TIMEOUT_SECS",
        default_value_t = 10.0,
        value_name = "S"
    )]
    pub timeout_secs: f64,

    /// File holding the endpoints' bearer token, or set
    /// SHOPSTREAM_HTTP_TOKEN (as for `run`).
    #[arg(long, env = "SHOPSTREAM_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_STATUS_FORMAT", default_value_t = Format::Text)]
    pub format: Format,
}

impl StatusArgs {
    /// `--timeout-secs` as a duration (at least 1 ms, at most a day).
    pub fn timeout(&self) -> Duration {
        let s = if self.timeout_secs.is_finite() {
            self.timeout_secs.clamp(0.001, 86_400.0)
        } else {
            10.0
        };
        Duration::from_secs_f64(s)
    }
}

/// The verdict, and the exit code that says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    Degraded,
    Down,
}

impl State {
    pub fn exit_code(self) -> u8 {
        match self {
            State::Healthy => 0,
            State::Degraded => 1,
            State::Down => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Down => "down",
        }
    }
}

/// What the database says.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DbStatus {
    /// Where it is (redacted: never a password).
    pub target: String,
    pub reachable: bool,
    /// Why it could not be read, when it could not.
    pub error: Option<String>,
    pub schema_version: Option<i32>,
    /// The last committed batch, UTC (`2026-01-10T11:00:00Z`).
    pub last_commit: Option<String>,
    pub last_commit_age_secs: Option<f64>,
    /// Events loaded (committed) in the last minute, hour and day.
    pub events_last_minute: i64,
    pub events_last_hour: i64,
    pub events_last_day: i64,
    /// Valid rows / rows read of the batches committed in the last hour
    /// and day (None without rows).
    pub validity_last_hour: Option<f64>,
    pub validity_last_day: Option<f64>,
    /// Dead letters by rule code since 00:00 UTC (a row failing several
    /// rules counts under each), most first.
    #[serde(serialize_with = "render::codes_as_map")]
    pub dead_letters_today: Vec<(String, i64)>,
}

/// What the input folder says.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InputStatus {
    pub folder: String,
    /// Why it could not be listed or compared with the ledger.
    pub error: Option<String>,
    pub waiting_files: u64,
    /// Age in seconds of the oldest waiting file (0 when none waits).
    pub oldest_waiting_secs: f64,
}

/// Everything `status` found, and the verdict.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    pub state: State,
    pub exit_code: u8,
    /// Why the state is not healthy, one sentence each.
    pub problems: Vec<String>,
    pub max_wait_secs: u64,
    pub database: DbStatus,
    pub input: Option<InputStatus>,
    pub loaders: Vec<LoaderStatus>,
}

/// The verdict over what was found: down when the database or a loader's
/// endpoint cannot be reached; degraded when a file waits longer than
/// `max_wait_secs` (in the folder or by a loader's count) or a loader is
/// up but not ready; healthy otherwise.
pub fn assess(
    database: DbStatus,
    input: Option<InputStatus>,
    loaders: Vec<LoaderStatus>,
    max_wait_secs: u64,
) -> Status {
    let mut problems: Vec<(State, String)> = vec![];
    if let Some(e) = &database.error {
        problems.push((State::Down, format!("database: {e}")));
    }
    let wait = max_wait_secs as f64;
    if let Some(i) = input.as_ref().filter(|_| database.error.is_none()) {
        if let Some(e) = &i.error {
            problems.push((State::Degraded, format!("input {}: {e}", i.folder)));
        } else if i.waiting_files > 0 && i.oldest_waiting_secs > wait {
            problems.push((
                State::Degraded,
                format!(
                    "backlog: {} waiting in {}, the oldest for {} (more than \
                     --max-wait-secs {max_wait_secs})",
                    render::files(i.waiting_files),
                    i.folder,
                    render::age(i.oldest_waiting_secs)
                ),
            ));
        }
    }
    for l in &loaders {
        problems.extend(l.problems(wait, max_wait_secs));
    }
    let state = problems
        .iter()
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(State::Healthy);
    Status {
        state,
        exit_code: state.exit_code(),
        problems: problems.into_iter().map(|(_, p)| p).collect(),
        max_wait_secs,
        database,
        input,
        loaders,
    }
}

/// Why the database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "no shopstream schema (schema version {0}): no loader has run on it; is it the \
         right database?"
    )]
    NoSchema(i32),
    #[error("could not read the schema version: {0}")]
    Version(#[source] crate::db::migrate::MigrateError),
    #[error("could not read it: {}", crate::db::connect::error_chain(.0))]
    Query(#[source] tokio_postgres::Error),
}

/// Reads the database's part of the status in one read-only, repeatable-read
/// transaction that is rolled back. Fills `into` as far as it gets.
pub async fn read_database(client: &mut Client, into: &mut DbStatus) -> Result<(), StatusError> {
    let version = crate::db::migrate::current_version(client)
        .await
        .map_err(StatusError::Version)?;
    into.schema_version = Some(version);
    if version < 1 {
        return Err(StatusError::NoSchema(version));
    }
    let tx = crate::db::connect::snapshot(client)
        .await
        .map_err(StatusError::Query)?;
    let r = tx
        .query_one(LOAD_SQL, &[])
        .await
        .map_err(StatusError::Query)?;
    into.last_commit = r.get(0);
    into.last_commit_age_secs = r.get(1);
    into.events_last_minute = r.get(2);
    into.events_last_hour = r.get(3);
    into.events_last_day = r.get(4);
    into.validity_last_hour = r.get(5);
    into.validity_last_day = r.get(6);
    let rows = tx
        .query(DEAD_LETTERS_SQL, &[])
        .await
        .map_err(StatusError::Query)?;
    into.dead_letters_today = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    tx.rollback().await.map_err(StatusError::Query)?;
    Ok(())
}

/// The last commit, events loaded and validity, from the per-batch
/// metrics (indexed by committed_at; never a scan of the events).
const LOAD_SQL: &str = "
WITH last AS (SELECT max(committed_at) AS at FROM data_quality_metrics),
day AS (SELECT * FROM data_quality_metrics WHERE committed_at >= now() - interval '1 day')
SELECT to_char((SELECT at FROM last) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
       extract(epoch FROM now() - (SELECT at FROM last))::float8,
       coalesce(sum(rows_loaded) FILTER (WHERE committed_at >= now() - interval '1 minute'), 0)::int8,
       coalesce(sum(rows_loaded) FILTER (WHERE committed_at >= now() - interval '1 hour'), 0)::int8,
       coalesce(sum(rows_loaded), 0)::int8,
       (sum(rows_valid) FILTER (WHERE committed_at >= now() - interval '1 hour'))::float8
         / nullif(sum(rows_read) FILTER (WHERE committed_at >= now() - interval '1 hour'), 0),
       sum(rows_valid)::float8 / nullif(sum(rows_read), 0)
  FROM day";

/// Dead letters by rule code of the batches committed since 00:00 UTC.
const DEAD_LETTERS_SQL: &str = "
SELECT c.key, sum(c.value::int8)::int8
  FROM data_quality_metrics d CROSS JOIN LATERAL jsonb_each_text(d.rejects_by_code) AS c
 WHERE d.committed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
 GROUP BY c.key
 ORDER BY 2 DESC, 1";

/// `shopstream status`: gathers every part (the endpoints on blocking
/// threads while the database is read) and assesses them. Never fails: what
/// could not be read is part of the status.
pub async fn status(args: &StatusArgs, db_args: &DbArgs) -> Status {
    let timeout = args.timeout();
    let token = HttpArgs {
        http_addr: None,
        http_allow_remote: false,
        http_token_file: args.http_token_file.clone(),
        http_max_connections: DEFAULT_MAX_CONNECTIONS,
        http_timeout_secs: timeout.as_secs_f64(),
    }
    .token()
    .map(|t| t.map(|t| t.secret().to_string()))
    .map_err(|e| format!("cannot read the bearer token: {e}"));
    let probes: Vec<_> = args
        .endpoints
        .iter()
        .map(|e| {
            let (e, token) = (e.clone(), token.clone());
            tokio::task::spawn_blocking(move || match token {
                Ok(t) => probe_endpoint(&e, t.as_deref(), timeout),
                Err(why) => LoaderStatus {
                    endpoint: e,
                    error: Some(why),
                    ..LoaderStatus::default()
                },
            })
        })
        .collect();
    let folder = args
        .input
        .as_ref()
        .filter(|f| !f.to_string_lossy().starts_with("s3://"));
    let mut input = folder.map(|f| InputStatus {
        folder: f.display().to_string(),
        ..InputStatus::default()
    });
    let database = read_all(args, db_args, input.as_mut()).await;
    if let Some(i) = input.as_mut().filter(|_| database.error.is_some()) {
        i.error = Some("not compared with the ledger: the database cannot be read".into());
    }
    let mut loaders = Vec::with_capacity(probes.len());
    for (p, e) in probes.into_iter().zip(&args.endpoints) {
        loaders.push(p.await.unwrap_or_else(|j| LoaderStatus {
            endpoint: e.clone(),
            error: Some(format!("the probe failed: {j}")),
            ..LoaderStatus::default()
        }));
    }
    assess(database, input, loaders, args.max_wait_secs)
}

/// The database's part, and the input's (which needs the ledger), each
/// within the timeout. The embedded server, if this opened one, is closed.
async fn read_all(
    args: &StatusArgs,
    db_args: &DbArgs,
    input: Option<&mut InputStatus>,
) -> DbStatus {
    let timeout = args.timeout();
    let late = || {
        format!(
            "no answer within --timeout-secs ({}s)",
            timeout.as_secs_f64()
        )
    };
    let mut d = DbStatus::default();
    // Not under the timeout: opening a URL sends nothing, and an embedded
    // server's start must not be cut off half-way (it would be left running).
    let db = match Database::open_existing(db_args).await {
        Ok(db) => db,
        Err(e) => {
            d.error = Some(crate::db::connect::error_chain(&e));
            return d;
        }
    };
    d.target = db.describe();
    let read = tokio::time::timeout(timeout, async {
        let mut client = db
            .connect()
            .await
            .map_err(|e| crate::db::connect::error_chain(&e))?;
        d.reachable = true;
        read_database(&mut client, &mut d)
            .await
            .map_err(|e| e.to_string())?;
        if let (Some(i), Some(folder)) = (input, args.input.as_deref()) {
            match read_input(&client, folder, &args.include).await {
                Ok((n, oldest)) => (i.waiting_files, i.oldest_waiting_secs) = (n, oldest),
                Err(e) => i.error = Some(e),
            }
        }
        Ok::<(), String>(())
    })
    .await;
    match read {
        Ok(Ok(())) => {}
        Ok(Err(e)) => d.error = Some(e),
        Err(_) => d.error = Some(late()),
    }
    if let Err(e) = db.close().await {
        tracing::warn!("{e}");
    }
    d
}

/// The files of `folder` (as `include` selects them, listed as the loader
/// lists them) that the ledger does not have, and the age of the oldest.
pub async fn read_input(
    client: &Client,
    folder: &std::path::Path,
    include: &[String],
) -> Result<(u64, f64), String> {
    use crate::source::discover::list_included;
    let include = crate::source::scope::Include::new(include).map_err(|e| e.to_string())?;
    let dir = folder.to_path_buf();
    // A thread of its own, not the runtime's blocking pool: a listing that
    // hangs (a dead network mount) is given up by the caller's timeout and
    // must not keep the process from exiting.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(list_included(
            &dir,
            &[],
            &include,
            &std::sync::atomic::AtomicU64::new(0),
        ));
    });
    let listed = rx
        .await
        .map_err(|_| "the listing thread failed".to_string())?
        .map_err(|e| format!("cannot list it: {e}"))?;
    let known = crate::sink::ledger::known(client, &listed)
        .await
        .map_err(|e| {
            format!(
                "cannot read the ledger: {}",
                crate::db::connect::error_chain(&e)
            )
        })?;
    let now = chrono::Utc::now().timestamp_micros();
    let waiting: Vec<i64> = listed
        .iter()
        .zip(&known)
        .filter(|(_, k)| k.is_none())
        .map(|(c, _)| (now - c.mtime_micros).max(0))
        .collect();
    let oldest = waiting.iter().copied().max().unwrap_or(0) as f64 / 1e6;
    Ok((waiting.len() as u64, oldest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_ok() -> DbStatus {
        DbStatus {
            target: "db".into(),
            reachable: true,
            ..DbStatus::default()
        }
    }

    fn input(waiting: u64, oldest: f64) -> Option<InputStatus> {
        Some(InputStatus {
            folder: "in".into(),
            error: None,
            waiting_files: waiting,
            oldest_waiting_secs: oldest,
        })
    }

    #[test]
    fn the_worst_finding_decides() {
        let s = assess(db_ok(), input(0, 0.0), vec![], 300);
        assert_eq!(
            (s.state, s.exit_code, s.problems.len()),
            (State::Healthy, 0, 0)
        );
        // Files waiting, but not for long: still healthy.
        let s = assess(db_ok(), input(4, 299.0), vec![], 300);
        assert_eq!(s.state, State::Healthy);
        let s = assess(db_ok(), input(4, 301.0), vec![], 300);
        assert_eq!((s.state, s.exit_code), (State::Degraded, 1));
        assert!(
            s.problems[0].contains("4 files waiting"),
            "{:?}",
            s.problems
        );
        assert!(s.problems[0].contains("5m 1s"), "{:?}", s.problems);
        let down = DbStatus {
            reachable: false,
            error: Some("refused".into()),
            ..db_ok()
        };
        // Without the ledger the folder's files cannot be told apart: only
        // the database is a problem.
        let s = assess(down, input(4, 301.0), vec![], 300);
        assert_eq!(
            (s.state, s.exit_code, s.problems.len()),
            (State::Down, 2, 1)
        );
        assert_eq!(s.problems[0], "database: refused");
    }
}
