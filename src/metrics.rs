//! slowburn's own Prometheus metrics (OpenMetrics text at `GET /metrics`). Units are in the names.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use slowburn_engine::{EngineCounters, SloStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntryLabels {
    pub endpoint: String,
    /// accepted | rejected | duplicate
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub endpoint: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SloLabels {
    pub slo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SloWindowLabels {
    pub slo: String,
    pub window: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub slo: String,
    pub alert: String,
    pub severity: String,
}

pub struct Metrics {
    registry: Registry,
    pub ingest_entries: Family<EntryLabels, Counter>,
    pub ingest_body_bytes: Family<EndpointLabels, Counter>,
    pub ingest_requests_made: Family<EndpointLabels, Counter>,
    pub http_request_duration: Family<HttpLabels, Histogram>,
    pub engine_events: Family<KindLabels, Counter>,
    pub wal_bytes: Gauge,
    pub wal_max_bytes: Gauge,
    pub archive_pending_segments: Gauge,
    pub archive_upload_failing: Gauge,
    /// Counters mirrored from the archive's own (cumulative) counters at scrape time.
    archive_counters: Vec<(&'static str, Counter)>,
    pub alert_transitions: Family<RuleLabels, Counter>,
    pub alert_firing: Family<RuleLabels, Gauge>,
    pub slo_burn_rate: Family<SloWindowLabels, Gauge<f64, AtomicU64>>,
    pub slo_error_budget_remaining: Family<SloLabels, Gauge<f64, AtomicU64>>,
    pub notifications: Family<ReceiverLabels, Counter>,
    engine_last: std::sync::Mutex<EngineCounters>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let ingest_entries = Family::<EntryLabels, Counter>::default();
        registry.register(
            "slowburn_ingest_entries",
            "Delivered log entries by endpoint and outcome (accepted, rejected, duplicate)",
            ingest_entries.clone(),
        );
        let ingest_body_bytes = Family::<EndpointLabels, Counter>::default();
        registry.register_with_unit(
            "slowburn_ingest_body",
            "Request body bytes received on ingest endpoints, as sent (compressed)",
            Unit::Bytes,
            ingest_body_bytes.clone(),
        );
        let ingest_requests_made = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "slowburn_ingest_request_records",
            "HTTP request records made from ingested entries",
            ingest_requests_made.clone(),
        );
        let http_request_duration = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register_with_unit(
            "slowburn_http_request_duration",
            "Time to answer HTTP requests, by route and status",
            Unit::Seconds,
            http_request_duration.clone(),
        );
        let engine_events = Family::<KindLabels, Counter>::default();
        registry.register(
            "slowburn_engine_events",
            "Request records and flow events seen by the engine: matched, unmatched (no flow), dropped_too_old, dropped_future",
            engine_events.clone(),
        );
        let wal_bytes = Gauge::default();
        registry.register_with_unit(
            "slowburn_wal",
            "Write-ahead log on disk, not yet archived",
            Unit::Bytes,
            wal_bytes.clone(),
        );
        let wal_max_bytes = Gauge::default();
        registry.register_with_unit(
            "slowburn_wal_max",
            "Write-ahead log cap; at the cap ingest answers 503",
            Unit::Bytes,
            wal_max_bytes.clone(),
        );
        let archive_pending_segments = Gauge::default();
        registry.register(
            "slowburn_archive_pending_segments",
            "WAL segments not yet converted and uploaded",
            archive_pending_segments.clone(),
        );
        let archive_upload_failing = Gauge::default();
        registry.register(
            "slowburn_archive_upload_failing",
            "1 while uploads to the object store fail",
            archive_upload_failing.clone(),
        );
        let mut archive_counters = Vec::new();
        for (name, help) in [
            (
                "slowburn_wal_appends",
                "Records appended (fsynced) to the write-ahead log",
            ),
            (
                "slowburn_wal_append_failures",
                "Appends that failed (write or sync error, queue full, shutting down)",
            ),
            (
                "slowburn_wal_rejected_full",
                "Appends refused because the WAL reached its cap",
            ),
            (
                "slowburn_wal_syncs",
                "fsync calls of the write-ahead log (one per commit group)",
            ),
            (
                "slowburn_archive_segments",
                "WAL segments converted, uploaded and deleted",
            ),
            (
                "slowburn_archive_upload_failures",
                "Failed attempts to archive a segment (retried)",
            ),
            (
                "slowburn_archive_files",
                "Parquet files written to the archive",
            ),
            (
                "slowburn_archive_rows",
                "Rows written to Parquet (logs and requests)",
            ),
            (
                "slowburn_archive_expired_files",
                "Parquet files deleted by retention",
            ),
            (
                "slowburn_archive_compacted_files",
                "Parquet files merged into their hour's compacted file",
            ),
        ] {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            archive_counters.push((name, c));
        }
        let parquet_bytes = Counter::default();
        registry.register_with_unit(
            "slowburn_archive_parquet",
            "Parquet bytes written to the archive",
            Unit::Bytes,
            parquet_bytes.clone(),
        );
        archive_counters.push(("slowburn_archive_parquet_bytes", parquet_bytes));
        let alert_transitions = Family::<RuleLabels, Counter>::default();
        registry.register(
            "slowburn_alert_transitions",
            "Burn-rate alert transitions (firing or resolved)",
            alert_transitions.clone(),
        );
        let alert_firing = Family::<RuleLabels, Gauge>::default();
        registry.register(
            "slowburn_alert_firing",
            "1 while a burn-rate rule fires and is not suppressed by a higher tier",
            alert_firing.clone(),
        );
        let slo_burn_rate = Family::<SloWindowLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "slowburn_slo_burn_rate",
            "Error-budget burn rate over a window (1 = spending exactly the budget)",
            slo_burn_rate.clone(),
        );
        let slo_error_budget_remaining = Family::<SloLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "slowburn_slo_error_budget_remaining",
            "Fraction of the period's error budget left",
            Unit::Ratios,
            slo_error_budget_remaining.clone(),
        );
        let notifications = Family::<ReceiverLabels, Counter>::default();
        registry.register(
            "slowburn_notifications",
            "Notification attempts by receiver and outcome (delivered, retried, rejected, expired, queue_full)",
            notifications.clone(),
        );
        Metrics {
            notifications,
            registry,
            ingest_entries,
            ingest_body_bytes,
            ingest_requests_made,
            http_request_duration,
            engine_events,
            wal_bytes,
            wal_max_bytes,
            archive_pending_segments,
            archive_upload_failing,
            archive_counters,
            alert_transitions,
            alert_firing,
            slo_burn_rate,
            slo_error_budget_remaining,
            engine_last: Default::default(),
        }
    }
}

impl Metrics {
    pub fn entries(&self, endpoint: &str, outcome: &str, n: usize) {
        if n > 0 {
            self.ingest_entries
                .get_or_create(&EntryLabels {
                    endpoint: endpoint.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .inc_by(n as u64);
        }
    }

    pub fn notification(&self, receiver: &str, outcome: &str) {
        self.notifications
            .get_or_create(&ReceiverLabels {
                receiver: receiver.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Brings the engine counters and SLO gauges up to date.
    pub fn observe_engine(&self, counters: EngineCounters, status: &[SloStatus]) {
        let mut last = self.engine_last.lock().unwrap_or_else(|e| e.into_inner());
        let pairs = [
            (
                "matched",
                counters.requests_matched + counters.flow_events_matched,
                last.requests_matched + last.flow_events_matched,
            ),
            (
                "unmatched",
                counters.requests_unmatched + counters.flow_events_unmatched,
                last.requests_unmatched + last.flow_events_unmatched,
            ),
            (
                "dropped_too_old",
                counters.dropped_too_old,
                last.dropped_too_old,
            ),
            (
                "dropped_future",
                counters.dropped_future,
                last.dropped_future,
            ),
        ];
        for (kind, now, before) in pairs {
            let counter = self.engine_events.get_or_create(&KindLabels {
                kind: kind.to_owned(),
            });
            if now > before {
                counter.inc_by(now - before);
            }
        }
        *last = counters;
        for s in status {
            for (window, burn) in &s.burn_rates {
                self.slo_burn_rate
                    .get_or_create(&SloWindowLabels {
                        slo: s.name.clone(),
                        window: window.clone(),
                    })
                    .set(burn.unwrap_or(0.0));
            }
            self.slo_error_budget_remaining
                .get_or_create(&SloLabels {
                    slo: s.name.clone(),
                })
                .set(s.error_budget.remaining.unwrap_or(1.0));
            for a in &s.alerts {
                let labels = RuleLabels {
                    slo: s.name.clone(),
                    alert: a.rule.clone(),
                    severity: a.severity.as_str().to_owned(),
                };
                let firing = a.state == slowburn_engine::AlertState::Firing && !a.suppressed;
                self.alert_firing
                    .get_or_create(&labels)
                    .set(i64::from(firing));
            }
        }
    }

    /// Brings the archive gauges and counters up to date (at scrape time).
    pub fn observe_archive(&self, archive: &slowburn_archive::Archive) {
        use std::sync::atomic::Ordering::Relaxed;
        self.wal_bytes.set(archive.wal_bytes() as i64);
        self.wal_max_bytes.set(archive.wal_max_bytes() as i64);
        self.archive_pending_segments
            .set(archive.pending_segments() as i64);
        self.archive_upload_failing
            .set(i64::from(archive.upload_error().is_some()));
        let s = archive.stats();
        let values = [
            s.appends.load(Relaxed),
            s.append_failures.load(Relaxed),
            s.append_rejected_full.load(Relaxed),
            s.syncs.load(Relaxed),
            s.segments_archived.load(Relaxed),
            s.upload_failures.load(Relaxed),
            s.files_written.load(Relaxed),
            s.rows_archived.load(Relaxed),
            s.files_expired.load(Relaxed),
            s.files_compacted.load(Relaxed),
            s.parquet_bytes.load(Relaxed),
        ];
        for ((_, counter), target) in self.archive_counters.iter().zip(values) {
            let current = counter.get();
            if target > current {
                counter.inc_by(target - current);
            }
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
