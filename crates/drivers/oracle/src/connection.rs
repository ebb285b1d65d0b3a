//! Opening a session and the [`Connection`] implementation. The `oracle`
//! crate is blocking: every call runs on tokio's blocking pool under our time
//! limits, and Oracle's own call timeout stops the server-side work too.

use std::sync::Arc;
use std::time::Duration;

use matih_connector_core::{with_timeout, ConnectContext, ConnectorError};

use crate::config::OracleOptions;
use crate::errors::parse_error;

pub(crate) struct OracleConnection {
    pub(crate) conn: Arc<oracle::Connection>,
    query_timeout: Duration,
    pub(crate) schema: Option<String>,
    pub(crate) banner: String,
}

/// One result row, every column as text (NUMBER, DATE and LONG included).
pub(crate) type TextRow = Vec<Option<String>>;

fn join_error(e: tokio::task::JoinError, what: &str) -> ConnectorError {
    ConnectorError::internal(format!("{what}: the blocking task failed: {e}"))
}

pub(crate) async fn connect(
    opts: OracleOptions,
    ctx: &ConnectContext,
) -> Result<OracleConnection, ConnectorError> {
    if ctx.addrs.is_empty() {
        return Err(ConnectorError::internal(
            "no resolved address to connect to",
        ));
    }
    let descriptor = opts.connect_descriptor(&ctx.addrs);
    let query_timeout = opts.query_timeout;
    let schema = opts.schema.clone();
    let what = format!("connecting to {}", ctx.addrs[0]);
    let task_what = what.clone();
    // A login that outlives the limit is abandoned; its thread ends when
    // Oracle Net's own connect timeout (from the descriptor) fires.
    let task = tokio::task::spawn_blocking(move || {
        let password = opts.password.clone();
        let secrets = [password.expose()];
        let conn = oracle::Connector::new(opts.user.as_str(), opts.password.expose(), descriptor)
            .connect()
            .map_err(|e| parse_error(e, &task_what, &secrets))?;
        conn.set_call_timeout(Some(query_timeout))
            .map_err(|e| parse_error(e, &task_what, &secrets))?;
        let _ = conn.set_module("matih-connector");
        let (_, banner) = conn
            .server_version()
            .map_err(|e| parse_error(e, &task_what, &secrets))?;
        Ok::<_, ConnectorError>((conn, banner))
    });
    let (conn, banner) = with_timeout(ctx.timeouts.connect(), &what, async {
        task.await.map_err(|e| join_error(e, &what))?
    })
    .await?;
    Ok(OracleConnection {
        conn: Arc::new(conn),
        query_timeout,
        schema,
        banner,
    })
}

impl OracleConnection {
    /// Runs a query with positional binds (`:1`…) and returns every row as text.
    pub(crate) async fn rows(
        &self,
        what: &str,
        sql: String,
        params: Vec<String>,
    ) -> Result<Vec<TextRow>, ConnectorError> {
        let conn = self.conn.clone();
        let task_what = what.to_owned();
        let task = tokio::task::spawn_blocking(move || {
            let binds: Vec<&dyn oracle::sql_type::ToSql> = params
                .iter()
                .map(|p| p as &dyn oracle::sql_type::ToSql)
                .collect();
            let rs = conn
                .query(&sql, &binds)
                .map_err(|e| parse_error(e, &task_what, &[]))?;
            let mut out = Vec::new();
            for row in rs {
                let row = row.map_err(|e| parse_error(e, &task_what, &[]))?;
                let mut cols = Vec::with_capacity(row.sql_values().len());
                for i in 0..row.sql_values().len() {
                    cols.push(
                        row.get::<usize, Option<String>>(i)
                            .map_err(|e| parse_error(e, &task_what, &[]))?,
                    );
                }
                out.push(cols);
            }
            Ok::<_, ConnectorError>(out)
        });
        // The call timeout set at login ends the server-side work shortly after.
        with_timeout(self.query_timeout + Duration::from_secs(1), what, async {
            task.await.map_err(|e| join_error(e, what))?
        })
        .await
    }
}
