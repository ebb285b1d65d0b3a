//! Opening a session (TLS included) and running bounded catalog queries on it.

use std::net::IpAddr;
use std::time::Duration;

use matih_connector_core::{
    find_source, tls, with_timeout, ConnectContext, ConnectorError, ErrorCode,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Row, Value};
use rustls::CertificateError;

use crate::config::MysqlOptions;
use crate::errors::parse_error;
use crate::types::DefaultStyle;

/// The longest `close` waits for the server to acknowledge `COM_QUIT`.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// Opens a session within the connect time limit.
pub(crate) async fn connect(
    opts: MysqlOptions,
    ctx: &ConnectContext,
) -> Result<MysqlConnection, ConnectorError> {
    // mysql_async builds its rustls configuration with the process default
    // provider, which a build linking both rustls back ends cannot pick alone.
    tls::install_default_provider();
    let endpoint = match (ctx.host.as_deref(), ctx.addrs.first()) {
        // Through an SSH tunnel the address is the loopback forwarder's.
        (Some(_), Some(a)) if ctx.tunnel.is_some() => ctx.describe(*a),
        (Some(h), Some(a)) => format!("{h}:{}", a.port()),
        (None, Some(a)) => a.to_string(),
        _ => {
            return Err(ConnectorError::internal(
                "no resolved address to connect to",
            ))
        }
    };
    let what = format!("connecting to {endpoint}");
    let (conn, client_opts) =
        with_timeout(opts.connect_timeout, &what, open(&opts, ctx, &what)).await?;
    Ok(MysqlConnection {
        conn: Some(conn),
        query_timeout: opts.query_timeout,
        schema: opts.schema,
        version: None,
        side: None,
        reopen: Some(Reopen {
            opts: client_opts,
            timeout: opts.connect_timeout,
            what,
        }),
    })
}

/// A session, and the client options it was opened with (the verify-ca
/// retry's TLS name included), from which a second session can be opened.
async fn open(
    opts: &MysqlOptions,
    ctx: &ConnectContext,
    what: &str,
) -> Result<(Conn, Opts), ConnectorError> {
    let first = opts.client_opts(ctx, None)?;
    let err = match Conn::new(first.clone()).await {
        Ok(conn) => return Ok((conn, first)),
        Err(e) => e,
    };
    if !opts.verify_chain_only() {
        return Err(parse_error(err, what));
    }
    // verify-ca: the chain must verify, the host name need not match. mysql_async
    // has no hook for a custom certificate verifier and its own "skip domain
    // validation" flag is inert with current rustls, so when the only fault
    // is the name we connect again asking TLS to verify the certificate
    // against a name the certificate itself holds. The chain is verified in
    // full both times; an impostor needs a certificate from the same CA,
    // which is exactly what verify-ca accepts.
    let Some(presented) = name_mismatch(&err) else {
        return Err(parse_error(err, what));
    };
    let Some(name) = presented.iter().find_map(|p| usable_tls_name(p)) else {
        return Err(ConnectorError::new(
            ErrorCode::SslHandshakeFailed,
            format!(
                "{what}: TLS: the certificate chain is trusted but the certificate names no host \
                 (no subjectAltName), so verify-ca cannot be completed; use require or reissue \
                 the certificate with a subjectAltName"
            ),
        )
        .with_source(err));
    };
    tracing::debug!(tls_name = %name, "verify-ca: host name differs from the certificate; verifying the chain against a name it holds");
    let retry = opts.client_opts(ctx, Some(&name))?;
    let conn = Conn::new(retry.clone())
        .await
        .map_err(|e| parse_error(e, what))?;
    Ok((conn, retry))
}

/// The names a certificate holds, when a handshake failed only because the
/// host name is not among them (the chain was verified first).
fn name_mismatch(err: &mysql_async::Error) -> Option<Vec<String>> {
    match find_source::<rustls::Error>(err)? {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => Some(presented.clone()),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => Some(Vec::new()),
        _ => None,
    }
}

/// Turns a name as rustls-webpki reports it (`DnsName("db.example.com")`,
/// `IpAddress(10.0.0.5)`) into a name to verify against. A wildcard becomes a
/// concrete name under it.
fn usable_tls_name(presented: &str) -> Option<String> {
    if let Some(dns) = presented
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        let name = match dns.strip_prefix("*.") {
            Some(rest) => format!("matih-verify-ca.{rest}"),
            None => dns.to_owned(),
        };
        return rustls::pki_types::ServerName::try_from(name.as_str())
            .is_ok()
            .then_some(name);
    }
    let ip = presented
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))?;
    ip.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// An open session. Dropped on the first timeout or fatal error: a query cut
/// off mid-result leaves the protocol in an unknown state.
pub(crate) struct MysqlConnection {
    conn: Option<Conn>,
    query_timeout: Duration,
    /// The configured `schema`: the catalog is limited to this database.
    pub(crate) schema: Option<String>,
    version: Option<String>,
    /// A second session to the same server, opened on demand, on which a
    /// full discovery lists tables while this one lists columns; kept for
    /// the next discovery.
    side: Option<Box<MysqlConnection>>,
    /// How to open it; `None` on a side session itself, and once opening
    /// one failed (a server at its connection limit, for one).
    reopen: Option<Reopen>,
}

/// What opening a second session takes: the options the first one
/// connected with (the same checked addresses, TLS settings and login).
#[derive(Clone)]
struct Reopen {
    opts: Opts,
    timeout: Duration,
    what: String,
}

impl MysqlConnection {
    /// Runs one statement and collects its rows, bounded by the query time
    /// limit. Values are always bound parameters (a prepared statement); a
    /// statement without parameters goes over the text protocol.
    pub(crate) async fn rows(
        &mut self,
        what: &str,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Vec<Value>>, ConnectorError> {
        let limit = self.query_timeout;
        let conn = self.session(what)?;
        let work = async {
            if params.is_empty() {
                conn.query::<Row, _>(sql).await
            } else {
                conn.exec::<Row, _, _>(sql, Params::Positional(params))
                    .await
            }
        };
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(limit, work).await;
        let rows = self.settle(what, outcome)?;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(what, rows = rows.len(), elapsed_ms, "catalog query");
        Ok(rows.into_iter().map(Row::unwrap).collect())
    }

    /// The session a query runs on, unless an earlier failure closed it.
    fn session(&mut self, what: &str) -> Result<&mut Conn, ConnectorError> {
        self.conn.as_mut().ok_or_else(|| {
            ConnectorError::new(
                ErrorCode::ConnectionClosed,
                format!("{what}: the connection was closed after an earlier failure"),
            )
        })
    }

    /// A bounded query's outcome as ours; a timeout or a fatal error drops
    /// the session (a query cut off mid-result leaves the protocol in an
    /// unknown state).
    fn settle<T>(
        &mut self,
        what: &str,
        outcome: Result<Result<T, mysql_async::Error>, tokio::time::error::Elapsed>,
    ) -> Result<T, ConnectorError> {
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.is_fatal() {
                    self.conn = None;
                }
                Err(parse_error(e, what))
            }
            Err(_) => {
                self.conn = None;
                Err(ConnectorError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{what} took longer than {} ms",
                        self.query_timeout.as_millis()
                    ),
                ))
            }
        }
    }

    /// Runs one statement and hands each row to `each` as it arrives, so
    /// the rows are never all held at once; bounded by the query time limit
    /// like [`MysqlConnection::rows`]. Returns the number of rows.
    pub(crate) async fn each_row(
        &mut self,
        what: &str,
        sql: &str,
        params: Vec<Value>,
        mut each: impl FnMut(Vec<Value>) -> Result<(), ConnectorError> + Send,
    ) -> Result<usize, ConnectorError> {
        let limit = self.query_timeout;
        let conn = self.session(what)?;
        let work = async {
            if params.is_empty() {
                drain(conn.query_iter(sql).await?, &mut each).await
            } else {
                drain(
                    conn.exec_iter(sql, Params::Positional(params)).await?,
                    &mut each,
                )
                .await
            }
        };
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(limit, work).await;
        let rows = self.settle(what, outcome)??;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(what, rows, elapsed_ms, "catalog query");
        Ok(rows)
    }

    /// The second session, opened first if needed, as a future that does
    /// not borrow this session (so it opens while this one runs a query).
    /// `Ok(None)` when there is none to be had; after an `Err` (logged and
    /// not tried again on this connection) the caller sends everything on
    /// this session. Give it back with [`MysqlConnection::put_side`].
    pub(crate) fn take_side(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Box<MysqlConnection>>, ConnectorError>>
           + Send
           + 'static {
        let ready = self.side.take();
        let reopen = self.reopen.clone().filter(|_| ready.is_none());
        let (query_timeout, schema, version) = (
            self.query_timeout,
            self.schema.clone(),
            self.version.clone(),
        );
        async move {
            if ready.is_some() {
                return Ok(ready);
            }
            let Some(reopen) = reopen else {
                return Ok(None);
            };
            let what = format!("{} (second session)", reopen.what);
            let conn = with_timeout(reopen.timeout, &what, async {
                Conn::new(reopen.opts.clone())
                    .await
                    .map_err(|e| parse_error(e, &what))
            })
            .await?;
            Ok(Some(Box::new(MysqlConnection {
                conn: Some(conn),
                query_timeout,
                schema,
                version,
                side: None,
                reopen: None,
            })))
        }
    }

    /// Takes the outcome of [`MysqlConnection::take_side`] back: a session
    /// is kept for the next discovery unless a failure closed it; a failure
    /// to open one means none is tried again.
    pub(crate) fn put_side(&mut self, side: Result<Option<Box<MysqlConnection>>, ConnectorError>) {
        match side {
            Ok(side) => self.side = side.filter(|s| s.conn.is_some()),
            Err(e) => {
                tracing::debug!(error = %e, "no second session: discovery sends every query on one");
                self.reopen = None;
            }
        }
    }

    /// `SELECT VERSION()`, asked once per connection.
    pub(crate) async fn version(&mut self) -> Result<String, ConnectorError> {
        if let Some(v) = &self.version {
            return Ok(v.clone());
        }
        let rows = self
            .rows("reading the server version", "SELECT VERSION()", Vec::new())
            .await?;
        let version = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .and_then(|v| text(&v))
            .ok_or_else(|| {
                ConnectorError::new(
                    ErrorCode::ProtocolError,
                    "SELECT VERSION() returned no value",
                )
            })?;
        self.version = Some(version.clone());
        Ok(version)
    }

    /// How this server spells `COLUMN_DEFAULT`.
    pub(crate) async fn default_style(&mut self) -> Result<DefaultStyle, ConnectorError> {
        Ok(default_style(&self.version().await?))
    }

    pub(crate) async fn is_mariadb(&mut self) -> Result<bool, ConnectorError> {
        Ok(is_mariadb(&self.version().await?))
    }
}

/// Hands each row of a result to `each`; stops at its first error (the rest
/// of the result is read off by the next query).
async fn drain<P: mysql_async::prelude::Protocol>(
    mut result: mysql_async::QueryResult<'_, '_, P>,
    each: &mut (impl FnMut(Vec<Value>) -> Result<(), ConnectorError> + Send),
) -> Result<Result<usize, ConnectorError>, mysql_async::Error> {
    let mut n = 0;
    while let Some(row) = result.next().await? {
        if let Err(e) = each(row.unwrap()) {
            return Ok(Err(e));
        }
        n += 1;
    }
    Ok(Ok(n))
}

fn is_mariadb(version: &str) -> bool {
    version.to_ascii_lowercase().contains("mariadb")
}

/// MariaDB 10.2.7 started reporting defaults as SQL expressions.
fn default_style(version: &str) -> DefaultStyle {
    if !is_mariadb(version) {
        return DefaultStyle::Value;
    }
    let numbers: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    match numbers.as_slice() {
        [major, minor, patch] if (*major, *minor, *patch) >= (10, 2, 7) => DefaultStyle::Expression,
        _ => DefaultStyle::Value,
    }
}

/// A value as text, whichever protocol carried it.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true)),
    }
}

/// A value as an unsigned number, whichever protocol carried it.
pub(crate) fn unsigned(v: &Value) -> Option<u64> {
    match v {
        Value::UInt(u) => Some(*u),
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        Value::Double(d) if *d >= 0.0 => Some(*d as u64),
        _ => None,
    }
}

/// What the `Connection` impl (in `lib.rs`) asks of the session.
impl MysqlConnection {
    /// Sends `COM_QUIT`; the wait for the server is bounded by the query
    /// timeout and `CLOSE_LIMIT`.
    pub(crate) async fn end_session(mut self: Box<Self>) -> Result<(), ConnectorError> {
        let side = self.side.take().and_then(|mut s| s.conn.take());
        let main = self.conn.take();
        if main.is_none() && side.is_none() {
            return Ok(());
        }
        let quit = |c: Option<Conn>| async move {
            match c {
                Some(c) => c
                    .disconnect()
                    .await
                    .map_err(|e| parse_error(e, "closing the connection")),
                None => Ok(()),
            }
        };
        let limit = self.query_timeout.min(CLOSE_LIMIT);
        with_timeout(limit, "closing the connection", async {
            let (main, side) = tokio::join!(quit(main), quit(side));
            main.and(side)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_become_tls_names() {
        let cases = [
            ("DnsName(\"localhost\")", Some("localhost")),
            ("DnsName(\"db.example.com\")", Some("db.example.com")),
            (
                "DnsName(\"*.db.example.com\")",
                Some("matih-verify-ca.db.example.com"),
            ),
            ("IpAddress(127.0.0.1)", Some("127.0.0.1")),
            ("IpAddress(2001:db8::1)", Some("2001:db8::1")),
            ("DirectoryName", None),
            ("UniformResourceIdentifier(\"https://x\")", None),
            ("DnsName(\"not a name\")", None),
        ];
        for (presented, want) in cases {
            assert_eq!(usable_tls_name(presented).as_deref(), want, "{presented}");
        }
    }

    #[test]
    fn name_mismatch_is_recognized_through_the_error_chain() {
        let mismatch =
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("127.0.0.1")
                    .unwrap()
                    .to_owned(),
                presented: vec!["DnsName(\"localhost\")".into()],
            });
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, mismatch);
        let err = mysql_async::Error::Io(mysql_async::IoError::Io(io));
        assert_eq!(
            name_mismatch(&err),
            Some(vec!["DnsName(\"localhost\")".to_owned()])
        );

        let issuer = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, issuer);
        assert_eq!(
            name_mismatch(&mysql_async::Error::Io(mysql_async::IoError::Io(io))),
            None
        );
    }

    #[test]
    fn versions_tell_the_default_style() {
        assert_eq!(
            default_style("10.11.19-MariaDB-0+deb12u1"),
            DefaultStyle::Expression
        );
        assert_eq!(default_style("11.4.2-MariaDB"), DefaultStyle::Expression);
        assert_eq!(default_style("10.2.6-MariaDB"), DefaultStyle::Value);
        assert_eq!(default_style("10.1.48-MariaDB"), DefaultStyle::Value);
        assert_eq!(default_style("8.0.36"), DefaultStyle::Value);
        assert_eq!(default_style("8.4.0-commercial"), DefaultStyle::Value);
        assert!(is_mariadb("10.11.19-MariaDB-0+deb12u1"));
        assert!(!is_mariadb("8.0.36-0ubuntu0.22.04.1"));
    }

    #[test]
    fn values_read_from_either_protocol() {
        assert_eq!(
            text(&Value::Bytes(b"orders".to_vec())).as_deref(),
            Some("orders")
        );
        assert_eq!(text(&Value::NULL), None);
        assert_eq!(unsigned(&Value::UInt(7)), Some(7));
        assert_eq!(unsigned(&Value::Int(7)), Some(7));
        assert_eq!(unsigned(&Value::Int(-1)), None);
        assert_eq!(unsigned(&Value::Bytes(b"42".to_vec())), Some(42));
        assert_eq!(unsigned(&Value::NULL), None);
    }
}
