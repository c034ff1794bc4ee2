//! What counts as input at all: the `--include` patterns a file's name (or
//! its path below the input root) must match, and the folders shopstream
//! refuses to work in (`/` and the system folders) as input, archive or
//! quarantine.
//!
//! A pattern without `/` is matched against the file name, at any depth
//! (`*.csv`); a pattern with `/` against the path below the input root
//! (`2026/**/*.csv`, where `*` stays within one folder and `**` crosses
//! folders; a leading `/`, as in `/*.csv`, means the top folder only). Matching ignores ASCII case, like the ignore rules of
//! `discover`.
//!
//! This module only answers questions about names: it never reads, lists,
//! creates or moves anything (it resolves symlinks of a folder given as an
//! option, nothing else).

use std::path::{Component, Path, PathBuf};

/// The default `--include` (comma-separated): every format shopstream
/// reads (see `source::format`), plain or compressed.
pub const DEFAULT_INCLUDE: &str = "*.csv,*.csv.gz,*.csv.zst,*.jsonl,*.jsonl.gz,*.jsonl.zst,\
                                   *.ndjson,*.ndjson.gz,*.ndjson.zst";

/// Why an `--include` pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("--include {pattern:?} is not a glob pattern: {why}")]
    Pattern { pattern: String, why: String },
    #[error("--include needs at least one pattern")]
    Empty,
}

/// The `--include` patterns.
#[derive(Debug, Clone)]
pub struct Include {
    /// (pattern, whether it holds a `/`: then it matches the relative path).
    patterns: Vec<(glob::Pattern, bool)>,
}

const NAME_RULES: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: false,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Include {
    /// Compiles the patterns (at least one).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Include, ScopeError> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let text = p.as_ref().trim().trim_start_matches("./");
            // A leading `/` anchors the pattern at the input root.
            let anchored = text.starts_with('/');
            let text = text.trim_start_matches('/');
            if text.is_empty() {
                continue;
            }
            let pattern = glob::Pattern::new(text).map_err(|e| ScopeError::Pattern {
                pattern: text.to_string(),
                why: e.msg.to_string(),
            })?;
            out.push((pattern, anchored || text.contains('/')));
        }
        if out.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(Include { patterns: out })
    }

    /// Every name (for tools and tests that list a folder of known files).
    pub fn everything() -> Include {
        Include {
            patterns: vec![(glob::Pattern::new("*").expect("a valid pattern"), false)],
        }
    }

    /// Whether the file at `rel` (its path below the input root, or an
    /// object's key below the prefix) is input.
    pub fn matches(&self, rel: &Path) -> bool {
        let rel_text = rel.to_string_lossy();
        let name = rel.file_name().map(|n| n.to_string_lossy());
        self.patterns.iter().any(|(p, whole)| {
            if *whole {
                p.matches_with(&rel_text, NAME_RULES)
            } else {
                name.as_deref()
                    .is_some_and(|n| p.matches_with(n, NAME_RULES))
            }
        })
    }
}

impl Default for Include {
    fn default() -> Self {
        let patterns: Vec<&str> = DEFAULT_INCLUDE.split(',').collect();
        Include::new(&patterns).expect("the default patterns are valid")
    }
}

/// `--include`: one glob pattern (checked here, compiled by [`Include::new`]).
pub fn parse_include(text: &str) -> Result<String, String> {
    Include::new(&[text]).map_err(|e| e.to_string())?;
    Ok(text.trim().to_string())
}

/// The folders shopstream never takes as input, archive or quarantine: it
/// moves and deletes files there.
const SYSTEM_FOLDERS: [&str; 16] = [
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/var",
];

/// `--input`, `--archive-dir`, `--quarantine-dir`: a path that is not `/`
/// or a system folder, however spelled (`/usr/..`, a symlink to `/usr`).
/// Object store URLs pass unchanged.
pub fn parse_work_folder(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if super::store::is_url(text) {
        return Ok(path);
    }
    match system_folder(&path) {
        Some(real) => Err(format!(
            "{text:?} is {}, a system folder: shopstream moves and deletes files in its \
             input, archive and quarantine folders, so it refuses / and the system folders \
             ({}); give it a folder of its own",
            real.display(),
            SYSTEM_FOLDERS[1..].join(", ")
        )),
        None => Ok(path),
    }
}

/// The system folder `path` really is, if any.
pub fn system_folder(path: &Path) -> Option<PathBuf> {
    let real = resolve(path)?;
    SYSTEM_FOLDERS.iter().find_map(|s| {
        let s = Path::new(s);
        let same = real == s || std::fs::canonicalize(s).is_ok_and(|c| c == real);
        same.then(|| real.clone())
    })
}

/// `path` made absolute with its symlinks resolved as far as it exists;
/// the rest (not created yet) is folded lexically.
fn resolve(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let mut existing = abs.clone();
    let mut rest: Vec<std::ffi::OsString> = vec![];
    let mut base = loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            break c;
        }
        let name = existing.file_name()?.to_os_string();
        rest.push(name);
        if !existing.pop() {
            return None;
        }
    };
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                base.pop();
            }
            Some(Component::CurDir) | None => {}
            Some(_) => base.push(part),
        }
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_at_any_depth_and_paths_below_the_root() {
        let inc = Include::default();
        for yes in [
            "a.csv",
            "2026/11/b.CSV",
            "sub dir/ünï.csv",
            "a.csv.gz",
            "a.CSV.ZST",
            "a.jsonl",
            "a.jsonl.gz",
            "a.jsonl.zst",
            "a.ndjson",
            "a.ndjson.gz",
            "a.ndjson.zst",
        ] {
            assert!(inc.matches(Path::new(yes)), "{yes}");
        }
        for no in [
            "notes.txt",
            "secrets.env",
            "a.csv.bak",
            "csv",
            "dir.csv/x.txt",
            "a.gz",
            "a.json",
            "a.csv.gz.part",
        ] {
            assert!(!inc.matches(Path::new(no)), "{no}");
        }
        let inc = Include::new(&["2026/*/*.csv", "*.tsv"]).expect("patterns");
        assert!(inc.matches(Path::new("2026/11/a.csv")));
        assert!(
            !inc.matches(Path::new("2026/11/deeper/a.csv")),
            "* stays in one folder"
        );
        assert!(!inc.matches(Path::new("a.csv")));
        assert!(inc.matches(Path::new("x/y/z.tsv")));
        let inc = Include::new(&["2026/**/*.csv"]).expect("pattern");
        assert!(inc.matches(Path::new("2026/11/deeper/a.csv")));
        let inc = Include::new(&["/*.csv"]).expect("anchored");
        assert!(inc.matches(Path::new("a.csv")));
        assert!(!inc.matches(Path::new("sub/a.csv")), "top folder only");
    }

    #[test]
    fn bad_or_missing_patterns_are_refused() {
        assert!(parse_include("[a-").is_err());
        assert_eq!(Include::new::<&str>(&[]).err(), Some(ScopeError::Empty));
        assert_eq!(parse_include(" *.csv ").as_deref(), Ok("*.csv"));
    }

    #[test]
    fn system_folders_are_refused_however_spelled() {
        for bad in [
            "/",
            "/etc",
            "/usr/",
            "/usr/..",
            "/etc/../usr/./bin/..",
            "/lib",
        ] {
            let e = parse_work_folder(bad).expect_err(bad);
            assert!(e.contains("a system folder"), "{e}");
        }
        let d = tempfile::tempdir().expect("tempdir");
        let link = d.path().join("usr-link");
        std::os::unix::fs::symlink("/usr", &link).expect("symlink");
        assert!(parse_work_folder(&link.to_string_lossy()).is_err());
        for good in [
            d.path().join("in"),
            d.path().join("not/yet/there"),
            PathBuf::from("/var/lib/shopstream"),
            PathBuf::from("/usr/local/share/x"),
        ] {
            let text = good.to_string_lossy();
            assert!(parse_work_folder(&text).is_ok(), "{text}");
        }
        assert!(parse_work_folder("s3://bucket/").is_ok());
    }
}
