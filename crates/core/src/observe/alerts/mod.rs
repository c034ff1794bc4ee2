//! Alerts: the [`Alerter`] facade, an observer of the loader's events, and
//! the [`Alert`] every channel delivers. The work is split by job:
//!
//! * [`config`](AlertConfig): the `--alert-*` options, their checks, the
//!   webhook URL (a secret);
//! * `rules` ([`AlertRules`]): what the loader reports (each committed
//!   batch, each state of the circuit breaker, the age of the oldest waiting
//!   file) turned into alerts; incidents, suppression, escalation,
//!   resolution. Pure bookkeeping: it never logs, sleeps or sends;
//! * `delivery` ([`Channels`]): the log, the JSON lines file, the webhook,
//!   on a task of their own so the loader never waits for them.
//!
//! | rule | fires when | severity | resolves when |
//! |---|---|---|---|
//! | `low_validity` | (loaded + duplicate) / read of a batch < `--alert-validity` (0.95); batches that read no row are ignored | WARNING, ERROR from the `--alert-escalate-after` (3rd) batch in a row | a batch at or above it |
//! | `slow_batch` | a batch took over `--alert-batch-secs` (60 s) | WARNING, ERROR from the 3rd batch in a row | a batch within it |
//! | `error_concentration` | one rule code failed ≥ `--alert-concentration` (10%) of a batch's rows read, in batches of at least `--alert-min-rows` (100) rows; one incident per code | WARNING | a later batch of enough rows has that code below it |
//! | `circuit_open` | the circuit breaker opened | CRITICAL | it closed (half open changes nothing) |
//! | `ingest_lag` | the oldest waiting file waited over `--alert-lag-secs` (300 s) | WARNING | it is below again |
//! | `file_quarantined` | a committed batch rejected whole files | WARNING | a batch rejects none |
//!
//! An incident is one (rule, key). Its first firing is returned; while it
//! lasts, repeats are suppressed (counted, and the count is reported as
//! `suppressed_repeats` when it resolves); an escalation to a higher
//! severity is returned once; its resolution is returned once, as an INFO
//! alert in state `resolved` with the incident's duration.
//!
//! Reports of batches that committed nothing (`batch_id` is `None`: every
//! file was already done or changed while read) are ignored by every rule,
//! as are reports without files (all were held by another loader).
//!
//! [`Channels`] delivers every alert it is given to the log (`tracing`, at
//! the level of the severity), to a JSON lines file (`--alert-file`, one
//! [`Alert`] per line) and to a webhook (`--alert-webhook`, a Slack
//! incoming-webhook compatible POST with the alert under `alert`; 10 s
//! timeout, one retry after 1 s on a connection error or a 5xx, the standard
//! proxy variables honoured). A failed delivery is logged and counted, never
//! returned: alerting must not stop the loading. The webhook URL is a
//! secret: only its scheme and host are ever logged or shown by `Debug`.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::loader_event::{LoaderEvent, Observer};

mod config;
mod delivery;
mod rules;

pub use config::{
    AlertArgs, AlertConfig, WebhookUrl, DEFAULT_BATCH_SECS, DEFAULT_CONCENTRATION,
    DEFAULT_ESCALATE_AFTER, DEFAULT_LAG_SECS, DEFAULT_MIN_ROWS, DEFAULT_VALIDITY,
};
pub use delivery::{Channels, DeliveryFailures};
pub use rules::{
    AlertRules, CIRCUIT_OPEN, ERROR_CONCENTRATION, FILE_QUARANTINED, INGEST_LAG, LOW_VALIDITY,
    SLOW_BATCH,
};

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{option} must be {expected} (got {value})")]
    Range {
        option: &'static str,
        expected: &'static str,
        value: f64,
    },
    #[error("--alert-webhook must be an http:// or https:// URL with a host and without blanks (its value is a secret and is not shown)")]
    Webhook,
    #[error("cannot open the alert file {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How bad an alert is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Normal news (a resolution).
    Info,
    /// One threshold breach.
    Warning,
    /// A breach that goes on (consecutive batches).
    Error,
    /// The system is degraded: the loader stopped taking files.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// Whether an alert opens (or escalates) an incident or ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// One alert, as every channel delivers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    /// The rule (`low_validity`, `slow_batch`, …).
    pub rule: &'static str,
    /// What the incident is about within the rule (a rule code for
    /// `error_concentration`; a fixed word for the others).
    pub key: String,
    pub severity: Severity,
    pub state: AlertState,
    pub title: String,
    /// One readable line.
    pub message: String,
    /// When it was raised, RFC 3339 in UTC.
    pub at: String,
    /// The numbers behind it (thresholds, values, batch id, …).
    pub details: Value,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

impl Alert {
    /// `[SEVERITY] title: message`, on one line (the log line and the
    /// webhook's `text`).
    pub fn summary(&self) -> String {
        one_line(&format!(
            "[{}] {}: {}",
            self.severity.as_str(),
            self.title,
            self.message
        ))
    }
}

/// The alerting facade: the rules ([`AlertRules`]) as an observer of the
/// loader's events, handing the alerts they return to a delivery task
/// ([`Channels`]) in order, without waiting for it.
#[derive(Debug)]
pub struct Alerter {
    rules: AlertRules,
    queue: mpsc::UnboundedSender<Vec<Alert>>,
}

/// The delivery task of an [`Alerter`].
#[derive(Debug)]
pub struct Delivery(tokio::task::JoinHandle<()>);

impl Alerter {
    /// Opens the channels (creating the alert file, checking the webhook
    /// URL) and starts delivering on a task of its own (within a Tokio
    /// runtime).
    pub fn start(cfg: AlertConfig) -> Result<(Alerter, Delivery), AlertError> {
        let channels = Channels::new(&cfg)?;
        let (queue, mut queued) = mpsc::unbounded_channel::<Vec<Alert>>();
        let task = tokio::spawn(async move {
            while let Some(alerts) = queued.recv().await {
                channels.deliver(&alerts).await;
            }
        });
        let rules = AlertRules::new(cfg);
        Ok((Alerter { rules, queue }, Delivery(task)))
    }
}

impl Observer for Alerter {
    fn on(&mut self, event: &LoaderEvent) {
        let alerts = self.rules.on_event(event);
        if !alerts.is_empty() {
            // The delivery task ends only after this sender: cannot be closed.
            let _ = self.queue.send(alerts);
        }
    }
}

impl Delivery {
    /// Waits, at most `within`, until every queued alert is delivered (a
    /// webhook may take a few seconds). The [`Alerter`] must be dropped
    /// first. False when time ran out.
    pub async fn finish(self, within: Duration) -> bool {
        tokio::time::timeout(within, self.0).await.is_ok()
    }
}

/// Control characters (a newline in a file name) as spaces: a message is
/// one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader_event::{BatchDone, BreakerState};

    #[tokio::test]
    async fn the_alerter_turns_loader_events_into_delivered_alerts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let cfg = AlertConfig {
            file: Some(path.clone()),
            ..AlertConfig::default()
        };
        let (mut alerter, delivery) = Alerter::start(cfg).unwrap();
        let breaker = |state| LoaderEvent::Breaker {
            state,
            failures: 5,
            failure: None,
        };
        alerter.on(&breaker(BreakerState::Open));
        alerter.on(&LoaderEvent::Lag {
            waiting_files: 2,
            oldest_waiting_secs: 1_000.0,
        });
        // A report without files (all held elsewhere) is no batch to judge.
        let slow = BatchDone {
            batch_id: Some(1),
            duration_ms: 3_600_000,
            ..BatchDone::default()
        };
        alerter.on(&LoaderEvent::Batch(slow));
        alerter.on(&breaker(BreakerState::Closed));
        drop(alerter);
        assert!(delivery.finish(Duration::from_secs(10)).await);
        let seen: Vec<(String, String)> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["rule"].to_string(), v["state"].to_string())
            })
            .collect();
        let want = [
            (CIRCUIT_OPEN, "firing"),
            (INGEST_LAG, "firing"),
            (CIRCUIT_OPEN, "resolved"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(r, s)| (format!("{r:?}"), format!("{s:?}")))
            .collect();
        assert_eq!(seen, want);
    }
}
