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
pub mod show;

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
    /// user_events, MD5 ids, `USER_000001` users (from seed 000, Olivia-21).
    Seed000,
    /// user_events, ISO times with `T`, prices on views (from seed 001, Damas200).
    Seed001,
    /// `user_id,action,product,timestamp`, no event id (from seed 002, Elias-DE).
    Seed002,
    /// ecommerce_events export, 12 columns, `512.0` ids (from seed 003, Zaina-M).
    Seed003,
    /// user_activity, 7 columns, session id per event (from seed 004, jill-break).
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

/// Namespace of the event ids shopstream derives for layouts without an
/// `event_id` column.
pub const DERIVED_ID_NAMESPACE: uuid::Uuid = uuid::uuid!("5d0f6a62-8f0e-4c39-9a51-73686f707374");

/// The event id of a row of a layout without `event_id` (seed 002): a
/// UUIDv5 over the layout name, the row's values (trimmed, in the order of
/// the layout's columns in the registry) and `occurrence`, the 1-based count
/// of rows with exactly these values so far in the same file. Re-sending a
/// file therefore yields the same ids (and dedups), while two identical rows
/// in one file get different ids (and both load).
pub fn derived_event_id<'a>(
    layout: LayoutId,
    values: impl IntoIterator<Item = &'a str>,
    occurrence: u32,
) -> uuid::Uuid {
    let mut name = Vec::with_capacity(96);
    name.extend_from_slice(layout.as_str().as_bytes());
    for v in values {
        name.push(0x1f);
        name.extend_from_slice(v.trim().as_bytes());
    }
    name.push(0x1e);
    name.extend_from_slice(occurrence.to_string().as_bytes());
    uuid::Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in LayoutId::ALL {
            assert_eq!(LayoutId::parse(&l.as_str().to_uppercase()), Some(l));
        }
        assert_eq!(LayoutId::parse("v4"), None);
    }

    #[test]
    fn derived_ids_depend_on_values_and_occurrence_only() {
        let id = |user: &str, time: &str, n| {
            derived_event_id(LayoutId::Seed002, [user, "view", "laptop", time], n)
        };
        let a = id("1001", "2026-01-01 10:00:00", 1);
        let b = id(" 1001 ", "2026-01-01 10:00:00", 1);
        let c = id("1001", "2026-01-01 10:00:00", 2);
        let d = id("1001", "2026-01-01 10:00:01", 1);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a.get_version_num(), 5);
    }
}
