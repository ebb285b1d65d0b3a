//! Redshift's own failures: the Data API error codes the shared AWS mapping
//! (`matih_connector_core::aws`) does not know, the ValidationException texts
//! that name a missing database, cluster or workgroup, and the error text of
//! statements that ran and FAILED (the database's own message, which the Data
//! API passes on without a SQLSTATE).

use matih_connector_core::aws::{one_line, parse_error_with, Failure};
use matih_connector_core::{ConnectorError, ErrorCode};

/// The Data API's own codes, before the shared AWS table.
fn redshift_code(aws_code: &str, message: Option<&str>, _status: u16) -> Option<ErrorCode> {
    Some(match aws_code {
        "ActiveStatementsExceededException" | "ActiveSessionsExceededException" => {
            ErrorCode::RateLimited
        }
        "QueryTimeoutException" => ErrorCode::Timeout,
        "DatabaseConnectionException" => ErrorCode::ConnectionRefused,
        "ExecuteStatementException" | "BatchExecuteStatementException" => ErrorCode::SourceError,
        // A ValidationException names a bad parameter; the message says which.
        "ValidationException" => validation_code(message.unwrap_or("")),
        _ => return None,
    })
}

/// Maps a failure with the Data API's codes. `what` says what we were doing
/// and holds no secret.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    parse_error_with(failure, what, redshift_code)
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
