//! shopstream's core, the loader: e-commerce event files in (CSV or JSON
//! Lines, plain, gzip or zstd), validated, deduplicated, exactly-once rows
//! in PostgreSQL out.
//!
//! The tools that are not the loader live in crates of their own and use this
//! one: `shopstream-generate` (fake event files), `shopstream-bench` (the
//! loader measured against COPY), `shopstream-demo`, and
//! `shopstream-pgserver` (the private PostgreSQL server, which `db` uses). The
//! `shopstream` package at the top of the workspace is the command line.
//!
//! The modules follow the data flow (see `docs/architecture.md`):
//!
//! * [`source`]: finds files in the input folder and reads them as raw rows.
//! * [`validate`]: turns a raw row into a canonical event or a list of failures.
//! * [`batch`]: the vocabulary of a batch, shared by the reader, the sink and the observers.
//! * [`sink`]: encodes rows for binary COPY and commits one batch per transaction.
//! * [`db`]: where the database is (embedded server or URL) and its schema.
//! * [`schema`]: the registry of layouts (versions v1–v3 and the seed systems).
//! * [`pipeline`]: wires source → validate → sink and owns batching and shutdown.
//! * [`report`]: the analytics views printed as tables, JSON or CSV (read only).
//! * [`check`]: `shopstream check`, a dry run of the reader and validator on files (no database).
//! * [`status`]: `shopstream status`, the on-call summary and its exit code (read only).
//! * [`deadletters`]: `shopstream dead-letters list|replay`, rejected rows read back and replayed.
//! * [`requeue`]: `shopstream requeue`, quarantined files moved back into the input.
//! * [`retention`]: the event table's monthly partitions, `run --retention` and `shopstream prune`.
//! * [`loader_event`]: the one event type the loader emits and its observers' fan-out.
//! * [`observe`]: how the process is watched: metrics, health, alerts, dashboard.
//! * [`shutdown`]: the signal every long-running stage listens to.

pub mod batch;
pub mod check;
pub mod db;
pub mod deadletters;
pub mod event;
pub mod loader_event;
pub mod observe;
pub mod pipeline;
pub mod report;
pub mod requeue;
pub mod retention;
pub mod schema;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod status;
pub mod validate;
