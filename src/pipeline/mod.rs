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
//! * [`run`]: the loader loop: list the input, skip what the ledger has,
//!   group files into batches, load them, wait for more; shutdown and
//!   retry policy live here.

pub mod batch;
pub mod breaker;
pub mod events;
pub mod read;
pub mod resume;
pub mod run;
