//! How the process is watched: metrics, health endpoints, alerts, dashboard.
//!
//! * [`alerts`]: alert rules over batch reports, the circuit breaker and the
//!   input lag, with suppression of repeats, and their delivery channels
//!   (log, JSON lines file, Slack-compatible webhook).

pub mod alerts;
