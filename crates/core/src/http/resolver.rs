//! The only DNS resolver the HTTP client has.

use std::net::{IpAddr, SocketAddr};

use crate::{resolve_host, ConnectContext, ConnectorError, EgressPolicy, ErrorCode, Timeouts};

/// Answers the connector's own host with the addresses the connectivity test
/// resolved and checked (so the answer cannot change between check and use),
/// or, through an SSH tunnel, never (the target's URLs go to the tunnel's
/// forwarder without a lookup, and its private name must not reach the
/// platform's DNS), and every other name through [`resolve_host`]: DNS bounded by the connect
/// timeout, then the egress policy, which drops denied addresses and fails with
/// `EGRESS_DENIED` when none is left. Its errors are [`crate::ConnectorError`]s,
/// which the client's error mapping finds again inside reqwest's error.
#[derive(Debug)]
pub(crate) struct EgressResolver {
    /// The configured host, lower-case, without brackets or a trailing dot.
    own_host: Option<String>,
    own_addrs: Vec<IpAddr>,
    /// Through a tunnel: `host:port` of its target, for the refusal.
    tunnelled: Option<String>,
    timeouts: Timeouts,
    egress: EgressPolicy,
}

pub(crate) fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl EgressResolver {
    pub(crate) fn new(ctx: &ConnectContext) -> EgressResolver {
        #[cfg(feature = "ssh")]
        let tunnelled = ctx.tunnel.as_ref().map(|t| t.target().to_owned());
        #[cfg(not(feature = "ssh"))]
        let tunnelled = ctx.tunnel.as_ref().map(|t| match *t {});
        EgressResolver {
            own_host: ctx.host.as_deref().map(normalize),
            // Through a tunnel, `addrs` is the forwarder: never an answer.
            own_addrs: match tunnelled {
                Some(_) => Vec::new(),
                None => ctx.addrs.iter().map(SocketAddr::ip).collect(),
            },
            tunnelled,
            timeouts: ctx.timeouts,
            egress: ctx.egress.clone(),
        }
    }
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = normalize(name.as_str());
        // Port 0: hyper puts the URL's port in.
        let addrs = |ips: Vec<IpAddr>| -> reqwest::dns::Addrs {
            Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)))
        };
        let own = self.own_host.as_deref() == Some(name.as_str());
        if let (true, Some(target)) = (own, &self.tunnelled) {
            let e = ConnectorError::new(
                ErrorCode::EgressDenied,
                format!(
                    "{name} is reached only through the SSH tunnel, which leads to {target} only"
                ),
            )
            .with_context("host", name)
            .with_retryable(false);
            return Box::pin(async move {
                Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            });
        }
        if own && !self.own_addrs.is_empty() {
            let ips = self.own_addrs.clone();
            return Box::pin(async move { Ok(addrs(ips)) });
        }
        let timeouts = self.timeouts;
        let egress = self.egress.clone();
        Box::pin(async move {
            match resolve_host(&name, 0, timeouts, &egress).await {
                Ok(found) => Ok(addrs(found.into_iter().map(|a| a.ip()).collect())),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    fn ctx(host: &str, addrs: &[&str], egress: EgressPolicy) -> ConnectContext {
        ConnectContext {
            host: Some(host.into()),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            timeouts: Timeouts::default(),
            egress,
            tunnel: None,
        }
    }

    fn code(e: Box<dyn std::error::Error + Send + Sync>) -> Option<ErrorCode> {
        e.downcast_ref::<ConnectorError>().map(|c| c.code())
    }

    #[tokio::test]
    async fn own_host_is_pinned_other_names_go_through_the_policy() {
        let r = EgressResolver::new(&ctx(
            "API.Example.Invalid.",
            &["10.1.2.3:8443"],
            EgressPolicy::default(),
        ));
        let got: Vec<SocketAddr> = r
            .resolve("api.example.invalid".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(got, vec!["10.1.2.3:0".parse().unwrap()]);
        // Another name is looked up (.invalid never resolves: no DNS asked).
        let e = r
            .resolve("bucket.api.example.invalid".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(code(e), Some(ErrorCode::DnsResolutionFailed));
        // A name whose every address is denied.
        let r = EgressResolver::new(&ctx(
            "api.example.invalid",
            &["10.1.2.3:443"],
            EgressPolicy::from_lists("", "127.0.0.0/8, ::1/128").unwrap(),
        ));
        let e = r.resolve("localhost".parse().unwrap()).await.err().unwrap();
        assert_eq!(code(e), Some(ErrorCode::EgressDenied));
    }
}
