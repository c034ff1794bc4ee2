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
//! Memory is fixed at start: ids are kept as 32-bit keys in two generations
//! of pre-sized tables; when the newer one is full the older one is
//! forgotten. A window of N ids costs 11 to 21 bytes per id (two
//! generations, tables sized in powers of two), however long the process
//! runs. It never talks to the database.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Lock shards: the parser threads of concurrent batches rarely meet.
const SHARDS: usize = 16;

/// After a fallback, the direct path is skipped for this many batches,
/// doubling with each fallback in a row.
const MAX_SKIP: u32 = 64;

/// Remembers at least `window` recent event ids (see the module docs).
pub struct RecentIds {
    shards: Box<[Mutex<Shard>]>,
    backoff: Mutex<Backoff>,
}

struct Shard {
    current: HashSet<u32, BuildHasherDefault<KeyHasher>>,
    previous: HashSet<u32, BuildHasherDefault<KeyHasher>>,
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
                let current = HashSet::with_capacity_and_hasher(per_shard, Default::default());
                let previous = HashSet::with_capacity_and_hasher(per_shard, Default::default());
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
        }
    }

    /// Records `id`; true when it was not among the remembered ids.
    pub fn first_sighting(&self, id: &uuid::Uuid) -> bool {
        let (hi, lo) = id.as_u64_pair();
        let folded = hi ^ lo;
        let shard = (folded >> 60) as usize % SHARDS;
        // 32 bits suffice: a new id that shares a key with a remembered one
        // only goes through staging (about one in 70,000 new ids with a
        // million remembered, spread over the shards).
        let key = (folded as u32) ^ ((folded >> 32) as u32);
        let Some(m) = self.shards.get(shard) else {
            return false;
        };
        // A poisoned shard only means a parser thread panicked mid-insert:
        // the set itself is still a valid hint.
        let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
        if s.current.contains(&key) || s.previous.contains(&key) {
            return false;
        }
        if s.current.len() >= s.limit {
            let Shard {
                current, previous, ..
            } = &mut *s;
            std::mem::swap(current, previous);
            current.clear();
        }
        s.current.insert(key);
        true
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
        assert!(r.first_sighting(&id));
        assert!(!r.first_sighting(&id));
        assert!(r.first_sighting(&random_id()));
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
            assert!(r.first_sighting(id));
        }
        assert_eq!(caps(&r), before, "the tables never grow");
        // The last 10,000 are still known; the first ones are forgotten.
        assert!(ids[40_000..].iter().all(|id| !r.first_sighting(id)));
        assert!(ids[..1000].iter().filter(|id| r.first_sighting(id)).count() > 900);
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
