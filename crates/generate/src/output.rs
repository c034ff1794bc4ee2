//! The bytes of a generated file: its rows as CSV (a header row, then one
//! record per event) or JSON Lines (one object per event, keyed by the
//! header's names), stored plain, gzip- or zstd-compressed
//! (`--format`, `--compress`).
//!
//! JSON Lines carry exactly the CSV cells, so both load alike: an empty
//! cell is `null`, a cell of an integer or decimal column that is a JSON
//! number is written as that number (its text unchanged, as the loader
//! reads numbers as written), every other cell a string. This module never
//! chooses values and never publishes a file (`writer` does).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use csv::ByteRecord;

use super::error::GenerateError;
use shopstream_core::schema::{ColumnType, LayoutId};
use shopstream_core::source::format::{Compression, Format, RecordFormat};

/// zstd level of generated files (the `zstd` tool's default, as is the
/// checksum of each frame).
const ZSTD_LEVEL: i32 = 3;

/// A file's bytes on their way to disk, compressed or not.
pub enum Compressed {
    Plain(File),
    Gz(flate2::write::GzEncoder<File>),
    Zst(zstd::stream::write::Encoder<'static, File>),
}

impl Compressed {
    fn new(file: File, c: Compression) -> io::Result<Compressed> {
        Ok(match c {
            Compression::None => Compressed::Plain(file),
            Compression::Gz => Compressed::Gz(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Compression::Zst => {
                let mut e = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?;
                e.include_checksum(true)?;
                Compressed::Zst(e)
            }
        })
    }

    /// Ends the compressed stream; returns the file.
    fn finish(self) -> io::Result<File> {
        match self {
            Compressed::Plain(f) => Ok(f),
            Compressed::Gz(e) => e.finish(),
            Compressed::Zst(e) => e.finish(),
        }
    }
}

impl Write for Compressed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressed::Plain(f) => f.write(buf),
            Compressed::Gz(e) => e.write(buf),
            Compressed::Zst(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressed::Plain(f) => f.flush(),
            Compressed::Gz(e) => e.flush(),
            Compressed::Zst(e) => e.flush(),
        }
    }
}

/// Writes one file's rows in its format.
pub enum RowWriter {
    Csv(Box<csv::Writer<Compressed>>),
    Jsonl(Box<JsonLines>),
}

/// The JSON Lines side of [`RowWriter`].
pub struct JsonLines {
    out: BufWriter<Compressed>,
    /// Each column's name, and whether its values may be JSON numbers.
    columns: Vec<(&'static str, bool)>,
    line: Vec<u8>,
}

impl std::fmt::Debug for RowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RowWriter::Csv(_) => "RowWriter::Csv",
            RowWriter::Jsonl(_) => "RowWriter::Jsonl",
        })
    }
}

impl RowWriter {
    /// Starts a file of `layout`'s rows in `format` (CSV: with its header).
    pub fn new(
        file: File,
        format: Format,
        layout: LayoutId,
        path: &Path,
    ) -> Result<RowWriter, GenerateError> {
        let io_error = |source| GenerateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let sink = Compressed::new(file, format.compression).map_err(io_error)?;
        let columns = layout.spec().columns;
        match format.records {
            RecordFormat::Csv => {
                let mut w = RowWriter::Csv(Box::new(
                    csv::WriterBuilder::new()
                        .has_headers(false)
                        .buffer_capacity(64 * 1024)
                        .from_writer(sink),
                ));
                w.write(&super::writer::header(layout), path)?;
                Ok(w)
            }
            RecordFormat::Jsonl => Ok(RowWriter::Jsonl(Box::new(JsonLines {
                out: BufWriter::with_capacity(64 * 1024, sink),
                columns: columns
                    .iter()
                    .map(|c| {
                        let numeric = matches!(c.ty, ColumnType::Integer | ColumnType::Decimal);
                        (c.name, numeric)
                    })
                    .collect(),
                line: Vec::with_capacity(1024),
            }))),
        }
    }

    /// Writes one row (cells in the layout's column order).
    pub fn write(&mut self, record: &ByteRecord, path: &Path) -> Result<(), GenerateError> {
        match self {
            RowWriter::Csv(w) => w
                .write_byte_record(record)
                .map_err(|source| GenerateError::Csv {
                    path: path.to_path_buf(),
                    source,
                }),
            RowWriter::Jsonl(j) => {
                j.encode(record);
                j.out
                    .write_all(&j.line)
                    .map_err(|source| GenerateError::Io {
                        path: path.to_path_buf(),
                        source,
                    })
            }
        }
    }

    /// Flushes and ends the file's stream; returns the file.
    pub fn finish(self) -> io::Result<File> {
        let sink = match self {
            RowWriter::Csv(w) => w.into_inner().map_err(|e| e.into_error())?,
            RowWriter::Jsonl(j) => j.out.into_inner().map_err(|e| e.into_error())?,
        };
        sink.finish()
    }
}

impl JsonLines {
    /// The JSON line of `record` into `self.line`.
    fn encode(&mut self, record: &ByteRecord) {
        let line = &mut self.line;
        line.clear();
        line.push(b'{');
        for (i, ((name, numeric), cell)) in self.columns.iter().zip(record).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *line, name);
            line.push(b':');
            let text = String::from_utf8_lossy(cell);
            if text.is_empty() {
                line.extend_from_slice(b"null");
            } else if *numeric && serde_json::from_str::<serde_json::Number>(&text).is_ok() {
                line.extend_from_slice(text.as_bytes());
            } else {
                let _ = serde_json::to_writer(&mut *line, &*text);
            }
        }
        line.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn written(format: Format, rows: &[&[&str]]) -> Vec<u8> {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("f");
        let file = File::create(&path).expect("create");
        let mut w = RowWriter::new(file, format, LayoutId::V1, &path).expect("writer");
        for r in rows {
            w.write(&r.iter().copied().collect(), &path).expect("write");
        }
        w.finish().expect("finish");
        std::fs::read(&path).expect("read")
    }

    const ROW: &[&str] = &[
        "e1",
        "",
        "view",
        "p\"1",
        "12.50",
        "2026-01-01T00:00:00.000Z",
    ];
    const BAD: &[&str] = &["e2", "u", "buy", "p", "-5.00x", "yesterday"];

    #[test]
    fn json_lines_hold_the_csv_cells() {
        let f = Format {
            records: RecordFormat::Jsonl,
            compression: Compression::None,
        };
        let text = String::from_utf8(written(f, &[ROW, BAD])).expect("utf8");
        assert_eq!(
            text,
            "{\"event_id\":\"e1\",\"user_id\":null,\"event_type\":\"view\",\"product_id\":\"p\\\"1\",\
             \"price\":12.50,\"event_time\":\"2026-01-01T00:00:00.000Z\"}\n\
             {\"event_id\":\"e2\",\"user_id\":\"u\",\"event_type\":\"buy\",\"product_id\":\"p\",\
             \"price\":\"-5.00x\",\"event_time\":\"yesterday\"}\n"
        );
    }

    #[test]
    fn compressed_files_decompress_to_the_plain_bytes() {
        for records in [RecordFormat::Csv, RecordFormat::Jsonl] {
            let plain = written(
                Format {
                    records,
                    compression: Compression::None,
                },
                &[ROW, BAD],
            );
            let gz = written(
                Format {
                    records,
                    compression: Compression::Gz,
                },
                &[ROW, BAD],
            );
            let mut out = vec![];
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut out)
                .expect("gunzip");
            assert_eq!(out, plain);
            let zst = written(
                Format {
                    records,
                    compression: Compression::Zst,
                },
                &[ROW, BAD],
            );
            assert_eq!(zstd::decode_all(&zst[..]).expect("unzstd"), plain);
        }
    }
}
