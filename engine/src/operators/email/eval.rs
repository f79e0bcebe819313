//! `threatflow eval email`: replays a labelled mail folder in event-time order through the
//! same scoring and per-user windows the operator uses, and reports
//! - message level: ROC-AUC and PR-AUC (average precision) of the anomaly score, and precision
//!   / recall of the 2-of-3 vote, against the injected-message labels;
//! - user level: each user's peak risk over the replay (the highest the analyst would have
//!   seen), and the share of insiders (users with any injected message) among the top 5 % of
//!   users by that risk (`user_recall_at_5pct`), per scenario too.
//!
//! Labels come from `labels.csv` in the folder (`event_id,user,label,scenario`, as written
//! by `generate emails`). No behaviour feed is replayed: user risk is the message aggregate
//! (the operator's documented fallback).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::ml::metrics::{roc_auc, BinaryCounts};
use crate::operators::email::features::FeatureExtractor;
use crate::operators::email::message::read_mail_folder;
use crate::operators::email::model::{EmailModel, EnsembleSettings};
use crate::operators::email::synth::read_labels;
use crate::operators::email::user_key::user_key;
use crate::operators::email::window::{PartitionWindows, Sighting, WindowSettings};

/// Figures of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailEvaluation {
    /// Messages scored.
    pub messages: usize,
    /// Messages the parser refused (the operator dead-letters them).
    pub refused: usize,
    /// Injected messages among those scored.
    pub injected: usize,
    /// ROC-AUC of the message anomaly score.
    pub message_auc: f64,
    /// Average precision of the message anomaly score.
    pub message_pr_auc: f64,
    /// Precision of the 2-of-3 vote.
    pub vote_precision: f64,
    /// Recall of the 2-of-3 vote.
    pub vote_recall: f64,
    /// Share of normal messages voted anomalous.
    pub vote_false_positive_rate: f64,
    /// Users seen.
    pub users: usize,
    /// Users with an injected message.
    pub insiders: usize,
    /// Size of the top 5 % (⌈0.05 · users⌉).
    pub top_users: usize,
    /// Insiders in the top 5 % / insiders.
    pub user_recall_at_5pct: f64,
    /// ROC-AUC of peak user risk, insiders against the rest.
    pub user_auc: f64,
    /// Per scenario: insiders in the top 5 % / insiders.
    pub user_recall_by_scenario: BTreeMap<String, f64>,
    /// Insiders outside the top 5 %: user, rank (1 = riskiest) and peak risk.
    pub missed_insiders: Vec<(String, usize, f64)>,
    /// Late events dropped by the window.
    pub late_dropped: u64,
    /// Bytes of the window snapshot per active user at the end (JSON).
    pub snapshot_bytes_per_user: f64,
}

/// Average precision: Σ over positives, in descending score order, of precision at them.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let positives = labels.iter().filter(|l| **l).count();
    if positives == 0 {
        return 0.0;
    }
    let (mut hits, mut sum) = (0usize, 0.0);
    for (rank, &index) in order.iter().enumerate() {
        if labels[index] {
            hits += 1;
            sum += hits as f64 / (rank + 1) as f64;
        }
    }
    sum / positives as f64
}

/// Evaluates `model` on the labelled folder `dir`.
pub fn evaluate(
    model: &EmailModel,
    extractor: &FeatureExtractor,
    dir: &Path,
    ensemble: &EnsembleSettings,
    window: &WindowSettings,
) -> Result<EmailEvaluation, String> {
    let labels = read_labels(&dir.join("labels.csv"))?;
    let by_id: HashMap<&str, (u8, &str)> = labels
        .iter()
        .map(|row| (row.event_id.as_str(), (row.label, row.scenario.as_str())))
        .collect();
    let folder = read_mail_folder(dir).map_err(|e| e.to_string())?;
    let mut refused = 0;
    let mut messages = Vec::new();
    for entry in folder {
        match entry.message {
            Ok(message) => messages.push((entry.id, message)),
            Err(_) => refused += 1,
        }
    }
    messages.sort_by_key(|(_, m)| m.date_ms.unwrap_or(0));
    let mut windows = PartitionWindows::default();
    let mut scores = Vec::with_capacity(messages.len());
    let mut truth = Vec::with_capacity(messages.len());
    let mut votes = Vec::with_capacity(messages.len());
    let mut peak: HashMap<String, f64> = HashMap::new();
    let mut insiders: HashMap<String, String> = HashMap::new();
    for (offset, (id, message)) in messages.iter().enumerate() {
        let sent_ms = message.date_ms.unwrap_or(0);
        let score = model.score(extractor, message, sent_ms, ensemble);
        let Some(user) = user_key(&message.from) else {
            continue;
        };
        let (label, scenario) = by_id.get(id.as_str()).copied().unwrap_or((0, "unlabelled"));
        if label == 1 {
            insiders.insert(user.clone(), scenario.to_owned());
        }
        scores.push(score.anomaly);
        truth.push(label == 1);
        votes.push(score.voted);
        let sighting = Sighting {
            time_ms: sent_ms,
            score: score.anomaly as f32,
            voted: score.voted,
        };
        windows.fold(offset as i64, &user, sighting, window);
        // As the operator: expiry once per pipeline batch (500 events by default).
        if offset % 500 == 499 {
            windows.expire(window);
        }
        if let Some(stats) = windows.stats(&user, window) {
            let entry = peak.entry(user).or_insert(0.0);
            *entry = entry.max(stats.message_risk);
        }
    }
    windows.expire(window);
    let vote_counts = BinaryCounts::at_threshold(
        &votes
            .iter()
            .map(|v| f64::from(u8::from(*v)))
            .collect::<Vec<_>>(),
        &truth,
        0.5,
    );
    let mut ranked: Vec<(&String, f64)> = peak.iter().map(|(u, r)| (u, *r)).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let top_users = (ranked.len() as f64 * 0.05).ceil() as usize;
    let top: HashSet<&String> = ranked.iter().take(top_users).map(|(u, _)| *u).collect();
    let found = insiders.keys().filter(|u| top.contains(u)).count();
    let mut by_scenario: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (user, scenario) in &insiders {
        let entry = by_scenario.entry(scenario.clone()).or_default();
        entry.1 += 1;
        if top.contains(user) {
            entry.0 += 1;
        }
    }
    let user_scores: Vec<f64> = ranked.iter().map(|(_, r)| *r).collect();
    let user_truth: Vec<bool> = ranked
        .iter()
        .map(|(u, _)| insiders.contains_key(*u))
        .collect();
    let snapshot_bytes = serde_json::to_vec(&windows).map_or(0, |b| b.len());
    Ok(EmailEvaluation {
        messages: scores.len(),
        refused,
        injected: truth.iter().filter(|t| **t).count(),
        message_auc: roc_auc(&scores, &truth),
        message_pr_auc: average_precision(&scores, &truth),
        vote_precision: vote_counts.precision(),
        vote_recall: vote_counts.recall(),
        vote_false_positive_rate: vote_counts.false_positive_rate(),
        users: ranked.len(),
        insiders: insiders.len(),
        top_users,
        user_recall_at_5pct: if insiders.is_empty() {
            0.0
        } else {
            found as f64 / insiders.len() as f64
        },
        user_auc: roc_auc(&user_scores, &user_truth),
        user_recall_by_scenario: by_scenario
            .into_iter()
            .map(|(s, (hit, all))| (s, hit as f64 / all.max(1) as f64))
            .collect(),
        missed_insiders: ranked
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| insiders.contains_key(*u) && !top.contains(u))
            .map(|(rank, (u, r))| ((*u).clone(), rank + 1, *r))
            .collect(),
        late_dropped: windows.late_dropped,
        snapshot_bytes_per_user: snapshot_bytes as f64 / windows.users.len().max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_precision_by_hand() {
        // Ranked: P, N, P, N → (1/1 + 2/3) / 2.
        let scores = [0.9, 0.8, 0.7, 0.1];
        let labels = [true, false, true, false];
        assert!((average_precision(&scores, &labels) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(average_precision(&scores, &[false; 4]), 0.0);
    }
}
