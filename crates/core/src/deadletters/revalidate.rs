//! How a dead letter's stored raw line becomes an event again: the line is
//! split as CSV (in the dialect of its layout), mapped onto the canonical
//! columns with its file's header under today's layouts (`--layouts`
//! included) and `--unknown-columns`, and validated under today's rules and
//! the layout's value forms, exactly as the loader reads a row.
//!
//! The mapping ([`Mapping`]) comes from, in order:
//! 1. the header the ledger recorded for the file (schema v8 on);
//! 2. for files loaded before, the original file's header, when the file
//!    is still where the ledger says it was kept or archived and its
//!    content hash is the one recorded;
//! 3. else the recorded layout's own columns in registry order (what
//!    `shopstream generate` and the seed systems write), when the ledger
//!    saw no unknown columns; a line with another number of fields stays.
//!
//! A row that cannot be read exactly stays a dead letter, under the code
//! [`NOT_REPLAYABLE`]: its file's header no longer maps, its original bytes
//! were not UTF-8 (only their replacement is stored), or it is of a layout
//! without event ids and its derived id was not recorded.
//!
//! Pure apart from step 2 (reading a header from disk); never touches the
//! database.

use std::path::Path;

use bytes::BytesMut;

use crate::event::{Field, RuleCode, FIELD_COUNT};
use crate::pipeline::read::{clean_text, extra_json, open_content};
use crate::schema::{Dialect, Registry};
use crate::sink::ledger::RecordedColumns;
use crate::sink::stage;
use crate::source::format::{Format, RecordFormat};
use crate::source::layout::{Layout, UnknownColumns};
use crate::source::reader::RecordReader;
use crate::validate::{validate, RawFields, Rules};

/// The code counted for a dead letter a replay cannot read exactly.
pub const NOT_REPLAYABLE: &str = "not_replayable";

/// How the lines of one file map onto the canonical columns today.
#[derive(Debug, Clone)]
pub enum Mapping {
    Layout(Box<Layout>),
    /// Why its lines cannot be read again.
    Unusable(String),
}

impl Mapping {
    /// The layout's name, for the events' `source_layout`.
    pub fn layout_name(&self) -> Option<&'static str> {
        match self {
            Mapping::Layout(l) => Some(l.id.as_str()),
            Mapping::Unusable(_) => None,
        }
    }
}

/// What the ledger (and perhaps the disk) says about a dead letter's file.
#[derive(Debug, Clone, Default)]
pub struct FileFacts {
    pub recorded: Option<RecordedColumns>,
    /// The dead letters' `source_layout`.
    pub source_layout: Option<String>,
    /// The header read from the original file (step 2 of the module docs).
    pub header_on_disk: Option<Vec<String>>,
}

/// The mapping of a file's lines (see the module docs). A header is
/// matched against the layouts of the dialect its recorded layout has
/// (the standard one when that layout is no longer known).
pub fn mapping(facts: &FileFacts, policy: UnknownColumns, registry: Registry) -> Mapping {
    let recorded = facts.recorded.as_ref();
    let was = facts
        .source_layout
        .as_deref()
        .and_then(|n| registry.find(n));
    let dialect = was.map_or(Dialect::STANDARD, |l| l.spec().read.dialect);
    if let Some(header) = recorded
        .and_then(|r| r.header.as_ref())
        .or(facts.header_on_disk.as_ref())
    {
        let cells = header.iter().map(|h| h.as_bytes());
        return match Layout::from_header(cells, policy, registry, dialect) {
            Ok(l) => Mapping::Layout(Box::new(l)),
            Err(e) => Mapping::Unusable(format!("its file's header no longer maps: {e}")),
        };
    }
    let Some(id) = was else {
        return Mapping::Unusable("neither its file's header nor its layout was recorded".into());
    };
    if recorded
        .and_then(|r| r.unknown_columns.as_ref())
        .is_some_and(|u| !u.is_empty())
    {
        return Mapping::Unusable(format!(
            "its file's header was not recorded (loaded before schema v8), the file is no \
             longer where the ledger says, and it had columns layout {id} does not know: \
             where they were is unknown"
        ));
    }
    let names = id.spec().columns.iter().map(|c| c.name.as_bytes());
    match Layout::from_header(names, policy, registry, dialect) {
        Ok(l) => Mapping::Layout(Box::new(l)),
        Err(e) => Mapping::Unusable(format!("layout {id} no longer maps: {e}")),
    }
}

/// The header of the CSV file at `path` (plain or compressed) if its
/// content hash is `hash` (step 2 of the module docs); `None` when it is
/// gone, changed, unreadable or not CSV.
pub fn header_on_disk(path: &Path, hash: &str, max_record_bytes: usize) -> Option<Vec<String>> {
    let format = Format::of(path);
    if format.records != RecordFormat::Csv {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let content = open_content(file, path, size, format, u64::MAX).ok()?;
    let mut reader = RecordReader::new(content, max_record_bytes);
    let header: Vec<String> = {
        let rec = reader.next_record().ok()??;
        (0..rec.len())
            .map(|i| clean_text(rec.field(i)).into_owned())
            .collect()
    };
    let stored = reader.get_mut().stored();
    stored.drain().ok()?;
    (stored.content_hash() == hash).then_some(header)
}

/// One dead letter, as stored.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub line: i64,
    pub raw_line: &'a str,
    pub event_id: Option<&'a str>,
    pub error_codes: &'a [String],
    pub source_layout: Option<&'a str>,
}

/// What a dead letter is under today's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It passes; its row was appended to the staging rows.
    Valid { late: bool },
    /// The codes it fails now (or [`NOT_REPLAYABLE`]).
    Invalid(Vec<String>),
}

fn invalid(code: &str) -> Verdict {
    Verdict::Invalid(vec![code.to_string()])
}

/// Validates one dead letter again; when it passes, appends its row to
/// `stage` as line `row.line` of file `file_no`. `extra` is scratch space.
pub fn revalidate(
    stage_rows: &mut BytesMut,
    extra: &mut Vec<u8>,
    file_no: i32,
    row: &Stored<'_>,
    mapping: &Mapping,
    now: i64,
    rules: &Rules,
) -> Verdict {
    let encoding = RuleCode::InvalidEncoding.as_str();
    let layout = match mapping {
        Mapping::Layout(l) => l,
        Mapping::Unusable(_) => return invalid(NOT_REPLAYABLE),
    };
    // Only the replacement of bytes that were not UTF-8 is stored.
    if row.error_codes.iter().any(|c| c == encoding) {
        return invalid(NOT_REPLAYABLE);
    }
    let mut reader = RecordReader::new(row.raw_line.as_bytes(), row.raw_line.len() + 1);
    let dialect = layout.dialect();
    reader.set_dialect(dialect.delimiter, dialect.quote);
    let rec = match reader.next_record() {
        Ok(Some(rec)) if rec.len() == layout.width => rec,
        _ => return invalid(RuleCode::MalformedRow.as_str()),
    };
    let Some(fields) = rec.text() else {
        return invalid(encoding);
    };
    let mut raw: RawFields<'_> = [None; FIELD_COUNT];
    layout.fill(|i| fields.field(i), &mut raw);
    if layout.derive_id_from.is_some() {
        // Derived from the rows before it in its file: only the id derived
        // when it was read, under the same layout, is right.
        match (row.event_id, row.source_layout) {
            (Some(id), Some(was))
                if was == layout.id.as_str() && uuid::Uuid::try_parse(id.trim()).is_ok() =>
            {
                raw[Field::EventId.index()] = Some(id.trim());
            }
            _ => return invalid(NOT_REPLAYABLE),
        }
    }
    match validate(&raw, now, &layout.rules(rules)) {
        Ok(ev) => {
            let extra = extra_json(extra, layout, &rec);
            stage::encode_valid(stage_rows, file_no, row.line as u64, &ev, extra);
            Verdict::Valid {
                late: ev.is_late_arrival,
            }
        }
        Err(fails) => {
            let codes: std::collections::BTreeSet<&str> =
                fails.iter().map(|f| f.code.as_str()).collect();
            Verdict::Invalid(codes.into_iter().map(str::to_string).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "event_id,user_id,event_type,product_id,price,event_time";
    const ID: &str = "0b6f1c2e-5d4a-4c3b-9a1e-2f3d4c5b6a79";

    fn facts(header: Option<&str>, layout: Option<&str>, unknown: &[&str]) -> FileFacts {
        FileFacts {
            recorded: Some(RecordedColumns {
                header: header.map(|h| h.split(',').map(str::to_string).collect()),
                layout: layout.map(str::to_string),
                unknown_columns: Some(unknown.iter().map(|u| u.to_string()).collect()),
                ..RecordedColumns::default()
            }),
            source_layout: layout.map(str::to_string),
            header_on_disk: None,
        }
    }

    fn check(mapping: &Mapping, raw_line: &str, codes: &[&str], rules: &Rules) -> Verdict {
        let codes: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
        let row = Stored {
            line: 2,
            raw_line,
            event_id: None,
            error_codes: &codes,
            source_layout: Some("v1"),
        };
        let mut buf = BytesMut::new();
        let now = 1_800_000_000_000_000;
        revalidate(&mut buf, &mut vec![], 1, &row, mapping, now, rules)
    }

    #[test]
    fn a_raised_limit_lets_the_row_pass_and_the_recorded_header_maps_it() {
        // Columns in another order than the registry's: only the header
        // recorded says where each one is.
        let m = mapping(
            &facts(
                Some("price,event_time,event_id,user_id,event_type,product_id"),
                Some("v1"),
                &[],
            ),
            UnknownColumns::Keep,
            Registry::BUILT_IN,
        );
        let line = format!("20000.00,2026-01-02 03:04:05,{ID},u1,purchase,p1");
        let strict = Rules::default();
        assert_eq!(
            check(&m, &line, &["extreme_price"], &strict),
            Verdict::Invalid(vec!["extreme_price".into()])
        );
        let raised = Rules {
            max_price_cents: 5_000_000,
            ..Rules::default()
        };
        assert!(matches!(
            check(&m, &line, &["extreme_price"], &raised),
            Verdict::Valid { .. }
        ));
    }

    #[test]
    fn without_a_recorded_header_the_layout_order_is_assumed() {
        let m = mapping(
            &facts(None, Some("v1"), &[]),
            UnknownColumns::Keep,
            Registry::BUILT_IN,
        );
        let ok = format!("{ID},u1,view,p1,1.00,2026-01-02 03:04:05");
        assert!(matches!(
            check(&m, &ok, &["future_event_time"], &Rules::default()),
            Verdict::Valid { .. }
        ));
        let wide = format!("{ok},extra");
        assert_eq!(
            check(&m, &wide, &["future_event_time"], &Rules::default()),
            Verdict::Invalid(vec!["malformed_row".into()])
        );
        let unknown = mapping(
            &facts(None, Some("v1"), &["color"]),
            UnknownColumns::Keep,
            Registry::BUILT_IN,
        );
        assert!(matches!(unknown, Mapping::Unusable(_)));
    }

    #[test]
    fn rows_that_cannot_be_read_exactly_stay() {
        let m = mapping(
            &facts(Some(V1), Some("v1"), &[]),
            UnknownColumns::Keep,
            Registry::BUILT_IN,
        );
        let line = format!("{ID},u\u{FFFD}1,view,p1,1.00,2026-01-02 03:04:05");
        assert_eq!(
            check(&m, &line, &["invalid_encoding"], &Rules::default()),
            Verdict::Invalid(vec![NOT_REPLAYABLE.into()])
        );
        // A header that no longer maps under today's --unknown-columns.
        let header = format!("{V1},color");
        let m = mapping(
            &facts(Some(&header), Some("v1"), &["color"]),
            UnknownColumns::Reject,
            Registry::BUILT_IN,
        );
        assert!(matches!(m, Mapping::Unusable(ref why) if why.contains("no longer maps")));
    }

    #[test]
    fn a_derived_id_is_the_one_recorded_for_the_same_layout() {
        let header = "user_id,action,product,timestamp";
        let m = mapping(
            &facts(Some(header), Some("seed002"), &[]),
            UnknownColumns::Keep,
            Registry::BUILT_IN,
        );
        let codes = vec!["invalid_event_time".to_string()];
        let mut row = Stored {
            line: 3,
            raw_line: "u1,view,laptop,2026-01-02 03:04:05",
            event_id: Some(ID),
            error_codes: &codes,
            source_layout: Some("seed002"),
        };
        let mut buf = BytesMut::new();
        let rules = Rules::default();
        let now = 1_800_000_000_000_000;
        let got = revalidate(&mut buf, &mut vec![], 1, &row, &m, now, &rules);
        assert!(matches!(got, Verdict::Valid { .. }), "{got:?}");
        assert!(buf
            .windows(16)
            .any(|w| w == uuid::Uuid::parse_str(ID).expect("uuid").as_bytes()));
        row.event_id = None;
        let got = revalidate(&mut buf, &mut vec![], 1, &row, &m, now, &rules);
        assert_eq!(got, Verdict::Invalid(vec![NOT_REPLAYABLE.into()]));
    }

    #[test]
    fn the_header_on_disk_counts_only_for_the_same_content() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("a.csv");
        let text = format!("{V1}\n{ID},u1,view,p1,1.00,2026-01-02 03:04:05\n");
        std::fs::write(&p, &text).expect("write");
        let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
        let got = header_on_disk(&p, &hash, 1 << 20).expect("same content");
        assert_eq!(got.join(","), V1);
        assert_eq!(header_on_disk(&p, "another", 1 << 20), None);
        assert_eq!(
            header_on_disk(&d.path().join("gone.csv"), &hash, 1 << 20),
            None
        );
    }
}
