//! Locking shared by the pipeline's threads.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering its data if a thread panicked while holding it. Every critical
/// section in the engine leaves its data consistent (a few map or queue operations, no I/O),
/// and a panicking worker already fails the engine; a poisoned lock must not turn every later
/// access — `/ready`, the poll loop, the shutdown — into a second panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
