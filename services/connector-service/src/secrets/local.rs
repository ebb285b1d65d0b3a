//! The embedded secret store: one AES-256-GCM encrypted file per secret under
//! `<data dir>/secrets/<namespace>/<name>.secret`, a fresh random nonce per
//! write, the namespace and name bound in as associated data (a file renamed or
//! copied elsewhere does not decrypt), atomic replacement by rename.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use matih_connector_core::{Credentials, SecretString};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{SecretError, SecretRef, SecretStore};

const MAGIC: &[u8; 4] = b"MSK1";

/// Reads a 32-byte key file, or creates one (mode 0600) holding fresh random bytes.
pub fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse_key(text.trim())
                .with_context(|| format!("{} does not hold a 32-byte key", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(hex(&key).as_bytes())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key as 64 hex digits or base64 of 32 bytes.
pub fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .context("not hex or base64")?
    };
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key must be 32 bytes"))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    connector_id: String,
    connector_type: String,
    data: std::collections::BTreeMap<String, String>,
}

pub struct LocalSecretStore {
    root: PathBuf,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for LocalSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSecretStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> SecretError {
    SecretError::Backend(e.to_string())
}

/// Namespaces and names come from validated slugs and UUIDs; this refuses
/// anything else so no path can leave the store's root.
fn safe_component(s: &str) -> Result<&str, SecretError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-');
    if ok {
        Ok(s)
    } else {
        Err(SecretError::Backend(format!(
            "invalid secret path component {s:?}"
        )))
    }
}

impl LocalSecretStore {
    pub fn new(root: PathBuf, key: [u8; 32]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        Ok(LocalSecretStore {
            root,
            cipher: Aes256Gcm::new(&key.into()),
        })
    }

    fn path(&self, r: &SecretRef) -> Result<PathBuf, SecretError> {
        Ok(self
            .root
            .join(safe_component(&r.namespace)?)
            .join(format!("{}.secret", safe_component(&r.name)?)))
    }

    fn seal(&self, r: &SecretRef, creds: &Credentials) -> Result<Vec<u8>, SecretError> {
        let stored = Stored {
            connector_id: r.connector_id.to_string(),
            connector_type: r.connector_type.clone(),
            data: creds
                .iter()
                .map(|(k, v)| (k.to_owned(), v.expose().to_owned()))
                .collect(),
        };
        let plain = serde_json::to_vec(&stored).map_err(backend)?;
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = format!("{}/{}", r.namespace, r.name);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Backend("encryption failed".into()))?;
        let mut out = Vec::with_capacity(4 + 12 + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, r: &SecretRef, bytes: &[u8]) -> Result<Credentials, SecretError> {
        if bytes.len() < 16 || &bytes[..4] != MAGIC {
            return Err(SecretError::Backend(format!(
                "{} is not a secret file",
                r.name
            )));
        }
        let aad = format!("{}/{}", r.namespace, r.name);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&bytes[4..16]),
                Payload {
                    msg: &bytes[16..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                SecretError::Denied(format!(
                    "{} does not decrypt with the configured key",
                    r.name
                ))
            })?;
        let stored: Stored = serde_json::from_slice(&plain).map_err(backend)?;
        Ok(stored
            .data
            .into_iter()
            .map(|(k, v)| (k, SecretString::new(v)))
            .collect())
    }

    /// Writes a temporary file (0600, synced) beside the target.
    fn write_temp(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(tmp)
    }
}

#[async_trait]
impl SecretStore for LocalSecretStore {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        let path = self.path(r)?;
        let bytes = self.seal(r, creds)?;
        let name = r.name.clone();
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().expect("secret paths have a parent");
            std::fs::create_dir_all(dir).map_err(backend)?;
            let tmp = Self::write_temp(dir, &bytes).map_err(backend)?;
            // A hard link fails when the target exists: create-if-absent, atomically.
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(SecretError::AlreadyExists(name))
                }
                Err(e) => Err(backend(e)),
            }
        })
        .await
        .map_err(backend)?
    }

    async fn get(&self, r: &SecretRef) -> Result<Credentials, SecretError> {
        let path = self.path(r)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => self.open(r, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SecretError::NotFound(r.name.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn replace(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        let path = self.path(r)?;
        let bytes = self.seal(r, creds)?;
        let name = r.name.clone();
        tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Err(SecretError::NotFound(name));
            }
            let dir = path.parent().expect("secret paths have a parent");
            let tmp = Self::write_temp(dir, &bytes).map_err(backend)?;
            std::fs::rename(&tmp, &path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                backend(e)
            })
        })
        .await
        .map_err(backend)?
    }

    async fn delete(&self, r: &SecretRef) -> Result<(), SecretError> {
        match tokio::fs::remove_file(self.path(r)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, SecretError> {
        let dir = self.root.join(safe_component(namespace)?);
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(backend(e)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(backend)? {
            if let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".secret"))
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    async fn list_with_age(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Option<std::time::Duration>)>, SecretError> {
        let dir = self.root.join(safe_component(namespace)?);
        let mut out = Vec::new();
        for name in self.list(namespace).await? {
            // A file removed meanwhile has no age; the next pass will not list it.
            let age = tokio::fs::metadata(dir.join(format!("{name}.secret")))
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .map(|t| t.elapsed().unwrap_or_default());
            out.push((name, age));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ConnectorType;

    #[tokio::test]
    async fn round_trip_nonce_per_write_and_no_plaintext() {
        let dir =
            std::env::temp_dir().join(format!("matih-local-secrets-{}", uuid::Uuid::new_v4()));
        let store = LocalSecretStore::new(dir.join("secrets"), [9u8; 32]).unwrap();
        let r = SecretRef::new(
            "matih-",
            "acme",
            uuid::Uuid::new_v4(),
            &ConnectorType::Postgresql,
        );
        let creds = Credentials::new()
            .with("username", "reader")
            .with("password", "pa55-SECRET-word");
        store.create(&r, &creds).await.unwrap();
        assert!(matches!(
            store.create(&r, &creds).await,
            Err(SecretError::AlreadyExists(_))
        ));
        let path = store.path(&r).unwrap();
        let first = std::fs::read(&path).unwrap();
        assert!(!String::from_utf8_lossy(&first).contains("pa55-SECRET-word"));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(store.get(&r).await.unwrap(), creds);
        store.replace(&r, &creds).await.unwrap();
        let second = std::fs::read(&path).unwrap();
        assert_ne!(first[4..16], second[4..16], "a fresh nonce per write");
        assert_eq!(
            store.list("matih-acme").await.unwrap(),
            vec![r.name.clone()]
        );
        // A file moved to another secret's name does not decrypt.
        let other = SecretRef {
            name: "connector-ffffffff".into(),
            ..r.clone()
        };
        std::fs::write(store.path(&other).unwrap(), &second).unwrap();
        assert!(matches!(
            store.get(&other).await,
            Err(SecretError::Denied(_))
        ));
        // A different key cannot read it.
        let wrong = LocalSecretStore::new(dir.join("secrets"), [1u8; 32]).unwrap();
        assert!(matches!(wrong.get(&r).await, Err(SecretError::Denied(_))));
        store.delete(&r).await.unwrap();
        store.delete(&r).await.unwrap();
        assert!(matches!(store.get(&r).await, Err(SecretError::NotFound(_))));
        let key = load_or_create_key_file(&dir.join("k")).unwrap();
        assert_eq!(load_or_create_key_file(&dir.join("k")).unwrap(), key);
        assert_eq!(
            std::fs::metadata(dir.join("k"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
