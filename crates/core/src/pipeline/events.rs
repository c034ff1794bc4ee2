//! The loader's events ([`crate::loader_event`]) built from the sink's and
//! the source's own types, so that no observer needs those types.
//!
//! It only translates: it never emits, decides or reads a clock.

use crate::batch::{BatchReport, FileStatus};
use crate::loader_event::{BatchDone, FileDone, FileOutcome};

/// One committed batch as its event; `committed_micros` is the commit time.
pub fn batch_done(r: &BatchReport, committed_micros: i64) -> BatchDone {
    let files = r
        .files
        .iter()
        .map(|f| FileDone {
            path: f.path.clone(),
            outcome: match &f.status {
                FileStatus::Loaded => FileOutcome::Loaded,
                FileStatus::Duplicate { .. } => FileOutcome::Duplicate,
                FileStatus::Rejected { reason } => FileOutcome::Rejected {
                    reason: reason.clone(),
                },
                FileStatus::AlreadyDone { .. } => FileOutcome::AlreadyDone,
                FileStatus::Changed => FileOutcome::Changed,
            },
            arrived_micros: f.candidate.as_ref().map(|c| c.mtime_micros),
        })
        .collect();
    let bytes_done = r
        .files
        .iter()
        .filter_map(|f| f.candidate.as_ref())
        .chain(&r.elsewhere)
        .map(|c| c.size)
        .sum();
    BatchDone {
        batch_id: r.batch_id,
        files,
        rows_read: r.rows_read,
        rows_loaded: r.rows_loaded,
        rows_duplicate: r.rows_duplicate,
        rows_rejected: r.rows_rejected,
        rejects_by_code: r.rejects_by_code.clone(),
        duration_ms: r.duration_ms,
        bytes_done,
        committed_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::FileReport;
    use crate::source::discover::Candidate;

    #[test]
    fn a_report_becomes_plain_data_with_the_bytes_it_settled() {
        let cand = |name: &str, size| Candidate {
            path: name.into(),
            size,
            mtime_micros: 5,
            file_id: None,
        };
        let r = BatchReport {
            batch_id: Some(3),
            files: vec![
                FileReport::new("a.csv".into(), FileStatus::Loaded, Some(cand("a.csv", 10))),
                FileReport::new(
                    "b.csv".into(),
                    FileStatus::Rejected {
                        reason: "empty".into(),
                    },
                    None,
                ),
            ],
            rows_read: 4,
            rows_loaded: 4,
            elsewhere: vec![cand("c.csv", 7)],
            ..BatchReport::default()
        };
        let done = batch_done(&r, 99);
        assert_eq!(done.bytes_done, 17, "its files and the ones held elsewhere");
        assert_eq!(done.committed_micros, 99);
        assert_eq!(
            done.files,
            [
                FileDone {
                    path: "a.csv".into(),
                    outcome: FileOutcome::Loaded,
                    arrived_micros: Some(5),
                },
                FileDone {
                    path: "b.csv".into(),
                    outcome: FileOutcome::Rejected {
                        reason: "empty".into()
                    },
                    arrived_micros: None,
                },
            ]
        );
    }
}
