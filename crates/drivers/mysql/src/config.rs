//! Connection configuration → mysql_async options, validated without I/O.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use matih_connector_core::{
    tls, ConnectContext, ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode,
};
use mysql_async::{Opts, OptsBuilder, SslOpts};

pub(crate) const DEFAULT_PORT: u16 = 3306;
pub(crate) const CRED_USERNAME: &str = "username";
pub(crate) const CRED_PASSWORD: &str = "password";

/// MySQL limits database names to 64 characters and user names to 32
/// (MariaDB: 80); longer values can only fail at the server.
const MAX_DATABASE_CHARS: usize = 64;
const MAX_USER_CHARS: usize = 80;

/// Sent to the server as the `program_name` connection attribute, visible in
/// `performance_schema.session_connect_attrs`.
const PROGRAM_NAME: &str = "matih-connector";

/// The server's `max_allowed_packet` default; setting it here saves
/// mysql_async a round trip asking the server for it.
const MAX_ALLOWED_PACKET: usize = 64 * 1024 * 1024;

/// Everything needed to open a session, built from a connector's configuration.
#[derive(Clone)]
pub(crate) struct MysqlOptions {
    /// The server's host and port (3306 by default).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<SecretString>,
    /// The database connected to; a missing one fails the login (error 1049).
    pub database: Option<String>,
    /// Discovery is limited to this database when set.
    pub schema: Option<String>,
    pub ssl_mode: SslMode,
    pub ca_pem: Option<String>,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl fmt::Debug for MysqlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("ssl_mode", &self.ssl_mode)
            .field("ca_pem", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl MysqlOptions {
    /// Validates configuration and credentials; no I/O.
    pub(crate) fn new(cfg: &ConnectionConfig, creds: &Credentials) -> Result<Self, ConnectorError> {
        let (host, port) = cfg.host_and_port(Some(DEFAULT_PORT))?;
        let user = creds.require(CRED_USERNAME)?.expose().to_owned();
        if user.chars().count() > MAX_USER_CHARS || user.contains('\0') {
            return Err(ConnectorError::invalid_config(
                "credentials",
                format!("credentials.username must be 1-{MAX_USER_CHARS} characters without NUL"),
            ));
        }
        let password = creds.get(CRED_PASSWORD).filter(|p| !p.is_empty()).cloned();
        for (field, value) in [("database", &cfg.database), ("schema", &cfg.schema)] {
            if let Some(v) = value {
                if v.chars().count() > MAX_DATABASE_CHARS || v.ends_with(' ') || v.contains('\0') {
                    return Err(ConnectorError::invalid_config(
                        field,
                        format!(
                            "{field} must be a MySQL database name: 1-{MAX_DATABASE_CHARS} characters, \
                             no trailing space"
                        ),
                    ));
                }
            }
        }
        let ssl_mode = cfg.ssl_mode()?;
        let ca_pem = cfg.ssl_ca_pem.clone();
        if let Some(pem) = &ca_pem {
            // Fails here, before any I/O, rather than in the TLS handshake.
            tls::root_store(Some(pem))?;
        }
        Ok(MysqlOptions {
            host,
            port,
            user,
            password,
            database: cfg.database.clone().filter(|d| !d.is_empty()),
            schema: cfg.schema.clone().filter(|s| !s.is_empty()),
            ssl_mode,
            ca_pem,
            connect_timeout: cfg.timeouts.connect(),
            query_timeout: cfg.timeouts.query(),
        })
    }

    /// Whether the chain is verified but the host name is not.
    pub(crate) fn verify_chain_only(&self) -> bool {
        match self.ssl_mode {
            SslMode::VerifyCa => true,
            // As libpq does: `require` with a CA certificate verifies the chain.
            SslMode::Require => self.ca_pem.is_some(),
            SslMode::Disable | SslMode::VerifyFull => false,
        }
    }

    fn ssl_opts(&self, tls_name: Option<&str>) -> Option<SslOpts> {
        let mut ssl = match self.ssl_mode {
            SslMode::Disable => return None,
            SslMode::Require if self.ca_pem.is_none() => {
                // Encryption without authenticating the server; handshake
                // signatures are still checked.
                return Some(SslOpts::default().with_danger_accept_invalid_certs(true));
            }
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => SslOpts::default(),
        };
        if let Some(pem) = &self.ca_pem {
            // The given CA replaces the public roots, as libpq's sslrootcert does.
            ssl = ssl
                .with_root_certs(vec![pem.as_bytes().to_vec().into()])
                .with_disable_built_in_roots(true);
        }
        if self.verify_chain_only() {
            // mysql_async 0.37.1 ignores this flag with current rustls (it
            // matches the error's text, which changed); see `connection.rs`
            // for how verify-ca is done anyway. Kept so a fixed release takes
            // the short path.
            ssl = ssl.with_danger_skip_domain_validation(true);
        }
        if let Some(name) = tls_name {
            ssl = ssl.with_danger_tls_hostname_override(Some(Cow::Owned(name.to_owned())));
        }
        Some(ssl)
    }

    /// Client options that connect to the addresses the core resolved and
    /// checked, while TLS checks the certificate against the configured host
    /// (or `tls_name`, a name the certificate holds, for verify-ca).
    pub(crate) fn client_opts(
        &self,
        ctx: &ConnectContext,
        tls_name: Option<&str>,
    ) -> Result<Opts, ConnectorError> {
        let first = ctx
            .addrs
            .first()
            .ok_or_else(|| ConnectorError::internal("no resolved address to connect to"))?;
        let port = first.port();
        let ips: Vec<IpAddr> = ctx
            .addrs
            .iter()
            .filter(|a| a.port() == port)
            .map(|a| a.ip())
            .collect();
        let host = match ctx.host.as_deref() {
            Some(h) => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            None => first.ip().to_string(),
        };
        let builder = OptsBuilder::default()
            // The name TLS verifies; the connection itself goes to `ips`, so
            // no second DNS lookup can change where we connect.
            .ip_or_hostname(host)
            .tcp_port(port)
            .resolved_ips(Some(ips))
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(self.database.clone())
            // Otherwise mysql_async asks for @@socket after login and silently
            // reconnects through a local Unix socket: another server path,
            // without TLS, past the egress check.
            .prefer_socket(false)
            .max_allowed_packet(Some(MAX_ALLOWED_PACKET))
            .wait_timeout(Some(28_800))
            .pool_opts(None)
            .stmt_cache_size(16)
            .tcp_nodelay(true)
            .connect_attribute("program_name", PROGRAM_NAME)
            .ssl_opts(self.ssl_opts(tls_name));
        Ok(Opts::from(builder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::{EgressPolicy, ErrorCode, Timeouts};

    fn creds() -> Credentials {
        Credentials::new()
            .with("username", "reader")
            .with("password", "s3cret-value")
    }

    /// A configuration with the host every MySQL connector needs.
    fn base() -> ConnectionConfig {
        ConnectionConfig {
            host: Some("db.example.com".into()),
            ..Default::default()
        }
    }

    fn ctx() -> ConnectContext {
        ConnectContext {
            host: Some("db.example.com".into()),
            addrs: vec![
                "10.1.2.3:3307".parse().unwrap(),
                "10.1.2.4:3307".parse().unwrap(),
            ],
            timeouts: Timeouts::default(),
            egress: EgressPolicy::allow_all(),
            tunnel: None,
        }
    }

    #[test]
    fn options_connect_to_resolved_addresses_and_verify_the_host_name() {
        let cfg = ConnectionConfig {
            database: Some("shop".into()),
            ..base()
        };
        let o = MysqlOptions::new(&cfg, &creds()).unwrap();
        let opts = o.client_opts(&ctx(), None).unwrap();
        assert_eq!(opts.ip_or_hostname(), "db.example.com");
        assert_eq!(opts.tcp_port(), 3307);
        assert_eq!(
            opts.resolved_ips().as_deref(),
            Some(&["10.1.2.3".parse().unwrap(), "10.1.2.4".parse().unwrap()][..])
        );
        assert_eq!(opts.db_name(), Some("shop"));
        assert!(!opts.prefer_socket());
        assert!(opts.ssl_opts().is_none());
    }

    #[test]
    fn tls_modes_become_ssl_options() {
        let pem =
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUJ0k2\n-----END CERTIFICATE-----\n";
        let mode = |m: SslMode| ConnectionConfig {
            ssl_mode: Some(m),
            ..base()
        };
        let o = MysqlOptions::new(&mode(SslMode::Require), &creds()).unwrap();
        let ssl = o
            .client_opts(&ctx(), None)
            .unwrap()
            .ssl_opts()
            .cloned()
            .unwrap();
        assert!(ssl.accept_invalid_certs());

        let o = MysqlOptions::new(&mode(SslMode::VerifyFull), &creds()).unwrap();
        let ssl = o
            .client_opts(&ctx(), None)
            .unwrap()
            .ssl_opts()
            .cloned()
            .unwrap();
        assert!(!ssl.accept_invalid_certs() && !ssl.skip_domain_validation());
        assert!(!ssl.disable_built_in_roots());

        let o = MysqlOptions::new(&mode(SslMode::VerifyCa), &creds()).unwrap();
        assert!(o.verify_chain_only());
        let ssl = o
            .client_opts(&ctx(), Some("localhost"))
            .unwrap()
            .ssl_opts()
            .cloned()
            .unwrap();
        assert!(!ssl.accept_invalid_certs());
        assert_eq!(ssl.tls_hostname_override(), Some("localhost"));

        // A CA that does not parse is a configuration error before any I/O.
        let mut cfg = mode(SslMode::VerifyFull);
        cfg.ssl_ca_pem = Some(pem.into());
        let err = MysqlOptions::new(&cfg, &creds()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
    }

    #[test]
    fn validation_names_fields_and_hides_secrets() {
        let o = MysqlOptions::new(&base(), &creds()).unwrap();
        let dbg = format!("{o:?}");
        assert!(!dbg.contains("s3cret-value"), "{dbg}");

        let err = MysqlOptions::new(&base(), &Credentials::new()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
        assert!(err.message().contains("credentials.username"));

        let long = ConnectionConfig {
            database: Some("d".repeat(65)),
            ..base()
        };
        assert_eq!(
            MysqlOptions::new(&long, &creds())
                .unwrap_err()
                .context_value("field"),
            Some("database")
        );
        let trailing = ConnectionConfig {
            database: Some("shop ".into()),
            ..base()
        };
        assert!(MysqlOptions::new(&trailing, &creds()).is_err());
        let unicode = ConnectionConfig {
            database: Some("données été".into()),
            ..base()
        };
        assert!(MysqlOptions::new(&unicode, &creds()).is_ok());
    }
}
