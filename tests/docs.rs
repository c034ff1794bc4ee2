//! The documentation stays true: the configuration reference is what the
//! binary renders from its CLI definition, every relative link and anchor
//! in the Markdown files resolves, and the systemd unit passes
//! `systemd-analyze verify`.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{shopstream, skip};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn configuration_reference_matches_the_cli() {
    let out = shopstream()
        .args(["docs", "configuration"])
        .output()
        .expect("shopstream docs configuration");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("UTF-8");
    let path = root().join("docs/configuration.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/configuration.md");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != rendered {
        let line = on_disk
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or(on_disk.lines().count().min(rendered.lines().count()), |i| i)
            + 1;
        panic!(
            "docs/configuration.md differs from the CLI definition from line {line} on; \
             run `cargo run -- docs configuration > docs/configuration.md` \
             (or UPDATE_DOCS=1 cargo test --test docs)"
        );
    }
    // Spot checks that the rendering says what a reader needs.
    for needle in [
        "## `shopstream run`",
        "--input",
        "`SHOPSTREAM_INPUT`",
        "`DATABASE_URL`",
        "## `shopstream migrate`",
        "`--batch-max-bytes",
    ] {
        assert!(rendered.contains(needle), "the reference lacks {needle}");
    }
}

/// The Markdown files a reader meets: README.md, CHANGELOG.md,
/// BENCHMARKS.md and docs/*.md.
fn markdown_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["README.md", "CHANGELOG.md", "BENCHMARKS.md"]
        .iter()
        .map(|f| root().join(f))
        .collect();
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "md") {
            files.push(p);
        }
    }
    files
}

/// Link targets `](target)` outside fenced code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces as `-`.
fn anchors(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        if fenced {
            continue;
        }
        let slug: String = title
            .trim_start_matches('#')
            .trim()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => {
                    Some(c.to_lowercase().next().unwrap_or(c))
                }
                _ => None,
            })
            .collect();
        out.insert(slug);
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read markdown");
        let dir = file.parent().expect("parent");
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", file.display()));
                continue;
            }
            if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let target_text = std::fs::read_to_string(&target).expect("read target");
                if !anchors(&target_text).contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the scan broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn readme_stays_short() {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = text.lines().count();
    assert!(
        lines <= 160,
        "README.md has {lines} lines; move detail into docs/"
    );
}

/// The unit file in docs/ with its `ExecStart` pointed at the binary just
/// built (verify checks the executable exists).
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(root().join("docs/shopstream.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/shopstream "),
        "the unit's ExecStart moved"
    );
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/shopstream ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_shopstream")),
    );
    let path = dir.join("shopstream.service");
    std::fs::write(&path, unit).expect("write unit");
    path
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().expect("tmp");
    let unit = unit_for_verify(tmp.path());
    let out = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            skip(
                "systemd_unit_passes_systemd_analyze_verify",
                &format!("systemd-analyze cannot run ({e}; Debian package `systemd`)"),
            );
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify reports unknown keys and bad values on stderr with status 0;
    // lines about other units of the machine (dependencies it loaded) are
    // not this unit's problems.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("shopstream"))
        .collect();
    eprintln!("{stderr}");
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify docs/shopstream.service: {}\n{}",
        out.status,
        ours.join("\n")
    );
}
