//! What the command line says about itself: the version line, the short
//! `-h` summary (one line per option), shell completions and man pages, all
//! derived from the one clap definition in `main.rs`.
//!
//! It only shapes and prints help text; it never parses option values or
//! decides what a command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use clap::{Arg, Command};

/// The git commit this binary was built from ("unknown" outside a git
/// checkout), set by `build.rs`.
pub const COMMIT: &str = env!("SHOPSTREAM_GIT_COMMIT");

/// `0.2.0 (commit abc1234, schema v7)`: the version, the commit and the
/// schema version this build migrates to.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (commit {COMMIT}, schema v{})",
        env!("CARGO_PKG_VERSION"),
        crate::db::migrate::LATEST
    )
});

/// Longest one-line summary `-h` shows for an option (the full text is in
/// `--help`).
const SUMMARY_CHARS: usize = 72;

/// Why completions or man pages could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HelpError {
    #[error("cannot write the man pages to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

/// The command line with its help shaped: every option's `help` becomes a
/// one-line summary (its full text stays as `long_help`, shown by
/// `--help`). With `short` (the user asked for `-h`) environment variables,
/// defaults and value lists are left out and lines are not wrapped, so each
/// option takes exactly one line.
pub fn shape(cmd: Command, short: bool) -> Command {
    let mut cmd = cmd.mut_args(|a| summarise(a, short));
    if short {
        cmd = cmd.term_width(0);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |s| shape(s, short));
    }
    cmd
}

fn summarise(arg: Arg, short: bool) -> Arg {
    let Some(help) = arg.get_help().map(ToString::to_string) else {
        return arg;
    };
    let arg = if arg.get_long_help().is_none() {
        arg.long_help(help.clone())
    } else {
        arg
    };
    let arg = arg.help(summary(&help));
    if !short {
        return arg;
    }
    let arg = arg.hide_env(true);
    if arg.get_action().takes_values() {
        arg.hide_default_value(true).hide_possible_values(true)
    } else {
        arg
    }
}

/// The first sentence of `text` on one line, without its full stop, at
/// most [`SUMMARY_CHARS`] characters (cut at a word, with "…").
pub fn summary(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut end = flat.len();
    let mut from = 0;
    while let Some(i) = flat[from..].find(". ") {
        let at = from + i;
        let word = flat[..at].rsplit(' ').next().unwrap_or("");
        if !matches!(word.trim_start_matches('('), "e.g" | "i.e" | "etc" | "vs") {
            end = at;
            break;
        }
        from = at + 2;
    }
    let sentence = flat[..end].trim_end_matches('.');
    if sentence.chars().count() <= SUMMARY_CHARS {
        return sentence.to_string();
    }
    // Too long: without its asides in brackets, then its main clause
    // (before a `:` that is not at the start, or a `;`).
    let sentence = without_asides(sentence);
    if sentence.chars().count() <= SUMMARY_CHARS {
        return sentence;
    }
    for (stop, shortest) in [(": ", 30), ("; ", 20)] {
        if let Some(i) = sentence.find(stop) {
            let clause = sentence[..i].trim_end_matches(',');
            if (shortest..=SUMMARY_CHARS).contains(&clause.chars().count()) {
                return clause.to_string();
            }
        }
    }
    let cut: String = sentence.chars().take(SUMMARY_CHARS).collect();
    let cut = match cut.rfind(' ') {
        Some(i) => &cut[..i],
        None => &cut[..],
    };
    format!(
        "{}…",
        cut.trim_end_matches([',', ';', ':', ' ', '(', '-', '—'])
    )
}

/// `text` without its bracketed asides: `a (b) c [d]` is `a c`.
fn without_asides(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' | '[' => {
                if depth == 0 {
                    out.truncate(out.trim_end().len());
                }
                depth += 1;
            }
            ')' | ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// Prints the completion script for `shell` to stdout.
pub fn completions(shell: clap_complete::Shell, cmd: &mut Command) -> Result<(), HelpError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, cmd, "shopstream", &mut out);
    write_stdout(&out)
}

/// Writes the man pages: with `dir`, one page per command and subcommand
/// (`shopstream.1`, `shopstream-run.1`, …) into it; without, the main
/// page (`shopstream.1`) to stdout. Returns the files written.
pub fn man(cmd: Command, dir: Option<&Path>) -> Result<Vec<PathBuf>, HelpError> {
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .render(&mut out)
            .map_err(HelpError::Stdout)?;
        // The subcommands, each with its summary, so one page says it all.
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("shopstream-{}", sub.get_name());
            let page = clap_mangen::Man::new(sub.clone().name(name));
            page.render(&mut out).map_err(HelpError::Stdout)?;
        }
        write_stdout(&out)?;
        return Ok(vec![]);
    };
    let write_err = |source| HelpError::Write {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    clap_mangen::generate_to(cmd, dir).map_err(write_err)?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(write_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    written.sort();
    Ok(written)
}

fn write_stdout(bytes: &[u8]) -> Result<(), HelpError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(HelpError::Stdout(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_are_the_first_sentence_on_one_line() {
        assert_eq!(
            summary("Load every file present, then exit 0 (backfills, cron,\nbenchmarks)."),
            "Load every file present, then exit 0 (backfills, cron, benchmarks)"
        );
        assert_eq!(
            summary("Most files per batch. A second sentence."),
            "Most files per batch"
        );
        assert_eq!(
            summary("Sizes, e.g. 64K. More."),
            "Sizes, e.g. 64K",
            "e.g. does not end a sentence"
        );
        assert_eq!(
            summary(
                "Seconds between full listings of the input folder; OS file events trigger \
                 a listing sooner. For an object store: seconds between listings."
            ),
            "Seconds between full listings of the input folder"
        );
        assert_eq!(
            summary(
                "Consecutive failures (connect, batch or probe) that open the circuit \
                 breaker: intake pauses, files stay where they are."
            ),
            "Consecutive failures that open the circuit breaker"
        );
        let long = summary(&"word ".repeat(40));
        assert!(long.chars().count() <= 73 && long.ends_with('…'), "{long}");
    }
}
