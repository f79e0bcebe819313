//! The scored-event envelope every operator emits (`schemas/scored.avsc`).
//!
//! Invariant: `event_id` and `source` identify the input record, so a consumer can
//! de-duplicate the re-deliveries that at-least-once processing allows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka coordinates of an input record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCoordinates {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Kafka timestamp of the input, epoch ms.
    pub timestamp_ms: Option<i64>,
}

impl SourceCoordinates {
    /// The stable id derived from the coordinates: `<topic>-<partition>-<offset>`.
    pub fn derived_event_id(&self) -> String {
        format!("{}-{}-{}", self.topic, self.partition, self.offset)
    }
}

/// One reason behind a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Feature, rule or detector name.
    pub name: String,
    /// Feature value, when numeric.
    pub value: Option<f64>,
    /// Signed effect on the score.
    pub contribution: f64,
    /// Short note; never payload text.
    pub detail: Option<String>,
}

/// A scored, explained event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// Stable id of the input event.
    pub event_id: String,
    /// Where the input was read.
    pub source: SourceCoordinates,
    /// Operator name.
    pub operator: String,
    /// Model set version.
    pub model_version: String,
    /// Named numeric outputs.
    pub scores: BTreeMap<String, f64>,
    /// Named categorical outputs.
    pub labels: BTreeMap<String, String>,
    /// Contributions, strongest first.
    pub explanation: Vec<Contribution>,
    /// Operating points crossed.
    pub thresholds_crossed: Vec<String>,
    /// Event time from the payload, epoch ms.
    pub event_time_ms: Option<i64>,
    /// When it was scored, epoch ms.
    pub scored_at_ms: i64,
}

impl Scored {
    /// With these named numeric outputs.
    pub fn with_scores(mut self, scores: BTreeMap<String, f64>) -> Self {
        self.scores = scores;
        self
    }

    /// With these named categorical outputs.
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// With this explanation (strongest first).
    pub fn with_explanation(mut self, explanation: Vec<Contribution>) -> Self {
        self.explanation = explanation;
        self
    }

    /// With these operating points crossed.
    pub fn with_thresholds(mut self, thresholds_crossed: Vec<String>) -> Self {
        self.thresholds_crossed = thresholds_crossed;
        self
    }
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
