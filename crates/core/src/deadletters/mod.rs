//! `shopstream dead-letters list|replay`: the rows validation (or the
//! database) refused, read back, and validated again under the rules,
//! layouts and options of today.
//!
//! * [`list`]: the dead letters matching the filters (`--code`, `--file`,
//!   `--since`), newest first, in one read-only snapshot.
//! * [`replay::replay`]: re-validates them and, in ONE transaction under
//!   the loaders' writer lock, moves those that now pass into
//!   `ecommerce_events` and marks their dead letters replayed (see
//!   [`replay`]).
//! * [`revalidate`]: how one stored raw line becomes an event again (its
//!   file's recorded header, or the layout's own columns).
//! * [`render`]: both as tables or JSON.
//!
//! It never reads input files except, for a dead letter recorded before
//! schema v8, the original file's header when the file is still where the
//! ledger says it was kept or archived. It never changes a dead letter that
//! stays one: its codes and messages remain those of its rejection.

pub mod render;
pub mod replay;
pub mod revalidate;

use std::time::{Duration, SystemTime};

use tokio_postgres::Client;

use crate::event::RuleCode;
use crate::pipeline::options::RuleArgs;

/// Output format of `shopstream dead-letters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON object, for scripts.
    Json,
}

/// Which dead letters a command looks at.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Filters {
    /// Only dead letters that failed this rule (repeatable, or
    /// comma-separated): extreme_price, future_event_time, … (the codes of
    /// docs/input.md).
    #[arg(long = "code", value_name = "CODE", env = "SHOPSTREAM_DEAD_LETTERS_CODE", value_delimiter = ',', value_parser = parse_code)]
    pub codes: Vec<String>,

    /// Only dead letters of this file: its path as the loader listed it
    /// (source_file), or the end of that path after a `/` (`2026-01-02.csv`,
    /// `eu/2026-01-02.csv`).
    #[arg(long, value_name = "PATH", env = "SHOPSTREAM_DEAD_LETTERS_FILE")]
    pub file: Option<String>,

    /// Only dead letters rejected at or after this time: RFC 3339
    /// (2026-01-02T03:04:05Z), a date (2026-01-02, midnight UTC) or a
    /// duration ago (90m, 24h, 7d).
    #[arg(long, value_name = "TIME", env = "SHOPSTREAM_DEAD_LETTERS_SINCE", value_parser = parse_since)]
    pub since: Option<SystemTime>,
}

/// `shopstream dead-letters list` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    #[command(flatten)]
    pub filters: Filters,

    /// Also list dead letters already replayed (with the replay and its
    /// outcome).
    #[arg(long, env = "SHOPSTREAM_DEAD_LETTERS_ALL")]
    pub all: bool,

    /// Most dead letters printed, newest first; 0 prints every one. The
    /// total matching is always given.
    #[arg(
        long,
        env = "SHOPSTREAM_DEAD_LETTERS_LIMIT",
        default_value_t = 50,
        value_name = "N"
    )]
    pub limit: u32,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_DEAD_LETTERS_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

/// `shopstream dead-letters replay` options.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filters: Filters,

    #[command(flatten)]
    pub rules: RuleArgs,

    /// Show what would happen (counts by outcome and code) and change
    /// nothing: the replay runs in full, then is rolled back.
    #[arg(long, env = "SHOPSTREAM_REPLAY_DRY_RUN")]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_DEAD_LETTERS_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("database error while {doing}: {}", crate::db::connect::error_chain(.source))]
    Db {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not prepare the connection for the replay: {0}")]
    Prepare(#[source] crate::sink::transaction::SinkError),
    #[error(
        "the replay's accounting does not add up ({marked} dead letters marked loaded, {inserted} \
         events inserted): rolled back, nothing changed"
    )]
    Unbalanced { marked: u64, inserted: u64 },
    #[error("could not write JSON")]
    Json(#[from] serde_json::Error),
}

/// Adds what was being done to a database error.
pub(crate) trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, DeadLetterError>;
}

impl<T> Doing<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, doing: &'static str) -> Result<T, DeadLetterError> {
        self.map_err(|source| DeadLetterError::Db { doing, source })
    }
}

/// `--code`: a rule code (see [`RuleCode`]).
fn parse_code(text: &str) -> Result<String, String> {
    let t = text.trim();
    match RuleCode::parse(t) {
        Some(c) => Ok(c.as_str().to_string()),
        None => Err(format!(
            "{t:?} is not a rule code; expected one of {}",
            RuleCode::ALL.map(RuleCode::as_str).join(", ")
        )),
    }
}

/// `--since`: RFC 3339, a date (midnight UTC) or a duration ago.
fn parse_since(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&chrono::Utc).into());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc().into());
    }
    match humantime::parse_duration(t) {
        Ok(ago) => Ok(SystemTime::now()
            .checked_sub(ago)
            .unwrap_or(SystemTime::UNIX_EPOCH)),
        Err(_) => Err(format!(
            "{t:?} is neither a time (2026-01-02T03:04:05Z, 2026-01-02) nor a duration ago \
             (90m, 24h, 7d)"
        )),
    }
}

/// The filters as SQL over `dead_letter_events` (parameters `$1` … `$3`).
pub(crate) const FILTER_SQL: &str = "(cardinality($1::text[]) = 0 OR error_codes && $1::text[])
       AND ($2::text IS NULL OR source_file = $2 OR right(source_file, length($2) + 1) = '/' || $2)
       AND ($3::timestamptz IS NULL OR rejected_at >= $3)";

impl Filters {
    /// For the replay's history row.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "codes": self.codes,
            "file": self.file,
            "since": self.since.map(rfc3339),
        })
    }
}

/// A time as RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One dead letter as `list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub rejected_at: String,
    pub source_file: String,
    pub source_line: i64,
    pub source_layout: Option<String>,
    pub event_id: Option<String>,
    pub error_codes: Vec<String>,
    pub raw_line: String,
    pub replay_id: Option<i64>,
    pub replay_outcome: Option<String>,
}

/// What `list` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    /// Dead letters matching, in all.
    pub total: i64,
    /// The newest of them (at most --limit).
    pub dead_letters: Vec<DeadLetter>,
}

/// The dead letters matching `args`, newest first (read only).
pub async fn list(client: &mut Client, args: &ListArgs) -> Result<Listing, DeadLetterError> {
    let tx = crate::db::connect::snapshot(client)
        .await
        .doing("starting a read-only transaction")?;
    let f = &args.filters;
    let limit = match args.limit {
        0 => None,
        n => Some(i64::from(n)),
    };
    let pending = if args.all {
        ""
    } else {
        " AND replay_id IS NULL"
    };
    let total: i64 = tx
        .query_one(
            &format!("SELECT count(*) FROM dead_letter_events WHERE {FILTER_SQL}{pending}"),
            &[&f.codes, &f.file, &f.since],
        )
        .await
        .doing("counting dead letters")?
        .get(0);
    let rows = tx
        .query(
            &format!(
                "SELECT id, rejected_at, source_file, source_line, source_layout, event_id,
                        error_codes, raw_line, replay_id, replay_outcome
                 FROM dead_letter_events WHERE {FILTER_SQL}{pending}
                 ORDER BY id DESC LIMIT $4"
            ),
            &[&f.codes, &f.file, &f.since, &limit],
        )
        .await
        .doing("reading dead letters")?;
    let dead_letters = rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            rejected_at: rfc3339(r.get(1)),
            source_file: r.get(2),
            source_line: r.get(3),
            source_layout: r.get(4),
            event_id: r.get(5),
            error_codes: r.get(6),
            raw_line: r.get(7),
            replay_id: r.get(8),
            replay_outcome: r.get(9),
        })
        .collect();
    tx.rollback()
        .await
        .doing("ending a read-only transaction")?;
    Ok(Listing {
        total,
        dead_letters,
    })
}

/// Seconds of a duration, for settings shown as JSON.
pub(crate) fn secs(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_dates_and_durations_ago() {
        let at = |t: &str| parse_since(t).map(rfc3339);
        assert_eq!(
            at("2026-01-02T03:04:05+01:00").as_deref(),
            Ok("2026-01-02T02:04:05Z")
        );
        assert_eq!(at("2026-01-02").as_deref(), Ok("2026-01-02T00:00:00Z"));
        let ago = parse_since("2h").expect("duration");
        let secs = SystemTime::now()
            .duration_since(ago)
            .expect("in the past")
            .as_secs();
        assert!((7199..=7260).contains(&secs), "{secs}");
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn codes_are_checked() {
        assert_eq!(parse_code(" extreme_price").as_deref(), Ok("extreme_price"));
        let err = parse_code("too_expensive").expect_err("unknown");
        assert!(err.contains("future_event_time"), "{err}");
    }
}
