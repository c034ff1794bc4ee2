//! Where an object store listing resumes when the loader starts: after the
//! greatest object URL the ledger holds below the input prefix, plus the
//! ledgered objects whose fate after the commit was never carried out (a
//! crash between the commit and the move, a failed move, or a kept object
//! now that `--after-load` says archive or delete).
//!
//! It only reads the ledger; it never decides what to load (the listing
//! and the ledger check in the transaction do).

use tokio_postgres::Client;

use crate::source::discover::Candidate;
use crate::source::dispose::AfterLoad;
use crate::source::store::Resume;

/// Reads the resume point for the objects whose URLs start with `prefix`.
/// URLs are compared byte-wise (`COLLATE "C"`), as stores order keys.
pub async fn from_ledger(
    client: &Client,
    prefix: &str,
    after_load: AfterLoad,
) -> Result<Resume, tokio_postgres::Error> {
    let after: Option<String> = client
        .query_one(
            "SELECT max(path COLLATE \"C\") FROM ingested_files WHERE starts_with(path, $1)",
            &[&prefix],
        )
        .await?
        .get(0);
    let redo_kept = after_load != AfterLoad::Keep;
    let rows = client
        .query(
            "SELECT DISTINCT path, size_bytes,
                    (extract(epoch FROM modified_at) * 1000000)::int8
             FROM ingested_files
             WHERE starts_with(path, $1)
               AND (disposition IS NULL OR ($2 AND disposition = 'kept'))",
            &[&prefix, &redo_kept],
        )
        .await?;
    let pending = rows
        .iter()
        .map(|r| Candidate {
            path: r.get::<_, String>(0).into(),
            size: r.get::<_, i64>(1).max(0) as u64,
            mtime_micros: r.get(2),
        })
        .collect();
    Ok(Resume { after, pending })
}
