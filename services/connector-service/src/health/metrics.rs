//! The health monitor's Prometheus metrics, registered beside the service's.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone, Debug)]
pub struct HealthMetrics {
    /// By resulting status (ACTIVE, WARNING, ERROR) and error code (`none` on success).
    pub checks: IntCounterVec,
    pub check_latency: HistogramVec,
    pub connectors_by_status: IntGaugeVec,
    /// By outcome: delivered or failed (one failed attempt each).
    pub notifications: IntCounterVec,
}

impl HealthMetrics {
    pub fn new(registry: &Registry) -> Self {
        let checks = IntCounterVec::new(
            Opts::new(
                "health_checks_total",
                "Scheduled health checks by resulting status and error code",
            ),
            &["result", "error_code"],
        )
        .expect("static metric");
        let check_latency = HistogramVec::new(
            HistogramOpts::new(
                "health_check_duration_seconds",
                "Scheduled health check wall time by connector type",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["type"],
        )
        .expect("static metric");
        let connectors_by_status = IntGaugeVec::new(
            Opts::new(
                "connectors_by_status",
                "Connectors per status, counted after each sweep",
            ),
            &["status"],
        )
        .expect("static metric");
        let notifications = IntCounterVec::new(
            Opts::new(
                "health_notifications_total",
                "Notification delivery attempts by outcome",
            ),
            &["outcome"],
        )
        .expect("static metric");
        for c in [
            Box::new(checks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(check_latency.clone()),
            Box::new(connectors_by_status.clone()),
            Box::new(notifications.clone()),
        ] {
            // A second monitor on the same state shares the first one's series.
            let _ = registry.register(c);
        }
        HealthMetrics {
            checks,
            check_latency,
            connectors_by_status,
            notifications,
        }
    }
}
