//! The driver traits every source type implements.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::{
    Catalog, CatalogDelta, CatalogFingerprint, Category, ConnectionConfig, ConnectorError,
    ConnectorType, Credentials, DiscoveryRequest, EgressPolicy, ErrorCode, Timeouts,
};

/// A credential or metadata key a driver reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    /// The key as specs spell it (`password`, `accountName`).
    pub name: &'static str,
    /// Whether a spec without it is invalid.
    pub required: bool,
    /// A short description for people.
    pub description: &'static str,
}

impl Key {
    /// Accepts every key: for drivers whose keys the source itself defines
    /// (custom types pass their metadata and credentials to an executable
    /// that has its own specification).
    pub const ANY: Key = Key {
        name: "*",
        required: false,
        description: "any key the source's own specification defines",
    };

    /// A key a spec must have.
    pub const fn required(name: &'static str, description: &'static str) -> Key {
        Key {
            name,
            required: true,
            description,
        }
    }
    /// A key a spec may have.
    pub const fn optional(name: &'static str, description: &'static str) -> Key {
        Key {
            name,
            required: false,
            description,
        }
    }
}

/// What a driver can do, so callers need not find out by failing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// Speaks TLS with the SSL modes of [`crate::SslMode`].
    pub tls: bool,
    /// Reports row estimates and sizes.
    pub statistics: bool,
    /// Reports primary keys.
    pub primary_keys: bool,
    /// Reports the source's comments.
    pub comments: bool,
    /// Infers fields from samples rather than reading a declared schema.
    pub inferred_fields: bool,
    /// Pushes schema and table filters down to the source.
    pub filter_pushdown: bool,
}

/// Static facts about a driver.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriverDescriptor {
    /// The type the driver serves (`type` on the wire).
    #[serde(rename = "type")]
    pub connector_type: ConnectorType,
    /// The type's name for people (`PostgreSQL`).
    pub display_name: &'static str,
    /// The port taken when a spec gives none.
    pub default_port: Option<u16>,
    /// The credential keys the driver reads.
    pub credential_keys: Vec<Key>,
    /// The metadata keys the driver reads.
    pub metadata_keys: Vec<Key>,
    /// What the driver can do.
    pub capabilities: Capabilities,
}

impl DriverDescriptor {
    /// The type's category.
    pub fn category(&self) -> Category {
        self.connector_type.category()
    }

    /// Declares that the driver's connections can go through an SSH tunnel:
    /// adds `metadata.sshTunnel` and the tunnel's credentials to the keys the
    /// driver accepts. The runner and [`open`] do the rest.
    pub fn with_ssh_tunnel(mut self) -> Self {
        self.credential_keys
            .extend_from_slice(&crate::ssh::CREDENTIAL_KEYS);
        self.metadata_keys
            .extend_from_slice(&crate::ssh::METADATA_KEYS);
        self
    }

    /// Whether [`DriverDescriptor::with_ssh_tunnel`] was applied.
    pub fn supports_ssh_tunnel(&self) -> bool {
        self.metadata_keys
            .iter()
            .any(|k| k.name == crate::ssh::METADATA_KEY)
    }

    /// Rejects credential keys the driver does not know and missing required
    /// ones; names keys, never values. [`crate::prepare`] is its one caller.
    pub(crate) fn check_credential_keys(&self, creds: &Credentials) -> Result<(), ConnectorError> {
        for key in creds.keys() {
            if !self
                .credential_keys
                .iter()
                .any(|k| k.name == key || *k == Key::ANY)
            {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    format!(
                        "unknown credential {key:?} for {}: expected {}",
                        self.connector_type,
                        self.credential_keys
                            .iter()
                            .map(|k| k.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for key in self.credential_keys.iter().filter(|k| k.required) {
            creds.require(key.name)?;
        }
        Ok(())
    }

    /// Rejects metadata keys the driver does not know; a tunnel the driver
    /// does not declare is refused with `tunnel_refusal` (or a generic
    /// reason). [`crate::prepare`] is its one caller.
    pub(crate) fn check_metadata_keys(
        &self,
        metadata: &BTreeMap<String, serde_json::Value>,
        tunnel_refusal: Option<&str>,
    ) -> Result<(), ConnectorError> {
        for key in metadata.keys() {
            if !self
                .metadata_keys
                .iter()
                .any(|k| k.name == key || *k == Key::ANY)
            {
                if key == crate::ssh::METADATA_KEY {
                    return Err(crate::ssh::unsupported(
                        self.display_name,
                        tunnel_refusal.unwrap_or("this driver does not support SSH tunnels"),
                    ));
                }
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    format!(
                        "unknown metadata key {key:?} for {}{}",
                        self.connector_type,
                        if self.metadata_keys.is_empty() {
                            String::from(": this type takes none")
                        } else {
                            format!(
                                ": expected {}",
                                self.metadata_keys
                                    .iter()
                                    .map(|k| k.name)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ),
                ));
            }
        }
        for key in self.metadata_keys.iter().filter(|k| k.required) {
            if !metadata.contains_key(key.name) {
                return Err(ConnectorError::invalid_config(
                    "metadata",
                    format!("metadata.{} is required", key.name),
                ));
            }
        }
        Ok(())
    }
}

/// What the core hands a driver when it connects: the addresses it resolved and
/// checked against the egress policy (connect to these, not to a fresh lookup of
/// the host name, so a DNS answer cannot change between check and use), the time
/// limits, and the policy itself for any further hosts the driver must reach.
///
/// Through an SSH tunnel (`metadata.sshTunnel`), `addrs` holds the tunnel's
/// loopback forwarder, which carries every connection to the target through
/// the bastion, and `host` is still the configured host (TLS checks it): a
/// driver that connects to `addrs` works unchanged. A driver that takes a
/// stream gets a channel without the loopback hop from
/// [`ConnectContext::connect_stream`].
#[derive(Clone, Debug)]
pub struct ConnectContext {
    /// The host name as configured, for TLS server name checks.
    pub host: Option<String>,
    /// The resolved addresses the policy allows; connect to these only.
    pub addrs: Vec<SocketAddr>,
    /// The spec's time limits.
    pub timeouts: Timeouts,
    /// The policy, for any further host the driver must reach.
    pub egress: EgressPolicy,
    /// The SSH tunnel the connection goes through, if any.
    pub tunnel: Option<crate::ssh::Tunnel>,
}

/// A connection to the source's endpoint: TCP to a checked address, or a
/// channel through the SSH tunnel. One per connection, so the channel's size
/// does not matter enough to box it on every read.
#[allow(clippy::large_enum_variant)]
pub enum NetStream {
    /// A TCP connection to a checked address.
    Tcp(tokio::net::TcpStream),
    /// A channel through the SSH tunnel.
    #[cfg(feature = "ssh")]
    Tunnel(crate::ssh::TunnelStream),
}

impl fmt::Debug for NetStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetStream::Tcp(s) => f.debug_tuple("Tcp").field(&s.peer_addr().ok()).finish(),
            #[cfg(feature = "ssh")]
            NetStream::Tunnel(s) => f.debug_tuple("Tunnel").field(&s.target()).finish(),
        }
    }
}

macro_rules! net_stream_dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            NetStream::Tcp($s) => $e,
            #[cfg(feature = "ssh")]
            NetStream::Tunnel($s) => $e,
        }
    };
}

impl tokio::io::AsyncRead for NetStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        net_stream_dispatch!(self, s => std::pin::Pin::new(s).poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for NetStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        net_stream_dispatch!(self, s => std::pin::Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        net_stream_dispatch!(self, s => std::pin::Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        net_stream_dispatch!(self, s => std::pin::Pin::new(s).poll_shutdown(cx))
    }
}

impl ConnectContext {
    /// Resolves the prepared connector's endpoint and applies the egress
    /// policy, bounded by the connect timeout.
    pub async fn resolve(
        prepared: &crate::PreparedConnector,
        egress: &EgressPolicy,
    ) -> Result<ConnectContext, ConnectorError> {
        let timeouts = prepared.timeouts();
        let mut ctx = ConnectContext {
            host: None,
            addrs: Vec::new(),
            timeouts,
            egress: egress.clone(),
            tunnel: None,
        };
        if let Some((host, port)) = prepared.endpoint() {
            ctx.addrs = resolve_host(host, port, timeouts, egress).await?;
            ctx.host = Some(host.to_owned());
        }
        Ok(ctx)
    }

    /// A context whose connections go through `tunnel` to the configured
    /// `host` (kept for TLS).
    #[cfg(feature = "ssh")]
    pub(crate) fn through(
        tunnel: crate::ssh::Tunnel,
        host: String,
        timeouts: Timeouts,
        egress: &EgressPolicy,
    ) -> ConnectContext {
        ConnectContext {
            host: Some(host),
            addrs: vec![tunnel.local_addr()],
            timeouts,
            egress: egress.clone(),
            tunnel: Some(tunnel),
        }
    }

    /// How to name `addr`, one of [`ConnectContext::addrs`], in messages:
    /// the address itself, or through a tunnel the target and the bastion
    /// (the forwarder's loopback address would mean nothing to a reader).
    pub fn describe(&self, addr: SocketAddr) -> String {
        #[cfg(feature = "ssh")]
        if let Some(t) = self.tunnel.as_ref().filter(|t| t.local_addr() == addr) {
            return format!("{} through the SSH bastion {}", t.target(), t.bastion());
        }
        addr.to_string()
    }

    /// Opens a stream to `addr`, one of [`ConnectContext::addrs`]. Through a
    /// tunnel it is a direct-tcpip channel to the target (no loopback hop;
    /// a refusal names the bastion and the target); otherwise TCP to `addr`.
    /// Unbounded: the caller's connect time limit covers it.
    pub async fn connect_stream(&self, addr: SocketAddr) -> Result<NetStream, ConnectorError> {
        #[cfg(feature = "ssh")]
        if let Some(t) = self.tunnel.as_ref().filter(|t| t.local_addr() == addr) {
            return t.open_stream().await.map(NetStream::Tunnel);
        }
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ConnectorError::from_io(e, format_args!("connecting to {addr}")))?;
        // Catalog work is many small messages.
        let _ = stream.set_nodelay(true);
        Ok(NetStream::Tcp(stream))
    }
}

/// Whether two spellings name the same host: addresses compared as
/// addresses (brackets aside), names without case and trailing dot.
#[cfg(any(feature = "http", feature = "ssh"))]
pub(crate) fn same_host(a: &str, b: &str) -> bool {
    let bare = |h: &str| {
        h.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase()
    };
    let (a, b) = (bare(a), bare(b));
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Resolves `host:port` and keeps the addresses the egress policy allows. IP
/// literals skip DNS. Names under `.invalid` fail at once (RFC 6761 §6.4).
pub async fn resolve_host(
    host: &str,
    port: u16,
    timeouts: Timeouts,
    egress: &EgressPolicy,
) -> Result<Vec<SocketAddr>, ConnectorError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let lower = bare.trim_end_matches('.').to_ascii_lowercase();
        if lower == "invalid" || lower.ends_with(".invalid") {
            return Err(ConnectorError::new(
                ErrorCode::DnsResolutionFailed,
                format!("could not resolve {host}: the .invalid domain never resolves"),
            )
            .with_context("host", host)
            .with_retryable(false));
        }
        let lookup = tokio::net::lookup_host((bare, port));
        match tokio::time::timeout(timeouts.connect(), lookup).await {
            Err(_) => {
                return Err(ConnectorError::new(
                    ErrorCode::Timeout,
                    format!(
                        "resolving {host} took longer than {} ms",
                        timeouts.connect_ms
                    ),
                )
                .with_context("host", host))
            }
            Ok(Err(e)) => {
                return Err(ConnectorError::new(
                    ErrorCode::DnsResolutionFailed,
                    format!("could not resolve {host}: {e}"),
                )
                .with_context("host", host)
                .with_source(e))
            }
            Ok(Ok(a)) => a.collect(),
        }
    };
    if addrs.is_empty() {
        return Err(ConnectorError::new(
            ErrorCode::DnsResolutionFailed,
            format!("{host} resolved to no address"),
        )
        .with_context("host", host));
    }
    let mut allowed = Vec::with_capacity(addrs.len());
    let mut first_denial = None;
    for addr in addrs {
        match egress.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(e) => {
                first_denial.get_or_insert(e.with_context("host", host));
            }
        }
    }
    match (allowed.is_empty(), first_denial) {
        (true, Some(e)) => Err(e),
        _ => Ok(allowed),
    }
}

/// A source type's driver. Implementations are cheap to share (`Arc<dyn Driver>`).
///
/// A driver parses a connector's settings once, in [`Driver::prepare`], into
/// a typed value ([`Prepared`]) that knows its endpoint and connects. The
/// checks every driver shares (the descriptor's keys,
/// `ConnectionConfig::validate_common`, the SSH tunnel) are core's: they
/// run in [`crate::prepare`], the one way to call `Driver::prepare`.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Static facts: type, keys, capabilities.
    fn descriptor(&self) -> &DriverDescriptor;

    /// Parses the driver's own settings into a typed value, without I/O.
    /// Core's checks have passed ([`Checked`]); check only what is the
    /// driver's own.
    fn prepare(&self, spec: Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError>;

    /// For a driver that does not declare SSH tunnels: why its source cannot
    /// be reached through one, when the reason helps people. `None` gives
    /// the generic refusal.
    fn ssh_tunnel_refusal(&self) -> Option<&'static str> {
        None
    }
}

/// A configuration and credentials that passed core's checks: what
/// [`Driver::prepare`] parses. Only [`crate::prepare`] makes one, so a
/// driver's parse never runs without the common checks.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a> {
    cfg: &'a ConnectionConfig,
    creds: &'a Credentials,
}

impl<'a> Checked<'a> {
    pub(crate) fn new(cfg: &'a ConnectionConfig, creds: &'a Credentials) -> Self {
        Checked { cfg, creds }
    }

    /// The connection configuration.
    pub fn config(&self) -> &'a ConnectionConfig {
        self.cfg
    }

    /// The credentials.
    pub fn credentials(&self) -> &'a Credentials {
        self.creds
    }
}

/// A connector's settings as its driver parsed them: typed, checked, no I/O
/// done. [`crate::prepare`] makes one per request; the connectivity test,
/// [`open`] and the SSH tunnel work on it. Its `Debug` never prints a secret
/// (the conformance suite checks).
#[async_trait]
pub trait Prepared: Send + Sync + fmt::Debug {
    /// The host and port the core resolves, checks against the egress policy
    /// and probes with TCP before `connect` (through an SSH tunnel, the
    /// target the bastion reaches). `None` for sources with no fixed
    /// endpoint.
    fn endpoint(&self) -> Option<(&str, u16)>;

    /// Opens a connection over `ctx`'s checked addresses (or tunnel): TLS and
    /// authentication included.
    async fn connect(&self, ctx: &ConnectContext) -> Result<Box<dyn Connection>, ConnectorError>;
}

/// An open connection to a source.
#[async_trait]
pub trait Connection: Send {
    /// What the source says its version is.
    async fn server_version(&mut self) -> Result<String, ConnectorError>;

    /// The cheapest call that proves discovery under `req`'s filters would work:
    /// the connectivity test's last step.
    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError>;

    /// Discovers the catalog. A bounded number of catalog queries, never one per
    /// table; filters pushed down where the source can evaluate them.
    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError>;

    /// Re-discovers against the fingerprint of an earlier discovery: every
    /// relation's header, and the detail (columns, primary key, comment) of
    /// new and changed relations only; removed ones are named. Apply the delta
    /// to the catalog `previous` was taken with ([`CatalogDelta::apply`]).
    ///
    /// The default is a full discovery, which every source can answer: the
    /// delta is `full` and carries no fingerprint. Drivers that can tell cheaply
    /// what changed override it.
    async fn discover_changed(
        &mut self,
        req: &DiscoveryRequest,
        previous: Option<&CatalogFingerprint>,
    ) -> Result<CatalogDelta, ConnectorError> {
        let _ = previous;
        self.discover(req).await.map(CatalogDelta::full)
    }

    /// Ends the session politely (bounded by the caller).
    async fn close(self: Box<Self>) -> Result<(), ConnectorError>;
}

impl fmt::Debug for dyn Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Driver({})", self.descriptor().connector_type)
    }
}

impl fmt::Debug for dyn Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connection")
    }
}

/// Prepares, resolves and connects: what an embedder calls to get a
/// connection ([`crate::prepare`] then [`crate::PreparedConnector::open`]).
pub async fn open(
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
    egress: &EgressPolicy,
) -> Result<Box<dyn Connection>, ConnectorError> {
    crate::prepare(driver, cfg, creds)?.open(egress).await
}

/// Runs `fut` under a time limit, turning the limit into a `TIMEOUT` error.
pub async fn with_timeout<T>(
    limit: std::time::Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectorError::new(
            ErrorCode::Timeout,
            format!("{what} took longer than {} ms", limit.as_millis()),
        )),
    }
}

/// The drivers available to a process, by type.
#[derive(Clone, Default)]
pub struct Registry {
    drivers: BTreeMap<ConnectorType, Arc<dyn Driver>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds a driver under its descriptor's type, replacing any earlier one.
    pub fn register(&mut self, driver: Arc<dyn Driver>) -> &mut Self {
        self.drivers
            .insert(driver.descriptor().connector_type.clone(), driver);
        self
    }

    /// The driver for `ty`: `DRIVER_UNAVAILABLE` naming the Cargo feature for a standard type compiled out, `INVALID_CONFIGURATION` for an unknown custom type.
    pub fn get(&self, ty: &ConnectorType) -> Result<Arc<dyn Driver>, ConnectorError> {
        if let Some(d) = self.drivers.get(ty) {
            return Ok(d.clone());
        }
        if ty.is_custom() {
            Err(ConnectorError::new(
                ErrorCode::InvalidConfiguration,
                format!("unknown connector type `{ty}`: no driver is registered for it"),
            )
            .with_context("field", "type"))
        } else {
            Err(ConnectorError::new(
                ErrorCode::DriverUnavailable,
                format!(
                    "driver `{}` is not enabled in this build (Cargo feature `{}` of matih-connectors)",
                    ty.driver_name(),
                    ty.driver_name()
                ),
            )
            .with_retryable(false))
        }
    }

    /// The registered types, in order.
    pub fn types(&self) -> impl Iterator<Item = &ConnectorType> {
        self.drivers.keys()
    }

    /// The registered drivers' descriptors, in type order.
    pub fn descriptors(&self) -> impl Iterator<Item = &DriverDescriptor> {
        self.drivers.values().map(|d| d.descriptor())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.drivers.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_tld_and_ip_literals() {
        let t = Timeouts::default();
        let p = EgressPolicy::default();
        let err = resolve_host("db.example.invalid", 5432, t, &p)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::DnsResolutionFailed);
        let a = resolve_host("127.0.0.1", 5432, t, &p).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:5432".parse().unwrap()]);
        let a = resolve_host("[::1]", 1, t, &p).await.unwrap();
        assert_eq!(a[0].port(), 1);
        let err = resolve_host("169.254.169.254", 80, t, &p)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::EgressDenied);
    }

    #[cfg(any(feature = "http", feature = "ssh"))]
    #[test]
    fn host_spellings() {
        for (a, b) in [
            ("API.Internal.", "api.internal"),
            ("10.0.0.5", "10.0.0.5"),
            ("[fd00::5]", "fd00:0::5"),
            ("::ffff:10.0.0.5", "[::FFFF:10.0.0.5]"),
        ] {
            assert!(same_host(a, b), "{a} {b}");
        }
        for (a, b) in [
            ("api.internal", "api.internal.example"),
            ("10.0.0.5", "10.0.0.6"),
            // An address and a name that may resolve to it are not the same host.
            ("127.0.0.1", "localhost"),
        ] {
            assert!(!same_host(a, b), "{a} {b}");
        }
    }

    #[test]
    fn any_key_accepts_every_key() {
        let open = DriverDescriptor {
            connector_type: ConnectorType::Custom("FAKER".into()),
            display_name: "Faker",
            default_port: None,
            credential_keys: vec![Key::ANY],
            metadata_keys: vec![Key::ANY],
            capabilities: Capabilities::default(),
        };
        let mut meta = BTreeMap::new();
        meta.insert("count".to_owned(), serde_json::json!(10));
        open.check_metadata_keys(&meta, None).unwrap();
        open.check_credential_keys(&Credentials::new().with("api_key", "k"))
            .unwrap();
        // Not a way around the tunnel rule: only drivers that declare it tunnel.
        assert!(!open.supports_ssh_tunnel());
    }

    #[test]
    fn registry_names_missing_drivers() {
        let r = Registry::new();
        let err = r.get(&ConnectorType::Kafka).unwrap_err();
        assert_eq!(err.code(), ErrorCode::DriverUnavailable);
        assert!(err
            .message()
            .contains("driver `kafka` is not enabled in this build"));
        let err = r.get(&ConnectorType::Custom("ERP".into())).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
    }
}
