//! Decoded entries: what one delivered log object (a Vercel entry or a pino line) yields.

use slowburn_model::{FlowEvent, RequestRecord};

use crate::record::LogRecord;

/// One delivered entry, decoded but not yet deduplicated.
#[derive(Debug)]
pub struct Entry {
    /// Redelivery key: Vercel's `id`, or a hash of a pino line.
    pub dedupe_key: String,
    pub logs: Vec<LogRecord>,
    pub requests: Vec<RequestPart>,
    pub flows: Vec<FlowEvent>,
}

/// Part of what is known of one HTTP request, from one line. Parts with the same `key` are one
/// request; a request exists only once some part carries a status.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestPart {
    /// Vercel `requestId`, else a process-qualified pino `req.id`; `None` = a request of its own.
    pub key: Option<String>,
    pub time_ms: i64,
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<i32>,
    /// pino-http `responseTime`, preferred over the REPORT duration.
    pub response_time_ms: Option<f64>,
    pub report_duration_ms: Option<f64>,
    pub request_id: Option<String>,
    pub deployment_id: Option<String>,
}

/// A per-entry decoding error, reported back to the sender by index.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EntryError {
    pub index: usize,
    pub error: String,
}

/// Everything decoded from one request body.
#[derive(Debug, Default)]
pub struct Decoded {
    pub entries: Vec<Entry>,
    pub errors: Vec<EntryError>,
}

/// How bad a status is, for choosing among the parts of one request: failures are never hidden.
fn severity(status: i32) -> u8 {
    match status {
        s if s <= 0 || s >= 500 => 3,
        s if s >= 400 => 2,
        _ => 1,
    }
}

/// Merges the parts of one request (same key, in delivery order) into a request record.
pub fn merge_parts(parts: &[&RequestPart]) -> Option<RequestRecord> {
    let chosen = parts.iter().filter(|p| p.status.is_some()).fold(
        None::<&RequestPart>,
        |best, p| match best {
            Some(b) if severity(b.status.unwrap_or(0)) >= severity(p.status.unwrap_or(0)) => {
                Some(b)
            }
            _ => Some(p),
        },
    )?;
    let first = |f: &dyn Fn(&RequestPart) -> Option<String>| {
        f(chosen).or_else(|| parts.iter().find_map(|p| f(p)))
    };
    let latency = parts
        .iter()
        .find_map(|p| p.response_time_ms)
        .or_else(|| parts.iter().find_map(|p| p.report_duration_ms));
    Some(RequestRecord {
        time_ms: chosen.time_ms,
        request_id: first(&|p| p.request_id.clone()),
        method: first(&|p| p.method.clone()),
        path: first(&|p| p.path.clone()),
        status: chosen.status.unwrap_or(0),
        latency_ms: latency,
        deployment_id: first(&|p| p.deployment_id.clone()),
    })
}
