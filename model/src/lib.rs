//! Domain records shared by the crates of slowburn.
//!
//! These types carry no wire format: `ingest` builds them from Vercel and pino payloads, the
//! engine consumes them, and the archive stores them. Times are Unix epoch milliseconds (UTC).

use serde::{Deserialize, Serialize};

/// One HTTP request, counted once however many log lines describe it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Event time of the line that completed the request (ms since the Unix epoch, UTC).
    pub time_ms: i64,
    pub request_id: Option<String>,
    pub method: Option<String>,
    /// Request path without the query string.
    pub path: Option<String>,
    /// HTTP status; `-1` and `0` mean the function crashed or never answered.
    pub status: i32,
    pub latency_ms: Option<f64>,
    pub deployment_id: Option<String>,
}

impl RequestRecord {
    /// True when the request is a server failure: status ≥ 500, or ≤ 0 (no response).
    pub fn is_server_error(&self) -> bool {
        self.status >= 500 || self.status <= 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// A business-flow outcome reported by the application itself (a pino "flow envelope").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowEvent {
    pub time_ms: i64,
    pub flow: String,
    pub outcome: Outcome,
    pub duration_ms: Option<f64>,
    pub request_id: Option<String>,
    pub deployment_id: Option<String>,
}
