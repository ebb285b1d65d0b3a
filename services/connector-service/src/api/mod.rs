//! The `/api/v1` routes, one module per resource.

pub mod connectors;
pub mod discovery;
pub mod health;
pub mod tenants;
pub mod types;

use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(tenants::router())
        .merge(connectors::router())
        .merge(discovery::router())
        .merge(health::router())
        .merge(types::router())
}

/// The error shape of every route.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `NOT_FOUND`, `PLAN_LIMIT_EXCEEDED`.
    pub code: String,
    pub message: String,
}
