//! Turns one raw CSV row into a canonical event, or into the complete list of
//! rules it fails.
//!
//! Values are trimmed and case-normalised first, then every rule is checked
//! and every failure recorded (a row with a bad id *and* a bad price reports
//! both). The derived columns (`total_amount`, `is_late_arrival`) are computed
//! here too. This module is pure: no I/O, no clock of its own (the caller
//! passes "now"), no knowledge of files or the database.

pub mod parse;

use std::borrow::Cow;

use uuid::Uuid;

use crate::event::{EventType, Field, RuleCode, FIELD_COUNT};
use chrono_tz::Tz;
use parse::UnixMicros;
use parse::{format_cents, parse_decimal_with, parse_time_as, Decimal, TimeError, TimeFormat};

/// The configurable thresholds of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Prices above this many cents fail `extreme_price` (default 10000.00).
    pub max_price_cents: i64,
    /// Event times more than this far ahead of "now" fail `future_event_time`.
    pub future_tolerance_micros: i64,
    /// Events older than this at processing time are flagged late.
    pub late_threshold_micros: i64,
    /// The zone of event times written without an offset (`None`: UTC).
    pub source_zone: Option<Tz>,
    /// Events older than this at processing time fail
    /// `too_old_event_time` (`None`: no bound).
    pub max_age_micros: Option<i64>,
    /// How the file's layout writes times and prices.
    pub forms: Forms,
}

/// How a layout writes times and prices: shopstream's standard forms, or
/// what a declared layout says (`crate::schema::declared`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forms {
    /// The time formats, tried in order (none: the standard forms).
    pub time_formats: &'static [TimeFormat],
    /// Prices are written with a decimal comma (`12,50`).
    pub decimal_comma: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_price_cents: 1_000_000,
            future_tolerance_micros: 60 * 1_000_000,
            late_threshold_micros: 5 * 60 * 1_000_000,
            source_zone: None,
            max_age_micros: None,
            forms: Forms::default(),
        }
    }
}

/// The raw values of one row, indexed by [`Field::index`]; `None` where the
/// file has no such column.
pub type RawFields<'a> = [Option<&'a str>; FIELD_COUNT];

/// A row that passed every rule, normalised and with its derived columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent<'a> {
    pub event_id: Uuid,
    pub user_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub event_type: EventType,
    pub product_id: &'a str,
    pub product_name: Option<&'a str>,
    pub category: Option<Cow<'a, str>>,
    pub price_cents: Option<i64>,
    pub quantity: i32,
    pub user_segment: Option<Cow<'a, str>>,
    pub search_query: Option<&'a str>,
    pub event_time: UnixMicros,
    pub device_type: Option<Cow<'a, str>>,
    pub browser: Option<&'a str>,
    pub geo_country: Option<&'a str>,
    pub geo_city: Option<&'a str>,
    pub referrer: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    /// price × quantity for purchase and add_to_cart, else 0.
    pub total_cents: i64,
    pub is_late_arrival: bool,
}

/// One failed rule: which column, what value, what was expected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub code: RuleCode,
    pub column: &'static str,
    pub value: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: RuleCode, field: Field, value: &str, message: impl Into<String>) -> Self {
        const MAX_VALUE: usize = 200;
        let value = if value.len() > MAX_VALUE {
            let mut end = MAX_VALUE;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &value[..end])
        } else {
            value.to_string()
        };
        Failure {
            code,
            column: field.name(),
            value,
            message: message.into(),
        }
    }
}

impl serde::Serialize for RuleCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn get<'a>(raw: &RawFields<'a>, f: Field) -> Option<&'a str> {
    raw[f.index()].map(str::trim).filter(|v| !v.is_empty())
}

fn lower(v: &str) -> Cow<'_, str> {
    if v.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(v.to_ascii_lowercase())
    } else {
        Cow::Borrowed(v)
    }
}

/// An id written as a float by pandas (`512.0`) is the integer `512`.
fn whole_number_id(v: &str) -> &str {
    match v.split_once('.') {
        Some((int, frac))
            if !int.is_empty()
                && !frac.is_empty()
                && int
                    .strip_prefix('-')
                    .unwrap_or(int)
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b == b'0') =>
        {
            int
        }
        _ => v,
    }
}

/// One spelling per category: lower-case words joined by `_`, where any
/// run of characters other than letters and digits separates words
/// (`Home & Garden`, `home-garden` and `home_garden` are all `home_garden`).
pub fn canonical_category(v: &str) -> Cow<'_, str> {
    let b = v.as_bytes();
    let simple = b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && !v.starts_with('_')
        && !v.ends_with('_')
        && !v.contains("__");
    if simple {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len());
    for word in v
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    if out.is_empty() {
        return Cow::Borrowed(v);
    }
    Cow::Owned(out)
}

/// Checks one row against every rule. `now` is the processing time.
pub fn validate<'a>(
    raw: &RawFields<'a>,
    now: UnixMicros,
    rules: &Rules,
) -> Result<ValidEvent<'a>, Vec<Failure>> {
    let mut fails = Vec::new();

    let event_id = match get(raw, Field::EventId) {
        None => {
            fails.push(Failure::new(
                RuleCode::NullEventId,
                Field::EventId,
                "",
                "event_id is empty; expected a UUID",
            ));
            None
        }
        Some(v) => match Uuid::try_parse(v) {
            Ok(u) => Some(u),
            Err(_) => {
                fails.push(Failure::new(
                    RuleCode::InvalidEventId,
                    Field::EventId,
                    v,
                    format!("event_id {v:?} is not a UUID; expected e.g. 0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b"),
                ));
                None
            }
        },
    };

    let event_type = match get(raw, Field::EventType) {
        None => {
            fails.push(Failure::new(
                RuleCode::NullEventType,
                Field::EventType,
                "",
                "event_type is empty; expected one of view, search, add_to_cart, remove_from_cart, wishlist, purchase",
            ));
            None
        }
        Some(v) => match EventType::parse(v) {
            Some(t) => Some(t),
            None => {
                fails.push(Failure::new(
                    RuleCode::InvalidEventType,
                    Field::EventType,
                    v,
                    format!("event_type {v:?} is unknown; expected one of view, search, add_to_cart, remove_from_cart, wishlist, purchase"),
                ));
                None
            }
        },
    };

    let product_id = get(raw, Field::ProductId).map(whole_number_id);
    if product_id.is_none() {
        fails.push(Failure::new(
            RuleCode::NullProductId,
            Field::ProductId,
            "",
            "product_id is empty; every event names a product",
        ));
    }

    let user_id = get(raw, Field::UserId).map(whole_number_id);
    if let Some(t) = event_type {
        if t.needs_user() && user_id.is_none() {
            fails.push(Failure::new(
                RuleCode::MissingUser,
                Field::UserId,
                "",
                format!("user_id is empty; a {t} event needs a signed-in user (only view and search may be anonymous)"),
            ));
        }
    }

    // A layout without a price column (seed 002) cannot fail missing_price.
    let priced = raw[Field::Price.index()].is_some();
    let price_cents = check_price(
        get(raw, Field::Price),
        event_type.filter(|_| priced),
        rules,
        &mut fails,
    );
    let quantity = check_quantity(get(raw, Field::Quantity), event_type, &mut fails);
    let event_time = check_time(get(raw, Field::EventTime), now, rules, &mut fails);

    if !fails.is_empty() {
        return Err(fails);
    }
    // Every `None` below was reported as a failure above.
    let (Some(event_id), Some(event_type), Some(product_id), Some(event_time), Some(quantity)) =
        (event_id, event_type, product_id, event_time, quantity)
    else {
        return Err(fails);
    };
    let total_cents = if event_type.needs_price() {
        price_cents.unwrap_or(0).saturating_mul(i64::from(quantity))
    } else {
        0
    };
    Ok(ValidEvent {
        event_id,
        user_id,
        session_id: get(raw, Field::SessionId),
        event_type,
        product_id,
        product_name: get(raw, Field::ProductName),
        category: get(raw, Field::Category).map(canonical_category),
        price_cents,
        quantity,
        user_segment: get(raw, Field::UserSegment).map(lower),
        search_query: get(raw, Field::SearchQuery),
        event_time,
        device_type: get(raw, Field::DeviceType).map(lower),
        browser: get(raw, Field::Browser),
        geo_country: get(raw, Field::GeoCountry),
        geo_city: get(raw, Field::GeoCity),
        referrer: get(raw, Field::Referrer),
        campaign_id: get(raw, Field::CampaignId),
        total_cents,
        is_late_arrival: now - event_time > rules.late_threshold_micros,
    })
}

fn check_price(
    v: Option<&str>,
    t: Option<EventType>,
    rules: &Rules,
    fails: &mut Vec<Failure>,
) -> Option<i64> {
    // Formatted only for a failure: this runs for every row.
    let max = || format_cents(rules.max_price_cents);
    let needs = t.filter(|t| t.needs_price());
    let Some(v) = v else {
        if let Some(t) = needs {
            fails.push(Failure::new(
                RuleCode::MissingPrice,
                Field::Price,
                "",
                format!("price is empty; a {t} needs a price above 0"),
            ));
        }
        return None;
    };
    let (separator, example) = match rules.forms.decimal_comma {
        true => (b',', "19,99 (the layout's decimal comma)"),
        false => (b'.', "19.99"),
    };
    match parse_decimal_with(v, separator) {
        None => {
            fails.push(Failure::new(
                RuleCode::InvalidPrice,
                Field::Price,
                v,
                format!("price {v:?} is not a decimal number; expected e.g. {example}"),
            ));
            None
        }
        Some(Decimal::Huge { negative: true }) => {
            fails.push(negative(v));
            None
        }
        Some(Decimal::Huge { negative: false }) => {
            fails.push(extreme(v, &max()));
            None
        }
        Some(Decimal::Cents(c)) if c < 0 => {
            fails.push(negative(v));
            None
        }
        Some(Decimal::Cents(c)) if c > rules.max_price_cents => {
            fails.push(extreme(v, &max()));
            None
        }
        Some(Decimal::Cents(0)) if needs.is_some() => {
            let t = needs.map_or("", EventType::as_str);
            fails.push(Failure::new(
                RuleCode::MissingPrice,
                Field::Price,
                v,
                format!("price is 0; a {t} needs a price above 0"),
            ));
            None
        }
        Some(Decimal::Cents(c)) => Some(c),
    }
}

fn negative(v: &str) -> Failure {
    Failure::new(
        RuleCode::NegativePrice,
        Field::Price,
        v,
        format!("price {v} is negative; expected 0 or more"),
    )
}

fn extreme(v: &str, max: &str) -> Failure {
    Failure::new(
        RuleCode::ExtremePrice,
        Field::Price,
        v,
        format!("price {v} is above the maximum of {max} (--max-price)"),
    )
}

fn check_quantity(v: Option<&str>, t: Option<EventType>, fails: &mut Vec<Failure>) -> Option<i32> {
    let Some(v) = v else {
        return Some(t.map_or(0, EventType::default_quantity));
    };
    let digits = v.strip_prefix('+').unwrap_or(v);
    let parsed = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i32>().ok()
    } else {
        None
    };
    match parsed {
        None => {
            fails.push(Failure::new(
                RuleCode::InvalidQuantity,
                Field::Quantity,
                v,
                format!("quantity {v:?} is not a whole number from 0 to 2147483647"),
            ));
            None
        }
        Some(0) if t == Some(EventType::Purchase) => {
            fails.push(Failure::new(
                RuleCode::InvalidQuantity,
                Field::Quantity,
                v,
                "quantity is 0; a purchase buys at least 1",
            ));
            None
        }
        Some(q) => Some(q),
    }
}

fn check_time(
    v: Option<&str>,
    now: UnixMicros,
    rules: &Rules,
    fails: &mut Vec<Failure>,
) -> Option<UnixMicros> {
    let Some(v) = v else {
        fails.push(Failure::new(
            RuleCode::NullEventTime,
            Field::EventTime,
            "",
            "event_time is empty; expected e.g. 2026-11-21T10:20:30Z",
        ));
        return None;
    };
    let zone = rules.source_zone.map_or("UTC", |z| z.name());
    let formats = rules.forms.time_formats;
    match parse_time_as(v, formats, rules.source_zone) {
        Err(TimeError::Invalid) if !formats.is_empty() => {
            let names: Vec<&str> = formats.iter().map(|f| f.text).collect();
            fails.push(Failure::new(
                RuleCode::InvalidEventTime,
                Field::EventTime,
                v,
                format!("event_time {v:?} is not a time in the layout's format {} (no offset means {zone})", names.join(" or ")),
            ));
            None
        }
        Err(TimeError::Invalid) => {
            fails.push(Failure::new(
                RuleCode::InvalidEventTime,
                Field::EventTime,
                v,
                format!("event_time {v:?} is not a timestamp; expected YYYY-MM-DD HH:MM:SS[.fff] or ISO-8601 like 2026-11-21T10:20:30Z (no zone means {zone}, --source-timezone)"),
            ));
            None
        }
        Err(TimeError::Nonexistent) => {
            fails.push(Failure::new(
                RuleCode::InvalidEventTime,
                Field::EventTime,
                v,
                format!("event_time {v} does not exist in {zone} (--source-timezone): the clocks skip it when daylight saving time begins; write the offset, e.g. {v}+01:00"),
            ));
            None
        }
        Ok(t) if t - now > rules.future_tolerance_micros => {
            fails.push(Failure::new(
                RuleCode::FutureEventTime,
                Field::EventTime,
                v,
                format!(
                    "event_time {v} is {}s in the future; at most {}s ahead of the clock is accepted (--future-tolerance-secs)",
                    (t - now) / 1_000_000,
                    rules.future_tolerance_micros / 1_000_000
                ),
            ));
            None
        }
        Ok(t) if rules.max_age_micros.is_some_and(|max| now - t > max) => {
            fails.push(Failure::new(
                RuleCode::TooOldEventTime,
                Field::EventTime,
                v,
                format!(
                    "event_time {v} is {} days old; at most {}s old is accepted (--max-event-age)",
                    (now - t) / 86_400_000_000,
                    rules.max_age_micros.unwrap_or_default() / 1_000_000
                ),
            ));
            None
        }
        Ok(t) => Some(t),
    }
}

#[cfg(test)]
mod tests;
