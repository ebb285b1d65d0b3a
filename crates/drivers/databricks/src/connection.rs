//! Authentication (personal access token or OAuth machine-to-machine through
//! the core `TokenSource`), REST calls through the core's pinned HTTP client
//! (egress resolver, TLS, bounded bodies), the Statement Execution API, and the
//! connection built on them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use matih_connector_core::http::header::{HeaderValue, ACCEPT};
use matih_connector_core::http::{
    ClientAuthMethod, ClientCredentials, HttpAuth, HttpClient, HttpOptions, HttpRequest,
    TokenSource, Url,
};
use matih_connector_core::{ConnectContext, ConnectorError, ErrorCode};
use serde_json::{json, Value};

use crate::config::{Auth, DatabricksConfig};
use crate::errors::{parse_error, refine, token_error, Failure};

/// The Statement Execution API waits at most 50 s inline; we wait less and poll.
const STATEMENT_WAIT: &str = "10s";

/// An open connection: an authenticated client and the warehouse's facts.
pub(crate) struct DatabricksConnection {
    pub(crate) cfg: Arc<DatabricksConfig>,
    client: HttpClient,
    auth: HttpAuth,
    /// `GET /api/2.0/sql/warehouses/{id}` at connect.
    warehouse: Value,
}

impl std::fmt::Debug for DatabricksConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabricksConnection")
            .field("host", &self.cfg.host)
            .field("warehouse", &self.cfg.warehouse_id)
            .field("catalog", &self.cfg.catalog)
            .finish()
    }
}

impl DatabricksConnection {
    pub(crate) async fn open(
        cfg: DatabricksConfig,
        ctx: &ConnectContext,
    ) -> Result<DatabricksConnection, ConnectorError> {
        // The workspace's APIs do not redirect (login pages answer
        // unauthenticated calls with one): same-origin hops only, each
        // egress-checked, any other reported by the status mapping.
        let opts = HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
            .max_body_bytes(cfg.max_response_bytes)
            .too_large_hint("raise metadata.maxResponseBytes")
            .refine(refine);
        let client = ctx.http_client(&opts)?;
        let auth = match &cfg.auth {
            Auth::Token(t) => HttpAuth::Bearer(t.clone()),
            // The workspace's own OIDC endpoint: same host, same addresses.
            Auth::OAuth {
                client_id,
                client_secret,
            } => HttpAuth::Token(Arc::new(TokenSource::client_credentials(
                cfg.url("/oidc/v1/token", &[]),
                ClientCredentials {
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: Some("all-apis".to_owned()),
                    method: ClientAuthMethod::Basic,
                },
            ))),
        };
        auth.authorize(&client).await.map_err(token_error)?;
        let mut conn = DatabricksConnection {
            cfg: Arc::new(cfg),
            client,
            auth,
            warehouse: Value::Null,
        };
        let limit = ctx.timeouts.connect();
        // Proves the token and the warehouse without starting it: a health
        // check must not wake a stopped warehouse.
        let wh_url = conn
            .cfg
            .url("/api/2.0/sql/warehouses", &[&conn.cfg.warehouse_id]);
        conn.warehouse = conn
            .get(wh_url, limit, "GET warehouse")
            .await
            .map_err(|e| {
                if e.code() == ErrorCode::DatabaseNotFound {
                    ConnectorError::new(
                        ErrorCode::InvalidConfiguration,
                        format!(
                            "SQL warehouse {:?} does not exist in this workspace: {}",
                            conn.cfg.warehouse_id,
                            e.message()
                        ),
                    )
                    .with_context("warehouseId", &conn.cfg.warehouse_id)
                } else {
                    e
                }
            })?;
        let cat_url = conn
            .cfg
            .url("/api/2.1/unity-catalog/catalogs", &[&conn.cfg.catalog]);
        conn.get(cat_url, limit, "GET catalog")
            .await
            .map_err(|e| e.with_context("catalog", &conn.cfg.catalog))?;
        Ok(conn)
    }

    async fn send(
        &self,
        req: HttpRequest,
        limit: Duration,
        what: &str,
    ) -> Result<Value, ConnectorError> {
        let req = req
            .what(what)
            .timeout(limit)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let fetched = self
            .auth
            .apply(req)
            .await
            .map_err(token_error)?
            .fetch()
            .await?;
        serde_json::from_slice(&fetched.body).map_err(|e| parse_error(Failure::Json(e), what))
    }

    /// An authenticated GET with a bounded JSON body.
    pub(crate) async fn get(
        &self,
        url: Url,
        limit: Duration,
        what: &str,
    ) -> Result<Value, ConnectorError> {
        self.send(self.client.get(url), limit, what).await
    }

    /// Runs a statement on the warehouse through the Statement Execution API,
    /// polling until it ends, within the query timeout. `params` are bound as
    /// named parameters (`:name`), never spliced into the text.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[(&str, &str)],
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        let limit = self.cfg.timeouts.query();
        let started = Instant::now();
        let what = "statement";
        let body = json!({
            "warehouse_id": self.cfg.warehouse_id,
            "statement": sql,
            "catalog": self.cfg.catalog,
            "wait_timeout": STATEMENT_WAIT,
            "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE",
            "format": "JSON_ARRAY",
            "parameters": params.iter().map(|(n, v)| json!({"name": n, "value": v, "type": "STRING"})).collect::<Vec<_>>(),
        });
        let mut v = self
            .send(
                self.client
                    .post(self.cfg.url("/api/2.0/sql/statements", &[]))
                    .json(&body),
                limit,
                what,
            )
            .await?;
        let mut pause = Duration::from_millis(200);
        loop {
            let state = v
                .pointer("/status/state")
                .and_then(Value::as_str)
                .unwrap_or("");
            match state {
                "SUCCEEDED" => break,
                "PENDING" | "RUNNING" => {
                    let id = v
                        .get("statement_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let remaining = limit.saturating_sub(started.elapsed());
                    if id.is_empty() || remaining.is_zero() {
                        if !id.is_empty() {
                            let cancel = self.cfg.url("/api/2.0/sql/statements", &[&id, "cancel"]);
                            let _ = self
                                .send(self.client.post(cancel), Duration::from_secs(5), "cancel")
                                .await;
                        }
                        return Err(ConnectorError::new(
                            ErrorCode::Timeout,
                            format!("{what}: still {state} after {} ms", limit.as_millis()),
                        ));
                    }
                    tokio::time::sleep(pause.min(remaining)).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    let url = self.cfg.url("/api/2.0/sql/statements", &[&id]);
                    v = self
                        .get(
                            url,
                            limit
                                .saturating_sub(started.elapsed())
                                .max(Duration::from_millis(1)),
                            what,
                        )
                        .await?;
                }
                "FAILED" | "CANCELED" | "CLOSED" => {
                    let err = v.pointer("/status/error").cloned().unwrap_or(Value::Null);
                    return Err(parse_error(
                        Failure::Statement {
                            error_code: err
                                .get("error_code")
                                .and_then(Value::as_str)
                                .unwrap_or(state)
                                .to_owned(),
                            message: err
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or(state)
                                .to_owned(),
                            sql_state: v
                                .pointer("/status/sql_state")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        },
                        what,
                    ));
                }
                other => {
                    return Err(parse_error(
                        Failure::Protocol(format!("unknown statement state {other:?}")),
                        what,
                    ))
                }
            }
        }
        if v.pointer("/manifest/total_chunk_count")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            > 1
        {
            return Err(parse_error(
                Failure::Protocol(
                    "the result spans several chunks, which this driver does not read".into(),
                ),
                what,
            ));
        }
        let rows = v
            .pointer("/result/data_array")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|r| {
                r.as_array()
                    .map(|cells| {
                        cells
                            .iter()
                            .map(|c| match c {
                                Value::Null => None,
                                Value::String(s) => Some(s.clone()),
                                o => Some(o.to_string()),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect())
    }

    /// What the warehouse says about itself, for the version string.
    fn warehouse_summary(&self) -> String {
        let s = |p: &str| {
            self.warehouse
                .pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let mut parts = Vec::new();
        if let Some(n) = s("/name") {
            parts.push(format!("warehouse {n}"));
        }
        if let Some(c) = s("/channel/dbsql_version").or(s("/channel/name")) {
            parts.push(format!("channel {}", c.trim_start_matches("CHANNEL_NAME_")));
        }
        if let Some(t) = s("/warehouse_type") {
            parts.push(t.to_owned());
        }
        if let Some(st) = s("/state") {
            parts.push(st.to_owned());
        }
        parts.join(", ")
    }
}

/// What the `Connection` impl (in `lib.rs`) asks of the session.
impl DatabricksConnection {
    /// `Databricks SQL <dbsql_version>` from `current_version()` when the
    /// warehouse is running; otherwise, and where `current_version()` is
    /// unknown (emulators), `Databricks SQL (warehouse …, channel …, state)`
    /// from the warehouse API, which never starts a stopped warehouse.
    pub(crate) async fn version_text(&mut self) -> Result<String, ConnectorError> {
        let running = self.warehouse.pointer("/state").and_then(Value::as_str) == Some("RUNNING");
        if running {
            match self
                .execute("SELECT current_version().dbsql_version", &[])
                .await
            {
                Ok(rows) => {
                    if let Some(v) = rows
                        .first()
                        .and_then(|r| r.first().cloned().flatten())
                        .filter(|v| !v.is_empty())
                    {
                        return Ok(format!("Databricks SQL {v}"));
                    }
                }
                Err(e) if matches!(e.code(), ErrorCode::SourceError | ErrorCode::Unsupported) => {
                    tracing::debug!(error = %e, "current_version() unavailable; reporting the warehouse");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(format!("Databricks SQL ({})", self.warehouse_summary()))
    }

    pub(crate) async fn end_session(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}
