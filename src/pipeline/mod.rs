//! Wires the stages together: source → validate → sink.
//!
//! * [`breaker`]: the circuit breaker around the database.
//! * [`events`]: the loader's events built from the sink's batch reports.
//! * [`parse`]: a batch's files → encoded COPY rows, direct or staged
//!   (blocking thread).
//! * [`resume`]: where an object store listing resumes at start (from the
//!   ledger).
//! * [`run`]: the loader loop: list the input, skip what the ledger has,
//!   group files into batches, commit them, wait for more; shutdown and
//!   retry policy live here.

pub mod breaker;
pub mod events;
pub mod parse;
pub mod resume;
pub mod run;
