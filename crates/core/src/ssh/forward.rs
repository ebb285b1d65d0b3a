//! A loopback forwarder for client libraries that only take an address
//! (MongoDB, Kafka, HTTP clients): `127.0.0.1:<random>` whose every accepted
//! connection is carried over a new channel through the bastion.
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
use crate::{ConnectorError, ErrorCode, Timeouts};

/// Forwarded connections carried at once; more wait for a slot, so a client
/// library that opens connections in a loop cannot exhaust the bastion.
const MAX_CONNECTIONS: usize = 64;

/// A running loopback forwarder. Dropping it stops the listener and every
/// connection it carries.
pub struct LocalForward {
    addr: SocketAddr,
    target: String,
    last_error: Arc<Mutex<Option<ConnectorError>>>,
    task: JoinHandle<()>,
}

impl LocalForward {
    pub(super) async fn start(
        handle: Arc<Handle<Client>>,
        bastion: String,
        host: String,
        port: u16,
        timeouts: Timeouts,
    ) -> Result<LocalForward, ConnectorError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| {
                ConnectorError::from_io(e, "binding the SSH tunnel's forwarder on 127.0.0.1")
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ConnectorError::from_io(e, "the SSH tunnel's forwarder address"))?;
        let last_error = Arc::new(Mutex::new(None));
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let task = tokio::spawn(serve(Serve {
            listener,
            addr,
            handle,
            bastion,
            host,
            port,
            timeouts,
            last_error: last_error.clone(),
        }));
        Ok(LocalForward {
            addr,
            target,
            last_error,
            task,
        })
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
            .field("target", &self.target)
            .finish()
    }
}

struct Serve {
    listener: TcpListener,
    addr: SocketAddr,
    handle: Arc<Handle<Client>>,
    bastion: String,
    host: String,
    port: u16,
    timeouts: Timeouts,
    last_error: Arc<Mutex<Option<ConnectorError>>>,
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
        if !client_is_this_process(peer, s.addr).await {
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
        let handle = s.handle.clone();
        let (bastion, host, port, timeouts) =
            (s.bastion.clone(), s.host.clone(), s.port, s.timeouts);
        let last_error = s.last_error.clone();
        carried.spawn(async move {
            let _permit = permit;
            match open_channel(&handle, &bastion, &host, port, timeouts).await {
                Ok(mut stream) => {
                    let _ = socket.set_nodelay(true);
                    // Either side closing ends both; the driver's own
                    // timeouts bound a silent target.
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut stream).await;
                }
                // The client sees its connection closed; the driver asks
                // `last_error` why.
                Err(e) => record(&last_error, e),
            }
        });
    }
}

fn record(slot: &Mutex<Option<ConnectorError>>, err: ConnectorError) {
    tracing::debug!(error = %err, "SSH tunnel forwarder");
    if let Ok(mut s) = slot.lock() {
        *s = Some(err);
    }
}

/// Whether the client end of an accepted loopback connection is a socket of
/// this process. Linux only; other systems accept every local client.
#[cfg(target_os = "linux")]
async fn client_is_this_process(client: SocketAddr, server: SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || own_socket(client, server))
        .await
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
async fn client_is_this_process(_client: SocketAddr, _server: SocketAddr) -> bool {
    true
}

/// Finds the client socket (local = `client`, remote = `server`) in
/// `/proc/net/tcp` and looks for its inode among this process's descriptors.
/// Fails closed: anything unreadable means "not ours".
#[cfg(target_os = "linux")]
fn own_socket(client: SocketAddr, server: SocketAddr) -> bool {
    let (SocketAddr::V4(c), SocketAddr::V4(s)) = (client, server) else {
        return false;
    };
    // The kernel prints the address as the native-endian value of its
    // network-order bytes, and the port in host order.
    let hex = |a: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (want_local, want_remote) = (hex(c), hex(s));
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inode = table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want_local && f[2] == want_remote).then(|| f[9].to_owned())
    });
    let Some(inode) = inode else {
        return false;
    };
    let link = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == link.as_str())
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    #[tokio::test]
    async fn own_sockets_are_recognised_and_others_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(client_is_this_process(peer, server).await);
        // A connection from another process: a shell that connects and waits.
        let mut child = tokio::process::Command::new("bash")
            .args([
                "-c",
                &format!("exec 3<>/dev/tcp/127.0.0.1/{}; read line", server.port()),
            ])
            .stdin(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("bash opens a socket from another process");
        let (_foreign, foreign_peer) =
            tokio::time::timeout(std::time::Duration::from_secs(30), listener.accept())
                .await
                .expect("the child connects")
                .unwrap();
        assert!(!client_is_this_process(foreign_peer, server).await);
        let _ = child.kill().await;
    }
}
