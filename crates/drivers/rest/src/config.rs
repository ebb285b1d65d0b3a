//! REST connector configuration: base URL, endpoints, version source, limits and
//! authentication, all checked before any I/O. The scheme, TLS, path, limit
//! and credential rules are the generic API convention of
//! `matih_connector_core::http::api`.

use std::collections::HashSet;

use matih_connector_core::http::api::{self, join, relative_path, ApiBase};
use matih_connector_core::http::header::HeaderName;
use matih_connector_core::http::{HttpAuth, Method, Url};
use matih_connector_core::{
    metadata, ConnectionConfig, ConnectorError, Credentials, SslMode, Timeouts,
};
use serde_json::Value;

/// Default cap on one sampled response body.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;
const MAX_ENDPOINTS: usize = 1000;

/// One endpoint discovered as a table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Endpoint {
    pub name: String,
    /// Path relative to the base URL, query string allowed.
    pub path: String,
    pub method: Method,
    /// JSON pointer to the array of records in the response.
    pub records_path: Option<String>,
    pub comment: Option<String>,
}

/// Where the OpenAPI document comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OpenApiSource {
    /// A path on the API's own origin.
    Path(String),
    /// An absolute URL, possibly on another host (resolved and egress-checked).
    Url(Url),
}

/// The REST connector's parsed configuration. Holds credentials only inside
/// [`HttpAuth`], whose `Debug` prints no secret.
#[derive(Clone, Debug)]
pub(crate) struct RestConfig {
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    /// `scheme://host:port/basePath/`, always ending in `/`.
    pub base: Url,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The schema name: metadata `name`, else the host.
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub openapi: Option<OpenApiSource>,
    pub default_records_path: Option<String>,
    pub version_endpoint: Option<String>,
    pub version_header: Option<HeaderName>,
    pub max_response_bytes: u64,
    pub auth: HttpAuth,
    pub timeouts: Timeouts,
}

fn check_pointer(key: &'static str, p: &str) -> Result<String, ConnectorError> {
    if p.is_empty() || p.starts_with('/') {
        Ok(p.to_owned())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "{key} {:?} must be a JSON pointer such as /data/items",
                trunc(p)
            ),
        ))
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(80).collect()
}

fn parse_method(s: &str) -> Result<Method, ConnectorError> {
    match s.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        // Search-style APIs answer POST without side effects; anything else
        // could change data, and discovery only reads.
        "POST" => Ok(Method::POST),
        other => Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "endpoint method {:?} is not supported: GET or POST",
                trunc(other)
            ),
        )),
    }
}

fn default_name(path: &str) -> String {
    let p = path.trim_start_matches('/');
    let p = p.split('?').next().unwrap_or(p).trim_end_matches('/');
    if p.is_empty() {
        "/".to_owned()
    } else {
        p.to_owned()
    }
}

fn parse_endpoints(v: &Value) -> Result<Vec<Endpoint>, ConnectorError> {
    let items = match v {
        Value::Array(a) => a,
        _ => {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoints must be a list of paths or {name, path, method, recordsPath} objects",
            ))
        }
    };
    if items.len() > MAX_ENDPOINTS {
        return Err(ConnectorError::invalid_config(
            "metadata",
            format!(
                "metadata.endpoints lists {} endpoints; at most {MAX_ENDPOINTS}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut names = HashSet::new();
    for item in items {
        let ep = match item {
            Value::String(path) => {
                let path = relative_path("endpoint path", path)?;
                Endpoint {
                    name: default_name(&path),
                    path,
                    method: Method::GET,
                    records_path: None,
                    comment: None,
                }
            }
            Value::Object(o) => {
                for k in o.keys() {
                    if !matches!(
                        k.as_str(),
                        "name" | "path" | "method" | "recordsPath" | "description"
                    ) {
                        return Err(ConnectorError::invalid_config(
                            "metadata",
                            format!(
                                "unknown endpoint key {:?}: expected name, path, method, recordsPath, description",
                                trunc(k)
                            ),
                        ));
                    }
                }
                let s = |k: &str| -> Result<Option<String>, ConnectorError> {
                    match o.get(k) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s.clone())),
                        Some(_) => Err(ConnectorError::invalid_config(
                            "metadata",
                            format!("endpoint {k} must be a string"),
                        )),
                    }
                };
                let path = s("path")?.ok_or_else(|| {
                    ConnectorError::invalid_config("metadata", "every endpoint object needs a path")
                })?;
                let path = relative_path("endpoint path", &path)?;
                let name = match s("name")? {
                    Some(n) if !n.trim().is_empty() => n,
                    Some(_) => {
                        return Err(ConnectorError::invalid_config(
                            "metadata",
                            "endpoint name is empty",
                        ))
                    }
                    None => default_name(&path),
                };
                let method = match s("method")? {
                    Some(m) => parse_method(&m)?,
                    None => Method::GET,
                };
                let records_path = s("recordsPath")?
                    .map(|p| check_pointer("recordsPath", &p))
                    .transpose()?;
                Endpoint {
                    name,
                    path,
                    method,
                    records_path,
                    comment: s("description")?,
                }
            }
            _ => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "each metadata.endpoints entry is a path string or an object",
                ))
            }
        };
        if !names.insert(ep.name.clone()) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                format!("endpoint name {:?} is used twice", trunc(&ep.name)),
            ));
        }
        out.push(ep);
    }
    Ok(out)
}

impl RestConfig {
    /// Parses and checks everything; no I/O.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<RestConfig, ConnectorError> {
        let ApiBase {
            scheme,
            tls,
            host,
            port,
            origin: mut base,
        } = ApiBase::parse(cfg)?;
        if let Some(bp) = metadata::string(cfg, "basePath")? {
            let bp = relative_path("metadata.basePath", &bp)?;
            if bp.contains('?') {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.basePath cannot hold a query string",
                ));
            }
            let trimmed = bp.trim_matches('/');
            if !trimmed.is_empty() {
                base = join(&base, &format!("{trimmed}/"))?;
            }
        }
        let endpoints = match cfg.metadata.get("endpoints") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_endpoints(v)?,
        };
        for ep in &endpoints {
            join(&base, &ep.path)?;
        }
        let openapi = match (
            metadata::string(cfg, "openapiPath")?,
            metadata::string(cfg, "openapiUrl")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "give metadata.openapiPath or openapiUrl, not both",
                ))
            }
            (Some(p), None) => {
                let p = relative_path("metadata.openapiPath", &p)?;
                join(&base, &p)?;
                Some(OpenApiSource::Path(p))
            }
            (None, Some(u)) => {
                let url = Url::parse(&u).map_err(|e| {
                    ConnectorError::invalid_config("metadata", format!("metadata.openapiUrl: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || !url.username().is_empty()
                {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        "metadata.openapiUrl must be an http(s) URL with a host and no user information",
                    ));
                }
                Some(OpenApiSource::Url(url))
            }
            (None, None) => None,
        };
        if endpoints.is_empty() && openapi.is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "a REST connector needs metadata.endpoints or an OpenAPI document (metadata.openapiPath / openapiUrl)",
            ));
        }
        let version_endpoint = metadata::string(cfg, "versionEndpoint")?
            .map(|p| relative_path("metadata.versionEndpoint", &p))
            .transpose()?;
        if let Some(v) = &version_endpoint {
            join(&base, v)?;
        }
        let version_header = metadata::string(cfg, "versionHeader")?
            .map(|h| api::header_name("versionHeader", &h))
            .transpose()?;
        let default_records_path = metadata::string(cfg, "recordsPath")?
            .map(|p| check_pointer("metadata.recordsPath", &p))
            .transpose()?;
        let name = metadata::string(cfg, "name")?.unwrap_or_else(|| host.clone());
        let auth = api::credentials(cfg, creds, scheme)?;
        Ok(RestConfig {
            host,
            port,
            base,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            name,
            endpoints,
            openapi,
            default_records_path,
            version_endpoint,
            version_header,
            max_response_bytes: api::max_response_bytes(cfg, DEFAULT_MAX_RESPONSE_BYTES)?,
            auth,
            timeouts: cfg.timeouts,
        })
    }

    pub fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        join(&self.base, path)
    }

    /// Where the OpenAPI document is read: a path under the base, or a URL.
    pub(crate) fn openapi_url(&self, src: &OpenApiSource) -> Result<Url, ConnectorError> {
        match src {
            OpenApiSource::Path(p) => self.url(p),
            OpenApiSource::Url(u) => Ok(u.clone()),
        }
    }

    pub fn records_path<'a>(&'a self, ep: &'a Endpoint) -> Option<&'a str> {
        ep.records_path
            .as_deref()
            .or(self.default_records_path.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn base_url_endpoints_and_defaults() {
        let c = cfg(
            json!({"basePath": "/v2/", "endpoints": ["/users", {"name": "Open \"orders\"", "path": "orders?status=open", "recordsPath": "/data"}]}),
        );
        let r = RestConfig::parse(&c, &Credentials::new()).unwrap();
        assert_eq!(r.base.as_str(), "https://api.example.com/v2/");
        assert_eq!(r.tls, SslMode::VerifyFull);
        assert_eq!(r.name, "api.example.com");
        assert_eq!(r.endpoints[0].name, "users");
        assert_eq!(
            r.url(&r.endpoints[0].path).unwrap().as_str(),
            "https://api.example.com/v2/users"
        );
        assert_eq!(
            r.url(&r.endpoints[1].path).unwrap().as_str(),
            "https://api.example.com/v2/orders?status=open"
        );
        assert_eq!(r.endpoints[1].records_path.as_deref(), Some("/data"));
        assert_eq!(r.auth.mode(), "none");
    }

    #[test]
    fn rejects_paths_leaving_the_origin_and_bad_shapes() {
        for meta in [
            json!({"endpoints": ["https://evil.example/x"]}),
            json!({"endpoints": ["//evil.example/x"]}),
            json!({"endpoints": ["/a/../../etc"]}),
            json!({"endpoints": [{"path": "/x", "methd": "GET"}]}),
            json!({"endpoints": [{"path": "/x", "method": "DELETE"}]}),
            json!({"endpoints": ["/x", "x"]}),
            json!({"endpoints": "users"}),
            json!({"endpoints": [{"path": "/x", "recordsPath": "data"}]}),
            json!({}),
            json!({"openapiPath": "/o.json", "openapiUrl": "https://h/o.json"}),
            json!({"endpoints": ["/x"], "maxResponseBytes": 10}),
            json!({"endpoints": ["/x"], "scheme": "ftp"}),
        ] {
            let err = RestConfig::parse(&cfg(meta.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{meta}");
        }
    }

    #[test]
    fn credentials_follow_the_api_convention() {
        let c = cfg(json!({"endpoints": ["/x"], "tokenUrl": "https://idp.example/token"}));
        let creds = Credentials::new()
            .with("clientId", "i")
            .with("clientSecret", "s");
        let r = RestConfig::parse(&c, &creds).unwrap();
        assert_eq!(r.auth.mode(), "oauth2ClientCredentials");
        let mixed = Credentials::new().with("token", "t").with("apiKey", "k");
        let e = RestConfig::parse(&cfg(json!({"endpoints": ["/x"]})), &mixed).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
    }

    #[test]
    fn debug_shows_no_secret() {
        let c = cfg(json!({"endpoints": ["/x"], "apiKeyHeader": "X-Key"}));
        let r =
            RestConfig::parse(&c, &Credentials::new().with("apiKey", "sekrit-key-123")).unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("sekrit-key-123"), "{dbg}");
        assert!(dbg.contains("x-key"), "{dbg}");
    }
}
