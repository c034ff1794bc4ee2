//! Detects a file's layout from its header row alone and maps its columns
//! onto the canonical event.
//!
//! Detection never looks at values. Header cells are matched trimmed and
//! ASCII case-insensitively against every layout of the registry
//! ([`crate::schema`]); a layout matches when the header names all of its
//! columns, in any order, and the match naming the most columns wins (the
//! registry guarantees no two layouts have the same column set, so v3 beats
//! v2 beats v1). Columns beyond the detected layout that are canonical
//! column names (`quantity` next to a v1 header, say) are read as that
//! column. Every other column is *unknown*, and [`UnknownColumns`] decides
//! its fate: kept in the row's `extra` JSON (default), dropped, or the file
//! rejected. A header matching no layout rejects the file with the closest
//! layout and its missing and unknown columns.
//!
//! This module never reads data rows' values beyond splitting them.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::event::{Field, FIELD_COUNT};
use crate::schema::{LayoutId, Target};
use crate::validate::RawFields;

/// What happens to header columns the detected layout does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum UnknownColumns {
    /// Store their values in `ecommerce_events.extra` as a JSON object.
    #[default]
    Keep,
    /// Ignore their values (their names are still recorded in the ledger).
    Drop,
    /// Reject the whole file, naming them.
    Reject,
}

/// Why a header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "the file is empty: expected a header row (see `shopstream schema list` for the layouts)"
    )]
    Empty,
    #[error("{}", no_match(*.closest, .missing, .unknown))]
    NoMatch {
        closest: LayoutId,
        missing: Vec<String>,
        unknown: Vec<String>,
    },
    #[error("the header has column(s) layout {layout} does not know: {} (--unknown-columns reject)", name_list(.unknown))]
    UnknownColumns {
        layout: LayoutId,
        unknown: Vec<String>,
    },
    #[error("the header names column {:?} more than once", cut(.0))]
    DuplicateColumn(String),
    /// The first line is not a row of column names (one field, or fields
    /// no header would have): nothing of it is repeated, it may be a secret.
    #[error(
        "the header matches no known layout: its first line does not look like a CSV header \
         ({fields} field(s) that are not column names), so it is not repeated here (see \
         `shopstream schema list` for the layouts)"
    )]
    NotAHeader { fields: usize },
    #[error("the file is UTF-16 text; shopstream reads UTF-8 CSV (re-save it as UTF-8)")]
    Utf16,
    #[error("the file is binary, not CSV text (its header holds NUL bytes)")]
    Binary,
    #[error(
        "the file is not UTF-8 text (binary, or another encoding such as Latin-1): its header \
         holds bytes that are not UTF-8; re-save it as UTF-8 CSV"
    )]
    NotUtf8,
}

fn no_match(closest: LayoutId, missing: &[String], unknown: &[String]) -> String {
    let mut s = format!(
        "the header matches no known layout; the closest is {closest} ({}), which lacks {}",
        closest.spec().description,
        missing.join(", ")
    );
    if !unknown.is_empty() {
        let _ = write!(s, "; columns it does not know: {}", name_list(unknown));
    }
    s.push_str(" (see `shopstream schema show ");
    s.push_str(closest.as_str());
    s.push_str("`)");
    s
}

/// Most unknown columns a reason names.
const NAMED_MAX: usize = 5;
/// Longest column name a reason repeats, in characters.
const NAME_CHARS: usize = 40;
/// Longest cell a header of column names has, in bytes.
const HEADER_CELL_MAX: usize = 128;

/// A column name as a reason repeats it: at most [`NAME_CHARS`].
fn cut(name: &str) -> String {
    match name.char_indices().nth(NAME_CHARS) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_string(),
    }
}

/// The first [`NAMED_MAX`] names, each cut, and how many more there are.
fn name_list(names: &[String]) -> String {
    let s: Vec<String> = names.iter().take(NAMED_MAX).map(|n| cut(n)).collect();
    let mut s = s.join(", ");
    if names.len() > NAMED_MAX {
        let _ = write!(s, " and {} more", names.len() - NAMED_MAX);
    }
    s
}

/// Whether header cells look like column names, so that naming them in a
/// reason repeats no content: at least two fields, each short and made of
/// letters, digits, spaces and `_-.()#/[]%`. A line such as
/// `db_password=hunter2` is not one.
fn looks_like_column_names(names: &[&str]) -> bool {
    names.len() >= 2
        && names.iter().all(|n| {
            n.len() <= HEADER_CELL_MAX
                && n.chars().all(|c| {
                    c.is_alphanumeric()
                        || matches!(
                            c,
                            '_' | '-' | '.' | ' ' | '(' | ')' | '#' | '/' | '[' | ']' | '%'
                        )
                })
        })
}

/// Where each canonical column sits in a file's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub id: LayoutId,
    /// For each canonical field, its position in the row.
    positions: [Option<usize>; FIELD_COUNT],
    /// How many fields every row must have.
    pub width: usize,
    /// Columns whose values go to `extra`: (name as in the header, position).
    pub extras: Vec<(String, usize)>,
    /// Header columns the layout does not know, as written.
    pub unknown: Vec<String>,
    /// For layouts without `event_id`: the positions of the layout's
    /// columns in registry order, the input of the derived id.
    pub derive_id_from: Option<Vec<usize>>,
}

impl Layout {
    /// Detects the layout of a header row.
    pub fn from_header<'a>(
        cells: impl IntoIterator<Item = &'a [u8]>,
        policy: UnknownColumns,
    ) -> Result<Layout, LayoutError> {
        let cells: Vec<&[u8]> = cells.into_iter().collect();
        if cells
            .first()
            .is_some_and(|c| c.starts_with(b"\xFF\xFE") || c.starts_with(b"\xFE\xFF"))
        {
            return Err(LayoutError::Utf16);
        }
        if cells.iter().any(|c| c.contains(&0)) {
            return Err(LayoutError::Binary);
        }
        let mut names: Vec<&str> = vec![];
        for cell in cells {
            let name = std::str::from_utf8(cell).map_err(|_| LayoutError::NotUtf8)?;
            names.push(name.trim());
        }
        if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
            return Err(LayoutError::Empty);
        }
        let lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        let header_like = looks_like_column_names(&names);
        let mut seen = HashSet::new();
        for (i, n) in lower.iter().enumerate() {
            if !seen.insert(n.as_str()) {
                if !header_like {
                    return Err(LayoutError::NotAHeader {
                        fields: names.len(),
                    });
                }
                return Err(LayoutError::DuplicateColumn(names[i].to_string()));
            }
        }
        let pos = |col: &str| lower.iter().position(|n| n == col);

        let best = LayoutId::ALL
            .into_iter()
            .filter(|id| id.spec().columns.iter().all(|c| pos(c.name).is_some()))
            .max_by_key(|id| id.spec().columns.len());
        let Some(id) = best else {
            if !header_like {
                return Err(LayoutError::NotAHeader {
                    fields: names.len(),
                });
            }
            return Err(closest(&names, &lower));
        };
        let spec = id.spec();
        let mut positions = [None; FIELD_COUNT];
        let mut extras = vec![];
        let mut known = vec![false; names.len()];
        for c in spec.columns {
            // Every column is present: checked by the filter above.
            let Some(p) = pos(c.name) else { continue };
            known[p] = true;
            match c.target {
                Target::Field(f) => positions[f.index()] = Some(p),
                Target::ProductIdAndName => {
                    positions[Field::ProductId.index()] = Some(p);
                    positions[Field::ProductName.index()] = Some(p);
                }
                Target::Extra => extras.push((names[p].to_string(), p)),
            }
        }
        let mut unknown_at = vec![];
        for (p, name) in names.iter().enumerate() {
            if known[p] {
                continue;
            }
            match Field::from_header(name) {
                Some(f) if positions[f.index()].is_none() => positions[f.index()] = Some(p),
                _ => unknown_at.push(p),
            }
        }
        let unknown: Vec<String> = unknown_at.iter().map(|&p| names[p].to_string()).collect();
        if !unknown.is_empty() {
            match policy {
                UnknownColumns::Reject => {
                    return Err(LayoutError::UnknownColumns {
                        layout: id,
                        unknown,
                    })
                }
                UnknownColumns::Keep => {
                    extras.extend(unknown_at.iter().map(|&p| (names[p].to_string(), p)));
                }
                UnknownColumns::Drop => {}
            }
        }
        let derive_id_from = positions[Field::EventId.index()].is_none().then(|| {
            spec.columns
                .iter()
                .filter_map(|c| pos(c.name))
                .collect::<Vec<_>>()
        });
        Ok(Layout {
            id,
            positions,
            width: names.len(),
            extras,
            unknown,
            derive_id_from,
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

    /// Gives every canonical column the header does not name a position
    /// past its end, and returns their names in position order: in JSON
    /// Lines any line may carry a key the first one lacked, and a canonical
    /// name is read as its column there too. A layout whose event ids are
    /// derived gets no `event_id` position.
    pub fn widen_to_canonical(&mut self) -> Vec<&'static str> {
        let mut added = vec![];
        for f in Field::ALL {
            let derived = f == Field::EventId && self.derive_id_from.is_some();
            if self.positions[f.index()].is_none() && !derived {
                self.positions[f.index()] = Some(self.width);
                self.width += 1;
                added.push(f.name());
            }
        }
        added
    }
}

/// The layout sharing the most columns with the header (ties: the one
/// missing fewest), with what it lacks and what it does not know.
fn closest(names: &[&str], lower: &[String]) -> LayoutError {
    let score = |id: LayoutId| {
        let cols = id.spec().columns;
        let hits = cols
            .iter()
            .filter(|c| lower.iter().any(|n| n == c.name))
            .count();
        (hits, std::cmp::Reverse(cols.len() - hits))
    };
    let id = LayoutId::ALL
        .into_iter()
        .rev()
        .max_by_key(|id| score(*id))
        .unwrap_or(crate::schema::CURRENT);
    let cols = id.spec().columns;
    LayoutError::NoMatch {
        closest: id,
        missing: cols
            .iter()
            .filter(|c| !lower.iter().any(|n| n == c.name))
            .map(|c| c.name.to_string())
            .collect(),
        unknown: names
            .iter()
            .zip(lower)
            .filter(|(_, l)| !cols.iter().any(|c| c.name == l.as_str()))
            .map(|(n, _)| n.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(h: &str) -> Result<Layout, LayoutError> {
        Layout::from_header(h.split(',').map(str::as_bytes), UnknownColumns::Keep)
    }

    fn id(h: &str) -> LayoutId {
        match detect(h) {
            Ok(l) => l.id,
            Err(e) => panic!("{h}: {e}"),
        }
    }

    #[test]
    fn every_registered_header_detects_its_own_layout() {
        for l in LayoutId::ALL {
            let header: Vec<&str> = l.spec().columns.iter().map(|c| c.name).collect();
            assert_eq!(id(&header.join(",")), l);
            let mut reversed = header.clone();
            reversed.reverse();
            assert_eq!(id(&reversed.join(",").to_uppercase()), l, "order and case");
        }
    }

    #[test]
    fn versions_are_told_apart_and_nested_seeds_are_exact() {
        assert_eq!(
            id("event_id,user_id,event_type,product_id,price,event_time"),
            LayoutId::V1
        );
        // v1 plus session_id is exactly seed 004's column set.
        assert_eq!(
            id("event_id,event_time,event_type,product_id,price,user_id,session_id"),
            LayoutId::Seed004
        );
        // seed 001 is seed 000 without product_category.
        assert_eq!(
            id("event_id,user_id,event_type,product_id,product_name,price,event_timestamp"),
            LayoutId::Seed001
        );
    }

    #[test]
    fn canonical_extras_are_read_and_unknown_ones_kept() {
        let l = detect("event_id,user_id,event_type,product_id,price,quantity,event_time,colour")
            .expect("v1 plus");
        assert_eq!(l.id, LayoutId::V1);
        assert_eq!(l.position(Field::Quantity), Some(5));
        assert_eq!(l.unknown, ["colour"]);
        assert_eq!(l.extras, [("colour".to_string(), 7)]);
        let dropped = Layout::from_header(
            "event_id,user_id,event_type,product_id,price,event_time,colour"
                .split(',')
                .map(str::as_bytes),
            UnknownColumns::Drop,
        )
        .expect("drop");
        assert!(dropped.extras.is_empty());
        assert_eq!(dropped.unknown, ["colour"]);
        let e = Layout::from_header(
            "event_id,user_id,event_type,product_id,price,event_time,colour"
                .split(',')
                .map(str::as_bytes),
            UnknownColumns::Reject,
        )
        .expect_err("reject");
        assert_eq!(
            e.to_string(),
            "the header has column(s) layout v1 does not know: colour (--unknown-columns reject)"
        );
    }

    #[test]
    fn seed_layouts_map_their_aliases() {
        let l = detect("user_id,action,product,timestamp").expect("seed002");
        assert_eq!(l.id, LayoutId::Seed002);
        assert_eq!(l.position(Field::EventType), Some(1));
        assert_eq!(l.position(Field::ProductId), Some(2));
        assert_eq!(l.position(Field::ProductName), Some(2));
        assert_eq!(l.position(Field::EventTime), Some(3));
        assert_eq!(l.position(Field::EventId), None);
        assert_eq!(l.derive_id_from, Some(vec![0, 1, 2, 3]));
        let l = detect("event_id,user_id,session_id,event_type,product_id,category,price,quantity,user_segment,search_query,event_time,source_system")
            .expect("seed003");
        assert_eq!(l.extras, [("source_system".to_string(), 11)]);
        assert!(l.unknown.is_empty());
        assert_eq!(l.derive_id_from, None);
        let l = detect("event_id,user_id,product_id,product_name,product_category,event_type,price,event_timestamp")
            .expect("seed000");
        assert_eq!(l.position(Field::Category), Some(4));
    }

    #[test]
    fn an_unknown_header_names_the_closest_layout() {
        let e = detect("event_id,user,event_type,product_id,price,event_time").expect_err("no");
        assert_eq!(
            e,
            LayoutError::NoMatch {
                closest: LayoutId::V1,
                missing: vec!["user_id".into()],
                unknown: vec!["user".into()],
            }
        );
        assert!(e.to_string().starts_with(
            "the header matches no known layout; the closest is v1 (shopstream v1: the six core columns of an event), which lacks user_id; columns it does not know: user"
        ), "{e}");
        let e = detect("user_id,action,product").expect_err("no");
        assert!(
            matches!(
                e,
                LayoutError::NoMatch {
                    closest: LayoutId::Seed002,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn a_first_line_that_is_no_header_is_not_repeated() {
        for line in [
            "db_password=hunter2",
            "password: hunter2",
            "user=admin,password=hunter2",
            "{\"token\": \"hunter2\", \"x\": 1}",
        ] {
            let e = detect(line).expect_err(line);
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{line}: {text}");
            assert!(text.contains("matches no known layout"), "{text}");
        }
        // A real CSV header: its first unknown columns are named, cut.
        let long = "y".repeat(100);
        let header = format!("when,who,what,{long},a,b,c");
        let text = detect(&header).expect_err("no layout").to_string();
        assert!(text.contains("does not know: when, who, what, "), "{text}");
        assert!(
            text.contains(&format!("{}…, a and 2 more", "y".repeat(40))),
            "{text}"
        );
        assert!(!text.contains(&"y".repeat(41)), "{text}");
    }

    #[test]
    fn duplicates_and_empty_are_rejected() {
        assert!(matches!(
            detect("event_id,user_id,event_type,product_id,price,event_time,EVENT_ID"),
            Err(LayoutError::DuplicateColumn(_))
        ));
        assert_eq!(detect(""), Err(LayoutError::Empty));
    }

    #[test]
    fn binary_and_foreign_encodings_are_named() {
        let from =
            |cells: &[&[u8]]| Layout::from_header(cells.iter().copied(), UnknownColumns::Keep);
        assert_eq!(from(&[b"\xFF\xFEe\0v\0", b"x"]), Err(LayoutError::Utf16));
        assert_eq!(from(&[b"\x89PNG\r", b"\0\0"]), Err(LayoutError::Binary));
        assert_eq!(
            from(&[b"event_id", b"cat\xE9gorie"]),
            Err(LayoutError::NotUtf8)
        );
        assert!(LayoutError::NotUtf8
            .to_string()
            .contains("re-save it as UTF-8"));
    }
}
