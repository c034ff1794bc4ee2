//! Where input comes from: finding files in the input folder
//! ([`discover`]), reading them as raw CSV records ([`reader`]), and what
//! becomes of them once their fate is committed ([`dispose`]); byte sizes
//! of the input limits ([`size`]).
//!
//! Nothing here validates values or talks to the database.

pub mod discover;
pub mod dispose;
pub mod layout;
pub mod reader;
pub mod size;
