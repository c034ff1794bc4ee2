//! Maps a file's header row onto the canonical columns.
//!
//! Parsing is header-driven: columns may come in any order, names are
//! matched trimmed and case-insensitively, and every column except
//! `event_id`, `event_type`, `product_id` and `event_time` may be absent.
//! Columns shopstream does not know are ignored (documented policy). A header
//! that lacks a required column, or names one twice, rejects the file.
//!
//! This module never looks at data rows' values beyond splitting them.

use crate::event::{Field, FIELD_COUNT};
use crate::validate::RawFields;

/// Why a header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "the file is empty: expected a header row naming at least {}",
        required_list()
    )]
    Empty,
    #[error("the header lacks required column(s) {missing}; it has: {found}")]
    MissingColumns { missing: String, found: String },
    #[error("the header names column {0:?} more than once")]
    DuplicateColumn(String),
    #[error("the header is not UTF-8 text")]
    NotUtf8,
}

fn required_list() -> String {
    Field::REQUIRED.map(Field::name).join(", ")
}

/// Where each canonical column sits in a file's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// For each canonical field, its position in the row.
    positions: [Option<usize>; FIELD_COUNT],
    /// How many fields every row must have.
    pub width: usize,
    /// Header cells shopstream ignores.
    pub ignored: Vec<String>,
}

impl Layout {
    /// Builds the layout from the header cells.
    pub fn from_header<'a>(
        cells: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Layout, LayoutError> {
        let mut positions = [None; FIELD_COUNT];
        let mut ignored = vec![];
        let mut names = vec![];
        for (i, cell) in cells.into_iter().enumerate() {
            let name = std::str::from_utf8(cell).map_err(|_| LayoutError::NotUtf8)?;
            names.push(name.trim().to_string());
            match Field::from_header(name) {
                Some(f) if positions[f.index()].is_some() => {
                    return Err(LayoutError::DuplicateColumn(f.name().to_string()))
                }
                Some(f) => positions[f.index()] = Some(i),
                None => ignored.push(name.trim().to_string()),
            }
        }
        let width = names.len();
        if width == 0 || (width == 1 && names[0].is_empty()) {
            return Err(LayoutError::Empty);
        }
        let missing: Vec<&str> = Field::REQUIRED
            .iter()
            .filter(|f| positions[f.index()].is_none())
            .map(|f| f.name())
            .collect();
        if !missing.is_empty() {
            return Err(LayoutError::MissingColumns {
                missing: missing.join(", "),
                found: names.join(", "),
            });
        }
        Ok(Layout {
            positions,
            width,
            ignored,
        })
    }

    /// Fills `out` with the values of one row, taken from `field(i)`.
    pub fn fill<'a>(&self, field: impl Fn(usize) -> &'a str, out: &mut RawFields<'a>) {
        for (slot, pos) in out.iter_mut().zip(self.positions.iter()) {
            *slot = pos.map(&field);
        }
    }

    /// The position of a canonical column in this layout.
    pub fn position(&self, f: Field) -> Option<usize> {
        self.positions[f.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(h: &str) -> Result<Layout, LayoutError> {
        Layout::from_header(h.split(',').map(str::as_bytes))
    }

    #[test]
    fn any_order_and_case() {
        let l = layout("Event_Time, product_id ,EVENT_TYPE,event_id,extra").expect("ok");
        assert_eq!(l.position(Field::EventId), Some(3));
        assert_eq!(l.position(Field::EventTime), Some(0));
        assert_eq!(l.position(Field::Price), None);
        assert_eq!(l.width, 5);
        assert_eq!(l.ignored, ["extra"]);
    }

    #[test]
    fn missing_required_columns_are_named() {
        let e = layout("event_id,user_id,price").expect_err("missing");
        assert_eq!(
            e.to_string(),
            "the header lacks required column(s) event_type, product_id, event_time; it has: event_id, user_id, price"
        );
    }

    #[test]
    fn duplicates_and_empty_are_rejected() {
        assert!(matches!(
            layout("event_id,event_type,product_id,event_time,EVENT_ID"),
            Err(LayoutError::DuplicateColumn(_))
        ));
        assert_eq!(layout(""), Err(LayoutError::Empty));
    }
}
