//! The one place MySQL and MariaDB failures become [`ConnectorError`]s: server
//! error numbers and SQLSTATEs, I/O failures, TLS failures and the client's own
//! errors.

use std::error::Error as StdError;

use matih_connector_core::{find_source, tls, ConnectorError, ErrorCode};
use mysql_async::{DriverError, IoError, ServerError, TlsError};
use mysql_common::proto::codec::error::PacketCodecError;

/// Maps a mysql_async error, keeping it as the source. `what` says what we were
/// doing ("connecting to 127.0.0.1:3306", "listing columns"). Server messages
/// name the login ("Access denied for user 'x'@'h'"); it is kept, being what an
/// administrator needs, and MySQL and MariaDB never echo the password.
pub(crate) fn parse_error(err: mysql_async::Error, what: &str) -> ConnectorError {
    match &err {
        mysql_async::Error::Server(server) => server_error(server, what).with_source(err),
        mysql_async::Error::Driver(driver) => {
            let code = driver_code(driver);
            ConnectorError::new(code, format!("{what}: {driver}")).with_source(err)
        }
        mysql_async::Error::Io(IoError::Tls(TlsError::InvalidDnsName(e))) => ConnectorError::new(
            ErrorCode::InvalidConfiguration,
            format!("{what}: the host cannot be checked against a TLS certificate: {e}"),
        )
        .with_context("field", "host")
        .with_source(err),
        mysql_async::Error::Io(IoError::Tls(TlsError::Pem(e))) => ConnectorError::invalid_config(
            "sslCaPem",
            format!("{what}: sslCaPem is not valid PEM: {e}"),
        )
        .with_source(err),
        mysql_async::Error::Io(IoError::Tls(TlsError::VerifierBuilderError(e))) => {
            ConnectorError::invalid_config(
                "sslCaPem",
                format!("{what}: unusable CA certificate: {e}"),
            )
            .with_source(err)
        }
        mysql_async::Error::Url(e) => {
            ConnectorError::new(ErrorCode::InvalidConfiguration, format!("{what}: {e}"))
                .with_source(err)
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Other(_) => {
            if let Some(tls_err) = tls::tls_error(&err) {
                return ConnectorError::new(
                    ErrorCode::SslHandshakeFailed,
                    format!("{what}: {}", tls_err.message()),
                )
                .with_source(err);
            }
            if let Some(codec) = find_source::<PacketCodecError>(&err) {
                if !matches!(codec, PacketCodecError::Io(_)) {
                    // What a peer that does not speak the MySQL protocol causes:
                    // its first bytes read as an absurd packet length.
                    return ConnectorError::new(
                        ErrorCode::ProtocolError,
                        format!("{what}: the server does not answer like a MySQL server: {codec}"),
                    )
                    .with_source(err);
                }
            }
            let code = match find_source::<std::io::Error>(&err) {
                Some(io) => ErrorCode::from_io_kind(io.kind()),
                None => ErrorCode::SourceError,
            };
            let detail = match err.source() {
                Some(s) => s.to_string(),
                None => err.to_string(),
            };
            ConnectorError::new(code, format!("{what}: {detail}")).with_source(err)
        }
    }
}

fn server_error(server: &ServerError, what: &str) -> ConnectorError {
    let code = server_code(server.code, &server.state);
    ConnectorError::new(code, format!("{what}: {}", server.message))
        .with_context("mysqlErrno", server.code)
        .with_context("sqlstate", &server.state)
        .with_retryable(server_retryable(server.code, code))
}

/// Server (and classic client-library) error number → code. Numbers below
/// 1900 are shared by MySQL and MariaDB; above that the two number
/// independently, so each entry names whose number it is.
pub(crate) fn server_code(errno: u16, sqlstate: &str) -> ErrorCode {
    match errno {
        // ER_ACCESS_DENIED_ERROR, ER_ACCESS_DENIED_NO_PASSWORD_ERROR,
        // ER_MUST_CHANGE_PASSWORD(_LOGIN): the login itself is refused.
        1045 | 1698 | 1820 | 1862 => ErrorCode::AuthenticationFailed,
        // MySQL: ER_ACCOUNT_HAS_BEEN_LOCKED, blocked after failed logins.
        3118 | 3955 => ErrorCode::AuthenticationFailed,
        // MariaDB: ER_USER_IS_BLOCKED (max_password_errors), ER_ACCOUNT_HAS_BEEN_LOCKED.
        4150 | 4151 => ErrorCode::AuthenticationFailed,
        // ER_BAD_DB_ERROR: the configured database does not exist.
        1049 => ErrorCode::DatabaseNotFound,
        // ER_DBACCESS_DENIED_ERROR (also at login with a database the user may
        // not use), table/column/procedure access, "you need the X privilege".
        1044 | 1142 | 1143 | 1227 | 1370 => ErrorCode::PermissionDenied,
        // ER_HOST_NOT_PRIVILEGED, ER_HOST_IS_BLOCKED: the server refuses this
        // client address before looking at credentials.
        1130 | 1129 => ErrorCode::PermissionDenied,
        // ER_CON_COUNT_ERROR, ER_TOO_MANY_USER_CONNECTIONS, ER_USER_LIMIT_REACHED.
        1040 | 1203 | 1226 => ErrorCode::RateLimited,
        // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time), MySQL
        // ER_QUERY_TIMEOUT (max_execution_time), ER_LOCK_WAIT_TIMEOUT.
        1969 | 3024 | 1205 => ErrorCode::Timeout,
        // Client library numbers: CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR.
        2002 | 2003 => ErrorCode::ConnectionRefused,
        // CR_UNKNOWN_HOST.
        2005 => ErrorCode::DnsResolutionFailed,
        // CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_SERVER_SHUTDOWN, MariaDB
        // ER_CONNECTION_KILLED, ER_ABORTING_CONNECTION, ER_NEW_ABORTING_CONNECTION,
        // the ER_NET_* read/write errors, MySQL ER_CLIENT_INTERACTION_TIMEOUT.
        2006 | 2013 | 1053 | 1927 | 1152 | 1184 | 1158..=1161 | 4031 => ErrorCode::ConnectionClosed,
        // CR_SSL_CONNECTION_ERROR; MySQL ER_SECURE_TRANSPORT_REQUIRED (the
        // server insists on TLS and sslMode is disable).
        2026 | 3159 => ErrorCode::SslHandshakeFailed,
        // ER_HANDSHAKE_ERROR: "Bad handshake".
        1043 => ErrorCode::ProtocolError,
        // ER_NOT_SUPPORTED_AUTH_MODE, ER_UNKNOWN_COM_ERROR, ER_UNKNOWN_SYSTEM_VARIABLE.
        1251 | 1047 | 1193 => ErrorCode::Unsupported,
        _ => sqlstate_code(sqlstate),
    }
}

/// The SQLSTATE class, for numbers the table above does not know.
fn sqlstate_code(sqlstate: &str) -> ErrorCode {
    match sqlstate.get(..2) {
        Some("28") => ErrorCode::AuthenticationFailed,
        Some("08") => ErrorCode::ConnectionClosed,
        Some("70") => ErrorCode::Timeout,
        _ => ErrorCode::SourceError,
    }
}

fn server_retryable(errno: u16, code: ErrorCode) -> bool {
    match errno {
        // A blocked host or account stays blocked until an administrator acts.
        1129 | 3955 | 4150 => false,
        _ => code.is_retryable(),
    }
}

/// The client's own failures.
fn driver_code(err: &DriverError) -> ErrorCode {
    match err {
        DriverError::ConnectionClosed => ErrorCode::ConnectionClosed,
        DriverError::NoClientSslFlagFromServer => ErrorCode::SslHandshakeFailed,
        DriverError::UnknownAuthPlugin { .. }
        | DriverError::MysqlOldPasswordDisabled
        | DriverError::CleartextPluginDisabled
        | DriverError::NamedPipesDisabled
        | DriverError::ReadOnlyTransNotSupported => ErrorCode::Unsupported,
        DriverError::CantParseServerVersion { .. }
        | DriverError::PacketOutOfOrder
        | DriverError::UnexpectedPacket { .. }
        | DriverError::PacketTooLarge
        | DriverError::BadCompressedPacketHeader
        | DriverError::InvalidParsecSalt
        | DriverError::FromValue { .. }
        | DriverError::FromRow { .. } => ErrorCode::ProtocolError,
        _ => ErrorCode::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn server(code: u16, state: &str, message: &str) -> mysql_async::Error {
        mysql_async::Error::Server(ServerError {
            code,
            message: message.into(),
            state: state.into(),
        })
    }

    /// Payloads as MariaDB 10.11 and MySQL 8 send them.
    #[test]
    fn server_errors_map_by_number() {
        let cases = [
            (1045, "28000", "Access denied for user 'matih'@'127.0.0.1' (using password: YES)", ErrorCode::AuthenticationFailed),
            (1698, "28000", "Access denied for user 'root'@'localhost'", ErrorCode::AuthenticationFailed),
            (1862, "HY000", "Your password has expired.", ErrorCode::AuthenticationFailed),
            (4151, "HY000", "Access denied, this account is locked", ErrorCode::AuthenticationFailed),
            (3118, "HY000", "Access denied for user 'u'@'h'. Account is locked.", ErrorCode::AuthenticationFailed),
            (1049, "42000", "Unknown database 'nope'", ErrorCode::DatabaseNotFound),
            (1044, "42000", "Access denied for user 'nopriv'@'%' to database 'matih_seed'", ErrorCode::PermissionDenied),
            (1142, "42000", "SELECT command denied to user 'u'@'h' for table `db`.`t`", ErrorCode::PermissionDenied),
            (1143, "42000", "SELECT command denied to user 'u'@'h' for column 'c' in table 't'", ErrorCode::PermissionDenied),
            (1227, "42000", "Access denied; you need (at least one of) the PROCESS privilege(s)", ErrorCode::PermissionDenied),
            (1130, "HY000", "Host '10.0.0.9' is not allowed to connect to this MariaDB server", ErrorCode::PermissionDenied),
            (1040, "08004", "Too many connections", ErrorCode::RateLimited),
            (1203, "42000", "User u already has more than 'max_user_connections' active connections", ErrorCode::RateLimited),
            (1226, "42000", "User 'u' has exceeded the 'max_questions' resource", ErrorCode::RateLimited),
            (1969, "70100", "Query execution was interrupted (max_statement_time exceeded)", ErrorCode::Timeout),
            (3024, "HY000", "Query execution was interrupted, maximum statement execution time exceeded", ErrorCode::Timeout),
            (1205, "HY000", "Lock wait timeout exceeded; try restarting transaction", ErrorCode::Timeout),
            (2002, "HY000", "Can't connect to local server through socket", ErrorCode::ConnectionRefused),
            (2003, "HY000", "Can't connect to MySQL server on '10.0.0.1' (111)", ErrorCode::ConnectionRefused),
            (2005, "HY000", "Unknown MySQL server host 'x'", ErrorCode::DnsResolutionFailed),
            (2006, "HY000", "MySQL server has gone away", ErrorCode::ConnectionClosed),
            (2013, "HY000", "Lost connection to MySQL server during query", ErrorCode::ConnectionClosed),
            (1927, "70100", "Connection was killed", ErrorCode::ConnectionClosed),
            (1053, "08S01", "Server shutdown in progress", ErrorCode::ConnectionClosed),
            (2026, "HY000", "SSL connection error", ErrorCode::SslHandshakeFailed),
            (3159, "HY000", "Connections using insecure transport are prohibited while --require_secure_transport=ON.", ErrorCode::SslHandshakeFailed),
            (1251, "08004", "Client does not support authentication protocol requested by server", ErrorCode::Unsupported),
            (1193, "HY000", "Unknown system variable 'max_statement_time'", ErrorCode::Unsupported),
            (1043, "08S01", "Bad handshake", ErrorCode::ProtocolError),
            // Unknown numbers fall back to the SQLSTATE class, then SOURCE_ERROR.
            (9999, "28000", "some future auth failure", ErrorCode::AuthenticationFailed),
            (9998, "08S01", "some future link failure", ErrorCode::ConnectionClosed),
            (1146, "42S02", "Table 'db.t' doesn't exist", ErrorCode::SourceError),
            (1064, "42000", "You have an error in your SQL syntax", ErrorCode::SourceError),
        ];
        for (errno, state, message, want) in cases {
            let err = parse_error(server(errno, state, message), "connecting to db:3306");
            assert_eq!(err.code(), want, "{errno} {message}");
            assert_eq!(
                err.context_value("mysqlErrno"),
                Some(errno.to_string().as_str())
            );
            assert_eq!(err.context_value("sqlstate"), Some(state));
            assert!(
                err.message().starts_with("connecting to db:3306: "),
                "{}",
                err.message()
            );
            assert!(err.message().contains(message));
            assert!(err.source().is_some(), "source kept");
        }
    }

    #[test]
    fn the_login_name_is_kept_in_the_message() {
        let cases = [
            (
                1045,
                "Access denied for user 'reader7'@'10.0.0.1' (using password: YES)",
            ),
            (
                1044,
                "Access denied for user 'reader7'@'%' to database 'reader7_db'",
            ),
            (
                1203,
                "User reader7 already has more than 'max_user_connections' active connections",
            ),
        ];
        for (errno, message) in cases {
            let err = parse_error(server(errno, "42000", message), "connecting");
            assert!(err.message().contains(message), "{}", err.message());
        }
    }

    #[test]
    fn retryability_follows_the_cause() {
        assert!(parse_error(server(1040, "08004", "Too many connections"), "x").is_retryable());
        assert!(parse_error(server(2013, "HY000", "Lost connection"), "x").is_retryable());
        assert!(!parse_error(server(1045, "28000", "Access denied"), "x").is_retryable());
        assert!(!parse_error(server(1129, "HY000", "Host is blocked"), "x").is_retryable());
        assert!(!parse_error(server(4150, "HY000", "User is blocked"), "x").is_retryable());
    }

    #[test]
    fn io_errors_map_by_kind() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                ErrorCode::ConnectionRefused,
            ),
            (io::ErrorKind::ConnectionReset, ErrorCode::ConnectionClosed),
            (io::ErrorKind::UnexpectedEof, ErrorCode::ConnectionClosed),
            (io::ErrorKind::BrokenPipe, ErrorCode::ConnectionClosed),
            (io::ErrorKind::TimedOut, ErrorCode::Timeout),
        ];
        for (kind, want) in cases {
            let err = mysql_async::Error::Io(IoError::Io(io::Error::from(kind)));
            let mapped = parse_error(err, "connecting");
            assert_eq!(mapped.code(), want, "{kind:?}");
            assert!(mapped.source().is_some());
        }
    }

    #[test]
    fn garbage_from_the_server_is_a_protocol_error() {
        for codec in [
            PacketCodecError::PacketTooLarge,
            PacketCodecError::PacketsOutOfSync,
        ] {
            let err = parse_error(codec.into(), "connecting");
            assert_eq!(err.code(), ErrorCode::ProtocolError, "{err}");
        }
        let io = PacketCodecError::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(
            parse_error(io.into(), "connecting").code(),
            ErrorCode::ConnectionClosed
        );
    }

    #[test]
    fn tls_failures_are_handshake_failures() {
        let unknown_issuer =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        // As tokio-rustls reports a failed handshake: inside an I/O error.
        let io = io::Error::new(io::ErrorKind::InvalidData, unknown_issuer.clone());
        let err = parse_error(mysql_async::Error::Io(IoError::Io(io)), "connecting");
        assert_eq!(err.code(), ErrorCode::SslHandshakeFailed);
        assert!(
            err.message().contains("invalid peer certificate"),
            "{}",
            err.message()
        );
        // As mysql_async reports its own TLS set-up failures.
        let err = parse_error(unknown_issuer.into(), "connecting");
        assert_eq!(err.code(), ErrorCode::SslHandshakeFailed);

        let err = parse_error(DriverError::NoClientSslFlagFromServer.into(), "connecting");
        assert_eq!(err.code(), ErrorCode::SslHandshakeFailed);
    }

    #[test]
    fn client_errors_are_classified() {
        let cases = [
            (DriverError::ConnectionClosed, ErrorCode::ConnectionClosed),
            (DriverError::PacketOutOfOrder, ErrorCode::ProtocolError),
            (
                DriverError::UnexpectedPacket {
                    payload: vec![0xff],
                },
                ErrorCode::ProtocolError,
            ),
            (
                DriverError::UnknownAuthPlugin {
                    name: "auth_gssapi_client".into(),
                },
                ErrorCode::Unsupported,
            ),
            (
                DriverError::CantParseServerVersion {
                    version_string: "?".into(),
                },
                ErrorCode::ProtocolError,
            ),
        ];
        for (driver, want) in cases {
            let text = driver.to_string();
            let err = parse_error(driver.into(), "connecting");
            assert_eq!(err.code(), want, "{text}");
            assert!(err.message().contains(&text));
        }
    }
}
