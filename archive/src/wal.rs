//! The write-ahead log's on-disk format: segment files of checksummed records.
//!
//! A segment is `<wal dir>/<id>.wal`, where the id is the segment's creation time in ms (made
//! unique and increasing by the writer). It starts with a 16-byte header (`MAGIC`, then the id
//! as little-endian u64) followed by records:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC-32C of the payload | payload
//! payload = u8 version (1) | u32 LE n | n bytes Arrow IPC stream (logs) | u32 LE m | m bytes Arrow IPC stream (requests)
//! ```
//!
//! Recovery reads records until the first one that is incomplete or fails its checksum and cuts
//! the file there: a torn last record (a crash in the middle of a write) is never half-applied.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

pub const MAGIC: &[u8; 8] = b"SBWAL\0\0\x01";
pub const HEADER_LEN: u64 = 16;
const RECORD_HEADER_LEN: usize = 8;
const PAYLOAD_VERSION: u8 = 1;
/// A record larger than this is corruption, not data (bodies are capped far below it).
const MAX_RECORD_BYTES: u32 = 1 << 30;

/// One durable append: the log rows and the request rows of one ingest request.
#[derive(Debug, Clone)]
pub struct WalRecord {
    pub logs: RecordBatch,
    pub requests: RecordBatch,
}

fn ipc_bytes(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut w = StreamWriter::try_new(
        Vec::with_capacity(batch.get_array_memory_size() / 2 + 1024),
        &batch.schema(),
    )?;
    w.write(batch)?;
    w.finish()?;
    w.into_inner()
}

/// Encodes a record with its length and checksum, ready to append.
pub fn encode_record(logs: &RecordBatch, requests: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let a = ipc_bytes(logs)?;
    let b = ipc_bytes(requests)?;
    let payload_len = 1 + 4 + a.len() + 4 + b.len();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(PAYLOAD_VERSION);
    out.extend_from_slice(&(a.len() as u32).to_le_bytes());
    out.extend_from_slice(&a);
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(&b);
    let crc = crc32c::crc32c(&out[RECORD_HEADER_LEN..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn read_ipc(bytes: &[u8]) -> Result<RecordBatch, String> {
    let reader = StreamReader::try_new(bytes, None).map_err(|e| format!("bad Arrow IPC: {e}"))?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad Arrow IPC: {e}"))?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        1 => Ok(batches.into_iter().next().expect("one batch")),
        _ => arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string()),
    }
}

pub fn decode_payload(payload: &[u8]) -> Result<WalRecord, String> {
    let (&version, rest) = payload.split_first().ok_or("empty payload")?;
    if version != PAYLOAD_VERSION {
        return Err(format!("unknown payload version {version}"));
    }
    let take = |buf: &[u8]| -> Result<(usize, usize), String> {
        let n = u32::from_le_bytes(
            buf.get(..4)
                .ok_or("short payload")?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        if buf.len() < 4 + n {
            return Err("short payload".into());
        }
        Ok((4, 4 + n))
    };
    let (s, e) = take(rest)?;
    let logs = read_ipc(&rest[s..e])?;
    let rest = &rest[e..];
    let (s, e) = take(rest)?;
    let requests = read_ipc(&rest[s..e])?;
    Ok(WalRecord { logs, requests })
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016}.wal"))
}

/// Segment files in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((id, path));
    }
    out.sort();
    Ok(out)
}

/// Creates a segment: header written and synced, and the directory entry synced.
pub fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    let path = segment_path(dir, id);
    let mut f = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..].copy_from_slice(&id.to_le_bytes());
    f.write_all(&header)?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What recovery found in one segment.
#[derive(Debug)]
pub struct RecoveredSegment {
    pub id: u64,
    pub path: PathBuf,
    /// Length after any cut.
    pub bytes: u64,
    pub records: Vec<WalRecord>,
    /// Bytes cut off the end (a torn or corrupt tail).
    pub cut_bytes: u64,
    /// Why the tail was cut, if it was.
    pub cut_reason: Option<String>,
}

/// Reads a segment, cutting a torn or corrupt tail off the file (synced).
pub fn recover_segment(id: u64, path: &Path) -> io::Result<RecoveredSegment> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let total = bytes.len() as u64;
    let mut records = Vec::new();
    let mut good = 0usize;
    let mut reason = None;
    if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
        reason = Some("missing or bad segment header".to_owned());
    } else {
        good = HEADER_LEN as usize;
        loop {
            let rest = &bytes[good..];
            if rest.is_empty() {
                break;
            }
            if rest.len() < RECORD_HEADER_LEN {
                reason = Some(format!("torn record header ({} bytes)", rest.len()));
                break;
            }
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
            if len > MAX_RECORD_BYTES || rest.len() < RECORD_HEADER_LEN + len as usize {
                reason = Some(format!(
                    "torn record: {} of {len} payload bytes present",
                    rest.len() - RECORD_HEADER_LEN
                ));
                break;
            }
            let payload = &rest[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len as usize];
            if crc32c::crc32c(payload) != crc {
                reason = Some("record checksum mismatch".to_owned());
                break;
            }
            match decode_payload(payload) {
                Ok(r) => records.push(r),
                Err(e) => {
                    reason = Some(format!("undecodable record: {e}"));
                    break;
                }
            }
            good += RECORD_HEADER_LEN + len as usize;
        }
    }
    let cut = total - good as u64;
    if cut > 0 {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(good as u64)?;
        f.sync_all()?;
    }
    Ok(RecoveredSegment {
        id,
        path: path.to_owned(),
        bytes: good as u64,
        records,
        cut_bytes: cut,
        cut_reason: reason,
    })
}
