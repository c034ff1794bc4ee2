//! `shopstream schema init FILE.csv`: a declared layout (TOML, see
//! [`super::declared`]) to start from, guessed from a sample file's header
//! and first rows, for a person to check and edit.
//!
//! The delimiter is the one of `,` `;` tab `|` that splits the header into
//! the most fields. Each column is guessed on its own: a header name that
//! is a canonical column, a column name of a known layout or a common
//! synonym ([`SYNONYMS`]: `customer`, `sku`, `amount`, …) maps to that
//! column; otherwise the sample values decide (all of them non-empty ones
//! of the first [`SAMPLE_ROWS`] rows): UUIDs → `event_id`, times →
//! `event_time` (with the format found), event types (`view`, …) →
//! `event_type`, numbers with two decimals →
//! `price` (a decimal comma noted); anything else, or a canonical column
//! already taken, → `extra`. It only reads the sample; it never writes.

use std::fmt::Write as _;
use std::path::Path;

use super::{Registry, Target};
use crate::event::{EventType, Field};
use crate::source::layout::{Layout, UnknownColumns};
use crate::source::reader::{split_fields, RecordReader};
use crate::validate::parse::{parse_timestamp, TimeFormat};

/// Rows of the sample the values are guessed from.
pub const SAMPLE_ROWS: usize = 20;
/// Longest record read from the sample.
const MAX_RECORD: usize = 1 << 20;
/// Delimiters tried on the header, the first wins a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];
/// Time formats tried on a column's values, in order.
const TIME_FORMATS: [&str; 12] = [
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d.%m.%Y %H:%M:%S%.f",
];

/// Common header names of canonical columns in shop exports (ASCII case
/// ignored), besides the canonical names and the known layouts' columns.
const SYNONYMS: [(&str, Field); 16] = [
    ("customer", Field::UserId),
    ("customer_id", Field::UserId),
    ("client_id", Field::UserId),
    ("session", Field::SessionId),
    ("type", Field::EventType),
    ("event", Field::EventType),
    ("sku", Field::ProductId),
    ("item", Field::ProductId),
    ("item_id", Field::ProductId),
    ("amount", Field::Price),
    ("unit_price", Field::Price),
    ("qty", Field::Quantity),
    ("country", Field::GeoCountry),
    ("city", Field::GeoCity),
    ("created_at", Field::EventTime),
    ("occurred_at", Field::EventTime),
];

/// Why no layout could be written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0} has no header row")]
    Empty(String),
}

/// One column's guess.
struct Guess {
    name: String,
    to: &'static str,
    why: String,
}

/// What the values of a column look like.
#[derive(Default)]
struct Looks {
    time_format: Option<&'static str>,
    decimal_comma: bool,
}

/// The TOML text of a layout for files like the one at `path`.
pub fn init(path: &Path, registry: Registry) -> Result<String, InitError> {
    let shown = path.display().to_string();
    let read_err = |e: &dyn std::fmt::Display| InitError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| read_err(&e))?;
    let mut reader = RecordReader::new(file, MAX_RECORD);
    let header_raw = match reader.next_record().map_err(|e| read_err(&e))? {
        Some(h) => h.raw.to_vec(),
        None => return Err(InitError::Empty(shown)),
    };
    let delimiter = DELIMITERS
        .into_iter()
        .max_by_key(|d| {
            (
                split_fields(&header_raw, *d, b'"').len(),
                std::cmp::Reverse(*d == b','),
            )
        })
        .unwrap_or(b',');
    let names: Vec<String> = split_fields(&header_raw, delimiter, b'"')
        .iter()
        .map(|c| String::from_utf8_lossy(c).trim().to_string())
        .collect();
    reader.set_dialect(delimiter, b'"');
    let mut samples: Vec<Vec<String>> = vec![vec![]; names.len()];
    for _ in 0..SAMPLE_ROWS {
        let Some(rec) = reader.next_record().map_err(|e| read_err(&e))? else {
            break;
        };
        for (i, s) in samples.iter_mut().enumerate() {
            let v = String::from_utf8_lossy(rec.field(i)).trim().to_string();
            if !v.is_empty() {
                s.push(v);
            }
        }
    }
    let mut looks = Looks::default();
    let mut taken = vec![];
    let guesses: Vec<Guess> = names
        .iter()
        .zip(&samples)
        .map(|(name, values)| guess(name, values, registry, &mut taken, &mut looks))
        .collect();
    let cells: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let known = Layout::from_csv_header(&cells, &header_raw, UnknownColumns::Keep, registry)
        .ok()
        .filter(|_| delimiter == b',')
        .map(|(l, _)| l.id.as_str());
    Ok(render(path, delimiter, &looks, &guesses, &taken, known))
}

/// The canonical column `name` names in a known layout.
fn by_name(name: &str, registry: Registry) -> Option<Field> {
    if let Some(f) = Field::from_header(name) {
        return Some(f);
    }
    if let Some((_, f)) = SYNONYMS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Some(*f);
    }
    registry.all().find_map(|l| {
        l.spec().columns.iter().find_map(|c| {
            let named = c.names().any(|n| n.eq_ignore_ascii_case(name));
            match c.target {
                Target::Field(f) if named => Some(f),
                Target::ProductIdAndName if named => Some(Field::ProductId),
                _ => None,
            }
        })
    })
}

fn guess(
    name: &str,
    values: &[String],
    registry: Registry,
    taken: &mut Vec<Field>,
    looks: &mut Looks,
) -> Guess {
    let example = values
        .first()
        .map_or(String::new(), |v| format!(" like {v:?}"));
    let (field, why) = match by_name(name, registry) {
        Some(f) => (Some(f), "by its name".to_string()),
        None => match by_values(values) {
            Some(f) => (Some(f), format!("from values{example}")),
            None => (None, format!("values{example}")),
        },
    };
    match field {
        Some(f) if !taken.contains(&f) => {
            taken.push(f);
            note_forms(f, values, looks);
            Guess {
                name: name.to_string(),
                to: f.name(),
                why,
            }
        }
        Some(f) => Guess {
            name: name.to_string(),
            to: "extra",
            why: format!("{why}; {} is taken by an earlier column", f.name()),
        },
        None => Guess {
            name: name.to_string(),
            to: "extra",
            why,
        },
    }
}

/// The column all of `values` look like, if any.
fn by_values(values: &[String]) -> Option<Field> {
    if values.is_empty() {
        return None;
    }
    if values.iter().all(|v| uuid::Uuid::try_parse(v).is_ok()) {
        return Some(Field::EventId);
    }
    if time_form(values).is_some() {
        return Some(Field::EventTime);
    }
    if values.iter().all(|v| EventType::parse(v).is_some()) {
        return Some(Field::EventType);
    }
    if decimal_form(values).is_some() {
        return Some(Field::Price);
    }
    None
}

/// How `values` are all written as times: `Some(None)` in the standard
/// forms, `Some(Some(format))` in one of [`TIME_FORMATS`].
fn time_form(values: &[String]) -> Option<Option<&'static str>> {
    if values.iter().all(|v| parse_timestamp(v).is_some()) {
        return Some(None);
    }
    TIME_FORMATS.into_iter().find_map(|f| {
        let format = TimeFormat::new(f).ok()?;
        values
            .iter()
            .all(|v| format.parse(v, None).is_ok())
            .then_some(Some(f))
    })
}

/// Whether `values` are all prices with two decimals: `Some(true)` with
/// a decimal comma.
fn decimal_form(values: &[String]) -> Option<bool> {
    [(b'.', false), (b',', true)]
        .into_iter()
        .find(|(sep, _)| values.iter().all(|v| two_decimals(v, *sep)))
        .map(|(_, comma)| comma)
}

/// Notes in `looks` the time format or decimal comma of the values of
/// the column that became `f`.
fn note_forms(f: Field, values: &[String], looks: &mut Looks) {
    if values.is_empty() {
        return;
    }
    match f {
        Field::EventTime => {
            if let Some(Some(format)) = time_form(values) {
                looks.time_format = Some(format);
            }
        }
        Field::Price => looks.decimal_comma |= decimal_form(values) == Some(true),
        _ => {}
    }
}

/// `12.50`: digits, `sep`, two digits.
fn two_decimals(v: &str, sep: u8) -> bool {
    let b = v.strip_prefix('-').unwrap_or(v).as_bytes();
    b.len() >= 4
        && b[b.len() - 3] == sep
        && b[..b.len() - 3].iter().all(u8::is_ascii_digit)
        && b[b.len() - 2..].iter().all(u8::is_ascii_digit)
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A layout name from a file name: letters, digits, `_`, `-` and `.`.
fn layout_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .map_or("layout".into(), |n| n.to_string_lossy().into_owned());
    let stem = stem.split('.').next().unwrap_or("layout");
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(56)
        .collect();
    if name.is_empty() || crate::schema::LayoutId::parse(&name).is_some() {
        name.push_str("_layout");
    }
    name
}

fn render(
    path: &Path,
    delimiter: u8,
    looks: &Looks,
    guesses: &[Guess],
    taken: &[Field],
    known: Option<&str>,
) -> String {
    let file = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A layout for files like {file}, guessed by `shopstream schema init`."
    );
    let _ = writeln!(
        out,
        "# Check every column, then: shopstream run --layouts THIS.toml ..."
    );
    let _ = writeln!(out, "# Every key is described in docs/layouts.md.");
    if let Some(k) = known {
        let _ = writeln!(
            out,
            "# Note: layout {k} reads this header already; a layout with the same columns is \
             refused as ambiguous."
        );
    }
    let _ = writeln!(out, "name = {}", quoted(&layout_name(path)));
    let _ = writeln!(
        out,
        "description = {}",
        quoted(&format!("files like {file}"))
    );
    if delimiter != b',' {
        let _ = writeln!(
            out,
            "delimiter = {}",
            quoted(&char::from(delimiter).to_string())
        );
    }
    if looks.decimal_comma {
        let _ = writeln!(out, "decimal = \",\"");
    }
    if let Some(f) = looks.time_format {
        let _ = writeln!(out, "time_format = {}", quoted(f));
    }
    let _ = writeln!(
        out,
        "# time_zone = \"Europe/Berlin\"   # of times without an offset (default: --source-timezone)"
    );
    for f in [Field::EventType, Field::ProductId, Field::EventTime] {
        if !taken.contains(&f) {
            let _ = writeln!(
                out,
                "# TODO: no column looks like {0}: set `to = \"{0}\"` on the one that holds it",
                f.name()
            );
        }
    }
    if !taken.contains(&Field::EventId) {
        let _ = writeln!(
            out,
            "# No event_id column: each row's id is derived from its values (see id_from)."
        );
    }
    for g in guesses {
        let _ = writeln!(out, "\n[[column]]");
        let _ = writeln!(out, "name = {}", quoted(&g.name));
        let _ = writeln!(
            out,
            "to = {}   # {}",
            quoted(g.to),
            g.why.replace('\n', " ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_tell_ids_times_and_prices() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let id = v(&["0b6f1c2e-5d4a-4c3b-9a1e-2f3d4c5b6a79"]);
        assert_eq!(by_values(&id), Some(Field::EventId));
        let times = v(&["03.01.2026 14:30", "31.12.2025 09:05"]);
        assert_eq!(by_values(&times), Some(Field::EventTime));
        let mut looks = Looks::default();
        note_forms(Field::EventTime, &times, &mut looks);
        assert_eq!(looks.time_format, Some("%d.%m.%Y %H:%M"));
        let prices = v(&["12,50", "3,00"]);
        assert_eq!(by_values(&prices), Some(Field::Price));
        note_forms(Field::Price, &prices, &mut looks);
        assert!(looks.decimal_comma);
        assert_eq!(
            by_values(&v(&["2026-01-02T03:04:05Z"])),
            Some(Field::EventTime)
        );
        assert_eq!(by_values(&v(&["View", "purchase"])), Some(Field::EventType));
        assert_eq!(by_values(&v(&["12", "x"])), None);
        assert_eq!(by_values(&[]), None);
    }

    #[test]
    fn names_of_known_layouts_map() {
        let r = Registry::BUILT_IN;
        assert_eq!(by_name("Timestamp", r), Some(Field::EventTime));
        assert_eq!(by_name("product", r), Some(Field::ProductId));
        assert_eq!(by_name("price", r), Some(Field::Price));
        assert_eq!(by_name("SKU", r), Some(Field::ProductId));
        assert_eq!(by_name("Artikel", r), None);
        assert_eq!(
            layout_name(Path::new("/x/Shop Export.2026.csv")),
            "Shop_Export"
        );
        assert_eq!(layout_name(Path::new("v1.csv")), "v1_layout");
    }
}
