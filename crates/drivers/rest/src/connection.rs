//! The REST connection: one client from the core (pinned addresses, TLS,
//! redirects, limits), the authentication, and the first response (for the
//! server version).

use std::sync::Arc;
use std::time::Duration;

use matih_connector_core::http::api::TOO_LARGE_HINT;
use matih_connector_core::http::header::{HeaderValue, ACCEPT, SERVER};
use matih_connector_core::http::{Fetched, HttpClient, HttpOptions, Method, Url};
use matih_connector_core::{ConnectContext, ConnectorError};
use serde_json::Value;

use crate::config::RestConfig;

/// An open REST connection.
pub(crate) struct RestConnection {
    pub(crate) cfg: Arc<RestConfig>,
    client: HttpClient,
    /// Headers and body of the request made at connect.
    first: Fetched,
    first_is_version: bool,
}

impl RestConnection {
    pub(crate) async fn open(
        cfg: RestConfig,
        ctx: &ConnectContext,
    ) -> Result<RestConnection, ConnectorError> {
        // Same-origin redirects only (the default): an endpoint that moved
        // within the API is followed, one that points elsewhere is reported.
        let client = ctx.http_client(
            &HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
                .max_body_bytes(cfg.max_response_bytes)
                .too_large_hint(TOO_LARGE_HINT),
        )?;
        cfg.auth.authorize(&client).await?;
        // One authenticated request proves TLS, credentials and the base path:
        // the version endpoint if configured, else the first endpoint, else
        // the OpenAPI document.
        let (method, url, is_version) =
            match (&cfg.version_endpoint, cfg.endpoints.first(), &cfg.openapi) {
                (Some(v), _, _) => (Method::GET, cfg.url(v)?, true),
                (None, Some(ep), _) => (ep.method.clone(), cfg.url(&ep.path)?, false),
                (None, None, Some(src)) => (Method::GET, cfg.openapi_url(src)?, false),
                (None, None, None) => {
                    return Err(ConnectorError::internal("no endpoint to contact"))
                }
            };
        let first = request(&client, &cfg, method, url, ctx.timeouts.connect()).await?;
        Ok(RestConnection {
            cfg: Arc::new(cfg),
            client,
            first,
            first_is_version: is_version,
        })
    }

    /// One authenticated request, body bounded by `maxResponseBytes`.
    pub(crate) async fn request(
        &self,
        method: Method,
        url: Url,
        timeout: Duration,
    ) -> Result<Fetched, ConnectorError> {
        request(&self.client, &self.cfg, method, url, timeout).await
    }

    pub(crate) fn version(&self) -> String {
        if let Some(v) = self
            .cfg
            .version_header
            .as_ref()
            .and_then(|h| self.first.header(h))
        {
            return v.to_owned();
        }
        if self.first_is_version {
            if let Some(v) = version_from_body(&self.first.body) {
                return v;
            }
        }
        self.first
            .header(&SERVER)
            .map(str::to_owned)
            .unwrap_or_else(|| "unknown".to_owned())
    }
}

async fn request(
    client: &HttpClient,
    cfg: &RestConfig,
    method: Method,
    url: Url,
    timeout: Duration,
) -> Result<Fetched, ConnectorError> {
    let post = method == Method::POST;
    let mut req = client
        .request(method, url)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .timeout(timeout);
    if post {
        req = req.json(&serde_json::json!({}));
    }
    cfg.auth.apply(req).await?.fetch().await
}

/// A version endpoint's body: a JSON string, a `version` field (also nested
/// one level, as in `{"app":{"version":…}}`), or a short plain-text body.
fn version_from_body(body: &[u8]) -> Option<String> {
    let short = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.len() <= 128 && !s.contains('\n')).then(|| s.to_owned())
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(s)) => short(&s),
        Ok(Value::Object(o)) => {
            let pick = |v: &Value| match v {
                Value::String(s) => short(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            for k in ["version", "Version", "apiVersion", "serverVersion"] {
                if let Some(v) = o.get(k).and_then(pick) {
                    return Some(v);
                }
            }
            o.values()
                .filter_map(|v| v.as_object())
                .find_map(|inner| inner.get("version").and_then(pick))
        }
        Ok(_) => None,
        Err(_) => std::str::from_utf8(body).ok().and_then(short),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_bodies() {
        let cases: &[(&str, Option<&str>)] = &[
            (r#""1.2.3""#, Some("1.2.3")),
            (r#"{"version":"2.0.1","build":"abc"}"#, Some("2.0.1")),
            (r#"{"version":3}"#, Some("3")),
            (r#"{"app":{"name":"x","version":"9.9"}}"#, Some("9.9")),
            ("v4.5\n", Some("v4.5")),
            ("<html>\n<body>hi</body>\n</html>", None),
            (r#"{"status":"ok"}"#, None),
        ];
        for (body, want) in cases {
            assert_eq!(
                version_from_body(body.as_bytes()).as_deref(),
                *want,
                "{body}"
            );
        }
    }
}
