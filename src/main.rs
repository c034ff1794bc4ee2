//! The `shopstream` binary: parses arguments and wires the stages together.
//! All behaviour lives in the library; this file only decides which stage
//! runs with which options, and turns errors into exit codes.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use shopstream::bench::BenchArgs;
use shopstream::check::{CheckArgs, CheckError};
use shopstream::db::connect::{Database, DbArgs, DbError};
use shopstream::db::roles::{self, RoleArgs};
use shopstream::deadletters::{ListArgs, ReplayArgs};
use shopstream::demo::DemoArgs;
use shopstream::generate::GenerateArgs;
use shopstream::observe::dashboard::Dashboard;
use shopstream::observe::health::Health;
use shopstream::observe::http::{Endpoint, HttpArgs, HttpState};
use shopstream::observe::redact;
use shopstream::pipeline::run::{PipelineError, RunArgs};
use shopstream::report::{ReportArgs, ReportError};
use shopstream::requeue::RequeueArgs;
use shopstream::retention::PruneArgs;
use shopstream::schema::declared::{DeclaredError, LayoutsArgs};
use shopstream::schema::show::Format;
use shopstream::schema::UnknownLayout;
use shopstream::shutdown::Shutdown;
use shopstream::status::StatusArgs;

/// Loads e-commerce event files (CSV or JSON Lines, plain, gzip or zstd)
/// into PostgreSQL: validated, deduplicated, exactly once, in real time.
///
/// Without --database-url (or DATABASE_URL / POSTGRES_HOST) shopstream
/// starts its own private PostgreSQL server in --data-dir, from the
/// PostgreSQL binaries installed on this machine.
#[derive(Parser, Debug)]
#[command(name = "shopstream", version, propagate_version = true)]
#[command(after_help = "Examples:
  shopstream run --input ./incoming            watch a folder, load into a private PostgreSQL
  shopstream run --once --database-url URL     load what is there into a server, then exit
  shopstream generate --files 10               write 10 files of fake events
  shopstream completions bash > /etc/bash_completion.d/shopstream
  shopstream man --out /usr/local/share/man/man1

`shopstream COMMAND -h` shows one line per option, `--help` the details.")]
struct Cli {
    /// Log level: error, warn, info, debug or trace [default: info; warn for
    /// `demo`, `bench`, `status` and `check`, which print their own lines].
    #[arg(long, global = true, env = "SHOPSTREAM_LOG", help_heading = "Logging")]
    log_level: Option<tracing::Level>,

    /// Log format on stderr: text (for people) or json (one object per
    /// line, for log collectors; the final error too).
    #[arg(long, global = true, env = "SHOPSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
    log_format: LogFormat,

    /// Colour in text logs: auto (only on a terminal, and not when NO_COLOR
    /// is set and non-empty), always or never.
    #[arg(long, global = true, env = "SHOPSTREAM_COLOR", value_enum, default_value_t = ColorWhen::Auto, help_heading = "Logging")]
    color: ColorWhen,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// `--color`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether text logs on stderr are coloured (https://no-color.org:
    /// NO_COLOR set and non-empty turns `auto` off).
    fn enabled(self) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch a folder (or an s3:// prefix) and load every event file (CSV or
    /// JSON Lines, plain, gzip or zstd) into PostgreSQL exactly once.
    #[command(after_help = RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        run: Box<RunArgs>,
        #[command(flatten, next_help_heading = "HTTP")]
        http: HttpArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Write realistic fake event files (bounded or continuous).
    #[command(after_help = GENERATE_EXAMPLES)]
    Generate(GenerateArgs),
    /// Apply the schema migrations and exit; optionally create the
    /// least-privilege ingest role `run` can work under.
    #[command(after_help = MIGRATE_EXAMPLES)]
    Migrate {
        #[command(flatten)]
        role: RoleArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Print the analytics views as tables, JSON or CSV.
    ///
    /// Funnels, categories, top products, segments, sessions, data quality
    /// and dead letters, from the v_* views. It only reads: it never
    /// migrates, and a database without the schema (version 4 or later)
    /// is refused with exit code 2.
    #[command(after_help = REPORT_EXAMPLES)]
    Report {
        #[command(flatten)]
        report: ReportArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Print what a person on call asks first, with an exit code for scripts:
    /// 0 healthy, 1 degraded, 2 down.
    ///
    /// Files waiting in --input and the age of the oldest, the last commit,
    /// events loaded in the last minute, hour and day, validity, dead
    /// letters by code today, and each --endpoint's readiness, breaker and
    /// last error. Down: the database or an endpoint cannot be reached.
    /// Degraded: a file waits longer than --max-wait-secs, or a loader is
    /// not ready. It only reads, and never migrates.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        #[command(flatten)]
        status: StatusArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Dry run: read files or folders as `run` would, without any database,
    /// and tell per file what would become of it.
    ///
    /// Per file: its format and detected layout, rows read, valid and
    /// invalid, the reason codes with counts, the first failing lines
    /// (file:line, column, message), event ids repeated within the checked
    /// files (not an error: run counts them duplicates), and whether the
    /// whole file would be rejected. Same options as `run` for reading and
    /// validation. Exit 0 when every file would load cleanly, 1 when some
    /// row would be a dead letter, 2 when some file would be rejected.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(Box<CheckArgs>),
    /// List the rows validation (or the database) refused, or replay them
    /// under today's rules, layouts and limits.
    #[command(after_help = DEAD_LETTERS_EXAMPLES)]
    DeadLetters {
        #[command(subcommand)]
        what: DeadLettersCommand,
    },
    /// Move quarantined files back into the input, so that the next `run`
    /// reads them again; the ledger keeps their rejection.
    ///
    /// Folder input only. Each file goes back where it was delivered (a
    /// numbered name beside it if that name is taken), its .reason.txt is
    /// deleted, and its rejected ledger rows are marked requeued.
    #[command(after_help = REQUEUE_EXAMPLES)]
    Requeue {
        #[command(flatten)]
        requeue: RequeueArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Remove events, dead letters and quality rows older than a bound,
    /// once (`run --retention` does it hourly).
    ///
    /// Monthly partitions of ecommerce_events whose whole month is older
    /// are dropped (cheap at any size); rows of the default partition,
    /// dead letters (by rejection time) and quality rows (by commit time)
    /// older than the bound are deleted. It first makes the partitions of
    /// this month and the next three. It waits for the loaders' writer
    /// lock and holds it until it commits, so it never races a batch. The
    /// ledger (ingested_files) is never pruned: it keeps files from loading
    /// twice. Run it as the tables' owner.
    #[command(after_help = PRUNE_EXAMPLES)]
    Prune {
        #[command(flatten)]
        prune: PruneArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Print the layouts shopstream reads (its own versions v1–v3, the
    /// layouts other pipelines write and those declared with --layouts) and
    /// how each maps to the current one, or start a declared layout.
    #[command(after_help = SCHEMA_EXAMPLES)]
    Schema {
        #[command(subcommand)]
        what: SchemaCommand,
    },
    /// Generator and loader together on the embedded database, printing
    /// what flows. Ctrl-C stops it and checks the counts.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo {
        #[command(flatten)]
        demo: DemoArgs,
        #[command(flatten, next_help_heading = "HTTP")]
        http: HttpArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Measure shopstream against PostgreSQL's own COPY on this machine:
    /// throughput, latency, start-up and memory (see BENCHMARKS.md).
    ///
    /// Generates its datasets in --dir, loads each into a fresh database on
    /// the server (created and dropped by the bench: the user needs the
    /// CREATEDB right), prints a table and writes JSON.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench {
        #[command(flatten)]
        bench: BenchArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Print a shell completion script to stdout.
    #[command(after_help = "Examples:
  shopstream completions bash > ~/.local/share/bash-completion/completions/shopstream
  shopstream completions zsh > \"${fpath[1]}/_shopstream\"
  shopstream completions fish > ~/.config/fish/completions/shopstream.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command
    /// into a folder.
    #[command(after_help = "Examples:
  shopstream man | man -l -                       read it now
  shopstream man --out /usr/local/share/man/man1  install shopstream.1, shopstream-run.1, ...")]
    Man {
        /// Write shopstream.1 and one page per subcommand
        /// (shopstream-run.1, ...) into this folder instead of printing.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Print documentation generated from this command-line definition.
    #[command(hide = true)]
    Docs {
        #[command(subcommand)]
        what: DocsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DeadLettersCommand {
    /// Print the dead letters (newest first): file and line, codes, raw
    /// line, and whether a replay moved them.
    List {
        #[command(flatten)]
        list: ListArgs,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
    /// Validate the dead letters again under the rules, layouts and options
    /// given (as for `run`), and move those that now pass into
    /// ecommerce_events, in one transaction.
    ///
    /// Those moved are marked replayed (loaded, or duplicate when their
    /// event id was loaded already); those still invalid stay dead letters,
    /// unchanged. Run twice, or killed half-way, it never loads an event
    /// twice and never loses one. It waits for the loaders' writer lock and
    /// holds it until it commits.
    Replay {
        #[command(flatten)]
        replay: Box<ReplayArgs>,
        #[command(flatten, next_help_heading = "Database")]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
enum DocsCommand {
    /// docs/configuration.md: every command's options, environment
    /// variables and defaults, as Markdown.
    #[command(alias = "config")]
    Configuration,
}

const RUN_EXAMPLES: &str = "Examples:
  shopstream run                                        watch ./incoming, private PostgreSQL in ./.shopstream
  shopstream run --once --input /data/backfill          load what is there, then exit
  shopstream run --input s3://bucket/events/ --database-url postgres://loader@db/shop
  shopstream run --batch-max-bytes 64MiB --after-load archive --http-addr off

Sizes take units (1024-based): 64K, 512MiB, 2G. `-h` shows one line per option, `--help` the details.";
const GENERATE_EXAMPLES: &str = "Examples:
  shopstream generate --files 10                 10 files, then exit
  shopstream generate --rate 500                 500 events/s until Ctrl-C
  shopstream generate --files 3 --seed 7 --output /tmp/in";
const MIGRATE_EXAMPLES: &str = "Examples:
  shopstream migrate --database-url postgres://admin@db/shop
  SHOPSTREAM_INGEST_PASSWORD=... shopstream migrate --create-ingest-role loader
  shopstream migrate --create-ingest-role loader --print-ingest-role-sql > role.sql";
const REPORT_EXAMPLES: &str = "Examples:
  shopstream report                               every section, as tables
  shopstream report --format json > report.json";
const STATUS_EXAMPLES: &str = "Examples:
  shopstream status --input ./incoming                    files waiting, last commit, validity
  shopstream status --endpoint http://127.0.0.1:9898      and the loader's breaker and last error
  shopstream status --format json || page-on-call         exit 1 degraded, 2 down";
const CHECK_EXAMPLES: &str = "Examples:
  shopstream check ./sample-export/                  every file run would take, as a table
  shopstream check day.csv.gz events.jsonl --show 20
  shopstream check ./in --max-reject-ratio 0.5 --format json | jq '.files[] | select(.verdict != \"clean\")'";
const DEAD_LETTERS_EXAMPLES: &str = "Examples:
  shopstream dead-letters list --code extreme_price --since 24h
  shopstream dead-letters replay --max-price 50000 --dry-run     what a raised limit would load
  shopstream dead-letters replay --max-price 50000 --code extreme_price";
const REQUEUE_EXAMPLES: &str = "Examples:
  shopstream requeue incoming/_quarantine/2026-01-02.csv
  shopstream requeue --code unknown_layout --dry-run      what would move
  shopstream requeue --code too_large --input /data/in";
const PRUNE_EXAMPLES: &str = "Examples:
  shopstream prune --older-than 90d --dry-run             what would go
  shopstream prune --older-than 6months --format json";
const SCHEMA_EXAMPLES: &str = "Examples:
  shopstream schema list
  shopstream schema show seed003 --format json
  shopstream schema init export.csv > shop.toml          a declared layout to edit
  shopstream schema show shop --layouts shop.toml";
const DEMO_EXAMPLES: &str = "Examples:
  shopstream demo                                 Ctrl-C stops it and checks the counts";
const BENCH_EXAMPLES: &str = "Examples:
  shopstream bench --events 100000 --steps run,copy
  shopstream bench --database-url postgres://bench@db/postgres --run-arg=--connections=1";

impl Command {
    /// Every secret the arguments and the environment hold, for the output
    /// scrubber.
    fn secrets(&self) -> Vec<String> {
        // The HTTP token registers itself once it is accepted (a refused,
        // too short one is never echoed).
        let mut out: Vec<String> = [roles::PASSWORD_ENV, "PGPASSWORD"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .collect();
        match self {
            Command::Run { db, .. }
            | Command::Migrate { db, .. }
            | Command::Report { db, .. }
            | Command::Status { db, .. }
            | Command::Demo { db, .. }
            | Command::Bench { db, .. }
            | Command::Requeue { db, .. }
            | Command::Prune { db, .. }
            | Command::DeadLetters {
                what: DeadLettersCommand::List { db, .. } | DeadLettersCommand::Replay { db, .. },
            } => out.extend(db.secrets()),
            Command::Generate(_)
            | Command::Check(_)
            | Command::Schema { .. }
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Docs { .. } => {}
        }
        out
    }
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// One line per layout: kind, date introduced (or file declaring it),
    /// column count.
    List {
        /// text (aligned columns) or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        layouts: LayoutsArgs,
    },
    /// A layout's columns, their canonical targets, types and value forms,
    /// how its files are read, and what migration fills in for the columns
    /// it lacks.
    Show {
        /// v1, v2, v3, seed000, seed001, seed002, seed003, seed004, or the
        /// name of a layout declared with --layouts.
        layout: String,
        /// text (aligned columns) or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        layouts: LayoutsArgs,
    },
    /// Print a declared layout (TOML) for files like a sample CSV file, to
    /// check, edit and pass to --layouts.
    ///
    /// The delimiter is the one that splits the header into most fields.
    /// Each column is guessed from its name (a canonical column, a column
    /// of a known layout, or a common one such as customer, sku or
    /// amount), else from the first rows' values: UUIDs
    /// are event_id, times event_time (with their format), event types
    /// event_type, numbers with two decimals price (a decimal comma noted);
    /// anything else goes to extra.
    Init {
        /// A sample file of the layout (plain CSV).
        file: std::path::PathBuf,
        #[command(flatten)]
        layouts: LayoutsArgs,
    },
}

/// The command line as clap sees it: the derived definition with the
/// version line and the help shaped (`-h`: one line per option).
fn cli_command() -> clap::Command {
    let short = std::env::args_os().any(|a| a == "-h");
    shopstream::help::shape(
        Cli::command().version(shopstream::help::VERSION.as_str()),
        short,
    )
}

fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&cli_command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Secrets are registered before anything can print them.
    redact::install_panic_hook();
    for secret in cli.command.secrets() {
        redact::register(&secret);
    }
    let default_level = match cli.command {
        Command::Demo { .. }
        | Command::Bench { .. }
        | Command::Status { .. }
        | Command::Check(_) => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    let level = cli.log_level.unwrap_or(default_level);
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_writer(redact::stderr);
    let json = cli.log_format == LogFormat::Json;
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(cli.color.enabled()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    match &cli.command {
        Command::Completions { shell } => {
            return print_help_output(shopstream::help::completions(*shell, &mut cli_command()))
        }
        Command::Man { out } => {
            let written = shopstream::help::man(cli_command(), out.as_deref());
            return print_help_output(written.map(|files| {
                for f in files {
                    println!("wrote {}", f.display());
                }
            }));
        }
        _ => {}
    }
    // Connections and files must not run out at a low soft limit.
    match shopstream::rlimit::raise_open_files() {
        Ok(Some((from, to))) => tracing::debug!("raised the open files limit from {from} to {to}"),
        Ok(None) => {}
        Err(e) => tracing::warn!("{e}"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            fatal(json, &format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // A panic unwinds out of `block_on`, dropping the embedded server's
    // handle unstopped; the server is stopped all the same before exiting.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(run(cli.command))
    }));
    shopstream::db::embedded::stop_dropped();
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            fatal(json, &error_text(&e));
            exit_code(&e)
        }
        // The panic hook has printed the message; 101 as for any panic.
        Err(_) => ExitCode::from(101),
    }
}

/// The last line of a failed run: `error: ...` for people, or (with
/// `--log-format json`) one more JSON log line at level ERROR, so that
/// every line on stderr parses.
fn fatal(json: bool, message: &str) {
    if json {
        tracing::error!(fatal = true, "{message}");
    } else {
        redact::eprint(&format!("error: {message}\n"));
    }
}

/// Exit status of `completions` and `man`.
fn print_help_output(result: Result<(), shopstream::help::HelpError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": " (as `{:#}` does), each cause
/// once: one a message already quotes (`... : {source}`) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// 2 for settings a person must fix (like a usage error: an invalid
/// option value or connection string, a refused login), else 1.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    let config = e.chain().any(|c| {
        // Nothing to report on: exit 2, as for a wrong invocation.
        matches!(
            c.downcast_ref::<ReportError>(),
            Some(ReportError::NoSchema { .. })
        ) || c.downcast_ref::<DbError>().is_some_and(DbError::is_config)
            || c.downcast_ref::<PipelineError>()
                .is_some_and(PipelineError::is_config)
            || c.downcast_ref::<shopstream::requeue::RequeueError>()
                .is_some_and(shopstream::requeue::RequeueError::is_config)
            || matches!(
                c.downcast_ref::<shopstream::retention::RetentionError>(),
                Some(shopstream::retention::RetentionError::TooLong(_))
            )
            || c.downcast_ref::<CheckError>()
                .is_some_and(CheckError::is_config)
            || c.is::<DeclaredError>()
            || c.is::<UnknownLayout>()
    });
    if config {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// An existing database (an embedded cluster is never created), migrated,
/// and a connection to it; the database is closed on failure.
async fn connect_existing(args: &DbArgs) -> anyhow::Result<(Database, tokio_postgres::Client)> {
    let db = Database::open_existing(args).await?;
    let client = async {
        let mut client = db.connect().await?;
        shopstream::db::migrate::migrate(&mut client)
            .await
            .with_context(|| format!("migrating {}", db.describe()))?;
        anyhow::Ok(client)
    }
    .await;
    match client {
        Ok(c) => Ok((db, c)),
        Err(e) => {
            db.close().await?;
            Err(e)
        }
    }
}

async fn open_migrated(args: &DbArgs) -> anyhow::Result<Database> {
    let db = Database::open(args).await?;
    let mut client = db.connect().await?;
    shopstream::db::migrate::migrate(&mut client)
        .await
        .with_context(|| format!("migrating {}", db.describe()))?;
    Ok(db)
}

/// Starts the HTTP endpoint (metrics, health, dashboard) when one was
/// bound; returns the dashboard's URL.
fn serve(
    endpoint: Option<Endpoint>,
    db: &Database,
    health: &Health,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<String>> {
    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let metrics =
        shopstream::observe::metrics::install().context("installing the metrics recorder")?;
    let url = endpoint.url();
    let state = HttpState {
        metrics: Some(metrics),
        health: health.clone(),
        dashboard: Some(Dashboard::new(db)),
    };
    endpoint.spawn(state, shutdown.clone());
    Ok(Some(url))
}

/// `println!` that ends quietly when the reader went away (`| head`)
/// instead of panicking: `outln!(...)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        print_out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Runs the command; its exit code when it ends without an error (only
/// `status` says something else than success).
async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::new();
    // A second signal exits at once; the embedded server this process
    // started is stopped first, as on any other way out.
    shopstream::shutdown::before_forced_exit(shopstream::db::embedded::stop_running);
    shutdown.on_signals()?;
    match command {
        Command::Run { run, http, db } => run_loader(&run, &http, &db, &shutdown).await?,
        Command::Generate(args) => {
            let report = shopstream::generate::generate(&args, &shutdown).await?;
            outln!("{}", report.summary())?;
            if let Some(path) = &args.report_json {
                report.write_json(path)?;
            }
        }
        Command::Migrate { role, db } => migrate(&role, &db).await?,
        Command::Schema { what } => schema(what)?,
        Command::Report { report, db } => {
            // Never migrates, never creates a cluster: a database without
            // the schema, or no database at all, is refused.
            let db = Database::open_existing(&db).await?;
            let result = async {
                let mut client = db.connect().await?;
                shopstream::report::check_schema(&client, &db.describe()).await?;
                anyhow::Ok(shopstream::report::report(&mut client, &report).await?)
            }
            .await;
            db.close().await?;
            print_out(&result?)?;
        }
        Command::Status { status, db } => {
            // Never fails: what cannot be read is part of the status.
            let found = shopstream::status::status(&status, &db).await;
            print_out(&shopstream::status::render(&found, status.format)?)?;
            return Ok(ExitCode::from(found.exit_code));
        }
        Command::Check(args) => {
            // No database: the files are read as `run` reads them, off the
            // async runtime.
            let format = args.format;
            let report = tokio::task::spawn_blocking(move || shopstream::check::check(&args))
                .await
                .context("the check stopped")??;
            print_out(&shopstream::check::render(&report, format)?)?;
            return Ok(ExitCode::from(report.exit_code));
        }
        Command::DeadLetters { what } => dead_letters(what).await?,
        Command::Requeue { requeue, db } => {
            if requeue
                .input
                .to_str()
                .is_some_and(shopstream::source::store::is_url)
            {
                anyhow::bail!(shopstream::requeue::RequeueError::ObjectStore(
                    requeue.input.display().to_string()
                ));
            }
            let (db, mut client) = connect_existing(&db).await?;
            let result = shopstream::requeue::requeue(&mut client, &requeue).await;
            drop(client);
            db.close().await?;
            print_out(&shopstream::requeue::render(
                &result?,
                requeue.dry_run,
                requeue.format,
            )?)?;
        }
        Command::Prune { prune, db } => prune_once(&prune, &db).await?,
        Command::Demo { demo, http, db } => {
            let endpoint = http.bind().await?;
            let db = open_migrated(&db).await?;
            let health = Health::default();
            let url = serve(endpoint, &db, &health, &shutdown)?;
            let result =
                shopstream::demo::demo(&demo, &db, &shutdown, &health, url.as_deref()).await;
            db.close().await?;
            result?;
        }
        Command::Bench { bench, db } => {
            let db = Database::open(&db).await?;
            let result = shopstream::bench::bench(&bench, &db, &shutdown).await;
            db.close().await?;
            result?;
        }
        Command::Docs { what } => match what {
            DocsCommand::Configuration => print_out(&shopstream::clidoc::configuration(
                &<Cli as clap::CommandFactory>::command(),
            ))?,
        },
        // Printed by main() before the runtime starts.
        Command::Completions { .. } | Command::Man { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `shopstream run`: the loader, and its endpoint when there is one.
/// `shopstream prune`: one prune, its report printed.
async fn prune_once(prune: &shopstream::retention::PruneArgs, db: &DbArgs) -> anyhow::Result<()> {
    let (db, mut client) = connect_existing(db).await?;
    let result =
        shopstream::retention::prune(&mut client, prune.older_than, prune.dry_run, None).await;
    drop(client);
    db.close().await?;
    print_out(&shopstream::retention::render(&result?, prune.format)?)?;
    Ok(())
}

async fn run_loader(
    run: &RunArgs,
    http: &HttpArgs,
    args: &DbArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    // Options, limits, input and an endpoint that may not be
    // served are refused before anything is created or started.
    // The loader connects and migrates itself, waiting for the
    // database with backoff. `--once` serves HTTP only when asked.
    run.preflight()?;
    let endpoint = match (run.once, &http.http_addr) {
        (true, None) => None,
        _ => http.bind().await?,
    };
    let db = Database::open(args).await?;
    if std::env::var_os(redact::DEBUG_PANIC_ENV).is_some() {
        // Fault injection for the secrets and lifecycle tests: the
        // message holds the URL (the panic hook must scrub it), and
        // the embedded server, if any, must stop all the same.
        panic!(
            "debug panic ({}): {:?}",
            redact::DEBUG_PANIC_ENV,
            args.database_url
        );
    }
    let health = Health::default();
    serve(endpoint, &db, &health, shutdown)?;
    let result = shopstream::pipeline::run::run(run, &db, shutdown, &health, |_| {}).await;
    db.close().await?;
    let summary = result?;
    outln!("{}", serde_json::to_string(&summary)?)?;
    Ok(())
}

/// `shopstream migrate`, and the ingest role when asked.
async fn migrate(role: &RoleArgs, db: &DbArgs) -> anyhow::Result<()> {
    let db = Database::open(db).await?;
    let result = async {
        let mut client = db.connect().await?;
        let report = shopstream::db::migrate::migrate(&mut client).await?;
        // With --print-ingest-role-sql stdout is an SQL script.
        let note = if role.print_ingest_role_sql {
            "-- "
        } else {
            ""
        };
        for (v, name) in &report.applied {
            outln!("{note}applied migration {v} ({name})")?;
        }
        // The coming months' partitions of the event table; a role that
        // does not own it cannot, and is told so without failing.
        match shopstream::retention::maintain(&mut client, None).await {
            Ok(made) => {
                for p in &made.created {
                    outln!("{note}created partition {p}")?;
                }
            }
            Err(e) => tracing::warn!(
                "could not make the coming months' partitions of ecommerce_events ({e}); run \
                 `shopstream migrate` or `shopstream prune` as the table's owner"
            ),
        }
        outln!(
            "{note}{} is at schema version {}",
            db.describe(),
            report.current
        )?;
        let Some(name) = &role.create_ingest_role else {
            return anyhow::Ok(());
        };
        if role.print_ingest_role_sql {
            print_out(&roles::ingest_role_script(&client, name).await?)?;
            return Ok(());
        }
        let password = std::env::var(roles::PASSWORD_ENV).ok();
        let r = roles::create_ingest_role(&mut client, name, password.as_deref()).await?;
        outln!(
            "ingest role {} {} in database {} (schema {}): it may load files and \
             nothing more{}",
            r.role,
            if r.created { "created" } else { "reset" },
            r.database,
            r.schema,
            match (r.password_set, r.created) {
                (true, _) => format!("; password set from {}", roles::PASSWORD_ENV),
                (false, true) => format!(
                    "; it has no password ({} was not set): it can only log in where \
                     the server trusts it (peer, cert or trust)",
                    roles::PASSWORD_ENV
                ),
                (false, false) => "; its password is unchanged".to_string(),
            }
        )?;
        Ok(())
    }
    .await;
    db.close().await?;
    result?;
    Ok(())
}

/// `shopstream schema list|show|init`.
fn schema(what: SchemaCommand) -> anyhow::Result<()> {
    use shopstream::schema::{init, show};
    match what {
        SchemaCommand::List { format, layouts } => {
            print_out(&show::list(layouts.registry()?, format))
        }
        SchemaCommand::Show {
            layout,
            format,
            layouts,
        } => {
            let found = layouts.registry()?.get(&layout)?;
            print_out(&show::show(found, format))
        }
        SchemaCommand::Init { file, layouts } => {
            print_out(&init::init(&file, layouts.registry()?)?)
        }
    }
}

/// `shopstream dead-letters list|replay`.
async fn dead_letters(what: DeadLettersCommand) -> anyhow::Result<()> {
    use shopstream::deadletters::{self, render};
    match what {
        DeadLettersCommand::List { list, db } => {
            let (db, mut client) = connect_existing(&db).await?;
            let result = deadletters::list(&mut client, &list).await;
            drop(client);
            db.close().await?;
            print_out(&render::listing(&result?, list.format)?)
        }
        DeadLettersCommand::Replay { replay, db } => {
            // A wrong limit or layout is refused before anything is opened.
            let rules = replay.rules.rules()?;
            let layouts = replay.rules.registry()?;
            let (db, mut client) = connect_existing(&db).await?;
            let result = deadletters::replay::replay(&mut client, &replay, rules, layouts).await;
            drop(client);
            db.close().await?;
            print_out(&render::replay(&result?, replay.format)?)
        }
    }
}
