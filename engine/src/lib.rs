//! threatflow: a streaming threat-detection engine. It consumes Kafka topics of LLM prompts,
//! network flows, emails, SIEM alerts and sign-up addresses, scores every event with the operator bound to its
//! topic, and emits scored, explained events — at least once, with bad input dead-lettered.
//!
//! Map of the modules:
//! - [`config`]: TOML + environment overrides → validated [`config::EngineConfig`];
//!   [`config_check`]: `config check`, which also loads what the config points at.
//! - [`events`]: typed input events and the bundled Avro schemas (`schemas/`).
//! - [`decode`]: JSON / Avro / Confluent-framed Avro → typed events, failures → reason codes.
//! - [`scored`], [`dead_letter`]: the output records; [`encode`] writes them;
//!   [`dead_letter_log`]: rate-limited dead-letter log lines.
//! - [`offsets`]: which input offsets may be committed (the at-least-once core).
//! - [`source`]: consumer and rebalance handling; [`dispatch`]: batching and non-blocking
//!   hand-off to workers; [`flow_control`]: pause/resume and in-flight budgets;
//!   [`emit`]: producer, acks and refused records.
//! - [`pipeline`]: the one loop that runs every operator; [`worker`]: one binding's decode →
//!   score → emit; [`health`]: readiness and fatal failures; [`sync`]: poison-tolerant locking.
//! - [`operators`]: the operator table ([`operators::table`]), the operator trait and the
//!   operators.
//! - [`runtime`]: what operators run on — shared swappable model slots, keyed partition state
//!   and its changelog; [`state`]: the local sled cache of that state.
//! - [`ml`]: shared ML building blocks (tree ensembles, TreeSHAP, gradient boosting, XGBoost
//!   import, random and isolation forests, logistic regression, metrics, curve plots).
//! - [`drift`]: two-sample tests and the per-binding drift detector (feedback loop, in
//!   progress).
//! - [`telemetry`], [`http`], [`shutdown`]: logs, metrics, probes, signals.
//! - [`generate`]: realistic synthetic events (demo, tests, load generator); [`demo`]: the
//!   engine on an embedded broker.
//! - [`registry`]: model versions in an artifact store, champion/challenger aliases on a
//!   Kafka log, fleet-wide swaps, shadow scoring, `models` commands; [`replay`]: re-scoring a
//!   range of an input topic with any version.
//! - [`cli`]: the `threatflow` command line; [`model_cli`]: its `train`, `eval`, `bench` and
//!   `generate` commands.

pub mod api;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod console;
pub mod dead_letter;
pub mod dead_letter_log;
pub mod decode;
pub mod demo;
pub mod demo_serve;
pub mod dispatch;
pub mod drift;
pub mod emit;
pub mod encode;
pub mod events;
pub mod flow_control;
pub mod generate;
pub mod health;
pub mod http;
pub mod learning;
pub mod ml;
pub mod model_cli;
pub mod ocsf;
pub mod ocsf_verdicts;
pub mod offsets;
pub mod operators;
pub mod pipeline;
pub mod privacy;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod scored;
pub mod shutdown;
pub mod source;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod worker;
