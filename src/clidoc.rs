//! The configuration reference (`docs/configuration.md`), rendered from the
//! command-line definition itself: every command, every option, its
//! environment variable, default, possible values and help text.
//!
//! It owns only the rendering of a [`clap::Command`] into Markdown, so the
//! reference cannot drift from what the binary accepts (`tests/docs.rs`
//! compares the file with a fresh rendering). It must never parse
//! arguments, read the environment or print environment values: an
//! option's *value* from the environment may be a secret.

use std::collections::HashMap;
use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command};

/// The command that regenerates the reference, named in its header and in
/// the test's failure message.
pub const REGENERATE: &str = "shopstream docs configuration > docs/configuration.md";

/// Renders the whole reference for `root` (the binary's top-level command,
/// not built: global options appear once, under their own heading).
pub fn configuration(root: &Command) -> String {
    let mut out = String::new();
    let name = root.get_name();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the command-line definition by `{REGENERATE}`. \
         Do not edit: tests/docs.rs fails when this file and the binary disagree. -->\n"
    );
    out.push_str(
        "Every option of every command, as `--help` shows it. An option with an \
         environment variable can be set through it instead; an option given on \
         the command line wins over its variable. Values of variables that hold \
         secrets are never shown by `--help`. Sizes take bytes or a 1024-based \
         unit (`64K`, `512MiB`, `2G`).\n\n",
    );
    let mut seen = Seen::new();
    let globals: Vec<&Arg> = root.get_arguments().filter(|a| shown(a)).collect();
    if !globals.is_empty() {
        out.push_str("## Options of every command\n\n");
        table(&mut out, &globals, None, &mut seen, "");
    }
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(&mut out, sub, name, 2, &mut seen);
    }
    out
}

/// Rows already printed, with the command whose section holds them: an
/// option several commands share (the database options) is described once.
type Seen = HashMap<String, String>;

/// One command's section: its description, then its options grouped by
/// help heading (in order of first appearance), then its subcommands.
fn command(out: &mut String, cmd: &Command, parent: &str, depth: usize, seen: &mut Seen) {
    let path = format!("{parent} {}", cmd.get_name());
    let _ = writeln!(out, "{} `{path}`\n", "#".repeat(depth));
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{}\n", paragraphs(&about.to_string()));
    }
    let args: Vec<&Arg> = cmd.get_arguments().filter(|a| shown(a)).collect();
    let mut headings: Vec<Option<&str>> = Vec::new();
    for a in &args {
        if !headings.contains(&a.get_help_heading()) {
            headings.push(a.get_help_heading());
        }
    }
    for heading in headings {
        let group: Vec<&Arg> = args
            .iter()
            .copied()
            .filter(|a| a.get_help_heading() == heading)
            .collect();
        table(out, &group, heading, seen, &path);
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        command(out, sub, &path, depth + 1, seen);
    }
}

/// Hidden arguments and clap's own `--help`/`--version` are left out.
fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// A table of options; rows another command's section already holds are
/// named in one line after it instead ("Also … as for …").
fn table(out: &mut String, args: &[&Arg], heading: Option<&str>, seen: &mut Seen, path: &str) {
    let mut rows = Vec::new();
    let mut elsewhere: Vec<(String, Vec<String>)> = Vec::new();
    for a in args {
        let row = row(a);
        match seen.get(&row) {
            Some(first) => match elsewhere.iter_mut().find(|(f, _)| f == first) {
                Some((_, names)) => names.push(usage(a)),
                None => elsewhere.push((first.clone(), vec![usage(a)])),
            },
            None => {
                seen.insert(row.clone(), path.to_string());
                rows.push(row);
            }
        }
    }
    if let Some(h) = heading {
        let _ = writeln!(out, "**{}**\n", cell(h));
    }
    if !rows.is_empty() {
        out.push_str("| option | environment | default | meaning |\n|---|---|---|---|\n");
        for r in rows {
            let _ = writeln!(out, "{r}");
        }
        out.push('\n');
    }
    for (first, names) in elsewhere {
        let anchor: String = first
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let _ = writeln!(
            out,
            "Also {}: as for [`{first}`](#{anchor}).\n",
            names.join(", ")
        );
    }
}

/// One option's table row.
fn row(a: &Arg) -> String {
    let env = a
        .get_env()
        .map(|e| format!("`{}`", e.to_string_lossy()))
        .unwrap_or_default();
    let defaults: Vec<String> = a
        .get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect();
    // A `|` in a value name (`HOST:PORT|off`) would end the table cell.
    format!(
        "| {} | {env} | {} | {} |",
        usage(a).replace('|', "\\|"),
        defaults.join(", "),
        meaning(a)
    )
}

/// `--name <VALUE>`, `-s, --name`, or `<VALUE>` for a positional argument.
fn usage(arg: &Arg) -> String {
    let values = match arg.get_value_names() {
        Some(names) => names
            .iter()
            .map(|n| format!("<{n}>"))
            .collect::<Vec<_>>()
            .join(" "),
        None => format!("<{}>", arg.get_id().as_str().to_uppercase()),
    };
    let takes_value = arg.get_action().takes_values();
    let mut s = match (arg.get_short(), arg.get_long()) {
        (Some(c), Some(l)) => format!("-{c}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(c), None) => format!("-{c}"),
        (None, None) => return format!("`{values}`"),
    };
    if takes_value {
        s.push(' ');
        s.push_str(&values);
    }
    format!("`{s}`")
}

/// The long help (else the short one), the possible values, and whether
/// the option may be repeated.
fn meaning(arg: &Arg) -> String {
    let mut s = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| cell(&paragraphs(&h.to_string())))
        .unwrap_or_default();
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|p| !p.is_hide_set())
        .map(|p| format!("`{}`", p.get_name()))
        .collect();
    // A flag's possible values are `true`/`false`: nothing to say.
    let sentence = |s: &mut String| {
        if !s.is_empty() && !s.ends_with(['.', ')', ']']) {
            s.push('.');
        }
    };
    if !possible.is_empty() && arg.get_action().takes_values() {
        sentence(&mut s);
        let _ = write!(s, " Values: {}.", possible.join(", "));
    }
    if matches!(arg.get_action(), ArgAction::Append) {
        sentence(&mut s);
        s.push_str(" Repeatable.");
    }
    s.trim().to_string()
}

/// Paragraphs joined into one line (a table cell holds one line).
fn paragraphs(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Escapes what would break a Markdown table cell or read as HTML.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('<', "&lt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_env_default_values_and_headings() {
        let cmd = Command::new("tool").subcommand(
            Command::new("go")
                .about("Goes.")
                .arg(
                    Arg::new("size")
                        .long("size")
                        .env("TOOL_SIZE")
                        .default_value("4")
                        .help("How big | how many <n>."),
                )
                .arg(
                    Arg::new("mode")
                        .long("mode")
                        .value_parser(["a", "b"])
                        .action(ArgAction::Append)
                        .help_heading("Modes"),
                )
                .arg(Arg::new("secret").long("secret").hide(true)),
        );
        let shared = Arg::new("url").long("url").env("TOOL_URL").help("Where.");
        let cmd = cmd
            .subcommand(Command::new("a").arg(shared.clone()))
            .subcommand(Command::new("b").arg(shared).arg(Arg::new("x").long("x")));
        let md = configuration(&cmd);
        assert!(md.contains("## `tool go`\n\nGoes."), "{md}");
        assert!(
            md.contains("| `--size <SIZE>` | `TOOL_SIZE` | `4` | How big \\| how many &lt;n>. |"),
            "{md}"
        );
        assert!(md.contains("**Modes**"), "{md}");
        assert!(md.contains("Values: `a`, `b`. Repeatable."), "{md}");
        assert!(!md.contains("--secret"), "{md}");
        // A shared option is described once and referred to after that.
        assert_eq!(
            md.matches("| `--url <URL>` | `TOOL_URL` |").count(),
            1,
            "{md}"
        );
        assert!(
            md.contains("Also `--url <URL>`: as for [`tool a`](#tool-a)."),
            "{md}"
        );
        assert!(md.contains("| `--x <X>` |"), "{md}");
    }
}
