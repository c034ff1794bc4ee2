//! Where an object store listing resumes when the loader starts: after the
//! greatest object URL the ledger holds below the input prefix, plus the
//! ledgered objects whose fate after the commit was never carried out (a
//! crash between the commit and the move, a failed move, or a kept object
//! now that `--after-load` says archive or delete).
//!
//! It only reads the ledger (through [`crate::sink::ledger`]); it never
//! decides what to load (the listing and the ledger check in the
//! transaction do).

use tokio_postgres::Client;

use crate::sink::ledger;
use crate::source::dispose::AfterLoad;
use crate::source::store::Resume;

/// Reads the resume point for the objects whose URLs start with `prefix`.
/// URLs are compared byte-wise, as stores order keys.
pub async fn from_ledger(
    client: &Client,
    prefix: &str,
    after_load: AfterLoad,
) -> Result<Resume, tokio_postgres::Error> {
    let redo_kept = after_load != AfterLoad::Keep;
    let (after, pending) = ledger::resume_point(client, prefix, redo_kept).await?;
    Ok(Resume { after, pending })
}
