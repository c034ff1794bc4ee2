//! Where the database is and what shape it has.
//!
//! * [`connect`]: resolves `--database-url` / `DATABASE_URL` / the seeds'
//!   `POSTGRES_*` variables, or falls back to the [`embedded`] private server.
//! * [`conninfo`]: connection strings (URL or key=value) read as libpq reads
//!   them.
//! * [`embedded`]: the private PostgreSQL server started from the binaries
//!   installed on the machine; its own crate, `shopstream-pgserver`
//!   (`crates/pgserver`), re-exported here.
//! * [`migrate`]: the versioned, forward-only schema.
//! * [`retry`]: what a database error means (SQLSTATE classes) and backoff
//!   with jitter.
//! * [`roles`]: the least-privilege ingest role `run` can work under.
//! * [`tls`]: TLS to the server with libpq's `sslmode` meanings (rustls).
//!
//! Nothing here reads input files or knows about events beyond the schema.

pub mod connect;
pub mod conninfo;
pub use shopstream_pgserver as embedded;
pub mod migrate;
pub mod retry;
pub mod roles;
pub mod tls;
