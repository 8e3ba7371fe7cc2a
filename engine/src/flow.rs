//! Per-flow statistics for flow health: counts, status codes, deployments, HDR latency.

use std::collections::HashMap;
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in whole milliseconds from 1 ms to 10 min (longer ones saturate), with
/// 2 significant digits (≤ 1% error): about 7 KiB per histogram.
const HIST_MAX_MS: u64 = 600_000;
const HIST_SIGFIG: u8 = 2;
/// Distinct deployment ids kept per flow (later ones are counted as `other`), and per bucket.
const MAX_DEPLOYS: usize = 256;
const MAX_DEPLOYS_PER_BUCKET: usize = 8;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn new_hist() -> Box<Histogram<u32>> {
    Box::new(
        Histogram::new_with_bounds(1, HIST_MAX_MS, HIST_SIGFIG)
            .expect("static histogram bounds are valid"),
    )
}

#[derive(Debug, Default, Clone)]
struct Counts {
    total: u64,
    errors: u64,
    statuses: Vec<(i32, u64)>,
}

impl Counts {
    fn add(&mut self, status: Option<i32>, error: bool) {
        self.total += 1;
        self.errors += u64::from(error);
        if let Some(s) = status {
            match self.statuses.iter_mut().find(|(k, _)| *k == s) {
                Some((_, c)) => *c += 1,
                None => self.statuses.push((s, 1)),
            }
        }
    }
    fn merge(&mut self, o: &Counts) {
        self.total += o.total;
        self.errors += o.errors;
        for &(s, c) in &o.statuses {
            match self.statuses.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += c,
                None => self.statuses.push((s, c)),
            }
        }
    }
}

/// One deployment's counts and latency histogram within a bucket.
type DeployBucket = (Arc<str>, Counts, Option<Box<Histogram<u32>>>);

#[derive(Debug, Default)]
struct Bucket {
    idx: i64,
    counts: Counts,
    hist: Option<Box<Histogram<u32>>>,
    deploys: Vec<DeployBucket>,
}

#[derive(Debug)]
struct Tier {
    res_ms: i64,
    /// The longest window this tier answers; older events can never be read from it.
    span_ms: i64,
    counts: bool,
    hists: bool,
    slots: Vec<Bucket>,
}

impl Tier {
    fn new(res_ms: i64, span_ms: i64, counts: bool, hists: bool) -> Self {
        let len = (span_ms + 10 * 60_000) / res_ms + 2;
        Tier {
            res_ms,
            span_ms,
            counts,
            hists,
            slots: (0..len)
                .map(|_| Bucket {
                    idx: i64::MIN,
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn add(&mut self, ev: &FlowSample, deploy: &Arc<str>) {
        let idx = ev.time_ms.div_euclid(self.res_ms);
        let n = self.slots.len() as i64;
        let b = &mut self.slots[idx.rem_euclid(n) as usize];
        if b.idx != idx {
            if b.idx > idx {
                return;
            }
            *b = Bucket {
                idx,
                ..Default::default()
            };
        }
        // Ids are interned: a pointer comparison finds the deployment's slot.
        let di = match b
            .deploys
            .iter()
            .position(|(d, _, _)| Arc::ptr_eq(d, deploy))
        {
            Some(i) => i,
            None if b.deploys.len() < MAX_DEPLOYS_PER_BUCKET => {
                b.deploys.push((deploy.clone(), Counts::default(), None));
                b.deploys.len() - 1
            }
            None => match b.deploys.iter().position(|(d, _, _)| &**d == "other") {
                Some(i) => i,
                None => {
                    b.deploys
                        .push((Arc::from("other"), Counts::default(), None));
                    b.deploys.len() - 1
                }
            },
        };
        if self.counts {
            b.counts.add(ev.status, ev.error);
            b.deploys[di].1.add(ev.status, ev.error);
        }
        if let (true, Some(ms)) = (self.hists, ev.latency_ms) {
            let v = (ms.round() as u64).clamp(1, HIST_MAX_MS);
            b.hist.get_or_insert_with(new_hist).saturating_record(v);
            b.deploys[di]
                .2
                .get_or_insert_with(new_hist)
                .saturating_record(v);
        }
    }

    fn buckets(&self, now_ms: i64, window_ms: i64) -> impl Iterator<Item = &Bucket> {
        // As `CounterRing::sum`: every bucket that intersects [now − window, now].
        let end = now_ms.div_euclid(self.res_ms);
        let n = (window_ms + self.res_ms - 1) / self.res_ms + 1;
        let len = self.slots.len() as i64;
        (end - n + 1..=end).filter_map(move |idx| {
            let b = &self.slots[idx.rem_euclid(len) as usize];
            (b.idx == idx).then_some(b)
        })
    }

    fn heap_bytes(&self) -> usize {
        let hist = |h: &Option<Box<Histogram<u32>>>| h.as_ref().map_or(0, |_| hist_bytes());
        self.slots.capacity() * std::mem::size_of::<Bucket>()
            + self
                .slots
                .iter()
                .map(|b| {
                    hist(&b.hist)
                        + b.deploys
                            .iter()
                            .map(|d| hist(&d.2) + d.1.statuses.capacity() * 16)
                            .sum::<usize>()
                        + b.counts.statuses.capacity() * 16
                })
                .sum::<usize>()
    }
}

fn hist_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| new_hist().distinct_values() * 4 + 128)
}

/// One observation of a flow: a request or a flow envelope.
#[derive(Debug, Clone)]
pub struct FlowSample<'a> {
    pub time_ms: i64,
    pub status: Option<i32>,
    pub error: bool,
    pub latency_ms: Option<f64>,
    pub deployment_id: Option<&'a str>,
}

/// Statistics of one flow in four tiers: counts per minute and histograms per 5 minutes (for
/// windows up to 6h), both per hour (up to 3d), both per day (up to the longest period).
#[derive(Debug)]
pub struct FlowState {
    minute: Tier,
    five: Tier,
    hour: Tier,
    day: Tier,
    deploy_ids: HashMap<String, Arc<str>>,
    /// The last interned id: consecutive records mostly share their deployment.
    last_deploy: Option<Arc<str>>,
    other: Arc<str>,
}

pub const FINE_SPAN_MS: i64 = 6 * HOUR_MS;
pub const HOUR_SPAN_MS: i64 = 3 * DAY_MS;

impl FlowState {
    pub fn new(period_ms: i64) -> Self {
        FlowState {
            minute: Tier::new(60_000, FINE_SPAN_MS, true, false),
            five: Tier::new(300_000, FINE_SPAN_MS, false, true),
            hour: Tier::new(HOUR_MS, HOUR_SPAN_MS, true, true),
            day: Tier::new(DAY_MS, period_ms, true, true),
            deploy_ids: HashMap::new(),
            last_deploy: None,
            other: Arc::from("other"),
        }
    }

    /// Adds a sample. Tiers whose windows can no longer reach it (it is older than their span
    /// before `now_ms`) are skipped: "now" only moves forward, so no later read would see it,
    /// and rebuilding 30 days of history then touches only the tiers that keep it.
    pub fn add(&mut self, s: &FlowSample, now_ms: i64) {
        let deploy = self.intern(s.deployment_id.unwrap_or("unknown"));
        for tier in [
            &mut self.minute,
            &mut self.five,
            &mut self.hour,
            &mut self.day,
        ] {
            if now_ms == i64::MIN || s.time_ms >= now_ms - tier.span_ms - tier.res_ms {
                tier.add(s, &deploy);
            }
        }
    }

    fn intern(&mut self, id: &str) -> Arc<str> {
        if let Some(last) = &self.last_deploy
            && &**last == id
        {
            return last.clone();
        }
        let a = match self.deploy_ids.get(id) {
            Some(a) => a.clone(),
            None if self.deploy_ids.len() >= MAX_DEPLOYS => self.other.clone(),
            None => {
                let a: Arc<str> = Arc::from(id);
                self.deploy_ids.insert(id.to_owned(), a.clone());
                a
            }
        };
        self.last_deploy = Some(a.clone());
        a
    }

    /// Health over the window ending at `now_ms`. Exact up to one bucket of the tier used:
    /// counts per minute / latency per 5 min up to 6h, per hour up to 3d, per day beyond.
    pub fn health(&self, now_ms: i64, window_ms: i64) -> FlowHealthStats {
        let (counts_tier, hist_tier) = if window_ms <= FINE_SPAN_MS {
            (&self.minute, &self.five)
        } else if window_ms <= HOUR_SPAN_MS {
            (&self.hour, &self.hour)
        } else {
            (&self.day, &self.day)
        };
        let mut total = Counts::default();
        let mut by_deploy: Vec<DeployBucket> = Vec::new();
        for b in counts_tier.buckets(now_ms, window_ms) {
            total.merge(&b.counts);
            for (d, c, _) in &b.deploys {
                match by_deploy.iter_mut().find(|x| &x.0 == d) {
                    Some(x) => x.1.merge(c),
                    None => by_deploy.push((d.clone(), c.clone(), None)),
                }
            }
        }
        let mut hist = new_hist();
        for b in hist_tier.buckets(now_ms, window_ms) {
            if let Some(h) = &b.hist {
                let _ = hist.add(&**h);
            }
            for (d, _, h) in &b.deploys {
                if let Some(h) = h {
                    let entry = match by_deploy.iter_mut().find(|x| &x.0 == d) {
                        Some(x) => x,
                        None => {
                            by_deploy.push((d.clone(), Counts::default(), None));
                            by_deploy.last_mut().expect("just pushed")
                        }
                    };
                    let _ = entry.2.get_or_insert_with(new_hist).add(&**h);
                }
            }
        }
        let mut deployments: Vec<DeployStats> = by_deploy
            .into_iter()
            .filter(|(_, c, h)| c.total > 0 || h.is_some())
            .map(|(d, c, h)| DeployStats {
                deployment_id: d.to_string(),
                stats: Stats::from_parts(&c, h.as_deref()),
            })
            .collect();
        deployments.sort_by(|a, b| {
            b.stats
                .total
                .cmp(&a.stats.total)
                .then_with(|| a.deployment_id.cmp(&b.deployment_id))
        });
        FlowHealthStats {
            stats: Stats::from_parts(&total, Some(&hist)),
            deployments,
        }
    }

    /// Latency percentiles over a window (for SLO status).
    pub fn latency(&self, now_ms: i64, window_ms: i64) -> Option<Percentiles> {
        let tier = if window_ms <= FINE_SPAN_MS {
            &self.five
        } else if window_ms <= HOUR_SPAN_MS {
            &self.hour
        } else {
            &self.day
        };
        let mut hist = new_hist();
        for b in tier.buckets(now_ms, window_ms) {
            if let Some(h) = &b.hist {
                let _ = hist.add(&**h);
            }
        }
        Percentiles::of(&hist)
    }

    pub fn heap_bytes(&self) -> usize {
        self.minute.heap_bytes()
            + self.five.heap_bytes()
            + self.hour.heap_bytes()
            + self.day.heap_bytes()
            + self.deploy_ids.len() * 64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub count: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u32>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            p50: h.value_at_quantile(0.50) as f64,
            p95: h.value_at_quantile(0.95) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            max: h.max() as f64,
            count: h.len(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub errors: u64,
    pub error_ratio: Option<f64>,
    pub latency_ms: Option<Percentiles>,
    /// Status code (as text, `-1` and `0` included) → count.
    pub status_codes: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    fn from_parts(c: &Counts, h: Option<&Histogram<u32>>) -> Self {
        Stats {
            total: c.total,
            errors: c.errors,
            error_ratio: (c.total > 0).then(|| c.errors as f64 / c.total as f64),
            latency_ms: h.and_then(Percentiles::of),
            status_codes: c
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployStats {
    pub deployment_id: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowHealthStats {
    #[serde(flatten)]
    pub stats: Stats,
    pub deployments: Vec<DeployStats>,
}
