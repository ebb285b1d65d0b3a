//! The service's bounds on what a client or a tenant can hold: HTTP server
//! timeouts and connection cap (applied by [`crate::server`]), the request
//! timeout, the cap on a tenant's in-flight calls that open connections
//! (test, discover, create, update, credentials) and the caps on
//! tenant-chosen timeouts. One module, so every limit and its error code is
//! found here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use matih_connector_core::Timeouts;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{AppError, Code};

/// The `--help` text for the limits; kept beside the code it documents.
pub const LIMITS_HELP: &str = "\
LIMITS (file: the [limits] table, keys in lower case without MATIH_)
  MATIH_HTTP_HEADER_TIMEOUT_SECS  time to send a request's headers; slower clients are cut [10]
  MATIH_HTTP_REQUEST_TIMEOUT_SECS time to answer a request; then 504 REQUEST_TIMEOUT   [120]
  MATIH_HTTP_IDLE_TIMEOUT_SECS    an idle keep-alive connection is closed after this    [75]
  MATIH_HTTP_MAX_CONNECTIONS      open client connections; more wait in the backlog      [1024]
  MATIH_TENANT_MAX_IN_FLIGHT      a tenant's concurrent test/discover/create/update/credentials
                                  calls; more answer 429 CONCURRENCY_LIMIT_EXCEEDED     [8]
  MATIH_MAX_CONNECT_TIMEOUT_MS    largest timeouts.connectMs a connector may set; above: 400 [60000]
  MATIH_MAX_QUERY_TIMEOUT_MS      largest timeouts.queryMs a connector may set; above: 400   [600000]
";

/// The configured limits (the `[limits]` table and `MATIH_HTTP_*`,
/// `MATIH_TENANT_MAX_IN_FLIGHT`, `MATIH_MAX_*_TIMEOUT_MS`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub http_header_timeout_secs: u64,
    pub http_request_timeout_secs: u64,
    pub http_idle_timeout_secs: u64,
    pub http_max_connections: usize,
    pub tenant_max_in_flight: usize,
    pub max_connect_timeout_ms: u64,
    pub max_query_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            http_header_timeout_secs: 10,
            http_request_timeout_secs: 120,
            http_idle_timeout_secs: 75,
            http_max_connections: 1024,
            tenant_max_in_flight: 8,
            max_connect_timeout_ms: 60_000,
            max_query_timeout_ms: 600_000,
        }
    }
}

impl LimitsConfig {
    /// Applies one `MATIH_` variable (name without the prefix); false when
    /// the name is not one of ours.
    pub fn apply_env(&mut self, name: &str, v: &str) -> anyhow::Result<bool> {
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> anyhow::Result<T> {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("MATIH_{k} must be a number, got {v:?}"))
        }
        match name {
            "HTTP_HEADER_TIMEOUT_SECS" => self.http_header_timeout_secs = num(name, v)?,
            "HTTP_REQUEST_TIMEOUT_SECS" => self.http_request_timeout_secs = num(name, v)?,
            "HTTP_IDLE_TIMEOUT_SECS" => self.http_idle_timeout_secs = num(name, v)?,
            "HTTP_MAX_CONNECTIONS" => self.http_max_connections = num(name, v)?,
            "TENANT_MAX_IN_FLIGHT" => self.tenant_max_in_flight = num(name, v)?,
            "MAX_CONNECT_TIMEOUT_MS" => self.max_connect_timeout_ms = num(name, v)?,
            "MAX_QUERY_TIMEOUT_MS" => self.max_query_timeout_ms = num(name, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The limits in force, with the per-tenant in-flight counts.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub tenant_max_in_flight: usize,
    pub max_connect_ms: u64,
    pub max_query_ms: u64,
    in_flight: Arc<Mutex<HashMap<Uuid, usize>>>,
    released: Arc<tokio::sync::Notify>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(&LimitsConfig::default())
    }
}

impl Limits {
    pub fn new(c: &LimitsConfig) -> Self {
        Limits {
            header_timeout: Duration::from_secs(c.http_header_timeout_secs.max(1)),
            request_timeout: Duration::from_secs(c.http_request_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(c.http_idle_timeout_secs.max(1)),
            max_connections: c.http_max_connections.max(1),
            tenant_max_in_flight: c.tenant_max_in_flight.max(1),
            max_connect_ms: c.max_connect_timeout_ms,
            max_query_ms: c.max_query_timeout_ms,
            in_flight: Arc::default(),
            released: Arc::default(),
        }
    }

    /// Refuses timeouts above the caps: 400 `TIMEOUT_LIMIT_EXCEEDED`, naming
    /// the field and its maximum.
    pub fn check_timeouts(&self, t: &Timeouts) -> Result<(), AppError> {
        for (field, value, max) in [
            ("timeouts.connectMs", t.connect_ms, self.max_connect_ms),
            ("timeouts.queryMs", t.query_ms, self.max_query_ms),
        ] {
            if value > max {
                return Err(AppError::bad_request(
                    Code::TimeoutLimitExceeded,
                    format!("{field} is {value}; this service allows at most {max}"),
                )
                .with_details(serde_json::json!({"field": field, "max": max})));
            }
        }
        Ok(())
    }

    /// Timeouts cut down to the caps, for connectors stored before the caps
    /// (or under higher ones).
    pub fn clamp(&self, t: Timeouts) -> Timeouts {
        Timeouts {
            connect_ms: t.connect_ms.min(self.max_connect_ms),
            query_ms: t.query_ms.min(self.max_query_ms),
        }
    }

    /// Takes one of the tenant's in-flight places, or answers 429
    /// `CONCURRENCY_LIMIT_EXCEEDED`. The place is given back when the permit
    /// drops, including when the client goes away and the handler is dropped.
    pub fn acquire(&self, tenant: Uuid) -> Result<InFlight, AppError> {
        let mut map = self.in_flight.lock().expect("in-flight map");
        let n = map.entry(tenant).or_insert(0);
        if *n >= self.tenant_max_in_flight {
            let max = self.tenant_max_in_flight;
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Code::ConcurrencyLimitExceeded,
                format!("the tenant already has {max} test, discover or create calls in flight; retry when one has finished"),
            )
            .with_details(serde_json::json!({"limit": max})));
        }
        *n += 1;
        Ok(InFlight {
            tenant,
            map: self.in_flight.clone(),
            released: self.released.clone(),
        })
    }

    /// The tenant's calls in flight now.
    pub fn in_flight(&self, tenant: Uuid) -> usize {
        let map = self.in_flight.lock().expect("in-flight map");
        map.get(&tenant).copied().unwrap_or(0)
    }

    /// Waits (at most `within`) until the tenant has at most `n` calls in
    /// flight; true when it has.
    pub async fn wait_in_flight_at_most(&self, tenant: Uuid, n: usize, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                let released = self.released.notified();
                if self.in_flight(tenant) <= n {
                    return;
                }
                released.await;
            }
        })
        .await
        .is_ok()
    }
}

/// One in-flight place of a tenant; given back on drop.
#[derive(Debug)]
pub struct InFlight {
    tenant: Uuid,
    map: Arc<Mutex<HashMap<Uuid, usize>>>,
    released: Arc<tokio::sync::Notify>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
        drop(map);
        self.released.notify_waiters();
    }
}

/// The answer to a request that ran past the request timeout: 504
/// `REQUEST_TIMEOUT`. [`crate::layer::RequestService`] enforces the timeout;
/// the handler is dropped (cancelled) at that moment.
pub fn timed_out(limit: Duration) -> Response {
    AppError::new(
        StatusCode::GATEWAY_TIMEOUT,
        Code::RequestTimeout,
        format!(
            "the request did not finish within {} s",
            limit.as_secs_f64()
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_in_flight_places() {
        let mut c = LimitsConfig::default();
        assert!(c.apply_env("TENANT_MAX_IN_FLIGHT", "2").unwrap());
        assert!(c.apply_env("MAX_CONNECT_TIMEOUT_MS", "1000").unwrap());
        assert!(!c.apply_env("LISTEN", "x").unwrap());
        assert!(c.apply_env("HTTP_MAX_CONNECTIONS", "many").is_err());
        let l = Limits::new(&c);
        let over = Timeouts {
            connect_ms: 1001,
            query_ms: 1,
        };
        let e = l.check_timeouts(&over).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (400, "TIMEOUT_LIMIT_EXCEEDED")
        );
        assert_eq!(l.clamp(over).connect_ms, 1000);
        l.check_timeouts(&Timeouts::default()).unwrap_err(); // 10 s > 1 s
        let t = Uuid::new_v4();
        let a = l.acquire(t).unwrap();
        let _b = l.acquire(t).unwrap();
        let e = l.acquire(t).unwrap_err();
        assert_eq!(e.status.as_u16(), 429);
        l.acquire(Uuid::new_v4()).unwrap();
        drop(a);
        assert_eq!(l.in_flight(t), 1);
        l.acquire(t).unwrap();
    }
}
