//! pino / pino-http JSON lines: level, time, message, `req`/`res`/`responseTime`, `err`, and
//! typed flow envelopes (`flow` + `outcome`).

use slowburn_model::{FlowEvent, Outcome};

use crate::entry::RequestPart;
use crate::raw::{AttrWriter, RawObject};
use crate::record::{LogRecord, level_from_name, level_from_pino_number};

/// Keys that become columns (and are therefore not repeated in `attributes`).
const MAPPED: &[&str] = &[
    "level",
    "time",
    "msg",
    "message",
    "responseTime",
    "flow",
    "outcome",
    "duration_ms",
];

/// True for a pino line as found nested in a Vercel message: numeric `level` 10–60 and a `time`.
pub fn is_pino(obj: &RawObject<'_>) -> bool {
    matches!(obj.get("level").map(|l| l.get().parse::<f64>()), Some(Ok(l)) if (10.0..=60.0).contains(&l))
        && obj.get("time").is_some()
}

/// pino `time`: epoch ms (or seconds when it looks too small), or an ISO-8601 string.
pub fn pino_time_ms(obj: &RawObject<'_>) -> Option<i64> {
    let raw = obj.get("time")?;
    if raw.get().starts_with('"') {
        let s = crate::raw::raw_str(raw)?;
        return chrono::DateTime::parse_from_rfc3339(&s)
            .ok()
            .map(|t| t.timestamp_millis());
    }
    let t = crate::raw::raw_num(raw)?;
    let ms = if t.abs() < 1e11 { t * 1000.0 } else { t };
    (ms.abs() < 1e15).then_some(ms as i64)
}

/// What a pino line adds beyond its log record.
#[derive(Debug, Default)]
pub struct PinoExtras {
    pub request: Option<RequestPart>,
    pub flow: Option<FlowEvent>,
}

/// Fills `rec` from a pino object. Fields already set on `rec` (from the Vercel entry around the
/// line) are overridden only by what the pino line says more precisely.
pub fn apply(obj: &RawObject<'_>, rec: &mut LogRecord, attrs: &mut AttrWriter) -> PinoExtras {
    if let Some(raw) = obj.get("level") {
        let level = match crate::raw::raw_num(raw) {
            Some(n) if !raw.get().starts_with('"') => Some(level_from_pino_number(n)),
            _ => crate::raw::raw_str(raw).and_then(|s| level_from_name(&s)),
        };
        if level.is_some() {
            rec.level = level;
        }
    }
    if let Some(t) = pino_time_ms(obj) {
        rec.event_time_ms = t;
    }
    if let Some(msg) = obj.str("msg").or_else(|| obj.str("message")) {
        rec.message = Some(msg.into_owned());
    }
    let req = obj.object("req");
    let res = obj.object("res");
    let err = obj.object("err");
    if let Some(req) = &req {
        if let Some(id) = req.str_or_num("id") {
            rec.request_id.get_or_insert_with(|| id.into_owned());
        }
        if let Some(m) = req.str("method") {
            rec.method = Some(m.into_owned());
        }
        if let Some(url) = req.str("url") {
            rec.path = Some(strip_origin(&url).to_owned());
        }
        if rec.client_ip.is_none() {
            rec.client_ip = req.str("remoteAddress").map(|s| s.into_owned());
        }
    } else if let Some(id) = obj.str_or_num("reqId") {
        rec.request_id.get_or_insert_with(|| id.into_owned());
    }
    let res_status = res
        .as_ref()
        .and_then(|r| r.num("statusCode"))
        .map(|s| s as i32);
    if res_status.is_some() {
        rec.status = res_status;
    }
    let response_time = obj.num("responseTime");
    if response_time.is_some() {
        rec.duration_ms = response_time;
    }
    match &err {
        Some(e) => {
            rec.err_type = e.str("type").map(|s| s.into_owned());
            rec.err_message = e.str("message").map(|s| s.into_owned());
        }
        // pino < 7 put `type` and `stack` of a logged Error at the top level.
        None if obj.get("stack").is_some() => {
            rec.err_type = obj.str("type").map(|s| s.into_owned());
            rec.err_message = rec.message.clone();
        }
        None => {}
    }
    if let Some(t) = obj.str("trace_id").or_else(|| obj.str("traceId")) {
        rec.trace_id = Some(t.into_owned());
    }
    for (k, v) in &obj.fields {
        if !MAPPED.contains(&k.as_ref()) {
            attrs.push_raw(k, v.get());
        }
    }

    let mut extras = PinoExtras::default();
    if let Some(status) = res_status {
        let pino_key = req.as_ref().and_then(|r| r.str_or_num("id")).map(|id| {
            // pino-http's default ids are per-process counters: qualify them by process.
            let host = obj.str("hostname").unwrap_or_default();
            let pid = obj.str_or_num("pid").unwrap_or_default();
            format!("pino:{host}:{pid}:{id}")
        });
        extras.request = Some(RequestPart {
            key: pino_key,
            time_ms: rec.event_time_ms,
            method: rec.method.clone(),
            path: rec.path.as_deref().map(|p| strip_query(p).to_owned()),
            status: Some(status),
            response_time_ms: response_time,
            report_duration_ms: None,
            request_id: rec.request_id.clone(),
            deployment_id: rec.deployment_id.clone(),
        });
    }
    if let (Some(flow), Some(outcome)) = (obj.str("flow"), obj.str("outcome")) {
        let outcome = match outcome.as_ref() {
            "success" | "ok" => Some(Outcome::Success),
            "failure" | "error" | "failed" => Some(Outcome::Failure),
            _ => None,
        };
        if let Some(outcome) = outcome {
            extras.flow = Some(FlowEvent {
                time_ms: rec.event_time_ms,
                flow: flow.into_owned(),
                outcome,
                duration_ms: obj.num("duration_ms"),
                request_id: rec.request_id.clone(),
                deployment_id: rec.deployment_id.clone(),
            });
        }
    }
    extras
}

/// `https://host/path?q` → `/path?q`; a plain path is returned as is.
fn strip_origin(url: &str) -> &str {
    match url.find("://") {
        Some(p) => url[p + 3..].find('/').map_or("/", |s| &url[p + 3 + s..]),
        None => url,
    }
}

pub fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}
