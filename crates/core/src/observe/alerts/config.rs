//! Alert settings: the `--alert-*` options ([`AlertArgs`]), their checked
//! form ([`AlertConfig`]) and the webhook URL, a secret ([`WebhookUrl`]).
//!
//! It owns parsing and range checks only; it never opens, sends or logs
//! anything, and never shows a webhook URL beyond scheme://host.

use std::path::PathBuf;
use std::time::Duration;

use super::AlertError;

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
        crate::observe::redact::register(&url.0);
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

#[cfg(test)]
mod tests {
    use super::*;

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
