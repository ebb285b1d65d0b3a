//! Proof that an egress refusal happens before any packet: a listener on the
//! loopback address a test's policy denies records every connection it
//! accepts, and a control connection made afterwards must be the first.

use std::net::SocketAddr;
use std::time::Duration;

use matih_connector_core::{run_test, Driver, EgressPolicy, ErrorCode, Step, TestOptions};
use tokio::sync::mpsc;

use crate::conformance::Case;

/// A listener on a loopback address (e.g. `127.0.0.3`) that the policy from
/// [`DeniedListener::policy`] denies. It holds every connection open without a
/// word and reports its peer.
#[derive(Debug)]
pub struct DeniedListener {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<SocketAddr>,
}

impl DeniedListener {
    /// Listens on `ip` (a loopback address) on a free port.
    pub async fn bind(ip: &str) -> DeniedListener {
        let l = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback address");
        let addr = l.local_addr().expect("addr");
        let (tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, peer)) = l.accept().await {
                held.push(tcp);
                if tx.send(peer).is_err() {
                    return;
                }
            }
        });
        DeniedListener { addr, seen }
    }

    /// The default policy plus this listener's address (a /32) in `deny`.
    pub fn policy(&self) -> EgressPolicy {
        EgressPolicy::from_lists("", &format!("{}/32", self.addr.ip())).expect("a CIDR")
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Fails when anything connected before now: a control connection made
    /// now must be the first connection the listener reports.
    pub async fn assert_never_reached(mut self) {
        let control = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("control connection");
        let mine = control.local_addr().expect("local addr");
        let first = tokio::time::timeout(Duration::from_secs(5), self.seen.recv())
            .await
            .expect("the listener reports the control connection")
            .expect("listener running");
        assert_eq!(
            first, mine,
            "a connection reached the denied address {} before the control connection",
            self.addr
        );
    }
}

/// Runs the connectivity test under `listener`'s policy and asserts it fails
/// at `step` with `EGRESS_DENIED`.
pub async fn assert_refused(
    driver: &dyn Driver,
    case: &Case,
    step: Step,
    listener: &DeniedListener,
) {
    let opts = TestOptions {
        egress: listener.policy(),
        ..Default::default()
    };
    let r = run_test(driver, &case.cfg, &case.creds, &opts).await;
    assert_eq!(r.failure(), Some((step, ErrorCode::EgressDenied)), "{r:?}");
}
