//! `GET …/connectors/{connector_id}/health`: a connector's status and its
//! recent scheduled checks, newest first, for dashboards.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::connectors::connector_for;
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiPath, ApiQuery, AppError};
use crate::model::ConnectorStatus;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/health",
        get(connector_health),
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub checked_at: String,
    /// ACTIVE, WARNING or ERROR.
    pub status: String,
    pub success: bool,
    pub latency_ms: Option<i64>,
    pub error_code: Option<String>,
    /// The connectivity test step that failed (dns, tcp, connect, …).
    pub failed_step: Option<String>,
    pub message: Option<String>,
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
                AppError::bad_request("INVALID_REQUEST", "limit must be a number from 1 to 1000")
            })?,
    };
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let pool = state
        .store
        .sql_pool()
        .ok_or_else(|| AppError::internal("the metadata store has no SQL pool"))?;
    let last_success: Option<String> =
        sqlx::query_scalar("SELECT last_success_at FROM connectors WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&pool)
            .await
            .map_err(AppError::internal)?
            .flatten();
    let rows = sqlx::query(
        "SELECT checked_at, status, success, latency_ms, error_code, failed_step, message \
         FROM health_checks WHERE connector_id = $1 ORDER BY checked_at DESC, id DESC LIMIT $2",
    )
    .bind(id.to_string())
    .bind(limit)
    .fetch_all(&pool)
    .await
    .map_err(AppError::internal)?;
    let checks = rows
        .iter()
        .map(|r| {
            Ok(HealthCheck {
                checked_at: r.try_get("checked_at")?,
                status: r.try_get("status")?,
                success: r.try_get::<i64, _>("success")? != 0,
                latency_ms: r.try_get("latency_ms")?,
                error_code: r.try_get("error_code")?,
                failed_step: r.try_get("failed_step")?,
                message: r.try_get("message")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(AppError::internal)?;
    Ok(Json(ConnectorHealth {
        connector_id: c.id,
        status: c.status,
        last_tested_at: c.last_tested_at,
        last_test_result: c.last_test_result,
        last_success_at: last_success,
        checks,
    }))
}
