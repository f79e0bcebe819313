//! Offset tracking for at-least-once delivery.
//!
//! Every input record is *tracked* when the source receives it, in offset order per
//! partition. Once the pipeline knows how many output records the input produced (scored
//! events, dead letters, extra per-user records) it calls [`OffsetTracker::set_output_count`]; every
//! broker acknowledgement of one of those outputs calls [`OffsetTracker::acknowledge`].
//! An input is *done* when all its outputs are acknowledged.
//!
//! Guarantee: [`OffsetTracker::take_committable`] only ever returns, per partition, the
//! offset just past the longest contiguous prefix of done inputs. Acknowledgements arrive
//! out of order (outputs go to different partitions and topics), so a later input may be
//! done before an earlier one; the earlier one holds the commit back. Hence a crash can only
//! re-deliver inputs whose outputs were not all acknowledged — never lose one.
//!
//! Each assignment of a partition gets a new *generation*. Acknowledgements carry the
//! generation they were issued under; those of a revoked assignment are ignored, so late
//! deliveries cannot mark records of a newer assignment as done.
//!
//! Stateful bindings add a second condition: a partition whose inputs were folded into keyed
//! state since its last durable checkpoint is *state-pending* from the first such input
//! ([`OffsetTracker::mark_state_pending`]); no offset past that input is handed out until the
//! checkpoint is acknowledged ([`OffsetTracker::mark_state_durable`]). So an input's offset is
//! committed only after its effect on state is in the changelog (see
//! [`crate::runtime::changelog`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A topic partition, as the tracker keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds a key from a topic name and partition number.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
        }
    }
}

/// Proof that an input was tracked under a given assignment generation; handed back with
/// every acknowledgement of its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedInput {
    /// Partition of the input.
    pub partition: TopicPartition,
    /// Offset of the input.
    pub offset: i64,
    /// Assignment generation the input was read under.
    pub generation: u64,
}

/// Per-partition queue of tracked inputs, in offset order.
#[derive(Debug, Default)]
struct PartitionQueue {
    generation: u64,
    /// (offset, outputs still unacknowledged, or None while the count is not yet known)
    entries: VecDeque<(i64, Option<usize>)>,
    /// Offset to commit next (one past the last done prefix entry), not yet handed out.
    committable: Option<i64>,
    /// Inputs completed under this assignment (for the consumed-rate estimate).
    completed: u64,
    /// First input folded into keyed state since the last durable checkpoint.
    state_pending_from: Option<i64>,
    /// The last offset handed out while capped by `state_pending_from`.
    handed_out: Option<i64>,
}

impl PartitionQueue {
    fn entry_mut(&mut self, offset: i64) -> Option<&mut (i64, Option<usize>)> {
        let index = self
            .entries
            .binary_search_by_key(&offset, |entry| entry.0)
            .ok()?;
        self.entries.get_mut(index)
    }

    /// Pops the done prefix and remembers the offset to commit.
    fn advance(&mut self) {
        while let Some(&(offset, Some(0))) = self.entries.front() {
            self.entries.pop_front();
            self.committable = Some(offset + 1);
            self.completed += 1;
        }
    }
}

#[derive(Debug, Default)]
struct TrackerState {
    partitions: HashMap<TopicPartition, PartitionQueue>,
    next_generation: u64,
}

/// Thread-safe offset tracker shared by the source, the operator workers and the producer's
/// delivery callback. Critical sections are a few map operations; no I/O under the lock.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    state: Mutex<TrackerState>,
    /// Signalled whenever inputs become done, for drains on revoke and shutdown.
    progress: Condvar,
}

impl OffsetTracker {
    /// Creates an empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        crate::sync::lock(&self.state)
    }

    /// Starts a new generation for freshly assigned partitions, forgetting anything tracked
    /// under an earlier assignment of them.
    pub fn assign(&self, partitions: &[TopicPartition]) {
        let mut state = self.lock();
        for partition in partitions {
            state.next_generation += 1;
            let generation = state.next_generation;
            state.partitions.insert(
                partition.clone(),
                PartitionQueue {
                    generation,
                    ..PartitionQueue::default()
                },
            );
        }
    }

    /// Forgets revoked partitions; their late acknowledgements will be ignored.
    pub fn revoke(&self, partitions: &[TopicPartition]) {
        let mut state = self.lock();
        for partition in partitions {
            state.partitions.remove(partition);
        }
        self.progress.notify_all();
    }

    /// Records that `offset` was read from `partition`. Offsets must increase per partition;
    /// a record at or below the last tracked offset (a re-delivery after a seek) is refused
    /// and `None` returned, so the caller does not process a stale duplicate out of order.
    pub fn track(&self, partition: &TopicPartition, offset: i64) -> Option<TrackedInput> {
        let mut state = self.lock();
        if !state.partitions.contains_key(partition) {
            // Messages can arrive before the assign callback has been observed (or for a
            // partition assigned without a rebalance callback, e.g. manual assignment).
            state.next_generation += 1;
            let generation = state.next_generation;
            state.partitions.insert(
                partition.clone(),
                PartitionQueue {
                    generation,
                    ..PartitionQueue::default()
                },
            );
        }
        let queue = state.partitions.get_mut(partition)?;
        if let Some(&(last, _)) = queue.entries.back() {
            if offset <= last {
                return None;
            }
        }
        queue.entries.push_back((offset, None));
        Some(TrackedInput {
            partition: partition.clone(),
            offset,
            generation: queue.generation,
        })
    }

    /// Sets how many output records `input` produced. Zero outputs makes it done at once.
    pub fn set_output_count(&self, input: &TrackedInput, outputs: usize) {
        let mut state = self.lock();
        let Some(queue) = state.partitions.get_mut(&input.partition) else {
            return;
        };
        if queue.generation != input.generation {
            return;
        }
        if let Some(entry) = queue.entry_mut(input.offset) {
            entry.1 = Some(outputs);
        }
        queue.advance();
        self.progress.notify_all();
    }

    /// Records that one output of `input` was acknowledged by the broker.
    pub fn acknowledge(&self, input: &TrackedInput) {
        let mut state = self.lock();
        let Some(queue) = state.partitions.get_mut(&input.partition) else {
            return;
        };
        if queue.generation != input.generation {
            return;
        }
        if let Some(entry) = queue.entry_mut(input.offset) {
            if let Some(remaining) = entry.1.as_mut() {
                *remaining = remaining.saturating_sub(1);
            }
        }
        queue.advance();
        self.progress.notify_all();
    }

    /// Hands out, once, the offsets that may now be stored: per partition, one past the
    /// longest contiguous done prefix. Partitions without progress are left out.
    pub fn take_committable(&self) -> Vec<(TopicPartition, i64)> {
        let mut state = self.lock();
        let mut committable: Vec<(TopicPartition, i64)> = state
            .partitions
            .iter_mut()
            .filter_map(|(partition, queue)| {
                let offset = queue.committable?;
                let offset = match queue.state_pending_from {
                    // Capped: hand out the state barrier once; keep the rest for later.
                    Some(barrier) if barrier < offset => {
                        if queue.handed_out.is_some_and(|handed| handed >= barrier) {
                            return None;
                        }
                        barrier
                    }
                    _ => {
                        queue.committable = None;
                        offset
                    }
                };
                queue.handed_out = Some(offset);
                Some((partition.clone(), offset))
            })
            .collect();
        committable.sort();
        committable
    }

    /// Records that inputs of `partition` from `offset` on were folded into keyed state that
    /// is not durable yet: offsets past `offset` are held back until
    /// [`Self::mark_state_durable`].
    pub fn mark_state_pending(&self, partition: &TopicPartition, offset: i64) {
        let mut state = self.lock();
        if let Some(queue) = state.partitions.get_mut(partition) {
            queue.state_pending_from =
                Some(queue.state_pending_from.map_or(offset, |o| o.min(offset)));
        }
    }

    /// Records that every fold of `partition` so far is durable (its checkpoint was
    /// acknowledged).
    pub fn mark_state_durable(&self, partition: &TopicPartition) {
        let mut state = self.lock();
        if let Some(queue) = state.partitions.get_mut(partition) {
            queue.state_pending_from = None;
        }
    }

    /// Number of tracked inputs not yet done, over the given partitions (all when empty).
    pub fn pending(&self, partitions: &[TopicPartition]) -> usize {
        let state = self.lock();
        Self::pending_in(&state, partitions)
    }

    fn pending_in(state: &TrackerState, partitions: &[TopicPartition]) -> usize {
        state
            .partitions
            .iter()
            .filter(|(partition, _)| partitions.is_empty() || partitions.contains(partition))
            .map(|(_, queue)| queue.entries.len())
            .sum()
    }

    /// Per topic: inputs tracked and not yet done, and inputs completed so far (a counter that
    /// only grows while partitions stay assigned; rates are taken from its differences).
    pub fn progress_by_topic(&self) -> HashMap<String, (usize, u64)> {
        let state = self.lock();
        let mut by_topic: HashMap<String, (usize, u64)> = HashMap::new();
        for (partition, queue) in &state.partitions {
            let entry = by_topic.entry(partition.topic.clone()).or_default();
            entry.0 += queue.entries.len();
            entry.1 += queue.completed;
        }
        by_topic
    }

    /// Forgets the inputs of `partition` from `offset` on: records that were read but never
    /// handed to a worker (dropped on revoke), so that draining does not wait for them. They
    /// were never committed, so the partition's next owner reads them again.
    pub fn untrack_from(&self, partition: &TopicPartition, offset: i64) {
        let mut state = self.lock();
        if let Some(queue) = state.partitions.get_mut(partition) {
            while queue
                .entries
                .back()
                .is_some_and(|&(last, _)| last >= offset)
            {
                queue.entries.pop_back();
            }
        }
        self.progress.notify_all();
    }

    /// Blocks until no input of the given partitions (all when empty) is pending, or until
    /// `timeout` passes. Returns how many were still pending.
    pub fn wait_drained(&self, partitions: &[TopicPartition], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let pending = Self::pending_in(&state, partitions);
            let now = Instant::now();
            if pending == 0 || now >= deadline {
                return pending;
            }
            let (next_state, _) = self
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = next_state;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn untracked_suffix_no_longer_holds_a_drain() {
        let tracker = OffsetTracker::new();
        let partition = TopicPartition::new("t", 0);
        tracker.assign(std::slice::from_ref(&partition));
        let first = tracker.track(&partition, 10).unwrap();
        tracker.track(&partition, 11).unwrap();
        tracker.track(&partition, 12).unwrap();
        tracker.set_output_count(&first, 0);
        tracker.untrack_from(&partition, 11);
        assert_eq!(tracker.pending(&[]), 0);
        assert_eq!(tracker.take_committable(), vec![(partition.clone(), 11)]);
        let progress = tracker.progress_by_topic();
        assert_eq!(progress.get("t"), Some(&(0, 1)));
    }

    fn partition(number: i32) -> TopicPartition {
        TopicPartition::new("flows", number)
    }

    #[test]
    fn state_pending_inputs_hold_the_commit_until_their_checkpoint_is_durable() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        let inputs: Vec<TrackedInput> = (0..4).map(|o| tracker.track(&p0, o).unwrap()).collect();
        tracker.set_output_count(&inputs[0], 0);
        tracker.set_output_count(&inputs[1], 0);
        assert_eq!(tracker.take_committable(), vec![(p0.clone(), 2)]);
        // Offsets 2 and 3 are folded into state that is not durable yet.
        tracker.mark_state_pending(&p0, 2);
        tracker.set_output_count(&inputs[2], 0);
        tracker.set_output_count(&inputs[3], 0);
        assert!(
            tracker.take_committable().is_empty(),
            "outputs acked, state not durable"
        );
        tracker.mark_state_durable(&p0);
        assert_eq!(tracker.take_committable(), vec![(p0.clone(), 4)]);
        assert!(tracker.take_committable().is_empty(), "handed out once");
    }

    #[test]
    fn single_output_inputs_commit_in_order() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        let first = tracker.track(&p0, 10).unwrap();
        let second = tracker.track(&p0, 11).unwrap();
        tracker.set_output_count(&first, 1);
        tracker.set_output_count(&second, 1);
        tracker.acknowledge(&second);
        assert!(
            tracker.take_committable().is_empty(),
            "11 done but 10 is not"
        );
        tracker.acknowledge(&first);
        assert_eq!(tracker.take_committable(), vec![(p0.clone(), 12)]);
        assert!(tracker.take_committable().is_empty(), "handed out once");
        assert_eq!(tracker.pending(&[]), 0);
    }

    #[test]
    fn zero_outputs_is_done_and_unknown_count_holds_back() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        let first = tracker.track(&p0, 0).unwrap();
        let second = tracker.track(&p0, 1).unwrap();
        // Acknowledging before the count is known must not complete the input.
        tracker.acknowledge(&first);
        tracker.set_output_count(&second, 0);
        assert!(tracker.take_committable().is_empty());
        tracker.set_output_count(&first, 0);
        assert_eq!(tracker.take_committable(), vec![(p0, 2)]);
    }

    #[test]
    fn acknowledgements_of_a_revoked_generation_are_ignored() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        tracker.assign(std::slice::from_ref(&p0));
        let old = tracker.track(&p0, 5).unwrap();
        tracker.set_output_count(&old, 1);
        tracker.revoke(std::slice::from_ref(&p0));
        tracker.assign(std::slice::from_ref(&p0));
        let new = tracker.track(&p0, 5).unwrap();
        tracker.set_output_count(&new, 1);
        tracker.acknowledge(&old);
        assert!(tracker.take_committable().is_empty());
        tracker.acknowledge(&new);
        assert_eq!(tracker.take_committable(), vec![(p0, 6)]);
    }

    #[test]
    fn stale_offsets_are_refused() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        assert!(tracker.track(&p0, 3).is_some());
        assert!(tracker.track(&p0, 3).is_none());
        assert!(tracker.track(&p0, 2).is_none());
    }

    #[test]
    fn wait_drained_returns_pending_count_on_timeout() {
        let tracker = OffsetTracker::new();
        let p0 = partition(0);
        let input = tracker.track(&p0, 1).unwrap();
        tracker.set_output_count(&input, 1);
        assert_eq!(tracker.wait_drained(&[], Duration::from_millis(20)), 1);
        tracker.acknowledge(&input);
        assert_eq!(tracker.wait_drained(&[], Duration::from_millis(20)), 0);
    }

    proptest! {
        /// Whatever order the acknowledgements arrive in, every committed offset is one past
        /// a prefix of inputs that are all done, commits never move backwards, and once all
        /// are acknowledged the commit reaches the end.
        #[test]
        fn only_contiguous_done_prefix_is_committed(
            output_counts in proptest::collection::vec(0usize..4, 1..60),
            gaps in proptest::collection::vec(1i64..4, 60),
            seed in any::<u64>(),
        ) {
            use rand::{seq::SliceRandom, SeedableRng};
            let tracker = OffsetTracker::new();
            let p0 = partition(0);
            let mut offsets = Vec::new();
            let mut next_offset = 100i64;
            for gap in gaps.iter().take(output_counts.len()) {
                offsets.push(next_offset);
                next_offset += gap;
            }
            let inputs: Vec<TrackedInput> = offsets
                .iter()
                .map(|&offset| tracker.track(&p0, offset).unwrap())
                .collect();
            for (input, &count) in inputs.iter().zip(&output_counts) {
                tracker.set_output_count(input, count);
            }
            let mut acks: Vec<usize> = output_counts
                .iter()
                .enumerate()
                .flat_map(|(index, &count)| std::iter::repeat_n(index, count))
                .collect();
            acks.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            let mut remaining = output_counts.clone();
            let mut last_commit = i64::MIN;
            let check = |tracker: &OffsetTracker, remaining: &[usize], last: &mut i64| {
                for (_, offset) in tracker.take_committable() {
                    prop_assert!(offset > *last, "commit moved backwards");
                    *last = offset;
                    for (index, &input_offset) in offsets.iter().enumerate() {
                        if input_offset < offset {
                            prop_assert_eq!(remaining[index], 0, "committed past an unfinished input");
                        }
                    }
                }
                Ok(())
            };
            check(&tracker, &remaining, &mut last_commit)?;
            for index in acks {
                tracker.acknowledge(&inputs[index]);
                remaining[index] -= 1;
                check(&tracker, &remaining, &mut last_commit)?;
            }
            prop_assert_eq!(last_commit, offsets.last().unwrap() + 1);
            prop_assert_eq!(tracker.pending(&[]), 0);
        }
    }
}
