//! The loader's health as other parts of the process see it: whether the
//! database is reachable, the state of the circuit breaker, the last error,
//! the last commit and the ingest lag.
//!
//! [`Health`] is an observer of the loader's events; readers (the health
//! endpoints, the dashboard) only take snapshots. It never decides
//! anything itself and never imports the loader's own types.

use std::sync::{Arc, Mutex};

use crate::loader_event::{BreakerState, LoaderEvent, Observer};

/// A snapshot of the loader's health.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthState {
    /// The loader connected, migrated and can take files: its last round
    /// trip to the database succeeded with the circuit closed. False from
    /// the first failed round trip on (`/readyz` also shows it false while
    /// the circuit is not closed, so the body agrees with the status).
    pub ready: bool,
    pub breaker: BreakerState,
    /// Consecutive failed attempts.
    pub consecutive_failures: u32,
    /// The last failure, while it is not followed by a success.
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch of the last committed batch.
    pub last_commit_unix: Option<u64>,
    /// Files waiting to be loaded at the last listing.
    pub waiting_files: u64,
    /// Age in seconds of the oldest waiting file (0 when none waits).
    pub oldest_waiting_secs: f64,
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState {
            ready: false,
            breaker: BreakerState::Closed,
            consecutive_failures: 0,
            last_error: None,
            last_commit_unix: None,
            waiting_files: 0,
            oldest_waiting_secs: 0.0,
        }
    }
}

impl HealthState {
    /// Follows one loader event.
    fn follow(&mut self, event: &LoaderEvent) {
        match event {
            LoaderEvent::ListingFailed { message } => self.last_error = Some(message.clone()),
            LoaderEvent::Lag {
                waiting_files,
                oldest_waiting_secs,
            } => {
                self.waiting_files = *waiting_files;
                self.oldest_waiting_secs = *oldest_waiting_secs;
            }
            LoaderEvent::Batch(b) if b.batch_id.is_some() => {
                self.last_commit_unix = Some((b.committed_micros.max(0) / 1_000_000) as u64);
                // A commit is a round trip that succeeded: ready at once,
                // not only when the whole pass (a backlog of many batches)
                // ends.
                if self.breaker == BreakerState::Closed {
                    self.ready = true;
                    self.consecutive_failures = 0;
                    self.last_error = None;
                }
            }
            LoaderEvent::Breaker {
                state,
                failures,
                failure,
            } => {
                self.breaker = *state;
                match (state, failure) {
                    // Not ready from the first failed round trip on.
                    (_, Some(f)) => {
                        self.ready = false;
                        self.consecutive_failures = *failures;
                        self.last_error = Some(f.message.clone());
                    }
                    (BreakerState::Closed, None) => {
                        self.ready = true;
                        self.consecutive_failures = 0;
                        self.last_error = None;
                    }
                    // A probe about to be sent: the failures stand.
                    (BreakerState::Open | BreakerState::HalfOpen, None) => self.ready = false,
                }
            }
            _ => {}
        }
    }
}

/// A cloneable handle on the loader's health.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<HealthState>>,
}

impl Health {
    pub fn snapshot(&self) -> HealthState {
        match self.inner.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut HealthState)) {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl Observer for Health {
    fn on(&mut self, event: &LoaderEvent) {
        self.update(|h| h.follow(event));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::retry::Class;
    use crate::loader_event::{BatchDone, Failure};

    fn breaker(state: BreakerState, failures: u32, error: Option<&str>) -> LoaderEvent {
        LoaderEvent::Breaker {
            state,
            failures,
            failure: error.map(|m| Failure {
                class: Class::Transient,
                message: m.into(),
            }),
        }
    }

    #[test]
    fn health_follows_failures_probes_and_recovery() {
        let health = Health::default();
        let mut reader = health.clone();
        let mut see = |e: LoaderEvent| {
            reader.on(&e);
            health.snapshot()
        };
        let h = see(breaker(BreakerState::Closed, 0, None));
        assert!(h.ready && h.last_error.is_none());

        let h = see(breaker(BreakerState::Closed, 1, Some("refused")));
        assert!(!h.ready, "not ready from the first failure on");
        assert_eq!(
            (h.breaker, h.consecutive_failures, h.last_error.as_deref()),
            (BreakerState::Closed, 1, Some("refused"))
        );
        see(breaker(BreakerState::Open, 5, Some("refused again")));
        // A probe about to be sent changes the state only.
        let h = see(breaker(BreakerState::HalfOpen, 0, None));
        assert_eq!(
            (
                h.ready,
                h.breaker,
                h.consecutive_failures,
                h.last_error.as_deref()
            ),
            (false, BreakerState::HalfOpen, 5, Some("refused again"))
        );
        let h = see(breaker(BreakerState::Closed, 0, None));
        assert_eq!(
            (h.ready, h.breaker, h.consecutive_failures, h.last_error),
            (true, BreakerState::Closed, 0, None)
        );

        // A failed listing is no database failure: readiness stays.
        let h = see(LoaderEvent::ListingFailed {
            message: "EMFILE".into(),
        });
        assert_eq!((h.ready, h.last_error.as_deref()), (true, Some("EMFILE")));
    }

    #[test]
    fn health_records_the_lag_and_the_last_commit() {
        let mut health = Health::default();
        health.on(&LoaderEvent::Lag {
            waiting_files: 3,
            oldest_waiting_secs: 12.5,
        });
        let nothing = BatchDone {
            batch_id: None,
            committed_micros: 9_000_000,
            ..BatchDone::default()
        };
        health.on(&LoaderEvent::Batch(nothing.clone()));
        let h = health.snapshot();
        assert_eq!((h.waiting_files, h.oldest_waiting_secs), (3, 12.5));
        assert_eq!(h.last_commit_unix, None, "nothing was committed");
        health.on(&LoaderEvent::Batch(BatchDone {
            batch_id: Some(4),
            ..nothing
        }));
        assert_eq!(health.snapshot().last_commit_unix, Some(9));
    }

    #[test]
    fn a_commit_makes_the_loader_ready_before_its_pass_ends() {
        let mut health = Health::default();
        let committed = LoaderEvent::Batch(BatchDone {
            batch_id: Some(1),
            ..BatchDone::default()
        });
        health.on(&committed);
        assert!(health.snapshot().ready, "the first commit of a backlog");
        health.on(&breaker(BreakerState::Closed, 1, Some("reset")));
        assert!(!health.snapshot().ready);
        health.on(&committed);
        let h = health.snapshot();
        assert_eq!(
            (h.ready, h.consecutive_failures, h.last_error),
            (true, 0, None)
        );
        // While the circuit is open nothing commits; if a report still
        // arrives, it does not override the breaker.
        health.on(&breaker(BreakerState::Open, 3, Some("down")));
        health.on(&committed);
        assert!(!health.snapshot().ready);
    }
}
