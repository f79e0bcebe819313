//! Memory of the email operator's window state per active user, measured with a counting
//! global allocator: `cargo bench -p threatflow --bench email_state`.
//!
//! For 10⁴, 10⁵ and 10⁶ users with 1, 4 and 16 messages each in the window, it folds the
//! messages into one partition's [`PartitionWindows`] (as the operator does), takes the
//! changes (as each checkpoint does), and reports the heap bytes the state holds per user:
//! the user table, keys, windows and their messages. Under `cargo test` (no `--bench`
//! argument) it runs 10³ users only, as a smoke test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use threatflow::operators::email::window::{PartitionWindows, Sighting, WindowSettings};
use threatflow::runtime::PartitionState;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes per user of a partition holding `users` users with `messages` each.
fn bytes_per_user(users: usize, messages: usize) -> f64 {
    let settings = WindowSettings::default();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut windows = PartitionWindows::default();
    let start_ms = 1_800_000_000_000i64;
    let mut offset = 0i64;
    // Messages spread over six days of the seven-day window, users interleaved as on a
    // real partition; addresses of a realistic length.
    for message in 0..messages {
        for user in 0..users {
            let time_ms = start_ms + (message * 6 * 86_400_000 / messages.max(1)) as i64;
            let sighting = Sighting {
                time_ms: time_ms + user as i64,
                score: 0.1 + (user % 7) as f32 / 100.0,
                voted: user % 50 == 0,
            };
            let address = format!("firstname.lastname{user}@example.com");
            windows.fold(offset, &address, sighting, &settings);
            offset += 1;
        }
        // A checkpoint between batches, as the pipeline takes them.
        let _ = windows.take_changes();
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    assert_eq!(windows.users.len(), users);
    drop(windows);
    held as f64 / users as f64
}

fn main() {
    let full = std::env::args().any(|argument| argument == "--bench");
    let counts: &[usize] = if full {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    println!("| users | messages per user | heap bytes per user |");
    println!("|---|---|---|");
    for &users in counts {
        for messages in [1, 4, 16] {
            println!(
                "| {users} | {messages} | {:.0} |",
                bytes_per_user(users, messages)
            );
        }
    }
}
