//! The alert rules over the loader's events, and their incidents:
//! suppression of repeats, escalation, resolution.
//!
//! [`AlertRules`] is pure bookkeeping: it never logs, sleeps or sends; it
//! returns the alerts to deliver.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::config::AlertConfig;
use super::{one_line, Alert, AlertState, Severity};
use crate::loader_event::{BatchDone, BreakerState, FileOutcome, LoaderEvent};

/// Rule names, as they appear in `Alert::rule`.
pub const LOW_VALIDITY: &str = "low_validity";
pub const SLOW_BATCH: &str = "slow_batch";
pub const ERROR_CONCENTRATION: &str = "error_concentration";
pub const CIRCUIT_OPEN: &str = "circuit_open";
pub const INGEST_LAG: &str = "ingest_lag";
pub const FILE_QUARANTINED: &str = "file_quarantined";

/// Files named in the message of a `file_quarantined` alert.
const NAMED_FILES: usize = 5;
/// Files listed in the details of a `file_quarantined` alert.
const LISTED_FILES: usize = 20;

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
pub struct AlertRules {
    cfg: AlertConfig,
    incidents: BTreeMap<(&'static str, String), Incident>,
}

impl AlertRules {
    pub fn new(cfg: AlertConfig) -> AlertRules {
        AlertRules {
            cfg,
            incidents: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &AlertConfig {
        &self.cfg
    }

    /// The rules that watch `event`; a batch report without files (all
    /// were held by another loader) is ignored.
    pub fn on_event(&mut self, event: &LoaderEvent) -> Vec<Alert> {
        match event {
            LoaderEvent::Batch(b) if !b.files.is_empty() => self.on_batch(b),
            LoaderEvent::Breaker { state, .. } => self.on_breaker(*state),
            LoaderEvent::Lag {
                waiting_files,
                oldest_waiting_secs,
            } => self.on_lag(*oldest_waiting_secs, *waiting_files),
            _ => Vec::new(),
        }
    }

    /// Rules `low_validity`, `slow_batch`, `error_concentration` and
    /// `file_quarantined` over one batch report.
    pub fn on_batch(&mut self, r: &BatchDone) -> Vec<Alert> {
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

    fn validity(&mut self, batch: i64, r: &BatchDone) -> Option<Alert> {
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

    fn slow(&mut self, batch: i64, r: &BatchDone) -> Option<Alert> {
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

    fn concentration(&mut self, batch: i64, r: &BatchDone) -> Vec<Alert> {
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

    fn quarantine(&mut self, batch: i64, r: &BatchDone) -> Option<Alert> {
        let key = "files";
        let rejected: Vec<(&str, &str)> = r
            .files
            .iter()
            .filter_map(|f| match &f.outcome {
                FileOutcome::Rejected { reason } => Some((f.path.as_str(), reason.as_str())),
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
pub(super) mod tests {
    use super::*;
    use crate::loader_event::FileDone;

    /// A committed batch of `read` rows, `valid` of them loaded, taking 1 s.
    pub(crate) fn batch(id: i64, read: u64, valid: u64) -> BatchDone {
        BatchDone {
            batch_id: Some(id),
            files: vec![file("in/a.csv", FileOutcome::Loaded)],
            rows_read: read,
            rows_loaded: valid,
            rows_rejected: read - valid,
            duration_ms: 1_000,
            ..BatchDone::default()
        }
    }

    fn file(path: &str, outcome: FileOutcome) -> FileDone {
        FileDone {
            path: path.into(),
            outcome,
            arrived_micros: None,
        }
    }

    fn rejected(path: &str, reason: &str) -> FileDone {
        file(
            path,
            FileOutcome::Rejected {
                reason: reason.into(),
            },
        )
    }

    fn slow(id: i64, secs: u64) -> BatchDone {
        BatchDone {
            duration_ms: secs * 1_000,
            ..batch(id, 1_000, 1_000)
        }
    }

    fn with_codes(id: i64, read: u64, codes: &[(&str, u64)]) -> BatchDone {
        let rejected: u64 = codes.iter().map(|(_, n)| n).sum();
        BatchDone {
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

    pub(crate) fn only(alerts: Vec<Alert>) -> Alert {
        assert_eq!(alerts.len(), 1, "expected one alert, got {alerts:#?}");
        alerts.into_iter().next().unwrap()
    }

    #[test]
    fn low_validity_warns_escalates_once_and_resolves_once() {
        let mut a = AlertRules::new(AlertConfig::default());
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
        let mut a = AlertRules::new(AlertConfig::default());
        let dup = BatchDone {
            rows_duplicate: 500,
            ..batch(1, 1_000, 500)
        };
        assert!(a.on_batch(&dup).is_empty(), "500 loaded + 500 duplicate");
        only(a.on_batch(&batch(2, 1_000, 0)));
        assert!(a.on_batch(&batch(3, 0, 0)).is_empty(), "no row read");
        let nothing = BatchDone {
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
        let mut a = AlertRules::new(cfg);
        assert_eq!(
            only(a.on_batch(&batch(1, 100, 0))).severity,
            Severity::Error
        );
        assert!(a.on_batch(&batch(2, 100, 0)).is_empty());
    }

    #[test]
    fn slow_batch_warns_escalates_once_and_resolves_once() {
        let mut a = AlertRules::new(AlertConfig::default());
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
        let mut a = AlertRules::new(AlertConfig::default());
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
        let mut a = AlertRules::new(AlertConfig::default());
        let mut r = batch(1, 0, 0);
        r.files = vec![
            file("in/good.csv", FileOutcome::Loaded),
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
        let mut a = AlertRules::new(AlertConfig::default());
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
        let mut a = AlertRules::new(AlertConfig::default());
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
        let mut a = AlertRules::new(AlertConfig::default());
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
}
