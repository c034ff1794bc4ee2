//! The bench's datasets, shaped the way shops' data arrives rather than the
//! way shopstream's own generator places things.
//!
//! Owns [`Shape`] (where duplicates sit: nowhere, **near** — the same or
//! the previous file —, **far** — uniformly over everything before —,
//! **before** the run — events the table already holds —, or whole files
//! **re-sent** under another name) and [`compose`], which deals rows from
//! generated pools (valid events only; rows broken on purpose; a sample of
//! the history's event ids) into one shape's files, with an exact account of
//! what a correct loader must load. A duplicate is a fresh event that
//! reuses an earlier event id: its other columns are its own.
//!
//! It never talks to the database, never runs shopstream and never decides
//! what is measured.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use csv::ByteRecord;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Where a dataset's duplicates sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// No duplicate at all.
    Plain,
    /// This percentage of rows reuse the event id of a row placed earlier
    /// in the same file or in the previous one.
    Near(u8),
    /// This percentage of rows reuse the event id of a row placed anywhere
    /// earlier, uniformly.
    Far(u8),
    /// This percentage of rows reuse the event id of an event the table
    /// held before the run.
    Before(u8),
    /// One file in twenty is delivered a second time under another name,
    /// about thirty files later.
    Resent,
}

impl Shape {
    /// The default matrix: every shape, duplicates at 1% and 5%.
    pub const DEFAULTS: [Shape; 8] = [
        Shape::Plain,
        Shape::Near(1),
        Shape::Near(5),
        Shape::Far(1),
        Shape::Far(5),
        Shape::Before(1),
        Shape::Before(5),
        Shape::Resent,
    ];

    /// True when the run starts against a table holding the history.
    pub fn needs_history(self) -> bool {
        matches!(self, Shape::Before(_))
    }

    fn duplicate_share(self) -> f64 {
        match self {
            Shape::Near(p) | Shape::Far(p) | Shape::Before(p) => f64::from(p) / 100.0,
            Shape::Plain | Shape::Resent => 0.0,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Plain => f.write_str("plain"),
            Shape::Near(p) => write!(f, "near-{p}"),
            Shape::Far(p) => write!(f, "far-{p}"),
            Shape::Before(p) => write!(f, "before-{p}"),
            Shape::Resent => f.write_str("resent"),
        }
    }
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Shape, String> {
        let bad = || {
            format!(
                "unknown shape {s:?}: plain, resent, or near-P, far-P, before-P with P the \
                 percentage of duplicate rows (1 to 50)"
            )
        };
        match s {
            "plain" => return Ok(Shape::Plain),
            "resent" => return Ok(Shape::Resent),
            _ => {}
        }
        let (kind, pct) = s.split_once('-').ok_or_else(bad)?;
        let pct: u8 = pct.parse().map_err(|_| bad())?;
        if !(1..=50).contains(&pct) {
            return Err(bad());
        }
        match kind {
            "near" => Ok(Shape::Near(pct)),
            "far" => Ok(Shape::Far(pct)),
            "before" => Ok(Shape::Before(pct)),
            _ => Err(bad()),
        }
    }
}

/// The generated material a shape is dealt from.
pub struct Pools {
    /// Files of valid events only (no duplicate, no broken row), in order:
    /// one per dataset file.
    pub valid: Vec<PathBuf>,
    /// One file of rows that each fail one validation rule.
    pub invalid: PathBuf,
    /// Broken rows dealt into each file.
    pub invalid_per_file: usize,
    /// Event ids the history holds (a sample), for the `before` shapes.
    pub history_ids: Vec<String>,
}

/// One shape's dataset and what a correct load of it gives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Composed {
    pub shape: String,
    pub files: u64,
    /// Data rows over all files, re-sent ones included.
    pub rows: u64,
    pub bytes: u64,
    pub seed: u64,
    pub valid_rows: u64,
    pub invalid_rows: u64,
    /// Valid rows carrying an event id loaded before them.
    pub duplicate_rows: u64,
    pub resent_files: u64,
    /// Rows that must end in `ecommerce_events`.
    pub expected_loaded: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("{path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Pool(String),
}

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ShapeError + '_ {
    move |source| ShapeError::Csv {
        path: path.display().to_string(),
        source,
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ShapeError + '_ {
    move |source| ShapeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Event ids already placed, from which duplicates draw theirs.
#[derive(Default)]
struct Placed {
    /// Everything placed so far (kept only for `far`).
    all: Vec<Box<str>>,
    previous_file: Vec<Box<str>>,
    this_file: Vec<Box<str>>,
}

impl Placed {
    /// The event id a duplicate of this shape reuses, if there is one yet.
    fn draw(&self, shape: Shape, history: &[String], rng: &mut ChaCha8Rng) -> Option<String> {
        match shape {
            Shape::Near(_) => {
                let n = self.previous_file.len() + self.this_file.len();
                let i = (n > 0).then(|| rng.random_range(0..n))?;
                let id = match self.previous_file.get(i) {
                    Some(id) => id,
                    None => self.this_file.get(i - self.previous_file.len())?,
                };
                Some(id.to_string())
            }
            Shape::Far(_) => {
                let i = (!self.all.is_empty()).then(|| rng.random_range(0..self.all.len()))?;
                Some(self.all[i].to_string())
            }
            Shape::Before(_) => {
                let i = (!history.is_empty()).then(|| rng.random_range(0..history.len()))?;
                Some(history[i].clone())
            }
            Shape::Plain | Shape::Resent => None,
        }
    }

    fn push(&mut self, shape: Shape, id: &[u8]) {
        let id: Box<str> = String::from_utf8_lossy(id).into();
        match shape {
            Shape::Far(_) => self.all.push(id),
            Shape::Near(_) => self.this_file.push(id),
            _ => {}
        }
    }

    fn next_file(&mut self) {
        self.previous_file = std::mem::take(&mut self.this_file);
    }
}

/// Writes `shape`'s dataset into `out` (emptied first): one file per valid
/// pool file, each with the pool's valid rows and `invalid_per_file` broken
/// rows at random places, the shape's duplicates, and for `resent` the
/// re-sent copies. Modification times rise with the file order, so the
/// loader meets the files in that order.
pub fn compose(shape: Shape, pools: &Pools, out: &Path, seed: u64) -> Result<Composed, ShapeError> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io_err(out))?;
    }
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut invalid = csv::Reader::from_path(&pools.invalid).map_err(csv_err(&pools.invalid))?;
    let mut invalid_rows = invalid.byte_records();
    let mut placed = Placed::default();
    let mut c = Composed {
        shape: shape.to_string(),
        files: 0,
        rows: 0,
        bytes: 0,
        seed,
        valid_rows: 0,
        invalid_rows: 0,
        duplicate_rows: 0,
        resent_files: 0,
        expected_loaded: 0,
    };
    let files = pools.valid.len();
    let start = SystemTime::now() - Duration::from_secs(files as u64 * 2 + 600);
    let mtime = |i: usize| start + Duration::from_secs(i as u64);
    for (i, pool_file) in pools.valid.iter().enumerate() {
        let path = out.join(format!("events-{i:05}.csv"));
        let mut next_invalid = || -> Result<ByteRecord, ShapeError> {
            match invalid_rows.next() {
                Some(r) => r.map_err(csv_err(&pools.invalid)),
                None => Err(ShapeError::Pool("the pool of broken rows ran out".into())),
            }
        };
        deal_file(
            shape,
            pool_file,
            &path,
            pools,
            &mut placed,
            &mut rng,
            &mut next_invalid,
            &mut c,
        )?;
        set_mtime(&path, mtime(i))?;
        placed.next_file();
        if shape == Shape::Resent && (i % 20 == 10 || (files < 20 && i == files / 2)) {
            let copy = out.join(format!("events-{i:05}-resent.csv"));
            std::fs::copy(&path, &copy).map_err(io_err(&copy))?;
            set_mtime(&copy, mtime(i + 30))?;
            c.resent_files += 1;
            c.files += 1;
            c.rows += count_rows(&copy)?;
        }
    }
    c.expected_loaded = c.valid_rows - c.duplicate_rows;
    c.bytes = std::fs::read_dir(out)
        .map_err(io_err(out))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(c)
}

/// Deals one pool file into one dataset file.
#[allow(clippy::too_many_arguments)]
fn deal_file(
    shape: Shape,
    pool_file: &Path,
    path: &Path,
    pools: &Pools,
    placed: &mut Placed,
    rng: &mut ChaCha8Rng,
    next_invalid: &mut dyn FnMut() -> Result<ByteRecord, ShapeError>,
    c: &mut Composed,
) -> Result<(), ShapeError> {
    let mut reader = csv::Reader::from_path(pool_file).map_err(csv_err(pool_file))?;
    let header = reader.byte_headers().map_err(csv_err(pool_file))?.clone();
    let id_col = header
        .iter()
        .position(|h| h == b"event_id")
        .ok_or_else(|| ShapeError::Pool(format!("{}: no event_id column", pool_file.display())))?;
    let valid: Vec<ByteRecord> = reader
        .byte_records()
        .collect::<Result<_, _>>()
        .map_err(csv_err(pool_file))?;
    let total = valid.len() + pools.invalid_per_file;
    let mut broken = vec![false; total];
    for slot in sample(rng, total, pools.invalid_per_file) {
        broken[slot] = true;
    }
    let tmp = path.with_extension("csv.tmp");
    let mut w = csv::Writer::from_path(&tmp).map_err(csv_err(&tmp))?;
    w.write_byte_record(&header).map_err(csv_err(&tmp))?;
    let share = shape.duplicate_share();
    let mut valid = valid.into_iter();
    for is_broken in broken {
        if is_broken {
            w.write_byte_record(&next_invalid()?)
                .map_err(csv_err(&tmp))?;
            c.invalid_rows += 1;
            continue;
        }
        let Some(mut row) = valid.next() else { break };
        c.valid_rows += 1;
        let reused = if share > 0.0 && rng.random_bool(share) {
            placed.draw(shape, &pools.history_ids, rng)
        } else {
            None
        };
        if let Some(id) = reused {
            row = row
                .iter()
                .enumerate()
                .map(|(k, f)| if k == id_col { id.as_bytes() } else { f })
                .collect();
            c.duplicate_rows += 1;
        }
        placed.push(shape, row.get(id_col).unwrap_or_default());
        w.write_byte_record(&row).map_err(csv_err(&tmp))?;
    }
    w.flush().map_err(io_err(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    c.files += 1;
    c.rows += count_rows(path)?;
    Ok(())
}

fn count_rows(path: &Path) -> Result<u64, ShapeError> {
    let mut r = csv::Reader::from_path(path).map_err(csv_err(path))?;
    let mut n = 0;
    let mut rec = ByteRecord::new();
    while r.read_byte_record(&mut rec).map_err(csv_err(path))? {
        n += 1;
    }
    Ok(n)
}

fn set_mtime(path: &Path, t: SystemTime) -> Result<(), ShapeError> {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    f.set_modified(t).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_file(dir: &Path, name: &str, ids: impl Iterator<Item = String>) -> PathBuf {
        let path = dir.join(name);
        let mut text = String::from("event_id,price\n");
        for id in ids {
            text.push_str(&format!("{id},1.00\n"));
        }
        std::fs::write(&path, text).expect("write pool");
        path
    }

    fn ids_of(dir: &Path) -> Vec<Vec<String>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        names
            .iter()
            .map(|p| {
                let mut r = csv::Reader::from_path(p).expect("read");
                r.records()
                    .map(|x| x.expect("row")[0].to_string())
                    .collect()
            })
            .collect()
    }

    fn pools(dir: &Path) -> Pools {
        let valid = (0..10)
            .map(|f| {
                pool_file(
                    dir,
                    &format!("v{f}.csv"),
                    (0..200).map(move |i| format!("v{f}-{i}")),
                )
            })
            .collect();
        let invalid = pool_file(dir, "bad.csv", (0..100).map(|i| format!("bad-{i}")));
        Pools {
            valid,
            invalid,
            invalid_per_file: 4,
            history_ids: (0..50).map(|i| format!("h-{i}")).collect(),
        }
    }

    #[test]
    fn shapes_parse_and_print() {
        for s in Shape::DEFAULTS {
            assert_eq!(s.to_string().parse::<Shape>(), Ok(s));
        }
        for bad in ["near", "near-0", "far-51", "before-x", "middle-5", ""] {
            assert!(bad.parse::<Shape>().is_err(), "{bad}");
        }
    }

    /// The account `compose` gives is what the files hold, and each shape's
    /// duplicates come from where the shape says.
    #[test]
    fn duplicates_sit_where_the_shape_says_and_the_account_is_exact() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = pools(tmp.path());
        for shape in Shape::DEFAULTS {
            let out = tmp.path().join(shape.to_string());
            let c = compose(shape, &p, &out, 7).expect("compose");
            let files = ids_of(&out);
            let mut seen: Vec<&str> = vec![];
            let (mut dups, mut bad, mut valid) = (0u64, 0u64, 0u64);
            for (i, file) in files.iter().enumerate() {
                if shape == Shape::Resent && i > 0 && files[..i].contains(file) {
                    continue; // a re-sent copy
                }
                for id in file {
                    if id.starts_with("bad-") {
                        bad += 1;
                        continue;
                    }
                    valid += 1;
                    let earlier = seen.contains(&id.as_str());
                    if earlier || id.starts_with("h-") {
                        dups += 1;
                        match shape {
                            Shape::Near(_) => {
                                let window: Vec<&String> =
                                    files[i.saturating_sub(1)..=i].iter().flatten().collect();
                                assert!(window.contains(&id), "{shape}: {id} from afar");
                            }
                            Shape::Before(_) => assert!(id.starts_with("h-"), "{shape}: {id}"),
                            Shape::Far(_) => assert!(earlier),
                            _ => panic!("{shape} has a duplicate {id}"),
                        }
                    }
                    seen.push(id);
                }
            }
            assert_eq!(c.invalid_rows, bad, "{shape}");
            assert_eq!(c.valid_rows, valid, "{shape}");
            assert_eq!(c.duplicate_rows, dups, "{shape}");
            assert_eq!(c.expected_loaded, valid - dups, "{shape}");
            assert_eq!(c.rows, files.iter().map(|f| f.len() as u64).sum::<u64>());
            let share = dups as f64 / valid as f64;
            match shape {
                Shape::Near(p) | Shape::Far(p) | Shape::Before(p) => {
                    let want = f64::from(p) / 100.0;
                    assert!(
                        (share - want).abs() < want * 0.6 + 0.005,
                        "{shape}: {share}"
                    );
                }
                _ => assert_eq!(dups, 0),
            }
            if shape == Shape::Resent {
                assert_eq!(c.resent_files, 1);
                assert_eq!(c.files, 11);
            }
        }
    }
}
