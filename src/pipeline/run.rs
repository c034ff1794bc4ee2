//! The loader loop behind `shopstream run`.
//!
//! Connects (waiting for the database with backoff, migrating the schema
//! once), lists the input through [`crate::source::input`] (a folder, woken
//! early by OS file events, or an object store prefix, polled), drops
//! files the ledger already has (the same version of the file: path, size,
//! mtime and, for local files, device, inode and ctime),
//! groups the rest into batches of whole files and loads them one after the
//! other through [`super::batch`], on one connection. Only after a commit
//! does it carry out each
//! file's fate through the input (keep, archive or
//! delete; quarantine for rejected files); a crash in between is finished
//! at the next start. Files another worker holds are looked at again soon,
//! so a dead worker's files are taken over. On SIGINT/SIGTERM it stops
//! taking files, lets the batches in flight commit, and returns.
//!
//! Failures roll the batch back and are retried with backoff; after
//! `--breaker-failures` in a row the [`super::breaker`] opens and intake
//! pauses until probes find the database again, so nothing is lost or
//! doubled and nothing spins.
//!
//! What happens (listings, lag, batches, breaker states, dispositions) is
//! emitted as [`LoaderEvent`]s to one fan-out of observers: health,
//! metrics, alerts and the `--once` progress bar.
//!
//! It never edits input files and never moves one before its fate is
//! committed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::batch::{self as batch_load, Reading};
use super::breaker::{Breaker, BreakerConfig, BreakerState, Step};
use super::events::batch_done;
use super::read::{ParseConfig, DEFAULT_MAX_FIELDS};
use super::resume;
use crate::batch::{BatchReport, FileStatus};
use crate::db::connect::{Database, DbError};
use crate::db::migrate::{self, MigrateError};
use crate::db::retry::{classify, Backoff, Class};
use crate::loader_event::{Failure, LoaderEvent, Observers};
use crate::observe::alerts::{AlertArgs, AlertError, Alerter, Delivery};
use crate::observe::health::Health;
use crate::observe::metrics::MetricsObserver;
use crate::observe::progress::LoadProgress;
use crate::shutdown::Shutdown;
use crate::sink::dedup::TableIds;
use crate::sink::ledger;
use crate::sink::transaction as batch;
use crate::source::bounded::DEFAULT_READ_TIMEOUT;
use crate::source::discover::{Candidate, FileId};
use crate::source::dispose::{AfterLoad, Disposition, Fate};
use crate::source::input::{Input, InputConfig, InputError};
use crate::source::layout::UnknownColumns;
use crate::source::scope::{
    parse_include, parse_work_folder, Include, ScopeError, DEFAULT_INCLUDE,
};
use crate::source::size::parse_size;
use crate::validate::parse::{parse_decimal, Decimal};
use crate::validate::Rules;

/// `shopstream run` options.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Folder (watched) or `s3://BUCKET/PREFIX` (polled) to load CSV files
    /// from.
    ///
    /// A folder is watched recursively. An object store prefix takes its
    /// credentials, region and endpoint from AWS_* variables and is polled
    /// every --relist-secs. Hidden files,
    /// `_`-prefixed files and temporary suffixes (.tmp, .part, .crdownload,
    /// _COPYING_) are ignored until renamed.
    /// `/` and the system folders (/etc, /usr, …, however spelled) are
    /// refused.
    #[arg(help_heading = "Input", long, short, env = "SHOPSTREAM_INPUT", default_value = "./incoming", value_parser = parse_work_folder)]
    pub input: PathBuf,

    /// Which files are input: a glob pattern (repeatable, or
    /// comma-separated). A pattern without `/` matches the file name at any
    /// depth (`*.csv`), one with `/` the path below the input
    /// (`2026/**/*.csv`); case is ignored. Other files are never read,
    /// moved or quarantined.
    #[arg(help_heading = "Input", long, env = "SHOPSTREAM_INCLUDE", default_value = DEFAULT_INCLUDE, value_delimiter = ',', value_name = "GLOB", value_parser = parse_include)]
    pub include: Vec<String>,

    /// Load every file present, then exit 0 (backfills, cron, benchmarks).
    #[arg(help_heading = "Input", long, env = "SHOPSTREAM_ONCE")]
    pub once: bool,

    /// Most files committed together in one transaction.
    #[arg(help_heading = "Batching", long, env = "SHOPSTREAM_BATCH_MAX_FILES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_max_files: u32,

    /// Most bytes of input per transaction (bytes, or with a unit: 64MiB,
    /// 1G; units are 1024-based). A larger single file still forms a batch
    /// on its own. At least 1.
    #[arg(help_heading = "Batching", long, env = "SHOPSTREAM_BATCH_MAX_BYTES", default_value = "256MiB", value_name = "SIZE", value_parser = parse_batch_bytes)]
    pub batch_max_bytes: u64,

    /// No longer used: one connection loads, one batch at a time (see
    /// docs/architecture.md). Accepted so that existing settings still start.
    #[arg(
        help_heading = "Batching",
        long,
        env = "SHOPSTREAM_CONNECTIONS",
        hide = true
    )]
    pub connections: Option<u32>,

    /// No longer used (the id memory of the old direct path).
    #[arg(
        help_heading = "Batching",
        long,
        env = "SHOPSTREAM_RECENT_IDS",
        hide = true
    )]
    pub recent_ids: Option<u64>,

    /// No longer used (the old direct path's threshold).
    #[arg(
        help_heading = "Batching",
        long,
        env = "SHOPSTREAM_DIRECT_MIN_BATCH_BYTES",
        hide = true,
        value_name = "SIZE"
    )]
    pub direct_min_batch_bytes: Option<String>,

    /// Seconds between full listings of the input folder; OS file events
    /// trigger a listing sooner. For an object store: seconds between
    /// listings (each resumes after the last settled key).
    #[arg(
        help_heading = "Input",
        long,
        env = "SHOPSTREAM_RELIST_SECS",
        default_value_t = 2.0
    )]
    pub relist_secs: f64,

    /// Object store input only: seconds between listings that start from
    /// the beginning of the prefix instead of after the last settled key,
    /// to find keys that sort before it (keys should sort in arrival order,
    /// as time-stamped names do). 0 lists everything every time.
    #[arg(
        help_heading = "Input",
        long,
        env = "SHOPSTREAM_FULL_RELIST_SECS",
        default_value_t = 300.0
    )]
    pub full_relist_secs: f64,

    /// Highest accepted price; above it a row fails `extreme_price`.
    #[arg(
        help_heading = "Validation",
        long,
        env = "SHOPSTREAM_MAX_PRICE",
        default_value = "10000"
    )]
    pub max_price: String,

    /// Seconds an event_time may lie ahead of the clock before it fails
    /// `future_event_time`.
    #[arg(
        help_heading = "Validation",
        long,
        env = "SHOPSTREAM_FUTURE_TOLERANCE_SECS",
        default_value_t = 60
    )]
    pub future_tolerance_secs: u64,

    /// Events older than this many seconds when processed are flagged
    /// `is_late_arrival`.
    #[arg(
        help_heading = "Validation",
        long,
        env = "SHOPSTREAM_LATE_THRESHOLD_SECS",
        default_value_t = 300
    )]
    pub late_threshold_secs: u64,

    /// IANA time zone (Europe/Berlin, America/New_York) of event times
    /// written without Z or an offset (as the four-column
    /// `user_id,action,product,timestamp` and the `user_activity` layouts
    /// do). A
    /// time the clocks skip when daylight saving time begins fails
    /// `invalid_event_time`; one that occurs twice when it ends is the
    /// earlier instant. Times with an offset are unaffected.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_SOURCE_TIMEZONE", default_value = "UTC", value_name = "ZONE", value_parser = parse_zone)]
    pub source_timezone: chrono_tz::Tz,

    /// Events older than this when processed (90d, 12h, 30m, 3600s) fail
    /// `too_old_event_time` instead of being loaded and flagged late.
    /// [default: no bound]
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_EVENT_AGE", value_name = "DURATION", value_parser = parse_age)]
    pub max_event_age: Option<Duration>,

    /// Longest accepted CSV record (bytes, or with a unit: 64K, 1MiB; units
    /// are 1024-based); a longer one rejects its file. At least 1.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_LINE_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_limit_usize)]
    pub max_line_bytes: usize,

    /// Most fields in one CSV record, the header included; a record with
    /// more rejects its file (the CSV is not what it claims to be).
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_COLUMNS", default_value_t = DEFAULT_MAX_FIELDS, value_name = "N", value_parser = parse_max_columns)]
    pub max_columns: usize,

    /// Largest accepted file (bytes, or with a unit: 512M, 2GiB); a larger
    /// one is rejected and quarantined without being read. At least 1.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_FILE_BYTES", default_value = "4GiB", value_name = "SIZE", value_parser = parse_limit)]
    pub max_file_bytes: u64,

    /// Longest wait, in seconds, for opening an input file or for one read
    /// of it. A file that stalls longer (a hung network mount) is given up
    /// for now, neither recorded nor moved, and tried again later; the
    /// other files and batches go on.
    #[arg(help_heading = "Input", long, env = "SHOPSTREAM_READ_TIMEOUT_SECS", default_value_t = DEFAULT_READ_TIMEOUT.as_secs_f64(), value_name = "S", value_parser = parse_read_timeout)]
    pub read_timeout_secs: f64,

    /// What to do with header columns the detected layout does not know:
    /// keep their values in `ecommerce_events.extra` (JSON), drop them, or
    /// reject the file. Their names are recorded in the ledger either way.
    /// Canonical column names (`quantity`, `category`, …) are always read.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_UNKNOWN_COLUMNS", value_enum, default_value_t = UnknownColumns::Keep)]
    pub unknown_columns: UnknownColumns,

    /// Seconds before the first retry after a failed batch or a lost
    /// database; each further retry waits --retry-factor times longer (±20%
    /// jitter), up to --retry-max-secs.
    #[arg(
        help_heading = "Retry and breaker",
        long,
        env = "SHOPSTREAM_RETRY_INITIAL_SECS",
        default_value_t = 1.0
    )]
    pub retry_initial_secs: f64,

    /// Growth of the wait between consecutive retries.
    #[arg(
        help_heading = "Retry and breaker",
        long,
        env = "SHOPSTREAM_RETRY_FACTOR",
        default_value_t = 2.0
    )]
    pub retry_factor: f64,

    /// Longest wait between retries, in seconds.
    #[arg(
        help_heading = "Retry and breaker",
        long,
        env = "SHOPSTREAM_RETRY_MAX_SECS",
        default_value_t = 60.0
    )]
    pub retry_max_secs: f64,

    /// Consecutive failures (connect, batch or probe) that open the circuit
    /// breaker: intake pauses, files stay where they are. With --once the
    /// run gives up instead (exit 1), as it does after this many failed
    /// listings of the input in a row (which never open the breaker).
    #[arg(help_heading = "Retry and breaker", long, env = "SHOPSTREAM_BREAKER_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_failures: u32,

    /// Longest wait between probes of the database while the circuit is
    /// open. The first probe comes after --retry-initial-secs (1 s), each
    /// failed one waits --retry-factor times longer (±20% jitter), up to
    /// this; so a restarted database is found within seconds.
    #[arg(
        help_heading = "Retry and breaker",
        long,
        env = "SHOPSTREAM_BREAKER_OPEN_SECS",
        default_value_t = 30.0
    )]
    pub breaker_open_secs: f64,

    /// Successful probes in a row that close the circuit again.
    #[arg(help_heading = "Retry and breaker", long, env = "SHOPSTREAM_BREAKER_SUCCESSES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub breaker_successes: u32,

    /// What to do with a file once its rows are committed (loaded or a
    /// duplicate): keep it in place, move it under --archive-dir (keeping
    /// its sub-folders), or delete it. Never before the commit.
    #[arg(help_heading = "After load", long, env = "SHOPSTREAM_AFTER_LOAD", value_enum, default_value_t = AfterLoad::Keep)]
    pub after_load: AfterLoad,

    /// Where --after-load archive moves files [default: INPUT/_archive]; for
    /// an object store, a URL in the same bucket. Not / or a system folder.
    #[arg(help_heading = "After load", long, env = "SHOPSTREAM_ARCHIVE_DIR", value_parser = parse_work_folder)]
    pub archive_dir: Option<PathBuf>,

    #[command(flatten, next_help_heading = "Alerts")]
    pub alerts: AlertArgs,

    /// Where rejected files (unreadable, binary, empty, unknown header, …)
    /// are moved, each with a `.reason.txt` beside it [default:
    /// INPUT/_quarantine]; for an object store, a URL in the same bucket.
    /// Not / or a system folder.
    #[arg(help_heading = "After load", long, env = "SHOPSTREAM_QUARANTINE_DIR", value_parser = parse_work_folder)]
    pub quarantine_dir: Option<PathBuf>,
}

/// `--max-columns`: at least 1.
fn parse_max_columns(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number of columns of at least 1"
        )),
    }
}

/// `--max-file-bytes`: a size of at least one byte.
fn parse_limit(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!(
            "{text:?} would reject every file: give a size of at least 1 byte"
        )),
        n => Ok(n),
    }
}

/// `--batch-max-bytes`: a size of at least one byte.
fn parse_batch_bytes(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err(format!(
            "{text:?} would leave no room for a file: give a size of at least 1 byte"
        )),
        n => Ok(n),
    }
}

/// `--max-line-bytes`: a size of at least one byte.
fn parse_limit_usize(text: &str) -> Result<usize, String> {
    usize::try_from(parse_limit(text)?).map_err(|_| format!("{text:?} is too large"))
}

/// `--read-timeout-secs`: above 0.
fn parse_read_timeout(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s < 1e9 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds above 0")),
    }
}

/// Highest `--max-price` the schema can hold with any quantity.
const MAX_PRICE_LIMIT_CENTS: i64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("--max-price {0:?} must be a decimal number from 0 to 1000000")]
    MaxPrice(String),
    #[error("--relist-secs must be above 0 and --full-relist-secs at least 0")]
    Relist,
    #[error(
        "--retry-initial-secs and --retry-max-secs must be above 0 and --retry-factor at least 1"
    )]
    Retry,
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Db(#[from] crate::db::connect::DbError),
    #[error("giving up after {attempts} failed attempts in a row (the circuit breaker opened; without --once the loader would wait for the database): {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("--breaker-open-secs must be above 0")]
    Breaker,
    #[error("giving up after {attempts} failed listings of the input in a row: {last}")]
    Unlisted { attempts: u32, last: String },
    #[error(transparent)]
    Migrate(MigrateError),
    #[error(transparent)]
    Alerts(#[from] AlertError),
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

impl PipelineError {
    /// Whether a person must change the settings (exit code 2).
    pub fn is_config(&self) -> bool {
        match self {
            PipelineError::MaxPrice(_)
            | PipelineError::Relist
            | PipelineError::Retry
            | PipelineError::Breaker => true,
            PipelineError::Db(e) => e.is_config(),
            // A schema newer than this binary can follow: upgrade it.
            PipelineError::Migrate(MigrateError::TooNew { .. }) => true,
            _ => false,
        }
    }
}

impl RunArgs {
    /// For the run summary: where rejected rows and files went, or nothing
    /// when there were none.
    pub fn where_rejects_went(&self, rows: u64, files: u64) -> String {
        let mut out = String::new();
        if rows > 0 {
            out.push_str(
                "; rejected rows are in table dead_letter_events with their reasons \
                 (`shopstream report` sums them up)",
            );
        }
        if files > 0 {
            let dir = match &self.quarantine_dir {
                Some(d) => d.clone(),
                None => self.input.join("_quarantine"),
            };
            out.push_str(&format!(
                "; rejected files are in {}, each with a .reason.txt",
                dir.display()
            ));
        }
        out
    }

    /// The retry pacing from the `--retry-*` options.
    pub fn backoff(&self) -> Result<Backoff, PipelineError> {
        let ok = |s: f64| s > 0.0 && s.is_finite() && s < 1e9;
        let factor_ok = self.retry_factor >= 1.0 && self.retry_factor.is_finite();
        if !(ok(self.retry_initial_secs) && ok(self.retry_max_secs) && factor_ok) {
            return Err(PipelineError::Retry);
        }
        Ok(Backoff {
            initial: Duration::from_secs_f64(self.retry_initial_secs),
            factor: self.retry_factor,
            max: Duration::from_secs_f64(self.retry_max_secs),
        })
    }

    /// The circuit breaker settings from the `--breaker-*` options.
    pub fn breaker(&self) -> Result<BreakerConfig, PipelineError> {
        let open = self.breaker_open_secs;
        if !(open > 0.0 && open.is_finite() && open < 1e9) {
            return Err(PipelineError::Breaker);
        }
        let retry = self.backoff()?;
        Ok(BreakerConfig {
            failures_to_open: self.breaker_failures,
            open_for: Duration::from_secs_f64(open),
            successes_to_close: self.breaker_successes,
            first_probe_after: retry.initial,
            probe_factor: retry.factor,
        })
    }

    /// The options still accepted that no longer do anything.
    pub fn ignored_options(&self) -> Vec<&'static str> {
        let mut out = vec![];
        if self.connections.is_some() {
            out.push("--connections");
        }
        if self.recent_ids.is_some() {
            out.push("--recent-ids");
        }
        if self.direct_min_batch_bytes.is_some() {
            out.push("--direct-min-batch-bytes");
        }
        out
    }

    pub fn parse_config(&self) -> Result<ParseConfig, PipelineError> {
        let max_price_cents = match parse_decimal(self.max_price.trim()) {
            Some(Decimal::Cents(c)) if (0..=MAX_PRICE_LIMIT_CENTS).contains(&c) => c,
            _ => return Err(PipelineError::MaxPrice(self.max_price.clone())),
        };
        Ok(ParseConfig {
            rules: Rules {
                max_price_cents,
                future_tolerance_micros: self.future_tolerance_secs as i64 * 1_000_000,
                late_threshold_micros: self.late_threshold_secs as i64 * 1_000_000,
                source_zone: (self.source_timezone != chrono_tz::Tz::UTC)
                    .then_some(self.source_timezone),
                max_age_micros: self
                    .max_event_age
                    .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            },
            max_record_bytes: self.max_line_bytes,
            max_fields: self.max_columns,
            max_file_bytes: self.max_file_bytes,
            unknown_columns: self.unknown_columns,
            input_root: None,
            read_timeout: Duration::from_secs_f64(self.read_timeout_secs),
        })
    }
}

/// `--source-timezone`: an IANA zone name.
fn parse_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.trim().parse().map_err(|_| {
        format!("unknown time zone {s:?}: expected an IANA name like Europe/Berlin, America/New_York or UTC")
    })
}

/// `--max-event-age`: a duration above zero (90d, 12h, 30m, 3600s).
fn parse_age(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{s:?} is not a duration above zero: expected e.g. 90d, 12h, 30m or 3600s"
        )),
    }
}

/// Totals over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub batches: u64,
    pub files_loaded: u64,
    /// Of `files_loaded`, those that added no event: every row was a
    /// duplicate of an event already loaded (or rejected). The ledger
    /// records them as loaded; the summary says that nothing came of them.
    pub files_loaded_only_duplicates: u64,
    pub files_duplicate: u64,
    pub files_rejected: u64,
    pub files_quarantined: u64,
    pub files_archived: u64,
    pub files_deleted: u64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
}

impl RunSummary {
    /// For the summary line: how many of the loaded files added nothing,
    /// or nothing when none.
    pub fn only_duplicates_note(&self) -> String {
        match self.files_loaded_only_duplicates {
            0 => String::new(),
            n => format!(" ({n} of them only duplicate rows: nothing added)"),
        }
    }

    fn add(&mut self, r: &BatchReport) {
        if r.batch_id.is_some() {
            self.batches += 1;
        }
        for f in &r.files {
            match f.status {
                FileStatus::Loaded => {
                    self.files_loaded += 1;
                    if f.rows_loaded == 0 && f.rows_duplicate > 0 {
                        self.files_loaded_only_duplicates += 1;
                    }
                }
                FileStatus::Duplicate { .. } => self.files_duplicate += 1,
                FileStatus::Rejected { .. } => self.files_rejected += 1,
                _ => {}
            }
        }
        self.rows_read += r.rows_read;
        self.rows_loaded += r.rows_loaded;
        self.rows_duplicate += r.rows_duplicate;
        self.rows_rejected += r.rows_rejected;
    }
}

/// A file version as the ledger identifies it (see [`ledger::SAME_FILE`]).
type FileKey = (PathBuf, u64, i64, Option<FileId>);

fn key(c: &Candidate) -> FileKey {
    (c.path.clone(), c.size, c.mtime_micros, c.file_id)
}

/// Logs one committed batch the way a person wants to read it.
pub fn log_batch(r: &BatchReport) {
    for f in &r.files {
        match &f.status {
            FileStatus::Rejected { reason } => {
                // The quarantine line says it (with where the file went).
                tracing::debug!(file = ?f.path, "file rejected: {reason}")
            }
            FileStatus::Duplicate { of } => {
                tracing::info!(file = ?f.path, "same content as {of:?}: nothing added")
            }
            FileStatus::Changed => {
                tracing::info!(file = ?f.path, "file changed while being read; will retry")
            }
            _ => {}
        }
    }
    let Some(id) = r.batch_id else { return };
    let codes: Vec<String> = r
        .rejects_by_code
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    };
    tracing::info!(
        "batch {id}: {} file(s), {} rows -> {} loaded, {} duplicate, {} rejected{codes}, {} late, in {} ms",
        r.files.len(),
        r.rows_read,
        r.rows_loaded,
        r.rows_duplicate,
        r.rows_rejected,
        r.late,
        r.duration_ms
    );
}

/// Why one pass of the loader failed.
enum Failed {
    /// Worth trying again (after a backoff; counts for the breaker).
    Retry { message: String, class: Class },
    /// Needs a person: the run ends with this error.
    Stop(PipelineError),
}

impl Failed {
    fn db(e: tokio_postgres::Error) -> Failed {
        let class = classify(&e);
        Failed::Retry {
            message: crate::db::connect::error_chain(&e),
            class,
        }
    }
}

impl From<batch::SinkError> for Failed {
    fn from(e: batch::SinkError) -> Failed {
        let class = match &e {
            batch::SinkError::Db(db) => classify(db),
            batch::SinkError::Reader(_) => Class::Fatal,
        };
        Failed::Retry {
            message: e.to_string(),
            class,
        }
    }
}

/// How soon files held by another loader are looked at again.
const CLAIMED_ELSEWHERE_RETRY: Duration = Duration::from_millis(500);

/// What one pass of the loader did.
#[derive(Debug, Default)]
struct Pass {
    /// Some file was settled (committed or finished).
    progressed: bool,
    /// Some file was left to another loader that holds it.
    elsewhere: bool,
    /// The input could not be listed (why): a local or storage problem,
    /// never the database's, so it is no failure of the pass.
    unlisted: Option<String>,
}

/// A file whose fate is committed and now must be carried out on disk:
/// `Some(reason)` when it was rejected.
/// A file's fate to carry out: the file, the reason when it was rejected,
/// and its ledger row (where the disposition is recorded).
type Job = (Candidate, Option<String>, Option<i64>);

/// The loader's state between passes.
struct Loader<'a> {
    args: &'a RunArgs,
    db: &'a Database,
    input: Input,
    /// How batches read their files.
    reading: Reading,
    /// The connection: listing against the ledger, batches, dispositions,
    /// probes.
    client: Option<Client>,
    /// The event table's ids (see [`crate::sink::dedup`]).
    table_ids: TableIds,
    /// The staged route (see [`crate::sink::route`]): the event table
    /// checks what the validator does not, or refused a row.
    staged: bool,
    migrated: bool,
    done: HashSet<FileKey>,
    summary: RunSummary,
    /// Health, metrics, alerts and (`--once`) progress: every event the
    /// loader emits goes to each, in order.
    observers: Observers,
    /// Fault injection for the crash tests: a pause between a commit and
    /// carrying out the files' fates, so a test can kill the process there.
    pause_after_commit: Option<Duration>,
}

/// The environment variable behind [`Loader::pause_after_commit`]
/// (milliseconds). Not an option: it exists to test crash safety.
pub const PAUSE_AFTER_COMMIT_ENV: &str = "SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS";

impl RunArgs {
    /// Everything [`run`] checks before it works, checked without a
    /// database: the options and limits, the `--include` globs, the alert
    /// settings and the input (a folder that can be listed; an `s3://`
    /// URL that parses). The binary calls it before it opens (and perhaps
    /// creates) the database, so a mistake creates nothing.
    pub fn preflight(&self) -> Result<(), PipelineError> {
        self.parse_config()?;
        self.backoff()?;
        self.breaker()?;
        let relist_ok = self.relist_secs > 0.0 && self.relist_secs.is_finite();
        let full_ok = self.full_relist_secs >= 0.0 && self.full_relist_secs < 1e9;
        if !(relist_ok && full_ok) {
            return Err(PipelineError::Relist);
        }
        self.alerts.config()?;
        Input::new(&InputConfig {
            input: self.input.clone(),
            after_load: self.after_load,
            archive: self.archive_dir.clone(),
            quarantine: self.quarantine_dir.clone(),
            full_relist: Duration::from_secs_f64(self.full_relist_secs),
            include: Include::new(&self.include)?,
            read_timeout: Duration::from_secs_f64(self.read_timeout_secs),
        })?;
        Ok(())
    }
}

/// Runs the loader until the folder is drained (`--once`) or shutdown.
/// `on_batch` sees every committed batch; `health` follows the loader's
/// state.
pub async fn run(
    args: &RunArgs,
    db: &Database,
    shutdown: &Shutdown,
    health: &Health,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<RunSummary, PipelineError> {
    let cfg = args.parse_config()?;
    let backoff = args.backoff()?;
    let mut breaker = Breaker::new(args.breaker()?);
    // Seeded once; a `ThreadRng` would make the loader future non-`Send`.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    if !(args.relist_secs > 0.0 && args.relist_secs.is_finite()) {
        return Err(PipelineError::Relist);
    }
    let relist = Duration::from_secs_f64(args.relist_secs);
    if !(args.full_relist_secs >= 0.0 && args.full_relist_secs < 1e9) {
        return Err(PipelineError::Relist);
    }
    let (mut loader, delivery) = Loader::start(args, db, health, cfg)?;
    let mut watcher = (!args.once).then(|| loader.input.waker());
    // Failed listings in a row (not the database's failures).
    let mut unlisted: u32 = 0;
    // On a stop, reads that hang give up at once (the batch commits without them).
    let stopping = shutdown.clone();
    let stop_reads = tokio::spawn(async move {
        stopping.wait().await;
        crate::source::bounded::stop_waiting();
    });

    tracing::info!(input = %args.input.display(), db = %db.describe(), once = args.once, "loader started");
    'outer: while !shutdown.is_triggered() {
        match breaker.step(Instant::now()) {
            Step::WaitUntil(until) => {
                loader.relist_for_lag().await;
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {},
                    _ = shutdown.wait() => break 'outer,
                }
                continue;
            }
            Step::Probe => {
                let next = probe_step(&mut loader, &mut breaker, &mut rng).await?;
                if let Some(pause) = next {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {},
                        _ = shutdown.wait() => break 'outer,
                    }
                }
                continue;
            }
            Step::Work => {}
        }

        match loader.pass(shutdown, &mut on_batch).await {
            Ok(Pass {
                unlisted: Some(message),
                ..
            }) => {
                // Not the database's failure: the breaker and readiness
                // stay as they are; only the listing is tried again.
                unlisted = unlisted.saturating_add(1);
                let wait = listing_failed(&mut loader, unlisted, message, &backoff, &mut rng)?;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = shutdown.wait() => break 'outer,
                }
                continue;
            }
            Ok(pass) => {
                unlisted = 0;
                breaker.success();
                loader.emit(LoaderEvent::Breaker {
                    state: breaker.state(),
                    failures: 0,
                    failure: None,
                });
                if pass.progressed {
                    continue;
                }
                if pass.elsewhere {
                    // Other loaders hold files: look again soon, to take
                    // them over if their loader dies (its claims end with
                    // its connection). `--once` waits for them too.
                    tracing::debug!(
                        "files held by another loader: looking again in {CLAIMED_ELSEWHERE_RETRY:?}"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(CLAIMED_ELSEWHERE_RETRY) => {},
                        _ = shutdown.wait() => break 'outer,
                    }
                    continue;
                }
                if args.once {
                    break 'outer;
                }
            }
            Err(Failed::Stop(e)) => return Err(e),
            Err(Failed::Retry { message, class }) => {
                let failure = Failure { class, message };
                let next =
                    round_trip_failed(&mut loader, &mut breaker, &backoff, &mut rng, failure)?;
                if let Some(wait) = next {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {},
                        _ = shutdown.wait() => break 'outer,
                    }
                }
                continue;
            }
        }
        match watcher.as_mut() {
            Some(w) => tokio::select! {
                _ = w.wait(relist) => {},
                _ = shutdown.wait() => break 'outer,
            },
            // --once and something changed while being read: look again soon.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    stop_reads.abort();
    Ok(loader.stop(delivery).await)
}

/// A failed listing (the `attempts`-th in a row): not the database's
/// failure, so the breaker and readiness stay as they are. Returns the
/// wait before listing again; `--once` gives up after
/// `--breaker-failures` of them.
fn listing_failed(
    loader: &mut Loader<'_>,
    attempts: u32,
    message: String,
    backoff: &Backoff,
    rng: &mut rand::rngs::StdRng,
) -> Result<Duration, PipelineError> {
    if loader.args.once && attempts >= loader.args.breaker_failures {
        return Err(PipelineError::Unlisted {
            attempts,
            last: message,
        });
    }
    let wait = backoff.delay(attempts, rng);
    tracing::warn!(
        "{message}; not a database failure, listing again in {:.1}s",
        wait.as_secs_f64()
    );
    loader.emit(LoaderEvent::ListingFailed { message });
    Ok(wait)
}

/// A failed pass (nothing was committed): counts it for the breaker and
/// tells the observers. Returns the wait before retrying, `None` when the
/// circuit opened (the breaker then says when to probe); `--once` gives up
/// when it opens.
fn round_trip_failed(
    loader: &mut Loader<'_>,
    breaker: &mut Breaker,
    backoff: &Backoff,
    rng: &mut rand::rngs::StdRng,
    failure: Failure,
) -> Result<Option<Duration>, PipelineError> {
    // A fresh connection after a failed batch is cheap and safe.
    loader.client = None;
    let opened = breaker.failure(Instant::now(), rng) == Some(BreakerState::Open);
    let failures = breaker.failures();
    let Failure { class, message } = failure.clone();
    loader.emit(LoaderEvent::Breaker {
        state: breaker.state(),
        failures,
        failure: Some(failure),
    });
    if opened {
        if loader.args.once {
            return Err(PipelineError::GaveUp {
                attempts: failures,
                last: message,
            });
        }
        tracing::error!(
            class = ?class,
            "{message}; {failures} failures in a row: circuit open, intake paused \
             (files stay where they are, nothing is marked done); next probe in {:.1}s",
            probe_in(breaker)
        );
        return Ok(None);
    }
    let wait = backoff.delay(failures, rng);
    // Retried: a warning on one line. ERROR is for giving up (the circuit
    // opening, the run ending).
    tracing::warn!(
        class = ?class,
        attempt = failures,
        "attempt {failures} failed, nothing was committed; retrying in {}: {}",
        readable_wait(wait),
        message.replace('\n', " ")
    );
    Ok(Some(wait))
}

/// `250 ms`, `1.5 s`: a retry's wait as people read it.
fn readable_wait(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{} ms", wait.as_millis())
    } else {
        format!("{:.1} s", wait.as_secs_f64())
    }
}

/// Seconds until the breaker's next probe.
fn probe_in(breaker: &Breaker) -> f64 {
    breaker.next_probe().map_or(0.0, |at| {
        at.saturating_duration_since(Instant::now()).as_secs_f64()
    })
}

/// One probe of the database while the circuit is not closed, and its
/// bookkeeping. Returns the pause before the next probe when the circuit
/// is still half open, `None` when it closed or opened again (the breaker
/// then says when to probe).
async fn probe_step(
    loader: &mut Loader<'_>,
    breaker: &mut Breaker,
    rng: &mut rand::rngs::StdRng,
) -> Result<Option<Duration>, PipelineError> {
    loader.emit(LoaderEvent::Breaker {
        state: BreakerState::HalfOpen,
        failures: breaker.failures(),
        failure: None,
    });
    match loader.probe().await {
        Ok(()) => {
            if breaker.success() != Some(BreakerState::Closed) {
                return Ok(Some(loader.args.backoff()?.initial));
            }
            tracing::info!("the database answers again: circuit closed, intake resumes");
            loader.emit(LoaderEvent::Breaker {
                state: BreakerState::Closed,
                failures: 0,
                failure: None,
            });
            Ok(None)
        }
        Err(Failed::Stop(e)) => Err(e),
        Err(Failed::Retry { message, class }) => {
            loader.client = None;
            breaker.failure(Instant::now(), rng);
            tracing::warn!(
                "probe failed: {message}; circuit stays open, intake paused; next probe in {:.1}s",
                probe_in(breaker)
            );
            loader.emit(LoaderEvent::Breaker {
                state: BreakerState::Open,
                failures: breaker.failures(),
                failure: Some(Failure { class, message }),
            });
            Ok(None)
        }
    }
}

/// A connection that failed. Settings the server refused (a login, an
/// unknown database: SQLSTATE class 28 or 3D000) end a `--once` run at once;
/// a continuous loader keeps trying them with backoff (a role or database
/// may be created after it started), reporting them as needing a person.
fn connect_failed(e: DbError, once: bool) -> Failed {
    if once && e.is_config() {
        return Failed::Stop(PipelineError::Db(e));
    }
    let class = match &e {
        DbError::Connect { class, .. } => *class,
        _ => Class::Transient,
    };
    Failed::Retry {
        message: e.to_string(),
        class,
    }
}

impl<'a> Loader<'a> {
    /// The loader over `args`'s input with its observers: `health`,
    /// the metrics, the alerts (whose delivery task is returned) and, with
    /// `--once`, the progress bar.
    fn start(
        args: &'a RunArgs,
        db: &'a Database,
        health: &Health,
        mut cfg: ParseConfig,
    ) -> Result<(Loader<'a>, Delivery), PipelineError> {
        let input = Input::new(&InputConfig {
            input: args.input.clone(),
            after_load: args.after_load,
            archive: args.archive_dir.clone(),
            quarantine: args.quarantine_dir.clone(),
            full_relist: Duration::from_secs_f64(args.full_relist_secs),
            include: Include::new(&args.include)?,
            read_timeout: Duration::from_secs_f64(args.read_timeout_secs),
        })?;
        let source = input.source();
        cfg.input_root = std::fs::canonicalize(&args.input).ok().map(Arc::from);
        let (alerter, delivery) = Alerter::start(args.alerts.config()?)?;
        let mut observers = Observers::new();
        observers.add(health.clone());
        observers.add(MetricsObserver);
        observers.add(alerter);
        if args.once {
            observers.add(LoadProgress::default());
        }
        let ignored = args.ignored_options();
        if !ignored.is_empty() {
            tracing::warn!(
                "{} no longer do anything: one connection loads, one batch at a time",
                ignored.join(", ")
            );
        }
        let loader = Loader {
            observers,
            args,
            db,
            reading: Reading { source, cfg },
            input,
            client: None,
            table_ids: TableIds::default(),
            staged: false,
            migrated: false,
            done: HashSet::new(),
            summary: RunSummary::default(),
            pause_after_commit: std::env::var(PAUSE_AFTER_COMMIT_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
        };
        Ok((loader, delivery))
    }

    /// Ends a run: tells the observers, waits (at most 30 s) for queued
    /// alerts to be delivered, logs and returns the totals.
    async fn stop(self, delivery: Delivery) -> RunSummary {
        let mut observers = self.observers;
        observers.emit(LoaderEvent::Stopped);
        let summary = self.summary;
        // Deliver what is queued (a webhook may take a few seconds), then stop.
        drop(observers);
        if !delivery.finish(Duration::from_secs(30)).await {
            tracing::warn!("gave up waiting for alert delivery after 30 s");
        }
        tracing::info!(
            "loader stopped: {} batches, {} files loaded{}, {} duplicate, {} rejected ({} quarantined); rows {} read, {} loaded, {} duplicate, {} rejected{}",
            summary.batches,
            summary.files_loaded,
            summary.only_duplicates_note(),
            summary.files_duplicate,
            summary.files_rejected,
            summary.files_quarantined,
            summary.rows_read,
            summary.rows_loaded,
            summary.rows_duplicate,
            summary.rows_rejected,
            self.args
                .where_rejects_went(summary.rows_rejected, summary.files_quarantined)
        );
        summary
    }
}

impl Loader<'_> {
    /// The connection, made (and the schema migrated, once) when missing.
    async fn client(&mut self) -> Result<&mut Client, Failed> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let once = self.args.once;
            let mut c = self
                .db
                .connect()
                .await
                .map_err(|e| connect_failed(e, once))?;
            if !self.migrated {
                match migrate::migrate(&mut c).await {
                    Ok(report) => {
                        for (v, name) in &report.applied {
                            tracing::info!("applied migration {v} ({name})");
                        }
                    }
                    Err(MigrateError::Apply { source, .. } | MigrateError::History(source)) => {
                        return Err(Failed::db(source))
                    }
                    Err(e) => return Err(Failed::Stop(PipelineError::Migrate(e))),
                }
                self.migrated = true;
            }
            batch::prepare(&c).await?;
            let checks = crate::sink::route::server_only_checks(&c)
                .await
                .map_err(Failed::db)?;
            if !checks.is_empty() && !self.staged {
                tracing::info!(
                    "ecommerce_events has {} that shopstream does not check itself: every row \
                     goes through staging, where a row the server refuses becomes a dead letter",
                    checks.join(", ")
                );
            }
            self.staged |= !checks.is_empty();
            self.client = Some(c);
        }
        self.client.as_mut().ok_or_else(no_connection)
    }

    /// One trivial round trip: is the database back?
    async fn probe(&mut self) -> Result<(), Failed> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(Failed::db)?;
        Ok(())
    }

    /// Loads one batch. A row the server refuses on the copy route (a check
    /// the catalogue did not show, a value out of the column's range) turns
    /// the loader to the staged route for good, and the batch is loaded
    /// that way: there refused rows become dead letters.
    async fn load(&mut self, files: Vec<Candidate>) -> Result<BatchReport, Failed> {
        let staged = self.staged;
        let reading = self.reading.clone();
        self.client().await?;
        let (Some(c), table) = (self.client.as_mut(), &mut self.table_ids) else {
            return Err(no_connection());
        };
        let result = batch_load::load(c, table, files.clone(), &reading, staged).await;
        let result = match result {
            Err(e) if !staged && e.is_refused_row() => {
                tracing::warn!(
                    "the database refused a row the validator accepted ({e}); from now on every \
                     row goes through staging, where refused rows become dead letters"
                );
                self.staged = true;
                let c = self.client().await?;
                batch_load::load(c, &mut TableIds::default(), files, &reading, true).await
            }
            r => r,
        };
        result.map_err(|e| {
            // Connections left in an unknown state are made again.
            self.client = None;
            Failed::from(e)
        })
    }

    /// Lists the folder, finishes files the ledger already has, and commits
    /// the rest in batches, one after the other.
    async fn pass(
        &mut self,
        shutdown: &Shutdown,
        on_batch: &mut impl FnMut(&BatchReport),
    ) -> Result<Pass, Failed> {
        if let Some(prefix) = self.input.needs_seed() {
            let after_load = self.args.after_load;
            let c = self.client().await?;
            let seed = resume::from_ledger(c, &prefix, after_load)
                .await
                .map_err(Failed::db)?;
            self.input.seed(seed);
        }
        let listed = self.input.list().await;
        self.emit(LoaderEvent::Listed);
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                return Ok(Pass {
                    unlisted: Some(e.to_string()),
                    ..Pass::default()
                })
            }
        };
        let fresh: Vec<Candidate> = listed
            .into_iter()
            .filter(|f| !self.done.contains(&key(f)))
            .collect();
        self.record_lag(&fresh);
        let mut pass = Pass::default();
        if fresh.is_empty() {
            self.input.settled_except(&[]);
            // Nothing to do, but a dead connection must still be noticed.
            let c = self.client().await?;
            c.simple_query("SELECT 1").await.map_err(Failed::db)?;
            return Ok(pass);
        }
        let after_load = self.args.after_load;
        let c = self.client().await?;
        let (fresh, leftovers) = skip_ledgered(c, fresh, after_load)
            .await
            .map_err(Failed::db)?;
        self.input.settled_except(&fresh);
        for (cand, _, _) in &leftovers {
            self.done.insert(key(cand));
        }
        if !leftovers.is_empty() {
            pass.progressed = true;
            self.dispose(leftovers).await;
        }
        let batches = batches(
            fresh,
            self.args.batch_max_files as usize,
            self.args.batch_max_bytes,
        );
        let mut waiting: Vec<Candidate> = batches.iter().flatten().cloned().collect();
        self.emit(LoaderEvent::Queued {
            files: waiting.len() as u64,
            bytes: waiting.iter().map(|c| c.size).sum(),
        });
        for group in batches {
            // A batch that started always finishes (commit or roll back).
            if shutdown.is_triggered() {
                break;
            }
            let report = self.load(group).await?;
            pass.elsewhere |= !report.elsewhere.is_empty();
            if self.settle(report, &mut waiting, on_batch).await {
                pass.progressed = true;
            }
        }
        Ok(pass)
    }

    /// Books one committed batch: the lag and the batch to the observers,
    /// the log, then each file's fate on disk. True when some file was
    /// settled.
    async fn settle(
        &mut self,
        report: BatchReport,
        waiting: &mut Vec<Candidate>,
        on_batch: &mut impl FnMut(&BatchReport),
    ) -> bool {
        let mut progressed = false;
        let done = batch_done(&report, now_micros());
        let mut jobs: Vec<Job> = vec![];
        for f in &report.files {
            let Some(cand) = &f.candidate else { continue };
            let rejected = match &f.status {
                FileStatus::Changed => continue,
                FileStatus::Loaded | FileStatus::Duplicate { .. } => None,
                FileStatus::Rejected { reason } => Some(reason.clone()),
                FileStatus::AlreadyDone { rejected } => rejected.clone(),
            };
            self.done.insert(key(cand));
            self.input.settled(cand);
            progressed = true;
            jobs.push((cand.clone(), rejected, f.ledger_id));
        }
        let settled: HashSet<&Candidate> = report
            .files
            .iter()
            .filter_map(|f| f.candidate.as_ref())
            .chain(&report.elsewhere)
            .collect();
        waiting.retain(|c| !settled.contains(c));
        // The lag first: its alerts come before the batch's.
        self.record_lag(waiting);
        self.emit(LoaderEvent::Batch(done));
        if report.files.is_empty() {
            return progressed;
        }
        log_batch(&report);
        self.summary.add(&report);
        on_batch(&report);
        if let Some(pause) = self.pause_after_commit {
            tracing::warn!(
                "committed; pausing {} ms before moving files ({PAUSE_AFTER_COMMIT_ENV})",
                pause.as_millis()
            );
            tokio::time::sleep(pause).await;
        }
        self.dispose(jobs).await;
        progressed
    }

    /// Publishes how many files wait and how old the oldest is.
    fn record_lag(&mut self, waiting: &[Candidate]) {
        let now = now_micros();
        let oldest = waiting
            .iter()
            .map(|c| (now - c.mtime_micros).max(0))
            .max()
            .unwrap_or(0) as f64
            / 1e6;
        self.emit(LoaderEvent::Lag {
            waiting_files: waiting.len() as u64,
            oldest_waiting_secs: oldest,
        });
    }

    /// Hands one event to every observer (health, metrics, alerts,
    /// progress), in order; none of them waits.
    fn emit(&mut self, event: LoaderEvent) {
        self.observers.emit(event);
    }

    /// Lists the input without reading or loading anything (while the
    /// circuit is open), to keep the lag current.
    async fn relist_for_lag(&mut self) {
        let listed = self.input.list().await;
        self.emit(LoaderEvent::Listed);
        if let Ok(listed) = listed {
            let waiting: Vec<Candidate> = listed
                .into_iter()
                .filter(|f| !self.done.contains(&key(f)))
                .collect();
            self.record_lag(&waiting);
        }
    }

    /// Carries out committed fates on disk (keep, archive, delete,
    /// quarantine) and records where each file went. Never fails the pass:
    /// the data is committed; a file that cannot be moved is logged and
    /// tried again at the next start.
    async fn dispose(&mut self, jobs: Vec<Job>) {
        let disposer = self.reading.source.clone();
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(c, rejected, id)| {
                    let fate = match &rejected {
                        Some(reason) => Fate::Rejected { reason },
                        None => Fate::Processed,
                    };
                    let result = disposer.finish(&c, fate);
                    (c, rejected, id, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            tracing::error!("the file mover thread failed; files stay where they are");
            return;
        };
        let mut records: Vec<(i64, Disposition)> = vec![];
        for (c, rejected, id, result) in done {
            // Quoted, so a name with spaces or a newline reads unambiguously.
            let path = c.path.display().to_string();
            match result {
                Ok(d) => {
                    match (&d, &rejected) {
                        (Disposition::Quarantined(to), Some(reason)) => {
                            self.summary.files_quarantined += 1;
                            tracing::warn!(file = ?path, "quarantined to {:?}: {reason}", to.display().to_string());
                        }
                        (Disposition::Archived(to), _) => {
                            self.summary.files_archived += 1;
                            tracing::debug!(file = ?path, "archived to {:?}", to.display().to_string());
                        }
                        (Disposition::Deleted, _) => {
                            self.summary.files_deleted += 1;
                            tracing::debug!(file = ?path, "deleted after the commit");
                        }
                        (Disposition::Changed, _) => tracing::info!(
                            file = ?path,
                            "left in place: it changed after it was read (the new version is a new file)"
                        ),
                        _ => {}
                    }
                    self.emit(LoaderEvent::Disposed {
                        disposition: d.as_str(),
                    });
                    records.extend(id.map(|id| (id, d)));
                }
                Err(e) => tracing::error!(file = ?path, "{e}; it stays where it is"),
            }
        }
        if records.is_empty() {
            return;
        }
        let recorded = match self.client().await {
            Ok(c) => ledger::record_dispositions(c, &records)
                .await
                .map_err(Failed::db),
            Err(e) => Err(e),
        };
        let message = match recorded {
            Ok(()) => return,
            Err(Failed::Retry { message, .. }) => message,
            Err(Failed::Stop(e)) => e.to_string(),
        };
        tracing::warn!("could not record where files went in the ledger: {message}");
    }
}

/// Splits listed files into those to load and those the ledger already
/// has (the same version, see [`ledger::SAME_FILE`]). Of the latter,
/// returns the ones whose fate is not yet carried out on disk (a crash
/// between commit and move, or a new `--after-load`), with the reason when
/// they were rejected and their ledger row.
async fn skip_ledgered(
    client: &Client,
    fresh: Vec<Candidate>,
    after_load: AfterLoad,
) -> Result<(Vec<Candidate>, Vec<Job>), tokio_postgres::Error> {
    let known = ledger::known(client, &fresh).await?;
    let mut load = Vec::with_capacity(fresh.len());
    let mut leftovers = vec![];
    for (c, entry) in fresh.into_iter().zip(known) {
        let Some(entry) = entry else {
            load.push(c);
            continue;
        };
        let settled = entry.rejected.is_none()
            && after_load == AfterLoad::Keep
            && entry.disposition.as_deref() == Some("kept");
        if !settled {
            leftovers.push((c, entry.rejected, Some(entry.id)));
        }
    }
    Ok((load, leftovers))
}

fn no_connection() -> Failed {
    Failed::Retry {
        message: "no connection".to_string(),
        class: Class::Transient,
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Groups files, in order, into batches bounded by count and bytes.
fn batches(files: Vec<Candidate>, max_files: usize, max_bytes: u64) -> Vec<Vec<Candidate>> {
    let mut out: Vec<Vec<Candidate>> = vec![];
    let mut bytes = 0u64;
    for f in files {
        match out.last_mut() {
            Some(b) if b.len() < max_files && bytes + f.size <= max_bytes => {
                bytes += f.size;
                b.push(f);
            }
            _ => {
                bytes = f.size;
                out.push(vec![f]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, size: u64) -> Candidate {
        Candidate {
            path: name.into(),
            size,
            mtime_micros: 0,
            file_id: None,
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        use clap::Parser;
        let argv = std::iter::once("shopstream").chain(extra.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(c) => c.run,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn options_of_the_old_direct_path_still_parse_and_are_reported_ignored() {
        assert!(args(&[]).ignored_options().is_empty());
        let old = args(&[
            "--connections",
            "3",
            "--recent-ids",
            "0",
            "--direct-min-batch-bytes",
            "1MiB",
        ]);
        assert_eq!(
            old.ignored_options(),
            ["--connections", "--recent-ids", "--direct-min-batch-bytes"]
        );
    }

    #[test]
    fn retry_options_build_the_backoff_and_bad_ones_are_refused() {
        assert_eq!(args(&[]).backoff().ok(), Some(Backoff::default()));
        let b = args(&[
            "--retry-initial-secs",
            "0.5",
            "--retry-factor",
            "3",
            "--retry-max-secs",
            "10",
        ])
        .backoff()
        .ok();
        assert_eq!(
            b,
            Some(Backoff {
                initial: Duration::from_millis(500),
                factor: 3.0,
                max: Duration::from_secs(10),
            })
        );
        for bad in [
            ["--retry-factor", "0.5"],
            ["--retry-initial-secs", "0"],
            ["--retry-max-secs=-1", "--once"],
            ["--retry-max-secs", "inf"],
        ] {
            assert!(args(&bad).backoff().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let files = vec![c("a", 10), c("b", 10), c("c", 10), c("d", 100), c("e", 1)];
        let b = batches(files, 2, 50);
        let names: Vec<Vec<String>> = b
            .iter()
            .map(|b| b.iter().map(|c| c.path.display().to_string()).collect())
            .collect();
        assert_eq!(names, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }
}
