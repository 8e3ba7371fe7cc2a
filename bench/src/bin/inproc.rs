//! In-process benchmarks, one core: decode (bytes → records → Arrow), engine update throughput,
//! evaluation cost for 100 SLOs, memory per SLO. Optionally writes delivery files for
//! `slowburn replay` to be timed on.
//!
//!     cargo run --release -p slowburn-bench --bin inproc -- [--mb 64] [--only decode|engine|evaluation]
//!     cargo run --release -p slowburn-bench --bin inproc -- --write-deliveries DIR [--write-mb 256]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use slowburn_bench::Generator;
use slowburn_engine::Engine;
use slowburn_model::RequestRecord;

#[derive(Parser)]
struct Args {
    /// Megabytes of deliveries to decode.
    #[arg(long, default_value_t = 64)]
    mb: usize,
    /// Request records pushed through the engine.
    #[arg(long, default_value_t = 10_000_000)]
    records: usize,
    /// Write generated deliveries (NDJSON files of 500 entries, two hours of traffic) here and stop.
    #[arg(long)]
    write_deliveries: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    write_mb: usize,
    /// Run one benchmark only: decode, engine or evaluation.
    #[arg(long)]
    only: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = args.write_deliveries {
        return write_deliveries(&dir, args.write_mb);
    }
    let run = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    if run("decode") {
        decode(args.mb)?;
    }
    if run("engine") {
        engine_updates(args.records)?;
    }
    if run("evaluation") {
        evaluation_cost()?;
    }
    Ok(())
}

fn write_deliveries(dir: &std::path::Path, mb: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut g = Generator::new(3, 1_780_000_000_000);
    g.step_ms = 10;
    let (mut written, mut n) = (0usize, 0usize);
    while written < mb << 20 {
        let body = g.delivery_ndjson(500);
        written += body.len();
        std::fs::write(dir.join(format!("{n:06}.ndjson")), body)?;
        n += 1;
    }
    println!(
        "wrote {n} files, {:.1} MB, to {}",
        written as f64 / 1e6,
        dir.display()
    );
    Ok(())
}

fn decode(mb: usize) -> anyhow::Result<()> {
    let mut g = Generator::new(1, 1_780_000_000_000);
    let mut bodies = Vec::new();
    let mut total = 0usize;
    while total < mb << 20 {
        let b = g.delivery_json(100);
        total += b.len();
        bodies.push(b);
    }
    let entries: usize = bodies.len() * 100;
    // The JSON parse ceiling: parse every entry as a map of raw values, build nothing.
    let t = Instant::now();
    for b in &bodies {
        let v: Vec<std::collections::HashMap<&str, &serde_json::value::RawValue>> =
            serde_json::from_slice(b)?;
        black_box(v);
    }
    let parse_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut dedupe = slowburn_ingest::Deduper::new(3_600_000, 10_000_000);
    let (mut rows, mut requests) = (0usize, 0usize);
    let mut decode_secs = 0.0;
    let mut batch_secs = 0.0;
    for b in &bodies {
        let t0 = Instant::now();
        let decoded = slowburn_ingest::decode_vercel(b, 1_780_000_000_000)?;
        let assembled = slowburn_ingest::assemble(decoded.entries, &mut dedupe, 1_780_000_000_000);
        dedupe.commit(&assembled.admitted_keys);
        let t1 = Instant::now();
        let batch = slowburn_ingest::logs_to_batch(&assembled.logs)?;
        batch_secs += t1.elapsed().as_secs_f64();
        decode_secs += (t1 - t0).as_secs_f64();
        rows += batch.num_rows();
        requests += assembled.requests.len();
        black_box(batch);
    }
    let all_secs = t.elapsed().as_secs_f64();
    let mbs = |secs: f64| total as f64 / 1e6 / secs;
    println!(
        "decode: {:.1} MB in {} deliveries of 100 entries (~{:.0} B/entry), {rows} log rows, {requests} request records",
        total as f64 / 1e6,
        bodies.len(),
        total as f64 / entries as f64
    );
    println!(
        "  JSON parse ceiling (serde_json, raw values): {:.0} MB/s",
        mbs(parse_secs)
    );
    println!(
        "  decode + dedupe (bytes -> records):          {:.0} MB/s",
        mbs(decode_secs)
    );
    println!(
        "  Arrow batch build:                           {:.0} MB/s",
        mbs(batch_secs)
    );
    println!(
        "  bytes -> records -> Arrow, end to end:       {:.0} MB/s, {:.0} entries/s",
        mbs(all_secs),
        entries as f64 / all_secs
    );
    Ok(())
}

fn warrant() -> anyhow::Result<Arc<slowburn_slo_defs::Catalog>> {
    let (c, _) = slowburn_slo_defs::load_str("warrant.yaml", slowburn_slo_defs::EMBEDDED_CATALOG)
        .map_err(|d| anyhow::anyhow!("{d:?}"))?;
    Ok(Arc::new(c))
}

fn engine_updates(n: usize) -> anyhow::Result<()> {
    let mut g = Generator::new(2, 1_780_000_000_000);
    g.step_ms = 1;
    let records: Vec<RequestRecord> = (0..n)
        .map(|_| {
            let r = g.next_request();
            RequestRecord {
                time_ms: r.time_ms,
                request_id: None,
                method: Some(r.method.to_owned()),
                path: Some(r.path),
                status: r.status,
                latency_ms: Some(r.latency_ms),
                deployment_id: Some(r.deployment_id),
            }
        })
        .collect();
    let mut engine = Engine::new(warrant()?);
    engine.advance(records.last().map(|r| r.time_ms).unwrap_or(0));
    let t = Instant::now();
    for r in &records {
        engine.record_request(r);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "engine: {n} request records (Warrant catalog, path matching included) in {secs:.2} s: {:.2} M records/s",
        n as f64 / secs / 1e6
    );
    println!("  counters: {:?}", engine.counters());
    Ok(())
}

fn evaluation_cost() -> anyhow::Result<()> {
    let mut yaml = String::from("flows:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
            "  - name: flow{i}\n    match: [{{ method: GET, path: /api/f{i}/* }}]\n"
        ));
    }
    yaml.push_str("slos:\n");
    for i in 0..100 {
        yaml.push_str(&format!("  - name: slo{i}\n    flow: flow{i}\n    objective: 99.9\n    period: 30d\n    sli: {{ kind: availability }}\n"));
    }
    let (catalog, _) =
        slowburn_slo_defs::load_str("hundred.yaml", &yaml).map_err(|d| anyhow::anyhow!("{d:?}"))?;
    let mut engine = Engine::new(Arc::new(catalog));
    // Thirty days of traffic, one request per SLO per minute, so every bucket is populated.
    let start = 1_780_000_000_000i64;
    let end = start + 30 * 86_400_000;
    engine.advance(end);
    let mut t = start;
    while t < end {
        for i in 0..100 {
            engine.record_request(&RequestRecord {
                time_ms: t,
                request_id: None,
                method: Some("GET".into()),
                path: Some(format!("/api/f{i}/x")),
                status: if (t / 60_000) % 97 == 0 { 500 } else { 200 },
                latency_ms: Some(50.0),
                deployment_id: None,
            });
        }
        t += 60_000;
    }
    let iterations = 200;
    let t0 = Instant::now();
    for i in 0..iterations {
        engine.advance(end + i * 1000);
        black_box(engine.evaluate());
    }
    let eval_us = t0.elapsed().as_secs_f64() / iterations as f64 * 1e6;
    let t0 = Instant::now();
    for _ in 0..20 {
        black_box(engine.status());
    }
    let status_ms = t0.elapsed().as_secs_f64() / 20.0 * 1e3;
    let mem = engine.heap_bytes_per_slo();
    let avg = mem.iter().map(|(_, b)| *b).sum::<usize>() as f64 / mem.len() as f64;
    println!(
        "evaluation: 100 SLOs x 4 rules, 30 days of history: evaluate() {eval_us:.0} us, status() {status_ms:.2} ms"
    );
    println!(
        "memory: {:.0} KiB per SLO (counters and latency histograms, 30-day period)",
        avg / 1024.0
    );
    Ok(())
}
