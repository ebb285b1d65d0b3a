//! What the HTTP drivers' egress proofs share: a fake origin that answers
//! every request with `307 Temporary Redirect` to a given location (a denied
//! address), the way a hostile or compromised endpoint would steer a client,
//! and the check that a driver's client refuses a denied address on its own,
//! when the connectivity test's DNS step is skipped.

use std::net::SocketAddr;

use matih_connector_core::{prepare, ConnectContext, Driver, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conformance::Case;
use crate::egress::DeniedListener;

/// Connects `driver` directly (no DNS step) with a context pinned to the
/// denied listener's address under its policy, as if a resolver had handed
/// that address over: the driver's HTTP client must refuse with
/// `EGRESS_DENIED` before any packet (the caller ends with
/// [`DeniedListener::assert_never_reached`]).
pub async fn assert_client_refuses(driver: &dyn Driver, case: &Case, listener: &DeniedListener) {
    let ctx = ConnectContext {
        host: Some(listener.addr.ip().to_string()),
        addrs: vec![listener.addr],
        timeouts: case.cfg.timeouts,
        egress: listener.policy(),
        tunnel: None,
    };
    let prepared = prepare(driver, &case.cfg, &case.creds).expect("a valid case");
    match prepared.connect(&ctx).await {
        Ok(_) => panic!("connected to the denied address {}", listener.addr),
        Err(e) => assert_eq!(e.code(), ErrorCode::EgressDenied, "{e}"),
    }
}

/// Starts the fake on `127.0.0.1` and records it as a fake of `test` in the
/// proof file. Every connection gets one 307 answer to `location`.
pub async fn redirecting_origin(location: String, test: &str) -> SocketAddr {
    crate::fake(
        "HTTP origin answering 307 to a denied address, written in the test",
        test,
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = l.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    addr
}
