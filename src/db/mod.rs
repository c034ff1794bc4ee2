//! Where the database is and what shape it has.
//!
//! * [`connect`]: resolves `--database-url` / `DATABASE_URL` / the seeds'
//!   `POSTGRES_*` variables, or falls back to the [`embedded`] private server.
//! * [`conninfo`]: connection strings (URL or key=value) read as libpq reads
//!   them.
//! * [`embedded`]: starts, reuses and stops a private PostgreSQL server from
//!   the binaries installed on the machine.
//! * [`migrate`]: the versioned, forward-only schema.
//! * [`retry`]: what a database error means (SQLSTATE classes) and backoff
//!   with jitter.
//! * [`roles`]: the least-privilege ingest role `run` can work under.
//! * [`tls`]: TLS to the server with libpq's `sslmode` meanings (rustls).
//!
//! Nothing here reads input files or knows about events beyond the schema.

pub mod connect;
pub mod conninfo;
pub mod embedded;
pub mod migrate;
pub mod retry;
pub mod roles;
pub mod tls;
