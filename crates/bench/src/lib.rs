//! `shopstream bench`: measures shopstream against PostgreSQL's own COPY on
//! this machine and this database, reproducibly, in one run, on data whose
//! shape shopstream's own generator does not choose.
//!
//! For each **shape** ([`shapes::Shape`]: no duplicates; 1% and 5% of rows
//! reusing an event id from the same or the previous file (*near*), from
//! anywhere earlier (*far*), or from events the table held before the run
//! (*before*, against a table already holding `--history-events`); whole
//! files re-sent under another name) it deals a dataset from generated pools
//! (valid events, rows broken on purpose: 2%), then measures, each time in a
//! fresh database on the same server cloned from the same starting point:
//!
//! * **`run --once`** over the raw files, end to end, as a child process
//!   (wall time from spawn to exit, peak resident memory), checked against
//!   the dataset's exact account (rows read, rows loaded);
//! * **the baseline**: the clean rows `run` loaded, in the dataset's order,
//!   COPYed into `ecommerce_events` of a fresh clone (the same table as
//!   `LIKE ecommerce_events INCLUDING ALL`: it has no trigger or foreign key;
//!   for *before* it holds the same history), after a `CHECKPOINT`, two
//!   ways: server-side `COPY … FROM 'file' (FORMAT csv)` (needs a superuser
//!   or `pg_read_server_files`) and `COPY … FROM STDIN (FORMAT binary)` from
//!   the client. The faster one is the baseline.
//!
//! Both sides take the same statistic, the minimum of `--repeat` runs, and
//! each repeat measures the run and then both baselines, so a slow spell of
//! a shared machine falls on both sides; the ratio is baseline ÷ run (≥ 1:
//! shopstream is at least as fast).
//!
//! Then, once: **start-up** (process start to its first file committed),
//! **latency** (a `run` watching a folder while files are renamed into it at
//! a steady event rate; per file, the time from its rename to the commit of
//! its ledger row, which a trigger the bench adds to the ledger announces
//! with `NOTIFY` to the bench's listening connection: no polling beside
//! the loader) and **memory on one big file** (default 2 GiB).
//!
//! It prints a table and writes the figures as JSON. It never asserts a
//! target: it reports what it measured, and BENCHMARKS.md keeps the record.
//! It only drives the real binary (`run` as a child process) and talks to
//! the database; it changes nothing in shopstream's behaviour.

pub mod measure;
pub mod shapes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio::io::AsyncReadExt;

use measure::{median, percentile, Exit, Machine, Measured};
use shapes::{Composed, Pools, Shape};
use shopstream_core::db::connect::{Database, DbError};
use shopstream_core::db::migrate;
use shopstream_core::shutdown::Shutdown;
use shopstream_generate::{generate, GenerateArgs, GenerateError};

/// Options of `shopstream bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Rows in each shape's dataset (2% of them broken on purpose).
    #[arg(long, env = "SHOPSTREAM_BENCH_EVENTS", default_value_t = 1_000_000)]
    pub events: u64,

    /// Files each dataset is split into.
    #[arg(long, env = "SHOPSTREAM_BENCH_FILES", default_value_t = 100)]
    pub files: u64,

    /// Dataset shapes to measure, comma separated: plain (no duplicates);
    /// near-P, far-P, before-P (P% of rows reuse an event id from the same
    /// or previous file, from anywhere earlier, or from the events the table
    /// held before the run); resent (one file in twenty delivered again
    /// under another name).
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_SHAPES",
        value_delimiter = ',',
        default_value = "plain,near-1,near-5,far-1,far-5,before-1,before-5,resent"
    )]
    pub shapes: Vec<Shape>,

    /// Events the table holds before the run in the before-P shapes.
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_HISTORY_EVENTS",
        default_value_t = 3_000_000
    )]
    pub history_events: u64,

    /// Generator seed (the same seed gives the same dataset).
    #[arg(long, env = "SHOPSTREAM_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,

    /// How many times each shape's run and baselines (and the start-up)
    /// are measured, back to back; the table shows the minimum of each
    /// side, the JSON every run. One sample of a shared machine is mostly
    /// its noise.
    #[arg(long, env = "SHOPSTREAM_BENCH_REPEAT", default_value_t = 3)]
    pub repeat: u32,

    /// Events per second fed to the watching loader (latency step).
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_LATENCY_RATE",
        default_value_t = 20_000.0
    )]
    pub latency_rate: f64,

    /// Files fed in the latency step (percentiles are over these).
    #[arg(long, env = "SHOPSTREAM_BENCH_LATENCY_FILES", default_value_t = 300)]
    pub latency_files: u64,

    /// Events per file in the latency step.
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_LATENCY_FILE_EVENTS",
        default_value_t = 1_000
    )]
    pub latency_file_events: u64,

    /// Size of the single big file (big step): MiB, or a size with a unit
    /// (512MiB, 2G; 1024-based); 0 skips it.
    #[arg(long, env = "SHOPSTREAM_BENCH_BIG_FILE_MIB", default_value = "2048", value_name = "MIB|SIZE", value_parser = parse_mib)]
    pub big_file_mib: u64,

    /// Steps to run, comma separated: run (`run --once` on every shape),
    /// copy (the COPY baselines of every shape; needs run, it copies the
    /// rows run loaded), startup, latency, big.
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_STEPS",
        value_delimiter = ',',
        default_value = "run,copy,startup,latency,big"
    )]
    pub steps: Vec<Step>,

    /// Folder for the datasets, logs and results (created if missing).
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_DIR",
        default_value = ".shopstream/bench"
    )]
    pub dir: PathBuf,

    /// Where to write the JSON results [default: <dir>/results.json].
    #[arg(long, env = "SHOPSTREAM_BENCH_JSON", value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// Extra arguments for every `shopstream run` the bench starts (e.g.
    /// `--run-arg=--connections=1`), to compare settings.
    #[arg(long = "run-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub run_args: Vec<String>,

    /// Keep the bench databases afterwards (they are dropped by default).
    #[arg(long, env = "SHOPSTREAM_BENCH_KEEP")]
    pub keep: bool,
}

/// `--big-file-mib`: a plain number is MiB; a size with a unit is
/// rounded up to whole MiB.
fn parse_mib(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(mib) => Ok(mib),
        Err(_) => shopstream_core::source::size::parse_size(text).map(|b| b.div_ceil(1 << 20)),
    }
}

/// One measurement of the bench.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Copy,
    Run,
    Startup,
    Latency,
    Big,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench options: {0}")]
    Options(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("database error during the bench: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Migrate(#[from] migrate::MigrateError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`shopstream run` for {step} exited with code {code}; its log is {log}")]
    Child {
        step: String,
        code: i32,
        log: String,
    },
    #[error("{step}: {what} (log: {log})")]
    Stuck {
        step: String,
        what: String,
        log: String,
    },
    #[error("{0}: the numbers do not add up; the measurement is not valid")]
    Mismatch(String),
    #[error("interrupted")]
    Interrupted,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.display().to_string();
    move |source| BenchError::Io { what, path, source }
}

/// Everything the bench measured (written as JSON).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Results {
    pub machine: Option<Machine>,
    pub shapes: Vec<ShapeResult>,
    pub startup_ms: Vec<f64>,
    pub latency: Option<Latency>,
    pub big_file: Option<BigFile>,
    pub run_args: Vec<String>,
}

/// One shape's dataset and measurements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShapeResult {
    pub dataset: Composed,
    /// Events the table held before the run.
    pub history_events: u64,
    pub run: Vec<RunOnce>,
    pub copy: Vec<Copy>,
    /// Minimum of the runs, seconds.
    pub run_min: Option<f64>,
    /// Minimum over the repeats of the faster COPY way, seconds.
    pub baseline_min: Option<f64>,
    pub baseline_method: Option<String>,
    /// `baseline_min / run_min` (≥ 1: shopstream is at least as fast).
    pub speed_ratio: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOnce {
    pub seconds: f64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_per_sec: f64,
    pub peak_rss_mib: f64,
    /// CPU seconds shopstream itself used (the server's are not counted).
    pub cpu_seconds: f64,
}

/// One timed COPY of the clean rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
    /// `server csv` or `client binary`.
    pub method: String,
    pub seconds: f64,
    pub rows: u64,
    pub rows_per_sec: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub rate: f64,
    pub files: u64,
    pub events_per_file: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub peak_rss_mib: f64,
    /// The same files' loaded rows, each COPYed alone (see
    /// `Bench::latency_floor`): what no loader can beat.
    pub floor_p50_ms: f64,
    pub floor_p95_ms: f64,
    pub floor_p99_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BigFile {
    pub bytes: u64,
    pub rows_read: u64,
    pub seconds: f64,
    pub rows_per_sec: f64,
    pub peak_rss_mib: f64,
}

/// The bench's state: where things go and which server it uses.
struct Bench<'a> {
    args: &'a BenchArgs,
    db: &'a Database,
    exe: PathBuf,
    dir: PathBuf,
    shutdown: &'a Shutdown,
    databases: Vec<String>,
    /// The empty, migrated database the runs start from (cloned).
    empty_template: Option<String>,
    /// The database holding the history, for the before shapes (cloned).
    history_template: Option<String>,
}

/// Runs the bench, prints the table and writes the JSON.
pub async fn bench(
    args: &BenchArgs,
    db: &Database,
    shutdown: &Shutdown,
) -> Result<Results, BenchError> {
    if args.files == 0 || args.events < args.files {
        return Err(BenchError::Options(
            "--events must be at least --files, and --files at least 1".into(),
        ));
    }
    if args.steps.contains(&Step::Copy) && !args.steps.contains(&Step::Run) {
        return Err(BenchError::Options(
            "the copy step copies the rows the run step loaded: add run to --steps".into(),
        ));
    }
    if !(args.latency_rate > 0.0 && args.latency_rate.is_finite()) {
        return Err(BenchError::Options(
            "--latency-rate must be a positive number".into(),
        ));
    }
    std::fs::create_dir_all(&args.dir).map_err(io_err("cannot create", &args.dir))?;
    let dir = std::fs::canonicalize(&args.dir).map_err(io_err("cannot open", &args.dir))?;
    std::fs::create_dir_all(dir.join("logs")).map_err(io_err("cannot create", &dir))?;
    let exe = std::env::current_exe().map_err(io_err("cannot find", Path::new("shopstream")))?;
    let mut b = Bench {
        args,
        db,
        exe,
        dir,
        shutdown,
        databases: vec![],
        empty_template: None,
        history_template: None,
    };
    let result = b.all().await;
    if !args.keep {
        b.drop_databases().await;
    }
    let results = result?;
    let json = args
        .json
        .clone()
        .unwrap_or_else(|| b.dir.join("results.json"));
    let text = serde_json::to_string_pretty(&results).unwrap_or_default();
    std::fs::write(&json, text + "\n").map_err(io_err("cannot write", &json))?;
    println!("{}", table(&results));
    println!("results written to {}", json.display());
    Ok(results)
}

impl Bench<'_> {
    async fn all(&mut self) -> Result<Results, BenchError> {
        let mut results = Results {
            run_args: self.args.run_args.clone(),
            ..Results::default()
        };
        let admin = self.db.connect().await?;
        let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
        results.machine = Some(Machine::read(format!("PostgreSQL {version}")));
        drop(admin);
        let steps = &self.args.steps;
        if steps.contains(&Step::Run) {
            let pools = self.pools().await?;
            for shape in self.args.shapes.clone() {
                self.check()?;
                let r = self.shape(shape, &pools).await?;
                results.shapes.push(r);
            }
        }
        if steps.contains(&Step::Startup) {
            self.check()?;
            results.startup_ms = self.startup().await?;
        }
        if steps.contains(&Step::Latency) {
            self.check()?;
            results.latency = Some(self.latency().await?);
        }
        if steps.contains(&Step::Big) && self.args.big_file_mib > 0 {
            self.check()?;
            results.big_file = Some(self.big_file().await?);
        }
        Ok(results)
    }

    fn check(&self) -> Result<(), BenchError> {
        if self.shutdown.is_triggered() {
            return Err(BenchError::Interrupted);
        }
        Ok(())
    }

    /// A fresh, migrated database for one measurement, named after the
    /// database the bench was pointed at (`shopstream_bench_run_0` for the
    /// embedded one). Returns it and its name.
    async fn fresh_db(&mut self, step: &str) -> Result<(Database, String), BenchError> {
        self.fresh_db_from(step, None).await
    }

    /// [`Bench::fresh_db`], or a clone of the database `template` (its
    /// files copied, fast whatever its size) when given. The server
    /// checkpoints before it returns.
    async fn fresh_db_from(
        &mut self,
        step: &str,
        template: Option<&str>,
    ) -> Result<(Database, String), BenchError> {
        let admin = self.db.connect().await?;
        let base: String = admin
            .query_one("SELECT current_database()", &[])
            .await?
            .get(0);
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let step: String = step
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("{base}_bench_{step}");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        let create = match template {
            // FILE_COPY copies the files instead of logging every page.
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\" STRATEGY FILE_COPY"),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin.batch_execute(&create).await?;
        if !self.databases.contains(&name) {
            self.databases.push(name.clone());
        }
        let db = self.db.sibling(&name);
        if template.is_none() {
            let mut c = db.connect().await?;
            migrate::migrate(&mut c).await?;
        }
        // Start each measurement without a pending checkpoint (needs
        // superuser; harmless to skip otherwise).
        let _ = admin.batch_execute("CHECKPOINT").await;
        Ok((db, name))
    }

    async fn drop_databases(&mut self) {
        let Ok(admin) = self.db.connect().await else {
            return;
        };
        for name in self.databases.drain(..) {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }

    /// A `shopstream run` child against `db`, logging to `logs/<log>.log`.
    fn loader(&self, db: &Database, input: &Path, once: bool, log: &str) -> (Command, PathBuf) {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("run").arg("--input").arg(input).args([
            "--http-addr",
            "off",
            "--log-format",
            "json",
        ]);
        if once {
            cmd.arg("--once");
        }
        cmd.args(&self.args.run_args)
            .env("DATABASE_URL", db.url())
            .env_remove("SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS")
            .env_remove(shopstream_core::sink::transaction::PAUSE_BEFORE_COMMIT_ENV);
        (cmd, self.dir.join("logs").join(format!("{log}.log")))
    }

    async fn wait(&self, m: Measured, step: &str, log: &Path) -> Result<Exit, BenchError> {
        let exit = tokio::task::spawn_blocking(move || m.wait())
            .await
            .map_err(|e| BenchError::Options(e.to_string()))?
            .map_err(io_err("cannot wait for", log))?;
        if exit.code != 0 {
            return Err(BenchError::Child {
                step: step.to_string(),
                code: exit.code,
                log: log.display().to_string(),
            });
        }
        Ok(exit)
    }

    async fn generate_into(
        &self,
        dir: &Path,
        files: u64,
        events_per_file: u64,
        seed: u64,
    ) -> Result<shopstream_generate::Report, BenchError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io_err("cannot clear", dir))?;
        }
        let args = GenerateArgs {
            output: dir.to_path_buf(),
            seed: Some(seed),
            files: Some(files),
            events_per_file,
            ..GenerateArgs::default()
        };
        Ok(generate(&args, self.shutdown).await?)
    }

    /// Generates what every shape is dealt from: valid events, broken
    /// rows, and (when a shape needs it) the history, loaded (untimed) into
    /// a template database that the `before` runs start from.
    async fn pools(&mut self) -> Result<Pools, BenchError> {
        let a = self.args;
        let per_file = a.events / a.files;
        let invalid_per_file = (per_file / 50) as usize; // 2%
        eprintln!(
            "generating the pools: {} valid events in {} files, {} broken rows ...",
            (per_file - invalid_per_file as u64) * a.files,
            a.files,
            invalid_per_file as u64 * a.files
        );
        let valid_dir = self.dir.join("pool-valid");
        let valid = self
            .generate_pool(
                &valid_dir,
                a.files,
                per_file - invalid_per_file as u64,
                a.seed,
                0.0,
            )
            .await?;
        let invalid_dir = self.dir.join("pool-invalid");
        let invalid = self
            .generate_pool(
                &invalid_dir,
                1,
                (invalid_per_file as u64 * a.files).max(1),
                a.seed + 10,
                1.0,
            )
            .await?;
        let invalid = invalid.into_iter().next().ok_or_else(|| {
            BenchError::Options("the generator wrote no file of broken rows".into())
        })?;
        let history_ids = if a.shapes.iter().any(|s| s.needs_history()) {
            self.history().await?
        } else {
            vec![]
        };
        Ok(Pools {
            valid,
            invalid,
            invalid_per_file,
            history_ids,
        })
    }

    /// Files of `events_per_file` rows, every row valid (`invalid` 0) or
    /// every row broken (`invalid` 1), no duplicate; their paths in order.
    async fn generate_pool(
        &self,
        dir: &Path,
        files: u64,
        events_per_file: u64,
        seed: u64,
        invalid: f64,
    ) -> Result<Vec<PathBuf>, BenchError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io_err("cannot clear", dir))?;
        }
        let args = GenerateArgs {
            output: dir.to_path_buf(),
            seed: Some(seed),
            files: Some(files),
            events_per_file,
            invalid_share: invalid,
            duplicate_share: 0.0,
            late_share: if invalid > 0.0 { 0.0 } else { 0.02 },
            ..GenerateArgs::default()
        };
        let report = generate(&args, self.shutdown).await?;
        let want = if invalid > 0.0 { 0 } else { report.rows };
        if report.loaded != want || report.duplicates != 0 {
            return Err(BenchError::Mismatch(format!(
                "the pool in {} has {} loadable rows of {}",
                dir.display(),
                report.loaded,
                report.rows
            )));
        }
        Ok(report.files.iter().map(|f| dir.join(f)).collect())
    }

    /// The history the `before` shapes start from: generated, loaded by
    /// `run --once` into the template database (not timed), and a sample of
    /// its event ids.
    async fn history(&mut self) -> Result<Vec<String>, BenchError> {
        let a = self.args;
        let files = a.history_events.div_ceil(100_000).max(1);
        let per_file = (a.history_events / files).max(1);
        eprintln!(
            "history: {} events already in the table for the before shapes ...",
            per_file * files
        );
        let dir = self.dir.join("history");
        self.generate_pool(&dir, files, per_file, a.seed + 20, 0.0)
            .await?;
        let (db, name) = self.fresh_db("tpl_history").await?;
        let (cmd, log) = self.loader(&db, &dir, true, "history");
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        self.wait(m, "history load", &log).await?;
        let c = db.connect().await?;
        let rows = c
            .query(
                "SELECT event_id::text FROM ecommerce_events ORDER BY md5(event_id::text) LIMIT 200000",
                &[],
            )
            .await?;
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
        self.history_template = Some(name);
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// One shape: its dataset, `run --once` and the baselines.
    async fn shape(&mut self, shape: Shape, pools: &Pools) -> Result<ShapeResult, BenchError> {
        let dir = self.dir.join("dataset");
        let composed = shapes::compose(shape, pools, &dir, self.args.seed)
            .map_err(|e| BenchError::Options(format!("composing the {shape} dataset: {e}")))?;
        eprintln!(
            "{shape}: {} rows in {} files ({} broken, {} duplicate rows, {} re-sent files)",
            composed.rows,
            composed.files,
            composed.invalid_rows,
            composed.duplicate_rows,
            composed.resent_files
        );
        let template = if shape.needs_history() {
            self.history_template.clone()
        } else {
            None
        };
        let mut result = ShapeResult {
            history_events: if template.is_some() {
                self.args.history_events
            } else {
                0
            },
            dataset: composed,
            run: vec![],
            copy: vec![],
            run_min: None,
            baseline_min: None,
            baseline_method: None,
            speed_ratio: None,
        };
        // Each repeat measures the run and then both baselines, so that a
        // slow spell of this shared machine falls on both sides alike.
        let mut clean: Option<(PathBuf, PathBuf)> = None;
        let mut server_refused = false;
        for i in 0..self.args.repeat {
            self.check()?;
            let label = format!("{shape}-{i}");
            let (r, name) = self
                .run_once(&dir, &result.dataset, template.as_deref(), &label)
                .await?;
            eprintln!(
                "{shape}: run --once {:.2} s, {:.0} rows/s, {:.1} MiB, {:.2} s of CPU",
                r.seconds, r.rows_per_sec, r.peak_rss_mib, r.cpu_seconds
            );
            result.run.push(r);
            if !self.args.steps.contains(&Step::Copy) {
                continue;
            }
            let (csv, bin) = match &clean {
                Some(c) => c.clone(),
                None => clean.insert(self.export_clean(&name, &dir).await?).clone(),
            };
            let copies = self
                .baselines(
                    shape,
                    i,
                    (&csv, &bin),
                    template.as_deref(),
                    &mut server_refused,
                )
                .await?;
            result.copy.extend(copies);
        }
        if let Some((csv, bin)) = clean {
            let _ = std::fs::remove_file(&csv);
            let _ = std::fs::remove_file(&bin);
        }
        let _ = std::fs::remove_dir_all(&dir);
        summarise(&mut result);
        Ok(result)
    }

    /// `run --once` over a shape's dataset in a fresh database, checked
    /// against the dataset's account.
    async fn run_once(
        &mut self,
        dataset: &Path,
        expected: &Composed,
        template: Option<&str>,
        label: &str,
    ) -> Result<(RunOnce, String), BenchError> {
        let template = match template {
            Some(t) => t.to_string(),
            None => self.empty_template().await?,
        };
        let (db, name) = self
            .fresh_db_from(&format!("run_{label}"), Some(&template))
            .await?;
        let (cmd, log) = self.loader(&db, dataset, true, &format!("run-{label}"));
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        let exit = self.wait(m, "run --once", &log).await?;
        let (read, loaded) = ledger_totals(&db, dataset).await?;
        if read != expected.rows || loaded != expected.expected_loaded {
            return Err(BenchError::Mismatch(format!(
                "{label}: run --once read {read} rows and loaded {loaded}; the dataset has {} \
                 rows of which {} must load",
                expected.rows, expected.expected_loaded
            )));
        }
        let seconds = exit.wall.as_secs_f64();
        Ok((
            RunOnce {
                seconds,
                rows_read: read,
                rows_loaded: loaded,
                rows_per_sec: read as f64 / seconds,
                peak_rss_mib: exit.max_rss_kib as f64 / 1024.0,
                cpu_seconds: exit.cpu.as_secs_f64(),
            },
            name,
        ))
    }

    /// An empty, migrated database the runs and baselines clone.
    async fn empty_template(&mut self) -> Result<String, BenchError> {
        if let Some(t) = &self.empty_template {
            return Ok(t.clone());
        }
        let (_, name) = self.fresh_db("tpl_empty").await?;
        self.empty_template = Some(name.clone());
        Ok(name)
    }

    /// The COPY baselines of one shape's repeat `i`: the clean rows a run
    /// loaded (`clean`: as CSV and as binary COPY data), both ways, each
    /// into a fresh clone of the run's starting point.
    async fn baselines(
        &mut self,
        shape: Shape,
        i: u32,
        (csv, bin): (&Path, &Path),
        template: Option<&str>,
        server_refused: &mut bool,
    ) -> Result<Vec<Copy>, BenchError> {
        let template = match template {
            Some(t) => t.to_string(),
            None => self.empty_template().await?,
        };
        let mut out = vec![];
        for method in [CopyMethod::ServerCsv, CopyMethod::ClientBinary] {
            self.check()?;
            if method == CopyMethod::ServerCsv && *server_refused {
                continue;
            }
            let (db, _) = self
                .fresh_db_from(&format!("copy_{shape}_{i}"), Some(&template))
                .await?;
            match copy_once(&db, method, csv, bin).await {
                Ok(c) => {
                    eprintln!("{shape}: COPY ({}) {:.2} s", c.method, c.seconds);
                    out.push(c);
                }
                Err(e) if method == CopyMethod::ServerCsv => {
                    eprintln!(
                        "{shape}: server-side COPY from a file is not possible here ({e}); \
                         the baseline is the client's binary COPY"
                    );
                    *server_refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The rows `run` loaded from `dataset`, in the dataset's order (file,
    /// then line), as CSV and as binary COPY data.
    async fn export_clean(
        &self,
        name: &str,
        dataset: &Path,
    ) -> Result<(PathBuf, PathBuf), BenchError> {
        let prefix = sql_literal(&format!("{}/", dataset.display()));
        let c = self.db.sibling(name).connect().await?;
        let mut paths = vec![];
        for (file, format) in [("clean.csv", "csv"), ("clean.bin", "binary")] {
            let path = self.dir.join(file);
            let query = format!(
                "COPY (SELECT * FROM ecommerce_events WHERE starts_with(source_file, {prefix})
                       ORDER BY source_file, source_line)
                 TO STDOUT (FORMAT {format})"
            );
            let stream = c.copy_out(query.as_str()).await?;
            let mut stream = std::pin::pin!(stream);
            let mut out = tokio::fs::File::create(&path)
                .await
                .map_err(io_err("cannot create", &path))?;
            use futures_util::StreamExt;
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk?)
                    .await
                    .map_err(io_err("cannot write", &path))?;
            }
            out.flush().await.map_err(io_err("cannot write", &path))?;
            paths.push(path);
        }
        let bin = paths.pop().unwrap_or_default();
        let csv = paths.pop().unwrap_or_default();
        Ok((csv, bin))
    }

    /// Process start to the first file committed, against a running,
    /// migrated database.
    async fn startup(&mut self) -> Result<Vec<f64>, BenchError> {
        let (db, _) = self.fresh_db("startup").await?;
        let runs = self.args.repeat.max(3);
        let src = self.dir.join("startup-src");
        self.generate_into(&src, u64::from(runs), 100, self.args.seed + 1)
            .await?;
        let input = self.dir.join("startup-in");
        let _ = std::fs::remove_dir_all(&input);
        std::fs::create_dir_all(&input).map_err(io_err("cannot create", &input))?;
        let mut names = file_names(&src)?;
        names.sort();
        let c = db.connect().await?;
        let mut out = vec![];
        for (i, name) in names.iter().enumerate() {
            std::fs::rename(src.join(name), input.join(name))
                .map_err(io_err("cannot move", &input))?;
            let (cmd, log) = self.loader(&db, &input, false, &format!("startup-{i}"));
            let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
            let started = m.started();
            let want = i as i64 + 1;
            let seen = loop {
                let n: i64 = c
                    .query_one("SELECT count(*) FROM ingested_files", &[])
                    .await?
                    .get(0);
                if n >= want {
                    break Some(started.elapsed());
                }
                if started.elapsed() > Duration::from_secs(30) {
                    break None;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            };
            m.terminate();
            self.wait(m, "start-up", &log).await?;
            let Some(seen) = seen else {
                return Err(BenchError::Stuck {
                    step: "start-up".into(),
                    what: "no file committed within 30 s".into(),
                    log: log.display().to_string(),
                });
            };
            out.push(seen.as_secs_f64() * 1000.0);
        }
        eprintln!(
            "start-up to first commit: median {:.1} ms",
            median(&out).unwrap_or(0.0)
        );
        Ok(out)
    }

    /// (c): files renamed into a watched folder at a steady rate; the time
    /// from each rename to its ledger row being visible.
    async fn latency(&mut self) -> Result<Latency, BenchError> {
        let a = self.args;
        let (db, _) = self.fresh_db("latency").await?;
        let src = self.dir.join("latency-src");
        eprintln!(
            "latency: {} files of {} events at {} events/s ...",
            a.latency_files, a.latency_file_events, a.latency_rate
        );
        // One extra file warms the loader up and is not counted.
        self.generate_into(&src, a.latency_files + 1, a.latency_file_events, a.seed + 2)
            .await?;
        let mut names = file_names(&src)?;
        names.sort();
        let input = self.dir.join("latency-in");
        let _ = std::fs::remove_dir_all(&input);
        std::fs::create_dir_all(&input).map_err(io_err("cannot create", &input))?;
        // Each ledger row announces its file as its batch commits: the
        // commit is seen the moment it happens, with no polling beside the
        // loader on the same machine.
        let (c, mut committed) = db.connector().connect_listening().await?;
        c.batch_execute(NOTIFY_ON_COMMIT).await?;
        let (cmd, log) = self.loader(&db, &input, false, "latency");
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        let stuck = |what: &str| BenchError::Stuck {
            step: "latency".into(),
            what: what.into(),
            log: log.display().to_string(),
        };
        let mut names = names.into_iter();
        let warm = names.next().ok_or_else(|| stuck("no files generated"))?;
        let path_of = |n: &str| input.join(n).display().to_string();
        std::fs::rename(src.join(&warm), input.join(&warm))
            .map_err(io_err("cannot move", &input))?;
        if !wait_for_paths(&c, &[path_of(&warm)], Duration::from_secs(30)).await? {
            m.terminate();
            let _ = self.wait(m, "latency", &log).await;
            return Err(stuck("the warm-up file was not committed within 30 s"));
        }

        let interval = Duration::from_secs_f64(a.latency_file_events as f64 / a.latency_rate);
        let fed = self
            .feed(names.collect(), (&src, &input), interval, &mut committed)
            .await;
        m.terminate();
        let exit = self.wait(m, "latency", &log).await;
        let (mut latencies, fed) = match fed {
            Ok(f) => f,
            Err(Feeding::Stuck(what)) => return Err(stuck(what)),
            Err(Feeding::Failed(e)) => return Err(e),
        };
        let exit = exit?;
        let mut floor = self.latency_floor(&db, &fed, interval).await?;
        floor.sort_by(f64::total_cmp);
        let f = |q| percentile(&floor, q).unwrap_or(0.0);
        latencies.sort_by(f64::total_cmp);
        let p = |q| percentile(&latencies, q).unwrap_or(0.0);
        let l = Latency {
            rate: a.latency_rate,
            files: latencies.len() as u64,
            events_per_file: a.latency_file_events,
            p50_ms: p(0.5),
            p95_ms: p(0.95),
            p99_ms: p(0.99),
            max_ms: p(1.0),
            peak_rss_mib: exit.max_rss_kib as f64 / 1024.0,
            floor_p50_ms: f(0.5),
            floor_p95_ms: f(0.95),
            floor_p99_ms: f(0.99),
        };
        eprintln!(
            "latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms; floor (COPY of each file's rows \
             alone) p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            l.p50_ms, l.p95_ms, l.p99_ms, l.floor_p50_ms, l.floor_p95_ms, l.floor_p99_ms
        );
        let _ = std::fs::remove_dir_all(&src);
        Ok(l)
    }

    /// Renames `names` from `src` into `input`, one every `interval`, and
    /// takes each file's time from its rename to its commit as `committed`
    /// announces it. Returns those times (ms, in commit order) and the
    /// paths fed, in order.
    async fn feed(
        &self,
        names: Vec<String>,
        (src, input): (&Path, &Path),
        interval: Duration,
        committed: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> Result<(Vec<f64>, Vec<String>), Feeding> {
        let path_of = |n: &str| input.join(n).display().to_string();
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let (mut fed, mut latencies) = (vec![], vec![]);
        let mut names = names.into_iter().peekable();
        let mut next_due = tokio::time::Instant::now();
        let mut last_progress = Instant::now();
        while names.peek().is_some() || !pending.is_empty() {
            self.check()?;
            if names.peek().is_some() && tokio::time::Instant::now() >= next_due {
                if let Some(n) = names.next() {
                    std::fs::rename(src.join(&n), input.join(&n))
                        .map_err(io_err("cannot move", input))?;
                    pending.insert(path_of(&n), Instant::now());
                    fed.push(path_of(&n));
                    next_due += interval;
                }
                continue;
            }
            let wake = match names.peek() {
                Some(_) => next_due,
                None => tokio::time::Instant::now() + Duration::from_millis(100),
            };
            tokio::select! {
                path = committed.recv() => {
                    let seen_at = Instant::now();
                    let path = path.ok_or(Feeding::Stuck("the bench's own connection ended"))?;
                    if let Some(t) = pending.remove(&path) {
                        latencies.push((seen_at - t).as_secs_f64() * 1000.0);
                        last_progress = seen_at;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            if last_progress.elapsed() > Duration::from_secs(30) {
                return Err(Feeding::Stuck("no file committed for 30 s"));
            }
        }
        Ok((latencies, fed))
    }

    /// The latency step's floor: each counted file's loaded rows (read back
    /// from the step's table) COPYed alone into a fresh empty table, the
    /// fastest way PostgreSQL takes them (one prepared binary COPY from the
    /// client, autocommit, so the time includes the commit), one file every
    /// `interval` as in the step. Milliseconds per file, in feeding order.
    async fn latency_floor(
        &mut self,
        db: &Database,
        paths: &[String],
        interval: Duration,
    ) -> Result<Vec<f64>, BenchError> {
        use futures_util::StreamExt;
        let c = db.connect().await?;
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let query = format!(
                "COPY (SELECT * FROM ecommerce_events WHERE source_file = {} ORDER BY source_line)
                 TO STDOUT (FORMAT binary)",
                sql_literal(p)
            );
            let stream = c.copy_out(query.as_str()).await?;
            let mut stream = std::pin::pin!(stream);
            let mut data = bytes::BytesMut::new();
            while let Some(chunk) = stream.next().await {
                data.extend_from_slice(&chunk?);
            }
            files.push(data.freeze());
        }
        let template = self.empty_template().await?;
        let (floor_db, _) = self.fresh_db_from("latency_floor", Some(&template)).await?;
        let f = floor_db.connect().await?;
        let copy = f
            .prepare("COPY ecommerce_events FROM STDIN (FORMAT binary)")
            .await?;
        let mut out = Vec::with_capacity(files.len());
        let mut next_due = tokio::time::Instant::now();
        for data in files {
            self.check()?;
            tokio::time::sleep_until(next_due).await;
            next_due += interval;
            let started = Instant::now();
            let sink = f.copy_in(&copy).await?;
            let mut sink = std::pin::pin!(sink);
            sink.send(data).await?;
            sink.as_mut().finish().await?;
            out.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(out)
    }

    /// (d): peak memory of `run --once` on one big file.
    async fn big_file(&mut self) -> Result<BigFile, BenchError> {
        let target = self.args.big_file_mib * 1024 * 1024;
        // Size a probe file to learn the bytes per event of this layout.
        let probe = self.dir.join("big-probe");
        self.generate_into(&probe, 1, 10_000, self.args.seed + 3)
            .await?;
        let per_event = (dir_bytes(&probe)? / 10_000).max(1);
        let _ = std::fs::remove_dir_all(&probe);
        let events = target / per_event;
        let dir = self.dir.join("big");
        eprintln!(
            "big file: generating one file of {events} events (~{} MiB) ...",
            self.args.big_file_mib
        );
        self.generate_into(&dir, 1, events, self.args.seed + 3)
            .await?;
        let bytes = dir_bytes(&dir)?;
        let (db, _) = self.fresh_db("big").await?;
        let (cmd, log) = self.loader(&db, &dir, true, "big");
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        let exit = self.wait(m, "big file", &log).await?;
        let (read, _) = ledger_totals(&db, &dir).await?;
        if read != events {
            return Err(BenchError::Mismatch(format!(
                "the big file has {events} rows, run read {read}"
            )));
        }
        let _ = std::fs::remove_dir_all(&dir);
        let seconds = exit.wall.as_secs_f64();
        let b = BigFile {
            bytes,
            rows_read: read,
            seconds,
            rows_per_sec: read as f64 / seconds,
            peak_rss_mib: exit.max_rss_kib as f64 / 1024.0,
        };
        eprintln!(
            "big file: {:.1} s, peak {:.1} MiB",
            b.seconds, b.peak_rss_mib
        );
        Ok(b)
    }
}

/// Rows read and loaded over the ledger rows of the files in `dir`.
/// The latency step's notification: every ledger row sends its path on
/// channel `shopstream_bench_committed` when its transaction commits; the
/// bench's own connection listens.
const NOTIFY_ON_COMMIT: &str = "
CREATE FUNCTION shopstream_bench_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('shopstream_bench_committed', NEW.path); RETURN NULL; END $$;
CREATE TRIGGER shopstream_bench_committed AFTER INSERT ON ingested_files
  FOR EACH ROW EXECUTE FUNCTION shopstream_bench_committed();
LISTEN shopstream_bench_committed;";

/// Why feeding the latency step's files stopped.
enum Feeding {
    Stuck(&'static str),
    Failed(BenchError),
}

impl From<BenchError> for Feeding {
    fn from(e: BenchError) -> Self {
        Feeding::Failed(e)
    }
}

async fn ledger_totals(db: &Database, dir: &Path) -> Result<(u64, u64), BenchError> {
    let c = db.connect().await?;
    let prefix = format!("{}/", dir.display());
    let row = c
        .query_one(
            "SELECT coalesce(sum(rows_read), 0)::int8, coalesce(sum(rows_loaded), 0)::int8
             FROM ingested_files WHERE starts_with(path, $1)",
            &[&prefix],
        )
        .await?;
    let (read, loaded): (i64, i64) = (row.get(0), row.get(1));
    Ok((read.max(0) as u64, loaded.max(0) as u64))
}

/// The two ways PostgreSQL itself takes the clean rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyMethod {
    /// `COPY … FROM 'file' (FORMAT csv)`: the server reads the file.
    ServerCsv,
    /// `COPY … FROM STDIN (FORMAT binary)` streamed by the client.
    ClientBinary,
}

impl CopyMethod {
    fn name(self) -> &'static str {
        match self {
            CopyMethod::ServerCsv => "server csv",
            CopyMethod::ClientBinary => "client binary",
        }
    }
}

/// One timed COPY of the clean rows into `ecommerce_events` of `db`.
async fn copy_once(
    db: &Database,
    method: CopyMethod,
    csv: &Path,
    bin: &Path,
) -> Result<Copy, BenchError> {
    let c = db.connect().await?;
    let started = Instant::now();
    let rows = match method {
        CopyMethod::ServerCsv => {
            let file = sql_literal(&csv.display().to_string());
            c.execute(
                format!("COPY ecommerce_events FROM {file} (FORMAT csv)").as_str(),
                &[],
            )
            .await?
        }
        CopyMethod::ClientBinary => {
            let mut file = tokio::fs::File::open(bin)
                .await
                .map_err(io_err("cannot open", bin))?;
            let sink = c
                .copy_in("COPY ecommerce_events FROM STDIN (FORMAT binary)")
                .await?;
            let mut sink = std::pin::pin!(sink);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(io_err("cannot read", bin))?;
                if n == 0 {
                    break;
                }
                sink.send(bytes::Bytes::copy_from_slice(&buf[..n])).await?;
            }
            sink.as_mut().finish().await?
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Copy {
        method: method.name().to_string(),
        seconds,
        rows,
        rows_per_sec: rows as f64 / seconds,
    })
}

/// `text` as an SQL string literal.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The minimum of each side and their ratio.
fn summarise(r: &mut ShapeResult) {
    r.run_min = r.run.iter().map(|x| x.seconds).min_by(f64::total_cmp);
    let fastest = r.copy.iter().min_by(|a, b| a.seconds.total_cmp(&b.seconds));
    r.baseline_min = fastest.map(|c| c.seconds);
    r.baseline_method = fastest.map(|c| c.method.clone());
    if let (Some(run), Some(copy)) = (r.run_min, r.baseline_min) {
        r.speed_ratio = Some(copy / run);
    }
}

async fn wait_for_paths(
    c: &tokio_postgres::Client,
    paths: &[String],
    timeout: Duration,
) -> Result<bool, BenchError> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM ingested_files WHERE path = ANY($1)",
                &[&paths],
            )
            .await?
            .get(0);
        if n as usize >= paths.len() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(false)
}

fn file_names(dir: &Path) -> Result<Vec<String>, BenchError> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let e = e.map_err(io_err("cannot list", dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !shopstream_core::source::discover::is_ignored(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn dir_bytes(dir: &Path) -> Result<u64, BenchError> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let e = e.map_err(io_err("cannot list", dir))?;
        total += e.metadata().map_err(io_err("cannot stat", dir))?.len();
    }
    Ok(total)
}

/// Left-aligned columns, two spaces apart.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The results as plain-text tables: one row per shape, then the rest.
pub fn table(r: &Results) -> String {
    let mut out = String::new();
    if !r.shapes.is_empty() {
        let mut rows = vec![[
            "shape",
            "rows",
            "dup rows",
            "in table",
            "run --once (min)",
            "COPY baseline (min)",
            "ratio",
            "peak RSS",
        ]
        .map(String::from)
        .to_vec()];
        for s in &r.shapes {
            let d = &s.dataset;
            let dups = match d.resent_files {
                0 => d.duplicate_rows.to_string(),
                1 => "1 file".to_string(),
                n => format!("{n} files"),
            };
            let rss = s.run.iter().map(|x| x.peak_rss_mib).max_by(f64::total_cmp);
            rows.push(vec![
                d.shape.clone(),
                d.rows.to_string(),
                dups,
                s.history_events.to_string(),
                s.run_min.map_or("-".into(), |x| format!("{x:.2} s")),
                match (s.baseline_min, &s.baseline_method) {
                    (Some(x), Some(m)) => format!("{x:.2} s ({m})"),
                    _ => "-".into(),
                },
                s.speed_ratio.map_or("-".into(), |x| format!("{x:.2}")),
                rss.map_or("-".into(), |x| format!("{x:.1} MiB")),
            ]);
        }
        out.push_str(&columns(&rows));
        out.push_str("targets: ratio ≥ 1.0 (baseline ÷ run), peak RSS ≤ 64 MiB\n\n");
    }
    let mut rows: Vec<Vec<String>> = vec![];
    if let Some(l) = &r.latency {
        rows.push(vec![
            format!("latency at {:.0} events/s", l.rate),
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                l.p50_ms, l.p95_ms, l.p99_ms
            ),
            format!("{} files; target p50 ≤ 10 ms, p99 ≤ 50 ms", l.files),
        ]);
        rows.push(vec![
            "  memory, continuous run".into(),
            format!("peak {:.1} MiB", l.peak_rss_mib),
            "target ≤ 64 MiB".into(),
        ]);
        rows.push(vec![
            "  floor: each file's rows COPYed alone".into(),
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                l.floor_p50_ms, l.floor_p95_ms, l.floor_p99_ms
            ),
            format!(
                "shopstream's own share at p50: {:.1} ms",
                l.p50_ms - l.floor_p50_ms
            ),
        ]);
    }
    if let Some(s) = median(&r.startup_ms) {
        rows.push(vec![
            "start to first commit".into(),
            format!("{s:.1} ms (median of {})", r.startup_ms.len()),
            "target ≤ 100 ms".into(),
        ]);
    }
    if let Some(b) = &r.big_file {
        rows.push(vec![
            "one big file".into(),
            format!(
                "{:.0} MiB, {:.1} s, {:.0} rows/s",
                b.bytes as f64 / 1048576.0,
                b.seconds,
                b.rows_per_sec
            ),
            format!("peak {:.1} MiB; target ≤ 64 MiB", b.peak_rss_mib),
        ]);
    }
    out.push_str(&columns(&rows));
    out
}
