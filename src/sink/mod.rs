//! How a batch reaches PostgreSQL.
//!
//! * [`copy`]: the binary COPY encoder (bytes only).
//! * [`stage`]: the staging table and its row layout.
//! * [`recent`]: recently seen event ids, which let most rows skip staging.
//! * [`batch`]: one transaction per batch: staging, dedup, dead letters,
//!   quality metrics and the ledger, all committed together.
//! * [`ledger`]: every statement on `ingested_files` (file identity,
//!   lookups, rows, dispositions, resume point).
//! * [`precheck`]: rows the event table's own NOT NULL and CHECK
//!   constraints refuse, found with one query per constraint.
//!
//! Nothing here reads files or decides whether a row is valid.

pub mod batch;
pub mod copy;
pub mod ledger;
pub mod precheck;
pub mod recent;
pub mod stage;
