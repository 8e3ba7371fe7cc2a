//! Ingest: the only crate that knows wire formats.
//!
//! Vercel log-drain deliveries and pino NDJSON come in as bytes; out come [`LogRecord`]s (built
//! into Arrow batches by [`logs_to_batch`]), one [`RequestRecord`] per HTTP request, and
//! [`FlowEvent`]s. Decoding is split from deduplication so that a caller can hold its
//! [`Deduper`] lock only for [`assemble`], never while parsing.

mod body;
mod dedupe;
mod entry;
mod message;
mod pino;
mod raw;
mod record;
mod signature;
mod vercel;

pub use body::{decompress, frame, is_empty_ping};
pub use dedupe::{Admission, Deduper};
pub use entry::{Decoded, Entry, EntryError, RequestPart, merge_parts};
pub use record::{LogRecord, Origin, log_schema, logs_to_batch};
pub use signature::{sign as sign_vercel, verify_vercel_signature};
pub use slowburn_model::{FlowEvent, Outcome, RequestRecord};

use std::collections::HashMap;

use raw::{AttrWriter, RawObject};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("decompressed body exceeds the limit of {limit_bytes} bytes")]
    DecompressedTooLarge { limit_bytes: usize },
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("unsupported Content-Encoding `{0}`: send gzip or an uncompressed body")]
    UnsupportedEncoding(String),
    #[error("body is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
}

/// At most this many per-entry errors are listed in a response.
pub const MAX_LISTED_ERRORS: usize = 20;

/// What a decode makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    /// Log records, request parts and flow events (the server).
    Everything,
    /// Request parts and flow events only (`slowburn replay`, which keeps no logs).
    RequestsOnly,
}

/// Decodes a Vercel drain body (already decompressed) into entries and per-entry errors.
pub fn decode_vercel(body: &[u8], received_ms: i64) -> Result<Decoded, IngestError> {
    decode_vercel_making(body, received_ms, Make::Everything)
}

/// [`decode_vercel`], making only what `make` says.
pub fn decode_vercel_making(
    body: &[u8],
    received_ms: i64,
    make: Make,
) -> Result<Decoded, IngestError> {
    let keep_logs = make == Make::Everything;
    let mut out = Decoded::default();
    for (index, framed) in frame(body)? {
        let result = framed.and_then(|text| {
            let obj = RawObject::parse(text).map_err(|e| describe_json_error(text, &e))?;
            vercel::decode_entry(&obj, received_ms, keep_logs)
        });
        match result {
            Ok(entry) => out.entries.push(entry),
            Err(error) => out.errors.push(EntryError { index, error }),
        }
    }
    Ok(out)
}

/// Decodes pino NDJSON posted directly: one log record per line. `service` names the sender.
pub fn decode_pino(
    body: &[u8],
    service: Option<&str>,
    received_ms: i64,
) -> Result<Decoded, IngestError> {
    let mut out = Decoded::default();
    for (index, framed) in frame(body)? {
        let result = framed.and_then(|text| {
            let obj = RawObject::parse(text).map_err(|e| describe_json_error(text, &e))?;
            Ok(decode_pino_line(text, &obj, service, received_ms))
        });
        match result {
            Ok(entry) => out.entries.push(entry),
            Err(error) => out.errors.push(EntryError { index, error }),
        }
    }
    Ok(out)
}

fn decode_pino_line(
    text: &str,
    obj: &RawObject<'_>,
    service: Option<&str>,
    received_ms: i64,
) -> Entry {
    // A stable id: the same line redelivered hashes the same.
    let id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()));
    let mut rec = LogRecord::new(id.clone(), received_ms, received_ms, Origin::Pino);
    rec.service = service
        .map(str::to_owned)
        .or_else(|| obj.str("name").map(|s| s.into_owned()));
    rec.host = obj.str("hostname").map(|s| s.into_owned());
    let mut attrs = AttrWriter::default();
    let extras = pino::apply(obj, &mut rec, &mut attrs);
    rec.attributes = attrs.finish();
    Entry {
        dedupe_key: id,
        logs: vec![rec],
        requests: extras.request.into_iter().collect(),
        flows: extras.flow.into_iter().collect(),
    }
}

fn describe_json_error(text: &str, e: &serde_json::Error) -> String {
    if e.is_eof() {
        format!("truncated JSON at line {} column {}", e.line(), e.column())
    } else if !text.trim_start().starts_with('{') {
        "entry is not a JSON object".to_owned()
    } else {
        format!("invalid JSON: {e}")
    }
}

/// The result of admitting decoded entries.
#[derive(Debug, Default)]
pub struct Assembled {
    pub logs: Vec<LogRecord>,
    pub requests: Vec<RequestRecord>,
    pub flows: Vec<FlowEvent>,
    pub accepted: usize,
    pub duplicates: usize,
    /// Entries whose earlier copy is still being stored: the whole body must be retried.
    pub pending: usize,
    /// Dedupe keys admitted by this batch (entries and requests), to [`Deduper::forget`] them if
    /// the batch is then not stored.
    pub admitted_keys: Vec<String>,
}

/// Drops redelivered entries, then turns the parts of each request into one request record.
/// A request whose key was already counted (in an earlier delivery) is not counted again.
/// Admitted keys are pending: the caller commits them once the batch is stored, or forgets them.
pub fn assemble(entries: Vec<Entry>, dedupe: &mut Deduper, now_ms: i64) -> Assembled {
    let mut out = Assembled::default();
    let mut keyed: HashMap<String, Vec<RequestPart>> = HashMap::new();
    let mut key_order: Vec<String> = Vec::new();
    for entry in entries {
        match dedupe.admit(&entry.dedupe_key, now_ms) {
            Admission::New => {}
            Admission::Duplicate => {
                out.duplicates += 1;
                continue;
            }
            Admission::Pending => {
                out.pending += 1;
                continue;
            }
        }
        out.accepted += 1;
        out.admitted_keys.push(entry.dedupe_key);
        out.logs.extend(entry.logs);
        out.flows.extend(entry.flows);
        for part in entry.requests {
            match &part.key {
                Some(k) => {
                    if !keyed.contains_key(k) {
                        key_order.push(k.clone());
                    }
                    keyed.entry(k.clone()).or_default().push(part);
                }
                None => out.requests.extend(merge_parts(&[&part])),
            }
        }
    }
    for key in key_order {
        let parts = &keyed[&key];
        let refs: Vec<&RequestPart> = parts.iter().collect();
        if let Some(request) = merge_parts(&refs) {
            let request_key = format!("request:{key}");
            match dedupe.admit(&request_key, now_ms) {
                Admission::New => {
                    out.admitted_keys.push(request_key);
                    out.requests.push(request);
                }
                Admission::Duplicate => {}
                Admission::Pending => out.pending += 1,
            }
        }
    }
    out
}
