//! The durable archive: WAL, Parquet under Hive partitions, S3 through a real S3-protocol server,
//! storage outages, `kill -9`, and SLO state rebuilt after a restart.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::TimestampMillisecondType;
use serde_json::Value;
use slowburn_bench::Generator;

use crate::common::*;
use crate::s3::S3Server;

const VERCEL: &str = "/v1/drains/vercel";

/// What the decoder makes of these bodies on its own (a fresh dedupe memory): the oracle for
/// how many log rows and request records the archive must hold.
fn expected_rows(bodies: &[Vec<u8>]) -> (usize, usize) {
    let mut dedupe = slowburn_ingest::Deduper::new(i64::MAX / 4, usize::MAX / 4);
    let (mut logs, mut requests) = (0, 0);
    for b in bodies {
        let decoded = slowburn_ingest::decode_vercel(b, 0).unwrap();
        let a = slowburn_ingest::assemble(decoded.entries, &mut dedupe, 0);
        dedupe.commit(&a.admitted_keys);
        logs += a.logs.len();
        requests += a.requests.len();
    }
    (logs, requests)
}

fn deliveries(seed: u64, n: usize, entries: usize, start_ms: i64) -> Vec<Vec<u8>> {
    let mut g = Generator::new(seed, start_ms);
    g.step_ms = 20;
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                g.delivery_json(entries)
            } else {
                g.delivery_ndjson(entries)
            }
        })
        .collect()
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, Value) {
    match client.post(url).body(body).send().await {
        Ok(resp) => json_of(resp).await,
        Err(e) => (0, Value::String(e.to_string())),
    }
}

/// Posts `bodies` in order until the first 503: its index, `Retry-After` and JSON body. Every
/// answer before it must be 200.
async fn post_until_refused(
    server: &ChildServer,
    url: &str,
    bodies: &[Vec<u8>],
) -> Option<(usize, String, Value)> {
    for (i, b) in bodies.iter().enumerate() {
        let resp = server
            .client
            .post(url)
            .body(b.clone())
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            let retry_after = resp.headers()["retry-after"].to_str().unwrap().to_owned();
            let (_, v) = json_of(resp).await;
            return Some((i, retry_after, v));
        }
        assert_eq!(resp.status(), 200, "{}", server.log());
    }
    None
}

/// Posts each body as a sender that honours 503 does (Vercel redelivers): again until 200.
async fn post_retrying(server: &ChildServer, url: &str, bodies: &[Vec<u8>], max_tries: usize) {
    for b in bodies {
        let mut tries = 0;
        loop {
            let (status, v) = post(&server.client, url, b.clone()).await;
            if status == 200 {
                break;
            }
            assert_eq!(status, 503, "{v}");
            tries += 1;
            assert!(tries < max_tries, "still refused: {v}\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Checks the Hive layout and the partition bounds of every file under `archive`; returns the
/// log and request batches.
fn check_layout(
    archive: &Path,
) -> (
    Vec<arrow::record_batch::RecordBatch>,
    Vec<arrow::record_batch::RecordBatch>,
) {
    let files = parquet_files(archive);
    assert!(
        !files.is_empty(),
        "no Parquet files under {}",
        archive.display()
    );
    for f in &files {
        let rel = f
            .strip_prefix(archive)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 4, "{rel}");
        assert!(["logs", "requests"].contains(&parts[0]), "{rel}");
        let date = parts[1].strip_prefix("date=").expect(&rel);
        let hour: i64 = parts[2].strip_prefix("hour=").expect(&rel).parse().unwrap();
        let name = parts[3].strip_suffix(".parquet").unwrap();
        assert_eq!(name.len(), 26, "a ULID file name: {rel}");
        // Every row's event time lies in the file's hour partition.
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let start = day
            .and_hms_opt(hour as u32, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let time_col = if parts[0] == "logs" {
            "event_time"
        } else {
            "time"
        };
        let file = std::fs::File::open(f).unwrap();
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let meta = builder.metadata().clone();
        for rg in meta.row_groups() {
            for c in rg.columns() {
                assert!(
                    matches!(c.compression(), parquet::basic::Compression::ZSTD(_)),
                    "{rel}: {} is {:?}",
                    c.column_path(),
                    c.compression()
                );
            }
            let time_stats = rg
                .columns()
                .iter()
                .find(|c| c.column_path().string() == time_col)
                .unwrap();
            assert!(time_stats.statistics().is_some(), "{rel}: statistics on");
        }
        for b in builder.build().unwrap() {
            let b = b.unwrap();
            let t = b
                .column_by_name(time_col)
                .unwrap()
                .as_primitive::<TimestampMillisecondType>();
            for i in 0..t.len() {
                let v = t.value(i);
                assert!(
                    v >= start && v < start + 3_600_000,
                    "{rel}: row at {v} outside its hour"
                );
            }
        }
    }
    (
        read_parquet_dir(&archive.join("logs")),
        read_parquet_dir(&archive.join("requests")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_archive_holds_every_accepted_entry_in_hive_partitions() {
    // The fixtures are from 2024: keep them past the retention pass that runs 10 s after start.
    let s = TestServer::start_with(|s| {
        s.archive.retention = Duration::from_secs(100 * 365 * 86_400);
    })
    .await;
    let mut bodies: Vec<Vec<u8>> = vercel_fixtures().into_iter().map(|(_, b)| b).collect();
    bodies.extend(deliveries(11, 6, 300, now_ms() - 2 * 3_600_000));
    let mut accepted = 0;
    for b in &bodies {
        let (status, v) = s.post(VERCEL, b.clone()).await;
        assert_eq!(status, 200, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
    }
    let (pino_status, pino) = s
        .post("/v1/logs/pino?service=warrant", pino_fixture())
        .await;
    assert_eq!(pino_status, 200, "{pino}");
    let (expected_logs, expected_requests) = expected_rows(&bodies);
    let expected_logs = expected_logs + pino["accepted"].as_u64().unwrap() as usize;
    let live_logs = s.log_rows().await;
    let live_requests = s.sql_count("SELECT count(*) FROM requests").await as usize;
    assert_eq!(live_logs, expected_logs);
    assert!(accepted > 0);

    // The flush interval is 1 s in tests: wait for every segment to be archived.
    let archive = s.state.archive().unwrap().clone();
    eventually(|| {
        let a = archive.clone();
        async move { (a.pending_segments() == 0).then_some(()) }
    })
    .await;
    assert!(
        !s.data_dir()
            .join("wal")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().path().extension().is_some_and(|x| x == "wal") }),
        "archived segments are deleted"
    );

    let (logs, requests) = check_layout(&s.data_dir().join("archive"));
    let rows: usize = logs.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, expected_logs, "one Parquet row per accepted log line");
    let ids = string_column(&logs, "log_id");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        rows,
        "no log row twice"
    );
    assert_eq!(
        logs[0].schema().fields(),
        slowburn_ingest::log_schema().fields(),
        "the documented schema (docs/schema.md)"
    );
    let request_rows: usize = requests.iter().map(|b| b.num_rows()).sum();
    assert_eq!(request_rows, live_requests);
    assert!(request_rows >= expected_requests);

    // The same answer before and after the flush: no gap, no double count.
    assert_eq!(s.log_rows().await, expected_logs);
    assert_eq!(
        s.sql_count("SELECT count(*) FROM requests").await as usize,
        live_requests
    );
    // PII: no client IP leaves in full, no e-mail address survives.
    let ips = string_column(
        &logs
            .iter()
            .map(|b| {
                let c = b.column_by_name("client_ip").unwrap();
                let keep = arrow::compute::is_not_null(c).unwrap();
                arrow::compute::filter_record_batch(b, &keep).unwrap()
            })
            .collect::<Vec<_>>(),
        "client_ip",
    );
    assert!(ips.iter().any(|ip| ip == "203.0.113.0"), "{ips:?}");
    for ip in &ips {
        // The real fixtures arrive with `[redacted]` already.
        assert!(
            ip == "[redacted]" || ip.ends_with(".0") || ip.contains("::"),
            "truncated: {ip}"
        );
    }
    s.stop().await;
}

/// Waits until the archive has nothing left in the WAL and no failing upload.
async fn wait_drained(server: &ChildServer, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let m = server.metrics().await;
        let pending = metric_value(&m, "slowburn_archive_pending_segments").unwrap_or(-1.0);
        let failing = metric_value(&m, "slowburn_archive_upload_failing").unwrap_or(-1.0);
        if pending == 0.0 && failing == 0.0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "archive not drained within {limit:?} (pending {pending}, failing {failing}):\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_archive_survives_a_storage_outage_exactly_once() {
    let mut s3 = S3Server::start("warrant-logs").await;
    let data = tempfile::tempdir().unwrap();
    let config = "[archive]\nurl = \"s3://warrant-logs/slowburn/prod\"\nflush_interval_secs = 0.3\nupload_timeout_secs = 2\n";
    let server = ChildServer::spawn(data.path(), config, &s3.env());
    server.wait_ready().await;
    let bodies = deliveries(21, 24, 150, now_ms() - 3_600_000);
    let url = server.url(VERCEL);
    let mut accepted = 0;
    for b in &bodies[..8] {
        let (status, v) = post(&server.client, &url, b.clone()).await;
        assert_eq!(status, 200, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
    }
    wait_drained(&server, Duration::from_secs(20)).await;
    let prefix = s3.bucket_dir("warrant-logs").join("slowburn/prod");
    assert!(
        !parquet_files(&prefix.join("logs")).is_empty(),
        "uploaded to S3"
    );

    // Outage: the store is gone, ingest goes on into the WAL and keeps answering 200.
    s3.stop().await;
    for b in &bodies[8..16] {
        let (status, v) = post(&server.client, &url, b.clone()).await;
        assert_eq!(status, 200, "the WAL takes the load during an outage: {v}");
        accepted += v["accepted"].as_u64().unwrap();
    }
    eventually_for(Duration::from_secs(20), || async {
        (server.metric("slowburn_archive_upload_failing").await == Some(1.0)).then_some(())
    })
    .await;
    assert!(
        server
            .metric("slowburn_archive_pending_segments")
            .await
            .unwrap()
            > 0.0,
        "segments wait in the WAL"
    );
    // Queries still see everything: archived files are not readable now, but the live rows are.
    for b in &bodies[16..] {
        let (status, v) = post(&server.client, &url, b.clone()).await;
        assert_eq!(status, 200, "{v}");
        accepted += v["accepted"].as_u64().unwrap();
    }

    // Storage is back: the backlog drains, every acknowledged entry is there exactly once.
    s3.restart().await;
    wait_drained(&server, Duration::from_secs(60)).await;
    let (expected_logs, _) = expected_rows(&bodies);
    assert_eq!(accepted as usize, bodies.len() * 150);
    let logs = read_parquet_dir(&prefix.join("logs"));
    let ids = string_column(&logs, "log_id");
    assert_eq!(ids.len(), expected_logs, "{}", server.log());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    let log = server.log();
    assert!(
        log.contains("archive upload failed") && log.contains("archive uploads succeed again"),
        "{log}"
    );

    // `slowburn sql` reads the S3 archive directly.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slowburn"))
        .args([
            "sql",
            "--archive",
            "s3://warrant-logs/slowburn/prod",
            "--format",
            "json",
            "SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM logs",
        ])
        .envs(s3.env())
        .env("SLOWBURN_ARCHIVE_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["rows"][0][0].as_u64().unwrap() as usize,
        expected_logs,
        "{v}"
    );
    assert_eq!(
        v["rows"][0][1].as_u64().unwrap() as usize,
        expected_logs,
        "{v}"
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wal_answers_503_with_retry_after_until_storage_returns() {
    let mut s3 = S3Server::start("logs").await;
    let data = tempfile::tempdir().unwrap();
    let config = "[archive]\nurl = \"s3://logs\"\nflush_interval_secs = 0.2\nupload_timeout_secs = 1\nsegment_max_bytes = 65536\nwal_max_bytes = 400000\n";
    let server = ChildServer::spawn(data.path(), config, &s3.env());
    server.wait_ready().await;
    s3.stop().await;
    let bodies = deliveries(31, 40, 100, now_ms() - 600_000);
    let url = server.url(VERCEL);
    let (first_refused, retry_after, v) = post_until_refused(&server, &url, &bodies)
        .await
        .expect("the WAL cap is reached");
    assert!(retry_after.parse::<u32>().unwrap() >= 1);
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("write-ahead log is full"), "{msg}");
    assert!(
        server
            .metric("slowburn_wal_rejected_full_total")
            .await
            .unwrap()
            >= 1.0
    );

    // Storage returns: the WAL drains and the refused delivery is accepted when retried.
    s3.restart().await;
    wait_drained(&server, Duration::from_secs(60)).await;
    // A sender that honours 503 (as Vercel does) gets everything stored; the WAL cap only
    // paces it while uploads catch up.
    post_retrying(&server, &url, &bodies[first_refused..], 100).await;
    wait_drained(&server, Duration::from_secs(60)).await;
    let logs = read_parquet_dir(&s3.bucket_dir("logs").join("logs"));
    let (expected_logs, _) = expected_rows(&bodies);
    assert_eq!(
        logs.iter().map(|b| b.num_rows()).sum::<usize>(),
        expected_logs
    );
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let data = tempfile::tempdir().unwrap();
    let config = "[archive]\nflush_interval_secs = 0.5\n";
    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    let bodies = Arc::new(deliveries(41, 200, 100, now_ms() - 1_800_000));
    let url = server.url(VERCEL);

    // Four senders; the server is killed while they are mid-flight.
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for worker in 0..4 {
        let (bodies, acked, client, url) = (
            bodies.clone(),
            acked.clone(),
            server.client.clone(),
            url.clone(),
        );
        senders.push(tokio::spawn(async move {
            for i in (worker..bodies.len()).step_by(4) {
                let (status, _) = post(&client, &url, bodies[i].clone()).await;
                if status == 200 {
                    acked.lock().unwrap().push(i);
                } else if status == 0 {
                    return; // connection refused: the server is gone
                }
            }
        }));
    }
    eventually(|| async { (acked.lock().unwrap().len() >= 12).then_some(()) }).await;
    server.kill9();
    for s in senders {
        s.await.unwrap();
    }
    let acked: HashSet<usize> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        acked.len() >= 12 && acked.len() < bodies.len(),
        "killed mid-load"
    );

    // Restart on the same data directory; Vercel redelivers every batch.
    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    let log = server.log();
    assert!(log.contains("recovered"), "{log}");
    for (i, b) in bodies.iter().enumerate() {
        let (status, v) = post(&server.client, &url_of(&server), b.clone()).await;
        assert_eq!(status, 200, "{v}");
        if acked.contains(&i) {
            assert_eq!(
                (v["accepted"].as_u64(), v["duplicates"].as_u64()),
                (Some(0), Some(100)),
                "delivery {i} was acknowledged before the crash: its redelivery is a duplicate"
            );
        }
    }
    wait_drained(&server, Duration::from_secs(30)).await;
    let (expected_logs, expected_requests) = expected_rows(&bodies);
    let archive = data.path().join("archive");
    let logs = read_parquet_dir(&archive.join("logs"));
    let ids = string_column(&logs, "log_id");
    assert_eq!(
        ids.len(),
        expected_logs,
        "every entry archived exactly once"
    );
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), expected_logs);
    let requests = read_parquet_dir(&archive.join("requests"));
    let request_ids = string_column(&requests, "request_id");
    assert_eq!(
        request_ids.len(),
        expected_requests,
        "each request counted once"
    );
    assert_eq!(
        request_ids.iter().collect::<HashSet<_>>().len(),
        expected_requests
    );

    // The engine's windows were rebuilt from the archive and the WAL: its totals match the table.
    let (_, slo) = server.get("/v1/slo/subscribe_checkout_success_rate").await;
    let resp = server
        .client
        .post(server.url("/v1/sql"))
        .json(&serde_json::json!({"sql": "SELECT count(*) FROM requests WHERE flow = 'subscribe_checkout'"}))
        .send()
        .await
        .unwrap();
    let (_, counted) = json_of(resp).await;
    assert_eq!(slo["sli"]["total"], counted["rows"][0][0], "{slo}");
    server.terminate();
}

fn url_of(server: &ChildServer) -> String {
    server.url(VERCEL)
}

/// What must survive a restart: counts, budget and burn rates (windows of 30 min and more, which
/// the few seconds of a restart cannot move by a bucket).
fn durable_view(slos: &Value) -> Vec<Value> {
    slos.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let burn: Vec<Value> = ["30m", "1h", "6h", "1d", "3d"]
                .iter()
                .map(|w| s["burn_rates"][w].clone())
                .collect();
            let firing: Vec<Value> = s["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["state"] == "firing")
                .map(|a| a["rule"].clone())
                .collect();
            serde_json::json!({
                "name": s["name"],
                "sli": s["sli"],
                "consumed": s["error_budget"]["consumed"],
                "burn": burn,
                "firing": firing,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burning_slo_shows_the_same_budget_and_burn_rates_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let config = "[archive]\nflush_interval_secs = 0.3\n";
    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    let url = server.url(VERCEL);
    // 25 minutes of traffic with 30% errors, ending 2 minutes ago.
    let mut g = Generator::new(51, now_ms() - 27 * 60_000);
    g.step_ms = 500;
    g.error_ratio = 0.3;
    for _ in 0..6 {
        let (status, v) = post(&server.client, &url, g.delivery_json(500)).await;
        assert_eq!(status, 200, "{v}");
    }
    wait_drained(&server, Duration::from_secs(20)).await;
    // Some more that stays in the WAL (flushes take 0.3 s; the kill comes first).
    let (status, _) = post(&server.client, &url, g.delivery_ndjson(200)).await;
    assert_eq!(status, 200);
    let (_, before) = server.get("/v1/slo").await;
    let before = durable_view(&before);
    assert!(
        before
            .iter()
            .any(|s| !s["firing"].as_array().unwrap().is_empty()),
        "the scenario burns: {before:#?}"
    );
    server.kill9();

    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    // Alerts are re-evaluated within a second of readiness.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, after) = server.get("/v1/slo").await;
    assert_eq!(durable_view(&after), before);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_closed_hours_and_a_crash_leaves_no_duplicate() {
    let data = tempfile::tempdir().unwrap();
    let config =
        "[archive]\nflush_interval_secs = 0.2\ncompact_min_files = 2\ncompact_after_secs = 0\n";
    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    // Six deliveries in one closed hour (two hours ago), each flushed into its own segment.
    let now = now_ms();
    let hour = now - now.rem_euclid(3_600_000) - 2 * 3_600_000;
    let mut g = Generator::new(61, hour + 60_000);
    g.step_ms = 300;
    let bodies: Vec<Vec<u8>> = (0..6).map(|_| g.delivery_json(100)).collect();
    let url = server.url(VERCEL);
    for b in &bodies {
        let (status, v) = post(&server.client, &url, b.clone()).await;
        assert_eq!(status, 200, "{v}");
        wait_drained(&server, Duration::from_secs(20)).await;
    }
    let day = chrono::DateTime::from_timestamp_millis(hour).unwrap();
    let partition = data
        .path()
        .join("archive/logs")
        .join(day.format("date=%Y-%m-%d/hour=%H").to_string());
    assert_eq!(parquet_files(&partition).len(), 6, "one file per segment");
    let count = |server: &ChildServer| {
        let (client, url) = (server.client.clone(), server.url("/v1/sql"));
        async move {
            let resp = client
                .post(url)
                .json(&serde_json::json!({"sql": "SELECT count(*), count(DISTINCT log_id) FROM logs"}))
                .send()
                .await
                .unwrap();
            let (_, v) = json_of(resp).await;
            (
                v["rows"][0][0].as_i64().unwrap(),
                v["rows"][0][1].as_i64().unwrap(),
            )
        }
    };
    assert_eq!(count(&server).await, (600, 600));

    // The flusher compacts closed hours every 10 s.
    eventually_for(Duration::from_secs(30), || async {
        (server
            .metric("slowburn_archive_compacted_files_total")
            .await
            >= Some(12.0))
        .then_some(())
    })
    .await;
    assert_eq!(count(&server).await, (600, 600), "no gap, no double count");
    // The inputs stay on disk (queries may still read them) until they are retired...
    assert_eq!(parquet_files(&partition).len(), 7);
    // ...and a crash now leaves them behind: the next start sees they are superseded.
    server.kill9();
    let server = ChildServer::spawn(data.path(), config, &[]);
    server.wait_ready().await;
    assert_eq!(
        parquet_files(&partition).len(),
        1,
        "superseded inputs deleted at start"
    );
    assert_eq!(count(&server).await, (600, 600));
    let (status, v) = post(&server.client, &url_of(&server), bodies[0].clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["duplicates"], 100,
        "the redelivery memory is rebuilt from the compacted file"
    );
    server.terminate();
}

/// A tmpfs of a few MiB, unmounted on drop: a real file system that really fills up.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// `None` where mounting is not permitted (not root, or no CAP_SYS_ADMIN).
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_wal_answers_503_never_200_and_loses_nothing() {
    // The data directory (and so the WAL) on a 3 MiB file system; the archive on the normal disk.
    let Some(fs) = SmallFs::mount("3m") else {
        eprintln!("cannot mount a tmpfs here (needs root): disk-full test not run");
        return;
    };
    let archive = tempfile::tempdir().unwrap();
    let config = format!(
        "[archive]\nurl = \"file://{}\"\nflush_interval_secs = 30\nsegment_max_bytes = 67108864\n",
        archive.path().display()
    );
    let server = ChildServer::spawn(fs.path(), &config, &[]);
    server.wait_ready().await;
    let bodies = deliveries(41, 60, 100, now_ms() - 600_000);
    let url = server.url(VERCEL);
    let (first_refused, retry_after, v) = post_until_refused(&server, &url, &bodies)
        .await
        .expect("3 MiB of WAL fills up within 60 deliveries of 100 entries");
    assert!(retry_after.parse::<u32>().unwrap() >= 1);
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("write-ahead log write failed"), "{msg}");
    assert!(
        server
            .metric("slowburn_wal_append_failures_total")
            .await
            .unwrap()
            >= 1.0
    );
    assert!(
        first_refused > 0,
        "some deliveries fit before the disk filled"
    );

    // The failed segment is cut back to its last good record, sealed and archived, which frees
    // the disk; a sender that retries on 503 then gets everything stored, exactly once.
    post_retrying(&server, &url, &bodies[first_refused..], 300).await;
    let log = server.terminate();
    let logs = read_parquet_dir(&archive.path().join("logs"));
    let (expected_logs, _) = expected_rows(&bodies);
    assert_eq!(
        logs.iter().map(|b| b.num_rows()).sum::<usize>(),
        expected_logs,
        "{log}"
    );
    let ids = string_column(&logs, "log_id");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}
