//! The real `slowburn` binary: `check-defs`, `replay`, and `serve` with signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use slowburn_bench::{SynthRequest, gzip, lambda_entry};

use crate::common::*;

fn slowburn() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slowburn"));
    c.current_dir(repo_root());
    c
}

#[test]
fn check_defs_explains_the_shipped_catalog() {
    let out = slowburn()
        .args(["check-defs", "slo-defs/"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("4 flow(s), 4 SLO(s), 0 warning(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "slo subscribe_checkout_success_rate: flow subscribe_checkout, objective 99.9% over 30d"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("latency (good: latency <= 300 ms)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rule fast_burn: burn > 14.40x over 1h and 5m -> Page SEV1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("flow article_publish: POST /api/articles/*/publish"),
        "{stdout}"
    );
}

#[test]
fn check_defs_names_the_file_and_the_slo_of_each_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(
        &a,
        "flows:\n  - name: a\n    match: [{ method: GET, path: /x }]\n  - name: unused\n    match: [{ path: /y }]\nslos:\n  - name: s1\n    flow: a\n    objective: 100\n    period: 30d\n    sli: { kind: availability }\n  - name: s2\n    flow: a\n    objective: 99\n    period: 3 weeks\n    sli: { kind: availability }\n",
    )
    .unwrap();
    std::fs::write(&b, "slos:\n  - name: s3\n    flow: a\n    objective: 99\n    colour: red\n    sli: { kind: availability }\n").unwrap();
    let out = slowburn()
        .args(["check-defs"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}: s1: objective 100 must be a percentage",
            a.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("error: {}: s2: period", a.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "warning: {}: unused: flow is not used by any SLO",
            a.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&b.display().to_string()) && stderr.contains("colour"),
        "unknown key named with its file: {stderr}"
    );
    assert!(stderr.contains("catalog rejected"), "{stderr}");
}

/// A 3-hour scenario at 1 checkout per second on a 99.9% SLO, with a total outage from 2 h to
/// 2 h 10 min. The SRE Workbook formulas predict each transition (see the comments).
#[test]
fn replay_fires_and_resolves_when_the_formulas_say() {
    let dir = tempfile::tempdir().unwrap();
    let start: i64 = 1_780_000_000_000; // a multiple of 10 s
    let outage = start + 7_200_000;
    let mut files = Vec::new();
    for file_index in 0..18i64 {
        let mut body = Vec::new();
        for k in file_index * 600..(file_index + 1) * 600 {
            let t = start + k * 1000;
            let failing = (outage..outage + 600_000).contains(&t);
            let r = SynthRequest {
                time_ms: t,
                method: "POST",
                path: "/api/subscribe/checkout".into(),
                status: if failing { 500 } else { 200 },
                latency_ms: 250.0,
                deployment_id: if t < outage {
                    "dpl_1".into()
                } else {
                    "dpl_2".into()
                },
            };
            serde_json::to_writer(&mut body, &lambda_entry(k as u64, &r)).unwrap();
            body.push(b'\n');
        }
        files.push(body);
    }
    for (i, body) in files.iter().enumerate() {
        if i == 12 {
            write(&dir.path().join("deliveries/012.ndjson.gz"), &gzip(body));
            // Vercel redelivers the outage batch: it must not count twice.
            write(&dir.path().join("deliveries/012b-redelivery.ndjson"), body);
        } else {
            write(&dir.path().join(format!("deliveries/{i:03}.ndjson")), body);
        }
    }
    let out = slowburn()
        .args(["replay", "--status", "--slo-defs", "slo-defs/"])
        .arg(dir.path().join("deliveries"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("19 file(s)")
            && stderr.contains("600 duplicates")
            && stderr.contains("10800 requests"),
        "{stderr}"
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (status, transitions) = lines.split_last().unwrap();

    let at = |secs_after_outage: i64| outage + secs_after_outage * 1000;
    let seen: Vec<(String, &str, i64, bool)> = transitions
        .iter()
        .filter(|t| t["slo"] == "subscribe_checkout_success_rate")
        .map(|t| {
            (
                t["alert"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap(),
                t["time_ms"].as_i64().unwrap(),
                t["suppressed"].as_bool().unwrap(),
            )
        })
        .collect();
    // x seconds into a total outage with 1 req/s and 2 h of clean history, error budget 0.001:
    //   drift_3day (1x, 3d & 6h):   x / (7200 + x) / 0.001 > 1    -> x > 7.2 s   -> evaluated at +10 s
    //   drift_day  (3x, 1d & 2h):   x / 7200 / 0.001 > 3          -> x > 21.6 s  -> +30 s (suppresses drift_3day)
    //   slow_burn  (6x, 6h & 30m):  x / (7200 + x) / 0.001 > 6    -> x > 43.5 s  -> +50 s (suppresses drift_day)
    //   fast_burn  (14.4x, 1h & 5m): x / 3600 / 0.001 > 14.4      -> x > 51.8 s  -> +60 s (suppresses slow_burn)
    // After 600 s of errors, fast_burn's 5m window empties 300 s later (+900 s); slow_burn's 30m
    // window holds at most 10.8 errors from +2390 s (its window then starts at +590 s: 10 errors).
    let expected: Vec<(String, &str, i64, bool)> = vec![
        ("drift_3day".into(), "firing", at(10), false),
        ("drift_day".into(), "firing", at(30), false),
        ("drift_3day".into(), "firing", at(30), true),
        ("slow_burn".into(), "firing", at(50), false),
        ("drift_day".into(), "firing", at(50), true),
        ("fast_burn".into(), "firing", at(60), false),
        ("slow_burn".into(), "firing", at(60), true),
        ("fast_burn".into(), "resolved", at(900), false),
        ("slow_burn".into(), "firing", at(900), false),
        ("slow_burn".into(), "resolved", at(2390), false),
        ("drift_day".into(), "firing", at(2390), false),
    ];
    assert_eq!(seen, expected, "{transitions:#?}");
    let first = &transitions[0];
    assert_eq!(first["time"], "2026-05-28T22:26:50.000Z", "{first}");
    assert_eq!(first["severity"], "SEV3");

    // The final status counts every request once (the redelivery was dropped).
    let checkout = status["status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "subscribe_checkout_success_rate")
        .unwrap();
    assert_eq!(checkout["sli"]["total"], 10_800, "{checkout}");
    assert_eq!(checkout["sli"]["good"], 10_200, "{checkout}");
    assert_eq!(checkout["as_of_ms"], start + 10_799_000);
}

#[test]
fn replay_reads_the_real_fixtures_and_names_bad_files() {
    // In event time, sample_1 and test_lambda (same id) are years apart, far outside the
    // redelivery window: only sample_5/sample_6, delivered together, count as a duplicate. The
    // README next to the fixtures is not a delivery and is skipped.
    let out = slowburn()
        .args(["replay", "--status", "tests/fixtures/vercel"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("12 file(s)") && stderr.contains("16 entries (1 duplicates, 0 rejected)"),
        "{stderr}"
    );
    let out = slowburn()
        .args(["replay", "does/not/exist.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.json"));
}

#[test]
fn serve_logs_its_address_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slowburn.toml");
    std::fs::write(&config, "[ingest]\nmax_body_bytes = 1000\n").unwrap();
    let mut child = slowburn()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("SLOWBURN_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("slowburn listening on http://").nth(1) {
            addr = Some(rest.split_whitespace().next().unwrap().to_owned());
            break;
        }
        line.clear();
    }
    let addr = addr.expect("the server logs its address");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        // Ready once recovery is done; until then 503 with Retry-After.
        let mut ready = false;
        for _ in 0..300 {
            let resp = client
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .unwrap();
            if resp.status() == 200 {
                ready = true;
                break;
            }
            assert_eq!(resp.status().as_u16(), 503);
            assert!(resp.headers().contains_key("retry-after"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "ready within 15 s");
        // The config file's limit is in force.
        let resp = client
            .post(format!("http://{addr}/v1/drains/vercel"))
            .body(vec![b' '; 2000])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);
    });
    assert!(
        Path::new(&dir.path().join("data")).is_dir(),
        "data dir created"
    );
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(waited < 100, "did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(rest.contains("SIGTERM"), "{rest}");
}

#[test]
fn serve_refuses_a_bad_config_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slowburn.toml");
    std::fs::write(&config, "[ingest]\nmax_body_size = 1000\n").unwrap();
    let out = slowburn()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("max_body_size") && stderr.contains("slowburn.toml"),
        "{stderr}"
    );
}
