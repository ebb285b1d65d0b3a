//! TLS for the MongoDB client, made with the core's TLS configuration.
//!
//! The `mongodb` crate's rustls back end builds its own rustls configuration
//! from a CA file path; it cannot check the chain without the host name (its
//! `allow_invalid_hostnames` exists only with the OpenSSL back end), and it
//! resolves the host name again before dialling. So the client does not speak
//! TLS itself: it dials a Unix socket in a private directory (mode 0700, only
//! this user can connect), and for each connection accepted there the bridge
//! dials the pinned, egress-checked address and wraps it in TLS with
//! [`tls::client_config`] for the configured mode and CA, verifying against
//! the configured host name. The four modes thus mean here what they mean
//! for every driver, and no second DNS lookup happens.
//!
//! The first connection is made before the client exists, so a refused
//! certificate is the connect step's error (SSL_HANDSHAKE_FAILED naming the
//! cause) rather than a server-selection timeout. A later dial that fails is
//! kept in [`TlsBridge::failure`] for the error of the command that needed it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matih_connector_core::{tls, with_timeout, ConnectorError, ErrorCode};
use mongodb::options::ServerAddress;
use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::MongoOptions;

/// Connections the bridge carries at once; the client's pool is smaller.
const MAX_CONNECTIONS: usize = 16;

struct Dialer {
    addrs: Vec<SocketAddr>,
    name: ServerName<'static>,
    connector: TlsConnector,
    timeout: Duration,
}

impl Dialer {
    /// TCP to the first pinned address that answers, then the handshake;
    /// each bounded by the connect timeout.
    async fn dial(&self) -> Result<TlsStream<TcpStream>, ConnectorError> {
        let mut last = None;
        for addr in &self.addrs {
            let tcp = with_timeout(self.timeout, "connecting to MongoDB", async {
                TcpStream::connect(addr)
                    .await
                    .map_err(|e| ConnectorError::from_io(e, addr))
            })
            .await;
            let tcp = match tcp {
                Ok(t) => t,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            return with_timeout(self.timeout, "TLS handshake", async {
                self.connector
                    .connect(self.name.clone(), tcp)
                    .await
                    .map_err(|e| ConnectorError::from_io(e, "TLS handshake"))
            })
            .await;
        }
        Err(last.unwrap_or_else(|| ConnectorError::internal("no resolved address for MongoDB")))
    }
}

/// A running bridge; it stops and removes its socket when dropped.
pub(crate) struct TlsBridge {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    failure: Arc<Mutex<Option<ConnectorError>>>,
}

impl TlsBridge {
    /// Opens the first TLS connection to `addrs`, then serves the socket.
    pub(crate) async fn start(
        opts: &MongoOptions,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<TlsBridge, ConnectorError> {
        let config = tls::client_config(opts.ssl_mode, opts.ca_pem.as_deref())?
            .ok_or_else(|| ConnectorError::internal("TLS bridge started without a TLS mode"))?;
        let host = opts.host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            ConnectorError::invalid_config("host", format!("not a TLS server name: {e}"))
        })?;
        let dialer = Arc::new(Dialer {
            addrs: addrs.to_vec(),
            name,
            connector: TlsConnector::from(Arc::new(config)),
            timeout,
        });
        let first = dialer.dial().await?;

        let dir = private_dir()?;
        let socket = dir.join("s");
        let listener = UnixListener::bind(&socket).map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            ConnectorError::internal(format!("binding the TLS bridge socket: {e}")).with_source(e)
        })?;
        let failure = Arc::new(Mutex::new(None));
        let task = tokio::spawn(serve(listener, dialer, first, failure.clone()));
        Ok(TlsBridge {
            dir,
            socket,
            task,
            failure,
        })
    }

    /// The address the client dials.
    pub(crate) fn address(&self) -> ServerAddress {
        ServerAddress::Unix {
            path: self.socket.clone(),
        }
    }

    /// The last dial or handshake that failed, if any.
    pub(crate) fn failure(&self) -> Option<ConnectorError> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

impl Drop for TlsBridge {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory only this user may enter.
fn private_dir() -> Result<PathBuf, ConnectorError> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("matih-mongodb-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            ConnectorError::internal(format!("creating the TLS bridge directory: {e}"))
                .with_source(e)
        })?;
    Ok(dir)
}

async fn serve(
    listener: UnixListener,
    dialer: Arc<Dialer>,
    first: TlsStream<TcpStream>,
    failure: Arc<Mutex<Option<ConnectorError>>>,
) {
    let mut first = Some(first);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while let Ok((mut local, _)) = listener.accept().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let ready = first.take();
        let dialer = dialer.clone();
        let failure = failure.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let remote = match ready {
                Some(s) => Ok(s),
                None => dialer.dial().await,
            };
            match remote {
                Ok(mut remote) => {
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                }
                Err(e) => {
                    tracing::debug!(target: "matih_driver_mongodb", "TLS bridge dial failed: {e}");
                    if let Ok(mut f) = failure.lock() {
                        *f = Some(e);
                    }
                }
            }
        });
    }
}

/// When the client saw only a closed socket or ran out of time, the bridge's
/// own failure (a refused certificate, a refused dial) is the real cause.
pub(crate) fn explain(bridge: Option<&TlsBridge>, err: ConnectorError) -> ConnectorError {
    let vague = matches!(
        err.code(),
        ErrorCode::ConnectionClosed | ErrorCode::Timeout | ErrorCode::SourceError
    );
    match bridge.and_then(TlsBridge::failure) {
        Some(f) if vague => f,
        _ => err,
    }
}
