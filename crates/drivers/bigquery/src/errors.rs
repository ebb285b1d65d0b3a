//! The one place BigQuery failures become [`ConnectorError`]s: REST API error
//! payloads (`error.code`, `error.status`, `error.errors[].reason`), OAuth2
//! token endpoint errors (RFC 6749 §5.2), HTTP statuses, and reqwest's
//! transport failures (TLS, I/O, DNS, timeouts).

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{find_source, ConnectorError, ErrorCode};
use serde_json::Value;

/// Something that went wrong talking to BigQuery or the token endpoint.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The REST API answered with an error status; `body` holds its start.
    Status {
        status: u16,
        body: Vec<u8>,
    },
    /// The token endpoint refused the assertion.
    Token {
        status: u16,
        body: Vec<u8>,
    },
    /// A query job finished with `status.errorResult` (HTTP 200 or in the
    /// body of `jobs.query`): `{reason, location, message}`.
    Job(Value),
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

/// A BigQuery `errors[].reason` (or the RPC-style `error.status`) → our
/// code. Reasons are those of BigQuery's error message reference
/// (cloud.google.com/bigquery/docs/error-messages).
pub(crate) fn reason_code(reason: &str) -> Option<ErrorCode> {
    Some(match reason {
        "authError"
        | "required"
        | "unauthorized"
        | "UNAUTHENTICATED"
        | "invalidCredentials"
        | "authenticationRequired"
        | "expiredToken" => ErrorCode::AuthenticationFailed,
        "accessDenied"
        | "forbidden"
        | "insufficientPermissions"
        | "accessNotConfigured"
        | "billingNotEnabled"
        | "blocked"
        | "invalidUser"
        | "PERMISSION_DENIED"
        | "proxyAuthenticationRequired"
        | "responseTooLarge" => ErrorCode::PermissionDenied,
        "notFound" | "NOT_FOUND" => ErrorCode::DatabaseNotFound,
        "rateLimitExceeded"
        | "userRateLimitExceeded"
        | "quotaExceeded"
        | "jobRateLimitExceeded"
        | "RESOURCE_EXHAUSTED"
        | "dailyLimitExceeded"
        | "backendRateLimitExceeded" => ErrorCode::RateLimited,
        "invalid" | "invalidParameter" | "INVALID_ARGUMENT" | "badRequest" | "parseError" => {
            ErrorCode::InvalidConfiguration
        }
        "timeout" | "DEADLINE_EXCEEDED" | "requestTimeout" => ErrorCode::Timeout,
        "notImplemented" | "UNIMPLEMENTED" => ErrorCode::Unsupported,
        "invalidQuery"
        | "backendError"
        | "internalError"
        | "jobBackendError"
        | "jobInternalError"
        | "resourcesExceeded"
        | "resourceInUse"
        | "tableUnavailable"
        | "billingTierLimitExceeded"
        | "stopped"
        | "duplicate"
        | "INTERNAL"
        | "UNAVAILABLE" => ErrorCode::SourceError,
        _ => return None,
    })
}

/// Reasons Google documents as worth retrying ("retry using exponential
/// backoff") although their code is not retryable in itself.
fn retryable_reason(reason: &str) -> bool {
    matches!(
        reason,
        "backendError"
            | "internalError"
            | "jobBackendError"
            | "jobInternalError"
            | "tableUnavailable"
            | "UNAVAILABLE"
    )
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

fn retryable(code: ErrorCode, status: u16, reason: Option<&str>) -> bool {
    code.is_retryable()
        || matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
        || reason.is_some_and(retryable_reason)
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
                .with_retryable(retryable(code, status, reason.as_deref()));
            if let Some(r) = reason {
                err = err.with_context("bigqueryReason", r);
            }
            if let Some(s) = rpc_status {
                err = err.with_context("googleStatus", s);
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
                .with_retryable(retryable(code, status, None));
            if let Some(e) = oauth {
                err = err.with_context("oauthError", e);
            }
            err
        }
        Failure::Job(err) => {
            let s = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
            let reason = s("reason");
            let code = reason
                .as_deref()
                .and_then(reason_code)
                .unwrap_or(ErrorCode::SourceError);
            let mut msg = format!("{what}: query failed");
            if let Some(r) = &reason {
                msg.push_str(&format!(" ({r})"));
            }
            if let Some(m) = s("message")
                .as_deref()
                .map(one_line)
                .filter(|m| !m.is_empty())
            {
                msg.push_str(&format!(": {m}"));
            }
            let mut e = ConnectorError::new(code, msg).with_retryable(
                code.is_retryable() || reason.as_deref().is_some_and(retryable_reason),
            );
            if let Some(r) = reason {
                e = e.with_context("bigqueryReason", r);
            }
            e
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
    use serde_json::json;

    fn status(status: u16, body: &str) -> ConnectorError {
        parse_error(
            Failure::Status {
                status,
                body: body.as_bytes().to_vec(),
            },
            "GET projects/p/datasets",
        )
    }

    /// Error bodies as BigQuery's REST reference and error-message guide
    /// document them, and as bqemulator sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, Option<&str>)] = &[
            (
                401,
                r#"{"error":{"code":401,"message":"Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.","errors":[{"message":"Login Required.","domain":"global","reason":"required","location":"Authorization","locationType":"header"}],"status":"UNAUTHENTICATED"}}"#,
                ErrorCode::AuthenticationFailed,
                Some("required"),
            ),
            (
                401,
                r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","errors":[{"message":"Invalid Credentials","domain":"global","reason":"authError","location":"Authorization","locationType":"header"}],"status":"UNAUTHENTICATED"}}"#,
                ErrorCode::AuthenticationFailed,
                Some("authError"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Access Denied: Project acme: User does not have bigquery.jobs.create permission in project acme.","errors":[{"message":"Access Denied: Project acme: User does not have bigquery.jobs.create permission in project acme.","domain":"global","reason":"accessDenied"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::PermissionDenied,
                Some("accessDenied"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"BigQuery API has not been used in project 1 before or it is disabled.","errors":[{"message":"…","domain":"usageLimits","reason":"accessNotConfigured"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::PermissionDenied,
                Some("accessNotConfigured"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"The project acme has not enabled BigQuery.","errors":[{"domain":"global","reason":"billingNotEnabled"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::PermissionDenied,
                Some("billingNotEnabled"),
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"Not found: Dataset acme:sales","errors":[{"message":"Not found: Dataset acme:sales","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#,
                ErrorCode::DatabaseNotFound,
                Some("notFound"),
            ),
            (
                404,
                r#"{"error":{"code":404,"message":"Not found: Project nope","errors":[{"message":"Not found: Project nope","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#,
                ErrorCode::DatabaseNotFound,
                Some("notFound"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Exceeded rate limits: too many api requests per user per method for this user_method.","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::RateLimited,
                Some("rateLimitExceeded"),
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"Quota exceeded: Your project exceeded quota for free query bytes scanned.","errors":[{"domain":"global","reason":"quotaExceeded"}],"status":"PERMISSION_DENIED"}}"#,
                ErrorCode::RateLimited,
                Some("quotaExceeded"),
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Exceeded rate limits: too many table update operations for this table.","errors":[{"domain":"global","reason":"jobRateLimitExceeded"}],"status":"INVALID_ARGUMENT"}}"#,
                ErrorCode::RateLimited,
                Some("jobRateLimitExceeded"),
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Syntax error: Unexpected identifier \"SELCT\" at [1:1]","errors":[{"message":"Syntax error: Unexpected identifier \"SELCT\" at [1:1]","domain":"global","reason":"invalidQuery","location":"q","locationType":"parameter"}],"status":"INVALID_ARGUMENT"}}"#,
                ErrorCode::SourceError,
                Some("invalidQuery"),
            ),
            (
                400,
                r#"{"error":{"code":400,"message":"Invalid project ID 'A B'.","errors":[{"domain":"global","reason":"invalid"}],"status":"INVALID_ARGUMENT"}}"#,
                ErrorCode::InvalidConfiguration,
                Some("invalid"),
            ),
            (
                503,
                r#"{"error":{"code":503,"message":"Error encountered during execution. Retrying may solve the problem.","errors":[{"domain":"global","reason":"backendError"}],"status":"UNAVAILABLE"}}"#,
                ErrorCode::SourceError,
                Some("backendError"),
            ),
            (
                501,
                r#"{"error":{"code":501,"message":"Not implemented","errors":[{"domain":"global","reason":"notImplemented"}]}}"#,
                ErrorCode::Unsupported,
                Some("notImplemented"),
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
            assert_eq!(e.context_value("bigqueryReason"), *reason, "{body}");
            assert_eq!(e.context_value("httpStatus"), Some(st.to_string().as_str()));
        }
        assert!(status(503, "").is_retryable());
        assert!(status(
            400,
            r#"{"error":{"code":400,"errors":[{"reason":"jobBackendError"}]}}"#
        )
        .is_retryable());
        assert!(!status(403, "").is_retryable());
        assert!(!status(400, r#"{"error":{"errors":[{"reason":"invalidQuery"}]}}"#).is_retryable());
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

    /// `status.errorResult` of a finished job (jobs.query / getQueryResults).
    #[test]
    fn job_error_results() {
        let cases = [
            (
                json!({"reason": "invalidQuery", "location": "query", "message": "Unrecognized name: x at [1:8]"}),
                ErrorCode::SourceError,
                false,
            ),
            (
                json!({"reason": "accessDenied", "message": "Access Denied: Table p:d.t"}),
                ErrorCode::PermissionDenied,
                false,
            ),
            (
                json!({"reason": "notFound", "message": "Not found: Dataset p:d was not found in location US"}),
                ErrorCode::DatabaseNotFound,
                false,
            ),
            (
                json!({"reason": "backendError", "message": "Error encountered during execution."}),
                ErrorCode::SourceError,
                true,
            ),
            (
                json!({"reason": "resourcesExceeded", "message": "Resources exceeded during query execution"}),
                ErrorCode::SourceError,
                false,
            ),
            (json!({"reason": "timeout"}), ErrorCode::Timeout, true),
            (json!({"message": "???"}), ErrorCode::SourceError, false),
        ];
        for (body, want, retry) in cases {
            let e = parse_error(Failure::Job(body.clone()), "INFORMATION_SCHEMA.COLUMNS");
            assert_eq!(e.code(), want, "{body}");
            assert_eq!(e.is_retryable(), retry, "{body}");
        }
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

    /// Every reason of BigQuery's error-message table.
    #[test]
    fn reasons_cover_the_documented_set() {
        for (r, want) in [
            ("accessDenied", ErrorCode::PermissionDenied),
            ("backendError", ErrorCode::SourceError),
            ("billingNotEnabled", ErrorCode::PermissionDenied),
            ("billingTierLimitExceeded", ErrorCode::SourceError),
            ("blocked", ErrorCode::PermissionDenied),
            ("duplicate", ErrorCode::SourceError),
            ("internalError", ErrorCode::SourceError),
            ("invalid", ErrorCode::InvalidConfiguration),
            ("invalidQuery", ErrorCode::SourceError),
            ("invalidUser", ErrorCode::PermissionDenied),
            ("jobBackendError", ErrorCode::SourceError),
            ("jobInternalError", ErrorCode::SourceError),
            ("jobRateLimitExceeded", ErrorCode::RateLimited),
            ("notFound", ErrorCode::DatabaseNotFound),
            ("notImplemented", ErrorCode::Unsupported),
            ("proxyAuthenticationRequired", ErrorCode::PermissionDenied),
            ("quotaExceeded", ErrorCode::RateLimited),
            ("rateLimitExceeded", ErrorCode::RateLimited),
            ("resourceInUse", ErrorCode::SourceError),
            ("resourcesExceeded", ErrorCode::SourceError),
            ("responseTooLarge", ErrorCode::PermissionDenied),
            ("stopped", ErrorCode::SourceError),
            ("tableUnavailable", ErrorCode::SourceError),
            ("timeout", ErrorCode::Timeout),
            ("authError", ErrorCode::AuthenticationFailed),
            ("forbidden", ErrorCode::PermissionDenied),
        ] {
            assert_eq!(reason_code(r), Some(want), "{r}");
        }
        assert_eq!(reason_code("somethingNew"), None);
    }
}
