//! A fake origin written for egress proofs: it answers every request with
//! `307 Temporary Redirect` to a given location (a denied address), the way a
//! hostile or compromised endpoint would steer a client.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
