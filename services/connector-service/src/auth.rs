//! Bearer JWT authentication: HS256 with a shared secret for embedded use, RS256
//! with a public key for production. Two roles: a tenant admin acts inside one
//! tenant; a platform admin manages tenants and may act in any of them.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::AppError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    PlatformAdmin,
    TenantAdmin,
}

/// The token's claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// The tenant a tenant admin acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    pub exp: i64,
    /// Issued at; with it the lifetime is `exp - iat`, without it `exp - now`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

impl Claims {
    /// Whether this caller may act inside `tenant`. A tenant admin of another
    /// tenant is told the tenant does not exist, so existence does not leak.
    pub fn require_tenant(&self, tenant: Uuid) -> Result<(), AppError> {
        match self.role {
            Role::PlatformAdmin => Ok(()),
            Role::TenantAdmin if self.tenant_id == Some(tenant) => Ok(()),
            Role::TenantAdmin => Err(AppError::not_found("tenant")),
        }
    }

    pub fn require_platform_admin(&self) -> Result<(), AppError> {
        match self.role {
            Role::PlatformAdmin => Ok(()),
            Role::TenantAdmin => Err(AppError::forbidden(
                "this operation needs a platform admin token",
            )),
        }
    }
}

/// What a token must satisfy beyond its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    /// Required `iss` when set; `iss` is not looked at otherwise.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences) when set; `aud` is
    /// ignored otherwise, so an identity provider that always sets it works.
    pub audience: Option<String>,
    /// The longest lifetime accepted: `exp - iat`, and `exp - now` for any
    /// token. 0 accepts any lifetime.
    pub max_lifetime_secs: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, nothing more.
    pub leeway_secs: u64,
}

impl Default for TokenRules {
    fn default() -> Self {
        TokenRules {
            issuer: None,
            audience: None,
            max_lifetime_secs: 24 * 3600,
            leeway_secs: 5,
        }
    }
}

/// Verifies tokens. Holds key material; `Debug` shows only the algorithms.
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    rules: TokenRules,
    /// Tokens already verified, so a client reusing its token (every client)
    /// pays for the signature check once. Bounded; expiry is rechecked on
    /// every hit. Hashed with foldhash (seeded per process): SipHash over a
    /// token of a few hundred bytes was a visible part of every request, and
    /// only tokens whose signature checked out are ever inserted.
    /// Keyed by the token's bytes, so a request can look its token up
    /// before its header has been checked as text (see [`Auth`]).
    verified: std::sync::RwLock<
        std::collections::HashMap<Box<[u8]>, Arc<Claims>, foldhash::fast::RandomState>,
    >,
}

const VERIFIED_MAX: usize = 4096;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(a, _)| a))
            .finish()
    }
}

impl Verifier {
    pub fn new(
        hs256_secret: Option<&[u8]>,
        rs256_public_pem: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if let Some(pem) = rs256_public_pem {
            keys.push((
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(pem).context("reading the RS256 public key")?,
            ));
        }
        if let Some(secret) = hs256_secret {
            anyhow::ensure!(
                secret.len() >= 32,
                "the HS256 secret must be at least 32 bytes"
            );
            keys.push((Algorithm::HS256, DecodingKey::from_secret(secret)));
        }
        anyhow::ensure!(!keys.is_empty(), "no JWT key configured");
        Ok(Verifier {
            keys,
            rules: TokenRules::default(),
            verified: Default::default(),
        })
    }

    /// Replaces the default [`TokenRules`].
    pub fn with_rules(mut self, rules: TokenRules) -> Self {
        self.rules = rules;
        self
    }

    /// Verifies a token, from the cache of verified tokens when it is there.
    pub fn verify_cached(&self, token: &str) -> Result<Arc<Claims>, AppError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(c) = self.cached_at(token.as_bytes(), now) {
            return Ok(c);
        }
        let claims = Arc::new(self.verify(token)?);
        let mut map = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, c| c.exp > now);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(token.as_bytes().into(), claims.clone());
        Ok(claims)
    }

    /// The claims of `token` when it is in the cache of verified tokens and
    /// not expired at `now`; `None` otherwise (nothing is verified here).
    fn cached_at(&self, token: &[u8], now: i64) -> Option<Arc<Claims>> {
        self.verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .filter(|c| c.exp > now)
            .cloned()
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AppError::unauthorized("malformed bearer token"))?;
        let Some((alg, key)) = self.keys.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AppError::unauthorized("token algorithm not accepted"));
        };
        let r = &self.rules;
        let mut v = Validation::new(*alg);
        let mut required = vec!["exp", "sub"];
        v.leeway = r.leeway_secs;
        v.validate_nbf = true;
        match &r.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &r.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                AppError::unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not yet valid",
                    ErrorKind::InvalidSignature => "token signature invalid",
                    ErrorKind::InvalidIssuer => "token issuer not accepted",
                    ErrorKind::InvalidAudience => "token audience not accepted",
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" => "token issuer not accepted",
                    ErrorKind::MissingRequiredClaim(c) if c == "aud" => {
                        "token audience not accepted"
                    }
                    _ => "token invalid",
                })
            })?;
        self.check_lifetime(&claims, chrono::Utc::now().timestamp())?;
        Ok(claims)
    }

    /// The lifetime bound. Leeway widens only the comparisons with the clock
    /// (`iat` ahead of it, `exp` beyond `now + max`), never the lifetime itself.
    fn check_lifetime(&self, c: &Claims, now: i64) -> Result<(), AppError> {
        let leeway = i64::try_from(self.rules.leeway_secs).unwrap_or(i64::MAX);
        if let Some(iat) = c.iat {
            if iat > now.saturating_add(leeway) {
                return Err(AppError::unauthorized("token issued in the future"));
            }
        }
        if self.rules.max_lifetime_secs == 0 {
            return Ok(());
        }
        let max = i64::try_from(self.rules.max_lifetime_secs).unwrap_or(i64::MAX);
        let too_long = match c.iat {
            Some(iat) => c.exp.saturating_sub(iat) > max,
            None => false,
        } || c.exp.saturating_sub(now) > max.saturating_add(leeway);
        if too_long {
            return Err(AppError::unauthorized(
                "token lifetime exceeds the accepted maximum",
            ));
        }
        Ok(())
    }
}

/// Signs an HS256 token (the `mint-token` subcommand and tests).
pub fn mint_hs256(
    secret: &[u8],
    role: Role,
    tenant_id: Option<Uuid>,
    sub: &str,
    ttl_secs: i64,
) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        role,
        tenant_id,
        exp: now + ttl_secs,
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing with an in-memory key cannot fail")
}

/// The HS256 secret: configured, or read from (or generated into) a 0600 file in
/// the data directory so the service and `mint-token` agree without set-up.
pub fn load_or_create_hs256_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt.secret");
    let bytes = crate::secrets::local::load_or_create_key_file(&path)?;
    Ok(bytes.to_vec())
}

/// The authenticated caller, extracted from `Authorization: Bearer …`.
#[derive(Clone, Debug)]
pub struct Auth(pub Arc<Claims>);

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        bearer(&parts.headers, &state.verifier).map(Auth)
    }
}

/// The claims of the request's bearer token, or the 401 that refuses it.
fn bearer(headers: &axum::http::HeaderMap, verifier: &Verifier) -> Result<Arc<Claims>, AppError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| AppError::unauthorized("missing bearer token"))?;
    // A token verified before is looked up from the header's bytes:
    // checking the whole header as text costs more than the lookup. A hit
    // answers what the checks below would: the cached token passed them
    // (visible ASCII, trimmed), the scheme matched "bearer" and the bytes
    // around the token are the spaces and tabs `str::trim` removes.
    if let Some(token) = bearer_bytes(header.as_bytes()) {
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = verifier.cached_at(token, now) {
            return Ok(claims);
        }
    }
    let text = header
        .to_str()
        .map_err(|_| AppError::unauthorized("malformed Authorization header"))?;
    // The scheme name is case-insensitive (RFC 7235 section 2.1).
    let token = text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| AppError::unauthorized("expected Authorization: Bearer <token>"))?;
    verifier.verify_cached(token)
}

/// The token of an `Authorization: Bearer <token>` header as bytes: the
/// scheme (before the first space) matched without regard to case, the rest
/// with spaces and tabs trimmed. Only ever used to look up a token verified
/// before, never to accept one.
fn bearer_bytes(header: &[u8]) -> Option<&[u8]> {
    let space = header.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = (&header[..space], &header[space + 1..]);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = rest.iter().position(|b| !blank(b))?;
    let end = rest.iter().rposition(|b| !blank(b))?;
    Some(&rest[start..=end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_round_trip_and_rejections() {
        let secret = [7u8; 32];
        let v = Verifier::new(Some(&secret), None).unwrap();
        let t = Uuid::new_v4();
        let tok = mint_hs256(&secret, Role::TenantAdmin, Some(t), "alice", 60);
        let c = v.verify(&tok).unwrap();
        assert_eq!(c.tenant_id, Some(t));
        assert!(c.require_tenant(t).is_ok());
        assert_eq!(c.require_tenant(Uuid::new_v4()).unwrap_err().status, 404);
        assert_eq!(c.require_platform_admin().unwrap_err().status, 403);
        let other = mint_hs256(&[8u8; 32], Role::PlatformAdmin, None, "eve", 60);
        assert_eq!(v.verify(&other).unwrap_err().status, 401);
        let expired = mint_hs256(&secret, Role::PlatformAdmin, None, "old", -3600);
        assert_eq!(v.verify(&expired).unwrap_err().message, "token expired");
        assert_eq!(v.verify("nonsense").unwrap_err().status, 401);
        // The cache answers the same as the check, and never for an expired token.
        assert_eq!(v.verify_cached(&tok).unwrap().tenant_id, Some(t));
        assert_eq!(v.verify_cached(&tok).unwrap().tenant_id, Some(t));
        assert_eq!(v.verify_cached(&other).unwrap_err().status, 401);
        let short = mint_hs256(&secret, Role::PlatformAdmin, None, "short", 1);
        v.verify_cached(&short).unwrap();
        if let Some(c) = v.verified.write().unwrap().get_mut(short.as_bytes()) {
            let c = Arc::make_mut(c);
            c.exp = 0;
            c.sub = "stale".into();
        }
        assert_eq!(
            v.verify_cached(&short).unwrap().sub,
            "short",
            "a past-exp entry is checked again"
        );
    }

    #[test]
    fn bearer_bytes_find_the_token_as_the_text_checks_do() {
        assert_eq!(bearer_bytes(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_bytes(b"bEaReR \t abc \t"), Some(&b"abc"[..]));
        assert_eq!(bearer_bytes(b"Bearer a b"), Some(&b"a b"[..]));
        assert_eq!(bearer_bytes(b"Bearer abc\x0b"), Some(&b"abc\x0b"[..]));
        for h in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer \t ",
            b"Basic abc",
            b"Bearer\tabc",
            b" Bearer abc",
        ] {
            assert_eq!(bearer_bytes(h), None, "{:?}", String::from_utf8_lossy(h));
        }
    }

    /// A cached token is found from the header's bytes only when the text
    /// checks would have found it too; anything else gets their answer.
    #[test]
    fn a_cached_token_answers_as_the_checked_header_does() {
        use axum::http::HeaderValue;
        use axum::http::{header::AUTHORIZATION, HeaderMap};
        let secret = [7u8; 32];
        let verifier = Verifier::new(Some(&secret), None).unwrap();
        let tok = mint_hs256(&secret, Role::PlatformAdmin, None, "p", 60);
        let extract = |value: Vec<u8>| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_bytes(&value).unwrap());
            bearer(&headers, &verifier)
                .map(|c| c.sub.clone())
                .map_err(|e| (e.status.as_u16(), e.message))
        };
        for round in ["uncached", "cached"] {
            assert_eq!(
                extract(format!("Bearer {tok}").into_bytes()),
                Ok("p".into()),
                "{round}"
            );
            assert_eq!(
                extract(format!("bearer \t{tok} \t").into_bytes()),
                Ok("p".into()),
                "{round}"
            );
            let malformed = Err((401, "malformed Authorization header".to_owned()));
            let mut high = format!("Bearer {tok} ").into_bytes();
            high.push(0xff);
            assert_eq!(
                extract(high),
                malformed,
                "{round}: obs-text, not visible ASCII"
            );
            assert_eq!(
                extract(format!("Bearer\t{tok}").into_bytes()),
                Err((401, "expected Authorization: Bearer <token>".to_owned())),
                "{round}"
            );
            assert_eq!(
                extract(format!("Bearer {tok}x").into_bytes()),
                Err((401, "token signature invalid".to_owned())),
                "{round}"
            );
        }
    }

    const SECRET: [u8; 32] = [9u8; 32];

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&SECRET),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn base(extra: serde_json::Value) -> serde_json::Value {
        let mut c = serde_json::json!({"sub": "s", "role": "PLATFORM_ADMIN", "iat": now(), "exp": now() + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn verifier(rules: TokenRules) -> Verifier {
        Verifier::new(Some(&SECRET), None)
            .unwrap()
            .with_rules(rules)
    }

    fn refused(v: &Verifier, claims: serde_json::Value) -> String {
        let e = v.verify(&sign(claims)).unwrap_err();
        assert_eq!(e.status, 401);
        e.message
    }

    #[test]
    fn nbf_in_the_future_is_refused_beyond_the_leeway() {
        let v = verifier(TokenRules::default());
        assert_eq!(
            refused(&v, base(serde_json::json!({"nbf": now() + 120}))),
            "token not yet valid"
        );
        v.verify(&sign(base(serde_json::json!({"nbf": now() - 1}))))
            .unwrap();
        // Within the leeway (clock skew) it passes.
        v.verify(&sign(base(serde_json::json!({"nbf": now() + 2}))))
            .unwrap();
    }

    #[test]
    fn audience_is_ignored_unless_configured_then_required() {
        let open = verifier(TokenRules::default());
        open.verify(&sign(base(serde_json::json!({"aud": "some-idp-client"}))))
            .unwrap();
        open.verify(&sign(base(serde_json::json!({"aud": ["a", "b"]}))))
            .unwrap();
        let strict = verifier(TokenRules {
            audience: Some("matih-connectors".into()),
            ..Default::default()
        });
        strict
            .verify(&sign(base(serde_json::json!({"aud": "matih-connectors"}))))
            .unwrap();
        strict
            .verify(&sign(base(
                serde_json::json!({"aud": ["other", "matih-connectors"]}),
            )))
            .unwrap();
        assert_eq!(
            refused(&strict, base(serde_json::json!({"aud": "other"}))),
            "token audience not accepted"
        );
        assert_eq!(
            refused(&strict, base(serde_json::json!({}))),
            "token audience not accepted"
        );
    }

    #[test]
    fn issuer_is_required_when_configured() {
        let open = verifier(TokenRules::default());
        open.verify(&sign(base(serde_json::json!({"iss": "anyone"}))))
            .unwrap();
        let strict = verifier(TokenRules {
            issuer: Some("https://idp.example".into()),
            ..Default::default()
        });
        strict
            .verify(&sign(base(
                serde_json::json!({"iss": "https://idp.example"}),
            )))
            .unwrap();
        assert_eq!(
            refused(
                &strict,
                base(serde_json::json!({"iss": "https://evil.example"}))
            ),
            "token issuer not accepted"
        );
        assert_eq!(
            refused(&strict, base(serde_json::json!({}))),
            "token issuer not accepted"
        );
    }

    #[test]
    fn lifetime_is_bounded_with_or_without_iat() {
        let v = verifier(TokenRules {
            max_lifetime_secs: 3600,
            ..Default::default()
        });
        v.verify(&sign(base(serde_json::json!({"exp": now() + 3000}))))
            .unwrap();
        let msg = "token lifetime exceeds the accepted maximum";
        // exp - iat too long, even though little of it remains.
        assert_eq!(
            refused(
                &v,
                base(serde_json::json!({"iat": now() - 7000, "exp": now() + 100}))
            ),
            msg
        );
        // No iat: the remaining lifetime is what counts.
        let mut no_iat = base(serde_json::json!({"exp": now() + 7200}));
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(refused(&v, no_iat.clone()), msg);
        no_iat["exp"] = serde_json::json!(now() + 600);
        v.verify(&sign(no_iat)).unwrap();
        // An iat ahead of the clock beyond the leeway is refused.
        assert_eq!(
            refused(&v, base(serde_json::json!({"iat": now() + 120}))),
            "token issued in the future"
        );
        // 0 lifts the bound.
        verifier(TokenRules {
            max_lifetime_secs: 0,
            ..Default::default()
        })
        .verify(&sign(base(
            serde_json::json!({"exp": now() + 10 * 365 * 86400}),
        )))
        .unwrap();
    }

    #[test]
    fn leeway_is_only_clock_skew() {
        let v = verifier(TokenRules {
            leeway_secs: 5,
            ..Default::default()
        });
        // Expired 20 s ago: refused with 5 s of skew (a fixed 30 s leeway
        // used to accept it); a wider configured skew accepts it.
        assert_eq!(
            refused(&v, base(serde_json::json!({"exp": now() - 20}))),
            "token expired"
        );
        v.verify(&sign(base(serde_json::json!({"exp": now() + 2}))))
            .unwrap();
        let wide = verifier(TokenRules {
            leeway_secs: 60,
            ..Default::default()
        });
        wide.verify(&sign(base(serde_json::json!({"exp": now() - 20}))))
            .unwrap();
    }
}
