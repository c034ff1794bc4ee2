//! The live dashboard served at `/`.

use std::sync::Arc;

use axum::Router;

use super::http::HttpState;

/// Where the dashboard reads its numbers.
#[derive(Clone, Debug)]
pub struct Dashboard {
    config: tokio_postgres::Config,
}

impl Dashboard {
    pub fn new(db: &crate::db::connect::Database) -> Dashboard {
        Dashboard {
            config: db.config().clone(),
        }
    }
}

/// The dashboard's routes.
pub fn routes() -> Router<Arc<HttpState>> {
    Router::new()
}
