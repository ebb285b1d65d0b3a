//! Credentials in AWS Secrets Manager: a connector's secret is named
//! `matih/<tenant slug>/connector-<first 8 of id>`, its value the credentials
//! as a JSON object of strings, its labels tags. Requests are the service's
//! JSON API, signed with core's SigV4 ([`matih_connector_core::aws::sigv4_headers`])
//! and sent through the service's infrastructure client (core's TLS rule,
//! time limits).
//!
//! Settings are the usual AWS ones: `AWS_REGION` (or `AWS_DEFAULT_REGION`),
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or `AWS_ENDPOINT_URL`),
//! `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
//! `AWS_CA_BUNDLE`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use matih_connector_core::aws::{sigv4_headers, Failure, Keys, ToSign};
use matih_connector_core::http::header::{HeaderValue, CONTENT_TYPE};
use matih_connector_core::http::{HttpClient, Url};
use matih_connector_core::{Credentials, SecretString};
use serde_json::{json, Value};

use super::{Expiry, ExpiryKind, SecretError, SecretRef, SecretStore, Stored};

/// Where and as whom the store talks to Secrets Manager.
#[derive(Clone, Debug)]
pub struct AwsSmSettings {
    pub region: String,
    /// `https://secretsmanager.<region>.amazonaws.com` unless overridden.
    pub endpoint: String,
    pub keys: Keys,
    pub ca_pem: Option<String>,
    /// The tenant namespace prefix (`matih-`): `matih-acme` is stored under `matih/acme`.
    pub namespace_prefix: String,
    /// Limit of every request.
    pub timeout: Duration,
}

impl AwsSmSettings {
    /// From the usual AWS variables in `vars`.
    pub fn from_vars(
        vars: &BTreeMap<String, String>,
        namespace_prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<AwsSmSettings> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let region = get("AWS_REGION")
            .or(get("AWS_DEFAULT_REGION"))
            .ok_or_else(|| anyhow::anyhow!("the aws-secrets-manager store needs AWS_REGION"))?
            .to_owned();
        let endpoint = get("AWS_ENDPOINT_URL_SECRETS_MANAGER")
            .or(get("AWS_ENDPOINT_URL"))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
        let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"))
        else {
            anyhow::bail!(
                "the aws-secrets-manager store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            );
        };
        let ca_pem = match get("AWS_CA_BUNDLE") {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("reading AWS_CA_BUNDLE {p}: {e}"))?,
            ),
            None => None,
        };
        Ok(AwsSmSettings {
            region,
            endpoint,
            keys: Keys {
                access_key_id: SecretString::new(id),
                secret_access_key: SecretString::new(secret),
                session_token: get("AWS_SESSION_TOKEN").map(SecretString::new),
            },
            ca_pem,
            namespace_prefix: namespace_prefix.to_owned(),
            timeout,
        })
    }
}

/// A DescribeSecret answer's next rotation: `NextRotationDate` (epoch
/// seconds), or, where it is absent but rotation is on, `LastRotatedDate`
/// plus `RotationRules.AutomaticallyAfterDays` (how AWS schedules it).
/// Rotation turned off (`RotationEnabled: false`): none.
fn next_rotation(d: &Value) -> Option<Expiry> {
    if d["RotationEnabled"] == Value::Bool(false) {
        return None;
    }
    let epoch = |v: &Value| {
        v.as_f64()
            .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
    };
    let at = epoch(&d["NextRotationDate"]).or_else(|| {
        let days = d["RotationRules"]["AutomaticallyAfterDays"].as_i64()?;
        let last = epoch(&d["LastRotatedDate"])?;
        (d["RotationEnabled"] == Value::Bool(true) && days > 0)
            .then(|| last + chrono::Duration::days(days))
    })?;
    Some(Expiry {
        at,
        kind: ExpiryKind::Rotates,
    })
}

pub struct AwsSecretsManagerStore {
    http: HttpClient,
    url: Url,
    region: String,
    keys: Keys,
    prefix: String,
}

impl std::fmt::Debug for AwsSecretsManagerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSecretsManagerStore")
            .field("url", &self.url.as_str())
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// One error answer, read from its JSON body.
struct SmError {
    status: u16,
    code: String,
    message: String,
}

impl SmError {
    fn from_body(status: u16, body: &[u8]) -> SmError {
        let (code, message) = match Failure::from_body(status, body) {
            Failure::Service { code, message, .. } => (code, message),
            _ => (None, None),
        };
        SmError {
            status,
            // `com.amazonaws.secretsmanager#ResourceNotFoundException` → the name.
            code: code
                .map(|c| c.rsplit('#').next().unwrap_or(&c).to_owned())
                .unwrap_or_default(),
            message: message.unwrap_or_else(|| format!("HTTP {status}")),
        }
    }

    fn into_secret_error(self, name: &str, what: &str) -> SecretError {
        match self.code.as_str() {
            "ResourceNotFoundException" => SecretError::NotFound(name.to_owned()),
            "ResourceExistsException" => SecretError::AlreadyExists(name.to_owned()),
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken" => SecretError::Denied(format!(
                "Secrets Manager {what} {name}: {} ({})",
                self.message, self.code
            )),
            _ if self.status == 401 || self.status == 403 => SecretError::Denied(format!(
                "Secrets Manager {what} {name}: {} (HTTP {})",
                self.message, self.status
            )),
            _ => SecretError::Backend(format!(
                "Secrets Manager {what} {name}: {} ({})",
                self.message,
                if self.code.is_empty() {
                    format!("HTTP {}", self.status)
                } else {
                    self.code
                }
            )),
        }
    }
}

impl AwsSecretsManagerStore {
    pub fn new(s: &AwsSmSettings) -> anyhow::Result<AwsSecretsManagerStore> {
        let url = Url::parse(s.endpoint.trim())
            .map_err(|e| anyhow::anyhow!("the Secrets Manager endpoint is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.host().is_some(),
            "the Secrets Manager endpoint must be an http(s) URL with a host"
        );
        Ok(AwsSecretsManagerStore {
            http: super::infra::client(s.ca_pem.as_deref(), s.timeout)?,
            url,
            region: s.region.clone(),
            keys: s.keys.clone(),
            prefix: s.namespace_prefix.clone(),
        })
    }

    /// The secret's name: `matih/<tenant slug>/connector-<first 8 of id>`.
    pub fn name(&self, r: &SecretRef) -> String {
        r.store_path(&self.prefix)
    }

    /// One call of the JSON API: the answer's body, or the error it names.
    async fn call(&self, action: &str, body: &Value) -> Result<Value, (Option<SmError>, String)> {
        let what = format!("Secrets Manager {action}");
        let payload = serde_json::to_vec(body).map_err(|e| (None, format!("{what}: {e}")))?;
        let content_type = "application/x-amz-json-1.1";
        let target = format!("secretsmanager.{action}");
        let signed = sigv4_headers(
            &self.keys,
            &self.region,
            "secretsmanager",
            ToSign {
                method: "POST",
                url: &self.url,
                headers: &[("content-type", content_type), ("x-amz-target", &target)],
                body: &payload,
            },
            &what,
        )
        .map_err(|e| (None, e.message().to_owned()))?;
        let mut rb = self
            .http
            .post(self.url.clone())
            .what(what.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
            .header_str("x-amz-target", &target)
            .map_err(|e| (None, e.message().to_owned()))?;
        for (k, v) in signed {
            rb = rb.header(k, v);
        }
        let resp = rb
            .body(payload)
            .send()
            .await
            .map_err(|e| (None, e.message().to_owned()))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| (None, e.message().to_owned()))?;
        if (200..300).contains(&status) {
            Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        } else {
            Err((Some(SmError::from_body(status, &bytes)), what))
        }
    }

    async fn act(&self, action: &str, name: &str, body: Value) -> Result<Value, SecretError> {
        self.call(action, &body).await.map_err(|(e, what)| match e {
            Some(e) => e.into_secret_error(name, action),
            None => SecretError::Backend(what),
        })
    }

    fn value(creds: &Credentials) -> String {
        let map: serde_json::Map<String, Value> = creds
            .iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v.expose().to_owned())))
            .collect();
        Value::Object(map).to_string()
    }

    /// The secret's description: tags, dates (`NextRotationDate`, `CreatedDate`).
    pub async fn describe(&self, r: &SecretRef) -> Result<Value, SecretError> {
        let name = self.name(r);
        self.act("DescribeSecret", &r.name, json!({"SecretId": name}))
            .await
    }
}

#[async_trait]
impl SecretStore for AwsSecretsManagerStore {
    fn kind(&self) -> &'static str {
        "aws-secrets-manager"
    }

    async fn create(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        let tags: Vec<Value> = r
            .labels()
            .into_iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        self.act(
            "CreateSecret",
            &r.name,
            json!({
                "Name": self.name(r),
                "SecretString": Self::value(creds),
                "Tags": tags,
                "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            }),
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, r: &SecretRef) -> Result<Credentials, SecretError> {
        let v = self
            .act("GetSecretValue", &r.name, json!({"SecretId": self.name(r)}))
            .await?;
        let text = v["SecretString"]
            .as_str()
            .ok_or_else(|| SecretError::Backend(format!("secret {}: no SecretString", r.name)))?;
        let map: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|_| {
            SecretError::Backend(format!(
                "secret {}: the value is not a JSON object of strings",
                r.name
            ))
        })?;
        Ok(map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, SecretString::new(s))))
            .collect())
    }

    /// The value and, from DescribeSecret (sent at the same time), the next
    /// rotation. A describe that fails is logged and costs only the date:
    /// the credentials were read.
    async fn get_with_expiry(&self, r: &SecretRef) -> Result<Stored, SecretError> {
        let (credentials, described) = tokio::join!(self.get(r), self.describe(r));
        let credentials = credentials?;
        let expiry = match described {
            Ok(d) => next_rotation(&d),
            Err(e) => {
                tracing::warn!(secret = %r.name, error = %e, "DescribeSecret failed; the next rotation date is unknown");
                None
            }
        };
        Ok(Stored {
            credentials,
            expiry,
        })
    }

    async fn replace(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        // One new version, made AWSCURRENT in the same call.
        self.act(
            "PutSecretValue",
            &r.name,
            json!({
                "SecretId": self.name(r),
                "SecretString": Self::value(creds),
                "ClientRequestToken": uuid::Uuid::new_v4().to_string(),
            }),
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, r: &SecretRef) -> Result<(), SecretError> {
        match self
            .act(
                "DeleteSecret",
                &r.name,
                json!({"SecretId": self.name(r), "ForceDeleteWithoutRecovery": true}),
            )
            .await
        {
            Ok(_) | Err(SecretError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, SecretError> {
        Ok(self
            .list_with_age(namespace)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    async fn list_with_age(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Option<Duration>)>, SecretError> {
        let dir = format!("{}/", super::tenant_dir(&self.prefix, namespace));
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        // Bounded: 100 pages of 100 is far beyond a tenant's plan limit.
        for _ in 0..100 {
            let mut body =
                json!({"Filters": [{"Key": "name", "Values": [dir]}], "MaxResults": 100});
            if let Some(t) = &next {
                body["NextToken"] = json!(t);
            }
            let v = self.act("ListSecrets", namespace, body).await?;
            for s in v["SecretList"].as_array().into_iter().flatten() {
                let Some(rest) = s["Name"].as_str().and_then(|n| n.strip_prefix(&dir)) else {
                    continue;
                };
                if !rest.starts_with("connector-") || rest.contains('/') {
                    continue;
                }
                let age = s["CreatedDate"]
                    .as_f64()
                    .filter(|c| *c <= now)
                    .map(|c| Duration::from_secs_f64(now - c));
                out.push((rest.to_owned(), age));
            }
            next = v["NextToken"].as_str().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: Value) -> Option<String> {
        next_rotation(&v).map(|e| {
            assert_eq!(e.kind, ExpiryKind::Rotates);
            e.at.to_rfc3339()
        })
    }

    /// DescribeSecret answers shaped as AWS documents them (dates are epoch
    /// seconds with a fraction).
    #[test]
    fn next_rotation_from_describe_secret() {
        let rotating = json!({
            "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:matih/acme/connector-1a2b3c4d-AbCdEf",
            "Name": "matih/acme/connector-1a2b3c4d",
            "RotationEnabled": true,
            "RotationLambdaARN": "arn:aws:lambda:us-east-1:123456789012:function:rotate",
            "RotationRules": {"AutomaticallyAfterDays": 30},
            "LastRotatedDate": 1_795_000_000.123,
            "NextRotationDate": 1_797_552_000.0,
            "LastChangedDate": 1_795_000_000.5,
            "CreatedDate": 1_790_000_000.25,
            "Tags": [{"Key": "matih.ai/connector-type", "Value": "postgresql"}],
        });
        assert_eq!(
            at(rotating.clone()),
            Some("2026-12-18T00:00:00+00:00".to_owned())
        );

        // No NextRotationDate: the last rotation plus the rule.
        let mut derived = rotating.clone();
        derived.as_object_mut().unwrap().remove("NextRotationDate");
        derived["LastRotatedDate"] = json!(1_795_000_000.0);
        assert_eq!(
            at(derived.clone()),
            Some("2026-12-18T11:06:40+00:00".to_owned())
        );

        let mut off = rotating;
        off["RotationEnabled"] = json!(false);
        assert_eq!(at(off), None);
        assert_eq!(
            at(json!({"Name": "matih/acme/connector-1a2b3c4d", "CreatedDate": 1_790_000_000.0})),
            None
        );
        assert_eq!(
            at(json!({"NextRotationDate": null, "RotationEnabled": null})),
            None
        );
    }
}
