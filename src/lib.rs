//! shopstream: e-commerce event files in (CSV or JSON Lines, plain, gzip or
//! zstd), validated, deduplicated, exactly-once rows in PostgreSQL out.
//!
//! The modules follow the data flow (see `docs/architecture.md`):
//!
//! * [`generate`]: writes realistic fake event files (the test and demo input).
//! * [`source`]: finds files in the input folder and reads them as raw rows.
//! * [`validate`]: turns a raw row into a canonical event or a list of failures.
//! * [`batch`]: the vocabulary of a batch, shared by the reader, the sink and the observers.
//! * [`sink`]: encodes rows for binary COPY and commits one batch per transaction.
//! * [`db`]: where the database is (embedded server or URL) and its schema.
//! * [`schema`]: the registry of layouts (versions v1–v3 and the seed systems).
//! * [`pipeline`]: wires source → validate → sink and owns batching and shutdown.
//! * [`report`]: the analytics views printed as tables, JSON or CSV (read only).
//! * [`status`]: `shopstream status`, the on-call summary and its exit code (read only).
//! * [`loader_event`]: the one event type the loader emits and its observers' fan-out.
//! * [`observe`]: how the process is watched: metrics, health, alerts, dashboard.
//! * [`bench`]: `shopstream bench`, shopstream measured against PostgreSQL's COPY.
//! * [`shutdown`]: the signal every long-running stage listens to.
//! * [`help`]: the version line, `-h` summaries, completions and man pages.
//! * [`rlimit`]: the open files limit, raised to the hard limit at start.
//! * [`clidoc`]: the configuration reference, rendered from the CLI definition.

pub mod batch;
pub mod bench;
pub mod clidoc;
pub mod db;
pub mod demo;
pub mod event;
pub mod generate;
pub mod help;
pub mod loader_event;
pub mod observe;
pub mod pipeline;
pub mod report;
pub mod rlimit;
pub mod schema;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod status;
pub mod validate;
