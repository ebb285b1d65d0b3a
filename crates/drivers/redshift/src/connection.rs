//! The SDK client (built on the shared HTTP client), the statement runner
//! (ExecuteStatement → DescribeStatement polling → GetStatementResult pages)
//! and the Redshift connection.

use std::time::Duration;

use aws_sdk_redshiftdata::config::retry::RetryConfig;
use aws_sdk_redshiftdata::config::timeout::TimeoutConfig;
use aws_sdk_redshiftdata::config::{BehaviorVersion, Region};
use aws_sdk_redshiftdata::types::{Field, SqlParameter, StatusString};
use matih_connector_core::aws::{effective_keys, from_sdk, AwsHttp};
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode};

use crate::config::{DbAuth, RedshiftConfig, Target};
use crate::errors::{parse_error, statement_error};

/// Bound on the records one statement may return: catalog queries of the
/// largest warehouses stay far below; a runaway result stops here.
const MAX_RECORDS: usize = 2_000_000;
/// Bound on result pages (the Data API pages at about 100 MB).
const MAX_PAGES: usize = 10_000;

/// One result value, as the Data API types it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Text(String),
    Long(i64),
    Double(f64),
    Bool(bool),
}

impl Value {
    fn from_field(f: &Field) -> Value {
        match f {
            Field::IsNull(true) => Value::Null,
            Field::StringValue(s) => Value::Text(s.clone()),
            Field::LongValue(v) => Value::Long(*v),
            Field::DoubleValue(v) => Value::Double(*v),
            Field::BooleanValue(v) => Value::Bool(*v),
            Field::BlobValue(_) | Field::IsNull(false) => Value::Null,
            _ => Value::Null,
        }
    }

    pub fn text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) => Some(s.clone()),
            Value::Long(v) => Some(v.to_string()),
            Value::Double(v) => Some(v.to_string()),
            Value::Bool(v) => Some(v.to_string()),
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Long(v) => Some(*v),
            Value::Double(v) => Some(*v as i64),
            Value::Text(s) => s.trim().parse::<f64>().ok().map(|f| f as i64),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Null => None,
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Long(v) => *v != 0,
            Value::Text(s) => matches!(s.as_str(), "t" | "true" | "YES" | "yes" | "1"),
            _ => false,
        }
    }
}

pub(crate) struct RedshiftConnection {
    pub(crate) cfg: RedshiftConfig,
    client: aws_sdk_redshiftdata::Client,
    query_timeout: Duration,
    pub(crate) version: String,
}

impl RedshiftConnection {
    pub(crate) async fn open(
        cfg: RedshiftConfig,
        ctx: &ConnectContext,
    ) -> Result<RedshiftConnection, ConnectorError> {
        let http = AwsHttp::new(&cfg.aws, ctx)?;
        let keys = effective_keys(&cfg.aws, &http).await?;
        let conf = aws_sdk_redshiftdata::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.aws.region.clone()))
            .endpoint_url(cfg.aws.endpoint.as_str().trim_end_matches('/'))
            .credentials_provider(keys.sdk_credentials())
            .http_client(http.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(ctx.timeouts.query())
                    .build(),
            )
            .build();
        let client = aws_sdk_redshiftdata::Client::from_conf(conf);
        let mut conn = RedshiftConnection {
            cfg,
            client,
            query_timeout: ctx.timeouts.query(),
            version: String::new(),
        };
        // The Data API has no session to open: the first statement proves
        // credentials, target, database and the database user together.
        let rows = with_timeout(
            ctx.timeouts.connect(),
            "connecting",
            conn.run("reading the server version", "SELECT version()", &[]),
        )
        .await?;
        conn.version = rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::text)
            .unwrap_or_default();
        tracing::debug!(server = ?http.server_header(), version = %conn.version, "redshift data api session");
        Ok(conn)
    }

    /// Whether the engine underneath is Redshift (it reports `Redshift x.y`
    /// in `version()`); PostgreSQL otherwise, as behind the test fake.
    pub(crate) fn is_redshift(&self) -> bool {
        self.version.contains("Redshift")
    }

    /// Runs one statement with named parameters (`:name` in the SQL), waits
    /// for it under the query time limit and returns every record.
    pub(crate) async fn run(
        &self,
        what: &str,
        sql: &str,
        params: &[(String, String)],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        with_timeout(
            self.query_timeout,
            what,
            self.run_unbounded(what, sql, params),
        )
        .await
    }

    async fn run_unbounded(
        &self,
        what: &str,
        sql: &str,
        params: &[(String, String)],
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let mut req = self
            .client
            .execute_statement()
            .sql(sql)
            .database(&self.cfg.database)
            .with_event(false);
        req = match &self.cfg.target {
            Target::Cluster(c) => req.cluster_identifier(c),
            Target::Workgroup(w) => req.workgroup_name(w),
        };
        req = match &self.cfg.auth {
            DbAuth::DbUser(u) => req.db_user(u),
            DbAuth::Secret(s) => req.secret_arn(s),
            DbAuth::Iam => req,
        };
        for (name, value) in params {
            let p = SqlParameter::builder()
                .name(name)
                .value(value)
                .build()
                .map_err(|e| {
                    ConnectorError::new(
                        ErrorCode::Internal,
                        format!("{what}: building parameter {name}: {e}"),
                    )
                })?;
            req = req.parameters(p);
        }
        let out = req
            .send()
            .await
            .map_err(|e| parse_error(from_sdk(e), what))?;
        let id = out.id().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(ConnectorError::new(
                ErrorCode::ProtocolError,
                format!("{what}: ExecuteStatement returned no id"),
            ));
        }

        // Poll with a growing pause: small catalog queries finish in tens of
        // milliseconds, long ones should not cost a call every few ms.
        let mut pause = Duration::from_millis(25);
        let has_result = loop {
            let d = self
                .client
                .describe_statement()
                .id(&id)
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))?;
            match d.status() {
                Some(StatusString::Finished) => break d.has_result_set().unwrap_or(false),
                Some(s @ (StatusString::Failed | StatusString::Aborted)) => {
                    return Err(statement_error(s.as_str(), d.error(), &id, what));
                }
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        };
        if !has_result {
            return Ok(Vec::new());
        }

        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .get_statement_result()
                .id(&id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))?;
            for record in page.records() {
                rows.push(record.iter().map(Value::from_field).collect::<Vec<_>>());
            }
            if rows.len() > MAX_RECORDS {
                return Err(ConnectorError::new(
                    ErrorCode::SourceError,
                    format!("{what}: more than {MAX_RECORDS} records; narrow discovery with schema or table filters"),
                ));
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(rows),
            }
        }
        Err(ConnectorError::new(
            ErrorCode::SourceError,
            format!("{what}: more than {MAX_PAGES} result pages"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values() {
        assert_eq!(Value::from_field(&Field::IsNull(true)), Value::Null);
        assert_eq!(Value::from_field(&Field::LongValue(7)).int(), Some(7));
        assert_eq!(
            Value::from_field(&Field::StringValue("12".into())).int(),
            Some(12)
        );
        assert_eq!(
            Value::from_field(&Field::DoubleValue(2.5))
                .text()
                .as_deref(),
            Some("2.5")
        );
        assert!(Value::from_field(&Field::BooleanValue(true)).truthy());
        assert!(Value::Text("YES".into()).truthy() && !Value::Text("NO".into()).truthy());
    }
}
