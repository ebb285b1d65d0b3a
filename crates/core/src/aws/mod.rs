//! What every AWS driver shares (Cargo feature `aws`, on top of
//! [`crate::http`]): the settings (keys, region, endpoint, TLS, assumed role),
//! the HTTP client the AWS SDK sends through ([`AwsHttp`], the pinned
//! [`crate::http::HttpClient`] behind the smithy `HttpClient` trait), STS
//! AssumeRole ([`effective_keys`]) and the mapping of SDK failures to
//! [`crate::ConnectorError`] ([`parse_error`]).
//!
//! The SDK never opens a socket itself: every request (the service's and
//! STS's) goes through the core HTTP client, so names resolve through the one
//! egress resolver, IP-literal endpoints are checked before any packet,
//! redirects are not followed and bodies are bounded.
//!
//! ```no_run
//! # async fn demo(cfg: &matih_connector_core::ConnectionConfig,
//! #     creds: &matih_connector_core::Credentials,
//! #     ctx: &matih_connector_core::ConnectContext) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::aws::{effective_keys, AwsHttp, AwsSettings};
//! let settings = AwsSettings::parse(cfg, creds, "dynamodb")?;
//! let http = AwsHttp::new(&settings, ctx)?;
//! let keys = effective_keys(&settings, &http).await?;
//! let _for_the_sdk = (keys.sdk_credentials(), http.clone());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod client;
mod errors;
mod settings;
mod sign;
mod sts;

pub use client::{AwsHttp, MAX_RESPONSE_BYTES};
pub use errors::{
    code_for, from_sdk, one_line, parse_error, parse_error_with, status_code, xml_text, Failure,
    RefineAwsCode,
};
pub use settings::{metadata_keys, AwsSettings, Keys, Role, DEFAULT_REGION};
pub use sign::{sigv4_headers, ToSign};
pub use sts::effective_keys;

/// The SDK's credentials type (every `aws-sdk-*` crate re-exports it as
/// `config::Credentials`).
pub use aws_credential_types::Credentials as SdkCredentials;
