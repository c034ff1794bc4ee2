//! The schema registry: every CSV layout shopstream reads, as data.
//!
//! Two kinds of layout live here. shopstream's own versions (`v1`, `v2`,
//! `v3`, each a superset of the one before) and the layouts of the five seed
//! systems teams migrate from (`seed000` … `seed004`). For each one the
//! registry holds its columns, their canonical target, type, nullability
//! and documented default, plus the date it was introduced. The reader
//! ([`crate::source::layout`]) detects a file's layout from its header row
//! with this data; `shopstream schema list|show` prints it.
//!
//! This module is pure data and formatting: it never reads files and never
//! touches the database.

mod registry;

pub use registry::{canonical, ColumnSpec, ColumnType, LayoutSpec, Target, CURRENT};

use std::fmt;

/// A layout shopstream can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum LayoutId {
    /// shopstream v1: the six core columns.
    V1,
    /// shopstream v2: v1 plus session, product name, category, quantity,
    /// segment and search query.
    V2,
    /// shopstream v3 (current): v2 plus device, browser, geo, referrer and
    /// campaign.
    V3,
    /// Seed 000 (Olivia-21): `USER_000001` ids, `YYYY-MM-DD HH:MM:SS`.
    Seed000,
    /// Seed 001 (Damas200): ISO times with `T`, prices on views.
    Seed001,
    /// Seed 002 (Elias-DE): `user_id,action,product,timestamp`, no event id.
    Seed002,
    /// Seed 003 (Zaina-M): 12 columns, `512.0` ids, `+00:00` times.
    Seed003,
    /// Seed 004 (jill-break): 7 columns, session id per event.
    Seed004,
}

impl LayoutId {
    pub const ALL: [LayoutId; 8] = [
        LayoutId::V1,
        LayoutId::V2,
        LayoutId::V3,
        LayoutId::Seed000,
        LayoutId::Seed001,
        LayoutId::Seed002,
        LayoutId::Seed003,
        LayoutId::Seed004,
    ];

    /// The name stored in `source_layout` and accepted by `--layout`.
    pub fn as_str(self) -> &'static str {
        match self {
            LayoutId::V1 => "v1",
            LayoutId::V2 => "v2",
            LayoutId::V3 => "v3",
            LayoutId::Seed000 => "seed000",
            LayoutId::Seed001 => "seed001",
            LayoutId::Seed002 => "seed002",
            LayoutId::Seed003 => "seed003",
            LayoutId::Seed004 => "seed004",
        }
    }

    /// Parses a layout name (ASCII case ignored).
    pub fn parse(s: &str) -> Option<LayoutId> {
        let s = s.trim();
        LayoutId::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }

    /// True for shopstream's own versions, false for seed layouts.
    pub fn is_version(self) -> bool {
        matches!(self, LayoutId::V1 | LayoutId::V2 | LayoutId::V3)
    }

    /// The registry entry of this layout.
    pub fn spec(self) -> &'static LayoutSpec {
        registry::spec(self)
    }
}

impl fmt::Display for LayoutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
