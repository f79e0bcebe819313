//! An engine process with every operator bound (one input and output topic each, one
//! partition, so the stream scores in the order produced), the shipped models, and helpers to
//! stream events through it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use threatflow::events::SchemaKind;
use threatflow::scored::Scored;

use crate::{
    consume_scored, free_loopback_address, http_call, repository, unique_name, Broker,
    EngineProcess,
};

/// Every operator, in binding order.
pub const OPERATORS: [SchemaKind; 5] = [
    SchemaKind::Prompt,
    SchemaKind::Flow,
    SchemaKind::Email,
    SchemaKind::Alert,
    SchemaKind::Address,
];

/// Waits until `address` answers `/ready` with 200 (panics with the logs after 60 s).
pub fn wait_ready(address: &str, logs: impl Fn() -> String) {
    for _ in 0..600 {
        if let Ok(answer) = http_call(address, "GET", "/ready", &[], None) {
            if answer.status == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("engine not ready\n{}", logs());
}

/// An engine with every operator bound, one partition per topic so the stream scores in the
/// order produced.
pub struct AllOperators {
    _process: EngineProcess,
    dir: tempfile::TempDir,
    /// The engine's HTTP address.
    pub http: String,
    /// Input topic per operator (schema) name.
    pub inputs: BTreeMap<&'static str, String>,
    /// Output topic per operator name.
    pub outputs: BTreeMap<&'static str, String>,
    /// The engine's config file.
    pub config_path: PathBuf,
    /// Dead-letter, alert entity and email user topics.
    pub topics: ExtraTopics,
}

/// The outputs besides the scored topics.
#[derive(Debug, Clone)]
pub struct ExtraTopics {
    /// Dead letters of every binding.
    pub dead_letters: String,
    /// Alert entity behaviour records.
    pub entities: String,
    /// Email per-user risk records.
    pub users: String,
}

impl AllOperators {
    /// Starts `binary` (integration tests pass `env!("CARGO_BIN_EXE_threatflow-under-test")`)
    /// with every operator bound, the shipped models and `extra` config text appended (its
    /// `{input:<operator>}` placeholders name the operator's input topic); waits until ready.
    pub fn start(binary: &Path, broker: &Broker, extra: &str) -> Self {
        Self::start_with(binary, broker, "", extra)
    }

    /// [`Self::start`] with `binding_extra` added to every `[[bindings]]` entry (for example
    /// `privacy = "scores-only"`).
    pub fn start_with(binary: &Path, broker: &Broker, binding_extra: &str, extra: &str) -> Self {
        Self::start_with_env(binary, broker, binding_extra, extra, &[])
    }

    /// [`Self::start_with`] with environment overrides (`THREATFLOW_OUTPUT__FORMAT=ocsf`).
    pub fn start_with_env(
        binary: &Path,
        broker: &Broker,
        binding_extra: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = free_loopback_address().unwrap();
        let mut inputs = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        let mut bindings = String::new();
        for kind in OPERATORS {
            let (input, output) = (unique_name(kind.name()), unique_name("scored"));
            broker.create_topic(&input, 1).unwrap();
            broker.create_topic(&output, 1).unwrap();
            bindings.push_str(&format!(
                "[[bindings]]\ntopic = \"{input}\"\nschema = \"{name}\"\noperator = \"{name}\"\noutput_topic = \"{output}\"\n{binding_extra}\n\n",
                name = kind.name()
            ));
            inputs.insert(kind.name(), input);
            outputs.insert(kind.name(), output);
        }
        let (dead_letters, entities, users) = (
            unique_name("dlq"),
            unique_name("entities"),
            unique_name("users"),
        );
        let topics = ExtraTopics {
            dead_letters: dead_letters.clone(),
            entities: entities.clone(),
            users: users.clone(),
        };
        for topic in [&dead_letters, &entities, &users] {
            broker.create_topic(topic, 1).unwrap();
        }
        let config = format!(
            r#"
[kafka]
brokers = "{brokers}"
group_id = "{group}"

{bindings}
[output]
dead_letter_topic = "{dead_letters}"

[storage]
state_dir = "{state}"
model_dir = "{models}"

[http]
bind = "{http}"

[pipeline]
linger_ms = 10
state_checkpoint_ms = 200

[operators.alert]
entity_topic = "{entities}"

[operators.email]
user_topic = "{users}"
{extra}
"#,
            brokers = broker.bootstrap,
            group = unique_name("group"),
            state = dir.path().join("state").display(),
            models = repository().join("models").display(),
        );
        let mut config = config;
        for (operator, topic) in &inputs {
            config = config.replace(&format!("{{input:{operator}}}"), topic);
        }
        let config_path = dir.path().join("engine.toml");
        std::fs::write(&config_path, config).unwrap();
        let process = EngineProcess::start_with_env(
            binary,
            &config_path,
            &dir.path().join("engine.log"),
            env,
        )
        .unwrap();
        let engine = Self {
            _process: process,
            dir,
            http,
            inputs,
            outputs,
            config_path,
            topics,
        };
        wait_ready(&engine.http, || engine.logs());
        engine
    }

    /// The engine's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap_or_default()
    }

    /// Produces `events` to `kind`'s input and returns the stream's records for them (the
    /// output topic's records `skip..skip + events.len()`).
    pub async fn stream(
        &self,
        broker: &Broker,
        kind: SchemaKind,
        events: &[Value],
        skip: usize,
    ) -> Vec<Scored> {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|event| event.to_string().into_bytes())
            .collect();
        crate::produce(&broker.bootstrap, &self.inputs[kind.name()], &payloads)
            .await
            .unwrap();
        let output = &self.outputs[kind.name()];
        let expected = skip + events.len();
        let records = consume_scored(
            &broker.bootstrap,
            &[output],
            1,
            Duration::from_secs(120),
            |r| r.get(output).map_or(0, Vec::len) >= expected,
        );
        let records = records.get(output).cloned().unwrap_or_default();
        assert_eq!(records.len(), expected, "{}", self.logs());
        records[skip..].to_vec()
    }
}
