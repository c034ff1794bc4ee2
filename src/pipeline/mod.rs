//! Wires the stages together: source → validate → sink.
//!
//! * [`breaker`]: the circuit breaker around the database.
//! * [`health`]: the loader's state as the rest of the process sees it.
//! * [`parse`]: a batch's files → encoded staging rows (blocking thread).
//! * [`resume`]: where an object store listing resumes at start (from the
//!   ledger).
//! * [`run`]: the loader loop: list the input, skip what the ledger has,
//!   group files into batches, commit them, wait for more; shutdown and
//!   retry policy live here.

pub mod breaker;
pub mod health;
pub mod parse;
pub mod resume;
pub mod run;
