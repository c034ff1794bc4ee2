//! The generator's error type.
//!
//! Owns [`GenerateError`]: every way `shopstream generate` can fail, each
//! message naming the option, file or folder involved. It must never hide an
//! I/O error's cause or describe a failure without saying where it happened.

use std::path::PathBuf;

use super::anomaly::InvalidKind;
use shopstream_core::schema::LayoutId;

/// Why a generation run could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A command-line option (or its environment variable) is out of range or
    /// contradicts another one.
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },

    /// `--invalid-kinds` asks for a kind of broken row the chosen layout
    /// has no column for.
    #[error(
        "invalid option --invalid-kinds: layout {layout} cannot express {kind} rows: {reason}"
    )]
    KindNotInLayout {
        layout: LayoutId,
        kind: InvalidKind,
        reason: &'static str,
    },

    #[error("cannot create output folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write CSV to {}: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },

    #[error("refusing to overwrite existing file {}", path.display())]
    AlreadyExists { path: PathBuf },

    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot sync folder {} after publishing a file: {source}", path.display())]
    SyncDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot read OS randomness for the run id: {0}")]
    OsRandom(String),

    #[error("cannot encode the report for {}: {source}", path.display())]
    ReportJson {
        path: PathBuf,
        source: serde_json::Error,
    },

    /// The blocking writer task panicked or was cancelled.
    #[error("file writer task for {} failed: {message}", path.display())]
    Task { path: PathBuf, message: String },
}

impl GenerateError {
    pub(crate) fn option(option: &'static str, message: impl Into<String>) -> Self {
        GenerateError::InvalidOption {
            option,
            message: message.into(),
        }
    }
}
