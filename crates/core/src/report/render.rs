//! Fetched sections → text: aligned tables for people, JSON or CSV for
//! scripts. Pure functions, no I/O.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::sections::{Column, Kind};
use super::{ReportError, SectionRows, Value};

/// Output format of `shopstream report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A titled, aligned table per section (money with 2 decimals, rates as
    /// percentages, durations as h:mm:ss under a header that says so).
    #[default]
    Table,
    /// One object: {"<section>": [{"<column>": value, …}, …], …}. Numbers
    /// are JSON numbers, rates fractions (0.125), durations seconds
    /// (duration_seconds), NULL is null.
    Json,
    /// Per section a line `# <section>`, then a CSV header and rows, values
    /// as in JSON (NULL is empty).
    Csv,
}

/// Renders the fetched sections in `format`.
pub fn render(sections: &[SectionRows], format: Format) -> Result<String, ReportError> {
    match format {
        Format::Table => Ok(tables(sections)),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&JsonReport(sections))?;
            s.push('\n');
            Ok(s)
        }
        Format::Csv => csv(sections),
    }
}

/// A value as shown in a table cell.
pub fn cell(value: &Value, kind: Kind) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::Int(i) => i.to_string(),
        Value::Num(x) => match kind {
            Kind::Rate => format!("{:.2}%", x * 100.0),
            Kind::Seconds => duration(*x),
            _ => format!("{x:.2}"),
        },
        Value::Text(t) => t.clone(),
        Value::Json(serde_json::Value::Object(map)) if map.is_empty() => "-".to_string(),
        Value::Json(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        Value::Json(j) => j.to_string(),
    }
}

/// Whole seconds as `H:MM:SS` (`0:05:03`, `26:00:00`).
pub fn duration(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    format!(
        "{}:{:02}:{:02}",
        total / 3600,
        (total % 3600) / 60,
        total % 60
    )
}

/// A value as written in CSV: like JSON, NULL as an empty field.
fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Num(x) => x.to_string(),
        Value::Text(t) => t.clone(),
        Value::Json(j) => j.to_string(),
    }
}

/// Columns separated by two spaces, a dashed line under the header; numeric
/// columns right-aligned, the others left-aligned.
pub fn aligned(columns: &[Column], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns
        .iter()
        .map(|c| c.table_header().chars().count())
        .collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, col)) in cells.zip(columns).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if col.kind.is_numeric() {
                l.push_str(&pad);
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&pad);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut columns.iter().map(Column::table_header));
    let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut dashes.iter().map(String::as_str));
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn tables(sections: &[SectionRows]) -> String {
    let mut out = String::new();
    for (i, s) in sections.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{} [{}]\n", s.section.title(), s.section.view()));
        if s.rows.is_empty() {
            out.push_str("(no rows)\n");
            continue;
        }
        let columns = s.section.columns();
        let cells: Vec<Vec<String>> = s
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(columns)
                    .map(|(v, c)| cell(v, c.kind))
                    .collect()
            })
            .collect();
        out.push_str(&aligned(columns, &cells));
    }
    out
}

fn csv(sections: &[SectionRows]) -> Result<String, ReportError> {
    let mut out = Vec::new();
    for s in sections {
        out.extend_from_slice(format!("# {}\n", s.section.key()).as_bytes());
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(s.section.columns().iter().map(|c| c.name))?;
        for row in &s.rows {
            w.write_record(row.iter().map(plain))?;
        }
        out.extend(
            w.into_inner()
                .map_err(|e| ReportError::Csv(e.into_error().into()))?,
        );
    }
    // Every field was a String, so the bytes are UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

struct JsonReport<'a>(&'a [SectionRows]);
struct JsonRows<'a>(&'a SectionRows);
struct JsonRow<'a>(&'a [Column], &'a [Value]);

impl Serialize for JsonReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for section in self.0 {
            map.serialize_entry(section.section.key(), &JsonRows(section))?;
        }
        map.end()
    }
}

impl Serialize for JsonRows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let columns = self.0.section.columns();
        let mut seq = s.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            seq.serialize_element(&JsonRow(columns, row))?;
        }
        seq.end()
    }
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (c, v) in self.0.iter().zip(self.1) {
            map.serialize_entry(c.name, v)?;
        }
        map.end()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Num(x) => s.serialize_f64(*x),
            Value::Text(t) => s.serialize_str(t),
            Value::Json(j) => j.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Section;

    fn sample() -> Vec<SectionRows> {
        vec![
            SectionRows {
                section: Section::Categories,
                rows: vec![vec![
                    Value::Text("electronics".into()),
                    Value::Int(12),
                    Value::Int(8),
                    Value::Int(3),
                    Value::Int(1),
                    Value::Num(1234.5),
                    Value::Num(99.999),
                    Value::Num(0.125),
                ]],
            },
            SectionRows {
                section: Section::DeadLetters,
                rows: vec![],
            },
        ]
    }

    #[test]
    fn cells_show_money_rates_durations_and_nulls() {
        assert_eq!(cell(&Value::Num(12.5), Kind::Money), "12.50");
        assert_eq!(cell(&Value::Num(0.125), Kind::Rate), "12.50%");
        assert_eq!(cell(&Value::Num(1.0), Kind::Rate), "100.00%");
        assert_eq!(cell(&Value::Null, Kind::Rate), "-");
        assert_eq!(cell(&Value::Num(303.4), Kind::Seconds), "0:05:03");
        assert_eq!(duration(93_600.0), "26:00:00");
        let codes = serde_json::json!({"invalid_price": 1, "missing_user": 2});
        assert_eq!(
            cell(&Value::Json(codes), Kind::Json),
            "invalid_price=1 missing_user=2"
        );
        assert_eq!(cell(&Value::Json(serde_json::json!({})), Kind::Json), "-");
    }

    #[test]
    fn tables_align_numbers_right_and_say_no_rows() {
        let text = render(&sample(), Format::Table).expect("table");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Category performance, by revenue [v_category_performance]"
        );
        assert!(lines[1].starts_with("category     events  views"), "{text}");
        assert!(lines[2].starts_with("-----------  ------"), "{text}");
        assert!(lines[3].starts_with("electronics      12      8"), "{text}");
        assert!(
            lines[3].ends_with("1234.50     100.00                 12.50%"),
            "{text}"
        );
        // Every line of the table is as wide as its header.
        assert_eq!(lines[1].len(), lines[3].len(), "{text}");
        assert_eq!(lines[4], "");
        assert_eq!(
            lines[5],
            "Dead letters by rule code [v_dead_letters_by_code]"
        );
        assert_eq!(lines[6], "(no rows)");
    }

    #[test]
    fn json_keeps_section_and_column_order() {
        let text = render(&sample(), Format::Json).expect("json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(v["categories"][0]["revenue"], 1234.5);
        assert_eq!(v["categories"][0]["view_to_purchase_rate"], 0.125);
        assert_eq!(v["dead_letters"], serde_json::json!([]));
        assert!(text.find("\"categories\"") < text.find("\"dead_letters\""));
        assert!(text.find("\"events\"") < text.find("\"avg_price\""));
    }

    #[test]
    fn csv_has_a_marker_header_and_rows_per_section() {
        let text = render(&sample(), Format::Csv).expect("csv");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# categories");
        assert_eq!(
            lines[1],
            "category,events,views,add_to_carts,purchases,revenue,avg_price,view_to_purchase_rate"
        );
        assert_eq!(lines[2], "electronics,12,8,3,1,1234.5,99.999,0.125");
        assert_eq!(lines[3], "# dead_letters");
        assert_eq!(
            lines[4],
            "error_code,dead_letters,files,first_seen,last_seen"
        );
        assert_eq!(lines.len(), 5);
    }
}
