//! The HTTP client through an SSH tunnel: the one rule that decides which
//! URLs go through the bastion.
//!
//! reqwest cannot be given a stream for a host, and its resolver cannot send
//! a host to another port (hyper-util puts the URL's explicit port on every
//! address a resolver returns) nor see an IP-literal host (never resolved).
//! It can be given a proxy per URL, though, and through a SOCKS5 proxy
//! (`socks5h`: the name is sent, not resolved) it runs TLS over the proxied
//! stream with the URL's own host as server name. So a tunnelled client
//! sends the target's URLs to the tunnel's SOCKS5 forwarder
//! ([`crate::ssh::Tunnel::http_proxy`]), which opens a channel through the
//! bastion to that one target; SNI and certificate checks stay on the
//! target's name (or address), never the forwarder's 127.0.0.1.
//!
//! The rule: a URL whose host and port are the connector's (the tunnel's
//! target) goes through the bastion, and core does not check the target
//! against the egress policy (the bastion resolves and reaches it in the
//! tenant's network, as for every tunnelled source). Any other port of the
//! connector's host is refused (`EGRESS_DENIED`): the tunnel leads to one
//! `host:port`, and neither core's DNS nor a direct connection may be used for
//! a private name. Other hosts (an OAuth token endpoint, an OpenAPI document
//! elsewhere) are reached directly under the egress policy, as without a
//! tunnel.

use url::Url;

use super::display_url;
use crate::{ConnectContext, ConnectorError, ErrorCode};

/// Where a tunnelled client's target URLs go.
#[derive(Clone, Debug)]
pub(crate) struct TunnelRoute {
    /// The target's host as configured.
    host: String,
    port: u16,
    /// `host:port`, as messages name it.
    target: String,
    bastion: String,
    /// `socks5h://127.0.0.1:<port>` of the tunnel's SOCKS5 forwarder.
    proxy: Url,
}

impl TunnelRoute {
    /// The route of a context that goes through a tunnel; `None` without one.
    /// Starts the tunnel's SOCKS5 forwarder.
    pub(crate) fn of(ctx: &ConnectContext) -> Result<Option<TunnelRoute>, ConnectorError> {
        let Some(tunnel) = ctx.tunnel.as_ref() else {
            return Ok(None);
        };
        #[cfg(feature = "ssh")]
        {
            let (host, port) = tunnel.target_parts();
            let addr = tunnel.http_proxy()?;
            let proxy = Url::parse(&format!("socks5h://{addr}"))
                .map_err(|e| ConnectorError::internal(format!("the forwarder's URL: {e}")))?;
            Ok(Some(TunnelRoute {
                host: host.to_owned(),
                port,
                target: tunnel.target().to_owned(),
                bastion: tunnel.bastion().to_owned(),
                proxy,
            }))
        }
        #[cfg(not(feature = "ssh"))]
        match *tunnel {}
    }

    /// Whether `host` is the target's host (addresses as addresses, names
    /// without case and trailing dot).
    pub(crate) fn is_target_host(&self, host: &str) -> bool {
        crate::driver::same_host(host, &self.host)
    }

    /// Whether `url` goes through the bastion: the target's host and port.
    pub(crate) fn carries(&self, url: &Url) -> bool {
        url.host_str().is_some_and(|h| self.is_target_host(h))
            && url.port_or_known_default() == Some(self.port)
    }

    /// The refusal of another port on the target's host.
    pub(crate) fn refusal(&self, what: &str) -> ConnectorError {
        ConnectorError::new(
            ErrorCode::EgressDenied,
            format!(
                "{what}: the connector's host is reached only through the SSH bastion {}, \
                 which leads to {} only",
                self.bastion, self.target
            ),
        )
        .with_context("bastion", &self.bastion)
        .with_context("target", &self.target)
        .with_retryable(false)
    }

    /// The client's proxy: the forwarder for the target's URLs, none for
    /// the others.
    pub(crate) fn proxy(&self) -> reqwest::Proxy {
        let route = self.clone();
        reqwest::Proxy::custom(move |url| route.carries(url).then(|| route.proxy.clone()))
    }

    /// Checks a URL against the rule: `Ok(true)` when it goes through the
    /// bastion, `Ok(false)` when the egress policy decides, the refusal for
    /// another port of the target's host.
    pub(crate) fn check(&self, url: &Url) -> Result<bool, ConnectorError> {
        if self.carries(url) {
            return Ok(true);
        }
        match url.host_str() {
            Some(h) if self.is_target_host(h) => Err(self.refusal(&display_url(url))),
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, port: u16) -> TunnelRoute {
        TunnelRoute {
            host: host.to_owned(),
            port,
            target: format!("{host}:{port}"),
            bastion: "bastion.example:22".into(),
            proxy: Url::parse("socks5h://127.0.0.1:1080").unwrap(),
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn only_the_targets_host_and_port_go_through_the_bastion() {
        let r = route("API.Internal.", 443);
        assert!(r.carries(&url("https://api.internal/v1")));
        assert!(r.carries(&url("https://api.internal:443/v1")));
        assert!(r.carries(&url("https://API.INTERNAL./v1")));
        // http's default port is 80, not the target's.
        assert!(!r.carries(&url("http://api.internal/v1")));
        assert!(!r.carries(&url("https://other.internal/v1")));

        let ip = route("10.0.0.5", 8080);
        assert!(ip.carries(&url("http://10.0.0.5:8080/graphql")));
        // The URL parser's other spellings of the same address.
        assert!(ip.carries(&url("http://0x0a000005:8080/")));
        assert!(!ip.carries(&url("http://10.0.0.5/")));

        let v6 = route("[fd00::5]", 443);
        assert!(v6.carries(&url("https://[fd00:0::5]/")));
    }

    #[test]
    fn other_ports_of_the_target_are_refused_other_hosts_left_to_the_policy() {
        let r = route("api.internal", 8443);
        assert!(r.check(&url("https://api.internal:8443/x")).unwrap());
        let e = r
            .check(&url("http://api.internal:9000/spec?k=SECRET"))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::EgressDenied);
        assert!(e.message().contains("api.internal:8443 only"), "{e}");
        assert!(!e.message().contains("SECRET"), "{e}");
        assert_eq!(e.context_value("bastion"), Some("bastion.example:22"));
        assert!(!r.check(&url("https://login.example.com/token")).unwrap());
    }
}
