//! How the process is watched: metrics, health endpoints, alerts and the
//! live dashboard.
//!
//! * [`alerts`]: the alert rules (incidents, suppression, resolution) and
//!   their channels (log, JSON lines, Slack-compatible webhook).
//! * [`metrics`]: the Prometheus metrics and where each is recorded.
//! * [`http`]: the endpoint serving `/metrics`, `/healthz`, `/readyz` and
//!   the dashboard.
//! * [`dashboard`]: the live dashboard's page and its data.
//! * [`progress`]: progress bars for bounded work on a terminal.
//! * [`redact`]: scrubs registered secrets from stderr, panics and HTTP.

pub mod alerts;
pub mod dashboard;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod redact;
