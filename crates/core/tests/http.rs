//! The core HTTP client against real sockets on loopback: a small HTTP/1.1
//! server written here (it answers what each test needs, including hostile
//! answers), listeners that record every connection they accept, and a TLS
//! server with a test CA. Egress refusals are proven to happen before any
//! packet: the denied address has a listener, and the first connection it
//! accepts is the test's own control connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use matih_connector_core::http::{
    ClientAuthMethod, ClientCredentials, HttpAuth, HttpClient, HttpOptions, JwtBearer, Redirects,
    RsaSigningKey, StatusFailure, TokenSource, Url,
};
use matih_connector_core::{
    ConnectContext, ConnectorError, EgressPolicy, ErrorCode, SecretString, SslMode, Timeouts,
};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

// ---------------------------------------------------------------- server

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Reply {
    Full(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// `n` chunks of `chunk`, no length: only the client's limit stops it.
    Stream(usize, Vec<u8>),
    /// Never answers.
    Hang,
}

fn json_reply(status: u16, v: Value) -> Reply {
    Reply::Full(
        status,
        vec![("content-type", "application/json".into())],
        v.to_string().into_bytes(),
    )
}

fn redirect(to: String) -> Reply {
    Reply::Full(302, vec![("location", to)], Vec::new())
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<Req> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut byte).await.ok()?;
        if n == 0 || (buf.is_empty() && !byte[0].is_ascii_uppercase()) {
            // Not HTTP (a TLS ClientHello, say).
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut byte).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, h: Handler) {
    let Some(req) = read_request(&mut s).await else {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        return;
    };
    match h(&req) {
        Reply::Full(status, headers, body) => {
            let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("connection: close\r\n\r\n");
            let _ = s.write_all(out.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
        Reply::Stream(n, chunk) => {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
                .await;
            for _ in 0..n {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        }
        Reply::Hang => std::future::pending::<()>().await,
    }
    let _ = s.shutdown().await;
}

/// An HTTP server on `ip`, one request per connection.
async fn serve(ip: &str, h: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> SocketAddr {
    matih_connector_testkit::fake("HTTP/1.1 server written in the test", "serve");
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let h: Handler = Arc::new(h);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(answer(tcp, h.clone()));
        }
    });
    addr
}

/// The same behind TLS with a certificate for 127.0.0.1 and localhost signed
/// by a test CA; returns the address and the CA's PEM.
async fn serve_tls(h: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> (SocketAddr, String) {
    matih_connector_testkit::fake("HTTP/1.1 server written in the test", "serve_tls");
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(matih_connector_core::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h: Handler = Arc::new(h);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, h) = (acceptor.clone(), h.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    answer(tls, h).await;
                }
            });
        }
    });
    (addr, ca.pem())
}

/// A listener that reports the peer of every connection it accepts, and holds
/// the connection open without a word.
async fn recording_listener(ip: &str) -> (SocketAddr, mpsc::UnboundedReceiver<SocketAddr>) {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, peer)) = l.accept().await {
            held.push(tcp);
            if tx.send(peer).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// Proves nothing connected to `addr` before now: a control connection made
/// now must be the first one the listener reports.
async fn assert_never_reached(addr: SocketAddr, rx: &mut mpsc::UnboundedReceiver<SocketAddr>) {
    let control = TcpStream::connect(addr).await.unwrap();
    let mine = control.local_addr().unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the listener reports the control connection")
        .unwrap();
    assert_eq!(
        first, mine,
        "something connected to {addr} before the control connection"
    );
}

// ---------------------------------------------------------------- helpers

fn ctx_for(addr: SocketAddr, egress: EgressPolicy) -> ConnectContext {
    ConnectContext {
        host: Some(addr.ip().to_string()),
        addrs: vec![addr],
        timeouts: Timeouts {
            connect_ms: 2000,
            query_ms: 2000,
        },
        egress,
        tunnel: None,
    }
}

fn client(ctx: &ConnectContext, opts: HttpOptions) -> HttpClient {
    ctx.http_client(&opts).unwrap()
}

fn plain() -> HttpOptions {
    HttpOptions::new(SslMode::Disable, None)
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).unwrap()
}

fn deny(nets: &str) -> EgressPolicy {
    EgressPolicy::from_lists("", nets).unwrap()
}

// ---------------------------------------------------------------- egress

#[tokio::test]
async fn a_redirect_to_a_denied_address_is_refused_before_any_packet() {
    let (denied, mut seen) = recording_listener("127.0.0.3").await;
    let target = format!("http://{denied}/latest/meta-data/");
    let origin = serve("127.0.0.2", move |_| redirect(target.clone())).await;
    let ctx = ctx_for(origin, deny("127.0.0.3/32"));
    for r in [Redirects::SameOrigin, Redirects::AnyOrigin] {
        let e = client(&ctx, plain().redirects(r))
            .get(url(origin, "/escape"))
            .fetch()
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::EgressDenied, "{r:?}: {e}");
        assert!(e.context_value("redirect").is_some(), "{e}");
    }
    assert_never_reached(denied, &mut seen).await;
}

#[tokio::test]
async fn an_ip_literal_in_a_denied_network_is_refused_before_any_packet() {
    let (denied, mut seen) = recording_listener("127.0.0.3").await;
    let origin = serve("127.0.0.2", |_| json_reply(200, json!({}))).await;
    let ctx = ctx_for(origin, deny("127.0.0.3/32"));
    let c = client(&ctx, plain());
    let e = c.get(url(denied, "/")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EgressDenied, "{e}");
    assert_eq!(
        e.context_value("url"),
        Some(format!("http://{denied}/").as_str())
    );
    // The same client still reaches the allowed origin.
    c.get(url(origin, "/")).fetch().await.unwrap();
    assert_never_reached(denied, &mut seen).await;
}

#[tokio::test]
async fn a_name_whose_addresses_are_denied_fails_in_the_resolver_with_its_code() {
    // localhost is 127.0.0.1 here; the origin lives on 127.0.0.2.
    let (denied, mut seen) = recording_listener("127.0.0.1").await;
    let target = format!("http://localhost:{}/", denied.port());
    let hop = target.clone();
    let origin = serve("127.0.0.2", move |r| match r.path.as_str() {
        "/to-name" => redirect(hop.clone()),
        _ => redirect("http://nowhere.matih.invalid/".into()),
    })
    .await;
    let ctx = ctx_for(origin, deny("127.0.0.1/32, ::1/128"));
    let c = client(&ctx, plain().redirects(Redirects::AnyOrigin));
    let e = c.get(url(origin, "/to-name")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EgressDenied, "{e}");
    assert_eq!(e.context_value("host"), Some("localhost"), "{e}");
    // DNS failures keep their code through reqwest's wrapping too.
    let e = c.get(url(origin, "/to-invalid")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DnsResolutionFailed, "{e}");
    // And a direct request to the name.
    let e = c
        .get(Url::parse(&target).unwrap())
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::EgressDenied, "{e}");
    assert_never_reached(denied, &mut seen).await;
}

#[tokio::test]
async fn the_own_host_name_uses_the_checked_addresses_only() {
    // The context says "api.matih.invalid" is at the origin's address: the
    // client connects there without any lookup (.invalid never resolves).
    let origin = serve("127.0.0.2", |r| {
        json_reply(200, json!({"host": r.header("host")}))
    })
    .await;
    let ctx = ConnectContext {
        host: Some("API.matih.invalid".into()),
        ..ctx_for(origin, EgressPolicy::default())
    };
    let c = client(&ctx, plain());
    let u = Url::parse(&format!("http://api.matih.invalid:{}/", origin.port())).unwrap();
    let v: Value = c.get(u).fetch().await.unwrap().json().unwrap();
    assert_eq!(
        v["host"],
        json!(format!("api.matih.invalid:{}", origin.port()))
    );
}

#[tokio::test]
async fn environment_proxies_are_ignored() {
    let (proxy, mut seen) = recording_listener("127.0.0.1").await;
    let origin = serve("127.0.0.2", |_| json_reply(200, json!({"ok": true}))).await;
    // Every client in this process is built with no_proxy, so setting the
    // variables cannot disturb the other tests.
    std::env::set_var("HTTP_PROXY", format!("http://{proxy}"));
    std::env::set_var("http_proxy", format!("http://{proxy}"));
    std::env::set_var("ALL_PROXY", format!("http://{proxy}"));
    let c = client(&ctx_for(origin, EgressPolicy::default()), plain());
    let v: Value = c
        .get(url(origin, "/"))
        .fetch()
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["ok"], json!(true));
    assert_never_reached(proxy, &mut seen).await;
}

// ---------------------------------------------------------------- redirects

#[tokio::test]
async fn redirects_follow_the_origin_rule_and_the_hop_limit() {
    let other = serve("127.0.0.1", |_| json_reply(200, json!({"at": "other"}))).await;
    let other_url = format!("http://{other}/x");
    let origin = serve("127.0.0.2", move |r| match r.path.as_str() {
        "/hop" => redirect("/final".into()),
        "/final" => json_reply(200, json!({"at": "final"})),
        "/away" => redirect(other_url.clone()),
        "/loop" => redirect("/loop".into()),
        _ => json_reply(404, json!({"message": "no such path"})),
    })
    .await;
    let ctx = ctx_for(origin, EgressPolicy::default());
    let same = client(&ctx, plain());
    let f = same.get(url(origin, "/hop")).fetch().await.unwrap();
    assert_eq!(f.json::<Value>().unwrap()["at"], json!("final"));
    assert_eq!(f.url.path(), "/final");
    // Another origin: not followed; the 302 is the answer.
    let e = same.get(url(origin, "/away")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::SourceError, "{e}");
    assert_eq!(e.context_value("httpStatus"), Some("302"));
    assert_eq!(
        e.context_value("location"),
        Some(format!("http://{other}/x").as_str())
    );
    assert!(
        e.message().contains("only within the configured origin"),
        "{e}"
    );
    // Opted in: followed.
    let any = client(&ctx, plain().redirects(Redirects::AnyOrigin));
    let f = any.get(url(origin, "/away")).fetch().await.unwrap();
    assert_eq!(f.json::<Value>().unwrap()["at"], json!("other"));
    // None: the 302 even on the same origin.
    let none = client(&ctx, plain().redirects(Redirects::None));
    let e = none.get(url(origin, "/hop")).fetch().await.unwrap_err();
    assert!(e.message().contains("not followed"), "{e}");
    // A loop stops at the hop limit.
    let e = same.get(url(origin, "/loop")).fetch().await.unwrap_err();
    assert_eq!(e.context_value("httpStatus"), Some("302"), "{e}");
}

#[tokio::test]
async fn https_never_redirects_down_to_http() {
    let (denied_plain, mut seen) = recording_listener("127.0.0.1").await;
    let to = format!("http://{denied_plain}/");
    let (tls, ca) = serve_tls(move |_| redirect(to.clone())).await;
    let ctx = ctx_for(tls, EgressPolicy::default());
    let c = client(
        &ctx,
        HttpOptions::new(SslMode::VerifyFull, Some(&ca)).redirects(Redirects::AnyOrigin),
    );
    let u = Url::parse(&format!("https://{tls}/")).unwrap();
    let e = c.get(u).fetch().await.unwrap_err();
    assert_eq!(e.context_value("httpStatus"), Some("302"), "{e}");
    assert_never_reached(denied_plain, &mut seen).await;
}

// ---------------------------------------------------------------- limits and errors

#[tokio::test]
async fn bodies_and_time_are_bounded() {
    let origin = serve("127.0.0.2", |r| match r.path.as_str() {
        "/huge" => Reply::Stream(20_000, vec![b'x'; 1024]),
        "/declared" => Reply::Full(200, vec![], vec![b'y'; 5000]),
        "/bigerror" => json_reply(
            503,
            json!({"message": format!("overloaded {}", "z".repeat(200_000))}),
        ),
        "/hang" => Reply::Hang,
        "/text" => Reply::Full(200, vec![], b"<html>hi</html>".to_vec()),
        _ => json_reply(200, json!([1, 2, 3])),
    })
    .await;
    let ctx = ctx_for(origin, EgressPolicy::default());
    let c = client(
        &ctx,
        plain()
            .max_body_bytes(4096)
            .too_large_hint("raise metadata.maxResponseBytes"),
    );
    let e = c.get(url(origin, "/huge")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError, "{e}");
    assert_eq!(e.context_value("limitBytes"), Some("4096"));
    assert!(
        e.message().contains("raise metadata.maxResponseBytes"),
        "{e}"
    );
    let e = c.get(url(origin, "/declared")).fetch().await.unwrap_err();
    assert_eq!(e.context_value("limitBytes"), Some("4096"), "{e}");
    let f = c
        .get(url(origin, "/declared"))
        .limit(8192)
        .fetch()
        .await
        .unwrap();
    assert_eq!(f.body.len(), 5000);

    let e = c.get(url(origin, "/bigerror")).fetch().await.unwrap_err();
    assert_eq!((e.code(), e.is_retryable()), (ErrorCode::SourceError, true));
    assert!(e.message().len() < 500, "{}", e.message().len());

    let e = c
        .get(url(origin, "/text"))
        .fetch()
        .await
        .unwrap()
        .json::<Value>()
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError);

    let e = c
        .get(url(origin, "/hang"))
        .timeout(Duration::from_millis(300))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
}

#[tokio::test]
async fn transport_failures_map_to_codes() {
    // A port nothing listens on: bind, note, drop.
    let closed = TcpListener::bind("127.0.0.2:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let ctx = ctx_for(closed, EgressPolicy::default());
    let e = client(&ctx, plain())
        .get(url(closed, "/"))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ConnectionRefused, "{e}");

    // A listener that accepts and never answers: the connect timeout does
    // not apply, the request timeout does.
    let (silent, _seen) = recording_listener("127.0.0.2").await;
    let ctx = ctx_for(silent, EgressPolicy::default());
    let e = client(&ctx, plain().request_timeout(Duration::from_millis(300)))
        .get(url(silent, "/"))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Timeout, "{e}");

    // TLS: an unknown CA fails the handshake; the CA PEM or `require` pass;
    // TLS spoken to a plain server fails the handshake too.
    let (tls, ca) = serve_tls(|_| json_reply(200, json!({"tls": true}))).await;
    let ctx = ctx_for(tls, EgressPolicy::default());
    let u = Url::parse(&format!("https://{tls}/")).unwrap();
    let e = client(&ctx, HttpOptions::new(SslMode::VerifyFull, None))
        .get(u.clone())
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SslHandshakeFailed, "{e}");
    for (mode, pem) in [
        (SslMode::VerifyFull, Some(ca.as_str())),
        (SslMode::VerifyCa, Some(ca.as_str())),
        (SslMode::Require, None),
    ] {
        client(&ctx, HttpOptions::new(mode, pem))
            .get(u.clone())
            .fetch()
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
    }
    let origin = serve("127.0.0.2", |_| json_reply(200, json!({}))).await;
    let ctx = ctx_for(origin, EgressPolicy::default());
    let e = client(&ctx, HttpOptions::new(SslMode::Require, None))
        .get(Url::parse(&format!("https://{origin}/")).unwrap())
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::SslHandshakeFailed, "{e}");
}

fn vendor_refine(f: &StatusFailure<'_>) -> Option<ConnectorError> {
    let v: Value = serde_json::from_slice(f.body).ok()?;
    match v.get("code")?.as_str()? {
        "WAREHOUSE_MISSING" => Some(
            f.error(
                ErrorCode::InvalidConfiguration,
                Some("no such warehouse".into()),
            )
            .with_context("vendorCode", "WAREHOUSE_MISSING"),
        ),
        _ => None,
    }
}

#[tokio::test]
async fn drivers_refine_status_errors_from_vendor_bodies() {
    let origin = serve("127.0.0.2", |r| match r.path.as_str() {
        "/vendor" => Reply::Full(
            404,
            vec![("retry-after", "3".into())],
            br#"{"code":"WAREHOUSE_MISSING"}"#.to_vec(),
        ),
        _ => json_reply(404, json!({"code": "OTHER", "message": "gone"})),
    })
    .await;
    let c = client(
        &ctx_for(origin, EgressPolicy::default()),
        plain().refine(vendor_refine),
    );
    let e = c.get(url(origin, "/vendor")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
    assert_eq!(e.context_value("vendorCode"), Some("WAREHOUSE_MISSING"));
    assert_eq!(e.context_value("httpStatus"), Some("404"));
    assert_eq!(e.context_value("retryAfter"), Some("3"));
    let e = c.get(url(origin, "/other")).fetch().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::DatabaseNotFound);
    assert!(e.message().contains("gone"), "{e}");
}

// ---------------------------------------------------------------- tokens

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn client_credentials_are_fetched_cached_and_refused_with_codes() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let n = fetches.clone();
    let idp = serve("127.0.0.2", move |r| {
        n.fetch_add(1, Ordering::SeqCst);
        let basic = r.header("authorization") == Some("Basic Y2lkOmNzZWNyZXQ="); // cid:csecret
        let post = form_value(&r.body, "client_id") == Some("cid")
            && form_value(&r.body, "client_secret") == Some("csecret");
        if r.method != "POST" || form_value(&r.body, "grant_type") != Some("client_credentials") {
            return json_reply(400, json!({"error": "unsupported_grant_type"}));
        }
        if !basic && !post {
            return json_reply(
                401,
                json!({"error": "invalid_client", "error_description": "bad secret not-csecret"}),
            );
        }
        let life = if r.path == "/short" { 0 } else { 3600 };
        json_reply(
            200,
            json!({"access_token": format!("tok-{}", r.path), "expires_in": life, "scope": form_value(&r.body, "scope")}),
        )
    })
    .await;
    let ctx = ctx_for(idp, EgressPolicy::default());
    let c = client(&ctx, plain());
    let source = |path: &str, secret: &str, method| {
        TokenSource::client_credentials(
            url(idp, path),
            ClientCredentials {
                client_id: "cid".into(),
                client_secret: secret.into(),
                scope: Some("read".into()),
                method,
            },
        )
    };
    let long = source("/long", "csecret", ClientAuthMethod::Basic);
    assert_eq!(long.token(&c).await.unwrap().expose(), "tok-/long");
    assert_eq!(long.token(&c).await.unwrap().expose(), "tok-/long");
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "cached while fresh");
    // A token that expires at once is fetched again every time.
    let short = source("/short", "csecret", ClientAuthMethod::Post);
    short.token(&c).await.unwrap();
    short.token(&c).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 3);

    let wrong = source("/long", "not-csecret", ClientAuthMethod::Post);
    let e = wrong.token(&c).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthenticationFailed, "{e}");
    assert_eq!(e.context_value("oauthError"), Some("invalid_client"));
    assert!(!e.message().contains("not-csecret"), "{e}");
    assert!(!format!("{wrong:?}").contains("csecret"));

    // As request authentication: the bearer header carries the token.
    let api = serve("127.0.0.2", |r| {
        json_reply(200, json!({"auth": r.header("authorization")}))
    })
    .await;
    let auth = HttpAuth::Token(Arc::new(source("/api", "csecret", ClientAuthMethod::Basic)));
    let c2 = client(&ctx_for(api, EgressPolicy::default()), plain());
    auth.authorize(&c2).await.unwrap();
    let req = auth.apply(c2.get(url(api, "/"))).await.unwrap();
    let v: Value = req.fetch().await.unwrap().json().unwrap();
    assert_eq!(v["auth"], json!("Bearer tok-/api"));
}

#[tokio::test]
async fn a_token_endpoint_in_a_denied_network_is_never_reached() {
    let (denied, mut seen) = recording_listener("127.0.0.3").await;
    let api = serve("127.0.0.2", |_| json_reply(200, json!({}))).await;
    let c = client(&ctx_for(api, deny("127.0.0.3/32")), plain());
    let source = TokenSource::client_credentials(
        url(denied, "/token"),
        ClientCredentials {
            client_id: "cid".into(),
            client_secret: "csecret".into(),
            scope: None,
            method: ClientAuthMethod::Basic,
        },
    );
    let e = source.token(&c).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::EgressDenied, "{e}");
    assert_never_reached(denied, &mut seen).await;
}

#[tokio::test]
async fn jwt_bearer_assertions_are_signed_and_exchanged() {
    const KEY: &str = include_str!("data/test-rsa-key.pem");
    const PUBLIC: &str = include_str!("data/test-rsa-key.pub.pem");
    use base64::Engine as _;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap()
    };
    let public: Vec<u8> = base64::engine::general_purpose::STANDARD
        .decode(
            PUBLIC
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let idp = serve("127.0.0.2", move |r| {
        if form_value(&r.body, "grant_type")
            != Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
        {
            return json_reply(400, json!({"error": "unsupported_grant_type"}));
        }
        let jwt = form_value(&r.body, "assertion").unwrap_or_default();
        let parts: Vec<&str> = jwt.split('.').collect();
        let ok = parts.len() == 3
            && ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                &public,
            )
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &b64(parts[2]))
            .is_ok();
        if !ok {
            return json_reply(400, json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}));
        }
        let claims: Value = serde_json::from_slice(&b64(parts[1])).unwrap();
        json_reply(200, json!({"access_token": format!("sa-{}-{}", claims["iss"].as_str().unwrap(), claims["scope"].as_str().unwrap()), "expires_in": 3599}))
    })
    .await;
    let c = client(&ctx_for(idp, EgressPolicy::default()), plain());
    let grant = |pem: &str| JwtBearer {
        issuer: "reader@project.iam.gserviceaccount.com".into(),
        key: RsaSigningKey::from_pem(&SecretString::new(pem), "credentials.serviceAccountKey")
            .unwrap(),
        key_id: Some("k1".into()),
        scope: "read-only".into(),
        audience: None,
        lifetime: Duration::from_secs(3600),
    };
    let src = TokenSource::jwt_bearer(url(idp, "/token"), grant(KEY));
    assert_eq!(
        src.token(&c).await.unwrap().expose(),
        "sa-reader@project.iam.gserviceaccount.com-read-only"
    );
    assert!(!format!("{src:?}").contains("PRIVATE"));
    // A key the endpoint does not know: invalid_grant.
    let src = TokenSource::jwt_bearer(
        url(idp, "/token"),
        grant(include_str!("data/other-rsa-key.pem")),
    );
    let e = src.token(&c).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::AuthenticationFailed, "{e}");
    assert_eq!(e.context_value("oauthError"), Some("invalid_grant"));
}
