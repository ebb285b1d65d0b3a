//! The one place Databricks failures become [`ConnectorError`]s: REST error
//! bodies (`error_code`, `message`) through the core HTTP client's refine hook,
//! failed statements (`status.error`), and the workspace's refinement of the
//! core token source's OAuth2 mapping. Transport failures are mapped by the
//! core client.

use matih_connector_core::http::{StatusCode, StatusFailure};
use matih_connector_core::{ConnectorError, ErrorCode};
use serde_json::Value;

#[derive(Debug)]
pub(crate) enum Failure {
    /// A statement that ended FAILED: `status.error` of the Statement
    /// Execution API, plus `status.sql_state` when given.
    Statement {
        error_code: String,
        message: String,
        sql_state: Option<String>,
    },
    Json(serde_json::Error),
    Protocol(String),
}

/// A REST error answer: `error_code` (refined by the SQL error class in the
/// message) decides, the status when there is none; `databricksErrorCode` in
/// the context.
pub(crate) fn refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    let v: Option<Value> = serde_json::from_slice(f.body).ok();
    let error_code = v
        .as_ref()
        .and_then(|v| v.get("error_code"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = v
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("error")))
        .and_then(Value::as_str)
        .map(one_line);
    let code = match error_code.as_deref() {
        Some(c) => api_code(c, message.as_deref().unwrap_or(""), f.status),
        None => status_code(f.status),
    };
    let mut err = f.error(code, message);
    if let Some(c) = error_code {
        err = err.with_context("databricksErrorCode", c);
    }
    Some(err)
}

/// The workspace's OIDC endpoint answers a bad client id or secret with a bare
/// 400 or 401: without an OAuth2 `error`, those are the credentials' fault.
pub(crate) fn token_error(e: ConnectorError) -> ConnectorError {
    let bare = e.message().contains("token endpoint answered")
        && e.context_value("oauthError").is_none()
        && matches!(e.context_value("httpStatus"), Some("400" | "401"));
    if !bare {
        return e;
    }
    let mut out =
        ConnectorError::new(ErrorCode::AuthenticationFailed, e.message()).with_retryable(false);
    for (k, v) in e.context() {
        out = out.with_context(k, v);
    }
    out
}

pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Statement {
            error_code,
            message,
            sql_state,
        } => {
            let code = api_code(&error_code, &message, StatusCode::OK);
            let mut err = ConnectorError::new(code, format!("{what}: {}", one_line(&message)))
                .with_context("databricksErrorCode", &error_code);
            if let Some(s) = sql_state.filter(|s| !s.is_empty()) {
                err = err.with_context("sqlstate", s);
            }
            err
        }
        Failure::Json(e) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response is not the JSON expected: {e}"),
        )
        .with_retryable(false)
        .with_source(e),
        Failure::Protocol(m) => {
            ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: {m}"))
                .with_retryable(false)
        }
    }
}

fn one_line(s: &str) -> String {
    let l: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    l.chars().take(300).collect()
}

/// Databricks' `error_code` (REST, Unity Catalog, statements), refined by the
/// error class in brackets that SQL errors carry (`[TABLE_OR_VIEW_NOT_FOUND]`).
pub(crate) fn api_code(error_code: &str, message: &str, status: StatusCode) -> ErrorCode {
    let class = message
        .trim_start()
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .unwrap_or_default();
    match class {
        "CATALOG_NOT_FOUND" | "SCHEMA_NOT_FOUND" | "NO_SUCH_CATALOG_EXCEPTION" => {
            return ErrorCode::DatabaseNotFound
        }
        "INSUFFICIENT_PERMISSIONS" | "PERMISSION_DENIED" => return ErrorCode::PermissionDenied,
        "TABLE_OR_VIEW_NOT_FOUND" => return ErrorCode::PermissionDenied,
        _ => {}
    }
    match error_code {
        "UNAUTHENTICATED" | "INVALID_TOKEN" | "TOKEN_EXPIRED" => ErrorCode::AuthenticationFailed,
        "PERMISSION_DENIED" | "FORBIDDEN" => ErrorCode::PermissionDenied,
        "RESOURCE_DOES_NOT_EXIST"
        | "NOT_FOUND"
        | "CATALOG_DOES_NOT_EXIST"
        | "SCHEMA_DOES_NOT_EXIST"
        | "METASTORE_DOES_NOT_EXIST" => ErrorCode::DatabaseNotFound,
        "INVALID_PARAMETER_VALUE" | "MALFORMED_REQUEST" => ErrorCode::InvalidConfiguration,
        "REQUEST_LIMIT_EXCEEDED" | "TOO_MANY_REQUESTS" | "RESOURCE_EXHAUSTED" => {
            ErrorCode::RateLimited
        }
        "DEADLINE_EXCEEDED" => ErrorCode::Timeout,
        "NOT_IMPLEMENTED" | "FEATURE_DISABLED" => ErrorCode::Unsupported,
        _ => status_code(status),
    }
}

pub(crate) fn status_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 | 407 => ErrorCode::AuthenticationFailed,
        403 => ErrorCode::PermissionDenied,
        404 | 410 => ErrorCode::DatabaseNotFound,
        408 | 504 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        501 => ErrorCode::Unsupported,
        495 | 496 => ErrorCode::SslHandshakeFailed,
        _ => ErrorCode::SourceError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::http::header::HeaderMap;

    /// Bodies as Databricks' REST APIs document them.
    #[test]
    fn rest_errors_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, bool)] = &[
            (
                401,
                r#"{"error_code":"UNAUTHENTICATED","message":"Invalid access token. [ReqId: 1f1b]"}"#,
                ErrorCode::AuthenticationFailed,
                false,
            ),
            (
                401,
                "<html><body>Error 401 Unauthorized</body></html>",
                ErrorCode::AuthenticationFailed,
                false,
            ),
            (
                403,
                r#"{"error_code":"PERMISSION_DENIED","message":"User does not have USE CATALOG on Catalog 'main'."}"#,
                ErrorCode::PermissionDenied,
                false,
            ),
            (
                403,
                r#"{"error_code":"PERMISSION_DENIED","message":"You are not authorized to access this workspace (IP ACL)."}"#,
                ErrorCode::PermissionDenied,
                false,
            ),
            (
                404,
                r#"{"error_code":"CATALOG_DOES_NOT_EXIST","message":"Catalog 'nope' does not exist."}"#,
                ErrorCode::DatabaseNotFound,
                false,
            ),
            (
                404,
                r#"{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Schema 'main.nope' does not exist."}"#,
                ErrorCode::DatabaseNotFound,
                false,
            ),
            (
                404,
                r#"{"error_code":"NOT_FOUND","message":"Catalog 'nope' not found"}"#,
                ErrorCode::DatabaseNotFound,
                false,
            ),
            (
                400,
                r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"max_results must be between 0 and 50"}"#,
                ErrorCode::InvalidConfiguration,
                false,
            ),
            (
                429,
                r#"{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"Too many requests. Please wait a moment and try again."}"#,
                ErrorCode::RateLimited,
                true,
            ),
            (
                503,
                r#"{"error_code":"TEMPORARILY_UNAVAILABLE","message":"The service at /api/2.0/sql/statements is temporarily unavailable."}"#,
                ErrorCode::SourceError,
                true,
            ),
            (
                501,
                r#"{"error_code":"NOT_IMPLEMENTED","message":"Format 'CSV' is not implemented"}"#,
                ErrorCode::Unsupported,
                false,
            ),
            (504, "", ErrorCode::Timeout, true),
            // minilake answers SQL errors with 400 instead of a FAILED state.
            (
                400,
                r#"{"error_code":"INVALID_REQUEST","message":"SQL execution failed: Parser Error: syntax error at or near \":\""}"#,
                ErrorCode::SourceError,
                false,
            ),
        ];
        for (s, body, want, retry) in cases {
            let headers = HeaderMap::new();
            let st = StatusCode::from_u16(*s).unwrap();
            let e = refine(&StatusFailure::new(
                st,
                &headers,
                body.as_bytes(),
                "GET /api",
            ))
            .unwrap();
            assert_eq!(e.code(), *want, "{s} {body}");
            assert_eq!(e.is_retryable(), *retry, "{s} {body}");
            assert_eq!(e.context_value("httpStatus"), Some(s.to_string().as_str()));
        }
    }

    /// `status.error` of FAILED statements (SQL error classes in brackets).
    #[test]
    fn failed_statements_map_to_codes() {
        let cases = [
            ("BAD_REQUEST", "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`x`.`y` cannot be found.", Some("42P01"), ErrorCode::PermissionDenied),
            ("BAD_REQUEST", "[SCHEMA_NOT_FOUND] The schema `main`.`nope` cannot be found.", Some("42704"), ErrorCode::DatabaseNotFound),
            ("BAD_REQUEST", "[CATALOG_NOT_FOUND] The catalog `nope` cannot be found.", Some("42704"), ErrorCode::DatabaseNotFound),
            ("PERMISSION_DENIED", "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have USE SCHEMA.", Some("42501"), ErrorCode::PermissionDenied),
            ("BAD_REQUEST", "[PARSE_SYNTAX_ERROR] Syntax error at or near 'FORM'.", Some("42601"), ErrorCode::SourceError),
            ("DEADLINE_EXCEEDED", "Statement timed out", None, ErrorCode::Timeout),
        ];
        for (ec, msg, state, want) in cases {
            let e = parse_error(
                Failure::Statement {
                    error_code: ec.into(),
                    message: msg.into(),
                    sql_state: state.map(str::to_owned),
                },
                "statement",
            );
            assert_eq!(e.code(), want, "{msg}");
            assert_eq!(e.context_value("databricksErrorCode"), Some(ec));
            assert_eq!(e.context_value("sqlstate"), state);
        }
    }

    /// Token refusals as the core token source maps them, refined for the
    /// workspace's bare 400/401 answers.
    #[test]
    fn token_endpoint_errors() {
        let core = |code: ErrorCode, status: u16, oauth: Option<&str>| {
            let mut e = ConnectorError::new(
                code,
                format!("POST /oidc/v1/token: token endpoint answered HTTP {status}"),
            )
            .with_context("httpStatus", status);
            if let Some(o) = oauth {
                e = e.with_context("oauthError", o);
            }
            e
        };
        let cases = [
            (
                core(ErrorCode::SourceError, 400, None),
                ErrorCode::AuthenticationFailed,
            ),
            (
                core(ErrorCode::AuthenticationFailed, 401, None),
                ErrorCode::AuthenticationFailed,
            ),
            (
                core(ErrorCode::PermissionDenied, 400, Some("invalid_scope")),
                ErrorCode::PermissionDenied,
            ),
            (
                core(ErrorCode::InvalidConfiguration, 404, None),
                ErrorCode::InvalidConfiguration,
            ),
            (
                core(ErrorCode::SourceError, 503, None),
                ErrorCode::SourceError,
            ),
        ];
        for (e, want) in cases {
            let text = e.message().to_owned();
            assert_eq!(token_error(e).code(), want, "{text}");
        }
        let other = ConnectorError::new(ErrorCode::SourceError, "GET x: HTTP 400")
            .with_context("httpStatus", 400);
        assert_eq!(token_error(other).code(), ErrorCode::SourceError);
    }
}
