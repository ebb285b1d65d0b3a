//! AWS settings, parsed and checked before any I/O.

use std::fmt;
use std::net::IpAddr;

use url::Url;

use crate::http::endpoint::{origin, service_endpoint};
use crate::{
    metadata, ConnectionConfig, ConnectorError, Credentials, Key, SecretString, SslMode, Timeouts,
};

/// The region used when `metadata.region` is absent.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Access keys; `Debug` prints none of them.
#[derive(Clone)]
pub struct Keys {
    /// `credentials.accessKeyId`.
    pub access_key_id: SecretString,
    /// `credentials.secretAccessKey`.
    pub secret_access_key: SecretString,
    /// `credentials.sessionToken`, for temporary keys.
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys(session token: {})", self.session_token.is_some())
    }
}

impl Keys {
    /// The keys as the SDK's credentials (for `credentials_provider`).
    pub fn sdk_credentials(&self) -> super::SdkCredentials {
        super::SdkCredentials::new(
            self.access_key_id.expose(),
            self.secret_access_key.expose(),
            self.session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "matih-connectors",
        )
    }
}

/// A role to assume with STS before talking to the service.
#[derive(Clone, Debug)]
pub struct Role {
    /// `metadata.roleArn`.
    pub arn: String,
    /// `metadata.roleSessionName`, default `matih-connectors`.
    pub session_name: String,
    /// `metadata.externalId`.
    pub external_id: Option<String>,
    /// STS endpoint: `metadata.stsEndpoint`, else the service endpoint when it
    /// was overridden (emulators serve every API on one port), else
    /// `https://sts.<region>.amazonaws.com`.
    pub sts: Url,
}

/// Where and how to reach an AWS API, checked before any I/O.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// `metadata.region`, default [`DEFAULT_REGION`].
    pub region: String,
    /// `scheme://host:port`, what the SDK is given as its endpoint.
    pub endpoint: Url,
    /// The endpoint's host (IPv6 literals without brackets).
    pub host: String,
    /// The endpoint's port.
    pub port: u16,
    /// True when the endpoint is not AWS's own (host, port or `endpoint` set).
    pub custom_endpoint: bool,
    /// TLS for the endpoint: `Disable` for an http endpoint.
    pub tls: SslMode,
    /// `sslCaPem`: CA certificates that replace the public roots.
    pub ca_pem: Option<String>,
    /// The configured keys.
    pub keys: Keys,
    /// The role to assume, when `metadata.roleArn` is set.
    pub role: Option<Role>,
    /// The connection's time limits.
    pub timeouts: Timeouts,
}

/// The metadata keys [`AwsSettings::parse`] reads, for a driver's
/// descriptor; `endpoint_doc` describes `metadata.endpoint` for its service.
pub fn metadata_keys(endpoint_doc: &'static str) -> Vec<Key> {
    vec![
        Key::optional("region", "AWS region (default us-east-1)"),
        Key::optional("endpoint", endpoint_doc),
        Key::optional(
            "roleArn",
            "Role to assume with STS AssumeRole before connecting",
        ),
        Key::optional(
            "roleSessionName",
            "Session name for AssumeRole (default matih-connectors)",
        ),
        Key::optional("externalId", "External id for AssumeRole"),
        Key::optional(
            "stsEndpoint",
            "STS endpoint URL (default: the endpoint override, else sts.<region>.amazonaws.com)",
        ),
    ]
}

/// Region names are short lowercase words with dashes (`eu-west-1`); anything
/// else would end up in a host name.
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

impl AwsSettings {
    /// Parses the settings. `service` is the endpoint prefix of the AWS API
    /// (`s3`, `dynamodb`, `redshift-data`), for the default endpoint.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
        service: &str,
    ) -> Result<AwsSettings, ConnectorError> {
        let region = metadata::string(cfg, "region")?.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        if !valid_region(&region) {
            return Err(ConnectorError::invalid_config(
                "metadata.region",
                format!(
                    "metadata.region {:?} is not a region name such as us-east-1",
                    region.chars().take(40).collect::<String>()
                ),
            ));
        }
        let ep = service_endpoint(cfg, &format!("{service}.{region}.amazonaws.com"))?;
        let (endpoint, custom, tls, host, port) = (ep.url, ep.custom, ep.tls, ep.host, ep.port);

        let keys = Keys {
            access_key_id: creds.require("accessKeyId")?.clone(),
            secret_access_key: creds.require("secretAccessKey")?.clone(),
            session_token: creds.get("sessionToken").filter(|t| !t.is_empty()).cloned(),
        };
        for (name, v) in [
            ("accessKeyId", Some(&keys.access_key_id)),
            ("secretAccessKey", Some(&keys.secret_access_key)),
            ("sessionToken", keys.session_token.as_ref()),
        ] {
            if v.is_some_and(|v| v.expose().chars().any(|c| c.is_control() || c == ' ')) {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    format!("credentials.{name} holds spaces or control characters"),
                ));
            }
        }

        let role = match metadata::string(cfg, "roleArn")? {
            None => None,
            Some(arn) => {
                if !arn.starts_with("arn:") || arn.len() > 2048 {
                    return Err(ConnectorError::invalid_config(
                        "metadata.roleArn",
                        "metadata.roleArn must be a role ARN (arn:aws:iam::<account>:role/<name>)",
                    ));
                }
                let session_name = metadata::string(cfg, "roleSessionName")?
                    .unwrap_or_else(|| "matih-connectors".to_owned());
                let ok_name = (2..=64).contains(&session_name.len())
                    && session_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
                if !ok_name {
                    return Err(ConnectorError::invalid_config(
                        "metadata.roleSessionName",
                        "metadata.roleSessionName must be 2-64 characters of letters, digits and +=,.@-_",
                    ));
                }
                let sts = match metadata::string(cfg, "stsEndpoint")? {
                    Some(s) => Url::parse(&s)
                        .ok()
                        .filter(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                        })
                        .ok_or_else(|| {
                            ConnectorError::invalid_config(
                                "metadata.stsEndpoint",
                                "metadata.stsEndpoint must be an http(s) URL",
                            )
                        })?,
                    None if custom => endpoint.clone(),
                    None => origin("https", &format!("sts.{region}.amazonaws.com"), 443)?,
                };
                Some(Role {
                    arn,
                    session_name,
                    external_id: metadata::string(cfg, "externalId")?,
                    sts,
                })
            }
        };
        if role.is_none() {
            for k in ["roleSessionName", "externalId", "stsEndpoint"] {
                if cfg.metadata.contains_key(k) {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        format!("metadata.{k} needs metadata.roleArn"),
                    ));
                }
            }
        }
        Ok(AwsSettings {
            region,
            endpoint,
            host,
            port,
            custom_endpoint: custom,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            keys,
            role,
            timeouts: cfg.timeouts,
        })
    }

    /// The endpoint's host is an IP literal or `localhost`: no per-bucket
    /// host names can exist there.
    pub fn host_is_local_or_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok() || self.host.eq_ignore_ascii_case("localhost")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::{json, Value};

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn keys() -> Credentials {
        Credentials::new()
            .with("accessKeyId", "AKIAEXAMPLE")
            .with("secretAccessKey", "wJalrXUtnFEMI/K7MDENG")
    }

    #[test]
    fn default_endpoint_is_aws_with_verified_tls() {
        let s =
            AwsSettings::parse(&cfg(json!({"region": "eu-west-1"})), &keys(), "dynamodb").unwrap();
        assert_eq!(
            s.endpoint.as_str(),
            "https://dynamodb.eu-west-1.amazonaws.com/"
        );
        assert_eq!(s.tls, SslMode::VerifyFull);
        assert!(!s.custom_endpoint);
        assert!(!format!("{s:?}").contains("wJalr"));
    }

    #[test]
    fn endpoint_overrides() {
        let s = AwsSettings::parse(
            &cfg(json!({"endpoint": "http://127.0.0.1:5000"})),
            &keys(),
            "s3",
        )
        .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("127.0.0.1", 5000, SslMode::Disable)
        );
        assert!(s.custom_endpoint && s.host_is_local_or_ip());

        let mut c = cfg(json!({}));
        c.host = Some("minio.internal".into());
        c.port = Some(9000);
        c.ssl_enabled = Some(false);
        let s = AwsSettings::parse(&c, &keys(), "s3").unwrap();
        assert_eq!(s.endpoint.as_str(), "http://minio.internal:9000/");

        c.ssl_enabled = None;
        let s = AwsSettings::parse(&c, &keys(), "s3").unwrap();
        assert_eq!(s.endpoint.as_str(), "https://minio.internal:9000/");
        assert_eq!(s.tls, SslMode::VerifyFull);

        for bad in [
            json!({"endpoint": "ftp://x"}),
            json!({"endpoint": "http://u:p@x"}),
            json!({"endpoint": "http://x/path"}),
            json!({"region": "us east"}),
            json!({"region": 5}),
            json!({"roleArn": "role/x"}),
            json!({"externalId": "x"}),
            json!({"roleArn": "arn:aws:iam::1:role/r", "roleSessionName": "has space"}),
        ] {
            let e = AwsSettings::parse(&cfg(bad.clone()), &keys(), "s3").unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:5000"}));
        c.ssl_mode = Some(SslMode::VerifyFull);
        assert!(AwsSettings::parse(&c, &keys(), "s3").is_err());
    }

    #[test]
    fn roles_and_keys() {
        let s = AwsSettings::parse(
            &cfg(json!({"endpoint": "http://127.0.0.1:5000", "roleArn": "arn:aws:iam::123456789012:role/reader"})),
            &keys(),
            "s3",
        )
        .unwrap();
        let role = s.role.unwrap();
        assert_eq!(role.sts.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(role.session_name, "matih-connectors");
        let s = AwsSettings::parse(
            &cfg(json!({"region": "eu-central-1", "roleArn": "arn:aws:iam::1:role/r"})),
            &keys(),
            "s3",
        )
        .unwrap();
        assert_eq!(
            s.role.unwrap().sts.as_str(),
            "https://sts.eu-central-1.amazonaws.com/"
        );
        let e = AwsSettings::parse(
            &cfg(json!({})),
            &Credentials::new().with("accessKeyId", "x"),
            "s3",
        )
        .unwrap_err();
        assert!(e.message().contains("secretAccessKey"));
        let sdk = s.keys.sdk_credentials();
        assert_eq!(sdk.access_key_id(), "AKIAEXAMPLE");
        assert!(!format!("{:?}", s.keys).contains("AKIA"));
    }
}
