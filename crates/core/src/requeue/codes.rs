//! The reason codes of rejected files: a short name for each kind of reason
//! the loader writes when it rejects a whole file, so that `shopstream
//! requeue --code` can pick the files rejected for one cause.
//!
//! The ledger stores reasons as text (`ingested_files.reason`); a code is
//! found by the phrases those texts contain, one table here. It only
//! classifies text: it never reads files or the database.

/// Why a file was rejected, as a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum FileCode {
    /// Larger than --max-file-bytes (or grew past it while read).
    TooLarge,
    /// A record longer than --max-line-bytes.
    LineTooLong,
    /// A record with more fields than --max-columns.
    TooManyColumns,
    /// Columns the layout does not know, with --unknown-columns reject.
    UnknownColumns,
    /// More of its rows failed validation than --max-reject-ratio allows.
    TooManyRejects,
    /// A header naming a column twice.
    DuplicateColumn,
    /// A header matching no known layout.
    UnknownLayout,
    /// No header, or a header and no data rows.
    Empty,
    /// Binary, UTF-16 or another encoding than UTF-8.
    NotText,
    /// Shorter when read than when listed (rewritten in place).
    Truncated,
    /// It could not be opened or read.
    Unreadable,
    /// Any other reason.
    Other,
}

/// Phrases of the loader's reasons, checked in this order.
const PHRASES: &[(FileCode, &[&str])] = &[
    (FileCode::TooLarge, &["--max-file-bytes"]),
    (FileCode::LineTooLong, &["--max-line-bytes"]),
    (FileCode::TooManyColumns, &["--max-columns"]),
    (FileCode::UnknownColumns, &["--unknown-columns reject"]),
    (FileCode::TooManyRejects, &["--max-reject-ratio"]),
    (FileCode::DuplicateColumn, &["more than once"]),
    (FileCode::UnknownLayout, &["matches no known layout"]),
    (
        FileCode::Empty,
        &["the file is empty", "a header but no data rows"],
    ),
    (
        FileCode::NotText,
        &["UTF-16", "is binary", "is not UTF-8 text"],
    ),
    (FileCode::Truncated, &["shrank while being read"]),
    (
        FileCode::Unreadable,
        &[
            "cannot open the file",
            "cannot inspect the file",
            "read failed",
            "cannot read the object",
            "leads outside the input folder",
        ],
    ),
];

impl FileCode {
    /// The code of a rejection reason.
    pub fn of(reason: &str) -> FileCode {
        PHRASES
            .iter()
            .find(|(_, phrases)| phrases.iter().any(|p| reason.contains(p)))
            .map_or(FileCode::Other, |(code, _)| *code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileCode::TooLarge => "too_large",
            FileCode::LineTooLong => "line_too_long",
            FileCode::TooManyColumns => "too_many_columns",
            FileCode::UnknownColumns => "unknown_columns",
            FileCode::TooManyRejects => "too_many_rejects",
            FileCode::DuplicateColumn => "duplicate_column",
            FileCode::UnknownLayout => "unknown_layout",
            FileCode::Empty => "empty",
            FileCode::NotText => "not_text",
            FileCode::Truncated => "truncated",
            FileCode::Unreadable => "unreadable",
            FileCode::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ParsedFile;
    use crate::pipeline::read::too_many_rejects;
    use crate::schema::LayoutId;
    use crate::source::layout::LayoutError;
    use crate::source::reader::ReadError;

    fn counts(rows_rejected: u64, rows_read: u64) -> ParsedFile {
        ParsedFile {
            rows_read,
            rows_rejected,
            ..ParsedFile::default()
        }
    }

    #[test]
    fn the_loaders_own_reasons_get_their_codes() {
        let cases: Vec<(String, FileCode)> = vec![
            (LayoutError::Empty.to_string(), FileCode::Empty),
            (
                LayoutError::NoMatch {
                    closest: LayoutId::V1.into(),
                    missing: vec!["event_time".into()],
                    unknown: vec![],
                }
                .to_string(),
                FileCode::UnknownLayout,
            ),
            (
                LayoutError::NotAHeader { fields: 1 }.to_string(),
                FileCode::UnknownLayout,
            ),
            (
                LayoutError::UnknownColumns {
                    layout: LayoutId::V1.into(),
                    unknown: vec!["color".into()],
                }
                .to_string(),
                FileCode::UnknownColumns,
            ),
            (
                LayoutError::DuplicateColumn("price".into()).to_string(),
                FileCode::DuplicateColumn,
            ),
            (LayoutError::Utf16.to_string(), FileCode::NotText),
            (LayoutError::Binary.to_string(), FileCode::NotText),
            (LayoutError::NotUtf8.to_string(), FileCode::NotText),
            (
                ReadError::RecordTooLong { line: 3, limit: 10 }.to_string(),
                FileCode::LineTooLong,
            ),
            (
                ReadError::TooManyFields { line: 3, limit: 10 }.to_string(),
                FileCode::TooManyColumns,
            ),
            (
                ReadError::Io(std::io::Error::other("disk")).to_string(),
                FileCode::Unreadable,
            ),
            (
                "the file is 5.0 MiB, over --max-file-bytes 1.0 MiB: not read".into(),
                FileCode::TooLarge,
            ),
            (
                "the file has a header but no data rows".into(),
                FileCode::Empty,
            ),
            (
                too_many_rejects(&counts(612, 1000), Some(0.5)).expect("over the limit"),
                FileCode::TooManyRejects,
            ),
            ("something new".into(), FileCode::Other),
        ];
        for (reason, code) in cases {
            assert_eq!(FileCode::of(&reason), code, "{reason}");
        }
    }

    #[test]
    fn names_match_the_command_line() {
        use clap::ValueEnum;
        for c in FileCode::value_variants() {
            let name = c.to_possible_value().map(|v| v.get_name().to_string());
            assert_eq!(name.as_deref(), Some(c.as_str()));
        }
    }
}
