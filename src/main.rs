//! The `shopstream` binary: parses arguments and wires the stages together.
//! All behaviour lives in the library; this file only decides which stage
//! runs with which options, and turns errors into exit codes.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use shopstream::bench::BenchArgs;
use shopstream::db::connect::{Database, DbArgs, DbError};
use shopstream::db::roles::{self, RoleArgs};
use shopstream::demo::DemoArgs;
use shopstream::generate::GenerateArgs;
use shopstream::observe::dashboard::Dashboard;
use shopstream::observe::health::Health;
use shopstream::observe::http::{Endpoint, HttpArgs, HttpState};
use shopstream::observe::redact;
use shopstream::pipeline::run::{PipelineError, RunArgs};
use shopstream::report::{ReportArgs, ReportError};
use shopstream::schema::show::Format;
use shopstream::schema::LayoutId;
use shopstream::shutdown::Shutdown;

/// Loads e-commerce event CSV files into PostgreSQL: validated,
/// deduplicated, exactly once, in real time.
///
/// Without --database-url (or DATABASE_URL / POSTGRES_HOST) shopstream
/// starts its own private PostgreSQL server in --data-dir, from the
/// PostgreSQL binaries installed on this machine.
#[derive(Parser, Debug)]
#[command(name = "shopstream", version, propagate_version = true)]
struct Cli {
    /// Log level: error, warn, info, debug or trace [default: info; warn for
    /// `demo` and `bench`, which print their own lines].
    #[arg(long, global = true, env = "SHOPSTREAM_LOG")]
    log_level: Option<tracing::Level>,

    /// Log format on stderr: text (for people; coloured on a terminal) or
    /// json (one object per line, for log collectors).
    #[arg(long, global = true, env = "SHOPSTREAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch a folder (or an s3:// prefix) and load every CSV file into
    /// PostgreSQL exactly once.
    Run {
        #[command(flatten)]
        run: Box<RunArgs>,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Write realistic fake event files (bounded or continuous).
    Generate(GenerateArgs),
    /// Apply the schema migrations and exit; optionally create the
    /// least-privilege ingest role `run` can work under.
    Migrate {
        #[command(flatten)]
        role: RoleArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the analytics views as tables, JSON or CSV.
    ///
    /// Funnels, categories, top products, segments, sessions, data quality
    /// and dead letters, from the v_* views. It only reads: it never
    /// migrates, and a database without the schema (version 4 or later)
    /// is refused with exit code 2.
    Report {
        #[command(flatten)]
        report: ReportArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the layouts shopstream reads (versions v1–v3 and the seed
    /// systems' layouts) and how each migrates to the current version.
    Schema {
        #[command(subcommand)]
        what: SchemaCommand,
    },
    /// Generator and loader together on the embedded database, printing
    /// what flows. Ctrl-C stops it and checks the counts.
    Demo {
        #[command(flatten)]
        demo: DemoArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Measure shopstream against PostgreSQL's own COPY on this machine:
    /// throughput, latency, start-up and memory (see BENCHMARKS.md).
    ///
    /// Generates its datasets in --dir, loads each into a fresh database on
    /// the server (created and dropped by the bench: the user needs the
    /// CREATEDB right), prints a table and writes JSON.
    Bench {
        #[command(flatten)]
        bench: BenchArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

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
            | Command::Demo { db, .. }
            | Command::Bench { db, .. } => out.extend(db.secrets()),
            Command::Generate(_) | Command::Schema { .. } => {}
        }
        out
    }
}

#[derive(Subcommand, Debug)]
enum SchemaCommand {
    /// One line per layout: kind, date introduced, column count.
    List {
        /// text (aligned columns) or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// A layout's columns, their canonical targets, types and value forms,
    /// and what migration fills in for the columns it lacks.
    Show {
        /// v1, v2, v3, seed000, seed001, seed002, seed003 or seed004.
        #[arg(value_enum)]
        layout: LayoutId,
        /// text (aligned columns) or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Secrets are registered before anything can print them.
    redact::install_panic_hook();
    for secret in cli.command.secrets() {
        redact::register(&secret);
    }
    let default_level = match cli.command {
        Command::Demo { .. } | Command::Bench { .. } => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    let level = cli.log_level.unwrap_or(default_level);
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_writer(redact::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
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
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", redact::scrub(&format!("{e:#}")));
            exit_code(&e)
        }
    }
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
    });
    if config {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
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

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let shutdown = Shutdown::new();
    shutdown.on_signals()?;
    match command {
        Command::Run { run, http, db } => {
            if std::env::var_os(redact::DEBUG_PANIC_ENV).is_some() {
                // Fault injection for the secrets test: the message holds
                // the URL; the panic hook must scrub it.
                panic!(
                    "debug panic ({}): {:?}",
                    redact::DEBUG_PANIC_ENV,
                    db.database_url
                );
            }
            // An endpoint that may not be served is refused before any
            // database work. The loader connects and migrates itself,
            // waiting for the database with backoff.
            let endpoint = http.bind().await?;
            let db = Database::open(&db).await?;
            let health = Health::default();
            serve(endpoint, &db, &health, &shutdown)?;
            let result =
                shopstream::pipeline::run::run(&run, &db, &shutdown, &health, |_| {}).await;
            db.close().await?;
            let summary = result?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Generate(args) => {
            let report = shopstream::generate::generate(&args, &shutdown).await?;
            println!("{}", report.summary());
            if let Some(path) = &args.report_json {
                report.write_json(path)?;
            }
        }
        Command::Migrate { role, db } => {
            let db = Database::open(&db).await?;
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
                    println!("{note}applied migration {v} ({name})");
                }
                println!(
                    "{note}{} is at schema version {}",
                    db.describe(),
                    report.current
                );
                let Some(name) = &role.create_ingest_role else {
                    return anyhow::Ok(());
                };
                if role.print_ingest_role_sql {
                    print_out(&roles::ingest_role_script(&client, name).await?)?;
                    return Ok(());
                }
                let password = std::env::var(roles::PASSWORD_ENV).ok();
                let r = roles::create_ingest_role(&mut client, name, password.as_deref()).await?;
                println!(
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
                );
                Ok(())
            }
            .await;
            db.close().await?;
            result?;
        }
        Command::Schema { what } => match what {
            SchemaCommand::List { format } => print!("{}", shopstream::schema::show::list(format)),
            SchemaCommand::Show { layout, format } => {
                print!("{}", shopstream::schema::show::show(layout, format))
            }
        },
        Command::Report { report, db } => {
            // Never migrates: a database without the schema is refused.
            let db = Database::open(&db).await?;
            let result = async {
                let mut client = db.connect().await?;
                shopstream::report::check_schema(&client, &db.describe()).await?;
                anyhow::Ok(shopstream::report::report(&mut client, &report).await?)
            }
            .await;
            db.close().await?;
            print_out(&result?)?;
        }
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
    }
    Ok(())
}
