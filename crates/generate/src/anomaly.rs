//! Deliberate bad data: which rows are broken, duplicated or late, and how a
//! broken row is broken.
//!
//! Owns [`InvalidKind`] (the `--invalid-kinds` vocabulary and the rule code
//! each kind must produce), [`Shares`] (validated `--*-share` options), the
//! per-row [`Planner`] and [`inject`]. An injected row must fail EXACTLY ONE
//! ingester rule, the one [`InvalidKind::expected_rule`] names; this module
//! must never produce a row that fails two rules, or a "broken" row that
//! actually passes. It never does I/O and never reads the wall clock.

use std::fmt;

use rand::Rng;

use super::catalogue::Catalogue;
use super::error::GenerateError;
use super::model::{Event, Need, TimeCell, TypeCell};
use super::writer::format_iso_millis;
use shopstream_core::event::RuleCode;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Late rows are back-dated by 6 to 60 minutes.
pub const LATE_MIN_MS: i64 = 6 * 60 * 1000;
pub const LATE_MAX_MS: i64 = 60 * 60 * 1000;

/// Event types no ingester accepts (none is a case or spacing variant of a
/// real one, none is empty).
const UNKNOWN_TYPES: [&str; 6] = [
    "click",
    "checkout",
    "INVALID_TYPE",
    "page_view",
    "refund",
    "login",
];

/// A kind of invalid row (`--invalid-kinds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum InvalidKind {
    /// price below zero (any event type) → negative_price
    NegativePrice,
    /// price 10000.01 to 99999.99 → extreme_price
    ExtremePrice,
    /// event_type such as `click` or `INVALID_TYPE` → invalid_event_type
    UnknownEventType,
    /// unparseable event_time such as `yesterday` → invalid_event_time
    BadTimestamp,
    /// event_time 1 to 30 days ahead → future_event_time
    FutureTimestamp,
    /// login-only event without user_id → missing_user
    MissingUser,
    /// empty event_id → null_event_id
    MissingEventId,
}

impl InvalidKind {
    pub const ALL: [InvalidKind; 7] = [
        InvalidKind::NegativePrice,
        InvalidKind::ExtremePrice,
        InvalidKind::UnknownEventType,
        InvalidKind::BadTimestamp,
        InvalidKind::FutureTimestamp,
        InvalidKind::MissingUser,
        InvalidKind::MissingEventId,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InvalidKind::NegativePrice => "negative_price",
            InvalidKind::ExtremePrice => "extreme_price",
            InvalidKind::UnknownEventType => "unknown_event_type",
            InvalidKind::BadTimestamp => "bad_timestamp",
            InvalidKind::FutureTimestamp => "future_timestamp",
            InvalidKind::MissingUser => "missing_user",
            InvalidKind::MissingEventId => "missing_event_id",
        }
    }

    /// The one rule a row of this kind fails.
    pub fn expected_rule(self) -> RuleCode {
        match self {
            InvalidKind::NegativePrice => RuleCode::NegativePrice,
            InvalidKind::ExtremePrice => RuleCode::ExtremePrice,
            InvalidKind::UnknownEventType => RuleCode::InvalidEventType,
            InvalidKind::BadTimestamp => RuleCode::InvalidEventTime,
            InvalidKind::FutureTimestamp => RuleCode::FutureEventTime,
            InvalidKind::MissingUser => RuleCode::MissingUser,
            InvalidKind::MissingEventId => RuleCode::NullEventId,
        }
    }

    /// The base event this kind must start from.
    pub fn need(self) -> Need {
        match self {
            InvalidKind::MissingUser => Need::LoginOnly,
            InvalidKind::UnknownEventType => Need::LoggedIn,
            _ => Need::Any,
        }
    }
}

impl fmt::Display for InvalidKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The three `--*-share` options, each a fraction of rows in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    /// Of fresh valid rows: back-dated by 6 to 60 minutes.
    pub late: f64,
    /// Of all rows: broken on purpose.
    pub invalid: f64,
    /// Of all rows: exact copies of valid rows from earlier files.
    pub duplicate: f64,
}

impl Shares {
    pub fn validate(&self) -> Result<(), GenerateError> {
        for (option, value) in [
            ("--late-share", self.late),
            ("--invalid-share", self.invalid),
            ("--duplicate-share", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(GenerateError::option(
                    option,
                    format!("{value} is not a fraction within [0, 1]"),
                ));
            }
        }
        if self.invalid + self.duplicate > 1.0 {
            return Err(GenerateError::option(
                "--invalid-share/--duplicate-share",
                format!(
                    "together {} + {} exceed 1: a row is either invalid or a duplicate",
                    self.invalid, self.duplicate
                ),
            ));
        }
        Ok(())
    }
}

/// What to write as the next row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPlan {
    /// A new valid event, possibly back-dated.
    Fresh { late: bool },
    /// A new event broken in one way.
    Invalid(InvalidKind),
    /// A copy of a valid row written in an earlier file.
    Duplicate,
}

/// Decides, row by row, what to write.
#[derive(Debug, Clone)]
pub struct Planner {
    late: f64,
    invalid: f64,
    duplicate: f64,
    kinds: Vec<InvalidKind>,
}

impl Planner {
    /// `duplicate_boost` (≥ 1) compensates for the rows that cannot be
    /// duplicates (the first file has no earlier file to copy from).
    pub fn new(
        shares: Shares,
        kinds: &[InvalidKind],
        duplicate_boost: f64,
    ) -> Result<Planner, GenerateError> {
        shares.validate()?;
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        if shares.invalid > 0.0 && kinds.is_empty() {
            return Err(GenerateError::option(
                "--invalid-kinds",
                "no kind given while --invalid-share is above 0",
            ));
        }
        let boost = if duplicate_boost.is_finite() {
            duplicate_boost.max(1.0)
        } else {
            1.0
        };
        Ok(Planner {
            late: shares.late,
            invalid: shares.invalid,
            duplicate: (shares.duplicate * boost).min(1.0 - shares.invalid),
            kinds,
        })
    }

    pub fn plan<R: Rng + ?Sized>(&self, rng: &mut R, can_duplicate: bool) -> RowPlan {
        let u: f64 = rng.random();
        if u < self.invalid {
            return RowPlan::Invalid(self.kinds[rng.random_range(0..self.kinds.len())]);
        }
        if can_duplicate && u < self.invalid + self.duplicate {
            return RowPlan::Duplicate;
        }
        RowPlan::Fresh {
            late: self.late > 0.0 && rng.random_bool(self.late),
        }
    }
}

/// Breaks `event` (a valid event drawn with `kind.need()`) so that it fails
/// exactly `kind.expected_rule()`. `future_floor_ms` is the generator's
/// notion of "now" (the end of the simulated span, or the wall clock): future
/// timestamps lie 1 to 30 days after the later of it and the event's time.
pub fn inject<R: Rng + ?Sized>(
    kind: InvalidKind,
    event: &mut Event,
    rng: &mut R,
    catalogue: &Catalogue,
    future_floor_ms: i64,
) {
    let list_price = i64::from(catalogue.product(event.product).price_cents);
    match kind {
        InvalidKind::NegativePrice => event.price_cents = Some(-list_price.max(1)),
        InvalidKind::ExtremePrice => {
            event.price_cents = Some(rng.random_range(1_000_001..=9_999_999));
        }
        InvalidKind::UnknownEventType => {
            event.event_type =
                TypeCell::Unknown(UNKNOWN_TYPES[rng.random_range(0..UNKNOWN_TYPES.len())]);
            if event.price_cents.is_none() {
                event.price_cents = Some(list_price);
            }
        }
        InvalidKind::BadTimestamp => {
            let text = match rng.random_range(0..4) {
                0 => "2026-13-45 25:61:00".to_string(),
                1 => "yesterday".to_string(),
                2 => "0000-00-00 00:00:00".to_string(),
                _ => day_first(event.millis().unwrap_or(future_floor_ms)),
            };
            event.time = TimeCell::Text(text);
        }
        InvalidKind::FutureTimestamp => {
            let base = event
                .millis()
                .unwrap_or(future_floor_ms)
                .max(future_floor_ms);
            event.time = TimeCell::Millis(base + rng.random_range(DAY_MS..=30 * DAY_MS));
        }
        InvalidKind::MissingUser => event.user = None,
        InvalidKind::MissingEventId => event.event_id = None,
    }
}

/// `21/11/2026 10:00`: a plausible but unaccepted day-first format.
fn day_first(ms: i64) -> String {
    let mut buf = [0u8; 24];
    let iso = format_iso_millis(ms, &mut buf);
    // iso = YYYY-MM-DDTHH:MM:SS.mmmZ
    let s = std::str::from_utf8(iso).unwrap_or("2026-11-21T10:00:00.000Z");
    format!("{}/{}/{} {}", &s[8..10], &s[5..7], &s[0..4], &s[11..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;
    use crate::model::Model;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use shopstream_core::event::EventType;

    const NOW: i64 = 1_795_255_200_000; // 2026-11-21T10:00:00Z

    fn shares(late: f64, invalid: f64, duplicate: f64) -> Shares {
        Shares {
            late,
            invalid,
            duplicate,
        }
    }

    #[test]
    fn kinds_round_trip_through_clap() {
        use clap::ValueEnum;
        for k in InvalidKind::ALL {
            assert_eq!(InvalidKind::from_str(k.name(), false), Ok(k));
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(InvalidKind::value_variants().len(), 7);
    }

    #[test]
    fn shares_out_of_range_are_rejected() {
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            for s in [
                shares(bad, 0.0, 0.0),
                shares(0.0, bad, 0.0),
                shares(0.0, 0.0, bad),
            ] {
                let err = s.validate().unwrap_err().to_string();
                assert!(err.contains("-share"), "{err}");
            }
        }
        assert!(shares(0.0, 0.6, 0.6).validate().is_err());
        assert!(shares(1.0, 0.5, 0.5).validate().is_ok());
        assert!(Planner::new(shares(0.0, 0.1, 0.0), &[], 1.0).is_err());
        assert!(Planner::new(shares(0.0, 0.0, 0.0), &[], 1.0).is_ok());
    }

    #[test]
    fn zero_shares_produce_nothing() {
        let p = Planner::new(shares(0.0, 0.0, 0.0), &InvalidKind::ALL, 2.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100_000 {
            assert_eq!(p.plan(&mut rng, true), RowPlan::Fresh { late: false });
        }
    }

    #[test]
    fn shares_are_respected() {
        let p = Planner::new(
            shares(0.1, 0.2, 0.05),
            &[InvalidKind::BadTimestamp, InvalidKind::MissingUser],
            1.0,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut inv, mut dup, mut late, mut fresh) = (0, 0, 0, 0);
        let n = 200_000;
        for _ in 0..n {
            match p.plan(&mut rng, true) {
                RowPlan::Invalid(k) => {
                    assert!(matches!(
                        k,
                        InvalidKind::BadTimestamp | InvalidKind::MissingUser
                    ));
                    inv += 1
                }
                RowPlan::Duplicate => dup += 1,
                RowPlan::Fresh { late: l } => {
                    fresh += 1;
                    late += usize::from(l)
                }
            }
        }
        let share = |k: usize, of: usize| k as f64 / of as f64;
        assert!((share(inv, n) - 0.2).abs() < 0.01);
        assert!((share(dup, n) - 0.05).abs() < 0.005);
        assert!((share(late, fresh) - 0.1).abs() < 0.01);
        // Without an earlier file there is nothing to copy.
        for _ in 0..10_000 {
            assert_ne!(p.plan(&mut rng, false), RowPlan::Duplicate);
        }
    }

    #[test]
    fn injector_changes_exactly_the_expected_field() {
        let cat = Catalogue::standard();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut model = Model::new(cat, 50.0);
        for kind in InvalidKind::ALL {
            for i in 0..300 {
                let base = model.next_event(&mut rng, NOW - 1000 + i, kind.need(), None);
                let mut e = base.clone();
                inject(kind, &mut e, &mut rng, cat, NOW);
                let list = i64::from(cat.product(e.product).price_cents);
                let mut expect = base.clone();
                match kind {
                    InvalidKind::NegativePrice => {
                        assert_eq!(e.price_cents, Some(-list));
                        expect.price_cents = e.price_cents;
                    }
                    InvalidKind::ExtremePrice => {
                        let p = e.price_cents.unwrap();
                        assert!((1_000_001..=9_999_999).contains(&p));
                        expect.price_cents = e.price_cents;
                    }
                    InvalidKind::UnknownEventType => {
                        let TypeCell::Unknown(t) = e.event_type else {
                            panic!("type kept: {e:?}")
                        };
                        assert!(EventType::parse(t).is_none() && !t.trim().is_empty());
                        assert!(e.user.is_some());
                        assert!(e.price_cents.unwrap_or(0) > 0);
                        expect.event_type = e.event_type;
                        expect.price_cents = e.price_cents;
                    }
                    InvalidKind::BadTimestamp => {
                        let TimeCell::Text(t) = &e.time else {
                            panic!("time kept")
                        };
                        assert!(!t.trim().is_empty());
                        assert!(chrono::DateTime::parse_from_rfc3339(t).is_err());
                        assert!(
                            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
                                .is_err()
                        );
                        expect.time = e.time.clone();
                    }
                    InvalidKind::FutureTimestamp => {
                        let ms = e.millis().unwrap();
                        assert!((NOW + DAY_MS..=NOW + 30 * DAY_MS).contains(&ms), "{ms}");
                        expect.time = e.time.clone();
                    }
                    InvalidKind::MissingUser => {
                        assert!(base.known_type().unwrap().needs_user());
                        assert!(base.user.is_some() && e.user.is_none());
                        expect.user = None;
                    }
                    InvalidKind::MissingEventId => {
                        assert!(e.event_id.is_none());
                        expect.event_id = None;
                    }
                }
                assert_eq!(e, expect, "{kind}: only the broken field may change");
            }
        }
    }

    #[test]
    fn day_first_looks_like_a_date() {
        assert_eq!(day_first(NOW), "21/11/2026 10:00");
    }
}
