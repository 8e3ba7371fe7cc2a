//! Start-up: open the archive (recovering the WAL) and rebuild what lives in memory from what is
//! durable: the engine's windows from the request rows of the longest SLO period (archived files
//! plus the WAL), and the redelivery memory from the log ids of the dedupe window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, StringArray};
use futures::StreamExt;
use serde::Serialize;
use slowburn_archive::requests::{RequestRow, RequestView};
use slowburn_archive::{Archive, ArchiveConfig, ArchiveError, HOUR_MS, Recovery, Table};
use slowburn_engine::{Engine, Sample, SampleKind};
use slowburn_ingest::Deduper;
use slowburn_slo_defs::Catalog;

use crate::config::Settings;
use crate::server::AppState;

/// Groups of files read at once while rebuilding.
const READ_CONCURRENCY: usize = 4;
/// Files per group (see `slowburn_archive::read_files`), for the progress count.
const READ_GROUP: usize = 16;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    pub wal_segments: usize,
    pub wal_records: usize,
    pub cut_bytes: u64,
    pub files_read: usize,
    pub requests: u64,
    pub dedupe_keys: u64,
    pub elapsed_ms: u64,
}

pub fn archive_config(settings: &Settings) -> ArchiveConfig {
    let a = &settings.archive;
    ArchiveConfig {
        wal_dir: settings.data_dir.join("wal"),
        segment_max_bytes: a.segment_max_bytes,
        flush_interval: a.flush_interval,
        wal_max_bytes: a.wal_max_bytes,
        row_group_rows: a.row_group_rows,
        retention: a.retention,
        retention_check_interval: a.retention_check_interval,
        upload_timeout: a.upload_timeout,
        append_queue: a.append_queue,
        compact_min_files: a.compact_min_files,
        compact_max_bytes: a.compact_max_bytes,
        compact_after: a.compact_after,
        // Longer than any query may run, so none loses a file it planned to read.
        retire_after: (settings.query.timeout * 2).max(Duration::from_secs(120)),
    }
}

/// Opens the configured store and the archive.
pub async fn open_archive(settings: &Settings) -> Result<(Archive, Recovery), ArchiveError> {
    let url = settings.archive_url();
    let store = slowburn_archive::open_store(&url, settings.archive.allow_http)?;
    let (archive, recovery) = Archive::open(
        archive_config(settings),
        store,
        slowburn_ingest::log_schema(),
    )
    .await?;
    for reason in &recovery.cut_reasons {
        tracing::warn!(%reason, "write-ahead log: cut a torn or corrupt tail");
    }
    tracing::info!(
        archive = %url, segments = recovery.segments, records = recovery.records, log_rows = recovery.log_rows,
        request_rows = recovery.request_rows, files = recovery.files_listed, superseded = recovery.files_superseded,
        "archive open"
    );
    Ok((archive, recovery))
}

/// Flow name → catalog index. Catalogs hold a handful of flows: a scan of short strings beats
/// hashing every one of tens of millions of rows.
pub struct FlowIndex<'a>(Vec<(&'a str, usize)>);

impl<'a> FlowIndex<'a> {
    pub fn new(catalog: &'a Catalog) -> Self {
        FlowIndex(
            catalog
                .flows
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.as_str(), i))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<usize> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }
}

/// Feeds request rows into the engine by the flow they were counted in; returns rows fed.
pub fn feed_requests(
    engine: &mut Engine,
    flows: &FlowIndex<'_>,
    batch: &RecordBatch,
) -> Result<u64, arrow::error::ArrowError> {
    let view = RequestView::new(batch)?;
    let mut n = 0;
    for i in 0..view.len() {
        let row: RequestRow<'_> = view.row(i);
        let Some(flow_index) = row.flow.and_then(|f| flows.get(f)) else {
            continue;
        };
        let kind = if row.envelope {
            SampleKind::Envelope {
                success: row.success,
            }
        } else {
            SampleKind::Http {
                status: row.status.unwrap_or(0),
            }
        };
        engine.record_sample(
            flow_index,
            &Sample {
                time_ms: row.time_ms,
                kind,
                latency_ms: row.latency_ms,
                deployment_id: row.deployment_id,
            },
        );
        n += 1;
    }
    Ok(n)
}

fn seed_requests(dedupe: &mut Deduper, batch: &RecordBatch, since_ms: i64, now_ms: i64) -> u64 {
    let Ok(view) = RequestView::new(batch) else {
        return 0;
    };
    let mut n = 0;
    for i in 0..view.len() {
        let row = view.row(i);
        if let (false, Some(id)) = (row.envelope, row.request_id)
            && row.time_ms >= since_ms
        {
            dedupe.seed(&format!("request:{id}"), now_ms);
            n += 1;
        }
    }
    n
}

fn seed_logs(dedupe: &mut Deduper, batch: &RecordBatch, now_ms: i64) -> u64 {
    let Some(ids) = batch
        .column_by_name("log_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    else {
        return 0;
    };
    for i in 0..ids.len() {
        if ids.is_valid(i) {
            // Split lines carry `<entry id>:<n>`; the entry id is the redelivery key.
            let id = ids.value(i);
            dedupe.seed(id.split_once(':').map_or(id, |(head, _)| head), now_ms);
        }
    }
    ids.len() as u64
}

/// Streams the archived request rows whose hour partitions reach into `[since_ms, ...)` into `f`,
/// oldest first, reading only the columns the engine needs, plus `request_id` for the files that
/// reach into `[ids_since_ms, ...)` (the redelivery window). Returns the number of files read;
/// logs progress every 2 s.
pub async fn for_each_request_batch(
    store: Arc<dyn object_store::ObjectStore>,
    snapshot: &slowburn_archive::Snapshot,
    since_ms: i64,
    ids_since_ms: i64,
    mut f: impl FnMut(&RecordBatch) -> Result<(), arrow::error::ArrowError>,
) -> Result<usize, ArchiveError> {
    let schema = slowburn_archive::requests::requests_schema();
    let names = |with_ids: bool| -> Vec<String> {
        let mut cols: Vec<usize> = RequestView::PROJECTION.to_vec();
        if with_ids {
            cols.push(slowburn_archive::requests::col::REQUEST_ID);
        }
        cols.iter()
            .map(|&i| schema.field(i).name().clone())
            .collect()
    };
    let (recent, old): (Vec<_>, Vec<_>) = snapshot
        .files_of(Table::Requests)
        .filter(|f| f.hour_start_ms + HOUR_MS > since_ms)
        .cloned()
        .partition(|f| f.hour_start_ms + HOUR_MS > ids_since_ms);
    let total = recent.len() + old.len();
    let mut last_log = Instant::now();
    let mut done = 0;
    for (files, with_ids) in [(old, false), (recent, true)] {
        let mut stream = Box::pin(slowburn_archive::read_files(
            store.clone(),
            files,
            Some(names(with_ids)),
            READ_CONCURRENCY,
        ));
        while let Some(batches) = stream.next().await {
            for b in batches? {
                f(&b)?;
            }
            done = (done + READ_GROUP).min(total);
            if last_log.elapsed() >= Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!(
                    files = done,
                    of = total,
                    "rebuilding SLO state from the archived request records"
                );
            }
        }
    }
    Ok(total)
}

/// An engine holding the archived request rows of the catalog's longest period, as of `now_ms`
/// (for `slowburn mcp --archive`, which has no server to ask).
pub async fn engine_from_archive(
    store: Arc<dyn object_store::ObjectStore>,
    snapshot: &slowburn_archive::Snapshot,
    catalog: Arc<Catalog>,
    now_ms: i64,
) -> Result<(Engine, u64), ArchiveError> {
    let flows = FlowIndex::new(&catalog);
    let mut engine = Engine::new(catalog.clone());
    engine.advance(now_ms);
    let mut requests = 0;
    let since = now_ms - catalog.longest_period_ms();
    for_each_request_batch(store, snapshot, since, i64::MAX, |b: &RecordBatch| {
        requests += feed_requests(&mut engine, &flows, b)?;
        Ok(())
    })
    .await?;
    Ok((engine, requests))
}

/// Rebuilds the engine and the redelivery memory, then installs them in `state`.
pub async fn rebuild(
    state: &Arc<AppState>,
    archive: &Archive,
    recovery: Recovery,
) -> Result<RecoveryReport, ArchiveError> {
    let started = Instant::now();
    let now = state.now_ms();
    let catalog: &Catalog = &state.catalog;
    let flows = FlowIndex::new(catalog);
    let period_start = now - catalog.longest_period_ms();
    let dedupe_start = now - state.settings.ingest.dedupe_window_ms;
    let snapshot = archive.snapshot();
    let mut engine = Engine::new(state.catalog.clone());
    engine.advance(now);
    let mut dedupe = Deduper::new(
        state.settings.ingest.dedupe_window_ms,
        state.settings.ingest.dedupe_max_keys,
    );
    let mut report = RecoveryReport {
        wal_segments: recovery.segments,
        wal_records: recovery.records,
        cut_bytes: recovery.cut_bytes,
        ..Default::default()
    };
    report.files_read += for_each_request_batch(
        archive.store(),
        &snapshot,
        period_start,
        dedupe_start - HOUR_MS,
        |b: &RecordBatch| {
            report.requests += feed_requests(&mut engine, &flows, b)?;
            report.dedupe_keys += seed_requests(&mut dedupe, b, dedupe_start, now);
            Ok(())
        },
    )
    .await?;
    for b in &snapshot.live_requests {
        report.requests += feed_requests(&mut engine, &flows, b)?;
        report.dedupe_keys += seed_requests(&mut dedupe, b, dedupe_start, now);
    }
    // Log ids received within the dedupe window: their partitions are at most an hour older
    // than the window (late events aside, which a redelivery can then repeat; documented).
    let log_files: Vec<_> = snapshot
        .files_of(Table::Logs)
        .filter(|f| f.hour_start_ms + 2 * HOUR_MS > dedupe_start)
        .cloned()
        .collect();
    report.files_read += log_files.len();
    let mut stream =
        Box::pin(archive.read_files(log_files, Some(vec!["log_id".to_owned()]), READ_CONCURRENCY));
    while let Some(batches) = stream.next().await {
        for b in batches? {
            report.dedupe_keys += seed_logs(&mut dedupe, &b, now);
        }
    }
    for b in &snapshot.live_logs {
        report.dedupe_keys += seed_logs(&mut dedupe, b, now);
    }
    {
        let mut live = state.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.advance(state.now_ms());
        *live = engine;
    }
    *state.dedupe.lock().unwrap_or_else(|e| e.into_inner()) = dedupe;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
