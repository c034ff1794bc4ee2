//! Where input comes from: finding files in the input folder
//! ([`discover`]) or objects under a store prefix ([`store`]), reading them
//! as raw records ([`reader`] for CSV, [`jsonl`] over [`lines`] for JSON Lines, both over
//! [`decompress`], chosen by [`format`]), and what becomes of them once their fate
//! is committed ([`dispose`], [`store`]); byte sizes of the input limits
//! ([`size`]); which files are input at all ([`scope`]); reads that cannot
//! hang ([`bounded`]). [`input`] is the one face the loader sees for either kind.
//!
//! Nothing here validates values or talks to the database.

pub mod bounded;
pub mod decompress;
pub mod discover;
pub mod dispose;
pub mod format;
pub mod input;
pub mod jsonl;
pub mod layout;
pub mod lines;
pub mod reader;
pub mod scope;
pub mod size;
pub mod store;
