//! A webhook receiver written in the test: it verifies each delivery's
//! `X-Matih-Signature` (HMAC-SHA256 of the body with [`HOOK_SECRET`]) and
//! records only the deliveries that verify.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use matih_connector_service::health::notify::sign;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::within;

pub const HOOK_SECRET: &[u8] = b"hook-secret-for-tests";

/// A webhook receiver that records what it got (only deliveries whose
/// signature verifies) and can be down (nothing listening on its port).
#[derive(Clone)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<serde_json::Value>>>,
    /// How many verified notices arrived.
    pub count: Arc<watch::Sender<usize>>,
    pub bad_signatures: Arc<AtomicU64>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            got: Arc::default(),
            count: Arc::new(watch::channel(0).0),
            bad_signatures: Arc::default(),
        }
    }
}

impl Receiver {
    pub async fn listen(&self, port: u16) -> JoinHandle<()> {
        let router = self.router();
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, router).await;
        })
    }

    /// The same receiver over HTTPS, with a certificate from a fresh private
    /// CA; returns its address and the CA's PEM.
    pub async fn listen_tls(&self) -> (SocketAddr, String) {
        matih_connector_testkit::tls::serve_tls(self.router()).await
    }

    pub fn router(&self) -> axum::Router {
        matih_connector_testkit::fake("webhook receiver written in the test", "webhook listen");
        let me = self.clone();
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let me = me.clone();
                async move {
                    let sig = headers
                        .get("x-matih-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if sig != sign(HOOK_SECRET, body.as_bytes()) {
                        me.bad_signatures.fetch_add(1, Ordering::SeqCst);
                        return StatusCode::UNAUTHORIZED;
                    }
                    let n = {
                        let mut got = me.got.lock().unwrap();
                        got.push(serde_json::from_str(&body).unwrap());
                        got.len()
                    };
                    me.count.send_replace(n);
                    StatusCode::NO_CONTENT
                }
            }),
        )
    }

    /// Waits until `n` verified notices have arrived in all.
    pub async fn received(&self, n: usize) {
        let mut rx = self.count.subscribe();
        within(
            &format!("{n} notices at the receiver"),
            rx.wait_for(|c| *c >= n),
        )
        .await
        .unwrap();
    }

    pub fn events(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["event"].as_str().unwrap().to_owned())
            .collect()
    }
}
