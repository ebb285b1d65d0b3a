//! The checks every driver runs against its fixture.

use std::collections::HashSet;
use std::time::Duration;

use matih_connector_core::{
    open, prepare, run_test, Catalog, ConnectionConfig, Credentials, Depth, DiscoveryRequest,
    Driver, EgressPolicy, ErrorCode, NameFilter, Step, TableKind, TestOptions, TestReport,
    Timeouts,
};

/// A configuration and credentials that go together.
#[derive(Clone, Debug)]
pub struct Case {
    /// The connection configuration.
    pub cfg: ConnectionConfig,
    /// The credentials.
    pub creds: Credentials,
}

impl Case {
    /// A case from its parts.
    pub fn new(cfg: ConnectionConfig, creds: Credentials) -> Self {
        Case { cfg, creds }
    }

    /// The valid case of a host-based driver with a user name and password:
    /// host `db`, user `u`, password `pw-secret`.
    pub fn host_user_password() -> Self {
        Case::new(
            ConnectionConfig {
                host: Some("db".into()),
                ..Default::default()
            },
            Credentials::new()
                .with("username", "u")
                .with("password", "pw-secret"),
        )
    }

    /// The same case with a change to the configuration.
    pub fn with_cfg(&self, f: impl FnOnce(&mut ConnectionConfig)) -> Case {
        let mut c = self.clone();
        f(&mut c.cfg);
        c
    }

    /// The same case with one credential replaced.
    pub fn with_cred(&self, key: &str, value: &str) -> Case {
        let mut c = self.clone();
        c.creds.insert(key, value);
        c
    }
}

/// Failures that need the fixture's help to produce. Each is a real failure
/// of the real server, not a simulated one.
#[derive(Clone, Debug)]
pub struct FailureCases {
    /// Right user, wrong password.
    pub wrong_password: Case,
    /// A database that does not exist.
    pub missing_database: Case,
    /// A user that may log in but lacks a privilege discovery needs.
    pub no_privilege: Case,
    /// TLS with `verify-full` against a certificate the client does not trust.
    pub untrusted_tls: Case,
}

fn options() -> TestOptions {
    TestOptions {
        egress: EgressPolicy::allow_all(),
        ..Default::default()
    }
}

/// Runs the connectivity test and asserts it passes every step with a version.
pub async fn assert_test_succeeds(driver: &dyn Driver, case: &Case) -> TestReport {
    let r = run_test(driver, &case.cfg, &case.creds, &options()).await;
    assert!(
        r.success,
        "test should pass: {}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    let version = r.server_version.as_deref().unwrap_or_default();
    assert!(!version.trim().is_empty(), "server version is empty");
    for step in [
        Step::Validate,
        Step::Dns,
        Step::Tcp,
        Step::Connect,
        Step::ServerVersion,
        Step::AccessProbe,
    ] {
        let s = r
            .step(step)
            .unwrap_or_else(|| panic!("step {step} missing: {r:?}"));
        assert!(s.success, "{step} failed: {r:?}");
    }
    assert!(r.latency_ms.is_some());
    // What the driver read from the server, for the run's proof column.
    crate::proof::version_seen(case.cfg.port, version);
    r
}

/// Runs the connectivity test and asserts it fails at `step` with `code`.
pub async fn assert_test_fails(
    driver: &dyn Driver,
    case: &Case,
    step: Step,
    code: ErrorCode,
) -> TestReport {
    let r = run_test(driver, &case.cfg, &case.creds, &options()).await;
    assert!(!r.success, "expected {code} at {step}, test passed: {r:?}");
    assert_eq!(
        r.failure(),
        Some((step, code)),
        "expected {code} at {step}: {}",
        serde_json::to_string_pretty(&r).unwrap()
    );
    assert_eq!(r.error_code, Some(code));
    assert!(r.latency_ms.is_none());
    assert_no_secret(&serde_json::to_string(&r).unwrap(), &case.creds);
    r
}

/// Asserts no secret credential value appears in `text`. User names are not
/// secrets ([`matih_connector_core::USER_NAME_KEYS`]) and may appear.
pub fn assert_no_secret(text: &str, creds: &Credentials) {
    for (key, value) in creds.secrets() {
        if value.expose().len() >= 4 {
            assert!(
                !text.contains(value.expose()),
                "credential {key} leaked into output: {text}"
            );
        }
    }
}

/// Asserts a failed login's report names the user (what an administrator
/// needs to fix it) while no secret appears ([`assert_no_secret`]).
pub fn assert_names_the_user(report: &TestReport, creds: &Credentials) {
    let user = creds
        .get("username")
        .expect("the case has a username")
        .expose();
    assert!(
        report.message.contains(user),
        "the failure should name the user {user:?}: {}",
        report.message
    );
    assert_no_secret(&serde_json::to_string(report).unwrap(), creds);
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A listener that accepts connections and never says a word. Dropping the
/// handle stops it.
pub async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

/// Each of the seven specification error codes, each from a real failure:
/// closed port, unresolvable name, a listener that never answers, TLS
/// verification failure, wrong password, missing database, missing privilege.
///
/// `no_privilege_step` is where the driver's source reports the missing
/// privilege (at login for PostgreSQL's CONNECT, at the probe elsewhere).
pub async fn assert_error_codes(
    driver: &dyn Driver,
    good: &Case,
    cases: &FailureCases,
    no_privilege_step: Step,
) {
    let refused = good.with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(closed_port());
    });
    assert_test_fails(driver, &refused, Step::Tcp, ErrorCode::ConnectionRefused).await;

    let unresolvable = good.with_cfg(|c| c.host = Some("no-such-host.example.invalid".into()));
    assert_test_fails(
        driver,
        &unresolvable,
        Step::Dns,
        ErrorCode::DnsResolutionFailed,
    )
    .await;

    let (port, listener) = silent_listener().await;
    let silent = good.with_cfg(|c| {
        c.host = Some("127.0.0.1".into());
        c.port = Some(port);
        c.timeouts = Timeouts {
            connect_ms: 700,
            query_ms: 700,
        };
    });
    let started = std::time::Instant::now();
    let r = assert_test_fails(driver, &silent, Step::Connect, ErrorCode::Timeout).await;
    // Bounded: the run ends soon after the limit, whatever the driver does.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: {r:?}",
        started.elapsed()
    );
    listener.abort();

    assert_test_fails(
        driver,
        &cases.untrusted_tls,
        Step::Connect,
        ErrorCode::SslHandshakeFailed,
    )
    .await;
    let r = assert_test_fails(
        driver,
        &cases.wrong_password,
        Step::Connect,
        ErrorCode::AuthenticationFailed,
    )
    .await;
    assert_names_the_user(&r, &cases.wrong_password.creds);
    assert_test_fails(
        driver,
        &cases.missing_database,
        Step::Connect,
        ErrorCode::DatabaseNotFound,
    )
    .await;
    assert_test_fails(
        driver,
        &cases.no_privilege,
        no_privilege_step,
        ErrorCode::PermissionDenied,
    )
    .await;
}

/// Discovers with `req` on a fresh connection.
pub async fn discover(driver: &dyn Driver, case: &Case, req: &DiscoveryRequest) -> Catalog {
    let mut conn = open(driver, &case.cfg, &case.creds, &EgressPolicy::allow_all())
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

/// Structural rules every catalog keeps: unique names, ordinals 1..n in order,
/// primary key columns that exist, views without row estimates of their own.
pub fn assert_catalog_well_formed(catalog: &Catalog) {
    let mut schemas = HashSet::new();
    for s in &catalog.schemas {
        assert!(schemas.insert(&s.name), "duplicate schema {}", s.name);
        let mut tables = HashSet::new();
        for t in &s.tables {
            assert!(
                tables.insert(&t.name),
                "duplicate table {}.{}",
                s.name,
                t.name
            );
            for (i, c) in t.columns.iter().enumerate() {
                assert_eq!(
                    c.ordinal as usize,
                    i + 1,
                    "{}.{} column {} ordinal",
                    s.name,
                    t.name,
                    c.name
                );
            }
            for pk in &t.primary_key {
                assert!(
                    t.column(pk).is_some() || t.columns.is_empty(),
                    "{}.{}: primary key column {pk} missing",
                    s.name,
                    t.name
                );
            }
            if t.kind == TableKind::View {
                assert!(
                    t.size_bytes.unwrap_or(0) == 0,
                    "{}.{}: a view has no size",
                    s.name,
                    t.name
                );
            }
        }
    }
}

/// Filters and depth: `schema` holds `table`, and at least one other table.
pub async fn assert_discovery_filters(driver: &dyn Driver, case: &Case, schema: &str, table: &str) {
    let only = |inc: &str| NameFilter {
        include: vec![inc.into()],
        exclude: vec![],
    };

    let full = discover(driver, case, &DiscoveryRequest::default()).await;
    let s = full
        .schema(schema)
        .unwrap_or_else(|| panic!("schema {schema} not discovered"));
    assert!(
        s.table(table).is_some(),
        "table {schema}.{table} not discovered"
    );
    assert!(
        s.tables.len() >= 2,
        "{schema} needs two tables for the filter checks"
    );

    let req = DiscoveryRequest {
        schemas: only(schema),
        ..Default::default()
    };
    let c = discover(driver, case, &req).await;
    assert_eq!(
        c.schemas
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec![schema]
    );

    let req = DiscoveryRequest {
        schemas: only(schema),
        tables: only(table),
        ..Default::default()
    };
    let c = discover(driver, case, &req).await;
    let names: Vec<_> = c
        .schemas
        .iter()
        .flat_map(|s| &s.tables)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, vec![table], "include table {table}");

    let req = DiscoveryRequest {
        schemas: only(schema),
        tables: NameFilter {
            include: vec![],
            exclude: vec![table.into()],
        },
        ..Default::default()
    };
    let c = discover(driver, case, &req).await;
    let got = c.schema(schema).expect("schema");
    assert!(
        got.table(table).is_none(),
        "excluded table {table} still listed"
    );
    assert_eq!(got.tables.len(), s.tables.len() - 1);

    let req = DiscoveryRequest {
        schemas: NameFilter {
            include: vec![],
            exclude: vec![schema.into()],
        },
        ..Default::default()
    };
    let c = discover(driver, case, &req).await;
    assert!(
        c.schema(schema).is_none(),
        "excluded schema {schema} still listed"
    );

    let c = discover(
        driver,
        case,
        &DiscoveryRequest::default().with_depth(Depth::Tables),
    )
    .await;
    assert!(
        c.schema(schema)
            .unwrap()
            .tables
            .iter()
            .all(|t| t.columns.is_empty()),
        "depth=tables returned columns"
    );
    assert_eq!(c.schema(schema).unwrap().tables.len(), s.tables.len());

    let c = discover(
        driver,
        case,
        &DiscoveryRequest::default().with_depth(Depth::Schemas),
    )
    .await;
    assert!(
        c.schema(schema).unwrap().tables.is_empty(),
        "depth=schemas returned tables"
    );
}

/// One configuration a driver must refuse before any I/O, and the code it
/// must refuse it with: a row of a driver's rejection table.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// What is wrong, for the failure message.
    pub what: String,
    /// The invalid configuration and credentials.
    pub case: Case,
    /// The code the refusal carries.
    pub code: ErrorCode,
}

impl Rejection {
    /// A row.
    pub fn new(what: impl Into<String>, case: Case, code: ErrorCode) -> Self {
        Rejection {
            what: what.into(),
            case,
            code,
        }
    }

    /// A row refused as `INVALID_CONFIGURATION`.
    pub fn invalid(what: impl Into<String>, case: Case) -> Self {
        Rejection::new(what, case, ErrorCode::InvalidConfiguration)
    }
}

/// The rows every driver's table starts with, derived from a valid case and
/// the descriptor: unknown keys, each required key missing, the common
/// checks (host, port, names, timeouts, CA PEM) and the SSH tunnel (refused
/// by a driver that does not declare it; incomplete for one that does).
pub fn common_rejections(driver: &dyn Driver, valid: &Case) -> Vec<Rejection> {
    let d = driver.descriptor();
    let mut rows = vec![
        Rejection::invalid(
            "an unknown credential key",
            valid.with_cred("notAKey", "x-secret-value"),
        ),
        Rejection::invalid(
            "an unknown metadata key",
            valid.with_cfg(|c| {
                c.metadata.insert("notAKey".into(), "x".into());
            }),
        ),
        Rejection::invalid("port 0", valid.with_cfg(|c| c.port = Some(0))),
        Rejection::invalid(
            "a host with a control character",
            valid.with_cfg(|c| c.host = Some("db\nexample".into())),
        ),
        Rejection::invalid(
            "a database name with NUL",
            valid.with_cfg(|c| c.database = Some("a\0b".into())),
        ),
        Rejection::invalid(
            "a zero connect timeout",
            valid.with_cfg(|c| c.timeouts.connect_ms = 0),
        ),
        Rejection::invalid(
            "a zero query timeout",
            valid.with_cfg(|c| c.timeouts.query_ms = 0),
        ),
        Rejection::invalid(
            "a CA that is not PEM",
            valid.with_cfg(|c| c.ssl_ca_pem = Some("not a certificate".into())),
        ),
    ];
    for key in d.credential_keys.iter().filter(|k| k.required) {
        let mut case = valid.clone();
        case.creds.remove(key.name);
        rows.push(Rejection::invalid(
            format!("credential {} missing", key.name),
            case,
        ));
    }
    for key in d.metadata_keys.iter().filter(|k| k.required) {
        rows.push(Rejection::invalid(
            format!("metadata.{} missing", key.name),
            valid.with_cfg(|c| {
                c.metadata.remove(key.name);
            }),
        ));
    }
    let tunnel = serde_json::json!({"host": "bastion.example", "username": "u"});
    let with_tunnel = valid.with_cfg(|c| {
        c.metadata
            .insert(matih_connector_core::ssh::METADATA_KEY.into(), tunnel);
    });
    if d.supports_ssh_tunnel() {
        rows.push(Rejection::invalid(
            "an SSH tunnel without hostKey",
            with_tunnel.with_cred(matih_connector_core::ssh::PASSWORD, "ssh-secret-pw"),
        ));
    } else {
        rows.push(Rejection::new(
            "an SSH tunnel the driver does not support",
            with_tunnel,
            ErrorCode::Unsupported,
        ));
    }
    rows
}

/// The table check: `valid` is prepared (and its prepared settings' `Debug`
/// shows no secret), and each row is refused by [`prepare`] with its code
/// and no secret in the message, and fails the connectivity test's
/// `validate` step the same way (the test stops there, before any I/O).
pub async fn assert_rejections(driver: &dyn Driver, valid: &Case, rows: &[Rejection]) {
    match prepare(driver, &valid.cfg, &valid.creds) {
        Ok(p) => assert_no_secret(&format!("{p:?}"), &valid.creds),
        Err(e) => panic!("the valid case is refused: {e}"),
    }
    for row in rows {
        match prepare(driver, &row.case.cfg, &row.case.creds) {
            Ok(_) => panic!("{}: prepared, expected {}", row.what, row.code),
            Err(e) => {
                assert_eq!(e.code(), row.code, "{}: {e}", row.what);
                assert_no_secret(&e.to_string(), &row.case.creds);
            }
        }
        let r = run_test(
            driver,
            &row.case.cfg,
            &row.case.creds,
            &TestOptions::default(),
        )
        .await;
        assert_eq!(
            r.failure(),
            Some((Step::Validate, row.code)),
            "{}: {}",
            row.what,
            r.message
        );
        assert_eq!(r.steps.len(), 1, "{}: ran past validate", row.what);
        assert_no_secret(&r.message, &row.case.creds);
    }
}
