//! The drift watch of one binding, running beside its workers.
//!
//! Workers offer every scored batch ([`DriftTap::offer`]): the operator's watched values of
//! each event ([`DriftSpec::row`]) go over a bounded channel (full → dropped and counted;
//! a worker never waits) to the binding's drift thread. That thread keeps a
//! [`DriftWatch`] for the model version scoring now — its reference sample is the
//! `drift_reference.json` its manifest names, reloaded when the version changes — and on every
//! full window tests each feature, publishes one record per feature on the drift topic
//! (`schemas/drift.avsc`, JSON), counts checks and detections, and starts a new window.
//! A version without a reference sample is not watched (logged once per version).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use serde::{Deserialize, Serialize};

use super::detector::{DriftWatch, FeatureDrift, Reference};
use crate::operators::table::DriftSpec;
use crate::operators::SourcedEvent;
use crate::runtime::ModelHandle;
use crate::sync::lock;
use crate::telemetry;

/// `[drift]`: the drift watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// Watch every binding whose model version has a reference sample.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Where drift records go (`schemas/drift.avsc`, JSON).
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Live rows per test (a window; windows do not overlap).
    #[serde(default = "default_window")]
    pub window: usize,
    /// Significance level before the Bonferroni correction over a binding's features.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_enabled() -> bool {
    true
}
fn default_topic() -> String {
    "threatflow.drift".to_owned()
}
fn default_window() -> usize {
    1000
}
fn default_alpha() -> f64 {
    0.05
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            topic: default_topic(),
            window: default_window(),
            alpha: default_alpha(),
        }
    }
}

impl DriftConfig {
    /// Problems with the settings, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.enabled && self.topic.trim().is_empty() {
            problems.push("drift.topic must not be empty".to_owned());
        }
        if self.window < 50 {
            problems.push("drift.window must be at least 50 rows".to_owned());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            problems.push("drift.alpha must be within (0, 1)".to_owned());
        }
        problems
    }
}

/// One drift record (`schemas/drift.avsc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Operator.
    pub operator: String,
    /// Input topic of the binding.
    pub topic: String,
    /// Model version whose reference was compared against.
    pub model_version: String,
    /// `feature` (an input feature) or `precision_drop` (live precision, see the schema).
    #[serde(default = "feature_kind")]
    pub kind: String,
    /// Feature.
    pub feature: String,
    /// `ks` or `chi_square`.
    pub test: String,
    /// KS D or the chi-square statistic.
    pub ks_statistic: f64,
    /// p-value.
    pub p_value: f64,
    /// Reference rows.
    pub reference_size: i64,
    /// Window rows.
    pub window_size: i64,
    /// Window start, epoch ms.
    pub window_start_ms: i64,
    /// Window end, epoch ms.
    pub window_end_ms: i64,
    /// Below the corrected level.
    pub drifted: bool,
    /// When the check ran, epoch ms.
    pub detected_at_ms: i64,
}

impl DriftReport {
    /// Sends the record (JSON) to `topic` under `key`; a refused send is logged, never
    /// retried (drift records are advisory and the next window writes fresh ones).
    pub fn send(
        &self,
        producer: &ThreadedProducer<DefaultProducerContext>,
        topic: &str,
        key: &str,
    ) {
        let Ok(payload) = serde_json::to_vec(self) else {
            return;
        };
        if let Err((error, _)) = producer.send(BaseRecord::to(topic).key(key).payload(&payload)) {
            tracing::warn!(%error, kind = %self.kind, "drift record not sent");
        }
    }
}

fn feature_kind() -> String {
    "feature".to_owned()
}

/// Batches of rows waiting for the drift thread; beyond this, rows are dropped.
const CHANNEL_BATCHES: usize = 64;

/// Per event: when, its watched feature values (if any), its score row.
type RowBatch = Vec<(i64, Option<Vec<f64>>, super::score::ScoreRow)>;

/// What `/models` shows about a binding's drift watch.
#[derive(Debug, Clone, Default, Serialize)]
struct DriftStatus {
    model_version: Option<String>,
    watched: bool,
    window: usize,
    rows_in_window: usize,
    checks: u64,
    dropped_rows: u64,
    last_check_ms: Option<i64>,
    drifted_features: Vec<String>,
    /// Score drift (`score:<threshold>`) and health (`calibration_health:<figure>`) alerts of
    /// the last score window.
    score_alerts: Vec<String>,
}

/// One binding's drift watch.
pub struct DriftTap {
    spec: DriftSpec,
    sender: SyncSender<RowBatch>,
    status: Mutex<DriftStatus>,
}

impl std::fmt::Debug for DriftTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriftTap")
    }
}

/// Where a drift thread publishes.
pub struct DriftOutput {
    /// Drift topic.
    pub topic: String,
    /// Producer.
    pub producer: ThreadedProducer<DefaultProducerContext>,
}

impl DriftTap {
    /// Starts the drift thread of the binding of `operator` on `topic` scored by `model`.
    pub fn start(
        operator: &'static str,
        topic: &str,
        spec: DriftSpec,
        model: Arc<dyn ModelHandle>,
        config: &DriftConfig,
        output: Option<DriftOutput>,
    ) -> std::io::Result<Arc<Self>> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(CHANNEL_BATCHES);
        let tap = Arc::new(Self {
            spec,
            sender,
            status: Mutex::new(DriftStatus {
                window: config.window,
                ..DriftStatus::default()
            }),
        });
        let thread = DriftThread {
            tap: Arc::downgrade(&tap),
            operator,
            topic: topic.to_owned(),
            model,
            window: config.window,
            alpha: config.alpha,
            output,
            watch: None,
            scores: super::score::ScoreWatch::new(config.alpha, spec.health),
            health: spec.health,
        };
        std::thread::Builder::new()
            .name(format!("threatflow-drift-{operator}"))
            .spawn(move || thread.run(receiver))?;
        Ok(tap)
    }

    /// Offers a scored batch (never blocks).
    pub fn offer(&self, events: &[SourcedEvent], outcomes: &[crate::operators::Outcome]) {
        let rows: RowBatch = events
            .iter()
            .zip(outcomes)
            .filter_map(|(event, outcome)| {
                let crate::operators::Outcome::Scored { scored, .. } = outcome else {
                    return None;
                };
                let at = event
                    .event
                    .event_time_ms()
                    .or(event.source.timestamp_ms)
                    .unwrap_or(0);
                Some((
                    at,
                    (self.spec.row)(&event.event),
                    super::score::ScoreRow::of(scored, self.spec.health.as_ref()),
                ))
            })
            .collect();
        if rows.is_empty() {
            return;
        }
        let count = rows.len() as u64;
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(rows)
        {
            lock(&self.status).dropped_rows += count;
        }
    }

    /// `/models`' `drift` entry.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::to_value(&*lock(&self.status)).unwrap_or_default()
    }
}

struct DriftThread {
    tap: std::sync::Weak<DriftTap>,
    operator: &'static str,
    topic: String,
    model: Arc<dyn ModelHandle>,
    window: usize,
    alpha: f64,
    output: Option<DriftOutput>,
    /// The watch of the version scoring now (`None` inside: that version has no reference).
    watch: Option<(String, Option<DriftWatch>)>,
    /// Score drift and health of the version scoring now.
    scores: super::score::ScoreWatch,
    health: Option<crate::operators::table::HealthSpec>,
}

impl DriftThread {
    fn run(mut self, batches: Receiver<RowBatch>) {
        while let Ok(rows) = batches.recv() {
            let Some(tap) = self.tap.upgrade() else {
                return;
            };
            self.follow_version(&tap);
            let Some((version, mut watch)) = self.watch.take() else {
                continue;
            };
            for (at, features, score_row) in rows {
                self.scores.observe(&score_row);
                if self.scores.len() >= self.window {
                    let findings = self.scores.check();
                    self.publish_scores(&tap, &version, &findings);
                }
                let (Some(watch), Some(features)) = (watch.as_mut(), features) else {
                    continue;
                };
                watch.observe(at, features);
                if watch.is_full() {
                    let checks = watch.check();
                    watch.clear_window();
                    self.publish(&tap, &version, &checks);
                }
            }
            if let Some(watch) = &watch {
                lock(&tap.status).rows_in_window = watch.window_len();
            }
            self.watch = Some((version, watch));
        }
    }

    fn publish_scores(
        &self,
        tap: &DriftTap,
        version: &str,
        findings: &[super::score::ScoreFinding],
    ) {
        let now = crate::scored::now_ms();
        let drifted: Vec<String> = findings
            .iter()
            .filter(|finding| finding.drifted)
            .map(|finding| format!("{}:{}", finding.kind, finding.name))
            .collect();
        for finding in findings.iter().filter(|finding| finding.drifted) {
            metrics::counter!(telemetry::DRIFT_DETECTIONS, "operator" => self.operator, "topic" => self.topic.clone(), "feature" => format!("{}:{}", finding.kind, finding.name))
                .increment(1);
        }
        if !drifted.is_empty() {
            tracing::warn!(operator = self.operator, topic = %self.topic, version, findings = ?drifted, "score drift or health alert");
        }
        lock(&tap.status).score_alerts = drifted;
        let Some(output) = &self.output else { return };
        for finding in findings {
            let report = DriftReport {
                operator: self.operator.to_owned(),
                topic: self.topic.clone(),
                model_version: version.to_owned(),
                kind: finding.kind.to_owned(),
                feature: finding.name.clone(),
                test: if finding.kind == "score" {
                    "two_proportion"
                } else {
                    "level"
                }
                .to_owned(),
                ks_statistic: finding.value,
                p_value: finding.p_value,
                reference_size: (finding.reference * 1000.0).round() as i64,
                window_size: self.window as i64,
                window_start_ms: now,
                window_end_ms: now,
                drifted: finding.drifted,
                detected_at_ms: now,
            };
            let key = format!("{}/{}/{}", self.topic, finding.kind, finding.name);
            report.send(&output.producer, &output.topic, &key);
        }
    }

    /// Loads the reference of the version scoring now when it changed.
    fn follow_version(&mut self, tap: &DriftTap) {
        let version = self.model.version();
        if self
            .watch
            .as_ref()
            .is_some_and(|(watched, _)| *watched == version)
        {
            return;
        }
        let directory = self.model.describe()["directory"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_default();
        let watch = match load_reference(&directory) {
            Ok(Some(reference)) => Some(DriftWatch::new(reference, self.alpha, self.window)),
            Ok(None) => {
                tracing::info!(operator = self.operator, %version, "model version has no drift reference; its inputs are not watched");
                None
            }
            Err(error) => {
                tracing::warn!(operator = self.operator, %version, error, "drift reference unusable; inputs not watched");
                None
            }
        };
        let mut status = lock(&tap.status);
        status.model_version = Some(version.clone());
        status.watched = watch.is_some();
        status.drifted_features.clear();
        status.score_alerts.clear();
        status.rows_in_window = 0;
        drop(status);
        self.scores = super::score::ScoreWatch::new(self.alpha, self.health);
        self.watch = Some((version, watch));
    }

    fn publish(&self, tap: &DriftTap, version: &str, checks: &[FeatureDrift]) {
        let now = crate::scored::now_ms();
        let drifted: Vec<String> = checks
            .iter()
            .filter(|check| check.drifted)
            .map(|check| check.feature.clone())
            .collect();
        metrics::counter!(telemetry::DRIFT_CHECKS, "operator" => self.operator, "topic" => self.topic.clone())
            .increment(1);
        for feature in &drifted {
            metrics::counter!(telemetry::DRIFT_DETECTIONS, "operator" => self.operator, "topic" => self.topic.clone(), "feature" => feature.clone())
                .increment(1);
        }
        if !drifted.is_empty() {
            tracing::warn!(operator = self.operator, topic = %self.topic, version, features = ?drifted, "input drift detected");
        }
        {
            let mut status = lock(&tap.status);
            status.checks += 1;
            status.last_check_ms = Some(now);
            status.drifted_features = drifted;
        }
        let Some(output) = &self.output else { return };
        for check in checks {
            let report = DriftReport {
                operator: self.operator.to_owned(),
                topic: self.topic.clone(),
                model_version: version.to_owned(),
                kind: feature_kind(),
                feature: check.feature.clone(),
                test: match check.kind {
                    super::FeatureKind::Numeric => "ks",
                    super::FeatureKind::Categorical => "chi_square",
                }
                .to_owned(),
                ks_statistic: check.statistic,
                p_value: check.p_value,
                reference_size: check.reference_size as i64,
                window_size: check.window_size as i64,
                window_start_ms: check.window_start_ms,
                window_end_ms: check.window_end_ms,
                drifted: check.drifted,
                detected_at_ms: now,
            };
            let key = format!("{}/{}", self.topic, check.feature);
            report.send(&output.producer, &output.topic, &key);
        }
    }
}

/// The reference sample a version's manifest names (`drift_reference`), verified.
fn load_reference(directory: &Path) -> Result<Option<Reference>, String> {
    let manifest = crate::registry::manifest::ManifestView::read(directory)?;
    let Some(reference) = manifest.json.get("drift_reference") else {
        return Ok(None);
    };
    let (Some(path), Some(sha)) = (
        reference.get("path").and_then(|v| v.as_str()),
        reference.get("sha256").and_then(|v| v.as_str()),
    ) else {
        return Err("drift_reference names no path and sha256".to_owned());
    };
    crate::ml::artifact::read_json(directory, path, sha)
        .map(Some)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_record_fits_the_bundled_schema() {
        let report = DriftReport {
            operator: "flow".into(),
            topic: "flows".into(),
            model_version: "v1".into(),
            kind: "feature".into(),
            feature: "src_bytes".into(),
            test: "ks".into(),
            ks_statistic: 0.43,
            p_value: 1e-40,
            reference_size: 2000,
            window_size: 300,
            window_start_ms: 1,
            window_end_ms: 2,
            drifted: true,
            detected_at_ms: 3,
        };
        let schema = &crate::events::bundled_schemas().drift;
        let value = apache_avro::to_value(&report).unwrap();
        assert!(value.validate(schema), "{value:?}");
        let mut writer = apache_avro::Writer::new(schema, Vec::new()).unwrap();
        writer.append_ser(&report).unwrap();
        assert!(!writer.into_inner().unwrap().is_empty());
    }

    #[test]
    fn settings_are_checked() {
        let config = DriftConfig {
            window: 10,
            alpha: 1.5,
            topic: String::new(),
            enabled: true,
        };
        let problems = config.problems().join("\n");
        for key in ["drift.window", "drift.alpha", "drift.topic"] {
            assert!(problems.contains(key), "{problems}");
        }
        assert!(DriftConfig::default().problems().is_empty());
    }
}
