//! Decoder behaviour on pino (direct and nested in Vercel), bad input, and redelivery.

mod common;

use serde_json::{Value, json};
use slowburn_ingest::{Deduper, Outcome, assemble, decode_pino, decode_vercel};

const NOW: i64 = 1_796_329_600_000;

fn pino_fixture() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/pino/warrant.ndjson"
    ))
    .unwrap()
}

/// Wraps each pino line in a Vercel stdout entry, as a Next.js function's stdout arrives.
fn pino_inside_vercel() -> String {
    let entries: Vec<Value> = pino_fixture()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let p: Value = serde_json::from_str(line).unwrap();
            let req_id = p["req"]["id"].as_i64().map(|id| format!("iad1::req-{id}"));
            json!({"id": format!("{}", 9_000_000_000_000_000_000u64 + i as u64), "timestamp": p["time"].as_i64().unwrap() + 3,
                   "source": "lambda", "type": "stdout", "level": "info", "projectId": "prj_warrant", "deploymentId": "dpl_abc",
                   "requestId": req_id, "message": line, "host": "warrant.app", "environment": "production"})
        })
        .collect();
    serde_json::to_string(&entries).unwrap()
}

#[test]
fn pino_direct_yields_logs_requests_and_flows() {
    let body = pino_fixture();
    let d = decode_pino(body.as_bytes(), Some("warrant-web"), NOW).unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let a = assemble(d.entries, &mut Deduper::new(3_600_000, 10_000), NOW);
    assert_eq!(a.logs.len(), 10);
    assert!(
        a.logs
            .iter()
            .all(|l| l.service.as_deref() == Some("warrant-web") && l.origin.as_str() == "pino")
    );
    let statuses: Vec<i32> = a.requests.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![200, 200, 502, 200, 500],
        "one request per pino-http completion line"
    );
    assert_eq!(
        a.requests[0].path.as_deref(),
        Some("/api/articles/hello-world"),
        "query string stripped"
    );
    assert_eq!(a.requests[0].latency_ms, Some(5.0));
    let checkout_failed = a
        .logs
        .iter()
        .find(|l| l.message.as_deref() == Some("checkout failed"))
        .unwrap();
    assert_eq!(checkout_failed.level, Some("error"));
    assert_eq!(
        checkout_failed.err_message.as_deref(),
        Some("stripe: card_declined")
    );
    assert_eq!(
        checkout_failed.status, None,
        "an app line with req bindings is not a request"
    );
    let bare_error = a
        .logs
        .iter()
        .find(|l| l.err_message.as_deref() == Some("meilisearch: index not found"))
        .unwrap();
    assert_eq!(bare_error.err_type.as_deref(), Some("Error"));
    assert_eq!(a.flows.len(), 2);
    assert_eq!(
        (
            a.flows[0].flow.as_str(),
            a.flows[0].outcome,
            a.flows[0].duration_ms
        ),
        ("subscribe_checkout", Outcome::Failure, Some(812.0))
    );
    // Event time is pino's `time`, not the receive time.
    assert!(
        a.logs
            .iter()
            .all(|l| l.event_time_ms < NOW && l.received_time_ms == NOW)
    );
}

#[test]
fn pino_nested_in_vercel_messages() {
    let body = pino_inside_vercel();
    let d = decode_vercel(body.as_bytes(), NOW).unwrap();
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let a = assemble(d.entries, &mut Deduper::new(3_600_000, 10_000), NOW);
    assert_eq!(a.logs.len(), 10);
    let statuses: Vec<i32> = a.requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 502, 200, 500]);
    assert!(
        a.requests
            .iter()
            .all(|r| r.deployment_id.as_deref() == Some("dpl_abc"))
    );
    assert_eq!(a.requests[2].request_id.as_deref(), Some("iad1::req-3"));
    // pino's level wins over Vercel's stream level.
    let failed = a
        .logs
        .iter()
        .find(|l| l.message.as_deref() == Some("checkout failed"))
        .unwrap();
    assert_eq!(failed.level, Some("error"));
    assert_eq!(failed.err_type.as_deref(), Some("Error"));
    // pino's time is the event time.
    let p: Value = serde_json::from_str(pino_fixture().lines().next().unwrap()).unwrap();
    assert_eq!(a.logs[0].event_time_ms, p["time"].as_i64().unwrap());
}

#[test]
fn a_request_counts_once_across_entries_and_redeliveries() {
    let entry = |id: &str, msg: &str, status: Option<i32>| json!({"id": id, "timestamp": NOW, "source": "lambda", "projectId": "p", "requestId": "r1", "message": msg, "statusCode": status});
    let batch = json!([
        entry(
            "1",
            "START RequestId: x\nEND RequestId: x\nREPORT RequestId: x Duration: 40 ms",
            Some(200)
        ),
        entry(
            "2",
            r#"{"level":30,"time":1,"req":{"id":7},"res":{"statusCode":200},"responseTime":35,"msg":"request completed"}"#,
            None
        ),
        entry("3", "plain stdout line", None),
    ]);
    let mut dedupe = Deduper::new(3_600_000, 10_000);
    let body = serde_json::to_vec(&batch).unwrap();
    let a = assemble(decode_vercel(&body, NOW).unwrap().entries, &mut dedupe, NOW);
    assert_eq!(a.requests.len(), 1);
    // While the first copy is not yet stored, a redelivery is neither new nor a duplicate.
    let early = assemble(
        decode_vercel(&body, NOW).unwrap().entries,
        &mut dedupe,
        NOW + 500,
    );
    assert_eq!((early.accepted, early.duplicates, early.pending), (0, 0, 3));
    dedupe.commit(&a.admitted_keys);
    assert_eq!(
        a.requests[0].latency_ms,
        Some(35.0),
        "pino-http responseTime wins over REPORT"
    );
    let again = assemble(
        decode_vercel(&body, NOW).unwrap().entries,
        &mut dedupe,
        NOW + 1000,
    );
    assert_eq!(
        (again.accepted, again.duplicates, again.requests.len()),
        (0, 3, 0)
    );
    // A new entry for an already-counted request is a log line, not a second request.
    let late = serde_json::to_vec(&json!([entry("4", "[GET] /x status=500", None)])).unwrap();
    let late = assemble(
        decode_vercel(&late, NOW).unwrap().entries,
        &mut dedupe,
        NOW + 2000,
    );
    assert_eq!((late.accepted, late.requests.len()), (1, 0));
    // A body that is not stored is forgotten, and its redelivery counts.
    for k in &late.admitted_keys {
        dedupe.forget(k);
    }
    let late = serde_json::to_vec(&json!([entry("4", "[GET] /x status=500", None)])).unwrap();
    let again = assemble(
        decode_vercel(&late, NOW).unwrap().entries,
        &mut dedupe,
        NOW + 3000,
    );
    assert_eq!(again.accepted, 1);
}

#[test]
fn crashed_functions_are_server_failures() {
    for status in [-1, 0] {
        let body = serde_json::to_vec(&json!([{"id": "c", "timestamp": NOW, "source": "lambda", "projectId": "p", "statusCode": status, "requestId": "q"}])).unwrap();
        let a = assemble(
            decode_vercel(&body, NOW).unwrap().entries,
            &mut Deduper::new(1, 10),
            NOW,
        );
        assert_eq!(a.requests.len(), 1);
        assert!(a.requests[0].is_server_error());
    }
}

#[test]
fn partial_batches_report_each_bad_entry() {
    let body = br#"[
        {"id":"ok1","timestamp":1,"source":"static","projectId":"p"},
        {"timestamp":1,"source":"static","projectId":"p"},
        {"id":"t","timestamp":"yesterday","source":"static","projectId":"p"},
        {"id":"n","timestamp":1,"source":null,"projectId":"p"},
        "not an object",
        {"id":"ok2","timestamp":1,"source":"static","projectId":"p","statusCode":"abc","level":7,"message":null,"host":""}
    ]"#;
    let d = decode_vercel(body, NOW).unwrap();
    assert_eq!(d.entries.len(), 2);
    let errors: Vec<(usize, &str)> = d
        .errors
        .iter()
        .map(|e| (e.index, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "missing required field `id`"),
            (
                2,
                "field `timestamp` must be epoch milliseconds, got \"yesterday\""
            ),
            (3, "required field `source` is empty or null"),
            (4, "entry is not a JSON object"),
        ]
    );
    // Wrong-typed optional fields are kept, not dropped.
    let attrs = d.entries[1].logs[0].attributes.as_deref().unwrap();
    assert!(
        attrs.contains(r#""statusCode":"abc""#) && attrs.contains(r#""level":7"#),
        "{attrs}"
    );
    assert_eq!(d.entries[1].logs[0].status, None);
}

#[test]
fn truncated_array_keeps_the_entries_before_the_cut() {
    let body = br#"[{"id":"a","timestamp":1,"source":"edge","projectId":"p"},{"id":"b","timestamp":1,"source":"edge","projectId":"p"},{"id":"c","timest"#;
    let d = decode_vercel(body, NOW).unwrap();
    assert_eq!(d.entries.len(), 2);
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].index, 2);
}

#[test]
fn one_megabyte_message_line() {
    let big = "x".repeat(1 << 20);
    let body = serde_json::to_vec(
        &json!([{"id":"big","timestamp":NOW,"source":"lambda","projectId":"p","message": big}]),
    )
    .unwrap();
    let d = decode_vercel(&body, NOW).unwrap();
    assert_eq!(
        d.entries[0].logs[0].message.as_ref().map(String::len),
        Some(1 << 20)
    );
}

#[test]
fn unknown_fields_and_escaped_keys_pass_through() {
    let body = br#"{"id":"u","timestamp":1,"source":"edge","projectId":"p","invocationId":"inv_1","we\"ird":{"a": [1, 2]}}"#;
    let d = decode_vercel(body, NOW).unwrap();
    let attrs: Value =
        serde_json::from_str(d.entries[0].logs[0].attributes.as_deref().unwrap()).unwrap();
    assert_eq!(
        attrs,
        json!({"invocationId": "inv_1", "we\"ird": {"a": [1, 2]}})
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn fixture_lines() -> Vec<String> {
        common::vercel_fixtures()
            .into_iter()
            .flat_map(|(_, body)| serde_json::from_slice::<Vec<Value>>(&body).unwrap())
            .enumerate()
            .map(|(i, mut v)| {
                v["id"] = json!(format!("fx{i}"));
                serde_json::to_string(&v).unwrap()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode_vercel(&bytes, NOW);
            let _ = decode_pino(&bytes, None, NOW);
        }

        #[test]
        fn mutated_fixtures_never_panic(seed in any::<u64>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..16)) {
            let lines = fixture_lines();
            let mut body = lines[(seed as usize) % lines.len()].clone().into_bytes();
            for (pos, byte) in flips {
                let len = body.len();
                body[pos % len] = byte;
            }
            let _ = decode_vercel(&body, NOW);
            let _ = decode_pino(&body, None, NOW);
            let mut wrapped = b"[".to_vec();
            wrapped.extend_from_slice(&body);
            let _ = decode_vercel(&wrapped, NOW);
        }

        /// NDJSON: garbage lines between valid entries never cost a valid entry.
        #[test]
        fn garbage_lines_never_lose_valid_entries(garbage in proptest::collection::vec("[^\n]{0,80}", 0..8), at in proptest::collection::vec(any::<usize>(), 8)) {
            let mut lines = fixture_lines();
            let valid = lines.len();
            for (g, pos) in garbage.iter().zip(at) {
                let i = 1 + pos % lines.len(); // after the first line: a body starting with `[` is a JSON array
                lines.insert(i, g.clone());
            }
            let body = lines.join("\n");
            let d = decode_vercel(body.as_bytes(), NOW).unwrap();
            let got: Vec<String> = d.entries.iter().map(|e| e.dedupe_key.clone()).filter(|k| k.starts_with("fx")).collect();
            prop_assert_eq!(got.len(), valid);
        }
    }
}

/// `slowburn replay` decodes requests only; it must see exactly the requests and flow events the
/// server sees, on every real delivery and on pino nested in Vercel messages.
#[test]
fn requests_only_decoding_yields_the_same_requests_and_flows() {
    use slowburn_ingest::{Make, decode_vercel_making};
    let mut bodies: Vec<Vec<u8>> = common::vercel_fixtures()
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    bodies.push(pino_inside_vercel().into_bytes());
    for body in &bodies {
        let full = decode_vercel(body, NOW).unwrap();
        let lean = decode_vercel_making(body, NOW, Make::RequestsOnly).unwrap();
        assert_eq!(full.errors, lean.errors);
        assert_eq!(full.entries.len(), lean.entries.len());
        for (f, l) in full.entries.iter().zip(&lean.entries) {
            assert_eq!(f.dedupe_key, l.dedupe_key);
            assert_eq!(f.requests, l.requests);
            assert_eq!(f.flows, l.flows);
            assert!(l.logs.is_empty());
        }
        let a = assemble(full.entries, &mut Deduper::new(3_600_000, 10_000), NOW);
        let b = assemble(lean.entries, &mut Deduper::new(3_600_000, 10_000), NOW);
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.flows, b.flows);
    }
}
