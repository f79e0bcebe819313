//! `threatflow eval flow`: the model set's figures on a labelled NSL-KDD file.
//!
//! Attack-vs-normal figures (accuracy, precision, recall, F1 at the manifest's decision
//! threshold; ROC-AUC of the attack probability), detection recall per attack category, the
//! 5-class confusion matrix of the reported `attack_category`, and every team's precision and
//! recall at its threshold. `--report DIR` also writes `report.md`, `report.json`, `roc.png`
//! and `pr.png` there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ml::metrics::{roc_auc, threshold_sweep, BinaryCounts, ConfusionMatrix};
use crate::ml::plot::{pr_points, roc_points, write_png, Curve};
use crate::operators::flow::dataset::{LabelledFlow, CLASSES};
use crate::operators::flow::features::FeatureEncoder;
use crate::operators::flow::model::FlowModel;

/// One team's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamFigures {
    /// Team name.
    pub team: String,
    /// Its threshold.
    pub threshold: f64,
    /// Precision at it on this data.
    pub precision: f64,
    /// Recall at it on this data.
    pub recall: f64,
    /// Share of events it flags.
    pub flagged_share: f64,
}

/// Figures of a model on a data set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowEvaluation {
    /// Model version.
    pub model_version: String,
    /// Rows scored.
    pub rows: usize,
    /// Attack rows.
    pub attacks: usize,
    /// Decision threshold used for the binary figures.
    pub threshold: f64,
    /// Attack-vs-normal accuracy.
    pub accuracy: f64,
    /// Attack-vs-normal precision.
    pub precision: f64,
    /// Attack-vs-normal recall.
    pub recall: f64,
    /// Attack-vs-normal F1.
    pub f1: f64,
    /// ROC-AUC of the attack probability.
    pub auc: f64,
    /// Share of each attack category flagged as attack (category → recall).
    pub detection_recall: BTreeMap<String, f64>,
    /// Rows per category.
    pub support: BTreeMap<String, u64>,
    /// Rows whose attack name no table maps (counted as attacks, no category).
    pub uncategorised_attacks: usize,
    /// Truth × reported attack_category.
    pub confusion: ConfusionMatrix,
    /// Category accuracy (diagonal share of the confusion matrix).
    pub category_accuracy: f64,
    /// Per-team figures.
    pub teams: Vec<TeamFigures>,
    #[serde(skip)]
    scores: Vec<f64>,
    #[serde(skip)]
    labels: Vec<bool>,
}

/// Scores `rows` with `model` and computes the figures.
pub fn evaluate(model: &FlowModel, rows: &[LabelledFlow]) -> FlowEvaluation {
    let mut features = Vec::with_capacity(rows.len() * FeatureEncoder::width());
    for row in rows {
        model.encoder().encode_into(&row.event, &mut features);
    }
    let assessments = model.assess_batch(&features);
    let scores: Vec<f64> = assessments.iter().map(|a| a.attack_probability).collect();
    let labels: Vec<bool> = rows.iter().map(LabelledFlow::is_attack).collect();
    let threshold = model.manifest.decision_threshold;
    let counts = BinaryCounts::at_threshold(&scores, &labels, threshold);

    let class_names: Vec<String> = CLASSES.iter().map(|class| (*class).to_owned()).collect();
    let mut confusion = ConfusionMatrix::new(class_names);
    let mut detected = [0u64; 5];
    let mut uncategorised_attacks = 0;
    for ((row, assessment), &score) in rows.iter().zip(&assessments).zip(&scores) {
        match row.class {
            Some(class) => {
                confusion.add(class, assessment.attack_category);
                detected[class] += u64::from(score >= threshold);
            }
            None => uncategorised_attacks += 1,
        }
    }
    let mut detection_recall = BTreeMap::new();
    let mut support = BTreeMap::new();
    for (class, name) in CLASSES.iter().enumerate() {
        let rows_of_class = confusion.support(class);
        support.insert((*name).to_owned(), rows_of_class);
        if class > 0 && rows_of_class > 0 {
            detection_recall.insert(
                (*name).to_owned(),
                detected[class] as f64 / rows_of_class as f64,
            );
        }
    }
    let teams = model
        .manifest
        .teams
        .iter()
        .map(|team| {
            let team_counts = BinaryCounts::at_threshold(&scores, &labels, team.point.threshold);
            TeamFigures {
                team: team.team.clone(),
                threshold: team.point.threshold,
                precision: team_counts.precision(),
                recall: team_counts.recall(),
                flagged_share: (team_counts.true_positives + team_counts.false_positives) as f64
                    / rows.len().max(1) as f64,
            }
        })
        .collect();
    FlowEvaluation {
        model_version: model.manifest.version.clone(),
        rows: rows.len(),
        attacks: labels.iter().filter(|&&attack| attack).count(),
        threshold,
        accuracy: counts.accuracy(),
        precision: counts.precision(),
        recall: counts.recall(),
        f1: counts.f1(),
        auc: roc_auc(&scores, &labels),
        detection_recall,
        support,
        uncategorised_attacks,
        category_accuracy: confusion.accuracy(),
        confusion,
        teams,
        scores,
        labels,
    }
}

impl FlowEvaluation {
    /// The figures a manifest records.
    pub fn headline_metrics(&self) -> BTreeMap<String, f64> {
        let mut metrics: BTreeMap<String, f64> = [
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("auc", self.auc),
            ("category_accuracy", self.category_accuracy),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), round6(value)))
        .collect();
        for (category, recall) in &self.detection_recall {
            metrics.insert(format!("detection_recall_{category}"), round6(*recall));
        }
        metrics
    }

    /// A human-readable report (Markdown).
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "flow model {} on {} rows ({} attacks), decision threshold {:.4}\n",
            self.model_version, self.rows, self.attacks, self.threshold
        );
        let _ = writeln!(text, "| metric | value |\n|---|---|");
        for (name, value) in [
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("roc_auc", self.auc),
            ("category accuracy", self.category_accuracy),
        ] {
            let _ = writeln!(text, "| {name} | {value:.4} |");
        }
        let _ = writeln!(
            text,
            "\n| category | rows | detection recall |\n|---|---|---|"
        );
        for (category, recall) in &self.detection_recall {
            let rows = self.support.get(category).copied().unwrap_or(0);
            let _ = writeln!(text, "| {category} | {rows} | {recall:.4} |");
        }
        if self.uncategorised_attacks > 0 {
            let _ = writeln!(
                text,
                "\n{} attack rows have a name no table maps to a category",
                self.uncategorised_attacks
            );
        }
        let _ = write!(
            text,
            "\nconfusion (rows: truth, columns: attack_category)\n\n|   |"
        );
        for class in &self.confusion.classes {
            let _ = write!(text, " {class} |");
        }
        let _ = writeln!(
            text,
            "\n|---|{}",
            "---|".repeat(self.confusion.classes.len())
        );
        for (class, row) in self.confusion.classes.iter().zip(&self.confusion.counts) {
            let cells: Vec<String> = row.iter().map(u64::to_string).collect();
            let _ = writeln!(text, "| {class} | {} |", cells.join(" | "));
        }
        let _ = writeln!(
            text,
            "\n| team | threshold | precision | recall | flagged |\n|---|---|---|---|---|"
        );
        for team in &self.teams {
            let _ = writeln!(
                text,
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} |",
                team.team, team.threshold, team.precision, team.recall, team.flagged_share
            );
        }
        text
    }

    /// Writes `report.md`, `report.json`, `roc.png` and `pr.png` into `directory`; returns
    /// whether the plots have text (a font was found).
    pub fn write_report(&self, directory: &Path) -> Result<bool, String> {
        std::fs::create_dir_all(directory).map_err(|error| error.to_string())?;
        let write = |name: &str, contents: String| {
            std::fs::write(directory.join(name), contents)
                .map_err(|error| format!("{name}: {error}"))
        };
        write(
            "report.md",
            format!("{}\n![ROC](roc.png)\n![PR](pr.png)\n", self.render()),
        )?;
        let json = serde_json::to_string_pretty(self).map_err(|error| error.to_string())?;
        write("report.json", json + "\n")?;
        let sweep = threshold_sweep(&self.scores, &self.labels);
        let roc_title = format!("ROC, attack vs normal (AUC {:.4})", self.auc);
        let with_text = write_png(
            &directory.join("roc.png"),
            &Curve {
                title: &roc_title,
                x_name: "false-positive rate",
                y_name: "true-positive rate",
                points: roc_points(&sweep),
                diagonal: true,
            },
        )?;
        write_png(
            &directory.join("pr.png"),
            &Curve {
                title: "precision-recall, attack vs normal",
                x_name: "recall",
                y_name: "precision",
                points: pr_points(&sweep),
                diagonal: false,
            },
        )?;
        Ok(with_text)
    }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}
