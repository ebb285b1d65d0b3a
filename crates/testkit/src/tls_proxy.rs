//! A TLS-terminating proxy in front of a plain-TCP fixture, so a driver's TLS
//! modes are checked against the real emulator behind it.
//!
//! Most emulators here speak plain HTTP or plain TCP only (moto, fake-gcs,
//! Azurite, bqemulator, fakesnow, minilake, mongoeco). The proxy accepts TLS on
//! a loopback port with a certificate for `localhost` only, signed by a test
//! CA made for this proxy ([`crate::tls`]), and copies bytes both ways to the
//! fixture's port. The bytes inside the tunnel are the driver's own protocol,
//! untouched: a request the emulator answers through the proxy is one it
//! answered over TLS.
//!
//! Every proxy is recorded in the run's proof file as fronting its fixture,
//! and a server version read through it is attributed to that fixture, so
//! xtask's proof column says the fixture was also reached behind the proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use matih_connector_core::{Driver, ErrorCode, SslMode, Step};

use crate::conformance::{assert_test_fails, assert_test_succeeds, Case};
use crate::Fixture;

/// The only name the proxy's certificate holds.
pub const CERT_NAME: &str = "localhost";

/// A running proxy. It stops when the value is dropped.
#[derive(Debug)]
pub struct TlsProxy {
    port: u16,
    ca_pem: String,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Starts a proxy on a free loopback port forwarding to the fixture's
    /// `127.0.0.1:PORT`. Each accepted connection dials the fixture afresh
    /// once its handshake has completed.
    pub async fn start(fx: &Fixture) -> TlsProxy {
        let upstream = fx.port();
        let (acceptor, ca_pem) = crate::tls::test_ca_acceptor(&[CERT_NAME]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the TLS proxy");
        let port = listener.local_addr().expect("proxy address").port();
        if let Ok(mut map) = proxies().lock() {
            map.insert(port, fx.name().to_owned());
        }
        crate::proof::tls_proxy(fx.name(), port);
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = handshakes.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsProxy {
            port,
            ca_pem,
            handshakes,
            task,
        }
    }

    /// The loopback port the proxy accepts TLS on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PEM of the CA that signed the proxy's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// TLS handshakes the proxy has completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut map) = proxies().lock() {
            map.remove(&self.port);
        }
    }
}

/// Ports of this process's running proxies and the fixture each one fronts.
fn proxies() -> &'static Mutex<HashMap<u16, String>> {
    static PROXIES: OnceLock<Mutex<HashMap<u16, String>>> = OnceLock::new();
    PROXIES.get_or_init(Default::default)
}

/// The fixture behind a running proxy of this process listening on `port`.
pub(crate) fn proxied_fixture(port: u16) -> Option<String> {
    proxies().lock().ok()?.get(&port).cloned()
}

/// The four TLS checks through `proxy`, against the fixture behind it.
/// `case(host, mode, ca_pem)` builds a case that reaches `proxy.port()` at
/// `host` with TLS in `mode`, trusting `ca_pem` (the public roots when `None`).
///
/// - `verify-full` to `localhost` with the proxy's CA passes every step, and
///   the proxy completed a handshake for it;
/// - `verify-full` without that CA: SSL_HANDSHAKE_FAILED at connect, the
///   message naming the unknown issuer;
/// - `verify-full` to `127.0.0.1`, which the certificate does not name:
///   SSL_HANDSHAKE_FAILED at connect, the message naming the name mismatch;
/// - `verify-ca` to `127.0.0.1` with the CA passes: the mode checks the chain
///   only.
///
/// Returns the passing `verify-full` case for further checks through it.
pub async fn assert_tls_modes(
    driver: &dyn Driver,
    proxy: &TlsProxy,
    case: impl Fn(&str, SslMode, Option<&str>) -> Case,
) -> Case {
    let ca = proxy.ca_pem();
    let good = case(CERT_NAME, SslMode::VerifyFull, Some(ca));
    let before = proxy.handshakes();
    assert_test_succeeds(driver, &good).await;
    assert!(
        proxy.handshakes() > before,
        "verify-full passed without a handshake through the proxy"
    );

    let r = assert_test_fails(
        driver,
        &case(CERT_NAME, SslMode::VerifyFull, None),
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let m = &r.message;
    assert!(
        m.contains("UnknownIssuer") || m.contains("unknown issuer") || m.contains("issuer"),
        "unknown issuer should be named: {m}"
    );

    let r = assert_test_fails(
        driver,
        &case("127.0.0.1", SslMode::VerifyFull, Some(ca)),
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let m = &r.message;
    assert!(
        m.contains("NotValidForName") || m.contains("not valid for name"),
        "the name mismatch should be named: {m}"
    );

    let before = proxy.handshakes();
    assert_test_succeeds(driver, &case("127.0.0.1", SslMode::VerifyCa, Some(ca))).await;
    assert!(
        proxy.handshakes() > before,
        "verify-ca passed without a handshake through the proxy"
    );
    good
}
