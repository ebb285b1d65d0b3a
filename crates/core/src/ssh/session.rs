//! One SSH session to the bastion, and direct-tcpip channels through it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle, Msg};
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelOpenFailure, ChannelStream, Disconnect};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{HostKeyPin, LocalForward, TunnelAuth, TunnelSpec};
use crate::driver::resolve_host;
use crate::{ConnectorError, EgressPolicy, ErrorCode, Timeouts};

/// How often an idle session is probed, and how many unanswered probes end
/// it: a bastion that vanishes mid-discovery is noticed, and the streams
/// through it fail instead of hanging.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;

/// Step `dns` of a tunnelled test: resolves the bastion and applies the
/// egress policy to its addresses (the bastion is what core connects to).
pub async fn resolve_bastion(
    spec: &TunnelSpec,
    timeouts: Timeouts,
    egress: &EgressPolicy,
) -> Result<Vec<SocketAddr>, ConnectorError> {
    resolve_host(spec.host(), spec.port(), timeouts, egress)
        .await
        .map_err(|e| {
            let msg = format!("SSH bastion: {}", e.message());
            rewrap(e, msg).with_context("bastion", spec.bastion())
        })
}

/// Step `tcp` of a tunnelled test: a TCP connection to the first bastion
/// address that accepts, each attempt bounded by the connect timeout.
pub async fn connect_bastion(
    spec: &TunnelSpec,
    addrs: &[SocketAddr],
    timeouts: Timeouts,
) -> Result<TcpStream, ConnectorError> {
    let mut last = None;
    for addr in addrs {
        let attempt = tokio::time::timeout(timeouts.connect(), TcpStream::connect(addr)).await;
        let err = match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => {
                ConnectorError::from_io(e, format_args!("SSH bastion {}", spec.bastion()))
            }
            Err(_) => ConnectorError::new(
                ErrorCode::Timeout,
                format!(
                    "SSH bastion {}: TCP connection to {addr} took longer than {} ms",
                    spec.bastion(),
                    timeouts.connect_ms
                ),
            ),
        };
        last = Some(
            err.with_context("bastion", spec.bastion())
                .with_context("address", addr),
        );
    }
    Err(last.unwrap_or_else(|| {
        ConnectorError::internal(format!("no address for SSH bastion {}", spec.bastion()))
    }))
}

/// An authenticated SSH session to a bastion. Streams and forwarders opened
/// through it keep the session up while they live; [`SshSession::close`]
/// ends it (and them) at once, dropping every handle ends it too.
pub struct SshSession {
    handle: Arc<Handle<Client>>,
    bastion: String,
    timeouts: Timeouts,
}

impl SshSession {
    /// dns → tcp → ssh in one call, for callers that do not report steps
    /// (discovery, `open`).
    pub async fn open(
        spec: &TunnelSpec,
        timeouts: Timeouts,
        egress: &EgressPolicy,
    ) -> Result<SshSession, ConnectorError> {
        let addrs = resolve_bastion(spec, timeouts, egress).await?;
        let stream = connect_bastion(spec, &addrs, timeouts).await?;
        SshSession::handshake(spec, stream, timeouts).await
    }

    /// Step `ssh`: the SSH handshake (key exchange and the host-key check)
    /// and authentication over `stream`, each bounded by the connect timeout.
    pub async fn handshake<S>(
        spec: &TunnelSpec,
        stream: S,
        timeouts: Timeouts,
    ) -> Result<SshSession, ConnectorError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let bastion = spec.bastion();
        let config = Arc::new(client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            nodelay: true,
            ..Default::default()
        });
        let presented = Arc::new(Mutex::new(None));
        let handler = Client {
            pin: spec.host_key().clone(),
            presented: presented.clone(),
        };
        let limit = timeouts.connect();
        let connected =
            tokio::time::timeout(limit, client::connect_stream(config, stream, handler)).await;
        let mut handle = match connected {
            Err(_) => {
                return Err(ConnectorError::new(
                    ErrorCode::Timeout,
                    format!(
                        "SSH bastion {bastion} did not complete the SSH handshake within {} ms",
                        timeouts.connect_ms
                    ),
                )
                .with_context("bastion", &bastion))
            }
            Ok(Err(HandlerError::HostKeyMismatch)) => {
                let seen = presented
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default()
                    .unwrap_or_else(|| "an unreadable key".into());
                return Err(ConnectorError::new(
                    ErrorCode::SslHandshakeFailed,
                    format!(
                        "the bastion's host key did not match: {bastion} presented {seen}, \
                         metadata.sshTunnel.hostKey expects {}",
                        spec.host_key().fingerprint()
                    ),
                )
                .with_context("bastion", &bastion)
                .with_retryable(false));
            }
            Ok(Err(HandlerError::Ssh(e))) => {
                return Err(handshake_error(e, &bastion).with_context("bastion", &bastion))
            }
            Ok(Ok(handle)) => handle,
        };

        let user = spec.username().to_owned();
        let auth = async {
            match spec.auth() {
                TunnelAuth::Password(pw) => {
                    handle
                        .authenticate_password(user.clone(), pw.expose())
                        .await
                }
                TunnelAuth::Key(key) => {
                    let hash = if key.algorithm().is_rsa() {
                        match handle.best_supported_rsa_hash().await {
                            Ok(Some(h)) => h,
                            // No server-sig-algs: rsa-sha2-256 is what
                            // every current server accepts.
                            _ => Some(HashAlg::Sha256),
                        }
                    } else {
                        None
                    };
                    handle
                        .authenticate_publickey(
                            user.clone(),
                            PrivateKeyWithHashAlg::new(key.clone(), hash),
                        )
                        .await
                }
            }
        };
        let what = match spec.auth() {
            TunnelAuth::Key(_) => "SSH key",
            TunnelAuth::Password(_) => "password",
        };
        match tokio::time::timeout(limit, auth).await {
            Err(_) => Err(ConnectorError::new(
                ErrorCode::Timeout,
                format!(
                    "SSH bastion {bastion} did not answer authentication within {} ms",
                    timeouts.connect_ms
                ),
            )),
            Ok(Err(e)) => Err(handshake_error(e, &bastion)),
            Ok(Ok(AuthResult::Success)) => Ok(()),
            Ok(Ok(AuthResult::Failure {
                partial_success: true,
                ..
            })) => Err(ConnectorError::new(
                ErrorCode::AuthenticationFailed,
                format!(
                    "the SSH bastion {bastion} accepted the {what} for user {user} but asks for \
                     a second factor, which tunnels do not support"
                ),
            )
            .with_retryable(false)),
            Ok(Ok(AuthResult::Failure { .. })) => Err(ConnectorError::new(
                ErrorCode::AuthenticationFailed,
                format!("the SSH bastion {bastion} rejected the {what} for user {user}"),
            )
            .with_retryable(false)),
        }
        .map_err(|e| {
            e.with_context("bastion", &bastion)
                .with_context("user", &user)
        })?;

        Ok(SshSession {
            handle: Arc::new(handle),
            bastion,
            timeouts,
        })
    }

    /// `host:port` of the bastion.
    pub fn bastion(&self) -> &str {
        &self.bastion
    }

    /// Opens a direct-tcpip channel to `host:port` as the bastion sees them
    /// (the bastion resolves `host`), bounded by the connect timeout.
    pub async fn open_stream(&self, host: &str, port: u16) -> Result<TunnelStream, ConnectorError> {
        open_channel(&self.handle, &self.bastion, host, port, self.timeouts).await
    }

    /// A loopback listener (`127.0.0.1:0`) whose every accepted connection is
    /// carried over a new channel to `host:port`, for client libraries that
    /// only take an address. It lives until the returned value is dropped.
    pub async fn forward_local(
        &self,
        host: &str,
        port: u16,
    ) -> Result<LocalForward, ConnectorError> {
        LocalForward::start(self.route(host, port)).await
    }

    /// Where a forwarder to `host:port` through this session leads.
    pub(super) fn route(&self, host: &str, port: u16) -> super::forward::Route {
        super::forward::Route {
            handle: self.handle.clone(),
            bastion: self.bastion.clone(),
            host: host.to_owned(),
            port,
            timeouts: self.timeouts,
        }
    }

    /// Whether the session has ended (the bastion closed it, keepalives went
    /// unanswered, or it was closed).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Ends the session now, and with it every stream and forwarded
    /// connection through it. Bounded: a bastion that does not read is not
    /// waited for.
    pub async fn close(self) {
        self.disconnect().await;
    }

    /// [`SshSession::close`] for a session that is shared.
    pub(crate) async fn disconnect(&self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.handle
                .disconnect(Disconnect::ByApplication, "session closed", "en"),
        )
        .await;
    }
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("bastion", &self.bastion)
            .field("closed", &self.is_closed())
            .finish()
    }
}

pub(super) async fn open_channel(
    handle: &Handle<Client>,
    bastion: &str,
    host: &str,
    port: u16,
    timeouts: Timeouts,
) -> Result<TunnelStream, ConnectorError> {
    let target = target_name(host, port);
    let open = handle.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0);
    let err = match tokio::time::timeout(timeouts.connect(), open).await {
        Ok(Ok(channel)) => {
            return Ok(TunnelStream {
                inner: channel.into_stream(),
                target,
            })
        }
        Err(_) => ConnectorError::new(
            ErrorCode::Timeout,
            format!(
                "the bastion {bastion} did not open a channel to {target} within {} ms",
                timeouts.connect_ms
            ),
        ),
        Ok(Err(russh::Error::ChannelOpenFailure(reason))) => {
            let why = match &reason {
                ChannelOpenFailure::AdministrativelyProhibited => {
                    "forwarding there is not permitted on the bastion".to_owned()
                }
                ChannelOpenFailure::ConnectFailed => {
                    "the connection from the bastion failed".to_owned()
                }
                ChannelOpenFailure::UnknownChannelType => {
                    "the bastion does not support TCP forwarding".to_owned()
                }
                ChannelOpenFailure::ResourceShortage => {
                    "the bastion is out of resources".to_owned()
                }
                ChannelOpenFailure::Other { code, reason } => format!(
                    "code {code}: {}",
                    reason
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect::<String>()
                ),
            };
            ConnectorError::new(
                ErrorCode::ConnectionRefused,
                format!("the bastion {bastion} could not reach {target} ({why})"),
            )
            .with_context("channel_open_failure", format!("{reason:?}"))
        }
        Ok(Err(e)) => session_error(e, bastion),
    };
    Err(err
        .with_context("bastion", bastion)
        .with_context("target", &target))
}

fn target_name(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A connection to the target carried over one SSH channel: what a driver
/// reads and writes instead of a `TcpStream`.
pub struct TunnelStream {
    inner: ChannelStream<Msg>,
    target: String,
}

impl TunnelStream {
    /// `host:port` of the target, as the bastion was asked to reach it.
    pub fn target(&self) -> &str {
        &self.target
    }
}

impl fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelStream")
            .field("target", &self.target)
            .finish()
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The russh callbacks: only the host-key check does anything. Channels the
/// bastion tries to open towards us are refused by russh's defaults.
pub(super) struct Client {
    pin: HostKeyPin,
    /// The fingerprint of the key the bastion presented, for the mismatch message.
    presented: Arc<Mutex<Option<String>>>,
}

#[derive(Debug)]
pub(super) enum HandlerError {
    Ssh(russh::Error),
    HostKeyMismatch,
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl client::Handler for Client {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // A host certificate is judged by the key it certifies: the pin is
        // about the bastion's key, not about which CA signed it.
        let data: &KeyData = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data(),
            PublicKeyOrCertificate::Certificate(cert) => cert.public_key(),
        };
        if self.pin.matches(data) {
            return Ok(true);
        }
        if let Ok(mut p) = self.presented.lock() {
            *p = Some(format!(
                "{} ({})",
                data.fingerprint(self.pin.hash_alg()),
                data.algorithm()
            ));
        }
        Err(HandlerError::HostKeyMismatch)
    }
}

/// A failure during the handshake or authentication.
fn handshake_error(e: russh::Error, bastion: &str) -> ConnectorError {
    use russh::Error as E;
    let (code, what) = match &e {
        E::Version => (
            ErrorCode::ProtocolError,
            "did not answer with an SSH version line (is it an SSH server?)".to_owned(),
        ),
        E::NoCommonAlgo { kind, .. } => (
            ErrorCode::SslHandshakeFailed,
            format!("shares no {kind:?} algorithm with us"),
        ),
        E::UnknownKey | E::WrongServerSig | E::Kex | E::KexInit => (
            ErrorCode::SslHandshakeFailed,
            format!("failed the SSH key exchange ({e})"),
        ),
        E::IO(io) if io.kind() == io::ErrorKind::UnexpectedEof => (
            ErrorCode::ConnectionClosed,
            "closed the connection during the SSH handshake".to_owned(),
        ),
        _ => return session_error(e, bastion),
    };
    ConnectorError::new(code, format!("SSH bastion {bastion} {what}")).with_source(e)
}

/// A failure of an established session (or one the handshake met too).
fn session_error(e: russh::Error, bastion: &str) -> ConnectorError {
    use russh::Error as E;
    match e {
        E::IO(io) => ConnectorError::from_io(io, format_args!("SSH bastion {bastion}")),
        E::Disconnect | E::HUP | E::SendError => ConnectorError::new(
            ErrorCode::ConnectionClosed,
            format!("the SSH session to bastion {bastion} is closed"),
        )
        .with_source(e),
        E::KeepaliveTimeout | E::InactivityTimeout | E::ConnectionTimeout => ConnectorError::new(
            ErrorCode::Timeout,
            format!("the SSH bastion {bastion} stopped answering ({e})"),
        )
        .with_source(e),
        other => ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("SSH bastion {bastion}: {other}"),
        )
        .with_source(other),
    }
}

/// The same error with a new message (code, context, source kept).
fn rewrap(e: ConnectorError, message: String) -> ConnectorError {
    let mut out = ConnectorError::new(e.code(), message).with_retryable(e.is_retryable());
    for (k, v) in e.context() {
        out = out.with_context(k, v);
    }
    out.with_source(e)
}
