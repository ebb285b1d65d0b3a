//! The one place SQL Server failures become [`ConnectorError`]s: server error
//! numbers (the ERROR token), TLS failures, I/O failures and tiberius's own.

use std::io;

use matih_connector_core::{tls, ConnectorError, ErrorCode};

/// Maps a server error number (`sys.messages.message_id`, also what ADO.NET
/// reports as `SqlException.Number`) to our code, and whether retrying may help.
pub(crate) fn server_code(number: u32) -> (ErrorCode, bool) {
    match number {
        // Login failed; untrusted domain; locked; expired; must change; disabled.
        18456 | 18452 | 18486 | 18487 | 18488 | 18470 => (ErrorCode::AuthenticationFailed, false),
        // Cannot open database requested by the login; database does not exist.
        4060 | 911 | 40532 => (ErrorCode::DatabaseNotFound, false),
        // Object / column / database permission denied; server principal not
        // a valid user in the database (916); permission denied in database (15247).
        229 | 230 | 262 | 297 | 300 | 916 | 15247 | 40508 => (ErrorCode::PermissionDenied, false),
        // Client-side timeout numbers (ADO.NET -2, Winsock 10060); lock request timeout.
        10060 | 1222 => (ErrorCode::Timeout, true),
        // Azure SQL: database unavailable, service busy, resource limits,
        // too many requests; the documented transient errors.
        40613 | 40501 | 40197 | 10928 | 10929 | 49918 | 49919 | 49920 | 40544 | 40549 | 40550 => {
            (ErrorCode::RateLimited, true)
        }
        // Connection forcibly closed / transport error.
        233 | 10053 | 10054 | 4221 => (ErrorCode::ConnectionClosed, true),
        // Deadlock victim: the statement can simply run again.
        1205 => (ErrorCode::SourceError, true),
        _ => (ErrorCode::SourceError, false),
    }
}

pub(crate) fn parse_error(err: tiberius::error::Error, what: &str) -> ConnectorError {
    parse_error_redacted(err, what, &[])
}

/// Maps a tiberius error, keeping it as the source. Login messages name the
/// login ("Login failed for user 'x'"): secret values are redacted, the login
/// name is kept.
pub(crate) fn parse_error_redacted(
    err: tiberius::error::Error,
    what: &str,
    secrets: &[&str],
) -> ConnectorError {
    use tiberius::error::Error as E;
    match &err {
        E::Server(token) => {
            let (code, retryable) = server_code(token.code());
            let message = matih_connector_core::redact_secrets(
                &format!(
                    "{what}: {} (error {}, state {}, class {})",
                    token.message(),
                    token.code(),
                    token.state(),
                    token.class()
                ),
                secrets,
            );
            let number = token.code().to_string();
            let class = token.class().to_string();
            ConnectorError::new(code, message)
                .with_context("sqlserver_error", number)
                .with_context("severity", class)
                .with_retryable(retryable)
                .with_source(err)
        }
        E::Tls(msg) => {
            let message = format!("{what}: TLS: {msg}");
            ConnectorError::new(ErrorCode::SslHandshakeFailed, message).with_source(err)
        }
        E::Io { kind, message } => {
            let code = if message.contains("InvalidCertificate")
                || message.contains("invalid peer certificate")
                || message.contains("tls handshake")
            {
                ErrorCode::SslHandshakeFailed
            } else {
                ErrorCode::from_io_kind(*kind)
            };
            let message = format!("{what}: {message}");
            ConnectorError::new(code, message).with_source(err)
        }
        // The server declined the encryption the SSL mode requires: TLS
        // negotiation failed before any handshake byte.
        E::Protocol(msg) if msg.contains("encryption level") => {
            let message = format!(
                "{what}: the server does not offer the TLS encryption sslMode requires ({msg})"
            );
            ConnectorError::new(ErrorCode::SslHandshakeFailed, message).with_source(err)
        }
        E::Protocol(msg) => {
            let message = format!("{what}: protocol error: {msg}");
            ConnectorError::new(ErrorCode::ProtocolError, message).with_source(err)
        }
        E::Routing { host, port } => {
            // Azure SQL gateway redirection: following it would dial an
            // address the core never checked against the egress policy.
            let message = format!(
                "{what}: the server redirects to {host}:{port}; connect to that host directly (Azure SQL: use connection policy Proxy or the redirect host)"
            );
            ConnectorError::new(ErrorCode::Unsupported, message).with_source(err)
        }
        _ => {
            let message = format!("{what}: {err}");
            ConnectorError::new(ErrorCode::SourceError, message).with_source(err)
        }
    }
}

/// The query a second login (to `master`) runs after a login to a database
/// failed with 4060: `NULL` when no such database exists, 1 when the login
/// may open it, 0 when it may not (no user there, CONNECT denied), 2 when
/// the database exists but is not online.
pub(crate) const DATABASE_ACCESS_SQL: &str = "SELECT CASE WHEN DB_ID(@P1) IS NULL THEN NULL \
     WHEN HAS_DBACCESS(@P1) = 1 THEN 1 \
     WHEN CONVERT(nvarchar(60), DATABASEPROPERTYEX(@P1, 'Status')) = N'ONLINE' THEN 0 \
     ELSE 2 END";

/// Whether a login failed with 4060, "Cannot open database … requested by
/// the login". SQL Server sends it (then 18456) both for a database that does
/// not exist and for one the login may not open, and tiberius reports the
/// first error token; only a second question tells the two apart.
pub(crate) fn is_cannot_open_database(err: &ConnectorError) -> bool {
    err.context_value("sqlserver_error") == Some("4060")
}

/// The final error for a 4060 login failure, from what the second login
/// learned about the database (`None` when it learned nothing: the second
/// login or its query failed, and 4060's own mapping stands).
pub(crate) fn cannot_open_database(
    err: ConnectorError,
    database: &str,
    access: Option<Option<i32>>,
) -> ConnectorError {
    let (code, why) = match access {
        Some(None) => (
            ErrorCode::DatabaseNotFound,
            format!("database \"{database}\" does not exist"),
        ),
        Some(Some(0)) => (
            ErrorCode::PermissionDenied,
            format!(
                "the login may not open database \"{database}\" (it exists, but the login has \
                 no user in it or CONNECT is denied)"
            ),
        ),
        Some(Some(2)) => (
            ErrorCode::DatabaseNotFound,
            format!("database \"{database}\" exists but is not online"),
        ),
        _ => return err,
    };
    let message = format!("{}: {why}", err.message());
    ConnectorError::new(code, message)
        .with_context("sqlserver_error", "4060")
        .with_context("severity", err.context_value("severity").unwrap_or("11"))
        .with_source(err)
}

/// Maps an I/O error met outside tiberius (opening the TCP stream).
pub(crate) fn parse_io_error(err: io::Error, what: &str) -> ConnectorError {
    if let Some(t) = tls::tls_error(&err) {
        return t;
    }
    ConnectorError::from_io(err, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error numbers and messages as SQL Server documents them
    /// (sys.messages; "Database engine events and errors"; Azure SQL
    /// "Transient fault error codes").
    #[test]
    fn documented_numbers_map_to_codes() {
        let cases: &[(u32, &str, ErrorCode)] = &[
            (18456, "Login failed for user 'matih'.", ErrorCode::AuthenticationFailed),
            (18486, "Login failed for user 'matih' because the account is currently locked out.", ErrorCode::AuthenticationFailed),
            (18487, "Login failed for user 'matih'. Reason: The password of the account has expired.", ErrorCode::AuthenticationFailed),
            (18488, "Login failed for user 'matih'. Reason: The password of the account must be changed.", ErrorCode::AuthenticationFailed),
            (18470, "Login failed for user 'matih'. Reason: The account is disabled.", ErrorCode::AuthenticationFailed),
            (4060, "Cannot open database \"nope\" requested by the login. The login failed.", ErrorCode::DatabaseNotFound),
            (911, "Database 'nope' does not exist. Make sure that the name is entered correctly.", ErrorCode::DatabaseNotFound),
            (229, "The SELECT permission was denied on the object 'orders', database 'sales', schema 'dbo'.", ErrorCode::PermissionDenied),
            (230, "The SELECT permission was denied on the column 'ssn' of the object 'people'.", ErrorCode::PermissionDenied),
            (262, "CREATE TABLE permission denied in database 'sales'.", ErrorCode::PermissionDenied),
            (297, "The user does not have permission to perform this action.", ErrorCode::PermissionDenied),
            (300, "VIEW SERVER STATE permission was denied on object 'server', database 'master'.", ErrorCode::PermissionDenied),
            (916, "The server principal \"matih\" is not able to access the database \"sales\" under the current security context.", ErrorCode::PermissionDenied),
            (1222, "Lock request time out period exceeded.", ErrorCode::Timeout),
            (10060, "A network-related or instance-specific error occurred (TCP Provider, error: 0).", ErrorCode::Timeout),
            (40613, "Database 'sales' on server 'x' is not currently available. Please retry the connection later.", ErrorCode::RateLimited),
            (40501, "The service is currently busy. Retry the request after 10 seconds.", ErrorCode::RateLimited),
            (10928, "Resource ID : 1. The request limit for the database is 30 and has been reached.", ErrorCode::RateLimited),
            (49918, "Cannot process request. Not enough resources to process request.", ErrorCode::RateLimited),
            (233, "A connection was successfully established with the server, but then an error occurred during the login process.", ErrorCode::ConnectionClosed),
            (1205, "Transaction (Process ID 52) was deadlocked on lock resources with another process.", ErrorCode::SourceError),
            (208, "Invalid object name 'nope'.", ErrorCode::SourceError),
        ];
        for (number, message, want) in cases {
            assert_eq!(server_code(*number).0, *want, "{number}: {message}");
        }
        assert!(server_code(40613).1 && server_code(1205).1 && !server_code(18456).1);
    }

    #[test]
    fn cannot_open_database_is_told_apart_by_the_second_login() {
        let original = || {
            ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                "connecting: Cannot open database \"sales\" requested by the login. The login failed. (error 4060, state 1, class 11)",
            )
            .with_context("sqlserver_error", "4060")
        };
        assert!(is_cannot_open_database(&original()));
        assert!(!is_cannot_open_database(
            &ConnectorError::new(ErrorCode::AuthenticationFailed, "x")
                .with_context("sqlserver_error", "18456")
        ));
        let cases = [
            (Some(None), ErrorCode::DatabaseNotFound, "does not exist"),
            (Some(Some(0)), ErrorCode::PermissionDenied, "may not open"),
            (Some(Some(2)), ErrorCode::DatabaseNotFound, "not online"),
            // The login may open it (a race, or 4060 for another reason):
            // 4060's own mapping stands, as it does when nothing was learned.
            (
                Some(Some(1)),
                ErrorCode::DatabaseNotFound,
                "requested by the login",
            ),
            (None, ErrorCode::DatabaseNotFound, "requested by the login"),
        ];
        for (access, code, text) in cases {
            let e = cannot_open_database(original(), "sales", access);
            assert_eq!(e.code(), code, "{access:?}");
            assert!(e.message().contains(text), "{access:?}: {}", e.message());
            assert_eq!(e.context_value("sqlserver_error"), Some("4060"));
        }
    }

    #[test]
    fn client_errors_map_by_kind() {
        use tiberius::error::Error as E;
        let cases = [
            (
                E::Tls("invalid peer certificate: UnknownIssuer".into()),
                ErrorCode::SslHandshakeFailed,
            ),
            (
                E::Io {
                    kind: io::ErrorKind::ConnectionReset,
                    message: "reset".into(),
                },
                ErrorCode::ConnectionClosed,
            ),
            (
                E::Io {
                    kind: io::ErrorKind::UnexpectedEof,
                    message: "eof".into(),
                },
                ErrorCode::ConnectionClosed,
            ),
            (
                E::Io {
                    kind: io::ErrorKind::InvalidData,
                    message: "invalid peer certificate: UnknownIssuer".into(),
                },
                ErrorCode::SslHandshakeFailed,
            ),
            (
                E::Protocol("unexpected token".into()),
                ErrorCode::ProtocolError,
            ),
            (
                E::Routing {
                    host: "x.database.windows.net".into(),
                    port: 11000,
                },
                ErrorCode::Unsupported,
            ),
            (E::Utf16, ErrorCode::SourceError),
        ];
        for (err, want) in cases {
            let text = err.to_string();
            assert_eq!(parse_error(err, "t").code(), want, "{text}");
        }
        let refused = parse_io_error(io::Error::from(io::ErrorKind::ConnectionRefused), "c");
        assert_eq!(refused.code(), ErrorCode::ConnectionRefused);
    }
}
