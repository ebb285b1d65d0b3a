//! The step-wise connectivity test, generic over any driver.
//!
//! validate → dns → tcp → connect (TLS + auth) → server_version → access_probe.
//! Each step is timed and bounded by a time limit; the first failure stops the
//! run and names the step.
//!
//! Through an SSH tunnel (`metadata.sshTunnel`), dns and tcp are about the
//! bastion, an `ssh` step (handshake, host key, authentication) follows tcp,
//! and connect goes through the tunnel.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::driver::{resolve_host, with_timeout};
use crate::{
    ConnectContext, ConnectionConfig, ConnectorError, Credentials, DiscoveryRequest, Driver,
    EgressPolicy, ErrorCode, PreparedConnector,
};

/// The steps of a connectivity test, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Embedders only: fetching credentials issued for this use (a secret
    /// manager's short-lived database login), before the test proper.
    Credentials,
    /// The driver's checks without I/O.
    Validate,
    /// Resolving the host (the bastion's, for a tunnel) and applying the
    /// egress policy.
    Dns,
    /// Opening a TCP connection (to the bastion, for a tunnel).
    Tcp,
    /// SSH tunnels only: the handshake with the bastion, its host key and
    /// authentication.
    Ssh,
    /// TLS and authentication.
    Connect,
    /// Reading the server's version.
    ServerVersion,
    /// The cheapest call proving discovery would work.
    AccessProbe,
}

impl Step {
    /// The wire name (`access_probe`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Credentials => "credentials",
            Step::Validate => "validate",
            Step::Dns => "dns",
            Step::Tcp => "tcp",
            Step::Ssh => "ssh",
            Step::Connect => "connect",
            Step::ServerVersion => "server_version",
            Step::AccessProbe => "access_probe",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// Which step.
    pub name: Step,
    /// Whether it passed.
    pub success: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// Its code when it failed.
    pub error_code: Option<ErrorCode>,
    /// Its message when it failed.
    pub message: Option<String>,
}

/// A connectivity test's outcome, in the API's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestReport {
    /// Whether every step passed.
    pub success: bool,
    /// Wall time from the DNS step to the end of the access probe; absent when
    /// the test failed.
    pub latency_ms: Option<u64>,
    /// What the server said its version is.
    pub server_version: Option<String>,
    /// `Connection successful`, or the failure's hint and detail.
    pub message: String,
    /// The failing step's code.
    pub error_code: Option<ErrorCode>,
    /// The step that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<Step>,
    /// When the test ran.
    #[serde(serialize_with = "rfc3339_millis")]
    pub tested_at: DateTime<Utc>,
    /// Every step that ran, in order.
    pub steps: Vec<StepReport>,
}

fn rfc3339_millis<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl TestReport {
    /// The step that failed and its error code, if any.
    pub fn failure(&self) -> Option<(Step, ErrorCode)> {
        self.steps
            .iter()
            .find(|s| !s.success)
            .and_then(|s| Some((s.name, s.error_code?)))
    }

    /// The report of step `name`, if it ran.
    pub fn step(&self, name: Step) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// This report with a passed [`Step::Credentials`] of `latency_ms` in
    /// front: the credentials the test used were fetched first.
    pub fn after_credentials(mut self, latency_ms: u64) -> TestReport {
        self.steps.insert(
            0,
            StepReport {
                name: Step::Credentials,
                success: true,
                latency_ms,
                error_code: None,
                message: None,
            },
        );
        self
    }

    /// The report of a test that stopped at [`Step::Credentials`]: fetching
    /// the credentials failed with `e` after `latency_ms`.
    pub fn credentials_failed(e: &ConnectorError, latency_ms: u64) -> TestReport {
        TestReport {
            success: false,
            latency_ms: None,
            server_version: None,
            message: e.report_message(),
            error_code: Some(e.code()),
            failed_step: Some(Step::Credentials),
            tested_at: Utc::now(),
            steps: vec![StepReport {
                name: Step::Credentials,
                success: false,
                latency_ms,
                error_code: Some(e.code()),
                message: Some(e.message().to_owned()),
            }],
        }
    }
}

/// Options for a connectivity test.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// The networks the test may reach.
    pub egress: EgressPolicy,
    /// The filters discovery will use; the access probe honours them.
    pub discovery: DiscoveryRequest,
}

struct Recorder {
    steps: Vec<StepReport>,
}

impl Recorder {
    async fn step<T>(
        &mut self,
        name: Step,
        limit: Option<Duration>,
        fut: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        let started = Instant::now();
        let result = match limit {
            Some(limit) => with_timeout(limit, name.as_str(), fut).await,
            None => fut.await,
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        let report = match &result {
            Ok(_) => StepReport {
                name,
                success: true,
                latency_ms,
                error_code: None,
                message: None,
            },
            Err(e) => {
                tracing::debug!(step = %name, error = %e, "connectivity test step failed");
                StepReport {
                    name,
                    success: false,
                    latency_ms,
                    error_code: Some(e.code()),
                    message: Some(e.message().to_owned()),
                }
            }
        };
        self.steps.push(report);
        result.map_err(|e| e.with_context("step", name))
    }
}

/// Runs the connectivity test. Never panics and never hangs: every step has a
/// time limit, and the connection is closed (bounded too) whatever happens.
/// The `validate` step is [`crate::prepare`]; a caller that has prepared
/// already calls [`run_prepared_test`].
pub async fn run_test(
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
    opts: &TestOptions,
) -> TestReport {
    let tested_at = Utc::now();
    let mut rec = Recorder {
        steps: Vec::with_capacity(6),
    };
    let prepared = rec
        .step(Step::Validate, None, async {
            crate::prepare(driver, cfg, creds)
        })
        .await;
    match prepared {
        Ok(p) => run_after_validate(&p, opts, rec, tested_at).await,
        Err(e) => report(Err(e), None, rec, tested_at),
    }
}

/// The connectivity test of a connector prepared already (one parse per
/// request): its `validate` step reports how long [`crate::prepare`] took.
pub async fn run_prepared_test(prepared: &PreparedConnector, opts: &TestOptions) -> TestReport {
    let tested_at = Utc::now();
    let mut rec = Recorder {
        steps: Vec::with_capacity(6),
    };
    rec.steps.push(StepReport {
        name: Step::Validate,
        success: true,
        latency_ms: prepared.took().as_millis() as u64,
        error_code: None,
        message: None,
    });
    run_after_validate(prepared, opts, rec, tested_at).await
}

async fn run_after_validate(
    prepared: &PreparedConnector,
    opts: &TestOptions,
    mut rec: Recorder,
    tested_at: DateTime<Utc>,
) -> TestReport {
    let network_started = Instant::now();
    let outcome = run_steps(prepared, opts, &mut rec).await;
    report(outcome, Some(network_started), rec, tested_at)
}

fn report(
    outcome: Result<String, ConnectorError>,
    network_started: Option<Instant>,
    rec: Recorder,
    tested_at: DateTime<Utc>,
) -> TestReport {
    match outcome {
        Ok(version) => TestReport {
            success: true,
            latency_ms: network_started.map(|t| t.elapsed().as_millis() as u64),
            server_version: Some(version),
            message: "Connection successful".into(),
            error_code: None,
            failed_step: None,
            tested_at,
            steps: rec.steps,
        },
        Err(e) => TestReport {
            success: false,
            latency_ms: None,
            server_version: None,
            message: e.report_message(),
            error_code: Some(e.code()),
            failed_step: rec.steps.iter().find(|s| !s.success).map(|s| s.name),
            tested_at,
            steps: rec.steps,
        },
    }
}

async fn run_steps(
    prepared: &PreparedConnector,
    opts: &TestOptions,
    rec: &mut Recorder,
) -> Result<String, ConnectorError> {
    let timeouts = prepared.timeouts();
    let connect_limit = timeouts.connect();
    let query_limit = timeouts.query();

    if let Some(spec) = prepared.tunnel() {
        return run_tunnelled(prepared, opts, rec, spec).await;
    }
    let mut ctx = ConnectContext {
        host: None,
        addrs: Vec::new(),
        timeouts,
        egress: opts.egress.clone(),
        tunnel: None,
    };
    if let Some((host, port)) = prepared.endpoint() {
        let addrs = rec
            .step(
                Step::Dns,
                Some(connect_limit),
                resolve_host(host, port, timeouts, &opts.egress),
            )
            .await?;
        ctx.addrs = rec
            .step(Step::Tcp, Some(connect_limit), tcp_probe(addrs))
            .await?;
        ctx.host = Some(host.to_owned());
    }

    let conn = rec
        .step(
            Step::Connect,
            Some(connect_limit),
            prepared.settings().connect(&ctx),
        )
        .await?;
    query_steps(conn, rec, query_limit, opts).await
}

/// server_version and access_probe, then the close (bounded).
async fn query_steps(
    mut conn: Box<dyn crate::Connection>,
    rec: &mut Recorder,
    query_limit: Duration,
    opts: &TestOptions,
) -> Result<String, ConnectorError> {
    let result = async {
        let version = rec
            .step(
                Step::ServerVersion,
                Some(query_limit),
                conn.server_version(),
            )
            .await?;
        rec.step(
            Step::AccessProbe,
            Some(query_limit),
            conn.probe(&opts.discovery),
        )
        .await?;
        Ok(version)
    }
    .await;
    // A close that hangs must not hold the report back.
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
    result
}

/// The steps through an SSH tunnel: dns and tcp to the bastion, ssh, then
/// connect through the tunnel to the configured host. The session ends with
/// the test whatever happens.
#[cfg(feature = "ssh")]
async fn run_tunnelled(
    prepared: &PreparedConnector,
    opts: &TestOptions,
    rec: &mut Recorder,
    spec: &crate::ssh::TunnelSpec,
) -> Result<String, ConnectorError> {
    use crate::ssh;
    let timeouts = prepared.timeouts();
    let limit = timeouts.connect();
    let (host, port) = prepared.tunnel_target()?;
    let addrs = rec
        .step(
            Step::Dns,
            Some(limit),
            ssh::resolve_bastion(spec, timeouts, &opts.egress),
        )
        .await?;
    let tcp = rec
        .step(
            Step::Tcp,
            Some(limit),
            ssh::connect_bastion(spec, &addrs, timeouts),
        )
        .await?;
    let session = rec
        .step(
            Step::Ssh,
            Some(limit),
            ssh::SshSession::handshake(spec, tcp, timeouts),
        )
        .await?;
    let tunnel = match ssh::Tunnel::start(session, &host, port).await {
        Ok(t) => t,
        Err(e) => {
            return rec
                .step(Step::Connect, None, async { Err::<(), _>(e) })
                .await
                .map(|()| String::new())
        }
    };
    let ctx = ConnectContext::through(tunnel.clone(), host, timeouts, &opts.egress);
    // The limit inside, so that a time-out is explained too.
    let connected = rec
        .step(Step::Connect, None, async {
            with_timeout(
                limit,
                Step::Connect.as_str(),
                prepared.settings().connect(&ctx),
            )
            .await
            .map_err(|e| ssh::explain_connect(&tunnel, e))
        })
        .await;
    let result = match connected {
        Ok(inner) => {
            let conn = Box::new(ssh::TunnelledConnection {
                inner,
                tunnel: tunnel.clone(),
            });
            query_steps(conn, rec, timeouts.query(), opts).await
        }
        Err(e) => Err(e),
    };
    tunnel.close().await;
    result
}

#[cfg(not(feature = "ssh"))]
async fn run_tunnelled(
    _: &PreparedConnector,
    _: &TestOptions,
    _: &mut Recorder,
    spec: &crate::ssh::PreparedTunnel,
) -> Result<String, ConnectorError> {
    match *spec {}
}

/// Opens (and drops) a TCP connection to each address in turn; returns the
/// addresses that accepted first, so the driver tries a reachable one first.
async fn tcp_probe(addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, ConnectorError> {
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(_) => {
                let mut ordered = addrs.clone();
                ordered.rotate_left(i);
                return Ok(ordered);
            }
            Err(e) => last = Some(ConnectorError::from_io(e, addr).with_context("address", addr)),
        }
    }
    Err(last.unwrap_or_else(|| ConnectorError::internal("no address to connect to")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalog, Connection, DriverDescriptor, ErrorCode, Prepared};
    use async_trait::async_trait;
    use tokio::io::AsyncReadExt;

    /// A minimal driver for exercising the runner: it connects over TCP and
    /// waits for one byte of greeting, the way a database server greets first.
    struct GreetingDriver(DriverDescriptor);

    struct GreetingConn;

    #[async_trait]
    impl Connection for GreetingConn {
        async fn server_version(&mut self) -> Result<String, ConnectorError> {
            Ok("greeter 1.0".into())
        }
        async fn probe(&mut self, _: &DiscoveryRequest) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn discover(&mut self, _: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
            Ok(Catalog::default())
        }
        async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
            Ok(())
        }
    }

    #[async_trait]
    impl Driver for GreetingDriver {
        fn descriptor(&self) -> &DriverDescriptor {
            &self.0
        }
        fn prepare(&self, spec: crate::Checked<'_>) -> Result<Box<dyn Prepared>, ConnectorError> {
            let (host, port) = spec.config().host_and_port(None)?;
            Ok(Box::new(Greeting { host, port }))
        }
    }

    #[derive(Debug)]
    struct Greeting {
        host: String,
        port: u16,
    }

    #[async_trait]
    impl Prepared for Greeting {
        fn endpoint(&self) -> Option<(&str, u16)> {
            Some((&self.host, self.port))
        }
        async fn connect(
            &self,
            ctx: &ConnectContext,
        ) -> Result<Box<dyn Connection>, ConnectorError> {
            let mut s = tokio::net::TcpStream::connect(ctx.addrs[0])
                .await
                .map_err(|e| ConnectorError::from_io(e, "connect"))?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)
                .await
                .map_err(|e| ConnectorError::from_io(e, "greeting"))?;
            Ok(Box::new(GreetingConn))
        }
    }

    fn driver() -> GreetingDriver {
        GreetingDriver(DriverDescriptor {
            connector_type: crate::ConnectorType::Custom("GREETER".into()),
            display_name: "greeter",
            default_port: None,
            credential_keys: vec![],
            metadata_keys: vec![],
            capabilities: Default::default(),
        })
    }

    fn cfg(port: u16) -> ConnectionConfig {
        ConnectionConfig {
            host: Some("127.0.0.1".into()),
            port: Some(port),
            timeouts: crate::Timeouts {
                connect_ms: 300,
                query_ms: 300,
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn success_reports_every_step() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, b"!").await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                });
            }
        });
        let r = run_test(
            &driver(),
            &cfg(port),
            &Credentials::new(),
            &TestOptions::default(),
        )
        .await;
        assert!(r.success, "{r:?}");
        assert_eq!(r.server_version.as_deref(), Some("greeter 1.0"));
        let names: Vec<_> = r.steps.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                Step::Validate,
                Step::Dns,
                Step::Tcp,
                Step::Connect,
                Step::ServerVersion,
                Step::AccessProbe
            ]
        );
        assert!(r.latency_ms.is_some());
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["message"], "Connection successful");
        assert!(json["errorCode"].is_null());
        assert_eq!(json["steps"][2]["name"], "tcp");
    }

    #[tokio::test]
    async fn closed_port_fails_at_tcp() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let r = run_test(
            &driver(),
            &cfg(port),
            &Credentials::new(),
            &TestOptions::default(),
        )
        .await;
        assert!(!r.success);
        assert_eq!(r.failure(), Some((Step::Tcp, ErrorCode::ConnectionRefused)));
        assert_eq!(r.latency_ms, None);
        assert!(
            r.message
                .starts_with("Connection refused: verify host and port"),
            "{}",
            r.message
        );
        assert_eq!(r.steps.len(), 3);
    }

    #[tokio::test]
    async fn silent_listener_times_out_at_connect() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let r = run_test(
            &driver(),
            &cfg(port),
            &Credentials::new(),
            &TestOptions::default(),
        )
        .await;
        assert_eq!(r.failure(), Some((Step::Connect, ErrorCode::Timeout)));
        assert_eq!(r.error_code, Some(ErrorCode::Timeout));
    }

    fn tunnelled(port: u16, bastion_port: u16) -> (GreetingDriver, ConnectionConfig, Credentials) {
        let mut d = driver();
        d.0 = d.0.with_ssh_tunnel();
        let mut c = cfg(port);
        c.metadata.insert(
            crate::ssh::METADATA_KEY.into(),
            serde_json::json!({"host": "127.0.0.1", "port": bastion_port, "username": "u",
                "hostKey": "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}),
        );
        let creds = Credentials::new().with(crate::ssh::PASSWORD, "pw");
        (d, c, creds)
    }

    #[tokio::test]
    async fn a_tunnelled_test_probes_the_bastion_at_dns_and_tcp() {
        let bastion = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (d, c, creds) = tunnelled(5432, bastion);
        let r = run_test(&d, &c, &creds, &TestOptions::default()).await;
        assert_eq!(r.failure(), Some((Step::Tcp, ErrorCode::ConnectionRefused)));
        assert!(r.message.contains("SSH bastion"), "{}", r.message);
        let names: Vec<_> = r.steps.iter().map(|s| s.name).collect();
        assert_eq!(names, [Step::Validate, Step::Dns, Step::Tcp]);

        // A bastion that accepts TCP and says nothing fails at the ssh step.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let (d, c, creds) = tunnelled(5432, port);
        let r = run_test(&d, &c, &creds, &TestOptions::default()).await;
        assert_eq!(r.failure(), Some((Step::Ssh, ErrorCode::Timeout)));
        assert_eq!(r.steps[3].name.as_str(), "ssh");

        // A driver that does not declare tunnels refuses one at validate.
        let c = tunnelled(5432, port).1;
        let r = run_test(&driver(), &c, &Credentials::new(), &TestOptions::default()).await;
        assert_eq!(r.failure(), Some((Step::Validate, ErrorCode::Unsupported)));
    }

    #[tokio::test]
    async fn invalid_host_fails_at_dns_and_bad_config_at_validate() {
        let mut c = cfg(1);
        c.host = Some("nowhere.invalid".into());
        let r = run_test(&driver(), &c, &Credentials::new(), &TestOptions::default()).await;
        assert_eq!(
            r.failure(),
            Some((Step::Dns, ErrorCode::DnsResolutionFailed))
        );

        c.host = Some("bad host".into());
        let r = run_test(&driver(), &c, &Credentials::new(), &TestOptions::default()).await;
        assert_eq!(
            r.failure(),
            Some((Step::Validate, ErrorCode::InvalidConfiguration))
        );
        assert_eq!(r.steps.len(), 1);
    }
}
