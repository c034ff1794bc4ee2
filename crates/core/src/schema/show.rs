//! `shopstream schema list|show`: the registry printed for people (aligned
//! text) or scripts (JSON).

use serde::Serialize;

use super::registry::{canonical, LayoutSpec, Target, CURRENT};
use super::LayoutId;
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
    kind: &'static str,
    current: bool,
    introduced: &'static str,
    description: &'static str,
    columns: Vec<ColumnJson>,
    /// Canonical columns the layout lacks, and what they become.
    filled: Vec<FilledJson>,
    notes: &'static [&'static str],
}

#[derive(Serialize)]
struct ColumnJson {
    name: &'static str,
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

fn kind(id: LayoutId) -> &'static str {
    if id.is_version() {
        "version"
    } else {
        "seed"
    }
}

fn maps_to(t: Target) -> Vec<&'static str> {
    match t {
        Target::Field(f) => vec![f.name()],
        Target::ProductIdAndName => vec![Field::ProductId.name(), Field::ProductName.name()],
        Target::Extra => vec!["extra"],
    }
}

/// The canonical columns a layout lacks and what a migrated row holds there.
fn filled(spec: &LayoutSpec) -> Vec<FilledJson> {
    Field::ALL
        .into_iter()
        .filter(|f| spec.column_for(*f).is_none())
        .map(|f| FilledJson {
            column: f.name(),
            value: canonical(f).default.unwrap_or("NULL"),
        })
        .collect()
}

fn to_json(id: LayoutId) -> LayoutJson {
    let spec = id.spec();
    LayoutJson {
        name: id.as_str(),
        kind: kind(id),
        current: id == CURRENT,
        introduced: spec.introduced,
        description: spec.description,
        columns: spec
            .columns
            .iter()
            .map(|c| ColumnJson {
                name: c.name,
                maps_to: maps_to(c.target),
                ty: c.ty.as_str(),
                nullable: c.nullable,
                default: c.default,
                format: c.format,
            })
            .collect(),
        filled: filled(spec),
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

/// `shopstream schema list`.
pub fn list(format: Format) -> String {
    if format == Format::Json {
        let all: Vec<LayoutJson> = LayoutId::ALL.into_iter().map(to_json).collect();
        return serde_json::to_string_pretty(&all).unwrap_or_default();
    }
    let rows: Vec<Vec<String>> = LayoutId::ALL
        .into_iter()
        .map(|id| {
            let spec = id.spec();
            let name = if id == CURRENT {
                format!("{id} (current)")
            } else {
                id.to_string()
            };
            vec![
                name,
                kind(id).to_string(),
                spec.introduced.to_string(),
                spec.columns.len().to_string(),
                spec.description.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &["LAYOUT", "KIND", "INTRODUCED", "COLUMNS", "DESCRIPTION"],
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
pub fn show(id: LayoutId, format: Format) -> String {
    let j = to_json(id);
    if format == Format::Json {
        return serde_json::to_string_pretty(&j).unwrap_or_default();
    }
    let mut out = format!("{} — {}\n", j.name, j.description);
    out.push_str(&format!(
        "{} introduced {}{}\n\n",
        j.kind,
        j.introduced,
        if j.current {
            ", the current version".to_string()
        } else {
            format!("; rows are migrated to {CURRENT}")
        }
    ));
    let rows: Vec<Vec<String>> = j
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_every_layout_and_the_current_one() {
        let text = list(Format::Text);
        for id in LayoutId::ALL {
            assert!(text.contains(id.as_str()), "{id}");
        }
        assert!(text.contains("v3 (current)"));
        let json: serde_json::Value = serde_json::from_str(&list(Format::Json)).expect("json");
        assert_eq!(json.as_array().map(Vec::len), Some(LayoutId::ALL.len()));
        assert_eq!(json[2]["name"], "v3");
        assert_eq!(json[2]["current"], true);
    }

    #[test]
    fn show_lists_columns_and_what_migration_fills() {
        let text = show(LayoutId::Seed002, Format::Text);
        assert!(text.contains("product_id + product_name"), "{text}");
        assert!(text.contains("UUIDv5"), "{text}");
        assert!(text.contains("  price"), "{text}");
        let v1: serde_json::Value =
            serde_json::from_str(&show(LayoutId::V1, Format::Json)).expect("json");
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
