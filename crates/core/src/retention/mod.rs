//! Retention: events, dead letters and quality rows older than a bound go
//! away (`run --retention`, `shopstream prune --older-than`), cheaply at
//! any size, and the event table's monthly partitions exist ahead of the
//! data ([`partitions`]).
//!
//! [`prune`] works in ONE transaction under the loaders' writer lock (so it
//! never races a batch or a replay): the partitions are made up to date
//! first ([`partitions::ensure`]), then every month partition whose whole
//! month lies before the bound is dropped (a partition is kept until its
//! whole month is past the bound), rows of the default partition older
//! than the bound are deleted (it holds only rows of months without a
//! partition, and `ensure` just gave those one), and dead letters
//! (`rejected_at`) and quality rows (`committed_at`) older than the bound
//! are deleted (indexed; one quality row per batch, dead letters a small
//! fraction of the rows). `--dry-run` does all of it and rolls back.
//!
//! It owns that transaction, its report and the retention options. It
//! never deletes ledger rows (`ingested_files`: they are what keeps a file
//! from loading twice) or replay history (`dead_letter_replays`), never
//! drops a partition it did not name, and never runs on a batch's path.

pub mod partitions;

use std::time::Duration;

use tokio_postgres::Client;

use crate::sink::transaction::WRITER_KEY;

/// `shopstream prune` options.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// Remove events whose event_time, and dead letters and quality rows
    /// whose rejection or commit time, is older than this (90d, 12h,
    /// 6months): whole monthly partitions of ecommerce_events are dropped
    /// once their whole month is older. The ledger (ingested_files) is
    /// never pruned.
    #[arg(long, value_name = "DURATION", env = "SHOPSTREAM_PRUNE_OLDER_THAN", value_parser = crate::pipeline::options::parse_age)]
    pub older_than: Duration,

    /// Say what would be removed, and change nothing.
    #[arg(long, env = "SHOPSTREAM_PRUNE_DRY_RUN")]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_PRUNE_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

/// How `prune` prints what it did.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    #[default]
    Table,
    /// One JSON object, for scripts.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{doing}: {source}")]
    Database {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("--older-than {0:?} reaches before the start of time")]
    TooLong(Duration),
}

trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, RetentionError>;
}

impl<T> Doing<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, doing: &'static str) -> Result<T, RetentionError> {
        self.map_err(|source| RetentionError::Database { doing, source })
    }
}

/// A dropped partition and the rows it held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    pub partition: String,
    pub rows: u64,
}

/// What [`prune`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub dry_run: bool,
    /// Everything older than this went (RFC 3339, UTC).
    pub bound: String,
    /// Partitions made ahead (and rows moved out of the default partition).
    pub ensured: partitions::Ensured,
    pub dropped_partitions: Vec<Dropped>,
    /// Events deleted from the default partition.
    pub default_rows: u64,
    pub dead_letters: u64,
    pub quality_rows: u64,
}

impl Pruned {
    /// Events removed, in dropped partitions and from the default one.
    pub fn events(&self) -> u64 {
        self.dropped_partitions.iter().map(|d| d.rows).sum::<u64>() + self.default_rows
    }
}

/// How long the loader's maintenance waits for a table lock (a long
/// report holding the event table, say) before it gives up and tries again
/// later: it holds the writer lock meanwhile, so loading waits too.
pub const LOADER_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Only the partitions: [`partitions::ensure`] under the writer lock,
/// committed. What the loader calls at start and then hourly (with
/// `lock_timeout`, see [`LOADER_LOCK_TIMEOUT`]).
pub async fn maintain(
    client: &mut Client,
    lock_timeout: Option<Duration>,
) -> Result<partitions::Ensured, RetentionError> {
    let tx = client.transaction().await.doing("starting a transaction")?;
    lock_writer(&tx, lock_timeout).await?;
    let done = partitions::ensure(&tx, "now")
        .await
        .doing("creating the partitions of ecommerce_events")?;
    tx.commit().await.doing("committing the partitions")?;
    Ok(done)
}

/// Takes the writer lock; then, with `lock_timeout`, bounds every later
/// wait for a lock in the transaction.
async fn lock_writer(
    tx: &tokio_postgres::Transaction<'_>,
    lock_timeout: Option<Duration>,
) -> Result<(), RetentionError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_KEY])
        .await
        .doing("waiting for the writer lock")?;
    if let Some(t) = lock_timeout {
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", t.as_millis()))
            .await
            .doing("setting the lock timeout")?;
    }
    Ok(())
}

/// Removes what is older than `older_than` (see the module documentation);
/// with `lock_timeout`, gives up on a table lock it cannot get that soon.
pub async fn prune(
    client: &mut Client,
    older_than: Duration,
    dry_run: bool,
    lock_timeout: Option<Duration>,
) -> Result<Pruned, RetentionError> {
    let micros =
        i64::try_from(older_than.as_micros()).map_err(|_| RetentionError::TooLong(older_than))?;
    let tx = client.transaction().await.doing("starting a transaction")?;
    lock_writer(&tx, lock_timeout).await?;
    let ensured = partitions::ensure(&tx, "now")
        .await
        .doing("creating the partitions of ecommerce_events")?;
    let bound: String = tx
        .query_one(
            "SELECT to_char((now() - $1::int8 * interval '1 microsecond') AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            &[&micros],
        )
        .await
        .doing("computing the bound")?
        .get(0);
    let mut pruned = Pruned {
        dry_run,
        bound,
        ensured,
        ..Pruned::default()
    };
    pruned.dropped_partitions = drop_old_partitions(&tx, &pruned.bound).await?;
    let delete = |sql: &'static str| {
        let bound = pruned.bound.clone();
        let tx = &tx;
        async move {
            tx.execute(sql, &[&bound])
                .await
                .doing("deleting rows older than the bound")
        }
    };
    pruned.default_rows =
        delete("DELETE FROM ecommerce_events_default WHERE event_time < $1::text::timestamptz")
            .await?;
    pruned.dead_letters =
        delete("DELETE FROM dead_letter_events WHERE rejected_at < $1::text::timestamptz").await?;
    pruned.quality_rows =
        delete("DELETE FROM data_quality_metrics WHERE committed_at < $1::text::timestamptz")
            .await?;
    if dry_run {
        tx.rollback().await.doing("rolling back the dry run")?;
    } else {
        tx.commit().await.doing("committing the prune")?;
    }
    Ok(pruned)
}

/// Drops every month partition (of ours) whose month ends at or before
/// `bound`; returns each with the rows it held.
async fn drop_old_partitions(
    tx: &tokio_postgres::Transaction<'_>,
    bound: &str,
) -> Result<Vec<Dropped>, RetentionError> {
    let old = tx
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'ecommerce_events'::regclass
                AND c.relname ~ ('^' || $1::text || '[0-9]{6}$')
                AND (to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month')::timestamp
                    AT TIME ZONE 'UTC' <= $2::text::timestamptz
              ORDER BY 1",
            &[&partitions::PREFIX, &bound],
        )
        .await
        .doing("listing the partitions older than the bound")?;
    let mut dropped = vec![];
    for row in old {
        let name: String = row.get(0);
        let q = partitions::quote_ident(&name);
        let rows: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {q}"), &[])
            .await
            .doing("counting a partition's rows")?
            .get(0);
        tx.batch_execute(&format!(
            "ALTER TABLE ecommerce_events DETACH PARTITION {q}; DROP TABLE {q}"
        ))
        .await
        .doing("dropping a partition")?;
        tracing::info!(
            partition = name,
            rows,
            "dropped a partition of ecommerce_events"
        );
        dropped.push(Dropped {
            partition: name,
            rows: rows as u64,
        });
    }
    Ok(dropped)
}

/// What a prune did, as lines or one JSON object.
pub fn render(p: &Pruned, format: Format) -> Result<String, serde_json::Error> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(p)? + "\n");
    }
    let verb = if p.dry_run { "would remove" } else { "removed" };
    let mut out = String::new();
    for d in &p.dropped_partitions {
        out.push_str(&format!(
            "{verb} partition {} ({} events)\n",
            d.partition, d.rows
        ));
    }
    for c in &p.ensured.created {
        let made = if p.dry_run { "would create" } else { "created" };
        out.push_str(&format!("{made} partition {c}\n"));
    }
    out.push_str(&format!(
        "{verb} everything older than {}: {} events ({} partitions, {} rows of the default \
         partition), {} dead letters, {} quality rows; the ledger is kept{}\n",
        p.bound,
        p.events(),
        p.dropped_partitions.len(),
        p.default_rows,
        p.dead_letters,
        p.quality_rows,
        if p.dry_run {
            "; nothing changed (--dry-run)"
        } else {
            ""
        }
    ));
    Ok(out)
}
