//! The options of `shopstream run` (`RunArgs`), their parsers and checks,
//! and the errors a run can end with (`PipelineError`).
//!
//! It owns what a person can set and what is wrong with it. It never
//! connects, lists or loads.

use std::path::PathBuf;
use std::time::Duration;

use super::breaker::BreakerConfig;
use super::read::{ParseConfig, DEFAULT_MAX_FIELDS};
use crate::db::migrate::MigrateError;
use crate::db::retry::Backoff;
use crate::observe::alerts::{AlertArgs, AlertError};
use crate::schema::declared::{DeclaredError, LayoutsArgs};
use crate::source::bounded::DEFAULT_READ_TIMEOUT;
use crate::source::dispose::AfterLoad;
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
    /// Folder (watched) or `s3://BUCKET/PREFIX` (polled) to load event
    /// files from.
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

    #[command(flatten)]
    pub read: ReadArgs,

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

    #[command(flatten)]
    pub rules: RuleArgs,

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

    /// Keep events, dead letters and quality rows for this long (90d, 12h,
    /// 6months), by event time, rejection time and commit time: at start
    /// and then hourly, what is older goes, as with `shopstream prune
    /// --older-than` (a monthly partition of ecommerce_events is dropped
    /// once its whole month is older). The ledger is never pruned.
    /// [default: keep everything]
    #[arg(help_heading = "Retention", long, env = "SHOPSTREAM_RETENTION", value_name = "DURATION", value_parser = parse_age)]
    pub retention: Option<Duration>,
}

/// How input files are picked and read, shared by `run` and `check` (so
/// a dry run reads exactly what and how the loader would).
#[derive(clap::Args, Debug, Clone)]
pub struct ReadArgs {
    /// Which files are input: a glob pattern (repeatable, or
    /// comma-separated). A pattern without `/` matches the file name at any
    /// depth (`*.csv`), one with `/` the path below the input
    /// (`2026/**/*.csv`); case is ignored. Other files are never read,
    /// moved or quarantined. The default takes every format shopstream
    /// reads: CSV (`.csv`) and JSON Lines (`.jsonl`, `.ndjson`), each also
    /// gzip- or zstd-compressed (`.gz`, `.zst`); the name tells the format,
    /// and any other name is read as CSV.
    #[arg(help_heading = "Input", long, env = "SHOPSTREAM_INCLUDE", default_value = DEFAULT_INCLUDE, value_delimiter = ',', value_name = "GLOB", value_parser = parse_include)]
    pub include: Vec<String>,

    /// Longest wait, in seconds, for opening an input file or for one read
    /// of it. A file that stalls longer (a hung network mount) is given up
    /// for now, neither recorded nor moved, and tried again later; the
    /// other files and batches go on.
    #[arg(help_heading = "Input", long, env = "SHOPSTREAM_READ_TIMEOUT_SECS", default_value_t = DEFAULT_READ_TIMEOUT.as_secs_f64(), value_name = "S", value_parser = parse_read_timeout)]
    pub read_timeout_secs: f64,

    /// Longest accepted CSV record (bytes, or with a unit: 64K, 1MiB; units
    /// are 1024-based); a longer one rejects its file. A longer JSON Lines
    /// line is a `malformed_json` dead letter. At least 1.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_LINE_BYTES", default_value = "1MiB", value_name = "SIZE", value_parser = parse_limit_usize)]
    pub max_line_bytes: usize,

    /// Most fields in one CSV record, the header included; a record with
    /// more rejects its file (the CSV is not what it claims to be). A JSON
    /// Lines object with more keys is a `malformed_json` dead letter.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_COLUMNS", default_value_t = DEFAULT_MAX_FIELDS, value_name = "N", value_parser = parse_max_columns)]
    pub max_columns: usize,

    /// Largest accepted file (bytes, or with a unit: 512M, 2GiB); a larger
    /// one is rejected and quarantined without being read. A compressed
    /// file is also rejected once its content decompresses past it (reading
    /// stops there: a decompression bomb costs no more). At least 1.
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_FILE_BYTES", default_value = "4GiB", value_name = "SIZE", value_parser = parse_limit)]
    pub max_file_bytes: u64,

    /// Reject a whole file when more than this share of its rows fail
    /// validation (0.5: more than half), a number above 0 and at most 1:
    /// it is quarantined with reason code `too_many_rejects` and the
    /// counts, nothing of it loaded and none of its rows dead-lettered (a
    /// file that is mostly garbage is a broken export, not bad events). A
    /// file without rows is never rejected by it. [default: no limit]
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_MAX_REJECT_RATIO", value_name = "R", value_parser = parse_reject_ratio)]
    pub max_reject_ratio: Option<f64>,
}

impl ReadArgs {
    /// How rows are read and judged, under `rules`.
    pub fn parse_config(&self, rules: &RuleArgs) -> Result<ParseConfig, PipelineError> {
        Ok(ParseConfig {
            rules: rules.rules()?,
            max_record_bytes: self.max_line_bytes,
            max_fields: self.max_columns,
            max_file_bytes: self.max_file_bytes,
            unknown_columns: rules.unknown_columns,
            layouts: rules.registry()?,
            input_root: None,
            read_timeout: self.read_timeout(),
            max_reject_ratio: self.max_reject_ratio,
        })
    }

    /// `--read-timeout-secs` as a duration.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.read_timeout_secs)
    }
}

/// `--max-reject-ratio`: above 0 and at most 1.
fn parse_reject_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1.0 => Ok(r),
        _ => Err(format!(
            "{text:?} is not a share of rows above 0 and at most 1 (0.5: more than half)"
        )),
    }
}

/// The validation rules of a row, shared by `run` and `dead-letters
/// replay` (so a limit raised for one is given to the other the same way).
#[derive(clap::Args, Debug, Clone)]
pub struct RuleArgs {
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

    /// What to do with header columns the detected layout does not know:
    /// keep their values in `ecommerce_events.extra` (JSON), drop them, or
    /// reject the file. Their names are recorded in the ledger either way.
    /// Canonical column names (`quantity`, `category`, …) are always read.
    /// In JSON Lines the same goes for keys outside the layout and for
    /// objects or arrays (kept in `extra` as written).
    #[arg(help_heading = "Validation", long, env = "SHOPSTREAM_UNKNOWN_COLUMNS", value_enum, default_value_t = UnknownColumns::Keep)]
    pub unknown_columns: UnknownColumns,

    #[command(flatten)]
    pub layouts: LayoutsArgs,
}

impl RuleArgs {
    /// The rules these options set.
    pub fn rules(&self) -> Result<Rules, PipelineError> {
        let max_price_cents = match parse_decimal(self.max_price.trim()) {
            Some(Decimal::Cents(c)) if (0..=MAX_PRICE_LIMIT_CENTS).contains(&c) => c,
            _ => return Err(PipelineError::MaxPrice(self.max_price.clone())),
        };
        Ok(Rules {
            max_price_cents,
            future_tolerance_micros: self.future_tolerance_secs as i64 * 1_000_000,
            late_threshold_micros: self.late_threshold_secs as i64 * 1_000_000,
            source_zone: (self.source_timezone != chrono_tz::Tz::UTC)
                .then_some(self.source_timezone),
            max_age_micros: self
                .max_event_age
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            forms: crate::validate::Forms::default(),
        })
    }

    /// The built-in layouts plus those of `--layouts` (read and checked
    /// once per process).
    pub fn registry(&self) -> Result<crate::schema::Registry, PipelineError> {
        Ok(self.layouts.registry()?)
    }
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
    #[error(transparent)]
    Layouts(#[from] DeclaredError),
}

impl PipelineError {
    /// Whether a person must change the settings (exit code 2).
    pub fn is_config(&self) -> bool {
        match self {
            PipelineError::MaxPrice(_)
            | PipelineError::Relist
            | PipelineError::Retry
            | PipelineError::Breaker
            | PipelineError::Layouts(_) => true,
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
        self.read.parse_config(&self.rules)
    }
}

/// `--source-timezone`: an IANA zone name.
fn parse_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.trim().parse().map_err(|_| {
        format!("unknown time zone {s:?}: expected an IANA name like Europe/Berlin, America/New_York or UTC")
    })
}

/// `--max-event-age`, `--retention`, `prune --older-than`: a duration
/// above zero (90d, 12h, 30m, 3600s).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{s:?} is not a duration above zero: expected e.g. 90d, 12h, 30m or 3600s"
        )),
    }
}

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
            include: Include::new(&self.read.include)?,
            read_timeout: self.read.read_timeout(),
        })?;
        Ok(())
    }
}
