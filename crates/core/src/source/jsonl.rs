//! Streams one JSON Lines file's content as records of the same kind the
//! CSV reader makes ([`Record`]: the raw line, its number and the column
//! values), so validation and dead letters stay one path.
//!
//! Each line holds one JSON object; blank lines are skipped (and counted),
//! a UTF-8 BOM and CRLF endings are fine. The first object's keys choose
//! the layout exactly as a CSV header's names do ([`Layout::from_header`]:
//! trimmed, ASCII case ignored, aliases of every layout); every canonical
//! column name is read on any line, even one the first object lacked. A key
//! is a column's value when it is a string (unescaped), a number or
//! `true`/`false` (their JSON text, as written), or `null` (empty, as is a
//! missing key). Keys outside the layout, and objects or arrays (which are
//! no column value: their column stays empty), follow `--unknown-columns`:
//! kept in the row's `extra` JSON as written (no `extra` when nothing is
//! kept), dropped, or the file rejected. A line that is not one JSON
//! object, names a key twice (case ignored), has more keys than
//! `--max-columns` or is longer than `--max-line-bytes` is a
//! [`JsonLine::Malformed`] with serde_json's line and column; reading goes
//! on past it, and memory holds at most one line up to the limit
//! ([`super::lines`]).
//!
//! This module never validates values and never decides a file's fate.

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::layout::{Layout, LayoutError, UnknownColumns};
use super::lines::LineReader;
use super::reader::Record;
use crate::schema::{Dialect, Registry};

/// Most key names outside the layout collected for the ledger.
const UNKNOWN_NAMES_MAX: usize = 64;

/// Why a JSON Lines file cannot be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error(transparent)]
    Read(#[from] super::reader::ReadError),
    #[error("line {line} is the first JSON object, whose keys choose the layout: {error}")]
    Layout { line: u64, error: LayoutError },
    #[error(
        "line {line} has key(s) layout {layout} does not know: {} (--unknown-columns reject)",
        .keys.join(", ")
    )]
    Unknown {
        line: u64,
        layout: crate::schema::LayoutRef,
        keys: Vec<String>,
    },
    #[error(
        "line {line} holds an object or array as the value of column(s) {} \
         (--unknown-columns reject)",
        .keys.join(", ")
    )]
    Nested { line: u64, keys: Vec<String> },
}

impl From<std::io::Error> for JsonlError {
    fn from(e: std::io::Error) -> Self {
        JsonlError::Read(e.into())
    }
}

/// One non-blank line of a JSON Lines file.
#[derive(Debug)]
pub enum JsonLine<'r> {
    /// An object, mapped onto the layout's columns.
    Row {
        rec: Record<'r>,
        layout: &'r Layout,
        /// The row's `extra` JSON object, when it keeps anything there.
        extra: Option<&'r [u8]>,
    },
    /// A line that is no usable JSON object.
    Malformed {
        line: u64,
        raw: &'r [u8],
        reason: String,
    },
}

/// A streaming JSON Lines reader over any byte source.
pub struct JsonlReader<R> {
    lines: LineReader<R>,
    max_keys: usize,
    policy: UnknownColumns,
    registry: Registry,
    columns: Option<Columns>,
    out: Vec<u8>,
    ends: Vec<usize>,
    extra: Vec<u8>,
    /// Key names outside the layout, for the ledger (at most
    /// [`UNKNOWN_NAMES_MAX`]).
    unknown: Vec<String>,
}

impl<R: std::io::Read> JsonlReader<R> {
    pub fn new(src: R, max_line_bytes: usize, max_keys: usize, policy: UnknownColumns) -> Self {
        JsonlReader {
            lines: LineReader::new(src, max_line_bytes),
            max_keys: max_keys.max(1),
            policy,
            registry: Registry::BUILT_IN,
            columns: None,
            out: Vec::with_capacity(1024),
            ends: Vec::with_capacity(64),
            extra: Vec::new(),
            unknown: vec![],
        }
    }

    /// Detects the layout among `registry`'s (the built-in ones by
    /// default): those read with the standard CSV dialect, since a layout
    /// with another delimiter or quote describes CSV files.
    pub fn with_layouts(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The source being read.
    pub fn get_mut(&mut self) -> &mut R {
        self.lines.get_mut()
    }

    /// Keys outside the layout met so far (the first
    /// [`UNKNOWN_NAMES_MAX`]), as written.
    pub fn unknown_keys(&self) -> &[String] {
        &self.unknown
    }

    /// The next non-blank line, or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<JsonLine<'_>>, JsonlError> {
        let max_line_bytes = self.lines.max_line_bytes();
        let Some(l) = self.lines.next_line()? else {
            return Ok(None);
        };
        let (line, raw) = (l.line, l.bytes);
        let malformed = |reason: String| Ok(Some(JsonLine::Malformed { line, raw, reason }));
        if l.too_long {
            return malformed(format!(
                "line {line} is longer than {max_line_bytes} bytes (--max-line-bytes)"
            ));
        }
        let pairs = match parse_object(raw, self.max_keys) {
            Ok(p) => p,
            Err(e) => return malformed(format!("line {line}, {e}")),
        };
        if let Some(dup) = duplicate_key(&pairs) {
            return malformed(format!("line {line} names key {dup:?} twice"));
        }
        if self.columns.is_none() {
            let columns = Columns::detect(&pairs, self.policy, self.registry)
                .map_err(|error| JsonlError::Layout { line, error })?;
            for name in &columns.layout.unknown {
                note_unknown(&mut self.unknown, name);
            }
            self.columns = Some(columns);
        }
        let Some(columns) = self.columns.as_ref() else {
            return Ok(None);
        };
        let mut row = RowBuf {
            out: &mut self.out,
            ends: &mut self.ends,
            extra: &mut self.extra,
        };
        let mapped = columns.fill(&pairs, &mut row, |name| {
            note_unknown(&mut self.unknown, name)
        });
        if self.policy == UnknownColumns::Reject {
            if !mapped.unknown_keys.is_empty() {
                return Err(JsonlError::Unknown {
                    line,
                    layout: columns.layout.id,
                    keys: mapped.unknown_keys,
                });
            }
            if !mapped.nested_keys.is_empty() {
                return Err(JsonlError::Nested {
                    line,
                    keys: mapped.nested_keys,
                });
            }
        }
        // `{}`: nothing kept.
        let extra = (self.extra.len() > 2).then_some(&self.extra[..]);
        Ok(Some(JsonLine::Row {
            rec: Record::from_parts(line, raw, &self.out, &self.ends),
            layout: &columns.layout,
            extra,
        }))
    }
}

/// Remembers a key name outside the layout (the first ones only).
fn note_unknown(names: &mut Vec<String>, name: &str) {
    if names.len() < UNKNOWN_NAMES_MAX && !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// An object's keys and their values as written, in order.
type Pairs<'a> = Vec<(String, &'a RawValue)>;

/// Parses one line as a JSON object of at most `max_keys` keys; the error
/// says where it broke (`column N: …`).
fn parse_object(line: &[u8], max_keys: usize) -> Result<Pairs<'_>, String> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let pairs = ObjectSeed { max_keys }
        .deserialize(&mut de)
        .and_then(|p| de.end().map(|()| p));
    pairs.map_err(|e| {
        let text = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&at).unwrap_or(&text);
        format!("column {}: {message}", e.column().max(1))
    })
}

/// Deserializes an object's entries, refusing more than `max_keys`.
struct ObjectSeed {
    max_keys: usize,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Pairs<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Pairs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one JSON object per line")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(16).min(self.max_keys));
        while let Some(pair) = map.next_entry::<String, &'de RawValue>()? {
            if pairs.len() == self.max_keys {
                return Err(serde::de::Error::custom(format_args!(
                    "the object has more than {} keys (--max-columns)",
                    self.max_keys
                )));
            }
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

/// A key named twice (trimmed, ASCII case ignored), as first written.
fn duplicate_key<'p>(pairs: &'p Pairs<'_>) -> Option<&'p str> {
    pairs.iter().enumerate().find_map(|(i, (k, _))| {
        let k = k.trim();
        pairs[..i]
            .iter()
            .any(|(o, _)| o.trim().eq_ignore_ascii_case(k))
            .then_some(k)
    })
}

/// The kind of JSON value, by its first byte (the text is valid JSON).
fn is_nested(v: &RawValue) -> bool {
    matches!(v.get().as_bytes().first(), Some(b'{' | b'['))
}

/// Where each key of a file's lines goes.
struct Columns {
    layout: Layout,
    /// Column names (trimmed, lower case) and their slot in a row.
    slots: std::collections::HashMap<String, usize>,
    /// Slots whose value goes to `extra` rather than to a column, by name
    /// as the first object wrote it.
    extra_slots: Vec<Option<String>>,
    policy: UnknownColumns,
}

/// A row being mapped, in the reader's reused buffers.
struct RowBuf<'b> {
    out: &'b mut Vec<u8>,
    ends: &'b mut Vec<usize>,
    extra: &'b mut Vec<u8>,
}

/// What mapping one line met besides its columns.
#[derive(Default)]
struct Mapped {
    unknown_keys: Vec<String>,
    nested_keys: Vec<String>,
}

impl Columns {
    /// The layout the first object's keys choose, widened to every
    /// canonical column.
    fn detect(
        pairs: &Pairs<'_>,
        policy: UnknownColumns,
        registry: Registry,
    ) -> Result<Columns, LayoutError> {
        let keys = pairs.iter().map(|(k, _)| k.as_bytes());
        let mut layout = Layout::from_header(keys, policy, registry, Dialect::STANDARD)?;
        let mut slots = std::collections::HashMap::new();
        for (i, (k, _)) in pairs.iter().enumerate() {
            slots.insert(k.trim().to_ascii_lowercase(), i);
        }
        let mut extra_slots: Vec<Option<String>> = vec![None; layout.width];
        for (name, p) in &layout.extras {
            extra_slots[*p] = Some(name.clone());
        }
        for name in layout.widen_to_canonical() {
            slots.insert(name.to_string(), extra_slots.len());
            extra_slots.push(None);
        }
        Ok(Columns {
            layout,
            slots,
            extra_slots,
            policy,
        })
    }

    /// Writes one object's column values into `row` (every slot, empty
    /// where the object has no value) and its `extra` JSON.
    fn fill(
        &self,
        pairs: &Pairs<'_>,
        row: &mut RowBuf<'_>,
        mut unknown: impl FnMut(&str),
    ) -> Mapped {
        let mut mapped = Mapped::default();
        let mut at: Vec<Option<&RawValue>> = vec![None; self.extra_slots.len()];
        row.extra.clear();
        row.extra.push(b'{');
        let keep = self.policy == UnknownColumns::Keep;
        let mut lower = String::new();
        for (key, value) in pairs {
            let name = key.trim();
            lower.clear();
            lower.push_str(name);
            lower.make_ascii_lowercase();
            match self.slots.get(&lower) {
                Some(&s) if self.extra_slots[s].is_some() => push_extra(row.extra, name, value),
                Some(_) if is_nested(value) => {
                    mapped.nested_keys.push(name.to_string());
                    if keep {
                        push_extra(row.extra, name, value);
                    }
                }
                Some(&s) => at[s] = Some(value),
                None => {
                    unknown(name);
                    mapped.unknown_keys.push(name.to_string());
                    if keep {
                        push_extra(row.extra, name, value);
                    }
                }
            }
        }
        row.extra.push(b'}');
        row.out.clear();
        row.ends.clear();
        for v in at {
            if let Some(v) = v {
                push_text(row.out, v);
            }
            row.ends.push(row.out.len());
        }
        mapped
    }
}

/// A column's text for a JSON value: strings unescaped, numbers and
/// `true`/`false` as written, `null` empty.
fn push_text(out: &mut Vec<u8>, v: &RawValue) {
    let text = v.get();
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => {
            out.extend_from_slice(&text.as_bytes()[1..text.len() - 1]);
        }
        Some(b'"') => match serde_json::from_str::<String>(text) {
            Ok(s) => out.extend_from_slice(s.as_bytes()),
            Err(_) => out.extend_from_slice(text.as_bytes()),
        },
        _ if text == "null" => {}
        _ => out.extend_from_slice(text.as_bytes()),
    }
}

/// Adds `"name": value` to an `extra` object being written: strings
/// trimmed (empty ones `null`, as in CSV), anything else as written.
fn push_extra(buf: &mut Vec<u8>, name: &str, value: &RawValue) {
    if buf.len() > 1 {
        buf.push(b',');
    }
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, name);
    buf.push(b':');
    let text = value.get();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).unwrap_or_default();
        let s = s.trim();
        if s.is_empty() {
            buf.extend_from_slice(b"null");
        } else {
            let _ = serde_json::to_writer(&mut *buf, s);
        }
    } else {
        buf.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Field;
    use crate::schema::LayoutId;

    /// A line, some of its fields by canonical name, and its extra.
    type Row = (u64, Vec<String>, String);

    /// Each line read, or the reason it is malformed.
    fn read(input: &[u8], policy: UnknownColumns) -> Vec<Result<Row, String>> {
        let mut r = JsonlReader::new(input, 200, 8, policy);
        let mut v = vec![];
        loop {
            match r.next_line() {
                Ok(None) => break,
                Ok(Some(JsonLine::Row { rec, layout, extra })) => {
                    let t = rec.text().expect("text");
                    let f = |f: Field| layout.position(f).map(|p| t.field(p)).unwrap_or("<none>");
                    let fields = [
                        Field::EventId,
                        Field::Price,
                        Field::Quantity,
                        Field::EventTime,
                    ]
                    .map(|x| f(x).to_string())
                    .to_vec();
                    let extra = extra.map(|e| String::from_utf8_lossy(e).into_owned());
                    v.push(Ok((rec.line, fields, extra.unwrap_or_default())));
                }
                Ok(Some(JsonLine::Malformed { line, raw, reason })) => {
                    v.push(Err(format!(
                        "{line}|{}|{reason}",
                        String::from_utf8_lossy(raw)
                    )));
                }
                Err(e) => {
                    v.push(Err(format!("file: {e}")));
                    break;
                }
            }
        }
        v
    }

    const FIRST: &str = r#"{"event_id":"e1","user_id":"u","event_type":"view","product_id":"p","price":null,"event_time":"t1"}"#;

    #[test]
    fn values_map_by_name_with_numbers_as_written_and_null_empty() {
        let input = format!(
            "\u{FEFF}{FIRST}\r\n\n  \n{}\n{}",
            r#"{"EVENT_TIME":"t2","Price":12.50,"quantity":3,"event_id":"e\"2","product_id":"p"}"#,
            r#"{"event_id":"e3","price":1e3,"quantity":true,"event_time":"t3"}"#
        );
        let v = read(input.as_bytes(), UnknownColumns::Keep);
        assert_eq!(
            v,
            [
                Ok((
                    1,
                    vec!["e1".into(), "".into(), "".into(), "t1".into()],
                    "".into()
                )),
                // quantity: a canonical column the first object lacked.
                Ok((
                    4,
                    vec!["e\"2".into(), "12.50".into(), "3".into(), "t2".into()],
                    "".into()
                )),
                Ok((
                    5,
                    vec!["e3".into(), "1e3".into(), "true".into(), "t3".into()],
                    "".into()
                )),
            ]
        );
    }

    #[test]
    fn unknown_keys_and_nested_values_go_to_extra_or_are_refused() {
        let input = format!(
            "{FIRST}\n{}\n",
            r#"{"event_id":"e2","price":{"amount":5},"colour":" red ","tags":["a",1],"blank":""}"#
        );
        let v = read(input.as_bytes(), UnknownColumns::Keep);
        assert_eq!(
            v[1],
            Ok((
                2,
                vec!["e2".into(), "".into(), "".into(), "".into()],
                r#"{"price":{"amount":5},"colour":"red","tags":["a",1],"blank":null}"#.into()
            ))
        );
        let v = read(input.as_bytes(), UnknownColumns::Drop);
        assert_eq!(v[1].as_ref().map(|r| r.2.as_str()), Ok(""));
        let v = read(input.as_bytes(), UnknownColumns::Reject);
        assert_eq!(
            v[1],
            Err(
                "file: line 2 has key(s) layout v1 does not know: colour, tags, blank \
                 (--unknown-columns reject)"
                    .into()
            )
        );
        let nested = format!("{FIRST}\n{}\n", r#"{"event_id":"e2","price":[5]}"#);
        let v = read(nested.as_bytes(), UnknownColumns::Reject);
        assert_eq!(
            v[1],
            Err(
                "file: line 2 holds an object or array as the value of column(s) price \
                 (--unknown-columns reject)"
                    .into()
            )
        );
    }

    #[test]
    fn malformed_lines_are_reported_and_reading_goes_on() {
        let long = format!(r#"{{"event_id":"{}"}}"#, "x".repeat(300));
        let input = format!(
            "not json\n[1,2]\n{{\"a\":1,\"A\":2}}\n{FIRST}\n{{\"event_id\": }}\n{long}\n{}\n{{\"event_id\":\"e9\"}}",
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#
        );
        let v = read(input.as_bytes(), UnknownColumns::Keep);
        let errs: Vec<String> = v.iter().filter_map(|r| r.clone().err()).collect();
        assert_eq!(errs.len(), 6, "{v:?}");
        assert!(
            errs[0].starts_with("1|not json|line 1, column 2: expected"),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].contains(
                "line 2, column 1: invalid type: sequence, expected one JSON object per line"
            ),
            "{}",
            errs[1]
        );
        assert_eq!(errs[2], "3|{\"a\":1,\"A\":2}|line 3 names key \"A\" twice");
        assert!(
            errs[3].starts_with("5|{\"event_id\": }|line 5, column 14: expected value"),
            "{}",
            errs[3]
        );
        assert!(
            errs[4].ends_with("|line 6 is longer than 200 bytes (--max-line-bytes)"),
            "{}",
            errs[4]
        );
        assert_eq!(errs[4].split('|').nth(1).map(str::len), Some(200));
        assert!(
            errs[5].ends_with("the object has more than 8 keys (--max-columns)"),
            "{}",
            errs[5]
        );
        let rows: Vec<u64> = v
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|r| r.0))
            .collect();
        assert_eq!(rows, [4, 8]);
    }

    #[test]
    fn the_first_object_chooses_the_layout_like_a_header() {
        let mut r = JsonlReader::new(
            &br#"{"user_id":"1001","action":"purchase","product":"laptop","timestamp":"t"}"#[..],
            1 << 20,
            256,
            UnknownColumns::Keep,
        );
        let Ok(Some(JsonLine::Row { layout, .. })) = r.next_line() else {
            panic!("a row");
        };
        assert_eq!(layout.id, LayoutId::Seed002);
        assert_eq!(layout.position(Field::EventId), None, "derived ids");
        let mut r = JsonlReader::new(
            &br#"{"who":"x","what":"y"}"#[..],
            1 << 20,
            256,
            UnknownColumns::Keep,
        );
        let e = r.next_line().expect_err("no layout").to_string();
        assert!(
            e.starts_with("line 1 is the first JSON object, whose keys choose the layout: the header matches no known layout"),
            "{e}"
        );
    }

    #[test]
    fn a_line_split_across_many_reads_and_a_missing_final_newline() {
        let big = "y".repeat(150_000);
        let input = format!("{FIRST}\n{{\"event_id\":\"{big}\"}}\n{FIRST}");
        let mut r = JsonlReader::new(input.as_bytes(), 1 << 20, 256, UnknownColumns::Keep);
        let mut lines = vec![];
        while let Some(l) = r.next_line().expect("reads") {
            match l {
                JsonLine::Row { rec, .. } => lines.push((rec.line, rec.raw.len())),
                JsonLine::Malformed { reason, .. } => panic!("{reason}"),
            }
        }
        assert_eq!(
            lines,
            [(1, FIRST.len()), (2, big.len() + 15), (3, FIRST.len())]
        );
    }
}
