//! A loopback forwarder for client libraries that only take an address
//! (MySQL, MongoDB): `127.0.0.1:<random>` whose every accepted connection is
//! carried over a new channel through the bastion. For HTTP clients, which
//! can be pointed at a proxy but not at another address for one host, the
//! same forwarder speaks SOCKS5 ([`super::socks`]) and carries only a
//! CONNECT to its one target.
//!
//! Anything on the machine can connect to a loopback port, and in a
//! multi-tenant process another tenant's connector could name it as its host.
//! So, on Linux, the forwarder serves only connections whose client socket
//! belongs to this process (found through `/proc/net/tcp` and
//! `/proc/self/fd`), and refuses the rest; elsewhere it serves any local
//! client, and the egress policy must deny loopback to tenants.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use russh::client::Handle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::session::{open_channel, Client};
use super::{socks, TunnelStream};
use crate::{ConnectorError, ErrorCode, Timeouts};

/// Forwarded connections carried at once; more wait for a slot, so a client
/// library that opens connections in a loop cannot exhaust the bastion.
const MAX_CONNECTIONS: usize = 64;

/// A running loopback forwarder. Dropping it stops the listener and every
/// connection it carries.
pub struct LocalForward {
    addr: SocketAddr,
    protocol: Protocol,
    target: String,
    last_error: Arc<Mutex<Option<ConnectorError>>>,
    task: JoinHandle<()>,
}

/// What a forwarder's clients speak before their bytes are carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// Nothing: every connection goes to the target at once.
    Raw,
    /// A SOCKS5 CONNECT, which must name the target.
    Socks5,
}

/// The failure slot a tunnel's forwarders share.
pub(super) type ErrorSlot = Arc<Mutex<Option<ConnectorError>>>;

/// Where a forwarder leads and how it is reached.
pub(super) struct Route {
    pub handle: Arc<Handle<Client>>,
    pub bastion: String,
    pub host: String,
    pub port: u16,
    pub timeouts: Timeouts,
}

impl LocalForward {
    pub(super) async fn start(route: Route) -> Result<LocalForward, ConnectorError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(bind_error)?;
        Self::serve_on(listener, route, Protocol::Raw, Arc::new(Mutex::new(None)))
    }

    /// A SOCKS5 forwarder to the route's target, started without awaiting
    /// (HTTP clients are built synchronously); failures go to `last_error`.
    /// Needs a Tokio runtime.
    pub(super) fn start_socks(
        route: Route,
        last_error: ErrorSlot,
    ) -> Result<LocalForward, ConnectorError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectorError::internal(
                "the SSH tunnel's HTTP forwarder needs a Tokio runtime",
            ));
        }
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
            .map_err(bind_error)?;
        Self::serve_on(listener, route, Protocol::Socks5, last_error)
    }

    fn serve_on(
        listener: TcpListener,
        route: Route,
        protocol: Protocol,
        last_error: ErrorSlot,
    ) -> Result<LocalForward, ConnectorError> {
        let addr = listener
            .local_addr()
            .map_err(|e| ConnectorError::from_io(e, "the SSH tunnel's forwarder address"))?;
        let target = if route.host.contains(':') {
            format!("[{}]:{}", route.host, route.port)
        } else {
            format!("{}:{}", route.host, route.port)
        };
        let task = tokio::spawn(serve(Serve {
            listener,
            addr,
            route: Arc::new(route),
            protocol,
            last_error: last_error.clone(),
        }));
        Ok(LocalForward {
            addr,
            protocol,
            target,
            last_error,
            task,
        })
    }

    /// The slot this forwarder records its failures in.
    pub(super) fn error_slot(&self) -> ErrorSlot {
        self.last_error.clone()
    }

    /// The loopback address to give the client library instead of the target's.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` of the target, as the bastion is asked to reach it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The last failure to carry a connection (the bastion refused the
    /// channel, the session ended, a foreign client was turned away). Client
    /// libraries see only a closed socket; a driver maps its vague error into
    /// this precise one.
    pub fn last_error(&self) -> Option<ConnectorError> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for LocalForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for LocalForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalForward")
            .field("local_addr", &self.addr)
            .field("protocol", &self.protocol)
            .field("target", &self.target)
            .finish()
    }
}

fn bind_error(e: std::io::Error) -> ConnectorError {
    ConnectorError::from_io(e, "binding the SSH tunnel's forwarder on 127.0.0.1")
}

struct Serve {
    listener: TcpListener,
    addr: SocketAddr,
    route: Arc<Route>,
    protocol: Protocol,
    last_error: ErrorSlot,
}

/// Accepts until aborted. The connections live in a `JoinSet` owned by this
/// task, so aborting it (dropping the forwarder) ends them too.
async fn serve(s: Serve) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut carried = JoinSet::new();
    loop {
        // Reap finished connections as we go so the set stays small.
        while carried.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (mut socket, peer) = match s.listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                record(
                    &s.last_error,
                    ConnectorError::from_io(e, "the SSH tunnel's forwarder stopped accepting"),
                );
                return;
            }
        };
        if !super::loopback_client_is_this_process(peer, s.addr).await {
            tracing::warn!(
                forwarder = %s.addr,
                client = %peer,
                "SSH tunnel forwarder refused a connection from another process"
            );
            record(
                &s.last_error,
                ConnectorError::new(
                    ErrorCode::EgressDenied,
                    format!(
                        "the SSH tunnel's forwarder {} refused {peer}: it serves only this process",
                        s.addr
                    ),
                ),
            );
            continue;
        }
        let route = s.route.clone();
        let (protocol, last_error) = (s.protocol, s.last_error.clone());
        carried.spawn(async move {
            let _permit = permit;
            let _ = socket.set_nodelay(true);
            let opened = match protocol {
                Protocol::Raw => open(&route).await.map_err(|e| record(&last_error, e)).ok(),
                Protocol::Socks5 => socks_connect(&mut socket, &route, &last_error).await,
            };
            // Either side closing ends both; the driver's own timeouts bound
            // a silent target. A client whose connection failed sees it
            // closed or refused; the driver asks `last_error` why.
            if let Some(mut stream) = opened {
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut stream).await;
            }
        });
    }
}

async fn open(route: &Route) -> Result<TunnelStream, ConnectorError> {
    open_channel(
        &route.handle,
        &route.bastion,
        &route.host,
        route.port,
        route.timeouts,
    )
    .await
}

/// The SOCKS5 exchange, bounded by the connect timeout, then the channel.
/// A request for anything but the route's target is refused (`EGRESS_DENIED`:
/// the tunnel leads to one `host:port`). Every failure is recorded before
/// the client gets its refusal, so the client's error can be explained.
async fn socks_connect(
    socket: &mut tokio::net::TcpStream,
    route: &Route,
    last_error: &ErrorSlot,
) -> Option<TunnelStream> {
    let limit = route.timeouts.connect();
    let refuse = |e: ConnectorError| record(last_error, e);
    let asked = match tokio::time::timeout(limit, socks::accept(socket)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            refuse(ConnectorError::from_io(
                e,
                "a client of the SSH tunnel's HTTP forwarder",
            ));
            return None;
        }
        Err(_) => {
            refuse(ConnectorError::new(
                ErrorCode::Timeout,
                "a client of the SSH tunnel's HTTP forwarder sent no SOCKS5 request in time",
            ));
            return None;
        }
    };
    let answer = if same_target(&asked, &route.host, route.port) {
        match open(route).await {
            Ok(stream) => Ok(stream),
            Err(e) => Err((socks::Reply::for_error(e.code()), e)),
        }
    } else {
        let e = ConnectorError::new(
            ErrorCode::EgressDenied,
            format!(
                "the SSH tunnel leads to {}:{} only; {}:{} was asked for",
                route.host, route.port, asked.host, asked.port
            ),
        )
        .with_context("bastion", &route.bastion);
        Err((socks::Reply::NotAllowed, e))
    };
    let (reply, stream) = match answer {
        Ok(stream) => (socks::Reply::Succeeded, Some(stream)),
        Err((reply, e)) => {
            refuse(e);
            (reply, None)
        }
    };
    match tokio::time::timeout(limit, socks::reply(socket, reply)).await {
        Ok(Ok(())) => stream,
        // The client left: nothing to carry.
        _ => None,
    }
}

/// Whether a SOCKS request names the route's target.
fn same_target(asked: &socks::Request, host: &str, port: u16) -> bool {
    asked.port == port && crate::driver::same_host(&asked.host, host)
}

fn record(slot: &Mutex<Option<ConnectorError>>, err: ConnectorError) {
    tracing::debug!(error = %err, "SSH tunnel forwarder");
    if let Ok(mut s) = slot.lock() {
        *s = Some(err);
    }
}
