//! The sender-address fraud operator: how likely an address is machine-generated or
//! throwaway. Scores `addresses` records (sign-ups, account changes) and, bound to an
//! `emails` topic, the sender (`from`) of every message; the email operator embeds the same
//! [`scorer::AddressScorer`].
//!
//! Per address it emits (`schemas/scored.avsc` envelope):
//! - `scores`: `risk` (final, 0–1: `max(markov_risk, calibrated_probability)` — boost-only),
//!   `markov_risk`, `ratio_risk`, `abnormality`, `guardrail` (the short-local factor on the
//!   abnormality), `calibrated_probability`, `calibration_boost`
//!   (`max(0, calibrated − markov)`);
//! - `labels`: `decision` (allow / review / block), `boosted` (`true`/`false`),
//!   `calibration_version`, `domain` and `domain_class` (disposable / free / other),
//!   `address_source` (`address` or `email_from`), and for address records their `context`
//!   and `account`; the full address is not copied (the input record has it);
//! - `explanation`: the Markov risk with its parts, then the `top_contributors` features by
//!   |term| in the calibration's log-odds (value = the feature, contribution = log-odds);
//! - `thresholds_crossed`: `review` or `block`, `disposable_domain`, `calibration_boost`.
//!
//! An address that does not parse (no `@`, white space, a domain that is no host name) is
//! rejected → dead-lettered with the reason, never the address. An email with only a raw
//! RFC822 body and no `from` field is rejected too: parsing raw mail is the email operator's.
//!
//! Stateless; model swaps replace the model set and keep the settings.

pub mod commands;
pub mod domains;
pub mod drift;
pub mod eval;
pub mod features;
pub mod health;
pub mod learning;
pub mod local_part;
pub mod markov;
pub mod model;
pub mod scorer;
pub mod synth;
pub mod train;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::events::{InputEvent, SchemaKind};
use crate::operators::table::{
    check_section, same_features, settings, DefaultWorkers, ModelSpec, OperatorConfig,
    OperatorSpec, ShadowKeys,
};
use crate::operators::{
    start_with_model, BindingRuntime, Operator, OperatorContext, OperatorError, Outcome,
    SourcedEvent,
};
use crate::runtime::{ModelLoader, ModelSlot, PartitionStates};
use crate::scored::{now_ms, Contribution};
use features::FEATURES;
use model::AddressModel;
use scorer::{AddressAssessment, AddressScorer, Decision, DecisionThresholds, Guardrail};

/// `[operators.address]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressOperatorConfig {
    /// Version directory under `<storage.model_dir>/address/`; empty picks the newest.
    #[serde(default)]
    pub version: String,
    /// Risk from which an address is reviewed (and counted as flagged by `eval`).
    #[serde(default = "default_review_at")]
    pub review_at: f64,
    /// Risk from which it is blocked.
    #[serde(default = "default_block_at")]
    pub block_at: f64,
    /// Local parts of at most this many characters get no abnormality risk.
    #[serde(default = "default_guardrail_min_length")]
    pub guardrail_min_length: usize,
    /// From this many characters the abnormality risk counts fully.
    #[serde(default = "default_guardrail_max_length")]
    pub guardrail_max_length: usize,
    /// Domains added to the model's disposable list (list syntax, `*.example.com` allowed).
    #[serde(default)]
    pub extra_disposable_domains: Vec<String>,
    /// Domains added to the model's free-mail list.
    #[serde(default)]
    pub extra_free_domains: Vec<String>,
    /// Calibration features per address in `explanation`; 0 turns them off.
    #[serde(default = "default_top_contributors")]
    pub top_contributors: usize,
}

fn default_review_at() -> f64 {
    0.5
}

fn default_block_at() -> f64 {
    0.85
}

fn default_guardrail_min_length() -> usize {
    4
}

fn default_guardrail_max_length() -> usize {
    12
}

fn default_top_contributors() -> usize {
    5
}

impl Default for AddressOperatorConfig {
    fn default() -> Self {
        Self {
            version: String::new(),
            review_at: default_review_at(),
            block_at: default_block_at(),
            guardrail_min_length: default_guardrail_min_length(),
            guardrail_max_length: default_guardrail_max_length(),
            extra_disposable_domains: Vec::new(),
            extra_free_domains: Vec::new(),
            top_contributors: default_top_contributors(),
        }
    }
}

impl AddressOperatorConfig {
    /// Checks thresholds and guardrail bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0 < self.review_at && self.review_at <= self.block_at && self.block_at <= 1.0) {
            return Err(format!(
                "operators.address: need 0 < review_at ({}) <= block_at ({}) <= 1",
                self.review_at, self.block_at
            ));
        }
        if self.guardrail_min_length >= self.guardrail_max_length {
            return Err(format!(
                "operators.address: guardrail_min_length ({}) must be below guardrail_max_length ({})",
                self.guardrail_min_length, self.guardrail_max_length
            ));
        }
        Ok(())
    }

    /// The guardrail bounds.
    pub fn guardrail(&self) -> Guardrail {
        Guardrail {
            min_length: self.guardrail_min_length,
            max_length: self.guardrail_max_length,
        }
    }

    /// The decision thresholds.
    pub fn thresholds(&self) -> DecisionThresholds {
        DecisionThresholds {
            review_at: self.review_at,
            block_at: self.block_at,
        }
    }

    /// A scorer over `model` with these settings (extra domains added to its lists).
    pub fn scorer(&self, mut model: AddressModel) -> Result<AddressScorer, String> {
        self.validate()?;
        model
            .lists
            .disposable
            .extend(self.extra_disposable_domains.iter().map(String::as_str));
        model
            .lists
            .free
            .extend(self.extra_free_domains.iter().map(String::as_str));
        Ok(AddressScorer {
            model,
            guardrail: self.guardrail(),
            thresholds: self.thresholds(),
        })
    }
}

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "address",
    summary: "email addresses (address records, or the sender of emails): fraud risk and decision",
    accepts: |schema| matches!(schema, SchemaKind::Address | SchemaKind::Email),
    default_workers: DefaultWorkers::PerCore,
    model: Some(ModelSpec {
        dir: "address",
        check_features: |manifest| same_features(manifest, "features", &features::feature_names()),
        shadow: ShadowKeys {
            score: "risk",
            verdict: "decision",
            class: "decision",
        },
        drift: Some(health::DRIFT),
        learning: Some(learning::LEARNING),
        feedback_export: None,
    }),
    stateful: false,
    check_config: |sections| check_section::<AddressOperatorConfig>(sections, "address"),
    config_schema: Some(|generator| generator.subschema_for::<AddressOperatorConfig>()),
    start,
    commands: commands::COMMANDS,
};

impl OperatorConfig for AddressOperatorConfig {
    fn validate(&self) -> Result<(), String> {
        AddressOperatorConfig::validate(self)
    }
}

fn start(context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    let config: AddressOperatorConfig = settings(context, "address")?;
    let version = config.version.clone();
    start_with_model(
        context,
        "address",
        &version,
        AddressLoader { config },
        AddressOperator::over,
    )
}

/// Loads address model versions for the operator's settings.
#[derive(Clone)]
pub struct AddressLoader {
    config: AddressOperatorConfig,
}

impl ModelLoader for AddressLoader {
    type Model = AddressScorer;

    fn load(&self, version_dir: &Path) -> Result<AddressScorer, OperatorError> {
        let model =
            AddressModel::load(version_dir).map_err(OperatorError::model_at(version_dir))?;
        self.config.scorer(model).map_err(OperatorError::Config)
    }

    fn version(scorer: &AddressScorer) -> String {
        scorer.model.manifest.version.clone()
    }

    fn describe(scorer: &AddressScorer) -> serde_json::Value {
        let manifest = &scorer.model.manifest;
        let calibration = &scorer.model.calibration;
        serde_json::json!({
            "kind": manifest.kind,
            "version": manifest.version,
            "created_at": manifest.created_at,
            "calibration_version": manifest.calibration_version,
            "domain_lists_version": manifest.domain_lists_version,
            "disposable_domains": scorer.model.lists.disposable.len(),
            "free_domains": scorer.model.lists.free.len(),
            "calibration_weights": FEATURES.iter().zip(&calibration.weights)
                .map(|((name, _), weight)| (name.to_string(), *weight))
                .collect::<BTreeMap<_, _>>(),
            "markov_risk": manifest.markov_risk,
            "metrics": manifest.metrics,
            "thresholds": {"review_at": scorer.thresholds.review_at, "block_at": scorer.thresholds.block_at},
            "guardrail": {"min_length": scorer.guardrail.min_length, "max_length": scorer.guardrail.max_length},
        })
    }
}

/// One worker's address scorer; see the module doc.
pub struct AddressOperator {
    slot: Arc<ModelSlot<AddressLoader>>,
}

impl AddressOperator {
    /// A scorer over the binding's model slot.
    pub fn over(slot: Arc<ModelSlot<AddressLoader>>) -> Self {
        Self { slot }
    }

    /// A scorer over an already loaded model (tests, benchmarks).
    pub fn with_model(
        config: AddressOperatorConfig,
        model: AddressModel,
    ) -> Result<Self, OperatorError> {
        let scorer = config.scorer(model).map_err(OperatorError::Config)?;
        Ok(Self::over(ModelSlot::with_model(
            "address",
            AddressLoader { config },
            scorer,
            Path::new("(in memory)"),
        )))
    }

    fn explain(&self, assessment: &AddressAssessment) -> Vec<Contribution> {
        let mut explanation = vec![Contribution {
            name: "markov_risk".to_owned(),
            value: Some(assessment.markov_risk),
            contribution: assessment.markov_risk,
            detail: Some(format!(
                "max(ratio_risk {:.3}, abnormality {:.3} × guardrail {:.2})",
                assessment.ratio_risk, assessment.abnormality, assessment.guardrail
            )),
        }];
        let terms = &assessment.contributions;
        let mut order: Vec<usize> = (0..terms.len()).filter(|&i| terms[i] != 0.0).collect();
        order.sort_by(|&a, &b| terms[b].abs().total_cmp(&terms[a].abs()));
        explanation.extend(
            order
                .into_iter()
                .take(self.slot.loader().config.top_contributors)
                .map(|index| Contribution {
                    name: FEATURES[index].0.to_owned(),
                    value: Some(assessment.features.row[index]),
                    contribution: terms[index],
                    detail: Some(
                        if terms[index] > 0.0 {
                            "raises calibrated fraud log-odds"
                        } else {
                            "lowers calibrated fraud log-odds"
                        }
                        .to_owned(),
                    ),
                }),
        );
        explanation
    }

    fn score_one(
        &self,
        scorer: &AddressScorer,
        sourced: &SourcedEvent,
        scored_at_ms: i64,
    ) -> Outcome {
        let (text, mut labels) = match &sourced.event {
            InputEvent::Address(event) => {
                let mut labels = BTreeMap::from([
                    ("address_source".to_owned(), "address".to_owned()),
                    ("context".to_owned(), event.context.clone()),
                ]);
                if let Some(account) = &event.account {
                    labels.insert("account".to_owned(), account.clone());
                }
                (event.address.as_str(), labels)
            }
            InputEvent::Email(email) if !email.from.trim().is_empty() => (
                email.from.as_str(),
                BTreeMap::from([("address_source".to_owned(), "email_from".to_owned())]),
            ),
            InputEvent::Email(_) => {
                return Outcome::Rejected {
                    detail: "email has no from field (raw RFC822 is parsed by the email operator)"
                        .to_owned(),
                }
            }
            other => {
                return Outcome::Rejected {
                    detail: format!("address operator got a {:?} event", other.kind()),
                }
            }
        };
        let assessment = match scorer.score(text) {
            Ok(assessment) => assessment,
            Err(error) => {
                return Outcome::Rejected {
                    detail: error.to_string(),
                }
            }
        };
        let decision = assessment.decision;
        let manifest = &scorer.model.manifest;
        labels.extend([
            ("decision".to_owned(), decision.name().to_owned()),
            ("boosted".to_owned(), assessment.boosted().to_string()),
            (
                "calibration_version".to_owned(),
                manifest.calibration_version.clone(),
            ),
            (
                "domain_class".to_owned(),
                assessment.domain_class().name().to_owned(),
            ),
            ("domain".to_owned(), assessment.domain.clone()),
        ]);
        let mut thresholds_crossed = Vec::new();
        if decision != Decision::Allow {
            thresholds_crossed.push(decision.name().to_owned());
        }
        if assessment.domain_class() == domains::DomainClass::Disposable {
            thresholds_crossed.push("disposable_domain".to_owned());
        }
        if assessment.boosted() {
            thresholds_crossed.push("calibration_boost".to_owned());
        }
        metrics::counter!(crate::telemetry::ADDRESS_DECISIONS, "decision" => decision.name())
            .increment(1);
        let scores = BTreeMap::from([
            ("risk".to_owned(), assessment.risk),
            ("markov_risk".to_owned(), assessment.markov_risk),
            ("ratio_risk".to_owned(), assessment.ratio_risk),
            ("abnormality".to_owned(), assessment.abnormality),
            ("guardrail".to_owned(), assessment.guardrail),
            ("calibrated_probability".to_owned(), assessment.calibrated),
            ("calibration_boost".to_owned(), assessment.boost),
        ]);
        Outcome::Scored {
            scored: Box::new(
                sourced
                    .scored(self.name(), &manifest.version, scored_at_ms)
                    .with_scores(scores)
                    .with_labels(labels)
                    .with_explanation(self.explain(&assessment))
                    .with_thresholds(thresholds_crossed),
            ),
            extra: Vec::new(),
        }
    }
}

impl Operator for AddressOperator {
    fn name(&self) -> &'static str {
        "address"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        _state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        let loaded = self.slot.current();
        let scored_at_ms = now_ms();
        Ok(events
            .iter()
            .map(|sourced| self.score_one(&loaded.model, sourced, scored_at_ms))
            .collect())
    }
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
