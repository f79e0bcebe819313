//! The trainer's two jobs, run one at a time on a low-priority thread off the scoring path.
//!
//! - **Retrain** an operator: its champion's recipe on the bootstrap data plus the buffer's
//!   training rows (weighted up), then the quality gate against the champion. A passing
//!   version is verified, pushed to the artifact store, registered and made challenger; a
//!   failing one is recorded as `reject` on the registry log with the figures and the reason,
//!   and never pushed. Either way the rows it saw count as trained.
//! - **Evaluate** a challenger the trainer made, once its shadow period is over: the share of
//!   the recent input on which challenger and champion decide alike, and the gate again on
//!   the current held-out feedback. Both hold: promoted; otherwise the challenger is cleared,
//!   with the figures in the record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::buffer::TrainingBuffer;
use super::gate::{judge, GateReport, Slice};
use super::intake::OperatorInputs;
use super::join::InputReader;
use super::{bootstrap_data, Decision, LabelledEvent, RetrainJob, Scorable, VersionScorer};
use crate::config::EngineConfig;
use crate::registry::log::{actor, Action, RegistryLog, RegistryRecord, RegistryState};
use crate::registry::store::ArtifactStore;

/// How the registry names the trainer as the author of its records.
pub fn trainer_actor() -> String {
    format!("trainer:{}", actor())
}

/// What a job did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobOutcome {
    /// `retrain` or `evaluate`.
    pub job: &'static str,
    /// The version made or judged.
    pub version: Option<String>,
    /// `challenger`, `rejected`, `promoted`, `dismissed`, `waiting` or `failed`.
    pub outcome: &'static str,
    /// Why.
    pub reason: String,
    /// When it ended, RFC 3339 UTC.
    pub finished_at: String,
    /// Seconds it took.
    pub duration_s: f64,
    /// Feedback rows trained on.
    pub feedback_rows: usize,
    /// Held-out feedback rows judged on.
    pub holdout_rows: usize,
    /// The gate's figures.
    pub gate: Option<GateReport>,
    /// Share of recent inputs decided alike by challenger and champion.
    pub agreement: Option<f64>,
}

impl JobOutcome {
    fn failed(job: &'static str, reason: String) -> Self {
        Self {
            job,
            version: None,
            outcome: "failed",
            reason,
            finished_at: String::new(),
            duration_s: 0.0,
            feedback_rows: 0,
            holdout_rows: 0,
            gate: None,
            agreement: None,
        }
    }
}

/// What the jobs share.
pub struct JobContext {
    /// The configuration.
    pub config: EngineConfig,
    /// The artifact store.
    pub store: ArtifactStore,
    /// The registry log.
    pub log: RegistryLog,
    /// The training buffer.
    pub buffer: Arc<TrainingBuffer>,
    /// Per operator: its inputs and learning.
    pub inputs: BTreeMap<&'static str, OperatorInputs>,
}

/// A job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Retrain the operator.
    Retrain(&'static str),
    /// Judge the operator's challenger for promotion.
    Evaluate(&'static str),
}

impl Job {
    /// The operator.
    pub fn operator(&self) -> &'static str {
        match self {
            Self::Retrain(operator) | Self::Evaluate(operator) => operator,
        }
    }
}

/// Runs `job` against the registry state `state`; the outcome carries its duration.
pub fn run(context: &JobContext, job: &Job, state: &RegistryState) -> JobOutcome {
    let started = Instant::now();
    let (name, result) = match job {
        Job::Retrain(operator) => ("retrain", retrain(context, operator, state)),
        Job::Evaluate(operator) => ("evaluate", evaluate(context, operator, state)),
    };
    let mut outcome = result.unwrap_or_else(|reason| JobOutcome::failed(name, reason));
    outcome.duration_s = started.elapsed().as_secs_f64();
    outcome.finished_at = crate::model_cli::rfc3339_utc(std::time::SystemTime::now());
    outcome
}

fn inputs<'a>(
    context: &'a JobContext,
    operator: &str,
) -> Result<(&'a OperatorInputs, super::LearningSpec), String> {
    context
        .inputs
        .get(operator)
        .and_then(|inputs| inputs.learning.map(|learning| (inputs, learning)))
        .ok_or_else(|| format!("{operator} does not retrain here"))
}

fn fetch(context: &JobContext, inputs: &OperatorInputs, version: &str) -> Result<PathBuf, String> {
    let cache = context
        .config
        .registry
        .cache_dir(&context.config.storage.state_dir);
    context
        .store
        .fetch(inputs.model_dir, version, &cache)
        .map_err(|error| error.to_string())
}

/// The buffer's rows of `operator` as (training, held out), and the newest sequence.
fn feedback_rows(
    context: &JobContext,
    operator: &str,
) -> Result<(Vec<LabelledEvent>, Vec<LabelledEvent>, u64), String> {
    let rows = context
        .buffer
        .rows(operator)
        .map_err(|error| error.to_string())?;
    let newest = rows.iter().map(|row| row.seq).max().unwrap_or(0);
    let (mut training, mut holdout) = (Vec::new(), Vec::new());
    for row in rows {
        let Ok(event) = row.event() else {
            tracing::warn!(operator, event_id = %row.event_id, "buffered input no longer decodes; skipped");
            continue;
        };
        let labelled = LabelledEvent {
            event,
            threat: row.threat,
            label: row.label,
            corrected_risk: row.corrected_risk,
            context: row.context,
        };
        if row.holdout {
            holdout.push(labelled);
        } else {
            training.push(labelled);
        }
    }
    Ok((training, holdout, newest))
}

/// The decisions on `events`, one stream: state folded from events without context starts
/// empty.
fn decide_all(scorer: &mut dyn VersionScorer, events: &[Scorable<'_>]) -> Vec<Decision> {
    scorer.reset();
    events
        .chunks(1024)
        .flat_map(|chunk| scorer.decide(chunk))
        .collect()
}

fn events_of(rows: &[LabelledEvent]) -> Vec<Scorable<'_>> {
    rows.iter().map(LabelledEvent::scorable).collect()
}

/// Champion and challenger, each loaded once for a job.
struct Versions {
    learning: super::LearningSpec,
    champion_dir: PathBuf,
    champion: Box<dyn VersionScorer>,
    challenger: Box<dyn VersionScorer>,
}

impl Versions {
    fn load(
        learning: super::LearningSpec,
        champion_dir: PathBuf,
        challenger_dir: &Path,
    ) -> Result<Self, String> {
        Ok(Self {
            champion: (learning.load)(&champion_dir)?,
            challenger: (learning.load)(challenger_dir)?,
            learning,
            champion_dir,
        })
    }
}

/// The gate: challenger against champion on the held-out feedback and the validation data.
fn gate(
    context: &JobContext,
    versions: &mut Versions,
    data: &Path,
    holdout: &[LabelledEvent],
) -> Result<GateReport, String> {
    let validation = (versions.learning.validation)(&versions.champion_dir, data)?;
    let (holdout_events, validation_events) = (events_of(holdout), events_of(&validation));
    let decided = |scorer: &mut Box<dyn VersionScorer>| {
        (
            decide_all(scorer.as_mut(), &holdout_events),
            decide_all(scorer.as_mut(), &validation_events),
        )
    };
    let (champion_holdout, champion_validation) = decided(&mut versions.champion);
    let (challenger_holdout, challenger_validation) = decided(&mut versions.challenger);
    Ok(judge(
        versions.learning.gate_metrics,
        context.config.trainer.gate_margin,
        &[
            Slice {
                name: "feedback_holdout",
                rows: holdout,
                champion: &champion_holdout,
                challenger: &challenger_holdout,
            },
            Slice {
                name: "validation",
                rows: &validation,
                champion: &champion_validation,
                challenger: &challenger_validation,
            },
        ],
    ))
}

fn retrain(
    context: &JobContext,
    operator: &'static str,
    state: &RegistryState,
) -> Result<JobOutcome, String> {
    let (inputs, learning) = inputs(context, operator)?;
    let champion = state
        .of(operator)
        .champion
        .ok_or_else(|| format!("{operator} has no champion to retrain from"))?;
    let champion_dir = fetch(context, inputs, &champion)?;
    let data = bootstrap_data(&context.config, operator, inputs.model_dir, &champion_dir)?;
    let (training, holdout, newest) = feedback_rows(context, operator)?;
    let version = format!("fb{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    let work = context
        .config
        .storage
        .state_dir
        .join("trainer")
        .join(operator);
    let out = work.join(&version);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&work).map_err(|error| format!("{}: {error}", work.display()))?;
    let trained = Instant::now();
    (learning.retrain)(&RetrainJob {
        champion: &champion_dir,
        data: &data,
        operator_dir: &context.config.storage.model_dir.join(inputs.model_dir),
        feedback: &training,
        weight: context.config.feedback.weight,
        seed: context.config.trainer.seed,
        version: &version,
        out: &out,
    })?;
    let training_s = trained.elapsed().as_secs_f64();
    let mut versions = Versions::load(learning, champion_dir, &out)?;
    let report = gate(context, &mut versions, &data, &holdout)?;
    let figures = serde_json::json!({
        "champion": champion,
        "feedback_rows": training.len(),
        "holdout_rows": holdout.len(),
        "weight": context.config.feedback.weight,
        "bootstrap_data": data.file_name().map(|name| name.to_string_lossy().into_owned()),
        "training_s": (training_s * 1000.0).round() / 1000.0,
        "gate": report,
    });
    annotate_manifest(&out, &figures)?;
    let by = trainer_actor();
    let outcome = if report.passed {
        let checks = crate::registry::manifest::verify_version(
            &out,
            context.config.registry.max_age_days,
            chrono::Utc::now(),
        );
        if let Some(failed) = checks.iter().find(|check| !check.passed) {
            return Err(format!("{version} does not verify: {}", failed.line()));
        }
        context
            .store
            .push(&out)
            .map_err(|error| error.to_string())?;
        let reason = format!(
            "retrained on {} feedback rows; gate {}",
            training.len(),
            report.reason
        );
        append(
            context,
            RegistryRecord::now(operator, Action::Register, Some(&version), &by, &reason)
                .with_metrics(figures.clone()),
        )?;
        let mut challenge =
            RegistryRecord::now(operator, Action::Challenge, Some(&version), &by, &reason)
                .with_metrics(figures);
        challenge.previous = state.of(operator).challenger;
        append(context, challenge)?;
        "challenger"
    } else {
        let reason = format!("quality gate: {}", report.reason);
        append(
            context,
            RegistryRecord::now(operator, Action::Reject, Some(&version), &by, &reason)
                .with_metrics(figures),
        )?;
        "rejected"
    };
    context
        .buffer
        .mark_trained(operator, newest)
        .map_err(|error| error.to_string())?;
    let _ = std::fs::remove_dir_all(&out);
    tracing::info!(operator, version, outcome, reason = %report.reason, "retraining done");
    Ok(JobOutcome {
        job: "retrain",
        version: Some(version),
        outcome,
        reason: report.reason.clone(),
        finished_at: String::new(),
        duration_s: 0.0,
        feedback_rows: training.len(),
        holdout_rows: holdout.len(),
        gate: Some(report),
        agreement: None,
    })
}

fn append(context: &JobContext, record: RegistryRecord) -> Result<(), String> {
    context
        .log
        .append(&record)
        .map_err(|error| error.to_string())
}

/// Writes the retraining figures into the new version's manifest (`retraining`).
pub(crate) fn annotate_manifest(
    directory: &Path,
    figures: &serde_json::Value,
) -> Result<(), String> {
    let path = directory.join("manifest.json");
    let text = std::fs::read(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&text).map_err(|error| error.to_string())?;
    manifest["retraining"] = figures.clone();
    let text = serde_json::to_string_pretty(&manifest).map_err(|error| error.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|error| format!("{}: {error}", path.display()))
}

fn evaluate(
    context: &JobContext,
    operator: &'static str,
    state: &RegistryState,
) -> Result<JobOutcome, String> {
    let (inputs, learning) = inputs(context, operator)?;
    let aliases = state.of(operator);
    let (Some(champion), Some(challenger)) = (aliases.champion.clone(), aliases.challenger.clone())
    else {
        return Err(format!(
            "{operator} has no champion and challenger to compare"
        ));
    };
    let champion_dir = fetch(context, inputs, &champion)?;
    let challenger_dir = fetch(context, inputs, &challenger)?;
    let data = bootstrap_data(&context.config, operator, inputs.model_dir, &champion_dir)?;
    let mut versions = Versions::load(learning, champion_dir, &challenger_dir)?;
    let agreement = recent_agreement(context, inputs, &mut versions)?;
    let (_, holdout, _) = feedback_rows(context, operator)?;
    let report = gate(context, &mut versions, &data, &holdout)?;
    let minimum = context.config.trainer.min_shadow_agreement;
    let mut outcome = JobOutcome {
        job: "evaluate",
        version: Some(challenger.clone()),
        outcome: "waiting",
        reason: String::new(),
        finished_at: String::new(),
        duration_s: 0.0,
        feedback_rows: 0,
        holdout_rows: holdout.len(),
        gate: Some(report.clone()),
        agreement,
    };
    let Some(agreement) = agreement else {
        outcome.reason = "no recent input to compare champion and challenger on".to_owned();
        return Ok(outcome);
    };
    let figures = serde_json::json!({"agreement": agreement, "gate": report});
    let by = trainer_actor();
    if agreement >= minimum && report.passed {
        let reason = format!(
            "automatic after the shadow period: agreement {agreement:.4} >= {minimum}; gate {}",
            report.reason
        );
        let mut record =
            RegistryRecord::now(operator, Action::Promote, Some(&challenger), &by, &reason)
                .with_metrics(figures);
        record.previous = Some(champion);
        append(context, record)?;
        outcome.outcome = "promoted";
        outcome.reason = reason;
    } else {
        let reason = if report.passed {
            format!("not promoted: agreement {agreement:.4} < {minimum}")
        } else {
            format!("not promoted: gate {}", report.reason)
        };
        let mut record = RegistryRecord::now(operator, Action::ClearChallenger, None, &by, &reason)
            .with_metrics(figures);
        record.previous = Some(challenger);
        append(context, record)?;
        outcome.outcome = "dismissed";
        outcome.reason = reason;
    }
    tracing::info!(operator, outcome = outcome.outcome, reason = %outcome.reason, "challenger evaluated");
    Ok(outcome)
}

/// Share of the latest input records (up to `trainer.shadow_rows` over the operator's
/// topics) decided alike by both versions; `None` without any.
fn recent_agreement(
    context: &JobContext,
    inputs: &OperatorInputs,
    versions: &mut Versions,
) -> Result<Option<f64>, String> {
    let reader = InputReader::new(&context.config).map_err(|error| error.to_string())?;
    let per_topic = context.config.trainer.shadow_rows / inputs.decoders.len().max(1);
    let mut events = Vec::new();
    for (topic, decoder) in &inputs.decoders {
        for payload in reader
            .recent(topic, per_topic)
            .map_err(|error| error.to_string())?
        {
            if let Ok(event) = decoder.decode(payload.as_deref()) {
                events.push(event);
            }
        }
    }
    if events.is_empty() {
        return Ok(None);
    }
    let refs: Vec<Scorable<'_>> = events.iter().map(Scorable::bare).collect();
    let a = decide_all(versions.champion.as_mut(), &refs);
    let b = decide_all(versions.challenger.as_mut(), &refs);
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.alerted == y.alerted)
        .count();
    Ok(Some(same as f64 / events.len() as f64))
}
