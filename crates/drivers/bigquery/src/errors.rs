//! The one place BigQuery failures become [`ConnectorError`]s: REST API error
//! payloads (`error.code`, `error.status`, `error.errors[].reason`) through
//! the core HTTP client's refine hook, and failed query jobs. Token endpoint
//! errors (RFC 6749 §5.2) and transport failures are mapped by the core client.

use matih_connector_core::google::{self, one_line, status_error, ErrorTable};
use matih_connector_core::http::StatusFailure;
use matih_connector_core::{ConnectorError, ErrorCode};
use serde_json::Value;

/// A BigQuery `errors[].reason` (or the RPC-style `error.status`) → our
/// code: BigQuery's own reasons here (cloud.google.com/bigquery/docs/error-messages),
/// those of every Google JSON API in the core's `google::reason_code`.
pub(crate) fn reason_code(reason: &str) -> Option<ErrorCode> {
    Some(match reason {
        "accessDenied"
        | "blocked"
        | "invalidUser"
        | "proxyAuthenticationRequired"
        | "responseTooLarge" => ErrorCode::PermissionDenied,
        "jobRateLimitExceeded" => ErrorCode::RateLimited,
        "timeout" => ErrorCode::Timeout,
        "invalidQuery"
        | "jobBackendError"
        | "jobInternalError"
        | "resourcesExceeded"
        | "resourceInUse"
        | "tableUnavailable"
        | "billingTierLimitExceeded"
        | "stopped"
        | "duplicate" => ErrorCode::SourceError,
        _ => return google::reason_code(reason),
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

/// How REST API error answers map: `bigqueryReason` and `googleStatus` in the
/// context.
const TABLE: ErrorTable = ErrorTable {
    reason_code,
    status_code: google::status_code,
    retryable_reason,
    reason_key: "bigqueryReason",
    status_key: "googleStatus",
};

/// A REST API error answer (the core client's refine hook).
pub(crate) fn refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    Some(status_error(f, &TABLE))
}

/// A query job that finished with `status.errorResult` (HTTP 200 or in the
/// body of `jobs.query`): `{reason, location, message}`.
pub(crate) fn job_failure(err: &Value, what: &str) -> ConnectorError {
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
    let mut e = ConnectorError::new(code, msg)
        .with_retryable(code.is_retryable() || reason.as_deref().is_some_and(retryable_reason));
    if let Some(r) = reason {
        e = e.with_context("bigqueryReason", r);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::http::header::HeaderMap;
    use matih_connector_core::http::StatusCode;
    use matih_connector_testkit::{assert_status_cases, StatusCase};
    use serde_json::json;

    fn status(status: u16, body: &str) -> ConnectorError {
        let headers = HeaderMap::new();
        let st = StatusCode::from_u16(status).unwrap();
        refine(&StatusFailure::new(
            st,
            &headers,
            body.as_bytes(),
            "GET projects/p/datasets",
        ))
        .unwrap()
    }

    /// Error bodies as BigQuery's REST reference and error-message guide
    /// document them, and as bqemulator sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[StatusCase<'_>] = &[
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
        assert_status_cases(status, "bigqueryReason", cases);
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
            let e = job_failure(&body, "INFORMATION_SCHEMA.COLUMNS");
            assert_eq!(e.code(), want, "{body}");
            assert_eq!(e.is_retryable(), retry, "{body}");
        }
    }

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
