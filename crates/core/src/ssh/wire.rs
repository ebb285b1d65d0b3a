//! The tunnel as the runner and `open` use it: one session per test or
//! discovery, a loopback forwarder to the target for libraries that take an
//! address, channels for drivers that take a stream, and a SOCKS5 forwarder
//! to the same target for core's HTTP client (started when one is built).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{LocalForward, SshSession, TunnelStream};
use crate::{Catalog, Connection, ConnectorError, DiscoveryRequest};

/// What a tunnelled [`crate::ConnectContext`] carries. Cheap to clone; the
/// session ends when [`Tunnel::close`] is called or the last clone (and every
/// stream through it) is dropped.
#[derive(Clone)]
pub struct Tunnel {
    inner: Arc<Inner>,
}

struct Inner {
    session: SshSession,
    forward: LocalForward,
    /// Started by the first [`Tunnel::http_proxy`] call.
    socks: Mutex<Option<LocalForward>>,
    host: String,
    port: u16,
}

impl Tunnel {
    /// Starts the loopback forwarder to `host:port` (as the bastion sees
    /// them) over an authenticated session.
    pub async fn start(
        session: SshSession,
        host: &str,
        port: u16,
    ) -> Result<Tunnel, ConnectorError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let forward = match session.forward_local(&host, port).await {
            Ok(f) => f,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        Ok(Tunnel {
            inner: Arc::new(Inner {
                session,
                forward,
                socks: Mutex::new(None),
                host,
                port,
            }),
        })
    }

    /// The forwarder's loopback address: what the context's `addrs` hold.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.forward.local_addr()
    }

    /// `host:port` of the target, as the bastion is asked to reach it.
    pub fn target(&self) -> &str {
        self.inner.forward.target()
    }

    /// `host:port` of the bastion.
    pub fn bastion(&self) -> &str {
        self.inner.session.bastion()
    }

    /// A direct-tcpip channel to the target, without the loopback hop.
    pub async fn open_stream(&self) -> Result<TunnelStream, ConnectorError> {
        self.inner
            .session
            .open_stream(&self.inner.host, self.inner.port)
            .await
    }

    /// The loopback address of a SOCKS5 forwarder that carries a CONNECT to
    /// the target (and refuses any other) over a new channel: what core's
    /// HTTP client is given as its proxy for the target's URLs. Started on
    /// the first call, shared by later ones; it records its failures where
    /// [`Tunnel::last_error`] finds them. Needs a Tokio runtime.
    pub fn http_proxy(&self) -> Result<SocketAddr, ConnectorError> {
        let mut socks = self
            .inner
            .socks
            .lock()
            .map_err(|_| ConnectorError::internal("the SSH tunnel's HTTP forwarder lock"))?;
        if let Some(f) = socks.as_ref() {
            return Ok(f.local_addr());
        }
        let route = self.inner.session.route(&self.inner.host, self.inner.port);
        let started = LocalForward::start_socks(route, self.inner.forward.error_slot())?;
        let addr = started.local_addr();
        *socks = Some(started);
        Ok(addr)
    }

    /// `(host, port)` of the target, the host without brackets.
    pub fn target_parts(&self) -> (&str, u16) {
        (&self.inner.host, self.inner.port)
    }

    /// The forwarder's last failure to carry a connection (the bastion
    /// refused the channel, the session ended): the precise cause behind a
    /// client library's "connection closed".
    pub fn last_error(&self) -> Option<ConnectorError> {
        self.inner.forward.last_error()
    }

    /// Ends the session, and every stream and forwarded connection with it.
    /// Bounded.
    pub async fn close(&self) {
        self.inner.session.disconnect().await;
    }
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("bastion", &self.bastion())
            .field("target", &self.inner.forward.target())
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

/// A driver's connection that owns the tunnel it runs through: handed to an
/// embedder by [`crate::open`], it keeps the session up while it lives, and
/// `close` ends the session after the connection.
pub(crate) struct TunnelledConnection {
    pub(crate) inner: Box<dyn Connection>,
    pub(crate) tunnel: Tunnel,
}

impl TunnelledConnection {
    /// A failure of the connection with the forwarder's precise cause in
    /// place of a library's vague "closed" or "refused".
    fn explain(&self, e: ConnectorError) -> ConnectorError {
        explain(&self.tunnel, e)
    }
}

/// When a driver's error is about the transport and the tunnel knows why,
/// the tunnel's error wins (it names the bastion and the target).
pub(crate) fn explain(tunnel: &Tunnel, e: ConnectorError) -> ConnectorError {
    use crate::ErrorCode as C;
    if matches!(e.code(), C::ConnectionClosed | C::ConnectionRefused) {
        if let Some(cause) = tunnel.last_error() {
            return cause;
        }
    }
    e
}

/// [`explain`] for a failed connect, where a time-out counts too: a client
/// library that retries a refused connection until its deadline (MongoDB's
/// server selection) reports only the deadline.
pub(crate) fn explain_connect(tunnel: &Tunnel, e: ConnectorError) -> ConnectorError {
    if e.code() == crate::ErrorCode::Timeout {
        if let Some(cause) = tunnel.last_error() {
            return cause;
        }
    }
    explain(tunnel, e)
}

#[async_trait]
impl Connection for TunnelledConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
        match self.inner.server_version().await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.explain(e)),
        }
    }

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        match self.inner.probe(req).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.explain(e)),
        }
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        match self.inner.discover(req).await {
            Ok(c) => Ok(c),
            Err(e) => Err(self.explain(e)),
        }
    }

    async fn discover_changed(
        &mut self,
        req: &DiscoveryRequest,
        previous: Option<&crate::CatalogFingerprint>,
    ) -> Result<crate::CatalogDelta, ConnectorError> {
        match self.inner.discover_changed(req, previous).await {
            Ok(d) => Ok(d),
            Err(e) => Err(self.explain(e)),
        }
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        let TunnelledConnection { inner, tunnel } = *self;
        let closed = inner.close().await;
        tunnel.close().await;
        closed
    }
}
