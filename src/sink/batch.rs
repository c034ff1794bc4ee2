//! Commits one batch (one or more whole files) as ONE PostgreSQL
//! transaction: its valid rows, its dead letters, its quality row and its
//! ledger rows.
//!
//! The transaction first claims its files: a transaction-scoped advisory
//! try-lock per path, so concurrent batches (other connections, other
//! worker processes) never work on the same file, and a dead worker's files
//! are free again as soon as its connection is gone. Then each file's content hash is locked
//! (`pg_advisory_xact_lock`) and looked up in the ledger, so a file's content
//! is loaded at most once even across processes; because the ledger row
//! commits with the data, a crash anywhere before the commit leaves nothing
//! and the file is simply loaded again (at least once). Every delivery of a
//! file gets a ledger row of its own (a rejected file delivered again is
//! rejected again, a loaded content delivered again is a duplicate); the
//! statements on the ledger are in [`ledger`].
//!
//! Rows reach the server by binary COPY, on one of two paths:
//! * the direct path: a valid row whose event id the loader has not seen
//!   recently ([`RecentIds`]) is COPYed straight into `ecommerce_events`;
//! * staging: every other row (ids seen before, rejects) is COPYed into a
//!   temporary table; valid ones are moved with `INSERT … ON CONFLICT
//!   (event_id) DO NOTHING`, and what was skipped is counted as duplicate.
//!
//! The direct path is only a fast way to the same result: if the server
//! refuses any direct row (the id was loaded by another worker or before
//! this process started, or a constraint fails), or a file with direct rows
//! turns out not to be loadable (a duplicate file, rejected midway), the
//! transaction is rolled back and the batch loaded again all through
//! staging. Per file, rows read = loaded + duplicate + rejected.
//!
//! This module never reads files itself (a producer closure streams the
//! encoded rows) and never retries a failure: errors go back to the caller.
//! Falling back from the direct path is not a retry: the second attempt is
//! the plain way of loading the batch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::{Client, CopyInSink, Transaction};

use super::ledger::{self, NewEntry, Status};
use super::recent::RecentIds;
use super::{copy, precheck, stage};
use crate::db::retry::{classify_state, Class};
use crate::event::RuleCode;
use crate::schema::LayoutId;
use crate::source::discover::Candidate;

/// What the parser found in one file that it read to the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFile {
    pub hash: String,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_valid: u64,
    pub rows_rejected: u64,
    pub late: u64,
    /// Failed rules by code (a row failing two rules counts in both).
    pub rejects_by_code: BTreeMap<RuleCode, u64>,
    /// The layout detected from the header.
    pub layout: Option<LayoutId>,
    /// Header columns the layout does not know.
    pub unknown_columns: Vec<String>,
}

/// What became of one file while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Parsed(ParsedFile),
    /// The whole file is rejected (recorded in the ledger with the reason).
    Rejected {
        hash: Option<String>,
        reason: String,
    },
    /// It changed while being read: not recorded, tried again later.
    Changed,
    /// It was gone before it could be opened: recorded as rejected unless
    /// the ledger already has it (another process loaded and moved it).
    Vanished,
}

/// One file of a batch as the parser hands it back.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// Its 1-based number in the batch (the staging rows carry it).
    pub file_no: i32,
    pub candidate: Candidate,
    pub outcome: FileOutcome,
    /// Its rows sent straight into `ecommerce_events` (the direct path).
    pub rows_direct: u64,
}

/// Encoded binary COPY rows (no header or trailer) on their way to the
/// server.
#[derive(Debug)]
pub enum Chunk {
    /// Rows of `ecommerce_events` (see [`stage::copy_events`]).
    Events(Bytes),
    /// Rows of the staging table.
    Stage(Bytes),
}

/// How a producer routes a batch's valid rows.
#[derive(Clone, Default)]
pub struct Plan {
    /// The loader's memory of recent event ids (`None`: it keeps none).
    pub recent: Option<Arc<RecentIds>>,
    /// `Some(batch id)`: rows whose id is not in `recent` go straight into
    /// `ecommerce_events` with this batch id. `None`: all go to staging.
    pub direct: Option<i64>,
    /// The direct attempt's ticket (0 on the staging path).
    pub ticket: u32,
    /// Filled by the producer: the running direct attempts that loaded ids
    /// this batch has again (its staged inserts will wait for them).
    pub waits_on: Arc<std::sync::Mutex<HashSet<u32>>>,
}

/// The final status of a file after the batch committed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    Loaded,
    /// Same content as a file already in the ledger: nothing added.
    Duplicate {
        of: String,
    },
    Rejected {
        reason: String,
    },
    /// This very version of the file (see [`ledger::SAME_FILE`]) is already
    /// in the ledger; `rejected` holds the reason when it was recorded as
    /// rejected.
    AlreadyDone {
        rejected: Option<String>,
    },
    /// It changed while being read (a writer is still at it): tried again
    /// later, nothing recorded.
    Changed,
}

/// The accounting of one file in a committed batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    pub path: String,
    #[serde(flatten)]
    pub status: FileStatus,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
    pub late: u64,
    #[serde(skip)]
    pub candidate: Option<Candidate>,
    /// Its ledger row (written by this batch, or found there), where its
    /// disposition is recorded.
    #[serde(skip)]
    pub ledger_id: Option<i64>,
}

/// What one committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchReport {
    /// `None` when nothing needed committing.
    pub batch_id: Option<i64>,
    pub files: Vec<FileReport>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
    pub late: u64,
    pub rejects_by_code: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// Rows loaded by the direct path (the rest of `rows_loaded` went
    /// through staging).
    #[serde(skip)]
    pub rows_direct: u64,
    /// The direct path was tried and the batch then loaded through staging.
    #[serde(skip)]
    pub fell_back: bool,
    /// Files of the batch left out: another loader holds them, or the
    /// ledger has them by now. Not settled here; the next listing sees them.
    #[serde(skip)]
    pub elsewhere: Vec<Candidate>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("database error while committing a batch: {}", crate::db::connect::error_chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("the parser thread failed: {0}")]
    Parser(String),
}

/// Producer of one batch's COPY stream; returns the per-file results.
pub type Producer =
    Box<dyn FnOnce(mpsc::Sender<Chunk>) -> Result<Vec<FileResult>, String> + Send + 'static>;

/// Re-reads the raw text of some lines of a file, for rows the server
/// refused (valid rows are staged without their raw line). Lines it cannot
/// vouch for (the file changed or is gone) are left out; their dead letter
/// then holds the staged values instead.
pub type RawLines =
    std::sync::Arc<dyn Fn(&Candidate, &[i64]) -> HashMap<i64, String> + Send + Sync + 'static>;

/// Prepares a connection for loading (creates its staging table).
pub async fn prepare(client: &Client) -> Result<(), SinkError> {
    // Memory for this session's staging table (before its first use) and
    // for sorting a batch by event_id.
    client
        .batch_execute("SET temp_buffers = '64MB'; SET work_mem = '64MB'")
        .await?;
    client.batch_execute(stage::CREATE_STAGE).await?;
    Ok(())
}

fn lock_key(hash: &str) -> i64 {
    // 15 hex digits always fit in a positive i64.
    i64::from_str_radix(hash.get(..15).unwrap_or("0"), 16).unwrap_or(0)
}

/// The advisory lock key that claims a file (by path) for one transaction.
/// Derived differently from the content keys, so the two never meet.
pub fn claim_key(path: &std::path::Path) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(b"shopstream claim\0");
    h.update(path.as_os_str().as_encoded_bytes());
    lock_key(&h.finalize().to_hex())
}

/// Claims, for this transaction, the files no other transaction holds
/// (`pg_try_advisory_xact_lock` on each path: never waits), then drops
/// those the ledger has by now. Returns (claimed, left for others).
/// A loader that dies releases its claims with its connection.
async fn claim(
    tx: &Transaction<'_>,
    files: Vec<Candidate>,
) -> Result<(Vec<Candidate>, Vec<Candidate>), tokio_postgres::Error> {
    let keys: Vec<i64> = files.iter().map(|c| claim_key(&c.path)).collect();
    let rows = tx
        .query(
            "SELECT k.i FROM unnest($1::int8[]) WITH ORDINALITY AS k(key, i)
             WHERE pg_try_advisory_xact_lock(k.key)",
            &[&keys],
        )
        .await?;
    let mut held = vec![false; files.len()];
    for r in &rows {
        if let Some(h) = held.get_mut(r.get::<_, i64>(0) as usize - 1) {
            *h = true;
        }
    }
    // A statement of its own: its snapshot sees what a loader that held a
    // claim a moment ago committed.
    for (h, known) in held.iter_mut().zip(ledger::known(tx, &files).await?) {
        if known.is_some() {
            *h = false;
        }
    }
    let (mut mine, mut others) = (vec![], vec![]);
    for (c, h) in files.into_iter().zip(held) {
        if h {
            mine.push(c);
        } else {
            others.push(c);
        }
    }
    Ok((mine, others))
}

/// Loads one batch of `files`: claims them (files another loader holds, or
/// that the ledger has meanwhile, are left out and listed in
/// [`BatchReport::elsewhere`]), then `produce` builds the producer for the
/// claimed ones, which runs on a blocking thread and streams their encoded
/// rows as its [`Plan`] routes them. With `recent` and `try_direct`, the
/// direct path is tried first (unless it is backing off after fallbacks)
/// and the batch is loaded again through staging when the direct path
/// cannot take it (see the module docs). `recent` alone only remembers
/// the batch's ids.
pub async fn commit_batch(
    client: &mut Client,
    files: Vec<Candidate>,
    produce: impl Fn(Vec<Candidate>, Plan) -> Producer,
    raw_lines: &RawLines,
    recent: Option<&Arc<RecentIds>>,
    try_direct: bool,
) -> Result<BatchReport, SinkError> {
    let started = Instant::now();
    let direct = recent.filter(|r| try_direct && r.should_try());
    if let Some(r) = direct {
        match attempt(client, files.clone(), &produce, raw_lines, recent, true).await {
            Ok(report) => {
                // A batch whose files were all left to others proved nothing.
                if report.batch_id.is_some() {
                    r.attempted(false);
                }
                return Ok(report);
            }
            Err(Attempt::Fallback(why)) => {
                r.attempted(true);
                tracing::info!(
                    files = files.len(),
                    "the direct path could not take the batch ({why}); loading it through staging"
                );
            }
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
    let mut report = attempt(client, files, &produce, raw_lines, recent, false)
        .await
        .map_err(Attempt::into_error)?;
    report.fell_back = direct.is_some();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The longest lock wait on the direct path (see [`attempt`]).
const DIRECT_LOCK_WAIT_MS: i32 = 200;
/// The longest wait of a direct attempt for the attempts whose ids it has
/// again; then it falls back.
const DIRECT_WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why an attempt ended without a commit.
enum Attempt {
    /// The direct path cannot take this batch (rolled back): load it again
    /// through staging.
    Fallback(String),
    Failed(SinkError),
}

impl Attempt {
    fn into_error(self) -> SinkError {
        match self {
            Attempt::Failed(e) => e,
            // Only direct attempts fall back.
            Attempt::Fallback(why) => SinkError::Parser(why),
        }
    }

    /// On the direct path, what the server refused sends the batch through
    /// staging: a row it rejects (a duplicate id it knows, a constraint),
    /// a conflict with a concurrent transaction (a lock wait too long), or
    /// any other error the server reported for this speculative step (Citus
    /// reports a unique violation in a distributed COPY as XX000). Only a
    /// lost connection or a server going away is the database's failure.
    fn direct(e: SinkError) -> Attempt {
        let code = match &e {
            SinkError::Db(db) => db.code(),
            SinkError::Parser(_) => None,
        };
        match code {
            Some(c) if falls_back(c) => {
                let message = match &e {
                    SinkError::Db(db) => db
                        .as_db_error()
                        .map_or_else(|| db.to_string(), |d| d.message().to_string()),
                    SinkError::Parser(m) => m.clone(),
                };
                Attempt::Fallback(format!("{message}, SQLSTATE {}", c.code()))
            }
            _ => Attempt::Failed(e),
        }
    }
}

/// Whether an error the server reported during the direct attempt sends the
/// batch through staging (true) rather than failing it: everything but a
/// connection exception (class 08) and the server shutting down or starting
/// (57P01–57P03). Staging then meets any real trouble again, and only that
/// failure counts.
fn falls_back(code: &tokio_postgres::error::SqlState) -> bool {
    let c = code.code();
    !(c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03"))
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        Attempt::Failed(SinkError::Db(e))
    }
}

/// Streams the producer's chunks into the COPY of their table, switching
/// COPY statements when the table changes. Returns the producer's results.
async fn stream(tx: &Transaction<'_>, producer: Producer) -> Result<Vec<FileResult>, SinkError> {
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<Chunk>(8);
    let parser = tokio::task::spawn_blocking(move || producer(chunks_tx));
    let copy_events = stage::copy_events();
    let mut open: Option<(bool, Pin<Box<CopyInSink<Bytes>>>)> = None;
    let mut failed = None;
    while let Some(chunk) = chunks_rx.recv().await {
        let (events, bytes) = match chunk {
            Chunk::Events(b) => (true, b),
            Chunk::Stage(b) => (false, b),
        };
        if let Err(e) = copy_chunk(tx, &mut open, events, bytes, &copy_events).await {
            failed = Some(e);
            break;
        }
    }
    // The producer stops at its next send once the receiver is gone.
    drop(chunks_rx);
    let results = parser.await;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let results = results
        .map_err(|e| SinkError::Parser(e.to_string()))?
        .map_err(SinkError::Parser)?;
    if let Some((_, sink)) = open {
        close(sink).await?;
    }
    Ok(results)
}

/// Sends one chunk, first ending the open COPY and starting one into the
/// chunk's table when it is another.
async fn copy_chunk(
    tx: &Transaction<'_>,
    open: &mut Option<(bool, Pin<Box<CopyInSink<Bytes>>>)>,
    events: bool,
    bytes: Bytes,
    copy_events: &str,
) -> Result<(), tokio_postgres::Error> {
    if open.as_ref().is_none_or(|(e, _)| *e != events) {
        if let Some((_, sink)) = open.take() {
            close(sink).await?;
        }
        let sql = if events {
            copy_events
        } else {
            stage::COPY_STAGE
        };
        let mut sink = Box::pin(tx.copy_in(sql).await?);
        let mut header = BytesMut::new();
        copy::header(&mut header);
        sink.feed(header.freeze()).await?;
        *open = Some((events, sink));
    }
    match open {
        Some((_, sink)) => sink.send(bytes).await,
        None => Ok(()),
    }
}

/// Ends one COPY statement: the trailer, then the server's verdict.
async fn close(mut sink: Pin<Box<CopyInSink<Bytes>>>) -> Result<u64, tokio_postgres::Error> {
    let mut trailer = BytesMut::new();
    copy::trailer(&mut trailer);
    sink.send(trailer.freeze()).await?;
    sink.as_mut().finish().await
}

/// One transaction for the batch, on the direct path when `direct` (else
/// every row through staging; `recent` is still told each id).
async fn attempt(
    client: &mut Client,
    files: Vec<Candidate>,
    produce: &impl Fn(Vec<Candidate>, Plan) -> Producer,
    raw_lines: &RawLines,
    recent: Option<&Arc<RecentIds>>,
    direct: bool,
) -> Result<BatchReport, Attempt> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let tx = client.transaction().await?;
    let (files, elsewhere) = claim(&tx, files).await?;
    if files.is_empty() {
        tx.rollback().await?;
        return Ok(BatchReport {
            elsewhere,
            duration_ms: started.elapsed().as_millis() as u64,
            ..BatchReport::default()
        });
    }
    // Direct rows carry the batch id, so it is taken first. Direct rows go
    // in file order, not in event_id order like staged ones, so two direct
    // batches (or a direct and a staged one) can wait for each other: a
    // lock wait longer than half the server's `deadlock_timeout` (at most
    // DIRECT_LOCK_WAIT_MS) ends the attempt before the server's deadlock
    // detector would, and the batch falls back.
    let direct_id = if direct {
        let row = tx
            .query_one(
                "SELECT nextval('shopstream_batch_id_seq'),
                        set_config('lock_timeout',
                                   least($1::int, greatest(10, setting::int / 2))::text || 'ms',
                                   true)
                 FROM pg_settings WHERE name = 'deadlock_timeout'",
                &[&DIRECT_LOCK_WAIT_MS],
            )
            .await?;
        Some(row.get::<_, i64>(0))
    } else {
        None
    };
    // Held until the attempt ends: batches waiting for its rows wake then.
    let ticket = recent.filter(|_| direct).map(|r| r.begin());
    let waits_on = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let plan = Plan {
        recent: recent.cloned(),
        direct: direct_id,
        ticket: ticket.as_ref().map_or(0, |t| t.id),
        waits_on: waits_on.clone(),
    };

    // 1. Stream every file's rows: straight into the final table, or into
    //    the staging table.
    let results = match stream(&tx, produce(files, plan)).await {
        Ok(r) => r,
        Err(e) if direct => return Err(Attempt::direct(e)),
        Err(e) => return Err(Attempt::Failed(e)),
    };
    let staged = started.elapsed();
    // Staged rows with ids another running direct attempt loaded would wait
    // for its commit inside the server; wait for it here instead, where a
    // cycle of waits is seen at once.
    if let (Some(t), Some(r)) = (&ticket, recent) {
        let owners = waits_on.lock().map(|w| w.clone()).unwrap_or_default();
        if !owners.is_empty() {
            if let Err(e) = r.wait_for(t.id, &owners, DIRECT_WAIT_LIMIT).await {
                return Err(Attempt::Fallback(e.to_string()));
            }
        }
    }

    // 2. Decide each file's fate against the ledger, under a lock per content.
    let mut keys: Vec<(i64, usize)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match &r.outcome {
            FileOutcome::Parsed(p) => Some((lock_key(&p.hash), i)),
            FileOutcome::Rejected { hash: Some(h), .. } => Some((lock_key(h), i)),
            // No content to go by: the listed version (path) is the identity.
            FileOutcome::Rejected { hash: None, .. } | FileOutcome::Vanished => {
                let path = r.candidate.path.as_os_str().as_encoded_bytes();
                Some((lock_key(&blake3::hash(path).to_hex()), i))
            }
            FileOutcome::Changed => None,
        })
        .collect();
    keys.sort_unstable();
    for (k, _) in &keys {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[k]).await?;
    }
    let mut reports = Vec::with_capacity(results.len());
    let mut drop_files: Vec<i32> = vec![];
    let mut seen_in_batch: HashMap<String, String> = HashMap::new();
    for r in &results {
        let path = r.candidate.path.display().to_string();
        let (status, known_id) = decide(&tx, r, &path, &mut seen_in_batch).await?;
        if status != FileStatus::Loaded {
            if r.rows_direct > 0 {
                // Its direct rows cannot be taken back alone.
                return Err(Attempt::Fallback(format!(
                    "{path:?} has rows on the direct path but is not loaded ({status:?})"
                )));
            }
            drop_files.push(r.file_no);
        }
        reports.push((r, path, status, known_id));
    }
    if !drop_files.is_empty() {
        tx.execute(
            "DELETE FROM shopstream_stage WHERE file_no = ANY($1)",
            &[&drop_files],
        )
        .await?;
    }

    let recorded = reports.iter().any(|(_, _, s, _)| {
        matches!(
            s,
            FileStatus::Loaded | FileStatus::Duplicate { .. } | FileStatus::Rejected { .. }
        )
    });
    let mut report = BatchReport {
        elsewhere,
        ..BatchReport::default()
    };
    if !recorded {
        tx.rollback().await?;
        report.files = reports
            .into_iter()
            .map(|(r, path, status, id)| empty_report(r, path, status, id))
            .collect();
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let batch_id: i64 = match direct_id {
        Some(id) => id,
        None => next_batch_id(&tx).await?,
    };
    let paths: Vec<String> = results
        .iter()
        .map(|r| r.candidate.path.display().to_string())
        .collect();
    let layouts: Vec<Option<&str>> = results
        .iter()
        .map(|r| match &r.outcome {
            FileOutcome::Parsed(p) => p.layout.map(LayoutId::as_str),
            _ => None,
        })
        .collect();

    // 3. Move rows: events deduplicated by event_id (rows the server refuses
    //    become dead letters), rejects to dead letters.
    let before_insert = started.elapsed();
    let mut moved = match insert_events(&tx, &paths, batch_id, &layouts).await {
        Ok(m) => m,
        Err(e) if direct => return Err(Attempt::direct(SinkError::Db(e))),
        Err(e) => return Err(e.into()),
    };
    let mut rows_direct = 0;
    for r in &results {
        if r.rows_direct > 0 {
            rows_direct += r.rows_direct;
            let path = r.candidate.path.display().to_string();
            *moved.loaded.entry(path).or_default() += r.rows_direct;
        }
    }
    let inserted = started.elapsed();
    let mut refused_by_file: HashMap<i32, u64> = HashMap::new();
    if !moved.refused.is_empty() {
        for r in &moved.refused {
            *refused_by_file.entry(r.file_no).or_default() += 1;
        }
        let raw = refused_raw_lines(&results, &moved.refused, raw_lines).await;
        let file_of = |r: &Refused| {
            paths
                .get(r.file_no as usize - 1)
                .map_or("?", String::as_str)
        };
        for r in &moved.refused {
            tracing::debug!(file = ?file_of(r), line = r.line, "the database refused the row: {}", r.message);
        }
        if let Some(r) = moved.refused.first() {
            tracing::warn!(
                "the database refused {} row(s), now dead letters ({}); the first: {} line {}: {}",
                moved.refused.len(),
                RuleCode::RejectedByDatabase,
                file_of(r),
                r.line,
                r.message
            );
        }
        let file_nos: Vec<i32> = moved.refused.iter().map(|r| r.file_no).collect();
        let lines: Vec<i64> = moved.refused.iter().map(|r| r.line).collect();
        let raws: Vec<Option<&String>> = moved
            .refused
            .iter()
            .map(|r| raw.get(&(r.file_no, r.line)))
            .collect();
        let errors: Vec<String> = moved.refused.iter().map(Refused::errors_json).collect();
        tx.execute(
            &format!(
                "UPDATE shopstream_stage s SET ok = false,
                   raw_line = coalesce(r.raw, concat_ws(',', {cols})),
                   raw_event_id = s.event_id::text,
                   error_codes = ARRAY['{code}'], errors = r.errors::jsonb
                 FROM unnest($1::int4[], $2::int8[], $3::text[], $4::text[])
                      AS r(file_no, line, raw, errors)
                 WHERE s.ok AND s.file_no = r.file_no AND s.source_line = r.line",
                cols = stage::RAW_FALLBACK_COLUMNS
                    .split(", ")
                    .map(|c| format!("s.{c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                code = RuleCode::RejectedByDatabase.as_str(),
            ),
            &[&file_nos, &lines, &raws, &errors],
        )
        .await?;
    }
    let loaded = moved.loaded;
    tx.execute(
        "INSERT INTO dead_letter_events
           (batch_id, source_file, source_line, raw_line, event_id, error_codes, errors,
            source_layout)
         SELECT $2, ($1::text[])[file_no], source_line, raw_line, raw_event_id, error_codes, errors,
                ($3::text[])[file_no]
         FROM shopstream_stage WHERE NOT ok",
        &[&paths, &batch_id, &layouts],
    )
    .await?;

    // 4. The ledger and the quality row, in the same transaction.
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    for (r, path, status, id) in reports {
        let mut fr = empty_report(r, path, status, id);
        if let (FileOutcome::Parsed(p), FileStatus::Loaded) = (&r.outcome, &fr.status) {
            let l = loaded.get(&fr.path).copied().unwrap_or(0);
            let refused = refused_by_file.get(&r.file_no).copied().unwrap_or(0);
            fr.rows_read = p.rows_read;
            fr.rows_loaded = l;
            fr.rows_duplicate = p.rows_valid.saturating_sub(l + refused);
            fr.rows_rejected = p.rows_rejected + refused;
            fr.late = p.late;
            for (c, n) in &p.rejects_by_code {
                *codes.entry(c.as_str().to_string()).or_default() += n;
            }
            if refused > 0 {
                *codes
                    .entry(RuleCode::RejectedByDatabase.as_str().to_string())
                    .or_default() += refused;
            }
        }
        if let (FileOutcome::Parsed(p), FileStatus::Duplicate { .. }) = (&r.outcome, &fr.status) {
            fr.rows_read = p.rows_read;
            fr.rows_duplicate = p.rows_read;
        }
        if let Some(status) = ledger_status(&fr.status) {
            fr.ledger_id = Some(insert_ledger(&tx, r, &fr, status, batch_id).await?);
            report.rows_read += fr.rows_read;
            report.rows_loaded += fr.rows_loaded;
            report.rows_duplicate += fr.rows_duplicate;
            report.rows_rejected += fr.rows_rejected;
            report.late += fr.late;
        }
        report.files.push(fr);
    }
    let files = report
        .files
        .iter()
        .filter(|f| {
            matches!(
                f.status,
                FileStatus::Loaded | FileStatus::Duplicate { .. } | FileStatus::Rejected { .. }
            )
        })
        .count() as i32;
    let rows_valid = (report.rows_loaded + report.rows_duplicate) as i64;
    let validity: Option<f64> =
        (report.rows_read > 0).then(|| rows_valid as f64 / report.rows_read as f64);
    tx.execute(
        INSERT_QUALITY,
        &[
            &batch_id,
            &started_at,
            &files,
            &(report.rows_read as i64),
            &rows_valid,
            &(report.rows_loaded as i64),
            &(report.rows_duplicate as i64),
            &(report.rows_rejected as i64),
            &validity,
            &(report.late as i64),
            &serde_json::to_string(&codes).unwrap_or_else(|_| "{}".into()),
        ],
    )
    .await?;
    let before_commit = started.elapsed();
    debug_pause_before_commit().await;
    match tx.commit().await {
        Ok(()) => {}
        Err(e) if direct => return Err(Attempt::direct(SinkError::Db(e))),
        Err(e) => return Err(e.into()),
    }
    tracing::debug!(
        batch_id,
        staged_ms = staged.as_millis() as u64,
        ledger_checked_ms = (before_insert - staged).as_millis() as u64,
        inserted_ms = (inserted - before_insert).as_millis() as u64,
        recorded_ms = (before_commit - inserted).as_millis() as u64,
        commit_ms = (started.elapsed() - before_commit).as_millis() as u64,
        rows_direct,
        "batch phases"
    );
    report.rows_direct = rows_direct;
    report.batch_id = Some(batch_id);
    report.rejects_by_code = codes;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The batch's quality row; `started_at` is a `timestamptz` parameter (no
/// STABLE function on a column, see [`ledger`]).
pub(crate) const INSERT_QUALITY: &str = "INSERT INTO data_quality_metrics
       (batch_id, started_at, files, rows_read, rows_valid, rows_loaded, rows_duplicate,
        rows_rejected, validity_rate, late_arrivals, rejects_by_code)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, round($9::float8::numeric, 6), $10, $11::text::jsonb)";

/// A new batch id (ids of rolled-back attempts are simply never used).
async fn next_batch_id(tx: &Transaction<'_>) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one("SELECT nextval('shopstream_batch_id_seq')", &[])
        .await?
        .get(0))
}

fn empty_report(
    r: &FileResult,
    path: String,
    status: FileStatus,
    ledger_id: Option<i64>,
) -> FileReport {
    FileReport {
        ledger_id,
        ..FileReport::new(path, status, Some(r.candidate.clone()))
    }
}

impl FileReport {
    /// A file's report with no rows counted yet.
    pub fn new(path: String, status: FileStatus, candidate: Option<Candidate>) -> FileReport {
        FileReport {
            path,
            status,
            rows_read: 0,
            rows_loaded: 0,
            rows_duplicate: 0,
            rows_rejected: 0,
            late: 0,
            candidate,
            ledger_id: None,
        }
    }
}

/// A file's fate against the ledger (with its row when the ledger has
/// it). Every file here is a delivery the claim did not find in the ledger,
/// so each fate but [`FileStatus::AlreadyDone`] gets a row of its own.
async fn decide(
    tx: &Transaction<'_>,
    r: &FileResult,
    path: &str,
    seen_in_batch: &mut HashMap<String, String>,
) -> Result<(FileStatus, Option<i64>), tokio_postgres::Error> {
    let hash = match &r.outcome {
        FileOutcome::Parsed(p) => Some(p.hash.as_str()),
        FileOutcome::Rejected { hash, .. } => hash.as_deref(),
        _ => None,
    };
    // Only its ctime changed (a chmod, a link another loader's archive or
    // quarantine makes before removing it): the delivery the ledger has.
    if let (Some(h), Some(_)) = (hash, r.candidate.file_id) {
        if let Some(e) = ledger::same_bytes(tx, &r.candidate, h).await? {
            let status = FileStatus::AlreadyDone {
                rejected: e.rejected,
            };
            return Ok((status, Some(e.id)));
        }
    }
    let status = match &r.outcome {
        FileOutcome::Changed => FileStatus::Changed,
        FileOutcome::Vanished => {
            // Matched on path, size and mtime only: another loader's archive
            // or quarantine links the file (a new ctime) before removing it.
            let listed = Candidate {
                file_id: None,
                ..r.candidate.clone()
            };
            let known = ledger::known(tx, std::slice::from_ref(&listed)).await?;
            return Ok(match known.into_iter().next().flatten() {
                // Another process loaded it and moved it away.
                Some(e) => (
                    FileStatus::AlreadyDone {
                        rejected: e.rejected,
                    },
                    Some(e.id),
                ),
                None => (
                    FileStatus::Rejected {
                        reason: "the file disappeared before it could be read".to_string(),
                    },
                    None,
                ),
            });
        }
        // Also when this content was rejected before: delivered again, it
        // is quarantined again, with a row saying where.
        FileOutcome::Rejected { reason, .. } => FileStatus::Rejected {
            reason: reason.clone(),
        },
        FileOutcome::Parsed(p) => {
            if let Some(first) = seen_in_batch.get(&p.hash) {
                FileStatus::Duplicate { of: first.clone() }
            } else {
                match ledger::by_content(tx, &p.hash, path).await? {
                    // Loaded before, under this path or another. Content
                    // only ever rejected is read again under today's rules
                    // and layouts (a limit raised, a setting changed): it
                    // parsed, so it loads.
                    Some(row) if row.loaded => FileStatus::Duplicate { of: row.path },
                    _ => {
                        seen_in_batch.insert(p.hash.clone(), path.to_string());
                        FileStatus::Loaded
                    }
                }
            }
        }
    };
    Ok((status, None))
}

/// The ledger status of a file's fate; `None` when it gets no row here.
fn ledger_status(status: &FileStatus) -> Option<Status> {
    match status {
        FileStatus::Loaded => Some(Status::Loaded),
        FileStatus::Duplicate { .. } => Some(Status::Duplicate),
        FileStatus::Rejected { .. } => Some(Status::Rejected),
        FileStatus::AlreadyDone { .. } | FileStatus::Changed => None,
    }
}

/// Writes the file's ledger row; returns its id.
async fn insert_ledger(
    tx: &Transaction<'_>,
    r: &FileResult,
    fr: &FileReport,
    status: Status,
    batch_id: i64,
) -> Result<i64, tokio_postgres::Error> {
    let (reason, duplicate_of): (Option<&str>, Option<&str>) = match &fr.status {
        FileStatus::Duplicate { of } => (Some("same content as a file already loaded"), Some(of)),
        FileStatus::Rejected { reason } => (Some(reason), None),
        _ => (None, None),
    };
    let (hash, layout, unknown_columns) = match &r.outcome {
        FileOutcome::Parsed(p) => (
            Some(p.hash.as_str()),
            p.layout.map(LayoutId::as_str),
            Some(&p.unknown_columns).filter(|u| !u.is_empty()),
        ),
        FileOutcome::Rejected { hash, .. } => (hash.as_deref(), None, None),
        _ => (None, None, None),
    };
    let entry = NewEntry {
        candidate: &r.candidate,
        path: &fr.path,
        hash,
        status,
        reason,
        duplicate_of,
        rows_read: fr.rows_read,
        rows_loaded: fr.rows_loaded,
        rows_duplicate: fr.rows_duplicate,
        rows_rejected: fr.rows_rejected,
        late: fr.late,
        batch_id,
        layout,
        unknown_columns,
    };
    ledger::insert(tx, &entry).await
}

/// A row the server refused, with what it said.
#[derive(Debug, Clone)]
struct Refused {
    file_no: i32,
    line: i64,
    sqlstate: String,
    message: String,
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
    fn errors_json(&self) -> String {
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
struct Moved {
    /// Rows inserted, by source file path.
    loaded: HashMap<String, u64>,
    /// Rows the server refused.
    refused: Vec<Refused>,
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
async fn insert_events(
    tx: &Transaction<'_>,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<Moved, tokio_postgres::Error> {
    // Rows go in event_id order: concurrent batches (several connections
    // or workers) that share event ids then wait for each other in one
    // order and never deadlock; among copies of one id, the earliest file
    // and line is the one loaded.
    let sql = format!(
        "WITH ins AS (
           INSERT INTO ecommerce_events
             ({cols}, source_file, source_line, batch_id, source_layout)
           SELECT {cols}, ($1::text[])[file_no], source_line, $2, ($3::text[])[file_no]
           FROM shopstream_stage
           WHERE ok AND (file_no, source_line) >= ($4, $5) AND (file_no, source_line) < ($6, $7)
           ORDER BY event_id, file_no, source_line
           ON CONFLICT (event_id) DO NOTHING
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

/// The raw text of the refused rows, re-read from their files on a
/// blocking thread.
async fn refused_raw_lines(
    results: &[FileResult],
    refused: &[Refused],
    raw_lines: &RawLines,
) -> HashMap<(i32, i64), String> {
    let mut by_file: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in refused {
        by_file.entry(r.file_no).or_default().push(r.line);
    }
    let jobs: Vec<(i32, Candidate, Vec<i64>)> = by_file
        .into_iter()
        .filter_map(|(no, lines)| {
            let c = results.iter().find(|r| r.file_no == no)?.candidate.clone();
            Some((no, c, lines))
        })
        .collect();
    let read = raw_lines.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut out = HashMap::new();
        for (no, c, lines) in jobs {
            for (line, text) in read(&c, &lines) {
                out.insert((no, line), text);
            }
        }
        out
    })
    .await;
    found.unwrap_or_default()
}

/// The environment variable behind [`debug_pause_before_commit`]
/// (milliseconds). Not an option: it exists to test shutdown, holding a
/// batch inside its open transaction, right before its COMMIT.
pub const PAUSE_BEFORE_COMMIT_ENV: &str = "SHOPSTREAM_DEBUG_PAUSE_BEFORE_COMMIT_MS";

/// Fault injection for the shutdown tests: with
/// [`PAUSE_BEFORE_COMMIT_ENV`] set (read once per process), every batch
/// waits that long right before its COMMIT, its transaction still open.
async fn debug_pause_before_commit() {
    static PAUSE: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var(PAUSE_BEFORE_COMMIT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
    });
    if let Some(pause) = *pause {
        tracing::warn!(
            "pausing {} ms before COMMIT, the transaction open ({PAUSE_BEFORE_COMMIT_ENV})",
            pause.as_millis()
        );
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::falls_back;

    /// A speculative step's error is never the database's failure, unless
    /// the connection or the server itself went away.
    #[test]
    fn what_the_server_reports_on_the_direct_path_falls_back() {
        for code in [
            "23505", "23514", "55P03", "40P01", "XX000", "53100", "42501",
        ] {
            assert!(falls_back(&SqlState::from_code(code)), "{code}");
        }
        for code in ["08006", "08003", "57P01", "57P02", "57P03"] {
            assert!(!falls_back(&SqlState::from_code(code)), "{code}");
        }
    }
}
