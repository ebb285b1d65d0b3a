//! Parse once: a connector's configuration and credentials checked and
//! turned into typed settings before any I/O, the one place where the checks
//! every driver shares run.

use std::fmt;
use std::time::{Duration, Instant};

use crate::driver::{with_timeout, Checked};
use crate::{
    ConnectContext, Connection, ConnectionConfig, ConnectorError, ConnectorType, Credentials,
    Driver, EgressPolicy, Prepared, Timeouts,
};

/// What [`prepare`] returns: the driver's typed settings with what core
/// parsed beside them (the SSH tunnel, the time limits). The connectivity
/// test ([`crate::run_prepared_test`]) and [`PreparedConnector::open`] work
/// on it, so one request parses its configuration once. `Debug` shows no
/// secret.
pub struct PreparedConnector {
    settings: Box<dyn Prepared>,
    tunnel: Option<crate::ssh::PreparedTunnel>,
    timeouts: Timeouts,
    connector_type: ConnectorType,
    #[cfg_attr(not(feature = "ssh"), allow(dead_code))]
    display_name: &'static str,
    took: Duration,
}

/// Checks `cfg` and `creds` for `driver` and parses them once, without I/O:
/// [`check_config`] (the common checks and the metadata keys), the
/// descriptor's credential keys, the SSH tunnel, then the driver's
/// own settings ([`Driver::prepare`]). Every caller (the connectivity test,
/// [`crate::open`], the CLI, the service) goes through here, so each check
/// has one home.
pub fn prepare(
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
) -> Result<PreparedConnector, ConnectorError> {
    let started = Instant::now();
    let d = driver.descriptor();
    let _span = tracing::debug_span!("prepare", r#type = %d.connector_type).entered();
    // The configuration's own checks first, so a contradiction in it is
    // named before a missing credential.
    check_config(driver, cfg)?;
    d.check_credential_keys(creds)?;
    let tunnel = crate::ssh::prepare(cfg, creds)?;
    let settings = driver.prepare(Checked::new(cfg, creds))?;
    if tunnel.is_some() && settings.endpoint().is_none() {
        return Err(no_tunnel_target(d.display_name));
    }
    Ok(PreparedConnector {
        settings,
        tunnel,
        timeouts: cfg.timeouts,
        connector_type: d.connector_type.clone(),
        display_name: d.display_name,
        took: started.elapsed(),
    })
}

fn no_tunnel_target(display_name: &str) -> ConnectorError {
    crate::ssh::unsupported(
        display_name,
        "the source has no host and port to reach through the bastion",
    )
}

/// The checks of [`prepare`] that need no credentials: the metadata keys
/// and the checks every configuration must pass (host, port, names, time
/// limits, SSL mode and CA). For a caller that changes a
/// stored connector without its credentials (disabling it, say).
pub fn check_config(driver: &dyn Driver, cfg: &ConnectionConfig) -> Result<(), ConnectorError> {
    cfg.validate_common()?;
    driver
        .descriptor()
        .check_metadata_keys(&cfg.metadata, driver.ssh_tunnel_refusal())
}

impl PreparedConnector {
    /// The host and port the connection goes to (through a tunnel, the
    /// target the bastion reaches); `None` for sources with no fixed
    /// endpoint.
    pub fn endpoint(&self) -> Option<(&str, u16)> {
        self.settings.endpoint()
    }

    /// The type of the driver that prepared it.
    pub fn connector_type(&self) -> &ConnectorType {
        &self.connector_type
    }

    /// The configuration's time limits.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Whether the connection goes through an SSH tunnel.
    pub fn is_tunnelled(&self) -> bool {
        self.tunnel.is_some()
    }

    /// How long the checks and the parse took (the test's `validate` step).
    pub fn took(&self) -> Duration {
        self.took
    }

    /// The driver's typed settings.
    pub fn settings(&self) -> &dyn Prepared {
        &*self.settings
    }

    pub(crate) fn tunnel(&self) -> Option<&crate::ssh::PreparedTunnel> {
        self.tunnel.as_ref()
    }

    /// The endpoint a tunnel leads to (checked in [`prepare`]).
    #[cfg(feature = "ssh")]
    pub(crate) fn tunnel_target(&self) -> Result<(String, u16), ConnectorError> {
        self.endpoint()
            .map(|(h, p)| (h.to_owned(), p))
            .ok_or_else(|| no_tunnel_target(self.display_name))
    }

    /// Connects over a context the caller made (its own addresses and
    /// policy), without the connect time limit: for tests that pin the
    /// addresses. [`PreparedConnector::open`] is the ordinary way.
    pub async fn connect(
        &self,
        ctx: &ConnectContext,
    ) -> Result<Box<dyn Connection>, ConnectorError> {
        self.settings.connect(ctx).await
    }

    /// Resolves, checks and connects (through the SSH tunnel when there is
    /// one), bounded by the connect time limit. The connection owns the
    /// tunnel; closing it ends the session.
    pub async fn open(&self, egress: &EgressPolicy) -> Result<Box<dyn Connection>, ConnectorError> {
        if let Some(spec) = self.tunnel() {
            return self.open_through(spec, egress).await;
        }
        let ctx = ConnectContext::resolve(self, egress).await?;
        with_timeout(
            self.timeouts.connect(),
            "connecting",
            self.settings.connect(&ctx),
        )
        .await
    }

    /// `open` through an SSH tunnel: the session (dns, tcp, ssh to the
    /// bastion) and the forwarder, then the driver's connect through them.
    #[cfg(feature = "ssh")]
    async fn open_through(
        &self,
        spec: &crate::ssh::TunnelSpec,
        egress: &EgressPolicy,
    ) -> Result<Box<dyn Connection>, ConnectorError> {
        let (host, port) = self.tunnel_target()?;
        let session = crate::ssh::SshSession::open(spec, self.timeouts, egress).await?;
        let tunnel = crate::ssh::Tunnel::start(session, &host, port).await?;
        let ctx = ConnectContext::through(tunnel.clone(), host, self.timeouts, egress);
        let connected = with_timeout(
            self.timeouts.connect(),
            "connecting",
            self.settings.connect(&ctx),
        )
        .await;
        match connected {
            Ok(inner) => Ok(Box::new(crate::ssh::TunnelledConnection { inner, tunnel })),
            Err(e) => {
                let e = crate::ssh::explain_connect(&tunnel, e);
                tunnel.close().await;
                Err(e)
            }
        }
    }

    #[cfg(not(feature = "ssh"))]
    async fn open_through(
        &self,
        spec: &crate::ssh::PreparedTunnel,
        _: &EgressPolicy,
    ) -> Result<Box<dyn Connection>, ConnectorError> {
        match *spec {}
    }
}

impl fmt::Debug for PreparedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PreparedConnector");
        d.field("type", &self.connector_type);
        d.field("settings", &self.settings);
        #[cfg(feature = "ssh")]
        d.field("tunnel", &self.tunnel);
        d.field("timeouts", &self.timeouts).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::{Capabilities, DriverDescriptor, ErrorCode, Key};

    /// Counts its parses; its settings are the configured host and port.
    struct Counting(DriverDescriptor, AtomicUsize);

    #[derive(Debug)]
    struct Endpoint(String, u16);

    #[async_trait]
    impl Prepared for Endpoint {
        fn endpoint(&self) -> Option<(&str, u16)> {
            Some((&self.0, self.1))
        }
        async fn connect(&self, _: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError> {
            Err(ConnectorError::internal("not in this test"))
        }
    }

    impl Driver for Counting {
        fn descriptor(&self) -> &DriverDescriptor {
            &self.0
        }
        fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let (h, p) = spec.config().host_and_port(Some(7))?;
            Ok(Box::new(Endpoint(h, p)))
        }
    }

    #[test]
    fn common_checks_run_before_the_driver_parses_once() {
        let d = Counting(
            DriverDescriptor {
                connector_type: ConnectorType::Custom("COUNTING".into()),
                display_name: "counting",
                default_port: Some(7),
                credential_keys: vec![Key::required("password", "p")],
                metadata_keys: vec![],
                capabilities: Capabilities::default(),
            },
            AtomicUsize::new(0),
        );
        let creds = Credentials::new().with("password", "pw-secret-1");
        let cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        let p = prepare(&d, &cfg, &creds).unwrap();
        assert_eq!(p.endpoint(), Some(("db", 7)));
        assert_eq!(p.connector_type().as_str(), "COUNTING");
        assert!(!p.is_tunnelled());
        assert!(!format!("{p:?}").contains("pw-secret-1"));
        assert_eq!(d.1.load(Ordering::SeqCst), 1);

        // Refused by core's checks: the driver never parses.
        let unknown = creds.clone().with("token", "t");
        let bad_port = ConnectionConfig {
            port: Some(0),
            ..cfg.clone()
        };
        let mut tunnel = cfg.clone();
        tunnel
            .metadata
            .insert(crate::ssh::METADATA_KEY.into(), serde_json::json!({}));
        for (c, k, code) in [
            (&cfg, &unknown, ErrorCode::InvalidConfiguration),
            (&cfg, &Credentials::new(), ErrorCode::InvalidConfiguration),
            (&bad_port, &creds, ErrorCode::InvalidConfiguration),
            (&tunnel, &creds, ErrorCode::Unsupported),
        ] {
            assert_eq!(prepare(&d, c, k).unwrap_err().code(), code);
        }
        assert_eq!(d.1.load(Ordering::SeqCst), 1);

        // Refused by the driver: one parse.
        let no_host = ConnectionConfig::default();
        let e = prepare(&d, &no_host, &creds).unwrap_err();
        assert_eq!(e.context_value("field"), Some("host"));
        assert_eq!(d.1.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn tunnel_keys_are_accepted_only_by_drivers_that_declare_them() {
        let plain = Counting(
            DriverDescriptor {
                connector_type: ConnectorType::S3,
                display_name: "Amazon S3",
                default_port: Some(443),
                credential_keys: vec![],
                metadata_keys: vec![],
                capabilities: Capabilities::default(),
            },
            AtomicUsize::new(0),
        );
        let mut cfg = ConnectionConfig {
            host: Some("db".into()),
            ..Default::default()
        };
        cfg.metadata.insert(
            crate::ssh::METADATA_KEY.to_owned(),
            serde_json::json!({"host": "bastion", "username": "u",
                "hostKey": "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}),
        );
        let err = check_config(&plain, &cfg).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unsupported);
        assert!(err.message().contains("Amazon S3"), "{}", err.message());
        assert!(!plain.descriptor().supports_ssh_tunnel());

        let tunnelled = Counting(plain.0.clone().with_ssh_tunnel(), AtomicUsize::new(0));
        assert!(tunnelled.descriptor().supports_ssh_tunnel());
        check_config(&tunnelled, &cfg).unwrap();
        let creds = Credentials::new()
            .with(crate::ssh::PRIVATE_KEY, "k")
            .with(crate::ssh::PRIVATE_KEY_PASSPHRASE, "p");
        // The keys pass; the key itself is no key, refused by the tunnel's parse.
        let err = prepare(&tunnelled, &cfg, &creds).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration, "{err}");
        assert!(!err.message().contains("unknown credential"), "{err}");
    }
}
