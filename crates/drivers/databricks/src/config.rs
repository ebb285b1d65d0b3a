//! Configuration of a Databricks SQL connection, validated without I/O.

use std::fmt;

use matih_connector_core::{
    ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode, Timeouts,
};
use url::Url;

/// How the driver authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Personal access token (or any bearer token the workspace accepts).
    Token(SecretString),
    /// OAuth machine-to-machine: a service principal's client credentials,
    /// exchanged at `{workspace}/oidc/v1/token` for a bearer token.
    OAuth {
        client_id: SecretString,
        client_secret: SecretString,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::Token(_) => "Token(***)",
            Auth::OAuth { .. } => "OAuth(***)",
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct DatabricksConfig {
    /// `https://adb-123.4.azuredatabricks.net/` or an override.
    pub base: Url,
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    pub auth: Auth,
    pub warehouse_id: String,
    pub catalog: String,
    /// The default schema: checked by the probe, not a discovery scope.
    pub schema: Option<String>,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub timeouts: Timeouts,
    pub max_response_bytes: u64,
}

pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// TLS unless switched off explicitly: workspaces only speak https.
pub(crate) fn tls_mode(cfg: &ConnectionConfig) -> Result<SslMode, ConnectorError> {
    if cfg.ssl_enabled.is_none() && cfg.ssl_mode.is_none() {
        return Ok(SslMode::VerifyFull);
    }
    cfg.ssl_mode()
}

/// The workspace URL: metadata `endpoint` wins, then `host`/`port`.
pub(crate) fn endpoint(cfg: &ConnectionConfig) -> Result<Url, ConnectorError> {
    let tls = tls_mode(cfg)?;
    if let Some(ep) = cfg.metadata_str("endpoint") {
        let url = Url::parse(&ep).map_err(|e| {
            ConnectorError::invalid_config(
                "metadata",
                format!("metadata.endpoint is not a URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoint must be an http(s) URL with a host",
            ));
        }
        if url.scheme() == "http"
            && (cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some())
            && tls.is_tls()
        {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.endpoint is plain http but TLS is required by sslEnabled/sslMode",
            ));
        }
        return Ok(url);
    }
    let host = cfg.require_host()?;
    let scheme = if tls.is_tls() { "https" } else { "http" };
    let port = cfg.port.unwrap_or(if tls.is_tls() { 443 } else { 80 });
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let host_part = if bare.contains(':') {
        format!("[{bare}]")
    } else {
        bare.to_owned()
    };
    Url::parse(&format!("{scheme}://{host_part}:{port}/")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host does not form a URL: {e}"))
    })
}

/// The warehouse id: `metadata.warehouseId`, or the last segment of an
/// `httpPath` such as `/sql/1.0/warehouses/abc123` (or the older `/endpoints/`).
pub(crate) fn warehouse_id(cfg: &ConnectionConfig) -> Result<String, ConnectorError> {
    let from_path = match cfg.metadata_str("httpPath") {
        None => None,
        Some(p) => {
            let parts: Vec<&str> = p.trim().trim_matches('/').split('/').collect();
            match parts.as_slice() {
                ["sql", _, "warehouses" | "endpoints", id] if !id.is_empty() => {
                    Some((*id).to_owned())
                }
                _ => {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        "metadata.httpPath must look like /sql/1.0/warehouses/<id>",
                    ))
                }
            }
        }
    };
    let explicit = cfg
        .metadata_str("warehouseId")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let id =
        match (explicit, from_path) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.warehouseId and metadata.httpPath name different warehouses",
                ))
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.warehouseId (or metadata.httpPath /sql/1.0/warehouses/<id>) is required",
            )),
        };
    if id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConnectorError::invalid_config(
            "metadata",
            "the warehouse id must be alphanumeric",
        ));
    }
    Ok(id)
}

impl DatabricksConfig {
    pub(crate) fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let tls = tls_mode(cfg)?;
        let base = endpoint(cfg)?;
        let nonempty = |k: &str| creds.get(k).filter(|v| !v.is_empty()).cloned();
        let auth = match (nonempty("token"), nonempty("clientId"), nonempty("clientSecret")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "give either credentials.token or credentials.clientId + clientSecret, not both",
                ))
            }
            (Some(t), None, None) => Auth::Token(t),
            (None, Some(client_id), Some(client_secret)) => Auth::OAuth { client_id, client_secret },
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "OAuth machine-to-machine needs both credentials.clientId and credentials.clientSecret",
                ))
            }
            (None, None, None) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "credentials.token (personal access token) or credentials.clientId + clientSecret is required",
                ))
            }
        };
        for key in ["token", "clientId", "clientSecret"] {
            if creds
                .get(key)
                .is_some_and(|v| v.expose().chars().any(|c| c.is_control() || c == ' '))
            {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    format!("credentials.{key} holds characters a header cannot carry"),
                ));
            }
        }
        let catalog = cfg
            .metadata_str("catalog")
            .or_else(|| cfg.database.clone())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ConnectorError::invalid_config(
                    "metadata",
                    "metadata.catalog (or database) is required",
                )
            })?;
        if let (Some(m), Some(d)) = (cfg.metadata_str("catalog"), cfg.database.as_deref()) {
            if m.trim() != d.trim() {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.catalog and database differ",
                ));
            }
        }
        if catalog.len() > 255 || catalog.contains('\0') {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "the catalog name must be 1-255 characters",
            ));
        }
        let max_response_bytes = match cfg.metadata.get("maxResponseBytes") {
            None => DEFAULT_MAX_RESPONSE_BYTES,
            Some(v) => v.as_u64().filter(|n| *n >= 1024).ok_or_else(|| {
                ConnectorError::invalid_config(
                    "metadata",
                    "metadata.maxResponseBytes must be an integer >= 1024",
                )
            })?,
        };
        Ok(DatabricksConfig {
            host: base.host_str().unwrap_or_default().to_owned(),
            port: base.port_or_known_default().unwrap_or(443),
            base,
            auth,
            warehouse_id: warehouse_id(cfg)?,
            catalog,
            schema: cfg.schema.clone(),
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            timeouts: cfg.timeouts,
            max_response_bytes,
        })
    }

    /// `base` + fixed path segments + escaped name segments.
    pub(crate) fn url(&self, path: &str, names: &[&str]) -> Url {
        let mut u = self.base.clone();
        let prefix = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{prefix}{path}"));
        if !names.is_empty() {
            if let Ok(mut segs) = u.path_segments_mut() {
                for n in names {
                    segs.push(n);
                }
            }
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> ConnectionConfig {
        serde_json::from_value(v).unwrap()
    }

    fn pat() -> Credentials {
        Credentials::new().with("token", "dapi0123")
    }

    #[test]
    fn parses_workspaces_and_warehouses() {
        let c = cfg(
            json!({"host":"adb-1.2.azuredatabricks.net","metadata":{"httpPath":"/sql/1.0/warehouses/abc123","catalog":"main"}}),
        );
        let p = DatabricksConfig::parse(&c, &pat()).unwrap();
        assert_eq!(p.base.as_str(), "https://adb-1.2.azuredatabricks.net/");
        assert_eq!(p.warehouse_id, "abc123");
        assert_eq!(p.catalog, "main");
        assert!(!format!("{p:?}").contains("dapi0123"));
        let c = cfg(
            json!({"host":"127.0.0.1","port":8000,"sslEnabled":false,"database":"matih_seed","metadata":{"warehouseId":"w1"}}),
        );
        let p = DatabricksConfig::parse(&c, &pat()).unwrap();
        assert_eq!(p.base.as_str(), "http://127.0.0.1:8000/");
        assert_eq!(p.catalog, "matih_seed");
        assert_eq!(
            p.url("/api/2.1/unity-catalog/catalogs", &["a b/c"]).path(),
            "/api/2.1/unity-catalog/catalogs/a%20b%2Fc"
        );
        let oauth = Credentials::new()
            .with("clientId", "sp")
            .with("clientSecret", "s3cret");
        assert!(matches!(
            DatabricksConfig::parse(&c, &oauth).unwrap().auth,
            Auth::OAuth { .. }
        ));
        let c = cfg(
            json!({"host":"h.cloud.databricks.com","metadata":{"httpPath":"/sql/1.0/endpoints/e1","catalog":"c"}}),
        );
        assert_eq!(
            DatabricksConfig::parse(&c, &pat()).unwrap().warehouse_id,
            "e1"
        );
    }

    #[test]
    fn rejects_bad_configurations() {
        let ok =
            json!({"host":"h.cloud.databricks.com","metadata":{"warehouseId":"w","catalog":"c"}});
        let bad = [
            (json!({"host":"h","metadata":{"catalog":"c"}}), pat()),
            (json!({"host":"h","metadata":{"warehouseId":"w"}}), pat()),
            (
                json!({"host":"h","metadata":{"httpPath":"/x/y","catalog":"c"}}),
                pat(),
            ),
            (
                json!({"host":"h","metadata":{"httpPath":"/sql/1.0/warehouses/a","warehouseId":"b","catalog":"c"}}),
                pat(),
            ),
            (
                json!({"host":"h","metadata":{"warehouseId":"w; DROP","catalog":"c"}}),
                pat(),
            ),
            (
                json!({"host":"h","database":"x","metadata":{"warehouseId":"w","catalog":"c"}}),
                pat(),
            ),
            (ok.clone(), Credentials::new()),
            (ok.clone(), Credentials::new().with("clientId", "x")),
            (ok.clone(), pat().with("clientSecret", "y")),
            (ok.clone(), Credentials::new().with("token", "a\nb")),
        ];
        for (c, cr) in bad {
            let err = DatabricksConfig::parse(&cfg(c.clone()), &cr).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{c}: {err}");
        }
    }
}
