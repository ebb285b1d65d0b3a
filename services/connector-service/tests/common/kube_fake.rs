//! A protocol-level stand-in for the Kubernetes API server's core/v1 Secrets
//! (no kube-apiserver is installable here): GET/LIST/POST/PUT/PATCH/DELETE,
//! base64 `data`, `resourceVersion` with optimistic concurrency, label
//! selectors of the `key` and `key=value` forms, and `Status` errors 401, 403,
//! 404 and 409 as the real server sends them. The service talks to it through
//! the real `kube` client.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

pub const TOKEN: &str = "kube-test-token";

#[derive(Default)]
pub struct Inner {
    pub secrets: BTreeMap<(String, String), Value>,
    pub version: u64,
    /// Every request as "METHOD path", for assertions.
    pub requests: Vec<String>,
    /// When set, every call answers 403 (RBAC forbids).
    pub forbid: bool,
}

#[derive(Clone, Default)]
pub struct FakeKube(pub Arc<Mutex<Inner>>);

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn check(headers: &HeaderMap, k: &FakeKube) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {TOKEN}") {
        return Some(status(401, "Unauthorized", "Unauthorized".into()));
    }
    if k.0.lock().unwrap().forbid {
        return Some(status(
            403,
            "Forbidden",
            "secrets is forbidden: User \"system:serviceaccount:matih:svc\" cannot access secrets"
                .into(),
        ));
    }
    None
}

fn valid_data(secret: &Value) -> Result<(), String> {
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let s = v
                .as_str()
                .ok_or_else(|| format!("data.{k} must be a string"))?;
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| format!("data.{k}: illegal base64 data"))?;
        }
    }
    Ok(())
}

fn matches_selector(secret: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector else { return true };
    let labels = secret["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    sel.split(',')
        .filter(|p| !p.is_empty())
        .all(|part| match part.split_once('=') {
            Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
            None => labels.contains_key(part),
        })
}

async fn list(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    k.0.lock().unwrap().requests.push(format!("LIST {ns}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    let inner = k.0.lock().unwrap();
    let items: Vec<Value> = inner
        .secrets
        .iter()
        .filter(|((n, _), s)| *n == ns && matches_selector(s, q.get("labelSelector")))
        .map(|(_, s)| s.clone())
        .collect();
    Json(json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": inner.version.to_string()}, "items": items}))
        .into_response()
}

async fn create(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    k.0.lock().unwrap().requests.push(format!("POST {ns}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    let Ok(mut secret) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "invalid JSON".into());
    };
    if let Err(m) = valid_data(&secret) {
        return status(422, "Invalid", m);
    }
    let Some(name) = secret["metadata"]["name"].as_str().map(str::to_owned) else {
        return status(422, "Invalid", "metadata.name: Required value".into());
    };
    let mut inner = k.0.lock().unwrap();
    if inner.secrets.contains_key(&(ns.clone(), name.clone())) {
        return status(
            409,
            "AlreadyExists",
            format!("secrets \"{name}\" already exists"),
        );
    }
    inner.version += 1;
    secret["metadata"]["namespace"] = json!(ns);
    secret["metadata"]["resourceVersion"] = json!(inner.version.to_string());
    secret["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    secret["kind"] = json!("Secret");
    secret["apiVersion"] = json!("v1");
    inner.secrets.insert((ns, name), secret.clone());
    (StatusCode::CREATED, Json(secret)).into_response()
}

async fn get_one(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    k.0.lock()
        .unwrap()
        .requests
        .push(format!("GET {ns}/{name}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    match k.0.lock().unwrap().secrets.get(&(ns, name.clone())) {
        Some(s) => Json(s.clone()).into_response(),
        None => status(404, "NotFound", format!("secrets \"{name}\" not found")),
    }
}

async fn replace(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    k.0.lock()
        .unwrap()
        .requests
        .push(format!("PUT {ns}/{name}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    let Ok(mut secret) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "invalid JSON".into());
    };
    if let Err(m) = valid_data(&secret) {
        return status(422, "Invalid", m);
    }
    let mut inner = k.0.lock().unwrap();
    let key = (ns.clone(), name.clone());
    let Some(current) = inner.secrets.get(&key) else {
        return status(404, "NotFound", format!("secrets \"{name}\" not found"));
    };
    let sent = secret["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned);
    if sent.is_some() && sent.as_deref() != current["metadata"]["resourceVersion"].as_str() {
        return status(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on secrets \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        );
    }
    let uid = current["metadata"]["uid"].clone();
    inner.version += 1;
    secret["metadata"]["namespace"] = json!(ns);
    secret["metadata"]["resourceVersion"] = json!(inner.version.to_string());
    secret["metadata"]["uid"] = uid;
    secret["kind"] = json!("Secret");
    secret["apiVersion"] = json!("v1");
    inner.secrets.insert(key, secret.clone());
    Json(secret).into_response()
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// JSON merge patch (`application/merge-patch+json`) and strategic merge patch,
/// which for a Secret's maps behaves the same.
async fn patch(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    k.0.lock()
        .unwrap()
        .requests
        .push(format!("PATCH {ns}/{name}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    let Ok(p) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "invalid JSON".into());
    };
    if let Err(m) = valid_data(&p) {
        return status(422, "Invalid", m);
    }
    let mut inner = k.0.lock().unwrap();
    inner.version += 1;
    let v = inner.version;
    let Some(current) = inner.secrets.get_mut(&(ns, name.clone())) else {
        return status(404, "NotFound", format!("secrets \"{name}\" not found"));
    };
    merge(current, &p);
    current["metadata"]["resourceVersion"] = json!(v.to_string());
    Json(current.clone()).into_response()
}

async fn delete(
    State(k): State<FakeKube>,
    headers: HeaderMap,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    k.0.lock()
        .unwrap()
        .requests
        .push(format!("DELETE {ns}/{name}"));
    if let Some(r) = check(&headers, &k) {
        return r;
    }
    match k.0.lock().unwrap().secrets.remove(&(ns, name.clone())) {
        Some(_) => Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "kind": "secrets"}}))
            .into_response(),
        None => status(404, "NotFound", format!("secrets \"{name}\" not found")),
    }
}

impl FakeKube {
    /// Serves on a free loopback port; returns the base URL.
    pub async fn serve(&self) -> String {
        matih_connector_testkit::fake(
            "Kubernetes Secrets API fake (core/v1 over axum)",
            "kube_fake::serve",
        );
        let router = Router::new()
            .route("/api/v1/namespaces/{ns}/secrets", get(list).post(create))
            .route(
                "/api/v1/namespaces/{ns}/secrets/{name}",
                get(get_one).put(replace).patch(patch).delete(delete),
            )
            .fallback(|| async {
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource".into(),
                )
            })
            .with_state(self.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
        url
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Value> {
        self.0
            .lock()
            .unwrap()
            .secrets
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().secrets.len()
    }
}
