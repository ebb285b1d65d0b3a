//! Tenant management for platform admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiPath, AppError, Code, LaterJson};
use crate::model::{ts, Tenant, Tier};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/api/v1/tenants/{tenant_id}", get(get_tenant))
        .route(
            "/api/v1/tenants/{tenant_id}/tier",
            put(set_tier).patch(set_tier),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-200 characters, not only white space, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Lower-case DNS label (`a-z`, `0-9`, `-`, starting with a letter, not
    /// ending with `-`) that, with the namespace prefix (`matih-`, 6
    /// characters), is at most 63 characters; names the tenant's secret
    /// namespace `matih-<slug>`.
    #[schema(
        min_length = 1,
        max_length = 57,
        pattern = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
    )]
    pub slug: String,
    pub tier: Tier,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTier {
    pub tier: Tier,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
}

/// Whether `slug` is a DNS label that, with the namespace prefix, still is one.
pub fn valid_slug(slug: &str, prefix: &str) -> bool {
    let total = prefix.len() + slug.len();
    !slug.is_empty()
        && total <= 63
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && !slug.ends_with('-')
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Create a tenant (platform admins).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 400, body = crate::api::ErrorBody),
        (status = 403, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Auth(claims): Auth,
    body: LaterJson,
) -> Result<(StatusCode, Json<Tenant>), AppError> {
    claims.require_platform_admin()?;
    let body: CreateTenant = body.parse().await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            Code::InvalidRequest,
            "name must be 1-200 characters without control characters",
        )
        .with_details(serde_json::json!({"field": "name"})));
    }
    if !valid_slug(&body.slug, &state.settings.namespace_prefix) {
        return Err(AppError::bad_request(
            Code::InvalidRequest,
            "slug must be a lower-case DNS label: a-z, 0-9 and '-', starting with a letter, not ending with '-', \
             short enough for the namespace name to stay within 63 characters",
        )
        .with_details(serde_json::json!({"field": "slug"})));
    }
    let now = ts(Utc::now());
    let tenant = Tenant {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        slug: body.slug,
        tier: body.tier,
        connector_count: 0,
        created_at: now.clone(),
        updated_at: now,
    };
    state.store.create_tenant(&tenant).await?;
    tracing::info!(tenant = %tenant.id, slug = %tenant.slug, tier = tenant.tier.as_str(), "tenant created");
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// List tenants (platform admins).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList), (status = 403, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    Auth(claims): Auth,
) -> Result<Json<TenantList>, AppError> {
    claims.require_platform_admin()?;
    Ok(Json(TenantList {
        tenants: state.store.list_tenants().await?,
    }))
}

/// Get a tenant (its platform admins, or its own tenant admin).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath(tenant_id): ApiPath<Uuid>,
) -> Result<Json<Tenant>, AppError> {
    claims.require_tenant(tenant_id)?;
    state
        .store
        .get_tenant(tenant_id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found("tenant"))
}

/// Change a tenant's plan (platform admins). PUT and PATCH are the same.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/tier", tag = "tenants", request_body = SetTier,
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Tenant), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_tier(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath(tenant_id): ApiPath<Uuid>,
    body: LaterJson,
) -> Result<Json<Tenant>, AppError> {
    if claims.require_tenant(tenant_id).is_err() {
        return Err(AppError::not_found("tenant"));
    }
    claims.require_platform_admin()?;
    let body: SetTier = body.parse().await?;
    let t = state
        .store
        .set_tier(tenant_id, body.tier, &ts(Utc::now()))
        .await?;
    t.map(Json).ok_or_else(|| AppError::not_found("tenant"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        for ok in ["acme", "a", "acme-2", "x1"] {
            assert!(super::valid_slug(ok, "matih-"), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-a",
            "a-",
            "1abc",
            "a_b",
            "a.b",
            "ä",
            &"a".repeat(58),
        ] {
            assert!(!super::valid_slug(bad, "matih-"), "{bad}");
        }
    }
}
