//! Whether a loopback client is this process: the forwarders' guard against
//! other local processes (always compiled, so tests can tell who connected).

use std::net::SocketAddr;

/// Whether the client end of an accepted loopback connection (`client`, as
/// `accept` returned it, to `server`, the listener's address) is a socket of
/// this process. The tunnel's forwarders serve only those; tests use it to
/// tell a connection the bastion made from one this process made directly.
/// Linux only; elsewhere every local client counts as this process's.
#[cfg(target_os = "linux")]
pub async fn loopback_client_is_this_process(client: SocketAddr, server: SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || own_socket(client, server))
        .await
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
pub async fn loopback_client_is_this_process(_client: SocketAddr, _server: SocketAddr) -> bool {
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
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn own_sockets_are_recognised_and_others_are_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let client = TcpStream::connect(server).await.unwrap();
        let (_accepted, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(loopback_client_is_this_process(peer, server).await);
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
        assert!(!loopback_client_is_this_process(foreign_peer, server).await);
        let _ = child.kill().await;
    }
}
