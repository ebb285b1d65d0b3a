//! Azure Blob connector configuration, checked before any I/O.

use matih_connector_core::sample::file_sets::FileSetSettings;
use std::net::IpAddr;

use base64::Engine;
pub(crate) use matih_connector_core::http::endpoint::host_of;
use matih_connector_core::http::endpoint::{tls_for_scheme, tls_said};
use matih_connector_core::{
    metadata, ConnectionConfig, ConnectorError, Credentials, SecretString, SslMode,
};
use url::Url;

/// The Blob service REST API version every request asks for.
pub(crate) const API_VERSION: &str = "2023-11-03";
pub(crate) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
pub(crate) const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// How requests are authorized.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// No authorization: containers with public access.
    Anonymous,
    /// Shared Key: each request signed with the decoded account key.
    SharedKey(SecretString),
    /// A SAS token's query parameters, appended to every request.
    Sas(Vec<(String, SecretString)>),
    /// Microsoft Entra ID client credentials, exchanged for a bearer token.
    ServicePrincipal {
        client_id: SecretString,
        client_secret: SecretString,
        token_url: Url,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct AzureConfig {
    /// The host and port the core resolves and checks.
    pub host: String,
    pub port: u16,
    pub account: String,
    /// The account's root: `https://<account>.blob.core.windows.net/`, or a
    /// path-style `http://127.0.0.1:10000/<account>` for emulators.
    pub base: Url,
    pub tls: SslMode,
    pub ca_pem: Option<String>,
    pub container: Option<String>,
    pub auth: Auth,
    /// `maxObjectsPerTable`, `sampleBytes`, `sampleFiles`.
    pub files: FileSetSettings,
}

fn is_local(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost")
}

/// Storage account names: 3-24 lowercase letters and digits (the emulator's
/// `devstoreaccount1` included).
fn check_account(a: &str) -> Result<(), ConnectorError> {
    let ok = (3..=24).contains(&a.len())
        && a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.account",
            "the storage account name must be 3-24 lowercase letters and digits",
        ))
    }
}

/// Container names: 3-63 lowercase letters, digits and single dashes
/// (`$root` and `$web` are the special ones).
fn check_container(c: &str) -> Result<(), ConnectorError> {
    let special = matches!(c, "$root" | "$web" | "$logs");
    let ok = special
        || ((3..=63).contains(&c.len())
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            && !c.starts_with('-')
            && !c.ends_with('-')
            && !c.contains("--"));
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::invalid_config(
            "metadata.container",
            "the container name must be 3-63 lowercase letters, digits and single dashes",
        ))
    }
}

fn invalid_url(field: &'static str, what: &str) -> ConnectorError {
    ConnectorError::invalid_config(field, format!("{field} {what}"))
}

/// `(base, tls, account-from-endpoint)`. The base always ends with `/`.
pub(crate) fn parse_endpoint(
    cfg: &ConnectionConfig,
    account: Option<&str>,
) -> Result<(Url, SslMode, Option<String>), ConnectorError> {
    let (mut url, from_endpoint) = match metadata::string(cfg, "endpoint")? {
        Some(text) => {
            let url = Url::parse(&text)
                .map_err(|e| invalid_url("metadata.endpoint", &format!("is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https")
                || url.host_str().is_none()
                || !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
            {
                return Err(invalid_url(
                    "metadata.endpoint",
                    "must be http(s)://host[:port][/account] without user or query (give a SAS in credentials.sasToken)",
                ));
            }
            let segs: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
            let path_account = match segs.as_slice() {
                [] => None,
                [a] => Some((*a).to_owned()),
                _ => {
                    return Err(invalid_url(
                        "metadata.endpoint",
                        "may hold at most one path segment, the account (path-style emulators)",
                    ))
                }
            };
            let host = host_of(&url).unwrap_or_default();
            if let Some(h) = cfg.host.as_deref().map(str::trim) {
                if !h.eq_ignore_ascii_case(&host) {
                    return Err(ConnectorError::invalid_config(
                        "host",
                        "host and metadata.endpoint name different hosts: give one",
                    ));
                }
            }
            if cfg
                .port
                .is_some_and(|p| Some(p) != url.port_or_known_default())
            {
                return Err(ConnectorError::invalid_config(
                    "port",
                    "port and metadata.endpoint name different ports: give one",
                ));
            }
            (url, path_account)
        }
        None => {
            let host = match cfg.host.as_deref().map(str::trim) {
                Some(h) if !h.is_empty() => {
                    h.trim_start_matches('[').trim_end_matches(']').to_owned()
                }
                _ => match account {
                    Some(a) => format!("{a}.blob.core.windows.net"),
                    None => {
                        return Err(ConnectorError::invalid_config(
                            "metadata.account",
                            "give metadata.account, host or metadata.endpoint",
                        ))
                    }
                },
            };
            let https = !tls_said(cfg) || cfg.ssl_mode()?.is_tls();
            let scheme = if https { "https" } else { "http" };
            let port = cfg.port.unwrap_or(if https { 443 } else { 80 });
            let h = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let mut url = Url::parse(&format!("{scheme}://{h}:{port}/"))
                .map_err(|e| invalid_url("host", &format!("does not form a URL: {e}")))?;
            // Emulators on an address or localhost are path-style: the
            // account is the first path segment.
            if is_local(&host) {
                if let Some(a) = account {
                    url.set_path(&format!("/{a}"));
                }
            }
            let path_account = is_local(&host)
                .then(|| account.map(str::to_owned))
                .flatten();
            (url, path_account)
        }
    };
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    let tls = tls_for_scheme(cfg, url.scheme())?;
    Ok((url, tls, from_endpoint))
}

/// SAS tokens come with or without the leading `?`; they must carry a
/// signature (`sig`).
fn parse_sas(token: &SecretString) -> Result<Vec<(String, SecretString)>, ConnectorError> {
    let t = token.expose().trim().trim_start_matches('?');
    let pairs: Vec<(String, SecretString)> = url::form_urlencoded::parse(t.as_bytes())
        .map(|(k, v)| (k.into_owned(), SecretString::new(v.into_owned())))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "sig") {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.sasToken is not a SAS token (no sig parameter)",
        ));
    }
    Ok(pairs)
}

impl AzureConfig {
    pub fn parse(
        cfg: &ConnectionConfig,
        creds: &Credentials,
    ) -> Result<AzureConfig, ConnectorError> {
        let meta_account = metadata::string(cfg, "account")?;
        let cred_account = creds
            .get("accountName")
            .map(|a| a.expose().trim().to_owned());
        // The default endpoint is derived from metadata.account only: the core
        // resolves the endpoint before it sees any credential.
        let (base, tls, path_account) = parse_endpoint(cfg, meta_account.as_deref())?;
        let configured = match (meta_account, cred_account) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConnectorError::invalid_config(
                    "metadata.account",
                    "metadata.account and credentials.accountName differ: give one",
                ))
            }
            (a, b) => a.or(b),
        };
        let host = host_of(&base).unwrap_or_default();
        let from_host = host
            .strip_suffix(".blob.core.windows.net")
            .or_else(|| host.split('.').next().filter(|_| host.contains(".blob.")))
            .map(str::to_owned);
        let account = match (configured, path_account) {
            (Some(a), Some(p)) if a != p => {
                return Err(ConnectorError::invalid_config(
                    "metadata.account",
                    "metadata.account differs from the account in metadata.endpoint's path",
                ))
            }
            (Some(a), _) => a,
            (None, Some(p)) => p,
            (None, None) => from_host.ok_or_else(|| {
                ConnectorError::invalid_config(
                    "metadata.account",
                    "metadata.account is required when the endpoint does not name the account",
                )
            })?,
        };
        check_account(&account)?;

        let meta_container = metadata::string(cfg, "container")?;
        let container = match (meta_container, cfg.database.clone()) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConnectorError::invalid_config(
                    "metadata.container",
                    "database and metadata.container name different containers: give one",
                ))
            }
            (a, b) => a.or(b),
        };
        if let Some(c) = &container {
            check_container(c)?;
        }
        if cfg.schema.is_some() {
            return Err(ConnectorError::invalid_config(
                "schema",
                "Azure Blob has no schema level below the container: leave schema empty",
            ));
        }

        let get = |k: &str| creds.get(k).filter(|v| !v.is_empty());
        let sp_keys = ["clientId", "clientSecret", "tenantId"];
        let sp_given = sp_keys.iter().filter(|k| get(k).is_some()).count();
        let kinds = [
            get("accountKey").is_some(),
            get("sasToken").is_some(),
            sp_given > 0,
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "give one of credentials.accountKey, credentials.sasToken or clientId/clientSecret/tenantId",
            ));
        }
        let auth = if let Some(k) = get("accountKey") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(k.expose().trim())
                .map_err(|_| {
                    ConnectorError::invalid_config(
                        "credentials",
                        "credentials.accountKey is not base64",
                    )
                })?;
            if raw.is_empty() {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "credentials.accountKey is empty",
                ));
            }
            Auth::SharedKey(k.clone())
        } else if let Some(s) = get("sasToken") {
            Auth::Sas(parse_sas(s)?)
        } else if sp_given > 0 {
            for k in sp_keys {
                creds.require(k)?;
            }
            let tenant = get("tenantId")
                .map(|t| t.expose().trim().to_owned())
                .unwrap_or_default();
            let tenant_ok = !tenant.is_empty()
                && tenant.len() <= 128
                && tenant
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
            if !tenant_ok {
                return Err(ConnectorError::invalid_config(
                    "credentials",
                    "credentials.tenantId must be a tenant id or domain",
                ));
            }
            let token_url = match metadata::string(cfg, "tokenUrl")? {
                Some(u) => u,
                None => format!("{DEFAULT_AUTHORITY}/{tenant}/oauth2/v2.0/token"),
            };
            let token_url = Url::parse(&token_url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| invalid_url("metadata.tokenUrl", "must be an http(s) URL"))?;
            Auth::ServicePrincipal {
                client_id: get("clientId").cloned().unwrap_or_default(),
                client_secret: get("clientSecret").cloned().unwrap_or_default(),
                token_url,
            }
        } else {
            Auth::Anonymous
        };
        if !matches!(auth, Auth::ServicePrincipal { .. }) && cfg.metadata.contains_key("tokenUrl") {
            return Err(ConnectorError::invalid_config(
                "metadata",
                "metadata.tokenUrl needs clientId/clientSecret/tenantId credentials",
            ));
        }
        Ok(AzureConfig {
            port: base.port_or_known_default().unwrap_or(443),
            host,
            account,
            base,
            tls,
            ca_pem: cfg.ssl_ca_pem.clone(),
            container,
            auth,
            files: FileSetSettings::parse(cfg)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matih_connector_core::ErrorCode;
    use serde_json::json;
    use serde_json::Value;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn cfg(meta: Value) -> ConnectionConfig {
        ConnectionConfig {
            metadata: serde_json::from_value(meta).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoints_and_accounts() {
        let creds = Credentials::new().with("accountKey", KEY);
        let c = AzureConfig::parse(&cfg(json!({"account": "acme"})), &creds).unwrap();
        assert_eq!(c.base.as_str(), "https://acme.blob.core.windows.net/");
        assert_eq!(c.tls, SslMode::VerifyFull);
        let c = AzureConfig::parse(
            &cfg(json!({"endpoint": "http://127.0.0.1:10000/devstoreaccount1"})),
            &creds,
        )
        .unwrap();
        assert_eq!(c.account, "devstoreaccount1");
        assert_eq!(c.base.as_str(), "http://127.0.0.1:10000/devstoreaccount1/");
        assert_eq!(c.tls, SslMode::Disable);
        let mut h = cfg(json!({"account": "devstoreaccount1"}));
        h.host = Some("127.0.0.1".into());
        h.port = Some(10000);
        h.ssl_enabled = Some(false);
        let c = AzureConfig::parse(&h, &creds).unwrap();
        assert_eq!(c.base.as_str(), "http://127.0.0.1:10000/devstoreaccount1/");
        let c = AzureConfig::parse(
            &cfg(json!({"endpoint": "https://acme.blob.core.windows.net"})),
            &creds,
        )
        .unwrap();
        assert_eq!(c.account, "acme");
        for bad in [
            json!({}),
            json!({"account": "Bad_Name"}),
            json!({"account": "acme", "endpoint": "http://h/a/b"}),
            json!({"account": "acme", "endpoint": "http://h/?sv=1"}),
            json!({"account": "other", "endpoint": "http://127.0.0.1:1/devstoreaccount1"}),
            json!({"account": "acme", "container": "Not_Valid"}),
        ] {
            let e = AzureConfig::parse(&cfg(bad.clone()), &creds).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration, "{bad}");
        }
    }

    #[test]
    fn credentials() {
        let c = cfg(json!({"account": "acme"}));
        assert!(matches!(
            AzureConfig::parse(&c, &Credentials::new()).unwrap().auth,
            Auth::Anonymous
        ));
        let e = AzureConfig::parse(&c, &Credentials::new().with("accountKey", "not base64!"))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        assert!(!e.message().contains("not base64!"));
        let sas = Credentials::new().with(
            "sasToken",
            "?sv=2023-11-03&ss=b&srt=sco&sp=rl&sig=abc%2Bdef",
        );
        match AzureConfig::parse(&c, &sas).unwrap().auth {
            Auth::Sas(p) => assert_eq!(
                p.iter().find(|(k, _)| k == "sig").unwrap().1.expose(),
                "abc+def"
            ),
            other => panic!("{other:?}"),
        }
        assert!(AzureConfig::parse(&c, &Credentials::new().with("sasToken", "sv=1")).is_err());
        let sp = Credentials::new()
            .with("clientId", "id")
            .with("clientSecret", "s")
            .with("tenantId", "contoso.onmicrosoft.com");
        match AzureConfig::parse(&c, &sp).unwrap().auth {
            Auth::ServicePrincipal { token_url, .. } => assert_eq!(
                token_url.as_str(),
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
            ),
            other => panic!("{other:?}"),
        }
        assert!(AzureConfig::parse(&c, &Credentials::new().with("clientId", "id")).is_err());
        assert!(AzureConfig::parse(&c, &sp.clone().with("accountKey", KEY)).is_err());
        assert!(!format!("{:?}", AzureConfig::parse(&c, &sp).unwrap()).contains("\"s\""));
    }
}
