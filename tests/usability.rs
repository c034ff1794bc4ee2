//! The command line and the logs as a person meets them: help that fits on
//! a screen, sizes with units, version, completions and man pages, colour
//! rules, JSON-only logs, one line per retry, nothing said twice.

mod common;

use std::process::Output;

use clap::Parser;
use common::{shopstream, test_db};

/// A database URL nothing listens on (port 1 refuses at once).
const UNREACHABLE: &str = "postgresql://shopstream@127.0.0.1:1/nowhere";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `run --once` against a database that cannot be reached: it retries
/// `failures - 1` times, then gives up.
fn unreachable_run(failures: u32, extra: &[&str]) -> Output {
    let tmp = tempfile::tempdir().expect("tmp");
    shopstream()
        .args([
            "run",
            "--once",
            "--http-addr",
            "off",
            "--database-url",
            UNREACHABLE,
        ])
        .args(["--retry-initial-secs", "0.05", "--breaker-failures"])
        .arg(failures.to_string())
        .arg("--input")
        .arg(tmp.path())
        .args(extra)
        .output()
        .expect("spawn shopstream")
}

#[derive(Parser, Debug)]
struct RunCli {
    #[command(flatten)]
    run: shopstream::pipeline::run::RunArgs,
}

#[derive(Parser, Debug)]
struct BenchCli {
    #[command(flatten)]
    bench: shopstream::bench::BenchArgs,
}

#[test]
fn every_size_option_takes_units() {
    let cli = RunCli::try_parse_from([
        "run",
        "--batch-max-bytes",
        "256MiB",
        "--max-line-bytes",
        "64K",
        "--max-file-bytes",
        "1.5G",
    ])
    .expect("sizes with units parse");
    assert_eq!(cli.run.batch_max_bytes, 256 << 20);
    assert_eq!(cli.run.read.max_line_bytes, 64 << 10);
    assert_eq!(cli.run.read.max_file_bytes, 3 << 29);
    let plain = RunCli::try_parse_from(["run", "--batch-max-bytes", "1000"]).expect("bytes");
    assert_eq!(plain.run.batch_max_bytes, 1000);
    let default = RunCli::try_parse_from(["run"]).expect("defaults");
    assert_eq!(default.run.batch_max_bytes, 256 << 20);
    // A zero limit is still refused.
    let zero = RunCli::try_parse_from(["run", "--batch-max-bytes", "0"]);
    assert!(zero.is_err(), "{zero:?}");

    let bench = BenchCli::try_parse_from(["bench", "--big-file-mib", "1G"]).expect("bench size");
    assert_eq!(bench.bench.big_file_mib, 1024);
    let bench = BenchCli::try_parse_from(["bench", "--big-file-mib", "300"]).expect("MiB");
    assert_eq!(bench.bench.big_file_mib, 300);
}

#[test]
fn version_names_the_commit_and_the_schema_version() {
    let out = common::run_ok(shopstream().arg("--version"));
    let schema = format!("schema v{}", shopstream::db::migrate::LATEST);
    assert!(
        out.starts_with(&format!("shopstream {}", env!("CARGO_PKG_VERSION")))
            && out.contains(&schema)
            && out.contains("(commit "),
        "{out}"
    );
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=9", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(git) = git.ok().filter(|g| g.status.success()) {
        let commit = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert!(
            out.contains(&format!("commit {commit}")),
            "{out} vs {commit}"
        );
    }
}

#[test]
fn run_short_help_is_one_line_per_option_under_headings() {
    let out = common::run_ok(shopstream().args(["run", "-h"]));
    let lines: Vec<&str> = out.lines().collect();
    let options = lines
        .iter()
        .filter(|l| l.trim_start().starts_with('-'))
        .count();
    assert!(options >= 40, "{options} options in:\n{out}");
    for heading in [
        "Input:",
        "Batching:",
        "Validation:",
        "After load:",
        "Retry and breaker:",
        "Alerts:",
        "HTTP:",
        "Database:",
        "TLS:",
        "Logging:",
        "Examples:",
    ] {
        assert!(lines.contains(&heading), "{heading} missing:\n{out}");
    }
    // Options, 11 headings with a blank line each, usage, the summary and
    // the examples: nothing else.
    assert!(
        lines.len() <= options + 40,
        "{} lines for {options} options:\n{out}",
        lines.len()
    );
    // --help keeps the details and the environment variables.
    let long = common::run_ok(shopstream().args(["run", "--help"]));
    assert!(
        long.contains("SHOPSTREAM_BATCH_MAX_BYTES") && long.contains("jitter"),
        "{long}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let script = common::run_ok(shopstream().args(["completions", shell]));
        assert!(
            script.contains("run")
                && script.contains("batch-max-bytes")
                && script.contains("log-format"),
            "{shell}:\n{script}"
        );
    }
    let page = common::run_ok(shopstream().arg("man"));
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(
        page.contains("shopstream\\-run") && page.contains("batch\\-max\\-bytes"),
        "{page}"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let listed = common::run_ok(shopstream().args(["man", "--out"]).arg(tmp.path()));
    let run_page = tmp.path().join("shopstream-run.1");
    let text = std::fs::read_to_string(&run_page).expect("shopstream-run.1 written");
    assert!(text.contains("\\-\\-once"), "{text}");
    assert!(listed.contains("shopstream-run.1"), "{listed}");
}

#[test]
fn json_logs_are_json_on_every_line_the_fatal_error_included() {
    let out = unreachable_run(2, &["--log-format", "json"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no output");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nall:\n{err}"));
        assert!(v["level"].is_string(), "{line}");
    }
    // The fatal error is one of them (a late alert may follow it).
    let fatal: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fatal"] == true)
        .collect();
    assert_eq!(fatal.len(), 1, "{err}");
    assert_eq!(fatal[0]["level"], "ERROR", "{err}");
    assert!(
        fatal[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("giving up")),
        "{err}"
    );
}

#[test]
fn a_retried_failure_is_one_warn_line_without_a_wrong_hint() {
    let out = unreachable_run(3, &["--color", "never"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let retries: Vec<&str> = err.lines().filter(|l| l.contains("retrying in")).collect();
    assert_eq!(retries.len(), 2, "attempts 1 and 2 are retried:\n{err}");
    for (i, line) in retries.iter().enumerate() {
        assert!(
            line.contains(" WARN ") && line.contains(&format!("attempt {}", i + 1)),
            "{line}"
        );
    }
    // Every line is a log line or the final error: no continuation lines.
    for line in err.lines() {
        assert!(
            line.starts_with("error: ")
                || [" WARN ", " INFO ", " ERROR "]
                    .iter()
                    .any(|l| line.contains(l)),
            "a line that is not a log line of its own: {line:?}\nall:\n{err}"
        );
    }
    // ERROR is for giving up (the final line) and the circuit alert.
    assert!(
        !err.lines()
            .any(|l| l.contains(" ERROR ") && l.contains("retrying")),
        "retries are not errors:\n{err}"
    );
    assert!(
        !err.contains("use --database-url"),
        "a URL was given; the hint must not ask for one:\n{err}"
    );
}

/// Runs `args` under script(1), so that stderr is a terminal; returns what
/// it drew.
fn on_a_terminal(args: &str, envs: &[(&str, &str)]) -> String {
    let bin = env!("CARGO_BIN_EXE_shopstream");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-q", "-e", "-c", &format!("{bin} {args}"), "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("SHOPSTREAM_COLOR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script(1) from util-linux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_color_and_color_never_turn_colour_off_on_a_terminal() {
    let tmp = tempfile::tempdir().expect("tmp");
    let args = format!(
        "run --once --http-addr off --database-url {UNREACHABLE} --retry-initial-secs 0.05 \
         --breaker-failures 2 --input {}",
        tmp.path().display()
    );
    // On a terminal, logs are coloured (the check below can see colour)...
    let coloured = on_a_terminal(&args, &[]);
    assert!(coloured.contains("\x1b["), "{coloured}");
    // ... but not with NO_COLOR set, nor with --color never.
    let plain = on_a_terminal(&args, &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("WARN") && !plain.contains("\x1b["),
        "{plain:?}"
    );
    let plain = on_a_terminal(&format!("{args} --color never"), &[]);
    assert!(
        plain.contains("WARN") && !plain.contains("\x1b["),
        "{plain:?}"
    );
    // NO_COLOR set but empty does not count (no-color.org).
    let coloured = on_a_terminal(&args, &[("NO_COLOR", "")]);
    assert!(coloured.contains("\x1b["), "{coloured}");
    // --color always colours a pipe too.
    let out = unreachable_run(2, &["--color", "always"]);
    assert!(stderr(&out).contains("\x1b["), "{}", stderr(&out));
}

#[tokio::test]
async fn migrations_and_rejections_are_logged_once_and_the_summary_says_where_rejects_went() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    common::run_ok(
        shopstream()
            .args(["generate", "--files", "1", "--events-per-file", "200"])
            .args(["--seed", "5", "--invalid-share", "0.2", "--output"])
            .arg(&input),
    );
    std::fs::write(input.join("bad.csv"), "alpha,beta\n1,2\n").expect("write");
    let out = shopstream()
        .args(["run", "--once", "--http-addr", "off", "--color", "never"])
        .args(["--database-url", &db.url, "--input"])
        .arg(&input)
        .output()
        .expect("run");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let migration_1 = err
        .lines()
        .filter(|l| l.contains("applied migration 1 ") || l.contains("version=1 "))
        .count();
    assert_eq!(migration_1, 1, "{err}");
    let quarantined: Vec<&str> = err.lines().filter(|l| l.contains("bad.csv")).collect();
    assert!(
        quarantined.iter().any(|l| l.contains("quarantined to")),
        "{err}"
    );
    assert!(
        !err.lines().any(|l| l.contains("file rejected")),
        "the rejection is said by the quarantine line:\n{err}"
    );
    let summary = err
        .lines()
        .find(|l| l.contains("loader stopped"))
        .unwrap_or_else(|| panic!("no summary:\n{err}"));
    assert!(
        summary.contains("dead_letter_events") && summary.contains("_quarantine"),
        "{summary}"
    );
}

#[tokio::test]
async fn log_lines_never_land_on_the_progress_bar() {
    let db = test_db().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    common::run_ok(
        shopstream()
            .args(["generate", "--files", "24", "--events-per-file", "2000"])
            .args(["--seed", "2", "--output"])
            .arg(&input),
    );
    std::fs::write(input.join("bad.csv"), "alpha,beta\n1,2\n").expect("write");
    let drawn = on_a_terminal(
        &format!(
            "run --once --http-addr off --color never --batch-max-files 3 \
             --database-url '{}' --input {}",
            db.url,
            input.display()
        ),
        &[],
    );
    let mut beside_a_bar = 0;
    for (at, _) in drawn
        .match_indices(" INFO ")
        .chain(drawn.match_indices(" WARN "))
    {
        let line = &drawn[drawn[..at].rfind('\n').map_or(0, |i| i + 1)..at];
        // What is left on screen before the line: after the last carriage
        // return (indicatif clears the bar with "\r" and an erase code).
        let visible = line.rsplit('\r').next().unwrap_or(line);
        assert!(
            !visible.contains("ETA"),
            "a log line printed onto the bar: {line:?}\nall:\n{drawn:?}"
        );
        beside_a_bar += usize::from(line.contains("load ["));
    }
    assert!(
        beside_a_bar > 0,
        "no line was logged while the bar was drawn:\n{drawn:?}"
    );
}

#[test]
fn layouts_are_described_by_what_they_are_with_the_seed_as_a_note() {
    let list = common::run_ok(shopstream().args(["schema", "list"]));
    for n in 0..5 {
        let id = format!("seed00{n}");
        let row = list
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("{id} missing:\n{list}"));
        let description = row
            .split("  ")
            .filter(|c| !c.is_empty())
            .last()
            .unwrap_or("");
        assert!(
            !description.trim_start().starts_with("seed")
                && description.contains(&format!("(from seed 00{n}")),
            "{row}"
        );
    }
}
