//! The server side of SOCKS5 (RFC 1928), as much as the tunnel's HTTP
//! forwarder needs: no authentication, `CONNECT` only, one reply.
//!
//! HTTP clients (reqwest through hyper-util's SOCKS5 connector) can be sent
//! through a SOCKS proxy but not through a connector of our own; a SOCKS
//! CONNECT names the target (`host:port`, the name unresolved with
//! `socks5h`), and the client then runs TLS over the proxied stream with the
//! URL's host as server name. So the forwarder learns which target is asked
//! for, and TLS stays the client's business, checked against the target's
//! name. The forwarder compares the request with the tunnel's one target and
//! refuses any other.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Reply codes (RFC 1928 §6) the forwarder sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    NotAllowed = 0x02,
    HostUnreachable = 0x04,
    ConnectionRefused = 0x05,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply for a failure to open the channel to the target.
    pub(super) fn for_error(code: crate::ErrorCode) -> Reply {
        use crate::ErrorCode as C;
        match code {
            C::ConnectionRefused => Reply::ConnectionRefused,
            C::Timeout | C::DnsResolutionFailed => Reply::HostUnreachable,
            _ => Reply::GeneralFailure,
        }
    }
}

/// The target a client asked to CONNECT to: a name (as sent, unresolved) or
/// an address written out, and the port.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub host: String,
    pub port: u16,
}

/// Reads the greeting and the request; answers the greeting. A client that
/// offers no "no authentication" method, or asks for anything but CONNECT,
/// is answered with the matching refusal and gets an error.
pub(super) async fn accept<S>(s: &mut S) -> io::Result<Request>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 2];
    s.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(invalid("not a SOCKS5 client"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTHENTICATION) {
        s.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(invalid(
            "the client offers no method without authentication",
        ));
    }
    s.write_all(&[VERSION, NO_AUTHENTICATION]).await?;

    let mut req = [0u8; 4];
    s.read_exact(&mut req).await?;
    if req[0] != VERSION {
        return Err(invalid("not a SOCKS5 request"));
    }
    if req[1] != CONNECT {
        reply(s, Reply::CommandNotSupported).await?;
        return Err(invalid("only CONNECT is served"));
    }
    let host = match req[3] {
        ATYP_IPV4 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Ipv4Addr::from(a).to_string()
        }
        ATYP_IPV6 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            Ipv6Addr::from(a).to_string()
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            s.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| invalid("the host name is not UTF-8"))?
        }
        _ => {
            reply(s, Reply::AddressTypeNotSupported).await?;
            return Err(invalid("unknown address type"));
        }
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).await?;
    Ok(Request {
        host,
        port: u16::from_be_bytes(port),
    })
}

/// Sends the reply to the request (the bound address is not meaningful
/// here: 0.0.0.0:0).
pub(super) async fn reply<S>(s: &mut S, r: Reply) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    s.write_all(&[VERSION, r as u8, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0])
        .await?;
    s.flush().await
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("SOCKS5: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// Runs `accept` against the bytes a client sends; returns what it
    /// parsed and every byte it answered.
    async fn serve(client_bytes: &[u8]) -> (io::Result<Request>, Vec<u8>) {
        let (mut client, mut server) = duplex(1024);
        client.write_all(client_bytes).await.unwrap();
        let got = accept(&mut server).await;
        drop(server);
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).await.unwrap();
        (got, answered)
    }

    #[tokio::test]
    async fn connect_requests_by_name_and_by_address() {
        // hyper-util's client: one method (no auth), then CONNECT.
        let mut by_name = vec![5, 1, 0, 5, 1, 0, 3, 12];
        by_name.extend_from_slice(b"api.internal");
        by_name.extend_from_slice(&8443u16.to_be_bytes());
        let (got, answered) = serve(&by_name).await;
        assert_eq!(
            got.unwrap(),
            Request {
                host: "api.internal".into(),
                port: 8443
            }
        );
        assert_eq!(answered, [5, 0]);

        let (got, _) = serve(&[5, 2, 2, 0, 5, 1, 0, 1, 10, 0, 0, 5, 0, 80]).await;
        assert_eq!(
            got.unwrap(),
            Request {
                host: "10.0.0.5".into(),
                port: 80
            }
        );
        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(&"fd00::5".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(serve(&v6).await.0.unwrap().host, "fd00::5");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        // Only username/password offered.
        let (got, answered) = serve(&[5, 1, 2]).await;
        assert!(got.is_err());
        assert_eq!(answered, [5, 0xff]);
        // BIND instead of CONNECT.
        let (got, answered) = serve(&[5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80]).await;
        assert!(got.is_err());
        assert_eq!(answered, [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
        // SOCKS4, and an unknown address type.
        assert!(serve(&[4, 1, 0, 80, 1, 2, 3, 4, 0]).await.0.is_err());
        let (got, answered) = serve(&[5, 1, 0, 5, 1, 0, 9]).await;
        assert!(got.is_err());
        assert_eq!(answered[2..4], [5, 8]);
    }

    #[test]
    fn channel_failures_map_to_reply_codes() {
        use crate::ErrorCode as C;
        assert_eq!(
            Reply::for_error(C::ConnectionRefused),
            Reply::ConnectionRefused
        );
        assert_eq!(Reply::for_error(C::Timeout), Reply::HostUnreachable);
        assert_eq!(Reply::for_error(C::Internal), Reply::GeneralFailure);
    }
}
