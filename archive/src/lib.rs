//! The durable archive: a write-ahead log in the data directory, then Parquet on object storage.
//!
//! [`Archive::append`] returns only once a record is fsynced to the active WAL segment; appends
//! that arrive while a sync is running share the next one (group commit, on a dedicated writer
//! thread). Segments are sealed by size or age and converted by a background task into Parquet
//! files (`{table}/date=YYYY-MM-DD/hour=HH/{ulid}.parquet`, see [`layout`]), uploaded, and only
//! then deleted. Until then their rows are "live": [`Archive::snapshot`] returns the archived
//! files and the live rows together, taken under one lock, so a reader sees every row exactly
//! once, before, during and after the moment a segment is swapped for its files.
//!
//! Failure behaviour: uploads retry with backoff; the WAL grows up to `wal_max_bytes`, beyond
//! which appends fail with [`AppendError::Full`]; a write or sync error fails the append (the
//! segment is cut back to its last good record and sealed). On open, every segment is read back,
//! a torn tail is cut, and the segment's rows become live again and are converted once more
//! (deterministic file names make that an overwrite, never a copy).

mod compact;
pub mod layout;
pub mod pii;
pub mod requests;
pub mod store;
pub mod wal;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use layout::{ArchiveFile, HOUR_MS, Table};
pub use store::{ArchiveUrl, open_store};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("{0}")]
    Encode(String),
    #[error("object store did not answer within {0:?}")]
    Timeout(Duration),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let context = context.into();
    move |source| ArchiveError::Io { context, source }
}

/// Why an append was not made durable. Every variant means "not stored": answer 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error(
        "write-ahead log is full ({used_bytes} of {max_bytes} bytes): the archive is not keeping up with ingest (is the object store reachable?)"
    )]
    Full { used_bytes: u64, max_bytes: u64 },
    #[error("write-ahead log queue is full ({0} appends waiting)")]
    Busy(usize),
    #[error("write-ahead log write failed: {0}")]
    Io(String),
    #[error("the archive is shutting down")]
    Closed,
    #[error("encoding the write-ahead log record failed: {0}")]
    Encode(String),
}

#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    pub wal_dir: PathBuf,
    /// Seal the active segment once it reaches this size...
    pub segment_max_bytes: u64,
    /// ...or this age.
    pub flush_interval: Duration,
    /// Appends fail with [`AppendError::Full`] beyond this much WAL on disk.
    pub wal_max_bytes: u64,
    pub row_group_rows: usize,
    /// Files whose hour partition ended longer ago than this are deleted.
    pub retention: Duration,
    pub retention_check_interval: Duration,
    pub upload_timeout: Duration,
    /// Appends waiting for the writer thread beyond this are refused ([`AppendError::Busy`]).
    pub append_queue: usize,
    /// Hour partitions with at least this many files are merged into one...
    pub compact_min_files: usize,
    /// ...when their files total at most this many bytes...
    pub compact_max_bytes: u64,
    /// ...once the hour ended this long ago (late events keep coming for a while).
    pub compact_after: Duration,
    /// Merged files are deleted this long after leaving the file list (longer than any query).
    pub retire_after: Duration,
}

/// A consistent view: every row is either in `files` or in the live batches, never both.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub files: Vec<ArchiveFile>,
    pub live_logs: Vec<RecordBatch>,
    pub live_requests: Vec<RecordBatch>,
    /// Listed files whose rows a compacted file holds (left behind by a crash); never read.
    pub superseded: Vec<ArchiveFile>,
}

impl Snapshot {
    pub fn files_of(&self, table: Table) -> impl Iterator<Item = &ArchiveFile> {
        self.files.iter().filter(move |f| f.table == table)
    }
}

/// What [`Archive::open`] found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub segments: usize,
    pub records: usize,
    pub log_rows: usize,
    pub request_rows: usize,
    pub cut_bytes: u64,
    pub cut_reasons: Vec<String>,
    pub files_listed: usize,
    /// Listed files skipped because the WAL still holds their segment (it is converted again),
    /// or because a compacted file holds their rows (deleted).
    pub files_superseded: usize,
    /// WAL segments found already archived (a compacted file holds them) and removed.
    pub segments_already_archived: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    pub appends: AtomicU64,
    pub append_bytes: AtomicU64,
    pub append_failures: AtomicU64,
    pub append_rejected_full: AtomicU64,
    pub syncs: AtomicU64,
    pub segments_sealed: AtomicU64,
    pub segments_archived: AtomicU64,
    pub upload_failures: AtomicU64,
    pub files_written: AtomicU64,
    pub parquet_bytes: AtomicU64,
    pub rows_archived: AtomicU64,
    pub files_expired: AtomicU64,
    pub files_compacted: AtomicU64,
}

#[derive(Debug)]
struct SegmentEntry {
    path: PathBuf,
    bytes: u64,
    sealed: bool,
    opened_at: Instant,
    records: usize,
    logs: Vec<RecordBatch>,
    requests: Vec<RecordBatch>,
}

#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<u64, SegmentEntry>,
    files: Vec<ArchiveFile>,
}

enum Cmd {
    Append {
        record: Vec<u8>,
        logs: RecordBatch,
        requests: RecordBatch,
        reply: oneshot::Sender<Result<(), AppendError>>,
    },
    Seal {
        reply: oneshot::Sender<()>,
    },
}

struct Inner {
    config: ArchiveConfig,
    store: Arc<dyn ObjectStore>,
    logs_schema: SchemaRef,
    state: Mutex<State>,
    wal_bytes: AtomicU64,
    queued: AtomicU64,
    stats: ArchiveStats,
    upload_failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    sealed: Notify,
    /// Compacted inputs waiting for their deletion (see `compact.rs`).
    retired: Mutex<Vec<(Instant, ObjPath)>>,
}

#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
    tx: mpsc::Sender<Cmd>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Archive {
    /// Recovers the WAL, lists the archive, and starts the WAL writer thread. `logs_schema` is
    /// the schema of log batches (the archive stores whatever it is given).
    pub async fn open(
        config: ArchiveConfig,
        store: Arc<dyn ObjectStore>,
        logs_schema: SchemaRef,
    ) -> Result<(Self, Recovery), ArchiveError> {
        let dir = config.wal_dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(format!(
            "cannot create WAL directory {}",
            dir.display()
        )))?;
        let mut recovery = Recovery::default();
        let mut state = State::default();
        let mut wal_bytes = 0;
        let recovered = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || -> Result<Vec<wal::RecoveredSegment>, ArchiveError> {
                let mut out = Vec::new();
                for (id, path) in wal::list_segments(&dir).map_err(io_err(format!(
                    "cannot list WAL directory {}",
                    dir.display()
                )))? {
                    out.push(wal::recover_segment(id, &path).map_err(io_err(format!(
                        "cannot recover WAL segment {}",
                        path.display()
                    )))?);
                }
                Ok(out)
            }
        })
        .await
        .map_err(|e| ArchiveError::Encode(format!("WAL recovery task failed: {e}")))??;
        for seg in recovered {
            if let Some(reason) = &seg.cut_reason {
                recovery.cut_reasons.push(format!(
                    "{}: cut {} bytes ({reason})",
                    seg.path.display(),
                    seg.cut_bytes
                ));
                recovery.cut_bytes += seg.cut_bytes;
            }
            if seg.records.is_empty() {
                std::fs::remove_file(&seg.path).map_err(io_err(format!(
                    "cannot remove empty WAL segment {}",
                    seg.path.display()
                )))?;
                continue;
            }
            recovery.segments += 1;
            recovery.records += seg.records.len();
            let mut entry = SegmentEntry {
                path: seg.path,
                bytes: seg.bytes,
                sealed: true,
                opened_at: Instant::now(),
                records: seg.records.len(),
                logs: Vec::new(),
                requests: Vec::new(),
            };
            for r in seg.records {
                recovery.log_rows += r.logs.num_rows();
                recovery.request_rows += r.requests.num_rows();
                entry.logs.push(r.logs);
                entry.requests.push(r.requests);
            }
            wal_bytes += entry.bytes;
            state.segments.insert(seg.id, entry);
        }
        wal::sync_dir(&dir).map_err(io_err("cannot sync the WAL directory"))?;

        // The archive's files, but not those of segments the WAL still holds (a crash after
        // their upload): those rows are live and will be written again, over the same names.
        let listed = list_archive(store.as_ref()).await?;
        // A WAL segment at or below a compacted file's id was archived before that compaction
        // (compaction only merges archived segments); only a failed delete left it here.
        let newest_compacted = listed
            .files
            .iter()
            .filter(|f| f.compacted)
            .map(|f| f.segment_id)
            .max();
        if let Some(top) = newest_compacted {
            let archived: Vec<u64> = state.segments.range(..=top).map(|(id, _)| *id).collect();
            for id in archived {
                let seg = state.segments.remove(&id).expect("listed above");
                wal_bytes -= seg.bytes;
                recovery.segments -= 1;
                recovery.records -= seg.records;
                recovery.log_rows -= seg.logs.iter().map(|b| b.num_rows()).sum::<usize>();
                recovery.request_rows -= seg.requests.iter().map(|b| b.num_rows()).sum::<usize>();
                recovery.segments_already_archived += 1;
                std::fs::remove_file(&seg.path).map_err(io_err(format!(
                    "cannot remove archived WAL segment {}",
                    seg.path.display()
                )))?;
            }
        }
        for f in &listed.superseded {
            recovery.files_superseded += 1;
            if let Err(e) = store.delete(&f.path).await {
                tracing::warn!(path = %f.path, error = %e, "cannot delete a superseded archive file; it is ignored");
            }
        }
        let mut max_segment = state.segments.keys().next_back().copied().unwrap_or(0);
        for file in listed.files {
            recovery.files_listed += 1;
            max_segment = max_segment.max(file.segment_id);
            if state.segments.contains_key(&file.segment_id) {
                recovery.files_superseded += 1;
                continue;
            }
            state.files.push(file);
        }

        let (tx, rx) = mpsc::channel(config.append_queue.max(1));
        let inner = Arc::new(Inner {
            config,
            store,
            logs_schema,
            state: Mutex::new(state),
            wal_bytes: AtomicU64::new(wal_bytes),
            queued: AtomicU64::new(0),
            stats: ArchiveStats::default(),
            upload_failing: AtomicBool::new(false),
            last_error: Mutex::new(None),
            sealed: Notify::new(),
            retired: Mutex::new(Vec::new()),
        });
        let writer = Writer {
            inner: inner.clone(),
            dir,
            active: None,
            last_id: max_segment,
        };
        std::thread::Builder::new()
            .name("slowburn-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(io_err("cannot start the WAL writer thread"))?;
        Ok((Archive { inner, tx }, recovery))
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.inner.store.clone()
    }

    pub fn stats(&self) -> &ArchiveStats {
        &self.inner.stats
    }

    pub fn wal_bytes(&self) -> u64 {
        self.inner.wal_bytes.load(Ordering::Relaxed)
    }

    pub fn wal_max_bytes(&self) -> u64 {
        self.inner.config.wal_max_bytes
    }

    /// Segments not yet archived (the active one included).
    pub fn pending_segments(&self) -> usize {
        lock(&self.inner.state).segments.len()
    }

    /// Whether the last upload attempt failed, and why.
    pub fn upload_error(&self) -> Option<String> {
        if self.inner.upload_failing.load(Ordering::Relaxed) {
            lock(&self.inner.last_error).clone()
        } else {
            None
        }
    }

    /// Appends one record (the log and request rows of one ingest request); returns once it is
    /// durable on disk.
    pub async fn append(
        &self,
        logs: RecordBatch,
        requests: RecordBatch,
    ) -> Result<(), AppendError> {
        let record =
            wal::encode_record(&logs, &requests).map_err(|e| AppendError::Encode(e.to_string()))?;
        let used = self.inner.wal_bytes.load(Ordering::Relaxed);
        let max = self.inner.config.wal_max_bytes;
        if used + record.len() as u64 > max {
            self.inner
                .stats
                .append_rejected_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::Full {
                used_bytes: used,
                max_bytes: max,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Cmd::Append {
                record,
                logs,
                requests,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    AppendError::Busy(self.inner.config.append_queue)
                }
                mpsc::error::TrySendError::Closed(_) => AppendError::Closed,
            })?;
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let result = rx.await.unwrap_or(Err(AppendError::Closed));
        if result.is_err() {
            self.inner
                .stats
                .append_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Seals the active segment now (if it holds anything), so the flusher converts it.
    pub async fn seal(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Seal { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Archived files and live rows, consistent with each other.
    pub fn snapshot(&self) -> Snapshot {
        let state = lock(&self.inner.state);
        let mut s = Snapshot {
            files: state.files.clone(),
            ..Default::default()
        };
        for seg in state.segments.values() {
            s.live_logs.extend(seg.logs.iter().cloned());
            s.live_requests.extend(seg.requests.iter().cloned());
        }
        s
    }

    /// Starts the flusher (seal by age, convert, upload, swap) and the retention task.
    pub fn start(&self, tracker: &TaskTracker, shutdown: CancellationToken) {
        tracker.spawn(flusher(
            self.inner.clone(),
            self.tx.clone(),
            shutdown.clone(),
        ));
        tracker.spawn(retention(self.inner.clone(), shutdown));
    }

    /// Converts and uploads every sealed segment now (sealing the active one first); returns the
    /// number archived. Used by tests and at shutdown.
    pub async fn flush(&self) -> Result<usize, ArchiveError> {
        self.seal().await;
        let mut n = 0;
        for id in sealed_ids(&self.inner) {
            archive_segment(&self.inner, id).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Merges the files of closed hour partitions now (the flusher also does it every 10 s);
    /// returns the number of partitions merged.
    pub async fn compact(&self) -> Result<usize, ArchiveError> {
        compact::compact_pass(&self.inner).await
    }

    /// Deletes files whose partition is older than the retention; returns how many.
    pub async fn expire(&self) -> Result<usize, ArchiveError> {
        expire_files(&self.inner, now_ms() as i64).await
    }

    /// Reads archived files (only `columns`, by name), several at a time; batches come back in
    /// file order.
    pub fn read_files(
        &self,
        files: Vec<ArchiveFile>,
        columns: Option<Vec<String>>,
        concurrency: usize,
    ) -> impl futures::Stream<Item = Result<Vec<RecordBatch>, ArchiveError>> + use<> {
        read_files(self.inner.store.clone(), files, columns, concurrency)
    }

    pub fn logs_schema(&self) -> SchemaRef {
        self.inner.logs_schema.clone()
    }
}

/// Files fetched and decoded together (one blocking task per group): archives hold many small
/// files, and a hand-off per file costs more than decoding it.
const READ_GROUP_FILES: usize = 16;

/// Reads archived files from `store` (only `columns`, by name), several groups at a time; each
/// item is the batches of one group of files, in file order.
pub fn read_files(
    store: Arc<dyn ObjectStore>,
    files: Vec<ArchiveFile>,
    columns: Option<Vec<String>>,
    concurrency: usize,
) -> impl futures::Stream<Item = Result<Vec<RecordBatch>, ArchiveError>> {
    let groups: Vec<Vec<ArchiveFile>> = files
        .chunks(READ_GROUP_FILES)
        .map(<[ArchiveFile]>::to_vec)
        .collect();
    futures::stream::iter(groups)
        .map(move |g| read_group(store.clone(), g, columns.clone()))
        .buffered(concurrency.max(1))
}

/// Lists an archive's Parquet files (no live rows): what `slowburn sql --archive` reads.
pub async fn list_archive(store: &dyn ObjectStore) -> Result<Snapshot, ArchiveError> {
    let listed: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await?;
    let files: Vec<ArchiveFile> = listed
        .into_iter()
        .filter_map(|meta| {
            let (table, hour_start_ms, segment_id, compacted) = layout::parse_path(&meta.location)?;
            Some(ArchiveFile {
                table,
                compacted,
                path: meta.location,
                hour_start_ms,
                segment_id,
                size_bytes: meta.size,
                rows: None,
            })
        })
        .collect();
    let (mut files, superseded) = layout::resolve(files);
    files.sort_by_key(|f| (f.hour_start_ms, f.segment_id));
    Ok(Snapshot {
        files,
        superseded,
        ..Default::default()
    })
}

async fn read_group(
    store: Arc<dyn ObjectStore>,
    files: Vec<ArchiveFile>,
    columns: Option<Vec<String>>,
) -> Result<Vec<RecordBatch>, ArchiveError> {
    let fetched: Vec<Bytes> = futures::stream::iter(files)
        .map(|f| {
            let store = store.clone();
            async move { store.get(&f.path).await?.bytes().await }
        })
        .buffered(READ_GROUP_FILES)
        .try_collect()
        .await?;
    tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>, ArchiveError> {
        let mut out = Vec::new();
        for bytes in fetched {
            let builder =
                ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024);
            let builder = match &columns {
                Some(cols) => {
                    let mask = ProjectionMask::columns(
                        builder.parquet_schema(),
                        cols.iter().map(String::as_str),
                    );
                    builder.with_projection(mask)
                }
                None => builder,
            };
            for b in builder.build()? {
                out.push(b?);
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| ArchiveError::Encode(format!("Parquet read task failed: {e}")))?
}

struct ActiveSegment {
    id: u64,
    file: File,
    len: u64,
}

/// The WAL writer thread: appends, syncs once per group, seals.
struct Writer {
    inner: Arc<Inner>,
    dir: PathBuf,
    active: Option<ActiveSegment>,
    last_id: u64,
}

/// An append waiting for the writer: the encoded record, its batches, and who to tell.
type PendingAppend = (
    Vec<u8>,
    RecordBatch,
    RecordBatch,
    oneshot::Sender<Result<(), AppendError>>,
);

/// Appends gathered into one write + sync, at most this many bytes.
const GROUP_MAX_BYTES: usize = 16 << 20;

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(first) = rx.blocking_recv() {
            let mut appends = Vec::new();
            let mut seals = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Cmd::Append {
                        record,
                        logs,
                        requests,
                        reply,
                    } => {
                        bytes += record.len();
                        appends.push((record, logs, requests, reply));
                    }
                    Cmd::Seal { reply } => seals.push(reply),
                }
                if bytes < GROUP_MAX_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            self.inner
                .queued
                .fetch_sub(appends.len() as u64, Ordering::Relaxed);
            if !appends.is_empty() {
                self.write_group(appends);
            }
            let full = self
                .active
                .as_ref()
                .is_some_and(|a| a.len >= self.inner.config.segment_max_bytes);
            if full || !seals.is_empty() {
                self.seal();
            }
            for reply in seals {
                let _ = reply.send(());
            }
        }
        // Channel closed: the archive was dropped. The active segment stays on disk as it is;
        // the next start recovers it.
    }

    fn open_segment(&mut self) -> Result<&mut ActiveSegment, std::io::Error> {
        if self.active.is_none() {
            let id = now_ms().max(self.last_id + 1);
            self.last_id = id;
            let file = wal::create_segment(&self.dir, id)?;
            let entry = SegmentEntry {
                path: wal::segment_path(&self.dir, id),
                bytes: wal::HEADER_LEN,
                sealed: false,
                opened_at: Instant::now(),
                records: 0,
                logs: Vec::new(),
                requests: Vec::new(),
            };
            lock(&self.inner.state).segments.insert(id, entry);
            self.inner
                .wal_bytes
                .fetch_add(wal::HEADER_LEN, Ordering::Relaxed);
            self.active = Some(ActiveSegment {
                id,
                file,
                len: wal::HEADER_LEN,
            });
        }
        Ok(self.active.as_mut().expect("just opened"))
    }

    fn write_group(&mut self, appends: Vec<PendingAppend>) {
        let mut buf = Vec::with_capacity(appends.iter().map(|a| a.0.len()).sum());
        for a in &appends {
            buf.extend_from_slice(&a.0);
        }
        let result = self.open_segment().and_then(|seg| {
            seg.file.seek(SeekFrom::Start(seg.len))?;
            seg.file.write_all(&buf)?;
            seg.file.sync_data()
        });
        match result {
            Ok(()) => {
                let seg = self.active.as_mut().expect("opened above");
                seg.len += buf.len() as u64;
                let id = seg.id;
                self.inner
                    .wal_bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                let stats = &self.inner.stats;
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                stats
                    .appends
                    .fetch_add(appends.len() as u64, Ordering::Relaxed);
                stats
                    .append_bytes
                    .fetch_add(buf.len() as u64, Ordering::Relaxed);
                let mut replies = Vec::with_capacity(appends.len());
                {
                    // Visible to snapshots before any caller hears "durable".
                    let mut state = lock(&self.inner.state);
                    let entry = state
                        .segments
                        .get_mut(&id)
                        .expect("active segment is registered");
                    entry.bytes += buf.len() as u64;
                    for (_, logs, requests, reply) in appends {
                        entry.records += 1;
                        entry.logs.push(logs);
                        entry.requests.push(requests);
                        replies.push(reply);
                    }
                }
                for reply in replies {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(error = %message, "write-ahead log write failed; answering 503 and starting a new segment");
                // Cut back to the last good record, so the segment stays readable, and seal it.
                if let Some(seg) = &self.active {
                    let _ = seg.file.set_len(seg.len);
                    let _ = seg.file.sync_all();
                }
                self.seal();
                for (_, _, _, reply) in appends {
                    let _ = reply.send(Err(AppendError::Io(message.clone())));
                }
            }
        }
    }

    fn seal(&mut self) {
        let Some(seg) = self.active.take() else {
            return;
        };
        let mut state = lock(&self.inner.state);
        let empty = state.segments.get(&seg.id).is_none_or(|e| e.records == 0);
        if empty {
            // Nothing in it: keep writing to it later rather than leave an empty file behind.
            drop(state);
            self.active = Some(seg);
            return;
        }
        if let Some(e) = state.segments.get_mut(&seg.id) {
            e.sealed = true;
        }
        drop(state);
        self.inner
            .stats
            .segments_sealed
            .fetch_add(1, Ordering::Relaxed);
        self.inner.sealed.notify_one();
    }
}

fn sealed_ids(inner: &Inner) -> Vec<u64> {
    lock(&inner.state)
        .segments
        .iter()
        .filter(|(_, e)| e.sealed)
        .map(|(id, _)| *id)
        .collect()
}

/// Converts one sealed segment to Parquet, uploads it, then swaps it for its files.
async fn archive_segment(inner: &Arc<Inner>, id: u64) -> Result<(), ArchiveError> {
    let (logs, requests) = {
        let state = lock(&inner.state);
        let Some(e) = state.segments.get(&id) else {
            return Ok(());
        };
        (e.logs.clone(), e.requests.clone())
    };
    let logs_schema = inner.logs_schema.clone();
    let row_group_rows = inner.config.row_group_rows;
    let files =
        tokio::task::spawn_blocking(move || -> Result<Vec<(ArchiveFile, Bytes)>, ArchiveError> {
            let mut out =
                layout::encode_segment(Table::Logs, id, &logs_schema, &logs, row_group_rows)?;
            out.extend(layout::encode_segment(
                Table::Requests,
                id,
                &requests::requests_schema(),
                &requests,
                row_group_rows,
            )?);
            Ok(out)
        })
        .await
        .map_err(|e| ArchiveError::Encode(format!("Parquet encode task failed: {e}")))??;
    let timeout = inner.config.upload_timeout;
    let uploaded: Vec<ArchiveFile> = futures::stream::iter(files)
        .map(|(file, bytes)| {
            let store = inner.store.clone();
            async move {
                let put = store.put(&file.path, PutPayload::from(bytes));
                match tokio::time::timeout(timeout, put).await {
                    Ok(r) => r.map(|_| file).map_err(ArchiveError::from),
                    Err(_) => Err(ArchiveError::Timeout(timeout)),
                }
            }
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    let path = {
        let mut state = lock(&inner.state);
        let Some(entry) = state.segments.remove(&id) else {
            return Ok(());
        };
        // A compacted file of the same hour with an id at or above this segment's already holds
        // these rows (the segment was archived once before a crash kept it in the WAL).
        let (uploaded, held): (Vec<_>, Vec<_>) = uploaded.into_iter().partition(|u| {
            !state.files.iter().any(|f| {
                f.compacted
                    && f.table == u.table
                    && f.hour_start_ms == u.hour_start_ms
                    && f.segment_id >= u.segment_id
            })
        });
        let now = Instant::now();
        lock(&inner.retired).extend(held.into_iter().map(|f| (now, f.path)));
        let rows: u64 = uploaded.iter().filter_map(|f| f.rows).sum();
        let bytes: u64 = uploaded.iter().map(|f| f.size_bytes).sum();
        inner
            .stats
            .files_written
            .fetch_add(uploaded.len() as u64, Ordering::Relaxed);
        inner
            .stats
            .parquet_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        inner.stats.rows_archived.fetch_add(rows, Ordering::Relaxed);
        state.files.extend(uploaded);
        state.files.sort_by_key(|f| (f.hour_start_ms, f.segment_id));
        inner.wal_bytes.fetch_sub(entry.bytes, Ordering::Relaxed);
        entry.path
    };
    inner
        .stats
        .segments_archived
        .fetch_add(1, Ordering::Relaxed);
    if let Err(e) = std::fs::remove_file(&path) {
        // The rows are archived; a leftover segment is converted again (same names) at the next
        // start, so this wastes work but loses and duplicates nothing.
        tracing::warn!(path = %path.display(), error = %e, "cannot delete an archived WAL segment");
    }
    if let Some(dir) = path.parent() {
        let _ = wal::sync_dir(dir);
    }
    Ok(())
}

async fn flusher(inner: Arc<Inner>, tx: mpsc::Sender<Cmd>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    let mut last_compaction = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = inner.sealed.notified() => {}
        }
        let old = {
            let state = lock(&inner.state);
            state.segments.values().any(|e| {
                !e.sealed && e.records > 0 && e.opened_at.elapsed() >= inner.config.flush_interval
            })
        };
        if old {
            let (reply, rx) = oneshot::channel();
            if tx.send(Cmd::Seal { reply }).await.is_ok() {
                let _ = rx.await;
            }
        }
        for id in sealed_ids(&inner) {
            match archive_segment(&inner, id).await {
                Ok(()) => {
                    if inner.upload_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "archive uploads succeed again; draining the write-ahead log"
                        );
                    }
                    backoff = Duration::from_millis(500);
                }
                Err(e) => {
                    inner.stats.upload_failures.fetch_add(1, Ordering::Relaxed);
                    let message = e.to_string();
                    let was = inner.upload_failing.swap(true, Ordering::Relaxed);
                    tracing::warn!(
                        segment = id, error = %message, retry_in_ms = backoff.as_millis() as u64,
                        wal_bytes = inner.wal_bytes.load(Ordering::Relaxed), wal_max_bytes = inner.config.wal_max_bytes,
                        first_failure = !was, "archive upload failed; the segment stays in the write-ahead log"
                    );
                    *lock(&inner.last_error) = Some(message);
                    let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 4);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff + Duration::from_millis(jitter)) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    break;
                }
            }
        }
        if last_compaction.elapsed() >= COMPACT_EVERY
            && !inner.upload_failing.load(Ordering::Relaxed)
        {
            last_compaction = Instant::now();
            match compact::compact_pass(&inner).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(partitions = n, "compacted closed hour partitions"),
                Err(e) => tracing::warn!(error = %e, "compaction failed; will retry"),
            }
            compact::delete_retired(&inner).await;
        }
    }
}

/// How often the flusher looks for partitions to compact.
const COMPACT_EVERY: Duration = Duration::from_secs(10);

async fn retention(inner: Arc<Inner>, shutdown: CancellationToken) {
    let mut first = true;
    loop {
        let wait = if first {
            Duration::from_secs(10)
        } else {
            inner.config.retention_check_interval
        };
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match expire_files(&inner, now_ms() as i64).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                files = n,
                retention_secs = inner.config.retention.as_secs(),
                "deleted expired archive partitions"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention: deleting expired archive files failed; will retry")
            }
        }
    }
}

/// Deletes files whose hour partition ended more than the retention before `now_ms`. They leave
/// the manifest first, so no query plans a file that is being deleted.
async fn expire_files(inner: &Arc<Inner>, now_ms: i64) -> Result<usize, ArchiveError> {
    let cutoff = now_ms - inner.config.retention.as_millis() as i64;
    let expired: Vec<ArchiveFile> = {
        let mut state = lock(&inner.state);
        let (old, keep): (Vec<_>, Vec<_>) = state
            .files
            .drain(..)
            .partition(|f| f.hour_start_ms + HOUR_MS <= cutoff);
        state.files = keep;
        old
    };
    let mut failed = Vec::new();
    for f in &expired {
        match inner.store.delete(&f.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                inner.stats.files_expired.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => failed.push((f.clone(), e)),
        }
    }
    let n = expired.len() - failed.len();
    if let Some((_, e)) = failed.first() {
        let message = e.to_string();
        // Put them back so a later pass retries (they are past retention, queries may still read them).
        let mut state = lock(&inner.state);
        let mut seen: HashSet<ObjPath> = state.files.iter().map(|f| f.path.clone()).collect();
        for (f, _) in failed {
            if seen.insert(f.path.clone()) {
                state.files.push(f);
            }
        }
        state.files.sort_by_key(|f| (f.hour_start_ms, f.segment_id));
        return Err(ArchiveError::Encode(format!(
            "deleting expired files failed: {message}"
        )));
    }
    Ok(n)
}
