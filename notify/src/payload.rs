//! The receivers' wire formats: PagerDuty Events API v2, Slack Block Kit incoming webhooks, and
//! the Alertmanager webhook v4 body.

use serde_json::{Value, json};

use crate::AlertNotice;

/// A stable PagerDuty `dedup_key` per (SLO, rule): trigger and resolve share it.
pub fn dedup_key(notice: &AlertNotice) -> String {
    if notice.test {
        format!("slowburn/test/{}", notice.time_ms)
    } else {
        format!("slowburn/{}/{}", notice.slo, notice.alert)
    }
}

/// Alertmanager-style fingerprint: 16 hex digits of a hash of the label set.
pub fn fingerprint(notice: &AlertNotice) -> String {
    let labels = format!(
        "alertname={}\u{0}slo={}\u{0}flow={}\u{0}severity={}",
        notice.alert, notice.slo, notice.flow, notice.severity
    );
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(labels.as_bytes()))
}

pub fn pagerduty_severity(severity: &str) -> &'static str {
    match severity {
        "SEV1" => "critical",
        "SEV2" => "error",
        "SEV3" => "warning",
        _ => "info",
    }
}

fn rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}x"),
        Some(v) => format!("{v:.1}x"),
        None => "n/a".to_owned(),
    }
}

fn percent(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:.1}%", v * 100.0),
        None => "n/a".to_owned(),
    }
}

fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "not at the current rate".to_owned(),
        Some(s) if s < 3600.0 => format!("{:.0} min", (s / 60.0).max(1.0)),
        Some(s) if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} days", s / 86_400.0),
    }
}

pub fn rfc3339(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned())
}

/// One line saying what burns, how fast, and how much budget is left.
pub fn summary(n: &AlertNotice) -> String {
    let test = if n.test { "[TEST] " } else { "" };
    let mut s = if n.firing {
        format!(
            "{test}[{}] {} is burning its error budget: {} over {} and {} over {} (threshold {:.1}x); {} of the budget left",
            n.severity,
            n.slo,
            rate(n.burn_long),
            n.long_window,
            rate(n.burn_short),
            n.short_window,
            n.factor,
            percent(n.budget_remaining)
        )
    } else {
        format!(
            "{test}[RESOLVED] {} {}: burn rate back under {:.1}x; {} of the budget left",
            n.slo,
            n.alert,
            n.factor,
            percent(n.budget_remaining)
        )
    };
    // PagerDuty's limit on summary is 1024 characters.
    if s.len() > 1024 {
        let mut cut = 1021;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn details(n: &AlertNotice) -> Value {
    json!({
        "slo": n.slo,
        "flow": n.flow,
        "rule": n.alert,
        "objective_percent": n.objective_percent,
        "burn_rate_long": n.burn_long,
        "burn_rate_short": n.burn_short,
        "long_window": n.long_window,
        "short_window": n.short_window,
        "factor": n.factor,
        "error_budget_remaining": n.budget_remaining,
        "time_to_exhaustion_secs": n.time_to_exhaustion_secs,
        "flow_health_url": n.flow_health_url,
        "runbook": n.runbook_url,
        "firing_since": rfc3339(n.since_ms),
        "test": n.test,
    })
}

/// A PagerDuty Events API v2 event: `trigger` when firing, `resolve` when resolved.
pub fn pagerduty(n: &AlertNotice, routing_key: &str) -> Value {
    if !n.firing {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(n)});
    }
    let mut links = Vec::new();
    if let Some(url) = &n.flow_health_url {
        links.push(json!({"href": url, "text": "Flow health"}));
    }
    if let Some(url) = &n.runbook_url {
        links.push(json!({"href": url, "text": "Runbook"}));
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(n),
        "payload": {
            "summary": summary(n),
            "source": format!("slowburn/{}", n.flow),
            "severity": pagerduty_severity(&n.severity),
            "timestamp": rfc3339(n.time_ms),
            "component": n.flow,
            "group": n.slo,
            "class": n.alert,
            "custom_details": details(n),
        },
        "client": "slowburn",
        "links": links,
    })
}

/// A Slack incoming-webhook message with Block Kit blocks and a fallback `text`.
pub fn slack(n: &AlertNotice) -> Value {
    let test = if n.test { "[TEST] " } else { "" };
    let (icon, state) = if n.firing {
        (":red_circle:", "FIRING")
    } else {
        (":large_green_circle:", "RESOLVED")
    };
    let title = format!("{test}[{state}] {} {}: {}", n.severity, n.slo, n.alert);
    let mut links = Vec::new();
    if let Some(url) = &n.flow_health_url {
        links.push(format!("<{url}|Flow health>"));
    }
    if let Some(url) = &n.runbook_url {
        links.push(format!("<{url}|Runbook>"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&summary(n), 3000)}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Burn ({}):*\n{} (threshold {:.1}x)", n.long_window, rate(n.burn_long), n.factor)},
            {"type": "mrkdwn", "text": format!("*Burn ({}):*\n{}", n.short_window, rate(n.burn_short))},
            {"type": "mrkdwn", "text": format!("*Budget left:*\n{}", percent(n.budget_remaining))},
            {"type": "mrkdwn", "text": format!("*Exhausted in:*\n{}", duration(n.time_to_exhaustion_secs))},
        ]}),
    ];
    if !links.is_empty() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": links.join("  ·  ")}}),
        );
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("slowburn · flow {} · objective {}% · {}", n.flow, n.objective_percent, rfc3339(n.time_ms))}]}));
    json!({"text": format!("{icon} {title}"), "blocks": blocks})
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max - 3;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

/// An Alertmanager webhook v4 body with one alert, so existing Alertmanager receivers work.
pub fn alertmanager(n: &AlertNotice, receiver: &str, external_url: &str) -> Value {
    let status = if n.firing { "firing" } else { "resolved" };
    let labels =
        json!({"alertname": n.alert, "slo": n.slo, "flow": n.flow, "severity": n.severity});
    let mut annotations = json!({"summary": summary(n), "description": format!("{} burn rate over {} and {}", n.slo, n.long_window, n.short_window)});
    if let Some(url) = &n.runbook_url {
        annotations["runbook_url"] = json!(url);
    }
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{}\", slo=\"{}\"}}", n.alert, n.slo),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"alertname": n.alert, "slo": n.slo},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(n.since_ms),
            // Alertmanager sends the zero time while an alert fires.
            "endsAt": if n.firing { "0001-01-01T00:00:00Z".to_owned() } else { rfc3339(n.time_ms) },
            "generatorURL": n.flow_health_url.clone().unwrap_or_default(),
            "fingerprint": fingerprint(n),
        }],
    })
}
