//! The monthly partitions of `ecommerce_events` (schema v9), made ahead of
//! the data: `ecommerce_events_pYYYYMM` holds the UTC calendar month
//! YYYY-MM, `ecommerce_events_default` every row of a month without a
//! partition, so a row never fails its batch for want of one.
//!
//! [`ensure`] creates the partitions of the current month and the next
//! [`MONTHS_AHEAD`], and one for every month whose rows sit in the default
//! partition; those rows move into it. PostgreSQL refuses `CREATE TABLE …
//! PARTITION OF` while the default partition holds rows of the new range,
//! so such a partition is created standalone, the rows are moved out of
//! the default into it, and it is attached. It runs in the caller's
//! transaction, which holds the writer lock: no batch writes meanwhile.
//!
//! It owns the partitions' names, ranges and creation. It never runs on a
//! batch's path (the loader calls it at start and then at most hourly,
//! between batches), never drops a partition (that is [`super::prune`]'s),
//! and never touches a partition whose name it did not make.

use tokio_postgres::Transaction;

/// Months after the current one whose partitions exist ahead of the data.
pub const MONTHS_AHEAD: i32 = 3;

/// The prefix of a month's partition (then `YYYYMM`).
pub const PREFIX: &str = "ecommerce_events_p";
/// The default partition.
pub const DEFAULT: &str = "ecommerce_events_default";

/// What [`ensure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Ensured {
    /// Partitions created, by name.
    pub created: Vec<String>,
    /// Rows moved out of the default partition into them.
    pub moved_from_default: u64,
}

/// One month's partition: its name and its range as timestamptz literals.
struct Month {
    name: String,
    from: String,
    to: String,
    /// The default partition holds rows of this month.
    in_default: bool,
}

/// The months that need a partition and have none: the current one and
/// [`MONTHS_AHEAD`] after it (UTC, as of `now`), and every month of a row
/// in the default partition.
async fn missing(tx: &Transaction<'_>, now: &str) -> Result<Vec<Month>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "WITH months AS (
               SELECT DISTINCT date_trunc('month', event_time AT TIME ZONE 'UTC')::date AS m,
                      true AS in_default
                 FROM ecommerce_events_default
               UNION ALL
               SELECT (date_trunc('month', $1::text::timestamptz AT TIME ZONE 'UTC')
                       + make_interval(months => k))::date, false
                 FROM generate_series(0, $2::int4) AS k),
             wanted AS (SELECT m, bool_or(in_default) AS in_default FROM months GROUP BY m)
             SELECT $3::text || to_char(m, 'YYYYMM'),
                    to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
                    to_char(m + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00',
                    in_default
               FROM wanted
              WHERE to_regclass(quote_ident($3::text || to_char(m, 'YYYYMM'))) IS NULL
              ORDER BY m",
            &[&now, &MONTHS_AHEAD, &PREFIX],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Month {
            name: r.get(0),
            from: r.get(1),
            to: r.get(2),
            in_default: r.get(3),
        })
        .collect())
}

/// Creates the partitions that are missing (see the module documentation)
/// as of `now` (an RFC 3339 time; `"now"` for the server's clock). Call in
/// a transaction holding the writer lock.
pub async fn ensure(tx: &Transaction<'_>, now: &str) -> Result<Ensured, tokio_postgres::Error> {
    let mut done = Ensured::default();
    for m in missing(tx, now).await? {
        let name = quote_ident(&m.name);
        let range = format!("FOR VALUES FROM ('{}') TO ('{}')", m.from, m.to);
        if m.in_default {
            tx.batch_execute(&format!(
                "CREATE TABLE {name} (LIKE ecommerce_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            ))
            .await?;
            let moved = tx
                .execute(
                    &format!(
                        "WITH moved AS (
                           DELETE FROM ecommerce_events_default
                            WHERE event_time >= '{}' AND event_time < '{}' RETURNING *)
                         INSERT INTO {name} SELECT * FROM moved",
                        m.from, m.to
                    ),
                    &[],
                )
                .await?;
            tx.batch_execute(&format!(
                "ALTER TABLE ecommerce_events ATTACH PARTITION {name} {range}"
            ))
            .await?;
            done.moved_from_default += moved;
        } else {
            tx.batch_execute(&format!(
                "CREATE TABLE {name} PARTITION OF ecommerce_events {range}"
            ))
            .await?;
        }
        tracing::info!(
            partition = m.name,
            from = m.from,
            to = m.to,
            "created a partition of ecommerce_events"
        );
        done.created.push(m.name);
    }
    Ok(done)
}

/// A name as an SQL identifier (the names here are ours: letters, digits
/// and `_`, but quoted all the same).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
