//! The operator runtime: what the pipeline provides to every operator besides batches.
//!
//! - [`model_slot`]: one loaded, immutable model per binding, shared by its workers and
//!   swapped atomically without a restart;
//! - [`state`]: keyed partition state owned by the pipeline (created on assign, restored,
//!   checkpointed, dropped on revoke);
//! - [`changelog`]: that state made durable in a compacted Kafka changelog topic, with the
//!   local sled store as a cache, ordered before offset commits;
//! - [`state_view`]: a read-only copy of the durable state for the scoring API;
//! - [`topic_feed`]: side inputs every pod reads whole (behaviour scores, intel).

pub mod changelog;
pub mod model_slot;
pub mod state;
pub mod state_view;
pub mod topic_feed;

pub use model_slot::{ModelHandle, ModelLoader, ModelSlot};
pub use state::{PartitionState, PartitionStates, StateChange, StateFactory};
pub use state_view::StateView;
