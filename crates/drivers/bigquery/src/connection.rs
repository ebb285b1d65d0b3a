//! The HTTP client (core TLS, pinned addresses, bounded bodies), the
//! service-account token exchange, jobs.query, and the BigQuery connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matih_connector_core::{
    async_trait, resolve_host, tls, with_timeout, Catalog, ConnectContext, Connection,
    ConnectorError, DiscoveryRequest, ErrorCode, SecretString, SslMode,
};
use reqwest::header::{HeaderMap, SERVER};
use serde_json::{json, Value};
use url::Url;

use crate::config::{host_of, Auth, BqConfig, ServiceAccountKey, READ_SCOPE};
use crate::errors::{parse_error, Failure};

/// Listing pages and query results are read only this far.
const MAX_JSON_BYTES: u64 = 32 << 20;
/// Rows one INFORMATION_SCHEMA result page carries at most.
const PAGE_ROWS: u64 = 10_000;
/// Pages one query may return: a runaway catalog stops with an error
/// instead of filling memory.
const MAX_PAGES: usize = 200;
/// Error bodies are read only this far, for the message.
const ERROR_BODY_BYTES: usize = 8192;

/// Resolves host names for the HTTP client from addresses already checked
/// against the egress policy: the endpoint's (resolved by the core) and the
/// token endpoint's (resolved at connect). Any other name is refused.
struct PinnedResolver {
    pinned: Vec<(String, Vec<SocketAddr>)>,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let found = self
            .pinned
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, a)| a.clone());
        Box::pin(async move {
            match found {
                Some(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                None => Err(Box::new(ConnectorError::new(
                    ErrorCode::EgressDenied,
                    format!("{name} is neither the endpoint nor the token endpoint; refusing to look it up"),
                )) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

pub(crate) struct BqConnection {
    pub(crate) cfg: BqConfig,
    client: reqwest::Client,
    token: Option<SecretString>,
    /// The latest `Server` header, for the server version.
    server: Mutex<Option<String>>,
}

/// The `iat`/`exp` claims are seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The signed assertion of the OAuth2 JWT bearer grant (RFC 7523) as Google
/// documents it for service accounts.
pub(crate) fn assertion(key: &ServiceAccountKey, aud: &str) -> Result<SecretString, Failure> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let iat = now_secs();
    let claims = Claims {
        iss: &key.client_email,
        scope: READ_SCOPE,
        aud,
        iat,
        exp: iat + 3600,
    };
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes())
        .map_err(Failure::Sign)?;
    jsonwebtoken::encode(&header, &claims, &enc)
        .map(SecretString::new)
        .map_err(Failure::Sign)
}

impl BqConnection {
    pub(crate) async fn open(
        cfg: BqConfig,
        ctx: &ConnectContext,
    ) -> Result<BqConnection, ConnectorError> {
        // An http endpoint still gets a verifying configuration, for an https
        // token endpoint.
        let mode = if cfg.tls.is_tls() {
            cfg.tls
        } else {
            SslMode::VerifyFull
        };
        let tls = tls::client_config(mode, cfg.ca_pem.as_deref())?
            .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
        let mut pinned = vec![(cfg.host.to_ascii_lowercase(), ctx.addrs.clone())];
        if let Auth::ServiceAccount { token_uri, .. } = &cfg.auth {
            // Checked even when it is an IP literal, which reqwest would
            // connect to without asking any resolver.
            let host = host_of(token_uri).unwrap_or_default();
            let port = token_uri.port_or_known_default().unwrap_or(443);
            let addrs = resolve_host(&host, port, ctx.timeouts, &ctx.egress)
                .await
                .map_err(|e| e.with_context("tokenUrl", token_uri.as_str()))?;
            pinned.push((host.to_ascii_lowercase(), addrs));
        }
        let resolver = PinnedResolver { pinned };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(ctx.timeouts.connect())
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| parse_error(Failure::Http(e), "building the HTTP client"))?;
        let mut conn = BqConnection {
            cfg,
            client,
            token: None,
            server: Mutex::new(None),
        };
        conn.token = match &conn.cfg.auth {
            Auth::Anonymous => None,
            Auth::AccessToken(t) => Some(t.clone()),
            Auth::ServiceAccount { key, token_uri } => {
                Some(conn.fetch_token(key, token_uri).await?)
            }
        };
        // The cheapest authorized call proves endpoint, TLS and credentials,
        // and that the project (and dataset) exists.
        let what = "checking access";
        with_timeout(ctx.timeouts.connect(), what, conn.check_access()).await?;
        Ok(conn)
    }

    async fn fetch_token(
        &self,
        key: &ServiceAccountKey,
        token_uri: &Url,
    ) -> Result<SecretString, ConnectorError> {
        let what = format!("POST {token_uri}");
        let jwt = assertion(key, token_uri.as_str()).map_err(|f| parse_error(f, &what))?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.expose()),
        ];
        let req = self.client.post(token_uri.clone()).form(&form);
        let fut = async {
            let mut resp = req
                .timeout(self.cfg.timeouts.connect())
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), &what))?;
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(Failure::Token { status, body }, &what));
            }
            let body = read_bounded(&mut resp, 64 * 1024)
                .await
                .map_err(|f| parse_error(f, &what))?;
            let v: Value =
                serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), &what))?;
            match v.get("access_token").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
                _ => Err(ConnectorError::new(
                    ErrorCode::ProtocolError,
                    format!("{what}: the token response has no access_token"),
                )),
            }
        };
        with_timeout(self.cfg.timeouts.connect(), &what, fut).await
    }

    /// One dataset of the project (or the configured dataset itself).
    pub(crate) async fn check_access(&self) -> Result<(), ConnectorError> {
        let project = self.cfg.project.clone();
        match self.cfg.dataset.clone() {
            Some(d) => {
                let url = self.url(&["projects", &project, "datasets", &d], &[]);
                self.get_json(url, &format!("reading dataset {d}"))
                    .await
                    .map_err(|e| {
                        e.with_context("project", &project)
                            .with_context("dataset", d)
                    })?;
            }
            None => {
                let url = self.url(&["projects", &project, "datasets"], &[("maxResults", "1")]);
                self.get_json(url, &format!("listing datasets of project {project}"))
                    .await
                    .map_err(|e| e.with_context("project", project))?;
            }
        }
        Ok(())
    }

    /// `<endpoint>/bigquery/v2/<segments…>?<query>`, each segment encoded whole.
    pub(crate) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        api_url(&self.cfg.endpoint, segments, query)
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.timeout(self.cfg.timeouts.query());
        match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        }
    }

    fn remember_server(&self, headers: &HeaderMap) {
        if let Some(v) = headers
            .get(SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            if let (false, Ok(mut s)) = (v.is_empty(), self.server.lock()) {
                *s = Some(v.chars().take(120).collect());
            }
        }
    }

    /// GETs a JSON document within the size and time limits.
    pub(crate) async fn get_json(&self, url: Url, what: &str) -> Result<Value, ConnectorError> {
        self.send(self.authorize(self.client.get(url)), what).await
    }

    /// POSTs a JSON body and reads the JSON answer within the limits.
    async fn post_json(&self, url: Url, body: &Value, what: &str) -> Result<Value, ConnectorError> {
        self.send(self.authorize(self.client.post(url).json(body)), what)
            .await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Value, ConnectorError> {
        let fut = async {
            let mut resp = req
                .send()
                .await
                .map_err(|e| parse_error(Failure::Http(e), what))?;
            self.remember_server(resp.headers());
            let status = resp.status().as_u16();
            if !(200..300).contains(&status) {
                let body = read_prefix(&mut resp, ERROR_BODY_BYTES).await;
                return Err(parse_error(Failure::Status { status, body }, what));
            }
            let body = read_bounded(&mut resp, MAX_JSON_BYTES)
                .await
                .map_err(|f| parse_error(f, what))?;
            serde_json::from_slice(&body).map_err(|e| parse_error(Failure::Json(e), what))
        };
        // reqwest's timeout covers the body too; this one is a backstop.
        with_timeout(
            self.cfg.timeouts.query() + Duration::from_millis(250),
            what,
            fut,
        )
        .await
    }

    /// Runs a read-only GoogleSQL query with named parameters (`@name`) through
    /// `jobs.query`, following `jobs.getQueryResults` while the job runs and
    /// through result pages; returns the rows as arrays of nullable strings
    /// in column order. Bounded by the query timeout as a whole.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[QueryParam],
        what: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        let limit = self.cfg.timeouts.query();
        with_timeout(limit, what, self.query_inner(sql, params, what)).await
    }

    async fn query_inner(
        &self,
        sql: &str,
        params: &[QueryParam],
        what: &str,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        let project = &self.cfg.project;
        let wait_ms = self.cfg.timeouts.query_ms.clamp(1_000, 10_000);
        let mut body = json!({
            "query": sql,
            "useLegacySql": false,
            "parameterMode": "NAMED",
            "queryParameters": params.iter().map(QueryParam::to_json).collect::<Vec<_>>(),
            "maxResults": PAGE_ROWS,
            "timeoutMs": wait_ms,
            "useQueryCache": false,
        });
        if let Some(l) = &self.cfg.location {
            body["location"] = json!(l);
        }
        let url = self.url(&["projects", project, "queries"], &[]);
        let mut resp = self.post_json(url, &body, what).await?;
        let mut rows = Vec::new();
        let mut pages = 0usize;
        loop {
            let complete = resp
                .get("jobComplete")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            if let Some(err) = job_error(&resp, complete) {
                return Err(parse_error(Failure::Job(err.clone()), what));
            }
            if complete {
                collect_rows(&resp, &mut rows);
                pages += 1;
            }
            let token = resp
                .get("pageToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if complete && token.is_none() {
                return Ok(rows);
            }
            if pages >= MAX_PAGES {
                return Err(ConnectorError::new(
                    ErrorCode::ProtocolError,
                    format!("{what}: more than {MAX_PAGES} result pages of {PAGE_ROWS} rows"),
                ));
            }
            let job = resp
                .pointer("/jobReference/jobId")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ConnectorError::new(
                        ErrorCode::ProtocolError,
                        format!("{what}: an unfinished or paged query result without jobReference.jobId"),
                    )
                })?
                .to_owned();
            let location = resp
                .pointer("/jobReference/location")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| self.cfg.location.clone());
            let max = PAGE_ROWS.to_string();
            let wait = wait_ms.to_string();
            let mut q: Vec<(&str, &str)> = vec![("maxResults", &max), ("timeoutMs", &wait)];
            if let Some(l) = &location {
                q.push(("location", l));
            }
            if let Some(t) = token.as_deref().filter(|_| complete) {
                q.push(("pageToken", t));
            }
            let url = self.url(&["projects", project, "queries", &job], &q);
            resp = self.get_json(url, what).await?;
        }
    }

    /// "BigQuery API v2", with the `Server` header when the endpoint is not
    /// Google's own (an emulator, a proxy).
    fn version(&self) -> String {
        let base = "BigQuery API v2";
        let at = self.cfg.endpoint.as_str().trim_end_matches('/');
        let google = at == crate::config::DEFAULT_ENDPOINT;
        let server = self.server.lock().ok().and_then(|s| s.clone());
        match &server {
            Some(s) if !google && !s.eq_ignore_ascii_case("ESF") => format!("{base} ({s} at {at})"),
            _ if !google => format!("{base} at {at}"),
            _ => base.to_owned(),
        }
    }
}

/// The error of a failed job. `errors[]` may also carry warnings of a job
/// that succeeded, so it counts only when the finished job has no result
/// schema (bqemulator reports failures that way, with HTTP 200).
fn job_error(resp: &Value, complete: bool) -> Option<&Value> {
    if let Some(e) = resp.pointer("/status/errorResult") {
        return Some(e);
    }
    let first = resp.get("errors").and_then(Value::as_array)?.first()?;
    let no_schema = resp
        .pointer("/schema/fields")
        .and_then(Value::as_array)
        .is_none_or(|f| f.is_empty());
    (complete && no_schema).then_some(first)
}

/// A named query parameter: an array of strings (the filters' patterns).
#[derive(Clone, Debug)]
pub(crate) enum QueryParam {
    Strings(&'static str, Vec<String>),
}

impl QueryParam {
    fn to_json(&self) -> Value {
        match self {
            QueryParam::Strings(name, vs) => json!({
                "name": name,
                "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
                "parameterValue": {"arrayValues": vs.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()},
            }),
        }
    }
}

/// `rows[].f[].v` → strings (BigQuery sends every scalar as a JSON string).
fn collect_rows(resp: &Value, out: &mut Vec<Vec<Option<String>>>) {
    let Some(rows) = resp.get("rows").and_then(Value::as_array) else {
        return;
    };
    for row in rows {
        let cells = row
            .get("f")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .map(|c| match c.get("v") {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Null) | None => None,
                        Some(other) => Some(other.to_string()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(cells);
    }
}

/// `<endpoint>/bigquery/v2/<segments…>?<query>`, each segment encoded whole.
pub(crate) fn api_url(endpoint: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut u = endpoint.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.clear().extend(["bigquery", "v2"]).extend(segments);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    u
}

/// The first `n` bytes of a body; the rest is not read.
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

/// Reads a body, refusing more than `limit` bytes.
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

#[async_trait]
impl Connection for BqConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        Ok(self.version())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded_whole() {
        let e = Url::parse("https://bigquery.googleapis.com").unwrap();
        let u = api_url(
            &e,
            &["projects", "p", "datasets", "ventes é/2024 'q'", "tables"],
            &[("pageToken", "a&b")],
        );
        assert_eq!(
            u.as_str(),
            "https://bigquery.googleapis.com/bigquery/v2/projects/p/datasets/ventes%20%C3%A9%2F2024%20'q'/tables?pageToken=a%26b"
        );
    }

    #[test]
    fn failed_jobs() {
        let emu = json!({"jobComplete": true, "schema": {"fields": []}, "rows": [],
            "errors": [{"reason": "invalidQuery", "message": "Binder Error"}]});
        assert_eq!(job_error(&emu, true).unwrap()["reason"], "invalidQuery");
        let warn = json!({"jobComplete": true, "schema": {"fields": [{"name": "a"}]},
            "errors": [{"reason": "warning"}]});
        assert!(job_error(&warn, true).is_none());
        let st = json!({"status": {"errorResult": {"reason": "backendError"}}});
        assert_eq!(job_error(&st, false).unwrap()["reason"], "backendError");
        assert!(job_error(&json!({"jobComplete": false}), false).is_none());
    }

    #[test]
    fn parameters_and_rows() {
        let p = QueryParam::Strings("tables", vec!["a".into(), "b'c".into()]).to_json();
        assert_eq!(p["parameterType"]["arrayType"]["type"], "STRING");
        assert_eq!(p["parameterValue"]["arrayValues"][1]["value"], "b'c");
        let mut rows = Vec::new();
        collect_rows(
            &json!({"rows": [{"f": [{"v": "t"}, {"v": null}, {"v": 3}]}]}),
            &mut rows,
        );
        assert_eq!(rows, vec![vec![Some("t".into()), None, Some("3".into())]]);
    }
}
