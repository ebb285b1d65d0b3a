//! Fresh databases on the PostgreSQL fixture, made and dropped with its
//! superuser.

use matih_connector_testkit::Fixture;
use sqlx::Connection as _;
use uuid::Uuid;

/// A URL component, percent-encoded.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A fresh database named `prefix` + a random suffix; returns the admin URL,
/// its name and its URL (both as the superuser).
pub async fn fresh_database(fx: &Fixture, prefix: &str) -> (String, String, String) {
    let su = fx.require("SUPERUSER");
    let pw = fx
        .get("SUPERUSER_PASSWORD")
        .unwrap_or_else(|| fx.require("PASSWORD"));
    let (host, port) = (fx.require("HOST"), fx.port());
    let admin = format!("postgres://{}:{}@{host}:{port}/postgres", enc(su), enc(pw));
    let name = format!("{prefix}{}", Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&admin).await.unwrap();
    // A generated identifier of [a-z0-9_]: nothing user-supplied reaches this DDL.
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let url = format!("postgres://{}:{}@{host}:{port}/{name}", enc(su), enc(pw));
    (admin, name, url)
}

/// Drops a database `fresh_database` made (best effort: cleanup only).
pub async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(admin).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}
