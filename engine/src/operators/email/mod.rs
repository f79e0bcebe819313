//! The email operator: insider-threat anomaly scores per message and risk per user over a
//! sliding window, fused with a behaviour score from another stream.
//!
//! Per message (`email` events: parsed fields or raw RFC822, see [`message`]) it emits:
//! - `scores`: `anomaly_score` (0.4·AE + 0.3·one-class + 0.3·IF over normalised scores, weights
//!   from config), each detector's normalised score (`autoencoder`, `one_class`,
//!   `isolation_forest`) and raw score (`*_raw`), `votes`, and the sender's `user_risk` and
//!   `user_message_risk` and `user_window_messages` (messages in its window) after this message;
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
//! State: one [`window::PartitionWindows`] per input partition — the pipeline's keyed
//! partition state, checkpointed to the binding's changelog topic and restored wherever the
//! partition goes (see [`crate::runtime::changelog`]); a re-delivered message is scored but
//! not folded into its user's window again.

pub mod behaviour;
pub mod commands;
pub mod config;
pub mod drift;
pub mod eval;
pub mod features;
pub mod learning;
pub mod message;
pub mod model;
#[cfg(test)]
mod operator_tests;
mod output;
pub mod synth;
pub mod train;
pub mod user_key;
pub mod window;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use config::EmailOperatorConfig;

use crate::events::{InputEvent, SchemaKind};
use crate::operators::table::{
    check_section, same_features, settings, DefaultWorkers, ModelSpec, OperatorConfig,
    OperatorSpec, ShadowKeys,
};
use crate::operators::{
    start_with_model, BindingRuntime, ExtraRecord, Operator, OperatorContext, OperatorError,
    Outcome, SourcedEvent,
};
use crate::runtime::{ModelLoader, ModelSlot, PartitionState, PartitionStates};
use crate::scored::now_ms;
use behaviour::BehaviourFeed;
use features::FeatureExtractor;
use message::MailMessage;
use model::{EmailModel, EnsembleSettings};
use window::{Fold, PartitionWindows, Sighting, WindowSettings};

/// The operator-table entry.
pub const SPEC: OperatorSpec = OperatorSpec {
    name: "email",
    summary: "emails: insider-threat anomaly ensemble per message and windowed risk per user",
    accepts: |schema| schema == SchemaKind::Email,
    default_workers: DefaultWorkers::PerCore,
    model: Some(ModelSpec {
        dir: "email",
        check_features: |manifest| {
            let settings: features::FeatureSettings = serde_json::from_value(
                manifest
                    .get("feature_settings")
                    .cloned()
                    .unwrap_or_default(),
            )
            .map_err(|error| format!("feature_settings: {error}"))?;
            same_features(manifest, "features", &settings.feature_names())
        },
        shadow: ShadowKeys {
            score: "anomaly_score",
            verdict: "voted_anomaly",
            class: "voted_anomaly",
        },
        drift: Some(crate::operators::table::DriftSpec {
            row: drift::drift_row,
            health: None,
        }),
        learning: Some(learning::LEARNING),
        feedback_export: None,
    }),
    stateful: true,
    check_config: |sections| check_section::<EmailOperatorConfig>(sections, "email"),
    config_schema: Some(|generator| generator.subschema_for::<EmailOperatorConfig>()),
    start,
    commands: commands::COMMANDS,
};

impl OperatorConfig for EmailOperatorConfig {
    fn validate(&self) -> Result<(), String> {
        EmailOperatorConfig::validate(self)
    }

    fn output_topics(&self) -> Vec<(String, String)> {
        vec![(
            "operators.email.user_topic".to_owned(),
            self.user_topic.clone(),
        )]
    }
}

fn start(context: &OperatorContext<'_>) -> Result<BindingRuntime, OperatorError> {
    let config: EmailOperatorConfig = settings(context, "email")?;
    if config.checkpoint_interval_ms.is_some() {
        tracing::warn!(
            "operators.email.checkpoint_interval_ms is ignored: keyed state is checkpointed every pipeline.state_checkpoint_ms"
        );
    }
    let behaviour = match (config.behaviour_topic.is_empty(), context.kafka) {
        (false, Some(kafka)) => Some(Arc::new(
            BehaviourFeed::start(kafka, &config.behaviour_topic, &config.behaviour_field)
                .map_err(|e| OperatorError::resource("behaviour feed", e))?,
        )),
        _ => None,
    };
    let version = config.version.clone();
    Ok(start_with_model(
        context,
        "email",
        &version,
        EmailLoader { config },
        move |slot| EmailOperator {
            slot,
            behaviour: behaviour.clone(),
            next_timer: None,
        },
    )?
    .with_state(
        new_windows,
        crate::operators::StateReads {
            entity_keys: window_keys,
            meta_keys: &[window::META_KEY],
        },
    ))
}

/// The window entry an email's features read: its sender's.
fn window_keys(event: &InputEvent) -> Vec<String> {
    let InputEvent::Email(email) = event else {
        return Vec::new();
    };
    MailMessage::from_event(email)
        .ok()
        .and_then(|message| user_key::user_key(&message.from))
        .into_iter()
        .collect()
}

/// Empty windows (the partition state of the email operator).
pub fn new_windows() -> Box<dyn PartitionState> {
    Box::new(PartitionWindows::default())
}

/// Loads email model versions for the operator's settings.
#[derive(Clone)]
pub struct EmailLoader {
    config: EmailOperatorConfig,
}

/// Everything scoring derives from one model version.
pub struct Loaded {
    model: EmailModel,
    extractor: FeatureExtractor,
    ensemble: EnsembleSettings,
    window: WindowSettings,
}

impl ModelLoader for EmailLoader {
    type Model = Loaded;

    fn load(&self, directory: &Path) -> Result<Loaded, OperatorError> {
        let model = EmailModel::load(directory).map_err(OperatorError::model_at(directory))?;
        let settings = match &self.config.features {
            Some(features) => {
                if features.tfidf_buckets != model.manifest.feature_settings.tfidf_buckets {
                    return Err(OperatorError::Config(format!(
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
        let extractor = FeatureExtractor::new(&settings).map_err(OperatorError::Config)?;
        Ok(Loaded {
            window: self.config.window_settings(&model),
            ensemble: self.config.ensemble_settings(),
            extractor,
            model,
        })
    }

    fn version(loaded: &Loaded) -> String {
        loaded.model.manifest.version.clone()
    }

    fn describe(loaded: &Loaded) -> serde_json::Value {
        let manifest = &loaded.model.manifest;
        serde_json::json!({
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
        })
    }
}

/// One worker's email scorer; see the module doc.
pub struct EmailOperator {
    slot: Arc<ModelSlot<EmailLoader>>,
    behaviour: Option<Arc<BehaviourFeed>>,
    next_timer: Option<Instant>,
}

impl EmailOperator {
    fn config(&self) -> &EmailOperatorConfig {
        &self.slot.loader().config
    }

    fn score_one(
        &self,
        loaded: &Loaded,
        windows: &mut PartitionWindows,
        sourced: &SourcedEvent,
        scored_at_ms: i64,
    ) -> Outcome {
        let config = self.config();
        let InputEvent::Email(email) = &sourced.event else {
            return Outcome::Rejected {
                detail: format!("email operator got a {:?} event", sourced.event.kind()),
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
        if fold == Fold::Late {
            metrics::counter!(crate::telemetry::EMAIL_LATE_EVENTS).increment(1);
        }
        let stats = windows.stats(&user, &loaded.window);
        let behaviour = self.behaviour.as_ref().and_then(|feed| {
            feed.score(
                &user,
                sent_ms,
                i64::try_from(config.behaviour_max_age_ms).unwrap_or(i64::MAX),
            )
        });
        let user_risk = stats.map(|s| config.fuse(s.message_risk, behaviour));
        let scored = output::message_record(
            config,
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
            let window = windows.users.get_mut(user.as_str());
            let due = window.as_ref().is_some_and(|w| {
                w.last_emitted
                    .is_none_or(|(last, _)| (risk - last).abs() >= config.user_min_change)
            });
            if due && !config.user_topic.is_empty() {
                if let Some(window) = window {
                    window.last_emitted = Some((risk, scored_at_ms));
                }
                windows.touch(&user);
                extra.push(output::user_record(
                    config,
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

    fn timer_records(&self, state: &mut PartitionStates, now_wall_ms: i64) -> Vec<ExtraRecord> {
        let config = self.config();
        if config.user_topic.is_empty() {
            return Vec::new();
        }
        let loaded = self.slot.current();
        let loaded = &loaded.model;
        let refresh = i64::try_from(config.user_refresh_ms).unwrap_or(i64::MAX);
        let max_age = i64::try_from(config.behaviour_max_age_ms).unwrap_or(i64::MAX);
        let mut records = Vec::new();
        for (partition, windows) in state.iter_mut::<PartitionWindows>() {
            let stream_time_ms = windows.stream_time_ms;
            let mut touched = Vec::new();
            for (user, window) in &mut windows.users {
                let Some(stats) = window.stats(stream_time_ms, &loaded.window) else {
                    continue;
                };
                let behaviour = self
                    .behaviour
                    .as_ref()
                    .and_then(|feed| feed.score(user, window.last_seen_ms, max_age));
                let risk = config.fuse(stats.message_risk, behaviour);
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
                touched.push(user.clone());
                let source = crate::scored::SourceCoordinates {
                    topic: config.user_topic.clone(),
                    partition,
                    offset: -1,
                    timestamp_ms: None,
                };
                records.push(output::user_record(
                    config,
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
            for user in touched {
                windows.touch(&user);
            }
        }
        records
    }
}

impl Operator for EmailOperator {
    fn name(&self) -> &'static str {
        "email"
    }

    fn score_batch(
        &mut self,
        events: &[SourcedEvent],
        state: &mut PartitionStates,
    ) -> Result<Vec<Outcome>, OperatorError> {
        let loaded = self.slot.current();
        let loaded = &loaded.model;
        let scored_at_ms = now_ms();
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let windows = state
                .partition::<PartitionWindows>(event.source.partition)
                .ok_or_else(|| OperatorError::scoring("email window state missing"))?;
            outcomes.push(self.score_one(loaded, windows, event, scored_at_ms));
        }
        // Expiry walks every user of a partition: once per batch, not per message (statistics
        // only count messages inside the window either way).
        let mut touched: Vec<i32> = events.iter().map(|e| e.source.partition).collect();
        touched.sort_unstable();
        touched.dedup();
        for partition in touched {
            if let Some(windows) = state.partition::<PartitionWindows>(partition) {
                windows.expire(&loaded.window);
            }
        }
        metrics::gauge!(crate::telemetry::EMAIL_ACTIVE_USERS).set(state.entities() as f64);
        Ok(outcomes)
    }

    fn tick(&mut self, now: SystemTime, state: &mut PartitionStates) -> Vec<ExtraRecord> {
        let timer = Duration::from_millis(self.config().user_timer_ms);
        let due = self.next_timer.is_none_or(|at| Instant::now() >= at);
        if !due {
            return Vec::new();
        }
        self.next_timer = Some(Instant::now() + timer);
        let now_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.timer_records(state, now_ms)
    }
}
