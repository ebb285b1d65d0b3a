//! The one mapping of HTTP transport failures and statuses to
//! [`ConnectorError`]s. Drivers refine status errors from their vendor's error
//! body through a [`RefineStatus`] hook; the generic part lives here only.

use std::error::Error as StdError;
use std::io;

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use super::Redirects;
use crate::{find_source, ConnectorError, ErrorCode};

/// A driver's reading of a non-success answer: `Some` replaces the generic
/// error (use [`StatusFailure::error`] to keep its shape), `None` keeps it.
/// Vendor payload parsing stays in the driver's `errors.rs`.
pub type RefineStatus = fn(&StatusFailure<'_>) -> Option<ConnectorError>;

/// A non-success answer: status, headers and the first few KiB of the body.
#[derive(Debug)]
pub struct StatusFailure<'a> {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// At most [`super::ERROR_BODY_BYTES`] bytes.
    pub body: &'a [u8],
    /// What the request did (`GET https://host/path`).
    pub what: &'a str,
    pub(crate) redirects: Redirects,
}

impl<'a> StatusFailure<'a> {
    /// A failure as a driver's tests build one from a recorded answer.
    pub fn new(status: StatusCode, headers: &'a HeaderMap, body: &'a [u8], what: &'a str) -> Self {
        StatusFailure {
            status,
            headers,
            body,
            what,
            redirects: Redirects::default(),
        }
    }

    fn header(&self, name: reqwest::header::HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect())
    }

    /// The `Retry-After` header, shortened.
    pub fn retry_after(&self) -> Option<String> {
        self.header(RETRY_AFTER)
    }

    /// The `Location` header, shortened.
    pub fn location(&self) -> Option<String> {
        self.header(LOCATION)
    }

    /// The generic error: the status's code, a short reason from the body.
    pub fn generic(&self) -> ConnectorError {
        self.error(status_code(self.status.as_u16()), body_detail(self.body))
    }

    /// An error of the standard shape with the driver's code and detail:
    /// `<what>: HTTP <status>[: detail]`, context `httpStatus`, `retryAfter`,
    /// `location`, retryable when the status is.
    pub fn error(&self, code: ErrorCode, detail: Option<String>) -> ConnectorError {
        let status = self.status;
        let mut msg = format!("{}: HTTP {status}", self.what);
        if let Some(d) = detail.filter(|d| !d.is_empty()) {
            msg.push_str(": ");
            msg.push_str(&d);
        }
        if status.is_redirection() {
            msg.push_str(match self.redirects {
                Redirects::None => "; redirects are not followed: configure the final URL",
                Redirects::SameOrigin => {
                    "; redirects are followed only within the configured origin: configure the final URL"
                }
                Redirects::AnyOrigin => "; the redirect was not followed: configure the final URL",
            });
        }
        let mut err = ConnectorError::new(code, msg)
            .with_context("httpStatus", status.as_u16())
            .with_retryable(status_retryable(status.as_u16()) || code.is_retryable());
        if let Some(ra) = self.retry_after() {
            err = err.with_context("retryAfter", ra);
        }
        if let Some(loc) = self.location() {
            err = err.with_context("location", loc);
        }
        err
    }
}

/// HTTP status → code, for answers the vendor's body says nothing more about.
///
/// 404 means the configured path (the HTTP counterpart of a database) does not
/// exist; 407 is the credentials' fault as much as 401.
pub fn status_code(status: u16) -> ErrorCode {
    match status {
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

/// Statuses a later retry can cure.
pub fn status_retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// A short reason from an error body: a JSON `message`/`error_description`/
/// `error`/`detail`/`title` string (or such an object's `message`), or the
/// start of a text body; never HTML. One line, capped, so a hostile server
/// cannot flood a report.
pub fn body_detail(body: &[u8]) -> Option<String> {
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
    Some(one_line(&text, 200))
}

/// Whitespace collapsed, at most `max` characters.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

pub(crate) fn json_error(e: serde_json::Error, what: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("{what}: the response is not the JSON expected: {e}"),
    )
    .with_retryable(false)
    .with_source(e)
}

pub(crate) fn too_large(limit: u64, what: &str, hint: Option<&str>) -> ConnectorError {
    let mut msg = format!("{what}: the response exceeds {limit} bytes");
    if let Some(h) = hint {
        msg.push_str("; ");
        msg.push_str(h);
    }
    ConnectorError::new(ErrorCode::ProtocolError, msg)
        .with_context("limitBytes", limit)
        .with_retryable(false)
}

/// reqwest's failures: our own error first (the resolver's `EGRESS_DENIED` /
/// `DNS_RESOLUTION_FAILED`, the redirect policy's egress refusal), then TLS
/// (hidden inside I/O errors), timeouts, the innermost I/O error's kind, and
/// last what reqwest says the error is about.
pub(crate) fn transport_error(err: reqwest::Error, what: &str) -> ConnectorError {
    if let Some(ours) = find_source::<ConnectorError>(&err) {
        let mut e = ConnectorError::new(ours.code(), format!("{what}: {}", ours.message()))
            .with_retryable(ours.is_retryable());
        for (k, v) in ours.context() {
            e = e.with_context(k, v);
        }
        return e.with_source(err);
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

/// The deepest `io::Error` in the chain: its kind is the real cause
/// (`ConnectionRefused` inside hyper's `Other`). hyper-util wraps the
/// connector's `io::Error` in another, and `io::Error::source` skips the
/// wrapped error itself, so `get_ref` is walked too.
pub(crate) fn innermost_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
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
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
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
    one_line(&parts.join(": "), 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str, headers: &[(&'static str, &str)]) -> ConnectorError {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        StatusFailure {
            status: StatusCode::from_u16(code).unwrap(),
            headers: &h,
            body: body.as_bytes(),
            what: "GET /v1/users",
            redirects: Redirects::SameOrigin,
        }
        .generic()
    }

    /// Statuses with bodies as real APIs send them (GitHub, Stripe, AWS API
    /// Gateway, nginx, Spring Boot, RFC 7807 problem+json).
    #[test]
    fn statuses_map_to_codes() {
        let cases: &[(u16, &str, ErrorCode, bool, &str)] = &[
            (401, r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#, ErrorCode::AuthenticationFailed, false, "Bad credentials"),
            (401, r#"{"error":{"message":"Invalid API Key provided: sk_test_****1234","type":"invalid_request_error"}}"#, ErrorCode::AuthenticationFailed, false, "Invalid API Key"),
            (407, "", ErrorCode::AuthenticationFailed, false, "407"),
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
            let e = status(*code, body, &[]);
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
    fn retry_after_and_location_are_kept_and_bodies_are_capped() {
        let e = status(429, "", &[("retry-after", "30")]);
        assert_eq!(e.context_value("retryAfter"), Some("30"));
        let e = status(302, "", &[("location", "http://169.254.169.254/")]);
        assert_eq!(e.context_value("location"), Some("http://169.254.169.254/"));
        let huge = format!("{{\"message\":\"{}\"}}", "x".repeat(100_000));
        assert!(status(500, &huge, &[]).message().len() < 400);
    }

    #[test]
    fn body_failures() {
        let e = json_error(
            serde_json::from_str::<Value>("<html>").unwrap_err(),
            "GET /x",
        );
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        let deep = "[".repeat(1000);
        let e = json_error(serde_json::from_str::<Value>(&deep).unwrap_err(), "GET /x");
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        let e = too_large(1024, "GET /x", Some("raise metadata.maxResponseBytes"));
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert_eq!(e.context_value("limitBytes"), Some("1024"));
        assert!(e.message().contains("1024 bytes; raise"), "{}", e.message());
    }
}
