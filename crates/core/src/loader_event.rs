//! What the loader tells the rest of the process: one event type,
//! [`LoaderEvent`], and the one fan-out that hands each event to every
//! [`Observer`] (health, metrics, alerts, progress).
//!
//! The loader (`pipeline::run`) builds the events; the observers (in
//! `observe`) subscribe to them. Events carry plain data (counts, states,
//! paths, messages), so `observe` needs nothing from `pipeline`, `sink` or
//! `source`, and the loader needs no observer's API.
//!
//! This module owns the shared vocabulary and the fan-out only. It must
//! never do I/O, read a clock, block, or import `pipeline`, `sink`,
//! `source` or `observe`.

use std::collections::BTreeMap;

use crate::db::retry::Class;

/// The state of the circuit breaker around the database.
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

/// A failed round trip to the database (a batch, a connection, a probe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub message: String,
}

/// What became of one file of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    Loaded,
    /// Same content as a file already loaded: nothing added.
    Duplicate,
    /// Unusable as a whole; it goes to the quarantine.
    Rejected {
        reason: String,
    },
    /// This very version was already in the ledger.
    AlreadyDone,
    /// It changed while being read: tried again later, nothing recorded.
    Changed,
}

/// One file of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDone {
    pub path: String,
    pub outcome: FileOutcome,
    /// When it arrived (its modification time, microseconds since the
    /// Unix epoch), when the loader listed it.
    pub arrived_micros: Option<i64>,
}

/// What one committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchDone {
    /// `None` when nothing needed committing (every file was already done
    /// or changed while read).
    pub batch_id: Option<i64>,
    pub files: Vec<FileDone>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_duplicate: u64,
    pub rows_rejected: u64,
    /// Rows rejected, by rule code (a row failing two rules counts twice).
    pub rejects_by_code: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// Input bytes this batch took off the backlog (its files and those
    /// another loader holds).
    pub bytes_done: u64,
    /// The commit time, microseconds since the Unix epoch.
    pub committed_micros: i64,
}

/// Everything the loader reports, in the order it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum LoaderEvent {
    /// The input was listed (each pass, and each look while the circuit is
    /// open), whether or not the listing succeeded.
    Listed,
    /// A listing failed: a local or storage problem, never the database's
    /// (the breaker and readiness stay as they are).
    ListingFailed { message: String },
    /// Files wait to be loaded: how many, and how long the oldest has
    /// waited (0 when none waits).
    Lag {
        waiting_files: u64,
        oldest_waiting_secs: f64,
    },
    /// Files about to be loaded by this pass (after the ledger's skip).
    Queued { files: u64, bytes: u64 },
    /// A batch committed (or found nothing to commit).
    Batch(BatchDone),
    /// The circuit breaker after a round trip to the database: `failure`
    /// is the round trip's error, `None` after a success (or, half open,
    /// for the probe about to be sent); `failures` counts failed round
    /// trips in a row.
    Breaker {
        state: BreakerState,
        failures: u32,
        failure: Option<Failure>,
    },
    /// A committed file's fate was carried out: `kept`, `archived`,
    /// `deleted`, `quarantined`, `gone` or `changed`.
    Disposed { disposition: &'static str },
    /// The loader stopped.
    Stopped,
}

/// A subscriber to the loader's events. `on` runs on the loader's task:
/// it must return at once (queue slow work, never wait on I/O).
pub trait Observer: Send {
    fn on(&mut self, event: &LoaderEvent);
}

/// The one fan-out: every event goes to every observer, in the order the
/// observers were added and the order the events were emitted.
#[derive(Default)]
pub struct Observers(Vec<Box<dyn Observer>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

impl Observers {
    pub fn new() -> Observers {
        Observers::default()
    }

    /// Subscribes `o` to every later event.
    pub fn add(&mut self, o: impl Observer + 'static) {
        self.0.push(Box::new(o));
    }

    /// Hands `event` to every observer.
    pub fn emit(&mut self, event: LoaderEvent) {
        for o in &mut self.0 {
            o.on(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Writes `(its name, the event)` to a shared log.
    struct Recorder(&'static str, Arc<Mutex<Vec<(&'static str, LoaderEvent)>>>);

    impl Observer for Recorder {
        fn on(&mut self, event: &LoaderEvent) {
            self.1.lock().unwrap().push((self.0, event.clone()));
        }
    }

    #[test]
    fn every_event_reaches_every_observer_in_order() {
        let log = Arc::new(Mutex::new(vec![]));
        let mut obs = Observers::new();
        obs.add(Recorder("health", log.clone()));
        obs.add(Recorder("alerts", log.clone()));
        obs.emit(LoaderEvent::Listed);
        obs.emit(LoaderEvent::Stopped);
        assert_eq!(
            *log.lock().unwrap(),
            [
                ("health", LoaderEvent::Listed),
                ("alerts", LoaderEvent::Listed),
                ("health", LoaderEvent::Stopped),
                ("alerts", LoaderEvent::Stopped),
            ]
        );
    }
}
