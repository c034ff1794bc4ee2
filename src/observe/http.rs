//! The HTTP endpoint of `run` and `demo`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive), `/readyz` (the database is reachable
//! and the circuit breaker closed) and the live dashboard at `/`.
//!
//! It binds one address (`--http-addr`, default 127.0.0.1:9898, `off` to
//! switch it off). A non-loopback address needs `--http-allow-remote` and
//! then a bearer token (`--http-token-file` or `SHOPSTREAM_HTTP_TOKEN`),
//! compared in constant time; only `/healthz` and the dashboard's static
//! page stay open without it. It is read-only: GET and HEAD, anything else
//! is 405. It serves read-only views of what the loader publishes (with
//! any registered secret scrubbed) and stops with the process's
//! [`Shutdown`]. It never touches the pipeline's state, never writes to the
//! database and never logs the token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::dashboard::{self, Dashboard};
use super::metrics::Metrics;
use crate::pipeline::breaker::BreakerState;
use crate::pipeline::health::Health;
use crate::shutdown::Shutdown;

/// The default `--http-addr`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9898";
/// The environment variable that may hold the bearer token.
pub const TOKEN_ENV: &str = "SHOPSTREAM_HTTP_TOKEN";
/// Shortest accepted token.
const MIN_TOKEN_LEN: usize = 16;
/// Paths served without the token: liveness probes and the dashboard's
/// static page (it holds no data; its script sends the token for the data).
const OPEN_PATHS: [&str; 2] = ["/healthz", "/"];

/// Where the endpoint listens and who may read it.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz and the
    /// live dashboard at /), as HOST:PORT; port 0 picks a free port (the log
    /// says which). `off` switches it off. Give each worker on a machine its
    /// own port. An address other machines can reach (not loopback) also
    /// needs --http-allow-remote.
    #[arg(long, env = "SHOPSTREAM_HTTP_ADDR", default_value = DEFAULT_ADDR, value_name = "HOST:PORT|off")]
    pub http_addr: String,

    /// Allow --http-addr to be a non-loopback address (e.g. 0.0.0.0:9898).
    /// Then every request but /healthz and the dashboard's static page needs
    /// `Authorization: Bearer TOKEN` (see --http-token-file).
    #[arg(long, env = "SHOPSTREAM_HTTP_ALLOW_REMOTE")]
    pub http_allow_remote: bool,

    /// File holding the bearer token (at least 16 characters; surrounding
    /// whitespace ignored), or set SHOPSTREAM_HTTP_TOKEN. Required with
    /// --http-allow-remote, optional on loopback. In a browser open
    /// http://HOST:PORT/#token=TOKEN.
    #[arg(long, env = "SHOPSTREAM_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--http-addr {0:?} is not HOST:PORT (e.g. 127.0.0.1:9898) or off")]
    Addr(String),
    #[error(
        "cannot listen on {addr} for /metrics and the dashboard: {source}; is another shopstream \
         running there? Pass --http-addr HOST:PORT (port 0 picks a free one) or --http-addr off"
    )]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to serve /metrics and the dashboard on {addr}: it is not a loopback address, \
         so other machines could read them. Pass --http-allow-remote (with a bearer token: \
         --http-token-file FILE or SHOPSTREAM_HTTP_TOKEN) to mean it, or use 127.0.0.1:PORT"
    )]
    Remote { addr: String },
    #[error(
        "--http-allow-remote needs a bearer token so that only you can read the endpoint: \
         --http-token-file FILE or SHOPSTREAM_HTTP_TOKEN (at least {MIN_TOKEN_LEN} characters)"
    )]
    NoToken,
    #[error("cannot read the bearer token file {path}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bearer token ({from}) is shorter than {MIN_TOKEN_LEN} characters")]
    ShortToken { from: String },
}

/// A bearer token; its Debug shows nothing.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Whether `headers` carry `Authorization: Bearer <this token>`. The
    /// comparison is of BLAKE3 hashes, whose equality is constant-time.
    fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return false;
        };
        blake3::hash(given.as_bytes()) == blake3::hash(self.0.as_bytes())
    }

    /// The token, to register with the log scrubber.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

/// What the endpoint serves.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub metrics: Option<Metrics>,
    pub health: Health,
    pub dashboard: Option<Dashboard>,
}

/// A bound endpoint, ready to serve.
pub struct Endpoint {
    listener: TcpListener,
    pub addr: SocketAddr,
    token: Option<Token>,
}

impl HttpArgs {
    /// The bearer token from --http-token-file or SHOPSTREAM_HTTP_TOKEN.
    pub fn token(&self) -> Result<Option<Token>, HttpError> {
        let (text, from) = if let Some(path) = &self.http_token_file {
            let text = std::fs::read_to_string(path).map_err(|source| HttpError::TokenFile {
                path: path.display().to_string(),
                source,
            })?;
            warn_if_readable_by_others(path);
            (text, format!("--http-token-file {}", path.display()))
        } else {
            match std::env::var(TOKEN_ENV) {
                Ok(t) if !t.trim().is_empty() => (t, TOKEN_ENV.to_string()),
                _ => return Ok(None),
            }
        };
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(HttpError::ShortToken { from });
        }
        super::redact::register(token);
        Ok(Some(Token(Arc::from(token))))
    }

    /// Binds the address, or `None` when switched off. Refuses a
    /// non-loopback address without --http-allow-remote and a token.
    pub async fn bind(&self) -> Result<Option<Endpoint>, HttpError> {
        let spec = self.http_addr.trim();
        if spec.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(spec)
            .await
            .map_err(|_| HttpError::Addr(spec.to_string()))?
            .collect();
        let first = addrs
            .first()
            .copied()
            .ok_or_else(|| HttpError::Addr(spec.to_string()))?;
        let remote = !first.ip().is_loopback();
        if remote && !self.http_allow_remote {
            return Err(HttpError::Remote {
                addr: spec.to_string(),
            });
        }
        let token = self.token()?;
        if remote && token.is_none() {
            return Err(HttpError::NoToken);
        }
        let listener = TcpListener::bind(first)
            .await
            .map_err(|source| HttpError::Bind {
                addr: spec.to_string(),
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(first);
        Ok(Some(Endpoint {
            listener,
            addr,
            token,
        }))
    }
}

fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::metadata(path) {
        if md.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the bearer token file {} can be read by other users (chmod 600 it)",
                path.display()
            );
        }
    }
}

impl Endpoint {
    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The bearer token requests need, if any.
    pub fn token(&self) -> Option<&Token> {
        self.token.as_ref()
    }

    /// Serves until `shutdown`.
    pub fn spawn(self, state: HttpState, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let app = router(Arc::new(state), self.token.clone());
        tracing::info!(
            "serving /metrics, /healthz, /readyz and the dashboard on http://{}/{}",
            self.addr,
            if self.token.is_some() {
                " (bearer token required; /healthz open)"
            } else {
                ""
            }
        );
        tokio::spawn(async move {
            let stop = async move { shutdown.wait().await };
            if let Err(e) = axum::serve(self.listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("the HTTP endpoint stopped: {e}");
            }
        })
    }
}

/// The token check (when there is a token), then GET/HEAD only, then the
/// routes; every answer is marked not to be cached or sniffed.
async fn guard(State(token): State<Option<Token>>, req: Request, next: Next) -> Response {
    let open = OPEN_PATHS.contains(&req.uri().path());
    let mut resp = match &token {
        Some(t) if !open && !t.admits(req.headers()) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"shopstream\"")],
            "a bearer token is required: Authorization: Bearer TOKEN\n",
        )
            .into_response(),
        _ if req.method() != Method::GET && req.method() != Method::HEAD => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "this endpoint is read-only: GET and HEAD only\n",
        )
            .into_response(),
        _ => scrubbed(next.run(req).await).await,
    };
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The response with every registered secret scrubbed from its body (the
/// health and dashboard data hold error messages). Bodies are small.
async fn scrubbed(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large\n").into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    match super::redact::scrub(&text) {
        std::borrow::Cow::Borrowed(_) => Response::from_parts(parts, axum::body::Body::from(bytes)),
        std::borrow::Cow::Owned(clean) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(clean))
        }
    }
}

/// The routes.
pub fn router(state: Arc<HttpState>, token: Option<Token>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .with_state(state)
        .layer(middleware::from_fn_with_state(token, guard))
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    match &s.metrics {
        Some(m) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            m.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not recorded\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<HttpState>>) -> Response {
    let h = s.health.snapshot();
    let ready = h.ready && h.breaker == BreakerState::Closed;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(h)).into_response()
}
