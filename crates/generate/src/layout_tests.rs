//! End-to-end tests of `--layout`: files of every layout are generated,
//! read back and recounted with the real validator (`shopstream_core::validate`) and
//! the loader's id rules, independently of the generator's bookkeeping.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::*;
use shopstream_core::event::{Field, FIELD_COUNT};
use shopstream_core::schema::{derived_event_id, Target};
use shopstream_core::validate::{validate, RawFields, Rules};

fn args(dir: &Path, layout: LayoutId) -> GenerateArgs {
    GenerateArgs {
        layout,
        output: dir.to_path_buf(),
        seed: Some(2026),
        files: Some(4),
        events_per_file: 500,
        end_time: Some(Utc::now() - chrono::Duration::seconds(1)),
        invalid_share: 0.08,
        duplicate_share: 0.05,
        late_share: 0.05,
        ..GenerateArgs::default()
    }
}

async fn run(a: &GenerateArgs) -> Report {
    generate(a, &Shutdown::new()).await.unwrap()
}

/// The files of a run, parsed: header and rows of cells.
fn read(dir: &Path, report: &Report) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    report
        .files
        .iter()
        .map(|name| {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_path(dir.join(name))
                .unwrap();
            let mut rows = rdr
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect::<Vec<_>>());
            let header = rows.next().unwrap();
            (header, rows.collect())
        })
        .collect()
}

fn names(layout: LayoutId) -> Vec<String> {
    layout
        .spec()
        .columns
        .iter()
        .map(|c| c.name.to_string())
        .collect()
}

/// The cell of canonical field `f` in `row`, if the layout has it.
fn cell(layout: LayoutId, row: &[String], f: Field) -> Option<&str> {
    let columns = layout.spec().columns;
    columns
        .iter()
        .position(|c| match c.target {
            Target::Field(t) => t == f,
            Target::ProductIdAndName => matches!(f, Field::ProductId | Field::ProductName),
            Target::Extra | Target::Drop => false,
        })
        .map(|i| row[i].as_str())
}

/// What the loader makes of the files, computed from the files alone: the
/// real validator on each row mapped through the registry, ids from the
/// event_id column or (seed002) derived from the values and occurrence,
/// first occurrence loads.
fn recount(layout: LayoutId, files: &[(String, Vec<Vec<String>>)], late_before: i64) -> Report {
    let now = Utc::now().timestamp_micros();
    let mut loaded_ids = HashSet::new();
    let mut total = Report {
        layout: layout.as_str().to_string(),
        ..Report::default()
    };
    for (name, rows) in files {
        let mut tally = FileTally::default();
        let mut seen: HashMap<&[String], u32> = HashMap::new();
        for row in rows {
            assert_eq!(row.len(), layout.spec().columns.len(), "{name}: {row:?}");
            let occurrence = {
                let n = seen.entry(row.as_slice()).or_insert(0);
                *n += 1;
                *n
            };
            let derived;
            let mut raw: RawFields = [None; FIELD_COUNT];
            for (i, c) in layout.spec().columns.iter().enumerate() {
                match c.target {
                    Target::Field(f) => raw[f.index()] = Some(row[i].as_str()),
                    Target::ProductIdAndName => {
                        raw[Field::ProductId.index()] = Some(row[i].as_str());
                        raw[Field::ProductName.index()] = Some(row[i].as_str());
                    }
                    Target::Extra | Target::Drop => {}
                }
            }
            if raw[Field::EventId.index()].is_none() {
                derived = derived_event_id(layout, row.iter().map(String::as_str), occurrence)
                    .to_string();
                raw[Field::EventId.index()] = Some(derived.as_str());
            }
            no_price_rule(layout, &mut raw);
            match validate(&raw, now, &Rules::default()) {
                Ok(v) => {
                    if loaded_ids.insert(v.event_id) {
                        tally.loaded(v.event_type, v.event_time < late_before);
                    } else {
                        tally.duplicate();
                    }
                }
                Err(fails) => {
                    assert_eq!(fails.len(), 1, "{name}: {row:?} fails {fails:?}");
                    tally.rejected(fails[0].code);
                }
            }
        }
        total.add_file(name.clone(), &tally);
    }
    total
}

/// Layouts without a price column load purchases with a NULL price (the
/// loader's rule for seed002): stand in a price so that missing_price does
/// not apply.
fn no_price_rule(layout: LayoutId, raw: &mut RawFields) {
    if layout.spec().column_for(Field::Price).is_none() {
        raw[Field::Price.index()] = Some("1.00");
    }
}

async fn check_layout(
    layout: LayoutId,
    a: &GenerateArgs,
) -> (Report, Vec<(String, Vec<Vec<String>>)>) {
    let report = run(a).await;
    assert_eq!(report.layout, layout.as_str());
    let files = read(&a.output, &report);
    for (header, _) in &files {
        assert_eq!(header, &names(layout), "{layout}: header = registry names");
    }
    let files: Vec<(String, Vec<Vec<String>>)> = report
        .files
        .iter()
        .cloned()
        .zip(files.into_iter().map(|(_, rows)| rows))
        .collect();
    // Late rows are the only loaded rows more than 5 minutes before the span.
    let end = a.end_time.unwrap().timestamp_micros();
    let cutoff = end - a.span_secs as i64 * 1_000_000 - 5 * 60 * 1_000_000;
    let mut expected = recount(layout, &files, cutoff);
    expected.run_id.clone_from(&report.run_id);
    expected.seed = report.seed;
    assert_eq!(expected, report, "{layout}: report = recount of the files");
    (report, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layout_writes_registry_headers_and_an_exact_report() {
    for layout in LayoutId::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let (report, _) = check_layout(layout, &args(tmp.path(), layout)).await;
        assert_eq!(report.rows, 2000);
        assert!(
            report.duplicates > 0 && report.late > 0,
            "{layout}: {report:?}"
        );
        let kinds = layout::invalid_kinds(layout, None).unwrap();
        assert_eq!(
            report.rejected.len(),
            kinds.len(),
            "{layout}: {:?}",
            report.rejected
        );
        let types: Vec<&str> = report.by_type.keys().map(String::as_str).collect();
        match layout {
            LayoutId::V1 | LayoutId::V2 | LayoutId::V3 | LayoutId::Seed003 => {
                assert_eq!(types.len(), 6, "{layout}")
            }
            _ => assert_eq!(types, ["purchase", "view"], "{layout}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_seed_gives_identical_bytes_in_every_layout() {
    for layout in LayoutId::ALL {
        let contents = |dir: &Path, r: &Report| -> Vec<Vec<u8>> {
            r.files
                .iter()
                .map(|f| fs::read(dir.join(f)).unwrap())
                .collect()
        };
        let (t1, t2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = args(t1.path(), layout);
        a.end_time = Some(at("2026-11-21T10:00:00.5Z"));
        a.files = Some(3);
        a.events_per_file = 300;
        let r1 = run(&a).await;
        a.output = t2.path().to_path_buf();
        let r2 = run(&a).await;
        assert_eq!(
            contents(t1.path(), &r1),
            contents(t2.path(), &r2),
            "{layout}"
        );
        assert_eq!(r1.by_type, r2.by_type);
        assert_eq!(r1.rejected, r2.rejected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_a_layout_cannot_express_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for (layout, kind) in [
        (LayoutId::Seed002, InvalidKind::MissingEventId),
        (LayoutId::Seed002, InvalidKind::NegativePrice),
        (LayoutId::Seed002, InvalidKind::ExtremePrice),
    ] {
        let a = GenerateArgs {
            invalid_kinds: Some(vec![InvalidKind::BadTimestamp, kind]),
            ..args(&out, layout)
        };
        let err = generate(&a, &Shutdown::new()).await.unwrap_err();
        assert!(
            matches!(err, GenerateError::KindNotInLayout { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("seed002") && msg.contains(kind.name()) && msg.contains("--invalid-kinds"),
            "{msg}"
        );
    }
    assert!(!out.exists(), "nothing written");
    // The same kinds are fine where the columns exist.
    let a = GenerateArgs {
        files: Some(1),
        invalid_share: 0.3,
        invalid_kinds: Some(vec![InvalidKind::MissingEventId, InvalidKind::ExtremePrice]),
        ..args(&out, LayoutId::Seed000)
    };
    let r = run(&a).await;
    let codes: Vec<&str> = r.rejected.keys().map(String::as_str).collect();
    assert_eq!(codes, ["extreme_price", "null_event_id"]);
}

fn at(s: &str) -> DateTime<Utc> {
    parse_end_time(s).unwrap()
}

fn is_second_time(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() && s.len() == 19
}

/// Valid rows of all files (rows failing no rule, duplicates included).
fn valid_rows(layout: LayoutId, files: &[(String, Vec<Vec<String>>)]) -> Vec<Vec<String>> {
    let now = Utc::now().timestamp_micros();
    let mut out = vec![];
    for (_, rows) in files {
        for row in rows {
            let mut raw: RawFields = [None; FIELD_COUNT];
            for f in Field::ALL {
                raw[f.index()] = cell(layout, row, f);
            }
            if raw[Field::EventId.index()].is_none() {
                raw[Field::EventId.index()] = Some("00000000-0000-0000-0000-000000000000");
            }
            no_price_rule(layout, &mut raw);
            if validate(&raw, now, &Rules::default()).is_ok() {
                out.push(row.clone());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed000_ids_users_products_prices_and_times() {
    use md5::{Digest, Md5};
    let layout = LayoutId::Seed000;
    let tmp = tempfile::tempdir().unwrap();
    let (_, files) = check_layout(layout, &args(tmp.path(), layout)).await;
    let rows = valid_rows(layout, &files);
    assert!(rows.len() > 1500);
    let get = |row: &Vec<String>, name: &str| -> String {
        let i = names(layout).iter().position(|n| n == name).unwrap();
        row[i].clone()
    };
    let mut categories = HashSet::new();
    for row in &rows {
        let (user, product) = (get(row, "user_id"), get(row, "product_id"));
        assert!(user.len() == 11 && user.starts_with("USER_"), "{user}");
        assert!(user[5..].bytes().all(|b| b.is_ascii_digit()));
        assert!(
            product.len() == 11 && product.starts_with("PROD_"),
            "{product}"
        );
        let time = get(row, "event_timestamp");
        assert!(is_second_time(&time), "{time}");
        let price = get(row, "price");
        match get(row, "event_type").as_str() {
            "view" => assert_eq!(price, "", "views have no price"),
            "purchase" => {
                let (_, cents) = price.split_once('.').unwrap();
                assert_eq!(cents.len(), 2, "{price}");
            }
            t => panic!("type {t}"),
        }
        let digest: [u8; 16] = Md5::digest(format!("{user}_{product}_{time}")).into();
        assert_eq!(
            get(row, "event_id"),
            uuid::Uuid::from_bytes(digest).hyphenated().to_string()
        );
        categories.insert(get(row, "product_category"));
    }
    for c in ["Electronics", "Home & Garden", "Food & Grocery"] {
        assert!(categories.contains(c), "{categories:?}");
    }
    assert!(categories.iter().all(|c| !c.contains('_')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed000_same_second_clashes_are_duplicates_and_stay_exact() {
    // Many events a second: a user's two events on one product in one
    // second get the same MD5 id, as in the seed system. Same type: the
    // rows are identical and the second is a duplicate. Different types are
    // redrawn, so every id names one kind of row.
    let layout = LayoutId::Seed000;
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        files: Some(3),
        events_per_file: 3000,
        span_secs: 2,
        end_time: Some(at("2026-11-21T10:00:00Z")),
        invalid_share: 0.0,
        duplicate_share: 0.0,
        ..args(tmp.path(), layout)
    };
    let (report, files) = check_layout(layout, &a).await;
    assert!(report.duplicates > 0, "no clash: {report:?}");
    let mut by_id: HashMap<&str, &Vec<String>> = HashMap::new();
    let mut repeats = 0;
    for (_, rows) in &files {
        for row in rows {
            if let Some(first) = by_id.insert(&row[0], row) {
                assert_eq!(first, row, "rows sharing an id are identical");
                repeats += 1;
            }
        }
    }
    assert_eq!(repeats, report.duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed001_t_times_and_whole_prices_on_every_event() {
    let layout = LayoutId::Seed001;
    let tmp = tempfile::tempdir().unwrap();
    let (_, files) = check_layout(layout, &args(tmp.path(), layout)).await;
    let rows = valid_rows(layout, &files);
    let mut view_prices = HashSet::new();
    for row in &rows {
        let time = cell(layout, row, Field::EventTime).unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%dT%H:%M:%S").is_ok()
                && time.len() == 19,
            "{time}"
        );
        for f in [Field::UserId, Field::ProductId] {
            let v = cell(layout, row, f).unwrap();
            assert!(v.parse::<u32>().is_ok(), "{v}");
        }
        let price: u32 = cell(layout, row, Field::Price).unwrap().parse().unwrap();
        assert!(price <= 99);
        match cell(layout, row, Field::EventType).unwrap() {
            "view" => {
                view_prices.insert(price);
            }
            _ => assert!(price >= 1),
        }
        assert!(uuid::Uuid::parse_str(cell(layout, row, Field::EventId).unwrap()).is_ok());
    }
    assert!(view_prices.len() > 50, "views carry prices 0–99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed002_four_columns_tiny_pools_and_identical_rows() {
    let layout = LayoutId::Seed002;
    let tmp = tempfile::tempdir().unwrap();
    // Many events a second over a tiny pool of values: identical rows in a
    // file (all load) and rows repeating an earlier file's (duplicates
    // unless their occurrence in their file is new).
    let a = GenerateArgs {
        files: Some(3),
        events_per_file: 400,
        span_secs: 1,
        ..args(tmp.path(), layout)
    };
    let (report, files) = check_layout(layout, &a).await;
    let rows = valid_rows(layout, &files);
    let mut users = HashSet::new();
    let mut products = HashSet::new();
    for row in &rows {
        assert_eq!(row.len(), 4);
        users.insert(row[0].parse::<u32>().unwrap());
        assert!(["view", "purchase"].contains(&row[1].as_str()));
        products.insert(row[2].clone());
        assert!(is_second_time(&row[3]), "{}", row[3]);
    }
    assert!(users.iter().all(|u| (1001..=1010).contains(u)));
    assert_eq!(users.len(), 10);
    let mut products: Vec<String> = products.into_iter().collect();
    products.sort();
    assert_eq!(products, ["headphones", "keyboard", "laptop", "mouse"]);
    let in_file_repeats: usize = files
        .iter()
        .map(|(_, rows)| rows.len() - rows.iter().collect::<HashSet<_>>().len())
        .sum();
    assert!(in_file_repeats > 100, "{in_file_repeats}");
    assert!(report.loaded > 0 && report.duplicates > 0);
    // Without an id column, identical rows inside one file all load.
    let first = &report.per_file[0];
    let (_, first_rows) = &files[0];
    let valid_first = valid_rows(layout, &files[..1]).len() as u64;
    assert_eq!(first.loaded, valid_first, "{first:?}");
    assert!(first_rows.len() - first_rows.iter().collect::<HashSet<_>>().len() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed003_float_user_ids_only_in_files_with_an_anonymous_event() {
    let layout = LayoutId::Seed003;
    let tmp = tempfile::tempdir().unwrap();
    let a = GenerateArgs {
        files: Some(60),
        events_per_file: 6,
        invalid_share: 0.0,
        ..args(tmp.path(), layout)
    };
    let (_, files) = check_layout(layout, &a).await;
    let (mut with, mut without) = (0, 0);
    for (name, rows) in &files {
        let users: Vec<&str> = rows
            .iter()
            .map(|r| cell(layout, r, Field::UserId).unwrap())
            .collect();
        if users.contains(&"") {
            with += 1;
            for u in users.iter().filter(|u| !u.is_empty()) {
                let (int, frac) = u.split_once('.').unwrap_or_else(|| panic!("{name}: {u}"));
                assert!(int.parse::<u32>().is_ok() && frac == "0", "{name}: {u}");
            }
        } else {
            without += 1;
            assert!(
                users.iter().all(|u| u.parse::<u32>().is_ok()),
                "{name}: {users:?}"
            );
        }
        for r in rows {
            let t = cell(layout, r, Field::EventType).unwrap();
            let price = cell(layout, r, Field::Price).unwrap();
            if ["purchase", "add_to_cart"].contains(&t) {
                assert!(price.parse::<f64>().unwrap() > 0.0);
                assert!(!price.ends_with("00") && price.contains('.'), "{price}");
            } else {
                assert_eq!(price, "0.0", "{t}");
            }
            let time = cell(layout, r, Field::EventTime).unwrap();
            assert!(time.ends_with("+00:00") && time.len() == 32, "{time}");
            assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
            assert_eq!(r[names(layout).len() - 1], "web");
            let session = cell(layout, r, Field::SessionId).unwrap();
            let user = cell(layout, r, Field::UserId).unwrap();
            if user.is_empty() {
                assert!(session.starts_with("guest-"), "{session}");
                assert_eq!(cell(layout, r, Field::UserSegment), Some("anonymous"));
            } else {
                let int = user.trim_end_matches(".0");
                assert!(session.starts_with(&format!("{int}-")), "{session}");
            }
            let quantity: u32 = cell(layout, r, Field::Quantity).unwrap().parse().unwrap();
            assert_eq!(
                quantity >= 1,
                ["purchase", "add_to_cart"].contains(&t),
                "{t}"
            );
        }
    }
    assert!(with > 0 && without > 0, "{with} with, {without} without");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed004_session_per_event_and_prices_on_views() {
    let layout = LayoutId::Seed004;
    let tmp = tempfile::tempdir().unwrap();
    let (_, files) = check_layout(layout, &args(tmp.path(), layout)).await;
    let rows = valid_rows(layout, &files);
    let mut sessions = HashSet::new();
    let mut copies = 0;
    let mut view_prices = 0;
    let mut ids: HashMap<String, String> = HashMap::new();
    for row in &rows {
        let id = cell(layout, row, Field::EventId).unwrap().to_string();
        let session = cell(layout, row, Field::SessionId).unwrap().to_string();
        assert!(uuid::Uuid::parse_str(&session).is_ok());
        if let Some(s) = ids.insert(id, session.clone()) {
            assert_eq!(s, session, "a duplicate is an exact copy");
            copies += 1;
        } else {
            assert!(sessions.insert(session), "one session per event");
        }
        let price: f64 = cell(layout, row, Field::Price).unwrap().parse().unwrap();
        assert!((10.0..=500.0).contains(&price), "{price}");
        if cell(layout, row, Field::EventType) == Some("view") {
            view_prices += 1;
        }
        assert!(is_second_time(cell(layout, row, Field::EventTime).unwrap()));
        assert!(cell(layout, row, Field::UserId)
            .unwrap()
            .parse::<u32>()
            .is_ok());
    }
    assert!(copies > 0 && view_prices > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_are_the_version_columns_with_shopstream_values() {
    for layout in [LayoutId::V1, LayoutId::V2] {
        let tmp = tempfile::tempdir().unwrap();
        let (_, files) = check_layout(layout, &args(tmp.path(), layout)).await;
        for row in valid_rows(layout, &files) {
            let time = cell(layout, &row, Field::EventTime).unwrap();
            assert!(time.ends_with('Z') && time.len() == 24, "{time}");
            let user = cell(layout, &row, Field::UserId).unwrap();
            assert!(user.is_empty() || user.starts_with('U'), "{user}");
            assert!(cell(layout, &row, Field::ProductId)
                .unwrap()
                .starts_with('P'));
        }
    }
}
