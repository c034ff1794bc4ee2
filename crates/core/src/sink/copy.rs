//! A hand-written encoder for PostgreSQL's binary COPY format.
//!
//! Writes rows straight into a byte buffer that is sent through
//! tokio-postgres' COPY sink: no per-value trait objects, no per-row heap
//! allocation. Only the types shopstream stores are supported. The format is
//! documented at <https://www.postgresql.org/docs/current/sql-copy.html>
//! (binary format) and in the `*_recv` functions of the server.
//!
//! This module knows bytes, not events: the staging layout lives in
//! [`super::stage`].

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
const TEXT_OID: i32 = 25;

/// The file header: signature, flags, header-extension length.
pub fn header(buf: &mut BytesMut) {
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0);
    buf.put_i32(0);
}

/// The file trailer.
pub fn trailer(buf: &mut BytesMut) {
    buf.put_i16(-1);
}

/// Starts a row of `fields` values.
pub fn row(buf: &mut BytesMut, fields: i16) {
    buf.put_i16(fields);
}

pub fn null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

pub fn text(buf: &mut BytesMut, v: &str) {
    buf.put_i32(v.len() as i32);
    buf.put_slice(v.as_bytes());
}

pub fn opt_text(buf: &mut BytesMut, v: Option<&str>) {
    match v {
        Some(v) => text(buf, v),
        None => null(buf),
    }
}

pub fn bool(buf: &mut BytesMut, v: bool) {
    buf.put_i32(1);
    buf.put_u8(u8::from(v));
}

pub fn int4(buf: &mut BytesMut, v: i32) {
    buf.put_i32(4);
    buf.put_i32(v);
}

pub fn int8(buf: &mut BytesMut, v: i64) {
    buf.put_i32(8);
    buf.put_i64(v);
}

/// Writes `v` into the first field of every row of `rows` (encoded rows,
/// no header or trailer, each starting with an [`int8`]), for a value
/// known only after the rows were encoded. A partial row (the start that
/// every row of a file shares) is written and ends the walk, as does a row
/// that does not start with an int8.
pub fn stamp_first_int8(rows: &mut [u8], v: i64) {
    let be_i16 = |b: &[u8], at: usize| b.get(at..at + 2)?.try_into().ok().map(i16::from_be_bytes);
    let be_i32 = |b: &[u8], at: usize| b.get(at..at + 4)?.try_into().ok().map(i32::from_be_bytes);
    let mut at = 0;
    while let Some(fields) = be_i16(rows, at) {
        if fields < 1 || be_i32(rows, at + 2) != Some(8) {
            return;
        }
        match rows.get_mut(at + 6..at + 14) {
            Some(value) => value.copy_from_slice(&v.to_be_bytes()),
            None => return,
        }
        let mut next = at + 2;
        for _ in 0..fields {
            let Some(len) = be_i32(rows, next) else {
                return;
            };
            next += 4 + len.max(0) as usize;
        }
        at = next;
    }
}

pub fn uuid(buf: &mut BytesMut, v: &Uuid) {
    buf.put_i32(16);
    buf.put_slice(v.as_bytes());
}

/// A `timestamptz` from microseconds since the Unix epoch.
pub fn timestamptz(buf: &mut BytesMut, unix_micros: i64) {
    buf.put_i32(8);
    buf.put_i64(unix_micros - PG_EPOCH_OFFSET_MICROS);
}

/// A `numeric` with scale 2 from a count of hundredths.
///
/// Binary numeric is: ndigits, weight, sign, dscale (all i16) and then
/// `ndigits` base-10000 digits, most significant first; the value is
/// sum(digit[i] * 10000^(weight - i)).
pub fn numeric_cents(buf: &mut BytesMut, cents: i64) {
    let negative = cents < 0;
    let abs = cents.unsigned_abs();
    let mut int = abs / 100;
    let frac = (abs % 100) as i16;
    // u64::MAX / 100 has at most 5 base-10000 digits.
    let mut digits = [0i16; 6];
    let mut n_int = 0;
    while int > 0 {
        digits[n_int] = (int % 10_000) as i16;
        int /= 10_000;
        n_int += 1;
    }
    digits[..n_int].reverse();
    let mut n = n_int;
    if frac != 0 {
        digits[n] = frac * 100;
        n += 1;
    }
    while n > 0 && digits[n - 1] == 0 {
        n -= 1;
    }
    let weight = n_int as i16 - 1;
    buf.put_i32(8 + 2 * n as i32);
    buf.put_i16(n as i16);
    buf.put_i16(if n == 0 { 0 } else { weight });
    buf.put_u16(if negative && n > 0 { 0x4000 } else { 0 });
    buf.put_i16(2);
    for d in &digits[..n] {
        buf.put_i16(*d);
    }
}

/// A one-dimensional `text[]` without NULL elements.
pub fn text_array<'a>(buf: &mut BytesMut, items: impl ExactSizeIterator<Item = &'a str> + Clone) {
    let body: usize = 20 + items.clone().map(|s| 4 + s.len()).sum::<usize>();
    buf.put_i32(body as i32);
    buf.put_i32(1); // dimensions
    buf.put_i32(0); // has nulls
    buf.put_i32(TEXT_OID);
    buf.put_i32(items.len() as i32);
    buf.put_i32(1); // lower bound
    for s in items {
        text(buf, s);
    }
}

/// A `jsonb` value from JSON text.
pub fn jsonb(buf: &mut BytesMut, json: &[u8]) {
    buf.put_i32(json.len() as i32 + 1);
    buf.put_u8(1); // jsonb binary format version
    buf.put_slice(json);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(cents: i64) -> Vec<i16> {
        let mut b = BytesMut::new();
        numeric_cents(&mut b, cents);
        b[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numeric_layouts() {
        // [ndigits, weight, sign, dscale, digits...]
        assert_eq!(num(0), [0, 0, 0, 2]);
        assert_eq!(num(1999), [2, 0, 0, 2, 19, 9900]);
        assert_eq!(num(50), [1, -1, 0, 2, 5000]);
        assert_eq!(num(1_000_000), [1, 1, 0, 2, 1]);
        assert_eq!(num(1_234_567_801), [3, 1, 0, 2, 1234, 5678, 100]);
        assert_eq!(num(-5000), [1, 0, 0x4000, 2, 50]);
    }

    fn first_int8(b: &[u8], at: usize) -> i64 {
        i64::from_be_bytes(b[at + 6..at + 14].try_into().unwrap())
    }

    #[test]
    fn stamping_writes_the_first_field_of_every_row_and_nothing_else() {
        let mut b = BytesMut::new();
        row(&mut b, 4);
        int8(&mut b, 0);
        text(&mut b, "a.csv");
        null(&mut b);
        jsonb(&mut b, b"[]");
        let second = b.len();
        row(&mut b, 3);
        int8(&mut b, 0);
        text_array(&mut b, ["x", "yz"].into_iter());
        opt_text(&mut b, Some("line"));
        let mut expected = b.clone();
        stamp_first_int8(&mut b, 42);
        assert_eq!((first_int8(&b, 0), first_int8(&b, second)), (42, 42));
        expected[6..14].copy_from_slice(&42i64.to_be_bytes());
        expected[second + 6..second + 14].copy_from_slice(&42i64.to_be_bytes());
        assert_eq!(b, expected);

        // The start a file's rows share: its first field, then the walk ends.
        let mut start = BytesMut::new();
        row(&mut start, 25);
        int8(&mut start, 0);
        text(&mut start, "b.csv");
        stamp_first_int8(&mut start, 7);
        assert_eq!(first_int8(&start, 0), 7);

        // A row whose first field is not 8 bytes long is left alone.
        let mut other = BytesMut::new();
        row(&mut other, 1);
        text(&mut other, "12345");
        let before = other.clone();
        stamp_first_int8(&mut other, 7);
        assert_eq!(other, before);
    }
}
