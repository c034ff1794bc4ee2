//! `dead-letters list` and `replay` output: aligned tables for people,
//! JSON for scripts. Pure functions, no I/O.

use super::replay::ReplayReport;
use super::{Format, Listing};

/// Longest raw line a table shows, in characters.
const RAW_CHARS: usize = 60;

/// Rows as aligned columns under a header (numbers right-aligned).
fn table(header: &[&str], rows: &[Vec<String>], numeric: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let pad = w - cell.chars().count();
            let last = i + 1 == cells.len();
            if numeric.get(i).copied().unwrap_or(false) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// A raw line on one table line: line breaks shown as `\n`, cut to
/// [`RAW_CHARS`].
fn one_line(raw: &str) -> String {
    let flat = raw.replace('\r', "\\r").replace('\n', "\\n");
    match flat.char_indices().nth(RAW_CHARS) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

/// What `dead-letters list` prints.
pub fn listing(l: &Listing, format: Format) -> Result<String, serde_json::Error> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(l)? + "\n");
    }
    let rows: Vec<Vec<String>> = l
        .dead_letters
        .iter()
        .map(|d| {
            vec![
                d.id.to_string(),
                d.rejected_at.clone(),
                format!("{}:{}", d.source_file, d.source_line),
                d.error_codes.join(","),
                match (&d.replay_id, &d.replay_outcome) {
                    (Some(id), Some(o)) => format!("{o} ({id})"),
                    _ => "-".to_string(),
                },
                one_line(&d.raw_line),
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "ID",
                "REJECTED",
                "FILE:LINE",
                "CODES",
                "REPLAYED",
                "RAW LINE",
            ],
            &rows,
            &[true, false, false, false, false, false],
        ));
    }
    out.push_str(&format!(
        "{} of {} dead letter(s) shown, newest first\n",
        rows.len(),
        l.total
    ));
    Ok(out)
}

/// What `dead-letters replay` prints.
pub fn replay(r: &ReplayReport, format: Format) -> Result<String, serde_json::Error> {
    if format == Format::Json {
        return Ok(serde_json::to_string_pretty(r)? + "\n");
    }
    let t = &r.totals;
    let mut out = match r.replay_id {
        Some(id) => format!("replay {id}: "),
        None => "dry run, nothing changed: ".to_string(),
    };
    out.push_str(&format!(
        "{} dead letter(s) considered: {} loaded, {} duplicate, {} still invalid\n",
        t.considered, t.loaded, t.duplicate, t.still_invalid
    ));
    if !r.by_code.is_empty() {
        let rows: Vec<Vec<String>> = r
            .by_code
            .iter()
            .map(|(code, o)| {
                vec![
                    code.clone(),
                    o.considered.to_string(),
                    o.loaded.to_string(),
                    o.duplicate.to_string(),
                    o.still_invalid.to_string(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[
                "CODE (AS REJECTED)",
                "CONSIDERED",
                "LOADED",
                "DUPLICATE",
                "STILL INVALID",
            ],
            &rows,
            &[false, true, true, true, true],
        ));
    }
    if !r.still_invalid_by_code.is_empty() {
        let now: Vec<String> = r
            .still_invalid_by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        out.push_str(&format!(
            "\nstill invalid under these settings: {}\n",
            now.join(", ")
        ));
    }
    for (file, why) in &r.not_replayable {
        out.push_str(&format!("not replayable: {file}: {why}\n"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_raw_lines_stay_on_one_line() {
        let t = table(
            &["CODE", "N"],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer".into(), "200".into()],
            ],
            &[false, true],
        );
        assert_eq!(t, "CODE      N\na         1\nlonger  200\n");
        assert_eq!(one_line("a\r\nb"), "a\\r\\nb");
        let long = "x".repeat(100);
        assert_eq!(one_line(&long).chars().count(), RAW_CHARS + 1);
    }
}
