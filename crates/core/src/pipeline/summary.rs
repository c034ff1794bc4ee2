//! A run's totals (`RunSummary`, printed as JSON by `run --once`) and the
//! log line of each committed batch.
//!
//! It owns counting and wording. It never decides anything.

use crate::batch::{BatchReport, FileStatus};

/// Totals over a whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub batches: u64,
    pub files_loaded: u64,
    /// Of `files_loaded`, those that added no event: every row was a
    /// duplicate of an event already loaded (or rejected). The ledger
    /// records them as loaded; the summary says that nothing came of them.
    pub files_loaded_only_duplicates: u64,
    pub files_duplicate: u64,
    pub files_rejected: u64,
    pub files_quarantined: u64,
    pub files_archived: u64,
    pub files_deleted: u64,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
}

impl RunSummary {
    /// For the summary line: how many of the loaded files added nothing,
    /// or nothing when none.
    pub fn only_duplicates_note(&self) -> String {
        match self.files_loaded_only_duplicates {
            0 => String::new(),
            n => format!(" ({n} of them only duplicate rows: nothing added)"),
        }
    }

    pub(super) fn add(&mut self, r: &BatchReport) {
        if r.batch_id.is_some() {
            self.batches += 1;
        }
        for f in &r.files {
            match f.status {
                FileStatus::Loaded => {
                    self.files_loaded += 1;
                    if f.rows_loaded == 0 && f.rows_duplicate > 0 {
                        self.files_loaded_only_duplicates += 1;
                    }
                }
                FileStatus::Duplicate { .. } => self.files_duplicate += 1,
                FileStatus::Rejected { .. } => self.files_rejected += 1,
                _ => {}
            }
        }
        self.rows_read += r.rows_read;
        self.rows_loaded += r.rows_loaded;
        self.rows_duplicate += r.rows_duplicate;
        self.rows_rejected += r.rows_rejected;
    }
}

/// Logs one committed batch the way a person wants to read it.
pub fn log_batch(r: &BatchReport) {
    for f in &r.files {
        match &f.status {
            FileStatus::Rejected { reason } => {
                // The quarantine line says it (with where the file went).
                tracing::debug!(file = ?f.path, "file rejected: {reason}")
            }
            FileStatus::Duplicate { of } => {
                tracing::info!(file = ?f.path, "same content as {of:?}: nothing added")
            }
            FileStatus::Changed => {
                tracing::info!(file = ?f.path, "file changed while being read; will retry")
            }
            _ => {}
        }
    }
    let Some(id) = r.batch_id else { return };
    let codes: Vec<String> = r
        .rejects_by_code
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    };
    tracing::info!(
        "batch {id}: {} file(s), {} rows -> {} loaded, {} duplicate, {} rejected{codes}, {} late, in {} ms",
        r.files.len(),
        r.rows_read,
        r.rows_loaded,
        r.rows_duplicate,
        r.rows_rejected,
        r.late,
        r.duration_ms
    );
}
