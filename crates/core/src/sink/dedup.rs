//! The duplicate decision on the copy route, made once per row: a sorted
//! run of valid events is checked against the event table, and only the
//! rows it does not hold yet are COPYed into it.
//!
//! Within a run the first copy of an id (earliest file and line, the run is
//! sorted stably) is the one that counts. Then each id is either
//! * **certainly new**: [`TableIds`], a Bloom filter of every id in the
//!   table (read once, by the first batch, on a connection of its own
//!   beside the batch, then kept up to date with the ids each batch
//!   commits) has never seen it. A Bloom filter has no false "no". Until
//!   the read arrives no id is certainly new: the batch goes on, probing
//!   every id;
//! * or **asked** (true duplicates and about 1% of false "maybe"), one
//!   probe (`event_id = ANY(…)`) per run and connection: an id an earlier
//!   run of the batch held on the batch's own connection, the only one
//!   that sees what the batch loaded; the others by the [`Asker`], on a
//!   connection beside the batch, while the batch still COPYs the run
//!   before, so the server's work on the two overlaps. That connection
//!   sees what is committed, which (under the writer lock, below) is
//!   exactly what the batch sees, less its own rows.
//!
//! The filter is only trusted while this loader is the table's only
//! writer: every loader takes the writer lock (see [`super::transaction`])
//! and records each batch in `data_quality_metrics`, so at the start of a
//! batch one indexed query tells whether another loader committed since
//! the filter was read; if so it is read again. So nothing can be inserted
//! between the decision and the COPY, the COPY never meets a duplicate, and
//! nothing is ever tried twice.
//!
//! It owns the filter, the probes and the COPY of a run. It never decides
//! a file's fate and never touches the staging table.

use std::collections::{HashMap, HashSet};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::try_join3;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::types::Type;
use tokio_postgres::{CopyInSink, Statement, Transaction};
use uuid::Uuid;

use super::copy;
use crate::batch::{RowRef, SortedRows};
use crate::db::connect::Connector;

/// Bytes sent to the server at a time.
const CHUNK: usize = 256 * 1024;

const PROBE: &str = "SELECT event_id FROM ecommerce_events WHERE event_id = ANY($1::uuid[])";
/// Around the probe: the primary key is (event_id, event_time) (the table
/// is partitioned by month), so without statistics (a partition filled in
/// this very transaction, or a new month's) the planner does not know an
/// id matches at most one row and, once a partition is large, scans it
/// whole for each probe (measured: 100 ms for 100 ids in a 400k-row
/// partition). The probe is told to use the indexes; the setting is
/// restored in the same round trip.
/// Nor is a probe worth compiling (JIT, which the planner's large row
/// estimate would otherwise start: about 4 ms a probe).
const PROBE_BY_INDEX: &str = "SET LOCAL enable_seqscan = off; SET LOCAL jit = off";
const PROBE_DONE: &str = "SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL jit TO DEFAULT";
/// The same, for the connection beside the batch, which only probes.
const BESIDE_SETTINGS: &str = "SET enable_seqscan = off; SET jit = off";
/// Fewer "maybe" ids than this are asked on the batch's own connection, in
/// the round trip that starts the run's COPY anyway: a round trip of its
/// own beside the batch would cost a small run more than it saves.
const BESIDE_MIN: usize = 256;

/// Most ids the filter holds (about 1.2 bytes each); a larger table is
/// probed for every id instead.
pub const MAX_FILTERED_IDS: u64 = 16 << 20;

/// Every event id in the table, as a Bloom filter (see the module docs).
#[derive(Debug, Default)]
pub struct TableIds {
    ids: Ids,
    /// The last batch (by id) whose rows the filter holds; `None` before
    /// it is read, or when the table is too large for it.
    through: Option<i64>,
    /// Where the ids are read beside the batch, on a connection of their
    /// own (see [`TableIds::beside`]); without it they are read inline.
    side: Option<Connector>,
    /// A read under way beside the batch, and the batch it is for.
    reading: Option<SideRead>,
    /// Every id of the runs the open batch has seen so far (loaded or
    /// not): those are asked on the batch's own connection, the only one
    /// that sees what the batch loaded. Joins `ids` when the batch commits.
    batch: Ids,
    /// The connection the other "maybe" ids are asked on (see [`Asker`]),
    /// opened on first use with `side`.
    beside: Option<tokio_postgres::Client>,
}

/// A read of the table's ids on a connection of its own, started while the
/// batch held the writer lock (so no other loader commits until it is
/// merged: at the latest when the batch commits).
#[derive(Debug)]
struct SideRead {
    task: tokio::task::JoinHandle<Result<Option<Ids>, String>>,
    /// The last batch the table held when the read started.
    through: i64,
}

impl Drop for SideRead {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TableIds {
    /// Whether the filter must be read (again) before it is used: it never
    /// was, or another loader committed a batch since (call under the
    /// writer lock; no round trip when it was never read).
    pub async fn stale(&self, tx: &Transaction<'_>) -> Result<bool, tokio_postgres::Error> {
        let Some(through) = self.through else {
            return Ok(true);
        };
        let row = tx
            .query_typed_one(
                "SELECT EXISTS (SELECT 1 FROM data_quality_metrics WHERE batch_id > $1)",
                &[(&through, Type::INT8)],
            )
            .await?;
        let stale = row.get::<_, bool>(0);
        if stale {
            tracing::info!("another loader wrote to ecommerce_events: reading its ids again");
        }
        Ok(stale)
    }

    /// Ids read beside the batches, on connections `side` opens: a batch
    /// that finds the filter stale goes on at once (every id of its runs
    /// probed) while the table's ids are read, and uses the filter from
    /// the run after it arrives.
    pub fn beside(side: Connector) -> TableIds {
        TableIds {
            side: Some(side),
            ..TableIds::default()
        }
    }

    /// Starts reading every id of the table (the caller holds the writer
    /// lock, so the read sees the table as the batch does, less the rows
    /// the batch itself loads, which the filter gets as they are loaded):
    /// beside the batch when there is a connection for it, else inline.
    pub async fn read(&mut self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        self.ids = Ids::default();
        self.through = None;
        self.reading = None;
        self.batch = Ids::default();
        let Some(through) = self.through_if_filtered(tx).await? else {
            return Ok(());
        };
        let Some(side) = self.side.clone() else {
            if let Some(ids) = read_ids(tx).await? {
                self.ids = ids;
                self.through = Some(through);
            }
            return Ok(());
        };
        let task = tokio::spawn(async move {
            if let Some(pause) = debug_slow_read() {
                tokio::time::sleep(pause).await;
            }
            let mut client = side.connect().await.map_err(|e| e.to_string())?;
            let tx = client
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(|e| crate::db::connect::error_chain(&e))?;
            let chain = |e: tokio_postgres::Error| crate::db::connect::error_chain(&e);
            let ids = read_ids(&tx).await.map_err(chain)?;
            // Ended as it went (read only): a commit, not a rollback.
            tx.commit().await.map_err(chain)?;
            Ok(ids)
        });
        self.reading = Some(SideRead { task, through });
        Ok(())
    }

    /// Takes in the read beside the batch once it is done (`wait`: wait
    /// for it). Its ids join those the batch loaded meanwhile. A read that
    /// failed leaves the filter unread (every id probed; read again at the
    /// next batch).
    pub async fn merge(&mut self, wait: bool) {
        let done = self.reading.as_ref().is_some_and(|r| r.task.is_finished());
        if !(done || wait && self.reading.is_some()) {
            return;
        }
        let Some(mut read) = self.reading.take() else {
            return;
        };
        match (&mut read.task).await {
            Ok(Ok(Some(mut ids))) => {
                ids.absorb(std::mem::take(&mut self.ids));
                self.ids = ids;
                self.through = Some(read.through);
            }
            Ok(Ok(None)) => self.ids = Ids::default(),
            Ok(Err(e)) => {
                tracing::warn!("could not read the table's ids ({e}): every id is probed");
                self.ids = Ids::default();
            }
            Err(e) => {
                tracing::warn!("reading the table's ids stopped ({e}): every id is probed");
                self.ids = Ids::default();
            }
        }
    }

    /// The last batch the table holds, or `None` when it is too large for
    /// the filter.
    async fn through_if_filtered(
        &self,
        tx: &Transaction<'_>,
    ) -> Result<Option<i64>, tokio_postgres::Error> {
        let row = tx
            .query_one(
                "SELECT coalesce((SELECT max(batch_id) FROM data_quality_metrics), 0),
                        (SELECT coalesce(sum(greatest(reltuples, 0)), 0)::int8 FROM pg_class
                         WHERE oid = 'ecommerce_events'::regclass
                            OR oid IN (SELECT inhrelid FROM pg_inherits
                                       WHERE inhparent = 'ecommerce_events'::regclass))",
                &[],
            )
            .await?;
        let (through, estimate): (i64, i64) = (row.get(0), row.get(1));
        if estimate > MAX_FILTERED_IDS as i64 {
            tracing::info!(
                rows = estimate,
                "ecommerce_events is too large for the id filter: every id is probed"
            );
            return Ok(None);
        }
        Ok(Some(through))
    }

    /// A batch begins: the ids of a batch that did not commit are not in
    /// the table, and are forgotten.
    pub fn begin_batch(&mut self) {
        self.batch = Ids::default();
    }

    /// The batch `batch_id` committed: the filter now holds the table as
    /// of that batch, its ids included.
    pub fn committed(&mut self, batch_id: i64) {
        self.ids.absorb(std::mem::take(&mut self.batch));
        if self.through.is_some() {
            self.through = Some(batch_id);
        }
    }

    /// Asks the connection beside the batch which of `ids` the table holds
    /// (opening it on first use); an error drops the connection.
    async fn ask_beside(&mut self, ids: &[Uuid]) -> Result<HashSet<Uuid>, String> {
        let Some(side) = &self.side else {
            return Err("no connection beside the batch".into());
        };
        let chain = |e: tokio_postgres::Error| crate::db::connect::error_chain(&e);
        if self.beside.is_none() {
            let c = side.connect().await.map_err(|e| e.to_string())?;
            c.batch_execute(BESIDE_SETTINGS).await.map_err(chain)?;
            self.beside = Some(c);
        }
        let Some(c) = &self.beside else {
            return Err("no connection beside the batch".into());
        };
        match c.query_typed(PROBE, &[(&ids, Type::UUID_ARRAY)]).await {
            Ok(rows) => Ok(rows.iter().map(|row| row.get::<_, Uuid>(0)).collect()),
            Err(e) => {
                self.beside = None;
                Err(chain(e))
            }
        }
    }

    fn certainly_new(&self, id: &[u8; 16]) -> bool {
        self.through.is_some() && !self.ids.may_hold(id)
    }
}

/// Fault injection for the tests: a read beside the batch waits this long
/// (milliseconds) before it starts, so that the batch's runs are decided
/// while it is under way. Not an option.
pub const SLOW_ID_READ_ENV: &str = "SHOPSTREAM_DEBUG_SLOW_ID_READ_MS";

fn debug_slow_read() -> Option<std::time::Duration> {
    std::env::var(SLOW_ID_READ_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
}

/// Every id of the table, in `tx`'s snapshot; `None` when there are more
/// than [`MAX_FILTERED_IDS`].
async fn read_ids(tx: &Transaction<'_>) -> Result<Option<Ids>, tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let stream = tx
        .copy_out("COPY (SELECT event_id FROM ecommerce_events) TO STDOUT (FORMAT binary)")
        .await?;
    let mut stream = std::pin::pin!(stream);
    let mut pending = BytesMut::new();
    let (mut ids, mut count) = (Ids::default(), 0u64);
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk?);
        count += take_ids(&mut ids, &mut pending);
        if count > MAX_FILTERED_IDS {
            return Ok(None);
        }
    }
    tracing::debug!(
        ids = count,
        ms = started.elapsed().as_millis() as u64,
        "read the table's ids into the filter"
    );
    Ok(Some(ids))
}

/// Adds the ids of whole rows in `buf` (binary COPY of one uuid column) to
/// `ids` and leaves a partial row there. Returns the ids added.
fn take_ids(ids: &mut Ids, buf: &mut BytesMut) -> u64 {
    let mut added = 0;
    // The header (signature, flags, extension length) is 19 bytes.
    if buf.starts_with(b"PGCOPY\n\xff\r\n\0") {
        if buf.len() < 19 {
            return 0;
        }
        buf.advance(19);
    }
    // A row: field count (2), length (4), 16 bytes; the trailer is -1.
    while buf.len() >= 22 || buf.starts_with(&[0xff, 0xff]) {
        if buf.starts_with(&[0xff, 0xff]) {
            buf.clear();
            break;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&buf[6..22]);
        ids.insert(&id);
        buf.advance(22);
        added += 1;
    }
    added
}

/// What the table holds of a run's ids, as far as the [`Asker`] found
/// out before the run reached the batch, and what is left to ask.
#[derive(Debug, Default)]
pub struct Answers {
    /// Ids of the run the table holds (asked beside the batch).
    known: HashSet<Uuid>,
    /// Ids to ask on the batch's own connection ([`probe_run`]).
    ask: Vec<Uuid>,
    /// Ids asked beside the batch.
    beside: usize,
    ms: u64,
}

/// Sorts each run's ids before the run reaches the batch, while the batch
/// is still loading the run before it (see the module docs):
/// * **certainly new**: the filter of the table's ids has never seen it,
///   nor has this batch;
/// * **seen by this batch** (its filter may hold it): asked on the
///   batch's own connection, the only one that sees what the batch loaded;
/// * **maybe in the table**, not seen by this batch: asked beside the
///   batch, on a connection of its own, which sees everything committed.
///   Nothing can be committed meanwhile: the batch holds the writer lock.
///   A small number of them, or an answer that fails, goes with the
///   batch's own.
///
/// It holds the filter for the length of a batch's reading.
pub struct Asker<'t> {
    table: &'t mut TableIds,
}

impl<'t> Asker<'t> {
    pub fn new(table: &'t mut TableIds) -> Asker<'t> {
        Asker { table }
    }

    /// Answers for a run no asker sorted: every id asked on the batch's
    /// connection.
    pub fn nothing_known(run: &SortedRows) -> Answers {
        let mut ask: Vec<Uuid> = vec![];
        for r in run.rows() {
            let id = Uuid::from_bytes(r.id);
            if ask.last() != Some(&id) {
                ask.push(id);
            }
        }
        Answers {
            ask,
            ..Answers::default()
        }
    }

    /// Sorts the ids of `run`, asks those it can beside the batch, and
    /// notes them all as seen by the batch.
    pub async fn answer(&mut self, run: &SortedRows) -> Answers {
        let started = std::time::Instant::now();
        let table = &mut *self.table;
        table.merge(false).await;
        let (mut ask, mut beside) = (vec![], vec![]);
        let mut last: Option<&[u8; 16]> = None;
        for r in run.rows() {
            if last != Some(&r.id) {
                if table.batch.may_hold(&r.id) {
                    ask.push(Uuid::from_bytes(r.id));
                } else if !table.certainly_new(&r.id) {
                    beside.push(Uuid::from_bytes(r.id));
                }
                table.batch.insert(&r.id);
            }
            last = Some(&r.id);
        }
        let mut answers = Answers::default();
        if beside.len() >= BESIDE_MIN && table.side.is_some() {
            match table.ask_beside(&beside).await {
                Ok(known) => {
                    answers.known = known;
                    answers.beside = std::mem::take(&mut beside).len();
                }
                Err(e) => tracing::warn!(
                    "could not ask beside the batch ({e}): the batch asks for itself"
                ),
            }
        }
        ask.append(&mut beside);
        answers.ask = ask;
        answers.ms = started.elapsed().as_millis() as u64;
        tracing::debug!(ms = answers.ms, beside = answers.beside, "run asked");
        answers
    }
}

/// What the table holds of a run's ids (see [`probe_run`]).
#[derive(Debug, Default)]
pub struct Probed {
    /// Ids of the run the table already holds.
    known: HashSet<Uuid>,
    /// Ids asked of the table on the batch's connection, and beside it.
    asked: usize,
    beside: usize,
    ms: u64,
}

/// Which of a run's ids the table holds: `answers` from beside the batch,
/// and the ids left to ask looked up by the primary key on the batch's
/// connection (index-only, one round trip; pipelined with whatever else
/// the caller sends beside it). Rows of every file are asked about, also
/// of files that will not load.
pub async fn probe_run(
    tx: &Transaction<'_>,
    answers: Answers,
) -> Result<Probed, tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let Answers {
        mut known,
        ask,
        beside,
        ms,
    } = answers;
    if !ask.is_empty() {
        let (_, rows, _) = try_join3(
            tx.batch_execute(PROBE_BY_INDEX),
            tx.query_typed(PROBE, &[(&ask, Type::UUID_ARRAY)]),
            tx.batch_execute(PROBE_DONE),
        )
        .await?;
        known.extend(rows.iter().map(|row| row.get::<_, Uuid>(0)));
    }
    Ok(Probed {
        known,
        asked: ask.len(),
        beside,
        ms: ms + started.elapsed().as_millis() as u64,
    })
}

/// Loads one run: skips the rows of files in `dropped`, keeps the first
/// copy of each id, leaves out the ids the table holds (`probed`) and
/// COPYs the rest through `sink` (a COPY into the event table the caller
/// started, see [`start_copy`]). Adds the rows loaded per file to
/// `loaded`.
pub async fn copy_run(
    sink: CopyInSink<Bytes>,
    run: SortedRows,
    dropped: &HashSet<i32>,
    probed: Probed,
    loaded: &mut HashMap<i32, u64>,
) -> Result<(), tokio_postgres::Error> {
    let started = std::time::Instant::now();
    let mut fresh: Vec<&RowRef> = Vec::with_capacity(run.len());
    for r in run.rows() {
        if dropped.contains(&r.file_no) || fresh.last().is_some_and(|p| p.id == r.id) {
            continue;
        }
        if !probed.known.is_empty() && probed.known.contains(&Uuid::from_bytes(r.id)) {
            continue;
        }
        fresh.push(r);
    }
    let rows = fresh.len();
    copy_rows(sink, &run, fresh.into_iter(), loaded).await?;
    tracing::debug!(
        rows,
        probed = probed.asked,
        beside = probed.beside,
        known = probed.known.len(),
        check_ms = probed.ms,
        copy_ms = started.elapsed().as_millis() as u64,
        "run loaded"
    );
    Ok(())
}

/// Starts the COPY of a run into the event table (`copy`, see
/// [`super::stage::copy_events`]): its statement goes out on the first
/// poll, behind whatever was sent before it.
pub async fn start_copy(
    tx: &Transaction<'_>,
    copy: &Statement,
) -> Result<CopyInSink<Bytes>, tokio_postgres::Error> {
    tx.copy_in(copy).await
}

/// Sends `rows` (encoded rows of `run`) through `sink` and ends the COPY.
async fn copy_rows<'r>(
    sink: CopyInSink<Bytes>,
    run: &'r SortedRows,
    rows: impl Iterator<Item = &'r RowRef>,
    loaded: &mut HashMap<i32, u64>,
) -> Result<(), tokio_postgres::Error> {
    let mut sink = std::pin::pin!(sink);
    let mut buf = BytesMut::with_capacity(CHUNK + 4096);
    copy::header(&mut buf);
    for r in rows {
        buf.extend_from_slice(run.origin(r.file_no));
        buf.extend_from_slice(run.encoded(r));
        *loaded.entry(r.file_no).or_default() += 1;
        if buf.len() >= CHUNK {
            sink.send(buf.split().freeze()).await?;
        }
    }
    copy::trailer(&mut buf);
    sink.send(buf.split().freeze()).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// A set of ids as a Bloom filter that grows by adding filters: "no" is
/// certain, "maybe" is wrong about 1% of the time.
#[derive(Debug, Default)]
pub struct Ids {
    filters: Vec<Filter>,
}

/// Ids one filter takes before the next one is added.
const FILTER_IDS: usize = 1 << 20;
/// Bits per id (with [`HASHES`]: about 1% false "maybe").
const BITS_PER_ID: usize = 10;
const HASHES: u64 = 7;

#[derive(Debug)]
struct Filter {
    bits: Vec<u64>,
    ids: usize,
}

impl Filter {
    fn new() -> Filter {
        Filter {
            bits: vec![0; FILTER_IDS * BITS_PER_ID / 64],
            ids: 0,
        }
    }

    /// The bit positions of an id (double hashing over two mixed halves).
    fn positions(&self, id: &[u8; 16]) -> impl Iterator<Item = usize> {
        let half = |b: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            mix(u64::from_le_bytes(a))
        };
        let (h1, h2) = (half(&id[..8]), half(&id[8..]) | 1);
        let len = (self.bits.len() * 64) as u64;
        (0..HASHES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % len) as usize)
    }

    fn may_hold(&self, id: &[u8; 16]) -> bool {
        self.positions(id).all(|p| {
            self.bits
                .get(p / 64)
                .is_some_and(|w| w & (1 << (p % 64)) != 0)
        })
    }

    fn insert(&mut self, id: &[u8; 16]) {
        let positions: Vec<usize> = self.positions(id).collect();
        for p in positions {
            if let Some(w) = self.bits.get_mut(p / 64) {
                *w |= 1 << (p % 64);
            }
        }
        self.ids += 1;
    }
}

/// A 64-bit finalizer (splitmix64's), so that ids that are not random
/// (counters, hand-made test ids) still spread over the filter.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Ids {
    /// False only if the id was never inserted.
    pub fn may_hold(&self, id: &[u8; 16]) -> bool {
        self.filters.iter().any(|f| f.may_hold(id))
    }

    /// Takes in every id of `other`: each of its filters is merged into
    /// the last one here while both fit in one (filters of one size and
    /// hashes merge bit by bit), so many small batches do not make many
    /// filters.
    pub fn absorb(&mut self, other: Ids) {
        for f in other.filters {
            match self.filters.last_mut() {
                Some(last) if last.ids + f.ids <= FILTER_IDS => {
                    for (w, o) in last.bits.iter_mut().zip(&f.bits) {
                        *w |= o;
                    }
                    last.ids += f.ids;
                }
                _ => self.filters.push(f),
            }
        }
    }

    pub fn insert(&mut self, id: &[u8; 16]) {
        if self.filters.last().is_none_or(|f| f.ids >= FILTER_IDS) {
            self.filters.push(Filter::new());
        }
        if let Some(f) = self.filters.last_mut() {
            f.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        id
    }

    #[test]
    fn the_filter_never_forgets_and_rarely_imagines() {
        let mut ids = Ids::default();
        for n in 0..200_000 {
            ids.insert(&id(n));
        }
        assert!((0..200_000).all(|n| ids.may_hold(&id(n))), "no false no");
        let imagined = (1_000_000..1_100_000)
            .filter(|&n| ids.may_hold(&id(n)))
            .count();
        assert!(imagined < 2_000, "{imagined} false maybes in 100,000");
    }

    #[test]
    fn small_batches_merge_into_one_filter_and_stay_found() {
        let mut table = TableIds::default();
        for batch in 0..300u64 {
            table.begin_batch();
            for n in 0..1_000 {
                table.batch.insert(&id(batch * 1_000 + n));
            }
            table.committed(batch as i64 + 1);
        }
        assert_eq!(table.ids.filters.len(), 1, "one filter for 300,000 ids");
        assert!(
            (0..300_000).all(|n| table.ids.may_hold(&id(n))),
            "no false no"
        );
        // Past one filter's ids, the next batch's filter is kept as it is.
        let mut big = Ids::default();
        for n in 0..FILTER_IDS as u64 {
            big.insert(&id(1_000_000 + n));
        }
        table.ids.absorb(big);
        assert_eq!(table.ids.filters.len(), 2);
        assert!(table.ids.may_hold(&id(7)) && table.ids.may_hold(&id(1_000_001)));
    }

    #[test]
    fn the_filter_grows_past_one_filter() {
        let mut ids = Ids::default();
        for n in 0..(FILTER_IDS as u64 + 10) {
            ids.insert(&id(n));
        }
        assert_eq!(ids.filters.len(), 2);
        assert!(ids.may_hold(&id(0)) && ids.may_hold(&id(FILTER_IDS as u64 + 9)));
    }
}
