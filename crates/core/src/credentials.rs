//! Secret values that never show up in `Debug`, `Display` or serialized output.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A secret string. `Debug` prints `"***"`; there is no `Display` and no
/// `Serialize`, so it cannot be logged or returned by accident. Read it with
/// [`SecretString::expose`] at the point of use.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value itself, to hand to a client at the point of use.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_owned())
    }
}

/// A connector's credentials: named secret values (`username`, `password`,
/// `serviceAccountKey`…). `Debug` lists the key names only.
///
/// Deserializes from a JSON object; non-string values (a service account key
/// given as an object, a number) are kept as their JSON text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<String, SecretString>);

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Credentials::default()
    }

    /// These credentials with `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<SecretString>) {
        self.0.insert(key.into(), value.into());
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<SecretString> {
        self.0.remove(key)
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&SecretString> {
        self.0.get(key)
    }

    /// The value under `key`, or an `INVALID_CONFIGURATION` error naming the key.
    pub fn require(&self, key: &'static str) -> Result<&SecretString, crate::ConnectorError> {
        match self.0.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(crate::ConnectorError::invalid_config(
                "credentials",
                format!("credentials.{key} is required"),
            )),
        }
    }

    /// The key names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether there are no credentials.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many credentials there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Every key with its secret value, for secret stores.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The secret values themselves, for scanning output for leaks in tests.
    pub fn values(&self) -> impl Iterator<Item = &SecretString> {
        self.0.values()
    }

    /// Every key with its value, except the user names ([`USER_NAME_KEYS`]):
    /// the values that must never reach a message, log or response.
    pub fn secrets(&self) -> impl Iterator<Item = (&str, &SecretString)> {
        self.iter().filter(|(k, _)| !USER_NAME_KEYS.contains(k))
    }
}

/// Credential keys whose values say who logs in rather than prove it. They are
/// kept in error messages ("Access denied for user 'reader'"): the user name is
/// what an administrator needs to fix a login, and it is not a secret.
pub const USER_NAME_KEYS: &[&str] = &["username"];

/// `text` with every secret value in it replaced by `***`: the one redaction
/// rule for messages built from a source's answers. Pass passwords, tokens and
/// keys, never user names. Values shorter than 3 characters are left alone;
/// they would blank out ordinary words.
pub fn redact_secrets<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| s.len() >= 3)
        .fold(text.to_owned(), |t, s| t.replace(s, "***"))
}

impl FromIterator<(String, SecretString)> for Credentials {
    fn from_iter<I: IntoIterator<Item = (String, SecretString)>>(iter: I) -> Self {
        Credentials(iter.into_iter().collect())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for k in self.0.keys() {
            m.entry(k, &format_args!("***"));
        }
        m.finish()
    }
}

impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Credentials;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of credential names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Credentials, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    // The value's text is never echoed back in the error.
                    let value: serde_json::Value = map.next_value().map_err(|_| {
                        de::Error::custom(format!("credentials.{key}: invalid value"))
                    })?;
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => continue,
                        other => other.to_string(),
                    };
                    out.insert(key, SecretString(text));
                }
                Ok(Credentials(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_values() {
        let c: Credentials = serde_json::from_str(
            r#"{"username":"reader","password":"hunter2-secret","key":{"private_key":"PK-SECRET"}}"#,
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("password"), "{dbg}");
        for secret in ["reader", "hunter2-secret", "PK-SECRET"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert_eq!(format!("{:?}", c.get("password").unwrap()), "\"***\"");
        let secret_keys: Vec<_> = c.secrets().map(|(k, _)| k).collect();
        assert!(!secret_keys.contains(&"username"), "{secret_keys:?}");
        assert!(secret_keys.contains(&"password"), "{secret_keys:?}");
        assert!(c.get("key").unwrap().expose().contains("PK-SECRET"));
    }

    #[test]
    fn redaction_hides_secrets_and_keeps_user_names() {
        let c = Credentials::new()
            .with("username", "reader7")
            .with("password", "hunter2-secret");
        let secrets: Vec<&str> = c.secrets().map(|(_, v)| v.expose()).collect();
        let text = redact_secrets(
            "password authentication failed for user \"reader7\" (hunter2-secret); at",
            &secrets,
        );
        assert_eq!(
            text,
            "password authentication failed for user \"reader7\" (***); at"
        );
        // Too short to be told from ordinary words: left alone.
        assert_eq!(redact_secrets("at the gate", &["at"]), "at the gate");
    }

    #[test]
    fn require_names_the_key_not_the_value() {
        let c = Credentials::new().with("username", "u");
        let err = c.require("password").unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidConfiguration);
        assert!(err.message().contains("credentials.password"));
    }
}
