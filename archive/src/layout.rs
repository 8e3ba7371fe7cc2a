//! The archive layout: `{table}/date=YYYY-MM-DD/hour=HH/{ulid}.parquet`, partitioned by event
//! time (Hive style), and the Parquet encoding of a segment's rows.
//!
//! File names are deterministic: the ULID's time part is the id of the WAL segment the rows came
//! from, its random part a hash of the table and partition. Converting the same segment twice
//! (a crash after the upload but before the segment was deleted) therefore overwrites the same
//! objects instead of adding copies, and a listing can tell which segment a file came from.
//!
//! A compacted file (the files of one closed hour merged into one, see `compact.rs`) is named
//! the same way after the highest segment id it holds, with the top byte of the random part set
//! to [`COMPACTED_MARK`]. Compaction only merges segments that are all archived, so every file
//! of its partition with a lower or equal segment id is in it: [`resolve`] uses that to drop what
//! a crash between writing a compacted file and deleting its inputs leaves behind.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use object_store::path::Path as ObjPath;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::ArchiveError;

pub const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Logs,
    Requests,
}

impl Table {
    pub fn dir(self) -> &'static str {
        match self {
            Table::Logs => "logs",
            Table::Requests => "requests",
        }
    }
    /// The event-time column partitions are cut by.
    pub fn time_column(self) -> &'static str {
        match self {
            Table::Logs => "event_time",
            Table::Requests => "time",
        }
    }
}

/// The top byte of a file name's ULID random part: 0 for a segment's file, this for a compacted
/// file.
pub const COMPACTED_MARK: u128 = 0x01;

/// One Parquet file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    pub table: Table,
    /// A compacted file (several segments' rows of one hour).
    pub compacted: bool,
    /// Relative to the archive root.
    pub path: ObjPath,
    /// Start of the file's hour partition (ms); every row's event time is in
    /// `[hour_start_ms, hour_start_ms + 1h)`.
    pub hour_start_ms: i64,
    /// The WAL segment the rows came from.
    pub segment_id: u64,
    pub size_bytes: u64,
    /// Known for files written by this process; `None` for listed ones.
    pub rows: Option<u64>,
}

fn partition_dir(table: Table, hour_start_ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(hour_start_ms)?;
    Some(format!(
        "{}/date={:04}-{:02}-{:02}/hour={:02}",
        table.dir(),
        t.year(),
        t.month(),
        t.day(),
        t.hour()
    ))
}

fn file_ulid(table: Table, segment_id: u64, hour_start_ms: i64, compacted: bool) -> ulid::Ulid {
    let seed = format!("{}/{hour_start_ms}", table.dir());
    let random = xxhash_rust::xxh3::xxh3_128(seed.as_bytes()) & ((1u128 << 72) - 1);
    let mark = if compacted { COMPACTED_MARK << 72 } else { 0 };
    ulid::Ulid::from_parts(segment_id, random | mark)
}

pub fn file_path(table: Table, segment_id: u64, hour_start_ms: i64) -> Option<ObjPath> {
    named_path(table, segment_id, hour_start_ms, false)
}

/// The path of a compacted file holding segments up to `max_segment_id`.
pub fn compacted_path(table: Table, max_segment_id: u64, hour_start_ms: i64) -> Option<ObjPath> {
    named_path(table, max_segment_id, hour_start_ms, true)
}

fn named_path(
    table: Table,
    segment_id: u64,
    hour_start_ms: i64,
    compacted: bool,
) -> Option<ObjPath> {
    let dir = partition_dir(table, hour_start_ms)?;
    Some(ObjPath::from(format!(
        "{dir}/{}.parquet",
        file_ulid(table, segment_id, hour_start_ms, compacted)
    )))
}

/// Splits a listing into the files to read and the superseded ones: per partition, the
/// compacted file with the highest segment id, and the segment files above it, are kept; older
/// compacted files and segment files it already holds are superseded.
pub fn resolve(files: Vec<ArchiveFile>) -> (Vec<ArchiveFile>, Vec<ArchiveFile>) {
    use std::collections::HashMap;
    let mut newest: HashMap<(Table, i64), u64> = HashMap::new();
    for f in files.iter().filter(|f| f.compacted) {
        let e = newest.entry((f.table, f.hour_start_ms)).or_insert(0);
        *e = (*e).max(f.segment_id);
    }
    files
        .into_iter()
        .partition(|f| match newest.get(&(f.table, f.hour_start_ms)) {
            None => true,
            Some(&top) if f.compacted => f.segment_id == top,
            Some(&top) => f.segment_id > top,
        })
}

/// Reads a listed path back: `(table, hour start, segment id, compacted)`; `None` for anything
/// that is not one of ours.
pub fn parse_path(path: &ObjPath) -> Option<(Table, i64, u64, bool)> {
    let parts: Vec<&str> = path.as_ref().split('/').collect();
    let [table, date, hour, file] = parts.as_slice() else {
        return None;
    };
    let table = match *table {
        "logs" => Table::Logs,
        "requests" => Table::Requests,
        _ => return None,
    };
    let date = NaiveDate::parse_from_str(date.strip_prefix("date=")?, "%Y-%m-%d").ok()?;
    let hour: u32 = hour.strip_prefix("hour=")?.parse().ok()?;
    let ulid = ulid::Ulid::from_string(file.strip_suffix(".parquet")?).ok()?;
    let start = date.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_millis();
    let compacted = (ulid.random() >> 72) & 0xff == COMPACTED_MARK;
    Some((table, start, ulid.timestamp_ms(), compacted))
}

pub fn writer_properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(concat!("slowburn ", env!("CARGO_PKG_VERSION")).to_owned())
        .build()
}

/// Cuts the rows of one segment and table into hour partitions, each sorted by event time, and
/// encodes each as one Parquet file.
pub fn encode_segment(
    table: Table,
    segment_id: u64,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    row_group_rows: usize,
) -> Result<Vec<(ArchiveFile, Bytes)>, ArchiveError> {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let all = concat_batches(schema, batches.iter().copied())?;
    let time_idx = schema.index_of(table.time_column())?;
    let order = sort_to_indices(
        all.column(time_idx),
        Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )?;
    let sorted = take_record_batch(&all, &order)?;
    let times = sorted
        .column(time_idx)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| {
            ArchiveError::Encode(format!(
                "column `{}` is not a millisecond timestamp",
                table.time_column()
            ))
        })?
        .clone();
    let props = writer_properties(row_group_rows);
    let mut out = Vec::new();
    let mut start = 0;
    while start < sorted.num_rows() {
        let hour = times.value(start).div_euclid(HOUR_MS) * HOUR_MS;
        let mut end = start;
        while end < sorted.num_rows() && times.value(end).div_euclid(HOUR_MS) * HOUR_MS == hour {
            end += 1;
        }
        let part = sorted.slice(start, end - start);
        let path = file_path(table, segment_id, hour).ok_or_else(|| {
            ArchiveError::Encode(format!(
                "event time {} ms is outside the representable dates",
                times.value(start)
            ))
        })?;
        let mut buf = Vec::with_capacity(part.get_array_memory_size() / 4 + 4096);
        let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(schema), Some(props.clone()))?;
        w.write(&part)?;
        w.close()?;
        let bytes = Bytes::from(buf);
        out.push((
            ArchiveFile {
                table,
                compacted: false,
                path,
                hour_start_ms: hour,
                segment_id,
                size_bytes: bytes.len() as u64,
                rows: Some(part.num_rows() as u64),
            },
            bytes,
        ));
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(table: Table, hour: i64, segment_id: u64, compacted: bool) -> ArchiveFile {
        ArchiveFile {
            table,
            compacted,
            path: if compacted {
                compacted_path(table, segment_id, hour).unwrap()
            } else {
                file_path(table, segment_id, hour).unwrap()
            },
            hour_start_ms: hour,
            segment_id,
            size_bytes: 1,
            rows: None,
        }
    }

    #[test]
    fn a_compacted_file_supersedes_what_it_holds() {
        let (h1, h2) = (HOUR_MS * 500_000, HOUR_MS * 500_001);
        let listing = vec![
            file(Table::Logs, h1, 10, false),
            file(Table::Logs, h1, 20, false),
            file(Table::Logs, h1, 15, true),      // holds 10 (and 15)
            file(Table::Logs, h1, 12, true),      // an older compaction
            file(Table::Logs, h1, 30, false),     // arrived after the compaction
            file(Table::Requests, h1, 10, false), // another table: untouched
            file(Table::Logs, h2, 10, false),     // another hour: untouched
        ];
        let (kept, superseded) = resolve(listing);
        let ids = |v: &[ArchiveFile]| -> Vec<(Table, i64, u64, bool)> {
            let mut x: Vec<_> = v
                .iter()
                .map(|f| (f.table, f.hour_start_ms, f.segment_id, f.compacted))
                .collect();
            x.sort();
            x
        };
        assert_eq!(
            ids(&kept),
            [
                (Table::Logs, h1, 15, true),
                (Table::Logs, h1, 20, false),
                (Table::Logs, h1, 30, false),
                (Table::Logs, h2, 10, false),
                (Table::Requests, h1, 10, false),
            ]
        );
        assert_eq!(
            ids(&superseded),
            [(Table::Logs, h1, 10, false), (Table::Logs, h1, 12, true)]
        );
    }

    #[test]
    fn paths_round_trip() {
        let hour = 1_796_320_800_000; // 2026-12-03T18:00:00Z
        let p = file_path(Table::Logs, 1_796_329_596_341, hour).unwrap();
        assert!(
            p.as_ref().starts_with("logs/date=2026-12-03/hour=18/"),
            "{p}"
        );
        assert_eq!(
            parse_path(&p),
            Some((Table::Logs, hour, 1_796_329_596_341, false))
        );
        let c = compacted_path(Table::Logs, 1_796_329_596_341, hour).unwrap();
        assert_ne!(c, p);
        assert_eq!(
            parse_path(&c),
            Some((Table::Logs, hour, 1_796_329_596_341, true))
        );
        assert_eq!(
            file_path(Table::Logs, 7, hour),
            file_path(Table::Logs, 7, hour),
            "deterministic"
        );
        assert_ne!(
            file_path(Table::Logs, 7, hour),
            file_path(Table::Requests, 7, hour)
        );
        assert_eq!(
            parse_path(&ObjPath::from("logs/date=2026-12-03/x.parquet")),
            None
        );
    }
}
