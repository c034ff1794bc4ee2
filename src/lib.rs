//! The `shopstream` command line and what only the binary needs: the
//! version line, help, completions and man pages ([`help`]), the
//! configuration reference rendered from the CLI ([`clidoc`]) and the open
//! files limit ([`rlimit`]).
//!
//! The loader itself is the `shopstream-core` crate (`crates/core`), and the
//! tools that are not the loader are crates of their own: `generate`,
//! `bench`, `demo` and the private PostgreSQL server (`crates/pgserver`).
//! They are re-exported here under their module names (`shopstream::sink`,
//! `shopstream::generate`, ...), so the integration tests and the binary
//! name every part the same way.

pub mod clidoc;
pub mod help;
pub mod rlimit;

pub use shopstream_bench as bench;
pub use shopstream_core::*;
pub use shopstream_demo as demo;
pub use shopstream_generate as generate;
