//! The log record (one per log line) and its Arrow schema. Documented in `docs/schema.md`.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Vercel,
    Pino,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Vercel => "vercel",
            Origin::Pino => "pino",
        }
    }
}

/// One log line, decoded. Every field but the first three may be absent.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub log_id: String,
    pub event_time_ms: i64,
    pub received_time_ms: i64,
    pub origin: Origin,
    pub service: Option<String>,
    pub source: Option<String>,
    pub vercel_type: Option<String>,
    pub level: Option<&'static str>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub deployment_id: Option<String>,
    pub project_id: Option<String>,
    pub host: Option<String>,
    pub environment: Option<String>,
    pub region: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub route: Option<String>,
    pub status: Option<i32>,
    pub duration_ms: Option<f64>,
    pub client_ip: Option<String>,
    pub err_type: Option<String>,
    pub err_message: Option<String>,
    /// Every field not mapped to a column, as a JSON object text.
    pub attributes: Option<String>,
}

impl LogRecord {
    pub fn new(log_id: String, event_time_ms: i64, received_time_ms: i64, origin: Origin) -> Self {
        LogRecord {
            log_id,
            event_time_ms,
            received_time_ms,
            origin,
            service: None,
            source: None,
            vercel_type: None,
            level: None,
            message: None,
            request_id: None,
            trace_id: None,
            deployment_id: None,
            project_id: None,
            host: None,
            environment: None,
            region: None,
            method: None,
            path: None,
            route: None,
            status: None,
            duration_ms: None,
            client_ip: None,
            err_type: None,
            err_message: None,
            attributes: None,
        }
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow schema of the `logs` table.
pub fn log_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let s = |name: &str| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new("log_id", DataType::Utf8, false),
            Field::new("event_time", ts(), false),
            Field::new("received_time", ts(), false),
            Field::new("origin", DataType::Utf8, false),
            s("service"),
            s("source"),
            s("type"),
            s("level"),
            s("message"),
            s("request_id"),
            s("trace_id"),
            s("deployment_id"),
            s("project_id"),
            s("host"),
            s("environment"),
            s("region"),
            s("method"),
            s("path"),
            s("route"),
            Field::new("status", DataType::Int32, true),
            Field::new("duration_ms", DataType::Float64, true),
            s("client_ip"),
            s("err_type"),
            s("err_message"),
            s("attributes"),
        ]))
    });
    SCHEMA.clone()
}

/// Turns log records into one Arrow `RecordBatch` with [`log_schema`].
pub fn logs_to_batch(records: &[LogRecord]) -> Result<RecordBatch, ArrowError> {
    let n = records.len();
    let strs = |f: &dyn Fn(&LogRecord) -> Option<&str>| -> ArrayRef {
        let bytes: usize = records.iter().map(|r| f(r).map_or(0, str::len)).sum();
        let mut b = StringBuilder::with_capacity(n, bytes);
        for r in records {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&LogRecord) -> i64| -> ArrayRef {
        let mut b = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
        for r in records {
            b.append_value(f(r));
        }
        Arc::new(b.finish())
    };
    let mut status = Int32Builder::with_capacity(n);
    let mut duration = Float64Builder::with_capacity(n);
    for r in records {
        status.append_option(r.status);
        duration.append_option(r.duration_ms);
    }
    let columns: Vec<ArrayRef> = vec![
        strs(&|r| Some(&r.log_id)),
        times(&|r| r.event_time_ms),
        times(&|r| r.received_time_ms),
        strs(&|r| Some(r.origin.as_str())),
        strs(&|r| r.service.as_deref()),
        strs(&|r| r.source.as_deref()),
        strs(&|r| r.vercel_type.as_deref()),
        strs(&|r| r.level),
        strs(&|r| r.message.as_deref()),
        strs(&|r| r.request_id.as_deref()),
        strs(&|r| r.trace_id.as_deref()),
        strs(&|r| r.deployment_id.as_deref()),
        strs(&|r| r.project_id.as_deref()),
        strs(&|r| r.host.as_deref()),
        strs(&|r| r.environment.as_deref()),
        strs(&|r| r.region.as_deref()),
        strs(&|r| r.method.as_deref()),
        strs(&|r| r.path.as_deref()),
        strs(&|r| r.route.as_deref()),
        Arc::new(status.finish()),
        Arc::new(duration.finish()),
        strs(&|r| r.client_ip.as_deref()),
        strs(&|r| r.err_type.as_deref()),
        strs(&|r| r.err_message.as_deref()),
        strs(&|r| r.attributes.as_deref()),
    ];
    RecordBatch::try_new(log_schema(), columns)
}

/// Normalized level names: `trace`, `debug`, `info`, `warn`, `error`, `fatal`.
pub fn level_from_pino_number(n: f64) -> &'static str {
    match n {
        n if n <= 10.0 => "trace",
        n if n <= 20.0 => "debug",
        n if n <= 30.0 => "info",
        n if n <= 40.0 => "warn",
        n if n <= 50.0 => "error",
        _ => "fatal",
    }
}

pub fn level_from_name(s: &str) -> Option<&'static str> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "log" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" => "error",
        "fatal" | "critical" | "panic" => "fatal",
        _ => return None,
    })
}
