//! Turning events into CSV rows and publishing files atomically.
//!
//! Owns the row encoding of every layout (column names and order from the
//! schema registry, [`shopstream_core::schema::LayoutId::spec`]; nulls as empty
//! fields) and the publish protocol. shopstream's own layouts (v1–v3) write
//! integers without `.0`, prices with two decimals and times as
//! `YYYY-MM-DDTHH:MM:SS.mmmZ`; the seed layouts write their systems' forms
//! (`USER_000123`, `Home & Garden`, `12.5`, `512.0`, `2026-11-21 10:20:30`,
//! `…T10:20:30.123000+00:00`, see [`RowEncoder::encode`]). Publishing: write
//! `.<name>.tmp` in the output folder, `sync_all`, rename to `<name>`, fsync
//! the folder. This module must never let a reader see a partial file under
//! a final name, never overwrite an existing file, and never leave its temp
//! file behind when a write fails.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use csv::ByteRecord;
use md5::{Digest, Md5};
use uuid::Uuid;

use super::catalogue::{Catalogue, Product};
use super::error::GenerateError;
use super::model::{Event, SeedSession, TimeCell, TypeCell};
use super::output::RowWriter;
use shopstream_core::event::Field;
use shopstream_core::schema::{LayoutId, Target};
use shopstream_core::source::format::Format;

/// Seed 002's whole product range; model product `i` is `SEED002_PRODUCTS[i % 4]`.
pub const SEED002_PRODUCTS: [&str; 4] = ["laptop", "headphones", "keyboard", "mouse"];
/// Seed 002's users are 1001..=1010; model user `u` is `1001 + (u - 1) % 10`.
pub const SEED002_FIRST_USER: u32 = 1001;

/// The header row of `layout`: the registry's column names, in order.
pub fn header(layout: LayoutId) -> ByteRecord {
    layout.spec().columns.iter().map(|c| c.name).collect()
}

/// Encodes events as rows of one layout, reusing one record and one
/// scratch buffer for every row.
#[derive(Debug)]
pub struct RowEncoder {
    layout: LayoutId,
    record: ByteRecord,
    scratch: Vec<u8>,
}

impl RowEncoder {
    pub fn new(layout: LayoutId) -> RowEncoder {
        RowEncoder {
            layout,
            record: ByteRecord::with_capacity(512, layout.spec().columns.len()),
            scratch: Vec::with_capacity(64),
        }
    }

    /// Encodes `event` into the reused record and returns it. With
    /// `float_user_ids` (seed 003 only: some row of the file has no user),
    /// user ids are written as pandas writes a float column: `512.0`.
    ///
    /// Per layout: v1–v3 write the model's values; seed 000 `USER_%06d`,
    /// `PROD_%06d`, Title Case categories, second-precision times and an
    /// event id that is the MD5 of `<user_id>_<product_id>_<time>`; seed 001
    /// integer ids, whole-number prices and `T` times without zone; seed 002
    /// users 1001–1010 and four product names; seed 003 integer ids,
    /// Python-style float prices, `+00:00` times with microseconds and
    /// `source_system` `web`; seed 004 integer ids and second-precision
    /// times.
    pub fn encode(
        &mut self,
        e: &Event,
        catalogue: &Catalogue,
        float_user_ids: bool,
    ) -> &ByteRecord {
        let layout = self.layout;
        let RowEncoder {
            record, scratch, ..
        } = self;
        record.clear();
        let product = catalogue.product(e.product);
        let event_id = match (layout, e.event_id) {
            (_, None) => None,
            (LayoutId::Seed000, Some(_)) => Some(seed000_event_id(e, scratch)),
            (_, Some(id)) => Some(id),
        };
        let cell = Cell {
            layout,
            event: e,
            event_id,
            product,
            float_user_ids,
        };
        for column in layout.spec().columns {
            scratch.clear();
            match column.target {
                Target::Field(f) => cell.write(f, scratch),
                Target::ProductIdAndName => push_product_id(layout, e.product, product, scratch),
                Target::Extra => scratch.extend_from_slice(extra_value(column.name).as_bytes()),
                // Only declared layouts drop columns; none is generated.
                Target::Drop => {}
            }
            record.push_field(scratch);
        }
        record
    }
}

/// Everything one row's cells are made from.
struct Cell<'a> {
    layout: LayoutId,
    event: &'a Event,
    event_id: Option<Uuid>,
    product: &'a Product,
    float_user_ids: bool,
}

impl Cell<'_> {
    fn write(&self, field: Field, out: &mut Vec<u8>) {
        let (layout, e) = (self.layout, self.event);
        let mut num = [0u8; 24];
        match field {
            Field::EventId => {
                if let Some(id) = self.event_id {
                    push_uuid(id, out);
                }
            }
            Field::UserId => {
                if let Some(u) = e.user {
                    push_user_id(layout, u, self.float_user_ids, out);
                }
            }
            Field::SessionId => match e.seed_session {
                SeedSession::Model => out.extend_from_slice(&e.session_id),
                SeedSession::Bucket { user, bucket } => {
                    let _ = write!(out, "{user}-{bucket}");
                }
                SeedSession::Guest { bucket, n } => {
                    let _ = write!(out, "guest-{bucket}-{n}");
                }
                SeedSession::Uuid(id) => push_uuid(id, out),
            },
            Field::EventType => match e.event_type {
                TypeCell::Known(t) => out.extend_from_slice(t.as_str().as_bytes()),
                TypeCell::Unknown(t) => out.extend_from_slice(t.as_bytes()),
            },
            Field::ProductId => push_product_id(layout, e.product, self.product, out),
            Field::ProductName => {
                // Seed 001's names are single words, not catalogue titles.
                let name = match layout {
                    LayoutId::Seed001 => self.product.query,
                    _ => &self.product.name,
                };
                out.extend_from_slice(name.as_bytes());
            }
            Field::Category => {
                let c = self.product.category;
                let name = match layout {
                    LayoutId::Seed000 => c.title(),
                    _ => c.as_str(),
                };
                out.extend_from_slice(name.as_bytes());
            }
            Field::Price => {
                if let Some(c) = e.price_cents {
                    push_price(layout, c, out);
                }
            }
            Field::Quantity => {
                out.extend_from_slice(format_uint(u64::from(e.quantity), 1, &mut num));
            }
            Field::UserSegment => out.extend_from_slice(e.segment.as_str().as_bytes()),
            Field::SearchQuery => out.extend_from_slice(e.search_query.unwrap_or("").as_bytes()),
            Field::EventTime => match &e.time {
                TimeCell::Millis(ms) => push_time(layout, *ms, out),
                TimeCell::Text(t) => out.extend_from_slice(t.as_bytes()),
            },
            Field::DeviceType => out.extend_from_slice(e.device.as_bytes()),
            Field::Browser => out.extend_from_slice(e.browser.as_bytes()),
            Field::GeoCountry => out.extend_from_slice(e.country.as_bytes()),
            Field::GeoCity => out.extend_from_slice(e.city.as_bytes()),
            Field::Referrer => out.extend_from_slice(e.referrer.as_bytes()),
            Field::CampaignId => out.extend_from_slice(e.campaign.unwrap_or("").as_bytes()),
        }
    }
}

/// The value of a column kept in `extra` (only seed 003's `source_system`).
fn extra_value(column: &str) -> &'static str {
    if column.eq_ignore_ascii_case("source_system") {
        "web"
    } else {
        ""
    }
}

fn push_uuid(id: Uuid, out: &mut Vec<u8>) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
}

/// Seed 000's event id: the MD5 digest of `<user_id>_<product_id>_<time>`
/// (the cells as written) taken as a UUID. Uses `scratch`.
fn seed000_event_id(e: &Event, scratch: &mut Vec<u8>) -> Uuid {
    scratch.clear();
    if let Some(u) = e.user {
        push_user_id(LayoutId::Seed000, u, false, scratch);
    }
    scratch.push(b'_');
    scratch.extend_from_slice(b"PROD_");
    let mut num = [0u8; 24];
    scratch.extend_from_slice(format_uint(u64::from(e.product) + 1, 6, &mut num));
    scratch.push(b'_');
    match &e.time {
        TimeCell::Millis(ms) => push_time(LayoutId::Seed000, *ms, scratch),
        TimeCell::Text(t) => scratch.extend_from_slice(t.as_bytes()),
    }
    let digest: [u8; 16] = Md5::digest(scratch.as_slice()).into();
    Uuid::from_bytes(digest)
}

fn push_user_id(layout: LayoutId, user: u32, float: bool, out: &mut Vec<u8>) {
    let mut num = [0u8; 24];
    match layout {
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 => {
            out.extend_from_slice(format_user_id(user, &mut num))
        }
        LayoutId::Seed000 => {
            out.extend_from_slice(b"USER_");
            out.extend_from_slice(format_uint(u64::from(user), 6, &mut num));
        }
        LayoutId::Seed002 => {
            let u = SEED002_FIRST_USER + user.saturating_sub(1) % 10;
            out.extend_from_slice(format_uint(u64::from(u), 1, &mut num));
        }
        LayoutId::Seed001 | LayoutId::Seed003 | LayoutId::Seed004 => {
            out.extend_from_slice(format_uint(u64::from(user), 1, &mut num));
            if float {
                out.extend_from_slice(b".0");
            }
        }
    }
}

fn push_product_id(layout: LayoutId, index: u32, product: &Product, out: &mut Vec<u8>) {
    let mut num = [0u8; 24];
    match layout {
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 => out.extend_from_slice(product.id.as_bytes()),
        LayoutId::Seed000 => {
            out.extend_from_slice(b"PROD_");
            out.extend_from_slice(format_uint(u64::from(index) + 1, 6, &mut num));
        }
        LayoutId::Seed002 => out.extend_from_slice(SEED002_PRODUCTS[index as usize % 4].as_bytes()),
        LayoutId::Seed001 | LayoutId::Seed003 | LayoutId::Seed004 => {
            out.extend_from_slice(format_uint(u64::from(index) + 1, 1, &mut num))
        }
    }
}

fn push_price(layout: LayoutId, cents: i64, out: &mut Vec<u8>) {
    let mut num = [0u8; 24];
    match layout {
        LayoutId::Seed001 => {
            // A whole number, rounded away from zero so that a broken price
            // stays negative or above the maximum.
            let whole = cents.unsigned_abs().div_ceil(100);
            if cents < 0 {
                out.push(b'-');
            }
            out.extend_from_slice(format_uint(whole, 1, &mut num));
        }
        LayoutId::Seed003 => push_python_float(cents, out),
        _ => out.extend_from_slice(format_cents(cents, &mut num)),
    }
}

/// Cents as Python's `repr` of the float `round(x, 2)`: `12.5`, `100.0`,
/// `19.99`, `-0.05`.
fn push_python_float(cents: i64, out: &mut Vec<u8>) {
    let mut num = [0u8; 24];
    let abs = cents.unsigned_abs();
    if cents < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(format_uint(abs / 100, 1, &mut num));
    out.push(b'.');
    let frac = abs % 100;
    if frac % 10 == 0 {
        out.push(b'0' + (frac / 10) as u8);
    } else {
        out.extend_from_slice(format_uint(frac, 2, &mut num));
    }
}

/// A clock value in `layout`'s time format (all UTC).
fn push_time(layout: LayoutId, ms: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 24];
    // YYYY-MM-DDTHH:MM:SS.mmmZ
    let iso = format_iso_millis(ms, &mut buf);
    match layout {
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 => out.extend_from_slice(iso),
        LayoutId::Seed000 | LayoutId::Seed002 | LayoutId::Seed004 => {
            out.extend_from_slice(&iso[..10]);
            out.push(b' ');
            out.extend_from_slice(&iso[11..19]);
        }
        LayoutId::Seed001 => out.extend_from_slice(&iso[..19]),
        LayoutId::Seed003 => {
            out.extend_from_slice(&iso[..23]);
            out.extend_from_slice(b"000+00:00");
        }
    }
}

/// `v` in decimal, zero-padded to at least `width` digits (≤ 20).
fn format_uint(mut v: u64, width: usize, buf: &mut [u8; 24]) -> &[u8] {
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 && buf.len() - pos >= width.min(20) {
            break;
        }
    }
    &buf[pos..]
}

/// `U000123`.
fn format_user_id(user: u32, buf: &mut [u8; 24]) -> &[u8] {
    let len = format_uint(u64::from(user), 6, buf).len();
    let start = buf.len() - len - 1;
    buf[start] = b'U';
    &buf[start..]
}

/// Cents as a decimal with two places: `1234` → `12.34`, `-5` → `-0.05`.
fn format_cents(cents: i64, buf: &mut [u8; 24]) -> &[u8] {
    let abs = cents.unsigned_abs();
    let len = format_uint(abs, 3, buf).len();
    // Shift the last two digits right by one to make room for the point.
    let end = buf.len();
    let start = end - len;
    let mut out = [0u8; 24];
    let mut n = 0;
    if cents < 0 {
        out[0] = b'-';
        n = 1;
    }
    for (i, &d) in buf[start..end].iter().enumerate() {
        if i == len - 2 {
            out[n] = b'.';
            n += 1;
        }
        out[n] = d;
        n += 1;
    }
    buf[..n].copy_from_slice(&out[..n]);
    &buf[..n]
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (years are
/// clamped to 0000..=9999; the generator validates its clock range).
pub fn format_iso_millis(ms: i64, buf: &mut [u8; 24]) -> &[u8] {
    const DAY: i64 = 86_400_000;
    let days = ms.div_euclid(DAY);
    let rem = ms.rem_euclid(DAY);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);

    let parts = [
        (year, 4usize, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (rem / 3_600_000, 2, b':'),
        (rem / 60_000 % 60, 2, b':'),
        (rem / 1000 % 60, 2, b'.'),
        (rem % 1000, 3, b'Z'),
    ];
    let mut pos = 0;
    for (value, width, sep) in parts {
        let mut v = value;
        for i in (0..width).rev() {
            buf[pos + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        pos += width;
        buf[pos] = sep;
        pos += 1;
    }
    &buf[..pos]
}

/// The output folder of one run and its file-naming scheme:
/// `events_<run start yyyymmddTHHMMSSZ>_<run id>_<6-digit sequence>.csv`
/// (`.jsonl`, `.csv.gz`, … as `--format` and `--compress` say).
#[derive(Debug, Clone)]
pub struct OutputDir {
    dir: PathBuf,
    prefix: String,
    layout: LayoutId,
    format: Format,
}

impl OutputDir {
    /// Creates the folder if missing. Files hold `layout`'s columns, in
    /// `format`.
    pub fn prepare(
        dir: &Path,
        run_start: DateTime<Utc>,
        run_id: &str,
        layout: LayoutId,
        format: Format,
    ) -> Result<OutputDir, GenerateError> {
        fs::create_dir_all(dir).map_err(|source| GenerateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            prefix: format!("events_{}_{}_", run_start.format("%Y%m%dT%H%M%SZ"), run_id),
            layout,
            format,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn file_name(&self, seq: u64) -> String {
        format!("{}{seq:06}{}", self.prefix, self.format.suffix())
    }

    /// Starts file number `seq`: creates its hidden temp file (and writes
    /// the CSV header).
    pub fn begin(&self, seq: u64) -> Result<PendingFile, GenerateError> {
        let name = self.file_name(seq);
        let final_path = self.dir.join(&name);
        let temp_path = self.dir.join(format!(".{name}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|source| GenerateError::Io {
                path: temp_path.clone(),
                source,
            })?;
        let writer = RowWriter::new(file, self.format, self.layout, &temp_path)?;
        Ok(PendingFile {
            name,
            dir: self.dir.clone(),
            final_path,
            temp_path,
            writer: Some(writer),
            published: false,
        })
    }
}

/// A file being written under its hidden temp name. Dropping it without
/// [`PendingFile::commit`] deletes the temp file.
#[derive(Debug)]
pub struct PendingFile {
    name: String,
    dir: PathBuf,
    final_path: PathBuf,
    temp_path: PathBuf,
    writer: Option<RowWriter>,
    published: bool,
}

impl PendingFile {
    pub fn write(&mut self, record: &ByteRecord) -> Result<(), GenerateError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        writer.write(record, &self.temp_path)
    }

    /// Flushes and syncs the temp file, renames it to its final name and
    /// syncs the folder. Returns the final file name.
    pub fn commit(mut self) -> Result<String, GenerateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| GenerateError::Io { path, source }
        };
        if let Some(writer) = self.writer.take() {
            let file = writer.finish().map_err(io(&self.temp_path))?;
            file.sync_all().map_err(io(&self.temp_path))?;
        }
        if fs::symlink_metadata(&self.final_path).is_ok() {
            return Err(GenerateError::AlreadyExists {
                path: self.final_path.clone(),
            });
        }
        fs::rename(&self.temp_path, &self.final_path).map_err(|source| GenerateError::Rename {
            from: self.temp_path.clone(),
            to: self.final_path.clone(),
            source,
        })?;
        self.published = true;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| GenerateError::SyncDir {
                path: self.dir.clone(),
                source,
            })?;
        Ok(std::mem::take(&mut self.name))
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.published {
            // Close before removing; errors cannot be reported from drop and
            // the file is hidden anyway.
            self.writer = None;
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, Need};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn iso_matches_chrono() {
        let mut buf = [0u8; 24];
        for ms in [
            0i64,
            1_795_255_200_123,
            951_782_400_000, // 2000-02-29
            4_102_444_799_999,
            1_700_000_000_001,
            86_399_999,
        ] {
            let ours = std::str::from_utf8(format_iso_millis(ms, &mut buf))
                .unwrap()
                .to_string();
            let theirs = DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            assert_eq!(ours, theirs);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..10_000 {
            let ms = rand::Rng::random_range(&mut rng, 0..4_102_444_800_000i64);
            let ours = String::from_utf8(format_iso_millis(ms, &mut buf).to_vec()).unwrap();
            let back = DateTime::parse_from_rfc3339(&ours).unwrap();
            assert_eq!(back.timestamp_millis(), ms);
        }
    }

    #[test]
    fn numbers_are_plain() {
        let mut b = [0u8; 24];
        assert_eq!(format_cents(1234, &mut b), b"12.34");
        assert_eq!(format_cents(99, &mut b), b"0.99");
        assert_eq!(format_cents(5, &mut b), b"0.05");
        assert_eq!(format_cents(-5, &mut b), b"-0.05");
        assert_eq!(format_cents(-123_456, &mut b), b"-1234.56");
        assert_eq!(format_cents(9_999_999, &mut b), b"99999.99");
        assert_eq!(format_cents(500_000, &mut b), b"5000.00");
        assert_eq!(format_uint(0, 1, &mut b), b"0");
        assert_eq!(format_uint(3, 1, &mut b), b"3");
        assert_eq!(format_user_id(123, &mut b), b"U000123");
        assert_eq!(format_user_id(20_000, &mut b), b"U020000");
    }

    #[test]
    fn rows_have_all_columns_in_order() {
        let cat = Catalogue::standard();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut model = Model::new(cat, 10.0);
        let mut enc = RowEncoder::new(LayoutId::V3);
        for _ in 0..1000 {
            let e = model.next_event(&mut rng, 1_795_255_200_000, Need::Any, None);
            let rec = enc.encode(&e, cat, false);
            assert_eq!(rec.len(), Field::ALL.len());
            let get = |f: Field| std::str::from_utf8(&rec[f.index()]).unwrap();
            assert_eq!(get(Field::EventId), e.event_id.unwrap().to_string());
            assert_eq!(get(Field::EventTime), "2026-11-21T10:00:00.000Z");
            assert_eq!(get(Field::ProductId), cat.product(e.product).id);
            assert!(!get(Field::Quantity).contains('.'));
            if !get(Field::Price).is_empty() {
                let p: f64 = get(Field::Price).parse().unwrap();
                assert!(p > 0.0);
            }
        }
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn seed_values_have_the_seed_forms() {
        let py = |c| text(|o| push_python_float(c, o));
        assert_eq!(py(1250), "12.5");
        assert_eq!(py(10_000), "100.0");
        assert_eq!(py(1999), "19.99");
        assert_eq!(py(-5), "-0.05");
        assert_eq!(py(0), "0.0");
        assert_eq!(py(-1000), "-10.0");
        assert_eq!(py(9_999_999), "99999.99");
        let whole = |c| text(|o| push_price(LayoutId::Seed001, c, o));
        assert_eq!(whole(4200), "42");
        assert_eq!(whole(0), "0");
        assert_eq!(whole(-2999), "-30");
        assert_eq!(whole(-1), "-1");
        assert_eq!(whole(1_000_001), "10001");
        assert_eq!(text(|o| push_price(LayoutId::Seed004, 1000, o)), "10.00");

        let ms = 1_795_256_430_123; // 2026-11-21T10:20:30.123Z
        let time = |l| text(|o| push_time(l, ms, o));
        assert_eq!(time(LayoutId::V1), "2026-11-21T10:20:30.123Z");
        for l in [LayoutId::Seed000, LayoutId::Seed002, LayoutId::Seed004] {
            assert_eq!(time(l), "2026-11-21 10:20:30");
        }
        assert_eq!(time(LayoutId::Seed001), "2026-11-21T10:20:30");
        assert_eq!(time(LayoutId::Seed003), "2026-11-21T10:20:30.123000+00:00");

        let user = |l, u, float| text(|o| push_user_id(l, u, float, o));
        assert_eq!(user(LayoutId::V2, 42, false), "U000042");
        assert_eq!(user(LayoutId::Seed000, 42, false), "USER_000042");
        assert_eq!(user(LayoutId::Seed001, 42, false), "42");
        assert_eq!(user(LayoutId::Seed003, 512, true), "512.0");
        assert_eq!(user(LayoutId::Seed003, 512, false), "512");
        assert_eq!(user(LayoutId::Seed002, 1, false), "1001");
        assert_eq!(user(LayoutId::Seed002, 20, false), "1010");
        assert_eq!(user(LayoutId::Seed002, 21, false), "1001");
    }

    #[test]
    fn seed000_event_id_is_the_md5_of_user_product_and_second() {
        let cat = Catalogue::standard();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut model = Model::new(cat, 10.0);
        let mut e = model.next_event(&mut rng, 1_795_256_430_123, Need::LoggedIn, None);
        e.user = Some(1);
        e.product = 0;
        let mut enc = RowEncoder::new(LayoutId::Seed000);
        let rec = enc.encode(&e, cat, false);
        let cells: Vec<&str> = rec
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        // Python: uuid.UUID(hashlib.md5(b"USER_000001_PROD_000001_2026-11-21 10:20:30").hexdigest())
        assert_eq!(cells[0], "74f37e51-0d66-a8ac-b347-37b0295b1b54");
        assert_eq!(&cells[1..3], ["USER_000001", "PROD_000001"]);
        assert_eq!(cells[7], "2026-11-21 10:20:30");
        e.event_id = None;
        assert_eq!(&enc.encode(&e, cat, false)[0], b"");
    }

    #[test]
    fn every_layout_encodes_its_registry_columns() {
        let cat = Catalogue::standard();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut model = Model::new(cat, 10.0);
        for layout in LayoutId::ALL {
            let names: Vec<&str> = layout.spec().columns.iter().map(|c| c.name).collect();
            assert_eq!(header(layout), ByteRecord::from(names.clone()));
            let mut enc = RowEncoder::new(layout);
            for _ in 0..200 {
                let e = model.next_event(&mut rng, 1_795_255_200_000, Need::Any, None);
                assert_eq!(enc.encode(&e, cat, false).len(), names.len(), "{layout}");
            }
        }
        let v3: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(header(LayoutId::V3), ByteRecord::from(v3));
    }

    #[test]
    fn publish_is_atomic_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested/out");
        let start = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let out =
            OutputDir::prepare(&dir, start, "0badcafe", LayoutId::V3, Format::default()).unwrap();
        assert_eq!(
            out.file_name(7),
            "events_20261121T100000Z_0badcafe_000007.csv"
        );

        let mut f = out.begin(1).unwrap();
        f.write(&ByteRecord::from(vec!["a"; 18])).unwrap();
        let listing = || {
            let mut v: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            listing(),
            vec![".events_20261121T100000Z_0badcafe_000001.csv.tmp"]
        );
        let name = f.commit().unwrap();
        assert_eq!(listing(), vec![name.clone()]);
        let text = fs::read_to_string(dir.join(&name)).unwrap();
        assert!(text.starts_with("event_id,user_id,session_id,event_type,"));
        assert_eq!(text.lines().count(), 2);

        // Same name again: refused, and the temp file is cleaned up.
        let f = out.begin(2).unwrap();
        fs::write(dir.join(out.file_name(2)), "someone else's").unwrap();
        let err = f.commit().unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert_eq!(listing().len(), 2);
        assert!(listing().iter().all(|n| !n.starts_with('.')));

        // Dropped without commit: nothing left.
        let f = out.begin(3).unwrap();
        drop(f);
        assert_eq!(listing().len(), 2);
    }

    #[test]
    fn unwritable_folder_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        fs::write(&file, "x").unwrap();
        let err = OutputDir::prepare(
            &file.join("sub"),
            Utc::now(),
            "00000000",
            LayoutId::V3,
            Format::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("plain-file"), "{err}");
    }
}
