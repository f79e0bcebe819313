use std::path::PathBuf;

use super::*;
use crate::events::{AddressEvent, EmailEvent, PromptEvent};
use crate::ml::artifact::newest_version;
use crate::ml::logistic::StandardizedLogistic;
use crate::scored::Scored;

fn shipped_model() -> AddressModel {
    let models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/address"));
    AddressModel::load(&newest_version(&models).unwrap()).unwrap()
}

fn default_scorer() -> AddressScorer {
    AddressOperatorConfig::default()
        .scorer(shipped_model())
        .unwrap()
}

fn address_event(address: &str) -> InputEvent {
    InputEvent::Address(AddressEvent {
        event_id: None,
        address: address.to_owned(),
        context: "signup".to_owned(),
        account: Some("acct-1".to_owned()),
        observed_ms: Some(1_790_000_000_000),
    })
}

/// An email from `from` to one colleague, optionally only as raw RFC822.
fn email_event(from: &str, raw_rfc822: Option<&str>) -> InputEvent {
    InputEvent::Email(Box::new(EmailEvent {
        event_id: None,
        from: from.to_owned(),
        to: vec!["a@corp.example.com".to_owned()],
        cc: Vec::new(),
        bcc: Vec::new(),
        date_ms: None,
        subject: String::new(),
        body: String::new(),
        attachments: Vec::new(),
        raw_rfc822: raw_rfc822.map(str::to_owned),
    }))
}

fn score_all(operator: &mut AddressOperator, events: Vec<InputEvent>) -> Vec<Outcome> {
    let sourced: Vec<SourcedEvent> = events
        .into_iter()
        .enumerate()
        .map(|(index, event)| SourcedEvent::at_offset("addresses", index as i64, event))
        .collect();
    operator
        .score_batch(&sourced, &mut PartitionStates::new(None))
        .unwrap()
}

fn scored(outcome: &Outcome) -> &Scored {
    match outcome {
        Outcome::Scored { scored, .. } => scored,
        Outcome::Rejected { detail } => panic!("rejected: {detail}"),
    }
}

#[test]
fn short_real_names_are_not_flagged() {
    let scorer = default_scorer();
    for address in [
        "tim@company.com",
        "ann@gmail.com",
        "bob@yahoo.com",
        "li@corp.com",
        "ed@outlook.com",
        "jo@gmail.com",
        "max@gmx.de",
        "eve@corp.com",
        "zoe@gmail.com",
        "kai@web.de",
        "amy@company.com",
        "sam@gmail.com",
        "Tim <tim@company.com>",
    ] {
        let assessment = scorer.score(address).unwrap();
        assert_eq!(assessment.guardrail, 0.0, "{address}");
        assert_eq!(
            assessment.decision,
            Decision::Allow,
            "{address}: {assessment:?}"
        );
    }
}

#[test]
fn machine_made_and_throwaway_addresses_are_flagged() {
    let scorer = default_scorer();
    for address in [
        "xk7qz9v2lmw8@gmail.com",
        "qwertyuiop123@yahoo.com",
        "jessica83749261@outlook.com",
        "a3f9c2e1b7d4e5f6@gmail.com",
        "jane.doe@mailinator.com",
        "mark.smith@sub.33mail.com",
    ] {
        let assessment = scorer.score(address).unwrap();
        assert_ne!(
            assessment.decision,
            Decision::Allow,
            "{address}: {assessment:?}"
        );
    }
    // The disposable domain is what gives the last two away: the calibration boosted them.
    let throwaway = scorer.score("jane.doe@mailinator.com").unwrap();
    assert!(
        throwaway.boosted() && throwaway.markov_risk < 0.5,
        "{throwaway:?}"
    );
}

/// Boost-only: a calibration that says "certainly legitimate" for everything leaves every
/// address's risk at its Markov risk, and never below it.
#[test]
fn calibration_never_lowers_the_markov_risk() {
    let mut model = shipped_model();
    let width = model.calibration.width();
    model.calibration = StandardizedLogistic {
        means: vec![0.0; width],
        scales: vec![1.0; width],
        weights: vec![0.0; width],
        intercept: -40.0,
        l2_penalty: 1.0,
    };
    let scorer = AddressOperatorConfig::default().scorer(model).unwrap();
    let mut high = 0;
    for address in [
        "zq8xk2vbn7wp@gmail.com",
        "hx9f0q2lzt@yahoo.com",
        "jane.doe@corp.com",
    ] {
        let assessment = scorer.score(address).unwrap();
        assert!(assessment.calibrated < 1e-12);
        assert_eq!(assessment.risk, assessment.markov_risk, "{address}");
        assert_eq!(assessment.boost, 0.0);
        assert!(!assessment.boosted());
        high += usize::from(assessment.markov_risk > 0.8);
    }
    assert_eq!(high, 2, "the random strings keep their high Markov risk");
}

#[test]
fn scored_events_carry_decision_explanation_and_calibration_version() {
    let model = shipped_model();
    let version = model.manifest.calibration_version.clone();
    let mut operator =
        AddressOperator::with_model(AddressOperatorConfig::default(), model).unwrap();
    let email = email_event("\"Jane\" <jane.doe@corp.example.com>", None);
    let outcomes = score_all(
        &mut operator,
        vec![
            address_event("jane.doe@mailinator.com"),
            email,
            address_event("kq8z7x2mv9wl@gmail.com"),
        ],
    );
    let throwaway = scored(&outcomes[0]);
    assert_eq!(throwaway.operator, "address");
    assert_eq!(throwaway.labels["calibration_version"], version);
    assert_eq!(throwaway.labels["domain_class"], "disposable");
    assert_eq!(throwaway.labels["domain"], "mailinator.com");
    assert_eq!(throwaway.labels["context"], "signup");
    assert_eq!(throwaway.labels["account"], "acct-1");
    assert_eq!(throwaway.labels["boosted"], "true");
    let scores = &throwaway.scores;
    assert_eq!(
        scores["risk"],
        scores["markov_risk"].max(scores["calibrated_probability"])
    );
    assert!((scores["calibration_boost"] - (scores["risk"] - scores["markov_risk"])).abs() < 1e-12);
    assert!(throwaway
        .thresholds_crossed
        .contains(&"disposable_domain".to_owned()));
    assert!(throwaway
        .thresholds_crossed
        .contains(&"calibration_boost".to_owned()));
    assert_eq!(throwaway.explanation[0].name, "markov_risk");
    let features = &throwaway.explanation[1..];
    assert_eq!(features.len(), 5);
    assert_eq!(features[0].name, "disposable_domain", "the domain drove it");
    assert!(features
        .windows(2)
        .all(|w| w[0].contribution.abs() >= w[1].contribution.abs()));

    let sender = scored(&outcomes[1]);
    assert_eq!(sender.labels["address_source"], "email_from");
    assert_eq!(sender.labels["decision"], "allow");
    assert!(sender.thresholds_crossed.is_empty());

    let random = scored(&outcomes[2]);
    assert_ne!(random.labels["decision"], "allow");
    assert!(random
        .thresholds_crossed
        .iter()
        .any(|t| t == "review" || t == "block"));
}

#[test]
fn bad_addresses_and_other_events_are_rejected_without_quoting_them() {
    let mut operator =
        AddressOperator::with_model(AddressOperatorConfig::default(), shipped_model()).unwrap();
    let raw_only = email_event("", Some("From: a@b.com\r\n\r\nhi"));
    let prompt = InputEvent::Prompt(PromptEvent {
        event_id: None,
        text: "hello".to_owned(),
        user: None,
        app: None,
        session_id: None,
        timestamp_ms: None,
    });
    let outcomes = score_all(
        &mut operator,
        vec![
            address_event("secret-token-no-at-sign"),
            address_event("x y@corp.com"),
            raw_only,
            prompt,
        ],
    );
    assert_eq!(outcomes.len(), 4);
    for outcome in &outcomes {
        match outcome {
            Outcome::Rejected { detail } => {
                assert!(!detail.contains("secret-token"), "{detail}");
                assert!(!detail.contains("x y"), "{detail}");
            }
            Outcome::Scored { .. } => panic!("scored a bad input"),
        }
    }
}

#[test]
fn config_extras_and_bounds() {
    let config = AddressOperatorConfig {
        extra_disposable_domains: vec!["*.burner.example".to_owned()],
        ..AddressOperatorConfig::default()
    };
    let scorer = config.scorer(shipped_model()).unwrap();
    let assessment = scorer.score("jane.doe@x.burner.example").unwrap();
    assert_eq!(assessment.domain_class(), domains::DomainClass::Disposable);
    for bad in [
        AddressOperatorConfig {
            review_at: 0.9,
            block_at: 0.5,
            ..AddressOperatorConfig::default()
        },
        AddressOperatorConfig {
            guardrail_min_length: 12,
            guardrail_max_length: 4,
            ..AddressOperatorConfig::default()
        },
    ] {
        assert!(AddressOperator::with_model(bad, shipped_model()).is_err());
    }
}

/// The calibration-health figures over `addresses` scored by the shipped model.
fn health_figures(addresses: &[String]) -> Vec<f64> {
    let scorer = default_scorer();
    let mut sums = vec![(0.0, 0usize); super::health::FIGURES.len()];
    for address in addresses {
        let Ok(assessment) = scorer.score(address) else {
            continue;
        };
        let scored = Scored {
            event_id: String::new(),
            source: crate::scored::SourceCoordinates {
                topic: String::new(),
                partition: 0,
                offset: 0,
                timestamp_ms: None,
            },
            operator: "address".into(),
            model_version: "v1".into(),
            scores: [
                ("markov_risk".to_owned(), assessment.markov_risk),
                ("calibrated_probability".to_owned(), assessment.calibrated),
                ("guardrail".to_owned(), assessment.guardrail),
            ]
            .into(),
            labels: Default::default(),
            explanation: Vec::new(),
            thresholds_crossed: Vec::new(),
            event_time_ms: None,
            scored_at_ms: 0,
        };
        for (sum, value) in sums.iter_mut().zip(super::health::values(&scored)) {
            if let Some(value) = value {
                sum.0 += value;
                sum.1 += 1;
            }
        }
    }
    sums.iter()
        .map(|(sum, count)| sum / (*count).max(1) as f64)
        .collect()
}

#[test]
fn calibration_health_holds_on_real_addresses_and_alarms_on_machine_made_ones() {
    let ham = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/address/sources/ham_addresses.txt"
    ))
    .unwrap();
    let real: Vec<String> = ham.lines().map(str::to_owned).collect();
    let sources = super::synth::AddressSources::load(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/address/sources"
    )))
    .unwrap();
    let generated = super::synth::generate(&sources, 6000, 1.0, 3);
    let machine: Vec<String> = generated
        .into_iter()
        .filter(|row| row.label == 1 && row.scenario == "name_digit_burst")
        .map(|row| row.address)
        .take(1000)
        .collect();
    assert!(machine.len() > 300, "{}", machine.len());
    let real_figures = health_figures(&real);
    let machine_figures = health_figures(&machine);
    eprintln!("real {real_figures:?}\nmachine-made {machine_figures:?}");
    let alarms = |figures: &[f64]| {
        super::health::FIGURES
            .iter()
            .zip(figures)
            .filter(|(figure, &value)| {
                if figure.alert_above {
                    value > figure.level
                } else {
                    value < figure.level
                }
            })
            .map(|(figure, _)| figure.name)
            .collect::<Vec<_>>()
    };
    assert!(alarms(&real_figures).is_empty(), "{real_figures:?}");
    assert!(!alarms(&machine_figures).is_empty(), "{machine_figures:?}");
}
