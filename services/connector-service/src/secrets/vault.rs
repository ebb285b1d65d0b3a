//! Credentials in HashiCorp Vault or OpenBao, KV version 2: a connector's
//! secret is `<mount>/data/matih/<tenant slug>/connector-<first 8 of id>`,
//! its labels (`matih.ai/connector-id`, `matih.ai/connector-type`) are the
//! secret's custom metadata. The same client issues dynamic database
//! credentials (`<mount>/creds/<role>`) and revokes their leases.
//!
//! Authentication: a token (`MATIH_VAULT_TOKEN`), AppRole
//! (`MATIH_VAULT_ROLE_ID` + `MATIH_VAULT_SECRET_ID`) or Kubernetes
//! (`MATIH_VAULT_K8S_ROLE` + the service account token file). The token is
//! renewed when two thirds of its lifetime have passed; when it cannot be
//! renewed or Vault refuses it, the service logs in again (AppRole and
//! Kubernetes) and repeats the request once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use matih_connector_core::http::{HttpClient, Method, Url};
use matih_connector_core::{Credentials, SecretString};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{Expiry, ExpiryKind, SecretError, SecretRef, SecretStore, Stored};

/// How the service proves who it is to Vault.
#[derive(Clone)]
pub enum VaultAuth {
    /// A token given as is (renewed while renewable; never re-obtained).
    Token(SecretString),
    /// AppRole login at `auth/<mount>/login`.
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretString,
    },
    /// Kubernetes login at `auth/<mount>/login` with the service account's
    /// token, read from `jwt_file` at every login (kubelet rotates it).
    Kubernetes {
        mount: String,
        role: String,
        jwt_file: PathBuf,
    },
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(***)"),
            VaultAuth::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .finish_non_exhaustive(),
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .field("jwt_file", jwt_file)
                .finish(),
        }
    }
}

impl VaultAuth {
    fn can_login(&self) -> bool {
        !matches!(self, VaultAuth::Token(_))
    }
}

/// Everything the Vault client needs.
#[derive(Clone, Debug)]
pub struct VaultSettings {
    /// `https://vault.example:8200` (a path prefix is kept).
    pub addr: String,
    /// PEM certificates verifying Vault's TLS certificate instead of the public roots.
    pub ca_pem: Option<String>,
    pub auth: VaultAuth,
    /// The KV v2 mount (`secret`).
    pub kv_mount: String,
    /// The tenant namespace prefix (`matih-`): `matih-acme` is stored under `matih/acme`.
    pub namespace_prefix: String,
    /// Limit of every request to Vault.
    pub timeout: Duration,
}

/// A token and what Vault said of it.
struct Token {
    value: SecretString,
    accessor: String,
    /// When it was obtained (or last renewed) and for how long; `None`: no expiry.
    lifetime: Option<(Instant, Duration)>,
    renewable: bool,
}

impl Token {
    fn from_auth(auth: &Value, now: Instant) -> Option<Token> {
        let value = auth["client_token"].as_str()?;
        let ttl = auth["lease_duration"].as_u64().unwrap_or(0);
        Some(Token {
            value: SecretString::new(value),
            accessor: auth["accessor"].as_str().unwrap_or_default().to_owned(),
            lifetime: (ttl > 0).then(|| (now, Duration::from_secs(ttl))),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        })
    }

    /// Two thirds of the lifetime are gone: time to renew (or log in again).
    fn due(&self, now: Instant) -> bool {
        self.lifetime
            .is_some_and(|(at, ttl)| now.duration_since(at) >= ttl * 2 / 3)
    }

    fn expired(&self, now: Instant) -> bool {
        self.lifetime
            .is_some_and(|(at, ttl)| now.duration_since(at) >= ttl)
    }
}

/// One Vault answer: the status and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Vault's `errors` array, joined; it names paths and reasons, never data.
    pub fn errors(&self) -> String {
        match self.body["errors"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.replace('\n', " "))
                .collect::<Vec<_>>()
                .join("; "),
            _ => format!("HTTP {}", self.status),
        }
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The Vault HTTP client with its token: shared by the KV store and the
/// dynamic credentials.
pub struct VaultClient {
    http: HttpClient,
    base: Url,
    auth: VaultAuth,
    token: Mutex<Option<Token>>,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("base", &self.base.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Why a Vault call did not happen (no answer to map).
fn transport(what: &str, e: impl std::fmt::Display) -> SecretError {
    SecretError::Backend(format!("Vault {what}: {e}"))
}

impl VaultClient {
    pub fn new(s: &VaultSettings) -> anyhow::Result<VaultClient> {
        let mut base = Url::parse(s.addr.trim())
            .map_err(|e| anyhow::anyhow!("MATIH_VAULT_ADDR is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && base.host().is_some(),
            "MATIH_VAULT_ADDR must be an http(s) URL with a host"
        );
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let base = base.join("v1/")?;
        Ok(VaultClient {
            http: super::infra::client(s.ca_pem.as_deref(), s.timeout)?,
            base,
            auth: s.auth.clone(),
            token: Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> Result<Url, SecretError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| SecretError::Backend(format!("Vault path {path}: {e}")))
    }

    /// One request with an optional token; the answer whatever its status.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Answer, SecretError> {
        let what = format!("{method} {path}");
        let mut rb = self
            .http
            .request(method, self.url(path)?)
            .what(format!("Vault {what}"));
        if let Some(t) = token {
            rb = rb
                .secret_header(
                    matih_connector_core::http::header::HeaderName::from_static("x-vault-token"),
                    t,
                )
                .map_err(|e| transport(&what, e.message()))?;
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| transport(&what, e.message()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(&what, e.message()))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Answer { status, body })
    }

    /// Logs in with the configured method (or, for a static token, looks it
    /// up to learn its lifetime).
    async fn login(&self) -> Result<Token, SecretError> {
        let now = Instant::now();
        let (path, body) = match &self.auth {
            VaultAuth::Token(t) => {
                let a = self
                    .raw(Method::GET, "auth/token/lookup-self", Some(t), None)
                    .await?;
                if !a.ok() {
                    return Err(refused("token lookup", &a));
                }
                let d = &a.body["data"];
                let ttl = d["ttl"].as_u64().unwrap_or(0);
                return Ok(Token {
                    value: t.clone(),
                    accessor: d["accessor"].as_str().unwrap_or_default().to_owned(),
                    lifetime: (ttl > 0).then(|| (now, Duration::from_secs(ttl))),
                    renewable: d["renewable"].as_bool().unwrap_or(false),
                });
            }
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                format!("auth/{mount}/login"),
                json!({"role_id": role_id, "secret_id": secret_id.expose()}),
            ),
            VaultAuth::Kubernetes {
                mount,
                role,
                jwt_file,
            } => {
                let jwt = tokio::fs::read_to_string(jwt_file).await.map_err(|e| {
                    SecretError::Denied(format!(
                        "Vault Kubernetes login: reading {}: {e}",
                        jwt_file.display()
                    ))
                })?;
                (
                    format!("auth/{mount}/login"),
                    json!({"role": role, "jwt": jwt.trim()}),
                )
            }
        };
        let a = self.raw(Method::POST, &path, None, Some(&body)).await?;
        if !a.ok() {
            return Err(refused(&format!("login at {path}"), &a));
        }
        let token = Token::from_auth(&a.body["auth"], now).ok_or_else(|| {
            SecretError::Backend(format!("Vault login at {path}: the answer holds no token"))
        })?;
        tracing::info!(accessor = %token.accessor, ttl_secs = token.lifetime.map(|l| l.1.as_secs()), "logged in to Vault");
        Ok(token)
    }

    /// The token to use now: renewed when due, obtained again when it cannot be.
    async fn current_token(&self) -> Result<SecretString, SecretError> {
        let mut slot = self.token.lock().await;
        let now = Instant::now();
        if let Some(t) = slot.as_mut() {
            if !t.due(now) {
                return Ok(t.value.clone());
            }
            if t.renewable && !t.expired(now) {
                let a = self
                    .raw(
                        Method::POST,
                        "auth/token/renew-self",
                        Some(&t.value),
                        Some(&json!({})),
                    )
                    .await;
                if let Some(a) = a.ok().filter(|a| a.ok()) {
                    let ttl = a.body["auth"]["lease_duration"].as_u64().unwrap_or(0);
                    // Renewal can be capped by the token's max TTL: when it
                    // no longer buys time, log in again instead.
                    let before = t.lifetime.map_or(Duration::ZERO, |l| l.1);
                    if ttl > 0 && Duration::from_secs(ttl) * 3 > before {
                        t.lifetime = Some((now, Duration::from_secs(ttl)));
                        tracing::debug!(accessor = %t.accessor, ttl_secs = ttl, "renewed the Vault token");
                        return Ok(t.value.clone());
                    }
                }
            }
            if !self.auth.can_login() {
                // A static token past its time: use it until Vault refuses.
                return Ok(t.value.clone());
            }
        }
        let fresh = self.login().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// Drops the token if it is still `used`, so the next call logs in.
    async fn forget(&self, used: &SecretString) {
        let mut slot = self.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.value.expose() == used.expose())
        {
            *slot = None;
        }
    }

    /// The accessor of the token in use (never the token), if logged in.
    pub async fn token_accessor(&self) -> Option<String> {
        self.token.lock().await.as_ref().map(|t| t.accessor.clone())
    }

    /// A request with the service's token. A 403 with a token obtained by
    /// login (an expired or revoked token answers so) logs in again and
    /// repeats the request once.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, SecretError> {
        let token = self.current_token().await?;
        let a = self.raw(method.clone(), path, Some(&token), body).await?;
        if a.status != 403 || !self.auth.can_login() {
            return Ok(a);
        }
        self.forget(&token).await;
        let token = self.current_token().await?;
        self.raw(method, path, Some(&token), body).await
    }

    /// Checks that Vault answers and the service can log in (start-up).
    pub async fn check(&self) -> Result<(), SecretError> {
        self.current_token().await.map(|_| ())
    }
}

/// A refusal to log in or look up the token: `Denied` for 400/401/403
/// (wrong role or secret id, revoked token), otherwise the store is unavailable.
fn refused(what: &str, a: &Answer) -> SecretError {
    match a.status {
        400 | 401 | 403 => SecretError::Denied(format!("Vault {what}: {}", a.errors())),
        _ => SecretError::Backend(format!("Vault {what}: {}", a.errors())),
    }
}

/// Maps a KV answer that is not a success.
fn kv_error(name: &str, what: &str, a: &Answer) -> SecretError {
    match a.status {
        404 => SecretError::NotFound(name.to_owned()),
        401 | 403 => SecretError::Denied(format!("Vault {what} {name}: {}", a.errors())),
        400 if a.errors().contains("check-and-set") => SecretError::AlreadyExists(name.to_owned()),
        503 => SecretError::Backend(format!("Vault is sealed or unavailable: {}", a.errors())),
        _ => SecretError::Backend(format!("Vault {what} {name}: {}", a.errors())),
    }
}

/// The custom metadata key a Vault admin sets to say when a static
/// credential expires (RFC 3339 or `YYYY-MM-DD`).
pub const EXPIRES_AT: &str = "expires_at";

/// `custom_metadata.expires_at` of a read. A value that is not a date is
/// logged (it names the secret, never data) and ignored: the credential still
/// works, and the test decides the status.
fn expires_at(name: &str, custom: &Value) -> Option<Expiry> {
    let raw = custom[EXPIRES_AT].as_str()?;
    match Expiry::parse_date(raw) {
        Some(at) => Some(Expiry {
            at,
            kind: ExpiryKind::Expires,
        }),
        None => {
            tracing::warn!(secret = %name, value = %raw, "custom_metadata.expires_at is not an RFC 3339 date or YYYY-MM-DD; ignored");
            None
        }
    }
}

/// The KV v2 secret store.
#[derive(Debug)]
pub struct VaultSecretStore {
    client: std::sync::Arc<VaultClient>,
    mount: String,
    prefix: String,
}

impl VaultSecretStore {
    pub fn new(s: &VaultSettings) -> anyhow::Result<VaultSecretStore> {
        let mount = s.kv_mount.trim().trim_matches('/').to_owned();
        anyhow::ensure!(!mount.is_empty(), "MATIH_VAULT_KV_MOUNT must not be empty");
        Ok(VaultSecretStore {
            client: std::sync::Arc::new(VaultClient::new(s)?),
            mount,
            prefix: s.namespace_prefix.clone(),
        })
    }

    /// The client, for dynamic credentials.
    pub fn client(&self) -> std::sync::Arc<VaultClient> {
        self.client.clone()
    }

    /// `<mount>/data/matih/<slug>/<name>` (`kind` = `data` or `metadata`).
    pub fn path(&self, kind: &str, r: &SecretRef) -> String {
        format!("{}/{kind}/{}", self.mount, r.store_path(&self.prefix))
    }

    fn dir(&self, namespace: &str) -> String {
        format!(
            "{}/metadata/{}",
            self.mount,
            super::tenant_dir(&self.prefix, namespace)
        )
    }

    fn data(creds: &Credentials) -> Value {
        Value::Object(
            creds
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.expose().to_owned())))
                .collect(),
        )
    }

    async fn write(&self, r: &SecretRef, creds: &Credentials, cas: u64) -> Result<(), SecretError> {
        let body = json!({"options": {"cas": cas}, "data": Self::data(creds)});
        let a = self
            .client
            .call(Method::POST, &self.path("data", r), Some(&body))
            .await?;
        if a.ok() {
            Ok(())
        } else {
            Err(kv_error(&r.name, "write", &a))
        }
    }

    /// The secret's metadata: versions, times and custom metadata.
    pub async fn metadata(&self, r: &SecretRef) -> Result<Value, SecretError> {
        let a = self
            .client
            .call(Method::GET, &self.path("metadata", r), None)
            .await?;
        if a.ok() {
            Ok(a.body["data"].clone())
        } else {
            Err(kv_error(&r.name, "metadata of", &a))
        }
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    fn kind(&self) -> &'static str {
        "vault"
    }

    async fn create(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        // cas=0: written only if the path holds no secret yet.
        self.write(r, creds, 0).await?;
        let labels = r.labels();
        let a = self
            .client
            .call(
                Method::POST,
                &self.path("metadata", r),
                Some(&json!({"custom_metadata": labels})),
            )
            .await;
        match a {
            Ok(a) if a.ok() => Ok(()),
            other => {
                // A secret without its labels is not left behind.
                let e = match other {
                    Ok(a) => kv_error(&r.name, "labels of", &a),
                    Err(e) => e,
                };
                if let Err(de) = self.delete(r).await {
                    tracing::error!(secret = %r.name, error = %de, "could not remove a secret whose labels failed; the reconciler will find it");
                }
                Err(e)
            }
        }
    }

    async fn get(&self, r: &SecretRef) -> Result<Credentials, SecretError> {
        Ok(self.get_with_expiry(r).await?.credentials)
    }

    /// One read: the data call answers the version's metadata too, custom
    /// metadata included, so `expires_at` costs no second request.
    async fn get_with_expiry(&self, r: &SecretRef) -> Result<Stored, SecretError> {
        let a = self
            .client
            .call(Method::GET, &self.path("data", r), None)
            .await?;
        if !a.ok() {
            return Err(kv_error(&r.name, "read", &a));
        }
        let Some(map) = a.body["data"]["data"].as_object() else {
            // A deleted latest version answers 404 on Vault, data null on some versions.
            return Err(SecretError::NotFound(r.name.clone()));
        };
        Ok(Stored {
            credentials: map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), SecretString::new(s))))
                .collect(),
            expiry: expires_at(&r.name, &a.body["data"]["metadata"]["custom_metadata"]),
        })
    }

    async fn replace(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        // Check-and-set on the current version: a concurrent writer turns into
        // an error instead of a lost update.
        let meta = self.metadata(r).await?;
        let version = meta["current_version"].as_u64().unwrap_or(0);
        if version == 0 {
            return Err(SecretError::NotFound(r.name.clone()));
        }
        match self.write(r, creds, version).await {
            Err(SecretError::AlreadyExists(n)) => Err(SecretError::Backend(format!(
                "secret {n} was written concurrently; try again"
            ))),
            other => other,
        }
    }

    async fn delete(&self, r: &SecretRef) -> Result<(), SecretError> {
        // Every version and the metadata: nothing of the secret stays.
        let a = self
            .client
            .call(Method::DELETE, &self.path("metadata", r), None)
            .await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(kv_error(&r.name, "delete", &a)),
        }
    }

    async fn issue_database_credentials(
        &self,
        mount: &str,
        role: &str,
    ) -> Result<super::dynamic::Issued, SecretError> {
        let path = format!("{mount}/creds/{role}");
        let a = self.client.call(Method::GET, &path, None).await?;
        if !a.ok() {
            let msg = a.errors();
            return Err(match a.status {
                404 => SecretError::NotFound(role.to_owned()),
                400 if msg.contains("unknown role") || msg.contains("role not found") => {
                    SecretError::NotFound(role.to_owned())
                }
                401 | 403 => SecretError::Denied(msg),
                _ => SecretError::Backend(msg),
            });
        }
        let d = &a.body["data"];
        match (
            d["username"].as_str(),
            d["password"].as_str(),
            a.body["lease_id"].as_str(),
        ) {
            (Some(u), Some(p), Some(l)) if !l.is_empty() => Ok(super::dynamic::Issued {
                username: u.to_owned(),
                password: SecretString::new(p),
                lease_id: l.to_owned(),
                lease_secs: a.body["lease_duration"].as_u64().unwrap_or(0),
            }),
            _ => Err(SecretError::Backend(format!(
                "Vault {path}: the answer holds no username, password and lease"
            ))),
        }
    }

    async fn revoke_lease(&self, lease_id: &str) -> Result<(), SecretError> {
        let a = self
            .client
            .call(
                Method::PUT,
                "sys/leases/revoke",
                Some(&json!({ "lease_id": lease_id })),
            )
            .await?;
        if a.ok() {
            Ok(())
        } else {
            Err(refused("lease revocation", &a))
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, SecretError> {
        let a = self
            .client
            .call(
                Method::from_bytes(b"LIST").expect("LIST is a method"),
                &self.dir(namespace),
                None,
            )
            .await?;
        if a.status == 404 {
            return Ok(Vec::new());
        }
        if !a.ok() {
            return Err(kv_error(namespace, "list", &a));
        }
        let mut names: Vec<String> = a.body["data"]["keys"]
            .as_array()
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .filter(|k| k.starts_with("connector-") && !k.ends_with('/'))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    async fn list_with_age(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Option<Duration>)>, SecretError> {
        let now = chrono::Utc::now();
        let mut out = Vec::new();
        for name in self.list(namespace).await? {
            let r = SecretRef {
                namespace: namespace.to_owned(),
                name: name.clone(),
                connector_id: uuid::Uuid::nil(),
                connector_type: String::new(),
            };
            let age = match self.metadata(&r).await {
                Ok(m) => m["created_time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok()),
                Err(SecretError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.push((name, age));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_is_read_from_custom_metadata() {
        let at = |v: Value| expires_at("connector-x", &v).map(|e| (e.at.to_rfc3339(), e.kind));
        assert_eq!(
            at(
                json!({"expires_at": "2026-12-09T10:00:00Z", "matih.ai/connector-type": "postgresql"})
            ),
            Some(("2026-12-09T10:00:00+00:00".to_owned(), ExpiryKind::Expires))
        );
        assert_eq!(
            at(json!({"expires_at": "2026-12-09T12:00:00+02:00"})).map(|x| x.0),
            Some("2026-12-09T10:00:00+00:00".to_owned())
        );
        assert_eq!(
            at(json!({"expires_at": "2026-12-09"})).map(|x| x.0),
            Some("2026-12-09T00:00:00+00:00".to_owned())
        );
        assert_eq!(at(json!({"expires_at": "next tuesday"})), None);
        assert_eq!(at(json!({"matih.ai/connector-id": "x"})), None);
        assert_eq!(at(Value::Null), None);
    }
}
