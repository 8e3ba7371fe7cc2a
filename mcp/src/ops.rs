//! What the tools and resources answer, each built from SQL over `slo_status`, `alerts`, `flows`,
//! `requests` and `logs`. Nothing here knows MCP: `server.rs` wraps these answers in tool
//! results and resource contents.
//!
//! Names that reach SQL are checked against the catalog first (never interpolated unchecked);
//! windows become a whole number of seconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::runbooks::Runbook;
use crate::source::{SourceError, SqlSource, SqlTable};

/// The shortest and longest window a tool accepts.
pub const MIN_WINDOW_SECS: i64 = 60;
pub const MAX_WINDOW_SECS: i64 = 30 * 86_400;
/// Strings longer than this are cut in answers (a 1 MB log line would swamp a model's context).
pub const MAX_CELL_CHARS: usize = 1000;
/// How far back release health and first-seen times look.
pub const RELEASE_LOOKBACK_SECS: i64 = 7 * 86_400;
/// A deployment needs this many requests of a flow before it can be called a rollback candidate.
pub const ROLLBACK_MIN_REQUESTS: i64 = 20;

/// Why an answer could not be given. Both kinds reach the model as `isError` results.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpsError {
    /// The call is wrong; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<SourceError> for OpsError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Query(m) => OpsError::Invalid(m),
            SourceError::Unavailable(m) => OpsError::Unavailable(m),
        }
    }
}

/// An answer: structured data plus a one-paragraph summary for humans and models.
#[derive(Debug, Clone)]
pub struct Answer {
    pub data: Value,
    pub summary: String,
}

pub struct Ops {
    source: Arc<dyn SqlSource>,
    runbooks: Arc<Vec<Runbook>>,
    /// Rows at most in any answer (and the largest `limit` of `sql_query`).
    pub max_rows: usize,
}

/// Parses a window like `5m`, `1h`, `24h`, `7d` into seconds within the accepted range.
pub fn parse_window(text: &str) -> Result<i64, OpsError> {
    let ms = slowburn_slo_defs::parse_duration(text).map_err(|e| {
        OpsError::Invalid(format!(
            "window: {e}; pass for example \"5m\", \"1h\", \"24h\" or \"7d\""
        ))
    })?;
    let secs = ms / 1000;
    if !(MIN_WINDOW_SECS..=MAX_WINDOW_SECS).contains(&secs) {
        return Err(OpsError::Invalid(format!(
            "window `{text}` must be between 1m and 30d"
        )));
    }
    Ok(secs)
}

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `now() - window` as SQL.
fn since(secs: i64) -> String {
    format!("now() - INTERVAL '{secs} seconds'")
}

/// Cuts long strings, recursively.
fn cap_cells(v: Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_CELL_CHARS => {
            let cut: String = s.chars().take(MAX_CELL_CHARS).collect();
            Value::String(format!("{cut}…[cut at {MAX_CELL_CHARS} characters]"))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(cap_cells).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, cap_cells(v))).collect()),
        other => other,
    }
}

fn objects(t: &SqlTable) -> Vec<Value> {
    t.objects()
        .into_iter()
        .map(Value::Object)
        .map(cap_cells)
        .collect()
}

/// Signature rows carry the request ids of their latest lines; keep three distinct ones.
fn signature_objects(t: &SqlTable) -> Vec<Value> {
    let mut rows = objects(t);
    for r in &mut rows {
        let mut seen: Vec<Value> = Vec::new();
        for id in r["sample_request_ids"].as_array().into_iter().flatten() {
            if seen.len() < 3 && !seen.contains(id) {
                seen.push(id.clone());
            }
        }
        r["sample_request_ids"] = Value::Array(seen);
    }
    rows
}

fn f64_of(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn ratio(errors: i64, total: i64) -> Value {
    if total > 0 {
        json!(errors as f64 / total as f64)
    } else {
        Value::Null
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{:.1}%", x * 100.0))
}

fn burn(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.1}x"))
}

/// Adds `error_ratio` to rows that have `requests` and `errors`.
fn add_error_ratios(rows: &mut [Value]) {
    for d in rows {
        let (r, e) = (
            d["requests"].as_i64().unwrap_or(0),
            d["errors"].as_i64().unwrap_or(0),
        );
        d["error_ratio"] = ratio(e, r);
    }
}

/// Normalizes an error message into a signature: ids, hex and numbers become placeholders.
fn signature_sql(expr: &str) -> String {
    format!(
        "left(regexp_replace(regexp_replace(regexp_replace({expr}, \
         '[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}', '<uuid>', 'g'), \
         '\\b[0-9a-fA-F]{{8,}}\\b', '<hex>', 'g'), \
         '[0-9]+', '<n>', 'g'), 200)"
    )
}

impl Ops {
    pub fn new(source: Arc<dyn SqlSource>, runbooks: Arc<Vec<Runbook>>, max_rows: usize) -> Self {
        Ops {
            source,
            runbooks,
            max_rows: max_rows.max(1),
        }
    }

    pub fn describe_source(&self) -> String {
        self.source.describe()
    }

    async fn q(&self, sql: &str) -> Result<SqlTable, OpsError> {
        Ok(self.source.query(sql, self.max_rows).await?)
    }

    /// The catalog's flows: `(name, slos)`.
    async fn flow_names(&self) -> Result<Vec<String>, OpsError> {
        let t = self.q("SELECT name FROM flows ORDER BY name").await?;
        Ok(t.rows
            .iter()
            .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    async fn check_flow(&self, flow: &str) -> Result<(), OpsError> {
        let known = self.flow_names().await?;
        if known.iter().any(|f| f == flow) {
            Ok(())
        } else {
            Err(OpsError::Invalid(format!(
                "unknown flow `{flow}`; known flows: {} (see list_flows)",
                known.join(", ")
            )))
        }
    }

    pub async fn list_flows(&self) -> Result<Answer, OpsError> {
        let t = self
            .q("SELECT name, description, matchers, envelope, slos FROM flows ORDER BY name")
            .await?;
        let flows = objects(&t);
        let summary = format!(
            "{} flows: {}",
            flows.len(),
            flows
                .iter()
                .map(|f| format!(
                    "{} ({})",
                    f["name"].as_str().unwrap_or("?"),
                    f["matchers"]
                        .as_str()
                        .or(f["envelope"].as_str())
                        .unwrap_or("")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok(Answer {
            data: json!({ "flows": flows }),
            summary,
        })
    }

    pub async fn slo_status(&self, name: Option<&str>) -> Result<Answer, OpsError> {
        let t = self
            .q("SELECT name, flow, objective, period, sli_kind, threshold_ms, good, total, sli_ratio, \
                budget_remaining, budget_consumed, time_to_exhaustion_secs, burn_5m, burn_30m, burn_1h, \
                burn_2h, burn_6h, burn_1d, burn_3d, p50_ms, p95_ms, p99_ms, firing_alerts, worst_severity, \
                runbook, as_of FROM slo_status ORDER BY name")
            .await?;
        let mut slos = objects(&t);
        if let Some(name) = name {
            let known: Vec<String> = slos
                .iter()
                .filter_map(|s| s["name"].as_str().map(str::to_owned))
                .collect();
            slos.retain(|s| s["name"] == name);
            if slos.is_empty() {
                return Err(OpsError::Invalid(format!(
                    "unknown SLO `{name}`; known SLOs: {}",
                    known.join(", ")
                )));
            }
        }
        let summary = slos
            .iter()
            .map(|s| {
                let firing = match s["firing_alerts"].as_str() {
                    Some(f) => format!(
                        "FIRING {f} ({})",
                        s["worst_severity"].as_str().unwrap_or("?")
                    ),
                    None => "no alert firing".into(),
                };
                format!(
                    "{}: objective {}% over {}, budget left {}, burn 5m {} / 1h {}, {firing}",
                    s["name"].as_str().unwrap_or("?"),
                    s["objective"],
                    s["period"].as_str().unwrap_or("?"),
                    pct(f64_of(&s["budget_remaining"])),
                    burn(f64_of(&s["burn_5m"])),
                    burn(f64_of(&s["burn_1h"])),
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        Ok(Answer {
            data: json!({ "slos": slos }),
            summary,
        })
    }

    pub async fn flow_health(&self, flow: &str, window: &str) -> Result<Answer, OpsError> {
        let secs = parse_window(window)?;
        self.check_flow(flow).await?;
        let scope = format!("flow = {} AND time >= {}", lit(flow), since(secs));
        let totals = self
            .q(&format!(
                "SELECT count(*) AS requests, count(*) FILTER (WHERE outcome = 'failure') AS errors, \
                 approx_percentile_cont(latency_ms, 0.5) AS p50_ms, approx_percentile_cont(latency_ms, 0.95) AS p95_ms, \
                 approx_percentile_cont(latency_ms, 0.99) AS p99_ms, max(latency_ms) AS max_ms \
                 FROM requests WHERE {scope}"
            ))
            .await?;
        let statuses = self
            .q(&format!(
                "SELECT coalesce(CAST(status AS VARCHAR), outcome) AS status, count(*) AS requests \
                 FROM requests WHERE {scope} GROUP BY 1 ORDER BY requests DESC, status LIMIT 20"
            ))
            .await?;
        let deployments = self
            .q(&format!(
                "SELECT coalesce(deployment_id, 'unknown') AS deployment_id, count(*) AS requests, \
                 count(*) FILTER (WHERE outcome = 'failure') AS errors, \
                 approx_percentile_cont(latency_ms, 0.95) AS p95_ms, min(time) AS first_seen, max(time) AS last_seen \
                 FROM requests WHERE {scope} GROUP BY 1 ORDER BY first_seen LIMIT 20"
            ))
            .await?;
        let slos = self
            .q(&format!(
                "SELECT name, objective, sli_kind, budget_remaining, burn_5m, burn_30m, burn_1h, burn_6h, burn_1d, \
                 firing_alerts FROM slo_status WHERE flow = {} ORDER BY name",
                lit(flow)
            ))
            .await?;
        let requests = totals.get(0, "requests").as_i64().unwrap_or(0);
        let errors = totals.get(0, "errors").as_i64().unwrap_or(0);
        let mut deploys = objects(&deployments);
        add_error_ratios(&mut deploys);
        let data = json!({
            "flow": flow,
            "window": window,
            "requests": requests,
            "errors": errors,
            "error_ratio": ratio(errors, requests),
            "latency_ms": {
                "p50": totals.get(0, "p50_ms"), "p95": totals.get(0, "p95_ms"),
                "p99": totals.get(0, "p99_ms"), "max": totals.get(0, "max_ms"),
            },
            "status_codes": objects(&statuses),
            "deployments": deploys,
            "slos": objects(&slos),
        });
        let status_text = statuses
            .rows
            .iter()
            .map(|r| format!("{}×{}", r[1], r[0].as_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = format!(
            "{flow} over {window}: {requests} requests, {errors} errors ({}), p95 {} ms; status {}; {} deployment(s)",
            pct(data["error_ratio"].as_f64()),
            totals
                .get(0, "p95_ms")
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.0}")),
            if status_text.is_empty() {
                "none".into()
            } else {
                status_text
            },
            deploys.len()
        );
        Ok(Answer { data, summary })
    }

    /// The top error signatures of a flow's failing requests: normalized pino `err` (or error-level
    /// messages) joined to the flow's failed requests by request id.
    async fn signatures(&self, flow: &str, secs: i64, limit: usize) -> Result<SqlTable, OpsError> {
        let lookback = secs.max(86_400);
        let sig = signature_sql("coalesce(l.err_message, l.message, '')");
        self.q(&format!(
            "WITH failed AS (SELECT DISTINCT request_id FROM requests \
               WHERE flow = {flow} AND outcome = 'failure' AND request_id IS NOT NULL AND time >= {lookback_since}) \
             SELECT coalesce(l.err_type, l.level) AS err_type, {sig} AS signature, \
               count(*) FILTER (WHERE l.event_time >= {window_since}) AS occurrences, \
               min(l.event_time) AS first_seen, first_value(l.deployment_id ORDER BY l.event_time) AS first_deployment, \
               array_slice(array_agg(l.request_id ORDER BY l.event_time DESC, l.request_id), 1, 20) AS sample_request_ids \
             FROM logs l JOIN failed f ON l.request_id = f.request_id \
             WHERE l.event_time >= {lookback_since} AND (l.err_type IS NOT NULL OR l.level IN ('error', 'fatal')) \
             GROUP BY 1, 2 HAVING count(*) FILTER (WHERE l.event_time >= {window_since}) > 0 \
             ORDER BY occurrences DESC, signature LIMIT {limit}",
            flow = lit(flow),
            lookback_since = since(lookback),
            window_since = since(secs),
        ))
        .await
    }

    pub async fn triage(
        &self,
        slo: Option<&str>,
        flow: Option<&str>,
        window: &str,
    ) -> Result<Answer, OpsError> {
        let secs = parse_window(window)?;
        let flow = match (slo, flow) {
            (None, None) => {
                return Err(OpsError::Invalid(
                    "pass `slo` (an SLO name) or `flow` (a flow name); see slo_status and list_flows".into(),
                ));
            }
            (Some(slo), given) => {
                let t = self
                    .q(&format!(
                        "SELECT flow FROM slo_status WHERE name = {}",
                        lit(slo)
                    ))
                    .await?;
                let Some(f) = t.get(0, "flow").as_str().map(str::to_owned) else {
                    let names = self.q("SELECT name FROM slo_status ORDER BY name").await?;
                    let known: Vec<&str> =
                        names.rows.iter().filter_map(|r| r[0].as_str()).collect();
                    return Err(OpsError::Invalid(format!(
                        "unknown SLO `{slo}`; known SLOs: {}",
                        known.join(", ")
                    )));
                };
                if let Some(g) = given
                    && g != f
                {
                    return Err(OpsError::Invalid(format!(
                        "SLO `{slo}` belongs to flow `{f}`, not `{g}`; pass one of them"
                    )));
                }
                f
            }
            (None, Some(f)) => {
                self.check_flow(f).await?;
                f.to_owned()
            }
        };
        let lookback = secs.max(86_400);
        let signatures = self.signatures(&flow, secs, 10).await?;
        let scope = format!("flow = {} AND time >= {}", lit(&flow), since(secs));
        let failing = self
            .q(&format!(
                "SELECT coalesce(CAST(status AS VARCHAR), outcome) AS status, count(*) AS requests, \
                 min(time) AS first_seen, first_value(deployment_id ORDER BY time) AS first_deployment, \
                 array_slice(array_agg(request_id ORDER BY time DESC, request_id), 1, 3) AS sample_request_ids \
                 FROM requests WHERE {scope} AND outcome = 'failure' GROUP BY 1 ORDER BY requests DESC LIMIT 10"
            ))
            .await?;
        let timeline = self
            .q(&format!(
                "SELECT coalesce(deployment_id, 'unknown') AS deployment_id, min(time) AS first_seen, max(time) AS last_seen, \
                 count(*) AS requests, count(*) FILTER (WHERE outcome = 'failure') AS errors \
                 FROM requests WHERE flow = {} AND time >= {} GROUP BY 1 ORDER BY first_seen LIMIT 20",
                lit(&flow),
                since(lookback)
            ))
            .await?;
        let slowest = self
            .q(&format!(
                "SELECT method, path, count(*) AS requests, approx_percentile_cont(latency_ms, 0.95) AS p95_ms, \
                 max(latency_ms) AS max_ms FROM requests WHERE {scope} AND latency_ms IS NOT NULL \
                 GROUP BY 1, 2 ORDER BY p95_ms DESC, requests DESC LIMIT 5"
            ))
            .await?;
        let alerts = self
            .q(&format!(
                "SELECT slo, rule, severity, since, burn_long, burn_short, factor, suppressed FROM alerts \
                 WHERE flow = {} AND state = 'firing' ORDER BY severity, slo, rule",
                lit(&flow)
            ))
            .await?;
        let mut deployments = objects(&timeline);
        add_error_ratios(&mut deployments);
        let sigs = signature_objects(&signatures);
        let failing_rows = objects(&failing);
        let mut summary = format!("triage of {flow} over {window}: ");
        match sigs.first() {
            Some(s) => summary.push_str(&format!(
                "top error `{}: {}` ×{} (first seen {} on {})",
                s["err_type"].as_str().unwrap_or("error"),
                s["signature"].as_str().unwrap_or(""),
                s["occurrences"],
                s["first_seen"].as_str().unwrap_or("?"),
                s["first_deployment"]
                    .as_str()
                    .unwrap_or("unknown deployment"),
            )),
            None => summary.push_str("no error log lines on failing requests"),
        }
        let failing_text: Vec<String> = failing_rows
            .iter()
            .map(|f| format!("{}×{}", f["requests"], f["status"].as_str().unwrap_or("?")))
            .collect();
        summary.push_str(&format!(
            "; failing requests: {}; {} deployment(s) in the last {}; {} alert(s) firing",
            if failing_text.is_empty() {
                "none".into()
            } else {
                failing_text.join(", ")
            },
            deployments.len(),
            slowburn_slo_defs::format_duration(lookback * 1000),
            alerts.rows.len()
        ));
        Ok(Answer {
            data: json!({
                "flow": flow,
                "slo": slo,
                "window": window,
                "error_signatures": sigs,
                "failing_requests": failing_rows,
                "deployments": deployments,
                "slowest_routes": objects(&slowest),
                "firing_alerts": objects(&alerts),
            }),
            summary,
        })
    }

    pub async fn sql(
        &self,
        sql: &str,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> Result<Answer, OpsError> {
        if sql.trim().is_empty() {
            return Err(OpsError::Invalid(
                "`sql` is empty; pass a SELECT statement".into(),
            ));
        }
        let limit = limit.unwrap_or(100).clamp(1, self.max_rows);
        let offset = offset.unwrap_or(0);
        if offset > 100_000 {
            return Err(OpsError::Invalid(
                "offset is at most 100000; narrow the query with WHERE instead".into(),
            ));
        }
        let t = self.source.query(sql, offset + limit + 1).await?;
        let more = t.rows.len() > offset + limit || t.truncated;
        let rows: Vec<Value> = t
            .rows
            .iter()
            .skip(offset)
            .take(limit)
            .map(|r| cap_cells(Value::Array(r.clone())))
            .collect();
        let next_offset = (t.rows.len() > offset + limit).then_some(offset + limit);
        let summary = format!(
            "{} row(s) of {} column(s) in {:.1} ms{}",
            rows.len(),
            t.columns.len(),
            t.elapsed_ms,
            match next_offset {
                Some(n) => format!("; more rows: call again with offset={n}"),
                None if more =>
                    "; the result was cut at the server's row cap: narrow the query".into(),
                None => String::new(),
            }
        );
        Ok(Answer {
            data: json!({
                "columns": t.columns,
                "rows": rows,
                "offset": offset,
                "next_offset": next_offset,
                "truncated": more,
                "elapsed_ms": t.elapsed_ms,
            }),
            summary,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Resources

    pub async fn active_incidents(&self) -> Result<Answer, OpsError> {
        let t = self
            .q("SELECT slo, flow, rule, severity, since, burn_long, burn_short, factor, long_window, short_window, \
                budget_remaining, CAST(date_part('epoch', now() - since) AS BIGINT) AS age_secs \
                FROM alerts WHERE state = 'firing' AND NOT suppressed ORDER BY severity, since")
            .await?;
        let mut incidents = objects(&t);
        let mut top: BTreeMap<String, Value> = BTreeMap::new();
        for i in &incidents {
            let Some(flow) = i["flow"].as_str() else {
                continue;
            };
            if top.contains_key(flow) {
                continue;
            }
            let sigs = self.signatures(flow, 3_600, 1).await?;
            top.insert(
                flow.to_owned(),
                signature_objects(&sigs)
                    .into_iter()
                    .next()
                    .unwrap_or(Value::Null),
            );
        }
        for i in &mut incidents {
            let flow = i["flow"].as_str().unwrap_or("").to_owned();
            i["top_error_signature"] = top.get(&flow).cloned().unwrap_or(Value::Null);
        }
        let summary = if incidents.is_empty() {
            "no burn-rate alert is firing".to_owned()
        } else {
            incidents
                .iter()
                .map(|i| {
                    format!(
                        "{} {} {} firing for {} s (burn {} / {} vs {}x)",
                        i["severity"].as_str().unwrap_or("?"),
                        i["slo"].as_str().unwrap_or("?"),
                        i["rule"].as_str().unwrap_or("?"),
                        i["age_secs"],
                        burn(f64_of(&i["burn_long"])),
                        burn(f64_of(&i["burn_short"])),
                        i["factor"]
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        Ok(Answer {
            data: json!({ "incidents": incidents }),
            summary,
        })
    }

    pub async fn release_health(&self) -> Result<Answer, OpsError> {
        let t = self
            .q(&format!(
                "SELECT deployment_id, flow, min(time) AS first_seen, max(time) AS last_seen, count(*) AS requests, \
                 count(*) FILTER (WHERE outcome = 'failure') AS errors, approx_percentile_cont(latency_ms, 0.95) AS p95_ms \
                 FROM requests WHERE time >= {} AND deployment_id IS NOT NULL AND flow IS NOT NULL \
                 GROUP BY 1, 2 ORDER BY first_seen",
                since(RELEASE_LOOKBACK_SECS)
            ))
            .await?;
        let deployments = release_health(&t);
        let candidates: Vec<&str> = deployments
            .iter()
            .filter(|d| d["rollback_candidate"] == true)
            .filter_map(|d| d["deployment_id"].as_str())
            .collect();
        let summary = format!(
            "{} deployment(s) in the last 7 days; rollback candidates: {}",
            deployments.len(),
            if candidates.is_empty() {
                "none".into()
            } else {
                candidates.join(", ")
            }
        );
        Ok(Answer {
            data: json!({ "lookback": "7d", "deployments": deployments }),
            summary,
        })
    }

    pub async fn service_health(&self) -> Result<Answer, OpsError> {
        let sources = self
            .q("SELECT origin, coalesce(source, origin) AS source, max(received_time) AS last_received, \
                CAST(date_part('epoch', now() - max(received_time)) AS BIGINT) AS last_event_age_secs, \
                count(*) FILTER (WHERE received_time >= now() - INTERVAL '5 minutes') AS events_5m \
                FROM logs WHERE event_time >= now() - INTERVAL '1 day' GROUP BY 1, 2 ORDER BY 1, 2")
            .await?;
        let flows = self
            .q("SELECT f.name AS flow, count(r.flow) AS requests_5m, \
                count(*) FILTER (WHERE r.outcome = 'failure') AS errors_5m \
                FROM flows f LEFT JOIN requests r ON r.flow = f.name AND r.time >= now() - INTERVAL '5 minutes' \
                GROUP BY 1 ORDER BY 1")
            .await?;
        let mut source_rows = objects(&sources);
        for s in &mut source_rows {
            s["events_per_sec_5m"] = json!(s["events_5m"].as_f64().unwrap_or(0.0) / 300.0);
        }
        let mut flow_rows = objects(&flows);
        for f in &mut flow_rows {
            let (r, e) = (
                f["requests_5m"].as_i64().unwrap_or(0),
                f["errors_5m"].as_i64().unwrap_or(0),
            );
            f["error_ratio_5m"] = ratio(e, r);
        }
        let summary = format!(
            "sources: {}; flows (5m): {}",
            if source_rows.is_empty() {
                "no log received in the last day".into()
            } else {
                source_rows
                    .iter()
                    .map(|s| {
                        format!(
                            "{}/{} last {} s ago",
                            s["origin"].as_str().unwrap_or("?"),
                            s["source"].as_str().unwrap_or("?"),
                            s["last_event_age_secs"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            flow_rows
                .iter()
                .map(|f| format!(
                    "{} {} req {}",
                    f["flow"].as_str().unwrap_or("?"),
                    f["requests_5m"],
                    pct(f["error_ratio_5m"].as_f64())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Answer {
            data: json!({ "sources": source_rows, "flows": flow_rows }),
            summary,
        })
    }

    pub fn runbooks(&self) -> Answer {
        let list: Vec<Value> = self
            .runbooks
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "title": r.title, "uri": r.uri(),
                    "verification": r.verification,
                })
            })
            .collect();
        Answer {
            summary: format!(
                "{} runbook(s); read ops://runbooks/<name> for the text",
                list.len()
            ),
            data: json!({ "runbooks": list }),
        }
    }

    pub fn runbook(&self, name: &str) -> Option<&Runbook> {
        self.runbooks.iter().find(|r| r.name == name)
    }

    pub fn runbook_list(&self) -> &[Runbook] {
        &self.runbooks
    }
}

/// Per deployment (oldest first) and flow: counts, error ratio and p95 next to the previous
/// deployment's, and whether the deployment made a flow clearly worse.
///
/// A flow is clearly worse when the deployment has at least [`ROLLBACK_MIN_REQUESTS`] requests of
/// it and its error ratio is at least 2 percentage points and twice the previous deployment's, or
/// its p95 latency is 1.5 times and at least 100 ms above the previous one.
pub fn release_health(t: &SqlTable) -> Vec<Value> {
    let rows = t.objects();
    // Deployment order: by first request seen.
    let mut order: Vec<(String, String)> = Vec::new();
    for r in &rows {
        let (Some(d), Some(first)) = (r["deployment_id"].as_str(), r["first_seen"].as_str()) else {
            continue;
        };
        match order.iter_mut().find(|(id, _)| id == d) {
            Some((_, f)) if first < f.as_str() => *f = first.to_owned(),
            Some(_) => {}
            None => order.push((d.to_owned(), first.to_owned())),
        }
    }
    order.sort_by(|a, b| a.1.cmp(&b.1));
    let mut last_by_flow: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut out = Vec::new();
    for (deployment, first_seen) in &order {
        let mut flows = Vec::new();
        let mut candidate = false;
        let mut last_seen = String::new();
        let mut total = 0i64;
        for r in rows
            .iter()
            .filter(|r| r["deployment_id"] == deployment.as_str())
        {
            let flow = r["flow"].as_str().unwrap_or("").to_owned();
            let requests = r["requests"].as_i64().unwrap_or(0);
            let errors = r["errors"].as_i64().unwrap_or(0);
            total += requests;
            if let Some(l) = r["last_seen"].as_str()
                && l > last_seen.as_str()
            {
                last_seen = l.to_owned();
            }
            let error_ratio = if requests > 0 {
                errors as f64 / requests as f64
            } else {
                0.0
            };
            let p95 = r["p95_ms"].as_f64();
            let mut entry = json!({
                "flow": flow, "requests": requests, "errors": errors,
                "error_ratio": error_ratio, "p95_ms": p95,
            });
            let mut reasons = Vec::new();
            if let Some(prev) = last_by_flow.get(&flow) {
                let prev_requests = prev["requests"].as_i64().unwrap_or(0);
                let prev_errors = prev["errors"].as_i64().unwrap_or(0);
                let prev_ratio = if prev_requests > 0 {
                    prev_errors as f64 / prev_requests as f64
                } else {
                    0.0
                };
                let prev_p95 = prev["p95_ms"].as_f64();
                entry["previous"] = json!({
                    "deployment_id": prev["deployment_id"], "requests": prev_requests,
                    "error_ratio": prev_ratio, "p95_ms": prev_p95,
                });
                if requests >= ROLLBACK_MIN_REQUESTS {
                    if error_ratio >= prev_ratio + 0.02 && error_ratio >= 2.0 * prev_ratio {
                        reasons.push(format!(
                            "error ratio {:.1}% vs {:.1}% before",
                            error_ratio * 100.0,
                            prev_ratio * 100.0
                        ));
                    }
                    if let (Some(p), Some(q)) = (p95, prev_p95)
                        && p >= 1.5 * q
                        && p - q >= 100.0
                    {
                        reasons.push(format!("p95 {p:.0} ms vs {q:.0} ms before"));
                    }
                }
            }
            if !reasons.is_empty() {
                candidate = true;
            }
            entry["rollback_candidate"] = json!(!reasons.is_empty());
            entry["reasons"] = json!(reasons);
            flows.push(entry);
            last_by_flow.insert(flow, r.clone());
        }
        out.push(json!({
            "deployment_id": deployment,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "requests": total,
            "rollback_candidate": candidate,
            "flows": flows,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: Vec<Vec<Value>>) -> SqlTable {
        SqlTable {
            columns: [
                "deployment_id",
                "flow",
                "first_seen",
                "last_seen",
                "requests",
                "errors",
                "p95_ms",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            truncated: false,
            elapsed_ms: 0.0,
        }
    }

    #[test]
    fn a_deploy_that_raises_errors_is_a_rollback_candidate() {
        let t = table(vec![
            vec![
                json!("dpl_a"),
                json!("checkout"),
                json!("2026-12-01T10:00:00Z"),
                json!("2026-12-01T11:00:00Z"),
                json!(1000),
                json!(2),
                json!(300.0),
            ],
            vec![
                json!("dpl_b"),
                json!("checkout"),
                json!("2026-12-01T11:00:00Z"),
                json!("2026-12-01T12:00:00Z"),
                json!(200),
                json!(30),
                json!(310.0),
            ],
            vec![
                json!("dpl_b"),
                json!("read"),
                json!("2026-12-01T11:00:05Z"),
                json!("2026-12-01T12:00:00Z"),
                json!(500),
                json!(0),
                json!(90.0),
            ],
            // Too few requests to judge, however bad.
            vec![
                json!("dpl_c"),
                json!("checkout"),
                json!("2026-12-01T12:00:00Z"),
                json!("2026-12-01T12:01:00Z"),
                json!(5),
                json!(5),
                json!(900.0),
            ],
        ]);
        let out = release_health(&t);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0]["rollback_candidate"], false, "no previous deploy");
        assert_eq!(out[1]["deployment_id"], "dpl_b");
        assert_eq!(out[1]["rollback_candidate"], true);
        assert_eq!(out[1]["flows"][0]["previous"]["deployment_id"], "dpl_a");
        assert_eq!(out[1]["flows"][1]["rollback_candidate"], false);
        assert_eq!(out[2]["rollback_candidate"], false);
    }

    #[test]
    fn slower_p95_counts_too_but_not_small_moves() {
        let t = table(vec![
            vec![
                json!("a"),
                json!("f"),
                json!("1"),
                json!("1"),
                json!(100),
                json!(0),
                json!(200.0),
            ],
            vec![
                json!("b"),
                json!("f"),
                json!("2"),
                json!("2"),
                json!(100),
                json!(0),
                json!(350.0),
            ],
            vec![
                json!("c"),
                json!("f"),
                json!("3"),
                json!("3"),
                json!(100),
                json!(0),
                json!(420.0),
            ],
        ]);
        let out = release_health(&t);
        assert_eq!(out[1]["rollback_candidate"], true, "{}", out[1]);
        assert_eq!(out[2]["rollback_candidate"], false, "{}", out[2]);
    }

    #[test]
    fn windows_are_checked() {
        assert_eq!(parse_window("5m").unwrap(), 300);
        assert_eq!(parse_window("24h").unwrap(), 86_400);
        assert!(
            parse_window("30s")
                .unwrap_err()
                .to_string()
                .contains("between 1m and 30d")
        );
        assert!(
            parse_window("1y")
                .unwrap_err()
                .to_string()
                .contains("\"5m\"")
        );
        assert!(parse_window("31d").is_err());
        assert_eq!(lit("a'b"), "'a''b'");
    }
}
