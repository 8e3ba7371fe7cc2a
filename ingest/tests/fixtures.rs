//! Every real Vercel delivery in shared/fixtures decodes, checked against reviewed golden files.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p slowburn-ingest --test fixtures` and review the diff.

mod common;

use serde_json::{Value, json};
use slowburn_ingest::{Deduper, LogRecord, assemble, decode_vercel, logs_to_batch};

const RECEIVED_MS: i64 = 1_800_000_000_000;

fn summarize(logs: &[LogRecord]) -> Value {
    logs.iter()
        .map(|r| {
            json!({
                "log_id": r.log_id, "event_time_ms": r.event_time_ms, "source": r.source, "type": r.vercel_type,
                "level": r.level, "message": r.message, "request_id": r.request_id, "method": r.method,
                "path": r.path, "route": r.route, "status": r.status, "duration_ms": r.duration_ms,
                "region": r.region, "service": r.service, "err_type": r.err_type, "attributes": r.attributes,
            })
        })
        .collect()
}

#[test]
fn every_fixture_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    for (name, body) in common::vercel_fixtures() {
        let decoded = decode_vercel(&body, RECEIVED_MS).unwrap();
        let raw: Vec<Value> = serde_json::from_slice(&body).unwrap();
        assert!(decoded.errors.is_empty(), "{name}: {:?}", decoded.errors);
        assert_eq!(
            decoded.entries.len(),
            raw.len(),
            "{name}: every entry decodes"
        );
        let mut dedupe = Deduper::new(3_600_000, 1000);
        let a = assemble(decoded.entries, &mut dedupe, RECEIVED_MS);
        let batch = logs_to_batch(&a.logs).unwrap();
        assert_eq!(batch.num_rows(), a.logs.len());
        let got = json!({"accepted": a.accepted, "duplicates": a.duplicates, "logs": summarize(&a.logs), "requests": a.requests});
        let path = golden_dir.join(format!("{name}.json"));
        let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if update {
            std::fs::write(&path, &pretty).unwrap();
        } else {
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != pretty {
                failures.push(format!(
                    "{name}: decoded output differs from {}",
                    path.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\nrerun with UPDATE_GOLDEN=1 and review the diff"
    );
}
