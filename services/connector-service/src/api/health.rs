//! `GET …/connectors/{connector_id}/health`: a connector's status and its
//! recent scheduled checks, newest first, for dashboards.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::connectors::connector_for;
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiPath, ApiQuery, AppError, Code};
use crate::model::{ConnectorStatus, HealthCheck};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/health",
        get(connector_health),
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorHealth {
    pub connector_id: Uuid,
    pub status: ConnectorStatus,
    pub last_tested_at: Option<String>,
    pub last_test_result: Option<String>,
    pub last_success_at: Option<String>,
    pub checks: Vec<HealthCheck>,
}

/// A connector's health: status and recent scheduled checks (newest first).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/health", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "most checks returned, 1-1000 [100]")),
    responses((status = 200, body = ConnectorHealth), (status = 400, body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn connector_health(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Json<ConnectorHealth>, AppError> {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                AppError::bad_request(
                    Code::InvalidRequest,
                    "limit must be a number from 1 to 1000",
                )
            })?,
    };
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let history = state.store.health_history(c.id, limit).await?;
    Ok(Json(ConnectorHealth {
        connector_id: c.id,
        status: c.status,
        last_tested_at: c.last_tested_at,
        last_test_result: c.last_test_result,
        last_success_at: history.last_success_at,
        checks: history.checks,
    }))
}
