//! TLS for tests: the test CA every TLS server of the testkit makes afresh,
//! and an axum app behind TLS on 127.0.0.1 (for drivers whose tests serve
//! their own API). The TLS-terminating proxy in front of a plain-text fixture
//! is in [`crate::tls_proxy`].

use std::net::SocketAddr;
use std::sync::Arc;
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
    let (acceptor, ca_pem) = test_ca_acceptor(&["localhost", "127.0.0.1"]);
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((tcp, peer)) = l.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                {
                    let _ = tx.send((tls, peer)).await;
                }
            });
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(Accepted { rx, addr }, app).await;
    });
    (addr, ca_pem)
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
