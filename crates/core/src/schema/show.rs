//! `shopstream schema list|show`: the registry printed for people (aligned
//! text) or scripts (JSON).

use serde::Serialize;

use super::registry::{canonical, Kind, LayoutSpec, Target, CURRENT};
use super::{LayoutRef, Registry};
use crate::event::Field;

/// Output format of `shopstream schema`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Serialize)]
struct LayoutJson {
    name: &'static str,
    kind: Kind,
    current: bool,
    introduced: &'static str,
    description: &'static str,
    /// The file that declared it (declared layouts).
    #[serde(skip_serializing_if = "Option::is_none")]
    declared_in: Option<&'static str>,
    columns: Vec<ColumnJson>,
    /// Canonical columns the layout lacks, and what they become.
    filled: Vec<FilledJson>,
    read: ReadJson,
    notes: &'static [&'static str],
}

#[derive(Serialize)]
struct ColumnJson {
    name: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    aliases: &'static [&'static str],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    optional: bool,
    maps_to: Vec<&'static str>,
    #[serde(rename = "type")]
    ty: &'static str,
    nullable: bool,
    default: Option<&'static str>,
    format: &'static str,
}

#[derive(Serialize)]
struct FilledJson {
    column: &'static str,
    value: &'static str,
}

/// How the layout's files are read.
#[derive(Serialize)]
struct ReadJson {
    delimiter: String,
    quote: String,
    decimal: &'static str,
    /// Empty: the standard forms.
    time_formats: Vec<&'static str>,
    /// `None`: --source-timezone.
    time_zone: Option<&'static str>,
    /// The columns a derived event id is made of (`None`: all of them).
    id_from: Option<&'static [&'static str]>,
    /// Constants for empty or missing values of canonical columns.
    defaults: std::collections::BTreeMap<&'static str, &'static str>,
}

fn maps_to(t: Target) -> Vec<&'static str> {
    match t {
        Target::Field(f) => vec![f.name()],
        Target::ProductIdAndName => vec![Field::ProductId.name(), Field::ProductName.name()],
        Target::Extra => vec!["extra"],
        Target::Drop => vec!["(dropped)"],
    }
}

/// The canonical columns a layout lacks and what a migrated row holds there.
fn filled(spec: &LayoutSpec) -> Vec<FilledJson> {
    Field::ALL
        .into_iter()
        .filter(|f| spec.column_for(*f).is_none())
        .map(|f| FilledJson {
            column: f.name(),
            value: spec
                .default_for(f)
                .or(canonical(f).default)
                .unwrap_or("NULL"),
        })
        .collect()
}

fn read_json(spec: &LayoutSpec) -> ReadJson {
    let r = &spec.read;
    ReadJson {
        delimiter: char::from(r.dialect.delimiter).to_string(),
        quote: char::from(r.dialect.quote).to_string(),
        decimal: if r.decimal_comma { "," } else { "." },
        time_formats: r.time_formats.iter().map(|f| f.text).collect(),
        time_zone: r.time_zone.map(|z| z.name()),
        id_from: r.id_from,
        defaults: r.defaults.iter().map(|(f, v)| (f.name(), *v)).collect(),
    }
}

fn to_json(id: LayoutRef) -> LayoutJson {
    let spec = id.spec();
    LayoutJson {
        name: id.as_str(),
        kind: spec.kind,
        current: id == CURRENT,
        introduced: spec.introduced,
        description: spec.description,
        declared_in: spec.declared_in,
        columns: spec
            .columns
            .iter()
            .map(|c| ColumnJson {
                name: c.name,
                aliases: c.aliases,
                optional: c.optional,
                maps_to: maps_to(c.target),
                ty: c.ty.as_str(),
                nullable: c.nullable,
                default: c.default,
                format: c.format,
            })
            .collect(),
        filled: filled(spec),
        read: read_json(spec),
        notes: spec.notes,
    }
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            l.push_str(cell);
            if i < last {
                l.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
    out
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Version => "version",
        Kind::Seed => "seed",
        Kind::Declared => "declared",
    }
}

/// `shopstream schema list`: every layout of `registry`.
pub fn list(registry: Registry, format: Format) -> String {
    if format == Format::Json {
        let all: Vec<LayoutJson> = registry.all().map(to_json).collect();
        return serde_json::to_string_pretty(&all).unwrap_or_default();
    }
    let rows: Vec<Vec<String>> = registry
        .all()
        .map(|id| {
            let spec = id.spec();
            let name = if id == CURRENT {
                format!("{id} (current)")
            } else {
                id.to_string()
            };
            vec![
                name,
                kind_name(spec.kind).to_string(),
                spec.declared_in.unwrap_or(spec.introduced).to_string(),
                spec.columns.len().to_string(),
                spec.description.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "LAYOUT",
            "KIND",
            "INTRODUCED/FILE",
            "COLUMNS",
            "DESCRIPTION",
        ],
        &rows,
    );
    out.push_str(
        "\nA file's layout is detected from its header row: the layout whose columns the header \
         names most completely wins.\nEvery row is migrated to the current version; `shopstream \
         schema show <LAYOUT>` shows how.\n",
    );
    out
}

/// `shopstream schema show <LAYOUT>`.
pub fn show(id: LayoutRef, format: Format) -> String {
    let j = to_json(id);
    if format == Format::Json {
        return serde_json::to_string_pretty(&j).unwrap_or_default();
    }
    let mut out = format!("{} — {}\n", j.name, j.description);
    let when = match j.declared_in {
        Some(file) => format!("declared in {file}"),
        None => format!("{} introduced {}", kind_name(j.kind), j.introduced),
    };
    out.push_str(&format!(
        "{when}{}\n",
        if j.current {
            ", the current version".to_string()
        } else {
            format!("; rows are migrated to {CURRENT}")
        }
    ));
    out.push_str(&read_text(&j.read));
    out.push('\n');
    let rows: Vec<Vec<String>> = j
        .columns
        .iter()
        .map(|c| {
            let mut name = c.name.to_string();
            for a in c.aliases {
                name.push_str(&format!(" | {a}"));
            }
            if c.optional {
                name.push_str(" (optional)");
            }
            vec![
                name,
                c.maps_to.join(" + "),
                c.ty.to_string(),
                if c.nullable { "yes" } else { "no" }.to_string(),
                c.format.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["COLUMN", "CANONICAL", "TYPE", "NULLABLE", "VALUES"],
        &rows,
    ));
    if !j.filled.is_empty() {
        out.push_str(&format!(
            "\nCanonical columns {} lacks, as migrated rows hold them:\n",
            j.name
        ));
        let rows: Vec<Vec<String>> = j
            .filled
            .iter()
            .map(|f| vec![format!("  {}", f.column), f.value.to_string()])
            .collect();
        for line in table(&["", ""], &rows).lines().skip(1) {
            out.push_str(line);
            out.push('\n');
        }
    }
    // event_id's default describes a missing column, not an empty value.
    let defaults: Vec<_> = j
        .columns
        .iter()
        .filter(|c| c.default.is_some() && c.maps_to != [Field::EventId.name()])
        .collect();
    if !defaults.is_empty() {
        out.push_str("\nDefaults when a value is empty:\n");
        for c in defaults {
            out.push_str(&format!(
                "  {}: {}\n",
                c.name,
                c.default.unwrap_or_default()
            ));
        }
    }
    if !j.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for n in j.notes {
            out.push_str(&format!("  - {n}\n"));
        }
    }
    out
}

/// The reading settings that differ from the standard ones, one line
/// each.
fn read_text(r: &ReadJson) -> String {
    let mut out = String::new();
    if r.delimiter != "," || r.quote != "\"" {
        let shown = |c: &str| match c {
            "\t" => "tab".to_string(),
            c => format!("'{c}'"),
        };
        out.push_str(&format!(
            "fields separated by {}, quoted with {}\n",
            shown(&r.delimiter),
            shown(&r.quote)
        ));
    }
    if r.decimal == "," {
        out.push_str("prices with a decimal comma (12,50)\n");
    }
    if !r.time_formats.is_empty() {
        out.push_str(&format!("times written {}\n", r.time_formats.join(" or ")));
    }
    if let Some(z) = r.time_zone {
        out.push_str(&format!("times without an offset are in {z}\n"));
    }
    for (column, value) in &r.defaults {
        out.push_str(&format!("{column} is {value:?} where empty or missing\n"));
    }
    if let Some(cols) = r.id_from {
        out.push_str(&format!(
            "without event_id, ids are derived from {}\n",
            cols.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LayoutId;

    #[test]
    fn list_names_every_layout_and_the_current_one() {
        let text = list(Registry::BUILT_IN, Format::Text);
        for id in LayoutId::ALL {
            assert!(text.contains(id.as_str()), "{id}");
        }
        assert!(text.contains("v3 (current)"));
        let json: serde_json::Value =
            serde_json::from_str(&list(Registry::BUILT_IN, Format::Json)).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(LayoutId::ALL.len()));
        assert_eq!(json[2]["name"], "v3");
        assert_eq!(json[2]["current"], true);
    }

    #[test]
    fn show_lists_columns_and_what_migration_fills() {
        let text = show(LayoutId::Seed002.into(), Format::Text);
        assert!(text.contains("product_id + product_name"), "{text}");
        assert!(text.contains("UUIDv5"), "{text}");
        assert!(text.contains("  price"), "{text}");
        let v1: serde_json::Value =
            serde_json::from_str(&show(LayoutId::V1.into(), Format::Json)).expect("json");
        assert_eq!(v1["introduced"], "2025-01-01");
        let filled: Vec<&str> = v1["filled"]
            .as_array()
            .expect("filled")
            .iter()
            .filter_map(|f| f["column"].as_str())
            .collect();
        assert_eq!(filled.len(), 12);
        assert!(filled.contains(&"quantity") && filled.contains(&"campaign_id"));
        assert!(v1["filled"][2]["value"].as_str().is_some());
    }
}
