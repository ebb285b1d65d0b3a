//! The BigQuery connection: REST calls (jobs.query and the listings) through
//! the core's pinned HTTP client (egress resolver, TLS, bounded bodies),
//! authorized by a bearer token or a service account's JWT bearer grant (core
//! `TokenSource`).

use matih_connector_core::google::{self, ApiClient};
use matih_connector_core::http::Url;
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode};
use serde_json::{json, Value};

use crate::config::{BqConfig, READ_SCOPE};
use crate::errors::{job_failure, refine};

/// Listing pages and query results are read only this far.
const MAX_JSON_BYTES: u64 = 32 << 20;
/// Rows one INFORMATION_SCHEMA result page carries at most.
const PAGE_ROWS: u64 = 10_000;
/// Pages one query may return: a runaway catalog stops with an error
/// instead of filling memory.
const MAX_PAGES: usize = 200;

pub(crate) struct BqConnection {
    pub(crate) cfg: BqConfig,
    api: ApiClient,
}

impl BqConnection {
    pub(crate) async fn open(
        cfg: BqConfig,
        ctx: &ConnectContext,
    ) -> Result<BqConnection, ConnectorError> {
        let api = ApiClient::open(
            ctx,
            cfg.tls,
            cfg.ca_pem.as_deref(),
            MAX_JSON_BYTES,
            refine,
            &cfg.auth,
            READ_SCOPE,
        )
        .await?;
        let conn = BqConnection { cfg, api };
        // The cheapest authorized call proves endpoint, TLS and credentials,
        // and that the project (and dataset) exists.
        let what = "checking access";
        with_timeout(ctx.timeouts.connect(), what, conn.check_access()).await?;
        Ok(conn)
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

    /// GETs a JSON document within the size and time limits.
    pub(crate) async fn get_json(&self, url: Url, what: &str) -> Result<Value, ConnectorError> {
        self.api.json(self.api.get(url), what).await
    }

    /// POSTs a JSON body and reads the JSON answer within the limits.
    async fn post_json(&self, url: Url, body: &Value, what: &str) -> Result<Value, ConnectorError> {
        self.api.json(self.api.post(url).json(body), what).await
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
                return Err(job_failure(err, what));
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
    pub(crate) fn version(&self) -> String {
        let base = "BigQuery API v2";
        let at = self.cfg.endpoint.as_str().trim_end_matches('/');
        let google = at == crate::config::DEFAULT_ENDPOINT;
        match &self.api.server() {
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
    google::api_url(endpoint, &["bigquery", "v2"], segments, query)
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
