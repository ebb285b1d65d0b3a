//! Prometheus metrics, exposed as text at `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::app::AppState;

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub connector_tests: IntCounterVec,
    pub discovery_jobs: IntCounterVec,
    pub discovery_running: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("matih".into()), None).expect("static prefix is valid");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("static metric");
        let connector_tests = IntCounterVec::new(
            Opts::new(
                "connector_tests_total",
                "Connectivity tests by connector type and outcome (ok or error code)",
            ),
            &["type", "outcome"],
        )
        .expect("static metric");
        let discovery_jobs = IntCounterVec::new(
            Opts::new("discovery_jobs_total", "Finished discovery jobs by outcome"),
            &["outcome"],
        )
        .expect("static metric");
        let discovery_running =
            IntGauge::new("discovery_jobs_running", "Discovery jobs running now")
                .expect("static metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(connector_tests.clone()),
            Box::new(discovery_jobs.clone()),
            Box::new(discovery_running.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            connector_tests,
            discovery_jobs,
            discovery_running,
        }
    }

    /// For modules that bring their own metrics (the health monitor).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Records one answered request under its route template (never the raw
    /// path, which would carry ids and blow up cardinality); called by
    /// [`crate::layer::RequestService`] for every request.
    pub fn observe_http(&self, method: &str, route: &str, status: StatusCode, latency: Duration) {
        self.http_duration
            .with_label_values(&[method, route])
            .observe(latency.as_secs_f64());
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
    }
}

pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}
