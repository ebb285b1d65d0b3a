//! The seed's connector routes: list, get, create, update, delete, test and
//! credentials.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::Utc;
use matih_connector_core::{
    ConnectionConfig, ConnectorSpec, Credentials, ErrorCode, SslMode, TestReport, Timeouts,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Auth, Claims};
use crate::connection_test::{self, Tested};
use crate::discovery;
use crate::error::{ApiPath, AppError, Code, LaterJson};
use crate::limits::InFlight;
use crate::model::{ts, Connector, ConnectorStatus, DiscoveryState, Tenant};
use crate::secrets::{SecretError, SecretRef};
use crate::slots::Held;
use crate::store::ConnectorsJson;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tenant_id}/connectors",
            get(list_connectors).post(create_connector),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}",
            get(get_connector)
                .put(update_connector)
                .delete(delete_connector),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/test",
            post(test_connector),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/credentials",
            put(update_credentials),
        )
}

/// A connectivity test's result as the seed shows it, plus the steps.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    pub connector_id: Uuid,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub report: TestReport,
}

/// The list route's answer (written by `list_connectors` around the store's
/// serialized array; this type gives its shape to the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorList {
    pub connectors: Vec<Connector>,
    pub total: usize,
    /// Creates of the tenant still running (their plan slots are taken; their
    /// connectors are listed with status TESTING once written).
    pub creates_in_flight: usize,
}

/// The answer of create, update and credential update: the connector, the
/// test the call ran (absent only when an update disabled the connector,
/// which runs none), and the discovery it started.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorWithTest {
    #[serde(flatten)]
    pub connector: Connector,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas_discovered: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables_discovered: Option<i64>,
    /// The discovery this call started: RUNNING, SUCCEEDED, FAILED, or
    /// NOT_STARTED when the test failed; absent when none was started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_status: Option<DiscoveryState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_job_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_result: Option<TestResult>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateConnector {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: Option<String>,
    pub host: Option<String>,
    #[schema(minimum = 1, maximum = 65535)]
    pub port: Option<u16>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub ssl_enabled: Option<bool>,
    pub ssl_mode: Option<SslMode>,
    pub ssl_ca_pem: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<BTreeMap<String, serde_json::Value>>,
    pub timeouts: Option<Timeouts>,
    /// INACTIVE disables the connector; ACTIVE re-enables it after a passing test.
    pub status: Option<ConnectorStatus>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCredentials {
    #[schema(value_type = BTreeMap<String, String>)]
    pub credentials: Credentials,
}

impl std::fmt::Debug for UpdateCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateCredentials")
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The tenant, after checking the caller may act in it (404 otherwise).
pub async fn tenant_for(
    state: &AppState,
    claims: &Claims,
    tenant_id: Uuid,
) -> Result<Tenant, AppError> {
    claims.require_tenant(tenant_id)?;
    state
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or_else(|| AppError::not_found("tenant"))
}

/// The connector, after checking the caller may act in its tenant: one indexed
/// read, and another tenant's connector is simply not found.
pub async fn connector_for(
    state: &AppState,
    claims: &Claims,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Connector, AppError> {
    claims.require_tenant(tenant_id)?;
    connector_of(state, tenant_id, id).await
}

/// The tenant's connector or 404, for a handler that has authorized the
/// caller already (`tenant_for`).
pub async fn connector_of(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Connector, AppError> {
    state
        .store
        .get_connector(tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("connector"))
}

fn validate_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            Code::Connector(ErrorCode::InvalidConfiguration),
            "name must be 1-200 characters without control characters",
        )
        .with_details(serde_json::json!({"field": "name"})));
    }
    Ok(())
}

/// Runs `f` to completion even if the client goes away, so multi-step writes
/// (secret, row, slot) are never cut in half by a dropped connection.
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, AppError>> + Send + 'static,
) -> Result<T, AppError> {
    tokio::spawn(f).await.map_err(AppError::internal)?
}

/// The content type of the bodies written here rather than by `Json`.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// List a tenant's connectors.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors", tag = "connectors",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = ConnectorList), (status = 401, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_connectors(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath(tenant_id): ApiPath<Uuid>,
) -> Result<Response, AppError> {
    claims.require_tenant(tenant_id)?;
    let list = state.store.list_connectors_json(tenant_id).await?;
    if list.count == 0 && state.store.get_tenant(tenant_id).await?.is_none() {
        return Err(AppError::not_found("tenant"));
    }
    let now = ts(Utc::now());
    let creates_in_flight = state.store.reserved_secrets(tenant_id, &now).await?.len();
    Ok((
        [(CONTENT_TYPE, APPLICATION_JSON)],
        Body::new(list_body(&list, creates_in_flight)),
    )
        .into_response())
}

/// A `ConnectorList`, written around the store's serialized array (kept
/// between writes by the cached store) instead of serializing every
/// connector again. The array is sent as the store holds it, not copied:
/// the body is three frames (the head, the shared array, the tail) of an
/// exact total length, so the response keeps its `Content-Length`.
fn list_body(list: &ConnectorsJson, creates_in_flight: usize) -> ListBody {
    let tail = format!(
        r#","total":{},"createsInFlight":{creates_in_flight}}}"#,
        list.count
    );
    ListBody::new([
        Bytes::from_static(br#"{"connectors":"#),
        Bytes::from_owner(list.json.clone()),
        Bytes::from(tail),
    ])
}

/// A body of a few shared chunks with an exact length.
struct ListBody {
    chunks: std::array::IntoIter<Bytes, 3>,
    remaining: u64,
}

impl ListBody {
    fn new(chunks: [Bytes; 3]) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ListBody {
            chunks: chunks.into_iter(),
            remaining,
        }
    }
}

impl hyper::body::Body for ListBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.find(|c| !c.is_empty());
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(next.map(|c| Ok(hyper::body::Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// Get a connector's details.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 200, body = Connector), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_connector(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, AppError> {
    get_one(&state, &claims, tenant_id, id).await
}

/// The route template of [`get_connector`], which `crate::app::App`
/// answers without the router ([`get_one_ids`]).
pub(crate) const GET_ONE_ROUTE: &str = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}";

/// The tenant and connector ids of a path that the router would send to
/// [`get_connector`] with both ids valid: `/api/v1/tenants/<uuid>/connectors/<uuid>`,
/// each id in its 36-character hyphenated form (which has nothing to
/// percent-decode). Any other path, even one the router sends there, is
/// `None` and left to the router.
pub(crate) fn get_one_ids(path: &str) -> Option<(Uuid, Uuid)> {
    let rest = path.strip_prefix("/api/v1/tenants/")?;
    let (tenant, rest) = (rest.get(..36)?, rest.get(36..)?);
    let id = rest.strip_prefix("/connectors/")?;
    if id.len() != 36 {
        return None;
    }
    Some((Uuid::try_parse(tenant).ok()?, Uuid::try_parse(id).ok()?))
}

/// [`get_connector`] once its caller and ids are known.
pub(crate) async fn get_one(
    state: &AppState,
    claims: &Claims,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Response, AppError> {
    claims.require_tenant(tenant_id)?;
    // The connector's JSON as the cached store keeps it: no copy of the
    // connector and no serialization per request.
    let json = state
        .store
        .get_connector_json(tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("connector"))?;
    Ok(([(CONTENT_TYPE, APPLICATION_JSON)], json).into_response())
}

/// Create a connector: validate → plan limit → secret → test → save → discovery.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/connectors", tag = "connectors",
    params(("tenant_id" = Uuid, Path)), request_body = ConnectorSpec,
    responses((status = 201, body = ConnectorWithTest), (status = 400, body = crate::api::ErrorBody),
        (status = 403, description = "plan limit or a type outside the plan", body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_connector(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath(tenant_id): ApiPath<Uuid>,
    body: LaterJson,
) -> Result<(StatusCode, Json<ConnectorWithTest>), AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let spec: ConnectorSpec = body.parse().await?;
    create(state, tenant, spec)
        .await
        .map(|r| (StatusCode::CREATED, Json(r)))
}

/// Every write runs detached (a dropped connection never cuts one in half);
/// the connectivity test does not: when the client goes away (or the request
/// times out) during the test, the test is dropped and [`UndoCreate`]
/// removes the TESTING row, the secret and the reservation (the slot).
async fn create(
    state: AppState,
    tenant: Tenant,
    spec: ConnectorSpec,
) -> Result<ConnectorWithTest, AppError> {
    // The writes run detached; if the request is dropped before it takes
    // their result, the task undoes them itself.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (st, t) = (state.clone(), tenant.clone());
    tokio::spawn(async move {
        if let Err(Ok(p)) = tx.send(prepare(st.clone(), t, spec).await) {
            undo_create(&st, p.c.tenant_id, p.c.id, &p.secret, p.held).await;
            tracing::info!(tenant = %p.c.tenant_id, connector = %p.c.id,
                "create cancelled before its test (client gone or request timeout); row, secret and slot removed");
        }
    });
    let Prepared {
        c,
        secret,
        target,
        held,
        place: _place,
    } = rx.await.map_err(AppError::internal)??;
    let mut undo = UndoCreate {
        state: state.clone(),
        tenant: tenant.id,
        connector: c.id,
        armed: Some((secret, held)),
    };
    // 4. Test (cancellable); the reservation is renewed meanwhile.
    let tested = connection_test::test_with(&state, &target).await;
    let (secret, held) = undo.armed.take().expect("armed");
    detached(finish(state, tenant, c, secret, held, tested)).await
}

/// Removes an in-flight create whose request was dropped during the test.
struct UndoCreate {
    state: AppState,
    tenant: Uuid,
    connector: Uuid,
    /// `Some` while armed.
    armed: Option<(SecretRef, Held)>,
}

impl Drop for UndoCreate {
    fn drop(&mut self) {
        let Some((secret, held)) = self.armed.take() else {
            return;
        };
        let (state, tenant, id) = (self.state.clone(), self.tenant, self.connector);
        tokio::spawn(async move {
            undo_create(&state, tenant, id, &secret, held).await;
            tracing::info!(tenant = %tenant, connector = %id,
                "create cancelled during its test (client gone or request timeout); row, secret and slot removed");
        });
    }
}

/// Deletes a create's secret, then its TESTING row, then releases its
/// reservation (which recounts the slot). Whatever fails here is repaired by
/// reconciliation once the reservation's lease ends: it deletes the row the
/// reservation names and the secret.
async fn undo_create(state: &AppState, tenant: Uuid, id: Uuid, secret: &SecretRef, held: Held) {
    if let Err(e) = state.secrets.delete(secret).await {
        tracing::error!(secret = %secret.name, namespace = %secret.namespace, error = %e,
            "could not remove the secret of an undone create; the reconciler will find it");
    }
    match state.store.delete_connector(tenant, id).await {
        Ok(_) => held.release().await,
        Err(e) => {
            // The reservation is left to expire, so reconciliation deletes the
            // row it names.
            tracing::error!(tenant = %tenant, connector = %id, error = %e,
                "could not remove the row of an undone create; the reconciler will once its reservation's lease ends");
        }
    }
}

/// What `prepare` hands to the test and to `finish`.
struct Prepared {
    c: Connector,
    secret: SecretRef,
    /// The configuration, checked and parsed once for the whole create.
    target: connection_test::Target,
    held: Held,
    place: InFlight,
}

/// Validates, takes a plan slot and one of the tenant's in-flight places
/// (after the slot, so a full plan answers 403 before a busy tenant answers
/// 429), writes the secret and the TESTING row.
async fn prepare(
    state: AppState,
    tenant: Tenant,
    spec: ConnectorSpec,
) -> Result<Prepared, AppError> {
    // 1. Validate: plan type, driver, configuration, name.
    let tier = tenant.tier;
    let ty = spec.connector_type.clone();
    if !tier.allows(&ty) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            Code::PlanTypeNotAllowed,
            format!(
                "the {} plan allows {} connectors; {} is not included",
                tier.as_str(),
                tier.types_description(),
                ty
            ),
        ));
    }
    let driver = connection_test::driver_for(&state, &ty)?;
    let name = spec.name.clone().unwrap_or_default();
    validate_name(&name)?;
    let cfg = spec.config();
    let target = connection_test::validate(&state, &driver, &cfg, &spec.credentials)?;
    state.settings.limits.check_timeouts(&cfg.timeouts)?;
    if state
        .store
        .connector_name_taken(tenant.id, name.trim())
        .await?
    {
        return Err(AppError::conflict(
            "a connector with this name already exists in the tenant",
        ));
    }

    // 2. Plan limit: a slot taken atomically, given back on any later failure
    // (or, if this process dies, when its reservation's lease ends).
    let Some(held) = crate::slots::reserve(&state, tenant.id, tier.max_connectors()).await? else {
        let limit = tier.max_connectors().unwrap_or_default();
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            Code::PlanLimitExceeded,
            format!("the {} plan allows at most {limit} connectors; upgrade the plan or delete a connector", tier.as_str()),
        )
        .with_details(serde_json::json!({"tier": tier.as_str(), "limit": limit})));
    };

    let place = match state.settings.limits.acquire(tenant.id) {
        Ok(place) => place,
        Err(e) => {
            held.release().await;
            return Err(e);
        }
    };
    match create_after_reservation(&state, &tenant, &spec, name.trim().to_owned(), &cfg, &held)
        .await
    {
        Ok((c, secret)) => Ok(Prepared {
            c,
            secret,
            target,
            held,
            place,
        }),
        Err(e) => {
            held.release().await;
            Err(e)
        }
    }
}

/// Steps 3 and the early row: the secret, then the TESTING row written in the
/// reservation's name (`Held::save`), so an in-flight create is visible; if
/// the row fails the secret goes.
async fn create_after_reservation(
    state: &AppState,
    tenant: &Tenant,
    spec: &ConnectorSpec,
    name: String,
    cfg: &ConnectionConfig,
    held: &Held,
) -> Result<(Connector, SecretRef), AppError> {
    // 3. The secret, in the tenant's namespace. The name holds 8 hex digits of
    // the id; on the rare clash, draw another id.
    let mut id = Uuid::new_v4();
    let mut secret = SecretRef::new(
        &state.settings.namespace_prefix,
        &tenant.slug,
        id,
        &spec.connector_type,
    );
    let mut attempts = 0;
    loop {
        held.name_secret(&secret.namespace, &secret.name).await?;
        match state.secrets.create(&secret, &spec.credentials).await {
            Ok(()) => break,
            Err(SecretError::AlreadyExists(_)) if attempts < 3 => {
                attempts += 1;
                id = Uuid::new_v4();
                secret = SecretRef::new(
                    &state.settings.namespace_prefix,
                    &tenant.slug,
                    id,
                    &spec.connector_type,
                );
            }
            Err(e) => return Err(e.into()),
        }
    }

    let now = ts(Utc::now());
    let c = Connector {
        id,
        tenant_id: tenant.id,
        name,
        connector_type: spec.connector_type.clone(),
        host: cfg.host.clone(),
        port: cfg.port,
        database: cfg.database.clone(),
        schema: cfg.schema.clone(),
        credential_secret_name: secret.name.clone(),
        ssl_enabled: cfg.ssl_mode().map(|m| m.is_tls()).unwrap_or(false),
        ssl_mode: cfg.ssl_mode().ok(),
        ssl_ca_pem: cfg.ssl_ca_pem.clone(),
        status: ConnectorStatus::Testing,
        last_tested_at: None,
        last_test_result: None,
        last_error_code: None,
        metadata: cfg.metadata.clone(),
        timeouts: cfg.timeouts,
        created_at: now.clone(),
        updated_at: now,
    };
    if let Err(e) = held.save(&c).await {
        if let Err(se) = state.secrets.delete(&secret).await {
            tracing::error!(secret = %secret.name, namespace = %secret.namespace, error = %se,
                "could not remove the secret of a failed create; the reconciler will find it");
        }
        return Err(e);
    }
    Ok((c, secret))
}

/// Saves the test's outcome and ends the reservation (step 5), then starts
/// discovery (step 6). A test refused by the egress policy undoes the create:
/// 403 `EGRESS_DENIED`.
async fn finish(
    state: AppState,
    tenant: Tenant,
    mut c: Connector,
    secret: SecretRef,
    held: Held,
    tested: Tested,
) -> Result<ConnectorWithTest, AppError> {
    let state = &state;
    tested.apply_to(&mut c);
    let report = tested.report;
    if let Some((step, ErrorCode::EgressDenied)) = report.failure() {
        undo_create(state, tenant.id, c.id, &secret, held).await;
        let result = TestResult {
            connector_id: c.id,
            report,
        };
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            Code::Connector(ErrorCode::EgressDenied),
            format!(
                "the connector's address is not allowed by the egress policy: {}",
                result.report.message
            ),
        )
        .with_details(serde_json::json!({"step": step.as_str(), "testResult": result})));
    }
    if let Err(e) = held.finish(&c).await {
        // The reservation or the row is gone (its lease ended and a
        // reconciliation removed both, or the row was deleted meanwhile).
        undo_create(state, tenant.id, c.id, &secret, held).await;
        return Err(e);
    }
    drop(held);
    tracing::info!(tenant = %tenant.id, connector = %c.id, r#type = %c.connector_type, status = %c.status, "connector created");

    // 6. Discovery, waited for briefly.
    let tested_ok = report.success;
    let mut out = ConnectorWithTest {
        test_result: Some(TestResult {
            connector_id: c.id,
            report,
        }),
        schemas_discovered: None,
        tables_discovered: None,
        discovery_status: Some(DiscoveryState::NotStarted),
        discovery_job_id: None,
        connector: c,
    };
    if tested_ok {
        // The connector is saved: a store that cannot start the job leaves
        // discovery NOT_STARTED (the schedule or a request starts it later).
        match discovery::start(state, &out.connector, Default::default()).await {
            Ok(started) => {
                out.discovery_job_id = Some(started.job.id);
                out.discovery_status = Some(DiscoveryState::Running);
                if let Some(job) = started.wait(state.settings.discovery_wait).await {
                    out.discovery_status = Some(job.status.into());
                    out.schemas_discovered = job.schemas_discovered;
                    out.tables_discovered = job.tables_discovered;
                }
            }
            Err(e) => {
                tracing::warn!(connector = %out.connector.id, error = %e, "could not start discovery")
            }
        }
    }
    Ok(out)
}

/// Update a connector; re-tests it unless it is being disabled.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)), request_body = UpdateConnector,
    responses((status = 200, body = ConnectorWithTest), (status = 400, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_connector(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    body: LaterJson,
) -> Result<Json<ConnectorWithTest>, AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let body: UpdateConnector = body.parse().await?;
    let _place = state.settings.limits.acquire(tenant.id)?;
    if let Some(t) = &body.timeouts {
        state.settings.limits.check_timeouts(t)?;
    }
    let mut c = connector_of(&state, tenant_id, id).await?;
    if let Some(name) = &body.name {
        validate_name(name)?;
        c.name = name.trim().to_owned();
    }
    if body.host.is_some() {
        c.host = body.host;
    }
    if body.port.is_some() {
        c.port = body.port;
    }
    if body.database.is_some() {
        c.database = body.database;
    }
    if body.schema.is_some() {
        c.schema = body.schema;
    }
    if body.ssl_ca_pem.is_some() {
        c.ssl_ca_pem = body.ssl_ca_pem;
    }
    if let Some(m) = body.metadata {
        c.metadata = m;
    }
    if let Some(t) = body.timeouts {
        c.timeouts = t;
    }
    if body.ssl_enabled.is_some() || body.ssl_mode.is_some() {
        let probe = ConnectionConfig {
            ssl_enabled: body.ssl_enabled,
            ssl_mode: body.ssl_mode,
            ..Default::default()
        };
        let mode = probe.ssl_mode()?;
        c.ssl_mode = Some(mode);
        c.ssl_enabled = mode.is_tls();
    }
    let driver = connection_test::driver_for(&state, &c.connector_type)?;
    c.updated_at = ts(Utc::now());
    match body.status {
        Some(ConnectorStatus::Inactive) => {
            matih_connector_core::check_config(&*driver, &c.config())?;
            c.status = ConnectorStatus::Inactive;
            if !state.store.update_connector(&c).await? {
                return Err(AppError::not_found("connector"));
            }
            discovery::cancel(&state, c.id, "the connector was disabled").await;
            return Ok(Json(ConnectorWithTest {
                connector: c,
                schemas_discovered: None,
                tables_discovered: None,
                discovery_status: None,
                discovery_job_id: None,
                test_result: None,
            }));
        }
        Some(ConnectorStatus::Active) | None => {}
        Some(other) => {
            return Err(AppError::bad_request(
                Code::InvalidRequest,
                format!("status can be set to ACTIVE or INACTIVE, not {other}"),
            )
            .with_details(serde_json::json!({"field": "status"})))
        }
    }
    if body.status == Some(ConnectorStatus::Active) {
        c.status = ConnectorStatus::Testing;
    }
    let creds = connection_test::stored_credentials(&state, &tenant, &c).await?;
    let cfg = c.config();
    let target = connection_test::validate(&state, &driver, &cfg, &creds)?;
    let tested = connection_test::test_with(&state, &target).await;
    tested.apply_to(&mut c);
    let report = tested.report;
    if !state.store.update_connector(&c).await? {
        return Err(AppError::not_found("connector"));
    }
    let tested_ok = report.success;
    let mut out = ConnectorWithTest {
        test_result: Some(TestResult {
            connector_id: c.id,
            report,
        }),
        schemas_discovered: None,
        tables_discovered: None,
        discovery_status: None,
        discovery_job_id: None,
        connector: c,
    };
    if tested_ok && out.connector.status != ConnectorStatus::Inactive {
        let started = discovery::start(&state, &out.connector, Default::default()).await?;
        out.discovery_status = Some(started.job.status.into());
        out.discovery_job_id = Some(started.job.id);
    }
    Ok(Json(out))
}

/// Delete a connector, its secret and its catalog.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_connector(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<StatusCode, AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let c = connector_of(&state, tenant_id, id).await?;
    detached(async move {
        discovery::cancel(&state, c.id, "the connector was deleted").await;
        // The secret goes first: if that fails nothing has changed and the
        // delete can be retried; a row without its secret is never left behind.
        state
            .secrets
            .delete(&connection_test::secret_ref(&state, &tenant, &c))
            .await?;
        if !state.store.delete_connector(tenant.id, c.id).await? {
            return Err(AppError::not_found("connector"));
        }
        tracing::info!(tenant = %tenant.id, connector = %c.id, "connector deleted");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Test a connector's connectivity with its stored credentials.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/test", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 200, body = TestResult), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn test_connector(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<TestResult>, AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let _place = state.settings.limits.acquire(tenant.id)?;
    let mut c = connector_of(&state, tenant_id, id).await?;
    let tested = connection_test::test_stored(&state, &tenant, &c).await?;
    tested.apply_to(&mut c);
    let report = tested.report;
    c.updated_at = ts(Utc::now());
    state.store.update_connector(&c).await?;
    Ok(Json(TestResult {
        connector_id: c.id,
        report,
    }))
}

/// Replace a connector's credentials. They are tested first; on failure the
/// old ones stay and the answer is 422 with the test result.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/credentials", tag = "connectors",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)), request_body = UpdateCredentials,
    responses((status = 200, body = ConnectorWithTest),
        (status = 422, description = "the new credentials failed the test; the old ones are kept", body = crate::api::ErrorBody),
        (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_credentials(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    body: LaterJson,
) -> Result<Json<ConnectorWithTest>, AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let body: UpdateCredentials = body.parse().await?;
    let _place = state.settings.limits.acquire(tenant.id)?;
    let mut c = connector_of(&state, tenant_id, id).await?;
    let driver = connection_test::driver_for(&state, &c.connector_type)?;
    let cfg = c.config();
    let target = connection_test::validate(&state, &driver, &cfg, &body.credentials)?;
    let tested = connection_test::test_with(&state, &target).await;
    if !tested.report.success {
        let result = TestResult {
            connector_id: c.id,
            report: tested.report,
        };
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::CredentialsTestFailed,
            format!(
                "the new credentials failed the connectivity test; the old ones are kept: {}",
                result.report.message
            ),
        )
        .with_details(serde_json::json!({ "testResult": result })));
    }
    detached(async move {
        let secret = connection_test::secret_ref(&state, &tenant, &c);
        match state.secrets.replace(&secret, &body.credentials).await {
            Ok(()) => {}
            // The secret went missing (removed by hand): the new credentials
            // passed, so they become the secret.
            Err(SecretError::NotFound(_)) => {
                state.secrets.create(&secret, &body.credentials).await?
            }
            Err(e) => return Err(e.into()),
        }
        if c.status == ConnectorStatus::Error {
            c.status = ConnectorStatus::Testing;
        }
        tested.apply_to(&mut c);
        c.updated_at = ts(Utc::now());
        state.store.update_connector(&c).await?;
        tracing::info!(connector = %c.id, "credentials replaced");
        Ok(Json(ConnectorWithTest {
            test_result: Some(TestResult {
                connector_id: c.id,
                report: tested.report,
            }),
            schemas_discovered: None,
            tables_discovered: None,
            discovery_status: None,
            discovery_job_id: None,
            connector: c,
        }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_one_ids_take_only_plain_ids_of_that_route() {
        let (t, c) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(
            get_one_ids(&format!("/api/v1/tenants/{t}/connectors/{c}")),
            Some((t, c))
        );
        let upper = format!("/api/v1/tenants/{t}/connectors/{c}").to_uppercase();
        assert_eq!(
            get_one_ids(
                &upper
                    .replace("/API/V1/TENANTS/", "/api/v1/tenants/")
                    .replace("/CONNECTORS/", "/connectors/")
            ),
            Some((t, c))
        );
        for path in [
            format!("/api/v1/tenants/{t}/connectors/{c}/"),
            format!("/api/v1/tenants/{t}/connectors/{c}/test"),
            format!("/api/v1/tenants/{t}/connectors/{}", c.simple()),
            format!("/api/v1/tenants/{}/connectors/{c}", t.simple()),
            format!(
                "/api/v1/tenants/{t}/connectors/{}",
                c.to_string().replacen('-', "%2D", 1)
            ),
            format!("/api/v1/tenants/{t}/connectors/{{{c}}}"),
            format!("/api/v1/tenants/{t}/connector/{c}"),
            format!("/api/v1/tenants/{t}/connectors/{}x", &c.to_string()[..35]),
            format!("/api/v1/tenants//{t}/connectors/{c}"),
            format!("/api/v1/tenants/{t}/connectors"),
            "/api/v1/tenants/é".into(),
        ] {
            assert_eq!(get_one_ids(&path), None, "{path}");
        }
    }

    fn connector(name: &str) -> Connector {
        Connector {
            id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            name: name.into(),
            connector_type: matih_connector_core::ConnectorType::Postgresql,
            host: Some("db.example".into()),
            port: Some(5432),
            database: Some("d\"b".into()),
            schema: None,
            credential_secret_name: "connector-1".into(),
            ssl_enabled: true,
            ssl_mode: Some(SslMode::VerifyFull),
            ssl_ca_pem: None,
            status: ConnectorStatus::Active,
            last_tested_at: None,
            last_test_result: Some("ok".into()),
            last_error_code: None,
            metadata: BTreeMap::from([("k".to_owned(), serde_json::json!([1, "two"]))]),
            timeouts: Timeouts::default(),
            created_at: "2026-12-06T10:00:00.000Z".into(),
            updated_at: "2026-12-06T10:00:00.000Z".into(),
        }
    }

    #[tokio::test]
    async fn the_written_list_is_the_connector_list_shape() {
        use hyper::body::Body as _;
        for list in [
            vec![],
            vec![connector("a")],
            vec![connector("a"), connector("b")],
        ] {
            let json = ConnectorsJson::new(&list).unwrap();
            let body = list_body(&json, 3);
            let length = body.size_hint().exact().expect("an exact length");
            // The array is the store's own bytes, shared, not a copy.
            let shared = body.chunks.as_slice()[1].as_ptr();
            assert_eq!(shared, json.json.as_ptr(), "the cached array is sent as is");
            let bytes = axum::body::to_bytes(Body::new(body), usize::MAX)
                .await
                .unwrap();
            assert_eq!(
                bytes.len() as u64,
                length,
                "the length sent as Content-Length"
            );
            let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let total = list.len();
            let expected = serde_json::to_value(ConnectorList {
                connectors: list,
                total,
                creates_in_flight: 3,
            })
            .unwrap();
            assert_eq!(written, expected);
        }
    }
}
