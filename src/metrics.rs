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
    pub live_buffer_rows: Gauge,
    pub alert_transitions: Family<RuleLabels, Counter>,
    pub alert_firing: Family<RuleLabels, Gauge>,
    pub slo_burn_rate: Family<SloWindowLabels, Gauge<f64, AtomicU64>>,
    pub slo_error_budget_remaining: Family<SloLabels, Gauge<f64, AtomicU64>>,
    engine_last: std::sync::Mutex<EngineCounters>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let ingest_entries = Family::<EntryLabels, Counter>::default();
        registry.register("slowburn_ingest_entries", "Delivered log entries by endpoint and outcome (accepted, rejected, duplicate)", ingest_entries.clone());
        let ingest_body_bytes = Family::<EndpointLabels, Counter>::default();
        registry.register_with_unit("slowburn_ingest_body", "Request body bytes received on ingest endpoints, as sent (compressed)", Unit::Bytes, ingest_body_bytes.clone());
        let ingest_requests_made = Family::<EndpointLabels, Counter>::default();
        registry.register("slowburn_ingest_request_records", "HTTP request records made from ingested entries", ingest_requests_made.clone());
        let http_request_duration =
            Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16)));
        registry.register_with_unit("slowburn_http_request_duration", "Time to answer HTTP requests, by route and status", Unit::Seconds, http_request_duration.clone());
        let engine_events = Family::<KindLabels, Counter>::default();
        registry.register(
            "slowburn_engine_events",
            "Request records and flow events seen by the engine: matched, unmatched (no flow), dropped_too_old, dropped_future",
            engine_events.clone(),
        );
        let live_buffer_rows = Gauge::default();
        registry.register("slowburn_live_buffer_rows", "Log rows held in the in-memory live buffer", live_buffer_rows.clone());
        let alert_transitions = Family::<RuleLabels, Counter>::default();
        registry.register("slowburn_alert_transitions", "Burn-rate alert transitions (firing or resolved)", alert_transitions.clone());
        let alert_firing = Family::<RuleLabels, Gauge>::default();
        registry.register("slowburn_alert_firing", "1 while a burn-rate rule fires and is not suppressed by a higher tier", alert_firing.clone());
        let slo_burn_rate = Family::<SloWindowLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("slowburn_slo_burn_rate", "Error-budget burn rate over a window (1 = spending exactly the budget)", slo_burn_rate.clone());
        let slo_error_budget_remaining = Family::<SloLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "slowburn_slo_error_budget_remaining",
            "Fraction of the period's error budget left",
            Unit::Ratios,
            slo_error_budget_remaining.clone(),
        );
        Metrics {
            registry,
            ingest_entries,
            ingest_body_bytes,
            ingest_requests_made,
            http_request_duration,
            engine_events,
            live_buffer_rows,
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
            self.ingest_entries.get_or_create(&EntryLabels { endpoint: endpoint.to_owned(), outcome: outcome.to_owned() }).inc_by(n as u64);
        }
    }

    /// Brings the engine counters and SLO gauges up to date.
    pub fn observe_engine(&self, counters: EngineCounters, status: &[SloStatus]) {
        let mut last = self.engine_last.lock().unwrap_or_else(|e| e.into_inner());
        let pairs = [
            ("matched", counters.requests_matched + counters.flow_events_matched, last.requests_matched + last.flow_events_matched),
            ("unmatched", counters.requests_unmatched + counters.flow_events_unmatched, last.requests_unmatched + last.flow_events_unmatched),
            ("dropped_too_old", counters.dropped_too_old, last.dropped_too_old),
            ("dropped_future", counters.dropped_future, last.dropped_future),
        ];
        for (kind, now, before) in pairs {
            let counter = self.engine_events.get_or_create(&KindLabels { kind: kind.to_owned() });
            if now > before {
                counter.inc_by(now - before);
            }
        }
        *last = counters;
        for s in status {
            for (window, burn) in &s.burn_rates {
                self.slo_burn_rate.get_or_create(&SloWindowLabels { slo: s.name.clone(), window: window.clone() }).set(burn.unwrap_or(0.0));
            }
            self.slo_error_budget_remaining.get_or_create(&SloLabels { slo: s.name.clone() }).set(s.error_budget.remaining.unwrap_or(1.0));
            for a in &s.alerts {
                let labels = RuleLabels { slo: s.name.clone(), alert: a.rule.clone(), severity: a.severity.as_str().to_owned() };
                let firing = a.state == slowburn_engine::AlertState::Firing && !a.suppressed;
                self.alert_firing.get_or_create(&labels).set(i64::from(firing));
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
