//! The prompt operator: is an LLM prompt an attack (prompt injection, jailbreak, obfuscated
//! command, data exfiltration / PII fishing, toxicity), which family, how sure.
//!
//! Per prompt: [`normalize`] folds obfuscations; L1 ([`rules`]) runs the rule set on the raw
//! and the normalized text; L2 ([`l2`], [`batcher`]) scores both views (the normalized one
//! only when it differs) with the transformer classifier on ONNX Runtime, long prompts in
//! windows; [`decision`] combines the evidence.
//!
//! Emits (`schemas/scored.avsc` envelope):
//! - `scores`: `attack_probability`, `l2_probability` (max over views and windows),
//!   `l2_probability_raw`, `l2_probability_normalized` (when scored), `l1_confidence`,
//!   `severity_level` (0 none … 4 critical), `l2_threshold`;
//! - `labels`: `verdict` (attack / suspicious / benign), `decided_by` (l1 / l2 / l1+l2),
//!   `severity`, `families`, `rules` (comma-separated), `normalization` (transforms or
//!   `none`), `l2_device`;
//! - `explanation`: each fired rule (name = rule id, value = confidence, detail = family,
//!   severity and view), then the L2 probability against its threshold, then normalization;
//!   never prompt text;
//! - `thresholds_crossed`: `attack` or `suspicious`.
//!
//! An L2 failure (ONNX Runtime error) is an engine failure for the batch (retried, then the
//! engine stops) — prompts are never passed on as scored by rules alone. Stateless apart from
//! the model. The model version lives in `<model_dir>/prompt/<version>/`; its ONNX Runtime
//! session and batcher belong to the loaded version, so a swap builds new ones (warmed with
//! one inference before it goes live) and the old batcher drains and stops when the last
//! batch that holds it finishes. One worker by default: the session is multi-threaded.

pub mod batcher;
pub mod bench;
pub mod commands;
pub mod decision;
pub mod eval;
pub mod l2;
pub mod normalize;
pub mod rules;
mod views;
pub mod window;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::{InputEvent, SchemaKind};
use crate::operators::table::{
    check_section, settings, DefaultWorkers, ModelSpec, OperatorConfig, OperatorSpec, ShadowKeys,
};
use crate::operators::{
    model_version_dir, BindingRuntime, Operator, OperatorContext, OperatorError, Outcome,
    SourcedEvent,
};
use crate::runtime::{ModelLoader, ModelSlot, PartitionStates};
use crate::scored::{now_ms, Contribution, Scored};
use crate::telemetry;
use batcher::{Batcher, BatcherSettings};
use decision::{decide, Decision, DecisionThresholds, Evidence, RuleHit, View};
use l2::{Device, L2Error, L2Manifest, L2Model, SessionSettings};
use normalize::{NormalizeConfig, Normalizer, Transform};
use rules::RuleSet;
use views::L2Views;
use window::PromptTokenizer;

/// `[operators.prompt]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PromptOperatorConfig {
    /// L2 model version under `<storage.model_dir>/prompt/`; empty picks the newest.
    pub version: String,
    /// Rule file; empty means `<storage.model_dir>/prompt/rules/rules.toml`.
    pub rules_file: String,
    /// Rule confidence from which a rule alone makes a prompt an attack.
    pub rule_verdict_confidence: f64,
    /// L2 attack threshold; unset uses the model's (chosen on validation data).
    pub l2_threshold: Option<f64>,
    /// Normalization bounds.
    pub normalize: NormalizeConfig,
    /// The L2 classifier and its batcher.
    pub l2: L2Config,
}

impl Default for PromptOperatorConfig {
    fn default() -> Self {
        Self {
            version: String::new(),
            rules_file: String::new(),
            rule_verdict_confidence: 0.8,
            l2_threshold: None,
            normalize: NormalizeConfig::default(),
            l2: L2Config::default(),
        }
    }
}

/// `[operators.prompt.l2]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct L2Config {
    /// Run the classifier; off leaves L1 alone (for hosts without ONNX Runtime).
    pub enabled: bool,
    /// `cpu`, or `cuda:N` (falls back to the CPU with a warning when CUDA is unavailable).
    pub execution_provider: String,
    /// ONNX Runtime shared library; empty uses `ORT_DYLIB_PATH`, then
    /// `.tools/lib/libonnxruntime.so` (installed by `scripts/setup.sh`).
    pub onnxruntime_library: String,
    /// ONNX Runtime intra-op threads; 0 = one per core.
    pub intra_threads: usize,
    /// Most sequences per inference batch.
    pub max_batch: usize,
    /// Longest wait of the oldest queued sequence before its batch runs, microseconds.
    pub max_wait_us: u64,
    /// Sequences that may queue before callers block (backpressure).
    pub queue_capacity: usize,
    /// Windows of `max_length` tokens scored per long prompt (first ones and the last).
    pub max_chunks: usize,
    /// Stop scoring a long prompt's windows once its first window decides it (same verdict,
    /// severity and families; `l2_probability` is then the highest window scored). Off scores
    /// every window, for users who rank by the probability of all windows (slower).
    pub settle_early: bool,
    /// ONNX Runtime graph optimizers to skip; the default skips `SkipLayerNormFusion`, whose
    /// fused kernel is slower on CPU than the model's own Add + LayerNormalization (measured).
    pub disabled_optimizers: Vec<String>,
}

impl Default for L2Config {
    fn default() -> Self {
        Self {
            enabled: true,
            execution_provider: "cpu".to_owned(),
            onnxruntime_library: String::new(),
            intra_threads: 0,
            // Bounds the latency of a burst's first sequence; GPUs gain from more.
            max_batch: 32,
            // 0.5 ms: a lone prompt pays at most this much waiting for company. On CPU a batch
            // buys no throughput (measured on 2 cores: 563 prompts/s at batch 1, 461 at 32),
            // so waiting long only adds latency (p50 3.7 ms at 2 ms, 2.4 ms at 0.5 ms, 100/s);
            // on a GPU raise it together with max_batch.
            max_wait_us: 500,
            queue_capacity: 1_024,
            max_chunks: 4,
            settle_early: true,
            disabled_optimizers: l2::default_disabled_optimizers(),
        }
    }
}

impl PromptOperatorConfig {
    /// Checks values `serde` cannot.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rule_verdict_confidence) {
            return Err("operators.prompt.rule_verdict_confidence must be within 0..1".to_owned());
        }
        if let Some(threshold) = self.l2_threshold {
            if !(0.0..=1.0).contains(&threshold) {
                return Err("operators.prompt.l2_threshold must be within 0..1".to_owned());
            }
        }
        Device::parse(&self.l2.execution_provider)
            .map_err(|error| format!("operators.prompt.l2.execution_provider: {error}"))?;
        if self.l2.max_batch == 0 || self.l2.max_chunks == 0 || self.l2.queue_capacity == 0 {
            return Err(
                "operators.prompt.l2 max_batch, max_chunks and queue_capacity must be > 0"
                    .to_owned(),
            );
        }
        if self.normalize.max_scan_bytes == 0 {
            return Err("operators.prompt.normalize.max_scan_bytes must be > 0".to_owned());
        }
        Ok(())
    }

    /// The rule file to load.
    pub fn rules_path(&self, model_dir: &Path) -> PathBuf {
        if self.rules_file.is_empty() {
            model_dir.join("prompt").join("rules").join("rules.toml")
        } else {
            PathBuf::from(&self.rules_file)
        }
    }
}

/// The loaded L2 layer.
struct L2Layer {
    tokenizer: PromptTokenizer,
    settle_early: bool,
    batcher: Batcher,
    manifest: L2Manifest,
    device: String,
}

/// A rule that fired, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredRule {
    /// Rule id.
    pub id: String,
    /// Family.
    pub family: String,
    /// Severity.
    pub severity: rules::Severity,
    /// Confidence.
    pub confidence: f64,
    /// First view it fired on.
    pub view: View,
}

/// Everything known about one prompt after scoring.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The combined decision.
    pub decision: Decision,
    /// Rules that fired.
    pub fired: Vec<FiredRule>,
    /// L2 probability of each view.
    pub l2_raw: Option<f64>,
    /// L2 probability of the normalized view, when scored.
    pub l2_normalized: Option<f64>,
    /// Normalization transforms.
    pub transforms: Vec<Transform>,
    /// L2 windows scored.
    pub windows: usize,
}

/// Normalizer, rules and (optionally) the L2 model with its batcher: the whole scoring path,
/// shared by the operator, `eval prompt` and the benchmarks.
pub struct PromptScorer {
    normalizer: Normalizer,
    max_scan_bytes: usize,
    rules: RuleSet,
    l2: Option<L2Layer>,
    thresholds: DecisionThresholds,
}

impl std::fmt::Debug for PromptScorer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PromptScorer")
            .field("rules", &self.rules.rules().len())
            .field(
                "l2",
                &self.l2.as_ref().map(|l2| l2.manifest.version.clone()),
            )
            .finish()
    }
}

impl PromptScorer {
    /// Loads rules and, when enabled, the L2 model version `config.version` (the newest when
    /// empty) under `<model_dir>/prompt/` (starting its batcher thread).
    pub fn load(model_dir: &Path, config: &PromptOperatorConfig) -> Result<Self, OperatorError> {
        let version_dir = if config.l2.enabled {
            Some(model_version_dir(model_dir, "prompt", &config.version)?)
        } else {
            None
        };
        Self::load_version(
            version_dir.as_deref(),
            &config.rules_path(model_dir),
            config,
        )
    }

    /// Loads the rules in `rules_path` and the L2 model in `version_dir` (none: rules only).
    pub fn load_version(
        version_dir: Option<&Path>,
        rules_path: &Path,
        config: &PromptOperatorConfig,
    ) -> Result<Self, OperatorError> {
        config.validate().map_err(OperatorError::Config)?;
        let rules = RuleSet::load(rules_path)
            .map_err(|error| OperatorError::resource("prompt rules", error))?;
        let l2 = if let Some(directory) = version_dir {
            Some(
                load_l2(directory, &config.l2)
                    .map_err(|error| OperatorError::resource("prompt l2 model", error))?,
            )
        } else {
            tracing::warn!("prompt l2 classifier disabled; prompts are scored by rules alone");
            None
        };
        let model_threshold = l2.as_ref().map_or(1.0, |l2| l2.manifest.threshold);
        Ok(Self {
            normalizer: Normalizer::new(config.normalize.clone()),
            max_scan_bytes: config.normalize.max_scan_bytes,
            rules,
            thresholds: DecisionThresholds {
                l2_threshold: config.l2_threshold.unwrap_or(model_threshold),
                rule_verdict_confidence: config.rule_verdict_confidence,
            },
            l2,
        })
    }

    /// The L2 manifest, when L2 is loaded.
    pub fn l2_manifest(&self) -> Option<&L2Manifest> {
        self.l2.as_ref().map(|l2| &l2.manifest)
    }

    /// The execution provider L2 runs on (`cpu`, `cuda:N`), or `disabled`.
    pub fn l2_device(&self) -> &str {
        self.l2.as_ref().map_or("disabled", |l2| l2.device.as_str())
    }

    /// The batcher, when L2 is loaded (for its latency statistics).
    pub fn batcher(&self) -> Option<&Batcher> {
        self.l2.as_ref().map(|l2| &l2.batcher)
    }

    /// The decision thresholds in force.
    pub fn thresholds(&self) -> DecisionThresholds {
        self.thresholds
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Scores `texts` together (their L2 windows share batches).
    pub fn assess_batch(&self, texts: &[&str]) -> Result<Vec<Assessment>, L2Error> {
        let normalized: Vec<_> = texts
            .iter()
            .map(|text| self.normalizer.normalize(text))
            .collect();
        let probabilities = match &self.l2 {
            Some(l2) => Some(self.l2_probabilities(l2, texts, &normalized)?),
            None => None,
        };
        Ok(texts
            .iter()
            .zip(&normalized)
            .enumerate()
            .map(|(index, (text, normalized))| {
                let views = probabilities
                    .as_ref()
                    .map_or_else(L2Views::default, |all| all[index]);
                self.assess(text, normalized, views)
            })
            .collect())
    }

    /// Per text: the L2 probability of each view and the windows scored ([`views`]).
    fn l2_probabilities(
        &self,
        l2: &L2Layer,
        texts: &[&str],
        normalized: &[normalize::Normalized],
    ) -> Result<Vec<L2Views>, L2Error> {
        let prompt_views: Vec<(&str, Option<&str>)> = texts
            .iter()
            .zip(normalized)
            .map(|(text, normalized)| {
                let raw = normalize::prefix_at_char_boundary(text, self.max_scan_bytes);
                (
                    raw,
                    normalized.changed().then_some(normalized.text.as_str()),
                )
            })
            .collect();
        let inputs = views::L2Inputs {
            tokenizer: &l2.tokenizer,
            batcher: &l2.batcher,
            settle_at: self
                .thresholds
                .l2_threshold
                .max(decision::L2_HIGH_SEVERITY_PROBABILITY),
            settle_early: l2.settle_early,
        };
        views::score(&inputs, &prompt_views)
    }

    fn assess(&self, text: &str, normalized: &normalize::Normalized, l2: L2Views) -> Assessment {
        let raw = normalize::prefix_at_char_boundary(text, self.max_scan_bytes);
        let rules = self.rules.rules();
        let raw_fired = self.rules.matching(raw);
        let normalized_fired = if normalized.changed() {
            self.rules.matching(&normalized.text)
        } else {
            Vec::new()
        };
        // A rule that fired on both views is reported for the raw one.
        let hits = raw_fired
            .iter()
            .map(|&index| (index, View::Raw))
            .chain(
                normalized_fired
                    .iter()
                    .filter(|index| !raw_fired.contains(index))
                    .map(|&index| (index, View::Normalized)),
            )
            .map(|(index, view)| RuleHit {
                rule: &rules[index],
                view,
            })
            .collect();
        let evidence = Evidence {
            hits,
            l2_raw: l2.raw,
            l2_normalized: l2.normalized,
            transforms: normalized.transforms.clone(),
        };
        let decision = decide(&evidence, self.thresholds);
        Assessment {
            fired: evidence
                .hits
                .iter()
                .map(|hit| FiredRule {
                    id: hit.rule.id.clone(),
                    family: hit.rule.family.clone(),
                    severity: hit.rule.severity,
                    confidence: hit.rule.confidence,
                    view: hit.view,
                })
                .collect(),
            decision,
            l2_raw: l2.raw,
            l2_normalized: l2.normalized,
            transforms: evidence.transforms,
            windows: l2.windows,
        }
    }
}

fn load_l2(directory: &Path, config: &L2Config) -> Result<L2Layer, L2Error> {
    let settings = SessionSettings {
        library: l2::resolve_library(&config.onnxruntime_library),
        device: Device::parse(&config.execution_provider).map_err(L2Error::Model)?,
        intra_threads: config.intra_threads,
        disabled_optimizers: config.disabled_optimizers.clone(),
    };
    let model = L2Model::load(directory, &settings)?;
    let manifest = model.manifest().clone();
    let device = model.device_used().to_owned();
    let tokenizer = l2::load_tokenizer(directory, &manifest, config.max_chunks)?;
    let batcher = Batcher::spawn(
        model,
        BatcherSettings {
            max_batch: config.max_batch,
            max_wait: Duration::from_micros(config.max_wait_us),
            queue_capacity: config.queue_capacity,
        },
    )?;
    tracing::info!(
        version = %manifest.version,
        device = %device,
        threshold = manifest.threshold,
        "prompt l2 classifier loaded"
    );
    Ok(L2Layer {
        tokenizer,
        settle_early: config.settle_early,
        batcher,
        manifest,
        device,
    })
}

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "prompt",
    summary: "LLM prompts: L1 rules and the L2 transformer classifier on normalized text",
    accepts: |schema| schema == SchemaKind::Prompt,
    // ONNX Runtime's session already uses every core; a second worker only adds contention.
    default_workers: DefaultWorkers::One,
    model: Some(ModelSpec {
        dir: "prompt",
        check_features: l2::check_manifest_inputs,
        shadow: ShadowKeys {
            score: "attack_probability",
            verdict: "verdict",
            class: "verdict",
        },
        drift: Some(crate::operators::table::SCORES_ONLY),
        learning: None,
        // The L2 classifier trains offline (PyTorch recipe): verdicts are exported as its
        // JSONL input (`{"text", "label"}`).
        feedback_export: Some(|event, threat| match event {
            InputEvent::Prompt(prompt) => Some(serde_json::json!({
                "text": prompt.text,
                "label": u8::from(threat),
            })),
            _ => None,
        }),
    }),
    stateful: false,
    check_config: |sections| check_section::<PromptOperatorConfig>(sections, "prompt"),
    config_schema: Some(|generator| generator.subschema_for::<PromptOperatorConfig>()),
    start,
    commands: commands::COMMANDS,
};

impl OperatorConfig for PromptOperatorConfig {
    fn validate(&self) -> Result<(), String> {
        PromptOperatorConfig::validate(self)
    }
}

fn start(context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    let config: PromptOperatorConfig = settings(context, "prompt")?;
    let directory = if config.l2.enabled {
        context.version_dir("prompt", &config.version)?
    } else {
        context.model_dir.join("prompt")
    };
    let loader = PromptLoader {
        rules_path: config.rules_path(context.model_dir),
        config,
    };
    crate::operators::start_over_slot("prompt", loader, &directory, PromptOperator::over)
}

/// Loads prompt model versions (with the rule file) for the operator's settings.
#[derive(Clone)]
pub struct PromptLoader {
    config: PromptOperatorConfig,
    rules_path: PathBuf,
}

impl ModelLoader for PromptLoader {
    type Model = PromptScorer;

    fn load(&self, version_dir: &Path) -> Result<PromptScorer, OperatorError> {
        let l2_dir = self.config.l2.enabled.then_some(version_dir);
        let scorer = PromptScorer::load_version(l2_dir, &self.rules_path, &self.config)?;
        // Warm the new session (first inference allocates) before it takes traffic.
        scorer
            .assess_batch(&["warm-up: is this prompt benign?"])
            .map_err(|error| OperatorError::resource("prompt model warm-up", error))?;
        Ok(scorer)
    }

    fn version(scorer: &PromptScorer) -> String {
        scorer.l2_manifest().map_or_else(
            || "rules-only".to_owned(),
            |manifest| manifest.version.clone(),
        )
    }

    fn describe(scorer: &PromptScorer) -> serde_json::Value {
        serde_json::json!({
            "l2": scorer.l2_manifest().map(|manifest| serde_json::json!({
                "kind": manifest.kind,
                "version": manifest.version,
                "created_at": manifest.created_at,
                "threshold": scorer.thresholds.l2_threshold,
                "max_length": manifest.max_length,
                "device": scorer.l2_device(),
            })),
            "rules": scorer.rules.rules().len(),
            "rule_verdict_confidence": scorer.thresholds.rule_verdict_confidence,
        })
    }
}

/// One worker's prompt scorer.
pub struct PromptOperator {
    slot: Arc<ModelSlot<PromptLoader>>,
}

impl PromptOperator {
    /// A scorer over the binding's model slot.
    pub fn over(slot: Arc<ModelSlot<PromptLoader>>) -> Self {
        Self { slot }
    }

    /// A scorer over an already loaded scorer (tests, benchmarks).
    pub fn with_scorer(scorer: PromptScorer) -> Self {
        let loader = PromptLoader {
            config: PromptOperatorConfig::default(),
            rules_path: PathBuf::new(),
        };
        Self::over(ModelSlot::with_model(
            "prompt",
            loader,
            scorer,
            Path::new("(in memory)"),
        ))
    }

    fn scored(
        &self,
        scorer: &PromptScorer,
        sourced: &SourcedEvent,
        assessment: &Assessment,
    ) -> Scored {
        let decision = &assessment.decision;
        let mut scores = BTreeMap::new();
        scores.insert("attack_probability".to_owned(), decision.attack_probability);
        scores.insert("l1_confidence".to_owned(), decision.l1_confidence);
        scores.insert(
            "severity_level".to_owned(),
            decision.severity.map_or(0.0, rules::Severity::level),
        );
        if let Some(probability) = decision.l2_probability {
            scores.insert("l2_probability".to_owned(), probability);
            scores.insert("l2_threshold".to_owned(), scorer.thresholds.l2_threshold);
        }
        if let Some(probability) = assessment.l2_raw {
            scores.insert("l2_probability_raw".to_owned(), probability);
        }
        if let Some(probability) = assessment.l2_normalized {
            scores.insert("l2_probability_normalized".to_owned(), probability);
        }
        let join = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(",")
            }
        };
        let transforms: Vec<String> = assessment
            .transforms
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        let mut labels = BTreeMap::new();
        labels.insert("verdict".to_owned(), decision.verdict.as_str().to_owned());
        labels.insert("decided_by".to_owned(), decision.decided_by.to_owned());
        labels.insert(
            "severity".to_owned(),
            decision
                .severity
                .map_or("none", rules::Severity::as_str)
                .to_owned(),
        );
        labels.insert("families".to_owned(), join(&decision.families));
        labels.insert("rules".to_owned(), join(&decision.rules));
        labels.insert("normalization".to_owned(), join(&transforms));
        labels.insert("l2_device".to_owned(), scorer.l2_device().to_owned());
        metrics::counter!(
            telemetry::PROMPT_VERDICTS,
            "verdict" => decision.verdict.as_str(),
            "layer" => decision.decided_by
        )
        .increment(1);
        let thresholds_crossed = match decision.verdict {
            decision::Verdict::Attack => vec!["attack".to_owned()],
            decision::Verdict::Suspicious => vec!["suspicious".to_owned()],
            decision::Verdict::Benign => Vec::new(),
        };
        sourced
            .scored(self.name(), &PromptLoader::version(scorer), now_ms())
            .with_scores(scores)
            .with_labels(labels)
            .with_explanation(explain(scorer, assessment))
            .with_thresholds(thresholds_crossed)
    }
}

/// Fired rules (strongest first), then L2 against its threshold, then normalization.
fn explain(scorer: &PromptScorer, assessment: &Assessment) -> Vec<Contribution> {
    let mut fired = assessment.fired.clone();
    fired.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut explanation: Vec<Contribution> = fired
        .into_iter()
        .map(|rule| Contribution {
            name: rule.id,
            value: Some(rule.confidence),
            contribution: rule.confidence,
            detail: Some(format!(
                "family={} severity={} view={}",
                rule.family,
                rule.severity,
                rule.view.as_str()
            )),
        })
        .collect();
    if let Some(probability) = assessment.decision.l2_probability {
        explanation.push(Contribution {
            name: "l2_classifier".to_owned(),
            value: Some(probability),
            contribution: probability - scorer.thresholds.l2_threshold,
            detail: Some(format!(
                "threshold={:.4} windows={}",
                scorer.thresholds.l2_threshold, assessment.windows
            )),
        });
    }
    if !assessment.transforms.is_empty() {
        let names: Vec<&str> = assessment.transforms.iter().map(|t| t.as_str()).collect();
        explanation.push(Contribution {
            name: "normalization".to_owned(),
            value: None,
            contribution: 0.0,
            detail: Some(names.join(",")),
        });
    }
    explanation
}

impl Operator for PromptOperator {
    fn name(&self) -> &'static str {
        "prompt"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        _state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        let loaded = self.slot.current();
        let scorer = &loaded.model;
        let mut texts = Vec::with_capacity(events.len());
        for sourced in events {
            match &sourced.event {
                InputEvent::Prompt(prompt) => texts.push(prompt.text.as_str()),
                other => {
                    // The pipeline only binds prompt topics here; refuse rather than guess.
                    tracing::error!(schema = ?other.kind(), "prompt operator got a non-prompt event");
                    return Ok(reject_all(events.len(), "not a prompt event"));
                }
            }
        }
        // An L2 failure is ONNX Runtime's or the model's, never the prompts': the batch is
        // handed back as an error (retried, then the engine stops), never dead-lettered.
        // (The batcher counts the failure in `threatflow_prompt_l2_errors_total`.)
        let assessments = scorer
            .assess_batch(&texts)
            .map_err(|error| OperatorError::Scoring {
                what: "prompt l2".to_owned(),
                source: Some(Box::new(error)),
            })?;
        Ok(events
            .iter()
            .zip(&assessments)
            .map(|(sourced, assessment)| Outcome::Scored {
                scored: Box::new(self.scored(scorer, sourced, assessment)),
                extra: Vec::new(),
            })
            .collect())
    }
}

fn reject_all(count: usize, detail: &str) -> Vec<Outcome> {
    (0..count)
        .map(|_| Outcome::Rejected {
            detail: detail.to_owned(),
        })
        .collect()
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod operator_tests;
