//! Wires the stages together: source → validate → sink.
//!
//! * [`parse`]: a batch's files → encoded staging rows (blocking thread).
//! * [`run`]: the loader loop: list the folder, skip what the ledger has,
//!   group files into batches, commit them, wait for more; shutdown and
//!   retry policy live here.
//! * [`retry`]: SQLSTATE classification and backoff with jitter.

pub mod parse;
pub mod retry;
pub mod run;
