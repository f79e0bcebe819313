//! The network-flow operator: scores NSL-KDD-style connection records with gradient-boosted
//! trees and explains its alerts with exact TreeSHAP.
//!
//! Per event it emits (`schemas/scored.avsc` envelope):
//! - `scores`: `attack_probability` (binary model), `severity` 0-10 ([`model::severity`]),
//!   `p_normal`, `p_dos`, `p_probe`, `p_r2l`, `p_u2r` (category model), and
//!   `shap_base_value` and `attack_margin`: the base value plus the SHAP values of all
//!   features equals the attack margin (log-odds), so a consumer can check an explanation;
//! - `labels`: `verdict` (attack / normal at the manifest's decision threshold),
//!   `attack_category`, `predicted_class`, `risk_level`, `recommended_action`, `explained`;
//! - `explanation`: the `top_contributors` features by |SHAP| on the attack margin, with
//!   their values — for the flows `explain` selects (default `crossed`: those reaching a
//!   team's operating point; `all`; `none`), empty for the others;
//! - `thresholds_crossed`: the teams whose operating point the event reaches; with
//!   `team_topics` configured the event is also written to each crossed team's topic.
//!
//! The model is loaded once at start from `<storage.model_dir>/flow/<version>/` (the newest
//! version when none is configured) and checked against the code's feature list; an event
//! of another schema is rejected to the dead-letter topic, never scored.

pub mod bench_trees;
pub mod commands;
pub mod dataset;
pub mod drift;
pub mod eval;
pub mod features;
pub mod learning;
pub mod model;
pub mod novel;
pub mod train;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::events::{InputEvent, SchemaKind};
use crate::ml::fast_shap::FastTreeShap;
use crate::operators::explain_mode::{ExplainMode, EXPLAINED_LABEL};
use crate::operators::table::{
    check_section, same_features, settings, DefaultWorkers, DriftSpec, ModelSpec, OperatorConfig,
    OperatorSpec, ShadowKeys,
};
use crate::operators::{
    start_with_model, BindingRuntime, ExtraRecord, Operator, OperatorContext, OperatorError,
    Outcome, SourcedEvent,
};
use crate::runtime::{ModelLoader, ModelSlot, PartitionStates};
use crate::scored::{now_ms, Contribution};
use dataset::CLASSES;
use features::FeatureEncoder;
use model::{recommended_action, risk_level, FlowAssessment, FlowModel};

/// `[operators.flow]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowOperatorConfig {
    /// Version directory under `<storage.model_dir>/flow/`; empty picks the newest.
    #[serde(default)]
    pub version: String,
    /// Features per event in `explanation`, strongest |SHAP| first; 0 turns explanations
    /// off (TreeSHAP is most of the scoring cost).
    #[serde(default = "default_top_contributors")]
    pub top_contributors: usize,
    /// Which flows get TreeSHAP contributions: `all`, `crossed` (those crossing a team's
    /// threshold; the default) or `none`; the label `explained` says which did.
    #[serde(default)]
    pub explain: ExplainMode,
    /// Team → topic: an event crossing that team's threshold is also written there.
    #[serde(default)]
    pub team_topics: BTreeMap<String, String>,
}

fn default_top_contributors() -> usize {
    5
}

impl Default for FlowOperatorConfig {
    fn default() -> Self {
        Self {
            version: String::new(),
            top_contributors: default_top_contributors(),
            explain: ExplainMode::default(),
            team_topics: BTreeMap::new(),
        }
    }
}

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "flow",
    summary: "network flows: gradient-boosted severity with TreeSHAP explanations",
    accepts: |schema| schema == SchemaKind::Flow,
    default_workers: DefaultWorkers::PerCore,
    model: Some(ModelSpec {
        dir: "flow",
        check_features: |manifest| {
            same_features(
                manifest,
                "features",
                &features::FeatureEncoder::feature_names(),
            )
        },
        shadow: ShadowKeys {
            score: "attack_probability",
            verdict: "verdict",
            class: "predicted_class",
        },
        drift: Some(DriftSpec {
            row: drift::drift_row,
            health: None,
        }),
        learning: Some(learning::LEARNING),
        feedback_export: None,
    }),
    stateful: false,
    check_config: |sections| check_section::<FlowOperatorConfig>(sections, "flow"),
    config_schema: Some(|generator| generator.subschema_for::<FlowOperatorConfig>()),
    start,
    commands: commands::COMMANDS,
};

impl OperatorConfig for FlowOperatorConfig {
    fn output_topics(&self) -> Vec<(String, String)> {
        self.team_topics
            .iter()
            .map(|(team, topic)| (format!("operators.flow.team_topics.{team}"), topic.clone()))
            .collect()
    }
}

fn start(context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    let config: FlowOperatorConfig = settings(context, "flow")?;
    let version = config.version.clone();
    start_with_model(
        context,
        "flow",
        &version,
        FlowLoader { config },
        FlowOperator::over,
    )
}

/// Loads flow model versions for the operator's settings.
#[derive(Clone)]
pub struct FlowLoader {
    config: FlowOperatorConfig,
}

/// A loaded flow model with what scoring derives from it once.
pub struct LoadedFlow {
    model: FlowModel,
    /// Team index → output topic, resolved against the manifest.
    team_routes: Vec<Option<String>>,
    /// The binary model's expected margin (TreeSHAP base value).
    shap_base_value: f64,
    /// TreeSHAP tables of the binary model.
    shap_tables: FastTreeShap,
}

impl FlowLoader {
    fn prepare(&self, model: FlowModel) -> Result<LoadedFlow, OperatorError> {
        let teams: Vec<&str> = model
            .manifest
            .teams
            .iter()
            .map(|t| t.team.as_str())
            .collect();
        if let Some(unknown) = self
            .config
            .team_topics
            .keys()
            .find(|team| !teams.contains(&team.as_str()))
        {
            return Err(OperatorError::Config(format!(
                "operators.flow.team_topics names team {unknown:?}; the model has {teams:?}"
            )));
        }
        Ok(LoadedFlow {
            team_routes: teams
                .iter()
                .map(|team| self.config.team_topics.get(*team).cloned())
                .collect(),
            shap_base_value: model.binary.expected_value()[0],
            shap_tables: FastTreeShap::new(&model.binary, 0),
            model,
        })
    }
}

impl ModelLoader for FlowLoader {
    type Model = LoadedFlow;

    fn load(&self, version_dir: &Path) -> Result<LoadedFlow, OperatorError> {
        let model = FlowModel::load(version_dir).map_err(OperatorError::model_at(version_dir))?;
        self.prepare(model)
    }

    fn version(loaded: &LoadedFlow) -> String {
        loaded.model.manifest.version.clone()
    }

    fn describe(loaded: &LoadedFlow) -> serde_json::Value {
        let manifest = &loaded.model.manifest;
        serde_json::json!({
            "kind": manifest.kind,
            "version": manifest.version,
            "created_at": manifest.created_at,
            "classes": manifest.classes,
            "decision_threshold": manifest.decision_threshold,
            "teams": manifest.teams,
            "metrics": manifest.metrics,
        })
    }
}

/// One worker's flow scorer; see the module doc.
pub struct FlowOperator {
    slot: Arc<ModelSlot<FlowLoader>>,
    /// Row buffer reused across batches.
    rows: Vec<f64>,
}

impl FlowOperator {
    /// A scorer over the binding's model slot.
    pub fn over(slot: Arc<ModelSlot<FlowLoader>>) -> Self {
        Self {
            slot,
            rows: Vec::new(),
        }
    }

    /// A scorer over an already loaded model (tests, benchmarks).
    pub fn with_model(config: FlowOperatorConfig, model: FlowModel) -> Result<Self, OperatorError> {
        let loader = FlowLoader { config };
        let loaded = loader.prepare(model)?;
        Ok(Self::over(ModelSlot::with_model(
            "flow",
            loader,
            loaded,
            Path::new("(in memory)"),
        )))
    }

    fn config(&self) -> &FlowOperatorConfig {
        &self.slot.loader().config
    }

    fn explain(&self, loaded: &LoadedFlow, row: &[f64]) -> Vec<Contribution> {
        let top = self.config().top_contributors;
        if top == 0 {
            return Vec::new();
        }
        let model = &loaded.model;
        let shap = loaded.shap_tables.shap_values(&model.binary, row);
        let mut order: Vec<usize> = (0..shap.len()).filter(|&i| shap[i] != 0.0).collect();
        order.sort_by(|&a, &b| shap[b].abs().total_cmp(&shap[a].abs()));
        order
            .into_iter()
            .take(top)
            .map(|index| Contribution {
                name: model.manifest.features[index].clone(),
                value: row[index].is_finite().then_some(row[index]),
                contribution: shap[index],
                detail: Some(
                    if shap[index] > 0.0 {
                        "raises attack log-odds"
                    } else {
                        "lowers attack log-odds"
                    }
                    .to_owned(),
                ),
            })
            .collect()
    }

    fn score_one(
        &self,
        loaded: &LoadedFlow,
        sourced: &SourcedEvent,
        row: &[f64],
        assessment: FlowAssessment,
        scored_at_ms: i64,
    ) -> Outcome {
        let model = &loaded.model;
        let margin = assessment.attack_margin;
        let level = risk_level(assessment.severity);
        let mut scores = BTreeMap::from([
            (
                "attack_probability".to_owned(),
                assessment.attack_probability,
            ),
            ("severity".to_owned(), assessment.severity),
            ("attack_margin".to_owned(), margin),
            ("shap_base_value".to_owned(), loaded.shap_base_value),
        ]);
        for (class, probability) in CLASSES.iter().zip(assessment.class_probabilities) {
            scores.insert(format!("p_{class}"), probability);
        }
        let verdict = if assessment.attack_probability >= model.manifest.decision_threshold {
            "attack"
        } else {
            "normal"
        };
        let config = self.config();
        let explained = config.top_contributors > 0
            && config
                .explain
                .explains(!assessment.teams_crossed.is_empty());
        let labels = BTreeMap::from([
            (EXPLAINED_LABEL.to_owned(), explained.to_string()),
            ("verdict".to_owned(), verdict.to_owned()),
            (
                "attack_category".to_owned(),
                CLASSES[assessment.attack_category].to_owned(),
            ),
            (
                "predicted_class".to_owned(),
                CLASSES[assessment.predicted_class].to_owned(),
            ),
            ("risk_level".to_owned(), level.to_owned()),
            (
                "recommended_action".to_owned(),
                recommended_action(level, assessment.attack_category).to_owned(),
            ),
        ]);
        let scored = sourced
            .scored(self.name(), &model.manifest.version, scored_at_ms)
            .with_scores(scores)
            .with_labels(labels)
            .with_explanation(if explained {
                self.explain(loaded, row)
            } else {
                Vec::new()
            })
            .with_thresholds(
                assessment
                    .teams_crossed
                    .iter()
                    .map(|&team| model.manifest.teams[team].team.clone())
                    .collect(),
            );
        let extra = assessment
            .teams_crossed
            .iter()
            .filter_map(|&team| loaded.team_routes.get(team).cloned().flatten())
            .map(|topic| ExtraRecord {
                topic,
                key: sourced.event_id.clone(),
                scored: scored.clone(),
            })
            .collect();
        Outcome::Scored {
            scored: Box::new(scored),
            extra,
        }
    }
}

impl Operator for FlowOperator {
    fn name(&self) -> &'static str {
        "flow"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        _state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        // One model for the whole batch, even if a swap lands meanwhile.
        let loaded = self.slot.current();
        let loaded = &loaded.model;
        let model = &loaded.model;
        let width = FeatureEncoder::width();
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        for sourced in events {
            if let InputEvent::Flow(flow) = &sourced.event {
                model.encoder().encode_into(flow, &mut rows);
            }
        }
        let scored_at_ms = now_ms();
        let mut assessments = model.assess_batch(&rows).into_iter();
        let mut flow_rows = rows.chunks_exact(width);
        let outcomes = events
            .iter()
            .map(|sourced| {
                if !matches!(sourced.event, InputEvent::Flow(_)) {
                    return Outcome::Rejected {
                        detail: format!("flow operator got a {:?} event", sourced.event.kind()),
                    };
                }
                match (flow_rows.next(), assessments.next()) {
                    (Some(row), Some(assessment)) => {
                        self.score_one(loaded, sourced, row, assessment, scored_at_ms)
                    }
                    _ => Outcome::Rejected {
                        detail: "feature row missing".to_owned(),
                    },
                }
            })
            .collect();
        self.rows = rows;
        Ok(outcomes)
    }
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
