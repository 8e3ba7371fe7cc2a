//! Vercel log-drain entries (`log` schema v1), leniently: only `id`, `timestamp`, `source` and
//! `projectId` are required; `null` and `""` are accepted anywhere else; unknown fields are kept.

use crate::entry::{Entry, RequestPart};
use crate::message::{Piece, split_message};
use crate::pino;
use crate::raw::{AttrWriter, RawObject, is_present, raw_num};
use crate::record::{LogRecord, Origin, level_from_name};

/// Keys mapped to columns. `proxy` is mapped but also kept whole in `attributes`.
const MAPPED: &[&str] = &[
    "id",
    "timestamp",
    "source",
    "projectId",
    "projectName",
    "deploymentId",
    "host",
    "level",
    "message",
    "type",
    "requestId",
    "statusCode",
    "environment",
    "executionRegion",
    "path",
    "traceId",
    "trace.id",
];

/// Decodes one entry. `Err` names the field that is missing or wrong. With `keep_logs` false only
/// the request parts and flow events are made (`slowburn replay`, which needs nothing else).
pub fn decode_entry(
    obj: &RawObject<'_>,
    received_ms: i64,
    keep_logs: bool,
) -> Result<Entry, String> {
    let id = obj
        .str_or_num("id")
        .ok_or_else(|| missing_or_wrong(obj, "id", "a string"))?;
    let timestamp = obj
        .get("timestamp")
        .and_then(raw_num)
        .filter(|t| t.abs() < 1e15)
        .ok_or_else(|| missing_or_wrong(obj, "timestamp", "epoch milliseconds"))?
        as i64;
    let source = obj
        .str("source")
        .ok_or_else(|| missing_or_wrong(obj, "source", "a string"))?;
    let project_id = obj
        .str("projectId")
        .ok_or_else(|| missing_or_wrong(obj, "projectId", "a string"))?;

    let mut attrs = AttrWriter::new(keep_logs);
    if keep_logs {
        for (k, v) in &obj.fields {
            // Wrong-typed optional fields are kept in attributes rather than dropped.
            if !MAPPED.contains(&k.as_ref()) || (is_present(v) && !typed_ok(k, v.get())) {
                attrs.push_raw(k, v.get());
            }
        }
    }

    let proxy = obj.object("proxy");
    let mut base = LogRecord::new(id.to_string(), timestamp, received_ms, Origin::Vercel);
    base.request_id = obj.str("requestId").map(|s| s.into_owned());
    base.deployment_id = obj.str("deploymentId").map(|s| s.into_owned());
    if keep_logs {
        describe(obj, &mut base, &source, project_id, proxy.as_ref());
    }
    let entry_status = obj
        .num("statusCode")
        .or_else(|| proxy.as_ref().and_then(|p| p.num("statusCode")));
    base.status = entry_status.map(|s| s as i32);
    if let Some(p) = &proxy {
        base.method = p.str("method").map(|s| s.into_owned());
        base.path = p.str("path").map(|s| s.into_owned());
        if keep_logs {
            base.client_ip = p.str("clientIp").map(|s| s.into_owned());
        }
    }
    let base_attrs = attrs.finish();

    let message = obj.str("message");
    let pieces = message.as_deref().map(split_message).unwrap_or_default();
    let mut summary_text: Vec<&str> = Vec::new();
    let mut summary: Option<(&str, &str, Option<i32>)> = None;
    let mut report_ms = None;
    let mut user_lines = Vec::new();
    for piece in &pieces {
        match piece {
            Piece::User(line) => user_lines.push(*line),
            Piece::Summary {
                method,
                path,
                status,
                text,
            } => {
                summary.get_or_insert((method, path, *status));
                summary_text.push(text);
            }
            Piece::Report { duration_ms, text } => {
                report_ms = report_ms.or(*duration_ms);
                summary_text.push(text);
            }
            Piece::Framing => {}
        }
    }

    let mut entry = Entry {
        dedupe_key: base.log_id.clone(),
        logs: Vec::new(),
        requests: Vec::new(),
        flows: Vec::new(),
    };
    // The entry's own record: the summary (or the whole message when it holds no user lines).
    let mut head = base.clone();
    head.attributes = base_attrs.clone();
    if let Some((method, path, status)) = summary {
        head.method.get_or_insert_with(|| method.to_owned());
        head.path.get_or_insert_with(|| path.to_owned());
        if head.status.is_none() {
            head.status = status;
        }
    }
    head.duration_ms = report_ms;
    let emit_head = keep_logs && (user_lines.is_empty() || !summary_text.is_empty());
    if emit_head {
        head.message = if user_lines.is_empty() {
            message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        } else {
            Some(summary_text.join("\n"))
        };
    }

    let status = head.status;
    let has_request_info = status.is_some() || report_ms.is_some();
    if has_request_info {
        entry.requests.push(RequestPart {
            key: base.request_id.clone(),
            time_ms: timestamp,
            method: head.method.clone(),
            path: head
                .path
                .as_deref()
                .map(|p| pino::strip_query(p).to_owned()),
            status,
            response_time_ms: None,
            report_duration_ms: report_ms,
            request_id: base.request_id.clone(),
            deployment_id: base.deployment_id.clone(),
        });
    }
    if emit_head {
        entry.logs.push(head);
    }

    for line in user_lines {
        if !keep_logs && !line.starts_with('{') {
            continue; // plain text: a log line only
        }
        let mut rec = base.clone();
        rec.log_id = if entry.logs.is_empty() {
            base.log_id.clone()
        } else {
            format!("{}:{}", base.log_id, entry.logs.len())
        };
        let mut line_attrs = AttrWriter::new(keep_logs);
        let parsed = line
            .starts_with('{')
            .then(|| RawObject::parse(line).ok())
            .flatten();
        match parsed {
            Some(obj) if pino::is_pino(&obj) => {
                let extras = pino::apply(&obj, &mut rec, &mut line_attrs);
                if let Some(mut part) = extras.request {
                    // Inside a Vercel entry, the Vercel request id names the request.
                    if base.request_id.is_some() {
                        part.key = base.request_id.clone();
                    }
                    part.deployment_id = base.deployment_id.clone();
                    if part.method.is_none() {
                        part.method = base.method.clone();
                    }
                    entry.requests.push(part);
                }
                entry.flows.extend(extras.flow);
            }
            _ if !keep_logs => continue,
            // JSON that is not pino (e.g. `console.log(JSON.stringify(…))`): fields go to attributes.
            Some(obj) => {
                rec.message = Some(line.to_owned());
                for (k, v) in &obj.fields {
                    line_attrs.push_raw(k, v.get());
                }
            }
            None => rec.message = Some(line.to_owned()),
        }
        if keep_logs {
            rec.attributes = merge_attrs(base_attrs.as_deref(), line_attrs.finish());
            entry.logs.push(rec);
        }
    }
    Ok(entry)
}

/// The descriptive fields of a log record, which requests do not need.
fn describe(
    obj: &RawObject<'_>,
    base: &mut LogRecord,
    source: &str,
    project_id: std::borrow::Cow<'_, str>,
    proxy: Option<&RawObject<'_>>,
) {
    base.service = obj.str("projectName").map(|s| s.into_owned());
    base.source = Some(source.to_owned());
    base.vercel_type = obj.str("type").map(|s| s.into_owned());
    base.level =
        obj.str("level")
            .and_then(|l| level_from_name(&l))
            .or(match base.vercel_type.as_deref() {
                Some("stderr") => Some("error"),
                Some("fatal") => Some("fatal"),
                _ => Some("info"),
            });
    base.trace_id = obj
        .str("traceId")
        .or_else(|| obj.str("trace.id"))
        .map(|s| s.into_owned());
    base.project_id = Some(project_id.into_owned());
    base.host = obj.str("host").map(|s| s.into_owned());
    base.environment = obj.str("environment").map(|s| s.into_owned());
    base.route = obj.str("path").map(|s| s.into_owned());
    base.region = obj
        .str("executionRegion")
        .or_else(|| proxy.and_then(|p| p.str("region")))
        .map(|s| s.into_owned());
}

fn merge_attrs(base: Option<&str>, line: Option<String>) -> Option<String> {
    match (base, line) {
        (None, l) => l,
        (Some(b), None) => Some(b.to_owned()),
        (Some(b), Some(l)) => Some(format!("{},{}", &b[..b.len() - 1], &l[1..])),
    }
}

/// Whether a mapped field has the type its column needs.
fn typed_ok(key: &str, raw: &str) -> bool {
    match key {
        "timestamp" | "statusCode" => raw.parse::<f64>().is_ok(),
        "id" => raw.starts_with('"') || raw.parse::<f64>().is_ok(),
        _ => raw.starts_with('"'),
    }
}

fn missing_or_wrong(obj: &RawObject<'_>, key: &str, want: &str) -> String {
    match obj.get(key) {
        None => format!("missing required field `{key}`"),
        Some(v) if !is_present(v) => format!("required field `{key}` is empty or null"),
        Some(v) => format!("field `{key}` must be {want}, got {}", preview(v.get())),
    }
}

fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}
