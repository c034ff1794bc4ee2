//! The counting end of a dry run: a [`Verdicts`] that takes the judged
//! rows `run`'s reader hands out and keeps, per file, the counts, the
//! reason codes, the first failing lines and the event ids repeated within
//! the checked files, then the file's verdict from its outcome.
//!
//! It holds no row: each is counted and dropped. Its memory is the first
//! `--show` failures per file and the ids compared for repeats, at most
//! [`ID_CAP`] of them. It never reads a file itself and never decides a
//! file's fate: the reader's outcome does.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Verdict;
use crate::batch::{FileOutcome, FileResult};
use crate::event::RuleCode;
use crate::observe::progress::Progress;
use crate::pipeline::read::{Aborted, Verdicts};
use crate::requeue::FileCode;
use crate::source::discover::Candidate;
use crate::source::format::Format;
use crate::source::layout::Layout;
use crate::validate::{Failure, ValidEvent};

/// Most distinct event ids kept to find repeats (16 bytes each, about
/// 64 MiB with the set's overhead); past it, rows are no longer compared.
pub const ID_CAP: usize = 3_000_000;

/// A progress bar only for checks this large (bytes as stored).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// How often (in rows) the progress bar's message is refreshed.
const PROGRESS_ROWS: u64 = 1 << 16;

/// What `check` found in one file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileCheck {
    pub path: String,
    /// As its name tells it: `csv`, `csv.gz`, `jsonl.zst`, ….
    pub format: String,
    /// The layout detected from its header (or first object).
    pub layout: Option<String>,
    pub verdict: Verdict,
    /// For a rejected file: the rows read before it was given up (all of
    /// them when it has too many rejects).
    pub rows_read: u64,
    pub rows_valid: u64,
    pub rows_invalid: u64,
    /// Valid rows whose event id an earlier row of the checked files has.
    pub duplicate_ids: u64,
    /// Failed rules by code (a row failing two rules counts in both).
    pub reasons: BTreeMap<String, u64>,
    /// The first failing rows, in file order.
    pub failures: Vec<FailingLine>,
    /// Header columns (or keys) the layout does not know.
    pub unknown_columns: Vec<String>,
    /// Why the whole file would be rejected.
    pub rejected: Option<Rejection>,
    pub note: Option<String>,
}

/// Why a whole file would be rejected: the code `requeue --code` takes,
/// and the reason `run` would record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub code: FileCode,
    pub reason: String,
}

/// One failing row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingLine {
    /// Its line number (in the decompressed content).
    pub line: u64,
    pub errors: Vec<RowError>,
}

/// One rule a row broke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub code: String,
    pub column: String,
    pub value: String,
    pub message: String,
}

impl FileCheck {
    /// A file rejected before any reading (it cannot be opened).
    pub fn rejected(path: String, rejection: Rejection) -> FileCheck {
        FileCheck {
            format: format_of(std::path::Path::new(&path)),
            path,
            layout: None,
            verdict: Verdict::Rejected,
            rows_read: 0,
            rows_valid: 0,
            rows_invalid: 0,
            duplicate_ids: 0,
            reasons: BTreeMap::new(),
            failures: vec![],
            unknown_columns: vec![],
            rejected: Some(rejection),
            note: None,
        }
    }
}

fn format_of(path: &std::path::Path) -> String {
    Format::of(path)
        .suffix()
        .trim_start_matches('.')
        .to_string()
}

/// The file being read.
#[derive(Default)]
struct Current {
    /// Its path, for the progress bar.
    name: String,
    layout: Option<String>,
    valid: u64,
    invalid: u64,
    reasons: BTreeMap<RuleCode, u64>,
    failures: Vec<FailingLine>,
    duplicates: u64,
    /// Its new ids: the checked files' ids only once it would load.
    ids: HashSet<[u8; 16]>,
}

/// Counts judged rows into per-file checks (see the module docs).
pub(super) struct Tally {
    show: usize,
    done: Vec<FileCheck>,
    current: Current,
    /// Ids of files that would load.
    ids: HashSet<[u8; 16]>,
    /// Most ids kept ([`ID_CAP`]).
    cap: usize,
    capped: bool,
    /// Content hashes of files that would load, with their path.
    hashes: HashMap<String, String>,
    progress: Progress,
}

impl Tally {
    /// A tally keeping `show` failing lines per file, over `total_bytes`.
    pub(super) fn new(show: usize, total_bytes: u64) -> Tally {
        let progress = if total_bytes >= PROGRESS_MIN_BYTES {
            Progress::new(total_bytes, "bytes", "check")
        } else {
            Progress::none()
        };
        Tally {
            show,
            done: vec![],
            current: Current::default(),
            ids: HashSet::new(),
            cap: ID_CAP,
            capped: false,
            hashes: HashMap::new(),
            progress,
        }
    }

    /// A file checked without reading (it could not be opened).
    pub(super) fn push(&mut self, f: FileCheck) {
        self.done.push(f);
    }

    /// The checked files, and whether ids were no longer compared.
    pub(super) fn finish(self) -> (Vec<FileCheck>, bool) {
        self.progress.finish();
        (self.done, self.capped)
    }

    /// Now and then, the rows of the file being read on the bar.
    fn tick(&self) {
        let c = &self.current;
        let rows = c.valid + c.invalid;
        if rows % PROGRESS_ROWS == 0 {
            self.progress.message(format!("{}: {rows} rows", c.name));
        }
    }

    /// Counts an id; true when the checked files had it before.
    fn seen(&mut self, id: [u8; 16]) -> bool {
        if self.ids.contains(&id) || self.current.ids.contains(&id) {
            return true;
        }
        if self.ids.len() + self.current.ids.len() >= self.cap {
            self.capped = true;
        } else {
            self.current.ids.insert(id);
        }
        false
    }

    /// The file's check from its outcome and what was counted.
    fn settle(&mut self, r: FileResult) -> FileCheck {
        let c = std::mem::take(&mut self.current);
        let path = r.candidate.path.display().to_string();
        let mut f = FileCheck {
            format: format_of(&r.candidate.path),
            layout: c.layout,
            verdict: Verdict::Clean,
            rows_read: c.valid + c.invalid,
            rows_valid: c.valid,
            rows_invalid: c.invalid,
            duplicate_ids: c.duplicates,
            reasons: c
                .reasons
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            failures: c.failures,
            unknown_columns: vec![],
            rejected: None,
            note: None,
            path,
        };
        let reason = match r.outcome {
            FileOutcome::Parsed(p) => {
                debug_assert_eq!((p.rows_valid, p.rows_rejected), (c.valid, c.invalid));
                f.unknown_columns = p.unknown_columns;
                match self.hashes.get(&p.hash) {
                    // Nothing of it would load, nor be a dead letter.
                    Some(first) => {
                        f.note = Some(format!(
                            "same content as {first}: run counts the whole file a duplicate \
                             (no row loaded, no dead letter)"
                        ));
                    }
                    None => {
                        self.hashes.insert(p.hash, f.path.clone());
                        self.ids.extend(c.ids);
                        if f.rows_invalid > 0 {
                            f.verdict = Verdict::DeadLetters;
                        }
                    }
                }
                return f;
            }
            FileOutcome::Rejected { reason, .. } => reason,
            FileOutcome::Changed => {
                "the file changed while being read (a writer is still at it): run would try it \
                 again later; check it again once complete"
                    .to_string()
            }
            FileOutcome::Vanished => "the file disappeared before it could be read".to_string(),
        };
        f.verdict = Verdict::Rejected;
        f.rejected = Some(Rejection {
            code: FileCode::of(&reason),
            reason,
        });
        f
    }
}

impl Verdicts for Tally {
    fn file_rows(&mut self, _file_no: i32, file: &Candidate, layout: &Layout) {
        self.current.name = file.path.display().to_string();
        self.current.layout = Some(layout.id.as_str().to_string());
    }

    fn valid(
        &mut self,
        _file_no: i32,
        _line: u64,
        ev: &ValidEvent<'_>,
        _extra: Option<&[u8]>,
    ) -> Result<(), Aborted> {
        self.current.valid += 1;
        if self.seen(*ev.event_id.as_bytes()) {
            self.current.duplicates += 1;
        }
        self.tick();
        Ok(())
    }

    fn failed(
        &mut self,
        _file_no: i32,
        line: u64,
        _raw_line: &str,
        _event_id: Option<&str>,
        fails: &[Failure],
    ) -> Result<(), Aborted> {
        let c = &mut self.current;
        c.invalid += 1;
        for f in fails {
            *c.reasons.entry(f.code).or_default() += 1;
        }
        if c.failures.len() < self.show {
            c.failures.push(FailingLine {
                line,
                errors: fails
                    .iter()
                    .map(|f| RowError {
                        code: f.code.as_str().to_string(),
                        column: f.column.to_string(),
                        value: f.value.clone(),
                        message: f.message.clone(),
                    })
                    .collect(),
            });
        }
        self.tick();
        Ok(())
    }

    fn file_read(&mut self, result: FileResult) -> Result<(), Aborted> {
        self.progress.inc(result.candidate.size);
        let f = self.settle(result);
        self.done.push(f);
        Ok(())
    }

    fn end(&mut self) -> Result<(), Aborted> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ParsedFile;

    fn result(outcome: FileOutcome) -> FileResult {
        FileResult {
            file_no: 1,
            candidate: Candidate {
                path: "in/a.csv".into(),
                size: 1,
                mtime_micros: 0,
                file_id: None,
            },
            outcome,
        }
    }

    #[test]
    fn ids_repeat_across_files_that_load_and_stop_being_kept_at_the_cap() {
        let mut t = Tally::new(5, 0);
        t.cap = 3;
        assert!(!t.seen([1; 16]) && t.seen([1; 16]), "within a file");
        // A rejected file's ids are forgotten: run loads none of them.
        let rejected = FileOutcome::Rejected {
            hash: None,
            reason: "x".into(),
        };
        t.file_read(result(rejected)).expect("settled");
        assert!(!t.seen([1; 16]) && !t.seen([2; 16]));
        let parsed = FileOutcome::Parsed(ParsedFile::default());
        t.file_read(result(parsed)).expect("settled");
        assert!(t.seen([1; 16]) && t.seen([2; 16]), "across files");
        assert!(!t.seen([3; 16]) && !t.capped);
        // The fourth id is past the cap: counted new, not kept.
        assert!(!t.seen([4; 16]) && t.capped);
        assert!(!t.seen([4; 16]));
        let (files, capped) = t.finish();
        assert_eq!(files.len(), 2);
        assert!(capped);
    }
}
