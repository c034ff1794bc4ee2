//! One batch (one or more whole files) as ONE PostgreSQL transaction: its
//! valid rows, its dead letters, its quality row and its ledger rows.
//!
//! The caller (`pipeline::batch`) drives it through its phases:
//! [`Batch::begin`] (the writer lock, the batch id, the claim), then
//! [`Batch::take`] for every [`Chunk`] the reader sends (runs COPYed as they
//! come; the fates of the files read since the last run decided against
//! the ledger before it, in one round trip with the run's probe and the
//! held dead letters' COPY), then [`Batch::refused`] and [`Batch::commit`]
//! (the records and the COMMIT in one round trip). Dropping a [`Batch`]
//! rolls it back.
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
//! rejected or changed. Dead letters are COPYed straight into
//! `dead_letter_events` as they come (on the staged route, into the
//! staging table); those of a file that does not load are deleted with the
//! records. Per file, rows read = loaded + duplicate + rejected.
//!
//! This module never reads files and never retries: errors go back to the
//! caller, and dropping the batch rolls everything back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::future::{try_join, try_join3, try_join_all};
use futures_util::SinkExt;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, CopyInSink, Statement, Transaction};

use super::ledger::{self, NewEntry, Status};
use super::staged::{self, Refused};
use super::{copy, dedup, stage};
use crate::batch::{
    BatchReport, Chunk, FileOutcome, FileReport, FileResult, FileStatus, Route, SortedRows,
};
use crate::event::RuleCode;
use crate::schema::LayoutRef;
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

    /// The failure is about the batch's work, not the way to the server:
    /// the server answered with an error (other than a lost connection or
    /// a shutdown, SQLSTATE classes 08 and 57P), or a file could not be
    /// read.
    pub fn about_the_work(&self) -> bool {
        match self {
            SinkError::Db(e) => e.code().is_some_and(|c| {
                let c = c.code();
                !c.starts_with("08") && !c.starts_with("57P")
            }),
            SinkError::Reader(_) => true,
        }
    }
}

/// The writer lock's key (see the module docs).
pub const WRITER_KEY: i64 = 0x5348_4f50_5354_524d; // "SHOPSTRM"

/// Staging rows a batch holds before it COPYs them (small: memory is
/// bounded whatever the file size, and a run usually comes first).
const STAGE_HELD: usize = 256 << 10;

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

/// Takes the writer lock and, only once it is held, a batch id (ids in
/// commit order: see [`dedup::TableIds`]); NULL when another loader holds it.
const WRITER_THEN_BATCH_ID: &str = "SELECT CASE WHEN pg_try_advisory_xact_lock($1)
     THEN nextval('shopstream_batch_id_seq') END";

/// Claims each file no other transaction holds (`pg_try_advisory_xact_lock`
/// on its path: never waits); returns their positions, from 1.
const CLAIM: &str = "SELECT k.i FROM unnest($1::int8[]) WITH ORDINALITY AS k(key, i)
     WHERE pg_try_advisory_xact_lock(k.key)";

/// What a batch's first round trip learns (see [`open`]).
struct Opened {
    batch_id: i64,
    /// Per file: claimed here, and not in the ledger.
    mine: Vec<bool>,
    /// The filter of the table's ids must be read again.
    stale: bool,
    copy_events: Statement,
    copy_stage: Statement,
}

/// The batch's first round trip, its statements pipelined: the writer lock
/// and a batch id, a claim on each file, which of them the ledger has by
/// now, whether another loader committed since the filter was read, and the
/// two COPY statements prepared. The server runs them one after the other,
/// each with a snapshot of its own, so the ledger lookup and the filter
/// check see everything committed before the locks were taken. `None` when
/// another loader holds the writer lock.
async fn open(
    tx: &Transaction<'_>,
    files: &[Candidate],
    table: &dedup::TableIds,
    staged: bool,
) -> Result<Option<Opened>, tokio_postgres::Error> {
    let keys: Vec<i64> = files.iter().map(|c| claim_key(&c.path)).collect();
    let events_sql = stage::copy_events();
    let stage_sql = match staged {
        true => stage::COPY_STAGE,
        false => stage::COPY_DEAD_LETTERS,
    };
    let ((lock, claimed, known), (stale, copy_events, copy_stage)) = try_join(
        try_join3(
            tx.query_typed_one(WRITER_THEN_BATCH_ID, &[(&WRITER_KEY, Type::INT8)]),
            tx.query_typed(CLAIM, &[(&keys, Type::INT8_ARRAY)]),
            ledger::known(tx, files),
        ),
        try_join3(
            table.stale(tx),
            tx.prepare(&events_sql),
            tx.prepare(stage_sql),
        ),
    )
    .await?;
    let Some(batch_id) = lock.get::<_, Option<i64>>(0) else {
        return Ok(None);
    };
    let mut mine = vec![false; files.len()];
    for r in &claimed {
        if let Some(m) = mine.get_mut(r.get::<_, i64>(0) as usize - 1) {
            *m = true;
        }
    }
    for (m, known) in mine.iter_mut().zip(known) {
        *m &= known.is_none();
    }
    Ok(Some(Opened {
        batch_id,
        mine,
        stale,
        copy_events,
        copy_stage,
    }))
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
    started: Instant,
    started_at: SystemTime,
    batch_id: i64,
    route: Route,
    files: Vec<Candidate>,
    elsewhere: Vec<Candidate>,
    /// Each file decided so far, with its fate and ledger row.
    results: Vec<(FileResult, FileStatus, Option<i64>)>,
    /// Files read whose fates are not decided yet.
    read: Vec<FileResult>,
    /// Files whose rows must not load (their fate is not "loaded").
    dropped: HashSet<i32>,
    /// Rows loaded by the copy route, by file number.
    loaded: HashMap<i32, u64>,
    seen_in_batch: HashMap<String, String>,
    /// The reader's staging chunks not COPYed yet (dead letters; on the
    /// staged route every row): they go in one COPY per [`STAGE_HELD`]
    /// bytes, before a savepoint and at the end, instead of one per file.
    held: Vec<Bytes>,
    held_bytes: usize,
    /// Some staging chunk was COPYed.
    staged_any: bool,
    /// The filter of the table's ids must be read again before a run loads.
    stale: bool,
    /// The COPY statements, prepared in the first round trip: the copy
    /// route's events, and the staging chunks (on the copy route straight
    /// into `dead_letter_events`, on the staged route into the staging
    /// table).
    copy_events: Statement,
    copy_stage: Statement,
    /// The file whose rows are under the savepoint.
    savepoint: Option<i32>,
    moved: Option<staged::Moved>,
}

impl<'c> Batch<'c> {
    /// Opens the transaction: the writer lock, a batch id, the claim.
    /// `staged` chooses the staged route for the batch's valid rows.
    pub async fn begin(
        client: &'c mut Client,
        table: &dedup::TableIds,
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
        let opened = match open(&tx, &files, table, staged).await? {
            Some(o) => o,
            // Another loader is writing: wait for it (bounded), then look
            // again (the locks this transaction holds are taken again at once).
            None if wait_for_writer(&tx).await? => match open(&tx, &files, table, staged).await? {
                Some(o) => o,
                None => return Ok(nothing(files)),
            },
            None => {
                tx.rollback().await?;
                tracing::debug!("another loader is writing: its batch first");
                return Ok(nothing(files));
            }
        };
        let (mut mine, mut elsewhere) = (vec![], vec![]);
        for (c, m) in files.into_iter().zip(&opened.mine) {
            if *m {
                mine.push(c);
            } else {
                elsewhere.push(c);
            }
        }
        if mine.is_empty() {
            tx.rollback().await?;
            return Ok(nothing(elsewhere));
        }
        let (files, batch_id) = (mine, opened.batch_id);
        let route = if staged { Route::Staged } else { Route::Copy };
        Ok(Begun::Claimed(Box::new(Batch {
            tx,
            started,
            started_at,
            batch_id,
            route,
            files,
            elsewhere,
            results: vec![],
            read: vec![],
            dropped: HashSet::new(),
            loaded: HashMap::new(),
            seen_in_batch: HashMap::new(),
            held: vec![],
            held_bytes: 0,
            staged_any: false,
            savepoint: None,
            moved: None,
            stale: opened.stale,
            copy_events: opened.copy_events,
            copy_stage: opened.copy_stage,
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
    pub async fn plan(&mut self, table: &mut dedup::TableIds) -> Result<(), SinkError> {
        table.begin_batch();
        if self.route != Route::Staged && self.stale {
            table.read(&self.tx).await?;
            self.stale = false;
        }
        Ok(())
    }

    /// Takes one chunk from the reader. A file read is only noted: the
    /// fates of the files noted so far are decided together, with the held
    /// dead letters' COPY, before the next run, savepoint or the end (see
    /// [`Batch::catch_up`]).
    pub async fn take(&mut self, chunk: Chunk) -> Result<(), SinkError> {
        match chunk {
            Chunk::Stage(bytes) => {
                let bytes = match self.route {
                    Route::Copy => stage::stamped(&bytes, self.batch_id),
                    Route::Staged => bytes,
                };
                self.stage_rows(bytes).await?
            }
            Chunk::File(r) => {
                let under_savepoint = self.savepoint == Some(r.file_no);
                self.read.push(r);
                if under_savepoint {
                    self.catch_up().await?;
                }
            }
            Chunk::Rows(run) => {
                let answers = dedup::Asker::nothing_known(&run);
                self.take_run(run, answers).await?;
            }
            Chunk::Savepoint(file_no) => {
                // The staging rows of the files before it stay, whatever
                // becomes of this one.
                self.catch_up().await?;
                self.tx.batch_execute("SAVEPOINT shopstream_file").await?;
                self.savepoint = Some(file_no);
            }
        }
        Ok(())
    }

    /// Takes one run of the reader, with what the [`dedup::Asker`] found
    /// out about its ids: the files read before it are judged, the ids
    /// left to ask are asked, and its new rows COPYed.
    pub async fn take_run(
        &mut self,
        mut run: SortedRows,
        answers: dedup::Answers,
    ) -> Result<(), SinkError> {
        run.map_origins(|origin| stage::stamped(origin, self.batch_id));
        let (probed, sink) = self.catch_up_to_copy(answers).await?;
        let dropped = &self.dropped;
        dedup::copy_run(sink, run, dropped, probed, &mut self.loaded).await?;
        Ok(())
    }

    /// One pipelined round trip: the ledger lookups of the files read
    /// since the last decision and the COPY of the held staging rows; then
    /// the files are judged (see [`Batch::judge`]).
    async fn catch_up(&mut self) -> Result<(), tokio_postgres::Error> {
        let (read, held) = (std::mem::take(&mut self.read), self.take_held());
        let found = lookups_and_staged(&self.tx, &self.copy_stage, &read, held).await?;
        self.judge(read, found).await
    }

    /// [`Batch::catch_up`] before a run, in the same round trip as the
    /// probe of the run's ids and the start of its COPY: the files read are
    /// judged before any of the run's rows is sent, and the COPY's rows go
    /// as soon as the answers are in. (Judging a file under a savepoint
    /// may roll back to it, which cannot happen inside a COPY: then the
    /// COPY starts after.)
    async fn catch_up_to_copy(
        &mut self,
        answers: dedup::Answers,
    ) -> Result<(dedup::Probed, CopyInSink<Bytes>), tokio_postgres::Error> {
        if let Some(no) = self.savepoint {
            if self.read.iter().any(|r| r.file_no == no) {
                self.catch_up().await?;
            }
        }
        let (read, held) = (std::mem::take(&mut self.read), self.take_held());
        let tx = &self.tx;
        let found = lookups_and_staged(tx, &self.copy_stage, &read, held);
        let probe = dedup::probe_run(tx, answers);
        let start = dedup::start_copy(tx, &self.copy_events);
        let (found, (probed, sink)) = try_join(found, try_join(probe, start)).await?;
        self.judge(read, found).await?;
        Ok((probed, sink))
    }

    /// Holds staging rows; COPYs them once [`STAGE_HELD`] bytes are held.
    async fn stage_rows(&mut self, bytes: Bytes) -> Result<(), tokio_postgres::Error> {
        self.held_bytes += bytes.len();
        self.held.push(bytes);
        if self.held_bytes >= STAGE_HELD {
            self.flush_stage().await?;
        }
        Ok(())
    }

    /// COPYs the held staging rows into the staging table, if any.
    async fn flush_stage(&mut self) -> Result<(), tokio_postgres::Error> {
        let held = self.take_held();
        copy_staged(&self.tx, &self.copy_stage, held).await
    }

    /// The held staging rows, no longer held.
    fn take_held(&mut self) -> Vec<Bytes> {
        self.held_bytes = 0;
        self.staged_any |= !self.held.is_empty();
        std::mem::take(&mut self.held)
    }

    /// Judges files read in reading order from their lookups (see
    /// [`verdict`]); the file under the savepoint is undone unless it loads.
    async fn judge(
        &mut self,
        read: Vec<FileResult>,
        found: Vec<Lookup>,
    ) -> Result<(), tokio_postgres::Error> {
        for (r, found) in read.into_iter().zip(found) {
            let (status, known_id) = verdict(&r, found, &mut self.seen_in_batch);
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
        }
        Ok(())
    }

    /// After the last chunk: on the staged route, drops the staged rows of
    /// files that do not load, moves the staged valid rows, and returns the
    /// rows the server refused, by file, for their raw text. (On the copy
    /// route the dead letters of files that do not load go with the
    /// records, see [`Batch::record_and_commit`].)
    pub async fn refused(&mut self) -> Result<Vec<(i32, Candidate, Vec<i64>)>, SinkError> {
        self.catch_up().await?;
        if self.route != Route::Staged || !self.recorded() {
            return Ok(vec![]);
        }
        if !self.dropped.is_empty() {
            let drop_files: Vec<i32> = self.dropped.iter().copied().collect();
            self.tx
                .execute(
                    "DELETE FROM shopstream_stage WHERE file_no = ANY($1)",
                    &[&drop_files],
                )
                .await?;
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
                *slot = p.layout.map(|l: LayoutRef| l.as_str().to_string());
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
        table: &mut dedup::TableIds,
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
        // A read of the table's ids beside the batch is only whole while
        // the batch holds the writer lock: take it in before the commit.
        table.merge(true).await;
        debug_pause_before_commit().await;
        self.record_and_commit(&mut report, &refused_by_file, &paths, &layouts)
            .await?;
        table.committed(self.batch_id);
        // Committed by the COMMIT sent with the records: the wrapper must
        // not send a ROLLBACK of its own when it is dropped.
        std::mem::forget(self.tx);
        report.batch_id = Some(self.batch_id);
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// The dead letters, each file's ledger row and the batch's quality
    /// row, and the COMMIT, their statements pipelined (one round trip).
    /// A statement that fails aborts the transaction, so the COMMIT after
    /// it rolls everything back: the error is returned and nothing is
    /// committed. Every statement here must go out whole on its first poll
    /// (the `*_typed` calls: parse, bind and execute in one message), so
    /// that the server runs them all before the COMMIT.
    async fn record_and_commit(
        &mut self,
        report: &mut BatchReport,
        refused_by_file: &HashMap<i32, u64>,
        paths: &[String],
        layouts: &[Option<&str>],
    ) -> Result<(), tokio_postgres::Error> {
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        let mut files = vec![];
        for (r, status, id) in std::mem::take(&mut self.results) {
            let mut fr = empty_report(&r, status, id);
            let refused = refused_by_file.get(&r.file_no).copied().unwrap_or(0);
            let loaded = self.loaded.get(&r.file_no).copied().unwrap_or(0);
            count_rows(&mut fr, &r.outcome, loaded, refused, &mut codes);
            if ledger_status(&fr.status).is_some() {
                report.rows_read += fr.rows_read;
                report.rows_loaded += fr.rows_loaded;
                report.rows_duplicate += fr.rows_duplicate;
                report.rows_rejected += fr.rows_rejected;
                report.late += fr.late;
            }
            files.push((r, fr));
        }
        let recorded = files
            .iter()
            .filter(|(_, fr)| ledger_status(&fr.status).is_some())
            .count() as i32;
        let quality = Quality::of(report, recorded, &codes);
        let ledger_rows = files.iter().filter_map(|(r, fr)| {
            let status = ledger_status(&fr.status)?;
            Some(insert_ledger(&self.tx, r, fr, status, self.batch_id))
        });
        let records = try_join3(
            try_join_all(ledger_rows),
            quality.insert(&self.tx, self.batch_id, self.started_at),
            async {
                match (self.staged_any, self.route) {
                    (false, _) => Ok(0),
                    (true, Route::Staged) => {
                        insert_dead_letters(&self.tx, paths, self.batch_id, layouts).await
                    }
                    (true, Route::Copy) => self.drop_dead_letters(paths).await,
                }
            },
        );
        let ((ids, ..), ()) = try_join(records, self.tx.batch_execute("COMMIT")).await?;
        let mut ids = ids.into_iter();
        for (_, mut fr) in files {
            if ledger_status(&fr.status).is_some() {
                fr.ledger_id = ids.next();
            }
            report.files.push(fr);
        }
        report.rejects_by_code = codes;
        Ok(())
    }

    /// The dead letters COPYed (copy route) of files that do not load.
    async fn drop_dead_letters(&self, paths: &[String]) -> Result<u64, tokio_postgres::Error> {
        let dropped: Vec<&str> = self
            .dropped
            .iter()
            .filter_map(|&no| paths.get(no as usize - 1).map(String::as_str))
            .collect();
        if dropped.is_empty() {
            return Ok(0);
        }
        self.tx
            .execute_typed(
                "DELETE FROM dead_letter_events
                 WHERE batch_id = $1 AND source_file = ANY($2) AND replay_id IS NULL",
                &[(&self.batch_id, Type::INT8), (&dropped, Type::TEXT_ARRAY)],
            )
            .await
    }
}

/// The ledger lookups of `read` and the COPY of the `held` staging rows,
/// pipelined (see [`Batch::catch_up`]).
async fn lookups_and_staged(
    tx: &Transaction<'_>,
    copy_stage: &Statement,
    read: &[FileResult],
    held: Vec<Bytes>,
) -> Result<Vec<Lookup>, tokio_postgres::Error> {
    let lookups = try_join_all(read.iter().map(|r| lookup(tx, r)));
    let (found, ()) = try_join(lookups, copy_staged(tx, copy_stage, held)).await?;
    Ok(found)
}

/// One COPY of staging rows (none: nothing is sent). Its statements go out
/// on the first poll, after those of the futures polled before it.
async fn copy_staged(
    tx: &Transaction<'_>,
    copy_stage: &Statement,
    held: Vec<Bytes>,
) -> Result<(), tokio_postgres::Error> {
    if held.is_empty() {
        return Ok(());
    }
    let sink = tx.copy_in(copy_stage).await?;
    let mut sink = std::pin::pin!(sink);
    let mut header = BytesMut::new();
    copy::header(&mut header);
    sink.feed(header.freeze()).await?;
    for bytes in held {
        sink.feed(bytes).await?;
    }
    let mut trailer = BytesMut::new();
    copy::trailer(&mut trailer);
    sink.send(trailer.freeze()).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// The staged rows that are dead letters, into `dead_letter_events`
/// (staged route).
async fn insert_dead_letters(
    tx: &Transaction<'_>,
    paths: &[String],
    batch_id: i64,
    layouts: &[Option<&str>],
) -> Result<u64, tokio_postgres::Error> {
    tx.execute_typed(
        "INSERT INTO dead_letter_events
           (batch_id, source_file, source_line, raw_line, event_id, error_codes, errors,
            source_layout)
         SELECT $2, ($1::text[])[file_no], source_line, raw_line, raw_event_id, error_codes,
                errors, ($3::text[])[file_no]
         FROM shopstream_stage WHERE NOT ok",
        &[
            (&paths, Type::TEXT_ARRAY),
            (&batch_id, Type::INT8),
            (&layouts, Type::TEXT_ARRAY),
        ],
    )
    .await
}

/// The batch's quality row (see [`INSERT_QUALITY`]).
struct Quality {
    files: i32,
    counts: [i64; 6],
    validity: Option<f64>,
    codes: String,
}

impl Quality {
    fn of(report: &BatchReport, files: i32, codes: &BTreeMap<String, u64>) -> Quality {
        let rows_valid = report.rows_loaded + report.rows_duplicate;
        Quality {
            files,
            counts: [
                report.rows_read,
                rows_valid,
                report.rows_loaded,
                report.rows_duplicate,
                report.rows_rejected,
                report.late,
            ]
            .map(|n| n as i64),
            validity: (report.rows_read > 0).then(|| rows_valid as f64 / report.rows_read as f64),
            codes: serde_json::to_string(codes).unwrap_or_else(|_| "{}".into()),
        }
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        batch_id: i64,
        started_at: SystemTime,
    ) -> Result<u64, tokio_postgres::Error> {
        let [read, valid, loaded, duplicate, rejected, late] = &self.counts;
        tx.execute_typed(
            INSERT_QUALITY,
            &[
                (&batch_id, Type::INT8),
                (&started_at, Type::TIMESTAMPTZ),
                (&self.files, Type::INT4),
                (read, Type::INT8),
                (valid, Type::INT8),
                (loaded, Type::INT8),
                (duplicate, Type::INT8),
                (rejected, Type::INT8),
                (&self.validity, Type::FLOAT8),
                (late, Type::INT8),
                (&self.codes, Type::TEXT),
            ],
        )
        .await
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

/// Waits for the writer lock (see the module docs): false when another
/// loader held it for longer than [`WRITER_WAIT`].
async fn wait_for_writer(tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
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

/// What the ledger says of one file that was read (see [`lookup`]).
struct Lookup {
    /// The ledger row of this very delivery, only its ctime changed.
    same_bytes: Option<ledger::Entry>,
    /// The ledger row that best describes its content.
    by_content: Option<ledger::ContentRow>,
    /// A vanished file: the ledger row of its listed path, size and mtime.
    listed: Option<ledger::Entry>,
}

/// Every ledger lookup one file's fate needs, pipelined (one round trip,
/// also when issued beside other files' lookups).
async fn lookup(tx: &Transaction<'_>, r: &FileResult) -> Result<Lookup, tokio_postgres::Error> {
    let path = r.candidate.path.display().to_string();
    let hash = match &r.outcome {
        FileOutcome::Parsed(p) => Some(p.hash.as_str()),
        FileOutcome::Rejected { hash, .. } => hash.as_deref(),
        _ => None,
    };
    let content = match &r.outcome {
        FileOutcome::Parsed(p) => Some(p.hash.as_str()),
        _ => None,
    };
    // Matched on path, size and mtime only: another loader's archive or
    // quarantine links the file (a new ctime) before removing it.
    let listed = Candidate {
        file_id: None,
        ..r.candidate.clone()
    };
    let (same_bytes, by_content, listed) = try_join3(
        async {
            match (hash, r.candidate.file_id) {
                (Some(h), Some(_)) => ledger::same_bytes(tx, &r.candidate, h).await,
                _ => Ok(None),
            }
        },
        async {
            match content {
                Some(h) => ledger::by_content(tx, h, &path).await,
                None => Ok(None),
            }
        },
        async {
            match r.outcome {
                FileOutcome::Vanished => {
                    let known = ledger::known(tx, std::slice::from_ref(&listed)).await?;
                    Ok(known.into_iter().next().flatten())
                }
                _ => Ok(None),
            }
        },
    )
    .await?;
    Ok(Lookup {
        same_bytes,
        by_content,
        listed,
    })
}

/// A file's fate against the ledger (with its row when the ledger has
/// it), from its [`lookup`]. Every file here is a delivery the claim did
/// not find in the ledger, so each fate but [`FileStatus::AlreadyDone`]
/// gets a row of its own. Files are judged in reading order: the first of
/// the batch with some content loads it, the later ones are duplicates.
fn verdict(
    r: &FileResult,
    found: Lookup,
    seen_in_batch: &mut HashMap<String, String>,
) -> (FileStatus, Option<i64>) {
    // Only its ctime changed (a chmod, a link another loader's archive or
    // quarantine makes before removing it): the delivery the ledger has.
    if let Some(e) = found.same_bytes {
        let status = FileStatus::AlreadyDone {
            rejected: e.rejected,
        };
        return (status, Some(e.id));
    }
    let status = match &r.outcome {
        FileOutcome::Changed => FileStatus::Changed,
        FileOutcome::Vanished => {
            return match found.listed {
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
            };
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
                match found.by_content {
                    // Loaded before, under this path or another. Content
                    // only ever rejected is read again under today's rules
                    // and layouts (a limit raised, a setting changed): it
                    // parsed, so it loads.
                    Some(row) if row.loaded => FileStatus::Duplicate { of: row.path },
                    _ => {
                        let path = r.candidate.path.display().to_string();
                        seen_in_batch.insert(p.hash.clone(), path);
                        FileStatus::Loaded
                    }
                }
            }
        }
    };
    (status, None)
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
    let (hash, layout, unknown_columns, header) = match &r.outcome {
        FileOutcome::Parsed(p) => (
            Some(p.hash.as_str()),
            p.layout.map(LayoutRef::as_str),
            Some(&p.unknown_columns).filter(|u| !u.is_empty()),
            Some(&p.header).filter(|h| !h.is_empty()),
        ),
        FileOutcome::Rejected { hash, .. } => (hash.as_deref(), None, None, None),
        _ => (None, None, None, None),
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
        header,
    };
    ledger::insert(tx, &entry).await
}

/// The environment variable behind [`debug_pause_before_commit`]
/// (milliseconds). Not an option: it exists to test shutdown, holding a
/// batch inside its open transaction, right before its COMMIT.
pub const PAUSE_BEFORE_COMMIT_ENV: &str = "SHOPSTREAM_DEBUG_PAUSE_BEFORE_COMMIT_MS";

/// Fault injection for the shutdown and crash tests: with
/// [`PAUSE_BEFORE_COMMIT_ENV`] set (read once per process), every batch
/// (and every dead-letter replay) waits that long right before its COMMIT,
/// its transaction still open.
pub(crate) async fn debug_pause_before_commit() {
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
