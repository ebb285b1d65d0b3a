//! Health monitoring settings: the `[health]` table of the configuration file and
//! `MATIH_HEALTH_*` / `MATIH_NOTIFY_*` variables.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

pub const HEALTH_HELP: &str = "\
HEALTH MONITORING ([health] table in the file)
  MATIH_HEALTH_ENABLED               run the scheduler in this process  [true]
  MATIH_HEALTH_INTERVAL_SECS         time between two checks of a connector [900]
  MATIH_HEALTH_CONCURRENCY           checks running at once per replica [64]
  MATIH_HEALTH_CHECK_TIMEOUT_SECS    limit for one check                [30]
  MATIH_HEALTH_JITTER_SECS           random delay added to each next check [60]
  MATIH_HEALTH_POLL_SECS             how often a replica looks for due work [5]
  MATIH_HEALTH_LEASE_SECS            claim lifetime; a dead replica's claims expire
                                     after it [check timeout + 30]
  MATIH_HEALTH_HISTORY_KEPT          checks kept per connector          [672]
  MATIH_HEALTH_WARNING_LATENCY_BY_TYPE  per-type WARNING thresholds, TYPE=ms,…
                                     (others use MATIH_WARNING_LATENCY_MS)
  MATIH_NOTIFY_WEBHOOK_URL           signed webhook for ERROR / recovery notices
  MATIH_NOTIFY_WEBHOOK_SECRET        HMAC-SHA256 key for X-Matih-Signature
  MATIH_NOTIFY_WEBHOOK_CA_FILE       PEM CA certificates an https webhook is verified
                                     against [the public (Mozilla) roots]
  MATIH_NOTIFY_LOG                   also log every notice              [true]
  MATIH_NOTIFY_RETRY_MAX_SECS        longest wait between delivery attempts [300]
";

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub concurrency: usize,
    pub check_timeout_secs: u64,
    pub jitter_secs: u64,
    pub poll_secs: u64,
    pub lease_secs: Option<u64>,
    pub history_kept: i64,
    /// Connector type wire name → WARNING threshold in milliseconds; read
    /// into `Settings::thresholds`, which every test path's status rule uses.
    pub warning_latency_by_type: BTreeMap<String, u64>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub webhook_ca_file: Option<std::path::PathBuf>,
    pub notify_log: bool,
    pub retry_max_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            interval_secs: 900,
            concurrency: 64,
            check_timeout_secs: 30,
            jitter_secs: 60,
            poll_secs: 5,
            lease_secs: None,
            history_kept: 672,
            warning_latency_by_type: BTreeMap::new(),
            webhook_url: None,
            webhook_secret: None,
            webhook_ca_file: None,
            notify_log: true,
            retry_max_secs: 300,
        }
    }
}

impl fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthConfig")
            .field("enabled", &self.enabled)
            .field("interval_secs", &self.interval_secs)
            .field("concurrency", &self.concurrency)
            .field("check_timeout_secs", &self.check_timeout_secs)
            .field("jitter_secs", &self.jitter_secs)
            .field("history_kept", &self.history_kept)
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "***"))
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "***"),
            )
            .field("webhook_ca_file", &self.webhook_ca_file)
            .finish_non_exhaustive()
    }
}

impl HealthConfig {
    /// Applies one `MATIH_` variable (name without the prefix); false when the
    /// name is not a health setting.
    pub fn apply_env(&mut self, name: &str, v: &str) -> anyhow::Result<bool> {
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> anyhow::Result<T> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("MATIH_{k} must be a number, got {v:?}"))
        }
        fn flag(k: &str, v: &str) -> anyhow::Result<bool> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => anyhow::bail!("MATIH_{k} must be true or false, got {v:?}"),
            }
        }
        let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
        match name {
            "HEALTH_ENABLED" => self.enabled = flag(name, v)?,
            "HEALTH_INTERVAL_SECS" => self.interval_secs = num(name, v)?,
            "HEALTH_CONCURRENCY" => self.concurrency = num(name, v)?,
            "HEALTH_CHECK_TIMEOUT_SECS" => self.check_timeout_secs = num(name, v)?,
            "HEALTH_JITTER_SECS" => self.jitter_secs = num(name, v)?,
            "HEALTH_POLL_SECS" => self.poll_secs = num(name, v)?,
            "HEALTH_LEASE_SECS" => self.lease_secs = Some(num(name, v)?),
            "HEALTH_HISTORY_KEPT" => self.history_kept = num(name, v)?,
            "HEALTH_WARNING_LATENCY_BY_TYPE" => {
                self.warning_latency_by_type.clear();
                for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let (ty, ms) = pair.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!("MATIH_{name}: expected TYPE=ms, got {pair:?}")
                    })?;
                    self.warning_latency_by_type
                        .insert(ty.trim().to_ascii_uppercase(), num(name, ms)?);
                }
            }
            "NOTIFY_WEBHOOK_URL" => self.webhook_url = some(v),
            "NOTIFY_WEBHOOK_SECRET" => self.webhook_secret = some(v),
            "NOTIFY_WEBHOOK_CA_FILE" => self.webhook_ca_file = some(v).map(Into::into),
            "NOTIFY_LOG" => self.notify_log = flag(name, v)?,
            "NOTIFY_RETRY_MAX_SECS" => self.retry_max_secs = num(name, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn settings(&self) -> HealthSettings {
        let check_timeout = Duration::from_secs(self.check_timeout_secs.max(1));
        HealthSettings {
            interval: Duration::from_secs(self.interval_secs.max(1)),
            concurrency: self.concurrency.max(1),
            check_timeout,
            jitter: Duration::from_secs(self.jitter_secs),
            poll: Duration::from_secs(self.poll_secs.max(1)),
            lease: self
                .lease_secs
                .map(Duration::from_secs)
                .unwrap_or(check_timeout + Duration::from_secs(30)),
            history_kept: self.history_kept.max(1),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(self.retry_max_secs.max(1)),
            delivery_poll: Duration::from_secs(1),
        }
    }
}

/// What the scheduler and the delivery loop run with (tests build it directly
/// with sub-second durations).
#[derive(Clone, Debug)]
pub struct HealthSettings {
    pub interval: Duration,
    pub concurrency: usize,
    pub check_timeout: Duration,
    pub jitter: Duration,
    pub poll: Duration,
    /// How long a claim holds; must exceed the check timeout.
    pub lease: Duration,
    pub history_kept: i64,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub delivery_poll: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthConfig::default().settings()
    }
}

impl HealthSettings {
    /// Exponential backoff for the `attempts`-th failed delivery, capped.
    pub fn retry_delay(&self, attempts: i64) -> Duration {
        let shift = attempts.clamp(0, 20) as u32;
        self.retry_base
            .saturating_mul(1u32 << shift)
            .min(self.retry_max)
    }
}
