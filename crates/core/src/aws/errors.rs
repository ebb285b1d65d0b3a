//! The one place AWS failures become [`ConnectorError`]s: service error codes
//! (from the SDK, or read from the body when the SDK could not parse it, as
//! with the XML IAM errors an emulator returns for a JSON API), HTTP statuses,
//! and transport failures (TLS, I/O, DNS, timeouts, the core client's own
//! refusals). A driver with service-specific codes passes a
//! [`RefineAwsCode`] to [`parse_error_with`].

use std::error::Error as StdError;

use crate::http::errors::{chain, innermost_io};
use crate::{find_source, ConnectorError, ErrorCode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Something that went wrong talking to AWS.
#[derive(Debug)]
pub enum Failure {
    /// The service answered with an error status.
    Service {
        /// The HTTP status.
        status: u16,
        /// The AWS error code (`NoSuchBucket`, `AccessDeniedException`).
        code: Option<String>,
        /// The service's message.
        message: Option<String>,
        /// The request id, for support cases.
        request_id: Option<String>,
        /// S3's `x-amz-bucket-region` header: where the bucket really is.
        bucket_region: Option<String>,
        /// The SDK's error, kept as the source.
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
pub fn from_sdk<E>(err: SdkError<E, HttpResponse>) -> Failure
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
pub fn code_for(aws_code: &str, status: u16) -> ErrorCode {
    match aws_code {
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

/// HTTP status → our code, for errors without a recognized AWS code (HEAD
/// requests carry no body).
pub fn status_code(status: u16) -> ErrorCode {
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

/// A driver's reading of its service's own error codes: given the AWS code,
/// the message and the status, `Some` overrides [`code_for`].
pub type RefineAwsCode =
    fn(aws_code: &str, message: Option<&str>, status: u16) -> Option<ErrorCode>;

/// Maps a failure. `what` says what we were doing and holds no secret.
pub fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    parse_error_with(failure, what, |_, _, _| None)
}

/// [`parse_error`] with the driver's own codes tried first.
pub fn parse_error_with(failure: Failure, what: &str, refine: RefineAwsCode) -> ConnectorError {
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
                Some(c) => {
                    refine(c, message.as_deref(), status).unwrap_or_else(|| code_for(c, status))
                }
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
        let mut mapped = ConnectorError::new(ours.code(), format!("{what}: {}", ours.message()))
            .with_retryable(ours.is_retryable());
        for (k, v) in ours.context() {
            mapped = mapped.with_context(k, v);
        }
        return mapped.with_source(Boxed(e));
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

/// Whitespace collapsed, at most 300 characters: service messages in ours.
pub fn one_line(s: &str) -> String {
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
pub fn xml_text(doc: &str, name: &str) -> Option<String> {
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
    use std::io;

    fn service(status: u16, body: &str) -> ConnectorError {
        parse_error(Failure::from_body(status, body.as_bytes()), "ListTables")
    }

    /// Error bodies as AWS documents them (S3 REST XML, DynamoDB JSON 1.0,
    /// STS/IAM query XML) and as moto sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, Option<&str>)] = &[
            (403, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><AWSAccessKeyId>AKIA</AWSAccessKeyId><RequestId>4442587FB7D0A2F9</RequestId></Error>", ErrorCode::AuthenticationFailed, Some("InvalidAccessKeyId")),
            (403, "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key and signing method.</Message></Error>", ErrorCode::AuthenticationFailed, Some("SignatureDoesNotMatch")),
            (400, "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>", ErrorCode::AuthenticationFailed, Some("ExpiredToken")),
            (403, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", ErrorCode::PermissionDenied, Some("AccessDenied")),
            (404, "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>nope</BucketName></Error>", ErrorCode::DatabaseNotFound, Some("NoSuchBucket")),
            (503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", ErrorCode::RateLimited, Some("SlowDown")),
            (400, "<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not read from or written to within the timeout period.</Message></Error>", ErrorCode::Timeout, Some("RequestTimeout")),
            (301, "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><Endpoint>b.s3.eu-west-1.amazonaws.com</Endpoint></Error>", ErrorCode::InvalidConfiguration, Some("PermanentRedirect")),
            (400, "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message></Error>", ErrorCode::InvalidConfiguration, Some("AuthorizationHeaderMalformed")),
            (400, r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}"#, ErrorCode::AuthenticationFailed, Some("UnrecognizedClientException")),
            (400, r#"{"__type":"com.amazon.coral.service#ExpiredTokenException","message":"The security token included in the request is expired"}"#, ErrorCode::AuthenticationFailed, Some("ExpiredTokenException")),
            (400, r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"User: arn:aws:iam::123456789012:user/x is not authorized to perform: dynamodb:ListTables"}"#, ErrorCode::PermissionDenied, Some("AccessDeniedException")),
            (400, r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found: Table: nope not found"}"#, ErrorCode::DatabaseNotFound, Some("ResourceNotFoundException")),
            (400, r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded."}"#, ErrorCode::RateLimited, Some("ProvisionedThroughputExceededException")),
            (400, r#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#, ErrorCode::RateLimited, Some("ThrottlingException")),
            (400, r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"1 validation error detected"}"#, ErrorCode::SourceError, Some("ValidationException")),
            (500, r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#, ErrorCode::SourceError, Some("InternalServerError")),
            // STS and moto's IAM enforcement (XML even on JSON APIs).
            (403, "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error><RequestId>d5b8f3f3</RequestId></ErrorResponse>", ErrorCode::AuthenticationFailed, Some("InvalidClientTokenId")),
            (403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:iam::123456789012:user/nopriv is not authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>", ErrorCode::PermissionDenied, Some("AccessDenied")),
            // HEAD answers carry no body: the status decides.
            (404, "", ErrorCode::DatabaseNotFound, None),
            (403, "", ErrorCode::PermissionDenied, None),
            (503, "", ErrorCode::RateLimited, None),
            (500, "<html>oops</html>", ErrorCode::SourceError, None),
        ];
        for (status, body, want, aws) in cases {
            let e = service(*status, body);
            assert_eq!(e.code(), *want, "{status} {body}");
            assert_eq!(e.context_value("awsErrorCode"), *aws, "{body}");
            assert_eq!(
                e.context_value("httpStatus"),
                Some(status.to_string().as_str())
            );
        }
        let e = service(403, "<Error><Code>InvalidAccessKeyId</Code><Message>m</Message><RequestId>RID1</RequestId></Error>");
        assert_eq!(e.context_value("requestId"), Some("RID1"));
        assert!(!e.is_retryable());
        assert!(service(503, "<Error><Code>SlowDown</Code></Error>").is_retryable());
        assert!(service(500, "").is_retryable());
        assert!(
            service(301, "<Error><Code>PermanentRedirect</Code></Error>")
                .message()
                .contains("metadata.region")
        );
        let moved = parse_error(
            Failure::Service {
                status: 301,
                code: Some("PermanentRedirect".into()),
                message: None,
                request_id: None,
                bucket_region: Some("eu-west-1".into()),
                source: None,
            },
            "ListObjectsV2 b",
        );
        assert!(moved
            .message()
            .contains("the bucket is in region eu-west-1"));
    }

    #[test]
    fn transport_failures() {
        let refused: BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            parse_error(Failure::Transport(refused), "x").code(),
            ErrorCode::ConnectionRefused
        );
        let reset: BoxError = Box::new(io::Error::other(io::Error::from(
            io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(
            parse_error(Failure::Transport(reset), "x").code(),
            ErrorCode::ConnectionClosed
        );
        let tls: BoxError = Box::new(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert_eq!(
            parse_error(Failure::Transport(tls), "x").code(),
            ErrorCode::SslHandshakeFailed
        );
        let egress: BoxError = Box::new(ConnectorError::new(
            ErrorCode::EgressDenied,
            "169.254.169.254 denied",
        ));
        assert_eq!(
            parse_error(Failure::Transport(egress), "x").code(),
            ErrorCode::EgressDenied
        );
        let t: BoxError = "deadline".into();
        assert_eq!(
            parse_error(Failure::Timeout(t), "x").code(),
            ErrorCode::Timeout
        );
        let c: BoxError = "invalid bucket name".into();
        assert_eq!(
            parse_error(Failure::Construction(c), "x").code(),
            ErrorCode::InvalidConfiguration
        );
    }

    #[test]
    fn a_driver_refines_its_own_codes_first() {
        fn refine(code: &str, message: Option<&str>, _status: u16) -> Option<ErrorCode> {
            match code {
                "ValidationException" if message.is_some_and(|m| m.contains("does not exist")) => {
                    Some(ErrorCode::DatabaseNotFound)
                }
                "AccessDenied" => Some(ErrorCode::SourceError),
                _ => None,
            }
        }
        let body = r#"{"__type":"ValidationException","message":"Workgroup wg does not exist."}"#;
        let f = || Failure::from_body(400, body.as_bytes());
        assert_eq!(parse_error(f(), "x").code(), ErrorCode::SourceError);
        assert_eq!(
            parse_error_with(f(), "x", refine).code(),
            ErrorCode::DatabaseNotFound
        );
        let denied = Failure::from_body(403, b"<Error><Code>AccessDenied</Code></Error>");
        assert_eq!(
            parse_error_with(denied, "x", refine).code(),
            ErrorCode::SourceError
        );
        // Unknown codes still fall back to the shared table.
        let slow = Failure::from_body(503, b"<Error><Code>SlowDown</Code></Error>");
        assert_eq!(
            parse_error_with(slow, "x", refine).code(),
            ErrorCode::RateLimited
        );
    }

    #[test]
    fn our_own_errors_keep_code_context_and_retryability() {
        let inner = ConnectorError::new(ErrorCode::EgressDenied, "169.254.169.254 denied")
            .with_context("url", "http://169.254.169.254/")
            .with_retryable(false);
        let e = parse_error(Failure::Transport(Box::new(inner)), "ListBuckets");
        assert_eq!(e.code(), ErrorCode::EgressDenied);
        assert_eq!(e.context_value("url"), Some("http://169.254.169.254/"));
        assert!(!e.is_retryable());
        assert!(e.message().starts_with("ListBuckets: "), "{}", e.message());
    }

    #[test]
    fn xml_fields_and_capped_messages() {
        assert_eq!(
            xml_text("<a><Code> X&amp;Y </Code></a>", "Code").as_deref(),
            Some("X&Y")
        );
        assert_eq!(xml_text("<a></a>", "Code"), None);
        let long = format!(
            "<Error><Code>AccessDenied</Code><Message>{}</Message></Error>",
            "x ".repeat(5000)
        );
        assert!(service(403, &long).message().len() < 400);
    }
}
