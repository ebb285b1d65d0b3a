//! Connection configuration → client options, validated without I/O.

use std::fmt;
use std::time::Duration;

use matih_connector_core::{
    tls, ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode,
};

pub(crate) const META_APPLICATION_NAME: &str = "applicationName";
pub(crate) const META_OPTIONS: &str = "options";
pub(crate) const DEFAULT_APPLICATION_NAME: &str = "matih-connector";
pub(crate) const DEFAULT_PORT: u16 = 5432;

/// Everything needed to open a session, built from a connector's configuration.
pub(crate) struct PgOptions {
    /// The server's host and port (5432 by default).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    pub database: String,
    pub application_name: String,
    /// Extra `options` startup parameter text, e.g. `-c search_path=app`.
    pub extra_options: Option<String>,
    pub ssl_mode: SslMode,
    /// Built once here so a bad CA PEM fails validation, not the connect step.
    pub tls: Option<rustls::ClientConfig>,
    pub schema: Option<String>,
    pub query_timeout: Duration,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("ssl_mode", &self.ssl_mode)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    pub fn from_config(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let (host, port) = cfg.host_and_port(Some(DEFAULT_PORT))?;
        let user = creds.require("username")?.expose().to_owned();
        if user.contains('\0') {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.username contains NUL",
            ));
        }
        let password = creds.get("password").filter(|p| !p.is_empty()).cloned();
        if password.as_ref().is_some_and(|p| p.expose().contains('\0')) {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.password contains NUL",
            ));
        }
        // libpq's rule: the database defaults to the user name.
        let database = cfg.database.clone().unwrap_or_else(|| user.clone());
        let application_name = cfg
            .metadata_str(META_APPLICATION_NAME)
            .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
        if application_name.contains('\0') || application_name.len() > 63 {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.applicationName must be at most 63 bytes without NUL",
            ));
        }
        let extra_options = cfg
            .metadata_str(META_OPTIONS)
            .filter(|o| !o.trim().is_empty());
        if extra_options.as_ref().is_some_and(|o| o.contains('\0')) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.options contains NUL",
            ));
        }
        let ssl_mode = cfg.ssl_mode()?;
        let tls = tls::client_config(ssl_mode, cfg.ssl_ca_pem.as_deref())?;
        Ok(PgOptions {
            host,
            port,
            user,
            password,
            database,
            application_name,
            extra_options,
            ssl_mode,
            tls,
            schema: cfg.schema.clone(),
            query_timeout: cfg.timeouts.query(),
        })
    }

    /// The client's startup configuration. The server's own statement_timeout
    /// is set to the query limit, so a query we stop waiting for also stops
    /// running there.
    pub fn client_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.user(&self.user)
            .dbname(&self.database)
            .application_name(&self.application_name);
        if let Some(p) = &self.password {
            c.password(p.expose());
        }
        let mut options = format!("-c statement_timeout={}", self.query_timeout.as_millis());
        if let Some(extra) = &self.extra_options {
            options.push(' ');
            options.push_str(extra);
        }
        c.options(&options);
        c.ssl_mode(if self.tls.is_some() {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Disable
        });
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
    fn defaults_follow_libpq() {
        let creds = Credentials::new()
            .with("username", "reader")
            .with("password", "pw-secret-1");
        let o = PgOptions::from_config(&cfg(), &creds).unwrap();
        assert_eq!(o.database, "reader");
        assert_eq!(o.application_name, DEFAULT_APPLICATION_NAME);
        assert_eq!(o.ssl_mode, SslMode::Disable);
        assert!(o.tls.is_none());
        assert!(!format!("{o:?}").contains("pw-secret-1"));
        assert!(!format!("{:?}", o.client_config()).contains("pw-secret-1"));
    }

    #[test]
    fn rejects_bad_input_before_io() {
        let no_user = Credentials::new().with("password", "x");
        assert_eq!(
            PgOptions::from_config(&cfg(), &no_user).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let creds = Credentials::new().with("username", "u");
        let mut c = cfg();
        c.ssl_mode = Some(SslMode::VerifyFull);
        c.ssl_ca_pem = Some("not pem".into());
        assert_eq!(
            PgOptions::from_config(&c, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
        let mut c = cfg();
        c.metadata.insert(
            META_APPLICATION_NAME.into(),
            serde_json::json!("x".repeat(64)),
        );
        assert_eq!(
            PgOptions::from_config(&c, &creds).unwrap_err().code(),
            ErrorCode::InvalidConfiguration
        );
    }

    #[test]
    fn tls_modes_build_configs() {
        let creds = Credentials::new().with("username", "u");
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let mut c = cfg();
            c.ssl_mode = Some(mode);
            let o = PgOptions::from_config(&c, &creds).unwrap();
            assert!(o.tls.is_some(), "{mode}");
        }
    }
}
