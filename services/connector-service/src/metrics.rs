//! Prometheus metrics, exposed as text at `/metrics`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Records every request under its route template (never the raw path, which
/// would carry ids and blow up cardinality).
/// The route and method are cloned, not copied into new strings: a
/// `MatchedPath` is an `Arc<str>` and a standard `Method` is an enum, so the
/// hot path allocates nothing here.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.http_duration
        .with_label_values(&[method.as_str(), route])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[method.as_str(), route, resp.status().as_str()])
        .inc();
    resp
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
