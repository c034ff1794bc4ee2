//! Alert rules and their delivery channels.
//!
//! [`Alerter`] turns what the loader reports (each committed batch, each
//! change of the circuit breaker, the age of the oldest waiting file) into
//! [`Alert`]s. It is pure bookkeeping: it never logs, sleeps or sends.
//! [`Channels`] delivers the alerts it returns.
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
//! file was already done or changed while read) are ignored by every rule.
//!
//! [`Channels`] delivers every alert it is given to the log (`tracing`, at
//! the level of the severity), to a JSON lines file (`--alert-file`, one
//! [`Alert`] per line) and to a webhook (`--alert-webhook`, a Slack
//! incoming-webhook compatible POST with the alert under `alert`; 10 s
//! timeout, one retry after 1 s on a connection error or a 5xx, the standard
//! proxy variables honoured). A failed delivery is logged and counted, never
//! returned: alerting must not stop the loading. The webhook URL is a
//! secret: only its scheme and host are ever logged or shown by `Debug`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::pipeline::breaker::BreakerState;
use crate::sink::batch::{BatchReport, FileStatus};

/// Rule names, as they appear in `Alert::rule`.
pub const LOW_VALIDITY: &str = "low_validity";
pub const SLOW_BATCH: &str = "slow_batch";
pub const ERROR_CONCENTRATION: &str = "error_concentration";
pub const CIRCUIT_OPEN: &str = "circuit_open";
pub const INGEST_LAG: &str = "ingest_lag";
pub const FILE_QUARANTINED: &str = "file_quarantined";

/// Default of `--alert-validity`.
pub const DEFAULT_VALIDITY: f64 = 0.95;
/// Default of `--alert-escalate-after`.
pub const DEFAULT_ESCALATE_AFTER: u32 = 3;
/// Default of `--alert-batch-secs`.
pub const DEFAULT_BATCH_SECS: f64 = 60.0;
/// Default of `--alert-concentration`.
pub const DEFAULT_CONCENTRATION: f64 = 0.10;
/// Default of `--alert-min-rows`.
pub const DEFAULT_MIN_ROWS: u64 = 100;
/// Default of `--alert-lag-secs`.
pub const DEFAULT_LAG_SECS: f64 = 300.0;

/// Files named in the message of a `file_quarantined` alert.
const NAMED_FILES: usize = 5;
/// Files listed in the details of a `file_quarantined` alert.
const LISTED_FILES: usize = 20;

/// Alert options (shared by every command that loads).
#[derive(clap::Args, Debug, Clone)]
pub struct AlertArgs {
    /// Lowest acceptable share (0–1) of a batch's rows that are valid,
    /// (loaded + duplicate) / read; below it `low_validity` fires (WARNING,
    /// ERROR after --alert-escalate-after batches in a row).
    #[arg(long, env = "SHOPSTREAM_ALERT_VALIDITY", default_value_t = DEFAULT_VALIDITY)]
    pub alert_validity: f64,

    /// Consecutive bad batches after which `low_validity` and `slow_batch`
    /// escalate from WARNING to ERROR.
    #[arg(long, env = "SHOPSTREAM_ALERT_ESCALATE_AFTER", default_value_t = DEFAULT_ESCALATE_AFTER, value_parser = clap::value_parser!(u32).range(1..))]
    pub alert_escalate_after: u32,

    /// Seconds a batch may take to commit; a slower one fires `slow_batch`.
    #[arg(long, env = "SHOPSTREAM_ALERT_BATCH_SECS", default_value_t = DEFAULT_BATCH_SECS)]
    pub alert_batch_secs: f64,

    /// Share (0–1) of a batch's rows failing one rule code that fires
    /// `error_concentration` for that code.
    #[arg(long, env = "SHOPSTREAM_ALERT_CONCENTRATION", default_value_t = DEFAULT_CONCENTRATION)]
    pub alert_concentration: f64,

    /// Fewest rows a batch must have read for `error_concentration` to
    /// judge it (smaller batches are too noisy).
    #[arg(long, env = "SHOPSTREAM_ALERT_MIN_ROWS", default_value_t = DEFAULT_MIN_ROWS)]
    pub alert_min_rows: u64,

    /// Seconds the oldest file waiting to be loaded may wait before
    /// `ingest_lag` fires.
    #[arg(long, env = "SHOPSTREAM_ALERT_LAG_SECS", default_value_t = DEFAULT_LAG_SECS)]
    pub alert_lag_secs: f64,

    /// Append every alert as one JSON object per line to this file.
    #[arg(long, env = "SHOPSTREAM_ALERT_FILE", value_name = "PATH")]
    pub alert_file: Option<PathBuf>,

    /// POST every alert to this URL (Slack incoming-webhook compatible payload).
    /// It is a secret: only its scheme and host are ever logged.
    #[arg(
        long,
        env = "SHOPSTREAM_ALERT_WEBHOOK",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub alert_webhook: Option<WebhookUrl>,
}

impl AlertArgs {
    /// The alert settings, with every range checked.
    pub fn config(&self) -> Result<AlertConfig, AlertError> {
        let cfg = AlertConfig {
            min_validity: self.alert_validity,
            escalate_after: self.alert_escalate_after,
            max_batch: secs("--alert-batch-secs", self.alert_batch_secs)?,
            concentration: self.alert_concentration,
            min_rows: self.alert_min_rows,
            max_lag: secs("--alert-lag-secs", self.alert_lag_secs)?,
            file: self.alert_file.clone(),
            webhook: self.alert_webhook.clone(),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

fn secs(option: &'static str, value: f64) -> Result<Duration, AlertError> {
    if value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(AlertError::Range {
            option,
            expected: "above 0 seconds",
            value,
        })
    }
}

/// The alert settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// `low_validity` fires below this share of valid rows (0–1).
    pub min_validity: f64,
    /// `low_validity` and `slow_batch` become ERROR from this many bad
    /// batches in a row (at least 1).
    pub escalate_after: u32,
    /// `slow_batch` fires when a batch takes longer.
    pub max_batch: Duration,
    /// `error_concentration` fires when one code fails this share of a
    /// batch's rows (above 0, at most 1).
    pub concentration: f64,
    /// `error_concentration` ignores batches that read fewer rows.
    pub min_rows: u64,
    /// `ingest_lag` fires when the oldest waiting file waited longer.
    pub max_lag: Duration,
    /// The JSON lines file every alert is appended to.
    pub file: Option<PathBuf>,
    /// The URL every alert is POSTed to.
    pub webhook: Option<WebhookUrl>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            min_validity: DEFAULT_VALIDITY,
            escalate_after: DEFAULT_ESCALATE_AFTER,
            max_batch: Duration::from_secs_f64(DEFAULT_BATCH_SECS),
            concentration: DEFAULT_CONCENTRATION,
            min_rows: DEFAULT_MIN_ROWS,
            max_lag: Duration::from_secs_f64(DEFAULT_LAG_SECS),
            file: None,
            webhook: None,
        }
    }
}

impl AlertConfig {
    /// Checks every range (for a config built by hand as well).
    pub fn validate(&self) -> Result<(), AlertError> {
        if !(0.0..=1.0).contains(&self.min_validity) {
            return Err(AlertError::Range {
                option: "--alert-validity",
                expected: "from 0 to 1",
                value: self.min_validity,
            });
        }
        if self.escalate_after == 0 {
            return Err(AlertError::Range {
                option: "--alert-escalate-after",
                expected: "at least 1",
                value: 0.0,
            });
        }
        if !(self.concentration > 0.0 && self.concentration <= 1.0) {
            return Err(AlertError::Range {
                option: "--alert-concentration",
                expected: "above 0 and at most 1",
                value: self.concentration,
            });
        }
        if self.max_batch.is_zero() {
            return Err(AlertError::Range {
                option: "--alert-batch-secs",
                expected: "above 0 seconds",
                value: 0.0,
            });
        }
        if self.max_lag.is_zero() {
            return Err(AlertError::Range {
                option: "--alert-lag-secs",
                expected: "above 0 seconds",
                value: 0.0,
            });
        }
        if let Some(w) = &self.webhook {
            w.validate()?;
        }
        Ok(())
    }
}

/// A webhook URL. It is a secret (whoever has it can post to the channel):
/// `Debug` and [`WebhookUrl::redacted`] show only its scheme and host.
///
/// Parsing never fails (so that a malformed value is never echoed in an
/// argument error); [`AlertConfig::validate`] checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Registers the URL with the output scrubber: its path is a secret.
    pub fn new(url: impl Into<String>) -> WebhookUrl {
        let url = WebhookUrl(url.into().trim().to_string());
        super::redact::register(&url.0);
        url
    }

    /// The whole URL: pass it to the HTTP client only, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`, the only part that may be logged.
    pub fn redacted(&self) -> String {
        match self.parts() {
            Some((scheme, host)) => format!("{scheme}://{host}"),
            None => "<invalid URL>".to_string(),
        }
    }

    /// The scheme and the host (with port, without user info).
    fn parts(&self) -> Option<(&str, &str)> {
        let (scheme, rest) = self.0.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        Some((scheme, host))
    }

    /// An http or https URL with a host and no blanks or control characters.
    pub fn validate(&self) -> Result<(), AlertError> {
        let clean = !self.0.chars().any(|c| c.is_whitespace() || c.is_control());
        match self.parts() {
            Some((scheme, host))
                if clean
                    && !host.is_empty()
                    && (scheme.eq_ignore_ascii_case("http")
                        || scheme.eq_ignore_ascii_case("https")) =>
            {
                Ok(())
            }
            _ => Err(AlertError::Webhook),
        }
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({}/…)", self.redacted())
    }
}

impl std::str::FromStr for WebhookUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(WebhookUrl::new(s))
    }
}

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

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `12.3 s`, `4 min 05 s`, `2 h 03 min`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    }
}

/// Control characters (a newline in a file name) as spaces: a message is
/// one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// Rounded to milliseconds, for the JSON details.
fn secs3(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// One open incident.
#[derive(Debug, Clone)]
struct Incident {
    title: String,
    severity: Severity,
    since: Instant,
    since_at: String,
    /// Reports in a row that found the condition (the first firing is 1).
    streak: u64,
    suppressed: u64,
    /// Files quarantined while it lasts (`file_quarantined` only).
    files: u64,
    /// The last alert delivered for it.
    last: Alert,
}

/// One firing to record.
struct Raise {
    rule: &'static str,
    key: String,
    severity: Severity,
    title: &'static str,
    message: String,
    details: Value,
}

/// The alert rules and their open incidents.
#[derive(Debug, Clone)]
pub struct Alerter {
    cfg: AlertConfig,
    incidents: BTreeMap<(&'static str, String), Incident>,
}

impl Alerter {
    pub fn new(cfg: AlertConfig) -> Alerter {
        Alerter {
            cfg,
            incidents: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &AlertConfig {
        &self.cfg
    }

    /// Rules `low_validity`, `slow_batch`, `error_concentration` and
    /// `file_quarantined` over one batch report.
    pub fn on_batch(&mut self, r: &BatchReport) -> Vec<Alert> {
        let Some(batch) = r.batch_id else {
            return Vec::new();
        };
        let mut out = Vec::new();
        out.extend(self.validity(batch, r));
        out.extend(self.slow(batch, r));
        out.extend(self.concentration(batch, r));
        out.extend(self.quarantine(batch, r));
        out
    }

    /// Rule `circuit_open`: CRITICAL when the breaker opens, resolved when
    /// it closes; half open changes nothing.
    pub fn on_breaker(&mut self, state: BreakerState) -> Vec<Alert> {
        let key = "database";
        let alert = match state {
            BreakerState::Open => self.raise(Raise {
                rule: CIRCUIT_OPEN,
                key: key.into(),
                severity: Severity::Critical,
                title: "Circuit breaker open",
                message: "the database keeps failing: the loader stopped taking files until \
                          probes find it again"
                    .into(),
                details: json!({ "breaker": state }),
            }),
            BreakerState::HalfOpen => None,
            BreakerState::Closed => self.resolve(
                CIRCUIT_OPEN,
                key,
                "the circuit breaker closed: the loader takes files again".into(),
                json!({ "breaker": state }),
            ),
        };
        alert.into_iter().collect()
    }

    /// Rule `ingest_lag`: the oldest file waiting to be loaded, and how many
    /// wait.
    pub fn on_lag(&mut self, oldest_waiting_secs: f64, waiting_files: u64) -> Vec<Alert> {
        let key = "input";
        let limit = self.cfg.max_lag.as_secs_f64();
        let details = json!({
            "oldest_waiting_secs": (oldest_waiting_secs * 1000.0).round() / 1000.0,
            "waiting_files": waiting_files,
            "threshold_secs": limit,
        });
        let alert = if oldest_waiting_secs > limit {
            let waited = Duration::try_from_secs_f64(oldest_waiting_secs).unwrap_or(Duration::MAX);
            self.raise(Raise {
                rule: INGEST_LAG,
                key: key.into(),
                severity: Severity::Warning,
                title: "Ingest lag",
                message: format!(
                    "the oldest of {waiting_files} waiting file(s) has waited {} (limit {})",
                    human(waited),
                    human(self.cfg.max_lag)
                ),
                details,
            })
        } else {
            self.resolve(
                INGEST_LAG,
                key,
                format!("{waiting_files} file(s) waiting, none longer than the limit"),
                details,
            )
        };
        alert.into_iter().collect()
    }

    /// The incidents currently open, each as its last delivered alert with
    /// the current `consecutive` and `suppressed_repeats` counts; the most
    /// severe first.
    pub fn active(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .incidents
            .values()
            .map(|i| {
                let mut a = i.last.clone();
                if let Value::Object(m) = &mut a.details {
                    m.insert("consecutive".into(), json!(i.streak));
                    m.insert("suppressed_repeats".into(), json!(i.suppressed));
                    m.insert("since".into(), json!(i.since_at));
                }
                a
            })
            .collect();
        // Stable: within a severity the (rule, key) order of the map stays.
        out.sort_by_key(|a| std::cmp::Reverse(a.severity));
        out
    }

    /// How many reports in a row the incident will have seen with this one.
    fn next_streak(&self, rule: &'static str, key: &str) -> u64 {
        self.incidents
            .get(&(rule, key.to_string()))
            .map_or(1, |i| i.streak + 1)
    }

    /// WARNING, or ERROR from the `escalate_after`-th report in a row.
    fn escalating(&self, streak: u64) -> Severity {
        if streak >= u64::from(self.cfg.escalate_after) {
            Severity::Error
        } else {
            Severity::Warning
        }
    }

    /// Records a firing: returns the alert to deliver (first firing or an
    /// escalation), or `None` for a suppressed repeat.
    fn raise(&mut self, r: Raise) -> Option<Alert> {
        let at = now_rfc3339();
        let id = (r.rule, r.key.clone());
        let streak = self.incidents.get(&id).map_or(1, |i| i.streak + 1);
        let mut details = match r.details {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        details.insert("consecutive".into(), json!(streak));
        let mut alert = Alert {
            rule: r.rule,
            key: r.key,
            severity: r.severity,
            state: AlertState::Firing,
            title: r.title.to_string(),
            message: r.message,
            at: at.clone(),
            details: Value::Null,
        };
        if let Some(inc) = self.incidents.get_mut(&id) {
            inc.streak = streak;
            if r.severity <= inc.severity {
                inc.suppressed += 1;
                return None;
            }
            details.insert("escalated_from".into(), json!(inc.severity));
            details.insert("since".into(), json!(inc.since_at));
            alert.details = Value::Object(details);
            inc.severity = r.severity;
            inc.last = alert.clone();
            return Some(alert);
        }
        alert.details = Value::Object(details);
        self.incidents.insert(
            id,
            Incident {
                title: alert.title.clone(),
                severity: r.severity,
                since: Instant::now(),
                since_at: at,
                streak,
                suppressed: 0,
                files: 0,
                last: alert.clone(),
            },
        );
        Some(alert)
    }

    /// Ends an open incident: returns its resolution, or `None` when there
    /// was none.
    fn resolve(
        &mut self,
        rule: &'static str,
        key: &str,
        message: String,
        details: Value,
    ) -> Option<Alert> {
        let inc = self.incidents.remove(&(rule, key.to_string()))?;
        let lasted = inc.since.elapsed();
        let mut m = match details {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("since".into(), json!(inc.since_at));
        m.insert("duration_secs".into(), json!(secs3(lasted)));
        m.insert("suppressed_repeats".into(), json!(inc.suppressed));
        m.insert("consecutive".into(), json!(inc.streak));
        m.insert("peak_severity".into(), json!(inc.severity));
        if rule == FILE_QUARANTINED {
            m.insert("files_quarantined".into(), json!(inc.files));
        }
        Some(Alert {
            rule,
            key: key.to_string(),
            severity: Severity::Info,
            state: AlertState::Resolved,
            title: inc.title,
            message: format!(
                "resolved after {} ({} repeat(s) suppressed): {message}",
                human(lasted),
                inc.suppressed
            ),
            at: now_rfc3339(),
            details: Value::Object(m),
        })
    }

    fn validity(&mut self, batch: i64, r: &BatchReport) -> Option<Alert> {
        if r.rows_read == 0 {
            return None;
        }
        let key = "batches";
        let valid = r.rows_loaded + r.rows_duplicate;
        let validity = valid as f64 / r.rows_read as f64;
        let details = json!({
            "batch_id": batch,
            "validity": validity,
            "threshold": self.cfg.min_validity,
            "rows_read": r.rows_read,
            "rows_valid": valid,
            "rows_rejected": r.rows_rejected,
        });
        if validity >= self.cfg.min_validity {
            return self.resolve(
                LOW_VALIDITY,
                key,
                format!(
                    "batch {batch}: {} of {} rows valid",
                    percent(validity),
                    r.rows_read
                ),
                details,
            );
        }
        let streak = self.next_streak(LOW_VALIDITY, key);
        self.raise(Raise {
            rule: LOW_VALIDITY,
            key: key.into(),
            severity: self.escalating(streak),
            title: "Low data quality",
            message: format!(
                "batch {batch}: only {} of {} rows valid (threshold {}), {streak} batch(es) in a row",
                percent(validity),
                r.rows_read,
                percent(self.cfg.min_validity)
            ),
            details,
        })
    }

    fn slow(&mut self, batch: i64, r: &BatchReport) -> Option<Alert> {
        let key = "batches";
        let took = Duration::from_millis(r.duration_ms);
        let details = json!({
            "batch_id": batch,
            "duration_ms": r.duration_ms,
            "threshold_ms": self.cfg.max_batch.as_millis() as u64,
            "rows_read": r.rows_read,
            "files": r.files.len(),
        });
        if took <= self.cfg.max_batch {
            return self.resolve(
                SLOW_BATCH,
                key,
                format!("batch {batch} took {}", human(took)),
                details,
            );
        }
        let streak = self.next_streak(SLOW_BATCH, key);
        self.raise(Raise {
            rule: SLOW_BATCH,
            key: key.into(),
            severity: self.escalating(streak),
            title: "High processing latency",
            message: format!(
                "batch {batch} took {} (limit {}) for {} rows in {} file(s), {streak} batch(es) in a row",
                human(took),
                human(self.cfg.max_batch),
                r.rows_read,
                r.files.len()
            ),
            details,
        })
    }

    fn concentration(&mut self, batch: i64, r: &BatchReport) -> Vec<Alert> {
        let mut out = Vec::new();
        if r.rows_read == 0 || r.rows_read < self.cfg.min_rows {
            return out;
        }
        let share = |n: u64| n as f64 / r.rows_read as f64;
        let threshold = self.cfg.concentration;
        for (code, &n) in &r.rejects_by_code {
            if share(n) < threshold {
                continue;
            }
            out.extend(self.raise(Raise {
                rule: ERROR_CONCENTRATION,
                key: code.clone(),
                severity: Severity::Warning,
                title: "Error concentration",
                message: format!(
                    "batch {batch}: rule {code} failed {n} of {} rows ({}, threshold {})",
                    r.rows_read,
                    percent(share(n)),
                    percent(threshold)
                ),
                details: json!({
                    "batch_id": batch,
                    "code": code,
                    "count": n,
                    "rows_read": r.rows_read,
                    "share": share(n),
                    "threshold": threshold,
                }),
            }));
        }
        let open: Vec<String> = self
            .incidents
            .keys()
            .filter(|(rule, _)| *rule == ERROR_CONCENTRATION)
            .map(|(_, key)| key.clone())
            .collect();
        for code in open {
            let n = r.rejects_by_code.get(&code).copied().unwrap_or(0);
            if share(n) >= threshold {
                continue;
            }
            out.extend(self.resolve(
                ERROR_CONCENTRATION,
                &code,
                format!(
                    "batch {batch}: rule {code} failed {n} of {} rows ({})",
                    r.rows_read,
                    percent(share(n))
                ),
                json!({
                    "batch_id": batch,
                    "code": code,
                    "count": n,
                    "rows_read": r.rows_read,
                    "share": share(n),
                    "threshold": threshold,
                }),
            ));
        }
        out
    }

    fn quarantine(&mut self, batch: i64, r: &BatchReport) -> Option<Alert> {
        let key = "files";
        let rejected: Vec<(&str, &str)> = r
            .files
            .iter()
            .filter_map(|f| match &f.status {
                FileStatus::Rejected { reason } => Some((f.path.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        if rejected.is_empty() {
            return self.resolve(
                FILE_QUARANTINED,
                key,
                format!("batch {batch} quarantined no file"),
                json!({ "batch_id": batch }),
            );
        }
        let mut named: Vec<String> = rejected
            .iter()
            .take(NAMED_FILES)
            .map(|(path, reason)| format!("{} ({})", one_line(path), one_line(reason)))
            .collect();
        if rejected.len() > NAMED_FILES {
            named.push(format!("and {} more", rejected.len() - NAMED_FILES));
        }
        let listed: Vec<Value> = rejected
            .iter()
            .take(LISTED_FILES)
            .map(|(path, reason)| json!({ "path": path, "reason": reason }))
            .collect();
        let alert = self.raise(Raise {
            rule: FILE_QUARANTINED,
            key: key.into(),
            severity: Severity::Warning,
            title: "Files quarantined",
            message: format!(
                "batch {batch} quarantined {} file(s): {}",
                rejected.len(),
                named.join("; ")
            ),
            details: json!({
                "batch_id": batch,
                "count": rejected.len(),
                "files": listed,
            }),
        });
        if let Some(inc) = self.incidents.get_mut(&(FILE_QUARANTINED, key.to_string())) {
            inc.files += rejected.len() as u64;
        }
        alert
    }
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

    /// The webhook body: Slack incoming-webhook compatible (`text` and one
    /// attachment coloured by severity), with the whole alert under `alert`
    /// for receivers that are not Slack.
    pub fn webhook_payload(&self) -> Value {
        let color = match (self.state, self.severity) {
            (AlertState::Resolved, _) | (_, Severity::Info) => "good",
            (_, Severity::Warning) => "warning",
            (_, Severity::Error) => "danger",
            (_, Severity::Critical) => "#7a0019",
        };
        let field =
            |title: &str, value: &str| json!({ "title": title, "value": value, "short": true });
        let summary = self.summary();
        json!({
            "text": summary,
            "attachments": [{
                "color": color,
                "fallback": summary,
                "fields": [
                    field("Rule", self.rule),
                    field("Key", &self.key),
                    field("Severity", self.severity.as_str()),
                    field("State", self.state.as_str()),
                    field("At", &self.at),
                ],
            }],
            "alert": self,
        })
    }
}

/// Longest a webhook POST may take, connecting included.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the connection alone may take (a connect timeout is retried).
const WEBHOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before the one retry.
const WEBHOOK_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Alerts a channel could not deliver, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryFailures {
    pub file: u64,
    pub webhook: u64,
}

/// The webhook channel: the URL and a client that never follows redirects
/// (the alert goes to that URL or nowhere).
#[derive(Clone)]
struct Webhook {
    url: WebhookUrl,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("url", &self.url).finish()
    }
}

/// Where alerts go: always the log (`tracing`, at a level matching the
/// severity), plus a JSON lines file and a webhook when configured. Cheap
/// to clone (clones share the failure counts).
#[derive(Debug, Clone)]
pub struct Channels {
    file: Option<PathBuf>,
    webhook: Option<Webhook>,
    failed_file: Arc<AtomicU64>,
    failed_webhook: Arc<AtomicU64>,
}

impl Channels {
    /// Checks the webhook URL, creates the alert file's folders and checks
    /// that the file can be opened for appending.
    pub fn new(cfg: &AlertConfig) -> Result<Channels, AlertError> {
        if let Some(path) = &cfg.file {
            open_append(path).map_err(|source| AlertError::File {
                path: path.display().to_string(),
                source,
            })?;
        }
        let webhook = match &cfg.webhook {
            Some(url) => {
                url.validate()?;
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(WEBHOOK_TIMEOUT))
                    .timeout_connect(Some(WEBHOOK_CONNECT_TIMEOUT))
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .max_redirects_will_error(false)
                    .user_agent(concat!("shopstream/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .into();
                Some(Webhook {
                    url: url.clone(),
                    agent,
                })
            }
            None => None,
        };
        Ok(Channels {
            file: cfg.file.clone(),
            webhook,
            failed_file: Arc::default(),
            failed_webhook: Arc::default(),
        })
    }

    /// Alerts not delivered so far, by channel.
    pub fn failures(&self) -> DeliveryFailures {
        DeliveryFailures {
            file: self.failed_file.load(Ordering::Relaxed),
            webhook: self.failed_webhook.load(Ordering::Relaxed),
        }
    }

    /// Delivers alerts on every channel. Never fails the pipeline: delivery
    /// errors are logged (with the webhook host only) and counted.
    ///
    /// It returns once every channel is done; the webhook runs on a
    /// blocking thread and may take up to about 21 s (10 s, a 1 s pause, one
    /// retry): a caller that must not wait can spawn it on a clone.
    pub async fn deliver(&self, alerts: &[Alert]) {
        if alerts.is_empty() {
            return;
        }
        for a in alerts {
            log_alert(a);
        }
        if let Some(path) = &self.file {
            let (written, err) = append_lines(path, alerts).await;
            if let Some(e) = err {
                let lost = (alerts.len() - written) as u64;
                self.failed_file.fetch_add(lost, Ordering::Relaxed);
                tracing::warn!(
                    channel = "file",
                    file = %path.display(),
                    lost,
                    "cannot append alerts to the alert file: {e}"
                );
            }
        }
        if let Some(hook) = &self.webhook {
            let host = hook.url.redacted();
            let hook = hook.clone();
            let batch = alerts.to_vec();
            let failed = match tokio::task::spawn_blocking(move || hook.post_all(&batch)).await {
                Ok(failed) => failed,
                Err(e) => {
                    tracing::warn!(channel = "webhook", host = %host, "the webhook thread failed: {e}");
                    alerts.len() as u64
                }
            };
            self.failed_webhook.fetch_add(failed, Ordering::Relaxed);
        }
    }
}

fn log_alert(a: &Alert) {
    let line = a.summary();
    let (rule, key, severity, state) = (
        a.rule,
        a.key.as_str(),
        a.severity.as_str(),
        a.state.as_str(),
    );
    match a.severity {
        Severity::Info => tracing::info!(rule, key, severity, state, "{line}"),
        Severity::Warning => tracing::warn!(rule, key, severity, state, "{line}"),
        Severity::Error | Severity::Critical => {
            tracing::error!(rule, key, severity, state, "{line}")
        }
    }
}

/// Opens the file for appending, creating it and its folders.
fn open_append(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Appends one JSON line per alert, flushing each; the file is opened anew
/// each time (someone may have rotated it). Returns how many were written
/// and the error that stopped it.
async fn append_lines(path: &std::path::Path, alerts: &[Alert]) -> (usize, Option<String>) {
    use tokio::io::AsyncWriteExt;

    let p = path.to_path_buf();
    let mut file = match tokio::task::spawn_blocking(move || open_append(&p)).await {
        Ok(Ok(f)) => tokio::fs::File::from_std(f),
        Ok(Err(e)) => return (0, Some(e.to_string())),
        Err(e) => return (0, Some(e.to_string())),
    };
    for (i, a) in alerts.iter().enumerate() {
        let mut line = match serde_json::to_vec(a) {
            Ok(l) => l,
            Err(e) => return (i, Some(e.to_string())),
        };
        line.push(b'\n');
        if let Err(e) = file.write_all(&line).await {
            return (i, Some(e.to_string()));
        }
        if let Err(e) = file.flush().await {
            return (i, Some(e.to_string()));
        }
    }
    (alerts.len(), None)
}

impl Webhook {
    /// POSTs each alert (blocking); logs and returns the number that failed.
    fn post_all(&self, alerts: &[Alert]) -> u64 {
        let host = self.url.redacted();
        let mut failed = 0;
        for a in alerts {
            if let Err(e) = self.post(a) {
                failed += 1;
                tracing::warn!(
                    channel = "webhook",
                    host = %host,
                    rule = a.rule,
                    key = %a.key,
                    "cannot deliver the alert to the webhook: {e}"
                );
            }
        }
        failed
    }

    /// One POST, retried once after a pause on a connection error or a 5xx.
    fn post(&self, a: &Alert) -> Result<(), String> {
        let body = serde_json::to_vec(&a.webhook_payload()).map_err(|e| e.to_string())?;
        let mut retried = false;
        loop {
            let sent = self
                .agent
                .post(self.url.expose())
                .content_type("application/json")
                .send(body.as_slice());
            let retry = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if (200..300).contains(&status) {
                        return Ok(());
                    }
                    if !(500..600).contains(&status) || retried {
                        return Err(format!("the server answered HTTP {status}"));
                    }
                    format!("HTTP {status}")
                }
                Err(e) => {
                    if !retryable(&e) || retried {
                        return Err(describe(&e));
                    }
                    describe(&e)
                }
            };
            tracing::debug!(
                channel = "webhook",
                host = %self.url.redacted(),
                "webhook failed ({retry}); retrying once"
            );
            retried = true;
            std::thread::sleep(WEBHOOK_RETRY_AFTER);
        }
    }
}

/// A failure to reach the server at all (nothing was received).
fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
    )
}

/// The error without the URL (some errors would quote it).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "the URL is not valid".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::batch::FileReport;

    /// A committed batch of `read` rows, `valid` of them loaded, taking 1 s.
    fn batch(id: i64, read: u64, valid: u64) -> BatchReport {
        BatchReport {
            batch_id: Some(id),
            files: vec![file("in/a.csv", FileStatus::Loaded)],
            rows_read: read,
            rows_loaded: valid,
            rows_duplicate: 0,
            rows_rejected: read - valid,
            late: 0,
            rejects_by_code: BTreeMap::new(),
            elsewhere: vec![],
            rows_direct: 0,
            fell_back: false,
            duration_ms: 1_000,
        }
    }

    fn file(path: &str, status: FileStatus) -> FileReport {
        FileReport::new(path.into(), status, None)
    }

    fn rejected(path: &str, reason: &str) -> FileReport {
        file(
            path,
            FileStatus::Rejected {
                reason: reason.into(),
            },
        )
    }

    fn slow(id: i64, secs: u64) -> BatchReport {
        BatchReport {
            duration_ms: secs * 1_000,
            ..batch(id, 1_000, 1_000)
        }
    }

    fn with_codes(id: i64, read: u64, codes: &[(&str, u64)]) -> BatchReport {
        let rejected: u64 = codes.iter().map(|(_, n)| n).sum();
        BatchReport {
            rejects_by_code: codes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            ..batch(id, read, read - rejected.min(read))
        }
    }

    fn detail(a: &Alert, field: &str) -> Value {
        a.details.get(field).cloned().unwrap_or(Value::Null)
    }

    /// The (rule, severity, state) of each alert.
    fn shape(alerts: &[Alert]) -> Vec<(&'static str, Severity, AlertState)> {
        alerts
            .iter()
            .map(|a| (a.rule, a.severity, a.state))
            .collect()
    }

    fn only(alerts: Vec<Alert>) -> Alert {
        assert_eq!(alerts.len(), 1, "expected one alert, got {alerts:#?}");
        alerts.into_iter().next().unwrap()
    }

    #[test]
    fn low_validity_warns_escalates_once_and_resolves_once() {
        let mut a = Alerter::new(AlertConfig::default());
        let first = only(a.on_batch(&batch(1, 1_000, 800)));
        assert_eq!(
            (first.rule, first.severity, first.state),
            (LOW_VALIDITY, Severity::Warning, AlertState::Firing)
        );
        assert_eq!(first.title, "Low data quality");
        assert!(first.message.contains("80.0%"), "{}", first.message);
        assert_eq!(detail(&first, "batch_id"), json!(1));
        assert_eq!(detail(&first, "threshold"), json!(0.95));

        assert!(a.on_batch(&batch(2, 1_000, 800)).is_empty(), "suppressed");
        let third = only(a.on_batch(&batch(3, 1_000, 900)));
        assert_eq!(
            (third.severity, third.state),
            (Severity::Error, AlertState::Firing)
        );
        assert_eq!(detail(&third, "escalated_from"), json!("WARNING"));
        assert_eq!(detail(&third, "consecutive"), json!(3));
        assert!(
            a.on_batch(&batch(4, 1_000, 800)).is_empty(),
            "no 2nd escalation"
        );

        let done = only(a.on_batch(&batch(5, 1_000, 950)));
        assert_eq!(
            (done.rule, done.severity, done.state),
            (LOW_VALIDITY, Severity::Info, AlertState::Resolved)
        );
        assert_eq!(detail(&done, "suppressed_repeats"), json!(2));
        assert_eq!(detail(&done, "consecutive"), json!(4));
        assert_eq!(detail(&done, "peak_severity"), json!("ERROR"));
        assert!(detail(&done, "duration_secs").is_f64());
        assert!(a.on_batch(&batch(6, 1_000, 1_000)).is_empty());
        assert!(a.active().is_empty());
    }

    #[test]
    fn duplicates_count_as_valid_and_empty_or_uncommitted_batches_change_nothing() {
        let mut a = Alerter::new(AlertConfig::default());
        let dup = BatchReport {
            rows_duplicate: 500,
            ..batch(1, 1_000, 500)
        };
        assert!(a.on_batch(&dup).is_empty(), "500 loaded + 500 duplicate");
        only(a.on_batch(&batch(2, 1_000, 0)));
        assert!(a.on_batch(&batch(3, 0, 0)).is_empty(), "no row read");
        let nothing = BatchReport {
            batch_id: None,
            ..batch(4, 1_000, 1_000)
        };
        assert!(a.on_batch(&nothing).is_empty(), "nothing committed");
        assert_eq!(a.active().len(), 1, "still open");
        // The empty batches did not count as repeats.
        assert_eq!(detail(&a.active()[0], "suppressed_repeats"), json!(0));
    }

    #[test]
    fn escalate_after_one_fires_error_at_once() {
        let cfg = AlertConfig {
            escalate_after: 1,
            ..AlertConfig::default()
        };
        let mut a = Alerter::new(cfg);
        assert_eq!(
            only(a.on_batch(&batch(1, 100, 0))).severity,
            Severity::Error
        );
        assert!(a.on_batch(&batch(2, 100, 0)).is_empty());
    }

    #[test]
    fn slow_batch_warns_escalates_once_and_resolves_once() {
        let mut a = Alerter::new(AlertConfig::default());
        assert!(a.on_batch(&slow(1, 60)).is_empty(), "at the limit");
        let first = only(a.on_batch(&slow(2, 61)));
        assert_eq!(
            (first.rule, first.severity),
            (SLOW_BATCH, Severity::Warning)
        );
        assert_eq!(first.title, "High processing latency");
        assert!(first.message.contains("1 min 01 s"), "{}", first.message);
        assert!(a.on_batch(&slow(3, 90)).is_empty());
        let third = only(a.on_batch(&slow(4, 90)));
        assert_eq!(third.severity, Severity::Error);
        assert!(a.on_batch(&slow(5, 90)).is_empty());
        let done = only(a.on_batch(&slow(6, 2)));
        assert_eq!(
            shape(std::slice::from_ref(&done)),
            vec![(SLOW_BATCH, Severity::Info, AlertState::Resolved)]
        );
        assert_eq!(detail(&done, "suppressed_repeats"), json!(2));
        assert!(a.on_batch(&slow(7, 2)).is_empty());
    }

    #[test]
    fn error_concentration_is_one_incident_per_code() {
        let mut a = Alerter::new(AlertConfig::default());
        let fired = a.on_batch(&with_codes(
            1,
            100,
            &[
                ("missing_user_id", 10),
                ("negative_price", 12),
                ("bad_time", 9),
            ],
        ));
        // 20% invalid also fires low_validity.
        let conc: Vec<&Alert> = fired
            .iter()
            .filter(|x| x.rule == ERROR_CONCENTRATION)
            .collect();
        let keys: Vec<&str> = conc.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["missing_user_id", "negative_price"], "10% is enough");
        assert!(conc.iter().all(|x| x.severity == Severity::Warning));
        assert!(conc[1].message.contains("12.0%"), "{}", conc[1].message);
        assert_eq!(detail(conc[0], "code"), json!("missing_user_id"));

        // Both again: suppressed.
        let again = a.on_batch(&with_codes(
            2,
            200,
            &[("missing_user_id", 20), ("negative_price", 30)],
        ));
        assert!(again.iter().all(|x| x.rule != ERROR_CONCENTRATION));

        // A tiny batch is not judged: nothing fires, nothing resolves.
        let tiny = a.on_batch(&with_codes(3, 99, &[("other_code", 90)]));
        assert!(tiny.iter().all(|x| x.rule != ERROR_CONCENTRATION));
        assert_eq!(
            a.active()
                .iter()
                .filter(|x| x.rule == ERROR_CONCENTRATION)
                .count(),
            2
        );

        // One code falls below the threshold: only its incident resolves.
        let later = a.on_batch(&with_codes(
            4,
            1_000,
            &[("missing_user_id", 5), ("negative_price", 100)],
        ));
        let resolved: Vec<(&str, AlertState)> = later
            .iter()
            .filter(|x| x.rule == ERROR_CONCENTRATION)
            .map(|x| (x.key.as_str(), x.state))
            .collect();
        assert_eq!(resolved, [("missing_user_id", AlertState::Resolved)]);
        let r = later
            .iter()
            .find(|x| x.key == "missing_user_id")
            .cloned()
            .unwrap();
        assert_eq!(detail(&r, "suppressed_repeats"), json!(1));

        // The other one resolves when the code is gone.
        let last = a.on_batch(&with_codes(5, 1_000, &[]));
        let resolved: Vec<&str> = last
            .iter()
            .filter(|x| x.rule == ERROR_CONCENTRATION)
            .map(|x| x.key.as_str())
            .collect();
        assert_eq!(resolved, ["negative_price"]);
        assert!(a.on_batch(&with_codes(6, 1_000, &[])).is_empty());
    }

    #[test]
    fn file_quarantined_names_the_files_and_resolves_after_a_clean_batch() {
        let mut a = Alerter::new(AlertConfig::default());
        let mut r = batch(1, 0, 0);
        r.files = vec![
            file("in/good.csv", FileStatus::Loaded),
            rejected("in/empty.csv", "empty file"),
            rejected("in/bin.csv", "binary content"),
        ];
        let first = only(a.on_batch(&r));
        assert_eq!(
            (first.rule, first.severity, first.state),
            (FILE_QUARANTINED, Severity::Warning, AlertState::Firing)
        );
        assert!(
            first
                .message
                .contains("2 file(s): in/empty.csv (empty file); in/bin.csv (binary content)"),
            "{}",
            first.message
        );
        assert!(!first.message.contains("good.csv"));
        assert_eq!(detail(&first, "count"), json!(2));
        assert_eq!(detail(&first, "files")[1]["path"], json!("in/bin.csv"));

        // Seven more: five named, then "and 2 more"; but it is a repeat.
        let mut many = batch(2, 0, 0);
        many.files = (0..7)
            .map(|i| rejected(&format!("in/f{i}.csv"), "unknown header"))
            .collect();
        assert!(a.on_batch(&many).is_empty(), "still quarantining");

        let done = only(a.on_batch(&batch(3, 10, 10)));
        assert_eq!(done.state, AlertState::Resolved);
        assert_eq!(detail(&done, "files_quarantined"), json!(9));
        assert_eq!(detail(&done, "suppressed_repeats"), json!(1));
        assert!(a.on_batch(&batch(4, 10, 10)).is_empty());

        // A new incident names five files and counts the rest.
        let fresh = only(a.on_batch(&many));
        assert!(fresh
            .message
            .contains("in/f4.csv (unknown header); and 2 more"));
        assert!(!fresh.message.contains("in/f5.csv"));

        let mut odd = batch(5, 0, 0);
        odd.files = vec![rejected("in/two\nlines.csv", "bad\r\nheader")];
        a.on_batch(&batch(6, 10, 10));
        let odd = only(a.on_batch(&odd));
        assert!(!odd.message.contains(['\n', '\r']), "{}", odd.message);
    }

    #[test]
    fn circuit_open_is_critical_until_the_breaker_closes() {
        let mut a = Alerter::new(AlertConfig::default());
        let open = only(a.on_breaker(BreakerState::Open));
        assert_eq!(
            (open.rule, open.severity, open.state),
            (CIRCUIT_OPEN, Severity::Critical, AlertState::Firing)
        );
        assert!(a.on_breaker(BreakerState::HalfOpen).is_empty());
        assert!(
            a.on_breaker(BreakerState::Open).is_empty(),
            "a failed probe"
        );
        assert!(a.on_breaker(BreakerState::HalfOpen).is_empty());
        assert_eq!(a.active()[0].rule, CIRCUIT_OPEN);
        let closed = only(a.on_breaker(BreakerState::Closed));
        assert_eq!(
            (closed.severity, closed.state),
            (Severity::Info, AlertState::Resolved)
        );
        assert_eq!(detail(&closed, "suppressed_repeats"), json!(1));
        assert!(a.on_breaker(BreakerState::Closed).is_empty());
        assert!(a.on_breaker(BreakerState::HalfOpen).is_empty());
    }

    #[test]
    fn ingest_lag_fires_suppresses_and_resolves() {
        let mut a = Alerter::new(AlertConfig::default());
        assert!(a.on_lag(300.0, 4).is_empty(), "at the limit");
        let lag = only(a.on_lag(301.0, 4));
        assert_eq!(
            (lag.rule, lag.severity, lag.state),
            (INGEST_LAG, Severity::Warning, AlertState::Firing)
        );
        assert!(lag.message.contains("5 min 01 s"), "{}", lag.message);
        assert_eq!(detail(&lag, "waiting_files"), json!(4));
        assert!(a.on_lag(900.0, 9).is_empty());
        let done = only(a.on_lag(3.0, 1));
        assert_eq!(done.state, AlertState::Resolved);
        assert_eq!(detail(&done, "suppressed_repeats"), json!(1));
        assert!(a.on_lag(0.0, 0).is_empty());
        assert!(a.on_lag(f64::NAN, 0).is_empty());
    }

    #[test]
    fn active_lists_open_incidents_most_severe_first() {
        let mut a = Alerter::new(AlertConfig::default());
        a.on_lag(1_000.0, 1);
        a.on_batch(&batch(1, 100, 0));
        a.on_breaker(BreakerState::Open);
        a.on_batch(&batch(2, 100, 0));
        let active = a.active();
        assert_eq!(
            shape(&active),
            vec![
                (CIRCUIT_OPEN, Severity::Critical, AlertState::Firing),
                (INGEST_LAG, Severity::Warning, AlertState::Firing),
                (LOW_VALIDITY, Severity::Warning, AlertState::Firing),
            ]
        );
        assert_eq!(detail(&active[2], "consecutive"), json!(2));
        assert_eq!(detail(&active[2], "suppressed_repeats"), json!(1));
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        alerts: AlertArgs,
    }

    fn parse(args: &[&str]) -> AlertArgs {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("shopstream").chain(args.iter().copied()))
            .unwrap()
            .alerts
    }

    #[test]
    fn documented_defaults_and_range_checks() {
        assert_eq!(parse(&[]).config().unwrap(), AlertConfig::default());
        let cfg = parse(&[
            "--alert-validity",
            "0.5",
            "--alert-batch-secs",
            "1.5",
            "--alert-file",
            "/tmp/alerts.jsonl",
        ])
        .config()
        .unwrap();
        assert_eq!(cfg.min_validity, 0.5);
        assert_eq!(cfg.max_batch, Duration::from_millis(1_500));
        assert_eq!(cfg.file, Some(PathBuf::from("/tmp/alerts.jsonl")));
        for bad in [
            ["--alert-validity", "1.5"],
            ["--alert-concentration", "0"],
            ["--alert-batch-secs", "0"],
            ["--alert-lag-secs=-1", "--alert-min-rows=1"],
            ["--alert-lag-secs", "NaN"],
            ["--alert-webhook", "ftp://example.com/x"],
            ["--alert-webhook", "https:///x"],
        ] {
            assert!(parse(&bad).config().is_err(), "{bad:?}");
        }
        let cli = <Cli as clap::Parser>::try_parse_from(["x", "--alert-escalate-after", "0"]);
        assert!(cli.is_err());
    }

    #[test]
    fn a_webhook_url_is_never_shown_whole() {
        let secret = "https://user:pw@hooks.example.com:8443/services/T000/B000/XXXXSECRET?x=1";
        let args = parse(&["--alert-webhook", secret]);
        let cfg = args.config().unwrap();
        let w = cfg.webhook.clone().unwrap();
        assert_eq!(w.redacted(), "https://hooks.example.com:8443");
        assert_eq!(w.expose(), secret);
        for shown in [format!("{args:?}"), format!("{cfg:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(!shown.contains("pw"), "{shown}");
            assert!(shown.contains("hooks.example.com"), "{shown}");
        }
        let err = parse(&["--alert-webhook", "https://x/ SECRET"])
            .config()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }

    fn sample() -> Alert {
        let mut a = Alerter::new(AlertConfig::default());
        only(a.on_batch(&batch(7, 1_000, 500)))
    }

    fn read_lines(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn the_file_channel_appends_one_json_object_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not/yet/alerts.jsonl");
        let cfg = AlertConfig {
            file: Some(path.clone()),
            ..AlertConfig::default()
        };
        let ch = Channels::new(&cfg).unwrap();
        assert!(path.exists(), "created with its folders");

        let mut a = Alerter::new(cfg);
        let fired = a.on_breaker(BreakerState::Open);
        let resolved = a.on_breaker(BreakerState::Closed);
        ch.deliver(&fired).await;
        ch.deliver(&[]).await;
        ch.deliver(&resolved).await;
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["rule"], json!("circuit_open"));
        assert_eq!(lines[0]["key"], json!("database"));
        assert_eq!(lines[0]["severity"], json!("CRITICAL"));
        assert_eq!(lines[0]["state"], json!("firing"));
        assert_eq!(lines[0]["details"]["breaker"], json!("open"));
        assert_eq!(lines[1]["severity"], json!("INFO"));
        assert_eq!(lines[1]["state"], json!("resolved"));
        assert!(lines[1]["details"]["duration_secs"].is_f64());
        for l in &lines {
            let at = l["at"].as_str().unwrap();
            assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
            assert!(at.ends_with('Z'), "{at}");
        }

        // Rotated away: the next delivery starts a new file.
        std::fs::rename(&path, dir.path().join("old.jsonl")).unwrap();
        ch.deliver(&[sample()]).await;
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["rule"], json!("low_validity"));
        assert_eq!(lines[0]["details"]["batch_id"], json!(7));
        assert_eq!(ch.failures(), DeliveryFailures::default());
    }

    #[tokio::test]
    async fn an_unwritable_alert_file_is_counted_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let cfg = AlertConfig {
            file: Some(path.clone()),
            ..AlertConfig::default()
        };
        let ch = Channels::new(&cfg).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        ch.deliver(&[sample(), sample()]).await;
        assert_eq!(ch.failures().file, 2);

        let blocked = AlertConfig {
            file: Some(path.join("x.jsonl")),
            ..AlertConfig::default()
        };
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, b"a file, not a folder").unwrap();
        assert!(matches!(
            Channels::new(&blocked),
            Err(AlertError::File { .. })
        ));
    }

    /// What the test receiver saw of one request.
    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        content_type: String,
        body: Value,
    }

    /// A local HTTP receiver answering each connection with the next status
    /// in `statuses`; it stops after the last one or `wait` without a
    /// connection, and returns what it saw.
    fn receiver(
        statuses: Vec<u16>,
        wait: Duration,
    ) -> (String, std::thread::JoinHandle<Vec<Seen>>) {
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for status in statuses {
                let deadline = Instant::now() + wait;
                let mut stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(_) => return seen,
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "connection closed before the headers");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let mut request = lines.next().unwrap().split(' ');
                let method = request.next().unwrap().to_string();
                let path = request.next().unwrap().to_string();
                let header = |name: &str| {
                    head.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.trim().to_string())
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap();
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).unwrap();
                    assert!(n > 0, "connection closed before the body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
                seen.push(Seen {
                    method,
                    path,
                    content_type: header("content-type"),
                    body,
                });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                stream.write_all(answer.as_bytes()).unwrap();
            }
            seen
        });
        (format!("http://{addr}/services/T000/B000/SECRET"), handle)
    }

    fn with_webhook(url: &str) -> Channels {
        let cfg = AlertConfig {
            webhook: Some(WebhookUrl::new(url)),
            ..AlertConfig::default()
        };
        Channels::new(&cfg).unwrap()
    }

    #[tokio::test]
    async fn the_webhook_gets_a_slack_compatible_post() {
        let (url, server) = receiver(vec![200], Duration::from_secs(10));
        let ch = with_webhook(&url);
        let alert = sample();
        ch.deliver(std::slice::from_ref(&alert)).await;
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/services/T000/B000/SECRET");
        assert_eq!(req.content_type, "application/json");
        let text = req.body["text"].as_str().unwrap();
        assert_eq!(text, alert.summary());
        assert!(
            text.starts_with("[WARNING] Low data quality: batch 7: only 50.0% of 1000 rows valid"),
            "{text}"
        );
        assert!(text.is_ascii() && !text.contains('\n'), "{text}");
        let att = &req.body["attachments"][0];
        assert_eq!(att["color"], json!("warning"));
        let fields = att["fields"].as_array().unwrap();
        assert!(fields.contains(&json!({"title": "Rule", "value": "low_validity", "short": true})));
        assert!(fields.contains(&json!({"title": "Severity", "value": "WARNING", "short": true})));
        assert_eq!(req.body["alert"], serde_json::to_value(&alert).unwrap());
        assert_eq!(ch.failures(), DeliveryFailures::default());
    }

    #[tokio::test]
    async fn a_5xx_is_retried_once_after_a_pause() {
        let (url, server) = receiver(vec![500, 200], Duration::from_secs(10));
        let ch = with_webhook(&url);
        let started = Instant::now();
        ch.deliver(&[sample()]).await;
        assert!(started.elapsed() >= WEBHOOK_RETRY_AFTER);
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].body, seen[1].body);
        assert_eq!(ch.failures().webhook, 0);
    }

    #[tokio::test]
    async fn a_4xx_is_not_retried_and_is_counted() {
        let (url, server) = receiver(vec![404, 200], Duration::from_secs(3));
        let ch = with_webhook(&url);
        ch.deliver(&[sample()]).await;
        assert_eq!(ch.failures().webhook, 1);
        assert_eq!(server.join().unwrap().len(), 1, "no retry");
    }

    #[tokio::test]
    async fn a_webhook_that_refuses_connections_does_not_fail_the_caller() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ch = with_webhook(&format!("http://127.0.0.1:{port}/hook"));
        ch.deliver(&[sample(), sample()]).await;
        assert_eq!(ch.failures().webhook, 2);
        // Clones share the counts.
        assert_eq!(ch.clone().failures().webhook, 2);
    }
}
