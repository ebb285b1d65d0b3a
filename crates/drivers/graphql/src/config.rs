//! GraphQL connector configuration: endpoint URL, version header, limits and
//! authentication, all checked before any I/O. The scheme, TLS, path, limit
//! and credential rules are the generic API convention of
//! `matih_connector_core::http::api`.

use matih_connector_core::http::api::{self, join, relative_path, ApiBase};
use matih_connector_core::http::header::HeaderName;
use matih_connector_core::http::{HttpAuth, Url};
use matih_connector_core::{
    metadata, ConnectionConfig, ConnectorError, Credentials, SslMode, Timeouts,
};

/// Default cap on one response: introspection of a large schema runs to
/// several MiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// The GraphQL connector's parsed configuration. Holds credentials only inside
/// [`HttpAuth`], whose `Debug` prints no secret.
#[derive(Clone, Debug)]
pub(crate) struct GraphqlConfig {
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    /// The endpoint, `scheme://host:port/graphql` by default.
    pub url: Url,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The schema name: metadata `name`, else the host.
    pub name: String,
    pub version_header: Option<HeaderName>,
    pub max_response_bytes: u64,
    /// List the Query/Mutation/Subscription root types as tables too.
    pub include_roots: bool,
    pub auth: HttpAuth,
    pub timeouts: Timeouts,
}

impl GraphqlConfig {
    /// Parses and checks everything; no I/O.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<GraphqlConfig, ConnectorError> {
        let ApiBase {
            scheme,
            tls,
            host,
            port,
            origin,
        } = ApiBase::parse(cfg)?;
        let path = match metadata::string(cfg, "path")? {
            Some(p) => relative_path("metadata.path", &p)?,
            None => "/graphql".to_owned(),
        };
        let url = join(&origin, &path)?;
        let version_header = metadata::string(cfg, "versionHeader")?
            .map(|h| api::header_name("versionHeader", &h))
            .transpose()?;
        let name = metadata::string(cfg, "name")?.unwrap_or_else(|| host.clone());
        let auth = api::credentials(cfg, creds, scheme)?;
        Ok(GraphqlConfig {
            host,
            port,
            url,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            name,
            version_header,
            max_response_bytes: api::max_response_bytes(cfg, DEFAULT_MAX_RESPONSE_BYTES)?,
            include_roots: metadata::bool(cfg, "includeRootTypes")?.unwrap_or(false),
            auth,
            timeouts: cfg.timeouts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::{json, Value};

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("api.example.com".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn url_and_defaults() {
        let g = GraphqlConfig::parse(&cfg(json!({})), &Credentials::new()).unwrap();
        assert_eq!(g.url.as_str(), "https://api.example.com/graphql");
        assert_eq!(g.tls, SslMode::VerifyFull);
        assert!(!g.include_roots);
        let g = GraphqlConfig::parse(
            &cfg(json!({"scheme": "http", "path": "/v1/gql", "includeRootTypes": true, "name": "shop"})),
            &Credentials::new().with("token", "t"),
        )
        .unwrap();
        assert_eq!(g.url.as_str(), "http://api.example.com/v1/gql");
        assert!(g.include_roots);
        assert_eq!(g.name, "shop");
        assert_eq!(g.auth.mode(), "bearer");
    }

    #[test]
    fn rejects_nonsense() {
        let creds = Credentials::new();
        for meta in [
            json!({"path": "https://evil.example/graphql"}),
            json!({"path": "//evil/graphql"}),
            json!({"includeRootTypes": "yes"}),
            json!({"maxResponseBytes": 1}),
            json!({"versionHeader": "bad header"}),
            json!({"tokenUrl": "https://idp/token"}),
        ] {
            let e = GraphqlConfig::parse(&cfg(meta.clone()), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{meta}");
        }
        let mixed = Credentials::new().with("token", "t").with("username", "u");
        assert!(GraphqlConfig::parse(&cfg(json!({})), &mixed).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let g = GraphqlConfig::parse(
            &cfg(json!({})),
            &Credentials::new().with("token", "sekrit-token-42"),
        )
        .unwrap();
        assert!(!format!("{g:?}").contains("sekrit-token-42"));
    }
}
