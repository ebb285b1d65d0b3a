//! The SSH tunnel checks every tunnelled driver runs against the `ssh`
//! fixture (a real OpenSSH bastion whose `PermitOpen` allows only
//! `MATIH_TEST_SSH_TARGET_HOST`, 127.0.0.2, where the database fixtures also
//! listen).

use matih_connector_core::{
    open, run_test, Catalog, DiscoveryRequest, Driver, EgressPolicy, ErrorCode, Step, TestOptions,
    TestReport,
};
use serde_json::json;

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
