//! Discovery: the API is one schema, each endpoint a table whose columns are
//! inferred from a bounded sample of its response.

use futures_util::stream::{self, StreamExt};
use matih_connector_core::http::{display_url, Method};
use matih_connector_core::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Schema, Table, TableKind,
};
use serde_json::{json, Value};

use crate::config::Endpoint;
use crate::connection::RestConnection;
use crate::errors::payload_error;
use crate::types::columns_from_records;

/// Endpoints sampled at once; enough to hide latency, few enough not to look
/// like a flood to the API's rate limiter.
const CONCURRENCY: usize = 4;
/// Upper bound on records read per endpoint, whatever the request asks.
const MAX_SAMPLE: usize = 10_000;

/// The endpoints to discover: the configured ones, then those an OpenAPI
/// document declares (GET operations with no required parameter), names
/// unique, configured ones first.
async fn endpoints(conn: &RestConnection) -> Result<Vec<Endpoint>, ConnectorError> {
    let mut out = conn.cfg.endpoints.clone();
    if let Some(src) = &conn.cfg.openapi {
        let url = conn.cfg.openapi_url(src)?;
        let what = format!("GET {}", display_url(&url));
        let doc = conn
            .request(Method::GET, url, conn.cfg.timeouts.query())
            .await?
            .json::<Value>()
            .map_err(|e| {
                ConnectorError::new(
                    e.code(),
                    format!(
                        "{}; the OpenAPI document must be JSON (YAML is not read)",
                        e.message()
                    ),
                )
            })?;
        for ep in openapi_endpoints(&doc).map_err(|m| payload_error(&what, &m))? {
            if !out.iter().any(|e| e.name == ep.name) {
                out.push(ep);
            }
        }
    }
    Ok(out)
}

/// GET operations of an OpenAPI 3 / Swagger 2 document that can be called
/// without arguments: no `{template}` in the path, no required parameter.
/// Named by `operationId`, else by the path.
pub(crate) fn openapi_endpoints(doc: &Value) -> Result<Vec<Endpoint>, String> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("not an OpenAPI document: no `paths` object")?;
    let resolve = |p: &Value| -> Value {
        // Local `$ref`s to shared parameters (#/components/parameters/x,
        // #/parameters/x) are followed; others are taken as they are.
        match p
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
        {
            Some(ptr) => doc.pointer(ptr).cloned().unwrap_or(Value::Null),
            None => p.clone(),
        }
    };
    let required = |params: Option<&Value>| -> bool {
        params.and_then(Value::as_array).is_some_and(|ps| {
            ps.iter().map(resolve).any(|p| {
                p.get("required").and_then(Value::as_bool).unwrap_or(false)
                    || p.get("in").and_then(Value::as_str) == Some("path")
            })
        })
    };
    // Sorted by path: the map's own order depends on whether some crate in the
    // build turned on serde_json's `preserve_order`.
    let mut sorted: Vec<(&String, &Value)> = paths.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    for (path, item) in sorted {
        let Some(get) = item.get("get") else { continue };
        if path.contains('{') || required(item.get("parameters")) || required(get.get("parameters"))
        {
            continue;
        }
        let name = get
            .get("operationId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| path.clone());
        let comment = ["summary", "description"]
            .iter()
            .find_map(|k| get.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        if out.iter().any(|e: &Endpoint| e.name == name) {
            continue;
        }
        out.push(Endpoint {
            name,
            path: path.clone(),
            method: Method::GET,
            records_path: None,
            comment,
        });
    }
    Ok(out)
}

/// The records of a response: the array at `records_path` (a JSON pointer),
/// else the top-level array, else the top-level object as one record.
pub(crate) fn records(
    body: Value,
    records_path: Option<&str>,
    limit: usize,
) -> Result<Vec<Value>, String> {
    let target = match records_path {
        Some(p) if !p.is_empty() => {
            let mut body = body;
            match body.pointer_mut(p) {
                Some(v) => v.take(),
                None => return Err(format!("recordsPath {p} is not in the response")),
            }
        }
        _ => body,
    };
    Ok(match target {
        Value::Array(mut items) => {
            items.truncate(limit);
            items
        }
        Value::Null => Vec::new(),
        other => vec![other],
    })
}

fn schema_selected(conn: &RestConnection, req: &DiscoveryRequest) -> bool {
    req.schemas.matches(&conn.cfg.name)
}

/// Fetches the first endpoint under the filters and checks it answers JSON:
/// what every table's sampling will need.
pub(crate) async fn probe(
    conn: &mut RestConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if !schema_selected(conn, req) {
        return Ok(());
    }
    let eps = endpoints(conn).await?;
    let Some(ep) = eps.iter().find(|e| req.tables.matches(&e.name)) else {
        return Ok(());
    };
    let url = conn.cfg.url(&ep.path)?;
    let fetched = conn
        .request(ep.method.clone(), url, conn.cfg.timeouts.query())
        .await?;
    fetched.json::<Value>()?;
    Ok(())
}

/// One endpoint as a table. Failures that concern only this endpoint's
/// payload (not JSON, too large, too deep, missing records path, 404) leave the
/// table without columns and say why in `properties.sampleError`; failures
/// that would hit every endpoint (authentication, permissions, throttling,
/// timeouts, transport) fail the discovery.
async fn table(
    conn: &RestConnection,
    ep: Endpoint,
    req: &DiscoveryRequest,
) -> Result<Table, ConnectorError> {
    let mut t = Table::new(ep.name.clone(), TableKind::Endpoint);
    t.comment = ep.comment.clone();
    t.properties.insert("path".into(), json!(ep.path));
    t.properties
        .insert("method".into(), json!(ep.method.as_str()));
    let records_path = conn.cfg.records_path(&ep).map(str::to_owned);
    if let Some(p) = &records_path {
        t.properties.insert("recordsPath".into(), json!(p));
    }
    if req.depth < Depth::Columns {
        return Ok(t);
    }
    let url = conn.cfg.url(&ep.path)?;
    let what = format!("{} {}", ep.method, display_url(&url));
    let sample = (req.sample_size as usize).clamp(1, MAX_SAMPLE);
    let outcome = async {
        let fetched = conn
            .request(ep.method.clone(), url, conn.cfg.timeouts.query())
            .await?;
        let body = fetched.json::<Value>()?;
        records(body, records_path.as_deref(), sample).map_err(|m| payload_error(&what, &m))
    }
    .await;
    match outcome {
        Ok(recs) => {
            t.properties
                .insert("sampledRecords".into(), json!(recs.len()));
            t.columns = columns_from_records(&recs);
            Ok(t)
        }
        Err(e)
            if matches!(
                e.code(),
                ErrorCode::ProtocolError | ErrorCode::DatabaseNotFound
            ) =>
        {
            t.properties.insert(
                "sampleError".into(),
                json!({"code": e.code(), "message": e.message()}),
            );
            Ok(t)
        }
        Err(e) => Err(e.with_context("endpoint", &ep.name)),
    }
}

pub(crate) async fn discover(
    conn: &mut RestConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let mut catalog = Catalog::default();
    if !schema_selected(conn, req) {
        return Ok(catalog);
    }
    let mut schema = Schema {
        name: conn.cfg.name.clone(),
        comment: None,
        tables: Vec::new(),
    };
    schema.comment = Some(format!("REST API at {}", conn.cfg.base));
    if req.depth >= Depth::Tables {
        let eps: Vec<Endpoint> = endpoints(conn)
            .await?
            .into_iter()
            .filter(|e| req.tables.matches(&e.name))
            .collect();
        let conn_ref = &*conn;
        let results: Vec<Result<Table, ConnectorError>> =
            stream::iter(eps.into_iter().map(|ep| table(conn_ref, ep, req)))
                .buffered(CONCURRENCY)
                .collect()
                .await;
        for r in results {
            schema.tables.push(r?);
        }
    }
    catalog.schemas.push(schema);
    catalog.sort();
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_at_pointer_top_level_and_single_object() {
        let body = json!({"data": {"items": [{"a": 1}, {"a": 2}, {"a": 3}]}});
        assert_eq!(
            records(body.clone(), Some("/data/items"), 2).unwrap().len(),
            2
        );
        assert_eq!(records(body.clone(), None, 10).unwrap(), vec![body.clone()]);
        assert!(records(body, Some("/nope"), 10).is_err());
        assert_eq!(records(json!([1, 2, 3]), None, 10).unwrap().len(), 3);
        assert!(records(Value::Null, None, 10).unwrap().is_empty());
    }

    #[test]
    fn openapi_get_operations_without_required_params() {
        let doc = json!({
            "openapi": "3.0.3",
            "components": {"parameters": {"Since": {"name": "since", "in": "query", "required": true}}},
            "paths": {
                "/users": {"get": {"operationId": "listUsers", "summary": "All users"}},
                "/users/{id}": {"get": {"operationId": "getUser"}},
                "/orders": {"get": {"parameters": [{"$ref": "#/components/parameters/Since"}]}},
                "/health": {"post": {}},
                "/stats": {"get": {"parameters": [{"name": "limit", "in": "query"}]}},
                "/tenants": {"parameters": [{"name": "t", "in": "header", "required": true}], "get": {}}
            }
        });
        let eps = openapi_endpoints(&doc).unwrap();
        let names: Vec<_> = eps.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["/stats", "listUsers"]);
        assert_eq!(eps[1].comment.as_deref(), Some("All users"));
        assert!(openapi_endpoints(&json!({"swagger": "2.0"})).is_err());
    }
}
