//! The Prometheus metrics: their names, labels and buckets, and the one
//! place each is recorded.
//!
//! Recording goes through the `metrics` facade, so it costs nothing when no
//! recorder is installed (library tests) and the text format is produced by
//! `metrics-exporter-prometheus`, never by hand. The binary installs the
//! recorder once with [`install`] and serves [`Metrics::render`] at
//! `/metrics`.
//!
//! The loader's metrics are recorded by [`MetricsObserver`], an observer of
//! its events; the object store's reads and listings are counted where they
//! happen ([`objects_listed`], [`object_read`]).
//!
//! This module never decides anything about the pipeline; it only counts.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::retry::Class;
use crate::loader_event::{BatchDone, BreakerState, FileOutcome, LoaderEvent, Observer};

pub const ROWS: &str = "shopstream_rows_total";
pub const ROWS_REJECTED: &str = "shopstream_rows_rejected_total";
pub const FILES: &str = "shopstream_files_total";
pub const FILES_DISPOSED: &str = "shopstream_files_disposed_total";
pub const BATCHES: &str = "shopstream_batches_total";
pub const BATCH_DURATION: &str = "shopstream_batch_duration_seconds";
pub const BATCH_ROWS: &str = "shopstream_batch_rows";
pub const FILE_LATENCY: &str = "shopstream_file_latency_seconds";
pub const LAG_FILES: &str = "shopstream_ingest_lag_files";
pub const LAG_SECONDS: &str = "shopstream_ingest_lag_seconds";
pub const RETRIES: &str = "shopstream_db_retries_total";
pub const BREAKER: &str = "shopstream_circuit_breaker_state";
pub const LAST_COMMIT: &str = "shopstream_last_commit_timestamp_seconds";
pub const OBJECTS_LISTED: &str = "shopstream_objects_listed_total";
pub const OBJECTS_READ: &str = "shopstream_objects_read_total";
pub const LISTINGS: &str = "shopstream_listings_total";

/// A handle on the installed recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Installs the process-wide recorder (once, at the binary's edge) and
/// describes every metric.
pub fn install() -> Result<Metrics, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(BATCH_DURATION.into()),
            &[
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(BATCH_ROWS.into()),
            &[
                10.0,
                100.0,
                1_000.0,
                10_000.0,
                100_000.0,
                1_000_000.0,
                10_000_000.0,
            ],
        )?
        .set_buckets_for_metric(
            Matcher::Full(FILE_LATENCY.into()),
            &[
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ],
        )?
        .install_recorder()?;
    describe();
    breaker(BreakerState::Closed);
    lag(0, 0.0);
    Ok(Metrics { handle })
}

fn describe() {
    describe_counter!(
        ROWS,
        "Input rows by outcome: read, loaded, duplicate, rejected."
    );
    describe_counter!(
        ROWS_REJECTED,
        "Rejected rows by rule code (a row failing two rules counts in both)."
    );
    describe_counter!(
        FILES,
        "Input files by outcome: loaded, duplicate, rejected."
    );
    describe_counter!(FILES_DISPOSED, "Files by what happened to them after the commit: kept, archived, deleted, quarantined, gone, changed.");
    describe_counter!(BATCHES, "Committed batches.");
    describe_histogram!(
        BATCH_DURATION,
        metrics::Unit::Seconds,
        "Time to commit one batch (read, validate, COPY, move, commit)."
    );
    describe_histogram!(BATCH_ROWS, "Rows read per committed batch.");
    describe_histogram!(FILE_LATENCY, metrics::Unit::Seconds, "End-to-end latency: from a file's arrival (its modification time) to the commit of its rows.");
    describe_gauge!(LAG_FILES, "Files waiting to be loaded at the last listing.");
    describe_gauge!(
        LAG_SECONDS,
        metrics::Unit::Seconds,
        "Age of the oldest file waiting to be loaded (0 when none waits)."
    );
    describe_counter!(
        RETRIES,
        "Failed attempts that will be retried, by class: transient, row_data, fatal."
    );
    describe_gauge!(BREAKER, "Circuit breaker state: 1 for the current state (closed, open, half_open), 0 for the others.");
    describe_gauge!(
        LAST_COMMIT,
        metrics::Unit::Seconds,
        "Unix time of the last committed batch."
    );
    describe_counter!(
        LISTINGS,
        "Listings of the input (folder or object store prefix), each pass and each look while the circuit is open."
    );
    describe_counter!(
        OBJECTS_LISTED,
        "Object store input: objects the listings returned (resumed listings return only keys after the last settled one)."
    );
    describe_counter!(
        OBJECTS_READ,
        "Object store input: GET requests for input objects (each read, and each re-read of refused rows' raw lines)."
    );
}

/// Records the loader's events as metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsObserver;

impl Observer for MetricsObserver {
    fn on(&mut self, event: &LoaderEvent) {
        match event {
            LoaderEvent::Listed => listing(),
            LoaderEvent::Lag {
                waiting_files,
                oldest_waiting_secs,
            } => lag(*waiting_files, *oldest_waiting_secs),
            LoaderEvent::Batch(b) => batch(b),
            LoaderEvent::Breaker { state, failure, .. } => {
                if let Some(f) = failure {
                    retry(f.class);
                }
                breaker(*state);
            }
            LoaderEvent::Disposed { disposition } => disposed(disposition),
            LoaderEvent::ListingFailed { .. }
            | LoaderEvent::Queued { .. }
            | LoaderEvent::Stopped => {}
        }
    }
}

/// Counts one committed batch (at its commit time).
fn batch(r: &BatchDone) {
    counter!(ROWS, "outcome" => "read").increment(r.rows_read);
    counter!(ROWS, "outcome" => "loaded").increment(r.rows_loaded);
    counter!(ROWS, "outcome" => "duplicate").increment(r.rows_duplicate);
    counter!(ROWS, "outcome" => "rejected").increment(r.rows_rejected);
    for (code, n) in &r.rejects_by_code {
        counter!(ROWS_REJECTED, "code" => code.clone()).increment(*n);
    }
    let now_micros = r.committed_micros;
    for f in &r.files {
        let outcome = match f.outcome {
            FileOutcome::Loaded => "loaded",
            FileOutcome::Duplicate => "duplicate",
            FileOutcome::Rejected { .. } => "rejected",
            FileOutcome::AlreadyDone | FileOutcome::Changed => continue,
        };
        counter!(FILES, "outcome" => outcome).increment(1);
        if let Some(arrived) = f.arrived_micros {
            let secs = (now_micros - arrived).max(0) as f64 / 1e6;
            histogram!(FILE_LATENCY).record(secs);
        }
    }
    if r.batch_id.is_some() {
        counter!(BATCHES).increment(1);
        histogram!(BATCH_DURATION).record(r.duration_ms as f64 / 1000.0);
        histogram!(BATCH_ROWS).record(r.rows_read as f64);
        gauge!(LAST_COMMIT).set(now_micros as f64 / 1e6);
    }
}

/// Counts what was done with a file after its commit.
fn disposed(disposition: &'static str) {
    counter!(FILES_DISPOSED, "disposition" => disposition).increment(1);
}

/// Counts one listing of the input.
fn listing() {
    counter!(LISTINGS).increment(1);
}

/// Counts objects returned by an object store listing.
pub fn objects_listed(n: u64) {
    counter!(OBJECTS_LISTED).increment(n);
}

/// Counts one GET of an input object.
pub fn object_read() {
    counter!(OBJECTS_READ).increment(1);
}

/// Counts a failed attempt that will be retried.
fn retry(class: Class) {
    let class = match class {
        Class::Transient => "transient",
        Class::RowData => "row_data",
        Class::Fatal => "fatal",
    };
    counter!(RETRIES, "class" => class).increment(1);
}

/// Sets the circuit breaker state.
fn breaker(state: BreakerState) {
    for s in [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ] {
        gauge!(BREAKER, "state" => s.as_str()).set(if s == state { 1.0 } else { 0.0 });
    }
}

/// Sets the ingest lag: files waiting and the age of the oldest.
fn lag(files: u64, oldest_secs: f64) {
    gauge!(LAG_FILES).set(files as f64);
    gauge!(LAG_SECONDS).set(oldest_secs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader_event::{Failure, FileDone};

    #[test]
    fn a_batch_is_counted_by_outcome_code_and_file() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let file = |outcome| FileDone {
            path: "a.csv".into(),
            outcome,
            arrived_micros: Some(1_000_000),
        };
        let r = BatchDone {
            batch_id: Some(7),
            files: vec![
                file(FileOutcome::Loaded),
                file(FileOutcome::Rejected { reason: "x".into() }),
                file(FileOutcome::Changed),
            ],
            rows_read: 10,
            rows_loaded: 6,
            rows_duplicate: 1,
            rows_rejected: 3,
            rejects_by_code: [("invalid_price".to_string(), 3)].into(),
            duration_ms: 250,
            committed_micros: 3_000_000,
            ..BatchDone::default()
        };
        metrics::with_local_recorder(&recorder, || {
            let mut m = MetricsObserver;
            m.on(&LoaderEvent::Batch(r));
            m.on(&LoaderEvent::Breaker {
                state: BreakerState::Open,
                failures: 5,
                failure: Some(Failure {
                    class: Class::RowData,
                    message: "x".into(),
                }),
            });
            m.on(&LoaderEvent::Listed);
            m.on(&LoaderEvent::Disposed {
                disposition: "archived",
            });
            m.on(&LoaderEvent::Lag {
                waiting_files: 4,
                oldest_waiting_secs: 2.5,
            });
        });
        let text = handle.render();
        for line in [
            "shopstream_rows_total{outcome=\"read\"} 10",
            "shopstream_rows_total{outcome=\"loaded\"} 6",
            "shopstream_rows_total{outcome=\"duplicate\"} 1",
            "shopstream_rows_total{outcome=\"rejected\"} 3",
            "shopstream_rows_rejected_total{code=\"invalid_price\"} 3",
            "shopstream_files_total{outcome=\"loaded\"} 1",
            "shopstream_files_total{outcome=\"rejected\"} 1",
            "shopstream_batches_total 1",
            "shopstream_file_latency_seconds_count 2",
            "shopstream_file_latency_seconds_sum 4",
            "shopstream_circuit_breaker_state{state=\"open\"} 1",
            "shopstream_circuit_breaker_state{state=\"closed\"} 0",
            "shopstream_db_retries_total{class=\"row_data\"} 1",
            "shopstream_listings_total 1",
            "shopstream_files_disposed_total{disposition=\"archived\"} 1",
            "shopstream_ingest_lag_files 4",
            "shopstream_ingest_lag_seconds 2.5",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
