//! The one place Oracle failures become [`ConnectorError`]s: ORA- codes from
//! the server or Oracle Net, DPI- codes from ODPI-C (including the missing
//! client library), and the crate's own conversion errors.

use matih_connector_core::{ConnectorError, ErrorCode};

/// What to install when ODPI-C cannot load the Oracle Client library.
pub(crate) const CLIENT_HINT: &str = "the Oracle driver needs the Oracle Client library (libclntsh): install Oracle Instant Client \
     (the Basic or Basic Light package, 19c or later, 64-bit) and put its directory on LD_LIBRARY_PATH \
     (or register it with ldconfig) for the process running MATIH connectors";

/// ORA- number → our code and whether retrying may help.
pub(crate) fn ora_code(number: i32) -> (ErrorCode, bool) {
    match number {
        // Invalid username/password; account locked; password expired;
        // no matching authentication protocol; password will expire (grace);
        // logon denied.
        1017 | 28000 | 28001 | 28040 | 1005 | 1004 | 28009 | 28274 => {
            (ErrorCode::AuthenticationFailed, false)
        }
        // User lacks CREATE SESSION; insufficient privileges; table or view
        // does not exist (a dictionary view the login may not read).
        1045 | 1031 | 942 | 1720 | 1749 | 41900 => (ErrorCode::PermissionDenied, false),
        // Listener does not know the service / SID; no such pluggable database.
        12514 | 12505 | 12528 | 65011 => (ErrorCode::DatabaseNotFound, false),
        // No listener; destination host unreachable; TNS: protocol adapter.
        12541 | 12543 | 12560 | 12547 | 12537 => (ErrorCode::ConnectionRefused, true),
        // Host name could not be resolved.
        12545 | 12154 | 12262 => (ErrorCode::DnsResolutionFailed, true),
        // Connect timeout; operation timed out; call timeout exceeded (DPI-1067
        // is ODPI's; ORA-03156 the server's); user requested cancel.
        12170 | 12535 | 3136 | 3156 | 1013 => (ErrorCode::Timeout, true),
        // Instance not available, shutting down, in restricted mode, processes exceeded.
        1034 | 1089 | 1033 | 1035 | 12516 | 12518 | 12519 | 12520 | 12526 | 20 => {
            (ErrorCode::RateLimited, true)
        }
        // End-of-file on communication channel; not connected; connection lost.
        3113 | 3114 | 3135 | 12152 | 12571 | 28 => (ErrorCode::ConnectionClosed, true),
        // TLS handshake and wallet failures.
        28759 | 28860 | 28862 | 29002 | 29003 | 29024 | 29039 | 29040 | 29106 | 29113 | 29114
        | 29143 | 29261 => (ErrorCode::SslHandshakeFailed, false),
        _ => (ErrorCode::SourceError, false),
    }
}

/// DPI- number → our code, for ODPI-C's own errors.
pub(crate) fn dpi_code(number: i32) -> Option<ErrorCode> {
    match number {
        // Cannot locate/load the client library; library too old; context
        // creation failed (usually the same cause).
        1047 | 1072 | 1050 | 1020 => Some(ErrorCode::DriverUnavailable),
        // Call timeout exceeded.
        1067 => Some(ErrorCode::Timeout),
        // Not connected.
        1010 | 1080 => Some(ErrorCode::ConnectionClosed),
        _ => None,
    }
}

/// The ORA- or DPI- number at the start of a message (`ORA-01017: …`).
fn prefixed_number(message: &str, prefix: &str) -> Option<i32> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Maps an `oracle` crate error, keeping it as the source. Messages from
/// Oracle never echo the password; `secrets` (the password) are redacted all
/// the same, the user name is kept.
pub(crate) fn parse_error(err: oracle::Error, what: &str, secrets: &[&str]) -> ConnectorError {
    let db = err.db_error();
    let message = db
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| err.to_string());
    let ora = prefixed_number(&message, "ORA-")
        .or_else(|| err.oci_code())
        .or_else(|| db.map(|d| d.code()).filter(|c| *c > 0));
    let dpi = err.dpi_code().or_else(|| prefixed_number(&message, "DPI-"));
    let message = matih_connector_core::redact_secrets(&message, secrets);
    let (code, retryable) = match (dpi.and_then(dpi_code), ora) {
        (Some(c), _) => (c, c.is_retryable()),
        (None, Some(n)) => ora_code(n),
        (None, None) => (kind_code(err.kind()), false),
    };
    let text = if code == ErrorCode::DriverUnavailable {
        format!("{what}: {message}; {CLIENT_HINT}")
    } else {
        format!("{what}: {message}")
    };
    let mut e = ConnectorError::new(code, text).with_retryable(retryable);
    if let Some(n) = ora {
        e = e.with_context("oraCode", format!("ORA-{n:05}"));
    }
    if let Some(n) = dpi {
        e = e.with_context("dpiCode", format!("DPI-{n:04}"));
    }
    e.with_source(err)
}

fn kind_code(kind: oracle::ErrorKind) -> ErrorCode {
    use oracle::ErrorKind as K;
    match kind {
        K::NullValue | K::ParseError | K::OutOfRange | K::InvalidTypeConversion => {
            ErrorCode::ProtocolError
        }
        K::InternalError => ErrorCode::Internal,
        _ => ErrorCode::SourceError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ORA- messages as Oracle documents them (Database Error Messages).
    #[test]
    fn documented_ora_codes() {
        let cases: &[(&str, ErrorCode)] = &[
            ("ORA-01017: invalid username/password; logon denied", ErrorCode::AuthenticationFailed),
            ("ORA-01017: invalid credential or not authorized; logon denied", ErrorCode::AuthenticationFailed),
            ("ORA-28000: The account is locked.", ErrorCode::AuthenticationFailed),
            ("ORA-28001: the password has expired", ErrorCode::AuthenticationFailed),
            ("ORA-28040: No matching authentication protocol", ErrorCode::AuthenticationFailed),
            ("ORA-01045: user MATIH lacks CREATE SESSION privilege; logon denied", ErrorCode::PermissionDenied),
            ("ORA-01031: insufficient privileges", ErrorCode::PermissionDenied),
            ("ORA-00942: table or view does not exist", ErrorCode::PermissionDenied),
            ("ORA-12514: Cannot connect to database. Service FREEPDB9 is not registered with the listener at host 10.0.0.5 port 1521.", ErrorCode::DatabaseNotFound),
            ("ORA-12505: TNS:listener does not currently know of SID given in connect descriptor", ErrorCode::DatabaseNotFound),
            ("ORA-12541: Cannot connect. No listener at host 10.0.0.5 port 1521.", ErrorCode::ConnectionRefused),
            ("ORA-12543: TNS:destination host unreachable", ErrorCode::ConnectionRefused),
            ("ORA-12545: Connect failed because target host or object does not exist", ErrorCode::DnsResolutionFailed),
            ("ORA-12170: TNS:Connect timeout occurred", ErrorCode::Timeout),
            ("ORA-12535: TNS:operation timed out", ErrorCode::Timeout),
            ("ORA-03156: OCI call timed out", ErrorCode::Timeout),
            ("ORA-01034: ORACLE not available", ErrorCode::RateLimited),
            ("ORA-12519: TNS:no appropriate service handler found", ErrorCode::RateLimited),
            ("ORA-03113: end-of-file on communication channel", ErrorCode::ConnectionClosed),
            ("ORA-29024: Certificate validation failure", ErrorCode::SslHandshakeFailed),
            ("ORA-00904: \"X\": invalid identifier", ErrorCode::SourceError),
        ];
        for (message, want) in cases {
            let n = prefixed_number(message, "ORA-").unwrap();
            assert_eq!(ora_code(n).0, *want, "{message}");
        }
        assert!(ora_code(12541).1 && !ora_code(1017).1);
    }

    #[test]
    fn dpi_codes_and_the_missing_client() {
        assert_eq!(dpi_code(1047), Some(ErrorCode::DriverUnavailable));
        assert_eq!(dpi_code(1067), Some(ErrorCode::Timeout));
        assert_eq!(dpi_code(9999), None);
        let msg = "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object file: No such file or directory\".";
        assert_eq!(prefixed_number(msg, "DPI-"), Some(1047));
        assert!(CLIENT_HINT.contains("Instant Client") && CLIENT_HINT.contains("LD_LIBRARY_PATH"));
    }

    #[test]
    fn crate_errors_by_kind() {
        let e = parse_error(
            oracle::Error::new(oracle::ErrorKind::NullValue, "NULL"),
            "reading",
            &[],
        );
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        let e = parse_error(
            oracle::Error::new(
                oracle::ErrorKind::Other,
                "ORA-01017: invalid username/password; logon denied for SCOTT",
            ),
            "connecting",
            &["SCOTT"],
        );
        assert_eq!(e.code(), ErrorCode::AuthenticationFailed);
        assert_eq!(e.context_value("oraCode"), Some("ORA-01017"));
        assert!(!e.message().contains("SCOTT"));
    }
}
