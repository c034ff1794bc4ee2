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

use std::collections::BTreeMap;
use std::path::PathBuf;
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
    pub fn new(url: impl Into<String>) -> WebhookUrl {
        WebhookUrl(url.into().trim().to_string())
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
        out.sort_by(|a, b| b.severity.cmp(&a.severity));
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
            duration_ms: 1_000,
        }
    }

    fn file(path: &str, status: FileStatus) -> FileReport {
        FileReport {
            path: path.into(),
            status,
            rows_read: 0,
            rows_loaded: 0,
            rows_duplicate: 0,
            rows_rejected: 0,
            late: 0,
            candidate: None,
        }
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
}
