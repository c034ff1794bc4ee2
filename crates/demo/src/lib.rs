//! `shopstream demo`: the generator and the loader together, printing what
//! flows, then proving the counts.
//!
//! The generator writes files continuously into a demo folder while the
//! loader watches it. On Ctrl-C (or `--duration-secs`) the generator stops,
//! the loader drains what is left, and the demo compares the database with
//! the generator's own report for this run: loaded, duplicate and rejected
//! rows must match exactly. It only wires existing stages together.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use shopstream_core::batch::BatchReport;
use shopstream_core::db::connect::Database;
use shopstream_core::observe::health::Health;
use shopstream_core::pipeline::run::{run, RunArgs};
use shopstream_core::shutdown::Shutdown;
use shopstream_generate::{GenerateArgs, Report};

/// `shopstream demo` options.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Events per second the demo generator writes.
    #[arg(long, env = "SHOPSTREAM_DEMO_RATE", default_value_t = 500)]
    pub rate: u32,

    /// Stop by itself after this many seconds (default: until Ctrl-C).
    #[arg(long, env = "SHOPSTREAM_DEMO_DURATION_SECS")]
    pub duration_secs: Option<u64>,

    /// Folder the demo generator writes to and the loader watches.
    #[arg(
        long,
        env = "SHOPSTREAM_DEMO_INPUT",
        default_value = ".shopstream/demo-input"
    )]
    pub input: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo options: {0}")]
    Options(String),
    #[error(transparent)]
    Generate(#[from] shopstream_generate::GenerateError),
    #[error(transparent)]
    Pipeline(#[from] shopstream_core::pipeline::run::PipelineError),
    #[error(transparent)]
    Db(#[from] shopstream_core::db::connect::DbError),
    #[error("database error while checking the counts: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("cannot create {path}: {source}")]
    Input {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Parser)]
struct GenWrapper {
    #[command(flatten)]
    args: GenerateArgs,
}

#[derive(Parser)]
struct RunWrapper {
    #[command(flatten)]
    args: RunArgs,
}

fn print_batch(r: &BatchReport) {
    if let Some(id) = r.batch_id {
        let codes: Vec<String> = r
            .rejects_by_code
            .iter()
            .map(|(c, n)| format!("{c}×{n}"))
            .collect();
        println!(
            "  loaded  batch {id:>5}: {:>3} file(s) {:>6} rows → {:>6} new, {:>4} duplicate, {:>4} dead letter(s) {}  [{} ms]",
            r.files.len(),
            r.rows_read,
            r.rows_loaded,
            r.rows_duplicate,
            r.rows_rejected,
            codes.join(" "),
            r.duration_ms
        );
    }
}

/// Runs the demo until `shutdown` (or the duration) and checks the counts.
/// Runs the demo. `health` is shared with the HTTP endpoint whose
/// dashboard URL (if it is on) is printed.
pub async fn demo(
    args: &DemoArgs,
    db: &Database,
    shutdown: &Shutdown,
    health: &Health,
    dashboard: Option<&str>,
) -> Result<(), DemoError> {
    std::fs::create_dir_all(&args.input).map_err(|source| DemoError::Input {
        path: args.input.display().to_string(),
        source,
    })?;
    let input = args.input.display().to_string();
    let rate = args.rate.max(1);
    // About two files a second.
    let per_file = (rate / 2).max(1).to_string();
    let gen = GenWrapper::try_parse_from([
        "generate",
        "--output",
        &input,
        "--rate",
        &rate.to_string(),
        "--events-per-file",
        &per_file,
    ])
    .map_err(|e| DemoError::Options(e.to_string()))?
    .args;
    let mut load = RunWrapper::try_parse_from(["run", "--input", &input, "--relist-secs", "1"])
        .map_err(|e| DemoError::Options(e.to_string()))?
        .args;

    println!("shopstream demo");
    println!("  database : {}", db.describe());
    println!("  folder   : {input} ({rate} events/s, ~2 files/s)");
    if let Some(url) = dashboard {
        println!("  dashboard: {url}  (metrics: {url}metrics)");
    }
    // The URL is only shown when it holds no password.
    let psql_target = if db.url_has_password() {
        "\"$DATABASE_URL\"".to_string()
    } else {
        format!("'{}'", db.url())
    };
    println!(
        "  inspect  : psql {psql_target} -c 'SELECT event_type, count(*) FROM ecommerce_events GROUP BY 1'"
    );
    println!("  stop     : Ctrl-C (the loader drains, then the counts are checked)\n");

    if let Some(secs) = args.duration_secs {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            s.trigger();
        });
    }
    let loader_stop = Shutdown::new();
    let generator = async {
        let r = shopstream_generate::generate(&gen, shutdown).await;
        loader_stop.trigger();
        r
    };
    let loader = run(&load, db, &loader_stop, health, print_batch);
    let (report, loaded) = tokio::join!(generator, loader);
    let report = report?;
    loaded?;
    // Drain what the generator wrote after the loader's last look.
    load.once = true;
    run(&load, db, &Shutdown::new(), health, print_batch).await?;
    check(db, &report).await
}

async fn check(db: &Database, report: &Report) -> Result<(), DemoError> {
    let client = db.connect().await?;
    let like = format!("%{}%", report.run_id);
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM ecommerce_events WHERE source_file LIKE $1),
                    (SELECT coalesce(sum(rows_duplicate), 0)::int8 FROM ingested_files WHERE path LIKE $1),
                    (SELECT count(*) FROM dead_letter_events WHERE source_file LIKE $1)",
            &[&like],
        )
        .await?;
    let (events, dups, dead): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let rejected: u64 = report.rejected.values().sum();
    println!("\n{}", report.summary());
    println!(
        "database for this run: {events} events, {dups} duplicates counted, {dead} dead letters"
    );
    let ok = events as u64 == report.loaded
        && dups as u64 == report.duplicates
        && dead as u64 == rejected;
    if ok {
        println!("exactly once: every generated row is in exactly one place ✓");
    } else {
        println!(
            "MISMATCH: expected {} events, {} duplicates, {} dead letters",
            report.loaded, report.duplicates, rejected
        );
    }
    Ok(())
}
