//! `shopstream check`: a dry run of `run` on files or folders, without any
//! database. For each file it tells what `run` would make of it: its format
//! and detected layout, rows read, valid and invalid, the reason codes with
//! counts, the first failing lines (file:line, column, message), event ids
//! repeated within the checked files, and whether the whole file would be
//! rejected and why. The exit code sums it up for CI: 0 every file would
//! load cleanly, 1 some row would be a dead letter, 2 some file would be
//! rejected (or could not be read).
//!
//! It reads through the loader's own path, [`read_files`], with the same
//! options (`ReadArgs`, `RuleArgs`): a folder's candidates are listed as
//! `run` lists its input (`--include`, the ignored names), every file is
//! read, decompressed, judged and limited exactly as `run` does, and the
//! judged rows go to a [`tally::Tally`] that counts them instead of to a
//! COPY. Memory stays bounded whatever the file size: rows are counted and
//! dropped, only the first `--show` failures per file are kept, and the
//! event ids compared for repeats are capped ([`tally::ID_CAP`]).
//!
//! It never connects to a database, and never writes, moves or deletes a
//! file. Without a ledger it cannot know what an earlier `run` loaded: its
//! repeated ids are those within the checked files only.

mod render;
mod tally;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crate::pipeline::options::{PipelineError, ReadArgs, RuleArgs};
use crate::pipeline::read::{read_files, Aborted, ParseConfig};
use crate::requeue::FileCode;
use crate::source::discover::{is_ignored, list_included, mtime_micros, Candidate, FileId};
use crate::source::input::Source;
use crate::source::scope::Include;

pub use render::render;
pub use tally::{FailingLine, FileCheck, Rejection, RowError, ID_CAP};

/// Output format of `shopstream check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table per file, then the failing lines and rejections.
    #[default]
    Table,
    /// One JSON object, for scripts.
    Json,
}

/// `shopstream check` options.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Files or folders to check. A folder is read as `run` reads its
    /// input: recursively, the files --include selects, hidden,
    /// `_`-prefixed and temporary names left out. A file named here is
    /// read whatever its name (a note says when `run` would not take it).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub read: ReadArgs,

    #[command(flatten)]
    pub rules: RuleArgs,

    /// Failing lines shown per file (0: none; the counts are complete
    /// anyway).
    #[arg(
        long,
        env = "SHOPSTREAM_CHECK_SHOW",
        default_value_t = 5,
        value_name = "N"
    )]
    pub show: usize,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_CHECK_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Options(#[from] PipelineError),
    #[error(
        "nothing to check: no input file in {0} (as --include selects them; a folder is \
         read recursively, hidden, `_`-prefixed and temporary names left out)"
    )]
    Nothing(String),
    #[error("reading stopped: {0}")]
    Aborted(#[from] Aborted),
}

impl CheckError {
    /// Whether the arguments must change (exit code 2).
    pub fn is_config(&self) -> bool {
        match self {
            CheckError::Options(e) => e.is_config() || matches!(e, PipelineError::Scope(_)),
            CheckError::Nothing(_) => true,
            CheckError::Aborted(_) => false,
        }
    }
}

/// What would become of the checked files, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every row would load (or be counted a duplicate).
    Clean = 0,
    /// Some rows would be dead letters; the rest would load.
    DeadLetters = 1,
    /// The whole file would be rejected and quarantined, or it cannot be
    /// read.
    Rejected = 2,
}

impl Verdict {
    /// The exit code that says it.
    pub fn exit_code(self) -> u8 {
        self as u8
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::DeadLetters => "dead letters",
            Verdict::Rejected => "rejected",
        }
    }
}

/// What `check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// The worst of the files' verdicts.
    pub verdict: Verdict,
    pub exit_code: u8,
    pub files: Vec<FileCheck>,
    pub totals: Totals,
    /// What a reader must know about the counts.
    pub notes: Vec<String>,
}

/// The sums over the files.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Totals {
    pub files: u64,
    pub files_rejected: u64,
    pub rows_read: u64,
    pub rows_valid: u64,
    pub rows_invalid: u64,
    pub duplicate_ids: u64,
}

/// Checks every file `args.paths` names (see the module docs). Blocking:
/// call it off the async runtime.
pub fn check(args: &CheckArgs) -> Result<CheckReport, CheckError> {
    let cfg = args.read.parse_config(&args.rules)?;
    let include = Include::new(&args.read.include).map_err(PipelineError::from)?;
    let mut groups = vec![];
    let mut unlisted = vec![];
    for path in &args.paths {
        match list(path, &include) {
            Ok(group) if group.files.is_empty() && group.root.is_some() => {
                unlisted.push(path.display().to_string());
            }
            Ok(group) => groups.push(group),
            Err(rejected) => groups.push(Group::unreadable(*rejected)),
        }
    }
    let total_bytes = groups.iter().flat_map(|g| &g.files).map(|c| c.size).sum();
    let mut tally = tally::Tally::new(args.show, total_bytes);
    for group in &groups {
        if let Some(unread) = &group.unreadable {
            tally.push(unread.clone());
            continue;
        }
        let cfg = ParseConfig {
            input_root: group.root.clone(),
            ..cfg.clone()
        };
        let source = Source::folder(Path::new(""));
        read_files(&source, &group.files, &cfg, &mut tally)?;
    }
    let (mut files, capped) = tally.finish();
    if files.is_empty() {
        return Err(CheckError::Nothing(unlisted.join(", ")));
    }
    for f in &mut files {
        if let Some(note) = explicit_note(&args.paths, &f.path, &include) {
            f.note = Some(note);
        }
    }
    Ok(report(files, &unlisted, capped))
}

/// The files of one PATH argument: a folder's candidates (read with the
/// folder as the root links must stay in) or one file.
struct Group {
    root: Option<Arc<Path>>,
    files: Vec<Candidate>,
    unreadable: Option<FileCheck>,
}

impl Group {
    fn unreadable(f: FileCheck) -> Group {
        Group {
            root: None,
            files: vec![],
            unreadable: Some(f),
        }
    }
}

/// Lists `path` (see [`Group`]); a path that cannot be read is a rejection.
fn list(path: &Path, include: &Include) -> Result<Group, Box<FileCheck>> {
    let unreadable = |what: &str, e: std::io::Error| {
        Box::new(FileCheck::rejected(
            path.display().to_string(),
            Rejection {
                code: FileCode::Unreadable,
                reason: format!("cannot {what}: {e}"),
            },
        ))
    };
    let md = std::fs::metadata(path).map_err(|e| unreadable("open the file", e))?;
    if !md.is_dir() {
        let file = Candidate {
            path: path.to_path_buf(),
            size: md.len(),
            mtime_micros: mtime_micros(&md),
            file_id: Some(FileId::of(&md)),
        };
        return Ok(Group {
            root: None,
            files: vec![file],
            unreadable: None,
        });
    }
    let files = list_included(path, &[], include, &AtomicU64::new(0))
        .map_err(|e| unreadable("list the folder", e))?;
    Ok(Group {
        root: std::fs::canonicalize(path).ok().map(Arc::from),
        files,
        unreadable: None,
    })
}

/// For a file named on the command line: whether `run` would leave it out.
fn explicit_note(paths: &[PathBuf], path: &str, include: &Include) -> Option<String> {
    let named = paths.iter().any(|p| p.display().to_string() == path);
    let name = Path::new(path).file_name()?.to_string_lossy().into_owned();
    if !named || !std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
        return None;
    }
    if is_ignored(&name) {
        return Some(format!(
            "run ignores this name ({name:?}: hidden, `_`-prefixed or temporary) until the \
             file is renamed"
        ));
    }
    (!include.matches(Path::new(&name)))
        .then(|| "--include does not select this name: run would not read it".to_string())
}

/// The report over the checked files.
fn report(files: Vec<FileCheck>, unlisted: &[String], capped: bool) -> CheckReport {
    let mut totals = Totals::default();
    for f in &files {
        totals.files += 1;
        totals.files_rejected += u64::from(f.verdict == Verdict::Rejected);
        totals.rows_read += f.rows_read;
        totals.rows_valid += f.rows_valid;
        totals.rows_invalid += f.rows_invalid;
        totals.duplicate_ids += f.duplicate_ids;
    }
    let verdict = files
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Clean);
    let mut notes = vec![];
    if totals.duplicate_ids > 0 {
        notes.push(format!(
            "{} valid row(s) repeat an event id seen before in the checked files: run loads \
             the first and counts the others as duplicates, which is not an error",
            totals.duplicate_ids
        ));
    }
    if capped {
        notes.push(format!(
            "repeated event ids were looked for among the first {ID_CAP} distinct ids only \
             (a memory bound); later rows were not compared"
        ));
    }
    for dir in unlisted {
        notes.push(format!(
            "no input file in {dir} (as --include selects them)"
        ));
    }
    CheckReport {
        verdict,
        exit_code: verdict.exit_code(),
        files,
        totals,
        notes,
    }
}
