//! Opening a session over the addresses the core resolved, and the
//! [`Connection`] implementation.

use std::net::SocketAddr;
use std::time::Duration;

use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode};
use tiberius::{Client, Row, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::config::SqlServerOptions;
use crate::errors::{
    cannot_open_database, is_cannot_open_database, parse_error, parse_error_redacted,
    parse_io_error, DATABASE_ACCESS_SQL,
};

pub(crate) type TdsClient = Client<Compat<TcpStream>>;

pub(crate) struct SqlServerConnection {
    pub(crate) client: TdsClient,
    query_timeout: Duration,
    pub(crate) schema: Option<String>,
}

/// Connects to the first address that answers. Login and TLS failures stop at
/// once: another address of the same host would answer the same.
pub(crate) async fn connect(
    opts: &SqlServerOptions,
    ctx: &ConnectContext,
) -> Result<SqlServerConnection, ConnectorError> {
    if ctx.addrs.is_empty() {
        return Err(ConnectorError::internal(
            "no resolved address to connect to",
        ));
    }
    with_timeout(ctx.timeouts.connect(), "connecting", async {
        let mut last = None;
        for addr in &ctx.addrs {
            match connect_one(opts, ctx, *addr).await {
                Ok(c) => return Ok(c),
                Err(e)
                    if matches!(
                        e.code(),
                        ErrorCode::ConnectionRefused | ErrorCode::ConnectionClosed
                    ) =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ConnectorError::internal("no address to connect to")))
    })
    .await
}

async fn connect_one(
    opts: &SqlServerOptions,
    ctx: &ConnectContext,
    addr: SocketAddr,
) -> Result<SqlServerConnection, ConnectorError> {
    let what = format!("connecting to {addr}");
    // Our own socket to the checked address: tiberius would resolve the host again.
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| parse_io_error(e, &what))?;
    let _ = stream.set_nodelay(true);
    let host = ctx
        .host
        .as_deref()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        .unwrap_or_else(|| addr.ip().to_string());
    let config = opts.tiberius_config(&host, addr.port());
    let secrets = [opts.password.expose()];
    let client = match Client::connect(config, stream.compat_write()).await {
        Ok(c) => c,
        Err(e) => {
            let err = parse_error_redacted(e, &what, &secrets);
            if !is_cannot_open_database(&err) || opts.database.eq_ignore_ascii_case("master") {
                return Err(err);
            }
            let access = database_access(opts, &host, addr).await;
            return Err(cannot_open_database(err, &opts.database, access));
        }
    };
    tracing::debug!(%addr, ssl_mode = %opts.ssl_mode, "sqlserver session open");
    Ok(SqlServerConnection {
        client,
        query_timeout: opts.query_timeout,
        schema: opts.schema.clone(),
    })
}

/// After a 4060 login failure: logs in to `master` (which every login may
/// open) at the same checked address and asks whether the configured database
/// exists and may be opened ([`DATABASE_ACCESS_SQL`]). `None` when that
/// cannot be learned. Runs inside the caller's connect time limit.
async fn database_access(
    opts: &SqlServerOptions,
    host: &str,
    addr: SocketAddr,
) -> Option<Option<i32>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let mut config = opts.tiberius_config(host, addr.port());
    config.database("master");
    let mut client = Client::connect(config, stream.compat_write()).await.ok()?;
    let row = client
        .query(DATABASE_ACCESS_SQL, &[&opts.database.as_str()])
        .await
        .ok()?
        .into_row()
        .await
        .ok()??;
    let access: Option<i32> = row.try_get(0).ok()?;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
    Some(access)
}

impl SqlServerConnection {
    /// Runs one statement with bind parameters (`@P1`…) under the query time
    /// limit and returns its first result set.
    pub(crate) async fn rows(
        &mut self,
        what: &str,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Row>, ConnectorError> {
        let client = &mut self.client;
        with_timeout(self.query_timeout, what, async {
            let stream = client
                .query(sql, params)
                .await
                .map_err(|e| parse_error(e, what))?;
            stream
                .into_first_result()
                .await
                .map_err(|e| parse_error(e, what))
        })
        .await
    }
}
