//! End-to-end over HTTP against the real PostgreSQL and MariaDB fixtures, with
//! the real drivers: on SQLite + local secrets (the embedded defaults), on the
//! PostgreSQL metadata store, and on the kubernetes secret store (through the
//! real kube client against the protocol-level stand-in in `common/kube_fake.rs`).
//!
//! Needs `cargo xtask fixtures up --only postgres,mysql,ssh` (the `ssh`
//! bastion for the tunnelled flow) and its `env` exported; skips otherwise
//! (fails under MATIH_REQUIRE_FIXTURES=1).

mod common;
mod seed_catalog;

use std::sync::Arc;

use base64::Engine;
use common::kube_fake::{FakeKube, TOKEN};
use common::{Harness, Options};
use matih_connector_service::secrets::kubernetes::KubernetesSecretStore;
use matih_connector_service::secrets::{SecretError, SecretRef, SecretStore};
use matih_connector_testkit::{fixture, Fixture};
use reqwest::Method;
use seed_catalog::{SeedSchema, MARIADB, POSTGRES};
use serde_json::{json, Value};
use sqlx::Connection;
use uuid::Uuid;

fn pct(s: &str) -> String {
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

/// The create body for a fixture, with its real credentials.
fn spec(fx: &Fixture, name: &str) -> Value {
    let (ty, extra) = match fx.name() {
        "POSTGRES" => (
            "POSTGRESQL",
            json!({"sslMode": "verify-full", "sslCaPem": fx.read_file("CA_FILE")}),
        ),
        _ => ("MYSQL", json!({"sslEnabled": false})),
    };
    let mut v = json!({
        "name": name, "type": ty, "host": fx.require("HOST"), "port": fx.port(),
        "database": fx.require("DATABASE"),
        "credentials": {"username": fx.require("USER"), "password": fx.require("PASSWORD")},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn registry() -> matih_connector_core::Registry {
    matih_connectors::registry()
}

/// The seed's catalog for a fixture, and whether the discovery holds nothing
/// else: the PostgreSQL connector sees only its own database, `matih_seed`; the
/// MariaDB login sees every database on the server, where other tools (the
/// discovery bench) may have left theirs.
fn seed(fx: &Fixture) -> (&'static [SeedSchema], bool) {
    match fx.name() {
        "POSTGRES" => (POSTGRES, true),
        _ => (MARIADB, false),
    }
}

/// The stored catalog, through `…/schemas?include=columns` and the per-table
/// route, is the seed's, schema by schema and table by table.
async fn assert_seeded_catalog(h: &Harness, fx: &Fixture, path: &str, tok: &str) {
    let (want, only_seed) = seed(fx);
    // Schemas and tables in name order (byte order), as the API documents.
    let mut want: Vec<&SeedSchema> = want.iter().collect();
    want.sort_by_key(|s| s.name);
    let (cat, pages) = catalog_pages(h, path, tok).await;
    if only_seed {
        assert_eq!(pages, 1, "the seed's catalog fits one page: {cat}");
    }
    let schemas = cat["schemas"].as_array().unwrap();
    let got_names: Vec<&str> = schemas
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let want_names: Vec<&str> = want.iter().map(|s| s.name).collect();
    if only_seed {
        assert_eq!(got_names, want_names, "schemas");
        let tables: usize = want.iter().map(|s| s.tables.len()).sum();
        assert_eq!(cat["totalSchemas"], want.len(), "{cat}");
        assert_eq!(cat["totalTables"], tables, "{cat}");
    } else {
        let seeded: Vec<&str> = got_names
            .iter()
            .copied()
            .filter(|n| want_names.contains(n))
            .collect();
        assert_eq!(
            seeded, want_names,
            "the seed's schemas, in order: {got_names:?}"
        );
    }
    for ws in want {
        let gs = schemas.iter().find(|s| s["name"] == ws.name).unwrap();
        let mut want_tables: Vec<_> = ws.tables.iter().collect();
        want_tables.sort_by_key(|t| t.name);
        let got_tables = gs["tables"].as_array().unwrap();
        let got_table_names: Vec<&str> = got_tables
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        let want_table_names: Vec<&str> = want_tables.iter().map(|t| t.name).collect();
        assert_eq!(got_table_names, want_table_names, "{}: tables", ws.name);
        for (wt, gt) in want_tables.iter().zip(got_tables) {
            let at = format!("{}.{}", ws.name, wt.name);
            assert_eq!(gt["type"], wt.kind, "{at}: kind");
            assert_eq!(gt["columns"], wt.columns.len(), "{at}: column count");
            let summary_columns = &gt["columnDetails"];
            assert_columns(&at, summary_columns, wt.columns);

            let (s, d) = h
                .call(
                    Method::GET,
                    &format!("{path}/schemas/{}/tables/{}", pct(ws.name), pct(wt.name)),
                    tok,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{at}: {d}");
            assert_eq!(d["schema"], ws.name, "{at}");
            let table = &d["table"];
            assert_eq!(table["name"], wt.name, "{at}");
            assert_eq!(table["type"], wt.kind, "{at}: kind");
            assert_eq!(
                table["primaryKey"],
                json!(wt.primary_key),
                "{at}: primary key"
            );
            assert_columns(&at, &table["columns"], wt.columns);
            assert_eq!(
                &table["columns"], summary_columns,
                "{at}: the table route and include=columns agree"
            );
        }
    }
}

/// `…/schemas?include=columns`, page after page (a page ends after `limit`
/// tables, possibly inside a schema), as one listing: the last page's totals
/// and the schemas with their tables joined, and the number of pages.
async fn catalog_pages(h: &Harness, path: &str, tok: &str) -> (Value, usize) {
    let mut schemas: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            None => format!("{path}/schemas?include=columns"),
            Some(c) => format!("{path}/schemas?include=columns&cursor={}", pct(c)),
        };
        let (s, mut page) = h.call(Method::GET, &url, tok, None).await;
        assert_eq!(s, 200, "{page}");
        pages += 1;
        assert!(pages <= 1_000, "the listing does not end: {page}");
        for schema in page["schemas"].as_array_mut().unwrap().drain(..) {
            match schemas.last_mut() {
                Some(last) if last["name"] == schema["name"] => {
                    let more = schema["tables"].as_array().unwrap().clone();
                    last["tables"].as_array_mut().unwrap().extend(more);
                }
                _ => schemas.push(schema),
            }
        }
        cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            page["schemas"] = Value::Array(schemas);
            return (page, pages);
        }
    }
}

fn assert_columns(at: &str, got: &Value, want: &[seed_catalog::Col]) {
    let got = got
        .as_array()
        .unwrap_or_else(|| panic!("{at}: no columns in {got}"));
    let names: Vec<&str> = got.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let want_names: Vec<&str> = want.iter().map(|c| c.0).collect();
    assert_eq!(names, want_names, "{at}: columns in ordinal order");
    for (i, (c, (name, native, normalized, nullable))) in got.iter().zip(want).enumerate() {
        let at = format!("{at}.{name}");
        assert_eq!(c["ordinal"], i + 1, "{at}: ordinal");
        assert_eq!(c["nativeType"], *native, "{at}: native type");
        assert_eq!(c["dataType"], *normalized, "{at}: normalized type");
        assert_eq!(c["nullable"], *nullable, "{at}: nullable");
    }
}

/// tenant → token → create (ACTIVE, counts) → test → discover → schemas → bad
/// new credentials (422, old kept) → good new credentials → delete (secret gone).
/// Returns the secret's namespace and name for store-specific checks.
async fn flow(
    h: &Harness,
    fx: &Fixture,
    slug: &str,
    secret_gone: impl AsyncFn(&str, &str) -> bool,
) {
    let tenant = h.create_tenant(slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");

    let (s, c) = h
        .call(
            Method::POST,
            &base,
            &tok,
            Some(spec(fx, &format!("{} seed", fx.name()))),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "ACTIVE", "{c}");
    assert_eq!(c["lastTestResult"], "Connection successful");
    assert_eq!(c["discoveryStatus"], "SUCCEEDED", "{c}");
    let (want, only_seed) = seed(fx);
    let want_tables: usize = want.iter().map(|s| s.tables.len()).sum();
    let (schemas, tables) = (
        c["schemasDiscovered"].as_u64().unwrap() as usize,
        c["tablesDiscovered"].as_u64().unwrap() as usize,
    );
    if only_seed {
        assert_eq!((schemas, tables), (want.len(), want_tables), "{c}");
    } else {
        assert!(schemas >= want.len() && tables >= want_tables, "{c}");
    }
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/{id}");
    let ns = format!("matih-{slug}");
    let secret_name = c["credentialSecretName"].as_str().unwrap().to_owned();
    assert_eq!(secret_name, format!("connector-{}", &id[..8]));

    let (s, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!((s, t["success"].as_bool()), (200, Some(true)), "{t}");
    let version = t["serverVersion"].as_str().unwrap();
    assert!(version.len() > 2);
    if fx.name() == "MYSQL" {
        // The expected native types are MariaDB's spelling (the fixture's server).
        assert!(
            version.contains("MariaDB"),
            "the MYSQL fixture is MariaDB: {version}"
        );
    }
    assert_eq!(t["connectorId"], id);

    let (s, _) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!(s, 202);
    let job = h.wait_discovery(tenant, &id, &tok).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");

    assert_seeded_catalog(h, fx, &path, &tok).await;

    // The seed's schemas only: other runs may add their own.
    let want_schema = if fx.name() == "POSTGRES" {
        "sales"
    } else {
        "matih_seed"
    };
    let (s, diff) = h
        .call(Method::GET, &format!("{path}/schemas/diff"), &tok, None)
        .await;
    assert_eq!(s, 200);
    let seed_added: Vec<&Value> = diff["tablesAdded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["schema"] == want_schema)
        .collect();
    assert!(
        seed_added.is_empty(),
        "the seed did not change between the two discoveries: {seed_added:?}"
    );

    let bad = json!({"credentials": {"username": fx.require("USER"), "password": "definitely-wrong-pw-1"}});
    let (s, e) = h
        .call(Method::PUT, &format!("{path}/credentials"), &tok, Some(bad))
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["testResult"]["errorCode"], "AUTHENTICATION_FAILED", "{e}");
    // The user name is kept in the message for the administrator; the
    // password is not (assert_no_leak below).
    let login_message = e["testResult"]["message"].as_str().unwrap_or_default();
    assert!(login_message.contains(fx.require("USER")), "{e}");
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "the old credentials are kept: {t}");

    let good = json!({"credentials": {"username": fx.require("USER"), "password": fx.require("PASSWORD")}});
    let (s, ok) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(good),
        )
        .await;
    assert_eq!((s, ok["status"].as_str()), (200, Some("ACTIVE")), "{ok}");

    assert!(
        !secret_gone(&ns, &secret_name).await,
        "the secret exists before delete"
    );
    let (s, _) = h.call(Method::DELETE, &path, &tok, None).await;
    assert_eq!(s, 204);
    assert!(
        secret_gone(&ns, &secret_name).await,
        "delete removes the secret"
    );
    assert_eq!(h.call(Method::GET, &path, &tok, None).await.0, 404);
}

fn local_secret_gone(h: &Harness) -> impl AsyncFn(&str, &str) -> bool + '_ {
    async move |ns: &str, name: &str| {
        !h.dir
            .join("secrets")
            .join(ns)
            .join(format!("{name}.secret"))
            .exists()
    }
}

#[tokio::test]
async fn postgres_and_mariadb_flow_on_sqlite_and_local_secrets() {
    let Some(pg) = fixture(
        "POSTGRES",
        "postgres_and_mariadb_flow_on_sqlite_and_local_secrets",
    ) else {
        return;
    };
    let Some(my) = fixture(
        "MYSQL",
        "postgres_and_mariadb_flow_on_sqlite_and_local_secrets",
    ) else {
        return;
    };
    let h = Harness::start(Options {
        registry: registry(),
        ..Default::default()
    })
    .await;
    flow(&h, &pg, "pg-local", local_secret_gone(&h)).await;
    flow(&h, &my, "my-local", local_secret_gone(&h)).await;
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
    ]);
}

/// A fresh database on the PostgreSQL fixture, dropped on drop.
struct FreshDb {
    admin_url: String,
    name: String,
    url: String,
}

impl FreshDb {
    async fn create(fx: &Fixture) -> FreshDb {
        let su = fx.require("SUPERUSER");
        let pw = fx
            .get("SUPERUSER_PASSWORD")
            .unwrap_or_else(|| fx.require("PASSWORD"));
        let (host, port) = (fx.require("HOST"), fx.port());
        let admin_url = format!("postgres://{}:{}@{host}:{port}/postgres", pct(su), pct(pw));
        let name = format!("matih_svc_{}", Uuid::new_v4().simple());
        let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
            .await
            .expect("superuser connection");
        // A generated identifier of [a-z0-9_]: nothing user-supplied reaches this DDL.
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let url = format!("postgres://{}:{}@{host}:{port}/{name}", pct(su), pct(pw));
        FreshDb {
            admin_url,
            name,
            url,
        }
    }

    async fn drop_db(self) {
        if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::raw_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
        }
    }

    /// Every row of every service table as JSON text.
    async fn dump(&self) -> String {
        let mut conn = sqlx::postgres::PgConnection::connect(&self.url)
            .await
            .unwrap();
        let mut out = String::new();
        for t in [
            "tenants",
            "connectors",
            "discovery_jobs",
            "catalog_snapshots",
        ] {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT row_to_json(x)::text FROM {t} x"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            out.extend(rows.into_iter().map(|r| r.0));
        }
        out
    }
}

#[tokio::test]
async fn flow_on_the_postgres_metadata_store() {
    let Some(pg) = fixture("POSTGRES", "flow_on_the_postgres_metadata_store") else {
        return;
    };
    let Some(my) = fixture("MYSQL", "flow_on_the_postgres_metadata_store") else {
        return;
    };
    let db = FreshDb::create(&pg).await;
    let h = Harness::start(Options {
        registry: registry(),
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(h.state.store.backend(), "postgres");
    flow(&h, &pg, "pg-on-pg", local_secret_gone(&h)).await;
    flow(&h, &my, "my-on-pg", local_secret_gone(&h)).await;

    // 20 concurrent creates by a FREE tenant against the real server: exactly 2.
    let tenant = h.create_tenant("free-pg", "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let h = Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (h, tok, base, body) = (
            h.clone(),
            tok.clone(),
            base.clone(),
            spec(&pg, &format!("c{i}")),
        );
        tasks.push(tokio::spawn(async move {
            h.call(Method::POST, &base, &tok, Some(body)).await
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(
            s == 201 || (s == 403 && v["code"] == "PLAN_LIMIT_EXCEEDED"),
            "{s} {v}"
        );
        codes.push(s);
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 2);
    let (_, list) = h.call(Method::GET, &base, &tok, None).await;
    assert_eq!(list["total"], 2);
    assert_eq!(
        std::fs::read_dir(h.dir.join("secrets").join("matih-free-pg"))
            .unwrap()
            .count(),
        2,
        "no orphan secrets"
    );

    let dump = db.dump().await;
    assert!(dump.contains("connector-"), "the dump has the connectors");
    for secret in [
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
    ] {
        assert!(
            !dump.contains(secret),
            "a credential value is in the metadata database"
        );
    }
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
    ]);
    db.drop_db().await;
}

async fn kube_store(k: &FakeKube, token: &str) -> KubernetesSecretStore {
    let url = k.serve().await;
    let dir = common::temp_dir("kube");
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    KubernetesSecretStore::connect(Some(&url), Some(&token_file))
        .await
        .unwrap()
}

#[tokio::test]
async fn flow_on_the_kubernetes_secret_store() {
    let Some(pg) = fixture("POSTGRES", "flow_on_the_kubernetes_secret_store") else {
        return;
    };
    let Some(my) = fixture("MYSQL", "flow_on_the_kubernetes_secret_store") else {
        return;
    };
    common::init();
    let k = FakeKube::default();
    let store = kube_store(&k, TOKEN).await;
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(Arc::new(store)),
        ..Default::default()
    })
    .await;
    assert_eq!(h.state.secrets.kind(), "kubernetes");

    // The secret in the seed's shape, seen from the API server's side.
    let tenant = h.create_tenant("kube-shape", "FREE").await;
    let tok = h.tenant_token(tenant);
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&pg, "shape")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap();
    let secret = k
        .secret("matih-kube-shape", &format!("connector-{}", &id[..8]))
        .expect("secret in the tenant namespace");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["labels"]["matih.ai/connector-id"], id);
    assert_eq!(
        secret["metadata"]["labels"]["matih.ai/connector-type"],
        "postgresql"
    );
    let b64 = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(b64("username"), pg.require("USER"));
    assert_eq!(b64("password"), pg.require("PASSWORD"));
    assert!(secret.get("stringData").is_none());
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/connectors/{id}"),
            &tok,
            None
        )
        .await
        .0,
        204
    );

    let gone = async |ns: &str, name: &str| k.secret(ns, name).is_none();
    flow(&h, &pg, "pg-kube", gone).await;
    flow(&h, &my, "my-kube", gone).await;
    assert_eq!(k.count(), 0, "no secret left behind");
    let reqs = k.0.lock().unwrap().requests.clone();
    assert!(
        reqs.iter().any(|r| r.starts_with("PUT ")),
        "credentials are replaced with a PUT: {reqs:?}"
    );

    // RBAC refuses: create answers 503 SECRET_STORE_UNAVAILABLE, saves nothing
    // and keeps no slot.
    let tenant = h.create_tenant("kube-denied", "FREE").await;
    let tok = h.tenant_token(tenant);
    k.0.lock().unwrap().forbid = true;
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&pg, "denied")),
        )
        .await;
    k.0.lock().unwrap().forbid = false;
    assert_eq!(
        (s, e["code"].as_str()),
        (503, Some("SECRET_STORE_UNAVAILABLE")),
        "{e}"
    );
    assert!(
        !e["message"].as_str().unwrap().contains("forbidden"),
        "5xx bodies say nothing internal"
    );
    let (_, t) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}"),
            &tok,
            None,
        )
        .await;
    assert_eq!(t["connectorCount"], 0);
    let (_, l) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            None,
        )
        .await;
    assert_eq!(l["total"], 0);
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
    ]);
}

/// The store against the stand-in directly: status codes map to the right errors.
#[tokio::test]
async fn kubernetes_store_maps_api_statuses() {
    common::init();
    let k = FakeKube::default();
    let store = kube_store(&k, TOKEN).await;
    let ty = matih_connector_core::ConnectorType::Mysql;
    let r = SecretRef::new("matih-", "acme", Uuid::new_v4(), &ty);
    let creds = matih_connector_core::Credentials::new()
        .with("username", "u")
        .with("password", "p-ü-\"quoted\"");
    store.create(&r, &creds).await.unwrap();
    assert!(
        matches!(
            store.create(&r, &creds).await,
            Err(SecretError::AlreadyExists(_))
        ),
        "409 AlreadyExists"
    );
    assert_eq!(
        store.get(&r).await.unwrap(),
        creds,
        "non-ASCII and quotes survive base64"
    );
    assert_eq!(
        store.list("matih-acme").await.unwrap(),
        vec![r.name.clone()]
    );
    let rotated = matih_connector_core::Credentials::new()
        .with("username", "u2")
        .with("password", "p2");
    store.replace(&r, &rotated).await.unwrap();
    assert_eq!(store.get(&r).await.unwrap(), rotated);
    let before = k.secret("matih-acme", &r.name).unwrap()["metadata"]["resourceVersion"].clone();
    assert_ne!(before, Value::Null);
    store.delete(&r).await.unwrap();
    store.delete(&r).await.unwrap();
    assert!(
        matches!(store.get(&r).await, Err(SecretError::NotFound(_))),
        "404 NotFound"
    );
    let wrong = kube_store(&FakeKube::default(), "wrong-token").await;
    assert!(
        matches!(wrong.create(&r, &creds).await, Err(SecretError::Denied(_))),
        "401"
    );
    k.0.lock().unwrap().forbid = true;
    assert!(
        matches!(store.get(&r).await, Err(SecretError::Denied(_))),
        "403"
    );
    // A PUT carrying a stale resourceVersion is refused with 409 Conflict, so
    // concurrent credential swaps cannot silently overwrite each other.
    k.0.lock().unwrap().forbid = false;
    store.create(&r, &creds).await.unwrap();
    let mut cfg = kube::Config::new(k.serve().await.parse().unwrap());
    cfg.auth_info.token = Some(TOKEN.to_owned().into());
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(kube::Client::try_from(cfg).unwrap(), "matih-acme");
    let stale = api.get(&r.name).await.unwrap();
    store.replace(&r, &rotated).await.unwrap();
    let err = api
        .replace(&r.name, &Default::default(), &stale)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    assert_eq!(store.get(&r).await.unwrap(), rotated);
}

/// The base64 body lines of a PEM/OpenSSH private key: what a leak would show.
fn key_body_lines(key: &str) -> Vec<&str> {
    let lines: Vec<&str> = key
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
        .collect();
    assert!(!lines.is_empty(), "a key with base64 body lines");
    lines
}

fn step_names(report: &Value) -> Vec<&str> {
    report["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {report}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// A PostgreSQL connector on the tunnel-only address (127.0.0.2, denied to
/// the service's egress policy) through the real OpenSSH bastion: create
/// (ACTIVE, the test's steps include `ssh`), test, discover (the seed's
/// catalog), rotate the SSH key with `PUT …/credentials` (an unauthorized
/// key: 422 AUTHENTICATION_FAILED and the old key kept; the user's second
/// authorized key, RSA PEM: 200 and stored), delete; no key material in the
/// metadata database, the secret file, the logs or the responses.
#[tokio::test]
async fn tunnelled_connector_flow_with_key_rotation() {
    let test = "tunnelled_connector_flow_with_key_rotation";
    let (Some(pg), Some(ssh)) = (fixture("POSTGRES", test), fixture("SSH", test)) else {
        return;
    };
    let h = Harness::start(Options {
        registry: registry(),
        egress: Some(matih_connector_testkit::tunnel::denying_the_target(&ssh)),
        ..Default::default()
    })
    .await;
    let slug = "pg-ssh";
    let tenant = h.create_tenant(slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");

    let key = ssh.read_file("KEY_FILE");
    let second_key = ssh.read_file("PEM_KEY_FILE");
    let wrong_key = ssh.read_file("UNAUTHORIZED_KEY_FILE");
    let creds = |k: &str| {
        json!({"username": pg.require("USER"), "password": pg.require("PASSWORD"),
               "sshPrivateKey": k})
    };

    // The same target without the tunnel is refused by the egress policy.
    let mut direct = spec(&pg, "direct");
    direct["host"] = json!(ssh.require("TARGET_HOST"));
    direct["sslMode"] = json!("verify-ca");
    let (s, e) = h.call(Method::POST, &base, &tok, Some(direct)).await;
    assert_eq!(
        (s, e["code"].as_str(), e["step"].as_str()),
        (403, Some("EGRESS_DENIED"), Some("dns")),
        "only the tunnel reaches 127.0.0.2: {e}"
    );

    let mut body = spec(&pg, "through the bastion");
    body["host"] = json!(ssh.require("TARGET_HOST"));
    body["sslMode"] = json!("verify-ca");
    body["credentials"] = creds(&key);
    body["metadata"] = json!({"sshTunnel": {
        "host": ssh.require("HOST"), "port": ssh.port(),
        "username": ssh.require("KEY_USER"), "hostKey": ssh.require("HOST_KEY")}});
    let (s, c) = h.call(Method::POST, &base, &tok, Some(body)).await;
    assert_eq!(s, 201, "{c}");
    // A Python connector's start-up alone can pass the WARNING latency.
    assert!(c["status"] == "ACTIVE" || c["status"] == "WARNING", "{c}");
    assert_eq!(c["lastTestResult"], "Connection successful", "{c}");
    assert_eq!(c["discoveryStatus"], "SUCCEEDED", "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/{id}");
    let secret_file = h
        .dir
        .join("secrets")
        .join(format!("matih-{slug}"))
        .join(format!(
            "{}.secret",
            c["credentialSecretName"].as_str().unwrap()
        ));

    let (s, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!((s, t["success"].as_bool()), (200, Some(true)), "{t}");
    assert_eq!(
        step_names(&t),
        [
            "validate",
            "dns",
            "tcp",
            "ssh",
            "connect",
            "server_version",
            "access_probe"
        ],
        "{t}"
    );

    let (s, _) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!(s, 202);
    let job = h.wait_discovery(tenant, &id, &tok).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    assert_seeded_catalog(&h, &pg, &path, &tok).await;

    // An unauthorized key: refused at the ssh step, the old key kept.
    let (s, e) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(json!({"credentials": creds(&wrong_key)})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(
        (
            e["testResult"]["errorCode"].as_str(),
            e["testResult"]["failedStep"].as_str()
        ),
        (Some("AUTHENTICATION_FAILED"), Some("ssh")),
        "{e}"
    );
    let secret_ref = SecretRef::new(
        "matih-",
        slug,
        id.parse().unwrap(),
        &matih_connector_core::ConnectorType::Postgresql,
    );
    let stored_key = async || {
        h.state
            .secrets
            .get(&secret_ref)
            .await
            .unwrap()
            .get("sshPrivateKey")
            .map(|k| k.expose().to_owned())
    };
    assert_eq!(stored_key().await.as_deref(), Some(key.as_str()));
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "the old key is kept: {t}");

    // The user's second authorized key (RSA, PEM): validated, then swapped in.
    let (s, ok) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(json!({"credentials": creds(&second_key)})),
        )
        .await;
    assert_eq!((s, ok["status"].as_str()), (200, Some("ACTIVE")), "{ok}");
    assert_eq!(stored_key().await.as_deref(), Some(second_key.as_str()));
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "through the rotated key: {t}");
    assert!(step_names(&t).contains(&"ssh"), "{t}");

    // At rest the secret file is ciphertext.
    let at_rest = String::from_utf8_lossy(&std::fs::read(&secret_file).unwrap()).into_owned();
    assert!(
        !at_rest.contains("PRIVATE KEY"),
        "the secret file is encrypted"
    );
    for line in key_body_lines(&second_key) {
        assert!(!at_rest.contains(line), "the secret file is encrypted");
    }

    let (s, _) = h.call(Method::DELETE, &path, &tok, None).await;
    assert_eq!(s, 204);
    assert!(!secret_file.exists(), "delete removes the secret");
    assert_eq!(h.call(Method::GET, &path, &tok, None).await.0, 404);

    let mut secrets = vec!["PRIVATE KEY", pg.require("PASSWORD")];
    for k in [&key, &second_key, &wrong_key] {
        secrets.extend(key_body_lines(k));
    }
    h.assert_no_leak(&secrets);
}

// ---------------------------------------------------------------------------
// The vault store (OpenBao in dev mode) and the aws-secrets-manager store
// (moto). Each test reads the secret back from the server itself, at the
// documented path, with its own client.

/// The fixture's root token: what a Vault admin (and the test) reads with.
struct VaultAdmin {
    addr: String,
    token: String,
    http: reqwest::Client,
}

impl VaultAdmin {
    fn new(fx: &Fixture) -> VaultAdmin {
        VaultAdmin {
            addr: fx.require("ADDR").to_owned(),
            token: fx.require("TOKEN").to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("x-vault-token", &self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("vault request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A token holding only the service's policy.
    async fn service_token(&self, fx: &Fixture, ttl: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "auth/token/create",
                Some(json!({"policies": [fx.require("POLICY")], "ttl": ttl, "no_default_policy": true})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// An AppRole with the service's policy and the given token lifetime:
    /// (role id, secret id).
    async fn approle(&self, fx: &Fixture, name: &str, ttl: &str) -> (String, String) {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("auth/approle/role/{name}"),
                Some(json!({"token_policies": [fx.require("POLICY")], "token_ttl": ttl, "token_max_ttl": ttl})),
            )
            .await;
        assert!(s == 204 || s == 200, "{v}");
        let (_, v) = self
            .call(
                Method::GET,
                &format!("auth/approle/role/{name}/role-id"),
                None,
            )
            .await;
        let role_id = v["data"]["role_id"].as_str().unwrap().to_owned();
        let (_, v) = self
            .call(
                Method::POST,
                &format!("auth/approle/role/{name}/secret-id"),
                Some(json!({})),
            )
            .await;
        (role_id, v["data"]["secret_id"].as_str().unwrap().to_owned())
    }

    /// The KV v2 secret of `<slug>`'s connector at the documented path.
    async fn kv(&self, slug: &str, name: &str) -> (u16, Value) {
        self.call(
            Method::GET,
            &format!("secret/data/matih/{slug}/{name}"),
            None,
        )
        .await
    }

    async fn kv_metadata(&self, slug: &str, name: &str) -> (u16, Value) {
        self.call(
            Method::GET,
            &format!("secret/metadata/matih/{slug}/{name}"),
            None,
        )
        .await
    }
}

fn vault_settings(
    fx: &Fixture,
    auth: matih_connector_service::secrets::vault::VaultAuth,
) -> matih_connector_service::secrets::vault::VaultSettings {
    matih_connector_service::secrets::vault::VaultSettings {
        addr: fx.require("ADDR").to_owned(),
        ca_pem: None,
        auth,
        kv_mount: fx.require("KV_MOUNT").to_owned(),
        namespace_prefix: "matih-".into(),
        timeout: std::time::Duration::from_secs(10),
    }
}

fn vault_store(
    fx: &Fixture,
    auth: matih_connector_service::secrets::vault::VaultAuth,
) -> Arc<matih_connector_service::secrets::vault::VaultSecretStore> {
    Arc::new(
        matih_connector_service::secrets::vault::VaultSecretStore::new(&vault_settings(fx, auth))
            .unwrap(),
    )
}

/// A tenant slug no earlier run on a long-lived fixture used.
fn fresh_slug(tag: &str) -> String {
    format!("{tag}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// The seed's flow on the vault store, logged in with a policy-limited token
/// and with AppRole: the secret at `secret/data/matih/<slug>/connector-<id8>`
/// holds exactly the credentials and carries the labels as custom metadata;
/// bad credentials 422 and the old kept; delete removes every version and
/// the metadata; no credential in the metadata database, logs or responses.
#[tokio::test]
async fn flow_on_the_vault_store_with_token_and_approle() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let test = "flow_on_the_vault_store_with_token_and_approle";
    let (Some(vault), Some(pg), Some(my)) = (
        fixture("VAULT", test),
        fixture("POSTGRES", test),
        fixture("MYSQL", test),
    ) else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let token = admin.service_token(&vault, "1h").await;
    let store = vault_store(&vault, VaultAuth::Token(token.clone().into()));
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(store),
        ..Default::default()
    })
    .await;
    assert_eq!(h.state.secrets.kind(), "vault");

    // The secret's shape, read back from OpenBao at the documented path.
    let slug = fresh_slug("vshape");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&pg, "shape")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "ACTIVE", "{c}");
    let id = c["id"].as_str().unwrap();
    let name = format!("connector-{}", &id[..8]);
    let (s, v) = admin.kv(&slug, &name).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"]["data"],
        json!({"username": pg.require("USER"), "password": pg.require("PASSWORD")})
    );
    let (_, m) = admin.kv_metadata(&slug, &name).await;
    let labels = &m["data"]["custom_metadata"];
    assert_eq!(labels["matih.ai/connector-id"], id, "{m}");
    assert_eq!(labels["matih.ai/connector-type"], "postgresql", "{m}");
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/connectors/{id}"),
            &tok,
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        admin.kv_metadata(&slug, &name).await.0,
        404,
        "no version and no metadata left"
    );

    let gone = async |ns: &str, name: &str| {
        let slug = ns.strip_prefix("matih-").unwrap();
        admin.kv_metadata(slug, name).await.0 == 404
    };
    flow(&h, &pg, &fresh_slug("vpg"), gone).await;
    flow(&h, &my, &fresh_slug("vmy"), gone).await;
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
        &token,
    ]);

    // The same flow logged in with AppRole (the fixture's role).
    let approle = vault_store(
        &vault,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: vault.require("ROLE_ID").to_owned(),
            secret_id: vault.require("SECRET_ID").into(),
        },
    );
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(approle.clone()),
        ..Default::default()
    })
    .await;
    flow(&h, &pg, &fresh_slug("vapp"), gone).await;
    assert!(
        approle.client().token_accessor().await.is_some(),
        "logged in"
    );
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        "definitely-wrong-pw-1",
        vault.require("SECRET_ID"),
    ]);
}

/// The store against OpenBao directly: an existing path is AlreadyExists, a
/// missing one NotFound, a token without the policy Denied, and listing sees
/// only the tenant's connector secrets.
#[tokio::test]
async fn vault_store_maps_answers() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let Some(vault) = fixture("VAULT", "vault_store_maps_answers") else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let store = vault_store(
        &vault,
        VaultAuth::Token(admin.service_token(&vault, "1h").await.into()),
    );
    let slug = fresh_slug("vmap");
    let ty = matih_connector_core::ConnectorType::Mysql;
    let r = SecretRef::new("matih-", &slug, Uuid::new_v4(), &ty);
    let creds = matih_connector_core::Credentials::new()
        .with("username", "u")
        .with("password", "p-ü-\"quoted\"");
    assert!(matches!(store.get(&r).await, Err(SecretError::NotFound(_))));
    assert!(matches!(
        store.replace(&r, &creds).await,
        Err(SecretError::NotFound(_))
    ));
    store.create(&r, &creds).await.unwrap();
    assert!(matches!(
        store.create(&r, &creds).await,
        Err(SecretError::AlreadyExists(_))
    ));
    assert_eq!(store.get(&r).await.unwrap(), creds);
    assert_eq!(
        store.list(&format!("matih-{slug}")).await.unwrap(),
        vec![r.name.clone()]
    );
    let aged = store.list_with_age(&format!("matih-{slug}")).await.unwrap();
    assert!(aged[0].1.is_some(), "Vault reports when it was written");
    let rotated = matih_connector_core::Credentials::new().with("password", "p2");
    store.replace(&r, &rotated).await.unwrap();
    assert_eq!(
        store.get(&r).await.unwrap(),
        rotated,
        "the whole secret is replaced"
    );
    let (_, m) = admin.kv_metadata(&slug, &r.name).await;
    assert_eq!(m["data"]["current_version"], 2);

    // A token without the policy: refused.
    let (_, v) = admin
        .call(
            Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["default"], "ttl": "10m"})),
        )
        .await;
    let weak = vault_store(
        &vault,
        VaultAuth::Token(v["auth"]["client_token"].as_str().unwrap().into()),
    );
    assert!(matches!(weak.get(&r).await, Err(SecretError::Denied(_))));
    // A wrong secret id: refused at login.
    let bad = vault_store(
        &vault,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: vault.require("ROLE_ID").to_owned(),
            secret_id: "not-the-secret-id".into(),
        },
    );
    assert!(matches!(bad.get(&r).await, Err(SecretError::Denied(_))));

    store.delete(&r).await.unwrap();
    store.delete(&r).await.unwrap();
    assert!(matches!(store.get(&r).await, Err(SecretError::NotFound(_))));
    assert!(store
        .list(&format!("matih-{slug}"))
        .await
        .unwrap()
        .is_empty());
}

/// A Vault in front of which requests stop being answered after `allowed`
/// of them (503, as a sealed or failing Vault answers), until reopened.
#[derive(Clone)]
struct FlakyVault {
    target: String,
    allowed: Arc<std::sync::atomic::AtomicI64>,
}

impl FlakyVault {
    async fn serve(target: &str) -> (FlakyVault, String) {
        let me = FlakyVault {
            target: target.to_owned(),
            allowed: Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = me.clone();
        let router = axum::Router::new()
            .fallback(Self::forward)
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (me, addr)
    }

    fn allow(&self, n: i64) {
        self.allowed.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    async fn forward(
        axum::extract::State(me): axum::extract::State<FlakyVault>,
        req: axum::extract::Request,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        if me.allowed.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) <= 0 {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"errors": ["Vault is sealed"]})),
            )
                .into_response();
        }
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let method = Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
        let mut rb = reqwest::Client::new().request(
            method,
            format!("{}{}", me.target, parts.uri.path_and_query().unwrap()),
        );
        for (k, v) in parts.headers.iter() {
            if k != "host" {
                rb = rb.header(k.as_str(), v.as_bytes());
            }
        }
        let resp = rb.body(body.to_vec()).send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            bytes.to_vec(),
        )
            .into_response()
    }
}

/// Vault stops answering in the middle of a create, after the secret's data
/// was written and before its labels: the create answers 503
/// SECRET_STORE_UNAVAILABLE with no connector row and no plan slot taken;
/// the half-made secret, which could not be removed while Vault was down,
/// is removed by the next reconciliation once Vault answers again.
#[tokio::test]
async fn vault_down_mid_create_leaves_no_row_and_no_secret() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let test = "vault_down_mid_create_leaves_no_row_and_no_secret";
    let (Some(vault), Some(pg)) = (fixture("VAULT", test), fixture("POSTGRES", test)) else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let (flaky, addr) = FlakyVault::serve(vault.require("ADDR")).await;
    let mut settings = vault_settings(
        &vault,
        VaultAuth::Token(admin.service_token(&vault, "1h").await.into()),
    );
    settings.addr = addr;
    let store = Arc::new(
        matih_connector_service::secrets::vault::VaultSecretStore::new(&settings).unwrap(),
    );
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(store.clone()),
        orphan_secret_min_age: Some(std::time::Duration::ZERO),
        ..Default::default()
    })
    .await;
    // Logged in before the create, so the create's first call is the write.
    store.client().check().await.unwrap();
    let slug = fresh_slug("vdown");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    flaky.allow(1);
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&pg, "mid-create")),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (503, Some("SECRET_STORE_UNAVAILABLE")),
        "{e}"
    );
    let (_, l) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            None,
        )
        .await;
    assert_eq!(l["total"], 0, "no connector row: {l}");
    let (_, t) = h
        .call(
            Method::GET,
            &format!("/api/v1/tenants/{tenant}"),
            &tok,
            None,
        )
        .await;
    assert_eq!(t["connectorCount"], 0);
    // The data write got through: one secret is left in the tenant's folder.
    let (s, listed) = admin
        .call(
            Method::from_bytes(b"LIST").unwrap(),
            &format!("secret/metadata/matih/{slug}"),
            None,
        )
        .await;
    assert_eq!(
        s, 200,
        "the half-made secret is there while Vault is down: {listed}"
    );
    assert_eq!(listed["data"]["keys"].as_array().unwrap().len(), 1);

    flaky.allow(i64::MAX);
    let report = matih_connector_service::reconcile::reconcile(&h.state, true)
        .await
        .unwrap();
    assert_eq!(report.removed, 1, "{report:?}");
    let (s, listed) = admin
        .call(
            Method::from_bytes(b"LIST").unwrap(),
            &format!("secret/metadata/matih/{slug}"),
            None,
        )
        .await;
    assert_eq!(s, 404, "no orphan secret left: {listed}");
    h.assert_no_leak(&[pg.require("PASSWORD")]);
}

/// A service token that lives two seconds: once OpenBao has expired it
/// (seen by the admin's lookup failing), the next test logs in again with
/// AppRole and succeeds; a token revoked by an admin is replaced the same way.
#[tokio::test]
async fn vault_token_expiry_is_survived_by_login_again() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let test = "vault_token_expiry_is_survived_by_login_again";
    let (Some(vault), Some(pg)) = (fixture("VAULT", test), fixture("POSTGRES", test)) else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let (role_id, secret_id) = admin.approle(&vault, "matih-short", "2s").await;
    let store = vault_store(
        &vault,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: secret_id.clone().into(),
        },
    );
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(store.clone()),
        ..Default::default()
    })
    .await;
    let slug = fresh_slug("vttl");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&pg, "short token")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let path = format!(
        "/api/v1/tenants/{tenant}/connectors/{}",
        c["id"].as_str().unwrap()
    );

    let first = store.client().token_accessor().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (s, _) = admin
            .call(
                Method::POST,
                "auth/token/lookup-accessor",
                Some(json!({"accessor": first})),
            )
            .await;
        if s != 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "after the token expired: {t}");
    let second = store.client().token_accessor().await.unwrap();
    assert_ne!(first, second, "a new login");

    // Revoked by an admin (Vault answers 403 to it): logged in again.
    let (s, v) = admin
        .call(
            Method::POST,
            "auth/token/revoke-accessor",
            Some(json!({"accessor": second})),
        )
        .await;
    assert!(s == 204 || s == 200, "{v}");
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], true, "after the token was revoked: {t}");
    assert_ne!(store.client().token_accessor().await.unwrap(), second);
    assert_eq!(h.call(Method::DELETE, &path, &tok, None).await.0, 204);
    h.assert_no_leak(&[pg.require("PASSWORD"), &secret_id]);
}

/// Signed calls to moto's Secrets Manager, independent of the store: the
/// admin's view of a secret by its documented name.
async fn sm_admin(fx: &Fixture, action: &str, body: Value) -> (u16, Value) {
    sm_admin_as(fx, "SECRETS_", action, body).await
}

/// The same with the fixture's `<user>ACCESS_KEY_ID` key (`ROTATOR_` may
/// turn rotation on, which the service's own key may not).
async fn sm_admin_as(fx: &Fixture, user: &str, action: &str, body: Value) -> (u16, Value) {
    use matih_connector_core::aws::{sigv4_headers, Keys, ToSign};
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{}/", fx.port())).unwrap();
    let payload = body.to_string();
    let target = format!("secretsmanager.{action}");
    let keys = Keys {
        access_key_id: fx.require(&format!("{user}ACCESS_KEY_ID")).into(),
        secret_access_key: fx.require(&format!("{user}SECRET_ACCESS_KEY")).into(),
        session_token: None,
    };
    let ct = "application/x-amz-json-1.1";
    let signed = sigv4_headers(
        &keys,
        fx.require("REGION"),
        "secretsmanager",
        ToSign {
            method: "POST",
            url: &url,
            headers: &[("content-type", ct), ("x-amz-target", &target)],
            body: payload.as_bytes(),
        },
        action,
    )
    .unwrap();
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("content-type", ct)
        .header("x-amz-target", &target);
    for (k, v) in signed {
        rb = rb.header(k.as_str(), v.as_bytes());
    }
    let resp = rb.body(payload).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A `ResourceNotFoundException` answer (400 from AWS, 404 from moto).
fn sm_not_found(status: u16, v: &Value) -> bool {
    (400..500).contains(&status)
        && v["__type"]
            .as_str()
            .unwrap_or_default()
            .contains("ResourceNotFound")
}

/// The store with the fixture's `<user>ACCESS_KEY_ID` key, its endpoint
/// given in `endpoint_var` (the service's own or the generic AWS variable).
fn sm_store(
    fx: &Fixture,
    user: &str,
    endpoint_var: &str,
) -> Arc<matih_connector_service::secrets::aws::AwsSecretsManagerStore> {
    let var = |k: &str| fx.require(&format!("{user}{k}")).to_owned();
    let vars = std::collections::BTreeMap::from([
        ("AWS_REGION".to_owned(), fx.require("REGION").to_owned()),
        (
            endpoint_var.to_owned(),
            format!("http://127.0.0.1:{}", fx.port()),
        ),
        ("AWS_ACCESS_KEY_ID".to_owned(), var("ACCESS_KEY_ID")),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), var("SECRET_ACCESS_KEY")),
    ]);
    let settings = matih_connector_service::secrets::aws::AwsSmSettings::from_vars(
        &vars,
        "matih-",
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    Arc::new(matih_connector_service::secrets::aws::AwsSecretsManagerStore::new(&settings).unwrap())
}

/// The seed's flow on the aws-secrets-manager store (moto, IAM enforced):
/// the secret named `matih/<slug>/connector-<id8>` holds the credentials as
/// JSON with the labels as tags, and is gone after delete; a key without
/// permissions is Denied.
#[tokio::test]
async fn flow_on_the_aws_secrets_manager_store() {
    let test = "flow_on_the_aws_secrets_manager_store";
    let (Some(aws), Some(pg), Some(my)) = (
        fixture("S3", test),
        fixture("POSTGRES", test),
        fixture("MYSQL", test),
    ) else {
        return;
    };
    common::init();
    let store = sm_store(&aws, "SECRETS_", "AWS_ENDPOINT_URL_SECRETS_MANAGER");
    let h = Harness::start(Options {
        registry: registry(),
        secrets: Some(store.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(h.state.secrets.kind(), "aws-secrets-manager");

    let slug = fresh_slug("smshape");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(spec(&my, "shape")),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_str().unwrap();
    let name = format!("matih/{slug}/connector-{}", &id[..8]);
    let (s, v) = sm_admin(&aws, "GetSecretValue", json!({"SecretId": name})).await;
    assert_eq!(s, 200, "{v}");
    let value: Value = serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap();
    assert_eq!(
        value,
        json!({"username": my.require("USER"), "password": my.require("PASSWORD")})
    );
    let (_, d) = sm_admin(&aws, "DescribeSecret", json!({"SecretId": name})).await;
    let tags: std::collections::BTreeMap<String, String> = d["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(tags["matih.ai/connector-id"], id, "{d}");
    assert_eq!(tags["matih.ai/connector-type"], "mysql", "{d}");
    assert_eq!(
        h.call(
            Method::DELETE,
            &format!("/api/v1/tenants/{tenant}/connectors/{id}"),
            &tok,
            None
        )
        .await
        .0,
        204
    );
    let (s, v) = sm_admin(&aws, "DescribeSecret", json!({"SecretId": name})).await;
    assert!(sm_not_found(s, &v), "gone after delete: {s} {v}");

    let gone = async |ns: &str, name: &str| {
        let slug = ns.strip_prefix("matih-").unwrap();
        let (s, v) = sm_admin(
            &aws,
            "DescribeSecret",
            json!({"SecretId": format!("matih/{slug}/{name}")}),
        )
        .await;
        sm_not_found(s, &v)
    };
    flow(&h, &pg, &fresh_slug("smpg"), gone).await;
    flow(&h, &my, &fresh_slug("smmy"), gone).await;

    // Listing for the reconciler: only the tenant's connector secrets.
    let r = SecretRef::new(
        "matih-",
        &slug,
        Uuid::new_v4(),
        &matih_connector_core::ConnectorType::Mysql,
    );
    let creds = matih_connector_core::Credentials::new().with("password", "sm-ü-\"q\"");
    store.create(&r, &creds).await.unwrap();
    assert!(matches!(
        store.create(&r, &creds).await,
        Err(SecretError::AlreadyExists(_))
    ));
    assert_eq!(store.get(&r).await.unwrap(), creds);
    let listed = store.list_with_age(&format!("matih-{slug}")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, r.name);
    store.delete(&r).await.unwrap();
    store.delete(&r).await.unwrap();
    assert!(matches!(store.get(&r).await, Err(SecretError::NotFound(_))));

    // A key without Secrets Manager permissions.
    let weak = sm_store(&aws, "NOPRIV_", "AWS_ENDPOINT_URL");
    assert!(matches!(weak.get(&r).await, Err(SecretError::Denied(_))));
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        my.require("PASSWORD"),
        "definitely-wrong-pw-1",
        aws.require("SECRETS_SECRET_ACCESS_KEY"),
    ]);
}

/// The user names the fixture's Vault roles recorded as issued (their
/// creation statements insert into `vault_issued`; see the vault fixture).
async fn vault_issued(fx: &Fixture) -> std::collections::BTreeSet<String> {
    if fx.name() == "POSTGRES" {
        let url = format!(
            "postgres://{}:{}@{}:{}/postgres",
            pct(fx.require("SUPERUSER")),
            pct(fx.require("SUPERUSER_PASSWORD")),
            fx.require("HOST"),
            fx.port()
        );
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM public.vault_issued UNION SELECT '' WHERE to_regclass('public.vault_issued') IS NULL",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        rows.into_iter()
            .map(|r| r.0)
            .filter(|n| !n.is_empty())
            .collect()
    } else {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_conn(fx).await;
        let rows: Vec<String> = conn
            .query("SELECT name FROM mysql.vault_issued")
            .await
            .unwrap_or_default();
        rows.into_iter().collect()
    }
}

async fn mysql_conn(fx: &Fixture) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(fx.require("HOST"))
        .tcp_port(fx.port())
        .user(Some(fx.require("USER")))
        .pass(Some(fx.require("PASSWORD")));
    mysql_async::Conn::new(opts).await.unwrap()
}

/// Which of `names` can still log in (a role or user the database knows).
async fn live_logins(fx: &Fixture, names: &[String]) -> Vec<String> {
    let mut live = Vec::new();
    if fx.name() == "POSTGRES" {
        let url = format!(
            "postgres://{}:{}@{}:{}/postgres",
            pct(fx.require("SUPERUSER")),
            pct(fx.require("SUPERUSER_PASSWORD")),
            fx.require("HOST"),
            fx.port()
        );
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        for n in names {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT rolname::text FROM pg_roles WHERE rolname = $1")
                    .bind(n)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
            live.extend(found.map(|f| f.0));
        }
    } else {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_conn(fx).await;
        for n in names {
            let found: Option<String> = conn
                .exec_first("SELECT User FROM mysql.user WHERE User = ?", (n.as_str(),))
                .await
                .unwrap();
            live.extend(found);
        }
    }
    live
}

/// Dynamic credentials on PostgreSQL and MariaDB: a connector whose secret
/// is only `{"vaultDatabaseRole": …}` is created ACTIVE (its test report
/// starts with a timed `credentials` step), tested, discovered and checked
/// by a health sweep; each use issued a new `v-…` login in the database
/// (recorded by the role's creation statement), none of which can still log
/// in afterwards, and Vault holds no live lease for the role. The secret in
/// Vault holds the role name only.
#[tokio::test]
async fn dynamic_vault_credentials_on_postgres_and_mariadb() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let test = "dynamic_vault_credentials_on_postgres_and_mariadb";
    let (Some(vault), Some(pg), Some(my)) = (
        fixture("VAULT", test),
        fixture("POSTGRES", test),
        fixture("MYSQL", test),
    ) else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let store = vault_store(
        &vault,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: vault.require("ROLE_ID").to_owned(),
            secret_id: vault.require("SECRET_ID").into(),
        },
    );
    let h = store_harness(store, None).await;
    for (fx, role) in [
        (&pg, vault.require("PG_ROLE")),
        (&my, vault.require("MYSQL_ROLE")),
    ] {
        let before = vault_issued(fx).await;
        let slug = fresh_slug("vdyn");
        let tenant = h.create_tenant(&slug, "FREE").await;
        let tok = h.tenant_token(tenant);
        let mut body = spec(fx, "dynamic");
        body["credentials"] = json!({ "vaultDatabaseRole": role });
        let (s, c) = h
            .call(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/connectors"),
                &tok,
                Some(body),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        assert_eq!(c["status"], "ACTIVE", "{c}");
        assert_eq!(c["testResult"]["steps"][0]["name"], "credentials", "{c}");
        assert_eq!(c["testResult"]["steps"][0]["success"], true, "{c}");
        assert!(c["testResult"]["steps"][0]["latencyMs"].is_u64(), "{c}");
        let id = c["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/tenants/{tenant}/connectors/{id}");
        let job = h.wait_discovery(tenant, &id, &tok).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");

        let (_, t) = h
            .call(Method::POST, &format!("{path}/test"), &tok, None)
            .await;
        assert_eq!(t["success"], true, "{t}");
        assert_eq!(step_names(&t)[0], "credentials", "{t}");
        let (s, _) = h
            .call(Method::POST, &format!("{path}/discover"), &tok, None)
            .await;
        assert_eq!(s, 202);
        let job = h.wait_discovery(tenant, &id, &tok).await;
        assert_eq!(job["status"], "SUCCEEDED", "{job}");
        assert!(job["tablesDiscovered"].as_u64().unwrap_or(0) > 0, "{job}");

        let monitor = matih_connector_service::health::HealthMonitor::new(
            h.state.clone(),
            dynamic_health_settings(),
            Arc::new(matih_connector_service::health::LogNotifier),
            None,
        )
        .unwrap();
        let swept = monitor.sweep().await.unwrap();
        assert_eq!((swept.checked, swept.active), (1, 1), "{swept:?}");

        // The secret holds the role, no password.
        let (_, v) = admin.kv(&slug, &format!("connector-{}", &id[..8])).await;
        assert_eq!(v["data"]["data"], json!({ "vaultDatabaseRole": role }));

        let issued: Vec<String> = vault_issued(fx)
            .await
            .difference(&before)
            .cloned()
            .collect();
        assert!(
            issued.len() >= 5,
            "a login per use (create test, create discovery, test, discovery, sweep): {issued:?}"
        );
        assert!(issued.iter().all(|n| n.starts_with("v-")), "{issued:?}");
        assert_eq!(
            live_logins(fx, &issued).await,
            Vec::<String>::new(),
            "every issued login was revoked"
        );
        let (s, leases) = admin
            .call(
                Method::from_bytes(b"LIST").unwrap(),
                &format!("sys/leases/lookup/database/creds/{role}"),
                None,
            )
            .await;
        assert!(
            s == 404
                || leases["data"]["keys"]
                    .as_array()
                    .is_some_and(|k| k.is_empty()),
            "no live lease: {s} {leases}"
        );
        assert_eq!(h.call(Method::DELETE, &path, &tok, None).await.0, 204);
    }

    // The role deleted in Vault: the test stops at `credentials` with
    // AUTHENTICATION_FAILED naming Vault; a mount the policy does not cover:
    // PERMISSION_DENIED naming Vault.
    let (_, pg_role) = admin
        .call(
            Method::GET,
            &format!("database/roles/{}", vault.require("PG_ROLE")),
            None,
        )
        .await;
    let doomed = format!("doomed-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let (s, v) = admin
        .call(
            Method::POST,
            &format!("database/roles/{doomed}"),
            Some(json!({
                "db_name": pg_role["data"]["db_name"],
                "creation_statements": pg_role["data"]["creation_statements"],
                "default_ttl": "5m",
            })),
        )
        .await;
    assert!(s == 204 || s == 200, "{v}");
    // The fixture's connection allows only its own role: allow this one too.
    let (_, conn) = admin
        .call(Method::GET, "database/config/postgres", None)
        .await;
    let mut allowed: Vec<Value> = conn["data"]["allowed_roles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    allowed.push(json!(doomed));
    let (s, v) = admin
        .call(
            Method::POST,
            "database/config/postgres",
            Some(json!({"allowed_roles": allowed})),
        )
        .await;
    assert!(s == 204 || s == 200, "{v}");
    let slug = fresh_slug("vgone");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let mut body = spec(&pg, "role to delete");
    body["credentials"] = json!({ "vaultDatabaseRole": doomed });
    let (s, c) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/connectors"),
            &tok,
            Some(body),
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (201, Some("ACTIVE")), "{c}");
    let path = format!(
        "/api/v1/tenants/{tenant}/connectors/{}",
        c["id"].as_str().unwrap()
    );
    let (s, v) = admin
        .call(Method::DELETE, &format!("database/roles/{doomed}"), None)
        .await;
    assert!(s == 204 || s == 200, "{v}");
    let (_, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!(t["success"], false, "{t}");
    assert_eq!(t["errorCode"], "AUTHENTICATION_FAILED", "{t}");
    assert_eq!(step_names(&t), vec!["credentials"], "{t}");
    let message = t["message"].as_str().unwrap();
    assert!(
        message.contains("Vault") && message.contains(&doomed),
        "{message}"
    );

    let (s, e) = h
        .call(
            Method::PUT,
            &format!("{path}/credentials"),
            &tok,
            Some(json!({"credentials": {
                "vaultDatabaseRole": vault.require("PG_ROLE"),
                "vaultDatabaseMount": "not-granted",
            }})),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["testResult"]["errorCode"], "PERMISSION_DENIED", "{e}");
    assert!(
        e["testResult"]["message"]
            .as_str()
            .unwrap()
            .contains("Vault"),
        "{e}"
    );
    assert_eq!(h.call(Method::DELETE, &path, &tok, None).await.0, 204);
    h.assert_no_leak(&[vault.require("SECRET_ID")]);
}

/// The real drivers on `secrets` (and the metadata store at `database_url`,
/// else SQLite), with a WARNING latency threshold of ten minutes: a Vault or
/// AWS round trip per test is slow on a loaded machine, and on every path
/// (create, test, sweep) only what a test looks at may make a connector
/// WARNING.
async fn store_harness(
    secrets: Arc<dyn matih_connector_service::secrets::SecretStore>,
    database_url: Option<String>,
) -> Harness {
    Harness::start(Options {
        registry: registry(),
        secrets: Some(secrets),
        database_url,
        thresholds: Some(matih_connector_service::connection_test::Thresholds {
            warning_ms: 600_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
}

/// Keeps every notice handed to it: what the tenant admin would receive.
#[derive(Default)]
struct Inbox(std::sync::Mutex<Vec<(String, Value)>>);

#[async_trait::async_trait]
impl matih_connector_service::health::Notifier for Inbox {
    fn name(&self) -> &'static str {
        "inbox"
    }
    async fn deliver(&self, n: &matih_connector_service::health::Notice) -> Result<(), String> {
        let body = serde_json::from_str(&n.body).map_err(|e| e.to_string())?;
        self.0.lock().unwrap().push((n.kind.clone(), body));
        Ok(())
    }
}

impl Inbox {
    fn taken(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// An instant `days` from now, to the second, as people write `expires_at`.
fn days_ahead(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sweeps once and delivers what it queued: (sweep stats, notices delivered).
async fn sweep_and_deliver(
    monitor: &matih_connector_service::health::HealthMonitor,
) -> (matih_connector_service::health::SweepStats, usize) {
    let stats = monitor.sweep().await.unwrap();
    (stats, monitor.deliver_pending().await.unwrap())
}

/// A static credential in Vault whose `custom_metadata.expires_at` (set the
/// way docs/operations.md tells a Vault admin: a metadata patch) is three
/// days ahead turns its connector WARNING at the next health check, with the
/// date and the days left in the message, and the tenant admin gets exactly
/// one `connector.credentials_expiring` notice over two sweeps (and none
/// again after an ERROR and recovery with the same date); a credential
/// expiring in 30 days stays ACTIVE; a new date is announced once more.
#[tokio::test]
async fn vault_expires_at_three_days_ahead_warns_once() {
    use matih_connector_service::secrets::vault::VaultAuth;
    let test = "vault_expires_at_three_days_ahead_warns_once";
    let (Some(vault), Some(pg)) = (fixture("VAULT", test), fixture("POSTGRES", test)) else {
        return;
    };
    common::init();
    let admin = VaultAdmin::new(&vault);
    let store = vault_store(
        &vault,
        VaultAuth::Token(admin.service_token(&vault, "1h").await.into()),
    );
    // Only the expiry can make these WARNING (default window, seven days).
    let h = store_harness(store, None).await;
    let slug = fresh_slug("vexp");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let mut ids = Vec::new();
    for name in ["expires soon", "expires later"] {
        let (s, c) = h
            .call(Method::POST, &base, &tok, Some(spec(&pg, name)))
            .await;
        assert_eq!((s, c["status"].as_str()), (201, Some("ACTIVE")), "{c}");
        let id = c["id"].as_str().unwrap().to_owned();
        h.wait_discovery(tenant, &id, &tok).await;
        ids.push(id);
    }
    let (soon, later) = (&ids[0], &ids[1]);
    // What a Vault admin runs: `bao kv metadata patch
    // -custom-metadata=expires_at=<date> secret/matih/<slug>/connector-<id8>`.
    let patch = async |id: &str, at: &str| {
        let resp = admin
            .http
            .patch(format!(
                "{}/v1/secret/metadata/matih/{slug}/connector-{}",
                admin.addr,
                &id[..8]
            ))
            .header("x-vault-token", &admin.token)
            .header("content-type", "application/merge-patch+json")
            .body(json!({"custom_metadata": {"expires_at": at}}).to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    };
    let soon_at = days_ahead(3);
    patch(soon, &soon_at).await;
    patch(later, &days_ahead(30)).await;
    // The patch kept the labels beside the date.
    let (_, m) = admin
        .kv_metadata(&slug, &format!("connector-{}", &soon[..8]))
        .await;
    assert_eq!(
        m["data"]["custom_metadata"]["matih.ai/connector-id"],
        soon.as_str(),
        "{m}"
    );
    assert_eq!(
        m["data"]["custom_metadata"]["expires_at"],
        soon_at.as_str(),
        "{m}"
    );

    let inbox = Arc::new(Inbox::default());
    let monitor = matih_connector_service::health::HealthMonitor::new(
        h.state.clone(),
        dynamic_health_settings(),
        inbox.clone(),
        None,
    )
    .unwrap();
    let note = format!("credentials expire {soon_at} (in 3 days)");
    let get = async |id: &str| {
        h.call(Method::GET, &format!("{base}/{id}"), &tok, None)
            .await
            .1
    };

    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!(
        (swept.checked, swept.warning, swept.active, delivered),
        (2, 1, 1, 1),
        "{swept:?}"
    );
    let c = get(soon).await;
    assert_eq!(c["status"], "WARNING", "{c}");
    let result = c["lastTestResult"].as_str().unwrap();
    assert!(result.ends_with(&note), "{result}");
    let c = get(later).await;
    assert_eq!(
        c["status"], "ACTIVE",
        "30 days ahead, outside the window: {c}"
    );
    assert!(
        !c["lastTestResult"].as_str().unwrap().contains("expire"),
        "{c}"
    );

    // The second sweep sees the same date: still WARNING, nothing new queued.
    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!(
        (swept.checked, swept.warning, delivered),
        (2, 1, 0),
        "{swept:?}"
    );
    let notices = inbox.taken();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (kind, body) = &notices[0];
    assert_eq!(kind, "connector.credentials_expiring");
    assert_eq!(body["connectorId"], soon.as_str(), "{body}");
    assert_eq!(body["tenantId"], tenant.to_string(), "{body}");
    assert_eq!(body["status"], "WARNING", "{body}");
    assert_eq!(body["expiryKind"], "EXPIRES", "{body}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap());
    assert_eq!(
        expires_at.unwrap(),
        chrono::DateTime::parse_from_rfc3339(&soon_at).unwrap(),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().ends_with(&note), "{body}");

    // WARNING → ERROR → WARNING with the same date: the error and recovery
    // notices, and no second expiry notice. A Vault admin writes a wrong
    // password as a new version (custom metadata untouched), then the right
    // one again.
    let write = async |password: &str| {
        let (s, v) = admin
            .call(
                Method::POST,
                &format!("secret/data/matih/{slug}/connector-{}", &soon[..8]),
                Some(json!({"data": {"username": pg.require("USER"), "password": password}})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    };
    write("definitely-wrong-pw-2").await;
    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!(
        (swept.error, swept.warning, delivered),
        (1, 0, 1),
        "{swept:?}"
    );
    write(pg.require("PASSWORD")).await;
    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!(
        (swept.error, swept.warning, delivered),
        (0, 1, 1),
        "{swept:?}"
    );
    let kinds: Vec<String> = inbox.taken().into_iter().map(|n| n.0).collect();
    assert_eq!(kinds, ["connector.error", "connector.recovered"]);

    // A manual test says the same.
    let (s, t) = h
        .call(Method::POST, &format!("{base}/{soon}/test"), &tok, None)
        .await;
    assert_eq!((s, &t["success"]), (200, &json!(true)), "{t}");
    assert!(t["message"].as_str().unwrap().ends_with(&note), "{t}");

    // The credential replaced with a new date two days ahead: one more notice.
    let next_at = days_ahead(2);
    patch(soon, &next_at).await;
    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!((swept.warning, delivered), (1, 1), "{swept:?}");
    let (swept, delivered) = sweep_and_deliver(&monitor).await;
    assert_eq!((swept.warning, delivered), (1, 0), "{swept:?}");
    let notices = inbox.taken();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].1["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("credentials expire {next_at} (in 2 days)")),
        "{notices:?}"
    );
    for id in &ids {
        assert_eq!(
            h.call(Method::DELETE, &format!("{base}/{id}"), &tok, None)
                .await
                .0,
            204
        );
    }
    h.assert_no_leak(&[pg.require("PASSWORD"), "definitely-wrong-pw-2"]);
}

/// Secrets Manager's next rotation (moto computes `NextRotationDate` from
/// RotateSecret's `RotationRules.AutomaticallyAfterDays`) three days ahead:
/// WARNING with the date, one `connector.credentials_expiring` notice over
/// two sweeps — on the PostgreSQL metadata store (the vault test above runs
/// on SQLite), so the once-only outbox insert is proven on both.
#[tokio::test]
async fn secrets_manager_rotation_three_days_ahead_warns_once() {
    let test = "secrets_manager_rotation_three_days_ahead_warns_once";
    let (Some(aws), Some(pg)) = (fixture("S3", test), fixture("POSTGRES", test)) else {
        return;
    };
    common::init();
    let db = FreshDb::create(&pg).await;
    let h = store_harness(
        sm_store(&aws, "SECRETS_", "AWS_ENDPOINT_URL_SECRETS_MANAGER"),
        Some(db.url.clone()),
    )
    .await;
    assert_eq!(h.state.store.backend(), "postgres");
    let slug = fresh_slug("smrot");
    let tenant = h.create_tenant(&slug, "FREE").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let (s, c) = h
        .call(Method::POST, &base, &tok, Some(spec(&pg, "rotating")))
        .await;
    assert_eq!((s, c["status"].as_str()), (201, Some("ACTIVE")), "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    h.wait_discovery(tenant, &id, &tok).await;
    let name = format!("matih/{slug}/connector-{}", &id[..8]);
    // Rotation on, every three days, the current value kept (no rotation
    // function here: moto makes the copied version current).
    let (s, v) = sm_admin_as(
        &aws,
        "ROTATOR_",
        "RotateSecret",
        json!({"SecretId": name, "RotationRules": {"AutomaticallyAfterDays": 3},
               "RotateImmediately": false}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, d) = sm_admin(&aws, "DescribeSecret", json!({"SecretId": name})).await;
    let next = d["NextRotationDate"]
        .as_f64()
        .expect("moto reports NextRotationDate");
    let next = chrono::DateTime::from_timestamp(next as i64, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let inbox = Arc::new(Inbox::default());
    let monitor = matih_connector_service::health::HealthMonitor::new(
        h.state.clone(),
        dynamic_health_settings(),
        inbox.clone(),
        None,
    )
    .unwrap();
    for round in 0..2 {
        let (swept, delivered) = sweep_and_deliver(&monitor).await;
        assert_eq!(
            (swept.checked, swept.warning, delivered),
            (1, 1, 1 - round),
            "round {round}: {swept:?}"
        );
    }
    let (_, c) = h
        .call(Method::GET, &format!("{base}/{id}"), &tok, None)
        .await;
    assert_eq!(c["status"], "WARNING", "{c}");
    let note = format!("credentials rotate {next} (in 3 days)");
    assert!(
        c["lastTestResult"].as_str().unwrap().ends_with(&note),
        "{c}"
    );
    let notices = inbox.taken();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "connector.credentials_expiring");
    assert_eq!(notices[0].1["expiryKind"], "ROTATION", "{notices:?}");
    assert_eq!(
        h.call(Method::DELETE, &format!("{base}/{id}"), &tok, None)
            .await
            .0,
        204
    );
    h.assert_no_leak(&[
        pg.require("PASSWORD"),
        aws.require("SECRETS_SECRET_ACCESS_KEY"),
    ]);
    db.drop_db().await;
}

fn dynamic_health_settings() -> matih_connector_service::health::HealthSettings {
    matih_connector_service::health::HealthSettings {
        interval: std::time::Duration::ZERO,
        concurrency: 4,
        check_timeout: std::time::Duration::from_secs(60),
        jitter: std::time::Duration::ZERO,
        poll: std::time::Duration::from_millis(100),
        lease: std::time::Duration::from_secs(120),
        history_kept: 10,
        retry_base: std::time::Duration::from_millis(100),
        retry_max: std::time::Duration::from_millis(400),
        delivery_poll: std::time::Duration::from_millis(100),
    }
}

/// A custom type (the `EXTERNAL` fixture's Airbyte source) through the API:
/// listed with its protocol, refused below ENTERPRISE, created, tested and
/// discovered on ENTERPRISE, and no child process left behind.
#[tokio::test]
async fn custom_type_flow_for_enterprise_only() {
    let Some(ext) = fixture("EXTERNAL", "custom_type_flow_for_enterprise_only") else {
        return;
    };
    let h = Harness::start(Options {
        registry: registry(),
        discovery_wait: std::time::Duration::from_millis(0),
        custom_types: Some(format!(
            "[custom_types.FAKER]\nprotocol = \"airbyte\"\ncommand = [{:?}]\ntimeout_secs = 300\n",
            ext.require("SOURCE_FAKER")
        )),
        ..Default::default()
    })
    .await;

    let pro = h.create_tenant("ext-pro", "PROFESSIONAL").await;
    let pro_tok = h.tenant_token(pro);
    let (s, types) = h
        .call(Method::GET, "/api/v1/connector-types", &pro_tok, None)
        .await;
    assert_eq!(s, 200, "{types}");
    let faker = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "FAKER")
        .unwrap_or_else(|| panic!("FAKER not listed: {types}"));
    assert_eq!(faker["protocol"], "airbyte", "{faker}");
    assert_eq!(faker["category"], "CUSTOM", "{faker}");
    assert_eq!(faker["plans"], json!(["ENTERPRISE"]), "{faker}");
    let pg = types["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "POSTGRESQL")
        .unwrap();
    assert_eq!(pg["plans"], json!(["FREE", "PROFESSIONAL", "ENTERPRISE"]));
    assert!(pg.get("protocol").is_none(), "{pg}");

    // No host, port or database: a custom type's settings are its metadata.
    let body = json!({
        "name": "fake shop", "type": "FAKER",
        "metadata": {"count": 5, "seed": 7},
        "credentials": {"api_token": "faker-token-never-shown"},
        "timeouts": {"queryMs": 300000},
    });
    let (s, e) = h
        .call(
            Method::POST,
            &format!("/api/v1/tenants/{pro}/connectors"),
            &pro_tok,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 403, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("PROFESSIONAL"),
        "{e}"
    );

    let ent = h.create_tenant("ext-ent", "ENTERPRISE").await;
    let tok = h.tenant_token(ent);
    let base = format!("/api/v1/tenants/{ent}/connectors");
    let (s, c) = h.call(Method::POST, &base, &tok, Some(body)).await;
    assert_eq!(s, 201, "{c}");
    // A Python connector's start-up alone can pass the WARNING latency.
    assert!(c["status"] == "ACTIVE" || c["status"] == "WARNING", "{c}");
    assert_eq!(c["lastTestResult"], "Connection successful", "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("{base}/{id}");

    let (s, t) = h
        .call(Method::POST, &format!("{path}/test"), &tok, None)
        .await;
    assert_eq!((s, t["success"].as_bool()), (200, Some(true)), "{t}");
    assert!(
        t["serverVersion"]
            .as_str()
            .unwrap()
            .starts_with("airbyte-source-faker"),
        "{t}"
    );

    let (s, _) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!(s, 202);
    let job = h.wait_discovery(ent, &id, &tok).await;
    assert_eq!(job["status"], "SUCCEEDED", "{job}");
    let (s, schemas) = h
        .call(Method::GET, &format!("{path}/schemas"), &tok, None)
        .await;
    assert_eq!(s, 200, "{schemas}");
    let text = schemas.to_string();
    for table in ["products", "purchases", "users"] {
        assert!(text.contains(table), "{table} missing: {schemas}");
    }
    let (s, _) = h.call(Method::DELETE, &path, &tok, None).await;
    assert_eq!(s, 204);
    h.assert_no_leak(&["faker-token-never-shown"]);
    matih_connector_testkit::processes::assert_no_survivors(
        matih_connectors::external::WORKDIR_PREFIX,
    );
}
