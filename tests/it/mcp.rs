//! The MCP ops server, driven by rmcp's own client: streamable HTTP on the in-process server and
//! on the real binary (with tokens), and stdio through `slowburn mcp` as a child process (asking
//! a running server, or reading an archive directly).

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientConfig, ReadResourceRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::common::*;

type Client = RunningService<RoleClient, ClientConfig>;

const TOOLS: [&str; 5] = [
    "list_flows",
    "query_flow_health",
    "slo_status",
    "sql_query",
    "triage",
];
const RESOURCES: [&str; 5] = [
    "ops://slo-status",
    "ops://active-incidents",
    "ops://release-health",
    "ops://service-health",
    "ops://runbooks",
];

/// One Vercel request summary entry, plus (for failures) the app's pino error line of the same
/// request, as Vercel delivers them: separate entries sharing `requestId`.
struct Req<'a> {
    n: usize,
    t: i64,
    method: &'a str,
    path: &'a str,
    status: i32,
    latency_ms: f64,
    deployment: &'a str,
}

fn request_entries(r: Req<'_>, error: Option<(&str, String)>) -> Vec<Value> {
    let Req {
        n,
        t,
        method,
        path,
        status,
        latency_ms,
        deployment,
    } = r;
    let rid = format!("iad1::req{n:05}-{t}");
    let mut out = vec![json!({
        "id": format!("{t}{n:08}1"),
        "message": format!("START RequestId: {rid}\n[{method}] {path} status={status}\nEND RequestId: {rid}\nREPORT RequestId: {rid} Duration: {latency_ms} ms Billed Duration: {} ms", latency_ms.ceil()),
        "timestamp": t,
        "requestId": rid,
        "statusCode": status,
        "source": "lambda",
        "projectId": "prj_warrant",
        "projectName": "warrant",
        "deploymentId": deployment,
        "host": "warrant.vercel.app",
        "type": "stdout",
        "level": "info",
        "environment": "production",
        "proxy": {"timestamp": t - 3, "method": method, "path": path, "host": "warrant.example.com",
                  "region": "iad1", "statusCode": status, "userAgent": ["test"], "clientIp": "198.51.100.23"}
    })];
    if let Some((err_type, message)) = error {
        let line = json!({"level": 50, "time": t - 1, "pid": 7, "hostname": "lambda",
            "err": {"type": err_type, "message": message, "stack": format!("{err_type}: {message}\n    at checkout (/var/task/app/api/subscribe/checkout/route.js:42:11)")},
            "msg": "checkout failed"});
        out.push(json!({
            "id": format!("{t}{n:08}2"),
            "message": line.to_string(),
            "timestamp": t,
            "requestId": rid,
            "source": "lambda",
            "projectId": "prj_warrant",
            "deploymentId": deployment,
            "type": "stdout",
            "level": "info"
        }));
    }
    out
}

/// Known traffic: 60 good checkouts on `dpl_good` (50 to 30 minutes ago), then on `dpl_bad` 40
/// checkouts failing with a Stripe timeout and 10 good ones (20 to 1 minutes ago), and 30 article
/// reads.
fn incident_deliveries(now: i64) -> Vec<Vec<u8>> {
    let checkout = |n, t, status, latency_ms, deployment| Req {
        n,
        t,
        method: "POST",
        path: "/api/subscribe/checkout",
        status,
        latency_ms,
        deployment,
    };
    let mut entries = Vec::new();
    let mut n = 0;
    for i in 0..60 {
        n += 1;
        let t = now - 3_000_000 + i * 20_000;
        entries.extend(request_entries(
            checkout(n, t, 200, 420.0, "dpl_good"),
            None,
        ));
    }
    for i in 0..50 {
        n += 1;
        let t = now - 1_200_000 + i * 22_000;
        if i % 5 == 4 {
            entries.extend(request_entries(checkout(n, t, 200, 450.0, "dpl_bad"), None));
        } else {
            let msg = format!(
                "Request req_{:06} to Stripe timed out after 10000 ms",
                7000 + i
            );
            let error = Some(("StripeConnectionError", msg));
            entries.extend(request_entries(
                checkout(n, t, 502, 10012.0, "dpl_bad"),
                error,
            ));
        }
    }
    for i in 0..30 {
        n += 1;
        let path = format!("/api/articles/post-{}", i % 3);
        let read = Req {
            n,
            t: now - 1_500_000 + i * 40_000,
            method: "GET",
            path: &path,
            status: 200,
            latency_ms: 80.0 + (i % 3) as f64 * 100.0,
            deployment: "dpl_bad",
        };
        entries.extend(request_entries(read, None));
    }
    entries
        .chunks(100)
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect()
}

async fn seeded_server() -> TestServer {
    let s = TestServer::start().await;
    for body in incident_deliveries(now_ms()) {
        let (status, v) = s.post("/v1/drains/vercel", body).await;
        assert_eq!(status, 200, "{v}");
    }
    // The evaluator runs after each ingest: wait for the fast burn to fire.
    eventually(|| async {
        let (_, slo) = s.get("/v1/slo/subscribe_checkout_success_rate").await;
        slo["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "fast_burn" && a["state"] == "firing")
            .then_some(())
    })
    .await;
    s
}

async fn http_client(base: &str, token: Option<&str>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"));
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    ClientConfig::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP initialize over HTTP")
}

async fn stdio_client(args: &[&str]) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_slowburn"));
    cmd.current_dir(repo_root())
        .arg("mcp")
        .args(args)
        .env("SLOWBURN_LOG", "warn");
    let transport = TokioChildProcess::new(cmd).expect("spawn slowburn mcp");
    ClientConfig::default()
        .serve(transport)
        .await
        .expect("MCP initialize over stdio")
}

async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let result = client.call_tool(params).await.expect("a tool result");
    serde_json::to_value(result).unwrap()
}

/// A successful tool result's structured content (and its text summary is present).
async fn call_ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args.clone()).await;
    assert_ne!(r["isError"], true, "{tool}({args}): {r}");
    assert!(
        r["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{tool}: a text summary first: {r}"
    );
    r["structuredContent"].clone()
}

/// An `isError` tool result's message.
async fn call_err(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert_eq!(r["isError"], true, "{tool}({args}) should fail: {r}");
    r["content"][0]["text"].as_str().unwrap().to_owned()
}

async fn read(client: &Client, uri: &str) -> Value {
    let r = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    let r = serde_json::to_value(r).unwrap();
    let text = r["contents"][0]["text"].as_str().unwrap();
    if r["contents"][0]["mimeType"] == "application/json" {
        serde_json::from_str(text).unwrap()
    } else {
        Value::String(text.to_owned())
    }
}

/// Tools, resources and their answers on the seeded incident, through any transport.
async fn check_ops_server(client: &Client, with_live_state: bool) {
    let info = serde_json::to_value(client.peer_info().unwrap().as_ref()).unwrap();
    assert_eq!(info["serverInfo"]["name"], "slowburn", "{info}");
    assert!(
        info["capabilities"]["tools"].is_object() && info["capabilities"]["resources"].is_object()
    );

    let tools = serde_json::to_value(client.list_all_tools().await.unwrap()).unwrap();
    let mut names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, TOOLS);
    for t in tools.as_array().unwrap() {
        let a = &t["annotations"];
        assert_eq!(
            (
                &a["readOnlyHint"],
                &a["destructiveHint"],
                &a["idempotentHint"],
                &a["openWorldHint"]
            ),
            (&json!(true), &json!(false), &json!(true), &json!(false)),
            "every annotation explicit: {t}"
        );
        assert!(t["description"].as_str().unwrap().len() > 40, "{t}");
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let resources = serde_json::to_value(client.list_all_resources().await.unwrap()).unwrap();
    let uris: Vec<&str> = resources
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    for r in RESOURCES {
        assert!(uris.contains(&r), "{r} listed: {uris:?}");
    }
    assert!(
        uris.contains(&"ops://runbooks/subscribe_checkout_success_rate"),
        "{uris:?}"
    );

    // list_flows
    let flows = call_ok(client, "list_flows", json!({})).await;
    let checkout = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "subscribe_checkout")
        .unwrap();
    assert_eq!(checkout["matchers"], "POST /api/subscribe/checkout");
    assert_eq!(checkout["slos"], "subscribe_checkout_success_rate");

    // query_flow_health: the numbers of the seeded traffic.
    let h = call_ok(
        client,
        "query_flow_health",
        json!({"flow": "subscribe_checkout", "window": "1h"}),
    )
    .await;
    assert_eq!(
        (h["requests"].as_i64(), h["errors"].as_i64()),
        (Some(110), Some(40)),
        "{h}"
    );
    let statuses: Vec<(String, i64)> = h["status_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["status"].as_str().unwrap().to_owned(),
                s["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("200".to_owned(), 70), ("502".to_owned(), 40)]);
    let deploys: Vec<(&str, i64, i64)> = h["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deployment_id"].as_str().unwrap(),
                d["requests"].as_i64().unwrap(),
                d["errors"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(deploys, [("dpl_good", 60, 0), ("dpl_bad", 50, 40)]);
    assert!(h["latency_ms"]["p99"].as_f64().unwrap() > 9000.0, "{h}");
    assert_eq!(h["slos"][0]["name"], "subscribe_checkout_success_rate");
    let h5 = call_ok(
        client,
        "query_flow_health",
        json!({"flow": "subscribe_checkout", "window": "5m"}),
    )
    .await;
    assert!(
        h5["requests"].as_i64().unwrap() < 20,
        "a shorter window counts less: {h5}"
    );

    // slo_status
    let s = call_ok(
        client,
        "slo_status",
        json!({"name": "subscribe_checkout_success_rate"}),
    )
    .await;
    let slo = &s["slos"][0];
    assert_eq!(slo["total"].as_i64(), Some(110), "{slo}");
    assert_eq!(slo["good"].as_i64(), Some(70));
    if with_live_state {
        assert_eq!(slo["worst_severity"], "SEV1", "{slo}");
        assert!(slo["firing_alerts"].as_str().unwrap().contains("fast_burn"));
    }
    let all = call_ok(client, "slo_status", json!({})).await;
    assert_eq!(all["slos"].as_array().unwrap().len(), 4);

    // triage: the error signature, normalized, with its first deployment and sample requests.
    let t = call_ok(
        client,
        "triage",
        json!({"slo": "subscribe_checkout_success_rate", "window": "1h"}),
    )
    .await;
    assert_eq!(t["flow"], "subscribe_checkout");
    let sig = &t["error_signatures"][0];
    assert_eq!(sig["err_type"], "StripeConnectionError", "{t}");
    assert_eq!(
        sig["signature"], "Request req_<n> to Stripe timed out after <n> ms",
        "{t}"
    );
    assert_eq!(sig["occurrences"].as_i64(), Some(40));
    assert_eq!(sig["first_deployment"], "dpl_bad");
    let samples = sig["sample_request_ids"].as_array().unwrap();
    assert!(
        !samples.is_empty()
            && samples
                .iter()
                .all(|r| r.as_str().unwrap().starts_with("iad1::req")),
        "{sig}"
    );
    assert_eq!(t["failing_requests"][0]["status"], "502");
    let timeline: Vec<&str> = t["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deployment_id"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["dpl_good", "dpl_bad"]);
    assert_eq!(t["slowest_routes"][0]["path"], "/api/subscribe/checkout");
    let by_flow = call_ok(client, "triage", json!({"flow": "subscribe_checkout"})).await;
    assert_eq!(by_flow["error_signatures"], t["error_signatures"]);

    // sql_query, paginated.
    let q = call_ok(client, "sql_query", json!({"sql": "SELECT deployment_id, count(*) AS n FROM requests WHERE flow = 'subscribe_checkout' GROUP BY 1 ORDER BY 1", "limit": 1})).await;
    assert_eq!(q["columns"], json!(["deployment_id", "n"]));
    assert_eq!(q["rows"], json!([["dpl_bad", 50]]));
    assert_eq!(q["next_offset"], 1);
    let q2 = call_ok(client, "sql_query", json!({"sql": "SELECT deployment_id, count(*) AS n FROM requests WHERE flow = 'subscribe_checkout' GROUP BY 1 ORDER BY 1", "limit": 1, "offset": 1})).await;
    assert_eq!(q2["rows"], json!([["dpl_good", 60]]));
    assert_eq!(q2["next_offset"], Value::Null);

    // Bad arguments: isError results that say how to fix the call.
    let e = call_err(client, "query_flow_health", json!({"flow": "checkout"})).await;
    assert!(
        e.contains("unknown flow `checkout`") && e.contains("subscribe_checkout"),
        "{e}"
    );
    let e = call_err(
        client,
        "query_flow_health",
        json!({"flow": "subscribe_checkout", "window": "soon"}),
    )
    .await;
    assert!(e.contains("window") && e.contains("\"5m\""), "{e}");
    let e = call_err(
        client,
        "query_flow_health",
        json!({"flow": "subscribe_checkout", "window": "90d"}),
    )
    .await;
    assert!(e.contains("between 1m and 30d"), "{e}");
    let e = call_err(client, "triage", json!({})).await;
    assert!(e.contains("pass `slo`"), "{e}");
    let e = call_err(client, "triage", json!({"slo": "nope"})).await;
    assert!(
        e.contains("unknown SLO `nope`") && e.contains("subscribe_checkout_success_rate"),
        "{e}"
    );
    let e = call_err(client, "slo_status", json!({"name": "nope"})).await;
    assert!(e.contains("unknown SLO"), "{e}");
    let e = call_err(client, "sql_query", json!({"sql": "SELEC 1"})).await;
    assert!(e.to_lowercase().contains("sql"), "{e}");
    let e = call_err(client, "sql_query", json!({"sql": "SELECT nope FROM logs"})).await;
    assert!(e.contains("nope"), "{e}");
    let e = call_err(client, "sql_query", json!({"sql": "DROP TABLE logs"})).await;
    assert!(e.contains("read-only"), "{e}");
    let e = call_err(client, "query_flow_health", json!({"window": "1h"})).await;
    assert!(e.contains("flow"), "a missing argument is named: {e}");
    let e = call_err(
        client,
        "query_flow_health",
        json!({"flow": "subscribe_checkout", "windw": "1h"}),
    )
    .await;
    assert!(e.contains("windw"), "an unknown argument is named: {e}");
    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    // Resources.
    let status = read(client, "ops://slo-status").await;
    assert_eq!(status["slos"].as_array().unwrap().len(), 4);
    let release = read(client, "ops://release-health").await;
    let deployments = release["deployments"].as_array().unwrap();
    let bad = deployments
        .iter()
        .find(|d| d["deployment_id"] == "dpl_bad")
        .unwrap();
    let good = deployments
        .iter()
        .find(|d| d["deployment_id"] == "dpl_good")
        .unwrap();
    assert_eq!(
        (
            good["rollback_candidate"].as_bool(),
            bad["rollback_candidate"].as_bool()
        ),
        (Some(false), Some(true)),
        "{release}"
    );
    let bad_checkout = bad["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow"] == "subscribe_checkout")
        .unwrap();
    assert_eq!(bad_checkout["previous"]["deployment_id"], "dpl_good");
    let service = read(client, "ops://service-health").await;
    let lambda = service["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "lambda")
        .unwrap();
    assert!(
        lambda["last_event_age_secs"].as_i64().is_some(),
        "{service}"
    );
    assert_eq!(
        service["flows"].as_array().unwrap().len(),
        4,
        "every flow, traffic or not: {service}"
    );
    let runbooks = read(client, "ops://runbooks").await;
    let rb = runbooks["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "subscribe_checkout_success_rate")
        .unwrap();
    assert!(!rb["verification"].as_array().unwrap().is_empty(), "{rb}");
    let text = read(client, "ops://runbooks/subscribe_checkout_success_rate").await;
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("# subscribe_checkout_success_rate")
    );
    let incidents = read(client, "ops://active-incidents").await;
    if with_live_state {
        let i = &incidents["incidents"][0];
        assert_eq!(
            (&i["slo"], &i["rule"], &i["severity"]),
            (
                &json!("subscribe_checkout_success_rate"),
                &json!("fast_burn"),
                &json!("SEV1")
            ),
            "{incidents}"
        );
        assert!(i["age_secs"].as_i64().unwrap() >= 0);
        assert_eq!(
            i["top_error_signature"]["err_type"], "StripeConnectionError",
            "{incidents}"
        );
        assert!(
            !incidents["incidents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["rule"] == "slow_burn"),
            "suppressed tiers are not incidents: {incidents}"
        );
    }
    let missing = client
        .read_resource(ReadResourceRequestParams::new("ops://nope"))
        .await;
    assert!(missing.is_err(), "unknown resource is a protocol error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_transport_serves_every_tool_and_resource() {
    let s = seeded_server().await;
    let client = http_client(&s.base, None).await;
    check_ops_server(&client, true).await;
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_transport_asks_a_running_server() {
    let s = seeded_server().await;
    let client = stdio_client(&["--server", &s.base]).await;
    check_ops_server(&client, true).await;
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_transport_reads_an_archive_directly() {
    let s = seeded_server().await;
    let archive = s.state.archive().unwrap().clone();
    eventually(|| {
        let a = archive.clone();
        async move { (a.pending_segments() == 0).then_some(()) }
    })
    .await;
    let url = format!("file://{}", s.data_dir().join("archive").display());
    let client = stdio_client(&["--archive", &url, "--slo-defs", "slo-defs"]).await;
    // The archive holds the same rows; SLO state is rebuilt from its request records.
    check_ops_server(&client, false).await;
    client.cancel().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn stdio_without_a_server_says_how_to_fix_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = stdio_client(&["--server", &dead]).await;
    let e = call_err(&client, "list_flows", json!({})).await;
    assert!(
        e.contains("cannot reach slowburn") && e.contains("--server"),
        "{e}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_needs_a_token_with_read_scope_and_logs_the_caller() {
    let data = tempfile::tempdir().unwrap();
    let reader = "reader-token-0123456789abcdef";
    let writer = "writer-token-0123456789abcdef";
    let server = ChildServer::spawn(
        data.path(),
        "[mcp.tokens.ci-bot]\ntoken = \"${CI_TOKEN}\"\nscopes = [\"write\"]\n",
        &[
            ("SLOWBURN_MCP_TOKENS", format!("claude:{reader}")),
            ("CI_TOKEN", writer.to_owned()),
            ("SLOWBURN_LOG", "info".to_owned()),
        ],
    );
    server.wait_ready().await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |token: Option<&str>| {
        let mut r = server
            .client
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let resp = post(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let (_, v) = json_of(resp).await;
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{v}"
    );
    assert_eq!(
        post(Some("wrong-token-0000000000000"))
            .await
            .unwrap()
            .status(),
        401
    );
    let resp = post(Some(writer)).await.unwrap();
    assert_eq!(resp.status(), 403);
    let (_, v) = json_of(resp).await;
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("`ci-bot` lacks the `read` scope"),
        "{v}"
    );
    // /v1/sql shares the tokens.
    let sql = server
        .client
        .post(server.url("/v1/sql"))
        .json(&json!({"sql": "SELECT 1"}));
    assert_eq!(sql.send().await.unwrap().status(), 401);
    let sql = server
        .client
        .post(server.url("/v1/sql"))
        .bearer_auth(reader)
        .json(&json!({"sql": "SELECT 1"}));
    assert_eq!(sql.send().await.unwrap().status(), 200);

    // A session ends with DELETE: 204, as the official clients expect, and it is gone.
    let resp = post(Some(reader)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let session = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let deleted = server
        .client
        .delete(server.url("/mcp"))
        .bearer_auth(reader)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let after = server
        .client
        .post(server.url("/mcp"))
        .bearer_auth(reader)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404, "a terminated session must be unknown");

    let client = http_client(&server.base, Some(reader)).await;
    let flows = call_ok(&client, "list_flows", json!({})).await;
    assert_eq!(flows["flows"].as_array().unwrap().len(), 4);
    let _ = call(&client, "query_flow_health", json!({"flow": "nope"})).await;
    client.cancel().await.unwrap();
    let log = eventually_for(Duration::from_secs(5), || async {
        let log = server.log();
        (log.contains("mcp tool call failed") && log.contains("caller=claude")).then_some(log)
    })
    .await;
    assert!(
        log.contains("tool=\"list_flows\"") || log.contains("tool=list_flows"),
        "{log}"
    );
    assert!(
        log.contains("/mcp and /v1/sql require a bearer token"),
        "{log}"
    );
    server.terminate();
}

#[test]
fn without_tokens_mcp_is_refused_beyond_loopback() {
    use slowburn_mcp::AuthPolicy;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = slowburn::config::Settings::for_tests(dir.path());
    assert!(matches!(
        slowburn::server::auth_policy(&settings),
        AuthPolicy::LoopbackOpen
    ));
    // Not bound: only the policy for such an address is computed.
    settings.listen = "10.1.2.3:7070".parse().unwrap();
    let policy = slowburn::server::auth_policy(&settings);
    assert!(matches!(policy, AuthPolicy::Refuse));
    let refused = slowburn_mcp::auth::authenticate(&policy, Some("Bearer x")).unwrap_err();
    assert_eq!(refused.status(), 403);
    assert!(refused.to_string().contains("SLOWBURN_MCP_TOKENS"));
}
