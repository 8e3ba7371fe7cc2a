//! The ingest endpoints over real HTTP.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{Value, json};
use slowburn_bench::{Generator, SynthRequest, gzip, lambda_entry};

use crate::common::*;

const VERCEL: &str = "/v1/drains/vercel";
const PINO: &str = "/v1/logs/pino";

fn entry(id: &str, t: i64, method: &str, path: &str, status: i64) -> Value {
    json!({
        "id": id, "timestamp": t, "source": "lambda", "projectId": "prj_test", "deploymentId": "dpl_a",
        "requestId": format!("req-{id}"), "statusCode": status,
        "proxy": {"timestamp": t, "method": method, "path": path, "statusCode": status, "host": "warrant.example.com"},
    })
}

fn array(entries: &[Value]) -> Vec<u8> {
    serde_json::to_vec(entries).unwrap()
}

fn ndjson(entries: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(serde_json::to_vec(e).unwrap());
        out.extend(b"\n\n");
    }
    out
}

#[tokio::test]
async fn every_real_fixture_is_accepted_and_redelivery_is_counted_once() {
    let s = TestServer::start().await;
    let mut accepted = 0;
    let mut duplicates = 0;
    let mut sent = 0;
    for (name, body) in vercel_fixtures() {
        let n = serde_json::from_slice::<Vec<Value>>(&body).unwrap().len();
        sent += n;
        let (status, resp) = s.post(VERCEL, body).await;
        assert_eq!(status, 200, "{name}: {resp}");
        assert_eq!(resp["rejected"], 0, "{name}: {resp}");
        assert_eq!(
            resp["accepted"].as_u64().unwrap() + resp["duplicates"].as_u64().unwrap(),
            n as u64,
            "{name}: {resp}"
        );
        accepted += resp["accepted"].as_u64().unwrap();
        duplicates += resp["duplicates"].as_u64().unwrap();
    }
    assert_eq!(sent, 17);
    // sample_5 and sample_6 are the same delivered entry (same id), and so are one entry of
    // sample_1 and Vercel's test_lambda sample.
    assert_eq!((accepted, duplicates), (15, 2));
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(
            r#"slowburn_ingest_entries_total{endpoint="/v1/drains/vercel",outcome="accepted"} 15"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"slowburn_ingest_entries_total{endpoint="/v1/drains/vercel",outcome="duplicate"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("slowburn_http_request_duration_seconds_bucket{"),
        "{metrics}"
    );

    // Redelivering everything stores nothing new.
    let rows = s.log_rows().await;
    for (name, body) in vercel_fixtures() {
        let (status, resp) = s.post(VERCEL, body).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(resp["accepted"], 0, "{name}: {resp}");
        assert_eq!(resp["requests"], 0, "{name}: {resp}");
    }
    assert_eq!(s.log_rows().await, rows);
    s.stop().await;
}

#[tokio::test]
async fn json_array_ndjson_and_gzip_are_equivalent() {
    let s = TestServer::start().await;
    let t = now_ms();
    let a: Vec<Value> = (0..5)
        .map(|i| entry(&format!("a{i}"), t, "GET", "/api/articles/x", 200))
        .collect();
    let b: Vec<Value> = (0..5)
        .map(|i| entry(&format!("b{i}"), t, "GET", "/api/articles/x", 200))
        .collect();
    let c: Vec<Value> = (0..5)
        .map(|i| entry(&format!("c{i}"), t, "GET", "/api/articles/x", 200))
        .collect();
    // Content-Type is only a hint: NDJSON labelled application/json still works.
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("content-type", "application/json")
        .body(ndjson(&b))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
    let (status, body) = s.post(VERCEL, array(&a)).await;
    assert_eq!(
        (status, body["accepted"].as_u64(), body["requests"].as_u64()),
        (200, Some(5), Some(5)),
        "{body}"
    );
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("content-encoding", "gzip")
        .body(gzip(&array(&c)))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
    // Leading whitespace before the array.
    let mut padded = b"\n  \r\n".to_vec();
    padded.extend(array(&[entry("d0", t, "GET", "/api/articles/x", 200)]));
    let (status, body) = s.post(VERCEL, padded).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (_, slo) = s.get("/v1/slo/article_read_api_p95").await;
    assert_eq!(
        slo["sli"]["total"], 0,
        "no latency on these entries, so no latency SLI events: {slo}"
    );
    assert_eq!(s.log_rows().await, 16);
    s.stop().await;
}

#[tokio::test]
async fn bad_encodings_are_named() {
    let s = TestServer::start().await;
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("content-encoding", "br")
        .body("[]")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 415, "{body}");
    assert!(body["error"].as_str().unwrap().contains("`br`"), "{body}");
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("content-encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("gzip"), "{body}");
    let (status, body) = s.post(VERCEL, vec![b'[', 0xff, 0xfe, b']']).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("UTF-8"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn signatures_are_checked_and_a_rejected_body_stores_nothing() {
    let secret = "drain-secret-123";
    let s = TestServer::start_with(|c| c.ingest.vercel_drain_secret = Some(secret.into())).await;
    let body = array(&[entry(
        "s1",
        now_ms(),
        "POST",
        "/api/subscribe/checkout",
        200,
    )]);

    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("x-vercel-signature", "00".repeat(20))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!((status, v), (403, json!({"error": "invalid signature"})));
    let resp = s
        .client
        .post(s.url(VERCEL))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 403);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("missing x-vercel-signature"),
        "{v}"
    );
    assert_eq!(s.log_rows().await, 0);

    // The same entry, properly signed, is accepted (the rejected attempts were not remembered).
    let sig = slowburn_ingest::sign_vercel(secret.as_bytes(), &body);
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("x-vercel-signature", &sig)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(
        (status, v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (200, Some(1), Some(0)),
        "{v}"
    );

    // gzip: the signature may cover the compressed bytes or the decompressed ones.
    let body2 = array(&[entry(
        "s2",
        now_ms(),
        "POST",
        "/api/subscribe/checkout",
        200,
    )]);
    let gz = gzip(&body2);
    for signed in [&gz, &body2] {
        let sig = slowburn_ingest::sign_vercel(secret.as_bytes(), signed);
        let resp = s
            .client
            .post(s.url(VERCEL))
            .header("content-encoding", "gzip")
            .header("x-vercel-signature", sig)
            .body(gz.clone())
            .send()
            .await
            .unwrap();
        let (status, v) = json_of(resp).await;
        assert_eq!(status, 200, "{v}");
    }
    // Uppercase hex is not what Vercel sends, but a signature of another secret must fail.
    let wrong = slowburn_ingest::sign_vercel(b"other", &body2);
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("x-vercel-signature", wrong)
        .body(body2)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // Vercel's unsigned verification/test pings: 200, nothing stored.
    for ping in ["", "{}", "[]", " [ ] "] {
        let (status, v) = s.post(VERCEL, ping.to_owned()).await;
        assert_eq!(
            (status, v["accepted"].as_u64()),
            (200, Some(0)),
            "ping {ping:?}: {v}"
        );
    }
    assert_eq!(s.log_rows().await, 2);
    let metrics = s.metrics().await;
    assert!(metrics.contains(r#"slowburn_http_request_duration_seconds_count{endpoint="/v1/drains/vercel",status="403"} 3"#), "{metrics}");
    s.stop().await;
}

#[tokio::test]
async fn verify_code_is_on_every_response() {
    let s =
        TestServer::start_with(|c| c.ingest.vercel_verify_code = Some("verify-abc".into())).await;
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let resp = s
            .client
            .request(method.clone(), s.url(VERCEL))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{method}");
        assert_eq!(resp.headers()["x-vercel-verify"], "verify-abc", "{method}");
    }
    let resp = s
        .client
        .post(s.url(VERCEL))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-vercel-verify"], "verify-abc");
    let resp = s
        .client
        .post(s.url(VERCEL))
        .body("[{\"id\":1}]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.headers()["x-vercel-verify"], "verify-abc");
    s.stop().await;
}

#[tokio::test]
async fn partial_batches_keep_the_valid_entries_and_list_the_rest() {
    let s = TestServer::start().await;
    let t = now_ms();
    let mut entries = vec![entry("p0", t, "GET", "/api/articles/a", 200)];
    entries.push(json!({"id": "p1", "timestamp": t, "source": "lambda"})); // no projectId
    entries.push(
        json!({"id": "p2", "timestamp": "yesterday", "source": "lambda", "projectId": "prj"}),
    );
    let mut wrong_types = entry("p3", t, "GET", "/api/articles/b", 200);
    wrong_types["region"] = json!(42);
    wrong_types["environment"] = json!(null);
    wrong_types["host"] = json!("");
    wrong_types["somethingNew"] = json!({"nested": [1, 2]});
    entries.push(wrong_types);
    entries.push(json!([1, 2, 3]));
    let (status, v) = s.post(VERCEL, array(&entries)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(3)),
        "{v}"
    );
    let errors = v["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 2, 4], "{v}");
    assert!(
        errors[0]["error"].as_str().unwrap().contains("projectId"),
        "{v}"
    );
    assert!(
        errors[1]["error"].as_str().unwrap().contains("timestamp"),
        "{v}"
    );

    // Truncated JSON: the entries before the break are kept.
    let full = array(&[
        entry("t0", t, "GET", "/api/articles/a", 200),
        entry("t1", t, "GET", "/api/articles/a", 200),
    ]);
    let cut = &full[..full.len() - 30];
    let (status, v) = s.post(VERCEL, cut.to_vec()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{v}"
    );

    // Nothing valid at all: 400, every error listed, nothing stored.
    let rows = s.log_rows().await;
    let (status, v) = s.post(VERCEL, b"{\"id\":\"x\"}\nnot json\n".to_vec()).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["rejected"], 2, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("no entry of the body could be decoded"),
        "{v}"
    );
    assert_eq!(s.log_rows().await, rows);
    s.stop().await;
}

// Multi-threaded: the raw-socket part blocks this thread while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_answer_413_with_json() {
    let s = TestServer::start_with(|c| {
        c.ingest.max_body_bytes = 64 * 1024;
        c.ingest.max_decompressed_bytes = 1024 * 1024;
    })
    .await;
    let big = vec![b' '; 65 * 1024];
    let (status, v) = s.post(VERCEL, big).await;
    assert_eq!(status, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("65536 bytes"), "{v}");

    // A gzip bomb: 300 KB compressed, 30 MB inflated.
    let bomb = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 30 << 20]).unwrap();
        enc.finish().unwrap()
    };
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let resp = s
        .client
        .post(s.url(VERCEL))
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("once decompressed"),
        "{v}"
    );

    // Chunked upload without Content-Length is counted as it arrives. A reader thread takes the
    // answer as soon as it is sent (the server may close before it reads the rest of the body).
    let mut stream = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    write!(stream, "POST {VERCEL} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..5 {
        if write!(stream, "{:x}\r\n", chunk.len()).is_err()
            || stream.write_all(&chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let answer = answer_thread.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert_eq!(s.log_rows().await, 0);
    s.stop().await;
}

#[tokio::test]
async fn a_one_megabyte_message_is_kept_whole() {
    let s = TestServer::start().await;
    let mut e = entry("big", now_ms(), "GET", "/api/articles/a", 200);
    let message = "x".repeat(1 << 20);
    e["message"] = json!(message);
    let (status, v) = s.post(VERCEL, array(&[e])).await;
    assert_eq!((status, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let n = s
        .sql_count("SELECT count(*) FROM logs WHERE length(message) = 1048576 AND log_id = 'big'")
        .await;
    assert_eq!(n, 1, "the 1 MiB message is stored whole");
    s.stop().await;
}

// Multi-threaded like the real server: on a one-thread runtime the test's pooled keep-alive
// connection keeps the thread busy and the slow connection is never accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_answers_503_with_retry_after() {
    let s = TestServer::start_with(|c| c.ingest.max_concurrent_requests = 1).await;
    // Hold the only permit with a request whose body never finishes.
    let mut slow = std::net::TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    write!(
        slow,
        "POST {VERCEL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n["
    )
    .unwrap();
    let resp = eventually(|| async {
        let resp = s
            .client
            .post(s.url(VERCEL))
            .body("[]")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16() == 503).then_some(resp)
    })
    .await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let (_, v) = json_of(resp).await;
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("too many concurrent ingest requests (limit 1)"),
        "{v}"
    );
    drop(slow);
    // Once the slow client is gone the permit comes back.
    eventually(|| async {
        (s.client
            .post(s.url(VERCEL))
            .body("[]")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
            == 200)
            .then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn pino_direct_and_nested_in_vercel_messages() {
    let s = TestServer::start_with(|c| c.ingest.pino_token = Some("tok".into())).await;
    let body = pino_fixture();
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    let (status, v) = s
        .post(&format!("{PINO}?service=warrant"), body.clone())
        .await;
    assert_eq!(status, 401, "{v}");
    let resp = s
        .client
        .post(s.url(&format!("{PINO}?service=warrant")))
        .bearer_auth("tok")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(resp).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(lines as u64), "{v}");
    assert_eq!(v["rejected"], 0, "{v}");
    let requests = v["requests"].as_u64().unwrap();
    assert!(requests >= 1, "pino-http lines make request records: {v}");
    // The same lines again are duplicates (a stable hash of each line).
    let resp = s
        .client
        .post(s.url(PINO))
        .bearer_auth("tok")
        .body(body)
        .send()
        .await
        .unwrap();
    let (_, v) = json_of(resp).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(lines as u64)),
        "{v}"
    );

    // A pino-http line inside a Vercel lambda message makes a request record for the flow.
    let t = now_ms();
    let r = SynthRequest {
        time_ms: t,
        method: "POST",
        path: "/api/subscribe/checkout".into(),
        status: 502,
        latency_ms: 812.0,
        deployment_id: "dpl_n".into(),
    };
    let nested = slowburn_bench::pino_http_entry(77, &r);
    assert!(
        nested["message"]
            .as_str()
            .unwrap()
            .contains("\"responseTime\"")
    );
    let (status, v) = s.post(VERCEL, array(&[nested])).await;
    assert_eq!((status, v["requests"].as_u64()), (200, Some(1)), "{v}");
    let (_, health) = s.get("/v1/flows/subscribe_checkout/health?window=5m").await;
    assert_eq!(health["total"], 1, "{health}");
    assert_eq!(health["errors"], 1, "{health}");
    assert_eq!(health["status_codes"]["502"], 1, "{health}");
    // HDR histograms keep 2 significant digits: within 1%.
    assert!(
        (health["latency_ms"]["p50"].as_f64().unwrap() - 812.0).abs() <= 8.12,
        "{health}"
    );
    assert_eq!(
        health["deployments"][0]["deployment_id"], "dpl_n",
        "{health}"
    );
    s.stop().await;
}

#[tokio::test]
async fn generated_load_is_counted_exactly() {
    let s = TestServer::start().await;
    let mut g = Generator::new(7, now_ms() - 60_000);
    g.step_ms = 1;
    let mut sent = 0;
    for i in 0..10 {
        let body = if i % 2 == 0 {
            g.delivery_json(200)
        } else {
            g.delivery_ndjson(200)
        };
        let (status, v) = s.post(VERCEL, body).await;
        assert_eq!(status, 200);
        sent += v["accepted"].as_u64().unwrap();
    }
    assert_eq!(sent, 2000);
    assert_eq!(
        s.log_rows().await as u64,
        2000,
        "one log row per entry without user lines"
    );
    let _ = lambda_entry;
    s.stop().await;
}
