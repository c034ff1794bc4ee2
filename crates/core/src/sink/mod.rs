//! How a batch reaches PostgreSQL.
//!
//! * [`transaction`]: one transaction per batch: the writer lock, claims,
//!   each file's fate against the ledger, rows, dead letters, quality
//!   metrics and the ledger rows, all committed together.
//! * [`dedup`]: the copy route's duplicate decision: a sorted run probed
//!   against the event table, then COPYed.
//! * [`staged`]: the staged route's move (`INSERT … SELECT` of the ids
//!   the table does not hold) and the isolation of rows the server refuses.
//! * [`stage`]: the staging table and the row encoders.
//! * [`copy`]: the binary COPY encoder (bytes only).
//! * [`ledger`]: every statement on `ingested_files` (file identity,
//!   lookups, rows, dispositions, resume point).
//! * [`precheck`]: rows the event table's own NOT NULL and CHECK
//!   constraints refuse, found with one query per constraint.
//! * [`route`]: which route a table takes.
//!
//! Nothing here reads files or decides whether a row is valid.

pub mod copy;
pub mod dedup;
pub mod ledger;
pub mod precheck;
pub mod route;
pub mod stage;
pub mod staged;
pub mod transaction;
