//! DynamoDB connector configuration, checked before any I/O.

use matih_connector_core::{ConnectionConfig, ConnectorError, Credentials};

use matih_connector_core::aws::AwsSettings;
use matih_connector_core::metadata;

/// The parsed configuration: AWS settings plus the schema name.
#[derive(Clone, Debug)]
pub(crate) struct DynamoConfig {
    pub aws: AwsSettings,
    /// The one schema's name: `metadata.schemaName`, else the region.
    pub schema: String,
}

impl DynamoConfig {
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<DynamoConfig, ConnectorError> {
        let aws = AwsSettings::parse(cfg, creds, "dynamodb")?;
        if cfg.database.is_some() || cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "database",
                "DynamoDB has no databases or schemas: leave database and schema empty \
                 (metadata.schemaName names the discovered schema)",
            ));
        }
        let schema = metadata::string(cfg, "schemaName")?.unwrap_or_else(|| aws.region.clone());
        Ok(DynamoConfig { aws, schema })
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

    #[test]
    fn schema_name_defaults_to_region() {
        let cfg = ConnectionConfig {
            metadata: serde_json::from_value(json!({"region": "eu-west-2"})).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            DynamoConfig::parse(&cfg, &creds()).unwrap().schema,
            "eu-west-2"
        );
        let mut cfg2 = cfg.clone();
        cfg2.metadata
            .insert("schemaName".into(), json!("orders-prod"));
        assert_eq!(
            DynamoConfig::parse(&cfg2, &creds()).unwrap().schema,
            "orders-prod"
        );
        let mut cfg3 = cfg;
        cfg3.database = Some("x".into());
        assert_eq!(
            DynamoConfig::parse(&cfg3, &creds()).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }
}
