//! How the process is watched: metrics, health endpoints, alerts and the
//! live dashboard.
//!
//! Each watcher of the loader is an observer of its events
//! ([`crate::loader_event`]): [`health::Health`], [`metrics::MetricsObserver`],
//! [`alerts::Alerter`] and [`progress::LoadProgress`]. Nothing here imports
//! `pipeline`, `sink` or `source`.
//!
//! * [`alerts`]: the alert rules (incidents, suppression, resolution) and
//!   their channels (log, JSON lines, Slack-compatible webhook), split into
//!   config, rules and delivery.
//! * [`health`]: the loader's state as the rest of the process sees it.
//! * [`metrics`]: the Prometheus metrics and where each is recorded.
//! * [`http`]: the endpoint serving `/metrics`, `/healthz`, `/readyz` and
//!   the dashboard.
//! * [`dashboard`]: the live dashboard's page and its data.
//! * [`progress`]: progress bars for bounded work on a terminal.
//! * [`redact`]: scrubs registered secrets from stderr, panics and HTTP.

pub mod alerts;
pub mod dashboard;
pub mod health;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod redact;

#[cfg(test)]
mod tests {
    /// The observers depend on the loader's events only: no module here
    /// names the loader's, the sink's or the source's types.
    #[test]
    fn observe_imports_nothing_from_pipeline_sink_or_source() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/observe");
        let mut dirs = vec![root];
        let mut checked = 0;
        // Spelled apart, so that this test does not find itself.
        let banned = ["pipeline", "sink", "source"].map(|m| format!("crate::{m}"));
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                checked += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    for banned in &banned {
                        assert!(
                            !line.contains(banned.as_str()),
                            "{}:{}: {line}",
                            path.display(),
                            n + 1
                        );
                    }
                }
            }
        }
        assert!(checked >= 8, "only {checked} files read");
    }
}
