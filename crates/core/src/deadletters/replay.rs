//! `shopstream dead-letters replay`: validates the pending dead letters
//! matching the filters again (see [`super::revalidate`]) and moves those
//! that now pass into `ecommerce_events`, in ONE transaction:
//!
//! 1. the loaders' writer lock ([`WRITER_KEY`], transaction-scoped): no
//!    loader decides an id while the replay does, and two replays run one
//!    after the other;
//! 2. a batch id from `shopstream_batch_id_seq` (the replay's id);
//! 3. the dead letters, read through a portal in (batch, file, line)
//!    order, re-validated, the valid ones staged in `shopstream_stage`;
//! 4. the staged route's `INSERT … SELECT` of the ids the table does not
//!    hold ([`staged::insert_events`]): an id already in the table, or a second
//!    copy among the replayed rows, is a duplicate; a row the database
//!    refuses stays a dead letter (`rejected_by_database`);
//! 5. each moved dead letter marked with the replay, `loaded` or
//!    `duplicate`, and its event id; the replay's row in
//!    `dead_letter_replays`; and, when rows moved, a row in
//!    `data_quality_metrics` under the replay's batch id, which makes every
//!    running loader read the table's ids again before its next batch (see
//!    [`crate::sink::dedup::TableIds`]);
//! 6. COMMIT (a dry run rolls back instead, and draws no batch id).
//!
//! Killed at any point before the COMMIT, nothing of it remains; run again,
//! it finds only the dead letters not yet replayed. Dead letters that stay
//! are not changed. It never reads input files (but see
//! [`super::revalidate::header_on_disk`]) and never writes the ledger.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio_postgres::{Client, Row, Transaction};

use super::revalidate::{self, FileFacts, Mapping, Stored, Verdict};
use super::{DeadLetterError, Doing, ReplayArgs, FILTER_SQL};
use crate::event::RuleCode;
use crate::schema::Registry;
use crate::sink::transaction::{self, INSERT_QUALITY, WRITER_KEY};
use crate::sink::{copy, ledger, stage, staged};
use crate::source::format::{Format, RecordFormat};
use crate::validate::Rules;

/// Dead letters read and staged at a time.
const CHUNK_ROWS: i32 = 5000;
/// The replay id of a dry run (ids from the sequence start at 1).
const DRY_RUN_ID: i64 = 0;
/// Longest header read from an original file (see
/// [`revalidate::header_on_disk`]).
const HEADER_BYTES: usize = 64 << 20;

/// What became of dead letters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    pub considered: u64,
    pub loaded: u64,
    pub duplicate: u64,
    pub still_invalid: u64,
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplayReport {
    /// The replay's batch id; `None` for a dry run.
    pub replay_id: Option<i64>,
    pub dry_run: bool,
    #[serde(flatten)]
    pub totals: Outcomes,
    /// Loaded or duplicate rows older than --late-threshold-secs now.
    pub late_arrivals: u64,
    /// By the codes recorded at rejection (a row with two counts in both).
    pub by_code: BTreeMap<String, Outcomes>,
    /// The rules the rows left fail under this replay's settings.
    pub still_invalid_by_code: BTreeMap<String, u64>,
    /// Files whose lines cannot be read again, with why.
    pub not_replayable: BTreeMap<String, String>,
}

/// The files of a replay; file number `n` is entry `n - 1`.
#[derive(Default)]
struct Files {
    /// (the batch that rejected its rows, its path).
    keys: Vec<(i64, String)>,
    mappings: Vec<Mapping>,
    numbers: HashMap<(i64, String), i32>,
}

/// One replay in progress.
struct Pass<'a> {
    args: &'a ReplayArgs,
    rules: Rules,
    layouts: Registry,
    now: i64,
    files: Files,
    report: ReplayReport,
    /// Rows staged as valid (before the database's own checks).
    valid: u64,
    stage: BytesMut,
    extra: Vec<u8>,
}

/// Runs one replay (see the module docs). `rules` and `layouts` are
/// `args.rules`' (checked by the caller).
pub async fn replay(
    client: &mut Client,
    args: &ReplayArgs,
    rules: Rules,
    layouts: Registry,
) -> Result<ReplayReport, DeadLetterError> {
    transaction::prepare(client).await.map_err(|e| match e {
        transaction::SinkError::Db(source) => DeadLetterError::Db {
            doing: "preparing the staging table",
            source,
        },
        other => DeadLetterError::Prepare(other),
    })?;
    let started_at = SystemTime::now();
    let tx = client.transaction().await.doing("starting the replay")?;
    writer_lock(&tx).await?;
    let replay_id = if args.dry_run {
        DRY_RUN_ID
    } else {
        tx.query_one("SELECT nextval('shopstream_batch_id_seq')", &[])
            .await
            .doing("drawing the replay's batch id")?
            .get(0)
    };
    let mut pass = Pass {
        args,
        rules,
        layouts,
        now: micros(started_at),
        files: Files::default(),
        report: ReplayReport {
            replay_id: (!args.dry_run).then_some(replay_id),
            dry_run: args.dry_run,
            ..ReplayReport::default()
        },
        valid: 0,
        stage: BytesMut::new(),
        extra: vec![],
    };
    pass.read(&tx).await?;
    if pass.valid > 0 {
        pass.load(&tx, replay_id).await?;
    }
    let report = pass.report;
    if args.dry_run {
        tx.rollback().await.doing("rolling the dry run back")?;
        return Ok(report);
    }
    record(&tx, replay_id, started_at, args, &report).await?;
    transaction::debug_pause_before_commit().await;
    tx.commit().await.doing("committing the replay")?;
    Ok(report)
}

/// Takes the loaders' writer lock for the transaction, waiting as long as
/// a loader's batch takes.
async fn writer_lock(tx: &Transaction<'_>) -> Result<(), DeadLetterError> {
    let got: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&WRITER_KEY])
        .await
        .doing("taking the writer lock")?
        .get(0);
    if !got {
        tracing::info!("waiting for the writer lock: a loader is committing a batch");
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_KEY])
            .await
            .doing("waiting for the writer lock")?;
    }
    Ok(())
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Pass<'_> {
    /// Reads the pending dead letters matching the filters, chunk by chunk,
    /// and stages those that now pass.
    async fn read(&mut self, tx: &Transaction<'_>) -> Result<(), DeadLetterError> {
        let f = &self.args.filters;
        let sql = format!(
            "SELECT batch_id, source_file, source_line, raw_line, event_id, error_codes,
                    source_layout
             FROM dead_letter_events WHERE replay_id IS NULL AND {FILTER_SQL}
             ORDER BY batch_id, source_file, source_line"
        );
        let statement = tx.prepare(&sql).await.doing("reading dead letters")?;
        let portal = tx
            .bind(&statement, &[&f.codes, &f.file, &f.since])
            .await
            .doing("reading dead letters")?;
        loop {
            let rows = tx
                .query_portal(&portal, CHUNK_ROWS)
                .await
                .doing("reading dead letters")?;
            if rows.is_empty() {
                return Ok(());
            }
            self.learn_files(tx, &rows).await?;
            for r in &rows {
                self.one(r);
            }
            self.flush_stage(tx).await?;
        }
    }

    /// Numbers the files of `rows` not seen yet and maps their lines.
    async fn learn_files(
        &mut self,
        tx: &Transaction<'_>,
        rows: &[Row],
    ) -> Result<(), DeadLetterError> {
        let mut new: Vec<((i64, String), Option<String>)> = vec![];
        for r in rows {
            let key: (i64, String) = (r.get(0), r.get(1));
            if !self.files.numbers.contains_key(&key) && !new.iter().any(|(k, _)| *k == key) {
                new.push((key, r.get(6)));
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let keys: Vec<(i64, String)> = new.iter().map(|(k, _)| k.clone()).collect();
        let recorded = ledger::recorded_columns(tx, &keys)
            .await
            .doing("reading the files' headers from the ledger")?;
        for ((key, source_layout), recorded) in new.into_iter().zip(recorded) {
            let on_disk = match &recorded {
                Some(r) if r.header.is_none() => r.kept_at.clone().zip(r.content_hash.clone()),
                _ => None,
            };
            let header_on_disk = match on_disk {
                // Reads (and hashes) the whole file: off the async threads.
                Some((at, hash)) => tokio::task::spawn_blocking(move || {
                    revalidate::header_on_disk(at.as_ref(), &hash, HEADER_BYTES)
                })
                .await
                .ok()
                .flatten(),
                None => None,
            };
            let facts = FileFacts {
                recorded,
                source_layout,
                header_on_disk,
            };
            let json_lines =
                Format::of(std::path::Path::new(&key.1)).records == RecordFormat::Jsonl;
            let mapping = match json_lines {
                // Their raw lines are JSON objects, not CSV records.
                true => {
                    Mapping::Unusable("dead letters of JSON Lines files are not replayed".into())
                }
                false => revalidate::mapping(&facts, self.args.rules.unknown_columns, self.layouts),
            };
            if let Mapping::Unusable(why) = &mapping {
                tracing::warn!(file = ?key.1, "its dead letters cannot be replayed: {why}");
                self.report
                    .not_replayable
                    .insert(key.1.clone(), why.clone());
            }
            self.files.keys.push(key.clone());
            self.files.mappings.push(mapping);
            self.files.numbers.insert(key, self.files.keys.len() as i32);
        }
        Ok(())
    }

    /// Re-validates one dead letter and counts what it is now.
    fn one(&mut self, r: &Row) {
        let key: (i64, String) = (r.get(0), r.get(1));
        let Some(&file_no) = self.files.numbers.get(&key) else {
            return;
        };
        let codes: Vec<String> = r.get(5);
        let row = Stored {
            line: r.get(2),
            raw_line: r.get(3),
            event_id: r.get(4),
            error_codes: &codes,
            source_layout: r.get(6),
        };
        let Some(mapping) = self.files.mappings.get(file_no as usize - 1) else {
            return;
        };
        let verdict = revalidate::revalidate(
            &mut self.stage,
            &mut self.extra,
            file_no,
            &row,
            mapping,
            self.now,
            &self.rules,
        );
        self.report.totals.considered += 1;
        for c in &codes {
            self.report.by_code.entry(c.clone()).or_default().considered += 1;
        }
        match verdict {
            Verdict::Valid { .. } => self.valid += 1,
            Verdict::Invalid(now) => self.still_invalid(&codes, &now),
        }
    }

    /// Counts a dead letter that stays: `recorded` its codes, `now` the
    /// ones it fails today.
    fn still_invalid(&mut self, recorded: &[String], now: &[String]) {
        self.report.totals.still_invalid += 1;
        for c in recorded {
            self.report
                .by_code
                .entry(c.clone())
                .or_default()
                .still_invalid += 1;
        }
        for c in now {
            *self
                .report
                .still_invalid_by_code
                .entry(c.clone())
                .or_default() += 1;
        }
    }

    /// COPYs the staged rows into `shopstream_stage`.
    async fn flush_stage(&mut self, tx: &Transaction<'_>) -> Result<(), DeadLetterError> {
        if self.stage.is_empty() {
            return Ok(());
        }
        let doing = "staging the rows that now pass";
        let mut buf = BytesMut::with_capacity(self.stage.len() + 32);
        copy::header(&mut buf);
        buf.extend_from_slice(&self.stage);
        copy::trailer(&mut buf);
        self.stage.clear();
        let sink = tx.copy_in(stage::COPY_STAGE).await.doing(doing)?;
        let mut sink = std::pin::pin!(sink);
        sink.send(buf.freeze()).await.doing(doing)?;
        sink.as_mut().finish().await.doing(doing)?;
        Ok(())
    }

    /// Moves the staged rows into the event table and marks their dead
    /// letters.
    async fn load(&mut self, tx: &Transaction<'_>, replay_id: i64) -> Result<(), DeadLetterError> {
        let doing = "moving the rows into ecommerce_events";
        let paths: Vec<String> = self.files.keys.iter().map(|k| k.1.clone()).collect();
        let batches: Vec<i64> = self.files.keys.iter().map(|k| k.0).collect();
        let layouts: Vec<Option<&str>> = self
            .files
            .mappings
            .iter()
            .map(Mapping::layout_name)
            .collect();
        let moved = staged::insert_events(tx, &paths, replay_id, &layouts)
            .await
            .doing(doing)?;
        let inserted: u64 = moved.loaded.values().sum();
        if let Some(first) = moved.refused.first() {
            tracing::warn!(
                "the database refused {} replayed row(s), which stay dead letters; the first: {} \
                 line {}: {}",
                moved.refused.len(),
                paths
                    .get(first.file_no as usize - 1)
                    .map_or("?", String::as_str),
                first.line,
                first.message
            );
            let nos: Vec<i32> = moved.refused.iter().map(|r| r.file_no).collect();
            let lines: Vec<i64> = moved.refused.iter().map(|r| r.line).collect();
            for codes in refused(tx, &nos, &lines, &batches, &paths).await? {
                self.valid -= 1;
                let now = [RuleCode::RejectedByDatabase.as_str().to_string()];
                self.still_invalid(&codes, &now);
            }
        }
        let marked = mark(tx, replay_id, &batches, &paths).await?;
        let mut loaded = 0;
        let mut all = 0;
        for (outcome, codes, late, n) in marked {
            let is_loaded = outcome == "loaded";
            all += n;
            if is_loaded {
                loaded += n;
                self.report.totals.loaded += n;
            } else {
                self.report.totals.duplicate += n;
            }
            if late {
                self.report.late_arrivals += n;
            }
            for c in codes {
                let o = self.report.by_code.entry(c).or_default();
                if is_loaded {
                    o.loaded += n;
                } else {
                    o.duplicate += n;
                }
            }
        }
        if loaded != inserted || all != self.valid {
            return Err(DeadLetterError::Unbalanced {
                marked: loaded,
                inserted,
            });
        }
        Ok(())
    }
}

/// Takes the staged rows the database refused out of the move; returns
/// their dead letters' recorded codes.
async fn refused(
    tx: &Transaction<'_>,
    file_nos: &[i32],
    lines: &[i64],
    batches: &[i64],
    paths: &[String],
) -> Result<Vec<Vec<String>>, DeadLetterError> {
    let doing = "setting aside the rows the database refused";
    tx.execute(
        "UPDATE shopstream_stage s SET ok = false
         FROM unnest($1::int4[], $2::int8[]) AS r(file_no, line)
         WHERE s.file_no = r.file_no AND s.source_line = r.line",
        &[&file_nos, &lines],
    )
    .await
    .doing(doing)?;
    let rows = tx
        .query(
            "SELECT d.error_codes
             FROM unnest($1::int4[], $2::int8[]) AS r(file_no, line)
             JOIN dead_letter_events d ON d.batch_id = ($3::int8[])[r.file_no]
                  AND d.source_file = ($4::text[])[r.file_no] AND d.source_line = r.line",
            &[&file_nos, &lines, &batches, &paths],
        )
        .await
        .doing(doing)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Marks the dead letters of the staged valid rows: `loaded` when their
/// row is the one the insert kept (the first staged copy of its id, found
/// in the table under the replay's batch id), else `duplicate`. Returns
/// (outcome, recorded codes, late, count) groups.
async fn mark(
    tx: &Transaction<'_>,
    replay_id: i64,
    batches: &[i64],
    paths: &[String],
) -> Result<Vec<(String, Vec<String>, bool, u64)>, DeadLetterError> {
    let rows = tx
        .query(
            "WITH firsts AS (
               SELECT DISTINCT ON (event_id) event_id, file_no, source_line
               FROM shopstream_stage WHERE ok ORDER BY event_id, file_no, source_line),
             kept AS (
               SELECT f.file_no, f.source_line FROM firsts f
               JOIN ecommerce_events e ON e.event_id = f.event_id AND e.batch_id = $1),
             marked AS (
               UPDATE dead_letter_events d
                  SET replay_id = $1,
                      replay_outcome = CASE WHEN k.file_no IS NULL THEN 'duplicate'
                                            ELSE 'loaded' END,
                      replayed_event_id = s.event_id
                 FROM shopstream_stage s
                 LEFT JOIN kept k ON k.file_no = s.file_no AND k.source_line = s.source_line
                WHERE s.ok AND d.replay_id IS NULL
                  AND d.batch_id = ($2::int8[])[s.file_no]
                  AND d.source_file = ($3::text[])[s.file_no]
                  AND d.source_line = s.source_line
               RETURNING d.replay_outcome, d.error_codes, s.is_late_arrival)
             SELECT replay_outcome, error_codes, is_late_arrival, count(*)
             FROM marked GROUP BY 1, 2, 3",
            &[&replay_id, &batches, &paths],
        )
        .await
        .doing("marking the replayed dead letters")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, i64>(3) as u64))
        .collect())
}

/// The replay's history row and, when rows moved, its quality row (a
/// batch without files: what makes running loaders read the ids again).
async fn record(
    tx: &Transaction<'_>,
    replay_id: i64,
    started_at: SystemTime,
    args: &ReplayArgs,
    report: &ReplayReport,
) -> Result<(), DeadLetterError> {
    let t = &report.totals;
    let r = &args.rules;
    let settings = serde_json::json!({
        "max_price": r.max_price,
        "future_tolerance_secs": r.future_tolerance_secs,
        "late_threshold_secs": r.late_threshold_secs,
        "source_timezone": r.source_timezone.name(),
        "max_event_age_secs": super::secs(r.max_event_age),
        "unknown_columns": format!("{:?}", r.unknown_columns).to_lowercase(),
    });
    tx.execute(
        "INSERT INTO dead_letter_replays
           (replay_id, started_at, filters, settings, considered, loaded, duplicate,
            still_invalid, still_invalid_by_code)
         VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, $5, $6, $7, $8, $9::text::jsonb)",
        &[
            &replay_id,
            &started_at,
            &args.filters.to_json().to_string(),
            &settings.to_string(),
            &(t.considered as i64),
            &(t.loaded as i64),
            &(t.duplicate as i64),
            &(t.still_invalid as i64),
            &serde_json::to_string(&report.still_invalid_by_code)?,
        ],
    )
    .await
    .doing("recording the replay")?;
    let moved = (t.loaded + t.duplicate) as i64;
    if moved == 0 {
        return Ok(());
    }
    // Counted as its own batch: rows read = valid = what moved; the rows
    // left were counted as rejected by the batches that read them.
    tx.execute(
        INSERT_QUALITY,
        &[
            &replay_id,
            &started_at,
            &0i32,
            &moved,
            &moved,
            &(t.loaded as i64),
            &(t.duplicate as i64),
            &0i64,
            &Some(1.0f64),
            &(report.late_arrivals as i64),
            &"{}",
        ],
    )
    .await
    .doing("recording the replay's quality row")?;
    Ok(())
}
