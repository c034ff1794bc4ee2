//! Reads one JSON Lines file's rows through the same judging as CSV rows
//! (`Judge`): each object a valid event or a dead letter, each line that is
//! no usable object a `malformed_json` dead letter with the reason and
//! position, reading going on past it.
//!
//! The layout is known once the first object is read, so lines before it
//! are dead letters before the file's rows start. A file with lines but no
//! object at all is not JSON Lines: it is rejected as a whole, as is one
//! whose first object's keys match no layout, or (with `--unknown-columns
//! reject`) whose lines name keys outside the layout.
//!
//! It never talks to the database and never moves or deletes files.

use super::{finish_stats, log_unknown, reject_read, Aborted, Content, Extra, Judge, Verdicts};
use super::{FileOutcome, ParseConfig, ParsedFile};
use crate::event::{Field, RuleCode};
use crate::source::discover::Candidate;
use crate::source::jsonl::{JsonLine, JsonlReader};
use crate::validate::Failure;

/// Reads a JSON Lines file's rows: what it held, or its rejection.
pub(super) fn read_jsonl<V: Verdicts>(
    content: Content,
    file: &Candidate,
    file_no: i32,
    cfg: &ParseConfig,
    out: &mut V,
) -> Result<Result<ParsedFile, FileOutcome>, Aborted> {
    let mut reader = JsonlReader::new(
        content,
        cfg.max_record_bytes,
        cfg.max_fields,
        cfg.unknown_columns,
    )
    .with_layouts(cfg.layouts);
    let mut judge = Judge::new(file_no, cfg);
    let mut stats = ParsedFile::default();
    let mut first_malformed = None;
    loop {
        let line = match reader.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => return Ok(Err(reject_read(reader.get_mut(), e.to_string(), cfg))),
        };
        match line {
            JsonLine::Row { rec, layout, extra } => {
                if stats.layout.is_none() {
                    stats.layout = Some(layout.id);
                    log_unknown(file, layout, cfg);
                    judge.start_file(file, layout, out);
                }
                judge.row(&rec, layout, Extra::Made(extra), out, &mut stats)?;
            }
            JsonLine::Malformed { line, raw, reason } => {
                if first_malformed.is_none() {
                    first_malformed = Some(reason.clone());
                }
                let fail = Failure::new(RuleCode::MalformedJson, Field::EventId, "", reason);
                stats.rows_read += 1;
                judge.dead_letter(line, raw, None, &[fail], out, &mut stats)?;
            }
        }
    }
    if let (None, Some(first)) = (stats.layout, first_malformed) {
        let reason = format!(
            "no line of the file is a JSON object ({} line(s) read; {first}): is it JSON Lines?",
            stats.rows_read
        );
        return Ok(Err(reject_read(reader.get_mut(), reason, cfg)));
    }
    stats.unknown_columns = reader.unknown_keys().to_vec();
    Ok(Ok(finish_stats(reader.get_mut(), stats)))
}
