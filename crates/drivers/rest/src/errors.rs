//! REST failures. HTTP statuses, transport failures (TLS, refused, timeouts,
//! egress), bodies that are too large or not JSON, and token endpoint
//! refusals are mapped once, in `matih_connector_core::http`: a REST API has no
//! vendor error format to refine them with. What is the REST driver's own is a
//! response that is JSON but not the shape its configuration describes.

use matih_connector_core::{ConnectorError, ErrorCode};

/// A response whose payload does not have the configured shape (no records
/// at `recordsPath`, a document that is not OpenAPI): this endpoint's fault,
/// not the connection's, so discovery reports it on the table.
pub(crate) fn payload_error(what: &str, why: &str) -> ConnectorError {
    ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: {why}")).with_retryable(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_errors_are_protocol_errors() {
        let e = payload_error(
            "GET https://api/x",
            "recordsPath /data is not in the response",
        );
        assert_eq!(
            (e.code(), e.is_retryable()),
            (ErrorCode::ProtocolError, false)
        );
        assert!(e.message().starts_with("GET https://api/x: recordsPath"));
    }
}
