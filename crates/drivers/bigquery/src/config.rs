//! BigQuery connector configuration, checked before any I/O.

use matih_connector_core::google::{check_project, GoogleAuth};
use matih_connector_core::http::endpoint::{service_endpoint, ServiceEndpoint};
use matih_connector_core::http::Url;
use matih_connector_core::{
    metadata, ConnectionConfig, ConnectorError, Credentials, SslMode, Timeouts,
};

/// Google's REST API host.
pub(crate) const DEFAULT_HOST: &str = "bigquery.googleapis.com";
pub(crate) const DEFAULT_ENDPOINT: &str = "https://bigquery.googleapis.com";
/// Listing datasets and tables and running INFORMATION_SCHEMA queries needs
/// nothing more.
pub(crate) const READ_SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";

#[derive(Clone, Debug)]
pub(crate) struct BqConfig {
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    /// `scheme://host:port`, the REST API's root.
    pub endpoint: Url,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    /// The project whose datasets are discovered (and where queries run).
    pub project: String,
    /// Where INFORMATION_SCHEMA queries run (`US`, `EU`, `europe-west3`…).
    pub location: Option<String>,
    /// The one dataset to discover, when `database` names one.
    pub dataset: Option<String>,
    /// Anonymous only for emulators (BigQuery itself refuses it).
    pub auth: GoogleAuth,
    pub timeouts: Timeouts,
}

/// Dataset ids: letters, digits and underscores, at most 1024 bytes. The
/// emulator is laxer, so only what cannot travel in a URL path segment or a
/// quoted identifier is refused here.
fn check_dataset(d: &str) -> Result<(), ConnectorError> {
    let ok = !d.is_empty()
        && d.len() <= 1024
        && !d.chars().any(|c| c.is_control() || c == '`' || c == '/');
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "database",
            "the dataset name must be 1-1024 characters without '/', '`' or control characters",
        ))
    }
}

/// Locations: `US`, `EU`, `us-central1`…
fn check_location(l: &str) -> Result<(), ConnectorError> {
    let ok = l.len() <= 64 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.location",
            "metadata.location must be a location such as US, EU or europe-west3",
        ))
    }
}

impl BqConfig {
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<BqConfig, ConnectorError> {
        let ServiceEndpoint {
            url: endpoint,
            tls,
            host,
            port,
            ..
        } = service_endpoint(cfg, DEFAULT_HOST)?;
        let dataset = cfg
            .database
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if let Some(d) = dataset {
            check_dataset(d)?;
        }
        if cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "schema",
                "BigQuery has no schema level below the dataset: name the dataset as database",
            ));
        }
        let auth = GoogleAuth::parse(cfg, creds)?;
        // Google's own endpoint refuses anonymous calls; only an override
        // (an emulator, a proxy that adds credentials) may go without.
        if matches!(auth, GoogleAuth::Anonymous)
            && endpoint.as_str().trim_end_matches('/') == DEFAULT_ENDPOINT
        {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey is required for bigquery.googleapis.com",
            ));
        }
        let project = metadata::string(cfg, "project")?.ok_or_else(|| {
            ConnectorError::invalid_config("metadata.project", "metadata.project is required")
        })?;
        check_project(&project)?;
        let location = metadata::string(cfg, "location")?;
        if let Some(l) = &location {
            check_location(l)?;
        }
        Ok(BqConfig {
            host,
            port,
            endpoint,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            project,
            location,
            dataset: dataset.map(str::to_owned),
            auth,
            timeouts: cfg.timeouts,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    /// A throwaway 2048-bit RSA key made for these tests only.
    pub(crate) const TEST_RSA_KEY: &str = include_str!("../tests/data/test-rsa-key.pem");

    pub(crate) fn key_json(token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "matih-test",
            "private_key_id": "k1",
            "private_key": TEST_RSA_KEY,
            "client_email": "reader@matih-test.iam.gserviceaccount.com",
            "token_uri": token_uri,
        })
        .to_string()
    }

    fn cfg(meta: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn sa() -> Credentials {
        Credentials::new().with(
            "serviceAccountKey",
            key_json("https://oauth2.googleapis.com/token"),
        )
    }

    #[test]
    fn endpoints() {
        let c = BqConfig::parse(&cfg(json!({"project": "p"})), &sa()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://bigquery.googleapis.com/");
        assert_eq!(
            (c.endpoint.host_str().unwrap(), c.tls),
            ("bigquery.googleapis.com", SslMode::VerifyFull)
        );
        let c = BqConfig::parse(
            &cfg(json!({"project": "p", "endpoint": "http://127.0.0.1:9050"})),
            &Credentials::new(),
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.tls),
            ("http://127.0.0.1:9050/", SslMode::Disable)
        );
        let mut h = cfg(json!({"project": "p"}));
        h.host = Some("bq.internal".into());
        h.port = Some(8443);
        let c = BqConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://bq.internal:8443/");
        h.ssl_enabled = Some(false);
        let c = BqConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://bq.internal:8443/");
        for bad in [
            json!({"project": "p", "endpoint": "ftp://x"}),
            json!({"project": "p", "endpoint": "http://x/path"}),
            json!({"project": "p", "endpoint": "http://u:p@x"}),
        ] {
            let e = BqConfig::parse(&cfg(bad.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn credentials_project_location_dataset() {
        let c = BqConfig::parse(&cfg(json!({"project": "p", "location": "EU"})), &sa()).unwrap();
        assert_eq!(c.project, "p");
        assert_eq!(c.location.as_deref(), Some("EU"));
        assert!(matches!(c.auth, GoogleAuth::ServiceAccount(_)));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        // The project is required even when the key names one: it says where
        // queries are billed, which is the user's choice.
        let e = BqConfig::parse(&cfg(json!({})), &sa()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        // Google's endpoint without credentials.
        let e = BqConfig::parse(&cfg(json!({"project": "p"})), &Credentials::new()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        for bad in [
            "not json",
            r#"{"client_email":"a","private_key":"nope"}"#,
            r#"{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
        ] {
            let creds = Credentials::new().with("serviceAccountKey", bad);
            let e = BqConfig::parse(&cfg(json!({"project": "p"})), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
            assert!(!e.message().contains("nope"));
        }
        let both = sa().with("accessToken", "ya29.x");
        assert!(BqConfig::parse(&cfg(json!({"project": "p"})), &both).is_err());
        for bad in [
            json!({"project": "bad project"}),
            json!({"project": "p", "location": "us central"}),
            json!({"project": "p", "location": 3}),
        ] {
            assert!(BqConfig::parse(&cfg(bad.clone()), &sa()).is_err(), "{bad}");
        }
        let mut d = cfg(json!({"project": "p"}));
        d.database = Some("sales `x`".into());
        assert!(BqConfig::parse(&d, &sa()).is_err());
        d.database = Some("ventes é 2024".into());
        assert_eq!(
            BqConfig::parse(&d, &sa()).unwrap().dataset.as_deref(),
            Some("ventes é 2024")
        );
        d.schema = Some("x".into());
        assert!(BqConfig::parse(&d, &sa()).is_err());
    }
}
