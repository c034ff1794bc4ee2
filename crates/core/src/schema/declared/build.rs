//! Checks one parsed layout file and turns it into a [`LayoutSpec`]: every
//! value it holds is leaked (once per process, see [`super::load`]), so
//! that the layout is as `'static` as a built-in one.
//!
//! It checks one layout on its own: names, column targets, delimiter,
//! quote, decimal separator, time formats and zone, defaults, `id_from`.
//! How layouts relate to each other (equal names, the same column set) is
//! [`super`]'s. It never reads files.

use std::collections::HashSet;

use super::file::{Column, LayoutFile};
use crate::event::{EventType, Field};
use crate::schema::registry::{canonical, ColumnSpec, ColumnType, Dialect, Kind};
use crate::schema::{LayoutId, LayoutSpec, ReadSpec, Target};
use crate::validate::parse::{parse_decimal_with, TimeFormat};

/// What is wrong with a layout file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte offset in the file.
    pub offset: usize,
    pub key: String,
    pub message: String,
}

fn problem<T>(
    span: std::ops::Range<usize>,
    key: &str,
    message: impl Into<String>,
) -> Result<T, Problem> {
    Err(Problem {
        offset: span.start,
        key: key.to_string(),
        message: message.into(),
    })
}

fn leak(s: impl Into<String>) -> &'static str {
    Box::leak(s.into().into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// The canonical columns a declared layout must feed (by a column or a
/// default): every row needs them.
const NEEDED: [Field; 3] = [Field::EventType, Field::ProductId, Field::EventTime];

/// The layout `file` declares, read from `path`.
pub fn layout(file: &LayoutFile, path: &'static str) -> Result<LayoutSpec, Problem> {
    let name = layout_name(file)?;
    let dialect = dialect(file)?;
    let decimal_comma = decimal_comma(file)?;
    let time_formats = time_formats(file)?;
    let time_zone = match &file.time_zone {
        None => None,
        Some(z) => Some(z.get_ref().trim().parse::<chrono_tz::Tz>().or_else(|_| {
            problem(
                z.span(),
                "time_zone",
                format!(
                    "unknown time zone {:?}: expected an IANA name like Europe/Berlin or UTC",
                    z.get_ref()
                ),
            )
        })?),
    };
    let read = ReadSpec {
        dialect,
        decimal_comma,
        time_formats,
        time_zone,
        defaults: &[],
        id_from: None,
    };
    let columns = columns(file, &read)?;
    let defaults = defaults(file, decimal_comma)?;
    let id_from = id_from(file, &columns)?;
    for f in NEEDED {
        let fed = columns.iter().any(|c| feeds(c, f)) || defaults.iter().any(|(d, _)| *d == f);
        if !fed {
            return problem(
                file.columns.span(),
                "column",
                format!(
                    "no column maps to {} (`to = \"{}\"`): every event needs one",
                    f.name(),
                    f.name()
                ),
            );
        }
    }
    let spec = LayoutSpec {
        name,
        kind: Kind::Declared,
        introduced: "",
        description: leak(
            file.description
                .clone()
                .unwrap_or_else(|| format!("declared in {path}")),
        ),
        columns: leak_slice(columns),
        notes: &[],
        read: ReadSpec {
            defaults: leak_slice(defaults),
            id_from,
            ..read
        },
        declared_in: Some(path),
    };
    Ok(spec)
}

fn feeds(c: &ColumnSpec, f: Field) -> bool {
    c.target == Target::Field(f)
}

fn layout_name(file: &LayoutFile) -> Result<&'static str, Problem> {
    let n = file.name.get_ref().trim();
    let fine = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !fine {
        return problem(
            file.name.span(),
            "name",
            format!(
                "{n:?} is no layout name: 1 to 64 letters, digits, `_`, `-` or `.` (it is \
                 stored in source_layout)"
            ),
        );
    }
    if LayoutId::parse(n).is_some() {
        return problem(
            file.name.span(),
            "name",
            format!("{n:?} is the name of a built-in layout (`shopstream schema list`)"),
        );
    }
    Ok(leak(n))
}

/// One ASCII character that may separate or quote fields.
fn one_char(v: &toml::Spanned<String>, key: &str) -> Result<u8, Problem> {
    match v.get_ref().as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'\n' | b'\r') => Ok(*b),
        _ => problem(
            v.span(),
            key,
            format!(
                "{:?} is not one character: expected e.g. \",\", \";\", \"\\t\" or \"|\"",
                v.get_ref()
            ),
        ),
    }
}

fn dialect(file: &LayoutFile) -> Result<Dialect, Problem> {
    let mut d = Dialect::STANDARD;
    if let Some(v) = &file.delimiter {
        d.delimiter = one_char(v, "delimiter")?;
    }
    if let Some(v) = &file.quote {
        d.quote = one_char(v, "quote")?;
    }
    if d.delimiter == d.quote {
        let span = file
            .quote
            .as_ref()
            .or(file.delimiter.as_ref())
            .map_or(0..0, |v| v.span());
        return problem(span, "quote", "the quote is the delimiter");
    }
    Ok(d)
}

fn decimal_comma(file: &LayoutFile) -> Result<bool, Problem> {
    match &file.decimal {
        None => Ok(false),
        Some(v) => match v.get_ref().as_str() {
            "." => Ok(false),
            "," => Ok(true),
            other => problem(
                v.span(),
                "decimal",
                format!("{other:?} is no decimal separator: expected \".\" or \",\""),
            ),
        },
    }
}

fn time_formats(file: &LayoutFile) -> Result<&'static [TimeFormat], Problem> {
    let Some(v) = &file.time_format else {
        return Ok(&[]);
    };
    let texts: Vec<&str> = match v.get_ref() {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_str) => {
            a.iter().filter_map(toml::Value::as_str).collect()
        }
        _ => {
            return problem(
                v.span(),
                "time_format",
                "expected a format (\"%d.%m.%Y %H:%M\") or a list of them",
            )
        }
    };
    let mut out = vec![];
    for t in texts {
        match TimeFormat::new(leak(t)) {
            Ok(f) => out.push(f),
            Err(why) => return problem(v.span(), "time_format", why),
        }
    }
    Ok(leak_slice(out))
}

fn columns(file: &LayoutFile, read: &ReadSpec) -> Result<Vec<ColumnSpec>, Problem> {
    if file.columns.get_ref().is_empty() {
        return problem(file.columns.span(), "column", "the layout has no column");
    }
    let mut names = HashSet::new();
    let mut targets = HashSet::new();
    let mut out = vec![];
    for c in file.columns.get_ref() {
        let c = c.get_ref();
        for n in std::iter::once(&c.name).chain(&c.aliases) {
            let key = if std::ptr::eq(n, &c.name) {
                "name"
            } else {
                "aliases"
            };
            let text = n.get_ref().trim();
            if text.is_empty() {
                return problem(n.span(), key, "a column name is empty");
            }
            if !names.insert(text.to_ascii_lowercase()) {
                return problem(
                    n.span(),
                    key,
                    format!("column name {text:?} is given twice (case is ignored)"),
                );
            }
        }
        let target = target(c)?;
        if let Target::Field(f) = target {
            if !targets.insert(f) {
                return problem(
                    c.to.span(),
                    "to",
                    format!("two columns map to {}", f.name()),
                );
            }
        }
        out.push(column_spec(c, target, read));
    }
    Ok(out)
}

fn target(c: &Column) -> Result<Target, Problem> {
    let to = c.to.get_ref().trim();
    if to.eq_ignore_ascii_case("extra") {
        return Ok(Target::Extra);
    }
    if to.eq_ignore_ascii_case("drop") {
        return Ok(Target::Drop);
    }
    match Field::from_header(to) {
        Some(f) => Ok(Target::Field(f)),
        None => {
            let all: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            problem(
                c.to.span(),
                "to",
                format!(
                    "{to:?} is not a canonical column: expected one of {}, extra or drop",
                    all.join(", ")
                ),
            )
        }
    }
}

fn column_spec(c: &Column, target: Target, read: &ReadSpec) -> ColumnSpec {
    let (ty, nullable, default, format) = match target {
        Target::Field(f) => {
            let canon = canonical(f);
            (
                canon.ty,
                canon.nullable,
                canon.default,
                value_forms(f, read),
            )
        }
        Target::Extra => (ColumnType::Text, true, None, "kept in extra"),
        Target::Drop | Target::ProductIdAndName => (ColumnType::Text, true, None, "ignored"),
    };
    ColumnSpec {
        name: leak(c.name.get_ref().trim()),
        target,
        ty,
        nullable,
        default,
        format,
        aliases: leak_slice(c.aliases.iter().map(|a| leak(a.get_ref().trim())).collect()),
        optional: c.optional,
    }
}

/// How a column's values are read, in words (for `schema show`).
fn value_forms(f: Field, read: &ReadSpec) -> &'static str {
    let zone = read
        .time_zone
        .map_or("--source-timezone".to_string(), |z| z.name().to_string());
    match f {
        Field::EventTime if !read.time_formats.is_empty() => {
            let formats: Vec<&str> = read.time_formats.iter().map(|t| t.text).collect();
            leak(format!(
                "{}; without an offset, in {zone}",
                formats.join(" or ")
            ))
        }
        Field::EventTime => leak(format!(
            "YYYY-MM-DD HH:MM:SS[.ffffff] or ISO-8601; without an offset, in {zone}"
        )),
        Field::Price if read.decimal_comma => "decimal with a comma (12,50), 0 to --max-price",
        f => canonical(f).format,
    }
}

fn defaults(file: &LayoutFile, decimal_comma: bool) -> Result<Vec<(Field, &'static str)>, Problem> {
    let mut out = vec![];
    for (key, value) in &file.defaults {
        let span = value.span();
        let at = format!("defaults.{key}");
        let field = match Field::from_header(key) {
            Some(Field::EventId | Field::EventTime) => {
                return problem(span, &at, format!("{key} cannot have a constant default"))
            }
            Some(f) => f,
            None => return problem(span, &at, format!("{key:?} is not a canonical column")),
        };
        let text = match value.get_ref() {
            toml::Value::String(s) => s.trim().to_string(),
            // A TOML number is written with a dot.
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(x) if decimal_comma => x.to_string().replace('.', ","),
            toml::Value::Float(x) => x.to_string(),
            _ => return problem(span, &at, "expected a string or a number"),
        };
        if let Some(why) = bad_default(field, &text, decimal_comma) {
            return problem(span, &at, why);
        }
        out.push((field, leak(text)));
    }
    Ok(out)
}

/// Why `v` can never be a valid value of `f`, if it cannot.
fn bad_default(f: Field, v: &str, decimal_comma: bool) -> Option<String> {
    let ok = match f {
        _ if v.is_empty() => return Some("a default is not empty".into()),
        Field::EventType => EventType::parse(v).is_some(),
        Field::Price => parse_decimal_with(v, if decimal_comma { b',' } else { b'.' }).is_some(),
        Field::Quantity => v.bytes().all(|b| b.is_ascii_digit()),
        _ => true,
    };
    (!ok).then(|| format!("{v:?} is not a value {} can hold", f.name()))
}

fn id_from(
    file: &LayoutFile,
    columns: &[ColumnSpec],
) -> Result<Option<&'static [&'static str]>, Problem> {
    let Some(list) = &file.id_from else {
        return Ok(None);
    };
    if list.get_ref().is_empty() {
        return problem(list.span(), "id_from", "name at least one column");
    }
    let mut out = vec![];
    for n in list.get_ref() {
        let Some(c) = columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(n.get_ref().trim()))
        else {
            return problem(
                n.span(),
                "id_from",
                format!("{:?} is not a column name of the layout", n.get_ref()),
            );
        };
        out.push(c.name);
    }
    Ok(Some(leak_slice(out)))
}
