//! The GraphQL connection: one client from the core (pinned addresses, TLS,
//! redirects, limits), the authentication, and the headers of the first
//! response (for the server version).

use std::sync::Arc;
use std::time::Duration;

use graphql_client::{QueryBody, Response as GqlResponse};
use matih_connector_core::http::api::TOO_LARGE_HINT;
use matih_connector_core::http::header::{HeaderMap, HeaderValue, ACCEPT, SERVER};
use matih_connector_core::http::{display_url, HttpClient, HttpOptions};
use matih_connector_core::{ConnectContext, ConnectorError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::GraphqlConfig;
use crate::errors::{graphql_error, no_data, refine_status};

/// An open GraphQL connection.
pub(crate) struct GraphqlConnection {
    pub(crate) cfg: Arc<GraphqlConfig>,
    client: HttpClient,
    first_headers: HeaderMap,
}

impl GraphqlConnection {
    pub(crate) async fn open(
        cfg: GraphqlConfig,
        ctx: &ConnectContext,
    ) -> Result<GraphqlConnection, ConnectorError> {
        // Same-origin redirects only (the default); GraphQL-over-HTTP servers
        // answer errors with an `errors` array, read by `refine_status`.
        let client = ctx.http_client(
            &HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
                .max_body_bytes(cfg.max_response_bytes)
                .too_large_hint(TOO_LARGE_HINT)
                .refine(refine_status),
        )?;
        cfg.auth.authorize(&client).await?;
        let mut conn = GraphqlConnection {
            cfg: Arc::new(cfg),
            client,
            first_headers: HeaderMap::new(),
        };
        // The cheapest query every GraphQL server answers proves TLS,
        // credentials and the endpoint path.
        let (headers, _): (HeaderMap, Value) = conn
            .execute(
                "query MatihConnect { __typename }",
                "MatihConnect",
                ctx.timeouts.connect(),
            )
            .await?;
        conn.first_headers = headers;
        Ok(conn)
    }

    /// Runs one query, body bounded by `maxResponseBytes`; a response with an
    /// `errors` array is an error even when it also carries data.
    pub(crate) async fn execute<D: DeserializeOwned>(
        &self,
        query: &'static str,
        operation_name: &'static str,
        timeout: Duration,
    ) -> Result<(HeaderMap, D), ConnectorError> {
        let what = format!("POST {} ({operation_name})", display_url(&self.cfg.url));
        let body = QueryBody {
            variables: serde_json::json!({}),
            query,
            operation_name,
        };
        let req = self
            .client
            .post(self.cfg.url.clone())
            .what(what.clone())
            .timeout(timeout)
            .header(
                ACCEPT,
                HeaderValue::from_static(
                    "application/graphql-response+json, application/json;q=0.9",
                ),
            )
            .json(&body);
        let fetched = self.cfg.auth.apply(req).await?.fetch().await?;
        // Errors first: partial data beside them may not have the expected shape.
        let resp: GqlResponse<Value> = fetched.json()?;
        if let Some(errors) = resp.errors.filter(|e| !e.is_empty()) {
            return Err(graphql_error(&errors, &what));
        }
        match resp.data.filter(|d| !d.is_null()) {
            Some(d) => {
                let data = serde_json::from_value(d).map_err(|e| no_data(&what, Some(e)))?;
                Ok((fetched.headers, data))
            }
            None => Err(no_data(&what, None)),
        }
    }

    pub(crate) fn version(&self) -> String {
        let header = |name: &matih_connector_core::http::header::HeaderName| {
            self.first_headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        self.cfg
            .version_header
            .as_ref()
            .and_then(header)
            .or_else(|| header(&SERVER))
            .map(str::to_owned)
            .unwrap_or_else(|| "unknown".to_owned())
    }
}
