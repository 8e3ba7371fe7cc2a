//! Writes a synthetic archive of request records in the production layout, for timing the
//! restart rebuild: `days` of traffic at `rate` requests/s, cut into one file per WAL segment per
//! hour as the server writes them (a segment per `segment_secs`).
//!
//!     cargo run --release -p slowburn-bench --bin synth_archive -- --dir /tmp/rebuild/archive --days 30 --rate 20
//!     slowburn serve --data-dir /tmp/rebuild     # logs "recovered ... elapsed_ms=..."

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use slowburn_archive::Table;
use slowburn_archive::requests::{requests_batch, requests_schema};
use slowburn_model::RequestRecord;

#[derive(Parser)]
struct Args {
    /// The archive directory (a data directory's `archive/`).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Requests per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// One WAL segment (and so one file per hour it touches) per this many seconds.
    #[arg(long, default_value_t = 60)]
    segment_secs: i64,
    /// Write each hour as one compacted file, as the archive looks once compaction has run.
    #[arg(long)]
    compacted: bool,
}

const FLOWS: [(&str, &str, &str, f64); 4] = [
    ("GET", "/api/articles/a-post", "article_read", 150.0),
    ("POST", "/api/auth/signin/email", "auth_magic_link", 250.0),
    (
        "POST",
        "/api/subscribe/checkout",
        "subscribe_checkout",
        420.0,
    ),
    (
        "POST",
        "/api/articles/a-post/publish",
        "article_publish",
        700.0,
    ),
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = now - args.days * 86_400_000;
    let segment_ms = if args.compacted {
        3_600_000
    } else {
        args.segment_secs * 1000
    };
    let per_segment = (args.rate * segment_ms as f64 / 1000.0).round() as usize;
    let props_rows = 128 * 1024;
    let (mut files, mut rows, mut bytes) = (0usize, 0usize, 0u64);
    let mut seg_start = start - start.rem_euclid(segment_ms);
    let mut seq = 0u64;
    while seg_start < now {
        let mut records = Vec::with_capacity(per_segment);
        let mut flows = Vec::with_capacity(per_segment);
        for i in 0..per_segment {
            let (method, path, flow, base) = FLOWS[rng.random_range(0..FLOWS.len())];
            seq += 1;
            records.push(RequestRecord {
                time_ms: seg_start + (i as i64 * segment_ms) / per_segment as i64,
                request_id: Some(format!("iad1::{seq:012x}")),
                method: Some(method.to_owned()),
                path: Some(path.to_owned()),
                status: if rng.random_bool(0.003) { 500 } else { 200 },
                latency_ms: Some((base * (0.5 + rng.random::<f64>())).round()),
                deployment_id: Some(format!("dpl_{:04}", (seg_start - start) / 86_400_000 / 2)),
            });
            flows.push(Some(flow));
        }
        let batch = requests_batch(&records, &flows, &[], &[])?;
        // The segment id is the segment's creation time, as the WAL writer names them.
        let segment_id = (seg_start + segment_ms) as u64;
        for (file, data) in slowburn_archive::layout::encode_segment(
            Table::Requests,
            segment_id,
            &requests_schema(),
            &[batch],
            props_rows,
        )? {
            let name = if args.compacted {
                slowburn_archive::layout::compacted_path(
                    Table::Requests,
                    segment_id,
                    file.hour_start_ms,
                )
                .expect("representable hour")
            } else {
                file.path.clone()
            };
            let path = args.dir.join(name.as_ref());
            std::fs::create_dir_all(path.parent().expect("files live in partitions"))?;
            std::fs::write(&path, &data)?;
            files += 1;
            bytes += data.len() as u64;
        }
        rows += per_segment;
        seg_start += segment_ms;
    }
    println!(
        "wrote {rows} request records ({} days at {} req/s) in {files} files, {:.1} MB, in {:.1} s",
        args.days,
        args.rate,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
