use slowburn_slo_defs::*;

#[test]
fn shipped_catalog_holds_warrants_four_slos() {
    let (cat, warnings) = load_str("warrant.yaml", EMBEDDED_CATALOG).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let got: Vec<(&str, &str, f64)> = cat
        .slos
        .iter()
        .map(|s| (s.name.as_str(), s.flow.as_str(), s.objective))
        .collect();
    assert_eq!(
        got,
        vec![
            ("auth_magic_link_success_rate", "auth_magic_link", 0.995),
            ("article_read_api_p95", "article_read", 0.95),
            (
                "subscribe_checkout_success_rate",
                "subscribe_checkout",
                0.999
            ),
            ("publish_article_success_rate", "article_publish", 0.995),
        ]
    );
    assert_eq!(
        cat.slos[1].sli,
        Sli::Latency {
            threshold_ms: 300.0
        }
    );
    let f = |m: &str, p: &str| {
        cat.match_request(Some(m), p)
            .map(|i| cat.flows[i].name.as_str())
    };
    assert_eq!(f("POST", "/api/auth/signin/email"), Some("auth_magic_link"));
    assert_eq!(
        f("GET", "/api/auth/callback/email"),
        Some("auth_magic_link")
    );
    assert_eq!(f("GET", "/api/articles/hello"), Some("article_read"));
    assert_eq!(
        f("POST", "/api/articles/hello/publish"),
        Some("article_publish")
    );
    assert_eq!(
        f("POST", "/api/subscribe/checkout"),
        Some("subscribe_checkout")
    );
    assert_eq!(f("GET", "/api/subscribe/checkout"), None);
    let rules: Vec<(&str, f64, Severity)> = cat.slos[0]
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.factor, r.severity))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("fast_burn", 14.4, Severity::SEV1),
            ("slow_burn", 6.0, Severity::SEV2),
            ("drift_day", 3.0, Severity::SEV3),
            ("drift_3day", 1.0, Severity::SEV3)
        ]
    );
}

#[test]
fn factors_scale_with_the_period_like_sloth() {
    let yaml = "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: f, objective: 99.9, period: 28d, sli: {kind: availability}}]";
    let (cat, _) = load_str("x.yaml", yaml).unwrap();
    let f: Vec<f64> = cat.slos[0].rules.iter().map(|r| r.factor).collect();
    assert_eq!(f, vec![13.44, 5.6, 2.8, 0.9333]);
}

#[test]
fn errors_name_the_file_and_the_slo() {
    let cases = [
        (
            "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: f, objective: 100, sli: {kind: availability}}]",
            "s: objective 100 must be a percentage strictly between 0 and 100",
        ),
        (
            "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: f, objective: 99, period: 30x, sli: {kind: availability}}]",
            "s: period: duration `30x` has unknown unit",
        ),
        (
            "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: g, objective: 99, sli: {kind: availability}}]",
            "s: unknown flow `g` (known flows: f)",
        ),
        (
            "flows: [{name: f, match: [{path: /x}], colour: red}]",
            "unknown field `colour`",
        ),
        (
            "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: f, objective: 99, sli: {kind: latency}}]",
            "s: a latency SLI needs a positive `threshold_ms`",
        ),
        (
            "flows: [{name: a, match: [{path: '/api/*'}]}, {name: b, match: [{path: '/api/**'}]}]\nslos: [{name: s, flow: a, objective: 99, sli: {kind: availability}}, {name: t, flow: b, objective: 99, sli: {kind: availability}}]",
            "a: matcher * /api/* overlaps flow `b`'s matcher * /api/**",
        ),
        (
            "flows: [{name: f, match: [{path: /x}]}]\nslos: [{name: s, flow: f, objective: 99, sli: {kind: availability}, alerts: {fast_burn: {short: 7x}}}]",
            "s: alert `fast_burn`: short window: duration `7x` has unknown unit",
        ),
    ];
    for (yaml, want) in cases {
        let errs = load_str("cat.yaml", yaml).unwrap_err();
        let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert!(
            text.iter()
                .any(|t| t.contains(want) && t.starts_with("error: cat.yaml")),
            "want {want:?} in {text:#?}"
        );
    }
}

#[test]
fn warnings_for_unused_flows_and_rules_that_cannot_fire() {
    let yaml = "flows: [{name: f, match: [{path: /x}]}, {name: unused, match: [{path: /y}]}]\nslos: [{name: s, flow: f, objective: 90, sli: {kind: availability}}]";
    let (_, w) = load_str("w.yaml", yaml).unwrap();
    let text: Vec<String> = w.iter().map(|d| d.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("unused: flow is not used by any SLO")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains("alert `fast_burn` can never fire")),
        "{text:?}"
    );
}

#[test]
fn overrides_and_disabled_rules() {
    let yaml = "flows: [{name: f, match: [{method: get, path: /x}]}]\nslos: [{name: s, flow: f, objective: 99, sli: {kind: availability}, min_events: 20, alerts: {fast_burn: {factor: 10, severity: SEV2}, drift_3day: {disabled: true}}}]";
    let (cat, _) = load_str("o.yaml", yaml).unwrap();
    let s = &cat.slos[0];
    assert_eq!(s.min_events, 20);
    assert_eq!(s.rules.len(), 3);
    assert_eq!(
        (s.rules[0].factor, s.rules[0].severity),
        (10.0, Severity::SEV2)
    );
    assert!(cat.match_request(Some("GET"), "/x").is_some());
}
