//! The one place GraphQL failures become [`ConnectorError`]s: GraphQL `errors`
//! arrays (by `extensions.code`), HTTP statuses, OAuth2 token endpoint errors,
//! reqwest transport errors (I/O, TLS, timeouts), bodies that are too large or
//! not JSON.

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{ConnectorError, ErrorCode};
use reqwest::StatusCode;
use serde_json::Value;

/// Something that went wrong talking to the API.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A non-success status. `body` holds at most the first few KiB.
    Status {
        status: StatusCode,
        retry_after: Option<String>,
        location: Option<String>,
        body: Vec<u8>,
    },
    /// The OAuth2 token endpoint refused (RFC 6749 §5.2 error body).
    Token {
        status: StatusCode,
        body: Vec<u8>,
    },
    Http(reqwest::Error),
    /// The body is not the JSON we expected.
    Json(serde_json::Error),
    /// The body exceeded the byte limit.
    TooLarge {
        limit: u64,
    },
    /// The response's `errors` array.
    Graphql(Vec<graphql_client::Error>),
}

/// Maps a failure; `what` says what we were doing (`GET /v1/users`) and never
/// holds a credential.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Status { status, retry_after, location, body } => {
            // GraphQL-over-HTTP servers answer 4xx/5xx with an `errors` array
            // too; its code is more precise than the status when it has one.
            let gql = serde_json::from_slice::<graphql_client::Response<Value>>(&body)
                .ok()
                .and_then(|r| r.errors)
                .filter(|e| !e.is_empty());
            let from_gql = gql.as_deref().and_then(graphql_code).filter(|(c, _)| *c != ErrorCode::SourceError);
            let code = from_gql.as_ref().map(|(c, _)| *c).unwrap_or_else(|| status_code(status));
            let mut msg = format!("{what}: HTTP {status}");
            let detail = match &gql {
                Some(errors) => Some(graphql_messages(errors)),
                None => body_detail(&body),
            };
            if let Some(detail) = detail {
                msg.push_str(": ");
                msg.push_str(&detail);
            }
            if status.is_redirection() {
                msg.push_str(
                    "; redirects are followed only within the configured origin: configure the final URL",
                );
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status.as_u16())
                .with_retryable(status_retryable(status));
            if let Some(ra) = retry_after {
                err = err.with_context("retryAfter", ra);
            }
            if let Some(loc) = location {
                err = err.with_context("location", loc);
            }
            if let Some((_, Some(native))) = from_gql {
                err = err.with_context("graphqlCode", native);
            }
            err
        }
        Failure::Graphql(errors) => {
            let (code, native) = graphql_code(&errors).unwrap_or((ErrorCode::SourceError, None));
            let mut err = ConnectorError::new(code, format!("{what}: {}", graphql_messages(&errors)))
                .with_retryable(code.is_retryable());
            if let Some(n) = native {
                err = err.with_context("graphqlCode", n);
            }
            err
        }
        Failure::Token { status, body } => {
            let oauth_error = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            let code = match oauth_error.as_deref() {
                Some("invalid_client" | "invalid_grant" | "unauthorized_client") => ErrorCode::AuthenticationFailed,
                Some("invalid_scope" | "access_denied") => ErrorCode::PermissionDenied,
                Some("unsupported_grant_type" | "invalid_request") => ErrorCode::InvalidConfiguration,
                Some("temporarily_unavailable") => ErrorCode::RateLimited,
                _ => match status_code(status) {
                    // The token endpoint's own 404 says the tokenUrl is wrong,
                    // not that the API's base path is.
                    ErrorCode::DatabaseNotFound => ErrorCode::InvalidConfiguration,
                    c => c,
                },
            };
            let mut msg = format!("{what}: token endpoint answered HTTP {status}");
            if let Some(e) = &oauth_error {
                msg.push_str(&format!(" ({e})"));
            }
            let mut err = ConnectorError::new(code, msg).with_context("httpStatus", status.as_u16());
            if let Some(e) = oauth_error {
                err = err.with_context("oauthError", e);
            }
            err
        }
        Failure::Http(e) => reqwest_error(e, what),
        Failure::Json(e) => {
            ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: the response is not valid JSON: {e}"))
                .with_retryable(false)
                .with_source(e)
        }
        Failure::TooLarge { limit } => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!(
                "{what}: the response exceeds {limit} bytes; raise metadata.maxResponseBytes or point the endpoint at a smaller page"
            ),
        )
        .with_context("limitBytes", limit)
        .with_retryable(false),
    }
}

/// The code of a GraphQL `errors` array: the first error whose
/// `extensions.code` (Apollo, async-graphql, Hasura) or `type` (GitHub) is
/// known, else what the message says about introspection; with the native code.
pub(crate) fn graphql_code(
    errors: &[graphql_client::Error],
) -> Option<(ErrorCode, Option<String>)> {
    let native = |e: &graphql_client::Error| -> Option<String> {
        let ext = e.extensions.as_ref()?;
        ext.get("code")
            .or_else(|| ext.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for e in errors {
        if let Some(n) = native(e) {
            let code = match n.to_ascii_uppercase().replace('-', "_").as_str() {
                "UNAUTHENTICATED"
                | "UNAUTHORIZED"
                | "INVALID_JWT"
                | "INVALID_TOKEN"
                | "JWT_INVALID_CLAIMS"
                | "INVALID_HEADERS"
                | "AUTHENTICATION_ERROR" => ErrorCode::AuthenticationFailed,
                "FORBIDDEN"
                | "ACCESS_DENIED"
                | "PERMISSION_ERROR"
                | "INSUFFICIENT_SCOPES"
                | "ACCESS_DENIED_ERROR" => ErrorCode::PermissionDenied,
                "RATE_LIMITED" | "TOO_MANY_REQUESTS" | "THROTTLED" | "MAX_COST_EXCEEDED" => {
                    ErrorCode::RateLimited
                }
                "GRAPHQL_PARSE_FAILED"
                | "GRAPHQL_VALIDATION_FAILED"
                | "BAD_USER_INPUT"
                | "VALIDATION_FAILED"
                | "PARSE_FAILED"
                | "PERSISTED_QUERY_NOT_FOUND" => {
                    if mentions_introspection(&e.message) {
                        ErrorCode::Unsupported
                    } else {
                        ErrorCode::ProtocolError
                    }
                }
                "NOT_FOUND" => ErrorCode::DatabaseNotFound,
                "TIMEOUT" | "GATEWAY_TIMEOUT" => ErrorCode::Timeout,
                _ => continue,
            };
            return Some((code, Some(n)));
        }
    }
    errors
        .iter()
        .find(|e| mentions_introspection(&e.message))
        .map(|_| (ErrorCode::Unsupported, None))
        .or(Some((
            ErrorCode::SourceError,
            errors.iter().find_map(native),
        )))
}

/// "GraphQL introspection is not allowed", "introspection has been
/// disabled", or async-graphql's `Unknown field "__schema"` when it is off.
fn mentions_introspection(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("introspection") || m.contains("__schema") || m.contains("__type")
}

/// The errors' messages on one line, capped.
fn graphql_messages(errors: &[graphql_client::Error]) -> String {
    let joined = errors
        .iter()
        .take(3)
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let one_line = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(300).collect()
}

/// HTTP status → code.
///
/// 404 means the configured GraphQL path does not exist, the equivalent of a
/// missing database.
pub(crate) fn status_code(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 | 407 => ErrorCode::AuthenticationFailed,
        403 | 451 => ErrorCode::PermissionDenied,
        404 | 410 => ErrorCode::DatabaseNotFound,
        405 | 501 => ErrorCode::Unsupported,
        408 | 504 => ErrorCode::Timeout,
        429 => ErrorCode::RateLimited,
        // nginx: "SSL Certificate Error", "SSL Certificate Required".
        495 | 496 => ErrorCode::SslHandshakeFailed,
        _ => ErrorCode::SourceError,
    }
}

fn status_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A short reason from an error body: a JSON `message`/`error`/`detail`/`title`
/// string, or the start of a text body. Capped so a hostile server cannot
/// flood the report.
fn body_detail(body: &[u8]) -> Option<String> {
    if body.is_empty() {
        return None;
    }
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let pick = |v: &Value| -> Option<String> {
                for k in ["message", "error_description", "error", "detail", "title"] {
                    match v.get(k) {
                        Some(Value::String(s)) => return Some(s.clone()),
                        Some(Value::Object(o)) => {
                            if let Some(Value::String(s)) = o.get("message") {
                                return Some(s.clone());
                            }
                        }
                        _ => {}
                    }
                }
                None
            };
            pick(&v)?
        }
        Err(_) => {
            let s = String::from_utf8_lossy(body);
            if s.trim_start().starts_with('<') {
                return None;
            }
            s.into_owned()
        }
    };
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(one_line.chars().take(200).collect())
}

/// reqwest's transport errors: TLS first (it hides inside I/O errors), then
/// timeouts, then the I/O kind, then what reqwest says the error is about.
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

/// Looks for a `T` in an error's chain. hyper-util wraps the connector's
/// `io::Error` in another `io::Error`, and `io::Error::source` skips the
/// wrapped error itself, so both the source chain and `get_ref` are walked.
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

/// The deepest `io::Error` in the chain: its kind is the real cause
/// (`ConnectionRefused` inside hyper's `Other`).
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

/// The error and its causes on one line; reqwest's own text stops at the top.
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

    fn status(code: u16, body: &str, retry_after: Option<&str>) -> ConnectorError {
        parse_error(
            Failure::Status {
                status: StatusCode::from_u16(code).unwrap(),
                retry_after: retry_after.map(str::to_owned),
                location: None,
                body: body.as_bytes().to_vec(),
            },
            "POST /graphql",
        )
    }

    /// Statuses with bodies as real APIs send them (GitHub, Stripe, AWS API
    /// Gateway, nginx, Spring Boot, RFC 7807 problem+json).
    #[test]
    fn statuses_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, bool, &str)] = &[
            (401, r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#, ErrorCode::AuthenticationFailed, false, "Bad credentials"),
            (401, r#"{"error":{"message":"Invalid API Key provided: sk_test_****1234","type":"invalid_request_error"}}"#, ErrorCode::AuthenticationFailed, false, "Invalid API Key"),
            (403, r#"{"message":"User: anonymous is not authorized to perform: execute-api:Invoke"}"#, ErrorCode::PermissionDenied, false, "not authorized"),
            (403, r#"{"type":"about:blank","title":"Forbidden","status":403,"detail":"scope orders:read required"}"#, ErrorCode::PermissionDenied, false, "scope orders:read"),
            (404, r#"{"timestamp":"2024-01-01T00:00:00Z","status":404,"error":"Not Found","path":"/v1/users"}"#, ErrorCode::DatabaseNotFound, false, "Not Found"),
            (404, "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>", ErrorCode::DatabaseNotFound, false, "404"),
            (408, "", ErrorCode::Timeout, true, "408"),
            (504, r#"{"message": "Endpoint request timed out"}"#, ErrorCode::Timeout, true, "timed out"),
            (429, r#"{"message":"API rate limit exceeded for 10.0.0.1."}"#, ErrorCode::RateLimited, true, "rate limit"),
            (500, r#"{"message":"Internal server error"}"#, ErrorCode::SourceError, true, "Internal"),
            (502, "Bad Gateway", ErrorCode::SourceError, true, "Bad Gateway"),
            (503, r#"{"message":"Service Unavailable"}"#, ErrorCode::SourceError, true, "Unavailable"),
            (400, r#"{"error":"missing required parameter: since"}"#, ErrorCode::SourceError, false, "since"),
            (405, "", ErrorCode::Unsupported, false, "405"),
            (495, "", ErrorCode::SslHandshakeFailed, false, "495"),
            (302, "", ErrorCode::SourceError, false, "redirects are followed only within"),
        ];
        for (code, body, want, retry, needle) in cases {
            let e = status(*code, body, None);
            assert_eq!(e.code(), *want, "{code} {body}");
            assert_eq!(e.is_retryable(), *retry, "{code}");
            assert!(e.message().contains(needle), "{code}: {}", e.message());
            assert_eq!(
                e.context_value("httpStatus"),
                Some(code.to_string().as_str())
            );
        }
    }

    #[test]
    fn retry_after_is_kept_and_bodies_are_capped() {
        let e = status(429, "", Some("30"));
        assert_eq!(e.context_value("retryAfter"), Some("30"));
        let huge = format!("{{\"message\":\"{}\"}}", "x".repeat(100_000));
        assert!(status(500, &huge, None).message().len() < 400);
    }

    #[test]
    fn oauth_token_errors() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_grant"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"scope admin not allowed"}"#,
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
        for (code, body, want) in cases {
            let e = parse_error(
                Failure::Token {
                    status: StatusCode::from_u16(code).unwrap(),
                    body: body.as_bytes().to_vec(),
                },
                "POST https://idp.example/token",
            );
            assert_eq!(e.code(), want, "{code} {body}");
        }
    }

    #[test]
    fn body_failures() {
        let json_err = serde_json::from_str::<Value>("<html>").unwrap_err();
        assert_eq!(
            parse_error(Failure::Json(json_err), "GET /x").code(),
            ErrorCode::ProtocolError
        );
        let deep = "[".repeat(1000);
        let json_err = serde_json::from_str::<Value>(&deep).unwrap_err();
        assert_eq!(
            parse_error(Failure::Json(json_err), "GET /x").code(),
            ErrorCode::ProtocolError
        );
        let e = parse_error(Failure::TooLarge { limit: 1024 }, "GET /x");
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert_eq!(e.context_value("limitBytes"), Some("1024"));
    }

    fn gql(body: &str) -> Vec<graphql_client::Error> {
        serde_json::from_str::<graphql_client::Response<Value>>(body)
            .unwrap()
            .errors
            .unwrap()
    }

    /// Error payloads as Apollo Server, async-graphql, Hasura, GitHub and
    /// Shopify document them.
    #[test]
    fn graphql_errors_map_by_extension_code() {
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            (
                r#"{"errors":[{"message":"You must be logged in","extensions":{"code":"UNAUTHENTICATED"}}],"data":null}"#,
                ErrorCode::AuthenticationFailed,
                Some("UNAUTHENTICATED"),
            ),
            (
                r#"{"errors":[{"message":"Not allowed","locations":[{"line":1,"column":3}],"path":["secret"],"extensions":{"code":"FORBIDDEN"}}],"data":{"secret":null}}"#,
                ErrorCode::PermissionDenied,
                Some("FORBIDDEN"),
            ),
            (
                r#"{"errors":[{"message":"GraphQL introspection is not allowed by Apollo Server, but the query contained __schema or __type.","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#,
                ErrorCode::Unsupported,
                Some("GRAPHQL_VALIDATION_FAILED"),
            ),
            (
                r#"{"errors":[{"message":"Syntax Error: Expected Name, found <EOF>.","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]}"#,
                ErrorCode::ProtocolError,
                Some("GRAPHQL_PARSE_FAILED"),
            ),
            (
                r#"{"errors":[{"extensions":{"path":"$","code":"invalid-jwt"},"message":"Could not verify JWT: JWSError JWSInvalidSignature"}]}"#,
                ErrorCode::AuthenticationFailed,
                Some("invalid-jwt"),
            ),
            (
                r#"{"errors":[{"extensions":{"path":"$.selectionSet.users","code":"access-denied"},"message":"field 'users' not found in type: 'query_root'"}]}"#,
                ErrorCode::PermissionDenied,
                Some("access-denied"),
            ),
            (
                r#"{"errors":[{"type":"INSUFFICIENT_SCOPES","message":"Your token has not been granted the required scopes","extensions":{"type":"INSUFFICIENT_SCOPES"}}]}"#,
                ErrorCode::PermissionDenied,
                Some("INSUFFICIENT_SCOPES"),
            ),
            (
                r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}]}"#,
                ErrorCode::RateLimited,
                Some("THROTTLED"),
            ),
            (
                r#"{"errors":[{"message":"Unknown field \"__schema\" on type \"Query\".","locations":[{"line":1,"column":20}]}]}"#,
                ErrorCode::Unsupported,
                None,
            ),
            (
                r#"{"errors":[{"message":"something broke","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#,
                ErrorCode::SourceError,
                Some("INTERNAL_SERVER_ERROR"),
            ),
            (
                r#"{"errors":[{"message":"plain failure"}]}"#,
                ErrorCode::SourceError,
                None,
            ),
        ];
        for (body, want, native) in cases {
            let e = parse_error(Failure::Graphql(gql(body)), "POST /graphql");
            assert_eq!(e.code(), *want, "{body}");
            assert_eq!(e.context_value("graphqlCode"), *native, "{body}");
        }
    }

    #[test]
    fn error_statuses_with_graphql_bodies() {
        // Apollo answers validation failures with 400 and an errors array.
        let body = r#"{"errors":[{"message":"GraphQL introspection is not allowed","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#;
        let e = status(400, body, None);
        assert_eq!(e.code(), ErrorCode::Unsupported);
        assert!(
            e.message().contains("introspection is not allowed"),
            "{}",
            e.message()
        );
        let body =
            r#"{"errors":[{"message":"Bad token","extensions":{"code":"UNAUTHENTICATED"}}]}"#;
        assert_eq!(
            status(400, body, None).code(),
            ErrorCode::AuthenticationFailed
        );
        let body = r#"{"errors":[{"message":"boom"}]}"#;
        assert_eq!(status(503, body, None).code(), ErrorCode::SourceError);
        assert_eq!(
            status(401, body, None).code(),
            ErrorCode::AuthenticationFailed
        );
    }
}
