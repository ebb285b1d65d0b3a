//! What the Google Cloud drivers share (Cargo feature `google`, on top of
//! [`crate::http`]): the credentials a connector gives ([`GoogleAuth`]:
//! a service account key, exchanged for access tokens by the core
//! [`TokenSource`] (JWT bearer grant, RS256), or an access token), project
//! ids, the authorized JSON API client ([`ApiClient`]) and the reading of
//! Google's JSON error bodies. Each driver keeps its own table of the
//! `reason`s only its API sends; the ones every Google JSON API sends are
//! [`reason_code`]'s.

#![warn(missing_docs)]

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::http::header::{HeaderMap, SERVER};
use crate::http::{
    HttpAuth, HttpClient, HttpOptions, HttpRequest, HttpResponse, JwtBearer, RefineStatus,
    RsaSigningKey, StatusFailure, TokenSource, Url,
};
use crate::{
    ConnectContext, ConnectionConfig, ConnectorError, Credentials, ErrorCode, SecretString, SslMode,
};

/// Google's OAuth2 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The fields of a service account key file the drivers use. `Debug` shows the
/// account, never the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// `type`: `service_account` when present.
    #[serde(rename = "type", default)]
    pub key_type: Option<String>,
    /// The account, the JWT's `iss`.
    pub client_email: String,
    /// The PEM private key.
    #[serde(deserialize_with = "secret")]
    pub private_key: SecretString,
    /// Sent as the JWT's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// The token endpoint the key names.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// The project the account belongs to.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// Reads a private key straight into a [`SecretString`].
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::new)
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .finish()
    }
}

/// A service account key with the token endpoint it is exchanged at.
#[derive(Clone, Debug)]
pub struct ServiceAccount {
    /// The key.
    pub key: ServiceAccountKey,
    /// `metadata.tokenUrl`, else the key's `token_uri`, else Google's.
    pub token_url: Url,
}

impl ServiceAccount {
    /// Parses `credentials.serviceAccountKey` (`text`) and the token endpoint,
    /// checking the key can sign, without I/O. Errors never quote the text.
    pub fn parse(cfg: &ConnectionConfig, text: &SecretString) -> Result<Self, ConnectorError> {
        // serde's message could quote the text; it is replaced by our own.
        let key: ServiceAccountKey = serde_json::from_str(text.expose()).map_err(|e| {
            ConnectorError::invalid_config(
                "credentials",
                format!(
                    "credentials.serviceAccountKey is not a service account key JSON (line {}, column {}; \
                     it needs client_email and private_key)",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if key
            .key_type
            .as_deref()
            .is_some_and(|t| t != "service_account")
        {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey has a \"type\" other than \"service_account\"",
            ));
        }
        if !key.private_key.expose().contains("PRIVATE KEY-----") {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey.private_key is not a PEM private key",
            ));
        }
        if RsaSigningKey::from_pem(&key.private_key, "credentials").is_err() {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey.private_key is not an RSA private key",
            ));
        }
        let uri = crate::metadata::string(cfg, "tokenUrl")?
            .or_else(|| key.token_uri.clone())
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
        let token_url = Url::parse(&uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ConnectorError::invalid_config(
                    "credentials",
                    "the service account key's token_uri (or metadata.tokenUrl) is not an http(s) URL",
                )
            })?;
        Ok(ServiceAccount { key, token_url })
    }

    /// The token source for `scope`: the JWT bearer grant at the token
    /// endpoint, audience the token URL, one hour per assertion.
    pub fn token_source(&self, scope: &str) -> Result<TokenSource, ConnectorError> {
        let key = RsaSigningKey::from_pem(&self.key.private_key, "credentials")?;
        Ok(TokenSource::jwt_bearer(
            self.token_url.clone(),
            JwtBearer {
                issuer: self.key.client_email.clone(),
                key,
                key_id: self.key.private_key_id.clone(),
                scope: scope.to_owned(),
                audience: None,
                lifetime: Duration::from_secs(3600),
            },
        ))
    }
}

/// How a Google driver authorizes its requests, from
/// `credentials.serviceAccountKey` or `credentials.accessToken` (at most one).
#[derive(Clone, Debug)]
pub enum GoogleAuth {
    /// No Authorization header: public data and emulators.
    Anonymous,
    /// A service account key, exchanged for an access token (JWT bearer grant).
    ServiceAccount(Box<ServiceAccount>),
    /// An OAuth2 access token obtained elsewhere.
    AccessToken(SecretString),
}

impl GoogleAuth {
    /// Reads the credentials without I/O: a service account key (see
    /// [`ServiceAccount::parse`]), an access token, or neither. Both at once,
    /// a token with spaces or control characters, and `metadata.tokenUrl`
    /// without a key are configuration errors.
    pub fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> Result<Self, ConnectorError> {
        let key = creds.get("serviceAccountKey").filter(|k| !k.is_empty());
        let token = creds.get("accessToken").filter(|k| !k.is_empty());
        let auth = match (key, token) {
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "give credentials.serviceAccountKey or credentials.accessToken, not both",
                ))
            }
            (Some(k), None) => GoogleAuth::ServiceAccount(Box::new(ServiceAccount::parse(cfg, k)?)),
            (None, Some(t)) => {
                if t.expose().chars().any(|c| c.is_control() || c == ' ') {
                    return Err(ConnectorError::invalid_config(
                        "credentials",
                        "credentials.accessToken holds spaces or control characters",
                    ));
                }
                GoogleAuth::AccessToken(t.clone())
            }
            (None, None) => GoogleAuth::Anonymous,
        };
        if !matches!(auth, GoogleAuth::ServiceAccount(_)) && cfg.metadata.contains_key("tokenUrl") {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.tokenUrl needs credentials.serviceAccountKey",
            ));
        }
        Ok(auth)
    }

    /// The project the service account key belongs to, when it says.
    pub fn key_project(&self) -> Option<&str> {
        match self {
            GoogleAuth::ServiceAccount(sa) => sa.key.project_id.as_deref(),
            _ => None,
        }
    }

    /// The request authorization for `scope` (a service account's token
    /// source asks for that scope).
    pub fn http_auth(&self, scope: &str) -> Result<HttpAuth, ConnectorError> {
        Ok(match self {
            GoogleAuth::Anonymous => HttpAuth::None,
            GoogleAuth::AccessToken(t) => HttpAuth::Bearer(t.clone()),
            GoogleAuth::ServiceAccount(sa) => HttpAuth::Token(Arc::new(sa.token_source(scope)?)),
        })
    }
}

/// Checks a project id (and the legacy `domain:project` form): 1-100
/// letters, digits, `-`, `.`, `:` and `_`.
pub fn check_project(p: &str) -> Result<(), ConnectorError> {
    let ok = p.len() <= 100
        && !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.project",
            "metadata.project must be a project id (letters, digits, '-', '.', ':')",
        ))
    }
}

/// The authorized client of a Google JSON API that a driver's connection
/// holds: the core's pinned HTTP client (egress resolver, TLS, bounded
/// bodies), the authorization, and the latest `Server` header for the
/// server version.
pub struct ApiClient {
    client: HttpClient,
    auth: HttpAuth,
    server: Mutex<Option<String>>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("auth", &self.auth.mode())
            .finish()
    }
}

impl ApiClient {
    /// The client for `tls`/`ca_pem` (same-origin redirects only, every hop
    /// egress-checked), success bodies up to `max_body_bytes`, error answers
    /// read by `refine`. A service account's token is fetched now, so bad
    /// keys fail at connect.
    pub async fn open(
        ctx: &ConnectContext,
        tls: SslMode,
        ca_pem: Option<&str>,
        max_body_bytes: u64,
        refine: RefineStatus,
        auth: &GoogleAuth,
        scope: &str,
    ) -> Result<ApiClient, ConnectorError> {
        let opts = HttpOptions::new(tls, ca_pem)
            .max_body_bytes(max_body_bytes)
            .refine(refine);
        let client = ctx.http_client(&opts)?;
        let auth = auth.http_auth(scope)?;
        auth.authorize(&client).await?;
        Ok(ApiClient {
            client,
            auth,
            server: Mutex::new(None),
        })
    }

    /// A GET request (not yet authorized: [`ApiClient::send`] does that).
    pub fn get(&self, url: Url) -> HttpRequest {
        self.client.get(url)
    }

    /// A POST request (not yet authorized: [`ApiClient::send`] does that).
    pub fn post(&self, url: Url) -> HttpRequest {
        self.client.post(url)
    }

    /// Authorizes and sends `req`, remembers the `Server` header, and turns a
    /// non-success answer into the client's refined error.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let resp = self.auth.apply(req).await?.send().await?;
        self.remember_server(resp.headers());
        if !resp.status().is_success() {
            return Err(resp.error().await);
        }
        Ok(resp)
    }

    /// Sends `req` described as `what` and reads its JSON answer within the
    /// body limit; a body that is not JSON is [`json_error`].
    pub async fn json(&self, req: HttpRequest, what: &str) -> Result<Value, ConnectorError> {
        let body = self.send(req.what(what)).await?.bytes().await?;
        serde_json::from_slice(&body).map_err(|e| json_error(e, what))
    }

    /// The latest non-empty `Server` header (at most 120 characters).
    pub fn server(&self) -> Option<String> {
        self.server.lock().ok().and_then(|s| s.clone())
    }

    fn remember_server(&self, headers: &HeaderMap) {
        if let Some(v) = headers
            .get(SERVER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
        {
            if let (false, Ok(mut s)) = (v.is_empty(), self.server.lock()) {
                *s = Some(v.chars().take(120).collect());
            }
        }
    }
}

/// `<endpoint>/<root…>/<segments…>?<query>` (`root` is the API's path, as
/// `["storage", "v1"]`), each segment encoded whole: a name's `/` travels as
/// `%2F`, as the JSON APIs want.
pub fn api_url(endpoint: &Url, root: &[&str], segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut u = endpoint.clone();
    if let Ok(mut p) = u.path_segments_mut() {
        p.clear().extend(root).extend(segments);
    }
    if !query.is_empty() {
        u.query_pairs_mut().extend_pairs(query);
    }
    u
}

/// The code of a `reason` (or RPC-style `status`) that every Google JSON API
/// sends (Google's standard error reference); `None` for the others, which
/// a driver's own table knows or the HTTP status decides.
pub fn reason_code(reason: &str) -> Option<ErrorCode> {
    Some(match reason {
        "authError"
        | "required"
        | "unauthorized"
        | "UNAUTHENTICATED"
        | "invalidCredentials"
        | "authenticationRequired"
        | "expiredToken" => ErrorCode::AuthenticationFailed,
        "forbidden"
        | "insufficientPermissions"
        | "accessNotConfigured"
        | "billingNotEnabled"
        | "PERMISSION_DENIED" => ErrorCode::PermissionDenied,
        "notFound" | "NOT_FOUND" => ErrorCode::DatabaseNotFound,
        "rateLimitExceeded"
        | "userRateLimitExceeded"
        | "quotaExceeded"
        | "RESOURCE_EXHAUSTED"
        | "dailyLimitExceeded"
        | "backendRateLimitExceeded" => ErrorCode::RateLimited,
        "invalid" | "invalidParameter" | "INVALID_ARGUMENT" | "badRequest" | "parseError" => {
            ErrorCode::InvalidConfiguration
        }
        "DEADLINE_EXCEEDED" | "requestTimeout" => ErrorCode::Timeout,
        "notImplemented" | "UNIMPLEMENTED" => ErrorCode::Unsupported,
        "backendError" | "internalError" | "INTERNAL" | "UNAVAILABLE" => ErrorCode::SourceError,
        _ => return None,
    })
}

/// HTTP status → code, for Google error bodies without a recognized reason.
pub fn status_code(status: u16) -> ErrorCode {
    match status {
        401 => ErrorCode::AuthenticationFailed,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::DatabaseNotFound,
        400 => ErrorCode::InvalidConfiguration,
        408 | 504 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        501 => ErrorCode::Unsupported,
        _ => ErrorCode::SourceError,
    }
}

/// A Google message on one line, white space folded, at most 300
/// characters.
pub fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

/// What a Google JSON API error body says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// `error.errors[0].reason` (`notFound`, `forbidden`, …).
    pub reason: Option<String>,
    /// `error.status`, the RPC-style status (`PERMISSION_DENIED`).
    pub status: Option<String>,
    /// `error.message`, or a short plain-text body.
    pub message: Option<String>,
}

/// Reads a JSON API error body (`{"error": {"errors": [{"reason"}], "status",
/// "message"}}`); a plain-text body that is not HTML is the message.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        let message = (!t.is_empty() && !t.starts_with('<')).then(|| t.to_owned());
        return ErrorFields {
            message,
            ..Default::default()
        };
    };
    let err = v.get("error").unwrap_or(&Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    ErrorFields {
        reason: err
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| s(e, "reason")),
        status: s(err, "status"),
        message: s(err, "message"),
    }
}

/// How a Google API's error answers map to codes: the driver's tables and the
/// context keys it reports them under.
#[derive(Clone, Copy, Debug)]
pub struct ErrorTable {
    /// A `reason` (or RPC `status`) → code; `None` when unknown.
    pub reason_code: fn(&str) -> Option<ErrorCode>,
    /// The HTTP status → code, when neither reason nor status is known.
    pub status_code: fn(u16) -> ErrorCode,
    /// Reasons worth retrying although their code is not.
    pub retryable_reason: fn(&str) -> bool,
    /// Context key of the reason (`gcsReason`, `bigqueryReason`).
    pub reason_key: &'static str,
    /// Context key of the RPC status (`gcsStatus`, `googleStatus`).
    pub status_key: &'static str,
}

/// The error for a Google JSON API's non-success answer (for a driver's
/// [`crate::http::RefineStatus`] hook): the reason, else the RPC status, else
/// the HTTP status decides the code; the message carries the reason and
/// Google's message on one line.
pub fn status_error(f: &StatusFailure<'_>, table: &ErrorTable) -> ConnectorError {
    let fields = error_fields(f.body);
    let code = fields
        .reason
        .as_deref()
        .and_then(table.reason_code)
        .or_else(|| fields.status.as_deref().and_then(table.reason_code))
        .unwrap_or_else(|| (table.status_code)(f.status.as_u16()));
    let message = fields.message.as_deref().map(one_line);
    let detail = match (&fields.reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => Some(format!("{r}: {m}")),
        (Some(r), _) => Some(r.clone()),
        (None, m) => m,
    };
    let mut err = f.error(code, detail);
    if fields.reason.as_deref().is_some_and(table.retryable_reason) {
        err = err.with_retryable(true);
    }
    if let Some(r) = fields.reason {
        err = err.with_context(table.reason_key, r);
    }
    if let Some(s) = fields.status {
        err = err.with_context(table.status_key, s);
    }
    err
}

/// A success body that is not the JSON expected: `PROTOCOL_ERROR`.
pub fn json_error(e: serde_json::Error, what: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("{what}: the response is not the JSON expected: {e}"),
    )
    .with_retryable(false)
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const KEY: &str = include_str!("../tests/data/test-rsa-key.pem");

    fn key_json(extra: &str) -> SecretString {
        SecretString::new(format!(
            r#"{{"type":"service_account","client_email":"r@p.iam.gserviceaccount.com","private_key":{}{extra}}}"#,
            serde_json::to_string(KEY).unwrap()
        ))
    }

    #[test]
    fn keys_are_checked_without_io_and_never_quoted() {
        let c = ConnectionConfig::default();
        let sa = ServiceAccount::parse(&c, &key_json("")).unwrap();
        assert_eq!(sa.token_url.as_str(), DEFAULT_TOKEN_URL);
        assert!(!format!("{sa:?}").contains("PRIVATE"));
        sa.token_source("https://www.googleapis.com/auth/bigquery.readonly")
            .unwrap();
        let sa = ServiceAccount::parse(&c, &key_json(r#","token_uri":"http://127.0.0.1:9/token""#))
            .unwrap();
        assert_eq!(sa.token_url.as_str(), "http://127.0.0.1:9/token");
        for bad in [
            SecretString::new("not json SECRETTEXT"),
            SecretString::new(r#"{"client_email":"x","private_key":"nope"}"#),
            SecretString::new(
                r#"{"type":"user","client_email":"x","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
            ),
            SecretString::new(
                r#"{"client_email":"x","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}"#,
            ),
            key_json(r#","token_uri":"file:///etc/passwd""#),
        ] {
            let e = ServiceAccount::parse(&c, &bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
            assert!(!e.message().contains("SECRETTEXT"), "{}", e.message());
        }
    }

    #[test]
    fn credentials_choose_one_authorization() {
        let cfg = |meta: Value| ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        };
        let none = GoogleAuth::parse(&cfg(serde_json::json!({})), &Credentials::new()).unwrap();
        assert!(matches!(none, GoogleAuth::Anonymous));
        assert_eq!(none.http_auth("s").unwrap().mode(), "none");
        let key = Credentials::new().with(
            "serviceAccountKey",
            key_json(r#","project_id":"from-key""#).expose(),
        );
        let sa = GoogleAuth::parse(&cfg(serde_json::json!({})), &key).unwrap();
        assert_eq!(sa.key_project(), Some("from-key"));
        let token = Credentials::new().with("accessToken", "ya29.x");
        let t = GoogleAuth::parse(&cfg(serde_json::json!({})), &token).unwrap();
        assert_eq!(t.http_auth("s").unwrap().mode(), "bearer");
        assert_eq!(t.key_project(), None);
        for (meta, creds) in [
            (
                serde_json::json!({}),
                key.clone().with("accessToken", "ya29.x"),
            ),
            (
                serde_json::json!({}),
                Credentials::new().with("accessToken", "ya 29"),
            ),
            (serde_json::json!({"tokenUrl": "https://x"}), token),
        ] {
            let e = GoogleAuth::parse(&cfg(meta), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        }
        check_project("acme.com:p-1_x").unwrap();
        for bad in ["", "bad project", &"p".repeat(101)] {
            assert!(check_project(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_reasons_and_urls() {
        assert_eq!(
            reason_code("authError"),
            Some(ErrorCode::AuthenticationFailed)
        );
        assert_eq!(reason_code("NOT_FOUND"), Some(ErrorCode::DatabaseNotFound));
        assert_eq!(reason_code("backendError"), Some(ErrorCode::SourceError));
        assert_eq!(reason_code("accessDenied"), None);
        assert_eq!(status_code(400), ErrorCode::InvalidConfiguration);
        assert_eq!(one_line(" a\n  b "), "a b");
        let e = Url::parse("http://127.0.0.1:9").unwrap();
        let u = api_url(&e, &["storage", "v1"], &["b", "x/y"], &[("q", "a&b")]);
        assert_eq!(u.as_str(), "http://127.0.0.1:9/storage/v1/b/x%2Fy?q=a%26b");
    }

    #[test]
    fn status_errors_follow_the_drivers_table() {
        let table = ErrorTable {
            reason_code: |r| (r == "notFound").then_some(ErrorCode::DatabaseNotFound),
            status_code: |_| ErrorCode::SourceError,
            retryable_reason: |r| r == "backendError",
            reason_key: "xReason",
            status_key: "xStatus",
        };
        let h = crate::http::header::HeaderMap::new();
        let f = |status: u16, body: &'static str| {
            let st = crate::http::StatusCode::from_u16(status).unwrap();
            status_error(
                &StatusFailure::new(st, &h, body.as_bytes(), "GET x"),
                &table,
            )
        };
        let e = f(
            404,
            r#"{"error":{"message":"gone","errors":[{"reason":"notFound"}],"status":"NOT_FOUND"}}"#,
        );
        assert_eq!(e.code(), ErrorCode::DatabaseNotFound);
        assert_eq!(e.context_value("xReason"), Some("notFound"));
        assert_eq!(e.context_value("xStatus"), Some("NOT_FOUND"));
        assert!(e.message().contains("notFound: gone"), "{}", e.message());
        let e = f(400, r#"{"error":{"errors":[{"reason":"backendError"}]}}"#);
        assert_eq!(e.code(), ErrorCode::SourceError);
        assert!(e.is_retryable());
    }

    #[test]
    fn error_bodies() {
        let f = error_fields(br#"{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#);
        assert_eq!(f.reason.as_deref(), Some("forbidden"));
        assert_eq!(f.status.as_deref(), Some("PERMISSION_DENIED"));
        assert_eq!(f.message.as_deref(), Some("denied"));
        assert_eq!(
            error_fields(b"Not Found").message.as_deref(),
            Some("Not Found")
        );
        assert_eq!(error_fields(b"<html>x</html>"), ErrorFields::default());
    }
}
