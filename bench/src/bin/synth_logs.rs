//! Writes a synthetic archive of both tables (`logs` and `requests`) in the production layout,
//! one compacted file per hour and table as the archive looks once compaction has run: `days` of
//! realistic Vercel deliveries (the load generator's mix, plus pino application errors with
//! `err.type`/`err.message`) decoded by the real ingest code. For the SQL benchmark against
//! DuckDB (`bench/sql_vs_duckdb.sh`).
//!
//!     cargo run --release -p slowburn-bench --bin synth_logs -- --dir /tmp/sqlbench/archive --days 7

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use slowburn_archive::Table;
use slowburn_archive::layout::{compacted_path, encode_segment};
use slowburn_archive::requests::{requests_batch, requests_schema};
use slowburn_bench::Generator;

#[derive(Parser)]
struct Args {
    /// The archive directory (a data directory's `archive/`).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 7)]
    days: i64,
    /// Vercel entries per second.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// The end of the data, in epoch milliseconds (default 2026-11-08T00:00:00Z, so that the
    /// benchmark's time-bounded queries are fixed).
    #[arg(long, default_value_t = 1_794_096_000_000)]
    end_ms: i64,
}

/// Application errors as Warrant's dependencies really phrase them; `{n}` varies per line.
const APP_ERRORS: [(&str, &str); 5] = [
    (
        "PrismaClientKnownRequestError",
        "Unique constraint failed on the fields: (`email`) for user {n}",
    ),
    (
        "StripeConnectionError",
        "An error occurred with our connection to Stripe. Request was retried 2 times.",
    ),
    (
        "FetchError",
        "request to http://meili.internal:7700/indexes/articles/search failed, reason: read ECONNRESET 10.0.3.{n}",
    ),
    (
        "TimeoutError",
        "redis command GET session:{n} timed out after 500 ms",
    ),
    ("Error", "magic link token expired for user {n}"),
];

fn app_error_entry(
    rng: &mut StdRng,
    id: u64,
    time_ms: i64,
    deployment_id: &str,
) -> serde_json::Value {
    let (err_type, template) = APP_ERRORS[rng.random_range(0..APP_ERRORS.len())];
    let message = template.replace("{n}", &rng.random_range(0..250).to_string());
    let line = json!({
        "level": 50, "time": time_ms, "pid": 8, "hostname": "169.254.12.1",
        "err": {"type": err_type, "message": message, "stack": format!("{err_type}: {message}\n    at handler (/var/task/.next/server/app/api/route.js:1:2044)")},
        "msg": message,
    });
    json!({
        "id": format!("{time_ms}{id:010}e"),
        "message": line.to_string(),
        "timestamp": time_ms,
        "requestId": format!("iad1::err-{id}"),
        "projectId": "prj_warrant0000000000000000",
        "projectName": "warrant",
        "deploymentId": deployment_id,
        "source": "lambda",
        "host": "warrant.example.com",
        "environment": "production",
        "executionRegion": "iad1",
        "type": "stderr",
        "level": "error",
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let (catalog, _) =
        slowburn_slo_defs::load_str("warrant.yaml", slowburn_slo_defs::EMBEDDED_CATALOG)
            .map_err(|d| anyhow::anyhow!("embedded catalog: {d:?}"))?;
    let hour_ms = 3_600_000;
    let end = args.end_ms - args.end_ms.rem_euclid(hour_ms);
    let start = end - args.days * 86_400_000;
    let mut generator = Generator::new(11, start);
    generator.step_ms = (1000.0 / args.rate).round().max(1.0) as i64;
    generator.error_ratio = 0.01;
    let mut rng = StdRng::seed_from_u64(12);
    let (mut files, mut log_rows, mut request_rows, mut bytes) = (0usize, 0usize, 0usize, 0u64);
    let mut hour = start;
    let mut next_id = 1u64;
    while hour < end {
        // A new deployment twice a day, as a busy team ships.
        generator.deployment_id = format!("dpl_{:06}", (hour - start) / (12 * hour_ms));
        let mut entries = Vec::new();
        while generator.time_ms < hour + hour_ms - generator.step_ms {
            entries.push(generator.next_entry().1);
            if rng.random_bool(0.01) {
                next_id += 1;
                let deployment_id = generator.deployment_id.clone();
                entries.push(app_error_entry(
                    &mut rng,
                    next_id,
                    generator.time_ms,
                    &deployment_id,
                ));
            }
        }
        let body = serde_json::to_vec(&entries)?;
        let decoded = slowburn_ingest::decode_vercel(&body, hour + hour_ms)?;
        anyhow::ensure!(
            decoded.errors.is_empty(),
            "synthetic entries must decode: {:?}",
            decoded.errors.first()
        );
        let mut dedupe = slowburn_ingest::Deduper::new(i64::MAX / 4, usize::MAX);
        let assembled = slowburn_ingest::assemble(decoded.entries, &mut dedupe, hour + hour_ms);
        let flows: Vec<Option<&str>> = assembled
            .requests
            .iter()
            .map(|r| {
                catalog
                    .match_request(r.method.as_deref(), r.path.as_deref().unwrap_or(""))
                    .map(|i| catalog.flows[i].name.as_str())
            })
            .collect();
        let logs = slowburn_ingest::logs_to_batch(&assembled.logs)?;
        let requests = requests_batch(&assembled.requests, &flows, &[], &[])?;
        log_rows += logs.num_rows();
        request_rows += requests.num_rows();
        let segment_id = (hour + hour_ms) as u64;
        for (table, schema, batch) in [
            (Table::Logs, slowburn_ingest::log_schema(), logs),
            (Table::Requests, requests_schema(), requests),
        ] {
            for (file, data) in encode_segment(table, segment_id, &schema, &[batch], 128 * 1024)? {
                let name = compacted_path(table, segment_id, file.hour_start_ms)
                    .expect("representable hour");
                let path = args.dir.join(name.as_ref());
                std::fs::create_dir_all(path.parent().expect("files live in partitions"))?;
                std::fs::write(&path, &data)?;
                files += 1;
                bytes += data.len() as u64;
            }
        }
        hour += hour_ms;
    }
    println!(
        "wrote {log_rows} log rows and {request_rows} request rows ({} days) in {files} files, {:.1} MB, in {:.1} s",
        args.days,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
