//! SSH tunnels: reaching a source through a tenant's bastion (jump host).
//!
//! A connector asks for a tunnel with `metadata.sshTunnel`
//! (`{"host", "port", "username", "hostKey"}`) and the credentials
//! `sshPrivateKey` (+ `sshPrivateKeyPassphrase` when it is encrypted) or
//! `sshPassword`. `hostKey` is required: the bastion's public key in
//! known_hosts form (`ssh-ed25519 AAAA…`) or its `SHA256:…` fingerprint. There
//! is no trust on first use.
//!
//! The names below are always compiled so that a build without the `ssh`
//! feature can recognise a tunnelled connector and refuse it clearly
//! ([`unavailable`]). The tunnel itself — `TunnelSpec`, `SshSession`,
//! `TunnelStream`, `LocalForward` — needs the feature:
//!
//! ```no_run
//! # #[cfg(feature = "ssh")]
//! # async fn demo(cfg: &matih_connector_core::ConnectionConfig,
//! #     creds: &matih_connector_core::Credentials) -> Result<(), matih_connector_core::ConnectorError> {
//! use matih_connector_core::{ssh, EgressPolicy};
//! // Parse once, no I/O: None when the connector has no tunnel.
//! let Some(spec) = ssh::TunnelSpec::parse(cfg, creds)? else { return Ok(()) };
//! // dns(bastion) → tcp(bastion) → ssh (handshake, host key, authentication).
//! let session = ssh::SshSession::open(&spec, cfg.timeouts, &EgressPolicy::default()).await?;
//! // One direct-tcpip channel per connection; the bastion resolves and reaches the target.
//! let stream = session.open_stream("db.internal", 5432).await?;
//! # drop(stream);
//! session.close().await;
//! # Ok(()) }
//! ```
//!
//! Security model (docs/architecture.md, "SSH tunnels"): the egress policy
//! applies to the bastion's addresses, which core resolves and checks; the
//! target host is resolved and reached by the bastion, inside the tenant's
//! network, so core never checks it against the policy.

#[cfg(feature = "ssh")]
mod forward;
mod peer;
#[cfg(feature = "ssh")]
mod session;
#[cfg(feature = "ssh")]
mod socks;
#[cfg(feature = "ssh")]
mod spec;
#[cfg(feature = "ssh")]
mod wire;

#[cfg(feature = "ssh")]
pub use forward::LocalForward;
pub use peer::loopback_client_is_this_process;
#[cfg(feature = "ssh")]
pub use session::{connect_bastion, resolve_bastion, SshSession, TunnelStream};
#[cfg(feature = "ssh")]
pub use spec::{HostKeyPin, TunnelAuth, TunnelSpec};
#[cfg(feature = "ssh")]
pub use wire::Tunnel;
#[cfg(feature = "ssh")]
pub(crate) use wire::{explain_connect, TunnelledConnection};

/// The tunnel a [`crate::ConnectContext`] carries. Without the `ssh` feature
/// no tunnel can exist, so the type has no value.
#[cfg(not(feature = "ssh"))]
#[derive(Clone, Debug)]
pub enum Tunnel {}

/// A validated tunnel, as `prepare` returns it.
#[cfg(feature = "ssh")]
pub(crate) type PreparedTunnel = TunnelSpec;
/// Without the feature there is never one.
#[cfg(not(feature = "ssh"))]
pub(crate) enum PreparedTunnel {}

/// The tunnel a connector asks for, validated (no I/O); `Ok(None)` for none.
/// [`crate::prepare`] calls it after the descriptor's checks (which refuse a
/// tunnel the driver does not declare). A build without the `ssh` feature
/// refuses any tunnel setting with [`unavailable`] instead of ignoring it.
pub(crate) fn prepare(
    cfg: &ConnectionConfig,
    creds: &crate::Credentials,
) -> Result<Option<PreparedTunnel>, ConnectorError> {
    #[cfg(feature = "ssh")]
    {
        TunnelSpec::parse(cfg, creds)
    }
    #[cfg(not(feature = "ssh"))]
    {
        let tunnel_creds = [PRIVATE_KEY, PRIVATE_KEY_PASSPHRASE, PASSWORD]
            .iter()
            .any(|k| creds.get(k).is_some());
        if requested(cfg) || tunnel_creds {
            Err(unavailable())
        } else {
            Ok(None)
        }
    }
}

/// The refusal for a driver whose source cannot be reached through a tunnel.
pub fn unsupported(display_name: &str, reason: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::Unsupported,
        format!("{display_name} connectors cannot use an SSH tunnel: {reason}"),
    )
    .with_context("field", "metadata.sshTunnel")
    .with_retryable(false)
}

use crate::{ConnectionConfig, ConnectorError, ErrorCode, Key};

/// The metadata key holding the tunnel's settings.
pub const METADATA_KEY: &str = "sshTunnel";
/// Credential: the private key, OpenSSH (`-----BEGIN OPENSSH PRIVATE KEY-----`)
/// or PEM (PKCS#1 RSA, PKCS#8, SEC1).
pub const PRIVATE_KEY: &str = "sshPrivateKey";
/// Credential: the passphrase of an encrypted `sshPrivateKey`.
pub const PRIVATE_KEY_PASSPHRASE: &str = "sshPrivateKeyPassphrase";
/// Credential: the password of the bastion user (instead of a key).
pub const PASSWORD: &str = "sshPassword";

/// The credential keys a tunnel adds to a driver's own, for descriptors.
pub const CREDENTIAL_KEYS: [Key; 3] = [
    Key::optional(
        PRIVATE_KEY,
        "SSH tunnel: private key of the bastion user (OpenSSH or PEM)",
    ),
    Key::optional(
        PRIVATE_KEY_PASSPHRASE,
        "SSH tunnel: passphrase of an encrypted sshPrivateKey",
    ),
    Key::optional(
        PASSWORD,
        "SSH tunnel: password of the bastion user (instead of a key)",
    ),
];

/// The metadata key a tunnel adds to a driver's own, for descriptors.
pub const METADATA_KEYS: [Key; 1] = [Key::optional(
    METADATA_KEY,
    "SSH tunnel: {host, port, username, hostKey} of the bastion to connect through",
)];

/// Whether the connector asks for a tunnel (`metadata.sshTunnel` is present
/// and not null). Cheap; validation is `TunnelSpec::parse`'s job (feature `ssh`).
pub fn requested(cfg: &ConnectionConfig) -> bool {
    cfg.metadata.get(METADATA_KEY).is_some_and(|v| !v.is_null())
}

/// Whether this build can open tunnels (core's `ssh` Cargo feature).
pub const fn enabled() -> bool {
    cfg!(feature = "ssh")
}

/// The error for a tunnelled connector in a build without the `ssh` feature.
pub fn unavailable() -> ConnectorError {
    ConnectorError::new(
        ErrorCode::DriverUnavailable,
        "SSH tunnels are not enabled in this build (Cargo feature `ssh` of matih-connector-core)",
    )
    .with_context("field", "metadata.sshTunnel")
    .with_retryable(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_only_when_the_metadata_key_holds_a_value() {
        let mut cfg = ConnectionConfig::default();
        assert!(!requested(&cfg));
        cfg.metadata
            .insert(METADATA_KEY.into(), serde_json::Value::Null);
        assert!(!requested(&cfg));
        cfg.metadata
            .insert(METADATA_KEY.into(), serde_json::json!({"host": "b"}));
        assert!(requested(&cfg));
        let err = unavailable();
        assert_eq!(err.code(), ErrorCode::DriverUnavailable);
        assert!(err.message().contains("`ssh`"));
    }
}
