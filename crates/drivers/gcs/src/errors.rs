//! The one place GCS failures become [`ConnectorError`]s: JSON API error
//! payloads (`error.code`, `error.status`, `error.errors[].reason`) through
//! the core HTTP client's refine hook. Token endpoint errors (RFC 6749 §5.2)
//! and transport failures are mapped by the core client.

use matih_connector_core::google::{self, status_error, ErrorTable};
use matih_connector_core::http::StatusFailure;
use matih_connector_core::{ConnectorError, ErrorCode};

/// A GCS `errors[].reason` (or the RPC-style `error.status`) → our code:
/// the Cloud Storage reasons here (Google's JSON API error reference), those
/// of every Google JSON API in the core's `google::reason_code`.
pub(crate) fn reason_code(reason: &str) -> Option<ErrorCode> {
    Some(match reason {
        "userProjectMissing"
        | "userProjectAccessDenied"
        | "accountDisabled"
        | "retentionPolicyNotMet"
        | "domainPolicy" => ErrorCode::PermissionDenied,
        "Not Found" => ErrorCode::DatabaseNotFound,
        "invalidArgument" | "invalidBucketName" | "projectNotFound" | "FAILED_PRECONDITION" => {
            ErrorCode::InvalidConfiguration
        }
        _ => return google::reason_code(reason),
    })
}

/// How JSON API error answers map: `gcsReason` and `gcsStatus` in the context.
const TABLE: ErrorTable = ErrorTable {
    reason_code,
    status_code: google::status_code,
    retryable_reason: |_| false,
    reason_key: "gcsReason",
    status_key: "gcsStatus",
};

/// A JSON API error answer (the core client's refine hook).
pub(crate) fn refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    Some(status_error(f, &TABLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::http::header::HeaderMap;
    use matih_connector_core::http::StatusCode;
    use matih_connector_testkit::{assert_status_cases, StatusCase};

    fn status(status: u16, body: &str) -> ConnectorError {
        let headers = HeaderMap::new();
        let st = StatusCode::from_u16(status).unwrap();
        refine(&StatusFailure::new(
            st,
            &headers,
            body.as_bytes(),
            "GET b/x/o",
        ))
        .unwrap()
    }

    /// Error bodies as the JSON API reference documents them, and as
    /// fake-gcs-server sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: &[StatusCase<'_>] = &[
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
        assert_status_cases(status, "gcsReason", cases);
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
