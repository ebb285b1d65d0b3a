//! Opening a client on the pinned address and the connection's commands.

use std::io::Write;
use std::net::IpAddr;

use matih_connector_core::{
    async_trait, with_timeout, Catalog, ConnectContext, Connection, ConnectorError,
    DiscoveryRequest, ErrorCode, SslMode,
};
use mongodb::bson::{doc, Document};
use mongodb::options::{
    AuthMechanism, ClientOptions, Credential, ReadPreference, ReadPreferenceOptions,
    SelectionCriteria, ServerAddress, Tls, TlsOptions,
};
use mongodb::Client;

use crate::config::{Mechanism, MongoOptions};
use crate::errors::parse_error;

pub(crate) struct MongoConnection {
    pub client: Client,
    pub opts: MongoOptions,
}

/// The CA PEM as a file the driver can read, removed once the client has
/// built its TLS configuration (the driver takes only a path).
struct CaFile(std::path::PathBuf);

impl CaFile {
    fn write(pem: &str) -> Result<CaFile, ConnectorError> {
        let path = std::env::temp_dir().join(format!(
            "matih-mongodb-ca-{}-{}.pem",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                ConnectorError::internal(format!("writing the CA certificate: {e}")).with_source(e)
            })?;
        f.write_all(pem.as_bytes()).map_err(|e| {
            ConnectorError::internal(format!("writing the CA certificate: {e}")).with_source(e)
        })?;
        Ok(CaFile(path))
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The address the client dials. Without TLS (or for an IP literal) it is the
/// resolved, egress-checked address itself. With TLS and a host name the name
/// is kept so the certificate is verified against it; the driver then resolves
/// the name again, a window the docs describe.
fn server_address(opts: &MongoOptions, ctx: &ConnectContext) -> ServerAddress {
    let literal = opts
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok();
    match ctx.addrs.first() {
        Some(addr) if !opts.ssl_mode.is_tls() || literal => ServerAddress::Tcp {
            host: addr.ip().to_string(),
            port: Some(addr.port()),
        },
        _ => ServerAddress::Tcp {
            host: opts.host.clone(),
            port: Some(opts.port),
        },
    }
}

pub(crate) async fn connect(
    opts: &MongoOptions,
    ctx: &ConnectContext,
) -> Result<MongoConnection, ConnectorError> {
    let mut co = ClientOptions::default();
    co.hosts = vec![server_address(opts, ctx)];
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
    let mut _ca_file = None;
    co.tls = Some(match opts.ssl_mode {
        SslMode::Disable => Tls::Disabled,
        mode => {
            let mut t = TlsOptions::default();
            if let Some(pem) = &opts.ca_pem {
                let f = CaFile::write(pem)?;
                t.ca_file_path = Some(f.0.clone());
                _ca_file = Some(f);
            }
            // The driver's rustls back end cannot skip only the host name
            // check: verify-ca (and require with a CA) verify as verify-full.
            if mode == SslMode::Require && opts.ca_pem.is_none() {
                t.allow_invalid_certificates = Some(true);
            }
            Tls::Enabled(t)
        }
    });
    let client =
        Client::with_options(co).map_err(|e| parse_error(e, "creating the MongoDB client"))?;
    drop(_ca_file);
    let conn = MongoConnection {
        client,
        opts: opts.clone(),
    };
    // The first command dials, negotiates TLS and authenticates.
    let admin = conn.client.database("admin");
    let ping = admin.run_command(doc! {"ping": 1});
    with_timeout(ctx.timeouts.connect(), "connecting to MongoDB", async {
        ping.await
            .map_err(|e| parse_error(e, "connecting to MongoDB"))
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

#[async_trait]
impl Connection for MongoConnection {
    async fn server_version(&mut self) -> Result<String, ConnectorError> {
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

    async fn probe(&mut self, req: &DiscoveryRequest) -> Result<(), ConnectorError> {
        crate::discovery::probe(self, req).await
    }

    async fn discover(&mut self, req: &DiscoveryRequest) -> Result<Catalog, ConnectorError> {
        crate::discovery::discover(self, req).await
    }

    async fn close(self: Box<Self>) -> Result<(), ConnectorError> {
        let limit = self.opts.connect_timeout;
        // Shutdown waits for checked-out handles; bounded so close never hangs.
        let _ = tokio::time::timeout(limit, self.client.shutdown()).await;
        Ok(())
    }
}
