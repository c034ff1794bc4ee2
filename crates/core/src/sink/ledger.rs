//! The ledger, `ingested_files`: one row per delivery of an input file the
//! loader has finished with (loaded, duplicate or rejected), and where that
//! delivery went afterwards. This module owns every statement on it:
//!
//! * the file identity, written once ([`SAME_FILE`]): path, size and mtime,
//!   plus device, inode and ctime for local files. A file rewritten in place
//!   with the same size and mtime (`cp -p`, `rsync -t`, `touch -r`) has
//!   another ctime, so it is a new delivery. Rows without the local identity
//!   (objects of a store, rows written before schema v6) match on path,
//!   size and mtime, so an upgrade reloads nothing;
//! * "is this file known?" ([`known`]), used by the listing and the claim;
//!   a known file whose ctime alone changed, with the same bytes, is the
//!   same delivery ([`same_bytes`]), not a new one;
//! * the lookup by content ([`by_content`]);
//! * inserting a delivery's row ([`insert`]), recording where it went
//!   ([`record_dispositions`], by row id, so a second delivery of the same
//!   file never overwrites the first one's `moved_to`);
//! * where an object store listing resumes ([`resume_point`]);
//! * what a loaded file's header was ([`recorded_columns`], for
//!   dead-letter replay);
//! * the quarantined deliveries and their requeue ([`quarantined`],
//!   [`mark_requeued`]): a requeued row stays as history but no longer makes
//!   its file known, so the file is read again (and, its content only ever
//!   rejected, loaded).
//!
//! Timestamps are computed here and passed as `timestamptz` parameters:
//! no statement applies a STABLE function (`now()`, `timestamptz +
//! interval`, `extract`, …) to a column, which distributed PostgreSQL
//! (Citus reference tables) refuses in writes. It never decides a file's
//! fate (the batch does) and never writes another table.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient, Transaction};

use crate::source::discover::{Candidate, FileId};
use crate::source::dispose::Disposition;

/// The candidates of a statement as the relation `c`, numbered from 1 by
/// `c.i` (parameters `$1` … `$6`, see [`Identities`]).
const CANDIDATES: &str = "unnest($1::text[], $2::int8[], $3::timestamptz[], $4::int8[], \
     $5::int8[], $6::int8[]) WITH ORDINALITY AS c(path, size, mtime, device, inode, ctime_ns, i)";

/// Ledger row `f` and file `c` are the same file at the same place:
/// path, size, mtime and, when both have them, device and inode. A row or
/// a candidate without them (an object, a row from before schema v6)
/// matches on path, size and mtime alone.
macro_rules! same_inode {
    () => {
        "f.path = c.path AND f.size_bytes = c.size AND f.modified_at = c.mtime \
         AND (f.inode IS NULL OR c.inode IS NULL \
              OR (f.device = c.device AND f.inode = c.inode))"
    };
}

/// See [`same_inode!`]: the part of the identity that needs no ctime.
pub const SAME_INODE: &str = same_inode!();

/// THE file identity ("is this file known?"): [`SAME_INODE`] and, when both
/// have one, the same ctime. A file whose ctime changed may have new
/// content under the same size and mtime, so it is read again.
pub const SAME_FILE: &str = concat!(
    same_inode!(),
    " AND (f.ctime_ns IS NULL OR c.ctime_ns IS NULL OR f.ctime_ns = c.ctime_ns)"
);

/// A requeued row (see [`mark_requeued`]) is history: it makes no file
/// known.
const NOT_REQUEUED: &str = "f.requeued_at IS NULL";

/// Per candidate, the newest ledger row of that very version.
static KNOWN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT c.i, f.id, f.status, f.reason, f.disposition
         FROM {CANDIDATES}
         CROSS JOIN LATERAL (
           SELECT id, status, reason, disposition FROM ingested_files f
           WHERE {SAME_FILE} AND {NOT_REQUEUED}
           ORDER BY id DESC LIMIT 1) f"
    )
});

/// The newest row of the same inode at the same path, size and mtime with
/// the same content: the file's ctime changed but not its bytes (a chmod,
/// a hard link, such as the one another loader's archive or quarantine
/// makes before it removes the file).
static SAME_BYTES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT f.id, f.status, f.reason, f.disposition
         FROM {CANDIDATES}
         JOIN ingested_files f ON {SAME_INODE}
         WHERE f.content_hash = $7 AND {NOT_REQUEUED}
         ORDER BY f.id DESC LIMIT 1"
    )
});

/// The best row with a content: a loaded one first, then one of this path.
const BY_CONTENT: &str = "SELECT path, status, reason FROM ingested_files WHERE content_hash = $1
     ORDER BY (status = 'loaded') DESC, (path = $2) DESC, id DESC LIMIT 1";

const INSERT: &str = "INSERT INTO ingested_files
       (path, size_bytes, modified_at, device, inode, ctime_ns, content_hash, status, reason,
        duplicate_of, rows_read, rows_loaded, rows_duplicate, rows_rejected, late_arrivals,
        batch_id, layout, unknown_columns, header)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19)
     RETURNING id";

/// What a loaded file's row says about its columns, per (batch id, path).
const RECORDED_HEADERS: &str = "SELECT k.i, f.header, f.layout, f.unknown_columns, f.content_hash,
            CASE f.disposition WHEN 'kept' THEN f.path WHEN 'archived' THEN f.moved_to END
     FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS k(batch_id, path, i)
     JOIN ingested_files f ON f.batch_id = k.batch_id AND f.path = k.path
                          AND f.status = 'loaded'";

/// The newest row of each quarantine path: the file lying there.
const QUARANTINED: &str = "SELECT DISTINCT ON (moved_to) id, path, moved_to, reason,
            requeued_at IS NOT NULL
     FROM ingested_files
     WHERE status = 'rejected' AND disposition = 'quarantined' AND moved_to IS NOT NULL
     ORDER BY moved_to, id DESC";

/// Marks rejected rows requeued: the row given and every other rejected
/// row of the same file ([`SAME_INODE`]), which would make it known too.
static MARK_REQUEUED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE ingested_files f SET requeued_at = $3, requeued_to = c.dest
         FROM (SELECT m.id, m.dest, r.path, r.size_bytes AS size, r.modified_at AS mtime,
                      r.device, r.inode
               FROM unnest($1::int8[], $2::text[]) AS m(id, dest)
               JOIN ingested_files r ON r.id = m.id) c
         WHERE f.status = 'rejected' AND f.requeued_at IS NULL
           AND (f.id = c.id OR ({SAME_INODE}))"
    )
});

/// A requeued file went to another name than planned (a numbered one).
const REQUEUED_TO: &str = "UPDATE ingested_files f SET requeued_to = d.actual
     FROM unnest($1::text[], $2::text[]) AS d(planned, actual)
     WHERE f.requeued_at = $3 AND f.requeued_to = d.planned";

/// "gone" and "changed" never overwrite what another process recorded.
const RECORD_DISPOSITIONS: &str = "UPDATE ingested_files f
     SET disposition = CASE WHEN d.what IN ('gone', 'changed') AND f.disposition IS NOT NULL
                            THEN f.disposition ELSE d.what END,
         moved_to = CASE WHEN d.what IN ('gone', 'changed') AND f.disposition IS NOT NULL
                         THEN f.moved_to ELSE d.moved_to END
     FROM unnest($1::int8[], $2::text[], $3::text[]) AS d(id, what, moved_to)
     WHERE f.id = d.id";

/// URLs are compared byte-wise (`COLLATE "C"`), as stores order keys.
const RESUME_AFTER: &str =
    "SELECT max(path COLLATE \"C\") FROM ingested_files WHERE starts_with(path, $1)";

const RESUME_PENDING: &str =
    "SELECT DISTINCT path, size_bytes, modified_at, device, inode, ctime_ns
     FROM ingested_files
     WHERE starts_with(path, $1) AND (disposition IS NULL OR ($2 AND disposition = 'kept'))";

/// Every statement of the module (for the test that no write applies a
/// STABLE function to a column).
pub fn statements() -> Vec<&'static str> {
    vec![
        KNOWN.as_str(),
        SAME_BYTES.as_str(),
        BY_CONTENT,
        INSERT,
        RECORD_DISPOSITIONS,
        RESUME_AFTER,
        RESUME_PENDING,
        RECORDED_HEADERS,
        QUARANTINED,
        MARK_REQUEUED.as_str(),
        REQUEUED_TO,
    ]
}

/// A ledger row of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: i64,
    /// The reason when it was rejected; `None` when loaded or duplicate.
    pub rejected: Option<String>,
    pub disposition: Option<String>,
}

/// A ledger row holding a content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRow {
    pub path: String,
    /// True when that row loaded the content.
    pub loaded: bool,
    /// The reason when it was rejected.
    pub rejected: Option<String>,
}

/// How the batch judged a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Loaded,
    Duplicate,
    Rejected,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Loaded => "loaded",
            Status::Duplicate => "duplicate",
            Status::Rejected => "rejected",
        }
    }
}

/// One delivery's row, as the batch writes it.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub candidate: &'a Candidate,
    pub path: &'a str,
    pub hash: Option<&'a str>,
    pub status: Status,
    pub reason: Option<&'a str>,
    pub duplicate_of: Option<&'a str>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
    pub late: u64,
    pub batch_id: i64,
    pub layout: Option<&'a str>,
    pub unknown_columns: Option<&'a Vec<String>>,
    /// The header's column names (files that parsed).
    pub header: Option<&'a Vec<String>>,
}

/// A time given in microseconds since the Unix epoch.
pub fn time_of_micros(micros: i64) -> SystemTime {
    let d = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

fn micros_of_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// The local identity as stored (bit patterns of the u64s in int8).
fn id_columns(id: Option<FileId>) -> (Option<i64>, Option<i64>, Option<i64>) {
    match id {
        Some(id) => (
            Some(id.device as i64),
            Some(id.inode as i64),
            Some(id.ctime_ns),
        ),
        None => (None, None, None),
    }
}

/// The parameters `$1` … `$6` of [`CANDIDATES`].
struct Identities {
    paths: Vec<String>,
    sizes: Vec<i64>,
    mtimes: Vec<SystemTime>,
    devices: Vec<Option<i64>>,
    inodes: Vec<Option<i64>>,
    ctimes: Vec<Option<i64>>,
}

impl Identities {
    /// The parameters `$1`..`$6` of [`CANDIDATES`], typed.
    fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        vec![
            (&self.paths, Type::TEXT_ARRAY),
            (&self.sizes, Type::INT8_ARRAY),
            (&self.mtimes, Type::TIMESTAMPTZ_ARRAY),
            (&self.devices, Type::INT8_ARRAY),
            (&self.inodes, Type::INT8_ARRAY),
            (&self.ctimes, Type::INT8_ARRAY),
        ]
    }

    fn of(files: &[Candidate]) -> Identities {
        let ids: Vec<_> = files.iter().map(|c| id_columns(c.file_id)).collect();
        Identities {
            paths: files.iter().map(|c| c.path.display().to_string()).collect(),
            sizes: files.iter().map(|c| c.size as i64).collect(),
            mtimes: files
                .iter()
                .map(|c| time_of_micros(c.mtime_micros))
                .collect(),
            devices: ids.iter().map(|i| i.0).collect(),
            inodes: ids.iter().map(|i| i.1).collect(),
            ctimes: ids.iter().map(|i| i.2).collect(),
        }
    }
}

/// "Is this file known?": per candidate (same order), the newest ledger
/// row of that very version of the file, if any.
pub async fn known(
    client: &impl GenericClient,
    files: &[Candidate],
) -> Result<Vec<Option<Entry>>, tokio_postgres::Error> {
    let p = Identities::of(files);
    let rows = client.query_typed(KNOWN.as_str(), &p.params()).await?;
    let mut out = vec![None; files.len()];
    for r in &rows {
        if let Some(slot) = out.get_mut((r.get::<_, i64>(0) - 1) as usize) {
            *slot = Some(entry(r, 1));
        }
    }
    Ok(out)
}

/// An [`Entry`] from columns id, status, reason, disposition from `at` on.
fn entry(r: &tokio_postgres::Row, at: usize) -> Entry {
    let status: String = r.get(at + 1);
    let reason: Option<String> = r.get(at + 2);
    Entry {
        id: r.get(at),
        rejected: (status == "rejected").then(|| reason.unwrap_or_default()),
        disposition: r.get(at + 3),
    }
}

/// The ledger row of `file` if only its ctime changed since: same path,
/// size, mtime, device and inode, and content `hash`.
pub async fn same_bytes(
    tx: &Transaction<'_>,
    file: &Candidate,
    hash: &str,
) -> Result<Option<Entry>, tokio_postgres::Error> {
    let p = Identities::of(std::slice::from_ref(file));
    let mut params = p.params();
    params.push((&hash, Type::TEXT));
    let row = tx.query_typed_opt(SAME_BYTES.as_str(), &params).await?;
    Ok(row.map(|r| entry(&r, 0)))
}

/// The ledger row that best describes content `hash`: one that loaded it,
/// else one of `path`, else any.
pub async fn by_content(
    tx: &Transaction<'_>,
    hash: &str,
    path: &str,
) -> Result<Option<ContentRow>, tokio_postgres::Error> {
    let row = tx
        .query_typed_opt(BY_CONTENT, &[(&hash, Type::TEXT), (&path, Type::TEXT)])
        .await?;
    Ok(row.map(|r| {
        let status: String = r.get(1);
        let reason: Option<String> = r.get(2);
        ContentRow {
            path: r.get(0),
            loaded: status == "loaded",
            rejected: (status == "rejected").then(|| reason.unwrap_or_default()),
        }
    }))
}

/// Writes one delivery's row; returns its id.
pub async fn insert(tx: &Transaction<'_>, e: &NewEntry<'_>) -> Result<i64, tokio_postgres::Error> {
    let (device, inode, ctime) = id_columns(e.candidate.file_id);
    let (size, mtime) = (e.candidate.size as i64, time_of_micros(e.candidate.mtime_micros));
    let counts = [e.rows_read, e.rows_loaded, e.rows_duplicate, e.rows_rejected, e.late]
        .map(|n| n as i64);
    let [read, loaded, duplicate, rejected, late] = &counts;
    let row = tx
        .query_typed_one(
            INSERT,
            &[
                (&e.path, Type::TEXT),
                (&size, Type::INT8),
                (&mtime, Type::TIMESTAMPTZ),
                (&device, Type::INT8),
                (&inode, Type::INT8),
                (&ctime, Type::INT8),
                (&e.hash, Type::TEXT),
                (&e.status.as_str(), Type::TEXT),
                (&e.reason, Type::TEXT),
                (&e.duplicate_of, Type::TEXT),
                (read, Type::INT8),
                (loaded, Type::INT8),
                (duplicate, Type::INT8),
                (rejected, Type::INT8),
                (late, Type::INT8),
                (&e.batch_id, Type::INT8),
                (&e.layout, Type::TEXT),
                (&e.unknown_columns, Type::TEXT_ARRAY),
                (&e.header, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// What the ledger recorded about a loaded file's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedColumns {
    /// The header's names; `None` for files loaded before schema v8.
    pub header: Option<Vec<String>>,
    pub layout: Option<String>,
    pub unknown_columns: Option<Vec<String>>,
    pub content_hash: Option<String>,
    /// Where the file should still be: its path when it was kept, its
    /// archive path when it was archived.
    pub kept_at: Option<String>,
}

/// Per (batch id, path) of a loaded file (same order), what its row says
/// about its columns; `None` where the ledger has no such row.
pub async fn recorded_columns(
    client: &impl GenericClient,
    files: &[(i64, String)],
) -> Result<Vec<Option<RecordedColumns>>, tokio_postgres::Error> {
    let batches: Vec<i64> = files.iter().map(|f| f.0).collect();
    let paths: Vec<&str> = files.iter().map(|f| f.1.as_str()).collect();
    let rows = client.query(RECORDED_HEADERS, &[&batches, &paths]).await?;
    let mut out = vec![None; files.len()];
    for r in &rows {
        if let Some(slot) = out.get_mut((r.get::<_, i64>(0) - 1) as usize) {
            *slot = Some(RecordedColumns {
                header: r.get(1),
                layout: r.get(2),
                unknown_columns: r.get(3),
                content_hash: r.get(4),
                kept_at: r.get(5),
            });
        }
    }
    Ok(out)
}

/// A rejected delivery the loader moved into quarantine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub id: i64,
    /// Where the file was found (its input path).
    pub path: String,
    /// Where it was quarantined.
    pub moved_to: String,
    pub reason: Option<String>,
    /// A requeue marked it already (and was interrupted before the move,
    /// if the file is still there).
    pub requeued: bool,
}

/// The newest quarantined delivery of each quarantine path.
pub async fn quarantined(
    client: &impl GenericClient,
) -> Result<Vec<Quarantined>, tokio_postgres::Error> {
    Ok(client
        .query(QUARANTINED, &[])
        .await?
        .iter()
        .map(|r| Quarantined {
            id: r.get(0),
            path: r.get(1),
            moved_to: r.get(2),
            reason: r.get(3),
            requeued: r.get(4),
        })
        .collect())
}

/// Marks deliveries (by id) as requeued to a path, at `at`, together with
/// the other rejected rows of the same file (see [`MARK_REQUEUED`]): from
/// now on none of them makes the file known. Returns the rows marked.
pub async fn mark_requeued(
    tx: &Transaction<'_>,
    marks: &[(i64, String)],
    at: SystemTime,
) -> Result<u64, tokio_postgres::Error> {
    let ids: Vec<i64> = marks.iter().map(|m| m.0).collect();
    let dests: Vec<&str> = marks.iter().map(|m| m.1.as_str()).collect();
    tx.execute(MARK_REQUEUED.as_str(), &[&ids, &dests, &at])
        .await
}

/// Corrects the destination of files requeued at `at` that went to
/// another name than planned: (planned, actual) pairs.
pub async fn requeued_to(
    client: &impl GenericClient,
    moved: &[(String, String)],
    at: SystemTime,
) -> Result<u64, tokio_postgres::Error> {
    let planned: Vec<&str> = moved.iter().map(|m| m.0.as_str()).collect();
    let actual: Vec<&str> = moved.iter().map(|m| m.1.as_str()).collect();
    client.execute(REQUEUED_TO, &[&planned, &actual, &at]).await
}

/// Writes where each delivery went into its row (by id).
pub async fn record_dispositions(
    client: &Client,
    records: &[(i64, Disposition)],
) -> Result<(), tokio_postgres::Error> {
    let ids: Vec<i64> = records.iter().map(|(id, _)| *id).collect();
    let what: Vec<&str> = records.iter().map(|(_, d)| d.as_str()).collect();
    let to: Vec<Option<String>> = records
        .iter()
        .map(|(_, d)| d.moved_to().map(|p| p.display().to_string()))
        .collect();
    client
        .execute(RECORD_DISPOSITIONS, &[&ids, &what, &to])
        .await?;
    Ok(())
}

/// Where a store's listing resumes: the greatest ledgered URL starting with
/// `prefix`, and the ledgered objects whose fate was not carried out (with
/// `redo_kept`, also those that were kept).
pub async fn resume_point(
    client: &Client,
    prefix: &str,
    redo_kept: bool,
) -> Result<(Option<String>, Vec<Candidate>), tokio_postgres::Error> {
    let after: Option<String> = client.query_one(RESUME_AFTER, &[&prefix]).await?.get(0);
    let rows = client.query(RESUME_PENDING, &[&prefix, &redo_kept]).await?;
    let pending = rows
        .iter()
        .map(|r| {
            let id = match (r.get(3), r.get(4), r.get(5)) {
                (Some::<i64>(device), Some::<i64>(inode), Some(ctime_ns)) => Some(FileId {
                    device: device as u64,
                    inode: inode as u64,
                    ctime_ns,
                }),
                _ => None,
            };
            Candidate {
                path: r.get::<_, String>(0).into(),
                size: r.get::<_, i64>(1).max(0) as u64,
                mtime_micros: micros_of_time(r.get(2)),
                file_id: id,
            }
        })
        .collect();
    Ok((after, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What distributed PostgreSQL refuses on a column in a write, and what
    /// would make a write depend on the session's time zone or clock.
    const NOT_IMMUTABLE: &[&str] = &[
        "interval",
        "now(",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtime",
        "clock_timestamp",
        "statement_timestamp",
        "transaction_timestamp",
        "timeofday",
        "extract(",
        "date_part",
        "date_trunc",
        "to_timestamp",
        "to_char",
        "timezone(",
        "at time zone",
        "'epoch'",
        "age(",
        "random(",
    ];

    #[test]
    fn no_ledger_or_metrics_statement_uses_a_stable_function() {
        let mut all = statements();
        all.push(crate::sink::transaction::INSERT_QUALITY);
        assert!(all.len() >= 10);
        for sql in all {
            let lower = sql.to_lowercase();
            for bad in NOT_IMMUTABLE {
                assert!(!lower.contains(bad), "{bad:?} in:\n{sql}");
            }
        }
    }

    #[test]
    fn the_identity_is_written_once_and_used_by_every_known_query() {
        assert!(KNOWN.contains(SAME_FILE));
        assert!(SAME_FILE.starts_with(SAME_INODE) && SAME_BYTES.contains(SAME_INODE));
        for sql in statements() {
            assert!(
                sql.contains(SAME_INODE) || !sql.contains("modified_at ="),
                "an identity predicate of its own in:\n{sql}"
            );
        }
    }

    #[test]
    fn times_round_trip_through_micros() {
        for m in [0, 1, 1_765_000_000_123_456, -5] {
            assert_eq!(micros_of_time(time_of_micros(m)), m);
        }
    }
}
