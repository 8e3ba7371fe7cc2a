//! Parsing and validation of catalog files into a [`Catalog`], with diagnostics that name the
//! file and the SLO.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::model::*;
use crate::{PathGlob, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub level: Level,
    pub file: String,
    /// The SLO or flow the diagnostic is about.
    pub subject: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        match &self.subject {
            Some(s) => write!(f, "{level}: {}: {s}: {}", self.file, self.message),
            None => write!(f, "{level}: {}: {}", self.file, self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    flows: Vec<FlowDoc>,
    #[serde(default)]
    slos: Vec<SloDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowDoc {
    name: String,
    description: Option<String>,
    #[serde(default, rename = "match")]
    matchers: Vec<MatcherDoc>,
    envelope: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherDoc {
    method: Option<String>,
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SloDoc {
    name: String,
    flow: String,
    objective: f64,
    #[serde(default = "default_period")]
    period: String,
    sli: SliDoc,
    #[serde(default)]
    min_events: u64,
    runbook: Option<String>,
    description: Option<String>,
    #[serde(default)]
    alerts: BTreeMap<String, RuleDoc>,
}

fn default_period() -> String {
    "30d".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SliDoc {
    kind: String,
    threshold_ms: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    factor: Option<f64>,
    long: Option<String>,
    short: Option<String>,
    severity: Option<String>,
    action: Option<String>,
    #[serde(default)]
    disabled: bool,
}

/// Loads a catalog file, or every `*.yaml`/`*.yml` file of a directory (in name order).
pub fn load_path(path: &Path) -> Result<(Catalog, Vec<Diagnostic>), Vec<Diagnostic>> {
    let files = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| {
                vec![diag(
                    Level::Error,
                    &path.display().to_string(),
                    None,
                    format!("cannot read directory: {e}"),
                )]
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(vec![diag(
                Level::Error,
                &path.display().to_string(),
                None,
                "no .yaml files in this directory".into(),
            )]);
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut docs = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f)
            .map_err(|e| vec![diag(Level::Error, &name, None, format!("cannot read: {e}"))])?;
        docs.push((name, text));
    }
    check(&docs)
}

/// Loads a catalog from one YAML text.
pub fn load_str(file: &str, text: &str) -> Result<(Catalog, Vec<Diagnostic>), Vec<Diagnostic>> {
    check(&[(file.to_owned(), text.to_owned())])
}

fn diag(level: Level, file: &str, subject: Option<&str>, message: String) -> Diagnostic {
    Diagnostic {
        level,
        file: file.to_owned(),
        subject: subject.map(str::to_owned),
        message,
    }
}

/// Validates `(file name, YAML text)` documents as one catalog. `Ok` carries warnings only.
pub fn check(docs: &[(String, String)]) -> Result<(Catalog, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut flows: Vec<(String, Flow)> = Vec::new();
    let mut slo_docs: Vec<(String, SloDoc)> = Vec::new();
    for (file, text) in docs {
        match serde_yaml::from_str::<FileDoc>(text) {
            Ok(doc) => {
                for f in doc.flows {
                    if let Some(flow) = build_flow(file, f, &mut out) {
                        if flows.iter().any(|(_, g)| g.name == flow.name) {
                            out.push(diag(
                                Level::Error,
                                file,
                                Some(&flow.name),
                                "flow is defined twice".into(),
                            ));
                        } else {
                            flows.push((file.clone(), flow));
                        }
                    }
                }
                slo_docs.extend(doc.slos.into_iter().map(|s| (file.clone(), s)));
            }
            Err(e) => out.push(diag(
                Level::Error,
                file,
                None,
                format!("invalid catalog: {e}"),
            )),
        }
    }
    // Overlapping matchers make a request's flow depend on catalog order: refuse them.
    for (i, (file, a)) in flows.iter().enumerate() {
        for (_, b) in &flows[i + 1..] {
            for ma in &a.matchers {
                for mb in &b.matchers {
                    if ma.overlaps(mb) {
                        out.push(diag(Level::Error, file, Some(&a.name), format!(
                            "matcher {} {} overlaps flow `{}`'s matcher {} {}: a request could count for both; make the paths disjoint",
                            ma.method.as_deref().unwrap_or("*"), ma.path.as_str(), b.name, mb.method.as_deref().unwrap_or("*"), mb.path.as_str()
                        )));
                    }
                }
            }
        }
    }
    let mut slos = Vec::new();
    let mut names = HashSet::new();
    for (file, s) in slo_docs {
        let name = s.name.clone();
        if !names.insert(name.clone()) {
            out.push(diag(
                Level::Error,
                &file,
                Some(&name),
                "SLO is defined twice".into(),
            ));
            continue;
        }
        match build_slo(&file, s, &flows, &mut out) {
            Some(slo) => slos.push(slo),
            None => continue,
        }
    }
    for (file, f) in &flows {
        if !slos.iter().any(|s: &Slo| s.flow == f.name) {
            out.push(diag(
                Level::Warning,
                file,
                Some(&f.name),
                "flow is not used by any SLO".into(),
            ));
        }
    }
    if docs.iter().all(|(_, t)| !t.trim().is_empty())
        && slos.is_empty()
        && !out.iter().any(|d| d.level == Level::Error)
    {
        out.push(diag(
            Level::Warning,
            docs.first().map_or("", |d| d.0.as_str()),
            None,
            "the catalog defines no SLOs".into(),
        ));
    }
    if out.iter().any(|d| d.level == Level::Error) {
        return Err(out);
    }
    Ok((
        Catalog {
            flows: flows.into_iter().map(|(_, f)| f).collect(),
            slos,
        },
        out,
    ))
}

fn build_flow(file: &str, f: FlowDoc, out: &mut Vec<Diagnostic>) -> Option<Flow> {
    let name = f.name.clone();
    if !valid_name(&name) {
        out.push(diag(
            Level::Error,
            file,
            Some(&name),
            "flow names use lowercase letters, digits, `_` and `-`".into(),
        ));
        return None;
    }
    if f.matchers.is_empty() && f.envelope.is_none() {
        out.push(diag(
            Level::Error,
            file,
            Some(&name),
            "flow needs `match` (HTTP method and path) or `envelope` (a flow-envelope name)".into(),
        ));
        return None;
    }
    let mut matchers = Vec::new();
    for m in f.matchers {
        match PathGlob::new(&m.path) {
            Ok(path) => matchers.push(Matcher {
                method: m.method.map(|s| s.to_ascii_uppercase()),
                path,
            }),
            Err(e) => out.push(diag(Level::Error, file, Some(&name), e)),
        }
    }
    Some(Flow {
        name,
        description: f.description,
        matchers,
        envelope: f.envelope,
    })
}

fn build_slo(
    file: &str,
    s: SloDoc,
    flows: &[(String, Flow)],
    out: &mut Vec<Diagnostic>,
) -> Option<Slo> {
    let name = s.name.as_str();
    let before = out.len();
    let err = |out: &mut Vec<Diagnostic>, msg: String| {
        out.push(diag(Level::Error, file, Some(name), msg))
    };
    if !valid_name(name) {
        err(
            out,
            "SLO names use lowercase letters, digits, `_` and `-`".into(),
        );
    }
    let flow_index = flows.iter().position(|(_, f)| f.name == s.flow);
    if flow_index.is_none() {
        let known: Vec<&str> = flows.iter().map(|(_, f)| f.name.as_str()).collect();
        err(
            out,
            format!(
                "unknown flow `{}` (known flows: {})",
                s.flow,
                known.join(", ")
            ),
        );
    }
    if !(s.objective > 0.0 && s.objective < 100.0) {
        err(
            out,
            format!(
                "objective {} must be a percentage strictly between 0 and 100 (e.g. 99.9)",
                s.objective
            ),
        );
    }
    let period_ms = match parse_duration(&s.period) {
        Ok(p) if p % 86_400_000 == 0 && p <= 366 * 86_400_000 => p,
        Ok(_) => {
            err(
                out,
                format!(
                    "period `{}` must be a whole number of days up to 366d (e.g. 30d, 28d, 7d)",
                    s.period
                ),
            );
            0
        }
        Err(e) => {
            err(out, format!("period: {e}"));
            0
        }
    };
    let sli = match (s.sli.kind.as_str(), s.sli.threshold_ms) {
        ("availability", None) => Some(Sli::Availability),
        ("envelope", None) => Some(Sli::Envelope),
        ("latency", Some(t)) if t > 0.0 => Some(Sli::Latency { threshold_ms: t }),
        ("latency", _) => {
            err(out, "a latency SLI needs a positive `threshold_ms`".into());
            None
        }
        ("availability" | "envelope", Some(_)) => {
            err(
                out,
                format!(
                    "`threshold_ms` applies only to `kind: latency`, not `{}`",
                    s.sli.kind
                ),
            );
            None
        }
        (k, _) => {
            err(
                out,
                format!("unknown SLI kind `{k}` (use availability, latency or envelope)"),
            );
            None
        }
    };
    if let (Some(Sli::Envelope), Some(i)) = (sli, flow_index)
        && flows[i].1.envelope.is_none()
    {
        err(
            out,
            format!(
                "`kind: envelope` needs a flow with `envelope:`, and flow `{}` has none",
                s.flow
            ),
        );
    }
    if let (Some(Sli::Availability | Sli::Latency { .. }), Some(i)) = (sli, flow_index)
        && flows[i].1.matchers.is_empty()
    {
        err(
            out,
            format!(
                "flow `{}` has no HTTP matchers, so `{}` would never see a request",
                s.flow, s.sli.kind
            ),
        );
    }
    for key in s.alerts.keys() {
        if !DEFAULT_RULES.iter().any(|r| r.0 == key) && s.alerts[key].factor.is_none() {
            err(
                out,
                format!(
                    "alert rule `{key}` is not a default rule (fast_burn, slow_burn, drift_day, drift_3day), so it needs factor, long, short and severity"
                ),
            );
        }
    }
    let mut rules = Vec::new();
    let budget = ((100.0 - s.objective) * 1e7).round() / 1e9;
    let mut names: Vec<&str> = DEFAULT_RULES.iter().map(|r| r.0).collect();
    names.extend(
        s.alerts
            .keys()
            .map(String::as_str)
            .filter(|k| !DEFAULT_RULES.iter().any(|r| r.0 == *k)),
    );
    for rule_name in names {
        let default = DEFAULT_RULES.iter().find(|r| r.0 == rule_name);
        let over = s.alerts.get(rule_name);
        if over.is_some_and(|o| o.disabled) {
            continue;
        }
        let dur = |v: Option<&String>, d: Option<i64>, what: &str, out: &mut Vec<Diagnostic>| {
            match v {
                Some(v) => match parse_duration(v) {
                    Ok(ms) if ms % 10_000 == 0 && (ms <= 6 * 3_600_000 || ms % 60_000 == 0) => {
                        Some(ms)
                    }
                    Ok(_) => {
                        err(
                            out,
                            format!(
                                "alert `{rule_name}`: {what} window `{v}` must be a multiple of 10s (of 1m above 6h)"
                            ),
                        );
                        None
                    }
                    Err(e) => {
                        err(out, format!("alert `{rule_name}`: {what} window: {e}"));
                        None
                    }
                },
                None => d,
            }
        };
        let long_ms = dur(
            over.and_then(|o| o.long.as_ref()),
            default.map(|d| d.2),
            "long",
            out,
        );
        let short_ms = dur(
            over.and_then(|o| o.short.as_ref()),
            default.map(|d| d.3),
            "short",
            out,
        );
        let severity = match over.and_then(|o| o.severity.as_deref()) {
            Some("SEV1") => Some(Severity::SEV1),
            Some("SEV2") => Some(Severity::SEV2),
            Some("SEV3") => Some(Severity::SEV3),
            Some(other) => {
                err(
                    out,
                    format!("alert `{rule_name}`: severity `{other}` must be SEV1, SEV2 or SEV3"),
                );
                None
            }
            None => default.map(|d| d.4),
        };
        let action = match over.and_then(|o| o.action.as_deref()) {
            Some("page") => Some(Action::Page),
            Some("ticket") => Some(Action::Ticket),
            Some(other) => {
                err(
                    out,
                    format!("alert `{rule_name}`: action `{other}` must be page or ticket"),
                );
                None
            }
            None => default.map(|d| d.5).or(Some(Action::Ticket)),
        };
        let (Some(long_ms), Some(short_ms), Some(severity), Some(action)) =
            (long_ms, short_ms, severity, action)
        else {
            if default.is_none() {
                err(
                    out,
                    format!("alert `{rule_name}` needs long, short and severity"),
                );
            }
            continue;
        };
        if short_ms >= long_ms {
            err(
                out,
                format!("alert `{rule_name}`: short window must be shorter than the long window"),
            );
        }
        if long_ms > period_ms && period_ms > 0 {
            err(
                out,
                format!("alert `{rule_name}`: long window is longer than the SLO period"),
            );
        }
        let factor = match (over.and_then(|o| o.factor), default) {
            (Some(f), _) if f > 0.0 => f,
            (Some(f), _) => {
                err(
                    out,
                    format!("alert `{rule_name}`: factor {f} must be positive"),
                );
                continue;
            }
            (None, Some(d)) => scaled_factor(d.1, period_ms.max(1), d.2),
            (None, None) => continue,
        };
        if budget > 0.0 && factor > 1.0 / budget {
            out.push(diag(Level::Warning, file, Some(name), format!(
                "alert `{rule_name}` can never fire: factor {factor} exceeds 1/(1-objective) = {:.2}, the burn rate of a total outage", 1.0 / budget
            )));
        }
        rules.push(Rule {
            name: rule_name.to_owned(),
            factor,
            long_ms,
            short_ms,
            severity,
            action,
        });
    }
    if out.len() > before && out[before..].iter().any(|d| d.level == Level::Error) {
        return None;
    }
    Some(Slo {
        name: s.name.clone(),
        flow: s.flow,
        flow_index: flow_index?,
        objective: (s.objective * 1e7).round() / 1e9,
        error_budget: ((100.0 - s.objective) * 1e7).round() / 1e9,
        period_ms,
        sli: sli?,
        min_events: s.min_events,
        rules,
        runbook: s.runbook,
        description: s.description,
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
