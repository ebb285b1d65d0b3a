//! Opening a client on the pinned address and the connection's commands.

use matih_connector_core::{with_timeout, ConnectContext, ConnectorError, ErrorCode};
use mongodb::bson::{doc, Document};
use mongodb::options::{
    AuthMechanism, ClientOptions, Credential, ReadPreference, ReadPreferenceOptions,
    SelectionCriteria, ServerAddress, Tls,
};
use mongodb::Client;

use crate::config::{Mechanism, MongoOptions};
use crate::errors::parse_error;
use crate::tls_bridge::{self, TlsBridge};

pub(crate) struct MongoConnection {
    pub client: Client,
    pub opts: MongoOptions,
    /// Declared after the client: dropped after it.
    bridge: Option<TlsBridge>,
}

/// The address the client dials. Without TLS it is the resolved,
/// egress-checked address itself; with TLS the bridge's socket, behind which
/// the bridge dials that same address.
fn server_address(
    ctx: &ConnectContext,
    bridge: Option<&TlsBridge>,
) -> Result<ServerAddress, ConnectorError> {
    if let Some(b) = bridge {
        return Ok(b.address());
    }
    let addr = ctx
        .addrs
        .first()
        .ok_or_else(|| ConnectorError::internal("no resolved address for MongoDB"))?;
    Ok(ServerAddress::Tcp {
        host: addr.ip().to_string(),
        port: Some(addr.port()),
    })
}

pub(crate) async fn connect(
    opts: &MongoOptions,
    ctx: &ConnectContext,
) -> Result<MongoConnection, ConnectorError> {
    let bridge = if opts.ssl_mode.is_tls() {
        Some(TlsBridge::start(opts, &ctx.addrs, ctx.timeouts.connect()).await?)
    } else {
        None
    };
    let mut co = ClientOptions::default();
    co.hosts = vec![server_address(ctx, bridge.as_ref())?];
    // One server only: replica-set members the server advertises are never
    // dialled, so no address escapes the egress check.
    co.direct_connection = Some(true);
    co.selection_criteria = Some(SelectionCriteria::ReadPreference(
        ReadPreference::PrimaryPreferred {
            options: Some(ReadPreferenceOptions::default()),
        },
    ));
    co.app_name = Some(opts.app_name.clone());
    co.connect_timeout = Some(ctx.timeouts.connect());
    co.server_selection_timeout = Some(ctx.timeouts.connect());
    co.max_pool_size = Some(4);
    co.retry_reads = Some(false);
    co.retry_writes = Some(false);
    if let Some(user) = &opts.username {
        let mut cred = Credential::default();
        cred.username = Some(user.clone());
        cred.password = opts.password.as_ref().map(|p| p.expose().to_owned());
        cred.source = Some(opts.auth_source.clone());
        cred.mechanism = opts.mechanism.map(|m| match m {
            Mechanism::ScramSha1 => AuthMechanism::ScramSha1,
            Mechanism::ScramSha256 => AuthMechanism::ScramSha256,
        });
        co.credential = Some(cred);
    }
    // TLS, when on, is the bridge's: the client speaks plain wire protocol
    // to the bridge's socket.
    co.tls = Some(Tls::Disabled);
    let client =
        Client::with_options(co).map_err(|e| parse_error(e, "creating the MongoDB client"))?;
    let conn = MongoConnection {
        client,
        opts: opts.clone(),
        bridge,
    };
    // The first command dials, negotiates TLS and authenticates.
    let admin = conn.client.database("admin");
    let ping = admin.run_command(doc! {"ping": 1});
    with_timeout(ctx.timeouts.connect(), "connecting to MongoDB", async {
        ping.await.map_err(|e| {
            tls_bridge::explain(
                conn.bridge.as_ref(),
                parse_error(e, "connecting to MongoDB"),
            )
        })
    })
    .await?;
    if let Some(db) = &opts.database {
        if !conn.database_exists(db).await? {
            return Err(ConnectorError::new(
                ErrorCode::DatabaseNotFound,
                format!("database {db:?} does not exist (or holds no collection) on this server"),
            )
            .with_context("database", db));
        }
    }
    Ok(conn)
}

impl MongoConnection {
    pub(crate) async fn command(
        &self,
        db: &str,
        cmd: Document,
        what: &str,
    ) -> Result<Document, ConnectorError> {
        let database = self.client.database(db);
        let run = database.run_command(cmd);
        with_timeout(self.opts.query_timeout, what, async {
            run.await.map_err(|e| parse_error(e, what))
        })
        .await
    }

    /// Database names the user may list (`authorizedDatabases` lets users
    /// without the listDatabases privilege see the ones they have rights on).
    pub(crate) async fn database_names(
        &self,
        filter: Option<Document>,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut cmd = doc! {"listDatabases": 1, "nameOnly": true, "authorizedDatabases": true};
        if let Some(f) = filter {
            cmd.insert("filter", f);
        }
        let reply = self.command("admin", cmd, "listing databases").await?;
        let names = reply
            .get_array("databases")
            .map(|a| {
                a.iter()
                    .filter_map(|d| {
                        d.as_document()
                            .and_then(|d| d.get_str("name").ok())
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(names)
    }

    async fn database_exists(&self, db: &str) -> Result<bool, ConnectorError> {
        Ok(self
            .database_names(Some(doc! {"name": db}))
            .await?
            .iter()
            .any(|n| n == db))
    }
}

/// What the `Connection` impl (in `lib.rs`) asks of the client.
impl MongoConnection {
    /// `buildInfo`'s `version`, as `MongoDB <version>`.
    pub(crate) async fn version_text(&self) -> Result<String, ConnectorError> {
        let reply = self
            .command("admin", doc! {"buildInfo": 1}, "reading buildInfo")
            .await?;
        match reply.get_str("version") {
            Ok(v) => Ok(format!("MongoDB {v}")),
            Err(_) => Err(ConnectorError::new(
                ErrorCode::ProtocolError,
                "buildInfo reply has no version",
            )),
        }
    }

    /// Shuts the client down, bounded by the connect timeout.
    pub(crate) async fn end_session(self: Box<Self>) -> Result<(), ConnectorError> {
        let limit = self.opts.connect_timeout;
        // Shutdown waits for checked-out handles; bounded so close never hangs.
        let _ = tokio::time::timeout(limit, self.client.shutdown()).await;
        Ok(())
    }
}
