//! The one place GCS failures become [`ConnectorError`]s: JSON API error
//! payloads (`error.code`, `error.status`, `error.errors[].reason`), OAuth2
//! token endpoint errors (RFC 6749 §5.2), HTTP statuses, and reqwest's
//! transport failures (TLS, I/O, DNS, timeouts).

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{find_source, ConnectorError, ErrorCode};
use serde_json::Value;

/// Something that went wrong talking to GCS or the token endpoint.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The JSON API answered with an error status; `body` holds its start.
    Status {
        status: u16,
        body: Vec<u8>,
    },
    /// The token endpoint refused the assertion.
    Token {
        status: u16,
        body: Vec<u8>,
    },
    Http(reqwest::Error),
    /// The body is not the JSON we expected.
    Json(serde_json::Error),
    /// The body exceeded the byte limit.
    TooLarge {
        limit: u64,
    },
    /// The JWT could not be signed (a key the parser accepted but ring did not).
    Sign(jsonwebtoken::errors::Error),
}

/// A GCS `errors[].reason` (or the RPC-style `error.status`) → our code.
/// Reasons are those of Google's JSON API error reference.
pub(crate) fn reason_code(reason: &str) -> Option<ErrorCode> {
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
        | "userProjectMissing"
        | "userProjectAccessDenied"
        | "accountDisabled"
        | "billingNotEnabled"
        | "PERMISSION_DENIED"
        | "retentionPolicyNotMet"
        | "domainPolicy" => ErrorCode::PermissionDenied,
        "notFound" | "NOT_FOUND" | "Not Found" => ErrorCode::DatabaseNotFound,
        "rateLimitExceeded"
        | "userRateLimitExceeded"
        | "quotaExceeded"
        | "RESOURCE_EXHAUSTED"
        | "dailyLimitExceeded"
        | "backendRateLimitExceeded" => ErrorCode::RateLimited,
        "invalid"
        | "invalidParameter"
        | "invalidArgument"
        | "INVALID_ARGUMENT"
        | "invalidBucketName"
        | "badRequest"
        | "parseError"
        | "projectNotFound"
        | "FAILED_PRECONDITION" => ErrorCode::InvalidConfiguration,
        "DEADLINE_EXCEEDED" | "requestTimeout" => ErrorCode::Timeout,
        "notImplemented" | "UNIMPLEMENTED" => ErrorCode::Unsupported,
        "backendError" | "internalError" | "INTERNAL" | "UNAVAILABLE" => ErrorCode::SourceError,
        _ => return None,
    })
}

/// HTTP status → code, for bodies without a recognized reason.
pub(crate) fn status_code(status: u16) -> ErrorCode {
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

fn retryable(code: ErrorCode, status: u16) -> bool {
    code.is_retryable() || matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// `(reason, status, message)` from a JSON API error body.
fn body_fields(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        let msg = (!t.is_empty() && !t.starts_with('<')).then(|| t.to_owned());
        return (None, None, msg);
    };
    let err = v.get("error").unwrap_or(&Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let reason = err
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|e| s(e, "reason"));
    (reason, s(err, "status"), s(err, "message"))
}

/// Maps a failure. `what` says what we were doing and holds no secret.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Status { status, body } => {
            let (reason, rpc_status, message) = body_fields(&body);
            let code = reason
                .as_deref()
                .and_then(reason_code)
                .or_else(|| rpc_status.as_deref().and_then(reason_code))
                .unwrap_or_else(|| status_code(status));
            let mut msg = format!("{what}: HTTP {status}");
            if let Some(r) = &reason {
                msg.push_str(&format!(" {r}"));
            }
            if let Some(m) = message.as_deref().map(one_line).filter(|m| !m.is_empty()) {
                msg.push_str(&format!(": {m}"));
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status)
                .with_retryable(retryable(code, status));
            if let Some(r) = reason {
                err = err.with_context("gcsReason", r);
            }
            if let Some(s) = rpc_status {
                err = err.with_context("gcsStatus", s);
            }
            err
        }
        Failure::Token { status, body } => {
            let v = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
            let oauth = v.get("error").and_then(Value::as_str).map(str::to_owned);
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .map(one_line);
            let code = match oauth.as_deref() {
                Some("invalid_grant" | "invalid_client" | "unauthorized_client") => {
                    ErrorCode::AuthenticationFailed
                }
                Some("invalid_scope" | "access_denied") => ErrorCode::PermissionDenied,
                Some("invalid_request" | "unsupported_grant_type") => {
                    ErrorCode::InvalidConfiguration
                }
                Some("temporarily_unavailable") => ErrorCode::RateLimited,
                _ => match status_code(status) {
                    // The token endpoint's own 404 means the token_uri is wrong.
                    ErrorCode::DatabaseNotFound => ErrorCode::InvalidConfiguration,
                    c => c,
                },
            };
            let mut msg = format!("{what}: token endpoint answered HTTP {status}");
            if let Some(e) = &oauth {
                msg.push_str(&format!(" {e}"));
            }
            if let Some(d) = desc.filter(|d| !d.is_empty()) {
                msg.push_str(&format!(": {d}"));
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status)
                .with_retryable(retryable(code, status));
            if let Some(e) = oauth {
                err = err.with_context("oauthError", e);
            }
            err
        }
        Failure::Http(e) => reqwest_error(e, what),
        Failure::Json(e) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response is not the JSON expected: {e}"),
        )
        .with_retryable(false)
        .with_source(e),
        Failure::TooLarge { limit } => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response exceeds {limit} bytes"),
        )
        .with_context("limitBytes", limit)
        .with_retryable(false),
        Failure::Sign(e) => ConnectorError::new(
            ErrorCode::InvalidConfiguration,
            format!("{what}: the service account key cannot sign: {e}"),
        )
        .with_context("field", "credentials")
        .with_source(e),
    }
}

/// Transport failures: our own error (egress, DNS) from the resolver, TLS,
/// timeouts, then the innermost I/O error's kind.
fn reqwest_error(err: reqwest::Error, what: &str) -> ConnectorError {
    if let Some(ours) = find_source::<ConnectorError>(&err) {
        return ConnectorError::new(ours.code(), format!("{what}: {}", ours.message()))
            .with_source(err);
    }
    if let Some(t) = find_source::<rustls::Error>(&err) {
        return ConnectorError::new(ErrorCode::SslHandshakeFailed, format!("{what}: TLS: {t}"))
            .with_source(err);
    }
    if err.is_timeout() {
        return ConnectorError::new(ErrorCode::Timeout, format!("{what}: timed out"))
            .with_source(err);
    }
    let detail = chain(&err);
    let code = if let Some(ioe) = innermost_io(&err) {
        ErrorCode::from_io_kind(ioe.kind())
    } else if err.is_connect() {
        ErrorCode::ConnectionRefused
    } else if err.is_decode() {
        ErrorCode::ProtocolError
    } else if err.is_builder() {
        ErrorCode::InvalidConfiguration
    } else if detail.contains("invalid HTTP") || detail.contains("parse") {
        ErrorCode::ProtocolError
    } else {
        ErrorCode::ConnectionClosed
    };
    ConnectorError::new(code, format!("{what}: {detail}")).with_source(err)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> ConnectorError {
        parse_error(
            Failure::Status {
                status,
                body: body.as_bytes().to_vec(),
            },
            "GET b/x/o",
        )
    }

    /// Error bodies as the JSON API reference documents them, and as
    /// fake-gcs-server sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, Option<&str>)] = &[
            (
                401,
                r#"{"error":{"code":401,"message":"Invalid Credentials","errors":[{"domain":"global","reason":"authError","message":"Invalid Credentials","locationType":"header","location":"Authorization"}]}}"#,
                ErrorCode::AuthenticationFailed,
                Some("authError"),
            ),
            (
                401,
                r#"{"error":{"code":401,"message":"Anonymous caller does not have storage.objects.list access to the Google Cloud Storage bucket.","errors":[{"message":"Anonymous caller does not have storage.objects.list access","domain":"global","reason":"required","locationType":"header","location":"Authorization"}]}}"#,
                ErrorCode::AuthenticationFailed,
                Some("required"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"reader@p.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not exist).","errors":[{"message":"…","domain":"global","reason":"forbidden"}]}}"#,
                ErrorCode::PermissionDenied,
                Some("forbidden"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Cloud Storage JSON API has not been used in project 1 before or it is disabled.","errors":[{"domain":"usageLimits","reason":"accessNotConfigured"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::PermissionDenied,
                Some("accessNotConfigured"),
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"The specified bucket does not exist.","errors":[{"message":"The specified bucket does not exist.","domain":"global","reason":"notFound"}]}}"#,
                ErrorCode::DatabaseNotFound,
                Some("notFound"),
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"Not Found","errors":[{"domain":"global","reason":"Not Found","message":"Not Found"}]}}"#,
                ErrorCode::DatabaseNotFound,
                Some("Not Found"),
            ),
            (
                429,
                r#"{"error":{"code":429,"message":"The rate of change requests to the bucket exceeds the rate limit.","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}"#,
                ErrorCode::RateLimited,
                Some("rateLimitExceeded"),
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Invalid bucket name: 'A'","errors":[{"domain":"global","reason":"invalid","message":"Invalid bucket name: 'A'"}]}}"#,
                ErrorCode::InvalidConfiguration,
                Some("invalid"),
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Unknown project id: nope","errors":[{"domain":"global","reason":"invalid"}]}}"#,
                ErrorCode::InvalidConfiguration,
                Some("invalid"),
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"Backend Error","errors":[{"domain":"global","reason":"backendError"}]}}"#,
                ErrorCode::SourceError,
                Some("backendError"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#,
                ErrorCode::PermissionDenied,
                None,
            ),
            (404, "", ErrorCode::DatabaseNotFound, None),
            (401, "", ErrorCode::AuthenticationFailed, None),
            (429, "", ErrorCode::RateLimited, None),
            (500, "<html>oops</html>", ErrorCode::SourceError, None),
        ];
        for (st, body, want, reason) in cases {
            let e = status(*st, body);
            assert_eq!(e.code(), *want, "{st} {body}");
            assert_eq!(e.context_value("gcsReason"), *reason, "{body}");
            assert_eq!(e.context_value("httpStatus"), Some(st.to_string().as_str()));
        }
        assert!(status(503, "").is_retryable());
        assert!(!status(403, "").is_retryable());
        assert!(
            status(
                403,
                &format!(r#"{{"error":{{"message":"{}"}}}}"#, "x ".repeat(5000))
            )
            .message()
            .len()
                < 400
        );
    }

    /// Google's OAuth2 token endpoint error bodies for the JWT bearer grant.
    #[test]
    fn token_endpoint_errors() {
        let cases: &[(u16, &str, ErrorCode)] = &[
            (
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_grant","error_description":"Invalid grant: account not found"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                401,
                r#"{"error":"unauthorized_client","error_description":"Client is unauthorized to retrieve access tokens using this method."}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"Invalid OAuth scope"}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"Missing required parameter: assertion"}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (404, "Not Found", ErrorCode::InvalidConfiguration),
            (503, "", ErrorCode::SourceError),
        ];
        for (st, body, want) in cases {
            let e = parse_error(
                Failure::Token {
                    status: *st,
                    body: body.as_bytes().to_vec(),
                },
                "POST token",
            );
            assert_eq!(e.code(), *want, "{body}");
        }
    }

    #[test]
    fn reasons_cover_the_documented_set() {
        for (r, want) in [
            ("notFound", ErrorCode::DatabaseNotFound),
            ("forbidden", ErrorCode::PermissionDenied),
            ("authError", ErrorCode::AuthenticationFailed),
            ("rateLimitExceeded", ErrorCode::RateLimited),
            ("userRateLimitExceeded", ErrorCode::RateLimited),
            ("invalid", ErrorCode::InvalidConfiguration),
            ("userProjectMissing", ErrorCode::PermissionDenied),
            ("DEADLINE_EXCEEDED", ErrorCode::Timeout),
        ] {
            assert_eq!(reason_code(r), Some(want), "{r}");
        }
        assert_eq!(reason_code("somethingNew"), None);
    }
}
