//! The numbers behind the dashboard's axes and series: whole-number value
//! ticks with thousands separators and units, clock-time ticks in a fixed
//! UTC offset, the complete 10-second buckets of the events/s chart and the
//! lag chart's window and range.
//!
//! Pure arithmetic and formatting: it never draws, reads or writes
//! anything, and never looks at a clock (`now` is always given).

use chrono::{DateTime, FixedOffset};
use indicatif::HumanCount;

/// Width of one events/s bucket, seconds.
pub const BUCKET_SECS: i64 = 10;
/// The events/s chart shows this many seconds up to now.
pub const RATE_WINDOW_SECS: i64 = 600;
/// The lag chart shows this many seconds up to now.
pub const LAG_WINDOW_SECS: f64 = 300.0;
/// The lag axis reaches at least this far (seconds), so that no lag at all
/// still reads as a sensible 0–1 s axis.
pub const LAG_MIN_UPPER_SECS: f64 = 1.0;

/// The unit a value axis is read in; each tick label carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    PerSecond,
    Percent,
    Seconds,
}

impl Unit {
    /// A tick label: the value as a whole number with thousands separators
    /// and the unit (`2,000/s`, `90%`, `1,200 s`).
    pub fn tick(self, v: f64) -> String {
        let n = whole(v);
        match self {
            Unit::PerSecond => format!("{n}/s"),
            Unit::Percent => format!("{n}%"),
            Unit::Seconds => format!("{n} s"),
        }
    }
}

/// `v` rounded to a whole number, with thousands separators: `1,234,567`.
pub fn whole(v: f64) -> String {
    let r = v.round();
    let sign = if r < 0.0 { "-" } else { "" };
    // `as` saturates (and makes NaN 0): a label never panics.
    format!("{sign}{}", HumanCount(r.abs() as u64))
}

/// `v` with two decimals and thousands separators: `1,012.25` (money).
pub fn money(v: f64) -> String {
    let cents = (v * 100.0).round();
    let sign = if cents < 0.0 { "-" } else { "" };
    let c = cents.abs() as u64;
    format!("{sign}{}.{:02}", HumanCount(c / 100), c % 100)
}

/// A value axis from 0 up to `upper`, with a tick every `step`; both are
/// whole numbers, so every tick label is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueAxis {
    pub upper: f64,
    pub step: f64,
}

impl ValueAxis {
    /// The axis for values up to `max`: it reaches at least `min_upper`
    /// (and 1), has at most `max_ticks` steps above 0, and steps of 1, 2 or
    /// 5 × 10^k.
    pub fn for_max(max: f64, min_upper: f64, max_ticks: usize) -> ValueAxis {
        let top = if max.is_finite() { max } else { 0.0 }
            .max(min_upper)
            .max(1.0);
        let max_ticks = max_ticks.max(1) as f64;
        let mut decade = 1.0_f64;
        while decade.is_finite() {
            for m in [1.0, 2.0, 5.0] {
                let step = decade * m;
                let n = (top / step).ceil();
                if n <= max_ticks {
                    return ValueAxis {
                        upper: n * step,
                        step,
                    };
                }
            }
            decade *= 10.0;
        }
        ValueAxis {
            upper: top,
            step: top,
        }
    }

    /// A fixed axis (0–100 % for validity).
    pub fn fixed(upper: f64, step: f64) -> ValueAxis {
        ValueAxis { upper, step }
    }

    /// 0, step, 2 × step, …, upper.
    pub fn ticks(&self) -> Vec<f64> {
        let n = (self.upper / self.step).round() as u64;
        (0..=n).map(|i| i as f64 * self.step).collect()
    }
}

/// Tick steps of a time axis, seconds: round clock times.
const TIME_STEPS: [i64; 20] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172_800, 604_800,
];

/// A clock-time axis from `from` to `to` (Unix seconds), its ticks on round
/// times of the clock in `offset` (the browser's time zone).
#[derive(Debug, Clone, Copy)]
pub struct TimeAxis {
    pub from: f64,
    pub to: f64,
    /// Seconds between ticks.
    pub step: i64,
    pub offset: FixedOffset,
}

impl TimeAxis {
    /// The axis with the finest step whose ticks number at most
    /// `max_ticks(characters of one label)`: the caller knows how many
    /// labels of that length fit its width.
    pub fn new(
        from: f64,
        to: f64,
        offset: FixedOffset,
        max_ticks: impl Fn(usize) -> usize,
    ) -> TimeAxis {
        let week = TIME_STEPS[TIME_STEPS.len() - 1];
        // Past a week, whole weeks doubling: any span gets few ticks.
        let steps = TIME_STEPS.into_iter().chain((1..40).map(|k| week << k));
        let mut axis = TimeAxis {
            from,
            to,
            step: week,
            offset,
        };
        for step in steps {
            axis.step = step;
            if axis.ticks().len() <= max_ticks(axis.label_chars()) {
                break;
            }
        }
        axis
    }

    /// The ticks: every time in [from, to] that is a multiple of the step
    /// on the local clock.
    pub fn ticks(&self) -> Vec<f64> {
        let off = i64::from(self.offset.local_minus_utc());
        let step = self.step as f64;
        let first = ((self.from + off as f64) / step).ceil() * step - off as f64;
        let mut out = vec![];
        let mut t = first;
        while t <= self.to && out.len() < 1000 {
            out.push(t);
            t += step;
        }
        out
    }

    fn pattern(&self) -> &'static str {
        if self.step < 60 {
            "%H:%M:%S"
        } else if self.step < 86400 {
            "%H:%M"
        } else {
            "%b %d"
        }
    }

    /// Characters in one label.
    pub fn label_chars(&self) -> usize {
        match self.pattern() {
            "%H:%M:%S" => 8,
            "%H:%M" => 5,
            _ => 6,
        }
    }

    /// The label of time `t`: `HH:MM:SS`, `HH:MM` or `Jan 05` by step.
    pub fn label(&self, t: f64) -> String {
        DateTime::from_timestamp(t.round() as i64, 0)
            .map(|d| {
                d.with_timezone(&self.offset)
                    .format(self.pattern())
                    .to_string()
            })
            .unwrap_or_default()
    }
}

/// The time zone as the page names it: `UTC+02:00`.
pub fn zone(offset: FixedOffset) -> String {
    format!("UTC{offset}")
}

/// The events/s series from 10-second bucket sums `(bucket index, rows
/// read)` (a bucket index is its start / 10): one point per bucket that
/// is complete at `now` and starts in the last [`RATE_WINDOW_SECS`], at
/// the bucket's end time, its value rows per second (0 for a bucket
/// without batches). The bucket still filling is left out: drawn, it would
/// always dip.
pub fn complete_buckets(sums: &[(i64, i64)], now: f64) -> Vec<(f64, f64)> {
    let filling = (now / BUCKET_SECS as f64).floor() as i64;
    let first = filling - RATE_WINDOW_SECS / BUCKET_SECS;
    (first..filling)
        .map(|b| {
            let rows: i64 = sums.iter().filter(|s| s.0 == b).map(|s| s.1).sum();
            (
                ((b + 1) * BUCKET_SECS) as f64,
                rows as f64 / BUCKET_SECS as f64,
            )
        })
        .collect()
}

/// The lag samples `(unix time, seconds)` to draw at `now`: those of the
/// last [`LAG_WINDOW_SECS`], never negative (a file stamped in the future
/// has waited 0 s).
pub fn lag_series(samples: &[(f64, f64)], now: f64) -> Vec<(f64, f64)> {
    samples
        .iter()
        .filter(|s| s.0 >= now - LAG_WINDOW_SECS && s.0 <= now)
        .map(|&(t, v)| (t, if v.is_finite() { v.max(0.0) } else { 0.0 }))
        .collect()
}

/// The lag chart's value axis: from 0 s, at least
/// [`LAG_MIN_UPPER_SECS`], whole seconds.
pub fn lag_axis(series: &[(f64, f64)], max_ticks: usize) -> ValueAxis {
    let max = series.iter().map(|s| s.1).fold(0.0, f64::max);
    ValueAxis::for_max(max, LAG_MIN_UPPER_SECS, max_ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_whole_numbers_with_thousands_separators_and_units() {
        // The old axes read `2000.0` and `452942.09`.
        assert_eq!(Unit::PerSecond.tick(2000.0), "2,000/s");
        assert_eq!(Unit::PerSecond.tick(452_942.09), "452,942/s");
        assert_eq!(Unit::Percent.tick(75.0), "75%");
        assert_eq!(Unit::Seconds.tick(1200.0), "1,200 s");
        assert_eq!(Unit::Seconds.tick(0.0), "0 s");
        assert_eq!(whole(1_234_567.4), "1,234,567");
        assert_eq!(whole(999.5), "1,000");
        assert_eq!(whole(-0.2), "0");
        assert_eq!(whole(-1500.0), "-1,500");
        assert_eq!(whole(f64::NAN), "0");
        assert_eq!(money(452_942.09), "452,942.09");
        assert_eq!(money(1012.25), "1,012.25");
        assert_eq!(money(30.0), "30.00");
        assert_eq!(money(0.005), "0.01");
    }

    #[test]
    fn value_axes_step_in_whole_numbers_and_cover_the_maximum() {
        for (max, min_upper, ticks) in [
            (0.0, 1.0, 5),
            (0.3, 1.0, 5),
            (7.0, 1.0, 5),
            (2000.0, 1.0, 5),
            (452_942.09, 1.0, 4),
            (1e12, 1.0, 6),
            (f64::NAN, 1.0, 5),
        ] {
            let a = ValueAxis::for_max(max, min_upper, ticks);
            assert!(a.step >= 1.0 && a.step.fract() == 0.0, "{a:?}");
            assert!(a.upper.fract() == 0.0, "{a:?}");
            assert!(a.upper >= min_upper, "{a:?}");
            if max.is_finite() {
                assert!(a.upper >= max, "{max}: {a:?}");
            }
            let t = a.ticks();
            assert!(t.len() <= ticks + 1, "{max}: {t:?}");
            assert_eq!(t[0], 0.0);
            assert_eq!(t.last().copied(), Some(a.upper));
        }
        assert_eq!(
            ValueAxis::for_max(2000.0, 1.0, 5),
            ValueAxis {
                upper: 2000.0,
                step: 500.0
            }
        );
        assert_eq!(
            ValueAxis::for_max(0.0, 1.0, 5),
            ValueAxis {
                upper: 1.0,
                step: 1.0
            }
        );
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).expect("UTC")
    }

    #[test]
    fn time_ticks_are_round_clock_times_that_fit() {
        // 2026-01-01 10:00:00 UTC.
        let t0 = 1_767_261_600.0;
        let now = t0 + 605.0;
        // Room for 6 labels: every 2 minutes, HH:MM.
        let a = TimeAxis::new(now - 600.0, now, utc(), |_| 6);
        assert_eq!(a.step, 120);
        let labels: Vec<String> = a.ticks().iter().map(|&t| a.label(t)).collect();
        assert_eq!(labels, ["10:02", "10:04", "10:06", "10:08", "10:10"]);
        // Room for many: every minute; finer than a minute shows seconds.
        let a = TimeAxis::new(now - 600.0, now, utc(), |_| 10);
        assert_eq!(a.step, 60);
        let a = TimeAxis::new(now - 60.0, now, utc(), |_| 6);
        assert_eq!(a.step, 10);
        assert_eq!(a.label(t0 + 10.0), "10:00:10");
        assert_eq!(a.label_chars(), 8);
        // In the browser's time zone, on its round hours.
        let plus_one = FixedOffset::east_opt(3600).expect("UTC+1");
        let a = TimeAxis::new(t0 - 3.0 * 3600.0, t0, plus_one, |_| 4);
        assert_eq!(a.step, 3600);
        assert_eq!(a.label(a.ticks()[0]), "08:00");
        assert_eq!(zone(plus_one), "UTC+01:00");
        // Over days, dates.
        let a = TimeAxis::new(t0 - 6.0 * 86400.0, t0, utc(), |_| 4);
        assert_eq!(a.label(t0), "Jan 01");
        // Batches a year apart on a narrow chart: still only what fits.
        let a = TimeAxis::new(t0 - 365.0 * 86400.0, t0, utc(), |_| 3);
        assert!((1..=3).contains(&a.ticks().len()), "{a:?}");
    }

    #[test]
    fn the_bucket_still_filling_is_not_drawn() {
        // now = 1005: bucket 100 ([1000, 1010)) is still filling; before
        // this rule it was drawn at a fraction of its rate and always
        // dipped.
        let now = 1005.0;
        let sums = [(97, 100), (99, 200), (100, 30)];
        let points = complete_buckets(&sums, now);
        assert_eq!(points.len(), 60, "ten minutes of complete buckets");
        assert_eq!(points.last(), Some(&(1000.0, 20.0)), "bucket 99 is last");
        assert!(points.iter().all(|p| p.0 <= now));
        assert!(points.contains(&(980.0, 10.0)), "{points:?}");
        // A bucket without batches is 0, not left out.
        assert!(points.contains(&(990.0, 0.0)), "{points:?}");
        assert_eq!(points[0].0, 410.0);
        // Exactly on a boundary the bucket that just closed is complete.
        let points = complete_buckets(&sums, 1010.0);
        assert_eq!(points.last(), Some(&(1010.0, 3.0)));
    }

    #[test]
    fn the_lag_chart_covers_the_last_minutes_from_zero() {
        let now = 10_000.0;
        let samples = [
            (now - 400.0, 50.0),
            (now - 100.0, -3.0),
            (now - 2.0, 0.4),
            (now, 0.0),
        ];
        let series = lag_series(&samples, now);
        // The old chart ran its axis from -1.0 to 0 s with one sample and
        // drew negative lags.
        assert_eq!(
            series,
            [(now - 100.0, 0.0), (now - 2.0, 0.4), (now, 0.0)],
            "the last five minutes, never negative"
        );
        let axis = lag_axis(&series, 5);
        assert_eq!(
            axis,
            ValueAxis {
                upper: 1.0,
                step: 1.0
            }
        );
        let labels: Vec<String> = axis
            .ticks()
            .iter()
            .map(|&v| Unit::Seconds.tick(v))
            .collect();
        assert_eq!(labels, ["0 s", "1 s"]);
        let axis = lag_axis(&[(now, 95.0)], 5);
        assert_eq!(
            axis,
            ValueAxis {
                upper: 100.0,
                step: 20.0
            }
        );
    }
}
