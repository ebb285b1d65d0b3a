//! Typed reads of `ConnectionConfig::metadata` values, with errors that name
//! the key (never a secret: metadata holds none).

use serde_json::Value;

use crate::{ConnectionConfig, ConnectorError};

/// A non-empty string, trimmed; `None` when absent or null.
pub fn string(cfg: &ConnectionConfig, key: &'static str) -> Result<Option<String>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} is empty"),
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be a string"),
        )),
    }
}

/// An integer in `min..=max`, given as a JSON number or a numeric string.
pub fn u64_in(
    cfg: &ConnectionConfig,
    key: &'static str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConnectorError> {
    let v = match cfg.metadata.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match v {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be an integer from {min} to {max}"),
        )),
    }
}

/// `true` or `false`, as a JSON boolean or the strings `"true"`/`"false"`.
pub fn bool(cfg: &ConnectionConfig, key: &'static str) -> Result<Option<bool>, ConnectorError> {
    match cfg.metadata.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(ConnectorError::invalid_config(
            "metadata",
            format!("metadata.{key} must be true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn cfg(v: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(v).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn typed_reads_and_their_errors() {
        let c =
            cfg(json!({"s": " x ", "blank": "  ", "n": 5, "ns": "7", "b": "TRUE", "nul": null}));
        assert_eq!(string(&c, "s").unwrap().as_deref(), Some("x"));
        assert_eq!(string(&c, "missing").unwrap(), None);
        assert_eq!(string(&c, "nul").unwrap(), None);
        assert_eq!(
            string(&c, "blank").unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        assert!(string(&c, "n")
            .unwrap_err()
            .message()
            .contains("metadata.n"));
        assert_eq!(u64_in(&c, "n", 1, 10).unwrap(), Some(5));
        assert_eq!(u64_in(&c, "ns", 1, 10).unwrap(), Some(7));
        assert!(u64_in(&c, "n", 6, 10).is_err());
        assert!(u64_in(&c, "s", 0, 10).is_err());
        assert_eq!(bool(&c, "b").unwrap(), Some(true));
        assert!(bool(&c, "n").is_err());
    }
}
