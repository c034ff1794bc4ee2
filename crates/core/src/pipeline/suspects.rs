//! Files whose batch failed while the database was answering: so that one
//! file cannot hold back every other.
//!
//! When a batch of several files fails for a reason about its work (the
//! server answered with an error, or a file could not be read), each of
//! its files is loaded alone in the next pass, so the failure narrows down
//! to the file it belongs to and the others commit. A file that then fails
//! alone waits for a backoff of its own (doubling up to `--retry-max-secs`)
//! while the rest of the input goes on; it is loaded as soon as it commits
//! (a trigger dropped, a server setting raised), and nothing about it is
//! decided here: it stays in the input, unledgered, until it commits.
//!
//! It owns which files go alone and when each may be tried again. It never
//! talks to the database and never decides or carries out a file's fate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::db::retry::Backoff;
use crate::source::discover::Candidate;

/// One file that was in a failed batch.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    /// Failures while loaded alone.
    failures: u32,
    /// Not tried again before.
    not_before: Instant,
}

/// The files that were in failed batches, by path.
#[derive(Debug, Default)]
pub struct Suspects {
    files: HashMap<PathBuf, Suspect>,
}

/// A pass's files split by [`Suspects::split`].
#[derive(Debug, Default)]
pub struct Split {
    /// Suspects due now, each loaded in a batch of its own after the
    /// others: the ones not tried alone yet first, then by how often they
    /// failed alone (a file that keeps failing goes last).
    pub alone: Vec<Candidate>,
    /// Everything else: batched as usual.
    pub rest: Vec<Candidate>,
    /// When the earliest suspect held back now is due.
    pub held_until: Option<Instant>,
}

impl Suspects {
    /// Books a batch that failed for a reason about its work: with several
    /// files, each goes alone next time; alone, the file waits its backoff.
    pub fn failed<R: rand::Rng + ?Sized>(
        &mut self,
        batch: &[Candidate],
        backoff: &Backoff,
        now: Instant,
        rng: &mut R,
    ) {
        if let [alone] = batch {
            let failures = self.files.get(&alone.path).map_or(0, |s| s.failures) + 1;
            let wait = backoff.delay(failures, rng);
            tracing::warn!(
                file = %alone.path.display(),
                failures,
                "the file's batch failed with the file alone: the rest of the input goes on, \
                 the file is tried again in {:.1} s",
                wait.as_secs_f64()
            );
            self.files.insert(
                alone.path.clone(),
                Suspect {
                    failures,
                    not_before: now + wait,
                },
            );
            return;
        }
        for c in batch {
            self.files.entry(c.path.clone()).or_insert(Suspect {
                failures: 0,
                not_before: now,
            });
        }
    }

    /// A file settled (committed, or found in the ledger): no suspect any
    /// more.
    pub fn settled(&mut self, c: &Candidate) {
        self.files.remove(&c.path);
    }

    /// Splits a pass's files (in listing order) into the suspects due now,
    /// the others, and when the first held-back suspect is due. A suspect
    /// no longer listed (removed from the input) is forgotten.
    pub fn split(&mut self, files: Vec<Candidate>, now: Instant) -> Split {
        let listed: std::collections::HashSet<&PathBuf> = files.iter().map(|c| &c.path).collect();
        self.files.retain(|path, _| listed.contains(path));
        let mut split = Split::default();
        let mut alone: Vec<(u32, Candidate)> = vec![];
        for c in files {
            match self.files.get(&c.path) {
                None => split.rest.push(c),
                Some(s) if s.not_before <= now => alone.push((s.failures, c)),
                Some(s) => {
                    split.held_until = Some(
                        split
                            .held_until
                            .map_or(s.not_before, |u| u.min(s.not_before)),
                    );
                }
            }
        }
        alone.sort_by_key(|(failures, _)| *failures);
        split.alone = alone.into_iter().map(|(_, c)| c).collect();
        split
    }

    /// No file is a suspect.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The wait until `until`, at least a millisecond.
pub fn until(until: Instant, now: Instant) -> Duration {
    until
        .saturating_duration_since(now)
        .max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> Candidate {
        Candidate {
            path: name.into(),
            size: 1,
            mtime_micros: 0,
            file_id: None,
        }
    }

    fn names(v: &[Candidate]) -> Vec<String> {
        v.iter().map(|c| c.path.display().to_string()).collect()
    }

    #[test]
    fn a_failed_batch_sends_its_files_alone_then_holds_back_the_one_that_fails_alone() {
        let backoff = Backoff {
            initial: Duration::from_secs(10),
            factor: 2.0,
            max: Duration::from_secs(60),
        };
        let mut rng = rand::rng();
        let now = Instant::now();
        let mut s = Suspects::default();
        s.failed(&[c("a"), c("b"), c("c")], &backoff, now, &mut rng);
        let split = s.split(vec![c("a"), c("b"), c("c"), c("d")], now);
        assert_eq!(names(&split.alone), ["a", "b", "c"]);
        assert_eq!(names(&split.rest), ["d"]);
        assert!(split.held_until.is_none());

        // b fails alone: held back about 10 s; a and c commit.
        s.failed(&[c("b")], &backoff, now, &mut rng);
        s.settled(&c("a"));
        s.settled(&c("c"));
        let split = s.split(vec![c("b"), c("d")], now);
        assert!(split.alone.is_empty());
        assert_eq!(names(&split.rest), ["d"]);
        let held = split.held_until.map(|u| u - now);
        assert!(
            held.is_some_and(|h| h >= Duration::from_secs(8) && h <= Duration::from_secs(12)),
            "{held:?}"
        );

        // Due again later; failing again doubles the wait.
        let later = now + Duration::from_secs(13);
        s.failed(&[c("e"), c("f")], &backoff, later, &mut rng);
        // The file that failed alone goes after the ones never tried alone.
        assert_eq!(
            names(&s.split(vec![c("b"), c("e"), c("f")], later).alone),
            ["e", "f", "b"]
        );
        s.settled(&c("e"));
        s.settled(&c("f"));
        s.failed(&[c("b")], &backoff, later, &mut rng);
        let held = s.split(vec![c("b")], later).held_until.map(|u| u - later);
        assert!(
            held.is_some_and(|h| h >= Duration::from_secs(16)),
            "{held:?}"
        );
        // A suspect gone from the input is forgotten.
        s.split(vec![c("d")], later);
        assert!(s.is_empty());
    }
}
