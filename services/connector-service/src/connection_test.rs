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
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use matih_connector_core::{
    run_prepared_test, run_test, ConnectionConfig, ConnectorError, ConnectorType, Credentials,
    Driver, PreparedConnector, TestOptions, TestReport,
};

use crate::app::AppState;
use crate::error::Code;
use crate::model::{ts, Connector, ConnectorStatus, Tenant};
use crate::secrets::{dynamic, Expiry, ExpiryKind, SecretError, SecretRef};

/// What makes a passing test WARNING: latency thresholds, one for every type
/// and overrides per type (`MATIH_WARNING_LATENCY_MS`,
/// `MATIH_HEALTH_WARNING_LATENCY_BY_TYPE`), and how long before a static
/// credential's recorded expiry or rotation the warning starts
/// (`MATIH_CREDENTIAL_EXPIRY_WARNING_DAYS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub warning_ms: u64,
    /// Connector type wire name → threshold in milliseconds.
    pub warning_ms_by_type: BTreeMap<String, u64>,
    /// The expiry window; zero turns expiry warnings off.
    pub expiry_warning: Duration,
}

/// The default expiry window: seven days.
pub const DEFAULT_EXPIRY_WARNING_DAYS: u64 = 7;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warning_ms: 2000,
            warning_ms_by_type: BTreeMap::new(),
            expiry_warning: Duration::from_secs(DEFAULT_EXPIRY_WARNING_DAYS * 86_400),
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

/// The status rule's answer: the status, and the note on the credential's
/// expiry when it falls within the window (it goes into the test's message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub status: ConnectorStatus,
    pub expiry_note: Option<String>,
}

/// The status rule: ERROR when the test failed; WARNING when it passed but
/// the credential expires or rotates within the window (or already did: the
/// test, not the date, says whether it still works), or when it passed slower
/// than the type's threshold; ACTIVE otherwise. Every path that records a
/// test's outcome decides through here.
pub fn status_for(
    report: &TestReport,
    ty: &ConnectorType,
    t: &Thresholds,
    expiry: Option<&Expiry>,
    now: DateTime<Utc>,
) -> Verdict {
    let window = chrono::Duration::from_std(t.expiry_warning).unwrap_or(chrono::Duration::MAX);
    let expiry_note = expiry
        .filter(|e| !t.expiry_warning.is_zero() && e.at - now <= window)
        .map(|e| expiry_note(e, now));
    let status = match (report.success, report.latency_ms) {
        (false, _) => ConnectorStatus::Error,
        (true, _) if expiry_note.is_some() => ConnectorStatus::Warning,
        (true, Some(ms)) if ms > t.warning_ms(ty) => ConnectorStatus::Warning,
        (true, _) => ConnectorStatus::Active,
    };
    Verdict {
        status,
        expiry_note,
    }
}

/// "credentials expire 2026-12-09T10:00:00Z (in 3 days)", "credentials
/// expired … (2 days ago)", "credentials rotate … (in 5 hours)".
pub fn expiry_note(e: &Expiry, now: DateTime<Utc>) -> String {
    let when = e.at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let left = e.at - now;
    let past = left < chrono::Duration::zero();
    let span = span(if past { -left } else { left });
    match (e.kind, past) {
        (ExpiryKind::Expires, false) => format!("credentials expire {when} (in {span})"),
        (ExpiryKind::Expires, true) => format!("credentials expired {when} ({span} ago)"),
        (ExpiryKind::Rotates, false) => format!("credentials rotate {when} (in {span})"),
        (ExpiryKind::Rotates, true) => {
            format!("credentials were due to rotate {when} ({span} ago)")
        }
    }
}

/// A non-negative span in the largest whole unit people use for it: days
/// (rounded to the nearest), else hours, else "less than an hour".
fn span(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    let (n, unit) = if secs >= 86_400 {
        ((secs + 43_200) / 86_400, "day")
    } else if secs >= 3_600 {
        ((secs + 1_800) / 3_600, "hour")
    } else {
        return "less than an hour".to_owned();
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// A finished test and the status the rule gives it.
#[derive(Debug)]
pub struct Tested {
    pub report: TestReport,
    pub status: ConnectorStatus,
    /// The credential's expiry when the rule warned of it (the note is in
    /// the report's message): what the health notice tells the tenant admin.
    pub expiry: Option<Expiry>,
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

/// A connector's stored credentials with the expiry their store records.
/// Dynamic credentials (a Vault role) have none: each use gets a fresh login.
pub async fn stored_credentials_with_expiry(
    state: &AppState,
    tenant: &Tenant,
    c: &Connector,
) -> Result<(Credentials, Option<Expiry>), TestFailure> {
    let stored = state
        .secrets
        .get_with_expiry(&secret_ref(state, tenant, c))
        .await?;
    let expiry = stored
        .expiry
        .filter(|_| !dynamic::is_dynamic(&stored.credentials));
    Ok((stored.credentials, expiry))
}

/// A connector checked and parsed once by core ([`matih_connector_core::prepare`]),
/// under the service's time limits, before any side effect: what the
/// request's test then runs on.
pub struct Target {
    prepared: PreparedConnector,
    /// Dynamic credentials (a Vault database role): the login exists only at
    /// use, so the test prepares once more with it — the one documented
    /// exception to parse-once.
    dynamic: Option<(Arc<dyn Driver>, ConnectionConfig, Credentials)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("prepared", &self.prepared)
            .field("dynamic", &self.dynamic.is_some())
            .finish()
    }
}

/// The service's limits applied to a configuration's timeouts.
fn clamped(state: &AppState, cfg: &ConnectionConfig) -> ConnectionConfig {
    ConnectionConfig {
        timeouts: state.settings.limits.clamp(cfg.timeouts),
        ..cfg.clone()
    }
}

fn test_options(state: &AppState) -> TestOptions {
    TestOptions {
        egress: state.settings.egress.clone(),
        ..Default::default()
    }
}

/// Checks and parses a configuration with its credentials, once, before any
/// I/O. Dynamic credentials are checked in the shape of the login Vault will
/// issue.
pub fn validate(
    state: &AppState,
    driver: &Arc<dyn Driver>,
    cfg: &ConnectionConfig,
    creds: &Credentials,
) -> Result<Target, ConnectorError> {
    let cfg = clamped(state, cfg);
    let checked = dynamic::for_validation(&*state.secrets, creds)?;
    let prepared = matih_connector_core::prepare(&**driver, &cfg, &checked)?;
    let dynamic = dynamic::is_dynamic(creds).then(|| (driver.clone(), cfg, creds.clone()));
    Ok(Target { prepared, dynamic })
}

/// Runs the connectivity test of a validated target (a create, or new
/// credentials before they replace the old ones), counts it, and decides the
/// status.
pub async fn test_with(state: &AppState, target: &Target) -> Tested {
    let ty = target.prepared.connector_type().clone();
    let report = match &target.dynamic {
        None => run_prepared_test(&target.prepared, &test_options(state)).await,
        Some((driver, cfg, stored)) => run_with(state, &**driver, cfg, stored).await,
    };
    decided(state, &ty, report, None)
}

/// The test with stored credentials as they are, or a dynamic role's login
/// issued now in a timed `credentials` step and given back after the test.
/// `run_test` prepares (its `validate` step): the one parse of this use.
async fn run_with(
    state: &AppState,
    driver: &dyn Driver,
    cfg: &ConnectionConfig,
    creds: &Credentials,
) -> TestReport {
    let opts = test_options(state);
    match dynamic::resolve_timed(&state.secrets, creds).await {
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
    }
}

/// Counts a finished test and decides the status with the one rule; an
/// expiry note joins the test's message.
fn decided(
    state: &AppState,
    ty: &ConnectorType,
    mut report: TestReport,
    expiry: Option<Expiry>,
) -> Tested {
    let outcome = report.error_code.map(|c| c.as_str()).unwrap_or("ok");
    state
        .metrics
        .connector_tests
        .with_label_values(&[ty.as_str(), outcome])
        .inc();
    let verdict = status_for(
        &report,
        ty,
        &state.settings.thresholds,
        expiry.as_ref(),
        Utc::now(),
    );
    let expiry = match verdict.expiry_note {
        Some(note) => {
            report.message = format!("{}; {note}", report.message);
            expiry
        }
        None => None,
    };
    Tested {
        report,
        status: verdict.status,
        expiry,
    }
}

/// The whole use case for a stored connector (manual test, scheduled check):
/// driver, stored credentials with their recorded expiry, test (its validate
/// step is the one parse), status.
pub async fn test_stored(
    state: &AppState,
    tenant: &Tenant,
    c: &Connector,
) -> Result<Tested, TestFailure> {
    let driver = driver_for(state, &c.connector_type).map_err(TestFailure::Driver)?;
    let (creds, expiry) = stored_credentials_with_expiry(state, tenant, c).await?;
    let report = run_with(state, &*driver, &clamped(state, &c.config()), &creds).await;
    Ok(decided(state, &c.connector_type, report, expiry))
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
            ..Default::default()
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
            let v = status_for(&r, ty, &t, None, Utc::now());
            assert_eq!(v.status, want, "{ty} {:?}", r.latency_ms);
            assert_eq!(v.expiry_note, None);
        }
    }

    #[test]
    fn expiry_within_the_window_warns_with_the_date_and_the_days_left() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = Thresholds::default();
        let pg = ConnectorType::Postgresql;
        let expires = |days: i64, secs: i64| Expiry {
            at: now + chrono::Duration::days(days) + chrono::Duration::seconds(secs),
            kind: ExpiryKind::Expires,
        };
        let rule = |r: &TestReport, e: Expiry, t: &Thresholds| {
            let v = status_for(r, &pg, t, Some(&e), now);
            (v.status, v.expiry_note)
        };
        let fast = report(true, Some(5));
        // Three days ahead (a check a few seconds after it was written).
        assert_eq!(
            rule(&fast, expires(3, -5), &t),
            (
                ConnectorStatus::Warning,
                Some("credentials expire 2026-12-09T09:59:55Z (in 3 days)".to_owned())
            )
        );
        // The window's edge is inside it; a second later is outside.
        assert_eq!(rule(&fast, expires(7, 0), &t).0, ConnectorStatus::Warning);
        assert_eq!(
            rule(&fast, expires(7, 1), &t),
            (ConnectorStatus::Active, None)
        );
        assert_eq!(
            rule(&fast, expires(30, 0), &t),
            (ConnectorStatus::Active, None)
        );
        // Already expired but still accepted: WARNING, not ERROR.
        assert_eq!(
            rule(&fast, expires(-2, 0), &t),
            (
                ConnectorStatus::Warning,
                Some("credentials expired 2026-12-04T10:00:00Z (2 days ago)".to_owned())
            )
        );
        // A failed test stays ERROR; the note explains it.
        assert_eq!(
            rule(&report(false, None), expires(-2, 0), &t),
            (
                ConnectorStatus::Error,
                Some("credentials expired 2026-12-04T10:00:00Z (2 days ago)".to_owned())
            )
        );
        // Hours, and a scheduled rotation.
        let rotates = Expiry {
            at: now + chrono::Duration::hours(5),
            kind: ExpiryKind::Rotates,
        };
        assert_eq!(
            rule(&fast, rotates, &t).1.as_deref(),
            Some("credentials rotate 2026-12-06T15:00:00Z (in 5 hours)")
        );
        assert_eq!(
            rule(&fast, expires(0, 59 * 60), &t).1.as_deref(),
            Some("credentials expire 2026-12-06T10:59:00Z (in less than an hour)")
        );
        assert_eq!(
            rule(&fast, expires(1, 0), &t).1.as_deref(),
            Some("credentials expire 2026-12-07T10:00:00Z (in 1 day)")
        );
        // A wider window; zero turns the warning off.
        let wide = Thresholds {
            expiry_warning: Duration::from_secs(31 * 86_400),
            ..Default::default()
        };
        assert_eq!(
            rule(&fast, expires(30, 0), &wide).0,
            ConnectorStatus::Warning
        );
        let off = Thresholds {
            expiry_warning: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            rule(&fast, expires(-2, 0), &off),
            (ConnectorStatus::Active, None)
        );
    }
}
