//! The model registry every operator shares: immutable versions in an artifact store,
//! `champion` / `challenger` aliases and their history on a compacted Kafka topic, fleet-wide
//! hot swap, shadow scoring of the challenger, and the `models` command line.
//!
//! - [`store`]: versions under `<store>/<operator>/<version>/` (local path or S3), the
//!   verified local cache;
//! - [`manifest`]: what the registry reads from any manifest, and `models verify`;
//! - [`log`]: the registry topic, its records and their fold;
//! - [`fleet`]: the engine's side — boot on the champion, follow, swap;
//! - [`shadow`]: challenger scoring off the output path;
//! - [`cli`]: `threatflow models list|show|promote|rollback|challenge|verify|push`.

pub mod cli;
pub mod config;
pub mod fleet;
pub mod log;
pub mod manifest;
pub mod shadow;
pub mod store;

pub use config::RegistryConfig;
pub use fleet::{FleetBinding, Registry};
