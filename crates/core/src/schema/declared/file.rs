//! The TOML form of a declared layout, as serde reads it (the `toml`
//! crate), with the place of every value kept for error messages.
//!
//! It only describes the file; [`super::build`] checks what it says.

use serde::Deserialize;
use toml::Spanned;

/// One layout file: one layout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub delimiter: Option<Spanned<String>>,
    #[serde(default)]
    pub quote: Option<Spanned<String>>,
    #[serde(default)]
    pub decimal: Option<Spanned<String>>,
    /// One format or a list of them.
    #[serde(default)]
    pub time_format: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    #[serde(default)]
    pub id_from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub defaults: std::collections::BTreeMap<String, Spanned<toml::Value>>,
    #[serde(rename = "column")]
    pub columns: Spanned<Vec<Spanned<Column>>>,
}

/// One `[[column]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
    /// A canonical column, `extra` or `drop`.
    pub to: Spanned<String>,
    #[serde(default)]
    pub optional: bool,
}

/// The 1-based line of byte `offset` of `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key written on the line holding byte `offset` (`name = …` gives
/// `name`, `[[column]]` gives `column`), for an error the TOML reader
/// reports without one.
pub fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    if let Some(table) = line.strip_prefix('[') {
        return table
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    match line.split_once('=') {
        Some((key, _)) => key.trim().trim_matches('"').to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_keys_of_offsets() {
        let text = "name = \"x\"\n\n[[column]]\nto = 1\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, text.find("to").unwrap_or(0)), 4);
        assert_eq!(key_at(text, text.find('1').unwrap_or(0)), "to");
        assert_eq!(key_at(text, text.find("[[").unwrap_or(0)), "column");
        assert_eq!(key_at(text, 1), "name");
    }
}
