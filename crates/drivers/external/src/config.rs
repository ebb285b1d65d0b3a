//! What an operator configures: one `[custom_types.NAME]` table per custom
//! connector type, in the service's configuration file or in a file of its own
//! (the service's `custom_types_file`, the CLI's `--custom-types FILE`).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use matih_connector_core::{ConnectorError, ConnectorType};
use serde::{Deserialize, Serialize};

/// The protocol a custom type's executable speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// An Airbyte source: `spec`, `check --config F`, `discover --config F`,
    /// one JSON message a line on standard output.
    Airbyte,
    /// A Singer tap: `--config F --discover` prints a catalog.
    Singer,
}

impl Protocol {
    /// `airbyte` or `singer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Airbyte => "airbyte",
            Protocol::Singer => "singer",
        }
    }
}

/// How long a run may take when the operator says nothing.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// How much a run may print on standard output when the operator says nothing.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 << 20;

/// One custom type: the `[custom_types.NAME]` table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTypeConfig {
    /// `airbyte` or `singer`.
    pub protocol: Protocol,
    /// The executable (absolute, or a name looked up on the service's `PATH`)
    /// and its leading arguments; the protocol's arguments follow them.
    pub command: Vec<String>,
    /// Names of the service's environment variables the child may see. Nothing
    /// else is inherited (the child gets `PATH`, `HOME`, `TMPDIR` and `LANG`
    /// of its own).
    #[serde(default)]
    pub env: Vec<String>,
    /// The limit for one run, in seconds (a connectivity test or discovery
    /// also stays within the connector's own time limits).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The most a run may print on standard output; more is a
    /// `PROTOCOL_ERROR` and the run is killed.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
    /// The type's name for people; the type name when absent.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_max_output_bytes() -> usize {
    DEFAULT_MAX_OUTPUT_BYTES
}

impl CustomTypeConfig {
    /// Checks one table; `name` is its key, for messages.
    pub fn validate(&self, name: &str) -> Result<(), ConnectorError> {
        let bad = |msg: String| {
            ConnectorError::invalid_config("custom_types", format!("custom_types.{name}: {msg}"))
        };
        let Some(program) = self.command.first() else {
            return Err(bad("command must name an executable".into()));
        };
        if program.is_empty() || (program.contains('/') && !program.starts_with('/')) {
            return Err(bad(format!(
                "command {program:?} must be an absolute path or a name looked up on PATH"
            )));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(bad("command arguments must not contain NUL".into()));
        }
        for var in &self.env {
            let valid = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(bad(format!("env entry {var:?} is not a variable name")));
            }
            // The service's own settings hold its secrets (store keys, JWT
            // secrets, database URLs): a child never sees them.
            if var.to_ascii_uppercase().starts_with("MATIH_") {
                return Err(bad(format!(
                    "env entry {var:?}: the service's own MATIH_* variables are never passed on"
                )));
            }
        }
        if self.timeout_secs == 0 {
            return Err(bad("timeout_secs must be positive".into()));
        }
        if self.max_output_bytes < 1024 {
            return Err(bad("max_output_bytes must be at least 1024".into()));
        }
        Ok(())
    }
}

/// Every configured custom type, by type name (upper case, as on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomTypes(BTreeMap<String, CustomTypeConfig>);

/// A file holding only `[custom_types.NAME]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomTypesFile {
    #[serde(default)]
    custom_types: CustomTypes,
}

impl CustomTypes {
    /// No custom types.
    pub fn new() -> Self {
        CustomTypes::default()
    }

    /// Parses a TOML document of `[custom_types.NAME]` tables and checks it.
    pub fn from_toml(text: &str) -> Result<CustomTypes, ConnectorError> {
        let file: CustomTypesFile = toml::from_str(text).map_err(|e| {
            ConnectorError::invalid_config("custom_types", format!("custom types: {e}"))
        })?;
        file.custom_types.checked()
    }

    /// Reads and checks a file of `[custom_types.NAME]` tables.
    pub fn load(path: &Path) -> Result<CustomTypes, ConnectorError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConnectorError::invalid_config(
                "custom_types",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        CustomTypes::from_toml(&text).map_err(|e| {
            ConnectorError::invalid_config(
                "custom_types",
                format!("{}: {}", path.display(), e.message()),
            )
        })
    }

    /// Checks every table and normalizes the names to their wire form
    /// (`faker` → `FAKER`). A standard type's name is refused: custom types
    /// add types, they never replace a built-in driver.
    pub fn checked(self) -> Result<CustomTypes, ConnectorError> {
        let mut out = BTreeMap::new();
        for (name, cfg) in self.0 {
            let ty = ConnectorType::from_str(&name).map_err(|e| {
                ConnectorError::invalid_config(
                    "custom_types",
                    format!("custom_types.{name}: {}", e.message()),
                )
            })?;
            if !ty.is_custom() {
                return Err(ConnectorError::invalid_config(
                    "custom_types",
                    format!("custom_types.{name}: {ty} is a standard type and cannot be redefined"),
                ));
            }
            cfg.validate(&name)?;
            if out.insert(ty.as_str().to_owned(), cfg).is_some() {
                return Err(ConnectorError::invalid_config(
                    "custom_types",
                    format!("custom_types.{name}: the type {ty} is defined twice"),
                ));
            }
        }
        Ok(CustomTypes(out))
    }

    /// Adds `other`'s types; a type defined in both is an error.
    pub fn merge(mut self, other: CustomTypes) -> Result<CustomTypes, ConnectorError> {
        for (name, cfg) in other.0 {
            if self.0.contains_key(&name) {
                return Err(ConnectorError::invalid_config(
                    "custom_types",
                    format!("custom_types.{name} is defined twice"),
                ));
            }
            self.0.insert(name, cfg);
        }
        Ok(self)
    }

    /// The types with their settings, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &CustomTypeConfig)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The settings of `name` (wire form).
    pub fn get(&self, name: &str) -> Option<&CustomTypeConfig> {
        self.0.get(name)
    }

    /// Whether no type is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;

    #[test]
    fn parses_tables_with_defaults_and_normalizes_names() {
        let types = CustomTypes::from_toml(
            r#"
            [custom_types.faker]
            protocol = "airbyte"
            command = ["source-faker"]

            [custom_types.PG_TAP]
            protocol = "singer"
            command = ["/opt/taps/bin/tap-postgres"]
            env = ["HTTPS_PROXY"]
            timeout_secs = 30
            max_output_bytes = 65536
            "#,
        )
        .unwrap();
        let faker = types.get("FAKER").unwrap();
        assert_eq!(faker.protocol, Protocol::Airbyte);
        assert_eq!(faker.timeout_secs, DEFAULT_TIMEOUT_SECS);
        assert_eq!(faker.max_output_bytes, DEFAULT_MAX_OUTPUT_BYTES);
        let tap = types.get("PG_TAP").unwrap();
        assert_eq!(tap.protocol, Protocol::Singer);
        assert_eq!(tap.env, vec!["HTTPS_PROXY"]);
        assert_eq!(tap.timeout_secs, 30);
    }

    #[test]
    fn rejects_what_an_operator_can_get_wrong() {
        let cases = [
            ("[custom_types.X]\nprotocol = \"odbc\"\ncommand = [\"x\"]", "odbc"),
            ("[custom_types.X]\nprotocol = \"airbyte\"\ncommand = []", "executable"),
            (
                "[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"bin/x\"]",
                "absolute path",
            ),
            (
                "[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"x\"]\nenv = [\"MATIH_SECRET_KEY\"]",
                "never passed on",
            ),
            (
                "[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"x\"]\nenv = [\"A=B\"]",
                "not a variable name",
            ),
            (
                "[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"x\"]\ntimeout_secs = 0",
                "timeout_secs",
            ),
            (
                "[custom_types.POSTGRESQL]\nprotocol = \"singer\"\ncommand = [\"tap-postgres\"]",
                "standard type",
            ),
            (
                "[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"x\"]\nshell = true",
                "shell",
            ),
            ("[custom_types.\"bad name\"]\nprotocol = \"airbyte\"\ncommand = [\"x\"]", "bad name"),
        ];
        for (text, needle) in cases {
            let err = CustomTypes::from_toml(text).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{text}");
            assert!(err.message().contains(needle), "{text}: {}", err.message());
        }
    }

    #[test]
    fn merge_refuses_a_type_defined_twice() {
        let a =
            CustomTypes::from_toml("[custom_types.X]\nprotocol = \"airbyte\"\ncommand = [\"x\"]")
                .unwrap();
        let err = a.clone().merge(a).unwrap_err();
        assert!(err.message().contains("defined twice"), "{}", err.message());
    }
}
