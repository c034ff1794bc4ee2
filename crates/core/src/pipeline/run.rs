//! The loader loop behind `shopstream run`.
//!
//! Connects (waiting for the database with backoff, migrating the schema
//! once), lists the input through [`crate::source::input`] (a folder, woken
//! early by OS file events, or an object store prefix, polled), drops
//! files the ledger already has (the same version of the file: path, size,
//! mtime and, for local files, device, inode and ctime),
//! groups the rest into batches of whole files and loads them one after the
//! other through [`super::batch`], on one connection. Only after a commit
//! does it carry out each
//! file's fate through the input (keep, archive or
//! delete; quarantine for rejected files); a crash in between is finished
//! at the next start. Files another worker holds are looked at again soon,
//! so a dead worker's files are taken over. On SIGINT/SIGTERM it stops
//! taking files, lets the batches in flight commit, and returns.
//!
//! Failures roll the batch back and are retried with backoff; after
//! `--breaker-failures` in a row the [`super::breaker`] opens and intake
//! pauses until probes find the database again, so nothing is lost or
//! doubled and nothing spins.
//!
//! What happens (listings, lag, batches, breaker states, dispositions) is
//! emitted as [`LoaderEvent`]s to one fan-out of observers: health,
//! metrics, alerts and the `--once` progress bar.
//!
//! It never edits input files and never moves one before its fate is
//! committed.

use std::time::{Duration, Instant};

use super::breaker::{Breaker, BreakerState, Step};
use crate::batch::BatchReport;
use crate::db::connect::{Database, DbError};
use crate::db::retry::{classify, Backoff, Class};
use crate::loader_event::{Failure, LoaderEvent};
use crate::observe::health::Health;
use crate::shutdown::Shutdown;
use crate::sink::transaction as batch;

pub use super::loader::PAUSE_AFTER_COMMIT_ENV;
use super::loader::{Loader, Pass, CLAIMED_ELSEWHERE_RETRY};
pub use super::options::{PipelineError, RunArgs};
pub use super::summary::{log_batch, RunSummary};
/// Why one pass of the loader failed.
pub(super) enum Failed {
    /// Worth trying again (after a backoff; counts for the breaker).
    Retry { message: String, class: Class },
    /// Needs a person: the run ends with this error.
    Stop(PipelineError),
}

impl Failed {
    pub(super) fn db(e: tokio_postgres::Error) -> Failed {
        let class = classify(&e);
        Failed::Retry {
            message: crate::db::connect::error_chain(&e),
            class,
        }
    }
}

impl From<batch::SinkError> for Failed {
    fn from(e: batch::SinkError) -> Failed {
        let class = match &e {
            batch::SinkError::Db(db) => classify(db),
            batch::SinkError::Reader(_) => Class::Fatal,
        };
        Failed::Retry {
            message: e.to_string(),
            class,
        }
    }
}

/// Runs the loader until the folder is drained (`--once`) or shutdown.
/// `on_batch` sees every committed batch; `health` follows the loader's
/// state.
pub async fn run(
    args: &RunArgs,
    db: &Database,
    shutdown: &Shutdown,
    health: &Health,
    mut on_batch: impl FnMut(&BatchReport),
) -> Result<RunSummary, PipelineError> {
    let cfg = args.parse_config()?;
    let backoff = args.backoff()?;
    let mut breaker = Breaker::new(args.breaker()?);
    // Seeded once; a `ThreadRng` would make the loader future non-`Send`.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    let relist = relist_every(args)?;
    let (mut loader, delivery) = Loader::start(args, db, health, cfg)?;
    let mut watcher = (!args.once).then(|| loader.input.waker());
    // Failed listings in a row (not the database's failures).
    let mut unlisted: u32 = 0;
    let stop_reads = stop_reads_on(shutdown);

    tracing::info!(input = %args.input.display(), db = %db.describe(), once = args.once, "loader started");
    while !shutdown.is_triggered() {
        let next = match breaker.step(Instant::now()) {
            Step::WaitUntil(until) => {
                loader.relist_for_lag().await;
                Next::After(until.saturating_duration_since(Instant::now()))
            }
            Step::Probe => probe_step(&mut loader, &mut breaker, &mut rng)
                .await?
                .map_or(Next::Now, Next::After),
            Step::Work => {
                let pass = loader.pass(shutdown, &mut on_batch).await;
                let (b, r) = (&backoff, &mut rng);
                after_pass(&mut loader, &mut breaker, b, r, &mut unlisted, pass)?
            }
        };
        let go_on = match next {
            Next::Now => true,
            Next::After(wait) => pause(shutdown, wait).await,
            Next::Watch(held) => match watcher.as_mut() {
                Some(w) => tokio::select! {
                    _ = w.wait(held.map_or(relist, |h| h.min(relist))) => true,
                    _ = shutdown.wait() => false,
                },
                // --once and something changed while being read: look again soon.
                None => pause(shutdown, Duration::from_millis(100)).await,
            },
            Next::Done => false,
        };
        if !go_on {
            break;
        }
    }
    stop_reads.abort();
    Ok(loader.stop(delivery).await)
}

/// What the supervisor does after a step.
enum Next {
    /// Another pass at once.
    Now,
    /// Another step after this wait.
    After(Duration),
    /// Wait for file events (or `--relist-secs`, or until a held-back
    /// file is due), then another pass.
    Watch(Option<Duration>),
    /// `--once` is done.
    Done,
}

/// Books a pass: a failed listing or round trip is counted and waited
/// for, a good pass closes the breaker; then whether to go on at once,
/// soon (files held by another loader), after the input changes, or not
/// at all (`--once` with nothing left).
fn after_pass(
    loader: &mut Loader<'_>,
    breaker: &mut Breaker,
    backoff: &Backoff,
    rng: &mut rand::rngs::StdRng,
    unlisted: &mut u32,
    pass: Result<Pass, Failed>,
) -> Result<Next, PipelineError> {
    let pass = match pass {
        Ok(Pass {
            unlisted: Some(message),
            ..
        }) => {
            // Not the database's failure: the breaker and readiness stay as
            // they are; only the listing is tried again.
            *unlisted = unlisted.saturating_add(1);
            let wait = listing_failed(loader, *unlisted, message, backoff, rng)?;
            return Ok(Next::After(wait));
        }
        Ok(pass) => pass,
        Err(Failed::Stop(e)) => return Err(e),
        Err(Failed::Retry { message, class }) => {
            let failure = Failure { class, message };
            let next = round_trip_failed(loader, breaker, backoff, rng, failure)?;
            return Ok(next.map_or(Next::Now, Next::After));
        }
    };
    *unlisted = 0;
    if pass.shows_loading_works() {
        breaker.success();
        loader.emit(LoaderEvent::Breaker {
            state: breaker.state(),
            failures: 0,
            failure: None,
        });
    }
    let held = pass
        .held_until
        .map(|until| super::suspects::until(until, Instant::now()));
    Ok(if pass.progressed {
        Next::Now
    } else if pass.elsewhere {
        // Other loaders hold files: look again soon, to take them over if
        // their loader dies (its claims end with its connection). `--once`
        // waits for them too.
        tracing::debug!(
            "files held by another loader: looking again in {CLAIMED_ELSEWHERE_RETRY:?}"
        );
        Next::After(CLAIMED_ELSEWHERE_RETRY)
    } else if let (true, Some(wait)) = (loader.args.once, held) {
        // `--once` waits for a held-back file's next try.
        Next::After(wait)
    } else if loader.args.once {
        Next::Done
    } else {
        Next::Watch(held)
    })
}

/// How often the input is listed again (`--relist-secs`; also checks
/// `--full-relist-secs`).
fn relist_every(args: &RunArgs) -> Result<Duration, PipelineError> {
    let full_ok = args.full_relist_secs >= 0.0 && args.full_relist_secs < 1e9;
    if !(args.relist_secs > 0.0 && args.relist_secs.is_finite() && full_ok) {
        return Err(PipelineError::Relist);
    }
    Ok(Duration::from_secs_f64(args.relist_secs))
}

/// On a stop, reads that hang give up at once (the batch commits without
/// them).
fn stop_reads_on(shutdown: &Shutdown) -> tokio::task::JoinHandle<()> {
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.wait().await;
        crate::source::bounded::stop_waiting();
    })
}

/// Sleeps for `wait`; false when the shutdown came first.
async fn pause(shutdown: &Shutdown, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.wait() => false,
    }
}

/// A failed listing (the `attempts`-th in a row): not the database's
/// failure, so the breaker and readiness stay as they are. Returns the
/// wait before listing again; `--once` gives up after
/// `--breaker-failures` of them.
fn listing_failed(
    loader: &mut Loader<'_>,
    attempts: u32,
    message: String,
    backoff: &Backoff,
    rng: &mut rand::rngs::StdRng,
) -> Result<Duration, PipelineError> {
    if loader.args.once && attempts >= loader.args.breaker_failures {
        return Err(PipelineError::Unlisted {
            attempts,
            last: message,
        });
    }
    let wait = backoff.delay(attempts, rng);
    tracing::warn!(
        "{message}; not a database failure, listing again in {:.1}s",
        wait.as_secs_f64()
    );
    loader.emit(LoaderEvent::ListingFailed { message });
    Ok(wait)
}

/// A failed pass (nothing was committed): counts it for the breaker and
/// tells the observers. Returns the wait before retrying, `None` when the
/// circuit opened (the breaker then says when to probe); `--once` gives up
/// when it opens.
fn round_trip_failed(
    loader: &mut Loader<'_>,
    breaker: &mut Breaker,
    backoff: &Backoff,
    rng: &mut rand::rngs::StdRng,
    failure: Failure,
) -> Result<Option<Duration>, PipelineError> {
    // A fresh connection after a failed batch is cheap and safe.
    loader.client = None;
    let opened = breaker.failure(Instant::now(), rng) == Some(BreakerState::Open);
    let failures = breaker.failures();
    let Failure { class, message } = failure.clone();
    loader.emit(LoaderEvent::Breaker {
        state: breaker.state(),
        failures,
        failure: Some(failure),
    });
    if opened {
        if loader.args.once {
            return Err(PipelineError::GaveUp {
                attempts: failures,
                last: message,
            });
        }
        tracing::error!(
            class = ?class,
            "{message}; {failures} failures in a row: circuit open, intake paused \
             (files stay where they are, nothing is marked done); next probe in {:.1}s",
            probe_in(breaker)
        );
        return Ok(None);
    }
    let wait = backoff.delay(failures, rng);
    // Retried: a warning on one line. ERROR is for giving up (the circuit
    // opening, the run ending).
    tracing::warn!(
        class = ?class,
        attempt = failures,
        "attempt {failures} failed, nothing was committed; retrying in {}: {}",
        readable_wait(wait),
        message.replace('\n', " ")
    );
    Ok(Some(wait))
}

/// `250 ms`, `1.5 s`: a retry's wait as people read it.
fn readable_wait(wait: Duration) -> String {
    if wait < Duration::from_secs(1) {
        format!("{} ms", wait.as_millis())
    } else {
        format!("{:.1} s", wait.as_secs_f64())
    }
}

/// Seconds until the breaker's next probe.
fn probe_in(breaker: &Breaker) -> f64 {
    breaker.next_probe().map_or(0.0, |at| {
        at.saturating_duration_since(Instant::now()).as_secs_f64()
    })
}

/// One probe of the database while the circuit is not closed, and its
/// bookkeeping. Returns the pause before the next probe when the circuit
/// is still half open, `None` when it closed or opened again (the breaker
/// then says when to probe).
async fn probe_step(
    loader: &mut Loader<'_>,
    breaker: &mut Breaker,
    rng: &mut rand::rngs::StdRng,
) -> Result<Option<Duration>, PipelineError> {
    loader.emit(LoaderEvent::Breaker {
        state: BreakerState::HalfOpen,
        failures: breaker.failures(),
        failure: None,
    });
    match loader.probe().await {
        Ok(()) => {
            if breaker.success() != Some(BreakerState::Closed) {
                return Ok(Some(loader.args.backoff()?.initial));
            }
            tracing::info!("the database answers again: circuit closed, intake resumes");
            loader.emit(LoaderEvent::Breaker {
                state: BreakerState::Closed,
                failures: 0,
                failure: None,
            });
            Ok(None)
        }
        Err(Failed::Stop(e)) => Err(e),
        Err(Failed::Retry { message, class }) => {
            loader.client = None;
            breaker.failure(Instant::now(), rng);
            tracing::warn!(
                "probe failed: {message}; circuit stays open, intake paused; next probe in {:.1}s",
                probe_in(breaker)
            );
            loader.emit(LoaderEvent::Breaker {
                state: BreakerState::Open,
                failures: breaker.failures(),
                failure: Some(Failure { class, message }),
            });
            Ok(None)
        }
    }
}

/// A connection that failed. Settings the server refused (a login, an
/// unknown database: SQLSTATE class 28 or 3D000) end a `--once` run at once;
/// a continuous loader keeps trying them with backoff (a role or database
/// may be created after it started), reporting them as needing a person.
pub(super) fn connect_failed(e: DbError, once: bool) -> Failed {
    if once && e.is_config() {
        return Failed::Stop(PipelineError::Db(e));
    }
    let class = match &e {
        DbError::Connect { class, .. } => *class,
        _ => Class::Transient,
    };
    Failed::Retry {
        message: e.to_string(),
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::super::loader::batches;
    use super::*;
    use crate::source::discover::Candidate;

    fn c(name: &str, size: u64) -> Candidate {
        Candidate {
            path: name.into(),
            size,
            mtime_micros: 0,
            file_id: None,
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        use clap::Parser;
        let argv = std::iter::once("shopstream").chain(extra.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(c) => c.run,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn options_of_the_old_direct_path_still_parse_and_are_reported_ignored() {
        assert!(args(&[]).ignored_options().is_empty());
        let old = args(&[
            "--connections",
            "3",
            "--recent-ids",
            "0",
            "--direct-min-batch-bytes",
            "1MiB",
        ]);
        assert_eq!(
            old.ignored_options(),
            ["--connections", "--recent-ids", "--direct-min-batch-bytes"]
        );
    }

    #[test]
    fn retry_options_build_the_backoff_and_bad_ones_are_refused() {
        assert_eq!(args(&[]).backoff().ok(), Some(Backoff::default()));
        let b = args(&[
            "--retry-initial-secs",
            "0.5",
            "--retry-factor",
            "3",
            "--retry-max-secs",
            "10",
        ])
        .backoff()
        .ok();
        assert_eq!(
            b,
            Some(Backoff {
                initial: Duration::from_millis(500),
                factor: 3.0,
                max: Duration::from_secs(10),
            })
        );
        for bad in [
            ["--retry-factor", "0.5"],
            ["--retry-initial-secs", "0"],
            ["--retry-max-secs=-1", "--once"],
            ["--retry-max-secs", "inf"],
        ] {
            assert!(args(&bad).backoff().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_a_pass_that_committed_or_had_nothing_to_do_closes_the_breaker() {
        use super::super::loader::Pass;
        assert!(Pass::default().shows_loading_works());
        let committed = Pass {
            progressed: true,
            elsewhere: true,
            ..Pass::default()
        };
        assert!(committed.shows_loading_works());
        // The writer lock not had within its wait (the failed batch's own
        // connection may still be rolling back) proves nothing.
        let waited = Pass {
            elsewhere: true,
            ..Pass::default()
        };
        assert!(!waited.shows_loading_works());
        let held = Pass {
            held_until: Some(Instant::now()),
            ..Pass::default()
        };
        assert!(!held.shows_loading_works());
    }

    #[test]
    fn batches_respect_count_and_bytes() {
        let files = vec![c("a", 10), c("b", 10), c("c", 10), c("d", 100), c("e", 1)];
        let b = batches(files, 2, 50);
        let names: Vec<Vec<String>> = b
            .iter()
            .map(|b| b.iter().map(|c| c.path.display().to_string()).collect())
            .collect();
        assert_eq!(names, [vec!["a", "b"], vec!["c"], vec!["d"], vec!["e"]]);
    }
}
