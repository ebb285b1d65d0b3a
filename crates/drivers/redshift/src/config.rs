//! Redshift connector configuration, checked before any I/O.

use matih_connector_core::{ConnectionConfig, ConnectorError, Credentials};

use matih_connector_core::aws::AwsSettings;
use matih_connector_core::metadata;

pub(crate) const META_CLUSTER: &str = "clusterIdentifier";
pub(crate) const META_WORKGROUP: &str = "workgroupName";
pub(crate) const META_DB_USER: &str = "dbUser";
pub(crate) const META_SECRET_ARN: &str = "secretArn";

/// Where statements run: a provisioned cluster or a serverless workgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Cluster(String),
    Workgroup(String),
}

/// How the Data API authenticates to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DbAuth {
    /// Temporary credentials for this database user (GetClusterCredentials;
    /// provisioned clusters only).
    DbUser(String),
    /// A Secrets Manager secret holding the database user and password.
    Secret(String),
    /// The caller's IAM identity (serverless: GetCredentials).
    Iam,
}

#[derive(Clone, Debug)]
pub(crate) struct RedshiftConfig {
    pub aws: AwsSettings,
    pub target: Target,
    pub database: String,
    pub auth: DbAuth,
    pub schema: Option<String>,
}

fn name_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(|c| c.is_control())
}

impl RedshiftConfig {
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<RedshiftConfig, ConnectorError> {
        let aws = AwsSettings::parse(cfg, creds, "redshift-data")?;
        let cluster = metadata::string(cfg, META_CLUSTER)?;
        let workgroup = metadata::string(cfg, META_WORKGROUP)?;
        let target = match (cluster, workgroup) {
            (Some(c), None) if name_ok(&c, 63) => Target::Cluster(c),
            (None, Some(w)) if name_ok(&w, 64) => Target::Workgroup(w),
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "give metadata.clusterIdentifier (provisioned) or metadata.workgroupName (serverless), not both",
                ))
            }
            (None, None) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.clusterIdentifier (provisioned) or metadata.workgroupName (serverless) is required",
                ))
            }
            _ => return Err(ConnectorError::invalid_config("metadata", "cluster or workgroup name is malformed")),
        };
        let database = match cfg.database.as_deref() {
            Some(d) if name_ok(d, 127) => d.to_owned(),
            Some(_) => {
                return Err(ConnectorError::invalid_config(
                    "database",
                    "database must be 1-127 characters",
                ))
            }
            None => {
                return Err(ConnectorError::invalid_config(
                    "database",
                    "database is required (e.g. dev)",
                ))
            }
        };
        let db_user = metadata::string(cfg, META_DB_USER)?;
        let secret = metadata::string(cfg, META_SECRET_ARN)?;
        let auth = match (db_user, secret, &target) {
            (Some(_), Some(_), _) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "give metadata.dbUser or metadata.secretArn, not both",
                ))
            }
            (Some(u), None, Target::Cluster(_)) if name_ok(&u, 128) => DbAuth::DbUser(u),
            (Some(_), None, Target::Workgroup(_)) => {
                return Err(ConnectorError::invalid_config(
                    "metadata.dbUser",
                    "serverless workgroups take no dbUser: the IAM identity or metadata.secretArn is the database user",
                ))
            }
            (Some(_), None, _) => return Err(ConnectorError::invalid_config("metadata.dbUser", "dbUser is malformed")),
            (None, Some(s), _) if s.starts_with("arn:") && s.len() <= 2048 => DbAuth::Secret(s),
            (None, Some(_), _) => {
                return Err(ConnectorError::invalid_config(
                    "metadata.secretArn",
                    "metadata.secretArn must be a Secrets Manager ARN (arn:aws:secretsmanager:…)",
                ))
            }
            (None, None, Target::Workgroup(_)) => DbAuth::Iam,
            (None, None, Target::Cluster(_)) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "a provisioned cluster needs metadata.dbUser (temporary credentials) or metadata.secretArn",
                ))
            }
        };
        Ok(RedshiftConfig {
            aws,
            target,
            database,
            auth,
            schema: cfg.schema.clone(),
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
            database: Some("dev".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn targets_and_auth() {
        let c = RedshiftConfig::parse(
            &cfg(json!({"clusterIdentifier": "prod", "dbUser": "reader"})),
            &creds(),
        )
        .unwrap();
        assert_eq!(c.target, Target::Cluster("prod".into()));
        assert_eq!(c.auth, DbAuth::DbUser("reader".into()));
        assert_eq!(c.aws.host, "redshift-data.us-east-1.amazonaws.com");
        let c = RedshiftConfig::parse(
            &cfg(json!({"workgroupName": "wg", "region": "eu-west-1"})),
            &creds(),
        )
        .unwrap();
        assert_eq!(
            (c.target, c.auth),
            (Target::Workgroup("wg".into()), DbAuth::Iam)
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rs-AbC";
        let c = RedshiftConfig::parse(
            &cfg(json!({"workgroupName": "wg", "secretArn": arn})),
            &creds(),
        )
        .unwrap();
        assert_eq!(c.auth, DbAuth::Secret(arn.into()));
    }

    #[test]
    fn rejects_contradictions_before_io() {
        for meta in [
            json!({}),
            json!({"clusterIdentifier": "a", "workgroupName": "b"}),
            json!({"clusterIdentifier": "a"}),
            json!({"workgroupName": "b", "dbUser": "u"}),
            json!({"clusterIdentifier": "a", "dbUser": "u", "secretArn": "arn:x"}),
            json!({"clusterIdentifier": "a", "secretArn": "not-an-arn"}),
        ] {
            let err = RedshiftConfig::parse(&cfg(meta.clone()), &creds()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{meta}");
        }
        let mut no_db = cfg(json!({"workgroupName": "wg"}));
        no_db.database = None;
        assert_eq!(
            RedshiftConfig::parse(&no_db, &creds()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }
}
