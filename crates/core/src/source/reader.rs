//! Streams one CSV file's content as records, each with its exact raw bytes
//! and the line it starts on.
//!
//! Built on `csv-core` so that quoting (commas, quotes and newlines inside
//! fields), CRLF and a missing final newline follow RFC 4180, and so that the
//! raw text of every record is available for dead letters. Memory is bounded:
//! the buffer holds at most one record (up to `max_record_bytes`) plus one
//! read. This module reads bytes; it never interprets values (nor hashes
//! or decompresses them: `source::decompress` does, underneath).

use std::io::Read;

use csv_core::{ReadRecordResult, Reader as CoreReader, ReaderBuilder};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const READ_CHUNK: usize = 64 * 1024;

/// Why a file could not be read to the end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}", io_reason(.0))]
    Io(#[from] std::io::Error),
    #[error("the record starting on line {line} is longer than {limit} bytes (--max-line-bytes)")]
    RecordTooLong { line: u64, limit: usize },
    #[error("the record starting on line {line} has more than {limit} fields (--max-columns)")]
    TooManyFields { line: u64, limit: usize },
}

/// A failed read as a reason: a broken or oversized compressed stream
/// says it all itself.
fn io_reason(e: &std::io::Error) -> String {
    if super::decompress::is_decode_error(e) {
        e.to_string()
    } else {
        format!("read failed: {e}")
    }
}

/// One CSV record borrowed from the reader's buffers.
#[derive(Debug)]
pub struct Record<'r> {
    /// The 1-based line the record starts on (the header is line 1).
    pub line: u64,
    /// The record exactly as read, without its line terminator.
    pub raw: &'r [u8],
    out: &'r [u8],
    ends: &'r [usize],
}

impl<'r> Record<'r> {
    /// A record of fields laid end to end in `out`, field `i` ending at
    /// `ends[i]` (how a record that is not CSV, a JSON line, is handed on).
    pub fn from_parts(line: u64, raw: &'r [u8], out: &'r [u8], ends: &'r [usize]) -> Record<'r> {
        Record {
            line,
            raw,
            out,
            ends,
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The unquoted bytes of field `i` (empty past the last field).
    pub fn field(&self, i: usize) -> &'r [u8] {
        let Some(&end) = self.ends.get(i) else {
            return &[];
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..end]
    }

    /// The fields as text when every one is UTF-8 without NUL bytes
    /// (PostgreSQL text cannot hold NUL); `None` otherwise. One pass over
    /// the whole record instead of one per field: this runs for every row.
    pub fn text(&self) -> Option<TextFields<'r>> {
        let end = self.ends.last().copied().unwrap_or(0);
        let all = self.out.get(..end)?;
        if all.contains(&0) {
            return None;
        }
        let s = std::str::from_utf8(all).ok()?;
        // A field cut inside a character (e.g. `\xC3,\xA9`) is not UTF-8
        // on its own even though the fields joined are.
        if !self.ends.iter().all(|&e| s.is_char_boundary(e)) {
            return None;
        }
        Some(TextFields { s, ends: self.ends })
    }
}

/// The fields of a [`Record`] checked to be text (see [`Record::text`]).
#[derive(Debug, Clone, Copy)]
pub struct TextFields<'r> {
    s: &'r str,
    ends: &'r [usize],
}

impl<'r> TextFields<'r> {
    /// Field `i` (empty past the last field).
    pub fn field(&self, i: usize) -> &'r str {
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.s.get(start..end).unwrap_or("")
    }
}

/// A streaming record reader over any byte source.
pub struct RecordReader<R> {
    src: R,
    core: CoreReader,
    buf: Vec<u8>,
    filled: usize,
    pos: usize,
    rec_start: usize,
    eof: bool,
    started: bool,
    out: Vec<u8>,
    ends: Vec<usize>,
    next_line: u64,
    /// The last byte of the previous record was `\r` (so a `\n` right
    /// after it ends the same line).
    after_cr: bool,
    max_record_bytes: usize,
    max_fields: usize,
}

impl<R: Read> RecordReader<R> {
    pub fn new(src: R, max_record_bytes: usize) -> Self {
        RecordReader {
            src,
            core: CoreReader::new(),
            buf: vec![0; READ_CHUNK],
            filled: 0,
            pos: 0,
            rec_start: 0,
            eof: false,
            started: false,
            out: vec![0; 4096],
            ends: vec![0; 64],
            next_line: 1,
            after_cr: false,
            max_record_bytes,
            max_fields: usize::MAX,
        }
    }

    /// Caps the fields of a record (the header too): more is an error.
    pub fn with_max_fields(mut self, max_fields: usize) -> Self {
        self.max_fields = max_fields.max(1);
        self
    }

    /// Splits the records after the one just read by `delimiter` and
    /// quotes them with `quote` (a declared layout's, known once the
    /// header is read).
    pub fn set_dialect(&mut self, delimiter: u8, quote: u8) {
        self.core = ReaderBuilder::new()
            .delimiter(delimiter)
            .quote(quote)
            .build();
    }

    /// The source being read.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.src
    }

    fn fill(&mut self) -> Result<(), ReadError> {
        if self.filled == self.buf.len() {
            if self.rec_start > 0 {
                self.buf.copy_within(self.rec_start..self.filled, 0);
                self.filled -= self.rec_start;
                self.pos -= self.rec_start;
                self.rec_start = 0;
            } else {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        let n = self.src.read(&mut self.buf[self.filled..])?;
        if n == 0 {
            self.eof = true;
        } else {
            self.filled += n;
        }
        if !self.started && (self.filled >= UTF8_BOM.len() || self.eof) {
            self.started = true;
            if self.buf[..self.filled].starts_with(UTF8_BOM) {
                self.pos = UTF8_BOM.len();
                self.rec_start = self.pos;
            }
        }
        Ok(())
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        self.rec_start = self.pos;
        let (mut nout, mut nend) = (0, 0);
        loop {
            while !self.eof && (self.pos == self.filled || !self.started) {
                self.fill()?;
            }
            let input = &self.buf[self.pos..self.filled];
            let (res, nin, o, e) =
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            self.pos += nin;
            nout += o;
            nend += e;
            if self.pos - self.rec_start > self.max_record_bytes || nout > self.max_record_bytes {
                let line = self.next_line;
                return Err(ReadError::RecordTooLong {
                    line,
                    limit: self.max_record_bytes,
                });
            }
            // `nend` counts completed fields; the last one of a record is
            // completed with the record.
            if nend > self.max_fields {
                return Err(ReadError::TooManyFields {
                    line: self.next_line,
                    limit: self.max_fields,
                });
            }
            match res {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    let grown = self.out.len() * 2;
                    self.out.resize(grown, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let grown = self.ends.len() * 2;
                    self.ends.resize(grown, 0);
                }
                ReadRecordResult::Record => {
                    let consumed = &self.buf[self.rec_start..self.pos];
                    let lead = consumed
                        .iter()
                        .take_while(|&&b| b == b'\n' || b == b'\r')
                        .count();
                    let lead_lines = count_line_breaks(&consumed[..lead], self.after_cr);
                    let line = self.next_line + lead_lines;
                    self.next_line += count_line_breaks(consumed, self.after_cr);
                    self.after_cr = consumed.last() == Some(&b'\r');
                    let mut raw = &consumed[lead..];
                    while let [rest @ .., b'\n' | b'\r'] = raw {
                        raw = rest;
                    }
                    return Ok(Some(Record {
                        line,
                        raw,
                        out: &self.out[..nout],
                        ends: &self.ends[..nend],
                    }));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

/// The fields of the first record of `raw` split by `delimiter` and
/// quoted with `quote` (a header read again in another dialect).
pub fn split_fields(raw: &[u8], delimiter: u8, quote: u8) -> Vec<Vec<u8>> {
    let mut core = ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .build();
    let mut out = vec![0; raw.len() + 1];
    let mut ends = vec![0; raw.len() + 1];
    let (mut input, mut nout, mut nend) = (raw, 0, 0);
    loop {
        let (res, nin, o, e) = core.read_record(input, &mut out[nout..], &mut ends[nend..]);
        input = &input[nin..];
        nout += o;
        nend += e;
        // Once `raw` is used up, the next call (with no input) ends the
        // record. The buffers cannot fill: unquoted fields are no longer
        // than their input, and there is at most one per input byte, plus
        // one.
        if !matches!(res, ReadRecordResult::InputEmpty) {
            break;
        }
    }
    let mut start = 0;
    ends[..nend]
        .iter()
        .map(|&end| {
            let field = out[start..end].to_vec();
            start = end;
            field
        })
        .collect()
}

/// The lines `b` ends: `\n`, `\r\n` and a lone `\r` each end one, as each
/// ends a record for csv-core (inside quotes too, as editors show them).
/// `after_cr` tells whether the byte before `b` was `\r`.
fn count_line_breaks(b: &[u8], mut after_cr: bool) -> u64 {
    let mut n = 0;
    for &c in b {
        n += u64::from(c == b'\r' || (c == b'\n' && !after_cr));
        after_cr = c == b'\r';
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> Vec<(u64, String, Vec<String>)> {
        let mut r = RecordReader::new(input, 1 << 20);
        let mut v = vec![];
        while let Some(rec) = r.next_record().expect("reads") {
            let fields = (0..rec.len())
                .map(|i| String::from_utf8_lossy(rec.field(i)).into_owned())
                .collect();
            v.push((
                rec.line,
                String::from_utf8_lossy(rec.raw).into_owned(),
                fields,
            ));
        }
        v
    }

    #[test]
    fn text_fields_only_when_every_field_is_utf8_without_nul() {
        let texts = |input: &[u8]| -> Vec<Option<Vec<String>>> {
            let mut r = RecordReader::new(input, 1 << 20);
            let mut v = vec![];
            while let Some(rec) = r.next_record().expect("reads") {
                v.push(
                    rec.text()
                        .map(|t| (0..rec.len()).map(|i| t.field(i).to_string()).collect()),
                );
            }
            v
        };
        assert_eq!(
            texts("é,\"x,y\",\n".as_bytes()),
            [Some(vec!["é".to_string(), "x,y".into(), "".into()])]
        );
        // Joined, the two halves of é are valid UTF-8; each field alone is not.
        assert_eq!(texts(b"\xC3,\xA9\n"), [None]);
        assert_eq!(texts(b"a,b\x00\n"), [None]);
        assert_eq!(texts(b"a,\xFF\n"), [None]);
    }

    #[test]
    fn plain_lines_with_and_without_final_newline() {
        for input in [&b"a,b\n1,2\n3,4\n"[..], b"a,b\n1,2\n3,4"] {
            let v = all(input);
            assert_eq!(v.len(), 3);
            assert_eq!(v[1], (2, "1,2".into(), vec!["1".into(), "2".into()]));
            assert_eq!(v[2].0, 3);
        }
    }

    #[test]
    fn crlf_and_bom() {
        let v = all(b"\xEF\xBB\xBFa,b\r\n1,2\r\n3,4\r\n");
        assert_eq!(v[0].2, vec!["a", "b"]);
        assert_eq!(v[1], (2, "1,2".into(), vec!["1".into(), "2".into()]));
        assert_eq!(v[2].0, 3);
    }

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let v = all(b"a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"multi\nline\",z\nlast,1\n");
        assert_eq!(v[1].2, vec!["x, y", "say \"hi\""]);
        assert_eq!(v[1].1, "\"x, y\",\"say \"\"hi\"\"\"");
        assert_eq!(v[2].2, vec!["multi\nline", "z"]);
        assert_eq!(v[2].0, 3);
        assert_eq!(
            v[3].0, 5,
            "the line count includes the newline inside quotes"
        );
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let v = all(b"a\n\n1\n\n\n2\n");
        let lines: Vec<u64> = v.iter().map(|r| r.0).collect();
        assert_eq!(lines, [1, 3, 6]);
    }

    #[test]
    fn a_lone_cr_ends_a_line_like_lf_and_crlf() {
        // Regression: lines were counted by `\n` only, so every record of a
        // CR-terminated file was "line 1", the header's line.
        let v = all(b"a\r1\r2\r\r3\r\n\n4\n\"x\ry\"\r5");
        let lines: Vec<u64> = v.iter().map(|r| r.0).collect();
        assert_eq!(lines, [1, 2, 3, 5, 7, 8, 10]);
        assert_eq!(v[5].2, ["x\ry"]);
        // A CRLF split between two reads is still one line break.
        let mut r = RecordReader::new(Chunks(&[b"a\r", b"\n1\r", b"\n2"]), 1 << 20);
        let mut lines = vec![];
        while let Some(rec) = r.next_record().expect("reads") {
            lines.push(rec.line);
        }
        assert_eq!(lines, [1, 2, 3]);
    }

    /// A source that hands out its bytes in the given pieces.
    struct Chunks<'a>(&'a [&'a [u8]]);

    impl Read for Chunks<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            assert!(first.len() <= out.len(), "pieces fit one read");
            out[..first.len()].copy_from_slice(first);
            self.0 = rest;
            Ok(first.len())
        }
    }

    #[test]
    fn records_longer_than_the_limit_are_an_error() {
        let mut input = b"a\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.push(b'\n');
        let mut r = RecordReader::new(&input[..], 1000);
        assert!(r.next_record().expect("header").is_some());
        match r.next_record() {
            Err(ReadError::RecordTooLong {
                line: 2,
                limit: 1000,
            }) => {}
            other => panic!("expected RecordTooLong, got {other:?}"),
        }
    }

    #[test]
    fn records_with_more_fields_than_the_limit_are_an_error() {
        let input = b"a,b,c\n1,2,3\n1,2,3,4\n";
        let mut r = RecordReader::new(&input[..], 1 << 20).with_max_fields(3);
        assert_eq!(r.next_record().expect("header").expect("some").len(), 3);
        assert_eq!(r.next_record().expect("row").expect("some").len(), 3);
        match r.next_record() {
            Err(ReadError::TooManyFields { line: 3, limit: 3 }) => {}
            other => panic!("expected TooManyFields, got {other:?}"),
        }
        // A record of only commas is caught too, long before its end.
        let mut input = b"a\n".to_vec();
        input.extend(std::iter::repeat_n(b',', 100_000));
        let mut r = RecordReader::new(&input[..], 1 << 20).with_max_fields(256);
        assert!(r.next_record().expect("header").is_some());
        assert!(matches!(
            r.next_record(),
            Err(ReadError::TooManyFields {
                line: 2,
                limit: 256
            })
        ));
    }

    #[test]
    fn another_dialect_splits_the_rest_and_a_header_again() {
        let input = b"a;b\n'x;y';2\n3;\"q\"\n";
        let mut r = RecordReader::new(&input[..], 1 << 20);
        let header = r.next_record().expect("reads").expect("header");
        assert_eq!(header.len(), 1);
        assert_eq!(
            split_fields(header.raw, b';', b'"'),
            [b"a".to_vec(), b"b".to_vec()]
        );
        r.set_dialect(b';', b'\'');
        let rec = r.next_record().expect("reads").expect("row");
        assert_eq!((rec.len(), rec.field(0), rec.line), (2, &b"x;y"[..], 2));
        let rec = r.next_record().expect("reads").expect("row");
        assert_eq!(rec.field(1), b"\"q\"");
        assert!(split_fields(b"", b';', b'"').is_empty());
        assert_eq!(split_fields(b"\"a;b\";c;", b';', b'"').len(), 3);
    }

    #[test]
    fn records_spanning_many_buffer_refills() {
        let mut input = b"a,b\n".to_vec();
        let big = "y".repeat(300_000);
        input.extend(format!("{big},1\n2,3\n").bytes());
        let v = all(&input);
        assert_eq!(v[1].2[0].len(), 300_000);
        assert_eq!(v[2].2, vec!["2", "3"]);
    }
}
