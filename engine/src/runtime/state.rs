//! Keyed partition state as the pipeline sees it: one state object per input partition,
//! created, restored, checkpointed and dropped by the pipeline, never by the operator.
//!
//! An operator that keeps keyed state (email windows, alert entity history) declares a
//! [`PartitionState`] type. Its state is a set of *entries* keyed by entity (a user, a host)
//! plus whatever partition-wide facts it keeps under its own reserved key; each entry records
//! the input offset it reflects, so an event re-delivered after a crash is scored again but
//! never folded into an entry twice. The state reports which entries changed since the last
//! checkpoint ([`PartitionState::take_changes`]); the pipeline writes exactly those to the
//! binding's changelog ([`crate::runtime::changelog`]) and rebuilds a state from entries
//! ([`PartitionState::restore_entry`]) on restore.

use std::any::Any;
use std::collections::HashMap;

/// One changed entry: entity key and its encoded value, or `None` when it was removed (a
/// tombstone in the compacted changelog).
pub type StateChange = (String, Option<Vec<u8>>);

/// The keyed state of one input partition.
pub trait PartitionState: Any + Send {
    /// Entries changed or removed since the last call, in any order.
    fn take_changes(&mut self) -> Vec<StateChange>;

    /// Every entry (for the local cache).
    fn snapshot(&self) -> Vec<(String, Vec<u8>)>;

    /// Applies one entry read back from the changelog or the cache (later records of a key
    /// replace earlier ones). `Err` describes an entry that does not decode.
    fn restore_entry(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), String>;

    /// Number of entities held (metrics, `/ready`).
    fn entities(&self) -> usize;

    /// For the operator's typed access.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// Makes an empty state for a partition.
pub type StateFactory = fn() -> Box<dyn PartitionState>;

/// The states of the partitions one worker serves.
pub struct PartitionStates {
    factory: Option<StateFactory>,
    states: HashMap<i32, Box<dyn PartitionState>>,
}

impl PartitionStates {
    /// States made by `factory`; `None` for a stateless operator.
    pub fn new(factory: Option<StateFactory>) -> Self {
        Self {
            factory,
            states: HashMap::new(),
        }
    }

    /// Whether the operator keeps state.
    pub fn is_stateful(&self) -> bool {
        self.factory.is_some()
    }

    /// Whether `partition`'s state is held.
    pub fn holds(&self, partition: i32) -> bool {
        self.states.contains_key(&partition)
    }

    /// The partitions held, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        let mut partitions: Vec<i32> = self.states.keys().copied().collect();
        partitions.sort_unstable();
        partitions
    }

    /// An empty state (restore target); `None` for a stateless operator.
    pub fn empty(&self) -> Option<Box<dyn PartitionState>> {
        self.factory.map(|factory| factory())
    }

    /// Installs a restored state.
    pub fn insert(&mut self, partition: i32, state: Box<dyn PartitionState>) {
        self.states.insert(partition, state);
    }

    /// Drops `partition`'s state (revoke), returning it.
    pub fn remove(&mut self, partition: i32) -> Option<Box<dyn PartitionState>> {
        self.states.remove(&partition)
    }

    /// The state of `partition` as `S`, created empty if not held (the worker restores every
    /// partition before its first batch, so this only creates in offline use). `None` when
    /// the operator is stateless or `S` is not its state type.
    pub fn partition<S: PartitionState>(&mut self, partition: i32) -> Option<&mut S> {
        let factory = self.factory?;
        self.states
            .entry(partition)
            .or_insert_with(factory)
            .as_any_mut()
            .downcast_mut::<S>()
    }

    /// Every held state as `S`, with its partition.
    pub fn iter_mut<S: PartitionState>(&mut self) -> impl Iterator<Item = (i32, &mut S)> {
        self.states.iter_mut().filter_map(|(partition, state)| {
            state
                .as_any_mut()
                .downcast_mut::<S>()
                .map(|state| (*partition, state))
        })
    }

    /// Every held state, untyped, with its partition (checkpoints).
    pub fn iter_dyn_mut(&mut self) -> impl Iterator<Item = (i32, &mut Box<dyn PartitionState>)> {
        self.states
            .iter_mut()
            .map(|(partition, state)| (*partition, state))
    }

    /// Entities held over all partitions.
    pub fn entities(&self) -> usize {
        self.states.values().map(|state| state.entities()).sum()
    }
}
