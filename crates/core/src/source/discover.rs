//! Finds the files in the input folder that are ready to load.
//!
//! A file is a candidate when it is a regular file whose name is not hidden
//! (`.x`), not `_`-prefixed and has no temporary suffix (`.tmp`, `.part`,
//! `.crdownload`, `_COPYING_`): writers create files under such names and
//! rename them in when complete, so a file "counts" once renamed. With
//! [`list_included`], it must also match the `--include` patterns
//! (`source::scope`); a FIFO, socket or device is never one. The folder
//! is listed recursively (hidden and `_` folders are skipped, symlinked
//! folders are not followed; [`list_excluding`] also skips given folders such
//! as the archive). A symlinked file is a candidate only when it resolves to
//! a regular file inside the input folder; one that leads outside (or
//! nowhere) is skipped with a warning, once per link. [`FolderWatcher`]
//! turns OS file events into wake-ups; the listing stays the source of
//! truth because events can be lost (queue overflow, network filesystems).
//!
//! This module never opens file contents, never follows a symlink out of
//! the input folder and never decides whether a file was already loaded
//! (the ledger does). The reader checks again what it really opened
//! ([`opened_inside`]), so a link swapped in after the listing is caught.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher as _};

use super::scope::Include;
use tokio::sync::mpsc;

/// A file ready to be loaded, with the identity the ledger uses (see
/// [`crate::sink::ledger`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, microseconds since the Unix epoch.
    pub mtime_micros: i64,
    /// A local file's device, inode and ctime; `None` for objects of a
    /// store (their identity is URL, size and last-modified time).
    pub file_id: Option<FileId>,
}

/// What identifies a local file beyond path, size and mtime: a rewrite in
/// place changes the ctime (and a copy over it the inode) even when size
/// and mtime are set back. Taken from the listing's metadata, never from
/// the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub device: u64,
    pub inode: u64,
    /// Status change time (st_ctime), nanoseconds since the Unix epoch.
    pub ctime_ns: i64,
}

impl FileId {
    pub fn of(md: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            device: md.dev(),
            inode: md.ino(),
            ctime_ns: md
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(md.ctime_nsec()),
        }
    }
}

const TEMP_SUFFIXES: [&str; 4] = [".tmp", ".part", ".crdownload", "_COPYING_"];

/// True for names a writer is still working on or that are not data.
pub fn is_ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('_')
        || TEMP_SUFFIXES.iter().any(|s| {
            // Bytes: the name's tail may split a multi-byte character.
            name.len() > s.len()
                && name.as_bytes()[name.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
        })
}

/// Lists every candidate below `dir`, oldest first (then by path).
pub fn list(dir: &Path) -> std::io::Result<Vec<Candidate>> {
    list_excluding(dir, &[])
}

/// Like [`list`], but skips the sub-folders that are (canonically) one of
/// `excluded`, e.g. the archive and quarantine folders. Excluded folders that
/// do not exist are ignored.
pub fn list_excluding(dir: &Path, excluded: &[PathBuf]) -> std::io::Result<Vec<Candidate>> {
    list_included(dir, excluded, &Include::everything(), &AtomicU64::new(0))
}

/// Like [`list_excluding`], keeping only files `include` matches (by name,
/// or by path below `dir`); a FIFO, socket or device it matches is skipped
/// with one warning. `progress` counts the entries looked at (so a caller
/// can tell a slow listing from a stuck one).
pub fn list_included(
    dir: &Path,
    excluded: &[PathBuf],
    include: &Include,
    progress: &AtomicU64,
) -> std::io::Result<Vec<Candidate>> {
    let excluded: Vec<PathBuf> = excluded
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let root = std::fs::canonicalize(dir)?;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            // The root must exist; a subfolder may vanish while we list.
            Err(e) if d != dir && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            progress.fetch_add(1, Ordering::Relaxed);
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            let included = || include.matches(path.strip_prefix(dir).unwrap_or(&path));
            if ft.is_symlink() {
                if name.to_str().is_some_and(is_ignored) {
                    continue;
                }
                // A linked folder is warned about whatever its name.
                let to_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
                if !to_dir && !included() {
                    continue;
                }
                if let Some(c) = symlinked_candidate(&entry.path(), &root) {
                    out.push(c);
                }
                continue;
            }
            let Some(name) = name.to_str() else {
                // Not UTF-8: still a file we must account for; use lossy.
                if ft.is_file() && included() {
                    if let Some(c) = candidate(&entry.path()) {
                        out.push(c);
                    }
                }
                continue;
            };
            if is_ignored(name) {
                continue;
            }
            if ft.is_dir() {
                let sub = entry.path();
                if excluded.is_empty()
                    || !std::fs::canonicalize(&sub).is_ok_and(|c| excluded.contains(&c))
                {
                    stack.push(sub);
                }
            } else if !included() {
                continue;
            } else if !ft.is_file() {
                warn_once(
                    &entry.path(),
                    "not a regular file (a FIFO, socket or device): skipped, never moved",
                );
            } else {
                crate::source::bounded::stall_listing_for_tests(&entry.path());
                if let Some(c) = candidate(&entry.path()) {
                    out.push(c);
                }
            }
        }
    }
    out.sort_by(|a, b| (a.mtime_micros, &a.path).cmp(&(b.mtime_micros, &b.path)));
    Ok(out)
}

/// Symlinks already warned about (each is warned about once per process).
static WARNED_LINKS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn warn_once(link: &Path, why: &str) {
    let mut guard = match WARNED_LINKS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if guard
        .get_or_insert_with(HashSet::new)
        .insert(link.to_path_buf())
    {
        tracing::warn!(file = ?link.display().to_string(), "skipped: {why}");
    }
}

/// A symlink is loaded (under its own path) only when it resolves to a
/// regular file inside `root` (canonical). Symlinked folders are never
/// followed (no loops, no escape).
fn symlinked_candidate(link: &Path, root: &Path) -> Option<Candidate> {
    let Ok(target) = std::fs::canonicalize(link) else {
        warn_once(link, "a symlink that leads nowhere (dangling)");
        return None;
    };
    if !target.starts_with(root) {
        warn_once(
            link,
            "a symlink that leads outside the input folder, and shopstream never follows links \
             out of it",
        );
        return None;
    }
    if !std::fs::metadata(&target).is_ok_and(|m| m.is_file()) {
        warn_once(
            link,
            "a symlink to a folder or special file; those are not followed",
        );
        return None;
    }
    candidate(link)
}

/// Whether the open file `file` really lies inside `root` (canonical): what
/// was opened, whatever links were swapped in since the listing. Uses
/// `/proc/self/fd`; where that is missing, resolves `path` instead.
pub fn opened_inside(file: &std::fs::File, path: &Path, root: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path));
    real.is_ok_and(|r| r.starts_with(root))
}

fn candidate(path: &Path) -> Option<Candidate> {
    // `metadata` follows a symlink to a file; a vanished file is skipped.
    let md = std::fs::metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    Some(Candidate {
        path: path.to_path_buf(),
        size: md.len(),
        mtime_micros: mtime_micros(&md),
        file_id: Some(FileId::of(&md)),
    })
}

/// A file's modification time in microseconds since the Unix epoch (0 when
/// the platform cannot tell).
pub fn mtime_micros(md: &std::fs::Metadata) -> i64 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as i64)
}

/// Wakes the loader when something changes in the input folder.
pub struct FolderWatcher {
    _watcher: Option<notify::RecommendedWatcher>,
    rx: mpsc::Receiver<()>,
}

impl FolderWatcher {
    /// Watches `dir` recursively. If the OS watcher cannot be set up (e.g. no
    /// inotify instances left), logs why and relies on periodic listing.
    pub fn new(dir: &Path) -> FolderWatcher {
        let (tx, rx) = mpsc::channel(1);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                if !matches!(ev.kind, notify::EventKind::Access(_)) {
                    // A full channel already holds a wake-up: coalesce.
                    let _ = tx.try_send(());
                }
            } else {
                // Errors (e.g. queue overflow) mean events were lost: relist.
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(dir, RecursiveMode::Recursive).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} for file events ({e}); relying on periodic listing",
                    dir.display()
                );
                None
            }
        };
        FolderWatcher {
            _watcher: watcher,
            rx,
        }
    }

    /// Waits for a file event or for `relist` to pass, whichever is first.
    pub async fn wait(&mut self, relist: Duration) {
        let _ = tokio::time::timeout(relist, self.rx.recv()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        for n in [
            ".events.csv.tmp",
            ".hidden.csv",
            "_SUCCESS",
            "_tmp.csv",
            "a.csv.tmp",
            "a.csv.TMP",
            "a.part",
            "a.csv.crdownload",
            "a.csv._COPYING_",
        ] {
            assert!(is_ignored(n), "{n}");
        }
        for n in [
            "events.csv",
            "tmp.csv",
            "partition.csv",
            "a_b.csv",
            "x.csv.bak",
            "ünïcødé-事件.csv",
            "事件",
        ] {
            assert!(!is_ignored(n), "{n}");
        }
    }

    #[test]
    fn list_skips_ignored_and_recurses() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        std::fs::write(p.join("a.csv"), "x").expect("write");
        std::fs::write(p.join(".a.csv.tmp"), "x").expect("write");
        std::fs::write(p.join("_SUCCESS"), "").expect("write");
        std::fs::create_dir_all(p.join("2026/11")).expect("mkdir");
        std::fs::write(p.join("2026/11/b.csv"), "xy").expect("write");
        std::fs::create_dir_all(p.join(".staging")).expect("mkdir");
        std::fs::write(p.join(".staging/c.csv"), "x").expect("write");
        let mut names: Vec<_> = list(p)
            .expect("list")
            .into_iter()
            .map(|c| c.path.strip_prefix(p).expect("under").to_path_buf())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [PathBuf::from("2026/11/b.csv"), PathBuf::from("a.csv")]
        );
    }

    #[test]
    fn list_excluding_skips_excluded_folders() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        std::fs::write(p.join("a.csv"), "x").expect("write");
        std::fs::create_dir_all(p.join("archive/sub")).expect("mkdir");
        std::fs::write(p.join("archive/sub/b.csv"), "x").expect("write");
        assert_eq!(list(p).expect("list").len(), 2, "list does not exclude");
        // Given by another spelling of the same folder: still excluded.
        let excluded = [p.join("archive/../archive"), p.join("missing")];
        let found = list_excluding(p, &excluded).expect("list");
        assert_eq!(
            found.into_iter().map(|c| c.path).collect::<Vec<_>>(),
            [p.join("a.csv")]
        );
    }

    #[test]
    fn list_included_keeps_matching_regular_files_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        std::fs::write(p.join("a.csv"), "x").expect("write");
        std::fs::write(p.join("notes.txt"), "x").expect("write");
        std::fs::create_dir(p.join("sub")).expect("mkdir");
        std::fs::write(p.join("sub/b.CSV"), "x").expect("write");
        let fifo =
            std::ffi::CString::new(p.join("x.csv").as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let seen = AtomicU64::new(0);
        let mut found: Vec<PathBuf> = list_included(p, &[], &Include::default(), &seen)
            .expect("list")
            .into_iter()
            .map(|c| c.path)
            .collect();
        found.sort();
        assert_eq!(found, [p.join("a.csv"), p.join("sub/b.CSV")]);
        assert_eq!(seen.load(Ordering::Relaxed), 5, "every entry counted");
    }

    #[test]
    fn opened_inside_judges_what_was_really_opened() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("in");
        std::fs::create_dir(&root).expect("mkdir");
        std::fs::write(root.join("a.csv"), "x").expect("write");
        std::fs::write(d.path().join("secret"), "s").expect("write");
        let root = std::fs::canonicalize(&root).expect("canonical");
        let inside = root.join("a.csv");
        let f = std::fs::File::open(&inside).expect("open");
        assert!(opened_inside(&f, &inside, &root));
        // A link swapped in for the listed name, pointing out.
        let swapped = root.join("b.csv");
        std::os::unix::fs::symlink(d.path().join("secret"), &swapped).expect("symlink");
        let f = std::fs::File::open(&swapped).expect("open");
        assert!(!opened_inside(&f, &swapped, &root));
        // Listing skips it.
        let found: Vec<PathBuf> = list(&root)
            .expect("list")
            .into_iter()
            .map(|c| c.path)
            .collect();
        assert_eq!(found, [inside]);
    }

    #[tokio::test]
    async fn watcher_wakes_on_rename_in() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut w = FolderWatcher::new(d.path());
        std::fs::write(d.path().join(".x.tmp"), "a").expect("write");
        std::fs::rename(d.path().join(".x.tmp"), d.path().join("x.csv")).expect("rename");
        let t = std::time::Instant::now();
        w.wait(Duration::from_secs(10)).await;
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "woken by the event, not the timeout"
        );
    }
}
