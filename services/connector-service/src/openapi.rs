//! The OpenAPI document, generated from the handlers' annotations and
//! completed here: the shared error responses every route can answer, the
//! PATCH spelling of the tier route, and the operational routes. `cargo xtask
//! schemathesis` runs it against the service (CI stage `schemathesis`).

use axum::Json;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, ResponsesBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::{connectors, discovery, health, tenants};

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

/// The error responses shared by the routes: status, component name, and the
/// codes it carries (all in the `{code, message}` shape of `ErrorBody`).
const SHARED: &[(&str, &str, &str)] = &[
    ("400", "BadRequest", "MALFORMED_JSON, INVALID_REQUEST (query), INVALID_CONFIGURATION, DRIVER_UNAVAILABLE, UNSUPPORTED"),
    ("401", "Unauthorized", "UNAUTHORIZED: no, malformed, expired or otherwise refused bearer token"),
    ("403", "Forbidden", "FORBIDDEN (platform admins only), PLAN_LIMIT_EXCEEDED, PLAN_TYPE_NOT_ALLOWED, EGRESS_DENIED"),
    ("404", "NotFound", "NOT_FOUND: the tenant (or one the caller may not act in), the connector or the item; a malformed id"),
    ("409", "Conflict", "CONFLICT (duplicate slug or connector name), CONNECTOR_INACTIVE, CREDENTIALS_MISSING"),
    ("413", "PayloadTooLarge", "PAYLOAD_TOO_LARGE: the body is over MATIH_BODY_LIMIT_BYTES"),
    ("415", "UnsupportedMediaType", "UNSUPPORTED_MEDIA_TYPE: a body without Content-Type: application/json"),
    ("422", "UnprocessableEntity", "INVALID_REQUEST: well-formed JSON that does not fit the body (unknown field, wrong type); CREDENTIALS_TEST_FAILED"),
    ("429", "TooManyRequests", "CONCURRENCY_LIMIT_EXCEEDED: too many calls of the tenant in flight"),
    ("431", "HeadersTooLarge", "request headers too large"),
    ("500", "Internal", "INTERNAL: the body says nothing more; the log has the cause"),
    ("502", "BadGateway", "a driver failure outside the connectivity test's report"),
    ("503", "Unavailable", "METADATA_STORE_UNAVAILABLE, SECRET_STORE_UNAVAILABLE, CREATE_INTERRUPTED"),
    ("504", "GatewayTimeout", "REQUEST_TIMEOUT: the request took longer than the server allows"),
];

/// Statuses every `/api/v1` operation can answer.
const EVERY: &[&str] = &["401", "404", "429", "431", "500", "503", "504"];
/// And every operation that reads a request body.
const WITH_BODY: &[&str] = &["400", "413", "415", "422"];

/// Statuses specific to one operation, beyond [`EVERY`] and [`WITH_BODY`].
fn specific(method: &str, path: &str) -> &'static [&'static str] {
    let tail = path.trim_start_matches("/api/v1/tenants");
    match (method, tail) {
        ("post", "") | ("get", "") => &["403", "409"],
        ("get", "/{tenant_id}") => &[],
        (_, "/{tenant_id}/tier") => &["403"],
        ("post", "/{tenant_id}/connectors") => &["403", "409", "502"],
        ("put", "/{tenant_id}/connectors/{connector_id}") => &["403", "409", "502"],
        ("delete", "/{tenant_id}/connectors/{connector_id}") => &[],
        ("post", "/{tenant_id}/connectors/{connector_id}/test") => &["403", "409", "502"],
        ("put", "/{tenant_id}/connectors/{connector_id}/credentials") => &["403", "409", "502"],
        ("post", "/{tenant_id}/connectors/{connector_id}/discover") => &["409"],
        // Query parameters with bounds.
        ("get", "/{tenant_id}/connectors/{connector_id}/schemas")
        | ("get", "/{tenant_id}/connectors/{connector_id}/health") => &["400"],
        _ => &[],
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn add_missing(op: &mut Operation, statuses: &[&str]) {
    for status in statuses {
        if op.responses.responses.contains_key(*status) {
            continue;
        }
        let (_, name, _) = SHARED
            .iter()
            .find(|(s, _, _)| s == status)
            .expect("every status used has a shared response");
        op.responses.responses.insert(
            (*status).to_owned(),
            RefOr::Ref(Ref::from_response_name(*name)),
        );
    }
}

struct Complete;

impl Modify for Complete {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, codes) in SHARED {
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(error_response(codes)));
        }
        // PUT and PATCH of the tier are one handler; utoipa gives it one method.
        let tier = "/api/v1/tenants/{tenant_id}/tier";
        if let Some(item) = openapi.paths.paths.get_mut(tier) {
            if let Some(put) = item.put.clone() {
                let mut patch = put;
                patch.operation_id = Some("set_tier_patch".into());
                item.patch = Some(patch);
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                let Some(op) = op else { continue };
                add_missing(op, EVERY);
                if op.request_body.is_some() {
                    add_missing(op, WITH_BODY);
                }
                add_missing(op, specific(method, path));
            }
        }
        for (path, description, ok, content_type) in [
            (
                "/healthz",
                "Liveness: the process serves HTTP.",
                "200",
                "application/json",
            ),
            (
                "/readyz",
                "Readiness: the metadata store answers (503 when it does not).",
                "200",
                "application/json",
            ),
            (
                "/metrics",
                "Prometheus text exposition.",
                "200",
                "text/plain",
            ),
            (
                "/api/v1/openapi.json",
                "This document.",
                "200",
                "application/json",
            ),
        ] {
            let mut responses = ResponsesBuilder::new().response(
                ok,
                ResponseBuilder::new()
                    .description(description)
                    .content(content_type, ContentBuilder::new().build()),
            );
            if path == "/readyz" {
                responses = responses.response("503", error_response("NOT_READY"));
            }
            let op = OperationBuilder::new()
                .tag("operations")
                .operation_id(Some(path.trim_start_matches('/').replace(['/', '.'], "_")))
                .description(Some(description))
                .responses(responses.build())
                .build();
            openapi
                .paths
                .paths
                .insert(path.to_owned(), PathItem::new(HttpMethod::Get, op));
        }
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "MATIH connector service", description = "Connectors of a MATIH tenant: create, test, discover."),
    paths(
        tenants::create_tenant, tenants::list_tenants, tenants::get_tenant, tenants::set_tier,
        connectors::list_connectors, connectors::get_connector, connectors::create_connector,
        connectors::update_connector, connectors::delete_connector, connectors::test_connector,
        connectors::update_credentials, health::connector_health,
        discovery::start_discovery, discovery::latest_discovery, discovery::discovery_job,
        discovery::discovery_schedule, discovery::set_discovery_schedule,
        discovery::schemas, discovery::diff,
        discovery::table_detail, crate::api::types::list_types,
    ),
    components(schemas(crate::api::ErrorBody)),
    modifiers(&Bearer, &Complete),
    tags((name = "tenants"), (name = "connectors"), (name = "discovery"), (name = "operations"))
)]
pub struct ApiDoc;

pub async fn handler() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
