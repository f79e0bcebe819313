//! The operator table: every operator the engine can run, as one spec each.
//!
//! Config (`bindings[].operator`), the pipeline, `config check` and the demo read this table
//! instead of matching on a closed list. Adding an operator is its folder under
//! `operators/`, one `pub mod` line in `operators/mod.rs`, and one line in [`OPERATORS`] (see the README's developer
//! section; [`super::passthrough`] is the smallest example).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::OperatorSections;
use crate::events::SchemaKind;
use crate::operators::{BindingRuntime, OperatorContext, OperatorError};

/// Topics an operator writes besides its binding's output: (config key, topic).
pub type OutputTopics = Vec<(String, String)>;

/// An operator's typed `[operators.<name>]` settings.
pub trait OperatorConfig: DeserializeOwned + Default {
    /// Checks what `serde` cannot (ranges, combinations); the message names the key.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Topics the operator writes besides the binding's output, with the key that names
    /// each (for the loop check against input topics).
    fn output_topics(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Parses and validates `name`'s section as `T`; returns its extra output topics.
pub fn check_section<T: OperatorConfig>(
    sections: &OperatorSections,
    name: &str,
) -> Result<OutputTopics, String> {
    let config: T = sections.section(name)?;
    config.validate()?;
    Ok(config.output_topics())
}

/// The typed settings of operator `name`, validated, as an operator's `start` reads them.
pub fn settings<T: OperatorConfig>(
    context: &OperatorContext<'_>,
    name: &str,
) -> Result<T, OperatorError> {
    let config: T = context
        .operators
        .section(name)
        .map_err(OperatorError::Config)?;
    config.validate().map_err(OperatorError::Config)?;
    Ok(config)
}

/// Every problem of the `[operators.*]` sections (unknown operator names, keys, values), and
/// the extra output topics the operators will write.
pub fn check_sections(sections: &OperatorSections) -> (Vec<String>, OutputTopics) {
    let mut problems = Vec::new();
    let mut outputs = Vec::new();
    for name in sections.names() {
        if find(name).is_none() {
            problems.push(format!("operators.{name}: no such operator"));
        }
    }
    for spec in OPERATORS {
        match (spec.check_config)(sections) {
            Ok(topics) => outputs.extend(topics),
            Err(problem) => problems.push(problem),
        }
    }
    (problems, outputs)
}

/// How many workers a binding gets when its config does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultWorkers {
    /// One per core: the operator's work is plain CPU work that scales with threads.
    PerCore,
    /// One: the operator parallelises inside (ONNX Runtime's own thread pool).
    One,
}

/// The verbs under which operators contribute commands (`threatflow <verb> <name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `threatflow train <operator>`.
    Train,
    /// `threatflow eval <operator>`.
    Eval,
    /// `threatflow generate <data>`.
    Generate,
    /// `threatflow bench <operator>`.
    Bench,
    /// `threatflow drift-reference <operator>`.
    DriftReference,
}

/// One command an operator contributes: its clap definition (from a `clap::Args` type in the
/// operator's folder) and what runs it.
#[derive(Clone, Copy)]
pub struct OperatorCommand {
    /// Under which verb.
    pub verb: Verb,
    /// The subcommand name (`flow`; `alerts` for `generate alerts`).
    pub name: &'static str,
    /// The clap command: name, about and arguments.
    pub command: fn() -> clap::Command,
    /// Parses the matches into the operator's arguments and runs the command.
    pub run: fn(&clap::ArgMatches) -> anyhow::Result<()>,
}

/// Every command of `verb`, in table order.
pub fn commands(verb: Verb) -> impl Iterator<Item = &'static OperatorCommand> {
    OPERATORS
        .iter()
        .flat_map(|spec| spec.commands.iter())
        .filter(move |command| command.verb == verb)
}

/// One operator.
pub struct OperatorSpec {
    /// Name, as in config (`bindings[].operator`) and in the scored envelope.
    pub name: &'static str,
    /// One line for `--help` and docs.
    pub summary: &'static str,
    /// Whether it scores records of a schema.
    pub accepts: fn(SchemaKind) -> bool,
    /// Workers per binding by default.
    pub default_workers: DefaultWorkers,
    /// Its model versions (`None`: no model).
    pub model: Option<ModelSpec>,
    /// Whether it keeps keyed partition state (then its binding has a changelog topic).
    pub stateful: bool,
    /// Parses and validates its `[operators.<name>]` section; returns its extra output
    /// topics (usually `check_section::<ItsConfig>` for its name).
    pub check_config: fn(&OperatorSections) -> Result<OutputTopics, String>,
    /// The JSON Schema of its `[operators.<name>]` section (`None`: it has no settings), for
    /// the configuration reference (`threatflow reference config`).
    pub config_schema: Option<fn(&mut schemars::SchemaGenerator) -> schemars::Schema>,
    /// Loads the model into a shared slot and returns what the binding's workers share.
    pub start: fn(&OperatorContext<'_>) -> Result<BindingRuntime, OperatorError>,
    /// Its `train` / `eval` / `generate` / `bench` commands.
    pub commands: &'static [OperatorCommand],
}

/// What the registry needs to know about an operator's model versions.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The directory under `storage.model_dir` (and the store) its versions live in.
    pub dir: &'static str,
    /// Checks a manifest's feature list against what this build computes (`models verify`);
    /// the message says where they differ.
    pub check_features: fn(&serde_json::Value) -> Result<(), String>,
    /// Which outputs a shadow challenger is compared on.
    pub shadow: ShadowKeys,
    /// What the drift watch compares (`None`: the operator's inputs are not watched).
    pub drift: Option<DriftSpec>,
    /// How its models learn from analysts' verdicts (`None`: not retrained by the engine).
    pub learning: Option<crate::learning::LearningSpec>,
    /// For a model trained outside the engine: one buffered verdict as a row of its training
    /// recipe's input (`threatflow feedback export <operator>`); its verdicts are buffered.
    pub feedback_export: Option<fn(&crate::events::InputEvent, bool) -> Option<serde_json::Value>>,
}

/// What the drift watch reads of an operator's events.
#[derive(Debug, Clone, Copy)]
pub struct DriftSpec {
    /// The watched values of one event, in the order of its versions' reference samples
    /// (`None`: its input features are not watched; score drift still is).
    pub row: fn(&crate::events::InputEvent) -> Option<Vec<f64>>,
    /// The operator's own health figures over windows of scored events.
    pub health: Option<HealthSpec>,
}

/// An operator's health figures, read from its scored events, with alert levels.
#[derive(Debug, Clone, Copy)]
pub struct HealthSpec {
    /// One value per figure for one scored event (`None`: the event says nothing about it);
    /// the window's figure is the mean.
    pub values: fn(&crate::scored::Scored) -> Vec<Option<f64>>,
    /// The figures, in `values` order.
    pub figures: &'static [HealthFigure],
}

/// One health figure and its alert level.
#[derive(Debug, Clone, Copy)]
pub struct HealthFigure {
    /// Name (the drift record's `feature`).
    pub name: &'static str,
    /// The alert level.
    pub level: f64,
    /// Alert above the level (else below).
    pub alert_above: bool,
}

/// A drift spec that watches only scores (no input features, no health figures).
pub const SCORES_ONLY: DriftSpec = DriftSpec {
    row: |_| None,
    health: None,
};

/// The outputs champion and challenger are compared on in shadow scoring.
#[derive(Debug, Clone, Copy)]
pub struct ShadowKeys {
    /// The main score (`scores[score]`): the score-difference distribution.
    pub score: &'static str,
    /// The verdict label (`labels[verdict]`): the agreement rate.
    pub verdict: &'static str,
    /// The class label (`labels[class]`): the champion × challenger confusion.
    pub class: &'static str,
}

/// Compares a manifest's `field` list with `expected` (for [`ModelSpec::check_features`]).
pub fn same_features(
    manifest: &serde_json::Value,
    field: &str,
    expected: &[String],
) -> Result<(), String> {
    let Some(listed) = manifest.get(field).and_then(|v| v.as_array()) else {
        return Err(format!("the manifest has no {field} list"));
    };
    let listed: Vec<&str> = listed.iter().map(|v| v.as_str().unwrap_or("?")).collect();
    if let Some(position) = (0..listed.len().max(expected.len()))
        .find(|&i| listed.get(i).copied() != expected.get(i).map(String::as_str))
    {
        return Err(format!(
            "{field} differ from the code's at position {position}: manifest {:?}, code {:?}",
            listed.get(position),
            expected.get(position)
        ));
    }
    Ok(())
}

impl std::fmt::Debug for OperatorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every operator. The order is the order of listings, and the demo binds each stream to the
/// first operator with a model that accepts its schema (so `email` before `address`).
pub static OPERATORS: &[OperatorSpec] = &[
    super::passthrough::SPEC,
    super::flow::SPEC,
    super::alert::SPEC,
    super::email::SPEC,
    super::address::SPEC,
    super::prompt::SPEC,
    super::fault::SPEC,
];

/// The spec named `name`.
pub fn find(name: &str) -> Option<&'static OperatorSpec> {
    OPERATORS.iter().find(|spec| spec.name == name)
}

/// An operator as named in config: a reference into [`OPERATORS`].
#[derive(Clone, Copy)]
pub struct OperatorKind(&'static OperatorSpec);

impl OperatorKind {
    /// The operator named `name`, if there is one.
    pub fn named(name: &str) -> Option<Self> {
        find(name).map(Self)
    }

    /// Its spec.
    pub fn spec(self) -> &'static OperatorSpec {
        self.0
    }

    /// Name as in config.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Whether this operator scores records of `schema`.
    pub fn accepts(self, schema: SchemaKind) -> bool {
        (self.0.accepts)(schema)
    }

    /// Workers per binding when config does not say: the number of cores for CPU-bound
    /// operators, 1 otherwise.
    pub fn default_workers(self) -> usize {
        match self.0.default_workers {
            DefaultWorkers::One => 1,
            DefaultWorkers::PerCore => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl PartialEq for OperatorKind {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for OperatorKind {}

impl std::hash::Hash for OperatorKind {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl std::fmt::Debug for OperatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl std::fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for OperatorKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for OperatorKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::named(&name).ok_or_else(|| {
            let known: Vec<&str> = OPERATORS.iter().map(|spec| spec.name).collect();
            serde::de::Error::custom(format!(
                "unknown operator `{name}`, expected one of {}",
                known.join(", ")
            ))
        })
    }
}

impl schemars::JsonSchema for OperatorKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OperatorKind".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = OPERATORS.iter().map(|spec| spec.name).collect();
        schemars::json_schema!({
            "type": "string",
            "enum": names,
            "description": "An operator of this build (`threatflow reference config` lists them)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip_through_config() {
        let mut names: Vec<&str> = OPERATORS.iter().map(|spec| spec.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OPERATORS.len());
        for spec in OPERATORS {
            let kind: OperatorKind = serde_json::from_value(serde_json::json!(spec.name)).unwrap();
            assert_eq!(kind.name(), spec.name);
        }
        assert!(serde_json::from_value::<OperatorKind>(serde_json::json!("nope")).is_err());
        assert!(OperatorKind::named("flow")
            .unwrap()
            .accepts(SchemaKind::Flow));
        assert!(!OperatorKind::named("flow")
            .unwrap()
            .accepts(SchemaKind::Alert));
        assert_eq!(OperatorKind::named("prompt").unwrap().default_workers(), 1);
    }
}
