//! The loader's memory of recently seen event ids, and when to trust it.
//!
//! A valid row whose event id this process has not seen recently is almost
//! surely new to the database, so [`super::batch`] COPYs it straight into
//! `ecommerce_events` (the direct path, as fast as PostgreSQL's own COPY)
//! instead of through the staging table and `INSERT … ON CONFLICT`. Rows
//! with an id seen before still go through staging, where the server
//! decides.
//!
//! This memory is a hint, never the judge: an id that another worker loaded,
//! that was loaded before this process started, or that aged out of the
//! window makes the direct COPY fail with a unique violation, and the batch
//! is loaded again through staging. [`RecentIds::should_try`] backs off
//! after such fallbacks, so a workload that keeps hitting them (several
//! workers sharing ids) mostly takes the staging path.
//!
//! Each remembered id also names the direct attempt that loaded it (its
//! [`Ticket`]). A batch that meets again an id another batch is still
//! loading will wait for that batch's row lock when it inserts its staged
//! rows; [`RecentIds::wait_for`] makes that wait explicit, on this side of
//! the database: it waits for those batches to end first, and when the
//! waits would form a cycle (two batches each holding ids the other has
//! again) it tells the batch to fall back at once instead of leaving a
//! deadlock to the server.
//!
//! Memory is fixed at start: ids are kept as 32-bit keys (with the 32-bit
//! ticket of their loader) in two generations of pre-sized tables; when the
//! newer one is full the older one is forgotten. A window of N ids costs
//! 20 to 40 bytes per id asked for (two generations, tables sized in powers
//! of two, so more than N are often remembered), however long the process
//! runs. It never talks to the database.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// Lock shards: the parser threads of concurrent batches rarely meet.
const SHARDS: usize = 16;

/// After a fallback, the direct path is skipped for this many batches,
/// doubling with each fallback in a row.
const MAX_SKIP: u32 = 64;

/// Remembers at least `window` recent event ids (see the module docs).
pub struct RecentIds {
    shards: Box<[Mutex<Shard>]>,
    backoff: Mutex<Backoff>,
    inflight: Mutex<Inflight>,
}

/// Key → the ticket of the direct attempt that first met it (0: none).
type Table = HashMap<u32, u32, BuildHasherDefault<KeyHasher>>;

struct Shard {
    current: Table,
    previous: Table,
    /// Ids the current generation takes before it becomes the previous.
    limit: usize,
}

#[derive(Default)]
struct Backoff {
    /// Batches still to load through staging.
    skip: u32,
    /// The next skip after a fallback.
    next: u32,
}

impl RecentIds {
    /// Remembers at least `window` ids (`window` > 0): each generation of
    /// each shard holds its share, so right after a generation is dropped
    /// the other still holds the window.
    pub fn new(window: usize) -> RecentIds {
        let per_shard = window.div_ceil(SHARDS).max(64);
        let shards = (0..SHARDS)
            .map(|_| {
                let current = Table::with_capacity_and_hasher(per_shard, Default::default());
                let previous = Table::with_capacity_and_hasher(per_shard, Default::default());
                // Use what the table holds without growing.
                let limit = current.capacity().min(previous.capacity());
                Mutex::new(Shard {
                    current,
                    previous,
                    limit,
                })
            })
            .collect();
        RecentIds {
            shards,
            backoff: Mutex::new(Backoff::default()),
            inflight: Mutex::new(Inflight::default()),
        }
    }

    /// Records `id` as met by the attempt holding ticket `by` (0: one that
    /// is not on the direct path). `None` when it was not remembered;
    /// else the ticket of the attempt that met it first (0: none known).
    pub fn sight(&self, id: &uuid::Uuid, by: u32) -> Option<u32> {
        let (hi, lo) = id.as_u64_pair();
        let folded = hi ^ lo;
        let shard = (folded >> 60) as usize % SHARDS;
        // 32 bits suffice: a new id that shares a key with a remembered one
        // only goes through staging (about one in 70,000 new ids with a
        // million remembered, spread over 16 shards).
        let key = (folded as u32) ^ ((folded >> 32) as u32);
        let m = self.shards.get(shard)?;
        // A poisoned shard only means a parser thread panicked mid-insert:
        // the set itself is still a valid hint.
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(owner) = s.current.get(&key).or_else(|| s.previous.get(&key)) {
            return Some(*owner);
        }
        if s.current.len() >= s.limit {
            let Shard {
                current, previous, ..
            } = &mut *s;
            std::mem::swap(current, previous);
            current.clear();
        }
        s.current.insert(key, by);
        None
    }

    /// A ticket for a direct attempt: other batches that meet its ids wait
    /// for it to end (when the ticket is dropped).
    pub fn begin(&self) -> Ticket<'_> {
        let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        f.next = f.next.wrapping_add(1).max(1);
        let id = f.next;
        let (done, _) = watch::channel(());
        f.running.insert(
            id,
            Running {
                waits_on: vec![],
                done,
            },
        );
        Ticket { recent: self, id }
    }

    /// Waits until the attempts in `owners` that are still running have
    /// ended, for at most `limit`. `Err` when that would close a cycle of
    /// attempts waiting for each other (`me` must then give up), or on
    /// the time limit.
    pub async fn wait_for(
        &self,
        me: u32,
        owners: &HashSet<u32>,
        limit: Duration,
    ) -> Result<(), WaitError> {
        let mut ends = {
            let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let deps: Vec<u32> = owners
                .iter()
                .copied()
                .filter(|o| *o != me && f.running.contains_key(o))
                .collect();
            if f.reaches(&deps, me) {
                return Err(WaitError::Cycle);
            }
            let ends: Vec<watch::Receiver<()>> = deps
                .iter()
                .filter_map(|d| f.running.get(d).map(|r| r.done.subscribe()))
                .collect();
            if let Some(r) = f.running.get_mut(&me) {
                r.waits_on = deps;
            }
            ends
        };
        let all = async {
            for end in &mut ends {
                // Err: the sender is gone, that attempt has ended.
                while end.changed().await.is_ok() {}
            }
        };
        let waited = tokio::time::timeout(limit, all).await;
        let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = f.running.get_mut(&me) {
            r.waits_on.clear();
        }
        waited.map_err(|_| WaitError::TooLong)
    }

    fn end(&self, id: u32) {
        let mut f = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        // Dropping its sender wakes every attempt waiting for it.
        f.running.remove(&id);
    }

    /// Whether the next batch should try the direct path.
    pub fn should_try(&self) -> bool {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        if b.skip == 0 {
            return true;
        }
        b.skip -= 1;
        false
    }

    /// Books how a direct attempt ended.
    pub fn attempted(&self, fell_back: bool) {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        if fell_back {
            b.skip = b.next.max(1);
            b.next = (b.skip * 2).min(MAX_SKIP);
        } else {
            b.next = 0;
        }
    }
}

/// Why [`RecentIds::wait_for`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("it would wait for a batch that waits for it")]
    Cycle,
    #[error("a batch it waits for took too long")]
    TooLong,
}

/// A running direct attempt; it ends when dropped.
pub struct Ticket<'a> {
    recent: &'a RecentIds,
    pub id: u32,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.recent.end(self.id);
    }
}

/// The running direct attempts and whom each waits for.
#[derive(Default)]
struct Inflight {
    next: u32,
    running: HashMap<u32, Running>,
}

struct Running {
    waits_on: Vec<u32>,
    /// Dropped when the attempt ends.
    done: watch::Sender<()>,
}

impl Inflight {
    /// Whether `target` is reachable from `from` along the waits.
    fn reaches(&self, from: &[u32], target: u32) -> bool {
        let mut todo: Vec<u32> = from.to_vec();
        let mut seen: HashSet<u32> = HashSet::new();
        while let Some(a) = todo.pop() {
            if a == target {
                return true;
            }
            if seen.insert(a) {
                if let Some(r) = self.running.get(&a) {
                    todo.extend(&r.waits_on);
                }
            }
        }
        false
    }
}

/// Keys are already well mixed (random or hashed ids, folded): one
/// multiply spreads them over the table's buckets and control bits.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let m = u128::from(self.0) * 0x9E37_79B9_7F4A_7C15;
        (m as u64) ^ ((m >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn random_id() -> Uuid {
        Uuid::from_u128(rand::random())
    }

    #[test]
    fn an_id_is_new_once_then_remembered() {
        let r = RecentIds::new(1000);
        let id = random_id();
        assert!(r.sight(&id, 0).is_none());
        assert!(r.sight(&id, 0).is_some());
        assert!(r.sight(&random_id(), 0).is_none());
    }

    #[test]
    fn at_least_the_window_is_remembered_and_memory_stays_fixed() {
        let r = RecentIds::new(10_000);
        let ids: Vec<Uuid> = (0..50_000).map(|_| random_id()).collect();
        let caps = |r: &RecentIds| -> usize {
            r.shards
                .iter()
                .map(|s| {
                    let s = s.lock().expect("shard");
                    s.current.capacity() + s.previous.capacity()
                })
                .sum()
        };
        let before = caps(&r);
        for id in &ids {
            assert!(r.sight(id, 0).is_none());
        }
        assert_eq!(caps(&r), before, "the tables never grow");
        // The last 10,000 are still known; the first ones are forgotten.
        assert!(ids[40_000..].iter().all(|id| r.sight(id, 0).is_some()));
        assert!(
            ids[..1000]
                .iter()
                .filter(|id| r.sight(id, 0).is_none())
                .count()
                > 900
        );
    }

    #[test]
    fn an_id_names_the_attempt_that_met_it_first() {
        let r = RecentIds::new(100);
        let t = r.begin();
        let id = random_id();
        assert_eq!(r.sight(&id, t.id), None);
        assert_eq!(r.sight(&id, 0), Some(t.id));
        let other = random_id();
        assert_eq!(r.sight(&other, 0), None);
        assert_eq!(r.sight(&other, t.id), Some(0));
    }

    #[tokio::test]
    async fn a_batch_waits_for_the_attempts_it_needs_until_they_end() {
        let r = std::sync::Arc::new(RecentIds::new(100));
        let (a, b) = (r.begin(), r.begin());
        let (a_id, b_id) = (a.id, b.id);
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move {
                let b = r.begin();
                let owners: HashSet<u32> = [a_id, b_id].into();
                r.wait_for(b.id, &owners, Duration::from_secs(30)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it waits while they run");
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "and until the last one ends");
        drop(b);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(waited, Ok(Ok(Ok(())))), "{waited:?}");
        // Ended attempts are not waited for; nor is the attempt itself.
        let c = r.begin();
        let owners: HashSet<u32> = [a_id, c.id].into();
        assert_eq!(r.wait_for(c.id, &owners, Duration::ZERO).await, Ok(()));
    }

    #[tokio::test]
    async fn waits_that_would_close_a_cycle_are_refused_at_once() {
        let r = std::sync::Arc::new(RecentIds::new(100));
        let (a, b, c) = (r.begin(), r.begin(), r.begin());
        let ids = (a.id, b.id, c.id);
        // a waits for b, b waits for c: c may not wait for a.
        let chain = |me: u32, on: u32| {
            let r = r.clone();
            tokio::spawn(async move {
                let owners: HashSet<u32> = [on].into();
                r.wait_for(me, &owners, Duration::from_secs(30)).await
            })
        };
        let a_waits = chain(ids.0, ids.1);
        let b_waits = chain(ids.1, ids.2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let owners: HashSet<u32> = [ids.0].into();
        assert_eq!(
            r.wait_for(ids.2, &owners, Duration::from_secs(30)).await,
            Err(WaitError::Cycle)
        );
        // c gives up (ends): b, then a, go on.
        drop(c);
        assert_eq!(b_waits.await.ok(), Some(Ok(())));
        drop(b);
        assert_eq!(a_waits.await.ok(), Some(Ok(())));
        drop(a);
    }

    #[tokio::test]
    async fn a_wait_has_a_time_limit() {
        let r = RecentIds::new(100);
        let (a, b) = (r.begin(), r.begin());
        let owners: HashSet<u32> = [a.id].into();
        assert_eq!(
            r.wait_for(b.id, &owners, Duration::from_millis(20)).await,
            Err(WaitError::TooLong)
        );
    }

    #[test]
    fn fallbacks_in_a_row_skip_more_batches_and_a_success_resets() {
        let r = RecentIds::new(100);
        let skipped = |r: &RecentIds| {
            let mut n = 0;
            while !r.should_try() {
                n += 1;
            }
            n
        };
        assert_eq!(skipped(&r), 0);
        r.attempted(true);
        assert_eq!(skipped(&r), 1);
        r.attempted(true);
        assert_eq!(skipped(&r), 2);
        r.attempted(true);
        assert_eq!(skipped(&r), 4);
        for _ in 0..10 {
            r.attempted(true);
            let _ = skipped(&r);
        }
        r.attempted(true);
        assert_eq!(skipped(&r), MAX_SKIP);
        r.attempted(false);
        r.attempted(true);
        assert_eq!(skipped(&r), 1);
    }
}
