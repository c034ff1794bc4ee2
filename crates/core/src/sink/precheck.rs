//! Rows the event table's own constraints refuse, found without trying
//! them one by one.
//!
//! When the server refuses a row of a batch (a `CHECK` or `NOT NULL`
//! constraint someone added to `ecommerce_events`, which the validator does
//! not know), this module asks the server to evaluate each such constraint
//! over the staged rows, one query per constraint. The cost follows the
//! number of constraints, not the number of rows; isolating by bisection
//! costs about a dozen savepoints and inserts per refused row, which on
//! distributed PostgreSQL (Citus) took minutes for a few hundred rows.
//! Rows refused for other reasons (a trigger, a foreign key, a value out of
//! range) are left to the bisection that follows.
//!
//! It owns the SQL that reads the constraints and evaluates them. It never
//! inserts, never changes a staged row and never decides a row's fate: the
//! batch does.

use std::collections::HashSet;

use tokio_postgres::Transaction;

use super::stage;

/// A staged row a constraint refuses, said as the server says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file_no: i32,
    pub line: i64,
    /// 23502 (not null) or 23514 (check).
    pub sqlstate: &'static str,
    pub message: String,
    pub column: Option<String>,
    pub constraint: Option<String>,
}

/// The staged valid rows as rows of `ecommerce_events` (the columns a
/// constraint may name), each with its key.
fn as_events() -> String {
    format!(
        "SELECT {cols}, ($1::text[])[file_no] AS source_file, source_line,
                $2::int8 AS batch_id, ($3::text[])[file_no] AS source_layout,
                file_no AS shopstream_file_no
         FROM shopstream_stage WHERE ok",
        cols = stage::EVENT_COLUMNS
    )
}

/// Every staged valid row that breaks a `NOT NULL` (checked first, as the
/// server does) or a `CHECK` constraint of `ecommerce_events`, each row
/// once, in key order within each constraint. A constraint whose
/// expression cannot be evaluated over the staged rows is skipped.
pub async fn violations(
    tx: &Transaction<'_>,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<Vec<Violation>, tokio_postgres::Error> {
    let event_columns: HashSet<&str> = stage::EVENT_COLUMNS.split(", ").collect();
    let not_null: Vec<String> = tx
        .query(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = 'ecommerce_events'::regclass AND attnum > 0
               AND NOT attisdropped AND attnotnull ORDER BY attnum",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|c| event_columns.contains(c.as_str()))
        .collect();
    let checks: Vec<(String, String)> = tx
        .query(
            "SELECT conname::text, pg_get_expr(conbin, conrelid) FROM pg_constraint
             WHERE conrelid = 'ecommerce_events'::regclass AND contype = 'c' ORDER BY conname",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut found: Vec<Violation> = vec![];
    let mut seen: HashSet<(i32, i64)> = HashSet::new();
    for column in not_null {
        let test = format!("\"{}\" IS NULL", column.replace('"', "\"\""));
        let message =
            format!("null value in column \"{column}\" of relation \"ecommerce_events\" violates not-null constraint");
        for (file_no, line) in refused_by(tx, &test, paths, batch_id, layouts).await? {
            if seen.insert((file_no, line)) {
                found.push(Violation {
                    file_no,
                    line,
                    sqlstate: "23502",
                    message: message.clone(),
                    column: Some(column.clone()),
                    constraint: None,
                });
            }
        }
    }
    for (name, expr) in checks {
        let test = format!("({expr}) IS FALSE");
        let message = format!(
            "new row for relation \"ecommerce_events\" violates check constraint \"{name}\""
        );
        for (file_no, line) in refused_by(tx, &test, paths, batch_id, layouts).await? {
            if seen.insert((file_no, line)) {
                found.push(Violation {
                    file_no,
                    line,
                    sqlstate: "23514",
                    message: message.clone(),
                    column: None,
                    constraint: Some(name.clone()),
                });
            }
        }
    }
    Ok(found)
}

/// The keys of the staged valid rows for which `test` (SQL over the
/// columns of `ecommerce_events`) holds; none when the server cannot
/// evaluate it here (the savepoint keeps the batch's transaction usable).
async fn refused_by(
    tx: &Transaction<'_>,
    test: &str,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<Vec<(i32, i64)>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT shopstream_file_no, source_line FROM ({rows}) ecommerce_events
         WHERE {test} ORDER BY 1, 2",
        rows = as_events()
    );
    tx.batch_execute("SAVEPOINT shopstream_precheck").await?;
    match tx.query(sql.as_str(), &[&paths, &batch_id, &layouts]).await {
        Ok(rows) => {
            tx.batch_execute("RELEASE SAVEPOINT shopstream_precheck")
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        }
        Err(e) if e.as_db_error().is_some() => {
            tracing::debug!("a constraint cannot be checked before inserting ({e}); bisection will find its rows");
            tx.batch_execute("ROLLBACK TO SAVEPOINT shopstream_precheck")
                .await?;
            Ok(vec![])
        }
        Err(e) => Err(e),
    }
}
