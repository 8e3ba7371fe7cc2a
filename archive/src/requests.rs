//! The `requests` table: one row per HTTP request record and per flow event, with the catalog
//! flow it was counted in at ingest. Documented in `docs/schema.md`.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, Float64Array, Float64Builder, Int32Array, Int32Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use slowburn_model::{FlowEvent, Outcome, RequestRecord};

/// `kind` of a row made from an HTTP request record.
pub const KIND_HTTP: &str = "http";
/// `kind` of a row made from a flow envelope (pino `flow` + `outcome`).
pub const KIND_ENVELOPE: &str = "envelope";

/// Column positions, fixed by [`requests_schema`].
pub mod col {
    pub const TIME: usize = 0;
    pub const REQUEST_ID: usize = 1;
    pub const METHOD: usize = 2;
    pub const PATH: usize = 3;
    pub const STATUS: usize = 4;
    pub const LATENCY_MS: usize = 5;
    pub const DEPLOYMENT_ID: usize = 6;
    pub const FLOW: usize = 7;
    pub const KIND: usize = 8;
    pub const OUTCOME: usize = 9;
    pub const ENVELOPE: usize = 10;
}

pub fn requests_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let s = |name: &str| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            s("request_id"),
            s("method"),
            s("path"),
            Field::new("status", DataType::Int32, true),
            Field::new("latency_ms", DataType::Float64, true),
            s("deployment_id"),
            s("flow"),
            Field::new("kind", DataType::Utf8, false),
            Field::new("outcome", DataType::Utf8, false),
            s("envelope"),
        ]))
    });
    SCHEMA.clone()
}

/// Builds one `requests` batch. `request_flows[i]` / `event_flows[i]` name the catalog flow that
/// counted `requests[i]` / `events[i]` (`None`: matched no flow).
pub fn requests_batch(
    requests: &[RequestRecord],
    request_flows: &[Option<&str>],
    events: &[FlowEvent],
    event_flows: &[Option<&str>],
) -> Result<RecordBatch, ArrowError> {
    assert_eq!(
        requests.len(),
        request_flows.len(),
        "one flow per request record"
    );
    assert_eq!(events.len(), event_flows.len(), "one flow per flow event");
    let n = requests.len() + events.len();
    let mut time = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut request_id = StringBuilder::with_capacity(n, n * 36);
    let mut method = StringBuilder::with_capacity(n, n * 4);
    let mut path = StringBuilder::with_capacity(n, n * 24);
    let mut status = Int32Builder::with_capacity(n);
    let mut latency = Float64Builder::with_capacity(n);
    let mut deployment = StringBuilder::with_capacity(n, n * 28);
    let mut flow = StringBuilder::with_capacity(n, n * 16);
    let mut kind = StringBuilder::with_capacity(n, n * 4);
    let mut outcome = StringBuilder::with_capacity(n, n * 7);
    let mut envelope = StringBuilder::with_capacity(n, 0);
    for (r, f) in requests.iter().zip(request_flows) {
        time.append_value(r.time_ms);
        request_id.append_option(r.request_id.as_deref());
        method.append_option(r.method.as_deref());
        path.append_option(r.path.as_deref());
        status.append_value(r.status);
        latency.append_option(r.latency_ms);
        deployment.append_option(r.deployment_id.as_deref());
        flow.append_option(*f);
        kind.append_value(KIND_HTTP);
        outcome.append_value(if r.is_server_error() {
            "failure"
        } else {
            "success"
        });
        envelope.append_null();
    }
    for (e, f) in events.iter().zip(event_flows) {
        time.append_value(e.time_ms);
        request_id.append_option(e.request_id.as_deref());
        method.append_null();
        path.append_null();
        status.append_null();
        latency.append_option(e.duration_ms);
        deployment.append_option(e.deployment_id.as_deref());
        flow.append_option(*f);
        kind.append_value(KIND_ENVELOPE);
        outcome.append_value(match e.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        });
        envelope.append_value(&e.flow);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(request_id.finish()),
        Arc::new(method.finish()),
        Arc::new(path.finish()),
        Arc::new(status.finish()),
        Arc::new(latency.finish()),
        Arc::new(deployment.finish()),
        Arc::new(flow.finish()),
        Arc::new(kind.finish()),
        Arc::new(outcome.finish()),
        Arc::new(envelope.finish()),
    ];
    RecordBatch::try_new(requests_schema(), columns)
}

/// One row of a `requests` batch, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestRow<'a> {
    pub time_ms: i64,
    pub request_id: Option<&'a str>,
    pub status: Option<i32>,
    pub latency_ms: Option<f64>,
    pub deployment_id: Option<&'a str>,
    pub flow: Option<&'a str>,
    pub envelope: bool,
    pub success: bool,
}

/// Typed access to the columns of a `requests` batch (full, or projected to
/// [`RequestView::PROJECTION`]).
pub struct RequestView<'a> {
    time: &'a TimestampMillisecondArray,
    /// Absent when the batch was read without it (see [`RequestView::PROJECTION`]).
    request_id: Option<&'a StringArray>,
    status: &'a Int32Array,
    latency: &'a Float64Array,
    deployment: &'a StringArray,
    flow: &'a StringArray,
    kind: &'a StringArray,
    outcome: &'a StringArray,
}

impl<'a> RequestView<'a> {
    /// The columns a view needs, for a projected read (add [`col::REQUEST_ID`] to see ids).
    pub const PROJECTION: [usize; 7] = [
        col::TIME,
        col::STATUS,
        col::LATENCY_MS,
        col::DEPLOYMENT_ID,
        col::FLOW,
        col::KIND,
        col::OUTCOME,
    ];

    /// A view of a batch with the full schema or the [`Self::PROJECTION`] columns (by name),
    /// with or without `request_id`.
    pub fn new(batch: &'a RecordBatch) -> Result<Self, ArrowError> {
        fn get<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> Result<&'b T, ArrowError> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!(
                        "requests batch has no column `{name}` of the expected type"
                    ))
                })
        }
        Ok(RequestView {
            time: get(batch, "time")?,
            request_id: batch
                .column_by_name("request_id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>()),
            status: get(batch, "status")?,
            latency: get(batch, "latency_ms")?,
            deployment: get(batch, "deployment_id")?,
            flow: get(batch, "flow")?,
            kind: get(batch, "kind")?,
            outcome: get(batch, "outcome")?,
        })
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    pub fn row(&self, i: usize) -> RequestRow<'a> {
        let s = |a: &'a StringArray| a.is_valid(i).then(|| a.value(i));
        RequestRow {
            time_ms: self.time.value(i),
            request_id: self.request_id.and_then(&s),
            status: self.status.is_valid(i).then(|| self.status.value(i)),
            latency_ms: self.latency.is_valid(i).then(|| self.latency.value(i)),
            deployment_id: s(self.deployment),
            flow: s(self.flow),
            envelope: self.kind.value(i) == KIND_ENVELOPE,
            success: self.outcome.value(i) == "success",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let r = RequestRecord {
            time_ms: 5,
            request_id: Some("r1".into()),
            method: Some("POST".into()),
            path: Some("/api/subscribe/checkout".into()),
            status: 502,
            latency_ms: Some(12.5),
            deployment_id: Some("dpl_1".into()),
        };
        let e = FlowEvent {
            time_ms: 7,
            flow: "publish".into(),
            outcome: Outcome::Success,
            duration_ms: None,
            request_id: None,
            deployment_id: None,
        };
        let b = requests_batch(&[r], &[Some("subscribe_checkout")], &[e], &[None]).unwrap();
        let v = RequestView::new(&b).unwrap();
        assert_eq!(v.len(), 2);
        let row = v.row(0);
        assert_eq!(
            (row.time_ms, row.status, row.flow, row.success, row.envelope),
            (5, Some(502), Some("subscribe_checkout"), false, false)
        );
        let row = v.row(1);
        assert_eq!(
            (row.time_ms, row.status, row.flow, row.success, row.envelope),
            (7, None, None, true, true)
        );
    }
}
