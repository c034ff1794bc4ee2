//! What each output layout (`--layout`) can hold, and how the model's
//! events are fitted to it.
//!
//! Owns, per layout: the event-type mix and whether anonymous visitors
//! exist, the kinds of broken rows it can express (derived from the
//! registry's columns), the values a seed system draws itself (seed 001's
//! whole-number prices, seed 004's prices and per-event session UUIDs, seed
//! 003's bucket sessions) and how the loader identifies a row (random UUIDs,
//! or ids derived from the row's content). Column names and order come from
//! [`shopstream_core::schema`]; the cell formats live in `writer`. This module must
//! never do I/O and takes all randomness from the caller's seeded RNG.

use csv::ByteRecord;
use rand::Rng;
use uuid::Uuid;

use super::anomaly::InvalidKind;
use super::error::GenerateError;
use super::model::{random_uuid, Event, SeedSession, SessionId, TypeCell, TYPE_WEIGHTS};
use shopstream_core::event::{EventType, Field};
use shopstream_core::schema::{derived_event_id, LayoutId, Target};

/// Seeds 000 and 004: views 70 %, purchases 30 %.
static VIEW_70_PURCHASE_30: [(EventType, u32); 2] =
    [(EventType::View, 70), (EventType::Purchase, 30)];
/// Seeds 001 and 002: views and purchases, uniformly.
static VIEW_50_PURCHASE_50: [(EventType, u32); 2] =
    [(EventType::View, 50), (EventType::Purchase, 50)];
/// Seed 003's six types with its generator's weights.
static SEED003_MIX: [(EventType, u32); 6] = [
    (EventType::View, 50),
    (EventType::Search, 10),
    (EventType::AddToCart, 15),
    (EventType::RemoveFromCart, 5),
    (EventType::Wishlist, 10),
    (EventType::Purchase, 10),
];

/// The event-type mix of `layout`: shopstream's own for v1–v3, the seed
/// generator's for a seed layout.
pub fn mix(layout: LayoutId) -> &'static [(EventType, u32)] {
    match layout {
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 => &TYPE_WEIGHTS,
        LayoutId::Seed000 | LayoutId::Seed004 => &VIEW_70_PURCHASE_30,
        LayoutId::Seed001 | LayoutId::Seed002 => &VIEW_50_PURCHASE_50,
        LayoutId::Seed003 => &SEED003_MIX,
    }
}

/// Whether views and searches of `layout` may come without a user.
pub fn anonymous_allowed(layout: LayoutId) -> bool {
    matches!(
        layout,
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 | LayoutId::Seed003
    )
}

/// Whether a file must be generated whole before its first row is encoded:
/// seed 003 writes every user_id of a file as a float (`512.0`) as soon as
/// one row of the file has no user (the pandas quirk).
pub fn needs_whole_file(layout: LayoutId) -> bool {
    layout == LayoutId::Seed003
}

/// Whether the loader's event id of a row is a function of the row's
/// content, so that two generated rows can end up with the same id: seed
/// 000 (MD5 of user, product and second) and seed 002 (no id column: a
/// UUIDv5 of the values and their occurrence in the file). Other layouts
/// carry random UUIDs.
pub fn has_content_ids(layout: LayoutId) -> bool {
    matches!(layout, LayoutId::Seed000 | LayoutId::Seed002)
}

/// Why `layout` cannot hold a row of `kind`, if it cannot.
pub fn unsupported(layout: LayoutId, kind: InvalidKind) -> Option<&'static str> {
    let has = |f: Field| layout.spec().column_for(f).is_some();
    match kind {
        InvalidKind::NegativePrice | InvalidKind::ExtremePrice if !has(Field::Price) => {
            Some("it has no price column")
        }
        InvalidKind::MissingEventId if !has(Field::EventId) => {
            Some("it has no event_id column (ids are derived from the row's values)")
        }
        InvalidKind::MissingUser if !has(Field::UserId) => Some("it has no user_id column"),
        InvalidKind::MissingUser if !mix(layout).iter().any(|(t, _)| t.needs_user()) => {
            Some("none of its event types needs a user")
        }
        _ => None,
    }
}

/// The kinds of broken rows a run of `layout` writes: every requested kind
/// (an error names the first one the layout cannot express), or without a
/// request every kind the layout can express.
pub fn invalid_kinds(
    layout: LayoutId,
    requested: Option<&[InvalidKind]>,
) -> Result<Vec<InvalidKind>, GenerateError> {
    match requested {
        Some(kinds) => {
            for &kind in kinds {
                if let Some(reason) = unsupported(layout, kind) {
                    return Err(GenerateError::KindNotInLayout {
                        layout,
                        kind,
                        reason,
                    });
                }
            }
            Ok(kinds.to_vec())
        }
        None => Ok(InvalidKind::ALL
            .into_iter()
            .filter(|&k| unsupported(layout, k).is_none())
            .collect()),
    }
}

/// Gives a valid model event the values `layout`'s own generator would
/// have drawn, before any anomaly is injected: seed 000 prices only
/// purchases; seed 001 prices every event with a whole number (views 0–99,
/// purchases 1–99); seed 002 has no price; seed 003 prices only purchase and
/// add_to_cart (others 0, quantity 0) and uses 30-minute bucket sessions;
/// seed 004 prices every event 10.00–500.00 and draws a session UUID per
/// event. v1–v3 keep the model's values.
pub fn dress<R: Rng + ?Sized>(layout: LayoutId, e: &mut Event, rng: &mut R) {
    let priced = match e.event_type {
        TypeCell::Known(t) => t.needs_price(),
        TypeCell::Unknown(_) => false,
    };
    match layout {
        LayoutId::V1 | LayoutId::V2 | LayoutId::V3 => {}
        LayoutId::Seed000 => {
            if !priced {
                e.price_cents = None;
            }
        }
        LayoutId::Seed001 => {
            let low = i64::from(priced);
            e.price_cents = Some(rng.random_range(low..=99) * 100);
        }
        LayoutId::Seed002 => e.price_cents = None,
        LayoutId::Seed003 => {
            if !priced {
                e.price_cents = Some(0);
                e.quantity = 0;
            }
            let bucket = e.millis().unwrap_or(0).div_euclid(1000).div_euclid(1800);
            e.seed_session = match e.user {
                Some(user) => SeedSession::Bucket { user, bucket },
                None => SeedSession::Guest {
                    bucket,
                    n: guest_number(&e.session_id),
                },
            };
        }
        LayoutId::Seed004 => {
            e.price_cents = Some(rng.random_range(1_000..=50_000));
            e.seed_session = SeedSession::Uuid(random_uuid(rng));
        }
    }
}

/// A number in 10000..=99999 fixed per model session (FNV-1a of its id).
fn guest_number(session: &SessionId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in session {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    10_000 + h % 90_000
}

/// The event id the loader gives the encoded row `rec` of a layout with
/// content ids ([`has_content_ids`]); `occurrence` is the 1-based count of
/// rows identical to it so far in its file. `None` for other layouts and
/// for rows without a usable id.
pub fn content_id(layout: LayoutId, rec: &ByteRecord, occurrence: u32) -> Option<Uuid> {
    let columns = layout.spec().columns;
    match layout {
        LayoutId::Seed000 => {
            let pos = columns
                .iter()
                .position(|c| c.target == Target::Field(Field::EventId))?;
            Uuid::try_parse_ascii(rec.get(pos)?).ok()
        }
        LayoutId::Seed002 => Some(derived_event_id(
            layout,
            rec.iter().map(|v| std::str::from_utf8(v).unwrap_or("")),
            occurrence,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_columns() {
        for layout in LayoutId::ALL {
            let kinds = invalid_kinds(layout, None).unwrap();
            assert!(kinds.contains(&InvalidKind::UnknownEventType));
            assert!(kinds.contains(&InvalidKind::BadTimestamp));
            assert!(kinds.contains(&InvalidKind::FutureTimestamp));
            assert!(kinds.contains(&InvalidKind::MissingUser));
            let all = layout != LayoutId::Seed002;
            assert_eq!(kinds.len() == InvalidKind::ALL.len(), all, "{layout}");
        }
        assert_eq!(
            invalid_kinds(LayoutId::Seed002, None).unwrap(),
            vec![
                InvalidKind::UnknownEventType,
                InvalidKind::BadTimestamp,
                InvalidKind::FutureTimestamp,
                InvalidKind::MissingUser,
            ]
        );
        let err = invalid_kinds(
            LayoutId::Seed002,
            Some(&[InvalidKind::BadTimestamp, InvalidKind::NegativePrice]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("seed002"), "{err}");
        assert!(err.contains("negative_price"), "{err}");
        assert!(err.contains("--invalid-kinds"), "{err}");
        let err = invalid_kinds(LayoutId::Seed002, Some(&[InvalidKind::MissingEventId]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing_event_id") && err.contains("no event_id"));
        assert_eq!(
            invalid_kinds(LayoutId::V1, Some(&[InvalidKind::ExtremePrice])).unwrap(),
            vec![InvalidKind::ExtremePrice]
        );
    }

    #[test]
    fn mixes_and_visitors() {
        for layout in LayoutId::ALL {
            let types: Vec<EventType> = mix(layout).iter().map(|(t, _)| *t).collect();
            let six = matches!(
                layout,
                LayoutId::V1 | LayoutId::V2 | LayoutId::V3 | LayoutId::Seed003
            );
            assert_eq!(types.len(), if six { 6 } else { 2 }, "{layout}");
            assert_eq!(anonymous_allowed(layout), six, "{layout}");
            assert!(types.contains(&EventType::Purchase));
        }
    }

    #[test]
    fn guest_numbers_are_five_digits_and_stable() {
        let a = guest_number(b"s-0123456789abcdef");
        assert_eq!(a, guest_number(b"s-0123456789abcdef"));
        assert!((10_000..=99_999).contains(&a));
        assert_ne!(a, guest_number(b"s-0123456789abcdee"));
    }
}
