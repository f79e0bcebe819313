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
                GateMetric::ClassMacroF1 => class_macro_f1(slice.rows, slice.champion)
                    .zip(class_macro_f1(slice.rows, slice.challenger)),
                GateMetric::RiskMae => {
                    risk_mae(slice.rows, slice.champion).zip(risk_mae(slice.rows, slice.challenger))
                }
                GateMetric::RecallAtTop5Pct => recall_at_top(&labels, slice.champion, 0.05)
                    .zip(recall_at_top(&labels, slice.challenger, 0.05)),
            }
            .map_or((None, None), |(a, b)| (Some(a), Some(b)));
            let passed = champion.zip(challenger).map(|(champion, challenger)| {
                if metric == GateMetric::RiskMae {
                    // An error on the 0–100 risk scale: the margin is in hundredths of it.
                    challenger <= champion + margin * 100.0
                } else {
                    challenger >= champion - margin
                }
            });
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
        GateMetric::ClassMacroF1 => "macro-F1 of the class",
        GateMetric::RiskMae => "risk MAE",
        GateMetric::RecallAtTop5Pct => "recall in the top 5 %",
    }
}

/// Macro-F1 of `decisions`' classes over the classes the rows name (rows without a class,
/// or decisions without one, are left out); `None` with fewer than two classes named.
pub fn class_macro_f1(rows: &[LabelledEvent], decisions: &[Decision]) -> Option<f64> {
    use std::collections::BTreeMap;
    // class → (true positives, predicted, actual)
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (row, decision) in rows.iter().zip(decisions) {
        let (Some(actual), Some(predicted)) = (row.label.as_deref(), decision.class.as_deref())
        else {
            continue;
        };
        counts.entry(actual).or_default().2 += 1;
        counts.entry(predicted).or_default().1 += 1;
        if actual == predicted {
            counts.entry(actual).or_default().0 += 1;
        }
    }
    let named: Vec<(usize, usize, usize)> = counts
        .into_values()
        .filter(|&(_, _, actual)| actual > 0)
        .collect();
    if named.len() < 2 {
        return None;
    }
    let f1 = |(hits, predicted, actual): (usize, usize, usize)| {
        if hits == 0 {
            0.0
        } else {
            2.0 * hits as f64 / (predicted + actual) as f64
        }
    };
    Some(named.iter().map(|&c| f1(c)).sum::<f64>() / named.len() as f64)
}

/// Mean absolute error of the decisions' scores against the rows' corrected risk; `None`
/// without a row that has one.
pub fn risk_mae(rows: &[LabelledEvent], decisions: &[Decision]) -> Option<f64> {
    let errors: Vec<f64> = rows
        .iter()
        .zip(decisions)
        .filter_map(|(row, decision)| row.corrected_risk.map(|risk| (decision.score - risk).abs()))
        .collect();
    (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64)
}

/// Share of the threats among the top `share` of rows by score (⌈share · rows⌉ of them;
/// ties at the cut count in the rows' order); `None` without both classes.
pub fn recall_at_top(labels: &[bool], decisions: &[Decision], share: f64) -> Option<f64> {
    let threats = threats_of_both_classes(labels)?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| decisions[b].score.total_cmp(&decisions[a].score));
    let top = ((labels.len() as f64) * share).ceil() as usize;
    let found = order[..top].iter().filter(|&&index| labels[index]).count();
    Some(found as f64 / threats as f64)
}

/// (champion precision, challenger precision) with the challenger's threshold set to the
/// highest score that still finds as many threats as the champion's decisions. `None`
/// without both classes or when the champion alerts on nothing.
pub fn precision_at_champion_recall(
    labels: &[bool],
    champion: &[Decision],
    challenger: &[Decision],
) -> Option<(f64, f64)> {
    threats_of_both_classes(labels)?;
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

/// The threats among `labels`, when there are threats and benign events both.
fn threats_of_both_classes(labels: &[bool]) -> Option<usize> {
    let threats = labels.iter().filter(|&&threat| threat).count();
    (threats > 0 && threats < labels.len()).then_some(threats)
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
    let threats = threats_of_both_classes(labels)?;
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
                class: None,
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
                context: None,
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

    fn row(label: Option<&str>, corrected_risk: Option<f64>) -> LabelledEvent {
        LabelledEvent {
            event: crate::events::InputEvent::Address(crate::events::AddressEvent {
                event_id: None,
                address: "a@b.c".into(),
                context: "sender".into(),
                account: None,
                observed_ms: None,
            }),
            threat: false,
            label: label.map(str::to_owned),
            corrected_risk,
            context: None,
        }
    }

    #[test]
    fn macro_f1_averages_the_named_classes() {
        let rows: Vec<LabelledEvent> = ["a", "a", "b", "b"]
            .iter()
            .map(|label| row(Some(label), None))
            .chain([row(None, None)])
            .collect();
        let predicted = |classes: [&str; 5]| -> Vec<Decision> {
            classes
                .iter()
                .map(|class| Decision {
                    class: Some((*class).to_owned()),
                    ..Decision::default()
                })
                .collect()
        };
        // Perfect on the named rows; the unlabelled row is not judged.
        assert_eq!(
            class_macro_f1(&rows, &predicted(["a", "a", "b", "b", "a"])),
            Some(1.0)
        );
        // a: 1 hit, 1 predicted, 2 actual → 2/3; b: 2 hits, 3 predicted, 2 actual → 4/5.
        let mixed = class_macro_f1(&rows, &predicted(["a", "b", "b", "b", "b"])).unwrap();
        assert!((mixed - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert_eq!(class_macro_f1(&rows[..2], &predicted(["a"; 5])), None);
    }

    #[test]
    fn risk_error_is_lower_is_better_with_the_margin_in_points() {
        let rows = [
            row(None, Some(80.0)),
            row(None, Some(20.0)),
            row(None, None),
        ];
        let scores = |values: [f64; 3]| -> Vec<Decision> {
            values
                .iter()
                .map(|&score| Decision {
                    score,
                    ..Decision::default()
                })
                .collect()
        };
        let champion = scores([70.0, 30.0, 99.0]);
        assert_eq!(risk_mae(&rows, &champion), Some(10.0));
        let verdict = |challenger: [f64; 3]| {
            judge(
                &[GateMetric::RiskMae],
                0.02,
                &[Slice {
                    name: "feedback_holdout",
                    rows: &rows,
                    champion: &champion,
                    challenger: &scores(challenger),
                }],
            )
        };
        assert!(
            verdict([71.0, 32.0, 0.0]).passed,
            "11.5 is within 2 points of 10"
        );
        let worse = verdict([60.0, 40.0, 0.0]);
        assert!(!worse.passed, "{}", worse.reason);
        assert!(worse
            .reason
            .contains("risk MAE 20.0000 vs champion 10.0000"));
    }

    #[test]
    fn recall_at_the_top_counts_threats_in_the_top_share() {
        // 40 rows, 2 threats; the top 5 % is 2 rows.
        let labels: Vec<bool> = (0..40).map(|i| i < 2).collect();
        let ranked: Vec<Decision> = (0..40)
            .map(|i| Decision {
                score: if i == 0 {
                    1.0
                } else if i == 1 {
                    0.5
                } else {
                    0.6 - i as f64 / 100.0
                },
                ..Decision::default()
            })
            .collect();
        // Threat 0 scores highest; threat 1 (0.5) is behind rows 2–9 (0.58 down to 0.51), so
        // the top two hold one threat.
        assert_eq!(recall_at_top(&labels, &ranked, 0.05), Some(0.5));
        assert_eq!(recall_at_top(&labels[..2], &ranked[..2], 0.05), None);
    }
}
