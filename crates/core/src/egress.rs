//! Which addresses a connector may reach.
//!
//! Every address is checked together with each IPv4 address embedded in it
//! (IPv4-mapped and -compatible, NAT64, 6to4, Teredo), so a denied IPv4
//! network cannot be reached through an IPv6 spelling of it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Networks the `production` profile denies as well, unless an exception
/// (`except`) or `allow` names a network holding the address: loopback,
/// RFC 1918, CGNAT (100.64/10), unique-local (fc00::/7), deprecated site-local
/// and Azure's platform address 168.63.129.16 (its metadata and DHCP service).
pub const PRODUCTION_DENIED: &[&str] = &[
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "fec0::/10",
    "168.63.129.16/32",
];

/// Which built-in deny list applies on top of [`DEFAULT_DENIED`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressProfile {
    /// For a laptop or a test: loopback and private networks are reachable.
    #[default]
    Embedded,
    /// For a shared deployment: [`PRODUCTION_DENIED`] is denied too.
    Production,
}

impl EgressProfile {
    /// The profile's name, as `MATIH_EGRESS_PROFILE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressProfile::Embedded => "embedded",
            EgressProfile::Production => "production",
        }
    }
}

impl std::str::FromStr for EgressProfile {
    type Err = ConnectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "embedded" => Ok(EgressProfile::Embedded),
            "production" => Ok(EgressProfile::Production),
            _ => Err(ConnectorError::invalid_config(
                "egress.profile",
                format!("{s:?} is not an egress profile (embedded or production)"),
            )),
        }
    }
}

/// An egress policy, applied to every address the core resolves before any
/// connection is opened.
///
/// Order of evaluation, for the address and for every IPv4 address embedded
/// in it (each must pass): an address in `deny` is refused; when `allow` is
/// not empty, an address outside it is refused; an address in the
/// default-denied networks (and, under the `production` profile, in
/// [`PRODUCTION_DENIED`]) is refused unless `allow` or `except` names a
/// network holding it.
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
    /// Exceptions to the built-in deny lists that, unlike `allow`, do not
    /// restrict anything else.
    #[serde(default)]
    pub except: Vec<IpNet>,
    /// The built-in deny list in force besides [`DEFAULT_DENIED`].
    #[serde(default)]
    pub profile: EgressProfile,
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
            except: Vec::new(),
            profile: EgressProfile::Embedded,
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
            except: Vec::new(),
            profile: EgressProfile::Embedded,
        }
    }

    /// Parses comma- or space-separated CIDR lists, e.g. from environment variables.
    pub fn from_lists(allow: &str, deny: &str) -> Result<Self, ConnectorError> {
        Ok(EgressPolicy {
            allow: parse_cidrs(allow, "egress.allow")?,
            deny: parse_cidrs(deny, "egress.deny")?,
            ..EgressPolicy::default()
        })
    }

    /// The `production` profile: [`PRODUCTION_DENIED`] on top of the defaults,
    /// with `except` (comma- or space-separated CIDRs) re-enabling networks.
    pub fn production(except: &str) -> Result<Self, ConnectorError> {
        EgressPolicy::with_profile(EgressProfile::Production, "", except, "")
    }

    /// A policy from a profile and three CIDR lists (comma- or
    /// space-separated): `allow_only`, `except` and `deny`.
    pub fn with_profile(
        profile: EgressProfile,
        allow_only: &str,
        except: &str,
        deny: &str,
    ) -> Result<Self, ConnectorError> {
        Ok(EgressPolicy {
            allow: parse_cidrs(allow_only, "egress.allowOnly")?,
            deny: parse_cidrs(deny, "egress.deny")?,
            except: parse_cidrs(except, "egress.allow")?,
            profile,
            deny_defaults: true,
        })
    }

    /// `EGRESS_DENIED` naming the address when the policy refuses `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), ConnectorError> {
        let ip = ip.to_canonical();
        let mut embedded = [None; 4];
        if let IpAddr::V6(v6) = ip {
            embedded = embedded_ipv4(v6);
        }
        self.check_one(ip, None)?;
        // 0.0.0.0/8 holds no host to reach: an embedding that reads as one is
        // the other reading of an ambiguous prefix (64:ff9b:1::/48).
        for v4 in embedded
            .into_iter()
            .flatten()
            .filter(|v4| v4.octets()[0] != 0)
        {
            self.check_one(IpAddr::V4(v4), Some(ip))?;
        }
        Ok(())
    }

    /// `outer` is the IPv6 address `ip` was found in, for the message.
    fn check_one(&self, ip: IpAddr, outer: Option<IpAddr>) -> Result<(), ConnectorError> {
        let deny = |why: &str| {
            let shown = match outer {
                Some(o) => format!("{o} (which embeds {ip})"),
                None => ip.to_string(),
            };
            Err(ConnectorError::new(
                ErrorCode::EgressDenied,
                format!("address {shown} is not allowed: {why}"),
            )
            .with_retryable(false))
        };
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return deny("it is in a denied network");
        }
        let allowed = self.allow.iter().any(|n| n.contains(&ip));
        if !self.allow.is_empty() && !allowed && outer.is_none() {
            return deny("it is outside the allowed networks");
        }
        let excepted = allowed || self.except.iter().any(|n| n.contains(&ip));
        if self.deny_defaults && !excepted && default_denied().iter().any(|n| n.contains(&ip)) {
            return deny(
                "link-local, metadata, multicast and unspecified addresses are denied by default",
            );
        }
        if self.profile == EgressProfile::Production
            && !excepted
            && production_denied().iter().any(|n| n.contains(&ip))
        {
            return deny(
                "loopback, private, shared (CGNAT) and unique-local networks are denied by the production egress profile",
            );
        }
        Ok(())
    }
}

fn parse_cidrs(list: &str, field: &'static str) -> Result<Vec<IpNet>, ConnectorError> {
    list.split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConnectorError::invalid_config(field, format!("{s:?} is not a CIDR network"))
                })
        })
        .collect()
}

/// The IPv4 addresses an IPv6 address carries (IPv4-mapped addresses are
/// made canonical before this): IPv4-compatible `::a.b.c.d` and SIIT
/// `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96` (RFC 6052) and the local-use
/// `64:ff9b:1::/48` (RFC 8215, read both as a /48 and as a /96 prefix), 6to4
/// `2002::/16` (RFC 3056) and Teredo `2001::/32` (server and client, RFC 4380).
fn embedded_ipv4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 4] {
    let b = ip.octets();
    let seg = ip.segments();
    let last = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let mut out = [None; 4];
    if b[..12].iter().all(|&x| x == 0) {
        // `::` and `::1` are IPv6 addresses of their own (0.0.0.0/8 has no
        // hosts to reach): IPv4-compatible only from 1.0.0.0 on.
        if b[12] != 0 {
            out[0] = Some(last);
        }
    } else if seg[..6] == [0, 0, 0, 0, 0xffff, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // SIIT `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`.
        out[0] = Some(last);
    } else if seg[..3] == [0x64, 0xff9b, 1] {
        out[0] = Some(last);
        out[1] = Some(Ipv4Addr::new(b[6], b[7], b[9], b[10]));
    } else if seg[0] == 0x2002 {
        out[0] = Some(Ipv4Addr::new(b[2], b[3], b[4], b[5]));
    } else if seg[..2] == [0x2001, 0] {
        out[0] = Some(Ipv4Addr::new(b[4], b[5], b[6], b[7]));
        out[1] = Some(Ipv4Addr::new(!b[12], !b[13], !b[14], !b[15]));
    }
    out
}

fn default_denied() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| parse_static(DEFAULT_DENIED))
}

fn production_denied() -> &'static [IpNet] {
    static NETS: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    NETS.get_or_init(|| parse_static(PRODUCTION_DENIED))
}

fn parse_static(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|s| s.parse().expect("valid CIDR"))
        .collect()
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

    const REFUSED_IN_PRODUCTION: &[&str] = &[
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "100.64.0.1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "168.63.129.16",
    ];

    #[test]
    fn production_denies_loopback_private_cgnat_and_ula() {
        let p = EgressPolicy::production("").unwrap();
        for bad in REFUSED_IN_PRODUCTION {
            let err = p.check(ip(bad)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::EgressDenied, "{bad}");
            // The embedded profile keeps them reachable (a laptop's databases).
            EgressPolicy::default().check(ip(bad)).unwrap();
        }
        for ok in ["8.8.8.8", "2606:4700::1111", "100.128.0.1", "172.32.0.1"] {
            p.check(ip(ok)).unwrap();
        }
        assert!(p.check(ip("169.254.169.254")).is_err());
    }

    /// Every IPv6 spelling of a denied IPv4 address is denied, under both
    /// profiles (169.254.169.254 is default-denied) and under production
    /// (10.1.2.3, 127.0.0.1).
    #[test]
    fn embedded_ipv4_forms_are_checked() {
        let prod = EgressPolicy::production("").unwrap();
        let emb = EgressPolicy::default();
        for (form, v4) in [
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::a9fe:a9fe", "169.254.169.254"),
            ("::ffff:0:a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b:1::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b:1:a9fe:a9:fe00::", "169.254.169.254"),
            ("2002:a9fe:a9fe::1", "169.254.169.254"),
            ("2001:0:a9fe:a9fe::1", "169.254.169.254"),
            ("2001:0:4136:e378:8000:63bf:5601:5601", "169.254.169.254"),
            ("64:ff9b::a01:203", "10.1.2.3"),
            ("2002:a01:203::1", "10.1.2.3"),
            ("::7f00:1", "127.0.0.1"),
            ("64:ff9b::7f00:1", "127.0.0.1"),
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),
        ] {
            let err = prod.check(ip(form)).unwrap_err();
            assert_eq!(err.code(), ErrorCode::EgressDenied, "{form}");
            assert!(err.message().contains(v4), "{form}: {}", err.message());
            if v4 == "169.254.169.254" {
                assert!(emb.check(ip(form)).is_err(), "{form} under embedded");
            }
        }
        // The same forms of a public address pass.
        for ok in ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8"] {
            prod.check(ip(ok)).unwrap();
        }
        // `::` and `::1` are not IPv4-compatible addresses.
        assert!(emb.check(ip("::")).is_err());
        emb.check(ip("::1")).unwrap();
    }

    #[test]
    fn an_exception_re_enables_one_network_and_restricts_nothing() {
        let p = EgressPolicy::production("10.1.0.0/16 fd00::/64").unwrap();
        p.check(ip("10.1.2.3")).unwrap();
        p.check(ip("64:ff9b::a01:203")).unwrap();
        p.check(ip("fd00::1")).unwrap();
        p.check(ip("8.8.8.8")).unwrap();
        assert!(p.check(ip("10.2.0.1")).is_err());
        assert!(p.check(ip("127.0.0.1")).is_err());
        assert!(EgressPolicy::production("nonsense").is_err());
        assert_eq!(
            "Production".parse::<EgressProfile>().unwrap(),
            EgressProfile::Production
        );
        assert!("open".parse::<EgressProfile>().is_err());
    }
}
