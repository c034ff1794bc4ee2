//! Where input comes from: finding files in the input folder
//! ([`discover`]) and reading them as raw CSV records ([`reader`]).
//!
//! Nothing here validates values or talks to the database.

pub mod discover;
pub mod layout;
pub mod reader;
