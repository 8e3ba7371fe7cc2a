//! Alert delivery to real HTTP receivers on 127.0.0.1:0 that record what they get.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use slowburn_notify::{ReceiverConfig, ReceiverKind};

use crate::common::*;

#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    Hang(Duration),
    RetryAfter(u64),
}

#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone, Default)]
pub struct Recorder {
    pub hits: Arc<Mutex<Vec<Hit>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
}

async fn record(State(r): State<Recorder>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let path = uri.path().to_owned();
    r.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
        at: Instant::now(),
    });
    let reply = r
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|q| q.pop_front());
    let ok: Response = match path.as_str() {
        "/pd" => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"status": "success", "message": "Event processed"})),
        )
            .into_response(),
        "/slack" => (StatusCode::OK, "ok").into_response(),
        _ => StatusCode::OK.into_response(),
    };
    match reply {
        None => ok,
        Some(Reply::Status(s)) if s < 300 => ok,
        Some(Reply::Status(s)) => {
            (StatusCode::from_u16(s).unwrap(), "invalid_payload").into_response()
        }
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            ok
        }
        Some(Reply::RetryAfter(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
    }
}

impl Recorder {
    /// Starts the recorder; returns its base URL.
    pub async fn start(&self) -> String {
        let app = axum::Router::new()
            .fallback(record)
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    pub fn script(&self, path: &str, replies: &[Reply]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), replies.iter().cloned().collect());
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }
}

/// A checkout SLO whose windows are short enough to fire and resolve within a test.
pub const FAST_CATALOG: &str = "flows:
  - name: subscribe_checkout
    match: [{ method: POST, path: /api/subscribe/checkout }]
slos:
  - name: subscribe_checkout_success_rate
    flow: subscribe_checkout
    objective: 99.9
    period: 30d
    sli: { kind: availability }
    runbook: docs/runbooks/subscribe_checkout_success_rate.md
    alerts:
      fast_burn: { long: 1m, short: 10s }
      slow_burn: { long: 2m, short: 10s }
      drift_day: { disabled: true }
      drift_3day: { disabled: true }
";

pub fn receivers(base: &str) -> Vec<ReceiverConfig> {
    vec![
        ReceiverConfig {
            name: "pagerduty".into(),
            kind: ReceiverKind::PagerDuty {
                routing_key: "R0UT1NGKEY".into(),
                url: format!("{base}/pd"),
            },
        },
        ReceiverConfig {
            name: "slack".into(),
            kind: ReceiverKind::Slack {
                webhook_url: format!("{base}/slack"),
            },
        },
        ReceiverConfig {
            name: "webhook".into(),
            kind: ReceiverKind::Webhook {
                url: format!("{base}/hook"),
                bearer_token: Some("hooktoken".into()),
            },
        },
    ]
}

pub fn checkout_body(prefix: &str, n: usize, status: i64, t: i64) -> Vec<u8> {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": format!("{prefix}{i}"), "timestamp": t, "source": "lambda", "projectId": "prj", "deploymentId": "dpl_x",
                "requestId": format!("req-{prefix}{i}"), "statusCode": status,
                "proxy": {"method": "POST", "path": "/api/subscribe/checkout", "statusCode": status},
            })
        })
        .collect();
    serde_json::to_vec(&entries).unwrap()
}

async fn start_server(
    recorder_base: &str,
    tweak: impl FnOnce(&mut slowburn::config::Settings),
) -> (TestServer, tempfile::TempDir) {
    let catalog_dir = tempfile::tempdir().unwrap();
    std::fs::write(catalog_dir.path().join("fast.yaml"), FAST_CATALOG).unwrap();
    let catalog = catalog_dir.path().to_owned();
    let base = recorder_base.to_owned();
    let s = TestServer::start_with(move |c| {
        c.slo_defs = Some(catalog);
        c.notify.receivers = receivers(&base);
        c.notify.routes = slowburn_notify::default_routes(&c.notify.receivers);
        c.notify.backoff_base = Duration::from_millis(50);
        c.notify.attempt_timeout = Duration::from_secs(1);
        tweak(c);
    })
    .await;
    (s, catalog_dir)
}

#[tokio::test]
async fn fast_burn_fires_then_resolves_once_on_every_receiver() {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let (s, _catalog) = start_server(&base, |_| {}).await;
    let posted = Instant::now();
    let (status, _) = s
        .post("/v1/drains/vercel", checkout_body("bad", 20, 500, now_ms()))
        .await;
    assert_eq!(status, 200);
    let trigger = eventually(|| async { recorder.hits("/pd").first().cloned() }).await;
    assert!(
        trigger.at.duration_since(posted) < Duration::from_secs(1),
        "trigger left {:?} after the ingest",
        trigger.at.duration_since(posted)
    );
    let b = &trigger.body;
    assert_eq!(b["event_action"], "trigger");
    assert_eq!(b["routing_key"], "R0UT1NGKEY");
    assert_eq!(
        b["dedup_key"],
        "slowburn/subscribe_checkout_success_rate/fast_burn"
    );
    assert_eq!(b["payload"]["severity"], "critical");
    assert_eq!(b["payload"]["source"], "slowburn/subscribe_checkout");
    let summary = b["payload"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("[SEV1] subscribe_checkout_success_rate is burning its error budget: 1000x over 1m and 1000x over 10s (threshold 14.4x)"), "{summary}");
    assert!(
        b["payload"]["custom_details"]["flow_health_url"]
            .as_str()
            .unwrap()
            .ends_with("/v1/flows/subscribe_checkout/health?window=1m"),
        "{b}"
    );
    assert_eq!(
        b["payload"]["custom_details"]["runbook"],
        "docs/runbooks/subscribe_checkout_success_rate.md"
    );
    assert_eq!(b["payload"]["custom_details"]["burn_rate_short"], 1000.0);

    // Good traffic; once the 10 s window holds no errors the alert resolves.
    let mut n = 0;
    let resolve = eventually_for(Duration::from_secs(40), || {
        n += 1;
        let body = checkout_body(&format!("good{n}-"), 5, 200, now_ms());
        let (s, r) = (&s, &recorder);
        async move {
            s.post("/v1/drains/vercel", body).await;
            r.hits("/pd")
                .iter()
                .find(|h| h.body["event_action"] == "resolve")
                .cloned()
        }
    })
    .await;
    assert_eq!(
        resolve.body["dedup_key"],
        "slowburn/subscribe_checkout_success_rate/fast_burn"
    );
    assert_eq!(
        resolve.body.as_object().unwrap().len(),
        3,
        "a resolve carries routing_key, event_action, dedup_key: {}",
        resolve.body
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // slow_burn tripped too, but was suppressed by fast_burn: PagerDuty saw one incident only.
    let pd = recorder.hits("/pd");
    let actions: Vec<(&str, &str)> = pd
        .iter()
        .map(|h| {
            (
                h.body["event_action"].as_str().unwrap(),
                h.body["dedup_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (
                "trigger",
                "slowburn/subscribe_checkout_success_rate/fast_burn"
            ),
            (
                "resolve",
                "slowburn/subscribe_checkout_success_rate/fast_burn"
            )
        ],
        "{pd:#?}"
    );
    let slack = recorder.hits("/slack");
    assert_eq!(slack.len(), 2, "{slack:#?}");
    assert!(
        slack[0].body["text"]
            .as_str()
            .unwrap()
            .contains("[FIRING] SEV1 subscribe_checkout_success_rate: fast_burn"),
        "{:?}",
        slack[0].body
    );
    assert_eq!(slack[0].body["blocks"][0]["type"], "header");
    assert!(
        slack[1].body["text"]
            .as_str()
            .unwrap()
            .contains("[RESOLVED]"),
        "{:?}",
        slack[1].body
    );
    let hook = recorder.hits("/hook");
    let statuses: Vec<&str> = hook
        .iter()
        .map(|h| h.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["firing", "resolved"], "{hook:#?}");
    assert_eq!(hook[0].authorization.as_deref(), Some("Bearer hooktoken"));
    assert_eq!(hook[0].body["version"], "4");
    assert_eq!(
        hook[0].body["alerts"][0]["labels"]["alertname"],
        "fast_burn"
    );
    assert_eq!(hook[0].body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_ne!(hook[1].body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        hook[0].body["alerts"][0]["fingerprint"],
        hook[1].body["alerts"][0]["fingerprint"]
    );
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(
            r#"slowburn_notifications_total{receiver="pagerduty",outcome="delivered"} 2"#
        ),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn retries_on_5xx_and_429_stop_on_4xx_and_time_out_hangs() {
    let recorder = Recorder::default();
    recorder.script(
        "/pd",
        &[Reply::Status(500), Reply::Status(500), Reply::Status(202)],
    );
    recorder.script("/slack", &[Reply::Status(400)]);
    recorder.script(
        "/hook",
        &[
            Reply::Hang(Duration::from_secs(5)),
            Reply::RetryAfter(1),
            Reply::Status(200),
        ],
    );
    let base = recorder.start().await;
    let (s, _catalog) = start_server(&base, |_| {}).await;
    s.post("/v1/drains/vercel", checkout_body("bad", 20, 500, now_ms()))
        .await;
    eventually(|| async { (recorder.hits("/hook").len() >= 3).then_some(()) }).await;
    eventually(|| async { (recorder.hits("/pd").len() >= 3).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // PagerDuty: 500, 500, then 202: three attempts, one delivery.
    assert_eq!(recorder.hits("/pd").len(), 3);
    // Slack answered 400: not retried.
    assert_eq!(recorder.hits("/slack").len(), 1);
    // Webhook: the hang timed out (1 s), the 429's Retry-After (1 s) was honoured, then 200.
    let hook = recorder.hits("/hook");
    assert_eq!(hook.len(), 3);
    assert!(
        hook[1].at.duration_since(hook[0].at) >= Duration::from_millis(950),
        "{:?}",
        hook[1].at.duration_since(hook[0].at)
    );
    assert!(
        hook[2].at.duration_since(hook[1].at) >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let metrics = s.metrics().await;
    for line in [
        r#"slowburn_notifications_total{receiver="pagerduty",outcome="retried"} 2"#,
        r#"slowburn_notifications_total{receiver="pagerduty",outcome="delivered"} 1"#,
        r#"slowburn_notifications_total{receiver="slack",outcome="rejected"} 1"#,
        r#"slowburn_notifications_total{receiver="webhook",outcome="retried"} 2"#,
        r#"slowburn_notifications_total{receiver="webhook",outcome="delivered"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_restart_neither_repages_nor_forgets_the_resolve() {
    let recorder = Recorder::default();
    let base = recorder.start().await;
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_owned();
    // 1. Fire, then stop while firing.
    let (s, catalog) = start_server(&base, {
        let d = data_dir.clone();
        move |c| c.data_dir = d
    })
    .await;
    s.post("/v1/drains/vercel", checkout_body("bad", 20, 500, now_ms()))
        .await;
    eventually(|| async { (recorder.hits("/pd").len() == 1).then_some(()) }).await;
    s.stop().await;
    assert!(data_dir.join("notify/ledger.json").is_file());

    // 2. Restart: the engine's windows are rebuilt from the WAL and the archive, so the burn is
    //    firing again at once, with no new data; the ledger says it was paged: no second trigger.
    let (s, _c2) = start_server(&base, {
        let d = data_dir.clone();
        move |c| c.data_dir = d
    })
    .await;
    let (_, slo) = s.get("/v1/slo/subscribe_checkout_success_rate").await;
    assert_eq!(slo["alerts"][0]["rule"], "fast_burn");
    assert_eq!(
        slo["alerts"][0]["state"], "firing",
        "rebuilt at start: {slo}"
    );
    assert_eq!(slo["sli"]["total"], 20, "{slo}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        recorder.hits("/pd").len(),
        1,
        "no second page after a restart"
    );
    s.stop().await;

    // 3. Stopped while firing; restarted once the errors have left the 10 s short window: the
    //    rule is resolved, and the resolve that was due is sent.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let (s, _c3) = start_server(&base, {
        let d = data_dir.clone();
        move |c| c.data_dir = d
    })
    .await;
    let resolve = eventually(|| async {
        recorder
            .hits("/pd")
            .into_iter()
            .find(|h| h.body["event_action"] == "resolve")
    })
    .await;
    assert_eq!(
        resolve.body["dedup_key"],
        "slowburn/subscribe_checkout_success_rate/fast_burn"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(recorder.hits("/pd").len(), 2);
    assert_eq!(recorder.hits("/slack").len(), 2);
    s.stop().await;
    drop(catalog);
}

#[test]
fn notify_test_reports_each_receiver() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let recorder = Recorder::default();
    let base = rt.block_on(recorder.start());
    recorder.script("/slack", &[Reply::Status(404)]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slowburn"))
        .arg("notify-test")
        .env("SLOWBURN_PAGERDUTY_ROUTING_KEY", "K")
        .env("SLOWBURN_PAGERDUTY_URL", format!("{base}/pd"))
        .env("SLOWBURN_SLACK_WEBHOOK_URL", format!("{base}/slack"))
        .env("SLOWBURN_WEBHOOK_URL", format!("{base}/hook"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("pagerduty: ok HTTP 202"), "{stdout}");
    assert!(
        stdout.contains("slack: FAILED HTTP 404 invalid_payload"),
        "{stdout}"
    );
    assert!(stdout.contains("webhook: ok HTTP 200"), "{stdout}");
    let pd = recorder.hits("/pd");
    assert_eq!(pd.len(), 2, "a test trigger and its resolve");
    assert!(
        pd[0].body["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("[TEST]")
    );
    assert_eq!(pd[1].body["event_action"], "resolve");
    assert_eq!(pd[0].body["dedup_key"], pd[1].body["dedup_key"]);
}
