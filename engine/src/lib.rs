//! The SLO engine: exact multiwindow, multi-burn-rate state in memory.
//!
//! Pure and deterministic: no IO, no clock. Event time drives the counters; the caller says what
//! time it is with [`Engine::advance`] (the server: its clock; `replay`: the latest event time).
//!
//! Counters are exact per bucket: 10 s buckets for windows up to 6h, 1 min buckets beyond (and
//! for the period), so a window's burn rate is exact up to one bucket. A window of W covers the
//! buckets that intersect `[now − W, now]` (W/res + 1 of them): no event younger than W is ever
//! missed, and at most one bucket of older events is counted, so a rule never resolves early.

mod flow;
mod ring;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use slowburn_model::{FlowEvent, Outcome, RequestRecord};
use slowburn_slo_defs::{Action, Catalog, Severity, Sli, format_duration};

pub use flow::{DeployStats, FlowHealthStats, FlowSample, FlowState, Percentiles, Stats};
pub use ring::CounterRing;

pub const FINE_RES_MS: i64 = 10_000;
pub const COARSE_RES_MS: i64 = 60_000;
/// Windows up to this length use the 10 s ring.
pub const FINE_SPAN_MS: i64 = 6 * 3_600_000;
/// Events further ahead of "now" than this are dropped (clock skew guard).
pub const MAX_FUTURE_MS: i64 = 5 * 60_000;
/// The windows reported as `burn_rates` (and available to rules).
pub const REPORTED_WINDOWS: [(&str, i64); 7] = [
    ("5m", 300_000),
    ("30m", 1_800_000),
    ("1h", 3_600_000),
    ("2h", 7_200_000),
    ("6h", 21_600_000),
    ("1d", 86_400_000),
    ("3d", 259_200_000),
];
/// SLO status reports latency percentiles over this window.
pub const STATUS_LATENCY_WINDOW_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

#[derive(Debug, Clone)]
struct RuleState {
    state: AlertState,
    since_ms: Option<i64>,
    suppressed: bool,
    burn_long: Option<f64>,
    burn_short: Option<f64>,
}

#[derive(Debug)]
struct SloState {
    fine: CounterRing,
    coarse: CounterRing,
    rules: Vec<RuleState>,
}

/// A rule that changed state (or suppression) at `time_ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertTransition {
    pub time_ms: i64,
    pub slo: String,
    pub flow: String,
    pub alert: String,
    pub severity: Severity,
    pub action: Action,
    pub state: AlertState,
    pub suppressed: bool,
    pub burn_long: Option<f64>,
    pub burn_short: Option<f64>,
    pub factor: f64,
    pub long_window: String,
    pub short_window: String,
    /// Fraction of the period's error budget left when the transition happened.
    pub budget_remaining: Option<f64>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct EngineCounters {
    pub requests_matched: u64,
    pub requests_unmatched: u64,
    pub flow_events_matched: u64,
    pub flow_events_unmatched: u64,
    pub dropped_too_old: u64,
    pub dropped_future: u64,
}

pub struct Engine {
    catalog: Arc<Catalog>,
    now_ms: i64,
    flows: Vec<FlowState>,
    slos: Vec<SloState>,
    counters: EngineCounters,
    max_period_ms: i64,
}

impl Engine {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        let max_period_ms = catalog.longest_period_ms();
        let flows = catalog
            .flows
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let period = catalog
                    .slos
                    .iter()
                    .filter(|s| s.flow_index == i)
                    .map(|s| s.period_ms)
                    .max()
                    .unwrap_or(max_period_ms);
                FlowState::new(period)
            })
            .collect();
        let slos = catalog
            .slos
            .iter()
            .map(|s| SloState {
                fine: CounterRing::new(FINE_RES_MS, FINE_SPAN_MS, MAX_FUTURE_MS),
                coarse: CounterRing::new(COARSE_RES_MS, s.period_ms, MAX_FUTURE_MS),
                rules: s
                    .rules
                    .iter()
                    .map(|_| RuleState {
                        state: AlertState::Resolved,
                        since_ms: None,
                        suppressed: false,
                        burn_long: None,
                        burn_short: None,
                    })
                    .collect(),
            })
            .collect();
        Engine {
            catalog,
            now_ms: i64::MIN,
            flows,
            slos,
            counters: EngineCounters::default(),
            max_period_ms,
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    pub fn counters(&self) -> EngineCounters {
        self.counters
    }

    /// Moves "now" forward (never back).
    pub fn advance(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// False when the event is outside [now − longest period, now + 5 min].
    fn in_range(&mut self, t: i64) -> bool {
        if self.now_ms != i64::MIN && t > self.now_ms.saturating_add(MAX_FUTURE_MS) {
            self.counters.dropped_future += 1;
            return false;
        }
        if self.now_ms != i64::MIN && t < self.now_ms.saturating_sub(self.max_period_ms) {
            self.counters.dropped_too_old += 1;
            return false;
        }
        true
    }

    pub fn record_request(&mut self, r: &RequestRecord) {
        let Some(fi) = self.match_request(r) else {
            self.counters.requests_unmatched += 1;
            return;
        };
        self.counters.requests_matched += 1;
        self.record_sample(fi, &Sample::of_request(r));
    }

    /// The flow a request counts in, if any (catalog order decides overlaps).
    pub fn match_request(&self, r: &RequestRecord) -> Option<usize> {
        self.catalog
            .match_request(r.method.as_deref(), r.path.as_deref()?)
    }

    pub fn record_flow_event(&mut self, e: &FlowEvent) {
        let Some(fi) = self.catalog.match_envelope(&e.flow) else {
            self.counters.flow_events_unmatched += 1;
            return;
        };
        self.counters.flow_events_matched += 1;
        self.record_sample(fi, &Sample::of_flow_event(e));
    }

    /// Counts one observation already matched to flow `flow_index` (as when state is rebuilt
    /// from archived request rows, which carry their flow).
    pub fn record_sample(&mut self, flow_index: usize, s: &Sample<'_>) {
        if flow_index >= self.flows.len() || !self.in_range(s.time_ms) {
            return;
        }
        let (error, status) = match s.kind {
            SampleKind::Http { status } => (status >= 500 || status <= 0, Some(status)),
            SampleKind::Envelope { success } => (!success, None),
        };
        self.flows[flow_index].add(
            &FlowSample {
                time_ms: s.time_ms,
                status,
                error,
                latency_ms: s.latency_ms,
                deployment_id: s.deployment_id,
            },
            self.now_ms,
        );
        for (si, slo) in self.catalog.slos.iter().enumerate() {
            if slo.flow_index != flow_index {
                continue;
            }
            let good = match (slo.sli, s.kind) {
                (Sli::Availability, SampleKind::Http { .. }) => !error,
                (Sli::Latency { threshold_ms }, SampleKind::Http { .. }) => match s.latency_ms {
                    Some(l) => l <= threshold_ms,
                    None => continue, // no latency, no latency SLI event
                },
                (Sli::Envelope, SampleKind::Envelope { success }) => success,
                _ => continue,
            };
            add_event(
                &mut self.slos[si],
                slo.period_ms,
                self.now_ms,
                s.time_ms,
                good,
            );
        }
    }

    /// `(good, total)` of an SLO over a window ending now.
    pub fn window_counts(&self, slo_index: usize, window_ms: i64) -> (u64, u64) {
        let s = &self.slos[slo_index];
        if window_ms <= FINE_SPAN_MS {
            s.fine.sum(self.now_ms, window_ms)
        } else {
            s.coarse.sum(self.now_ms, window_ms)
        }
    }

    fn burn(&self, slo_index: usize, window_ms: i64) -> (Option<f64>, u64) {
        let (good, total) = self.window_counts(slo_index, window_ms);
        let budget = self.catalog.slos[slo_index].error_budget;
        let burn = (total > 0).then(|| (total - good) as f64 / total as f64 / budget);
        (burn, total)
    }

    /// Budget consumed over the period, as a fraction (1.0 = all of it).
    fn budget_consumed(&self, slo_index: usize) -> Option<f64> {
        let slo = &self.catalog.slos[slo_index];
        let (good, total) = self.slos[slo_index].coarse.sum(self.now_ms, slo.period_ms);
        (total > 0).then(|| (total - good) as f64 / total as f64 / slo.error_budget)
    }

    /// Evaluates every rule at the current time; returns the rules that changed.
    pub fn evaluate(&mut self) -> Vec<AlertTransition> {
        let mut out = Vec::new();
        if self.now_ms == i64::MIN {
            return out;
        }
        for si in 0..self.slos.len() {
            let slo = self.catalog.slos[si].clone();
            let mut cache: Vec<(i64, (Option<f64>, u64))> = Vec::new();
            let mut burn_of = |w: i64, me: &Self| match cache.iter().find(|c| c.0 == w) {
                Some(c) => c.1,
                None => {
                    let b = me.burn(si, w);
                    cache.push((w, b));
                    b
                }
            };
            let mut firing = Vec::with_capacity(slo.rules.len());
            let mut burns = Vec::with_capacity(slo.rules.len());
            for rule in &slo.rules {
                let (long, long_total) = burn_of(rule.long_ms, self);
                let (short, _) = burn_of(rule.short_ms, self);
                // Windows with no events never fire; the low-traffic guard needs min_events.
                let fires = long_total >= slo.min_events.max(1)
                    && long.is_some_and(|b| b > rule.factor)
                    && short.is_some_and(|b| b > rule.factor);
                firing.push(fires);
                burns.push((long, short));
            }
            // The period sum is the costliest read: only when a transition needs it.
            let mut remaining_cache: Option<Option<f64>> = None;
            for (ri, rule) in slo.rules.iter().enumerate() {
                // Suppressed while a rule of higher severity (or of the same severity and listed
                // earlier, i.e. faster) of the same SLO fires.
                let suppressed = firing[ri]
                    && slo.rules.iter().enumerate().any(|(j, other)| {
                        j != ri
                            && firing[j]
                            && (other.severity < rule.severity
                                || (other.severity == rule.severity && j < ri))
                    });
                let state = if firing[ri] {
                    AlertState::Firing
                } else {
                    AlertState::Resolved
                };
                let rs = &mut self.slos[si].rules[ri];
                rs.burn_long = burns[ri].0;
                rs.burn_short = burns[ri].1;
                let changed = rs.state != state
                    || (state == AlertState::Firing && rs.suppressed != suppressed);
                if rs.state != state {
                    rs.since_ms = Some(self.now_ms);
                }
                rs.state = state;
                rs.suppressed = suppressed && state == AlertState::Firing;
                if changed {
                    out.push(AlertTransition {
                        time_ms: self.now_ms,
                        slo: slo.name.clone(),
                        flow: slo.flow.clone(),
                        alert: rule.name.clone(),
                        severity: rule.severity,
                        action: rule.action,
                        state,
                        suppressed: rs.suppressed,
                        burn_long: burns[ri].0,
                        burn_short: burns[ri].1,
                        factor: rule.factor,
                        long_window: format_duration(rule.long_ms),
                        short_window: format_duration(rule.short_ms),
                        budget_remaining: *remaining_cache
                            .get_or_insert_with(|| self.budget_consumed(si).map(|c| 1.0 - c)),
                    });
                }
            }
        }
        out
    }

    /// The status of every SLO at the current time.
    pub fn status(&self) -> Vec<SloStatus> {
        (0..self.slos.len()).map(|i| self.slo_status(i)).collect()
    }

    pub fn slo_status(&self, si: usize) -> SloStatus {
        let slo = &self.catalog.slos[si];
        let (good, total) = self.slos[si].coarse.sum(self.now_ms, slo.period_ms);
        let consumed = self.budget_consumed(si);
        let burn_1h = self.burn(si, 3_600_000).0;
        let remaining = consumed.map(|c| 1.0 - c);
        let time_to_exhaustion_secs = match (remaining, burn_1h) {
            (Some(r), Some(b)) if b > 0.0 && r > 0.0 => Some(r * slo.period_ms as f64 / 1000.0 / b),
            (Some(r), _) if r <= 0.0 => Some(0.0),
            _ => None,
        };
        SloStatus {
            name: slo.name.clone(),
            flow: slo.flow.clone(),
            objective: (slo.objective * 1e9).round() / 1e7,
            period: format_duration(slo.period_ms),
            sli_kind: slo.sli,
            sli: SliCounts {
                good,
                total,
                ratio: (total > 0).then(|| good as f64 / total as f64),
            },
            error_budget: Budget {
                remaining,
                consumed,
                time_to_exhaustion_secs,
            },
            burn_rates: REPORTED_WINDOWS
                .iter()
                .map(|(n, w)| (n.to_string(), self.burn(si, *w).0))
                .collect(),
            alerts: slo
                .rules
                .iter()
                .zip(&self.slos[si].rules)
                .map(|(r, s)| AlertStatus {
                    rule: r.name.clone(),
                    severity: r.severity,
                    action: r.action,
                    state: s.state,
                    since_ms: s.since_ms,
                    burn_long: s.burn_long,
                    burn_short: s.burn_short,
                    factor: r.factor,
                    long_window: format_duration(r.long_ms),
                    short_window: format_duration(r.short_ms),
                    suppressed: s.suppressed,
                })
                .collect(),
            latency_ms: self.flows[slo.flow_index].latency(self.now_ms, STATUS_LATENCY_WINDOW_MS),
            runbook: slo.runbook.clone(),
            as_of_ms: self.now_ms,
        }
    }

    /// Health of a flow over `window_ms` ending now; `None` for an unknown flow.
    pub fn flow_health(&self, flow: &str, window_ms: i64) -> Option<FlowHealthStats> {
        let i = self.catalog.flows.iter().position(|f| f.name == flow)?;
        Some(self.flows[i].health(self.now_ms, window_ms))
    }

    /// Approximate heap bytes per SLO (its counters, plus its flow's statistics shared by the
    /// flow's SLOs).
    pub fn heap_bytes_per_slo(&self) -> Vec<(String, usize)> {
        self.catalog
            .slos
            .iter()
            .zip(&self.slos)
            .map(|(s, st)| {
                (
                    s.name.clone(),
                    st.fine.heap_bytes()
                        + st.coarse.heap_bytes()
                        + self.flows[s.flow_index].heap_bytes(),
                )
            })
            .collect()
    }
}

fn add_event(s: &mut SloState, period_ms: i64, now_ms: i64, t: i64, good: bool) {
    if now_ms != i64::MIN && t < now_ms - period_ms {
        return;
    }
    // The 10 s ring answers windows up to 6 h only: an older event can never be read from it
    // (now only moves forward), so it is not written there.
    if now_ms == i64::MIN || t >= now_ms - FINE_SPAN_MS - FINE_RES_MS {
        s.fine.add(t, good);
    }
    s.coarse.add(t, good);
}

/// What kind of observation a [`Sample`] is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SampleKind {
    /// An HTTP request; `-1` and `0` mean no response (a server failure).
    Http { status: i32 },
    /// A flow envelope's outcome.
    Envelope { success: bool },
}

/// One observation of a flow, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub time_ms: i64,
    pub kind: SampleKind,
    pub latency_ms: Option<f64>,
    pub deployment_id: Option<&'a str>,
}

impl<'a> Sample<'a> {
    pub fn of_request(r: &'a RequestRecord) -> Self {
        Sample {
            time_ms: r.time_ms,
            kind: SampleKind::Http { status: r.status },
            latency_ms: r.latency_ms,
            deployment_id: r.deployment_id.as_deref(),
        }
    }
    pub fn of_flow_event(e: &'a FlowEvent) -> Self {
        Sample {
            time_ms: e.time_ms,
            kind: SampleKind::Envelope {
                success: e.outcome == Outcome::Success,
            },
            latency_ms: e.duration_ms,
            deployment_id: e.deployment_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliCounts {
    pub good: u64,
    pub total: u64,
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// Fraction of the period's budget left (negative once overspent).
    pub remaining: Option<f64>,
    pub consumed: Option<f64>,
    /// At the current 1h burn rate.
    pub time_to_exhaustion_secs: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStatus {
    pub rule: String,
    pub severity: Severity,
    pub action: Action,
    pub state: AlertState,
    pub since_ms: Option<i64>,
    pub burn_long: Option<f64>,
    pub burn_short: Option<f64>,
    pub factor: f64,
    pub long_window: String,
    pub short_window: String,
    pub suppressed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloStatus {
    pub name: String,
    pub flow: String,
    /// Percent, as written in the catalog.
    pub objective: f64,
    pub period: String,
    pub sli_kind: Sli,
    pub sli: SliCounts,
    pub error_budget: Budget,
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub alerts: Vec<AlertStatus>,
    pub latency_ms: Option<Percentiles>,
    pub runbook: Option<String>,
    pub as_of_ms: i64,
}
