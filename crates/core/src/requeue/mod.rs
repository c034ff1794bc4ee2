//! `shopstream requeue`: moves quarantined files back into the input folder
//! so that the next `run` reads them again (after a limit was raised, a
//! layout added, a setting changed), keeping the history of their
//! rejection.
//!
//! The files are picked by path or by the code of their rejection reason
//! ([`codes`]). For each one, first the ledger: its rejected rows are
//! marked requeued (time and destination, [`ledger::mark_requeued`]) in
//! one transaction, and a requeued row no longer makes the file known; then
//! the file moves back to where it came from (below `--input`, the
//! sub-folders it was quarantined under kept; a numbered name beside it if
//! that name was taken since) and its `.reason.txt` is deleted (the reason
//! stays in the ledger), see [`dispose::requeue`]. Interrupted between the
//! two, the file is still in the quarantine and a second `requeue` of it
//! finishes the move. The loader then treats it as any delivery: its
//! content, only ever rejected, is read and loaded (or rejected again,
//! with a new ledger row).
//!
//! Folder input only: an object store's quarantine is not touched. It
//! never moves a file the ledger does not know as quarantined, and never
//! replaces a file.

pub mod codes;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio_postgres::Client;

pub use codes::FileCode;

use crate::sink::ledger::{self, Quarantined};
use crate::source::dispose;
use crate::source::scope::parse_work_folder;

/// Output format of `shopstream requeue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line per file for people.
    #[default]
    Table,
    /// One JSON object, for scripts.
    Json,
}

/// `shopstream requeue` options.
#[derive(clap::Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["paths", "code"])))]
pub struct RequeueArgs {
    /// Quarantined files to move back (as they lie in the quarantine
    /// folder, e.g. incoming/_quarantine/2026-01-02.csv).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Every quarantined file rejected for this reason instead.
    #[arg(long, value_enum, value_name = "CODE", env = "SHOPSTREAM_REQUEUE_CODE")]
    pub code: Option<FileCode>,

    /// The loader's input folder, where the files go back to (as `run` was
    /// given it). Folders only: an s3:// input is refused.
    #[arg(long, short, env = "SHOPSTREAM_INPUT", default_value = "./incoming", value_parser = parse_work_folder)]
    pub input: PathBuf,

    /// The loader's quarantine folder [default: INPUT/_quarantine], as for
    /// `run`.
    #[arg(long, env = "SHOPSTREAM_QUARANTINE_DIR", value_parser = parse_work_folder)]
    pub quarantine_dir: Option<PathBuf>,

    /// List what would move, and change nothing.
    #[arg(long, env = "SHOPSTREAM_REQUEUE_DRY_RUN")]
    pub dry_run: bool,

    /// Output format.
    #[arg(long, value_enum, env = "SHOPSTREAM_REQUEUE_FORMAT", default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    #[error(
        "requeue works on a folder input only; for {0}, copy the object from the quarantine \
         prefix back under a new key (content only ever rejected is read again)"
    )]
    ObjectStore(String),
    #[error(
        "{}: not a file the ledger knows as quarantined (requeue moves only files shopstream \
         quarantined; `shopstream requeue --code other --dry-run` lists them all)",
        .0.display()
    )]
    NotQuarantined(PathBuf),
    #[error("database error while {doing}: {}", crate::db::connect::error_chain(.source))]
    Db {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot move {} back to {}: {source}; it stays in the quarantine, marked requeued: run the same requeue again", from.display(), to.display())]
    Move {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RequeueError {
    /// Whether the arguments must change (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            RequeueError::ObjectStore(_) | RequeueError::NotQuarantined(_)
        )
    }
}

/// One file requeued (or, dry, to be).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requeued {
    /// Its ledger row (the rejection).
    pub ledger_id: i64,
    pub quarantined: String,
    /// Where it goes (or went) in the input.
    pub to: String,
    pub code: FileCode,
    pub reason: String,
}

/// Requeues the files `args` names (see the module docs); returns them.
pub async fn requeue(
    client: &mut Client,
    args: &RequeueArgs,
) -> Result<Vec<Requeued>, RequeueError> {
    let input = args.input.display().to_string();
    if crate::source::store::is_url(&input) {
        return Err(RequeueError::ObjectStore(input));
    }
    let quarantine = args
        .quarantine_dir
        .clone()
        .unwrap_or_else(|| args.input.join("_quarantine"));
    let known = ledger::quarantined(client)
        .await
        .map_err(|source| RequeueError::Db {
            doing: "reading the quarantined files from the ledger",
            source,
        })?;
    let mut plan = select(args, &quarantine, known)?;
    if args.dry_run || plan.is_empty() {
        return Ok(plan);
    }
    let marks: Vec<(i64, String)> = plan.iter().map(|r| (r.ledger_id, r.to.clone())).collect();
    let db = |source| RequeueError::Db {
        doing: "marking the files requeued in the ledger",
        source,
    };
    let at = SystemTime::now();
    let tx = client.transaction().await.map_err(db)?;
    ledger::mark_requeued(&tx, &marks, at).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    let mut renamed = vec![];
    for r in &mut plan {
        let (from, to) = (PathBuf::from(&r.quarantined), PathBuf::from(&r.to));
        let moved = tokio::task::spawn_blocking({
            let (from, to) = (from.clone(), to.clone());
            move || dispose::requeue(&from, &to)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match moved {
            Ok(Some(went)) if went != to => {
                r.to = went.display().to_string();
                renamed.push((to.display().to_string(), r.to.clone()));
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!(file = ?r.quarantined, "gone from the quarantine meanwhile"),
            Err(source) => return Err(RequeueError::Move { from, to, source }),
        }
    }
    if !renamed.is_empty() {
        ledger::requeued_to(&*client, &renamed, at)
            .await
            .map_err(|source| RequeueError::Db {
                doing: "recording where the files went",
                source,
            })?;
    }
    Ok(plan)
}

/// The quarantined files `args` names, each with where it goes.
fn select(
    args: &RequeueArgs,
    quarantine: &Path,
    known: Vec<Quarantined>,
) -> Result<Vec<Requeued>, RequeueError> {
    // Only files still in the quarantine, by their real path.
    let on_disk: Vec<(PathBuf, Quarantined)> = known
        .into_iter()
        .filter_map(|q| Some((std::fs::canonicalize(&q.moved_to).ok()?, q)))
        .collect();
    let quarantine = std::fs::canonicalize(quarantine).unwrap_or_else(|_| quarantine.into());
    let plan = |(at, q): &(PathBuf, Quarantined)| {
        let reason = q.reason.clone().unwrap_or_default();
        Requeued {
            ledger_id: q.id,
            quarantined: at.display().to_string(),
            to: destination(&args.input, &quarantine, at, &q.path)
                .display()
                .to_string(),
            code: FileCode::of(&reason),
            reason,
        }
    };
    if let Some(code) = args.code {
        return Ok(on_disk
            .iter()
            .filter(|(at, q)| {
                at.starts_with(&quarantine)
                    && FileCode::of(q.reason.as_deref().unwrap_or("")) == code
            })
            .map(plan)
            .collect());
    }
    let mut out = vec![];
    for p in &args.paths {
        let real = std::fs::canonicalize(p).map_err(|_| RequeueError::NotQuarantined(p.clone()))?;
        let found = on_disk
            .iter()
            .find(|(at, _)| *at == real)
            .ok_or_else(|| RequeueError::NotQuarantined(p.clone()))?;
        if !out.iter().any(|r: &Requeued| r.ledger_id == found.1.id) {
            out.push(plan(found));
        }
    }
    Ok(out)
}

/// Where a quarantined file goes back to: below `input`, in the
/// sub-folders it lies in below the quarantine, under the name it was
/// delivered with (`original`, the ledger's path).
fn destination(input: &Path, quarantine: &Path, at: &Path, original: &str) -> PathBuf {
    let folder = at
        .strip_prefix(quarantine)
        .ok()
        .and_then(Path::parent)
        .unwrap_or(Path::new(""));
    let name = Path::new(original)
        .file_name()
        .or(at.file_name())
        .unwrap_or("requeued.csv".as_ref());
    input.join(folder).join(name)
}

/// What `requeue` prints.
pub fn render(
    done: &[Requeued],
    dry_run: bool,
    format: Format,
) -> Result<String, serde_json::Error> {
    if format == Format::Json {
        let out = serde_json::json!({ "dry_run": dry_run, "files": done });
        return Ok(serde_json::to_string_pretty(&out)? + "\n");
    }
    let verb = if dry_run { "would move" } else { "moved" };
    let mut out = String::new();
    for r in done {
        out.push_str(&format!(
            "{verb} {} -> {} ({}: {})\n",
            r.quarantined,
            r.to,
            r.code.as_str(),
            r.reason
        ));
    }
    out.push_str(&match (done.len(), dry_run) {
        (0, _) => "no quarantined file matched\n".to_string(),
        (n, true) => format!("{n} file(s) would be requeued; nothing changed (--dry-run)\n"),
        (n, false) => format!(
            "{n} file(s) requeued: the next `shopstream run` reads them again; their rejection \
             stays in the ledger (ingested_files.requeued_at)\n"
        ),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_goes_back_to_its_folder_under_its_delivered_name() {
        let q = Path::new("/in/_quarantine");
        assert_eq!(
            destination(
                Path::new("in"),
                q,
                Path::new("/in/_quarantine/eu/a.1.csv"),
                "in/eu/a.csv"
            ),
            Path::new("in/eu/a.csv")
        );
        // Quarantined elsewhere: straight into the input.
        assert_eq!(
            destination(Path::new("in"), q, Path::new("/old/b.csv"), "/x/b.csv"),
            Path::new("in/b.csv")
        );
    }
}
