//! Mapping what a connector executable says about a failure to our codes, in
//! one place for both protocols.
//!
//! Neither protocol has codes of its own for the seven failures a connectivity
//! test reports: Airbyte's `TRACE` error carries a `failure_type`
//! (`config_error`, `system_error`, `transient_error`) and a message; a Singer
//! tap has only its exit status and standard error. So the message text is
//! matched against the phrases the common client libraries print (libpq and
//! psycopg, MySQL, Python's `socket` and `ssl`, HTTP clients), first match
//! wins; what matches nothing is `SOURCE_ERROR` with the protocol's failure
//! type kept in the context. The table is in `docs/drivers/external.md`.

use matih_connector_core::{redact_secrets, ConnectorError, ErrorCode};

/// Lower-case phrases and the code each means, most specific first.
pub(crate) const PHRASES: &[(&str, ErrorCode)] = &[
    (
        "password authentication failed",
        ErrorCode::AuthenticationFailed,
    ),
    ("authentication failed", ErrorCode::AuthenticationFailed),
    ("access denied for user", ErrorCode::AuthenticationFailed),
    ("invalid credentials", ErrorCode::AuthenticationFailed),
    ("invalid api key", ErrorCode::AuthenticationFailed),
    ("401 client error", ErrorCode::AuthenticationFailed),
    ("unauthorized", ErrorCode::AuthenticationFailed),
    ("connection refused", ErrorCode::ConnectionRefused),
    ("no route to host", ErrorCode::ConnectionRefused),
    ("network is unreachable", ErrorCode::ConnectionRefused),
    (
        "could not translate host name",
        ErrorCode::DnsResolutionFailed,
    ),
    ("name or service not known", ErrorCode::DnsResolutionFailed),
    (
        "temporary failure in name resolution",
        ErrorCode::DnsResolutionFailed,
    ),
    (
        "nodename nor servname provided",
        ErrorCode::DnsResolutionFailed,
    ),
    ("getaddrinfo failed", ErrorCode::DnsResolutionFailed),
    ("certificate verify failed", ErrorCode::SslHandshakeFailed),
    ("ssl handshake", ErrorCode::SslHandshakeFailed),
    ("sslerror", ErrorCode::SslHandshakeFailed),
    ("tlsv1 alert", ErrorCode::SslHandshakeFailed),
    ("server does not support ssl", ErrorCode::SslHandshakeFailed),
    ("unknown database", ErrorCode::DatabaseNotFound),
    ("permission denied", ErrorCode::PermissionDenied),
    ("insufficient privilege", ErrorCode::PermissionDenied),
    ("403 client error", ErrorCode::PermissionDenied),
    ("forbidden", ErrorCode::PermissionDenied),
    ("429 client error", ErrorCode::RateLimited),
    ("too many requests", ErrorCode::RateLimited),
    ("timed out", ErrorCode::Timeout),
    ("timeout expired", ErrorCode::Timeout),
];

/// The code a failure message means, if any phrase of [`PHRASES`] (or
/// PostgreSQL's `database "x" does not exist`) is in it.
pub(crate) fn classify(text: &str) -> Option<ErrorCode> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("database \"") && lower.contains("does not exist") {
        return Some(ErrorCode::DatabaseNotFound);
    }
    PHRASES
        .iter()
        .find(|(p, _)| lower.contains(p))
        .map(|(_, c)| *c)
}

/// The line of `text` a reader needs: the last one a phrase matches, else the
/// last non-empty one. At most 500 characters.
pub(crate) fn telling_line(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| classify(l).is_some())
        .or_else(|| lines.last())?;
    Some(line.chars().take(500).collect())
}

/// A failure the connector reported (`message`, with the protocol's
/// `failure_type` when it has one), secrets redacted.
pub(crate) fn reported(
    type_name: &str,
    message: &str,
    failure_type: Option<&str>,
    secrets: &[String],
) -> ConnectorError {
    let message = redact_secrets(message, secrets);
    let code = classify(&message).unwrap_or(ErrorCode::SourceError);
    let mut err = ConnectorError::new(code, format!("{type_name}: {message}"));
    if let Some(ft) = failure_type {
        err = err.with_context("failure_type", ft);
        if code == ErrorCode::SourceError {
            err = err.with_retryable(ft == "transient_error");
        }
    }
    err
}

/// `PROTOCOL_ERROR` quoting the first line that broke the protocol (secrets
/// redacted, at most 200 characters).
pub(crate) fn protocol_error(
    type_name: &str,
    what: &str,
    line_no: usize,
    line: &str,
    secrets: &[String],
) -> ConnectorError {
    let quoted: String = redact_secrets(line, secrets).chars().take(200).collect();
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("{type_name}: {what} at line {line_no} of its output: {quoted:?}"),
    )
    .with_context("line", line_no)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as the libraries print them (psycopg2/libpq, PyMySQL, Python's
    /// socket and ssl modules, requests).
    #[test]
    fn messages_map_to_codes() {
        let cases = [
            (
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"postgres\"",
                Some(ErrorCode::AuthenticationFailed),
            ),
            (
                "(1045, \"Access denied for user 'root'@'localhost' (using password: YES)\")",
                Some(ErrorCode::AuthenticationFailed),
            ),
            (
                "401 Client Error: Unauthorized for url: https://api.example.com/v1",
                Some(ErrorCode::AuthenticationFailed),
            ),
            (
                "connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
                Some(ErrorCode::ConnectionRefused),
            ),
            (
                "[Errno 111] Connection refused",
                Some(ErrorCode::ConnectionRefused),
            ),
            (
                "could not translate host name \"db.invalid\" to address: Name or service not known",
                Some(ErrorCode::DnsResolutionFailed),
            ),
            (
                "[Errno -3] Temporary failure in name resolution",
                Some(ErrorCode::DnsResolutionFailed),
            ),
            (
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
                Some(ErrorCode::SslHandshakeFailed),
            ),
            (
                "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"nope\" does not exist",
                Some(ErrorCode::DatabaseNotFound),
            ),
            ("(1049, \"Unknown database 'nope'\")", Some(ErrorCode::DatabaseNotFound)),
            (
                "permission denied for table orders",
                Some(ErrorCode::PermissionDenied),
            ),
            (
                "403 Client Error: Forbidden for url: https://api.example.com/v1",
                Some(ErrorCode::PermissionDenied),
            ),
            ("429 Client Error: Too Many Requests", Some(ErrorCode::RateLimited)),
            (
                "connection to server at \"10.0.0.1\", port 5432 failed: timeout expired",
                Some(ErrorCode::Timeout),
            ),
            ("[Errno 110] Connection timed out", Some(ErrorCode::Timeout)),
            ("KeyError: 'count'", None),
        ];
        for (text, code) in cases {
            assert_eq!(classify(text), code, "{text}");
        }
    }

    #[test]
    fn failure_type_is_kept_and_decides_retry_when_nothing_matches() {
        let e = reported("FAKER", "KeyError: 'count'", Some("transient_error"), &[]);
        assert_eq!(e.code(), ErrorCode::SourceError);
        assert!(e.is_retryable());
        assert_eq!(e.context_value("failure_type"), Some("transient_error"));
        let e = reported("FAKER", "bad count", Some("config_error"), &[]);
        assert!(!e.is_retryable());
        let e = reported(
            "FAKER",
            "password authentication failed for hunter2",
            Some("config_error"),
            &["hunter2".to_owned()],
        );
        assert_eq!(e.code(), ErrorCode::AuthenticationFailed);
        assert!(!e.message().contains("hunter2"), "{}", e.message());
    }

    #[test]
    fn protocol_error_quotes_the_line_without_secrets() {
        let e = protocol_error(
            "X",
            "not a JSON message",
            3,
            "oops s3cr3t here",
            &["s3cr3t".into()],
        );
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert!(e.message().contains("line 3"), "{}", e.message());
        assert!(e.message().contains("oops *** here"), "{}", e.message());
        assert!(!e.message().contains("s3cr3t"));
    }

    #[test]
    fn telling_line_prefers_a_classified_line() {
        let tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\npsycopg2.OperationalError: connection refused\n\nDuring handling...\nsqlalchemy.exc.OperationalError: (see above)\n";
        assert_eq!(
            telling_line(tb).as_deref(),
            Some("psycopg2.OperationalError: connection refused")
        );
        assert_eq!(telling_line("a\nb\n").as_deref(), Some("b"));
        assert_eq!(telling_line(""), None);
    }
}
