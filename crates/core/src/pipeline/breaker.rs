//! The circuit breaker around the database.
//!
//! After `failures_to_open` consecutive failed attempts the circuit *opens*:
//! the loader stops taking files (they stay where they are, nothing is
//! marked done) and waits. Then it is *half open*: the loader probes the
//! database with a trivial query; `successes_to_close` probes in a row close
//! it again and intake resumes, one failed probe opens it again. The waits
//! before probes back off: `first_probe_after` (about a second), then
//! `probe_factor` times longer each time (±20% jitter), never longer than
//! `open_for`; they start over once the circuit has closed. So a database
//! that restarts costs seconds, and a long outage costs one probe per
//! `open_for`.
//!
//! This module is pure bookkeeping over the instants (and the random
//! numbers, for the jitter) it is given: it never sleeps, connects or logs.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::db::retry::Backoff;
/// The state of the circuit (shared with the observers).
pub use crate::loader_event::BreakerState;

/// When the circuit opens and closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub failures_to_open: u32,
    /// The longest wait between probes.
    pub open_for: Duration,
    pub successes_to_close: u32,
    /// The wait before the first probe (at most `open_for`).
    pub first_probe_after: Duration,
    /// Growth of the wait from one failed probe to the next.
    pub probe_factor: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_to_open: 5,
            open_for: Duration::from_secs(30),
            successes_to_close: 3,
            first_probe_after: Duration::from_secs(1),
            probe_factor: 2.0,
        }
    }
}

/// What the loader may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take files as usual.
    Work,
    /// Send one probe.
    Probe,
    /// Nothing until then.
    WaitUntil(Instant),
}

/// The breaker's bookkeeping.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    failures: u32,
    successes: u32,
    /// Times the circuit opened since it was last closed.
    opened: u32,
    open_until: Instant,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
            opened: 0,
            open_until: Instant::now(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn config(&self) -> BreakerConfig {
        self.cfg
    }

    /// Consecutive failed attempts (reset by a success).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next probe is due, while the circuit is open.
    pub fn next_probe(&self) -> Option<Instant> {
        (self.state == BreakerState::Open).then_some(self.open_until)
    }

    /// The waits between probes.
    fn probe_backoff(&self) -> Backoff {
        Backoff {
            initial: self.cfg.first_probe_after.min(self.cfg.open_for),
            factor: self.cfg.probe_factor.max(1.0),
            max: self.cfg.open_for,
        }
    }

    /// What may run at `now`; an open circuit whose time is up turns half
    /// open.
    pub fn step(&mut self, now: Instant) -> Step {
        match self.state {
            BreakerState::Closed => Step::Work,
            BreakerState::HalfOpen => Step::Probe,
            BreakerState::Open if now >= self.open_until => {
                self.state = BreakerState::HalfOpen;
                self.successes = 0;
                Step::Probe
            }
            BreakerState::Open => Step::WaitUntil(self.open_until),
        }
    }

    /// Records a successful attempt or probe; returns the new state when
    /// it changed.
    pub fn success(&mut self) -> Option<BreakerState> {
        self.failures = 0;
        if self.state != BreakerState::HalfOpen {
            return None;
        }
        self.successes += 1;
        if self.successes < self.cfg.successes_to_close {
            return None;
        }
        self.state = BreakerState::Closed;
        self.opened = 0;
        Some(BreakerState::Closed)
    }

    /// Records a failed attempt or probe at `now`; returns the new state
    /// when it changed (or the circuit opened again). `rng` spreads the
    /// wait before the next probe.
    pub fn failure<R: Rng + ?Sized>(&mut self, now: Instant, rng: &mut R) -> Option<BreakerState> {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::Closed => self.failures >= self.cfg.failures_to_open,
            BreakerState::HalfOpen | BreakerState::Open => true,
        };
        if !open {
            return None;
        }
        self.state = BreakerState::Open;
        self.successes = 0;
        self.opened = self.opened.saturating_add(1);
        self.open_until = now + self.probe_backoff().delay(self.opened, rng);
        Some(BreakerState::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures_to_open: 3,
            open_for: Duration::from_secs(30),
            successes_to_close: 2,
            first_probe_after: Duration::from_secs(1),
            probe_factor: 2.0,
        }
    }

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(7)
    }

    /// The wait from `at` to the next probe, in seconds.
    fn wait(b: &Breaker, at: Instant) -> f64 {
        b.next_probe()
            .map_or(0.0, |p| p.duration_since(at).as_secs_f64())
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (t, r) = (Instant::now(), &mut rng());
        let mut b = Breaker::new(cfg());
        assert_eq!(b.failure(t, r), None);
        assert_eq!(b.failure(t, r), None);
        assert_eq!(b.success(), None, "a success resets the count");
        assert_eq!(b.failure(t, r), None);
        assert_eq!(b.failure(t, r), None);
        assert_eq!(b.step(t), Step::Work);
        assert_eq!(b.next_probe(), None);
        assert_eq!(b.failure(t, r), Some(BreakerState::Open));
        assert_eq!(b.state(), BreakerState::Open);
        let first = wait(&b, t);
        assert!((0.8..=1.2).contains(&first), "first probe after {first}s");
        let probe = t + Duration::from_secs_f64(first);
        assert_eq!(
            b.step(t + Duration::from_millis(500)),
            Step::WaitUntil(probe)
        );
        assert_eq!(b.step(probe), Step::Probe);
    }

    #[test]
    fn probes_after_the_wait_and_closes_after_enough_successes() {
        let (t, r) = (Instant::now(), &mut rng());
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t, r);
        }
        let later = t + Duration::from_secs(2);
        assert_eq!(b.step(later), Step::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.success(), None);
        assert_eq!(b.step(later), Step::Probe, "still half open");
        assert_eq!(b.success(), Some(BreakerState::Closed));
        assert_eq!(b.step(later), Step::Work);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn failed_probes_back_off_from_a_second_up_to_the_open_time() {
        let (mut t, r) = (Instant::now(), &mut rng());
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t, r);
        }
        let mut waits = vec![wait(&b, t)];
        for _ in 0..7 {
            t += Duration::from_secs(60);
            assert_eq!(b.step(t), Step::Probe);
            assert_eq!(b.success(), None);
            assert_eq!(b.failure(t, r), Some(BreakerState::Open));
            waits.push(wait(&b, t));
        }
        for (w, base) in waits
            .iter()
            .zip([1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])
        {
            assert!(
                (base * 0.8..=(base * 1.2f64).min(30.0)).contains(w),
                "{waits:?}"
            );
        }
        // The successes before a failure do not count any more.
        t += Duration::from_secs(60);
        assert_eq!(b.step(t), Step::Probe);
        assert_eq!(b.success(), None);
        assert_eq!(b.success(), Some(BreakerState::Closed));
        // Closed: the next outage starts again near a second.
        for _ in 0..3 {
            b.failure(t, r);
        }
        let again = wait(&b, t);
        assert!((0.8..=1.2).contains(&again), "{again}");
    }

    #[test]
    fn the_first_probe_never_waits_longer_than_the_open_time() {
        let (t, r) = (Instant::now(), &mut rng());
        let mut b = Breaker::new(BreakerConfig {
            open_for: Duration::from_millis(300),
            ..cfg()
        });
        for _ in 0..3 {
            b.failure(t, r);
        }
        let w = wait(&b, t);
        assert!((0.24..=0.3).contains(&w), "{w}");
    }
}
