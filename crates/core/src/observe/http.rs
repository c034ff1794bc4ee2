//! The HTTP endpoint of `run` and `demo`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive), `/readyz` (the database is reachable
//! and the circuit breaker closed) and the live dashboard at `/`.
//!
//! It binds one address (`--http-addr`, default 127.0.0.1:9898 (none for
//! `run --once` unless given), `off` to switch it off). A non-loopback address needs `--http-allow-remote` and
//! then a bearer token (`--http-token-file` or `SHOPSTREAM_HTTP_TOKEN`),
//! compared in constant time; only `/healthz` and the dashboard's static
//! page stay open without it. It is read-only: GET and HEAD, anything else
//! is 405. It serves read-only views of what the loader publishes (with
//! any registered secret scrubbed) and stops with the process's
//! [`Shutdown`]. It never touches the pipeline's state, never writes to the
//! database and never logs the token.
//!
//! Its clients can never starve the loader of file descriptors or time: at
//! most `--http-max-connections` connections are open at once (one more is
//! answered `503` and closed at once, so it holds no descriptor and waits in
//! no queue); a client must send its request headers within
//! `--http-timeout-secs` of connecting or of its previous response (idle
//! and slow clients are disconnected); a request body is never waited for;
//! an answer that takes longer than the timeout is a `503`; and a
//! connection is closed after [`LIFETIME_TIMEOUTS`] timeouts in all (after
//! the response in flight).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::dashboard::{self, Dashboard};
use super::health::Health;
use super::metrics::Metrics;
use crate::loader_event::BreakerState;
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
/// The default `--http-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 64;
/// A connection is closed (after its response in flight) once it has been
/// open this many `--http-timeout-secs`, so that no client holds one for
/// ever, even one that reads its responses slowly.
pub const LIFETIME_TIMEOUTS: u32 = 6;
/// What a connection beyond `--http-max-connections` is told before it is
/// closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 40\r\n\r\ntoo many connections, try again shortly\n";

/// Where the endpoint listens and who may read it.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz and the
    /// live dashboard at /), as HOST:PORT; port 0 picks a free port (the log
    /// says which). `off` switches it off. Give each worker on a machine its
    /// own port. An address other machines can reach (not loopback) also
    /// needs --http-allow-remote. [default: 127.0.0.1:9898; off for
    /// `run --once`, which serves only when given an address]
    #[arg(long, env = "SHOPSTREAM_HTTP_ADDR", value_name = "HOST:PORT|off")]
    pub http_addr: Option<String>,

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

    /// Most HTTP connections open at once. One more is answered 503 and
    /// closed at once, so the endpoint never takes the file descriptors
    /// the loader needs.
    #[arg(long, env = "SHOPSTREAM_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub http_max_connections: u32,

    /// Seconds a client has to send its request headers, after connecting
    /// or after its previous response (an idle or slow client is
    /// disconnected); an answer that takes longer is a 503. A connection is
    /// closed after six times this in all (after its response in flight).
    #[arg(
        long,
        env = "SHOPSTREAM_HTTP_TIMEOUT_SECS",
        default_value_t = 10.0,
        value_name = "S"
    )]
    pub http_timeout_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--http-addr {0:?} is not HOST:PORT (e.g. 127.0.0.1:9898) or off")]
    Addr(String),
    #[error(
        "cannot listen on {addr} for /metrics and the dashboard: {error}; is another shopstream \
         running there? Pass --http-addr HOST:PORT (port 0 picks a free one) or --http-addr off"
    )]
    // The cause is in the message, not a `source`: it would print twice.
    Bind { addr: String, error: std::io::Error },
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
    #[error("cannot read the bearer token file {path}: {error}")]
    TokenFile { path: String, error: std::io::Error },
    #[error("the bearer token ({from}) is shorter than {MIN_TOKEN_LEN} characters")]
    ShortToken { from: String },
    #[error("--http-timeout-secs must be above 0 (and below a day)")]
    Timeout,
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

/// How much the endpoint's clients may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// To send request headers; to be answered.
    pub timeout: Duration,
}

impl Limits {
    /// The longest a connection stays open.
    fn lifetime(&self) -> Duration {
        self.timeout * LIFETIME_TIMEOUTS
    }
}

/// A bound endpoint, ready to serve.
pub struct Endpoint {
    listener: TcpListener,
    pub addr: SocketAddr,
    token: Option<Token>,
    limits: Limits,
}

impl HttpArgs {
    /// The bearer token from --http-token-file or SHOPSTREAM_HTTP_TOKEN.
    pub fn token(&self) -> Result<Option<Token>, HttpError> {
        let (text, from) = if let Some(path) = &self.http_token_file {
            let text = std::fs::read_to_string(path).map_err(|error| HttpError::TokenFile {
                path: path.display().to_string(),
                error,
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
        let spec = self.http_addr.as_deref().unwrap_or(DEFAULT_ADDR).trim();
        if spec.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let limits = self.limits()?;
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
            .map_err(|error| HttpError::Bind {
                addr: spec.to_string(),
                error,
            })?;
        let addr = listener.local_addr().unwrap_or(first);
        Ok(Some(Endpoint {
            listener,
            addr,
            token,
            limits,
        }))
    }

    /// The connection limit and the timeout from their options.
    pub fn limits(&self) -> Result<Limits, HttpError> {
        let t = self.http_timeout_secs;
        if !(t > 0.0 && t < 86_400.0) {
            return Err(HttpError::Timeout);
        }
        Ok(Limits {
            max_connections: self.http_max_connections as usize,
            timeout: Duration::from_secs_f64(t),
        })
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
        let guard = Guard {
            token: self.token.clone(),
            timeout: self.limits.timeout,
        };
        let app = router(Arc::new(state), guard);
        tracing::info!(
            "serving /metrics, /healthz, /readyz and the dashboard on http://{}/{}",
            self.addr,
            if self.token.is_some() {
                " (bearer token required; /healthz open)"
            } else {
                ""
            }
        );
        tokio::spawn(accept_loop(self.listener, app, self.limits, shutdown))
    }
}

/// Accepts connections until `shutdown`, each served on a task of its own
/// while a permit is free; a connection beyond the limit is told `503` and
/// closed at once.
async fn accept_loop(listener: TcpListener, app: Router, limits: Limits, shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut refused = Refusals::default();
    loop {
        let stream = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait() => return,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e, &shutdown).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // A fresh socket's send buffer is empty: this never blocks.
            let _ = stream.try_write(BUSY);
            drop(stream);
            refused.note(limits.max_connections);
            continue;
        };
        let conn = serve_connection(stream, app.clone(), limits, shutdown.clone());
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
}

/// Connections refused for the limit, logged at most every ten seconds.
#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, max: usize) {
        self.since_log += 1;
        if self
            .logged
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        tracing::warn!(
            "the HTTP endpoint has {max} connections open (--http-max-connections): refused {} \
             more",
            self.since_log
        );
        self.since_log = 0;
        self.logged = Some(Instant::now());
    }
}

/// An accept that failed: a connection that went away is nothing; anything
/// else (out of file descriptors) is logged and waited out for a second.
async fn accept_failed(e: &std::io::Error, shutdown: &Shutdown) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("the HTTP endpoint cannot accept a connection: {e}; trying again in 1 s");
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(1)) => {},
        _ = shutdown.wait() => {},
    }
}

/// One HTTP/1.1 connection: request headers within the timeout (hyper's
/// header read timeout, which also ends an idle kept-alive connection),
/// closed after its lifetime or at shutdown, once its response in flight is
/// sent (or one more timeout has passed).
async fn serve_connection(stream: TcpStream, app: Router, limits: Limits, shutdown: Shutdown) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.timeout);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP connection ended: {e}");
            }
            return;
        }
        _ = tokio::time::sleep(limits.lifetime()) => {},
        _ = shutdown.wait() => {},
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.timeout, conn).await;
}

/// What every request passes first.
#[derive(Clone, Debug)]
struct Guard {
    token: Option<Token>,
    timeout: Duration,
}

/// The token check (when there is a token), then GET/HEAD only, then the
/// routes; every answer is marked not to be cached or sniffed.
async fn guard(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let open = OPEN_PATHS.contains(&req.uri().path());
    let mut resp = match &guard.token {
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
        _ => match tokio::time::timeout(guard.timeout, next.run(req)).await {
            Ok(resp) => scrubbed(resp).await,
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONNECTION, "close")],
                "the answer took longer than --http-timeout-secs\n",
            )
                .into_response(),
        },
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
fn router(state: Arc<HttpState>, guard_state: Guard) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .with_state(state)
        .layer(middleware::from_fn_with_state(guard_state, guard))
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
    let mut h = s.health.snapshot();
    // The body says what the status says: not ready while the circuit is
    // not closed.
    h.ready = h.ready && h.breaker == BreakerState::Closed;
    let status = if h.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(h)).into_response()
}
