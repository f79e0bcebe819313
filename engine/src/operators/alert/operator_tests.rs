use std::path::PathBuf;

use super::*;
use crate::events::{AlertEvent, PromptEvent};
use crate::ml::artifact::newest_version;
use crate::operators::alert::synth::{generate, GeneratorConfig, LabeledAlert};

fn repository_models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

fn shipped_model() -> AlertModel {
    let directory = newest_version(&repository_models().join("alert")).unwrap();
    AlertModel::load(&directory).unwrap()
}

fn sourced(index: usize, event: InputEvent) -> SourcedEvent {
    SourcedEvent::at_offset("alerts", index as i64, event)
}

/// Generated alerts from a seed the shipped model was not trained on.
fn fresh_alerts(count: usize) -> Vec<LabeledAlert> {
    generate(&GeneratorConfig {
        seed: 99,
        count,
        ..GeneratorConfig::default()
    })
}

fn events(alerts: &[LabeledAlert]) -> Vec<SourcedEvent> {
    alerts
        .iter()
        .enumerate()
        .map(|(index, labeled)| sourced(index, InputEvent::Alert(Box::new(labeled.alert.clone()))))
        .collect()
}

fn scored(outcome: &Outcome) -> (&Scored, &Vec<ExtraRecord>) {
    match outcome {
        Outcome::Scored { scored, extra } => (scored, extra),
        Outcome::Rejected { detail } => panic!("alert rejected: {detail}"),
    }
}

#[test]
fn every_alert_gets_disposition_blended_risk_and_an_exact_explanation() {
    let model = shipped_model();
    let config = AlertOperatorConfig {
        explain: ExplainMode::All,
        ..AlertOperatorConfig::default()
    };
    let mut operator = AlertOperator::with_model(config, model.clone()).unwrap();
    let alerts = fresh_alerts(600);
    let outcomes = operator
        .score_batch(&events(&alerts), &mut states())
        .unwrap();
    assert_eq!(outcomes.len(), alerts.len());
    let shap_tables = FastTreeShap::new(&model.risk, 0);
    let mut encoder_history = crate::operators::alert::history::EntityHistory::default();
    let mut dispositions = std::collections::BTreeSet::new();
    for (labeled, outcome) in alerts.iter().zip(&outcomes) {
        let (scored, extra) = scored(outcome);
        assert!(
            extra
                .iter()
                .all(|record| record.topic == "scored.incidents"),
            "no entity topic configured: only incident records"
        );
        let scores = &scored.scores;
        let probabilities: f64 = DISPOSITIONS.iter().map(|d| scores[&format!("p_{d}")]).sum();
        assert!((probabilities - 1.0).abs() < 1e-5);
        let expected_risk = 0.7 * scores["ml_risk"] + 0.3 * scores["rule_score"];
        assert!((scores["risk"] - expected_risk).abs() < 1e-9);
        assert!((0.0..=100.0).contains(&scores["risk"]));
        dispositions.insert(scored.labels["disposition"].clone());
        // Recompute the row as the operator saw it: SHAP values sum to the raw ML risk.
        let facts = encoder_history.facts(&labeled.alert);
        let mut row = Vec::new();
        model.encoder().encode_into(
            &labeled.alert,
            &facts,
            &crate::operators::alert::scorer::shipped_intel().match_alert(
                &labeled.alert.ips,
                &labeled.alert.hosts,
                labeled.alert.last_seen_ms,
            ),
            &mut row,
        );
        encoder_history.record(&labeled.alert, scores["risk"]);
        let shap = shap_tables.shap_values(&model.risk, &row);
        let raw = model.risk.predict_raw(&row)[0];
        assert!((scores["ml_shap_base_value"] + shap.iter().sum::<f64>() - raw).abs() < 1e-6);
        assert!((raw.clamp(0.0, 100.0) - scores["ml_risk"]).abs() < 1e-9);
        let features: Vec<&Contribution> = scored
            .explanation
            .iter()
            .filter(|c| !c.name.starts_with("rule:") && !c.name.starts_with("intel:"))
            .collect();
        assert!(features.len() <= 5);
        for contribution in &features {
            let index = model
                .manifest
                .features
                .iter()
                .position(|name| *name == contribution.name)
                .unwrap();
            assert!((contribution.contribution - shap[index]).abs() < 1e-9);
        }
        let rule_hits = &scored.labels["rule_hits"];
        let explained = |prefix: &str| {
            scored
                .explanation
                .iter()
                .filter(|c| c.name.starts_with(prefix))
                .map(|c| c.name[prefix.len()..].to_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(rule_hits, &explained("rule:"));
        assert_eq!(scored.labels["intel"], explained("intel:"));
    }
    assert_eq!(dispositions.len(), 4, "{dispositions:?}");
}

#[test]
fn a_known_bad_ip_fires_its_rule_and_raises_the_final_risk() {
    let mut operator =
        AlertOperator::with_model(AlertOperatorConfig::default(), shipped_model()).unwrap();
    let alert = fresh_alerts(50)[10].alert.clone();
    let mut with_bad_ip = alert.clone();
    with_bad_ip.ips = vec!["203.0.113.66".to_owned()];
    with_bad_ip.users = vec!["someone-else".to_owned()];
    with_bad_ip.hosts = vec!["other-host".to_owned()];
    let mut clean = alert;
    clean.ips = vec!["10.1.2.3".to_owned()];
    let outcomes = operator
        .score_batch(
            &[
                sourced(0, InputEvent::Alert(Box::new(clean))),
                sourced(1, InputEvent::Alert(Box::new(with_bad_ip))),
            ],
            &mut states(),
        )
        .unwrap();
    let (clean_scored, _) = scored(&outcomes[0]);
    let (bad_scored, _) = scored(&outcomes[1]);
    assert!(bad_scored.labels["rule_hits"]
        .split(',')
        .any(|rule| rule == "known-bad-ioc"));
    assert!(bad_scored
        .thresholds_crossed
        .contains(&"known-bad-ioc".to_owned()));
    assert!(bad_scored.scores["rule_score"] >= 70.0);
    assert!(bad_scored.scores["risk"] > clean_scored.scores["risk"]);
    // The hit names the snapshot's indicator and source, never the alert's own address.
    assert_eq!(bad_scored.labels["intel"], "203.0.113.0/24");
    let hit = bad_scored
        .explanation
        .iter()
        .find(|c| c.name == "intel:203.0.113.0/24")
        .expect("intel hit explained");
    assert_eq!(hit.value, Some(0.8));
    assert!(hit
        .detail
        .as_deref()
        .unwrap_or_default()
        .contains("RFC 5737 TEST-NET-3"));
    assert_eq!(clean_scored.labels["intel"], "");
}

#[test]
fn configured_intel_files_add_indicators_that_hosts_and_ips_match() {
    let dir = tempfile::tempdir().unwrap();
    let stix = dir.path().join("team.stix.json");
    std::fs::write(&stix, include_str!("intel/testdata/bundle.stix.json")).unwrap();
    let list = dir.path().join("extra.txt");
    std::fs::write(&list, "10.9.0.0/16 # our own sinkhole's clients\n").unwrap();
    let config = AlertOperatorConfig {
        intel: vec![stix, list],
        ..AlertOperatorConfig::default()
    };
    let mut operator = AlertOperator::with_model(config, shipped_model()).unwrap();
    let mut alert = fresh_alerts(50)[10].alert.clone();
    alert.hosts = vec!["C2.Evil.Example".to_owned()];
    alert.ips = vec!["10.9.4.4".to_owned()];
    alert.last_seen_ms = crate::operators::alert::intel::parse_time_ms("2026-12-05").unwrap();
    let outcomes = operator
        .score_batch(
            &[sourced(0, InputEvent::Alert(Box::new(alert)))],
            &mut states(),
        )
        .unwrap();
    let (scored, _) = scored(&outcomes[0]);
    assert_eq!(scored.labels["intel"], "10.9.0.0/16,c2.evil.example");
    assert!(scored.labels["rule_hits"]
        .split(',')
        .any(|rule| rule == "intel-host"));
    assert!(scored.labels["rule_hits"]
        .split(',')
        .any(|rule| rule == "known-bad-ioc"));
    let domain = scored
        .explanation
        .iter()
        .find(|c| c.name == "intel:c2.evil.example")
        .unwrap();
    assert_eq!(domain.value, Some(0.7));
    assert!(domain.detail.as_deref().unwrap().contains("Example CERT"));
}

#[test]
fn an_intrusion_raises_the_victims_behaviour_score_on_the_entity_topic() {
    let config = AlertOperatorConfig {
        entity_topic: "scored.entities".to_owned(),
        ..AlertOperatorConfig::default()
    };
    let mut operator = AlertOperator::with_model(config, shipped_model()).unwrap();
    let alerts = fresh_alerts(3000);
    let outcomes = operator
        .score_batch(&events(&alerts), &mut states())
        .unwrap();
    let mut behaviour: std::collections::HashMap<String, f64> = Default::default();
    let mut records = 0;
    for outcome in &outcomes {
        let (_, extra) = scored(outcome);
        for record in extra.iter().filter(|r| r.topic != "scored.incidents") {
            records += 1;
            assert_eq!(record.topic, "scored.entities");
            assert_eq!(
                record.scored.labels["entity_type"],
                record.key.split(':').next().unwrap()
            );
            behaviour.insert(record.key.clone(), record.scored.scores["behaviour_score"]);
        }
    }
    assert!(
        records > 0 && records < 2 * outcomes.len(),
        "{records} records"
    );
    // Victims of intrusions end with a higher behaviour score than users seen only in
    // benign alerts.
    let users_of = |scenario: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a.scenario == scenario)
            .flat_map(|a| a.alert.users.iter().map(|u| format!("user:{u}")))
            .collect()
    };
    let victims = users_of("intrusion");
    let benign: Vec<String> = users_of("benign")
        .into_iter()
        .filter(|user| !victims.contains(user) && !users_of("suspicious").contains(user))
        .collect();
    let peak = |users: &[String]| {
        let values: Vec<f64> = users
            .iter()
            .filter_map(|u| behaviour.get(u).copied())
            .collect();
        values.iter().sum::<f64>() / values.len().max(1) as f64
    };
    assert!(
        peak(&victims) > peak(&benign) + 0.1,
        "{} vs {}",
        peak(&victims),
        peak(&benign)
    );
}

#[test]
fn other_schemas_are_rejected_and_odd_alerts_still_scored() {
    let mut operator =
        AlertOperator::with_model(AlertOperatorConfig::default(), shipped_model()).unwrap();
    let odd = AlertEvent {
        event_id: None,
        alert_id: "x".into(),
        severity: "URGENT".into(),
        siem_source: "homegrown".into(),
        rule_id: "never-seen".into(),
        rule_name: String::new(),
        tactics: vec!["TA9999".into()],
        techniques: vec!["T0000".into()],
        users: Vec::new(),
        hosts: Vec::new(),
        ips: vec!["::1".into(), "garbage".into()],
        ioc_count: 0,
        asset_count: 0,
        asset_criticality: 0.0,
        event_count: 0,
        first_seen_ms: 0,
        last_seen_ms: 0,
    };
    let prompt = PromptEvent {
        event_id: None,
        text: "hello".into(),
        user: None,
        app: None,
        session_id: None,
        timestamp_ms: None,
    };
    let outcomes = operator
        .score_batch(
            &[
                sourced(0, InputEvent::Alert(Box::new(odd))),
                sourced(1, InputEvent::Prompt(prompt)),
            ],
            &mut states(),
        )
        .unwrap();
    let (odd_scored, _) = scored(&outcomes[0]);
    assert!(odd_scored.scores["risk"].is_finite());
    assert!(matches!(outcomes[1], Outcome::Rejected { .. }));
}

#[test]
fn start_loads_the_model_and_refuses_bad_weights_or_rules() {
    let models = repository_models();
    let state = tempfile::tempdir().unwrap();
    let operators = crate::config::OperatorSections::default();
    let context = OperatorContext {
        model_dir: &models,
        operators: &operators,
        input_topic: "test",
        kafka: None,
        pinned_version_dir: None,
    };
    let started = start_alert(&context).unwrap();
    assert!(!started.model_version().is_empty());
    let info = started.model_info().unwrap();
    assert!(info["feature_importances"].as_array().unwrap().len() > 20);

    let mut negative = crate::config::OperatorSections::default();
    let config = AlertOperatorConfig {
        ml_weight: -1.0,
        ..AlertOperatorConfig::default()
    };
    negative.set("alert", &config).unwrap();
    let context_negative = OperatorContext {
        operators: &negative,
        ..context.clone()
    };
    assert!(start_alert(&context_negative).is_err());

    let rules_file = state.path().join("rules.toml");
    std::fs::write(
        &rules_file,
        "version = \"x\"\n[[rule]]\nid = \"r\"\ndescription = \"d\"\nscore = 10\nwhen = [\"no_such_fact >= 1\"]\n",
    )
    .unwrap();
    let mut bad_rules = crate::config::OperatorSections::default();
    let config = AlertOperatorConfig {
        rules_file: Some(rules_file),
        ..AlertOperatorConfig::default()
    };
    bad_rules.set("alert", &config).unwrap();
    let context_rules = OperatorContext {
        operators: &bad_rules,
        ..context
    };
    let error = start_alert(&context_rules).err().unwrap();
    assert!(error.to_string().contains("no_such_fact"), "{error}");
}

fn states() -> PartitionStates {
    PartitionStates::new(Some(new_history))
}

fn start_alert(
    context: &OperatorContext<'_>,
) -> Result<crate::operators::testing::Started, OperatorError> {
    crate::operators::testing::start("alert", context)
}

#[test]
fn an_alert_that_continues_an_incident_is_raised_but_correlated_by_its_own_risk() {
    let scorer = crate::operators::alert::scorer::AlertScorer::new(
        shipped_model(),
        RuleSet::shipped(&shipped_model().manifest.features).unwrap(),
        BlendWeights::default(),
    );
    let settings = incidents::CorrelationSettings {
        min_risk: 0.0,
        ..AlertOperatorConfig::default().correlation()
    };
    let alert = |id: &str, tactic: &str, host: &str, minute: i64| -> AlertEvent {
        serde_json::from_value(serde_json::json!({
            "alert_id": id, "severity": "medium", "siem_source": "elastic", "rule_id": "R",
            "tactics": [tactic], "techniques": [], "users": [], "hosts": [host], "ips": [],
            "ioc_count": 0, "asset_count": 1, "asset_criticality": 0.3, "event_count": 1,
            "first_seen_ms": 1_796_000_000_000_i64 + minute * 60_000,
            "last_seen_ms": 1_796_000_000_000_i64 + minute * 60_000
        }))
        .unwrap()
    };
    let mut history = EntityHistory::default();
    let score = |history: &mut EntityHistory, a: &AlertEvent, offset: i64| {
        let keys = history::entity_keys(a);
        scorer.score_correlated(history, a, offset, &a.alert_id, &keys, &settings)
    };
    for (offset, (id, tactic)) in [("a1", "TA0001"), ("a2", "TA0002"), ("a3", "TA0006")]
        .into_iter()
        .enumerate()
    {
        let (first, _) = score(
            &mut history,
            &alert(id, tactic, "ws-1", offset as i64),
            offset as i64,
        );
        assert!(first
            .rule_hits
            .iter()
            .all(|hit| hit.id != "continues-incident"));
    }
    // The group on ws-1 is an incident now: the next alert there continues it.
    let (next, joined) = score(&mut history, &alert("a4", "TA0007", "ws-1", 5), 3);
    let hit = next
        .rule_hits
        .iter()
        .find(|hit| hit.id == "continues-incident");
    assert!(
        hit.is_some_and(|hit| hit.reads_group),
        "{:?}",
        next.rule_hits
    );
    assert!(next.uncorrelated_risk < next.risk);
    let joined = joined.unwrap();
    assert!(joined.declared);
    // Correlation recorded the alert at the risk it has on its own.
    let member = history
        .incidents
        .get(&joined.id)
        .unwrap()
        .members
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (member.alert_id.as_str(), member.risk),
        ("a4", next.uncorrelated_risk)
    );
    // Re-delivered (same offset and event id, e.g. after a crash), it scores the same.
    let (again, rejoined) = score(&mut history, &alert("a4", "TA0007", "ws-1", 5), 3);
    assert_eq!(
        (again.risk, again.rule_hits.len()),
        (next.risk, next.rule_hits.len())
    );
    assert!(!rejoined.unwrap().changed);
    // Another host is in no group: no correlation facts, the same risk either way.
    let (elsewhere, _) = score(&mut history, &alert("b1", "TA0007", "ws-2", 6), 4);
    assert!(elsewhere.rule_hits.iter().all(|hit| !hit.reads_group));
    assert_eq!(elsewhere.uncorrelated_risk, elsewhere.risk);
}

#[test]
fn by_default_only_alerts_at_high_risk_get_model_contributions() {
    let alerts = fresh_alerts(400);
    let run = |explain: ExplainMode| {
        let config = AlertOperatorConfig {
            explain,
            ..AlertOperatorConfig::default()
        };
        let mut operator = AlertOperator::with_model(config, shipped_model()).unwrap();
        operator
            .score_batch(&events(&alerts), &mut states())
            .unwrap()
            .iter()
            .map(|outcome| scored(outcome).0.clone())
            .collect::<Vec<Scored>>()
    };
    let model_entries = |scored: &Scored| {
        scored
            .explanation
            .iter()
            .filter(|c| !c.name.starts_with("rule:") && !c.name.starts_with("intel:"))
            .count()
    };
    let all = run(ExplainMode::All);
    let (mut explained, mut passed) = (0, 0);
    for (full, scored) in all.iter().zip(&run(ExplainMode::default())) {
        assert_eq!(full.scores, scored.scores);
        let high = scored.scores["risk"] >= 60.0;
        assert_eq!(scored.labels["explained"], high.to_string());
        if high {
            explained += 1;
            assert_eq!(scored.explanation, full.explanation);
        } else {
            passed += 1;
            // Rule and intel entries stay; the TreeSHAP ones go.
            assert_eq!(model_entries(scored), 0);
            assert_eq!(
                scored.explanation.len(),
                full.explanation.len() - model_entries(full)
            );
        }
    }
    assert!(
        explained > 10 && passed > 100,
        "{explained} explained, {passed} not"
    );
    assert!(run(ExplainMode::None)
        .iter()
        .all(|s| model_entries(s) == 0 && s.labels["explained"] == "false"));
}
