//! The connector types this service can serve: every compiled driver and the
//! operator's custom types, with the plans that may use each.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use matih_connector_core::{Capabilities, Category, ConnectorType};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::AppError;
use crate::model::Tier;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/connector-types", get(list_types))
}

/// One connector type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeInfo {
    /// The wire name (`POSTGRESQL`, or a custom type's name).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub connector_type: ConnectorType,
    pub display_name: String,
    #[schema(value_type = String)]
    pub category: Category,
    pub default_port: Option<u16>,
    #[schema(value_type = Object)]
    pub capabilities: Capabilities,
    /// The plans whose tenants may create connectors of this type.
    pub plans: Vec<Tier>,
    /// For a custom type, the protocol its executable speaks (`airbyte`,
    /// `singer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeList {
    pub types: Vec<TypeInfo>,
}

/// List the connector types (any signed-in caller).
#[utoipa::path(get, path = "/api/v1/connector-types", tag = "connectors",
    responses((status = 200, body = TypeList), (status = 401, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_types(
    State(state): State<AppState>,
    Auth(_claims): Auth,
) -> Result<Json<TypeList>, AppError> {
    let types = state
        .registry
        .descriptors()
        .map(|d| TypeInfo {
            connector_type: d.connector_type.clone(),
            display_name: d.display_name.to_owned(),
            category: d.category(),
            default_port: d.default_port,
            capabilities: d.capabilities,
            plans: [Tier::Free, Tier::Professional, Tier::Enterprise]
                .into_iter()
                .filter(|t| t.allows(&d.connector_type))
                .collect(),
            protocol: state
                .settings
                .custom_types
                .iter()
                .find(|c| c.name == d.connector_type.as_str())
                .map(|c| c.protocol.to_owned()),
        })
        .collect();
    Ok(Json(TypeList { types }))
}
