//! The per-request work every route shares, in one tower service: the
//! request timeout (504 `REQUEST_TIMEOUT`), the HTTP metrics under the route
//! template, and the request's trace span and events. One service instead of
//! a layer each (three `from_fn` middlewares and tower-http's `TraceLayer`
//! used to each clone the service below them, box a future and wrap the
//! response on every request); the future is a plain struct, so this layer
//! allocates nothing per request.
//!
//! Traced as tower-http's `TraceLayer::new_for_http()` did: a DEBUG span
//! `request` (method, uri, version), DEBUG events when the request starts and
//! finishes (latency, status), and an ERROR event `response failed` for a 5xx
//! answer. Disabled levels cost a static check (no span is built).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::{Layer, Service};

use crate::app::AppState;
use crate::metrics::Metrics;

/// Wraps every route (`Router::layer`) in a [`RequestService`].
#[derive(Clone, Debug)]
pub struct RequestLayer {
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl RequestLayer {
    pub fn new(state: &AppState) -> Self {
        RequestLayer {
            metrics: state.metrics.clone(),
            timeout: state.settings.limits.request_timeout,
        }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;
    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService {
            inner,
            metrics: self.metrics.clone(),
            timeout: self.timeout,
        }
    }
}

/// See the [module](self) documentation.
#[derive(Clone, Debug)]
pub struct RequestService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

impl<S> Service<Request> for RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The route template, never the raw path (ids would blow up the
        // metrics' cardinality); `MatchedPath` is an `Arc<str>`.
        let route = match req.extensions().get::<MatchedPath>() {
            Some(m) => RouteName::Matched(m.clone()),
            None => RouteName::Static("unmatched"),
        };
        let inner = &mut self.inner;
        start(&self.metrics, self.timeout, req, route, |req| {
            inner.call(req)
        })
    }
}

impl RequestLayer {
    /// What [`RequestService`] does around `call`, for a route answered
    /// without the router (`crate::app::App`): `route` is its template.
    pub fn around<F: Future>(
        &self,
        req: Request,
        route: &'static str,
        call: impl FnOnce(Request) -> F,
    ) -> RequestFuture<F> {
        start(
            &self.metrics,
            self.timeout,
            req,
            RouteName::Static(route),
            call,
        )
    }
}

fn start<F: Future>(
    metrics: &Arc<Metrics>,
    timeout: Duration,
    req: Request,
    route: RouteName,
    call: impl FnOnce(Request) -> F,
) -> RequestFuture<F> {
    let started = Instant::now();
    let method = req.method().clone();
    let span = tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %req.uri(),
        version = ?req.version(),
    );
    let inner = {
        let _entered = span.enter();
        tracing::debug!("started processing request");
        call(req)
    };
    let deadline = tokio::time::Instant::from_std(started) + timeout;
    RequestFuture {
        inner: tokio::time::timeout_at(deadline, inner),
        done: Some(Done {
            span,
            started,
            route,
            method,
            metrics: metrics.clone(),
            timeout,
        }),
    }
}

/// The route template a request is counted under.
enum RouteName {
    Matched(MatchedPath),
    Static(&'static str),
}

impl RouteName {
    fn as_str(&self) -> &str {
        match self {
            RouteName::Matched(m) => m.as_str(),
            RouteName::Static(s) => s,
        }
    }
}

/// What the future needs once the response is there.
struct Done {
    span: tracing::Span,
    started: Instant,
    route: RouteName,
    method: Method,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

pin_project_lite::pin_project! {
    /// The response of [`RequestService`].
    pub struct RequestFuture<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        done: Option<Done>,
    }
}

impl<F> std::fmt::Debug for RequestFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestFuture")
    }
}

impl<F> Future for RequestFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.done.as_ref().map(|d| d.span.enter());
        let answered = ready!(this.inner.poll(cx));
        drop(_entered);
        let done = this
            .done
            .take()
            .expect("RequestFuture polled after completion");
        let resp = match answered {
            Ok(Ok(resp)) => resp,
            Ok(Err(never)) => match never {},
            Err(_elapsed) => crate::limits::timed_out(done.timeout),
        };
        let latency = done.started.elapsed();
        done.metrics
            .observe_http(&done.method, done.route.as_str(), resp.status(), latency);
        let _entered = done.span.enter();
        let status = resp.status();
        tracing::debug!(
            latency_ms = latency.as_secs_f64() * 1000.0,
            status = status.as_u16(),
            "finished processing request"
        );
        if status.is_server_error() {
            tracing::error!(
                classification = %format_args!("Status code: {status}"),
                latency_ms = latency.as_secs_f64() * 1000.0,
                "response failed"
            );
        }
        Poll::Ready(Ok(resp))
    }
}
