//! Stored catalogs across migration 8: a snapshot a version before it wrote
//! (its JSON text in `catalog`, no encoding) answers every catalog route
//! after the migration exactly as its compressed form did, and a
//! re-discovery reads it as the previous catalog, on SQLite and, when the
//! fixture is set, on the PostgreSQL metadata store.

mod common;

use std::sync::{Arc, Mutex};

use common::fake_driver::{self, GOOD_PASSWORD};
use common::pg::{drop_database, fresh_database};
use common::{fake_registry, fake_server, own_pool, Harness, Options};
use matih_connector_core::{Catalog, DataType, Table, TableKind};
use matih_connector_testkit::fixture;
use reqwest::Method;
use serde_json::{json, Value};

/// Every catalog route of the connector at `path`.
async fn catalog_answers(h: &Harness, path: &str, tok: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for route in [
        "schemas",
        "schemas?include=columns",
        "schemas?limit=4",
        "schemas?limit=2&schema=schema%201%20%22%C3%A9t%C3%A9%22",
        "schemas/schema%200%20%22%C3%A9t%C3%A9%22/tables/T-0001%20select",
        "schemas/diff",
    ] {
        let (s, v) = h
            .call(Method::GET, &format!("{path}/{route}"), tok, None)
            .await;
        assert_eq!(s, 200, "{route}: {v}");
        out.push(v);
    }
    out
}

/// Turns the connector's stored snapshot into what a version before
/// migration 8 wrote, and the database back to before the migration; then
/// opens the store again, which applies it.
async fn back_to_before_migration_8(h: &Harness, url: &str, connector: uuid::Uuid) {
    let snap = h
        .state
        .store
        .latest_snapshots(connector, 1)
        .await
        .unwrap()
        .remove(0);
    let text = serde_json::to_string(&snap.catalog.parse::<Catalog>().unwrap()).unwrap();
    let pool = own_pool(url).await;
    sqlx::query(
        "UPDATE catalog_snapshots SET catalog = $1, catalog_encoding = NULL, \
         catalog_bytes = NULL WHERE id = $2",
    )
    .bind(&text)
    .bind(snap.id.to_string())
    .execute(&pool)
    .await
    .unwrap();
    for sql in [
        "ALTER TABLE catalog_snapshots DROP COLUMN catalog_encoding",
        "ALTER TABLE catalog_snapshots DROP COLUMN catalog_bytes",
        "DELETE FROM matih_schema_migrations WHERE version = 8",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let migrated = own_pool(url).await;
    let stored: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT catalog_encoding, catalog FROM catalog_snapshots")
            .fetch_all(&migrated)
            .await
            .unwrap();
    assert_eq!(stored, [(None, text)], "the old row, as it was written");
    migrated.close().await;
}

async fn old_snapshot_reads_the_same(
    database_url: Option<String>,
    url_of: impl Fn(&Harness) -> String,
) {
    let catalog = Arc::new(Mutex::new(fake_driver::catalog(2, 3)));
    let gate = fake_driver::Gate::default();
    let h = Harness::start(Options {
        registry: fake_registry(catalog.clone(), gate),
        database_url,
        ..Default::default()
    })
    .await;
    let tenant = h.create_tenant("old-snapshots", "PROFESSIONAL").await;
    let tok = h.tenant_token(tenant);
    let base = format!("/api/v1/tenants/{tenant}/connectors");
    let body = json!({
        "name": "old", "type": "POSTGRESQL", "host": "127.0.0.1", "port": fake_server().await,
        "database": "db", "sslEnabled": false,
        "credentials": {"username": "reader-user-9", "password": GOOD_PASSWORD},
    });
    let (s, c) = h.call(Method::POST, &base, &tok, Some(body)).await;
    assert_eq!(s, 201, "{c}");
    let id: uuid::Uuid = c["id"].as_str().unwrap().parse().unwrap();
    let path = format!("{base}/{id}");
    let compressed = catalog_answers(&h, &path, &tok).await;

    back_to_before_migration_8(&h, &url_of(&h), id).await;
    assert_eq!(catalog_answers(&h, &path, &tok).await, compressed);

    // A re-discovery compares with the old text and stores compressed.
    {
        let mut cat = catalog.lock().unwrap();
        let mut added = Table::new("new table", TableKind::View);
        added
            .columns
            .push(fake_driver::column("x", 1, "int", DataType::Int32));
        cat.schemas[0].tables.push(added);
    }
    let (s, _) = h
        .call(Method::POST, &format!("{path}/discover"), &tok, None)
        .await;
    assert_eq!(s, 202);
    let done = h.wait_discovery(tenant, &id.to_string(), &tok).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let (_, diff) = h
        .call(Method::GET, &format!("{path}/schemas/diff"), &tok, None)
        .await;
    assert_eq!(
        diff["tablesAdded"],
        json!([{"schema": "schema 0 \"été\"", "table": "new table", "type": "VIEW"}])
    );
    assert_eq!(diff["tablesRemoved"], json!([]));
    assert_eq!(diff["columnsTypeChanged"], json!([]));
    let newest = h.state.store.latest_snapshots(id, 2).await.unwrap();
    let encodings: Vec<_> = newest.iter().map(|s| s.catalog.encoding()).collect();
    assert_eq!(encodings, [Some("zlib"), None]);
}

#[tokio::test]
async fn a_text_snapshot_from_before_migration_8_reads_the_same_on_sqlite() {
    old_snapshot_reads_the_same(None, |h| {
        format!(
            "sqlite://{}?mode=rwc",
            h.db_file.as_ref().unwrap().display()
        )
    })
    .await;
}

#[tokio::test]
async fn a_text_snapshot_from_before_migration_8_reads_the_same_on_postgres() {
    let Some(fx) = fixture(
        "POSTGRES",
        "a_text_snapshot_from_before_migration_8_reads_the_same_on_postgres",
    ) else {
        return;
    };
    let (admin, name, url) = fresh_database(&fx, "matih_snap_").await;
    let u = url.clone();
    old_snapshot_reads_the_same(Some(url), move |_| u.clone()).await;
    drop_database(&admin, &name).await;
}
