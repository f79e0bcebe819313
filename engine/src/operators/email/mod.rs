//! The email operator (in progress).

pub mod config;
pub mod eval;
pub mod features;
pub mod message;
pub mod model;
pub mod synth;
pub mod train;
pub mod user_key;
pub mod window;

pub use config::EmailOperatorConfig;
