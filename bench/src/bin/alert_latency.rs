//! Alert latency: from "the ingest response that makes a rule fire came back" to "the receiver
//! got the notification", with a loopback PagerDuty-style receiver in this process (one clock
//! for both ends) and the real server as a child process.
//!
//! The catalog has `--slos` independent flows; each is burned once by one delivery of failing
//! requests, so each gives one sample without waiting for resolves.
//!
//!     cargo build --release && cargo run --release -p slowburn-bench --bin alert_latency -- --slowburn target/release/slowburn

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The slowburn binary to start.
    #[arg(long, default_value = "target/release/slowburn")]
    slowburn: PathBuf,
    /// Independent SLOs, one sample each.
    #[arg(long, default_value_t = 200)]
    slos: usize,
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, body: String) -> (StatusCode, &'static str) {
    let at = Instant::now();
    if let Ok(v) = serde_json::from_str::<Value>(&body)
        && v["event_action"] == "trigger"
        && let Some(key) = v["dedup_key"].as_str()
    {
        arrivals
            .lock()
            .expect("receiver lock")
            .entry(key.to_owned())
            .or_insert(at);
    }
    (StatusCode::ACCEPTED, "{\"status\":\"success\"}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}/pd", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/pd", post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let mut yaml = String::from("flows:\n");
    for i in 0..args.slos {
        yaml.push_str(&format!(
            "  - name: f{i}\n    match: [{{ method: POST, path: /api/bench/{i} }}]\n"
        ));
    }
    yaml.push_str("slos:\n");
    for i in 0..args.slos {
        yaml.push_str(&format!(
            "  - name: s{i}\n    flow: f{i}\n    objective: 99.9\n    sli: {{ kind: availability }}\n"
        ));
    }
    let catalog = dir.path().join("bench.yaml");
    std::fs::write(&catalog, yaml)?;
    let mut child = std::process::Command::new(&args.slowburn)
        .args(["serve", "--listen", "127.0.0.1:0", "--slo-defs"])
        .arg(&catalog)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env(
            "SLOWBURN_PAGERDUTY_ROUTING_KEY",
            "benchbenchbenchbenchbenchbench01",
        )
        .env("SLOWBURN_PAGERDUTY_URL", &receiver)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("slowburn listening on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30))?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    for _ in 0..600 {
        if client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut samples_ms = Vec::with_capacity(args.slos);
    let mut missing = 0;
    for i in 0..args.slos {
        let now = chrono_now_ms();
        let entries: Vec<Value> = (0..5)
            .map(|k| {
                json!({"id": format!("{now}{i:05}{k}"), "timestamp": now, "source": "lambda",
                       "projectId": "prj_bench", "requestId": format!("req-{i}-{k}"), "statusCode": 500,
                       "message": format!("[POST] /api/bench/{i} status=500"),
                       "proxy": {"method": "POST", "path": format!("/api/bench/{i}"), "statusCode": 500}})
            })
            .collect();
        let resp = client
            .post(format!("http://{addr}/v1/drains/vercel"))
            .json(&entries)
            .send()
            .await?;
        let answered = Instant::now();
        anyhow::ensure!(resp.status() == 200, "ingest answered {}", resp.status());
        let key = format!("slowburn/s{i}/fast_burn");
        let deadline = answered + Duration::from_secs(5);
        loop {
            if let Some(at) = arrivals.lock().expect("receiver lock").get(&key) {
                let ms = if *at >= answered {
                    at.duration_since(answered).as_secs_f64() * 1000.0
                } else {
                    // The notification beat the HTTP answer back to the client.
                    -(answered.duration_since(*at).as_secs_f64() * 1000.0)
                };
                samples_ms.push(ms);
                break;
            }
            if Instant::now() > deadline {
                missing += 1;
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    samples_ms.sort_by(f64::total_cmp);
    let q = |p: f64| samples_ms[((samples_ms.len() as f64 - 1.0) * p).round() as usize];
    anyhow::ensure!(!samples_ms.is_empty(), "no notification arrived");
    println!(
        "alert latency (ingest response -> receiver got the PagerDuty trigger), {} SLOs: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms, {} missing after 5 s",
        samples_ms.len(),
        q(0.50),
        q(0.99),
        samples_ms[samples_ms.len() - 1],
        samples_ms[0],
        missing
    );
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
