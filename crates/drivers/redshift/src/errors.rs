//! The one place Redshift failures become [`ConnectorError`]s: Data API error
//! codes (from the SDK, or read from the body when the SDK could not parse
//! it), HTTP statuses, transport failures (TLS, I/O, DNS, timeouts), and the
//! error text of statements that ran and FAILED (the database's own message,
//! which the Data API passes on without a SQLSTATE).
//!
//! The transport half is the S3/DynamoDB drivers' `errors.rs` (drivers depend
//! on the core only, so the code is copied, not shared).

use std::error::Error as StdError;
use std::io;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use matih_connector_core::{find_source, ConnectorError, ErrorCode};
use serde_json::Value;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Something that went wrong talking to AWS.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The service answered with an error status.
    Service {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        request_id: Option<String>,
        /// S3's `x-amz-bucket-region` header: where the bucket really is.
        bucket_region: Option<String>,
        source: Option<BoxError>,
    },
    /// The request never got an answer: connect, TLS, DNS, reset.
    Transport(BoxError),
    /// The SDK's own time limit.
    Timeout(BoxError),
    /// The SDK refused to build the request (an invalid name, say).
    Construction(BoxError),
    /// Anything else the SDK reports.
    Other(BoxError),
}

impl Failure {
    /// A service error read from a raw status and body (XML or JSON).
    pub fn from_body(status: u16, body: &[u8]) -> Failure {
        let (code, message, request_id) = body_fields(body);
        Failure::Service {
            status,
            code,
            message,
            request_id,
            bucket_region: None,
            source: None,
        }
    }
}

fn bucket_region(raw: &HttpResponse) -> Option<String> {
    raw.headers()
        .get("x-amz-bucket-region")
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.len() <= 32)
        .map(str::to_owned)
}

/// Classifies an SDK error, keeping the SDK's error as the source.
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let (b_code, b_msg, b_rid) =
                se.raw().body().bytes().map(body_fields).unwrap_or_default();
            let e = se.err();
            // An error the SDK could not parse (an XML body on a JSON API)
            // comes back without a code; the body still says it.
            let code = e.code().map(str::to_owned).or(b_code);
            let message = e.message().map(str::to_owned).or(b_msg);
            let request_id = e
                .meta()
                .extra("aws_request_id")
                .map(str::to_owned)
                .or(b_rid);
            Failure::Service {
                status,
                code,
                message,
                request_id,
                bucket_region: bucket_region(se.raw()),
                source: Some(Box::new(se.into_err())),
            }
        }
        SdkError::ResponseError(re) => {
            let raw = re.raw();
            let status = raw.status().as_u16();
            let (code, message, request_id) =
                raw.body().bytes().map(body_fields).unwrap_or_default();
            Failure::Service {
                status,
                code,
                message,
                request_id,
                bucket_region: bucket_region(raw),
                source: None,
            }
        }
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                Failure::Timeout(Box::new(SdkError::<E, HttpResponse>::DispatchFailure(d)))
            } else {
                Failure::Transport(Box::new(SdkError::<E, HttpResponse>::DispatchFailure(d)))
            }
        }
        e @ SdkError::TimeoutError(_) => Failure::Timeout(Box::new(e)),
        e @ SdkError::ConstructionFailure(_) => Failure::Construction(Box::new(e)),
        e => Failure::Other(Box::new(e)),
    }
}

/// AWS error code → our code. Codes are those the S3, DynamoDB, STS and IAM
/// documentation lists; unknown codes fall back to the status.
pub(crate) fn code_for(aws_code: &str, status: u16) -> ErrorCode {
    match aws_code {
        // Redshift Data API specific codes.
        "ActiveStatementsExceededException" | "ActiveSessionsExceededException" => {
            ErrorCode::RateLimited
        }
        "QueryTimeoutException" => ErrorCode::Timeout,
        "DatabaseConnectionException" => ErrorCode::ConnectionRefused,
        "ExecuteStatementException" | "BatchExecuteStatementException" => ErrorCode::SourceError,
        // A ValidationException names a bad parameter; the message says which
        // (see `validation_code`).
        "ValidationException" => ErrorCode::InvalidConfiguration,
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "InvalidSignatureException"
        | "InvalidToken"
        | "AuthFailure"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "TokenRefreshRequired"
        | "RequestExpired"
        | "RequestTimeTooSkewed"
        | "InvalidSecurity"
        | "NotAuthorized" => ErrorCode::AuthenticationFailed,
        "AccessDenied"
        | "AccessDeniedException"
        | "AllAccessDisabled"
        | "AccountProblem"
        | "UnauthorizedOperation"
        | "UnauthorizedAccess"
        | "Forbidden"
        | "InvalidPayer"
        | "KMS.AccessDeniedException" => ErrorCode::PermissionDenied,
        "NoSuchBucket"
        | "ResourceNotFoundException"
        | "TableNotFoundException"
        | "NotFound"
        | "NoSuchEntity" => ErrorCode::DatabaseNotFound,
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "SlowDown"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "TooManyRequestsException"
        | "LimitExceededException"
        | "BandwidthLimitExceeded"
        | "TransactionInProgressException" => ErrorCode::RateLimited,
        "RequestTimeout" | "RequestTimeoutException" => ErrorCode::Timeout,
        // The bucket or endpoint lives in another region, or the name is not
        // a valid one: the configuration must change.
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException"
        | "InvalidBucketName"
        | "InvalidRegion"
        | "InvalidEndpointException" => ErrorCode::InvalidConfiguration,
        "NotImplemented"
        | "UnknownOperationException"
        | "UnsupportedOperation"
        | "InvalidAction" => ErrorCode::Unsupported,
        _ => status_code(status),
    }
}

/// A ValidationException's message tells a missing database, cluster or
/// workgroup (or a refused database user) from a malformed request.
pub(crate) fn validation_code(message: &str) -> ErrorCode {
    let m = message.to_ascii_lowercase();
    let missing = m.contains("not found") || m.contains("does not exist");
    let names_target = m.contains("database") || m.contains("cluster") || m.contains("workgroup");
    if missing && names_target {
        ErrorCode::DatabaseNotFound
    } else if m.contains("password authentication failed")
        || m.contains("not authorized to get credentials")
    {
        ErrorCode::AuthenticationFailed
    } else if m.contains("permission denied") || m.contains("not authorized") {
        ErrorCode::PermissionDenied
    } else {
        ErrorCode::InvalidConfiguration
    }
}

/// The code for a statement that ran and ended FAILED, from its `Error` text
/// (Redshift's message, e.g. `ERROR: permission denied for relation orders`).
pub(crate) fn statement_code(error: &str) -> ErrorCode {
    let m = error.to_ascii_lowercase();
    if m.contains("permission denied")
        || m.contains("must be owner")
        || m.contains("insufficient privilege")
    {
        ErrorCode::PermissionDenied
    } else if m.contains("database") && m.contains("does not exist") {
        ErrorCode::DatabaseNotFound
    } else if m.contains("password authentication failed") || m.contains("authentication failed") {
        ErrorCode::AuthenticationFailed
    } else if m.contains("statement timeout")
        || m.contains("query timeout")
        || m.contains("canceling statement")
    {
        ErrorCode::Timeout
    } else if m.contains("too many connections") || m.contains("concurrency") || m.contains("wlm") {
        ErrorCode::RateLimited
    } else if m.contains("terminating connection") || m.contains("connection reset") {
        ErrorCode::ConnectionClosed
    } else {
        ErrorCode::SourceError
    }
}

/// A statement's FAILED or ABORTED end as an error.
pub(crate) fn statement_error(
    status: &str,
    error: Option<&str>,
    statement_id: &str,
    what: &str,
) -> ConnectorError {
    let text = one_line(error.unwrap_or("no error text"));
    let code = if status.eq_ignore_ascii_case("ABORTED") {
        ErrorCode::SourceError
    } else {
        statement_code(&text)
    };
    ConnectorError::new(code, format!("{what}: statement {status}: {text}"))
        .with_context("statementId", statement_id.to_owned())
        .with_context("statementStatus", status.to_owned())
}

/// HTTP status → our code, for errors without a recognized AWS code (HEAD
/// requests carry no body).
pub(crate) fn status_code(status: u16) -> ErrorCode {
    match status {
        401 => ErrorCode::AuthenticationFailed,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::DatabaseNotFound,
        301 | 307 => ErrorCode::InvalidConfiguration,
        408 | 504 => ErrorCode::Timeout,
        429 | 503 => ErrorCode::RateLimited,
        501 => ErrorCode::Unsupported,
        _ => ErrorCode::SourceError,
    }
}

fn retryable(code: ErrorCode, status: u16) -> bool {
    code.is_retryable() || matches!(status, 500 | 502 | 503 | 504)
}

/// Maps a failure. `what` says what we were doing and holds no secret.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Service {
            status,
            code,
            message,
            request_id,
            bucket_region,
            source,
        } => {
            let ours = match code.as_deref() {
                Some("ValidationException") => validation_code(message.as_deref().unwrap_or("")),
                Some(c) => code_for(c, status),
                None => status_code(status),
            };
            let mut msg = format!("{what}: HTTP {status}");
            if let Some(c) = &code {
                msg.push_str(&format!(" {c}"));
            }
            if let Some(m) = message.as_deref().map(one_line).filter(|m| !m.is_empty()) {
                msg.push_str(&format!(": {m}"));
            }
            if ours == ErrorCode::InvalidConfiguration
                && matches!(
                    code.as_deref(),
                    Some("PermanentRedirect" | "AuthorizationHeaderMalformed") | None
                )
            {
                match &bucket_region {
                    Some(r) => msg.push_str(&format!(
                        "; the bucket is in region {r}: set metadata.region"
                    )),
                    None => msg.push_str("; check metadata.region"),
                }
            }
            let mut err = ConnectorError::new(ours, msg)
                .with_context("httpStatus", status)
                .with_retryable(retryable(ours, status));
            if let Some(c) = code {
                err = err.with_context("awsErrorCode", c);
            }
            if let Some(r) = request_id {
                err = err.with_context("requestId", r);
            }
            if let Some(s) = source {
                err = err.with_source(Boxed(s));
            }
            err
        }
        Failure::Timeout(e) => {
            ConnectorError::new(ErrorCode::Timeout, format!("{what}: timed out"))
                .with_source(Boxed(e))
        }
        Failure::Transport(e) => transport(e, what),
        Failure::Construction(e) => ConnectorError::new(
            ErrorCode::InvalidConfiguration,
            format!("{what}: {}", chain(&*e)),
        )
        .with_source(Boxed(e)),
        Failure::Other(e) => {
            let detail = chain(&*e);
            let code = if detail.contains("deserializ") || detail.contains("unexpected") {
                ErrorCode::ProtocolError
            } else {
                ErrorCode::SourceError
            };
            ConnectorError::new(code, format!("{what}: {detail}")).with_source(Boxed(e))
        }
    }
}

/// Transport failures: one of our own errors (egress, DNS) found inside,
/// else TLS, else the innermost I/O error's kind, else what reqwest says.
fn transport(e: BoxError, what: &str) -> ConnectorError {
    let err: &(dyn StdError + 'static) = &*e;
    if let Some(ours) = find_source::<ConnectorError>(err) {
        return ConnectorError::new(ours.code(), format!("{what}: {}", ours.message()))
            .with_source(Boxed(e));
    }
    if let Some(t) = find_source::<rustls::Error>(err) {
        return ConnectorError::new(ErrorCode::SslHandshakeFailed, format!("{what}: TLS: {t}"))
            .with_source(Boxed(e));
    }
    let detail = chain(err);
    let code = if let Some(r) = find_source::<reqwest::Error>(err).filter(|r| r.is_timeout()) {
        let _ = r;
        ErrorCode::Timeout
    } else if let Some(ioe) = innermost_io(err) {
        ErrorCode::from_io_kind(ioe.kind())
    } else if find_source::<reqwest::Error>(err).is_some_and(|r| r.is_connect()) {
        ErrorCode::ConnectionRefused
    } else if detail.contains("connection closed")
        || detail.contains("IncompleteMessage")
        || detail.contains("connection reset")
    {
        ErrorCode::ConnectionClosed
    } else if detail.contains("invalid HTTP") || detail.contains("exceeds") {
        ErrorCode::ProtocolError
    } else {
        ErrorCode::ConnectionClosed
    };
    ConnectorError::new(code, format!("{what}: {detail}")).with_source(Boxed(e))
}

/// The deepest `io::Error` in the chain: its kind is the real cause.
fn innermost_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut found = None;
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    let mut hops = 0;
    while let (Some(e), true) = (cur, hops < 32) {
        hops += 1;
        cur = match e.downcast_ref::<io::Error>() {
            Some(io) => {
                found = Some(io);
                io.get_ref().map(|i| i as &(dyn StdError + 'static))
            }
            None => e.source(),
        };
    }
    found
}

/// The error and its causes on one line, repeated parts dropped.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    let mut hops = 0;
    while let (Some(e), true) = (cur, hops < 16) {
        hops += 1;
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    one_line(&parts.join(": "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

/// A boxed error as a concrete `Error` type for `with_source`.
#[derive(Debug)]
struct Boxed(BoxError);

impl std::fmt::Display for Boxed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Boxed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

/// The text of the first `<name>…</name>` element, entities decoded. Enough
/// for AWS's flat error and STS documents.
pub(crate) fn xml_text(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = doc.find(&open)? + open.len();
    let end = start + doc[start..].find(&close)?;
    let raw = doc[start..end].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Code, message and request id from an error body: AWS JSON
/// (`__type`/`code`, `message`/`Message`) or XML (`<Code>`, `<Message>`,
/// `<RequestId>`).
fn body_fields(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let head = &body[..body.len().min(16 * 1024)];
    if let Ok(v) = serde_json::from_slice::<Value>(head) {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        // `com.amazonaws.dynamodb.v20120810#ResourceNotFoundException`
        let code = s("__type")
            .or_else(|| s("code"))
            .or_else(|| s("Code"))
            .map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned());
        return (code, s("message").or_else(|| s("Message")), None);
    }
    let text = String::from_utf8_lossy(head);
    if text.trim_start().starts_with('<') {
        return (
            xml_text(&text, "Code"),
            xml_text(&text, "Message"),
            xml_text(&text, "RequestId").or_else(|| xml_text(&text, "RequestID")),
        );
    }
    (None, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, body: &str) -> ConnectorError {
        parse_error(
            Failure::from_body(status, body.as_bytes()),
            "ExecuteStatement",
        )
    }

    /// Error bodies as the Redshift Data API documents them (JSON 1.1,
    /// `__type` + `message`) and the IAM/STS codes every AWS JSON API shares.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode)] = &[
            (
                400,
                r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"__type":"InvalidSignatureException","message":"The request signature we calculated does not match the signature you provided."}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123:user/x is not authorized to perform: redshift-data:ExecuteStatement"}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"FATAL: database \"nope\" does not exist"}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"Redshift endpoint doesn't exist in this region."}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"Cluster prod not found."}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"Workgroup wg does not exist."}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"FATAL: password authentication failed for user \"IAM:x\""}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"__type":"ValidationException","message":"Not authorized to get credentials of user x"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"__type":"ActiveStatementsExceededException","message":"Active statements exceeded the allowed quota (500)."}"#,
                ErrorCode::RateLimited,
            ),
            (
                400,
                r#"{"__type":"ActiveSessionsExceededException","message":"The number of active sessions exceeds the limit."}"#,
                ErrorCode::RateLimited,
            ),
            (
                400,
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                ErrorCode::RateLimited,
            ),
            (
                400,
                r#"{"__type":"ResourceNotFoundException","message":"Query does not exist.","ResourceId":"x"}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                500,
                r#"{"__type":"DatabaseConnectionException","message":"Connection to a database failed."}"#,
                ErrorCode::ConnectionRefused,
            ),
            (
                400,
                r#"{"__type":"QueryTimeoutException","message":"The Redshift Data API has a query timeout."}"#,
                ErrorCode::Timeout,
            ),
            (
                500,
                r#"{"__type":"InternalServerException","message":"Internal error"}"#,
                ErrorCode::SourceError,
            ),
            (
                400,
                r#"{"__type":"com.amazon.redshiftdata#ExecuteStatementException","Message":"boom","StatementId":"x"}"#,
                ErrorCode::SourceError,
            ),
            (403, "", ErrorCode::PermissionDenied),
        ];
        for (status, body, want) in cases {
            let e = service(*status, body);
            assert_eq!(e.code(), *want, "{body}: {e}");
        }
        assert!(service(400, r#"{"__type":"ActiveStatementsExceededException"}"#).is_retryable());
        assert_eq!(
            service(
                400,
                r#"{"__type":"UnrecognizedClientException","message":"x"}"#
            )
            .context_value("awsErrorCode"),
            Some("UnrecognizedClientException")
        );
    }

    /// `DescribeStatement` Error texts of FAILED statements, as Redshift
    /// (and PostgreSQL underneath the fake) words them.
    #[test]
    fn failed_statement_texts_map_to_codes() {
        let cases: &[(&str, ErrorCode)] = &[
            (
                "ERROR: permission denied for relation orders",
                ErrorCode::PermissionDenied,
            ),
            (
                "ERROR: permission denied for schema sales",
                ErrorCode::PermissionDenied,
            ),
            (
                "FATAL: permission denied for database matih_seed",
                ErrorCode::PermissionDenied,
            ),
            (
                "ERROR: must be owner of relation x",
                ErrorCode::PermissionDenied,
            ),
            (
                "FATAL: database \"nope\" does not exist",
                ErrorCode::DatabaseNotFound,
            ),
            (
                "FATAL: password authentication failed for user \"x\"",
                ErrorCode::AuthenticationFailed,
            ),
            (
                "ERROR: Query (123) cancelled by WLM abort action of Query Monitoring Rule \"r\".",
                ErrorCode::RateLimited,
            ),
            (
                "ERROR: canceling statement due to statement timeout",
                ErrorCode::Timeout,
            ),
            (
                "ERROR: relation \"x\" does not exist",
                ErrorCode::SourceError,
            ),
            (
                "ERROR: syntax error at or near \"FORM\"",
                ErrorCode::SourceError,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(statement_code(text), *want, "{text}");
        }
        let e = statement_error(
            "FAILED",
            Some("ERROR: permission denied for relation t"),
            "id-1",
            "listing",
        );
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
        assert_eq!(e.context_value("statementId"), Some("id-1"));
        assert_eq!(
            statement_error("ABORTED", None, "id", "x").code(),
            ErrorCode::SourceError
        );
    }
}
