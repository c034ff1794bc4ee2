//! `shopstream bench`: measures shopstream against PostgreSQL's own COPY on
//! this machine and this database, reproducibly, in one run.
//!
//! It generates a dataset (default 1,000,000 events in 100 files, default
//! anomaly mix), then measures, each in a fresh database on the same server:
//!
//! * **(b) `run --once`** over the raw files, end to end, as a child process
//!   (wall time from spawn to exit, peak resident memory);
//! * **(a) the baseline**: `COPY … FROM STDIN (FORMAT csv)` of the rows (b)
//!   loaded, already clean, in the dataset's order (file, then line), into
//!   a table made `LIKE ecommerce_events INCLUDING ALL` (same columns,
//!   types, primary key and indexes);
//! * **start-up**: process start to its first file committed, against a
//!   running, migrated database;
//! * **(c) latency**: a `run` watching a folder while files are renamed into
//!   it at a steady event rate; per file, the time from its rename to its
//!   ledger row being visible (committed);
//! * **(d) memory on one big file** (default 2 GiB).
//!
//! It prints a table and writes the figures as JSON. It never asserts a
//! target: it reports what it measured, and BENCHMARKS.md keeps the record.
//! It only drives the real binary (`run` as a child process) and talks to
//! the database; it changes nothing in shopstream's behaviour.

pub mod measure;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio::io::AsyncReadExt;

use crate::db::connect::{Database, DbError};
use crate::db::migrate;
use crate::generate::{generate, GenerateArgs, GenerateError};
use crate::shutdown::Shutdown;
use measure::{median, percentile, Exit, Machine, Measured};

/// Options of `shopstream bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Events in the dataset for (a) and (b).
    #[arg(long, env = "SHOPSTREAM_BENCH_EVENTS", default_value_t = 1_000_000)]
    pub events: u64,

    /// Files the dataset is split into.
    #[arg(long, env = "SHOPSTREAM_BENCH_FILES", default_value_t = 100)]
    pub files: u64,

    /// Generator seed (the same seed gives the same dataset).
    #[arg(long, env = "SHOPSTREAM_BENCH_SEED", default_value_t = 1)]
    pub seed: u64,

    /// How many times (a), (b) and the start-up are measured; the table
    /// shows medians, the JSON every run.
    #[arg(long, env = "SHOPSTREAM_BENCH_REPEAT", default_value_t = 1)]
    pub repeat: u32,

    /// Events per second fed to the watching loader in (c).
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_LATENCY_RATE",
        default_value_t = 20_000.0
    )]
    pub latency_rate: f64,

    /// Files fed in (c) (latency percentiles are over these).
    #[arg(long, env = "SHOPSTREAM_BENCH_LATENCY_FILES", default_value_t = 300)]
    pub latency_files: u64,

    /// Events per file in (c).
    #[arg(
        long,
        env = "SHOPSTREAM_BENCH_LATENCY_FILE_EVENTS",
        default_value_t = 1_000
    )]
    pub latency_file_events: u64,

    /// Size of the single big file for (d), in MiB; 0 skips it.
    #[arg(long, env = "SHOPSTREAM_BENCH_BIG_FILE_MIB", default_value_t = 2048)]
    pub big_file_mib: u64,

    /// Steps to run, comma separated: copy, run, startup, latency, big.
    /// `copy` needs `run` (it copies the rows `run` loaded).
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
    pub dataset: Option<Dataset>,
    pub run: Vec<RunOnce>,
    pub copy: Vec<Copy>,
    /// Median COPY seconds / median `run --once` seconds (≥ 1: shopstream
    /// is at least as fast as COPY of the clean rows).
    pub speed_ratio: Option<f64>,
    pub startup_ms: Vec<f64>,
    pub latency: Option<Latency>,
    pub big_file: Option<BigFile>,
    pub run_args: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Dataset {
    pub events: u64,
    pub files: u64,
    pub bytes: u64,
    pub seed: u64,
    pub expected_loaded: u64,
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct Copy {
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

        let dataset_dir = self.dir.join("dataset");
        if steps.contains(&Step::Run) {
            results.dataset = Some(self.dataset(&dataset_dir).await?);
            let mut last_db = None;
            for i in 0..self.args.repeat {
                self.check()?;
                let (r, name) = self.run_once(&dataset_dir, i).await?;
                eprintln!(
                    "run --once: {:.2} s, {:.0} rows/s, {:.1} MiB, {:.2} s of CPU",
                    r.seconds, r.rows_per_sec, r.peak_rss_mib, r.cpu_seconds
                );
                results.run.push(r);
                last_db = Some(name);
            }
            if let (true, Some(name)) = (steps.contains(&Step::Copy), last_db) {
                let clean = self.export_clean(&name).await?;
                for _ in 0..self.args.repeat {
                    self.check()?;
                    let c = self.copy_baseline(&name, &clean).await?;
                    eprintln!(
                        "COPY baseline: {:.2} s, {:.0} rows/s",
                        c.seconds, c.rows_per_sec
                    );
                    results.copy.push(c);
                }
                let _ = std::fs::remove_file(&clean);
                let run = median(&results.run.iter().map(|r| r.seconds).collect::<Vec<_>>());
                let copy = median(&results.copy.iter().map(|c| c.seconds).collect::<Vec<_>>());
                if let (Some(r), Some(c)) = (run, copy) {
                    results.speed_ratio = Some(c / r);
                }
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
        let name = format!("{base}_bench_{step}");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        if !self.databases.contains(&name) {
            self.databases.push(name.clone());
        }
        let db = self.db.sibling(&name);
        let mut c = db.connect().await?;
        migrate::migrate(&mut c).await?;
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
            .env_remove("SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS");
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
    ) -> Result<crate::generate::Report, BenchError> {
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

    async fn dataset(&self, dir: &Path) -> Result<Dataset, BenchError> {
        let per_file = self.args.events / self.args.files;
        eprintln!(
            "generating {} events in {} files into {} ...",
            per_file * self.args.files,
            self.args.files,
            dir.display()
        );
        let report = self
            .generate_into(dir, self.args.files, per_file, self.args.seed)
            .await?;
        Ok(Dataset {
            events: report.rows,
            files: report.files.len() as u64,
            bytes: dir_bytes(dir)?,
            seed: report.seed,
            expected_loaded: report.loaded,
        })
    }

    /// (b): `run --once` over the dataset in a fresh database.
    async fn run_once(&mut self, dataset: &Path, i: u32) -> Result<(RunOnce, String), BenchError> {
        let (db, name) = self.fresh_db(&format!("run_{i}")).await?;
        let (cmd, log) = self.loader(&db, dataset, true, &format!("run-{i}"));
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        let exit = self.wait(m, "run --once", &log).await?;
        let (read, loaded) = ledger_totals(&db).await?;
        let events = self.args.events / self.args.files * self.args.files;
        if read != events {
            return Err(BenchError::Mismatch(format!(
                "run --once read {read} rows of {events}"
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

    /// The rows `run` loaded, as CSV, for the baseline: in the dataset's
    /// order, whatever order `run` left them in (rows sorted by event id
    /// would make the baseline's primary key cheaper to build).
    async fn export_clean(&self, name: &str) -> Result<PathBuf, BenchError> {
        let path = self.dir.join("clean.csv");
        let c = self.db.sibling(name).connect().await?;
        let stream = c
            .copy_out(
                "COPY (SELECT * FROM ecommerce_events ORDER BY source_file, source_line)
                 TO STDOUT (FORMAT csv)",
            )
            .await?;
        let mut stream = std::pin::pin!(stream);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(io_err("cannot create", &path))?;
        use futures_util::StreamExt;
        use tokio::io::AsyncWriteExt;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?)
                .await
                .map_err(io_err("cannot write", &path))?;
        }
        file.flush().await.map_err(io_err("cannot write", &path))?;
        Ok(path)
    }

    /// (a): PostgreSQL's COPY of the clean rows into a table like
    /// `ecommerce_events` (columns, types, primary key, indexes).
    async fn copy_baseline(&self, name: &str, clean: &Path) -> Result<Copy, BenchError> {
        let c = self.db.sibling(name).connect().await?;
        c.batch_execute(
            "DROP TABLE IF EXISTS bench_copy_baseline;
             CREATE TABLE bench_copy_baseline (LIKE ecommerce_events INCLUDING ALL)",
        )
        .await?;
        let _ = c.batch_execute("CHECKPOINT").await;
        let mut file = tokio::fs::File::open(clean)
            .await
            .map_err(io_err("cannot open", clean))?;
        let started = Instant::now();
        let sink = c
            .copy_in("COPY bench_copy_baseline FROM STDIN (FORMAT csv)")
            .await?;
        let mut sink = std::pin::pin!(sink);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(io_err("cannot read", clean))?;
            if n == 0 {
                break;
            }
            sink.send(bytes::Bytes::copy_from_slice(&buf[..n])).await?;
        }
        let rows = sink.as_mut().finish().await?;
        let seconds = started.elapsed().as_secs_f64();
        c.batch_execute("DROP TABLE bench_copy_baseline").await?;
        Ok(Copy {
            seconds,
            rows,
            rows_per_sec: rows as f64 / seconds,
        })
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
        let (cmd, log) = self.loader(&db, &input, false, "latency");
        let m = Measured::spawn(cmd, &log).map_err(io_err("cannot start", &self.exe))?;
        let c = db.connect().await?;
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
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let mut latencies: Vec<f64> = vec![];
        let mut names = names.peekable();
        let t0 = Instant::now();
        let mut next_due = t0;
        let mut last_progress = Instant::now();
        while names.peek().is_some() || !pending.is_empty() {
            self.check()?;
            let now = Instant::now();
            if now >= next_due {
                if let Some(n) = names.next() {
                    std::fs::rename(src.join(&n), input.join(&n))
                        .map_err(io_err("cannot move", &input))?;
                    pending.insert(path_of(&n), Instant::now());
                    next_due += interval;
                    continue;
                }
            }
            if !pending.is_empty() {
                let keys: Vec<&String> = pending.keys().collect();
                let rows = c
                    .query(
                        "SELECT path FROM ingested_files WHERE path = ANY($1)",
                        &[&keys],
                    )
                    .await?;
                let seen_at = Instant::now();
                for r in rows {
                    let p: String = r.get(0);
                    if let Some(t) = pending.remove(&p) {
                        latencies.push((seen_at - t).as_secs_f64() * 1000.0);
                        last_progress = seen_at;
                    }
                }
            }
            if last_progress.elapsed() > Duration::from_secs(30) {
                m.terminate();
                let _ = self.wait(m, "latency", &log).await;
                return Err(stuck("no file committed for 30 s"));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        m.terminate();
        let exit = self.wait(m, "latency", &log).await?;
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
        };
        eprintln!(
            "latency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            l.p50_ms, l.p95_ms, l.p99_ms
        );
        let _ = std::fs::remove_dir_all(&src);
        Ok(l)
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
        let (read, _) = ledger_totals(&db).await?;
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

/// Rows read and loaded over the whole ledger.
async fn ledger_totals(db: &Database) -> Result<(u64, u64), BenchError> {
    let c = db.connect().await?;
    let row = c
        .query_one(
            "SELECT coalesce(sum(rows_read), 0)::int8, coalesce(sum(rows_loaded), 0)::int8
             FROM ingested_files",
            &[],
        )
        .await?;
    let (read, loaded): (i64, i64) = (row.get(0), row.get(1));
    Ok((read.max(0) as u64, loaded.max(0) as u64))
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
        if !crate::source::discover::is_ignored(&name) {
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

/// The results as a plain-text table.
pub fn table(r: &Results) -> String {
    let mut rows: Vec<(String, String, String)> = vec![];
    let med = |v: Vec<f64>| median(&v);
    if let Some(d) = &r.dataset {
        rows.push((
            "dataset".into(),
            format!(
                "{} events, {} files, {:.0} MiB",
                d.events,
                d.files,
                d.bytes as f64 / 1048576.0
            ),
            String::new(),
        ));
    }
    if let Some(s) = med(r.copy.iter().map(|c| c.seconds).collect()) {
        let rows_n = r.copy.first().map_or(0, |c| c.rows);
        rows.push((
            "(a) COPY of the clean rows".into(),
            format!("{s:.2} s, {:.0} rows/s", rows_n as f64 / s),
            format!("{} rows", rows_n),
        ));
    }
    if let Some(s) = med(r.run.iter().map(|x| x.seconds).collect()) {
        let read = r.run.first().map_or(0, |x| x.rows_read);
        let rss = med(r.run.iter().map(|x| x.peak_rss_mib).collect()).unwrap_or(0.0);
        rows.push((
            "(b) shopstream run --once".into(),
            format!("{s:.2} s, {:.0} rows/s", read as f64 / s),
            format!("peak {rss:.1} MiB"),
        ));
    }
    if let Some(x) = r.speed_ratio {
        rows.push((
            "speed ratio (a)/(b)".into(),
            format!("{x:.2}"),
            "target ≥ 1.0".into(),
        ));
    }
    if let Some(l) = &r.latency {
        rows.push((
            format!("(c) latency at {:.0} events/s", l.rate),
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
                l.p50_ms, l.p95_ms, l.p99_ms
            ),
            format!("{} files; target p99 ≤ 100 ms", l.files),
        ));
    }
    if let Some(s) = med(r.startup_ms.clone()) {
        rows.push((
            "start to first commit".into(),
            format!("{s:.1} ms (median of {})", r.startup_ms.len()),
            "target ≤ 100 ms".into(),
        ));
    }
    if let Some(b) = &r.big_file {
        rows.push((
            "(d) one big file".into(),
            format!(
                "{:.0} MiB, {:.1} s, {:.0} rows/s",
                b.bytes as f64 / 1048576.0,
                b.seconds,
                b.rows_per_sec
            ),
            format!("peak {:.1} MiB; target ≤ 100 MiB", b.peak_rss_mib),
        ));
    }
    let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (a, b, c) in rows {
        let pad0 = w0 - a.chars().count();
        let pad1 = w1 - b.chars().count();
        out.push_str(&format!(
            "{a}{}  {b}{}  {c}\n",
            " ".repeat(pad0),
            " ".repeat(pad1)
        ));
    }
    out
}
