//! The smithy HTTP client adapter: the AWS SDK sends every request through the
//! core's pinned [`HttpClient`].

use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    HttpClient as SmithyHttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError as SmithyConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::AwsSettings;
use crate::http::{header, HttpClient, HttpOptions, Method, Redirects, Url};
use crate::{ConnectContext, ConnectorError, ErrorCode};

/// Cap on one HTTP response body the SDK receives. Listing pages and ranged
/// reads are far smaller; this only stops a hostile endpoint.
pub const MAX_RESPONSE_BYTES: u64 = 32 << 20;

/// The HTTP client every SDK request goes through: the core's pinned client
/// (egress resolver, IP literals checked, TLS from the settings, no proxy) with
/// redirects off and bodies bounded by [`MAX_RESPONSE_BYTES`]. It remembers the
/// last `Server` header for the server version. Give it to the SDK config's
/// `http_client`.
#[derive(Clone)]
pub struct AwsHttp {
    pub(super) client: HttpClient,
    server: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for AwsHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwsHttp")
    }
}

impl AwsHttp {
    /// The client for these settings on this connection.
    pub fn new(settings: &AwsSettings, ctx: &ConnectContext) -> Result<AwsHttp, ConnectorError> {
        // An http endpoint still gets a verifying configuration for any https
        // URL (an STS endpoint): the core client does that for `Disable`.
        let opts = HttpOptions::new(settings.tls, settings.ca_pem.as_deref())
            .redirects(Redirects::SameOrigin)
            .max_body_bytes(MAX_RESPONSE_BYTES);
        Ok(AwsHttp {
            client: ctx.http_client(&opts)?,
            server: Arc::new(Mutex::new(None)),
        })
    }

    /// The `Server` header of the latest response, if any.
    pub fn server_header(&self) -> Option<String> {
        self.server.lock().ok().and_then(|s| s.clone())
    }

    pub(super) fn remember_server(&self, headers: &header::HeaderMap) {
        if let Some(v) = headers
            .get(header::SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            if let Ok(mut s) = self.server.lock() {
                *s = Some(v.chars().take(120).collect());
            }
        }
    }

    async fn call_sdk(&self, request: HttpRequest) -> Result<HttpResponse, SmithyConnectorError> {
        let method = Method::from_bytes(request.method().as_bytes())
            .map_err(|e| SmithyConnectorError::user(Box::new(e)))?;
        let url = Url::parse(request.uri()).map_err(|e| SmithyConnectorError::user(Box::new(e)))?;
        let body = request
            .body()
            .bytes()
            .ok_or_else(|| {
                SmithyConnectorError::user("streaming request bodies are not supported".into())
            })?
            .to_vec();
        let mut rb = self.client.request(method, url);
        for (k, v) in request.headers().iter() {
            rb = rb
                .header_str(k, v)
                .map_err(|e| SmithyConnectorError::user(Box::new(e)))?;
        }
        let resp = rb.body(body).send().await.map_err(smithy_error)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.remember_server(&headers);
        let body = resp.bytes().await.map_err(smithy_error)?;
        let status = StatusCode::try_from(status)
            .map_err(|e| SmithyConnectorError::other(Box::new(e), None))?;
        let mut out = HttpResponse::new(status, SdkBody::from(body));
        for (k, v) in headers.iter() {
            if let Ok(v) = v.to_str() {
                out.headers_mut()
                    .append(k.as_str().to_owned(), v.to_owned());
            }
        }
        Ok(out)
    }
}

/// A core transport error for the SDK: time limits as timeouts, refusals
/// that a retry cannot change (egress, a body over the cap, a bad URL) as
/// non-retryable, the rest as I/O (which the SDK may retry). The
/// [`ConnectorError`] stays the source, for [`super::parse_error`].
fn smithy_error(e: ConnectorError) -> SmithyConnectorError {
    match e.code() {
        ErrorCode::Timeout => SmithyConnectorError::timeout(Box::new(e)),
        ErrorCode::EgressDenied | ErrorCode::ProtocolError | ErrorCode::InvalidConfiguration => {
            SmithyConnectorError::other(Box::new(e), None)
        }
        _ => SmithyConnectorError::io(Box::new(e)),
    }
}

impl HttpConnector for AwsHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.call_sdk(request).await })
    }
}

impl SmithyHttpClient for AwsHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
