//! Detects a file's layout from its header row alone and maps its columns
//! onto the canonical event.
//!
//! Detection never looks at values. Header cells are matched trimmed and
//! ASCII case-insensitively against every layout of the registry
//! ([`crate::schema`], declared layouts included); a layout matches when
//! the header names all of its columns (by name or alias; a declared
//! layout's optional columns may be missing), in any order, and the match
//! naming the most columns wins (no two layouts of one dialect have the
//! same column set, so v3 beats v2 beats v1; a tie goes to the layout
//! registered last). A CSV header is split with the standard comma and
//! double quote first; when no layout matches, it is split again with the
//! delimiter and quote of each declared layout that has others, and
//! matched against those layouts ([`Layout::from_csv_header`]): the rows
//! are then read in that dialect. Columns beyond the detected layout that are canonical
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
use crate::schema::{Dialect, LayoutRef, Registry, Target};
use crate::source::reader::split_fields;
use crate::validate::{RawFields, Rules};

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
        closest: LayoutRef,
        missing: Vec<String>,
        unknown: Vec<String>,
    },
    #[error("the header has column(s) layout {layout} does not know: {} (--unknown-columns reject)", name_list(.unknown))]
    UnknownColumns {
        layout: LayoutRef,
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

fn no_match(closest: LayoutRef, missing: &[String], unknown: &[String]) -> String {
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
    pub id: LayoutRef,
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
    /// Detects the layout of a header row (or of a JSON object's keys)
    /// among the layouts of `registry` in `dialect`.
    pub fn from_header<'a>(
        cells: impl IntoIterator<Item = &'a [u8]>,
        policy: UnknownColumns,
        registry: Registry,
        dialect: Dialect,
    ) -> Result<Layout, LayoutError> {
        let cells: Vec<&[u8]> = cells.into_iter().collect();
        let names = header_names(&cells)?;
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
        let candidates = registry.all().filter(|l| l.spec().read.dialect == dialect);
        let best = candidates
            .clone()
            .filter_map(|l| Some((l, found(l, &names)?)))
            .max_by_key(|(_, found)| found.iter().flatten().count());
        let Some((id, found)) = best else {
            if !header_like {
                return Err(LayoutError::NotAHeader {
                    fields: names.len(),
                });
            }
            return Err(closest(&names, candidates));
        };
        Self::mapped(id, &found, &names, policy)
    }

    /// Detects the layout of a CSV file's header record: `cells` as split
    /// with a comma and double quotes, `raw` the record as read (split
    /// again with each other dialect of the registry when no layout of
    /// the standard one matches). Returns the header's names as split in
    /// the layout's dialect ([`Layout::dialect`]: how the rows are read).
    pub fn from_csv_header(
        cells: &[&[u8]],
        raw: &[u8],
        policy: UnknownColumns,
        registry: Registry,
    ) -> Result<(Layout, Vec<String>), LayoutError> {
        let text = |cells: &[&[u8]]| -> Vec<String> {
            cells
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        };
        let standard =
            Layout::from_header(cells.iter().copied(), policy, registry, Dialect::STANDARD);
        let mut failed = match standard {
            Ok(l) => return Ok((l, text(cells))),
            Err(e @ (LayoutError::NoMatch { .. } | LayoutError::NotAHeader { .. })) => e,
            Err(e) => return Err(e),
        };
        let mut widest = cells.len();
        for d in registry.other_dialects() {
            let split = split_fields(raw, d.delimiter, d.quote);
            let split: Vec<&[u8]> = split.iter().map(Vec::as_slice).collect();
            match Layout::from_header(split.iter().copied(), policy, registry, d) {
                Ok(l) => return Ok((l, text(&split))),
                // The split with the most fields tells what is closest.
                Err(e @ (LayoutError::NoMatch { .. } | LayoutError::NotAHeader { .. })) => {
                    if split.len() > widest {
                        (widest, failed) = (split.len(), e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(failed)
    }

    /// The layout `id` over a header whose layout columns sit at `found`.
    fn mapped(
        id: LayoutRef,
        found: &[Option<usize>],
        names: &[&str],
        policy: UnknownColumns,
    ) -> Result<Layout, LayoutError> {
        let spec = id.spec();
        let mut positions = [None; FIELD_COUNT];
        let mut extras = vec![];
        let mut known = vec![false; names.len()];
        for (c, p) in spec.columns.iter().zip(found) {
            let Some(p) = *p else { continue };
            known[p] = true;
            match c.target {
                Target::Field(f) => positions[f.index()] = Some(p),
                Target::ProductIdAndName => {
                    positions[Field::ProductId.index()] = Some(p);
                    positions[Field::ProductName.index()] = Some(p);
                }
                Target::Extra => extras.push((names[p].to_string(), p)),
                Target::Drop => {}
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
        let derive_id_from = positions[Field::EventId.index()]
            .is_none()
            .then(|| id_columns(id, found));
        Ok(Layout {
            id,
            positions,
            width: names.len(),
            extras,
            unknown,
            derive_id_from,
        })
    }

    /// How the file's rows are split (see [`Layout::from_csv_header`]).
    pub fn dialect(&self) -> Dialect {
        self.id.spec().read.dialect
    }

    /// `base` with the layout's own time formats, time zone and decimal
    /// separator (a declared layout's; the built-in ones have none).
    pub fn rules(&self, base: &Rules) -> Rules {
        let read = &self.id.spec().read;
        let mut rules = *base;
        rules.forms.time_formats = read.time_formats;
        rules.forms.decimal_comma = read.decimal_comma;
        if let Some(zone) = read.time_zone {
            rules.source_zone = Some(zone);
        }
        rules
    }

    /// Fills `out` with the values of one row, taken from `field(i)`; a
    /// declared layout's constants fill the empty and missing ones.
    pub fn fill<'a>(&self, field: impl Fn(usize) -> &'a str, out: &mut RawFields<'a>) {
        for (slot, pos) in out.iter_mut().zip(self.positions.iter()) {
            *slot = pos.map(&field);
        }
        for (f, value) in self.id.spec().read.defaults {
            let slot = &mut out[f.index()];
            if slot.is_none_or(|v| v.trim().is_empty()) {
                *slot = Some(value);
            }
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

/// The trimmed text of a header's cells, or why they are no header.
fn header_names<'c>(cells: &[&'c [u8]]) -> Result<Vec<&'c str>, LayoutError> {
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
    Ok(names)
}

/// The position in `names` of a column named `column` or one of its
/// aliases.
fn position_of(column: &crate::schema::ColumnSpec, names: &[&str]) -> Option<usize> {
    column
        .names()
        .find_map(|n| names.iter().position(|h| h.eq_ignore_ascii_case(n)))
}

/// Where each column of `layout` sits in the header, when the header has
/// all of its required columns.
fn found(layout: LayoutRef, names: &[&str]) -> Option<Vec<Option<usize>>> {
    layout
        .spec()
        .columns
        .iter()
        .map(|c| match position_of(c, names) {
            None if !c.optional => None,
            p => Some(p),
        })
        .collect()
}

/// The positions a derived event id is made of: the columns the layout
/// names for it, or every column of the layout the header has (dropped
/// ones aside), in the layout's order.
fn id_columns(layout: LayoutRef, found: &[Option<usize>]) -> Vec<usize> {
    let spec = layout.spec();
    let columns = spec.columns.iter().zip(found);
    match spec.read.id_from {
        Some(named) => named
            .iter()
            .filter_map(|n| columns.clone().find(|(c, _)| c.name == *n))
            .filter_map(|(_, p)| *p)
            .collect(),
        None => columns
            .filter(|(c, _)| c.target != Target::Drop)
            .filter_map(|(_, p)| *p)
            .collect(),
    }
}

/// The layout sharing the most columns with the header (ties: the one
/// missing fewest), with what it lacks and what it does not know.
fn closest(names: &[&str], candidates: impl Iterator<Item = LayoutRef>) -> LayoutError {
    let has = |c: &crate::schema::ColumnSpec| position_of(c, names).is_some();
    let score = |id: LayoutRef| {
        let cols = id.spec().columns;
        let hits = cols.iter().filter(|c| has(c)).count();
        (hits, std::cmp::Reverse(cols.len() - hits))
    };
    let candidates: Vec<LayoutRef> = candidates.collect();
    let id = candidates
        .into_iter()
        .rev()
        .max_by_key(|id| score(*id))
        .unwrap_or(crate::schema::CURRENT.into());
    let cols = id.spec().columns;
    LayoutError::NoMatch {
        closest: id,
        missing: cols
            .iter()
            .filter(|c| !c.optional && !has(c))
            .map(|c| c.name.to_string())
            .collect(),
        unknown: names
            .iter()
            .filter(|n| {
                !cols
                    .iter()
                    .any(|c| c.names().any(|a| a.eq_ignore_ascii_case(n)))
            })
            .map(|n| n.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::LayoutId;

    const STD: Dialect = Dialect::STANDARD;
    const BUILT_IN: Registry = Registry::BUILT_IN;

    fn detect(h: &str) -> Result<Layout, LayoutError> {
        Layout::from_header(
            h.split(',').map(str::as_bytes),
            UnknownColumns::Keep,
            BUILT_IN,
            STD,
        )
    }

    fn id(h: &str) -> LayoutRef {
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
            BUILT_IN,
            STD,
        )
        .expect("drop");
        assert!(dropped.extras.is_empty());
        assert_eq!(dropped.unknown, ["colour"]);
        let e = Layout::from_header(
            "event_id,user_id,event_type,product_id,price,event_time,colour"
                .split(',')
                .map(str::as_bytes),
            UnknownColumns::Reject,
            BUILT_IN,
            STD,
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
                closest: LayoutId::V1.into(),
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
                LayoutError::NoMatch { ref closest, .. } if *closest == LayoutId::Seed002
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

    /// The built-in layouts plus one declared by `toml`.
    fn declared(toml: &str) -> Registry {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("l.toml");
        std::fs::write(&p, toml).expect("write");
        crate::schema::declared::load(&[p]).expect("valid layout")
    }

    const SEMI: &str = r#"name = "semi"
delimiter = ";"
id_from = ["Wer", "Was"]
[defaults]
event_type = "view"
[[column]]
name = "Wer"
aliases = ["Kunde"]
to = "user_id"
[[column]]
name = "Was"
to = "product_id"
[[column]]
name = "Wann"
to = "event_time"
[[column]]
name = "Laden"
to = "extra"
optional = true
[[column]]
name = "Export"
to = "drop"
"#;

    #[test]
    fn a_declared_layout_is_found_in_its_dialect_with_aliases_and_optional_columns() {
        let r = declared(SEMI);
        let header = "Kunde;Wann;Export;Was;quantity";
        let cells: Vec<&[u8]> = vec![header.as_bytes()];
        let (l, names) =
            Layout::from_csv_header(&cells, header.as_bytes(), UnknownColumns::Keep, r)
                .expect("semi");
        assert_eq!(l.id.as_str(), "semi");
        assert_eq!(names, ["Kunde", "Wann", "Export", "Was", "quantity"]);
        assert_eq!(l.dialect().delimiter, b';');
        assert_eq!(l.position(Field::UserId), Some(0));
        assert_eq!(l.position(Field::EventTime), Some(1));
        assert_eq!(
            l.position(Field::Quantity),
            Some(4),
            "a canonical name is read"
        );
        assert!(l.extras.is_empty(), "Export is dropped, Laden absent");
        assert_eq!(l.derive_id_from, Some(vec![0, 3]), "id_from in its order");
        let mut raw: RawFields<'_> = [None; FIELD_COUNT];
        let row = ["u1", " ", "x", "p1", "2"];
        l.fill(|i| row[i], &mut raw);
        assert_eq!(raw[Field::EventType.index()], Some("view"), "the default");
        assert_eq!(raw[Field::UserId.index()], Some("u1"));
        // A comma header is matched against the comma layouts only.
        let v1 = "event_id,user_id,event_type,product_id,price,event_time";
        let cells: Vec<&[u8]> = v1.split(',').map(str::as_bytes).collect();
        let (l, _) =
            Layout::from_csv_header(&cells, v1.as_bytes(), UnknownColumns::Keep, r).expect("v1");
        assert_eq!(l.id, LayoutId::V1);
        // The same names split by commas are no `semi` file.
        let comma = "Kunde,Wann,Export,Was";
        let cells: Vec<&[u8]> = comma.split(',').map(str::as_bytes).collect();
        let e = Layout::from_csv_header(&cells, comma.as_bytes(), UnknownColumns::Keep, r)
            .expect_err("comma");
        assert!(matches!(e, LayoutError::NoMatch { .. }), "{e}");
        // A `;` header lacking a column: the closest is named from its split.
        let short = "Kunde;Wann;Export";
        let e = Layout::from_csv_header(
            &[short.as_bytes()],
            short.as_bytes(),
            UnknownColumns::Keep,
            r,
        )
        .expect_err("short");
        assert!(e.to_string().contains("the closest is semi"), "{e}");
        assert!(e.to_string().contains("which lacks Was"), "{e}");
    }

    #[test]
    fn without_id_from_every_kept_column_makes_the_derived_id() {
        let r = declared(&SEMI.replace("id_from = [\"Wer\", \"Was\"]\n", ""));
        let h = "Export;Was;Wer;Wann;Laden";
        let (l, _) =
            Layout::from_csv_header(&[h.as_bytes()], h.as_bytes(), UnknownColumns::Keep, r)
                .expect("semi");
        // Layout order (Wer, Was, Wann, Laden), the dropped Export left out.
        assert_eq!(l.derive_id_from, Some(vec![2, 1, 3, 4]));
        assert_eq!(l.extras, [("Laden".to_string(), 4)]);
    }

    #[test]
    fn binary_and_foreign_encodings_are_named() {
        let from = |cells: &[&[u8]]| {
            Layout::from_header(cells.iter().copied(), UnknownColumns::Keep, BUILT_IN, STD)
        };
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
