//! Application state and the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::{Body, HttpBody as _};
use axum::extract::{DefaultBodyLimit, FromRequestParts as _, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use matih_connector_core::{EgressPolicy, Registry};
use serde_json::json;
use tower::Service;

use crate::auth::Verifier;
use crate::config::{Config, SecretStoreKind};
use crate::discovery::Jobs;
use crate::error::{AppError, Code};
use crate::metrics::Metrics;
use crate::secrets::aws::{AwsSecretsManagerStore, AwsSmSettings};
use crate::secrets::kubernetes::KubernetesSecretStore;
use crate::secrets::local::{load_or_create_key_file, parse_key, LocalSecretStore};
use crate::secrets::vault::VaultSecretStore;
use crate::secrets::SecretStore;
use crate::store::MetadataStore;

/// Settings the handlers read.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace_prefix: String,
    /// How long create waits for its discovery before answering.
    pub discovery_wait: Duration,
    pub discovery_timeout: Duration,
    /// How long a replica holds a discovery job without renewing it (renewed
    /// at a third of it): a dead replica's job is taken over after it.
    pub discovery_lease: Duration,
    /// Default time between two scheduled re-discoveries of a connector
    /// (zero: none unless the connector sets its own).
    pub discovery_interval: Duration,
    /// Random delay added to each next scheduled re-discovery.
    pub discovery_jitter: Duration,
    /// Discovery jobs the scheduler runs at once per replica.
    pub discovery_concurrency: usize,
    /// The service's public base URL, prefixed to links in notices (the diff
    /// route); unset: links are paths.
    pub public_url: Option<String>,
    /// WARNING latency thresholds, global and per type, and the credential
    /// expiry window: the status rule's input.
    pub thresholds: crate::connection_test::Thresholds,
    pub egress: EgressPolicy,
    pub body_limit_bytes: usize,
    /// Snapshots kept per connector.
    pub snapshots_kept: i64,
    /// Lease of a create's plan-slot reservation (renewed at a third of it).
    pub create_lease: Duration,
    /// Reconciliation removes a secret without a connector only this old.
    pub orphan_secret_min_age: Duration,
    /// Server, request and tenant limits, with the tenants' in-flight counts.
    pub limits: crate::limits::Limits,
    /// The operator's custom connector types (registered in the registry).
    pub custom_types: Vec<matih_connectors::CustomType>,
}

impl Settings {
    pub fn from_config(c: &Config) -> anyhow::Result<Self> {
        Ok(Settings {
            namespace_prefix: c.kube_namespace_prefix.clone(),
            discovery_wait: Duration::from_millis(c.discovery_wait_ms),
            discovery_timeout: Duration::from_secs(c.discovery_timeout_secs.max(1)),
            discovery_lease: Duration::from_secs(c.discovery_lease_secs.max(1)),
            discovery_interval: Duration::from_secs(c.discovery_interval_secs),
            discovery_jitter: Duration::from_secs(c.discovery_jitter_secs),
            discovery_concurrency: c.discovery_concurrency.max(1),
            public_url: c
                .public_url
                .as_deref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            thresholds: crate::connection_test::Thresholds {
                warning_ms: c.warning_latency_ms,
                warning_ms_by_type: c.health.warning_latency_by_type.clone(),
                expiry_warning: Duration::from_secs(
                    c.credential_expiry_warning_days.saturating_mul(86_400),
                ),
            },
            egress: EgressPolicy::with_profile(
                c.egress_profile(),
                &c.egress_allow_only,
                &c.egress_allow,
                &c.egress_deny,
            )
            .map_err(|e| anyhow::anyhow!("egress policy: {e}"))?,
            body_limit_bytes: c.body_limit_bytes,
            snapshots_kept: 10,
            create_lease: Duration::from_secs(c.create_lease_secs.max(1)),
            orphan_secret_min_age: Duration::from_secs(c.orphan_secret_min_age_secs),
            limits: crate::limits::Limits::new(&c.limits),
            custom_types: Vec::new(),
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&Config::default()).expect("defaults are valid")
    }
}

/// What every handler reads, behind one `Arc`: a request clones the state
/// (each middleware and `State` extractor does) for one reference count,
/// not one per part.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Parts>);

/// The parts of [`AppState`], reached through it (`state.store`, …).
#[derive(Debug)]
pub struct Parts {
    pub store: Arc<dyn MetadataStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub registry: Arc<Registry>,
    pub verifier: Arc<Verifier>,
    pub settings: Arc<Settings>,
    pub jobs: Arc<Jobs>,
    pub metrics: Arc<Metrics>,
    /// Names this process in discovery job leases (a random id by default).
    pub replica: Arc<str>,
}

impl std::ops::Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl std::fmt::Debug for dyn MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataStore({})", self.backend())
    }
}

impl std::fmt::Debug for dyn SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretStore({})", self.kind())
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        secrets: Arc<dyn SecretStore>,
        registry: Registry,
        verifier: Verifier,
        settings: Settings,
    ) -> Self {
        AppState(Arc::new(Parts {
            store,
            secrets,
            registry: Arc::new(registry),
            verifier: Arc::new(verifier),
            settings: Arc::new(settings),
            jobs: Arc::new(Jobs::default()),
            metrics: Arc::new(Metrics::new()),
            replica: uuid::Uuid::new_v4().simple().to_string().into(),
        }))
    }

    /// Opens the stores a configuration names, with every compiled driver.
    pub async fn from_config(c: &Config) -> anyhow::Result<Self> {
        matih_connector_core::tls::install_default_provider();
        std::fs::create_dir_all(&c.data_dir)
            .with_context(|| format!("creating {}", c.data_dir.display()))?;
        let store = crate::store::open(&c.database_url()).await?;
        let secrets: Arc<dyn SecretStore> = match c.secret_store {
            SecretStoreKind::Local => {
                let key = match &c.secret_key {
                    Some(k) => parse_key(k.trim()).context("MATIH_SECRET_KEY")?,
                    None => load_or_create_key_file(&c.data_dir.join("secret.key"))?,
                };
                Arc::new(LocalSecretStore::new(c.data_dir.join("secrets"), key)?)
            }
            SecretStoreKind::Kubernetes => Arc::new(
                KubernetesSecretStore::connect(
                    c.kube_api_url.as_deref(),
                    c.kube_token_file.as_deref(),
                )
                .await?,
            ),
            SecretStoreKind::Vault => {
                let store = VaultSecretStore::new(&c.vault_settings()?)?;
                // Fail at start-up, not at the first create, when Vault is
                // unreachable or refuses the credentials.
                store
                    .client()
                    .check()
                    .await
                    .map_err(|e| anyhow::anyhow!("the vault secret store: {e}"))?;
                Arc::new(store)
            }
            SecretStoreKind::AwsSecretsManager => {
                let vars = std::env::vars().collect();
                Arc::new(AwsSecretsManagerStore::new(&AwsSmSettings::from_vars(
                    &vars,
                    &c.kube_namespace_prefix,
                    Duration::from_millis(c.secret_store_timeout_ms.max(1)),
                )?)?)
            }
        };
        let rs256 = match &c.jwt_public_key_file {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            None => None,
        };
        let hs256 = match (&c.jwt_secret, &rs256) {
            (Some(s), _) => Some(s.as_bytes().to_vec()),
            (None, Some(_)) => None,
            (None, None) => Some(crate::auth::load_or_create_hs256_secret(None, &c.data_dir)?),
        };
        let verifier =
            Verifier::new(hs256.as_deref(), rs256.as_deref())?.with_rules(c.token_rules());
        let mut registry = matih_connectors::registry();
        let sources = c.custom_type_sources()?;
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        let custom_types = matih_connectors::install_custom_types(&mut registry, &sources)
            .map_err(|e| anyhow::anyhow!("custom types: {}", e.message()))?;
        let settings = Settings {
            custom_types,
            ..Settings::from_config(c)?
        };
        let state = AppState::new(store, secrets, registry, verifier, settings);
        Ok(state)
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when the metadata store answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let check = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    match check {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "metadataStore": state.store.backend() })),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "code": "NOT_READY", "message": "the metadata store is not answering" })),
        ),
    }
}

async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, Code::RouteNotFound, "no such route")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// The whole HTTP surface: the router, with GET one connector answered
/// before it (see [`App`]).
pub fn app(state: AppState) -> App {
    let layer = crate::layer::RequestLayer::new(&state);
    App {
        router: router(state.clone()),
        state,
        layer,
    }
}

/// Every route under axum's router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.body_limit_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::handler))
        .route("/api/v1/openapi.json", get(crate::openapi::handler))
        // The document rendered by Swagger UI, whose files are compiled into
        // the binary (utoipa-swagger-ui's `vendored` feature): no CDN.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs")
                .config(utoipa_swagger_ui::Config::from("/api/v1/openapi.json")),
        )
        .merge(crate::api::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // One layer (one boxed service per route): the body limit is an
        // extension the body extractors read; the rest is `RequestLayer`.
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::layer::RequestLayer::new(&state))
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// The service: [`router`], except that `GET /api/v1/tenants/<uuid>/connectors/<uuid>`
/// (GET one connector, the hottest route) is answered without it, by the
/// same code under the same [`RequestLayer`](crate::layer::RequestLayer)
/// and route template. Through the router each such request cost about
/// 6,000 instructions more (callgrind; the answer was 26,000 in all): the
/// route match, axum's percent-decoding of both ids into their own
/// `Arc<str>` and their map in the request's extensions, and the three
/// boxed route services cloned per request by `Router::layer`. Any other
/// path, method or id spelling goes to the router, so every answer is the
/// router's (test `get_one_without_the_router_answers_as_the_router`).
#[derive(Clone, Debug)]
pub struct App {
    router: Router,
    state: AppState,
    layer: crate::layer::RequestLayer,
}

impl App {
    /// The router every other request goes to.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// GET one connector, as `get_connector` answers it through the router.
    async fn get_one(
        state: AppState,
        req: Request,
        tenant: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Response, Infallible> {
        let (mut parts, _body) = req.into_parts();
        let answer = match crate::auth::Auth::from_request_parts(&mut parts, &state).await {
            Ok(crate::auth::Auth(claims)) => {
                crate::api::connectors::get_one(&state, &claims, tenant, id).await
            }
            Err(e) => Err(e),
        };
        let mut resp = answer.into_response();
        // What axum's route future adds to every answer of a GET route.
        if !resp.headers().contains_key(CONTENT_LENGTH) {
            if let Some(n) = resp.body().size_hint().exact() {
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        Ok(resp)
    }
}

type GetOne = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<B> Service<axum::http::Request<B>> for App
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> AppFuture {
        if req.method() == Method::GET {
            if let Some((tenant, id)) = crate::api::connectors::get_one_ids(req.uri().path()) {
                let state = self.state.clone();
                let req = req.map(Body::new);
                let fut = self
                    .layer
                    .around(req, crate::api::connectors::GET_ONE_ROUTE, |req| {
                        Box::pin(App::get_one(state, req, tenant, id)) as GetOne
                    });
                return AppFuture::GetOne { fut };
            }
        }
        AppFuture::Router {
            fut: self.router.call(req),
        }
    }
}

/// `axum::serve(listener, app(state))` serves an [`App`] as it serves a router.
impl<L: axum::serve::Listener> Service<axum::serve::IncomingStream<'_, L>> for App {
    type Response = App;
    type Error = Infallible;
    type Future = std::future::Ready<Result<App, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _stream: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(self.clone()))
    }
}

pin_project_lite::pin_project! {
    /// The response of [`App`].
    #[project = AppFutureProj]
    pub enum AppFuture {
        GetOne { #[pin] fut: crate::layer::RequestFuture<GetOne> },
        Router { #[pin] fut: axum::routing::future::RouteFuture<Infallible> },
    }
}

impl std::fmt::Debug for AppFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppFuture")
    }
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AppFutureProj::GetOne { fut } => fut.poll(cx),
            AppFutureProj::Router { fut } => fut.poll(cx),
        }
    }
}
