//! `metadata.sshTunnel` and the tunnel credentials, parsed once and checked
//! without any I/O.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use russh::keys::ssh_key::{public::KeyData, Algorithm, Fingerprint, HashAlg};
use russh::keys::{PrivateKey, PublicKey};
use serde_json::Value;

use super::{METADATA_KEY, PASSWORD, PRIVATE_KEY, PRIVATE_KEY_PASSPHRASE};
use crate::{ConnectionConfig, ConnectorError, Credentials, SecretString};

const FIELD: &str = "metadata.sshTunnel";
const DEFAULT_PORT: u16 = 22;

/// A validated tunnel: where the bastion is, whom to log in as, which host key
/// to expect, and how to authenticate. `Debug` shows no secret.
#[derive(Clone)]
pub struct TunnelSpec {
    host: String,
    port: u16,
    username: String,
    host_key: HostKeyPin,
    auth: TunnelAuth,
}

/// The bastion's host key as the tenant pinned it.
#[derive(Clone, PartialEq, Eq)]
pub enum HostKeyPin {
    /// The key itself (known_hosts form): the presented key must be equal.
    Key(KeyData),
    /// A `SHA256:…` (or `SHA512:…`) fingerprint of the key.
    Fingerprint(Fingerprint),
}

/// How the tunnel authenticates to the bastion. `Debug` names the method only.
#[derive(Clone)]
pub enum TunnelAuth {
    /// A decoded (and, if it was encrypted, decrypted) private key.
    Key(Arc<PrivateKey>),
    /// A password.
    Password(SecretString),
}

impl TunnelSpec {
    /// Reads `metadata.sshTunnel` and the tunnel credentials. `Ok(None)` when
    /// the connector has no tunnel; an `INVALID_CONFIGURATION` error naming
    /// the field (never a secret value) when something is wrong.
    ///
    /// Decoding an encrypted private key runs its key-derivation function
    /// (bcrypt-pbkdf for OpenSSH keys), which is deliberately slow; callers on
    /// an async runtime with many tunnels may run this in `spawn_blocking`.
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Option<TunnelSpec>, ConnectorError> {
        let tunnel_creds = [PRIVATE_KEY, PRIVATE_KEY_PASSPHRASE, PASSWORD]
            .into_iter()
            .filter(|k| creds.get(k).is_some())
            .collect::<Vec<_>>();
        let obj = match cfg.metadata.get(METADATA_KEY) {
            None | Some(Value::Null) => {
                if let Some(key) = tunnel_creds.first() {
                    return Err(invalid(
                        "credentials",
                        format!("credentials.{key} is given but metadata.sshTunnel is not"),
                    ));
                }
                return Ok(None);
            }
            Some(Value::Object(obj)) => obj,
            Some(_) => {
                return Err(invalid(
                    FIELD,
                    "metadata.sshTunnel must be an object {host, port, username, hostKey}",
                ))
            }
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "host" | "port" | "username" | "hostKey") {
                return Err(invalid(
                    FIELD,
                    format!(
                        "unknown key {:?} in metadata.sshTunnel: expected host, port, username, hostKey",
                        key.chars().take(40).collect::<String>()
                    ),
                ));
            }
        }
        let host = required_string(obj, "host")?;
        crate::config::check_host_name("metadata.sshTunnel.host", &host)?;
        let port = match obj.get("port") {
            None | Some(Value::Null) => DEFAULT_PORT,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match n {
                    Some(n @ 1..=65535) => n as u16,
                    _ => {
                        return Err(invalid(
                            "metadata.sshTunnel.port",
                            "metadata.sshTunnel.port must be 1-65535",
                        ))
                    }
                }
            }
        };
        let username = required_string(obj, "username")?;
        if username.len() > 256 || username.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "metadata.sshTunnel.username",
                "metadata.sshTunnel.username must be 1-256 characters without control characters",
            ));
        }
        let host_key = HostKeyPin::parse(&required_string(obj, "hostKey").map_err(|_| {
            invalid(
                "metadata.sshTunnel.hostKey",
                "metadata.sshTunnel.hostKey is required: the bastion's public host key \
                 ('ssh-ed25519 AAAA…', as in known_hosts) or its 'SHA256:…' fingerprint; \
                 keys are never trusted on first use",
            )
        })?)?;
        let auth = TunnelAuth::from_credentials(creds)?;
        Ok(Some(TunnelSpec {
            host,
            port,
            username,
            host_key,
            auth,
        }))
    }

    /// A spec built from parts (embedders and tests that do not go through
    /// metadata).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
        host_key: HostKeyPin,
        auth: TunnelAuth,
    ) -> TunnelSpec {
        TunnelSpec {
            host: host.into(),
            port,
            username: username.into(),
            host_key,
            auth,
        }
    }

    /// The bastion's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The bastion's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login on the bastion.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The pinned host key.
    pub fn host_key(&self) -> &HostKeyPin {
        &self.host_key
    }

    /// How the tunnel authenticates.
    pub fn auth(&self) -> &TunnelAuth {
        &self.auth
    }

    /// `host:port` of the bastion, for messages (`[v6]:port` for IPv6).
    pub fn bastion(&self) -> String {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        if bare.contains(':') {
            format!("[{bare}]:{}", self.port)
        } else {
            format!("{bare}:{}", self.port)
        }
    }
}

impl fmt::Debug for TunnelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelSpec")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("host_key", &self.host_key)
            .field("auth", &self.auth)
            .finish()
    }
}

impl HostKeyPin {
    /// Parses a known_hosts-form key (`ssh-ed25519 AAAA… [comment]`, with or
    /// without the leading host pattern of a known_hosts line) or a
    /// `SHA256:…`/`SHA512:…` fingerprint.
    pub fn parse(text: &str) -> Result<HostKeyPin, ConnectorError> {
        let field = "metadata.sshTunnel.hostKey";
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("MD5:") {
            let _ = rest;
            return Err(invalid(
                field,
                "MD5 host key fingerprints are not accepted: give the 'SHA256:…' fingerprint \
                 (ssh-keygen -lf) or the key itself",
            ));
        }
        if text.starts_with("SHA256:") || text.starts_with("SHA512:") {
            return Fingerprint::from_str(text)
                .map(HostKeyPin::Fingerprint)
                .map_err(|_| {
                    invalid(
                        field,
                        "metadata.sshTunnel.hostKey is not a valid SHA256 fingerprint \
                         (expected 'SHA256:' and 43 base64 characters, as ssh-keygen -lf prints)",
                    )
                });
        }
        let tokens: Vec<&str> = text.split_whitespace().collect();
        if tokens.first().is_some_and(|t| t.starts_with('@')) {
            return Err(invalid(
                field,
                "known_hosts markers (@cert-authority, @revoked) are not supported: give the \
                 bastion's own host key",
            ));
        }
        // Accept a whole known_hosts line: skip the host pattern(s) before
        // the key type.
        let at = tokens
            .iter()
            .position(|t| Algorithm::from_str(t).is_ok())
            .filter(|i| i + 1 < tokens.len());
        let Some(i) = at else {
            return Err(invalid(
                field,
                "metadata.sshTunnel.hostKey must be the bastion's public host key in known_hosts \
                 form ('ssh-ed25519 AAAA…') or its 'SHA256:…' fingerprint",
            ));
        };
        let line = format!("{} {}", tokens[i], tokens[i + 1]);
        PublicKey::from_openssh(&line)
            .map(|k| HostKeyPin::Key(k.key_data().clone()))
            .map_err(|_| {
                invalid(
                    field,
                    format!(
                        "metadata.sshTunnel.hostKey is not a valid {} public key",
                        tokens[i]
                    ),
                )
            })
    }

    /// Whether the key the bastion presented is the pinned one.
    pub fn matches(&self, presented: &KeyData) -> bool {
        match self {
            HostKeyPin::Key(k) => k == presented,
            HostKeyPin::Fingerprint(fp) => {
                Fingerprint::new(fp.algorithm(), presented).as_bytes() == fp.as_bytes()
            }
        }
    }

    /// The pin as a fingerprint in its own hash (`SHA256:…`), for messages.
    pub fn fingerprint(&self) -> String {
        match self {
            HostKeyPin::Key(k) => k.fingerprint(HashAlg::Sha256).to_string(),
            HostKeyPin::Fingerprint(fp) => fp.to_string(),
        }
    }

    /// The hash the pin compares with (SHA-256 for pinned keys).
    pub(crate) fn hash_alg(&self) -> HashAlg {
        match self {
            HostKeyPin::Key(_) => HashAlg::Sha256,
            HostKeyPin::Fingerprint(fp) => fp.algorithm(),
        }
    }
}

impl fmt::Debug for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKeyPin({})", self.fingerprint())
    }
}

impl TunnelAuth {
    /// Exactly one of `sshPrivateKey` (with `sshPrivateKeyPassphrase` when it
    /// is encrypted) and `sshPassword`.
    pub fn from_credentials(creds: &Credentials) -> Result<TunnelAuth, ConnectorError> {
        let present = |k| creds.get(k).filter(|v| !v.is_empty());
        let key = present(PRIVATE_KEY);
        let passphrase = present(PRIVATE_KEY_PASSPHRASE);
        let password = present(PASSWORD);
        match (key, password) {
            (Some(_), Some(_)) => Err(invalid(
                "credentials",
                "give one of credentials.sshPrivateKey and credentials.sshPassword, not both",
            )),
            (None, None) => Err(invalid(
                "credentials",
                "an SSH tunnel needs credentials.sshPrivateKey or credentials.sshPassword",
            )),
            (None, Some(_)) if passphrase.is_some() => Err(invalid(
                "credentials",
                "credentials.sshPrivateKeyPassphrase is given without credentials.sshPrivateKey",
            )),
            (None, Some(pw)) => Ok(TunnelAuth::Password(pw.clone())),
            (Some(key), _) => {
                decode_private_key(key, passphrase).map(|k| TunnelAuth::Key(Arc::new(k)))
            }
        }
    }

    /// `"key"` or `"password"`, for messages.
    pub fn method(&self) -> &'static str {
        match self {
            TunnelAuth::Key(_) => "key",
            TunnelAuth::Password(_) => "password",
        }
    }
}

impl fmt::Debug for TunnelAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelAuth::Key(k) => write!(f, "Key({}, ***)", k.algorithm()),
            TunnelAuth::Password(_) => f.write_str("Password(***)"),
        }
    }
}

/// OpenSSH or PEM, with the lines trimmed (keys pasted into forms pick up
/// indentation and CRLFs). Error messages name the credential, never its
/// content, and do not carry the decoder's error (which can quote input).
fn decode_private_key(
    key: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<PrivateKey, ConnectorError> {
    let text: String = key
        .expose()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    if !text.starts_with("-----BEGIN ") {
        return Err(invalid(
            "credentials",
            "credentials.sshPrivateKey must be a PEM or OpenSSH private key \
             (-----BEGIN … PRIVATE KEY-----)",
        ));
    }
    // PEM encryption is visible in the armour; russh reports it only for
    // OpenSSH keys (`KeyIsEncrypted`).
    let pem_encrypted = text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED");
    if pem_encrypted && passphrase.is_none() {
        return Err(encrypted_without_passphrase());
    }
    match russh::keys::decode_secret_key(&text, passphrase.map(SecretString::expose)) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(encrypted_without_passphrase()),
        Err(russh::keys::Error::UnsupportedKeyType {
            key_type_string, ..
        }) => Err(invalid(
            "credentials",
            format!(
                "credentials.sshPrivateKey has an unsupported key type {:?} \
                 (supported: ed25519, ecdsa, rsa)",
                key_type_string.chars().take(40).collect::<String>()
            ),
        )),
        Err(_) if passphrase.is_some() => Err(invalid(
            "credentials",
            "credentials.sshPrivateKey could not be decoded with credentials.sshPrivateKeyPassphrase \
             (wrong passphrase, or not an OpenSSH or PEM private key)",
        )),
        Err(_) => Err(invalid(
            "credentials",
            "credentials.sshPrivateKey is not a valid OpenSSH or PEM private key",
        )),
    }
}

fn encrypted_without_passphrase() -> ConnectorError {
    invalid(
        "credentials",
        "credentials.sshPrivateKey is encrypted: give credentials.sshPrivateKeyPassphrase",
    )
}

fn required_string(
    obj: &serde_json::Map<String, Value>,
    key: &'static str,
) -> Result<String, ConnectorError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        _ => Err(invalid(
            FIELD,
            format!("metadata.sshTunnel.{key} is required (a non-empty string)"),
        )),
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid_config(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    /// A throwaway key from a fixed seed, made at test time (no key material
    /// in the source), as OpenSSH private-key text and known_hosts-form public key.
    fn test_key() -> (String, String) {
        use russh::keys::ssh_key::{private::Ed25519Keypair, LineEnding};
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&[7u8; 32]));
        let private = key.to_openssh(LineEnding::LF).unwrap().to_string();
        let public = key.public_key().to_openssh().unwrap();
        (private, public)
    }

    fn cfg(tunnel: Value) -> ConnectionConfig {
        let mut c = ConnectionConfig::default();
        c.metadata.insert(METADATA_KEY.into(), tunnel);
        c
    }

    fn key_creds() -> Credentials {
        Credentials::new().with(PRIVATE_KEY, test_key().0)
    }

    #[test]
    fn parses_a_key_tunnel_and_hides_the_key() {
        let spec = TunnelSpec::parse(
            &cfg(
                json!({"host": "bastion.example.com", "port": 2222, "username": "matih",
                        "hostKey": test_key().1}),
            ),
            &key_creds(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.bastion(), "bastion.example.com:2222");
        assert_eq!(spec.username(), "matih");
        assert_eq!(spec.auth().method(), "key");
        let dbg = format!("{spec:?}");
        assert!(dbg.contains("SHA256:"), "{dbg}");
        let private = test_key().0;
        let body = private.lines().nth(2).unwrap();
        assert!(!dbg.contains(body), "{dbg}");
        let presented = PublicKey::from_openssh(&test_key().1).unwrap();
        assert!(spec.host_key().matches(presented.key_data()));
    }

    #[test]
    fn no_tunnel_is_none_and_stray_tunnel_credentials_are_refused() {
        assert!(
            TunnelSpec::parse(&ConnectionConfig::default(), &Credentials::new())
                .unwrap()
                .is_none()
        );
        assert!(TunnelSpec::parse(&cfg(Value::Null), &Credentials::new())
            .unwrap()
            .is_none());
        let err = TunnelSpec::parse(&ConnectionConfig::default(), &key_creds()).unwrap_err();
        assert!(err.message().contains("sshPrivateKey is given"), "{err}");
    }

    #[test]
    fn host_key_forms() {
        let public = test_key().1;
        let key = PublicKey::from_openssh(&public).unwrap();
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        for text in [
            public.clone(),
            format!("[bastion]:2222,10.0.0.5 {public} comment"),
            fp.clone(),
            format!("  {fp}  "),
        ] {
            let pin = HostKeyPin::parse(&text).unwrap();
            assert!(pin.matches(key.key_data()), "{text}");
            assert_eq!(pin.fingerprint(), fp);
        }
        let sha512 = key.fingerprint(HashAlg::Sha512).to_string();
        assert!(HostKeyPin::parse(&sha512).unwrap().matches(key.key_data()));
        let other =
            HostKeyPin::parse("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert!(!other.matches(key.key_data()));
    }

    #[test]
    fn rejects_bad_tunnels_naming_the_field() {
        let good = json!({"host": "b", "port": 22, "username": "u", "hostKey": test_key().1});
        let with = |k: &str, v: Value| {
            let mut t = good.clone();
            t[k] = v;
            t
        };
        let without = |k: &str| {
            let mut t = good.clone();
            t.as_object_mut().unwrap().remove(k);
            t
        };
        let cases = [
            (json!("bastion:22"), "must be an object"),
            (without("hostKey"), "hostKey is required"),
            (with("hostKey", json!("")), "hostKey is required"),
            (with("hostKey", json!("MD5:16:27:ac")), "MD5"),
            (with("hostKey", json!("SHA256:tooshort")), "fingerprint"),
            (
                with("hostKey", json!("ssh-ed25519 AAAAnotbase64!!")),
                "not a valid ssh-ed25519",
            ),
            (with("hostKey", json!("just words")), "known_hosts"),
            (
                with("hostKey", json!("@cert-authority * ssh-ed25519 AAAA")),
                "markers",
            ),
            (without("host"), "host is required"),
            (with("host", json!("bad host")), "not a valid host"),
            (without("username"), "username is required"),
            (with("port", json!(0)), "1-65535"),
            (with("port", json!(70000)), "1-65535"),
            (with("port", json!("x")), "1-65535"),
            (with("hostkey", json!("x")), "unknown key \"hostkey\""),
        ];
        for (tunnel, needle) in cases {
            let err = TunnelSpec::parse(&cfg(tunnel.clone()), &key_creds()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{tunnel}");
            assert!(err.message().contains(needle), "{tunnel}: {err}");
        }
        // The port defaults to 22 and may be a numeric string.
        let spec = TunnelSpec::parse(&cfg(without("port")), &key_creds())
            .unwrap()
            .unwrap();
        assert_eq!(spec.port(), 22);
        let spec = TunnelSpec::parse(&cfg(with("port", json!("2200"))), &key_creds())
            .unwrap()
            .unwrap();
        assert_eq!(spec.port(), 2200);
    }

    #[test]
    fn credential_combinations_and_bad_keys_never_echo_secrets() {
        let t = cfg(json!({"host": "b", "username": "u", "hostKey": test_key().1}));
        let pw = Credentials::new().with(PASSWORD, "pw-SECRET-1");
        let spec = TunnelSpec::parse(&t, &pw).unwrap().unwrap();
        assert_eq!(spec.auth().method(), "password");
        assert!(!format!("{spec:?}").contains("pw-SECRET-1"));

        let garbage = "-----BEGIN OPENSSH PRIVATE KEY-----\nGARBAGE-SECRET\n-----END OPENSSH PRIVATE KEY-----";
        let cases = [
            (Credentials::new(), "needs credentials.sshPrivateKey or"),
            (key_creds().with(PASSWORD, "pw-SECRET-1"), "not both"),
            (
                pw.clone().with(PRIVATE_KEY_PASSPHRASE, "pp-SECRET-2"),
                "without credentials.sshPrivateKey",
            ),
            (
                Credentials::new().with(PRIVATE_KEY, "not a key SECRET-3"),
                "must be a PEM or OpenSSH",
            ),
            (
                Credentials::new().with(PRIVATE_KEY, garbage),
                "not a valid OpenSSH or PEM",
            ),
            (
                Credentials::new()
                    .with(PRIVATE_KEY, garbage)
                    .with(PRIVATE_KEY_PASSPHRASE, "pp-SECRET-2"),
                "wrong passphrase",
            ),
        ];
        for (creds, needle) in cases {
            let err = TunnelSpec::parse(&t, &creds).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{needle}");
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(needle), "{shown}");
            for secret in ["SECRET", "GARBAGE"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        // Indented, CRLF-ended keys (pasted into a form) still decode.
        let pasted: String = test_key()
            .0
            .lines()
            .map(|l| format!("    {l}\r\n"))
            .collect();
        let creds = Credentials::new().with(PRIVATE_KEY, pasted);
        assert_eq!(
            TunnelSpec::parse(&t, &creds)
                .unwrap()
                .unwrap()
                .auth()
                .method(),
            "key"
        );
    }
}
