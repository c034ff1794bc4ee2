//! The registry's data: one [`LayoutSpec`] per built-in layout, and the
//! types a declared layout (`super::declared`) is made of too.

use super::LayoutId;
use crate::event::Field;
use crate::validate::parse::TimeFormat;

/// The current canonical version: what every row is migrated to.
pub const CURRENT: LayoutId = LayoutId::V3;

/// A column's value type, as the canonical table stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Uuid,
    Text,
    Integer,
    Decimal,
    Timestamp,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Uuid => "uuid",
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Decimal => "decimal(12,2)",
            ColumnType::Timestamp => "timestamptz",
        }
    }
}

/// Where a file column's value goes in the canonical event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One canonical column.
    Field(Field),
    /// Both `product_id` and `product_name` (seed 002's `product`).
    ProductIdAndName,
    /// Not a canonical column: kept in the row's `extra` JSON object.
    Extra,
    /// Not a canonical column: its values are ignored.
    Drop,
}

/// One column of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The header cell naming it (matched trimmed, ASCII case ignored).
    pub name: &'static str,
    pub target: Target,
    pub ty: ColumnType,
    /// False when a row cannot be stored without a value.
    pub nullable: bool,
    /// What an empty or absent value becomes, when not NULL.
    pub default: Option<&'static str>,
    /// The value forms files of this layout hold, and how they are read.
    pub format: &'static str,
    /// Other header names of the column (declared layouts).
    pub aliases: &'static [&'static str],
    /// The header may lack the column (declared layouts); it is then
    /// treated as absent.
    pub optional: bool,
}

impl ColumnSpec {
    /// Every header name of the column: its name, then its aliases.
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

/// What kind of layout a spec is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One of shopstream's own versions.
    Version,
    /// A seed system's layout.
    Seed,
    /// Declared by a user with `--layouts`.
    Declared,
}

/// How a CSV file's fields are separated and quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
}

impl Dialect {
    /// RFC 4180: comma and double quote.
    pub const STANDARD: Dialect = Dialect {
        delimiter: b',',
        quote: b'"',
    };
}

/// How a layout's files are read, beyond their columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSpec {
    pub dialect: Dialect,
    /// Prices written with a decimal comma (`12,50`).
    pub decimal_comma: bool,
    /// The time formats, tried in order (none: the standard forms).
    pub time_formats: &'static [TimeFormat],
    /// The zone of times without an offset (`None`: --source-timezone).
    pub time_zone: Option<chrono_tz::Tz>,
    /// Constant values of canonical columns for rows whose value is empty
    /// or whose file has no such column.
    pub defaults: &'static [(Field, &'static str)],
    /// For files without event ids: the names of the columns the derived
    /// id is made of (`None`: every column of the layout the file has).
    pub id_from: Option<&'static [&'static str]>,
}

impl ReadSpec {
    /// shopstream's own forms: what every built-in layout uses.
    pub const STANDARD: ReadSpec = ReadSpec {
        dialect: Dialect::STANDARD,
        decimal_comma: false,
        time_formats: &[],
        time_zone: None,
        defaults: &[],
        id_from: None,
    };
}

/// One layout: a version of shopstream's own CSV, a seed system's, or a
/// declared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutSpec {
    /// The name stored in `source_layout`.
    pub name: &'static str,
    pub kind: Kind,
    /// When the version was introduced (for seed layouts: the date of the
    /// seed system's commit the layout was taken from; for declared ones,
    /// empty).
    pub introduced: &'static str,
    pub description: &'static str,
    pub columns: &'static [ColumnSpec],
    /// Quirks of the layout and how shopstream normalises them.
    pub notes: &'static [&'static str],
    pub read: ReadSpec,
    /// The file that declared it (declared layouts).
    pub declared_in: Option<&'static str>,
}

impl LayoutSpec {
    /// The file column that feeds canonical field `f`, if any.
    pub fn column_for(&self, f: Field) -> Option<&'static ColumnSpec> {
        self.columns.iter().find(|c| match c.target {
            Target::Field(t) => t == f,
            Target::ProductIdAndName => matches!(f, Field::ProductId | Field::ProductName),
            Target::Extra | Target::Drop => false,
        })
    }

    /// The constant a declared layout gives canonical field `f`, if any.
    pub fn default_for(&self, f: Field) -> Option<&'static str> {
        self.read
            .defaults
            .iter()
            .find(|(d, _)| *d == f)
            .map(|(_, v)| *v)
    }
}

/// The registry entry of `id`.
pub fn spec(id: LayoutId) -> &'static LayoutSpec {
    match id {
        LayoutId::V1 => &V1,
        LayoutId::V2 => &V2,
        LayoutId::V3 => &V3,
        LayoutId::Seed000 => &SEED000,
        LayoutId::Seed001 => &SEED001,
        LayoutId::Seed002 => &SEED002,
        LayoutId::Seed003 => &SEED003,
        LayoutId::Seed004 => &SEED004,
    }
}

/// The canonical (current version's) spec of field `f`.
pub fn canonical(f: Field) -> &'static ColumnSpec {
    &V3_COLUMNS[f.index()]
}

const fn col(
    f: Field,
    name: &'static str,
    ty: ColumnType,
    nullable: bool,
    default: Option<&'static str>,
    format: &'static str,
) -> ColumnSpec {
    ColumnSpec {
        name,
        target: Target::Field(f),
        ty,
        nullable,
        default,
        format,
        aliases: &[],
        optional: false,
    }
}

use ColumnType::{Decimal, Integer, Text, Timestamp, Uuid};

const EVENT_ID: ColumnSpec = col(
    Field::EventId,
    "event_id",
    Uuid,
    false,
    Some("when the layout has no event_id column: a UUIDv5 of the row's values and its occurrence number in the file"),
    "UUID",
);
const USER_ID: ColumnSpec = text(
    Field::UserId,
    "user_id",
    "text; empty only for anonymous view and search events; 512.0 is read as 512",
);
const SESSION_ID: ColumnSpec = text(Field::SessionId, "session_id", "text");
const EVENT_TYPE: ColumnSpec = req(
    Field::EventType,
    "event_type",
    Text,
    "view, search, add_to_cart, remove_from_cart, wishlist or purchase (case and spaces ignored)",
);
const PRODUCT_ID: ColumnSpec = req(
    Field::ProductId,
    "product_id",
    Text,
    "text; 512.0 is read as 512",
);
const PRODUCT_NAME: ColumnSpec = text(Field::ProductName, "product_name", "text");
const CATEGORY: ColumnSpec = text(
    Field::Category,
    "category",
    "stored as lower-case words joined by _ (Home & Garden and home_garden are both home_garden)",
);
const PRICE: ColumnSpec = opt(
    Field::Price,
    "price",
    Decimal,
    "decimal, 0 to --max-price; required above 0 for purchase and add_to_cart",
);
const QUANTITY: ColumnSpec = col(
    Field::Quantity,
    "quantity",
    Integer,
    false,
    Some("1 for purchase, add_to_cart and remove_from_cart; 0 otherwise"),
    "whole number ≥ 0 (≥ 1 for a purchase)",
);
const USER_SEGMENT: ColumnSpec = text(
    Field::UserSegment,
    "user_segment",
    "text, stored lower-case",
);
const SEARCH_QUERY: ColumnSpec = text(Field::SearchQuery, "search_query", "text");
const EVENT_TIME: ColumnSpec = req(
    Field::EventTime,
    "event_time",
    Timestamp,
    "YYYY-MM-DD HH:MM:SS[.ffffff] or ISO-8601 (T), optional Z or ±HH:MM; no zone means --source-timezone (UTC)",
);
/// A column every row must have, without a default.
const fn req(f: Field, name: &'static str, ty: ColumnType, format: &'static str) -> ColumnSpec {
    col(f, name, ty, false, None, format)
}

/// A nullable column without a default.
const fn opt(f: Field, name: &'static str, ty: ColumnType, format: &'static str) -> ColumnSpec {
    col(f, name, ty, true, None, format)
}

const fn text(f: Field, name: &'static str, format: &'static str) -> ColumnSpec {
    opt(f, name, Text, format)
}

const V3_COLUMNS: [ColumnSpec; 18] = [
    EVENT_ID,
    USER_ID,
    SESSION_ID,
    EVENT_TYPE,
    PRODUCT_ID,
    PRODUCT_NAME,
    CATEGORY,
    PRICE,
    QUANTITY,
    USER_SEGMENT,
    SEARCH_QUERY,
    EVENT_TIME,
    text(Field::DeviceType, "device_type", "text, stored lower-case"),
    text(Field::Browser, "browser", "text"),
    text(Field::GeoCountry, "geo_country", "text (ISO country code)"),
    text(Field::GeoCity, "geo_city", "text"),
    text(Field::Referrer, "referrer", "text"),
    text(Field::CampaignId, "campaign_id", "text"),
];

const V1_COLUMNS: [ColumnSpec; 6] = [EVENT_ID, USER_ID, EVENT_TYPE, PRODUCT_ID, PRICE, EVENT_TIME];

/// v2 is v3 without its last six columns (same order).
const V2_COLUMNS: &[ColumnSpec] = V3_COLUMNS.split_at(12).0;

static V1: LayoutSpec = LayoutSpec {
    name: "v1",
    kind: Kind::Version,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2025-01-01",
    description: "shopstream v1: the six core columns of an event",
    columns: &V1_COLUMNS,
    notes: &["quantity is not in v1: purchases count 1, views 0"],
};

static V2: LayoutSpec = LayoutSpec {
    name: "v2",
    kind: Kind::Version,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2025-06-01",
    description:
        "shopstream v2: v1 plus session, product name, category, quantity, segment and search query",
    columns: V2_COLUMNS,
    notes: &[],
};

static V3: LayoutSpec = LayoutSpec {
    name: "v3",
    kind: Kind::Version,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2026-01-01",
    description: "shopstream v3 (current): v2 plus device, browser, geo, referrer and campaign",
    columns: &V3_COLUMNS,
    notes: &["what `shopstream generate` writes by default"],
};

static SEED000: LayoutSpec = LayoutSpec {
    name: "seed000",
    kind: Kind::Seed,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2026-01-29",
    description: "user_events with MD5 event ids, USER_000001 users and zone-less times (from seed 000, the Olivia-21 Spark pipeline)",
    columns: &[
        req(
            Field::EventId,
            "event_id",
            Uuid,
            "UUID (MD5 of user, product and second)",
        ),
        text(Field::UserId, "user_id", "USER_000001 … USER_001000"),
        req(Field::ProductId, "product_id", Text, "PROD_000001 …"),
        text(
            Field::ProductName,
            "product_name",
            "catalogue name, e.g. Wireless Headphones",
        ),
        text(
            Field::Category,
            "product_category",
            "Title Case, e.g. Home & Garden, stored as home_garden",
        ),
        req(Field::EventType, "event_type", Text, "view or purchase"),
        opt(
            Field::Price,
            "price",
            Decimal,
            "empty on views (NULL), 2 decimals on purchases",
        ),
        req(
            Field::EventTime,
            "event_timestamp",
            Timestamp,
            "YYYY-MM-DD HH:MM:SS, no zone: --source-timezone (UTC)",
        ),
    ],
    notes: &["product_category → category, event_timestamp → event_time"],
};

static SEED001: LayoutSpec = LayoutSpec {
    name: "seed001",
    kind: Kind::Seed,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2026-01-30",
    description: "user_events with numeric users and products, ISO times without zone and prices on views (from seed 001, the Damas200 Spark pipeline)",
    columns: &[
        req(Field::EventId, "event_id", Uuid, "UUID (uuid4)"),
        text(Field::UserId, "user_id", "integer 1–100"),
        req(Field::EventType, "event_type", Text, "view or purchase"),
        req(Field::ProductId, "product_id", Text, "integer 1–50"),
        text(Field::ProductName, "product_name", "a random word"),
        opt(
            Field::Price,
            "price",
            Decimal,
            "whole number 0–99, on views too",
        ),
        req(
            Field::EventTime,
            "event_timestamp",
            Timestamp,
            "ISO-8601 with T and no zone (--source-timezone, UTC), any moment since 1970",
        ),
    ],
    notes: &[
        "event_timestamp → event_time",
        "views keep the price the file gives them; a purchase at 0 is a missing_price dead letter",
    ],
};

static SEED002: LayoutSpec = LayoutSpec {
    name: "seed002",
    kind: Kind::Seed,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2025-04-30",
    description: "four columns user_id, action, product, timestamp: no event id, no price (from seed 002, the Elias-DE Spark pipeline)",
    columns: &[
        text(Field::UserId, "user_id", "integer 1001–1010"),
        req(Field::EventType, "action", Text, "view or purchase"),
        ColumnSpec {
            name: "product",
            target: Target::ProductIdAndName,
            ty: Text,
            nullable: false,
            default: None,
            format: "a product name (laptop, headphones, …), stored as both product_id and product_name",
            aliases: &[],
            optional: false,
        },
        req(Field::EventTime, "timestamp", Timestamp, "YYYY-MM-DD HH:MM:SS without zone, read in --source-timezone (UTC)"),
    ],
    notes: &[
        "no event_id: each row gets a UUIDv5 of its values and its occurrence number in the file, so re-sending a file adds nothing while two identical rows in one file both load",
        "no price column: purchases load with a NULL price (missing_price does not apply)",
        "action → event_type, product → product_id and product_name, timestamp → event_time",
    ],
};

static SEED003: LayoutSpec = LayoutSpec {
    name: "seed003",
    kind: Kind::Seed,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2026-01-29",
    description: "ecommerce_events export of 12 columns, pandas-style 512.0 ids and +00:00 times (from seed 003, the Zaina-M Spark pipeline)",
    columns: &[
        req(Field::EventId, "event_id", Uuid, "UUID (uuid4)"),
        text(Field::UserId, "user_id", "integer 1–1000, often written 512.0 by pandas (read as 512); empty for anonymous views and searches"),
        text(Field::SessionId, "session_id", "<user>-<30-min bucket>, or guest-<bucket>-<n> for anonymous users"),
        req(Field::EventType, "event_type", Text, "the six event types"),
        req(Field::ProductId, "product_id", Text, "integer 1–500, may be written 512.0"),
        text(Field::Category, "category", "lower-case, e.g. home_garden"),
        opt(Field::Price, "price", Decimal, "2 decimals on purchase and add_to_cart, 0.0 otherwise"),
        col(Field::Quantity, "quantity", Integer, false, QUANTITY.default, "purchase 1–5, add_to_cart 1–3, otherwise 0"),
        text(Field::UserSegment, "user_segment", "new, returning, premium, inactive or anonymous"),
        text(Field::SearchQuery, "search_query", "text on searches, empty otherwise (stored NULL)"),
        req(Field::EventTime, "event_time", Timestamp, "ISO-8601 with microseconds and +00:00"),
        ColumnSpec {
            name: "source_system",
            target: Target::Extra,
            ty: Text,
            nullable: true,
            default: None,
            format: "always web; kept in extra as {\"source_system\": …}",
            aliases: &[],
            optional: false,
        },
    ],
    notes: &["user_id and product_id written as 512.0 are stored as 512"],
};

static SEED004: LayoutSpec = LayoutSpec {
    name: "seed004",
    kind: Kind::Seed,
    read: ReadSpec::STANDARD,
    declared_in: None,
    introduced: "2026-01-29",
    description: "user_activity with a fresh session id per event and zone-less times (from seed 004, the jill-break Spark pipeline)",
    columns: &[
        req(Field::EventId, "event_id", Uuid, "UUID (uuid4)"),
        req(
            Field::EventTime,
            "event_time",
            Timestamp,
            "YYYY-MM-DD HH:MM:SS without zone, read in --source-timezone (UTC)",
        ),
        req(Field::EventType, "event_type", Text, "view or purchase"),
        req(Field::ProductId, "product_id", Text, "integer 100–200"),
        opt(Field::Price, "price", Decimal, "10.00–500.00, on views too"),
        text(Field::UserId, "user_id", "integer 1000–5000"),
        text(Field::SessionId, "session_id", "a fresh UUID per event"),
    ],
    notes: &["session_id carries no session meaning (one per event)"],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(id: LayoutId) -> BTreeSet<String> {
        id.spec()
            .columns
            .iter()
            .map(|c| c.name.to_string())
            .collect()
    }

    #[test]
    fn every_layout_has_a_distinct_column_set() {
        for a in LayoutId::ALL {
            assert_eq!(a.spec().name, a.as_str());
            assert_eq!(
                names(a).len(),
                a.spec().columns.len(),
                "{a} repeats a column"
            );
            for b in LayoutId::ALL {
                if a != b {
                    assert_ne!(names(a), names(b), "{a} and {b}");
                }
            }
        }
    }

    #[test]
    fn versions_grow_and_keep_the_canonical_specs() {
        assert!(names(LayoutId::V1).is_subset(&names(LayoutId::V2)));
        assert!(names(LayoutId::V2).is_subset(&names(LayoutId::V3)));
        assert_eq!(V3.columns.len(), Field::ALL.len());
        for f in Field::ALL {
            assert_eq!(canonical(f).name, f.name());
            assert_eq!(canonical(f).target, Target::Field(f));
        }
        for v in [LayoutId::V1, LayoutId::V2] {
            for c in v.spec().columns {
                let Target::Field(f) = c.target else {
                    panic!("{v} has a non-canonical column")
                };
                assert_eq!(c, canonical(f));
            }
        }
    }

    #[test]
    fn every_layout_feeds_the_required_fields() {
        for id in LayoutId::ALL {
            for f in [Field::EventType, Field::ProductId, Field::EventTime] {
                assert!(id.spec().column_for(f).is_some(), "{id} lacks {f:?}");
            }
        }
        assert!(LayoutId::Seed002
            .spec()
            .column_for(Field::EventId)
            .is_none());
        assert!(LayoutId::Seed002.spec().column_for(Field::Price).is_none());
    }
}
