//! Declared layouts: a user's own layouts, one per TOML file, given with
//! `--layouts FILE|FOLDER` (repeatable; a folder gives its `*.toml` files in
//! name order), read once at start with serde and the `toml` crate.
//!
//! [`load`] reads and checks them all and returns the [`Registry`] of the
//! built-in layouts plus the declared ones. A layout that names an unknown
//! canonical column, a bad delimiter, quote, decimal separator, time format
//! or zone, a name already taken, or that has the same column set as
//! another layout of the same dialect (a header could not tell the two
//! apart) is refused with its file, line and key ([`DeclaredError`]; the
//! binary exits 2). The file's format is described in docs/layouts.md.
//!
//! The checked layouts are leaked so that every layout is `'static`
//! ([`crate::schema::LayoutRef`]); loading the same files again in one
//! process returns the registry already made instead of leaking again.
//! It reads the files it is given and nothing else.

mod build;
mod file;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{LayoutRef, LayoutSpec, Registry};

/// `--layouts`, shared by `run`, `dead-letters replay` and `schema`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LayoutsArgs {
    /// Your own layouts: a TOML file declaring one (column names and
    /// aliases mapped to canonical columns, delimiter, quote, decimal
    /// comma, time formats and zone, defaults, derived ids), or a folder of
    /// them (`*.toml`); repeatable, or comma-separated. They are detected
    /// by header alongside the built-in ones. A layout that is wrong or
    /// ambiguous stops shopstream at start (exit 2) with its file, line
    /// and key. See docs/layouts.md; `shopstream schema init FILE.csv`
    /// writes one to start from.
    #[arg(
        help_heading = "Input",
        long = "layouts",
        env = "SHOPSTREAM_LAYOUTS",
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub layouts: Vec<PathBuf>,
}

impl LayoutsArgs {
    /// The registry with these layouts.
    pub fn registry(&self) -> Result<Registry, DeclaredError> {
        load(&self.layouts)
    }
}

/// Why the declared layouts cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclaredError {
    #[error("--layouts {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("--layouts {path}: the folder holds no .toml file")]
    NoFiles { path: String },
    #[error("{path}:{line}: {}{message}", key_prefix(.key))]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
}

fn key_prefix(key: &str) -> String {
    match key {
        "" => String::new(),
        k => format!("{k}: "),
    }
}

/// The layout files read: path and content.
type Files = Vec<(PathBuf, String)>;

/// Registries made so far in this process, by the files they were made of.
static LOADED: Mutex<Vec<(Files, Registry)>> = Mutex::new(Vec::new());

/// Reads and checks the layouts of `paths` (files, or folders of `*.toml`
/// files): the built-in layouts plus these (see the module docs). No path
/// gives the built-in layouts alone.
pub fn load(paths: &[PathBuf]) -> Result<Registry, DeclaredError> {
    if paths.is_empty() {
        return Ok(Registry::BUILT_IN);
    }
    let mut files = vec![];
    for p in paths {
        for f in toml_files(p)? {
            let text = std::fs::read_to_string(&f).map_err(|e| DeclaredError::Read {
                path: f.display().to_string(),
                reason: e.to_string(),
            })?;
            files.push((f, text));
        }
    }
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = loaded.iter().find(|(key, _)| *key == files) {
        return Ok(*r);
    }
    let specs = check_all(&files)?;
    let registry = Registry::with_declared(Box::leak(specs.into_boxed_slice()));
    loaded.push((files, registry));
    Ok(registry)
}

/// The layout files `path` names: itself, or a folder's `*.toml` files in
/// name order.
fn toml_files(path: &Path) -> Result<Vec<PathBuf>, DeclaredError> {
    let read_err = |e: std::io::Error| DeclaredError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(read_err)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = vec![];
    for entry in std::fs::read_dir(path).map_err(read_err)? {
        let p = entry.map_err(read_err)?.path();
        if p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
            && !p.is_dir()
        {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(DeclaredError::NoFiles {
            path: path.display().to_string(),
        });
    }
    Ok(out)
}

/// Every file's layout, checked on its own and against the others.
fn check_all(files: &[(PathBuf, String)]) -> Result<Vec<LayoutSpec>, DeclaredError> {
    let mut specs: Vec<LayoutSpec> = vec![];
    for (path, text) in files {
        let shown = path.display().to_string();
        let invalid = |offset: usize, key: String, message: String| DeclaredError::Invalid {
            path: shown.clone(),
            line: file::line_of(text, offset),
            key,
            message,
        };
        let parsed: file::LayoutFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            invalid(offset, file::key_at(text, offset), e.message().to_string())
        })?;
        let path_static: &'static str = Box::leak(shown.clone().into_boxed_str());
        let spec =
            build::layout(&parsed, path_static).map_err(|p| invalid(p.offset, p.key, p.message))?;
        let name_at = parsed.name.span().start;
        if let Some(other) = specs
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(spec.name))
        {
            return Err(invalid(
                name_at,
                "name".into(),
                format!(
                    "layout {:?} is declared twice (also in {})",
                    spec.name,
                    other.declared_in.unwrap_or("?")
                ),
            ));
        }
        let mut earlier: Vec<&LayoutSpec> = Registry::BUILT_IN.all().map(LayoutRef::spec).collect();
        earlier.extend(specs.iter());
        if let Some(other) = earlier.into_iter().find(|o| same_columns(&spec, o)) {
            return Err(invalid(
                name_at,
                "name".into(),
                format!(
                    "layout {} is ambiguous with {} ({}): both have the same columns and \
                     delimiter, so a header could not tell them apart",
                    spec.name,
                    other.name,
                    other
                        .declared_in
                        .map_or("built in".to_string(), |p| format!("declared in {p}")),
                ),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// Whether a header naming all required columns of one of `a` and `b`
/// would name all of the other's, as many: the same number of required
/// columns, each sharing a name (or alias) with one of the other's, and
/// the same delimiter and quote.
fn same_columns(a: &LayoutSpec, b: &LayoutSpec) -> bool {
    let required = |s: &LayoutSpec| -> Vec<&'static super::ColumnSpec> {
        s.columns.iter().filter(|c| !c.optional).collect()
    };
    let (ra, rb) = (required(a), required(b));
    let meets = |x: &super::ColumnSpec, y: &super::ColumnSpec| {
        x.names()
            .any(|n| y.names().any(|m| m.eq_ignore_ascii_case(n)))
    };
    a.read.dialect == b.read.dialect
        && ra.len() == rb.len()
        && ra.iter().all(|x| rb.iter().any(|y| meets(x, y)))
        && rb.iter().all(|y| ra.iter().any(|x| meets(x, y)))
}

#[cfg(test)]
mod tests;
