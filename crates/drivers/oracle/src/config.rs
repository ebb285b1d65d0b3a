//! Connection configuration → connect descriptor and login, validated
//! without I/O.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use matih_connector_core::{ConnectionConfig, ConnectorError, Credentials, SecretString};

pub(crate) const META_SERVICE_NAME: &str = "serviceName";
pub(crate) const META_SID: &str = "sid";
pub(crate) const DEFAULT_PORT: u16 = 1521;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    ServiceName(String),
    Sid(String),
}

#[derive(Clone)]
pub(crate) struct OracleOptions {
    /// The listener's host and port (1521 by default).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: SecretString,
    pub target: Target,
    pub schema: Option<String>,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl fmt::Debug for OracleOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OracleOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"***")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Service names and SIDs end up inside a connect descriptor: only the
/// characters Oracle allows in them (letters, digits, `_ . $ # -`).
fn descriptor_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.$#-".contains(c))
}

impl OracleOptions {
    pub fn from_config(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<Self, ConnectorError> {
        let (host, port) = cfg.host_and_port(Some(DEFAULT_PORT))?;
        let user = creds.require("username")?.expose().to_owned();
        let password = creds.require("password")?.clone();
        if user.len() > 128 || user.contains('\0') || password.expose().contains('\0') {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.username must be at most 128 bytes; no NUL in username or password",
            ));
        }
        if cfg.ssl_mode()?.is_tls() {
            // TCPS needs an Oracle wallet (or sqlnet.ora trust settings) for
            // the client library; the driver does not manage wallets yet.
            return Err(ConnectorError::new(
                matih_connector_core::ErrorCode::Unsupported,
                "TLS (TCPS) is not supported by the Oracle driver yet: use sslMode disable, or native network encryption configured on the server",
            )
            .with_context("field", "sslMode"));
        }
        let service = cfg
            .metadata_str(META_SERVICE_NAME)
            .filter(|s| !s.is_empty());
        let sid = cfg.metadata_str(META_SID).filter(|s| !s.is_empty());
        let target = match (service, sid, cfg.database.clone()) {
            (Some(_), Some(_), _) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "give metadata.serviceName or metadata.sid, not both",
                ))
            }
            (Some(s), None, _) => Target::ServiceName(s),
            (None, Some(s), _) => Target::Sid(s),
            // The database field names the service when metadata does not.
            (None, None, Some(d)) => Target::ServiceName(d),
            (None, None, None) => {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    "metadata.serviceName (or metadata.sid, or database) is required",
                ))
            }
        };
        let name = match &target {
            Target::ServiceName(s) | Target::Sid(s) => s,
        };
        if !descriptor_safe(name) {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "service name or SID may hold only letters, digits and _ . $ # -",
            ));
        }
        Ok(OracleOptions {
            host,
            port,
            user,
            password,
            target,
            schema: cfg.schema.clone(),
            connect_timeout: cfg.timeouts.connect(),
            query_timeout: cfg.timeouts.query(),
        })
    }

    /// A full connect descriptor over the addresses the core resolved and
    /// checked (never the host name, which the client library would
    /// resolve again), with Oracle Net's own connect timeouts.
    pub fn connect_descriptor(&self, addrs: &[SocketAddr]) -> String {
        let secs = self.connect_timeout.as_secs().max(1);
        let addresses: String = addrs
            .iter()
            .map(|a| {
                format!(
                    "(ADDRESS=(PROTOCOL=TCP)(HOST={})(PORT={}))",
                    a.ip(),
                    a.port()
                )
            })
            .collect();
        let data = match &self.target {
            Target::ServiceName(s) => format!("(SERVICE_NAME={s})"),
            Target::Sid(s) => format!("(SID={s})"),
        };
        format!(
            "(DESCRIPTION=(CONNECT_TIMEOUT={secs})(TRANSPORT_CONNECT_TIMEOUT={secs})(RETRY_COUNT=0)\
             (ADDRESS_LIST=(LOAD_BALANCE=OFF)(FAILOVER=ON){addresses})(CONNECT_DATA={data}))"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::{ErrorCode, SslMode};

    fn cfg(meta: serde_json::Value) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("db".into()),
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    fn creds() -> Credentials {
        Credentials::new()
            .with("username", "scott")
            .with("password", "tiger-secret")
    }

    #[test]
    fn descriptors() {
        let o = OracleOptions::from_config(
            &cfg(serde_json::json!({"serviceName": "FREEPDB1"})),
            &creds(),
        )
        .unwrap();
        let d = o.connect_descriptor(&[
            "10.0.0.5:1521".parse().unwrap(),
            "[::1]:1522".parse().unwrap(),
        ]);
        assert_eq!(
            d,
            "(DESCRIPTION=(CONNECT_TIMEOUT=10)(TRANSPORT_CONNECT_TIMEOUT=10)(RETRY_COUNT=0)\
             (ADDRESS_LIST=(LOAD_BALANCE=OFF)(FAILOVER=ON)(ADDRESS=(PROTOCOL=TCP)(HOST=10.0.0.5)(PORT=1521))\
             (ADDRESS=(PROTOCOL=TCP)(HOST=::1)(PORT=1522)))(CONNECT_DATA=(SERVICE_NAME=FREEPDB1)))"
        );
        let o =
            OracleOptions::from_config(&cfg(serde_json::json!({"sid": "ORCL"})), &creds()).unwrap();
        assert!(o
            .connect_descriptor(&["10.0.0.5:1521".parse().unwrap()])
            .contains("(SID=ORCL)"));
        let mut c = cfg(serde_json::json!({}));
        c.database = Some("ORCLPDB1".into());
        assert_eq!(
            OracleOptions::from_config(&c, &creds()).unwrap().target,
            Target::ServiceName("ORCLPDB1".into())
        );
        assert!(!format!("{o:?}").contains("tiger-secret"));
    }

    #[test]
    fn rejects_before_io() {
        for meta in [
            serde_json::json!({}),
            serde_json::json!({"serviceName": "a", "sid": "b"}),
            serde_json::json!({"serviceName": "x)(HOST=evil"}),
        ] {
            assert_eq!(
                OracleOptions::from_config(&cfg(meta.clone()), &creds())
                    .unwrap_err()
                    .code(),
                ErrorCode::InvalidConfiguration,
                "{meta}"
            );
        }
        let mut c = cfg(serde_json::json!({"serviceName": "FREEPDB1"}));
        c.ssl_mode = Some(SslMode::Require);
        assert_eq!(
            OracleOptions::from_config(&c, &creds()).unwrap_err().code(),
            ErrorCode::Unsupported
        );
    }
}
