//! Test support: one retraining and its gate, as the trainer runs them, for an operator's
//! [`LearningSpec`] on files a test made.

use std::path::Path;

use super::gate::{judge, GateReport, Slice};
use super::{LabelledEvent, LearningSpec, RetrainJob, Scorable};

/// Retrains `champion` with `feedback` (weight 5, margin 0.02), writes the trainer's figures
/// into the new version's manifest (which must still load), and returns the gate's verdict
/// on the champion's validation rows.
pub fn retrain_and_judge(
    spec: &LearningSpec,
    champion: &Path,
    data: &Path,
    operator_dir: &Path,
    feedback: &[LabelledEvent],
) -> GateReport {
    let work = tempfile::tempdir().unwrap();
    let challenger = work.path().join("c2");
    (spec.retrain)(&RetrainJob {
        champion,
        data,
        operator_dir,
        feedback,
        weight: 5.0,
        seed: 1,
        version: "c2",
        out: &challenger,
    })
    .unwrap();
    super::retrain::annotate_manifest(
        &challenger,
        &serde_json::json!({"feedback_rows": feedback.len()}),
    )
    .unwrap();
    let rows = (spec.validation)(champion, data).unwrap();
    let scorable: Vec<Scorable<'_>> = rows.iter().map(LabelledEvent::scorable).collect();
    let a = (spec.load)(champion).unwrap().decide(&scorable);
    let b = (spec.load)(&challenger).unwrap().decide(&scorable);
    judge(
        spec.gate_metrics,
        0.02,
        &[Slice {
            name: "validation",
            rows: &rows,
            champion: &a,
            challenger: &b,
        }],
    )
}
