//! The HTTP endpoint of `run` and `demo`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive), `/readyz` (the database is reachable
//! and the circuit breaker closed) and the live dashboard at `/`.
//!
//! It binds one address (`--http-addr`, default 127.0.0.1:9898, `off` to
//! switch it off), serves read-only views of what the loader publishes, and
//! stops with the process's [`Shutdown`]. It never touches the pipeline's
//! state and never writes to the database.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
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

/// Where the endpoint listens.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz and the
    /// live dashboard at /), as HOST:PORT; port 0 picks a free port (the log
    /// says which). `off` switches it off. Give each worker on a machine its
    /// own port.
    #[arg(long, env = "SHOPSTREAM_HTTP_ADDR", default_value = DEFAULT_ADDR, value_name = "HOST:PORT|off")]
    pub http_addr: String,
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
}

impl HttpArgs {
    /// Binds the address, or `None` when switched off.
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
        let listener = TcpListener::bind(first)
            .await
            .map_err(|source| HttpError::Bind {
                addr: spec.to_string(),
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(first);
        Ok(Some(Endpoint { listener, addr }))
    }
}

impl Endpoint {
    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until `shutdown`.
    pub fn spawn(self, state: HttpState, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let app = router(Arc::new(state));
        tracing::info!(
            "serving /metrics, /healthz, /readyz and the dashboard on http://{}/",
            self.addr
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

/// The routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .with_state(state)
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
