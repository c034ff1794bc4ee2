//! Rows the event table's own constraints refuse, found without trying
//! them one by one.
//!
//! When the server refuses a row of a batch (a `CHECK`, `NOT NULL` or
//! foreign key constraint someone added to `ecommerce_events`, which the
//! validator does not know), this module asks the server to evaluate each
//! such constraint over the staged rows, one query per constraint (a
//! foreign key as an anti-join on the referenced table). The cost follows the
//! number of constraints, not the number of rows; isolating by bisection
//! costs about a dozen savepoints and inserts per refused row, which on
//! distributed PostgreSQL (Citus) took minutes for a few hundred rows.
//! Rows refused for other reasons (a trigger, a `MATCH FULL` key, a value
//! out of range) are left to the bisection that follows.
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
    /// 23502 (not null), 23514 (check) or 23503 (foreign key).
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
/// server does), a `CHECK` or a simple foreign key of `ecommerce_events`
/// (in the server's order too), each row once, in key order within each constraint. A constraint whose
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
    for fk in foreign_keys(tx).await? {
        let message = format!(
            "insert or update on table \"ecommerce_events\" violates foreign key constraint \"{}\"",
            fk.name
        );
        for (file_no, line) in refused_by(tx, &fk.test(), paths, batch_id, layouts).await? {
            if seen.insert((file_no, line)) {
                found.push(Violation {
                    file_no,
                    line,
                    sqlstate: "23503",
                    message: message.clone(),
                    column: None,
                    constraint: Some(fk.name.clone()),
                });
            }
        }
    }
    Ok(found)
}

/// A foreign key of `ecommerce_events` (`MATCH SIMPLE`, the default).
struct ForeignKey {
    name: String,
    /// The referenced table, as `regclass` prints it (quoted if needed).
    table: String,
    columns: Vec<String>,
    referenced: Vec<String>,
}

impl ForeignKey {
    /// True for a row the key refuses: every column set and no referenced
    /// row with those values.
    fn test(&self) -> String {
        let q = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        let set = self
            .columns
            .iter()
            .map(|c| format!("ecommerce_events.{} IS NOT NULL", q(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let same = self
            .columns
            .iter()
            .zip(&self.referenced)
            .map(|(c, r)| format!("shopstream_ref.{} = ecommerce_events.{}", q(r), q(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "{set} AND NOT EXISTS (SELECT 1 FROM {} shopstream_ref WHERE {same})",
            self.table
        )
    }
}

/// The table's simple foreign keys.
async fn foreign_keys(tx: &Transaction<'_>) -> Result<Vec<ForeignKey>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "SELECT c.conname::text, c.confrelid::regclass::text,
                    array_agg(a.attname::text ORDER BY k.ord),
                    array_agg(fa.attname::text ORDER BY k.ord)
             FROM pg_constraint c
             CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(col, fcol, ord)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col
             JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fcol
             WHERE c.conrelid = 'ecommerce_events'::regclass AND c.contype = 'f'
               AND c.confmatchtype = 's'
             GROUP BY c.conname, c.confrelid ORDER BY 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            table: r.get(1),
            columns: r.get(2),
            referenced: r.get(3),
        })
        .collect())
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
