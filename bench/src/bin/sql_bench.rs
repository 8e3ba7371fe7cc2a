//! Times queries through slowburn's query engine (DataFusion, with the archive's time pruning)
//! over an archive directory, the way the server runs them: the archive's file list is held in
//! memory, so listing is timed once, apart. Prints one JSON line per query (for
//! `bench/sql_vs_duckdb.py`, which compares with DuckDB on the same files).
//!
//!     cargo run --release -p slowburn-bench --bin sql_bench -- --archive /tmp/sqlbench/archive bench/sql/*.datafusion.sql

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use slowburn_archive::ArchiveUrl;
use slowburn_query::{QueryConfig, QueryEngine, QueryInputs};

#[derive(Parser)]
struct Args {
    /// The archive directory.
    #[arg(long)]
    archive: PathBuf,
    /// Timed runs per query after one warm-up run; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Query files.
    queries: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let store = slowburn_archive::open_store(
            &ArchiveUrl::File(std::path::absolute(&args.archive)?),
            false,
        )?;
        let listed = Instant::now();
        let snapshot = slowburn_archive::list_archive(store.as_ref()).await?;
        eprintln!(
            "listed {} files in {:.1} ms",
            snapshot.files.len(),
            listed.elapsed().as_secs_f64() * 1e3
        );
        let config = QueryConfig {
            timeout: Duration::from_secs(600),
            memory_limit_bytes: 4 << 30,
            max_rows: 1_000_000,
            max_concurrent: 1,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let engine = Arc::new(QueryEngine::new(
            config,
            store,
            slowburn_ingest::log_schema(),
        )?);
        for path in &args.queries {
            let sql = std::fs::read_to_string(path)?;
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .unwrap_or("query")
                .to_owned();
            let inputs = || QueryInputs {
                snapshot: snapshot.clone(),
                state: None,
            };
            let first = engine
                .run(&sql, inputs(), None)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let mut times = Vec::with_capacity(args.runs);
            for _ in 0..args.runs.max(1) {
                let started = Instant::now();
                engine
                    .run(&sql, inputs(), None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                times.push(started.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({
                    "name": name,
                    "median_ms": times[times.len() / 2],
                    "min_ms": times[0],
                    "rows": first.rows,
                    "result": first.json_rows(),
                })
            );
        }
        anyhow::Ok(())
    })
}
