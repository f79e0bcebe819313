//! A read-only view of a stateful binding's keyed state for the scoring API.
//!
//! The keyed state belongs to the worker threads (no locks on the scoring path), so the API
//! cannot read it in place. Instead every worker publishes what it makes durable: the
//! entries a checkpoint wrote once the broker acknowledged them, the whole partition after a
//! restore, and the partition's removal on revoke. The API builds a *scratch* state from the
//! entries an event reads ([`StateView::scratch`]), scores the event against it and throws
//! it away: an API event never folds into the stream's state.
//!
//! Freshness: the view lags the workers' state by at most `pipeline.state_checkpoint_ms`
//! (the state a restarted pod would resume from). Memory: one encoded copy of the entries of
//! the partitions this process holds.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::runtime::{PartitionState, StateChange, StateFactory};

/// The entries of the partitions this process holds, by partition then entity key.
#[derive(Debug, Default)]
pub struct StateView {
    partitions: RwLock<HashMap<i32, HashMap<String, Vec<u8>>>>,
}

impl StateView {
    /// Applies a checkpoint's changes of `partition` (a `None` value removes the key).
    pub fn publish(&self, partition: i32, changes: &[StateChange]) {
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        let entries = partitions.entry(partition).or_default();
        for (key, value) in changes {
            match value {
                Some(value) => {
                    entries.insert(key.clone(), value.clone());
                }
                None => {
                    entries.remove(key);
                }
            }
        }
    }

    /// Replaces `partition`'s entries with a full snapshot (after a restore).
    pub fn replace(&self, partition: i32, snapshot: Vec<(String, Vec<u8>)>) {
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        partitions.insert(partition, snapshot.into_iter().collect());
    }

    /// Forgets `partition` (revoked: another process holds it now).
    pub fn drop_partition(&self, partition: i32) {
        let mut partitions = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        partitions.remove(&partition);
    }

    /// A fresh state from `factory` holding the entries of `keys` found in any held partition
    /// (the first partition that has a key wins; the stream keys entities to one partition),
    /// plus every partition's `meta_keys` entries (partition-wide facts such as the event-time
    /// watermark, which the states merge by taking the latest). Entries that do not decode are
    /// skipped: the event is then scored as if the entity were new.
    pub fn scratch(
        &self,
        factory: StateFactory,
        keys: &[String],
        meta_keys: &[&str],
    ) -> Box<dyn PartitionState> {
        let mut state = factory();
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if let Some(value) = partitions.values().find_map(|entries| entries.get(key)) {
                if let Err(error) = state.restore_entry(key, Some(value)) {
                    tracing::warn!(%error, "state entry unusable for API scoring; skipped");
                }
            }
        }
        for entries in partitions.values() {
            for key in meta_keys {
                if let Some(value) = entries.get(*key) {
                    let _ = state.restore_entry(key, Some(value));
                }
            }
        }
        state
    }

    /// Entries held over all partitions.
    pub fn len(&self) -> usize {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions.values().map(HashMap::len).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::any::Any;

    /// A state that records the entries it was given.
    #[derive(Default)]
    struct Recorded(HashMap<String, Vec<u8>>);

    impl PartitionState for Recorded {
        fn take_changes(&mut self) -> Vec<StateChange> {
            Vec::new()
        }
        fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
            self.0.clone().into_iter().collect()
        }
        fn restore_entry(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
            if value == Some(b"bad".as_slice()) {
                return Err("does not decode".to_owned());
            }
            self.0
                .insert(key.to_owned(), value.unwrap_or_default().to_vec());
            Ok(())
        }
        fn entities(&self) -> usize {
            self.0.len()
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    fn recorded() -> Box<dyn PartitionState> {
        Box::<Recorded>::default()
    }

    fn entries_of(state: &mut Box<dyn PartitionState>) -> Vec<(String, Vec<u8>)> {
        let mut entries = state.snapshot();
        entries.sort();
        entries
    }

    #[test]
    fn scratch_holds_only_the_asked_keys_and_every_meta_entry() {
        let view = StateView::default();
        view.replace(
            0,
            vec![
                ("user:a".into(), b"a0".to_vec()),
                ("user:b".into(), b"b0".to_vec()),
                ("@partition".into(), b"m0".to_vec()),
            ],
        );
        view.publish(3, &[("user:c".into(), Some(b"c3".to_vec()))]);
        let mut scratch = view.scratch(
            recorded,
            &["user:a".into(), "user:c".into(), "user:z".into()],
            &["@partition"],
        );
        assert_eq!(
            entries_of(&mut scratch),
            vec![
                ("@partition".into(), b"m0".to_vec()),
                ("user:a".into(), b"a0".to_vec()),
                ("user:c".into(), b"c3".to_vec()),
            ]
        );
    }

    #[test]
    fn tombstones_and_revokes_remove_entries_and_bad_entries_are_skipped() {
        let view = StateView::default();
        view.publish(
            1,
            &[
                ("user:a".into(), Some(b"a1".to_vec())),
                ("user:b".into(), Some(b"bad".to_vec())),
            ],
        );
        view.publish(1, &[("user:a".into(), None)]);
        assert_eq!(view.len(), 1);
        let mut scratch = view.scratch(recorded, &["user:a".into(), "user:b".into()], &[]);
        assert!(entries_of(&mut scratch).is_empty());
        view.drop_partition(1);
        assert!(view.is_empty());
    }
}
