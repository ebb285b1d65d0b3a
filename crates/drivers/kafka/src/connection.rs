//! The librdkafka client on pinned, egress-checked addresses, and the broker's
//! ApiVersions for the server version.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use matih_connector_core::{
    resolve_host, tls, with_timeout, ConnectContext, ConnectorError, ErrorCode, SslMode,
};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::KafkaOptions;
use crate::errors::{parse_error, Captured};

/// Receives librdkafka's error callbacks and log lines, so a generic
/// "all brokers down" can be told apart as refused, TLS or SASL failure.
#[derive(Debug, Default)]
pub(crate) struct CaptureContext {
    pub captured: Captured,
}

impl ClientContext for CaptureContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", "{fac} {log_message}");
        // Info included: librdkafka reports request timeouts (REQTMOUT) there.
        if (level as i32) <= (RDKafkaLogLevel::Info as i32) {
            self.captured.push(format!("{fac}: {log_message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "error {error}: {reason}");
        self.captured.push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for CaptureContext {}

pub(crate) type Client = BaseConsumer<CaptureContext>;

pub(crate) struct KafkaConnection {
    pub client: Arc<Client>,
    pub opts: KafkaOptions,
    /// Where ApiVersions is asked: the first pinned bootstrap address.
    pub first_addr: SocketAddr,
}

fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

/// One bootstrap entry per address. Without TLS (or for an IP literal) the
/// resolved, egress-checked addresses themselves; with TLS and a host name the
/// name, so librdkafka verifies the certificate against it (it then resolves
/// the name again: the window the docs describe).
fn bootstrap_entries(host: &str, port: u16, addrs: &[SocketAddr], tls_on: bool) -> Vec<String> {
    if tls_on && !is_ip(host) {
        return vec![format!("{host}:{port}")];
    }
    addrs
        .iter()
        .map(|a| match a.ip() {
            IpAddr::V6(ip) => format!("[{ip}]:{}", a.port()),
            IpAddr::V4(ip) => format!("{ip}:{}", a.port()),
        })
        .collect()
}

fn client_config(opts: &KafkaOptions, bootstrap: &[String]) -> ClientConfig {
    let mut c = ClientConfig::new();
    let connect_ms = opts
        .connect_timeout
        .as_millis()
        .clamp(1000, 300_000)
        .to_string();
    let query_ms = opts
        .query_timeout
        .as_millis()
        .clamp(10, 300_000)
        .to_string();
    c.set("bootstrap.servers", bootstrap.join(","))
        .set("client.id", "matih-connector")
        .set("group.id", "matih-connector-discovery")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "latest")
        .set("socket.connection.setup.timeout.ms", &connect_ms)
        .set("socket.timeout.ms", &query_ms)
        .set("metadata.max.age.ms", "60000")
        // Metadata answers name the brokers; never reach out to more than that.
        .set("topic.metadata.refresh.interval.ms", "-1")
        .set("reconnect.backoff.max.ms", "1000")
        .set("security.protocol", opts.security_protocol())
        .set_log_level(RDKafkaLogLevel::Info);
    if let (Some(u), Some(p)) = (&opts.username, &opts.password) {
        c.set("sasl.mechanism", opts.mechanism.as_str())
            .set("sasl.username", u)
            .set("sasl.password", p.expose());
    }
    if opts.ssl_mode.is_tls() {
        if let Some(pem) = &opts.ca_pem {
            c.set("ssl.ca.pem", pem);
        }
        match opts.ssl_mode {
            SslMode::VerifyFull => {
                c.set("ssl.endpoint.identification.algorithm", "https");
            }
            SslMode::VerifyCa => {
                c.set("ssl.endpoint.identification.algorithm", "none");
            }
            SslMode::Require if opts.ca_pem.is_some() => {
                c.set("ssl.endpoint.identification.algorithm", "none");
            }
            _ => {
                c.set("ssl.endpoint.identification.algorithm", "none")
                    .set("enable.ssl.certificate.verification", "false");
            }
        }
    }
    c
}

/// Runs a blocking librdkafka call off the async threads, bounded by `limit`
/// (librdkafka's own timeout is set to the same value inside `f`).
pub(crate) async fn blocking<T: Send + 'static>(
    client: &Arc<Client>,
    limit: Duration,
    what: &str,
    f: impl FnOnce(&Client) -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, ConnectorError> {
    let c = client.clone();
    let task = tokio::task::spawn_blocking(move || f(&c));
    let slack = limit + Duration::from_millis(500);
    let joined = with_timeout(slack, what, async {
        task.await
            .map_err(|e| ConnectorError::internal(format!("{what}: {e}")))
    })
    .await?;
    joined.map_err(|e| parse_error(e, what, &client.context().captured.lines()))
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub(crate) async fn connect(
    opts: &KafkaOptions,
    ctx: &ConnectContext,
) -> Result<KafkaConnection, ConnectorError> {
    let tls_on = opts.ssl_mode.is_tls();
    let first_addr = *ctx
        .addrs
        .first()
        .ok_or_else(|| ConnectorError::internal("no resolved address for the bootstrap broker"))?;
    let mut bootstrap = bootstrap_entries(&opts.host, opts.port, &ctx.addrs, tls_on);
    for (h, p) in &opts.extra_bootstrap {
        let addrs = resolve_host(h, *p, ctx.timeouts, &ctx.egress).await?;
        bootstrap.extend(bootstrap_entries(h, *p, &addrs, tls_on));
    }
    let config = client_config(opts, &bootstrap);
    let client: Client = config
        .create_with_context(CaptureContext::default())
        .map_err(|e| parse_error(e, "creating the Kafka client", &[]))?;
    let client = Arc::new(client);
    let limit = opts.connect_timeout;
    let started = std::time::Instant::now();
    // librdkafka hands its log lines and error callbacks to the context only
    // through the consumer queue: serve that queue while the metadata call
    // runs, so a refused login or certificate is seen when it happens. Each
    // poll waits for the next event, at most 100 ms between looks at `stop`.
    // The guard stops the pump also when the connect step is cancelled (the
    // runner's timeout), so no blocking task outlives the connection attempt.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let pump = {
        let (c, stop) = (client.clone(), stop.0.clone());
        tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = c.poll(Duration::from_millis(100));
            }
        })
    };
    let metadata = blocking(&client, limit, "reading cluster metadata", move |c| {
        c.fetch_metadata(None, limit)
    });
    // With one bootstrap broker, a refused login or certificate is final:
    // librdkafka would retry it until the timeout, so the connect step would
    // end as TIMEOUT with the cause only in the log. With several, another
    // broker may still answer, so the call runs its course.
    let decisive = async {
        if bootstrap.len() == 1 {
            client.context().captured.decisive().await;
            Err(parse_error(
                KafkaError::MetadataFetch(rdkafka::error::RDKafkaErrorCode::AllBrokersDown),
                "reading cluster metadata",
                &client.context().captured.lines(),
            ))
        } else {
            std::future::pending().await
        }
    };
    let md = tokio::select! {
        r = metadata => r,
        e = decisive => e,
    };
    // Wait for the pump to end: it must not take messages meant for sampling.
    drop(stop);
    let _ = pump.await;
    let md = md.map_err(|e| {
        // A broker that accepts the connection and never answers shows up
        // as a transport failure once librdkafka's own timeout has passed.
        if e.code() == ErrorCode::ConnectionRefused && started.elapsed() >= limit.mul_f32(0.9) {
            ConnectorError::new(
                ErrorCode::Timeout,
                format!(
                    "no answer from the broker within {} ms ({})",
                    limit.as_millis(),
                    e.message()
                ),
            )
            .with_source(e)
        } else {
            e
        }
    })?;
    check_brokers(&md_brokers(&md), ctx).await?;
    Ok(KafkaConnection {
        client,
        opts: opts.clone(),
        first_addr,
    })
}

pub(crate) fn md_brokers(md: &Metadata) -> Vec<(String, u16)> {
    md.brokers()
        .iter()
        .map(|b| (b.host().to_owned(), u16::try_from(b.port()).unwrap_or(0)))
        .collect()
}

/// Advertised brokers must pass the egress policy too. librdkafka dials them
/// itself once it has the metadata, so a denial ends the connection here and
/// the docs state the window.
async fn check_brokers(
    brokers: &[(String, u16)],
    ctx: &ConnectContext,
) -> Result<(), ConnectorError> {
    for (host, port) in brokers {
        resolve_host(host, *port, ctx.timeouts, &ctx.egress)
            .await
            .map_err(|e| e.with_context("advertisedBroker", format!("{host}:{port}")))?;
    }
    Ok(())
}

/// ApiVersions (key 18, v0) request: the broker's supported range per API.
fn api_versions_request() -> Vec<u8> {
    let client_id = b"matih-connector";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// (api key, min, max) triples from an ApiVersions v0 response body (after the size).
pub(crate) fn parse_api_versions(body: &[u8]) -> Result<Vec<(i16, i16, i16)>, ConnectorError> {
    let bad = |why: &str| {
        ConnectorError::new(
            ErrorCode::ProtocolError,
            format!("ApiVersions response: {why}"),
        )
    };
    let i16_at = |o: usize| {
        body.get(o..o + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| bad("truncated"))
    };
    let i32_at = |o: usize| {
        body.get(o..o + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| bad("truncated"))
    };
    let error = i16_at(4)?;
    if error != 0 {
        return Err(bad(&format!("error code {error}")).with_context("kafkaCode", error));
    }
    let n = usize::try_from(i32_at(6)?).map_err(|_| bad("negative count"))?;
    if n > 1000 {
        return Err(bad("implausible API count"));
    }
    (0..n)
        .map(|i| {
            Ok((
                i16_at(10 + i * 6)?,
                i16_at(12 + i * 6)?,
                i16_at(14 + i * 6)?,
            ))
        })
        .collect()
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Result<Vec<u8>, ConnectorError> {
    let io = |e: std::io::Error| ConnectorError::from_io(e, "ApiVersions");
    s.write_all(&api_versions_request()).await.map_err(io)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.map_err(io)?;
    let size = usize::try_from(i32::from_be_bytes(size)).unwrap_or(0);
    if size == 0 || size > 64 * 1024 {
        return Err(ConnectorError::new(
            ErrorCode::ProtocolError,
            "ApiVersions response size out of bounds",
        ));
    }
    let mut body = vec![0u8; size];
    s.read_exact(&mut body).await.map_err(io)?;
    Ok(body)
}

/// Summarises ApiVersions as the protocol the broker speaks; Kafka reports no
/// release number, and the maximum Fetch/Metadata versions say what a client
/// can rely on.
pub(crate) fn describe_versions(apis: &[(i16, i16, i16)]) -> String {
    let max = |k: i16| {
        apis.iter()
            .find(|a| a.0 == k)
            .map(|a| a.2.to_string())
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "Kafka protocol (ApiVersions: {} APIs; max Produce v{}, Fetch v{}, Metadata v{}, ApiVersions v{})",
        apis.len(),
        max(0),
        max(1),
        max(3),
        max(18)
    )
}

impl KafkaConnection {
    pub(crate) async fn api_versions(&self) -> Result<Vec<(i16, i16, i16)>, ConnectorError> {
        let limit = self.opts.connect_timeout;
        let addr = self.first_addr;
        let tcp = with_timeout(limit, "connecting for ApiVersions", async {
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| ConnectorError::from_io(e, addr))
        })
        .await?;
        let body = match tls::client_config(self.opts.ssl_mode, self.opts.ca_pem.as_deref())? {
            None => with_timeout(self.opts.query_timeout, "ApiVersions", exchange(tcp)).await?,
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.opts.host.clone())
                    .map_err(|e| {
                        ConnectorError::invalid_config(
                            "host",
                            format!("not a TLS server name: {e}"),
                        )
                    })?;
                let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg));
                let stream = with_timeout(limit, "TLS handshake", async {
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| ConnectorError::from_io(e, "TLS handshake"))
                })
                .await?;
                with_timeout(self.opts.query_timeout, "ApiVersions", exchange(stream)).await?
            }
        };
        parse_api_versions(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_wire_format() {
        let req = api_versions_request();
        assert_eq!(&req[..4], &((req.len() - 4) as i32).to_be_bytes());
        assert_eq!(&req[4..6], &18i16.to_be_bytes());
        // correlation id 1, error 0, 2 APIs: Produce 0..9, Fetch 0..13.
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend(0i16.to_be_bytes());
        body.extend(2i32.to_be_bytes());
        for (k, lo, hi) in [(0i16, 0i16, 9i16), (1, 0, 13)] {
            body.extend(k.to_be_bytes());
            body.extend(lo.to_be_bytes());
            body.extend(hi.to_be_bytes());
        }
        let apis = parse_api_versions(&body).unwrap();
        assert_eq!(apis, vec![(0, 0, 9), (1, 0, 13)]);
        assert_eq!(
            describe_versions(&apis),
            "Kafka protocol (ApiVersions: 2 APIs; max Produce v9, Fetch v13, Metadata v-, ApiVersions v-)"
        );
        assert_eq!(
            parse_api_versions(&body[..12]).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        let mut err = body.clone();
        err[4..6].copy_from_slice(&35i16.to_be_bytes());
        assert_eq!(
            parse_api_versions(&err).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
    }

    #[test]
    fn bootstrap_is_pinned_unless_tls_names_the_host() {
        let addrs: Vec<SocketAddr> = vec![
            "10.0.0.5:9092".parse().unwrap(),
            "[fd00::1]:9092".parse().unwrap(),
        ];
        assert_eq!(
            bootstrap_entries("kafka.internal", 9092, &addrs, false),
            ["10.0.0.5:9092", "[fd00::1]:9092"]
        );
        assert_eq!(
            bootstrap_entries("kafka.internal", 9092, &addrs, true),
            ["kafka.internal:9092"]
        );
        assert_eq!(
            bootstrap_entries("10.0.0.5", 9092, &addrs[..1], true),
            ["10.0.0.5:9092"]
        );
    }
}
