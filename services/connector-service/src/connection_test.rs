//! The connection-test use case, the one path every caller takes: the API's
//! create, manual test, update and credential update, and the health
//! scheduler's sweeps. It fetches the credentials from the secret store, runs
//! core's connectivity test (`run_test`) with the service's egress policy and
//! limits, and decides the connector's status with the one status rule,
//! [`status_for`].
//!
//! ```text
//! handler / scheduler → connection_test → core::run_test → driver
//!                     ↘ secret store            ↘ status_for (thresholds)
//! ```

use std::collections::BTreeMap;

use matih_connector_core::{
    run_test, ConnectionConfig, ConnectorError, ConnectorType, Credentials, Driver, TestOptions,
    TestReport,
};

use crate::app::AppState;
use crate::error::Code;
use crate::model::{ts, Connector, ConnectorStatus, Tenant};
use crate::secrets::{dynamic, SecretError, SecretRef};

/// WARNING latency thresholds: one for every type, and overrides per type
/// (`MATIH_WARNING_LATENCY_MS`, `MATIH_HEALTH_WARNING_LATENCY_BY_TYPE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub warning_ms: u64,
    /// Connector type wire name → threshold in milliseconds.
    pub warning_ms_by_type: BTreeMap<String, u64>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warning_ms: 2000,
            warning_ms_by_type: BTreeMap::new(),
        }
    }
}

impl Thresholds {
    /// The WARNING threshold of a type: its own, else the global one.
    pub fn warning_ms(&self, ty: &ConnectorType) -> u64 {
        self.warning_ms_by_type
            .get(ty.as_str())
            .copied()
            .unwrap_or(self.warning_ms)
    }
}

/// The status rule: ERROR when the test failed, WARNING when it passed slower
/// than the type's threshold, ACTIVE otherwise. Every path that records a
/// test's outcome decides through here.
pub fn status_for(report: &TestReport, ty: &ConnectorType, t: &Thresholds) -> ConnectorStatus {
    match (report.success, report.latency_ms) {
        (false, _) => ConnectorStatus::Error,
        (true, Some(ms)) if ms > t.warning_ms(ty) => ConnectorStatus::Warning,
        (true, _) => ConnectorStatus::Active,
    }
}

/// A finished test and the status the rule gives it.
#[derive(Debug)]
pub struct Tested {
    pub report: TestReport,
    pub status: ConnectorStatus,
}

impl Tested {
    /// Records the outcome on the connector; a disabled connector stays disabled.
    pub fn apply_to(&self, c: &mut Connector) {
        c.last_tested_at = Some(ts(self.report.tested_at));
        c.last_test_result = Some(self.report.message.clone());
        c.last_error_code = self.report.error_code.map(|e| e.as_str().to_owned());
        if c.status != ConnectorStatus::Inactive {
            c.status = self.status;
        }
    }
}

/// Why a stored connector could not be tested at all (no report).
#[derive(Debug)]
pub enum TestFailure {
    /// Its type has no driver in this build.
    Driver(ConnectorError),
    /// Its credential secret is gone.
    CredentialsMissing,
    /// The secret store failed.
    SecretStore(SecretError),
}

impl TestFailure {
    /// The stable code the scheduler records for it.
    pub fn code(&self) -> Code {
        match self {
            TestFailure::Driver(e) => Code::Connector(e.code()),
            TestFailure::CredentialsMissing => Code::CredentialsMissing,
            TestFailure::SecretStore(_) => Code::SecretStoreUnavailable,
        }
    }

    /// A message for history and notices; never a secret.
    pub fn message(&self) -> String {
        match self {
            TestFailure::Driver(e) => e.message().to_owned(),
            TestFailure::CredentialsMissing => {
                "the connector's credential secret is missing".into()
            }
            TestFailure::SecretStore(e) => format!("reading the credentials failed: {e}"),
        }
    }
}

impl From<SecretError> for TestFailure {
    fn from(e: SecretError) -> Self {
        match e {
            SecretError::NotFound(_) => TestFailure::CredentialsMissing,
            other => TestFailure::SecretStore(other),
        }
    }
}

/// Where a connector's credentials live.
pub fn secret_ref(state: &AppState, tenant: &Tenant, c: &Connector) -> SecretRef {
    let mut r = SecretRef::new(
        &state.settings.namespace_prefix,
        &tenant.slug,
        c.id,
        &c.connector_type,
    );
    r.name = c.credential_secret_name.clone();
    r
}

/// The driver of a connector's type.
pub fn driver_for(
    state: &AppState,
    ty: &ConnectorType,
) -> Result<std::sync::Arc<dyn Driver>, ConnectorError> {
    state.registry.get(ty)
}

/// A connector's stored credentials.
pub async fn stored_credentials(
    state: &AppState,
    tenant: &Tenant,
    c: &Connector,
) -> Result<Credentials, TestFailure> {
    Ok(state.secrets.get(&secret_ref(state, tenant, c)).await?)
}

/// Checks a configuration with the driver, before any I/O.
pub fn validate(
    state: &AppState,
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
) -> Result<(), ConnectorError> {
    // Dynamic credentials (a Vault database role) are checked in the shape
    // of the login Vault will issue.
    cfg.validate_common()
        .and_then(|()| driver.descriptor().check_metadata_keys(&cfg.metadata))
        .and_then(|()| dynamic::for_validation(&*state.secrets, creds))
        .and_then(|creds| driver.validate(cfg, &creds))
}

/// Runs the connectivity test with the given credentials (a create, or new
/// credentials before they replace the old ones), counts it, and decides the
/// status.
pub async fn test_with(
    state: &AppState,
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
) -> Tested {
    let ty = &driver.descriptor().connector_type;
    let opts = TestOptions {
        egress: state.settings.egress.clone(),
        ..Default::default()
    };
    let cfg = &ConnectionConfig {
        timeouts: state.settings.limits.clamp(cfg.timeouts),
        ..cfg.clone()
    };
    // Stored credentials as they are; a dynamic role's login issued now, in
    // a timed `credentials` step, and given back after the test.
    let report = match dynamic::resolve_timed(&state.secrets, creds).await {
        Ok((creds, lease, fetched_ms)) => {
            let report = run_test(driver, cfg, &creds, &opts).await;
            if let Some(lease) = lease {
                lease.release().await;
            }
            match fetched_ms {
                Some(ms) => report.after_credentials(ms),
                None => report,
            }
        }
        Err((e, ms)) => TestReport::credentials_failed(&e, ms),
    };
    let outcome = report.error_code.map(|c| c.as_str()).unwrap_or("ok");
    state
        .metrics
        .connector_tests
        .with_label_values(&[ty.as_str(), outcome])
        .inc();
    let status = status_for(&report, ty, &state.settings.thresholds);
    Tested { report, status }
}

/// The whole use case for a stored connector (manual test, scheduled check):
/// driver, stored credentials, test, status.
pub async fn test_stored(
    state: &AppState,
    tenant: &Tenant,
    c: &Connector,
) -> Result<Tested, TestFailure> {
    let driver = driver_for(state, &c.connector_type).map_err(TestFailure::Driver)?;
    let creds = stored_credentials(state, tenant, c).await?;
    Ok(test_with(state, &*driver, &c.config(), &creds).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use matih_connector_core::ErrorCode;

    fn report(success: bool, latency_ms: Option<u64>) -> TestReport {
        TestReport {
            success,
            latency_ms,
            server_version: None,
            message: String::new(),
            error_code: (!success).then_some(ErrorCode::Timeout),
            failed_step: None,
            tested_at: Utc::now(),
            steps: vec![],
        }
    }

    #[test]
    fn status_rule_uses_the_type_threshold_then_the_global_one() {
        let t = Thresholds {
            warning_ms: 100,
            warning_ms_by_type: BTreeMap::from([("MYSQL".to_owned(), 500)]),
        };
        let (pg, my) = (ConnectorType::Postgresql, ConnectorType::Mysql);
        let cases = [
            (report(true, Some(100)), &pg, ConnectorStatus::Active),
            (report(true, Some(101)), &pg, ConnectorStatus::Warning),
            (report(true, Some(101)), &my, ConnectorStatus::Active),
            (report(true, Some(501)), &my, ConnectorStatus::Warning),
            (report(true, None), &pg, ConnectorStatus::Active),
            (report(false, None), &my, ConnectorStatus::Error),
            (report(false, Some(1)), &pg, ConnectorStatus::Error),
        ];
        for (r, ty, want) in cases {
            assert_eq!(status_for(&r, ty, &t), want, "{ty} {:?}", r.latency_ms);
        }
    }
}
