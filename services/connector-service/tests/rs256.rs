//! RS256 tokens (production): verified with the public key only. The key pair
//! in tests/data was generated for this test and protects nothing.

use matih_connector_service::auth::{Claims, Role, Verifier};

const PRIVATE: &[u8] = include_bytes!("data/rs256-test-only.key");
const PUBLIC: &[u8] = include_bytes!("data/rs256-test-only.pub");

fn sign(claims: &Claims, alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey) -> String {
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, key).unwrap()
}

#[test]
fn rs256_public_key_verifies_and_hs256_is_off() {
    let v = Verifier::new(None, Some(PUBLIC)).unwrap();
    let tenant = uuid::Uuid::new_v4();
    let claims = Claims {
        sub: "svc".into(),
        role: Role::TenantAdmin,
        tenant_id: Some(tenant),
        exp: chrono::Utc::now().timestamp() + 60,
        iat: None,
    };
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE).unwrap();
    let got = v
        .verify(&sign(&claims, jsonwebtoken::Algorithm::RS256, &key))
        .unwrap();
    assert_eq!(got.tenant_id, Some(tenant));
    // An HS256 token (say, signed with the public key's bytes as the secret,
    // the classic algorithm-confusion attack) is refused.
    let hs = sign(
        &claims,
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(PUBLIC),
    );
    assert_eq!(v.verify(&hs).unwrap_err().status, 401);
    // Tampered payload.
    let good = sign(&claims, jsonwebtoken::Algorithm::RS256, &key);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = sign(
        &Claims {
            role: Role::PlatformAdmin,
            ..claims.clone()
        },
        jsonwebtoken::Algorithm::RS256,
        &key,
    );
    parts[1] = forged.split('.').nth(1).unwrap();
    let mixed = parts.join(".");
    assert_eq!(v.verify(&mixed).unwrap_err().status, 401);
}
