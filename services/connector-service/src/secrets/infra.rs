//! The HTTP client the service reaches its own infrastructure with (a Vault,
//! AWS Secrets Manager): core's pinned client, with core's TLS rule, time
//! limits on every request and bounded bodies. Unlike a connector's client it
//! is not held to the connectors' egress profile: the operator chose these
//! endpoints (a Vault on a private network is the normal case), tenants did not.

use std::time::Duration;

use matih_connector_core::http::{HttpClient, HttpOptions, Redirects};
use matih_connector_core::{ConnectContext, EgressPolicy, SslMode, Timeouts};

/// Largest answer accepted from a secret store.
const MAX_BODY_BYTES: u64 = 1 << 20;

/// A client verifying https endpoints against `ca_pem` (the public roots when
/// `None`); every request bounded by `timeout`, connecting too. Redirects are
/// not followed: a secret store that redirects is misconfigured, and a token
/// must not follow a redirect anywhere.
pub fn client(ca_pem: Option<&str>, timeout: Duration) -> anyhow::Result<HttpClient> {
    matih_connector_core::tls::install_default_provider();
    let ms = u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let ctx = ConnectContext {
        host: None,
        addrs: Vec::new(),
        timeouts: Timeouts {
            connect_ms: ms,
            query_ms: ms,
        },
        egress: EgressPolicy::allow_all(),
        tunnel: None,
    };
    let opts = HttpOptions::new(SslMode::VerifyFull, ca_pem)
        .redirects(Redirects::None)
        .max_body_bytes(MAX_BODY_BYTES)
        .request_timeout(timeout);
    ctx.http_client(&opts)
        .map_err(|e| anyhow::anyhow!("secret store HTTP client: {}", e.message()))
}
