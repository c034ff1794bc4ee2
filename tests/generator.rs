//! End-to-end tests of `shopstream generate` through the library API: the
//! files on disk are re-read and recounted independently of the generator's
//! own bookkeeping, and compared with its report.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use shopstream::event::{EventType, Field, FIELD_COUNT};
use shopstream::generate::{generate, FileReport, GenerateArgs, InvalidKind, Report};
use shopstream::shutdown::Shutdown;

fn end_time(s: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

fn args(dir: &Path) -> GenerateArgs {
    GenerateArgs {
        output: dir.to_path_buf(),
        ..GenerateArgs::default()
    }
}

/// Visible (non-hidden) files in `dir`, sorted by name.
fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

fn all_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn contents_in_order(dir: &Path, report: &Report) -> Vec<Vec<u8>> {
    report
        .files
        .iter()
        .map(|f| fs::read(dir.join(f)).unwrap())
        .collect()
}

fn header() -> Vec<String> {
    Field::ALL.iter().map(|f| f.name().to_string()).collect()
}

// ------------------------------------------------------------ recounting ---

/// An independent re-implementation of the ingester's rules (after
/// trimming). Returns every rule a row fails.
fn failures(fields: &[&str], now: DateTime<Utc>) -> Vec<&'static str> {
    if fields.len() != FIELD_COUNT {
        return vec!["malformed_row"];
    }
    let get = |f: Field| fields[f.index()].trim();
    let mut out = Vec::new();
    let id = get(Field::EventId);
    if id.is_empty() {
        out.push("null_event_id");
    } else if uuid::Uuid::parse_str(id).is_err() {
        out.push("invalid_event_id");
    }
    let raw_type = get(Field::EventType);
    let etype = EventType::parse(raw_type);
    if raw_type.is_empty() {
        out.push("null_event_type");
    } else if etype.is_none() {
        out.push("invalid_event_type");
    }
    if get(Field::ProductId).is_empty() {
        out.push("null_product_id");
    }
    if etype.is_some_and(|t| t.needs_user()) && get(Field::UserId).is_empty() {
        out.push("missing_user");
    }
    let price = get(Field::Price);
    let mut price_value = None;
    if !price.is_empty() {
        let decimal = price
            .strip_prefix('-')
            .unwrap_or(price)
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
        match price.parse::<f64>() {
            Ok(p) if decimal => {
                price_value = Some(p);
                if p < 0.0 {
                    out.push("negative_price");
                } else if p > 10000.0 {
                    out.push("extreme_price");
                }
            }
            _ => out.push("invalid_price"),
        }
    }
    if etype.is_some_and(|t| t.needs_price()) && price_value.is_none_or(|p| p == 0.0) {
        out.push("missing_price");
    }
    let qty = get(Field::Quantity);
    if !qty.is_empty() {
        match qty.parse::<u64>() {
            Ok(0) if etype == Some(EventType::Purchase) => out.push("invalid_quantity"),
            Ok(_) => {}
            Err(_) => out.push("invalid_quantity"),
        }
    }
    let time = get(Field::EventTime);
    if time.is_empty() {
        out.push("null_event_time");
    } else {
        let parsed = DateTime::parse_from_rfc3339(time)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            });
        match parsed {
            None => out.push("invalid_event_time"),
            Some(t) if t > now + chrono::Duration::seconds(60) => out.push("future_event_time"),
            Some(_) => {}
        }
    }
    out
}

/// What a correct ingester would do with the files, counted from disk.
#[derive(Debug, Default, PartialEq)]
struct Recount {
    rows: u64,
    loaded: u64,
    duplicates: u64,
    rejected: BTreeMap<String, u64>,
    by_type: BTreeMap<String, u64>,
    /// Loaded rows whose time is before `late_before` (if given).
    late: u64,
}

fn recount(dir: &Path, files: &[String], late_before: Option<DateTime<Utc>>) -> Recount {
    let now = Utc::now();
    let mut r = Recount::default();
    // event_id → (file index, raw line) of its first valid occurrence.
    let mut first: HashMap<String, (usize, String)> = HashMap::new();
    let mut all_ids: HashMap<String, String> = HashMap::new();
    for (fi, name) in files.iter().enumerate() {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(&path)
            .unwrap();
        let mut records = rdr.records();
        let head = records.next().unwrap().unwrap();
        assert_eq!(head.iter().collect::<Vec<_>>(), header(), "{name}: header");
        for (i, rec) in records.enumerate() {
            let rec = rec.unwrap();
            let line = lines[i + 1];
            let fields: Vec<&str> = rec.iter().collect();
            r.rows += 1;
            let fails = failures(&fields, now);
            assert!(fails.len() <= 1, "{name} row {i} fails {fails:?}: {line}");
            let id = fields[Field::EventId.index()].trim().to_string();
            if let Some(code) = fails.first() {
                *r.rejected.entry(code.to_string()).or_default() += 1;
                if !id.is_empty() {
                    assert!(
                        all_ids.insert(id.clone(), line.to_string()).is_none(),
                        "invalid row reuses an event_id: {line}"
                    );
                }
                continue;
            }
            match first.get(&id) {
                Some((earlier, original)) => {
                    assert!(*earlier < fi, "duplicate within the same file: {line}");
                    assert_eq!(original, line, "duplicate is not an exact copy");
                    r.duplicates += 1;
                }
                None => {
                    assert!(
                        all_ids.insert(id.clone(), line.to_string()).is_none(),
                        "fresh row reuses an event_id: {line}"
                    );
                    first.insert(id, (fi, line.to_string()));
                    r.loaded += 1;
                    let t = fields[Field::EventType.index()].trim().to_ascii_lowercase();
                    *r.by_type.entry(t).or_default() += 1;
                    if let Some(cutoff) = late_before {
                        let time = DateTime::parse_from_rfc3339(fields[Field::EventTime.index()])
                            .unwrap()
                            .with_timezone(&Utc);
                        if time < cutoff {
                            r.late += 1;
                        }
                    }
                }
            }
        }
    }
    r
}

fn assert_report_matches(dir: &Path, report: &Report, late_before: Option<DateTime<Utc>>) {
    let names: Vec<String> = visible_files(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names, report.files,
        "visible files = reported files, in order"
    );
    let r = recount(dir, &report.files, late_before);
    assert_eq!(r.rows, report.rows, "rows");
    assert_eq!(r.loaded, report.loaded, "loaded");
    assert_eq!(r.duplicates, report.duplicates, "duplicates");
    assert_eq!(r.rejected, report.rejected, "rejected");
    assert_eq!(r.by_type, report.by_type, "by_type");
    if late_before.is_some() {
        assert_eq!(r.late, report.late, "late");
    }
    let rejected: u64 = report.rejected.values().sum();
    assert_eq!(report.rows, report.loaded + report.duplicates + rejected);
    // Per file: the same names, and counts that add up to the totals.
    let per_file_names: Vec<&String> = report.per_file.iter().map(|f| &f.file).collect();
    assert_eq!(per_file_names, report.files.iter().collect::<Vec<_>>());
    for f in &report.per_file {
        let rejected: u64 = f.rejected.values().sum();
        assert_eq!(f.rows, f.loaded + f.duplicates + rejected, "{}", f.file);
    }
    let sum = |g: fn(&FileReport) -> u64| report.per_file.iter().map(g).sum::<u64>();
    assert_eq!(sum(|f| f.rows), report.rows);
    assert_eq!(sum(|f| f.loaded), report.loaded);
    assert_eq!(sum(|f| f.duplicates), report.duplicates);
    assert_eq!(sum(|f| f.late), report.late);
}

// ----------------------------------------------------------------- tests ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_without_a_seed_never_repeat_event_ids() {
    // Two runs of the demo or of a continuous generator must not produce the
    // same event_ids, or the loader would rightly drop the second run as
    // duplicates.
    let end = end_time("2026-11-21T10:00:00.5Z");
    let mut ids = std::collections::HashSet::new();
    let mut seeds = vec![];
    for _ in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let a = GenerateArgs {
            seed: None,
            files: Some(2),
            events_per_file: 200,
            end_time: end,
            ..args(tmp.path())
        };
        let report = generate(&a, &Shutdown::new()).await.unwrap();
        seeds.push(report.seed);
        for c in contents_in_order(tmp.path(), &report) {
            for line in String::from_utf8_lossy(&c).lines().skip(1) {
                let id = line.split(',').next().unwrap_or("");
                if !id.is_empty() {
                    ids.insert((seeds.len(), id.to_string()));
                }
            }
        }
    }
    assert_ne!(seeds[0], seeds[1], "each run draws its own seed");
    let first: std::collections::HashSet<_> = ids
        .iter()
        .filter(|(r, _)| *r == 1)
        .map(|(_, i)| i)
        .collect();
    assert!(
        ids.iter()
            .filter(|(r, _)| *r == 2)
            .all(|(_, i)| !first.contains(i)),
        "no event_id of run 2 appears in run 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_and_end_time_give_identical_bytes() {
    let end = end_time("2026-11-21T10:00:00.5Z");
    let run = |seed: u64| async move {
        let tmp = tempfile::tempdir().unwrap();
        let a = GenerateArgs {
            seed: Some(seed),
            files: Some(5),
            events_per_file: 400,
            end_time: end,
            // Future rows relative to a fixed end time are not the point here.
            invalid_share: 0.05,
            duplicate_share: 0.05,
            late_share: 0.05,
            ..args(tmp.path())
        };
        let report = generate(&a, &Shutdown::new()).await.unwrap();
        let contents = contents_in_order(tmp.path(), &report);
        (report, contents, tmp)
    };
    let (r1, c1, _t1) = run(7).await;
    let (r2, c2, _t2) = run(7).await;
    let (r3, c3, _t3) = run(8).await;
    assert_eq!(c1.len(), 5);
    assert_eq!(c1, c2, "same seed: same bytes, file by file");
    let mut s1 = c1.clone();
    let mut s3 = c3.clone();
    s1.sort();
    s3.sort();
    assert_ne!(s1, s3, "different seed: different contents");
    // The reports agree on everything except the run id and file names.
    assert_ne!(r1.run_id, r2.run_id);
    assert_ne!(r1.files, r2.files);
    let strip = |r: &Report| Report {
        run_id: String::new(),
        files: Vec::new(),
        per_file: r
            .per_file
            .iter()
            .map(|f| FileReport {
                file: String::new(),
                ..f.clone()
            })
            .collect(),
        ..r.clone()
    };
    assert_eq!(strip(&r1), strip(&r2));
    assert_ne!(strip(&r1), strip(&r3));
    // The catalogue does not depend on the seed: same product → same name.
    let products = |c: &[Vec<u8>]| {
        let mut m = BTreeMap::new();
        for f in c {
            let mut rdr = csv::Reader::from_reader(f.as_slice());
            for rec in rdr.records() {
                let rec = rec.unwrap();
                m.insert(
                    rec[Field::ProductId.index()].to_string(),
                    (
                        rec[Field::ProductName.index()].to_string(),
                        rec[Field::Category.index()].to_string(),
                    ),
                );
            }
        }
        m
    };
    let (p1, p3) = (products(&c1), products(&c3));
    let common: Vec<_> = p1.keys().filter(|k| p3.contains_key(*k)).collect();
    assert!(common.len() > 50);
    for k in common {
        assert_eq!(p1[k], p3[k], "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_reader_never_sees_a_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let per_file = 300u64;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (dir, done) = (dir.clone(), done.clone());
        std::thread::spawn(move || {
            let mut checked = 0u64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                for path in visible_files(&dir) {
                    let mut rdr = csv::ReaderBuilder::new()
                        .has_headers(false)
                        .from_path(&path)
                        .unwrap();
                    let mut rows = 0u64;
                    let mut records = rdr.records();
                    let head = records.next().expect("header present").unwrap();
                    assert_eq!(head.iter().collect::<Vec<_>>(), header());
                    for rec in records {
                        let rec = rec.expect("complete row");
                        assert_eq!(rec.len(), FIELD_COUNT);
                        rows += 1;
                    }
                    assert_eq!(rows, per_file, "{} is partial", path.display());
                    let text = fs::read(&path).unwrap();
                    assert_eq!(text.last(), Some(&b'\n'), "ends with a complete line");
                    checked += 1;
                }
                if finished {
                    return checked;
                }
            }
        })
    };
    let a = GenerateArgs {
        files: Some(150),
        events_per_file: per_file,
        ..args(&dir)
    };
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    done.store(true, Ordering::SeqCst);
    let checked = reader.join().expect("reader saw only complete files");
    assert!(checked >= 150, "reader checked {checked} files");
    assert_eq!(report.files.len(), 150);
    assert!(all_names(&dir).iter().all(|n| !n.starts_with('.')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_matches_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let end = Utc::now() - chrono::Duration::seconds(1);
    let span = 60;
    let a = GenerateArgs {
        files: Some(20),
        events_per_file: 1000,
        span_secs: span,
        end_time: Some(end),
        invalid_share: 0.07,
        duplicate_share: 0.03,
        late_share: 0.04,
        seed: Some(99),
        ..args(tmp.path())
    };
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    assert_eq!(report.rows, 20_000);
    assert_eq!(report.seed, 99);
    // Every kind shows up, with its own code, in roughly equal numbers.
    let expected_codes = [
        (InvalidKind::NegativePrice, "negative_price"),
        (InvalidKind::ExtremePrice, "extreme_price"),
        (InvalidKind::UnknownEventType, "invalid_event_type"),
        (InvalidKind::BadTimestamp, "invalid_event_time"),
        (InvalidKind::FutureTimestamp, "future_event_time"),
        (InvalidKind::MissingUser, "missing_user"),
        (InvalidKind::MissingEventId, "null_event_id"),
    ];
    assert_eq!(report.rejected.len(), 7, "{:?}", report.rejected);
    for (kind, code) in expected_codes {
        assert_eq!(kind.expected_rule().as_str(), code);
        let n = report.rejected[code];
        assert!(n > 120 && n < 300, "{kind}: {n}");
    }
    assert!(
        report.duplicates > 400 && report.duplicates < 800,
        "{}",
        report.duplicates
    );
    assert!(report.late > 500 && report.late < 1100, "{}", report.late);
    // Late rows are the only loaded rows more than 5 minutes before the span.
    let cutoff = end - chrono::Duration::seconds(span as i64) - chrono::Duration::minutes(5);
    assert_report_matches(tmp.path(), &report, Some(cutoff));

    // Realism: views dominate, purchases are rare.
    let share = |t: &str| report.by_type[t] as f64 / report.loaded as f64;
    assert!(share("view") > 0.55 && share("purchase") < 0.06);

    // Summary and JSON.
    let summary = report.summary();
    assert!(summary.starts_with(&format!(
        "wrote 20 files, 20000 rows: {} valid, {} duplicates",
        report.loaded, report.duplicates
    )));
    let json = tmp
        .path()
        .join("..")
        .join(format!("{}.json", report.run_id));
    report.write_json(&json).unwrap();
    let back: Report = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    fs::remove_file(&json).unwrap();
    assert_eq!(back, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_shares_and_zero_shares() {
    let tmp = tempfile::tempdir().unwrap();
    let report = generate(&args(tmp.path()), &Shutdown::new()).await.unwrap();
    assert_eq!(report.files.len(), 10);
    assert_eq!(report.rows, 10_000);
    assert!(report.duplicates > 0 && !report.rejected.is_empty() && report.late > 0);
    assert_report_matches(tmp.path(), &report, None);
    // File names: events_<yyyymmddTHHMMSSZ>_<8 hex>_<6 digits>.csv.
    for (i, name) in report.files.iter().enumerate() {
        let parts: Vec<&str> = name.trim_end_matches(".csv").split('_').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(parts[0], "events");
        assert!(NaiveDateTime::parse_from_str(parts[1], "%Y%m%dT%H%M%SZ").is_ok());
        assert_eq!(parts[2], report.run_id);
        assert_eq!(parts[3], format!("{:06}", i + 1));
    }

    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        files: Some(3),
        events_per_file: 2000,
        invalid_share: 0.0,
        duplicate_share: 0.0,
        late_share: 0.0,
        ..args(tmp.path())
    };
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    assert_eq!(report.rows, 6000);
    assert_eq!(report.loaded, 6000);
    assert_eq!((report.duplicates, report.late), (0, 0));
    assert!(report.rejected.is_empty());
    assert_report_matches(tmp.path(), &report, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_chosen_kinds_are_injected() {
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        files: Some(2),
        events_per_file: 1000,
        invalid_share: 0.2,
        invalid_kinds: Some(vec![InvalidKind::MissingUser, InvalidKind::NegativePrice]),
        ..args(tmp.path())
    };
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    let codes: Vec<&str> = report.rejected.keys().map(String::as_str).collect();
    assert_eq!(codes, vec!["missing_user", "negative_price"]);
    assert_report_matches(tmp.path(), &report, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    for (a, needle) in [
        (
            GenerateArgs {
                invalid_share: 1.2,
                ..args(&dir)
            },
            "--invalid-share",
        ),
        (
            GenerateArgs {
                invalid_kinds: Some(vec![]),
                ..args(&dir)
            },
            "--invalid-kinds",
        ),
        (
            GenerateArgs {
                end_time: Some(Utc::now() + chrono::Duration::hours(1)),
                ..args(&dir)
            },
            "--end-time",
        ),
    ] {
        let err = generate(&a, &Shutdown::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
    assert!(!dir.exists(), "nothing created for invalid options");

    // An output path that cannot be a folder is named in the error.
    let blocker = tmp.path().join("blocker");
    fs::write(&blocker, "x").unwrap();
    let err = generate(&args(&blocker), &Shutdown::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocker"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_stops_cleanly_on_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        rate: Some(2000.0),
        events_per_file: 150, // one file every 75 ms
        invalid_share: 0.05,
        duplicate_share: 0.05,
        ..args(tmp.path())
    };
    let shutdown = Shutdown::new();
    // Stopped once 4 files are there (not after a fixed time).
    let trigger = {
        let s = shutdown.clone();
        let dir = tmp.path().to_path_buf();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            // (At the deadline it stops anyway; the count below fails.)
            while all_names(&dir)
                .iter()
                .filter(|n| !n.starts_with('.'))
                .count()
                < 4
                && start.elapsed() < Duration::from_secs(60)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            s.trigger();
            std::time::Instant::now()
        })
    };
    let report = generate(&a, &shutdown).await.unwrap();
    let triggered = trigger.await.unwrap();
    assert!(
        triggered.elapsed() < Duration::from_secs(5),
        "stopped promptly"
    );
    assert!(
        report.files.len() >= 4,
        "files written before the stop: {:?}",
        report.files
    );
    assert!(all_names(tmp.path()).iter().all(|n| !n.starts_with('.')));
    // Full files, except possibly a last, shorter one cut at the stop.
    let rows: Vec<usize> = report
        .files
        .iter()
        .map(|f| {
            csv::Reader::from_path(tmp.path().join(f))
                .unwrap()
                .records()
                .count()
        })
        .collect();
    let (last, full) = rows.split_last().unwrap();
    assert!(full.iter().all(|&n| n == 150), "{rows:?}");
    assert!(*last >= 1 && *last <= 150, "{rows:?}");
    assert_report_matches(tmp.path(), &report, None);
    // Event times are the wall clock: none is in the future, all recent
    // (late rows up to an hour back).
    let now = Utc::now();
    for f in &report.files {
        let mut rdr = csv::Reader::from_path(tmp.path().join(f)).unwrap();
        for rec in rdr.records() {
            let rec = rec.unwrap();
            if let Ok(t) = DateTime::parse_from_rfc3339(&rec[Field::EventTime.index()]) {
                let t = t.with_timezone(&Utc);
                if t <= now {
                    assert!(now - t < chrono::Duration::minutes(61));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_mode_stops_by_itself_and_shutdown_before_start_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        rate: Some(1000.0),
        events_per_file: 100,
        duration_secs: Some(0.35),
        ..args(tmp.path())
    };
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    // 350 events due: 3 full files and a last one of 50 (49 when the
    // float seconds round down). The counts follow from the schedule (each
    // file's rows are those due by its deadline), not from how fast this
    // machine wrote them, so they are exact even under load.
    assert_eq!(report.files.len(), 4, "{report:?}");
    assert!(report.rows == 349 || report.rows == 350, "{}", report.rows);
    assert_report_matches(tmp.path(), &report, None);

    let tmp = tempfile::tempdir().unwrap();
    let stopped = Shutdown::new();
    stopped.trigger();
    for a in [
        GenerateArgs {
            rate: Some(100.0),
            ..args(tmp.path())
        },
        args(tmp.path()),
    ] {
        let report = generate(&a, &stopped).await.unwrap();
        assert_eq!(report.rows, 0);
        assert!(report.files.is_empty());
    }
    assert!(all_names(tmp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_mode_can_be_paced() {
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        seed: Some(5),
        files: Some(3),
        events_per_file: 100,
        rate: Some(1000.0),
        end_time: end_time("2026-11-21T10:00:00Z"),
        ..args(tmp.path())
    };
    let started = std::time::Instant::now();
    let report = generate(&a, &Shutdown::new()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(report.rows, 300);
    // Paced or not, a bounded run's bytes depend only on seed and options.
    let unpaced_dir = tempfile::tempdir().unwrap();
    let unpaced = GenerateArgs {
        rate: None,
        output: unpaced_dir.path().to_path_buf(),
        ..a.clone()
    };
    let r2 = generate(&unpaced, &Shutdown::new()).await.unwrap();
    assert_eq!(
        contents_in_order(tmp.path(), &report),
        contents_in_order(unpaced_dir.path(), &r2)
    );
}
