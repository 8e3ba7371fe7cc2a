//! SQL over archived and live data: golden queries (`tests/sql/*.sql` with their `.result`),
//! checked with every row live, half archived and all archived; pruning; every limit; every
//! rejected statement kind; the output formats; `slowburn sql` on an archive.
//!
//! `UPDATE_GOLDEN=1 cargo test --release --test it sql::` rewrites the `.result` files.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use slowburn_bench::Generator;

use crate::common::*;

/// 2026-11-30T10:00:00Z: the generated traffic starts here (fixed, so results are fixed).
const T0: i64 = 1_796_032_800_000;

fn golden_dir() -> PathBuf {
    repo_root().join("tests/sql")
}

/// Three failing checkouts on `dpl_7`, each a Vercel summary plus the app's pino error line.
fn stripe_incident() -> Vec<u8> {
    let mut entries = Vec::new();
    for i in 0..3i64 {
        let t = T0 + 600_000 + i * 60_000;
        let rid = format!("iad1::stripe-{i}");
        entries.push(json!({
            "id": format!("9{t}{i}1"), "timestamp": t, "requestId": rid, "statusCode": 502,
            "message": format!("START RequestId: {rid}\n[POST] /api/subscribe/checkout status=502\nEND RequestId: {rid}\nREPORT RequestId: {rid} Duration: 10012.0 ms Billed Duration: 10013 ms"),
            "source": "lambda", "projectId": "prj_warrant", "deploymentId": "dpl_7", "type": "stdout", "level": "info",
            "proxy": {"timestamp": t, "method": "POST", "path": "/api/subscribe/checkout", "host": "warrant.example.com",
                      "region": "iad1", "statusCode": 502, "clientIp": "198.51.100.23"}
        }));
        let line = json!({"level": 50, "time": t - 1, "pid": 7, "hostname": "lambda",
            "err": {"type": "StripeConnectionError", "message": format!("Request req_{i}00 to Stripe timed out after 10000 ms")},
            "msg": "checkout failed for jane.doe@example.com"});
        entries.push(json!({
            "id": format!("9{t}{i}2"), "timestamp": t, "requestId": rid, "message": line.to_string(),
            "source": "lambda", "projectId": "prj_warrant", "deploymentId": "dpl_7", "type": "stdout", "level": "info"
        }));
    }
    serde_json::to_vec(&entries).unwrap()
}

/// The golden data in two halves: (fixtures, generated traffic) and (more traffic, the Stripe
/// incident); the pino fixture is posted with the second half.
fn golden_bodies() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut g = Generator::new(3, T0);
    g.step_ms = 1000;
    g.error_ratio = 0.05;
    g.deployment_id = "dpl_6".into();
    let mut a: Vec<Vec<u8>> = vercel_fixtures().into_iter().map(|(_, b)| b).collect();
    a.push(g.delivery_json(250));
    a.push(g.delivery_ndjson(250));
    g.deployment_id = "dpl_7".into();
    let b = vec![
        g.delivery_json(250),
        g.delivery_ndjson(250),
        stripe_incident(),
    ];
    (a, b)
}

/// A query's answer as text: `columns`, then one line per row of JSON values; or the error.
async fn render(s: &TestServer, sql: &str) -> String {
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    if status != 200 {
        return format!("ERROR {status}: {}\n", v["error"].as_str().unwrap_or("?"));
    }
    let mut out = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ");
    out.push('\n');
    for row in v["rows"].as_array().unwrap() {
        let cells: Vec<String> = row
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    if v["truncated"] == true {
        out.push_str("(truncated)\n");
    }
    out
}

/// Runs every golden query; returns the mismatches (or rewrites the files).
async fn check_goldens(s: &TestServer, phase: &str) -> Vec<String> {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "golden queries found: {}", files.len());
    for sql_path in files {
        let sql = std::fs::read_to_string(&sql_path).unwrap();
        let got = render(s, &sql).await;
        let result_path = sql_path.with_extension("result");
        if update {
            std::fs::write(&result_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&result_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{phase}: {} differs\n--- want\n{want}--- got\n{got}",
                sql_path.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    failures
}

async fn flush(s: &TestServer) {
    let archive = s.state.archive().unwrap();
    archive.flush().await.unwrap();
    assert_eq!(archive.pending_segments(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_queries_give_one_answer_before_during_and_after_a_flush() {
    let s = TestServer::start_with(|s| {
        // Flushes happen when the test says; the 2024 fixtures outlive the retention pass.
        s.archive.flush_interval = Duration::from_secs(3600);
        s.archive.retention = Duration::from_secs(100 * 365 * 86_400);
    })
    .await;
    let (a, b) = golden_bodies();
    for body in a.iter().chain(&b) {
        let (status, v) = s.post("/v1/drains/vercel", body.clone()).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, _) = s
        .post("/v1/logs/pino?service=warrant", pino_fixture())
        .await;
    assert_eq!(status, 200);
    let mut failures = check_goldens(&s, "all rows live").await;
    s.stop().await;

    // Again on a fresh server: half archived, half live; then all archived.
    let s = TestServer::start_with(|s| {
        s.archive.flush_interval = Duration::from_secs(3600);
        s.archive.retention = Duration::from_secs(100 * 365 * 86_400);
    })
    .await;
    for body in &a {
        assert_eq!(s.post("/v1/drains/vercel", body.clone()).await.0, 200);
    }
    flush(&s).await;
    for body in &b {
        assert_eq!(s.post("/v1/drains/vercel", body.clone()).await.0, 200);
    }
    assert_eq!(
        s.post("/v1/logs/pino?service=warrant", pino_fixture())
            .await
            .0,
        200
    );
    failures.extend(check_goldens(&s, "half archived").await);
    flush(&s).await;
    failures.extend(check_goldens(&s, "all archived").await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    s.stop().await;
}

async fn post_sql(s: &TestServer, body: Value) -> (u16, Value) {
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_predicates_prune_partitions_and_row_groups() {
    let s = TestServer::start_with(|s| {
        s.archive.flush_interval = Duration::from_secs(3600);
        s.archive.retention = Duration::from_secs(100 * 365 * 86_400);
        s.archive.row_group_rows = 100;
    })
    .await;
    let (a, b) = golden_bodies();
    for body in a.iter().chain(&b) {
        assert_eq!(s.post("/v1/drains/vercel", body.clone()).await.0, 200);
    }
    flush(&s).await;
    let plan = |sql: &'static str| {
        let s = &s;
        async move {
            let (status, v) = post_sql(s, json!({ "sql": sql })).await;
            assert_eq!(status, 200, "{v}");
            v["rows"].to_string()
        }
    };
    let all = plan("EXPLAIN SELECT count(*) FROM logs").await;
    assert!(all.contains("date=2024-01-27"), "{all}");
    let bounded = plan(
        "EXPLAIN SELECT count(*) FROM logs WHERE event_time >= TIMESTAMP '2026-11-30T10:00:00Z'",
    )
    .await;
    assert!(
        !bounded.contains("date=2024"),
        "old partitions pruned: {bounded}"
    );
    assert!(bounded.contains("date=2026-11-30/hour=10"), "{bounded}");
    // Within the hour, row groups (100 rows each here) are pruned by their statistics.
    let analyzed = plan(
        "EXPLAIN ANALYZE SELECT count(*) FROM logs WHERE event_time >= TIMESTAMP '2026-11-30T10:15:00Z' AND event_time < TIMESTAMP '2026-11-30T10:16:00Z'",
    )
    .await;
    let pruned: u64 = analyzed
        .split("row_groups_pruned_statistics=")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .find(|x| !x.is_empty())?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(pruned > 0, "row groups pruned: {analyzed}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_answers_with_a_clear_status() {
    let s = TestServer::start_with(|s| {
        s.query.max_rows = 50;
        s.query.timeout = Duration::from_millis(300);
        s.query.memory_limit_bytes = 1 << 20;
        s.query.max_concurrent = 1;
        s.query.max_request_bytes = 4096;
    })
    .await;
    let mut g = Generator::new(5, now_ms() - 600_000);
    for _ in 0..4 {
        assert_eq!(
            s.post("/v1/drains/vercel", g.delivery_json(500)).await.0,
            200
        );
    }
    // Row cap: truncated, and a caller's max_rows may lower it but not raise it.
    let (status, v) = post_sql(&s, json!({"sql": "SELECT log_id FROM logs"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        (v["rows"].as_array().unwrap().len(), &v["truncated"]),
        (50, &json!(true))
    );
    let (_, v) = post_sql(&s, json!({"sql": "SELECT log_id FROM logs", "max_rows": 7})).await;
    assert_eq!(
        (v["rows"].as_array().unwrap().len(), &v["truncated"]),
        (7, &json!(true))
    );
    let (_, v) = post_sql(
        &s,
        json!({"sql": "SELECT log_id FROM logs", "max_rows": 5000}),
    )
    .await;
    assert_eq!(v["rows"].as_array().unwrap().len(), 50);
    let (_, v) = post_sql(&s, json!({"sql": "SELECT count(*) FROM logs"})).await;
    assert_eq!(
        (v["rows"][0][0].as_i64(), &v["truncated"]),
        (Some(2000), &json!(false))
    );

    // Timeout.
    let (status, v) = post_sql(
        &s,
        json!({"sql": "SELECT count(*) FROM generate_series(1, 100000000000)"}),
    )
    .await;
    assert_eq!(status, 408, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("time limit of 0.3 s"),
        "{v}"
    );

    // Memory: an aggregation that cannot spill fails cleanly.
    let (status, v) = post_sql(&s, json!({"sql": "SELECT array_agg(attributes) FROM logs CROSS JOIN (SELECT * FROM generate_series(1, 20))"})).await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("memory limit"), "{v}");

    // Concurrency: the second query while one runs gets 429 with Retry-After.
    let slow = {
        let (client, url) = (s.client.clone(), s.url("/v1/sql"));
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"sql": "SELECT count(*) FROM generate_series(1, 100000000000)"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(slow.await.unwrap(), 408);

    // Request shape.
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("{\"sql\""), "{v}");
    let (status, v) = post_sql(&s, json!({"sql": "   "})).await;
    assert_eq!(
        (status, v["error"].as_str().unwrap()),
        (400, "`sql` is empty")
    );
    let (status, v) = post_sql(&s, json!({"sql": "SELECT 1", "limit": 3})).await;
    assert_eq!(status, 400, "unknown fields are named: {v}");
    assert!(v["error"].as_str().unwrap().contains("limit"), "{v}");
    // Over the (here 4 KiB) request cap; small enough to be sent whole before the 413 comes
    // back (a body still in flight would meet a closed connection instead of the answer).
    let huge = format!("SELECT '{}'", "x".repeat(5000));
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .json(&json!({"sql": huge}))
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("4096 bytes"), "{v}");
    let resp = s
        .client
        .post(s.url("/v1/sql?format=xml"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_arrow_stream_answers() {
    let s = TestServer::start().await;
    let mut g = Generator::new(9, now_ms() - 600_000);
    assert_eq!(
        s.post("/v1/drains/vercel", g.delivery_json(100)).await.0,
        200
    );
    let sql = json!({"sql": "SELECT origin, count(*) AS n FROM logs GROUP BY origin"});
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .header("accept", "text/csv")
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(resp.text().await.unwrap(), "origin,n\nvercel,100\n");
    let resp = s
        .client
        .post(s.url("/v1/sql"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&sql)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-slowburn-truncated"], "false");
    let bytes = resp.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(batches[0].schema().field(1).name(), "n");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowburn_sql_reads_an_archive_without_a_server() {
    let s = TestServer::start_with(|s| {
        s.archive.retention = Duration::from_secs(100 * 365 * 86_400);
    })
    .await;
    let (a, _) = golden_bodies();
    for body in &a {
        assert_eq!(s.post("/v1/drains/vercel", body.clone()).await.0, 200);
    }
    flush(&s).await;
    let archive = format!("file://{}", s.data_dir().join("archive").display());
    let run = |format: &str, sql: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_slowburn"))
            .args(["sql", "--archive", &archive, "--format", format, sql])
            .output()
            .unwrap()
    };
    let out = run(
        "json",
        "SELECT origin, count(*) AS n FROM logs GROUP BY origin",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = s.sql_count("SELECT count(*) FROM logs").await;
    assert_eq!(v["rows"][0][1].as_i64(), Some(expected));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Parquet only"),
        "says what it reads: {stderr}"
    );
    let out = run("csv", "SELECT count(*) AS n FROM requests");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "n\n{}\n",
            s.sql_count("SELECT count(*) FROM requests").await
        )
    );
    let out = run("table", "SELECT count(*) AS n FROM requests");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("| n "),
        "{out:?}"
    );
    let out = run("json", "SELECT * FROM slo_status");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exist only on a running server"),
        "{stderr}"
    );
    let out = run("json", "DELETE FROM logs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slowburn"))
        .args([
            "sql",
            "--archive",
            "file:///nonexistent/slowburn",
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    s.stop().await;
}
