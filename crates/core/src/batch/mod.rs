//! The vocabulary of one batch, shared by the reader (`pipeline::read`),
//! the transaction (`sink::transaction`) and the observers: what a file
//! turned out to be, what travels from the reader to the database, and what
//! a committed batch did.
//!
//! Types only (and [`rows`], the sorted runs of events): nothing here reads
//! a file, talks to the database or decides anything.

pub mod rows;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::event::RuleCode;
use crate::schema::LayoutRef;
use crate::source::discover::Candidate;
pub use rows::{RowRef, RowsBuilder, RunSlots, SortedRows};

/// What the reader found in one file that it read to the end.
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
    pub layout: Option<LayoutRef>,
    /// Header columns the layout does not know.
    pub unknown_columns: Vec<String>,
    /// The header row's column names as written (recorded in the ledger,
    /// so that a dead letter's raw line can be read again).
    pub header: Vec<String>,
}

/// What became of one file while reading.
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

/// One file of a batch as the reader hands it over.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// Its 1-based number in the batch (its rows carry it).
    pub file_no: i32,
    pub candidate: Candidate,
    pub outcome: FileOutcome,
}

/// Where a batch's valid rows go; fixed for the batch before reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Sorted runs COPYed straight into `ecommerce_events` after the
    /// duplicate check, dead letters straight into `dead_letter_events`;
    /// the transaction stamps its batch id into the rows (the reader starts
    /// before the id is known).
    Copy,
    /// Every row through the staging table, moved with `INSERT … ON
    /// CONFLICT DO NOTHING`: for an event table with constraints, triggers
    /// or foreign keys shopstream does not check itself, so that a row it
    /// refuses becomes a dead letter instead of failing the batch.
    Staged,
}

/// What the reader sends to the transaction, in reading order.
#[derive(Debug)]
pub enum Chunk {
    /// Encoded rows without COPY header or trailer: on the copy route dead
    /// letters, rows of `dead_letter_events`; on the staged route rows of
    /// the staging table, dead letters and valid rows alike.
    Stage(Bytes),
    /// Valid events sorted by id, for the event table (copy route).
    Rows(SortedRows),
    /// Rows of this file sent from here on are undone if the file does not
    /// end loaded (a file larger than a run); later chunks up to its
    /// [`Chunk::File`] hold its rows only.
    Savepoint(i32),
    /// A file read to its end, or given up on. Its rows and dead letters
    /// were all sent before it.
    File(FileResult),
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
    /// This very version of the file (see `sink::ledger::SAME_FILE`) is
    /// already in the ledger; `rejected` holds the reason when it was
    /// recorded as rejected.
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
    /// Files of the batch left out: another loader holds them, or the
    /// ledger has them by now. Not settled here; the next listing sees them.
    #[serde(skip)]
    pub elsewhere: Vec<Candidate>,
}
