//! The service's own behaviour over real HTTP, with the test-only driver (see
//! `common/fake_driver.rs`): limits, statuses, auth, error shapes, paging,
//! diffs, cross-tenant refusal, OpenAPI against the routes, no credential leaks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake_driver::{self, GOOD_PASSWORD};
use common::{fake_registry, fake_server, Harness, Options};
use matih_connector_core::{DataType, Table, TableKind};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

struct Fake {
    h: Harness,
    catalog: Arc<Mutex<matih_connector_core::Catalog>>,
    /// Discovery is held while this is closed.
    gate: fake_driver::Gate,
    port: u16,
}

async fn fake(discovery_wait: Duration) -> Fake {
    let catalog = Arc::new(Mutex::new(fake_driver::catalog(2, 3)));
    let gate = fake_driver::Gate::default();
    let h = Harness::start(Options {
        registry: fake_registry(catalog.clone(), gate.clone()),
        discovery_wait,
        ..Default::default()
    })
    .await;
    Fake {
        h,
        catalog,
        gate,
        port: fake_server().await,
    }
}

fn body(name: &str, ty: &str, port: u16, password: &str) -> Value {
    json!({
        "name": name, "type": ty, "host": "127.0.0.1", "port": port, "database": "db",
        "credentials": {"username": "reader-user-9", "password": password},
        "sslEnabled": false, "metadata": {}
    })
}

/// A MYSQL connector created through the API (201), as answered.
async fn created(f: &Fake, tenant: Uuid, tok: &str, name: &str) -> Value {
    let (s, c) =
        f.h.call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            tok,
            Some(body(name, "MYSQL", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    c
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn full_flow_statuses_discovery_paging_diff_and_delete() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let tenant = h.create_tenant("flow", "PROFESSIONAL").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");

    let (s, c) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(body("Prod \"DB\" été", "POSTGRESQL", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "ACTIVE");
    assert_eq!(c["lastTestResult"], "Connection successful");
    assert!(c["lastTestedAt"].is_string());
    assert_eq!(c["schemasDiscovered"], 2);
    assert_eq!(c["tablesDiscovered"], 6);
    assert_eq!(c["testResult"]["serverVersion"], "Fake 1.0");
    assert!(c.get("credentials").is_none());
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["credentialSecretName"], format!("connector-{}", &id[..8]));
    let path = format!("{base}/{id}");

    let (s, got) = h.call(Method::GET, &path, &tok, None).await;
    assert_eq!(s, 200);
    assert_eq!(got["name"], "Prod \"DB\" été");
    assert_eq!(got["tenantId"], tenant.to_string());
    let (s, list) = h.call(Method::GET, &base, &tok, None).await;
    assert_eq!((s, list["total"].as_u64()), (200, Some(1)));

    let (s, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(t["connectorId"], id);
    assert_eq!(t["success"], true);
    assert!(t["latencyMs"].is_u64() && t["testedAt"].is_string() && t["steps"].is_array());

    // Summary in the seed's shape.
    let (s, sch) = h
        .call(Method::GET, &format!("{path}/schemas"), &tok, None)
        .await;
    assert_eq!(s, 200, "{sch}");
    assert_eq!(sch["connectorId"], id);
    assert!(sch["discoveredAt"].is_string());
    let t0 = &sch["schemas"][0]["tables"][0];
    assert_eq!(t0["columns"], 3);
    assert_eq!(t0["type"], "TABLE");
    assert!(t0["estimatedRows"].is_u64() && t0["sizeBytes"].is_u64());
    assert!(t0.get("columnDetails").is_none());
    let (_, full) = h
        .call(
            Method::GET,
            &format!("{path}/schemas?include=columns"),
            &tok,
            None,
        )
        .await;
    assert_eq!(
        full["schemas"][0]["tables"][0]["columnDetails"][2]["name"],
        "Order"
    );

    // Paging: 6 tables, 4 per page.
    let (_, p1) = h
        .call(Method::GET, &format!("{path}/schemas?limit=4"), &tok, None)
        .await;
    let n1: usize = p1["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tables"].as_array().unwrap().len())
        .sum();
    assert_eq!((n1, p1["totalTables"].as_u64()), (4, Some(6)));
    let cursor = p1["nextCursor"].as_str().unwrap();
    let (_, p2) = h
        .call(
            Method::GET,
            &format!("{path}/schemas?limit=4&cursor={cursor}"),
            &tok,
            None,
        )
        .await;
    let n2: usize = p2["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tables"].as_array().unwrap().len())
        .sum();
    assert_eq!(n2, 2);
    assert!(p2.get("nextCursor").is_none());
    let (s, bad) = h
        .call(
            Method::GET,
            &format!("{path}/schemas?cursor=nope"),
            &tok,
            None,
        )
        .await;
    assert_eq!((s, bad["code"].as_str()), (400, Some("INVALID_REQUEST")));

    // A table's detail, hostile names through the path.
    let schema = "schema 1 \"été\"";
    let table = "T-0002 select";
    let (s, d) = h
        .call(
            Method::GET,
            &format!("{path}/schemas/{}/tables/{}", enc(schema), enc(table)),
            &tok,
            None,
        )
        .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["table"]["name"], table);
    assert_eq!(d["table"]["columns"][2]["dataType"], "decimal(10,2)");
    let (s, _) = h
        .call(
            Method::GET,
            &format!("{path}/schemas/{}/tables/none", enc(schema)),
            &tok,
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Change the source, discover again, diff.
    {
        let mut cat = f.catalog.lock().unwrap();
        let s0 = &mut cat.schemas[0];
        s0.tables.remove(0);
        let mut added = Table::new("new table", TableKind::View);
        added
            .columns
            .push(fake_driver::column("x", 1, "int", DataType::Int32));
        s0.tables.push(added);
        s0.tables[0].columns[1] = fake_driver::column("name", 2, "varchar(10)", DataType::String);
        s0.tables[0]
            .columns
            .push(fake_driver::column("added col", 4, "jsonb", DataType::Json));
        s0.tables[1].columns.pop();
    }
    let (s, job) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!((s, job["status"].as_str()), (202, Some("RUNNING")));
    let done = h.wait_discovery(tenant, &id, &tok).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let (s, diff) = h
        .call(Method::GET, &format!("{path}/schemas/diff"), &tok, None)
        .await;
    assert_eq!(s, 200, "{diff}");
    assert_eq!(
        diff["tablesAdded"],
        json!([{"schema": "schema 0 \"été\"", "table": "new table", "type": "VIEW"}])
    );
    assert_eq!(diff["tablesRemoved"][0]["table"], "T-0000 select");
    assert_eq!(diff["columnsAdded"][0]["column"], "added col");
    assert_eq!(diff["columnsRemoved"][0]["column"], "Order");
    assert_eq!(diff["columnsTypeChanged"][0]["fromType"], "text");
    assert_eq!(diff["columnsTypeChanged"][0]["toType"], "varchar(10)");
    assert!(diff["from"]["snapshotId"].is_string());

    // Bad new credentials: 422, the old ones are kept.
    let (s, e) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(json!({"credentials": {"username": "u-other", "password": "wrong-pass-XYZ1"}})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["code"], "CREDENTIALS_TEST_FAILED");
    assert_eq!(e["testResult"]["errorCode"], "AUTHENTICATION_FAILED");
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "old credentials still work");
    // Good new credentials.
    let (s, ok) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(json!({"credentials": {"username": "rotated-user-5", "password": GOOD_PASSWORD}})),
        )
        .await;
    assert_eq!((s, ok["status"].as_str()), (200, Some("ACTIVE")), "{ok}");

    // Disable, enable.
    let (s, off) = h
        .call(
            Method::PUT,
            &path,
            &tok,
            Some(json!({"status": "INACTIVE"})),
        )
        .await;
    assert_eq!(
        (s, off["status"].as_str()),
        (200, Some("INACTIVE")),
        "{off}"
    );
    // The update's one shape: the connector; disabling runs no test, so no testResult.
    assert_eq!(off["id"], id, "{off}");
    assert!(off.get("testResult").is_none(), "{off}");
    let (s, _) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!(s, 409);
    let (s, on) = h
        .call(
            Method::PUT,
            &path,
            &tok,
            Some(json!({"status": "ACTIVE", "name": "Renamed"})),
        )
        .await;
    assert_eq!(
        (s, on["status"].as_str(), on["name"].as_str()),
        (200, Some("ACTIVE"), Some("Renamed")),
        "{on}"
    );
    assert_eq!(on["testResult"]["success"], true, "{on}");
    assert_eq!(on["discoveryStatus"], "RUNNING", "{on}");
    let (s, e) = h
        .call(Method::PUT, &path, &tok, Some(json!({"status": "ERROR"})))
        .await;
    assert_eq!((s, e["code"].as_str()), (400, Some("INVALID_REQUEST")));
    h.wait_discovery(tenant, &id, &tok).await;

    // Delete: row, secret and catalog go.
    let secret_file = h
        .dir
        .join("secrets")
        .join("matih-flow")
        .join(format!("connector-{}.secret", &id[..8]));
    assert!(secret_file.exists());
    let (s, _) = h.call(Method::DELETE, &path, &tok, None).await;
    assert_eq!(s, 204);
    assert!(!secret_file.exists(), "secret removed");
    let (s, e) = h.call(Method::GET, &path, &tok, None).await;
    assert_eq!((s, e["code"].as_str()), (404, Some("NOT_FOUND")));
    let (_, tenant_now) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}"),
            &tok,
            None,
        )
        .await;
    assert_eq!(tenant_now["connectorCount"], 0);

    h.assert_no_leak(&[
        GOOD_PASSWORD,
        "wrong-pass-XYZ1",
        "reader-user-9",
        "rotated-user-5",
    ]);
}

#[tokio::test]
async fn failed_test_saves_error_and_slow_discovery_reports_running() {
    let f = fake(Duration::from_millis(200)).await;
    let h = &f.h;
    let tenant = h.create_tenant("errs", "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let (s, c) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(body("bad", "POSTGRESQL", f.port, "not-the-password-1")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "ERROR");
    assert_eq!(c["lastErrorCode"], "AUTHENTICATION_FAILED");
    assert_eq!(c["discoveryStatus"], "NOT_STARTED");
    assert!(c.get("schemasDiscovered").is_none());

    // Fixing the credentials makes it ACTIVE.
    let id = c["id"].as_str().unwrap();
    let (s, ok) = h
        .call(
            Method::PUT,
            &format!("{base}/{id}/credentials"),
            &tok,
            Some(json!({"credentials": {"username": "u", "password": GOOD_PASSWORD}})),
        )
        .await;
    assert_eq!((s, ok["status"].as_str()), (200, Some("ACTIVE")), "{ok}");

    // A closed port: CONNECTION_REFUSED, still saved as ERROR.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (s, c2) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(body("refused", "MYSQL", closed, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(
        (s, c2["lastErrorCode"].as_str()),
        (201, Some("CONNECTION_REFUSED")),
        "{c2}"
    );
    let id2 = c2["id"].as_str().unwrap().to_owned();
    h.call(Method::DELETE, &format!("{base}/{id2}"), &tok, None)
        .await;

    // Discovery slower than the create's wait: RUNNING, and a second request
    // returns the same job. The gate holds discovery until both are seen.
    f.gate.close();
    let (s, c3) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(body("slow", "POSTGRESQL", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(s, 201, "{c3}");
    assert_eq!(c3["discoveryStatus"], "RUNNING");
    let id3 = c3["id"].as_str().unwrap();
    let (s, again) = h
        .call(Method::POST, &format!("{base}/{id3}/discover"), &tok, None)
        .await;
    assert_eq!(s, 202);
    assert_eq!(again["id"], c3["discoveryJobId"]);
    assert_eq!(again["status"], "RUNNING");
    f.gate.open();
    let done = h.wait_discovery(tenant, id3, &tok).await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert_eq!(done["tablesDiscovered"], 6);
}

#[tokio::test]
async fn plan_limits_are_atomic_and_types_follow_the_plan() {
    let f = fake(Duration::from_secs(10)).await;
    let h = Arc::new(f.h);
    let tenant = h.create_tenant("free", "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");

    let (s, e) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(body("sf", "SNOWFLAKE", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (403, Some("PLAN_TYPE_NOT_ALLOWED")),
        "{e}"
    );
    assert!(e["message"].as_str().unwrap().contains("FREE"));

    let mut tasks = Vec::new();
    for i in 0..20 {
        let h = h.clone();
        let (tok, base, port) = (tok.clone(), base.clone(), f.port);
        tasks.push(tokio::spawn(async move {
            h.call(
                Method::POST,
                &base,
                &tok,
                Some(body(&format!("c{i}"), "POSTGRESQL", port, GOOD_PASSWORD)),
            )
            .await
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            201 => created += 1,
            403 => {
                assert_eq!(v["code"], "PLAN_LIMIT_EXCEEDED");
                assert!(
                    v["message"]
                        .as_str()
                        .unwrap()
                        .contains("FREE plan allows at most 2"),
                    "{v}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((created, refused), (2, 18));
    let (_, list) = h.call(Method::GET, &base, &tok, None).await;
    assert_eq!(list["total"], 2);
    let secrets = std::fs::read_dir(h.dir.join("secrets").join("matih-free"))
        .unwrap()
        .count();
    assert_eq!(secrets, 2, "no orphan secrets");

    // Deleting one frees a slot.
    let id = list["connectors"][0]["id"].as_str().unwrap();
    assert_eq!(
        h.call(Method::DELETE, &format!("{base}/{id}"), &tok, None)
            .await
            .0,
        204
    );
    assert_eq!(
        h.call(
            Method::POST,
            &base,
            &tok,
            Some(body("again", "MYSQL", f.port, GOOD_PASSWORD))
        )
        .await
        .0,
        201
    );

    // PROFESSIONAL: standard types, no custom; ENTERPRISE: custom too.
    let pro = h.create_tenant("pro", "PROFESSIONAL").await;
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{pro}/connectors"),
            &h.tenant_token(pro),
            Some(body("x", "ACME", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (403, Some("PLAN_TYPE_NOT_ALLOWED"))
    );
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{pro}/connectors"),
            &h.tenant_token(pro),
            Some(body("k", "KAFKA", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("DRIVER_UNAVAILABLE")),
        "a standard type passes the plan, then meets the build"
    );
    // Upgrading the tier (platform admin) opens custom types.
    let (s, t) = h
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{pro}/tier"),
            &h.platform_token(),
            Some(json!({"tier": "ENTERPRISE"})),
        )
        .await;
    assert_eq!((s, t["tier"].as_str()), (200, Some("ENTERPRISE")));
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{pro}/connectors"),
            &h.tenant_token(pro),
            Some(body("x", "ACME", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (201, Some("ACTIVE")), "{c}");
    // Same name twice in a tenant: 409, and no slot or secret is kept.
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{pro}/connectors"),
            &h.tenant_token(pro),
            Some(body("x", "ACME", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!((s, e["code"].as_str()), (409, Some("CONFLICT")));
    let (_, t) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{pro}"),
            &h.platform_token(),
            None,
        )
        .await;
    assert_eq!(t["connectorCount"], 1);
}

#[tokio::test]
async fn cross_tenant_requests_are_refused_on_every_route() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let a = h.create_tenant("tenant-a", "ENTERPRISE").await;
    let b = h.create_tenant("tenant-b", "ENTERPRISE").await;
    let (ta, tb) = (h.tenant_token(a), h.tenant_token(b));
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{b}/connectors"),
            &tb,
            Some(body("b1", "POSTGRESQL", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(s, 201);
    let cid = c["id"].as_str().unwrap().to_owned();
    let cb = json!({"credentials": {"username": "u", "password": GOOD_PASSWORD}});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{b}"), None),
        (Method::GET, format!("/api/v1/tenants/{b}/connectors"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/connectors"),
            Some(body("evil", "POSTGRESQL", f.port, GOOD_PASSWORD)),
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/connectors/{cid}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{b}/connectors/{cid}"),
            Some(json!({"status": "INACTIVE"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tenants/{b}/connectors/{cid}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/connectors/{cid}/test"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/connectors/{cid}/discover"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/connectors/{cid}/discover"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/connectors/{cid}/schemas"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/connectors/{cid}/schemas/diff"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tenants/{b}/connectors/{cid}/schemas/s/tables/t"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{b}/connectors/{cid}/credentials"),
            Some(cb.clone()),
        ),
        (
            Method::PUT,
            format!("/api/v1/tenants/{b}/tier"),
            Some(json!({"tier": "FREE"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/tenants/{b}/tier"),
            Some(json!({"tier": "FREE"})),
        ),
    ];
    for (m, p, body) in &routes {
        let (s, v) = h.call(m.clone(), p, &ta, body.clone()).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (404, Some("NOT_FOUND")),
            "{m} {p}: {v}"
        );
        // B's connector through A's own tenant path is not found either.
        let own = p.replace(&b.to_string(), &a.to_string());
        if own.contains(&cid) {
            let (s, v) = h.call(m.clone(), &own, &ta, body.clone()).await;
            assert_eq!(s, 404, "{m} {own}: {v}");
        }
    }
    // Platform-only routes refuse tenant admins.
    assert_eq!(
        h.call(Method::GET, "/api/v1/tenants", &ta, None).await.0,
        403
    );
    let (s, _) = h
        .call(
            Method::POST,
            "/api/v1/tenants",
            &ta,
            Some(json!({"name": "x", "slug": "x", "tier": "FREE"})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = h
        .call(
            Method::PUT,
            &format!("/api/v1/tenants/{a}/tier"),
            &ta,
            Some(json!({"tier": "ENTERPRISE"})),
        )
        .await;
    assert_eq!(s, 403, "a tenant admin cannot change its own plan");
    // Nothing of B changed.
    let (s, c) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{b}/connectors/{cid}"),
            &tb,
            None,
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("ACTIVE")));
    let (_, l) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{b}/connectors"),
            &tb,
            None,
        )
        .await;
    assert_eq!(l["total"], 1);
}

#[tokio::test]
async fn auth_and_one_error_shape_everywhere() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let tenant = h.create_tenant("errors", "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let check = |(s, text): (u16, String), want_status: u16, want_code: &str| {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert_eq!(
            (s, v["code"].as_str()),
            (want_status, Some(want_code)),
            "{text}"
        );
        assert!(v["message"].is_string());
    };
    check(
        h.raw(Method::GET, &base, None, None).await,
        401,
        "UNAUTHORIZED",
    );
    check(
        h.raw(Method::GET, &base, Some("not.a.jwt"), None).await,
        401,
        "UNAUTHORIZED",
    );
    let forged = matih_connector_service::auth::mint_hs256(
        b"some-other-secret-of-enough-length!!",
        matih_connector_service::auth::Role::PlatformAdmin,
        None,
        "x",
        60,
    );
    check(
        h.raw(Method::GET, &base, Some(&forged), None).await,
        401,
        "UNAUTHORIZED",
    );
    let expired = matih_connector_service::auth::mint_hs256(
        common::JWT_SECRET,
        matih_connector_service::auth::Role::PlatformAdmin,
        None,
        "x",
        -600,
    );
    check(
        h.raw(Method::GET, &base, Some(&expired), None).await,
        401,
        "UNAUTHORIZED",
    );
    check(
        h.raw(Method::POST, &base, Some(&tok), Some("{\"name\":".into()))
            .await,
        400,
        "MALFORMED_JSON",
    );
    check(
        h.raw(
            Method::POST,
            &base,
            Some(&tok),
            Some(r#"{"type":"POSTGRESQL","hots":"x"}"#.into()),
        )
        .await,
        422,
        "INVALID_REQUEST",
    );
    let leaky = r#"{"name":"n","type":"POSTGRESQL","credentials":"plain-secret-in-wrong-place"}"#;
    let (s, text) = h
        .raw(Method::POST, &base, Some(&tok), Some(leaky.into()))
        .await;
    assert_eq!(s, 422);
    assert!(!text.contains("plain-secret-in-wrong-place"), "{text}");
    let no_ct = h
        .client
        .post(format!("{}{base}", h.base))
        .bearer_auth(&tok)
        .body("{}")
        .send()
        .await
        .unwrap();
    let st = no_ct.status().as_u16();
    check(
        (st, no_ct.text().await.unwrap()),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(2 << 20));
    check(
        h.raw(Method::POST, &base, Some(&tok), Some(big)).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
    check(
        h.raw(Method::GET, "/api/v1/nothing", Some(&tok), None)
            .await,
        404,
        "ROUTE_NOT_FOUND",
    );
    check(
        h.raw(Method::PATCH, &base, Some(&tok), None).await,
        405,
        "METHOD_NOT_ALLOWED",
    );
    check(
        h.raw(Method::GET, &format!("{base}/not-a-uuid"), Some(&tok), None)
            .await,
        404,
        "NOT_FOUND",
    );
    check(
        h.raw(
            Method::GET,
            &format!("{base}/{}", Uuid::new_v4()),
            Some(&tok),
            None,
        )
        .await,
        404,
        "NOT_FOUND",
    );
    check(
        h.raw(Method::POST, &base, Some(&tok), Some(json!({"name": "n", "type": "POSTGRESQL", "credentials": {"username": "u"}, "port": 5432}).to_string())).await,
        400,
        "INVALID_CONFIGURATION",
    );
    check(
        h.raw(
            Method::POST,
            "/api/v1/tenants",
            Some(&h.platform_token()),
            Some(json!({"name": "x", "slug": "Not A Slug", "tier": "FREE"}).to_string()),
        )
        .await,
        400,
        "INVALID_REQUEST",
    );
    check(
        h.raw(
            Method::POST,
            "/api/v1/tenants",
            Some(&h.platform_token()),
            Some(json!({"name": "x", "slug": "errors", "tier": "FREE"}).to_string()),
        )
        .await,
        409,
        "CONFLICT",
    );
    h.assert_no_leak(&["plain-secret-in-wrong-place"]);
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_matches_the_routes() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    assert_eq!(h.raw(Method::GET, "/healthz", None, None).await.0, 200);
    let (s, r) = h.raw(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, 200, "{r}");
    let (s, doc) = h.raw(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push(format!("{} {path}", method.to_uppercase()));
                if !path.starts_with("/api/v1/tenants") {
                    continue;
                }
                // Every documented operation is a real route: without a token
                // it answers 401, never "no such route" or 405.
                let concrete = path
                    .replace("{tenant_id}", &Uuid::new_v4().to_string())
                    .replace("{connector_id}", &Uuid::new_v4().to_string())
                    .replace("{schema}", "s")
                    .replace("{table}", "t");
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (s, body) = h.raw(m, &concrete, None, Some("{}".into())).await;
                assert_eq!(s, 401, "{method} {path}: {body}");
            }
        }
    }
    // Every API route is documented (the seed's nine plus tenants and discovery).
    for want in [
        "GET /api/v1/tenants/{tenant_id}/connectors",
        "POST /api/v1/tenants/{tenant_id}/connectors",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}",
        "PUT /api/v1/tenants/{tenant_id}/connectors/{connector_id}",
        "DELETE /api/v1/tenants/{tenant_id}/connectors/{connector_id}",
        "POST /api/v1/tenants/{tenant_id}/connectors/{connector_id}/test",
        "POST /api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/diff",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/{schema}/tables/{table}",
        "PUT /api/v1/tenants/{tenant_id}/connectors/{connector_id}/credentials",
        "POST /api/v1/tenants",
        "GET /api/v1/tenants",
        "GET /api/v1/tenants/{tenant_id}",
        "PUT /api/v1/tenants/{tenant_id}/tier",
        "PATCH /api/v1/tenants/{tenant_id}/tier",
        "GET /api/v1/tenants/{tenant_id}/connectors/{connector_id}/health",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
    ] {
        assert!(
            documented.iter().any(|d| d == want),
            "{want} is not in the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every status a route can answer is documented: the shared set on every
    // operation, the body statuses on every operation with a body.
    for (path, item) in paths
        .iter()
        .filter(|(p, _)| p.starts_with("/api/v1/tenants"))
    {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "404", "429", "431", "500", "503", "504"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
        }
    }
    for name in [
        "TooManyRequests",
        "GatewayTimeout",
        "HeadersTooLarge",
        "Forbidden",
    ] {
        assert!(doc["components"]["responses"][name].is_object(), "{name}");
    }
    assert!(doc["components"]["responses"]["Forbidden"]["description"]
        .as_str()
        .unwrap()
        .contains("EGRESS_DENIED"));
    assert!(
        doc["components"]["responses"]["TooManyRequests"]["description"]
            .as_str()
            .unwrap()
            .contains("CONCURRENCY_LIMIT_EXCEEDED")
    );
    assert!(
        doc["components"]["responses"]["GatewayTimeout"]["description"]
            .as_str()
            .unwrap()
            .contains("REQUEST_TIMEOUT")
    );
    // The discover body is optional and, like every body, closed.
    let discover = &paths["/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover"]["post"];
    assert_ne!(
        discover["requestBody"]["required"],
        json!(true),
        "{discover}"
    );
    let schemas = &doc["components"]["schemas"];
    for closed in [
        "DiscoveryRequestDoc",
        "ConnectorSpec",
        "UpdateConnector",
        "UpdateCredentials",
        "CreateTenant",
    ] {
        assert_eq!(
            schemas[closed]["additionalProperties"],
            json!(false),
            "{closed}"
        );
    }
    // Request bounds the service enforces.
    assert_eq!(
        schemas["ConnectorSpec"]["properties"]["port"]["minimum"],
        json!(1)
    );
    assert_eq!(
        schemas["UpdateConnector"]["properties"]["port"]["minimum"],
        json!(1)
    );
    let limit = |path: &str| {
        paths[path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()["schema"]
            .clone()
    };
    let l = limit("/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas");
    assert_eq!(
        (l["minimum"].as_f64(), l["maximum"].as_f64()),
        (Some(1.0), Some(10000.0)),
        "{l}"
    );
    let l = limit("/api/v1/tenants/{tenant_id}/connectors/{connector_id}/health");
    assert_eq!(
        (l["minimum"].as_f64(), l["maximum"].as_f64()),
        (Some(1.0), Some(1000.0)),
        "{l}"
    );
    let (s, m) = h.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(s, 200);
    assert!(m.contains("matih_http_requests_total{"), "{m}");
    assert!(
        m.contains("route=\"/api/v1/tenants/{tenant_id}/connectors/{connector_id}\""),
        "route templates, not raw paths"
    );
}

#[tokio::test]
async fn reconcile_removes_orphan_secrets_and_recounts_slots() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let tenant = h.create_tenant("recon", "FREE").await;
    let tok = h.tenant_token(tenant);
    let c = created(&f, tenant, &tok, "kept").await;
    // What a crash between "secret written" and "row saved" leaves behind.
    let orphan = matih_connector_service::secrets::SecretRef::new(
        "matih-",
        "recon",
        Uuid::new_v4(),
        &matih_connector_core::ConnectorType::Mysql,
    );
    let creds = matih_connector_core::Credentials::new()
        .with("username", "u")
        .with("password", "p");
    h.state.secrets.create(&orphan, &creds).await.unwrap();
    // And what an older version's crash left: a slot counted with no row.
    h.state.store.set_slots(tenant, 2).await.unwrap();

    // Just written: it may be a create in flight on a replica that has not
    // named it yet, so it is left alone until it is older than the longest
    // create (MATIH_ORPHAN_SECRET_MIN_AGE_SECS, 900 s by default).
    let young = matih_connector_service::reconcile::reconcile(&h.state, true)
        .await
        .unwrap();
    assert!(young.orphan_secrets.is_empty(), "{young:?}");
    assert_eq!(young.recounted_tenants, 1, "the count is repaired at once");
    h.state.store.set_slots(tenant, 2).await.unwrap();
    let file = h
        .dir
        .join("secrets")
        .join("matih-recon")
        .join(format!("{}.secret", orphan.name));
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let dry = matih_connector_service::reconcile::reconcile(&h.state, false)
        .await
        .unwrap();
    assert_eq!(
        dry.orphan_secrets,
        vec![format!("matih-recon/{}", orphan.name)]
    );
    assert_eq!(dry.removed, 0);
    let done = matih_connector_service::reconcile::reconcile(&h.state, true)
        .await
        .unwrap();
    assert_eq!((done.removed, done.recounted_tenants), (1, 1));
    assert_eq!(
        h.state.secrets.list("matih-recon").await.unwrap(),
        vec![c["credentialSecretName"].as_str().unwrap().to_owned()]
    );
    assert_eq!(
        h.state
            .store
            .get_tenant(tenant)
            .await
            .unwrap()
            .unwrap()
            .connector_count,
        1
    );
}

/// The tenant is authorized before the body is read: another tenant's admin
/// gets 404 for any body (malformed, unknown fields, wrong types, no content
/// type), while the tenant's own admin gets the parse error for the same body.
#[tokio::test]
async fn rival_tenant_gets_404_before_its_body_is_parsed() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let a = h.create_tenant("rival-a", "ENTERPRISE").await;
    let b = h.create_tenant("rival-b", "ENTERPRISE").await;
    let (ta, tb) = (h.tenant_token(a), h.tenant_token(b));
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{b}/connectors"),
            &tb,
            Some(body("b1", "POSTGRESQL", f.port, GOOD_PASSWORD)),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let cid = c["id"].as_str().unwrap();
    let routes = [
        (Method::POST, format!("/api/v1/tenants/{b}/connectors")),
        (Method::PUT, format!("/api/v1/tenants/{b}/connectors/{cid}")),
        (
            Method::PUT,
            format!("/api/v1/tenants/{b}/connectors/{cid}/credentials"),
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{b}/connectors/{cid}/discover"),
        ),
        (Method::PATCH, format!("/api/v1/tenants/{b}/tier")),
    ];
    for (m, p) in &routes {
        for bad in [
            "{,}",
            "{\"name\":",
            r#"{"nosuchfield":1}"#,
            r#"{"tier":42}"#,
        ] {
            let (s, text) = h.raw(m.clone(), p, Some(&ta), Some(bad.into())).await;
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                (s, v["code"].as_str()),
                (404, Some("NOT_FOUND")),
                "{m} {p} {bad}: {text}"
            );
        }
        let no_ct = h
            .client
            .request(m.clone(), format!("{}{p}", h.base))
            .bearer_auth(&ta)
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            no_ct.status().as_u16(),
            404,
            "{m} {p} without a content type"
        );
    }
    // The owner (or, for the tier, the platform admin) gets the parse errors.
    let own = |m: &Method| {
        if *m == Method::PATCH {
            h.platform_token()
        } else {
            tb.clone()
        }
    };
    for (m, p) in &routes {
        let (s, text) = h.raw(m.clone(), p, Some(&own(m)), Some("{,}".into())).await;
        assert_eq!(s, 400, "{m} {p}: {text}");
        let (s, text) = h
            .raw(
                m.clone(),
                p,
                Some(&own(m)),
                Some(r#"{"nosuchfield":1}"#.into()),
            )
            .await;
        assert!(s == 422 || s == 400, "{m} {p}: {s} {text}");
    }
}

/// The `Bearer` scheme name is case-insensitive (RFC 7235); other schemes and
/// a missing token are refused.
#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let tok = h.platform_token();
    let get = |auth: String| {
        h.client
            .get(format!("{}/api/v1/tenants", h.base))
            .header("authorization", auth)
            .send()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = get(format!("{scheme} {tok}")).await.unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    for bad in [format!("Basic {tok}"), format!("Bearer{tok}"), tok.clone()] {
        let r = get(bad.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{bad:.12}");
    }
}

/// `/api/v1/docs` serves Swagger UI from the binary, pointed at the service's
/// own document, without a token and without any other host.
#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let (s, _) = h.raw(Method::GET, "/api/v1/docs", None, None).await;
    // A redirect to /api/v1/docs/ (followed or not by the test client).
    assert!(matches!(s, 200 | 301 | 303 | 307 | 308), "{s}");
    let (s, page) = h.raw(Method::GET, "/api/v1/docs/", None, None).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("swagger-ui"), "{page}");
    // Every script and style the page loads is served here, not from a CDN.
    let mut assets = 0;
    for asset in page
        .split(['"', '\''])
        .filter(|a| a.ends_with(".js") || a.ends_with(".css"))
    {
        assert!(
            !asset.contains("://"),
            "{asset} is loaded from another host"
        );
        let path = format!("/api/v1/docs/{}", asset.trim_start_matches("./"));
        let (s, body) = h.raw(Method::GET, &path, None, None).await;
        assert_eq!(s, 200, "{path}");
        assert!(body.len() > 100, "{path}: {} bytes", body.len());
        assets += 1;
    }
    assert!(assets >= 3, "{assets} scripts and styles in {page}");
    let (s, init) = h
        .raw(
            Method::GET,
            "/api/v1/docs/swagger-initializer.js",
            None,
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
    let (s, bundle) = h
        .raw(Method::GET, "/api/v1/docs/swagger-ui-bundle.js", None, None)
        .await;
    assert_eq!(s, 200);
    assert!(bundle.len() > 100_000, "{} bytes", bundle.len());
}

/// GET one answers the stored connector in its wire shape, byte for byte
/// (the cached store keeps its JSON between writes), only in its own tenant,
/// and the first GET after a write shows the write.
#[tokio::test]
async fn get_one_answers_the_stored_connector_and_follows_writes() {
    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let store = &h.state.store;
    let t = common::saved_tenant(&h.state, "get one").await;
    let other = common::saved_tenant(&h.state, "other").await;
    let to = common::Target {
        host: "127.0.0.1",
        port: f.port,
        database: "db",
        username: "u",
        password: GOOD_PASSWORD,
    };
    let c = common::saved_connector(
        &h.state,
        &t,
        "one",
        to,
        matih_connector_service::model::ConnectorStatus::Active,
    )
    .await;
    let get = |tenant: Uuid| {
        let token = h.tenant_token(tenant);
        let url = format!("{}/api/v1/tenants/{tenant}/connectors/{}", h.base, c.id);
        async move {
            let r = h.client.get(url).bearer_auth(token).send().await.unwrap();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), ct, r.text().await.unwrap())
        }
    };
    let stored = || async {
        let c = store.get_connector(t.id, c.id).await.unwrap().unwrap();
        serde_json::to_string(&c).unwrap()
    };
    for _ in 0..2 {
        let (s, ct, body) = get(t.id).await;
        assert_eq!((s, ct.as_str()), (200, "application/json"), "{body}");
        assert_eq!(body, stored().await);
    }
    let (s, _, body) = get(other.id).await;
    assert_eq!(s, 404, "another tenant's connector is not found: {body}");

    let renamed = matih_connector_service::model::Connector {
        name: "renamed".into(),
        ..store.get_connector(t.id, c.id).await.unwrap().unwrap()
    };
    assert!(store.update_connector(&renamed).await.unwrap());
    let (s, _, body) = get(t.id).await;
    assert_eq!(s, 200);
    assert_eq!(body, stored().await);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["name"],
        "renamed"
    );

    assert!(store.delete_connector(t.id, c.id).await.unwrap());
    let (s, _, body) = get(t.id).await;
    assert_eq!(s, 404, "{body}");
}

/// GET one connector is answered without axum's router (`App`); every answer,
/// the metrics it counts and the route it counts them under are the router's.
#[tokio::test]
async fn get_one_without_the_router_answers_as_the_router() {
    use axum::body::Body;
    use tower::ServiceExt;

    let f = fake(Duration::from_secs(10)).await;
    let h = &f.h;
    let tenant = h.create_tenant("shortcut", "PROFESSIONAL").await;
    let other = h.create_tenant("shortcut-other", "PROFESSIONAL").await;
    let tok = h.tenant_token(tenant);
    let c = created(&f, tenant, &tok, "one").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let app = matih_connector_service::app::app(h.state.clone());
    let path = format!("/api/v1/tenants/{tenant}/connectors/{id}");
    let cases: Vec<(String, Option<String>, u16)> = vec![
        (path.clone(), Some(format!("Bearer {tok}")), 200),
        (path.clone(), Some(format!("bearer  {tok}\t")), 200),
        (
            path.clone(),
            Some(format!("Bearer {}", h.tenant_token(other))),
            404,
        ),
        (
            path.clone(),
            Some(format!("Bearer {}", h.platform_token())),
            200,
        ),
        (path.clone(), None, 401),
        (path.clone(), Some("Basic abc".into()), 401),
        (path.clone(), Some(format!("Bearer {tok}x")), 401),
        (
            format!("/api/v1/tenants/{tenant}/connectors/{}", Uuid::new_v4()),
            Some(format!("Bearer {tok}")),
            404,
        ),
        (
            format!("/api/v1/tenants/{other}/connectors/{id}"),
            Some(format!("Bearer {tok}")),
            404,
        ),
    ];
    let counted = |m: &str, status: u16| -> u64 {
        let label = format!(
            "matih_http_requests_total{{method=\"GET\",route=\"/api/v1/tenants/{{tenant_id}}/connectors/{{connector_id}}\",status=\"{status}\"}} "
        );
        m.lines()
            .find_map(|l| l.strip_prefix(&label))
            .map_or(0, |n| n.trim().parse().unwrap())
    };
    for (uri, auth, want) in cases {
        let mut answers = Vec::new();
        for shortcut in [true, false] {
            let before = h.state.metrics.render();
            let mut req = axum::http::Request::get(&uri);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let req = req.body(Body::empty()).unwrap();
            let resp = if shortcut {
                app.clone().oneshot(req).await.unwrap()
            } else {
                app.router().clone().oneshot(req).await.unwrap()
            };
            let status = resp.status().as_u16();
            let headers = format!("{:?}", resp.headers());
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            let after = h.state.metrics.render();
            assert_eq!(
                counted(&after, status),
                counted(&before, status) + 1,
                "{uri} counted once under the route template"
            );
            answers.push((status, headers, bytes));
        }
        assert_eq!(answers[0].0, want, "{uri} {auth:?}");
        assert_eq!(answers[0], answers[1], "{uri} {auth:?}");
    }
}
