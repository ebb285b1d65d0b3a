//! The one place PostgreSQL failures become [`ConnectorError`]s: SQLSTATE codes
//! from the server, I/O failures, TLS failures and the client's own errors.

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{find_source, redact_secrets, tls, ConnectorError, ErrorCode};
use tokio_postgres::error::DbError;

/// Maps a tokio-postgres error, keeping it as the source. `what` says what we
/// were doing ("connecting to 127.0.0.1:5432", "listing columns").
pub(crate) fn parse_error(err: tokio_postgres::Error, what: &str) -> ConnectorError {
    parse_error_redacted(err, what, &[])
}

/// [`parse_error`] for the login: secret values (the password) are replaced
/// before they can reach a message. The role name the server's messages carry
/// (`password authentication failed for user "…"`) is kept.
pub(crate) fn parse_error_redacted(
    err: tokio_postgres::Error,
    what: &str,
    secrets: &[&str],
) -> ConnectorError {
    if let Some(db) = err.as_db_error() {
        let code = sqlstate_code(db.code().code());
        let mut message = format!("{what}: {}", db.message());
        if let Some(detail) = db.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        let message = redact_secrets(&message, secrets);
        let sqlstate = db.code().code().to_owned();
        return ConnectorError::new(code, message)
            .with_context("sqlstate", sqlstate)
            .with_retryable(sqlstate_retryable(db.code().code(), code))
            .with_source(err);
    }
    if let Some(tls_err) = tls::tls_error(&err) {
        return ConnectorError::new(tls_err.code(), format!("{what}: {}", tls_err.message()))
            .with_source(err);
    }
    let code = client_code(&err);
    let detail = match err.source() {
        Some(s) => format!("{err}: {s}"),
        None => err.to_string(),
    };
    ConnectorError::new(code, format!("{what}: {detail}")).with_source(err)
}

/// Maps an I/O error met outside tokio-postgres (opening the TCP stream,
/// which `ConnectContext::connect_stream` maps the same way).
#[cfg(test)]
pub(crate) fn parse_io_error(err: io::Error, what: &str) -> ConnectorError {
    ConnectorError::from_io(err, what)
}

/// SQLSTATE → code. Classes first where a whole class means one thing, then the
/// individual codes that differ from their class.
pub(crate) fn sqlstate_code(sqlstate: &str) -> ErrorCode {
    match sqlstate {
        // invalid_password, invalid_authorization_specification (also "no
        // pg_hba.conf entry" and "role does not exist").
        "28P01" | "28000" => ErrorCode::AuthenticationFailed,
        "3D000" => ErrorCode::DatabaseNotFound,
        // invalid_schema_name: the configured schema does not exist.
        "3F000" => ErrorCode::DatabaseNotFound,
        // insufficient_privilege: also missing CONNECT on the database.
        "42501" => ErrorCode::PermissionDenied,
        // query_canceled: statement_timeout fired (we set it to the query limit).
        "57014" => ErrorCode::Timeout,
        // lock_not_available: lock_timeout.
        "55P03" => ErrorCode::Timeout,
        // too_many_connections, and the per-role / per-database connection limits.
        "53300" => ErrorCode::RateLimited,
        // cannot_connect_now: starting up, shutting down, in recovery.
        "57P03" => ErrorCode::ConnectionRefused,
        // admin_shutdown, crash_shutdown, idle_session_timeout.
        "57P01" | "57P02" | "57P05" => ErrorCode::ConnectionClosed,
        // sqlclient_unable_to_establish_sqlconnection, sqlserver_rejected_establishment_of_sqlconnection.
        "08001" | "08004" => ErrorCode::ConnectionRefused,
        "08P01" => ErrorCode::ProtocolError,
        "0A000" => ErrorCode::Unsupported,
        s if s.starts_with("28") => ErrorCode::AuthenticationFailed,
        s if s.starts_with("08") => ErrorCode::ConnectionClosed,
        s if s.starts_with("XX") => ErrorCode::SourceError,
        _ => ErrorCode::SourceError,
    }
}

fn sqlstate_retryable(sqlstate: &str, code: ErrorCode) -> bool {
    // Serialization failures, deadlocks and resource shortages pass on their own.
    code.is_retryable() || sqlstate.starts_with("40") || sqlstate.starts_with("53")
}

/// Errors the client raises itself. tokio-postgres keeps its error kind private;
/// its `Display` is the kind's fixed text, which is what we match on.
fn client_code(err: &tokio_postgres::Error) -> ErrorCode {
    if err.is_closed() {
        return ErrorCode::ConnectionClosed;
    }
    match err.to_string().as_str() {
        // "server does not support TLS" and similar: no rustls error inside.
        "error performing TLS handshake" => return ErrorCode::SslHandshakeFailed,
        "unexpected message from server" | "error parsing response from server" => {
            return ErrorCode::ProtocolError
        }
        // SASL failures on our side, or a password the server asked for and we lack.
        "authentication error" => return ErrorCode::AuthenticationFailed,
        "invalid configuration" | "invalid connection string" => {
            return ErrorCode::InvalidConfiguration
        }
        "timeout waiting for server" => return ErrorCode::Timeout,
        _ => {}
    }
    if let Some(io) = find_source::<io::Error>(err) {
        return ErrorCode::from_io_kind(io.kind());
    }
    if find_source::<DbError>(err).is_some() {
        return ErrorCode::SourceError;
    }
    ErrorCode::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_codes() {
        let cases = [
            ("28P01", ErrorCode::AuthenticationFailed),
            ("28000", ErrorCode::AuthenticationFailed),
            ("3D000", ErrorCode::DatabaseNotFound),
            ("3F000", ErrorCode::DatabaseNotFound),
            ("42501", ErrorCode::PermissionDenied),
            ("57014", ErrorCode::Timeout),
            ("55P03", ErrorCode::Timeout),
            ("53300", ErrorCode::RateLimited),
            ("57P03", ErrorCode::ConnectionRefused),
            ("57P01", ErrorCode::ConnectionClosed),
            ("08006", ErrorCode::ConnectionClosed),
            ("08003", ErrorCode::ConnectionClosed),
            ("08001", ErrorCode::ConnectionRefused),
            ("08P01", ErrorCode::ProtocolError),
            ("0A000", ErrorCode::Unsupported),
            ("42P01", ErrorCode::SourceError),
            ("42601", ErrorCode::SourceError),
            ("XX000", ErrorCode::SourceError),
            ("53200", ErrorCode::SourceError),
        ];
        for (state, code) in cases {
            assert_eq!(sqlstate_code(state), code, "{state}");
        }
        assert!(sqlstate_retryable("53200", ErrorCode::SourceError));
        assert!(sqlstate_retryable("40P01", ErrorCode::SourceError));
        assert!(!sqlstate_retryable("42501", ErrorCode::PermissionDenied));
        assert!(sqlstate_retryable("53300", ErrorCode::RateLimited));
    }

    #[test]
    fn io_errors_map_by_kind_and_tls_first() {
        let cases = [
            (
                io::Error::from(io::ErrorKind::ConnectionRefused),
                ErrorCode::ConnectionRefused,
            ),
            (
                io::Error::from(io::ErrorKind::ConnectionReset),
                ErrorCode::ConnectionClosed,
            ),
            (
                io::Error::from(io::ErrorKind::UnexpectedEof),
                ErrorCode::ConnectionClosed,
            ),
            (io::Error::from(io::ErrorKind::TimedOut), ErrorCode::Timeout),
            (
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
                ),
                ErrorCode::SslHandshakeFailed,
            ),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            assert_eq!(parse_io_error(err, "127.0.0.1:5432").code(), code, "{text}");
        }
    }
}
