//! Property tests (256 cases each) over reading and validation; no database.
//!
//! 1. Whatever bytes a file holds, `read_batch` never panics and emits a
//!    binary COPY stream that decodes completely: 28 fields a row, text
//!    PostgreSQL can store, valid rows that meet the table's CHECKs, rejected
//!    rows with their raw line and at least one known rule code, a trailer
//!    and nothing after it. Every row is accounted for: read = valid +
//!    rejected = rows staged (= what the `csv` crate counts), codes staged =
//!    codes counted, line numbers increasing from 2.
//! 2. For CSV files from a real layout's header (any column order, case and
//!    padding) the rows read are the rows written, each staged at the line it
//!    starts on (`\n`, `\r\n` and a lone `\r` end a line), and rows made only
//!    of valid values are accepted.
//! 3. `validate` never panics on any values; what it accepts is consistent
//!    (required columns present, `total_amount` = price × quantity only for
//!    purchase and add_to_cart, storable) and what it rejects names a reason.
//! 4. Whatever bytes a JSON Lines file holds, plain or gzip-compressed (now
//!    and then cut short), `read_batch` never panics, emits a COPY stream
//!    that decodes, and accounts for every non-blank line (staged at its
//!    line, lines increasing from 1), or rejects the file with a reason.

use std::collections::BTreeMap;

use proptest::prelude::*;
use shopstream::batch::{Chunk, FileOutcome, FileResult};
use shopstream::event::{EventType, Field, RuleCode};
use shopstream::pipeline::read::{read_batch, ParseConfig};
use shopstream::schema::{LayoutId, Target};
use shopstream::source::discover::{mtime_micros, Candidate};
use shopstream::validate::{validate, RawFields, Rules};

/// 256 cases (or `PROPTEST_CASES`), and no regression files written into
/// the repo.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const V3_HEADER: &str = "event_id,user_id,session_id,event_type,product_id,product_name,category,price,quantity,user_segment,search_query,event_time,device_type,browser,geo_country,geo_city,referrer,campaign_id";

const V1_HEADER: &str = "event_id,user_id,event_type,product_id,price,event_time";
const V1_LINE: &str =
    "\n0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b,U1,purchase,P1,19.99,2026-01-02 03:04:05\n";
const V3_LINE: &str = "\r\n1b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b,U1,s1,add_to_cart,P1,Desk,Home & Garden,19.99,2,Premium,,2026-01-02T03:04:05+02:00,Mobile,Firefox,DE,Berlin,,c1\r\n";

/// Writes `content` to a file and runs `read_batch` on it in a thread while
/// this one drains the COPY stream, as the sink does.
fn run_parse(content: &[u8], cfg: ParseConfig) -> (FileResult, Vec<u8>) {
    run_parse_named(content, cfg, "events.csv")
}

/// [`run_parse`] of a file named `name` (its name tells its format).
fn run_parse_named(content: &[u8], cfg: ParseConfig, name: &str) -> (FileResult, Vec<u8>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write the input file");
    let md = std::fs::metadata(&path).expect("metadata of the input file");
    let files = vec![Candidate {
        path,
        size: md.len(),
        mtime_micros: mtime_micros(&md),
        file_id: None,
    }];
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(8);
    let parser = std::thread::spawn(move || read_batch(&files, &cfg, &tx));
    // The sink wraps the rows in the COPY header and trailer.
    let mut stream = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    let mut results = vec![];
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Stage(b) => stream.extend_from_slice(&b),
            Chunk::File(r) => results.push(r),
            Chunk::Rows(_) | Chunk::Savepoint(_) => {
                panic!("read_batch sends every row to staging")
            }
        }
    }
    stream.extend_from_slice(&[0xff, 0xff]);
    parser
        .join()
        .expect("read_batch must not panic")
        .expect("the consumer stayed until the end");
    assert_eq!(results.len(), 1, "one result per file");
    (results.remove(0), stream)
}

/// One staging row as decoded from the COPY stream.
#[derive(Debug)]
struct Staged {
    file_no: i32,
    line: i64,
    ok: bool,
    codes: Vec<String>,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("wants {n} bytes, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.array().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.array().map(i32::from_be_bytes)
    }
}

/// Text PostgreSQL accepts: UTF-8 without NUL.
fn pg_text(b: &[u8]) -> Result<&str, String> {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\0') => Ok(s),
        _ => Err(format!("not storable as text: {b:?}")),
    }
}

fn jsonb(b: &[u8]) -> Result<serde_json::Value, String> {
    match b.split_first() {
        Some((1, json)) => serde_json::from_slice(json).map_err(|e| format!("bad jsonb: {e}")),
        _ => Err("jsonb without version 1".into()),
    }
}

/// A one-dimensional `text[]` without NULLs.
fn text_array(b: &[u8]) -> Result<Vec<String>, String> {
    let mut c = Cursor(b);
    let head = [c.i32()?, c.i32()?, c.i32()?];
    if head != [1, 0, 25] {
        return Err(format!("array header {head:?}"));
    }
    let (n, lower) = (c.i32()?, c.i32()?);
    if n < 0 || lower != 1 {
        return Err(format!("array of {n} from {lower}"));
    }
    let mut items = vec![];
    for _ in 0..n {
        let len = usize::try_from(c.i32()?).map_err(|_| "NULL or negative element")?;
        items.push(pg_text(c.take(len)?)?.to_string());
    }
    if !c.0.is_empty() {
        return Err("bytes after the last array element".into());
    }
    Ok(items)
}

/// Staging columns holding text (see `sink::stage::CREATE_STAGE`).
const TEXT_COLUMNS: [usize; 16] = [4, 5, 6, 7, 8, 9, 12, 13, 15, 16, 17, 18, 19, 20, 24, 25];

/// Decodes a whole binary COPY stream, checking every value the way the
/// server would need it.
fn decode_copy(stream: &[u8]) -> Result<Vec<Staged>, String> {
    let mut c = Cursor(stream);
    if c.take(11)? != b"PGCOPY\n\xff\r\n\0" {
        return Err("bad signature".into());
    }
    let (flags, ext) = (c.i32()?, c.i32()?);
    if flags != 0 || ext != 0 {
        return Err(format!("flags {flags}, extension {ext}"));
    }
    let mut rows = vec![];
    loop {
        match c.i16()? {
            -1 => break,
            28 => {}
            n => return Err(format!("row of {n} fields")),
        }
        let mut f: Vec<Option<&[u8]>> = Vec::with_capacity(28);
        for _ in 0..28 {
            f.push(match c.i32()? {
                -1 => None,
                n => Some(c.take(usize::try_from(n).map_err(|_| format!("length {n}"))?)?),
            });
        }
        let fixed = |i: usize, n: usize| match f[i] {
            Some(b) if b.len() == n => Ok(b),
            other => Err(format!("field {i}: {other:?}, expected {n} bytes")),
        };
        let file_no = i32::from_be_bytes(fixed(0, 4)?.try_into().expect("4"));
        let line = i64::from_be_bytes(fixed(1, 8)?.try_into().expect("8"));
        let ok = match fixed(2, 1)? {
            [0] => false,
            [1] => true,
            b => return Err(format!("bool {b:?}")),
        };
        for i in TEXT_COLUMNS {
            f[i].map(pg_text).transpose()?;
        }
        let mut codes = vec![];
        if ok {
            fixed(3, 16)?;
            let t = pg_text(f[6].ok_or("valid row without event_type")?)?;
            let t = EventType::parse(t).ok_or(format!("event_type {t:?}"))?;
            f[7].ok_or("valid row without product_id")?;
            if t.needs_user() && f[4].is_none() {
                return Err(format!("{t} without user_id"));
            }
            if f[10].is_some_and(|p| p.get(4..6) != Some(&[0, 0])) {
                return Err("negative or malformed price".into());
            }
            if i32::from_be_bytes(fixed(11, 4)?.try_into().expect("4")) < 0 {
                return Err("negative quantity".into());
            }
            fixed(14, 8)?;
            fixed(22, 1)?;
            f[23].map(jsonb).transpose()?;
            if f[24..].iter().any(Option::is_some) {
                return Err("valid row with dead-letter columns".into());
            }
        } else {
            if f[3..24].iter().any(Option::is_some) {
                return Err("rejected row with event columns".into());
            }
            f[24].ok_or("rejected row without raw_line")?;
            codes = text_array(f[26].ok_or("rejected row without error_codes")?)?;
            let errors = jsonb(f[27].ok_or("rejected row without errors")?)?;
            if codes.is_empty() || errors.as_array().map(Vec::len) != Some(codes.len()) {
                return Err(format!("codes {codes:?} vs errors {errors}"));
            }
            if let Some(bad) = codes.iter().find(|c| RuleCode::parse(c).is_none()) {
                return Err(format!("unknown rule code {bad:?}"));
            }
        }
        rows.push(Staged {
            file_no,
            line,
            ok,
            codes,
        });
    }
    if !c.0.is_empty() {
        return Err(format!("{} bytes after the trailer", c.0.len()));
    }
    Ok(rows)
}

/// Data records after the header, as the `csv` crate counts them. Like our
/// reader (both drive csv-core with its defaults) it skips empty lines and
/// keeps whitespace-only lines as records, so the counts must agree exactly.
fn csv_count(content: &[u8]) -> u64 {
    let body = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let mut n = 0;
    for rec in r.byte_records() {
        rec.expect("csv reads bytes from memory");
        n += 1;
    }
    n
}

/// Every accounting invariant between a file's outcome and its staged rows.
fn check_accounting(content: &[u8], res: &FileResult, stream: &[u8]) -> Vec<Staged> {
    let rows = decode_copy(stream).unwrap_or_else(|e| panic!("COPY stream: {e}"));
    assert!(rows.iter().all(|r| r.file_no == 1), "one file, file_no 1");
    match &res.outcome {
        FileOutcome::Parsed(p) => {
            assert_eq!(p.rows_read, p.rows_valid + p.rows_rejected);
            assert_eq!(rows.len() as u64, p.rows_read, "one staged row per row");
            assert_eq!(rows.iter().filter(|r| r.ok).count() as u64, p.rows_valid);
            assert_eq!(p.rows_read, csv_count(content), "rows read vs csv crate");
            assert!(rows.first().is_none_or(|r| r.line >= 2), "header is line 1");
            for w in rows.windows(2) {
                assert!(w[0].line < w[1].line, "lines increase: {w:?}");
            }
            let mut codes: BTreeMap<RuleCode, u64> = BTreeMap::new();
            for c in rows.iter().flat_map(|r| &r.codes) {
                *codes
                    .entry(RuleCode::parse(c).expect("checked"))
                    .or_default() += 1;
            }
            assert_eq!(codes, p.rejects_by_code, "codes staged vs counted");
            assert!(codes.values().sum::<u64>() >= p.rows_rejected);
        }
        FileOutcome::Rejected { reason, .. } => assert!(!reason.is_empty()),
        other => panic!("a file nobody touches cannot be {other:?}"),
    }
    rows
}

/// The lines a JSON Lines reader hands out: split at `\n`, without a final
/// `\r`, a BOM dropped from the first, whitespace-only ones skipped.
fn json_line_count(content: &[u8]) -> u64 {
    let mut lines: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    if let Some(first) = lines.first_mut() {
        *first = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    }
    lines
        .iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count() as u64
}

/// Bytes, most of them ones that mean something to JSON.
fn json_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    const SPECIAL: &[u8] = b"{{}}[]\"\"::,,\n\r \\0123456789.-eEtrunl";
    prop::collection::vec(any::<u16>(), 0..max).prop_map(|v| {
        v.into_iter()
            .map(|x| match x.to_le_bytes() {
                [lo, hi] if hi < 200 => SPECIAL[usize::from(lo) % SPECIAL.len()],
                [lo, _] => lo,
            })
            .collect()
    })
}

const JSON_LINE: &str = "\n{\"event_id\":\"0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b\",\"user_id\":\"U1\",\"event_type\":\"purchase\",\"product_id\":7,\"price\":19.99,\"event_time\":\"2026-01-02 03:04:05\",\"x\":{\"y\":[1]}}\n";

/// Bytes, three in five of them ones that mean something to CSV. (Mapped
/// from `u16`s: a union strategy per byte is far slower to generate.)
fn csv_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    const SPECIAL: &[u8] = b",,,\"\r\n\n\0 .-:0123456789abT";
    prop::collection::vec(any::<u16>(), 0..max).prop_map(|v| {
        v.into_iter()
            .map(|x| match x.to_le_bytes() {
                [lo, hi] if hi < 154 => SPECIAL[usize::from(lo) % SPECIAL.len()],
                [lo, _] => lo,
            })
            .collect()
    })
}

/// A past event time (2000 to 2024) in one of the accepted spellings.
fn timestamp() -> impl Strategy<Value = String> {
    const FORMS: [&str; 5] = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S%.6f+00:00",
        "%Y-%m-%dT%H:%M:%S-05:30",
        "%Y-%m-%d %H:%M:%S.5",
    ];
    (
        946_684_800i64..1_735_689_600,
        0..1_000_000u32,
        0..FORMS.len(),
    )
        .prop_map(|(s, us, form)| {
            let t = chrono::DateTime::from_timestamp(s, us * 1000).expect("in range");
            t.format(FORMS[form]).to_string()
        })
}

/// A value every rule accepts for the column, whatever the event type.
fn valid(col: Target) -> BoxedStrategy<String> {
    match col {
        Target::Field(Field::EventId) => any::<[u8; 16]>()
            .prop_map(|b| uuid::Uuid::from_bytes(b).to_string())
            .boxed(),
        Target::Field(Field::UserId) => "U[0-9]{6}|[1-9][0-9]{0,3}(\\.0)?".boxed(),
        Target::Field(Field::EventType) => {
            (prop::sample::select(EventType::ALL.to_vec()), any::<bool>())
                .prop_map(|(t, loud)| match loud {
                    true => format!(" {} ", t.as_str().to_uppercase()),
                    false => t.as_str().to_string(),
                })
                .boxed()
        }
        Target::Field(Field::ProductId) | Target::ProductIdAndName => {
            "P?[0-9]{1,6}|[a-z]{3,10}".boxed()
        }
        Target::Field(Field::Price) => prop_oneof![
            (1i64..=1_000_000).prop_map(|c| format!("{}.{:02}", c / 100, c % 100)),
            (1u32..10_000).prop_map(|p| p.to_string()),
        ]
        .boxed(),
        Target::Field(Field::Quantity) => (1u32..100).prop_map(|q| q.to_string()).boxed(),
        Target::Field(Field::EventTime) => timestamp().boxed(),
        _ => prop_oneof!["[a-zA-Z0-9 _&-]{0,12}", "\\PC{0,12}", "[a-z,\"\r\n ]{0,10}"].boxed(),
    }
}

/// Values on the edge of what the column's rule accepts, `|`-separated.
fn edge(col: Target) -> BoxedStrategy<String> {
    let v = match col {
        Target::Field(Field::EventId) => {
            "{0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b}|urn:uuid:0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b|\
             0b6f1c2e5d3a4f8e9a1b2c3d4e5f6a7b|0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7"
        }
        Target::Field(Field::EventType) => "add-to-cart|click|VIEW\u{a0}",
        Target::Field(Field::Price) => {
            "0|-0|0.005|-0.01|10000.00|10000.005|1e3|+.5|.|-|99999999999999999999|\
             -99999999999999999999.5|9223372036854775807"
        }
        Target::Field(Field::Quantity) => "0|+0|2147483647|2147483648|-1|+|1.0",
        Target::Field(Field::EventTime) => {
            "2099-01-01T00:00:00Z|0000-01-01 00:00:00-23:59|9999-12-31T23:59:59.999999999+23:59|\
             2023-02-29 12:00:00|2024-01-01T00:00:00.+01|2024-01-01 00:00:60|\
             2024-01-01T00:00:0\u{e9}|\u{ff12}024-01-01 00:00:00"
        }
        _ => "512.0|-3.00|0.|.0| |\u{feff}",
    };
    prop::sample::select(v.split('|').map(str::to_string).collect::<Vec<_>>()).boxed()
}

/// Valid values mixed with empty, malformed, quoted, unicode and long ones.
fn mixed(col: Target) -> BoxedStrategy<String> {
    prop_oneof![
        4 => valid(col),
        1 => Just(String::new()),
        2 => edge(col),
        1 => "[a-zA-Z0-9.:+ -]{1,12}",
        1 => "[a-z,\"\r\n ]{1,10}",
        1 => "\\PC{1,16}",
        1 => (500usize..3000, prop::sample::select(vec!["x", "\u{e9}", "\"", ",", "\n"]))
            .prop_map(|(n, s)| s.repeat(n)),
        1 => Just("a\0b".to_string()),
    ]
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Header {
    Exact,
    /// The layout's columns plus one it does not know (kept in `extra`).
    PlusUnknown,
    /// One column short: another layout or none may match.
    MissingOne,
}

#[derive(Debug, Clone)]
struct CsvFile {
    layout: LayoutId,
    mode: Header,
    header: Vec<String>,
    /// Each row's values and whether they are all valid.
    rows: Vec<(Vec<String>, bool)>,
    eol: &'static str,
    bom: bool,
    final_eol: bool,
}

/// Line breaks as the reader counts them: `\n`, `\r\n` or a lone `\r`.
fn line_breaks(b: &[u8]) -> u64 {
    let crlf = b.windows(2).filter(|w| w == b"\r\n").count();
    (b.iter().filter(|&&c| c == b'\r' || c == b'\n').count() - crlf) as u64
}

impl CsvFile {
    /// The file's bytes and the line each data row starts on.
    fn render(&self) -> (Vec<u8>, Vec<i64>) {
        let mut out = Vec::new();
        if self.bom {
            out.extend_from_slice(b"\xEF\xBB\xBF");
        }
        let start = out.len();
        out.extend_from_slice(self.header.join(",").as_bytes());
        let mut lines = vec![];
        for (row, _) in &self.rows {
            out.extend_from_slice(self.eol.as_bytes());
            lines.push(1 + line_breaks(&out[start..]) as i64);
            let cells: Vec<String> = row
                .iter()
                .map(|f| {
                    // A lone empty field is quoted: unquoted it would be an
                    // empty line, which csv-core (so both our reader and the
                    // csv crate) skips. No layout is that narrow anyway.
                    if f.contains([',', '"', '\r', '\n']) || (f.is_empty() && row.len() == 1) {
                        format!("\"{}\"", f.replace('"', "\"\""))
                    } else {
                        f.clone()
                    }
                })
                .collect();
            out.extend_from_slice(cells.join(",").as_bytes());
        }
        if self.final_eol {
            out.extend_from_slice(self.eol.as_bytes());
        }
        (out, lines)
    }
}

fn csv_file() -> impl Strategy<Value = CsvFile> {
    let modes = prop::sample::select(vec![Header::Exact, Header::PlusUnknown, Header::MissingOne]);
    let layouts = prop::sample::select(LayoutId::ALL.to_vec());
    (layouts, modes, any::<prop::sample::Index>()).prop_flat_map(|(layout, mode, gone)| {
        let mut cols: Vec<(&str, Target)> = (layout.spec().columns.iter())
            .map(|c| (c.name, c.target))
            .collect();
        match mode {
            Header::Exact => {}
            Header::PlusUnknown => cols.push(("zz_unknown", Target::Extra)),
            Header::MissingOne => drop(cols.remove(gone.index(cols.len()))),
        }
        Just(cols).prop_shuffle().prop_flat_map(move |cols| {
            let valid_row: Vec<_> = cols.iter().map(|c| valid(c.1)).collect();
            let mixed_row: Vec<_> = cols.iter().map(|c| mixed(c.1)).collect();
            let row = prop_oneof![
                2 => valid_row.prop_map(|r| (r, true)),
                2 => mixed_row.clone().prop_map(|r| (r, false)),
                1 => (mixed_row, any::<bool>()).prop_map(|(mut r, longer)| {
                    match longer {
                        true => r.push("surplus".into()),
                        false => drop(r.pop()),
                    }
                    (r, false)
                }),
            ];
            let header: Vec<_> = cols.iter().map(|c| spelled(c.0)).collect();
            let eol = prop::sample::select(vec!["\n", "\r\n"]);
            let rows = prop::collection::vec(row, 0..40);
            (header, rows, eol, any::<bool>(), any::<bool>()).prop_map(
                move |(header, rows, eol, bom, final_eol)| CsvFile {
                    layout,
                    mode,
                    header,
                    rows,
                    eol,
                    bom,
                    final_eol,
                },
            )
        })
    })
}

/// A header cell naming `name`: in any ASCII case, maybe padded with spaces.
fn spelled(name: &str) -> impl Strategy<Value = String> {
    let name = name.to_string();
    (0u8..3, any::<bool>()).prop_map(move |(case, pad)| {
        let n = match case {
            0 => name.clone(),
            1 => name.to_uppercase(),
            _ => name[..1].to_uppercase() + &name[1..],
        };
        if pad {
            format!("  {n} ")
        } else {
            n
        }
    })
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: arbitrary bytes, bare or after a real header, with now
    /// and then a valid line spliced in.
    #[test]
    fn arbitrary_bytes_are_accounted_for(
        bom in prop::sample::select(vec![&b""[..], b"", b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"]),
        header in prop::sample::select(vec!["", V1_HEADER, V3_HEADER, V3_HEADER]),
        end in prop::sample::select(vec!["\n", "\r\n", "\r"]),
        body in prop::collection::vec(prop_oneof![
            4 => csv_bytes(512),
            1 => prop::sample::select(vec![V1_LINE, V3_LINE]).prop_map(|l| l.as_bytes().to_vec()),
        ], 0..16),
        small_limit in prop::bool::weighted(0.2),
    ) {
        let mut content = bom.to_vec();
        if !header.is_empty() {
            content.extend_from_slice(header.as_bytes());
            content.extend_from_slice(end.as_bytes());
        }
        content.extend(body.concat());
        let cfg = ParseConfig {
            max_record_bytes: if small_limit { 64 } else { 1 << 20 },
            ..ParseConfig::default()
        };
        let (res, stream) = run_parse(&content, cfg);
        check_accounting(&content, &res, &stream);
    }

    /// Property 2: CSV-shaped files from a real layout's header.
    #[test]
    fn csv_rows_are_all_read_and_valid_ones_accepted(file in csv_file()) {
        let (content, lines) = file.render();
        prop_assert_eq!(csv_count(&content), file.rows.len() as u64, "csv crate reads every row");
        let (res, stream) = run_parse(&content, ParseConfig::default());
        let staged = check_accounting(&content, &res, &stream);
        let exact = file.mode != Header::MissingOne;
        match &res.outcome {
            FileOutcome::Parsed(p) => {
                if exact {
                    prop_assert_eq!(p.layout, Some(file.layout.into()));
                    let unknown = usize::from(file.mode == Header::PlusUnknown);
                    prop_assert_eq!(p.unknown_columns.len(), unknown);
                }
                prop_assert_eq!(p.rows_read, file.rows.len() as u64);
                let got: Vec<i64> = staged.iter().map(|r| r.line).collect();
                prop_assert_eq!(got, lines);
                for (i, ((_, valid), row)) in file.rows.iter().zip(&staged).enumerate() {
                    prop_assert!(!exact || !valid || row.ok, "row {} is valid: {:?}", i, row.codes);
                }
                if exact && file.rows.iter().all(|r| r.1) {
                    prop_assert_eq!(p.rows_rejected, 0);
                }
            }
            // A header missing a column may match no layout.
            FileOutcome::Rejected { reason, .. }
                if !exact && reason.contains("matches no known layout") =>
            {
                prop_assert!(staged.is_empty());
            }
            // A usable header with no rows is a poison file.
            FileOutcome::Rejected { reason, .. } if file.rows.is_empty() => {
                prop_assert_eq!(reason, "the file has a header but no data rows");
                prop_assert!(staged.is_empty());
            }
            other => prop_assert!(false, "a full {} header must parse: {:?}", file.layout, other),
        }
    }

    /// Property 4: JSON Lines, plain or compressed.
    #[test]
    fn json_lines_and_compressed_bytes_are_accounted_for(
        body in prop::collection::vec(prop_oneof![
            3 => json_bytes(256),
            2 => Just(JSON_LINE.as_bytes().to_vec()),
        ], 0..12),
        gz in any::<bool>(),
        cut in prop::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        use std::io::Write as _;
        let plain = body.concat();
        let (name, content) = if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&plain).expect("gzip into memory");
            let mut z = e.finish().expect("gzip into memory");
            if let Some(at) = cut {
                z.truncate(at.index(z.len()));
            }
            ("events.jsonl.gz", z)
        } else {
            ("events.jsonl", plain.clone())
        };
        let (res, stream) = run_parse_named(&content, ParseConfig::default(), name);
        let rows = decode_copy(&stream).unwrap_or_else(|e| panic!("COPY stream: {e}"));
        match &res.outcome {
            FileOutcome::Parsed(p) => {
                prop_assert_eq!(p.rows_read, p.rows_valid + p.rows_rejected);
                prop_assert_eq!(rows.len() as u64, p.rows_read, "one staged row per line");
                prop_assert_eq!(p.rows_read, json_line_count(&plain));
                prop_assert!(rows.first().is_none_or(|r| r.line >= 1));
                for w in rows.windows(2) {
                    prop_assert!(w[0].line < w[1].line, "lines increase: {:?}", w);
                }
            }
            FileOutcome::Rejected { reason, .. } => prop_assert!(!reason.is_empty()),
            other => panic!("a file nobody touches cannot be {other:?}"),
        }
    }

    /// Property 3: `validate` on any values, present or not.
    #[test]
    fn validate_never_panics_and_is_consistent(
        values in Field::ALL.map(|f| prop_oneof![
            12 => valid(Target::Field(f)).prop_map(Some),
            2 => mixed(Target::Field(f)).prop_map(Some),
            1 => ".*".prop_map(Some),
            1 => Just(None),
        ]),
        max_price_cents in prop_oneof![Just(1_000_000i64), 0i64..=100_000_000],
        future_tolerance_micros in prop_oneof![Just(60_000_000i64), 0i64..=i64::MAX / 2],
        late_threshold_micros in any::<i64>(),
        source_zone in prop_oneof![Just(None), Just(Some(chrono_tz::Europe::Berlin))],
        max_age_micros in prop_oneof![Just(None), (0i64..=i64::MAX / 2).prop_map(Some)],
    ) {
        let rules = Rules {
            max_price_cents,
            future_tolerance_micros,
            late_threshold_micros,
            source_zone,
            max_age_micros,
            ..Rules::default()
        };
        let raw: RawFields<'_> = std::array::from_fn(|i| values[i].as_deref());
        let now = 1_795_256_430_000_000; // 2026-11-21T10:20:30Z
        let present = |f: Field| raw[f.index()].is_some_and(|v| !v.trim().is_empty());
        match validate(&raw, now, &rules) {
            Ok(ev) => {
                for f in [Field::EventId, Field::EventType, Field::ProductId, Field::EventTime] {
                    prop_assert!(present(f), "{:?} is required", f);
                }
                let t = ev.event_type;
                prop_assert!(!t.needs_user() || ev.user_id.is_some_and(|u| !u.is_empty()));
                prop_assert!(ev.quantity >= i32::from(t == EventType::Purchase));
                prop_assert!(ev.price_cents.is_none_or(|c| (0..=max_price_cents).contains(&c)));
                if t.needs_price() && raw[Field::Price.index()].is_some() {
                    prop_assert!(ev.price_cents.is_some_and(|c| c > 0));
                }
                let total = match t.needs_price() {
                    true => i128::from(ev.price_cents.unwrap_or(0)) * i128::from(ev.quantity),
                    false => 0,
                };
                prop_assert_eq!(i128::from(ev.total_cents), total);
                prop_assert!(total < 10i128.pow(18), "total_amount is numeric(18,2)");
                prop_assert!(ev.event_time - now <= future_tolerance_micros);
                prop_assert_eq!(ev.is_late_arrival, now - ev.event_time > late_threshold_micros);
            }
            Err(fails) => {
                prop_assert!(!fails.is_empty());
                for f in &fails {
                    prop_assert!(Field::from_header(f.column).is_some(), "{:?}", f);
                    prop_assert!(f.value.len() <= 203, "values are cut at 200 bytes");
                }
            }
        }
    }
}
