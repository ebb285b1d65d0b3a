//! What the Google Cloud drivers share (Cargo feature `google`, on top of
//! [`crate::http`]): service account keys, exchanged for access tokens by the
//! core [`TokenSource`] (JWT bearer grant, RS256), and the reading of Google's
//! JSON error bodies. Each driver keeps its own table of `reason`s.

#![warn(missing_docs)]

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::http::{JwtBearer, RsaSigningKey, StatusFailure, TokenSource, Url};
use crate::{ConnectionConfig, ConnectorError, ErrorCode, SecretString};

/// Google's OAuth2 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The fields of a service account key file the drivers use. `Debug` shows the
/// account, never the key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// `type`: `service_account` when present.
    #[serde(rename = "type", default)]
    pub key_type: Option<String>,
    /// The account, the JWT's `iss`.
    pub client_email: String,
    /// The PEM private key.
    #[serde(deserialize_with = "secret")]
    pub private_key: SecretString,
    /// Sent as the JWT's `kid`.
    #[serde(default)]
    pub private_key_id: Option<String>,
    /// The token endpoint the key names.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// The project the account belongs to.
    #[serde(default)]
    pub project_id: Option<String>,
}

/// Reads a private key straight into a [`SecretString`].
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::new)
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key", &"***")
            .finish()
    }
}

/// A service account key with the token endpoint it is exchanged at.
#[derive(Clone, Debug)]
pub struct ServiceAccount {
    /// The key.
    pub key: ServiceAccountKey,
    /// `metadata.tokenUrl`, else the key's `token_uri`, else Google's.
    pub token_url: Url,
}

impl ServiceAccount {
    /// Parses `credentials.serviceAccountKey` (`text`) and the token endpoint,
    /// checking the key can sign, without I/O. Errors never quote the text.
    pub fn parse(cfg: &ConnectionConfig, text: &SecretString) -> Result<Self, ConnectorError> {
        // serde's message could quote the text; it is replaced by our own.
        let key: ServiceAccountKey = serde_json::from_str(text.expose()).map_err(|e| {
            ConnectorError::invalid_config(
                "credentials",
                format!(
                    "credentials.serviceAccountKey is not a service account key JSON (line {}, column {}; \
                     it needs client_email and private_key)",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if key
            .key_type
            .as_deref()
            .is_some_and(|t| t != "service_account")
        {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey has a \"type\" other than \"service_account\"",
            ));
        }
        if !key.private_key.expose().contains("PRIVATE KEY-----") {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey.private_key is not a PEM private key",
            ));
        }
        if RsaSigningKey::from_pem(&key.private_key, "credentials").is_err() {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.serviceAccountKey.private_key is not an RSA private key",
            ));
        }
        let uri = crate::metadata::string(cfg, "tokenUrl")?
            .or_else(|| key.token_uri.clone())
            .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_owned());
        let token_url = Url::parse(&uri)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                ConnectorError::invalid_config(
                    "credentials",
                    "the service account key's token_uri (or metadata.tokenUrl) is not an http(s) URL",
                )
            })?;
        Ok(ServiceAccount { key, token_url })
    }

    /// The token source for `scope`: the JWT bearer grant at the token
    /// endpoint, audience the token URL, one hour per assertion.
    pub fn token_source(&self, scope: &str) -> Result<TokenSource, ConnectorError> {
        let key = RsaSigningKey::from_pem(&self.key.private_key, "credentials")?;
        Ok(TokenSource::jwt_bearer(
            self.token_url.clone(),
            JwtBearer {
                issuer: self.key.client_email.clone(),
                key,
                key_id: self.key.private_key_id.clone(),
                scope: scope.to_owned(),
                audience: None,
                lifetime: Duration::from_secs(3600),
            },
        ))
    }
}

/// What a Google JSON API error body says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// `error.errors[0].reason` (`notFound`, `forbidden`, …).
    pub reason: Option<String>,
    /// `error.status`, the RPC-style status (`PERMISSION_DENIED`).
    pub status: Option<String>,
    /// `error.message`, or a short plain-text body.
    pub message: Option<String>,
}

/// Reads a JSON API error body (`{"error": {"errors": [{"reason"}], "status",
/// "message"}}`); a plain-text body that is not HTML is the message.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        let message = (!t.is_empty() && !t.starts_with('<')).then(|| t.to_owned());
        return ErrorFields {
            message,
            ..Default::default()
        };
    };
    let err = v.get("error").unwrap_or(&Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    ErrorFields {
        reason: err
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|e| s(e, "reason")),
        status: s(err, "status"),
        message: s(err, "message"),
    }
}

/// How a Google API's error answers map to codes: the driver's tables and the
/// context keys it reports them under.
#[derive(Clone, Copy, Debug)]
pub struct ErrorTable {
    /// A `reason` (or RPC `status`) → code; `None` when unknown.
    pub reason_code: fn(&str) -> Option<ErrorCode>,
    /// The HTTP status → code, when neither reason nor status is known.
    pub status_code: fn(u16) -> ErrorCode,
    /// Reasons worth retrying although their code is not.
    pub retryable_reason: fn(&str) -> bool,
    /// Context key of the reason (`gcsReason`, `bigqueryReason`).
    pub reason_key: &'static str,
    /// Context key of the RPC status (`gcsStatus`, `googleStatus`).
    pub status_key: &'static str,
}

/// The error for a Google JSON API's non-success answer (for a driver's
/// [`crate::http::RefineStatus`] hook): the reason, else the RPC status, else
/// the HTTP status decides the code; the message carries the reason and
/// Google's message on one line.
pub fn status_error(f: &StatusFailure<'_>, table: &ErrorTable) -> ConnectorError {
    let fields = error_fields(f.body);
    let code = fields
        .reason
        .as_deref()
        .and_then(table.reason_code)
        .or_else(|| fields.status.as_deref().and_then(table.reason_code))
        .unwrap_or_else(|| (table.status_code)(f.status.as_u16()));
    let message = fields.message.as_deref().map(|m| {
        m.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(300)
            .collect::<String>()
    });
    let detail = match (&fields.reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => Some(format!("{r}: {m}")),
        (Some(r), _) => Some(r.clone()),
        (None, m) => m,
    };
    let mut err = f.error(code, detail);
    if fields.reason.as_deref().is_some_and(table.retryable_reason) {
        err = err.with_retryable(true);
    }
    if let Some(r) = fields.reason {
        err = err.with_context(table.reason_key, r);
    }
    if let Some(s) = fields.status {
        err = err.with_context(table.status_key, s);
    }
    err
}

/// A success body that is not the JSON expected: `PROTOCOL_ERROR`.
pub fn json_error(e: serde_json::Error, what: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("{what}: the response is not the JSON expected: {e}"),
    )
    .with_retryable(false)
    .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const KEY: &str = include_str!("../tests/data/test-rsa-key.pem");

    fn key_json(extra: &str) -> SecretString {
        SecretString::new(format!(
            r#"{{"type":"service_account","client_email":"r@p.iam.gserviceaccount.com","private_key":{}{extra}}}"#,
            serde_json::to_string(KEY).unwrap()
        ))
    }

    #[test]
    fn keys_are_checked_without_io_and_never_quoted() {
        let c = ConnectionConfig::default();
        let sa = ServiceAccount::parse(&c, &key_json("")).unwrap();
        assert_eq!(sa.token_url.as_str(), DEFAULT_TOKEN_URL);
        assert!(!format!("{sa:?}").contains("PRIVATE"));
        sa.token_source("https://www.googleapis.com/auth/bigquery.readonly")
            .unwrap();
        let sa = ServiceAccount::parse(&c, &key_json(r#","token_uri":"http://127.0.0.1:9/token""#))
            .unwrap();
        assert_eq!(sa.token_url.as_str(), "http://127.0.0.1:9/token");
        for bad in [
            SecretString::new("not json SECRETTEXT"),
            SecretString::new(r#"{"client_email":"x","private_key":"nope"}"#),
            SecretString::new(
                r#"{"type":"user","client_email":"x","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
            ),
            SecretString::new(
                r#"{"client_email":"x","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}"#,
            ),
            key_json(r#","token_uri":"file:///etc/passwd""#),
        ] {
            let e = ServiceAccount::parse(&c, &bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
            assert!(!e.message().contains("SECRETTEXT"), "{}", e.message());
        }
    }

    #[test]
    fn status_errors_follow_the_drivers_table() {
        let table = ErrorTable {
            reason_code: |r| (r == "notFound").then_some(ErrorCode::DatabaseNotFound),
            status_code: |_| ErrorCode::SourceError,
            retryable_reason: |r| r == "backendError",
            reason_key: "xReason",
            status_key: "xStatus",
        };
        let h = crate::http::header::HeaderMap::new();
        let f = |status: u16, body: &'static str| {
            let st = crate::http::StatusCode::from_u16(status).unwrap();
            status_error(
                &StatusFailure::new(st, &h, body.as_bytes(), "GET x"),
                &table,
            )
        };
        let e = f(
            404,
            r#"{"error":{"message":"gone","errors":[{"reason":"notFound"}],"status":"NOT_FOUND"}}"#,
        );
        assert_eq!(e.code(), ErrorCode::DatabaseNotFound);
        assert_eq!(e.context_value("xReason"), Some("notFound"));
        assert_eq!(e.context_value("xStatus"), Some("NOT_FOUND"));
        assert!(e.message().contains("notFound: gone"), "{}", e.message());
        let e = f(400, r#"{"error":{"errors":[{"reason":"backendError"}]}}"#);
        assert_eq!(e.code(), ErrorCode::SourceError);
        assert!(e.is_retryable());
    }

    #[test]
    fn error_bodies() {
        let f = error_fields(br#"{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}],"status":"PERMISSION_DENIED"}}"#);
        assert_eq!(f.reason.as_deref(), Some("forbidden"));
        assert_eq!(f.status.as_deref(), Some("PERMISSION_DENIED"));
        assert_eq!(f.message.as_deref(), Some("denied"));
        assert_eq!(
            error_fields(b"Not Found").message.as_deref(),
            Some("Not Found")
        );
        assert_eq!(error_fields(b"<html>x</html>"), ErrorFields::default());
    }
}
