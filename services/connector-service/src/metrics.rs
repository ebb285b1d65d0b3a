//! Prometheus metrics, exposed as text at `/metrics`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::app::AppState;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub connector_tests: IntCounterVec,
    pub discovery_jobs: IntCounterVec,
    pub discovery_running: IntGauge,
    /// The two HTTP metric handles of each route template, method and
    /// status, resolved on the first such request (see
    /// [`Metrics::observe_http`]).
    http_handles: RwLock<HashMap<Box<str>, Vec<HttpHandles>, foldhash::fast::RandomState>>,
}

/// One route template's handles for one method and status.
#[derive(Debug)]
struct HttpHandles {
    method: Method,
    status: StatusCode,
    duration: Histogram,
    requests: IntCounter,
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
            http_handles: Default::default(),
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
    ///
    /// The label lookups (`with_label_values` hashes every label's bytes and
    /// looks the hash up, twice per request) are done once per route
    /// template, method and status; later requests find the two handles in a
    /// map keyed by the template, whose few methods and statuses are scanned.
    /// Route templates are a fixed set, so the map is bounded.
    pub fn observe_http(
        &self,
        method: &Method,
        route: &str,
        status: StatusCode,
        latency: Duration,
    ) {
        let seconds = latency.as_secs_f64();
        let found = |h: &HttpHandles| h.method == method && h.status == status;
        if let Some(by_route) = self
            .http_handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
        {
            if let Some(h) = by_route.iter().find(|h| found(h)) {
                h.duration.observe(seconds);
                h.requests.inc();
                return;
            }
        }
        let h = HttpHandles {
            method: method.clone(),
            status,
            duration: self
                .http_duration
                .with_label_values(&[method.as_str(), route]),
            requests: self.http_requests.with_label_values(&[
                method.as_str(),
                route,
                status.as_str(),
            ]),
        };
        h.duration.observe(seconds);
        h.requests.inc();
        let mut map = self.http_handles.write().unwrap_or_else(|p| p.into_inner());
        let by_route = map.entry(route.into()).or_default();
        if !by_route.iter().any(found) {
            by_route.push(h);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Counted through the resolved handles exactly as through the labels.
    #[test]
    fn http_metrics_count_per_method_route_and_status() {
        let m = Metrics::new();
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            m.observe_http(&Method::GET, "/a/{id}", StatusCode::OK, ms);
        }
        m.observe_http(&Method::GET, "/a/{id}", StatusCode::NOT_FOUND, ms);
        m.observe_http(&Method::PUT, "/a/{id}", StatusCode::OK, ms);
        m.observe_http(&Method::GET, "unmatched", StatusCode::NOT_FOUND, ms);
        let text = m.render();
        for (line, n) in [
            (
                r#"matih_http_requests_total{method="GET",route="/a/{id}",status="200"}"#,
                3,
            ),
            (
                r#"matih_http_requests_total{method="GET",route="/a/{id}",status="404"}"#,
                1,
            ),
            (
                r#"matih_http_requests_total{method="PUT",route="/a/{id}",status="200"}"#,
                1,
            ),
            (
                r#"matih_http_requests_total{method="GET",route="unmatched",status="404"}"#,
                1,
            ),
            (
                r#"matih_http_request_duration_seconds_count{method="GET",route="/a/{id}"}"#,
                4,
            ),
            (
                r#"matih_http_request_duration_seconds_count{method="PUT",route="/a/{id}"}"#,
                1,
            ),
        ] {
            assert!(
                text.contains(&format!("{line} {n}\n")),
                "{line} {n}\n{text}"
            );
        }
        assert_eq!(
            m.http_handles.read().unwrap()["/a/{id}"].len(),
            3,
            "one entry per method and status"
        );
    }
}
