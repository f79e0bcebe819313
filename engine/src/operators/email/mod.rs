//! The email operator (in progress).

pub mod features;
pub mod message;
pub mod user_key;
