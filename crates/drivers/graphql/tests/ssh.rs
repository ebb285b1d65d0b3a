//! The GraphQL driver through a real OpenSSH bastion (`cargo xtask
//! test-drivers --only graphql` starts the `ssh` fixture). The async-graphql
//! server, written in the test, listens on 127.0.0.2, which the connector's
//! egress policy denies: only the tunnel reaches it. The driver knows nothing
//! of the tunnel; core's HTTP client carries it.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, SimpleObject, ID};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use matih_connector_core::{ConnectionConfig, Credentials, Timeouts};
use matih_connector_testkit::conformance::Case;
use matih_connector_testkit::{fixture, tunnel};
use matih_driver_graphql::GraphqlDriver;
use serde_json::json;

#[derive(SimpleObject)]
struct Customer {
    id: ID,
    name: String,
    email: Option<String>,
    orders: Vec<Order>,
}

#[derive(SimpleObject)]
struct Order {
    id: ID,
    total: f64,
    gift: Option<bool>,
}

struct Query;

#[Object]
impl Query {
    async fn customers(&self) -> Vec<Customer> {
        Vec::new()
    }
}

type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(
    State(schema): State<AppSchema>,
    Json(req): Json<async_graphql::Request>,
) -> impl IntoResponse {
    (
        [(header::SERVER, "tunnel-graphql/3")],
        Json(schema.execute(req).await),
    )
}

fn app() -> Router {
    Router::new()
        .route("/graphql", post(graphql))
        .with_state(Schema::new(Query, EmptyMutation, EmptySubscription))
}

fn serve_fake() {
    matih_connector_testkit::fake("async-graphql server written in the test", "ssh");
}

/// The endpoint at `host:port` (plain HTTP).
fn case(host: &str, port: u16) -> Case {
    Case::new(
        ConnectionConfig {
            host: Some(host.into()),
            port: Some(port),
            metadata: serde_json::from_value(json!({"scheme": "http", "name": "shop graph"}))
                .unwrap(),
            timeouts: Timeouts {
                connect_ms: 5000,
                query_ms: 5000,
            },
            ..Default::default()
        },
        Credentials::new(),
    )
}

fn driver() -> GraphqlDriver {
    matih_connector_core::tls::install_default_provider();
    GraphqlDriver::new()
}

#[tokio::test]
async fn test_succeeds_only_through_the_tunnel() {
    let Some(ssh) = fixture("SSH", "test_succeeds_only_through_the_tunnel") else {
        return;
    };
    serve_fake();
    let r = tunnel::assert_api_only_through_the_tunnel(&driver(), &ssh, app(), case).await;
    assert_eq!(r.server_version.as_deref(), Some("tunnel-graphql/3"));
}

#[tokio::test]
async fn discovery_through_the_tunnel_equals_discovery_direct() {
    let test = "discovery_through_the_tunnel_equals_discovery_direct";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    let catalog = tunnel::assert_api_catalog_through_the_tunnel(&driver(), &ssh, app(), case).await;
    let tables: Vec<&str> = catalog.schemas[0]
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(tables, ["Customer", "Order"]);
}

#[tokio::test]
async fn targets_the_bastion_cannot_reach_are_refused_at_connect() {
    let test = "targets_the_bastion_cannot_reach_are_refused_at_connect";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    tunnel::assert_api_refusals_through_the_tunnel(&driver(), &ssh, app(), case).await;
}

#[tokio::test]
async fn https_through_the_tunnel_checks_the_targets_name() {
    let test = "https_through_the_tunnel_checks_the_targets_name";
    let Some(ssh) = fixture("SSH", test) else {
        return;
    };
    serve_fake();
    let base = case("unset", 0).with_cfg(|c| {
        c.metadata.insert("scheme".into(), json!("https"));
    });
    tunnel::assert_https_checks_the_target(&driver(), &base, &ssh, app).await;
}
