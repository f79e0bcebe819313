//! The durable training buffer: per operator, the labelled rows the trainer learns from.
//!
//! One sled database; per operator a `rows/<op>` tree (event id → row, so a later verdict on
//! the same event replaces the earlier one: the latest verdict wins) and an `order/<op>` tree
//! (insertion sequence → event id) that finds the oldest rows when the buffer is over its row
//! bound or its rows are past their age bound. `meta` holds each operator's next sequence and
//! the sequence its last training used, so "rows since the last training" survives restarts.
//! The intake commits a verdict's offset only after [`TrainingBuffer::flush`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::events::SchemaKind;

/// One labelled row: the input as the engine read it and the analyst's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    /// The scored event's id.
    pub event_id: String,
    /// The input's schema.
    pub schema: SchemaKind,
    /// The input as a raw Avro datum of its bundled schema (base64 in the stored JSON).
    #[serde(with = "base64_vec")]
    pub input: Vec<u8>,
    /// The analyst says it is a threat.
    pub threat: bool,
    /// The analyst's class (attack name or category), if given.
    pub label: Option<String>,
    /// For alerts: the risk it deserved, if given.
    pub corrected_risk: Option<f64>,
    /// When the verdict was given, epoch ms.
    pub verdict_ms: i64,
    /// The version that scored the event.
    pub model_version: String,
    /// Held out for the gate (by a hash of the event id); never trained on.
    pub holdout: bool,
    /// Insertion sequence (set by the buffer).
    #[serde(default)]
    pub seq: u64,
    /// For stateful operators: the partition state rebuilt at join time
    /// ([`crate::learning::ContextBuilder`]).
    #[serde(default)]
    pub context: Option<serde_json::Value>,
}

impl TrainingRow {
    /// The input event.
    pub fn event(&self) -> Result<crate::events::InputEvent, String> {
        crate::decode::decode_avro(self.schema, &self.input).map_err(|failure| failure.detail)
    }
}

mod base64_vec {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether `event_id` belongs to the gate's held-out slice (stable across restarts and pods).
pub fn is_holdout(event_id: &str, fraction: f64) -> bool {
    (crate::drift::category_code(event_id) / (1u64 << 52) as f64) < fraction
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new event.
    New,
    /// A later verdict replaced the row.
    Replaced,
    /// An earlier verdict than the stored one: ignored.
    Stale,
}

/// Errors of the buffer's storage.
#[derive(Debug, thiserror::Error)]
#[error("training buffer: {0}")]
pub struct BufferError(String);

fn storage(error: impl std::fmt::Display) -> BufferError {
    BufferError(error.to_string())
}

/// The buffer.
pub struct TrainingBuffer {
    db: sled::Db,
    meta: sled::Tree,
}

impl TrainingBuffer {
    /// Opens (or creates) the buffer in `directory`.
    /// The directory's lock is retried for up to 10 s: sled releases it from its background
    /// flusher after the previous handle is dropped, not at the drop.
    pub fn open(directory: &Path) -> Result<Self, BufferError> {
        let mut attempts = 0;
        let db = loop {
            match sled::open(directory) {
                Ok(db) => break db,
                // sled reports the held lock as a plain I/O error with this text.
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock") && attempts < 200 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(error) => return Err(storage(error)),
            }
        };
        let meta = db.open_tree("meta").map_err(storage)?;
        Ok(Self { db, meta })
    }

    fn trees(&self, operator: &str) -> Result<(sled::Tree, sled::Tree), BufferError> {
        Ok((
            self.db
                .open_tree(format!("rows/{operator}"))
                .map_err(storage)?,
            self.db
                .open_tree(format!("order/{operator}"))
                .map_err(storage)?,
        ))
    }

    fn counter(&self, operator: &str, name: &str) -> Result<u64, BufferError> {
        Ok(self
            .meta
            .get(format!("{operator}/{name}"))
            .map_err(storage)?
            .and_then(|bytes| bytes.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    fn set_counter(&self, operator: &str, name: &str, value: u64) -> Result<(), BufferError> {
        self.meta
            .insert(format!("{operator}/{name}"), &value.to_be_bytes())
            .map_err(storage)?;
        Ok(())
    }

    /// Adds `row` to `operator`'s buffer (the latest verdict on an event wins), then drops
    /// the oldest rows beyond `max_rows` and rows older than `max_age_ms` before `now_ms`.
    pub fn insert(
        &self,
        operator: &str,
        mut row: TrainingRow,
        max_rows: usize,
        max_age_ms: i64,
        now_ms: i64,
    ) -> Result<Inserted, BufferError> {
        let (rows, order) = self.trees(operator)?;
        let previous = match rows.get(&row.event_id).map_err(storage)? {
            Some(bytes) => Some(serde_json::from_slice::<TrainingRow>(&bytes).map_err(storage)?),
            None => None,
        };
        if previous
            .as_ref()
            .is_some_and(|stored| stored.verdict_ms > row.verdict_ms)
        {
            return Ok(Inserted::Stale);
        }
        if let Some(stored) = &previous {
            order.remove(stored.seq.to_be_bytes()).map_err(storage)?;
        }
        let seq = self.counter(operator, "next_seq")? + 1;
        self.set_counter(operator, "next_seq", seq)?;
        row.seq = seq;
        let encoded = serde_json::to_vec(&row).map_err(storage)?;
        rows.insert(&row.event_id, encoded).map_err(storage)?;
        order
            .insert(seq.to_be_bytes(), row.event_id.as_bytes())
            .map_err(storage)?;
        self.trim(operator, max_rows, now_ms.saturating_sub(max_age_ms))?;
        Ok(if previous.is_some() {
            Inserted::Replaced
        } else {
            Inserted::New
        })
    }

    fn trim(&self, operator: &str, max_rows: usize, oldest_ms: i64) -> Result<(), BufferError> {
        let (rows, order) = self.trees(operator)?;
        let mut excess = rows.len().saturating_sub(max_rows);
        for entry in order.iter() {
            let (seq, event_id) = entry.map_err(storage)?;
            let expired = match rows.get(&event_id).map_err(storage)? {
                Some(bytes) => serde_json::from_slice::<TrainingRow>(&bytes)
                    .map_or(true, |row| row.verdict_ms < oldest_ms),
                None => true,
            };
            if excess == 0 && !expired {
                break;
            }
            order.remove(seq).map_err(storage)?;
            rows.remove(&event_id).map_err(storage)?;
            excess = excess.saturating_sub(1);
        }
        Ok(())
    }

    /// Every row of `operator`, oldest first.
    pub fn rows(&self, operator: &str) -> Result<Vec<TrainingRow>, BufferError> {
        let (rows, order) = self.trees(operator)?;
        let mut found = Vec::with_capacity(rows.len());
        for entry in order.iter() {
            let (_, event_id) = entry.map_err(storage)?;
            if let Some(bytes) = rows.get(&event_id).map_err(storage)? {
                found.push(serde_json::from_slice(&bytes).map_err(storage)?);
            }
        }
        Ok(found)
    }

    /// Rows of `operator`.
    pub fn len(&self, operator: &str) -> Result<usize, BufferError> {
        Ok(self.trees(operator)?.0.len())
    }

    /// Whether `operator` has no rows.
    pub fn is_empty(&self, operator: &str) -> Result<bool, BufferError> {
        Ok(self.len(operator)? == 0)
    }

    /// Rows added or replaced since the last training of `operator`.
    pub fn new_since_training(&self, operator: &str) -> Result<usize, BufferError> {
        let trained = self.counter(operator, "trained_seq")?;
        let (_, order) = self.trees(operator)?;
        Ok(order.range((trained + 1).to_be_bytes()..).count())
    }

    /// The newest sequence of `operator` (to mark a training's rows with).
    pub fn newest_seq(&self, operator: &str) -> Result<u64, BufferError> {
        self.counter(operator, "next_seq")
    }

    /// Records that a training used the rows up to `seq`.
    pub fn mark_trained(&self, operator: &str, seq: u64) -> Result<(), BufferError> {
        self.set_counter(operator, "trained_seq", seq)
    }

    /// Writes everything to disk (before the verdicts' offsets are committed).
    pub fn flush(&self) -> Result<(), BufferError> {
        self.db.flush().map_err(storage)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: &str, verdict_ms: i64, threat: bool) -> TrainingRow {
        TrainingRow {
            event_id: event_id.to_owned(),
            schema: SchemaKind::Address,
            input: vec![1, 2, 3],
            threat,
            label: None,
            corrected_risk: None,
            verdict_ms,
            model_version: "v1".into(),
            holdout: false,
            seq: 0,
            context: Some(serde_json::json!({"alerts_24h": 2})),
        }
    }

    #[test]
    fn latest_verdict_wins_and_rows_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = TrainingBuffer::open(dir.path()).unwrap();
        let add = |r| buffer.insert("flow", r, 100, 1_000_000, 10_000).unwrap();
        assert_eq!(add(row("a", 10, true)), Inserted::New);
        assert_eq!(add(row("b", 10, true)), Inserted::New);
        assert_eq!(add(row("a", 20, false)), Inserted::Replaced);
        assert_eq!(add(row("a", 15, true)), Inserted::Stale);
        assert_eq!(buffer.len("flow").unwrap(), 2);
        assert_eq!(buffer.new_since_training("flow").unwrap(), 2);
        buffer
            .mark_trained("flow", buffer.newest_seq("flow").unwrap())
            .unwrap();
        assert_eq!(buffer.new_since_training("flow").unwrap(), 0);
        add(row("c", 30, true));
        buffer.flush().unwrap();
        drop(buffer);
        let buffer = TrainingBuffer::open(dir.path()).unwrap();
        let rows = buffer.rows("flow").unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert!(!rows[1].threat, "the later verdict on a wins");
        assert_eq!(rows[0].input, vec![1, 2, 3]);
        assert_eq!(buffer.new_since_training("flow").unwrap(), 1);
        assert_eq!(buffer.len("alert").unwrap(), 0);
    }

    #[test]
    fn bounds_drop_the_oldest_rows_and_the_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = TrainingBuffer::open(dir.path()).unwrap();
        for i in 0..10 {
            buffer
                .insert(
                    "flow",
                    row(&format!("e{i}"), 1000 + i, true),
                    5,
                    1_000_000,
                    2000,
                )
                .unwrap();
        }
        let ids: Vec<String> = buffer
            .rows("flow")
            .unwrap()
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(ids, ["e5", "e6", "e7", "e8", "e9"]);
        // Age: everything before 1008 goes once "now" moves on.
        buffer
            .insert("flow", row("late", 5000, false), 5, 3000 - 1008, 3000)
            .unwrap();
        let ids: Vec<String> = buffer
            .rows("flow")
            .unwrap()
            .into_iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(ids, ["e8", "e9", "late"]);
    }

    #[test]
    fn the_holdout_is_stable_and_near_its_fraction() {
        let held = (0..10_000)
            .filter(|i| is_holdout(&format!("flows-0-{i}"), 0.2))
            .count();
        assert!((1700..2300).contains(&held), "{held}");
        assert_eq!(is_holdout("x-1", 0.2), is_holdout("x-1", 0.2));
    }
}
