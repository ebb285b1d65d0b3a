//! What the S3 and DynamoDB drivers share: AWS settings (keys, region,
//! endpoint, TLS, assumed role), the HTTP client the SDK sends through, and
//! STS AssumeRole. The S3 crate carries the same file: drivers depend on the
//! core only, never on each other.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError as SmithyConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use matih_connector_core::{
    resolve_host, tls, with_timeout, ConnectContext, ConnectionConfig, ConnectorError, Credentials,
    EgressPolicy, ErrorCode, SecretString, SslMode, Timeouts,
};
use serde_json::Value;
use url::Url;

use crate::errors::{parse_error, Failure};

/// Cap on one HTTP response body the SDK receives. Listing pages and ranged
/// reads are far smaller; this only stops a hostile endpoint.
const MAX_RESPONSE_BYTES: u64 = 32 << 20;
const DEFAULT_REGION: &str = "us-east-1";

/// Access keys; `Debug` prints none of them.
#[derive(Clone)]
pub(crate) struct Keys {
    pub access_key_id: SecretString,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keys(session token: {})", self.session_token.is_some())
    }
}

/// A role to assume with STS before talking to the service.
#[derive(Clone, Debug)]
pub(crate) struct Role {
    pub arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    /// STS endpoint: `metadata.stsEndpoint`, else the service endpoint when it
    /// was overridden (emulators serve every API on one port), else
    /// `https://sts.<region>.amazonaws.com`.
    pub sts: Url,
}

/// Where and how to reach an AWS API, checked before any I/O.
#[derive(Clone, Debug)]
pub(crate) struct AwsSettings {
    pub region: String,
    /// `scheme://host:port`, what the SDK is given as its endpoint.
    pub endpoint: Url,
    pub host: String,
    pub port: u16,
    /// True when the endpoint is not AWS's own (host, port or `endpoint` set).
    #[allow(dead_code)] // the S3 driver's copy of this file uses it
    pub custom_endpoint: bool,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub keys: Keys,
    pub role: Option<Role>,
    pub timeouts: Timeouts,
}

pub(crate) fn meta_string(
    cfg: &ConnectionConfig,
    key: &'static str,
) -> Result<Option<String>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} is empty"),
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be a string"),
        )),
    }
}

#[allow(dead_code)] // the S3 driver's copy of this file uses it
pub(crate) fn meta_bool(
    cfg: &ConnectionConfig,
    key: &'static str,
) -> Result<Option<bool>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be true or false"),
        )),
    }
}

#[allow(dead_code)] // the S3 driver's copy of this file uses it
pub(crate) fn meta_u64(
    cfg: &ConnectionConfig,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConnectorError> {
    let v = match cfg.metadata.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match v {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be an integer from {min} to {max}"),
        )),
    }
}

/// Region names are short lowercase words with dashes (`eu-west-1`); anything
/// else would end up in a host name.
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

/// Whether TLS was said anything about (`sslEnabled` or `sslMode` given).
fn tls_said(cfg: &ConnectionConfig) -> bool {
    cfg.ssl_enabled.is_some() || cfg.ssl_mode.is_some()
}

/// The TLS mode for a scheme: https verifies fully unless a mode says
/// otherwise; http with TLS asked for is a contradiction.
fn tls_for_scheme(cfg: &ConnectionConfig, scheme: &str) -> Result<SslMode, ConnectorError> {
    let mode = cfg.ssl_mode()?;
    match (scheme, tls_said(cfg), mode.is_tls()) {
        ("http", true, true) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            format!("an http endpoint contradicts sslMode {mode}"),
        )),
        ("http", _, _) => Ok(SslMode::Disable),
        (_, true, false) => Err(ConnectorError::invalid_config(
            "metadata.endpoint",
            "an https endpoint contradicts sslEnabled=false / sslMode disable",
        )),
        (_, true, true) => Ok(mode),
        (_, false, _) => Ok(SslMode::VerifyFull),
    }
}

fn host_of(url: &Url) -> Option<String> {
    url.host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
}

/// `scheme://host:port` with IPv6 literals bracketed.
fn origin(scheme: &str, host: &str, port: u16) -> Result<Url, ConnectorError> {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Url::parse(&format!("{scheme}://{h}:{port}")).map_err(|e| {
        ConnectorError::invalid_config("host", format!("host {host:?} does not form a URL: {e}"))
    })
}

impl AwsSettings {
    /// Parses the settings. `service` is the endpoint prefix of the AWS API
    /// (`s3`, `dynamodb`), for the default endpoint.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
        service: &str,
    ) -> Result<AwsSettings, ConnectorError> {
        let region = meta_string(cfg, "region")?.unwrap_or_else(|| DEFAULT_REGION.to_owned());
        if !valid_region(&region) {
            return Err(ConnectorError::invalid_config(
                "metadata.region",
                format!(
                    "metadata.region {:?} is not a region name such as us-east-1",
                    region.chars().take(40).collect::<String>()
                ),
            ));
        }
        let (endpoint, custom) = match meta_string(cfg, "endpoint")? {
            Some(text) => {
                let url = Url::parse(&text).map_err(|e| {
                    ConnectorError::invalid_config(
                        "metadata.endpoint",
                        format!("metadata.endpoint is not a URL: {e}"),
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || !url.username().is_empty()
                    || url.password().is_some()
                    || url.query().is_some()
                    || !matches!(url.path(), "" | "/")
                {
                    return Err(ConnectorError::invalid_config(
                        "metadata.endpoint",
                        "metadata.endpoint must be http(s)://host[:port] without user, path or query",
                    ));
                }
                let host = host_of(&url).unwrap_or_default();
                if let Some(h) = cfg.host.as_deref().map(str::trim) {
                    if !h.eq_ignore_ascii_case(&host) {
                        return Err(ConnectorError::invalid_config(
                            "host",
                            "host and metadata.endpoint name different hosts: give one",
                        ));
                    }
                }
                let port = url.port_or_known_default().unwrap_or(443);
                if cfg.port.is_some_and(|p| p != port) {
                    return Err(ConnectorError::invalid_config(
                        "port",
                        "port and metadata.endpoint name different ports: give one",
                    ));
                }
                (origin(url.scheme(), &host, port)?, true)
            }
            None => match cfg.host.as_deref().map(str::trim) {
                Some(h) if !h.is_empty() => {
                    let https = tls_said(cfg) && cfg.ssl_mode()?.is_tls() || !tls_said(cfg);
                    let scheme = if https { "https" } else { "http" };
                    let port = cfg.port.unwrap_or(if https { 443 } else { 80 });
                    let host = h.trim_start_matches('[').trim_end_matches(']');
                    (origin(scheme, host, port)?, true)
                }
                _ => {
                    let host = format!("{service}.{region}.amazonaws.com");
                    (
                        origin("https", &host, cfg.port.unwrap_or(443))?,
                        cfg.port.is_some(),
                    )
                }
            },
        };
        let tls = tls_for_scheme(cfg, endpoint.scheme())?;
        let host = host_of(&endpoint).unwrap_or_default();
        let port = endpoint.port_or_known_default().unwrap_or(443);

        let keys = Keys {
            access_key_id: creds.require("accessKeyId")?.clone(),
            secret_access_key: creds.require("secretAccessKey")?.clone(),
            session_token: creds.get("sessionToken").filter(|t| !t.is_empty()).cloned(),
        };
        for (name, v) in [
            ("accessKeyId", Some(&keys.access_key_id)),
            ("secretAccessKey", Some(&keys.secret_access_key)),
            ("sessionToken", keys.session_token.as_ref()),
        ] {
            if v.is_some_and(|v| v.expose().chars().any(|c| c.is_control() || c == ' ')) {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    format!("credentials.{name} holds spaces or control characters"),
                ));
            }
        }

        let role = match meta_string(cfg, "roleArn")? {
            None => None,
            Some(arn) => {
                if !arn.starts_with("arn:") || arn.len() > 2048 {
                    return Err(ConnectorError::invalid_config(
                        "metadata.roleArn",
                        "metadata.roleArn must be a role ARN (arn:aws:iam::<account>:role/<name>)",
                    ));
                }
                let session_name = meta_string(cfg, "roleSessionName")?
                    .unwrap_or_else(|| "matih-connectors".to_owned());
                let ok_name = (2..=64).contains(&session_name.len())
                    && session_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
                if !ok_name {
                    return Err(ConnectorError::invalid_config(
                        "metadata.roleSessionName",
                        "metadata.roleSessionName must be 2-64 characters of letters, digits and +=,.@-_",
                    ));
                }
                let sts = match meta_string(cfg, "stsEndpoint")? {
                    Some(s) => Url::parse(&s)
                        .ok()
                        .filter(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                        })
                        .ok_or_else(|| {
                            ConnectorError::invalid_config(
                                "metadata.stsEndpoint",
                                "metadata.stsEndpoint must be an http(s) URL",
                            )
                        })?,
                    None if custom => endpoint.clone(),
                    None => origin("https", &format!("sts.{region}.amazonaws.com"), 443)?,
                };
                Some(Role {
                    arn,
                    session_name,
                    external_id: meta_string(cfg, "externalId")?,
                    sts,
                })
            }
        };
        if role.is_none() {
            for k in ["roleSessionName", "externalId", "stsEndpoint"] {
                if cfg.metadata.contains_key(k) {
                    return Err(ConnectorError::invalid_config(
                        "metadata",
                        format!("metadata.{k} needs metadata.roleArn"),
                    ));
                }
            }
        }
        Ok(AwsSettings {
            region,
            endpoint,
            host,
            port,
            custom_endpoint: custom,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            keys,
            role,
            timeouts: cfg.timeouts,
        })
    }

    /// The endpoint's host is an IP literal or `localhost`: no per-bucket
    /// host names can exist there.
    #[allow(dead_code)] // the S3 driver's copy of this file uses it
    pub fn host_is_local_or_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok() || self.host.eq_ignore_ascii_case("localhost")
    }
}

/// Resolves host names for the HTTP client: the endpoint's host to the
/// addresses the core resolved and checked; its subdomains (S3
/// virtual-hosted buckets) and the STS host through the core's resolver, which
/// applies the egress policy; any other name is refused.
struct PinnedResolver {
    host: String,
    addrs: Vec<SocketAddr>,
    extra_hosts: Vec<String>,
    timeouts: Timeouts,
    egress: EgressPolicy,
}

impl reqwest::dns::Resolve for PinnedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let host = self.host.to_ascii_lowercase();
        if name == host {
            let addrs = self.addrs.clone();
            return Box::pin(async move { Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs) });
        }
        let allowed = name.ends_with(&format!(".{host}")) || self.extra_hosts.contains(&name);
        let timeouts = self.timeouts;
        let egress = self.egress.clone();
        Box::pin(async move {
            if !allowed {
                let e: Box<dyn std::error::Error + Send + Sync> = Box::new(ConnectorError::new(
                    ErrorCode::EgressDenied,
                    format!("{name} is not the configured endpoint; refusing to look it up"),
                ));
                return Err(e);
            }
            // The port is replaced by the URL's own when connecting.
            match resolve_host(&name, 443, timeouts, &egress).await {
                Ok(a) => Ok(Box::new(a.into_iter()) as reqwest::dns::Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The HTTP client every SDK request goes through: reqwest with the core's
/// TLS configuration, no proxy, no redirects, addresses pinned, bodies
/// bounded. It remembers the last `Server` header for the server version.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    server: Arc<Mutex<Option<String>>>,
    request_timeout: Duration,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Http")
    }
}

impl Http {
    pub fn new(settings: &AwsSettings, ctx: &ConnectContext) -> Result<Http, ConnectorError> {
        // An http endpoint still gets a verifying configuration, for an https
        // STS endpoint.
        let mode = if settings.tls.is_tls() {
            settings.tls
        } else {
            SslMode::VerifyFull
        };
        let tls = tls::client_config(mode, settings.ca_pem.as_deref())?
            .ok_or_else(|| ConnectorError::internal("TLS configuration missing for a TLS mode"))?;
        let mut extra_hosts = Vec::new();
        if let Some(sts) = settings.role.as_ref().and_then(|r| host_of(&r.sts)) {
            extra_hosts.push(sts.to_ascii_lowercase());
        }
        let resolver = PinnedResolver {
            host: settings.host.clone(),
            addrs: ctx.addrs.clone(),
            extra_hosts,
            timeouts: ctx.timeouts,
            egress: ctx.egress.clone(),
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .connect_timeout(ctx.timeouts.connect())
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(4)
            .user_agent(concat!("matih-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ConnectorError::new(
                    ErrorCode::Internal,
                    format!("building the HTTP client: {e}"),
                )
                .with_source(e)
            })?;
        Ok(Http {
            client,
            server: Arc::new(Mutex::new(None)),
            request_timeout: ctx.timeouts.query(),
        })
    }

    /// The `Server` header of the latest response, if any.
    pub fn server_header(&self) -> Option<String> {
        self.server.lock().ok().and_then(|s| s.clone())
    }

    fn remember_server(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(v) = headers
            .get(reqwest::header::SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            if let Ok(mut s) = self.server.lock() {
                *s = Some(v.chars().take(120).collect());
            }
        }
    }

    /// Sends a request and reads the body within the cap. Errors keep
    /// reqwest's error as their source, for the error mapping.
    pub(crate) async fn execute(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, reqwest::header::HeaderMap, Vec<u8>), SmithyConnectorError> {
        let mut resp = req
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.remember_server(&headers);
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            if body.len() as u64 + chunk.len() as u64 > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    async fn call_sdk(&self, request: HttpRequest) -> Result<HttpResponse, SmithyConnectorError> {
        let method = reqwest::Method::from_bytes(request.method().as_bytes())
            .map_err(|e| SmithyConnectorError::user(Box::new(e)))?;
        let body = request
            .body()
            .bytes()
            .ok_or_else(|| {
                SmithyConnectorError::user("streaming request bodies are not supported".into())
            })?
            .to_vec();
        let mut rb = self.client.request(method, request.uri());
        for (k, v) in request.headers().iter() {
            rb = rb.header(k, v);
        }
        let (status, headers, body) = self.execute(rb.body(body)).await?;
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

fn too_large() -> SmithyConnectorError {
    SmithyConnectorError::other(
        format!("response body exceeds {MAX_RESPONSE_BYTES} bytes").into(),
        None,
    )
}

fn transport_error(e: reqwest::Error) -> SmithyConnectorError {
    if e.is_timeout() {
        SmithyConnectorError::timeout(Box::new(e))
    } else {
        SmithyConnectorError::io(Box::new(e))
    }
}

impl HttpConnector for Http {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.call_sdk(request).await })
    }
}

impl HttpClient for Http {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// Temporary keys from STS AssumeRole, or the configured keys when no role is
/// set.
pub(crate) async fn effective_keys(
    settings: &AwsSettings,
    http: &Http,
) -> Result<Keys, ConnectorError> {
    let Some(role) = &settings.role else {
        return Ok(settings.keys.clone());
    };
    let what = format!("STS AssumeRole {}", role.arn);
    with_timeout(
        settings.timeouts.connect(),
        &what,
        assume_role(settings, role, http, &what),
    )
    .await
}

/// Form-encodes one `application/x-www-form-urlencoded` value.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// STS AssumeRole over the Query API, signed with SigV4 by `aws-sigv4` (which
/// the SDK already links), so no STS client crate is needed.
async fn assume_role(
    settings: &AwsSettings,
    role: &Role,
    http: &Http,
    what: &str,
) -> Result<Keys, ConnectorError> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let mut pairs = vec![
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("RoleArn", role.arn.as_str()),
        ("RoleSessionName", role.session_name.as_str()),
        ("DurationSeconds", "900"),
    ];
    if let Some(x) = &role.external_id {
        pairs.push(("ExternalId", x));
    }
    let body = form_encode(&pairs);
    let mut url = role.sts.clone();
    url.set_path("/");
    let host_header = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let creds = aws_smithy_runtime_api::client::identity::Identity::new(
        crate::sdk_credentials(&settings.keys),
        None,
    );
    let params = v4::SigningParams::builder()
        .identity(&creds)
        .region(&settings.region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| ConnectorError::internal(format!("{what}: signing: {e}")))?
        .into();
    let headers = [
        ("host", host_header.as_str()),
        ("content-type", content_type),
    ];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| ConnectorError::internal(format!("{what}: signing: {e}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| ConnectorError::internal(format!("{what}: signing: {e}")))?
        .into_parts();
    let mut rb = http
        .client
        .post(url.as_str())
        .header("content-type", content_type);
    for (k, v) in instructions.headers() {
        rb = rb.header(k, v);
    }
    let (status, _, resp) = http
        .execute(rb.body(body))
        .await
        .map_err(|e| parse_error(Failure::Transport(Box::new(e)), what))?;
    if !(200..300).contains(&status) {
        return Err(parse_error(Failure::from_body(status, &resp), what));
    }
    let text = String::from_utf8_lossy(&resp);
    let field = |name: &str| crate::errors::xml_text(&text, name);
    match (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    ) {
        (Some(id), Some(secret), token) => Ok(Keys {
            access_key_id: SecretString::new(id),
            secret_access_key: SecretString::new(secret),
            session_token: token.map(SecretString::new),
        }),
        _ => Err(ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the answer holds no credentials"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn keys() -> Credentials {
        Credentials::new()
            .with("accessKeyId", "AKIAEXAMPLE")
            .with("secretAccessKey", "wJalrXUtnFEMI/K7MDENG")
    }

    #[test]
    fn default_endpoint_is_aws_with_verified_tls() {
        let s =
            AwsSettings::parse(&cfg(json!({"region": "eu-west-1"})), &keys(), "dynamodb").unwrap();
        assert_eq!(
            s.endpoint.as_str(),
            "https://dynamodb.eu-west-1.amazonaws.com/"
        );
        assert_eq!(s.tls, SslMode::VerifyFull);
        assert!(!s.custom_endpoint);
        assert!(!format!("{s:?}").contains("wJalr"));
    }

    #[test]
    fn endpoint_overrides() {
        let s = AwsSettings::parse(
            &cfg(json!({"endpoint": "http://127.0.0.1:5000"})),
            &keys(),
            "s3",
        )
        .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("127.0.0.1", 5000, SslMode::Disable)
        );
        assert!(s.custom_endpoint && s.host_is_local_or_ip());

        let mut c = cfg(json!({}));
        c.host = Some("minio.internal".into());
        c.port = Some(9000);
        c.ssl_enabled = Some(false);
        let s = AwsSettings::parse(&c, &keys(), "s3").unwrap();
        assert_eq!(s.endpoint.as_str(), "http://minio.internal:9000/");

        c.ssl_enabled = None;
        let s = AwsSettings::parse(&c, &keys(), "s3").unwrap();
        assert_eq!(s.endpoint.as_str(), "https://minio.internal:9000/");
        assert_eq!(s.tls, SslMode::VerifyFull);

        for bad in [
            json!({"endpoint": "ftp://x"}),
            json!({"endpoint": "http://u:p@x"}),
            json!({"endpoint": "http://x/path"}),
            json!({"region": "us east"}),
            json!({"region": 5}),
            json!({"roleArn": "role/x"}),
            json!({"externalId": "x"}),
            json!({"roleArn": "arn:aws:iam::1:role/r", "roleSessionName": "has space"}),
        ] {
            let e = AwsSettings::parse(&cfg(bad.clone()), &keys(), "s3").unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
        let mut c = cfg(json!({"endpoint": "http://127.0.0.1:5000"}));
        c.ssl_mode = Some(SslMode::VerifyFull);
        assert!(AwsSettings::parse(&c, &keys(), "s3").is_err());
    }

    #[test]
    fn roles_and_keys() {
        let s = AwsSettings::parse(
            &cfg(json!({"endpoint": "http://127.0.0.1:5000", "roleArn": "arn:aws:iam::123456789012:role/reader"})),
            &keys(),
            "s3",
        )
        .unwrap();
        let role = s.role.unwrap();
        assert_eq!(role.sts.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(role.session_name, "matih-connectors");
        let s = AwsSettings::parse(
            &cfg(json!({"region": "eu-central-1", "roleArn": "arn:aws:iam::1:role/r"})),
            &keys(),
            "s3",
        )
        .unwrap();
        assert_eq!(
            s.role.unwrap().sts.as_str(),
            "https://sts.eu-central-1.amazonaws.com/"
        );
        let e = AwsSettings::parse(
            &cfg(json!({})),
            &Credentials::new().with("accessKeyId", "x"),
            "s3",
        )
        .unwrap_err();
        assert!(e.message().contains("secretAccessKey"));
    }

    #[tokio::test]
    async fn resolver_pins_the_endpoint_and_checks_other_hosts() {
        use reqwest::dns::Resolve;
        let pinned: SocketAddr = "10.1.2.3:443".parse().unwrap();
        let r = PinnedResolver {
            host: "s3.example.invalid".into(),
            addrs: vec![pinned],
            extra_hosts: vec![],
            timeouts: Timeouts::default(),
            egress: EgressPolicy::default(),
        };
        let code = |e: Box<dyn std::error::Error + Send + Sync>| {
            e.downcast_ref::<ConnectorError>().map(|c| c.code())
        };
        let got: Vec<SocketAddr> = r
            .resolve("S3.Example.Invalid".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(got, vec![pinned]);
        // A virtual-hosted bucket goes through the core's resolver (which
        // knows .invalid never resolves, without asking DNS).
        let e = r
            .resolve("bucket.s3.example.invalid".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(code(e), Some(ErrorCode::DnsResolutionFailed));
        let e = r
            .resolve("metadata.example.org".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(code(e), Some(ErrorCode::EgressDenied));
    }

    #[test]
    fn form_encoding() {
        assert_eq!(
            form_encode(&[("RoleArn", "arn:aws:iam::1:role/a b"), ("X", "&=")]),
            "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fa+b&X=%26%3D"
        );
    }
}
