//! One test per rule code, plus normalisation and the derived columns.

use super::*;

// 2026-11-21T10:20:30Z
const NOW: i64 = 1_795_256_430_000_000;

/// A valid purchase; each test changes what it needs.
fn row() -> Vec<(Field, &'static str)> {
    vec![
        (Field::EventId, "0b6f1c2e-5d3a-4f8e-9a1b-2c3d4e5f6a7b"),
        (Field::UserId, "U000042"),
        (Field::EventType, "purchase"),
        (Field::ProductId, "P00007"),
        (Field::Price, "19.99"),
        (Field::Quantity, "2"),
        (Field::EventTime, "2026-11-21T10:20:00Z"),
    ]
}

fn with(
    mut r: Vec<(Field, &'static str)>,
    f: Field,
    v: &'static str,
) -> Vec<(Field, &'static str)> {
    r.retain(|(g, _)| *g != f);
    r.push((f, v));
    r
}

fn without(mut r: Vec<(Field, &'static str)>, f: Field) -> Vec<(Field, &'static str)> {
    r.retain(|(g, _)| *g != f);
    r
}

fn check(r: &[(Field, &'static str)]) -> Result<ValidEvent<'static>, Vec<Failure>> {
    let mut raw: RawFields<'static> = [None; FIELD_COUNT];
    for (f, v) in r {
        raw[f.index()] = Some(v);
    }
    validate(&raw, NOW, &Rules::default())
}

fn codes(r: &[(Field, &'static str)]) -> Vec<RuleCode> {
    match check(r) {
        Ok(_) => vec![],
        Err(f) => f.iter().map(|f| f.code).collect(),
    }
}

#[test]
fn valid_purchase_passes_with_derived_columns() {
    let e = check(&row()).expect("valid");
    assert_eq!(e.event_type, EventType::Purchase);
    assert_eq!(e.price_cents, Some(1999));
    assert_eq!(e.quantity, 2);
    assert_eq!(e.total_cents, 3998);
    assert!(!e.is_late_arrival);
}

#[test]
fn null_event_id() {
    assert_eq!(
        codes(&with(row(), Field::EventId, "  ")),
        [RuleCode::NullEventId]
    );
}

#[test]
fn invalid_event_id() {
    assert_eq!(
        codes(&with(row(), Field::EventId, "evt-123")),
        [RuleCode::InvalidEventId]
    );
}

#[test]
fn event_id_accepts_any_version_and_case() {
    assert!(check(&with(
        row(),
        Field::EventId,
        "0B6F1C2E-5D3A-1F8E-9A1B-2C3D4E5F6A7B"
    ))
    .is_ok());
    assert!(check(&with(
        row(),
        Field::EventId,
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    ))
    .is_ok());
}

#[test]
fn null_event_type() {
    assert_eq!(
        codes(&with(row(), Field::EventType, "")),
        [RuleCode::NullEventType]
    );
}

#[test]
fn invalid_event_type() {
    assert_eq!(
        codes(&with(row(), Field::EventType, "click")),
        [RuleCode::InvalidEventType]
    );
}

#[test]
fn event_type_is_trimmed_and_lowercased() {
    let e = check(&with(row(), Field::EventType, " PURCHASE ")).expect("valid");
    assert_eq!(e.event_type.as_str(), "purchase");
    let v = with(
        with(row(), Field::EventType, " VIEW "),
        Field::Quantity,
        "0",
    );
    assert_eq!(check(&v).expect("valid").event_type, EventType::View);
}

#[test]
fn null_product_id() {
    assert_eq!(
        codes(&without(row(), Field::ProductId)),
        [RuleCode::NullProductId]
    );
}

#[test]
fn missing_user_on_login_only_types() {
    for t in ["purchase", "add_to_cart", "remove_from_cart", "wishlist"] {
        let r = with(without(row(), Field::UserId), Field::EventType, t);
        assert_eq!(codes(&r), [RuleCode::MissingUser], "{t}");
    }
}

#[test]
fn views_and_searches_may_be_anonymous() {
    for t in ["view", "search"] {
        let r = with(without(row(), Field::UserId), Field::EventType, t);
        let e = check(&r).expect(t);
        assert_eq!(e.user_id, None);
        assert_eq!(
            e.total_cents, 0,
            "only purchase and add_to_cart have a total"
        );
    }
}

#[test]
fn invalid_price() {
    assert_eq!(
        codes(&with(row(), Field::Price, "12,50")),
        [RuleCode::InvalidPrice]
    );
    assert_eq!(
        codes(&with(row(), Field::Price, "free")),
        [RuleCode::InvalidPrice]
    );
}

#[test]
fn negative_price() {
    assert_eq!(
        codes(&with(row(), Field::Price, "-5")),
        [RuleCode::NegativePrice]
    );
    let v = with(with(row(), Field::EventType, "view"), Field::Price, "-0.01");
    assert_eq!(codes(&v), [RuleCode::NegativePrice]);
}

#[test]
fn extreme_price() {
    assert_eq!(
        codes(&with(row(), Field::Price, "10000.01")),
        [RuleCode::ExtremePrice]
    );
    assert!(check(&with(row(), Field::Price, "10000.00")).is_ok());
    let rules = Rules {
        max_price_cents: 500,
        ..Rules::default()
    };
    let mut raw: RawFields<'static> = [None; FIELD_COUNT];
    for (f, v) in row() {
        raw[f.index()] = Some(v);
    }
    let err = validate(&raw, NOW, &rules).expect_err("above a configured max of 5.00");
    assert_eq!(err[0].code, RuleCode::ExtremePrice);
}

#[test]
fn missing_price_on_purchase_and_cart() {
    assert_eq!(
        codes(&with(row(), Field::Price, "")),
        [RuleCode::MissingPrice]
    );
    assert_eq!(
        codes(&with(row(), Field::Price, "0.00")),
        [RuleCode::MissingPrice]
    );
    let cart = with(
        with(row(), Field::Price, " "),
        Field::EventType,
        "add_to_cart",
    );
    assert_eq!(codes(&cart), [RuleCode::MissingPrice]);
}

#[test]
fn other_types_may_have_no_price_or_zero() {
    for t in ["view", "search", "wishlist", "remove_from_cart"] {
        assert!(
            check(&with(without(row(), Field::Price), Field::EventType, t)).is_ok(),
            "{t}"
        );
        assert!(
            check(&with(with(row(), Field::Price, "0"), Field::EventType, t)).is_ok(),
            "{t}"
        );
    }
}

#[test]
fn invalid_quantity() {
    for q in ["-1", "1.5", "two", "99999999999"] {
        assert_eq!(
            codes(&with(row(), Field::Quantity, q)),
            [RuleCode::InvalidQuantity],
            "{q}"
        );
    }
    assert_eq!(
        codes(&with(row(), Field::Quantity, "0")),
        [RuleCode::InvalidQuantity]
    );
}

#[test]
fn missing_quantity_defaults_by_type() {
    let p = check(&without(row(), Field::Quantity)).expect("purchase");
    assert_eq!((p.quantity, p.total_cents), (1, 1999));
    let v = check(&with(
        without(row(), Field::Quantity),
        Field::EventType,
        "view",
    ))
    .expect("view");
    assert_eq!(v.quantity, 0);
    let r = with(
        without(row(), Field::Quantity),
        Field::EventType,
        "remove_from_cart",
    );
    assert_eq!(check(&r).expect("remove").quantity, 1);
}

#[test]
fn null_event_time() {
    assert_eq!(
        codes(&without(row(), Field::EventTime)),
        [RuleCode::NullEventTime]
    );
}

#[test]
fn invalid_event_time() {
    for t in ["yesterday", "21/11/2026 10:00:00", "2026-13-45 25:61:00"] {
        assert_eq!(
            codes(&with(row(), Field::EventTime, t)),
            [RuleCode::InvalidEventTime],
            "{t}"
        );
    }
}

#[test]
fn future_event_time_beyond_tolerance() {
    // NOW is 10:20:30; 61 s ahead is rejected, 60 s is accepted.
    assert_eq!(
        codes(&with(row(), Field::EventTime, "2026-11-21T10:21:31Z")),
        [RuleCode::FutureEventTime]
    );
    assert!(check(&with(row(), Field::EventTime, "2026-11-21T10:21:30Z")).is_ok());
}

fn check_with(
    r: &[(Field, &'static str)],
    rules: &Rules,
) -> Result<ValidEvent<'static>, Vec<Failure>> {
    let mut raw: RawFields<'static> = [None; FIELD_COUNT];
    for (f, v) in r {
        raw[f.index()] = Some(v);
    }
    validate(&raw, NOW, rules)
}

#[test]
fn too_old_event_time_only_with_a_max_age() {
    let old = with(row(), Field::EventTime, "1970-01-01 00:00:00");
    // Without a bound it loads, flagged late.
    assert!(check(&old).expect("loads").is_late_arrival);
    let rules = Rules {
        max_age_micros: Some(30 * 86_400 * 1_000_000),
        ..Rules::default()
    };
    let fails = check_with(&old, &rules).expect_err("too old");
    assert_eq!(
        fails.iter().map(|f| f.code).collect::<Vec<_>>(),
        [RuleCode::TooOldEventTime]
    );
    assert!(
        fails[0].message.contains("--max-event-age"),
        "{}",
        fails[0].message
    );
    // 29 days old is within 30 days.
    assert!(check_with(
        &with(row(), Field::EventTime, "2026-10-23 10:20:30"),
        &rules
    )
    .is_ok());
}

#[test]
fn naive_times_are_read_in_the_source_zone() {
    let rules = Rules {
        source_zone: Some(chrono_tz::Europe::Berlin),
        ..Rules::default()
    };
    // 11:20:00 in Berlin (CET, +1) is 10:20:00Z.
    let e = check_with(
        &with(row(), Field::EventTime, "2026-11-21 11:20:00"),
        &rules,
    )
    .expect("valid");
    assert_eq!(e.event_time, NOW - 30_000_000);
    let gap = check_with(
        &with(row(), Field::EventTime, "2026-03-29 02:30:00"),
        &rules,
    )
    .expect_err("skipped by the clocks");
    assert_eq!(gap[0].code, RuleCode::InvalidEventTime);
    assert!(
        gap[0].message.contains("does not exist in Europe/Berlin"),
        "{}",
        gap[0].message
    );
}

#[test]
fn accepted_timestamp_forms() {
    for t in [
        "2026-11-21 10:20:00",
        "2026-11-21 10:20:00.123456",
        "2026-11-21T10:20:00",
        "2026-11-21T10:20:00Z",
        "2026-11-21T10:20:00.5Z",
        "2026-11-21T11:20:00+01:00",
        "2026-11-21T05:20:00-0500",
    ] {
        let e = check(&with(row(), Field::EventTime, t)).unwrap_or_else(|f| panic!("{t}: {f:?}"));
        assert_eq!(e.event_time / 1_000_000, 1_795_256_400, "{t}");
    }
}

#[test]
fn late_arrival_flag() {
    let e = check(&with(row(), Field::EventTime, "2026-11-21T10:15:29Z")).expect("valid");
    assert!(e.is_late_arrival, "5 min 1 s old is late");
    let e = check(&with(row(), Field::EventTime, "2026-11-21T10:15:31Z")).expect("valid");
    assert!(!e.is_late_arrival);
}

#[test]
fn every_failed_rule_is_recorded() {
    let r = vec![
        (Field::EventId, "nope"),
        (Field::EventType, "purchase"),
        (Field::Price, "-3"),
        (Field::Quantity, "x"),
        (Field::EventTime, "2099-01-01 00:00:00"),
    ];
    assert_eq!(
        codes(&r),
        [
            RuleCode::InvalidEventId,
            RuleCode::NullProductId,
            RuleCode::MissingUser,
            RuleCode::NegativePrice,
            RuleCode::InvalidQuantity,
            RuleCode::FutureEventTime,
        ]
    );
}

#[test]
fn failures_name_column_value_and_expectation() {
    let f = check(&with(row(), Field::Price, "-5")).expect_err("negative");
    assert_eq!(f[0].column, "price");
    assert_eq!(f[0].value, "-5");
    assert!(
        f[0].message.contains("expected 0 or more"),
        "{}",
        f[0].message
    );
}

#[test]
fn text_fields_are_trimmed_and_segment_lowercased() {
    let r = with(
        with(row(), Field::UserSegment, " Premium "),
        Field::UserId,
        "  U1 ",
    );
    let e = check(&r).expect("valid");
    assert_eq!(e.user_segment.as_deref(), Some("premium"));
    assert_eq!(e.user_id, Some("U1"));
}

#[test]
fn float_written_ids_become_integers() {
    let e = check(&with(
        with(row(), Field::UserId, "512.0"),
        Field::ProductId,
        " 7.00 ",
    ))
    .expect("valid");
    assert_eq!(e.user_id, Some("512"));
    assert_eq!(e.product_id, "7");
    for kept in ["512.5", "USER_000001", ".0", "5.", "1e3", "-3.0x"] {
        let e = check(&with(row(), Field::UserId, kept)).expect("valid");
        assert_eq!(e.user_id, Some(kept));
    }
}

#[test]
fn categories_have_one_spelling() {
    for (raw, canonical) in [
        ("Home & Garden", "home_garden"),
        ("home_garden", "home_garden"),
        (" HOME-garden ", "home_garden"),
        ("Food & Grocery", "food_grocery"),
        ("electronics", "electronics"),
        ("Électronique", "électronique"),
    ] {
        let e = check(&with(row(), Field::Category, raw)).expect("valid");
        assert_eq!(e.category.as_deref(), Some(canonical), "{raw}");
    }
}

#[test]
fn a_layout_without_prices_loads_purchases_with_null_price() {
    let e = check(&without(row(), Field::Price)).expect("no price column");
    assert_eq!(e.price_cents, None);
    assert_eq!(e.total_cents, 0);
    // The column present but empty is still a missing price.
    assert_eq!(
        codes(&with(row(), Field::Price, "")),
        [RuleCode::MissingPrice]
    );
}

/// The `--option` names a failure message quotes, in order.
fn options_named(message: &str) -> Vec<String> {
    message
        .split("--")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect::<String>()
        })
        .collect()
}

#[test]
fn messages_name_real_options_of_run() {
    use clap::Args;
    let run = crate::pipeline::run::RunArgs::augment_args(clap::Command::new("run"));
    let known: Vec<String> = run
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    let strict = Rules {
        max_age_micros: Some(86_400_000_000),
        source_zone: Some(chrono_tz::Europe::Paris),
        ..Rules::default()
    };
    let mut messages = vec![];
    for (r, rules) in [
        (
            with(row(), Field::EventTime, "2026-11-21T10:21:31Z"),
            Rules::default(),
        ),
        (with(row(), Field::Price, "20000.00"), Rules::default()),
        (
            with(row(), Field::EventTime, "2026-01-01T00:00:00Z"),
            strict,
        ),
        (with(row(), Field::EventTime, "2026-03-29 02:30:00"), strict),
        (with(row(), Field::EventTime, "yesterday"), strict),
    ] {
        let f = check_with(&r, &rules).expect_err("fails");
        messages.extend(f.into_iter().map(|f| f.message));
    }
    let mut named = 0;
    for m in &messages {
        for option in options_named(m) {
            assert!(
                known.contains(&option),
                "--{option} is no option of run: {m}"
            );
            named += 1;
        }
    }
    assert_eq!(
        named,
        messages.len(),
        "each message names its option: {messages:?}"
    );
    assert!(
        messages[0].contains("(--future-tolerance-secs)"),
        "{}",
        messages[0]
    );
}

#[test]
fn a_layouts_forms_read_its_times_and_decimal_commas_only() {
    let formats: &'static [parse::TimeFormat] =
        Box::leak(Box::new([
            parse::TimeFormat::new("%d.%m.%Y %H:%M").expect("format")
        ]));
    let rules = Rules {
        source_zone: Some(chrono_tz::Europe::Berlin),
        forms: Forms {
            time_formats: formats,
            decimal_comma: true,
        },
        ..Rules::default()
    };
    let mut raw: RawFields<'static> = [None; FIELD_COUNT];
    for (f, v) in with(
        with(row(), Field::Price, "12,50"),
        Field::EventTime,
        "21.11.2026 11:20",
    ) {
        raw[f.index()] = Some(v);
    }
    let e = validate(&raw, NOW, &rules).expect("valid in the layout's forms");
    assert_eq!(e.price_cents, Some(1250));
    assert_eq!(
        e.event_time,
        NOW - 30_000_000,
        "11:20 in Berlin is 10:20 UTC"
    );
    raw[Field::Price.index()] = Some("12.50");
    raw[Field::EventTime.index()] = Some("2026-11-21T10:20:00Z");
    let fails = validate(&raw, NOW, &rules).expect_err("standard forms refused");
    let codes: Vec<RuleCode> = fails.iter().map(|f| f.code).collect();
    assert_eq!(codes, [RuleCode::InvalidPrice, RuleCode::InvalidEventTime]);
    assert!(fails[0].message.contains("19,99"), "{}", fails[0].message);
    assert!(
        fails[1].message.contains("%d.%m.%Y %H:%M"),
        "{}",
        fails[1].message
    );
}
