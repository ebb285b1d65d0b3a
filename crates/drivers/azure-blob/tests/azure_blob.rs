//! Azure Blob driver against the `azure-blob` fixture (Azurite, in memory,
//! seeded by tests/fixtures/azure-blob/seed.py: container `matih-seed` with
//! CSV, JSON-lines and Parquet prefixes, container `matih-other`, and two
//! account SAS tokens, read+list and read only). Azurite checks Shared Key
//! signatures and SAS permissions.

use matih_connector_core::{
    ConnectionConfig, Credentials, Depth, DiscoveryRequest, EgressPolicy, ErrorCode, NameFilter,
    SslMode, Step, Table, TableKind, Timeouts,
};
use matih_connector_testkit::conformance::{
    assert_discovery_filters, assert_no_secret, assert_test_fails, assert_test_succeeds,
    closed_port, discover, silent_listener, Case,
};
use matih_connector_testkit::tls_proxy::{assert_tls_modes, TlsProxy};
use matih_connector_testkit::Fixture;
use matih_driver_azure_blob::AzureBlobDriver;
use serde_json::json;

/// Every container of the account, with the account key.
fn account(fx: &Fixture) -> Case {
    let cfg = ConnectionConfig {
        host: Some(fx.require("HOST").to_owned()),
        port: Some(fx.port()),
        ssl_enabled: Some(false),
        metadata: serde_json::from_value(json!({"account": fx.require("ACCOUNT")})).unwrap(),
        timeouts: Timeouts {
            connect_ms: 10_000,
            query_ms: 20_000,
        },
        ..Default::default()
    };
    Case::new(
        cfg,
        Credentials::new().with("accountKey", fx.require("ACCOUNT_KEY")),
    )
}

/// The seeded container only, named as the database.
fn seed_container(fx: &Fixture) -> Case {
    account(fx).with_cfg(|c| c.database = Some(fx.require("CONTAINER").to_owned()))
}

fn with_sas(case: &Case, sas: &str) -> Case {
    let mut c = case.clone();
    c.creds = Credentials::new().with("sasToken", sas);
    c
}

fn columns(t: &Table) -> Vec<(String, String, bool)> {
    t.columns
        .iter()
        .map(|c| (c.name.to_string(), c.data_type.to_string(), c.nullable))
        .collect()
}

fn cols(want: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    want.iter()
        .map(|(n, t, z)| (n.to_string(), t.to_string(), *z))
        .collect()
}

#[tokio::test]
async fn connectivity_test_passes_with_key_and_sas() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "connectivity_test_passes")
    else {
        return;
    };
    let d = AzureBlobDriver::new();
    let r = assert_test_succeeds(&d, &seed_container(&fx)).await;
    let v = r.server_version.unwrap();
    assert!(v.starts_with("Azure Blob Storage REST API 20"), "{v}");
    assert!(v.contains("Azurite-Blob/"), "{v}");
    assert_test_succeeds(&d, &account(&fx)).await;
    assert_test_succeeds(
        &d,
        &with_sas(&seed_container(&fx), fx.require("READ_LIST_SAS")),
    )
    .await;
    assert_test_succeeds(
        &d,
        &with_sas(&account(&fx), &format!("?{}", fx.require("READ_LIST_SAS"))),
    )
    .await;
    // The path-style endpoint as one URL names the account too.
    let url = account(&fx).with_cfg(|c| {
        c.host = None;
        c.port = None;
        c.ssl_enabled = None;
        c.metadata = serde_json::from_value(json!({
            "endpoint": format!("http://{}:{}/{}", fx.require("HOST"), fx.port(), fx.require("ACCOUNT"))
        }))
        .unwrap();
    });
    assert_test_succeeds(&d, &url).await;
}

#[tokio::test]
async fn error_codes_from_real_failures() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "error_codes_from_real_failures")
    else {
        return;
    };
    let d = AzureBlobDriver::new();
    let g = seed_container(&fx);

    let refused = g.with_cfg(|c| c.port = Some(closed_port()));
    assert_test_fails(&d, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;

    let dns = g.with_cfg(|c| c.host = Some("no-such-host.matih.invalid".into()));
    assert_test_fails(&d, &dns, Step::Dns, ErrorCode::DnsResolutionFailed).await;

    let (port, listener) = silent_listener().await;
    let silent = g.with_cfg(|c| {
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    assert_test_fails(&d, &silent, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();

    // TLS spoken to the plain-HTTP emulator fails the handshake.
    let tls = g.with_cfg(|c| {
        c.ssl_enabled = Some(true);
        c.ssl_mode = Some(SslMode::VerifyFull);
    });
    assert_test_fails(&d, &tls, Step::Connect, ErrorCode::SslHandshakeFailed).await;

    // A well-formed key that is not the account's: Azurite's real 403.
    let wrong = g.with_cred(
        "accountKey",
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==",
    );
    let r = assert_test_fails(&d, &wrong, Step::Connect, ErrorCode::AuthenticationFailed).await;
    assert!(
        r.message.contains("failed to authenticate"),
        "{}",
        r.message
    );

    let missing = g.with_cfg(|c| c.database = Some("matih-no-such-container".into()));
    let r = assert_test_fails(&d, &missing, Step::Connect, ErrorCode::DatabaseNotFound).await;
    assert!(r.message.contains("ContainerNotFound"), "{}", r.message);

    // A SAS without list permission.
    let read_only = with_sas(&g, fx.require("READ_ONLY_SAS"));
    let r = assert_test_fails(&d, &read_only, Step::Connect, ErrorCode::PermissionDenied).await;
    assert!(
        r.message.contains("AuthorizationPermissionMismatch"),
        "{}",
        r.message
    );
    assert_no_secret(&serde_json::to_string(&r).unwrap(), &read_only.creds);
    // A SAS whose signature was tampered with.
    let forged = fx.require("READ_LIST_SAS").replace("sp=rl", "sp=rwdl");
    let r = assert_test_fails(
        &d,
        &with_sas(&g, &forged),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert!(
        r.message.contains("AuthenticationFailed") || r.message.contains("Authorization"),
        "{}",
        r.message
    );

    let bad = g.with_cfg(|c| {
        c.metadata
            .insert("container".into(), json!("Not_A_Container"));
    });
    assert_test_fails(&d, &bad, Step::Validate, ErrorCode::InvalidConfiguration).await;
}

#[tokio::test]
async fn service_principal_token_endpoint_is_egress_checked() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "service_principal_egress")
    else {
        return;
    };
    let d = AzureBlobDriver::new();
    let mut sp = seed_container(&fx);
    sp.creds = Credentials::new()
        .with("clientId", "00000000-0000-0000-0000-000000000001")
        .with("clientSecret", "not-a-real-secret")
        .with("tenantId", "matih-test");
    sp.cfg.metadata.insert(
        "tokenUrl".into(),
        json!("http://169.254.169.254/matih-test/oauth2/v2.0/token"),
    );
    let err = matih_connector_core::open(&d, &sp.cfg, &sp.creds, &EgressPolicy::default()).await;
    let Err(err) = err else {
        panic!("the metadata address must be refused")
    };
    assert_eq!(err.code(), ErrorCode::EgressDenied, "{err}");
    // A FAKE Entra ID token endpoint answering Microsoft's documented body for
    // a wrong client secret, after checking the grant's form fields.
    let (port, seen) = fake_token_endpoint().await;
    sp.cfg.metadata.insert(
        "tokenUrl".into(),
        json!(format!("http://127.0.0.1:{port}/t/oauth2/v2.0/token")),
    );
    let r = assert_test_fails(&d, &sp, Step::Connect, ErrorCode::AuthenticationFailed).await;
    assert!(
        r.message.contains("invalid_client") && r.message.contains("AADSTS7000215"),
        "{}",
        r.message
    );
    let form = seen.lock().unwrap().clone();
    assert_eq!(form.len(), 1, "{form:?}");
    for want in [
        "grant_type=client_credentials",
        "scope=https%3A%2F%2Fstorage.azure.com%2F.default",
        "client_id=00000000-0000-0000-0000-000000000001",
    ] {
        assert!(form[0].contains(want), "{want} not in the token request");
    }
    // A token endpoint that refuses connections.
    let port = closed_port();
    sp.cfg.metadata.insert(
        "tokenUrl".into(),
        json!(format!("http://127.0.0.1:{port}/t/oauth2/v2.0/token")),
    );
    assert_test_fails(&d, &sp, Step::Connect, ErrorCode::ConnectionRefused).await;
}

/// Reads one HTTP/1.1 request's body (by Content-Length).
async fn read_body(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return String::new();
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text[end + 4..].to_owned();
            }
        }
    }
}

/// A FAKE token endpoint: records each request's form body and answers 401
/// with Entra ID's body for an invalid client secret.
async fn fake_token_endpoint() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    matih_connector_testkit::fake("Entra ID token endpoint fake", "fake_token_endpoint");
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let body = read_body(&mut s).await;
            seen2.lock().unwrap().push(body);
            let answer = json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                "error_codes": [7000215]
            })
            .to_string();
            let resp = format!(
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, seen)
}

#[tokio::test]
async fn discovers_csv_jsonl_and_parquet_file_sets() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "discovers_file_sets") else {
        return;
    };
    let d = AzureBlobDriver::new();
    let container = fx.require("CONTAINER");
    for case in [
        seed_container(&fx),
        with_sas(&seed_container(&fx), fx.require("READ_LIST_SAS")),
    ] {
        let catalog = discover(&d, &case, &DiscoveryRequest::default()).await;
        assert_eq!(catalog.schemas.len(), 1);
        let s = catalog.schema(container).unwrap();
        let names: Vec<&str> = s.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "events",
                "metrics",
                "orders",
                "readme.json",
                "weird name ü 'q'"
            ]
        );
        assert!(s.tables.iter().all(|t| t.kind == TableKind::FileSet));

        let orders = s.table("orders").unwrap();
        assert_eq!(orders.properties["format"], json!("csv"));
        assert_eq!(orders.properties["prefix"], json!("orders/"));
        assert_eq!(orders.properties["objectCount"], json!(2));
        assert_eq!(orders.properties["sampledFiles"], json!(2));
        assert_eq!(orders.properties["sampledRecords"], json!(4));
        assert_eq!(orders.size_bytes, Some(193 + 95));
        assert_eq!(
            columns(orders),
            cols(&[
                ("id", "int64", false),
                ("customer", "string", false),
                ("amount", "float64", false),
                ("ordered_at", "timestamp_tz", false),
                ("paid", "boolean", false),
                ("ship_date", "date", true),
            ])
        );

        let events = s.table("events").unwrap();
        assert_eq!(events.properties["format"], json!("jsonl"));
        assert_eq!(events.properties["sampledRecords"], json!(3));
        assert_eq!(
            columns(events),
            cols(&[
                ("at", "timestamp_tz", false),
                ("id", "int64", false),
                ("kind", "string", false),
                ("props", "struct", false),
                ("referrer", "string", true),
                ("score", "float64", false),
                ("tags", "array<string>", false),
            ])
        );

        let metrics = s.table("metrics").unwrap();
        assert_eq!(metrics.properties["format"], json!("parquet"));
        assert_eq!(metrics.properties["rowsInSampledFiles"], json!(3));
        assert_eq!(
            columns(metrics),
            cols(&[
                ("sensor_id", "int32", true),
                ("reading", "float64", true),
                ("label", "string", true),
                ("ok", "boolean", true),
                ("taken_at", "timestamp_tz", true),
                ("day", "date", true),
                ("price", "decimal(10,2)", true),
                ("big", "int64", true),
            ])
        );

        // Reading a blob whose name needs percent-encoding proves the signed
        // path matches the one sent.
        let weird = s.table("weird name ü 'q'").unwrap();
        assert_eq!(
            columns(weird),
            cols(&[("a b", "int64", false), ("c\"d", "string", false)])
        );
        assert!(
            !weird.properties.contains_key("sampleError"),
            "{:?}",
            weird.properties
        );

        let readme = s.table("readme.json").unwrap();
        assert_eq!(readme.properties["blob"], json!("readme.json"));
        assert_eq!(readme.properties["objectCount"], json!(1));
        assert_eq!(
            columns(readme),
            cols(&[("title", "string", false), ("version", "int64", false)])
        );
    }
}

#[tokio::test]
async fn samples_are_bounded() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "samples_are_bounded") else {
        return;
    };
    let d = AzureBlobDriver::new();
    let only_orders = NameFilter {
        include: vec!["orders".into()],
        exclude: vec![],
    };
    let req = DiscoveryRequest {
        sample_size: 1,
        tables: only_orders.clone(),
        ..Default::default()
    };
    let c = discover(&d, &seed_container(&fx), &req).await;
    let t = &c.schemas[0].tables[0];
    assert_eq!(t.properties["sampledRecords"], json!(1));
    assert_eq!(t.properties["sampledFiles"], json!(1));
    let capped = seed_container(&fx).with_cfg(|c| {
        c.metadata.insert("maxObjectsPerTable".into(), json!(1));
    });
    let req = DiscoveryRequest {
        tables: only_orders.clone(),
        ..Default::default()
    };
    let c = discover(&d, &capped, &req).await;
    let t = &c.schemas[0].tables[0];
    assert_eq!(t.properties["objectCount"], json!(1));
    assert_eq!(t.properties["listingTruncated"], json!(true));
    let req = DiscoveryRequest {
        statistics: false,
        ..DiscoveryRequest::default().with_depth(Depth::Tables)
    };
    let c = discover(&d, &seed_container(&fx), &req).await;
    let t = c.schemas[0].table("orders").unwrap();
    assert_eq!(t.size_bytes, None);
    assert!(!t.properties.contains_key("objectCount"));
}

#[tokio::test]
async fn discovery_filters_and_depth() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "discovery_filters_and_depth")
    else {
        return;
    };
    let d = AzureBlobDriver::new();
    let container = fx.require("CONTAINER");
    assert_discovery_filters(&d, &account(&fx), container, "orders").await;
    let all = discover(
        &d,
        &account(&fx),
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    let names: Vec<&str> = all.schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["matih-other", container]);
    let other = discover(
        &d,
        &account(&fx),
        &DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["matih-oth*".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(other.schemas.len(), 1);
    assert_eq!(
        other.schemas[0].table("logs").unwrap().properties["format"],
        json!("jsonl")
    );
    let weird = discover(
        &d,
        &seed_container(&fx),
        &DiscoveryRequest {
            tables: NameFilter {
                include: vec!["weird name ü 'q'".into()],
                exclude: vec![],
            },
            ..Default::default()
        },
    )
    .await;
    assert_eq!(weird.table_count(), 1);
}

/// TLS modes through the shared terminating proxy in front of the emulator;
/// the certificate names `localhost`, which the core resolves and pins.
#[tokio::test]
async fn tls_is_verified_with_pinned_addresses() {
    let Some(fx) = matih_connector_testkit::fixture("AZURE_BLOB", "tls_is_verified") else {
        return;
    };
    let d = AzureBlobDriver::new();
    let proxy = TlsProxy::start(&fx).await;
    let port = proxy.port();
    let good = assert_tls_modes(&d, &proxy, |host, mode, ca| {
        let (host, ca) = (host.to_owned(), ca.map(str::to_owned));
        seed_container(&fx).with_cfg(move |c| {
            c.host = Some(host);
            c.port = Some(port);
            c.ssl_enabled = Some(true);
            c.ssl_mode = Some(mode);
            c.ssl_ca_pem = ca;
        })
    })
    .await;
    let c = discover(&d, &good, &DiscoveryRequest::default()).await;
    assert!(!c.schemas[0].table("orders").unwrap().columns.is_empty());
}

/// The egress proof of the Azure family: a redirect to a denied address, an
/// Entra ID token endpoint and a Blob endpoint given as IP literals in a denied
/// network are refused with EGRESS_DENIED before any packet reaches the denied
/// address, where a listener records every connection. Runs without a fixture.
#[tokio::test]
async fn egress_refusals_happen_before_any_packet() {
    use matih_connector_testkit::egress::{assert_refused, DeniedListener};
    let denied = DeniedListener::bind("127.0.0.3").await;
    let fake = matih_connector_testkit::egress_proof::redirecting_origin(
        denied.url("/metadata/identity/oauth2/token"),
        "egress_refusals_happen_before_any_packet",
    )
    .await;
    let d = AzureBlobDriver::new();
    let case = |endpoint: String, creds: Credentials| {
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(
                json!({"endpoint": endpoint, "account": "acct", "container": "seed"}),
            )
            .unwrap(),
            timeouts: Timeouts {
                connect_ms: 10_000,
                query_ms: 20_000,
            },
            ..Default::default()
        };
        Case::new(cfg, creds)
    };

    // The blob listing is redirected to the denied address: the hop is checked.
    let redirect = case(format!("http://{fake}/acct"), Credentials::new());
    assert_refused(&d, &redirect, Step::Connect, &denied).await;

    // A service principal whose token endpoint is in the denied network.
    let mut sp = case(
        format!("http://{fake}/acct"),
        Credentials::new()
            .with("clientId", "00000000-0000-0000-0000-000000000001")
            .with("clientSecret", "not-a-real-secret")
            .with("tenantId", "matih-test"),
    );
    sp.cfg
        .metadata
        .insert("tokenUrl".into(), json!(denied.url("/t/oauth2/v2.0/token")));
    assert_refused(&d, &sp, Step::Connect, &denied).await;

    // The Blob endpoint itself: the DNS step refuses it, and the client
    // refuses it on its own when handed the address anyway.
    let direct = case(denied.url("/acct"), Credentials::new());
    assert_refused(&d, &direct, Step::Dns, &denied).await;
    matih_connector_testkit::egress_proof::assert_client_refuses(&d, &direct, &denied).await;

    denied.assert_never_reached().await;
}
