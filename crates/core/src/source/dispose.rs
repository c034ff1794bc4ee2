//! What becomes of an input file once the database has committed its fate:
//! kept, archived or deleted after loading, or quarantined with a
//! `<name>.reason.txt` sidecar when it was rejected.
//!
//! This module owns the archive and quarantine folders (by default
//! `<input>/_archive` and `<input>/_quarantine`, which discovery skips) and
//! the one way files get there: link (or copy) to a free name, then remove the
//! source. That never overwrites anything, never loses the file, and may be
//! repeated after a crash at any point: a copy an interrupted call already
//! placed is recognised and reused.
//!
//! It must never be called before the commit, never move or delete a version
//! of a file other than the one loaded (size, mtime and the device, inode and
//! ctime of the listing are checked first), and
//! never touch the target of a symlinked input file (the link itself moves).

use std::fs::{self, File, Metadata};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::discover::{mtime_micros, Candidate, FileId};

/// What becomes of a file once it is loaded (or found to be a duplicate).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AfterLoad {
    #[default]
    Keep,
    Archive,
    Delete,
}

/// How the database judged the file.
pub enum Fate<'a> {
    Processed,
    Rejected { reason: &'a str },
}

/// What was done with the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Kept,
    Archived(PathBuf),
    Deleted,
    Quarantined(PathBuf),
    /// Nothing is at the path any more (someone else moved it).
    Gone,
    /// The path now holds another version of the file (size, mtime, inode or
    /// ctime differ from the candidate): left alone, it will be loaded as a
    /// new file.
    Changed,
}

impl Disposition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Disposition::Kept => "kept",
            Disposition::Archived(_) => "archived",
            Disposition::Deleted => "deleted",
            Disposition::Quarantined(_) => "quarantined",
            Disposition::Gone => "gone",
            Disposition::Changed => "changed",
        }
    }

    /// Where the file went, if it was moved.
    pub fn moved_to(&self) -> Option<&Path> {
        match self {
            Disposition::Archived(p) | Disposition::Quarantined(p) => Some(p),
            _ => None,
        }
    }
}

/// Why a file's fate could not be carried out. The file is never lost: it is
/// still at its path (or already at the destination named).
#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    #[error(
        "cannot check {} before disposing of it: {source}; check that shopstream may read it",
        path.display()
    )]
    Inspect { path: PathBuf, source: io::Error },

    #[error(
        "cannot delete {} after loading it: {source}; check that shopstream may write to {}",
        path.display(), parent(path).display()
    )]
    Delete { path: PathBuf, source: io::Error },

    #[error(
        "cannot {action} {} to {}: {source}; check that shopstream may write to {} and to {}",
        from.display(), to.display(), parent(to).display(), parent(from).display()
    )]
    Move {
        /// "archive" or "quarantine".
        action: &'static str,
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },

    #[error(
        "cannot write the reason for quarantining {} to {}: {source}; the file stays where it \
         is until this works; check that shopstream may write to {}",
        from.display(), sidecar.display(), parent(sidecar).display()
    )]
    Reason {
        from: PathBuf,
        sidecar: PathBuf,
        source: io::Error,
    },
}

/// Carries out `--after-load` and quarantines rejected files.
#[derive(Debug, Clone)]
pub struct Disposer {
    input: PathBuf,
    after_load: AfterLoad,
    archive_dir: PathBuf,
    quarantine_dir: PathBuf,
}

impl Disposer {
    /// `archive_dir` defaults to `<input>/_archive`, `quarantine_dir` to
    /// `<input>/_quarantine` (the `_` prefix keeps discovery away from them).
    pub fn new(
        input: &Path,
        after_load: AfterLoad,
        archive_dir: Option<PathBuf>,
        quarantine_dir: Option<PathBuf>,
    ) -> Disposer {
        Disposer {
            input: input.to_path_buf(),
            after_load,
            archive_dir: archive_dir.unwrap_or_else(|| input.join("_archive")),
            quarantine_dir: quarantine_dir.unwrap_or_else(|| input.join("_quarantine")),
        }
    }

    pub fn after_load(&self) -> AfterLoad {
        self.after_load
    }

    pub fn archive_dir(&self) -> &Path {
        &self.archive_dir
    }

    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine_dir
    }

    /// Folders discovery must not list (the archive and quarantine folders).
    pub fn excluded_dirs(&self) -> Vec<PathBuf> {
        vec![self.archive_dir.clone(), self.quarantine_dir.clone()]
    }

    /// Carries out the fate of one listed file. Blocking (std::fs); the
    /// caller runs it on a blocking thread. Safe to call again after a crash.
    pub fn finish(&self, file: &Candidate, fate: Fate<'_>) -> Result<Disposition, DisposeError> {
        let src = &file.path;
        let md = match fs::metadata(src) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Disposition::Gone),
            Err(source) => {
                return Err(DisposeError::Inspect {
                    path: src.clone(),
                    source,
                })
            }
        };
        if md.len() != file.size
            || mtime_micros(&md) != file.mtime_micros
            || file.file_id.is_some_and(|id| id != FileId::of(&md))
        {
            return Ok(Disposition::Changed);
        }
        match (fate, self.after_load) {
            (Fate::Processed, AfterLoad::Keep) => Ok(Disposition::Kept),
            (Fate::Processed, AfterLoad::Delete) => match fs::remove_file(src) {
                Ok(()) => {
                    sync_dir(parent(src));
                    Ok(Disposition::Deleted)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Disposition::Gone),
                Err(source) => Err(DisposeError::Delete {
                    path: src.clone(),
                    source,
                }),
            },
            (Fate::Processed, AfterLoad::Archive) => {
                match self.move_to(&self.archive_dir, src, "archive", None)? {
                    Some(to) => Ok(Disposition::Archived(to)),
                    None => Ok(Disposition::Gone),
                }
            }
            (Fate::Rejected { reason }, _) => {
                match self.move_to(&self.quarantine_dir, src, "quarantine", Some(reason))? {
                    Some(to) => Ok(Disposition::Quarantined(to)),
                    None => Ok(Disposition::Gone),
                }
            }
        }
    }

    /// Moves `src` below `dir` (keeping its sub-folders), writing the
    /// `.reason.txt` sidecar first when there is a reason. `None`: gone.
    fn move_to(
        &self,
        dir: &Path,
        src: &Path,
        action: &'static str,
        reason: Option<&str>,
    ) -> Result<Option<PathBuf>, DisposeError> {
        let dest = dir.join(self.relative(src));
        let err = |source| DisposeError::Move {
            action,
            from: src.to_path_buf(),
            to: dest.clone(),
            source,
        };
        let Some(to) = place(src, &dest).map_err(err)? else {
            return Ok(None);
        };
        if let Some(reason) = reason {
            // Before the source goes, so a retry after a crash rewrites it.
            let mut sidecar = to.clone().into_os_string();
            sidecar.push(".reason.txt");
            let sidecar = PathBuf::from(sidecar);
            let text = format!(
                "file: {}\nquarantined: {}\nreason: {reason}\n",
                src.display(),
                chrono::Utc::now().to_rfc3339()
            );
            write_atomic(&sidecar, &text).map_err(|source| DisposeError::Reason {
                from: src.to_path_buf(),
                sidecar,
                source,
            })?;
        }
        remove_placed(src, &to).map_err(err)?;
        Ok(Some(to))
    }

    /// The path below the input folder (sub-folders kept), else the name.
    fn relative(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.input) {
            Ok(rel) if rel.file_name().is_some() => rel.to_path_buf(),
            _ => PathBuf::from(path.file_name().unwrap_or("unnamed".as_ref())),
        }
    }
}

/// Moves `src` to `dest` (or a free numbered name) by copying, as when hard
/// links are impossible; returns where it went. Production goes through
/// [`place`], which falls back to the same copy; this lets tests force it.
#[cfg(test)]
pub(crate) fn move_by_copy(src: &Path, dest: &Path) -> io::Result<PathBuf> {
    let to = place_by_copy(src, &fs::symlink_metadata(src)?, dest)?;
    remove_placed(src, &to)?;
    Ok(to)
}

/// Puts `src` (the file or the link itself) at `dest` or the first free
/// `stem.N.ext` without removing it from `src`, never replacing anything. A
/// name already holding `src` (left by an interrupted call) is reused.
/// `None`: `src` is gone.
fn place(src: &Path, dest: &Path) -> io::Result<Option<PathBuf>> {
    let src_md = match fs::symlink_metadata(src) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        md => md?,
    };
    fs::create_dir_all(parent(dest))?;
    remove_if_exists(&temp_beside(dest))?; // left by an interrupted copy
    let placed = match claim(src, src, &src_md, dest) {
        Err(e) if links_impossible(&e) => place_by_copy(src, &src_md, dest),
        r => r,
    };
    match placed {
        Err(e) if e.kind() == io::ErrorKind::NotFound && gone(src) => Ok(None),
        r => r.map(Some),
    }
}

/// [`place`] for when `src` cannot be linked: a synced copy in a hidden temp
/// file beside `dest` (a stale one is replaced), then claimed.
fn place_by_copy(src: &Path, src_md: &Metadata, dest: &Path) -> io::Result<PathBuf> {
    fs::create_dir_all(parent(dest))?;
    let tmp = temp_beside(dest);
    remove_if_exists(&tmp)?;
    let placed = copy_to(src, src_md, &tmp).and_then(|()| claim(&tmp, src, src_md, dest));
    let _ = fs::remove_file(&tmp);
    placed
}

fn copy_to(src: &Path, src_md: &Metadata, tmp: &Path) -> io::Result<()> {
    if src_md.is_symlink() {
        return std::os::unix::fs::symlink(fs::read_link(src)?, tmp);
    }
    fs::copy(src, tmp)?;
    let f = File::options().write(true).open(tmp)?;
    f.set_modified(src_md.modified()?)?;
    f.sync_all()
}

/// Hard-links `from` (`src` itself or a temp copy of it) to the first name
/// that is free or already holds `src`. A temp copy that cannot be linked is
/// renamed, only to a name checked free (rename would replace).
fn claim(from: &Path, src: &Path, src_md: &Metadata, dest: &Path) -> io::Result<PathBuf> {
    let copy = from != src;
    for n in 0..u32::MAX {
        let to = numbered(dest, n);
        match fs::hard_link(from, &to) {
            Ok(()) => return Ok(to),
            Err(e) if copy && links_impossible(&e) && gone(&to) => {
                fs::rename(from, &to)?;
                return Ok(to);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists || copy && links_impossible(&e) => {
                if holds(&to, src, src_md)? {
                    return Ok(to);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "no free name"))
}

/// True when `to` already holds `src`: the same inode (an earlier link), the
/// same symlink target, or a file of the same size, mtime and bytes.
fn holds(to: &Path, src: &Path, src_md: &Metadata) -> io::Result<bool> {
    let md = match fs::symlink_metadata(to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        md => md?,
    };
    if (md.dev(), md.ino()) == (src_md.dev(), src_md.ino()) {
        return Ok(true);
    }
    if md.is_symlink() && src_md.is_symlink() {
        return Ok(fs::read_link(to)? == fs::read_link(src)?);
    }
    if !(md.is_file() && src_md.is_file())
        || md.len() != src_md.len()
        || mtime_micros(&md) != mtime_micros(src_md)
    {
        return Ok(false);
    }
    let (mut a, mut b) = (
        BufReader::new(File::open(src)?),
        BufReader::new(File::open(to)?),
    );
    loop {
        let (x, y) = (a.fill_buf()?, b.fill_buf()?);
        let n = x.len().min(y.len());
        if n == 0 || x[..n] != y[..n] {
            return Ok(x.is_empty() && y.is_empty());
        }
        a.consume(n);
        b.consume(n);
    }
}

/// The second half of a move: `to` is made durable, then `src` removed.
fn remove_placed(src: &Path, to: &Path) -> io::Result<()> {
    sync_dir(parent(to));
    remove_if_exists(src)?;
    sync_dir(parent(src));
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let tmp = temp_beside(path);
    remove_if_exists(&tmp)?;
    let mut f = File::create_new(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(parent(path));
    Ok(())
}

/// `a.csv` → `a.N.csv`, `a` → `a.N`; `n == 0` is `dest` itself.
fn numbered(dest: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return dest.to_path_buf();
    }
    let mut name = dest.file_stem().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    if let Some(ext) = dest.extension() {
        name.push(".");
        name.push(ext);
    }
    dest.with_file_name(name)
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".shopstream-tmp");
    path.with_file_name(name)
}

/// Link failures that copying can get around.
fn links_impossible(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::CrossesDevices
            | io::ErrorKind::Unsupported
            | io::ErrorKind::PermissionDenied
    )
}

fn gone(path: &Path) -> bool {
    matches!(fs::symlink_metadata(path), Err(e) if e.kind() == io::ErrorKind::NotFound)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a folder's entries durable; some platforms refuse, which is fine.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// An input folder with `rel` holding `body`, its mtime an hour ago.
    fn input_with(rel: &str, body: &str) -> (tempfile::TempDir, Candidate) {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("in").join(rel);
        fs::create_dir_all(parent(&path)).expect("mkdir");
        fs::write(&path, body).expect("write");
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
        let c = candidate(&path);
        (d, c)
    }

    fn candidate(path: &Path) -> Candidate {
        let md = fs::metadata(path).expect("metadata");
        Candidate {
            path: path.to_path_buf(),
            size: md.len(),
            mtime_micros: mtime_micros(&md),
            file_id: Some(FileId::of(&md)),
        }
    }

    /// Waits (with a deadline) until the filesystem's clock is past the
    /// ctime of `path`, so that a change now gives it another ctime (the
    /// kernel stamps ctimes from a coarse clock, a few ms per tick).
    fn tick_past(path: &Path, probe: &Path) {
        let ctime = |p: &Path| FileId::of(&fs::metadata(p).expect("metadata")).ctime_ns;
        let before = ctime(path);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            fs::write(probe, b"tick").expect("probe");
            if ctime(probe) > before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the ctime clock never moved"
            );
        }
        fs::remove_file(probe).expect("remove probe");
    }

    fn disposer(d: &tempfile::TempDir, after: AfterLoad) -> Disposer {
        Disposer::new(&d.path().join("in"), after, None, None)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keep_leaves_the_file() {
        let (d, c) = input_with("a.csv", "x");
        let got = disposer(&d, AfterLoad::Keep).finish(&c, Fate::Processed);
        assert_eq!(got.expect("finish"), Disposition::Kept);
        assert_eq!(fs::read_to_string(&c.path).expect("still there"), "x");
    }

    #[test]
    fn delete_removes_the_file() {
        let (d, c) = input_with("a.csv", "x");
        let got = disposer(&d, AfterLoad::Delete).finish(&c, Fate::Processed);
        assert_eq!(got.expect("finish"), Disposition::Deleted);
        assert!(gone(&c.path));
    }

    #[test]
    fn archive_keeps_subfolders_bytes_and_mtime() {
        let (d, c) = input_with("sub/dir/x.csv", "a,b\n1,2\n");
        let disp = disposer(&d, AfterLoad::Archive);
        assert_eq!(disp.archive_dir(), d.path().join("in/_archive"));
        let got = disp.finish(&c, Fate::Processed).expect("finish");
        let dest = d.path().join("in/_archive/sub/dir/x.csv");
        assert_eq!(got, Disposition::Archived(dest.clone()));
        assert_eq!((got.as_str(), got.moved_to()), ("archived", Some(&*dest)));
        assert!(gone(&c.path));
        assert_eq!(fs::read_to_string(&dest).expect("read"), "a,b\n1,2\n");
        assert_eq!(candidate(&dest).mtime_micros, c.mtime_micros);
    }

    #[test]
    fn archive_collision_numbers_and_never_overwrites() {
        let (d, c) = input_with("x.csv", "one");
        let disp = disposer(&d, AfterLoad::Archive);
        fs::create_dir_all(disp.archive_dir()).expect("mkdir");
        fs::write(disp.archive_dir().join("x.csv"), "old").expect("write");
        let got = disp.finish(&c, Fate::Processed).expect("finish");
        assert_eq!(got.moved_to(), Some(&*disp.archive_dir().join("x.1.csv")));
        fs::write(&c.path, "two!").expect("write");
        let got = disp.finish(&candidate(&c.path), Fate::Processed);
        assert_eq!(
            got.expect("finish").moved_to(),
            Some(&*disp.archive_dir().join("x.2.csv"))
        );
        let read = |n: &str| fs::read_to_string(disp.archive_dir().join(n)).expect("read");
        assert_eq!(
            [read("x.csv"), read("x.1.csv"), read("x.2.csv")],
            ["old", "one", "two!"]
        );
        assert_eq!(numbered(Path::new("q/a"), 1), Path::new("q/a.1"));
    }

    #[test]
    fn quarantine_moves_and_writes_the_reason() {
        let (d, c) = input_with("sub/bad.csv", "garbage");
        let disp = disposer(&d, AfterLoad::Keep);
        let got = disp.finish(
            &c,
            Fate::Rejected {
                reason: "no known layout",
            },
        );
        let dest = d.path().join("in/_quarantine/sub/bad.csv");
        assert_eq!(got.expect("finish"), Disposition::Quarantined(dest.clone()));
        assert!(gone(&c.path));
        assert_eq!(fs::read_to_string(&dest).expect("read"), "garbage");
        let why = fs::read_to_string(dest.with_file_name("bad.csv.reason.txt")).expect("sidecar");
        assert!(
            why.starts_with(&format!("file: {}\nquarantined: ", c.path.display())),
            "{why}"
        );
        assert!(why.ends_with("reason: no known layout\n"), "{why}");
        assert_eq!(names(parent(&dest)), ["bad.csv", "bad.csv.reason.txt"]);
    }

    #[test]
    fn changed_file_is_left_alone() {
        let (d, c) = input_with("a.csv", "x");
        let disp = disposer(&d, AfterLoad::Delete);
        let bigger = Candidate {
            size: 2,
            ..c.clone()
        };
        let older = Candidate {
            mtime_micros: c.mtime_micros - 1,
            ..c.clone()
        };
        for stale in [bigger, older] {
            assert_eq!(
                disp.finish(&stale, Fate::Processed).expect("finish"),
                Disposition::Changed
            );
            let fate = Fate::Rejected { reason: "r" };
            assert_eq!(
                disp.finish(&stale, fate).expect("finish"),
                Disposition::Changed
            );
        }
        assert_eq!(fs::read_to_string(&c.path).expect("still there"), "x");
    }

    #[test]
    fn a_file_rewritten_with_the_same_size_and_mtime_is_left_alone() {
        let (d, c) = input_with("a.csv", "x");
        tick_past(&c.path, &d.path().join("probe"));
        let mtime = fs::metadata(&c.path)
            .and_then(|m| m.modified())
            .expect("mtime");
        // What `cp -p` or `touch -r` leave: new bytes, same size and mtime.
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&c.path)
            .expect("open");
        (&f).write_all(b"y").expect("rewrite");
        f.set_modified(mtime).expect("restore mtime");
        drop(f);
        let now = candidate(&c.path);
        assert_eq!((now.size, now.mtime_micros), (c.size, c.mtime_micros));
        let disp = disposer(&d, AfterLoad::Delete);
        assert_eq!(
            disp.finish(&c, Fate::Processed).expect("finish"),
            Disposition::Changed
        );
        assert_eq!(fs::read_to_string(&c.path).expect("still there"), "y");
    }

    #[test]
    fn missing_file_is_gone() {
        let (d, c) = input_with("a.csv", "x");
        fs::remove_file(&c.path).expect("rm");
        for after in [AfterLoad::Keep, AfterLoad::Archive, AfterLoad::Delete] {
            let got = disposer(&d, after).finish(&c, Fate::Processed);
            assert_eq!(got.expect("finish"), Disposition::Gone);
        }
    }

    #[test]
    fn finishing_twice_is_gone_and_leaves_the_archive_alone() {
        let (d, c) = input_with("x.csv", "x");
        let disp = disposer(&d, AfterLoad::Archive);
        let first = disp.finish(&c, Fate::Processed).expect("finish");
        assert_eq!(
            disp.finish(&c, Fate::Processed).expect("again"),
            Disposition::Gone
        );
        assert_eq!(names(disp.archive_dir()), ["x.csv"]);
        assert_eq!(
            fs::read_to_string(first.moved_to().expect("moved")).expect("read"),
            "x"
        );
    }

    #[test]
    fn interrupted_moves_are_completed_not_duplicated() {
        // Crash after linking into quarantine, before the sidecar and removal.
        let (d, c) = input_with("x.csv", "x");
        let disp = disposer(&d, AfterLoad::Keep);
        fs::create_dir_all(disp.quarantine_dir()).expect("mkdir");
        fs::hard_link(&c.path, disp.quarantine_dir().join("x.csv")).expect("link");
        // The restart lists the file again (the link gave it a new ctime).
        let got = disp
            .finish(&candidate(&c.path), Fate::Rejected { reason: "r" })
            .expect("finish");
        assert_eq!(got.moved_to(), Some(&*disp.quarantine_dir().join("x.csv")));
        assert_eq!(names(disp.quarantine_dir()), ["x.csv", "x.csv.reason.txt"]);
        // Crash after a copy reached the archive, with a stale temp beside it.
        let (d, c) = input_with("y.csv", "y");
        let disp = disposer(&d, AfterLoad::Archive);
        fs::create_dir_all(disp.archive_dir()).expect("mkdir");
        let dest = disp.archive_dir().join("y.csv");
        move_by_copy(&c.path, &dest).expect("copy");
        fs::write(&c.path, "y").expect("rewrite");
        File::options()
            .write(true)
            .open(&c.path)
            .and_then(|f| f.set_modified(fs::metadata(&dest)?.modified()?))
            .expect("same mtime");
        fs::write(temp_beside(&dest), "half").expect("stale temp");
        let got = disp
            .finish(&candidate(&c.path), Fate::Processed)
            .expect("finish");
        assert_eq!(got, Disposition::Archived(dest));
        assert!(gone(&c.path));
        assert_eq!(names(disp.archive_dir()), ["y.csv"]);
    }

    #[test]
    fn move_by_copy_copies_removes_source_and_leaves_no_temp() {
        let (d, c) = input_with("a.csv", "bytes");
        let out = d.path().join("out");
        fs::create_dir_all(&out).expect("mkdir");
        fs::write(temp_beside(&out.join("a.csv")), "stale").expect("stale temp");
        let inode = fs::metadata(&c.path).expect("md").ino();
        let to = move_by_copy(&c.path, &out.join("a.csv")).expect("move");
        assert_eq!(to, out.join("a.csv"));
        assert_ne!(
            fs::metadata(&to).expect("md").ino(),
            inode,
            "a copy, not a link"
        );
        assert_eq!(fs::read_to_string(&to).expect("read"), "bytes");
        assert_eq!(candidate(&to).mtime_micros, c.mtime_micros);
        assert!(gone(&c.path));
        assert_eq!(names(&out), ["a.csv"]);
    }

    #[test]
    fn a_symlink_is_moved_as_a_link() {
        let d = tempfile::tempdir().expect("tempdir");
        let input = d.path().join("in");
        // Listing only takes links that stay inside the input folder; a
        // hidden folder is not listed itself.
        fs::create_dir_all(input.join(".store")).expect("mkdir");
        let target = input.join(".store/data.csv");
        fs::write(&target, "real").expect("write");
        std::os::unix::fs::symlink(&target, input.join("a.csv")).expect("link");
        std::os::unix::fs::symlink(&target, input.join("b.csv")).expect("link");
        let disp = Disposer::new(&input, AfterLoad::Archive, None, None);
        let found = super::super::discover::list_excluding(&input, &disp.excluded_dirs());
        for c in found.expect("list") {
            let to = disp.finish(&c, Fate::Processed).expect("finish");
            let to = to.moved_to().expect("moved");
            assert!(fs::symlink_metadata(to).expect("md").is_symlink());
        }
        // The copy fallback, too, recreates the link rather than its target.
        let to = move_by_copy(&disp.archive_dir().join("b.csv"), &d.path().join("c.csv"));
        assert!(fs::symlink_metadata(to.expect("move"))
            .expect("md")
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).expect("target stays"), "real");
        assert_eq!(names(disp.archive_dir()), ["a.csv"]);
    }
}
