//! Splits a file's content into lines of bounded length, for JSON Lines.
//!
//! A line ends at `\n` (a `\r` before it is dropped), and the last one may
//! lack it. Blank lines (whitespace only) are skipped but counted, and a
//! UTF-8 BOM before the first line is dropped. A line longer than the
//! limit is handed out as its first `max_line_bytes` bytes, marked
//! too long, and the rest of it is skipped without being held: memory
//! stays at one line up to the limit plus one read. This module never
//! interprets a line.

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const READ_CHUNK: usize = 64 * 1024;

/// One line as read.
pub struct Line<'r> {
    pub line: u64,
    /// The line without its terminator (the first `--max-line-bytes` of
    /// an over-long one).
    pub bytes: &'r [u8],
    /// It was longer than the limit.
    pub too_long: bool,
}

/// Splits a byte source into lines of bounded length.
pub struct LineReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    eof: bool,
    next_line: u64,
    max_line_bytes: usize,
    /// Inside an over-long line already handed out: its rest is skipped.
    skipping: bool,
}

impl<R: std::io::Read> LineReader<R> {
    pub fn new(src: R, max_line_bytes: usize) -> Self {
        LineReader {
            src,
            buf: vec![0; READ_CHUNK],
            start: 0,
            filled: 0,
            eof: false,
            next_line: 1,
            max_line_bytes: max_line_bytes.max(1),
            skipping: false,
        }
    }

    /// The source being read.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.src
    }

    /// The longest line handed out whole.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// The next line that is not blank, or `None` at the end.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        let mut scanned = 0;
        loop {
            let from = self.start + scanned;
            let newline = self.buf[from..self.filled].iter().position(|&b| b == b'\n');
            let end = match newline {
                Some(i) => Some(from + i),
                None if self.eof && !self.skipping && self.start < self.filled => Some(self.filled),
                None => None,
            };
            if let Some(end) = end {
                let begin = self.start;
                self.start = (end + 1).min(self.filled);
                scanned = 0;
                let line = self.next_line;
                self.next_line += 1;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                let (a, b) = trim_line(&self.buf, begin, end, line == 1);
                if self.buf[a..b].iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let too_long = b - a > self.max_line_bytes;
                let b = if too_long { a + self.max_line_bytes } else { b };
                return Ok(Some(Line {
                    line,
                    bytes: &self.buf[a..b],
                    too_long,
                }));
            }
            if self.skipping {
                self.start = self.filled;
            } else if self.filled - self.start > self.max_line_bytes {
                let begin = self.start;
                self.start = self.filled;
                self.skipping = true;
                return Ok(Some(Line {
                    line: self.next_line,
                    bytes: &self.buf[begin..begin + self.max_line_bytes],
                    too_long: true,
                }));
            }
            if self.eof {
                return Ok(None);
            }
            scanned = self.filled - self.start;
            self.fill()?;
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.filled == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = self.src.read(&mut self.buf[self.filled..])?;
        if n == 0 {
            self.eof = true;
        }
        self.filled += n;
        Ok(())
    }
}

/// The bounds of a line's text in `buf[begin..end]`: without a trailing
/// `\r`, and without a BOM on the first line.
fn trim_line(buf: &[u8], mut begin: usize, mut end: usize, first: bool) -> (usize, usize) {
    if end > begin && buf[end - 1] == b'\r' {
        end -= 1;
    }
    if first && buf[begin..end].starts_with(UTF8_BOM) {
        begin += UTF8_BOM.len();
    }
    (begin, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize) -> Vec<(u64, String, bool)> {
        let mut r = LineReader::new(input, max);
        let mut v = vec![];
        while let Some(l) = r.next_line().expect("reads") {
            v.push((
                l.line,
                String::from_utf8_lossy(l.bytes).into_owned(),
                l.too_long,
            ));
        }
        v
    }

    #[test]
    fn blank_lines_crlf_and_a_bom_are_handled_and_counted() {
        let v = all(b"\xEF\xBB\xBFa\r\n\n  \r\nb\nc", 100);
        assert_eq!(
            v,
            [
                (1, "a".into(), false),
                (4, "b".into(), false),
                (5, "c".into(), false)
            ]
        );
        assert!(all(b"", 100).is_empty());
        assert!(all(b"\n\n", 100).is_empty());
    }

    #[test]
    fn an_overlong_line_is_cut_and_its_rest_skipped_unheld() {
        // Longer than one read, and longer than the limit.
        let long = "x".repeat(300_000);
        let input = format!("a\n{long}\nb\n{long}");
        let v = all(input.as_bytes(), 1000);
        assert_eq!(v.len(), 4);
        assert_eq!((v[1].0, v[1].1.len(), v[1].2), (2, 1000, true));
        assert_eq!(v[2], (3, "b".into(), false));
        assert_eq!((v[3].0, v[3].1.len(), v[3].2), (4, 1000, true));
        let mut r = LineReader::new(input.as_bytes(), 1000);
        while r.next_line().expect("reads").is_some() {}
        assert!(r.buf.len() <= 4 * READ_CHUNK, "held {}", r.buf.len());
        // Exactly at the limit is whole.
        assert_eq!(all(b"abc\n", 3), [(1, "abc".into(), false)]);
    }
}
