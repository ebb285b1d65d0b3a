//! Discovery routes: start a job, see the latest one, read the stored catalog
//! (paged summary, one table's detail) and the difference between the last two
//! snapshots.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use matih_connector_core::{Catalog, Column, DiscoveryRequest, Interned, Table, TableKind};
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::connectors::{connector_for, connector_of, tenant_for};
use crate::app::AppState;
use crate::auth::Auth;
use crate::diff::{diff_catalogs, kind_name, Changes};
use crate::discovery;
use crate::error::{ApiPath, ApiQuery, AppError, Code, LaterJson};
use crate::model::{ConnectorStatus, DiscoveryJob, Snapshot};
use crate::snapshot::{SchemaWalker, StoredCatalog, Walk};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover",
            post(start_discovery).get(latest_discovery),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover/jobs/{job_id}",
            get(discovery_job),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover/schedule",
            get(discovery_schedule).put(set_discovery_schedule),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas",
            get(schemas),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/diff",
            get(diff),
        )
        .route(
            "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/{schema}/tables/{table}",
            get(table_detail),
        )
}

/// The discovery request body as documented (core's `DiscoveryRequest`, which
/// refuses unknown fields like every body).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct DiscoveryRequestDoc {
    /// How deep discovery goes (default `columns`).
    #[schema(value_type = Option<String>, pattern = "^(schemas|tables|columns)$")]
    depth: Option<String>,
    schemas: Option<NameFilterDoc>,
    tables: Option<NameFilterDoc>,
    /// Row estimates and sizes (default true).
    statistics: Option<bool>,
    /// Documents, objects or messages read per table to infer fields (default 100).
    sample_size: Option<u32>,
    /// Include the source's own system schemas (default false).
    include_system: Option<bool>,
}

/// Glob patterns (`*`, `?`, `\` escapes); no include pattern means all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct NameFilterDoc {
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

/// Start discovery (202). While a job runs, a second request returns it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    request_body(content = Option<DiscoveryRequestDoc>, description = "optional: without a body, everything to the columns"),
    responses((status = 202, body = DiscoveryJob), (status = 404, body = crate::api::ErrorBody), (status = 409, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn start_discovery(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    body: LaterJson,
) -> Result<(StatusCode, Json<DiscoveryJob>), AppError> {
    let tenant = tenant_for(&state, &claims, tenant_id).await?;
    let _place = state.settings.limits.acquire(tenant.id)?;
    let c = connector_of(&state, tenant_id, id).await?;
    let body = body.bytes().await?;
    // The body is optional; when present it answers like every other body:
    // 400 for malformed JSON, 422 for a well-formed body that does not fit.
    let req: DiscoveryRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DiscoveryRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            let (status, code) = match e.classify() {
                serde_json::error::Category::Data => {
                    (StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidRequest)
                }
                _ => (StatusCode::BAD_REQUEST, Code::MalformedJson),
            };
            AppError::new(status, code, format!("invalid discovery request: {e}"))
        })?
    };
    if c.status == ConnectorStatus::Inactive {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            Code::ConnectorInactive,
            "the connector is disabled; enable it first",
        ));
    }
    let started = discovery::start(&state, &c, req).await?;
    Ok((StatusCode::ACCEPTED, Json(started.job)))
}

/// The running or latest discovery job, as the metadata store has it: the
/// same answer from every replica.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 200, body = DiscoveryJob), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn latest_discovery(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<DiscoveryJob>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    state
        .store
        .latest_job(c.id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found("discovery job"))
}

/// One discovery job of the connector, running or finished.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover/jobs/{job_id}", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses((status = 200, body = DiscoveryJob), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn discovery_job(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id, job_id)): ApiPath<(Uuid, Uuid, Uuid)>,
) -> Result<Json<DiscoveryJob>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    state
        .store
        .discovery_job(c.id, job_id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::not_found("discovery job"))
}

/// A connector's scheduled re-discovery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverySchedule {
    pub connector_id: Uuid,
    /// The connector's own interval in seconds; null when it follows the
    /// service's default (or is switched off).
    pub interval_secs: Option<u64>,
    /// False when scheduled re-discovery is switched off for the connector.
    pub enabled: bool,
    /// The interval in force; 0 when the connector is not re-discovered
    /// (switched off, INACTIVE, or no default interval).
    pub effective_interval_secs: u64,
    /// When the next re-discovery is due; null: at the scheduler's next
    /// round (never scheduled yet) or never.
    pub next_at: Option<String>,
}

/// Longest interval accepted: ten years.
const MAX_INTERVAL_SECS: u64 = 315_360_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetDiscoverySchedule {
    /// Seconds between re-discoveries; null or absent: the service's default.
    #[schema(minimum = 60, maximum = 315360000)]
    pub interval_secs: Option<u64>,
    /// False switches scheduled re-discovery off for the connector (default true).
    pub enabled: Option<bool>,
}

async fn schedule_answer(
    state: &AppState,
    c: &crate::model::Connector,
) -> Result<DiscoverySchedule, AppError> {
    let (interval, next_at) = state
        .store
        .discovery_schedule(c.id)
        .await?
        .ok_or_else(|| AppError::not_found("connector"))?;
    // Stored: NULL = the default, 0 = switched off, else the connector's own.
    let enabled = interval != Some(0);
    let own = interval.filter(|i| *i > 0).map(|i| i as u64);
    let effective = match (enabled, c.status) {
        (false, _) | (_, ConnectorStatus::Inactive) => 0,
        _ => own.unwrap_or(state.settings.discovery_interval.as_secs()),
    };
    Ok(DiscoverySchedule {
        connector_id: c.id,
        interval_secs: own,
        enabled,
        effective_interval_secs: effective,
        next_at: next_at.filter(|_| effective > 0),
    })
}

/// The connector's scheduled re-discovery: interval and next due time.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover/schedule", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 200, body = DiscoverySchedule), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn discovery_schedule(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<DiscoverySchedule>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    Ok(Json(schedule_answer(&state, &c).await?))
}

/// Sets the connector's re-discovery interval or switches it off; the next
/// one is due one interval from now.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/discover/schedule", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    request_body = SetDiscoverySchedule,
    responses((status = 200, body = DiscoverySchedule), (status = 404, body = crate::api::ErrorBody), (status = 422, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_discovery_schedule(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    body: LaterJson,
) -> Result<Json<DiscoverySchedule>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let body: SetDiscoverySchedule = body.parse().await?;
    if body
        .interval_secs
        .is_some_and(|i| !(60..=MAX_INTERVAL_SECS).contains(&i))
    {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidRequest,
            "intervalSecs must be 60 to 315360000",
        )
        .with_details(serde_json::json!({"field": "intervalSecs"})));
    }
    let stored = if body.enabled == Some(false) {
        Some(0)
    } else {
        body.interval_secs.map(|i| i as i64)
    };
    let effective = stored.unwrap_or(state.settings.discovery_interval.as_secs() as i64);
    let next_at = (effective > 0)
        .then(|| crate::model::ts(chrono::Utc::now() + chrono::Duration::seconds(effective)));
    if !state
        .store
        .set_discovery_schedule(c.id, stored, next_at.as_deref())
        .await?
    {
        return Err(AppError::not_found("connector"));
    }
    Ok(Json(schedule_answer(&state, &c).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SchemasQuery {
    /// `columns` adds each table's columns as `columnDetails`.
    pub include: Option<String>,
    /// Tables per page (default 1000, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this schema.
    pub schema: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Column count.
    pub columns: usize,
    pub estimated_rows: Option<u64>,
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub column_details: Option<Vec<matih_connector_core::Column>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemaSummary {
    pub name: String,
    pub tables: Vec<TableSummary>,
}

/// The seed's discovery result, paged over tables.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchemasResponse {
    pub connector_id: Uuid,
    pub schemas: Vec<SchemaSummary>,
    pub discovered_at: String,
    pub snapshot_id: Uuid,
    pub total_schemas: usize,
    pub total_tables: usize,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn encode_cursor(schema: &str, table: &str) -> String {
    let json = serde_json::to_vec(&(schema, table)).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(cursor: &str) -> Result<(String, String), AppError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            AppError::bad_request(
                Code::InvalidRequest,
                "cursor is not one this service issued",
            )
        })
}

/// A table's columns, counted as they are read and not kept.
#[derive(Default)]
struct Counted(usize);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Counted;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of columns")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Counted, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Counted(n))
            }
        }
        d.deserialize_seq(Visit)
    }
}

async fn latest(state: &AppState, connector: Uuid) -> Result<Snapshot, AppError> {
    state
        .store
        .latest_snapshots(connector, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            AppError::new(
                StatusCode::NOT_FOUND,
                Code::CatalogNotFound,
                "no discovery has completed for this connector yet",
            )
        })
}

fn parse_catalog(s: &Snapshot) -> Result<Catalog, AppError> {
    s.catalog
        .parse::<Interned<Catalog>>()
        .map(|c| c.0)
        .map_err(AppError::internal)
}

/// The latest discovered catalog's summary.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path), SchemasQuery),
    responses((status = 200, body = SchemasResponse), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn schemas(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(q): ApiQuery<SchemasQuery>,
) -> Result<Json<SchemasResponse>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let with_columns = match q.include.as_deref() {
        None | Some("") => false,
        Some("columns") => true,
        Some(other) => {
            return Err(AppError::bad_request(
                Code::InvalidRequest,
                format!("include={other:?}: only `columns` is known"),
            ))
        }
    };
    let limit = q.limit.unwrap_or(1000);
    if limit == 0 || limit > 10_000 {
        return Err(AppError::bad_request(
            Code::InvalidRequest,
            "limit must be 1-10000",
        ));
    }
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let snap = latest(&state, c.id).await?;
    let mut out = SchemasResponse {
        connector_id: c.id,
        schemas: Vec::new(),
        discovered_at: snap.discovered_at,
        snapshot_id: snap.id,
        total_schemas: 0,
        total_tables: 0,
        next_cursor: None,
    };
    Page::new(
        q.schema.as_deref(),
        after.as_ref().map(|(s, t)| (s.as_str(), t.as_str())),
        limit,
        with_columns,
        &mut out,
    )
    .fill(&snap.catalog)
    .map_err(AppError::internal)?;
    Ok(Json(out))
}

/// One page of the summary, filled while the stored catalog is read: only
/// the page's tables are built (with their columns for `include=columns`);
/// the others are counted for the totals.
struct Page<'a> {
    schema: Option<&'a str>,
    after: Option<(&'a str, &'a str)>,
    with_columns: bool,
    /// Tables the page still has room for.
    remaining: usize,
    /// A table after the page was seen: the page ends with a cursor.
    more: bool,
    /// The page's last table.
    last: Option<(String, String)>,
    out: &'a mut SchemasResponse,
}

impl<'a> Page<'a> {
    fn new(
        schema: Option<&'a str>,
        after: Option<(&'a str, &'a str)>,
        limit: usize,
        with_columns: bool,
        out: &'a mut SchemasResponse,
    ) -> Self {
        Page {
            schema,
            after,
            with_columns,
            remaining: limit,
            more: false,
            last: None,
            out,
        }
    }

    /// Reads the stored catalog into the page, its totals and its cursor.
    fn fill(mut self, stored: &StoredCatalog) -> serde_json::Result<()> {
        stored.parse_seed(Walk(&mut self))?;
        if self.more {
            self.out.next_cursor = self.last.map(|(s, t)| encode_cursor(&s, &t));
        }
        Ok(())
    }

    /// Whether the table goes on the page; called once per table of a
    /// selected schema, in stored (sorted) order.
    fn takes(&mut self, schema: &str, table: &str) -> bool {
        if self.more || self.after.is_some_and(|after| (schema, table) <= after) {
            return false;
        }
        if self.remaining == 0 {
            self.more = true;
            return false;
        }
        self.remaining -= 1;
        self.last = Some((schema.to_owned(), table.to_owned()));
        true
    }
}

impl SchemaWalker for Page<'_> {
    fn schema<'de, A: SeqAccess<'de>>(&mut self, name: &str, mut seq: A) -> Result<(), A::Error> {
        if self.schema.is_some_and(|n| n != name) {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        self.out.total_schemas += 1;
        let mut tables = Vec::new();
        let mut count = 0;
        while let Some(t) = seq.next_element_seed(PageTable {
            schema: name,
            page: &mut *self,
        })? {
            count += 1;
            tables.extend(t);
        }
        self.out.total_tables += count;
        // Schemas without tables appear on the first page only.
        if !tables.is_empty() || (count == 0 && self.after.is_none() && !self.more) {
            self.out.schemas.push(SchemaSummary {
                name: name.to_owned(),
                tables,
            });
        }
        Ok(())
    }
}

/// One stored table: its summary when it goes on the page, else `None`.
/// Whether it does is decided at its columns (a table's name comes before
/// them), so the columns of a table off the page are only counted.
struct PageTable<'a, 'p> {
    schema: &'a str,
    page: &'a mut Page<'p>,
}

impl<'de> DeserializeSeed<'de> for PageTable<'_, '_> {
    type Value = Option<TableSummary>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageTable<'_, '_> {
    type Value = Option<TableSummary>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "camelCase")]
        enum Field {
            Name,
            Type,
            EstimatedRows,
            SizeBytes,
            Columns,
            #[serde(other)]
            Other,
        }
        let mut name: Option<String> = None;
        let mut kind: Option<TableKind> = None;
        let (mut estimated_rows, mut size_bytes) = (None, None);
        let mut taken: Option<bool> = None;
        let (mut columns, mut details) = (0, None);
        while let Some(k) = m.next_key::<Field>()? {
            match k {
                Field::Name => name = Some(m.next_value()?),
                Field::Type => kind = Some(m.next_value()?),
                Field::EstimatedRows => estimated_rows = m.next_value()?,
                Field::SizeBytes => size_bytes = m.next_value()?,
                Field::Columns => {
                    // Built only for a table on the page (or, were the name
                    // still unknown, for any table: correct, only larger).
                    let build = self.page.with_columns
                        && match &name {
                            Some(n) => {
                                *taken.get_or_insert_with(|| self.page.takes(self.schema, n))
                            }
                            None => true,
                        };
                    if build {
                        let c: Vec<Column> = m.next_value()?;
                        columns = c.len();
                        details = Some(c);
                    } else {
                        columns = m.next_value::<Counted>()?.0;
                    }
                }
                Field::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        let name = name.ok_or_else(|| M::Error::missing_field("name"))?;
        let kind = kind.ok_or_else(|| M::Error::missing_field("type"))?;
        if !taken.unwrap_or_else(|| self.page.takes(self.schema, &name)) {
            return Ok(None);
        }
        Ok(Some(TableSummary {
            kind: kind_name(kind),
            columns,
            estimated_rows,
            size_bytes,
            column_details: self.page.with_columns.then(|| details.unwrap_or_default()),
            name,
        }))
    }
}

/// The table `table` of the first schema named `schema`: the other schemas'
/// tables are skipped unread, that schema's built one at a time.
struct FindTable<'a> {
    schema: &'a str,
    table: &'a str,
    searched: bool,
    found: Option<Table>,
}

impl SchemaWalker for FindTable<'_> {
    fn schema<'de, A: SeqAccess<'de>>(&mut self, name: &str, mut seq: A) -> Result<(), A::Error> {
        if self.searched || name != self.schema {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        self.searched = true;
        while let Some(t) = seq.next_element::<Table>()? {
            if self.found.is_none() && t.name == self.table {
                self.found = Some(t);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableDetail {
    pub connector_id: Uuid,
    pub schema: String,
    pub discovered_at: String,
    #[schema(value_type = Object)]
    pub table: Table,
}

/// One table's full detail: columns with native and normalized types, keys, comments.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/{schema}/tables/{table}", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path), ("schema" = String, Path), ("table" = String, Path)),
    responses((status = 200, body = TableDetail), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn table_detail(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id, schema, table)): ApiPath<(Uuid, Uuid, String, String)>,
) -> Result<Json<TableDetail>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let snap = latest(&state, c.id).await?;
    let mut find = FindTable {
        schema: &schema,
        table: &table,
        searched: false,
        found: None,
    };
    snap.catalog
        .parse_seed(Walk(&mut find))
        .map_err(AppError::internal)?;
    let t = find.found.ok_or_else(|| AppError::not_found("table"))?;
    Ok(Json(TableDetail {
        connector_id: c.id,
        schema,
        discovered_at: snap.discovered_at,
        table: t,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    pub snapshot_id: Uuid,
    pub discovered_at: String,
}

/// What changed between the last two snapshots. With a single snapshot, `from`
/// is null and everything counts as added.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogDiff {
    pub connector_id: Uuid,
    pub from: Option<SnapshotRef>,
    pub to: SnapshotRef,
    #[serde(flatten)]
    pub changes: Changes,
}

/// The difference between the last two discovered catalogs.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/connectors/{connector_id}/schemas/diff", tag = "discovery",
    params(("tenant_id" = Uuid, Path), ("connector_id" = Uuid, Path)),
    responses((status = 200, body = CatalogDiff), (status = 404, body = crate::api::ErrorBody)),
    security(("bearer" = [])))]
pub async fn diff(
    State(state): State<AppState>,
    Auth(claims): Auth,
    ApiPath((tenant_id, id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<CatalogDiff>, AppError> {
    let c = connector_for(&state, &claims, tenant_id, id).await?;
    let snaps = state.store.latest_snapshots(c.id, 2).await?;
    let Some(newest) = snaps.first() else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            Code::CatalogNotFound,
            "no discovery has completed for this connector yet",
        ));
    };
    let new = parse_catalog(newest)?;
    let (old, from) = match snaps.get(1) {
        Some(s) => (
            parse_catalog(s)?,
            Some(SnapshotRef {
                snapshot_id: s.id,
                discovered_at: s.discovered_at.clone(),
            }),
        ),
        None => (Catalog::default(), None),
    };
    let changes = diff_catalogs(&old, &new);
    Ok(Json(CatalogDiff {
        connector_id: c.id,
        from,
        to: SnapshotRef {
            snapshot_id: newest.id,
            discovered_at: newest.discovered_at.clone(),
        },
        changes,
    }))
}

#[cfg(test)]
mod tests {
    use matih_connector_core::{DataType, Schema};

    use super::*;

    /// The page as it was built before the walk (the whole catalog parsed,
    /// then filtered): what every page must still answer, byte for byte.
    fn reference(
        catalog: &Catalog,
        schema: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
        with_columns: bool,
        out: &mut SchemasResponse,
    ) {
        let selected: Vec<&Schema> = catalog
            .schemas
            .iter()
            .filter(|s| schema.is_none_or(|n| n == s.name))
            .collect();
        out.total_schemas = selected.len();
        out.total_tables = selected.iter().map(|s| s.tables.len()).sum();
        let mut remaining = limit;
        let mut more = false;
        let mut last: Option<(String, String)> = None;
        for schema in selected {
            let mut tables = Vec::new();
            for t in &schema.tables {
                if let Some(after) = after {
                    if (schema.name.as_str(), t.name.as_str()) <= after {
                        continue;
                    }
                }
                if remaining == 0 {
                    more = true;
                    break;
                }
                remaining -= 1;
                last = Some((schema.name.clone(), t.name.clone()));
                tables.push(TableSummary {
                    kind: kind_name(t.kind),
                    columns: t.columns.len(),
                    estimated_rows: t.estimated_rows,
                    size_bytes: t.size_bytes,
                    column_details: with_columns.then(|| t.columns.clone()),
                    name: t.name.clone(),
                });
            }
            if !tables.is_empty() || (schema.tables.is_empty() && after.is_none() && !more) {
                out.schemas.push(SchemaSummary {
                    name: schema.name.clone(),
                    tables,
                });
            }
            if more {
                break;
            }
        }
        if more {
            out.next_cursor = last.map(|(s, t)| encode_cursor(&s, &t));
        }
    }

    fn empty() -> SchemasResponse {
        SchemasResponse {
            connector_id: Uuid::nil(),
            schemas: Vec::new(),
            discovered_at: String::new(),
            snapshot_id: Uuid::nil(),
            total_schemas: 0,
            total_tables: 0,
            next_cursor: None,
        }
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        for (s, tables) in [
            ("a", 0),
            ("b \"é\"", 3),
            ("c", 0),
            ("d", 1),
            ("e", 4),
            ("f", 0),
        ] {
            let mut schema = Schema {
                name: s.into(),
                comment: None,
                tables: Vec::new(),
            };
            for t in 0..tables {
                let kind = if t % 2 == 0 {
                    TableKind::Table
                } else {
                    TableKind::MaterializedView
                };
                let mut table = Table::new(format!("t{t}"), kind);
                table.estimated_rows = (t > 0).then_some(t as u64 * 10);
                table.size_bytes = Some(8192);
                table.comment = Some("skipped by the summary".into());
                for i in 0..t {
                    table.columns.push(Column {
                        name: format!("c{i}").into(),
                        ordinal: i as u32 + 1,
                        native_type: "integer".into(),
                        data_type: DataType::Int32,
                        nullable: i % 2 == 0,
                        default: None,
                        comment: None,
                    });
                }
                schema.tables.push(table);
            }
            c.schemas.push(schema);
        }
        c.sort();
        c
    }

    #[test]
    fn every_page_is_the_page_the_whole_catalog_gave() {
        let c = catalog();
        let stored = [
            StoredCatalog::compress(&c).unwrap(),
            StoredCatalog::Text(serde_json::to_string(&c).unwrap()),
        ];
        let mut cursors: Vec<Option<(String, String)>> = vec![None];
        cursors.push(Some((String::new(), String::new())));
        cursors.push(Some(("zz".into(), String::new())));
        for s in &c.schemas {
            cursors.push(Some((s.name.clone(), String::new())));
            for t in &s.tables {
                cursors.push(Some((s.name.clone(), t.name.clone())));
            }
        }
        let mut schemas: Vec<Option<&str>> = vec![None, Some("nope")];
        schemas.extend(c.schemas.iter().map(|s| Some(s.name.as_str())));
        let mut pages = 0;
        for schema in &schemas {
            for after in &cursors {
                let after = after.as_ref().map(|(s, t)| (s.as_str(), t.as_str()));
                for limit in 1..=9 {
                    for with_columns in [false, true] {
                        let mut want = empty();
                        reference(&c, *schema, after, limit, with_columns, &mut want);
                        let want = serde_json::to_string(&want).unwrap();
                        for stored in &stored {
                            let mut got = empty();
                            Page::new(*schema, after, limit, with_columns, &mut got)
                                .fill(stored)
                                .unwrap();
                            assert_eq!(
                                serde_json::to_string(&got).unwrap(),
                                want,
                                "schema {schema:?} after {after:?} limit {limit} columns {with_columns}"
                            );
                            pages += 1;
                        }
                    }
                }
            }
        }
        assert!(pages > 1000);
    }

    #[test]
    fn a_table_is_found_in_the_first_schema_of_its_name_only() {
        let c = catalog();
        let stored = StoredCatalog::compress(&c).unwrap();
        for s in &c.schemas {
            for t in &s.tables {
                let mut find = FindTable {
                    schema: &s.name,
                    table: &t.name,
                    searched: false,
                    found: None,
                };
                stored.parse_seed(Walk(&mut find)).unwrap();
                assert_eq!(find.found.as_ref(), Some(t));
            }
        }
        for (schema, table) in [("d", "t1"), ("x", "t0"), ("a", "t0")] {
            let mut find = FindTable {
                schema,
                table,
                searched: false,
                found: None,
            };
            stored.parse_seed(Walk(&mut find)).unwrap();
            assert!(find.found.is_none(), "{schema}.{table}");
        }
    }
}
