//! The SDK client (built on the shared HTTP client) and the DynamoDB
//! connection.

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Region};
use matih_connector_core::aws::{effective_keys, from_sdk, parse_error, AwsHttp};
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError};

use crate::config::DynamoConfig;

pub(crate) struct DynamoConnection {
    pub(crate) cfg: DynamoConfig,
    pub(crate) client: aws_sdk_dynamodb::Client,
    http: AwsHttp,
}

impl DynamoConnection {
    pub(crate) async fn open(
        cfg: DynamoConfig,
        ctx: &ConnectContext,
    ) -> Result<DynamoConnection, ConnectorError> {
        let http = AwsHttp::new(&cfg.aws, ctx)?;
        let keys = effective_keys(&cfg.aws, &http).await?;
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.aws.region.clone()))
            .endpoint_url(cfg.aws.endpoint.as_str().trim_end_matches('/'))
            .credentials_provider(keys.sdk_credentials())
            .http_client(http.clone())
            // One retry for throttling and transient failures; the caller's
            // time limits bound the whole call anyway.
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(ctx.timeouts.query())
                    .build(),
            )
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(conf);
        // The cheapest signed call proves endpoint, TLS and credentials.
        let what = "ListTables";
        with_timeout(ctx.timeouts.connect(), what, async {
            client
                .list_tables()
                .limit(1)
                .send()
                .await
                .map_err(|e| parse_error(from_sdk(e), what))
        })
        .await?;
        Ok(DynamoConnection { cfg, client, http })
    }

    /// The endpoint's `Server` header when it names something other than
    /// AWS's anonymous `Server`, with the region; else "Amazon DynamoDB".
    pub(crate) fn version(&self) -> String {
        let region = &self.cfg.aws.region;
        match self.http.server_header() {
            Some(h) if !h.eq_ignore_ascii_case("server") => {
                format!("{h} (DynamoDB API, region {region})")
            }
            _ => format!("Amazon DynamoDB (region {region})"),
        }
    }
}
