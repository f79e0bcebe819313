//! Sender-address fraud scoring (placeholder while the module is built).
pub mod domains;
pub mod features;
pub mod local_part;
pub mod markov;
