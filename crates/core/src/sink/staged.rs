//! The staged route's move: valid rows staged in `shopstream_stage` go to
//! `ecommerce_events` with `INSERT … SELECT` of the first staged copy of
//! each id the table does not hold (an anti-join on `event_id`, under the
//! writer lock), in event id order, and rows the server refuses (a constraint, a trigger, a
//! foreign key shopstream does not check itself) are isolated and returned,
//! to become dead letters.
//!
//! It owns that SQL and the isolation (the table's own constraints checked
//! by [`precheck`], the rest by bisection under savepoints). It never
//! decides a file's fate and never writes a dead letter itself.

use std::collections::HashMap;

use tokio_postgres::Transaction;

use super::{precheck, stage};
use crate::db::retry::{classify_state, Class};
use crate::event::RuleCode;

/// A row the server refused, with what it said.
#[derive(Debug, Clone)]
pub struct Refused {
    pub file_no: i32,
    pub line: i64,
    sqlstate: String,
    pub message: String,
    detail: Option<String>,
    column: Option<String>,
    constraint: Option<String>,
}

impl Refused {
    /// A row [`precheck`] found breaking a constraint.
    fn from_violation(v: precheck::Violation) -> Refused {
        Refused {
            file_no: v.file_no,
            line: v.line,
            sqlstate: v.sqlstate.to_string(),
            message: v.message,
            detail: None,
            column: v.column,
            constraint: v.constraint,
        }
    }

    fn new(file_no: i32, line: i64, e: &tokio_postgres::Error) -> Refused {
        let db = e.as_db_error();
        Refused {
            file_no,
            line,
            sqlstate: e.code().map_or("", |c| c.code()).to_string(),
            message: db.map_or_else(|| e.to_string(), |d| d.message().to_string()),
            detail: db.and_then(|d| d.detail()).map(str::to_string),
            column: db.and_then(|d| d.column()).map(str::to_string),
            constraint: db.and_then(|d| d.constraint()).map(str::to_string),
        }
    }

    /// The `errors` array of its dead letter (same shape as the
    /// validator's failures, plus what the server said).
    pub fn errors_json(&self) -> String {
        let column = self
            .column
            .clone()
            .or_else(|| self.constraint.clone())
            .unwrap_or_default();
        let message = match &self.constraint {
            Some(c) => format!(
                "the database refused the row: {} (constraint {c}, SQLSTATE {})",
                self.message, self.sqlstate
            ),
            None => format!(
                "the database refused the row: {} (SQLSTATE {})",
                self.message, self.sqlstate
            ),
        };
        serde_json::json!([{
            "code": RuleCode::RejectedByDatabase.as_str(),
            "column": column,
            "value": "",
            "message": message,
            "sqlstate": self.sqlstate,
            "constraint": self.constraint,
            "detail": self.detail,
        }])
        .to_string()
    }
}

/// What moving the staged valid rows did.
pub struct Moved {
    /// Rows inserted, by source file path.
    pub loaded: HashMap<String, u64>,
    /// Rows the server refused.
    pub refused: Vec<Refused>,
}

/// Rows tried together while isolating refused rows.
const ISOLATE_CHUNK: i64 = 1024;

/// A staged row's key: (file number, line). Ranges are half open.
type Key = (i32, i64);
const KEY_MIN: Key = (i32::MIN, i64::MIN);
const KEY_MAX: Key = (i32::MAX, i64::MAX);

/// Inserts the staged valid rows. If the server refuses a row (a check or
/// not-null constraint, a value out of range, …) the refused rows are
/// isolated under savepoints: the batch is retried in chunks of
/// [`ISOLATE_CHUNK`] rows and a failing chunk is bisected down to single
/// rows. Every other row is inserted; each refused one is returned with
/// the server's message. A row is tried at most about a dozen times, and
/// memory holds at most one chunk's keys plus one key per chunk.
pub async fn insert_events(
    tx: &Transaction<'_>,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<Moved, tokio_postgres::Error> {
    // The anti-join looks ids up in every partition's primary key; without
    // statistics (partitions filled in this transaction, a new month) the
    // planner may otherwise hash the whole table instead (see
    // `dedup::PROBE_BY_INDEX`). The staging table, without an index, is
    // still read whole.
    tx.batch_execute("SET LOCAL enable_seqscan = off").await?;
    let moved = move_rows(tx, paths, batch_id, layouts).await?;
    tx.batch_execute("SET LOCAL enable_seqscan TO DEFAULT")
        .await?;
    Ok(moved)
}

/// [`insert_events`]'s work.
async fn move_rows(
    tx: &Transaction<'_>,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<Moved, tokio_postgres::Error> {
    // A row goes in when no row of the table has its event id (whatever
    // its event time: the primary key is (event_id, event_time), so only
    // this anti-join keeps event_id unique, exact because every shopstream
    // writer holds the writer lock), and among the batch's copies of one
    // id the earliest file and line is the one loaded. Rows go in event_id
    // order, which keeps the primary key's inserts cheap.
    let sql = format!(
        "WITH ins AS (
           INSERT INTO ecommerce_events
             ({cols}, source_file, source_line, batch_id, source_layout)
           SELECT {cols}, ($1::text[])[file_no], source_line, $2, ($3::text[])[file_no]
           FROM (SELECT DISTINCT ON (event_id) * FROM shopstream_stage s
                 WHERE ok AND (file_no, source_line) >= ($4, $5)
                   AND (file_no, source_line) < ($6, $7)
                   AND NOT EXISTS (SELECT 1 FROM ecommerce_events e
                                   WHERE e.event_id = s.event_id)
                 ORDER BY event_id, file_no, source_line) firsts
           ORDER BY event_id
           RETURNING source_file)
         SELECT source_file, count(*) FROM ins GROUP BY source_file",
        cols = stage::EVENT_COLUMNS
    );
    let insert = |range: (Key, Key)| try_insert(tx, &sql, paths, batch_id, layouts, range);
    let mut moved = Moved {
        loaded: HashMap::new(),
        refused: vec![],
    };
    let first = match insert((KEY_MIN, KEY_MAX)).await? {
        Ok(counts) => {
            add_counts(&mut moved.loaded, counts);
            return Ok(moved);
        }
        Err(e) => e,
    };
    tracing::warn!(
        "the database refused a row of the batch ({}); isolating it",
        first
            .as_db_error()
            .map_or_else(|| first.to_string(), |d| d.message().to_string())
    );
    // What the table's own NOT NULL and CHECK constraints refuse is found
    // with one query per constraint; those rows sit out while the rest is
    // inserted, and only what is refused for another reason is bisected.
    let found = precheck::violations(tx, paths, batch_id, layouts).await?;
    set_ok(tx, &found, false).await?;
    let rest = if found.is_empty() {
        Some(first)
    } else {
        match insert((KEY_MIN, KEY_MAX)).await? {
            Ok(counts) => {
                add_counts(&mut moved.loaded, counts);
                None
            }
            Err(e) => Some(e),
        }
    };
    tracing::debug!(
        refused = found.len(),
        bisect = rest.is_some(),
        "rows refused by the table's constraints, found by checking them"
    );
    if let Some(first) = rest {
        bisect(tx, &insert, first, &mut moved).await?;
    }
    // The caller turns every refused row into a dead letter.
    set_ok(tx, &found, true).await?;
    moved
        .refused
        .extend(found.into_iter().map(Refused::from_violation));
    moved.refused.sort_by_key(|r| (r.file_no, r.line));
    Ok(moved)
}

/// Marks staged rows as taking part in the insert (`ok`) or not.
async fn set_ok(
    tx: &Transaction<'_>,
    rows: &[precheck::Violation],
    ok: bool,
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let file_nos: Vec<i32> = rows.iter().map(|r| r.file_no).collect();
    let lines: Vec<i64> = rows.iter().map(|r| r.line).collect();
    tx.execute(
        "UPDATE shopstream_stage s SET ok = $3
         FROM unnest($1::int4[], $2::int8[]) AS r(file_no, line)
         WHERE s.file_no = r.file_no AND s.source_line = r.line",
        &[&file_nos, &lines, &ok],
    )
    .await?;
    Ok(())
}

/// Inserts the staged valid rows that `first` says the server refused some
/// of: in chunks of [`ISOLATE_CHUNK`] rows, a failing chunk bisected down
/// to single rows, each refused one added to `moved` with the server's
/// message.
async fn bisect<F, Fut>(
    tx: &Transaction<'_>,
    insert: &F,
    first: tokio_postgres::Error,
    moved: &mut Moved,
) -> Result<(), tokio_postgres::Error>
where
    F: Fn((Key, Key)) -> Fut,
    Fut: std::future::Future<
        Output = Result<
            Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>,
            tokio_postgres::Error,
        >,
    >,
{
    drop(first);
    tx.batch_execute(
        "CREATE INDEX shopstream_stage_key ON shopstream_stage (file_no, source_line) WHERE ok;
         ANALYZE shopstream_stage",
    )
    .await?;
    // The first key of every chunk.
    let mut starts: Vec<Key> = keys(
        tx,
        &format!(
            "SELECT file_no, source_line FROM (
               SELECT file_no, source_line,
                      row_number() OVER (ORDER BY file_no, source_line) - 1 AS n
               FROM shopstream_stage WHERE ok) k
             WHERE n % {ISOLATE_CHUNK} = 0 ORDER BY 1, 2"
        ),
        &[],
    )
    .await?;
    starts.push(KEY_MAX);
    for chunk in starts.windows(2) {
        let (lo, hi) = (chunk[0], chunk[1]);
        let first = match insert((lo, hi)).await? {
            Ok(counts) => {
                add_counts(&mut moved.loaded, counts);
                continue;
            }
            Err(e) => e,
        };
        // Bisect the chunk: its keys, then ranges [keys[i], keys[j]).
        let mut ks = keys(
            tx,
            "SELECT file_no, source_line FROM shopstream_stage
             WHERE ok AND (file_no, source_line) >= ($1, $2) AND (file_no, source_line) < ($3, $4)
             ORDER BY 1, 2",
            &[&lo.0, &lo.1, &hi.0, &hi.1],
        )
        .await?;
        ks.push(hi);
        let rows = ks.len() - 1;
        let mut todo: Vec<(usize, usize, Option<tokio_postgres::Error>)> =
            vec![(0, rows, Some(first))];
        while let Some((i, j, known)) = todo.pop() {
            let failed = match known {
                Some(e) => e,
                None => match insert((ks[i], ks[j])).await? {
                    Ok(counts) => {
                        add_counts(&mut moved.loaded, counts);
                        continue;
                    }
                    Err(e) => e,
                },
            };
            if j - i == 1 {
                moved.refused.push(Refused::new(ks[i].0, ks[i].1, &failed));
            } else {
                let mid = i + (j - i) / 2;
                todo.push((mid, j, None));
                todo.push((i, mid, None));
            }
        }
    }
    tx.batch_execute("DROP INDEX shopstream_stage_key").await?;
    Ok(())
}

async fn keys(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Key>, tokio_postgres::Error> {
    Ok(tx
        .query(sql, params)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

fn add_counts(into: &mut HashMap<String, u64>, rows: Vec<tokio_postgres::Row>) {
    for row in rows {
        *into.entry(row.get::<_, String>(0)).or_default() += row.get::<_, i64>(1) as u64;
    }
}

/// Inserts the valid staged rows with keys in `[from, to)` under a
/// savepoint. `Ok(Err(e))`: the server refused a row in the range (rolled
/// back to the savepoint); `Err`: any other failure (the batch fails).
async fn try_insert(
    tx: &Transaction<'_>,
    sql: &str,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
    ((f0, l0), (f1, l1)): (Key, Key),
) -> Result<Result<Vec<tokio_postgres::Row>, tokio_postgres::Error>, tokio_postgres::Error> {
    tx.batch_execute("SAVEPOINT shopstream_rows").await?;
    match tx
        .query(sql, &[&paths, &batch_id, &layouts, &f0, &l0, &f1, &l1])
        .await
    {
        Ok(rows) => {
            tx.batch_execute("RELEASE SAVEPOINT shopstream_rows")
                .await?;
            Ok(Ok(rows))
        }
        Err(e)
            if e.code()
                .is_some_and(|c| classify_state(c) == Class::RowData) =>
        {
            tx.batch_execute("ROLLBACK TO SAVEPOINT shopstream_rows")
                .await?;
            Ok(Err(e))
        }
        Err(e) => Err(e),
    }
}
