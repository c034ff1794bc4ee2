//! `shopstream report`: the analytics views of migration 0004 (`v_*`) turned
//! into titled, aligned tables for people and JSON or CSV for scripts.
//!
//! It owns the report's sections (which view each reads, its columns, their
//! types and display, row order and `--limit`) and the three output formats.
//! It must never write to the database: every query runs in one read-only,
//! repeatable-read transaction (so all sections see the same snapshot) that
//! is rolled back, and the only SQL it sends is fixed text naming the
//! whitelisted views of [`Section`]; user input reaches a query only as the
//! bound row limit. The views themselves (what revenue and each rate mean)
//! are defined and documented in `crates/core/migrations/0004_analytics_views.sql`
//! (`v_category_performance`'s `avg_price` as redefined by
//! `0007_category_avg_price.sql`: over the purchases and add-to-carts with
//! a price above 0, the event types that carry a price in every layout).
//! It never migrates either: a database without the views is an error
//! ([`ReportError::NoSchema`]), checked by reading the schema version; and
//! the binary opens the database with `Database::open_existing`, so a
//! `--data-dir` without an embedded cluster is refused, never created.

mod render;
mod sections;

pub use render::{aligned, render, Format};
pub use sections::{Column, Kind, Section};

use tokio_postgres::Client;

/// The options of `shopstream report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Sections to print, in the order given (repeatable, or comma-separated
    /// in the environment variable) [default: all of them, in the order listed here].
    #[arg(
        long = "view",
        value_name = "NAME",
        value_enum,
        env = "SHOPSTREAM_REPORT_VIEW",
        value_delimiter = ','
    )]
    pub views: Vec<Section>,

    /// Output format. Section keys in JSON and CSV are the --view names
    /// with "_" for "-" (top_products).
    #[arg(long, value_enum, env = "SHOPSTREAM_REPORT_FORMAT", default_value_t = Format::Table)]
    pub format: Format,

    /// Most rows per section; 0 prints every row.
    #[arg(
        long,
        env = "SHOPSTREAM_REPORT_LIMIT",
        default_value_t = 20,
        value_name = "N"
    )]
    pub limit: u32,
}

impl ReportArgs {
    /// The sections asked for, each once, in the order given; all of them
    /// when none was named.
    pub fn sections(&self) -> Vec<Section> {
        if self.views.is_empty() {
            return Section::ALL.to_vec();
        }
        let mut out: Vec<Section> = Vec::new();
        for s in &self.views {
            if !out.contains(s) {
                out.push(*s);
            }
        }
        out
    }
}

/// The schema version that has the analytics views.
pub const NEEDS_SCHEMA: i32 = 4;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "{database} has no shopstream schema to report on (schema version {found}; the report \
         needs {needs} or later and never creates it): load files into it with `shopstream \
         run`, or create the schema with `shopstream migrate`"
    )]
    NoSchema {
        database: String,
        found: i32,
        needs: i32,
    },
    #[error("could not read the schema version of {database}")]
    Version {
        database: String,
        #[source]
        source: crate::db::migrate::MigrateError,
    },
    #[error("could not start the report's read-only transaction")]
    Begin(#[source] tokio_postgres::Error),
    #[error("could not read {view} (the {section} section); is the schema at version 4 or later?")]
    Query {
        section: &'static str,
        view: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not write CSV")]
    Csv(#[from] csv::Error),
    #[error("could not write JSON")]
    Json(#[from] serde_json::Error),
}

/// One value of a report row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Num(f64),
    Text(String),
    Json(serde_json::Value),
}

/// The rows of one section, each with one value per [`Section::columns`].
#[derive(Debug, Clone, PartialEq)]
pub struct SectionRows {
    pub section: Section,
    pub rows: Vec<Vec<Value>>,
}

/// Reads `sections` from their views, at most `limit` rows each (`None`: all),
/// in one read-only transaction that is rolled back.
pub async fn fetch(
    client: &mut Client,
    sections: &[Section],
    limit: Option<u32>,
) -> Result<Vec<SectionRows>, ReportError> {
    let tx = crate::db::connect::snapshot(client)
        .await
        .map_err(ReportError::Begin)?;
    let limit: Option<i64> = limit.map(i64::from);
    let mut out = Vec::with_capacity(sections.len());
    for &section in sections {
        let err = |source| ReportError::Query {
            section: section.key(),
            view: section.view(),
            source,
        };
        let rows = tx.query(&section.sql(), &[&limit]).await.map_err(err)?;
        let columns = section.columns();
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut r = Vec::with_capacity(columns.len());
            for (i, c) in columns.iter().enumerate() {
                r.push(read(row, i, c.kind).map_err(err)?);
            }
            values.push(r);
        }
        out.push(SectionRows {
            section,
            rows: values,
        });
    }
    tx.rollback().await.map_err(ReportError::Begin)?;
    Ok(out)
}

/// Column `i` of `row`, typed as [`Column::select_expr`] selected it.
fn read(row: &tokio_postgres::Row, i: usize, kind: Kind) -> Result<Value, tokio_postgres::Error> {
    Ok(match kind {
        Kind::Int => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Kind::Money | Kind::Rate | Kind::Decimal | Kind::Seconds => {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Num)
        }
        Kind::Time | Kind::Text => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
        Kind::Json => row.try_get::<_, Option<String>>(i)?.map(|t| {
            // jsonb's text form is always valid JSON; keep the text otherwise.
            serde_json::from_str(&t).map_or(Value::Text(t), Value::Json)
        }),
    }
    .unwrap_or(Value::Null))
}

/// Fails with [`ReportError::NoSchema`] unless the database (described as
/// `database` in the error) has the analytics views. Read-only.
pub async fn check_schema(client: &Client, database: &str) -> Result<(), ReportError> {
    let found = crate::db::migrate::current_version(client)
        .await
        .map_err(|source| ReportError::Version {
            database: database.to_string(),
            source,
        })?;
    if found < NEEDS_SCHEMA {
        return Err(ReportError::NoSchema {
            database: database.to_string(),
            found,
            needs: NEEDS_SCHEMA,
        });
    }
    Ok(())
}

/// `shopstream report`: the sections `args` asks for, rendered in its format.
pub async fn report(client: &mut Client, args: &ReportArgs) -> Result<String, ReportError> {
    let limit = (args.limit > 0).then_some(args.limit);
    let sections = fetch(client, &args.sections(), limit).await?;
    render(&sections, args.format)
}
