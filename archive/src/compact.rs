//! Compaction: the many small files of a closed hour partition (one per WAL segment, so one a
//! minute at the default flush interval) merged into one. Small files cost every reader: a
//! restart rebuild of 30 days reads 43,200 of them, and each costs a request, a footer and a
//! decompressor per column.
//!
//! Only partitions whose files all come from archived segments (ids below the oldest segment
//! still in the WAL) are merged, and the merged file is named after the highest id it holds (see
//! `layout.rs`): any file that reaches the partition later has a higher id. The inputs leave the
//! file list in the same step that adds the merged file, so a query sees one or the other, never
//! both; they are deleted only after `retire_after`, longer than a query may run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::layout::{self, ArchiveFile, HOUR_MS, Table};
use crate::{ArchiveError, Inner, lock, now_ms};

/// A pass stops starting merges after this long (it must not hold the flusher for long; a
/// backlog is worked through pass after pass).
const PASS_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Merges what can be merged now; returns the number of partitions compacted.
pub(crate) async fn compact_pass(inner: &Arc<Inner>) -> Result<usize, ArchiveError> {
    let cfg = &inner.config;
    let closed_before = now_ms() as i64 - cfg.compact_after.as_millis() as i64;
    let candidates: Vec<(Table, i64, Vec<ArchiveFile>)> = {
        let state = lock(&inner.state);
        let oldest_pending = state.segments.keys().next().copied().unwrap_or(u64::MAX);
        let mut partitions: BTreeMap<(i64, Table), Vec<ArchiveFile>> = BTreeMap::new();
        for f in &state.files {
            partitions
                .entry((f.hour_start_ms, f.table))
                .or_default()
                .push(f.clone());
        }
        partitions
            .into_iter()
            .filter(|((hour, _), files)| {
                hour + HOUR_MS <= closed_before
                    && files.len() >= cfg.compact_min_files
                    && files.iter().all(|f| f.segment_id < oldest_pending)
                    && files.iter().map(|f| f.size_bytes).sum::<u64>() <= cfg.compact_max_bytes
            })
            .map(|((hour, table), mut files)| {
                files.sort_by_key(|f| f.segment_id);
                (table, hour, files)
            })
            .collect()
    };
    let started = Instant::now();
    let mut done = 0;
    for (table, hour, files) in candidates {
        if started.elapsed() >= PASS_BUDGET {
            break;
        }
        compact_partition(inner, table, hour, files).await?;
        done += 1;
    }
    Ok(done)
}

async fn compact_partition(
    inner: &Arc<Inner>,
    table: Table,
    hour_start_ms: i64,
    files: Vec<ArchiveFile>,
) -> Result<(), ArchiveError> {
    let started = Instant::now();
    let max_segment = files.iter().map(|f| f.segment_id).max().unwrap_or(0);
    let path = layout::compacted_path(table, max_segment, hour_start_ms).ok_or_else(|| {
        ArchiveError::Encode(format!(
            "hour {hour_start_ms} is outside representable dates"
        ))
    })?;
    let timeout = inner.config.upload_timeout;
    let store = inner.store.clone();
    let inputs: Vec<Bytes> = futures::stream::iter(files.clone())
        .map(|f| {
            let store = store.clone();
            async move {
                let get = async { store.get(&f.path).await?.bytes().await };
                match tokio::time::timeout(timeout, get).await {
                    Ok(r) => r.map_err(ArchiveError::from),
                    Err(_) => Err(ArchiveError::Timeout(timeout)),
                }
            }
        })
        .buffered(8)
        .try_collect()
        .await?;
    let schema = match table {
        Table::Logs => inner.logs_schema.clone(),
        Table::Requests => crate::requests::requests_schema(),
    };
    let row_group_rows = inner.config.row_group_rows;
    // Decode one input at a time into the writer: memory holds the inputs' bytes, the output and
    // one input's rows. Inputs are in segment order, which is (nearly) time order.
    let (bytes, rows) =
        tokio::task::spawn_blocking(move || -> Result<(Bytes, u64), ArchiveError> {
            let mut out = Vec::new();
            let mut writer = ArrowWriter::try_new(
                &mut out,
                schema,
                Some(layout::writer_properties(row_group_rows)),
            )?;
            let mut rows = 0u64;
            for input in inputs {
                for batch in ParquetRecordBatchReaderBuilder::try_new(input)?.build()? {
                    let batch = batch?;
                    rows += batch.num_rows() as u64;
                    writer.write(&batch)?;
                }
            }
            writer.close()?;
            Ok((Bytes::from(out), rows))
        })
        .await
        .map_err(|e| ArchiveError::Encode(format!("compaction task failed: {e}")))??;
    let size_bytes = bytes.len() as u64;
    match tokio::time::timeout(timeout, inner.store.put(&path, PutPayload::from(bytes))).await {
        Ok(r) => {
            r?;
        }
        Err(_) => return Err(ArchiveError::Timeout(timeout)),
    }
    let merged = ArchiveFile {
        table,
        compacted: true,
        path,
        hour_start_ms,
        segment_id: max_segment,
        size_bytes,
        rows: Some(rows),
    };
    let merged_path = merged.path.clone();
    let swapped = {
        let mut state = lock(&inner.state);
        // Retention may have removed some inputs meanwhile: then the merged file would hold rows
        // the file list no longer has. Keep things as they are and drop the merged file.
        let all_present = files
            .iter()
            .all(|f| state.files.iter().any(|g| g.path == f.path));
        if all_present {
            state
                .files
                .retain(|g| !files.iter().any(|f| f.path == g.path));
            state.files.push(merged);
            state.files.sort_by_key(|f| (f.hour_start_ms, f.segment_id));
        }
        all_present
    };
    if !swapped {
        let _ = inner.store.delete(&merged_path).await;
        return Ok(());
    }
    let now = Instant::now();
    lock(&inner.retired).extend(files.iter().map(|f| (now, f.path.clone())));
    inner
        .stats
        .files_compacted
        .fetch_add(files.len() as u64, Ordering::Relaxed);
    tracing::debug!(
        table = table.dir(),
        hour_start_ms,
        files = files.len(),
        rows,
        size_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compacted an hour partition"
    );
    Ok(())
}

/// Deletes retired files older than `retire_after`; a failure is retried at the next pass.
pub(crate) async fn delete_retired(inner: &Arc<Inner>) {
    let due: Vec<(Instant, object_store::path::Path)> = {
        let mut retired = lock(&inner.retired);
        let (due, keep): (Vec<_>, Vec<_>) = retired
            .drain(..)
            .partition(|(at, _)| at.elapsed() >= inner.config.retire_after);
        *retired = keep;
        due
    };
    for (at, path) in due {
        match inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(path = %path, error = %e, "cannot delete a compacted input; will retry");
                lock(&inner.retired).push((at, path));
            }
        }
    }
}
