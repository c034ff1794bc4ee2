//! What a generation run wrote, row for row.
//!
//! Owns [`Report`] (the exact expected ingestion outcome of the files a run
//! published) and [`FileTally`] (the counts of one file before it is
//! published). A file's counts enter the report only after the file was
//! published, so the report never describes rows a reader cannot see. This
//! module must never estimate: every number is a count of rows written.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use uuid::Uuid;

use shopstream_core::event::{EventType, RuleCode};
use shopstream_core::schema::LayoutId;

use super::error::GenerateError;

/// The exact outcome a correct ingester must reach for the files of a run,
/// loading them in order (per-file numbers assume name order, which is
/// also write order). Invariant: `rows == loaded + duplicates +
/// sum(rejected)`, in total and per file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Report {
    pub run_id: String,
    pub seed: u64,
    /// The layout the files are written in (`--layout`).
    #[serde(default)]
    pub layout: String,
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
    /// The same counts for each file, in order.
    #[serde(default)]
    pub per_file: Vec<FileReport>,
}

/// The expected outcome of one file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct FileReport {
    pub file: String,
    pub rows: u64,
    pub loaded: u64,
    pub duplicates: u64,
    pub rejected: BTreeMap<String, u64>,
    pub late: u64,
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
    pub fn new(run_id: String, seed: u64, layout: LayoutId) -> Report {
        Report {
            run_id,
            seed,
            layout: layout.as_str().to_string(),
            ..Report::default()
        }
    }

    /// Adds a published file.
    pub fn add_file(&mut self, name: String, tally: &FileTally) {
        let rejected: BTreeMap<String, u64> = tally
            .rejected
            .iter()
            .map(|(code, n)| (code.as_str().to_string(), *n))
            .collect();
        let by_type: BTreeMap<String, u64> = tally
            .by_type
            .iter()
            .map(|(t, n)| (t.as_str().to_string(), *n))
            .collect();
        self.rows += tally.rows;
        self.loaded += tally.loaded;
        self.duplicates += tally.duplicates;
        self.late += tally.late;
        for (code, n) in &rejected {
            *self.rejected.entry(code.clone()).or_default() += n;
        }
        for (t, n) in &by_type {
            *self.by_type.entry(t.clone()).or_default() += n;
        }
        self.files.push(name.clone());
        self.per_file.push(FileReport {
            file: name,
            rows: tally.rows,
            loaded: tally.loaded,
            duplicates: tally.duplicates,
            rejected,
            late: tally.late,
            by_type,
        });
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
        let _ = write!(
            s,
            "\n  run {} (seed {}, layout {})",
            self.run_id, self.seed, self.layout
        );
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

/// The event ids the loader will hold, for layouts whose ids derive from a
/// row's content (seed 000, seed 002), so that a row reusing one is
/// predicted as a duplicate. Ids are kept by the second of their event
/// time, and [`LoadedIds::forget_before`] drops those no new row can reuse
/// any more, so memory stays bounded in continuous runs. (This assumes the
/// event clock never steps back further than it forgets: it only moves
/// forward in bounded runs; continuous runs follow the wall clock.)
#[derive(Debug)]
pub struct LoadedIds {
    /// Id → event type and lateness of the row that loaded it.
    ids: HashMap<Uuid, (EventType, bool)>,
    by_second: BTreeMap<i64, Vec<Uuid>>,
    floor_ms: i64,
}

impl Default for LoadedIds {
    fn default() -> Self {
        LoadedIds {
            ids: HashMap::new(),
            by_second: BTreeMap::new(),
            floor_ms: i64::MIN,
        }
    }
}

impl LoadedIds {
    /// The type and lateness of the loaded row with this id.
    pub fn get(&self, id: &Uuid) -> Option<(EventType, bool)> {
        self.ids.get(id).copied()
    }

    /// Records the row with `id` (event time `ms`) as loaded; false, and
    /// nothing recorded, if the id is already loaded (a duplicate).
    pub fn insert(&mut self, id: Uuid, ms: i64, event_type: EventType, late: bool) -> bool {
        if self.ids.contains_key(&id) {
            return false;
        }
        self.ids.insert(id, (event_type, late));
        self.by_second
            .entry(ms.div_euclid(1000))
            .or_default()
            .push(id);
        true
    }

    /// Forgets the ids of events before the second containing `ms`.
    pub fn forget_before(&mut self, ms: i64) {
        let second = ms.div_euclid(1000);
        let floor = second.saturating_mul(1000);
        if floor <= self.floor_ms {
            return;
        }
        let keep = self.by_second.split_off(&second);
        for ids in std::mem::replace(&mut self.by_second, keep).into_values() {
            for id in ids {
                self.ids.remove(&id);
            }
        }
        self.floor_ms = floor;
    }

    /// Event times from here on are still remembered.
    pub fn floor_ms(&self) -> i64 {
        self.floor_ms
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_ids_tell_duplicates_and_forget_old_seconds() {
        let mut ids = LoadedIds::default();
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert!(ids.insert(a, 10_500, EventType::View, false));
        assert!(!ids.insert(a, 10_500, EventType::Purchase, true));
        assert_eq!(ids.get(&a), Some((EventType::View, false)));
        assert!(ids.insert(b, 12_000, EventType::Purchase, true));
        ids.forget_before(11_999);
        assert_eq!(ids.floor_ms(), 11_000);
        assert_eq!(ids.get(&a), None);
        assert_eq!(ids.len(), 1);
        ids.forget_before(5_000); // never moves back
        assert_eq!(ids.floor_ms(), 11_000);
        ids.forget_before(12_999);
        assert_eq!(ids.get(&b), Some((EventType::Purchase, true)));
        ids.forget_before(13_000);
        assert_eq!(ids.len(), 0);
    }

    fn sample() -> Report {
        let mut r = Report::new("0badcafe".into(), 42, LayoutId::V3);
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
