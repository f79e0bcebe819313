//! Unit tests of `config.rs`: defaults, unknown keys, environment overrides, validation.

use super::*;

const MINIMAL: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
group_id = "threatflow"

[[bindings]]
topic = "flows"
schema = "flow"
operator = "passthrough"
output_topic = "scored.flows"
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
fn minimal_config_gets_defaults() {
    let config = EngineConfig::from_toml_with_env(MINIMAL, no_env()).unwrap();
    assert_eq!(config.pipeline.batch_size, 500);
    assert_eq!(config.output.dead_letter_topic, "threatflow.dlq");
    assert_eq!(config.bindings[0].input_format, InputFormat::Auto);
    assert_eq!(config.http.bind, "0.0.0.0:9464");
}

#[test]
fn unknown_keys_are_rejected() {
    let text = format!("{MINIMAL}\n[pipeline]\nbatch_sise = 10\n");
    let error = EngineConfig::from_toml_with_env(&text, no_env()).unwrap_err();
    assert!(error.to_string().contains("batch_sise"), "{error}");
}

#[test]
fn unknown_operator_is_rejected() {
    let text = MINIMAL.replace("\"passthrough\"", "\"magic\"");
    let error = EngineConfig::from_toml_with_env(&text, no_env()).unwrap_err();
    assert!(error.to_string().contains("magic"), "{error}");
}

#[test]
fn env_overrides_keep_numeric_strings_as_strings_where_a_string_is_expected() {
    let config = EngineConfig::from_toml_with_env(
        MINIMAL,
        env(&[
            ("THREATFLOW_KAFKA__GROUP_ID", "42"),
            ("THREATFLOW_KAFKA__GROUP_INSTANCE_ID", "7"),
            ("THREATFLOW_PIPELINE__BATCH_SIZE", "64"),
        ]),
    )
    .unwrap();
    assert_eq!(config.kafka.group_id, "42");
    assert_eq!(config.kafka.group_instance_id, "7");
    assert_eq!(config.pipeline.batch_size, 64);
    let wrong = EngineConfig::from_toml_with_env(
        MINIMAL,
        env(&[("THREATFLOW_PIPELINE__BATCH_SIZE", "many")]),
    );
    assert!(wrong.is_err());
}

#[test]
fn each_operator_checks_its_own_section() {
    let config = EngineConfig::from_toml_with_env(
        &format!("{MINIMAL}\n[operators.alert]\nml_weight = 0.5\n"),
        env(&[
            ("THREATFLOW_OPERATORS__EMAIL__USER_TOPIC", "42"),
            ("THREATFLOW_OPERATORS__FLOW__TOP_CONTRIBUTORS", "3"),
        ]),
    )
    .unwrap();
    let email: crate::operators::email::EmailOperatorConfig =
        config.operators.section("email").unwrap();
    assert_eq!(email.user_topic, "42");
    let flow: crate::operators::flow::FlowOperatorConfig =
        config.operators.section("flow").unwrap();
    assert_eq!(flow.top_contributors, 3);
    // A key of an earlier release that is now ignored still loads.
    let earlier = EngineConfig::from_toml_with_env(
        &format!("{MINIMAL}\n[operators.email]\ncheckpoint_interval_ms = 5000\n"),
        no_env(),
    );
    assert!(earlier.is_ok(), "{earlier:?}");
    for (text, expected) in [
        (
            "[operators.flw]\nversion = \"v1\"\n",
            "operators.flw: no such operator",
        ),
        (
            "[operators.flow]\ntop_contributorz = 1\n",
            "top_contributorz",
        ),
        ("[operators.alert]\nml_weight = -1.0\n", "operators.alert"),
    ] {
        let error = EngineConfig::from_toml_with_env(&format!("{MINIMAL}\n{text}"), no_env())
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error}");
    }
}

#[test]
fn env_overrides_apply_and_typos_are_rejected() {
    let config = EngineConfig::from_toml_with_env(
        MINIMAL,
        env(&[
            ("THREATFLOW_PIPELINE__BATCH_SIZE", "64"),
            ("THREATFLOW_KAFKA__BROKERS", "kafka-0:9093"),
            ("THREATFLOW_KAFKA__OPTIONS__SASL_PASSWORD", "hunter2"),
            ("THREATFLOW_CONFIG", "/etc/threatflow.toml"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .unwrap();
    assert_eq!(config.pipeline.batch_size, 64);
    assert_eq!(config.kafka.brokers, "kafka-0:9093");
    assert_eq!(config.kafka.options["sasl.password"], "hunter2");
    let rendered = config.to_masked_toml();
    assert!(!rendered.contains("hunter2"), "{rendered}");

    let error =
        EngineConfig::from_toml_with_env(MINIMAL, env(&[("THREATFLOW_PIPELINE__BATCH_SIZ", "64")]))
            .unwrap_err();
    assert!(error.to_string().contains("batch_siz"), "{error}");
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = format!(
        "{MINIMAL}\n[pipeline]\nbatch_size = 0\n[http]\nbind = \"nowhere\"\n[output]\nformat = \"confluent\"\n"
    );
    let error = EngineConfig::from_toml_with_env(&text, no_env()).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("pipeline.batch_size"), "{message}");
    assert!(message.contains("http.bind"), "{message}");
    assert!(message.contains("output.confluent_ids.scored"), "{message}");
}

#[test]
fn output_topic_equal_to_an_input_is_rejected() {
    let text = MINIMAL.replace("\"scored.flows\"", "\"flows\"");
    let error = EngineConfig::from_toml_with_env(&text, no_env()).unwrap_err();
    assert!(error.to_string().contains("would loop"), "{error}");
}

#[test]
fn shipped_example_configs_are_valid() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/config");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "toml")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            EngineConfig::from_toml_with_env(&text, no_env())
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            checked += 1;
        }
    }
    assert!(checked > 0, "no example config found in {examples}");
}

#[test]
fn registry_defaults_and_checks() {
    let config = EngineConfig::from_toml_with_env(MINIMAL, no_env()).unwrap();
    assert!(config.registry.enabled);
    assert_eq!(config.registry.topic, "threatflow.registry");
    assert_eq!(
        config.registry.store_location(&config.storage.model_dir),
        "./models"
    );
    assert_eq!(
        config.registry.cache_dir(&config.storage.state_dir),
        PathBuf::from("./state/model-cache")
    );
    let text = format!(
        "{MINIMAL}\n[registry]\nshadow_fraction = 1.5\nmax_age_days = 0\nshadow_topic = \"flows\"\n[http]\nmodel_admin = true\n"
    );
    let message = EngineConfig::from_toml_with_env(&text, no_env())
        .unwrap_err()
        .to_string();
    for key in [
        "registry.shadow_fraction",
        "registry.max_age_days",
        "registry.shadow_topic",
        "http.admin_token",
    ] {
        assert!(message.contains(key), "{key}: {message}");
    }
    let with_token = format!("{MINIMAL}\n[http]\nmodel_admin = true\n");
    let config = EngineConfig::from_toml_with_env(
        &with_token,
        env(&[("THREATFLOW_HTTP__ADMIN_TOKEN", "t0ken")]),
    )
    .unwrap();
    assert_eq!(config.http.admin_token, "t0ken");
    assert!(!config.to_masked_toml().contains("t0ken"));
}

#[test]
fn whole_floats_from_helm_read_as_integers_and_floats_stay_floats() {
    let text = r#"
[kafka]
brokers = "k:9092"
group_id = "g"
[[bindings]]
topic = "flows"
schema = "flow"
operator = "flow"
output_topic = "scored.flows"
[pipeline]
batch_size = 500.0
[registry]
shadow_fraction = 1.0
"#;
    let config = EngineConfig::from_toml_with_env(text, Vec::new()).unwrap();
    assert_eq!(config.pipeline.batch_size, 500);
    assert_eq!(config.registry.shadow_fraction, 1.0);
    let fractional = text.replace("batch_size = 500.0", "batch_size = 500.5");
    assert!(EngineConfig::from_toml_with_env(&fractional, Vec::new()).is_err());
}
