//! Kafka failures → connector error codes, in one place.
//!
//! librdkafka reports most connection problems as a generic
//! `AllBrokersDown`/`BrokerTransportFailure`/timeout on the call, with the
//! cause only in its error callback and log lines. The connection's context
//! captures those ([`Captured`]) and [`parse_error`] reads the cause from
//! them when the call's own code is not specific.

use std::sync::Mutex;

use matih_connector_core::{ConnectorError, ErrorCode};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

/// Error callbacks and warning-or-worse log lines librdkafka emitted, newest
/// last, bounded; and a signal when one of them is a broker's or a TLS
/// peer's final word (see [`is_decisive`]).
#[derive(Debug, Default)]
pub(crate) struct Captured {
    lines: Mutex<Vec<String>>,
    decisive: tokio::sync::Notify,
}

impl Captured {
    const MAX: usize = 64;

    pub fn push(&self, line: String) {
        let decisive = code_for_log(&line).is_some_and(is_decisive);
        if let Ok(mut l) = self.lines.lock() {
            if l.len() >= Self::MAX {
                l.remove(0);
            }
            l.push(line);
        }
        if decisive {
            self.decisive.notify_one();
        }
    }

    /// Resolves once a decisive line has been captured (also when it came
    /// before the call).
    pub async fn decisive(&self) {
        self.decisive.notified().await
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// The code for a librdkafka or broker error code (broker codes are the
/// Kafka protocol's, librdkafka's own are negative).
pub(crate) fn code_for(code: C) -> ErrorCode {
    match code {
        C::Authentication | C::SaslAuthenticationFailed | C::IllegalSASLState => {
            ErrorCode::AuthenticationFailed
        }
        C::UnsupportedSASLMechanism => ErrorCode::Unsupported,
        C::SSL => ErrorCode::SslHandshakeFailed,
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed => ErrorCode::PermissionDenied,
        C::UnknownTopicOrPartition | C::UnknownTopic | C::UnknownPartition => {
            ErrorCode::DatabaseNotFound
        }
        C::OperationTimedOut | C::RequestTimedOut | C::TimedOutQueue => ErrorCode::Timeout,
        C::Resolve => ErrorCode::DnsResolutionFailed,
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::BrokerNotAvailable
        | C::NetworkException => ErrorCode::ConnectionRefused,
        C::ThrottlingQuotaExceeded | C::PolicyViolation => ErrorCode::RateLimited,
        C::UnsupportedVersion | C::UnsupportedFeature => ErrorCode::Unsupported,
        C::InvalidArgument | C::InvalidConfig | C::InvalidRequest => {
            ErrorCode::InvalidConfiguration
        }
        C::BadMessage | C::BadCompression | C::InvalidMessage => ErrorCode::ProtocolError,
        _ => ErrorCode::SourceError,
    }
}

/// Causes that retrying the same broker cannot change: librdkafka keeps
/// retrying until the call's timeout, but the answer is already known.
pub(crate) fn is_decisive(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AuthenticationFailed | ErrorCode::SslHandshakeFailed | ErrorCode::Unsupported
    )
}

/// The cause librdkafka's log and error callback lines name, if any. Lines
/// as librdkafka 2.x prints them.
pub(crate) fn code_for_log(line: &str) -> Option<ErrorCode> {
    let l = line.to_ascii_lowercase();
    if l.contains("unsupported sasl mechanism") {
        // The broker offers no SASL mechanism the client was configured for.
        Some(ErrorCode::Unsupported)
    } else if l.contains("sasl authentication error")
        || l.contains("authentication failed")
        || l.contains("sasl_authentication_failed")
    {
        Some(ErrorCode::AuthenticationFailed)
    } else if l.contains("ssl handshake failed")
        || l.contains("certificate verify failed")
        || l.contains("ssl_handshake")
        || l.contains("broker certificate could not be verified")
    {
        Some(ErrorCode::SslHandshakeFailed)
    } else if l.contains("connection refused") {
        Some(ErrorCode::ConnectionRefused)
    } else if l.contains("failed to resolve") {
        Some(ErrorCode::DnsResolutionFailed)
    } else if l.contains("timed out") || l.contains("timeout") {
        Some(ErrorCode::Timeout)
    } else if l.contains("disconnected") || l.contains("connection reset") {
        Some(ErrorCode::ConnectionClosed)
    } else {
        None
    }
}

/// The one mapping from a librdkafka failure to a connector error. Generic
/// transport and timeout codes are refined by the captured log lines.
pub(crate) fn parse_error(err: KafkaError, what: &str, captured: &[String]) -> ConnectorError {
    let native = err.rdkafka_error_code();
    let mut code = match native {
        Some(c) => code_for(c),
        None => match &err {
            KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
                ErrorCode::InvalidConfiguration
            }
            _ => ErrorCode::SourceError,
        },
    };
    let generic = matches!(
        code,
        ErrorCode::ConnectionRefused | ErrorCode::Timeout | ErrorCode::SourceError
    );
    let cause = captured
        .iter()
        .rev()
        .find_map(|l| code_for_log(l).map(|c| (c, l)));
    let mut message = format!("{what}: {err}");
    if generic {
        if let Some((c, line)) = cause {
            // A timeout whose last log line is another timeout stays a timeout.
            code = c;
            message = format!("{message} ({})", line.chars().take(300).collect::<String>());
        }
    }
    let mut e = ConnectorError::new(code, message);
    if let Some(c) = native {
        e = e.with_context("kafkaCode", format!("{c:?} ({})", c as i32));
    }
    e.with_source(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Broker error codes from the Kafka protocol's error table and
    /// librdkafka's local codes (rdkafka.h).
    #[test]
    fn error_codes() {
        let cases = [
            (
                C::SaslAuthenticationFailed,
                58,
                ErrorCode::AuthenticationFailed,
            ),
            (C::TopicAuthorizationFailed, 29, ErrorCode::PermissionDenied),
            (C::GroupAuthorizationFailed, 30, ErrorCode::PermissionDenied),
            (
                C::ClusterAuthorizationFailed,
                31,
                ErrorCode::PermissionDenied,
            ),
            (C::UnknownTopicOrPartition, 3, ErrorCode::DatabaseNotFound),
            (C::RequestTimedOut, 7, ErrorCode::Timeout),
            (C::UnsupportedSASLMechanism, 33, ErrorCode::Unsupported),
            (C::IllegalSASLState, 34, ErrorCode::AuthenticationFailed),
            (C::ThrottlingQuotaExceeded, 89, ErrorCode::RateLimited),
            (
                C::BrokerTransportFailure,
                -195,
                ErrorCode::ConnectionRefused,
            ),
            (C::Resolve, -193, ErrorCode::DnsResolutionFailed),
            (C::AllBrokersDown, -187, ErrorCode::ConnectionRefused),
            (C::OperationTimedOut, -185, ErrorCode::Timeout),
            (C::SSL, -181, ErrorCode::SslHandshakeFailed),
            (C::Authentication, -169, ErrorCode::AuthenticationFailed),
        ];
        for (c, n, code) in cases {
            assert_eq!(c as i32, n, "{c:?}");
            assert_eq!(code_for(c), code, "{c:?}");
            let e = parse_error(KafkaError::MetadataFetch(c), "fetching metadata", &[]);
            assert_eq!(e.code(), code);
            assert!(e
                .context_value("kafkaCode")
                .unwrap()
                .contains(&n.to_string()));
        }
    }

    /// Generic failures take their cause from what librdkafka logged.
    #[test]
    fn causes_from_log_lines() {
        let cases = [
            ("FAIL: sasl_plaintext://127.0.0.1:9092/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256 (after 3ms in state AUTH_REQ)", ErrorCode::AuthenticationFailed),
            ("FAIL: ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (after 5ms in state SSL_HANDSHAKE)", ErrorCode::SslHandshakeFailed),
            ("FAIL: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)", ErrorCode::ConnectionRefused),
            ("FAIL: kafka.example.invalid:9092/bootstrap: Failed to resolve 'kafka.example.invalid:9092': Name or service not known (after 2ms in state CONNECT)", ErrorCode::DnsResolutionFailed),
            ("REQTMOUT: 127.0.0.1:5/bootstrap: Timed out ApiVersionRequest in flight (after 1000ms, timeout #0)", ErrorCode::Timeout),
            // As tansu 0.6 is answered (tests/kafka.rs runs both against it).
            ("FAIL: sasl_plaintext://127.0.0.1:35245/bootstrap: SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN (after 0ms in state AUTH_HANDSHAKE)", ErrorCode::Unsupported),
            ("FAIL: sasl_plaintext://127.0.0.1:44103/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with unknown-user (after 31ms in state AUTH_REQ)", ErrorCode::AuthenticationFailed),
        ];
        for (line, code) in cases {
            assert_eq!(code_for_log(line), Some(code), "{line}");
            let e = parse_error(
                KafkaError::MetadataFetch(C::AllBrokersDown),
                "connecting",
                &[line.to_owned()],
            );
            assert_eq!(e.code(), code, "{line}");
        }
        // A specific code is not overridden by a log line.
        let e = parse_error(
            KafkaError::MetadataFetch(C::TopicAuthorizationFailed),
            "x",
            &["Connection refused".into()],
        );
        assert_eq!(e.code(), ErrorCode::PermissionDenied);
    }
}
