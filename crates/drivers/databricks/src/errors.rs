//! The one place Databricks failures become [`ConnectorError`]s: REST error
//! bodies (`error_code`, `message`), failed statements (`status.error`), the
//! OAuth token endpoint, HTTP statuses and transport errors.

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{ConnectorError, ErrorCode};
use reqwest::StatusCode;
use serde_json::Value;

#[derive(Debug)]
pub(crate) enum Failure {
    /// A non-success status; `body` holds at most the first few KiB.
    Status {
        status: StatusCode,
        body: Vec<u8>,
    },
    /// A statement that ended FAILED: `status.error` of the Statement
    /// Execution API, plus `status.sql_state` when given.
    Statement {
        error_code: String,
        message: String,
        sql_state: Option<String>,
    },
    /// The OAuth token endpoint refused (RFC 6749 §5.2 body).
    Token {
        status: StatusCode,
        body: Vec<u8>,
    },
    Http(reqwest::Error),
    Json(serde_json::Error),
    Protocol(String),
    TooLarge {
        limit: u64,
    },
}

pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Status { status, body } => {
            let v: Option<Value> = serde_json::from_slice(&body).ok();
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
                Some(c) => api_code(c, message.as_deref().unwrap_or(""), status),
                None => status_code(status),
            };
            let mut msg = format!("{what}: HTTP {status}");
            if let Some(m) = &message {
                msg.push_str(": ");
                msg.push_str(m);
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status.as_u16())
                .with_retryable(matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504));
            if let Some(c) = error_code {
                err = err.with_context("databricksErrorCode", c);
            }
            err
        }
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
        Failure::Token { status, body } => {
            let oauth_error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            let code = match oauth_error.as_deref() {
                Some("invalid_client" | "invalid_grant" | "unauthorized_client") => {
                    ErrorCode::AuthenticationFailed
                }
                Some("invalid_scope" | "access_denied") => ErrorCode::PermissionDenied,
                Some("unsupported_grant_type" | "invalid_request") => {
                    ErrorCode::InvalidConfiguration
                }
                Some("temporarily_unavailable") => ErrorCode::RateLimited,
                _ => match status.as_u16() {
                    400 | 401 => ErrorCode::AuthenticationFailed,
                    // The workspace has no OIDC endpoint there.
                    404 => ErrorCode::InvalidConfiguration,
                    _ => status_code(status),
                },
            };
            let mut msg = format!("{what}: token endpoint answered HTTP {status}");
            if let Some(e) = &oauth_error {
                msg.push_str(&format!(" ({e})"));
            }
            let mut err =
                ConnectorError::new(code, msg).with_context("httpStatus", status.as_u16());
            if let Some(e) = oauth_error {
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
        Failure::Protocol(m) => {
            ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: {m}"))
                .with_retryable(false)
        }
        Failure::TooLarge { limit } => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response exceeds {limit} bytes; raise metadata.maxResponseBytes"),
        )
        .with_context("limitBytes", limit)
        .with_retryable(false),
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

fn reqwest_error(err: reqwest::Error, what: &str) -> ConnectorError {
    if let Some(t) = find::<rustls::Error>(&err) {
        return ConnectorError::new(ErrorCode::SslHandshakeFailed, format!("{what}: TLS: {t}"))
            .with_source(err);
    }
    let detail = chain(&err);
    if err.is_timeout() {
        return ConnectorError::new(ErrorCode::Timeout, format!("{what}: timed out"))
            .with_source(err);
    }
    let code = if let Some(ioe) = innermost_io(&err) {
        ErrorCode::from_io_kind(ioe.kind())
    } else if err.is_connect() {
        ErrorCode::ConnectionRefused
    } else if err.is_decode() {
        ErrorCode::ProtocolError
    } else if err.is_builder() {
        ErrorCode::InvalidConfiguration
    } else if detail.contains("connection closed")
        || detail.contains("IncompleteMessage")
        || detail.contains("connection reset")
    {
        ErrorCode::ConnectionClosed
    } else if detail.contains("invalid HTTP") || detail.contains("parse") {
        ErrorCode::ProtocolError
    } else if err.is_body() || err.is_request() {
        ErrorCode::ConnectionClosed
    } else {
        ErrorCode::SourceError
    };
    ConnectorError::new(code, format!("{what}: {detail}")).with_source(err)
}

fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    let mut hops = 0;
    while let (Some(e), true) = (cur, hops < 32) {
        hops += 1;
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
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
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let e = parse_error(
                Failure::Status {
                    status: StatusCode::from_u16(*s).unwrap(),
                    body: body.as_bytes().to_vec(),
                },
                "GET /api",
            );
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

    #[test]
    fn token_endpoint_errors() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_scope"}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                400,
                r#"{"error":"unsupported_grant_type"}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (404, "Not Found", ErrorCode::InvalidConfiguration),
            (503, "", ErrorCode::SourceError),
        ];
        for (s, body, want) in cases {
            let e = parse_error(
                Failure::Token {
                    status: StatusCode::from_u16(s).unwrap(),
                    body: body.as_bytes().to_vec(),
                },
                "POST /oidc/v1/token",
            );
            assert_eq!(e.code(), want, "{s} {body}");
        }
    }
}
