//! The loader's state between passes and one pass: list the input, finish
//! files the ledger already has, cut the rest into batches, load each
//! (through `pipeline::batch`), then settle what committed: the observers,
//! the log, and each file's fate on disk.
//!
//! It owns the connection, the filter of the table's ids and the route. It
//! never retries (the supervisor in `pipeline::run` does) and never moves a
//! file before its fate is committed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::batch::{self as batch_load, Reading};
use super::events::batch_done;
use super::read::ParseConfig;
use super::resume;
use crate::batch::{BatchReport, FileStatus};
use crate::db::connect::Database;
use crate::db::migrate::{self, MigrateError};
use crate::db::retry::Class;
use crate::loader_event::{LoaderEvent, Observers};
use crate::observe::alerts::{Alerter, Delivery};
use crate::observe::health::Health;
use crate::observe::metrics::MetricsObserver;
use crate::observe::progress::LoadProgress;
use crate::retention;
use crate::shutdown::Shutdown;
use crate::sink::dedup::TableIds;
use crate::sink::ledger;
use crate::sink::transaction as batch;
use crate::source::discover::{Candidate, FileId};
use crate::source::dispose::{AfterLoad, Disposition, Fate};
use crate::source::input::{Input, InputConfig};
use crate::source::scope::Include;

use super::options::*;
use super::run::{connect_failed, Failed};
use super::summary::*;
use super::suspects::Suspects;
/// A file version as the ledger identifies it (see [`ledger::SAME_FILE`]).
type FileKey = (PathBuf, u64, i64, Option<FileId>);

fn key(c: &Candidate) -> FileKey {
    (c.path.clone(), c.size, c.mtime_micros, c.file_id)
}

/// How soon files held by another loader are looked at again.
pub(super) const CLAIMED_ELSEWHERE_RETRY: Duration = Duration::from_millis(500);

/// What one pass of the loader did.
#[derive(Debug, Default)]
pub(super) struct Pass {
    /// Some file was settled (committed or finished).
    pub(super) progressed: bool,
    /// Some file was left to another loader that holds it.
    pub(super) elsewhere: bool,
    /// The input could not be listed (why): a local or storage problem,
    /// never the database's, so it is no failure of the pass.
    pub(super) unlisted: Option<String>,
    /// Some file was held back after failing alone (see
    /// [`super::suspects`]): when the first is due again.
    pub(super) held_until: Option<Instant>,
}

impl Pass {
    /// Whether the pass shows that loading works, so the breaker closes: it
    /// committed something, or found nothing to do. A pass that only left
    /// files to another loader (or waited for the writer lock in vain) or
    /// held back a failing file shows nothing, and a failure streak goes on
    /// counting across it.
    pub(super) fn shows_loading_works(&self) -> bool {
        self.progressed || (!self.elsewhere && self.held_until.is_none())
    }
}

/// A file whose fate is committed and now must be carried out on disk:
/// `Some(reason)` when it was rejected.
/// A file's fate to carry out: the file, the reason when it was rejected,
/// and its ledger row (where the disposition is recorded).
type Job = (Candidate, Option<String>, Option<i64>);

/// The loader's state between passes.
pub(super) struct Loader<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) db: &'a Database,
    pub(super) input: Input,
    /// How batches read their files.
    pub(super) reading: Reading,
    /// The connection: listing against the ledger, batches, dispositions,
    /// probes.
    pub(super) client: Option<Client>,
    /// The event table's ids (see [`crate::sink::dedup`]).
    pub(super) table_ids: TableIds,
    /// The staged route (see [`crate::sink::route`]): the event table
    /// checks what the validator does not, or refused a row.
    pub(super) staged: bool,
    pub(super) migrated: bool,
    pub(super) done: HashSet<FileKey>,
    /// The next pass checks its new files against the ledger before
    /// cutting batches (see [`Loader::pass`]).
    pub(super) ledger_first: bool,
    /// Files of failed batches: loaded alone, held back after failing alone.
    pub(super) suspects: Suspects,
    pub(super) summary: RunSummary,
    /// Health, metrics, alerts and (`--once`) progress: every event the
    /// loader emits goes to each, in order.
    pub(super) observers: Observers,
    /// Fault injection for the crash tests: a pause between a commit and
    /// carrying out the files' fates, so a test can kill the process there.
    pub(super) pause_after_commit: Option<Duration>,
    /// When the partitions are made ahead (and, with `--retention`, old
    /// data pruned) next: at the first pass, then hourly.
    pub(super) maintain_at: std::time::Instant,
}

/// How often the partitions are made ahead and `--retention` prunes.
const MAINTAIN_EVERY: Duration = Duration::from_secs(3600);
/// How soon a maintenance that failed is tried again.
const MAINTAIN_RETRY: Duration = Duration::from_secs(300);

/// The environment variable behind [`Loader::pause_after_commit`]
/// (milliseconds). Not an option: it exists to test crash safety.
pub const PAUSE_AFTER_COMMIT_ENV: &str = "SHOPSTREAM_DEBUG_PAUSE_AFTER_COMMIT_MS";

impl<'a> Loader<'a> {
    /// The loader over `args`'s input with its observers: `health`,
    /// the metrics, the alerts (whose delivery task is returned) and, with
    /// `--once`, the progress bar.
    pub(super) fn start(
        args: &'a RunArgs,
        db: &'a Database,
        health: &Health,
        mut cfg: ParseConfig,
    ) -> Result<(Loader<'a>, Delivery), PipelineError> {
        let input = Input::new(&InputConfig {
            input: args.input.clone(),
            after_load: args.after_load,
            archive: args.archive_dir.clone(),
            quarantine: args.quarantine_dir.clone(),
            full_relist: Duration::from_secs_f64(args.full_relist_secs),
            include: Include::new(&args.read.include)?,
            read_timeout: args.read.read_timeout(),
        })?;
        let source = input.source();
        cfg.input_root = std::fs::canonicalize(&args.input).ok().map(Arc::from);
        let (alerter, delivery) = Alerter::start(args.alerts.config()?)?;
        let mut observers = Observers::new();
        observers.add(health.clone());
        observers.add(MetricsObserver);
        observers.add(alerter);
        if args.once {
            observers.add(LoadProgress::default());
        }
        let ignored = args.ignored_options();
        if !ignored.is_empty() {
            tracing::warn!(
                "{} no longer do anything: one connection loads, one batch at a time",
                ignored.join(", ")
            );
        }
        let loader = Loader {
            observers,
            args,
            db,
            reading: Reading { source, cfg },
            input,
            client: None,
            table_ids: TableIds::beside(db.connector()),
            staged: false,
            migrated: false,
            done: HashSet::new(),
            ledger_first: true,
            suspects: Suspects::default(),
            summary: RunSummary::default(),
            pause_after_commit: std::env::var(PAUSE_AFTER_COMMIT_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            maintain_at: std::time::Instant::now(),
        };
        Ok((loader, delivery))
    }

    /// Ends a run: tells the observers, waits (at most 30 s) for queued
    /// alerts to be delivered, logs and returns the totals.
    pub(super) async fn stop(self, delivery: Delivery) -> RunSummary {
        let mut observers = self.observers;
        observers.emit(LoaderEvent::Stopped);
        let summary = self.summary;
        // Deliver what is queued (a webhook may take a few seconds), then stop.
        drop(observers);
        if !delivery.finish(Duration::from_secs(30)).await {
            tracing::warn!("gave up waiting for alert delivery after 30 s");
        }
        tracing::info!(
            "loader stopped: {} batches, {} files loaded{}, {} duplicate, {} rejected ({} quarantined); rows {} read, {} loaded, {} duplicate, {} rejected{}",
            summary.batches,
            summary.files_loaded,
            summary.only_duplicates_note(),
            summary.files_duplicate,
            summary.files_rejected,
            summary.files_quarantined,
            summary.rows_read,
            summary.rows_loaded,
            summary.rows_duplicate,
            summary.rows_rejected,
            self.args
                .where_rejects_went(summary.rows_rejected, summary.files_quarantined)
        );
        summary
    }
}

impl Loader<'_> {
    /// The connection, made (and the schema migrated, once) when missing.
    pub(super) async fn client(&mut self) -> Result<&mut Client, Failed> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let once = self.args.once;
            let mut c = self
                .db
                .connect()
                .await
                .map_err(|e| connect_failed(e, once))?;
            if !self.migrated {
                match migrate::migrate(&mut c).await {
                    Ok(report) => {
                        for (v, name) in &report.applied {
                            tracing::info!("applied migration {v} ({name})");
                        }
                    }
                    Err(MigrateError::Apply { source, .. } | MigrateError::History(source)) => {
                        return Err(Failed::db(source))
                    }
                    Err(e) => return Err(Failed::Stop(PipelineError::Migrate(e))),
                }
                self.migrated = true;
            }
            batch::prepare(&c).await?;
            let checks = crate::sink::route::server_only_checks(&c)
                .await
                .map_err(Failed::db)?;
            if !checks.is_empty() && !self.staged {
                tracing::info!(
                    "ecommerce_events has {} that shopstream does not check itself: every row \
                     goes through staging, where a row the server refuses becomes a dead letter",
                    checks.join(", ")
                );
            }
            self.staged |= !checks.is_empty();
            self.client = Some(c);
        }
        self.client.as_mut().ok_or_else(no_connection)
    }

    /// One trivial round trip: is the database back?
    pub(super) async fn probe(&mut self) -> Result<(), Failed> {
        let c = self.client().await?;
        c.simple_query("SELECT 1").await.map_err(Failed::db)?;
        Ok(())
    }

    /// Loads one batch. A row the server refuses on the copy route (a check
    /// the catalogue did not show, a value out of the column's range) turns
    /// the loader to the staged route for good, and the batch is loaded
    /// that way: there refused rows become dead letters.
    /// A batch that fails for a reason about its work makes its files
    /// suspects (see [`super::suspects`]).
    pub(super) async fn load(&mut self, files: Vec<Candidate>) -> Result<BatchReport, Failed> {
        let group = files.clone();
        let staged = self.staged;
        let reading = self.reading.clone();
        self.client().await?;
        let (Some(c), table) = (self.client.as_mut(), &mut self.table_ids) else {
            return Err(no_connection());
        };
        let result = batch_load::load(c, table, files.clone(), &reading, staged).await;
        let result = match result {
            Err(e) if !staged && e.is_refused_row() => {
                tracing::warn!(
                    "the database refused a row the validator accepted ({e}); from now on every \
                     row goes through staging, where refused rows become dead letters"
                );
                self.staged = true;
                let c = self.client().await?;
                batch_load::load(c, &mut TableIds::default(), files, &reading, true).await
            }
            r => r,
        };
        result.map_err(|e| {
            // Connections left in an unknown state are made again.
            self.client = None;
            if e.about_the_work() {
                let backoff = self.args.backoff().unwrap_or_default();
                (self.suspects).failed(&group, &backoff, Instant::now(), &mut rand::rng());
            }
            Failed::from(e)
        })
    }

    /// Lists the folder, finishes files the ledger already has, and commits
    /// the rest in batches, one after the other.
    pub(super) async fn pass(
        &mut self,
        shutdown: &Shutdown,
        on_batch: &mut impl FnMut(&BatchReport),
    ) -> Result<Pass, Failed> {
        if let Some(prefix) = self.input.needs_seed() {
            let after_load = self.args.after_load;
            let c = self.client().await?;
            let seed = resume::from_ledger(c, &prefix, after_load)
                .await
                .map_err(Failed::db)?;
            self.input.seed(seed);
        }
        self.maintain().await?;
        let started = std::time::Instant::now();
        let listed = self.input.list().await;
        let listed_in = started.elapsed();
        self.emit(LoaderEvent::Listed);
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                return Ok(Pass {
                    unlisted: Some(e.to_string()),
                    ..Pass::default()
                })
            }
        };
        let fresh: Vec<Candidate> = listed
            .into_iter()
            .filter(|f| !self.done.contains(&key(f)))
            .collect();
        self.record_lag(&fresh);
        let mut pass = Pass::default();
        if fresh.is_empty() {
            self.input.settled_except(&[]);
            // Nothing to do, but a dead connection must still be noticed.
            let c = self.client().await?;
            c.simple_query("SELECT 1").await.map_err(Failed::db)?;
            return Ok(pass);
        }
        let (fresh, leftovers) = self.skip_ledgered(fresh).await?;
        tracing::debug!(
            list_ms = listed_in.as_secs_f64() * 1000.0,
            ledger_ms = (started.elapsed() - listed_in).as_secs_f64() * 1000.0,
            files = fresh.len(),
            "listed"
        );
        self.input.settled_except(&fresh);
        for (cand, _, _) in &leftovers {
            self.done.insert(key(cand));
            self.suspects.settled(cand);
        }
        if !leftovers.is_empty() {
            pass.progressed = true;
            self.dispose(leftovers).await;
        }
        // Files of a failed batch go alone, after the rest; one that failed
        // alone waits for its own backoff while the rest goes on.
        let split = self.suspects.split(fresh, Instant::now());
        pass.held_until = split.held_until;
        let mut batches = self::batches(
            split.rest,
            self.args.batch_max_files as usize,
            self.args.batch_max_bytes,
        );
        batches.extend(split.alone.into_iter().map(|c| vec![c]));
        let mut waiting: Vec<Candidate> = batches.iter().flatten().cloned().collect();
        self.emit(LoaderEvent::Queued {
            files: waiting.len() as u64,
            bytes: waiting.iter().map(|c| c.size).sum(),
        });
        for group in batches {
            // A batch that started always finishes (commit or roll back).
            if shutdown.is_triggered() {
                break;
            }
            self.maintain().await?;
            let report = self.load(group).await?;
            pass.elsewhere |= !report.elsewhere.is_empty();
            // Another loader's, or the ledger's by now: see them first.
            self.ledger_first |= !report.elsewhere.is_empty();
            let settling = std::time::Instant::now();
            if self.settle(report, &mut waiting, on_batch).await {
                pass.progressed = true;
            }
            tracing::debug!(
                settle_ms = settling.elapsed().as_secs_f64() * 1000.0,
                "settled"
            );
        }
        Ok(pass)
    }

    /// New files the ledger already has are finished (moved as their fate
    /// says) instead of loaded. The first pass, one after a batch left a
    /// file out, and one with more new files than a batch takes ask the
    /// ledger first (one query); otherwise (the common case while watching:
    /// a file or two) the batch's own claim, which asks the ledger anyway,
    /// is the check: a file it finds there is left out, and the next pass
    /// asks first.
    async fn skip_ledgered(
        &mut self,
        fresh: Vec<Candidate>,
    ) -> Result<(Vec<Candidate>, Vec<Job>), Failed> {
        let bytes: u64 = fresh.iter().map(|c| c.size).sum();
        let one_batch = fresh.len() as u64 <= self.args.batch_max_files as u64
            && bytes <= self.args.batch_max_bytes;
        if !self.ledger_first && one_batch {
            return Ok((fresh, vec![]));
        }
        self.ledger_first = false;
        let after_load = self.args.after_load;
        let c = self.client().await?;
        let (load, leftovers, settled) = skip_ledgered(c, fresh, after_load)
            .await
            .map_err(Failed::db)?;
        // Finished before (kept where they are): not looked at again.
        self.done.extend(settled.iter().map(key));
        Ok((load, leftovers))
    }

    /// When due (at the first pass, then hourly; never inside a batch):
    /// the event table's partitions made ahead and, with `--retention`,
    /// what is older pruned (see [`crate::retention`]), in a transaction
    /// of its own under the writer lock. A failure is logged and tried
    /// again in a few minutes: rows of a month without a partition go to
    /// the default partition, so loading never waits for it.
    async fn maintain(&mut self) -> Result<(), Failed> {
        if std::time::Instant::now() < self.maintain_at {
            return Ok(());
        }
        let retention = self.args.retention;
        let c = self.client().await?;
        let result = match retention {
            Some(keep) => retention::prune(c, keep, false, Some(retention::LOADER_LOCK_TIMEOUT))
                .await
                .map(|p| {
                    if p.events() + p.dead_letters + p.quality_rows > 0 {
                        tracing::info!(
                            "retention: removed what is older than {}: {} events ({} partitions), \
                         {} dead letters, {} quality rows",
                            p.bound,
                            p.events(),
                            p.dropped_partitions.len(),
                            p.dead_letters,
                            p.quality_rows
                        );
                    }
                }),
            None => retention::maintain(c, Some(retention::LOADER_LOCK_TIMEOUT))
                .await
                .map(|_| ()),
        };
        self.maintain_at = std::time::Instant::now()
            + match result {
                Ok(()) => MAINTAIN_EVERY,
                Err(e) => {
                    let denied = matches!(&e, retention::RetentionError::Database { source, .. }
                        if source.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE));
                    tracing::warn!(
                        "could not make the partitions of ecommerce_events ahead{} ({e}); rows \
                         of a month without a partition go to ecommerce_events_default, loading \
                         goes on; trying again in {} (a role that does not own the table \
                         cannot: run `shopstream prune` as the owner)",
                        if retention.is_some() {
                            " or prune old data"
                        } else {
                            ""
                        },
                        if denied { "an hour" } else { "5 minutes" }
                    );
                    if denied {
                        MAINTAIN_EVERY
                    } else {
                        MAINTAIN_RETRY
                    }
                }
            };
        Ok(())
    }

    /// Books one committed batch: the lag and the batch to the observers,
    /// the log, then each file's fate on disk. True when some file was
    /// settled.
    pub(super) async fn settle(
        &mut self,
        report: BatchReport,
        waiting: &mut Vec<Candidate>,
        on_batch: &mut impl FnMut(&BatchReport),
    ) -> bool {
        let mut progressed = false;
        let done = batch_done(&report, now_micros());
        let mut jobs: Vec<Job> = vec![];
        for f in &report.files {
            let Some(cand) = &f.candidate else { continue };
            let rejected = match &f.status {
                FileStatus::Changed => continue,
                FileStatus::Loaded | FileStatus::Duplicate { .. } => None,
                FileStatus::Rejected { reason } => Some(reason.clone()),
                FileStatus::AlreadyDone { rejected } => rejected.clone(),
            };
            self.done.insert(key(cand));
            self.input.settled(cand);
            self.suspects.settled(cand);
            progressed = true;
            jobs.push((cand.clone(), rejected, f.ledger_id));
        }
        let settled: HashSet<&Candidate> = report
            .files
            .iter()
            .filter_map(|f| f.candidate.as_ref())
            .chain(&report.elsewhere)
            .collect();
        waiting.retain(|c| !settled.contains(c));
        // The lag first: its alerts come before the batch's.
        self.record_lag(waiting);
        self.emit(LoaderEvent::Batch(done));
        if report.files.is_empty() {
            return progressed;
        }
        log_batch(&report);
        self.summary.add(&report);
        on_batch(&report);
        if let Some(pause) = self.pause_after_commit {
            tracing::warn!(
                "committed; pausing {} ms before moving files ({PAUSE_AFTER_COMMIT_ENV})",
                pause.as_millis()
            );
            tokio::time::sleep(pause).await;
        }
        self.dispose(jobs).await;
        progressed
    }

    /// Publishes how many files wait and how old the oldest is.
    pub(super) fn record_lag(&mut self, waiting: &[Candidate]) {
        let now = now_micros();
        let oldest = waiting
            .iter()
            .map(|c| (now - c.mtime_micros).max(0))
            .max()
            .unwrap_or(0) as f64
            / 1e6;
        self.emit(LoaderEvent::Lag {
            waiting_files: waiting.len() as u64,
            oldest_waiting_secs: oldest,
        });
    }

    /// Hands one event to every observer (health, metrics, alerts,
    /// progress), in order; none of them waits.
    pub(super) fn emit(&mut self, event: LoaderEvent) {
        self.observers.emit(event);
    }

    /// Lists the input without reading or loading anything (while the
    /// circuit is open), to keep the lag current.
    pub(super) async fn relist_for_lag(&mut self) {
        let listed = self.input.list().await;
        self.emit(LoaderEvent::Listed);
        if let Ok(listed) = listed {
            let waiting: Vec<Candidate> = listed
                .into_iter()
                .filter(|f| !self.done.contains(&key(f)))
                .collect();
            self.record_lag(&waiting);
        }
    }

    /// Carries out committed fates on disk (keep, archive, delete,
    /// quarantine) and records where each file went. Never fails the pass:
    /// the data is committed; a file that cannot be moved is logged and
    /// tried again at the next start.
    pub(super) async fn dispose(&mut self, jobs: Vec<Job>) {
        let disposer = self.reading.source.clone();
        let done = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(c, rejected, id)| {
                    let fate = match &rejected {
                        Some(reason) => Fate::Rejected { reason },
                        None => Fate::Processed,
                    };
                    let result = disposer.finish(&c, fate);
                    (c, rejected, id, result)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            tracing::error!("the file mover thread failed; files stay where they are");
            return;
        };
        let mut records: Vec<(i64, Disposition)> = vec![];
        for (c, rejected, id, result) in done {
            // Quoted, so a name with spaces or a newline reads unambiguously.
            let path = c.path.display().to_string();
            match result {
                Ok(d) => {
                    match (&d, &rejected) {
                        (Disposition::Quarantined(to), Some(reason)) => {
                            self.summary.files_quarantined += 1;
                            tracing::warn!(file = ?path, "quarantined to {:?}: {reason}", to.display().to_string());
                        }
                        (Disposition::Archived(to), _) => {
                            self.summary.files_archived += 1;
                            tracing::debug!(file = ?path, "archived to {:?}", to.display().to_string());
                        }
                        (Disposition::Deleted, _) => {
                            self.summary.files_deleted += 1;
                            tracing::debug!(file = ?path, "deleted after the commit");
                        }
                        (Disposition::Changed, _) => tracing::info!(
                            file = ?path,
                            "left in place: it changed after it was read (the new version is a new file)"
                        ),
                        _ => {}
                    }
                    self.emit(LoaderEvent::Disposed {
                        disposition: d.as_str(),
                    });
                    records.extend(id.map(|id| (id, d)));
                }
                Err(e) => tracing::error!(file = ?path, "{e}; it stays where it is"),
            }
        }
        if records.is_empty() {
            return;
        }
        let recorded = match self.client().await {
            Ok(c) => ledger::record_dispositions(c, &records)
                .await
                .map_err(Failed::db),
            Err(e) => Err(e),
        };
        let message = match recorded {
            Ok(()) => return,
            Err(Failed::Retry { message, .. }) => message,
            Err(Failed::Stop(e)) => e.to_string(),
        };
        tracing::warn!("could not record where files went in the ledger: {message}");
    }
}

/// Splits listed files into those to load and those the ledger already
/// has (the same version, see [`ledger::SAME_FILE`]). Of the latter,
/// returns the ones whose fate is not yet carried out on disk (a crash
/// between commit and move, or a new `--after-load`), with the reason when
/// they were rejected and their ledger row, and apart those finished and
/// kept where they are.
async fn skip_ledgered(
    client: &Client,
    fresh: Vec<Candidate>,
    after_load: AfterLoad,
) -> Result<(Vec<Candidate>, Vec<Job>, Vec<Candidate>), tokio_postgres::Error> {
    let known = ledger::known(client, &fresh).await?;
    let mut load = Vec::with_capacity(fresh.len());
    let (mut leftovers, mut settled) = (vec![], vec![]);
    for (c, entry) in fresh.into_iter().zip(known) {
        let Some(entry) = entry else {
            load.push(c);
            continue;
        };
        let settled_here = entry.rejected.is_none()
            && after_load == AfterLoad::Keep
            && entry.disposition.as_deref() == Some("kept");
        match settled_here {
            true => settled.push(c),
            false => leftovers.push((c, entry.rejected, Some(entry.id))),
        }
    }
    Ok((load, leftovers, settled))
}

fn no_connection() -> Failed {
    Failed::Retry {
        message: "no connection".to_string(),
        class: Class::Transient,
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Groups files, in order, into batches bounded by count and bytes.
pub(super) fn batches(
    files: Vec<Candidate>,
    max_files: usize,
    max_bytes: u64,
) -> Vec<Vec<Candidate>> {
    let mut out: Vec<Vec<Candidate>> = vec![];
    let mut bytes = 0u64;
    for f in files {
        match out.last_mut() {
            Some(b) if b.len() < max_files && bytes + f.size <= max_bytes => {
                bytes += f.size;
                b.push(f);
            }
            _ => {
                bytes = f.size;
                out.push(vec![f]);
            }
        }
    }
    out
}
