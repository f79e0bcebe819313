//! The records before a verdict's input, for rebuilding a stateful operator's context.
//!
//! A stateful operator's features read its partition state (the alert operator's entity
//! history: the alerts of the last 24 h per user and host). A verdict names one input; the
//! features the model saw also depend on what the partition held before it. The intake
//! therefore reads the partition's records before the input — at most
//! `feedback.context_lookback_records` of them, never through the live group — decodes them
//! with the binding's decoder, and hands them to the operator's
//! [`ContextBuilder`](super::ContextBuilder). The rebuilt context equals the live state
//! whenever the state's window holds no more records than the lookback (the state is a fold
//! of the partition's records, exactly as the live operator folded them); beyond it, counts
//! are lower bounds.
//!
//! Verdicts tend to come in offset order per partition, so the decoded records of the last
//! range read are kept per partition and only the new part is read for the next verdict.
//! At most [`MAX_PARTITIONS`] partitions are kept.

use std::collections::{HashMap, VecDeque};

use rdkafka::error::KafkaError;

use super::join::InputReader;
use super::verdict::FeedbackSource;
use crate::decode::Decoder;
use crate::events::InputEvent;

/// Partitions whose records are kept between verdicts.
pub const MAX_PARTITIONS: usize = 16;

/// Decoded records of one partition covering offsets `from..to`.
#[derive(Default)]
struct Window {
    from: i64,
    to: i64,
    records: VecDeque<(i64, Option<InputEvent>)>,
}

/// The cache of decoded prior records; see the module doc.
pub struct PriorInputs {
    lookback: usize,
    partitions: HashMap<(String, i32), Window>,
}

impl PriorInputs {
    /// At most `lookback` records before each input.
    pub fn new(lookback: usize) -> Self {
        Self {
            lookback,
            partitions: HashMap::new(),
        }
    }

    /// The decodable records of the input's partition before it (oldest first, at most the
    /// lookback). Records the decoder refuses were never scored and are left out, as the
    /// live operator left them out of its state.
    pub fn before(
        &mut self,
        reader: &InputReader,
        decoder: &Decoder,
        source: &FeedbackSource,
    ) -> Result<Vec<&InputEvent>, KafkaError> {
        let start = (source.offset - self.lookback as i64).max(0);
        let key = (source.topic.clone(), source.partition);
        if !self.partitions.contains_key(&key) && self.partitions.len() >= MAX_PARTITIONS {
            self.partitions.clear();
        }
        let window = self.partitions.entry(key).or_default();
        let contiguous = window.from <= start && window.to >= start;
        if !contiguous {
            *window = Window {
                from: start,
                to: start,
                records: VecDeque::new(),
            };
        }
        if window.to < source.offset {
            for (offset, payload) in
                reader.range(&source.topic, source.partition, window.to, source.offset)?
            {
                window
                    .records
                    .push_back((offset, decoder.decode(payload.as_deref()).ok()));
            }
            window.to = source.offset;
        }
        while window
            .records
            .front()
            .is_some_and(|(offset, _)| *offset < start)
        {
            window.records.pop_front();
        }
        window.from = window.from.max(start);
        Ok(window
            .records
            .iter()
            .filter(|(offset, _)| *offset < source.offset)
            .filter_map(|(_, event)| event.as_ref())
            .collect())
    }
}
