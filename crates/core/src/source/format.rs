//! What a file is by its name: how its records are written (CSV or JSON
//! Lines) and how its bytes are stored (plain, gzip or zstd).
//!
//! The name decides, never the content: `.jsonl` and `.ndjson` are JSON
//! Lines, a final `.gz` or `.zst` is compressed with what is inside named by
//! the extension before it (`events.jsonl.zst`), and every other name is
//! CSV, as before these formats existed (so an `--include '*.txt'` of CSV
//! files keeps working). Extensions are matched ignoring ASCII case.
//!
//! This module only answers questions about names: it never opens a file.

use std::path::Path;

/// How a file's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RecordFormat {
    /// A header row, then one event per record (RFC 4180).
    #[default]
    Csv,
    /// One JSON object per line, keys named like CSV header columns.
    Jsonl,
}

impl RecordFormat {
    /// The extension files of this format get (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            RecordFormat::Csv => "csv",
            RecordFormat::Jsonl => "jsonl",
        }
    }
}

/// How a file's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    /// As they are.
    #[default]
    None,
    /// gzip (RFC 1952), one member or several concatenated.
    Gz,
    /// Zstandard, one frame or several concatenated.
    Zst,
}

impl Compression {
    /// The extension this compression adds (without the dot), if any.
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gz => Some("gz"),
            Compression::Zst => Some("zst"),
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "plain",
            Compression::Gz => "gzip",
            Compression::Zst => "zstd",
        }
    }
}

/// A file's format, as its name tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    pub records: RecordFormat,
    pub compression: Compression,
}

impl Format {
    /// The format of the file at `path` (see the module docs).
    pub fn of(path: &Path) -> Format {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let (rest, compression) = if let Some(r) = name.strip_suffix(".gz") {
            (r, Compression::Gz)
        } else if let Some(r) = name.strip_suffix(".zst") {
            (r, Compression::Zst)
        } else {
            (name.as_str(), Compression::None)
        };
        let records = if rest.ends_with(".jsonl") || rest.ends_with(".ndjson") {
            RecordFormat::Jsonl
        } else {
            RecordFormat::Csv
        };
        Format {
            records,
            compression,
        }
    }

    /// The file name ending of this format: `.csv`, `.jsonl.zst`, ….
    pub fn suffix(self) -> String {
        let mut s = format!(".{}", self.records.extension());
        if let Some(c) = self.compression.extension() {
            s.push('.');
            s.push_str(c);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(name: &str) -> (RecordFormat, Compression) {
        let f = Format::of(Path::new(name));
        (f.records, f.compression)
    }

    #[test]
    fn names_tell_records_and_compression() {
        use Compression as C;
        use RecordFormat as R;
        assert_eq!(of("a.csv"), (R::Csv, C::None));
        assert_eq!(of("dir.jsonl/a.CSV.GZ"), (R::Csv, C::Gz));
        assert_eq!(of("a.csv.zst"), (R::Csv, C::Zst));
        assert_eq!(of("a.jsonl"), (R::Jsonl, C::None));
        assert_eq!(of("a.NDJSON"), (R::Jsonl, C::None));
        assert_eq!(of("a.jsonl.gz"), (R::Jsonl, C::Gz));
        assert_eq!(of("a.ndjson.zst"), (R::Jsonl, C::Zst));
        // Anything else is CSV, as before: an explicit `--include '*.txt'`.
        assert_eq!(of("a.txt"), (R::Csv, C::None));
        assert_eq!(of("a.gz"), (R::Csv, C::Gz));
        assert_eq!(of("jsonl"), (R::Csv, C::None));
    }

    #[test]
    fn suffixes_round_trip() {
        for records in [RecordFormat::Csv, RecordFormat::Jsonl] {
            for compression in [Compression::None, Compression::Gz, Compression::Zst] {
                let f = Format {
                    records,
                    compression,
                };
                assert_eq!(Format::of(Path::new(&format!("x{}", f.suffix()))), f);
            }
        }
    }
}
