//! Credentials as Kubernetes Secrets, through the `kube` client, in the seed's
//! shape: `connector-<first 8 of id>` in namespace `matih-<tenant slug>`, type
//! Opaque, labels `matih.ai/connector-id` and `matih.ai/connector-type`, values
//! under `data` (base64 on the wire).

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use matih_connector_core::{Credentials, SecretString};

use super::{SecretError, SecretRef, SecretStore};

pub use super::{LABEL_ID, LABEL_TYPE};

#[derive(Clone)]
pub struct KubernetesSecretStore {
    client: Client,
}

impl std::fmt::Debug for KubernetesSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubernetesSecretStore")
    }
}

/// Maps the API server's answer; the Status message is kept (it names the
/// object, never its data).
fn map_err(name: &str, e: kube::Error) -> SecretError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => SecretError::NotFound(name.to_owned()),
        kube::Error::Api(s) if s.code == 409 => SecretError::AlreadyExists(name.to_owned()),
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            SecretError::Denied(format!("{} ({})", s.message, s.code))
        }
        kube::Error::Api(s) => SecretError::Backend(format!("{} ({})", s.message, s.code)),
        other => SecretError::Backend(other.to_string()),
    }
}

impl KubernetesSecretStore {
    pub fn new(client: Client) -> Self {
        KubernetesSecretStore { client }
    }

    /// A client from `api_url` (+ bearer token file), or the in-cluster
    /// configuration / kubeconfig when no URL is given.
    pub async fn connect(
        api_url: Option<&str>,
        token_file: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        matih_connector_core::tls::install_default_provider();
        let mut config = match api_url {
            Some(url) => kube::Config::new(url.parse()?),
            None => kube::Config::infer().await?,
        };
        if let Some(path) = token_file {
            let token = std::fs::read_to_string(path)?;
            config.auth_info.token = Some(token.trim().to_owned().into());
        }
        config.connect_timeout = Some(std::time::Duration::from_secs(10));
        config.read_timeout = Some(std::time::Duration::from_secs(30));
        config.write_timeout = Some(std::time::Duration::from_secs(30));
        Ok(KubernetesSecretStore {
            client: Client::try_from(config)?,
        })
    }

    fn api(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn data(creds: &Credentials) -> BTreeMap<String, ByteString> {
        creds
            .iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.expose().as_bytes().to_vec())))
            .collect()
    }

    fn secret(r: &SecretRef, creds: &Credentials, resource_version: Option<String>) -> Secret {
        let labels = r.labels();
        Secret {
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(r.namespace.clone()),
                labels: Some(labels),
                resource_version,
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(Self::data(creds)),
            ..Default::default()
        }
    }
}

#[async_trait]
impl SecretStore for KubernetesSecretStore {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    async fn create(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        self.api(&r.namespace)
            .create(&PostParams::default(), &Self::secret(r, creds, None))
            .await
            .map(|_| ())
            .map_err(|e| map_err(&r.name, e))
    }

    async fn get(&self, r: &SecretRef) -> Result<Credentials, SecretError> {
        let s = self
            .api(&r.namespace)
            .get(&r.name)
            .await
            .map_err(|e| map_err(&r.name, e))?;
        let mut out: Credentials = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    SecretString::new(String::from_utf8_lossy(&v.0).into_owned()),
                )
            })
            .collect();
        // stringData is write-only in a real API server, but a secret made by
        // hand through another path may still carry it.
        for (k, v) in s.string_data.unwrap_or_default() {
            out = out.with(k, v);
        }
        Ok(out)
    }

    async fn replace(&self, r: &SecretRef, creds: &Credentials) -> Result<(), SecretError> {
        let api = self.api(&r.namespace);
        // resourceVersion makes the PUT conditional: a concurrent writer turns
        // into a 409 instead of a lost update.
        let current = api.get(&r.name).await.map_err(|e| map_err(&r.name, e))?;
        let secret = Self::secret(r, creds, current.metadata.resource_version);
        api.replace(&r.name, &PostParams::default(), &secret)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&r.name, e))
    }

    async fn delete(&self, r: &SecretRef) -> Result<(), SecretError> {
        match self
            .api(&r.namespace)
            .delete(&r.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_err(&r.name, e) {
                SecretError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, SecretError> {
        let lp = ListParams::default().labels(LABEL_ID);
        let list = self
            .api(namespace)
            .list(&lp)
            .await
            .map_err(|e| map_err(namespace, e))?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn list_with_age(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, Option<std::time::Duration>)>, SecretError> {
        let lp = ListParams::default().labels(LABEL_ID);
        let list = self
            .api(namespace)
            .list(&lp)
            .await
            .map_err(|e| map_err(namespace, e))?;
        let now = chrono::Utc::now();
        let mut out: Vec<_> = list
            .items
            .into_iter()
            .filter_map(|s| {
                let age = s
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| (now - t.0).to_std().ok());
                s.metadata.name.map(|n| (n, age))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}
