//! Alert delivery: every alert to the log (`tracing`, at the level of its
//! severity), to a JSON lines file and to a Slack-compatible webhook.
//!
//! [`Channels`] never fails or blocks its caller on a delivery error: it
//! logs and counts it. It never logs a webhook URL beyond scheme://host.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::config::{AlertConfig, WebhookUrl};
use super::{Alert, AlertError, AlertState, Severity};

impl Alert {
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
    use crate::loader_event::BreakerState;
    use crate::observe::alerts::rules::tests::{batch, only};
    use crate::observe::alerts::rules::AlertRules;
    use std::time::Instant;

    fn sample() -> Alert {
        let mut a = AlertRules::new(AlertConfig::default());
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

        let mut a = AlertRules::new(cfg);
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
