//! Strict parsers for the value forms the validator accepts: timestamps and
//! decimal prices. Hand-written because they sit on the hot path and because
//! the accepted forms are a documented contract, not whatever a general
//! parser happens to take.
//!
//! Declared layouts add two forms: times in a declared format
//! ([`TimeFormat`], chrono's strftime syntax, parsed by chrono) and
//! decimals with a comma ([`parse_decimal_with`]).
//!
//! These functions only parse; they never decide whether a value is allowed
//! (that is [`super::Rules`]' job).

use chrono::format::{parse as parse_items, Item, Parsed, StrftimeItems};
use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

/// Microseconds since the Unix epoch, UTC.
pub type UnixMicros = i64;

/// Parses an event time.
///
/// Accepted: `YYYY-MM-DD HH:MM:SS[.fraction]` and ISO-8601
/// `YYYY-MM-DDTHH:MM:SS[.fraction]`, each optionally followed by `Z` or an
/// offset `+HH:MM`, `+HHMM` or `+HH` (also `-`). Times without a zone are UTC.
/// A fraction has 1 to 9 digits (`.` or `,`); digits past microseconds are
/// truncated. Anything else (dates only, missing seconds, words, other
/// orders) returns `None`.
pub fn parse_timestamp(input: &str) -> Option<UnixMicros> {
    parse_timestamp_in(input, None).ok()
}

/// Why an event time could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not one of the accepted forms, or no such date or time of day.
    Invalid,
    /// A time without an offset that the zone's clocks skip (the hour
    /// daylight saving time begins).
    Nonexistent,
}

/// Like [`parse_timestamp`], but a time without `Z` or an offset is wall
/// clock time in `zone` (`None`: UTC). A wall clock time that occurs twice
/// (the hour daylight saving time ends) is the earlier instant; one the
/// clocks skip is [`TimeError::Nonexistent`].
pub fn parse_timestamp_in(input: &str, zone: Option<Tz>) -> Result<UnixMicros, TimeError> {
    let (local, offset_secs) = parse_parts(input).ok_or(TimeError::Invalid)?;
    match offset_secs {
        Some(offset) => Ok(local.and_utc().timestamp_micros() - offset * 1_000_000),
        None => wall_clock_in(local, zone),
    }
}

/// The instant of wall clock time `local` in `zone` (`None`: UTC): the
/// earlier one when it occurs twice, none when the clocks skip it.
fn wall_clock_in(local: NaiveDateTime, zone: Option<Tz>) -> Result<UnixMicros, TimeError> {
    let Some(tz) = zone else {
        return Ok(local.and_utc().timestamp_micros());
    };
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.timestamp_micros()),
        LocalResult::Ambiguous(a, b) => Ok(a.timestamp_micros().min(b.timestamp_micros())),
        LocalResult::None => Err(TimeError::Nonexistent),
    }
}

/// A time format a declared layout names, in chrono's strftime syntax
/// (`%d.%m.%Y %H:%M`), parsed once when the layout is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    /// The format as written.
    pub text: &'static str,
    items: Vec<Item<'static>>,
}

impl TimeFormat {
    /// Checks `text`: a strftime format from which a written time reads
    /// back to the minute (it names the day, month, year, hour and minute
    /// at least). The reason says what is wrong.
    pub fn new(text: &'static str) -> Result<TimeFormat, String> {
        let items = StrftimeItems::new(text)
            .parse()
            .map_err(|_| format!("{text:?} is not a strftime time format (e.g. %d.%m.%Y %H:%M)"))?;
        let format = TimeFormat { text, items };
        // 2026-03-14 15:09:26.123456 at +01:00, written and read back.
        let offset = chrono::FixedOffset::east_opt(3600).ok_or("no offset")?;
        let sample = chrono::DateTime::from_timestamp_micros(1_773_497_366_123_456)
            .ok_or("no sample")?
            .with_timezone(&offset);
        let mut written = String::new();
        use std::fmt::Write as _;
        let shown = write!(written, "{}", sample.format_with_items(format.items.iter()));
        // Read back as written: the instant when the format has an offset,
        // else the wall clock time (here taken as UTC).
        let back = shown.ok().and_then(|()| format.parse(&written, None).ok());
        let minute = |t: i64| t.div_euclid(60_000_000);
        let wall = sample.naive_local().and_utc().timestamp_micros();
        let same = back.is_some_and(|b| {
            minute(b) == minute(sample.timestamp_micros()) || minute(b) == minute(wall)
        });
        if !same {
            return Err(format!(
                "{text:?} cannot be read back (2026-03-14 15:09 +01:00 is written {written:?}): \
                 a time format names the day, month, year, hour and minute at least, e.g. \
                 %d.%m.%Y %H:%M"
            ));
        }
        Ok(format)
    }

    /// Reads `input` in this format: an offset it holds wins; without
    /// one it is wall clock time in `zone` (`None`: UTC).
    pub fn parse(&self, input: &str, zone: Option<Tz>) -> Result<UnixMicros, TimeError> {
        let mut parsed = Parsed::new();
        parse_items(&mut parsed, input, self.items.iter()).map_err(|_| TimeError::Invalid)?;
        if parsed.offset().is_some() || parsed.timestamp().is_some() {
            let instant = match parsed.offset() {
                Some(_) => parsed.to_datetime().map(|t| t.timestamp_micros()),
                None => parsed
                    .to_naive_datetime_with_offset(0)
                    .map(|t| t.and_utc().timestamp_micros()),
            };
            return instant.map_err(|_| TimeError::Invalid);
        }
        let local = parsed
            .to_naive_datetime_with_offset(0)
            .map_err(|_| TimeError::Invalid)?;
        wall_clock_in(local, zone)
    }
}

/// Reads an event time in the first of `formats` it fits (see
/// [`TimeFormat::parse`]); with no formats, in the standard forms
/// ([`parse_timestamp_in`]).
pub fn parse_time_as(
    input: &str,
    formats: &[TimeFormat],
    zone: Option<Tz>,
) -> Result<UnixMicros, TimeError> {
    if formats.is_empty() {
        return parse_timestamp_in(input, zone);
    }
    let mut nonexistent = false;
    for f in formats {
        match f.parse(input, zone) {
            Ok(t) => return Ok(t),
            Err(TimeError::Nonexistent) => nonexistent = true,
            Err(TimeError::Invalid) => {}
        }
    }
    Err(if nonexistent {
        TimeError::Nonexistent
    } else {
        TimeError::Invalid
    })
}

/// The written date and time, and the offset in seconds when one is
/// written (`Z` is 0).
fn parse_parts(input: &str) -> Option<(NaiveDateTime, Option<i64>)> {
    let s = input.as_bytes();
    if s.len() < 19 {
        return None;
    }
    let year = digits(&s[0..4])?;
    if s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    if !matches!(s[10], b' ' | b'T' | b't') {
        return None;
    }
    let hour = digits(&s[11..13])?;
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    let mut i = 19;
    let mut micros: u32 = 0;
    if i < s.len() && (s[i] == b'.' || s[i] == b',') {
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        let n = i - start;
        if n == 0 || n > 9 {
            return None;
        }
        for (k, &d) in s[start..i].iter().enumerate().take(6) {
            micros += u32::from(d - b'0') * 10u32.pow(5 - k as u32);
        }
    }
    let offset_secs: Option<i64> = match &s[i..] {
        [] => None,
        [b'Z'] | [b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h) * 3600 + i64::from(m) * 60;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    Some((date.and_time(time), offset_secs))
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// A decimal that did not fit in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decimal {
    /// The value in hundredths, rounded half away from zero.
    Cents(i64),
    /// A syntactically valid decimal too large to hold: its sign.
    Huge { negative: bool },
}

/// Parses a plain decimal (`12`, `12.5`, `-0.99`, `.5`, `+3.`) into cents.
/// Exponents, thousands separators, `NaN` and `inf` are not decimals.
pub fn parse_decimal(input: &str) -> Option<Decimal> {
    parse_decimal_with(input, b'.')
}

/// [`parse_decimal`] with `separator` (`.` or `,`) between the whole
/// number and its fraction: `12,50` with a comma. The other mark is no
/// decimal.
pub fn parse_decimal_with(input: &str, separator: u8) -> Option<Decimal> {
    let s = input.as_bytes();
    let (negative, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac_part) = match body.iter().position(|&c| c == separator) {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.iter().all(u8::is_ascii_digit) || !frac_part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // 16 integer digits always fit in i64 cents (< 9.2e18 / 100).
    let significant = int_part.iter().skip_while(|&&c| c == b'0').count();
    if significant > 16 {
        return Some(Decimal::Huge { negative });
    }
    let mut cents: i64 = 0;
    for &c in int_part {
        cents = cents * 10 + i64::from(c - b'0');
    }
    let d = |k: usize| frac_part.get(k).map_or(0, |c| i64::from(c - b'0'));
    cents = cents * 100 + d(0) * 10 + d(1);
    if d(2) >= 5 {
        cents += 1;
    }
    Some(Decimal::Cents(if negative { -cents } else { cents }))
}

/// Formats cents as a decimal with two places (for messages).
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let a = cents.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<i64> {
        parse_timestamp(s)
    }

    // 2026-11-21T10:20:30Z
    const BASE: i64 = 1_795_256_430_000_000;

    #[test]
    fn accepts_space_separated_naive_utc() {
        assert_eq!(ts("2026-11-21 10:20:30"), Some(BASE));
    }

    #[test]
    fn accepts_iso_with_t_naive() {
        assert_eq!(ts("2026-11-21T10:20:30"), Some(BASE));
    }

    #[test]
    fn accepts_z_suffix() {
        assert_eq!(ts("2026-11-21T10:20:30Z"), Some(BASE));
        assert_eq!(ts("2026-11-21t10:20:30z"), Some(BASE));
    }

    #[test]
    fn accepts_fractions_up_to_nanoseconds() {
        assert_eq!(ts("2026-11-21 10:20:30.5"), Some(BASE + 500_000));
        assert_eq!(ts("2026-11-21T10:20:30.123Z"), Some(BASE + 123_000));
        assert_eq!(ts("2026-11-21T10:20:30.123456+00:00"), Some(BASE + 123_456));
        assert_eq!(ts("2026-11-21T10:20:30.123456789Z"), Some(BASE + 123_456));
        assert_eq!(ts("2026-11-21T10:20:30,25Z"), Some(BASE + 250_000));
    }

    #[test]
    fn accepts_offsets_in_three_spellings() {
        assert_eq!(ts("2026-11-21T12:20:30+02:00"), Some(BASE));
        assert_eq!(ts("2026-11-21T12:20:30+0200"), Some(BASE));
        assert_eq!(ts("2026-11-21T12:20:30+02"), Some(BASE));
        assert_eq!(ts("2026-11-21T05:20:30-05:00"), Some(BASE));
        assert_eq!(ts("2026-11-21 10:20:30+00:00"), Some(BASE));
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "yesterday",
            "2026-11-21",
            "2026-11-21 10:20",
            "21/11/2026 10:20:30",
            "2026/11/21 10:20:30",
            "2026-13-45 25:61:00",
            "2026-02-30 10:00:00",
            "2026-11-21 24:00:00",
            "2026-11-21 10:20:60",
            "2026-11-21T10:20:30.",
            "2026-11-21T10:20:30.1234567890",
            "2026-11-21T10:20:30+2",
            "2026-11-21T10:20:30+25:00",
            "2026-11-21T10:20:30 UTC",
            "2026-11-21T10:20:30Zjunk",
            "1763720430",
            "２026-11-21 10:20:30",
        ] {
            assert_eq!(ts(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn decimals_parse_to_cents() {
        assert_eq!(parse_decimal("12"), Some(Decimal::Cents(1200)));
        assert_eq!(parse_decimal("12.5"), Some(Decimal::Cents(1250)));
        assert_eq!(parse_decimal("0.99"), Some(Decimal::Cents(99)));
        assert_eq!(parse_decimal(".5"), Some(Decimal::Cents(50)));
        assert_eq!(parse_decimal("+3."), Some(Decimal::Cents(300)));
        assert_eq!(parse_decimal("-50"), Some(Decimal::Cents(-5000)));
        assert_eq!(parse_decimal("1.005"), Some(Decimal::Cents(101)));
        assert_eq!(parse_decimal("1.0049"), Some(Decimal::Cents(100)));
        assert_eq!(parse_decimal("-1.005"), Some(Decimal::Cents(-101)));
        assert_eq!(parse_decimal("0007.10"), Some(Decimal::Cents(710)));
    }

    #[test]
    fn huge_decimals_keep_their_sign() {
        assert_eq!(
            parse_decimal("123456789012345678901"),
            Some(Decimal::Huge { negative: false })
        );
        assert_eq!(
            parse_decimal("-123456789012345678901.5"),
            Some(Decimal::Huge { negative: true })
        );
        assert_eq!(
            parse_decimal("9999999999999999.99"),
            Some(Decimal::Cents(999_999_999_999_999_999))
        );
    }

    #[test]
    fn a_decimal_comma_is_read_when_declared() {
        assert_eq!(
            parse_decimal_with("12,50", b','),
            Some(Decimal::Cents(1250))
        );
        assert_eq!(parse_decimal_with("-0,5", b','), Some(Decimal::Cents(-50)));
        assert_eq!(parse_decimal_with("7", b','), Some(Decimal::Cents(700)));
        assert_eq!(parse_decimal_with("12.50", b','), None);
        assert_eq!(parse_decimal("12,50"), None);
    }

    #[test]
    fn declared_time_formats_read_wall_clock_time_in_the_zone() {
        let berlin = Some(chrono_tz::Europe::Berlin);
        let utc = |s: &str| parse_timestamp_in(s, None).expect(s);
        let f = TimeFormat::new("%d.%m.%Y %H:%M").expect("format");
        assert_eq!(
            f.parse("03.01.2026 14:30", berlin),
            Ok(utc("2026-01-03 13:30:00"))
        );
        assert_eq!(
            f.parse("01.07.2026 14:30", berlin),
            Ok(utc("2026-07-01 12:30:00"))
        );
        assert_eq!(
            f.parse("29.03.2026 02:30", berlin),
            Err(TimeError::Nonexistent)
        );
        assert_eq!(
            f.parse("2026-01-03 14:30:00", berlin),
            Err(TimeError::Invalid)
        );
        let with_offset = TimeFormat::new("%d/%m/%Y %H:%M:%S %z").expect("format");
        assert_eq!(
            with_offset.parse("03/01/2026 14:30:05 +0500", berlin),
            Ok(utc("2026-01-03 09:30:05"))
        );
        let both = [f, with_offset];
        assert_eq!(
            parse_time_as("03/01/2026 14:30:05 -0100", &both, None),
            Ok(utc("2026-01-03 15:30:05"))
        );
        assert_eq!(
            parse_time_as("2026-01-03 14:30:00", &[], None),
            Ok(utc("2026-01-03 14:30:00"))
        );
    }

    #[test]
    fn a_time_format_must_read_back_to_the_minute() {
        for bad in [
            "%d.%m.%Y",
            "%H:%M",
            "%d.%m.%Y %H",
            "%Q",
            "%d.%m %H:%M",
            "%d.%m.%Y %I:%M",
        ] {
            assert!(TimeFormat::new(bad).is_err(), "{bad}");
        }
        for good in [
            "%d.%m.%Y %H:%M",
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%m/%d/%Y %I:%M %p",
            "%s",
        ] {
            assert!(
                TimeFormat::new(good).is_ok(),
                "{good}: {:?}",
                TimeFormat::new(good)
            );
        }
    }

    #[test]
    fn non_decimals_are_rejected() {
        for bad in [
            "", "-", ".", "abc", "1e3", "NaN", "inf", "1,000", "12.3.4", " 1", "$5", "1-",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn times_without_offset_are_wall_clock_time_in_the_source_zone() {
        let berlin = Some(chrono_tz::Europe::Berlin);
        let utc = |s: &str| parse_timestamp_in(s, None).expect(s);
        let at = |s: &str| parse_timestamp_in(s, berlin);
        // Summer (CEST, +2) and winter (CET, +1).
        assert_eq!(at("2024-07-01 12:00:00"), Ok(utc("2024-07-01 10:00:00")));
        assert_eq!(
            at("2024-01-15T12:00:00.5"),
            Ok(utc("2024-01-15 11:00:00.5"))
        );
        // An explicit offset or Z wins over the zone.
        assert_eq!(at("2024-07-01 12:00:00Z"), Ok(utc("2024-07-01 12:00:00")));
        assert_eq!(
            at("2024-07-01 12:00:00+05:00"),
            Ok(utc("2024-07-01 07:00:00"))
        );
        // 2024-03-31 02:00-03:00 does not exist in Berlin.
        assert_eq!(at("2024-03-31 02:30:00"), Err(TimeError::Nonexistent));
        assert_eq!(at("2024-03-31 03:00:00"), Ok(utc("2024-03-31 01:00:00")));
        // 2024-10-27 02:30 happens twice: the earlier one (still +2).
        assert_eq!(at("2024-10-27 02:30:00"), Ok(utc("2024-10-27 00:30:00")));
        assert_eq!(at("2024-10-27 2:30:00"), Err(TimeError::Invalid));
        assert_eq!(
            parse_timestamp_in("2024-03-31 02:30:00", None),
            Ok(utc("2024-03-31 02:30:00"))
        );
    }

    #[test]
    fn cents_format() {
        assert_eq!(format_cents(1250), "12.50");
        assert_eq!(format_cents(-5), "-0.05");
    }
}
