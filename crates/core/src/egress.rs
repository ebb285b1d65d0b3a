//! Which addresses a connector may reach.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{ConnectorError, ErrorCode};

/// Networks denied unless explicitly allowed: link-local (where cloud metadata
/// services live), the well-known metadata addresses, "this network",
/// multicast and broadcast.
pub const DEFAULT_DENIED: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "100.100.100.200/32",
    "fd00:ec2::254/128",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "ff00::/8",
    "::/128",
];

/// An egress policy, applied to every address the core resolves before any
/// connection is opened.
///
/// Order of evaluation: an address in `deny` is refused; when `allow` is not
/// empty, an address outside it is refused; an address in the default-denied
/// networks is refused unless `allow` names a network holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressPolicy {
    /// Networks that may be reached; empty means every network not denied.
    #[serde(default)]
    pub allow: Vec<IpNet>,
    /// Networks that may never be reached.
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// Apply [`DEFAULT_DENIED`]. On by default.
    #[serde(default = "yes")]
    pub deny_defaults: bool,
}

fn yes() -> bool {
    true
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            deny_defaults: true,
        }
    }
}

impl EgressPolicy {
    /// A policy that allows everything (for tools run by an operator).
    pub fn allow_all() -> Self {
        EgressPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            deny_defaults: false,
        }
    }

    /// Parses comma- or space-separated CIDR lists, e.g. from environment variables.
    pub fn from_lists(allow: &str, deny: &str) -> Result<Self, ConnectorError> {
        fn parse(list: &str, field: &'static str) -> Result<Vec<IpNet>, ConnectorError> {
            list.split([',', ' '])
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    let s = s.trim();
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            ConnectorError::invalid_config(
                                field,
                                format!("{s:?} is not a CIDR network"),
                            )
                        })
                })
                .collect()
        }
        Ok(EgressPolicy {
            allow: parse(allow, "egress.allow")?,
            deny: parse(deny, "egress.deny")?,
            deny_defaults: true,
        })
    }

    /// `EGRESS_DENIED` naming the address when the policy refuses `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), ConnectorError> {
        let ip = ip.to_canonical();
        let deny = |why: &str| {
            Err(ConnectorError::new(
                ErrorCode::EgressDenied,
                format!("address {ip} is not allowed: {why}"),
            )
            .with_retryable(false))
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return deny("it is in a denied network");
        }
        let allowed = self.allow.iter().any(|n| n.contains(&ip));
        if !self.allow.is_empty() && !allowed {
            return deny("it is outside the allowed networks");
        }
        if self.deny_defaults && !allowed && default_denied().iter().any(|n| n.contains(&ip)) {
            return deny(
                "link-local, metadata, multicast and unspecified addresses are denied by default",
            );
        }
        Ok(())
    }
}

fn default_denied() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| {
        DEFAULT_DENIED
            .iter()
            .map(|s| s.parse().expect("valid CIDR"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_deny_metadata_and_link_local() {
        let p = EgressPolicy::default();
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "100.100.100.200",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "0.0.0.0",
        ] {
            let err = p.check(ip(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::EgressDenied, "{bad}");
        }
        for ok in ["127.0.0.1", "10.1.2.3", "8.8.8.8", "::1"] {
            p.check(ip(ok)).unwrap();
        }
    }

    #[test]
    fn allow_and_deny_lists() {
        let p = EgressPolicy::from_lists("10.0.0.0/8, 169.254.10.0/24", "10.9.0.0/16 127.0.0.1")
            .unwrap();
        p.check(ip("10.1.1.1")).unwrap();
        p.check(ip("169.254.10.5")).unwrap();
        assert!(p.check(ip("10.9.1.1")).is_err());
        assert!(p.check(ip("127.0.0.1")).is_err());
        assert!(p.check(ip("8.8.8.8")).is_err());
        assert!(EgressPolicy::from_lists("nonsense", "").is_err());
        EgressPolicy::allow_all()
            .check(ip("169.254.169.254"))
            .unwrap();
    }
}
