//! A run of valid events sorted by event id: what the reader hands the
//! database in one COPY.
//!
//! The reader appends encoded rows (rows of `ecommerce_events` in binary
//! COPY layout, without the start that every row of a file shares: that
//! is held once per file, see [`RowsBuilder::start_file`]) in file and line
//! order; [`RowsBuilder::take`] sorts them by
//! event id, then reading order (so among copies of one id the earliest
//! file and line comes first), in place, and hands them over as
//! [`SortedRows`]. A run's size counts its index as well as its bytes. A primary key takes
//! rows sorted in large runs at about half the cost of rows in random order
//! (BENCHMARKS.md, "What the server pays for dedup"), which pays for the
//! duplicate check.
//!
//! It owns the bytes and their order. It never decides whether a row is a
//! duplicate and never talks to the database.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// One encoded row of a run.
#[derive(Debug, Clone, Copy)]
pub struct RowRef {
    pub id: [u8; 16],
    pub file_no: i32,
    start: u32,
    len: u32,
}

/// Rows being collected, in reading order.
#[derive(Debug, Default)]
pub struct RowsBuilder {
    arena: BytesMut,
    rows: Vec<RowRef>,
    /// The start of the rows of each file, by file number (in order).
    origins: Vec<(i32, Bytes)>,
}

/// Encoded rows sorted by event id, copies of one id in reading order.
#[derive(Debug, Default)]
pub struct SortedRows {
    arena: Bytes,
    rows: Vec<RowRef>,
    origins: Vec<(i32, Bytes)>,
    /// Its place among the runs in memory, freed (and its buffer kept for
    /// the next run) when it is dropped.
    slot: Option<Slot>,
}

/// Bounds the runs held in memory at once and recycles their buffers: a
/// run being collected or handed over holds a slot, and each slot comes
/// with a buffer, so memory stays at `slots` buffers whatever the input.
#[derive(Debug, Clone)]
pub struct RunSlots(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    state: Mutex<PoolState>,
    freed: Condvar,
    /// Bytes a new buffer is made with.
    capacity: usize,
}

#[derive(Debug)]
struct PoolState {
    free: usize,
    buffers: Vec<BytesMut>,
}

/// One taken slot of [`RunSlots`], with its buffer until the run takes it.
#[derive(Debug)]
pub struct Slot {
    pool: RunSlots,
    buffer: Option<BytesMut>,
}

impl RunSlots {
    /// `slots` runs of about `capacity` bytes each.
    pub fn new(slots: usize, capacity: usize) -> RunSlots {
        RunSlots(Arc::new(Pool {
            state: Mutex::new(PoolState {
                free: slots,
                buffers: vec![],
            }),
            freed: Condvar::new(),
            capacity,
        }))
    }

    /// Waits for a free slot; `None` as soon as `give_up` says so (checked
    /// every 50 ms while waiting).
    pub fn take(&self, give_up: impl Fn() -> bool) -> Option<Slot> {
        let mut state = self.0.state.lock().ok()?;
        while state.free == 0 {
            if give_up() {
                return None;
            }
            state = self
                .0
                .freed
                .wait_timeout(state, Duration::from_millis(50))
                .ok()?
                .0;
        }
        state.free -= 1;
        let buffer = state.buffers.pop();
        Some(Slot {
            pool: self.clone(),
            buffer,
        })
    }
}

impl Slot {
    /// The slot's buffer (recycled from an earlier run when there is one).
    pub fn buffer(&mut self) -> BytesMut {
        let capacity = self.pool.0.capacity;
        self.buffer
            .take()
            .unwrap_or_else(|| BytesMut::with_capacity(capacity))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut state) = self.pool.0.state.lock() {
            if let Some(b) = self.buffer.take() {
                state.buffers.push(b);
            }
            state.free += 1;
            self.pool.0.freed.notify_one();
        }
    }
}

impl Drop for SortedRows {
    fn drop(&mut self) {
        // The run's buffer goes back with its slot, for the next run.
        if let Some(slot) = &mut self.slot {
            if let Ok(mut b) = std::mem::take(&mut self.arena).try_into_mut() {
                b.clear();
                slot.buffer = Some(b);
            }
        }
    }
}

impl RowsBuilder {
    /// Starts collecting into `buffer` (empty; its capacity is kept).
    pub fn start(&mut self, buffer: BytesMut) {
        if self.rows.is_empty() {
            self.arena = buffer;
            self.arena.clear();
        }
    }

    /// The start every row of file `file_no` shares (its rows come next).
    pub fn start_file(&mut self, file_no: i32, origin: Bytes) {
        self.origins.push((file_no, origin));
    }

    /// Appends one row: `encode` writes it into the arena.
    pub fn push(&mut self, id: [u8; 16], file_no: i32, encode: impl FnOnce(&mut BytesMut)) {
        let start = self.arena.len();
        encode(&mut self.arena);
        self.rows.push(RowRef {
            id,
            file_no,
            start: start as u32,
            len: (self.arena.len() - start) as u32,
        });
    }

    /// Bytes held: the encoded rows and their index.
    pub fn bytes(&self) -> usize {
        self.arena.len() + self.rows.len() * std::mem::size_of::<RowRef>()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Rows held of files numbered below `file_no` (they come first).
    pub fn rows_before(&self, file_no: i32) -> usize {
        self.rows.partition_point(|r| r.file_no < file_no)
    }

    /// Takes the first `n` rows, sorted; the rest move to `next` (an empty
    /// buffer), where collecting goes on.
    pub fn take(&mut self, n: usize, mut next: BytesMut) -> SortedRows {
        let n = n.min(self.rows.len());
        let end = self
            .rows
            .get(n)
            .map_or(self.arena.len(), |r| r.start as usize);
        next.clear();
        next.extend_from_slice(self.arena.get(end..).unwrap_or_default());
        let mut arena = std::mem::replace(&mut self.arena, next);
        arena.truncate(end);
        // A whole run hands over its index; the next one starts a new one.
        let mut rows: Vec<RowRef> = if n == self.rows.len() {
            std::mem::replace(&mut self.rows, Vec::with_capacity(n))
        } else {
            self.rows.drain(..n).collect()
        };
        for r in &mut self.rows {
            r.start -= end as u32;
        }
        // By id, then reading order (offsets grow as rows are read): the
        // first copy of an id comes first. In place, no buffer of its own.
        rows.sort_unstable_by_key(|r| (r.id, r.start));
        SortedRows {
            arena: arena.freeze(),
            rows,
            origins: self.origins.clone(),
            slot: None,
        }
    }

    /// Takes every row, sorted.
    pub fn take_all(&mut self) -> SortedRows {
        self.take(self.rows.len(), BytesMut::new())
    }
}

impl SortedRows {
    /// The run with its memory slot (see [`RunSlots`]).
    pub fn holding(mut self, slot: Slot) -> SortedRows {
        self.slot = Some(slot);
        self
    }

    pub fn rows(&self) -> &[RowRef] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Replaces the start of each file's rows with `f` of it.
    pub fn map_origins(&mut self, mut f: impl FnMut(&[u8]) -> Bytes) {
        for (_, origin) in &mut self.origins {
            *origin = f(origin);
        }
    }

    /// The start of a row of file `file_no` (empty when none was given).
    pub fn origin(&self, file_no: i32) -> &[u8] {
        match self.origins.binary_search_by_key(&file_no, |(f, _)| *f) {
            Ok(i) => self.origins.get(i).map_or(&[][..], |(_, b)| &b[..]),
            Err(_) => &[],
        }
    }

    /// The encoded bytes of one row (after its file's origin).
    pub fn encoded(&self, r: &RowRef) -> &[u8] {
        let start = r.start as usize;
        self.arena
            .get(start..start + r.len as usize)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> [u8; 16] {
        let mut id = [0; 16];
        id[0] = n;
        id
    }

    #[test]
    fn rows_come_out_sorted_by_id_and_copies_keep_reading_order() {
        let mut b = RowsBuilder::default();
        for (n, file) in [(3, 1), (1, 1), (3, 2), (2, 2), (1, 3)] {
            b.push(id(n), file, |buf| buf.extend_from_slice(&[n, file as u8]));
        }
        let s = b.take_all();
        let got: Vec<(u8, i32, Vec<u8>)> = s
            .rows()
            .iter()
            .map(|r| (r.id[0], r.file_no, s.encoded(r).to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1, vec![1, 1]),
                (1, 3, vec![1, 3]),
                (2, 2, vec![2, 2]),
                (3, 1, vec![3, 1]),
                (3, 2, vec![3, 2]),
            ]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn a_runs_size_counts_its_index_as_well_as_its_bytes() {
        let mut b = RowsBuilder::default();
        for n in 0..10 {
            b.push(id(n), 1, |buf| buf.extend_from_slice(&[n; 4]));
        }
        assert_eq!(b.bytes(), 10 * 4 + 10 * std::mem::size_of::<RowRef>());
    }

    #[test]
    fn every_row_of_a_file_gets_its_files_start() {
        let mut b = RowsBuilder::default();
        b.start_file(1, Bytes::from_static(b"one:"));
        b.push(id(2), 1, |buf| buf.extend_from_slice(b"a"));
        b.start_file(2, Bytes::from_static(b"two:"));
        b.push(id(1), 2, |buf| buf.extend_from_slice(b"b"));
        let s = b.take_all();
        let rows: Vec<Vec<u8>> = s
            .rows()
            .iter()
            .map(|r| [s.origin(r.file_no), s.encoded(r)].concat())
            .collect();
        assert_eq!(rows, vec![b"two:b".to_vec(), b"one:a".to_vec()]);
        assert!(s.origin(3).is_empty());
    }

    #[test]
    fn a_slot_is_free_again_when_its_run_is_dropped() {
        let slots = RunSlots::new(1, 1024);
        let mut slot = slots.take(|| false).expect("free");
        let mut b = RowsBuilder::default();
        b.start(slot.buffer());
        b.push(id(1), 1, |buf| buf.extend_from_slice(b"row"));
        let run = b.take_all().holding(slot);
        assert!(slots.take(|| true).is_none(), "the only slot is taken");
        drop(run);
        let mut again = slots.take(|| true).expect("free again");
        let buffer = again.buffer();
        assert!(
            buffer.is_empty() && buffer.capacity() >= 1024,
            "the run's buffer came back"
        );
    }

    #[test]
    fn taking_the_rows_of_earlier_files_keeps_the_rest_intact() {
        let mut b = RowsBuilder::default();
        b.push(id(9), 1, |buf| buf.extend_from_slice(b"a"));
        b.push(id(8), 2, |buf| buf.extend_from_slice(b"bb"));
        b.push(id(7), 2, |buf| buf.extend_from_slice(b"ccc"));
        assert_eq!(b.rows_before(2), 1);
        let first = b.take(b.rows_before(2), BytesMut::new());
        assert_eq!(first.len(), 1);
        assert_eq!(first.encoded(&first.rows()[0]), b"a");
        let rest = b.take_all();
        let bytes: Vec<&[u8]> = rest.rows().iter().map(|r| rest.encoded(r)).collect();
        assert_eq!(bytes, vec![&b"ccc"[..], &b"bb"[..]]);
    }
}
