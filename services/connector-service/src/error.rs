//! The one error shape every route answers with: `{"code","message",...}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use matih_connector_core::{ConnectorError, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::connection_test::TestFailure;
use crate::secrets::SecretError;
use crate::store::StoreError;

/// The stable codes of the API's error shape, as docs/api.md and the OpenAPI
/// document list them; `as_str` is the wire spelling, which never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// No, malformed, expired or otherwise refused bearer token (401).
    Unauthorized,
    /// The caller's role may not do this (403).
    Forbidden,
    /// The tenant, connector or item does not exist for the caller (404).
    NotFound,
    /// No such route (404).
    RouteNotFound,
    /// The route has no such method (405).
    MethodNotAllowed,
    /// A duplicate tenant slug or connector name (409).
    Conflict,
    /// A failure of ours; the body says nothing more (500).
    Internal,
    /// The metadata store did not answer (503).
    MetadataStoreUnavailable,
    /// The secret store did not answer (503).
    SecretStoreUnavailable,
    /// A body, query or field that does not fit (400/422).
    InvalidRequest,
    /// A body that is not JSON (400).
    MalformedJson,
    /// A body without `Content-Type: application/json` (415).
    UnsupportedMediaType,
    /// A body over the limit (413).
    PayloadTooLarge,
    /// The tenant's plan holds no more connectors (403).
    PlanLimitExceeded,
    /// The tenant's plan does not include the type (403).
    PlanTypeNotAllowed,
    /// The connector's credential secret is gone (409).
    CredentialsMissing,
    /// New credentials failed their test; the old ones stay (422).
    CredentialsTestFailed,
    /// The connector is disabled (409).
    ConnectorInactive,
    /// Too many calls of the tenant in flight (429).
    ConcurrencyLimitExceeded,
    /// Timeouts above the server's caps (400).
    TimeoutLimitExceeded,
    /// The request took longer than the server allows (504).
    RequestTimeout,
    /// A create lost its plan-slot reservation (503).
    CreateInterrupted,
    /// No discovered catalog yet (404).
    CatalogNotFound,
    /// A connector error's own code (`INVALID_CONFIGURATION`, `EGRESS_DENIED`,
    /// `DRIVER_UNAVAILABLE`, …), spelled as core spells it.
    Connector(ErrorCode),
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::RouteNotFound => "ROUTE_NOT_FOUND",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::Conflict => "CONFLICT",
            Code::Internal => "INTERNAL",
            Code::MetadataStoreUnavailable => "METADATA_STORE_UNAVAILABLE",
            Code::SecretStoreUnavailable => "SECRET_STORE_UNAVAILABLE",
            Code::InvalidRequest => "INVALID_REQUEST",
            Code::MalformedJson => "MALFORMED_JSON",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::PlanLimitExceeded => "PLAN_LIMIT_EXCEEDED",
            Code::PlanTypeNotAllowed => "PLAN_TYPE_NOT_ALLOWED",
            Code::CredentialsMissing => "CREDENTIALS_MISSING",
            Code::CredentialsTestFailed => "CREDENTIALS_TEST_FAILED",
            Code::ConnectorInactive => "CONNECTOR_INACTIVE",
            Code::ConcurrencyLimitExceeded => "CONCURRENCY_LIMIT_EXCEEDED",
            Code::TimeoutLimitExceeded => "TIMEOUT_LIMIT_EXCEEDED",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
            Code::CreateInterrupted => "CREATE_INTERRUPTED",
            Code::CatalogNotFound => "CATALOG_NOT_FOUND",
            Code::Connector(c) => c.as_str(),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An API error. 5xx errors carry their cause only for the log: the body says
/// nothing internal.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    /// Boxed: `Value` is large when serde_json keeps key order, and errors
    /// travel in every `Result` of the handlers.
    pub details: Option<Box<Value>>,
    cause: Option<String>,
}

impl AppError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            details: None,
            cause: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::UNAUTHORIZED, Code::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::FORBIDDEN, Code::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        AppError::new(
            StatusCode::NOT_FOUND,
            Code::NotFound,
            format!("{what} not found"),
        )
    }

    pub fn bad_request(code: Code, message: impl Into<String>) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::CONFLICT, Code::Conflict, message)
    }

    /// A failure of ours; `cause` goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "internal error",
        );
        e.cause = Some(cause.to_string());
        e
    }

    /// A dependency (secret store, metadata store) is unavailable.
    pub fn unavailable(code: Code, what: &str, cause: impl std::fmt::Display) -> Self {
        let mut e = AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code,
            format!("{what} is unavailable; try again later"),
        );
        e.cause = Some(cause.to_string());
        e
    }
}

/// A driver's or core's refusal outside a test report: a configuration
/// refused before any I/O (400), a type compiled out (400), an address the
/// egress policy denies (403), anything else a failure upstream (502).
impl From<ConnectorError> for AppError {
    fn from(err: ConnectorError) -> Self {
        let status = match err.code() {
            ErrorCode::InvalidConfiguration => StatusCode::BAD_REQUEST,
            ErrorCode::DriverUnavailable | ErrorCode::Unsupported => StatusCode::BAD_REQUEST,
            ErrorCode::EgressDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        };
        let mut e = AppError::new(
            status,
            Code::Connector(err.code()),
            err.message().to_owned(),
        );
        if let Some(field) = err.context_value("field") {
            e.details = Some(Box::new(json!({ "field": field })));
        }
        e
    }
}

/// A stored connector that could not be tested: its driver (as above), its
/// missing secret (409 `CREDENTIALS_MISSING`), or the secret store (503).
impl From<TestFailure> for AppError {
    fn from(f: TestFailure) -> Self {
        match f {
            TestFailure::Driver(e) => e.into(),
            TestFailure::CredentialsMissing => AppError::new(
                StatusCode::CONFLICT,
                Code::CredentialsMissing,
                "the connector's credential secret is missing; set new credentials with PUT …/credentials",
            ),
            TestFailure::SecretStore(e) => e.into(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::conflict(m),
            e @ StoreError::Unwritable(_) => AppError::internal(e),
            other => {
                AppError::unavailable(Code::MetadataStoreUnavailable, "the metadata store", other)
            }
        }
    }
}

impl From<SecretError> for AppError {
    fn from(e: SecretError) -> Self {
        AppError::unavailable(Code::SecretStoreUnavailable, "the secret store", e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, cause = self.cause.as_deref().unwrap_or(""), "request failed");
        }
        let mut body = json!({ "code": self.code, "message": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) =
            (self.details.map(|d| *d), &mut body)
        {
            for (k, v) in extra {
                map.insert(k, v);
            }
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// Serde's messages quote the offending value; for anything under
/// `credentials` that value may be a secret, so quoted text is masked.
fn mask_quoted(message: &str) -> String {
    if !message.contains("credentials") {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push_str("***\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match &r {
            JsonRejection::MissingJsonContentType(_) => Code::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(_) => Code::MalformedJson,
            JsonRejection::JsonDataError(_) => Code::InvalidRequest,
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
            _ => Code::InvalidRequest,
        };
        AppError::new(status, code, mask_quoted(&r.body_text()))
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        // A malformed id names nothing that exists.
        AppError::new(StatusCode::NOT_FOUND, Code::NotFound, r.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        AppError::bad_request(Code::InvalidRequest, r.body_text())
    }
}

/// `axum::Json` whose rejections answer in the API's error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// A JSON body parsed only when the handler asks: after it has authorized the
/// caller for the tenant, so another tenant's request is answered 404 whatever
/// its body holds. Parsing answers exactly as [`ApiJson`] does.
#[derive(Debug)]
pub struct LaterJson(Request);

impl<S: Send + Sync> FromRequest<S> for LaterJson {
    type Rejection = std::convert::Infallible;
    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        Ok(LaterJson(req))
    }
}

impl LaterJson {
    pub async fn parse<T: DeserializeOwned>(self) -> Result<T, AppError> {
        let ApiJson(mut v) = ApiJson::<Value>::from_request(self.0, &()).await?;
        integral_floats_to_integers(&mut v);
        serde_path_to_error::deserialize(v).map_err(|e| {
            AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidRequest,
                mask_quoted(&format!(
                    "Failed to deserialize the JSON body into the target type: {e}"
                )),
            )
        })
    }

    /// The raw body, for routes whose body is optional.
    pub async fn bytes(self) -> Result<axum::body::Bytes, AppError> {
        axum::body::Bytes::from_request(self.0, &())
            .await
            .map_err(|r| {
                let status = r.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Code::PayloadTooLarge
                } else {
                    Code::InvalidRequest
                };
                AppError::new(status, code, r.body_text())
            })
    }
}

/// JSON has one number type: `6194.0` is the integer 6194 to JSON Schema (and
/// so to OpenAPI clients and schemathesis), but not to serde's integer types.
/// Integral floats within the integer range become integers before a body is
/// read into its type; anything else stays as it is and fails there.
fn integral_floats_to_integers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // 2^64 and -2^63 are exact in f64; the range is half-open above.
                if f.fract() == 0.0
                    && (-9_223_372_036_854_775_808.0..18_446_744_073_709_551_616.0).contains(&f)
                {
                    *v = if f < 0.0 {
                        Value::from(f as i64)
                    } else {
                        Value::from(f as u64)
                    };
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// `axum::extract::Path` with API-shaped rejections.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// `axum::extract::Query` with API-shaped rejections.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_become_integers_and_nothing_else_changes() {
        let mut v = json!({"port": 6194.0, "t": {"ms": [1.0, -2.0, 1.5]}, "big": 1e30, "s": "1.0"});
        integral_floats_to_integers(&mut v);
        assert_eq!(
            v,
            json!({"port": 6194, "t": {"ms": [1, -2, 1.5]}, "big": 1e30, "s": "1.0"})
        );
        assert!(v["port"].is_u64() && v["t"]["ms"][1].is_i64());
    }

    #[test]
    fn masks_quoted_values_under_credentials() {
        let m = mask_quoted(r#"credentials: invalid type: string "hunter2", expected a map"#);
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("credentials"));
        assert_eq!(
            mask_quoted(r#"name: invalid type "x""#),
            r#"name: invalid type "x""#
        );
    }
}
