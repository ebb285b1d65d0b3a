//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{connectors, discovery, tenants};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "MATIH connector service", description = "Connectors of a MATIH tenant: create, test, discover."),
    paths(
        tenants::create_tenant, tenants::list_tenants, tenants::get_tenant, tenants::set_tier,
        connectors::list_connectors, connectors::get_connector, connectors::create_connector,
        connectors::update_connector, connectors::delete_connector, connectors::test_connector,
        connectors::update_credentials, crate::health::api::connector_health,
        discovery::start_discovery, discovery::latest_discovery, discovery::schemas, discovery::diff,
        discovery::table_detail,
    ),
    modifiers(&Bearer),
    tags((name = "tenants"), (name = "connectors"), (name = "discovery"))
)]
pub struct ApiDoc;

pub async fn handler() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
