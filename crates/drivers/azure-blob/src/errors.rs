//! The one place Azure Blob failures become [`ConnectorError`]s: storage
//! error codes (the `x-ms-error-code` header, or `<Error><Code>` in the XML
//! body), Microsoft Entra ID token errors (`error` + `AADSTS` codes), HTTP
//! statuses, and reqwest's transport failures (TLS, I/O, DNS, timeouts).

use std::error::Error as StdError;
use std::io;

use matih_connector_core::{find_source, ConnectorError, ErrorCode};
use serde_json::Value;

#[derive(Debug)]
pub(crate) enum Failure {
    /// The Blob service answered with an error status.
    Status {
        status: u16,
        error_code: Option<String>,
        body: Vec<u8>,
    },
    /// The token endpoint refused the client credentials.
    Token {
        status: u16,
        body: Vec<u8>,
    },
    Http(reqwest::Error),
    /// A listing that is not the XML expected.
    Malformed(String),
    TooLarge {
        limit: u64,
    },
}

/// Blob service error code → our code. Codes are those of the Blob service
/// and common REST error code tables.
pub(crate) fn storage_code(code: &str) -> Option<ErrorCode> {
    Some(match code {
        "AuthenticationFailed"
        | "InvalidAuthenticationInfo"
        | "NoAuthenticationInformation"
        | "InvalidAuthenticationInformation" => ErrorCode::AuthenticationFailed,
        "AuthorizationFailure"
        | "AuthorizationPermissionMismatch"
        | "AuthorizationResourceTypeMismatch"
        | "AuthorizationServiceMismatch"
        | "AuthorizationProtocolMismatch"
        | "AuthorizationSourceIPMismatch"
        | "InsufficientAccountPermissions"
        | "AccountIsDisabled"
        | "KeyBasedAuthenticationNotPermitted"
        | "PublicAccessNotPermitted" => ErrorCode::PermissionDenied,
        "ContainerNotFound"
        | "ResourceNotFound"
        | "BlobNotFound"
        | "ContainerBeingDeleted"
        | "AccountNotFound" => ErrorCode::DatabaseNotFound,
        "ServerBusy"
        | "IngressOverAccountLimit"
        | "EgressOverAccountLimit"
        | "TpsOverAccountLimit" => ErrorCode::RateLimited,
        "OperationTimedOut" => ErrorCode::Timeout,
        "InvalidHeaderValue"
        | "InvalidQueryParameterValue"
        | "InvalidResourceName"
        | "InvalidUri"
        | "OutOfRangeQueryParameterValue"
        | "UnsupportedHeader"
        | "UnsupportedQueryParameter"
        | "InvalidRange"
        | "MissingRequiredHeader"
        | "MissingRequiredQueryParameter" => ErrorCode::InvalidConfiguration,
        "UnsupportedHttpVerb" | "FeatureVersionMismatch" => ErrorCode::Unsupported,
        "InternalError" => ErrorCode::SourceError,
        _ => return None,
    })
}

pub(crate) fn status_code(status: u16) -> ErrorCode {
    match status {
        401 => ErrorCode::AuthenticationFailed,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::DatabaseNotFound,
        400 | 416 => ErrorCode::InvalidConfiguration,
        408 | 504 => ErrorCode::Timeout,
        429 | 503 => ErrorCode::RateLimited,
        501 => ErrorCode::Unsupported,
        _ => ErrorCode::SourceError,
    }
}

fn retryable(code: ErrorCode, status: u16) -> bool {
    code.is_retryable() || matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The text of the first `<name …>…</name>` element, entities decoded.
pub(crate) fn xml_text(doc: &str, name: &str) -> Option<String> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut from = 0;
    loop {
        let at = from + doc[from..].find(&open)?;
        let rest = &doc[at + open.len()..];
        match rest.chars().next() {
            Some('>') | Some(' ') => {
                let gt = rest.find('>')?;
                let attrs = &rest[..gt];
                if attrs.ends_with('/') {
                    return Some(String::new());
                }
                let body = &rest[gt + 1..];
                let end = body.find(&close)?;
                let text = decode_entities(&body[..end]);
                // Names with characters XML cannot carry come percent-encoded.
                if attrs.contains("Encoded=\"true\"") {
                    return Some(percent_decode(&text));
                }
                return Some(text);
            }
            _ => from = at + open.len(),
        }
    }
}

/// Each `<name>…</name>` element's inner text, raw.
pub(crate) fn xml_elements<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(semi) = tail.find(';').filter(|n| *n <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let ent = &tail[1..semi];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Maps a failure. `what` says what we were doing and holds no secret.
pub(crate) fn parse_error(failure: Failure, what: &str) -> ConnectorError {
    match failure {
        Failure::Status {
            status,
            error_code,
            body,
        } => {
            let text = String::from_utf8_lossy(&body);
            let code_text = error_code
                .or_else(|| xml_text(&text, "Code"))
                .filter(|c| !c.is_empty());
            let message = xml_text(&text, "Message")
                .map(|m| one_line(m.lines().next().unwrap_or_default()))
                .filter(|m| !m.is_empty());
            let mut code = code_text
                .as_deref()
                .and_then(storage_code)
                .unwrap_or_else(|| status_code(status));
            // Azurite answers a bad Shared Key or SAS signature with
            // AuthorizationFailure where Azure says AuthenticationFailed; its
            // message tells the two apart.
            if code_text.as_deref() == Some("AuthorizationFailure")
                && message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("Server failed to authenticate"))
            {
                code = ErrorCode::AuthenticationFailed;
            }
            let mut msg = format!("{what}: HTTP {status}");
            if let Some(c) = &code_text {
                msg.push_str(&format!(" {c}"));
            }
            if let Some(m) = message {
                msg.push_str(&format!(": {m}"));
            }
            if code_text.as_deref() == Some("InvalidHeaderValue") {
                msg.push_str("; the service may not support API version ");
                msg.push_str(crate::config::API_VERSION);
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status)
                .with_retryable(retryable(code, status));
            if let Some(c) = code_text {
                err = err.with_context("azureErrorCode", c);
            }
            err
        }
        Failure::Token { status, body } => {
            let v = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
            let oauth = v.get("error").and_then(Value::as_str).map(str::to_owned);
            let aadsts = v
                .get("error_codes")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_u64);
            let code = match (aadsts, oauth.as_deref()) {
                // Tenant not found / not a valid tenant.
                (Some(90002 | 900023 | 90013), _) => ErrorCode::InvalidConfiguration,
                (Some(7000215 | 7000222 | 700016 | 50034 | 50126), _) => {
                    ErrorCode::AuthenticationFailed
                }
                (_, Some("invalid_client" | "unauthorized_client" | "invalid_grant")) => {
                    ErrorCode::AuthenticationFailed
                }
                (_, Some("invalid_scope" | "access_denied")) => ErrorCode::PermissionDenied,
                (_, Some("invalid_request" | "unsupported_grant_type")) => {
                    ErrorCode::InvalidConfiguration
                }
                (_, Some("temporarily_unavailable")) => ErrorCode::RateLimited,
                _ => match status_code(status) {
                    ErrorCode::DatabaseNotFound => ErrorCode::InvalidConfiguration,
                    c => c,
                },
            };
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .map(|d| one_line(d.lines().next().unwrap_or_default()));
            let mut msg = format!("{what}: token endpoint answered HTTP {status}");
            if let Some(e) = &oauth {
                msg.push_str(&format!(" {e}"));
            }
            if let Some(d) = desc.filter(|d| !d.is_empty()) {
                msg.push_str(&format!(": {d}"));
            }
            let mut err = ConnectorError::new(code, msg)
                .with_context("httpStatus", status)
                .with_retryable(retryable(code, status));
            if let Some(e) = oauth {
                err = err.with_context("oauthError", e);
            }
            if let Some(a) = aadsts {
                err = err.with_context("aadsts", a);
            }
            err
        }
        Failure::Http(e) => reqwest_error(e, what),
        Failure::Malformed(detail) => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: unexpected response: {detail}"),
        )
        .with_retryable(false),
        Failure::TooLarge { limit } => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("{what}: the response exceeds {limit} bytes"),
        )
        .with_context("limitBytes", limit)
        .with_retryable(false),
    }
}

fn reqwest_error(err: reqwest::Error, what: &str) -> ConnectorError {
    if let Some(ours) = find_source::<ConnectorError>(&err) {
        return ConnectorError::new(ours.code(), format!("{what}: {}", ours.message()))
            .with_source(err);
    }
    if let Some(t) = find_source::<rustls::Error>(&err) {
        return ConnectorError::new(ErrorCode::SslHandshakeFailed, format!("{what}: TLS: {t}"))
            .with_source(err);
    }
    if err.is_timeout() {
        return ConnectorError::new(ErrorCode::Timeout, format!("{what}: timed out"))
            .with_source(err);
    }
    let detail = chain(&err);
    let code = if let Some(ioe) = innermost_io(&err) {
        ErrorCode::from_io_kind(ioe.kind())
    } else if err.is_connect() {
        ErrorCode::ConnectionRefused
    } else if err.is_decode() {
        ErrorCode::ProtocolError
    } else if err.is_builder() {
        ErrorCode::InvalidConfiguration
    } else if detail.contains("invalid HTTP") || detail.contains("parse") {
        ErrorCode::ProtocolError
    } else {
        ErrorCode::ConnectionClosed
    };
    ConnectorError::new(code, format!("{what}: {detail}")).with_source(err)
}

fn innermost_io<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut found = None;
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    let mut hops = 0;
    while let (Some(e), true) = (cur, hops < 32) {
        hops += 1;
        cur = match e.downcast_ref::<io::Error>() {
            Some(io) => {
                found = Some(io);
                io.get_ref().map(|i| i as &(dyn StdError + 'static))
            }
            None => e.source(),
        };
    }
    found
}

fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    let mut hops = 0;
    while let (Some(e), true) = (cur, hops < 16) {
        hops += 1;
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    one_line(&parts.join(": "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, header: Option<&str>, body: &str) -> ConnectorError {
        parse_error(
            Failure::Status {
                status,
                error_code: header.map(str::to_owned),
                body: body.as_bytes().to_vec(),
            },
            "listing containers",
        )
    }

    fn xml(code: &str, message: &str) -> String {
        format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:b6e4c5d0-001e-0012-1c2f-0aa1f7000000\nTime:2024-01-01T00:00:00.0000000Z</Message></Error>")
    }

    /// Error bodies and headers as the Blob service documents them, and as
    /// Azurite sends them.
    #[test]
    fn documented_error_bodies_map_to_codes() {
        let cases: Vec<(u16, Option<&str>, String, ErrorCode, &str)> = vec![
            (403, Some("AuthenticationFailed"), xml("AuthenticationFailed", "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."), ErrorCode::AuthenticationFailed, "AuthenticationFailed"),
            (403, None, xml("AuthenticationFailed", "Signature not valid in the specified time frame"), ErrorCode::AuthenticationFailed, "AuthenticationFailed"),
            (400, Some("InvalidAuthenticationInfo"), xml("InvalidAuthenticationInfo", "Authentication information is not given in the correct format."), ErrorCode::AuthenticationFailed, "InvalidAuthenticationInfo"),
            (401, Some("NoAuthenticationInformation"), xml("NoAuthenticationInformation", "Server failed to authenticate the request. Please refer to the information in the www-authenticate header."), ErrorCode::AuthenticationFailed, "NoAuthenticationInformation"),
            (403, Some("AuthorizationPermissionMismatch"), xml("AuthorizationPermissionMismatch", "This request is not authorized to perform this operation using this permission."), ErrorCode::PermissionDenied, "AuthorizationPermissionMismatch"),
            (403, Some("AuthorizationFailure"), xml("AuthorizationFailure", "This request is not authorized to perform this operation."), ErrorCode::PermissionDenied, "AuthorizationFailure"),
            // Azurite's answer to a wrong account key.
            (403, Some("AuthorizationFailure"), xml("AuthorizationFailure", "Server failed to authenticate the request. Make sure the value of the Authorization header is formed correctly including the signature."), ErrorCode::AuthenticationFailed, "AuthorizationFailure"),
            (403, Some("AuthorizationResourceTypeMismatch"), xml("AuthorizationResourceTypeMismatch", "This request is not authorized to perform this operation using this resource type."), ErrorCode::PermissionDenied, "AuthorizationResourceTypeMismatch"),
            (403, Some("KeyBasedAuthenticationNotPermitted"), xml("KeyBasedAuthenticationNotPermitted", "Key based authentication is not permitted on this storage account."), ErrorCode::PermissionDenied, "KeyBasedAuthenticationNotPermitted"),
            (404, Some("ContainerNotFound"), xml("ContainerNotFound", "The specified container does not exist."), ErrorCode::DatabaseNotFound, "ContainerNotFound"),
            (404, Some("ResourceNotFound"), xml("ResourceNotFound", "The specified resource does not exist."), ErrorCode::DatabaseNotFound, "ResourceNotFound"),
            (503, Some("ServerBusy"), xml("ServerBusy", "Operations per second is over the account limit."), ErrorCode::RateLimited, "ServerBusy"),
            (500, Some("OperationTimedOut"), xml("OperationTimedOut", "The operation could not be completed within the permitted time."), ErrorCode::Timeout, "OperationTimedOut"),
            (400, Some("InvalidHeaderValue"), xml("InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format."), ErrorCode::InvalidConfiguration, "InvalidHeaderValue"),
            (400, Some("InvalidQueryParameterValue"), xml("InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid."), ErrorCode::InvalidConfiguration, "InvalidQueryParameterValue"),
            (500, Some("InternalError"), xml("InternalError", "The server encountered an internal error."), ErrorCode::SourceError, "InternalError"),
        ];
        for (st, header, body, want, native) in &cases {
            let e = status(*st, *header, body);
            assert_eq!(e.code(), *want, "{st} {body}");
            assert_eq!(e.context_value("azureErrorCode"), Some(*native));
            assert!(!e.message().contains("RequestId"), "{}", e.message());
        }
        // HEAD and bodiless answers: the status decides.
        for (st, want) in [
            (404, ErrorCode::DatabaseNotFound),
            (403, ErrorCode::PermissionDenied),
            (503, ErrorCode::RateLimited),
            (500, ErrorCode::SourceError),
        ] {
            assert_eq!(status(st, None, "").code(), want);
        }
        assert!(status(503, Some("ServerBusy"), "").is_retryable());
        assert!(!status(403, Some("AuthenticationFailed"), "").is_retryable());
        assert!(status(400, Some("InvalidHeaderValue"), "")
            .message()
            .contains("API version"));
    }

    /// Microsoft Entra ID token endpoint errors (client credentials grant).
    #[test]
    fn token_endpoint_errors() {
        let cases: &[(u16, &str, ErrorCode)] = &[
            (
                401,
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.","error_codes":[7000215]}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.","error_codes":[700016]}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'nope' not found.","error_codes":[90002]}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided request must include a 'scope' input parameter.","error_codes":[70011]}"#,
                ErrorCode::PermissionDenied,
            ),
            (429, "", ErrorCode::RateLimited),
            (404, "", ErrorCode::InvalidConfiguration),
        ];
        for (st, body, want) in cases {
            let e = parse_error(
                Failure::Token {
                    status: *st,
                    body: body.as_bytes().to_vec(),
                },
                "POST token",
            );
            assert_eq!(e.code(), *want, "{body}");
        }
    }

    #[test]
    fn xml_helpers() {
        let doc = "<R><Blobs><Blob><Name>a &amp; b</Name></Blob><Blob><Name Encoded=\"true\">x%0Ay</Name></Blob><BlobPrefix><Name>p/</Name></BlobPrefix></Blobs><NextMarker /></R>";
        let blobs = xml_elements(doc, "Blob");
        assert_eq!(blobs.len(), 2);
        assert_eq!(xml_text(blobs[0], "Name").as_deref(), Some("a & b"));
        assert_eq!(xml_text(blobs[1], "Name").as_deref(), Some("x\ny"));
        assert_eq!(xml_text(doc, "NextMarker").as_deref(), Some(""));
        assert_eq!(
            xml_text("<a>&#252;&#xFC;&bogus;</a>", "a").as_deref(),
            Some("üü&bogus;")
        );
        assert_eq!(
            xml_text("<NameX>1</NameX><Name>2</Name>", "Name").as_deref(),
            Some("2")
        );
    }
}
