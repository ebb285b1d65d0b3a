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
    #[serde(default)]
    pub iat: i64,
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

/// Verifies tokens. Holds key material; `Debug` shows only the algorithms.
pub struct Verifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    /// Tokens already verified, so a client reusing its token (every client)
    /// pays for the signature check once. Bounded; expiry is rechecked on
    /// every hit.
    verified: std::sync::RwLock<std::collections::HashMap<String, Arc<Claims>>>,
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
            verified: Default::default(),
        })
    }

    /// Verifies a token, from the cache of verified tokens when it is there.
    pub fn verify_cached(&self, token: &str) -> Result<Arc<Claims>, AppError> {
        let now = chrono::Utc::now().timestamp();
        if let Some(c) = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            if c.exp > now {
                return Ok(c.clone());
            }
        }
        let claims = Arc::new(self.verify(token)?);
        let mut map = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_MAX {
            map.retain(|_, c| c.exp > now);
            if map.len() >= VERIFIED_MAX {
                map.clear();
            }
        }
        map.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AppError::unauthorized("malformed bearer token"))?;
        let Some((alg, key)) = self.keys.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AppError::unauthorized("token algorithm not accepted"));
        };
        let mut v = Validation::new(*alg);
        v.set_required_spec_claims(&["exp", "sub"]);
        v.leeway = 30;
        jsonwebtoken::decode::<Claims>(token, key, &v)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                AppError::unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature invalid",
                    _ => "token invalid",
                })
            })
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
        iat: now,
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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| AppError::unauthorized("missing bearer token"))?;
        let text = header
            .to_str()
            .map_err(|_| AppError::unauthorized("malformed Authorization header"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| AppError::unauthorized("expected Authorization: Bearer <token>"))?;
        Ok(Auth(state.verifier.verify_cached(token.trim())?))
    }
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
        if let Some(c) = v.verified.write().unwrap().get_mut(&short) {
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
}
