//! SLO state over HTTP: `/v1/slo`, flow health, alerts, health endpoints.

use serde_json::{Value, json};

use crate::common::*;

const VERCEL: &str = "/v1/drains/vercel";

fn checkout(id: usize, t: i64, status: i64, latency_ms: f64, deployment: &str) -> Value {
    json!({
        "id": format!("c{id}"), "timestamp": t, "source": "lambda", "projectId": "prj_test", "deploymentId": deployment,
        "requestId": format!("req-c{id}"), "statusCode": status,
        "message": format!("REPORT RequestId: r{id}\tDuration: {latency_ms:.2} ms\tBilled Duration: 1 ms\tMemory Size: 1024 MB\tMax Memory Used: 100 MB\t"),
        "proxy": {"timestamp": t, "method": "POST", "path": "/api/subscribe/checkout", "statusCode": status},
    })
}

#[tokio::test]
async fn health_ready_metrics_and_unknown_routes() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz").await, (200, json!({"status": "ok"})));
    assert_eq!(s.get("/readyz").await, (200, json!({"status": "ready"})));
    let (status, v) = s.get("/nope").await;
    assert_eq!(status, 404);
    assert!(v["error"].is_string());
    let resp = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn slo_list_has_the_documented_shape() {
    let s = TestServer::start().await;
    let (status, v) = s.get("/v1/slo").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "auth_magic_link_success_rate",
            "article_read_api_p95",
            "subscribe_checkout_success_rate",
            "publish_article_success_rate"
        ]
    );
    let one = &v[2];
    assert_eq!(one["flow"], "subscribe_checkout");
    assert_eq!(one["objective"], 99.9);
    assert_eq!(one["period"], "30d");
    assert_eq!(one["sli"], json!({"good": 0, "total": 0, "ratio": null}));
    let windows: Vec<&String> = one["burn_rates"].as_object().unwrap().keys().collect();
    for w in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        assert!(windows.iter().any(|k| *k == w), "{w} missing: {one}");
    }
    let rules: Vec<&str> = one["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["fast_burn", "slow_burn", "drift_day", "drift_3day"]);
    assert_eq!(one["alerts"][0]["severity"], "SEV1");
    assert_eq!(one["alerts"][0]["state"], "resolved");
    assert_eq!(one["latency_ms"], Value::Null);

    let (status, v) = s.get("/v1/slo/no_such_slo").await;
    assert_eq!(status, 404);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("subscribe_checkout_success_rate"),
        "lists the known SLOs: {v}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_checkout_outage_fires_fast_burn_within_seconds() {
    let s = TestServer::start().await;
    let now = now_ms();
    // 50 good checkouts over the last 10 minutes, then 20 failures just now: far above 14.4x on
    // both the 1h and 5m windows of a 99.9% SLO.
    let mut entries: Vec<Value> = (0..50)
        .map(|i| checkout(i, now - 600_000 + i as i64 * 10_000, 200, 300.0, "dpl_old"))
        .collect();
    entries.extend((50..70).map(|i| checkout(i, now - 1_000 + i as i64, 500, 2_000.0, "dpl_new")));
    let (status, v) = s.post(VERCEL, serde_json::to_vec(&entries).unwrap()).await;
    assert_eq!((status, v["requests"].as_u64()), (200, Some(70)), "{v}");

    let slo = eventually(|| async {
        let (_, slo) = s.get("/v1/slo/subscribe_checkout_success_rate").await;
        (slo["alerts"][0]["state"] == "firing").then_some(slo)
    })
    .await;
    assert_eq!(slo["sli"]["total"], 70);
    assert_eq!(slo["sli"]["good"], 50);
    let burn_1h = slo["burn_rates"]["1h"].as_f64().unwrap();
    assert!((burn_1h - (20.0 / 70.0) / 0.001).abs() < 1e-6, "{burn_1h}");
    assert_eq!(slo["alerts"][0]["suppressed"], false);
    // slow_burn also trips, and is suppressed by the SEV1 tier.
    assert_eq!(slo["alerts"][1]["state"], "firing", "{slo}");
    assert_eq!(slo["alerts"][1]["suppressed"], true, "{slo}");
    assert!(
        slo["error_budget"]["remaining"].as_f64().unwrap() < 0.0,
        "{slo}"
    );

    let (status, alerts) = s.get("/v1/alerts").await;
    assert_eq!(status, 200);
    let fired: Vec<&Value> = alerts["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["alert"] == "fast_burn")
        .collect();
    assert_eq!(fired.len(), 1, "{alerts}");
    assert_eq!(fired[0]["state"], "firing");

    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"slowburn_alert_firing{slo="subscribe_checkout_success_rate",alert="fast_burn",severity="SEV1"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"slowburn_alert_firing{slo="subscribe_checkout_success_rate",alert="slow_burn",severity="SEV2"} 0"#),
        "suppressed tiers do not count as firing: {metrics}"
    );

    // Flow health: totals, status codes, percentiles, split by deployment.
    let (status, h) = s.get("/v1/flows/subscribe_checkout/health?window=1h").await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(
        (h["total"].as_u64(), h["errors"].as_u64()),
        (Some(70), Some(20)),
        "{h}"
    );
    assert_eq!(h["status_codes"], json!({"200": 50, "500": 20}));
    // HDR histograms keep 2 significant digits: within 1%.
    assert!(
        (h["latency_ms"]["p50"].as_f64().unwrap() - 300.0).abs() <= 3.0,
        "{h}"
    );
    assert!(
        (h["latency_ms"]["p99"].as_f64().unwrap() - 2000.0).abs() < 20.0,
        "{h}"
    );
    let deploys: Vec<(&str, u64, u64)> = h["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deployment_id"].as_str().unwrap(),
                d["total"].as_u64().unwrap(),
                d["errors"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        deploys.contains(&("dpl_old", 50, 0)) && deploys.contains(&("dpl_new", 20, 20)),
        "{h}"
    );
    assert_eq!(h["slos"][0]["name"], "subscribe_checkout_success_rate");
    // A 5-minute window sees the failures and the good checkouts of the last 5 minutes (20, one
    // every 10 s), plus at most one minute bucket more (6): health counts per minute, and a
    // window covers every bucket that overlaps it.
    let (_, h5) = s.get("/v1/flows/subscribe_checkout/health?window=5m").await;
    let total = h5["total"].as_u64().unwrap();
    assert_eq!(h5["errors"].as_u64(), Some(20), "{h5}");
    assert!(
        (40..=46).contains(&total),
        "20 failures and the last 20 to 26 good ones: {h5}"
    );
    s.stop().await;
}

#[tokio::test]
async fn flow_health_rejects_bad_arguments() {
    let s = TestServer::start().await;
    let (status, v) = s.get("/v1/flows/nope/health").await;
    assert_eq!(status, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("article_read"), "{v}");
    let (status, v) = s.get("/v1/flows/article_read/health?window=banana").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("banana"), "{v}");
    let (status, v) = s.get("/v1/flows/article_read/health?window=90d").await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("30d"), "{v}");
    let (status, v) = s.get("/v1/flows/article_read/health").await;
    assert_eq!(
        (status, v["window"].as_str(), v["total"].as_u64()),
        (200, Some("1h"), Some(0)),
        "{v}"
    );
    let (status, v) = s.get("/v1/flows").await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().unwrap().len(), 4);
    s.stop().await;
}
