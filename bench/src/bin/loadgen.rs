//! Load generator: posts realistic Vercel deliveries concurrently to a running slowburn and prints
//! entries/s, MB/s and response-time percentiles.
//!
//!     cargo run --release -p slowburn-bench --bin loadgen -- --url http://127.0.0.1:7070/v1/drains/vercel

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use slowburn_bench::{Generator, gzip};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:7070/v1/drains/vercel")]
    url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Entries per delivery (Vercel sends up to a few hundred).
    #[arg(long, default_value_t = 100)]
    entries: usize,
    /// Send `Content-Encoding: gzip`.
    #[arg(long)]
    gzip: bool,
}

/// Bodies are generated once; each send stamps a fresh 8-hex-digit run number into every id so
/// that the server sees new entries, not redeliveries.
const MARKER: &[u8] = b"ZZZZZZZZ";

fn template(g: &mut Generator, entries: usize) -> Vec<u8> {
    let body = String::from_utf8(g.delivery_json(entries)).expect("generated JSON is UTF-8");
    body.replace("\"id\":\"", "\"id\":\"ZZZZZZZZ")
        .replace("\"requestId\":\"", "\"requestId\":\"ZZZZZZZZ")
        .into_bytes()
}

fn stamp(template: &[u8], run: u64) -> Vec<u8> {
    let mut out = template.to_vec();
    let hex = format!("{:08x}", run & 0xffff_ffff);
    let mut i = 0;
    while i + MARKER.len() <= out.len() {
        if &out[i..i + MARKER.len()] == MARKER {
            out[i..i + MARKER.len()].copy_from_slice(hex.as_bytes());
            i += MARKER.len();
        } else {
            i += 1;
        }
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut g = Generator::new(42, now - 60_000);
    g.step_ms = 0;
    let templates: Arc<Vec<Vec<u8>>> =
        Arc::new((0..32).map(|_| template(&mut g, args.entries)).collect());
    let avg_entry_bytes =
        templates.iter().map(Vec::len).sum::<usize>() as f64 / (32 * args.entries) as f64;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let run = Arc::new(AtomicU64::new(1));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (client, templates, run, url) = (
            client.clone(),
            templates.clone(),
            run.clone(),
            args.url.clone(),
        );
        let gz = args.gzip;
        tasks.push(tokio::spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid bounds");
            let (mut entries, mut bytes, mut errors) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let n = run.fetch_add(1, Ordering::Relaxed);
                let body = stamp(&templates[(n % templates.len() as u64) as usize], n);
                let raw_len = body.len() as u64;
                let mut req = client.post(&url);
                let body = if gz {
                    req = req.header("content-encoding", "gzip");
                    gzip(&body)
                } else {
                    body
                };
                let sent = Instant::now();
                match req.body(body).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let v: serde_json::Value = resp.json().await.unwrap_or_default();
                        entries += v["accepted"].as_u64().unwrap_or(0);
                        bytes += raw_len;
                        let _ = hist.record(sent.elapsed().as_micros() as u64);
                    }
                    Ok(resp) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!(
                                "status {}: {}",
                                resp.status(),
                                resp.text().await.unwrap_or_default()
                            );
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }
            (hist, entries, bytes, errors)
        }));
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut entries, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    for t in tasks {
        let (h, e, b, x) = t.await?;
        hist.add(&h)?;
        entries += e;
        bytes += b;
        errors += x;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} deliveries ({} entries of ~{:.0} B, concurrency {}, gzip {}) in {:.1} s: {:.0} entries/s, {:.1} MB/s uncompressed, response p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
        hist.len(),
        args.entries,
        avg_entry_bytes,
        args.concurrency,
        args.gzip,
        secs,
        entries as f64 / secs,
        bytes as f64 / secs / 1e6,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        errors
    );
    Ok(())
}
