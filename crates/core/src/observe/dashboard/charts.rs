//! Draws the dashboard's charts as SVG with `plotters`: line charts over
//! clock time and horizontal bar charts with their labels on the left, at
//! the width the page asks for, laid out so that no two labels meet.
//!
//! Every chart has a title and a note (units, what is left out) and scales
//! with its panel (`width="100%"` and a `viewBox`). Colours are role
//! colours ([`ROLES`]) that the page's stylesheet repaints from its light
//! or dark theme's CSS variables; nothing here knows the theme. It never
//! reads data or fails a page: a chart that cannot be drawn is left
//! incomplete.

use chrono::FixedOffset;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::scale::{TimeAxis, Unit, ValueAxis};

/// Chart height, pixels.
pub const HEIGHT: u32 = 260;
/// Narrowest and widest chart drawn; the page's panel width is clamped.
pub const MIN_WIDTH: u32 = 240;
pub const MAX_WIDTH: u32 = 2400;
/// Width when the page does not say (an older page, a script).
pub const DEFAULT_WIDTH: u32 = 520;

/// Text, tick labels and values.
pub const INK: RGBColor = RGBColor(0x1d, 0x23, 0x30);
/// Notes and axis lines.
pub const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x77);
/// Grid lines.
pub const GRID: RGBColor = RGBColor(0xdd, 0xe1, 0xe6);
/// Bars, lines and points.
pub const ACCENT: RGBColor = RGBColor(0x2f, 0x6f, 0xd0);
/// The role colours by CSS variable; `dashboard.html` maps each colour to
/// its variable (`[fill="#1D2330"] { fill: var(--ink) }`, a unit test
/// checks it), so both themes repaint the server-drawn charts.
pub const ROLES: [(&str, RGBColor); 4] = [
    ("--ink", INK),
    ("--muted", MUTED),
    ("--grid", GRID),
    ("--accent", ACCENT),
];

/// The colour as plotters writes it into the SVG: `#1D2330`.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// How the page wants its charts drawn.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// Pixels, the width of the page's chart panels.
    pub width: u32,
    /// The browser's time zone, for clock times.
    pub offset: FixedOffset,
}

const TITLE_PX: f64 = 14.0;
const NOTE_PX: f64 = 11.5;
const TICK_PX: f64 = 11.5;
const LABEL_PX: f64 = 12.0;
/// Height of the title and the note above a chart's plot.
const HEAD: u32 = 52;
/// Margin left and right.
const SIDE: u32 = 8;
/// Space between a label and its axis (two tick marks of 4 px).
const TICK: i32 = 4;

fn font(px: f64) -> FontDesc<'static> {
    // plotters writes font-size = size / 1.24.
    ("sans-serif", px * 1.24).into_font()
}

/// A generous estimate of `text`'s width in pixels at `px` (0.64 em a
/// character: wider than the average of common sans-serif fonts).
pub fn text_px(text: &str, px: f64) -> f64 {
    text.chars().count() as f64 * px * 0.64
}

/// `text`, cut with `…` to fit `max_px` at `px`.
pub fn fit(text: &str, max_px: f64, px: f64) -> String {
    if text_px(text, px) <= max_px {
        return text.to_string();
    }
    let keep = ((max_px / (px * 0.64)).floor() as usize).saturating_sub(1);
    let mut cut: String = text.chars().take(keep).collect();
    cut.push('…');
    cut
}

/// A line chart: `points` (Unix time, value) over [from, to].
pub struct Line<'a> {
    pub title: &'a str,
    pub note: &'a str,
    pub points: &'a [(f64, f64)],
    pub from: f64,
    pub to: f64,
    pub y: ValueAxis,
    pub unit: Unit,
}

/// One bar: its label, length and the text written at its end.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A linear axis over [from, to] with the ticks we chose (plotters'
/// `WithKeyPoints` over `f64` takes no label formatter).
struct Ticked {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

fn ticked(from: f64, to: f64, ticks: Vec<f64>) -> Ticked {
    Ticked {
        range: (from..to).into(),
        ticks,
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold lines and labels only: no light lines.
        if hint.weight().allow_light_points() {
            vec![]
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.range()
    }
}

/// The line chart as SVG.
pub fn line(frame: Frame, spec: &Line<'_>) -> String {
    let mut svg = String::new();
    let _ = draw_line(&mut svg, frame, spec);
    responsive(&svg, frame.width, spec.title)
}

/// The bar chart as SVG: one horizontal bar per entry, biggest first as
/// given, labels left of the bars (cut with `…` past 42 % of the width,
/// the full label in a tooltip).
pub fn bars(frame: Frame, title: &str, note: &str, bars: &[Bar]) -> String {
    let mut svg = String::new();
    let cap = f64::from(frame.width) * 0.42;
    let labels: Vec<String> = bars.iter().map(|b| fit(&b.label, cap, LABEL_PX)).collect();
    let _ = draw_bars(&mut svg, frame, title, note, bars, &labels);
    let mut svg = responsive(&svg, frame.width, title);
    for (short, bar) in labels.iter().zip(bars) {
        if *short != bar.label {
            svg = with_tooltip(&svg, short, &bar.label);
        }
    }
    svg
}

/// The title and the note, left-aligned, cut to the width.
fn head(root: &DrawingArea<SVGBackend<'_>, Shift>, width: u32, title: &str, note: &str) -> Drawn {
    let room = f64::from(width - 2 * SIDE);
    let top = Pos::new(HPos::Left, VPos::Top);
    root.draw(&Text::new(
        fit(title, room, TITLE_PX),
        (SIDE as i32, 6),
        font(TITLE_PX).style(FontStyle::Bold).color(&INK).pos(top),
    ))?;
    root.draw(&Text::new(
        fit(note, room, NOTE_PX),
        (SIDE as i32, 27),
        font(NOTE_PX).color(&MUTED).pos(top),
    ))?;
    Ok(())
}

fn draw_line(svg: &mut String, f: Frame, s: &Line<'_>) -> Drawn {
    let root = SVGBackend::with_string(svg, (f.width, HEIGHT)).into_drawing_area();
    head(&root, f.width, s.title, s.note)?;
    let y_ticks = s.y.ticks();
    let widest = y_ticks
        .iter()
        .map(|&v| text_px(&s.unit.tick(v), TICK_PX))
        .fold(0.0, f64::max);
    let y_area = (widest + f64::from(2 * TICK) + 4.0).ceil() as u32;
    // The rightmost time label may sit on the right edge: half of it.
    let right = SIDE + (text_px("00:00:00", TICK_PX) / 2.0).ceil() as u32;
    let plot_w = f64::from(f.width.saturating_sub(SIDE + y_area + right).max(40));
    let time = TimeAxis::new(s.from, s.to, f.offset, |chars| {
        (plot_w / (chars as f64 * TICK_PX * 0.64 + 16.0)).floor() as usize
    });
    let mut chart = ChartBuilder::on(&root)
        .margin_top(HEAD)
        .margin_left(SIDE)
        .margin_right(right)
        .margin_bottom(4)
        .x_label_area_size(26)
        .y_label_area_size(y_area)
        .build_cartesian_2d(
            ticked(s.from, s.to, time.ticks()),
            ticked(0.0, s.y.upper, y_ticks),
        )?;
    let x_label = |t: &f64| time.label(*t);
    let y_label = |v: &f64| s.unit.tick(*v);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .axis_style(MUTED)
        .set_all_tick_mark_size(TICK)
        .label_style(font(TICK_PX).color(&INK))
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .draw()?;
    chart.draw_series(LineSeries::new(
        s.points.iter().copied(),
        ACCENT.stroke_width(2),
    ))?;
    if s.points.len() <= 30 {
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 2, ACCENT.filled())))?;
    }
    if s.points.is_empty() {
        let middle = ((s.from + s.to) / 2.0, s.y.upper / 2.0);
        chart.draw_series(std::iter::once(no_data(middle)))?;
    }
    root.present()?;
    Ok(())
}

fn no_data<C>(at: C) -> Text<'static, C, &'static str> {
    let style = font(LABEL_PX)
        .color(&MUTED)
        .pos(Pos::new(HPos::Center, VPos::Center));
    Text::new("no data yet", at, style)
}

fn draw_bars(
    svg: &mut String,
    f: Frame,
    title: &str,
    note: &str,
    bars: &[Bar],
    labels: &[String],
) -> Drawn {
    let root = SVGBackend::with_string(svg, (f.width, HEIGHT)).into_drawing_area();
    head(&root, f.width, title, note)?;
    let n = bars.len().max(1);
    // At least six rows, so that a few bars stay bars, not blocks.
    let rows = n.max(6);
    let widest = |texts: &mut dyn Iterator<Item = &String>| {
        texts.map(|t| text_px(t, LABEL_PX)).fold(0.0, f64::max)
    };
    let label_area = (widest(&mut labels.iter()) + f64::from(2 * TICK) + 4.0).ceil() as u32;
    let value_px = widest(&mut bars.iter().map(|b| &b.text)) + 8.0;
    let plot_w = f64::from(f.width.saturating_sub(2 * SIDE + label_area).max(40));
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    // Room on the right for the longest bar's value.
    let x_upper = max * plot_w / (plot_w - value_px).max(plot_w * 0.3);
    let centers: Vec<f64> = (rows - n..rows).map(|r| r as f64 + 0.5).collect();
    let mut chart = ChartBuilder::on(&root)
        .margin_top(HEAD)
        .margin_left(SIDE)
        .margin_right(SIDE)
        .margin_bottom(8)
        .y_label_area_size(label_area)
        .build_cartesian_2d(0.0..x_upper, ticked(0.0, rows as f64, centers))?;
    // Row r from the bottom holds bar rows - 1 - r: the first bar on top.
    let row_of = |i: usize| (rows - 1 - i) as f64;
    let y_label = |y: &f64| {
        let row = (y.floor().max(0.0) as usize).min(rows - 1);
        labels.get(rows - 1 - row).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .axis_style(TRANSPARENT)
        .set_all_tick_mark_size(TICK)
        .label_style(font(LABEL_PX).color(&INK))
        .y_label_formatter(&y_label)
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let r = row_of(i);
        Rectangle::new([(0.0, r + 0.2), (b.value, r + 0.8)], ACCENT.filled())
    }))?;
    let value_style = font(LABEL_PX)
        .color(&INK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        EmptyElement::at((b.value, row_of(i) + 0.5))
            + Text::new(b.text.clone(), (4, 0), value_style.clone())
    }))?;
    if bars.is_empty() {
        chart.draw_series(std::iter::once(no_data((x_upper / 2.0, rows as f64 / 2.0))))?;
    }
    root.present()?;
    Ok(())
}

/// The SVG sized by its panel: `width="100%"` and the drawing's
/// `viewBox`, so it fills the panel and keeps its proportions between
/// redraws at a new width.
fn responsive(svg: &str, width: u32, title: &str) -> String {
    let fixed = format!("<svg width=\"{width}\" height=\"{HEIGHT}\" ");
    let fluid = format!(
        "<svg width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-label=\"{}\" ",
        escape(title)
    );
    svg.replacen(&fixed, &fluid, 1)
}

/// The label `short` (as drawn) with `full` as its tooltip.
fn with_tooltip(svg: &str, short: &str, full: &str) -> String {
    let drawn = format!("\n{}\n</text>", escape(short));
    let titled = format!(
        "\n{}<title>{}</title>\n</text>",
        escape(short),
        escape(full)
    );
    svg.replacen(&drawn, &titled, 1)
}

/// Text for an SVG attribute or element, escaped as plotters does.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::dashboard::scale::ValueAxis;

    fn frame(width: u32) -> Frame {
        Frame {
            width,
            offset: FixedOffset::east_opt(0).expect("UTC"),
        }
    }

    #[test]
    fn charts_fill_their_panel_at_any_width() {
        for width in [300, 1400] {
            let svg = line(
                frame(width),
                &Line {
                    title: "t",
                    note: "n",
                    points: &[(100.0, 1.0)],
                    from: 0.0,
                    to: 600.0,
                    y: ValueAxis::for_max(1.0, 1.0, 5),
                    unit: Unit::PerSecond,
                },
            );
            assert!(
                svg.starts_with("<svg width=\"100%\" preserveAspectRatio"),
                "{svg}"
            );
            assert!(
                svg.contains(&format!("viewBox=\"0 0 {width} {HEIGHT}\"")),
                "{svg}"
            );
            let bar = Bar {
                label: "x".into(),
                value: 1.0,
                text: "1".into(),
            };
            let svg = bars(frame(width), "t", "n", &[bar]);
            assert!(svg.starts_with("<svg width=\"100%\""), "{svg}");
        }
    }

    #[test]
    fn a_label_too_long_for_the_width_is_cut_and_keeps_its_full_name() {
        let long = "a_category_name_that_goes_on_and_on_and_on";
        let b = Bar {
            label: long.into(),
            value: 3.0,
            text: "3".into(),
        };
        let svg = bars(frame(300), "t", "n", &[b]);
        assert!(svg.contains(&format!("<title>{long}</title>")), "{svg}");
        assert!(!svg.contains(&format!("\n{long}\n")), "{svg}");
        assert_eq!(fit("short", 100.0, 12.0), "short");
        assert!(fit(long, 100.0, 12.0).ends_with('…'));
        assert!(text_px(&fit(long, 100.0, 12.0), 12.0) <= 100.0);
    }

    #[test]
    fn the_page_repaints_every_role_colour_from_its_theme() {
        let page = include_str!("../dashboard.html");
        for (var, colour) in ROLES {
            let c = hex(colour);
            for attr in ["fill", "stroke"] {
                let rule = format!("[{attr}=\"{c}\"] {{ {attr}: var({var}); }}");
                assert!(page.contains(&rule), "{rule} in dashboard.html");
            }
            assert!(page.contains(&format!("{var}:")), "{var} defined");
        }
        assert!(page.contains("prefers-color-scheme: dark"));
    }
}
