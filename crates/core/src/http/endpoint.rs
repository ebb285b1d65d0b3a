//! A cloud service's endpoint from a connection's settings: `metadata.endpoint`,
//! else `host`/`port` with the scheme the TLS settings imply, else the
//! vendor's own host — with the TLS mode that goes with the scheme. One rule
//! for the AWS, Google and other object-store drivers.

use url::Url;

use crate::{metadata, ConnectionConfig, ConnectorError, SslMode};

/// Where a service is, checked before any I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEndpoint {
    /// `scheme://host:port/`.
    pub url: Url,
    /// The host (IPv6 literals without brackets).
    pub host: String,
    /// The port (the scheme's default when none is written).
    pub port: u16,
    /// `Disable` for an http endpoint; https verifies fully unless an SSL mode
    /// says otherwise.
    pub tls: SslMode,
    /// True when it is not the vendor's own endpoint (`host`, `port` or
    /// `metadata.endpoint` given).
    pub custom: bool,
}

/// Whether TLS was said anything about (`sslEnabled` or `sslMode` given).
pub fn tls_said(cfg: &ConnectionConfig) -> bool {
    cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some()
}

/// The TLS mode for a scheme: https verifies fully unless a mode says
/// otherwise; http with TLS asked for is a contradiction. The one rule for
/// every HTTP endpoint (also Azure Blob's account endpoints).
pub fn tls_for_scheme(cfg: &ConnectionConfig, scheme: &str) -> Result<SslMode, ConnectorError> {
    let mode = cfg.ssl_mode()?;
    match (scheme, tls_said(cfg), mode.is_tls()) {
        ("http", true, true) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            format!("an http endpoint contradicts sslMode {mode}"),
        )),
        ("http", _, _) => Ok(SslMode::Disable),
        (_, true, false) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            "an https endpoint contradicts sslEnabled=false / sslMode disable",
        )),
        (_, true, true) => Ok(mode),
        (_, false, _) => Ok(SslMode::VerifyFull),
    }
}

/// A URL's host without IPv6 brackets.
pub fn host_of(url: &Url) -> Option<String> {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// `scheme://host:port` with IPv6 literals bracketed.
pub fn origin(scheme: &str, host: &str, port: u16) -> Result<Url, ConnectorError> {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Url::parse(&format!("{scheme}://{h}:{port}")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host {host:?} does not form a URL: {e}"))
    })
}

/// The endpoint: `metadata.endpoint` (`http(s)://host[:port]`, agreeing with
/// `host`/`port` when those are given too), else `host`/`port`, else
/// `https://<default_host>` (on `port` when given).
pub fn service_endpoint(
    cfg: &ConnectionConfig,
    default_host: &str,
) -> Result<ServiceEndpoint, ConnectorError> {
    let (url, custom) = match metadata::string(cfg, "endpoint")? {
        Some(text) => {
            let url = Url::parse(&text).map_err(|e| {
                ConnectorError::invalid_config(
                    "metadata.endpoint",
                    format!("metadata.endpoint is not a URL: {e}"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || !matches!(url.path(), "" | "/")
            {
                return Err(ConnectorError::invalid_config(
                    "metadata.endpoint",
                    "metadata.endpoint must be http(s)://host[:port] without user, path or query",
                ));
            }
            let host = host_of(&url).unwrap_or_default();
            if let Some(h) = cfg.host.as_deref().map(str::trim) {
                if !h.eq_ignore_ascii_case(&host) {
                    return Err(ConnectorError::invalid_config(
                        "host",
                        "host and metadata.endpoint name different hosts: give one",
                    ));
                }
            }
            let port = url.port_or_known_default().unwrap_or(443);
            if cfg.port.is_some_and(|p| p != port) {
                return Err(ConnectorError::invalid_config(
                    "port",
                    "port and metadata.endpoint name different ports: give one",
                ));
            }
            (origin(url.scheme(), &host, port)?, true)
        }
        None => match cfg.host.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => {
                let https = !tls_said(cfg) || cfg.ssl_mode()?.is_tls();
                let scheme = if https { "https" } else { "http" };
                let port = cfg.port.unwrap_or(if https { 443 } else { 80 });
                let host = h.trim_start_matches('[').trim_end_matches(']');
                (origin(scheme, host, port)?, true)
            }
            _ => (
                origin("https", default_host, cfg.port.unwrap_or(443))?,
                cfg.port.is_some(),
            ),
        },
    };
    let tls = tls_for_scheme(cfg, url.scheme())?;
    Ok(ServiceEndpoint {
        host: host_of(&url).unwrap_or_default(),
        port: url.port_or_known_default().unwrap_or(443),
        url,
        tls,
        custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn cfg(meta: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_from_metadata_host_or_default() {
        let e = service_endpoint(&cfg(json!({})), "storage.googleapis.com").unwrap();
        assert_eq!(e.url.as_str(), "https://storage.googleapis.com/");
        assert_eq!((e.port, e.tls, e.custom), (443, SslMode::VerifyFull, false));

        let e = service_endpoint(&cfg(json!({"endpoint": "http://[::1]:4443"})), "x").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("::1", 4443, SslMode::Disable)
        );
        assert!(e.custom);

        let mut c = cfg(json!({}));
        c.host = Some("minio.internal".into());
        c.port = Some(9000);
        c.ssl_enabled = Some(false);
        let e = service_endpoint(&c, "x").unwrap();
        assert_eq!(e.url.as_str(), "http://minio.internal:9000/");

        for bad in [
            json!({"endpoint": "ftp://x"}),
            json!({"endpoint": "http://u:p@x"}),
            json!({"endpoint": "http://x/path"}),
            json!({"endpoint": "http://x?a=b"}),
        ] {
            let e = service_endpoint(&cfg(bad.clone()), "x").unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:5000"}));
        c.ssl_mode = Some(SslMode::VerifyFull);
        assert!(service_endpoint(&c, "x").is_err());
        c.ssl_mode = None;
        c.host = Some("other".into());
        assert!(service_endpoint(&c, "x").is_err());
    }
}
