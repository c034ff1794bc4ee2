//! The loader loop behind `shopstream run`.
//!
//! Lists the input folder (woken early by OS file events), drops files the
//! ledger already has (same path, size and modification time), groups the
//! rest into batches of whole files and commits each batch through
//! [`crate::sink::batch`]. On SIGINT/SIGTERM it stops taking files, lets the
//! batch in flight commit, and returns. Database errors roll the batch back;
//! it is retried after a backoff, so nothing is lost or doubled.
//!
//! It never edits, moves or deletes input files.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::Client;

use super::parse::{parse_batch, ParseConfig};
use super::retry::{classify, Backoff, Class};
use crate::db::connect::Database;
use crate::shutdown::Shutdown;
use crate::sink::batch::{self, BatchReport, FileStatus, Producer};
use crate::source::discover::{self, Candidate, FolderWatcher};
use crate::source::layout::UnknownColumns;
use crate::validate::parse::{parse_decimal, Decimal};
use crate::validate::Rules;

/// `shopstream run` options.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Folder to load CSV files from (watched recursively). Hidden files,
    /// `_`-prefixed files and temporary suffixes (.tmp, .part, .crdownload,
    /// _COPYING_) are ignored until renamed.
    #[arg(long, short, env = "SHOPSTREAM_INPUT", default_value = "./incoming")]
    pub input: PathBuf,

    /// Load every file present, then exit 0 (backfills, cron, benchmarks).
    #[arg(long, env = "SHOPSTREAM_ONCE")]
    pub once: bool,

    /// Most files committed together in one transaction.
    #[arg(long, env = "SHOPSTREAM_BATCH_MAX_FILES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_max_files: u32,

    /// Most bytes of input per transaction (a larger single file still
    /// forms a batch on its own).
    #[arg(long, env = "SHOPSTREAM_BATCH_MAX_BYTES", default_value_t = 256 << 20)]
    pub batch_max_bytes: u64,

    /// Seconds between full listings of the input folder; OS file events
    /// trigger a listing sooner.
    #[arg(long, env = "SHOPSTREAM_RELIST_SECS", default_value_t = 2.0)]
    pub relist_secs: f64,

    /// Highest accepted price; above it a row fails `extreme_price`.
    #[arg(long, env = "SHOPSTREAM_MAX_PRICE", default_value = "10000")]
    pub max_price: String,

    /// Seconds an event_time may lie ahead of the clock before it fails
    /// `future_event_time`.
    #[arg(long, env = "SHOPSTREAM_FUTURE_TOLERANCE_SECS", default_value_t = 60)]
    pub future_tolerance_secs: u64,

    /// Events older than this many seconds when processed are flagged
    /// `is_late_arrival`.
    #[arg(long, env = "SHOPSTREAM_LATE_THRESHOLD_SECS", default_value_t = 300)]
    pub late_threshold_secs: u64,

    /// Longest accepted CSV record in bytes; a longer one rejects its file.
    #[arg(long, env = "SHOPSTREAM_MAX_LINE_BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,

    /// What to do with header columns the detected layout does not know:
    /// keep their values in `ecommerce_events.extra` (JSON), drop them, or
    /// reject the file. Their names are recorded in the ledger either way.
    /// Canonical column names (`quantity`, `category`, …) are always read.
    #[arg(long, env = "SHOPSTREAM_UNKNOWN_COLUMNS", value_enum, default_value_t = UnknownColumns::Keep)]
    pub unknown_columns: UnknownColumns,

    /// Seconds before the first retry after a failed batch or a lost
    /// database; each further retry waits --retry-factor times longer (±20%
    /// jitter), up to --retry-max-secs.
    #[arg(long, env = "SHOPSTREAM_RETRY_INITIAL_SECS", default_value_t = 1.0)]
    pub retry_initial_secs: f64,

    /// Growth of the wait between consecutive retries.
    #[arg(long, env = "SHOPSTREAM_RETRY_FACTOR", default_value_t = 2.0)]
    pub retry_factor: f64,

    /// Longest wait between retries, in seconds.
    #[arg(long, env = "SHOPSTREAM_RETRY_MAX_SECS", default_value_t = 60.0)]
    pub retry_max_secs: f64,
}

/// Highest `--max-price` the schema can hold with any quantity.
const MAX_PRICE_LIMIT_CENTS: i64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("--max-price {0:?} must be a decimal number from 0 to 1000000")]
    MaxPrice(String),
    #[error("--relist-secs must be above 0")]
    Relist,
    #[error(
        "--retry-initial-secs and --retry-max-secs must be above 0 and --retry-factor at least 1"
    )]
    Retry,
    #[error("cannot list the input folder {path}: {source}; create it or pass --input DIR")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] crate::db::connect::DbError),
    #[error("giving up after {attempts} failed attempts: {last}")]
    GaveUp { attempts: u32, last: String },
}

impl RunArgs {
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
            },
            max_record_bytes: self.max_line_bytes,
            unknown_columns: self.unknown_columns,
        })
    }
}

/// Totals over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub batches: u64,
    pub files_loaded: u64,
    pub files_duplicate: u64,
    pub files_rejected: u64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
}

impl RunSummary {
    fn add(&mut self, r: &BatchReport) {
        if r.batch_id.is_some() {
            self.batches += 1;
        }
        for f in &r.files {
            match f.status {
                FileStatus::Loaded => self.files_loaded += 1,
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

type FileKey = (PathBuf, u64, i64);

fn key(c: &Candidate) -> FileKey {
    (c.path.clone(), c.size, c.mtime_micros)
}

/// Logs one committed batch the way a person wants to read it.
pub fn log_batch(r: &BatchReport) {
    for f in &r.files {
        match &f.status {
            FileStatus::Rejected { reason } => {
                tracing::warn!(file = %f.path, "file rejected: {reason}")
            }
            FileStatus::Duplicate { of } => {
                tracing::info!(file = %f.path, "same content as {of}: nothing added")
            }
            FileStatus::Changed => {
                tracing::info!(file = %f.path, "file changed while being read; will retry")
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

/// Runs the loader until the folder is drained (`--once`) or shutdown.
/// `on_batch` sees every committed batch.
pub async fn run(
    args: &RunArgs,
    db: &Database,
    shutdown: &Shutdown,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<RunSummary, PipelineError> {
    let cfg = args.parse_config()?;
    let backoff = args.backoff()?;
    let mut rng = rand::rng();
    if !(args.relist_secs > 0.0 && args.relist_secs.is_finite()) {
        return Err(PipelineError::Relist);
    }
    let relist = Duration::from_secs_f64(args.relist_secs);
    let input = args.input.clone();
    discover::list(&input).map_err(|source| PipelineError::Input {
        path: input.display().to_string(),
        source,
    })?;
    let mut watcher = (!args.once).then(|| FolderWatcher::new(&input));
    let mut client: Option<Client> = None;
    let mut done: HashSet<FileKey> = HashSet::new();
    let mut summary = RunSummary::default();
    let mut failures: u32 = 0;

    tracing::info!(input = %input.display(), db = %db.describe(), once = args.once, "loader started");
    'outer: while !shutdown.is_triggered() {
        let attempt: Result<bool, (String, Class)> = async {
            if client.as_ref().is_none_or(Client::is_closed) {
                let c = db
                    .connect()
                    .await
                    .map_err(|e| (e.to_string(), Class::Transient))?;
                batch::prepare(&c).await.map_err(sink_failure)?;
                client = Some(c);
            }
            let Some(c) = client.as_mut() else {
                return Err(("no connection".to_string(), Class::Transient));
            };
            let listed = discover::list(&input).map_err(|e| {
                (
                    format!("cannot list {}: {e}", input.display()),
                    Class::Transient,
                )
            })?;
            let fresh: Vec<Candidate> = listed
                .into_iter()
                .filter(|f| !done.contains(&key(f)))
                .collect();
            let fresh = skip_ledgered(c, fresh, &mut done)
                .await
                .map_err(|e| (e.to_string(), classify(&e)))?;
            if fresh.is_empty() {
                return Ok(false);
            }
            let mut progressed = false;
            for group in batches(fresh, args.batch_max_files as usize, args.batch_max_bytes) {
                if shutdown.is_triggered() {
                    break;
                }
                let files = group.clone();
                let produce: Producer = Box::new(move |tx| {
                    parse_batch(&files, &cfg, &tx).map_err(|_| "the COPY was abandoned".to_string())
                });
                let report = batch::commit_batch(c, produce)
                    .await
                    .map_err(sink_failure)?;
                for f in &report.files {
                    if let Some(cand) = &f.candidate {
                        if !matches!(f.status, FileStatus::Changed) {
                            done.insert(key(cand));
                            progressed = true;
                        }
                    }
                }
                log_batch(&report);
                summary.add(&report);
                on_batch(&report);
            }
            Ok(progressed)
        }
        .await;

        match attempt {
            Ok(progressed) => {
                failures = 0;
                if progressed {
                    continue;
                }
                if args.once {
                    break 'outer;
                }
            }
            Err((e, class)) => {
                failures += 1;
                if args.once && failures >= 5 {
                    return Err(PipelineError::GaveUp {
                        attempts: failures,
                        last: e,
                    });
                }
                let wait = backoff.delay(failures, &mut rng);
                tracing::error!(
                    class = ?class,
                    attempt = failures,
                    "{e}; nothing was committed, retrying in {:.1}s",
                    wait.as_secs_f64()
                );
                // A fresh connection after a failed batch is cheap and safe.
                client = None;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    _ = shutdown.wait() => break 'outer,
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
    tracing::info!(
        "loader stopped: {} batches, {} files loaded, {} duplicate, {} rejected; rows {} read, {} loaded, {} duplicate, {} rejected",
        summary.batches,
        summary.files_loaded,
        summary.files_duplicate,
        summary.files_rejected,
        summary.rows_read,
        summary.rows_loaded,
        summary.rows_duplicate,
        summary.rows_rejected
    );
    Ok(summary)
}

/// The message and class of a failed batch.
fn sink_failure(e: batch::SinkError) -> (String, Class) {
    let class = match &e {
        batch::SinkError::Db(db) => classify(db),
        batch::SinkError::Parser(_) => Class::Fatal,
    };
    (e.to_string(), class)
}

/// Removes (and remembers) files whose path, size and mtime the ledger has.
async fn skip_ledgered(
    client: &Client,
    fresh: Vec<Candidate>,
    done: &mut HashSet<FileKey>,
) -> Result<Vec<Candidate>, tokio_postgres::Error> {
    if fresh.is_empty() {
        return Ok(fresh);
    }
    let paths: Vec<String> = fresh.iter().map(|c| c.path.display().to_string()).collect();
    let sizes: Vec<i64> = fresh.iter().map(|c| c.size as i64).collect();
    let mtimes: Vec<i64> = fresh.iter().map(|c| c.mtime_micros).collect();
    let rows = client
        .query(
            "SELECT c.i FROM unnest($1::text[], $2::int8[], $3::int8[]) WITH ORDINALITY AS c(path, size, mtime, i)
             WHERE EXISTS (SELECT 1 FROM ingested_files f
                           WHERE f.path = c.path AND f.size_bytes = c.size
                             AND f.modified_at = timestamptz 'epoch' + c.mtime * interval '1 microsecond')",
            &[&paths, &sizes, &mtimes],
        )
        .await?;
    let known: HashSet<usize> = rows
        .iter()
        .map(|r| r.get::<_, i64>(0) as usize - 1)
        .collect();
    let mut out = Vec::with_capacity(fresh.len() - known.len());
    for (i, c) in fresh.into_iter().enumerate() {
        if known.contains(&i) {
            done.insert(key(&c));
        } else {
            out.push(c);
        }
    }
    Ok(out)
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
