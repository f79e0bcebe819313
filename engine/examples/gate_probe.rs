//! Gate probe: how candidate gate figures see a flow model retrained on true and on inverted
//! verdicts. Trains a champion on every 5th row of the bootstrap file, retrains it with
//! feedback rows (true, then inverted labels) and prints each figure for champion and
//! challenger on the validation split and on the held-out feedback (with its true labels).
//!
//! `cargo run --release --example gate_probe -- FEEDBACK_FILE FIRST STEP COUNT [WEIGHT]`
//! (e.g. `models/flow/data/KDDTest+.txt 0 40 300`).

use std::path::PathBuf;

use threatflow::events::InputEvent;
use threatflow::learning::{Decision, LabelledEvent, RetrainJob};
use threatflow::ml::metrics::roc_auc;
use threatflow::operators::flow::dataset::read_nsl_kdd;
use threatflow::operators::flow::learning::LEARNING;
use threatflow::operators::flow::train::{train, TrainOptions};

fn log_loss(decisions: &[Decision], rows: &[LabelledEvent]) -> f64 {
    let total: f64 = decisions
        .iter()
        .zip(rows)
        .map(|(d, r)| {
            let p = d.score.clamp(1e-6, 1.0 - 1e-6);
            if r.threat {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    total / rows.len().max(1) as f64
}

fn figures(name: &str, rows: &[LabelledEvent], champion: &[Decision], challenger: &[Decision]) {
    let labels: Vec<bool> = rows.iter().map(|r| r.threat).collect();
    let recall = threatflow::learning::gate::recall_at_champion_fpr(&labels, champion, challenger);
    let auc = |d: &[Decision]| roc_auc(&d.iter().map(|d| d.score).collect::<Vec<_>>(), &labels);
    let accuracy = |d: &[Decision]| {
        threatflow::learning::gate::balanced_accuracy(&labels, d).unwrap_or(f64::NAN)
    };
    println!(
        "{name:>22} rows {:>5}  recall@fpr {:?}  auc {:.4} → {:.4}  logloss {:.4} → {:.4}  balanced accuracy {:.4} → {:.4}",
        rows.len(),
        recall.map(|(a, b)| (format!("{a:.4}"), format!("{b:.4}"))),
        auc(champion),
        auc(challenger),
        log_loss(champion, rows),
        log_loss(challenger, rows),
        accuracy(champion),
        accuracy(challenger),
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let feedback_file = PathBuf::from(&args[1]);
    let (first, step, count): (usize, usize, usize) =
        (args[2].parse()?, args[3].parse()?, args[4].parse()?);
    let weight: f64 = args.get(5).map_or(Ok(5.0), |w| w.parse())?;
    let work = tempfile::tempdir()?;
    let full = std::fs::read_to_string("models/flow/data/KDDTrain+_20Percent.txt")?;
    let subset: String = full.lines().step_by(5).map(|l| format!("{l}\n")).collect();
    let data = work.path().join("bootstrap.txt");
    std::fs::write(&data, subset)?;
    let champion_dir = work.path().join("t1");
    train(
        &TrainOptions {
            data: data.clone(),
            out: champion_dir.clone(),
            version: "t1".into(),
            seed: 5,
            validation_fraction: 0.2,
            false_positive_cost: 1.0,
            false_negative_cost: 5.0,
        },
        "2026-11-29T00:00:00Z".into(),
    )?;
    let stream: Vec<_> = read_nsl_kdd(&feedback_file)?
        .into_iter()
        .skip(first)
        .step_by(step)
        .take(count)
        .collect();
    let validation = (LEARNING.validation)(&champion_dir, &data).map_err(anyhow::Error::msg)?;
    for invert in [false, true] {
        let rows: Vec<(LabelledEvent, bool)> = stream
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let labelled = LabelledEvent {
                    event: InputEvent::Flow(Box::new(row.event.clone())),
                    threat: row.is_attack() != invert,
                    label: Some(row.label.clone()),
                    corrected_risk: None,
                    context: None,
                };
                (
                    labelled,
                    threatflow::learning::buffer::is_holdout(&format!("e-{i}"), 0.2),
                )
            })
            .collect();
        let training: Vec<LabelledEvent> = rows
            .iter()
            .filter(|(_, h)| !h)
            .map(|(r, _)| r.clone())
            .collect();
        let holdout_true: Vec<LabelledEvent> = rows
            .iter()
            .filter(|(_, h)| *h)
            .map(|(r, _)| LabelledEvent {
                threat: r.threat != invert,
                ..r.clone()
            })
            .collect();
        let out = work.path().join(if invert { "inverted" } else { "true" });
        (LEARNING.retrain)(&RetrainJob {
            champion: &champion_dir,
            data: &data,
            operator_dir: std::path::Path::new("models/flow"),
            feedback: &training,
            weight,
            seed: 1,
            version: "c",
            out: &out,
        })
        .map_err(anyhow::Error::msg)?;
        let mut champion = (LEARNING.load)(&champion_dir).map_err(anyhow::Error::msg)?;
        let mut challenger = (LEARNING.load)(&out).map_err(anyhow::Error::msg)?;
        let decide = |s: &mut Box<dyn threatflow::learning::VersionScorer>,
                      rows: &[LabelledEvent]| {
            let events: Vec<_> = rows.iter().map(LabelledEvent::scorable).collect();
            s.decide(&events)
        };
        println!(
            "{} verdicts, weight {weight}:",
            if invert { "inverted" } else { "true" }
        );
        let (a, b) = (
            decide(&mut champion, &validation),
            decide(&mut challenger, &validation),
        );
        figures("validation", &validation, &a, &b);
        let (a, b) = (
            decide(&mut champion, &holdout_true),
            decide(&mut challenger, &holdout_true),
        );
        figures("holdout (true labels)", &holdout_true, &a, &b);
        let (a, b) = (
            decide(&mut champion, &training),
            decide(&mut challenger, &training),
        );
        figures("trained feedback (as given)", &training, &a, &b);
    }
    Ok(())
}
