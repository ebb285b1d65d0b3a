//! Access tokens: OAuth2 client credentials (RFC 6749 §4.4) and the JWT bearer
//! grant of service accounts (RFC 7523, RS256), fetched through the pinned
//! client (so the token endpoint is under the egress policy), cached until
//! shortly before they expire, responses bounded, errors mapped. Secrets never
//! appear in `Debug`, messages or logs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::errors::{one_line, status_code, status_retryable};
use super::{display_url, HttpClient, Url};
use crate::{ConnectorError, ErrorCode, SecretString};

/// A token answer is small; anything bigger is not a token endpoint.
const TOKEN_BODY_BYTES: u64 = 64 * 1024;
/// Lifetime assumed when the answer has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is refreshed this long before it expires (at most half its life).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Longest lifetime believed, whatever the endpoint says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Where a client's credentials go in the token request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic (`client_secret_basic`, RFC 6749 §2.3.1's default).
    Basic,
    /// Form fields `client_id`/`client_secret` (`client_secret_post`).
    Post,
}

/// The client credentials grant. `Debug` shows no secret (both values are
/// [`SecretString`]s).
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: SecretString,
    /// The client secret.
    pub client_secret: SecretString,
    /// The `scope` parameter, when the endpoint wants one.
    pub scope: Option<String>,
    /// How the client authenticates to the endpoint.
    pub method: ClientAuthMethod,
}

/// An RSA private key for RS256 signatures. `Debug` prints nothing of it.
#[derive(Clone)]
pub struct RsaSigningKey(Arc<ring::signature::RsaKeyPair>);

impl fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaSigningKey(***)")
    }
}

impl RsaSigningKey {
    /// Reads a PEM RSA private key (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1
    /// `BEGIN RSA PRIVATE KEY`), as service account key files hold them. The
    /// error names `field`, never the key.
    pub fn from_pem(pem: &SecretString, field: &'static str) -> Result<Self, ConnectorError> {
        let bad = |why: String| ConnectorError::invalid_config(field, format!("{field}: {why}"));
        let der = PrivateKeyDer::from_pem_slice(pem.expose().as_bytes())
            .map_err(|_| bad("holds no PEM private key".into()))?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(k) => {
                ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())
            }
            PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(bad("is not an RSA private key".into())),
        }
        .map_err(|e| bad(format!("is not a usable RSA private key ({e})")))?;
        Ok(RsaSigningKey(Arc::new(pair)))
    }

    /// A PKCS#8 DER key (what a driver holds after decrypting an encrypted
    /// PKCS#8 PEM itself).
    pub fn from_pkcs8_der(der: &[u8], field: &'static str) -> Result<Self, ConnectorError> {
        ring::signature::RsaKeyPair::from_pkcs8(der)
            .map(|k| RsaSigningKey(Arc::new(k)))
            .map_err(|e| {
                ConnectorError::invalid_config(
                    field,
                    format!("{field}: is not a usable RSA private key ({e})"),
                )
            })
    }

    /// The public half as a PKCS#1 `RSAPublicKey` (DER).
    pub fn public_key_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.0.public_key().as_ref().to_vec()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS (`header.claims.signature`) signed with RS256.
pub fn sign_rs256(
    claims: &Value,
    key_id: Option<&str>,
    key: &RsaSigningKey,
) -> Result<SecretString, ConnectorError> {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = Value::String(kid.to_owned());
    }
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; key.0.public().modulus_len()];
    key.0
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut sig,
        )
        .map_err(|_| ConnectorError::internal("signing a JWT failed"))?;
    Ok(SecretString::new(format!(
        "{signing_input}.{}",
        b64url(&sig)
    )))
}

/// The JWT bearer grant as Google documents it for service accounts: an
/// assertion with `iss`, `scope`, `aud`, `iat`, `exp`, signed with the
/// account's key.
#[derive(Clone, Debug)]
pub struct JwtBearer {
    /// The account (`client_email`): an identifier, not a secret.
    pub issuer: String,
    /// The account's RSA key, which signs the assertion.
    pub key: RsaSigningKey,
    /// `private_key_id`, sent as the JWT's `kid`.
    pub key_id: Option<String>,
    /// The `scope` claim.
    pub scope: String,
    /// `aud`; the token URL when `None`.
    pub audience: Option<String>,
    /// `exp - iat`.
    pub lifetime: Duration,
}

impl JwtBearer {
    fn assertion(&self, token_url: &Url) -> Result<SecretString, ConnectorError> {
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = json!({
            "iss": self.issuer,
            "scope": self.scope,
            "aud": self.audience.clone().unwrap_or_else(|| token_url.as_str().to_owned()),
            "iat": iat,
            "exp": iat + self.lifetime.as_secs(),
        });
        sign_rs256(&claims, self.key_id.as_deref(), &self.key)
    }
}

#[derive(Clone)]
enum Grant {
    ClientCredentials(ClientCredentials),
    JwtBearer(JwtBearer),
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

/// Where a bearer token comes from, and the token while it is fresh.
pub struct TokenSource {
    url: Url,
    grant: Grant,
    cache: Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.grant_name(), display_url(&self.url))
    }
}

impl TokenSource {
    /// Tokens from `url` by the client credentials grant.
    pub fn client_credentials(url: Url, grant: ClientCredentials) -> TokenSource {
        TokenSource {
            url,
            grant: Grant::ClientCredentials(grant),
            cache: Mutex::new(None),
        }
    }

    /// Tokens from `url` by the JWT bearer grant.
    pub fn jwt_bearer(url: Url, grant: JwtBearer) -> TokenSource {
        TokenSource {
            url,
            grant: Grant::JwtBearer(grant),
            cache: Mutex::new(None),
        }
    }

    /// The token endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The grant's name for messages (`oauth2ClientCredentials`, …).
    pub fn grant_name(&self) -> &'static str {
        match self.grant {
            Grant::ClientCredentials(_) => "oauth2ClientCredentials",
            Grant::JwtBearer(_) => "jwtBearer",
        }
    }

    /// The cached token, or a new one when there is none or it expires within
    /// the refresh margin. Concurrent callers wait for one fetch.
    pub async fn token(&self, client: &HttpClient) -> Result<SecretString, ConnectorError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.fetch(client).await?;
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - margin,
        });
        Ok(token)
    }

    async fn fetch(&self, client: &HttpClient) -> Result<(SecretString, Duration), ConnectorError> {
        let what = format!("POST {}", display_url(&self.url));
        let mut req = client
            .post(self.url.clone())
            .what(what.clone())
            .timeout(client.connect_timeout())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        // Values the endpoint might echo back in an error description.
        let secrets: Vec<String>;
        match &self.grant {
            Grant::ClientCredentials(c) => {
                let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
                if let Some(s) = &c.scope {
                    form.push(("scope", s));
                }
                if c.method == ClientAuthMethod::Post {
                    form.push(("client_id", c.client_id.expose()));
                    form.push(("client_secret", c.client_secret.expose()));
                }
                req = req.form(&form);
                if c.method == ClientAuthMethod::Basic {
                    req = req.basic_auth(&c.client_id, Some(&c.client_secret));
                }
                secrets = vec![c.client_secret.expose().to_owned()];
            }
            Grant::JwtBearer(j) => {
                let assertion = j.assertion(&self.url)?;
                req = req.form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.expose()),
                ]);
                secrets = vec![assertion.expose().to_owned()];
            }
        }
        let mut resp = req.send().await?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let body = resp.prefix(super::ERROR_BODY_BYTES).await;
            return Err(token_error(status, &body, &what, &secrets));
        }
        let body = resp.bytes_within(TOKEN_BODY_BYTES).await?;
        parse_token(&body, &what)
    }
}

/// `access_token` and its lifetime from a token answer.
fn parse_token(body: &[u8], what: &str) -> Result<(SecretString, Duration), ConnectorError> {
    let malformed = |why: &str| {
        ConnectorError::new(ErrorCode::ProtocolError, format!("{what}: {why}"))
            .with_retryable(false)
    };
    let v: Value =
        serde_json::from_slice(body).map_err(|_| malformed("the token response is not JSON"))?;
    let token = match v.get("access_token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => SecretString::new(t),
        _ => return Err(malformed("the token response has no access_token")),
    };
    let secs = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let lifetime = match secs {
        Some(s) if s.is_finite() && s >= 0.0 => {
            Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64()))
        }
        _ => DEFAULT_LIFETIME,
    };
    Ok((token, lifetime))
}

/// A refusal of the token endpoint (RFC 6749 §5.2 error body): the OAuth2
/// `error` decides the code, the status when there is none. The endpoint's own
/// 404 says the token URL is wrong, not that a database is missing.
pub(crate) fn token_error(
    status: u16,
    body: &[u8],
    what: &str,
    secrets: &[String],
) -> ConnectorError {
    let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let oauth = v
        .get("error")
        .and_then(Value::as_str)
        .map(|s| one_line(s, 80));
    let desc = v
        .get("error_description")
        .and_then(Value::as_str)
        .map(|d| one_line(&crate::redact_secrets(d, secrets), 200));
    let code = match oauth.as_deref() {
        Some("invalid_client" | "invalid_grant" | "unauthorized_client") => {
            ErrorCode::AuthenticationFailed
        }
        Some("invalid_scope" | "access_denied") => ErrorCode::PermissionDenied,
        Some("unsupported_grant_type" | "invalid_request") => ErrorCode::InvalidConfiguration,
        Some("temporarily_unavailable") => ErrorCode::RateLimited,
        _ => match status_code(status) {
            ErrorCode::DatabaseNotFound => ErrorCode::InvalidConfiguration,
            c => c,
        },
    };
    let mut msg = format!("{what}: token endpoint answered HTTP {status}");
    if let Some(e) = &oauth {
        msg.push_str(&format!(" ({e})"));
    }
    if let Some(d) = desc.filter(|d| !d.is_empty()) {
        msg.push_str(&format!(": {d}"));
    }
    let mut err = ConnectorError::new(code, msg)
        .with_context("httpStatus", status)
        .with_retryable(code.is_retryable() || status_retryable(status));
    if let Some(e) = oauth {
        err = err.with_context("oauthError", e);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/data/test-rsa-key.pem");

    #[test]
    fn oauth_errors_map_to_codes() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_grant"}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_description":"scope admin not allowed"}"#,
                ErrorCode::PermissionDenied,
            ),
            (
                400,
                r#"{"error":"unsupported_grant_type"}"#,
                ErrorCode::InvalidConfiguration,
            ),
            (
                503,
                r#"{"error":"temporarily_unavailable"}"#,
                ErrorCode::RateLimited,
            ),
            // Entra ID's answer to a wrong secret.
            (
                401,
                r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#,
                ErrorCode::AuthenticationFailed,
            ),
            (404, "Not Found", ErrorCode::InvalidConfiguration),
            (503, "", ErrorCode::SourceError),
        ];
        for (status, body, want) in cases {
            let e = token_error(status, body.as_bytes(), "POST https://idp/token", &[]);
            assert_eq!(e.code(), want, "{status} {body}");
            assert_eq!(
                e.context_value("httpStatus"),
                Some(status.to_string().as_str())
            );
        }
        let e = token_error(401, br#"{"error":"invalid_client"}"#, "POST x", &[]);
        assert_eq!(e.context_value("oauthError"), Some("invalid_client"));
        assert!(e.message().contains("(invalid_client)"), "{}", e.message());
    }

    #[test]
    fn an_echoed_secret_never_reaches_the_message() {
        let body =
            br#"{"error":"invalid_client","error_description":"secret s3cr3t-value is wrong"}"#;
        let e = token_error(401, body, "POST x", &["s3cr3t-value".into()]);
        assert!(!e.message().contains("s3cr3t-value"), "{}", e.message());
        assert!(
            e.message().contains("secret *** is wrong"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn token_answers() {
        let (t, life) =
            parse_token(br#"{"access_token":"abc","expires_in":3600}"#, "POST x").unwrap();
        assert_eq!((t.expose(), life), ("abc", Duration::from_secs(3600)));
        let (_, life) = parse_token(br#"{"access_token":"abc","expires_in":"120"}"#, "x").unwrap();
        assert_eq!(life, Duration::from_secs(120));
        let (_, life) = parse_token(br#"{"access_token":"abc"}"#, "x").unwrap();
        assert_eq!(life, DEFAULT_LIFETIME);
        for bad in [
            &br#"{"token_type":"bearer"}"#[..],
            b"<html>",
            br#"{"access_token":""}"#,
        ] {
            let e = parse_token(bad, "x").unwrap_err();
            assert_eq!(e.code(), ErrorCode::ProtocolError);
        }
    }

    #[test]
    fn rs256_signatures_verify_with_the_public_key() {
        let key = RsaSigningKey::from_pem(&SecretString::new(KEY), "credentials").unwrap();
        assert_eq!(format!("{key:?}"), "RsaSigningKey(***)");
        let der = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let same = RsaSigningKey::from_pkcs8_der(der.secret_der(), "credentials").unwrap();
        assert_eq!(same.public_key_der(), key.public_key_der());
        assert!(RsaSigningKey::from_pkcs8_der(b"junk", "credentials").is_err());
        let jwt = sign_rs256(&json!({"iss": "a@b", "exp": 1}), Some("kid-1"), &key).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let header: Value = serde_json::from_slice(&dec(parts[0])).unwrap();
        assert_eq!(
            header,
            json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        let claims: Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(claims["iss"], "a@b");
        // The public key as openssl wrote it, independent of the signer.
        let pub_pem = include_str!("../../tests/data/test-rsa-key.pub.pem");
        let b64: String = pub_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let public = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(public, key.public_key_der());
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &public,
        )
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &dec(parts[2]),
        )
        .unwrap();
    }

    #[test]
    fn unusable_keys_are_configuration_errors_naming_the_field() {
        for bad in [
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e =
                RsaSigningKey::from_pem(&SecretString::new(bad), "credentials.serviceAccountKey")
                    .unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
            assert!(e.message().contains("credentials.serviceAccountKey"));
            assert!(!e.message().contains("AAAA"));
        }
    }
}
