//! The GraphQL-specific part of failure mapping: GraphQL `errors` arrays (by
//! `extensions.code`), in a 200 answer or beside an HTTP error status, and
//! answers with neither data nor errors. Statuses, transport failures (TLS,
//! refused, timeouts, egress), size limits and OAuth2 token refusals are
//! mapped once, in `matih_connector_core::http`.

use matih_connector_core::http::StatusFailure;
use matih_connector_core::{ConnectorError, ErrorCode};
use serde_json::Value;

/// An HTTP error status whose body is a GraphQL response: the `errors`
/// array's code is more precise than the status when it has one, and its
/// messages say more than the status line. Other bodies keep the generic
/// mapping.
pub(crate) fn refine_status(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    let errors = serde_json::from_slice::<graphql_client::Response<Value>>(f.body)
        .ok()?
        .errors
        .filter(|e| !e.is_empty())?;
    let from_gql = graphql_code(&errors).filter(|(c, _)| *c != ErrorCode::SourceError);
    let code = from_gql
        .as_ref()
        .map(|(c, _)| *c)
        .unwrap_or_else(|| matih_connector_core::http::status_code(f.status.as_u16()));
    let mut err = f.error(code, Some(graphql_messages(&errors)));
    if let Some((_, Some(native))) = from_gql {
        err = err.with_context("graphqlCode", native);
    }
    Some(err)
}

/// A successful HTTP answer carrying an `errors` array.
pub(crate) fn graphql_error(errors: &[graphql_client::Error], what: &str) -> ConnectorError {
    let (code, native) = graphql_code(errors).unwrap_or((ErrorCode::SourceError, None));
    let mut err = ConnectorError::new(code, format!("{what}: {}", graphql_messages(errors)))
        .with_retryable(code.is_retryable());
    if let Some(n) = native {
        err = err.with_context("graphqlCode", n);
    }
    err
}

/// An answer with neither `data` nor `errors`, or `data` of another shape.
pub(crate) fn no_data(what: &str, shape: Option<serde_json::Error>) -> ConnectorError {
    match shape {
        None => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response has neither data nor errors"),
        ),
        Some(e) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response's data is not the shape expected: {e}"),
        )
        .with_source(e),
    }
    .with_retryable(false)
}

/// The code of a GraphQL `errors` array: the first error whose
/// `extensions.code` (Apollo, async-graphql, Hasura) or `type` (GitHub) is
/// known, else what the message says about introspection; with the native code.
pub(crate) fn graphql_code(
    errors: &[graphql_client::Error],
) -> Option<(ErrorCode, Option<String>)> {
    let native = |e: &graphql_client::Error| -> Option<String> {
        let ext = e.extensions.as_ref()?;
        ext.get("code")
            .or_else(|| ext.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for e in errors {
        if let Some(n) = native(e) {
            let code = match n.to_ascii_uppercase().replace('-', "_").as_str() {
                "UNAUTHENTICATED"
                | "UNAUTHORIZED"
                | "INVALID_JWT"
                | "INVALID_TOKEN"
                | "JWT_INVALID_CLAIMS"
                | "INVALID_HEADERS"
                | "AUTHENTICATION_ERROR" => ErrorCode::AuthenticationFailed,
                "FORBIDDEN"
                | "ACCESS_DENIED"
                | "PERMISSION_ERROR"
                | "INSUFFICIENT_SCOPES"
                | "ACCESS_DENIED_ERROR" => ErrorCode::PermissionDenied,
                "RATE_LIMITED" | "TOO_MANY_REQUESTS" | "THROTTLED" | "MAX_COST_EXCEEDED" => {
                    ErrorCode::RateLimited
                }
                "GRAPHQL_PARSE_FAILED"
                | "GRAPHQL_VALIDATION_FAILED"
                | "BAD_USER_INPUT"
                | "VALIDATION_FAILED"
                | "PARSE_FAILED"
                | "PERSISTED_QUERY_NOT_FOUND" => {
                    if mentions_introspection(&e.message) {
                        ErrorCode::Unsupported
                    } else {
                        ErrorCode::ProtocolError
                    }
                }
                "NOT_FOUND" => ErrorCode::DatabaseNotFound,
                "TIMEOUT" | "GATEWAY_TIMEOUT" => ErrorCode::Timeout,
                _ => continue,
            };
            return Some((code, Some(n)));
        }
    }
    errors
        .iter()
        .find(|e| mentions_introspection(&e.message))
        .map(|_| (ErrorCode::Unsupported, None))
        .or(Some((
            ErrorCode::SourceError,
            errors.iter().find_map(native),
        )))
}

/// "GraphQL introspection is not allowed", "introspection has been
/// disabled", or async-graphql's `Unknown field "__schema"` when it is off.
fn mentions_introspection(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("introspection") || m.contains("__schema") || m.contains("__type")
}

/// The errors' messages on one line, capped.
fn graphql_messages(errors: &[graphql_client::Error]) -> String {
    let joined = errors
        .iter()
        .take(3)
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let one_line = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::http::header::HeaderMap;
    use matih_connector_core::http::StatusCode;

    fn status(code: u16, body: &str) -> ConnectorError {
        let headers = HeaderMap::new();
        let f = StatusFailure::new(
            StatusCode::from_u16(code).unwrap(),
            &headers,
            body.as_bytes(),
            "POST /graphql",
        );
        refine_status(&f).unwrap_or_else(|| f.generic())
    }

    fn gql(body: &str) -> Vec<graphql_client::Error> {
        serde_json::from_str::<graphql_client::Response<Value>>(body)
            .unwrap()
            .errors
            .unwrap()
    }

    /// Error payloads as Apollo Server, async-graphql, Hasura, GitHub and
    /// Shopify document them.
    #[test]
    fn graphql_errors_map_by_extension_code() {
        let cases: &[(&str, ErrorCode, Option<&str>)] = &[
            (
                r#"{"errors":[{"message":"You must be logged in","extensions":{"code":"UNAUTHENTICATED"}}],"data":null}"#,
                ErrorCode::AuthenticationFailed,
                Some("UNAUTHENTICATED"),
            ),
            (
                r#"{"errors":[{"message":"Not allowed","locations":[{"line":1,"column":3}],"path":["secret"],"extensions":{"code":"FORBIDDEN"}}],"data":{"secret":null}}"#,
                ErrorCode::PermissionDenied,
                Some("FORBIDDEN"),
            ),
            (
                r#"{"errors":[{"message":"GraphQL introspection is not allowed by Apollo Server, but the query contained __schema or __type.","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#,
                ErrorCode::Unsupported,
                Some("GRAPHQL_VALIDATION_FAILED"),
            ),
            (
                r#"{"errors":[{"message":"Syntax Error: Expected Name, found <EOF>.","extensions":{"code":"GRAPHQL_PARSE_FAILED"}}]}"#,
                ErrorCode::ProtocolError,
                Some("GRAPHQL_PARSE_FAILED"),
            ),
            (
                r#"{"errors":[{"extensions":{"path":"$","code":"invalid-jwt"},"message":"Could not verify JWT: JWSError JWSInvalidSignature"}]}"#,
                ErrorCode::AuthenticationFailed,
                Some("invalid-jwt"),
            ),
            (
                r#"{"errors":[{"extensions":{"path":"$.selectionSet.users","code":"access-denied"},"message":"field 'users' not found in type: 'query_root'"}]}"#,
                ErrorCode::PermissionDenied,
                Some("access-denied"),
            ),
            (
                r#"{"errors":[{"type":"INSUFFICIENT_SCOPES","message":"Your token has not been granted the required scopes","extensions":{"type":"INSUFFICIENT_SCOPES"}}]}"#,
                ErrorCode::PermissionDenied,
                Some("INSUFFICIENT_SCOPES"),
            ),
            (
                r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}]}"#,
                ErrorCode::RateLimited,
                Some("THROTTLED"),
            ),
            (
                r#"{"errors":[{"message":"Unknown field \"__schema\" on type \"Query\".","locations":[{"line":1,"column":20}]}]}"#,
                ErrorCode::Unsupported,
                None,
            ),
            (
                r#"{"errors":[{"message":"something broke","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#,
                ErrorCode::SourceError,
                Some("INTERNAL_SERVER_ERROR"),
            ),
            (
                r#"{"errors":[{"message":"plain failure"}]}"#,
                ErrorCode::SourceError,
                None,
            ),
        ];
        for (body, want, native) in cases {
            let e = graphql_error(&gql(body), "POST /graphql");
            assert_eq!(e.code(), *want, "{body}");
            assert_eq!(e.context_value("graphqlCode"), *native, "{body}");
        }
    }

    #[test]
    fn error_statuses_with_graphql_bodies() {
        // Apollo answers validation failures with 400 and an errors array.
        let body = r#"{"errors":[{"message":"GraphQL introspection is not allowed","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]}"#;
        let e = status(400, body);
        assert_eq!(e.code(), ErrorCode::Unsupported);
        assert!(
            e.message().contains("introspection is not allowed"),
            "{}",
            e.message()
        );
        let body =
            r#"{"errors":[{"message":"Bad token","extensions":{"code":"UNAUTHENTICATED"}}]}"#;
        assert_eq!(status(400, body).code(), ErrorCode::AuthenticationFailed);
        let body = r#"{"errors":[{"message":"boom"}]}"#;
        assert_eq!(status(503, body).code(), ErrorCode::SourceError);
        assert_eq!(status(401, body).code(), ErrorCode::AuthenticationFailed);
    }
}
