//! The typed, validated catalog.

use serde::Serialize;

use crate::PathGlob;

#[derive(Debug, Clone)]
pub struct Catalog {
    pub flows: Vec<Flow>,
    pub slos: Vec<Slo>,
}

impl Catalog {
    pub fn flow(&self, name: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.name == name)
    }
    pub fn slo(&self, name: &str) -> Option<&Slo> {
        self.slos.iter().find(|s| s.name == name)
    }
    /// The index of the first flow whose HTTP matchers match (catalog order decides overlaps,
    /// which `check-defs` reports as errors).
    pub fn match_request(&self, method: Option<&str>, path: &str) -> Option<usize> {
        crate::glob::with_segments(path, |segs| {
            self.flows
                .iter()
                .position(|f| f.matchers.iter().any(|m| m.matches_segments(method, segs)))
        })
    }
    pub fn match_envelope(&self, name: &str) -> Option<usize> {
        self.flows
            .iter()
            .position(|f| f.envelope.as_deref() == Some(name))
    }
    /// The longest SLO period (how far back state must reach), in milliseconds.
    pub fn longest_period_ms(&self) -> i64 {
        self.slos
            .iter()
            .map(|s| s.period_ms)
            .max()
            .unwrap_or(30 * 86_400_000)
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub description: Option<String>,
    pub matchers: Vec<Matcher>,
    /// The flow-envelope name (pino `flow` field) this flow counts, if any.
    pub envelope: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    /// Upper-case HTTP method; `None` = any.
    pub method: Option<String>,
    pub path: PathGlob,
}

impl Matcher {
    pub fn matches(&self, method: Option<&str>, path: &str) -> bool {
        crate::glob::with_segments(path, |segs| self.matches_segments(method, segs))
    }

    /// As [`Matcher::matches`], on a path already split into segments.
    pub fn matches_segments(&self, method: Option<&str>, path: &[&str]) -> bool {
        let method_ok = match (&self.method, method) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
            (Some(_), None) => false,
        };
        method_ok && self.path.matches_segments(path)
    }
    pub fn overlaps(&self, other: &Matcher) -> bool {
        let methods = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        methods && self.path.overlaps(&other.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sli {
    /// good = 0 < status < 500
    Availability,
    /// good = latency ≤ threshold
    Latency { threshold_ms: f64 },
    /// good = envelope outcome `success`
    Envelope,
}

#[derive(Debug, Clone)]
pub struct Slo {
    pub name: String,
    pub flow: String,
    pub flow_index: usize,
    /// As a fraction: 99.9% → 0.999.
    pub objective: f64,
    /// `1 − objective`, computed from the percentage so that 99.9% gives exactly 0.001.
    pub error_budget: f64,
    pub period_ms: i64,
    pub sli: Sli,
    /// Below this many events in a rule's long window the rule does not fire.
    pub min_events: u64,
    pub rules: Vec<Rule>,
    pub runbook: Option<String>,
    pub description: Option<String>,
}

impl Slo {
    pub fn error_budget(&self) -> f64 {
        self.error_budget
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    SEV1,
    SEV2,
    SEV3,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::SEV1 => "SEV1",
            Severity::SEV2 => "SEV2",
            Severity::SEV3 => "SEV3",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Page,
    Ticket,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: String,
    pub factor: f64,
    pub long_ms: i64,
    pub short_ms: i64,
    pub severity: Severity,
    pub action: Action,
}

/// The SRE Workbook's four pairs, as (name, budget share spent, long, short, severity, action),
/// for a 30-day period. Factors for other periods are scaled as Sloth does:
/// `factor = budget_share × period / long_window` (so 14.4 at 30d, 13.44 at 28d).
pub const DEFAULT_RULES: [(&str, f64, i64, i64, Severity, Action); 4] = [
    (
        "fast_burn",
        0.02,
        3_600_000,
        300_000,
        Severity::SEV1,
        Action::Page,
    ),
    (
        "slow_burn",
        0.05,
        6 * 3_600_000,
        1_800_000,
        Severity::SEV2,
        Action::Page,
    ),
    (
        "drift_day",
        0.10,
        86_400_000,
        2 * 3_600_000,
        Severity::SEV3,
        Action::Ticket,
    ),
    (
        "drift_3day",
        0.10,
        3 * 86_400_000,
        6 * 3_600_000,
        Severity::SEV3,
        Action::Ticket,
    ),
];

pub fn scaled_factor(budget_share: f64, period_ms: i64, long_ms: i64) -> f64 {
    // Round to 4 decimals so 30d gives exactly 14.4, 6, 3, 1.
    (budget_share * period_ms as f64 / long_ms as f64 * 10_000.0).round() / 10_000.0
}
