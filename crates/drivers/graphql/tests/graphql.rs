//! The GraphQL driver against a real async-graphql server (serving real
//! introspection) behind axum on 127.0.0.1:0: authentication modes, TLS,
//! failures and hostile responses.

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::{
    EmptySubscription, Enum, InputValueResult, Object, Scalar, ScalarType, Schema, SimpleObject,
    Value as GqlValue, ID,
};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use matih_connector_core::{
    open, run_test, ConnectionConfig, Credentials, Depth, DiscoveryRequest, EgressPolicy,
    ErrorCode, SslMode, Step, TableKind, TestOptions, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_driver_graphql::GraphqlDriver;
use serde_json::{json, Value};

// ---------------------------------------------------------------- schema

struct DateTime(String);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match value {
            GqlValue::String(s) => Ok(DateTime(s)),
            other => Err(async_graphql::InputValueError::expected_type(other)),
        }
    }
    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.clone())
    }
}

struct Uuid(String);

#[Scalar(name = "UUID")]
impl ScalarType for Uuid {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match value {
            GqlValue::String(s) => Ok(Uuid(s)),
            other => Err(async_graphql::InputValueError::expected_type(other)),
        }
    }
    fn to_value(&self) -> GqlValue {
        GqlValue::String(self.0.clone())
    }
}

struct Money(f64);

/// An amount in minor units; no standard mapping.
#[Scalar(name = "Money")]
impl ScalarType for Money {
    fn parse(value: GqlValue) -> InputValueResult<Self> {
        match value {
            GqlValue::Number(n) => Ok(Money(n.as_f64().unwrap_or(0.0))),
            other => Err(async_graphql::InputValueError::expected_type(other)),
        }
    }
    fn to_value(&self) -> GqlValue {
        GqlValue::from(self.0)
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
enum Status {
    Active,
    Suspended,
}

/// A postal address.
#[derive(SimpleObject)]
struct Address {
    city: String,
    zip: Option<String>,
}

/// An order placed by a customer.
#[derive(SimpleObject)]
struct Order {
    id: ID,
    total: Money,
    placed_at: DateTime,
}

/// A registered customer.
#[derive(SimpleObject)]
struct Customer {
    /// Unique identifier.
    id: ID,
    name: String,
    email: Option<String>,
    age: Option<i32>,
    balance: f64,
    active: bool,
    tags: Vec<String>,
    nicknames: Option<Vec<Option<String>>>,
    status: Status,
    created_at: DateTime,
    uid: Uuid,
    profile: async_graphql::Json<Value>,
    address: Option<Address>,
    orders: Vec<Order>,
    #[graphql(deprecation = "use name")]
    legacy_name: Option<String>,
    #[graphql(name = "select")]
    select_word: String,
}

struct Query;

#[Object]
impl Query {
    async fn customers(&self) -> Vec<Customer> {
        Vec::new()
    }
    async fn order(&self, id: ID) -> Option<Order> {
        let _ = id;
        None
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn ping(&self) -> bool {
        true
    }
}

type AppSchema = Schema<Query, Mutation, EmptySubscription>;

// ---------------------------------------------------------------- server

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Open,
    /// Bearer token checked; 401 over HTTP when wrong.
    Bearer,
    /// Basic credentials checked.
    Basic,
    /// API key in X-Gql-Key checked.
    ApiKey,
    /// OAuth2 token issued by /oauth/token checked.
    OAuth,
    /// Apollo style: HTTP 200 with an UNAUTHENTICATED error.
    GraphqlErrors,
    /// Introspection switched off in the schema.
    NoIntrospection,
    /// Introspection answers after 5 s.
    SlowIntrospection,
    /// Every request throttled.
    Throttled,
}

const TOKEN: &str = "gql-token-6e21";
const READER_TOKEN: &str = "gql-reader-no-introspection";
const BASIC: &str = "Basic YWxpY2U6czNjcmV0IHBhc3M="; // alice / "s3cret pass"
const CLIENT_BASIC: &str = "Basic Y2lkOmNzZWNyZXQ="; // cid / csecret
const ISSUED: &str = "issued-gql-token-91";
const API_KEY: &str = "gql-key-77";

#[derive(Clone)]
struct AppState {
    mode: Mode,
    schema: AppSchema,
}

fn gql_error(message: &str, code: &str) -> Value {
    json!({"data": null, "errors": [{"message": message, "extensions": {"code": code}}]})
}

async fn graphql(
    State(st): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<async_graphql::Request>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let key = headers
        .get("x-gql-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let introspection = req.query.contains("__schema");
    let reader = auth == format!("Bearer {READER_TOKEN}");
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"errors": [{"message": "invalid token"}]})),
        )
            .into_response()
    };
    match st.mode {
        Mode::Bearer if reader && introspection => {
            return Json(gql_error(
                "introspection requires the schema:read scope",
                "FORBIDDEN",
            ))
            .into_response();
        }
        Mode::Bearer if !reader && auth != format!("Bearer {TOKEN}") => return unauthorized(),
        Mode::Basic if auth != BASIC => return unauthorized(),
        Mode::ApiKey if key != API_KEY => return unauthorized(),
        Mode::OAuth if auth != format!("Bearer {ISSUED}") => return unauthorized(),
        Mode::GraphqlErrors if auth != format!("Bearer {TOKEN}") => {
            return Json(gql_error("You must be logged in", "UNAUTHENTICATED")).into_response()
        }
        Mode::SlowIntrospection if introspection => {
            tokio::time::sleep(Duration::from_secs(5)).await
        }
        Mode::Throttled => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "12")],
                Json(gql_error("Throttled", "THROTTLED")),
            )
                .into_response()
        }
        _ => {}
    }
    let resp = st.schema.execute(req).await;
    (
        [
            (header::SERVER, "test-graphql/7"),
            (header::HeaderName::from_static("x-api-version"), "2024-10"),
        ],
        Json(resp),
    )
        .into_response()
}

async fn token(headers: HeaderMap, body: String) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form_creds = body.contains("client_id=cid") && body.contains("client_secret=csecret");
    if !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if auth != CLIENT_BASIC && !form_creds {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    Json(json!({"access_token": ISSUED, "token_type": "Bearer", "expires_in": 300})).into_response()
}

fn app(mode: Mode) -> Router {
    let builder = Schema::build(Query, Mutation, EmptySubscription);
    let schema = if mode == Mode::NoIntrospection {
        builder.disable_introspection().finish()
    } else {
        builder.finish()
    };
    Router::new()
        .route("/graphql", post(graphql))
        .route("/oauth/token", post(token))
        .route(
            "/html",
            post(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>login</html>") }),
        )
        .with_state(AppState { mode, schema })
}

async fn serve(mode: Mode) -> SocketAddr {
    matih_connector_testkit::fake("async-graphql server written in the test", "serve");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app(mode)).await.unwrap() });
    addr
}

/// The same app behind TLS (testkit's test CA); the address and the CA's PEM.
async fn serve_tls() -> (SocketAddr, String) {
    matih_connector_testkit::fake("async-graphql server written in the test", "serve_tls");
    matih_connector_testkit::tls::serve_tls(app(Mode::Open)).await
}

// ---------------------------------------------------------------- helpers

fn case(addr: SocketAddr, meta: Value) -> Case {
    let mut m = json!({"scheme": "http", "name": "shop graph"});
    for (k, v) in meta.as_object().unwrap() {
        m[k] = v.clone();
    }
    Case::new(
        ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(addr.port()),
            metadata: serde_json::from_value(m).unwrap(),
            timeouts: Timeouts {
                connect_ms: 3000,
                query_ms: 3000,
            },
            ..Default::default()
        },
        Credentials::new(),
    )
}

fn driver() -> GraphqlDriver {
    GraphqlDriver::new()
}

async fn open_err(case: &Case) -> matih_connector_core::ConnectorError {
    open(
        &driver(),
        &case.cfg,
        &case.creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .map(|_| ())
    .unwrap_err()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn test_passes_with_server_version_from_headers() {
    let addr = serve(Mode::Open).await;
    let r = conformance::assert_test_succeeds(&driver(), &case(addr, json!({}))).await;
    assert_eq!(r.server_version.as_deref(), Some("test-graphql/7"));
    let c = case(addr, json!({"versionHeader": "X-Api-Version"}));
    let r = conformance::assert_test_succeeds(&driver(), &c).await;
    assert_eq!(r.server_version.as_deref(), Some("2024-10"));
}

/// Every column of `t`, in order: name, native type, normalized type, nullable.
fn assert_columns(t: &matih_connector_core::Table, expect: &[(&str, &str, &str, bool)]) {
    assert_eq!(
        t.columns.len(),
        expect.len(),
        "{}: {:#?}",
        t.name,
        t.columns
    );
    for (i, (name, native, ty, nullable)) in expect.iter().enumerate() {
        let c = &t.columns[i];
        assert_eq!(c.name, *name, "{}", t.name);
        assert_eq!(c.ordinal as usize, i + 1);
        assert_eq!(c.native_type, *native, "{}.{name}", t.name);
        assert_eq!(c.data_type.to_string(), *ty, "{}.{name}", t.name);
        assert_eq!(c.nullable, *nullable, "{}.{name}", t.name);
    }
}

#[tokio::test]
async fn discovers_object_types_field_by_field() {
    let addr = serve(Mode::Open).await;
    let catalog = conformance::discover(
        &driver(),
        &case(addr, json!({})),
        &DiscoveryRequest::default(),
    )
    .await;
    let s = catalog
        .schema("shop graph")
        .expect("schema named by metadata.name");
    let names: Vec<_> = s.tables.iter().map(|t| t.name.as_str()).collect();
    // Roots (Query, Mutation) and introspection types (__Type…) are not tables.
    assert_eq!(names, ["Address", "Customer", "Order"]);
    assert!(s.tables.iter().all(|t| t.kind == TableKind::GraphqlType));

    let customer = s.table("Customer").unwrap();
    assert_eq!(customer.comment.as_deref(), Some("A registered customer."));
    let expect: &[(&str, &str, &str, bool)] = &[
        ("id", "ID!", "string", false),
        ("name", "String!", "string", false),
        ("email", "String", "string", true),
        ("age", "Int", "int32", true),
        ("balance", "Float!", "float64", false),
        ("active", "Boolean!", "boolean", false),
        ("tags", "[String!]!", "array<string>", false),
        ("nicknames", "[String]", "array<string>", true),
        ("status", "Status!", "string", false),
        ("createdAt", "DateTime!", "timestamp_tz", false),
        ("uid", "UUID!", "uuid", false),
        ("profile", "JSON!", "json", false),
        ("address", "Address", "struct", true),
        ("orders", "[Order!]!", "array<struct>", false),
        ("legacyName", "String", "string", true),
        ("select", "String!", "string", false),
    ];
    assert_columns(customer, expect);
    assert_eq!(
        customer.column("id").unwrap().comment.as_deref(),
        Some("Unique identifier.")
    );
    assert_eq!(
        customer.column("legacyName").unwrap().comment.as_deref(),
        Some("deprecated: use name")
    );

    // Every seeded type, column by column, not only Customer.
    let order = s.table("Order").unwrap();
    assert_eq!(
        order.comment.as_deref(),
        Some("An order placed by a customer.")
    );
    assert_columns(
        order,
        &[
            ("id", "ID!", "string", false),
            // A custom scalar the driver cannot know: unknown, named as served.
            ("total", "Money!", "unknown", false),
            ("placedAt", "DateTime!", "timestamp_tz", false),
        ],
    );
    let address = s.table("Address").unwrap();
    assert_eq!(address.comment.as_deref(), Some("A postal address."));
    assert_columns(
        address,
        &[
            ("city", "String!", "string", false),
            ("zip", "String", "string", true),
        ],
    );
    assert!(s
        .tables
        .iter()
        .all(|t| t.primary_key.is_empty() && t.estimated_rows.is_none()));

    let with_roots = case(addr, json!({"includeRootTypes": true}));
    let c = conformance::discover(&driver(), &with_roots, &DiscoveryRequest::default()).await;
    let s = &c.schemas[0];
    let query = s.table("Query").unwrap();
    assert_eq!(query.properties["rootOperation"], json!("query"));
    assert_eq!(
        query.column("customers").unwrap().native_type,
        "[Customer!]!"
    );
    assert_eq!(
        s.table("Mutation").unwrap().properties["rootOperation"],
        json!("mutation")
    );
}

#[tokio::test]
async fn filters_and_depth() {
    let addr = serve(Mode::Open).await;
    conformance::assert_discovery_filters(
        &driver(),
        &case(addr, json!({})),
        "shop graph",
        "Customer",
    )
    .await;
    let c = conformance::discover(
        &driver(),
        &case(addr, json!({})),
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    assert_eq!(c.schemas.len(), 1);
    assert!(c.schemas[0].tables.is_empty());
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let addr = serve(Mode::Bearer).await;
    let good = case(addr, json!({})).with_cred("token", TOKEN);
    conformance::assert_test_succeeds(&driver(), &good).await;

    let refused = good.with_cfg(|c| c.port = Some(conformance::closed_port()));
    conformance::assert_test_fails(&driver(), &refused, Step::Tcp, ErrorCode::ConnectionRefused)
        .await;
    // Without the runner's TCP step the driver's own mapping answers.
    assert_eq!(
        open_err(&refused).await.code(),
        ErrorCode::ConnectionRefused
    );
    // TLS spoken to a plain-HTTP server fails the handshake.
    let tls_to_plain = good.with_cfg(|c| {
        c.metadata.remove("scheme");
        c.ssl_mode = Some(SslMode::Require);
    });
    conformance::assert_test_fails(
        &driver(),
        &tls_to_plain,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let dns = good.with_cfg(|c| c.host = Some("graph.matih.invalid".into()));
    conformance::assert_test_fails(&driver(), &dns, Step::Dns, ErrorCode::DnsResolutionFailed)
        .await;
    let (port, listener) = conformance::silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    conformance::assert_test_fails(&driver(), &silent, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();

    let wrong = good.with_cred("token", "wrong-token");
    conformance::assert_test_fails(
        &driver(),
        &wrong,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    let reader = good.with_cred("token", READER_TOKEN);
    let r = conformance::assert_test_fails(
        &driver(),
        &reader,
        Step::AccessProbe,
        ErrorCode::PermissionDenied,
    )
    .await;
    assert!(r.message.contains("schema:read"), "{}", r.message);
    let no_path = good.with_cfg(|c| {
        c.metadata.insert("path".into(), json!("/v2/graphql"));
    });
    conformance::assert_test_fails(
        &driver(),
        &no_path,
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    let html = good.with_cfg(|c| {
        c.metadata.insert("path".into(), json!("/html"));
    });
    conformance::assert_test_fails(&driver(), &html, Step::Connect, ErrorCode::ProtocolError).await;

    let apollo =
        case(serve(Mode::GraphqlErrors).await, json!({})).with_cred("token", "stale-token");
    let r = conformance::assert_test_fails(
        &driver(),
        &apollo,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("logged in"), "{}", r.message);
    let e = open_err(&apollo).await;
    assert_eq!(e.context_value("graphqlCode"), Some("UNAUTHENTICATED"));

    let closed = case(serve(Mode::NoIntrospection).await, json!({}));
    conformance::assert_test_fails(
        &driver(),
        &closed,
        Step::AccessProbe,
        ErrorCode::Unsupported,
    )
    .await;

    let slow = case(serve(Mode::SlowIntrospection).await, json!({})).with_cfg(|c| {
        c.timeouts = Timeouts {
            connect_ms: 3000,
            query_ms: 600,
        }
    });
    let started = std::time::Instant::now();
    conformance::assert_test_fails(&driver(), &slow, Step::AccessProbe, ErrorCode::Timeout).await;
    assert!(started.elapsed() < Duration::from_secs(4));

    let throttled = case(serve(Mode::Throttled).await, json!({}));
    conformance::assert_test_fails(&driver(), &throttled, Step::Connect, ErrorCode::RateLimited)
        .await;
    let e = open_err(&throttled).await;
    assert_eq!(e.context_value("retryAfter"), Some("12"));
    assert_eq!(e.context_value("graphqlCode"), Some("THROTTLED"));
}

#[tokio::test]
async fn every_auth_mode_against_a_server_that_checks_it() {
    let basic = case(serve(Mode::Basic).await, json!({}))
        .with_cred("username", "alice")
        .with_cred("password", "s3cret pass");
    conformance::assert_test_succeeds(&driver(), &basic).await;
    conformance::assert_test_fails(
        &driver(),
        &basic.with_cred("password", "nope"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let key = case(
        serve(Mode::ApiKey).await,
        json!({"apiKeyHeader": "X-Gql-Key"}),
    )
    .with_cred("apiKey", API_KEY);
    conformance::assert_test_succeeds(&driver(), &key).await;
    conformance::assert_test_fails(
        &driver(),
        &key.with_cred("apiKey", "other-key"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let oauth_addr = serve(Mode::OAuth).await;
    let token_url = format!("http://127.0.0.1:{}/oauth/token", oauth_addr.port());
    let oauth = case(oauth_addr, json!({"tokenUrl": token_url}))
        .with_cred("clientId", "cid")
        .with_cred("clientSecret", "csecret");
    conformance::assert_test_succeeds(&driver(), &oauth).await;
    let post = oauth.with_cfg(|c| {
        c.metadata
            .insert("tokenAuthMethod".into(), json!("client_secret_post"));
    });
    conformance::assert_test_succeeds(&driver(), &post).await;
    let c = conformance::discover(&driver(), &oauth, &DiscoveryRequest::default()).await;
    assert_eq!(c.table_count(), 3);
    conformance::assert_test_fails(
        &driver(),
        &oauth.with_cred("clientSecret", "not-it"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
}

#[tokio::test]
async fn tls_verification() {
    let (addr, ca) = serve_tls().await;
    let base = case(addr, json!({})).with_cfg(|c| {
        c.metadata.remove("scheme");
        c.ssl_mode = Some(SslMode::VerifyFull);
    });
    conformance::assert_test_fails(
        &driver(),
        &base,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let trusted = base.with_cfg(|c| c.ssl_ca_pem = Some(ca.clone()));
    conformance::assert_test_succeeds(&driver(), &trusted).await;
    let c = conformance::discover(&driver(), &trusted, &DiscoveryRequest::default()).await;
    assert_eq!(c.table_count(), 3);
    let implicit = base.with_cfg(|c| c.ssl_mode = None);
    conformance::assert_test_fails(
        &driver(),
        &implicit,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let verify_ca = base.with_cfg(|c| {
        c.ssl_mode = Some(SslMode::VerifyCa);
        c.ssl_ca_pem = Some(ca.clone());
        c.host = Some("localhost".into());
    });
    conformance::assert_test_succeeds(&driver(), &verify_ca).await;
}

#[tokio::test]
async fn responses_are_bounded() {
    let addr = serve(Mode::Open).await;
    // The connect and probe answers fit in 1 KiB; the introspection does not.
    let small = case(addr, json!({"maxResponseBytes": 1024}));
    conformance::assert_test_succeeds(&driver(), &small).await;
    let mut conn = open(
        &driver(),
        &small.cfg,
        &small.creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .unwrap();
    let e = conn
        .discover(&DiscoveryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError);
    assert_eq!(e.context_value("limitBytes"), Some("1024"));
}

#[tokio::test]
async fn egress_policy_applies_to_the_token_url() {
    let addr = serve(Mode::OAuth).await;
    let c = case(
        addr,
        json!({"tokenUrl": "http://169.254.169.254/oauth/token"}),
    )
    .with_cred("clientId", "cid")
    .with_cred("clientSecret", "csecret");
    let r = run_test(&driver(), &c.cfg, &c.creds, &TestOptions::default()).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::EgressDenied)),
        "{r:?}"
    );
}

/// The egress proof of the GraphQL family: a redirect of the endpoint, an
/// IP-literal token URL and the endpoint's host itself in a denied network
/// are refused with EGRESS_DENIED before any packet reaches the denied
/// address, where a listener records every connection.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let to = denied.url("/graphql");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = l.local_addr().unwrap();
    // 307 keeps the POST and its body: the hop a GraphQL client would follow.
    let app = Router::new().route(
        "/graphql",
        post(move || async move { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]) }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    assert_refused(&driver(), &case(moved, json!({})), Step::Connect, &denied).await;

    let addr = serve(Mode::OAuth).await;
    let token = case(addr, json!({"tokenUrl": denied.url("/oauth/token")}))
        .with_cred("clientId", "cid")
        .with_cred("clientSecret", "csecret");
    assert_refused(&driver(), &token, Step::Connect, &denied).await;

    let host =
        case(denied.addr, json!({})).with_cfg(|c| c.host = Some(denied.addr.ip().to_string()));
    assert_refused(&driver(), &host, Step::Dns, &denied).await;

    // The token URL on the allowed server passes under the same policy.
    let allowed = case(
        addr,
        json!({"tokenUrl": format!("http://{addr}/oauth/token")}),
    )
    .with_cred("clientId", "cid")
    .with_cred("clientSecret", "csecret");
    let r = run_test(
        &driver(),
        &allowed.cfg,
        &allowed.creds,
        &TestOptions {
            egress: denied.policy(),
            ..Default::default()
        },
    )
    .await;
    assert!(r.success, "{r:?}");
    denied.assert_never_reached().await;
}
