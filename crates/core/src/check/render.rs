//! A check's report as text (a table of the files, then what is wrong with
//! each, then the totals and the verdict) or as one JSON object. Pure
//! functions, no I/O.

use super::{CheckReport, FileCheck, Format, Verdict};
use crate::report::{aligned, Column, Kind};

/// The report in `format`, ending in a newline.
pub fn render(r: &CheckReport, format: Format) -> Result<String, serde_json::Error> {
    match format {
        Format::Json => Ok(serde_json::to_string_pretty(r)? + "\n"),
        Format::Table => Ok(text(r)),
    }
}

fn column(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        source: None,
        table_name: None,
    }
}

fn text(r: &CheckReport) -> String {
    let columns = [
        column("file", Kind::Text),
        column("format", Kind::Text),
        column("layout", Kind::Text),
        column("rows", Kind::Int),
        column("valid", Kind::Int),
        column("invalid", Kind::Int),
        column("dup_ids", Kind::Int),
        column("result", Kind::Text),
    ];
    let rows: Vec<Vec<String>> = r
        .files
        .iter()
        .map(|f| {
            vec![
                f.path.clone(),
                f.format.clone(),
                f.layout.clone().unwrap_or_else(|| "-".into()),
                f.rows_read.to_string(),
                f.rows_valid.to_string(),
                f.rows_invalid.to_string(),
                f.duplicate_ids.to_string(),
                match &f.rejected {
                    Some(rej) => format!("rejected ({})", rej.code.as_str()),
                    None => f.verdict.as_str().to_string(),
                },
            ]
        })
        .collect();
    let mut out = aligned(&columns, &rows);
    for f in &r.files {
        details(&mut out, f);
    }
    let t = &r.totals;
    out.push_str(&format!(
        "\n{} file(s), {} rejected; {} row(s): {} valid, {} invalid (dead letters), {} \
         repeated event id(s)\n",
        t.files, t.files_rejected, t.rows_read, t.rows_valid, t.rows_invalid, t.duplicate_ids
    ));
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out.push_str(&format!(
        "result: {} (exit {}): {}\n",
        r.verdict.as_str(),
        r.exit_code,
        match r.verdict {
            Verdict::Clean => "every file would load cleanly",
            Verdict::DeadLetters => "some rows would be dead letters; the rest would load",
            Verdict::Rejected => "some file would be rejected as a whole and quarantined",
        }
    ));
    out
}

/// What is wrong with one file: its rejection, its failing rows, a note.
fn details(out: &mut String, f: &FileCheck) {
    if let Some(rej) = &f.rejected {
        out.push_str(&format!(
            "\n{}: rejected ({}): {}\n",
            f.path,
            rej.code.as_str(),
            rej.reason
        ));
    } else if f.rows_invalid > 0 {
        out.push('\n');
    }
    if f.rows_invalid > 0 {
        let codes: Vec<String> = f.reasons.iter().map(|(c, n)| format!("{c} {n}")).collect();
        out.push_str(&format!(
            "{}: {} invalid row(s): {}\n",
            f.path,
            f.rows_invalid,
            codes.join(", ")
        ));
    }
    for l in &f.failures {
        for e in &l.errors {
            out.push_str(&format!(
                "  {}:{}  {}  {}: {}\n",
                f.path, l.line, e.column, e.code, e.message
            ));
        }
    }
    let more = f.rows_invalid.saturating_sub(f.failures.len() as u64);
    if more > 0 && !f.failures.is_empty() {
        out.push_str(&format!(
            "  … and {more} more failing row(s) (--show sets how many are listed)\n"
        ));
    }
    if !f.unknown_columns.is_empty() {
        out.push_str(&format!(
            "{}: columns outside the layout {}: {}\n",
            f.path,
            f.layout.as_deref().unwrap_or("-"),
            f.unknown_columns.join(", ")
        ));
    }
    if let Some(n) = &f.note {
        out.push_str(&format!("{}: note: {n}\n", f.path));
    }
}
