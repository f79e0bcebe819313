//! The rule layer's loading checks, conditions, intel and technique facts, and the shipped
//! rules' examples.

use super::*;

const NO_GROUP: GroupFacts = GroupFacts {
    alerts: 0,
    tactics: 0,
    incident: false,
};

fn features() -> Vec<String> {
    ["asset_criticality", "tactic_TA0006", "ioc_count"]
        .iter()
        .map(|name| (*name).to_owned())
        .collect()
}

const FILE: &str = r#"
version = "t1"
known_bad_networks = ["203.0.113.0/24", "8.8.8.8"]
[[rule]]
id = "crown"
description = "d"
score = 60
when = ["asset_criticality >= 0.8", "tactic_TA0006 == 1"]
[[rule]]
id = "bad-ip"
description = "d"
score = 50
when = ["known_bad_ip_count >= 1"]
"#;

fn facts<'a>(row: &'a [f64], intel: &'a IntelMatches) -> Facts<'a> {
    Facts {
        row,
        intel,
        techniques: &[],
        group: &NO_GROUP,
    }
}

fn intel_of(rules: &RuleSet, ips: &[String]) -> IntelMatches {
    crate::operators::alert::intel::IntelSet::new(rules.known_bad.clone()).match_alert(ips, &[], 0)
}

#[test]
fn rules_fire_on_all_conditions_and_combine_as_noisy_or() {
    let rules = RuleSet::parse(FILE, &features()).expect("parses");
    let ips = vec![
        "203.0.113.9".to_owned(),
        "8.8.8.8".to_owned(),
        "x".to_owned(),
    ];
    let intel = intel_of(&rules, &ips);
    assert_eq!(intel.ip_hits, 2);
    let hits = rules.evaluate(&facts(&[0.9, 1.0, 0.0], &intel));
    assert_eq!(hits.len(), 2);
    assert!((combined_score(&hits) - 80.0).abs() < 1e-9);
    let none = IntelMatches::default();
    assert_eq!(rules.evaluate(&facts(&[0.7, 1.0, 0.0], &none)), Vec::new());
    assert_eq!(
        rules.evaluate(&facts(&[f64::NAN, 1.0, 0.0], &none)),
        Vec::new()
    );
    assert_eq!(combined_score(&[]), 0.0);
}

#[test]
fn intel_facts_are_rule_facts() {
    let file = FILE.replace(
        "when = [\"known_bad_ip_count >= 1\"]",
        "when = [\"intel_host_hits >= 1\", \"intel_max_confidence >= 0.9\"]",
    );
    let rules = RuleSet::parse(&file, &features()).expect("parses");
    let mut intel = IntelMatches {
        host_hits: 1,
        max_confidence: 0.95,
        ..IntelMatches::default()
    };
    assert_eq!(rules.evaluate(&facts(&[0.0, 0.0, 0.0], &intel)).len(), 1);
    intel.max_confidence = 0.5;
    assert!(rules.evaluate(&facts(&[0.0, 0.0, 0.0], &intel)).is_empty());
}

#[test]
fn bad_files_are_refused_with_the_rule_id() {
    for (broken, expected) in [
        ("asset_criticality >= 0.8", "nothing"),
        ("criticality >= 0.8", "unknown fact"),
        ("asset_criticality => 0.8", "unknown operator"),
        ("asset_criticality >= high", "not a number"),
        ("asset_criticality>=0.8", "is not"),
    ] {
        let text = FILE.replace("asset_criticality >= 0.8", broken);
        let result = RuleSet::parse(&text, &features());
        if expected == "nothing" {
            assert!(result.is_ok());
        } else {
            let message = result.map(|_| ()).unwrap_err().to_string();
            assert!(
                message.contains("crown") && message.contains(expected),
                "{message}"
            );
        }
    }
    assert!(RuleSet::parse(&FILE.replace("60", "160"), &features()).is_err());
    assert!(RuleSet::parse(&FILE.replace("8.8.8.8", "8.8.8.8/40"), &features()).is_err());
}

#[test]
fn the_shipped_rules_cover_every_tactic_and_pass_their_examples() {
    let features = crate::operators::alert::features::feature_names();
    let rules = RuleSet::shipped(&features).expect("shipped rules load");
    let problems = rules.check_examples();
    assert!(problems.is_empty(), "{problems:#?}");
    let pack: Vec<&Rule> = rules.rules.iter().filter(|r| r.tactic.is_some()).collect();
    assert!(pack.len() >= 60, "{} pack rules", pack.len());
    for rule in &pack {
        assert!(
            rule.has_examples(),
            "{} lacks an example of each kind",
            rule.id
        );
        assert!(
            !rule.techniques.is_empty(),
            "{} names no technique",
            rule.id
        );
        assert!(
            rule.severity.is_some() && rule.confidence.is_some(),
            "{}",
            rule.id
        );
    }
    let tactics: HashSet<&str> = pack.iter().filter_map(|r| r.tactic.as_deref()).collect();
    assert_eq!(tactics.len(), 14, "{tactics:?}");
}

#[test]
fn examples_catch_a_rule_that_does_not_do_what_it_says() {
    let file = r#"
version = "t"
[[rule]]
id = "dump"
description = "credential dumping on a critical asset"
tactic = "TA0006"
techniques = ["T1003.001"]
score = 50
when = ["technique_T1003 == 1", "asset_criticality >= 0.8"]
should_fire = [{ "technique_T1003.001" = 1, asset_criticality = 0.5 }]
should_not_fire = [{ "technique_T1003.001" = 1, asset_criticality = 0.9 }]
"#;
    let features = crate::operators::alert::features::feature_names();
    let rules = RuleSet::parse(file, &features).unwrap();
    let problems = rules.check_examples();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("did not fire") && problems[1].contains("fired"));
}

#[test]
fn technique_facts_match_sub_techniques_and_unknown_names_are_refused() {
    let features = crate::operators::alert::features::feature_names();
    let file = |when: &str| {
        format!("version = \"t\"\n[[rule]]\nid = \"r\"\ndescription = \"d\"\nscore = 10\nwhen = [\"{when}\"]\n")
    };
    let rules = RuleSet::parse(&file("technique_T1059 == 1"), &features).unwrap();
    let intel = IntelMatches::default();
    let row = vec![0.0; features.len()];
    let fires = |techniques: &[&str]| {
        let techniques: Vec<String> = techniques.iter().map(|t| (*t).to_owned()).collect();
        !rules
            .evaluate(&Facts {
                row: &row,
                intel: &intel,
                techniques: &techniques,
                group: &NO_GROUP,
            })
            .is_empty()
    };
    assert!(fires(&["T1059.001"]));
    assert!(fires(&["T1059"]));
    assert!(!fires(&["T10590"]));
    assert!(!fires(&["T1078"]));
    for (when, expected) in [
        ("technique_T9999 == 1", "unknown fact"),
        ("technique_t1059 == 1", "unknown fact"),
    ] {
        let error = RuleSet::parse(&file(when), &features)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
    let bad_tactic =
        file("technique_T1059 == 1").replace("score = 10", "score = 10\ntactic = \"TA9999\"");
    assert!(RuleSet::parse(&bad_tactic, &features).is_err());
    let twice = format!(
        "{}{}",
        file("technique_T1059 == 1"),
        file("technique_T1059 == 1").replace("version = \"t\"\n", "")
    );
    assert!(RuleSet::parse(&twice, &features)
        .unwrap_err()
        .to_string()
        .contains("duplicate"));
}
