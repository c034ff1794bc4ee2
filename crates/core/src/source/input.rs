//! The loader's input, whatever it is: a folder or an object store prefix.
//!
//! [`Input`] is what the loop in `pipeline::run` calls to list candidates,
//! to wait for the next listing and to report which listed files are
//! settled; [`Source`] is its cheap, shareable half that the blocking
//! threads use to open a file for reading, to check it did not change
//! while read, and to carry out its fate after the commit. Each call goes
//! to `source::discover` / `source::dispose` for a folder, or to
//! `source::store` for a store. A folder's files are opened and read
//! through `source::bounded`, and its listing runs on a thread of its own,
//! so neither can hang the loader for longer than `--read-timeout-secs`
//! without progress.
//!
//! This module only dispatches: it never decides what was loaded (the
//! ledger does) and never disposes of anything before the caller says the
//! fate is committed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::bounded;
use super::discover::{self, mtime_micros, Candidate, FolderWatcher};
use super::dispose::{AfterLoad, DisposeError, Disposer, Disposition, Fate};
use super::scope::Include;
use super::store::{self, Lister, OpenError, Resume, Store, StoreError};

/// Why the input cannot be set up or listed.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    // The cause is part of the message and deliberately not a `source`:
    // printed with its chain, it would show twice.
    #[error("cannot list the input folder {path}: {error}; create it or pass --input DIR")]
    Folder { path: String, error: std::io::Error },
    #[error("cannot list {path}: {source}")]
    List {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "listing {path} made no progress for {secs:.0} s (--read-timeout-secs; a hung mount \
         below the input?); the listing is awaited again at the next attempt"
    )]
    ListStalled { path: String, secs: f64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a file's committed fate could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    Folder(#[from] DisposeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where `--input`, `--archive-dir` and `--quarantine-dir` point.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub input: PathBuf,
    pub after_load: AfterLoad,
    pub archive: Option<PathBuf>,
    pub quarantine: Option<PathBuf>,
    /// For stores: how often the listing starts from the beginning.
    pub full_relist: Duration,
    /// Which files (names or paths below the input) are input: `--include`.
    pub include: Include,
    /// Longest time a folder's listing may make no progress.
    pub read_timeout: Duration,
}

/// The shareable half of the input: opening, checking and disposing of
/// listed files, from any thread.
#[derive(Debug, Clone)]
pub enum Source {
    Folder(Arc<Disposer>),
    Store(Arc<Store>),
}

/// A listed file opened for reading.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    /// Set when reading failed for a reason that is not the file's (the
    /// network): the batch is retried instead of the file rejected.
    fault: Option<Arc<Mutex<Option<String>>>>,
    /// Set when a read did not return within the read timeout (a folder's
    /// file): the file is tried again later instead of rejected.
    stalled: Option<Arc<AtomicBool>>,
    /// A folder's file: the path's metadata taken right after its end.
    at_end: Option<bounded::AtEnd>,
}

impl Opened {
    /// The transport failure met while reading, if any.
    pub fn fault(&self) -> Option<Arc<Mutex<Option<String>>>> {
        self.fault.clone()
    }

    /// Whether a read of the file stalled (see `source::bounded`).
    pub fn stalled(&self) -> Option<Arc<AtomicBool>> {
        self.stalled.clone()
    }

    /// Where the path's metadata after the end of the file lands (a
    /// folder's file), for [`Source::changed_since_listing`].
    pub fn at_end(&self) -> Option<bounded::AtEnd> {
        self.at_end.clone()
    }
}

/// How a file that was read compares with what was listed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// A writer is still appending, or replaced it: retried later.
    Modified,
    /// Fewer bytes than listed (truncated while being read): rejected.
    Shrank(u64),
}

impl Source {
    /// A folder's files, kept after loading (for tests and tools).
    pub fn folder(dir: &std::path::Path) -> Source {
        Source::Folder(Arc::new(Disposer::new(dir, AfterLoad::Keep, None, None)))
    }

    /// Opens a listed file (blocking). A folder's file is opened without
    /// blocking, only as a regular file (inside `root`, when given), and
    /// read on a helper thread whose every read lasts at most `read_timeout`
    /// (see `source::bounded`).
    pub fn open(
        &self,
        c: &Candidate,
        root: Option<&Path>,
        read_timeout: Duration,
    ) -> Result<Opened, OpenError> {
        match self {
            Source::Folder(_) => {
                let r = bounded::open(&c.path, root, read_timeout)?;
                let (stalled, at_end) = (Some(r.stalled()), Some(r.at_end()));
                Ok(Opened {
                    reader: Box::new(r),
                    fault: None,
                    stalled,
                    at_end,
                })
            }
            Source::Store(s) => {
                let r = s.open(c)?;
                let fault = Some(r.fault());
                Ok(Opened {
                    reader: Box::new(r),
                    fault,
                    stalled: None,
                    at_end: None,
                })
            }
        }
    }

    /// After reading `bytes_read` bytes of `c` to the end: is what was read
    /// the listed version? An object's GET already checked its version.
    /// `at_end` is the path's metadata taken after the end ([`Opened::at_end`]);
    /// without it the path is looked at now.
    pub fn changed_since_listing(
        &self,
        c: &Candidate,
        bytes_read: u64,
        at_end: Option<&bounded::AtEnd>,
    ) -> Change {
        if let Source::Store(_) = self {
            return if bytes_read == c.size {
                Change::None
            } else {
                Change::Modified
            };
        }
        let taken = at_end.and_then(|slot| slot.lock().ok().and_then(|mut s| s.take()));
        let now = taken.unwrap_or_else(|| std::fs::metadata(&c.path));
        let now_len = now.as_ref().map_or(bytes_read, |md| md.len());
        if bytes_read < c.size || now_len < c.size {
            return Change::Shrank(bytes_read.min(now_len));
        }
        if bytes_read != c.size {
            return Change::Modified;
        }
        match now {
            Ok(md) if md.len() != c.size || mtime_micros(&md) != c.mtime_micros => Change::Modified,
            // Gone after a complete read: what we read is what was listed.
            _ => Change::None,
        }
    }

    /// True while the listed version is still there (a folder's file);
    /// objects are checked when opened instead.
    pub fn unchanged(&self, c: &Candidate) -> bool {
        match self {
            Source::Folder(_) => std::fs::metadata(&c.path)
                .is_ok_and(|md| md.len() == c.size && mtime_micros(&md) == c.mtime_micros),
            Source::Store(_) => true,
        }
    }

    /// Carries out the committed fate of a listed file (blocking).
    pub fn finish(&self, c: &Candidate, fate: Fate<'_>) -> Result<Disposition, FinishError> {
        match self {
            Source::Folder(d) => Ok(d.finish(c, fate)?),
            Source::Store(s) => Ok(s.finish(c, fate)?),
        }
    }
}

/// The listing side, owned by the loader.
enum Listing {
    Folder {
        dir: PathBuf,
        excluded: Vec<PathBuf>,
        include: Include,
        read_timeout: Duration,
        /// A listing that stalled, awaited again instead of starting another.
        stuck: Option<PendingList>,
    },
    Store(Lister),
}

/// A folder listing running on its own thread, with its progress.
type PendingList = (
    tokio::sync::oneshot::Receiver<std::io::Result<Vec<Candidate>>>,
    Arc<AtomicU64>,
);

/// Starts listing a folder on a thread of its own (not tokio's blocking
/// pool, which a stuck thread would keep the process from leaving).
fn spawn_listing(dir: &Path, excluded: &[PathBuf], include: &Include) -> PendingList {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let progress = Arc::new(AtomicU64::new(0));
    let (dir, excluded, include, seen) = (
        dir.to_path_buf(),
        excluded.to_vec(),
        include.clone(),
        progress.clone(),
    );
    let spawned = std::thread::Builder::new()
        .name("shopstream-list".to_string())
        .spawn(move || {
            let _ = tx.send(discover::list_included(&dir, &excluded, &include, &seen));
        });
    if let Err(e) = spawned {
        // The receiver then reports the listing as failed.
        tracing::error!("cannot start a listing thread: {e}");
    }
    (rx, progress)
}

/// The loader's input: listing plus the shareable [`Source`].
pub struct Input {
    source: Source,
    listing: Listing,
}

/// Waits between listings: OS file events for a folder, plain polling
/// every `--relist-secs` for a store.
pub enum Waker {
    Folder(FolderWatcher),
    Poll,
}

impl Waker {
    /// Waits for a wake-up or for `relist` to pass, whichever is first.
    pub async fn wait(&mut self, relist: Duration) {
        match self {
            Waker::Folder(w) => w.wait(relist).await,
            Waker::Poll => tokio::time::sleep(relist).await,
        }
    }
}

impl Input {
    /// Sets up the input: a folder must be listable; a store's client is
    /// built from the URL and the environment (nothing is requested yet).
    pub fn new(cfg: &InputConfig) -> Result<Input, InputError> {
        let text = cfg.input.to_string_lossy();
        if store::is_url(&text) {
            let store = Arc::new(Store::new(
                &text,
                cfg.after_load,
                cfg.archive
                    .as_deref()
                    .map(|p| p.to_string_lossy())
                    .as_deref(),
                cfg.quarantine
                    .as_deref()
                    .map(|p| p.to_string_lossy())
                    .as_deref(),
            )?);
            return Ok(Input {
                source: Source::Store(store.clone()),
                listing: Listing::Store(
                    Lister::new(store, cfg.full_relist).including(cfg.include.clone()),
                ),
            });
        }
        let dir = cfg.input.clone();
        std::fs::read_dir(&dir).map_err(|error| InputError::Folder {
            path: dir.display().to_string(),
            error,
        })?;
        let disposer = Disposer::new(
            &dir,
            cfg.after_load,
            cfg.archive.clone(),
            cfg.quarantine.clone(),
        );
        Ok(Input {
            listing: Listing::Folder {
                dir,
                excluded: disposer.excluded_dirs(),
                include: cfg.include.clone(),
                read_timeout: cfg.read_timeout,
                stuck: None,
            },
            source: Source::Folder(Arc::new(disposer)),
        })
    }

    /// The shareable half.
    pub fn source(&self) -> Source {
        self.source.clone()
    }

    /// What to wait on between listings.
    pub fn waker(&self) -> Waker {
        match &self.listing {
            Listing::Folder { dir, .. } => Waker::Folder(FolderWatcher::new(dir)),
            Listing::Store(_) => Waker::Poll,
        }
    }

    /// For a store not yet seeded: the URL prefix of its objects in the
    /// ledger (see [`Input::seed`]).
    pub fn needs_seed(&self) -> Option<String> {
        match &self.listing {
            Listing::Store(l) => l.needs_seed(),
            Listing::Folder { .. } => None,
        }
    }

    /// Tells a store's listing what the ledger holds (once, at start).
    pub fn seed(&mut self, resume: Resume) {
        if let Listing::Store(l) = &mut self.listing {
            l.seed(resume);
        }
    }

    /// The files ready to load: a folder's oldest first, a store's in key
    /// order.
    pub async fn list(&mut self) -> Result<Vec<Candidate>, InputError> {
        match &mut self.listing {
            Listing::Folder {
                dir,
                excluded,
                include,
                read_timeout,
                stuck,
            } => {
                let (mut rx, progress) = stuck
                    .take()
                    .unwrap_or_else(|| spawn_listing(dir, excluded, include));
                let path = || dir.display().to_string();
                loop {
                    let seen = progress.load(Ordering::Relaxed);
                    match tokio::time::timeout(*read_timeout, &mut rx).await {
                        Ok(Ok(listed)) => {
                            return listed.map_err(|source| InputError::List {
                                path: path(),
                                source,
                            })
                        }
                        Ok(Err(_)) => {
                            return Err(InputError::List {
                                path: path(),
                                source: std::io::Error::other("the listing thread failed"),
                            })
                        }
                        Err(_) if progress.load(Ordering::Relaxed) != seen => {}
                        Err(_) => {
                            *stuck = Some((rx, progress));
                            return Err(InputError::ListStalled {
                                path: path(),
                                secs: read_timeout.as_secs_f64(),
                            });
                        }
                    }
                }
            }
            Listing::Store(l) => Ok(l.list().await?),
        }
    }

    /// Every listed file but those in `to_load` is settled (already done,
    /// or its fate is committed).
    pub fn settled_except(&mut self, to_load: &[Candidate]) {
        if let Listing::Store(l) = &mut self.listing {
            l.settled_except(to_load);
        }
    }

    /// A listed file's fate is committed.
    pub fn settled(&mut self, c: &Candidate) {
        if let Listing::Store(l) = &mut self.listing {
            l.settled(c);
        }
    }
}
