//! The local sled store of keyed partition state: a cache beside the changelog topic (see
//! [`crate::runtime::changelog`]), one snapshot per input partition with the changelog
//! position it matches. It is used on restore only when that position is current.
//!
//! Storage: one sled database per operator and input topic under `storage.state_dir`
//! (`<state_dir>/<operator>/<topic>`), one key per partition, values JSON (readable with any
//! sled tool, and small next to what they describe). [`CheckpointStore::save`] and
//! [`CheckpointStore::save_all`] flush before they return, so a snapshot that was reported
//! saved is on disk.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Attempts to open a store whose lock is still held (see [`CheckpointStore::open`]).
const LOCK_RETRIES: u32 = 30;
/// Pause between them.
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Errors of the checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// sled failed.
    #[error("state store {path}: {source}")]
    Sled {
        /// Database directory.
        path: PathBuf,
        /// Cause.
        source: sled::Error,
    },
    /// A snapshot could not be (de)serialised.
    #[error("state snapshot for partition {partition}: {message}")]
    Snapshot {
        /// Partition.
        partition: i32,
        /// Cause.
        message: String,
    },
}

/// Partition snapshots of one operator on one topic.
pub struct CheckpointStore {
    path: PathBuf,
    db: sled::Db,
}

impl std::fmt::Debug for CheckpointStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStore")
            .field("path", &self.path)
            .finish()
    }
}

impl CheckpointStore {
    /// Opens (creating) `<state_dir>/<operator>/<topic>`.
    pub fn open(state_dir: &Path, operator: &str, topic: &str) -> Result<Self, StateError> {
        let path = state_dir.join(operator).join(sanitize(topic));
        // A store closed a moment ago (same process) may still be held by sled's flusher
        // thread, which releases the file lock shortly after the drop: retry briefly.
        let mut attempts = 0;
        let db = loop {
            match sled::Config::new().path(&path).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(error))
                    if attempts < LOCK_RETRIES && error.to_string().contains("acquire lock") =>
                {
                    attempts += 1;
                    std::thread::sleep(LOCK_RETRY_PAUSE);
                }
                Err(source) => {
                    return Err(StateError::Sled {
                        path: path.clone(),
                        source,
                    })
                }
            }
        };
        Ok(Self { path, db })
    }

    fn sled_error(&self) -> impl FnOnce(sled::Error) -> StateError + '_ {
        move |source| StateError::Sled {
            path: self.path.clone(),
            source,
        }
    }

    /// Saves `snapshot` as partition `partition`'s state and flushes.
    pub fn save<T: Serialize>(&self, partition: i32, snapshot: &T) -> Result<usize, StateError> {
        self.save_all([(partition, snapshot)])
    }

    /// Saves every `(partition, snapshot)` and flushes once (one disk sync per checkpoint,
    /// not per partition); returns the bytes written.
    pub fn save_all<'a, T: Serialize + 'a>(
        &self,
        snapshots: impl IntoIterator<Item = (i32, &'a T)>,
    ) -> Result<usize, StateError> {
        let mut written = 0;
        for (partition, snapshot) in snapshots {
            let bytes = serde_json::to_vec(snapshot).map_err(|e| StateError::Snapshot {
                partition,
                message: e.to_string(),
            })?;
            self.db
                .insert(partition.to_be_bytes(), bytes.as_slice())
                .map_err(self.sled_error())?;
            written += bytes.len();
        }
        self.db.flush().map_err(self.sled_error())?;
        Ok(written)
    }

    /// The saved state of `partition`, if any.
    pub fn load<T: DeserializeOwned>(&self, partition: i32) -> Result<Option<T>, StateError> {
        let Some(bytes) = self
            .db
            .get(partition.to_be_bytes())
            .map_err(self.sled_error())?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Snapshot {
                partition,
                message: e.to_string(),
            })
    }

    /// Partitions with a saved state.
    pub fn partitions(&self) -> Vec<i32> {
        self.db
            .iter()
            .keys()
            .filter_map(|key| key.ok())
            .filter_map(|key| <[u8; 4]>::try_from(key.as_ref()).ok())
            .map(i32::from_be_bytes)
            .collect()
    }
}

/// A topic name as a directory name (Kafka allows `.`, `_`, `-` and alphanumerics only, but
/// config could name anything).
fn sanitize(topic: &str) -> String {
    topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_per_partition_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = CheckpointStore::open(dir.path(), "email", "emails").unwrap();
            assert_eq!(store.load::<Vec<u32>>(0).unwrap(), None);
            store.save(0, &vec![1u32, 2, 3]).unwrap();
            store.save(7, &vec![9u32]).unwrap();
            store.save(0, &vec![4u32]).unwrap();
        }
        let store = CheckpointStore::open(dir.path(), "email", "emails").unwrap();
        assert_eq!(store.load::<Vec<u32>>(0).unwrap(), Some(vec![4]));
        assert_eq!(store.load::<Vec<u32>>(7).unwrap(), Some(vec![9]));
        let mut partitions = store.partitions();
        partitions.sort_unstable();
        assert_eq!(partitions, [0, 7]);
        assert!(store.load::<String>(7).is_err());
        assert!(dir.path().join("email").join("emails").is_dir());
        assert_eq!(sanitize("a/b c"), "a_b_c");
    }
}
