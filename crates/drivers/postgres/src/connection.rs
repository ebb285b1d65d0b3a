//! Opening a session over the addresses the core resolved, and what the
//! `Connection` impl (in `lib.rs`) asks of the session.

use std::net::SocketAddr;
use std::time::Duration;

use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode, NetStream};
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgOptions;
use crate::errors::{parse_error, parse_error_redacted};

/// An open session. The task driving the socket is aborted on drop, so a
/// dropped connection never leaves work behind.
pub(crate) struct PgConnection {
    client: Client,
    task: AbortOnDrop,
    query_timeout: Duration,
    schema: Option<String>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the first address that answers, TLS and authentication
/// included. Authentication and TLS failures stop at once: another address of
/// the same host would answer the same.
pub(crate) async fn connect(
    opts: &PgOptions,
    ctx: &ConnectContext,
) -> Result<PgConnection, ConnectorError> {
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
    opts: &PgOptions,
    ctx: &ConnectContext,
    addr: SocketAddr,
) -> Result<PgConnection, ConnectorError> {
    let what = format!("connecting to {}", ctx.describe(addr));
    // TCP to the checked address, or a channel through the SSH tunnel.
    let stream = ctx.connect_stream(addr).await?;
    let config = opts.client_config();
    let secrets = [opts.password.as_ref().map_or("", |p| p.expose())];
    let login_error = |e| parse_error_redacted(e, &what, &secrets);
    let (client, task) = match &opts.tls {
        None => {
            let (client, conn) = config
                .connect_raw(stream, NoTls)
                .await
                .map_err(login_error)?;
            (client, tokio::spawn(drive(conn)))
        }
        Some(tls) => {
            // The configured name, not the address: it is what the certificate names.
            let host = ctx
                .host
                .as_deref()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .unwrap_or_else(|| addr.ip().to_string());
            let mut make = MakeRustlsConnect::new(tls.clone());
            let connector = match <MakeRustlsConnect as MakeTlsConnect<NetStream>>::make_tls_connect(
                &mut make, &host,
            ) {
                Ok(c) => c,
                Err(never) => match never {},
            };
            let (client, conn) = config
                .connect_raw(stream, connector)
                .await
                .map_err(login_error)?;
            (client, tokio::spawn(drive(conn)))
        }
    };
    tracing::debug!(%addr, tls = opts.tls.is_some(), "postgres session open");
    Ok(PgConnection {
        client,
        task: AbortOnDrop(task),
        query_timeout: opts.query_timeout,
        schema: opts.schema.clone(),
    })
}

async fn drive<S, T>(conn: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "postgres connection ended");
    }
}

impl PgConnection {
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// The configured `schema`, if any.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// `SHOW server_version`, as `PostgreSQL <version>`.
    pub(crate) async fn version_text(&self) -> Result<String, ConnectorError> {
        let client = &self.client;
        let row = with_timeout(self.query_timeout, "reading the server version", async {
            client
                .query_one("SHOW server_version", &[])
                .await
                .map_err(|e| parse_error(e, "reading the server version"))
        })
        .await?;
        let version: String = row
            .try_get(0)
            .map_err(|e| parse_error(e, "reading the server version"))?;
        Ok(format!("PostgreSQL {version}"))
    }

    /// Ends the session.
    pub(crate) async fn end_session(self: Box<Self>) -> Result<(), ConnectorError> {
        // Dropping the client sends Terminate; drop aborts the task if the
        // server does not hang up in time.
        let PgConnection {
            client, mut task, ..
        } = *self;
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut task.0).await;
        Ok(())
    }
}
