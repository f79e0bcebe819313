//! `eval alert`'s triage-depth figures: how correlation groups generated intrusions, and what
//! each stage adds to the final risk.
//!
//! **Incidents** — alerts streamed in order through the scorer and the correlation of the
//! operator ([`IncidentBook`]); the truth is each intrusion's `campaign`:
//! - `intrusions`: campaigns with at least `min_tactics` distinct tactics (findable at all);
//! - `recall`: share of those whose correlated alerts (those at or above the risk floor)
//!   all ended in one declared incident;
//! - `purity`: mean, over declared incidents, of the share of members from the incident's
//!   most common campaign (non-intrusion alerts count as "no campaign");
//! - `false_incidents`: declared incidents whose most common member is no campaign, and
//!   `false_from_lookalikes`, those mostly made of look-alike bursts;
//! - `median_alerts_to_incident`: for recalled intrusions, the alerts of the intrusion seen
//!   up to the one that made it an incident;
//! - `largest_incident`: members of the largest declared incident.
//!
//! **Stages** — R², MAE of the final risk against the labelled risk, and the recall of true
//! positives at final risk ≥ 60, with every stage and with one switched off: correlation
//! (the rules' `group_*` facts stay 0), the intel stage (an empty indicator set), the rule
//! layer (rule weight 0), the model (ML weight 0).

use std::collections::HashMap;

use serde::Serialize;

use crate::events::AlertEvent;
use crate::ml::metrics::{mean_absolute_error, r_squared};
use crate::operators::alert::history::{entity_keys, EntityHistory};
use crate::operators::alert::incidents::{CorrelationSettings, Joined};
use crate::operators::alert::intel::IntelSet;
use crate::operators::alert::scorer::{AlertScore, AlertScorer, BlendWeights};
use crate::operators::alert::synth::LabeledAlert;

/// Correlation figures at one setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentFigures {
    /// Entity kinds joined on (`user,host,ip`).
    pub entities: String,
    /// Window, hours.
    pub window_hours: f64,
    /// Tactics that make an incident.
    pub min_tactics: usize,
    /// Findable intrusions.
    pub intrusions: usize,
    /// Share found as one incident.
    pub recall: f64,
    /// Declared incidents.
    pub incidents: usize,
    /// Mean majority-campaign share of declared incidents.
    pub purity: f64,
    /// Declared incidents of no campaign.
    pub false_incidents: usize,
    /// Of those, incidents made mostly of benign look-alike bursts (patch days, the SOC's
    /// own scanner: `generate alerts --lookalikes`).
    pub false_from_lookalikes: usize,
    /// Median intrusion alerts seen before it became an incident.
    pub median_alerts_to_incident: f64,
    /// Members of the largest declared incident (unrelated activity chained into one
    /// group shows here, where the mean purity hides it).
    pub largest_incident: usize,
}

/// Final-risk figures with one stage switched off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageFigures {
    /// `all stages`, `without intel`, `without rules`, `without model`.
    pub stages: String,
    /// R² of the final risk.
    pub final_risk_r2: f64,
    /// MAE of the final risk.
    pub final_risk_mae: f64,
    /// True positives with final risk ≥ 60, share.
    pub true_positive_recall_at_60: f64,
    /// Alerts of every other disposition with final risk ≥ 60, share (the analysts' extra
    /// load).
    pub other_rate_at_60: f64,
}

/// Scores the stream's `offset`-th alert correlated, as the operator does, then closes the
/// groups idle at its time (the operator does that at each checkpoint).
fn correlate(
    scorer: &AlertScorer,
    history: &mut EntityHistory,
    alert: &AlertEvent,
    offset: usize,
    settings: &CorrelationSettings,
) -> (AlertScore, Option<Joined>) {
    let scored = scorer.score_correlated(
        history,
        alert,
        offset as i64,
        &format!("a{offset}"),
        &entity_keys(alert),
        settings,
    );
    history
        .incidents
        .expire(alert.last_seen_ms, settings.window_ms);
    scored
}

/// Correlation figures of `alerts` scored by `scorer` (see the module doc).
pub fn incident_figures(
    scorer: &AlertScorer,
    alerts: &[LabeledAlert],
    settings: &CorrelationSettings,
) -> IncidentFigures {
    let mut history = EntityHistory::default();
    // Per alert: its group, and whether it declared that group.
    let mut group_of: Vec<Option<String>> = Vec::with_capacity(alerts.len());
    let mut declared_by: HashMap<String, usize> = HashMap::new();
    for (offset, labeled) in alerts.iter().enumerate() {
        let (_, joined) = correlate(scorer, &mut history, &labeled.alert, offset, settings);
        if let Some(joined) = &joined {
            if joined.declared {
                declared_by.entry(joined.id.clone()).or_insert(offset);
            }
        }
        group_of.push(joined.map(|joined| joined.id));
    }
    let mut by_campaign: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, labeled) in alerts.iter().enumerate() {
        if let Some(campaign) = &labeled.campaign {
            by_campaign.entry(campaign).or_default().push(index);
        }
    }
    let (mut intrusions, mut recalled, mut to_incident) = (0, 0, Vec::new());
    for members in by_campaign.values() {
        let tactics: std::collections::HashSet<&String> = members
            .iter()
            .flat_map(|&i| &alerts[i].alert.tactics)
            .collect();
        if tactics.len() < settings.min_tactics {
            continue;
        }
        intrusions += 1;
        // Alerts below the correlation's risk floor are not correlated; the rest must be
        // one incident.
        let correlated: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| group_of[i].is_some())
            .collect();
        let Some(group) = correlated.first().and_then(|&i| group_of[i].as_ref()) else {
            continue;
        };
        let together = correlated
            .iter()
            .all(|&i| group_of[i].as_ref() == Some(group));
        if let (true, Some(&declared_at)) = (together, declared_by.get(group)) {
            recalled += 1;
            to_incident.push(members.iter().filter(|&&i| i <= declared_at).count() as f64);
        }
    }
    let mut members_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, group) in group_of.iter().enumerate() {
        if let Some(group) = group {
            members_of.entry(group).or_default().push(index);
        }
    }
    let (mut purities, mut false_incidents, mut false_from_lookalikes) = (Vec::new(), 0, 0);
    let mut largest = 0;
    for group in declared_by.keys() {
        let members = &members_of[group.as_str()];
        let mut counts: HashMap<Option<&str>, usize> = HashMap::new();
        for &i in members {
            *counts.entry(alerts[i].campaign.as_deref()).or_default() += 1;
        }
        let (majority, count) = counts
            .into_iter()
            .max_by_key(|(label, count)| (*count, label.is_some()))
            .unwrap_or((None, 0));
        purities.push(count as f64 / members.len().max(1) as f64);
        largest = largest.max(members.len());
        if majority.is_none() {
            false_incidents += 1;
            let lookalike = members
                .iter()
                .filter(|&&i| matches!(alerts[i].scenario.as_str(), "patch_day" | "owned_scanner"))
                .count();
            if lookalike * 2 > members.len() {
                false_from_lookalikes += 1;
            }
        }
    }
    to_incident.sort_by(f64::total_cmp);
    let kinds = settings.entities;
    IncidentFigures {
        entities: [
            ("user", kinds.users),
            ("host", kinds.hosts),
            ("ip", kinds.ips),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(","),
        window_hours: settings.window_ms as f64 / 3_600_000.0,
        min_tactics: settings.min_tactics,
        intrusions,
        recall: recalled as f64 / intrusions.max(1) as f64,
        incidents: declared_by.len(),
        purity: purities.iter().sum::<f64>() / purities.len().max(1) as f64,
        false_incidents,
        false_from_lookalikes,
        median_alerts_to_incident: to_incident
            .get(to_incident.len() / 2)
            .copied()
            .unwrap_or(0.0),
        largest_incident: largest,
    }
}

/// Final-risk figures of `scorer` on `alerts` (warm-up rows feed history, are not counted),
/// correlated under `correlation` as the operator does (its `group_*` rule facts), or not.
pub fn stage_figures(
    stages: &str,
    scorer: &AlertScorer,
    alerts: &[LabeledAlert],
    correlation: Option<&CorrelationSettings>,
) -> StageFigures {
    let mut history = EntityHistory::default();
    let (mut truth, mut predicted) = (Vec::new(), Vec::new());
    let (mut positives, mut found) = (0usize, 0usize);
    let (mut negatives, mut raised) = (0usize, 0usize);
    for (offset, labeled) in alerts.iter().enumerate() {
        let alert = &labeled.alert;
        let score = match correlation {
            Some(settings) => correlate(scorer, &mut history, alert, offset, settings).0,
            None => scorer.score(&mut history, alert, offset as i64),
        };
        if labeled.warmup {
            continue;
        }
        truth.push(labeled.risk);
        predicted.push(score.risk);
        if labeled.disposition == "true_positive" {
            positives += 1;
            found += usize::from(score.risk >= 60.0);
        } else {
            negatives += 1;
            raised += usize::from(score.risk >= 60.0);
        }
    }
    StageFigures {
        stages: stages.to_owned(),
        final_risk_r2: r_squared(&truth, &predicted),
        final_risk_mae: mean_absolute_error(&truth, &predicted),
        true_positive_recall_at_60: found as f64 / positives.max(1) as f64,
        other_rate_at_60: raised as f64 / negatives.max(1) as f64,
    }
}

/// The stage table: all stages (correlated under `correlation`), then each switched off,
/// from the scorer `make` builds for a blend.
pub fn stage_table(
    make: impl Fn(BlendWeights) -> AlertScorer,
    weights: BlendWeights,
    alerts: &[LabeledAlert],
    correlation: &CorrelationSettings,
) -> Vec<StageFigures> {
    let empty = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(IntelSet::default()));
    let on = Some(correlation);
    vec![
        stage_figures("all stages", &make(weights), alerts, on),
        stage_figures("without correlation", &make(weights), alerts, None),
        stage_figures(
            "without intel",
            &make(weights).with_intel(empty),
            alerts,
            on,
        ),
        stage_figures(
            "without rules",
            &make(BlendWeights {
                rules: 0.0,
                ..weights
            }),
            alerts,
            on,
        ),
        stage_figures(
            "without model",
            &make(BlendWeights { ml: 0.0, ..weights }),
            alerts,
            on,
        ),
    ]
}
