//! The canonical e-commerce event: its columns, its event types and the
//! rule codes a row can fail.
//!
//! This module owns the *vocabulary* every stage shares: the generator writes
//! these columns, the reader maps CSV headers onto them, the validator checks
//! them and the sink stores them. It holds no I/O and no policy.

use std::fmt;

/// The six kinds of shop event, stored lower-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    View,
    Search,
    AddToCart,
    RemoveFromCart,
    Wishlist,
    Purchase,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::View,
        EventType::Search,
        EventType::AddToCart,
        EventType::RemoveFromCart,
        EventType::Wishlist,
        EventType::Purchase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Search => "search",
            EventType::AddToCart => "add_to_cart",
            EventType::RemoveFromCart => "remove_from_cart",
            EventType::Wishlist => "wishlist",
            EventType::Purchase => "purchase",
        }
    }

    /// Parses a type after trimming, ignoring ASCII case (` VIEW ` is a view).
    pub fn parse(raw: &str) -> Option<EventType> {
        let t = raw.trim();
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(t))
    }

    /// Login-only events: they must carry a user_id. Views and searches may be
    /// anonymous.
    pub fn needs_user(self) -> bool {
        !matches!(self, EventType::View | EventType::Search)
    }

    /// Events that must carry a positive price.
    pub fn needs_price(self) -> bool {
        matches!(self, EventType::Purchase | EventType::AddToCart)
    }

    /// The quantity assumed when the column is missing or empty.
    pub fn default_quantity(self) -> i32 {
        match self {
            EventType::Purchase | EventType::AddToCart | EventType::RemoveFromCart => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonical input column. The discriminant is the column's position in
/// shopstream's own CSV layout (see [`Field::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    EventId,
    UserId,
    SessionId,
    EventType,
    ProductId,
    ProductName,
    Category,
    Price,
    Quantity,
    UserSegment,
    SearchQuery,
    EventTime,
    DeviceType,
    Browser,
    GeoCountry,
    GeoCity,
    Referrer,
    CampaignId,
}

/// Number of canonical columns.
pub const FIELD_COUNT: usize = 18;

impl Field {
    /// All canonical columns, in the order shopstream writes them.
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::EventId,
        Field::UserId,
        Field::SessionId,
        Field::EventType,
        Field::ProductId,
        Field::ProductName,
        Field::Category,
        Field::Price,
        Field::Quantity,
        Field::UserSegment,
        Field::SearchQuery,
        Field::EventTime,
        Field::DeviceType,
        Field::Browser,
        Field::GeoCountry,
        Field::GeoCity,
        Field::Referrer,
        Field::CampaignId,
    ];

    /// Columns a file's header must name; every other column may be absent.
    pub const REQUIRED: [Field; 4] = [
        Field::EventId,
        Field::EventType,
        Field::ProductId,
        Field::EventTime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::UserId => "user_id",
            Field::SessionId => "session_id",
            Field::EventType => "event_type",
            Field::ProductId => "product_id",
            Field::ProductName => "product_name",
            Field::Category => "category",
            Field::Price => "price",
            Field::Quantity => "quantity",
            Field::UserSegment => "user_segment",
            Field::SearchQuery => "search_query",
            Field::EventTime => "event_time",
            Field::DeviceType => "device_type",
            Field::Browser => "browser",
            Field::GeoCountry => "geo_country",
            Field::GeoCity => "geo_city",
            Field::Referrer => "referrer",
            Field::CampaignId => "campaign_id",
        }
    }

    /// Looks a header cell up (trimmed, ASCII case ignored).
    pub fn from_header(cell: &str) -> Option<Field> {
        let c = cell.trim();
        Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(c))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a row was rejected. Each code is stored in `dead_letter_events` and
/// documented, with an example, in docs/input.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleCode {
    NullEventId,
    InvalidEventId,
    NullEventType,
    InvalidEventType,
    NullProductId,
    MissingUser,
    InvalidPrice,
    NegativePrice,
    ExtremePrice,
    MissingPrice,
    InvalidQuantity,
    NullEventTime,
    InvalidEventTime,
    FutureEventTime,
    /// Older than `--max-event-age` (off by default).
    TooOldEventTime,
    MalformedRow,
    /// A JSON Lines line that is no usable JSON object (not JSON, not an
    /// object, a key twice, too many keys, too long).
    MalformedJson,
    InvalidEncoding,
    /// The database refused the row (a constraint or type the validator
    /// does not know); the server's message is kept.
    RejectedByDatabase,
}

impl RuleCode {
    pub const ALL: [RuleCode; 19] = [
        RuleCode::NullEventId,
        RuleCode::InvalidEventId,
        RuleCode::NullEventType,
        RuleCode::InvalidEventType,
        RuleCode::NullProductId,
        RuleCode::MissingUser,
        RuleCode::InvalidPrice,
        RuleCode::NegativePrice,
        RuleCode::ExtremePrice,
        RuleCode::MissingPrice,
        RuleCode::InvalidQuantity,
        RuleCode::NullEventTime,
        RuleCode::InvalidEventTime,
        RuleCode::FutureEventTime,
        RuleCode::TooOldEventTime,
        RuleCode::MalformedRow,
        RuleCode::MalformedJson,
        RuleCode::InvalidEncoding,
        RuleCode::RejectedByDatabase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleCode::NullEventId => "null_event_id",
            RuleCode::InvalidEventId => "invalid_event_id",
            RuleCode::NullEventType => "null_event_type",
            RuleCode::InvalidEventType => "invalid_event_type",
            RuleCode::NullProductId => "null_product_id",
            RuleCode::MissingUser => "missing_user",
            RuleCode::InvalidPrice => "invalid_price",
            RuleCode::NegativePrice => "negative_price",
            RuleCode::ExtremePrice => "extreme_price",
            RuleCode::MissingPrice => "missing_price",
            RuleCode::InvalidQuantity => "invalid_quantity",
            RuleCode::NullEventTime => "null_event_time",
            RuleCode::InvalidEventTime => "invalid_event_time",
            RuleCode::FutureEventTime => "future_event_time",
            RuleCode::TooOldEventTime => "too_old_event_time",
            RuleCode::MalformedRow => "malformed_row",
            RuleCode::MalformedJson => "malformed_json",
            RuleCode::InvalidEncoding => "invalid_encoding",
            RuleCode::RejectedByDatabase => "rejected_by_database",
        }
    }

    pub fn parse(s: &str) -> Option<RuleCode> {
        RuleCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for RuleCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_parse_trims_and_ignores_case() {
        assert_eq!(EventType::parse(" VIEW "), Some(EventType::View));
        assert_eq!(EventType::parse("Add_To_Cart"), Some(EventType::AddToCart));
        assert_eq!(EventType::parse("click"), None);
        assert_eq!(EventType::parse(""), None);
    }

    #[test]
    fn field_order_matches_index() {
        for (i, f) in Field::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(Field::from_header(&f.name().to_uppercase()), Some(*f));
        }
    }

    #[test]
    fn rule_codes_round_trip() {
        for c in RuleCode::ALL {
            assert_eq!(RuleCode::parse(c.as_str()), Some(c));
        }
    }
}
