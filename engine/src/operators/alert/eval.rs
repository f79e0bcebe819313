//! Figures of the alert operator on labelled alerts (`threatflow eval alert`), beside a
//! rules-only baseline.
//!
//! Alerts are streamed in order through [`AlertScorer`] (the operator's code path); rows
//! marked `warmup` feed the entity history and are not counted.
//!
//! - **Disposition**: accuracy, macro-F1 and per-class precision / recall / F1 of the
//!   forest's most probable class; confusion matrix.
//! - **Risk**: R² and MAE of the model's risk (`risk_r2`, `risk_mae`) and of the blended
//!   final risk (`final_risk_r2`, `final_risk_mae`) against the labelled risk.
//! - **Anomaly**: with `k` = contamination × rows, the share of true positives among the `k`
//!   highest anomaly scores (`anomaly_precision_at_contamination`), the ROC-AUC of the score
//!   for true positives, and precision / recall of the flag at the manifest's threshold.
//! - **Rules-only baseline**: risk = rule score; disposition = true_positive when the rule
//!   score ≥ 50, suspicious ≥ 25, otherwise benign for informational/low severity and
//!   false_positive above — the triage a SOC would do with the rule layer alone.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::ml::metrics::{mean_absolute_error, r_squared, roc_auc, BinaryCounts, ConfusionMatrix};
use crate::operators::alert::features::severity_level;
use crate::operators::alert::model::AlertModel;
use crate::operators::alert::rules::RuleSet;
use crate::operators::alert::scorer::{AlertScorer, BlendWeights};
use crate::operators::alert::synth::{LabeledAlert, DISPOSITIONS};

/// Precision, recall and F1 of one disposition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassFigures {
    /// Disposition.
    pub class: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Labelled rows.
    pub support: u64,
}

/// The rules-only baseline's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineFigures {
    /// Macro-F1 of the rule-score triage.
    pub macro_f1: f64,
    /// Accuracy of the rule-score triage.
    pub accuracy: f64,
    /// R² of the rule score as risk.
    pub risk_r2: f64,
    /// MAE of the rule score as risk.
    pub risk_mae: f64,
}

/// Everything `eval alert` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvaluation {
    /// Model version.
    pub model_version: String,
    /// Rows scored (warm-up rows excluded).
    pub rows: usize,
    /// Disposition accuracy.
    pub accuracy: f64,
    /// Disposition macro-F1.
    pub macro_f1: f64,
    /// Per-class figures, [`DISPOSITIONS`] order.
    pub classes: Vec<ClassFigures>,
    /// Confusion matrix (rows = labelled, columns = predicted).
    pub confusion: ConfusionMatrix,
    /// R² of the model's risk.
    pub risk_r2: f64,
    /// MAE of the model's risk.
    pub risk_mae: f64,
    /// R² of the blended final risk.
    pub final_risk_r2: f64,
    /// MAE of the blended final risk.
    pub final_risk_mae: f64,
    /// Contamination rate the anomaly figures use.
    pub contamination: f64,
    /// True-positive share of the top `contamination` share by anomaly score.
    pub anomaly_precision_at_contamination: f64,
    /// ROC-AUC of the anomaly score for true positives.
    pub anomaly_auc: f64,
    /// Precision of the anomaly flag for true positives.
    pub anomaly_flag_precision: f64,
    /// Recall of the anomaly flag for true positives.
    pub anomaly_flag_recall: f64,
    /// Share of rows flagged.
    pub anomaly_flag_rate: f64,
    /// Rules-only baseline.
    pub rules_only: BaselineFigures,
    /// Correlation figures (`eval alert` only; see [`crate::operators::alert::eval_incidents`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<crate::operators::alert::eval_incidents::IncidentFigures>,
    /// Final risk with each stage switched off (`eval alert` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<crate::operators::alert::eval_incidents::StageFigures>,
}

/// The rules-only triage of an alert (see the module doc).
pub fn rules_only_disposition(rule_score: f64, severity: &str) -> usize {
    if rule_score >= 50.0 {
        0
    } else if rule_score >= 25.0 {
        2
    } else if severity_level(severity).is_some_and(|level| level <= 1) {
        3
    } else {
        1
    }
}

/// Scores `alerts` in order with a fresh history; see the module doc.
pub fn evaluate(
    model: AlertModel,
    rules: RuleSet,
    weights: BlendWeights,
    alerts: &[LabeledAlert],
) -> AlertEvaluation {
    let model_version = model.manifest.version.clone();
    let contamination = model.manifest.anomaly_contamination;
    let classes: Vec<String> = DISPOSITIONS.iter().map(|c| (*c).to_owned()).collect();
    let scorer = AlertScorer::new(model, rules, weights);
    let mut history = crate::operators::alert::history::EntityHistory::default();
    let mut confusion = ConfusionMatrix::new(classes.clone());
    let mut baseline = ConfusionMatrix::new(classes.clone());
    let mut truth_risk = Vec::new();
    let (mut ml_risk, mut final_risk, mut rule_risk) = (Vec::new(), Vec::new(), Vec::new());
    let (mut anomaly_scores, mut is_true_positive, mut flagged) =
        (Vec::new(), Vec::new(), Vec::new());
    for (offset, labeled) in alerts.iter().enumerate() {
        let score = scorer.score(&mut history, &labeled.alert, offset as i64);
        if labeled.warmup {
            continue;
        }
        let Some(truth) = DISPOSITIONS.iter().position(|d| *d == labeled.disposition) else {
            continue;
        };
        confusion.add(truth, score.assessment.disposition);
        baseline.add(
            truth,
            rules_only_disposition(score.rule_score, &labeled.alert.severity),
        );
        truth_risk.push(labeled.risk);
        ml_risk.push(score.assessment.ml_risk);
        final_risk.push(score.risk);
        rule_risk.push(score.rule_score);
        anomaly_scores.push(score.assessment.anomaly_score);
        is_true_positive.push(truth == 0);
        flagged.push(score.assessment.anomalous);
    }
    let rows = truth_risk.len();
    let mut order: Vec<usize> = (0..rows).collect();
    order.sort_by(|&a, &b| anomaly_scores[b].total_cmp(&anomaly_scores[a]));
    let top = ((rows as f64) * contamination).round().max(1.0) as usize;
    let top_true = order
        .iter()
        .take(top)
        .filter(|&&index| is_true_positive[index])
        .count();
    let mut flag_counts = BinaryCounts::default();
    for (&positive, &flag) in is_true_positive.iter().zip(&flagged) {
        flag_counts.add(positive, flag);
    }
    AlertEvaluation {
        model_version,
        rows,
        accuracy: confusion.accuracy(),
        macro_f1: confusion.macro_f1(),
        classes: (0..classes.len())
            .map(|index| ClassFigures {
                class: classes[index].clone(),
                precision: confusion.precision(index),
                recall: confusion.recall(index),
                f1: confusion.f1(index),
                support: confusion.support(index),
            })
            .collect(),
        risk_r2: r_squared(&truth_risk, &ml_risk),
        risk_mae: mean_absolute_error(&truth_risk, &ml_risk),
        final_risk_r2: r_squared(&truth_risk, &final_risk),
        final_risk_mae: mean_absolute_error(&truth_risk, &final_risk),
        contamination,
        anomaly_precision_at_contamination: if rows == 0 {
            0.0
        } else {
            top_true as f64 / top.min(rows) as f64
        },
        anomaly_auc: roc_auc(&anomaly_scores, &is_true_positive),
        anomaly_flag_precision: flag_counts.precision(),
        anomaly_flag_recall: flag_counts.recall(),
        anomaly_flag_rate: flagged.iter().filter(|&&flag| flag).count() as f64 / rows.max(1) as f64,
        rules_only: BaselineFigures {
            macro_f1: baseline.macro_f1(),
            accuracy: baseline.accuracy(),
            risk_r2: r_squared(&truth_risk, &rule_risk),
            risk_mae: mean_absolute_error(&truth_risk, &rule_risk),
        },
        confusion,
        incidents: Vec::new(),
        stages: Vec::new(),
    }
}

impl AlertEvaluation {
    /// The figures stored in a manifest.
    pub fn headline_metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("accuracy".to_owned(), self.accuracy),
            ("macro_f1".to_owned(), self.macro_f1),
            ("risk_r2".to_owned(), self.risk_r2),
            ("risk_mae".to_owned(), self.risk_mae),
            ("final_risk_r2".to_owned(), self.final_risk_r2),
            ("final_risk_mae".to_owned(), self.final_risk_mae),
            (
                "anomaly_precision_at_contamination".to_owned(),
                self.anomaly_precision_at_contamination,
            ),
            ("anomaly_auc".to_owned(), self.anomaly_auc),
            ("rules_only_macro_f1".to_owned(), self.rules_only.macro_f1),
            ("rules_only_risk_r2".to_owned(), self.rules_only.risk_r2),
        ])
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "alert model {} on {} alerts",
            self.model_version, self.rows
        );
        let _ = writeln!(out, "\n                        model    rules only");
        let _ = writeln!(
            out,
            "disposition macro-F1   {:>7.4}    {:>7.4}",
            self.macro_f1, self.rules_only.macro_f1
        );
        let _ = writeln!(
            out,
            "disposition accuracy   {:>7.4}    {:>7.4}",
            self.accuracy, self.rules_only.accuracy
        );
        let _ = writeln!(
            out,
            "risk R²                {:>7.4}    {:>7.4}   (blended final risk {:.4})",
            self.risk_r2, self.rules_only.risk_r2, self.final_risk_r2
        );
        let _ = writeln!(
            out,
            "risk MAE               {:>7.2}    {:>7.2}   (blended final risk {:.2})",
            self.risk_mae, self.rules_only.risk_mae, self.final_risk_mae
        );
        let _ = writeln!(out, "\nclass            precision  recall      F1  support");
        for class in &self.classes {
            let _ = writeln!(
                out,
                "{:<16} {:>9.4} {:>7.4} {:>7.4} {:>8}",
                class.class, class.precision, class.recall, class.f1, class.support
            );
        }
        let _ = writeln!(out, "\nconfusion (rows labelled, columns predicted):");
        for (class, row) in self.confusion.classes.iter().zip(&self.confusion.counts) {
            let cells: Vec<String> = row.iter().map(|count| format!("{count:>7}")).collect();
            let _ = writeln!(out, "{class:<16} {}", cells.join(""));
        }
        let _ = writeln!(
            out,
            "\nanomaly: precision at contamination {:.3} = {:.4}, AUC {:.4}; flag precision {:.4}, recall {:.4}, rate {:.4}",
            self.contamination,
            self.anomaly_precision_at_contamination,
            self.anomaly_auc,
            self.anomaly_flag_precision,
            self.anomaly_flag_recall,
            self.anomaly_flag_rate
        );
        if !self.stages.is_empty() {
            let _ = writeln!(
                out,
                "\nstages                final risk R²      MAE   TP recall at risk ≥ 60   others at ≥ 60"
            );
            for stage in &self.stages {
                let _ = writeln!(
                    out,
                    "{:<20} {:>14.4} {:>8.2} {:>24.3} {:>16.3}",
                    stage.stages,
                    stage.final_risk_r2,
                    stage.final_risk_mae,
                    stage.true_positive_recall_at_60,
                    stage.other_rate_at_60
                );
            }
        }
        if !self.incidents.is_empty() {
            let _ = writeln!(
                out,
                "\ncorrelation  entities      window  tactics  intrusions  recall  incidents  purity  false (look-alike)  alerts to incident  largest"
            );
            for figures in &self.incidents {
                let _ = writeln!(
                    out,
                    "             {:<12}  {:>4.0} h  {:>7}  {:>10}  {:>6.3}  {:>9}  {:>6.3}  {:>5} ({:>2})  {:>18.1}  {:>7}",
                    figures.entities,
                    figures.window_hours,
                    figures.min_tactics,
                    figures.intrusions,
                    figures.recall,
                    figures.incidents,
                    figures.purity,
                    figures.false_incidents,
                    figures.false_from_lookalikes,
                    figures.median_alerts_to_incident,
                    figures.largest_incident
                );
            }
        }
        out
    }
}
