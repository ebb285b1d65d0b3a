//! Connector types and their categories.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ConnectorError, ErrorCode};

/// The broad family a connector type belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    /// Relational databases.
    Relational,
    /// Cloud data warehouses.
    CloudWarehouse,
    /// Document and key-value stores.
    Nosql,
    /// Object storage.
    FileStorage,
    /// Streaming platforms.
    Streaming,
    /// HTTP APIs.
    Api,
    /// Drivers registered by embedders under their own type name.
    Custom,
}

/// A source type. The sixteen standard types have fixed wire names; embedders may
/// register further drivers under a name of their own (`Custom`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectorType {
    /// `POSTGRESQL`.
    Postgresql,
    /// `MYSQL` (MySQL and MariaDB).
    Mysql,
    /// `SQLSERVER`.
    Sqlserver,
    /// `ORACLE`.
    Oracle,
    /// `SNOWFLAKE`.
    Snowflake,
    /// `BIGQUERY`.
    Bigquery,
    /// `REDSHIFT`.
    Redshift,
    /// `DATABRICKS`.
    Databricks,
    /// `MONGODB`.
    Mongodb,
    /// `DYNAMODB`.
    Dynamodb,
    /// `S3`.
    S3,
    /// `AZURE_BLOB`.
    AzureBlob,
    /// `GCS`.
    Gcs,
    /// `KAFKA`.
    Kafka,
    /// `REST`.
    Rest,
    /// `GRAPHQL`.
    Graphql,
    /// A type name that is not one of the standard sixteen, in upper case.
    Custom(String),
}

struct TypeInfo {
    ty: ConnectorType,
    wire: &'static str,
    driver: &'static str,
    category: Category,
}

const fn info(
    ty: ConnectorType,
    wire: &'static str,
    driver: &'static str,
    category: Category,
) -> TypeInfo {
    TypeInfo {
        ty,
        wire,
        driver,
        category,
    }
}

static TYPES: [TypeInfo; 16] = [
    info(
        ConnectorType::Postgresql,
        "POSTGRESQL",
        "postgres",
        Category::Relational,
    ),
    info(ConnectorType::Mysql, "MYSQL", "mysql", Category::Relational),
    info(
        ConnectorType::Sqlserver,
        "SQLSERVER",
        "sqlserver",
        Category::Relational,
    ),
    info(
        ConnectorType::Oracle,
        "ORACLE",
        "oracle",
        Category::Relational,
    ),
    info(
        ConnectorType::Snowflake,
        "SNOWFLAKE",
        "snowflake",
        Category::CloudWarehouse,
    ),
    info(
        ConnectorType::Bigquery,
        "BIGQUERY",
        "bigquery",
        Category::CloudWarehouse,
    ),
    info(
        ConnectorType::Redshift,
        "REDSHIFT",
        "redshift",
        Category::CloudWarehouse,
    ),
    info(
        ConnectorType::Databricks,
        "DATABRICKS",
        "databricks",
        Category::CloudWarehouse,
    ),
    info(
        ConnectorType::Mongodb,
        "MONGODB",
        "mongodb",
        Category::Nosql,
    ),
    info(
        ConnectorType::Dynamodb,
        "DYNAMODB",
        "dynamodb",
        Category::Nosql,
    ),
    info(ConnectorType::S3, "S3", "s3", Category::FileStorage),
    info(
        ConnectorType::AzureBlob,
        "AZURE_BLOB",
        "azure-blob",
        Category::FileStorage,
    ),
    info(ConnectorType::Gcs, "GCS", "gcs", Category::FileStorage),
    info(ConnectorType::Kafka, "KAFKA", "kafka", Category::Streaming),
    info(ConnectorType::Rest, "REST", "rest", Category::Api),
    info(ConnectorType::Graphql, "GRAPHQL", "graphql", Category::Api),
];

impl ConnectorType {
    /// The sixteen standard types, in the order of the specification.
    pub fn standard() -> impl Iterator<Item = ConnectorType> {
        TYPES.iter().map(|t| t.ty.clone())
    }

    fn info(&self) -> Option<&'static TypeInfo> {
        TYPES.iter().find(|t| &t.ty == self)
    }

    /// The wire name, e.g. `POSTGRESQL` or `AZURE_BLOB`.
    pub fn as_str(&self) -> &str {
        match self {
            ConnectorType::Custom(name) => name,
            other => other.info().map(|i| i.wire).unwrap_or_default(),
        }
    }

    /// The driver crate and Cargo feature name, e.g. `postgres` or `azure-blob`.
    pub fn driver_name(&self) -> String {
        match self.info() {
            Some(i) => i.driver.to_owned(),
            None => self.as_str().to_ascii_lowercase().replace('_', "-"),
        }
    }

    /// The type's category ([`Category::Custom`] for custom types).
    pub fn category(&self) -> Category {
        self.info().map(|i| i.category).unwrap_or(Category::Custom)
    }

    /// Whether the type is an embedder's own.
    pub fn is_custom(&self) -> bool {
        matches!(self, ConnectorType::Custom(_))
    }
}

impl FromStr for ConnectorType {
    type Err = ConnectorError;

    /// Accepts the wire names case-insensitively (and the driver names, e.g.
    /// `azure-blob`); any other identifier of letters, digits and `_` becomes a
    /// custom type. Whether a driver exists for it is the registry's question.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if let Some(t) = TYPES.iter().find(|t| {
            t.wire.eq_ignore_ascii_case(trimmed) || t.driver.eq_ignore_ascii_case(trimmed)
        }) {
            return Ok(t.ty.clone());
        }
        let valid = !trimmed.is_empty()
            && trimmed.len() <= 64
            && trimmed
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            Ok(ConnectorType::Custom(
                trimmed.to_ascii_uppercase().replace('-', "_"),
            ))
        } else {
            Err(ConnectorError::new(
                ErrorCode::InvalidConfiguration,
                format!(
                    "invalid connector type {:?}: expected one of {} or a custom type name \
                     of letters, digits and underscores",
                    truncate(s, 80),
                    TYPES.iter().map(|t| t.wire).collect::<Vec<_>>().join(", ")
                ),
            )
            .with_context("field", "type"))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl fmt::Display for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ConnectorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConnectorType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConnectorType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: ConnectorError| serde::de::Error::custom(e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in ConnectorType::standard() {
            let json = serde_json::to_string(&t).unwrap();
            let back: ConnectorType = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
            assert_ne!(t.category(), Category::Custom);
        }
        assert_eq!(ConnectorType::standard().count(), 16);
    }

    #[test]
    fn parses_case_insensitively_and_driver_names() {
        assert_eq!(
            "postgresql".parse::<ConnectorType>().unwrap(),
            ConnectorType::Postgresql
        );
        assert_eq!(
            "azure-blob".parse::<ConnectorType>().unwrap(),
            ConnectorType::AzureBlob
        );
        assert_eq!(ConnectorType::AzureBlob.driver_name(), "azure-blob");
        assert_eq!(
            ConnectorType::Databricks.category(),
            Category::CloudWarehouse
        );
    }

    #[test]
    fn custom_and_invalid_names() {
        let t: ConnectorType = "my_erp".parse().unwrap();
        assert_eq!(t, ConnectorType::Custom("MY_ERP".into()));
        assert_eq!(t.category(), Category::Custom);
        for bad in ["", "9lives", "drop table;", "a b", "\"quoted\""] {
            let err = bad.parse::<ConnectorType>().unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{bad:?}");
        }
    }
}
