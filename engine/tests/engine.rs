use std::sync::Arc;

use slowburn_engine::*;
use slowburn_model::{FlowEvent, Outcome, RequestRecord};
use slowburn_slo_defs::{Catalog, load_str};

const T0: i64 = 1_800_000_000_000; // 10 s aligned

fn catalog(objective: f64, extra: &str) -> Arc<Catalog> {
    let yaml = format!(
        "flows: [{{name: checkout, match: [{{method: POST, path: /api/checkout}}]}}, {{name: env, envelope: signup}}]\n\
         slos:\n  - {{name: avail, flow: checkout, objective: {objective}, sli: {{kind: availability}}{extra}}}\n  \
         - {{name: lat, flow: checkout, objective: 95, sli: {{kind: latency, threshold_ms: 300}}}}\n  \
         - {{name: signup_ok, flow: env, objective: 99, sli: {{kind: envelope}}}}"
    );
    Arc::new(load_str("test.yaml", &yaml).unwrap().0)
}

fn req(t: i64, status: i32, latency: f64) -> RequestRecord {
    RequestRecord {
        time_ms: t,
        request_id: None,
        method: Some("POST".into()),
        path: Some("/api/checkout".into()),
        status,
        latency_ms: Some(latency),
        deployment_id: Some("dpl_1".into()),
    }
}

/// Feeds one request per second from `from` to `to` (exclusive), evaluating each second.
fn run(
    e: &mut Engine,
    from: i64,
    to: i64,
    status: impl Fn(i64) -> i32,
    mut on: impl FnMut(i64, Vec<AlertTransition>),
) {
    let mut t = from;
    while t < to {
        e.advance(t);
        e.record_request(&req(t, status(t), 100.0));
        on(t, e.evaluate());
        t += 1000;
    }
}

#[test]
fn workbook_budget_arithmetic() {
    // 14.4 × 1h / 720h = 2% of the budget; 6 × 6h / 720h = 5%; 1 × 3d / 30d = 10%.
    assert!((14.4 * 1.0 / 720.0 - 0.02f64).abs() < 1e-12);
    assert!((6.0 * 6.0 / 720.0 - 0.05f64).abs() < 1e-12);
    let cat = catalog(99.9, "");
    let r = &cat.slos[0].rules;
    for (rule, share) in r.iter().zip([0.02, 0.05, 0.10, 0.10]) {
        let spent = rule.factor * rule.long_ms as f64 / cat.slos[0].period_ms as f64;
        assert!((spent - share).abs() < 1e-9, "{} spends {spent}", rule.name);
    }
}

#[test]
fn total_outage_on_999_fires_fast_burn_after_0_864_minutes() {
    let mut e = Engine::new(catalog(99.9, ""));
    // One hour of clean traffic at 1 req/s, then a total outage.
    run(
        &mut e,
        T0,
        T0 + 3_600_000,
        |_| 200,
        |_, tr| assert!(tr.is_empty()),
    );
    let outage = T0 + 3_600_000;
    let mut fired_at = None;
    run(
        &mut e,
        outage,
        outage + 300_000,
        |_| 500,
        |t, tr| {
            if fired_at.is_none()
                && tr
                    .iter()
                    .any(|x| x.alert == "fast_burn" && x.state == AlertState::Firing)
            {
                fired_at = Some(t);
            }
        },
    );
    // Workbook: (1 − SLO)/e × W × BR = 0.001 × 3600 s × 14.4 = 51.84 s (0.864 min). The 1h window
    // holds 3591..3600 requests (10 s buckets), so it fires on the 52nd or 53rd error.
    let secs = (fired_at.unwrap() - outage) / 1000 + 1;
    assert!((52..=53).contains(&secs), "fired after {secs} errors");
    // And not a moment earlier: after 51 errors the burn is below 14.4.
    let mut e2 = Engine::new(catalog(99.9, ""));
    run(&mut e2, T0, T0 + 3_600_000, |_| 200, |_, _| {});
    run(
        &mut e2,
        outage,
        outage + 51_000,
        |_| 500,
        |_, tr| assert!(tr.iter().all(|x| x.alert != "fast_burn")),
    );
}

#[test]
fn fast_burn_resolves_one_short_window_after_errors_stop_and_suppresses_slow_burn() {
    let mut e = Engine::new(catalog(99.9, ""));
    // Six clean hours, so that the 6h window is full and fast_burn (52 errors) trips before
    // slow_burn (about 130 errors).
    for t in (T0..T0 + 6 * 3_600_000).step_by(1000) {
        e.advance(t);
        e.record_request(&req(t, 200, 100.0));
    }
    assert!(e.evaluate().is_empty());
    let start = T0 + 6 * 3_600_000;
    let stop = start + 600_000; // 10 minutes of 100% errors
    let mut log = Vec::new();
    run(
        &mut e,
        start,
        stop + 3_600_000,
        |t| if t < stop { 500 } else { 200 },
        |t, tr| log.extend(tr.into_iter().map(|x| (t, x))),
    );
    let fast: Vec<_> = log.iter().filter(|(_, x)| x.alert == "fast_burn").collect();
    assert_eq!(fast.len(), 2, "fires once, resolves once: {fast:#?}");
    assert_eq!(fast[0].1.state, AlertState::Firing);
    assert!(!fast[0].1.suppressed);
    assert_eq!(fast[1].1.state, AlertState::Resolved);
    // The 5m short window drops below 14.4× about 5 minutes after the errors stop
    // (600 errors in the last 300 s → 0 once they leave the window; exact up to one 10 s bucket).
    let resolved_after = (fast[1].0 - stop) / 1000;
    assert!(
        (280..=310).contains(&resolved_after),
        "resolved {resolved_after}s after the errors stopped"
    );
    // slow_burn (6× over 6h and 30m) trips too, but is suppressed while fast_burn fires.
    let slow_first = log.iter().find(|(_, x)| x.alert == "slow_burn").unwrap();
    assert_eq!(slow_first.1.state, AlertState::Firing);
    assert!(slow_first.1.suppressed, "{slow_first:?}");
    let status = e.status();
    assert!(status[0].error_budget.consumed.unwrap() > 0.0);
}

#[test]
fn min_events_guards_low_traffic() {
    let mut e = Engine::new(catalog(99.9, ", min_events: 100"));
    e.advance(T0);
    for i in 0..50 {
        e.record_request(&req(T0 + i, 500, 10.0));
    }
    assert!(
        e.evaluate().iter().all(|x| x.slo != "avail"),
        "50 events < min_events 100"
    );
    let mut e = Engine::new(catalog(99.9, ""));
    e.advance(T0);
    e.record_request(&req(T0, 500, 10.0));
    assert!(
        e.evaluate()
            .iter()
            .any(|x| x.slo == "avail" && x.alert == "fast_burn"),
        "without the guard one failure pages"
    );
}

#[test]
fn latency_and_envelope_slis_use_exact_counts() {
    let mut e = Engine::new(catalog(99.9, ""));
    e.advance(T0);
    for (i, l) in [100.0, 299.0, 300.0, 301.0, 5000.0].into_iter().enumerate() {
        e.record_request(&req(T0 + i as i64, 200, l));
    }
    let mut no_latency = req(T0, 200, 0.0);
    no_latency.latency_ms = None;
    e.record_request(&no_latency);
    assert_eq!(
        e.window_counts(1, 300_000),
        (3, 5),
        "≤ 300 ms is good; no latency, no event"
    );
    for o in [Outcome::Success, Outcome::Failure, Outcome::Success] {
        e.record_flow_event(&FlowEvent {
            time_ms: T0,
            flow: "signup".into(),
            outcome: o,
            duration_ms: Some(20.0),
            request_id: None,
            deployment_id: None,
        });
    }
    assert_eq!(e.window_counts(2, 300_000), (2, 3));
    let h = e.flow_health("checkout", 3_600_000).unwrap();
    assert_eq!(h.stats.total, 6);
    let p = h.stats.latency_ms.unwrap();
    assert_eq!(p.count, 5);
    assert!((295.0..=305.0).contains(&p.p50), "{p:?}");
    assert!(p.p99 >= 4900.0, "{p:?}");
    assert_eq!(h.deployments[0].deployment_id, "dpl_1");
}

#[test]
fn old_and_future_events_are_dropped_and_counted() {
    let mut e = Engine::new(catalog(99.9, ""));
    e.advance(T0);
    e.record_request(&req(T0 - 31 * 86_400_000, 500, 1.0));
    e.record_request(&req(T0 + 6 * 60_000, 500, 1.0));
    e.record_request(&req(i64::MIN, 500, 1.0));
    e.record_request(&req(i64::MAX, 500, 1.0));
    e.record_request(&req(T0 + 4 * 60_000, 500, 1.0)); // future within 5 min: kept
    let c = e.counters();
    assert_eq!((c.dropped_too_old, c.dropped_future), (2, 2));
    e.advance(T0 + 4 * 60_000);
    assert_eq!(e.window_counts(0, 300_000), (0, 1));
}

#[test]
fn memory_per_slo_stays_under_4_mib_at_full_history() {
    let mut e = Engine::new(catalog(99.9, ""));
    // 30 days, a request every 20 s, two deployments alternating: fills every bucket of every tier.
    let start = T0;
    let mut t = start;
    while t < start + 30 * 86_400_000 {
        e.advance(t);
        let mut r = req(t, if t % 7 == 0 { 500 } else { 200 }, (t % 900) as f64);
        r.deployment_id = Some(if (t / 3_600_000) % 2 == 0 {
            "dpl_a".into()
        } else {
            "dpl_b".into()
        });
        e.record_request(&r);
        t += 20_000;
    }
    for (name, bytes) in e.heap_bytes_per_slo() {
        assert!(bytes < 4 << 20, "{name}: {bytes} bytes");
    }
}

mod reference {
    use super::*;
    use proptest::prelude::*;

    /// Recomputes a window from the raw accepted events, with the engine's bucket rule.
    fn brute(events: &[(i64, bool)], now: i64, window: i64) -> (u64, u64) {
        let res = if window <= FINE_SPAN_MS {
            FINE_RES_MS
        } else {
            COARSE_RES_MS
        };
        let end = now.div_euclid(res);
        let start = end - window / res;
        let inside: Vec<_> = events
            .iter()
            .filter(|(t, _)| (start..=end).contains(&t.div_euclid(res)))
            .collect();
        (
            inside.iter().filter(|(_, g)| *g).count() as u64,
            inside.len() as u64,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn windows_match_brute_force(
            steps in proptest::collection::vec((0i64..4 * 3_600_000, -(40 * 3_600_000i64)..600_000, any::<bool>(), 0u8..4), 1..400)
        ) {
            let cat = catalog(99.0, "");
            let mut e = Engine::new(cat.clone());
            let mut accepted: Vec<(i64, bool)> = Vec::new();
            let mut now = T0;
            e.advance(now);
            for (advance, offset, good, kind) in steps {
                if kind == 0 { now += advance; e.advance(now); }
                // Late (up to 40h old), out of order, or slightly in the future.
                let t = now + offset;
                e.record_request(&req(t, if good { 200 } else { 503 }, 10.0));
                if t <= now + MAX_FUTURE_MS && t >= now - cat.slos[0].period_ms {
                    accepted.push((t, good));
                }
                for (_, w) in REPORTED_WINDOWS {
                    prop_assert_eq!(e.window_counts(0, w), brute(&accepted, now, w), "window {}", w);
                }
            }
        }
    }
}
