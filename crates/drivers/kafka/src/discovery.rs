//! Discovery: the cluster → one schema, topics → tables (partitions,
//! replication factor, message count from watermarks), fields inferred from a
//! bounded sample of the newest messages.
//!
//! Calls: one Metadata request; one watermark query per partition (librdkafka
//! has no batched form), eight at a time, all within the query timeout; per
//! topic one assignment of its partitions at `high - n` and polls until the
//! sample is full, the partitions are read to their high watermark, the
//! sample's byte budget is spent or [`SAMPLE_TIME`] has passed; all sampling
//! of one discovery within the query timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use matih_connector_core::{
    Catalog, ConnectorError, Depth, DiscoveryRequest, Schema, Table, TableKind,
};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::connection::{blocking, Client, KafkaConnection};
use crate::types::infer_columns;

const PARALLEL: usize = 8;

/// (topic, partition)
type Partition = (String, i32);
/// (low, high) watermarks
type Marks = (i64, i64);
const SAMPLE_TIME: Duration = Duration::from_secs(5);
const SAMPLE_BYTES: usize = 4 * 1024 * 1024;
const MAX_SAMPLE: u32 = 10_000;

struct TopicInfo {
    name: String,
    partitions: Vec<i32>,
    replication: usize,
}

fn is_internal(name: &str) -> bool {
    name.starts_with("__") || name.starts_with("_confluent") || name == "_schemas"
}

async fn schema_name(conn: &KafkaConnection) -> String {
    if let Some(n) = &conn.opts.cluster_name {
        return n.clone();
    }
    let limit = conn.opts.connect_timeout;
    blocking(&conn.client, limit, "reading the cluster id", move |c| {
        Ok(c.client().fetch_cluster_id(limit))
    })
    .await
    .ok()
    .flatten()
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "kafka".to_owned())
}

async fn topics(
    conn: &KafkaConnection,
    req: &DiscoveryRequest,
) -> Result<Vec<TopicInfo>, ConnectorError> {
    let limit = conn.opts.query_timeout;
    let include_system = req.include_system;
    let filter = req.tables.clone();
    blocking(&conn.client, limit, "reading topic metadata", move |c| {
        let md = c.fetch_metadata(None, limit)?;
        let mut out: Vec<TopicInfo> = md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .filter(|t| include_system || !is_internal(t.name()))
            .filter(|t| filter.matches(t.name()))
            .map(|t| TopicInfo {
                name: t.name().to_owned(),
                partitions: t.partitions().iter().map(|p| p.id()).collect(),
                replication: t
                    .partitions()
                    .iter()
                    .map(|p| p.replicas().len())
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    })
    .await
}

pub(crate) async fn probe(
    conn: &KafkaConnection,
    req: &DiscoveryRequest,
) -> Result<(), ConnectorError> {
    if req.depth >= Depth::Tables {
        topics(conn, req).await?;
    }
    Ok(())
}

/// (low, high) per (topic, partition), all queries within the query timeout.
async fn watermarks(
    conn: &KafkaConnection,
    topics: &[TopicInfo],
) -> Result<HashMap<Partition, (i64, i64)>, ConnectorError> {
    let limit = conn.opts.query_timeout;
    let each = limit.min(Duration::from_secs(10));
    let pairs: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.clone(), *p)))
        .collect();
    let client = conn.client.clone();
    let all = async move {
        let results: Vec<Result<(Partition, Marks), ConnectorError>> =
            futures_util::stream::iter(pairs)
                .map(|(topic, p)| {
                    let client = client.clone();
                    async move {
                        let t = topic.clone();
                        let w = blocking(&client, each, "reading watermarks", move |c| {
                            c.fetch_watermarks(&t, p, each)
                        })
                        .await?;
                        Ok(((topic, p), w))
                    }
                })
                .buffer_unordered(PARALLEL)
                .collect()
                .await;
        results.into_iter().collect::<Result<HashMap<_, _>, _>>()
    };
    matih_connector_core::with_timeout(limit, "reading watermarks", all).await
}

/// The newest messages of a topic: up to `n`, spread over its partitions.
fn sample(
    c: &Client,
    topic: &str,
    marks: &[(i32, i64, i64)],
    n: u32,
    budget: Duration,
) -> Result<Vec<Option<Vec<u8>>>, rdkafka::error::KafkaError> {
    let with_data: Vec<_> = marks.iter().filter(|(_, lo, hi)| hi > lo).collect();
    if with_data.is_empty() || n == 0 {
        return Ok(Vec::new());
    }
    let parts = with_data.len() as i64;
    let per = ((i64::from(n) + parts - 1) / parts).max(1);
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for (p, lo, hi) in &with_data {
        tpl.add_partition_offset(topic, *p, Offset::Offset((*hi - per).max(*lo)))?;
        ends.insert(*p, *hi);
    }
    c.assign(&tpl)?;
    let deadline = Instant::now() + budget;
    let mut out = Vec::new();
    let mut bytes = 0usize;
    while out.len() < n as usize && bytes < SAMPLE_BYTES && !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match c.poll(left.min(Duration::from_millis(200))) {
            None => continue,
            Some(Err(e)) => {
                let _ = c.unassign();
                return Err(e);
            }
            Some(Ok(m)) => {
                if m.topic() != topic {
                    continue;
                }
                let p = m.partition();
                if let Some(end) = ends.get(&p).copied() {
                    if m.offset() + 1 >= end {
                        ends.remove(&p);
                    }
                    if m.offset() < end {
                        let payload = m.payload().map(<[u8]>::to_vec);
                        bytes += payload.as_ref().map_or(0, Vec::len);
                        out.push(payload);
                    }
                }
            }
        }
    }
    c.unassign()?;
    Ok(out)
}

pub(crate) async fn discover(
    conn: &KafkaConnection,
    req: &DiscoveryRequest,
) -> Result<Catalog, ConnectorError> {
    let name = schema_name(conn).await;
    let mut catalog = Catalog::default();
    if !req.schemas.matches(&name) {
        return Ok(catalog);
    }
    let mut schema = Schema {
        name,
        comment: None,
        tables: Vec::new(),
    };
    if req.depth >= Depth::Tables {
        let topics = topics(conn, req).await?;
        let columns = req.depth >= Depth::Columns && req.sample_size > 0;
        let marks = if req.statistics || columns {
            Some(watermarks(conn, &topics).await?)
        } else {
            None
        };
        // All sampling together stays within the query timeout; topics past
        // it are listed without columns.
        let sampling_ends = Instant::now() + conn.opts.query_timeout;
        for t in &topics {
            let mut table = Table::new(t.name.clone(), TableKind::Topic);
            table.properties.insert(
                "partitions".into(),
                serde_json::Value::from(t.partitions.len()),
            );
            table.properties.insert(
                "replicationFactor".into(),
                serde_json::Value::from(t.replication),
            );
            let tm: Vec<(i32, i64, i64)> = match &marks {
                Some(m) => t
                    .partitions
                    .iter()
                    .filter_map(|p| m.get(&(t.name.clone(), *p)).map(|(lo, hi)| (*p, *lo, *hi)))
                    .collect(),
                None => Vec::new(),
            };
            if req.statistics {
                // Offsets, not records: compaction and transaction markers make it an upper bound.
                table.estimated_rows =
                    Some(tm.iter().map(|(_, lo, hi)| (hi - lo).max(0) as u64).sum());
            }
            let left = sampling_ends.saturating_duration_since(Instant::now());
            if columns && !left.is_zero() {
                let n = req.sample_size.min(MAX_SAMPLE);
                let budget = SAMPLE_TIME.min(left);
                let topic = t.name.clone();
                let payloads = blocking(&conn.client, budget, "sampling messages", move |c| {
                    sample(c, &topic, &tm, n, budget)
                })
                .await?;
                table.properties.insert(
                    "sampledMessages".into(),
                    serde_json::Value::from(payloads.len()),
                );
                table.columns = infer_columns(&payloads);
            }
            schema.tables.push(table);
        }
    }
    catalog.schemas.push(schema);
    Ok(catalog)
}
