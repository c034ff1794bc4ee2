//! Reads a batch's files and turns every row into an encoded COPY row: a
//! validated event (a row of `ecommerce_events`, collected into sorted runs
//! on the copy route, or of the staging table on the staged route) or a
//! dead letter with all of its failures (a row of `dead_letter_events` on
//! the copy route, of the staging table on the staged route).
//!
//! Runs on a blocking thread and sends [`Chunk`]s, in reading order,
//! through a bounded channel to the batch's transaction, so reading
//! overlaps with loading and memory stays bounded whatever the file size
//! (three runs of at most [`RUN_BYTES`] at a time). Per file it reports, in a
//! [`Chunk::File`] sent after all of the file's dead letters and before any
//! run holding its rows (except under a savepoint, for a file larger than a
//! run), exactly how many rows it read, accepted and rejected (by code), the
//! content hash, and whether the whole file must be rejected (unreadable,
//! bad header, over-long record, a broken or oversized compressed stream,
//! more failing rows than `--max-reject-ratio` allows) or retried (changed
//! while being read).
//!
//! Where the judged rows go is a [`Verdicts`]: the batch's chunks (above,
//! for `run`) or, through [`read_files`], any other consumer, such as the
//! counts of `shopstream check`, which reads exactly as `run` does.
//!
//! Files are opened through [`Source`], so a folder's files and a store's
//! objects are read the same way; a store read that fails in transit aborts
//! the batch (retried) instead of rejecting the file. A file's name tells
//! its format (`source::format`): its content is decompressed underneath
//! (`source::decompress`, hashing the stored bytes), and its records are
//! CSV (`source::reader`, here, split in the delimiter and quote of the
//! layout its header matched) or JSON Lines ([`jsonl`]); either way every
//! record is judged by the one `Judge`, under the rules as the file's
//! layout shapes them (a declared layout's time formats, zone and decimal
//! comma).
//!
//! It never talks to the database and never moves or deletes files.

mod jsonl;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::batch::rows::Slot;
use crate::batch::{
    Chunk, FileOutcome, FileResult, ParsedFile, Route, RowsBuilder, RunSlots, SortedRows,
};
use crate::event::{Field, RuleCode, FIELD_COUNT};
use crate::schema::{derived_event_id, LayoutRef, Registry};
use crate::sink::stage::{self, Origin};
use crate::source::bounded::DEFAULT_READ_TIMEOUT;
use crate::source::decompress::{Bounds, Decoded, Stored};
use crate::source::discover::Candidate;
use crate::source::format::{Format, RecordFormat};
use crate::source::input::{Change, Source};
use crate::source::jsonl::{JsonLine, JsonlReader};
use crate::source::layout::{Layout, UnknownColumns};
use crate::source::reader::{Record, RecordReader};
use crate::source::size::human;
use crate::source::store::OpenError;
use crate::validate::{validate, Failure, RawFields, Rules, ValidEvent};

/// How rows are read and judged.
#[derive(Debug, Clone)]
pub struct ParseConfig {
    pub rules: Rules,
    /// Longest accepted CSV record (or JSON line), in bytes.
    pub max_record_bytes: usize,
    /// Most fields in one CSV record (the header too), or keys in a JSON
    /// object.
    pub max_fields: usize,
    /// Largest accepted file, in bytes, as stored and as decompressed.
    pub max_file_bytes: u64,
    /// What becomes of header columns the detected layout does not know.
    pub unknown_columns: UnknownColumns,
    /// The layouts files are detected against (`--layouts` adds to the
    /// built-in ones).
    pub layouts: Registry,
    /// The input folder (canonical): a file whose opened inode lies outside
    /// it (a symlink swapped in after the listing) is rejected unread.
    /// `None` skips the check.
    pub input_root: Option<Arc<Path>>,
    /// Longest wait for one read (or the open) of a folder's file; a file
    /// that stalls longer is tried again later (`--read-timeout-secs`).
    pub read_timeout: Duration,
    /// A file where more than this share of the rows fail validation is
    /// rejected as a whole (`--max-reject-ratio`); `None`: no limit.
    pub max_reject_ratio: Option<f64>,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            rules: Rules::default(),
            max_record_bytes: 1 << 20,
            max_fields: DEFAULT_MAX_FIELDS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            unknown_columns: UnknownColumns::Keep,
            layouts: Registry::BUILT_IN,
            input_root: None,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_reject_ratio: None,
        }
    }
}

/// The default `--max-columns`.
pub const DEFAULT_MAX_FIELDS: usize = 256;
/// The default `--max-file-bytes` (4 GiB).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;

/// Staging rows sent at a time.
const CHUNK: usize = 256 * 1024;
/// Encoded events and their index collected into one sorted run (copy
/// route): large runs make the primary key's inserts cheap (see
/// [`crate::batch::rows`]).
pub const RUN_BYTES: usize = 8 << 20;
/// A batch's first run goes at the end of the first file holding this
/// much, the next ones at twice the size of the last, up to [`RUN_BYTES`]:
/// the first COPY starts after one file is read, not a whole run.
const FIRST_RUN_BYTES: usize = RUN_BYTES / 32;

/// Why a batch's parsing stopped before its end (the batch is abandoned
/// and, by the caller, retried).
#[derive(Debug, thiserror::Error)]
pub enum Aborted {
    #[error("the COPY was abandoned")]
    Consumer,
    /// Reading an object failed in transit (network, throttling): not the
    /// file's fault.
    #[error("{0}; the batch will be retried")]
    Input(String),
}

/// Reads `files` of a folder and sends their rows into `out`, every row to
/// the staging table. File numbers start at 1, in the order of `files`.
pub fn read_batch(
    files: &[Candidate],
    cfg: &ParseConfig,
    out: &mpsc::Sender<Chunk>,
) -> Result<(), Aborted> {
    let source = Source::folder(std::path::Path::new(""));
    read_batch_from(
        &source,
        files,
        cfg,
        Route::Staged,
        &RunSlots::new(2, 0),
        out,
    )
}

/// [`read_batch`] for files listed by any input (a folder or a store),
/// with valid rows taking `route`.
pub fn read_batch_from(
    source: &Source,
    files: &[Candidate],
    cfg: &ParseConfig,
    route: Route,
    slots: &RunSlots,
    out: &mpsc::Sender<Chunk>,
) -> Result<(), Aborted> {
    let mut output = Output {
        tx: out,
        route,
        slots,
        slot: None,
        rows: RowsBuilder::default(),
        stage: BytesMut::with_capacity(CHUNK * 2),
        json: Vec::new(),
        savepoint: None,
        early_run: FIRST_RUN_BYTES,
        files,
        dead_origin: None,
    };
    read_files(source, files, cfg, &mut output)
}

/// Reads `files` one after the other and hands every judged row, then each
/// file's result, to `verdicts`. File numbers start at 1, in the order of
/// `files`. The one reading path of `run` and `check`.
pub fn read_files<V: Verdicts>(
    source: &Source,
    files: &[Candidate],
    cfg: &ParseConfig,
    verdicts: &mut V,
) -> Result<(), Aborted> {
    for (i, file) in files.iter().enumerate() {
        let file_no = i as i32 + 1;
        let outcome = parse_file(source, file, file_no, cfg, verdicts)?;
        verdicts.file_read(FileResult {
            file_no,
            candidate: file.clone(),
            outcome,
        })?;
    }
    verdicts.end()
}

/// Where the reader's judgements go, in reading order: per file its rows'
/// start, each row valid or failed, then the file's result.
pub trait Verdicts {
    /// File `file_no`'s rows begin, in `layout` (known from its header or
    /// first object).
    fn file_rows(&mut self, file_no: i32, file: &Candidate, layout: &Layout);
    /// A row that passed validation (`extra`: its `extra` JSON, if any).
    fn valid(
        &mut self,
        file_no: i32,
        line: u64,
        ev: &ValidEvent<'_>,
        extra: Option<&[u8]>,
    ) -> Result<(), Aborted>;
    /// A row that failed every rule in `fails`, a dead letter-to-be: its
    /// text as read and its event id when it has one.
    fn failed(
        &mut self,
        file_no: i32,
        line: u64,
        raw_line: &str,
        event_id: Option<&str>,
        fails: &[Failure],
    ) -> Result<(), Aborted>;
    /// A file is read to its end or given up on: what it turned out to be.
    fn file_read(&mut self, result: FileResult) -> Result<(), Aborted>;
    /// The last file is done.
    fn end(&mut self) -> Result<(), Aborted>;
}

impl Verdicts for Output<'_> {
    fn file_rows(&mut self, file_no: i32, file: &Candidate, layout: &Layout) {
        if self.route == Route::Copy {
            let source_file = file.path.display().to_string();
            let origin = Origin {
                source_file: &source_file,
                layout: layout.id.as_str(),
            };
            self.start_file(file_no, &origin);
        }
    }

    fn valid(
        &mut self,
        file_no: i32,
        line: u64,
        ev: &ValidEvent<'_>,
        extra: Option<&[u8]>,
    ) -> Result<(), Aborted> {
        Output::valid(self, file_no, line, ev, extra)
    }

    fn failed(
        &mut self,
        file_no: i32,
        line: u64,
        raw_line: &str,
        event_id: Option<&str>,
        fails: &[Failure],
    ) -> Result<(), Aborted> {
        match self.route {
            Route::Staged => stage::encode_rejected(
                &mut self.stage,
                &mut self.json,
                file_no,
                line,
                raw_line,
                event_id,
                fails,
            ),
            Route::Copy => {
                let origin = self.dead_origin(file_no, None);
                stage::encode_dead_letter(
                    &mut self.stage,
                    &mut self.json,
                    &origin,
                    line,
                    raw_line,
                    event_id,
                    fails,
                );
            }
        }
        self.staged()
    }

    fn file_read(&mut self, result: FileResult) -> Result<(), Aborted> {
        self.flush_stage()?;
        self.send(Chunk::File(result))?;
        if self.early_run < RUN_BYTES && self.rows.bytes() >= self.early_run {
            self.early_run = (self.early_run * 2).min(RUN_BYTES);
            self.send_run()?;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), Aborted> {
        if !self.rows.is_empty() {
            self.send_run()?;
        }
        Ok(())
    }
}

/// Routes encoded rows into chunks (see the module docs).
struct Output<'a> {
    /// The batch's files, by file number - 1.
    files: &'a [Candidate],
    /// The copy route's start of each dead letter of the file being read
    /// (see [`stage::encode_dead_letter_origin`]), with its file number.
    dead_origin: Option<(i32, Bytes)>,
    tx: &'a mpsc::Sender<Chunk>,
    route: Route,
    /// Bounds the runs in memory: the run being collected holds one.
    slots: &'a RunSlots,
    slot: Option<Slot>,
    /// The copy route's run being collected.
    rows: RowsBuilder,
    stage: BytesMut,
    /// The dead letters' errors as JSON (reused between rows).
    json: Vec<u8>,
    /// The file under a savepoint (see [`Chunk::Savepoint`]).
    savepoint: Option<i32>,
    /// A run holding this much at a file's end goes (see
    /// [`FIRST_RUN_BYTES`]).
    early_run: usize,
}

impl Output<'_> {
    /// A file's rows begin (copy route): the start its events share, and
    /// the start its dead letters share.
    fn start_file(&mut self, file_no: i32, origin: &Origin<'_>) {
        let mut buf = BytesMut::new();
        stage::encode_origin(&mut buf, origin);
        self.rows.start_file(file_no, buf.freeze());
        self.dead_origin = None;
        self.dead_origin(file_no, Some(origin.layout));
    }

    /// The start of file `file_no`'s dead letters (copy route), made on
    /// its first use: with `layout` when its rows begin, without one for a
    /// line before that.
    fn dead_origin(&mut self, file_no: i32, layout: Option<&str>) -> Bytes {
        match &self.dead_origin {
            Some((no, origin)) if *no == file_no => origin.clone(),
            _ => {
                let path = self.files.get(file_no as usize - 1);
                let source_file = path.map(|c| c.path.display().to_string());
                let mut buf = BytesMut::new();
                let source_file = source_file.as_deref().unwrap_or_default();
                stage::encode_dead_letter_origin(&mut buf, source_file, layout);
                let origin = buf.freeze();
                self.dead_origin = Some((file_no, origin.clone()));
                origin
            }
        }
    }

    fn valid(
        &mut self,
        file_no: i32,
        line: u64,
        ev: &ValidEvent<'_>,
        extra: Option<&[u8]>,
    ) -> Result<(), Aborted> {
        if self.route == Route::Staged {
            stage::encode_valid(&mut self.stage, file_no, line, ev, extra);
            return self.staged();
        }
        if self.slot.is_none() {
            let mut slot = self.take_slot()?;
            self.rows.start(slot.buffer());
            self.slot = Some(slot);
        }
        self.rows.push(*ev.event_id.as_bytes(), file_no, |buf| {
            stage::encode_event(buf, line, ev, extra)
        });
        if self.rows.bytes() >= RUN_BYTES {
            self.run_full(file_no)?;
        }
        Ok(())
    }

    /// A full run in the middle of file `file_no`: the rows of the files
    /// before it go (their fates are known by the time they arrive); when
    /// the run holds only this file's rows, they go under a savepoint.
    fn run_full(&mut self, file_no: i32) -> Result<(), Aborted> {
        let before = self.rows.rows_before(file_no);
        if before > 0 {
            // This file's first rows move to a buffer of the next slot.
            let mut next = self.take_slot()?;
            let rows = self.rows.take(before, next.buffer());
            let slot = self.slot.replace(next);
            return self.send_rows(rows, slot);
        }
        if self.savepoint != Some(file_no) {
            self.flush_stage()?;
            self.savepoint = Some(file_no);
            self.send(Chunk::Savepoint(file_no))?;
        }
        self.send_run()
    }

    /// Hands the whole run collected so far over.
    fn send_run(&mut self) -> Result<(), Aborted> {
        let rows = self.rows.take_all();
        let slot = self.slot.take();
        self.send_rows(rows, slot)
    }

    /// Hands a run over with the slot it was collected in.
    fn send_rows(&self, rows: SortedRows, slot: Option<Slot>) -> Result<(), Aborted> {
        let slot = match slot {
            Some(s) => s,
            None => self.take_slot()?,
        };
        self.send(Chunk::Rows(rows.holding(slot)))
    }

    /// Waits for a free slot (see [`RunSlots`]).
    fn take_slot(&self) -> Result<Slot, Aborted> {
        self.slots
            .take(|| self.tx.is_closed())
            .ok_or(Aborted::Consumer)
    }

    /// Sends the staging rows once enough are held.
    fn staged(&mut self) -> Result<(), Aborted> {
        if self.stage.len() >= CHUNK {
            self.flush_stage()?;
        }
        Ok(())
    }

    fn flush_stage(&mut self) -> Result<(), Aborted> {
        if self.stage.is_empty() {
            return Ok(());
        }
        let chunk = Chunk::Stage(self.stage.split().freeze());
        self.send(chunk)
    }

    fn send(&self, chunk: Chunk) -> Result<(), Aborted> {
        self.tx.blocking_send(chunk).map_err(|_| Aborted::Consumer)
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn parse_file<V: Verdicts>(
    source: &Source,
    file: &Candidate,
    file_no: i32,
    cfg: &ParseConfig,
    out: &mut V,
) -> Result<FileOutcome, Aborted> {
    if file.size > cfg.max_file_bytes {
        return Ok(FileOutcome::Rejected {
            hash: None,
            reason: format!(
                "the file is {}, over --max-file-bytes {}: not read",
                human(file.size),
                human(cfg.max_file_bytes)
            ),
        });
    }
    let opened = match source.open(file, cfg.input_root.as_deref(), cfg.read_timeout) {
        Ok(o) => o,
        Err(OpenError::Vanished) => return Ok(FileOutcome::Vanished),
        Err(OpenError::Changed) => return Ok(FileOutcome::Changed),
        Err(OpenError::Unreadable(reason)) => {
            return Ok(FileOutcome::Rejected { hash: None, reason })
        }
        Err(OpenError::Transient(message)) => return Err(Aborted::Input(message)),
    };
    let fault = opened.fault();
    let stalled = opened.stalled();
    let listed = Listed {
        source,
        at_end: opened.at_end(),
    };
    let outcome = read_file(&listed, opened.reader, file, file_no, cfg, out)?;
    // A read that never returned (logged where it stalled): neither
    // recorded nor moved; its staged rows are dropped with it.
    if stalled.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst)) {
        return Ok(FileOutcome::Changed);
    }
    // Staged rows of an abandoned batch roll back with it.
    match fault.and_then(|f| f.lock().ok().and_then(|mut f| f.take())) {
        Some(message) => Err(Aborted::Input(message)),
        None => Ok(outcome),
    }
}

/// What a read file is compared with: its input, and the path's metadata
/// taken right after its end (a folder's file).
struct Listed<'a> {
    source: &'a Source,
    at_end: Option<crate::source::bounded::AtEnd>,
}

/// A file's content as the record readers see it: its stored bytes (capped
/// at one byte past `--max-file-bytes`, to notice a file that grew past
/// it), hashed, then decompressed as its name says.
type Content = Decoded<std::io::Take<Box<dyn std::io::Read + Send>>>;

/// Reads one opened file to the end (see [`parse_file`]).
fn read_file<V: Verdicts>(
    listed: &Listed<'_>,
    f: Box<dyn std::io::Read + Send>,
    file: &Candidate,
    file_no: i32,
    cfg: &ParseConfig,
    out: &mut V,
) -> Result<FileOutcome, Aborted> {
    let format = Format::of(&file.path);
    let content = match open_content(f, &file.path, file.size, format, cfg.max_file_bytes) {
        Ok(c) => c,
        Err(e) => {
            return Ok(FileOutcome::Rejected {
                hash: None,
                reason: format!("cannot start decompressing: {e}"),
            })
        }
    };
    let read = match format.records {
        RecordFormat::Csv => read_csv(content, file, file_no, cfg, out)?,
        RecordFormat::Jsonl => jsonl::read_jsonl(content, file, file_no, cfg, out)?,
    };
    Ok(match read {
        Ok(stats) => after_reading(listed, file, cfg, stats),
        Err(rejected) => rejected,
    })
}

/// The content of an opened file (see [`Content`]): its stored bytes
/// hashed, decompressed as its name says, at most `max_file_bytes` of each.
pub(crate) fn open_content<R: std::io::Read>(
    f: R,
    path: &Path,
    stored_size: u64,
    format: Format,
    max_file_bytes: u64,
) -> std::io::Result<Decoded<std::io::Take<R>>> {
    let stored = Stored::new(f.take(max_file_bytes.saturating_add(1)));
    let bounds = Bounds {
        name: path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        stored_size,
        max_bytes: max_file_bytes,
    };
    Decoded::new(stored, format.compression, bounds)
}

/// Reads a CSV file's header and rows: what it held, or its rejection.
fn read_csv<V: Verdicts>(
    content: Content,
    file: &Candidate,
    file_no: i32,
    cfg: &ParseConfig,
    out: &mut V,
) -> Result<Result<ParsedFile, FileOutcome>, Aborted> {
    let mut reader =
        RecordReader::new(content, cfg.max_record_bytes).with_max_fields(cfg.max_fields);
    let (layout, header) = match read_header(&mut reader, file, cfg) {
        Ok(found) => found,
        Err(rejected) => return Ok(Err(*rejected)),
    };
    let mut stats = ParsedFile {
        layout: Some(layout.id),
        unknown_columns: layout.unknown.clone(),
        header,
        ..ParsedFile::default()
    };
    if let Err(e) = read_rows(&mut reader, &layout, file, file_no, cfg, out, &mut stats)? {
        return Ok(Err(reject_read(reader.get_mut(), e.to_string(), cfg)));
    }
    Ok(Ok(finish_stats(reader.get_mut(), stats)))
}

/// `stats` with the hash and size of the whole stored file; a rest that
/// cannot be read leaves the hash of what was.
fn finish_stats(content: &mut Content, mut stats: ParsedFile) -> ParsedFile {
    let stored = content.stored();
    let _ = stored.drain();
    stats.hash = stored.content_hash();
    stats.bytes = stored.bytes_read();
    stats
}

/// The header's layout and its column names, or the file's rejection (no
/// header, an unknown or ambiguous one, a header that cannot be read).
fn read_header(
    reader: &mut RecordReader<Content>,
    file: &Candidate,
    cfg: &ParseConfig,
) -> Result<(Layout, Vec<String>), Box<FileOutcome>> {
    let found = match csv_layout(reader, cfg) {
        Ok(found) => found,
        Err(reason) => return Err(Box::new(reject_read(reader.get_mut(), reason, cfg))),
    };
    log_unknown(file, &found.0, cfg);
    Ok(found)
}

/// Reads a CSV file's header and detects its layout (see
/// [`Layout::from_csv_header`]); the rows after it are then read in the
/// layout's dialect. The error is the file's rejection reason.
fn csv_layout<R: Read>(
    reader: &mut RecordReader<R>,
    cfg: &ParseConfig,
) -> Result<(Layout, Vec<String>), String> {
    let found = match reader.next_record() {
        Ok(Some(header)) => {
            let cells: Vec<&[u8]> = (0..header.len()).map(|i| header.field(i)).collect();
            Layout::from_csv_header(&cells, header.raw, cfg.unknown_columns, cfg.layouts)
        }
        Ok(None) => Err(crate::source::layout::LayoutError::Empty),
        Err(e) => return Err(e.to_string()),
    };
    let (layout, names) = found.map_err(|e| e.to_string())?;
    let d = layout.dialect();
    reader.set_dialect(d.delimiter, d.quote);
    Ok((layout, names))
}

/// Logs the columns outside a file's layout, if any.
fn log_unknown(file: &Candidate, layout: &Layout, cfg: &ParseConfig) {
    if !layout.unknown.is_empty() {
        tracing::info!(
            file = ?file.path.display().to_string(),
            layout = %layout.id,
            unknown = ?layout.unknown,
            policy = ?cfg.unknown_columns,
            "columns outside the layout"
        );
    }
}

/// Validates and encodes every data row into `out`, counting into `stats`.
/// The inner error is a record that cannot be read (the file is rejected).
fn read_rows<V: Verdicts>(
    reader: &mut RecordReader<Content>,
    layout: &Layout,
    file: &Candidate,
    file_no: i32,
    cfg: &ParseConfig,
    out: &mut V,
    stats: &mut ParsedFile,
) -> Result<Result<(), crate::source::reader::ReadError>, Aborted> {
    let mut judge = Judge::new(file_no, cfg);
    judge.start_file(file, layout, out);
    loop {
        let rec = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(Ok(())),
            Err(e) => return Ok(Err(e)),
        };
        judge.row(&rec, layout, Extra::FromColumns, out, stats)?;
    }
}

/// Where a row's `extra` JSON comes from.
enum Extra<'a> {
    /// The layout's extra columns of a CSV record.
    FromColumns,
    /// Made by the record's reader (JSON Lines).
    Made(Option<&'a [u8]>),
}

/// Judges one file's rows: each becomes a valid event or a dead letter.
struct Judge<'c> {
    file_no: i32,
    cfg: &'c ParseConfig,
    /// The rules under the file's layout (see [`Layout::rules`]).
    rules: crate::validate::Rules,
    now: i64,
    extra: Vec<u8>,
    ids: DerivedIds,
}

impl<'c> Judge<'c> {
    fn new(file_no: i32, cfg: &'c ParseConfig) -> Self {
        Judge {
            file_no,
            cfg,
            rules: cfg.rules,
            now: now_micros(),
            extra: Vec::new(),
            ids: DerivedIds::default(),
        }
    }

    /// The file's rows begin, in `layout` (see [`Verdicts::file_rows`]).
    fn start_file(&mut self, file: &Candidate, layout: &Layout, out: &mut impl Verdicts) {
        self.rules = layout.rules(&self.cfg.rules);
        out.file_rows(self.file_no, file, layout);
    }

    /// Validates one record and sends it on.
    fn row(
        &mut self,
        rec: &Record<'_>,
        layout: &Layout,
        extra: Extra<'_>,
        out: &mut impl Verdicts,
        stats: &mut ParsedFile,
    ) -> Result<(), Aborted> {
        let (now, rules) = (self.now, &self.rules);
        stats.rows_read += 1;
        let mut id_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let mut derived = None;
        let result = if rec.len() != layout.width {
            Err(vec![Failure::new(
                RuleCode::MalformedRow,
                Field::EventId,
                "",
                format!(
                    "line has {} field(s) but the header has {}",
                    rec.len(),
                    layout.width
                ),
            )])
        } else if let Some(fields) = rec.text() {
            let mut raw: RawFields<'_> = [None; FIELD_COUNT];
            let text = |i| fields.field(i);
            layout.fill(text, &mut raw);
            if let Some(cols) = &layout.derive_id_from {
                let id = self.ids.next(layout.id, cols.iter().map(|&i| text(i)));
                derived = Some(id);
                raw[Field::EventId.index()] = Some(id.hyphenated().encode_lower(&mut id_buf));
            }
            validate(&raw, now, rules)
        } else {
            Err(encoding_failures(rec, layout, now, rules))
        };
        match result {
            Ok(ev) => {
                stats.rows_valid += 1;
                stats.late += u64::from(ev.is_late_arrival);
                let extra = match extra {
                    Extra::FromColumns => extra_json(&mut self.extra, layout, rec),
                    Extra::Made(e) => e,
                };
                out.valid(self.file_no, rec.line, &ev, extra)
            }
            Err(fails) => {
                // A derived id depends on the rows before it in the file:
                // kept, so that a replay gives the row the same id.
                let event_id = match layout.position(Field::EventId) {
                    Some(p) => Some(clean_text(rec.field(p))),
                    None => derived.map(|id| Cow::Owned(id.hyphenated().to_string())),
                }
                .filter(|s| !s.trim().is_empty());
                let event_id = event_id.as_deref().map(str::trim);
                self.dead_letter(rec.line, rec.raw, event_id, &fails, out, stats)
            }
        }
    }

    /// Hands on a row that failed `fails`: a dead letter.
    fn dead_letter(
        &mut self,
        line: u64,
        raw: &[u8],
        event_id: Option<&str>,
        fails: &[Failure],
        out: &mut impl Verdicts,
        stats: &mut ParsedFile,
    ) -> Result<(), Aborted> {
        stats.rows_rejected += 1;
        for f in fails {
            *stats.rejects_by_code.entry(f.code).or_default() += 1;
        }
        out.failed(self.file_no, line, &clean_text(raw), event_id, fails)
    }
}

/// What a file read to its end turned out to be: parsed, or rejected or
/// changed after all (it grew past the limit, shrank, changed, or had no
/// data row).
fn after_reading(
    listed: &Listed<'_>,
    file: &Candidate,
    cfg: &ParseConfig,
    stats: ParsedFile,
) -> FileOutcome {
    if stats.bytes > cfg.max_file_bytes {
        return grew_past(cfg);
    }
    match listed
        .source
        .changed_since_listing(file, stats.bytes, listed.at_end.as_ref())
    {
        Change::None => {}
        Change::Modified => return FileOutcome::Changed,
        Change::Shrank(now) => {
            return FileOutcome::Rejected {
                hash: None,
                reason: format!(
                    "the file shrank while being read (listed with {} bytes, {now} there now): \
                     truncated or rewritten in place; write files under a temporary name and \
                     rename them when complete",
                    file.size
                ),
            }
        }
    }
    if stats.rows_read == 0 {
        return FileOutcome::Rejected {
            hash: Some(stats.hash),
            reason: match Format::of(&file.path).records {
                RecordFormat::Csv => "the file has a header but no data rows",
                RecordFormat::Jsonl => "the file holds no JSON object (only blank lines)",
            }
            .to_string(),
        };
    }
    if let Some(reason) = too_many_rejects(&stats, cfg.max_reject_ratio) {
        return FileOutcome::Rejected {
            hash: Some(stats.hash),
            reason,
        };
    }
    FileOutcome::Parsed(stats)
}

/// The reason to reject a whole file whose failing rows are more than
/// `limit` of its rows (`--max-reject-ratio`), if they are. A file without
/// rows is never rejected by this rule.
pub fn too_many_rejects(stats: &ParsedFile, limit: Option<f64>) -> Option<String> {
    let limit = limit?;
    let (failed, read) = (stats.rows_rejected, stats.rows_read);
    if read == 0 || failed as f64 <= limit * read as f64 {
        return None;
    }
    Some(format!(
        "{failed} of {read} rows ({:.1}%) failed validation, more than --max-reject-ratio {limit}",
        failed as f64 * 100.0 / read as f64
    ))
}

/// The raw text of the records starting on `lines` of `file` (for rows the
/// database refused after parsing). Returns nothing for a file that is no
/// longer the listed version.
pub fn raw_lines(
    source: &Source,
    file: &Candidate,
    lines: &[i64],
    cfg: &ParseConfig,
) -> std::collections::HashMap<i64, String> {
    let mut out = std::collections::HashMap::new();
    if !source.unchanged(file) {
        return out;
    }
    let Ok(opened) = source.open(file, None, cfg.read_timeout) else {
        return out;
    };
    let fault = opened.fault();
    let stalled = opened.stalled();
    let wanted: std::collections::HashSet<i64> = lines.iter().copied().collect();
    let format = Format::of(&file.path);
    let Ok(content) = open_content(
        opened.reader,
        &file.path,
        file.size,
        format,
        cfg.max_file_bytes,
    ) else {
        return out;
    };
    let mut keep = |line: u64, raw: &[u8]| {
        if wanted.contains(&(line as i64)) {
            out.insert(line as i64, clean_text(raw).into_owned());
        }
        out.len() < wanted.len()
    };
    match format.records {
        RecordFormat::Csv => {
            let mut reader = RecordReader::new(content, cfg.max_record_bytes);
            // The header, whose dialect the rows are split in.
            if csv_layout(&mut reader, cfg).is_err() {
                return out;
            }
            while let Ok(Some(rec)) = reader.next_record() {
                if !keep(rec.line, rec.raw) {
                    break;
                }
            }
        }
        RecordFormat::Jsonl => {
            let mut reader = JsonlReader::new(
                content,
                cfg.max_record_bytes,
                cfg.max_fields,
                UnknownColumns::Keep,
            )
            .with_layouts(cfg.layouts);
            while let Ok(Some(l)) = reader.next_line() {
                let more = match l {
                    JsonLine::Row { rec, .. } => keep(rec.line, rec.raw),
                    JsonLine::Malformed { line, raw, .. } => keep(line, raw),
                };
                if !more {
                    break;
                }
            }
        }
    }
    let failed = fault.is_some_and(|f| f.lock().map_or(true, |f| f.is_some()))
        || stalled.is_some_and(|s| s.load(std::sync::atomic::Ordering::SeqCst));
    if failed || !source.unchanged(file) {
        out.clear();
    }
    out
}

/// Occurrence numbers of identical rows within one file, for layouts whose
/// event ids are derived from the row's values.
#[derive(Default)]
struct DerivedIds {
    seen: std::collections::HashMap<[u8; 16], u32>,
}

impl DerivedIds {
    fn next<'a>(
        &mut self,
        layout: LayoutRef,
        values: impl Iterator<Item = &'a str> + Clone,
    ) -> uuid::Uuid {
        let mut h = blake3::Hasher::new();
        for v in values.clone() {
            h.update(v.trim().as_bytes());
            h.update(&[0x1f]);
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&h.finalize().as_bytes()[..16]);
        let n = self.seen.entry(key).or_default();
        *n += 1;
        derived_event_id(layout, values, *n)
    }
}

/// The row's `extra` JSON object (`None` when the layout keeps no extra
/// column). Empty values are `null`. `buf` is reused between rows.
pub(crate) fn extra_json<'b>(
    buf: &'b mut Vec<u8>,
    layout: &Layout,
    rec: &crate::source::reader::Record<'_>,
) -> Option<&'b [u8]> {
    if layout.extras.is_empty() {
        return None;
    }
    buf.clear();
    buf.push(b'{');
    for (i, (name, p)) in layout.extras.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        let v = clean_text(rec.field(*p));
        let v = v.trim();
        // Writing strings into a Vec cannot fail.
        serde_json::to_writer(&mut *buf, name).ok()?;
        buf.push(b':');
        if v.is_empty() {
            buf.extend_from_slice(b"null");
        } else {
            serde_json::to_writer(&mut *buf, v).ok()?;
        }
    }
    buf.push(b'}');
    Some(buf)
}

/// The file's rejection for `reason`, with the hash of its stored bytes
/// once they are read to the end (without decompressing them further).
fn reject_read(content: &mut Content, reason: String, cfg: &ParseConfig) -> FileOutcome {
    let stored = content.stored();
    match stored.drain() {
        Ok(()) if stored.bytes_read() > cfg.max_file_bytes => grew_past(cfg),
        Ok(()) => FileOutcome::Rejected {
            hash: Some(stored.content_hash()),
            reason,
        },
        Err(_) => FileOutcome::Rejected { hash: None, reason },
    }
}

/// The rejection of a file that grew past `--max-file-bytes` while read.
fn grew_past(cfg: &ParseConfig) -> FileOutcome {
    FileOutcome::Rejected {
        hash: None,
        reason: format!(
            "the file grew past --max-file-bytes {} while being read",
            human(cfg.max_file_bytes)
        ),
    }
}

/// Failures for a row with undecodable bytes: `invalid_encoding` for each
/// such column, plus whatever the other rules say about the decoded text.
fn encoding_failures(
    rec: &crate::source::reader::Record<'_>,
    layout: &Layout,
    now: i64,
    rules: &Rules,
) -> Vec<Failure> {
    let texts: Vec<String> = (0..layout.width)
        .map(|i| clean_text(rec.field(i)).into_owned())
        .collect();
    let mut fails = vec![];
    for f in Field::ALL {
        if let Some(p) = layout.position(f) {
            let b = rec.field(p);
            if b.contains(&0) || std::str::from_utf8(b).is_err() {
                fails.push(Failure::new(
                    RuleCode::InvalidEncoding,
                    f,
                    &texts[p],
                    format!("{} is not valid UTF-8 text (or holds a NUL byte)", f.name()),
                ));
            }
        }
    }
    let mut raw: RawFields<'_> = [None; FIELD_COUNT];
    layout.fill(|i| texts[i].as_str(), &mut raw);
    if let Err(more) = validate(&raw, now, rules) {
        fails.extend(more);
    }
    if fails.is_empty() {
        // An undecodable column shopstream ignores: still not loadable as-is.
        fails.push(Failure::new(
            RuleCode::InvalidEncoding,
            Field::EventId,
            "",
            "the line holds bytes that are not valid UTF-8 text (or a NUL byte)",
        ));
    }
    fails
}

/// Text PostgreSQL can store: invalid UTF-8 and NUL become U+FFFD.
pub(crate) fn clean_text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    let s = String::from_utf8_lossy(b);
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        s
    }
}

/// Counts by code, with codes as strings (for JSON).
pub fn codes_to_strings(m: &BTreeMap<RuleCode, u64>) -> BTreeMap<String, u64> {
    m.iter()
        .map(|(k, v)| (k.as_str().to_string(), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::discover::mtime_micros;

    fn folder() -> Source {
        Source::folder(std::path::Path::new("."))
    }

    const V1: &str = "event_id,user_id,event_type,product_id,price,event_time\n";
    const ROW: &str = "0b6f1c2e-5d4a-4c3b-9a1e-2f3d4c5b6a79,u1,view,p1,,2026-01-02 03:04:05\n";

    fn candidate(path: &std::path::Path) -> Candidate {
        let md = std::fs::metadata(path).expect("metadata");
        Candidate {
            path: path.to_path_buf(),
            size: md.len(),
            mtime_micros: mtime_micros(&md),
            file_id: None,
        }
    }

    fn outcome(file: &Candidate) -> FileOutcome {
        let (tx, mut rx) = mpsc::channel(8);
        let drain = std::thread::spawn(move || {
            let mut results = vec![];
            while let Some(chunk) = rx.blocking_recv() {
                if let Chunk::File(r) = chunk {
                    results.push(r);
                }
            }
            results
        });
        read_batch(std::slice::from_ref(file), &ParseConfig::default(), &tx).expect("read");
        drop(tx);
        let mut results = drain.join().expect("drain");
        results.remove(0).outcome
    }

    fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Candidate {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        candidate(&p)
    }

    fn reason(o: FileOutcome) -> String {
        match o {
            FileOutcome::Rejected { reason, .. } => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn counts(rows_rejected: u64, rows_read: u64) -> ParsedFile {
        ParsedFile {
            rows_read,
            rows_rejected,
            ..ParsedFile::default()
        }
    }

    #[test]
    fn the_reject_limit_counts_more_than_its_share_and_never_an_empty_file() {
        assert_eq!(
            too_many_rejects(&counts(612, 1000), Some(0.5)).as_deref(),
            Some("612 of 1000 rows (61.2%) failed validation, more than --max-reject-ratio 0.5")
        );
        assert_eq!(too_many_rejects(&counts(500, 1000), Some(0.5)), None);
        assert_eq!(too_many_rejects(&counts(612, 1000), None), None);
        assert_eq!(too_many_rejects(&counts(0, 0), Some(0.1)), None);
        assert_eq!(too_many_rejects(&counts(10, 10), Some(1.0)), None);
        assert!(too_many_rejects(&counts(1, 10), Some(0.05)).is_some());
    }

    /// The chunks `files` make on the copy route, in order: `S` a
    /// savepoint, `R` a run, `D` staged dead letters, and each file's
    /// outcome.
    fn copy_route(files: &[Candidate], cfg: &ParseConfig) -> (String, Vec<FileOutcome>) {
        let (tx, mut rx) = mpsc::channel(8);
        let drain = std::thread::spawn(move || {
            let (mut kinds, mut outcomes) = (String::new(), vec![]);
            while let Some(chunk) = rx.blocking_recv() {
                match chunk {
                    Chunk::Savepoint(_) => kinds.push('S'),
                    Chunk::Rows(_) => kinds.push('R'),
                    Chunk::Stage(_) => kinds.push('D'),
                    Chunk::File(r) => {
                        kinds.push('F');
                        outcomes.push(r.outcome);
                    }
                }
            }
            (kinds, outcomes)
        });
        let route = Route::Copy;
        read_batch_from(&folder(), files, cfg, route, &RunSlots::new(2, 0), &tx).expect("read");
        drop(tx);
        drain.join().expect("drain")
    }

    #[test]
    fn a_file_over_the_reject_limit_is_rejected_whole_even_when_larger_than_a_run() {
        let d = tempfile::tempdir().expect("tempdir");
        // 20 000 valid rows of 1 KiB of `extra` each (more than a run),
        // and 25 000 failing rows: 55.6% of the rows fail.
        let note = "n".repeat(1024);
        let mut text = format!("{},note\n", V1.trim_end());
        for i in 0..45_000u32 {
            if i % 9 < 4 {
                text.push_str(&format!(
                    "0b6f1c2e-5d4a-4c3b-9a1e-{i:012x},u1,view,p1,,2026-01-02 03:04:05,{note}\n"
                ));
            } else {
                text.push_str(",u1,view,p1,,2026-01-02 03:04:05,\n");
            }
        }
        let big = write(d.path(), "big.csv", text.as_bytes());
        let cfg = ParseConfig {
            max_reject_ratio: Some(0.5),
            ..ParseConfig::default()
        };
        let (kinds, outcomes) = copy_route(std::slice::from_ref(&big), &cfg);
        // Its first run went under a savepoint before its outcome.
        let (savepoint, file) = (kinds.find('S'), kinds.find('F'));
        assert!(savepoint.is_some() && savepoint < file, "{kinds}");
        assert!(kinds[..file.unwrap_or(0)].contains('R'), "{kinds}");
        assert_eq!(
            reason(outcomes.into_iter().next().expect("one file")),
            "25000 of 45000 rows (55.6%) failed validation, more than --max-reject-ratio 0.5"
        );
        // Without the limit it is read as before.
        let (_, outcomes) = copy_route(&[big], &ParseConfig::default());
        assert!(
            matches!(&outcomes[0], FileOutcome::Parsed(p) if p.rows_rejected == 25_000),
            "{outcomes:?}"
        );
    }

    #[test]
    fn the_first_runs_go_at_the_end_of_a_file_and_grow_to_a_whole_run() {
        let d = tempfile::tempdir().expect("tempdir");
        // Files of 3,000 rows of 256 bytes of `extra` each (about 1.1 MiB
        // encoded): more than the first run, less than a whole run.
        let note = "n".repeat(256);
        let files: Vec<Candidate> = (0..12u32)
            .map(|f| {
                let mut text = format!("{},note\n", V1.trim_end());
                for i in 0..3_000u32 {
                    text.push_str(&format!(
                        "0b6f1c2e-5d4a-4c3b-{f:04x}-{i:012x},u1,view,p1,,2026-01-02 03:04:05,{note}\n"
                    ));
                }
                write(d.path(), &format!("f{f:02}.csv"), text.as_bytes())
            })
            .collect();
        let (kinds, _) = copy_route(&files, &ParseConfig::default());
        // The first run goes right after the first file (the COPY starts
        // after one file is read), the second after the second; then the
        // runs grow: never a run per file to the end, never a savepoint.
        assert!(kinds.starts_with("FRFR"), "{kinds}");
        let runs = kinds.matches('R').count();
        assert!((4..12).contains(&runs), "{kinds}");
        assert!(!kinds.contains('S'), "{kinds}");
    }

    #[test]
    fn a_header_without_rows_is_rejected() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = write(d.path(), "h.csv", V1.as_bytes());
        assert_eq!(
            reason(outcome(&c)),
            "the file has a header but no data rows"
        );
        let c = write(d.path(), "ok.csv", format!("{V1}{ROW}").as_bytes());
        assert!(matches!(outcome(&c), FileOutcome::Parsed(p) if p.rows_read == 1));
    }

    #[test]
    fn a_file_shorter_than_listed_was_truncated_and_is_rejected() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut c = write(d.path(), "t.csv", format!("{V1}{ROW}{ROW}").as_bytes());
        c.size += 100;
        assert!(reason(outcome(&c)).starts_with("the file shrank while being read"));
    }

    #[test]
    fn a_file_that_grew_is_tried_again_later() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut c = write(d.path(), "g.csv", format!("{V1}{ROW}").as_bytes());
        c.size -= 10;
        assert_eq!(outcome(&c), FileOutcome::Changed);
    }

    #[test]
    fn binary_and_utf16_files_are_rejected_with_their_kind() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = write(d.path(), "b.csv", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0");
        assert!(reason(outcome(&c)).contains("binary"));
        let utf16: Vec<u8> = std::iter::once(0xFEFFu16)
            .chain(V1.encode_utf16())
            .flat_map(u16::to_le_bytes)
            .collect();
        let c = write(d.path(), "u.csv", &utf16);
        assert!(reason(outcome(&c)).contains("UTF-16"));
    }

    #[test]
    fn raw_lines_reads_back_exact_records_of_an_unchanged_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let text = format!("{V1}{ROW}\"q,1\",\"a\nb\",view,p,1,2026-01-01\r\n{ROW}");
        let c = write(d.path(), "r.csv", text.as_bytes());
        let cfg = ParseConfig::default();
        let got = raw_lines(&folder(), &c, &[3, 5], &cfg);
        assert_eq!(
            got.get(&3).map(String::as_str),
            Some("\"q,1\",\"a\nb\",view,p,1,2026-01-01")
        );
        assert_eq!(got.get(&5).map(String::as_str), Some(ROW.trim_end()));
        let mut changed = c.clone();
        changed.size += 1;
        assert!(raw_lines(&folder(), &changed, &[3], &cfg).is_empty());
    }
}
