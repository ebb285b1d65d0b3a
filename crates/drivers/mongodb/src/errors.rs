//! MongoDB failures → connector error codes, in one place.
//!
//! Server errors are classified by their documented numeric code
//! (src/mongo/base/error_codes.yml in the server sources); client-side
//! failures by the driver's error kind. Server selection failures carry only a
//! description of what each server attempt hit, so their cause is read from it.

use matih_connector_core::{tls, ConnectorError, ErrorCode};
use mongodb::error::{Error as MongoError, ErrorKind};

/// The code for a server error number, with the name the server gives it.
pub(crate) fn code_for_server_error(code: i32, message: &str) -> ErrorCode {
    match code {
        18 => ErrorCode::AuthenticationFailed, // AuthenticationFailed
        // Atlas proxies answer failed logins with AtlasError 8000 "bad auth …".
        8000 if message.to_ascii_lowercase().contains("auth") => ErrorCode::AuthenticationFailed,
        13 | 31 => ErrorCode::PermissionDenied, // Unauthorized, RoleNotFound
        11 => ErrorCode::AuthenticationFailed,  // UserNotFound
        26 => ErrorCode::DatabaseNotFound,      // NamespaceNotFound
        73 => ErrorCode::InvalidConfiguration,  // InvalidNamespace
        50 | 262 | 202 | 89 => ErrorCode::Timeout, // MaxTimeMSExpired, ExceededTimeLimit, NetworkInterfaceExceededTimeLimit, NetworkTimeout
        6 | 7 => ErrorCode::ConnectionRefused,     // HostUnreachable, HostNotFound
        // Shutdown, step-downs and elections: the connection is gone, try again.
        11600 | 11602 | 91 | 189 | 10107 | 13435 | 13436 | 9001 => ErrorCode::ConnectionClosed,
        16500 | 429 => ErrorCode::RateLimited, // RequestRateTooLarge (Cosmos DB), TooManyRequests
        59 | 115 | 238 => ErrorCode::Unsupported, // CommandNotFound, CommandNotSupported, NotImplemented
        2 | 9 | 14 | 40415 => ErrorCode::InvalidConfiguration, // BadValue, FailedToParse, TypeMismatch, unknown field
        _ => ErrorCode::SourceError,
    }
}

/// The cause of a server selection failure, from the driver's description of
/// each server's last error (io errors, TLS alerts, auth replies).
pub(crate) fn code_for_selection_message(message: &str) -> ErrorCode {
    let m = message.to_ascii_lowercase();
    if m.contains("authentication failed") || m.contains("bad auth") {
        ErrorCode::AuthenticationFailed
    } else if m.contains("connection refused") || m.contains("os error 111") {
        ErrorCode::ConnectionRefused
    } else if m.contains("certificate")
        || m.contains("tls")
        || m.contains("handshake")
        || m.contains("ssl")
    {
        ErrorCode::SslHandshakeFailed
    } else if m.contains("failed to lookup address")
        || m.contains("name or service not known")
        || m.contains("dns")
    {
        ErrorCode::DnsResolutionFailed
    } else if m.contains("network is unreachable") || m.contains("no route to host") {
        ErrorCode::ConnectionRefused
    } else if m.contains("connection reset")
        || m.contains("broken pipe")
        || m.contains("unexpected end of file")
    {
        ErrorCode::ConnectionClosed
    } else {
        // Selection ran out of time with no answer from any server.
        ErrorCode::Timeout
    }
}

/// The one mapping from a driver error to a connector error. The message is
/// the driver's (it redacts credentials); the error itself is kept as source.
pub(crate) fn parse_error(err: MongoError, what: &str) -> ConnectorError {
    if let Some(t) = tls::tls_error(&err) {
        return t.with_context("operation", what.to_owned());
    }
    let (code, native) = match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => (ErrorCode::AuthenticationFailed, None),
        ErrorKind::Command(c) => (
            code_for_server_error(c.code, &c.message),
            Some((c.code, c.code_name.clone())),
        ),
        ErrorKind::Io(io) => (ErrorCode::from_io_kind(io.kind()), None),
        ErrorKind::DnsResolve { .. } => (ErrorCode::DnsResolutionFailed, None),
        ErrorKind::ServerSelection { message, .. } => (code_for_selection_message(message), None),
        ErrorKind::InvalidTlsConfig { .. } => (ErrorCode::InvalidConfiguration, None),
        ErrorKind::InvalidArgument { .. } => (ErrorCode::InvalidConfiguration, None),
        ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::Shutdown => {
            (ErrorCode::ConnectionClosed, None)
        }
        ErrorKind::InvalidResponse { .. } | ErrorKind::BsonDeserialization(_) => {
            (ErrorCode::ProtocolError, None)
        }
        ErrorKind::IncompatibleServer { .. } | ErrorKind::SessionsNotSupported => {
            (ErrorCode::Unsupported, None)
        }
        _ => (ErrorCode::SourceError, None),
    };
    let mut e = ConnectorError::new(code, format!("{what}: {err}"));
    if let Some((n, name)) = native {
        e = e.with_context("mongoCode", n);
        if !name.is_empty() {
            e = e.with_context("codeName", name);
        }
    }
    for label in err.labels() {
        if label == "RetryableWriteError"
            || label == "ResumableChangeStreamError"
            || label == "SystemOverloadedError"
        {
            e = e.with_retryable(true);
        }
    }
    e.with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_error(doc: mongodb::bson::Document) -> MongoError {
        let c: mongodb::error::CommandError = mongodb::bson::from_document(doc).unwrap();
        MongoError::from(ErrorKind::Command(c))
    }

    /// Error replies as the server documents them ({ok: 0, errmsg, code, codeName}).
    #[test]
    fn server_error_replies() {
        use mongodb::bson::doc;
        let cases = [
            (
                doc! {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"},
                ErrorCode::AuthenticationFailed,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "not authorized on sales to execute command { listCollections: 1 }", "code": 13, "codeName": "Unauthorized"},
                ErrorCode::PermissionDenied,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "bad auth : authentication failed", "code": 8000, "codeName": "AtlasError"},
                ErrorCode::AuthenticationFailed,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "user is not allowed to do action [collStats]", "code": 8000, "codeName": "AtlasError"},
                ErrorCode::SourceError,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "operation exceeded time limit", "code": 50, "codeName": "MaxTimeMSExpired"},
                ErrorCode::Timeout,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "Socket operation timed out", "code": 89, "codeName": "NetworkTimeout"},
                ErrorCode::Timeout,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "interrupted at shutdown", "code": 11600, "codeName": "InterruptedAtShutdown"},
                ErrorCode::ConnectionClosed,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary"},
                ErrorCode::ConnectionClosed,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "ns not found", "code": 26, "codeName": "NamespaceNotFound"},
                ErrorCode::DatabaseNotFound,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "Invalid namespace specified 'a.'", "code": 73, "codeName": "InvalidNamespace"},
                ErrorCode::InvalidConfiguration,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "no such command: 'buildInfo'", "code": 59, "codeName": "CommandNotFound"},
                ErrorCode::Unsupported,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "Request rate is large", "code": 16500, "codeName": "RequestRateTooLarge"},
                ErrorCode::RateLimited,
            ),
            (
                doc! {"ok": 0.0, "errmsg": "something odd", "code": 8, "codeName": "UnknownError"},
                ErrorCode::SourceError,
            ),
        ];
        for (doc, code) in cases {
            let n = doc.get_i32("code").unwrap();
            let e = parse_error(command_error(doc), "listing");
            assert_eq!(e.code(), code, "{e}");
            assert_eq!(e.context_value("mongoCode"), Some(n.to_string().as_str()));
            assert!(std::error::Error::source(&e).is_some());
        }
    }

    #[test]
    fn io_kinds() {
        let cases = [
            (
                ErrorKind::Io(std::sync::Arc::new(
                    std::io::ErrorKind::ConnectionRefused.into(),
                )),
                ErrorCode::ConnectionRefused,
            ),
            (
                ErrorKind::Io(std::sync::Arc::new(std::io::ErrorKind::TimedOut.into())),
                ErrorCode::Timeout,
            ),
            (
                ErrorKind::Io(std::sync::Arc::new(
                    std::io::ErrorKind::ConnectionReset.into(),
                )),
                ErrorCode::ConnectionClosed,
            ),
        ];
        for (kind, code) in cases {
            assert_eq!(parse_error(MongoError::from(kind), "x").code(), code);
        }
    }

    /// Server selection descriptions as the Rust driver formats them.
    #[test]
    fn selection_failures() {
        let cases = [
            ("Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {} } ] }", ErrorCode::ConnectionRefused),
            ("Server selection timeout: None of the available servers suitable for criteria Predicate. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:5, Type: Unknown } ] }", ErrorCode::Timeout),
            ("Server selection timeout: ... Error: Kind: I/O error: invalid peer certificate: UnknownIssuer", ErrorCode::SslHandshakeFailed),
            ("Server selection timeout: ... Error: Kind: Command failed: Error code 18 (AuthenticationFailed): Authentication failed.", ErrorCode::AuthenticationFailed),
            ("Server selection timeout: ... Error: Kind: An error occurred during DNS resolution: failed to lookup address information", ErrorCode::DnsResolutionFailed),
            ("Server selection timeout: ... Error: Kind: I/O error: Connection reset by peer (os error 104)", ErrorCode::ConnectionClosed),
        ];
        for (msg, code) in cases {
            assert_eq!(code_for_selection_message(msg), code, "{msg}");
        }
    }
}
