use std::path::PathBuf;

use super::*;
use crate::events::{FlowEvent, PromptEvent};
use crate::operators::flow::dataset::read_nsl_kdd;

fn repository_models() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

fn shipped_model() -> FlowModel {
    let directory = train::newest_version(&repository_models().join("flow")).unwrap();
    FlowModel::load(&directory).unwrap()
}

fn sourced(index: usize, event: InputEvent) -> SourcedEvent {
    SourcedEvent::at_offset("flows", index as i64, event)
}

/// Rows of the test file, attacks and normal traffic alike.
fn test_events(count: usize) -> Vec<SourcedEvent> {
    let path = repository_models().join("flow/data/KDDTest+.txt");
    read_nsl_kdd(&path)
        .unwrap()
        .into_iter()
        .step_by(97)
        .take(count)
        .enumerate()
        .map(|(index, row)| sourced(index, InputEvent::Flow(Box::new(row.event))))
        .collect()
}

#[test]
fn every_event_is_scored_and_explained_exactly() {
    let model = shipped_model();
    let config = FlowOperatorConfig {
        explain: ExplainMode::All,
        ..FlowOperatorConfig::default()
    };
    let mut operator = FlowOperator::with_model(config, model.clone()).unwrap();
    let events = test_events(200);
    let outcomes = operator
        .score_batch(&events, &mut PartitionStates::new(None))
        .unwrap();
    assert_eq!(outcomes.len(), events.len());
    let mut verdicts = std::collections::BTreeSet::new();
    for (sourced, outcome) in events.iter().zip(&outcomes) {
        let Outcome::Scored { scored, extra } = outcome else {
            panic!("flow event rejected");
        };
        assert!(extra.is_empty());
        assert_eq!(scored.event_id, sourced.event_id);
        assert_eq!(scored.model_version, model.manifest.version);
        let InputEvent::Flow(flow) = &sourced.event else {
            unreachable!()
        };
        let mut row = Vec::new();
        model.encoder().encode_into(flow, &mut row);

        // Exact TreeSHAP: base value + Σ φ over all features = the reported margin.
        let phi = model.binary.shap_values(&row, 0);
        let margin = scored.scores["attack_margin"];
        let total = scored.scores["shap_base_value"] + phi.iter().sum::<f64>();
        assert!((total - margin).abs() < 1e-6, "{total} vs {margin}");
        assert!((sigmoid_of(margin) - scored.scores["attack_probability"]).abs() < 1e-12);

        // The explanation is the top 5 by |φ|, strongest first, with the φ values (the
        // operator's tabulated TreeSHAP against the recursive reference algorithm).
        let mut magnitudes: Vec<f64> = phi.iter().map(|value| value.abs()).collect();
        magnitudes.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(scored.explanation.len(), 5);
        for (contribution, magnitude) in scored.explanation.iter().zip(&magnitudes) {
            assert!((contribution.contribution.abs() - magnitude).abs() < 1e-9);
            let index = model
                .manifest
                .features
                .iter()
                .position(|f| *f == contribution.name)
                .unwrap();
            assert!((contribution.contribution - phi[index]).abs() < 1e-9);
        }

        let severity = scored.scores["severity"];
        assert!((0.0..=10.0).contains(&severity));
        assert_eq!(scored.labels["risk_level"], risk_level(severity));
        let probability = scored.scores["attack_probability"];
        let crossed: Vec<&str> = model
            .manifest
            .teams
            .iter()
            .filter(|team| probability >= team.point.threshold)
            .map(|team| team.team.as_str())
            .collect();
        assert_eq!(scored.thresholds_crossed, crossed);
        let class_sum: f64 = CLASSES
            .iter()
            .map(|class| scored.scores[&format!("p_{class}")])
            .sum();
        assert!((class_sum - 1.0).abs() < 1e-9);
        verdicts.insert(scored.labels["verdict"].clone());
        if scored.labels["verdict"] == "normal" {
            assert_eq!(scored.labels["attack_category"], "normal");
        } else {
            assert_ne!(scored.labels["attack_category"], "normal");
        }
    }
    // The sample holds both kinds of traffic, and the model tells them apart.
    assert_eq!(verdicts.len(), 2);
}

fn sigmoid_of(margin: f64) -> f64 {
    crate::ml::gbdt::sigmoid(margin)
}

#[test]
fn other_schemas_are_rejected_and_unknown_categories_are_scored() {
    let mut operator =
        FlowOperator::with_model(FlowOperatorConfig::default(), shipped_model()).unwrap();
    let mut flow = FlowEvent {
        protocol_type: "sctp".into(),
        service: "never-seen-service".into(),
        flag: "??".into(),
        src_bytes: 1e9,
        ..FlowEvent::default()
    };
    flow.count = 511.0;
    let events = vec![
        sourced(
            0,
            InputEvent::Prompt(PromptEvent {
                event_id: None,
                text: "hello".into(),
                user: None,
                app: None,
                session_id: None,
                timestamp_ms: None,
            }),
        ),
        sourced(1, InputEvent::Flow(Box::new(flow))),
    ];
    let outcomes = operator
        .score_batch(&events, &mut PartitionStates::new(None))
        .unwrap();
    assert!(matches!(&outcomes[0], Outcome::Rejected { detail } if detail.contains("Prompt")));
    let Outcome::Scored { scored, .. } = &outcomes[1] else {
        panic!("unknown categories must be scored");
    };
    assert!(scored.scores["attack_probability"].is_finite());
    // Missing codes are not reported as feature values.
    assert!(scored
        .explanation
        .iter()
        .filter(|contribution| contribution.name == "service")
        .all(|contribution| contribution.value.is_none()));
}

#[test]
fn team_topics_route_events_that_cross_the_team_threshold() {
    let model = shipped_model();
    let ir_threshold = model
        .manifest
        .teams
        .iter()
        .find(|t| t.team == "ir")
        .unwrap()
        .point
        .threshold;
    let config = FlowOperatorConfig {
        team_topics: [("ir".to_owned(), "flows.ir".to_owned())].into(),
        ..FlowOperatorConfig::default()
    };
    let mut operator = FlowOperator::with_model(config, model).unwrap();
    let events = test_events(200);
    let mut routed = 0;
    for outcome in operator
        .score_batch(&events, &mut PartitionStates::new(None))
        .unwrap()
    {
        let Outcome::Scored { scored, extra } = outcome else {
            panic!("rejected")
        };
        let crosses = scored.scores["attack_probability"] >= ir_threshold;
        assert_eq!(extra.len(), usize::from(crosses));
        for record in &extra {
            assert_eq!(record.topic, "flows.ir");
            assert_eq!(record.key, scored.event_id);
            routed += 1;
        }
    }
    assert!(routed > 0);

    let unknown_team = FlowOperatorConfig {
        team_topics: [("soc_tier9".to_owned(), "x".to_owned())].into(),
        ..FlowOperatorConfig::default()
    };
    assert!(FlowOperator::with_model(unknown_team, shipped_model()).is_err());
}

#[test]
fn start_loads_the_newest_version_and_refuses_a_missing_one() {
    let operators = crate::config::OperatorSections::default();
    let models = repository_models();
    let context = OperatorContext {
        model_dir: &models,
        operators: &operators,
        input_topic: "test",
        kafka: None,
        pinned_version_dir: None,
    };
    let started = crate::operators::testing::start("flow", &context).unwrap();
    assert!(!started.model_version().is_empty());

    let mut pinned = crate::config::OperatorSections::default();
    let config = FlowOperatorConfig {
        version: "does-not-exist".into(),
        ..FlowOperatorConfig::default()
    };
    pinned.set("flow", &config).unwrap();
    let context = OperatorContext {
        operators: &pinned,
        ..context
    };
    assert!(crate::operators::testing::start("flow", &context).is_err());
}

#[test]
fn by_default_only_flows_that_cross_a_team_threshold_are_explained() {
    let model = shipped_model();
    let events = test_events(200);
    let run = |explain: ExplainMode| {
        let config = FlowOperatorConfig {
            explain,
            ..FlowOperatorConfig::default()
        };
        let mut operator = FlowOperator::with_model(config, model.clone()).unwrap();
        operator
            .score_batch(&events, &mut PartitionStates::new(None))
            .unwrap()
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Scored { scored, .. } => *scored,
                Outcome::Rejected { detail } => panic!("flow rejected: {detail}"),
            })
            .collect::<Vec<_>>()
    };
    let all = run(ExplainMode::All);
    let crossed = run(ExplainMode::default());
    let (mut explained, mut passed) = (0, 0);
    for (full, scored) in all.iter().zip(&crossed) {
        // Explanations change nothing else.
        assert_eq!(full.scores, scored.scores);
        assert_eq!(full.thresholds_crossed, scored.thresholds_crossed);
        let expected = !scored.thresholds_crossed.is_empty();
        assert_eq!(scored.labels["explained"], expected.to_string());
        if expected {
            explained += 1;
            assert_eq!(scored.explanation, full.explanation);
        } else {
            passed += 1;
            assert!(scored.explanation.is_empty());
        }
    }
    assert!(
        explained > 20 && passed > 20,
        "{explained} explained, {passed} not"
    );
    assert!(run(ExplainMode::None)
        .iter()
        .all(|s| s.explanation.is_empty() && s.labels["explained"] == "false"));
}
