//! The email operator's output records: one per message, and per-user risk records. Field
//! names are documented in the operator's module doc; nothing here quotes mail text.

use std::collections::BTreeMap;

use crate::operators::email::config::EmailOperatorConfig;
use crate::operators::email::model::{EmailModel, MessageScore, DETECTORS};
use crate::operators::email::window::{Fold, WindowStats};
use crate::operators::{ExtraRecord, SourcedEvent};
use crate::scored::{Contribution, Scored, SourceCoordinates};

fn flag(value: bool) -> String {
    if value { "true" } else { "false" }.to_owned()
}

/// The scored event of one message.
#[allow(clippy::too_many_arguments)] // one record, assembled from everything the operator knows
pub fn message_record(
    config: &EmailOperatorConfig,
    model: &EmailModel,
    sourced: &SourcedEvent,
    user: &str,
    score: &MessageScore,
    fold: Fold,
    stats: Option<&WindowStats>,
    user_risk: Option<f64>,
    scored_at_ms: i64,
) -> Scored {
    let mut scores = BTreeMap::from([
        ("anomaly_score".to_owned(), score.anomaly),
        (
            "votes".to_owned(),
            score.votes.iter().filter(|v| **v).count() as f64,
        ),
    ]);
    let mut labels = BTreeMap::from([
        ("user".to_owned(), user.to_owned()),
        ("voted_anomaly".to_owned(), flag(score.voted)),
        (
            "window".to_owned(),
            match fold {
                Fold::Folded => "folded",
                Fold::Late => "late",
                Fold::Replayed => "replayed",
            }
            .to_owned(),
        ),
    ]);
    let mut thresholds_crossed = Vec::new();
    if score.voted {
        thresholds_crossed.push("voted_anomaly".to_owned());
    }
    let total_weight: f64 = config.weights.iter().sum::<f64>().max(1e-12);
    let mut detector_parts = Vec::new();
    for (index, name) in DETECTORS.iter().enumerate() {
        scores.insert((*name).to_owned(), score.normalized[index]);
        scores.insert(format!("{name}_raw"), score.raw[index]);
        labels.insert(format!("{name}_vote"), flag(score.votes[index]));
        if score.votes[index] {
            thresholds_crossed.push(format!("{name}_p{}", config.vote_percentile));
        }
        detector_parts.push(Contribution {
            name: format!("detector:{name}"),
            value: Some(score.normalized[index]),
            contribution: config.weights[index] * score.normalized[index] / total_weight,
            detail: Some(
                if score.votes[index] {
                    "votes"
                } else {
                    "no vote"
                }
                .to_owned(),
            ),
        });
    }
    if let Some(stats) = stats {
        scores.insert("user_message_risk".to_owned(), stats.message_risk);
        scores.insert("user_window_messages".to_owned(), stats.messages as f64);
    }
    if let Some(risk) = user_risk {
        scores.insert("user_risk".to_owned(), risk);
    }
    let mut explanation: Vec<Contribution> = model
        .top_columns(score, config.top_contributors)
        .into_iter()
        .map(|(name, value, error)| Contribution {
            name,
            value: Some(value),
            contribution: error,
            detail: Some("autoencoder reconstruction error".to_owned()),
        })
        .collect();
    explanation.extend(detector_parts);
    sourced
        .scored("email", &model.manifest.version, scored_at_ms)
        .with_scores(scores)
        .with_labels(labels)
        .with_explanation(explanation)
        .with_thresholds(thresholds_crossed)
}

/// A per-user risk record for `config.user_topic`.
#[allow(clippy::too_many_arguments)] // one record, assembled from everything the operator knows
pub fn user_record(
    config: &EmailOperatorConfig,
    model: &EmailModel,
    event_id: &str,
    source: SourceCoordinates,
    user: &str,
    stats: &WindowStats,
    behaviour: Option<f64>,
    risk: f64,
    trigger: &str,
    scored_at_ms: i64,
) -> ExtraRecord {
    let mut scores = BTreeMap::from([
        ("user_risk".to_owned(), risk),
        ("message_risk".to_owned(), stats.message_risk),
        ("messages".to_owned(), stats.messages as f64),
        ("mean_score".to_owned(), stats.mean_score),
        ("max_score".to_owned(), stats.max_score),
        ("top3_mean".to_owned(), stats.top3_mean),
        ("voted_anomalies".to_owned(), stats.voted_anomalies as f64),
        ("vote_surprise".to_owned(), stats.vote_surprise),
        ("recent_mean".to_owned(), stats.recent_mean),
        ("baseline".to_owned(), stats.baseline),
        ("trend".to_owned(), stats.trend),
    ]);
    let weights = config.message_weight + config.behaviour_weight;
    let message_share = if behaviour.is_some() {
        config.message_weight / weights
    } else {
        1.0
    };
    let mut explanation = vec![
        Contribution {
            name: "voted_anomalies".to_owned(),
            value: Some(stats.voted_anomalies as f64),
            contribution: message_share * 0.6 * stats.vote_surprise,
            detail: Some(format!(
                "{} of {} messages in the window voted anomalous",
                stats.voted_anomalies, stats.messages
            )),
        },
        Contribution {
            name: "top3_mean".to_owned(),
            value: Some(stats.top3_mean),
            contribution: message_share * 0.4 * stats.top3_mean,
            detail: Some("mean of the three highest message scores".to_owned()),
        },
    ];
    if let Some(behaviour) = behaviour {
        scores.insert("behaviour_score".to_owned(), behaviour);
        explanation.push(Contribution {
            name: "behaviour_score".to_owned(),
            value: Some(behaviour),
            contribution: config.behaviour_weight / weights * behaviour,
            detail: Some(format!("from {}", config.behaviour_topic)),
        });
    }
    explanation.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
    let mut thresholds_crossed = Vec::new();
    if stats.trend > 0.1 {
        thresholds_crossed.push("rising_trend".to_owned());
        explanation.push(Contribution {
            name: "trend".to_owned(),
            value: Some(stats.trend),
            contribution: 0.0,
            detail: Some("recent scores above the user's baseline".to_owned()),
        });
    }
    ExtraRecord {
        topic: config.user_topic.clone(),
        key: user.to_owned(),
        scored: Scored {
            event_id: event_id.to_owned(),
            source,
            operator: "email".to_owned(),
            model_version: model.manifest.version.clone(),
            scores,
            labels: BTreeMap::from([
                ("entity_type".to_owned(), "user".to_owned()),
                ("entity".to_owned(), user.to_owned()),
                (
                    "behaviour".to_owned(),
                    if behaviour.is_some() {
                        "present"
                    } else {
                        "absent"
                    }
                    .to_owned(),
                ),
                ("trigger".to_owned(), trigger.to_owned()),
            ]),
            explanation,
            thresholds_crossed,
            event_time_ms: None,
            scored_at_ms,
        },
    }
}
