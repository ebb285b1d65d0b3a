//! Snowflake's REST protocol through the core's pinned HTTP client: login
//! (password or key-pair JWT), statements with bindings, JSON and Arrow result
//! sets (further chunks from cloud storage through a second client of the same
//! context, verify-full against the public roots), and the session's end.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow_array::Array;
use arrow_schema::DataType as ArrowType;
use base64::Engine as _;
use matih_connector_core::http::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE,
};
use matih_connector_core::http::{
    sign_rs256, HttpClient, HttpOptions, HttpRequest, RsaSigningKey, Url,
};
use matih_connector_core::{
    with_timeout, ConnectContext, ConnectorError, ErrorCode, SecretString, SslMode,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{json, Value};

use crate::config::{Auth, SnowflakeConfig};
use crate::errors::{parse_error, refine, Failure};

/// Login answers are small; anything bigger is not Snowflake.
const LOGIN_BODY_BYTES: u64 = 1024 * 1024;
/// Snowflake's documented maximum JWT lifetime is one hour.
const JWT_LIFETIME_SECS: u64 = 3600;

/// What the "response too large" message suggests.
const TOO_LARGE_HINT: &str = "narrow the discovery filters or raise metadata.maxResponseBytes";

/// Sends a request, reads the JSON body within `limit`, and turns
/// `"success": false` into Snowflake's error.
async fn send_json(
    req: HttpRequest,
    timeout: Duration,
    limit: u64,
    what: &str,
) -> Result<Value, ConnectorError> {
    let fetched = req.what(what).timeout(timeout).limit(limit).fetch().await?;
    serde_json::from_slice(&fetched.body).map_err(|e| parse_error(Failure::Json(e), what))
}

fn failure_of(v: &Value) -> Failure {
    let code = match v.get("code") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => format!("{:06}", n.as_u64().unwrap_or(0)),
        _ => String::new(),
    };
    Failure::Snowflake {
        code,
        message: v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message")
            .to_owned(),
        sql_state: v
            .pointer("/data/sqlState")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn is_success(v: &Value) -> bool {
    v.get("success").and_then(Value::as_bool).unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Key-pair authentication

/// The DER of an unencrypted PEM private key, PKCS#8 or PKCS#1.
fn private_key_der(
    pem: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<(Vec<u8>, bool), ConnectorError> {
    let text = pem.expose();
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.privateKey is a legacy OpenSSL-encrypted PKCS#1 key, which is not supported: convert it to encrypted PKCS#8 (openssl pkcs8 -topk8 -v2 aes-256-cbc)",
        ));
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let Some(pass) = passphrase.filter(|p| !p.is_empty()) else {
            return Err(ConnectorError::invalid_config(
                "credentials",
                "credentials.privateKey is encrypted: credentials.privateKeyPassphrase is required",
            ));
        };
        return decrypt_pkcs8(text, pass).map(|der| (der, true));
    }
    match PrivateKeyDer::from_pem_slice(text.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs8(k)) => Ok((k.secret_pkcs8_der().to_vec(), true)),
        Ok(PrivateKeyDer::Pkcs1(k)) => Ok((k.secret_pkcs1_der().to_vec(), false)),
        _ => Err(ConnectorError::invalid_config(
            "credentials",
            "credentials.privateKey holds no PEM RSA private key (PKCS#8 \"BEGIN PRIVATE KEY\" or PKCS#1 \"BEGIN RSA PRIVATE KEY\")",
        )),
    }
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt,
/// AES-CBC — what `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes) into the
/// plain PKCS#8 DER.
fn decrypt_pkcs8(text: &str, passphrase: &SecretString) -> Result<Vec<u8>, ConnectorError> {
    let bad = |why: &str| {
        ConnectorError::invalid_config("credentials", format!("credentials.privateKey: {why}"))
    };
    let body: String = text
        .split("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        .nth(1)
        .and_then(|r| r.split("-----END ENCRYPTED PRIVATE KEY-----").next())
        .ok_or_else(|| bad("the encrypted PEM block is not terminated"))?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad("the encrypted PEM block is not base64"))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
        .map_err(|_| bad("not an encrypted PKCS#8 key"))?;
    let doc = info
        .decrypt(passphrase.expose().as_bytes())
        .map_err(|_| bad("could not decrypt: wrong credentials.privateKeyPassphrase or an unsupported cipher (PBES2 with AES-CBC is supported)"))?;
    Ok(doc.as_bytes().to_vec())
}

fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

/// Wraps a PKCS#1 `RSAPublicKey` into the `SubjectPublicKeyInfo` whose SHA-256
/// Snowflake stores as `RSA_PUBLIC_KEY_FP`.
fn spki_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    const RSA_ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bits);
    bits.push(0);
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(RSA_ALG.len() + bits.len(), &mut out);
    out.extend_from_slice(&RSA_ALG);
    out.extend_from_slice(&bits);
    out
}

/// `SHA256:<base64>` of the key's public half, as Snowflake's `DESC USER` shows it.
pub(crate) fn public_key_fingerprint(
    pem: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<String, ConnectorError> {
    let (der, pkcs8) = private_key_der(pem, passphrase)?;
    let pair = if pkcs8 {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    } else {
        ring::signature::RsaKeyPair::from_der(&der)
    }
    .map_err(|e| {
        ConnectorError::invalid_config(
            "credentials",
            format!("credentials.privateKey is not a usable RSA key: {e}"),
        )
    })?;
    let spki = spki_from_pkcs1(ring::signature::KeyPair::public_key(&pair).as_ref());
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    Ok(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    ))
}

/// Checks a private key without I/O (for `validate`).
pub(crate) fn check_private_key(
    pem: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<(), ConnectorError> {
    public_key_fingerprint(pem, passphrase).map(|_| ())
}

/// The RS256 JWT of Snowflake's key-pair authentication:
/// `iss = ACCOUNT.USER.SHA256:<fp>`, `sub = ACCOUNT.USER`.
pub(crate) fn key_pair_jwt(
    account: &str,
    user: &str,
    pem: &SecretString,
    passphrase: Option<&SecretString>,
    now: u64,
) -> Result<SecretString, ConnectorError> {
    let fp = public_key_fingerprint(pem, passphrase)?;
    let (der, pkcs8) = private_key_der(pem, passphrase)?;
    let qualified = format!(
        "{}.{}",
        account.to_ascii_uppercase(),
        user.to_ascii_uppercase()
    );
    let claims = json!({
        "iss": format!("{qualified}.{fp}"),
        "sub": qualified,
        "iat": now,
        "exp": now + JWT_LIFETIME_SECS,
    });
    // Signed by the core (ring), as every RS256 assertion of the workspace.
    let key = if pkcs8 {
        RsaSigningKey::from_pkcs8_der(&der, "credentials")?
    } else {
        RsaSigningKey::from_pem(pem, "credentials")?
    };
    sign_rs256(&claims, None, &key)
}

// ---------------------------------------------------------------------------
// Result sets

/// A result set with every cell as text (Snowflake's JSON rowset shape).
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub names: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The column's index by name, ignoring case (SHOW output is lower-case,
    /// INFORMATION_SCHEMA upper-case).
    pub fn col(&self, name: &str) -> Result<usize, ConnectorError> {
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                parse_error(
                    Failure::Protocol(format!("result has no column {name}")),
                    "reading a result",
                )
            })
    }
}

fn format_scaled(v: i128, scale: u32) -> String {
    if scale == 0 {
        return v.to_string();
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let s = scale as usize;
    let padded = if digits.len() <= s {
        format!("{}{digits}", "0".repeat(s + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - s);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// Decodes Snowflake's Arrow IPC rowset into text cells. Snowflake sends
/// NUMBER as integers with a `scale` in the field metadata. Types the catalog
/// queries never select (timestamp structs, say) become NULL.
pub(crate) fn decode_arrow(bytes: &[u8]) -> Result<Vec<Vec<Option<String>>>, Failure> {
    let mut out = Vec::new();
    if bytes.is_empty() {
        return Ok(out);
    }
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(Failure::Arrow)?;
    let schema = reader.schema();
    let scales: Vec<u32> = schema
        .fields()
        .iter()
        .map(|f| {
            f.metadata()
                .get("scale")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    for batch in reader {
        let batch = batch.map_err(Failure::Arrow)?;
        let n = batch.num_rows();
        let mut rows: Vec<Vec<Option<String>>> = (0..n)
            .map(|_| Vec::with_capacity(batch.num_columns()))
            .collect();
        for (ci, col) in batch.columns().iter().enumerate() {
            let scale = scales.get(ci).copied().unwrap_or(0);
            for (ri, row) in rows.iter_mut().enumerate() {
                row.push(if col.is_null(ri) {
                    None
                } else {
                    cell(col.as_ref(), ri, scale)
                });
            }
        }
        out.extend(rows);
    }
    Ok(out)
}

fn cell(col: &dyn Array, i: usize, scale: u32) -> Option<String> {
    Some(match col.data_type() {
        ArrowType::Utf8 => col.as_string::<i32>().value(i).to_owned(),
        ArrowType::LargeUtf8 => col.as_string::<i64>().value(i).to_owned(),
        ArrowType::Int8 => format_scaled(col.as_primitive::<Int8Type>().value(i).into(), scale),
        ArrowType::Int16 => format_scaled(col.as_primitive::<Int16Type>().value(i).into(), scale),
        ArrowType::Int32 => format_scaled(col.as_primitive::<Int32Type>().value(i).into(), scale),
        ArrowType::Int64 => format_scaled(col.as_primitive::<Int64Type>().value(i).into(), scale),
        ArrowType::Decimal128(_, s) => format_scaled(
            col.as_primitive::<arrow_array::types::Decimal128Type>()
                .value(i),
            (*s).max(0) as u32,
        ),
        ArrowType::Float64 => col.as_primitive::<Float64Type>().value(i).to_string(),
        ArrowType::Float32 => col.as_primitive::<Float32Type>().value(i).to_string(),
        ArrowType::Boolean => col.as_boolean().value(i).to_string(),
        _ => return None,
    })
}

/// A further part of a large result, at a pre-signed cloud-storage URL.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub url: String,
}

/// Rows of a successful answer, and the chunks still to download.
#[derive(Debug, Default)]
pub(crate) struct FirstPart {
    pub rows: Rows,
    pub chunks: Vec<Chunk>,
    /// Headers the chunk downloads need (`chunkHeaders`, or the SSE-C headers
    /// built from `qrmk`).
    pub chunk_headers: Vec<(String, String)>,
    pub arrow: bool,
}

fn cells(set: Vec<Value>) -> Vec<Vec<Option<String>>> {
    set.into_iter()
        .map(|r| {
            r.as_array()
                .map(|cells| {
                    cells
                        .iter()
                        .map(|c| match c {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(other.to_string()),
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Reads the first part of a successful query answer.
pub(crate) fn rows_of(data: &Value) -> Result<FirstPart, Failure> {
    let names: Vec<String> = data
        .get("rowtype")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| {
                    c.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let arrow = data.get("queryResultFormat").and_then(Value::as_str) == Some("arrow")
        || data.get("rowsetBase64").and_then(Value::as_str).is_some();
    let rows = if let Some(b64) = data.get("rowsetBase64").and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| Failure::Protocol(format!("rowsetBase64 is not base64: {e}")))?;
        decode_arrow(&bytes)?
    } else {
        cells(
            data.get("rowset")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        )
    };
    let chunks: Vec<Chunk> = data
        .get("chunks")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("url").and_then(Value::as_str))
                .map(|u| Chunk { url: u.to_owned() })
                .collect()
        })
        .unwrap_or_default();
    let mut chunk_headers: Vec<(String, String)> = data
        .get("chunkHeaders")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if chunk_headers.is_empty() {
        if let Some(qrmk) = data.get("qrmk").and_then(Value::as_str) {
            // S3 server-side encryption with the query result master key.
            chunk_headers = vec![
                (
                    "x-amz-server-side-encryption-customer-algorithm".into(),
                    "AES256".into(),
                ),
                (
                    "x-amz-server-side-encryption-customer-key".into(),
                    qrmk.to_owned(),
                ),
            ];
        }
    }
    Ok(FirstPart {
        rows: Rows { names, rows },
        chunks,
        chunk_headers,
        arrow,
    })
}

/// Decodes one downloaded chunk: gzip when it starts with the gzip magic;
/// JSON chunks hold rows without the enclosing brackets.
pub(crate) fn decode_chunk(
    body: &[u8],
    arrow: bool,
    limit: u64,
) -> Result<Vec<Vec<Option<String>>>, Failure> {
    use std::io::Read as _;
    let raw: Vec<u8> = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| Failure::Protocol(format!("a result chunk is not valid gzip: {e}")))?;
        if out.len() as u64 > limit {
            return Err(Failure::TooLarge { limit });
        }
        out
    } else {
        body.to_vec()
    };
    if arrow {
        return decode_arrow(&raw);
    }
    let mut text = Vec::with_capacity(raw.len() + 2);
    text.push(b'[');
    text.extend_from_slice(&raw);
    text.push(b']');
    let set: Vec<Value> = serde_json::from_slice(&text).map_err(Failure::Json)?;
    Ok(cells(set))
}

// ---------------------------------------------------------------------------
// The connection

/// An open Snowflake session.
pub(crate) struct SnowflakeConnection {
    pub(crate) cfg: Arc<SnowflakeConfig>,
    client: HttpClient,
    token: SecretString,
    sequence: u64,
    /// `CURRENT_VERSION()`, read at connect.
    version: String,
    /// `CURRENT_DATABASE()`: the database name as Snowflake resolved it.
    pub(crate) database: String,
    /// For the cloud-storage hosts of large results: the same context (egress
    /// policy, timeouts), verify-full against the public roots.
    chunk_client: HttpClient,
}

impl std::fmt::Debug for SnowflakeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeConnection")
            .field("host", &self.cfg.host)
            .field("database", &self.database)
            .finish()
    }
}

impl SnowflakeConnection {
    pub(crate) async fn open(
        cfg: SnowflakeConfig,
        ctx: &ConnectContext,
    ) -> Result<SnowflakeConnection, ConnectorError> {
        let client = ctx.http_client(
            &HttpOptions::new(cfg.tls, cfg.ca_pem.as_deref())
                .max_body_bytes(cfg.max_response_bytes)
                .too_large_hint(TOO_LARGE_HINT)
                .refine(refine),
        )?;
        let chunk_client = ctx.http_client(
            &HttpOptions::new(SslMode::VerifyFull, None)
                .max_body_bytes(cfg.max_response_bytes)
                .too_large_hint(TOO_LARGE_HINT)
                .refine(refine),
        )?;
        let token = login(&client, &cfg, ctx.timeouts.connect()).await?;
        let mut conn = SnowflakeConnection {
            cfg: Arc::new(cfg),
            client,
            token,
            sequence: 0,
            version: String::new(),
            database: String::new(),
            chunk_client,
        };
        // The session may exist without a current database when the named
        // one is missing or not granted: that is the missing-database case.
        let r = conn
            .query_within(
                "SELECT CURRENT_VERSION(), CURRENT_DATABASE()",
                &[],
                ctx.timeouts.connect(),
            )
            .await?;
        let row = r.rows.first().cloned().unwrap_or_default();
        conn.version = row.first().cloned().flatten().unwrap_or_default();
        conn.database = match row.get(1).cloned().flatten() {
            Some(db) if !db.is_empty() => db,
            _ => {
                return Err(ConnectorError::new(
                    ErrorCode::DatabaseNotFound,
                    format!(
                        "database {:?} does not exist or is not authorized for this role",
                        conn.cfg.database
                    ),
                )
                .with_context("database", &conn.cfg.database))
            }
        };
        Ok(conn)
    }

    /// Runs one statement with positional text bindings, bounded by the query timeout.
    pub(crate) async fn query(
        &mut self,
        sql: &str,
        binds: &[String],
    ) -> Result<Rows, ConnectorError> {
        let t = self.cfg.timeouts.query();
        self.query_within(sql, binds, t).await
    }

    async fn query_within(
        &mut self,
        sql: &str,
        binds: &[String],
        limit: Duration,
    ) -> Result<Rows, ConnectorError> {
        let what = format!(
            "query {}",
            sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
        );
        let fut = self.query_inner(sql, binds, limit, &what);
        with_timeout(limit + Duration::from_millis(250), &what, fut).await
    }

    fn auth_header(&self) -> Result<HeaderValue, ConnectorError> {
        let mut v = HeaderValue::from_str(&format!("Snowflake Token=\"{}\"", self.token.expose()))
            .map_err(|_| {
                parse_error(
                    Failure::Protocol("the session token is not header-safe".into()),
                    "login",
                )
            })?;
        v.set_sensitive(true);
        Ok(v)
    }

    async fn query_inner(
        &mut self,
        sql: &str,
        binds: &[String],
        limit: Duration,
        what: &str,
    ) -> Result<Rows, ConnectorError> {
        let started = Instant::now();
        self.sequence += 1;
        let mut body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.sequence,
            "querySubmissionTime": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        });
        if !binds.is_empty() {
            let b: serde_json::Map<String, Value> = binds
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), json!({"type": "TEXT", "value": v})))
                .collect();
            body["bindings"] = Value::Object(b);
        }
        let mut url = self.cfg.url("/queries/v1/query-request");
        url.query_pairs_mut()
            .append_pair("requestId", &uuid::Uuid::new_v4().to_string());
        let req = self
            .client
            .post(url)
            .header(AUTHORIZATION, self.auth_header()?)
            .header(ACCEPT, HeaderValue::from_static("application/snowflake"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .json(&body);
        let mut v = send_json(req, limit, self.cfg.max_response_bytes, what).await?;
        // Long statements answer "in progress" with a URL to poll.
        let mut pause = Duration::from_millis(100);
        while !is_success(&v)
            && matches!(
                v.get("code").and_then(Value::as_str),
                Some("333333" | "333334")
            )
        {
            let Some(path) = v.pointer("/data/getResultUrl").and_then(Value::as_str) else {
                break;
            };
            let remaining = limit.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break;
            }
            tokio::time::sleep(pause.min(remaining)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            let url = self.result_url(path)?;
            let req = self
                .client
                .get(url)
                .header(AUTHORIZATION, self.auth_header()?)
                .header(ACCEPT, HeaderValue::from_static("application/snowflake"));
            v = send_json(
                req,
                limit
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(1)),
                self.cfg.max_response_bytes,
                what,
            )
            .await?;
        }
        if !is_success(&v) {
            return Err(parse_error(failure_of(&v), what));
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        let first = rows_of(&data).map_err(|f| parse_error(f, what))?;
        let mut rows = first.rows;
        if !first.chunks.is_empty() {
            let more = self
                .fetch_chunks(
                    &first.chunks,
                    &first.chunk_headers,
                    first.arrow,
                    limit,
                    started,
                )
                .await?;
            rows.rows.extend(more);
        }
        Ok(rows)
    }

    /// Downloads the further chunks of a large result from their pre-signed
    /// URLs: each host resolved and checked against the egress policy, TLS
    /// verified against the public roots (cloud storage, not the account
    /// endpoint), all chunks together bounded by `maxResponseBytes`.
    async fn fetch_chunks(
        &mut self,
        chunks: &[Chunk],
        headers: &[(String, String)],
        arrow: bool,
        limit: Duration,
        started: Instant,
    ) -> Result<Vec<Vec<Option<String>>>, ConnectorError> {
        let what = "downloading a result chunk";
        let mut budget = self.cfg.max_response_bytes;
        let mut out = Vec::new();
        for chunk in chunks {
            let url = Url::parse(&chunk.url)
                .map_err(|e| parse_error(Failure::Protocol(format!("bad chunk URL: {e}")), what))?;
            let mut req = self.chunk_client.get(url);
            for (k, v) in headers {
                let bad = || {
                    parse_error(
                        Failure::Protocol("a chunk header is not header-safe".into()),
                        what,
                    )
                };
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
                let mut hv = HeaderValue::from_str(v).map_err(|_| bad())?;
                hv.set_sensitive(true);
                req = req.header(name, hv);
            }
            let remaining = limit
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(1));
            let body = req
                .what(what)
                .timeout(remaining)
                .limit(budget)
                .fetch()
                .await?
                .body;
            budget = budget.saturating_sub(body.len() as u64);
            out.extend(
                decode_chunk(&body, arrow, budget.max(1)).map_err(|f| parse_error(f, what))?,
            );
        }
        Ok(out)
    }

    /// A result URL must stay on the session's own origin.
    fn result_url(&self, path: &str) -> Result<Url, ConnectorError> {
        let url = self.cfg.base.join(path).map_err(|e| {
            parse_error(
                Failure::Protocol(format!("bad getResultUrl: {e}")),
                "polling a result",
            )
        })?;
        if url.origin() != self.cfg.base.origin() {
            return Err(parse_error(
                Failure::Protocol("getResultUrl points away from the configured endpoint".into()),
                "polling a result",
            ));
        }
        Ok(url)
    }
}

/// `POST /session/v1/login-request`: returns the session token.
async fn login(
    client: &HttpClient,
    cfg: &SnowflakeConfig,
    limit: Duration,
) -> Result<SecretString, ConnectorError> {
    let what = "login";
    let mut url = cfg.url("/session/v1/login-request");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("requestId", &uuid::Uuid::new_v4().to_string());
        q.append_pair("databaseName", &cfg.database);
        if let Some(s) = &cfg.schema {
            q.append_pair("schemaName", s);
        }
        if let Some(w) = &cfg.warehouse {
            q.append_pair("warehouse", w);
        }
        if let Some(r) = &cfg.role {
            q.append_pair("roleName", r);
        }
    }
    let mut data = json!({
        "CLIENT_APP_ID": "MATIH",
        "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
        "ACCOUNT_NAME": cfg.account,
        "LOGIN_NAME": cfg.user,
        "CLIENT_ENVIRONMENT": {"APPLICATION": "matih-connectors"},
        // JSON rowsets where the server honours it; Arrow is decoded too.
        "SESSION_PARAMETERS": {"QUERY_RESULT_FORMAT": "JSON"},
    });
    match &cfg.auth {
        Auth::Password(p) => data["PASSWORD"] = Value::String(p.expose().to_owned()),
        Auth::KeyPair(k, passphrase) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let jwt = key_pair_jwt(&cfg.account, &cfg.user, k, passphrase.as_ref(), now)?;
            data["AUTHENTICATOR"] = Value::String("SNOWFLAKE_JWT".into());
            data["TOKEN"] = Value::String(jwt.expose().to_owned());
        }
    }
    let req = client
        .post(url)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .json(&json!({ "data": data }));
    let fut = async {
        let v = send_json(req, limit, LOGIN_BODY_BYTES, what).await?;
        if !is_success(&v) {
            return Err(parse_error(failure_of(&v), what));
        }
        match v.pointer("/data/token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(SecretString::new(t)),
            _ => Err(parse_error(
                Failure::Protocol("login succeeded without a session token".into()),
                what,
            )),
        }
    };
    with_timeout(limit + Duration::from_millis(250), what, fut).await
}

/// What the `Connection` impl (in `lib.rs`) asks of the session.
impl SnowflakeConnection {
    /// `CURRENT_VERSION()`, e.g. `Snowflake 9.3.1`.
    pub(crate) async fn version_text(&mut self) -> Result<String, ConnectorError> {
        if self.version.is_empty() {
            let r = self.query("SELECT CURRENT_VERSION()", &[]).await?;
            self.version = r
                .rows
                .first()
                .and_then(|r| r.first().cloned().flatten())
                .unwrap_or_default();
        }
        Ok(format!("Snowflake {}", self.version))
    }

    /// Ends the session (`POST /session?delete=true`); a failure to do so is
    /// logged, the session expires on its own.
    pub(crate) async fn end_session(self: Box<Self>) -> Result<(), ConnectorError> {
        let mut url = self.cfg.url("/session");
        url.query_pairs_mut().append_pair("delete", "true");
        let req = self
            .client
            .post(url)
            .header(AUTHORIZATION, self.auth_header()?)
            .header(ACCEPT, HeaderValue::from_static("application/snowflake"))
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .json(&json!({}));
        let limit = self.cfg.timeouts.connect();
        if let Err(e) = with_timeout(
            limit,
            "closing the session",
            send_json(req, limit, LOGIN_BODY_BYTES, "closing the session"),
        )
        .await
        {
            tracing::debug!(error = %e, "Snowflake session not closed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit test key (PKCS#8), generated for these tests only.
    const KEY: &str = include_str!("../tests/data/test_key.p8");
    /// `openssl rsa -in test_key.p8 -pubout -outform DER | openssl dgst -sha256 -binary | base64`
    const KEY_FP: &str = include_str!("../tests/data/test_key.fp");

    #[test]
    fn fingerprint_matches_openssl_and_jwt_claims() {
        let key = SecretString::new(KEY);
        assert_eq!(
            public_key_fingerprint(&key, None).unwrap(),
            format!("SHA256:{}", KEY_FP.trim())
        );
        let jwt = key_pair_jwt("ACME", "matih_reader", &key, None, 1_700_000_000).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |s: &str| -> Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(s)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(decode(parts[0])["alg"], "RS256");
        let claims = decode(parts[1]);
        assert_eq!(
            claims["iss"],
            format!("ACME.MATIH_READER.SHA256:{}", KEY_FP.trim())
        );
        assert_eq!(claims["sub"], "ACME.MATIH_READER");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
    }

    #[test]
    fn encrypted_pkcs8_keys_decrypt_with_their_passphrase() {
        let enc = SecretString::new(include_str!("../tests/data/test_key_enc.p8"));
        let pass = SecretString::new("matih-test-passphrase");
        assert_eq!(
            public_key_fingerprint(&enc, Some(&pass)).unwrap(),
            format!("SHA256:{}", KEY_FP.trim())
        );
        let jwt = key_pair_jwt("ACME", "u", &enc, Some(&pass), 1_700_000_000).unwrap();
        assert_eq!(jwt.expose().split('.').count(), 3);
        for wrong in [None, Some(SecretString::new("not-the-passphrase"))] {
            let e = check_private_key(&enc, wrong.as_ref()).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
            assert!(
                e.message().contains("privateKeyPassphrase"),
                "{}",
                e.message()
            );
            assert!(!e.message().contains("not-the-passphrase"));
        }
    }

    #[test]
    fn encrypted_and_garbage_keys_are_configuration_errors() {
        let enc = SecretString::new(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let pass = SecretString::new("p");
        let e = check_private_key(&enc, Some(&pass)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        let legacy = SecretString::new(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        );
        let e = check_private_key(&legacy, Some(&pass)).unwrap_err();
        assert!(e.message().contains("legacy"), "{}", e.message());
        let e = check_private_key(&SecretString::new("hello"), None).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfiguration);
        assert!(!e.message().contains("hello"));
    }

    #[test]
    fn scaled_integers() {
        assert_eq!(format_scaled(12345, 2), "123.45");
        assert_eq!(format_scaled(-5, 3), "-0.005");
        assert_eq!(format_scaled(7, 0), "7");
    }

    #[test]
    fn json_rowsets_and_chunked_results() {
        let data = json!({"rowtype":[{"name":"A"},{"name":"b"}],"rowset":[["1",null],["x","y"]]});
        let r = rows_of(&data).unwrap();
        assert_eq!(r.rows.col("B").unwrap(), 1);
        assert_eq!(
            r.rows.rows,
            vec![
                vec![Some("1".into()), None],
                vec![Some("x".into()), Some("y".into())]
            ]
        );
        assert!(r.chunks.is_empty() && !r.arrow);
        let chunked = json!({"rowtype":[],"rowset":[],"qrmk":"k3y","chunks":[{"url":"https://s3/x","rowCount":10}]});
        let r = rows_of(&chunked).unwrap();
        assert_eq!(r.chunks.len(), 1);
        assert_eq!(
            r.chunk_headers[1],
            (
                "x-amz-server-side-encryption-customer-key".to_owned(),
                "k3y".to_owned()
            )
        );
        assert_eq!(
            decode_chunk(br#"["a",null],["b","2"]"#, false, 1024)
                .unwrap()
                .len(),
            2
        );
        assert!(matches!(
            decode_chunk(b"\x1f\x8bnot gzip", false, 1024),
            Err(Failure::Protocol(_))
        ));
    }

    #[test]
    fn spki_lengths_use_long_form() {
        let spki = spki_from_pkcs1(&[0u8; 270]);
        assert_eq!(&spki[..2], &[0x30, 0x82]);
    }
}
