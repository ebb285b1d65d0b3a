//! The one place Azure Blob failures become [`ConnectorError`]s: Blob service
//! error codes (`x-ms-error-code`, the XML `<Code>`) through the core HTTP
//! client's refine hook, and Microsoft Entra ID's `AADSTS` codes on top of the
//! core token source's OAuth2 mapping. Transport failures are mapped by the
//! core client.

use matih_connector_core::http::StatusFailure;
use matih_connector_core::{ConnectorError, ErrorCode};

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

/// A Blob service error answer: `x-ms-error-code` (else the body's `<Code>`)
/// decides, the status when it is unknown; `azureErrorCode` in the context.
pub(crate) fn refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    let status = f.status.as_u16();
    let header = f
        .headers
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(100).collect::<String>());
    let text = String::from_utf8_lossy(f.body);
    let code_text = header
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
    // AuthorizationFailure where Azure says AuthenticationFailed; its message
    // tells the two apart.
    if code_text.as_deref() == Some("AuthorizationFailure")
        && message
            .as_deref()
            .is_some_and(|m| m.starts_with("Server failed to authenticate"))
    {
        code = ErrorCode::AuthenticationFailed;
    }
    let mut detail = match (&code_text, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        (None, Some(m)) => m,
        (None, None) => String::new(),
    };
    if code_text.as_deref() == Some("InvalidHeaderValue") {
        detail.push_str("; the service may not support API version ");
        detail.push_str(crate::config::API_VERSION);
    }
    let mut err = f.error(code, Some(detail));
    if let Some(c) = code_text {
        err = err.with_context("azureErrorCode", c);
    }
    Some(err)
}

/// A token endpoint refusal as the core mapped it (OAuth2 `error`, status),
/// refined by Entra ID's `AADSTS<n>` code at the start of the description:
/// a missing tenant is the configuration's fault, a bad secret or unknown
/// application the credentials'. The code is kept as `aadsts`.
pub(crate) fn token_error(e: ConnectorError) -> ConnectorError {
    if e.context_value("oauthError").is_none() && !e.message().contains("token endpoint answered") {
        return e;
    }
    let Some(n) = e.message().split("AADSTS").nth(1).and_then(|t| {
        let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    }) else {
        return e;
    };
    let code = match n {
        // Tenant not found / not a valid tenant.
        90002 | 900023 | 90013 => ErrorCode::InvalidConfiguration,
        7000215 | 7000222 | 700016 | 50034 | 50126 => ErrorCode::AuthenticationFailed,
        _ => e.code(),
    };
    let mut out = ConnectorError::new(code, e.message()).with_retryable(e.is_retryable());
    for (k, v) in e.context() {
        out = out.with_context(k, v);
    }
    out.with_context("aadsts", n)
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
    use matih_connector_core::http::header::HeaderMap;
    use matih_connector_core::http::StatusCode;

    fn status(status: u16, header: Option<&str>, body: &str) -> ConnectorError {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert("x-ms-error-code", h.parse().unwrap());
        }
        let st = StatusCode::from_u16(status).unwrap();
        refine(&StatusFailure::new(
            st,
            &headers,
            body.as_bytes(),
            "listing containers",
        ))
        .unwrap()
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

    /// Microsoft Entra ID token endpoint errors (client credentials grant),
    /// as the core token source words them, refined by their AADSTS code.
    #[test]
    fn token_endpoint_errors() {
        let core = |code: ErrorCode, oauth: &str, desc: &str| {
            ConnectorError::new(
                code,
                format!("POST token: token endpoint answered HTTP 400 ({oauth}): {desc}"),
            )
            .with_context("oauthError", oauth)
        };
        let cases = [
            (
                core(ErrorCode::AuthenticationFailed, "invalid_client", "AADSTS7000215: Invalid client secret provided."),
                ErrorCode::AuthenticationFailed,
                Some("7000215"),
            ),
            (
                core(ErrorCode::AuthenticationFailed, "unauthorized_client", "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'."),
                ErrorCode::AuthenticationFailed,
                Some("700016"),
            ),
            (
                core(ErrorCode::PermissionDenied, "invalid_grant", "AADSTS90002: Tenant 'nope' not found."),
                ErrorCode::InvalidConfiguration,
                Some("90002"),
            ),
            (
                core(ErrorCode::PermissionDenied, "invalid_scope", "AADSTS70011: The provided request must include a 'scope' input parameter."),
                ErrorCode::PermissionDenied,
                Some("70011"),
            ),
            (
                core(ErrorCode::RateLimited, "temporarily_unavailable", "busy"),
                ErrorCode::RateLimited,
                None,
            ),
        ];
        for (e, want, aadsts) in cases {
            let text = e.message().to_owned();
            let got = token_error(e);
            assert_eq!(got.code(), want, "{text}");
            assert_eq!(got.context_value("aadsts"), aadsts, "{text}");
            assert!(got.context_value("oauthError").is_some());
        }
        // Errors that are not the token endpoint's pass unchanged.
        let other = ConnectorError::new(ErrorCode::Timeout, "GET x: AADSTS90002 in a URL");
        assert_eq!(token_error(other).code(), ErrorCode::Timeout);
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
