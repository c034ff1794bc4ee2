//! A loader's HTTP endpoint as `status` sees it: `/healthz` answers (the
//! process is up), `/readyz` gives its readiness, breaker state, last error
//! and waiting files (the JSON of `observe::health::HealthState`). GET
//! only, within the timeout, never following a redirect; the bearer token
//! is sent when one is configured and never shown.

use std::time::Duration;

use super::State;

/// One loader, as its endpoint describes it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LoaderStatus {
    pub endpoint: String,
    /// `/healthz` answered 200.
    pub up: bool,
    /// Why it could not be read (not up, or /readyz unreadable).
    pub error: Option<String>,
    /// `/readyz` said ready (the database reachable, the breaker closed).
    pub ready: Option<bool>,
    /// closed, open or half_open.
    pub breaker: Option<String>,
    pub consecutive_failures: Option<u32>,
    /// The loader's last failure, while not followed by a success.
    pub last_error: Option<String>,
    pub waiting_files: Option<u64>,
    pub oldest_waiting_secs: Option<f64>,
    /// Seconds since the Unix epoch of its last committed batch.
    pub last_commit_unix: Option<u64>,
}

/// The fields of `/readyz` that `status` reads; any may be missing.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Ready {
    ready: Option<bool>,
    breaker: Option<String>,
    consecutive_failures: Option<u32>,
    last_error: Option<String>,
    last_commit_unix: Option<u64>,
    waiting_files: Option<u64>,
    oldest_waiting_secs: Option<f64>,
}

impl LoaderStatus {
    /// What is wrong with this loader, and how bad it is.
    pub(super) fn problems(&self, wait: f64, max_wait_secs: u64) -> Vec<(State, String)> {
        let at = &self.endpoint;
        if !self.up {
            let why = self.error.as_deref().unwrap_or("no answer");
            return vec![(State::Down, format!("loader {at} is down: {why}"))];
        }
        let mut out = vec![];
        if let Some(e) = &self.error {
            out.push((State::Degraded, format!("loader {at}: {e}")));
        }
        if self.ready == Some(false) {
            let breaker = self.breaker.as_deref().unwrap_or("unknown");
            let last = self.last_error.as_deref().unwrap_or("none");
            out.push((
                State::Degraded,
                format!("loader {at} is not ready: breaker {breaker}, last error: {last}"),
            ));
        }
        if let (Some(n), Some(age)) = (self.waiting_files, self.oldest_waiting_secs) {
            if n > 0 && age > wait {
                out.push((
                    State::Degraded,
                    format!(
                        "backlog: loader {at} has {} waiting, the oldest for {} (more \
                         than --max-wait-secs {max_wait_secs})",
                        super::render::files(n),
                        super::render::age(age)
                    ),
                ));
            }
        }
        out
    }
}

/// GETs `base`'s `/healthz` and `/readyz` (blocking: call it off the
/// runtime's threads).
pub fn probe_endpoint(base: &str, token: Option<&str>, timeout: Duration) -> LoaderStatus {
    let base = base.trim_end_matches('/');
    let mut out = LoaderStatus {
        endpoint: base.to_string(),
        ..LoaderStatus::default()
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("shopstream/", env!("CARGO_PKG_VERSION"), " status"))
        .build()
        .into();
    let get = |path: &str| -> Result<(u16, String), String> {
        let mut req = agent.get(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut resp = req.call().map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().map_err(|e| describe(&e))?;
        Ok((status, body))
    };
    match get("/healthz") {
        Ok((200, _)) => out.up = true,
        Ok((code, _)) => {
            out.error = Some(format!("/healthz answered HTTP {code}"));
            return out;
        }
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    }
    match get("/readyz") {
        Ok((200 | 503, body)) => match serde_json::from_str::<Ready>(&body) {
            Ok(r) => {
                out.ready = r.ready;
                out.breaker = r.breaker;
                out.consecutive_failures = r.consecutive_failures;
                out.last_error = r.last_error;
                out.waiting_files = r.waiting_files;
                out.oldest_waiting_secs = r.oldest_waiting_secs;
                out.last_commit_unix = r.last_commit_unix;
            }
            Err(e) => out.error = Some(format!("/readyz is not the loader's JSON: {e}")),
        },
        Ok((401, _)) => {
            out.error = Some(
                "/readyz wants the bearer token: give --http-token-file or SHOPSTREAM_HTTP_TOKEN"
                    .into(),
            )
        }
        Ok((code, _)) => out.error = Some(format!("/readyz answered HTTP {code}")),
        Err(e) => out.error = Some(e),
    }
    out
}

/// A request failure in words (never the URL's credentials: the endpoint
/// URL is the caller's, printed as given).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("no answer ({io})"),
        ureq::Error::ConnectionFailed => "the connection failed".into(),
        ureq::Error::HostNotFound => "the host was not found".into(),
        ureq::Error::Timeout(_) => "no answer within --timeout-secs".into(),
        ureq::Error::BadUri(u) => {
            format!("not a valid URL ({u}); expected e.g. http://127.0.0.1:9898")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loader_down_not_ready_or_behind_says_so() {
        let down = LoaderStatus {
            endpoint: "http://x".into(),
            error: Some("refused".into()),
            ..LoaderStatus::default()
        };
        assert_eq!(
            down.problems(300.0, 300),
            [(State::Down, "loader http://x is down: refused".to_string())]
        );
        let open = LoaderStatus {
            endpoint: "http://x".into(),
            up: true,
            ready: Some(false),
            breaker: Some("open".into()),
            last_error: Some("connection refused".into()),
            waiting_files: Some(2),
            oldest_waiting_secs: Some(400.0),
            ..LoaderStatus::default()
        };
        let p = open.problems(300.0, 300);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().all(|(s, _)| *s == State::Degraded));
        assert!(p[0]
            .1
            .contains("breaker open, last error: connection refused"));
        assert!(p[1].1.contains("2 files waiting, the oldest for 6m 40s"));
        let fine = LoaderStatus {
            up: true,
            ready: Some(true),
            waiting_files: Some(2),
            oldest_waiting_secs: Some(3.0),
            ..open
        };
        assert!(fine.problems(300.0, 300).is_empty());
    }
}
