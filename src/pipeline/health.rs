//! The loader's health as other parts of the process see it: whether the
//! database is reachable, the state of the circuit breaker, the last error
//! and the last commit.
//!
//! The loader writes it; readers (logs today, the health endpoints of the
//! HTTP server) only take snapshots. It never decides anything itself.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::breaker::BreakerState;

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

    pub(crate) fn update(&self, f: impl FnOnce(&mut HealthState)) {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Records the ingest lag (and publishes it as metrics).
    pub(crate) fn lag(&self, files: usize, oldest_secs: f64) {
        crate::observe::metrics::lag(files, oldest_secs);
        self.update(|h| {
            h.waiting_files = files as u64;
            h.oldest_waiting_secs = oldest_secs;
        });
    }

    pub(crate) fn committed(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.update(|h| h.last_commit_unix = Some(now));
    }
}
