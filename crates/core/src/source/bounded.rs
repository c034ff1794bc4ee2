//! Opening and reading a folder's file so that nothing in the input can
//! hang the loader.
//!
//! The file is opened with `O_NONBLOCK` (a FIFO swapped in after the
//! listing would otherwise block the open until a writer comes) and kept
//! only when the opened descriptor is a regular file; anything else is
//! "changed since it was listed" and left alone. The open and every read
//! run on a helper thread that hands blocks over a small channel; the
//! reading side waits at most `--read-timeout-secs` for each. A file whose
//! open or read does not return in time (a hung network mount) is given
//! up for this batch: the reader reports it as stalled, the caller treats
//! the file as changed (not recorded, not moved, tried again later) and
//! the helper thread is abandoned. While it stays blocked, the same file
//! is not opened again, so at most one thread per file is ever stuck.
//! Once the process stops ([`stop_waiting`]), a wait longer than a moment
//! gives up at once, so the batch in flight commits without that file.
//!
//! This module never decides a file's fate and never moves, writes or
//! deletes anything.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::discover::opened_inside;
use super::store::OpenError;

/// The default `--read-timeout-secs`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes handed over per block.
const BLOCK: usize = 256 * 1024;

/// Fault injection for the tests (not an option): with this variable set
/// to a file name, reading a file of that name blocks for as long as a
/// hidden file `.NAME.stall` exists beside it, like a read from a hung
/// network mount.
pub const STALL_READ_ENV: &str = "SHOPSTREAM_DEBUG_STALL_READ";

/// Fault injection for the tests, like [`STALL_READ_ENV`]: the folder's
/// listing blocks at a file of this name while `.NAME.stall` exists.
pub const STALL_LIST_ENV: &str = "SHOPSTREAM_DEBUG_STALL_LIST";

/// Set once the process stops: slow reads are given up at once.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// How often a slow wait looks at [`STOPPING`].
const STOP_SLICE: Duration = Duration::from_millis(200);

/// The process is stopping: every read that waits from now on (or already
/// waits) for longer than a moment is given up like a stalled one, so the
/// batch in flight can commit without it.
pub fn stop_waiting() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// Files whose helper thread was abandoned, with that thread's "still
/// running" flag.
static STUCK: Mutex<Option<HashMap<PathBuf, Arc<AtomicBool>>>> = Mutex::new(None);

/// What the helper thread hands over.
enum Msg {
    Opened(Result<(), OpenError>),
    Data(Vec<u8>),
    /// The end, with the path's metadata taken right after it (on the
    /// helper thread too, so a stat on a hung mount cannot block the
    /// reader either).
    End(io::Result<std::fs::Metadata>),
    Failed(io::Error),
}

/// A folder's file being read by a helper thread, each wait bounded.
pub struct BoundedReader {
    rx: Receiver<Msg>,
    /// Emptied blocks go back to the helper thread for reuse.
    spent: Option<SyncSender<Vec<u8>>>,
    block: Vec<u8>,
    pos: usize,
    timeout: Duration,
    path: PathBuf,
    running: Arc<AtomicBool>,
    /// Set once a wait timed out; every later read fails at once.
    stalled: Arc<AtomicBool>,
    /// The path's metadata at the end of the file, once read to the end.
    at_end: AtEnd,
    ended: bool,
}

/// The path's metadata right after the last read, once the file was read
/// to its end.
pub type AtEnd = Arc<Mutex<Option<io::Result<std::fs::Metadata>>>>;

impl BoundedReader {
    /// Where the path's metadata after the end of the file lands.
    pub fn at_end(&self) -> AtEnd {
        self.at_end.clone()
    }

    /// Set when a read of this file did not return in time.
    pub fn stalled(&self) -> Arc<AtomicBool> {
        self.stalled.clone()
    }

    /// Waits for the next message, at most the timeout.
    /// After a stop ([`stop_waiting`]), a wait longer than [`STOP_SLICE`]
    /// ends at once.
    fn next(&mut self) -> Option<Msg> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left.min(STOP_SLICE)) {
                Ok(m) => return Some(m),
                Err(RecvTimeoutError::Disconnected) => {
                    return Some(Msg::Failed(io::Error::other(
                        "the reading thread ended unexpectedly",
                    )))
                }
                Err(RecvTimeoutError::Timeout)
                    if left > STOP_SLICE && !STOPPING.load(Ordering::SeqCst) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.give_up();
                    return None;
                }
            }
        }
    }

    /// Abandons the helper thread, remembering the file as stuck while the
    /// thread stays blocked.
    fn give_up(&mut self) {
        self.stalled.store(true, Ordering::SeqCst);
        let mut guard = match STUCK.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard
            .get_or_insert_with(HashMap::new)
            .insert(self.path.clone(), self.running.clone());
        let file = self.path.display().to_string();
        if STOPPING.load(Ordering::SeqCst) {
            tracing::warn!(
                file = ?file,
                "stopping: a slow read of the file is given up; neither recorded nor moved, \
                 it is loaded at the next start"
            );
            return;
        }
        tracing::warn!(
            file = ?file,
            "reading the file stalled for {:.0} s (--read-timeout-secs; a hung network mount?): \
             given up for now, neither recorded nor moved, tried again later",
            self.timeout.as_secs_f64()
        );
    }

    fn stall_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "a read did not return within {:.0} s (--read-timeout-secs)",
                self.timeout.as_secs_f64()
            ),
        )
    }
}

impl Read for BoundedReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.stalled.load(Ordering::SeqCst) {
            return Err(self.stall_error());
        }
        while self.pos == self.block.len() {
            if self.ended {
                return Ok(0);
            }
            match self.next() {
                None => return Err(self.stall_error()),
                Some(Msg::Data(b)) => {
                    let spent = std::mem::replace(&mut self.block, b);
                    if let Some(back) = &self.spent {
                        // A full queue or a finished thread: just drop it.
                        let _ = back.try_send(spent);
                    }
                    self.pos = 0;
                }
                Some(Msg::End(md)) => {
                    self.ended = true;
                    if let Ok(mut slot) = self.at_end.lock() {
                        *slot = Some(md);
                    }
                }
                Some(Msg::Failed(e)) => return Err(e),
                Some(Msg::Opened(_)) => {}
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// True while an abandoned thread still blocks on `path`.
fn still_stuck(path: &Path) -> bool {
    let mut guard = match STUCK.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let Some(map) = guard.as_mut() else {
        return false;
    };
    match map.get(path) {
        Some(running) if running.load(Ordering::SeqCst) => true,
        Some(_) => {
            map.remove(path);
            false
        }
        None => false,
    }
}

/// Opens a listed file of a folder without blocking and reads it on a
/// helper thread; each wait (the open, every block) lasts at most
/// `timeout`. With `root`, the opened file must lie inside it.
pub fn open(
    path: &Path,
    root: Option<&Path>,
    timeout: Duration,
) -> Result<BoundedReader, OpenError> {
    if still_stuck(path) {
        tracing::debug!(file = ?path.display().to_string(), "an earlier read still blocks: not opened again yet");
        return Err(OpenError::Changed);
    }
    let (tx, rx) = sync_channel(2);
    let (spent, reuse) = sync_channel(2);
    let running = Arc::new(AtomicBool::new(true));
    let thread_path = path.to_path_buf();
    let root = root.map(Path::to_path_buf);
    let flag = running.clone();
    let spawned = std::thread::Builder::new()
        .name("shopstream-read".to_string())
        .spawn(move || {
            read_to_channel(&thread_path, root.as_deref(), &tx, &reuse);
            flag.store(false, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        return Err(OpenError::Transient(format!(
            "cannot start a reading thread: {e}"
        )));
    }
    let mut reader = BoundedReader {
        rx,
        spent: Some(spent),
        block: vec![],
        pos: 0,
        timeout,
        path: path.to_path_buf(),
        running,
        stalled: Arc::new(AtomicBool::new(false)),
        at_end: AtEnd::default(),
        ended: false,
    };
    match reader.next() {
        Some(Msg::Opened(Ok(()))) => Ok(reader),
        Some(Msg::Opened(Err(e))) => Err(e),
        Some(Msg::Failed(e)) => Err(OpenError::Unreadable(format!("cannot open the file: {e}"))),
        Some(Msg::Data(_) | Msg::End(_)) => Err(OpenError::Unreadable(
            "the reading thread answered out of order".to_string(),
        )),
        // Stalled while opening: like a file changed since the listing.
        None => Err(OpenError::Changed),
    }
}

/// The helper thread: open, check, then blocks until the end or until the
/// reader is gone.
fn read_to_channel(
    path: &Path,
    root: Option<&Path>,
    tx: &SyncSender<Msg>,
    reuse: &Receiver<Vec<u8>>,
) {
    let mut file = match open_regular(path, root) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Msg::Opened(Err(e)));
            return;
        }
    };
    if tx.send(Msg::Opened(Ok(()))).is_err() {
        return;
    }
    loop {
        stall_reading_for_tests(path);
        let mut block = reuse.try_recv().unwrap_or_default();
        block.resize(BLOCK, 0);
        let msg = match read_some(&mut file, &mut block) {
            Ok(0) => Msg::End(std::fs::metadata(path)),
            Ok(n) => {
                block.truncate(n);
                Msg::Data(block)
            }
            Err(e) => Msg::Failed(e),
        };
        let last = !matches!(msg, Msg::Data(_));
        // A send fails once the reader is gone: stop.
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

/// Fills up to `buf.len()` bytes (fewer only at the end).
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Why a file could not be opened. Running out of a local resource (file
/// descriptors, kernel memory) says nothing about the file: its batch is
/// retried, the file is never rejected for it.
fn open_error(e: io::Error) -> OpenError {
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound => OpenError::Vanished,
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS) => {
            OpenError::Transient(format!("cannot open the file now: {e}"))
        }
        _ => OpenError::Unreadable(format!("cannot open the file: {e}")),
    }
}

/// Opens `path` without blocking and keeps it only when the descriptor is
/// a regular file (inside `root`); then clears `O_NONBLOCK`.
fn open_regular(path: &Path, root: Option<&Path>) -> Result<File, OpenError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return Err(open_error(e)),
    };
    let kind = match file.metadata() {
        Ok(md) => md.file_type(),
        Err(e) => {
            return Err(OpenError::Unreadable(format!(
                "cannot inspect the file: {e}"
            )))
        }
    };
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        tracing::warn!(
            file = ?path.display().to_string(),
            "the file was replaced by {what} after it was listed: not read, not moved"
        );
        return Err(OpenError::Changed);
    }
    if root.is_some_and(|root| !opened_inside(&file, path, root)) {
        return Err(OpenError::Unreadable(
            "the file now leads outside the input folder (a symlink replaced it after it was \
             listed): not read"
                .to_string(),
        ));
    }
    clear_nonblock(&file);
    Ok(file)
}

/// Reads of a regular file ignore `O_NONBLOCK` on Linux; clearing it keeps
/// any filesystem that does not from answering `EAGAIN`.
fn clear_nonblock(file: &File) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns and keeps
    // open; F_GETFL/F_SETFL touch only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
}

/// See [`STALL_READ_ENV`].
fn stall_reading_for_tests(path: &Path) {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    stall_while_marked(&NAME, STALL_READ_ENV, path);
}

/// See [`STALL_LIST_ENV`].
pub(crate) fn stall_listing_for_tests(path: &Path) {
    static NAME: OnceLock<Option<String>> = OnceLock::new();
    stall_while_marked(&NAME, STALL_LIST_ENV, path);
}

/// Blocks while `.NAME.stall` exists beside `path`, when `path` is named
/// as the variable `env` says.
fn stall_while_marked(cell: &OnceLock<Option<String>>, env: &str, path: &Path) {
    let Some(name) = cell.get_or_init(|| std::env::var(env).ok()) else {
        return;
    };
    if path.file_name().and_then(|n| n.to_str()) != Some(name.as_str()) {
        return;
    }
    let marker = path.with_file_name(format!(".{name}.stall"));
    if marker.exists() {
        tracing::warn!(
            file = ?path.display().to_string(),
            "fault injection ({env}): blocking while {} exists",
            marker.display()
        );
    }
    while marker.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_is_retried_never_a_rejection() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
            let e = io::Error::from_raw_os_error(errno);
            assert!(matches!(open_error(e), OpenError::Transient(_)), "{errno}");
        }
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(open_error(denied), OpenError::Unreadable(_)));
        let gone = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(matches!(open_error(gone), OpenError::Vanished));
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }

    #[test]
    fn a_regular_file_reads_through_whole() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.csv");
        let text: Vec<u8> = (0..BLOCK * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &text).expect("write");
        let mut r = open(&p, None, Duration::from_secs(5)).expect("open");
        let mut got = vec![];
        r.read_to_end(&mut got).expect("read");
        assert_eq!(got, text);
        assert!(matches!(
            open(&d.path().join("gone.csv"), None, Duration::from_secs(5)),
            Err(OpenError::Vanished)
        ));
    }

    #[test]
    fn a_fifo_is_not_opened_for_reading_and_does_not_block() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x.csv");
        mkfifo(&p);
        let t = Instant::now();
        // Without O_NONBLOCK the open itself waits for a writer, forever;
        // the timeout here is long so that only the flag can pass the test.
        let r = open(&p, None, Duration::from_secs(60));
        assert!(matches!(r, Err(OpenError::Changed)));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn a_read_that_never_returns_is_given_up_and_not_retried_while_stuck() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("stuck.csv");
        mkfifo(&p);
        // A writer that opens the FIFO but never writes: reads of it block.
        let writer_path = p.clone();
        let writer = std::thread::spawn(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&writer_path)
                .expect("writer")
        });
        // The bounded reader, built by hand around a real blocking read
        // (open() refuses FIFOs, which is tested above).
        let (tx, rx) = sync_channel(2);
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let path = p.clone();
        std::thread::spawn(move || {
            let mut f = File::open(&path).expect("open the fifo");
            let _ = tx.send(Msg::Opened(Ok(())));
            let mut buf = vec![0u8; 16];
            let r = read_some(&mut f, &mut buf);
            let _ = tx.send(r.map_or_else(Msg::Failed, |_| Msg::End(f.metadata())));
            flag.store(false, Ordering::SeqCst);
        });
        let w = writer.join().expect("writer thread");
        let mut r = BoundedReader {
            rx,
            spent: None,
            block: vec![],
            pos: 0,
            timeout: Duration::from_millis(300),
            path: p.clone(),
            running,
            stalled: Arc::new(AtomicBool::new(false)),
            at_end: AtEnd::default(),
            ended: false,
        };
        let t = Instant::now();
        let e = r.read(&mut [0u8; 8]).expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(r.stalled().load(Ordering::SeqCst));
        // While the thread stays blocked, the file is not opened again.
        assert!(still_stuck(&p));
        assert!(matches!(
            open(&p, None, Duration::from_secs(60)),
            Err(OpenError::Changed)
        ));
        // The mount recovers (the writer closes): the thread ends and the
        // file may be opened again.
        drop(w);
        let deadline = Instant::now() + Duration::from_secs(10);
        while still_stuck(&p) {
            assert!(Instant::now() < deadline, "the stuck thread never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
