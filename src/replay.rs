//! `slowburn replay`: the engine run offline, in event time, over saved deliveries.
//!
//! Files are read in the order given (a directory: its delivery files — `.json`, `.ndjson`,
//! `.jsonl`, `.log`, `.txt`, optionally `.gz` — recursively, in name order, which is delivery
//! order). Each file is a Vercel drain body (JSON array or NDJSON) or pino NDJSON,
//! optionally gzip-compressed. Redeliveries are dropped as the server drops them. Alert rules are
//! evaluated on every 10 s boundary of event time that the data crosses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use slowburn_engine::{AlertState, AlertTransition, Engine};
use slowburn_ingest::{Deduper, FlowEvent, RequestRecord};
use slowburn_slo_defs::Catalog;

/// Alert rules are evaluated at least this often in event time.
pub const EVALUATE_EVERY_MS: i64 = 10_000;
/// Largest file accepted after decompression.
pub const MAX_FILE_BYTES: usize = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplaySummary {
    pub files: usize,
    pub input_bytes: u64,
    pub entries: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub requests: usize,
    pub flow_events: usize,
    pub transitions: usize,
    pub elapsed_secs: f64,
    /// First few per-entry errors, `file: entry N: error`.
    pub sample_errors: Vec<String>,
}

/// One line of replay output: an alert that fired or resolved.
#[derive(Debug, Serialize)]
struct TransitionLine<'a> {
    time_ms: i64,
    time: String,
    slo: &'a str,
    alert: &'a str,
    severity: &'a str,
    state: &'a str,
    suppressed: bool,
    burn_long: Option<f64>,
    burn_short: Option<f64>,
    factor: f64,
}

pub fn rfc3339_ms(time_ms: i64) -> String {
    DateTime::from_timestamp_millis(time_ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Expands directories into their files (recursively, in name order).
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out)?;
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReplayError> {
    let meta = std::fs::metadata(path).map_err(|e| ReplayError::File {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| ReplayError::File {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    children.sort();
    for c in children {
        // Inside a directory, only delivery files (a README next to saved deliveries is not one).
        if c.is_dir() || is_delivery_name(&c) {
            collect(&c, out)?;
        }
    }
    Ok(())
}

/// `.json`, `.ndjson`, `.jsonl`, `.log`, `.txt`, each optionally `.gz`.
fn is_delivery_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".json", ".ndjson", ".jsonl", ".log", ".txt"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn read_file(path: &Path) -> Result<Vec<u8>, ReplayError> {
    let err = |message: String| ReplayError::File {
        path: path.to_owned(),
        message,
    };
    let raw = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| err(format!("not valid gzip: {e}")))?;
        if out.len() > MAX_FILE_BYTES {
            return Err(err(format!(
                "larger than {MAX_FILE_BYTES} bytes once decompressed"
            )));
        }
        return Ok(out);
    }
    Ok(raw)
}

enum Event<'a> {
    Request(&'a RequestRecord),
    Flow(&'a FlowEvent),
}

impl Event<'_> {
    fn time_ms(&self) -> i64 {
        match self {
            Event::Request(r) => r.time_ms,
            Event::Flow(f) => f.time_ms,
        }
    }
}

pub struct Replay<W: Write> {
    engine: Engine,
    dedupe: Deduper,
    next_eval_ms: Option<i64>,
    /// Event time of the latest request or flow event fed to the engine.
    last_event_ms: Option<i64>,
    /// The longest alert window: once it holds no event, no rule can fire.
    longest_window_ms: i64,
    out: W,
    pub summary: ReplaySummary,
}

impl<W: Write> Replay<W> {
    pub fn new(catalog: Arc<Catalog>, out: W) -> Self {
        let defaults = crate::config::IngestSettings::default();
        Replay {
            longest_window_ms: catalog
                .slos
                .iter()
                .flat_map(|s| s.rules.iter().map(|r| r.long_ms))
                .max()
                .unwrap_or(0),
            engine: Engine::new(catalog),
            dedupe: Deduper::new(defaults.dedupe_window_ms, defaults.dedupe_max_keys),
            next_eval_ms: None,
            last_event_ms: None,
            out,
            summary: ReplaySummary::default(),
        }
    }

    pub fn run(&mut self, files: &[PathBuf]) -> Result<(), ReplayError> {
        let started = Instant::now();
        for path in files {
            let body = read_file(path)?;
            self.feed(path, &body)?;
        }
        self.finish()?;
        self.summary.elapsed_secs = started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Feeds one delivery.
    pub fn feed(&mut self, path: &Path, body: &[u8]) -> Result<(), ReplayError> {
        self.summary.files += 1;
        self.summary.input_bytes += body.len() as u64;
        // Entries without their own time fall back to the latest event time seen.
        let received_ms = if self.engine.now_ms() == i64::MIN {
            0
        } else {
            self.engine.now_ms()
        };
        let file_err = |e: slowburn_ingest::IngestError| ReplayError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        // Replay keeps no log records: only requests and flow events feed the engine.
        let mut decoded = slowburn_ingest::decode_vercel_making(
            body,
            received_ms,
            slowburn_ingest::Make::RequestsOnly,
        )
        .map_err(file_err)?;
        if decoded.entries.is_empty() && !decoded.errors.is_empty() {
            // Not a Vercel delivery: try pino NDJSON.
            let pino = slowburn_ingest::decode_pino(body, None, received_ms).map_err(file_err)?;
            if !pino.entries.is_empty() {
                decoded = pino;
            }
        }
        self.summary.rejected += decoded.errors.len();
        for e in decoded
            .errors
            .iter()
            .take(20usize.saturating_sub(self.summary.sample_errors.len()))
        {
            self.summary.sample_errors.push(format!(
                "{}: entry {}: {}",
                path.display(),
                e.index,
                e.error
            ));
        }
        let latest = decoded
            .entries
            .iter()
            .flat_map(|e| {
                e.logs
                    .iter()
                    .map(|l| l.event_time_ms)
                    .chain(e.requests.iter().map(|r| r.time_ms))
                    .chain(e.flows.iter().map(|f| f.time_ms))
            })
            .max()
            .unwrap_or(received_ms);
        let assembled =
            slowburn_ingest::assemble(decoded.entries, &mut self.dedupe, latest.max(received_ms));
        self.dedupe.commit(&assembled.admitted_keys);
        self.summary.entries += assembled.accepted;
        self.summary.duplicates += assembled.duplicates;
        self.summary.requests += assembled.requests.len();
        self.summary.flow_events += assembled.flows.len();
        let mut events: Vec<Event> = assembled
            .requests
            .iter()
            .map(Event::Request)
            .chain(assembled.flows.iter().map(Event::Flow))
            .collect();
        events.sort_by_key(Event::time_ms);
        for ev in events {
            let t = ev.time_ms();
            self.evaluate_until(t)?;
            match ev {
                Event::Request(r) => self.engine.record_request(r),
                Event::Flow(f) => self.engine.record_flow_event(f),
            }
        }
        Ok(())
    }

    /// Evaluates on every 10 s boundary up to and including `t`.
    fn evaluate_until(&mut self, t: i64) -> Result<(), ReplayError> {
        let next = *self
            .next_eval_ms
            .get_or_insert_with(|| t.div_euclid(EVALUATE_EVERY_MS) * EVALUATE_EVERY_MS);
        let mut next = next;
        while next <= t {
            // Across a quiet gap longer than every alert window, evaluations past the point where
            // all windows are empty cannot change anything: skip to the last boundary before `t`.
            if let Some(last) = self.last_event_ms {
                let quiet_from = last + self.longest_window_ms + EVALUATE_EVERY_MS;
                if next > quiet_from {
                    let last_boundary = t.div_euclid(EVALUATE_EVERY_MS) * EVALUATE_EVERY_MS;
                    if last_boundary > next {
                        next = last_boundary;
                    }
                }
            }
            self.engine.advance(next);
            let transitions = self.engine.evaluate();
            self.emit(&transitions)?;
            next += EVALUATE_EVERY_MS;
        }
        self.next_eval_ms = Some(next);
        self.engine.advance(t);
        self.last_event_ms = Some(self.last_event_ms.map_or(t, |l| l.max(t)));
        Ok(())
    }

    /// A last evaluation at the last event time.
    pub fn finish(&mut self) -> Result<(), ReplayError> {
        let transitions = self.engine.evaluate();
        self.emit(&transitions)
    }

    fn emit(&mut self, transitions: &[AlertTransition]) -> Result<(), ReplayError> {
        for t in transitions {
            self.summary.transitions += 1;
            let line = TransitionLine {
                time_ms: t.time_ms,
                time: rfc3339_ms(t.time_ms),
                slo: &t.slo,
                alert: &t.alert,
                severity: t.severity.as_str(),
                state: match t.state {
                    AlertState::Firing => "firing",
                    AlertState::Resolved => "resolved",
                },
                suppressed: t.suppressed,
                burn_long: t.burn_long,
                burn_short: t.burn_short,
                factor: t.factor,
            };
            serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::from)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn write_status(&mut self) -> Result<(), ReplayError> {
        let status = self.engine.status();
        serde_json::to_writer(&mut self.out, &serde_json::json!({ "status": status }))
            .map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn into_output(self) -> W {
        self.out
    }
}
