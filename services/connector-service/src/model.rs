//! The service's entities and their JSON shapes (camelCase, as the seed).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use matih_connector_core::{ConnectionConfig, ConnectorType, SslMode, Timeouts};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// RFC 3339 UTC with milliseconds: the wire and storage form of instants.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A tenant's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tier {
    Free,
    Professional,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "FREE",
            Tier::Professional => "PROFESSIONAL",
            Tier::Enterprise => "ENTERPRISE",
        }
    }

    /// Most connectors a tenant on this plan may have; `None` is unlimited.
    pub fn max_connectors(self) -> Option<i64> {
        match self {
            Tier::Free => Some(2),
            Tier::Professional => Some(10),
            Tier::Enterprise => None,
        }
    }

    pub fn allows(self, ty: &ConnectorType) -> bool {
        match self {
            Tier::Free => matches!(ty, ConnectorType::Postgresql | ConnectorType::Mysql),
            Tier::Professional => !ty.is_custom(),
            Tier::Enterprise => true,
        }
    }

    pub fn types_description(self) -> &'static str {
        match self {
            Tier::Free => "POSTGRESQL and MYSQL only",
            Tier::Professional => "all standard types",
            Tier::Enterprise => "all types including custom",
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "FREE" => Ok(Tier::Free),
            "PROFESSIONAL" => Ok(Tier::Professional),
            "ENTERPRISE" => Ok(Tier::Enterprise),
            other => Err(format!("unknown tier {other:?}")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub tier: Tier,
    pub connector_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorStatus {
    Active,
    Warning,
    Error,
    Testing,
    Inactive,
}

impl ConnectorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorStatus::Active => "ACTIVE",
            ConnectorStatus::Warning => "WARNING",
            ConnectorStatus::Error => "ERROR",
            ConnectorStatus::Testing => "TESTING",
            ConnectorStatus::Inactive => "INACTIVE",
        }
    }
}

impl fmt::Display for ConnectorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectorStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ACTIVE" => Ok(ConnectorStatus::Active),
            "WARNING" => Ok(ConnectorStatus::Warning),
            "ERROR" => Ok(ConnectorStatus::Error),
            "TESTING" => Ok(ConnectorStatus::Testing),
            "INACTIVE" => Ok(ConnectorStatus::Inactive),
            other => Err(format!("unknown status {other:?}")),
        }
    }
}

/// A connector as stored and as returned (the seed's entity). No credential
/// values: only the name of the secret that holds them.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "POSTGRESQL")]
    pub connector_type: ConnectorType,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub credential_secret_name: String,
    pub ssl_enabled: bool,
    #[schema(value_type = Option<String>, example = "verify-full")]
    pub ssl_mode: Option<SslMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_ca_pem: Option<String>,
    pub status: ConnectorStatus,
    pub last_tested_at: Option<String>,
    pub last_test_result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_code: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    #[schema(value_type = Object)]
    pub timeouts: Timeouts,
    pub created_at: String,
    pub updated_at: String,
}

impl Connector {
    pub fn config(&self) -> ConnectionConfig {
        ConnectionConfig {
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            schema: self.schema.clone(),
            ssl_enabled: Some(self.ssl_enabled),
            ssl_mode: self.ssl_mode,
            ssl_ca_pem: self.ssl_ca_pem.clone(),
            metadata: self.metadata.clone(),
            timeouts: self.timeouts,
        }
    }
}

/// Where a discovery job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "RUNNING" => Ok(JobStatus::Running),
            "SUCCEEDED" => Ok(JobStatus::Succeeded),
            "FAILED" => Ok(JobStatus::Failed),
            other => Err(format!("unknown discovery job status {other:?}")),
        }
    }
}

/// What a create or update says of the discovery it started: a job's status,
/// or NOT_STARTED when the test failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscoveryState {
    NotStarted,
    Running,
    Succeeded,
    Failed,
}

impl From<JobStatus> for DiscoveryState {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Running => DiscoveryState::Running,
            JobStatus::Succeeded => DiscoveryState::Succeeded,
            JobStatus::Failed => DiscoveryState::Failed,
        }
    }
}

/// One discovery run.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryJob {
    pub id: Uuid,
    pub connector_id: Uuid,
    pub status: JobStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub schemas_discovered: Option<i64>,
    pub tables_discovered: Option<i64>,
    /// The replica running (or that last ran) the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// API (a create, an update or `POST …/discover`) or SCHEDULE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<JobOrigin>,
    /// Runs started for the job: above 1 when another replica took it over
    /// after the lease of the one running it ended.
    pub attempts: i64,
    /// Whether the run compared with the previous catalog's fingerprint
    /// (only new and changed relations read in detail); absent while running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,
    /// The catalog snapshot a successful job stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<Uuid>,
}

/// What started a discovery job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobOrigin {
    Api,
    Schedule,
}

impl JobOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOrigin::Api => "API",
            JobOrigin::Schedule => "SCHEDULE",
        }
    }
}

impl FromStr for JobOrigin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "API" => Ok(JobOrigin::Api),
            "SCHEDULE" => Ok(JobOrigin::Schedule),
            other => Err(format!("unknown discovery job origin {other:?}")),
        }
    }
}

/// A stored catalog.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub id: Uuid,
    pub connector_id: Uuid,
    pub job_id: Option<Uuid>,
    pub discovered_at: String,
    pub schema_count: i64,
    pub table_count: i64,
    /// The catalog, compressed (or JSON text, when written before migration 8).
    pub catalog: crate::snapshot::StoredCatalog,
    /// The driver's fingerprint of the catalog as JSON text, when it has one.
    pub fingerprint: Option<String>,
    /// The discovery request it was taken under, as JSON text.
    pub request: Option<String>,
}

/// One scheduled health check as its history keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub checked_at: String,
    /// ACTIVE, WARNING or ERROR.
    pub status: String,
    pub success: bool,
    pub latency_ms: Option<i64>,
    pub error_code: Option<String>,
    /// The connectivity test step that failed (dns, tcp, connect, …).
    pub failed_step: Option<String>,
    pub message: Option<String>,
}
