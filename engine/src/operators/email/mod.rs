//! The email operator: insider-threat anomaly scores per message and risk per user over a
//! sliding window, fused with a behaviour score from another stream.
//!
//! Per message (`email` events: parsed fields or raw RFC822, see [`message`]) it emits:
//! - `scores`: `anomaly_score` (0.4·AE + 0.3·one-class + 0.3·IF over normalised scores, weights
//!   from config), each detector's normalised score (`autoencoder`, `one_class`,
//!   `isolation_forest`) and raw score (`*_raw`), `votes`, and the sender's `user_risk` and
//!   `user_message_risk` after this message;
//! - `labels`: `user` (the sender's key, [`user_key`]), `voted_anomaly`, `<detector>_vote`,
//!   `window` (`folded`, `late` or `replayed`);
//! - `explanation`: the `top_contributors` features the autoencoder reconstructed worst
//!   (value = raw feature, contribution = squared error), then each detector's weighted part;
//! - `thresholds_crossed`: `voted_anomaly` and each voting detector.
//!
//! Per user, on `user_topic` (key = user key): `user_risk` = fusion of the window's
//! message-anomaly aggregate (see [`window`]) with the user's behaviour score from
//! `behaviour_topic` (see [`behaviour`]; absent or stale → the aggregate alone), the window
//! statistics and reasons — emitted when the risk moved by `user_min_change` since the user's
//! last record, and by a timer every `user_timer_ms` for users whose risk changed at all or
//! whose last record is older than `user_refresh_ms`.
//!
//! State: one [`window::PartitionWindows`] per input partition, checkpointed to sled
//! ([`crate::state`]) every `checkpoint_interval_ms`, on revoke and on shutdown, restored at
//! start; events below a restored snapshot's offset are scored but not folded in again. A
//! hard kill loses at most the folds since the last checkpoint from the state (their offsets
//! may already be committed). With several pods, a partition's state is local to the pod that
//! held it; a partition that moves starts from what the new pod has (rebuilt over a window).

pub mod behaviour;
pub mod config;
pub mod eval;
pub mod features;
pub mod message;
pub mod model;
#[cfg(test)]
mod operator_tests;
mod output;
pub mod synth;
pub mod train;
pub mod user_key;
pub mod window;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

pub use config::EmailOperatorConfig;

use crate::events::InputEvent;
use crate::operators::{
    model_version_dir, ExtraRecord, Operator, OperatorContext, OperatorError, Outcome, SourcedEvent,
};
use crate::scored::now_ms;
use crate::state::CheckpointStore;
use behaviour::BehaviourFeed;
use features::FeatureExtractor;
use message::MailMessage;
use model::{EmailModel, EnsembleSettings};
use window::{Fold, PartitionWindows, Sighting, WindowSettings};

/// Everything loaded at start.
struct Loaded {
    model: EmailModel,
    extractor: FeatureExtractor,
    ensemble: EnsembleSettings,
    window: WindowSettings,
}

/// The email operator.
#[derive(Default)]
pub struct EmailOperator {
    config: EmailOperatorConfig,
    loaded: Option<Loaded>,
    store: Option<CheckpointStore>,
    partitions: HashMap<i32, PartitionWindows>,
    behaviour: Option<BehaviourFeed>,
    last_checkpoint: Option<Instant>,
    next_timer: Option<Instant>,
    dirty: bool,
}

impl EmailOperator {
    /// The window state of `partition` (for tests and `/models`).
    pub fn partition_state(&self, partition: i32) -> Option<&PartitionWindows> {
        self.partitions.get(&partition)
    }

    fn load_model(&self, directory: &std::path::Path) -> Result<Loaded, OperatorError> {
        let model = EmailModel::load(directory).map_err(|e| {
            OperatorError::Model(format!("email model {}: {e}", directory.display()))
        })?;
        let settings = match &self.config.features {
            Some(features) => {
                if features.tfidf_buckets != model.manifest.feature_settings.tfidf_buckets {
                    return Err(OperatorError::Model(format!(
                        "operators.email.features.tfidf_buckets {} differs from the model's {}",
                        features.tfidf_buckets, model.manifest.feature_settings.tfidf_buckets
                    )));
                }
                if *features != model.manifest.feature_settings {
                    tracing::warn!(
                        "operators.email.features differ from the settings the email model was trained with"
                    );
                }
                features.clone()
            }
            None => model.manifest.feature_settings.clone(),
        };
        let extractor = FeatureExtractor::new(&settings).map_err(OperatorError::Model)?;
        Ok(Loaded {
            window: self.config.window_settings(&model),
            ensemble: self.config.ensemble_settings(),
            extractor,
            model,
        })
    }

    fn score_one(&mut self, sourced: &SourcedEvent, scored_at_ms: i64) -> Outcome {
        let InputEvent::Email(email) = &sourced.event else {
            return Outcome::Rejected {
                detail: format!("email operator got a {:?} event", sourced.event.kind()),
            };
        };
        let Some(loaded) = &self.loaded else {
            return Outcome::Rejected {
                detail: "email model not loaded".to_owned(),
            };
        };
        let message = match MailMessage::from_event(email) {
            Ok(message) => message,
            Err(error) => {
                return Outcome::Rejected {
                    detail: error.to_string(),
                }
            }
        };
        let Some(user) = user_key::user_key(&message.from) else {
            return Outcome::Rejected {
                detail: "sender address has no usable user key".to_owned(),
            };
        };
        let sent_ms = message
            .date_ms
            .or(sourced.source.timestamp_ms)
            .unwrap_or(scored_at_ms);
        let score = loaded
            .model
            .score(&loaded.extractor, &message, sent_ms, &loaded.ensemble);
        let windows = self.partitions.entry(sourced.source.partition).or_default();
        let fold = windows.fold(
            sourced.source.offset,
            &user,
            Sighting {
                time_ms: sent_ms,
                score: score.anomaly as f32,
                voted: score.voted,
            },
            &loaded.window,
        );
        if fold != Fold::Replayed {
            self.dirty = true;
        }
        if fold == Fold::Late {
            metrics::counter!(crate::telemetry::EMAIL_LATE_EVENTS).increment(1);
        }
        let stats = windows.stats(&user, &loaded.window);
        let behaviour = self.behaviour.as_ref().and_then(|feed| {
            feed.score(
                &user,
                sent_ms,
                i64::try_from(self.config.behaviour_max_age_ms).unwrap_or(i64::MAX),
            )
        });
        let user_risk = stats.map(|s| self.config.fuse(s.message_risk, behaviour));
        let scored = output::message_record(
            &self.config,
            &loaded.model,
            sourced,
            &user,
            &score,
            fold,
            stats.as_ref(),
            user_risk,
            scored_at_ms,
        );
        if score.voted {
            metrics::counter!(crate::telemetry::EMAIL_VOTED_ANOMALIES).increment(1);
        }
        let mut extra = Vec::new();
        if let (Some(stats), Some(risk)) = (stats, user_risk) {
            let window = windows.users.get_mut(&user);
            let due = window.as_ref().is_some_and(|w| {
                w.last_emitted
                    .is_none_or(|(last, _)| (risk - last).abs() >= self.config.user_min_change)
            });
            if due && !self.config.user_topic.is_empty() {
                if let Some(window) = window {
                    window.last_emitted = Some((risk, scored_at_ms));
                }
                extra.push(output::user_record(
                    &self.config,
                    &loaded.model,
                    &format!("{}:user:{user}", sourced.event_id),
                    sourced.source.clone(),
                    &user,
                    &stats,
                    behaviour,
                    risk,
                    "change",
                    scored_at_ms,
                ));
            }
        }
        Outcome::Scored {
            scored: Box::new(scored),
            extra,
        }
    }

    fn save_all(&mut self) -> Result<(), OperatorError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store
            .save_all(self.partitions.iter().map(|(p, w)| (*p, w)))
            .map_err(|e| OperatorError::Checkpoint(e.to_string()))?;
        self.dirty = false;
        self.last_checkpoint = Some(Instant::now());
        Ok(())
    }

    fn timer_records(&mut self, now_wall_ms: i64) -> Vec<ExtraRecord> {
        let (Some(loaded), false) = (&self.loaded, self.config.user_topic.is_empty()) else {
            return Vec::new();
        };
        let refresh = i64::try_from(self.config.user_refresh_ms).unwrap_or(i64::MAX);
        let max_age = i64::try_from(self.config.behaviour_max_age_ms).unwrap_or(i64::MAX);
        let mut records = Vec::new();
        for (partition, windows) in &mut self.partitions {
            let stream_time_ms = windows.stream_time_ms;
            for (user, window) in &mut windows.users {
                let Some(stats) = window.stats(stream_time_ms, &loaded.window) else {
                    continue;
                };
                let behaviour = self
                    .behaviour
                    .as_ref()
                    .and_then(|feed| feed.score(user, window.last_seen_ms, max_age));
                let risk = self.config.fuse(stats.message_risk, behaviour);
                let due = match window.last_emitted {
                    None => true,
                    Some((last, at)) => {
                        (risk - last).abs() > 1e-9 || (refresh > 0 && now_wall_ms - at >= refresh)
                    }
                };
                if !due {
                    continue;
                }
                window.last_emitted = Some((risk, now_wall_ms));
                self.dirty = true;
                let source = crate::scored::SourceCoordinates {
                    topic: self.config.user_topic.clone(),
                    partition: *partition,
                    offset: -1,
                    timestamp_ms: None,
                };
                records.push(output::user_record(
                    &self.config,
                    &loaded.model,
                    &format!("timer:{now_wall_ms}:user:{user}"),
                    source,
                    user,
                    &stats,
                    behaviour,
                    risk,
                    "timer",
                    now_wall_ms,
                ));
            }
        }
        records
    }
}

impl Operator for EmailOperator {
    fn name(&self) -> &'static str {
        "email"
    }

    fn model_version(&self) -> String {
        self.loaded
            .as_ref()
            .map(|l| l.model.manifest.version.clone())
            .unwrap_or_default()
    }

    fn start(&mut self, context: &OperatorContext<'_>) -> Result<(), OperatorError> {
        self.config = context.operators.email.clone();
        let directory = model_version_dir(context.model_dir, "email", &self.config.version)?;
        self.loaded = Some(self.load_model(&directory)?);
        let store = CheckpointStore::open(context.state_dir, "email", context.input_topic)
            .map_err(|e| OperatorError::Checkpoint(e.to_string()))?;
        for partition in store.partitions() {
            let restored: Option<PartitionWindows> = store
                .load(partition)
                .map_err(|e| OperatorError::Checkpoint(e.to_string()))?;
            if let Some(restored) = restored {
                tracing::info!(
                    partition,
                    users = restored.users.len(),
                    next_offset = restored.next_offset,
                    "restored email window state"
                );
                self.partitions.insert(partition, restored);
            }
        }
        self.store = Some(store);
        if let (false, Some(kafka)) = (self.config.behaviour_topic.is_empty(), context.kafka) {
            self.behaviour = Some(
                BehaviourFeed::start(
                    kafka,
                    &self.config.behaviour_topic,
                    &self.config.behaviour_field,
                )
                .map_err(|e| OperatorError::Model(format!("behaviour feed: {e}")))?,
            );
        }
        Ok(())
    }

    fn score_batch(&mut self, events: &[SourcedEvent]) -> Result<Vec<Outcome>, OperatorError> {
        if self.loaded.is_none() {
            return Err(OperatorError::Scoring("email model not loaded".to_owned()));
        }
        let scored_at_ms = now_ms();
        let outcomes = events
            .iter()
            .map(|event| self.score_one(event, scored_at_ms))
            .collect();
        // Expiry walks every user of a partition: once per batch, not per message (statistics
        // only count messages inside the window either way).
        if let Some(loaded) = &self.loaded {
            let touched: std::collections::HashSet<i32> =
                events.iter().map(|e| e.source.partition).collect();
            for partition in touched {
                if let Some(windows) = self.partitions.get_mut(&partition) {
                    windows.expire(&loaded.window);
                }
            }
        }
        let users: usize = self.partitions.values().map(|p| p.users.len()).sum();
        metrics::gauge!(crate::telemetry::EMAIL_ACTIVE_USERS).set(users as f64);
        Ok(outcomes)
    }

    fn tick(&mut self, now: SystemTime) -> Vec<ExtraRecord> {
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms);
        if self.dirty
            && self
                .last_checkpoint
                .is_none_or(|at| at.elapsed() >= interval)
        {
            if let Err(error) = self.save_all() {
                tracing::error!(%error, "email state checkpoint failed");
            }
        }
        let timer = Duration::from_millis(self.config.user_timer_ms);
        let due = self.next_timer.is_none_or(|at| Instant::now() >= at);
        if !due {
            return Vec::new();
        }
        self.next_timer = Some(Instant::now() + timer);
        let now_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.timer_records(now_ms)
    }

    fn checkpoint(&mut self) -> Result<(), OperatorError> {
        self.save_all()
    }

    fn model_info(&self) -> Option<serde_json::Value> {
        let loaded = self.loaded.as_ref()?;
        let manifest = &loaded.model.manifest;
        Some(serde_json::json!({
            "kind": manifest.kind,
            "version": manifest.version,
            "created_at": manifest.created_at,
            "features": manifest.features.len(),
            "detectors": manifest.detectors,
            "weights": loaded.ensemble.weights,
            "vote_percentile": loaded.ensemble.vote_percentile,
            "votes_needed": loaded.ensemble.votes_needed,
            "normal_vote_rate": loaded.window.normal_vote_rate,
            "one_class_support_vectors": loaded.model.one_class.support_count(),
            "window_ms": loaded.window.window_ms,
            "restored_partitions": self.partitions.len(),
            "behaviour_topic": self.config.behaviour_topic,
            "user_topic": self.config.user_topic,
        }))
    }

    fn swap_model(&mut self, version_dir: &std::path::Path) -> Result<(), OperatorError> {
        // The windows hold scores of the old model; they age out over one window.
        self.loaded = Some(self.load_model(version_dir)?);
        Ok(())
    }
}
