//! The circuit breaker around the database.
//!
//! After `failures_to_open` consecutive failed attempts the circuit *opens*:
//! the loader stops taking files (they stay where they are, nothing is
//! marked done) and waits `open_for`. Then it is *half open*: the loader
//! probes the database with a trivial query; `successes_to_close` probes in
//! a row close it again and intake resumes, one failed probe opens it for
//! another `open_for`.
//!
//! This module is pure bookkeeping over the instants it is given: it never
//! sleeps, connects or logs.

use std::time::{Duration, Instant};

/// When the circuit opens and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failures_to_open: u32,
    pub open_for: Duration,
    pub successes_to_close: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_to_open: 5,
            open_for: Duration::from_secs(30),
            successes_to_close: 3,
        }
    }
}

/// The state of the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Normal work.
    Closed,
    /// Intake paused until the next probe.
    Open,
    /// Probing whether the database is back.
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
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
    open_until: Instant,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Breaker {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
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
        Some(BreakerState::Closed)
    }

    /// Records a failed attempt or probe at `now`; returns the new state
    /// when it changed (or the circuit opened again).
    pub fn failure(&mut self, now: Instant) -> Option<BreakerState> {
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
        self.open_until = now + self.cfg.open_for;
        Some(BreakerState::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures_to_open: 3,
            open_for: Duration::from_secs(30),
            successes_to_close: 2,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        assert_eq!(b.failure(t), None);
        assert_eq!(b.failure(t), None);
        assert_eq!(b.success(), None, "a success resets the count");
        assert_eq!(b.failure(t), None);
        assert_eq!(b.failure(t), None);
        assert_eq!(b.step(t), Step::Work);
        assert_eq!(b.failure(t), Some(BreakerState::Open));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.step(t + Duration::from_secs(29)),
            Step::WaitUntil(t + Duration::from_secs(30))
        );
    }

    #[test]
    fn probes_after_the_open_time_and_closes_after_enough_successes() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t);
        }
        let later = t + Duration::from_secs(30);
        assert_eq!(b.step(later), Step::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.success(), None);
        assert_eq!(b.step(later), Step::Probe, "still half open");
        assert_eq!(b.success(), Some(BreakerState::Closed));
        assert_eq!(b.step(later), Step::Work);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_the_full_time() {
        let t = Instant::now();
        let mut b = Breaker::new(cfg());
        for _ in 0..3 {
            b.failure(t);
        }
        let probe_at = t + Duration::from_secs(31);
        assert_eq!(b.step(probe_at), Step::Probe);
        assert_eq!(b.success(), None);
        assert_eq!(b.failure(probe_at), Some(BreakerState::Open));
        assert_eq!(
            b.step(probe_at + Duration::from_secs(1)),
            Step::WaitUntil(probe_at + Duration::from_secs(30))
        );
        // The successes before the failure do not count any more.
        let next = probe_at + Duration::from_secs(30);
        assert_eq!(b.step(next), Step::Probe);
        assert_eq!(b.success(), None);
        assert_eq!(b.success(), Some(BreakerState::Closed));
    }
}
