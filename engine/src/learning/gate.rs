//! The quality gate: a retrained version becomes a challenger only if, on every slice that
//! can judge it, its gate metric is no worse than the champion's by more than the margin.
//!
//! Slices: the held-out feedback (events chosen by a hash of their id, never trained on) and
//! the model's own validation data (the bootstrap split its training never saw). A slice
//! without both classes cannot give the metric and is recorded as not judged; at least one
//! slice must judge. The figures and the reason go into the registry record and the
//! version's manifest, so `models show` tells why a version was kept or rejected.

use serde::Serialize;

use super::{Decision, GateMetric, LabelledEvent};

/// One slice's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceFigures {
    /// `feedback_holdout` or `validation`.
    pub slice: String,
    /// The figure.
    pub metric: GateMetric,
    /// Rows.
    pub rows: usize,
    /// Threat rows.
    pub threats: usize,
    /// The champion's figure (`None`: the slice cannot give it).
    pub champion: Option<f64>,
    /// The challenger's figure.
    pub challenger: Option<f64>,
    /// Whether the challenger is within the margin (`None`: not judged).
    pub passed: Option<bool>,
}

/// The gate's verdict on a challenger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// Kept as challenger.
    pub passed: bool,
    /// The figures compared.
    pub metrics: Vec<GateMetric>,
    /// How much worse the challenger may be.
    pub margin: f64,
    /// One line: why.
    pub reason: String,
    /// Per slice.
    pub slices: Vec<SliceFigures>,
}

/// A slice to judge on: its rows and both versions' decisions on them.
pub struct Slice<'a> {
    /// Name.
    pub name: &'a str,
    /// Labelled rows.
    pub rows: &'a [LabelledEvent],
    /// The champion's decisions.
    pub champion: &'a [Decision],
    /// The challenger's decisions.
    pub challenger: &'a [Decision],
}

/// Judges the challenger on `slices`: every figure of `metrics` on every slice that can give
/// it.
pub fn judge(metrics: &[GateMetric], margin: f64, slices: &[Slice<'_>]) -> GateReport {
    let mut figures = Vec::new();
    for slice in slices {
        let labels: Vec<bool> = slice.rows.iter().map(|row| row.threat).collect();
        for &metric in metrics {
            let (champion, challenger) = match metric {
                GateMetric::RecallAtChampionFpr => {
                    recall_at_champion_fpr(&labels, slice.champion, slice.challenger)
                }
                GateMetric::PrecisionAtChampionRecall => {
                    precision_at_champion_recall(&labels, slice.champion, slice.challenger)
                }
                GateMetric::DecisionBalancedAccuracy => balanced_accuracy(&labels, slice.champion)
                    .zip(balanced_accuracy(&labels, slice.challenger)),
            }
            .map_or((None, None), |(a, b)| (Some(a), Some(b)));
            let passed = champion
                .zip(challenger)
                .map(|(champion, challenger)| challenger >= champion - margin);
            figures.push(SliceFigures {
                slice: slice.name.to_owned(),
                metric,
                rows: labels.len(),
                threats: labels.iter().filter(|&&threat| threat).count(),
                champion: champion.map(round6),
                challenger: challenger.map(round6),
                passed,
            });
        }
    }
    let judged: Vec<&SliceFigures> = figures.iter().filter(|f| f.passed.is_some()).collect();
    let failed: Vec<&SliceFigures> = judged
        .iter()
        .copied()
        .filter(|f| f.passed == Some(false))
        .collect();
    let describe = |f: &SliceFigures| {
        format!(
            "{} {} {:.4} vs champion {:.4} ({} rows)",
            f.slice,
            metric_name(f.metric),
            f.challenger.unwrap_or(f64::NAN),
            f.champion.unwrap_or(f64::NAN),
            f.rows
        )
    };
    let (passed, reason) = if judged.is_empty() {
        (
            false,
            "no slice has both threats and benign events to judge on".to_owned(),
        )
    } else if failed.is_empty() {
        (
            true,
            format!(
                "within margin {margin}: {}",
                judged
                    .iter()
                    .map(|f| describe(f))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    } else {
        (
            false,
            format!(
                "worse than the champion by more than {margin}: {}",
                failed
                    .iter()
                    .map(|f| describe(f))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )
    };
    GateReport {
        passed,
        metrics: metrics.to_vec(),
        margin,
        reason,
        slices: figures,
    }
}

fn metric_name(metric: GateMetric) -> &'static str {
    match metric {
        GateMetric::RecallAtChampionFpr => "recall at the champion's false-positive rate",
        GateMetric::DecisionBalancedAccuracy => "balanced accuracy of the alerting decision",
        GateMetric::PrecisionAtChampionRecall => "precision at the champion's recall",
    }
}

/// (champion precision, challenger precision) with the challenger's threshold set to the
/// highest score that still finds as many threats as the champion's decisions. `None`
/// without both classes or when the champion alerts on nothing.
pub fn precision_at_champion_recall(
    labels: &[bool],
    champion: &[Decision],
    challenger: &[Decision],
) -> Option<(f64, f64)> {
    let threats = labels.iter().filter(|&&threat| threat).count();
    if threats == 0 || threats == labels.len() {
        return None;
    }
    let (mut hits, mut alerts) = (0usize, 0usize);
    for (decision, &threat) in champion.iter().zip(labels) {
        if decision.alerted {
            alerts += 1;
            hits += usize::from(threat);
        }
    }
    if alerts == 0 || hits == 0 {
        return None;
    }
    let mut threat_scores: Vec<f64> = challenger
        .iter()
        .zip(labels)
        .filter(|(_, &threat)| threat)
        .map(|(decision, _)| decision.score)
        .collect();
    threat_scores.sort_by(|a, b| b.total_cmp(a));
    // Alert at or above the `hits`-th highest threat score: at least `hits` threats found.
    let cut = threat_scores[hits - 1];
    let (mut found, mut flagged) = (0usize, 0usize);
    for (decision, &threat) in challenger.iter().zip(labels) {
        if decision.score >= cut {
            flagged += 1;
            found += usize::from(threat);
        }
    }
    Some((hits as f64 / alerts as f64, found as f64 / flagged as f64))
}

/// Mean of recall and specificity of `decisions`' alerts; `None` without both classes.
pub fn balanced_accuracy(labels: &[bool], decisions: &[Decision]) -> Option<f64> {
    let (mut hits, mut threats, mut quiet, mut benign) = (0usize, 0usize, 0usize, 0usize);
    for (decision, &threat) in decisions.iter().zip(labels) {
        if threat {
            threats += 1;
            hits += usize::from(decision.alerted);
        } else {
            benign += 1;
            quiet += usize::from(!decision.alerted);
        }
    }
    (threats > 0 && benign > 0)
        .then(|| (hits as f64 / threats as f64 + quiet as f64 / benign as f64) / 2.0)
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// (champion recall, challenger recall) with the challenger's threshold set so that it
/// raises no more false positives than the champion's decisions do. `None` without both
/// classes.
pub fn recall_at_champion_fpr(
    labels: &[bool],
    champion: &[Decision],
    challenger: &[Decision],
) -> Option<(f64, f64)> {
    let threats = labels.iter().filter(|&&threat| threat).count();
    let benign = labels.len() - threats;
    if threats == 0 || benign == 0 {
        return None;
    }
    let mut allowed_false_positives = 0;
    let mut champion_hits = 0;
    for (decision, &threat) in champion.iter().zip(labels) {
        match (decision.alerted, threat) {
            (true, true) => champion_hits += 1,
            (true, false) => allowed_false_positives += 1,
            _ => {}
        }
    }
    let mut benign_scores: Vec<f64> = challenger
        .iter()
        .zip(labels)
        .filter(|(_, &threat)| !threat)
        .map(|(decision, _)| decision.score)
        .collect();
    benign_scores.sort_by(|a, b| b.total_cmp(a));
    // Alert strictly above the (k+1)-th highest benign score: at most k false positives.
    let cut = benign_scores
        .get(allowed_false_positives)
        .copied()
        .unwrap_or(f64::NEG_INFINITY);
    let challenger_hits = challenger
        .iter()
        .zip(labels)
        .filter(|(decision, &threat)| threat && decision.score > cut)
        .count();
    Some((
        champion_hits as f64 / threats as f64,
        challenger_hits as f64 / threats as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(scores: &[f64], threshold: f64) -> Vec<Decision> {
        scores
            .iter()
            .map(|&score| Decision {
                score,
                alerted: score >= threshold,
            })
            .collect()
    }

    #[test]
    fn recall_is_compared_at_the_champions_false_positive_rate() {
        let labels = [true, true, true, true, false, false, false, false];
        // Champion at 0.5: 2 of 4 threats, 1 false positive.
        let champion = decisions(&[0.9, 0.6, 0.4, 0.3, 0.7, 0.2, 0.1, 0.1], 0.5);
        // Challenger ranks threats higher but uses a low threshold: judged at one false
        // positive, it finds 3 of 4 (above the 2nd-highest benign score, 0.35).
        let challenger = decisions(&[0.9, 0.8, 0.5, 0.3, 0.95, 0.35, 0.1, 0.1], 0.0);
        let (a, b) = recall_at_champion_fpr(&labels, &champion, &challenger).unwrap();
        assert_eq!((a, b), (0.5, 0.75));
        assert_eq!(
            recall_at_champion_fpr(&[true, true], &champion[..2], &challenger[..2]),
            None
        );
    }

    #[test]
    fn precision_is_compared_at_the_champions_recall() {
        let labels = [true, true, false, false, false];
        // Champion alerts on 3 (2 threats): precision 2/3 at recall 1.
        let champion = decisions(&[0.9, 0.8, 0.7, 0.1, 0.1], 0.5);
        // Challenger ranks both threats above every benign event: precision 1 at recall 1.
        let challenger = decisions(&[0.6, 0.55, 0.5, 0.2, 0.1], 0.0);
        assert_eq!(
            precision_at_champion_recall(&labels, &champion, &challenger),
            Some((2.0 / 3.0, 1.0))
        );
        let silent = decisions(&[0.1; 5], 0.5);
        assert_eq!(
            precision_at_champion_recall(&labels, &silent, &challenger),
            None
        );
    }

    #[test]
    fn balanced_accuracy_judges_each_version_at_its_own_threshold() {
        let labels = [true, true, false, false, false, false];
        // Same ranking, but this version alerts on everything: recall 1, specificity 0.
        let loose = decisions(&[0.9, 0.8, 0.3, 0.2, 0.1, 0.1], 0.0);
        let tight = decisions(&[0.9, 0.8, 0.3, 0.2, 0.1, 0.1], 0.5);
        assert_eq!(balanced_accuracy(&labels, &loose), Some(0.5));
        assert_eq!(balanced_accuracy(&labels, &tight), Some(1.0));
        assert_eq!(balanced_accuracy(&labels[..2], &tight[..2]), None);
        // Recall at the champion's false-positive rate cannot tell them apart.
        assert_eq!(
            recall_at_champion_fpr(&labels, &tight, &loose),
            Some((1.0, 1.0))
        );
    }

    #[test]
    fn the_gate_rejects_a_challenger_worse_on_any_judged_slice() {
        let rows: Vec<LabelledEvent> = [true, true, false, false]
            .iter()
            .map(|&threat| LabelledEvent {
                event: crate::events::InputEvent::Address(crate::events::AddressEvent {
                    event_id: None,
                    address: "a@b.c".into(),
                    context: "sender".into(),
                    account: None,
                    observed_ms: None,
                }),
                threat,
                label: None,
                corrected_risk: None,
            })
            .collect();
        let good = decisions(&[0.9, 0.8, 0.1, 0.2], 0.5);
        let bad = decisions(&[0.1, 0.8, 0.9, 0.2], 0.5);
        let only_threats = &rows[..2];
        let slices = |challenger: &'static str| {
            let c = if challenger == "good" { &good } else { &bad };
            judge(
                &[
                    GateMetric::RecallAtChampionFpr,
                    GateMetric::DecisionBalancedAccuracy,
                ],
                0.02,
                &[
                    Slice {
                        name: "feedback_holdout",
                        rows: only_threats,
                        champion: &good[..2],
                        challenger: &c[..2],
                    },
                    Slice {
                        name: "validation",
                        rows: &rows,
                        champion: &good,
                        challenger: c,
                    },
                ],
            )
        };
        let kept = slices("good");
        assert!(kept.passed, "{}", kept.reason);
        assert_eq!(kept.slices.len(), 4);
        assert_eq!(kept.slices[0].passed, None, "one class only: not judged");
        assert_eq!(kept.slices[1].passed, None);
        let rejected = slices("bad");
        assert!(!rejected.passed);
        assert!(
            rejected.reason.contains("validation"),
            "{}",
            rejected.reason
        );
    }
}
