//! Connection configuration → tiberius options, validated without I/O.

use std::fmt;
use std::time::Duration;

use matih_connector_core::{
    tls, ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode,
};
use tiberius::{AuthMethod, EncryptionLevel};

pub(crate) const META_APPLICATION_NAME: &str = "applicationName";
pub(crate) const META_INSTANCE: &str = "instanceName";
const DEFAULT_APPLICATION_NAME: &str = "matih-connector";
/// The database a login lands in when none is configured.
const DEFAULT_DATABASE: &str = "master";
pub(crate) const DEFAULT_PORT: u16 = 1433;

pub(crate) struct SqlServerOptions {
    /// The server's host and port (1433 by default).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub database: String,
    pub application_name: String,
    pub ssl_mode: SslMode,
    pub ca_pem: Option<String>,
    pub schema: Option<String>,
    pub query_timeout: Duration,
}

impl fmt::Debug for SqlServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlServerOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("database", &self.database)
            .field("ssl_mode", &self.ssl_mode)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl SqlServerOptions {
    pub fn from_config(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let (host, port) = cfg.host_and_port(Some(DEFAULT_PORT))?;
        let user = creds.require("username")?.expose().to_owned();
        let password = creds.require("password")?.clone();
        // LOGIN7 carries names as UTF-16 with 16-bit lengths; 128 is SQL Server's sysname limit.
        if user.chars().count() > 128 || user.contains('\0') {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.username must be at most 128 characters without NUL",
            ));
        }
        if password.expose().chars().count() > 128 || password.expose().contains('\0') {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.password must be at most 128 characters without NUL",
            ));
        }
        let database = cfg
            .database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        if database.chars().count() > 128 {
            return Err(ConnectorError::invalid_config(
                "database",
                "database must be at most 128 characters",
            ));
        }
        let application_name = cfg
            .metadata_str(META_APPLICATION_NAME)
            .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
        if application_name.chars().count() > 128 || application_name.contains('\0') {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.applicationName must be at most 128 characters without NUL",
            ));
        }
        let ssl_mode = cfg.ssl_mode()?;
        if let Some(pem) = &cfg.ssl_ca_pem {
            tls::parse_pem_certs(pem)?;
        }
        Ok(SqlServerOptions {
            host,
            port,
            user,
            password,
            database,
            application_name,
            ssl_mode,
            ca_pem: cfg.ssl_ca_pem.clone(),
            schema: cfg.schema.clone(),
            query_timeout: cfg.timeouts.query(),
        })
    }

    /// The tiberius configuration for one attempt. `host` is the configured
    /// name (what a certificate names), not the address we dial.
    pub fn tiberius_config(&self, host: &str, port: u16) -> tiberius::Config {
        let mut c = tiberius::Config::new();
        c.host(host);
        c.port(port);
        c.database(&self.database);
        c.application_name(&self.application_name);
        c.authentication(AuthMethod::sql_server(&self.user, self.password.expose()));
        match self.ssl_mode {
            // NotSupported: not even the login packet is encrypted, which is
            // what "disable" promises; servers that force encryption refuse.
            SslMode::Disable => c.encryption(EncryptionLevel::NotSupported),
            SslMode::Require => {
                c.encryption(EncryptionLevel::Required);
                c.trust_cert();
            }
            // tiberius always checks the host name when it verifies the chain:
            // verify-ca is as strict as verify-full. A configured CA is added
            // to the bundled public roots; tiberius cannot drop them (both
            // documented).
            SslMode::VerifyCa | SslMode::VerifyFull => {
                c.encryption(EncryptionLevel::Required);
                c.trust_webpki_roots();
                if let Some(pem) = &self.ca_pem {
                    c.trust_cert_ca_bundle(pem.as_bytes().to_vec());
                }
                c.hostname_in_certificate(host);
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;

    fn cfg() -> ConnectionConfig {
        ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_and_secrets() {
        let creds = Credentials::new()
            .with("username", "reader")
            .with("password", "pw-secret-1");
        let o = SqlServerOptions::from_config(&cfg(), &creds).unwrap();
        assert_eq!(o.database, "master");
        assert_eq!(o.ssl_mode, SslMode::Disable);
        assert!(!format!("{o:?}").contains("pw-secret-1"));
        let _ = o.tiberius_config("db", 1433);
    }

    #[test]
    fn rejects_bad_input_before_io() {
        let creds = Credentials::new()
            .with("username", "u")
            .with("password", "p");
        let mut c = cfg();
        c.ssl_mode = Some(SslMode::VerifyFull);
        c.ssl_ca_pem = Some("not pem".into());
        assert_eq!(
            SqlServerOptions::from_config(&c, &creds)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidConfiguration
        );
        let long = Credentials::new()
            .with("username", "u".repeat(129))
            .with("password", "p");
        assert_eq!(
            SqlServerOptions::from_config(&cfg(), &long)
                .unwrap_err()
                .code(),
            ErrorCode::InvalidConfiguration
        );
    }
}
