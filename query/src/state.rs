//! The engine's current state as tables: `slo_status` (one row per SLO), `alerts` (one row per SLO
//! and rule), `alert_transitions` (the recent firing/resolved changes), and the catalog's `flows`.
//! Documented in `docs/sql.md`.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use slowburn_engine::{AlertState, AlertTransition, REPORTED_WINDOWS, SloStatus};
use slowburn_slo_defs::Sli;

/// What the engine says now, as plain data (taken under the engine's lock by the caller).
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    pub slos: Vec<SloStatus>,
    pub transitions: Vec<AlertTransition>,
    /// The catalog the engine runs (for the `flows` table).
    pub catalog: Option<std::sync::Arc<slowburn_slo_defs::Catalog>>,
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

pub fn slo_status_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let f = |n: &str| Field::new(n, DataType::Float64, true);
        let mut fields = vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("flow", DataType::Utf8, false),
            Field::new("objective", DataType::Float64, false),
            Field::new("period", DataType::Utf8, false),
            Field::new("sli_kind", DataType::Utf8, false),
            Field::new("threshold_ms", DataType::Float64, true),
            Field::new("good", DataType::Int64, false),
            Field::new("total", DataType::Int64, false),
            f("sli_ratio"),
            f("budget_remaining"),
            f("budget_consumed"),
            f("time_to_exhaustion_secs"),
        ];
        for (w, _) in REPORTED_WINDOWS {
            fields.push(f(&format!("burn_{w}")));
        }
        fields.extend([
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            Field::new("firing_alerts", DataType::Utf8, true),
            Field::new("worst_severity", DataType::Utf8, true),
            Field::new("runbook", DataType::Utf8, true),
            Field::new("as_of", ts(), false),
        ]);
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

pub fn slo_status_batch(slos: &[SloStatus]) -> Result<RecordBatch, ArrowError> {
    let n = slos.len();
    let mut name = StringBuilder::new();
    let mut flow = StringBuilder::new();
    let mut objective = Float64Builder::with_capacity(n);
    let mut period = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut threshold = Float64Builder::with_capacity(n);
    let mut good = Int64Builder::with_capacity(n);
    let mut total = Int64Builder::with_capacity(n);
    let mut ratio = Float64Builder::with_capacity(n);
    let mut remaining = Float64Builder::with_capacity(n);
    let mut consumed = Float64Builder::with_capacity(n);
    let mut tte = Float64Builder::with_capacity(n);
    let mut burns: Vec<Float64Builder> = REPORTED_WINDOWS
        .iter()
        .map(|_| Float64Builder::with_capacity(n))
        .collect();
    let mut p50 = Float64Builder::with_capacity(n);
    let mut p95 = Float64Builder::with_capacity(n);
    let mut p99 = Float64Builder::with_capacity(n);
    let mut firing = StringBuilder::new();
    let mut worst = StringBuilder::new();
    let mut runbook = StringBuilder::new();
    let mut as_of = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    for s in slos {
        name.append_value(&s.name);
        flow.append_value(&s.flow);
        objective.append_value(s.objective);
        period.append_value(&s.period);
        let (k, t) = match s.sli_kind {
            Sli::Availability => ("availability", None),
            Sli::Latency { threshold_ms } => ("latency", Some(threshold_ms)),
            Sli::Envelope => ("envelope", None),
        };
        kind.append_value(k);
        threshold.append_option(t);
        good.append_value(s.sli.good as i64);
        total.append_value(s.sli.total as i64);
        ratio.append_option(s.sli.ratio);
        remaining.append_option(s.error_budget.remaining);
        consumed.append_option(s.error_budget.consumed);
        tte.append_option(s.error_budget.time_to_exhaustion_secs);
        for ((w, _), b) in REPORTED_WINDOWS.iter().zip(burns.iter_mut()) {
            b.append_option(s.burn_rates.get(*w).copied().flatten());
        }
        p50.append_option(s.latency_ms.map(|l| l.p50));
        p95.append_option(s.latency_ms.map(|l| l.p95));
        p99.append_option(s.latency_ms.map(|l| l.p99));
        let active: Vec<&_> = s
            .alerts
            .iter()
            .filter(|a| a.state == AlertState::Firing && !a.suppressed)
            .collect();
        if active.is_empty() {
            firing.append_null();
        } else {
            firing.append_value(
                active
                    .iter()
                    .map(|a| a.rule.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        worst.append_option(active.iter().map(|a| a.severity).min().map(|s| s.as_str()));
        runbook.append_option(s.runbook.as_deref());
        as_of.append_value(s.as_of_ms);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(name.finish()),
        Arc::new(flow.finish()),
        Arc::new(objective.finish()),
        Arc::new(period.finish()),
        Arc::new(kind.finish()),
        Arc::new(threshold.finish()),
        Arc::new(good.finish()),
        Arc::new(total.finish()),
        Arc::new(ratio.finish()),
        Arc::new(remaining.finish()),
        Arc::new(consumed.finish()),
        Arc::new(tte.finish()),
    ];
    for mut b in burns {
        columns.push(Arc::new(b.finish()));
    }
    columns.extend([
        Arc::new(p50.finish()) as ArrayRef,
        Arc::new(p95.finish()),
        Arc::new(p99.finish()),
        Arc::new(firing.finish()),
        Arc::new(worst.finish()),
        Arc::new(runbook.finish()),
        Arc::new(as_of.finish()),
    ]);
    RecordBatch::try_new(slo_status_schema(), columns)
}

pub fn alerts_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("slo", DataType::Utf8, false),
            Field::new("flow", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("severity", DataType::Utf8, false),
            Field::new("action", DataType::Utf8, false),
            Field::new("state", DataType::Utf8, false),
            Field::new("suppressed", DataType::Boolean, false),
            Field::new("since", ts(), true),
            Field::new("burn_long", DataType::Float64, true),
            Field::new("burn_short", DataType::Float64, true),
            Field::new("factor", DataType::Float64, false),
            Field::new("long_window", DataType::Utf8, false),
            Field::new("short_window", DataType::Utf8, false),
            Field::new("budget_remaining", DataType::Float64, true),
            Field::new("as_of", ts(), false),
        ]))
    });
    SCHEMA.clone()
}

fn state_text(s: AlertState) -> &'static str {
    match s {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    }
}

fn action_text(a: slowburn_slo_defs::Action) -> &'static str {
    match a {
        slowburn_slo_defs::Action::Page => "page",
        slowburn_slo_defs::Action::Ticket => "ticket",
    }
}

pub fn alerts_batch(slos: &[SloStatus]) -> Result<RecordBatch, ArrowError> {
    let mut b = AlertBuilders::default();
    for s in slos {
        for a in &s.alerts {
            b.slo.append_value(&s.name);
            b.flow.append_value(&s.flow);
            b.rule.append_value(&a.rule);
            b.severity.append_value(a.severity.as_str());
            b.action.append_value(action_text(a.action));
            b.state.append_value(state_text(a.state));
            b.suppressed.append_value(a.suppressed);
            b.since.append_option(a.since_ms);
            b.burn_long.append_option(a.burn_long);
            b.burn_short.append_option(a.burn_short);
            b.factor.append_value(a.factor);
            b.long_window.append_value(&a.long_window);
            b.short_window.append_value(&a.short_window);
            b.budget.append_option(s.error_budget.remaining);
            b.as_of.append_value(s.as_of_ms);
        }
    }
    b.finish(alerts_schema())
}

#[derive(Default)]
struct AlertBuilders {
    slo: StringBuilder,
    flow: StringBuilder,
    rule: StringBuilder,
    severity: StringBuilder,
    action: StringBuilder,
    state: StringBuilder,
    suppressed: BooleanBuilder,
    since: TimestampMillisecondBuilder,
    burn_long: Float64Builder,
    burn_short: Float64Builder,
    factor: Float64Builder,
    long_window: StringBuilder,
    short_window: StringBuilder,
    budget: Float64Builder,
    as_of: TimestampMillisecondBuilder,
}

impl AlertBuilders {
    fn finish(mut self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.slo.finish()),
            Arc::new(self.flow.finish()),
            Arc::new(self.rule.finish()),
            Arc::new(self.severity.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.suppressed.finish()),
            Arc::new(self.since.finish().with_timezone("UTC")),
            Arc::new(self.burn_long.finish()),
            Arc::new(self.burn_short.finish()),
            Arc::new(self.factor.finish()),
            Arc::new(self.long_window.finish()),
            Arc::new(self.short_window.finish()),
            Arc::new(self.budget.finish()),
            Arc::new(self.as_of.finish().with_timezone("UTC")),
        ];
        RecordBatch::try_new(schema, columns)
    }
}

/// `alert_transitions`: `alerts` columns with `time` for when the change happened.
pub fn transitions_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields: Vec<Field> = vec![Field::new("time", ts(), false)];
        fields.extend(
            alerts_schema()
                .fields()
                .iter()
                .filter(|f| f.name() != "as_of")
                .map(|f| f.as_ref().clone()),
        );
        Arc::new(Schema::new(fields))
    });
    SCHEMA.clone()
}

pub fn transitions_batch(transitions: &[AlertTransition]) -> Result<RecordBatch, ArrowError> {
    let mut time = TimestampMillisecondBuilder::new().with_timezone("UTC");
    let mut b = AlertBuilders::default();
    for t in transitions {
        time.append_value(t.time_ms);
        b.slo.append_value(&t.slo);
        b.flow.append_value(&t.flow);
        b.rule.append_value(&t.alert);
        b.severity.append_value(t.severity.as_str());
        b.action.append_value(action_text(t.action));
        b.state.append_value(state_text(t.state));
        b.suppressed.append_value(t.suppressed);
        b.since.append_value(t.time_ms);
        b.burn_long.append_option(t.burn_long);
        b.burn_short.append_option(t.burn_short);
        b.factor.append_value(t.factor);
        b.long_window.append_value(&t.long_window);
        b.short_window.append_value(&t.short_window);
        b.budget.append_option(t.budget_remaining);
        b.as_of.append_value(t.time_ms);
    }
    let alerts = b.finish(alerts_schema())?;
    let mut columns: Vec<ArrayRef> = vec![Arc::new(time.finish())];
    for (i, f) in alerts_schema().fields().iter().enumerate() {
        if f.name() != "as_of" {
            columns.push(alerts.column(i).clone());
        }
    }
    RecordBatch::try_new(transitions_schema(), columns)
}

pub fn flows_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("description", DataType::Utf8, true),
            Field::new("matchers", DataType::Utf8, true),
            Field::new("envelope", DataType::Utf8, true),
            Field::new("slos", DataType::Utf8, true),
        ]))
    });
    SCHEMA.clone()
}

/// `flows`: one row per catalog flow; `matchers` like `POST /api/subscribe/checkout, GET /x/*`,
/// `slos` the comma-separated names of the flow's SLOs.
pub fn flows_batch(catalog: &slowburn_slo_defs::Catalog) -> Result<RecordBatch, ArrowError> {
    let mut name = StringBuilder::new();
    let mut description = StringBuilder::new();
    let mut matchers = StringBuilder::new();
    let mut envelope = StringBuilder::new();
    let mut slos = StringBuilder::new();
    for f in &catalog.flows {
        name.append_value(&f.name);
        description.append_option(f.description.as_deref());
        let m: Vec<String> = f
            .matchers
            .iter()
            .map(|m| format!("{} {}", m.method.as_deref().unwrap_or("*"), m.path.as_str()))
            .collect();
        matchers.append_option((!m.is_empty()).then(|| m.join(", ")));
        envelope.append_option(f.envelope.as_deref());
        let s: Vec<&str> = catalog
            .slos
            .iter()
            .filter(|s| s.flow == f.name)
            .map(|s| s.name.as_str())
            .collect();
        slos.append_option((!s.is_empty()).then(|| s.join(",")));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(name.finish()),
        Arc::new(description.finish()),
        Arc::new(matchers.finish()),
        Arc::new(envelope.finish()),
        Arc::new(slos.finish()),
    ];
    RecordBatch::try_new(flows_schema(), columns)
}
