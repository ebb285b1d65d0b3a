//! TLS for tests: the test CA every TLS server of the testkit makes afresh,
//! and an axum app behind TLS on 127.0.0.1 (for drivers whose tests serve
//! their own API). The TLS-terminating proxy in front of a plain-text fixture
//! is in [`crate::tls_proxy`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A fresh test CA and a server configuration whose certificate, signed by
/// it, names `names`. Returns the acceptor and the CA's PEM.
pub(crate) fn test_ca_acceptor(names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let leaf = CertificateParams::new(names)
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("leaf key DER");
    let config = rustls::ServerConfig::builder_with_provider(matih_connector_core::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("server configuration");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// Serves `app` over TLS on a free loopback port; returns the address and the
/// CA's PEM (for `sslCaPem`). The certificate names `127.0.0.1` and
/// `localhost`. Handshakes that fail or stall (5 s) are dropped.
pub async fn serve_tls(app: axum::Router) -> (SocketAddr, String) {
    let s = TlsServer::start(app, "127.0.0.1", &["localhost", "127.0.0.1"]).await;
    (s.addr, s.ca_pem)
}

/// An axum app behind TLS whose certificate (from a fresh test CA) names
/// exactly the names given, and which writes down the server name (SNI) of
/// every completed handshake.
#[derive(Debug)]
pub struct TlsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The test CA's PEM (for `sslCaPem`).
    pub ca_pem: String,
    /// Who connected (this process or another, e.g. the SSH bastion).
    pub origins: crate::tunnel::Origins,
    sni: Arc<Mutex<Vec<Option<String>>>>,
}

impl TlsServer {
    /// Serves `app` on `ip`:0 with a certificate naming `names` (DNS names or
    /// IP addresses). Handshakes that fail or stall (5 s) are dropped.
    pub async fn start(app: axum::Router, ip: &str, names: &[&str]) -> TlsServer {
        let (acceptor, ca_pem) = test_ca_acceptor(names);
        let l = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let sni = Arc::new(Mutex::new(Vec::new()));
        let origins = crate::tunnel::Origins::default();
        let (tx, rx) = mpsc::channel(16);
        let (seen, noted) = (sni.clone(), origins.clone());
        tokio::spawn(async move {
            while let Ok((tcp, peer)) = l.accept().await {
                let (acceptor, tx, seen, noted) =
                    (acceptor.clone(), tx.clone(), seen.clone(), noted.clone());
                tokio::spawn(async move {
                    noted.note(peer, addr).await;
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                    {
                        let name = tls.get_ref().1.server_name().map(str::to_owned);
                        seen.lock().expect("sni log").push(name);
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(Accepted { rx, addr }, app).await;
        });
        TlsServer {
            addr,
            ca_pem,
            origins,
            sni,
        }
    }

    /// The server name each completed handshake asked for (`None`: no SNI,
    /// as for an IP address).
    pub fn server_names(&self) -> Vec<Option<String>> {
        self.sni.lock().expect("sni log").clone()
    }
}

/// Connections whose handshake is done, as axum's listener.
struct Accepted {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl axum::serve::Listener for Accepted {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}
