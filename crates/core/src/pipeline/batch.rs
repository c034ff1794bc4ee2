//! Drives one batch through its phases, in one place:
//!
//! 1. **claim**: [`Batch::begin`] takes the writer lock and a batch id and
//!    claims the files (those another loader holds are left to it), while
//!    the reader already reads them (reading changes nothing; when a file
//!    is left out, the claimed ones are read again, numbered as claimed);
//! 2. **plan**: the route of the valid rows is fixed (copy, or staged for a
//!    table that checks what the validator does not);
//! 3. **read and validate**: [`read_batch_from`] reads the files on a
//!    blocking thread and sends their rows as [`crate::batch::Chunk`]s;
//! 4. **copy**: each chunk goes into the transaction as it comes: sorted
//!    runs checked for duplicates (their ids sorted and partly asked
//!    beside the batch by the [`Asker`] while the run before is COPYed)
//!    and COPYed, dead letters staged, the fates of the files read decided
//!    before the next run;
//! 5. **settle**: the rows the server refused are re-read for their raw
//!    text, then dead letters, ledger and quality rows are written and the
//!    transaction commits, in one round trip.
//!
//! It owns that order and nothing else: no SQL (the sink's), no parsing
//! (the reader's), no retries (the loader's).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::Either;
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::read::{raw_lines, read_batch_from, ParseConfig, RUN_BYTES};
use crate::batch::{BatchReport, Chunk, Route, RunSlots, SortedRows};
use crate::sink::dedup::{Answers, Asker, TableIds};
use crate::sink::transaction::{Batch, Begun, SinkError};
use crate::source::discover::Candidate;
use crate::source::input::Source;

/// Chunks in flight between the reader and the transaction.
const IN_FLIGHT: usize = 16;
/// Runs in memory: the one being loaded, the one being asked about beside
/// the batch, and the one being collected.
const RUNS_HELD: usize = 3;

/// Where a batch's files are read from and how.
#[derive(Clone)]
pub struct Reading {
    pub source: Source,
    pub cfg: ParseConfig,
}

impl Reading {
    /// Files of a folder, read with `cfg`.
    pub fn folder(cfg: ParseConfig) -> Reading {
        Reading {
            source: Source::folder(std::path::Path::new("")),
            cfg,
        }
    }
}

/// Loads one batch of `files` (see the module docs); `staged` chooses the
/// staged route.
pub async fn load(
    client: &mut Client,
    table: &mut TableIds,
    files: Vec<Candidate>,
    reading: &Reading,
    staged: bool,
) -> Result<BatchReport, SinkError> {
    let started = std::time::Instant::now();
    let route = if staged { Route::Staged } else { Route::Copy };
    let mut reader = Reader::start(reading, files.clone(), route);
    let begun = Batch::begin(client, table, files, staged).await;
    let mut batch = match begun {
        Ok(Begun::Claimed(b)) => b,
        Ok(Begun::Nothing(report)) => {
            reader.abandon().await;
            return Ok(report);
        }
        Err(e) => {
            reader.abandon().await;
            return Err(e);
        }
    };
    if batch.files() != reader.files {
        reader.abandon().await;
        reader = Reader::start(reading, batch.files().to_vec(), route);
    }
    // Plan while the reader collects the first run, then copy as it comes.
    let claimed = started.elapsed();
    let mut failed = batch.plan(table).await.err();
    let planned = started.elapsed();
    if failed.is_none() {
        failed = copy(&mut batch, table, &mut reader.chunks).await.err();
    }
    let read = reader.stop().await;
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    let copied = started.elapsed();
    let refused = batch.refused().await?;
    let raw = reread(refused, reading).await;
    let report = batch.commit(raw, table).await?;
    tracing::debug!(
        claim_ms = ms(claimed),
        plan_ms = ms(planned - claimed),
        read_and_copy_ms = ms(copied - planned),
        settle_ms = ms(started.elapsed() - copied),
        "batch phases"
    );
    Ok(report)
}

/// A chunk of the reader on its way to the transaction: a run comes with
/// what was found out about its ids beside the batch.
enum Asked {
    Chunk(Chunk),
    Run(SortedRows, Answers),
}

/// The copy phase: the reader's chunks go into the transaction in their
/// order, each run's ids sorted and asked beside the batch (see
/// [`Asker`]) while the run before it is still being loaded.
async fn copy(
    batch: &mut Batch<'_>,
    table: &mut TableIds,
    chunks: &mut mpsc::Receiver<Chunk>,
) -> Result<(), SinkError> {
    let (ahead, mut asked) = mpsc::channel::<Asked>(IN_FLIGHT);
    let ask = async move {
        let mut asker = Asker::new(table);
        let mut t = std::time::Instant::now();
        while let Some(chunk) = chunks.recv().await {
            let next = match chunk {
                Chunk::Rows(run) => {
                    tracing::debug!(reader_ms = ms(t.elapsed()), "run read");
                    let answers = asker.answer(&run).await;
                    Asked::Run(run, answers)
                }
                other => Asked::Chunk(other),
            };
            if ahead.send(next).await.is_err() {
                break;
            }
            t = std::time::Instant::now();
        }
    };
    let take = async move {
        let mut waited = std::time::Instant::now();
        while let Some(next) = asked.recv().await {
            match next {
                Asked::Chunk(chunk) => batch.take(chunk).await?,
                Asked::Run(run, answers) => {
                    tracing::debug!(waited_ms = ms(waited.elapsed()), "run ready");
                    batch.take_run(run, answers).await?;
                    waited = std::time::Instant::now();
                }
            }
        }
        Ok::<(), SinkError>(())
    };
    // The asking side ends with the reader, and the copy side then once it
    // has taken everything; the copy side failing ends both at once.
    let (ask, take) = (std::pin::pin!(ask), std::pin::pin!(take));
    match futures_util::future::select(take, ask).await {
        Either::Left((taken, _)) => taken,
        Either::Right(((), take)) => take.await,
    }
}

/// The reader of a batch's files on a blocking thread (see
/// [`read_batch_from`]), and the chunks it sends.
struct Reader {
    files: Vec<Candidate>,
    chunks: mpsc::Receiver<Chunk>,
    task: tokio::task::JoinHandle<Result<(), super::read::Aborted>>,
}

impl Reader {
    fn start(reading: &Reading, files: Vec<Candidate>, route: Route) -> Reader {
        let (tx, chunks) = mpsc::channel::<Chunk>(IN_FLIGHT);
        let (source, cfg) = (reading.source.clone(), reading.cfg.clone());
        let slots = RunSlots::new(RUNS_HELD, RUN_BYTES + (1 << 20));
        let read = files.clone();
        let task = tokio::task::spawn_blocking(move || {
            read_batch_from(&source, &read, &cfg, route, &slots, &tx)
        });
        Reader {
            files,
            chunks,
            task,
        }
    }

    /// Stops reading and drops what was read (see [`Reader::stop`]).
    async fn abandon(self) {
        // Stopped in the middle, it reports the COPY abandoned: not news.
        let _ = self.stop().await;
    }

    /// Stops reading (the reader stops at its next send once the receiver
    /// is gone, and stops waiting for a run's slot too) and waits for it:
    /// how its reading ended.
    async fn stop(self) -> Result<(), SinkError> {
        drop(self.chunks);
        self.task
            .await
            .map_err(|e| SinkError::Reader(e.to_string()))?
            .map_err(|e| SinkError::Reader(e.to_string()))
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The raw text of rows the server refused, re-read from their files on a
/// blocking thread (lines it cannot vouch for are left out).
async fn reread(
    refused: Vec<(i32, Candidate, Vec<i64>)>,
    reading: &Reading,
) -> HashMap<(i32, i64), String> {
    if refused.is_empty() {
        return HashMap::new();
    }
    let reading = Arc::new(reading.clone());
    let found = tokio::task::spawn_blocking(move || {
        let mut out = HashMap::new();
        for (file_no, c, lines) in refused {
            let texts = raw_lines(&reading.source, &c, &lines, &reading.cfg);
            for (line, text) in texts {
                out.insert((file_no, line), text);
            }
        }
        out
    })
    .await;
    found.unwrap_or_default()
}
