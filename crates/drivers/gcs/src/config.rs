//! GCS connector configuration, checked before any I/O.

use matih_connector_core::google::{check_project, GoogleAuth};
use matih_connector_core::http::endpoint::{service_endpoint, ServiceEndpoint};
use matih_connector_core::http::Url;
use matih_connector_core::sample::file_sets::FileSetSettings;
use matih_connector_core::{metadata, ConnectionConfig, ConnectorError, Credentials, SslMode};

/// Google's JSON API host.
pub(crate) const DEFAULT_HOST: &str = "storage.googleapis.com";
pub(crate) const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// Listing and reading objects needs nothing more.
pub(crate) const READ_SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_only";

#[derive(Clone, Debug)]
pub(crate) struct GcsConfig {
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    /// `scheme://host:port`, the JSON API's root.
    pub endpoint: Url,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub project: Option<String>,
    pub bucket: Option<String>,
    /// Anonymous for public buckets and emulators.
    pub auth: GoogleAuth,
    /// `maxObjectsPerTable`, `sampleBytes`, `sampleFiles`.
    pub files: FileSetSettings,
}

/// GCS bucket names: 3-63 characters (222 with dots) of lowercase letters,
/// digits, `-`, `_` and `.`. Only what cannot be a bucket anywhere (emulators
/// are laxer) is refused here.
fn check_bucket(b: &str) -> Result<(), ConnectorError> {
    let ok =
        !b.is_empty() && b.len() <= 222 && !b.contains('/') && !b.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.bucket",
            "the bucket name must be 1-222 characters without '/' or control characters",
        ))
    }
}

impl GcsConfig {
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<GcsConfig, ConnectorError> {
        let ServiceEndpoint {
            url: endpoint,
            tls,
            host,
            port,
            ..
        } = service_endpoint(cfg, DEFAULT_HOST)?;
        let meta_bucket = metadata::string(cfg, "bucket")?;
        let bucket = match (meta_bucket, cfg.database.clone()) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConnectorError::invalid_config(
                    "metadata.bucket",
                    "database and metadata.bucket name different buckets: give one",
                ))
            }
            (a, b) => a.or(b),
        };
        if let Some(b) = &bucket {
            check_bucket(b)?;
        }
        if cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "schema",
                "GCS has no schema level below the bucket: leave schema empty",
            ));
        }
        let auth = GoogleAuth::parse(cfg, creds)?;
        let project = match metadata::string(cfg, "project")? {
            Some(p) => Some(p),
            None => auth.key_project().map(str::to_owned),
        };
        if let Some(p) = &project {
            check_project(p)?;
        }
        if bucket.is_none() && project.is_none() {
            return Err(ConnectorError::invalid_config(
                "metadata.project",
                "give metadata.project (buckets are listed per project) or a bucket (database or metadata.bucket)",
            ));
        }
        Ok(GcsConfig {
            host,
            port,
            endpoint,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            project,
            bucket,
            auth,
            files: FileSetSettings::parse(cfg)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::{json, Value};

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

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoints() {
        let c = GcsConfig::parse(&cfg(json!({"project": "p"})), &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://storage.googleapis.com/");
        assert_eq!(
            (c.endpoint.host_str().unwrap(), c.tls),
            ("storage.googleapis.com", SslMode::VerifyFull)
        );
        let c = GcsConfig::parse(
            &cfg(json!({"project": "p", "endpoint": "http://127.0.0.1:4443"})),
            &Credentials::new(),
        )
        .unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.tls),
            ("http://127.0.0.1:4443/", SslMode::Disable)
        );
        let mut h = cfg(json!({"project": "p"}));
        h.host = Some("gcs.internal".into());
        h.port = Some(8443);
        let c = GcsConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "https://gcs.internal:8443/");
        h.ssl_enabled = Some(false);
        let c = GcsConfig::parse(&h, &Credentials::new()).unwrap();
        assert_eq!(c.endpoint.as_str(), "http://gcs.internal:8443/");
        for bad in [
            json!({"project": "p", "endpoint": "ftp://x"}),
            json!({"project": "p", "endpoint": "http://x/path"}),
            json!({"project": "p", "endpoint": "http://u:p@x"}),
        ] {
            let e = GcsConfig::parse(&cfg(bad.clone()), &Credentials::new()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn credentials_and_project() {
        let creds = Credentials::new().with(
            "serviceAccountKey",
            key_json("https://oauth2.googleapis.com/token"),
        );
        let c = GcsConfig::parse(&cfg(json!({})), &creds).unwrap();
        assert_eq!(c.project.as_deref(), Some("matih-test"));
        assert!(matches!(c.auth, GoogleAuth::ServiceAccount(_)));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        let e = GcsConfig::parse(&cfg(json!({})), &Credentials::new()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        for bad in [
            "not json",
            r#"{"client_email":"a","private_key":"nope"}"#,
            r#"{"type":"authorized_user","client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
        ] {
            let creds = Credentials::new().with("serviceAccountKey", bad);
            let e = GcsConfig::parse(&cfg(json!({"project": "p"})), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
            assert!(!e.message().contains("nope"));
        }
        let both = creds.clone().with("accessToken", "ya29.x");
        assert!(GcsConfig::parse(&cfg(json!({})), &both).is_err());
        let c = GcsConfig::parse(
            &cfg(json!({"bucket": "b"})),
            &Credentials::new().with("accessToken", "ya29.x"),
        )
        .unwrap();
        assert!(matches!(c.auth, GoogleAuth::AccessToken(_)));
        let mut d = cfg(json!({"bucket": "b1"}));
        d.database = Some("b2".into());
        assert!(GcsConfig::parse(&d, &Credentials::new()).is_err());
        assert!(
            GcsConfig::parse(&cfg(json!({"project": "bad project"})), &Credentials::new()).is_err()
        );
        assert!(GcsConfig::parse(
            &cfg(json!({"project": "p", "tokenUrl": "https://x"})),
            &Credentials::new()
        )
        .is_err());
    }
}
