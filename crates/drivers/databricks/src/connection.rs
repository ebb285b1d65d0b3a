//! The HTTP client (core TLS, pinned addresses), authentication (personal
//! access token or OAuth machine-to-machine), REST calls with bounded bodies,
//! the Statement Execution API, and the connection built on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use matih_connector_core::{
    async_trait, tls, with_timeout, Catalog, ConnectContext, Connection, ConnectorError,
    DiscoveryRequest, ErrorCode, SecretString, SslMode,
};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::{json, Value};
use url::Url;

use crate::config::{Auth, DatabricksConfig};
use crate::errors::{parse_error, Failure};

const ERROR_BODY_BYTES: usize = 4096;
const TOKEN_BODY_BYTES: u64 = 64 * 1024;
/// The Statement Execution API waits at most 50 s inline; we wait less and poll.
const STATEMENT_WAIT: &str = "10s";

struct NoLookup;

impl reqwest::dns::Resolve for NoLookup {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            Err(format!(
                "{host} was not resolved through the egress policy; refusing to look it up"
            )
            .into())
        })
    }
}

fn build_client(
    cfg: &DatabricksConfig,
    addrs: &[SocketAddr],
    connect: Duration,
) -> Result<reqwest::Client, ConnectorError> {
    let mode = if cfg.tls.is_tls() {
        cfg.tls
    } else {
        SslMode::VerifyFull
    };
    let tls = tls::client_config(mode, cfg.ca_pem.as_deref())?
        .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .dns_resolver(Arc::new(NoLookup))
        .connect_timeout(connect)
        .pool_max_idle_per_host(2)
        // The workspace's APIs do not redirect; a redirect would leave the
        // egress-checked addresses (login pages answer unauthenticated calls
        // with one, which the status mapping reports).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")));
    let bare = cfg.host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(bare, addrs);
    }
    builder
        .build()
        .map_err(|e| parse_error(Failure::Http(e), "building the HTTP client"))
}

async fn read_prefix(resp: &mut reqwest::Response, n: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < n {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(n - buf.len())]),
            _ => break,
        }
    }
    buf
}

async fn read_bounded(resp: &mut reqwest::Response, limit: u64) -> Result<Vec<u8>, Failure> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(Failure::TooLarge { limit });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Failure::Http)? {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(Failure::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Exchanges a service principal's client credentials for a bearer token at
/// the workspace's own OIDC endpoint (same host, so the same checked
/// addresses).
async fn oauth_token(
    client: &reqwest::Client,
    cfg: &DatabricksConfig,
    client_id: &SecretString,
    client_secret: &SecretString,
    limit: Duration,
) -> Result<SecretString, ConnectorError> {
    let what = "POST /oidc/v1/token";
    let req = client
        .post(cfg.url("/oidc/v1/token", &[]))
        .header(ACCEPT, "application/json")
        .basic_auth(client_id.expose(), Some(client_secret.expose()))
        .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")]);
    let fut = async {
        let mut resp = req
            .timeout(limit)
            .send()
            .await
            .map_err(|e| parse_error(Failure::Http(e), what))?;
        let status = resp.status();
        let body = read_bounded(&mut resp, TOKEN_BODY_BYTES)
            .await
            .map_err(|f| parse_error(f, what))?;
        if !status.is_success() {
            return Err(parse_error(Failure::Token { status, body }, what));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), what))?;
        match v.get("access_token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
            _ => Err(parse_error(
                Failure::Protocol("the token answer has no access_token".into()),
                what,
            )),
        }
    };
    with_timeout(limit + Duration::from_millis(250), what, fut).await
}

/// An open connection: an authenticated client and the warehouse's facts.
pub(crate) struct DatabricksConnection {
    pub(crate) cfg: Arc<DatabricksConfig>,
    client: reqwest::Client,
    bearer: SecretString,
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
        let client = build_client(&cfg, &ctx.addrs, ctx.timeouts.connect())?;
        let bearer = match &cfg.auth {
            Auth::Token(t) => t.clone(),
            Auth::OAuth {
                client_id,
                client_secret,
            } => {
                oauth_token(
                    &client,
                    &cfg,
                    client_id,
                    client_secret,
                    ctx.timeouts.connect(),
                )
                .await?
            }
        };
        let mut conn = DatabricksConnection {
            cfg: Arc::new(cfg),
            client,
            bearer,
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

    fn auth(&self) -> Result<HeaderValue, ConnectorError> {
        let mut v =
            HeaderValue::from_str(&format!("Bearer {}", self.bearer.expose())).map_err(|_| {
                ConnectorError::invalid_config(
                    "credentials",
                    "the token holds characters a header cannot carry",
                )
            })?;
        v.set_sensitive(true);
        Ok(v)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        limit: Duration,
        what: &str,
    ) -> Result<Value, ConnectorError> {
        let req = req
            .header(AUTHORIZATION, self.auth()?)
            .header(ACCEPT, "application/json");
        let max = self.cfg.max_response_bytes;
        let fut = async {
            let mut resp = req
                .timeout(limit)
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), what))?;
            let status = resp.status();
            if !status.is_success() {
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(Failure::Status { status, body }, what));
            }
            let body = read_bounded(&mut resp, max)
                .await
                .map_err(|f| parse_error(f, what))?;
            serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), what))
        };
        with_timeout(limit + Duration::from_millis(250), what, fut).await
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

#[async_trait]
impl Connection for DatabricksConnection {
    /// `Databricks SQL <dbsql_version>` from `current_version()` when the
    /// warehouse is running; otherwise, and where `current_version()` is
    /// unknown (emulators), `Databricks SQL (warehouse …, channel …, state)`
    /// from the warehouse API, which never starts a stopped warehouse.
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
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

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        crate::discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        crate::discovery::discover(self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        Ok(())
    }
}
