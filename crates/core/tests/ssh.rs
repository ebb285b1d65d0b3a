//! SSH tunnels against a real OpenSSH bastion (`cargo xtask fixtures up --only
//! ssh,postgres`): every tunnel error code from a real failure, and
//! PostgreSQL reached through the bastion on an address the egress policy
//! denies to direct connections.
//!
//! The closed-port, unresolvable-name and silent-listener cases need no
//! fixture and always run.

use std::time::Duration;

use matih_connector_core::ssh::{
    connect_bastion, resolve_bastion, HostKeyPin, SshSession, TunnelSpec,
};
use matih_connector_core::{
    resolve_host, ConnectionConfig, ConnectorError, Credentials, EgressPolicy, ErrorCode, Timeouts,
};
use matih_connector_testkit::{fixture, Fixture};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(30);

fn timeouts() -> Timeouts {
    Timeouts::default()
}

/// A connector config with `metadata.sshTunnel` pointing at the fixture.
fn tunnel_cfg(ssh: &Fixture, username: &str, host_key: &str) -> ConnectionConfig {
    let mut cfg = ConnectionConfig::default();
    cfg.metadata.insert(
        "sshTunnel".into(),
        json!({"host": ssh.require("HOST"), "port": ssh.port(),
               "username": username, "hostKey": host_key}),
    );
    cfg
}

fn parse(cfg: &ConnectionConfig, creds: &Credentials) -> TunnelSpec {
    TunnelSpec::parse(cfg, creds)
        .expect("valid tunnel")
        .expect("a tunnel is configured")
}

fn key_spec(ssh: &Fixture) -> TunnelSpec {
    let creds = Credentials::new().with("sshPrivateKey", ssh.read_file("KEY_FILE"));
    parse(
        &tunnel_cfg(ssh, ssh.require("KEY_USER"), ssh.require("HOST_KEY")),
        &creds,
    )
}

async fn open(spec: &TunnelSpec) -> Result<SshSession, ConnectorError> {
    SshSession::open(spec, timeouts(), &EgressPolicy::default()).await
}

/// tokio-postgres over any stream: the fixture's `matih` login, no TLS.
async fn pg_query_over<S>(pg: &Fixture, stream: S) -> (String, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut config = tokio_postgres::Config::new();
    config
        .user(pg.require("USER"))
        .password(pg.require("PASSWORD"))
        .dbname(pg.require("DATABASE"));
    let (client, conn) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL login through the tunnel");
    let driver = tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT current_database()::text, host(inet_server_addr())",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = tokio::time::timeout(DEADLINE, driver).await;
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn postgres_through_the_tunnel_on_an_address_denied_to_direct_connections() {
    let Some(ssh) = fixture("SSH", "postgres_through_the_tunnel") else {
        return;
    };
    let Some(pg) = fixture("POSTGRES", "postgres_through_the_tunnel") else {
        return;
    };
    let target = ssh.require("TARGET_HOST");
    // The connector's policy denies the database's address: a direct
    // connection is refused before any packet leaves…
    let egress = EgressPolicy::from_lists("", &format!("{target}/32")).unwrap();
    let direct = resolve_host(target, pg.port(), timeouts(), &egress)
        .await
        .unwrap_err();
    assert_eq!(direct.code(), ErrorCode::EgressDenied);
    // …while the bastion passes the same policy, and the bastion reaches the
    // database.
    let spec = key_spec(&ssh);
    let session = SshSession::open(&spec, timeouts(), &egress).await.unwrap();
    let stream = session.open_stream(target, pg.port()).await.unwrap();
    assert_eq!(stream.target(), format!("{target}:{}", pg.port()));
    let (db, server_addr) = pg_query_over(&pg, stream).await;
    assert_eq!(db, pg.require("DATABASE"));
    // PostgreSQL saw the connection arrive on the tunnel-only address.
    assert_eq!(server_addr, target);
    session.close().await;
}

#[tokio::test]
async fn mariadb_greets_through_the_tunnel() {
    let Some(ssh) = fixture("SSH", "mariadb_greets_through_the_tunnel") else {
        return;
    };
    let Some(my) = fixture("MYSQL", "mariadb_greets_through_the_tunnel") else {
        return;
    };
    let session = open(&key_spec(&ssh)).await.unwrap();
    let mut stream = session
        .open_stream(ssh.require("TARGET_HOST"), my.port())
        .await
        .unwrap();
    // The server speaks first: a protocol-10 handshake packet naming its version.
    let mut header = [0u8; 4];
    tokio::time::timeout(DEADLINE, stream.read_exact(&mut header))
        .await
        .expect("MariaDB greets")
        .unwrap();
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    assert_eq!(body[0], 10, "protocol version");
    let version =
        String::from_utf8_lossy(&body[1..body.iter().position(|b| *b == 0).unwrap()]).into_owned();
    assert!(version.contains("MariaDB"), "{version}");
    session.close().await;
}

#[tokio::test]
async fn pem_encrypted_and_password_credentials_authenticate() {
    let Some(ssh) = fixture("SSH", "pem_encrypted_and_password_credentials") else {
        return;
    };
    let host_key = ssh.require("HOST_KEY");
    let key_user = ssh.require("KEY_USER");
    let cases = [
        (
            "RSA PEM (PKCS#1) key",
            tunnel_cfg(&ssh, key_user, host_key),
            Credentials::new().with("sshPrivateKey", ssh.read_file("PEM_KEY_FILE")),
        ),
        (
            "encrypted PKCS#8 ECDSA key with its passphrase",
            tunnel_cfg(&ssh, key_user, host_key),
            Credentials::new()
                .with("sshPrivateKey", ssh.read_file("ENCRYPTED_KEY_FILE"))
                .with("sshPrivateKeyPassphrase", ssh.require("KEY_PASSPHRASE")),
        ),
        (
            "password, host key pinned by fingerprint",
            tunnel_cfg(
                &ssh,
                ssh.require("PASSWORD_USER"),
                ssh.require("HOST_KEY_FINGERPRINT"),
            ),
            Credentials::new().with("sshPassword", ssh.require("PASSWORD")),
        ),
    ];
    for (what, cfg, creds) in cases {
        let spec = parse(&cfg, &creds);
        let session = open(&spec).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        // `open` returns only after the bastion accepted the credentials.
        assert!(!session.is_closed(), "{what}");
        session.close().await;
    }

    // The encrypted key without its passphrase never reaches the network.
    let creds = Credentials::new().with("sshPrivateKey", ssh.read_file("ENCRYPTED_KEY_FILE"));
    let err = TunnelSpec::parse(&tunnel_cfg(&ssh, key_user, host_key), &creds).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidConfiguration);
    assert!(err.message().contains("sshPrivateKeyPassphrase"), "{err}");
}

#[tokio::test]
async fn rejected_key_or_password_is_authentication_failed_naming_the_bastion() {
    let Some(ssh) = fixture("SSH", "rejected_key_or_password") else {
        return;
    };
    let host_key = ssh.require("HOST_KEY");
    let bastion = format!("{}:{}", ssh.require("HOST"), ssh.port());
    let cases = [
        (
            "a key the bastion does not know",
            ssh.require("KEY_USER"),
            Credentials::new().with("sshPrivateKey", ssh.read_file("UNAUTHORIZED_KEY_FILE")),
        ),
        (
            "a wrong password",
            ssh.require("PASSWORD_USER"),
            Credentials::new().with("sshPassword", "not-the-password"),
        ),
        (
            "a password for the key-only user",
            ssh.require("KEY_USER"),
            Credentials::new().with("sshPassword", ssh.require("PASSWORD")),
        ),
    ];
    for (what, user, creds) in cases {
        let spec = parse(&tunnel_cfg(&ssh, user, host_key), &creds);
        let err = open(&spec).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::AuthenticationFailed, "{what}: {err}");
        assert!(!err.is_retryable(), "{what}");
        assert!(
            err.message()
                .contains(&format!("the SSH bastion {bastion} rejected")),
            "{what}: {err}"
        );
        assert!(err.message().contains(user), "{what}: {err}");
        let shown = format!("{err} {err:?} {spec:?}");
        assert!(!shown.contains(ssh.require("PASSWORD")), "{what}: {shown}");
        assert!(!shown.contains("not-the-password"), "{what}: {shown}");
    }
}

#[tokio::test]
async fn wrong_host_key_is_ssl_handshake_failed() {
    let Some(ssh) = fixture("SSH", "wrong_host_key") else {
        return;
    };
    // Another real key's public half, in known_hosts form, and a fingerprint
    // that matches nothing.
    let other_key =
        std::fs::read_to_string(format!("{}.pub", ssh.require("UNAUTHORIZED_KEY_FILE"))).unwrap();
    for pin in [
        other_key.trim(),
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let creds = Credentials::new().with("sshPrivateKey", ssh.read_file("KEY_FILE"));
        let spec = parse(&tunnel_cfg(&ssh, ssh.require("KEY_USER"), pin), &creds);
        let err = open(&spec).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::SslHandshakeFailed, "{err}");
        assert!(
            err.message()
                .starts_with("the bastion's host key did not match"),
            "{err}"
        );
        // The message names what the bastion presented, so an admin can
        // compare it with the key they expect.
        assert!(
            err.message().contains(ssh.require("HOST_KEY_FINGERPRINT")),
            "{err}"
        );
        assert!(!err.is_retryable());
    }
    // The right pin in both forms passes (the checks above are not vacuous).
    for pin in [ssh.require("HOST_KEY"), ssh.require("HOST_KEY_FINGERPRINT")] {
        let p = HostKeyPin::parse(pin).unwrap();
        assert_eq!(p.fingerprint(), ssh.require("HOST_KEY_FINGERPRINT"));
    }
}

#[tokio::test]
async fn bastion_refusing_the_channel_is_connection_refused() {
    let Some(ssh) = fixture("SSH", "bastion_refusing_the_channel") else {
        return;
    };
    let session = open(&key_spec(&ssh)).await.unwrap();
    // PermitOpen allows only TARGET_HOST: the bastion's own (open) port on
    // 127.0.0.1 is forbidden.
    let refused_target = format!("127.0.0.1:{}", ssh.port());
    let err = session
        .open_stream("127.0.0.1", ssh.port())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConnectionRefused, "{err}");
    assert!(
        err.message()
            .contains(&format!("could not reach {refused_target}")),
        "{err}"
    );
    assert!(err.message().contains("not permitted"), "{err}");
    // A permitted address where nothing listens: the bastion tries and fails.
    let closed = closed_port().await;
    let err = session
        .open_stream(ssh.require("TARGET_HOST"), closed)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConnectionRefused, "{err}");
    assert!(err.message().contains("could not reach"), "{err}");
    // The session survives refused channels.
    assert!(!session.is_closed());
    session.close().await;
}

#[tokio::test]
async fn local_forwarder_carries_postgres_and_reports_refusals() {
    let Some(ssh) = fixture("SSH", "local_forwarder") else {
        return;
    };
    let Some(pg) = fixture("POSTGRES", "local_forwarder") else {
        return;
    };
    let session = open(&key_spec(&ssh)).await.unwrap();
    let forward = session
        .forward_local(ssh.require("TARGET_HOST"), pg.port())
        .await
        .unwrap();
    let local = forward.local_addr();
    assert!(local.ip().is_loopback());
    // Two connections through one forwarder, as a pooling client makes.
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(local).await.unwrap();
        let (db, server_addr) = pg_query_over(&pg, tcp).await;
        assert_eq!(db, pg.require("DATABASE"));
        assert_eq!(server_addr, ssh.require("TARGET_HOST"));
    }
    assert!(forward.last_error().is_none());

    // A forwarder to a target the bastion refuses: the client sees its
    // connection closed, the driver learns why from `last_error`.
    let refused = session
        .forward_local("127.0.0.1", ssh.port())
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(refused.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, tcp.read(&mut buf))
        .await
        .expect("the forwarder closes the refused connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let err = refused.last_error().expect("the refusal is recorded");
    assert_eq!(err.code(), ErrorCode::ConnectionRefused, "{err}");

    // Dropping the forwarder closes its port.
    drop(forward);
    let gone = tokio::time::timeout(DEADLINE, async {
        loop {
            if tokio::net::TcpStream::connect(local).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the forwarder's port still accepts");
    session.close().await;
}

#[tokio::test]
async fn closing_the_session_ends_its_streams() {
    let Some(ssh) = fixture("SSH", "closing_the_session") else {
        return;
    };
    let Some(pg) = fixture("POSTGRES", "closing_the_session") else {
        return;
    };
    let session = open(&key_spec(&ssh)).await.unwrap();
    let mut stream = session
        .open_stream(ssh.require("TARGET_HOST"), pg.port())
        .await
        .unwrap();
    session.close().await;
    // PostgreSQL waits for the client to speak first; after the close the
    // stream ends (EOF or an error) instead of waiting forever.
    let _ = stream.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // The SSLRequest answer may arrive before the close lands.
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the stream outlived its session");
}

// Failures that need no bastion at all.

#[test]
fn encrypted_openssh_keys_need_the_right_passphrase() {
    // A throwaway key encrypted by ssh-keygen itself (bcrypt-pbkdf + aes256-ctr,
    // OpenSSH's own format); the passphrase guards nothing.
    let dir = std::env::temp_dir().join(format!("matih-ssh-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("key");
    let status = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-a",
            "4",
            "-N",
            "test-passphrase",
            "-C",
            "t",
            "-f",
        ])
        .arg(&path)
        .status()
        .expect("ssh-keygen (Debian package openssh-client)");
    assert!(status.success());
    let key = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let cfg = {
        let mut c = ConnectionConfig::default();
        c.metadata.insert(
            "sshTunnel".into(),
            json!({"host": "b", "username": "u",
                   "hostKey": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        );
        c
    };
    let creds = Credentials::new().with("sshPrivateKey", key.clone());
    let err = TunnelSpec::parse(&cfg, &creds).unwrap_err();
    assert!(err.message().contains("is encrypted"), "{err}");
    let wrong = creds.clone().with("sshPrivateKeyPassphrase", "not-it");
    let err = TunnelSpec::parse(&cfg, &wrong).unwrap_err();
    assert!(err.message().contains("wrong passphrase"), "{err}");
    let right = creds.with("sshPrivateKeyPassphrase", "test-passphrase");
    let spec = TunnelSpec::parse(&cfg, &right).unwrap().unwrap();
    assert_eq!(spec.auth().method(), "key");
}

fn spec_for(host: &str, port: u16) -> TunnelSpec {
    let mut cfg = ConnectionConfig::default();
    cfg.metadata.insert(
        "sshTunnel".into(),
        json!({"host": host, "port": port, "username": "matih",
               "hostKey": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
    );
    parse(&cfg, &Credentials::new().with("sshPassword", "unused"))
}

async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn closed_bastion_port_is_connection_refused_at_tcp() {
    let port = closed_port().await;
    let spec = spec_for("127.0.0.1", port);
    let addrs = resolve_bastion(&spec, timeouts(), &EgressPolicy::default())
        .await
        .unwrap();
    let err = connect_bastion(&spec, &addrs, timeouts())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConnectionRefused, "{err}");
    assert!(err.message().contains("SSH bastion 127.0.0.1:"), "{err}");
    // The one-call path fails the same way.
    let err = open(&spec).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn unresolvable_bastion_is_dns_resolution_failed() {
    let spec = spec_for("bastion.example.invalid", 22);
    let err = resolve_bastion(&spec, timeouts(), &EgressPolicy::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DnsResolutionFailed, "{err}");
    assert!(err.message().starts_with("SSH bastion:"), "{err}");
    assert_eq!(
        err.context_value("bastion"),
        Some("bastion.example.invalid:22")
    );
}

#[tokio::test]
async fn bastion_in_a_denied_network_is_egress_denied() {
    let spec = spec_for("169.254.169.254", 22);
    let err = open(&spec).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::EgressDenied, "{err}");
}

#[tokio::test]
async fn silent_bastion_is_timeout() {
    // Accepts and never says a word, as a black-holed SSH port does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let spec = spec_for("127.0.0.1", port);
    let t = Timeouts {
        connect_ms: 300,
        ..Timeouts::default()
    };
    let addrs = resolve_bastion(&spec, t, &EgressPolicy::default())
        .await
        .unwrap();
    // TCP succeeds: the failure belongs to the ssh step.
    let stream = connect_bastion(&spec, &addrs, t).await.unwrap();
    let err = SshSession::handshake(&spec, stream, t).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.message().contains("SSH handshake"), "{err}");
}

#[tokio::test]
async fn a_non_ssh_server_as_bastion_is_a_protocol_error() {
    // Speaks first with something that is not an SSH version line, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _serve = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let spec = spec_for("127.0.0.1", port);
    let err = open(&spec).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            ErrorCode::ProtocolError | ErrorCode::ConnectionClosed
        ),
        "{err}"
    );
}
