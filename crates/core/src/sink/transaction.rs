//! One batch (one or more whole files) as ONE PostgreSQL transaction: its
//! valid rows, its dead letters, its quality row and its ledger rows.
//!
//! The caller (`pipeline::batch`) drives it through its phases:
//! [`Batch::begin`] (the writer lock, the batch id, the claim), then
//! [`Batch::take`] for every [`Chunk`] the reader sends (rows COPYed as they
//! come, each file's fate decided against the ledger as soon as it is read),
//! then [`Batch::refused`] and [`Batch::commit`]. Dropping a [`Batch`] rolls
//! it back.
//!
//! **One writer at a time.** Every batch first takes one transaction-scoped
//! advisory lock, the writer lock, and holds it to its commit: loaders on
//! one database (workers, a second process by mistake) write one after the
//! other. That is what makes the duplicate decision of the copy route
//! ([`super::dedup`]) exact without ever trying a row twice, and it means a
//! loader's transactions never wait on each other's row locks. The wait is
//! bounded (`WRITER_WAIT`): a loader that cannot get the lock leaves its
//! files for its next pass.
//!
//! **Claims.** The files are then claimed: a transaction-scoped advisory
//! try-lock per path, and files the ledger has meanwhile are dropped, so a
//! dead loader's files are free again as soon as its connection is gone.
//! Because the ledger rows commit with the data, a crash anywhere before the
//! commit leaves nothing and the file is simply loaded again.
//!
//! **Files that do not load.** A file's rows reach the event table only
//! after the file's fate is known ([`Chunk::File`] comes before any run
//! holding its rows), except for a file larger than a run, whose rows go
//! under a savepoint that is rolled back if it turns out a duplicate,
//! rejected or changed. Per file, rows read = loaded + duplicate + rejected.
//!
//! This module never reads files and never retries: errors go back to the
//! caller, and dropping the batch rolls everything back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio_postgres::{Client, CopyInSink, Transaction};

use super::ledger::{self, NewEntry, Status};
use super::staged::{self, Refused};
use super::{copy, dedup, stage};
use crate::batch::{BatchReport, Chunk, FileOutcome, FileReport, FileResult, FileStatus, Route};
use crate::event::RuleCode;
use crate::schema::LayoutId;
use crate::source::discover::Candidate;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("database error while committing a batch: {}", crate::db::connect::error_chain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("the reader failed: {0}")]
    Reader(String),
}

impl SinkError {
    /// The server refused a row of a COPY into the event table (a value
    /// or a constraint the validator does not know): class 22 or 23.
    pub fn is_refused_row(&self) -> bool {
        match self {
            SinkError::Db(e) => e
                .code()
                .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")),
            SinkError::Reader(_) => false,
        }
    }
}

/// The writer lock's key (see the module docs).
pub const WRITER_KEY: i64 = 0x5348_4f50_5354_524d; // "SHOPSTRM"

/// The longest wait for the writer lock.
const WRITER_WAIT: Duration = Duration::from_secs(5);

/// Prepares a connection for loading (creates its staging table).
pub async fn prepare(client: &Client) -> Result<(), SinkError> {
    // Memory for this session's staging table (before its first use) and
    // for sorting staged rows by event_id.
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
pub fn claim_key(path: &std::path::Path) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(b"shopstream claim\0");
    h.update(path.as_os_str().as_encoded_bytes());
    lock_key(&h.finalize().to_hex())
}

/// Claims, for this transaction, the files no other transaction holds
/// (`pg_try_advisory_xact_lock` on each path: never waits), then drops
/// those the ledger has by now. Returns (claimed, left for others).
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

/// What [`Batch::begin`] found.
pub enum Begun<'c> {
    /// Files to read, in a transaction holding the writer lock.
    Claimed(Box<Batch<'c>>),
    /// Nothing to do here: every file is left to another loader (see
    /// [`BatchReport::elsewhere`]).
    Nothing(BatchReport),
}

/// One batch's open transaction (see the module docs).
pub struct Batch<'c> {
    tx: Transaction<'c>,
    /// The table's ids (see [`dedup::TableIds`]).
    table: &'c mut dedup::TableIds,
    started: Instant,
    started_at: SystemTime,
    batch_id: i64,
    route: Route,
    files: Vec<Candidate>,
    elsewhere: Vec<Candidate>,
    /// Each file handed over so far, with its fate and ledger row.
    results: Vec<(FileResult, FileStatus, Option<i64>)>,
    /// Files whose rows must not load (their fate is not "loaded").
    dropped: HashSet<i32>,
    /// Rows loaded by the copy route, by file number.
    loaded: HashMap<i32, u64>,
    seen_in_batch: HashMap<String, String>,
    /// The COPY into the staging table in progress.
    stage: Option<Pin<Box<CopyInSink<Bytes>>>>,
    /// The file whose rows are under the savepoint.
    savepoint: Option<i32>,
    moved: Option<staged::Moved>,
}

impl<'c> Batch<'c> {
    /// Opens the transaction: the writer lock, a batch id, the claim.
    /// `staged` chooses the staged route for the batch's valid rows.
    pub async fn begin(
        client: &'c mut Client,
        table: &'c mut dedup::TableIds,
        files: Vec<Candidate>,
        staged: bool,
    ) -> Result<Begun<'c>, SinkError> {
        let started = Instant::now();
        let started_at = SystemTime::now();
        let tx = client.transaction().await?;
        let nothing = |elsewhere| {
            Begun::Nothing(BatchReport {
                elsewhere,
                duration_ms: started.elapsed().as_millis() as u64,
                ..BatchReport::default()
            })
        };
        if !writer_lock(&tx).await? {
            tx.rollback().await?;
            tracing::debug!("another loader is writing: its batch first");
            return Ok(nothing(files));
        }
        let (files, elsewhere) = claim(&tx, files).await?;
        if files.is_empty() {
            tx.rollback().await?;
            return Ok(nothing(elsewhere));
        }
        let batch_id: i64 = tx
            .query_one("SELECT nextval('shopstream_batch_id_seq')", &[])
            .await?
            .get(0);
        let route = if staged {
            Route::Staged
        } else {
            Route::Copy { batch_id }
        };
        Ok(Begun::Claimed(Box::new(Batch {
            tx,
            table,
            started,
            started_at,
            batch_id,
            route,
            files,
            elsewhere,
            results: vec![],
            dropped: HashSet::new(),
            loaded: HashMap::new(),
            seen_in_batch: HashMap::new(),
            stage: None,
            savepoint: None,
            moved: None,
        })))
    }

    /// The claimed files; file numbers count from 1 in this order.
    pub fn files(&self) -> &[Candidate] {
        &self.files
    }

    pub fn route(&self) -> Route {
        self.route
    }

    /// Brings the filter of the table's ids up to date (copy route), while
    /// the reader collects the first run: before the first run is loaded.
    pub async fn plan(&mut self) -> Result<(), SinkError> {
        if self.route != Route::Staged {
            self.table.refresh(&self.tx).await?;
        }
        Ok(())
    }

    /// Takes one chunk from the reader.
    pub async fn take(&mut self, chunk: Chunk) -> Result<(), SinkError> {
        if let Chunk::Stage(bytes) = chunk {
            return Ok(self.stage_rows(bytes).await?);
        }
        self.end_stage().await?;
        match chunk {
            Chunk::Stage(_) => {}
            Chunk::Rows(run) => {
                dedup::copy_run(&self.tx, run, &self.dropped, self.table, &mut self.loaded).await?;
            }
            Chunk::Savepoint(file_no) => {
                self.tx.batch_execute("SAVEPOINT shopstream_file").await?;
                self.savepoint = Some(file_no);
            }
            Chunk::File(r) => self.file_read(r).await?,
        }
        Ok(())
    }
    async fn stage_rows(&mut self, bytes: Bytes) -> Result<(), tokio_postgres::Error> {
        if self.stage.is_none() {
            let mut sink = Box::pin(self.tx.copy_in(stage::COPY_STAGE).await?);
            let mut header = BytesMut::new();
            copy::header(&mut header);
            sink.feed(header.freeze()).await?;
            self.stage = Some(sink);
        }
        match &mut self.stage {
            Some(sink) => sink.send(bytes).await,
            None => Ok(()),
        }
    }

    /// Ends the COPY into the staging table, if one is open.
    async fn end_stage(&mut self) -> Result<(), tokio_postgres::Error> {
        if let Some(mut sink) = self.stage.take() {
            let mut trailer = BytesMut::new();
            copy::trailer(&mut trailer);
            sink.send(trailer.freeze()).await?;
            sink.as_mut().finish().await?;
        }
        Ok(())
    }

    /// A file is read: its fate against the ledger, now, before any run
    /// holding its rows is loaded.
    async fn file_read(&mut self, r: FileResult) -> Result<(), tokio_postgres::Error> {
        let path = r.candidate.path.display().to_string();
        let (status, known_id) = decide(&self.tx, &r, &path, &mut self.seen_in_batch).await?;
        let loads = status == FileStatus::Loaded;
        if !loads {
            self.dropped.insert(r.file_no);
        }
        if self.savepoint == Some(r.file_no) {
            self.savepoint = None;
            if !loads {
                self.tx
                    .batch_execute("ROLLBACK TO SAVEPOINT shopstream_file")
                    .await?;
                self.loaded.remove(&r.file_no);
            }
            self.tx
                .batch_execute("RELEASE SAVEPOINT shopstream_file")
                .await?;
        }
        self.results.push((r, status, known_id));
        Ok(())
    }

    /// After the last chunk: drops the staged rows of files that do not
    /// load, moves the staged valid rows (staged route), and returns the
    /// rows the server refused, by file, for their raw text.
    pub async fn refused(&mut self) -> Result<Vec<(i32, Candidate, Vec<i64>)>, SinkError> {
        self.end_stage().await?;
        if !self.dropped.is_empty() {
            let drop_files: Vec<i32> = self.dropped.iter().copied().collect();
            self.tx
                .execute(
                    "DELETE FROM shopstream_stage WHERE file_no = ANY($1)",
                    &[&drop_files],
                )
                .await?;
        }
        if self.route != Route::Staged || !self.recorded() {
            return Ok(vec![]);
        }
        let (paths, layouts) = self.paths_and_layouts();
        let layouts: Vec<Option<&str>> = layouts.iter().map(|l| l.as_deref()).collect();
        let moved = staged::insert_events(&self.tx, &paths, self.batch_id, &layouts).await?;
        let mut by_file: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for r in &moved.refused {
            by_file.entry(r.file_no).or_default().push(r.line);
        }
        let wanted = by_file
            .into_iter()
            .filter_map(|(no, lines)| Some((no, self.files.get(no as usize - 1)?.clone(), lines)))
            .collect();
        self.moved = Some(moved);
        Ok(wanted)
    }

    /// Whether some file gets a ledger row (else nothing is committed).
    fn recorded(&self) -> bool {
        self.results
            .iter()
            .any(|(_, s, _)| ledger_status(s).is_some())
    }

    /// Each file's path and layout, by file number - 1.
    fn paths_and_layouts(&self) -> (Vec<String>, Vec<Option<String>>) {
        let paths = self
            .files
            .iter()
            .map(|c| c.path.display().to_string())
            .collect();
        let mut layouts = vec![None; self.files.len()];
        for (r, _, _) in &self.results {
            if let (FileOutcome::Parsed(p), Some(slot)) =
                (&r.outcome, layouts.get_mut(r.file_no as usize - 1))
            {
                *slot = p.layout.map(|l: LayoutId| l.as_str().to_string());
            }
        }
        (paths, layouts)
    }
}

impl Batch<'_> {
    /// Writes the dead letters (with `raw`, the refused rows' re-read
    /// text, by file number and line), the ledger rows and the quality
    /// row, and commits. A batch that recorded nothing is rolled back.
    pub async fn commit(
        mut self,
        raw: HashMap<(i32, i64), String>,
    ) -> Result<BatchReport, SinkError> {
        let mut report = BatchReport {
            elsewhere: std::mem::take(&mut self.elsewhere),
            ..BatchReport::default()
        };
        if !self.recorded() {
            self.tx.rollback().await?;
            report.files = self
                .results
                .drain(..)
                .map(|(r, status, id)| empty_report(&r, status, id))
                .collect();
            report.duration_ms = self.started.elapsed().as_millis() as u64;
            return Ok(report);
        }
        let (paths, layouts) = self.paths_and_layouts();
        let layouts: Vec<Option<&str>> = layouts.iter().map(|l| l.as_deref()).collect();
        let moved = self.moved.take();
        let mut refused_by_file: HashMap<i32, u64> = HashMap::new();
        if let Some(m) = &moved {
            for r in &m.refused {
                *refused_by_file.entry(r.file_no).or_default() += 1;
            }
            for (path, n) in &m.loaded {
                if let Some(i) = paths.iter().position(|p| p == path) {
                    *self.loaded.entry(i as i32 + 1).or_default() += n;
                }
            }
            mark_refused(&self.tx, &paths, &m.refused, &raw).await?;
        }
        self.tx
            .execute(
                "INSERT INTO dead_letter_events
                   (batch_id, source_file, source_line, raw_line, event_id, error_codes, errors,
                    source_layout)
                 SELECT $2, ($1::text[])[file_no], source_line, raw_line, raw_event_id, error_codes,
                        errors, ($3::text[])[file_no]
                 FROM shopstream_stage WHERE NOT ok",
                &[&paths, &self.batch_id, &layouts],
            )
            .await?;
        self.record(&mut report, &refused_by_file).await?;
        debug_pause_before_commit().await;
        self.tx.commit().await?;
        self.table.committed(self.batch_id);
        report.batch_id = Some(self.batch_id);
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Each file's ledger row and the batch's quality row.
    async fn record(
        &mut self,
        report: &mut BatchReport,
        refused_by_file: &HashMap<i32, u64>,
    ) -> Result<(), tokio_postgres::Error> {
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for (r, status, id) in std::mem::take(&mut self.results) {
            let mut fr = empty_report(&r, status, id);
            let refused = refused_by_file.get(&r.file_no).copied().unwrap_or(0);
            let loaded = self.loaded.get(&r.file_no).copied().unwrap_or(0);
            count_rows(&mut fr, &r.outcome, loaded, refused, &mut codes);
            if let Some(status) = ledger_status(&fr.status) {
                fr.ledger_id = Some(insert_ledger(&self.tx, &r, &fr, status, self.batch_id).await?);
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
            .filter(|f| ledger_status(&f.status).is_some())
            .count() as i32;
        let rows_valid = (report.rows_loaded + report.rows_duplicate) as i64;
        let validity: Option<f64> =
            (report.rows_read > 0).then(|| rows_valid as f64 / report.rows_read as f64);
        self.tx
            .execute(
                INSERT_QUALITY,
                &[
                    &self.batch_id,
                    &self.started_at,
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
        report.rejects_by_code = codes;
        Ok(())
    }
}

/// Fills a file's row counts from what its reading and loading did, and
/// adds its rejects to `codes`.
fn count_rows(
    fr: &mut FileReport,
    outcome: &FileOutcome,
    loaded: u64,
    refused: u64,
    codes: &mut BTreeMap<String, u64>,
) {
    let FileOutcome::Parsed(p) = outcome else {
        return;
    };
    match fr.status {
        FileStatus::Loaded => {
            fr.rows_read = p.rows_read;
            fr.rows_loaded = loaded;
            fr.rows_duplicate = p.rows_valid.saturating_sub(loaded + refused);
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
        FileStatus::Duplicate { .. } => {
            fr.rows_read = p.rows_read;
            fr.rows_duplicate = p.rows_read;
        }
        _ => {}
    }
}

/// Turns the staged rows the server refused into dead letters-to-be: their
/// raw text (or the staged values when the file could not be re-read) and
/// what the server said.
async fn mark_refused(
    tx: &Transaction<'_>,
    paths: &[String],
    refused: &[Refused],
    raw: &HashMap<(i32, i64), String>,
) -> Result<(), tokio_postgres::Error> {
    if refused.is_empty() {
        return Ok(());
    }
    let file_of = |r: &Refused| {
        paths
            .get(r.file_no as usize - 1)
            .map_or("?", String::as_str)
    };
    for r in refused {
        tracing::debug!(file = ?file_of(r), line = r.line, "the database refused the row: {}", r.message);
    }
    if let Some(r) = refused.first() {
        tracing::warn!(
            "the database refused {} row(s), now dead letters ({}); the first: {} line {}: {}",
            refused.len(),
            RuleCode::RejectedByDatabase,
            file_of(r),
            r.line,
            r.message
        );
    }
    let file_nos: Vec<i32> = refused.iter().map(|r| r.file_no).collect();
    let lines: Vec<i64> = refused.iter().map(|r| r.line).collect();
    let raws: Vec<Option<&String>> = refused
        .iter()
        .map(|r| raw.get(&(r.file_no, r.line)))
        .collect();
    let errors: Vec<String> = refused.iter().map(Refused::errors_json).collect();
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
    Ok(())
}

/// Takes the writer lock (see the module docs): false when another loader
/// held it for longer than [`WRITER_WAIT`].
async fn writer_lock(tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&WRITER_KEY])
        .await?;
    if row.get::<_, bool>(0) {
        return Ok(true);
    }
    let wait = format!("{}ms", WRITER_WAIT.as_millis());
    let before: String = tx
        .query_one(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', $1, true)",
            &[&wait],
        )
        .await?
        .get(0);
    match tx
        .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_KEY])
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Ok(false)
        }
        Err(e) => return Err(e),
    }
    tx.execute("SELECT set_config('lock_timeout', $1, true)", &[&before])
        .await?;
    Ok(true)
}

fn empty_report(r: &FileResult, status: FileStatus, ledger_id: Option<i64>) -> FileReport {
    FileReport {
        ledger_id,
        ..FileReport::new(
            r.candidate.path.display().to_string(),
            status,
            Some(r.candidate.clone()),
        )
    }
}

/// The batch's quality row; `started_at` is a `timestamptz` parameter (no
/// STABLE function on a column, see [`ledger`]).
pub(crate) const INSERT_QUALITY: &str = "INSERT INTO data_quality_metrics
       (batch_id, started_at, files, rows_read, rows_valid, rows_loaded, rows_duplicate,
        rows_rejected, validity_rate, late_arrivals, rejects_by_code)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, round($9::float8::numeric, 6), $10, $11::text::jsonb)";

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
