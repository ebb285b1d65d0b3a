//! Shared by the object-store drivers (S3, GCS, Azure Blob), behind the core's
//! `file-sample` feature so other drivers do not compile Parquet.
//!
//! File formats and what a bounded sample of each yields: CSV (header and
//! rows from the first bytes of a file), JSON lines (records from the first
//! bytes) and Parquet (the schema in the footer, nothing else).

use crate::{Column, ConnectorError, DataType, ErrorCode};
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use serde_json::Value;

pub mod file_sets;
pub mod types;

use self::types::{infer_json, infer_text, parquet_type, Inferred};

/// Parquet files end with a 4-byte metadata length and `PAR1`.
pub const PARQUET_TAIL: usize = 8;
/// The footer read first; most footers fit.
pub const PARQUET_FIRST_READ: u64 = 64 * 1024;
/// A larger footer than this is not read.
pub const PARQUET_MAX_FOOTER: u64 = 16 << 20;

/// A sampled file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (its footer's schema).
    Parquet,
}

impl Format {
    /// The format's name (`csv`, …).
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// By extension. Compressed files (`.csv.gz`) are not sampled: their
    /// first bytes are not text.
    pub fn from_key(key: &str) -> Option<Format> {
        let name = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
        let ext = name.rsplit_once('.').map(|(_, e)| e)?;
        Some(match ext {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "ndjson" | "json" => Format::Jsonl,
            "parquet" | "parq" | "pq" => Format::Parquet,
            _ => return None,
        })
    }

    /// By content, for keys without a known extension.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"PAR1") {
            return Some(Format::Parquet);
        }
        let text = std::str::from_utf8(&head[..head.len().min(4096)])
            .ok()
            .or_else(|| {
                // A cut in the middle of a UTF-8 sequence is still text.
                std::str::from_utf8(&head[..head.len().min(4090)]).ok()
            })?;
        let first = text.trim_start_matches('\u{feff}').lines().next()?.trim();
        if first.starts_with('{') {
            return Some(Format::Jsonl);
        }
        if first.contains('\t') {
            return Some(Format::Tsv);
        }
        if first.contains(',') || first.contains(';') {
            return Some(Format::Csv);
        }
        None
    }
}

/// Fields seen across sampled records, in order of first appearance.
#[derive(Debug, Default)]
pub struct Fields {
    names: Vec<String>,
    stats: Vec<FieldStats>,
    /// How many records were sampled.
    pub records: usize,
    json: bool,
}

#[derive(Debug)]
struct FieldStats {
    ty: Inferred,
    present: usize,
    nulls: usize,
}

impl Fields {
    /// No fields yet; `json` when the records are JSON.
    pub fn new(json: bool) -> Fields {
        Fields {
            json,
            ..Default::default()
        }
    }

    fn slot(&mut self, name: &str) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_owned());
                self.stats.push(FieldStats {
                    ty: Inferred::Nothing,
                    present: 0,
                    nulls: 0,
                });
                self.names.len() - 1
            }
        }
    }

    fn add(&mut self, name: &str, t: Inferred) {
        let i = self.slot(name);
        let s = &mut self.stats[i];
        s.present += 1;
        if t == Inferred::Nothing {
            s.nulls += 1;
        }
        s.ty = std::mem::replace(&mut s.ty, Inferred::Nothing).merge(t);
    }

    /// CSV columns in header order; JSON fields by name, since a JSON
    /// object's keys have no order to keep.
    pub fn columns(&self) -> Vec<Column> {
        let mut order: Vec<usize> = (0..self.names.len()).collect();
        if self.json {
            order.sort_by(|a, b| self.names[*a].cmp(&self.names[*b]));
        }
        order
            .into_iter()
            .map(|j| (&self.names[j], &self.stats[j]))
            .enumerate()
            .map(|(i, (name, s))| Column {
                name: name.as_str().into(),
                ordinal: i as u32 + 1,
                native_type: s.ty.native(self.json).into(),
                data_type: s.ty.data_type(),
                nullable: s.nulls > 0 || s.present < self.records,
                default: None,
                comment: None,
            })
            .collect()
    }
}

/// Splits CSV text into records (RFC 4180: quoted fields, `""` escapes, CRLF
/// or LF). When the text was cut short (`truncated`), the last record is
/// dropped: it may be incomplete.
pub fn csv_records(text: &str, delim: char, truncated: bool, max: usize) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    let mut dirty = false;
    while let Some(c) = chars.next() {
        if records.len() >= max {
            return records;
        }
        dirty = true;
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => quoted = true,
            c if c == delim => record.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                record.push(std::mem::take(&mut field));
                if !(record.len() == 1 && record[0].is_empty()) {
                    records.push(std::mem::take(&mut record));
                } else {
                    record.clear();
                }
                dirty = false;
            }
            c => field.push(c),
        }
    }
    if dirty && !truncated && records.len() < max {
        record.push(field);
        records.push(record);
    }
    records
}

/// Header names: blanks get `column_<n>`, repeats get `_<k>` suffixes.
fn header_names(raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, h) in raw.iter().enumerate() {
        let base = match h.trim() {
            "" => format!("column_{}", i + 1),
            t => t.to_owned(),
        };
        let mut name = base.clone();
        let mut k = 2;
        while out.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        out.push(name);
    }
    out
}

/// Adds a CSV sample: the header names the fields, up to `max_rows` rows type
/// them. Returns the rows read.
pub fn add_csv(
    fields: &mut Fields,
    bytes: &[u8],
    delim: char,
    truncated: bool,
    max_rows: usize,
) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let records = csv_records(&text, delim, truncated, max_rows.saturating_add(1));
    let Some((header, rows)) = records.split_first() else {
        return 0;
    };
    let names = header_names(header);
    for n in &names {
        fields.slot(n);
    }
    for row in rows {
        fields.records += 1;
        for (i, name) in names.iter().enumerate() {
            let t = row
                .get(i)
                .map(|c| infer_text(c))
                .unwrap_or(Inferred::Nothing);
            fields.add(name, t);
        }
    }
    rows.len()
}

/// Adds a JSON-lines sample: each complete line holding an object is a
/// record. Returns the records read.
pub fn add_jsonl(fields: &mut Fields, bytes: &[u8], truncated: bool, max_rows: usize) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if truncated {
        lines.pop();
    }
    let mut n = 0;
    for line in lines {
        if n >= max_rows {
            break;
        }
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        n += 1;
        fields.records += 1;
        for (k, v) in &obj {
            fields.add(k, infer_json(v));
        }
    }
    n
}

/// The metadata length a Parquet file's last 8 bytes announce.
pub fn parquet_footer_len(tail: &[u8]) -> Result<u64, ConnectorError> {
    let last: &[u8; PARQUET_TAIL] = tail
        .get(tail.len().saturating_sub(PARQUET_TAIL)..)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| not_parquet("the file is shorter than a Parquet footer"))?;
    let len = FooterTail::try_new(last).map_err(|e| not_parquet(&e.to_string()))?;
    Ok(len.metadata_length() as u64)
}

/// Decodes the metadata from the file's tail (which must hold all of it).
pub fn parquet_metadata(tail: &[u8]) -> Result<ParquetMetaData, ConnectorError> {
    let len = parquet_footer_len(tail)? as usize;
    let end = tail.len() - PARQUET_TAIL;
    let start = end
        .checked_sub(len)
        .ok_or_else(|| not_parquet("the footer is longer than what was read"))?;
    ParquetMetaDataReader::decode_metadata(&tail[start..end])
        .map_err(|e| not_parquet(&e.to_string()))
}

fn not_parquet(detail: &str) -> ConnectorError {
    ConnectorError::new(
        ErrorCode::ProtocolError,
        format!("not a readable Parquet footer: {detail}"),
    )
    .with_retryable(false)
}

/// Columns of a Parquet schema's top-level fields.
pub fn parquet_columns(meta: &ParquetMetaData) -> Vec<Column> {
    let root = meta.file_metadata().schema_descr().root_schema();
    root.get_fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (native, data_type) = parquet_type(f);
            let info = f.get_basic_info();
            let nullable =
                !info.has_repetition() || info.repetition() != parquet::basic::Repetition::REQUIRED;
            Column {
                name: f.name().into(),
                ordinal: i as u32 + 1,
                native_type: native.into(),
                data_type,
                nullable,
                default: None,
                comment: None,
            }
        })
        .collect()
}

/// Adds columns of another file's schema that the first lacked.
pub fn merge_columns(into: &mut Vec<Column>, more: Vec<Column>) {
    for mut c in more {
        match into.iter_mut().find(|x| x.name == c.name) {
            Some(x) => {
                if x.data_type != c.data_type {
                    x.native_type = format!("{} | {}", x.native_type, c.native_type).into();
                    x.data_type = DataType::Unknown;
                }
                x.nullable |= c.nullable;
            }
            None => {
                c.ordinal = into.len() as u32 + 1;
                // Absent from earlier files, so null there.
                c.nullable = true;
                into.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parsing() {
        let text = "a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"multi\nline\",\n\n3,z";
        let r = csv_records(text, ',', false, 100);
        assert_eq!(
            r,
            vec![
                vec!["a", "b", "c"],
                vec!["1", "x, y", "say \"hi\""],
                vec!["2", "multi\nline", ""],
                vec!["3", "z"],
            ]
        );
        // Cut short: the last, possibly partial, record is dropped.
        assert_eq!(csv_records(text, ',', true, 100).len(), 3);
        assert_eq!(csv_records(text, ',', false, 2).len(), 2);
        assert_eq!(
            csv_records("\u{feff}x\ty\n1\t2\n", '\t', false, 10)[0],
            vec!["x", "y"]
        );
    }

    #[test]
    fn csv_columns() {
        let mut f = Fields::new(false);
        let csv = b"id,name,amount,when,ok,,id\n1,Ada,1.5,2024-01-01,true,x,9\n2,,3,2024-01-02,false,y,8\n";
        assert_eq!(add_csv(&mut f, csv, ',', false, 100), 2);
        let cols: Vec<(String, String, bool)> = f
            .columns()
            .iter()
            .map(|c| (c.name.to_string(), c.data_type.to_string(), c.nullable))
            .collect();
        assert_eq!(
            cols,
            vec![
                ("id".into(), "int64".into(), false),
                ("name".into(), "string".into(), true),
                ("amount".into(), "float64".into(), false),
                ("when".into(), "date".into(), false),
                ("ok".into(), "boolean".into(), false),
                ("column_6".into(), "string".into(), false),
                ("id_2".into(), "int64".into(), false),
            ]
        );
        // Row limits hold.
        let mut g = Fields::new(false);
        assert_eq!(add_csv(&mut g, csv, ',', false, 1), 1);
        assert_eq!(g.records, 1);
    }

    #[test]
    fn jsonl_columns() {
        let mut f = Fields::new(true);
        let text = b"{\"a\":1,\"b\":\"x\"}\n{\"a\":2.5,\"c\":[1]}\nnot json\n{\"a\":3,\"b\":null}\n{\"a\":";
        assert_eq!(add_jsonl(&mut f, text, true, 100), 3);
        let cols: Vec<(String, String, String, bool)> = f
            .columns()
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.native_type.to_string(),
                    c.data_type.to_string(),
                    c.nullable,
                )
            })
            .collect();
        assert_eq!(
            cols,
            vec![
                ("a".into(), "number".into(), "float64".into(), false),
                ("b".into(), "string".into(), "string".into(), true),
                (
                    "c".into(),
                    "array<integer>".into(),
                    "array<int64>".into(),
                    true
                ),
            ]
        );
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_key("a/b/part-0.CSV"), Some(Format::Csv));
        assert_eq!(Format::from_key("x.ndjson"), Some(Format::Jsonl));
        assert_eq!(Format::from_key("x.parquet"), Some(Format::Parquet));
        assert_eq!(Format::from_key("x.csv.gz"), None);
        assert_eq!(Format::from_key("noext"), None);
        assert_eq!(Format::sniff(b"PAR1\x15\x04"), Some(Format::Parquet));
        assert_eq!(Format::sniff(b"{\"a\":1}\n"), Some(Format::Jsonl));
        assert_eq!(Format::sniff(b"a,b\n1,2\n"), Some(Format::Csv));
        assert_eq!(Format::sniff(b"a\tb\n"), Some(Format::Tsv));
        assert_eq!(Format::sniff(b"\x00\x01\x02"), None);
    }

    #[test]
    fn bad_parquet_footers() {
        assert_eq!(
            parquet_footer_len(b"abc").unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        assert_eq!(
            parquet_footer_len(b"0123456789XXXX").unwrap_err().code(),
            ErrorCode::ProtocolError
        );
        let mut tail = vec![0u8; 4];
        tail.extend_from_slice(&100u32.to_le_bytes());
        tail.extend_from_slice(b"PAR1");
        assert_eq!(parquet_footer_len(&tail).unwrap(), 100);
        assert_eq!(
            parquet_metadata(&tail).unwrap_err().code(),
            ErrorCode::ProtocolError
        );
    }
}
