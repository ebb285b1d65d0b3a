//! S3 connector configuration, checked before any I/O.

use matih_connector_core::sample::file_sets::FileSetSettings;
use matih_connector_core::{ConnectionConfig, ConnectorError, Credentials};

use matih_connector_core::aws::AwsSettings;
use matih_connector_core::metadata;

#[derive(Clone, Debug)]
pub(crate) struct S3Config {
    pub aws: AwsSettings,
    /// The one bucket to discover (`metadata.bucket` or `database`); all
    /// buckets the credentials can list when absent.
    pub bucket: Option<String>,
    pub force_path_style: bool,
    /// `maxObjectsPerTable`, `sampleBytes`, `sampleFiles`.
    pub files: FileSetSettings,
}

/// S3 accepts 3-63 characters of lowercase letters, digits, dots and dashes;
/// S3-compatible stores are laxer, so only what cannot be a bucket anywhere
/// is refused.
fn check_bucket(b: &str) -> Result<(), ConnectorError> {
    let ok =
        !b.is_empty() && b.len() <= 255 && !b.contains('/') && !b.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.bucket",
            "the bucket name must be 1-255 characters without '/' or control characters",
        ))
    }
}

impl S3Config {
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<S3Config, ConnectorError> {
        let aws = AwsSettings::parse(cfg, creds, "s3")?;
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
                "S3 has no schema level below the bucket: leave schema empty",
            ));
        }
        // Per-bucket host names cannot exist on an IP address or localhost.
        let force_path_style = metadata::bool(cfg, "forcePathStyle")?
            .unwrap_or(aws.custom_endpoint && aws.host_is_local_or_ip());
        Ok(S3Config {
            bucket,
            force_path_style,
            files: FileSetSettings::parse(cfg)?,
            aws,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;

    fn creds() -> Credentials {
        Credentials::new()
            .with("accessKeyId", "AKIA1")
            .with("secretAccessKey", "s3cr3t")
    }

    fn cfg(meta: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn bucket_from_metadata_or_database() {
        let c = S3Config::parse(&cfg(json!({"bucket": "b1"})), &creds()).unwrap();
        assert_eq!(c.bucket.as_deref(), Some("b1"));
        assert!(!c.force_path_style);
        let mut d = cfg(json!({}));
        d.database = Some("b2".into());
        assert_eq!(
            S3Config::parse(&d, &creds()).unwrap().bucket.as_deref(),
            Some("b2")
        );
        d.metadata.insert("bucket".into(), json!("b3"));
        assert_eq!(
            S3Config::parse(&d, &creds()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        for bad in [
            json!({"bucket": "a/b"}),
            json!({"maxObjectsPerTable": 0}),
            json!({"forcePathStyle": "sometimes"}),
            json!({"sampleBytes": 10}),
        ] {
            assert_eq!(
                S3Config::parse(&cfg(bad.clone()), &creds())
                    .unwrap_err()
                    .code(),
                ErrorCode::InvalidConfiguration,
                "{bad}"
            );
        }
    }

    #[test]
    fn path_style_defaults() {
        let c =
            S3Config::parse(&cfg(json!({"endpoint": "http://127.0.0.1:9000"})), &creds()).unwrap();
        assert!(c.force_path_style);
        let c = S3Config::parse(
            &cfg(json!({"endpoint": "https://s3.internal.example"})),
            &creds(),
        )
        .unwrap();
        assert!(!c.force_path_style);
        let c = S3Config::parse(
            &cfg(json!({"endpoint": "https://minio.example", "forcePathStyle": true})),
            &creds(),
        )
        .unwrap();
        assert!(c.force_path_style);
    }
}
