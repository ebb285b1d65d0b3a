//! The one place Snowflake failures become [`ConnectorError`]s: Snowflake's
//! error codes (login and SQL), HTTP statuses (through the core HTTP client's
//! refine hook) and result bodies we cannot read. Transport failures are
//! mapped by the core client.

use matih_connector_core::http::{StatusCode, StatusFailure};
use matih_connector_core::{ConnectorError, ErrorCode};
use serde_json::Value;

/// Something that went wrong talking to Snowflake.
#[derive(Debug)]
pub(crate) enum Failure {
    /// `"success": false` with Snowflake's code (`390100`, `002003`…).
    Snowflake {
        code: String,
        message: String,
        sql_state: Option<String>,
    },
    /// The body is not the JSON we expected.
    Json(serde_json::Error),
    /// An Arrow result set we could not decode.
    Arrow(arrow_schema::ArrowError),
    /// A well-formed answer that lacks what the protocol promises.
    Protocol(String),
    /// The body exceeded the byte limit.
    TooLarge { limit: u64 },
}

/// Maps a failure; `what` says what we were doing and never holds a secret.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Snowflake { code, message, sql_state } => {
            let ec = snowflake_code(&code, &message);
            let one_line: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = one_line.chars().take(300).collect();
            let mut err = ConnectorError::new(ec, format!("{what}: {text}"))
                .with_context("snowflakeCode", &code);
            if let Some(s) = sql_state.filter(|s| !s.is_empty()) {
                err = err.with_context("sqlstate", s);
            }
            err
        }
        Failure::Json(e) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response is not Snowflake's JSON: {e}"),
        )
        .with_retryable(false)
        .with_source(e),
        Failure::Arrow(e) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: could not decode the Arrow result set: {e}"),
        )
        .with_retryable(false)
        .with_source(e),
        Failure::Protocol(m) => {
            ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: {m}")).with_retryable(false)
        }
        Failure::TooLarge { limit } => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response exceeds {limit} bytes; narrow the discovery filters or raise metadata.maxResponseBytes"),
        )
        .with_context("limitBytes", limit)
        .with_retryable(false),
    }
}

/// A non-success answer: Snowflake answers some failures (an expired session,
/// a network policy) with an error status and its usual JSON body, whose code
/// decides; otherwise the status does.
pub(crate) fn refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    if let Ok(v) = serde_json::from_slice::<Value>(f.body) {
        if let Some(code) = v
            .get("code")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Some(
                parse_error(
                    Failure::Snowflake {
                        code: code.to_owned(),
                        message,
                        sql_state: None,
                    },
                    f.what,
                )
                .with_context("httpStatus", f.status.as_u16()),
            );
        }
    }
    let hint = (f.status == StatusCode::NOT_FOUND)
        .then(|| "not a Snowflake endpoint (check host and metadata.account)".to_owned());
    Some(f.error(status_code(f.status), hint))
}

/// Snowflake's codes: GS login errors (`39xxxx`) and SQL errors (`00xxxx`).
pub(crate) fn snowflake_code(code: &str, message: &str) -> ErrorCode {
    match code {
        // Incorrect username or password; user locked, disabled, expired;
        // JWT invalid; session and master tokens gone or expired; OAuth token
        // invalid or expired.
        "390100" | "390101" | "390102" | "390103" | "390104" | "390106" | "390111" | "390112"
        | "390113" | "390114" | "390144" | "390195" | "390303" | "390318" => {
            ErrorCode::AuthenticationFailed
        }
        // The requested database, schema or warehouse does not exist or is
        // not authorized (login-time).
        "390201" => ErrorCode::DatabaseNotFound,
        // Role not granted to the user; IP or network policy refusal.
        "390189" | "390190" | "390422" | "390432" => ErrorCode::PermissionDenied,
        // SQL compilation error: object does not exist or not authorized.
        // Databases and schemas are what we name; anything else is a grant.
        "002003" | "002043" => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("database") || lower.contains("schema") {
                ErrorCode::DatabaseNotFound
            } else {
                ErrorCode::PermissionDenied
            }
        }
        // Insufficient privileges to operate on …
        "003001" | "003003" | "003011" => ErrorCode::PermissionDenied,
        // No active warehouse selected / warehouse suspended and cannot resume.
        "000606" | "000625" => ErrorCode::InvalidConfiguration,
        // Statement reached its timeout / was canceled.
        "000630" | "000604" => ErrorCode::Timeout,
        // Too many requests in the queue.
        "000610" | "000628" => ErrorCode::RateLimited,
        // Query still running: the caller polls; if it surfaces, time ran out.
        "333333" | "333334" => ErrorCode::Timeout,
        _ => ErrorCode::SourceError,
    }
}

/// HTTP status → code, for answers without Snowflake's JSON.
pub(crate) fn status_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 | 407 => ErrorCode::AuthenticationFailed,
        403 => ErrorCode::PermissionDenied,
        404 | 410 => ErrorCode::ProtocolError,
        408 | 504 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        495 | 496 => ErrorCode::SslHandshakeFailed,
        _ => ErrorCode::SourceError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as Snowflake sends them from /session/v1/login-request and
    /// /queries/v1/query-request (codes from Snowflake's connectors' error
    /// tables and documentation).
    #[test]
    fn snowflake_payloads_map_to_codes() {
        let cases: &[(&str, ErrorCode)] = &[
            (
                r#"{"data":{"nextAction":"RETRY_LOGIN","authnMethod":"USERNAME_PASSWORD"},"code":"390100","message":"Incorrect username or password was specified.","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390144","message":"JWT token is invalid. [0c3c8a7e-…]","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390101","message":"User temporarily locked.","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390112","message":"Your session has expired. Please login again.","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390104","message":"User must login again to access the service.","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390318","message":"OAuth access token expired.","success":false}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                r#"{"data":null,"code":"390201","message":"The requested database does not exist or not authorized.","success":false}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                r#"{"data":null,"code":"390189","message":"Role 'MATIH_READER' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC.","success":false}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                r#"{"data":null,"code":"390422","message":"Incoming request with IP/Token 10.0.0.1 is not allowed to access Snowflake.","success":false}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                r#"{"data":{"errorCode":"002003","sqlState":"02000"},"code":"002003","message":"SQL compilation error:\nDatabase 'ANALYTICS' does not exist or not authorized.","success":false}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                r#"{"data":{"errorCode":"002003","sqlState":"02000"},"code":"002003","message":"SQL compilation error:\nSchema 'ANALYTICS.NOPE' does not exist or not authorized.","success":false}"#,
                ErrorCode::DatabaseNotFound,
            ),
            (
                r#"{"data":{"errorCode":"002003","sqlState":"42S02"},"code":"002003","message":"SQL compilation error:\nObject 'ANALYTICS.PUBLIC.T' does not exist or not authorized.","success":false}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                r#"{"data":{"errorCode":"003001","sqlState":"42501"},"code":"003001","message":"SQL access control error:\nInsufficient privileges to operate on schema 'PUBLIC'","success":false}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                r#"{"data":{"errorCode":"000606","sqlState":"57P03"},"code":"000606","message":"No active warehouse selected in the current session.  Select an active warehouse with the 'use warehouse' command.","success":false}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (
                r#"{"data":{"errorCode":"000630","sqlState":"57014"},"code":"000630","message":"Statement reached its statement or warehouse timeout of 60 second(s) and was canceled.","success":false}"#,
                ErrorCode::Timeout,
            ),
            (
                r#"{"data":{"errorCode":"001003","sqlState":"42000"},"code":"001003","message":"SQL compilation error:\nsyntax error line 1 at position 7 unexpected 'FORM'.","success":false}"#,
                ErrorCode::SourceError,
            ),
        ];
        for (body, want) in cases {
            let v: Value = serde_json::from_str(body).unwrap();
            let code = v["code"].as_str().unwrap().to_owned();
            let f = Failure::Snowflake {
                code: code.clone(),
                message: v["message"].as_str().unwrap().to_owned(),
                sql_state: v["data"]
                    .get("sqlState")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
            let e = parse_error(f, "login");
            assert_eq!(e.code(), *want, "{body}");
            assert_eq!(e.context_value("snowflakeCode"), Some(code.as_str()));
            assert!(!e.message().contains('\n'));
        }
    }

    #[test]
    fn statuses_with_and_without_snowflake_bodies() {
        let status = |s: u16, body: &str| {
            let headers = matih_connector_core::http::header::HeaderMap::new();
            let st = StatusCode::from_u16(s).unwrap();
            refine(&StatusFailure::new(
                st,
                &headers,
                body.as_bytes(),
                "POST /x",
            ))
            .unwrap()
        };
        let e = status(
            401,
            r#"{"data":null,"code":"390103","message":"Session token not found in the request data.","success":false,"headers":null}"#,
        );
        assert_eq!(e.code(), ErrorCode::AuthenticationFailed);
        assert_eq!(e.context_value("httpStatus"), Some("401"));
        assert_eq!(e.context_value("snowflakeCode"), Some("390103"));
        let cases = [
            (
                403,
                "<html>Forbidden</html>",
                ErrorCode::PermissionDenied,
                false,
            ),
            (404, "", ErrorCode::ProtocolError, false),
            (429, "", ErrorCode::RateLimited, true),
            (503, "Service Unavailable", ErrorCode::SourceError, true),
            (504, "", ErrorCode::Timeout, true),
        ];
        for (s, body, want, retry) in cases {
            let e = status(s, body);
            assert_eq!(e.code(), want, "{s}");
            assert_eq!(e.is_retryable(), retry, "{s}");
        }
    }

    #[test]
    fn body_failures() {
        let j = serde_json::from_str::<Value>("<html>").unwrap_err();
        assert_eq!(
            parse_error(Failure::Json(j), "x").code(),
            ErrorCode::ProtocolError
        );
        let e = parse_error(Failure::TooLarge { limit: 10 }, "x");
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert_eq!(e.context_value("limitBytes"), Some("10"));
        assert_eq!(
            parse_error(Failure::Protocol("no token".into()), "x").code(),
            ErrorCode::ProtocolError
        );
    }
}
