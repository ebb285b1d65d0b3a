//! Redshift driver tests against a **Redshift Data API fake** (`data_api_fake`
//! below) that routes every statement to the real PostgreSQL fixture.
//!
//! The fake speaks the Data API's JSON 1.1 protocol (`X-Amz-Target:
//! RedshiftData.ExecuteStatement`, `DescribeStatement`, `GetStatementResult`),
//! checks the SigV4 `Credential=` access key id against one fixed pair (not
//! the signature itself), maps `DbUser` to the PostgreSQL fixture's logins,
//! runs the SQL on PostgreSQL with the named parameters bound (`:name` →
//! `$n`), answers the first DescribeStatement with STARTED (so the driver's
//! polling runs), and pages results (100 records a page, or the page size a
//! test asks for, counting the pages it served after the first). Records are typed
//! from PostgreSQL's JSON rendering of each row. It is not Redshift:
//! `SVV_TABLE_INFO`, Redshift's information_schema and its error texts are
//! covered by unit tests only (docs/drivers/redshift.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use matih_connector_core::{
    ConnectionConfig, Credentials, DataType, Depth, DiscoveryRequest, ErrorCode, Step, TableKind,
    Timeouts,
};
use matih_connector_testkit::conformance::{self, Case};
use matih_connector_testkit::Fixture;
use matih_driver_redshift::RedshiftDriver;

const FAKE_ACCESS_KEY: &str = "AKIDMATIHFAKE0000001";
const FAKE_SECRET_KEY: &str = "matih-fake-secret-key-0000000000000000000";
const FAKE_CLUSTER: &str = "matih-fake";
const FAKE: &str = "Redshift Data API fake (SQL run on the PostgreSQL fixture)";

mod data_api_fake {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use serde_json::{json, Value};

    /// The Data API's usual page size in these tests.
    pub const PAGE: usize = 100;

    struct Statement {
        describes: u32,
        error: Option<String>,
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
        has_result: bool,
    }

    pub struct Fake {
        pg: Fixture,
        statements: Mutex<HashMap<String, Statement>>,
        next: AtomicU64,
        page: usize,
        /// GetStatementResult calls that carried a NextToken: pages after
        /// the first that the driver asked for.
        pub later_pages: AtomicU64,
    }

    fn now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    fn reply(status: StatusCode, body: Value) -> Response {
        (
            status,
            [("content-type", "application/x-amz-json-1.1")],
            body.to_string(),
        )
            .into_response()
    }

    fn aws_error(code: &str, message: &str) -> Response {
        reply(
            StatusCode::BAD_REQUEST,
            json!({"__type": code, "message": message}),
        )
    }

    /// `:name` placeholders → `$n`, outside quotes and not in `::` casts.
    pub fn positional(
        sql: &str,
        params: &[(String, String)],
    ) -> Result<(String, Vec<String>), String> {
        let chars: Vec<char> = sql.chars().collect();
        let (mut out, mut values, mut i, mut quoted) =
            (String::new(), Vec::<String>::new(), 0, false);
        let mut order: Vec<String> = Vec::new();
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                quoted = !quoted;
            }
            let starts_name = !quoted
                && c == ':'
                && (i == 0 || chars[i - 1] != ':')
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_');
            if starts_name {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                let n = match order.iter().position(|o| *o == name) {
                    Some(p) => p + 1,
                    None => {
                        let v = params
                            .iter()
                            .find(|(k, _)| *k == name)
                            .ok_or(format!("parameter {name} not supplied"))?;
                        order.push(name.clone());
                        values.push(v.1.clone());
                        order.len()
                    }
                };
                out.push_str(&format!("${n}"));
                i = j;
                continue;
            }
            out.push(c);
            i += 1;
        }
        Ok((out, values))
    }

    fn field(v: &Value) -> Value {
        match v {
            Value::Null => json!({"isNull": true}),
            Value::Bool(b) => json!({"booleanValue": b}),
            Value::Number(n) if n.is_i64() => json!({"longValue": n.as_i64()}),
            Value::Number(n) => json!({"doubleValue": n.as_f64()}),
            Value::String(s) => json!({"stringValue": s}),
            other => json!({"stringValue": other.to_string()}),
        }
    }

    impl Fake {
        async fn execute(&self, req: &Value) -> Response {
            let target_ok = req["ClusterIdentifier"].as_str() == Some(FAKE_CLUSTER)
                || req["WorkgroupName"].as_str() == Some(FAKE_CLUSTER);
            if !target_ok {
                return aws_error("ValidationException", "Cluster not found.");
            }
            let database = req["Database"].as_str().unwrap_or("dev").to_owned();
            let (user, password) = match req["DbUser"].as_str() {
                Some(u) if u == self.pg.require("USER") => {
                    (u.to_owned(), self.pg.require("PASSWORD").to_owned())
                }
                Some(u) if Some(u) == self.pg.get("NOPRIV_USER") => {
                    (u.to_owned(), self.pg.require("NOPRIV_PASSWORD").to_owned())
                }
                Some(u) => (u.to_owned(), String::from("no-such-password")),
                None => {
                    return aws_error(
                        "ValidationException",
                        "DbUser or SecretArn is required for a cluster",
                    )
                }
            };
            let sql = req["Sql"].as_str().unwrap_or_default();
            let params: Vec<(String, String)> = req["Parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| {
                            (
                                p["name"].as_str().unwrap_or_default().to_owned(),
                                p["value"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut st = Statement {
                describes: 0,
                error: None,
                columns: Vec::new(),
                rows: Vec::new(),
                has_result: false,
            };
            let mut pg = tokio_postgres::Config::new();
            pg.host(self.pg.require("HOST"))
                .port(self.pg.port())
                .user(&user)
                .password(&password)
                .dbname(&database);
            match pg.connect(tokio_postgres::NoTls).await {
                Err(e) => {
                    let db = e.as_db_error();
                    if db.is_some_and(|d| d.code().code() == "3D000") {
                        return aws_error(
                            "ValidationException",
                            &format!("FATAL: {}", db.unwrap().message()),
                        );
                    }
                    st.error = Some(format!(
                        "FATAL: {}",
                        db.map(|d| d.message().to_owned())
                            .unwrap_or_else(|| e.to_string())
                    ));
                }
                Ok((client, conn)) => {
                    let task = tokio::spawn(conn);
                    match positional(sql, &params) {
                        Err(e) => st.error = Some(format!("ERROR: {e}")),
                        Ok((sql, values)) => {
                            let wrapped = format!(
                                "SELECT (SELECT json_agg(e.value) FROM json_each(row_to_json(q)) e)::text, \
                                 (SELECT json_agg(e.key) FROM json_each(row_to_json(q)) e)::text FROM ({sql}) q"
                            );
                            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                                .iter()
                                .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                                .collect();
                            match client.query(&wrapped, &refs).await {
                                Ok(rows) => {
                                    st.has_result = true;
                                    for r in rows {
                                        let vals: Value =
                                            serde_json::from_str(r.get::<_, &str>(0)).unwrap();
                                        if st.columns.is_empty() {
                                            let keys: Vec<String> =
                                                serde_json::from_str(r.get::<_, &str>(1)).unwrap();
                                            st.columns = keys;
                                        }
                                        st.rows.push(
                                            vals.as_array().unwrap().iter().map(field).collect(),
                                        );
                                    }
                                }
                                Err(e) => {
                                    st.error = Some(format!(
                                        "ERROR: {}",
                                        e.as_db_error()
                                            .map(|d| d.message().to_owned())
                                            .unwrap_or_else(|| e.to_string())
                                    ))
                                }
                            }
                        }
                    }
                    drop(client);
                    let _ = task.await;
                }
            }
            let id = format!(
                "00000000-0000-4000-8000-{:012}",
                self.next.fetch_add(1, Ordering::Relaxed)
            );
            self.statements.lock().unwrap().insert(id.clone(), st);
            reply(
                StatusCode::OK,
                json!({"Id": id, "CreatedAt": now(), "Database": database, "ClusterIdentifier": FAKE_CLUSTER, "DbUser": user}),
            )
        }

        fn describe(&self, req: &Value) -> Response {
            let id = req["Id"].as_str().unwrap_or_default();
            let mut all = self.statements.lock().unwrap();
            let Some(st) = all.get_mut(id) else {
                return aws_error("ResourceNotFoundException", "Query does not exist.");
            };
            st.describes += 1;
            let status = match (&st.error, st.describes) {
                (_, 1) => "STARTED",
                (Some(_), _) => "FAILED",
                (None, _) => "FINISHED",
            };
            let mut body = json!({
                "Id": id, "Status": status, "CreatedAt": now(), "UpdatedAt": now(), "Duration": 1000,
                "HasResultSet": st.has_result && status == "FINISHED", "ResultRows": st.rows.len(), "RedshiftPid": 1,
            });
            if status == "FAILED" {
                body["Error"] = json!(st.error);
            }
            reply(StatusCode::OK, body)
        }

        fn result(&self, req: &Value) -> Response {
            let id = req["Id"].as_str().unwrap_or_default();
            let all = self.statements.lock().unwrap();
            let Some(st) = all.get(id).filter(|s| s.has_result) else {
                return aws_error("ResourceNotFoundException", "Query does not exist.");
            };
            let start: usize = match req["NextToken"].as_str() {
                Some(t) => {
                    self.later_pages.fetch_add(1, Ordering::Relaxed);
                    t.parse().unwrap_or(0)
                }
                None => 0,
            };
            let end = (start + self.page).min(st.rows.len());
            let mut body = json!({
                "Records": st.rows[start..end],
                "ColumnMetadata": st.columns.iter().map(|c| json!({"name": c, "label": c})).collect::<Vec<_>>(),
                "TotalNumRows": st.rows.len(),
            });
            if end < st.rows.len() {
                body["NextToken"] = json!(end.to_string());
            }
            reply(StatusCode::OK, body)
        }
    }

    async fn handle(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !auth.contains(&format!("Credential={FAKE_ACCESS_KEY}/")) {
            return aws_error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            );
        }
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match target.as_str() {
            "RedshiftData.ExecuteStatement" => fake.execute(&req).await,
            "RedshiftData.DescribeStatement" => fake.describe(&req),
            "RedshiftData.GetStatementResult" => fake.result(&req),
            other => aws_error(
                "UnknownOperationException",
                &format!("{other} is not implemented by the fake"),
            ),
        }
    }

    /// Starts the fake on a loopback port in front of the PostgreSQL
    /// fixture, paging results `page` records at a time.
    pub async fn start(pg: Fixture, page: usize) -> (u16, Arc<Fake>, tokio::task::JoinHandle<()>) {
        let fake = Arc::new(Fake {
            pg,
            statements: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            page,
            later_pages: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(fake.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (
            port,
            fake,
            tokio::spawn(async move { axum::serve(l, app).await.unwrap() }),
        )
    }
}

fn case(fx: &Fixture, port: u16) -> Case {
    Case::new(
        ConnectionConfig {
            database: Some(fx.require("DATABASE").into()),
            metadata: serde_json::from_value(serde_json::json!({
                "endpoint": format!("http://127.0.0.1:{port}"),
                "region": "us-east-1",
                "clusterIdentifier": FAKE_CLUSTER,
                "dbUser": fx.require("USER"),
            }))
            .unwrap(),
            timeouts: Timeouts {
                connect_ms: 10_000,
                query_ms: 20_000,
            },
            ..Default::default()
        },
        Credentials::new()
            .with("accessKeyId", FAKE_ACCESS_KEY)
            .with("secretAccessKey", FAKE_SECRET_KEY),
    )
}

#[test]
fn fake_rewrites_named_parameters() {
    let (sql, values) = data_api_fake::positional(
        "SELECT x::text, ':no' FROM t WHERE a LIKE :si0 OR b LIKE :si0 AND c LIKE :tx1",
        &[("si0".into(), "a%".into()), ("tx1".into(), "b".into())],
    )
    .unwrap();
    assert_eq!(
        sql,
        "SELECT x::text, ':no' FROM t WHERE a LIKE $1 OR b LIKE $1 AND c LIKE $2"
    );
    assert_eq!(values, vec!["a%", "b"]);
}

#[tokio::test]
async fn data_api_fake_conformance() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "data_api_fake_conformance") else {
        return;
    };
    matih_connector_testkit::fake(FAKE, "data_api_fake_conformance");
    let (port, _fake, task) = data_api_fake::start(fx.clone(), data_api_fake::PAGE).await;
    let d = RedshiftDriver::new();
    let good = case(&fx, port);
    let r = conformance::assert_test_succeeds(&d, &good).await;
    assert!(
        r.server_version.unwrap().starts_with("PostgreSQL"),
        "the fake reports the engine underneath"
    );

    conformance::assert_test_fails(
        &d,
        &good.with_cred("accessKeyId", "AKIDWRONG00000000000"),
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    conformance::assert_test_fails(
        &d,
        &good.with_cfg(|c| c.database = Some("matih_no_such_db".into())),
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    let nopriv = good.with_cfg(|c| {
        c.metadata.insert(
            "dbUser".into(),
            serde_json::json!(fx.require("NOPRIV_USER")),
        );
    });
    conformance::assert_test_fails(&d, &nopriv, Step::Connect, ErrorCode::PermissionDenied).await;
    let other_cluster = good.with_cfg(|c| {
        c.metadata.insert(
            "clusterIdentifier".into(),
            serde_json::json!("no-such-cluster"),
        );
    });
    conformance::assert_test_fails(
        &d,
        &other_cluster,
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;

    let endpoint = |c: &mut ConnectionConfig, url: String| {
        c.metadata.insert("endpoint".into(), serde_json::json!(url));
    };
    let closed = conformance::closed_port();
    conformance::assert_test_fails(
        &d,
        &good.with_cfg(|c| endpoint(c, format!("http://127.0.0.1:{closed}"))),
        Step::Tcp,
        ErrorCode::ConnectionRefused,
    )
    .await;
    conformance::assert_test_fails(
        &d,
        &good.with_cfg(|c| endpoint(c, "https://redshift-data.matih.invalid".into())),
        Step::Dns,
        ErrorCode::DnsResolutionFailed,
    )
    .await;
    let (silent, listener) = conformance::silent_listener().await;
    let slow = good.with_cfg(|c| {
        endpoint(c, format!("http://127.0.0.1:{silent}"));
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    conformance::assert_test_fails(&d, &slow, Step::Connect, ErrorCode::Timeout).await;
    listener.abort();

    conformance::assert_discovery_filters(&d, &good, "sales", "customers").await;
    task.abort();
}

#[tokio::test]
async fn data_api_fake_seed_catalog() {
    let Some(fx) = matih_connector_testkit::fixture("POSTGRES", "data_api_fake_seed_catalog")
    else {
        return;
    };
    matih_connector_testkit::fake(FAKE, "data_api_fake_seed_catalog");
    // Seven records a page: the seed's catalog queries answer with more rows
    // than that, so the driver must follow NextToken to see the whole seed.
    let (port, fake, task) = data_api_fake::start(fx.clone(), 7).await;
    let d = RedshiftDriver::new();
    let good = case(&fx, port);
    let c = conformance::discover(&d, &good, &DiscoveryRequest::default()).await;
    let later_pages = fake.later_pages.load(Ordering::Relaxed);
    assert!(
        later_pages > 0,
        "the driver read only first pages: the assertions below would not see paged results"
    );
    let names: Vec<&str> = c.schemas.iter().map(|s| s.name.as_str()).collect();
    for s in ["sales", "Analytics 2024", "ventes_été", "odd%_schema"] {
        assert!(names.contains(&s), "schema {s} missing from {names:?}");
    }
    assert!(!names
        .iter()
        .any(|n| n.starts_with("pg_") || *n == "information_schema"));
    let sales = c.schema("sales").unwrap();

    let customers = sales.table("customers").expect("sales.customers");
    assert_eq!(customers.kind, TableKind::Table);
    assert_eq!(customers.primary_key, vec!["id"]);
    assert_eq!(customers.comment.as_deref(), Some("People who buy things"));
    assert!(customers.size_bytes.is_some());
    let cols: Vec<(&str, &str, DataType, bool)> = customers
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.native_type.as_str(),
                c.data_type.clone(),
                c.nullable,
            )
        })
        .collect();
    assert_eq!(cols[0], ("id", "bigint", DataType::Int64, false));
    assert_eq!(
        cols[1],
        ("name", "character varying(200)", DataType::String, false)
    );
    assert_eq!(
        customers.column("name").unwrap().comment.as_deref(),
        Some("Full name, as typed")
    );
    assert_eq!(
        customers.column("created_at").unwrap().data_type,
        DataType::TimestampTz
    );
    assert_eq!(
        customers.column("created_at").unwrap().default.as_deref(),
        Some("now()")
    );
    assert_eq!(
        customers.column("ci_login").unwrap().data_type,
        DataType::String
    );

    let all = sales.table("all_types").expect("sales.all_types");
    // A dropped column leaves a gap in attribute numbers; ordinals do not.
    assert!(all.column("c_dropped").is_none());
    assert_eq!(
        all.columns.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
        (1..=all.columns.len() as u32).collect::<Vec<_>>()
    );
    let ty = |n: &str| {
        all.column(n)
            .unwrap_or_else(|| panic!("column {n}"))
            .data_type
            .clone()
    };
    assert_eq!(ty("c_num_10_2"), DataType::decimal(10, 2));
    assert_eq!(
        all.column("c_num_10_2").unwrap().comment.as_deref(),
        Some("Two decimals")
    );
    assert_eq!(ty("c_int_arr"), DataType::array(DataType::Int32));
    assert_eq!(ty("c_jsonb"), DataType::Json);
    assert_eq!(ty("c_uuid"), DataType::Uuid);
    assert_eq!(ty("c_float4"), DataType::Float32);
    assert_eq!(
        all.column("c_ts3").unwrap().native_type,
        "timestamp(3) without time zone"
    );

    let items = sales.table("Order Items").expect("hostile table name");
    assert_eq!(
        items.primary_key,
        vec!["order_id", "line no"],
        "key order, not column order"
    );
    assert!(items.column("select").is_some() && items.column("user").is_some());
    assert!(
        sales.table("quote\"d\\name").is_some(),
        "quote and backslash in a name"
    );
    assert!(sales.table("MixedCase").unwrap().primary_key.is_empty());

    // Depth and statistics are honoured.
    let shallow = conformance::discover(
        &d,
        &good,
        &DiscoveryRequest {
            depth: Depth::Tables,
            statistics: false,
            ..Default::default()
        },
    )
    .await;
    let t = shallow.schema("sales").unwrap().table("customers").unwrap();
    assert!(t.columns.is_empty() && t.estimated_rows.is_none() && t.size_bytes.is_none());
    assert_eq!(t.primary_key, vec!["id"]);
    task.abort();
}
