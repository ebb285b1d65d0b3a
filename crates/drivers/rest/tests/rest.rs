//! The REST driver against real HTTP servers started inside the tests (axum on
//! 127.0.0.1:0): authentication modes, TLS, failures and hostile payloads.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use matih_connector_core::{
    open, run_test, ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, EgressPolicy,
    ErrorCode, NameFilter, SslMode, Step, TableKind, TestOptions, Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_driver_rest::RestDriver;
use serde_json::{json, Value};

// ---------------------------------------------------------------- server

#[derive(Clone)]
enum AuthCheck {
    None,
    Basic,
    Bearer,
    ApiKey,
    OAuth,
}

const BASIC: &str = "Basic YWxpY2U6czNjcmV0IHBhc3M="; // alice / "s3cret pass"
const CLIENT_BASIC: &str = "Basic Y2lkOmNzZWNyZXQ="; // cid / csecret
const TOKEN: &str = "tok-3f9a1c77";
const ISSUED: &str = "issued-access-token-81d2";
const API_KEY: &str = "key-0a1b2c3d";

fn authorized(auth: &AuthCheck, headers: &HeaderMap) -> bool {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    match auth {
        AuthCheck::None => true,
        AuthCheck::Basic => h("authorization") == BASIC,
        AuthCheck::Bearer => h("authorization") == format!("Bearer {TOKEN}"),
        AuthCheck::ApiKey => h("x-secret-key") == API_KEY,
        AuthCheck::OAuth => h("authorization") == format!("Bearer {ISSUED}"),
    }
}

async fn check_auth(State(auth): State<AuthCheck>, req: Request, next: Next) -> Response {
    let ok = authorized(&auth, req.headers());
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"api\"")],
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    next.run(req).await
}

async fn server_header(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("test-api/1.0"));
    resp
}

fn users() -> Value {
    json!([
        {"id": 1, "name": "Ada", "email": "ada@example.com", "score": 9, "active": true,
         "created_at": "2024-05-01T10:00:00Z", "birthday": "1815-12-10",
         "uid": "6f1c2a8e-3b7d-4e2f-9a10-1c2d3e4f5a6b", "tags": ["math", "poetry"],
         "address": {"city": "London"}, "naïve field": 1, "select": "reserved", "with \"quotes\"": true, "mixed": 1},
        {"id": 2, "name": "Grace", "score": 7.5, "active": false,
         "created_at": "2024-05-02T11:30:00+02:00", "birthday": "1906-12-09",
         "uid": "0b5e6a4c-1d2e-4f3a-8b9c-0d1e2f3a4b5c", "tags": [],
         "address": null, "naïve field": 2, "select": "x", "with \"quotes\"": false, "mixed": "two"}
    ])
}

fn openapi() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Test API", "version": "2.3.1"},
        "paths": {
            "/users": {"get": {"operationId": "listUsers", "summary": "Every user"}},
            "/users/{id}": {"get": {"operationId": "getUser"}},
            "/orders": {"get": {"operationId": "listOrders", "parameters": [{"name": "since", "in": "query", "required": true}]}},
            "/version": {"get": {"operationId": "version", "parameters": [{"name": "verbose", "in": "query"}]}},
            "/forbidden": {"post": {"operationId": "forbidden"}}
        }
    })
}

async fn huge() -> Response {
    // A large array streamed without a length: only the client's byte limit
    // stops it.
    let chunk = "{\"a\":1,\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"},"
        .repeat(1000)
        .into_bytes();
    let parts = std::iter::once(b"[".to_vec()).chain((0..2000).map(move |_| chunk.clone()));
    let stream = futures_util::stream::iter(parts.map(Ok::<_, std::io::Error>));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn app(auth: AuthCheck) -> Router {
    let api = Router::new()
        .route("/users", get(|| async { Json(users()) }))
        .route(
            "/orders",
            get(|| async {
                Json(json!({"page": 1, "data": {"items": [
                    {"order_id": 10, "total": 12.5, "placed": "2024-01-02"},
                    {"order_id": 11, "total": 3, "placed": "2024-01-03", "note": "gift"}
                ]}}))
            }),
        )
        .route(
            "/version",
            get(|| async {
                (
                    [("x-api-version", "2.3.1-hdr")],
                    Json(json!({"version": "2.3.1"})),
                )
            }),
        )
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route(
            "/forbidden",
            get(|| async {
                (
                    StatusCode::FORBIDDEN,
                    Json(json!({"message": "scope users:read required"})),
                )
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Json(json!([]))
            }),
        )
        .route(
            "/limited",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "7")],
                    Json(json!({"message": "slow down"})),
                )
            }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/bigerror",
            get(|| async {
                let message = format!("overloaded {}", "x".repeat(200_000));
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "message": message })),
                )
            }),
        )
        .route("/huge", get(huge))
        .route(
            "/text",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body>hello</body></html>",
                )
            }),
        )
        .route(
            "/deep",
            get(|| async { format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)) }),
        )
        .route(
            "/escape",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")],
                )
            }),
        )
        .route(
            "/hop",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/api/orders")]) }),
        )
        .route(
            "/search",
            post(|| async { Json(json!([{"hit": "a", "rank": 1}])) }),
        )
        .layer(middleware::from_fn_with_state(auth, check_auth));
    Router::new()
        .nest("/api", api)
        .route("/oauth/token", post(token))
        .layer(middleware::from_fn(server_header))
}

async fn token(headers: HeaderMap, body: String) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if auth != CLIENT_BASIC {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_description": "Client authentication failed"})))
            .into_response();
    }
    if !body.contains("scope=users%3Aread") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_scope"})),
        )
            .into_response();
    }
    Json(json!({"access_token": ISSUED, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn serve(auth: AuthCheck) -> SocketAddr {
    matih_connector_testkit::fake("axum REST server written in the test", "serve");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app(auth)).await.unwrap() });
    addr
}

/// The same app behind TLS (testkit's test CA); the address and the CA's PEM.
async fn serve_tls() -> (SocketAddr, String) {
    matih_connector_testkit::fake("axum REST server written in the test", "serve_tls");
    matih_connector_testkit::tls::serve_tls(app(AuthCheck::None)).await
}

// ---------------------------------------------------------------- helpers

fn case(addr: SocketAddr, meta: Value) -> Case {
    let mut m = json!({"scheme": "http", "basePath": "/api", "name": "test api"});
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

fn standard(addr: SocketAddr) -> Case {
    case(
        addr,
        json!({
            "versionEndpoint": "/version",
            "endpoints": [
                "/users",
                {"name": "orders", "path": "/orders", "recordsPath": "/data/items", "description": "Open orders"},
                {"name": "Ünï \"select\" ; DROP TABLE x", "path": "users"}
            ]
        }),
    )
}

async fn open_err(case: &Case) -> matih_connector_core::ConnectorError {
    open(
        &RestDriver::new(),
        &case.cfg,
        &case.creds,
        &EgressPolicy::allow_all(),
    )
    .await
    .map(|_| ())
    .unwrap_err()
}

fn driver() -> RestDriver {
    RestDriver::new()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn test_passes_and_reports_the_version_endpoint() {
    let addr = serve(AuthCheck::None).await;
    let r = conformance::assert_test_succeeds(&driver(), &standard(addr)).await;
    assert_eq!(r.server_version.as_deref(), Some("2.3.1"));

    let hdr = standard(addr).with_cfg(|c| {
        c.metadata
            .insert("versionHeader".into(), json!("X-Api-Version"));
    });
    let r = conformance::assert_test_succeeds(&driver(), &hdr).await;
    assert_eq!(r.server_version.as_deref(), Some("2.3.1-hdr"));

    let no_version = case(addr, json!({"endpoints": ["/users"]}));
    let r = conformance::assert_test_succeeds(&driver(), &no_version).await;
    assert_eq!(r.server_version.as_deref(), Some("test-api/1.0"));
}

#[tokio::test]
async fn discovers_endpoints_field_by_field() {
    let addr = serve(AuthCheck::None).await;
    let catalog =
        conformance::discover(&driver(), &standard(addr), &DiscoveryRequest::default()).await;
    assert_eq!(catalog.schemas.len(), 1);
    let s = catalog
        .schema("test api")
        .expect("schema named by metadata.name");
    let names: Vec<_> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["orders", "users", "Ünï \"select\" ; DROP TABLE x"]);
    assert!(s.tables.iter().all(|t| t.kind == TableKind::Endpoint));

    let users = s.table("users").unwrap();
    let expect: &[(&str, &str, bool, &str)] = &[
        ("id", "int64", false, "integer"),
        ("name", "string", false, "string"),
        ("email", "string", true, "string"),
        ("score", "float64", false, "number"),
        ("active", "boolean", false, "boolean"),
        ("created_at", "timestamp_tz", false, "string (date-time)"),
        ("birthday", "date", false, "string (date)"),
        ("uid", "uuid", false, "string (uuid)"),
        ("tags", "array<string>", false, "array<string>"),
        ("address", "struct", true, "object"),
        ("naïve field", "int64", false, "integer"),
        ("select", "string", false, "string"),
        ("with \"quotes\"", "boolean", false, "boolean"),
        ("mixed", "json", false, "mixed"),
    ];
    assert_eq!(users.columns.len(), expect.len(), "{:#?}", users.columns);
    for (name, ty, nullable, native) in expect {
        let c = users
            .column(name)
            .unwrap_or_else(|| panic!("column {name} missing"));
        assert_eq!(c.data_type.to_string(), *ty, "{name}");
        assert_eq!(c.nullable, *nullable, "{name} nullable");
        assert_eq!(c.native_type, *native, "{name} native");
    }
    assert_eq!(users.properties["sampledRecords"], json!(2));
    assert_eq!(users.properties["path"], json!("/users"));

    let orders = s.table("orders").unwrap();
    assert_eq!(orders.comment.as_deref(), Some("Open orders"));
    assert_eq!(orders.properties["recordsPath"], json!("/data/items"));
    let cols: Vec<_> = orders
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.clone(), c.nullable))
        .collect();
    for want in [
        ("order_id", DataType::Int64, false),
        ("total", DataType::Float64, false),
        ("placed", DataType::Date, false),
        ("note", DataType::String, true),
    ] {
        assert!(cols.contains(&want), "{want:?} in {cols:?}");
    }
    assert_eq!(cols.len(), 4);

    let hostile = s.table("Ünï \"select\" ; DROP TABLE x").unwrap();
    assert_eq!(hostile.columns.len(), users.columns.len());

    // The sample size bounds the records read.
    let one = DiscoveryRequest {
        sample_size: 1,
        ..Default::default()
    };
    let c = conformance::discover(&driver(), &standard(addr), &one).await;
    let users = c.schemas[0].table("users").unwrap();
    assert_eq!(users.properties["sampledRecords"], json!(1));
    assert!(
        !users.column("email").unwrap().nullable,
        "one record: email present"
    );
}

#[tokio::test]
async fn filters_and_depth() {
    let addr = serve(AuthCheck::None).await;
    conformance::assert_discovery_filters(&driver(), &standard(addr), "test api", "orders").await;
    let req = DiscoveryRequest {
        tables: NameFilter {
            include: vec!["Ünï*".into()],
            exclude: vec![],
        },
        ..Default::default()
    };
    let c = conformance::discover(&driver(), &standard(addr), &req).await;
    assert_eq!(c.table_count(), 1);
    assert_eq!(c.schemas[0].tables[0].name, "Ünï \"select\" ; DROP TABLE x");
}

#[tokio::test]
async fn openapi_document_lists_argument_free_gets() {
    let addr = serve(AuthCheck::None).await;
    let c = case(
        addr,
        json!({"openapiPath": "/openapi.json", "endpoints": [{"name": "search", "path": "/search", "method": "POST"}]}),
    );
    conformance::assert_test_succeeds(&driver(), &c).await;
    let catalog = conformance::discover(&driver(), &c, &DiscoveryRequest::default()).await;
    let s = &catalog.schemas[0];
    let names: Vec<_> = s.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["listUsers", "search", "version"]);
    let users = s.table("listUsers").unwrap();
    assert_eq!(users.comment.as_deref(), Some("Every user"));
    assert_eq!(users.column("id").unwrap().data_type, DataType::Int64);
    let version = s.table("version").unwrap();
    assert_eq!(
        version.column("version").unwrap().data_type,
        DataType::String
    );
    let search = s.table("search").unwrap();
    assert_eq!(search.properties["method"], json!("POST"));
    assert_eq!(search.column("rank").unwrap().data_type, DataType::Int64);
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let addr = serve(AuthCheck::Bearer).await;
    let good = standard(addr).with_cred("token", TOKEN);
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

    let dns = good.with_cfg(|c| c.host = Some("api.matih.invalid".into()));
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
    let started = std::time::Instant::now();
    conformance::assert_test_fails(&driver(), &silent, Step::Connect, ErrorCode::Timeout).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    listener.abort();

    let wrong = good.with_cred("token", "not-the-token");
    let r = conformance::assert_test_fails(
        &driver(),
        &wrong,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("Bad credentials"), "{}", r.message);
    let missing = standard(addr);
    conformance::assert_test_fails(
        &driver(),
        &missing,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let forbidden = good.with_cfg(|c| {
        c.metadata.insert("endpoints".into(), json!(["/forbidden"]));
    });
    conformance::assert_test_fails(
        &driver(),
        &forbidden,
        Step::AccessProbe,
        ErrorCode::PermissionDenied,
    )
    .await;

    let no_base = good.with_cfg(|c| {
        c.metadata.insert("basePath".into(), json!("/v9"));
    });
    conformance::assert_test_fails(
        &driver(),
        &no_base,
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;

    let slow = good.with_cfg(|c| {
        c.metadata.insert("endpoints".into(), json!(["/slow"]));
        c.timeouts = Timeouts {
            connect_ms: 3000,
            query_ms: 600,
        };
    });
    let started = std::time::Instant::now();
    conformance::assert_test_fails(&driver(), &slow, Step::AccessProbe, ErrorCode::Timeout).await;
    assert!(started.elapsed() < Duration::from_secs(4));

    let limited = good.with_cfg(|c| {
        c.metadata.remove("versionEndpoint");
        c.metadata.insert("endpoints".into(), json!(["/limited"]));
    });
    conformance::assert_test_fails(&driver(), &limited, Step::Connect, ErrorCode::RateLimited)
        .await;
    let e = open_err(&limited).await;
    assert_eq!(e.context_value("retryAfter"), Some("7"));
    assert!(e.is_retryable());

    let boom = limited.with_cfg(|c| {
        c.metadata.insert("endpoints".into(), json!(["/boom"]));
    });
    let e = open_err(&boom).await;
    assert_eq!((e.code(), e.is_retryable()), (ErrorCode::SourceError, true));
    assert_eq!(e.context_value("httpStatus"), Some("500"));

    // Only the start of an error body is read; the message stays short.
    let big = limited.with_cfg(|c| {
        c.metadata.insert("endpoints".into(), json!(["/bigerror"]));
    });
    let e = open_err(&big).await;
    assert_eq!(e.context_value("httpStatus"), Some("503"));
    assert!(e.message().len() < 500, "{}", e.message().len());
}

#[tokio::test]
async fn redirects_stay_on_the_origin() {
    let addr = serve(AuthCheck::None).await;
    let escape = case(addr, json!({"endpoints": ["/escape"]}));
    let e = open_err(&escape).await;
    assert_eq!(e.code(), ErrorCode::SourceError, "{e}");
    assert_eq!(
        e.context_value("location"),
        Some("http://169.254.169.254/latest/meta-data/")
    );

    let hop = case(
        addr,
        json!({"endpoints": [{"name": "hop", "path": "/hop", "recordsPath": "/data/items"}]}),
    );
    let c = conformance::discover(&driver(), &hop, &DiscoveryRequest::default()).await;
    assert!(c.schemas[0]
        .table("hop")
        .unwrap()
        .column("order_id")
        .is_some());
}

#[tokio::test]
async fn every_auth_mode_against_a_server_that_checks_it() {
    let basic_addr = serve(AuthCheck::Basic).await;
    let basic = standard(basic_addr)
        .with_cred("username", "alice")
        .with_cred("password", "s3cret pass");
    conformance::assert_test_succeeds(&driver(), &basic).await;
    let bad = basic.with_cred("password", "wrong pass");
    conformance::assert_test_fails(
        &driver(),
        &bad,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let key_addr = serve(AuthCheck::ApiKey).await;
    let key = standard(key_addr)
        .with_cred("apiKey", API_KEY)
        .with_cfg(|c| {
            c.metadata
                .insert("apiKeyHeader".into(), json!("X-Secret-Key"));
        });
    conformance::assert_test_succeeds(&driver(), &key).await;
    let default_header = standard(key_addr).with_cred("apiKey", API_KEY);
    conformance::assert_test_fails(
        &driver(),
        &default_header,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;

    let oauth_addr = serve(AuthCheck::OAuth).await;
    let oauth = standard(oauth_addr)
        .with_cred("clientId", "cid")
        .with_cred("clientSecret", "csecret")
        .with_cfg(|c| {
            c.metadata.insert(
                "tokenUrl".into(),
                json!(format!(
                    "http://127.0.0.1:{}/oauth/token",
                    oauth_addr.port()
                )),
            );
            c.metadata.insert("scope".into(), json!("users:read"));
        });
    conformance::assert_test_succeeds(&driver(), &oauth).await;
    let catalog = conformance::discover(&driver(), &oauth, &DiscoveryRequest::default()).await;
    assert_eq!(catalog.table_count(), 3);
    let wrong_secret = oauth.with_cred("clientSecret", "not-csecret");
    let r = conformance::assert_test_fails(
        &driver(),
        &wrong_secret,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(r.message.contains("invalid_client"), "{}", r.message);
    let wrong_scope = oauth.with_cfg(|c| {
        c.metadata.insert("scope".into(), json!("admin"));
    });
    conformance::assert_test_fails(
        &driver(),
        &wrong_scope,
        Step::Connect,
        ErrorCode::PermissionDenied,
    )
    .await;

    // The token URL is checked against the egress policy like the API itself.
    let metadata_ip = oauth.with_cfg(|c| {
        c.metadata
            .insert("tokenUrl".into(), json!("http://169.254.169.254/token"));
    });
    let r = run_test(
        &driver(),
        &metadata_ip.cfg,
        &metadata_ip.creds,
        &TestOptions::default(),
    )
    .await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::EgressDenied)),
        "{r:?}"
    );
}

#[tokio::test]
async fn tls_verification() {
    let (addr, ca) = serve_tls().await;
    let base = case(
        addr,
        json!({"endpoints": ["/users"], "versionEndpoint": "/version"}),
    )
    .with_cfg(|c| {
        c.metadata.remove("scheme");
        c.ssl_mode = Some(SslMode::VerifyFull);
    });
    let r = conformance::assert_test_fails(
        &driver(),
        &base,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    assert!(
        r.message.contains("TLS") || r.message.contains("certificate"),
        "{}",
        r.message
    );

    let trusted = base.with_cfg(|c| c.ssl_ca_pem = Some(ca.clone()));
    let r = conformance::assert_test_succeeds(&driver(), &trusted).await;
    assert_eq!(r.server_version.as_deref(), Some("2.3.1"));
    let c = conformance::discover(&driver(), &trusted, &DiscoveryRequest::default()).await;
    assert_eq!(c.table_count(), 1);

    // https is the default scheme: with nothing said about TLS it is verified.
    let implicit = base.with_cfg(|c| c.ssl_mode = None);
    conformance::assert_test_fails(
        &driver(),
        &implicit,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;

    let require = base.with_cfg(|c| c.ssl_mode = Some(SslMode::Require));
    conformance::assert_test_succeeds(&driver(), &require).await;

    // Plain HTTP against the TLS port is refused by the server, never a pass.
    let plain = base.with_cfg(|c| {
        c.ssl_mode = None;
        c.metadata.insert("scheme".into(), json!("http"));
        c.timeouts = Timeouts {
            connect_ms: 1500,
            query_ms: 1500,
        };
    });
    let r = run_test(
        &driver(),
        &plain.cfg,
        &plain.creds,
        &TestOptions {
            egress: EgressPolicy::allow_all(),
            ..Default::default()
        },
    )
    .await;
    assert!(!r.success);
}

#[tokio::test]
async fn hostile_payloads_are_bounded() {
    let addr = serve(AuthCheck::None).await;
    let c = case(
        addr,
        json!({"versionEndpoint": "/version", "endpoints": ["/users", "/huge", "/text", "/deep", {"name": "missing", "path": "/nothing-here"}, {"name": "wrongpath", "path": "/users", "recordsPath": "/data"}]}),
    );
    let catalog = conformance::discover(&driver(), &c, &DiscoveryRequest::default()).await;
    let s = &catalog.schemas[0];
    let err_code = |name: &str| {
        s.table(name)
            .unwrap()
            .properties
            .get("sampleError")
            .map(|e| e["code"].clone())
    };
    assert_eq!(err_code("users"), None);
    assert_eq!(err_code("huge"), Some(json!("PROTOCOL_ERROR")));
    assert!(
        s.table("huge").unwrap().properties["sampleError"]["message"]
            .as_str()
            .unwrap()
            .contains("1048576 bytes")
    );
    assert_eq!(err_code("text"), Some(json!("PROTOCOL_ERROR")));
    assert_eq!(err_code("deep"), Some(json!("PROTOCOL_ERROR")));
    assert_eq!(err_code("missing"), Some(json!("DATABASE_NOT_FOUND")));
    assert_eq!(err_code("wrongpath"), Some(json!("PROTOCOL_ERROR")));
    for t in ["huge", "text", "deep", "missing"] {
        assert!(s.table(t).unwrap().columns.is_empty());
    }

    // The probe needs JSON from the first endpoint.
    let text_first = case(
        addr,
        json!({"versionEndpoint": "/version", "endpoints": ["/text"]}),
    );
    conformance::assert_test_fails(
        &driver(),
        &text_first,
        Step::AccessProbe,
        ErrorCode::ProtocolError,
    )
    .await;
    let huge_first = case(
        addr,
        json!({"endpoints": ["/huge"], "maxResponseBytes": 65536}),
    );
    let e = open_err(&huge_first).await;
    assert_eq!(e.code(), ErrorCode::ProtocolError);
    assert_eq!(e.context_value("limitBytes"), Some("65536"));
}

#[tokio::test]
async fn depth_tables_makes_no_sample_requests() {
    let addr = serve(AuthCheck::None).await;
    // /slow would time out if sampled.
    let c = case(
        addr,
        json!({"versionEndpoint": "/version", "endpoints": ["/users", "/slow"]}),
    )
    .with_cfg(|c| {
        c.timeouts = Timeouts {
            connect_ms: 2000,
            query_ms: 500,
        }
    });
    let catalog = conformance::discover(
        &driver(),
        &c,
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    assert_eq!(catalog.table_count(), 2);
    assert!(catalog.schemas[0]
        .tables
        .iter()
        .all(|t| t.columns.is_empty()));
    let mut conn = open(&driver(), &c.cfg, &c.creds, &EgressPolicy::allow_all())
        .await
        .unwrap();
    let e = conn
        .discover(&DiscoveryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout);
    assert_eq!(e.context_value("endpoint"), Some("slow"));
}

#[test]
fn validation_rejects_before_io() {
    let d = driver();
    let c = standard("127.0.0.1:1".parse().unwrap());
    let creds = Credentials::new().with("token", "t").with("apiKey", "k");
    let e = matih_connector_core::prepare(&d, &c.cfg, &creds).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
    assert!(!e.message().contains("\"t\""));
}

/// The egress proof of the REST family: every way the driver reaches an
/// address (a redirect, an IP-literal OpenAPI URL or token URL, the API host
/// itself) is refused with EGRESS_DENIED before any packet reaches the
/// denied address, where a listener records every connection.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let to = denied.url("/latest/meta-data/");
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/api/users",
            get(move || async move { (StatusCode::FOUND, [(header::LOCATION, to)]) }),
        )
        .route("/api/orders", get(|| async { Json(json!([{"id": 1}])) }));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let redirect = case(addr, json!({"endpoints": ["/users"]}));
    assert_refused(&driver(), &redirect, Step::Connect, &denied).await;

    let openapi = case(addr, json!({"openapiUrl": denied.url("/openapi.json")}));
    assert_refused(&driver(), &openapi, Step::Connect, &denied).await;

    let token = case(
        addr,
        json!({"endpoints": ["/orders"], "tokenUrl": denied.url("/token")}),
    )
    .with_cred("clientId", "cid")
    .with_cred("clientSecret", "csecret");
    assert_refused(&driver(), &token, Step::Connect, &denied).await;

    let host = case(denied.addr, json!({"endpoints": ["/orders"]}))
        .with_cfg(|c| c.host = Some(denied.addr.ip().to_string()));
    assert_refused(&driver(), &host, Step::Dns, &denied).await;

    // The same connector passes once the policy allows it.
    conformance::assert_test_succeeds(&driver(), &case(addr, json!({"endpoints": ["/orders"]})))
        .await;
    denied.assert_never_reached().await;
}
