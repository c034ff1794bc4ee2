//! What a generation run wrote, row for row.
//!
//! Owns [`Report`] (the exact expected ingestion outcome of the files a run
//! published) and [`FileTally`] (the counts of one file before it is
//! published). A file's counts enter the report only after the file was
//! published, so the report never describes rows a reader cannot see. This
//! module must never estimate: every number is a count of rows written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::event::{EventType, RuleCode};

use super::error::GenerateError;

/// The exact outcome a correct ingester must reach for the files of a run.
/// Invariant: `rows == loaded + duplicates + sum(rejected)`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    pub run_id: String,
    pub seed: u64,
    /// File names written, in order.
    pub files: Vec<String>,
    /// Data rows written (excluding headers).
    pub rows: u64,
    /// Rows expected to load (valid, first occurrence).
    pub loaded: u64,
    /// Repeated valid rows (expected counted duplicates).
    pub duplicates: u64,
    /// Expected dead letters by rule code (`RuleCode::as_str`).
    pub rejected: BTreeMap<String, u64>,
    /// Valid rows back-dated beyond 5 minutes (informational).
    pub late: u64,
    /// Loaded rows by event_type.
    pub by_type: BTreeMap<String, u64>,
}

/// Counts for one file that is still being written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileTally {
    pub rows: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: BTreeMap<RuleCode, u64>,
    pub by_type: BTreeMap<EventType, u64>,
}

impl FileTally {
    pub fn loaded(&mut self, event_type: EventType, late: bool) {
        self.rows += 1;
        self.loaded += 1;
        self.late += u64::from(late);
        *self.by_type.entry(event_type).or_default() += 1;
    }

    pub fn duplicate(&mut self) {
        self.rows += 1;
        self.duplicates += 1;
    }

    pub fn rejected(&mut self, code: RuleCode) {
        self.rows += 1;
        *self.rejected.entry(code).or_default() += 1;
    }

    pub fn invalid(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Report {
    pub fn new(run_id: String, seed: u64) -> Report {
        Report {
            run_id,
            seed,
            ..Report::default()
        }
    }

    /// Adds a published file.
    pub fn add_file(&mut self, name: String, tally: &FileTally) {
        self.files.push(name);
        self.rows += tally.rows;
        self.loaded += tally.loaded;
        self.duplicates += tally.duplicates;
        self.late += tally.late;
        for (code, n) in &tally.rejected {
            *self.rejected.entry(code.as_str().to_string()).or_default() += n;
        }
        for (t, n) in &tally.by_type {
            *self.by_type.entry(t.as_str().to_string()).or_default() += n;
        }
    }

    /// Rows expected in the dead-letter table.
    pub fn invalid(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// A readable multi-line summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "wrote {} file{}, {} rows: {} valid, {} duplicates, {} invalid",
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
            self.rows,
            self.loaded,
            self.duplicates,
            self.invalid(),
        );
        if !self.rejected.is_empty() {
            let parts: Vec<String> = self
                .rejected
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            let _ = write!(s, " ({})", parts.join(", "));
        }
        let _ = write!(s, ", {} late", self.late);
        let _ = write!(s, "\n  run {} (seed {})", self.run_id, self.seed);
        if !self.by_type.is_empty() {
            let parts: Vec<String> = self
                .by_type
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            let _ = write!(s, "\n  valid by type: {}", parts.join(", "));
        }
        match (self.files.first(), self.files.last()) {
            (Some(first), Some(last)) if self.files.len() > 1 => {
                let _ = write!(s, "\n  files: {first} .. {last}");
            }
            (Some(only), _) => {
                let _ = write!(s, "\n  file: {only}");
            }
            _ => {}
        }
        s
    }

    /// Writes the report as pretty JSON to `path`, atomically (temp file in
    /// the same folder, then rename).
    pub fn write_json(&self, path: &Path) -> Result<(), GenerateError> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| GenerateError::ReportJson {
            path: path.to_path_buf(),
            source,
        })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report.json".to_string());
        let temp = path.with_file_name(format!(".{file_name}.tmp"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| GenerateError::Io { path: p, source }
        };
        fs::write(&temp, &json).map_err(io(&temp))?;
        fs::rename(&temp, path).map_err(|source| {
            let _ = fs::remove_file(&temp);
            GenerateError::Rename {
                from: temp.clone(),
                to: path.to_path_buf(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new("0badcafe".into(), 42);
        let mut t = FileTally::default();
        for _ in 0..5 {
            t.loaded(EventType::View, false);
        }
        t.loaded(EventType::Purchase, true);
        t.rejected(RuleCode::NegativePrice);
        r.add_file("a.csv".into(), &t);
        let mut t = FileTally::default();
        t.loaded(EventType::View, false);
        t.duplicate();
        t.rejected(RuleCode::NegativePrice);
        t.rejected(RuleCode::NullEventId);
        r.add_file("b.csv".into(), &t);
        r
    }

    #[test]
    fn counts_add_up() {
        let r = sample();
        assert_eq!(r.rows, 11);
        assert_eq!(r.loaded, 7);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.invalid(), 3);
        assert_eq!(r.rows, r.loaded + r.duplicates + r.invalid());
        assert_eq!(r.rejected["negative_price"], 2);
        assert_eq!(r.by_type["view"], 6);
        assert_eq!(r.late, 1);
        assert_eq!(r.files, vec!["a.csv", "b.csv"]);
    }

    #[test]
    fn summary_reads_well() {
        let s = sample().summary();
        let first = s.lines().next().unwrap();
        assert_eq!(
            first,
            "wrote 2 files, 11 rows: 7 valid, 1 duplicates, 3 invalid \
             (negative_price 2, null_event_id 1), 1 late"
        );
        assert!(s.contains("purchase 1, view 6"));
        assert!(Report::default()
            .summary()
            .starts_with("wrote 0 files, 0 rows"));
    }

    #[test]
    fn json_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("report.json");
        let r = sample();
        r.write_json(&path).unwrap();
        let back: Report = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, r);
        let err = r
            .write_json(&tmp.path().join("missing/dir/r.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing/dir"), "{err}");
    }
}
