//! `shopstream generate`: realistic fake e-commerce events as CSV or JSON
//! Lines files, plain or compressed, the input `shopstream run` ingests in
//! tests and demos.
//!
//! This module owns the command's options ([`GenerateArgs`]), the run loop
//! ([`generate`]: bounded or continuous, pacing, shutdown) and the per-file
//! engine that ties the parts together:
//!
//! * `catalogue`: products, users and vocabularies, identical for every seed;
//! * `model`: sessions and the valid events they emit;
//! * `layout`: what each `--layout` can hold (event types, visitors, kinds
//!   of broken rows) and the values its own system draws;
//! * `anomaly`: which rows are broken, duplicated or late, and how;
//! * `writer`: row encoding per layout and atomic file publication;
//! * `output`: the files' bytes: CSV or JSON Lines, plain, gzip or zstd;
//! * `report`: the exact expected ingestion outcome ([`Report`]).
//!
//! With the same `--seed`, options and `--end-time`, bounded runs write
//! byte-identical file contents. The generator must never write into a file
//! a reader can already see, never reuse a file name, never report a row it
//! did not publish, and never read input (it only writes its output folder).

mod anomaly;
mod catalogue;
mod error;
mod layout;
#[cfg(test)]
mod layout_tests;
mod model;
mod output;
mod report;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

pub use anomaly::InvalidKind;
pub use error::GenerateError;
pub use report::{FileReport, Report};

use anomaly::{inject, Planner, RowPlan, Shares, LATE_MAX_MS, LATE_MIN_MS};
use catalogue::Catalogue;
use model::{Event, Model, Need, TypeCell};
use report::{FileTally, LoadedIds};
use shopstream_core::event::RuleCode;
use shopstream_core::schema::LayoutId;
use shopstream_core::shutdown::Shutdown;
use shopstream_core::source::format::{Compression, Format, RecordFormat};
use writer::{OutputDir, PendingFile, RowEncoder};

pub const DEFAULT_OUTPUT: &str = "./incoming";
pub const DEFAULT_FILES: u64 = 10;
pub const DEFAULT_EVENTS_PER_FILE: u64 = 1000;
pub const DEFAULT_SPAN_SECS: u64 = 60;
pub const DEFAULT_LATE_SHARE: f64 = 0.02;
pub const DEFAULT_INVALID_SHARE: f64 = 0.02;
pub const DEFAULT_DUPLICATE_SHARE: f64 = 0.01;

/// How far in the future the ingester still accepts an event time.
const FUTURE_TOLERANCE_MS: i64 = 60_000;
/// At most this many earlier valid rows are kept as duplicate candidates.
const DUPLICATE_POOL: usize = 4096;
/// Longest accepted file interval, duration or pacing horizon.
const MAX_SECS: f64 = 366.0 * 24.0 * 3600.0;
/// Seed 000: how often a fresh event whose id clashes with a loaded row of
/// another type is redrawn before it is written as a duplicate anyway.
const MAX_REDRAWS: u32 = 64;

/// Options of `shopstream generate`.
///
/// Bounded mode (the default, or whenever `--files` is given) writes
/// `--files` × `--events-per-file` events on a simulated clock and is
/// deterministic. Continuous mode (`--rate` without `--files`) writes one
/// file every `events-per-file / rate` seconds, stamped with the wall clock,
/// until stopped.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct GenerateArgs {
    /// Column layout of the files: header names and order as the schema
    /// registry defines them. v1, v2 and v3 (default, 18 columns) are
    /// shopstream's own versions with its own values. The other layouts
    /// (seed000–seed004, other pipelines' files; `shopstream schema list`)
    /// write what those pipelines' own generators write, quirks included
    /// (docs/generate.md). Seed layouts other than seed003 hold only views and
    /// purchases from signed-in users. Broken rows (--invalid-kinds) are
    /// limited to the kinds the layout can express.
    #[arg(
        long,
        env = "SHOPSTREAM_LAYOUT",
        value_enum,
        default_value_t = LayoutId::V3
    )]
    pub layout: LayoutId,

    /// Folder the files are published into (created if missing). Point
    /// `shopstream run` at it. Files appear atomically; in-progress files are
    /// hidden (`.events_….csv.tmp`).
    #[arg(short = 'o', long, env = "SHOPSTREAM_OUTPUT", default_value = DEFAULT_OUTPUT)]
    pub output: PathBuf,

    /// How the files hold their rows: csv (a header row, then one row per
    /// event) or jsonl (JSON Lines: one object per event, keyed by the
    /// layout's column names; empty values null, numbers in integer and
    /// decimal columns as JSON numbers). The same seed writes the same
    /// events in either.
    #[arg(long, env = "SHOPSTREAM_GENERATE_FORMAT", value_enum, default_value_t = RecordFormat::Csv)]
    pub format: RecordFormat,

    /// How the files are stored: none, gz (gzip) or zst (zstd); their
    /// names end accordingly (`.csv.gz`, `.jsonl.zst`).
    #[arg(long, env = "SHOPSTREAM_GENERATE_COMPRESS", value_enum, default_value_t = Compression::None)]
    pub compress: Compression,

    /// Seed of the event stream. The same seed, options and --end-time give
    /// byte-identical file contents. Without it every run draws a fresh
    /// random seed (printed in the report), so two runs never repeat
    /// event_ids. The product catalogue does not depend on it, and neither
    /// do the file names (they carry a random run id).
    #[arg(long, env = "SHOPSTREAM_SEED")]
    pub seed: Option<u64>,

    /// Number of files to write, then stop (bounded mode). Without it,
    /// --rate runs continuously; with neither, 10 files are written.
    #[arg(long, env = "SHOPSTREAM_FILES")]
    pub files: Option<u64>,

    /// Data rows per file (plus one header row).
    #[arg(long, env = "SHOPSTREAM_EVENTS_PER_FILE", default_value_t = DEFAULT_EVENTS_PER_FILE)]
    pub events_per_file: u64,

    /// Bounded mode: event times are spread evenly over this many seconds,
    /// ending at --end-time.
    #[arg(long, env = "SHOPSTREAM_SPAN_SECS", default_value_t = DEFAULT_SPAN_SECS)]
    pub span_secs: u64,

    /// Bounded mode: time of the last event, RFC 3339 (e.g.
    /// 2026-11-21T10:00:00Z). Defaults to now; must not be in the future.
    /// Fix it to reproduce a run byte for byte.
    #[arg(long, env = "SHOPSTREAM_END_TIME", value_parser = parse_end_time)]
    pub end_time: Option<DateTime<Utc>>,

    /// Events per second. Without --files: continuous mode, event times are
    /// the wall clock and a file appears every events-per-file / rate
    /// seconds. With --files: the bounded run is paced at this rate.
    #[arg(long, env = "SHOPSTREAM_RATE", value_name = "EVENTS_PER_SEC")]
    pub rate: Option<f64>,

    /// Stop by itself after this many seconds, as on Ctrl-C: a bounded run
    /// stops between files; a continuous run publishes the events already
    /// due in the file in progress, then stops.
    #[arg(long, env = "SHOPSTREAM_DURATION_SECS")]
    pub duration_secs: Option<f64>,

    /// Fraction of valid events written with an event time 6 to 60 minutes
    /// in the past (late arrivals; they still load).
    #[arg(long, env = "SHOPSTREAM_LATE_SHARE", default_value_t = DEFAULT_LATE_SHARE)]
    pub late_share: f64,

    /// Fraction of rows broken on purpose, each failing exactly one
    /// validation rule, spread evenly over --invalid-kinds.
    #[arg(long, env = "SHOPSTREAM_INVALID_SHARE", default_value_t = DEFAULT_INVALID_SHARE)]
    pub invalid_share: f64,

    /// Comma-separated kinds of broken rows. Default: every kind the
    /// --layout can express (all seven, except in seed002, which has no
    /// event_id or price column). Naming a kind the layout cannot express is
    /// an error.
    #[arg(
        long,
        env = "SHOPSTREAM_INVALID_KINDS",
        value_enum,
        value_delimiter = ','
    )]
    pub invalid_kinds: Option<Vec<InvalidKind>>,

    /// Fraction of rows that are exact copies (same event_id, same line) of
    /// valid rows written in an earlier file of this run.
    #[arg(long, env = "SHOPSTREAM_DUPLICATE_SHARE", default_value_t = DEFAULT_DUPLICATE_SHARE)]
    pub duplicate_share: f64,

    /// Also write the run's report as JSON to this path (keep it outside the
    /// watched folder).
    #[arg(long, env = "SHOPSTREAM_REPORT_JSON", value_name = "PATH")]
    pub report_json: Option<PathBuf>,
}

impl Default for GenerateArgs {
    /// The same values as the command line's defaults (environment ignored).
    fn default() -> Self {
        GenerateArgs {
            layout: LayoutId::V3,
            output: PathBuf::from(DEFAULT_OUTPUT),
            format: RecordFormat::Csv,
            compress: Compression::None,
            seed: None,
            files: None,
            events_per_file: DEFAULT_EVENTS_PER_FILE,
            span_secs: DEFAULT_SPAN_SECS,
            end_time: None,
            rate: None,
            duration_secs: None,
            late_share: DEFAULT_LATE_SHARE,
            invalid_share: DEFAULT_INVALID_SHARE,
            invalid_kinds: None,
            duplicate_share: DEFAULT_DUPLICATE_SHARE,
            report_json: None,
        }
    }
}

fn parse_end_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-11-21T10:00:00Z: {e}"))
}

/// Writes event files as `args` say until done, `--duration-secs` elapsed or
/// `shutdown` fired, and returns what was written. Files already published
/// stay published when an error ends the run.
pub async fn generate(args: &GenerateArgs, shutdown: &Shutdown) -> Result<Report, GenerateError> {
    let now = Utc::now();
    let plan = RunPlan::new(args, now)?;
    let layout = args.layout;
    let kinds = layout::invalid_kinds(layout, args.invalid_kinds.as_deref())?;
    let planner = Planner::new(plan.shares, &kinds, plan.duplicate_boost())?;
    let run_id = run_id()?;
    let seed = match args.seed {
        Some(s) => s,
        None => random_seed()?,
    };
    let format = Format {
        records: args.format,
        compression: args.compress,
    };
    let out = OutputDir::prepare(&args.output, now, &run_id, layout, format)?;
    tracing::info!(
        output = %args.output.display(),
        layout = %layout,
        run_id = %run_id,
        seed,
        mode = plan.describe(),
        "generating event files"
    );

    let catalogue = Catalogue::standard();
    let mut engine = Engine {
        rng: ChaCha8Rng::seed_from_u64(seed),
        catalogue,
        layout,
        model: Model::with_mix(
            catalogue,
            plan.events_per_sec(),
            layout::mix(layout),
            layout::anonymous_allowed(layout),
        ),
        planner,
        encoder: RowEncoder::new(layout),
        pool: Vec::new(),
        sample_prob: (DUPLICATE_POOL as f64 / plan.per_file as f64).min(1.0),
        future_floor_ms: match plan.mode {
            Mode::Bounded { end_ms, .. } => Some(end_ms),
            Mode::Continuous { .. } => None,
        },
        loaded_ids: layout::has_content_ids(layout).then(LoadedIds::default),
        out,
        next_seq: 1,
        report: Report::new(run_id, seed, layout),
    };

    let started = Instant::now();
    let stop_at = plan.duration.and_then(|d| started.checked_add(d));
    let per_file = plan.per_file;
    match plan.mode {
        Mode::Bounded {
            files,
            end_ms,
            span_ms,
            pace,
        } => {
            let total = files * per_file;
            let bar =
                shopstream_core::observe::progress::Progress::new(total, "events", "generate");
            for k in 0..files {
                if shutdown.is_triggered() || stop_at.is_some_and(|s| Instant::now() >= s) {
                    break;
                }
                if let Some(rate) = pace {
                    let due = after(started, ((k + 1) * per_file) as f64 / rate);
                    let stopped = tokio::select! {
                        _ = shutdown.wait() => true,
                        _ = sleep_until(earliest(stop_at, due)) => {
                            stop_at.is_some_and(|s| due.is_none_or(|d| s < d))
                        }
                    };
                    if stopped {
                        break;
                    }
                }
                let clock = Clock::Spread {
                    first_ms: end_ms - span_ms,
                    span_ms,
                    total,
                    offset: k * per_file,
                };
                engine = write_in_background(engine, per_file, clock).await?;
                bar.inc(per_file);
            }
            bar.finish();
        }
        Mode::Continuous { rate } => {
            let spacing_ms = 1000.0 / rate;
            for k in 0u64.. {
                let start = after(started, (k * per_file) as f64 / rate);
                let due = after(started, ((k + 1) * per_file) as f64 / rate);
                let deadline = earliest(stop_at, due);
                let (until, last) = tokio::select! {
                    _ = shutdown.wait() => (Some(Instant::now()), true),
                    _ = sleep_until(deadline) => {
                        (deadline, stop_at.is_some_and(|s| due.is_none_or(|d| s < d)))
                    }
                };
                // Rows whose time has come: all of them unless stopped early.
                let rows = match (until, due, start) {
                    (Some(u), Some(d), _) if u >= d => per_file,
                    (Some(u), _, Some(s)) => {
                        let elapsed = u.saturating_duration_since(s).as_secs_f64();
                        ((elapsed * rate).floor() as u64).min(per_file)
                    }
                    _ => 0,
                };
                if rows > 0 {
                    // Stamped from the wall clock now, so no row is ever
                    // ahead of it, even if the clock was adjusted meanwhile.
                    let clock = Clock::Interval {
                        end_ms: Utc::now().timestamp_millis(),
                        spacing_ms,
                        rows,
                    };
                    engine = write_in_background(engine, rows, clock).await?;
                }
                if last {
                    break;
                }
            }
        }
    }
    if shutdown.is_triggered() {
        tracing::info!("generator stopped on request");
    }
    Ok(engine.report)
}

/// `started + secs`, or `None` if that is beyond any clock.
fn after(started: Instant, secs: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| started.checked_add(d))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A seed from OS randomness, for runs without --seed.
fn random_seed() -> Result<u64, GenerateError> {
    use rand::TryRngCore;
    rand::rngs::OsRng
        .try_next_u64()
        .map_err(|e| GenerateError::OsRandom(e.to_string()))
}

/// 8 hex digits from OS randomness: unique per run, independent of --seed.
fn run_id() -> Result<String, GenerateError> {
    use rand::TryRngCore;
    let v = rand::rngs::OsRng
        .try_next_u32()
        .map_err(|e| GenerateError::OsRandom(e.to_string()))?;
    Ok(format!("{v:08x}"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Bounded {
        files: u64,
        end_ms: i64,
        span_ms: i64,
        pace: Option<f64>,
    },
    Continuous {
        rate: f64,
    },
}

/// The validated options of one run.
#[derive(Debug, Clone, PartialEq)]
struct RunPlan {
    mode: Mode,
    per_file: u64,
    duration: Option<Duration>,
    shares: Shares,
}

impl RunPlan {
    fn new(args: &GenerateArgs, now: DateTime<Utc>) -> Result<RunPlan, GenerateError> {
        if args.events_per_file == 0 {
            return Err(GenerateError::option(
                "--events-per-file",
                "must be at least 1",
            ));
        }
        if let Some(rate) = args.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(GenerateError::option(
                    "--rate",
                    format!("{rate} is not a positive number"),
                ));
            }
            if args.events_per_file as f64 / rate > MAX_SECS {
                return Err(GenerateError::option(
                    "--rate",
                    format!(
                        "{rate} events/s means one file of {} events per {:.0} s, over a year",
                        args.events_per_file,
                        args.events_per_file as f64 / rate
                    ),
                ));
            }
        }
        let duration = match args.duration_secs {
            None => None,
            Some(d) if d.is_finite() && d > 0.0 && d <= MAX_SECS => {
                Duration::try_from_secs_f64(d).ok()
            }
            Some(d) => {
                return Err(GenerateError::option(
                    "--duration-secs",
                    format!("{d} is not a number of seconds between 0 and a year"),
                ))
            }
        };
        let shares = Shares {
            late: args.late_share,
            invalid: args.invalid_share,
            duplicate: args.duplicate_share,
        };
        shares.validate()?;

        let mode = match (args.files, args.rate) {
            (None, Some(rate)) => {
                if let Some(t) = args.end_time {
                    return Err(GenerateError::option(
                        "--end-time",
                        format!(
                            "{t} only applies to bounded runs (--files); continuous runs \
                             stamp events with the wall clock"
                        ),
                    ));
                }
                Mode::Continuous { rate }
            }
            (files, pace) => {
                let files = files.unwrap_or(DEFAULT_FILES);
                if files == 0 {
                    return Err(GenerateError::option("--files", "must be at least 1"));
                }
                if files.checked_mul(args.events_per_file).is_none() {
                    return Err(GenerateError::option(
                        "--files",
                        "files × events-per-file is too large",
                    ));
                }
                let end = args.end_time.unwrap_or(now);
                let end_ms = end.timestamp_millis();
                if end_ms > now.timestamp_millis() + FUTURE_TOLERANCE_MS {
                    return Err(GenerateError::option(
                        "--end-time",
                        format!(
                            "{} is in the future (now is {}); its events would be \
                             rejected as future_event_time",
                            end.to_rfc3339(),
                            now.to_rfc3339()
                        ),
                    ));
                }
                let span_ms = args
                    .span_secs
                    .checked_mul(1000)
                    .and_then(|ms| i64::try_from(ms).ok())
                    .filter(|ms| end_ms - ms - LATE_MAX_MS >= 0)
                    .ok_or_else(|| {
                        GenerateError::option(
                            "--span-secs",
                            format!(
                                "{} s before {} reaches back before 1970",
                                args.span_secs,
                                end.to_rfc3339()
                            ),
                        )
                    })?;
                let day_ms = 24 * 3600 * 1000;
                if args.invalid_share > 0.0
                    && args
                        .invalid_kinds
                        .as_ref()
                        .is_none_or(|k| k.contains(&InvalidKind::FutureTimestamp))
                    && end_ms + day_ms < now.timestamp_millis()
                {
                    tracing::warn!(
                        end_time = %end.to_rfc3339(),
                        "--end-time is more than a day ago: future_timestamp rows (1 to 30 days \
                         after it) may no longer be in the future when ingested"
                    );
                }
                Mode::Bounded {
                    files,
                    end_ms,
                    span_ms,
                    pace,
                }
            }
        };
        Ok(RunPlan {
            mode,
            per_file: args.events_per_file,
            duration,
            shares,
        })
    }

    /// The event rate the session model should imitate.
    fn events_per_sec(&self) -> f64 {
        match self.mode {
            Mode::Bounded { files, span_ms, .. } => {
                (files * self.per_file) as f64 / (span_ms.max(1000) as f64 / 1000.0)
            }
            Mode::Continuous { rate } => rate,
        }
    }

    /// The first file cannot hold duplicates; in bounded runs the later files
    /// make up for it so the overall share matches --duplicate-share.
    fn duplicate_boost(&self) -> f64 {
        match self.mode {
            Mode::Bounded { files, .. } if files > 1 => files as f64 / (files - 1) as f64,
            _ => 1.0,
        }
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Bounded {
                files, pace: None, ..
            } => format!("bounded: {files} files × {}", self.per_file),
            Mode::Bounded {
                files,
                pace: Some(r),
                ..
            } => format!("bounded: {files} files × {} at {r} events/s", self.per_file),
            Mode::Continuous { rate } => {
                format!("continuous: {rate} events/s, {} per file", self.per_file)
            }
        }
    }
}

/// The event clock of one file's rows.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Bounded: event `offset + j` of `total`, evenly spread over the span
    /// so that the last one lands on `first_ms + span_ms` (the end time).
    Spread {
        first_ms: i64,
        span_ms: i64,
        total: u64,
        offset: u64,
    },
    /// Continuous: `rows` rows `spacing_ms` apart, the last at `end_ms`.
    Interval {
        end_ms: i64,
        spacing_ms: f64,
        rows: u64,
    },
}

impl Clock {
    fn at(&self, j: u64) -> i64 {
        match *self {
            Clock::Spread {
                first_ms,
                span_ms,
                total,
                offset,
            } => {
                let g = i128::from(offset + j + 1);
                first_ms + (i128::from(span_ms) * g / i128::from(total.max(1))) as i64
            }
            Clock::Interval {
                end_ms,
                spacing_ms,
                rows,
            } => end_ms - (rows.saturating_sub(j + 1) as f64 * spacing_ms) as i64,
        }
    }
}

/// One row of a file, drawn but not yet encoded.
struct Row {
    event: Event,
    kind: RowKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// A new valid event, back-dated if `late`.
    Fresh { late: bool },
    /// A new event broken in one way.
    Invalid(InvalidKind),
    /// A copy of a valid row of an earlier file.
    Copy { late: bool },
}

/// A valid, loaded row of a published file: a duplicate candidate.
#[derive(Debug, Clone)]
struct PoolRow {
    event: Event,
    late: bool,
}

/// The bookkeeping of the file being written.
#[derive(Default)]
struct FileState {
    tally: FileTally,
    /// Fresh loaded rows picked as future duplicate candidates.
    sampled: Vec<PoolRow>,
    /// Seed 002: how often each row (its cells joined) occurred so far.
    occurrences: HashMap<Vec<u8>, u32>,
}

/// All state that carries from one file to the next.
struct Engine {
    rng: ChaCha8Rng,
    catalogue: &'static Catalogue,
    layout: LayoutId,
    model: Model,
    planner: Planner,
    encoder: RowEncoder,
    /// Valid rows of already published files: the duplicate candidates.
    pool: Vec<PoolRow>,
    sample_prob: f64,
    /// Future timestamps lie after this (bounded) or the event's clock time.
    future_floor_ms: Option<i64>,
    /// For layouts whose ids derive from row content: the ids loaded so
    /// far (recent ones), to tell loaded rows from duplicates.
    loaded_ids: Option<LoadedIds>,
    out: OutputDir,
    next_seq: u64,
    report: Report,
}

impl Engine {
    /// Writes and publishes the next file with `rows` data rows.
    fn write_file(&mut self, rows: u64, clock: Clock) -> Result<(), GenerateError> {
        if let Some(ids) = &mut self.loaded_ids {
            // No fresh row of this file is older than this; copies older
            // than what the ledger remembers are dropped with the ids.
            ids.forget_before(clock.at(0) - LATE_MAX_MS - 1000);
            let floor = ids.floor_ms();
            self.pool
                .retain(|r| r.event.millis().is_some_and(|ms| ms >= floor));
        }
        let mut file = self.out.begin(self.next_seq)?;
        let mut state = FileState::default();
        if layout::needs_whole_file(self.layout) {
            let drawn: Vec<Row> = (0..rows).map(|j| self.draw(clock.at(j))).collect();
            let float_user_ids = drawn.iter().any(|r| r.event.user.is_none());
            for row in &drawn {
                self.emit(&mut file, &mut state, row, float_user_ids)?;
            }
        } else {
            for j in 0..rows {
                let row = self.draw(clock.at(j));
                self.emit(&mut file, &mut state, &row, false)?;
            }
        }
        let name = file.commit()?;
        let tally = state.tally;
        tracing::info!(
            file = %name,
            rows = tally.rows,
            invalid = tally.invalid(),
            duplicates = tally.duplicates,
            "wrote event file"
        );
        self.report.add_file(name, &tally);
        self.next_seq += 1;
        // Only now may this file's rows be copied: they are in an earlier file.
        self.pool.extend(state.sampled);
        while self.pool.len() > DUPLICATE_POOL {
            let i = self.rng.random_range(0..self.pool.len());
            self.pool.swap_remove(i);
        }
        Ok(())
    }

    /// Decides and draws the row at clock time `clock_ms`.
    fn draw(&mut self, clock_ms: i64) -> Row {
        match self.planner.plan(&mut self.rng, !self.pool.is_empty()) {
            RowPlan::Duplicate => {
                let i = self.rng.random_range(0..self.pool.len());
                let copy = &self.pool[i];
                Row {
                    event: copy.event.clone(),
                    kind: RowKind::Copy { late: copy.late },
                }
            }
            RowPlan::Invalid(kind) => {
                let rng = &mut self.rng;
                let mut event = self.model.next_event(rng, clock_ms, kind.need(), None);
                layout::dress(self.layout, &mut event, rng);
                let floor = self.future_floor_ms.unwrap_or(clock_ms);
                inject(kind, &mut event, rng, self.catalogue, floor);
                Row {
                    event,
                    kind: RowKind::Invalid(kind),
                }
            }
            RowPlan::Fresh { late } => {
                let rng = &mut self.rng;
                let shift = late.then(|| rng.random_range(LATE_MIN_MS..=LATE_MAX_MS));
                let mut attempt = 0;
                loop {
                    let rng = &mut self.rng;
                    let mut event = self.model.next_event(rng, clock_ms, Need::Any, shift);
                    layout::dress(self.layout, &mut event, rng);
                    attempt += 1;
                    if attempt >= MAX_REDRAWS || !self.clashes(&event, late) {
                        break Row {
                            event,
                            kind: RowKind::Fresh { late },
                        };
                    }
                }
            }
        }
    }

    /// Seed 000: whether `event` would get the id of an already loaded row
    /// of another type or lateness. (A clash of the same type and lateness
    /// is a byte-identical row and simply counts as a duplicate, as in the
    /// seed system; a different one is redrawn so that `by_type` and `late`
    /// do not depend on which of the two the loader keeps.)
    fn clashes(&mut self, event: &Event, late: bool) -> bool {
        let (LayoutId::Seed000, Some(ids), TypeCell::Known(t)) =
            (self.layout, &self.loaded_ids, event.event_type)
        else {
            return false;
        };
        let rec = self.encoder.encode(event, self.catalogue, false);
        layout::content_id(self.layout, rec, 1)
            .and_then(|id| ids.get(&id))
            .is_some_and(|seen| seen != (t, late))
    }

    /// Encodes and writes `row`, and counts what the loader will make of it.
    fn emit(
        &mut self,
        file: &mut PendingFile,
        state: &mut FileState,
        row: &Row,
        float_user_ids: bool,
    ) -> Result<(), GenerateError> {
        let rec = self
            .encoder
            .encode(&row.event, self.catalogue, float_user_ids);
        file.write(rec)?;
        let occurrence = if self.layout == LayoutId::Seed002 {
            let mut key = Vec::with_capacity(rec.as_slice().len() + rec.len());
            for cell in rec.iter() {
                key.extend_from_slice(cell);
                key.push(0x1f);
            }
            let n = state.occurrences.entry(key).or_insert(0);
            *n += 1;
            *n
        } else {
            1
        };
        let late = match row.kind {
            RowKind::Invalid(kind) => {
                state.tally.rejected(kind.expected_rule());
                return Ok(());
            }
            RowKind::Fresh { late } | RowKind::Copy { late } => late,
        };
        let fresh = matches!(row.kind, RowKind::Fresh { .. });
        let t = match row.event.event_type {
            TypeCell::Known(t) => t,
            TypeCell::Unknown(_) => {
                state.tally.rejected(RuleCode::InvalidEventType);
                return Ok(());
            }
        };
        let loaded = match &mut self.loaded_ids {
            // Random UUIDs: new rows load, copies are duplicates.
            None => fresh,
            Some(ids) => match (
                layout::content_id(self.layout, rec, occurrence),
                row.event.millis(),
            ) {
                (Some(id), Some(ms)) => ids.insert(id, ms, t, late),
                _ => fresh,
            },
        };
        if !loaded {
            state.tally.duplicate();
            return Ok(());
        }
        state.tally.loaded(t, late);
        if fresh && (self.sample_prob >= 1.0 || self.rng.random_bool(self.sample_prob)) {
            state.sampled.push(PoolRow {
                event: row.event.clone(),
                late,
            });
        }
        Ok(())
    }
}

/// Runs [`Engine::write_file`] on the blocking pool so file I/O never stalls
/// the async runtime (or the shutdown signal).
async fn write_in_background(
    mut engine: Engine,
    rows: u64,
    clock: Clock,
) -> Result<Engine, GenerateError> {
    let dir = engine.out.path().to_path_buf();
    tokio::task::spawn_blocking(move || engine.write_file(rows, clock).map(|()| engine))
        .await
        .map_err(|e| GenerateError::Task {
            path: dir,
            message: e.to_string(),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GenerateArgs,
    }

    fn at(s: &str) -> DateTime<Utc> {
        parse_end_time(s).unwrap()
    }

    #[test]
    fn cli_defaults_match_default_impl() {
        let cli = Cli::try_parse_from(["generate"]).unwrap();
        // The environment may set SHOPSTREAM_* in a developer shell; only
        // compare when it does not.
        if std::env::vars().all(|(k, _)| !k.starts_with("SHOPSTREAM_")) {
            assert_eq!(cli.args, GenerateArgs::default());
        }
        let cli = Cli::try_parse_from([
            "generate",
            "-o",
            "/tmp/x",
            "--invalid-kinds",
            "missing_user,bad_timestamp",
            "--end-time",
            "2026-11-21T10:00:00Z",
            "--rate",
            "5",
        ])
        .unwrap();
        assert_eq!(
            cli.args.invalid_kinds,
            Some(vec![InvalidKind::MissingUser, InvalidKind::BadTimestamp])
        );
        assert_eq!(cli.args.layout, LayoutId::V3);
        assert_eq!(cli.args.end_time, Some(at("2026-11-21T10:00:00Z")));
        assert!(Cli::try_parse_from(["generate", "--invalid-kinds", "nope"]).is_err());
        assert!(Cli::try_parse_from(["generate", "--end-time", "yesterday"]).is_err());
    }

    #[test]
    fn options_are_validated() {
        let now = at("2026-11-21T10:00:00Z");
        let ok = GenerateArgs::default();
        assert!(matches!(
            RunPlan::new(&ok, now).unwrap().mode,
            Mode::Bounded { files: 10, .. }
        ));
        let cont = GenerateArgs {
            rate: Some(10.0),
            ..GenerateArgs::default()
        };
        assert!(matches!(
            RunPlan::new(&cont, now).unwrap().mode,
            Mode::Continuous { .. }
        ));
        let bad = [
            (
                GenerateArgs {
                    invalid_share: 1.5,
                    ..ok.clone()
                },
                "--invalid-share",
            ),
            (
                GenerateArgs {
                    late_share: -0.1,
                    ..ok.clone()
                },
                "--late-share",
            ),
            (
                GenerateArgs {
                    duplicate_share: f64::NAN,
                    ..ok.clone()
                },
                "--duplicate-share",
            ),
            (
                GenerateArgs {
                    events_per_file: 0,
                    ..ok.clone()
                },
                "--events-per-file",
            ),
            (
                GenerateArgs {
                    files: Some(0),
                    ..ok.clone()
                },
                "--files",
            ),
            (
                GenerateArgs {
                    rate: Some(0.0),
                    ..ok.clone()
                },
                "--rate",
            ),
            (
                GenerateArgs {
                    duration_secs: Some(-1.0),
                    ..ok.clone()
                },
                "--duration-secs",
            ),
            (
                GenerateArgs {
                    end_time: Some(at("2026-11-22T10:00:00Z")),
                    ..ok.clone()
                },
                "--end-time",
            ),
            (
                GenerateArgs {
                    end_time: Some(now),
                    ..cont.clone()
                },
                "--end-time",
            ),
            (
                GenerateArgs {
                    span_secs: u64::MAX,
                    ..ok.clone()
                },
                "--span-secs",
            ),
        ];
        for (args, option) in bad {
            let err = RunPlan::new(&args, now).unwrap_err().to_string();
            assert!(err.contains(option), "{option}: {err}");
        }
    }

    #[test]
    fn spread_clock_ends_at_end_time() {
        let c = |offset| Clock::Spread {
            first_ms: 1_000_000 - 60_000,
            span_ms: 60_000,
            total: 100,
            offset,
        };
        assert_eq!(c(0).at(99), 1_000_000);
        assert_eq!(c(90).at(9), 1_000_000);
        assert_eq!(c(0).at(0), 1_000_000 - 60_000 + 600);
        let mut prev = i64::MIN;
        for j in 0..100 {
            assert!(c(0).at(j) > prev);
            prev = c(0).at(j);
        }
    }

    #[test]
    fn interval_clock_ends_now_and_never_passes_it() {
        let c = Clock::Interval {
            end_ms: 5_000_000,
            spacing_ms: 2.5,
            rows: 5,
        };
        let times: Vec<i64> = (0..5).map(|j| c.at(j)).collect();
        assert_eq!(
            times,
            vec![4_999_990, 4_999_993, 4_999_995, 4_999_998, 5_000_000]
        );
    }

    #[test]
    fn run_ids_come_from_the_os() {
        let a = run_id().unwrap();
        let b = run_id().unwrap();
        assert_eq!(a.len(), 8);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
