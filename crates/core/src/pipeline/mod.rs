//! Wires the stages together: source → validate → sink.
//!
//! * [`breaker`]: the circuit breaker around the database.
//! * [`events`]: the loader's events built from the sink's batch reports.
//! * [`batch`]: drives one batch through its phases (claim, plan, read and
//!   validate, copy, settle).
//! * [`read`]: a batch's files → encoded COPY rows, in sorted runs or
//!   staged (blocking thread).
//! * [`resume`]: where an object store listing resumes at start (from the
//!   ledger).
//! * [`options`]: `shopstream run`'s options, their checks, its errors.
//! * [`run`]: the supervisor: passes one after the other, waiting for more
//!   input; the retry policy, the breaker's probes and shutdown.
//! * [`loader`]: one pass: list the input, skip what the ledger has, cut
//!   batches, load them one after the other, settle each after its commit.
//! * [`summary`]: a run's totals and each batch's log line.
//! * [`suspects`]: files of failed batches, loaded alone so that one file
//!   cannot hold back the others.

pub mod batch;
pub mod breaker;
pub mod events;
pub mod loader;
pub mod options;
pub mod read;
pub mod resume;
pub mod run;
pub mod summary;
pub mod suspects;
