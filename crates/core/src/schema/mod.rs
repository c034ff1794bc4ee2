//! The schema registry: every CSV layout shopstream reads, as data.
//!
//! Three kinds of layout live here. shopstream's own versions (`v1`, `v2`,
//! `v3`, each a superset of the one before), the layouts of the five seed
//! systems teams migrate from (`seed000` … `seed004`), and the layouts a
//! user declares in TOML files with `--layouts` ([`declared`]). For each
//! one the registry holds its columns, their canonical target, type,
//! nullability and documented default, plus how its files are read
//! (delimiter, time formats, …). The reader ([`crate::source::layout`])
//! detects a file's layout from its header row with this data;
//! `shopstream schema list|show` prints it.
//!
//! The built-in layouts are static data ([`LayoutId`]); declared ones are
//! loaded once at start and leaked, so that every layout is a
//! `&'static` [`LayoutSpec`] ([`LayoutRef`]) and a [`Registry`] (the
//! built-in layouts plus the declared ones) is a `Copy` handle.
//!
//! Apart from [`declared`] and [`init`], which read the files they are
//! given, this module is pure data and formatting: it never touches the
//! database.

pub mod declared;
pub mod init;
mod registry;
pub mod show;

pub use registry::{
    canonical, ColumnSpec, ColumnType, Dialect, Kind, LayoutSpec, ReadSpec, Target, CURRENT,
};

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

/// Any layout a file can be read in: a built-in one or a declared one.
/// Two are equal when their names are (names are unique in a registry).
#[derive(Clone, Copy)]
pub struct LayoutRef(&'static LayoutSpec);

impl LayoutRef {
    /// A layout of `spec` (declared layouts: see [`declared`]).
    pub fn new(spec: &'static LayoutSpec) -> LayoutRef {
        LayoutRef(spec)
    }

    /// The name stored in `source_layout`.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn spec(self) -> &'static LayoutSpec {
        self.0
    }

    /// The built-in layout this is, if it is one.
    pub fn builtin(self) -> Option<LayoutId> {
        match self.0.kind {
            Kind::Declared => None,
            Kind::Version | Kind::Seed => LayoutId::parse(self.0.name),
        }
    }
}

impl From<LayoutId> for LayoutRef {
    fn from(id: LayoutId) -> LayoutRef {
        LayoutRef(id.spec())
    }
}

impl PartialEq for LayoutRef {
    fn eq(&self, other: &LayoutRef) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for LayoutRef {}

impl PartialEq<LayoutId> for LayoutRef {
    fn eq(&self, other: &LayoutId) -> bool {
        self.0.name == other.as_str()
    }
}

impl std::hash::Hash for LayoutRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl fmt::Debug for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

/// The layouts files are detected against: the built-in ones, then the
/// declared ones in the order they were loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registry {
    declared: &'static [LayoutSpec],
}

impl Registry {
    /// Only the built-in layouts.
    pub const BUILT_IN: Registry = Registry { declared: &[] };

    /// The built-in layouts and `declared` (see [`declared::load`]).
    pub fn with_declared(declared: &'static [LayoutSpec]) -> Registry {
        Registry { declared }
    }

    /// Every layout, built-in ones first.
    pub fn all(self) -> impl Iterator<Item = LayoutRef> + Clone {
        LayoutId::ALL
            .into_iter()
            .map(LayoutRef::from)
            .chain(self.declared.iter().map(LayoutRef))
    }

    /// The declared layouts.
    pub fn declared(self) -> &'static [LayoutSpec] {
        self.declared
    }

    /// The layout named `name` (ASCII case ignored).
    pub fn find(self, name: &str) -> Option<LayoutRef> {
        let name = name.trim();
        self.all().find(|l| l.as_str().eq_ignore_ascii_case(name))
    }

    /// The dialects of the layouts other than the standard one, each once,
    /// in registry order.
    pub fn other_dialects(self) -> Vec<Dialect> {
        let mut out = vec![];
        for l in self.declared {
            let d = l.read.dialect;
            if d != Dialect::STANDARD && !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// A layout name no layout of the registry has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no layout is named {name:?}; the layouts are {}", .known.join(", "))]
pub struct UnknownLayout {
    pub name: String,
    pub known: Vec<&'static str>,
}

impl Registry {
    /// The layout named `name`, or the error naming every layout.
    pub fn get(self, name: &str) -> Result<LayoutRef, UnknownLayout> {
        self.find(name).ok_or_else(|| UnknownLayout {
            name: name.to_string(),
            known: self.all().map(LayoutRef::as_str).collect(),
        })
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
    layout: impl Into<LayoutRef>,
    values: impl IntoIterator<Item = &'a str>,
    occurrence: u32,
) -> uuid::Uuid {
    let mut name = Vec::with_capacity(96);
    name.extend_from_slice(layout.into().as_str().as_bytes());
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
