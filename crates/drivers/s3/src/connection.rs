//! The SDK client (built on the shared HTTP client) and the S3 connection.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use matih_connector_core::aws::{effective_keys, from_sdk, parse_error, AwsHttp};
use matih_connector_core::{with_timeout, ConnectContext, ConnectorError};

use crate::config::S3Config;

pub(crate) struct S3Connection {
    pub(crate) cfg: S3Config,
    pub(crate) client: aws_sdk_s3::Client,
    http: AwsHttp,
}

impl S3Connection {
    pub(crate) async fn open(
        cfg: S3Config,
        ctx: &ConnectContext,
    ) -> Result<S3Connection, ConnectorError> {
        let http = AwsHttp::new(&cfg.aws, ctx)?;
        let keys = effective_keys(&cfg.aws, &http).await?;
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.aws.region.clone()))
            .endpoint_url(cfg.aws.endpoint.as_str().trim_end_matches('/'))
            .force_path_style(cfg.force_path_style)
            .credentials_provider(keys.sdk_credentials())
            .http_client(http.clone())
            // Reads only: no request checksums to compute, and ranged reads
            // cannot be checked against whole-object checksums.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(ctx.timeouts.query())
                    .build(),
            )
            .build();
        let conn = S3Connection {
            client: aws_sdk_s3::Client::from_conf(conf),
            cfg,
            http,
        };
        // The cheapest signed call proves endpoint, TLS and credentials, and
        // that the configured bucket exists.
        with_timeout(
            ctx.timeouts.connect(),
            "connecting",
            conn.check_access(None),
        )
        .await?;
        Ok(conn)
    }

    /// One ListObjectsV2 of a single key on `bucket` (or the configured
    /// bucket); without any bucket, one ListBuckets.
    pub(crate) async fn check_access(&self, bucket: Option<&str>) -> Result<(), ConnectorError> {
        match bucket.or(self.cfg.bucket.as_deref()) {
            Some(b) => {
                let what = format!("ListObjectsV2 {b}");
                self.client
                    .list_objects_v2()
                    .bucket(b)
                    .max_keys(1)
                    .send()
                    .await
                    .map_err(|e| parse_error(from_sdk(e), &what).with_context("bucket", b))?;
            }
            None => {
                self.client
                    .list_buckets()
                    .max_buckets(1)
                    .send()
                    .await
                    .map_err(|e| parse_error(from_sdk(e), "ListBuckets"))?;
            }
        }
        Ok(())
    }

    /// The endpoint's `Server` header unless it is AWS's own `AmazonS3`, with
    /// the region; else "Amazon S3".
    pub(crate) fn version(&self) -> String {
        let region = &self.cfg.aws.region;
        match self.http.server_header() {
            Some(h) if !h.eq_ignore_ascii_case("AmazonS3") => {
                format!("{h} (S3 API, region {region})")
            }
            _ => format!("Amazon S3 (region {region})"),
        }
    }
}
