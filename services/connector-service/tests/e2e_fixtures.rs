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
    let (s, cat) = h
        .call(
            Method::GET,
            &format!("{path}/schemas?include=columns"),
            tok,
            None,
        )
        .await;
    assert_eq!(s, 200, "{cat}");
    assert!(cat.get("nextCursor").is_none(), "one page: {cat}");
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
    assert_eq!(c["status"], "ACTIVE", "{c}");
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
