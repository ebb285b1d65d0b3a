//! SigV4 for requests the core builds itself (STS AssumeRole, and embedders'
//! calls to AWS JSON APIs such as Secrets Manager), with `aws-sigv4`, which
//! the SDKs already link. The SDK signs its own requests.

use std::time::SystemTime;

use super::Keys;
use crate::http::header::{HeaderName, HeaderValue};
use crate::http::Url;
use crate::ConnectorError;

/// A request to sign.
#[derive(Debug, Clone, Copy)]
pub struct ToSign<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// The full URL.
    pub url: &'a Url,
    /// The request's other headers that must be signed (`content-type`,
    /// `x-amz-target`); `host` is added from the URL.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers that sign `req` for `service` in `region` (`authorization`,
/// `x-amz-date`, and `x-amz-security-token` for temporary keys), each marked
/// sensitive. `what` names the request in errors.
pub fn sigv4_headers(
    keys: &Keys,
    region: &str,
    service: &str,
    req: ToSign<'_>,
    what: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConnectorError> {
    let ToSign {
        method,
        url,
        headers,
        body,
    } = req;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let signing =
        |e: &dyn std::fmt::Display| ConnectorError::internal(format!("{what}: signing: {e}"));
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let identity =
        aws_smithy_runtime_api::client::identity::Identity::new(keys.sdk_credentials(), None);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing(&e))?
        .into();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let signable = SignableRequest::new(
        method,
        url.as_str(),
        all.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| signing(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| signing(&e))?
        .into_parts();
    instructions
        .headers()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| signing(&e))?;
            let mut value = HeaderValue::from_str(v).map_err(|e| signing(&e))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}
