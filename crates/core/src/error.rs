//! The one error type every driver returns, with stable codes.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Stable, wire-visible error codes. The first seven are the specification's; the
/// rest cover what a connectivity test and discovery can also meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Host unreachable or port closed.
    ConnectionRefused,
    /// Invalid credentials.
    AuthenticationFailed,
    /// TLS negotiation or certificate validation failed.
    SslHandshakeFailed,
    /// The configured database (or project, catalog, bucket…) does not exist.
    DatabaseNotFound,
    /// The credentials are valid but lack a privilege the connector needs.
    PermissionDenied,
    /// A step did not finish within its time limit.
    Timeout,
    /// The host name could not be resolved.
    DnsResolutionFailed,
    /// The configuration or credentials are malformed; found before any I/O.
    InvalidConfiguration,
    /// The driver is not compiled in, or a run-time library it needs is missing.
    DriverUnavailable,
    /// The egress policy forbids the resolved address.
    EgressDenied,
    /// The source throttled us.
    RateLimited,
    /// The source or driver does not support the requested operation.
    Unsupported,
    /// The server closed or reset the connection mid-conversation.
    ConnectionClosed,
    /// The server answered something the driver could not understand.
    ProtocolError,
    /// The source reported an error that has no more specific code; the native
    /// code is kept in the error's context.
    SourceError,
    /// A bug or an unexpected state on our side.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::ConnectionRefused,
        ErrorCode::AuthenticationFailed,
        ErrorCode::SslHandshakeFailed,
        ErrorCode::DatabaseNotFound,
        ErrorCode::PermissionDenied,
        ErrorCode::Timeout,
        ErrorCode::DnsResolutionFailed,
        ErrorCode::InvalidConfiguration,
        ErrorCode::DriverUnavailable,
        ErrorCode::EgressDenied,
        ErrorCode::RateLimited,
        ErrorCode::Unsupported,
        ErrorCode::ConnectionClosed,
        ErrorCode::ProtocolError,
        ErrorCode::SourceError,
        ErrorCode::Internal,
    ];

    /// The wire name, e.g. `CONNECTION_REFUSED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConnectionRefused => "CONNECTION_REFUSED",
            ErrorCode::AuthenticationFailed => "AUTHENTICATION_FAILED",
            ErrorCode::SslHandshakeFailed => "SSL_HANDSHAKE_FAILED",
            ErrorCode::DatabaseNotFound => "DATABASE_NOT_FOUND",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::DnsResolutionFailed => "DNS_RESOLUTION_FAILED",
            ErrorCode::InvalidConfiguration => "INVALID_CONFIGURATION",
            ErrorCode::DriverUnavailable => "DRIVER_UNAVAILABLE",
            ErrorCode::EgressDenied => "EGRESS_DENIED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::ConnectionClosed => "CONNECTION_CLOSED",
            ErrorCode::ProtocolError => "PROTOCOL_ERROR",
            ErrorCode::SourceError => "SOURCE_ERROR",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Whether trying again later can help without changing anything.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::ConnectionRefused
                | ErrorCode::Timeout
                | ErrorCode::RateLimited
                | ErrorCode::ConnectionClosed
                | ErrorCode::DnsResolutionFailed
        )
    }

    /// A short sentence telling a tenant admin what to look at.
    pub fn hint(self) -> &'static str {
        match self {
            ErrorCode::ConnectionRefused => "Connection refused: verify host and port",
            ErrorCode::AuthenticationFailed => "Authentication failed: verify the credentials",
            ErrorCode::SslHandshakeFailed => {
                "TLS handshake failed: verify the SSL mode and the server certificate"
            }
            ErrorCode::DatabaseNotFound => "Database not found: verify the database name",
            ErrorCode::PermissionDenied => {
                "Permission denied: the credentials lack a required privilege"
            }
            ErrorCode::Timeout => "Timed out: the source did not answer in time",
            ErrorCode::DnsResolutionFailed => "Host name could not be resolved: verify the host",
            ErrorCode::InvalidConfiguration => "Invalid configuration",
            ErrorCode::DriverUnavailable => "Driver unavailable",
            ErrorCode::EgressDenied => "Destination not allowed by the egress policy",
            ErrorCode::RateLimited => "Rate limited by the source: try again later",
            ErrorCode::Unsupported => "Not supported",
            ErrorCode::ConnectionClosed => "The source closed the connection",
            ErrorCode::ProtocolError => "Unexpected answer from the source",
            ErrorCode::SourceError => "The source reported an error",
            ErrorCode::Internal => "Internal error",
        }
    }

    /// Classifies an I/O error kind. Callers that know better (a TLS error inside
    /// an I/O error, say) should look first; see [`ConnectorError::from_io`].
    pub fn from_io_kind(kind: io::ErrorKind) -> ErrorCode {
        use io::ErrorKind as K;
        match kind {
            K::ConnectionRefused
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::AddrNotAvailable => ErrorCode::ConnectionRefused,
            K::TimedOut | K::WouldBlock => ErrorCode::Timeout,
            K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::NotConnected => ErrorCode::ConnectionClosed,
            K::InvalidData => ErrorCode::ProtocolError,
            K::PermissionDenied => ErrorCode::EgressDenied,
            _ => ErrorCode::SourceError,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connector failure: a stable code, a message fit for a tenant admin, whether a
/// retry can help, context pairs (native code, step, host…) and the source error.
///
/// Messages never carry credential values: drivers build them from server error
/// text and configuration that holds no secrets.
#[derive(Clone)]
pub struct ConnectorError {
    code: ErrorCode,
    message: String,
    retryable: bool,
    context: Vec<(&'static str, String)>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl ConnectorError {
    /// An error with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ConnectorError {
            code,
            message: message.into(),
            retryable: code.is_retryable(),
            context: Vec::new(),
            source: None,
        }
    }

    /// `INVALID_CONFIGURATION` naming the offending `field` in the context.
    pub fn invalid_config(field: &'static str, message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorCode::InvalidConfiguration, message).with_context("field", field)
    }

    /// `INTERNAL`: a bug or unexpected state on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        ConnectorError::new(ErrorCode::Internal, message)
    }

    /// Maps an I/O error, looking through it for a TLS failure first.
    pub fn from_io(err: io::Error, what: impl fmt::Display) -> Self {
        let code = if crate::tls::is_tls_error(&err) {
            ErrorCode::SslHandshakeFailed
        } else {
            ErrorCode::from_io_kind(err.kind())
        };
        ConnectorError::new(code, format!("{what}: {err}")).with_source(err)
    }

    /// Adds a native detail (`sqlstate`, HTTP status…) under `key`.
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Keeps the native error as the source, findable with [`find_source`].
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Overrides the code's default retryability.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for people; secrets redacted, user names kept.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Native details, in the order they were added.
    pub fn context(&self) -> &[(&'static str, String)] {
        &self.context
    }

    /// The first context value under `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The code's hint followed by the detail, e.g.
    /// `Connection refused: verify host and port (127.0.0.1:5433: …)`.
    pub fn report_message(&self) -> String {
        let hint = self.code.hint();
        if self.message.is_empty() || self.message == hint {
            hint.to_owned()
        } else {
            format!("{hint} ({})", self.message)
        }
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" [")?;
            for (i, (k, v)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v}")?;
            }
            f.write_str("]")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("retryable", &self.retryable)
            .field("context", &self.context)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl StdError for ConnectorError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// Walks an error's source chain looking for a value of type `T`.
pub fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error hides its payload from `source()`; descend into it, which
        // may itself be another io::Error (hyper wraps TLS errors twice).
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(inner) = io.get_ref() {
                let inner: &(dyn StdError + 'static) = inner;
                cur = Some(inner);
                continue;
            }
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn io_kinds_map_to_codes() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                ErrorCode::ConnectionRefused,
            ),
            (io::ErrorKind::TimedOut, ErrorCode::Timeout),
            (io::ErrorKind::ConnectionReset, ErrorCode::ConnectionClosed),
            (io::ErrorKind::UnexpectedEof, ErrorCode::ConnectionClosed),
            (io::ErrorKind::InvalidData, ErrorCode::ProtocolError),
            (io::ErrorKind::Other, ErrorCode::SourceError),
        ];
        for (kind, code) in cases {
            let err = ConnectorError::from_io(io::Error::from(kind), "db:5432");
            assert_eq!(err.code(), code, "{kind:?}");
        }
    }

    #[test]
    fn display_and_report_message() {
        let err = ConnectorError::new(ErrorCode::ConnectionRefused, "127.0.0.1:1: refused")
            .with_context("step", "tcp");
        assert_eq!(
            err.to_string(),
            "CONNECTION_REFUSED: 127.0.0.1:1: refused [step=tcp]"
        );
        assert_eq!(
            err.report_message(),
            "Connection refused: verify host and port (127.0.0.1:1: refused)"
        );
        assert!(err.is_retryable());
        assert_eq!(err.context_value("step"), Some("tcp"));
    }

    #[test]
    fn source_chain_is_kept() {
        let inner = io::Error::other("boom");
        let err = ConnectorError::new(ErrorCode::SourceError, "x").with_source(inner);
        assert_eq!(err.source().unwrap().to_string(), "boom");
        assert!(find_source::<io::Error>(&err).is_some());
    }

    #[test]
    fn finds_errors_inside_nested_io_errors() {
        #[derive(Debug)]
        struct Deep;
        impl fmt::Display for Deep {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("deep")
            }
        }
        impl StdError for Deep {}
        let twice = io::Error::other(io::Error::other(Deep));
        assert!(find_source::<Deep>(&twice).is_some());
        assert!(find_source::<Deep>(&io::Error::other("plain")).is_none());
    }
}
