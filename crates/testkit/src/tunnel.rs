//! The SSH tunnel checks every tunnelled driver runs against the `ssh`
//! fixture (a real OpenSSH bastion whose `PermitOpen` allows only
//! `MATIH_TEST_SSH_TARGET_HOST`, 127.0.0.2, where the database fixtures also
//! listen, and `MATIH_TEST_SSH_TARGET_NAME`, `localhost`, for TLS by name).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use matih_connector_core::{
    open, run_test, Catalog, DiscoveryRequest, Driver, EgressPolicy, ErrorCode, Step, TestOptions,
    TestReport,
};
use serde_json::json;

use matih_connector_core::ssh::loopback_client_is_this_process;

use crate::conformance::{assert_catalog_well_formed, assert_no_secret, Case};
use crate::Fixture;

/// `case` moved to the tunnel-only address and sent through the fixture's
/// bastion as its key user (ed25519 key, pinned host key).
pub fn through_bastion(case: &Case, ssh: &Fixture) -> Case {
    let mut c = case.with_cfg(|c| {
        c.host = Some(ssh.require("TARGET_HOST").to_owned());
        c.metadata.insert(
            "sshTunnel".into(),
            json!({"host": ssh.require("HOST"), "port": ssh.port(),
                   "username": ssh.require("KEY_USER"), "hostKey": ssh.require("HOST_KEY")}),
        );
    });
    c.creds = c.creds.with("sshPrivateKey", ssh.read_file("KEY_FILE"));
    c
}

/// An egress policy that denies the tunnel-only address (its /32) and
/// allows the rest: the direct path to the target is refused, the bastion
/// (127.0.0.1) passes.
pub fn denying_the_target(ssh: &Fixture) -> EgressPolicy {
    EgressPolicy::from_lists("", &format!("{}/32", ssh.require("TARGET_HOST")))
        .expect("a valid deny list")
}

/// `good` (a case through the bastion) aimed at a port the bastion cannot
/// reach: `CONNECTION_REFUSED` at connect, with the forwarder's message naming
/// the target ("could not reach 127.0.0.2:…") instead of the client
/// library's vaguer failure. `connect_ms` shortens the connect timeout for
/// drivers that retry until it ends.
pub async fn assert_unreachable_target_is_refused(
    driver: &dyn Driver,
    good: &Case,
    opts: &TestOptions,
    connect_ms: Option<u64>,
) {
    let closed = good.with_cfg(|c| {
        c.port = Some(crate::conformance::closed_port());
        if let Some(ms) = connect_ms {
            c.timeouts.connect_ms = ms;
        }
    });
    let r = run_test(driver, &closed.cfg, &closed.creds, opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::ConnectionRefused)),
        "{r:?}"
    );
    assert!(
        r.message.contains("could not reach 127.0.0.2:"),
        "{}",
        r.message
    );
}

/// The test through the bastion under [`denying_the_target`] succeeds with
/// the `ssh` step between `tcp` and `connect`, while the same target without
/// the tunnel is `EGRESS_DENIED` at `dns`. Returns the tunnelled report.
pub async fn assert_only_the_tunnel_reaches(
    driver: &dyn Driver,
    case: &Case,
    ssh: &Fixture,
) -> TestReport {
    let opts = TestOptions {
        egress: denying_the_target(ssh),
        ..Default::default()
    };
    let tunnelled = through_bastion(case, ssh);

    let mut direct = tunnelled.clone();
    direct.cfg.metadata.remove("sshTunnel");
    direct.creds = case.creds.clone();
    let r = run_test(driver, &direct.cfg, &direct.creds, &opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Dns, ErrorCode::EgressDenied)),
        "the direct path must be refused: {r:?}"
    );

    let r = run_test(driver, &tunnelled.cfg, &tunnelled.creds, &opts).await;
    assert!(
        r.success,
        "the tunnelled test should pass: {}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    let names: Vec<Step> = r.steps.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            Step::Validate,
            Step::Dns,
            Step::Tcp,
            Step::Ssh,
            Step::Connect,
            Step::ServerVersion,
            Step::AccessProbe
        ]
    );
    assert_no_secret(&serde_json::to_string(&r).unwrap(), &tunnelled.creds);
    crate::proof::version_seen(case.cfg.port, r.server_version.as_deref().unwrap_or(""));
    r
}

/// Discovery through the bastion (under [`denying_the_target`]) equals
/// discovery on the direct path of `case`, table by table. Where a driver
/// infers fields from a random sample (`capabilities.inferredFields`), the
/// order in which fields are first seen follows the sample, so columns are
/// compared by name there (ordinals aside).
pub async fn assert_same_catalog_through_the_tunnel(
    driver: &dyn Driver,
    case: &Case,
    ssh: &Fixture,
    req: &DiscoveryRequest,
) -> Catalog {
    let mut direct = discover_with(driver, case, &EgressPolicy::allow_all(), req).await;
    let tunnelled = through_bastion(case, ssh);
    let mut through = discover_with(driver, &tunnelled, &denying_the_target(ssh), req).await;
    if driver.descriptor().capabilities.inferred_fields {
        for catalog in [&mut direct, &mut through] {
            for table in catalog.schemas.iter_mut().flat_map(|s| s.tables.iter_mut()) {
                table.columns.sort_by(|a, b| a.name.cmp(&b.name));
                table.columns.iter_mut().for_each(|c| c.ordinal = 0);
            }
        }
    }
    assert!(direct.table_count() > 0, "the direct catalog is empty");
    assert_eq!(direct.schemas.len(), through.schemas.len());
    for (a, b) in direct.schemas.iter().zip(&through.schemas) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.tables.len(), b.tables.len(), "schema {}", a.name);
        for (ta, tb) in a.tables.iter().zip(&b.tables) {
            assert_eq!(ta, tb, "table {}.{}", a.name, ta.name);
        }
    }
    assert_eq!(direct, through);
    through
}

async fn discover_with(
    driver: &dyn Driver,
    case: &Case,
    egress: &EgressPolicy,
    req: &DiscoveryRequest,
) -> Catalog {
    let mut conn = open(driver, &case.cfg, &case.creds, egress)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let catalog = conn
        .discover(req)
        .await
        .unwrap_or_else(|e| panic!("discover: {e}"));
    conn.close().await.expect("close");
    assert_catalog_well_formed(&catalog);
    catalog
}

/// `good` (a case through the bastion) aimed at a host the bastion's
/// `PermitOpen` does not allow (127.0.0.1, at `port`): the bastion refuses
/// the channel, `CONNECTION_REFUSED` at connect, the message naming the
/// bastion and the target.
pub async fn assert_forbidden_target_is_refused(
    driver: &dyn Driver,
    good: &Case,
    opts: &TestOptions,
    port: u16,
) {
    let forbidden = good.with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
    });
    let r = run_test(driver, &forbidden.cfg, &forbidden.creds, opts).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::ConnectionRefused)),
        "{r:?}"
    );
    let want = format!("could not reach 127.0.0.1:{port} (forwarding there is not permitted");
    assert!(r.message.contains("the bastion "), "{}", r.message);
    assert!(r.message.contains(&want), "{}", r.message);
}

/// Who connected to a test server: clients in this process (a direct
/// connection) and clients in another (the bastion's sshd carrying a
/// channel). An IP-literal target is never resolved, so only this tells a
/// tunnelled HTTP request from one that went straight to the address.
#[derive(Clone, Debug, Default)]
pub struct Origins {
    here: Arc<AtomicUsize>,
    elsewhere: Arc<AtomicUsize>,
}

impl Origins {
    /// Counts an accepted connection from `peer` to `local`.
    pub async fn note(&self, peer: SocketAddr, local: SocketAddr) {
        let counter = if loopback_client_is_this_process(peer, local).await {
            &self.here
        } else {
            &self.elsewhere
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections made by this process itself.
    pub fn direct(&self) -> usize {
        self.here.load(Ordering::SeqCst)
    }

    /// Connections made by another process (the bastion).
    pub fn from_the_bastion(&self) -> usize {
        self.elsewhere.load(Ordering::SeqCst)
    }
}

/// `app` over plain HTTP on the tunnel-only address: its port, and who
/// connected.
pub async fn serve_on_target(app: axum::Router, ssh: &Fixture) -> (u16, Origins) {
    let l = tokio::net::TcpListener::bind((ssh.require("TARGET_HOST"), 0))
        .await
        .expect("bind the tunnel-only address");
    let local = l.local_addr().expect("addr");
    let origins = Origins::default();
    let listener = Noting {
        inner: l,
        local,
        origins: origins.clone(),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (local.port(), origins)
}

/// A TCP listener for axum that notes who each client is.
struct Noting {
    inner: tokio::net::TcpListener,
    local: SocketAddr,
    origins: Origins,
}

impl axum::serve::Listener for Noting {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Ok((s, peer)) = self.inner.accept().await {
                self.origins.note(peer, self.local).await;
                return (s, peer);
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// An HTTPS API through the bastion: TLS names the target, never the
/// tunnel's forwarder on 127.0.0.1. `base` is the driver's case for an https
/// API (scheme, paths); host, port, CA and `verify-full` are set here.
///
/// - By name: the certificate names only the fixture's `TARGET_NAME`
///   (`localhost`, which the bastion resolves and may forward to); the test
///   passes and every handshake asked for that name (SNI). A certificate
///   naming only 127.0.0.1 fails the handshake.
/// - By address: on the tunnel-only address, under the policy that denies it
///   to direct connections, a certificate naming that address passes (no
///   SNI, as for any IP address) and one naming only 127.0.0.1 fails.
pub async fn assert_https_checks_the_target(
    driver: &dyn Driver,
    base: &Case,
    ssh: &Fixture,
    app: impl Fn() -> axum::Router,
) {
    use crate::tls::TlsServer;
    use matih_connector_core::SslMode;

    let name = ssh.require("TARGET_NAME");
    let address = ssh.require("TARGET_HOST");
    let run = |server: &TlsServer, host: &str, egress: EgressPolicy| {
        let case = through_bastion(base, ssh).with_cfg(|c| {
            c.host = Some(host.to_owned());
            c.port = Some(server.addr.port());
            c.ssl_mode = Some(SslMode::VerifyFull);
            c.ssl_ca_pem = Some(server.ca_pem.clone());
        });
        let opts = TestOptions {
            egress,
            ..Default::default()
        };
        async move { run_test(driver, &case.cfg, &case.creds, &opts).await }
    };

    let named = TlsServer::start(app(), "127.0.0.1", &[name]).await;
    let r = run(&named, name, EgressPolicy::allow_all()).await;
    assert!(r.success, "https by name through the tunnel: {r:?}");
    assert_only_the_bastion_connected(&named.origins);
    let seen = named.server_names();
    assert!(!seen.is_empty(), "no TLS handshake reached the server");
    assert!(
        seen.iter().all(|s| s.as_deref() == Some(name)),
        "SNI must be the target's name: {seen:?}"
    );
    let wrong = TlsServer::start(app(), "127.0.0.1", &["127.0.0.1"]).await;
    let r = run(&wrong, name, EgressPolicy::allow_all()).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::SslHandshakeFailed)),
        "a certificate for the forwarder's address, not the target's name: {r:?}"
    );

    let by_address = TlsServer::start(app(), address, &[address]).await;
    let r = run(&by_address, address, denying_the_target(ssh)).await;
    assert!(r.success, "https by address through the tunnel: {r:?}");
    assert_only_the_bastion_connected(&by_address.origins);
    let seen = by_address.server_names();
    assert!(!seen.is_empty(), "no TLS handshake reached the server");
    assert!(
        seen.iter().all(Option::is_none),
        "no SNI for an address: {seen:?}"
    );
    let wrong = TlsServer::start(app(), address, &["127.0.0.1"]).await;
    let r = run(&wrong, address, denying_the_target(ssh)).await;
    assert_eq!(
        r.failure(),
        Some((Step::Connect, ErrorCode::SslHandshakeFailed)),
        "{r:?}"
    );
}

/// Every connection a server saw came from the bastion, and there was one.
pub fn assert_only_the_bastion_connected(origins: &Origins) {
    assert_eq!(origins.direct(), 0, "a connection bypassed the tunnel");
    assert!(
        origins.from_the_bastion() > 0,
        "no connection came through the bastion"
    );
}

/// For an HTTP API written in the test: `app` on the tunnel-only address and
/// `api(host, port)` the driver's case for it (plain HTTP). The test through
/// the bastion passes while the direct path is `EGRESS_DENIED`
/// ([`assert_only_the_tunnel_reaches`]), and every connection the API saw
/// came from the bastion: the address is an IP literal, which no resolver
/// sees, so only the server can tell a tunnelled request from a direct one.
pub async fn assert_api_only_through_the_tunnel(
    driver: &dyn Driver,
    ssh: &Fixture,
    app: axum::Router,
    api: impl Fn(&str, u16) -> Case,
) -> TestReport {
    let (port, origins) = serve_on_target(app, ssh).await;
    let r =
        assert_only_the_tunnel_reaches(driver, &api(ssh.require("TARGET_HOST"), port), ssh).await;
    assert_only_the_bastion_connected(&origins);
    r
}

/// For an HTTP API written in the test (as [`assert_api_only_through_the_tunnel`]):
/// discovery through the bastion equals discovery direct
/// ([`assert_same_catalog_through_the_tunnel`]); the direct one connected
/// from this process, the tunnelled one through the bastion.
pub async fn assert_api_catalog_through_the_tunnel(
    driver: &dyn Driver,
    ssh: &Fixture,
    app: axum::Router,
    api: impl Fn(&str, u16) -> Case,
) -> Catalog {
    let (port, origins) = serve_on_target(app, ssh).await;
    let case = api(ssh.require("TARGET_HOST"), port);
    let req = DiscoveryRequest::default();
    let catalog = assert_same_catalog_through_the_tunnel(driver, &case, ssh, &req).await;
    assert!(
        origins.direct() > 0 && origins.from_the_bastion() > 0,
        "{origins:?}"
    );
    catalog
}

/// For an HTTP API written in the test: a closed port behind the bastion
/// ([`assert_unreachable_target_is_refused`]) and a target its `PermitOpen`
/// forbids ([`assert_forbidden_target_is_refused`]) are `CONNECTION_REFUSED`
/// at connect. Returns the good case through the bastion and the options
/// (the target denied to direct connections) for the driver's own checks.
pub async fn assert_api_refusals_through_the_tunnel(
    driver: &dyn Driver,
    ssh: &Fixture,
    app: axum::Router,
    api: impl Fn(&str, u16) -> Case,
) -> (Case, TestOptions) {
    let (port, _) = serve_on_target(app, ssh).await;
    let good = through_bastion(&api(ssh.require("TARGET_HOST"), port), ssh);
    let opts = TestOptions {
        egress: denying_the_target(ssh),
        ..Default::default()
    };
    assert_unreachable_target_is_refused(driver, &good, &opts, None).await;
    assert_forbidden_target_is_refused(driver, &good, &opts, port).await;
    (good, opts)
}
