//! The two protocols' outputs, parsed: Airbyte messages (one JSON object a
//! line) and Singer catalogs (one JSON document), turned into check results
//! and catalogs. No I/O here: [`crate::process`] runs the commands.

use std::collections::BTreeMap;

use matih_connector_core::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, ErrorCode, Schema, Table, TableKind,
};
use serde::Deserialize;
use serde_json::Value;

use crate::errors::{protocol_error, reported, telling_line};
use crate::process::Finished;
use crate::types::StreamSchema;

/// The schema streams without a namespace (Airbyte) or schema name (Singer)
/// are put in.
pub const DEFAULT_SCHEMA: &str = "default";

/// What parsing needs to know besides the output: the type's name for
/// messages and the values to redact.
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub type_name: &'a str,
    pub secrets: &'a [String],
}

// ---------------------------------------------------------------- Airbyte

/// One Airbyte message; only the members we read.
#[derive(Debug, Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, rename = "connectionStatus")]
    connection_status: Option<ConnectionStatus>,
    #[serde(default)]
    catalog: Option<AirbyteCatalog>,
    #[serde(default)]
    trace: Option<Trace>,
}

#[derive(Debug, Deserialize)]
struct ConnectionStatus {
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Trace {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    error: Option<TraceError>,
}

#[derive(Debug, Deserialize)]
struct TraceError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    internal_message: Option<String>,
    #[serde(default)]
    failure_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AirbyteCatalog {
    streams: Vec<AirbyteStream>,
}

#[derive(Debug, Deserialize)]
struct AirbyteStream {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    json_schema: StreamSchema,
    #[serde(default)]
    source_defined_primary_key: Option<Vec<Vec<String>>>,
}

/// Every message on standard output; a line that is not a JSON object with a
/// `type` is `PROTOCOL_ERROR` quoting it.
fn messages(ctx: &Ctx<'_>, out: &Finished) -> Result<Vec<Message>, ConnectorError> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut msgs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Message>(line) {
            Ok(m) => msgs.push(m),
            Err(_) => {
                return Err(protocol_error(
                    ctx.type_name,
                    "not an Airbyte message",
                    i + 1,
                    line,
                    ctx.secrets,
                ))
            }
        }
    }
    Ok(msgs)
}

/// The first `TRACE` error, as our error.
fn trace_error(ctx: &Ctx<'_>, msgs: &[Message]) -> Option<ConnectorError> {
    let err = msgs
        .iter()
        .filter(|m| m.kind == "TRACE")
        .filter_map(|m| m.trace.as_ref())
        .filter(|t| t.kind == "ERROR")
        .find_map(|t| t.error.as_ref())?;
    let text = match (&err.message, &err.internal_message) {
        (Some(m), Some(i)) if m != i => format!("{m} ({i})"),
        (Some(m), _) => m.clone(),
        (None, Some(i)) => i.clone(),
        (None, None) => String::from("the connector reported an error without a message"),
    };
    Some(reported(
        ctx.type_name,
        &text,
        err.failure_type.as_deref(),
        ctx.secrets,
    ))
}

/// A run that ended without the message it owed: its own error, or the end
/// of standard error when it failed, or `PROTOCOL_ERROR` when it claims
/// success.
fn missing(ctx: &Ctx<'_>, out: &Finished, what: &str) -> ConnectorError {
    if !out.status.success() {
        return exit_failure(ctx, out);
    }
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!(
            "{}: the command exited without a {what} message",
            ctx.type_name
        ),
    )
}

/// A failed exit: the telling line of standard error, mapped.
pub(crate) fn exit_failure(ctx: &Ctx<'_>, out: &Finished) -> ConnectorError {
    let status = out.status;
    let line = telling_line(&out.stderr_text())
        .unwrap_or_else(|| String::from("no output on standard error"));
    reported(
        ctx.type_name,
        &format!("{line} (the command exited with {status})"),
        None,
        ctx.secrets,
    )
    .with_context("exit", status)
}

/// `check`: `CONNECTION_STATUS` SUCCEEDED, or the failure it reports.
pub(crate) fn airbyte_check(ctx: &Ctx<'_>, out: &Finished) -> Result<(), ConnectorError> {
    let msgs = messages(ctx, out)?;
    if let Some(e) = trace_error(ctx, &msgs) {
        return Err(e);
    }
    let status = msgs
        .iter()
        .filter(|m| m.kind == "CONNECTION_STATUS")
        .find_map(|m| m.connection_status.as_ref());
    match status {
        Some(s) if s.status == "SUCCEEDED" => Ok(()),
        Some(s) => Err(reported(
            ctx.type_name,
            s.message
                .as_deref()
                .unwrap_or("the connection check failed without a message"),
            None,
            ctx.secrets,
        )),
        None => Err(missing(ctx, out, "CONNECTION_STATUS")),
    }
}

/// `discover`: the `CATALOG` message's streams as tables.
pub(crate) fn airbyte_catalog(
    ctx: &Ctx<'_>,
    out: &Finished,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let msgs = messages(ctx, out)?;
    if let Some(e) = trace_error(ctx, &msgs) {
        return Err(e);
    }
    let catalog = msgs
        .into_iter()
        .filter(|m| m.kind == "CATALOG")
        .find_map(|m| m.catalog)
        .ok_or_else(|| missing(ctx, out, "CATALOG"))?;
    let tables = catalog.streams.into_iter().map(|s| {
        let mut t = Table::new(s.name, TableKind::Table);
        t.primary_key = s
            .source_defined_primary_key
            .unwrap_or_default()
            .into_iter()
            .filter_map(|path| path.into_iter().next())
            .collect();
        t.columns = s.json_schema.columns();
        (s.namespace.unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()), t)
    });
    Ok(build(tables, req))
}

// ---------------------------------------------------------------- Singer

#[derive(Debug, Deserialize)]
struct SingerCatalog {
    streams: Vec<SingerStream>,
}

#[derive(Debug, Deserialize)]
struct SingerStream {
    #[serde(default)]
    tap_stream_id: Option<String>,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    table_name: Option<String>,
    #[serde(default)]
    schema: StreamSchema,
    #[serde(default)]
    key_properties: Option<Vec<String>>,
    #[serde(default)]
    is_view: Option<bool>,
    #[serde(default)]
    metadata: Vec<Breadcrumb>,
}

#[derive(Debug, Deserialize)]
struct Breadcrumb {
    #[serde(default)]
    breadcrumb: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
}

impl SingerStream {
    /// The stream-level metadata (empty breadcrumb).
    fn top(&self) -> Option<&BTreeMap<String, Value>> {
        self.metadata
            .iter()
            .find(|b| b.breadcrumb.is_empty())
            .map(|b| &b.metadata)
    }

    fn top_str(&self, key: &str) -> Option<String> {
        self.top()?.get(key)?.as_str().map(str::to_owned)
    }
}

/// `--discover`: standard output is one catalog document. A document that
/// does not parse is `PROTOCOL_ERROR` quoting the line where it broke.
pub(crate) fn singer_catalog(
    ctx: &Ctx<'_>,
    out: &Finished,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    if !out.status.success() {
        return Err(exit_failure(ctx, out));
    }
    let catalog: SingerCatalog = serde_json::from_slice(&out.stdout).map_err(|e| {
        let text = String::from_utf8_lossy(&out.stdout);
        let line_no = e.line().max(1);
        let line = text.lines().nth(line_no - 1).unwrap_or_default();
        let what = if out.stdout.iter().all(u8::is_ascii_whitespace) {
            "printed no catalog"
        } else {
            "not a Singer catalog"
        };
        protocol_error(ctx.type_name, what, line_no, line, ctx.secrets)
    })?;
    let tables = catalog.streams.into_iter().map(|s| {
        let schema = s
            .top_str("schema-name")
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        let name = s
            .table_name
            .clone()
            .or_else(|| s.top_str("table-name"))
            .or_else(|| s.stream.clone())
            .or_else(|| s.tap_stream_id.clone())
            .unwrap_or_default();
        let view = s.is_view.unwrap_or(false)
            || s.top()
                .and_then(|m| m.get("is-view"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
        let mut t = Table::new(
            name,
            if view {
                TableKind::View
            } else {
                TableKind::Table
            },
        );
        t.primary_key = s
            .key_properties
            .clone()
            .or_else(|| {
                s.top()?.get("table-key-properties")?.as_array().map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
            })
            .unwrap_or_default();
        t.columns = s.schema.columns();
        (schema, t)
    });
    Ok(build(tables, req))
}

/// Groups tables into schemas, applying the request's filters and depth
/// (neither protocol can take them, so they apply to what came back).
fn build(tables: impl Iterator<Item = (String, Table)>, req: &DiscoveryRequest) -> Catalog {
    let mut schemas: BTreeMap<String, Vec<Table>> = BTreeMap::new();
    for (schema, mut table) in tables {
        if !req.schemas.matches(&schema) {
            continue;
        }
        let entry = schemas.entry(schema).or_default();
        if req.depth == Depth::Schemas || !req.tables.matches(&table.name) {
            continue;
        }
        if req.depth != Depth::Columns {
            table.columns.clear();
        }
        entry.push(table);
    }
    let mut catalog = Catalog {
        schemas: schemas
            .into_iter()
            .map(|(name, tables)| Schema {
                name,
                comment: None,
                tables,
            })
            .collect(),
    };
    catalog.sort();
    catalog
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use matih_connector_core::{DataType, NameFilter};

    use super::*;

    fn finished(code: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    const CTX: Ctx<'static> = Ctx {
        type_name: "FAKER",
        secrets: &[],
    };

    #[test]
    fn airbyte_check_statuses() {
        let ok = finished(
            0,
            "{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"Check succeeded\"}}\n{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":\"SUCCEEDED\"}}\n",
            "",
        );
        airbyte_check(&CTX, &ok).unwrap();

        let failed = finished(
            0,
            "{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":\"FAILED\",\"message\":\"FATAL:  password authentication failed for user \\\"x\\\"\"}}\n",
            "",
        );
        let e = airbyte_check(&CTX, &failed).unwrap_err();
        assert_eq!(e.code(), ErrorCode::AuthenticationFailed);

        // The shape of an airbyte-cdk TRACE error (a config error).
        let trace = finished(
            1,
            "{\"type\":\"TRACE\",\"trace\":{\"type\":\"ERROR\",\"emitted_at\":1.7e12,\"error\":{\"message\":\"Config validation error: -1 is less than the minimum of 1\",\"internal_message\":\"-1 is less than the minimum of 1\",\"stack_trace\":\"Traceback …\",\"failure_type\":\"config_error\"}}}\n",
            "",
        );
        let e = airbyte_check(&CTX, &trace).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SourceError);
        assert_eq!(e.context_value("failure_type"), Some("config_error"));
        assert!(e.message().contains("minimum of 1"), "{}", e.message());

        let silent = finished(0, "{\"type\":\"LOG\",\"log\":{}}\n", "");
        assert_eq!(
            airbyte_check(&CTX, &silent).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        let crashed = finished(
            1,
            "",
            "Traceback\nConnectionRefusedError: [Errno 111] Connection refused\n",
        );
        let e = airbyte_check(&CTX, &crashed).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ConnectionRefused);
        assert!(e.message().contains("exited with"), "{}", e.message());
    }

    #[test]
    fn garbage_is_a_protocol_error_quoting_the_first_bad_line() {
        let out = finished(
            0,
            "{\"type\":\"LOG\",\"log\":{}}\nhello pass=s3cret\nmore junk\n",
            "",
        );
        let secrets = ["s3cret".to_owned()];
        let ctx = Ctx {
            type_name: "FAKER",
            secrets: &secrets,
        };
        let e = airbyte_check(&ctx, &out).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert!(e.message().contains("line 2"), "{}", e.message());
        assert!(e.message().contains("hello pass=***"), "{}", e.message());

        let e = singer_catalog(
            &ctx,
            &finished(0, "{\n  \"streams\": [\n  oops s3cret\n", ""),
            &DiscoveryRequest::default(),
        )
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ProtocolError);
        assert!(e.message().contains("line 3"), "{}", e.message());
        assert!(e.message().contains("oops ***"), "{}", e.message());
        let e =
            singer_catalog(&ctx, &finished(0, "", ""), &DiscoveryRequest::default()).unwrap_err();
        assert!(
            e.message().contains("printed no catalog"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn airbyte_catalog_to_tables() {
        let out = finished(
            0,
            r#"{"type":"CATALOG","catalog":{"streams":[{"name":"users","json_schema":{"type":"object","properties":{"id":{"type":"integer"},"created_at":{"type":"string","format":"date-time","airbyte_type":"timestamp_with_timezone"},"email":{"type":["null","string"]}}},"supported_sync_modes":["full_refresh","incremental"],"source_defined_primary_key":[["id"]]},{"name":"events","namespace":"app","json_schema":{"properties":{}}}]}}"#,
            "",
        );
        let cat = airbyte_catalog(&CTX, &out, &DiscoveryRequest::default()).unwrap();
        let users = cat.schema(DEFAULT_SCHEMA).unwrap().table("users").unwrap();
        assert_eq!(users.primary_key, vec!["id"]);
        let names: Vec<_> = users.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "created_at", "email"]);
        assert_eq!(users.columns[1].data_type, DataType::TimestampTz);
        assert!(users.columns[2].nullable);
        assert!(!users.columns[0].nullable);
        assert!(cat.schema("app").unwrap().table("events").is_some());

        let only_app = DiscoveryRequest {
            schemas: NameFilter {
                include: vec!["app".into()],
                exclude: vec![],
            },
            ..Default::default()
        };
        let cat = airbyte_catalog(&CTX, &out, &only_app).unwrap();
        assert_eq!(cat.schemas.len(), 1);
        let tables_only = DiscoveryRequest::default().with_depth(Depth::Tables);
        let cat = airbyte_catalog(&CTX, &out, &tables_only).unwrap();
        assert!(cat
            .schemas
            .iter()
            .all(|s| s.tables.iter().all(|t| t.columns.is_empty())));
    }

    /// The shape meltanolabs-tap-postgres 0.10 prints.
    #[test]
    fn singer_catalog_to_tables() {
        let out = finished(
            0,
            r#"{"streams":[{"tap_stream_id":"sales-orders","table_name":"orders","key_properties":["id"],"schema":{"properties":{"id":{"type":["integer"]},"note":{"type":["string","null"]},"placed":{"format":"date","type":["string"]}},"type":"object","required":["id"]},"is_view":false,"stream":"sales-orders","metadata":[{"breadcrumb":["properties","id"],"metadata":{"inclusion":"automatic"}},{"breadcrumb":[],"metadata":{"inclusion":"available","table-key-properties":["id"],"schema-name":"sales"}}]},{"tap_stream_id":"sales-v","stream":"sales-v","is_view":true,"schema":{"properties":{}},"metadata":[{"breadcrumb":[],"metadata":{"schema-name":"sales","table-name":"v"}}]}]}"#,
            "",
        );
        let cat = singer_catalog(&CTX, &out, &DiscoveryRequest::default()).unwrap();
        let sales = cat.schema("sales").unwrap();
        let orders = sales.table("orders").unwrap();
        assert_eq!(orders.kind, TableKind::Table);
        assert_eq!(orders.primary_key, vec!["id"]);
        assert_eq!(orders.columns[2].data_type, DataType::Date);
        assert!(orders.columns[1].nullable);
        assert_eq!(sales.table("v").unwrap().kind, TableKind::View);
    }

    #[test]
    fn singer_failure_maps_standard_error() {
        let out = finished(
            1,
            "",
            "Traceback (most recent call last):\n  ...\npsycopg2.OperationalError: connection to server at \"127.0.0.1\", port 5 failed: FATAL:  password authentication failed for user \"matih\"\n",
        );
        let e = singer_catalog(&CTX, &out, &DiscoveryRequest::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::AuthenticationFailed);
        assert_eq!(e.context_value("exit"), Some("exit status: 1"));
    }
}
