//! Notifiers: where ERROR, recovery and credential-expiry notices go. Notices reach a notifier only
//! through the outbox (see `outbox` in `mod.rs`), which gives at-least-once
//! delivery; a notifier just tries once and says whether it worked.

use std::time::Duration;

use async_trait::async_trait;

/// One stored notice: its outbox id, event kind and the JSON body exactly as it
/// will be sent (and signed).
#[derive(Clone, Debug)]
pub struct Notice {
    pub id: String,
    pub kind: String,
    pub body: String,
}

#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// One delivery attempt. The error is a short description for the outbox
    /// row and the logs; it must not carry secrets.
    async fn deliver(&self, notice: &Notice) -> Result<(), String>;
}

/// Writes each notice to the service log at WARN level.
#[derive(Debug, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    fn name(&self) -> &'static str {
        "log"
    }
    async fn deliver(&self, n: &Notice) -> Result<(), String> {
        tracing::warn!(notification = %n.id, event = %n.kind, body = %n.body, "connector health notification");
        Ok(())
    }
}

/// POSTs the body to a URL, signed: `X-Matih-Signature: sha256=<hex HMAC-SHA256
/// of the body>`. `X-Matih-Delivery` carries the notice id, so a receiver can drop
/// the duplicates at-least-once delivery may produce.
pub struct WebhookNotifier {
    url: String,
    key: ring::hmac::Key,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookNotifier")
    }
}

pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!("sha256={}", hex(ring::hmac::sign(&key, body).as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl WebhookNotifier {
    /// A webhook trusting the public (Mozilla) roots for `https` URLs.
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> anyhow::Result<Self> {
        Self::with_ca(url, secret, timeout, None)
    }

    /// A webhook whose `https` URL is verified against `ca_pem` (PEM
    /// certificates, e.g. a private CA) instead of the public roots. The TLS
    /// configuration is core's `verify-full` one, with core's crypto provider.
    pub fn with_ca(
        url: &str,
        secret: &[u8],
        timeout: Duration,
        ca_pem: Option<&str>,
    ) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| anyhow::anyhow!("the notification webhook URL is not a valid URL"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "the notification webhook URL must be http or https"
        );
        anyhow::ensure!(
            !secret.is_empty(),
            "the notification webhook needs a secret"
        );
        let tls = matih_connector_core::tls::client_config(
            matih_connector_core::SslMode::VerifyFull,
            ca_pem,
        )
        .map_err(|e| anyhow::anyhow!("the notification webhook CA: {}", e.message()))?
        .expect("verify-full always has a TLS configuration");
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(WebhookNotifier {
            url: url.to_owned(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            client,
        })
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &'static str {
        "webhook"
    }
    async fn deliver(&self, n: &Notice) -> Result<(), String> {
        let sig = format!(
            "sha256={}",
            hex(ring::hmac::sign(&self.key, n.body.as_bytes()).as_ref())
        );
        let resp = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-matih-signature", sig)
            .header("x-matih-event", &n.kind)
            .header("x-matih-delivery", &n.id)
            .body(n.body.clone())
            .send()
            .await
            // The URL may carry a token: never in the message.
            .map_err(|e| format!("webhook request failed: {}", e.without_url()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered HTTP {}", resp.status().as_u16()))
        }
    }
}

/// Every notifier in turn; delivered when all of them succeeded (a retry
/// repeats the ones that already worked: at least once, not exactly once).
pub struct FanOut(pub Vec<std::sync::Arc<dyn Notifier>>);

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.0.iter().map(|n| n.name()).collect();
        f.debug_tuple("FanOut").field(&names).finish()
    }
}

#[async_trait]
impl Notifier for FanOut {
    fn name(&self) -> &'static str {
        "fan-out"
    }
    async fn deliver(&self, n: &Notice) -> Result<(), String> {
        let mut errors = Vec::new();
        for x in &self.0 {
            if let Err(e) = x.deliver(n).await {
                errors.push(format!("{}: {e}", x.name()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn webhook_refuses_bad_urls_without_echoing_them() {
        let e = WebhookNotifier::new("ftp://u:tok@x/", b"k", Duration::from_secs(1)).unwrap_err();
        assert!(!e.to_string().contains("tok"));
        assert!(WebhookNotifier::new("http://127.0.0.1:1/", b"", Duration::from_secs(1)).is_err());
    }
}
